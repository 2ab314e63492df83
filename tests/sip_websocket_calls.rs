//! Calls with WebRTC media between SIP-over-WebSocket softphones and sipbridge.js users
//! (docs/sip-over-websocket.md): JsSIP and SIP.js from npm in headless Chromium, registered over
//! wss:// as bob, call alice logged in with sipbridge.js in another Chromium, or alice calls bob
//! and JsSIP answers. Each side's fake microphone plays its own tone (JsSIP/SIP.js 660 Hz,
//! sipbridge.js 440 or 1000 Hz); each side checks it hears the other's by frequency, and the call
//! record names the parties and the direction. A JsSIP client killed mid-call is ended on the
//! RTP timeout and loses its binding with its connection.

mod support;

use sipbridge::store::{CallDirection, CallRecord, CallStatus, HangupSide};
use std::io::BufReader;
use std::process::{Child, ChildStdout, Command};
use support::calls::{assert_tone, echo_page_args, token, AnsweringPages, start_sip_ws_call};
use support::{free_port, Gateway, GatewayOptions, BOB_PASSWORD, LOCAL_DOMAIN};

/// The softphones' tone; sipbridge.js pages play 440 Hz (answer.mjs) or 1000 Hz (echo.mjs).
const SOFTPHONE_HZ: &str = "660";

/// A gateway with a `wss` listener (its self-signed certificate, trusted by the pages).
fn start_gateway() -> (Gateway, String) {
    start_gateway_with(String::new())
}

/// `start_gateway` with more `[media]` settings.
fn start_gateway_with(extra_media: String) -> (Gateway, String) {
    let wss_port = free_port();
    let extra_sip = format!("[[sip.listen]]\ntransport = \"wss\"\naddress = \"127.0.0.1:{wss_port}\"\n");
    let gateway = Gateway::start(GatewayOptions { extra_sip, extra_media, ..GatewayOptions::default() });
    (gateway, format!("wss://127.0.0.1:{wss_port}"))
}

/// tests/browser/sip_ws_call.mjs as bob with `library`, in `mode` (call or answer) toward `target`.
fn softphone(gateway: &Gateway, library: &str, url: &str, mode: &str, target: &str) -> (Child, std::io::Lines<BufReader<ChildStdout>>) {
    start_sip_ws_call(gateway, [library, url, &format!("sip:bob@{LOCAL_DOMAIN}"), BOB_PASSWORD, mode, target, SOFTPHONE_HZ], &[])
}

fn report(mut child: Child, lines: std::io::Lines<BufReader<ChildStdout>>) -> serde_json::Value {
    let report = lines.map_while(Result::ok).filter(|l| l.starts_with('{')).last().and_then(|l| serde_json::from_str(&l).ok()).unwrap_or_default();
    let _ = child.wait();
    report
}

/// The record of an answered call between bob's softphone (`user_agent`) and alice's browser.
fn assert_record(record: &CallRecord, direction: CallDirection, user_agent: &str) {
    println!(
        "record: {:?} {:?} from={} to={} sip={:?} browser={:?} transcoded={} ua={:?}",
        record.direction, record.status, record.from_uri, record.to_uri, record.sip_codec, record.browser_codec, record.transcoded, record.sip_user_agent
    );
    assert_eq!(record.direction, direction, "{record:#?}");
    assert_eq!(record.status, CallStatus::Answered, "{record:#?}");
    assert_eq!(record.browser_user.as_deref(), Some("alice"), "{record:#?}");
    let (caller, callee) = if direction == CallDirection::Inbound { ("bob@", "alice") } else { ("alice", "bob") };
    assert!(record.from_uri.contains(caller), "caller {caller}: {record:#?}");
    assert!(record.to_uri.contains(callee), "callee {callee}: {record:#?}");
    assert!(record.sip_user_agent.as_deref().is_some_and(|ua| ua.contains(user_agent)), "{record:#?}");
    assert!(record.answered_at.is_some() && record.ended_at.is_some(), "{record:#?}");
}

