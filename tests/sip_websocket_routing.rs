//! Calls between SIP-over-WebSocket softphones and plain SIP parties, by the dial plan
//! (`call::route`, docs/sip-over-websocket.md): JsSIP and SIP.js from npm in headless Chromium
//! (tests/browser/sip_ws_call.mjs), registered as alice over ws:// or wss://, call a sipp trunk
//! that echoes (Opus on the WebSocket side, PCMU on the trunk: transcoded) and bob's registered
//! baresip; the trunk and baresip call them and they answer; a trunk's call to alice rings her
//! sipbridge.js page and both her JsSIP clients, and the first to answer wins. The softphones
//! play 660 Hz, baresip 1000 Hz; every tone is checked by frequency where it arrives, and every
//! call's record by its direction, parties, codecs and the client's user agent.

mod support;
#[path = "support/baresip.rs"]
mod baresip;

use baresip::{read_wav, received_recording, tone_share, Phone};
use sipbridge::store::{CallDirection, CallRecord, CallStatus};
use std::io::{BufReader, Lines};
use std::process::{Child, ChildStdout};
use support::calls::{assert_tone, echo_page_args, token, trunk_profile, AnsweringPages, EchoTrunk, start_sip_ws_call};
use support::{free_port, sipp, Gateway, GatewayOptions, ALICE_PASSWORD, BOB_PASSWORD, LOCAL_DOMAIN};

const SOFTPHONE_HZ: f64 = 660.0;
const BARESIP_HZ: u32 = 1000;

struct Urls {
    ws: String,
    wss: String,
}

/// A gateway with `ws` and `wss` listeners (its self-signed certificate, trusted by the pages);
/// alice may call out through `alice_profiles`.
fn start_gateway(profiles: Vec<(String, String)>, alice_profiles: Vec<&'static str>) -> (Gateway, Urls) {
    let (ws_port, wss_port) = (free_port(), free_port());
    let extra_sip = format!(
        "[[sip.listen]]\ntransport = \"ws\"\naddress = \"127.0.0.1:{ws_port}\"\n\
         [[sip.listen]]\ntransport = \"wss\"\naddress = \"127.0.0.1:{wss_port}\"\n"
    );
    let gateway = Gateway::start(GatewayOptions { extra_sip, profiles, alice_profiles, ..GatewayOptions::default() });
    (gateway, Urls { ws: format!("ws://127.0.0.1:{ws_port}"), wss: format!("wss://127.0.0.1:{wss_port}") })
}

/// A gateway that trusts sipp's address as the trunk `trunk` (calling out to sipp on `port`).
fn start_gateway_with_trunk(port: u16) -> (Gateway, Urls) {
    start_gateway(vec![trunk_profile(port)], vec!["trunk"])
}

/// tests/browser/sip_ws_call.mjs as alice with `library` over `url`, in `mode` toward `target`.
struct Softphone {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Softphone {
    fn start(gateway: &Gateway, library: &str, url: &str, mode: &str, target: &str) -> Softphone {
        Softphone::start_as(gateway, ("alice", ALICE_PASSWORD), library, url, mode, target)
    }

    fn start_as(gateway: &Gateway, (user, password): (&str, &str), library: &str, url: &str, mode: &str, target: &str) -> Softphone {
        let (child, lines) = start_sip_ws_call(gateway, [library, url, &format!("sip:{user}@{LOCAL_DOMAIN}"), password, mode, target, &SOFTPHONE_HZ.to_string()], &[]);
        Softphone { child, lines }
    }

    /// Starts one in an answering mode and returns once it registered.
    fn ready(gateway: &Gateway, library: &str, url: &str, mode: &str) -> Softphone {
        Softphone::ready_as(gateway, ("alice", ALICE_PASSWORD), library, url, mode)
    }

    fn ready_as(gateway: &Gateway, user: (&str, &str), library: &str, url: &str, mode: &str) -> Softphone {
        let mut phone = Softphone::start_as(gateway, user, library, url, mode, "-");
        assert!(phone.lines.by_ref().map_while(Result::ok).any(|l| l == "READY"), "{library} never registered\n{}", gateway.log());
        phone
    }

