//! The softphone page (web/phone.html) in headless Chromium, used like a person would: a wrong
//! password shows an error, the right one connects, `echo` is called, held, resumed, hung up.
//! A screenshot is kept in $CARGO_TARGET_DIR/test-artifacts/.

mod support;

use std::process::Command;
use support::{Gateway, GatewayOptions, ALICE_PASSWORD};

#[test]
fn softphone_logs_in_calls_holds_and_hangs_up() {
    let gateway = Gateway::start(GatewayOptions::default());
    let artifacts = std::path::PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into())).join("test-artifacts");
    std::fs::create_dir_all(&artifacts).expect("artifacts dir");
    let screenshot = artifacts.join("phone-in-call.png");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/phone.mjs");
    let output = Command::new("node")
        .arg(script)
        .arg(format!("http://127.0.0.1:{}", gateway.http_port))
        .args(["alice", ALICE_PASSWORD])
        .arg(&screenshot)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or_default();
    let steps: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("{stdout}\n{}", String::from_utf8_lossy(&output.stderr)));
    assert_eq!(steps["ok"], true, "{steps:#}\n{}", gateway.log());
    assert!(steps["badLogin"].as_str().is_some_and(|e| e.contains("login_failed")), "a clear message for a wrong password: {steps:#}");
    assert_eq!(steps["connected"], "connected as alice");
    assert_eq!(steps["inCall"], "in call");
    assert!(steps["timer"].as_str().is_some_and(|t| t != "0:00"), "the call timer runs: {steps:#}");
    assert_eq!(steps["held"], "Resume");
    assert_eq!(steps["ended"], "call ended (local_hangup)");
    assert!(screenshot.exists());
}
