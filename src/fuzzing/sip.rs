//! SIP messages: the parser (as UDP and as TCP), the stream framer fed in two chunks, and the
//! core's whole `handle_inbound` path on a manual clock, as a UDP and as a TCP peer.

use crate::config::{LocalUser, Profile, ProfileKind, UserSecret};
use crate::sip::core::{CoreConfig, SipCore};
use crate::sip::message;
use crate::sip::transaction::TimerConfig;
use crate::sip::transport::framer::{Frame, FrameError, StreamFramer};
use crate::sip::{Peer, TransportKind};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

/// The gateway's default `sip.max_message_bytes`.
const MAX_MESSAGE: usize = 65_535;
/// Every this many inputs the clock jumps to the core's next deadline, so long timers (Timer J/H,
/// registrar expiry, nonce lifetime) fire even though each input only advances a few ms.
const JUMP_EVERY: u64 = 2_048;
const GATEWAY: &str = "127.0.0.1:5060";
/// A phone: not in any trusted network, must authenticate against the local domain.
const PHONE: &str = "192.0.2.1:5062";
/// The trunk, trusted by its source address.
const TRUNK: &str = "192.0.2.50:5060";

/// One long-lived core (local domain `example.com` with users alice and bob, a trunk trusted at
/// 192.0.2.50) and its manual clock.
pub struct SipHarness {
    core: SipCore,
    now: Instant,
    inputs: u64,
}

impl Default for SipHarness {
    fn default() -> Self {
        Self::new()
    }
}

impl SipHarness {
    pub fn new() -> SipHarness {
        let now = Instant::now();
        let config = CoreConfig { timers: TimerConfig::default(), product: "sipbridge-fuzz".into(), nonce_lifetime: Duration::from_secs(300) };
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut core = SipCore::new(config, profiles(), now, wall);
        drain(&mut core);
        SipHarness { core, now, inputs: 0 }
    }

    /// Advances the clock a few ms (to the core's next deadline every `JUMP_EVERY` inputs) and
    /// runs the timers that are due.
    fn tick(&mut self, data_len: usize) -> Instant {
        self.inputs += 1;
        self.now += Duration::from_millis(1 + (data_len % 7) as u64);
        if self.inputs % JUMP_EVERY == 0 {
            if let Some(deadline) = self.core.poll_timeout() {
                // Never more than an hour at a time, never backwards.
                self.now = self.now.max(deadline.min(self.now + Duration::from_secs(3_600)));
            }
        }
        run_timers(&mut self.core, self.now);
        self.now
    }
}

impl SipHarness {
    /// One message from a WebSocket flow (a phone's or the trunk's address; `flow` numbers the
    /// connection) through `handle_inbound`; returns what the core transmits in answer.
    pub(super) fn websocket_message(&mut self, data: &[u8], from_trunk: bool, flow: u64) -> Vec<bytes::Bytes> {
        let now = self.tick(data.len());
        let remote = if from_trunk { TRUNK } else { PHONE };
        let peer = Peer {
            transport: TransportKind::Ws,
            remote: SocketAddr::new(addr(remote).ip(), 40_000 + (flow % 20_000) as u16),
            local: addr(GATEWAY),
            connection: Some(flow),
        };
        self.core.handle_inbound(data, peer, now);
        let mut sent = Vec::new();
        while let Some(transmit) = self.core.poll_transmit() {
            check_transmit(&transmit.bytes);
            sent.push(transmit.bytes);
        }
        drain(&mut self.core);
        sent
    }
}

fn profile(name: &str, kind: ProfileKind) -> Profile {
    Profile::bare(name, kind)
}

fn profiles() -> Vec<Profile> {
    let mut local = profile("local", ProfileKind::Local);
    local.domain = Some("example.com".into());
    local.aliases = vec!["127.0.0.1".into()];
    local.users = vec![
        LocalUser { username: "alice".into(), secret: UserSecret::Password("wonderland".into()), profiles: vec![] },
        // HA1 = MD5("bob:example.com:builder")
        LocalUser { username: "bob".into(), secret: UserSecret::Ha1Md5("37593d991414f52c30246c60c7798431".into()), profiles: vec![] },
    ];
    let mut trunk = profile("trunk", ProfileKind::Trunk);
    trunk.host = Some("192.0.2.50".into());
    trunk.trusted_networks = vec!["192.0.2.50/32".parse().expect("a literal network")]; // ok: fuzz harness, never reached from the network; a panic here is the fuzzer's finding
    vec![local, trunk]
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("a literal address") // ok: fuzz harness, never reached from the network; a panic here is the fuzzer's finding
}

