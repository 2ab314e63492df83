//! Mid-call features between a JsSIP softphone (bob, SIP over wss in headless Chromium, 660 Hz)
//! and a sipbridge.js user (alice, 440 Hz answering or 1000 Hz calling), both ways
//! (docs/sip-over-websocket.md): hold and resume by re-INVITE, DTMF "123#" (RFC 4733 and INFO
//! from JsSIP, INFO toward it), and CANCEL before the answer. Tones are checked by frequency,
//! and so is their absence on hold; each call's record says what happened.

mod support;

use sipbridge::store::{CallDirection, CallRecord, CallStatus};
use std::io::BufReader;
use std::process::{Child, ChildStdout};
use support::calls::{assert_tone, echo_page_args, token, trunk_profile, AnsweringPages, EchoTrunk, start_sip_ws_call};
use support::{free_port, Gateway, GatewayOptions, BOB_PASSWORD, LOCAL_DOMAIN};

/// The loudest sample a page may hear while the other side sends it nothing (silence, comfort
/// noise, measured below 0.01); the tones peak near 0.37.
const SILENT: f64 = 0.05;

type Lines = std::io::Lines<BufReader<ChildStdout>>;

/// A gateway with a `wss` listener and `extra_media` in `[media]`.
fn start_gateway(extra_media: &str) -> (Gateway, String) {
    start_gateway_with(GatewayOptions { extra_media: extra_media.to_string(), ..GatewayOptions::default() })
}

/// `options` and a `wss` listener.
fn start_gateway_with(options: GatewayOptions) -> (Gateway, String) {
    let wss_port = free_port();
    let extra_sip = format!("[[sip.listen]]\ntransport = \"wss\"\naddress = \"127.0.0.1:{wss_port}\"\n");
    let gateway = Gateway::start(GatewayOptions { extra_sip, ..options });
    (gateway, format!("wss://127.0.0.1:{wss_port}"))
}

/// tests/browser/sip_ws_call.mjs: JsSIP as bob over `url`, in `mode` toward `target`.
fn jssip(gateway: &Gateway, url: &str, mode: &str, target: &str) -> (Child, Lines) {
    jssip_with(gateway, url, mode, target, &[])
}

/// `jssip` with more environment for the script.
fn jssip_with(gateway: &Gateway, url: &str, mode: &str, target: &str, env: &[(&str, &str)]) -> (Child, Lines) {
    start_sip_ws_call(gateway, ["jssip", url, &format!("sip:bob@{LOCAL_DOMAIN}"), BOB_PASSWORD, mode, target, "660"], env)
}

/// Waits until the JsSIP page is registered and waiting for a call.
fn await_ready(lines: &mut Lines, gateway: &Gateway) {
    assert!(lines.by_ref().map_while(Result::ok).any(|l| l == "READY"), "JsSIP never registered\n{}", gateway.log());
}

fn report(mut child: Child, lines: Lines) -> serde_json::Value {
    let report = lines.map_while(Result::ok).filter(|l| l.starts_with('{')).last().and_then(|l| serde_json::from_str(&l).ok()).unwrap_or_default();
    let _ = child.wait();
    report
}

fn level(report: &serde_json::Value, key: &str) -> f64 {
    report[key].as_f64().unwrap_or(f64::NAN)
}

/// The record's hold steps and the SIP requests of `method` in `direction` ("in" or "out").
fn holds_and_requests(record: &CallRecord, method: &str, direction: &str) -> (Vec<String>, usize) {
    let holds = record.events.iter().filter(|e| e.kind == "hold").map(|e| e.detail.clone()).collect();
    let requests = record.sip_messages.iter().filter(|m| m.direction == direction && m.summary.starts_with(&format!("{method} "))).count();
    (holds, requests)
}

