//! Firefox ESR (Debian's firefox-esr, headless) calls a trunk and is called by one, as Chromium
//! does in browser_to_sip.rs and sip_to_browser.rs. Playwright's Firefox build cannot be used, so
//! the test serves tests/browser/firefox.html and sipbridge.js itself, and the page POSTs its
//! report back to the same server. The trunk (sipp) echoes RTP, so the browser hears its own fake
//! microphone's sine through the gateway, the trunk and back.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use support::calls::{assert_tone, token, trunk_profile, EchoTrunk};
use support::coturn::{Coturn, TURN_SECRET};
use support::{free_port, sipp, Gateway, GatewayOptions};

/// The test's HTTP server: the page and the library for GET, and every POST (path, body) to `posts`.
struct PageServer {
    port: u16,
    posts: mpsc::Receiver<(String, String)>,
}

impl PageServer {
    fn start() -> PageServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (tx, posts) = mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let tx = tx.clone();
                std::thread::spawn(move || serve(stream, &tx));
            }
        });
        PageServer { port, posts }
    }

    /// The body of the next POST to `path`, within `timeout`.
    fn wait_post(&self, path: &str, timeout: Duration) -> Option<serde_json::Value> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(std::time::Instant::now())?;
            let (posted, body) = self.posts.recv_timeout(left).ok()?;
            if posted == path {
                return serde_json::from_str(&body).ok();
            }
        }
    }
}

fn serve(stream: TcpStream, posts: &mpsc::Sender<(String, String)>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut request_line = String::new();
    let _ = reader.read_line(&mut request_line);
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (status, kind, body) = match (method, path) {
        ("GET", "/firefox.html") => ("200 OK", "text/html", std::fs::read(repo.join("tests/browser/firefox.html")).unwrap_or_default()),
        // The very file the gateway serves (compiled in from web/).
        ("GET", "/sipbridge.js") => ("200 OK", "text/javascript", std::fs::read(repo.join("web/sipbridge.js")).unwrap_or_default()),
        ("POST", _) => {
            let mut body = vec![0; length.min(1 << 20)];
            let _ = reader.read_exact(&mut body);
            let _ = posts.send((path.to_string(), String::from_utf8_lossy(&body).into_owned()));
            ("200 OK", "text/plain", Vec::new())
        }
        _ => ("404 Not Found", "text/plain", Vec::new()),
    };
    let mut stream = stream;
    let head = format!("HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&body);
}

/// Headless firefox-esr in a throwaway profile whose fake microphone plays `tone_hz`. Killed
/// (with its content processes, in its own process group) when dropped.
struct Firefox {
    child: Child,
    _profile: tempfile::TempDir,
}

impl Firefox {
    fn open(url: &str, tone_hz: u32) -> Firefox {
        let profile = tempfile::tempdir().expect("tempdir");
        // The prefs launch.mjs gives Firefox, as user.js lines (JSON literals are JavaScript ones).
        let user_js: String = support::browser::firefox_prefs(true, Some(tone_hz))
            .into_iter()
            .map(|(name, value)| format!("user_pref({}, {value});\n", serde_json::Value::from(name)))
            .collect();
        std::fs::write(profile.path().join("user.js"), user_js).expect("user.js");
        let child = Command::new("firefox-esr")
            .args(["--headless", "--no-remote", "--profile"])
            .arg(profile.path())
            .arg(url)
            .env("HOME", profile.path())
            .env("MOZ_CRASHREPORTER_DISABLE", "1")
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start firefox-esr");
        Firefox { child, _profile: profile }
    }
}

impl Drop for Firefox {
    fn drop(&mut self) {
        // The group is the one this test created for Firefox (process_group(0) above).
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", self.child.id())]).status();
        let _ = self.child.wait();
    }
}

fn page_url(server: &PageServer, gateway: &Gateway, query: &str) -> String {
    format!("http://127.0.0.1:{}/firefox.html?ws=ws://127.0.0.1:{}/ws&{query}", server.port, gateway.http_port)
}

/// Firefox calls a number through the trunk and reports what it heard; `query` adds to the page's.
fn firefox_calls_the_trunk(extra_http: String, query: &str) -> (serde_json::Value, String) {
    let trunk_port = free_port();
    let gateway = Gateway::start(GatewayOptions { profiles: vec![trunk_profile(trunk_port)], extra_http, ..Default::default() });
    let trunk = EchoTrunk::start(trunk_port);
    let server = PageServer::start();
    let url = page_url(&server, &gateway, &format!("mode=call&target=%2B15551234567&token={}{query}", token("alice", &["trunk"])));
    let firefox = Firefox::open(&url, 1000);
    let report = server.wait_post("/result", Duration::from_secs(45)).unwrap_or_default();
    drop(firefox);
    let sipp = trunk.finish();
    let log = gateway.log();
    assert_eq!(report["ok"], true, "{report:#}\n{log}");
    println!("firefox -> trunk (sipp echo): {} Hz at {} dB, {}, pair {}", report["peakHz"], report["peakDb"], report["codec"], report["selectedPair"]);
    assert_tone(&report, "peakHz", 1000.0, &log);
    assert!(sipp.is_ok(), "the trunk answered and got the BYE: {sipp:?}\n{log}");
    (report, log)
}

#[test]
fn firefox_calls_the_trunk_and_hears_its_echo() {
    let (_, log) = firefox_calls_the_trunk(String::new(), "");
    assert_no_harmless_warnings(&log);
}

/// As in turn_relay.rs for Chromium: relay-only Firefox with the login reply's TURN credential.
#[test]
fn firefox_behind_a_relay_calls_the_trunk() {
    let coturn = Coturn::start();
    let (report, log) = firefox_calls_the_trunk(coturn.ice_servers_config(), "&policy=relay");
    assert_eq!(report["selectedPair"]["local"], "relay", "Firefox's media went through coturn: {report:#}");
    assert!(!log.contains(TURN_SECRET), "the shared secret is never logged");
}

/// Firefox's DTLS hello carries about 30 extensions webrtc-rs does not know; TLS says to ignore
/// them, and so does the log (src/logging.rs), with the other known-harmless library warnings.
/// Any other warning is printed for the reader.
#[track_caller]
fn assert_no_harmless_warnings(log: &str) {
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains(" WARN ")).collect();
    println!("{} warning line(s) in the gateway log:\n{}", warnings.len(), warnings.join("\n"));
    for harmless in ["Unsupported Extension Type", "conn.remote_addr is empty", "pingAllCandidates called with no candidate pairs"] {
        assert!(!log.contains(harmless), "`{harmless}` is filtered:\n{log}");
    }
}

