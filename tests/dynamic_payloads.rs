//! Phones whose payload numbers are not the browser's: Opus as 96 and telephone-event as 97
//! (sipp) or 101 (baresip) on the SIP side, Opus as 111 and telephone-event as 110 in Chromium,
//! with `browser_codec = "same"`. Each leg keeps its numbers and the gateway translates: the tone
//! is heard (checked by frequency) and DTMF arrives, both ways.

mod support;
#[path = "support/baresip.rs"]
mod baresip;
#[path = "support/pcap.rs"]
mod pcap;

use std::process::Command;
use support::{free_port, free_sipp_media_port, sipp_available, sipp_with_files, Gateway, GatewayOptions, JWT_SECRET};
use support::calls::{echo_page, echo_page_args, EchoTrunk};

const SAME_CODEC: &str = "\n[calls]\nbrowser_codec = \"same\"\n";

fn token(profiles: &[&str]) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let claims = sipbridge::signaling::jwt::Claims { sub: "alice".into(), exp: now + 600, nbf: None, iat: None, profiles: profiles.iter().map(|p| p.to_string()).collect() };
    sipbridge::signaling::jwt::sign(&claims, JWT_SECRET.as_bytes())
}

/// What every call here must not show: a packet webrtc-rs refused for its payload type.
fn assert_no_refused_packets(log: &str) {
    assert!(!log.contains("unsupported codec type"), "a packet left under a number the browser leg never negotiated:\n{log}");
}

/// sipp offers only Opus/96 and telephone-event/97, plays 4 s of a 700 Hz tone and the digits
/// "59" under those numbers; Chromium answers as alice, hears the tone and gets the digits.
#[test]
fn a_phone_with_opus_96_calls_a_browser_that_hears_it_and_its_digits() {
    sipp_available();
    let trunk = "kind = \"trunk\"\nhost = \"127.0.0.1\"\ntrusted_addresses = [\"127.0.0.1\"]\n".to_string();
    let gateway = Gateway::start(GatewayOptions { profiles: vec![("trunk.toml".into(), trunk)], extra_media: SAME_CODEC.into(), ..Default::default() });
    let (mut browser, lines) = support::calls::answering_browser(&gateway, &token(&[]));
    let mut stream = pcap::RtpStream::new(0x0960_0960);
    stream.opus_tone(96, 700.0, 50);
    stream.digit(97, 5);
    stream.digit(97, 9);
    let pcap = stream.pcap();
    let run = sipp_with_files(
        "opus96_calls_browser.xml",
        &format!("127.0.0.1:{}", gateway.sip_port),
        &["-t", "u1", "-mp", &free_sipp_media_port().to_string()],
        &[("opus96.pcap", &pcap)],
    );
    let page: serde_json::Value = lines.map_while(Result::ok).filter(|l| l.starts_with('{')).last().and_then(|l| serde_json::from_str(&l).ok()).unwrap_or_default();
    let _ = browser.wait();
    let log = gateway.log();
    assert!(run.success(), "the phone's 96 and 97 were kept in the answer: {}\n{log}", run.describe());
    assert_eq!(page["ok"], true, "{page:#}\n{log}");
    assert_eq!(page["codec"], "audio/opus", "the browser got the phone's codec, no transcoding: {page:#}");
    let heard = page["peakHz"].as_f64().unwrap_or(0.0);
    println!("browser heard the Opus/96 phone at {heard:.1} Hz, level {}; digits {:?}", page["peakLevel"], page["dtmf"]);
    assert!((heard - 700.0).abs() <= 20.0, "the 700 Hz tone reached the browser: {page:#}\n{log}");
    assert!(page["peakLevel"].as_f64().unwrap_or(0.0) > 0.05, "{page:#}");
    assert_eq!(page["dtmf"], "59", "the digits sent as 97 arrived: {page:#}\n{log}");
    assert!(log.contains("browser_payload_type=111") && log.contains("sip_payload_type=96"), "each leg kept its number:\n{log}");
    assert!(log.contains("transcoding=false"), "{log}");
    assert_no_refused_packets(&log);
}