    fn report(mut self) -> serde_json::Value {
        let report = self.lines.by_ref().map_while(Result::ok).filter(|l| l.starts_with('{')).last().and_then(|l| serde_json::from_str(&l).ok());
        let _ = self.child.wait();
        report.unwrap_or_default()
    }
}

impl Drop for Softphone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The record of an answered call between alice's softphone (`client_ua`) and a SIP party
/// (`peer_ua`, when it sends one).
fn assert_record(record: &CallRecord, direction: CallDirection, client_ua: &str, peer_ua: Option<&str>) {
    println!(
        "record: {:?} {:?} from={} to={} profile={:?} sip={:?} client={:?} transcoded={} sip_ua={:?} client_ua={:?}",
        record.direction, record.status, record.from_uri, record.to_uri, record.profile, record.sip_codec, record.browser_codec, record.transcoded, record.sip_user_agent, record.browser_user_agent
    );
    assert_eq!((record.direction, record.status), (direction, CallStatus::Answered), "{record:#?}");
    assert_eq!(record.browser_user.as_deref(), Some("alice"), "{record:#?}");
    assert!(record.browser_user_agent.as_deref().is_some_and(|ua| ua.contains(client_ua)), "the client's user agent: {record:#?}");
    if let Some(peer_ua) = peer_ua {
        assert!(record.sip_user_agent.as_deref().is_some_and(|ua| ua.contains(peer_ua)), "the SIP party's user agent: {record:#?}");
    }
    assert!(record.answered_at.is_some() && record.ended_at.is_some(), "{record:#?}");
    let ladder: Vec<&str> = record.sip_messages.iter().map(|m| m.summary.as_str()).collect();
    assert!(ladder.iter().filter(|s| s.starts_with("INVITE ")).count() >= 2, "both SIP legs' INVITEs in the ladder: {ladder:?}");
    assert!(ladder.iter().any(|s| s.starts_with("BYE ")), "{ladder:?}");
}

fn assert_heard(report: &serde_json::Value, hz: f64, what: &str, log: &str) {
    println!("{what}: {} Hz ({})", report["peakHz"], report["codec"]);
    assert_eq!(report["ok"], true, "{what}: {report:#}\n{log}");
    assert_tone(report, "peakHz", hz, &format!("{what}\n{log}"));
}

/// The softphone's 660 Hz is what baresip recorded.
fn assert_baresip_heard_the_softphone(phone: &(String, Vec<std::path::PathBuf>)) {
    let (samples, rate) = read_wav(&received_recording(&phone.1));
    let (at_660, at_1000) = (tone_share(&samples, rate, SOFTPHONE_HZ), tone_share(&samples, rate, f64::from(BARESIP_HZ)));
    println!("baresip's recording: 660 Hz share {at_660:.3}, 1 kHz share {at_1000:.3}");
    assert!(at_660 > 0.2 && at_660 > 10.0 * at_1000, "the softphone's 660 Hz reached baresip\nbaresip:\n{}", phone.0);
}

/// JsSIP (alice, ws://) dials a number: the dial plan sends it through alice's trunk profile to
/// sipp, which echoes; JsSIP hears its own tone back through Opus -> PCMU -> Opus.
#[test]
fn jssip_over_ws_calls_a_trunk_through_the_transcoder() {
    let trunk_port = free_port();
    let trunk = EchoTrunk::start(trunk_port);
    let (gateway, urls) = start_gateway_with_trunk(trunk_port);
    let phone = Softphone::start(&gateway, "jssip", &urls.ws, "call-hangup", &format!("sip:5551234@{LOCAL_DOMAIN}")).report();
    let log = gateway.log();
    assert_heard(&phone, SOFTPHONE_HZ, "JsSIP hears itself through the echoing trunk", &log);
    assert_eq!(phone["codec"], "audio/opus", "{phone:#}");
    trunk.finish().unwrap_or_else(|e| panic!("the trunk's side of the call: {e}\n{log}"));
    let record = support::completed_record(&gateway);
    assert_record(&record, CallDirection::Outbound, "JsSIP-test", None);
    assert_eq!(record.profile.as_deref(), Some("trunk"), "{record:#?}");
    assert!(record.to_uri.contains("5551234"), "{record:#?}");
    assert_eq!((record.sip_codec.as_deref(), record.browser_codec.as_deref(), record.transcoded), (Some("PCMU"), Some("audio/opus"), true), "{record:#?}");
    assert!(!log.contains("panicked"), "{log}");
}

/// JsSIP (alice, wss://) calls bob, whose baresip is registered to the gateway (G.722 first):
/// each hears the other's tone.
#[test]
fn jssip_over_wss_calls_a_registered_baresip() {
    let (gateway, urls) = start_gateway(vec![], vec![]);
    let baresip = Phone::start(&gateway, "g722/16000/1,opus/48000/2", BARESIP_HZ, &[], 14);
    baresip.wait_registered(&gateway);
    let phone = Softphone::start(&gateway, "jssip", &urls.wss, "call-hangup", &format!("sip:bob@{LOCAL_DOMAIN}")).report();
    let baresip = baresip.finish();
    let log = gateway.log();
    assert_heard(&phone, f64::from(BARESIP_HZ), "JsSIP hears baresip", &log);
    assert_baresip_heard_the_softphone(&baresip);
    let record = support::completed_record(&gateway);
    assert_record(&record, CallDirection::Outbound, "JsSIP-test", Some("baresip"));
    assert!(matches!(record.sip_codec.as_deref(), Some("G722") | Some("opus")), "G.722 or Opus toward baresip: {record:#?}");
    assert!(record.to_uri.contains("bob"), "{record:#?}");
    assert!(!log.contains("panicked"), "{log}");
}

/// A trunk (sipp, echoing) calls alice, registered only with `library` over `url`, which answers
/// and hears its own tone come back from the trunk; the trunk hangs up.
fn trunk_calls_softphone(library: &str, url: fn(&Urls) -> &str, client_ua: &str) {
    let (gateway, urls) = start_gateway_with_trunk(free_port());
    let phone = Softphone::ready(&gateway, library, url(&urls), "answer-wait");
    let media_port = support::free_sipp_media_port().to_string();
    let run = sipp("call_to_browser_echo.xml", &format!("127.0.0.1:{}", gateway.sip_port), &["-t", "u1", "-rtp_echo", "-mp", &media_port]);
    let phone = phone.report();
    let log = gateway.log();
    assert!(run.success(), "the trunk's call: {}\n{log}", run.describe());
    assert_heard(&phone, SOFTPHONE_HZ, &format!("{library} hears itself through the echoing trunk"), &log);
    assert_ne!(phone["ended"]["reason"], "still up", "the trunk's BYE reached {library}: {phone:#}");
    let record = support::completed_record(&gateway);
    assert_record(&record, CallDirection::Inbound, client_ua, None);
    assert!(record.from_uri.contains("+15550001111"), "{record:#?}");
    assert_eq!(record.sip_codec.as_deref(), Some("PCMU"), "{record:#?}");
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn a_trunk_calls_jssip_over_ws_which_answers() {
    trunk_calls_softphone("jssip", |u| &u.ws, "JsSIP-test");
}

#[test]
fn a_trunk_calls_sipjs_over_wss_which_answers() {
    trunk_calls_softphone("sipjs", |u| &u.wss, "SIPjs-test");
}

/// bob's baresip calls alice, registered with JsSIP over wss://; JsSIP answers, both hear each
/// other, and JsSIP hangs up.
#[test]
fn a_registered_baresip_calls_jssip_over_wss_which_answers() {
    let (gateway, urls) = start_gateway(vec![], vec![]);
    let phone = Softphone::ready(&gateway, "jssip", &urls.wss, "answer");
    let baresip = Phone::start(&gateway, "g722/16000/1", BARESIP_HZ, &[format!("/dial sip:alice@{LOCAL_DOMAIN}")], 15);
    let phone = phone.report();
    let baresip = baresip.finish();
    let log = gateway.log();
    assert_heard(&phone, f64::from(BARESIP_HZ), "JsSIP hears baresip", &log);
    assert_baresip_heard_the_softphone(&baresip);
    let record = support::completed_record(&gateway);
    assert_record(&record, CallDirection::Inbound, "JsSIP-test", Some("baresip"));
    assert!(record.from_uri.contains("bob@"), "{record:#?}");
    assert_eq!(record.sip_codec.as_deref(), Some("G722"), "{record:#?}");
    assert!(!log.contains("panicked"), "{log}");
}

/// Ringing everywhere: alice is logged in with sipbridge.js and registered twice with JsSIP
/// (ws:// and wss://). A trunk's call rings all three; the first JsSIP answers (and hears its
/// tone echoed), the other JsSIP gets a CANCEL and the page `answered_elsewhere`.
#[test]
fn a_trunk_call_rings_alice_in_every_tab_and_client_and_the_first_answer_wins() {
    let (gateway, urls) = start_gateway_with_trunk(free_port());
    let page = AnsweringPages::start(&gateway, &["watch"]);
    let ringing = Softphone::ready(&gateway, "jssip", &urls.wss, "ring");
    let answering = Softphone::ready(&gateway, "jssip", &urls.ws, "answer-wait");
    let media_port = support::free_sipp_media_port().to_string();
    let run = sipp("call_to_browser_echo.xml", &format!("127.0.0.1:{}", gateway.sip_port), &["-t", "u1", "-rtp_echo", "-mp", &media_port]);
    let (answered, rang, page) = (answering.report(), ringing.report(), page.reports().pop().unwrap_or_default());
    let log = gateway.log();
    assert!(run.success(), "the trunk's call: {}\n{log}", run.describe());
    assert_heard(&answered, SOFTPHONE_HZ, "the answering JsSIP hears itself through the trunk", &log);
    println!("the other JsSIP: {}, the page: {}", rang["ended"], page["ended"]);
    assert_eq!(rang["rang"], true, "the second binding rang: {rang:#}\n{log}");
    assert_eq!((rang["ended"]["reason"].as_str(), rang["ended"]["cause"].as_str()), (Some("failed"), Some("Canceled")), "{rang:#}");
    assert_eq!(page["ended"]["reason"], "answered_elsewhere", "the sipbridge.js tab rang and stopped: {page:#}\n{log}");
    let record = support::completed_record(&gateway);
    assert_record(&record, CallDirection::Inbound, "JsSIP-test", None);
    let cancels = record.sip_messages.iter().filter(|m| m.direction == "out" && m.summary.starts_with("CANCEL ")).count();
    assert_eq!(cancels, 1, "the binding that did not answer got a CANCEL: {:#?}", record.sip_messages);
    assert!(!log.contains("panicked"), "{log}");
}

/// A sipbridge.js user's call rings every binding too: alice's page (1000 Hz) calls bob, who is
/// registered with JsSIP twice (ws:// and wss://); one answers (tones both ways, then it hangs
/// up), the other gets a CANCEL.
#[test]
fn a_sipbridge_js_call_rings_every_websocket_binding_of_the_user() {
    let (gateway, urls) = start_gateway(vec![], vec![]);
    let bob = ("bob", BOB_PASSWORD);
    let ringing = Softphone::ready_as(&gateway, bob, "jssip", &urls.ws, "ring");
    let answering = Softphone::ready_as(&gateway, bob, "jssip", &urls.wss, "answer");
    let page = echo_page_args(&gateway, &token("alice", &[]), &["", "bob", "remote-end", "1000"], &[]);
    let (answered, rang) = (answering.report(), ringing.report());
    let log = gateway.log();
    assert_heard(&page, SOFTPHONE_HZ, "the page hears the JsSIP that answered", &log);
    assert_heard(&answered, 1000.0, "the answering JsSIP hears the page", &log);
    assert_eq!(page["ended"]["reason"], "normal", "JsSIP's BYE ended the call in the page: {page:#}");
    assert_eq!((rang["rang"].as_bool(), rang["ended"]["cause"].as_str()), (Some(true), Some("Canceled")), "the other binding rang, then was cancelled: {rang:#}\n{log}");
    let record = support::completed_record(&gateway);
    println!("record: {:?} {:?} to={} sip_ua={:?}", record.direction, record.status, record.to_uri, record.sip_user_agent);
    assert_eq!((record.direction, record.status), (CallDirection::Outbound, CallStatus::Answered), "{record:#?}");
    assert_eq!(record.browser_user.as_deref(), Some("alice"), "{record:#?}");
    assert!(record.sip_user_agent.as_deref().is_some_and(|ua| ua.contains("JsSIP-test")), "{record:#?}");
    let invites = record.sip_messages.iter().filter(|m| m.direction == "out" && m.summary.starts_with("INVITE ")).count();
    let cancels = record.sip_messages.iter().filter(|m| m.direction == "out" && m.summary.starts_with("CANCEL ")).count();
    assert_eq!((invites, cancels), (2, 1), "one INVITE per binding, a CANCEL to the one that did not answer: {:#?}", record.sip_messages);
    assert!(!log.contains("panicked"), "{log}");
}

/// A user without a profile may call only local users: bob's JsSIP (no `profiles`) dialling a
/// number is refused with 480 and nothing is sent to the trunk, though one is configured.
#[test]
fn a_websocket_client_without_a_profile_cannot_call_out() {
    let (gateway, urls) = start_gateway_with_trunk(free_port());
    let phone = Softphone::start_as(&gateway, ("bob", BOB_PASSWORD), "jssip", &urls.wss, "call", &format!("sip:5551234@{LOCAL_DOMAIN}")).report();
    let log = gateway.log();
    println!("bob's JsSIP: {phone}");
    assert_eq!(phone["ok"], false, "{phone:#}");
    assert!(phone["error"].as_str().is_some_and(|e| e.contains("failed: Unavailable")), "JsSIP got 480: {phone:#}\n{log}");
    let record = support::completed_record(&gateway);
    assert_eq!((record.status, record.hangup_sip_code), (CallStatus::Missed, Some(480)), "{record:#?}");
    let sent_invites = record.sip_messages.iter().filter(|m| m.direction == "out" && m.summary.starts_with("INVITE ")).count();
    assert_eq!(sent_invites, 0, "nothing went to the trunk: {:#?}", record.sip_messages);
    assert!(!log.contains("panicked"), "{log}");
}
