//! Test harness: starts the real `sipbridge` binary on free loopback ports with a throwaway config,
//! and drives real peers (sipp, baresip) against it. Every wait is bounded.

#![allow(dead_code)]

pub mod browser;
pub mod calls;
pub mod coturn;
pub mod figures;
pub mod kamailio;
pub mod netns;
pub mod run_logs;
pub mod secrets;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const API_TOKEN: &str = "test-token-0123456789abcdef";
pub const LOCAL_DOMAIN: &str = "example.com";
pub const ALICE_PASSWORD: &str = "wonderland";
pub const BOB_PASSWORD: &str = "bob-the-builder-7";
pub const JWT_SECRET: &str = "test-jwt-secret-0123456789abcdef0123456789";

/// A free port on 127.0.0.1 for both UDP and TCP.
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = udp.local_addr().expect("addr").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port found in 100 tries");
}

/// A media port for sipp's `-mp`: sipp binds it, the port above (RTCP) and the one two above
/// (its "video" echo), so all three must be free or sipp exits at start.
pub fn free_sipp_media_port() -> u16 {
    for _ in 0..200 {
        let port = free_port();
        let free = port < u16::MAX - 3 && (1..=3).all(|offset| UdpSocket::bind(("127.0.0.1", port + offset)).is_ok());
        if free {
            return port;
        }
    }
    panic!("no free run of four ports found in 200 tries");
}

/// A port p with p and p+1 free (UDP and TCP): baresip's libre binds TLS on `sip_listen` + 1.
pub fn free_port_pair() -> u16 {
    for _ in 0..200 {
        let port = free_port();
        let next_free = port < u16::MAX
            && UdpSocket::bind(("127.0.0.1", port + 1)).is_ok()
            && TcpListener::bind(("127.0.0.1", port + 1)).is_ok();
        if next_free {
            return port;
        }
    }
    panic!("no free port pair found in 200 tries");
}

pub struct GatewayOptions {
    /// Extra profile files: (file name, TOML text).
    pub profiles: Vec<(String, String)>,
    pub tls_cert: Option<(PathBuf, PathBuf)>,
    pub extra_sip: String,
    /// Extra lines for the [media] section.
    pub extra_media: String,
    /// `digest_algorithms` of the local domain, in challenge order.
    pub digest_algorithms: &'static str,
    /// Extra lines for the [http] section (which comes last, so tables may follow).
    pub extra_http: String,
    /// Benchmarks run at the production default (`info`); tests want the call logic's debug lines.
    pub log_level: &'static str,
    /// Trunk or PBX profiles local user alice may call through after a password login.
    pub alice_profiles: Vec<&'static str>,
    /// The same for local user bob (a SIP client: where a transfer it asks for goes).
    pub bob_profiles: Vec<&'static str>,
    /// `srtp` of the local domain: toward the phones registered to it.
    pub local_srtp: &'static str,
    /// Called with the data directory (created, empty) before the gateway starts, e.g. to mount
    /// a small filesystem where the spool goes.
    pub prepare_data_dir: Option<fn(&Path)>,
    /// A `ws` SIP listener (RFC 7118) on a port of its own, found in `Gateway::ws_port`.
    pub sip_websocket: bool,
    /// More users of the local domain beside alice and bob: (name, password).
    pub local_users: Vec<(String, String)>,
    /// Trunk or PBX profiles every one of `local_users` may call through.
    pub local_user_profiles: Vec<&'static str>,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        GatewayOptions { profiles: Vec::new(), tls_cert: None, extra_sip: String::new(), extra_media: String::new(), digest_algorithms: "[\"MD5\"]", extra_http: String::new(), log_level: "info,sipbridge=debug", alice_profiles: Vec::new(), bob_profiles: Vec::new(), local_srtp: "optional", prepare_data_dir: None, sip_websocket: false, local_users: Vec::new(), local_user_profiles: Vec::new() }
    }
}