/// sipp calls with Opus 96 and telephone-event 97 (a 700 Hz tone, then digit 5), then renumbers
/// in a re-INVITE to 98 and 100 and sends digit 7 and a 900 Hz tone under the new numbers: both
/// digits arrive, and after the 7 the browser hears 900 Hz.
#[test]
fn a_phone_that_renumbers_in_a_reinvite_is_still_heard() {
    sipp_available();
    let trunk = "kind = \"trunk\"\nhost = \"127.0.0.1\"\ntrusted_addresses = [\"127.0.0.1\"]\n".to_string();
    let gateway = Gateway::start(GatewayOptions { profiles: vec![("trunk.toml".into(), trunk)], extra_media: SAME_CODEC.into(), ..Default::default() });
    let (mut browser, lines) = support::calls::answering_browser(&gateway, &token(&[]));
    let mut before = pcap::RtpStream::new(0x0960_0960);
    // 8 s of tone: the browser hears it 2.3-3.3 s after its first packet, however long ICE and
    // DTLS took to deliver that packet (the digit and the re-INVITE come after it).
    before.opus_tone(96, 700.0, 80);
    before.digit(97, 5);
    let mut after = pcap::RtpStream::new(0x0980_0980);
    after.digit(100, 7);
    after.opus_tone(98, 900.0, 28);
    let run = sipp_with_files(
        "opus_renumbers_in_reinvite.xml",
        &format!("127.0.0.1:{}", gateway.sip_port),
        &["-t", "u1", "-mp", &free_sipp_media_port().to_string()],
        &[("opus96.pcap", &before.pcap()), ("opus98.pcap", &after.pcap())],
    );
    let page: serde_json::Value = lines.map_while(Result::ok).filter(|l| l.starts_with('{')).last().and_then(|l| serde_json::from_str(&l).ok()).unwrap_or_default();
    let _ = browser.wait();
    let log = gateway.log();
    println!("before the re-INVITE {} Hz; digits {:?}; after digit 7 (Opus 98): {} Hz", page["peakHz"], page["dtmf"], page["afterDigit"]["7"]);
    assert!(run.success(), "the phone's numbers were kept in both answers: {}\n{log}", run.describe());
    assert_eq!(page["ok"], true, "{page:#}\n{log}");
    assert!((page["peakHz"].as_f64().unwrap_or(0.0) - 700.0).abs() <= 20.0, "700 Hz under 96: {page:#}\n{log}");
    assert_eq!(page["dtmf"], "57", "digits under 97, then under 100: {page:#}\n{log}");
    assert!((page["afterDigit"]["7"].as_f64().unwrap_or(0.0) - 900.0).abs() <= 20.0, "900 Hz under 98 after the re-INVITE: {page:#}\n{log}");
    assert_no_refused_packets(&log);
}

/// Chromium calls through a trunk whose phone answers the gateway's Opus/111 offer with its own
/// numbers, 96 and 97, and echoes the media: the browser's 1 kHz tone comes back, and the digits
/// "123#" it sends leave as telephone-event 97, come back, and reach it as `dtmf` events.
#[test]
fn a_browser_calls_a_phone_that_answers_opus_96() {
    let (result, log, record) = browser_calls_sipp("opus96_answers_browser.xml", "", "dtmf");
    println!("browser -> Opus/96 phone (echo): {} Hz at {} dB; digits back {:?}", result["peakHz"], result["peakDb"], result["dtmfReceived"]);
    assert_eq!(result["dtmfReceived"], "123#", "the digits went out as 97 and came back: {result:#}\n{log}");
    assert!(log.contains("sip_payload_type=96") && log.contains("browser_payload_type=111"), "each leg kept its number:\n{log}");
    assert!(log.contains("transcoding=false"), "Opus passed through, only renumbered:\n{log}");
    // Opus to Opus asks the browser for no narrower audio than it sends by itself.
    let bandwidth = browser_received_bandwidth(&record);
    assert!(bandwidth.as_deref().is_some_and(|b| !b.starts_with("narrowband")), "{bandwidth:?}\n{record:#?}");
}

/// The `call` request's `codec` (docs/signaling.md §4.4) is what the SIP side is offered: the
/// trunk's scenario fails unless the INVITE offers PCMA alone; the browser keeps Opus and the
/// gateway transcodes, so the echoed 1 kHz comes back through PCMA.
#[test]
fn the_codec_field_is_the_only_codec_offered_to_a_sip_target() {
    let (result, log, record) = browser_calls_sipp("trunk_expects_pcma_only.xml", "PCMA", "");
    assert_eq!(result["codec"], "audio/opus", "the browser kept its own codec: {result:#}");
    assert!(log.contains("sip_codec=Pcma") && log.contains("transcoding=true"), "PCMA on the SIP side, transcoded:\n{log}");
    // Our answer asked for `maxplaybackrate=8000`, and Chromium's encoder kept to narrowband:
    // every Opus packet's TOC said so (the record keeps the widest one seen).
    assert_eq!(browser_received_bandwidth(&record).as_deref(), Some("narrowband (4 kHz)"), "{record:#?}");
}

