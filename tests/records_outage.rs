//! The whole gateway with PostgreSQL as its record store, reached through a relay whose port the
//! test closes: calls that end while the database is away wait in the spool (visible in
//! /metrics), and once the port reopens every record arrives, none twice.

mod support;
#[path = "support/postgres.rs"]
mod postgres;

use postgres::{Relay, TempDatabase};
use sipbridge::store::{CallStore, RecordFilter, SqlStore};
use std::time::Duration;
use support::{http_get, sipp, sipp_available, Gateway, GatewayOptions, API_TOKEN};

fn spool_depth(gateway: &Gateway) -> u64 {
    let (_, metrics) = http_get(gateway.http_port, "/metrics", Some(API_TOKEN)).expect("metrics");
    metrics.lines().find_map(|l| l.strip_prefix("sipbridge_record_spool_depth ")).and_then(|v| v.trim().parse().ok()).unwrap_or(u64::MAX)
}

/// One short real call: nobody is logged in, so the trunk gets 480 and the call is missed.
fn missed_call(gateway: &Gateway) {
    let run = sipp("call_nobody.xml", &format!("127.0.0.1:{}", gateway.sip_port), &["-t", "u1", "-p", &support::free_port().to_string()]);
    assert!(run.success(), "{}", run.describe());
}

#[test]
fn calls_ending_during_a_database_outage_are_all_recorded_once_it_is_back() {
    sipp_available();
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
    let trunk = "kind = \"trunk\"\nhost = \"127.0.0.1\"\ntrusted_addresses = [\"127.0.0.1\"]\n".to_string();
    let gateway = Gateway::start(GatewayOptions {
        profiles: vec![("trunk.toml".into(), trunk)],
        extra_media: format!("\n[records]\ndatabase_url = \"{relayed_url}\"\n"),
        ..Default::default()
    });
    let count = || runtime.block_on(direct.count()).unwrap_or(0);
    let wait_for = |want: u64| {
        for _ in 0..300 {
            if count() >= want && spool_depth(&gateway) == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        count()
    };

    for _ in 0..3 {
        missed_call(&gateway);
    }
    assert_eq!(wait_for(3), 3, "records reach PostgreSQL while it is up\n{}", gateway.log());

    relay.set_up(false);
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..5 {
        missed_call(&gateway);
    }
    std::thread::sleep(Duration::from_secs(1));
    let waiting = spool_depth(&gateway);
    println!("outage: {waiting} record writes waiting in the spool; {} records in PostgreSQL", count());
    assert!(waiting >= 5, "each call's final write waits in the spool: {waiting}\n{}", gateway.log());
    assert_eq!(count(), 3, "nothing reached the database while its port was closed");

    relay.set_up(true);
    assert_eq!(wait_for(8), 8, "every record arrived\n{}", gateway.log());
    let records = runtime.block_on(direct.list(&RecordFilter { limit: 100, ..Default::default() })).expect("list");
    assert_eq!(records.len(), 8, "none twice");
    assert!(records.iter().all(|r| r.ended_at.is_some() && r.status == sipbridge::store::CallStatus::Missed), "the final write of every call won: {records:#?}");
    assert!(records.iter().all(|r| !r.sip_messages.is_empty()), "with their SIP ladders");
    println!("outage: 8 calls, 8 records after the database came back, 0 duplicates, spool empty");
    assert!(gateway.log().contains("cannot write call records; keeping them in the spool"), "{}", gateway.log());
    assert!(gateway.log().contains("the database is back"), "{}", gateway.log());
}
