//! A call from SIP to a browser: sipp (a trunk, trusted by address) calls `alice`; headless
//! Chromium logged in as alice accepts with sipbridge.js, hears the audio sipp plays (PCMA,
//! relayed without transcoding), and sees the call end when sipp hangs up.

mod support;

use support::calls::AnsweringPages;
use support::{sipp, sipp_available, Gateway, GatewayOptions};

#[test]
fn trunk_call_rings_the_browser_user_who_answers_and_hears_audio() {
    sipp_available();
    let gateway = trunk_gateway();
    let browser = AnsweringPages::start(&gateway, &["accept"]);
    let run = sipp("call_to_browser.xml", &format!("127.0.0.1:{}", gateway.sip_port), &["-t", "u1", "-trace_msg", "-mp", &support::free_sipp_media_port().to_string()]);
    let result = browser.reports().pop().unwrap_or_default();
    assert!(run.success(), "the trunk's call: {}\n{}", run.describe(), gateway.log());
    assert_eq!(result["ok"], true, "{result:#}\n{}", gateway.log());
    assert!(result["caller"]["uri"].as_str().is_some_and(|u| u.contains("+15550001111")), "{result:#}");
    assert_eq!(result["caller"]["display_name"], "Carrier Caller");
    assert_eq!(result["codec"], "audio/PCMA", "the browser got the trunk's codec: no transcoding");
    let level = result["peakLevel"].as_f64().unwrap_or(0.0);
    println!("browser heard the trunk's audio at peak level {level:.3}");
    assert!(level > 0.05, "audio from the trunk reached the browser: {result:#}");
    assert_eq!(result["ended"]["reason"], "normal", "the trunk's BYE ended the call in the browser: {result:#}");
}

fn trunk_gateway() -> Gateway {
    let trunk = "kind = \"trunk\"\nhost = \"127.0.0.1\"\ntrusted_addresses = [\"127.0.0.1\"]\n".to_string();
    Gateway::start(GatewayOptions { profiles: vec![("trunk.toml".into(), trunk)], ..Default::default() })
}

#[test]
fn two_tabs_ring_and_the_second_hears_answered_elsewhere() {
    sipp_available();
    let gateway = trunk_gateway();
    let browser = AnsweringPages::start(&gateway, &["accept", "watch"]);
    let run = sipp("call_to_browser.xml", &format!("127.0.0.1:{}", gateway.sip_port), &["-t", "u1", "-mp", &support::free_sipp_media_port().to_string()]);
    let pages = browser.reports();
    assert!(run.success(), "{}", run.describe());
    assert_eq!(pages.len(), 2, "{pages:?}");
    assert_eq!(pages[0]["ended"]["reason"], "normal", "the tab that answered: {pages:?}");
    assert_eq!(pages[1]["ended"]["reason"], "answered_elsewhere", "the other tab stops ringing: {pages:?}");
}

#[test]
fn a_browser_that_rejects_as_busy_gives_the_caller_486() {
    sipp_available();
    let gateway = trunk_gateway();
    let browser = AnsweringPages::start(&gateway, &["busy"]);
    let run = sipp("call_busy.xml", &format!("127.0.0.1:{}", gateway.sip_port), &["-t", "u1"]);
    let pages = browser.reports();
    assert!(run.success(), "the caller got 486: {}\n{}", run.describe(), gateway.log());
    assert_eq!(pages[0]["ok"], true, "{pages:?}");
}

#[test]
fn nobody_logged_in_gives_the_caller_480() {
    sipp_available();
    let gateway = trunk_gateway();
    let run = sipp("call_nobody.xml", &format!("127.0.0.1:{}", gateway.sip_port), &["-t", "u1"]);
    assert!(run.success(), "the caller got 480: {}\n{}", run.describe(), gateway.log());
    // The record (and its log line) is finished just after the 480 leaves.
    gateway.wait_for_log("reason=\"nobody is logged in\"");
    let log = gateway.log();
    let said_why = log.lines().filter(|l| l.contains("call not connected") && l.contains("nobody is logged in")).count();
    assert_eq!(said_why, 1, "one log line says why:\n{log}");
}