/// The widest Opus audio the gateway received from the browser, by the call's record.
fn browser_received_bandwidth(record: &sipbridge::store::CallRecord) -> Option<String> {
    record.quality.iter().find(|q| q.leg == "browser" && q.direction == "received").and_then(|q| q.audio_bandwidth.clone())
}

/// Chromium (1 kHz, `codec` and `mode` as echo.mjs takes them) calls +15551239696 through a trunk
/// profile whose far end is sipp running `scenario` with -rtp_echo. Checks the echoed tone, the
/// scenario's success and that no packet was refused; returns the browser's report, the log and
/// the call's record.
fn browser_calls_sipp(scenario: &str, codec: &str, mode: &str) -> (serde_json::Value, String, sipbridge::store::CallRecord) {
    sipp_available();
    let trunk_port = free_port();
    let profile = format!("kind = \"trunk\"\nhost = \"127.0.0.1\"\nport = {trunk_port}\ntrusted_addresses = [\"127.0.0.1\"]\n");
    let gateway = Gateway::start(GatewayOptions { profiles: vec![("trunk.toml".into(), profile)], extra_media: SAME_CODEC.into(), ..Default::default() });
    let scenario_file = support::scenario_path(scenario).to_string_lossy().into_owned();
    let trunk = EchoTrunk::with_scenario(trunk_port, &["-sf", &scenario_file]);
    let result = echo_page(&gateway, &token(&["trunk"]), [codec, "+15551239696", mode], &[]);
    let verdict = trunk.finish();
    let log = gateway.log();
    assert_eq!(result["ok"], true, "{result:#}\n{log}");
    let heard = result["peakHz"].as_f64().unwrap_or(0.0);
    assert!((heard - 1000.0).abs() <= 20.0, "the tone came back through the phone: {result:#}\n{log}");
    assert!(verdict.is_ok(), "the phone's scenario passed: {verdict:?}\n{log}");
    assert_no_refused_packets(&log);
    (result, log, support::completed_record(&gateway))
}

/// baresip registered as bob offers only `opus/48000/2`, which it numbers 96 (and
/// telephone-event/8000 as 101); Chromium answers as alice with Opus 111 and telephone-event/48000
/// 110. baresip's 1 kHz reaches the browser, the browser's 440 Hz reaches baresip's recording,
/// and the digits typed at baresip arrive as `dtmf` events (relayed at the browser's clock).
#[test]
fn baresip_with_opus_96_calls_a_browser() {
    let gateway = Gateway::start(GatewayOptions { extra_media: SAME_CODEC.into(), ..Default::default() });
    let (mut browser, lines) = support::calls::answering_browser(&gateway, &token(&[]));
    let phone = baresip::Phone::start(&gateway, "opus/48000/2", 1000, &["/dial sip:alice@example.com".to_string()], 10);
    gateway.wait_for_log("browser media connected");
    phone.command("/sndcode 59");
    let page: serde_json::Value = lines.map_while(Result::ok).filter(|l| l.starts_with('{')).last().and_then(|l| serde_json::from_str(&l).ok()).unwrap_or_default();
    let _ = browser.wait();
    let (phone_log, recordings) = phone.finish();
    let log = gateway.log();
    assert_eq!(page["ok"], true, "{page:#}\nbaresip:\n{phone_log}\n{log}");
    assert!(log.contains("sip_payload_type=96") && log.contains("browser_payload_type=111"), "baresip numbered Opus 96:\n{log}");
    assert_eq!(page["codec"], "audio/opus", "{page:#}");
    let heard = page["peakHz"].as_f64().unwrap_or(0.0);
    let (samples, rate) = baresip::read_wav(&baresip::received_recording(&recordings));
    let (at_440, at_1000) = (baresip::tone_share(&samples, rate, 440.0), baresip::tone_share(&samples, rate, 1000.0));
    println!("baresip (Opus 96) -> browser: {heard:.1} Hz; baresip heard 440 Hz share {at_440:.3}, 1 kHz share {at_1000:.3}; digits {:?}", page["dtmf"]);
    assert!((heard - 1000.0).abs() <= 20.0, "baresip's 1 kHz reached the browser: {page:#}\n{log}");
    assert!(at_440 > 0.2 && at_440 > 10.0 * at_1000, "the browser's 440 Hz reached baresip\nbaresip:\n{phone_log}");
    assert_eq!(page["dtmf"], "59", "baresip's digits reached the browser: {page:#}\nbaresip:\n{phone_log}\n{log}");
    assert!(log.contains("transcoding=false"), "{log}");
    assert_no_refused_packets(&log);
}

