//! TURN as operators run it: coturn with `use-auth-secret`, and the gateway holding the same
//! secret in `[[http.ice_servers]]`. Chromium is told `iceTransportPolicy: "relay"`, so the only
//! way its media can flow is through a relay allocated with the credential minted in the login
//! reply. Calls go both ways through a sipp trunk that echoes RTP: the browser hears its own tone.

mod support;

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::calls::{assert_tone, chromium_calls, token, trunk_profile, EchoTrunk};
use support::{free_port, sipp, Gateway, GatewayOptions};

const TURN_SECRET: &str = "coturn-static-auth-secret-7f3a9c";

/// coturn on a free loopback port, as Debian ships it, with a relay range of its own.
struct Coturn {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Coturn {
    fn start() -> Coturn {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let relay_min = 40_000 + (u32::from(port) * 13 + std::process::id()) % 200 * 100;
        let child = Command::new("turnserver")
            .args(["--use-auth-secret", &format!("--static-auth-secret={TURN_SECRET}"), "--realm=sipbridge.test"])
            .args(["--allow-loopback-peers", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", "--no-cli"])
            .args(["--no-tls", "--no-dtls", "--no-tcp-relay", "--listening-port", &port.to_string()])
            .args(["--min-port", &relay_min.to_string(), "--max-port", &(relay_min + 99).to_string()])
            .arg(format!("--userdb={}", dir.path().join("turndb").display()))
            .arg(format!("--pidfile={}", dir.path().join("turnserver.pid").display()))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start turnserver (package coturn)");
        let mut coturn = Coturn { child, port, _dir: dir };
        coturn.wait_ready();
        coturn
    }

    /// Ready when it answers a STUN Binding request (RFC 5389), polled within 10 s.
    fn wait_ready(&mut self) {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
        let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
        request.extend_from_slice(b"sipbridge-ok");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buffer = [0u8; 512];
        while Instant::now() < deadline {
            if let Ok(Some(exit)) = self.child.try_wait() {
                panic!("turnserver exited with {exit}");
            }
            let _ = socket.send_to(&request, ("127.0.0.1", self.port));
            if let Ok((n, _)) = socket.recv_from(&mut buffer) {
                if n >= 20 && buffer[..2] == [0x01, 0x01] {
                    return;
                }
            }
        }
        panic!("turnserver never answered STUN on 127.0.0.1:{}", self.port);
    }

    /// The gateway's `[[http.ice_servers]]` for this server.
    fn ice_servers_config(&self) -> String {
        format!(
            "\n[[http.ice_servers]]\nurls = [\"turn:127.0.0.1:{}?transport=udp\"]\nshared_secret = \"{TURN_SECRET}\"\ncredential_lifetime_secs = 3600\n",
            self.port
        )
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[track_caller]
fn assert_relayed(report: &serde_json::Value, log: &str) {
    assert_eq!(report["selectedPair"]["local"], "relay", "the browser's media went through coturn: {report:#}\n{log}");
    assert!(!log.contains(TURN_SECRET), "the shared secret is never logged:\n{log}");
}

#[test]
fn browser_behind_a_relay_calls_the_trunk() {
    let coturn = Coturn::start();
    let trunk_port = free_port();
    let gateway = Gateway::start(GatewayOptions { profiles: vec![trunk_profile(trunk_port)], extra_http: coturn.ice_servers_config(), ..Default::default() });
    let trunk = EchoTrunk::start(trunk_port);
    let report = chromium_calls(&gateway, &token("alice", &["trunk"]), "+15551234567", &[("SIPBRIDGE_ICE_POLICY", "relay")]);
    let sipp = trunk.finish();
    let log = gateway.log();
    assert_eq!(report["ok"], true, "{report:#}\n{log}");
    println!("relay-only browser -> trunk: {} Hz, pair {}", report["peakHz"], report["selectedPair"]);
    assert_tone(&report, "peakHz", 1000.0, &log);
    assert_relayed(&report, &log);
    assert!(sipp.is_ok(), "{sipp:?}\n{log}");
}

#[test]
fn trunk_calls_a_browser_behind_a_relay() {
    let coturn = Coturn::start();
    let gateway = Gateway::start(GatewayOptions { profiles: vec![trunk_profile(free_port())], extra_http: coturn.ice_servers_config(), ..Default::default() });
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/answer.mjs");
    let mut browser = Command::new("node")
        .arg(script)
        .arg(format!("http://127.0.0.1:{}", gateway.http_port))
        .arg(token("alice", &[]))
        .env("SIPBRIDGE_ICE_POLICY", "relay")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the browser");
    let mut lines = BufReader::new(browser.stdout.take().expect("stdout")).lines();
    assert!(lines.by_ref().map_while(Result::ok).any(|line| line == "READY"), "the browser never logged in");
    let media_port = free_port().to_string();
    let run = sipp("call_to_browser_echo.xml", &format!("127.0.0.1:{}", gateway.sip_port), &["-t", "u1", "-rtp_echo", "-mp", &media_port]);
    let report = support::calls::last_json_line(&lines.map_while(Result::ok).collect::<Vec<_>>().join("\n"));
    let _ = browser.wait();
    let log = gateway.log();
    assert!(run.success(), "the trunk's call: {}\n{log}", run.describe());
    assert_eq!(report["ok"], true, "{report:#}\n{log}");
    println!("trunk -> relay-only browser: {} Hz, pair {}", report["peakHz"], report["selectedPair"]);
    assert_tone(&report, "peakHz", 440.0, &log);
    assert_relayed(&report, &log);
    assert_eq!(report["ended"]["reason"], "normal", "{report:#}");
}
