//! The softphone page (web/phone.html) used like a person would, on a phone-sized screen, in
//! headless Chromium and in Firefox ESR (tests/browser/phone.mjs through launch.mjs): a wrong
//! password shows an error, the right one hides the login box; devices are chosen from the fake
//! ones; `echo` is called and its tone heard (by frequency), the level meter moves and empties on
//! mute, the quality indicator grades the call, hold, resume, DTMF, another microphone mid-call;
//! a trunk (sipp) calls the user: the ringing banner shows and the ring sounds; the call is
//! answered; a second is declined (603 to the trunk), a third given up by the caller (missed,
//! the ring stops); the history lists the calls and
//! redials one; logout shows the login box again, and so does a reconnect the gateway refuses
//! (the password changed while it was down).
//! Screenshots (ringing, in call with the meter, history) are checked by their pixels and size
//! and kept in $CARGO_TARGET_DIR/test-artifacts/softphone/BROWSER/. The page's pure logic
//! (web/phone_logic.mjs) has node unit tests, run here too.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use support::browser::{artifacts_dir, Browser};
use support::{sipp, Gateway, GatewayOptions, ALICE_PASSWORD};

#[test]
fn phone_logic_unit_tests_pass_in_node() {
    let output = Command::new("node")
        .args(["--test", "phone_logic.test.mjs"])
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser"))
        .output()
        .expect("run node");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(text.contains("# fail 0") && !text.contains("# pass 0"), "{text}");
}

#[test]
fn softphone_walk_in_chromium() {
    softphone_walk(Browser::Chromium);
}

#[test]
fn softphone_walk_in_firefox() {
    softphone_walk(Browser::Firefox);
}