/// Chromium, preferring PCMU, calls bob's baresip (Opus only): our INVITE offers PCMU first and
/// Opus with `maxplaybackrate=8000`, baresip answers Opus, and the gateway transcodes. baresip
/// keeps to narrowband, and the browser still hears its 1 kHz.
#[test]
fn a_pcmu_browser_calling_an_opus_phone_asks_it_for_narrowband() {
    let gateway = Gateway::start(GatewayOptions::default());
    let phone = baresip::Phone::start(&gateway, "opus/48000/2", 1000, &[], 15);
    phone.wait_registered(&gateway);
    let result = echo_page_args(&gateway, &token(&[]), &["", "bob", "", "440"], &[("SIPBRIDGE_BROWSER_CODECS", "PCMU")]);
    let (phone_log, _) = phone.finish();
    let log = gateway.log();
    assert_eq!(result["ok"], true, "{result:#}\nbaresip:\n{phone_log}\n{log}");
    assert_eq!(result["codec"], "audio/PCMU", "{result:#}");
    let heard = result["peakHz"].as_f64().unwrap_or(0.0);
    assert!((heard - 1000.0).abs() <= 20.0, "baresip's 1 kHz reached the browser: {result:#}\n{log}");
    assert!(log.contains("transcoding=true"), "PCMU <-> Opus:\n{log}");
    let record = support::completed_record(&gateway);
    let sip = record.quality.iter().find(|q| q.leg == "sip" && q.direction == "received");
    assert_eq!(sip.and_then(|q| q.audio_bandwidth.as_deref()), Some("narrowband (4 kHz)"), "{record:#?}");
}

/// Chromium calls bob's baresip (Opus only): the gateway offers Opus as 111 and baresip answers
/// under the offer's numbers; tones both ways, and "123#" from the browser reaches baresip.
#[test]
fn a_browser_calls_baresip_with_opus_only() {
    let gateway = Gateway::start(GatewayOptions { extra_media: SAME_CODEC.into(), ..Default::default() });
    let phone = baresip::Phone::start(&gateway, "opus/48000/2", 1000, &[], 25);
    phone.wait_registered(&gateway);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/echo.mjs");
    let output = Command::new("node")
        .arg(script)
        .arg(format!("http://127.0.0.1:{}", gateway.http_port))
        .arg(token(&[]))
        .args(["", "bob", "dtmf", "440"])
        .output()
        .expect("run the browser");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let result: serde_json::Value = stdout.lines().rev().find(|l| l.starts_with('{')).and_then(|l| serde_json::from_str(l).ok()).unwrap_or_default();
    let (phone_log, recordings) = phone.finish();
    let log = gateway.log();
    assert_eq!(result["ok"], true, "{result:#}\nbaresip:\n{phone_log}\n{log}");
    let heard = result["peakHz"].as_f64().unwrap_or(0.0);
    let (samples, rate) = baresip::read_wav(&baresip::received_recording(&recordings));
    let (at_440, at_1000) = (baresip::tone_share(&samples, rate, 440.0), baresip::tone_share(&samples, rate, 1000.0));
    println!("browser -> baresip (Opus): {heard:.1} Hz; baresip heard 440 Hz share {at_440:.3}, 1 kHz share {at_1000:.3}");
    assert!((heard - 1000.0).abs() <= 20.0, "baresip's 1 kHz reached the browser: {result:#}\n{log}");
    assert!(at_440 > 0.2 && at_440 > 10.0 * at_1000, "the browser's 440 Hz reached baresip\nbaresip:\n{phone_log}");
    let digits: String = phone_log.split("received event: '").skip(1).filter(|rest| rest.get(1..10) == Some("' (end=1)")).filter_map(|rest| rest.chars().next()).collect();
    assert!(digits.contains("123#"), "DTMF 123# reached baresip: {digits:?}\nbaresip:\n{phone_log}");
    assert!(log.contains("transcoding=false"), "Opus end to end:\n{log}");
    assert_no_refused_packets(&log);
}
