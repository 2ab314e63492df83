//! A leg that sends no RTP ends the call (issue 13). sipp trunks that never send media, in both
//! directions, with Chromium as the browser, and a gateway with small limits: a silent leg ends
//! the call after RTP_TIMEOUT_SECS, or HOLD_TIMEOUT_SECS while the call is on hold (held by the
//! SIP side with a sendonly re-INVITE, or by the browser). Each test checks every end of it: sipp
//! gets the gateway's BYE (its scenario fails otherwise), the browser gets `hangup` with reason
//! `media_timeout`, and the call record names the cause. The browser keeps sending its tone, so
//! the silent leg is always the SIP one: a browser leg whose RTP did not count would be named.
//! A trunk that vanishes after its answer (no RTP, no answer to anything) gets the BYE all the
//! same, retransmitted into the void, and the record names the cause.

mod support;

use sipbridge::store::HangupSide;
use support::calls::{echo_page, token, trunk_profile, AnsweringPages, EchoTrunk};
use support::{completed_record, free_port, free_sipp_media_port, scenario_path, sipp, Gateway, GatewayOptions};
use std::time::{Duration, Instant};

const RTP_TIMEOUT_SECS: i64 = 3;
const HOLD_TIMEOUT_SECS: i64 = 7;

fn gateway(profiles: Vec<(String, String)>) -> Gateway {
    let limits = format!("rtp_timeout_secs = {RTP_TIMEOUT_SECS}\nrtp_hold_timeout_secs = {HOLD_TIMEOUT_SECS}\n");
    Gateway::start(GatewayOptions { profiles, extra_media: limits, ..Default::default() })
}

/// Checks the end of a call whose SIP leg fell silent: the browser's `hangup` and the record say
/// `media_timeout`, and the call lasted `limit_secs` from its answer (less a little: the timer
/// starts just before the answer is recorded), clearly less than `limit_secs` + the RTP limit.
fn assert_sip_leg_timed_out((gateway, ended): (Gateway, serde_json::Value), limit_secs: i64) {
    let log = gateway.log();
    let cause = "media_timeout: no RTP from the SIP side";
    assert_eq!(ended["reason"], "media_timeout", "the browser's hangup: {ended}\n{log}");
    assert!(ended["cause"].as_str().is_some_and(|c| c.starts_with(cause)), "the browser's hangup: {ended}\n{log}");
    let record = completed_record(&gateway);
    assert!(record.hangup_reason.as_deref().is_some_and(|r| r.starts_with(cause)), "the record's cause: {:?}\n{log}", record.hangup_reason);
    assert_eq!(record.hangup_side, Some(HangupSide::Gateway), "the gateway ended it");
    let lasted = record.ended_at.expect("ended") - record.answered_at.expect("answered");
    crate::figures!("media timeout after {lasted} ms: {}", record.hangup_reason.unwrap_or_default());
    let expected = limit_secs * 1000 - 300..(limit_secs + RTP_TIMEOUT_SECS) * 1000;
    assert!(expected.contains(&lasted), "the call lasted {lasted} ms, expected {expected:?}\n{log}");
}

/// sipp calls alice and falls silent (or holds her first); her page answers and waits for the end.
fn trunk_calls_browser(scenario: &str) -> (Gateway, serde_json::Value) {
    let gateway = gateway(vec![trunk_profile(free_port())]);
    let pages = AnsweringPages::start(&gateway, &["await-end"]);
    let run = sipp(scenario, &format!("127.0.0.1:{}", gateway.sip_port), &["-t", "u1", "-mp", &free_sipp_media_port().to_string()]);
    let reports = pages.reports();
    assert!(run.success(), "the trunk got the gateway's BYE: {}\n{}", run.describe(), gateway.log());
    let page = reports.first().cloned().unwrap_or_default();
    assert_eq!(page["ok"], true, "{page:#}\n{}", gateway.log());
    (gateway, page["ended"].clone())
}

