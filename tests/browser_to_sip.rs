//! A call from a browser to SIP: Chromium (fake mic, 1 kHz) calls a number through the user's
//! trunk profile; sipp answers PCMU and echoes the RTP. The tone comes back through Opus -> PCMU
//! -> the trunk -> PCMU -> Opus, and the browser's hangup reaches the trunk as a BYE.

mod support;

use support::calls::{echo_page, EchoTrunk};
use support::{free_port, Gateway, GatewayOptions};

/// What the trunk (sipp) does with the call, and what the gateway's profile for it adds.
struct Trunk<'a> {
    sipp_scenario: &'a [&'a str],
    profile_extra: &'a str,
    /// "early" measures during early media and hangs up unanswered; "" waits for the answer.
    browser_mode: &'a str,
    /// Appended to the gateway's config (e.g. a `[calls]` section).
    gateway_extra: &'a str,
}

/// Places the browser's call through the trunk and returns the browser's report and the gateway's
/// log, after checking the tone came back and sipp's scenario passed.
fn call_through(trunk: Trunk) -> (serde_json::Value, String) {
    let (result, gateway) = place_through(trunk);
    (result, gateway.log())
}

/// `call_through`, with the gateway still running (for its records).
fn place_through(trunk: Trunk) -> (serde_json::Value, Gateway) {
    let trunk_port = free_port();
    let profile = format!(
        "kind = \"trunk\"\nhost = \"127.0.0.1\"\nport = {trunk_port}\ntrusted_addresses = [\"127.0.0.1\"]\n{}",
        trunk.profile_extra
    );
    let gateway = Gateway::start(GatewayOptions { profiles: vec![("trunk.toml".into(), profile)], extra_media: trunk.gateway_extra.into(), ..Default::default() });
    let sipp = EchoTrunk::with_scenario(trunk_port, trunk.sipp_scenario);
    let result = echo_page(&gateway, &support::calls::token("alice", &["trunk"]), ["", "+15551234567", trunk.browser_mode], &[]);
    let verdict = sipp.finish();
    assert_eq!(result["ok"], true, "{result:#}\n{}", gateway.log());
    let peak = result["peakHz"].as_f64().unwrap_or(0.0);
    println!("browser -> trunk (sipp echo): peak {peak:.1} Hz at {} dB", result["peakDb"]);
    assert!((peak - 1000.0).abs() <= 20.0, "the tone came back through the trunk: {result:#}");
    assert!(verdict.is_ok(), "the trunk's scenario passed: {verdict:?}\n{}", gateway.log());
    (result, gateway)
}

#[test]
fn browser_calls_a_trunk_and_hears_its_echo() {
    let (_, log) = call_through(Trunk { sipp_scenario: &["-sn", "uas"], profile_extra: "", browser_mode: "", gateway_extra: "" });
    assert!(log.contains("sip_codec=Pcmu"), "the trunk chose PCMU, so the path transcoded");
}

/// The trunk answers the INVITE with 401; sipp recomputes the retried INVITE's digest from the
/// account's password, so a wrong password or bad arithmetic ends the browser's call with 403.
#[test]
fn trunk_that_challenges_the_invite_gets_the_profile_credentials() {
    let scenario = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sipp/trunk_challenges_invite.xml");
    let scenario = scenario.to_string_lossy().into_owned();
    let (_, gateway) = place_through(Trunk {
        sipp_scenario: &["-sf", &scenario],
        profile_extra: "username = \"gw-trunk\"\npassword = \"trunk-secret\"\n",
        browser_mode: "",
        gateway_extra: "",
    });
    assert!(!gateway.log().contains("trunk-secret"), "the password is never logged");
    // The call we placed is recorded from its first INVITE, challenge included, with the digest
    // answer masked.
    let record = support::completed_record(&gateway);
    let ladder: Vec<&str> = record.sip_messages.iter().map(|m| m.summary.as_str()).collect();
    println!("ladder: {ladder:?}");
    let mut rest = ladder.iter();
    for step in ["INVITE sip:", "SIP/2.0 401", "ACK sip:", "INVITE sip:", "SIP/2.0 200", "ACK sip:", "BYE sip:"] {
        assert!(rest.any(|s| s.starts_with(step)), "{step} missing or out of order in {ladder:?}");
    }
    let retried = record.sip_messages.iter().filter(|m| m.summary.starts_with("INVITE ")).nth(1).expect("the retried INVITE");
    assert!(retried.text.contains("Authorization: Digest (masked)\r\n"), "{}", retried.text);
    assert!(record.sip_messages.iter().all(|m| !m.text.contains("response=\"")), "the digest answer is masked");
}

