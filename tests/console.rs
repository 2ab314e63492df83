//! The web console in headless Chromium and in Firefox ESR (tests/browser/launch.mjs): login (a
//! wrong password first), the dashboard with its active calls (a seeded call in progress; the
//! console lists calls, it does not control them), the call records (a real call's record plus seeded ones),
//! a filter that narrows them, and the detail page with the SIP ladder of the real call. Also the console's auth over HTTP: sessions, roles
//! (403 for a viewer's export) and cross-origin refusal. Screenshots land in
//! $CARGO_TARGET_DIR/test-artifacts/console/BROWSER/.

mod support;

use sipbridge::store::{CallDirection, CallRecord, CallStatus, CallStore, HangupSide, SqlStore};
use std::io::{Read, Write};
use std::net::TcpStream;
use support::browser::{artifacts_dir, run_script, Browser};
use support::{sipp, sipp_available, Gateway, GatewayOptions};

const ADMIN_PASSWORD: &str = "console-admin-pass";
const VIEWER_PASSWORD: &str = "console-viewer-pass";
/// The caller of the seeded call in progress, which the dashboard lists among the active calls.
const LIVE_CALLER: &str = "sip:+15550009999@carrier.example";

fn console_gateway() -> Gateway {
    let admin = sipbridge::http::console::hash_password(ADMIN_PASSWORD).expect("hash");
    let viewer = sipbridge::http::console::hash_password(VIEWER_PASSWORD).expect("hash");
    let trunk = "kind = \"trunk\"\nhost = \"127.0.0.1\"\ntrusted_addresses = [\"127.0.0.1\"]\n".to_string();
    Gateway::start(GatewayOptions {
        profiles: vec![("trunk.toml".into(), trunk)],
        extra_http: format!(
            "\n[[http.console_users]]\nusername = \"ops\"\npassword_hash = \"{admin}\"\nrole = \"admin\"\n\
             \n[[http.console_users]]\nusername = \"viewer\"\npassword_hash = \"{viewer}\"\nrole = \"viewer\"\n"
        ),
        ..Default::default()
    })
}

/// A raw HTTP request; returns (status, headers, body).
fn request(port: u16, method: &str, path: &str, headers: &[&str], body: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    write!(stream, "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}\r\n{body}", body.len()).expect("write");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

fn login(port: u16, user: &str, password: &str) -> Option<String> {
    let (status, head, _) = request(port, "POST", "/console/login", &[], &format!("{{\"username\":\"{user}\",\"password\":\"{password}\"}}"));
    if status != 200 {
        return None;
    }
    head.lines().find_map(|l| l.strip_prefix("set-cookie: ").or_else(|| l.strip_prefix("Set-Cookie: "))).map(|c| c.split(';').next().unwrap_or("").to_string())
}

#[test]
fn console_sessions_roles_and_origin_checks() {
    let gateway = console_gateway();
    let port = gateway.http_port;
    assert_eq!(login(port, "ops", "wrong password"), None);
    let (status, _, body) = request(port, "POST", "/console/login", &[], "{\"username\":\"ops\"}");
    assert_eq!(status, 400, "{body}");
    let (status, _, _) = request(port, "POST", "/console/login", &["Origin: http://evil.example"], &format!("{{\"username\":\"ops\",\"password\":\"{ADMIN_PASSWORD}\"}}"));
    assert_eq!(status, 403, "a login posted from another site is refused");
    let admin = login(port, "ops", ADMIN_PASSWORD).expect("admin session");
    let viewer = login(port, "viewer", VIEWER_PASSWORD).expect("viewer session");
    let cookie = |c: &str| format!("Cookie: {c}");
    assert_eq!(request(port, "GET", "/api/v1/calls", &[&cookie(&viewer)], "").0, 200, "viewers read records");
    assert_eq!(request(port, "GET", "/api/v1/calls.csv", &[&cookie(&viewer)], "").0, 403, "but may not export them");
    assert_eq!(request(port, "GET", "/api/v1/sip/status", &[&cookie(&viewer)], "").0, 403);
    assert_eq!(request(port, "GET", "/api/v1/calls.csv", &[&cookie(&admin)], "").0, 200);
    assert_eq!(request(port, "GET", "/api/v1/calls", &[&cookie(&viewer.replace("viewer", "admin"))], "").0, 401, "a tampered cookie is no session");
    let (status, _, body) = request(port, "GET", "/console/me", &[&cookie(&admin)], "");
    assert_eq!(status, 200);
    assert!(body.contains("\"role\":\"admin\""), "{body}");
    assert!(!gateway.log().contains(ADMIN_PASSWORD), "passwords are never logged");
}

#[test]
fn console_in_chromium_lists_filters_and_shows_the_ladder() {
    console_walk(Browser::Chromium);
}

#[test]
fn console_in_firefox_lists_filters_and_shows_the_ladder() {
    console_walk(Browser::Firefox);
}

/// A gateway with one real (missed) call and 20 seeded records; `browser` walks the console
/// (tests/browser/console.mjs): login, dashboard, records, a filter, the real call's ladder, and
/// a switch from the dashboard to the records faster than the dashboard's requests are answered.
fn console_walk(browser: Browser) {
    sipp_available();
    let gateway = console_gateway();
    // One real call: nobody is logged in as alice, so the trunk gets 480 and the call is missed.
    let run = sipp("call_nobody.xml", &format!("127.0.0.1:{}", gateway.sip_port), &["-t", "u1"]);
    assert!(run.success(), "{}", run.describe());
    seed_records(&gateway);
    let out = artifacts_dir("console", browser);
    let base_url = format!("http://127.0.0.1:{}", gateway.http_port);
    let run = run_script("console.mjs", browser, &[&base_url, "ops", ADMIN_PASSWORD, &out.to_string_lossy()], &[]);
    let result = run.report;
    println!("console in {}: {result}", browser.name());
    assert_eq!(result["ok"], true, "{result:#}\n{}", run.stderr);
    assert!(result["wrongPasswordMessage"].as_str().is_some_and(|m| m.contains("wrong")), "{result:#}");
    assert_eq!(result["who"], "ops (admin)");
    assert_eq!(result["activeCount"], "1", "{result:#}");
    assert_eq!(result["activeCallers"], serde_json::json!([LIVE_CALLER]), "the dashboard lists the call in progress");
    assert_eq!(result["rowsAll"], 22, "the real call, the 20 seeded finished ones and the one in progress");
    assert_eq!(result["rowsMissed"], 6, "the filter narrows to the missed calls");
    assert_eq!(result["statusesAfterFilter"], serde_json::json!(["missed"]));
    assert!(result["ladderArrows"].as_u64().is_some_and(|n| n >= 3), "{result:#}");
    assert_eq!(result["ladderLabels"][0], "INVITE", "{result:#}");
    assert!(result["firstMessage"].as_str().is_some_and(|m| m.starts_with("INVITE sip:alice@")), "{result:#}");
    assert_eq!(result["viewAfterQuickSwitch"], "records", "a late render of the page left behind never replaces the current one");
    assert_eq!(result["pageErrors"], serde_json::json!([]));
    for shot in ["console-dashboard.png", "console-records.png", "console-filtered.png", "console-detail.png"] {
        assert!(out.join(shot).metadata().is_ok_and(|m| m.len() > 1_000), "screenshot {shot} saved in {}", out.display());
    }
}

/// Names the real call's record `ladder-caller` (so the browser can search for it) and adds 20
/// finished records, every fourth one missed, and the record of a call still in progress.
fn seed_records(gateway: &Gateway) {
    let url = format!("sqlite://{}", gateway.dir.path().join("data/records.db").display());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let store = SqlStore::connect(&url).await.expect("open the gateway's database");
        // The gateway creates the schema with its first record; queries retry until then.
        let mut real = None;
        for _ in 0..100 {
            real = store.list(&Default::default()).await.ok().and_then(|r| r.into_iter().find(|r| r.ended_at.is_some()));
            if real.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let mut real = real.expect("the real call's record");
        assert!(real.sip_messages.len() >= 3, "{:?}", real.sip_messages);
        real.from_name = Some("ladder-caller".into());
        real.revision += 1;
        store.upsert(&real).await.expect("rename");
        for i in 0..20i64 {
            let mut r = CallRecord::new(format!("seed-{i:02}"), CallDirection::Inbound, 1_795_500_000_000 + i * 60_000);
            r.from_uri = format!("sip:+1555{i:07}@carrier.example");
            r.to_uri = "sip:alice@example.com".into();
            let status = if i % 4 == 0 { CallStatus::Missed } else { CallStatus::Answered };
            r.finish(r.started_at + 30_000, status, HangupSide::Sip, "normal", Some(200));
            r.revision = 1;
            store.upsert(&r).await.expect("seed");
        }
        let mut live = CallRecord::new("live".into(), CallDirection::Inbound, 1_795_600_000_000);
        live.from_uri = LIVE_CALLER.into();
        live.to_uri = "sip:alice@example.com".into();
        live.revision = 1;
        store.upsert(&live).await.expect("seed the call in progress");
        store.close().await;
    });
}

