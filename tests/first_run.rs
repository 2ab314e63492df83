//! The first run, as `make run` does it: `sipbridge.example.toml` and `sip-profiles/` exactly as
//! shipped, in a network namespace of the test's own that has a non-loopback interface (`sb0`,
//! 10.200.2.1/24) and a default route through it, so anything the gateway sent to another host
//! would leave there. A capture on `sb0` stays empty from before the start until a while after the
//! gateway is ready; a datagram the test sends itself at the end shows the capture would have seen
//! one. Meanwhile the console: the one-time admin password from the log, a login whose session may
//! do nothing but change it, then the new password.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use support::netns::{run, Netns};

const ADDRESS: &str = "10.200.2.1";
/// How long after the gateway is ready the capture must stay empty (OPTIONS pings and
/// registrations start at once; the shortest example ping interval is 30 s, the first is at start).
const QUIET_WINDOW: Duration = Duration::from_secs(5);
/// The test's own datagram, to an address no profile names.
const CONTROL_TARGET: &str = "198.51.100.99";

#[test]
fn first_run_sends_nothing_away_and_makes_a_one_time_admin() {
    let netns = Netns::create("first", ADDRESS);
    netns.ip(&["route", "add", "default", "dev", "sb0"]);
    // IPv4 only on the veth pair: the kernel's own IPv6 chatter (router solicitations, MLD)
    // would otherwise show in the capture. The gateway still listens on [::] (loopback ::1).
    for device in ["sb0", "sb1"] {
        run(netns.command("sysctl").args(["-qw", &format!("net.ipv6.conf.{device}.disable_ipv6=1")]));
    }
    let work = tempfile::tempdir().expect("tempdir");
    let pcap = work.path().join("sb0.pcap");
    let mut capture = Capture::start(&netns, &pcap);

    let mut gateway = FirstRun::start(&netns, work.path());
    let ready = gateway.wait_ready(&netns);
    console_first_login(&netns, &gateway.log());
    std::thread::sleep(QUIET_WINDOW.saturating_sub(ready.elapsed()));
    let log = gateway.log();
    assert!(gateway.running(), "the gateway stopped:\n{log}");

    // The capture works: the test's own datagram (and its ARP) shows in it.
    netns.within(|| {
        let socket = std::net::UdpSocket::bind("0.0.0.0:0").expect("udp");
        socket.send_to(b"control", (CONTROL_TARGET, 9)).expect("send the control datagram");
    });
    let packets = capture.stop_when(|packets| packets.iter().any(|p| p.contains(CONTROL_TARGET)));
    let others: Vec<&String> = packets.iter().filter(|p| !p.contains(CONTROL_TARGET)).collect();
    assert!(packets.iter().any(|p| p.contains(CONTROL_TARGET)), "the capture missed the control datagram: {packets:?}");
    assert!(others.is_empty(), "the example configuration sent packets away from the host:\n{others:#?}\n{log}");
    assert!(log.contains("profiles=1"), "only the local domain is loaded:\n{log}");
}

/// The one-time password from the log; the API refuses that session everything until the password
/// is changed; the old password stops working and the new one works.
fn console_first_login(netns: &Netns, log: &str) {
    let password = one_time_password(log);
    assert_eq!(log.matches(&password).count(), 1, "the password is printed once:\n{log}");
    let new_password = "a-password-of-my-own";
    netns.within(move || {
        let (status, head, body) = request("POST", "/console/login", None, &format!("{{\"username\":\"admin\",\"password\":\"{password}\"}}"));
        assert_eq!(status, 200, "login with the one-time password: {body}");
        assert!(body.contains("\"must_change_password\":true"), "{body}");
        let cookie = session_cookie(&head);
        let (status, _, body) = request("GET", "/api/v1/calls", Some(&cookie), "");
        assert_eq!(status, 403, "nothing but the password change: {body}");
        assert!(body.contains("password_change_required"), "{body}");
        assert_eq!(request("GET", "/api/v1/sip/status", Some(&cookie), "").0, 403);
        let (status, _, body) = request("GET", "/console/me", Some(&cookie), "");
        assert!(status == 200 && body.contains("\"must_change_password\":true"), "{status} {body}");

        let change = |current: &str, new: &str| request("POST", "/console/password", Some(&cookie), &format!("{{\"current_password\":\"{current}\",\"new_password\":\"{new}\"}}"));
        assert_eq!(change("not the password", new_password).0, 401, "the current password is checked");
        let (status, _, body) = change(&password, "short");
        assert!(status == 400 && body.contains("10 characters"), "{status} {body}");
        assert_eq!(change(&password, &password).0, 400, "the one-time password cannot be kept");
        let (status, _, body) = change(&password, new_password);
        assert_eq!(status, 200, "{body}");

        assert_eq!(request("GET", "/api/v1/calls", Some(&cookie), "").0, 200, "the session works once the password is changed");
        let login = |password: &str| request("POST", "/console/login", None, &format!("{{\"username\":\"admin\",\"password\":\"{password}\"}}"));
        assert_eq!(login(&password).0, 401, "the one-time password is gone");
        let (status, _, body) = login(new_password);
        assert!(status == 200 && body.contains("\"must_change_password\":false"), "{status} {body}");
    });
    assert!(!log.contains(new_password));
}

