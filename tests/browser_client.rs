//! sipbridge.js in a real page (headless Chromium, tests/browser/client.mjs) against the gateway's
//! `echo`: ICE servers merged with the page's own, codec preferences, a peer connection the
//! browser refuses to create, a hangup sent before the call's reply, and the keep-alive `ping`.

mod support;

use serde_json::json;
use std::process::Command;
use support::calls::{assert_tone, last_json_line, token};
use support::{Gateway, GatewayOptions};

#[test]
fn sipbridge_js_fits_real_pages() {
    let ice = "\n[[http.ice_servers]]\nurls = [\"turn:127.0.0.1:3478?transport=udp\"]\nshared_secret = \"page-test-secret-42\"\n";
    let gateway = Gateway::start(GatewayOptions { extra_http: ice.into(), ..Default::default() });
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/client.mjs");
    let output = Command::new("node")
        .arg(script)
        .arg(format!("http://127.0.0.1:{}", gateway.http_port))
        .arg(token("alice", &[]))
        .output()
        .expect("run the browser");
    let report = last_json_line(&String::from_utf8_lossy(&output.stdout));
    let log = gateway.log();
    assert_eq!(report["ok"], true, "{report:#}\n{}\n{log}", String::from_utf8_lossy(&output.stderr));

    let merge = report["merge"].as_array().cloned().unwrap_or_default();
    assert_eq!(merge.first(), Some(&json!({"urls": "stun:127.0.0.1:9", "username": null})), "the page's own server stays first: {report:#}");
    let turn_user = merge.get(1).and_then(|s| s["username"].as_str()).unwrap_or_default();
    assert!(merge.len() == 2 && turn_user.ends_with(":alice"), "then the gateway's TURN server with this login's credential: {report:#}");

    let mut offered: Vec<&str> = report["codecs"]["offered"].as_array().into_iter().flatten().filter_map(|c| c.as_str()).collect();
    offered.dedup();
    assert_eq!(offered, ["PCMU", "telephone-event"], "codecs: ['PCMU'] offers PCMU only, DTMF kept: {report:#}");
    assert_tone(&report["codecs"], "peakHz", 1000.0, &log);

    assert_eq!(report["badIceServer"]["threw"], serde_json::Value::Null, "call() does not throw: {report:#}");
    assert_eq!(report["badIceServer"]["ended"]["reason"], "failed", "the call ends with `ended`: {report:#}");

    let early = &report["hangupInFlight"];
    assert!(early["callId"].is_string(), "the gateway did reply: {report:#}");
    assert_eq!(early["probe"], "unknown_call", "the library hung the call up once it had its id: {report:#}\n{log}");
    assert_eq!(early["endedEvents"], 1, "one `ended`, from the hangup: {report:#}");
    let pong_ms = report["keepalive"]["pongMs"].as_f64();
    assert!(pong_ms.is_some_and(|ms| (0.0..3000.0).contains(&ms)), "a quiet connection pinged and got its pong: {report:#}");
    assert_eq!(report["keepalive"]["roundTripMs"].as_f64(), pong_ms, "the round trip is kept on the client: {report:#}");
    assert_eq!(report["errors"], json!([]), "no frame (e.g. a late candidate) drew an error: {report:#}");
}
