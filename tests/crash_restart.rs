//! A gateway killed (SIGKILL) with 10 calls up, then started again on the same data directory.
//! PostgreSQL is reached through a relay whose port the test closes, so that when the gateway
//! dies some records exist only in its spool. After the restart every spooled record reaches the
//! database, and the 10 calls left "in progress" are closed as `gateway_restart` (still
//! answered, ended by the gateway), each exactly once.

mod support;
#[path = "support/postgres.rs"]
mod postgres;

use postgres::{Relay, TempDatabase};
use sipbridge::store::{CallRecord, CallStatus, CallStore, HangupSide, RecordFilter, SqlStore};
use std::time::{Duration, Instant};
use support::calls::{EchoTrunk, ManyCallsPage};
use support::{free_port, http_get, sipp, Gateway, GatewayOptions, API_TOKEN};

const CALLS: usize = 10;
const REFUSED: usize = 2;

fn spool_depth(gateway: &Gateway) -> u64 {
    let (_, metrics) = http_get(gateway.http_port, "/metrics", Some(API_TOKEN)).expect("metrics");
    metrics.lines().find_map(|l| l.strip_prefix("sipbridge_record_spool_depth ")).and_then(|v| v.trim().parse().ok()).unwrap_or(u64::MAX)
}

/// One short real call to alice, whose page refuses every incoming call as busy: 486.
fn refused_call(gateway: &Gateway) {
    let run = sipp("call_busy.xml", &format!("127.0.0.1:{}", gateway.sip_port), &["-t", "u1", "-p", &free_port().to_string()]);
    assert!(run.success(), "{}", run.describe());
}

#[test]
fn calls_up_when_the_gateway_is_killed_are_closed_as_gateway_restart_after_it_starts_again() {
    support::sipp_available();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let database = TempDatabase::create();
    let direct = runtime.block_on(async {
        let direct = SqlStore::connect(&database.url).await.expect("connect");
        direct.migrate().await.expect("migrate");
        direct
    });
    let (_, target) = database.through(0);
    let relay = runtime.block_on(Relay::start(target));
    let (relayed_url, _) = database.through(relay.port);
    let trunk_port = free_port();
    let trunk = format!("kind = \"trunk\"\nhost = \"127.0.0.1\"\nport = {trunk_port}\ntrusted_addresses = [\"127.0.0.1\"]\n");
    let mut gateway = Gateway::start(GatewayOptions {
        profiles: vec![("trunk.toml".into(), trunk)],
        extra_media: format!("\n[calls]\nmax_per_user = 40\n\n[records]\ndatabase_url = \"{relayed_url}\"\n"),
        ..Default::default()
    });
    let list = || runtime.block_on(direct.list(&RecordFilter { limit: 100, ..Default::default() })).unwrap_or_default();
    let wait_until = |what: &str, gateway: &Gateway, done: &dyn Fn(&[CallRecord]) -> bool| -> Vec<CallRecord> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let records = list();
            if done(&records) && spool_depth(gateway) == 0 {
                return records;
            }
            assert!(Instant::now() < deadline, "{what}: {records:#?}\n{}", gateway.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    };

    // 10 answered calls from a browser to an echoing sipp trunk; their records (in progress,
    // answered) reach the database, so the spool starts over empty and only remembers them as open.
    let echo = EchoTrunk::answering(trunk_port, CALLS);
    let page = {
        let mut page = ManyCallsPage::start(&gateway, CALLS, 0);
        page.expect_line("ESTABLISHED");
        page
    };
    let up = wait_until("the answered calls' records reach the database", &gateway, &|r| r.len() == CALLS && r.iter().all(|r| r.answered_at.is_some()));
    assert!(up.iter().all(|r| r.status == CallStatus::InProgress), "{up:#?}");

    // The database goes away; two calls are refused; their records wait in the spool.
    relay.set_up(false);
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..REFUSED {
        refused_call(&gateway);
    }
    let spooled = spool_depth(&gateway);
    assert!(spooled >= REFUSED as u64, "the refused calls' writes wait in the spool: {spooled}\n{}", gateway.log());

    gateway.signal("KILL");
    let killed_at = sipbridge::call::call_log::now_ms();
    assert!(gateway.wait_exit(Duration::from_secs(5)).is_some(), "SIGKILL ends the process");
    page.stop();
    drop(echo);
    assert_eq!(list().len(), CALLS, "nothing reached the database while its port was closed");

    relay.set_up(true);
    let restarted = Instant::now();
    gateway.restart();
    let records = wait_until("every record arrives and none is left in progress", &gateway, &|r| {
        r.len() >= CALLS + REFUSED && r.iter().all(|r| r.status != CallStatus::InProgress)
    });
    let took = restarted.elapsed();
    assert_eq!(records.len(), CALLS + REFUSED, "no record twice, none missing: {records:#?}");
    let closed: Vec<&CallRecord> = records.iter().filter(|r| r.hangup_reason.as_deref().is_some_and(|h| h.starts_with("gateway_restart"))).collect();
    assert_eq!(closed.len(), CALLS, "every call up at the kill is closed as gateway_restart: {records:#?}");
    for record in &closed {
        assert_eq!((record.status, record.hangup_side), (CallStatus::Answered, Some(HangupSide::Gateway)), "{record:#?}");
        let ended = record.ended_at.expect("ended");
        assert!(ended >= killed_at && record.billable_secs.is_some_and(|s| s > 0), "ended at the restart: {record:#?}");
        assert!(record.events.iter().any(|e| e.kind == "ended" && e.detail.starts_with("gateway_restart")), "{record:#?}");
    }
    let refused = records.iter().filter(|r| r.status == CallStatus::Busy && r.hangup_sip_code == Some(486)).count();
    assert_eq!(refused, REFUSED, "the spooled records of the refused calls arrived as they were written: {records:#?}");
    let log = gateway.log();
    assert!(log.contains("call records waiting in the spool from before"), "{log}");
    assert!(log.contains("closed as gateway_restart"), "{log}");
    crate::figures!(
        "crash with {CALLS} calls up and {spooled} record writes only in the spool: after the restart {} records ({CALLS} closed as gateway_restart, {REFUSED} refused calls from the spool), 0 duplicates, 0 in progress, settled {:.1} s after the restart",
        records.len(),
        took.as_secs_f64()
    );

    // A second restart finds nothing left open.
    gateway.signal("TERM");
    assert!(gateway.wait_exit(Duration::from_secs(10)).is_some());
    gateway.restart();
    assert_eq!(wait_until("still the same records", &gateway, &|r| r.len() == CALLS + REFUSED).len(), CALLS + REFUSED);
    let after = gateway.log();
    assert_eq!(after.matches("closed as gateway_restart").count(), 1, "the second start closes nothing:\n{after}");
}