/// Chromium (alice) calls a trunk that answers and never sends RTP; `mode` is echo.mjs's.
fn browser_calls_silent_trunk(mode: &str) -> (Gateway, serde_json::Value) {
    let trunk_port = free_port();
    let gateway = gateway(vec![trunk_profile(trunk_port)]);
    let scenario = scenario_path("silent_trunk.xml").to_string_lossy().into_owned();
    let trunk = EchoTrunk::silent(trunk_port, &["-sf", &scenario]);
    let page = echo_page(&gateway, &token("alice", &["trunk"]), ["", "+15551234567", mode], &[]);
    let verdict = trunk.finish();
    assert!(verdict.is_ok(), "the trunk got the gateway's BYE: {verdict:?}\n{}", gateway.log());
    assert_eq!(page["ok"], true, "{page:#}\n{}", gateway.log());
    (gateway, page["ended"].clone())
}

#[test]
fn a_trunk_that_falls_silent_after_answer_gets_a_bye() {
    assert_sip_leg_timed_out(trunk_calls_browser("call_to_browser_silent.xml"), RTP_TIMEOUT_SECS);
}

/// Held half a second after the answer: the timers restart there under the hold limit.
#[test]
fn a_trunk_that_holds_has_the_hold_limit() {
    assert_sip_leg_timed_out(trunk_calls_browser("call_to_browser_hold_silent.xml"), HOLD_TIMEOUT_SECS);
}

#[test]
fn a_browser_call_to_a_trunk_that_never_sends_ends_with_bye() {
    assert_sip_leg_timed_out(browser_calls_silent_trunk("await-end"), RTP_TIMEOUT_SECS);
}

/// The browser holds as soon as the call is answered (sendonly re-INVITE, answered recvonly).
#[test]
fn a_browser_that_holds_has_the_hold_limit() {
    assert_sip_leg_timed_out(browser_calls_silent_trunk("hold-await-end"), HOLD_TIMEOUT_SECS);
}

/// sipp answers Chromium's call, takes the ACK and exits; the test then listens on its port and
/// never answers. The gateway ends the call on the RTP timeout with a BYE (retransmitted, since
/// nobody answers), and the record says why, with that BYE in its SIP messages.
#[test]
fn a_trunk_that_vanishes_after_answer_gets_a_bye_and_the_record_names_the_timeout() {
    let trunk_port = free_port();
    let gateway = gateway(vec![trunk_profile(trunk_port)]);
    let scenario = scenario_path("vanishing_trunk.xml").to_string_lossy().into_owned();
    let trunk = EchoTrunk::silent(trunk_port, &["-sf", &scenario]);
    let login = token("alice", &["trunk"]);
    let (page, byes) = std::thread::scope(|scope| {
        let page = scope.spawn(|| echo_page(&gateway, &login, ["", "+15551234567", "await-end"], &[]));
        assert!(trunk.finish().is_ok(), "sipp answered and left");
        // Nobody answers on the trunk's port from here on: the test only listens.
        let void = std::net::UdpSocket::bind(("127.0.0.1", trunk_port)).expect("bind the vanished trunk's port");
        void.set_read_timeout(Some(Duration::from_millis(500))).expect("timeout");
        let deadline = Instant::now() + Duration::from_secs(RTP_TIMEOUT_SECS as u64 + 10);
        let mut byes = 0;
        let mut buffer = [0u8; 4096];
        while Instant::now() < deadline && byes < 2 {
            if let Ok((n, _)) = void.recv_from(&mut buffer) {
                byes += usize::from(buffer[..n].starts_with(b"BYE sip:"));
            }
        }
        (page.join().expect("page thread"), byes)
    });
    assert!(byes >= 2, "the gateway's BYE, retransmitted since nobody answers ({byes} seen)\n{}", gateway.log());
    assert_eq!(page["ok"], true, "{page:#}\n{}", gateway.log());
    let record = completed_record(&gateway);
    assert!(record.sip_messages.iter().any(|m| m.direction == "out" && m.summary.starts_with("BYE ")), "the BYE is in the record: {:#?}", record.sip_messages);
    crate::figures!("vanished trunk: {byes} copies of the BYE reached its silent port");
    assert_sip_leg_timed_out((gateway, page["ended"].clone()), RTP_TIMEOUT_SECS);
}
