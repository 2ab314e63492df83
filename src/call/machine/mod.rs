//! `Call`: one call as a sans-IO state machine over its legs, for both directions.
//!
//! A call has one caller leg (who placed it: a SIP peer calling a browser user, or a browser
//! calling SIP) and one or more callee legs (every browser of the user rings; a call to SIP has
//! one). The first callee to answer wins; the others are cancelled with `AnsweredElsewhere`.
//!
//! The owner (a thin driver task) feeds what the legs report with `handle(LegEvent, now)` and the
//! clock with `handle_timeout(now)`, then carries out `poll_command()` on the named leg, records
//! `poll_event()`, and sleeps until `poll_timeout()`. Nothing here touches a socket, a channel or
//! the clock, and randomness (the glare back-off) comes from `CallConfig::seed`, so every flow
//! and race is tested on a manual clock (`tests`).
//!
//! The call never sees SDP, SIP status numbers or JSON: session descriptions are opaque
//! (`SessionDesc`), and every reason a leg or the call ends is an `EndReason`. Turning a reason
//! into a SIP status or a browser `hangup` reason happens in `mapping` and nowhere else.
//!
//! A leg that asks something needing an answer (a browser's `accept`, `hold`, `dtmf`,
//! `transfer`, `reclaim`) passes a `Tag`; the call answers every tag exactly once with
//! `LegAction::Reply`, even when the call ends first, so the driver never waits inline.

mod answered;
mod call;
pub mod driver;
mod events;
pub mod mapping;
mod reason;
mod setup;
mod timers;

pub use call::Call;
pub use events::{CallEnd, CallEvent, LegAction, LegCommand, LegEvent, LegInput};
pub use reason::{EndReason, HoldFailure, ReofferRefusal, RequestError};

use std::time::Duration;

/// A leg of one call: the caller is always `LegId(0)`, the callees follow in the order given to
/// `Call::new`. Small and `Copy` so drivers index their own leg table with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LegId(pub u8);

impl LegId {
    pub const CALLER: LegId = LegId(0);

    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// What kind of party is behind a leg: it decides how reasons read (`mapping`) and which side a
/// record names, never how the call behaves. A SIP-over-WebSocket leg or a leg on another node
/// would be one more kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LegKind {
    Sip,
    Browser,
}

/// A request id chosen by the driver (e.g. an index into its table of unanswered browser
/// requests); echoed back once in `LegAction::Reply`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tag(pub u64);

/// A session description as one leg produced it, for the other leg to use. The call only carries
/// it: what it holds (SDP text, or what the leg's media negotiated) is the legs' business.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionDesc(String);

impl SessionDesc {
    pub fn new(text: impl Into<String>) -> SessionDesc {
        SessionDesc(text.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// Only the size: descriptions may carry SDES keys, which must not reach logs.
impl std::fmt::Debug for SessionDesc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SessionDesc({} bytes)", self.0.len())
    }
}

/// The limits a call runs under (`[calls]` and `[media]` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallConfig {
    /// Callees ring this long before the call ends as `NoAnswer`. `None` leaves it to the
    /// callee (a SIP leg's own timer ends in a 408, `Unavailable`), as calls to SIP did before.
    pub ring_timeout: Option<Duration>,
    /// An answered call ends as `MaxDuration` after this long.
    pub max_duration: Duration,
    /// An answered leg whose connection dropped may be reclaimed this long; zero ends the call
    /// at once.
    pub reclaim_grace: Duration,
    /// `[media] rtp_timeout_secs`: silence that ends an answered call.
    pub rtp_timeout: Duration,
    /// `[media] rtp_hold_timeout_secs`: the same while either side holds, or a hold is under way.
    pub rtp_hold_timeout: Duration,
    /// After `shutdown`, answered calls go on this long (`[calls] drain_secs`).
    pub drain: Duration,
    /// Seeds the glare back-off (RFC 3261 §14.1); drivers pass a random number.
    pub seed: u64,
}

impl Default for CallConfig {
    fn default() -> Self {
        CallConfig {
            ring_timeout: Some(Duration::from_secs(60)),
            max_duration: Duration::from_secs(4 * 3_600),
            reclaim_grace: Duration::from_secs(30),
            rtp_timeout: Duration::from_secs(30),
            rtp_hold_timeout: Duration::from_secs(3_600),
            drain: Duration::from_secs(60),
            seed: 0,
        }
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_answered;
#[cfg(test)]
mod tests_races;
#[cfg(test)]
mod tests_mapping;
#[cfg(test)]
mod tests_driver;
#[cfg(test)]
mod tests_fuzz;
