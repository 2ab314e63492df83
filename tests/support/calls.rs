//! Whole calls between a browser page and sipp, shared by the TURN, local-user and Firefox tests:
//! a trunk that echoes RTP (so a browser hears its own tone back through the whole path), and the
//! Chromium pages of tests/browser.

use super::{sipp_available, Gateway, JWT_SECRET};
use std::io::{BufRead, BufReader, Lines};
use std::process::{Child, ChildStdout, Command, Stdio};

/// Chromium logged in with `login`, answering the next call (tests/browser/answer.mjs `accept`).
pub fn answering_browser(gateway: &Gateway, login: &str) -> (Child, Lines<BufReader<ChildStdout>>) {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/answer.mjs");
    let mut browser = Command::new("node")
        .arg(script)
        .arg(format!("http://127.0.0.1:{}", gateway.http_port))
        .arg(login)
        .arg("accept")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the browser");
    let mut lines = BufReader::new(browser.stdout.take().expect("stdout")).lines();
    assert!(lines.by_ref().map_while(Result::ok).any(|line| line == "READY"), "the browser never logged in");
    (browser, lines)
}

/// A trunk profile toward sipp on `port`, trusted by address.
pub fn trunk_profile(port: u16) -> (String, String) {
    ("trunk.toml".into(), format!("kind = \"trunk\"\nhost = \"127.0.0.1\"\nport = {port}\ntrusted_addresses = [\"127.0.0.1\"]\n"))
}

/// A JWT for `user`, valid 10 minutes, granting `profiles`.
pub fn token(user: &str, profiles: &[&str]) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let claims = sipbridge::signaling::jwt::Claims {
        sub: user.into(),
        exp: now + 600,
        nbf: None,
        iat: None,
        profiles: profiles.iter().map(|p| p.to_string()).collect(),
    };
    sipbridge::signaling::jwt::sign(&claims, JWT_SECRET.as_bytes())
}

/// sipp answering one call on `port` and echoing its RTP; its logs stay in `work`.
pub struct EchoTrunk {
    child: Child,
    pub work: tempfile::TempDir,
}

impl EchoTrunk {
    /// sipp's own `uas` scenario.
    pub fn start(port: u16) -> EchoTrunk {
        EchoTrunk::with_scenario(port, &["-sn", "uas"])
    }

    /// `scenario` is sipp's arguments naming it (`-sf FILE` or `-sn NAME`). Returns once sipp
    /// listens, so the gateway's INVITE cannot come first.
    pub fn with_scenario(port: u16, scenario: &[&str]) -> EchoTrunk {
        EchoTrunk::launch(port, scenario, &["-rtp_echo"])
    }

    /// The same trunk without the echo: it sends no RTP at all (unless its scenario plays some).
    pub fn silent(port: u16, scenario: &[&str]) -> EchoTrunk {
        EchoTrunk::launch(port, scenario, &[])
    }

    /// An echoing trunk that answers `calls` calls, as many at once as come.
    pub fn answering(port: u16, calls: usize) -> EchoTrunk {
        let calls = calls.to_string();
        EchoTrunk::launch(port, &["-sn", "uas"], &["-rtp_echo", "-m", &calls, "-l", &calls])
    }

    /// `media` (and any other sipp arguments) come after the defaults, so they win.
    fn launch(port: u16, scenario: &[&str], media: &[&str]) -> EchoTrunk {
        sipp_available();
        let work = tempfile::tempdir().expect("tempdir");
        let child = Command::new("sipp")
            .args(scenario)
            .args(["-i", "127.0.0.1", "-m", "1", "-nostdin", "-timeout", "40s", "-timeout_error", "-trace_err"])
            .args(media)
            .args(["-p", &port.to_string(), "-mp", &super::free_sipp_media_port().to_string()])
            .current_dir(work.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start sipp");
        super::wait_udp_bound(port);
        EchoTrunk { child, work }
    }

    /// Waits for sipp's verdict on its one call: Ok, or its exit status and error log.
    pub fn finish(mut self) -> Result<(), String> {
        let status = self.child.wait().expect("sipp exit");
        if status.success() {
            return Ok(());
        }
        Err(format!("sipp {status:?}\n{}", super::sipp_error_logs(self.work.path())))
    }
}

impl Drop for EchoTrunk {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs tests/browser/echo.mjs (Chromium calls `target`, measures what comes back) and returns its
/// report. `login` is a JWT or `password:USER:PASSWORD`; `env` goes to the script.
pub fn chromium_calls(gateway: &Gateway, login: &str, target: &str, env: &[(&str, &str)]) -> serde_json::Value {
    echo_page(gateway, login, ["", target, ""], env)
}

/// echo.mjs with its `[CODEC, TARGET, MODE]` arguments (see the script's header).
pub fn echo_page(gateway: &Gateway, login: &str, codec_target_mode: [&str; 3], env: &[(&str, &str)]) -> serde_json::Value {
    echo_page_args(gateway, login, &codec_target_mode, env)
}

/// echo.mjs with `[CODEC, TARGET, MODE, TONE_HZ]` or a prefix of them.
pub fn echo_page_args(gateway: &Gateway, login: &str, args: &[&str], env: &[(&str, &str)]) -> serde_json::Value {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/echo.mjs");
    let output = Command::new("node")
        .arg(script)
        .arg(format!("http://127.0.0.1:{}", gateway.http_port))
        .arg(login)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run the browser");
    last_json_line(&String::from_utf8_lossy(&output.stdout))
}

/// tests/browser/answer.mjs: Chromium pages logged in as alice (a JWT with no profiles), one per
/// mode, waiting for a call.
pub struct AnsweringPages {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl AnsweringPages {
    /// Returns once every page is logged in, so a call placed next rings them all.
    pub fn start(gateway: &Gateway, modes: &[&str]) -> AnsweringPages {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/answer.mjs");
        let mut child = Command::new("node")
            .arg(script)
            .arg(format!("http://127.0.0.1:{}", gateway.http_port))
            .arg(token("alice", &[]))
            .args(modes)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the browser");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        assert!(lines.by_ref().map_while(Result::ok).any(|line| line == "READY"), "the browser pages never logged in");
        AnsweringPages { child, lines }
    }

