//! Graceful drain with real peers: Chromium (sipbridge.js) holds 20 calls, 10 it placed to a sipp
//! trunk and 10 a sipp caller placed to it. SIGTERM makes the gateway refuse new calls (503 with
//! Retry-After, `/readyz` 503), lets the calls go on for `drain_secs`, then end every one: each SIP
//! peer gets a BYE, each browser call `hangup {reason: shutdown}`, 20 final records are written,
//! and the process exits 0 within `drain_secs` + 5 s. A stop request during a drain (a second
//! SIGTERM, or SIGTERM after `POST /api/v1/drain`) ends the calls at once.

mod support;

use std::time::{Duration, Instant};
use support::calls::{token, EchoTrunk, ManyCallsPage};
use support::{free_port, http_get, sipp, Gateway, GatewayOptions, API_TOKEN};

const FROM_BROWSER: usize = 10;
const FROM_SIP: usize = 10;

fn gateway(trunk_port: u16, drain_secs: u64) -> Gateway {
    let profile = format!("kind = \"trunk\"\nhost = \"127.0.0.1\"\nport = {trunk_port}\ntrusted_addresses = [\"127.0.0.1\"]\n");
    let calls = format!("\n[calls]\ndrain_secs = {drain_secs}\nmax_per_user = 40\n");
    Gateway::start(GatewayOptions { profiles: vec![("trunk.toml".into(), profile)], extra_media: calls, ..Default::default() })
}

/// sipp calling alice `calls` times at once; each call waits for the gateway's BYE.
fn sip_callers(gateway: &Gateway, calls: usize) -> std::thread::JoinHandle<support::SippRun> {
    let target = gateway.sip_addr().to_string();
    std::thread::spawn(move || {
        let calls = calls.to_string();
        sipp("call_to_browser_until_bye.xml", &target, &["-m", &calls, "-l", &calls, "-r", "20", "-timeout", "90s"])
    })
}

fn shutdown_hangups(report: &serde_json::Value) -> usize {
    let ended = report["ended"].as_array().cloned().unwrap_or_default();
    ended.iter().filter(|e| e["reason"] == "shutdown" && e["cause"].as_str().is_some_and(|c| c.starts_with("shutdown"))).count()
}

#[test]
fn sigterm_lets_twenty_calls_run_out_the_drain_then_ends_each_properly() {
    const DRAIN_SECS: u64 = 3;
    let trunk_port = free_port();
    let mut gateway = gateway(trunk_port, DRAIN_SECS);
    let trunk = EchoTrunk::answering(trunk_port, FROM_BROWSER);
    let mut page = ManyCallsPage::start(&gateway, FROM_BROWSER, FROM_SIP);
    let callers = sip_callers(&gateway, FROM_SIP);
    page.expect_line("ESTABLISHED");

    gateway.signal("TERM");
    let signalled = Instant::now();
    gateway.wait_for_log("draining: new calls are refused");
    let (ready, body) = http_get(gateway.http_port, "/readyz", Some(API_TOKEN)).expect("readyz");
    assert_eq!(ready, 503, "a draining gateway is not ready: {body}");
    assert!(body.contains("draining"), "{body}");
    let refused = sipp("call_overload.xml", &gateway.sip_addr().to_string(), &[]);
    assert!(refused.success(), "a new INVITE during the drain gets 503: {}", refused.describe());

    let exit = gateway.wait_exit(Duration::from_secs(DRAIN_SECS + 5));
    let took = signalled.elapsed();
    assert_eq!(exit.map(|s| s.code()), Some(Some(0)), "exit status 0 within drain_secs + 5 s\n{}", gateway.log());
    assert!(took >= Duration::from_secs(DRAIN_SECS) - Duration::from_millis(100), "answered calls went on for drain_secs ({took:?})");

    let report = page.report();
    assert_eq!(report["ok"], true, "every browser call ended: {report:#}");
    assert_eq!(shutdown_hangups(&report), FROM_BROWSER + FROM_SIP, "every browser call got hangup shutdown: {report:#}");
    let callers = callers.join().expect("sipp thread");
    assert!(callers.success(), "every caller got a BYE: {}\n{}", callers.describe(), gateway.log());
    assert!(trunk.finish().is_ok(), "the trunk got a BYE for each call\n{}", gateway.log());

    let records = gateway.stored_records();
    let drained: Vec<_> = records.iter().filter(|r| r.hangup_reason.as_deref().is_some_and(|h| h.starts_with("shutdown")) && r.answered_at.is_some()).collect();
    assert_eq!(drained.len(), FROM_BROWSER + FROM_SIP, "20 final records of answered calls ended by the shutdown: {records:#?}");
    assert!(drained.iter().all(|r| r.ended_at.is_some() && r.status == sipbridge::store::CallStatus::Answered), "{drained:#?}");
    assert!(records.iter().all(|r| r.ended_at.is_some()), "no record is left in progress");
}

/// `sipbridge drain --config FILE` drains the gateway that file describes, through its API.
#[test]
fn the_drain_command_drains_the_gateway_its_config_describes() {
    let mut gateway = gateway(free_port(), 600);
    let output = gateway.drain_command();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let reply: serde_json::Value = serde_json::from_str(stdout.trim()).expect("the API's reply");
    assert_eq!(reply["draining"], true, "{reply:#}");
    gateway.wait_for_log("draining: new calls are refused");
    assert!(!gateway.log().contains(API_TOKEN), "the token stays out of the log");
    let exit = gateway.wait_exit(Duration::from_secs(10));
    assert_eq!(exit.map(|s| s.code()), Some(Some(0)), "no call was up, so the drain ended at once\n{}", gateway.log());
}

#[test]
fn sigterm_during_a_rest_drain_ends_calls_at_once_and_browsers_are_refused_meanwhile() {
    const DRAIN_SECS: u64 = 600;
    let trunk_port = free_port();
    let mut gateway = gateway(trunk_port, DRAIN_SECS);
    let trunk = EchoTrunk::answering(trunk_port, 1);
    let mut page = ManyCallsPage::start(&gateway, 1, 1);
    let callers = sip_callers(&gateway, 1);
    page.expect_line("ESTABLISHED");

    let (code, body) = support::http_post(gateway.http_port, "/api/v1/drain", Some(API_TOKEN)).expect("drain request");
    assert_eq!(code, 202, "{body}");
    gateway.wait_for_log("draining: new calls are refused");
    // A browser's new call is refused as `unavailable` (a second page, same user).
    let refused = support::calls::echo_page(&gateway, &token("alice", &["trunk"]), ["", "+15551234567", ""], &[]);
    assert!(refused["error"].as_str().is_some_and(|e| e.contains("call ended: unavailable shutdown")), "{refused:#}");
    // So is a call to `echo`, which never leaves the gateway.
    let refused = support::calls::echo_page(&gateway, &token("alice", &["trunk"]), ["", "echo", ""], &[]);
    assert!(refused["error"].as_str().is_some_and(|e| e.contains("call ended: unavailable shutdown")), "{refused:#}");

    gateway.signal("TERM");
    let exit = gateway.wait_exit(Duration::from_secs(5));
    assert_eq!(exit.map(|s| s.code()), Some(Some(0)), "the second request ended the calls at once\n{}", gateway.log());
    let report = page.report();
    assert_eq!(shutdown_hangups(&report), 2, "{report:#}");
    assert!(callers.join().expect("sipp thread").success(), "the caller got a BYE\n{}", gateway.log());
    assert!(trunk.finish().is_ok(), "the trunk got a BYE");
    assert!(gateway.stored_records().iter().all(|r| r.ended_at.is_some()), "no record is left in progress");
}
