//! The example configuration where containers run it: a network namespace made by the test, with
//! `lo`, one more address (10.200.1.1/24 on a veth end) and no multicast route. The gateway,
//! sipp (the trunk) and Chromium all run inside it. A trunk call reaches a browser and a browser
//! calls the trunk, with the tone heard through the trunk's echo both ways, and no SIP message
//! carries a wildcard address (`0.0.0.0` in SDP means hold).
//!
//! What changes from `sipbridge.example.toml` and `sip-profiles/`: the example trunk profile
//! (`sip-profiles/examples/carrier-trunk.toml`) is added, pointing at
//! sipp (`host`, `trusted_addresses` = 10.200.1.1, `port` = 5070, since the gateway holds 5060 on
//! every address), and `[http]` gets a `jwt_secret` so the test can log a browser in with a token
//! that grants the trunk profile. Ports stay as shipped: the namespace is the test's own.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::netns::Netns;
use support::JWT_SECRET;

/// The namespace's second address, where the trunk (sipp) lives too.
const ADDRESS: &str = "10.200.1.1";
const TRUNK_PORT: u16 = 5070;

/// The gateway running the example configuration inside the namespace; killed when dropped.
struct ExampleGateway {
    dir: tempfile::TempDir,
    log_path: std::path::PathBuf,
    child: Child,
}

