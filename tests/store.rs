//! The call-record store against a real PostgreSQL (DATABASE_URL, which `make test` provides) and
//! SQLite: one suite for both, then durability: the database goes away (its port closes) while
//! calls complete, and every record arrives once it is back, none twice; a restart with records
//! still in the spool loses nothing either.

#[path = "support/postgres.rs"]
mod postgres;

use postgres::{Relay, TempDatabase};
use sipbridge::store::{CallDirection, CallRecord, CallStatus, CallStore, HangupSide, LegQuality, Recorder, RecordFilter, Spool, SqlStore};
use std::sync::Arc;
use std::time::Duration;

fn record(id: &str, started_at: i64) -> CallRecord {
    let mut r = CallRecord::new(id.into(), CallDirection::Inbound, started_at);
    r.from_uri = format!("sip:+1555000{id}@carrier.example");
    r.to_uri = "sip:alice@example.com".into();
    r.browser_user = Some("alice".into());
    r.profile = Some("trunk".into());
    r
}

/// Twelve calls with every filterable field varied.
fn sample() -> Vec<CallRecord> {
    (0..12)
        .map(|i| {
            let mut r = record(&format!("{i:02}"), 1_700_000_000_000 + i * 60_000);
            r.direction = if i % 2 == 0 { CallDirection::Inbound } else { CallDirection::Outbound };
            r.status = [CallStatus::Answered, CallStatus::Missed, CallStatus::Busy][i as usize % 3];
            r.profile = Some(if i < 6 { "trunk" } else { "pbx" }.into());
            r.transcoded = i % 4 == 0;
            r.to_name = (i == 7).then(|| "Support 100%_Desk".to_string());
            r.answered_at = (r.status == CallStatus::Answered).then_some(r.started_at + 5_000);
            let status = r.status;
            r.finish(r.started_at + 10_000 * (i + 1), status, HangupSide::Sip, "normal", Some(200));
            r.quality = vec![LegQuality { leg: "sip".into(), direction: "received".into(), packets: 500, loss_percent: 0.4, jitter_ms: 3.5, rtt_ms: Some(40.0), mos: Some(4.3), note: None, audio_bandwidth: Some("narrowband (4 kHz)".into()) }];
            if i == 5 {
                // A leg that heard nothing: no MOS, and the record says why.
                r.quality.push(LegQuality::new("browser", "received", 0, None));
            }
            r.revision = 1;
            r
        })
        .collect()
}

async fn ids(store: &dyn CallStore, filter: RecordFilter) -> Vec<String> {
    store.list(&RecordFilter { limit: 100, ..filter }).await.expect("list").into_iter().map(|r| r.id).collect()
}

