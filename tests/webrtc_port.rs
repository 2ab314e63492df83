//! The shared WebRTC port under hostile traffic: while a browser's echo call runs through a
//! worker's one port, a stranger sends garbage, DTLS, SRTP-looking packets and STUN naming an
//! unknown ufrag to that same port. The call's audio must be unaffected, nothing may panic, and
//! every kind of drop must be counted in /metrics.

mod support;

use std::net::UdpSocket;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{free_port_pair, http_get, Gateway, GatewayOptions, API_TOKEN, JWT_SECRET};

fn token() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let claims = sipbridge::signaling::jwt::Claims { sub: "alice".into(), exp: now + 600, nbf: None, iat: Some(now), profiles: vec![] };
    sipbridge::signaling::jwt::sign(&claims, JWT_SECRET.as_bytes())
}

fn stun_with_unknown_ufrag() -> Vec<u8> {
    let username = b"nosuchufrag:stranger";
    let mut body = vec![0x00, 0x06, 0x00, username.len() as u8];
    body.extend_from_slice(username);
    while body.len() % 4 != 0 {
        body.push(0);
    }
    let mut message = vec![0x00, 0x01, 0x00, body.len() as u8, 0x21, 0x12, 0xA4, 0x42];
    message.extend_from_slice(&[9; 12]);
    message.extend_from_slice(&body);
    message
}

fn hostile_datagrams() -> Vec<Vec<u8>> {
    let mut dtls_hello = vec![0x16, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x40, 0x01];
    dtls_hello.resize(80, 0x33);
    let mut srtp = vec![0x80, 111, 0x12, 0x34, 0, 0, 0x10, 0, 0xde, 0xad, 0xbe, 0xef];
    srtp.resize(120, 0x5a);
    vec![vec![0xff; 60], dtls_hello, srtp, stun_with_unknown_ufrag(), vec![], vec![0x00, 0x01]]
}

fn metric(text: &str, reason: &str) -> u64 {
    let prefix = format!("sipbridge_webrtc_dropped_total{{reason=\"{reason}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

#[test]
fn strangers_on_the_shared_port_neither_reach_nor_disturb_a_call() {
    let webrtc_port = free_port_pair();
    let gateway = Gateway::start(GatewayOptions { extra_media: format!("workers = 1\nwebrtc_port = {webrtc_port}\n"), ..Default::default() });
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicU64::new(0));
    let attacker = {
        let (stop, rounds) = (Arc::clone(&stop), Arc::clone(&rounds));
        std::thread::spawn(move || {
            let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
            let started = Instant::now();
            // Bounded: at most 60 s or 3,000 rounds, whichever comes first.
            while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(60) && rounds.load(Ordering::Relaxed) < 3_000 {
                for datagram in hostile_datagrams() {
                    let _ = socket.send_to(&datagram, ("127.0.0.1", webrtc_port));
                }
                rounds.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/echo.mjs");
    let output = Command::new("node").arg(&script).arg(format!("http://127.0.0.1:{}", gateway.http_port)).arg(token()).arg("").output().expect("run node");
    stop.store(true, Ordering::Relaxed);
    attacker.join().expect("attacker thread");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or_default();
    let result: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("no result from the browser:\n{stdout}\n{}", gateway.log()));
    assert_eq!(result["ok"], true, "{result:#}\n{}", gateway.log());
    let peak = result["peakHz"].as_f64().unwrap_or(0.0);
    assert!((peak - 1000.0).abs() <= 20.0, "the echo kept its tone at {peak} Hz under hostile traffic: {result:#}");
    let remote = result["selectedPair"]["remoteAddress"].as_str().unwrap_or_default();
    assert!(remote.ends_with(&format!(":{webrtc_port}")), "the call's media used the worker's shared port {webrtc_port}: {result:#}");
    let sent = rounds.load(Ordering::Relaxed);
    assert!(sent >= 10, "the stranger sent throughout the call ({sent} rounds)");
    let (status, metrics) = http_get(gateway.http_port, "/metrics", Some(API_TOKEN)).expect("metrics");
    assert_eq!(status, 200, "{metrics}");
    // Garbage, DTLS and SRTP from a 5-tuple no leg uses, the empty and the short datagram.
    assert!(metric(&metrics, "unknown_flow") >= 4 * sent, "{metrics}");
    assert!(metric(&metrics, "unknown_ufrag") >= sent, "{metrics}");
    assert!(!gateway.log().contains("panicked"), "{}", gateway.log());
    let (health, _) = http_get(gateway.http_port, "/healthz", None).expect("healthz");
    assert_eq!(health, 200);
}
