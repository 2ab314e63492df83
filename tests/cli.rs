//! The command line as an operator meets it: check-config, and the shipped example config running.

mod support;

use std::process::Command;
use std::time::Duration;

fn sipbridge() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sipbridge"))
}

/// Runs a short command to its end; under `make test` its output joins the run's logs, which
/// tests/secrets_in_logs.rs scans.
fn run_kept(command: &mut Command) -> std::process::Output {
    let output = command.output().expect("run");
    support::run_logs::keep_output(&format!("{command:?}"), &output);
    output
}

fn repo(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[test]
fn check_config_summarises_the_example() {
    let output = run_kept(sipbridge().args(["check-config", "--config"]).arg(repo("sipbridge.example.toml")));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    for expected in ["sip udp on 0.0.0.0:5060", "sip tcp on 0.0.0.0:5060", "sip tls on 0.0.0.0:5061", "http on 0.0.0.0:8080", "1 profile(s)"] {
        assert!(stdout.contains(expected), "missing `{expected}` in:\n{stdout}");
    }
    assert!(!stdout.contains("change-me"), "secrets are never printed:\n{stdout}");
    // Every socket is bound to a wildcard: each says what it advertises instead, never the wildcard.
    let route = "the local address of the route toward the peer";
    for expected in [format!("sip udp on 0.0.0.0:5060 -> Via/Contact: {route}"), format!("sip udp on [::]:5060 -> Via/Contact: {route}"), format!("media on 0.0.0.0 -> SDP c=/o=: {route}"), "browser media on 0.0.0.0 -> ICE host candidates: ".to_string()] {
        assert!(stdout.contains(&expected), "missing `{expected}` in:\n{stdout}");
    }
    for line in stdout.lines().filter(|l| l.contains(" -> ")) {
        let advertised = line.split(" -> ").nth(1).unwrap_or_default();
        assert!(!advertised.contains("0.0.0.0") && !advertised.contains("[::]") && !advertised.contains(" ::"), "a wildcard is advertised: {line}");
    }
}

/// Configured addresses are what check-config says will be advertised; a wildcard there is an error.
#[test]
fn check_config_names_the_configured_advertised_addresses() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("sip-profiles")).expect("mkdir");
    let main = "[sip]\nadvertised_address = \"203.0.113.10\"\n[[sip.listen]]\ntransport = \"udp\"\naddress = \"0.0.0.0:5060\"\n[media]\naddress = \"0.0.0.0\"\npublic_address = \"203.0.113.11\"\n";
    std::fs::write(dir.path().join("gw.toml"), main).expect("write");
    let output = run_kept(sipbridge().args(["check-config", "--config"]).arg(dir.path().join("gw.toml")));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("sip udp on 0.0.0.0:5060 -> Via/Contact: 203.0.113.10 (sip.advertised_address)"), "{stdout}");
    assert!(stdout.contains("media on 0.0.0.0 -> SDP c=/o=: 203.0.113.11 (media.public_address)"), "{stdout}");
    assert!(stdout.contains("ICE host candidates: 203.0.113.11 (media.public_address)"), "{stdout}");

    std::fs::write(dir.path().join("gw.toml"), "[sip]\nadvertised_address = \"0.0.0.0\"\n[media]\npublic_address = \"::\"\n").expect("write");
    let output = run_kept(sipbridge().args(["check-config", "--config"]).arg(dir.path().join("gw.toml")));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("sip.advertised_address: `0.0.0.0` cannot be advertised"), "{stderr}");
    assert!(stderr.contains("media.public_address: a wildcard cannot be advertised"), "{stderr}");
}