#[test]
fn cancel_before_answer_stops_the_browsers_ringing_and_gives_487() {
    sipp_available();
    let gateway = trunk_gateway();
    let browser = AnsweringPages::start(&gateway, &["watch", "watch"]);
    let run = sipp("call_cancelled.xml", &format!("127.0.0.1:{}", gateway.sip_port), &["-t", "u1"]);
    let pages = browser.reports();
    assert!(run.success(), "CANCEL got 200 and the INVITE 487: {}\n{}", run.describe(), gateway.log());
    assert!(pages.iter().all(|p| p["ended"]["reason"] == "cancelled"), "both tabs stopped ringing: {pages:?}");
}

/// With the cap at one call, a second trunk call during a ringing one gets 503 + Retry-After.
fn second_call_is_refused_with(profile_extra: &str, calls_config: &str) {
    sipp_available();
    let trunk = format!("kind = \"trunk\"\nhost = \"127.0.0.1\"\ntrusted_addresses = [\"127.0.0.1\"]\n{profile_extra}");
    let gateway = Gateway::start(GatewayOptions {
        profiles: vec![("trunk.toml".into(), trunk)],
        extra_media: calls_config.into(),
        ..Default::default()
    });
    let browser = AnsweringPages::start(&gateway, &["watch"]);
    let target = format!("127.0.0.1:{}", gateway.sip_port);
    let first_port = support::free_port().to_string();
    let first_target = target.clone();
    // The first call rings the browser for 1.5 s, then cancels.
    let first = std::thread::spawn(move || sipp("call_cancelled.xml", &first_target, &["-t", "u1", "-p", &first_port]));
    std::thread::sleep(std::time::Duration::from_millis(700));
    let second = sipp("call_overload.xml", &target, &["-t", "u1", "-p", &support::free_port().to_string()]);
    let first = first.join().expect("first call");
    let _ = browser.reports();
    assert!(second.success(), "the second call got 503 with Retry-After: {}\n{}", second.describe(), gateway.log());
    assert!(first.success(), "the first call was unaffected: {}", first.describe());
}

#[test]
fn beyond_the_global_call_limit_callers_get_503_with_retry_after() {
    second_call_is_refused_with("", "\n[calls]\nmax_concurrent = 1\n");
}

#[test]
fn beyond_the_profile_call_limit_callers_get_503_with_retry_after() {
    second_call_is_refused_with("max_calls = 1\n", "");
}

/// sipp's own `uac_pcap` scenario (PCMA, then RFC 2833 digit "1" from a capture) calls alice:
/// the browser gets the digit as a `dtmf` event.
#[test]
fn rfc2833_digit_from_the_trunk_reaches_the_browser() {
    sipp_available();
    let gateway = trunk_gateway();
    let browser = AnsweringPages::start(&gateway, &["accept"]);
    let run = sipp("builtin:uac_pcap", &format!("127.0.0.1:{}", gateway.sip_port), &["-s", "alice", "-t", "u1", "-mp", &support::free_sipp_media_port().to_string()]);
    let pages = browser.reports();
    assert!(run.success(), "{}\n{}", run.describe(), gateway.log());
    assert_eq!(pages[0]["codec"], "audio/PCMA", "{pages:?}");
    assert_eq!(pages[0]["dtmf"], "1", "the browser received DTMF 1: {pages:?}\n{}", gateway.log());
}

