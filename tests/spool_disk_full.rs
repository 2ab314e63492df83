//! The spool's disk fills up (a 1 MiB tmpfs mounted where the spool lives, filled by the test):
//! calls go on, the gateway logs one clear error line (at most one a minute), /metrics shows the
//! spool unwritable with the writes waiting in memory, /readyz answers 503 `records_degraded`,
//! and once space returns every record reaches the database: none is lost.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::{free_port, http_get, sipp, Gateway, GatewayOptions, API_TOKEN};

const BEFORE: usize = 2;
const DURING: usize = 5;
const ERROR_LINE: &str = "cannot write the call record spool";

/// Mounts a 1 MiB tmpfs where the gateway keeps its spool (the test runs as root, as `make test`
/// does in CI; a test that cannot mount fails rather than skips).
fn small_spool_disk(data: &Path) {
    let spool = data.join("spool");
    std::fs::create_dir_all(&spool).expect("mkdir spool");
    let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs"]).arg(&spool).status().expect("run mount");
    assert!(mounted.success(), "mounting a tmpfs for the spool needs root (make test runs as root)");
}

/// Unmounts the spool's tmpfs when the test ends, whatever happens.
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn metric(gateway: &Gateway, name: &str) -> u64 {
    let (_, metrics) = http_get(gateway.http_port, "/metrics", Some(API_TOKEN)).expect("metrics");
    let prefix = format!("{name} ");
    metrics.lines().find_map(|l| l.strip_prefix(prefix.as_str())).and_then(|v| v.trim().parse().ok()).unwrap_or_else(|| panic!("no {name} in /metrics:\n{metrics}"))
}

/// The records the API lists, as (id, ended).
fn records(gateway: &Gateway) -> Vec<(String, bool)> {
    let (status, body) = http_get(gateway.http_port, "/api/v1/calls?limit=100", Some(API_TOKEN)).expect("records");
    assert_eq!(status, 200, "{body}");
    let page: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    page["calls"].as_array().cloned().unwrap_or_default().iter().map(|c| (c["id"].as_str().unwrap_or("").to_string(), !c["ended_at"].is_null())).collect()
}

/// One short real call: nobody is logged in as alice, so the trunk gets 480 and the call is missed.
fn missed_call(gateway: &Gateway) {
    let run = sipp("call_nobody.xml", &gateway.sip_addr().to_string(), &["-t", "u1", "-p", &free_port().to_string()]);
    assert!(run.success(), "the call goes on as usual: {}\n{}", run.describe(), gateway.log());
}

fn wait_for(what: &str, gateway: &Gateway, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "{what}\n{}", gateway.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Writes into `dir` until the disk refuses more; the filler's path.
fn fill(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).expect("create filler");
    let chunk = vec![0u8; 4096];
    for _ in 0..1_000 {
        if file.write_all(&chunk).and_then(|()| file.sync_data()).is_err() {
            return path;
        }
    }
    panic!("a 1 MiB tmpfs took 4 MB");
}

#[test]
fn a_full_spool_disk_degrades_readiness_and_loses_no_record_once_space_returns() {
    support::sipp_available();
    let trunk = "kind = \"trunk\"\nhost = \"127.0.0.1\"\ntrusted_addresses = [\"127.0.0.1\"]\n".to_string();
    let gateway = Gateway::start(GatewayOptions { profiles: vec![("trunk.toml".into(), trunk)], prepare_data_dir: Some(small_spool_disk), ..Default::default() });
    let spool = gateway.dir.path().join("data/spool");
    let _unmount = Unmount(spool.clone());

    for _ in 0..BEFORE {
        missed_call(&gateway);
    }
    wait_for("the first records reach the database", &gateway, || records(&gateway).iter().filter(|(_, ended)| *ended).count() == BEFORE);
    assert_eq!(metric(&gateway, "sipbridge_record_spool_writable"), 1);

    let filler = fill(&spool);
    for _ in 0..DURING {
        missed_call(&gateway);
    }
    wait_for("the spool is reported unwritable", &gateway, || metric(&gateway, "sipbridge_record_spool_writable") == 0);
    let held = metric(&gateway, "sipbridge_record_memory_backlog");
    assert!(held >= 1, "the writes wait in memory: {held}");
    let (ready, body) = http_get(gateway.http_port, "/readyz", Some(API_TOKEN)).expect("readyz");
    assert_eq!(ready, 503, "{body}");
    assert!(body.contains("records_degraded"), "{body}");
    // Retried every second: let a few retries fail before space returns.
    let errors_before = metric(&gateway, "sipbridge_record_spool_errors_total");
    wait_for("the spool is retried", &gateway, || metric(&gateway, "sipbridge_record_spool_errors_total") >= errors_before + 2);
    let errors = metric(&gateway, "sipbridge_record_spool_errors_total");
    let log = gateway.log();
    let error_lines = log.lines().filter(|l| l.contains(ERROR_LINE)).count();
    assert_eq!(error_lines, 1, "one error line for {errors} failed spool writes within a minute:\n{log}");
    assert!(log.lines().any(|l| l.contains(ERROR_LINE) && l.contains("ERROR") && l.contains("disk full")), "the line says what is wrong:\n{log}");

    std::fs::remove_file(&filler).expect("free the disk");
    wait_for("every record reaches the database once space returns", &gateway, || {
        let listed = records(&gateway);
        listed.len() == BEFORE + DURING && listed.iter().all(|(_, ended)| *ended)
    });
    assert_eq!(metric(&gateway, "sipbridge_record_spool_writable"), 1);
    assert_eq!(metric(&gateway, "sipbridge_record_memory_backlog"), 0);
    assert_eq!(metric(&gateway, "sipbridge_record_writes_dropped_total"), 0);
    wait_for("/readyz is 200 again", &gateway, || http_get(gateway.http_port, "/readyz", Some(API_TOKEN)).is_ok_and(|(code, _)| code == 200));
    gateway.wait_for_log("the call record spool is writable again");
    let mut ids: Vec<String> = records(&gateway).into_iter().map(|(id, _)| id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), BEFORE + DURING, "none twice");
    crate::figures!(
        "disk full: {DURING} calls while the spool could not be written, {held} writes held in memory, {errors} failed spool writes, 1 error line; afterwards {} records, 0 lost, 0 dropped",
        ids.len()
    );
}