#[test]
fn trunk_calls_firefox_which_answers_and_hears_its_echo() {
    let gateway = Gateway::start(GatewayOptions { profiles: vec![trunk_profile(free_port())], ..Default::default() });
    let server = PageServer::start();
    let firefox = Firefox::open(&page_url(&server, &gateway, &format!("mode=answer&token={}", token("alice", &[]))), 440);
    let ready = server.wait_post("/ready", Duration::from_secs(30));
    assert!(ready.is_some(), "firefox never logged in\n{}", gateway.log());
    let media_port = support::free_sipp_media_port().to_string();
    let run = sipp("call_to_browser_echo.xml", &format!("127.0.0.1:{}", gateway.sip_port), &["-t", "u1", "-rtp_echo", "-mp", &media_port]);
    let report = server.wait_post("/result", Duration::from_secs(20)).unwrap_or_default();
    drop(firefox);
    let log = gateway.log();
    assert!(run.success(), "the trunk's call: {}\n{log}", run.describe());
    assert_eq!(report["ok"], true, "{report:#}\n{log}");
    println!("trunk (sipp echo) -> firefox: {} Hz at {} dB, {}", report["peakHz"], report["peakDb"], report["codec"]);
    assert_tone(&report, "peakHz", 440.0, &log);
    assert_eq!(report["ended"]["reason"], "normal", "the trunk's BYE ended the call in Firefox: {report:#}");
    assert_no_harmless_warnings(&log);
}