fn softphone_walk(browser: Browser) {
    let trunk = "kind = \"trunk\"\nhost = \"127.0.0.1\"\ntrusted_addresses = [\"127.0.0.1\"]\n".to_string();
    let gateway = Gateway::start(GatewayOptions { profiles: vec![("trunk.toml".into(), trunk)], ..Default::default() });
    let out = artifacts_dir("softphone", browser);
    let (report, trunk_calls) = run_walk(&gateway, browser, &out);
    let context = format!("{report:#}\n{}", gateway.log());
    assert_eq!(report["ok"], true, "{context}");
    assert_eq!(report["pageErrors"], serde_json::json!([]), "{context}");

    // Login: a clear error, then the login box gives way to the phone.
    assert!(report["badLogin"].as_str().is_some_and(|e| e.contains("Wrong user name or password") && e.contains("login_failed")), "{context}");
    assert_eq!(report["loginShownAfterBadLogin"], true);
    assert_eq!(report["connected"], "connected as alice");
    assert_eq!(report["loginHiddenWhenConnected"], true, "{context}");
    assert_eq!(report["errorAfterLogin"], "", "the error goes once the login works");
    assert_eq!(report["pageWidth"], 390, "nothing wider than the phone's screen: {context}");

    // Devices: the chosen microphone is the one sending, and the choice is remembered.
    let chosen = report["chosenMicrophone"].as_str().unwrap_or_default();
    assert!(!chosen.is_empty(), "{context}");
    assert_eq!(report["trackLabel"], chosen, "the call sends the chosen microphone: {context}");
    assert!(report["storedDevices"]["microphone"].as_str().is_some_and(|id| !id.is_empty()), "{context}");
    // Another microphone mid-call: its track is sent instead, and the tone goes on.
    assert_eq!(report["trackReplaced"], true, "{context}");
    support::calls::assert_tone(&report, "peakHzAfterSwitch", 1000.0, "the tone goes on after the switch");
    match browser {
        Browser::Chromium => {
            assert_eq!(chosen, "Fake Audio Input 1", "{context}");
            assert_eq!(report["switchedTo"], "Fake Audio Input 2", "{context}");
            assert_eq!(report["trackLabelAfterSwitch"], "Fake Audio Input 2");
            assert_eq!(report["ring"]["notified"], true, "a notification when permitted: {context}");
            assert_eq!(report["notifyButtonShown"], false, "nothing to ask once permitted");
        }
        Browser::Firefox => {
            // Firefox's fake device is one microphone: the switch goes to the default entry,
            // which opens it again as a new track.
            assert_eq!(chosen, "Default Audio Device", "{context}");
            assert_eq!(report["switchedTo"], "Default microphone", "{context}");
            assert_eq!(report["trackLabelAfterSwitch"], "Default Audio Device");
            // Notifications were not granted: the page offers to ask, and rings without one.
            assert_eq!(report["notifyButtonShown"], true, "{context}");
            assert_eq!(report["ring"]["notified"], false);
        }
    }
    // Both browsers have setSinkId: the remote audio plays on the chosen speaker.
    assert_eq!(report["speakerChoice"], true, "{context}");
    assert_eq!(report["sinkId"], report["chosenSpeakerId"], "{context}");
    assert!(report["storedDevices"]["speaker"].as_str().is_some_and(|id| !id.is_empty()), "{context}");

    // The echo call: the tone, the meter, mute, quality, hold, DTMF.
    support::calls::assert_tone(&report, "peakHz", 1000.0, &context);
    let level = report["levelBeforeShot"].as_f64().unwrap_or(0.0);
    assert!(level > 0.1, "the meter moves with the tone: {context}");
    assert_eq!(report["levelMuted"], 0.0, "muted, the meter is empty: {context}");
    assert_eq!(report["muteButton"], "Unmute");
    assert!(report["levelUnmuted"].as_f64().unwrap_or(0.0) > 0.1, "{context}");
    assert!(["good", "fair", "poor"].contains(&report["quality"]["grade"].as_str().unwrap_or("")), "{context}");
    let figures = report["quality"]["figures"].as_str().unwrap_or_default();
    assert!(figures.starts_with("loss ") && figures.contains("jitter") && figures.contains("rtt") && !figures.contains('?'), "{context}");
    assert_eq!(report["quality"]["text"], "quality: good");
    assert_eq!(report["quality"]["grade"], "good", "loopback is a good line: {context}");
    println!("{}: quality {} ({})", browser.name(), report["quality"]["grade"], report["quality"]["figures"]);
    assert_eq!(report["holdButton"], "Resume");
    assert_eq!(report["callStateHeld"], "on hold");
    assert_eq!(report["resumeButton"], "Hold");
    assert_eq!(report["dtmfSent"], "1");
    assert_ne!(report["timer"], "0:00", "the call timer runs: {context}");
    assert_eq!(report["ended"], "call ended (local_hangup)");

    // The in-call screenshot: phone-sized, its meter bar green as far as the level reads.
    let shot = &report["inCallShot"];
    assert_eq!((shot["width"].as_u64(), shot["height"].as_u64()), (Some(390), Some(844)), "{context}");
    let green = shot["meterGreenShare"].as_f64().unwrap_or(0.0);
    let (before, after) = (level, report["levelAfterShot"].as_f64().unwrap_or(0.0));
    println!("{}: meter level {before:.2}..{after:.2}, green share of the bar in the screenshot {green:.2}", browser.name());
    assert!(green > 0.1 && green >= before.min(after) - 0.1 && green <= before.max(after) + 0.1, "the bar shows the level: {context}");

    // The incoming call: the banner, the ring, the answer.
    assert!(trunk_calls.is_ok(), "the trunk's calls: {trunk_calls:?}\n{context}");
    assert!(report["incomingFrom"].as_str().is_some_and(|f| f.contains("Carrier Caller") && f.contains("+15550001111")), "{context}");
    assert_eq!(report["statusRinging"], "incoming call");
    assert_eq!(report["ring"]["playing"], true, "{context}");
    let ring = report["ring"]["peakHz"].as_f64().unwrap_or(0.0);
    assert!((420.0..=500.0).contains(&ring), "the ring sounds at 440/480 Hz, heard {ring}: {context}");
    let shot = &report["ringingShot"];
    assert_eq!((shot["width"].as_u64(), shot["height"].as_u64()), (Some(390), Some(844)), "{context}");
    assert!(shot["banner"]["width"].as_f64().unwrap_or(0.0) > 300.0, "the banner spans the phone's width: {context}");
    assert!(shot["bannerAmberShare"].as_f64().unwrap_or(0.0) > 0.5, "the ringing banner is amber in the screenshot: {context}");
    assert_eq!(report["ringAfterAnswer"], false, "answering stops the ring");
    assert_eq!(report["incomingVisibleAfterAnswer"], false);

    // The second call, declined.
    assert!(report["secondIncomingFrom"].as_str().is_some_and(|f| f.contains("+15550004444")), "{context}");
    assert_eq!(report["ringAfterDecline"], false, "declining stops the ring");
    assert_eq!(report["incomingVisibleAfterDecline"], false);

    // The third, given up by the caller while ringing.
    assert!(report["thirdIncomingFrom"].as_str().is_some_and(|f| f.contains("+15550003333")), "{context}");
    assert_eq!(report["ringAfterCancel"], false, "the caller's CANCEL stops the ring");
    assert_eq!(report["incomingVisibleAfterCancel"], false);

    // History: newest first, both directions, and a redial from it.
    let history = report["history"].as_array().cloned().unwrap_or_default();
    assert_eq!(history.len(), 4, "{context}");
    assert_eq!(history[0]["className"], "incoming failed");
    assert!(history[0]["text"].as_str().is_some_and(|t| t.starts_with("↙+155500033330:00") && t.contains("missed")), "the caller's number, no URI: {context}");
    assert_eq!(history[1]["className"], "incoming failed");
    assert!(history[1]["text"].as_str().is_some_and(|t| t.starts_with("↙+155500044440:00") && t.contains("declined")), "{context}");
    assert_eq!(history[2]["className"], "incoming");
    assert!(history[2]["text"].as_str().is_some_and(|t| t.contains("Carrier Caller") && t.contains("you hung up")), "{context}");
    assert_eq!(history[3]["className"], "outgoing");
    assert!(history[3]["text"].as_str().is_some_and(|t| t.contains("echo")), "{context}");
    let stored = &report["storedHistory"];
    assert_eq!(stored[0]["endReason"], "missed");
    assert_eq!(stored[1]["endReason"], "declined");
    assert_eq!(stored[2]["direction"], "incoming");
    assert_eq!(stored[2]["endReason"], "local_hangup");
    assert!(stored[2]["durationSec"].as_u64().is_some_and(|d| d >= 1), "{context}");
    assert_eq!(stored[3]["peer"], "echo");
    assert_eq!(stored[3]["direction"], "outgoing");
    assert!(stored[3]["startedAt"].as_u64().is_some_and(|t| t > 1_700_000_000_000), "{context}");
    let shot = &report["historyShot"];
    assert_eq!((shot["width"].as_u64(), shot["height"].as_u64()), (Some(390), Some(844)), "{context}");
    assert!(shot["missedRowRedBorder"].as_f64().unwrap_or(0.0) > 0.8, "the missed call's row is marked red: {context}");
    assert!(shot["answeredRowGreenBorder"].as_f64().unwrap_or(0.0) > 0.8, "the answered incoming call's row is marked green: {context}");
    assert_eq!(report["redialTarget"], "echo");
    support::calls::assert_tone(&report, "redialPeakHz", 1000.0, "the redialled call is the echo again");
    assert_eq!(report["historyAfterRedial"], 5);

    assert_eq!(report["loginShownAfterLogout"], true);
    assert_eq!(report["phoneHiddenAfterLogout"], true);
    assert_eq!(report["afterReload"]["microphone"], report["switchedTo"], "the device choice is remembered: {context}");
    assert_eq!(report["afterReload"]["speaker"], report["chosenSpeaker"], "{context}");
    assert_eq!(report["afterReload"]["history"], 5, "{context}");
    for name in ["phone-in-call.png", "phone-ringing.png", "phone-history.png"] {
        assert!(out.join(name).exists(), "{name} kept");
    }
}

