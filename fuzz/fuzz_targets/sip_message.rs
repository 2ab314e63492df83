//! Fuzz target for the inbound SIP message path.
//!
//! Every input goes through:
//!   1. `message::parse` as a UDP datagram and as a TCP frame;
//!   2. a `StreamFramer`, pushed in two chunks split at a position taken from the input, with every
//!      frame (and the header section of an unframeable message, as the stream driver does) parsed;
//!   3. one long-lived `SipCore` (local domain + trusted trunk), as a UDP and as a TCP peer, with a
//!      manual clock advanced a few ms per input so transaction timers, registrar expiry and digest
//!      nonce housekeeping run as well.
//!
//! Nothing is assumed about the results except that nothing panics, plus a few true invariants on
//! what the core puts on the wire.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sipbridge::config::{LocalUser, PeerTransport, Profile, ProfileKind, UserSecret};
use sipbridge::sip::core::{CoreConfig, SipCore};
use sipbridge::sip::message;
use sipbridge::sip::transaction::TimerConfig;
use sipbridge::sip::transport::framer::{Frame, FrameError, StreamFramer};
use sipbridge::sip::{Peer, TransportKind};
use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

/// The gateway's default `sip.max_message_bytes`.
const MAX_MESSAGE: usize = 65_535;
/// Every this many inputs the clock jumps to the core's next deadline, so long timers (Timer J/H,
/// registrar expiry, nonce lifetime) fire even though each input only advances a few ms.
const JUMP_EVERY: u64 = 2_048;

const GATEWAY: &str = "127.0.0.1:5060";
/// A phone: not in any trusted network, must authenticate against the local domain.
const PHONE: &str = "192.0.2.1:5062";
/// The trunk's address, trusted by source address.
const TRUNK: &str = "192.0.2.50:5060";

struct Harness {
    core: SipCore,
    t0: Instant,
    now: Instant,
    inputs: u64,
}

fn profile(name: &str, kind: ProfileKind) -> Profile {
    Profile {
        name: name.into(),
        kind,
        host: None,
        port: 5060,
        transport: PeerTransport::Udp,
        register: false,
        username: None,
        auth_username: None,
        password: None,
        register_expires: 600,
        ping: false,
        ping_interval: Duration::from_secs(30),
        trusted_networks: vec![],
        domain: None,
        aliases: vec![],
        min_expires: 60,
        max_expires: 3600,
        users: vec![],
        digest_algorithms: vec!["SHA-256".into(), "MD5".into()],
    }
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
    trunk.trusted_networks = vec!["192.0.2.50/32".parse().expect("net")];
    vec![local, trunk]
}

fn harness() -> &'static Mutex<Harness> {
    static HARNESS: OnceLock<Mutex<Harness>> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let t0 = Instant::now();
        let config = CoreConfig {
            timers: TimerConfig::default(),
            product: "sipbridge-fuzz".into(),
            nonce_lifetime: Duration::from_secs(300),
        };
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut core = SipCore::new(config, profiles(), t0, wall);
        drain(&mut core);
        Mutex::new(Harness { core, t0, now: t0, inputs: 0 })
    })
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("addr")
}

/// True invariants of anything the core transmits: not empty, and either a status line
/// `SIP/2.0 NNN ` with a valid status code, or a request line starting with a method token.
fn check_transmit(bytes: &[u8]) {
    assert!(!bytes.is_empty(), "core produced an empty transmit");
    if let Some(rest) = bytes.strip_prefix(b"SIP/2.0 ") {
        assert!(
            rest.len() >= 4 && rest[..3].iter().all(u8::is_ascii_digit) && rest[3] == b' ' && (b'1'..=b'6').contains(&rest[0]),
            "bad status line in transmit: {:?}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(80)])
        );
    } else {
        let method_len = bytes.iter().position(|b| *b == b' ').unwrap_or(0);
        assert!(
            method_len > 0 && bytes[..method_len].iter().all(u8::is_ascii_uppercase),
            "transmit is neither a response nor a request: {:?}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(80)])
        );
    }
}

fn drain(core: &mut SipCore) {
    while let Some(transmit) = core.poll_transmit() {
        check_transmit(&transmit.bytes);
    }
    while core.poll_event().is_some() {}
}

/// Runs every timer that is due at `now` (bounded, in case a deadline never moves).
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

fn parse_both(bytes: &[u8]) {
    let _ = message::parse(bytes, TransportKind::Udp);
    let _ = message::parse(bytes, TransportKind::Tcp);
}

fn check_frame(frame: &[u8], input_len: usize) {
    assert!(!frame.is_empty(), "framer produced an empty message frame");
    assert!(frame.len() <= input_len, "framer produced a frame longer than its input");
}

/// Pushes `data` into a framer in two chunks, parsing each frame the way the stream driver does.
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
                // The stream is closed after these: stop feeding it.
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

fuzz_target!(|data: &[u8]| {
    if data.len() > MAX_MESSAGE {
        return;
    }
    let selector = data.last().copied().unwrap_or(0);

    // (a) The parser on its own, for both transport kinds.
    parse_both(data);

    // (b) The stream framer, split at a position chosen by the last byte.
    let split = data.len() * usize::from(selector) / 255;
    frame(data, split);

    // (c) One long-lived core.
    let mut guard = harness().lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let h = &mut *guard;
    h.inputs += 1;
    h.now += Duration::from_millis(1 + (data.len() % 7) as u64);
    if h.inputs % JUMP_EVERY == 0 {
        if let Some(deadline) = h.core.poll_timeout() {
            // Never jump more than an hour at a time, nor backwards.
            let cap = h.now + Duration::from_secs(3_600);
            h.now = h.now.max(deadline.min(cap));
        }
    }
    let now = h.now;
    debug_assert!(now >= h.t0);
    run_timers(&mut h.core, now);

    let udp_remote = if selector & 1 == 0 { PHONE } else { TRUNK };
    let tcp_remote = if selector & 2 == 0 { PHONE } else { TRUNK };
    let udp = Peer { transport: TransportKind::Udp, remote: addr(udp_remote), local: addr(GATEWAY), connection: None };
    let tcp = Peer {
        transport: TransportKind::Tcp,
        // A fresh ephemeral port per input, as a new connection would have.
        remote: SocketAddr::new(addr(tcp_remote).ip(), 40_000 + (h.inputs % 20_000) as u16),
        local: addr(GATEWAY),
        connection: Some(h.inputs),
    };

    h.core.handle_inbound(data, udp, now);
    drain(&mut h.core);
    // The same bytes again a moment later: a UDP retransmission hits the server transaction.
    h.core.handle_inbound(data, udp, now + Duration::from_millis(1));
    drain(&mut h.core);
    h.core.handle_inbound(data, tcp, now + Duration::from_millis(1));
    drain(&mut h.core);
    run_timers(&mut h.core, now + Duration::from_millis(1));
});
