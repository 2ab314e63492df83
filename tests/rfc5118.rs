//! RFC 5118's IPv6 torture messages (tests/data/rfc5118) against a running gateway over TCP and
//! UDP: the invalid ones get 400 and are never routed, the valid ones are handled as any other
//! request (an answer that is not a refusal of the message itself). Over UDP the answer goes to
//! the message's own Via, so UDP is judged by the gateway's response counters.

mod support;

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use support::{Gateway, GatewayOptions};

/// Statuses that refuse a message itself rather than answer what it asks.
const REFUSALS: &[u16] = &[400, 406, 415, 416, 420, 501, 505];

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/rfc5118")
}

/// (file, section, expected status: None for "handled").
fn index() -> Vec<(String, String, Option<u16>)> {
    let text = std::fs::read_to_string(corpus_dir().join("INDEX.tsv")).expect("INDEX.tsv");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let fields: Vec<&str> = l.split('\t').collect();
            (format!("{}.dat", fields[0]), fields[1].to_string(), fields[2].parse().ok())
        })
        .collect()
}

fn judge(expected: Option<u16>, answer: Option<u16>) -> bool {
    match (expected, answer) {
        (Some(status), Some(code)) => status == code,
        (None, Some(code)) => !REFUSALS.contains(&code),
        (_, None) => false,
    }
}

/// The first final answer on a fresh connection (1xx skipped).
fn over_tcp(gateway: &Gateway, bytes: &[u8]) -> Option<u16> {
    let mut stream = TcpStream::connect(gateway.sip_addr()).expect("connect");
    stream.write_all(bytes).expect("write");
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&received).into_owned();
        let answer = text.split("SIP/2.0 ").skip(1).filter_map(|r| r.get(..3)?.parse::<u16>().ok()).find(|c| *c >= 200);
        if answer.is_some() || Instant::now() >= deadline {
            return answer;
        }
        stream.set_read_timeout(Some(deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(10)))).expect("timeout");
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return None,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
        }
    }
}

#[test]
fn rfc5118_ipv6_messages_get_400_or_normal_handling() {
    let cases = index();
    assert!(cases.len() >= 12, "the RFC's twelve messages at least");
    // Short timers end each transaction before the next message, so files sharing a branch are
    // judged on their own rather than as retransmissions.
    let gateway = Gateway::start(GatewayOptions { extra_sip: "t1_ms = 5\nt2_ms = 20\nt4_ms = 50\n".into(), ..Default::default() });
    let udp = UdpSocket::bind("127.0.0.1:0").expect("udp");
    let mut failures = Vec::new();
    println!("\n{:<32} {:<5} {:<9} {:<5} {:<5}", "message", "§", "expected", "TCP", "UDP");
    for (file, section, expected) in &cases {
        let bytes = std::fs::read(corpus_dir().join(file)).expect("corpus file");
        let tcp = over_tcp(&gateway, &bytes);
        std::thread::sleep(Duration::from_millis(350));
        let udp_answer = support::answer_to_datagram(&gateway, &udp, &bytes);
        let shown = |a: Option<u16>| a.map_or("-".to_string(), |c| c.to_string());
        let wanted = expected.map_or("handled".to_string(), |s| s.to_string());
        println!("{file:<32} {section:<5} {wanted:<9} {:<5} {:<5}", shown(tcp), shown(udp_answer));
        if !judge(*expected, tcp) || !judge(*expected, udp_answer) {
            failures.push(format!("{file}: expected {wanted}, TCP {}, UDP {}", shown(tcp), shown(udp_answer)));
        }
    }
    assert!(failures.is_empty(), "{}\n{}", failures.join("\n"), gateway.log());
    let log = gateway.log();
    assert!(!log.contains("panicked"), "{log}");
}
