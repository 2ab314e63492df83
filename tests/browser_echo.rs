//! The echo test in a real browser: headless Chromium (fake mic playing a 1 kHz WAV) logs in with
//! a token, calls `echo` with sipbridge.js, and measures the returned audio with an AnalyserNode.
//! Once straight through the media engine (Opus passthrough), once through PCMU transcoding with
//! the gateway an ICE-lite agent (the browser does all the checks and nominates).

mod support;

use std::process::Command;
use support::{Gateway, GatewayOptions, JWT_SECRET};

fn token() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let claims = sipbridge::signaling::jwt::Claims { sub: "alice".into(), exp: now + 600, nbf: None, iat: Some(now), profiles: vec![] };
    sipbridge::signaling::jwt::sign(&claims, JWT_SECRET.as_bytes())
}

fn echo(gateway: &Gateway, codec: Option<&str>) -> serde_json::Value {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/echo.mjs");
    assert!(std::path::Path::new("/usr/bin/chromium").exists(), "chromium is not installed: `make test` installs it");
    let output = Command::new("node")
        .arg(&script)
        .arg(format!("http://127.0.0.1:{}", gateway.http_port))
        .arg(token())
        .arg(codec.unwrap_or(""))
        .output()
        .expect("run node (make test installs playwright-core in tests/browser)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|_| panic!("no result from the browser:\n{stdout}\n{}\n{}", String::from_utf8_lossy(&output.stderr), gateway.log()))
}

#[test]
fn echo_returns_the_tone_through_the_media_engine() {
    let gateway = Gateway::start(GatewayOptions::default());
    let result = echo(&gateway, None);
    assert_eq!(result["ok"], true, "{result:#}\n{}", gateway.log());
    let peak = result["peakHz"].as_f64().unwrap_or(0.0);
    println!("echo (passthrough, {}): peak {peak:.1} Hz at {} dB", result["codec"], result["peakDb"]);
    assert!((peak - 1000.0).abs() <= 20.0, "peak at {peak} Hz: {result:#}");
    assert!(result["errorsSeen"].as_u64().is_some_and(|n| n >= 1), "bad frames mid-call got errors, and the tone above was measured after them: {result:#}");
}

#[test]
fn echo_through_pcmu_transcoding_returns_the_tone() {
    let gateway = Gateway::start(GatewayOptions { extra_media: "ice_lite = true\n".into(), ..Default::default() });
    let result = echo(&gateway, Some("pcmu"));
    assert_eq!(result["ok"], true, "{result:#}\n{}", gateway.log());
    let peak = result["peakHz"].as_f64().unwrap_or(0.0);
    println!("echo (Opus -> PCMU -> Opus, {}): peak {peak:.1} Hz at {} dB", result["codec"], result["peakDb"]);
    assert!((peak - 1000.0).abs() <= 20.0, "peak at {peak} Hz: {result:#}");
    assert!(gateway.log().contains("transcoding=true"), "the loop went through a transcoder");
}