impl ExampleGateway {
    fn start(netns: &Netns) -> ExampleGateway {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = tempfile::tempdir().expect("tempdir");
        let example = std::fs::read_to_string(repo.join("sipbridge.example.toml")).expect("example");
        let config = example.replace("[http]\n", &format!("[http]\njwt_secret = \"{JWT_SECRET}\"\n"));
        assert_ne!(config, example, "the example has an [http] section");
        std::fs::write(dir.path().join("sipbridge.toml"), config).expect("write config");
        let profiles = dir.path().join("sip-profiles");
        std::fs::create_dir(&profiles).expect("mkdir");
        let shipped = std::fs::read_dir(repo.join("sip-profiles")).expect("profiles").flatten().map(|e| e.path()).filter(|p| p.is_file());
        for path in shipped.chain([repo.join("sip-profiles/examples/carrier-trunk.toml")]) {
            let mut text = std::fs::read_to_string(&path).expect("profile");
            let name = path.file_name().expect("file name").to_owned();
            if name == "carrier-trunk.toml" {
                let trunk = text
                    .replace("host = \"198.51.100.20\"", &format!("host = \"{ADDRESS}\""))
                    .replace("port = 5060", &format!("port = {TRUNK_PORT}"))
                    .replace("trusted_addresses = [\"198.51.100.20\", \"198.51.100.0/28\"]", &format!("trusted_addresses = [\"{ADDRESS}\"]"));
                assert_eq!(trunk.matches(ADDRESS).count(), 2, "the trunk's address was replaced:\n{trunk}");
                assert!(trunk.contains(&format!("port = {TRUNK_PORT}")), "{trunk}");
                text = trunk;
            }
            std::fs::write(profiles.join(name), text).expect("write profile");
        }
        let log_path = support::run_logs::gateway_log_path(dir.path());
        let log = std::fs::File::create(&log_path).expect("log");
        let child = netns
            .command(env!("CARGO_BIN_EXE_sipbridge"))
            .arg("--config")
            .arg(dir.path().join("sipbridge.toml"))
            .env("NO_COLOR", "1")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start sipbridge");
        let mut gateway = ExampleGateway { dir, log_path, child };
        gateway.wait_for_log("HTTP listening");
        gateway
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    fn wait_for_log(&mut self, line: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.log().contains(line) {
            if let Ok(Some(exit)) = self.child.try_wait() {
                panic!("gateway exited with {exit}:\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "no `{line}` in the gateway log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ExampleGateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn token(profiles: Vec<String>) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let claims = sipbridge::signaling::jwt::Claims { sub: "1001".into(), exp: now + 600, nbf: None, iat: None, profiles };
    sipbridge::signaling::jwt::sign(&claims, JWT_SECRET.as_bytes())
}

/// sipp inside the namespace on the trunk's address, echoing RTP, tracing every SIP message.
fn sipp(netns: &Netns, work: &Path, scenario: &[&str], extra: &[&str]) -> Command {
    let mut command = netns.command("sipp");
    command
        .args(scenario)
        .args(["-i", ADDRESS, "-m", "1", "-nostdin", "-timeout", "40s", "-timeout_error", "-trace_err", "-trace_msg", "-rtp_echo"])
        .args(extra)
        .current_dir(work)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

/// Every message sipp sent and received, from its -trace_msg and -trace_err logs.
fn sip_trace(work: &Path) -> String {
    let mut trace = String::new();
    for entry in std::fs::read_dir(work).expect("read dir").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with("_messages.log") || name.ends_with("_errors.log") {
            trace.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
        }
    }
    trace
}

/// No SIP message names a wildcard (SDP `c=`/`o=`, Via, Contact, anywhere), and the gateway's SDP
/// names the namespace's address.
fn assert_addresses(trace: &str, log: &str) {
    assert!(trace.contains("INVITE sip:"), "sipp traced the call:\n{trace}");
    for wildcard in ["0.0.0.0", "[::]"] {
        assert!(!trace.contains(wildcard), "a SIP message holds `{wildcard}`:\n{trace}\n{log}");
    }
    for line in trace.lines().map(str::trim).filter(|l| l.starts_with("c=") || l.starts_with("o=")) {
        let address = line.rsplit(' ').next().and_then(|a| a.parse::<std::net::IpAddr>().ok());
        assert!(address.is_some_and(|a| !a.is_unspecified()), "SDP line `{line}`:\n{trace}");
    }
    assert!(trace.contains(&format!("c=IN IP4 {ADDRESS}")), "the SDP names the namespace's address:\n{trace}");
    let gateway_sdp = trace.lines().filter(|l| l.trim().starts_with("o=") && !l.contains("53655765")).count();
    assert!(gateway_sdp >= 1, "the gateway's own SDP was traced:\n{trace}");
}

/// Waits (bounded) until sipp's trace satisfies `done`.
fn wait_for_trace(work: &Path, done: impl Fn(&str) -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if done(&sip_trace(work)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn the_namespace_has_no_multicast_route(netns: &Netns) {
    let route = netns.command("ip").args(["route", "get", "224.0.0.251"]).output().expect("ip route");
    assert!(!route.status.success(), "the namespace must have no multicast route: {}", support::describe(&route));
}

/// Trunk -> browser, then browser -> trunk, in one namespace and one gateway run.
#[test]
fn example_config_in_a_namespace_without_multicast_calls_both_ways() {
    support::sipp_available();
    let netns = Netns::create("test", ADDRESS);
    the_namespace_has_no_multicast_route(&netns);
    let gateway = ExampleGateway::start(&netns);
    // What check-config says it will advertise here, for every socket of the example.
    let check = netns.command(env!("CARGO_BIN_EXE_sipbridge")).arg("check-config").arg("--config").arg(gateway.dir.path().join("sipbridge.toml")).output().expect("check-config");
    let summary = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{}", support::describe(&check));
    println!("{summary}");
    assert!(summary.contains("sip udp on 0.0.0.0:5060 -> Via/Contact: the local address of the route toward the peer"), "{summary}");
    assert!(summary.contains("media on 0.0.0.0 -> SDP c=/o=: the local address of the route toward the peer"), "{summary}");
    assert!(summary.contains(&format!("browser media on 0.0.0.0 -> ICE host candidates: {ADDRESS}\n")), "one host candidate, on the non-loopback address: {summary}");
    // Browsers load the page from 127.0.0.1: getUserMedia needs a secure context, which plain
    // http is only on loopback. Their media still flows over 10.200.1.1, the only non-loopback
    // address, which is where the gateway's browser legs bind.
    let base_url = "http://127.0.0.1:8080";
    let browser_script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");

    // The trunk calls browser user 1001, who answers; sipp echoes the browser's 440 Hz tone.
    let mut browser = netns
        .command("node")
        .arg(browser_script.join("answer.mjs"))
        .args([base_url, &token(vec![]), "accept"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the browser");
    let mut lines = BufReader::new(browser.stdout.take().expect("stdout")).lines();
    assert!(lines.by_ref().map_while(Result::ok).any(|line| line == "READY"), "the browser never logged in:\n{}", gateway.log());
    let work = tempfile::tempdir().expect("tempdir");
    let scenario = work.path().join("container_call.xml");
    std::fs::copy(support::scenario_path("container_call.xml"), &scenario).expect("copy scenario");
    let target = format!("{ADDRESS}:5060");
    let sipp_run = sipp(&netns, work.path(), &["-sf", &scenario.to_string_lossy(), &target], &["-s", "1001", "-t", "u1", "-p", "5080", "-mp", "6000"])
        .output()
        .expect("run sipp");
    let page: serde_json::Value =
        lines.map_while(Result::ok).filter(|l| l.starts_with('{')).last().and_then(|l| serde_json::from_str(&l).ok()).unwrap_or_default();
    let _ = browser.wait();
    let trace = sip_trace(work.path());
    assert!(sipp_run.status.success(), "the trunk's call: {}\n{trace}\n{}", support::describe(&sipp_run), gateway.log());
    assert_eq!(page["ok"], true, "{page:#}\n{}", gateway.log());
    let heard = page["peakHz"].as_f64().unwrap_or(0.0);
    println!("trunk -> browser: the browser heard its tone back through the trunk at {heard:.1} Hz (level {})", page["peakLevel"]);
    assert!((heard - 440.0).abs() <= 20.0, "the 440 Hz tone went to the trunk and came back: {page:#}\n{}", gateway.log());
    assert_eq!(page["ended"]["reason"], "normal", "the trunk's BYE ended the call: {page:#}");
    assert_addresses(&trace, &gateway.log());

    // The browser calls out through the trunk profile; sipp answers and echoes the 1 kHz tone.
    // The example's trunk profile pings (`ping = true`): sipp answers the OPTIONS (`-aa`), each
    // of which it counts as a call, so it is not told how many calls to expect; the trace shows
    // the call went through, and sipp is stopped once the gateway's BYE is answered.
    let work = tempfile::tempdir().expect("tempdir");
    let mut trunk = sipp(&netns, work.path(), &["-sn", "uas"], &["-aa", "-m", "100", "-p", &TRUNK_PORT.to_string(), "-mp", "6100"]).spawn().expect("start sipp");
    let output = netns
        .command("node")
        .arg(browser_script.join("echo.mjs"))
        .args([base_url, &token(vec!["carrier-trunk".into()]), "", "+15551234567"])
        .output()
        .expect("run the browser");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let page: serde_json::Value = stdout.lines().rev().find(|l| l.starts_with('{')).and_then(|l| serde_json::from_str(l).ok()).unwrap_or_default();
    let answered_bye = wait_for_trace(work.path(), |trace| trace.find("\nBYE sip:").is_some_and(|at| trace[at..].contains("SIP/2.0 200 OK")));
    let _ = trunk.kill();
    let _ = trunk.wait();
    let trace = sip_trace(work.path());
    assert_eq!(page["ok"], true, "{page:#}\n{}\n{trace}", gateway.log());
    let heard = page["peakHz"].as_f64().unwrap_or(0.0);
    println!("browser -> trunk: the tone came back through the trunk at {heard:.1} Hz");
    assert!((heard - 1000.0).abs() <= 20.0, "the 1 kHz tone went to the trunk and came back: {page:#}\n{}", gateway.log());
    assert!(trace.contains("\nINVITE sip:+15551234567@"), "the trunk got the INVITE:\n{trace}");
    assert!(answered_bye, "the browser's hangup reached the trunk as a BYE, which it answered:\n{trace}\n{}", gateway.log());
    assert_addresses(&trace, &gateway.log());
    let log = gateway.log();
    assert!(!log.contains("os error 19"), "nothing needed multicast:\n{log}");
    drop(gateway);
    drop(netns);
}
