//! HTTPS and WSS served by the gateway itself (`[http.tls]`). Headless Chromium loads the softphone
//! over https://, its sipbridge.js connects over wss://, calls `echo` and hears the 1 kHz tone
//! (measured by frequency). With the self-signed certificate the SIP TLS listener also uses; and
//! with certificate files that are swapped while a call is up: after SIGHUP the call goes on (the
//! tone is heard again, the WebSocket still open) and new connections get the new certificate.
//! The console's session cookie is marked Secure on HTTPS. Firefox ESR loads the softphone page
//! itself over https:// (its own login, the Call button) and hears the echo over wss://, in a
//! browser made to lack setSinkId: the speaker choice says so instead of failing.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::browser::{artifacts_dir, run_script, Browser};
use support::{Gateway, GatewayOptions, ALICE_PASSWORD, JWT_SECRET};

fn token() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let claims = sipbridge::signaling::jwt::Claims { sub: "alice".into(), exp: now + 600, nbf: None, iat: Some(now), profiles: vec![] };
    sipbridge::signaling::jwt::sign(&claims, JWT_SECRET.as_bytes())
}

fn echo_script(gateway: &Gateway, mode: &str) -> Command {
    assert!(Path::new("/usr/bin/chromium").exists(), "chromium is not installed: `make test` installs it");
    let mut command = Command::new("node");
    command
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/echo.mjs"))
        .arg(format!("https://localhost:{}", gateway.http_port))
        .arg(token())
        .args(["", "echo", mode]);
    command
}

fn result_of(stdout: &str, gateway: &Gateway) -> serde_json::Value {
    let line = stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|_| panic!("no result from the browser:\n{stdout}\n{}", gateway.log()))
}

/// The certificate (PEM) a new TLS connection to `port` is given, and what an HTTP request sent
/// over it answers (the request should say `Connection: close`). Bounded: 20 s.
fn tls_exchange(port: u16, request: &str) -> (String, String) {
    let mut command = Command::new("openssl");
    command.args(["s_client", "-connect", &format!("127.0.0.1:{port}"), "-servername", "localhost", "-showcerts"]);
    if !request.is_empty() {
        // Wait for the answer (the server closes) rather than leaving at the end of the request.
        command.arg("-ign_eof");
    }
    let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("openssl (make test installs it)");
    child.stdin.take().expect("stdin").write_all(request.as_bytes()).expect("write request");
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut text);
        text
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = reader.join().expect("openssl output");
    let pem = text
        .split_once("-----BEGIN CERTIFICATE-----")
        .and_then(|(_, rest)| rest.split_once("-----END CERTIFICATE-----"))
        .map(|(body, _)| format!("-----BEGIN CERTIFICATE-----{body}-----END CERTIFICATE-----"))
        .unwrap_or_else(|| panic!("no certificate from port {port}:\n{text}"));
    (pem, text)
}

fn same_certificate(a: &str, b: &str) -> bool {
    let squeeze = |pem: &str| pem.split_whitespace().collect::<String>();
    squeeze(a) == squeeze(b)
}

fn https_gateway(tls_table: String) -> Gateway {
    let admin = sipbridge::http::console::hash_password("console-admin-pass").expect("hash");
    Gateway::start(GatewayOptions {
        extra_http: format!("\n[[http.console_users]]\nusername = \"ops\"\npassword_hash = \"{admin}\"\nrole = \"admin\"\n\n[http.tls]\n{tls_table}"),
        ..Default::default()
    })
}

