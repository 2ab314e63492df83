//! A slow call-record database: PostgreSQL behind a relay the test runs that holds every query for
//! 5 s. Call setup does not wait on it (records go through the spool): missed calls get their
//! 480 and a browser's call to an echoing sipp trunk is answered, with the tone back, as fast as
//! with a quick database. Once the database is quick again every record arrives.

mod support;
#[path = "support/postgres.rs"]
mod postgres;

use postgres::{SlowRelay, TempDatabase};
use sipbridge::store::{CallStatus, CallStore, RecordFilter, SqlStore};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use support::calls::{assert_tone, echo_page, token, trunk_profile, EchoTrunk};
use support::{free_port, http_get, sipp, Gateway, GatewayOptions, API_TOKEN};

const QUERY_DELAY: Duration = Duration::from_secs(5);
const MISSED: usize = 3;
/// Far below the database's 5 s: a setup that waited for one query would miss it.
const SETUP_LIMIT_MS: i64 = 2_000;

fn spool_depth(gateway: &Gateway) -> u64 {
    let (_, metrics) = http_get(gateway.http_port, "/metrics", Some(API_TOKEN)).expect("metrics");
    metrics.lines().find_map(|l| l.strip_prefix("sipbridge_record_spool_depth ")).and_then(|v| v.trim().parse().ok()).unwrap_or(u64::MAX)
}

#[test]
fn call_setup_does_not_wait_for_a_database_that_takes_5_s_per_query() {
    support::sipp_available();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let database = TempDatabase::create();
    let direct = runtime.block_on(async {
        let direct = SqlStore::connect(&database.url).await.expect("connect");
        direct.migrate().await.expect("migrate");
        direct
    });
    let (_, target) = database.through(0);
    let relay = runtime.block_on(SlowRelay::start(target, QUERY_DELAY));
    let (relayed_url, _) = database.through(relay.port);
    let trunk_port = free_port();
    let gateway = Gateway::start(GatewayOptions {
        profiles: vec![trunk_profile(trunk_port)],
        extra_media: format!("\n[records]\ndatabase_url = \"{relayed_url}\"\n"),
        ..Default::default()
    });

    // Missed calls (nobody is logged in): INVITE to 480, each with a record written at its start
    // and at its end.
    let mut missed_ms = Vec::new();
    for _ in 0..MISSED {
        let started = Instant::now();
        let run = sipp("call_nobody.xml", &gateway.sip_addr().to_string(), &["-t", "u1", "-p", &free_port().to_string()]);
        missed_ms.push(started.elapsed().as_millis() as i64);
        assert!(run.success(), "{}\n{}", run.describe(), gateway.log());
    }
    // An answered call from Chromium to the echoing trunk, with its tone coming back.
    let trunk = EchoTrunk::start(trunk_port);
    let page = echo_page(&gateway, &token("alice", &["trunk"]), ["", "+15551234567", ""], &[]);
    assert_eq!(page["ok"], true, "{page:#}\n{}", gateway.log());
    assert_tone(&page, "peakHz", 1000.0, "the echoed tone");
    assert!(trunk.finish().is_ok(), "the trunk's call ended cleanly\n{}", gateway.log());

    let held = relay.delayed.load(Ordering::SeqCst);
    let waiting = spool_depth(&gateway);
    let stored_meanwhile = runtime.block_on(direct.count()).unwrap_or(0);
    assert!(held > 0, "the gateway's queries went through the slow relay");
    assert!(stored_meanwhile < (MISSED + 1) as u64 && waiting > 0, "the records were still on their way: {stored_meanwhile} stored, {waiting} spooled");

    relay.set_delay(Duration::ZERO);
    let deadline = Instant::now() + Duration::from_secs(60);
    let records = loop {
        let records = runtime.block_on(direct.list(&RecordFilter { limit: 100, ..Default::default() })).unwrap_or_default();
        if records.len() == MISSED + 1 && records.iter().all(|r| r.ended_at.is_some()) && spool_depth(&gateway) == 0 {
            break records;
        }
        assert!(Instant::now() < deadline, "every record arrives once the database is quick: {records:#?}\n{}", gateway.log());
        std::thread::sleep(Duration::from_millis(200));
    };
    let answered: Vec<_> = records.iter().filter(|r| r.status == CallStatus::Answered).collect();
    assert_eq!(answered.len(), 1, "{records:#?}");
    let answer_ms = answered[0].answered_at.expect("answered") - answered[0].started_at;
    let refusal_ms: Vec<i64> = records.iter().filter(|r| r.status == CallStatus::Missed).map(|r| r.ended_at.unwrap_or(i64::MAX) - r.started_at).collect();
    assert_eq!(refusal_ms.len(), MISSED, "{records:#?}");
    assert!(answer_ms < SETUP_LIMIT_MS, "browser call to answer: {answer_ms} ms with a 5 s database");
    assert!(refusal_ms.iter().all(|&ms| ms < SETUP_LIMIT_MS), "INVITE to 480: {refusal_ms:?} ms with a 5 s database");
    assert!(missed_ms.iter().all(|&ms| ms < SETUP_LIMIT_MS), "whole sipp runs: {missed_ms:?} ms");
    crate::figures!(
        "slow database ({} ms per query, {held} queries held): browser call answered in {answer_ms} ms, INVITE to 480 in {refusal_ms:?} ms (whole sipp runs {missed_ms:?} ms); {} records once it was quick again, 0 lost",
        QUERY_DELAY.as_millis(),
        records.len()
    );
}