fn one_time_password(log: &str) -> String {
    let after = log.split("one-time password ").nth(1).unwrap_or_else(|| panic!("no one-time password in the log:\n{log}"));
    let password: String = after.chars().take_while(char::is_ascii_alphanumeric).collect();
    assert!(password.len() >= 16, "a long random password: {password:?}");
    password
}

fn session_cookie(head: &str) -> String {
    let line = head.lines().find(|l| l.to_ascii_lowercase().starts_with("set-cookie:")).unwrap_or_else(|| panic!("no cookie: {head}"));
    assert!(!line.contains("Secure"), "plain HTTP: a Secure cookie would never come back: {line}");
    line.split_once(':').map(|(_, v)| v.trim()).unwrap_or("").split(';').next().unwrap_or("").to_string()
}

/// One HTTP request to the example's port 8080 from inside the namespace: (status, head, body).
fn request(method: &str, path: &str, cookie: Option<&str>, body: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", 8080)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let cookie = cookie.map(|c| format!("Cookie: {c}\r\n")).unwrap_or_default();
    write!(stream, "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{cookie}\r\n{body}", body.len()).expect("write");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0), head.to_string(), body.to_string())
}

/// tcpdump on `sb0`, writing every packet as it comes.
struct Capture {
    child: Child,
    file: std::path::PathBuf,
}

impl Capture {
    fn start(netns: &Netns, file: &Path) -> Capture {
        let mut child = netns
            .command("tcpdump")
            .args(["-i", "sb0", "-n", "-U", "-w"])
            .arg(file)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tcpdump (scripts/system-deps.sh test installs it)");
        let stderr = child.stderr.take().expect("stderr");
        let (lines, listening) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let line = listening.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("tcpdump never said it was listening");
            if line.contains("listening on") {
                return Capture { child, file: file.to_path_buf() };
            }
        }
    }

    /// Every captured packet, one line each.
    fn packets(&self) -> Vec<String> {
        let output = std::process::Command::new("tcpdump").args(["-r"]).arg(&self.file).args(["-n", "-e"]).output().expect("tcpdump -r");
        String::from_utf8_lossy(&output.stdout).lines().map(str::to_string).collect()
    }

    /// Waits (bounded) until `done` accepts the packets, then stops the capture.
    fn stop_when(&mut self, done: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done(&self.packets()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = std::process::Command::new("kill").args(["-INT", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
        self.packets()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The gateway on the example configuration, copied as shipped (config, profiles and examples).
struct FirstRun {
    dir: std::path::PathBuf,
    child: Child,
}

impl FirstRun {
    fn start(netns: &Netns, dir: &Path) -> FirstRun {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        std::fs::copy(repo.join("sipbridge.example.toml"), dir.join("sipbridge.toml")).expect("copy the example");
        for folder in ["sip-profiles", "sip-profiles/examples"] {
            std::fs::create_dir_all(dir.join(folder)).expect("mkdir");
            for entry in std::fs::read_dir(repo.join(folder)).expect("profiles").flatten().filter(|e| e.path().is_file()) {
                std::fs::copy(entry.path(), dir.join(folder).join(entry.file_name())).expect("copy profile");
            }
        }
        let log = std::fs::File::create(dir.join("gateway.log")).expect("log");
        let child = netns
            .command(env!("CARGO_BIN_EXE_sipbridge"))
            .arg("--config")
            .arg(dir.join("sipbridge.toml"))
            .env("NO_COLOR", "1")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start sipbridge");
        FirstRun { dir: dir.to_path_buf(), child }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("gateway.log")).unwrap_or_default()
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }

    /// Waits (bounded) for the banner and for /healthz; returns when it was ready.
    fn wait_ready(&mut self, netns: &Netns) -> Instant {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            assert!(self.running(), "the gateway exited:\n{}", self.log());
            if self.log().contains("sipbridge is ready") && netns.within(|| TcpStream::connect(("127.0.0.1", 8080)).is_ok()) {
                let (status, _, _) = netns.within(|| request("GET", "/healthz", None, ""));
                assert_eq!(status, 200);
                let log = self.log();
                for expected in ["softphone:      http://localhost:8080/", "console:        http://localhost:8080/console", "echo extension: echo"] {
                    assert!(log.contains(expected), "the banner says `{expected}`:\n{log}");
                }
                return Instant::now();
            }
            assert!(Instant::now() < deadline, "the gateway never became ready:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for FirstRun {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
