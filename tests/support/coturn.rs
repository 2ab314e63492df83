//! coturn (Debian's `turnserver`) on a free loopback port with `use-auth-secret`, as operators run
//! it for WebRTC, and the gateway configuration pointing at it.

use super::free_port;
use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const TURN_SECRET: &str = "coturn-static-auth-secret-7f3a9c";

/// coturn on a free loopback port, as Debian ships it, with a relay range of its own.
pub struct Coturn {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Coturn {
    pub fn start() -> Coturn {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let relay_min = 40_000 + (u32::from(port) * 13 + std::process::id()) % 200 * 100;
        let child = Command::new("turnserver")
            .args(["--use-auth-secret", &format!("--static-auth-secret={TURN_SECRET}"), "--realm=sipbridge.test"])
            .args(["--allow-loopback-peers", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", "--no-cli"])
            .args(["--no-tls", "--no-dtls", "--no-tcp-relay", "--listening-port", &port.to_string()])
            .args(["--min-port", &relay_min.to_string(), "--max-port", &(relay_min + 99).to_string()])
            .arg(format!("--userdb={}", dir.path().join("turndb").display()))
            .arg(format!("--pidfile={}", dir.path().join("turnserver.pid").display()))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start turnserver (package coturn)");
        let mut coturn = Coturn { child, port, _dir: dir };
        coturn.wait_ready();
        coturn
    }

    /// Ready when it answers a STUN Binding request (RFC 5389), polled within 10 s.
    fn wait_ready(&mut self) {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
        let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
        request.extend_from_slice(b"sipbridge-ok");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buffer = [0u8; 512];
        while Instant::now() < deadline {
            if let Ok(Some(exit)) = self.child.try_wait() {
                panic!("turnserver exited with {exit}");
            }
            let _ = socket.send_to(&request, ("127.0.0.1", self.port));
            if let Ok((n, _)) = socket.recv_from(&mut buffer) {
                if n >= 20 && buffer[..2] == [0x01, 0x01] {
                    return;
                }
            }
        }
        panic!("turnserver never answered STUN on 127.0.0.1:{}", self.port);
    }

    /// The gateway's `[[http.ice_servers]]` for this server.
    pub fn ice_servers_config(&self) -> String {
        format!(
            "\n[[http.ice_servers]]\nurls = [\"turn:127.0.0.1:{}?transport=udp\"]\nshared_secret = \"{TURN_SECRET}\"\ncredential_lifetime_secs = 3600\n",
            self.port
        )
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