pub struct Gateway {
    pub dir: tempfile::TempDir,
    /// Its stdout and stderr: in the run's log directory under `make test` (`run_logs`).
    pub log_path: PathBuf,
    pub sip_port: u16,
    pub tls_port: u16,
    pub http_port: u16,
    /// The `ws` SIP listener's port (`GatewayOptions::sip_websocket`), else 0.
    pub ws_port: u16,
    child: Child,
}

impl Gateway {
    /// Starts the gateway on free ports. A port found free can be taken by another socket of
    /// this machine before the gateway binds it (tests and the load tool bind ephemeral ports in
    /// parallel); then the gateway is started again on other ports, a bounded number of times.
    pub fn start(options: GatewayOptions) -> Gateway {
        for _ in 0..4 {
            match Gateway::start_once(&options) {
                Ok(gateway) => return gateway,
                Err(log) => eprintln!("a port was taken before the gateway bound it; starting again:\n{log}"),
            }
        }
        panic!("the gateway could not bind free ports in 4 tries");
    }

    fn start_once(options: &GatewayOptions) -> Result<Gateway, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let (sip_port, tls_port, http_port) = (free_port(), free_port(), free_port());
        let ws_port = if options.sip_websocket { free_port() } else { 0 };
        let ws_listener = if options.sip_websocket { format!("[[sip.listen]]\ntransport = \"ws\"\naddress = \"127.0.0.1:{ws_port}\"\n") } else { String::new() };
        // A media range per gateway, spread by process and port so parallel tests rarely overlap,
        // and below the kernel's ephemeral ports (32768 and up), which browsers and sipp take.
        let rtp_min = 20_000 + (u32::from(http_port) * 7 + std::process::id()) % 120 * 100;
        let (rtp_min, rtp_max) = (rtp_min, rtp_min + 98);
        let tls = match &options.tls_cert {
            Some((cert, key)) => format!("[sip.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n", cert.display(), key.display()),
            None => String::new(),
        };
        let extra_media = &options.extra_media;
        let media_range = if extra_media.contains("rtp_port_min") { String::new() } else { format!("rtp_port_min = {rtp_min}\nrtp_port_max = {rtp_max}\n") };
        let config = format!(
            "[general]\ndata_dir = \"data\"\nlog_level = \"{}\"\n\n\
             [sip]\nprofiles_dir = \"profiles\"\n{}\n\
             [[sip.listen]]\ntransport = \"udp\"\naddress = \"127.0.0.1:{sip_port}\"\n\
             [[sip.listen]]\ntransport = \"tcp\"\naddress = \"127.0.0.1:{sip_port}\"\n\
             [[sip.listen]]\ntransport = \"tls\"\naddress = \"127.0.0.1:{tls_port}\"\n{ws_listener}\n{tls}\n\
             [media]\naddress = \"127.0.0.1\"\n{media_range}{extra_media}\n\
             [http]\nlisten = \"127.0.0.1:{http_port}\"\napi_tokens = [\"{API_TOKEN}\"]\njwt_secret = \"{JWT_SECRET}\"\n{}",
            options.log_level,
            if options.extra_sip.contains("rate_limit") {
                options.extra_sip.clone()
            } else {
                // Tests send bursts from one address; the production default would throttle them.
                format!("rate_limit_per_second = 5000\nrate_limit_burst = 10000\n{}", options.extra_sip)
            },
            options.extra_http
        );
        std::fs::write(dir.path().join("gateway.toml"), config).expect("write config");
        let profiles = dir.path().join("profiles");
        std::fs::create_dir(&profiles).expect("mkdir");
        let mut local = format!(
            "kind = \"local\"\ndomain = \"{LOCAL_DOMAIN}\"\naliases = [\"127.0.0.1\", \"example.org\"]\nmin_expires = 60\n\
             digest_algorithms = {}\nsrtp = \"{}\"\n\
             [[users]]\nusername = \"alice\"\npassword = \"{ALICE_PASSWORD}\"\nprofiles = {:?}\n\
             [[users]]\nusername = \"bob\"\npassword = \"{BOB_PASSWORD}\"\nprofiles = {:?}\n",
            options.digest_algorithms,
            options.local_srtp,
            options.alice_profiles,
            options.bob_profiles
        );
        for (username, password) in &options.local_users {
            local.push_str(&format!("[[users]]\nusername = \"{username}\"\npassword = \"{password}\"\nprofiles = {:?}\n", options.local_user_profiles));
        }
        std::fs::write(profiles.join("local.toml"), local).expect("write profile");
        for (name, text) in &options.profiles {
            std::fs::write(profiles.join(name), text).expect("write profile");
        }
        if let Some(prepare) = options.prepare_data_dir {
            let data = dir.path().join("data");
            std::fs::create_dir_all(&data).expect("mkdir data");
            prepare(&data);
        }
        let log_path = run_logs::gateway_log_path(dir.path());
        let child = Gateway::spawn(dir.path(), &log_path);
        let mut gateway = Gateway { dir, log_path, sip_port, tls_port, http_port, ws_port, child };
        gateway.wait_ready()?;
        Ok(gateway)
    }

    /// The gateway process on the config in `dir`, logging to the end of `log_path`.
    fn spawn(dir: &Path, log_path: &Path) -> Child {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log_path).expect("log file");
        Command::new(env!("CARGO_BIN_EXE_sipbridge"))
            .arg("--config")
            .arg(dir.join("gateway.toml"))
            .env("NO_COLOR", "1")
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .spawn()
            .expect("start sipbridge")
    }

    /// Starts the gateway again on the same config, ports and data directory, once the previous
    /// process has exited (e.g. after `signal("KILL")`). Its log follows the previous one.
    pub fn restart(&mut self) {
        let exit = self.wait_exit(Duration::from_secs(10));
        assert!(exit.is_some(), "the previous gateway process is still running");
        self.child = Gateway::spawn(self.dir.path(), &self.log_path);
        if let Err(log) = self.wait_ready() {
            panic!("the restarted gateway could not bind its ports again:\n{log}");
        }
    }

    /// `Err` with the log when the gateway exited because a port was already in use.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(exit)) = self.child.try_wait() {
                let log = self.log();
                if log.contains("Address already in use") {
                    return Err(log);
                }
                panic!("gateway exited with {exit}; log:\n{log}");
            }
            if let Ok((200, _)) = http_get(self.http_port, "/healthz", None) {
                return Ok(());
            }
            // `[http.tls]`: plain HTTP gets no answer; the banner comes once HTTPS listens.
            if self.log().contains("HTTPS listening") && self.log().contains("sipbridge is ready") {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("gateway did not become ready; log:\n{}", self.log());
    }

    /// Waits (at most 20 s) until the gateway has logged `what`.
    pub fn wait_for_log(&self, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.log().contains(what) {
            assert!(Instant::now() < deadline, "the gateway never logged {what:?}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `sipbridge drain` on this gateway's config, run to its end.
    pub fn drain_command(&self) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_sipbridge")).arg("--config").arg(self.dir.path().join("gateway.toml")).arg("drain").output().expect("run sipbridge drain")
    }

    /// Sends the gateway `signal` (e.g. "TERM") the way an init system does.
    pub fn signal(&self, signal: &str) {
        let sent = Command::new("kill").arg(format!("-{signal}")).arg(self.pid().to_string()).status().expect("run kill");
        assert!(sent.success(), "kill -{signal} {}", self.pid());
    }

    /// Waits up to `within` for the process to exit; its status, or None if it is still running.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every record in the gateway's embedded SQLite, read directly (also after it exited).
    pub fn stored_records(&self) -> Vec<sipbridge::store::CallRecord> {
        use sipbridge::store::CallStore;
        let url = format!("sqlite://{}", self.dir.path().join("data/records.db").display());
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let store = sipbridge::store::SqlStore::connect(&url).await.expect("open the gateway's database");
            let filter = sipbridge::store::RecordFilter { limit: 1_000, ..Default::default() };
            let records = store.list(&filter).await.expect("list records");
            store.close().await;
            records
        })
    }

    pub fn sip_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.sip_port))
    }

    pub fn log(&self) -> String {
        // Lossy: a log line may quote bytes from the network that are not UTF-8.
        std::fs::read(&self.log_path).map(|bytes| String::from_utf8_lossy(&bytes).into_owned()).unwrap_or_default()
    }

    /// The SIP status document from the API.
    pub fn status(&self) -> serde_json::Value {
        let (code, body) = http_get(self.http_port, "/api/v1/sip/status", Some(API_TOKEN)).expect("status request");
        assert_eq!(code, 200, "status API: {body}");
        serde_json::from_str(&body).expect("status JSON")
    }

    /// Waits (bounded) until `check` accepts the status document; returns it.
    pub fn wait_status(&self, what: &str, timeout: Duration, check: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.status();
            if check(&status) {
                return status;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; last status:\n{status:#}\nlog:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 GET: the tests need no HTTP client crate for a few endpoints.
pub fn http_get(port: u16, path: &str, token: Option<&str>) -> std::io::Result<(u16, String)> {
    http_request("GET", port, path, token)
}

/// A bodyless POST, like `http_get`.
pub fn http_post(port: u16, path: &str, token: Option<&str>) -> std::io::Result<(u16, String)> {
    http_request("POST", port, path, token)
}

fn http_request(method: &str, port: u16, path: &str, token: Option<&str>) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(stream, "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let code = response.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((code, dechunk(&body)))
}

fn dechunk(body: &str) -> String {
    // axum answers JSON with a Content-Length, but tolerate chunked bodies.
    let mut out = String::new();
    let mut rest = body;
    loop {
        let Some((size, after)) = rest.split_once("\r\n") else { return body.to_string() };
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else { return body.to_string() };
        if size == 0 {
            return out;
        }
        if after.len() < size {
            return body.to_string();
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
}

/// The status code of the first SIP response in `text`, if any.
pub fn status_code(text: &str) -> Option<u16> {
    text.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}

pub fn sipp_available() {
    assert!(
        Command::new("sipp").arg("-v").output().is_ok(),
        "sipp is not installed: `make test` installs it (package sip-tester)"
    );
}

pub struct SippRun {
    pub output: Output,
    /// sipp's `-trace_err` log: the unexpected messages, if any.
    pub errors: String,
}

impl SippRun {
    pub fn success(&self) -> bool {
        self.output.status.success()
    }
    pub fn describe(&self) -> String {
        format!("{}
sipp errors log:\n{}", describe(&self.output), self.errors)
    }
}

/// Runs a sipp scenario (from tests/sipp) against `target` in a scratch directory, so its logs
/// never land in the repository. Bounded by sipp's own -timeout.
pub fn sipp(scenario: &str, target: &str, extra: &[&str]) -> SippRun {
    sipp_with_files(scenario, target, extra, &[])
}

/// `sipp`, with files (e.g. a generated pcap) written next to the scenario first.
pub fn sipp_with_files(scenario: &str, target: &str, extra: &[&str], files: &[(&str, &[u8])]) -> SippRun {
    let work = tempfile::tempdir().expect("tempdir");
    for (name, bytes) in files {
        std::fs::write(work.path().join(name), bytes).expect("write a file for sipp");
    }
    // `builtin:NAME` runs one of sipp's own scenarios (`-sn`), anything else a file of tests/sipp.
    let scenario_args = match scenario.strip_prefix("builtin:") {
        Some(name) => vec!["-sn".to_string(), name.to_string()],
        None => {
            let file = work.path().join(scenario);
            std::fs::copy(scenario_path(scenario), &file).expect("copy scenario");
            vec!["-sf".to_string(), file.to_string_lossy().into_owned()]
        }
    };
    // Scenarios that play audio find sipp's bundled captures as pcap/ next to them.
    let _ = std::os::unix::fs::symlink("/usr/share/sip-tester", work.path().join("pcap"));
    let output = Command::new("sipp")
        .arg(target)
        .args(&scenario_args)
        .args(["-i", "127.0.0.1", "-m", "1", "-nostdin", "-timeout", "30s", "-timeout_error", "-trace_err"])
        .args(extra)
        .current_dir(work.path())
        .stdin(Stdio::null())
        .output()
        .expect("run sipp");
    let mut errors = String::new();
    for entry in std::fs::read_dir(work.path()).expect("read dir").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.contains("_errors.log") || name.contains("_messages.log") {
            errors.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
        }
    }
    SippRun { output, errors }
}

/// The gateway's record of its one call as the REST API returns it, once the call has ended.
pub fn completed_record(gateway: &Gateway) -> sipbridge::store::CallRecord {
    for _ in 0..100 {
        let listed = http_get(gateway.http_port, "/api/v1/calls?limit=10", Some(API_TOKEN)).ok();
        let ended = listed
            .and_then(|(_, body)| serde_json::from_str::<serde_json::Value>(&body).ok())
            .and_then(|page| page["calls"].as_array().and_then(|calls| calls.iter().find(|c| !c["ended_at"].is_null()).cloned()));
        if let Some(id) = ended.as_ref().and_then(|c| c["id"].as_str()) {
            let (status, body) = http_get(gateway.http_port, &format!("/api/v1/calls/{id}"), Some(API_TOKEN)).expect("record");
            assert_eq!(status, 200, "{body}");
            return serde_json::from_str(&body).unwrap_or_else(|e| panic!("the API's record reads as a CallRecord ({e}): {body}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no completed call record from the API\n{}", gateway.log());
}

/// The gateway's message counters: requests received, and responses sent by status.
pub fn sip_counters(gateway: &Gateway) -> (u64, std::collections::BTreeMap<String, u64>) {
    let status = gateway.status();
    let received = status["counters"]["messages_received"].as_u64().unwrap_or(0);
    let sent = status["counters"]["responses_sent"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0))).collect())
        .unwrap_or_default();
    (received, sent)
}

/// Sends one datagram and reads back from the counters which final status (if any) it produced,
/// once the gateway has counted it: answers to UDP may go to a Via address nobody listens on.
pub fn answer_to_datagram(gateway: &Gateway, socket: &UdpSocket, bytes: &[u8]) -> Option<u16> {
    let (received_before, sent_before) = sip_counters(gateway);
    socket.send_to(bytes, gateway.sip_addr()).expect("send");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (received, sent) = sip_counters(gateway);
        if received > received_before {
            let answered: Vec<u16> = sent
                .iter()
                .filter(|(code, count)| sent_before.get(*code).copied().unwrap_or(0) < **count)
                .filter_map(|(code, _)| code.parse().ok())
                .filter(|code| *code != 100)
                .collect();
            assert!(answered.len() <= 1, "one message produced several answers: {answered:?}");
            return answered.first().copied();
        }
        assert!(Instant::now() < deadline, "the gateway never counted the datagram");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `-trace_err` logs a sipp run left in `dir`: what it did not expect, for failure messages.
pub fn sipp_error_logs(dir: &Path) -> String {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with("_errors.log"))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .collect()
}

/// Waits (at most 10 s) until something has bound UDP `port` on 127.0.0.1, e.g. a peer started
/// in the background that must be listening before the gateway calls it.
pub fn wait_udp_bound(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while UdpSocket::bind(("127.0.0.1", port)).is_ok() {
        assert!(Instant::now() < deadline, "nothing bound UDP port {port} within 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn scenario_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sipp").join(name)
}

pub fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