#[test]
fn first_login_in_chromium_must_change_the_one_time_password() {
    first_login(Browser::Chromium);
}

#[test]
fn first_login_in_firefox_must_change_the_one_time_password() {
    first_login(Browser::Firefox);
}

/// The first start with no console user: `admin` with a one-time password from the log. In the
/// browser the console shows only the password form until it is changed (a reload too), refuses
/// a short one, then shows the dashboard; the new password logs in and the old one no longer does.
fn first_login(browser: Browser) {
    let gateway = Gateway::start(GatewayOptions::default());
    let log = gateway.log();
    let one_time: String = log.split("one-time password ").nth(1).unwrap_or_else(|| panic!("no one-time password:\n{log}")).chars().take_while(char::is_ascii_alphanumeric).collect();
    assert!(one_time.len() >= 16, "{one_time:?}");
    let new_password = "my-own-console-password";
    let out = artifacts_dir("console", browser);
    let base_url = format!("http://127.0.0.1:{}", gateway.http_port);
    let run = run_script("first_login.mjs", browser, &[&base_url, &one_time, new_password, &out.to_string_lossy()], &[]);
    let result = run.report;
    println!("first login in {}: {result}", browser.name());
    assert_eq!(result["ok"], true, "{result:#}\n{}\n{}", run.stderr, gateway.log());
    assert_eq!(result["navHiddenWhileForced"], true, "{result:#}");
    assert_eq!(result["viewEmptyWhileForced"], true, "{result:#}");
    assert!(result["shortPasswordMessage"].as_str().is_some_and(|m| m.contains("10 characters")), "{result:#}");
    assert_eq!(result["who"], "admin (admin)", "{result:#}");
    assert_eq!(result["pageErrors"], serde_json::json!([]));
    assert_eq!(login(gateway.http_port, "admin", &one_time), None, "the one-time password is gone");
    assert!(login(gateway.http_port, "admin", new_password).is_some());
    let stored = std::fs::read_to_string(gateway.dir.path().join("data/console-users.toml")).expect("users file");
    assert!(!stored.contains(new_password) && !stored.contains("must_change_password"), "only the new hash is kept:\n{stored}");
    assert!(!gateway.log().contains(new_password), "the new password is never logged");
}