/// The trunk (echoing RTP) puts the call on hold and resumes it, switching from PCMA to PCMU on the
/// resume. The gateway answers recvonly and stops sending, so the browser's tone stops coming back;
/// after the resume it returns, now transcoded between the browser's PCMA and the trunk's PCMU.
#[test]
fn hold_and_resume_from_the_trunk() {
    sipp_available();
    let gateway = trunk_gateway();
    let browser = AnsweringPages::start(&gateway, &["accept"]);
    let run = sipp("call_hold_from_trunk.xml", &format!("127.0.0.1:{}", gateway.sip_port), &["-t", "u1", "-rtp_echo", "-mp", &support::free_sipp_media_port().to_string()]);
    let pages = browser.reports();
    assert!(run.success(), "hold answered recvonly, resume sendrecv: {}\n{}", run.describe(), gateway.log());
    let page = &pages[0];
    println!("levels heard by the browser: before hold {}, on hold {} (over {} ms), after resume {}", page["peakLevel"], page["levels"]["onHold"], page["levels"]["onHoldMs"], page["levels"]["afterResume"]);
    assert_eq!(page["holds"], serde_json::json!(["hold", "resume"]), "{page:#}");
    assert!(page["peakLevel"].as_f64().unwrap_or(0.0) > 0.05, "the echo came back before the hold: {page:#}");
    let before = page["peakLevel"].as_f64().unwrap_or(0.0);
    // The browser measures once the echo stopped arriving and its jitter buffer ran dry (not a
    // fixed time after `remote_hold`, which raced audio still in flight under load); a gateway
    // that kept sending to the trunk keeps the echo coming, and this fails.
    assert_eq!(page["levels"]["holdDrained"], true, "the echo stopped reaching the browser on hold: {page:#}");
    assert!(page["levels"]["onHoldMs"].as_u64().unwrap_or(0) >= 800, "the hold was listened to before the resume: {page:#}");
    assert!(page["levels"]["onHold"].as_f64().unwrap_or(1.0) < before / 10.0, "nothing sent to the trunk on hold (20 dB down at least): {page:#}");
    assert!(page["levels"]["afterResume"].as_f64().unwrap_or(0.0) > 0.05, "audio resumed: {page:#}");
    assert!(gateway.log().contains("the SIP side changed codec"), "{}", gateway.log());
}

/// RFC 4028: the trunk asks for Session-Expires 90 as refresher and refreshes at 40 s (UPDATE) and
/// 80 s (re-INVITE). The call is still up at 105 s, past the first expiry, when the trunk hangs
/// up; sipp fails on any BYE the gateway would have sent. The trunk echoes the browser's audio:
/// a trunk silent for 30 s would get the media timeout's BYE.
#[test]
fn session_timer_call_stays_up_past_two_refreshes() {
    sipp_available();
    let gateway = trunk_gateway();
    let browser = AnsweringPages::start(&gateway, &["long"]);
    let started = std::time::Instant::now();
    let media_port = support::free_sipp_media_port().to_string();
    let run = sipp("call_session_timer.xml", &format!("127.0.0.1:{}", gateway.sip_port), &["-t", "u1", "-timeout", "150s", "-rtp_echo", "-mp", &media_port]);
    let pages = browser.reports();
    println!("session-timer call lasted {:.1} s", started.elapsed().as_secs_f64());
    assert!(run.success(), "{}\n{}", run.describe(), gateway.log());
    assert_eq!(pages[0]["ended"]["reason"], "normal", "{pages:?}");
    assert!(started.elapsed().as_secs() >= 100, "the call lasted past two refreshes");
}

/// RFC 3262: a trunk that requires 100rel gets a reliable 180 (RSeq), PRACKs it, and only then
/// receives the 200; the browser hears its audio and its BYE ends the call.
#[test]
fn caller_that_requires_100rel_gets_a_reliable_180() {
    sipp_available();
    let gateway = trunk_gateway();
    let browser = AnsweringPages::start(&gateway, &["accept"]);
    let run = sipp("call_requires_100rel.xml", &format!("127.0.0.1:{}", gateway.sip_port), &["-t", "u1", "-mp", &support::free_sipp_media_port().to_string()]);
    let pages = browser.reports();
    assert!(run.success(), "{}\n{}", run.describe(), gateway.log());
    assert!(pages[0]["peakLevel"].as_f64().unwrap_or(0.0) > 0.05, "{pages:?}");
    assert_eq!(pages[0]["ended"]["reason"], "normal", "{pages:?}");
}