/// The trunk sends 183 with SDP and never answers: the browser hears the far end (sipp echoes the
/// tone) before any answer, and hanging up cancels the call (sipp expects CANCEL, answers 487).
#[test]
fn early_media_reaches_the_browser_before_the_answer() {
    let scenario = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sipp/trunk_early_media.xml");
    let scenario = scenario.to_string_lossy().into_owned();
    let (result, log) = call_through(Trunk { sipp_scenario: &["-sf", &scenario], profile_extra: "", browser_mode: "early", gateway_extra: "" });
    assert_eq!(result["earlyMedia"], true, "{result:#}");
    assert_eq!(result["stateAtMeasurement"], "ringing", "measured before any answer: {result:#}");
    assert!(log.contains("early media"), "{log}");
}

/// The browser holds and resumes (the trunk checks sendonly, then sendrecv) and sends "123#",
/// which reaches a trunk without telephone-event as four SIP INFO requests. The echo stops on
/// hold and comes back after the resume.
#[test]
fn browser_holds_resumes_and_sends_dtmf_to_the_trunk() {
    let scenario = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sipp/trunk_hold_dtmf.xml");
    let scenario = scenario.to_string_lossy().into_owned();
    let (result, log) = call_through(Trunk { sipp_scenario: &["-sf", &scenario], profile_extra: "", browser_mode: "hold-dtmf", gateway_extra: "" });
    println!("levels: before hold {}, on hold {}, after resume {}", result["levelBeforeHold"], result["levelOnHold"], result["levelAfterResume"]);
    assert!(result["levelBeforeHold"].as_f64().unwrap_or(0.0) > 0.05, "{result:#}");
    let before = result["levelBeforeHold"].as_f64().unwrap_or(0.0);
    assert!(result["levelOnHold"].as_f64().unwrap_or(1.0) < before / 10.0, "nothing reaches the trunk on hold (20 dB down at least): {result:#}\n{log}");
    assert!(result["levelAfterResume"].as_f64().unwrap_or(0.0) > 0.05, "audio resumed: {result:#}");
}

/// The browser's WebSocket drops mid-call; sipbridge.js reconnects, logs in and reclaims the call
/// within the grace period, and the trunk's echo is still heard; the browser's hangup then reaches
/// the trunk as BYE.
#[test]
fn call_survives_a_websocket_drop_and_is_reclaimed() {
    let (result, log) = call_through(Trunk { sipp_scenario: &["-sn", "uas"], profile_extra: "", browser_mode: "reclaim", gateway_extra: "" });
    assert_eq!(result["reclaimed"], true, "{result:#}\n{log}");
    let after = result["peakHzAfterReclaim"].as_f64().unwrap_or(0.0);
    println!("tone after the reclaim: {after:.1} Hz");
    assert!((after - 1000.0).abs() <= 20.0, "the call's media carried on: {result:#}");
    assert!(log.contains("call reclaimed after a reconnect"), "{log}");
}

/// The WebSocket drops and the browser never comes back: after the grace period (2 s here) the
/// gateway ends the call with BYE, which the trunk's scenario waits for.
#[test]
fn unreclaimed_call_ends_with_bye_after_the_grace_period() {
    let (_, log) = call_through(Trunk { sipp_scenario: &["-sn", "uas"], profile_extra: "", browser_mode: "drop", gateway_extra: "\n[calls]\nreclaim_grace_secs = 2\n" });
    assert!(log.contains("waiting for a reclaim"), "{log}");
}

/// RFC 3262 toward a trunk: it rings with a reliable 180 and answers only after our PRACK.
#[test]
fn trunk_that_rings_reliably_gets_a_prack() {
    let scenario = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sipp/trunk_reliable_180.xml");
    let scenario = scenario.to_string_lossy().into_owned();
    call_through(Trunk { sipp_scenario: &["-sf", &scenario], profile_extra: "", browser_mode: "", gateway_extra: "" });
}

/// Blind transfer: the browser asks, the trunk receives REFER to the target, accepts it and
/// reports the target answered (NOTIFY), and the gateway then hangs up with BYE.
#[test]
fn browser_transfers_the_call_with_refer() {
    let scenario = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sipp/trunk_accepts_transfer.xml");
    let scenario = scenario.to_string_lossy().into_owned();
    let (result, log) = call_through(Trunk { sipp_scenario: &["-sf", &scenario], profile_extra: "", browser_mode: "transfer", gateway_extra: "" });
    assert_eq!(result["transferAccepted"], true, "{result:#}\n{log}");
    assert_eq!(result["ended"]["cause"], "transferred", "{result:#}\n{log}");
}
