//! The upstream PBX restarts: a sipp registrar the gateway registers to (and pings every second) is
//! killed and started again on the same port. The gateway shows it down (status and /metrics:
//! peer down, no upstream registration) and, once it answers again, registers to it at once,
//! well within 30 s, rather than at the next refresh minutes later; status and /metrics are up again.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{free_port, http_get, scenario_path, sipp_available, Gateway, GatewayOptions, API_TOKEN};

const REREGISTER_WITHIN: Duration = Duration::from_secs(30);

/// The registrar: sipp answering REGISTER and OPTIONS on `port`, logging what it receives.
struct Registrar {
    child: Child,
    work: tempfile::TempDir,
}

impl Registrar {
    fn start(port: u16) -> Registrar {
        sipp_available();
        let work = tempfile::tempdir().expect("tempdir");
        let child = Command::new("sipp")
            .arg("-sf")
            .arg(scenario_path("registrar_restarting.xml"))
            .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-t", "u1", "-m", "100000", "-nostdin", "-trace_msg"])
            .current_dir(work.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sipp");
        support::wait_udp_bound(port);
        Registrar { child, work }
    }

    /// How many REGISTER requests it received.
    fn registers(&self) -> usize {
        let logs = std::fs::read_dir(self.work.path()).into_iter().flatten().flatten().filter(|e| e.file_name().to_string_lossy().ends_with("_messages.log"));
        logs.filter_map(|e| std::fs::read_to_string(e.path()).ok()).map(|text| text.lines().filter(|l| l.starts_with("REGISTER sip:")).count()).sum()
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Registrar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn metrics(gateway: &Gateway) -> String {
    let (code, body) = http_get(gateway.http_port, "/metrics", Some(API_TOKEN)).expect("metrics");
    assert_eq!(code, 200, "{body}");
    body
}

fn up(status: &serde_json::Value) -> bool {
    let pbx = &status["upstreams"][0];
    pbx["peer_status"] == "up" && pbx["registered"] == true
}

#[test]
fn a_restarted_registrar_is_shown_down_then_up_and_registered_to_again_within_30_s() {
    let port = free_port();
    let first = Registrar::start(port);
    let profile = format!(
        "kind = \"pbx\"\nhost = \"127.0.0.1\"\nport = {port}\ntransport = \"udp\"\nregister = true\nregister_expires = 300\n\
         ping = true\nping_interval_secs = 1\nusername = \"gw-user\"\npassword = \"gw-secret\"\n"
    );
    // T1 = 50 ms: an unanswered ping times out after 64*T1 = 3.2 s.
    let gateway = Gateway::start(GatewayOptions { profiles: vec![("pbx.toml".into(), profile)], extra_sip: "t1_ms = 50\nt2_ms = 400\n".into(), ..Default::default() });
    gateway.wait_status("registered, peer up", Duration::from_secs(10), up);
    let before = metrics(&gateway);
    assert!(before.contains("sipbridge_peer_up{profile=\"pbx\"} 1") && before.contains("sipbridge_registrations{side=\"upstream\"} 1"), "{before}");
    assert!(first.registers() >= 1, "the first registrar saw the REGISTER");

    first.kill();
    let killed = Instant::now();
    let down = gateway.wait_status("peer down", Duration::from_secs(10), |s| s["upstreams"][0]["peer_status"] == "down");
    assert_eq!(down["upstreams"][0]["registered"], false, "a registrar that does not answer holds no binding we count on: {down:#}");
    let during = metrics(&gateway);
    assert!(during.contains("sipbridge_peer_up{profile=\"pbx\"} 0") && during.contains("sipbridge_registrations{side=\"upstream\"} 0"), "{during}");
    let noticed = killed.elapsed();

    let second = Registrar::start(port);
    let restarted = Instant::now();
    let again = gateway.wait_status("registered again", REREGISTER_WITHIN, up);
    let took = restarted.elapsed();
    assert!(second.registers() >= 1, "the restarted registrar got a REGISTER\n{}", gateway.log());
    assert!(again["upstreams"][0]["expires_in_secs"].as_u64().is_some_and(|e| e >= 297), "a fresh 300 s binding (the first one has run for longer than the outage): {again:#}");
    let after = metrics(&gateway);
    assert!(after.contains("sipbridge_peer_up{profile=\"pbx\"} 1") && after.contains("sipbridge_registrations{side=\"upstream\"} 1"), "{after}");
    assert!(gateway.log().contains("peer is back; registering again"), "{}", gateway.log());
    crate::figures!("registrar restart: seen down {:.1} s after the kill, registered again {:.1} s after it came back (limit 30 s)", noticed.as_secs_f64(), took.as_secs_f64());
}
