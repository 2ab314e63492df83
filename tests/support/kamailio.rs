//! Kamailio 5.6 as the record-routing front proxy operators put before gateways
//! (tests/kamailio/front.cfg): dispatcher set 1 is the gateway, set 2 the trunk.

use std::net::UdpSocket;
use std::path::Path;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Proxy {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

impl Proxy {
    /// Starts Kamailio on a free loopback port in front of the gateway's SIP port and the trunk's,
    /// and returns once an OPTIONS sent through it comes back answered by the gateway.
    pub fn start(gateway_sip_port: u16, trunk_port: u16) -> Proxy {
        Proxy::start_on(super::free_port(), gateway_sip_port, trunk_port)
    }

    /// The same on a port chosen beforehand (the gateway's trunk profile points at it).
    pub fn start_on(port: u16, gateway_sip_port: u16, trunk_port: u16) -> Proxy {
        assert!(Path::new("/usr/sbin/kamailio").exists(), "kamailio is not installed: `make test` installs it (package kamailio)");
        let dir = tempfile::tempdir().expect("tempdir");
        let list = dir.path().join("dispatcher.list");
        std::fs::write(&list, format!("1 sip:127.0.0.1:{gateway_sip_port}\n2 sip:127.0.0.1:{trunk_port}\n")).expect("write list");
        let template = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kamailio/front.cfg")).expect("read cfg");
        let config = template.replace("@PROXY_PORT@", &port.to_string()).replace("@DISPATCHER_LIST@", &list.to_string_lossy());
        let cfg = dir.path().join("kamailio.cfg");
        std::fs::write(&cfg, config).expect("write cfg");
        let log = std::fs::File::create(dir.path().join("kamailio.log")).expect("log file");
        let child = Command::new("/usr/sbin/kamailio")
            .args(["-DD", "-E", "-f"])
            .arg(&cfg)
            .arg("-Y")
            .arg(dir.path())
            .arg("-P")
            .arg(dir.path().join("kamailio.pid"))
            .args(["-m", "32", "-M", "8"])
            // Its own process group: Kamailio forks workers that hold the sockets, and all of
            // them must go when the test ends.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .spawn()
            .expect("start kamailio");
        let mut proxy = Proxy { port, dir, child };
        proxy.wait_ready();
        proxy
    }

    fn wait_ready(&mut self) {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket.set_read_timeout(Some(Duration::from_millis(250))).expect("timeout");
        let local = socket.local_addr().expect("addr");
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut attempt = 0;
        while Instant::now() < deadline {
            if let Ok(Some(exit)) = self.child.try_wait() {
                panic!("kamailio exited with {exit}:\n{}", self.log());
            }
            attempt += 1;
            let options = format!(
                "OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKready{attempt};rport\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=probe\r\nTo: <sip:127.0.0.1:{port}>\r\n\
                 Call-ID: ready{attempt}@probe\r\nCSeq: {attempt} OPTIONS\r\nContent-Length: 0\r\n\r\n",
                port = self.port
            );
            let _ = socket.send_to(options.as_bytes(), ("127.0.0.1", self.port));
            let mut buf = [0u8; 4096];
            if let Ok((n, _)) = socket.recv_from(&mut buf) {
                if String::from_utf8_lossy(&buf[..n]).starts_with("SIP/2.0 200") {
                    return;
                }
            }
        }
        panic!("kamailio never relayed an OPTIONS to the gateway:\n{}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("kamailio.log")).unwrap_or_default()
    }

    /// The proxy's own trace: one line per request in (`PROXY IN`), reply seen (`PROXY REPLY`)
    /// and in-dialog request dropped for want of a Route (`PROXY DROP`).
    pub fn trace(&self) -> Vec<String> {
        self.log().lines().filter_map(|l| l.find("PROXY ").map(|i| l[i..].to_string())).collect()
    }
}

impl Drop for Proxy {
    /// SIGTERM to the whole group (the main process and its workers), SIGKILL if it lingers.
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
        let _ = self.child.wait();
    }
}