#[test]
fn softphone_over_https_and_wss_hears_the_echo() {
    let gateway = https_gateway(String::new());
    let output = echo_script(&gateway, "").output().expect("run node (make test installs playwright-core in tests/browser)");
    let result = result_of(&String::from_utf8_lossy(&output.stdout), &gateway);
    assert_eq!(result["ok"], true, "{result:#}\n{}", gateway.log());
    let peak = result["peakHz"].as_f64().unwrap_or(0.0);
    println!("echo over https/wss: peak {peak:.1} Hz at {} dB", result["peakDb"]);
    assert!((peak - 1000.0).abs() <= 20.0, "peak at {peak} Hz: {result:#}");

    // `sipbridge drain` speaks plain HTTP: against an HTTPS-only API it says so and sends nothing.
    let drain = gateway.drain_command();
    let stderr = String::from_utf8_lossy(&drain.stderr);
    assert!(!drain.status.success() && stderr.contains("takes only HTTPS"), "{stderr}");

    // The self-signed certificate is the SIP TLS listener's, generated once into the data dir.
    let generated = std::fs::read_to_string(gateway.dir.path().join("data/sip-tls-cert.pem")).expect("generated certificate");
    let body = "{\"username\":\"ops\",\"password\":\"console-admin-pass\"}";
    let login = format!("POST /console/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    let (served, answer) = tls_exchange(gateway.http_port, &login);
    assert!(same_certificate(&served, &generated), "HTTPS serves the generated certificate");
    let cookie = answer.lines().find(|l| l.to_ascii_lowercase().starts_with("set-cookie:")).unwrap_or_else(|| panic!("no session cookie:\n{answer}"));
    assert!(cookie.contains("; Secure"), "the session cookie is Secure on HTTPS: {cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
}

#[test]
fn a_certificate_swap_on_sighup_keeps_the_call_and_serves_the_new_certificate() {
    let certs = tempfile::tempdir().expect("tempdir");
    let (cert_file, key_file) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
    let write = |names: Vec<String>| {
        let generated = rcgen::generate_simple_self_signed(names).expect("certificate");
        std::fs::write(&key_file, generated.key_pair.serialize_pem()).expect("write key");
        std::fs::write(&cert_file, generated.cert.pem()).expect("write cert");
        generated.cert.pem()
    };
    let first = write(vec!["localhost".into(), "first.test".into()]);
    let mut gateway = https_gateway(format!("cert_file = \"{}\"\nkey_file = \"{}\"\n", cert_file.display(), key_file.display()));
    assert!(same_certificate(&tls_exchange(gateway.http_port, "").0, &first));

    let mut browser = echo_script(&gateway, "pause").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("run node");
    let mut lines = BufReader::new(browser.stdout.take().expect("stdout")).lines();
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    // The browser's own deadlines (10 s to answer, 3 s to measure) bound this loop.
    for line in lines.by_ref().map_while(Result::ok) {
        seen.push_str(&line);
        seen.push('\n');
        if line == "STEP call-up" || line.starts_with('{') || Instant::now() > deadline {
            break;
        }
    }
    assert!(seen.contains("STEP call-up"), "the call never came up:\n{seen}\n{}", gateway.log());

    let second = write(vec!["localhost".into(), "second.test".into()]);
    gateway.signal("HUP");
    gateway.wait_for_log("HTTPS certificate reloaded");
    assert!(same_certificate(&tls_exchange(gateway.http_port, "").0, &second), "a new connection gets the new certificate");

    browser.stdin.take().expect("stdin").write_all(b"go on\n").expect("tell the browser to go on");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let _ = browser.wait();
    let result = result_of(&rest.join("\n"), &gateway);
    assert_eq!(result["ok"], true, "{result:#}\n{}", gateway.log());
    let (before, after) = (result["peakHz"].as_f64().unwrap_or(0.0), result["peakHzAfterPause"].as_f64().unwrap_or(0.0));
    println!("tone before the swap {before:.1} Hz, after SIGHUP {after:.1} Hz");
    assert!((before - 1000.0).abs() <= 20.0 && (after - 1000.0).abs() <= 20.0, "{result:#}");
    assert_eq!(result["stateAfterPause"], "answered", "{result:#}");
    assert!(result["endedDuringPause"].is_null(), "{result:#}");
    assert_eq!(result["websocketOpenAfterPause"], true, "the WebSocket opened before the swap lives on: {result:#}");
    assert!(gateway.wait_exit(Duration::ZERO).is_none(), "SIGHUP does not stop the gateway:\n{}", gateway.log());
}

#[test]
fn softphone_page_in_firefox_over_https_and_wss_hears_the_echo() {
    let gateway = https_gateway(String::new());
    let base = format!("https://localhost:{}", gateway.http_port);
    let out = artifacts_dir("softphone-https", Browser::Firefox);
    let out = out.to_string_lossy();
    let run = run_script("phone.mjs", Browser::Firefox, &[&base, "alice", ALICE_PASSWORD, &out, "echo"], &[]);
    let report = &run.report;
    let context = format!("{report:#}\n{}\n{}", run.stderr, gateway.log());
    assert_eq!(report["ok"], true, "{context}");
    assert_eq!(report["connected"], "connected as alice", "the page's own login over wss://: {context}");
    assert_eq!(report["loginHiddenWhenConnected"], true);
    support::calls::assert_tone(report, "peakHz", 1000.0, &context);
    println!("Firefox softphone over https/wss: peak {} Hz", report["peakHz"]);
    assert_eq!(report["ended"], "call ended (local_hangup)");
    // No setSinkId: the speaker list is disabled and says why, and the call works regardless.
    assert_eq!(report["speakerChoice"], false, "{context}");
    assert_eq!(report["speakerNoteShown"], true, "{context}");
    assert_eq!(report["pageErrors"], serde_json::json!([]), "{context}");
}