#[test]
fn softphone_asks_for_the_login_again_when_a_reconnect_is_refused() {
    let mut gateway = Gateway::start(GatewayOptions::default());
    let out = artifacts_dir("softphone-relogin", Browser::Chromium);
    let mut child = Command::new("node")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/phone.mjs"))
        .arg(format!("http://127.0.0.1:{}", gateway.http_port))
        .args(["alice", ALICE_PASSWORD])
        .arg(&out)
        .arg("relogin")
        .stdout(Stdio::piped())
        .spawn()
        .expect("run node");
    let mut seen = String::new();
    // Bounded by the page's own deadlines.
    for line in BufReader::new(child.stdout.take().expect("stdout")).lines().map_while(Result::ok) {
        if line == "STEP connected" {
            // The password changes while the gateway is down: the page's reconnect is refused.
            gateway.signal("KILL");
            let profile = gateway.dir.path().join("profiles/local.toml");
            let text = std::fs::read_to_string(&profile).expect("local profile");
            std::fs::write(&profile, text.replace(ALICE_PASSWORD, "a-new-password-4242")).expect("write profile");
            gateway.restart();
        }
        seen.push_str(&line);
        seen.push('\n');
    }
    let _ = child.wait();
    let report = support::calls::last_json_line(&seen);
    let context = format!("{report:#}\n{}", gateway.log());
    assert_eq!(report["ok"], true, "{context}");
    assert_eq!(report["phoneShownWhileReconnecting"], true, "a dropped connection keeps the phone while it reconnects: {context}");
    assert_eq!(report["loginShownWhileReconnecting"], false);
    assert_eq!(report["phoneHiddenAfterRefusal"], true, "{context}");
    assert_eq!(report["statusAfterRefusal"], "disconnected");
    assert!(report["error"].as_str().is_some_and(|e| e.contains("login_failed")), "the refusal is said: {context}");
}