/// JsSIP calls alice, then holds (re-INVITE sendonly: alice hears `remote_hold`, JsSIP hears
/// nothing from the gateway), resumes (alice's tone comes back), and sends "123#" as RFC 4733
/// and again as INFO: alice's page gets every digit, and JsSIP's tone after the last.
#[test]
fn jssip_holds_resumes_and_sends_dtmf_both_ways_to_a_sipbridge_js_user() {
    let (gateway, url) = start_gateway("");
    let browser = AnsweringPages::start(&gateway, &["accept"]);
    let (child, lines) = jssip(&gateway, &url, "call-features", &format!("sip:alice@{LOCAL_DOMAIN}"));
    let phone = report(child, lines);
    let page = browser.reports().pop().unwrap_or_default();
    let log = gateway.log();
    println!("JsSIP: heard {} Hz, {} on hold, {} Hz resumed; timers {}", phone["peakHz"], phone["holdLevel"], phone["resumedHz"], phone["sessionTimers"]);
    println!("alice: heard {} Hz, holds {}, dtmf {}, after '#' {} Hz", page["peakHz"], page["holds"], page["dtmf"], page["afterDigit"]["#"]);
    assert_eq!(phone["ok"], true, "{phone:#}\n{log}");
    assert_eq!(page["ok"], true, "{page:#}\n{log}");
    assert_tone(&phone, "peakHz", 440.0, &format!("JsSIP hears alice\n{log}"));
    assert_tone(&page, "peakHz", 660.0, &format!("alice hears JsSIP\n{log}"));
    assert_eq!(phone["heldDrained"], true, "holding, JsSIP's packets from the gateway stop: {phone:#}\n{log}");
    assert!(level(&phone, "holdLevel") < SILENT, "holding, JsSIP gets nothing from the gateway: {phone:#}\n{log}");
    assert_tone(&phone, "resumedHz", 440.0, &format!("alice's tone after the resume\n{log}"));
    assert_eq!(page["holds"], serde_json::json!(["hold", "resume"]), "alice's hold events: {page:#}\n{log}");
    assert_eq!(page["dtmf"], "123#123#", "alice's digits (RFC 4733, then INFO): {page:#}\n{log}");
    assert_tone(&page["afterDigit"], "#", 660.0, &format!("JsSIP's tone after the digits\n{log}"));
    let record = support::completed_record(&gateway);
    let (holds, infos) = holds_and_requests(&record, "INFO", "in");
    assert_eq!((record.direction, record.status), (CallDirection::Inbound, CallStatus::Answered), "{record:#?}");
    assert_eq!(holds, ["on hold", "resumed"], "{record:#?}");
    assert_eq!(infos, 4, "JsSIP's INFO digits in the record: {:#?}", record.sip_messages);
    // Session timers (RFC 4028): JsSIP asks 90 s; our 2xx agrees and makes JsSIP the refresher,
    // which JsSIP runs (its refresh, an UPDATE at 45 s, is unit-tested in sip/core).
    let answers_invite = |m: &&sipbridge::store::SipMessage| m.text.lines().any(|l| l.starts_with("CSeq:") && l.trim_end().ends_with(" INVITE"));
    let ok = record.sip_messages.iter().filter(|m| m.direction == "out" && m.summary.starts_with("SIP/2.0 200")).find(answers_invite);
    assert!(ok.is_some_and(|m| m.text.contains("Session-Expires: 90;refresher=uac")), "our 200 to JsSIP's INVITE: {:#?}", record.sip_messages);
    assert_eq!(phone["sessionTimers"], serde_json::json!({"running": true, "expires": 90, "refresher": true}), "{phone:#}");
    assert!(!log.contains("panicked"), "{log}");
}

/// alice calls JsSIP, which answers; alice holds for longer than `rtp_timeout_secs` (JsSIP,
/// held, sends no RTP), resumes, and sends "123#". JsSIP gets the hold and resume re-INVITEs,
/// hears nothing while held and alice's tone after, and gets the digits as INFO; the call
/// survives the hold because `rtp_hold_timeout_secs` applies while held.
#[test]
fn a_sipbridge_js_user_holds_jssip_past_the_rtp_timeout_and_sends_dtmf() {
    let (gateway, url) = start_gateway("rtp_timeout_secs = 2\n");
    let (child, mut lines) = jssip(&gateway, &url, "answer-features", "-");
    await_ready(&mut lines, &gateway);
    let page = echo_page_args(&gateway, &token("alice", &[]), &["", "bob", "hold-dtmf", "1000"], &[("SIPBRIDGE_HOLD_MS", "3500")]);
    let phone = report(child, lines);
    let log = gateway.log();
    println!("alice: heard {} Hz, levels {} / {} / {}", page["peakHz"], page["levelBeforeHold"], page["levelOnHold"], page["levelAfterResume"]);
    println!("JsSIP: heard {} Hz, holds {}, {} on hold ({} packets sent), {} Hz resumed, dtmf {}", phone["peakHz"], phone["holds"], phone["holdLevel"], phone["sentWhileHeld"], phone["resumedHz"], phone["dtmf"]);
    assert_eq!(page["ok"], true, "{page:#}\n{log}");
    assert_eq!(phone["ok"], true, "{phone:#}\n{log}");
    assert_tone(&page, "peakHz", 660.0, &format!("alice hears JsSIP\n{log}"));
    assert_tone(&phone, "peakHz", 1000.0, &format!("JsSIP hears alice\n{log}"));
    assert_eq!(phone["holds"], serde_json::json!(["hold:remote", "unhold:remote"]), "{phone:#}\n{log}");
    assert_eq!((&phone["heldDrained"], &page["holdDrained"]), (&serde_json::json!(true), &serde_json::json!(true)), "held, packets stop both ways: {phone:#}\n{page:#}\n{log}");
    assert!(level(&phone, "holdLevel") < SILENT, "held, JsSIP hears nothing: {phone:#}\n{log}");
    assert_eq!(phone["sentWhileHeld"], 0, "held (recvonly), JsSIP sends no RTP: {phone:#}\n{log}");
    assert!(level(&page, "levelOnHold") < SILENT && level(&page, "levelAfterResume") > 0.1, "alice's levels: {page:#}\n{log}");
    assert_tone(&phone, "resumedHz", 1000.0, &format!("alice's tone after the resume\n{log}"));
    assert_eq!(phone["dtmf"], "123#", "JsSIP's newDTMF digits: {phone:#}\n{log}");
    assert_eq!(phone["ended"]["originator"], "remote", "alice hung up: {phone:#}\n{log}");
    let record = support::completed_record(&gateway);
    let (holds, infos) = holds_and_requests(&record, "INFO", "out");
    assert_eq!((record.direction, record.status), (CallDirection::Outbound, CallStatus::Answered), "not ended by the RTP timeout: {record:#?}\n{log}");
    assert_eq!(holds, ["on hold", "resumed"], "{record:#?}");
    assert_eq!(infos, 4, "the INFO digits toward JsSIP in the record: {:#?}", record.sip_messages);
    assert!(!log.contains("panicked"), "{log}");
}