#[test]
fn check_config_names_file_key_and_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("sip-profiles")).expect("mkdir");
    std::fs::write(dir.path().join("gw.toml"), "[sip]\nt1_ms = 0\n").expect("write");
    std::fs::write(dir.path().join("sip-profiles/pbx.toml"), "kind = \"pbx\"\nregister = true\nhost = \"pbx.test\"\n").expect("write");
    let output = run_kept(sipbridge().args(["check-config", "--config"]).arg(dir.path().join("gw.toml")));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.lines().any(|l| l.contains("gw.toml: sip.t1_ms: must be between")), "{stderr}");
    assert!(stderr.lines().any(|l| l.contains("pbx.toml: username: required when register = true")), "{stderr}");
    assert!(stderr.lines().any(|l| l.contains("pbx.toml: password: required when register = true")), "{stderr}");
    assert!(stderr.contains("3 error(s)"), "{stderr}");
}

/// ICE server entries a browser would refuse are refused by check-config, each with its key, and
/// the shared secret of a valid entry is never printed.
#[test]
fn check_config_refuses_ice_servers_browsers_would_refuse() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("sip-profiles")).expect("mkdir");
    let entries = [
        "urls = []",
        "urls = [\"http://turn.example.com\"]",
        "urls = [\"turn:turn.example.com:3478\"]",
        "urls = [\"turn:turn.example.com\"]\nusername = \"u\"\ncredential = \"p\"\nshared_secret = \"s3cr3t-both\"",
        "urls = [\"turns:turn.example.com\"]\nusername = \"u\"",
        "urls = [\"turn:turn.example.com\"]\nshared_secret = \"s3cr3t-valid\"",
    ];
    let config: String = entries.iter().map(|e| format!("[[http.ice_servers]]\n{e}\n")).collect();
    std::fs::write(dir.path().join("gw.toml"), config).expect("write");
    let output = run_kept(sipbridge().args(["check-config", "--config"]).arg(dir.path().join("gw.toml")));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    for expected in [
        "http.ice_servers[0].urls: list at least one",
        "http.ice_servers[1].urls[0]: `http://turn.example.com`: the scheme must be",
        "http.ice_servers[2]: a turn: or turns: URL needs either username and credential, or shared_secret",
        "http.ice_servers[3]: set either username and credential, or shared_secret, not both",
        "http.ice_servers[4].credential: required with username",
    ] {
        assert!(stderr.lines().any(|l| l.contains("gw.toml: ") && l.contains(expected)), "missing `{expected}` in:\n{stderr}");
    }
    assert!(!stderr.contains("ice_servers[5]") && stderr.contains("5 error(s)"), "{stderr}");
    assert!(!stderr.contains("s3cr3t"), "{stderr}");

    std::fs::write(dir.path().join("gw.toml"), format!("[[http.ice_servers]]\n{}\n", entries[5])).expect("write");
    let output = run_kept(sipbridge().args(["check-config", "--config"]).arg(dir.path().join("gw.toml")));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("ice server for browsers: turn:turn.example.com (per-login credentials"), "{stdout}");
    assert!(!stdout.contains("s3cr3t"), "{stdout}");
}

/// `make run` in miniature: the example config and profiles, on free ports, plus the example PBX
/// profile (sip-profiles/examples/). That PBX does not exist, so the gateway must keep running,
/// say why, and still answer OPTIONS.
#[test]
fn example_config_runs_and_survives_an_unreachable_pbx() {
    let log = run_example("text");
    assert!(log.contains("cannot resolve peer") && log.contains("office-pbx"), "the log says why the PBX is unreachable:\n{log}");
}

#[test]
fn json_logs_on_request() {
    let log = run_example("json");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    assert!(lines.iter().all(|l| l["level"].is_string() && l["timestamp"].is_string()), "{log}");
    assert!(lines.iter().any(|l| l["message"] == "cannot resolve peer" && l["profile"] == "office-pbx"), "{log}");
}

