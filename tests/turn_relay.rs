//! TURN as operators run it: coturn with `use-auth-secret`, and the gateway holding the same
//! secret in `[[http.ice_servers]]`. Chromium is told `iceTransportPolicy: "relay"`, so the only
//! way its media can flow is through a relay allocated with the credential minted in the login
//! reply. Calls go both ways through a sipp trunk that echoes RTP: the browser hears its own tone.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use support::calls::{assert_tone, chromium_calls, token, trunk_profile, EchoTrunk};
use support::coturn::{Coturn, TURN_SECRET};
use support::{free_port, sipp, Gateway, GatewayOptions};

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
    let media_port = support::free_sipp_media_port().to_string();
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