    /// Each page's report, in the order of the modes, once every page is done.
    pub fn reports(mut self) -> Vec<serde_json::Value> {
        let reports = self.lines.by_ref().map_while(Result::ok).filter(|l| l.starts_with('{')).filter_map(|l| serde_json::from_str(&l).ok()).collect();
        let _ = self.child.wait();
        reports
    }
}

impl Drop for AnsweringPages {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last line of `text` that is a JSON object, or `null`.
pub fn last_json_line(text: &str) -> serde_json::Value {
    text.lines().rev().find(|l| l.starts_with('{')).and_then(|l| serde_json::from_str(l).ok()).unwrap_or_default()
}

/// Asserts a measured peak is the expected tone (a 4096/8192-point FFT at 48 kHz: bins of 6-12 Hz).
#[track_caller]
pub fn assert_tone(report: &serde_json::Value, key: &str, expected_hz: f64, context: &str) {
    let peak = report[key].as_f64().unwrap_or(0.0);
    assert!((peak - expected_hz).abs() <= 20.0, "expected {expected_hz} Hz, heard {peak:.1} Hz: {report:#}\n{context}");
}

/// tests/browser/drain.mjs: one Chromium page placing `place` calls to the trunk (+15551234567)
/// and accepting `accept` calls to alice, all held until the gateway ends them.
pub struct ManyCallsPage {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl ManyCallsPage {
    pub fn start(gateway: &Gateway, place: usize, accept: usize) -> ManyCallsPage {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/drain.mjs");
        // Alice answers; callers place 4 calls each (the per-connection limit).
        let callers: Vec<String> = (0..place.div_ceil(4)).map(|i| token(&format!("caller{i}"), &["trunk"])).collect();
        let mut child = Command::new("node")
            .arg(script)
            .arg(format!("http://127.0.0.1:{}", gateway.http_port))
            .args([token("alice", &[]), accept.to_string(), "+15551234567".into(), place.to_string()])
            .args(callers)
            .stdout(Stdio::piped())
            .spawn()
            .expect("run the browser");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut page = ManyCallsPage { child, lines };
        page.expect_line("READY");
        page
    }

    /// Reads the page's output up to `line` (bounded by the page's own timeouts).
    pub fn expect_line(&mut self, line: &str) {
        for seen in self.lines.by_ref().map_while(Result::ok) {
            if seen == line {
                return;
            }
            assert!(!seen.starts_with('{'), "the page ended before {line}: {seen}");
        }
        panic!("the page exited before {line}");
    }

    /// Closes the page before its calls end (after the gateway was killed, nobody ends them):
    /// SIGTERM, on which playwright closes Chromium and node exits.
    pub fn stop(mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The page's final report: how each call ended.
    pub fn report(mut self) -> serde_json::Value {
        let rest: Vec<String> = self.lines.by_ref().map_while(Result::ok).collect();
        let _ = self.child.wait();
        last_json_line(&rest.join("\n"))
    }
}

/// Starts `tests/browser/sip_ws_call.mjs` (JsSIP or SIP.js over WebSocket in headless Chromium)
/// with its arguments in its order: library, url, AOR, password, mode, target, tone Hz; `env`
/// adds the script's options. Its report lines come on the returned stdout.
pub fn start_sip_ws_call(gateway: &Gateway, args: [&str; 7], env: &[(&str, &str)]) -> (Child, Lines<BufReader<ChildStdout>>) {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/sip_ws_call.mjs");
    let mut child = Command::new("node")
        .arg(script)
        .args(args)
        .env("SIP_WS_PAGE", format!("http://127.0.0.1:{}/healthz", gateway.http_port))
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node");
    let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    (child, lines)
}
