//! The call-record REST API of a running gateway over its embedded SQLite: every filter, cursor
//! pagination, one record with its timeline, CSV export, the OpenAPI document, bad input (400
//! with a JSON error) and missing or wrong tokens (401).

mod support;

use sipbridge::store::{CallDirection, CallRecord, CallStatus, CallStore, HangupSide, SqlStore};
use support::{http_get, Gateway, GatewayOptions, API_TOKEN};

const T0: i64 = 1_795_514_400_000; // 2026-11-24T10:00:00Z

/// Seeds 30 records (one a minute from T0) into the gateway's own database.
fn seed(gateway: &Gateway) {
    let url = format!("sqlite://{}", gateway.dir.path().join("data/records.db").display());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let store = SqlStore::connect(&url).await.expect("open the gateway's database");
        store.migrate().await.expect("migrate");
        for i in 0..30i64 {
            let mut r = CallRecord::new(format!("call-{i:02}"), if i % 3 == 0 { CallDirection::Outbound } else { CallDirection::Inbound }, T0 + i * 60_000);
            r.from_uri = format!("sip:+1555{i:07}@carrier.example");
            r.to_uri = if i == 13 { "sip:support, \"desk\"@example.com".into() } else { "sip:alice@example.com".into() };
            r.browser_user = Some(if i < 20 { "alice" } else { "bob" }.into());
            r.profile = Some(if i % 2 == 0 { "trunk" } else { "pbx" }.into());
            r.transcoded = i % 5 == 0;
            let status = [CallStatus::Answered, CallStatus::Missed, CallStatus::Busy, CallStatus::Cancelled][i as usize % 4];
            if status == CallStatus::Answered {
                r.answered_at = Some(r.started_at + 3_000);
            }
            r.event(r.started_at, "invite", "from 127.0.0.1:5062");
            r.finish(r.started_at + 3_000 + i * 10_000, status, HangupSide::Sip, "normal", Some(200));
            r.revision = 1;
            store.upsert(&r).await.expect("seed");
        }
        store.close().await;
    });
}

fn get_json(gateway: &Gateway, path: &str) -> (u16, serde_json::Value) {
    let (status, body) = http_get(gateway.http_port, path, Some(API_TOKEN)).expect("request");
    (status, serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}")))
}

fn ids(gateway: &Gateway, query: &str) -> Vec<String> {
    let (status, body) = get_json(gateway, &format!("/api/v1/calls?limit=500&{query}"));
    assert_eq!(status, 200, "{query}: {body}");
    body["calls"].as_array().expect("calls").iter().map(|c| c["id"].as_str().unwrap_or_default().to_string()).collect()
}

