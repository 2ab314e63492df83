//! SIP transaction state machines: RFC 3261 §17 with the RFC 6026 changes.
//!
//! Sans-IO, in the style of quinn-proto and str0m: nothing here reads a clock,
//! touches a socket or spawns a task. The owner drives each machine by
//!
//! 1. feeding it inputs (`handle_response`, `send_response`, `handle_ack`,
//!    `handle_request_retransmission`, `handle_transport_error`), each with `now`;
//! 2. draining [`Output`]s with `poll_output()` until it returns `None`;
//! 3. waking at `poll_timeout()` and calling `handle_timeout(now)`.
//!
//! Messages are opaque [`bytes::Bytes`]: parsing and building them is the owner's job,
//! which only passes the status code the machine needs to choose a transition.
//!
//! Only `std`, `bytes` and relative paths are used, so the module can be mounted anywhere.

pub mod client_invite;
pub mod client_non_invite;
pub mod server_invite;
pub mod server_non_invite;
pub mod timers;

pub use client_invite::{ClientInvite, State as ClientInviteState};
pub use client_non_invite::{ClientNonInvite, State as ClientNonInviteState};
pub use server_invite::{ServerInvite, State as ServerInviteState};
pub use server_non_invite::{ServerNonInvite, State as ServerNonInviteState};
pub use timers::TimerConfig;

/// Whether the transport may lose messages; retransmit timers only run on `Unreliable`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reliability {
    /// UDP.
    Unreliable,
    /// TCP, TLS, WebSocket.
    Reliable,
}

/// What a machine wants its owner to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Put these bytes on the wire toward the transaction's peer (first send or a retransmission).
    Transmit(bytes::Bytes),
    /// The transaction failed for lack of an answer: Timer B or F (client: the TU must see a 408),
    /// Timer H (server INVITE: ACK for a non-2xx never came), or no ACK for a 2xx by Timer L.
    Timeout,
    /// The owner reported a transport failure (RFC 3261 §17.1.4 / §17.2.4); the TU must be told.
    TransportError,
    /// The machine is finished; the owner removes it from its table. Always the last output.
    Terminated,
}

/// What the owner should do with a message it showed to a machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Hand the message to the TU.
    PassUp,
    /// The transaction consumed it (typically a retransmission); the TU must not see it.
    Absorb,
}

/// Magic cookie that starts every RFC 3261 branch parameter (§8.1.1.7).
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// RFC 3261 §17.1.3 / §17.2.3 keys, built by the owner from parsed headers.
///
/// Use [`TransactionKey::Rfc3261`] when the top Via branch starts with [`MAGIC_COOKIE`]
/// (see [`TransactionKey::has_magic_cookie`]), [`TransactionKey::Rfc2543`] otherwise.
///
/// Methods on the server side (§17.2.3, §9.2):
/// * an ACK for a non-2xx final carries the INVITE's branch and belongs to the INVITE
///   server transaction, so build its key with method `"INVITE"`
///   ([`TransactionKey::matching_method`] does that mapping);
/// * a CANCEL carries the INVITE's branch too but is a transaction of its own: key it with
///   method `"CANCEL"`, and find the INVITE it cancels with
///   [`TransactionKey::with_method`]`("INVITE")`.
///
/// On the client side (§17.1.3) the method is the CSeq method of the response.
///
/// All fields compare as exact, case-sensitive strings. RFC 3261 wants the sent-by host
/// compared case-insensitively; an owner that cares lower-cases the host before building
/// the key. Branches are compared exactly, magic cookie included.
///
/// RFC 2543 ACKs carry the To tag of the server's response, not the INVITE's (usually
/// empty) one: look them up with the INVITE's To tag and check the response tag separately.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TransactionKey {
    /// Magic-cookie branch present: branch + sent-by + method.
    Rfc3261 {
        branch: String,
        sent_by: String,
        method: String,
    },
    /// RFC 2543 fallback: request-uri, to-tag, from-tag, call-id, cseq number, top via (as text), method.
    Rfc2543 {
        request_uri: String,
        from_tag: String,
        to_tag: String,
        call_id: String,
        cseq: u32,
        top_via: String,
        method: String,
    },
}