/// Runs the example config (ports moved to free ones) with the given log format and returns its log.
fn run_example(log_format: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let (sip, tls, http) = (support::free_port(), support::free_port(), support::free_port());
    let example = std::fs::read_to_string(repo("sipbridge.example.toml")).expect("example");
    let config = example
        .replace("0.0.0.0:5060", &format!("127.0.0.1:{sip}"))
        .replace("[::]:5060", &format!("[::1]:{sip}"))
        .replace("0.0.0.0:5061", &format!("127.0.0.1:{tls}"))
        .replace("0.0.0.0:8080", &format!("127.0.0.1:{http}"))
        .replace("log_format = \"text\"", &format!("log_format = \"{log_format}\""));
    std::fs::write(dir.path().join("gw.toml"), config).expect("write");
    let profiles = dir.path().join("sip-profiles");
    std::fs::create_dir(&profiles).expect("mkdir");
    for entry in std::fs::read_dir(repo("sip-profiles")).expect("profiles").flatten().filter(|e| e.path().is_file()) {
        std::fs::copy(entry.path(), profiles.join(entry.file_name())).expect("copy profile");
    }
    std::fs::copy(repo("sip-profiles/examples/office-pbx.toml"), profiles.join("office-pbx.toml")).expect("copy the example PBX");
    let log_path = support::run_logs::gateway_log_path(dir.path());
    let log = std::fs::File::create(&log_path).expect("log");
    let mut child = sipbridge()
        .arg("--config")
        .arg(dir.path().join("gw.toml"))
        .env("NO_COLOR", "1")
        .stdout(log.try_clone().expect("clone"))
        .stderr(log)
        .spawn()
        .expect("start");
    let read_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !read_log().contains("cannot resolve peer") && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    socket.set_read_timeout(Some(Duration::from_secs(3))).expect("timeout");
    let port = socket.local_addr().expect("addr").port();
    let options = format!(
        "OPTIONS sip:gw@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-example;rport\r\nMax-Forwards: 70\r\n\
         From: <sip:probe@127.0.0.1>;tag=1\r\nTo: <sip:gw@127.0.0.1>\r\nCall-ID: example-run\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    socket.send_to(options.as_bytes(), ("127.0.0.1", sip)).expect("send");
    let mut buffer = [0u8; 4096];
    let answer = socket.recv(&mut buffer).map(|n| String::from_utf8_lossy(&buffer[..n]).into_owned()).unwrap_or_default();
    let still_running = child.try_wait().expect("try_wait").is_none();
    let _ = child.kill();
    let _ = child.wait();
    let log = read_log();
    assert!(answer.starts_with("SIP/2.0 200 OK"), "OPTIONS answer: {answer}\n{log}");
    assert!(still_running, "the gateway exited:\n{log}");
    assert!(!log.contains("change-me"), "secrets are never logged:\n{log}");
    log
}

/// `sipbridge user add` stores an argon2 hash (never the password) and `sipbridge migrate` creates
/// the record schema in the embedded SQLite.
#[test]
fn user_add_and_migrate() {
    use std::io::Write;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("sip-profiles")).expect("mkdir");
    std::fs::write(dir.path().join("gw.toml"), "[general]\ndata_dir = \"data\"\n").expect("write");
    let config = dir.path().join("gw.toml");
    let mut child = sipbridge()
        .args(["user", "add", "ops", "--role", "admin", "--config"])
        .arg(&config)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run");
    child.stdin.take().expect("stdin").write_all(b"a long console password\n").expect("write");
    let output = child.wait_with_output().expect("wait");
    support::run_logs::keep_output("sipbridge user add", &output);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
    let users = std::fs::read_to_string(dir.path().join("data/console-users.toml")).expect("users file");
    assert!(users.contains("username = \"ops\"") && users.contains("$argon2id$") && users.contains("role = \"admin\""), "{users}");
    assert!(!users.contains("a long console password"), "only the hash is stored");
    let short = run_kept(sipbridge().args(["user", "add", "ops", "--config"]).arg(&config).stdin(std::process::Stdio::null()));
    assert!(!short.status.success(), "an empty password is refused");

    let migrate = run_kept(sipbridge().args(["migrate", "--config"]).arg(&config));
    assert!(migrate.status.success(), "{}", String::from_utf8_lossy(&migrate.stderr));
    assert!(String::from_utf8_lossy(&migrate.stdout).contains("up to date (Sqlite)"));
    assert!(dir.path().join("data/records.db").exists());
}
