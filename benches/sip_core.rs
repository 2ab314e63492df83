//! SIP core cost per message, measured in-process (no sockets): parse + validate, and the whole
//! core path (transaction, answer, response printing) for OPTIONS and a refused INVITE.
//! Prints figures; `make bench` runs it.

use sipbridge::config::{Profile, ProfileKind};
use sipbridge::sip::core::{CoreConfig, SipCore};
use sipbridge::sip::message;
use sipbridge::sip::transaction::TimerConfig;
use sipbridge::sip::{Peer, TransportKind};
use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

const INVITE: &str = "INVITE sip:+15551234567@gw.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-BRANCH;rport\r\nMax-Forwards: 70\r\n\
From: \"Alice\" <sip:alice@pbx.example.com>;tag=a1b2c3\r\nTo: <sip:+15551234567@gw.example.com>\r\n\
Call-ID: CALLID@pbx.example.com\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@192.0.2.10:5060>\r\n\
User-Agent: bench\r\nAllow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\nContent-Type: application/sdp\r\nContent-Length: 131\r\n\r\n\
v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n";

fn options(i: u64) -> Vec<u8> {
    format!(
        "OPTIONS sip:gw@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-{i};rport\r\nMax-Forwards: 70\r\n\
         From: <sip:mon@192.0.2.10>;tag={i}\r\nTo: <sip:gw@192.0.2.1>\r\nCall-ID: {i}@bench\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn report(name: &str, iterations: u64, elapsed: Duration) {
    let per = elapsed.as_secs_f64() * 1e6 / iterations as f64;
    println!("{name:<48} {per:>8.2} us/msg {:>10.0} msg/s (one core)", 1e6 / per);
}

fn main() {
    let iterations = 50_000u64;
    let invite = INVITE.replace("BRANCH", "1").replace("CALLID", "1").into_bytes();
    let start = Instant::now();
    for _ in 0..iterations {
        black_box(message::parse(black_box(&invite), TransportKind::Udp).is_ok());
    }
    report("parse + validate INVITE with SDP", iterations, start.elapsed());

    let profile = Profile {
        name: "trunk".into(),
        kind: ProfileKind::Trunk,
        host: Some("192.0.2.50".into()),
        port: 5060,
        transport: sipbridge::config::PeerTransport::Udp,
        register: false,
        username: None,
        auth_username: None,
        password: None,
        register_expires: 600,
        ping: false,
        ping_interval: Duration::from_secs(30),
        trusted_networks: vec!["192.0.2.50/32".parse().expect("net")],
        domain: None,
        aliases: vec![],
        min_expires: 60,
        max_expires: 3600,
        users: vec![],
        digest_algorithms: vec!["MD5".into()],
        max_calls: None,
        dial: Default::default(),
        outbound_proxy: None,
        srtp: Default::default(),
    };
    let config = CoreConfig { timers: TimerConfig::default(), product: "bench".into(), nonce_lifetime: Duration::from_secs(300) };
    let t0 = Instant::now();
    let mut core = SipCore::new(config, vec![profile], t0, SystemTime::now());
    let peer = Peer {
        transport: TransportKind::Udp,
        remote: "192.0.2.10:5060".parse().expect("addr"),
        local: "192.0.2.1:5060".parse().expect("addr"),
        connection: None,
    };
    let messages: Vec<Vec<u8>> = (0..iterations).map(options).collect();
    let start = Instant::now();
    for (i, bytes) in messages.iter().enumerate() {
        core.handle_inbound(bytes, peer, t0 + Duration::from_micros(i as u64));
        while let Some(transmit) = core.poll_transmit() {
            black_box(transmit);
        }
    }
    report("core: OPTIONS -> 200 (transaction + response)", iterations, start.elapsed());

    let invites: Vec<Vec<u8>> =
        (0..iterations).map(|i| INVITE.replace("BRANCH", &i.to_string()).replace("CALLID", &i.to_string()).into_bytes()).collect();
    let start = Instant::now();
    for (i, bytes) in invites.iter().enumerate() {
        core.handle_inbound(bytes, peer, t0 + Duration::from_micros(i as u64));
        while let Some(transmit) = core.poll_transmit() {
            black_box(transmit);
        }
    }
    report("core: untrusted INVITE -> 100 + 403", iterations, start.elapsed());
    let timers = Instant::now();
    core.handle_timeout(t0 + Duration::from_secs(1));
    println!("{:<48} {:>8.2} ms for {} live transactions", "core: one timer sweep", timers.elapsed().as_secs_f64() * 1e3, core.status(t0).server_transactions);
    routing_lookup();
}

/// What routing a call reads from the registrar with 10,000 phones registered: every binding (as
/// the status snapshot, which routing used before, copied them; it then also formatted each one)
/// against the dialled user's alone.
fn routing_lookup() {
    use sipbridge::sip::registrar::{ContactInput, ContactsInput, RegisterInput, Registrar, RegistrarPolicy};
    const PHONES: u32 = 10_000;
    let (mut registrar, now) = (Registrar::<u8>::new(RegistrarPolicy::default()), Instant::now());
    let aors: Vec<String> = (0..PHONES).map(|i| format!("sip:{i}@example.com")).collect();
    for (i, aor) in aors.iter().enumerate() {
        let uri = format!("sip:{i}@192.0.2.{}:5060", i % 250 + 1);
        let contact = ContactInput { raw: format!("<{uri}>"), uri, expires_param: None, q: None, instance: None };
        let input = RegisterInput { aor, contacts: ContactsInput::List(vec![contact]), expires_header: Some(3600), call_id: "bench", cseq: 1, source: 0, user_agent: None };
        registrar.register(input, now).expect("register");
    }
    let lookups = 200u32;
    let start = Instant::now();
    for i in 0..lookups {
        let prefix = format!("sip:{}@", i * 37 % PHONES);
        black_box(registrar.all(now).into_iter().filter(|(aor, _)| aor.starts_with(&prefix)).count());
    }
    let every = start.elapsed().as_secs_f64() * 1e6 / f64::from(lookups);
    let start = Instant::now();
    for i in 0..lookups {
        black_box(registrar.of_user(&(i * 37 % PHONES).to_string(), now).len());
    }
    let one = start.elapsed().as_secs_f64() * 1e6 / f64::from(lookups);
    println!("{:<48} {every:>8.1} us/call: every binding copied, then filtered", "routing a call, 10,000 phones registered");
    println!("{:<48} {one:>8.1} us/call: the dialled user's bindings ({:.0}x less)", "routing a call, 10,000 phones registered", every / one.max(1e-9));
}