/// JsSIP calls alice and cancels once it rings: alice's ringing ends as `cancelled`, and so
/// does the record.
#[test]
fn jssip_cancels_before_the_answer() {
    let (gateway, url) = start_gateway("");
    let browser = AnsweringPages::start(&gateway, &["watch"]);
    let (child, lines) = jssip(&gateway, &url, "call-cancel", &format!("sip:alice@{LOCAL_DOMAIN}"));
    let phone = report(child, lines);
    let page = browser.reports().pop().unwrap_or_default();
    let log = gateway.log();
    assert_eq!(phone["ok"], true, "{phone:#}\n{log}");
    assert_eq!((&phone["ended"]["originator"], &phone["ended"]["cause"]), (&serde_json::json!("local"), &serde_json::json!("Canceled")), "{phone:#}\n{log}");
    assert_eq!(page["ended"]["reason"], "cancelled", "alice's ringing: {page:#}\n{log}");
    let record = support::completed_record(&gateway);
    assert_eq!((record.direction, record.status), (CallDirection::Inbound, CallStatus::Cancelled), "{record:#?}");
    assert!(record.sip_messages.iter().any(|m| m.direction == "in" && m.summary.starts_with("CANCEL ")), "{:#?}", record.sip_messages);
    assert!(!log.contains("panicked"), "{log}");
}

/// alice calls JsSIP and hangs up while it rings: JsSIP gets the CANCEL, and the record says
/// cancelled.
#[test]
fn a_sipbridge_js_user_cancels_a_call_to_jssip() {
    let (gateway, url) = start_gateway("");
    let (child, mut lines) = jssip(&gateway, &url, "ring", "-");
    await_ready(&mut lines, &gateway);
    let page = echo_page_args(&gateway, &token("alice", &[]), &["", "bob", "cancel"], &[]);
    let phone = report(child, lines);
    let log = gateway.log();
    assert_eq!(page["ok"], true, "{page:#}\n{log}");
    assert_eq!(phone["ok"], true, "{phone:#}\n{log}");
    assert_eq!((&phone["ended"]["originator"], &phone["ended"]["cause"]), (&serde_json::json!("remote"), &serde_json::json!("Canceled")), "JsSIP saw the CANCEL: {phone:#}\n{log}");
    let record = support::completed_record(&gateway);
    assert_eq!((record.direction, record.status), (CallDirection::Outbound, CallStatus::Cancelled), "{record:#?}");
    assert!(record.sip_messages.iter().any(|m| m.direction == "out" && m.summary.starts_with("CANCEL ")), "{:#?}", record.sip_messages);
    assert!(!log.contains("panicked"), "{log}");
}

