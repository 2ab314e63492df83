//! Call-record list queries over 1,000,000 records in PostgreSQL: p50/p99 of the main filters
//! through the same `SqlStore` the API uses. `make bench` provides DATABASE_URL; the records go
//! into a throwaway database. RECORDS_BENCH_ROWS overrides the size.

use sipbridge::store::{CallDirection, CallStatus, CallStore, RecordFilter, SqlStore};
use std::process::Command;
use std::time::{Duration, Instant};

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const ROUNDS: usize = 200;

fn psql(url: &str, sql: &str) {
    let status = Command::new("psql").arg(url).args(["-qAtc", sql]).status().expect("psql");
    assert!(status.success(), "psql failed: {sql}");
}

/// `rows` calls over 90 days, with realistic spreads of direction, status, profile, users,
/// numbers, durations and transcoding; generated inside PostgreSQL.
fn seed_sql(rows: u64) -> String {
    format!(
        "INSERT INTO call_records (id, direction, status, profile, browser_user, sip_call_ids, from_uri, to_uri, started_at, answered_at, ended_at, duration_ms, billable_secs, sip_codec, browser_codec, transcoded, quality, events, sip_messages, revision)
         SELECT 'c' || lpad(g::text, 9, '0'),
                CASE WHEN g % 3 = 0 THEN 'outbound' ELSE 'inbound' END,
                (ARRAY['answered','answered','answered','missed','busy','rejected','cancelled','failed'])[1 + g % 8],
                (ARRAY['carrier-a','carrier-b','office-pbx','carrier-c'])[1 + g % 4],
                'user' || (g % 2000),
                md5(g::text) || '@sbc',
                'sip:+1' || lpad(((g * 7919) % 10000000000)::text, 10, '0') || '@carrier.example',
                'sip:user' || (g % 2000) || '@example.com',
                {T0} + g * (7776000000 / {rows}),
                {T0} + g * (7776000000 / {rows}) + 4000,
                {T0} + g * (7776000000 / {rows}) + 4000 + (g * 37 % 600000),
                4000 + (g * 37 % 600000),
                (g * 37 % 600000 + 999) / 1000,
                'PCMU', CASE WHEN g % 4 = 0 THEN 'audio/opus' ELSE 'audio/PCMU' END, g % 4 = 0,
                '[{{\"leg\":\"sip\",\"direction\":\"received\",\"packets\":1500,\"loss_percent\":0.1,\"jitter_ms\":2.0,\"rtt_ms\":40.0,\"mos\":4.3}}]',
                '[]', '[]', 1
         FROM generate_series(1::bigint, {rows}::bigint) AS g"
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let admin = std::env::var("DATABASE_URL").expect("DATABASE_URL must name a PostgreSQL (make bench sets it)");
    let rows: u64 = std::env::var("RECORDS_BENCH_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let name = format!("sipbridge_bench_{}", std::process::id());
    psql(&admin, &format!("CREATE DATABASE {name}"));
    let url = format!("{}/{name}", admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(async {
        let store = SqlStore::connect(&url).await.expect("connect");
        store.migrate().await.expect("migrate");
        let started = Instant::now();
        psql(&url, &seed_sql(rows));
        psql(&url, "ANALYZE call_records");
        println!("records: seeded {rows} call records in {:.1} s", started.elapsed().as_secs_f64());
        let day = 86_400_000;
        let page = |f: RecordFilter| RecordFilter { limit: 50, ..f };
        let deep_cursor = {
            let mut filter = page(RecordFilter::default());
            for _ in 0..20 {
                let records = store.list(&filter).await.expect("page");
                filter.after = records.last().map(|r| (r.started_at, r.id.clone()));
            }
            filter.after
        };
        let queries: Vec<(&str, RecordFilter)> = vec![
            ("newest 50, no filter", page(RecordFilter::default())),
            ("one day", page(RecordFilter { from: Some(T0 + 40 * day), to: Some(T0 + 41 * day), ..Default::default() })),
            ("status busy + outbound", page(RecordFilter { status: Some(CallStatus::Busy), direction: Some(CallDirection::Outbound), ..Default::default() })),
            ("profile + min duration 9 min", page(RecordFilter { profile: Some("office-pbx".into()), min_duration_ms: Some(540_000), ..Default::default() })),
            ("transcoded in a week", page(RecordFilter { transcoded: Some(true), from: Some(T0 + 10 * day), to: Some(T0 + 17 * day), ..Default::default() })),
            ("number substring", page(RecordFilter { text: Some("4155550".into()), ..Default::default() })),
            ("user substring + status", page(RecordFilter { text: Some("user1234@".into()), status: Some(CallStatus::Answered), ..Default::default() })),
            ("page 21 (cursor)", page(RecordFilter { after: deep_cursor, ..Default::default() })),
        ];
        println!("{:<32} {:>9} {:>9} {:>6}", "query (PostgreSQL, 1M rows)", "p50 ms", "p99 ms", "rows");
        let mut worst = Duration::ZERO;
        for (label, filter) in queries {
            let mut times = Vec::with_capacity(ROUNDS);
            let mut found = 0;
            for _ in 0..ROUNDS {
                let at = Instant::now();
                found = store.list(&filter).await.expect("list").len();
                times.push(at.elapsed());
            }
            times.sort();
            let (p50, p99) = (percentile(&times, 0.5), percentile(&times, 0.99));
            worst = worst.max(p99);
            println!("{label:<32} {:>9.2} {:>9.2} {found:>6}", p50.as_secs_f64() * 1e3, p99.as_secs_f64() * 1e3);
        }
        println!("records: worst p99 {:.2} ms against the 50 ms target", worst.as_secs_f64() * 1e3);
        store.close().await;
    });
    psql(&admin, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
}