/// `library` (bob, over wss) calls alice; alice's sipbridge.js page answers, measures, hangs up.
fn softphone_calls_browser(library: &str, user_agent: &str) {
    let (gateway, url) = start_gateway();
    let browser = AnsweringPages::start(&gateway, &["hangup"]);
    let (child, lines) = softphone(&gateway, library, &url, "call", &format!("sip:alice@{LOCAL_DOMAIN}"));
    let phone = report(child, lines);
    let page = browser.reports().pop().unwrap_or_default();
    let log = gateway.log();
    println!("{library} heard {} Hz ({}), the browser heard {} Hz ({})", phone["peakHz"], phone["codec"], page["peakHz"], page["codec"]);
    assert_eq!(phone["ok"], true, "{phone:#}\n{log}");
    assert_eq!(page["ok"], true, "{page:#}\n{log}");
    assert_tone(&page, "peakHz", 660.0, &format!("the browser hears the softphone\n{log}"));
    assert_tone(&phone, "peakHz", 440.0, &format!("the softphone hears the browser\n{log}"));
    assert_ne!(phone["ended"]["reason"], "still up", "the browser's hangup reached the softphone: {phone:#}");
    assert_record(&support::completed_record(&gateway), CallDirection::Inbound, user_agent);
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn jssip_over_wss_calls_a_sipbridge_js_user_and_both_hear_each_other() {
    softphone_calls_browser("jssip", "JsSIP-test");
}

#[test]
fn sipjs_over_wss_calls_a_sipbridge_js_user_and_both_hear_each_other() {
    softphone_calls_browser("sipjs", "SIPjs-test");
}

/// alice's sipbridge.js page (1000 Hz) calls bob, registered only with JsSIP over wss; JsSIP
/// answers, measures and hangs up; the page measures and waits for that hangup.
#[test]
fn a_sipbridge_js_user_calls_jssip_over_wss_which_answers() {
    let (gateway, url) = start_gateway();
    let (child, mut lines) = softphone(&gateway, "jssip", &url, "answer", "-");
    assert!(lines.by_ref().map_while(Result::ok).any(|l| l == "READY"), "JsSIP never registered\n{}", gateway.log());
    let page = echo_page_args(&gateway, &token("alice", &[]), &["", "bob", "remote-end", "1000"], &[]);
    let phone = report(child, lines);
    let log = gateway.log();
    println!("the browser heard {} Hz ({}), JsSIP heard {} Hz ({})", page["peakHz"], page["codec"], phone["peakHz"], phone["codec"]);
    assert_eq!(page["ok"], true, "{page:#}\n{log}");
    assert_eq!(phone["ok"], true, "{phone:#}\n{log}");
    assert_tone(&page, "peakHz", 660.0, &format!("the browser hears JsSIP\n{log}"));
    assert_tone(&phone, "peakHz", 1000.0, &format!("JsSIP hears the browser\n{log}"));
    assert_eq!(page["ended"]["reason"], "normal", "JsSIP's BYE ended the call in the browser: {page:#}\n{phone:#}\n{log}");
    assert_record(&support::completed_record(&gateway), CallDirection::Outbound, "JsSIP-test");
    assert!(!log.contains("panicked"), "{log}");
}

/// `pid` and every process below it (the softphone's node and its Chromium), parents first.
fn process_tree(pid: u32) -> Vec<u32> {
    let parent_of = |child: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).ok()?;
        // `pid (comm) state ppid ...`: comm may hold spaces, so read after its closing parenthesis.
        stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
    };
    let all: Vec<u32> = std::fs::read_dir("/proc").into_iter().flatten().flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect();
    let mut tree = vec![pid];
    let mut index = 0;
    while index < tree.len() {
        let parent = tree[index];
        let children: Vec<u32> = all.iter().copied().filter(|&p| parent_of(p) == Some(parent) && !tree.contains(&p)).collect();
        tree.extend(children);
        index += 1;
    }
    tree
}

/// JsSIP (bob, over wss) calls alice, media flows both ways, then its node and Chromium are
/// killed (SIGKILL: no BYE, no WebSocket close, no DTLS alert). The gateway ends the call on the
/// RTP timeout: alice's page gets `hangup` with `media_timeout`, the record names the cause and
/// the BYE toward bob (whose flow is gone, so it fails at once), and bob's binding goes when his
/// connection does.
#[test]
fn a_jssip_client_that_vanishes_mid_call_is_ended_on_rtp_timeout_and_its_binding_goes() {
    const RTP_TIMEOUT_SECS: i64 = 3;
    let (gateway, url) = start_gateway_with(format!("rtp_timeout_secs = {RTP_TIMEOUT_SECS}\n"));
    let browser = AnsweringPages::start(&gateway, &["await-end"]);
    let (mut child, mut lines) = softphone(&gateway, "jssip", &url, "call", &format!("sip:alice@{LOCAL_DOMAIN}"));
    let in_call = lines.by_ref().map_while(Result::ok).any(|l| l == "IN CALL");
    assert!(in_call, "JsSIP never got into the call\n{}", gateway.log());
    gateway.wait_status("bob's binding", std::time::Duration::from_secs(5), |s| s["bindings"].as_array().is_some_and(|b| b.iter().any(|b| b["aor"] == format!("sip:bob@{LOCAL_DOMAIN}"))));
    for pid in process_tree(child.id()) {
        // Only the softphone's own processes, by id: they were all started by this test.
        let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
    }
    let _ = child.wait();
    gateway.wait_status("bob's binding to go with his connection", std::time::Duration::from_secs(10), |s| {
        s["bindings"].as_array().is_some_and(|b| !b.iter().any(|b| b["aor"] == format!("sip:bob@{LOCAL_DOMAIN}")))
    });
    let page = browser.reports().pop().unwrap_or_default();
    let log = gateway.log();
    assert_eq!(page["ok"], true, "{page:#}\n{log}");
    let cause = "media_timeout: no RTP from the SIP side";
    assert_eq!(page["ended"]["reason"], "media_timeout", "alice's hangup: {page:#}\n{log}");
    let record = support::completed_record(&gateway);
    println!("vanished JsSIP: the call ended with {:?}", record.hangup_reason);
    assert!(record.hangup_reason.as_deref().is_some_and(|r| r.starts_with(cause)), "the record's cause: {record:#?}\n{log}");
    // An answered call the gateway ended for a fault is recorded as failed (call::machine::mapping).
    assert_eq!((record.status, record.hangup_side), (CallStatus::Failed, Some(HangupSide::Gateway)), "{record:#?}");
    assert!(record.answered_at.is_some() && record.from_uri.contains("bob@"), "{record:#?}");
    assert!(record.sip_user_agent.as_deref().is_some_and(|ua| ua.contains("JsSIP-test")), "{record:#?}");
    assert!(record.sip_messages.iter().any(|m| m.direction == "out" && m.summary.starts_with("BYE ")), "the BYE toward the vanished client: {:#?}", record.sip_messages);
    assert!(!log.contains("panicked"), "{log}");
}