impl TransactionKey {
    /// Whether a branch was minted by an RFC 3261 element and so is unique on its own.
    pub fn has_magic_cookie(branch: &str) -> bool {
        branch.starts_with(MAGIC_COOKIE)
    }

    /// The method a request is matched under: ACK belongs to its INVITE's transaction.
    pub fn matching_method(method: &str) -> &str {
        if method == "ACK" {
            "INVITE"
        } else {
            method
        }
    }

    /// The same key with another method, e.g. the INVITE a CANCEL targets.
    pub fn with_method(&self, new_method: &str) -> Self {
        let mut key = self.clone();
        match &mut key {
            Self::Rfc3261 { method, .. } | Self::Rfc2543 { method, .. } => {
                *method = new_method.to_owned();
            }
        }
        key
    }

    pub fn method(&self) -> &str {
        match self {
            Self::Rfc3261 { method, .. } | Self::Rfc2543 { method, .. } => method,
        }
    }
}

/// Test-only clock driver shared by the machines' tests.
#[cfg(test)]
mod testing {
    use std::time::{Duration, Instant};

    use super::*;

    pub(super) trait Clocked {
        fn poll_output(&mut self) -> Option<Output>;
        fn poll_timeout(&self) -> Option<Instant>;
        fn handle_timeout(&mut self, now: Instant);
    }

    macro_rules! clocked {
        ($($machine:ty),*) => {$(
            impl Clocked for $machine {
                fn poll_output(&mut self) -> Option<Output> { <$machine>::poll_output(self) }
                fn poll_timeout(&self) -> Option<Instant> { <$machine>::poll_timeout(self) }
                fn handle_timeout(&mut self, now: Instant) { <$machine>::handle_timeout(self, now) }
            }
        )*};
    }
    clocked!(ClientInvite, ClientNonInvite, ServerInvite, ServerNonInvite);

    pub(super) fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    pub(super) fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn label(output: &Output) -> String {
        match output {
            Output::Transmit(b) => format!("tx {}", String::from_utf8_lossy(b)),
            Output::Timeout => "timeout".into(),
            Output::TransportError => "transport error".into(),
            Output::Terminated => "terminated".into(),
        }
    }

    /// Everything queued so far, e.g. `["tx ACK", "terminated"]`.
    pub(super) fn drain(m: &mut impl Clocked) -> Vec<String> {
        std::iter::from_fn(|| m.poll_output())
            .map(|o| label(&o))
            .collect()
    }

    /// Jumps from deadline to deadline up to `t0 + until`, stamping each output with the
    /// elapsed time, e.g. `["500ms tx INVITE", "32s timeout"]`.
    pub(super) fn run(m: &mut impl Clocked, t0: Instant, until: Duration) -> Vec<String> {
        assert_eq!(
            drain(m),
            Vec::<String>::new(),
            "drain before running the clock"
        );
        let mut log = Vec::new();
        while let Some(at) = m.poll_timeout().filter(|at| *at <= t0 + until) {
            m.handle_timeout(at);
            log.extend(drain(m).into_iter().map(|l| format!("{:?} {l}", at - t0)));
        }
        log
    }

    fn rfc3261(method: &str) -> TransactionKey {
        TransactionKey::Rfc3261 {
            branch: "z9hG4bK776asdhds".into(),
            sent_by: "pc33.atlanta.com".into(),
            method: TransactionKey::matching_method(method).into(),
        }
    }

    #[test]
    fn ack_joins_the_invite_transaction_and_cancel_has_its_own() {
        assert_eq!(rfc3261("ACK"), rfc3261("INVITE"));
        assert_ne!(rfc3261("CANCEL"), rfc3261("INVITE"));
        assert_eq!(rfc3261("CANCEL").with_method("INVITE"), rfc3261("INVITE"));
        assert_eq!(rfc3261("CANCEL").method(), "CANCEL");
        assert!(TransactionKey::has_magic_cookie("z9hG4bK776asdhds"));
        assert!(!TransactionKey::has_magic_cookie("776asdhds"));
    }
}