/// In a call from JsSIP (bob, granted the trunk profile) to alice, JsSIP REFERs the call to a
/// number: the gateway answers 202 and places the call through bob's profile to a sipp trunk
/// that echoes; JsSIP hears NOTIFY 100, 180 (the trunk rings) and 200, then a BYE, and alice, first hearing JsSIP's
/// 660 Hz, then hears her own 440 Hz back from the trunk (Opus from her, PCMU to the trunk).
#[test]
fn jssip_refers_the_sipbridge_js_user_to_a_trunk() {
    let trunk_port = free_port();
    let trunk = EchoTrunk::start(trunk_port);
    let (gateway, url) = start_gateway_with(GatewayOptions { profiles: vec![trunk_profile(trunk_port)], bob_profiles: vec!["trunk"], ..GatewayOptions::default() });
    let browser = AnsweringPages::start(&gateway, &["transferred"]);
    let refer_to = format!("sip:+15557654321@{LOCAL_DOMAIN}");
    let (child, lines) = jssip_with(&gateway, &url, "call-refer", &format!("sip:alice@{LOCAL_DOMAIN}"), &[("SIP_WS_REFER_TO", &refer_to)]);
    let phone = report(child, lines);
    let page = browser.reports().pop().unwrap_or_default();
    let log = gateway.log();
    println!("JsSIP: heard {} Hz, refer {}, ended {}", phone["peakHz"], phone["refer"], phone["ended"]);
    println!("alice: heard {} Hz, then {} Hz", page["peakHz"], page["laterHz"]);
    assert_eq!(phone["ok"], true, "{phone:#}\n{log}");
    assert_eq!(page["ok"], true, "{page:#}\n{log}");
    assert_tone(&phone, "peakHz", 440.0, &format!("JsSIP hears alice\n{log}"));
    assert_tone(&page, "peakHz", 660.0, &format!("alice hears JsSIP\n{log}"));
    assert_eq!(phone["refer"], serde_json::json!(["202", "trying 100", "progress 180", "accepted 200"]), "the REFER's answer and NOTIFYs: {phone:#}\n{log}");
    assert_eq!(phone["ended"]["originator"], "remote", "the gateway let JsSIP go: {phone:#}\n{log}");
    assert_tone(&page, "laterHz", 440.0, &format!("alice hears the trunk's echo of her tone\n{log}"));
    assert_eq!(page["stateAfter"], "answered", "alice's call went on: {page:#}");
    trunk.finish().unwrap_or_else(|e| panic!("the trunk's call: {e}\n{log}"));
    let record = support::completed_record(&gateway);
    assert_eq!((record.direction, record.status), (CallDirection::Inbound, CallStatus::Answered), "{record:#?}");
    assert!(record.events.iter().any(|e| e.kind == "transfer" && e.detail.contains("+15557654321")), "{:#?}", record.events);
    assert_eq!(record.sip_call_ids.len(), 2, "JsSIP's call and the trunk's: {record:#?}");
    let (_, refers) = holds_and_requests(&record, "REFER", "in");
    let (_, notifies) = holds_and_requests(&record, "NOTIFY", "out");
    assert_eq!((refers, notifies), (1, 3), "{:#?}", record.sip_messages);
    assert!(record.sip_messages.iter().any(|m| m.direction == "out" && m.summary.starts_with("INVITE sip:+15557654321@127.0.0.1")), "{:#?}", record.sip_messages);
    assert!(!log.contains("panicked"), "{log}");
}

/// bob (JsSIP) has no trunk or PBX profile: its REFER is accepted (202), then refused in the
/// NOTIFY (403); nothing is placed, the call goes on (alice still hears JsSIP) until JsSIP
/// hangs up, and the record shows no second call.
#[test]
fn a_refer_from_a_user_without_a_granted_profile_is_refused_and_the_call_goes_on() {
    let (gateway, url) = start_gateway("");
    let (_, log) = refer_refused_and_call_goes_on(&gateway, &url, &format!("sip:+15557654321@{LOCAL_DOMAIN}"), "failed 403");
    assert!(!log.contains("panicked"), "{log}");
}