/// Runs phone.mjs; when it asks for an incoming call, sipp (a trusted trunk) calls alice: the first
/// stays on until the page hangs up, the second expects 603 Decline, the third gives up (CANCEL). Returns the page's report
/// and the trunk calls' verdict.
fn run_walk(gateway: &Gateway, browser: Browser, out: &Path) -> (serde_json::Value, Result<(), String>) {
    let mut child = Command::new("node")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/phone.mjs"))
        .arg(format!("http://127.0.0.1:{}", gateway.http_port))
        .args(["alice", ALICE_PASSWORD])
        .arg(out)
        .env("SIPBRIDGE_TEST_BROWSER", browser.name())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run node");
    let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut trunk_calls = Vec::new();
    let mut seen = String::new();
    // The page's own deadlines bound this loop: it prints its report and exits.
    for line in lines.map_while(Result::ok) {
        let scenario = match line.as_str() {
            "STEP incoming" => Some("call_to_browser_until_bye.xml"),
            "STEP decline" => Some("call_declined.xml"),
            "STEP missed" => Some("call_cancelled.xml"),
            _ => None,
        };
        if let Some(scenario) = scenario {
            let target = format!("127.0.0.1:{}", gateway.sip_port);
            let media = support::free_sipp_media_port().to_string();
            trunk_calls.push((scenario, std::thread::spawn(move || sipp(scenario, &target, &["-t", "u1", "-mp", &media]))));
        }
        seen.push_str(&line);
        seen.push('\n');
    }
    let _ = child.wait();
    let mut verdict = Ok(());
    for (scenario, call) in trunk_calls {
        let run = call.join().expect("sipp thread");
        if !run.success() && verdict.is_ok() {
            verdict = Err(format!("{scenario}: {}", run.describe()));
        }
    }
    (support::calls::last_json_line(&seen), verdict)
}