/// What the core transmits is never empty and starts with a valid status line or a method token.
fn check_transmit(bytes: &[u8]) {
    assert!(!bytes.is_empty(), "core produced an empty transmit");
    let head = || String::from_utf8_lossy(&bytes[..bytes.len().min(80)]).into_owned();
    if let Some(rest) = bytes.strip_prefix(b"SIP/2.0 ") {
        let status_ok = rest.len() >= 4 && rest[..3].iter().all(u8::is_ascii_digit) && rest[3] == b' ' && (b'1'..=b'6').contains(&rest[0]);
        assert!(status_ok, "bad status line in transmit: {:?}", head());
    } else {
        let method_len = bytes.iter().position(|b| *b == b' ').unwrap_or(0);
        assert!(method_len > 0 && bytes[..method_len].iter().all(u8::is_ascii_uppercase), "transmit is neither a response nor a request: {:?}", head());
    }
}

fn drain(core: &mut SipCore) {
    while let Some(transmit) = core.poll_transmit() {
        check_transmit(&transmit.bytes);
    }
    while core.poll_event().is_some() {}
    while core.take_admitted().is_some() {}
}

/// Runs every timer due at `now` (bounded, in case a deadline never moves).
fn run_timers(core: &mut SipCore, now: Instant) {
    for _ in 0..8 {
        match core.poll_timeout() {
            Some(deadline) if deadline <= now => {
                core.handle_timeout(now);
                drain(core);
            }
            _ => break,
        }
    }
}

fn check_frame(frame: &[u8], input_len: usize) {
    assert!(!frame.is_empty(), "framer produced an empty message frame");
    assert!(frame.len() <= input_len, "framer produced a frame longer than its input");
}

/// Pushes `data` into a framer in two chunks, parsing each frame as the stream driver does.
fn frame(data: &[u8], split: usize) {
    let mut framer = StreamFramer::new(MAX_MESSAGE);
    for chunk in [&data[..split], &data[split..]] {
        framer.push(chunk);
        loop {
            match framer.next_frame() {
                Ok(None) => break,
                Ok(Some(Frame::Ping)) => {}
                Ok(Some(Frame::Message(bytes))) => {
                    check_frame(&bytes, data.len());
                    let _ = message::parse(&bytes, TransportKind::Tcp);
                }
                // The driver closes the stream after these: stop feeding it.
                Err(FrameError::TooLarge) => return,
                Err(FrameError::BadLength(head)) => {
                    check_frame(&head, data.len());
                    let _ = message::parse(&head, TransportKind::Tcp);
                    return;
                }
            }
        }
    }
}

/// One input: parser, framer (split where the last byte says), then the core as a UDP peer
/// (twice: the retransmission path) and as a TCP peer on a fresh connection.
pub fn sip_message(harness: &mut SipHarness, data: &[u8]) {
    if data.len() > MAX_MESSAGE {
        return;
    }
    let selector = data.last().copied().unwrap_or(0);
    let _ = message::parse(data, TransportKind::Udp);
    let _ = message::parse(data, TransportKind::Tcp);
    frame(data, data.len() * usize::from(selector) / 255);

    let now = harness.tick(data.len());
    let udp_remote = if selector & 1 == 0 { PHONE } else { TRUNK };
    let tcp_remote = if selector & 2 == 0 { PHONE } else { TRUNK };
    let udp = Peer { transport: TransportKind::Udp, remote: addr(udp_remote), local: addr(GATEWAY), connection: None };
    let tcp = Peer {
        transport: TransportKind::Tcp,
        remote: SocketAddr::new(addr(tcp_remote).ip(), 40_000 + (harness.inputs % 20_000) as u16),
        local: addr(GATEWAY),
        connection: Some(harness.inputs),
    };
    let later = now + Duration::from_millis(1);
    let core = &mut harness.core;
    core.handle_inbound(data, udp, now);
    drain(core);
    core.handle_inbound(data, udp, later);
    drain(core);
    core.handle_inbound(data, tcp, later);
    drain(core);
    run_timers(core, later);
}
