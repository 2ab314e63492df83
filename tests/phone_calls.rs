//! Real phones and real browsers: baresip registers to the gateway's local domain as `bob` and
//! calls browser user alice (headless Chromium answering with sipbridge.js), and Chromium calls
//! bob. Tones are checked both ways: in the browser with an analyser, in baresip's recording of
//! what it received with a Goertzel filter.

mod support;
#[path = "support/baresip.rs"]
mod baresip;

use baresip::{assert_tones, Phone};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use support::{Gateway, GatewayOptions, JWT_SECRET};

fn token(user: &str) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let claims = sipbridge::signaling::jwt::Claims { sub: user.into(), exp: now + 600, nbf: None, iat: None, profiles: vec![] };
    sipbridge::signaling::jwt::sign(&claims, JWT_SECRET.as_bytes())
}

/// baresip (bob) calls alice; Chromium answers. Returns the browser's report, what baresip
/// recorded, and the gateway's log.
/// What every answered call's record must show: who, how long, which media, what quality.
fn assert_answered_record(record: &sipbridge::store::CallRecord, direction: sipbridge::store::CallDirection, sip_codec: &str, transcoded: bool) {
    use sipbridge::store::CallStatus;
    println!("record: {} {:?} {:?} sip={:?} browser={:?} transcoded={} duration={:?} ms billable={:?} s quality={:?}", record.id, record.direction, record.status, record.sip_codec, record.browser_codec, record.transcoded, record.duration_ms, record.billable_secs, record.quality);
    assert_eq!(record.direction, direction);
    assert_eq!(record.status, CallStatus::Answered, "{record:#?}");
    assert_eq!(record.sip_codec.as_deref(), Some(sip_codec), "{record:#?}");
    assert_eq!(record.transcoded, transcoded, "{record:#?}");
    let (answered, ended) = (record.answered_at.expect("answered_at"), record.ended_at.expect("ended_at"));
    assert!(record.started_at <= answered && answered <= ended, "{record:#?}");
    assert!((2_000..30_000).contains(&(ended - answered)), "talk time within the test's span: {record:#?}");
    assert_eq!(record.billable_secs, Some((ended - answered + 999) / 1000));
    let ladder: Vec<&str> = record.sip_messages.iter().map(|m| m.summary.as_str()).collect();
    println!("ladder: {ladder:?}");
    assert!(ladder.first().is_some_and(|s| s.starts_with("INVITE ")), "the ladder starts with the INVITE: {ladder:?}");
    assert!(ladder.iter().any(|s| s.starts_with("BYE ")) && ladder.iter().any(|s| s.starts_with("SIP/2.0 200")), "{ladder:?}");
    assert!(record.sip_messages.iter().all(|m| !m.text.contains("response=\"")), "digest answers are masked");
    for leg in ["sip", "browser"] {
        let received = record.quality.iter().find(|q| q.leg == leg && q.direction == "received").unwrap_or_else(|| panic!("{leg} quality: {record:#?}"));
        assert!(received.packets > 50, "{leg} packets: {record:#?}");
        assert!(received.mos.is_some_and(|m| m > 3.5), "{leg} MOS: {record:#?}");
    }
}

/// baresip (with `codecs`) calls alice's Chromium, which answers; returns the browser's report,
/// baresip's output, the gateway's log and the call's record.
fn phone_calls_browser(codecs: &str, gateway_extra: &str) -> (serde_json::Value, (String, Vec<PathBuf>), String, sipbridge::store::CallRecord) {
    let gateway = Gateway::start(GatewayOptions { extra_media: gateway_extra.into(), ..Default::default() });
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/answer.mjs");
    let mut browser = Command::new("node")
        .arg(script)
        .arg(format!("http://127.0.0.1:{}", gateway.http_port))
        .arg(token("alice"))
        .arg("accept")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the browser");
    let mut lines = BufReader::new(browser.stdout.take().expect("stdout")).lines();
    assert!(lines.by_ref().map_while(Result::ok).any(|l| l == "READY"), "the browser never logged in");
    // The dial waits for the registration, which baresip sends first.
    let phone = Phone::start(&gateway, codecs, 1000, &["/dial sip:alice@example.com".to_string()], 9);
    let result: serde_json::Value = lines.map_while(Result::ok).filter(|l| l.starts_with('{')).last().and_then(|l| serde_json::from_str(&l).ok()).unwrap_or_default();
    let _ = browser.wait();
    let phone = phone.finish();
    let record = support::completed_record(&gateway);
    let codec = if codecs.starts_with("g722") { "G722" } else if codecs.starts_with("opus") { "opus" } else { "PCMU" };
    assert_answered_record(&record, sipbridge::store::CallDirection::Inbound, codec, codec != "PCMU");
    assert_eq!(record.browser_user.as_deref(), Some("alice"));
    assert!(record.from_uri.contains("bob@example.com"), "{record:#?}");
    assert!(record.sip_user_agent.as_deref().is_some_and(|ua| ua.contains("baresip")), "{record:#?}");
    assert_eq!(record.dtmf_mode.as_deref(), Some("rfc4733"), "baresip offers telephone-event");
    (result, phone, gateway.log(), record)
}