#[test]
fn call_record_api_filters_pages_exports_and_refuses_bad_input() {
    let gateway = Gateway::start(GatewayOptions::default());
    seed(&gateway);

    // Auth: no token, a wrong token.
    for token in [None, Some("wrong-token-0123456789")] {
        let (status, body) = http_get(gateway.http_port, "/api/v1/calls", token).expect("request");
        assert_eq!(status, 401, "{body}");
        assert!(body.contains("\"unauthorized\""), "{body}");
    }
    assert_eq!(http_get(gateway.http_port, "/healthz", None).expect("request").0, 200, "health needs no token");
    assert_eq!(http_get(gateway.http_port, "/readyz", None).expect("request").0, 401, "everything but /healthz needs a token");
    assert_eq!(http_get(gateway.http_port, "/api/v1/openapi.json", None).expect("request").0, 401);
    assert_eq!(http_get(gateway.http_port, "/readyz", Some(API_TOKEN)).expect("request").0, 200, "ready: SIP runs and the database answers");

    // Filters, alone and combined.
    let all = ids(&gateway, "");
    assert_eq!(all.len(), 30);
    assert_eq!(all.first().map(String::as_str), Some("call-29"), "newest first");
    assert_eq!(ids(&gateway, "from=2026-11-24T10:05:00Z&to=2026-11-24T10:08:00Z"), vec!["call-07", "call-06", "call-05"]);
    assert_eq!(ids(&gateway, &format!("from={}&to={}", T0 + 5 * 60_000, T0 + 8 * 60_000)).len(), 3, "Unix milliseconds too");
    assert_eq!(ids(&gateway, "from=2026-11-24T10:08:00Z&to=2026-11-24T10:05:00Z"), Vec::<String>::new(), "a range ending before it starts matches nothing");
    assert_eq!(ids(&gateway, "q=15550000017"), vec!["call-17"], "number substring");
    assert_eq!(ids(&gateway, "q=BOB").len(), 10, "user substring, case ignored");
    assert_eq!(ids(&gateway, "direction=outbound").len(), 10);
    assert_eq!(ids(&gateway, "status=busy").len(), 7);
    assert_eq!(ids(&gateway, "profile=pbx").len(), 15);
    assert_eq!(ids(&gateway, "min_duration=250"), vec!["call-29", "call-28", "call-27", "call-26", "call-25"]);
    assert_eq!(ids(&gateway, "transcoded=true").len(), 6);
    assert_eq!(ids(&gateway, "direction=inbound&status=answered&profile=trunk&transcoded=false"), vec!["call-28", "call-16", "call-08", "call-04"]);

    // Cursor pagination covers everything once.
    let mut seen = Vec::new();
    let mut path = "/api/v1/calls?limit=7".to_string();
    for _ in 0..10 {
        let (status, page) = get_json(&gateway, &path);
        assert_eq!(status, 200);
        seen.extend(page["calls"].as_array().expect("calls").iter().map(|c| c["id"].as_str().unwrap_or_default().to_string()));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/calls?limit=7&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, all);

    // One record, with its timeline; lists leave the timeline out.
    let (status, record) = get_json(&gateway, "/api/v1/calls/call-12");
    assert_eq!(status, 200);
    assert_eq!(record["status"], "answered");
    assert_eq!(record["events"][0]["kind"], "invite");
    assert!(record.get("revision").is_none());
    let (_, page) = get_json(&gateway, "/api/v1/calls?limit=1");
    assert!(page["calls"][0].get("events").is_none());
    assert_eq!(get_json(&gateway, "/api/v1/calls/no-such-call").0, 404);

    // CSV of a filter: a header, one row per record, quoted where needed.
    let (status, csv) = http_get(gateway.http_port, "/api/v1/calls.csv?profile=pbx", Some(API_TOKEN)).expect("request");
    assert_eq!(status, 200);
    let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 16, "{csv}");
    assert!(lines[0].starts_with("id,direction,status"));
    assert!(csv.contains("\"sip:support, \"\"desk\"\"@example.com\""), "{csv}");

    // Bad input: 400 with a JSON error naming the parameter.
    for (query, parameter) in [
        ("from=yesterday", "from"),
        // A multi-byte character in the zone offset once panicked the handler.
        ("from=2026-11-24T10:00:00%2B1%C3%A900", "from"),
        ("to=2026-11-24T10:00:00%2B1%C3%A900", "to"),
        ("stauts=busy", "stauts"),
        ("limit=501", "limit"),
        ("limit=-1", "limit"),
        ("status=lost", "status"),
        ("transcoded=maybe", "transcoded"),
        ("min_duration=ten", "min_duration"),
        ("cursor=garbage", "cursor"),
    ] {
        let (status, body) = get_json(&gateway, &format!("/api/v1/calls?{query}"));
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["code"], "bad_request", "{query}");
        assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains(&format!("`{parameter}`"))), "{query}: {body}");
    }
    let (status, body) = get_json(&gateway, "/api/v1/calls.csv?limit=5");
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("bad_request")), "exports are not paged");
    let (status, body) = get_json(&gateway, "/api/v1/calls/bad%20id");
    assert_eq!(status, 400, "{body}");

    // The OpenAPI document is served and names the routes.
    let (status, document) = get_json(&gateway, "/api/v1/openapi.json");
    assert_eq!(status, 200);
    assert!(document["paths"]["/api/v1/calls"]["get"]["parameters"].as_array().is_some_and(|p| p.len() == 10));

    // Metrics show the spool (empty: the database is up).
    let (_, metrics) = http_get(gateway.http_port, "/metrics", Some(API_TOKEN)).expect("metrics");
    for metric in ["sipbridge_record_spool_depth 0", "sipbridge_calls_active 0", "sipbridge_transcoding_sessions 0", "sipbridge_websocket_connections 0", "sipbridge_rtp_packets_received_total"] {
        assert!(metrics.contains(metric), "{metric} in\n{metrics}");
    }
}
