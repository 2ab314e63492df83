//! Bad input and overload: a flood, oversized and unframeable messages, and a stalled stream never
//! stop the gateway from answering everyone else. Plus peer liveness by OPTIONS, and IPv6.

mod support;

use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::time::{Duration, Instant};
use support::{sipp, sipp_available, status_code, Gateway, GatewayOptions};

fn options(transport: &str, port: u16, id: &str) -> Vec<u8> {
    format!(
        "OPTIONS sip:gw@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/{transport} 127.0.0.1:{port};branch=z9hG4bK-{id};rport\r\nMax-Forwards: 70\r\n\
         From: <sip:probe@127.0.0.1>;tag=1\r\nTo: <sip:gw@127.0.0.1>\r\nCall-ID: {id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn ask(socket: &UdpSocket, to: std::net::SocketAddr, id: &str) -> Option<(u16, Duration)> {
    let port = socket.local_addr().ok()?.port();
    let sent = Instant::now();
    socket.send_to(&options("UDP", port, id), to).ok()?;
    socket.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut buffer = [0u8; 4096];
    loop {
        let n = socket.recv(&mut buffer).ok()?;
        let text = String::from_utf8_lossy(&buffer[..n]);
        if text.contains(id) {
            return status_code(&text).map(|c| (c, sent.elapsed()));
        }
    }
}

#[test]
fn floods_and_garbage_do_not_stall_other_sources() {
    // A low per-source limit, so the flood trips it while the bystander stays within it.
    let gateway = Gateway::start(GatewayOptions {
        extra_sip: "rate_limit_per_second = 50\nrate_limit_burst = 100\nmax_message_bytes = 4096\n".into(),
        ..Default::default()
    });
    let bystander = UdpSocket::bind("127.0.0.2:0").expect("second loopback address");
    // A stalled TCP stream: headers promise a body that never comes.
    let mut stalled = TcpStream::connect(gateway.sip_addr()).expect("connect");
    stalled.write_all(b"INVITE sip:a@127.0.0.1 SIP/2.0\r\nContent-Length: 2000\r\n\r\npartial").expect("write");
    // An oversized stream message closes its connection.
    let mut oversized = TcpStream::connect(gateway.sip_addr()).expect("connect");
    let _ = oversized.write_all(&vec![b'B'; 10_000]);
    // Both streams are accepted before the flood, which would otherwise refuse new connections
    // from the flooding address.
    gateway.wait_status("streams accepted", Duration::from_secs(5), |s| {
        s["transport"]["connections_accepted"].as_u64().is_some_and(|n| n >= 2) && s["transport"]["oversized"].as_u64().is_some_and(|n| n >= 1)
    });
    let attacker = UdpSocket::bind("127.0.0.1:0").expect("udp");
    attacker.send_to(&vec![b'A'; 6000], gateway.sip_addr()).expect("send");
    // 3000 datagrams of garbage and near-valid messages from one source.
    let sample = std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/rfc4475/wsinv.dat")).expect("corpus");
    for i in 0..3000u32 {
        let mut bytes = sample.clone();
        let at = (i as usize * 7919) % bytes.len();
        bytes[at] = (i % 251) as u8;
        bytes.truncate(bytes.len() - (i as usize % 50));
        let _ = attacker.send_to(&bytes, gateway.sip_addr());
    }
    let answered = ask(&bystander, gateway.sip_addr(), "bystander-during-flood");
    assert!(matches!(answered, Some((200, _))), "bystander answered during the flood: {answered:?}\n{}", gateway.log());
    let (_, latency) = answered.unwrap_or((0, Duration::ZERO));
    let status = gateway.wait_status("flood counted", Duration::from_secs(5), |s| s["transport"]["rate_limited"].as_u64().is_some_and(|n| n > 0));
    assert!(status["transport"]["oversized"].as_u64().is_some_and(|n| n >= 2), "{status:#}");
    println!("bystander answered in {latency:?}; rate limited {}; oversized {}", status["transport"]["rate_limited"], status["transport"]["oversized"]);
    // The process is alive and still answers on TCP too, for a source that did not flood.
    let mut tcp = connect_from("127.0.0.3", gateway.sip_addr());
    tcp.write_all(&options("TCP", 5060, "tcp-after-flood")).expect("write");
    tcp.set_read_timeout(Some(Duration::from_secs(3))).expect("timeout");
    let mut buffer = [0u8; 4096];
    let n = std::io::Read::read(&mut tcp, &mut buffer).expect("read");
    assert_eq!(status_code(&String::from_utf8_lossy(&buffer[..n])), Some(200));
    drop(stalled);
}

/// A TCP connection from a chosen loopback address (std cannot bind before connecting).
fn connect_from(local: &str, to: std::net::SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket.bind(&format!("{local}:0").parse::<std::net::SocketAddr>().expect("addr").into()).expect("bind");
    socket.connect(&to.into()).expect("connect");
    socket.into()
}

#[test]
fn answers_over_ipv6() {
    let sip = support::free_port();
    let gateway = Gateway::start(GatewayOptions {
        extra_sip: format!("[[sip.listen]]\ntransport = \"udp\"\naddress = \"[::1]:{sip}\"\n[[sip.listen]]\ntransport = \"tcp\"\naddress = \"[::1]:{sip}\"\n"),
        ..Default::default()
    });
    let socket = UdpSocket::bind("[::1]:0").expect("IPv6 loopback");
    let answer = ask(&socket, format!("[::1]:{sip}").parse().expect("addr"), "over-ipv6");
    assert!(matches!(answer, Some((200, _))), "{answer:?}\n{}", gateway.log());
    let mut tcp = TcpStream::connect(format!("[::1]:{sip}")).expect("connect v6");
    tcp.write_all(&options("TCP", 5060, "over-ipv6-tcp")).expect("write");
    tcp.set_read_timeout(Some(Duration::from_secs(3))).expect("timeout");
    let mut buffer = [0u8; 4096];
    let n = std::io::Read::read(&mut tcp, &mut buffer).expect("read");
    assert_eq!(status_code(&String::from_utf8_lossy(&buffer[..n])), Some(200));
}

#[test]
fn options_ping_marks_a_trunk_up_then_down() {
    sipp_available();
    let trunk_port = support::free_port();
    let profile = format!(
        "kind = \"trunk\"\nhost = \"127.0.0.1\"\nport = {trunk_port}\nping = true\nping_interval_secs = 1\n\
         trusted_addresses = [\"127.0.0.1\"]\n"
    );
    let trunk = std::thread::spawn(move || sipp("options_responder.xml", "", &["-t", "u1", "-p", &trunk_port.to_string()]));
    std::thread::sleep(Duration::from_millis(500));
    // T1 = 50 ms: an unanswered ping times out after 64*T1 = 3.2 s.
    let gateway = Gateway::start(GatewayOptions {
        profiles: vec![("trunk.toml".into(), profile)],
        extra_sip: "t1_ms = 50\nt2_ms = 400\n".into(),
        ..Default::default()
    });
    let up = gateway.wait_status("trunk up", Duration::from_secs(5), |s| s["upstreams"][0]["peer_status"] == "up");
    assert!(up["upstreams"][0]["rtt_ms"].as_u64().is_some(), "{up:#}");
    let run = trunk.join().expect("sipp thread");
    assert!(run.success(), "{}", run.describe());
    // The trunk is gone: the next ping goes unanswered and the profile is marked down.
    gateway.wait_status("trunk down", Duration::from_secs(8), |s| s["upstreams"][0]["peer_status"] == "down");
    let (code, metrics) = support::http_get(gateway.http_port, "/metrics", Some(support::API_TOKEN)).expect("metrics");
    assert_eq!(code, 200);
    assert!(metrics.contains("sipbridge_peer_up{profile=\"trunk\"} 0"), "{metrics}");
    let (code, _) = support::http_get(gateway.http_port, "/metrics", None).expect("metrics");
    assert_eq!(code, 401, "metrics need a token");
}