async fn suite(store: &SqlStore) {
    store.migrate().await.expect("migrations run");
    store.migrate().await.expect("and are idempotent");
    let records = sample();
    for r in &records {
        store.upsert(r).await.expect("upsert");
    }
    assert_eq!(store.count().await.expect("count"), 12);
    assert_eq!(store.get("07").await.expect("get").as_ref(), Some(&records[7]), "a record reads back as written");
    let silent = store.get("05").await.expect("get").expect("record 05");
    assert_eq!(silent, records[5], "a direction without media reads back with its note");
    assert_eq!((silent.quality[1].mos, silent.quality[1].note.as_deref()), (None, Some("no media received")));
    assert_eq!(store.get("nope").await.expect("get"), None);

    // Revisions: an older write never overwrites a newer one.
    let mut stale = records[3].clone();
    stale.status = CallStatus::InProgress;
    stale.revision = 0;
    store.upsert(&stale).await.expect("upsert");
    assert_eq!(store.get("03").await.expect("get").map(|r| r.status), Some(records[3].status));
    let mut newer = records[3].clone();
    newer.hangup_reason = Some("updated".into());
    newer.revision = 2;
    store.upsert(&newer).await.expect("upsert");
    assert_eq!(store.get("03").await.expect("get").and_then(|r| r.hangup_reason), Some("updated".into()));
    assert_eq!(store.count().await.expect("count"), 12, "upserts never duplicate");

    let all = ids(store, RecordFilter::default()).await;
    assert_eq!(all, (0..12).rev().map(|i| format!("{i:02}")).collect::<Vec<_>>(), "newest first");
    let t = |i: i64| 1_700_000_000_000 + i * 60_000;
    assert_eq!(ids(store, RecordFilter { from: Some(t(3)), to: Some(t(5)), ..Default::default() }).await, vec!["04", "03"]);
    assert_eq!(ids(store, RecordFilter { text: Some("155500007@".into()), ..Default::default() }).await, vec!["07"]);
    assert_eq!(ids(store, RecordFilter { text: Some("100%_d".into()), ..Default::default() }).await, vec!["07"], "% and _ are literal, case ignored");
    assert_eq!(ids(store, RecordFilter { text: Some("ALICE".into()), ..Default::default() }).await.len(), 12);
    assert_eq!(ids(store, RecordFilter { direction: Some(CallDirection::Outbound), ..Default::default() }).await, vec!["11", "09", "07", "05", "03", "01"]);
    assert_eq!(ids(store, RecordFilter { status: Some(CallStatus::Busy), ..Default::default() }).await, vec!["11", "08", "05", "02"]);
    assert_eq!(ids(store, RecordFilter { profile: Some("pbx".into()), ..Default::default() }).await.len(), 6);
    assert_eq!(ids(store, RecordFilter { min_duration_ms: Some(100_000), ..Default::default() }).await, vec!["11", "10", "09"]);
    assert_eq!(ids(store, RecordFilter { transcoded: Some(true), ..Default::default() }).await, vec!["08", "04", "00"]);
    let combined = RecordFilter { direction: Some(CallDirection::Inbound), status: Some(CallStatus::Answered), profile: Some("trunk".into()), ..Default::default() };
    assert_eq!(ids(store, combined).await, vec!["00"]);

    // Cursor pagination: pages of 5 cover everything once.
    let mut seen = Vec::new();
    let mut after = None;
    for _ in 0..5 {
        let page = store.list(&RecordFilter { limit: 5, after: after.clone(), ..Default::default() }).await.expect("page");
        if page.is_empty() {
            break;
        }
        after = page.last().map(|r| (r.started_at, r.id.clone()));
        seen.extend(page.into_iter().map(|r| r.id));
    }
    assert_eq!(seen, all, "pages in order, no overlap, nothing missed");

    // A batch is written in order in one transaction: a call's later write in the same batch
    // wins, and an older revision still never overwrites a newer one.
    let mut started = record("batch", 5_000);
    started.revision = 1;
    let mut ended = started.clone();
    ended.status = CallStatus::Answered;
    ended.ended_at = Some(6_000);
    ended.revision = 2;
    let mut stale_in_batch = records[4].clone();
    stale_in_batch.status = CallStatus::InProgress;
    stale_in_batch.revision = 0;
    store.upsert_all(&[started, ended.clone(), stale_in_batch]).await.expect("batch upsert");
    assert_eq!(store.get("batch").await.expect("get").as_ref(), Some(&ended));
    assert_eq!(store.get("04").await.expect("get").map(|r| r.status), Some(records[4].status));
    store.upsert_all(&[]).await.expect("an empty batch");
    assert_eq!(store.count().await.expect("count"), 13, "one new record");
}

#[tokio::test]
async fn store_suite_on_postgresql() {
    let database = TempDatabase::create();
    let store = SqlStore::connect(&database.url).await.expect("connect to PostgreSQL");
    suite(&store).await;
    store.close().await;
}

#[tokio::test]
async fn store_suite_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqlStore::connect(&format!("sqlite://{}", dir.path().join("records.db").display())).await.expect("open SQLite");
    suite(&store).await;
    assert!(dir.path().join("records.db-wal").exists(), "SQLite keeps a write-ahead log (one sync a commit)");
    store.close().await;
}