#[test]
fn phone_calls_browser_with_pcmu_and_no_transcoding() {
    let (result, phone, log, _) = phone_calls_browser("pcmu", "");
    assert_tones(&result, &phone, &log);
    assert_eq!(result["codec"], "audio/PCMU", "{result:#}");
    assert!(log.contains("transcoding=false"), "PCMU passed through untouched:\n{log}");
    assert_eq!(result["ended"]["reason"], "normal", "baresip's BYE ended the call in the browser: {result:#}");
}

#[test]
fn phone_with_g722_calls_browser_with_opus_through_the_transcoder() {
    let (result, phone, log, record) = phone_calls_browser("g722/16000/1", "\n[calls]\nbrowser_codec = \"opus\"\n");
    assert_tones(&result, &phone, &log);
    assert_eq!(result["codec"], "audio/opus", "{result:#}");
    assert!(log.contains("sip_codec=G722") && log.contains("transcoding=true"), "G.722 <-> Opus transcoded:\n{log}");
    // Our offer asked the browser for `maxplaybackrate=16000`, all that G.722 carries, and
    // Chromium's encoder kept to it: wideband, or mediumband where libopus finds nothing above
    // 6 kHz in the tone (at 32 kbit/s, unasked, it never goes below super-wideband).
    let browser = record.quality.iter().find(|q| q.leg == "browser" && q.direction == "received");
    let bandwidth = browser.and_then(|q| q.audio_bandwidth.as_deref());
    assert!(matches!(bandwidth, Some("wideband (8 kHz)" | "mediumband (6 kHz)")), "{bandwidth:?}: {record:#?}");
}

/// baresip offers only Opus and browsers take PCMU (`browser_codec = "pcmu"`): our answer asks
/// baresip for `maxplaybackrate=8000`, and it sends narrowband Opus.
#[test]
fn phone_with_opus_calling_a_pcmu_browser_is_asked_for_narrowband() {
    // Coded on arrival (`codec_batch_ms = 0`): the other transcoding tests run on the default
    // codec tick, and this one keeps the path without it covered.
    let (result, phone, log, record) = phone_calls_browser("opus/48000/2", "codec_batch_ms = 0\n[calls]\nbrowser_codec = \"pcmu\"\n");
    assert_tones(&result, &phone, &log);
    assert_eq!(result["codec"], "audio/PCMU", "{result:#}");
    let sip = record.quality.iter().find(|q| q.leg == "sip" && q.direction == "received");
    assert_eq!(sip.and_then(|q| q.audio_bandwidth.as_deref()), Some("narrowband (4 kHz)"), "{record:#?}\n{log}");
}

/// Chromium calls bob's registered phone, which answers by itself; tones both ways, then DTMF
/// "123#" from the browser reaches baresip as RFC 4733 events.
#[test]
fn browser_calls_a_registered_phone_with_tones_and_dtmf() {
    let gateway = Gateway::start(GatewayOptions::default());
    let phone = Phone::start(&gateway, "pcmu", 1000, &[], 25);
    phone.wait_registered(&gateway);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/echo.mjs");
    let output = Command::new("node")
        .arg(script)
        .arg(format!("http://127.0.0.1:{}", gateway.http_port))
        .arg(token("alice"))
        .args(["", "bob", "dtmf", "440"])
        .output()
        .expect("run the browser");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let result: serde_json::Value = stdout.lines().rev().find(|l| l.starts_with('{')).and_then(|l| serde_json::from_str(l).ok()).unwrap_or_default();
    let phone = phone.finish();
    let log = gateway.log();
    assert_tones(&result, &phone, &log);
    // baresip prints `received event: '1' (end=0)` when a digit starts and `(end=1)` when it ends.
    let digits: String = phone.0.split("received event: '").skip(1).filter(|rest| rest.get(1..10) == Some("' (end=1)")).filter_map(|rest| rest.chars().next()).collect();
    println!("baresip received DTMF: {digits:?}");
    assert!(digits.contains("123#"), "DTMF 123# reached baresip\nbaresip:\n{}", phone.0);
    assert!(phone.0.contains("Call with sip:alice@example.com terminated"), "the browser's hangup reached baresip as BYE:\n{}", phone.0);
    let record = support::completed_record(&gateway);
    assert_answered_record(&record, sipbridge::store::CallDirection::Outbound, "PCMU", true);
    assert_eq!(record.hangup_side, Some(sipbridge::store::HangupSide::Browser));
}