/// JsSIP calls alice (who answers) and REFERs her to `refer_to`; the gateway accepts the REFER
/// (202), refuses the transfer in its NOTIFY (`refusal`), and the call goes on (alice still hears
/// JsSIP) until JsSIP hangs up, with no transfer in the record. Returns the record and the log.
fn refer_refused_and_call_goes_on(gateway: &Gateway, url: &str, refer_to: &str, refusal: &str) -> (CallRecord, String) {
    let browser = AnsweringPages::start(gateway, &["accept"]);
    let (child, lines) = jssip_with(gateway, url, "call-refer", &format!("sip:alice@{LOCAL_DOMAIN}"), &[("SIP_WS_REFER_TO", refer_to)]);
    let phone = report(child, lines);
    let page = browser.reports().pop().unwrap_or_default();
    let log = gateway.log();
    assert_eq!(phone["ok"], true, "{phone:#}\n{log}");
    assert_eq!(page["ok"], true, "{page:#}\n{log}");
    assert_eq!(phone["refer"], serde_json::json!(["202", "trying 100", refusal]), "{phone:#}\n{log}");
    assert_eq!((&phone["stillUp"], &phone["ended"]["originator"]), (&serde_json::json!(true), &serde_json::json!("local")), "up a second after the refusal, then JsSIP hung up: {phone:#}");
    assert_tone(&page, "peakHz", 660.0, &format!("alice hears JsSIP\n{log}"));
    assert_eq!(page["ended"]["reason"], "normal", "JsSIP's own BYE ended it: {page:#}");
    let record = support::completed_record(gateway);
    assert_eq!((record.status, record.sip_call_ids.len()), (CallStatus::Answered, 1), "{record:#?}");
    assert!(!record.events.iter().any(|e| e.kind == "transfer"), "{:#?}", record.events);
    (record, log)
}

/// bob (JsSIP, granted a trunk profile) REFERs the call to `alice`, a local user: the dial plan
/// names her, so the transfer is refused in the NOTIFY (501: a local user is not a transfer
/// target) instead of sending her name to the trunk as a number; the call goes on (alice still
/// hears JsSIP's 660 Hz) until JsSIP hangs up, and no INVITE leaves toward the trunk.
#[test]
fn a_refer_to_a_local_user_is_refused_and_never_reaches_the_trunk() {
    let trunk_port = free_port();
    let (gateway, url) = start_gateway_with(GatewayOptions { profiles: vec![trunk_profile(trunk_port)], bob_profiles: vec!["trunk"], ..GatewayOptions::default() });
    let (record, log) = refer_refused_and_call_goes_on(&gateway, &url, &format!("sip:alice@{LOCAL_DOMAIN}"), "failed 501");
    assert!(!record.sip_messages.iter().any(|m| m.direction == "out" && m.summary.starts_with("INVITE ")), "nothing toward the trunk: {:#?}", record.sip_messages);
    assert!(!log.contains("panicked"), "{log}");
}

/// The other way round: alice (1000 Hz) calls JsSIP, which answers and REFERs her to a number;
/// the gateway places it through bob's trunk profile, and alice hears her own tone back from the
/// echoing trunk while JsSIP is let go.
#[test]
fn jssip_called_by_a_sipbridge_js_user_refers_her_to_a_trunk() {
    let trunk_port = free_port();
    let trunk = EchoTrunk::start(trunk_port);
    let (gateway, url) = start_gateway_with(GatewayOptions { profiles: vec![trunk_profile(trunk_port)], bob_profiles: vec!["trunk"], ..GatewayOptions::default() });
    let refer_to = format!("sip:+15557654321@{LOCAL_DOMAIN}");
    let (child, mut lines) = jssip_with(&gateway, &url, "answer-refer", "-", &[("SIP_WS_REFER_TO", &refer_to)]);
    await_ready(&mut lines, &gateway);
    let page = echo_page_args(&gateway, &token("alice", &[]), &["", "bob", "transferred", "1000"], &[]);
    let phone = report(child, lines);
    let log = gateway.log();
    println!("alice: heard {} Hz, then {} Hz; JsSIP: refer {}", page["peakHz"], page["laterHz"], phone["refer"]);
    assert_eq!(page["ok"], true, "{page:#}\n{log}");
    assert_eq!(phone["ok"], true, "{phone:#}\n{log}");
    assert_tone(&page, "peakHz", 660.0, &format!("alice hears JsSIP\n{log}"));
    assert_eq!(phone["refer"], serde_json::json!(["202", "trying 100", "progress 180", "accepted 200"]), "{phone:#}\n{log}");
    assert_eq!(phone["ended"]["originator"], "remote", "the gateway let JsSIP go: {phone:#}\n{log}");
    assert_tone(&page, "laterHz", 1000.0, &format!("alice hears the trunk's echo of her tone\n{log}"));
    assert_eq!(page["stateAfter"], "answered", "{page:#}");
    trunk.finish().unwrap_or_else(|e| panic!("the trunk's call: {e}\n{log}"));
    let record = support::completed_record(&gateway);
    assert_eq!((record.direction, record.status, record.sip_call_ids.len()), (CallDirection::Outbound, CallStatus::Answered, 2), "{record:#?}");
    assert!(record.events.iter().any(|e| e.kind == "transfer"), "{:#?}", record.events);
    assert!(!log.contains("panicked"), "{log}");
}