async fn wait_for_count(store: &SqlStore, want: u64) -> u64 {
    let mut count = 0;
    for _ in 0..300 {
        count = store.count().await.unwrap_or(0);
        if count >= want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    count
}

#[tokio::test]
async fn records_written_while_the_database_is_down_arrive_once_it_is_back() {
    let database = TempDatabase::create();
    let direct = SqlStore::connect(&database.url).await.expect("connect");
    direct.migrate().await.expect("migrate");
    let (_, target) = database.through(0);
    let relay = Relay::start(target).await;
    let (relayed_url, _) = database.through(relay.port);
    let relayed: Arc<dyn CallStore> = Arc::new(SqlStore::connect(&relayed_url).await.expect("connect through the relay"));
    let spool_dir = tempfile::tempdir().expect("tempdir");
    let recorder = Recorder::start(Spool::open(spool_dir.path()).expect("spool"), relayed.clone());

    // 10 calls start and complete normally, then the database goes away.
    let calls: Vec<CallRecord> = sample().into_iter().take(10).collect();
    for call in &calls {
        recorder.write(&record(&call.id, call.started_at));
    }
    assert_eq!(wait_for_count(&direct, 10).await, 10);
    relay.set_up(false);
    // The relay drops its open connections within 50 ms.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // While it is down the 10 calls end and 5 more start and end.
    let mut later: Vec<CallRecord> = (20..25).map(|i| record(&i.to_string(), 1_800_000_000_000 + i)).collect();
    for call in calls.iter().chain(later.iter()) {
        recorder.write(call);
    }
    for call in later.iter_mut() {
        call.finish(call.started_at + 42_000, CallStatus::Answered, HangupSide::Browser, "normal", Some(200));
        recorder.write(call);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(recorder.spool_depth() >= 15, "writes wait in the spool while the database is away: {}", recorder.spool_depth());
    assert_eq!(direct.count().await.expect("count"), 10, "nothing new reached the database");
    relay.set_up(true);
    assert_eq!(wait_for_count(&direct, 15).await, 15, "every record arrived");
    for _ in 0..200 {
        if recorder.spool_depth() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(recorder.spool_depth(), 0);
    assert_eq!(direct.count().await.expect("count"), 15, "none twice");
    for call in calls.iter().chain(later.iter()) {
        let stored = direct.get(&call.id).await.expect("get").expect("stored");
        assert_eq!(stored.status, call.status, "the last write won for {}", call.id);
        assert_eq!(stored.ended_at, call.ended_at);
    }
    println!("outage: 15 writes spooled while the database was unreachable, all 15 records present afterwards, 0 duplicates");
}

#[tokio::test]
async fn records_in_the_spool_survive_a_restart() {
    let database = TempDatabase::create();
    let direct = SqlStore::connect(&database.url).await.expect("connect");
    direct.migrate().await.expect("migrate");
    let spool_dir = tempfile::tempdir().expect("tempdir");
    // A "gateway" whose database is unreachable spools three completed calls, then stops.
    {
        let (dead_url, _) = database.through(1);
        let unreachable = SqlStore::connect(&dead_url).await;
        assert!(unreachable.is_err(), "nothing listens on port 1");
        let mut spool = Spool::open(spool_dir.path()).expect("spool");
        for i in 0..3 {
            let mut call = record(&format!("r{i}"), 1_750_000_000_000 + i);
            call.finish(call.started_at + 1_000, CallStatus::Cancelled, HangupSide::Sip, "cancelled", Some(487));
            call.revision = 10 + i;
            spool.append(&call).expect("append");
        }
    }
    // The restarted gateway reaches the database and flushes what the spool kept.
    let store: Arc<dyn CallStore> = Arc::new(SqlStore::connect(&database.url).await.expect("connect"));
    let recorder = Recorder::start(Spool::open(spool_dir.path()).expect("reopen"), store);
    assert_eq!(wait_for_count(&direct, 3).await, 3);
    for _ in 0..100 {
        if recorder.spool_depth() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(recorder.spool_depth(), 0);
    assert_eq!(direct.get("r1").await.expect("get").map(|r| r.status), Some(CallStatus::Cancelled));
}
