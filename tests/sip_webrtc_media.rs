//! SIP peers whose SDP is WebRTC (ICE, DTLS-SRTP, rtcp-mux, Opus), as WebSocket SIP clients
//! send it, tested with a real one over plain UDP SIP: baresip with its `ice` and `dtls_srtp`
//! modules (UDP/TLS/RTP/SAVPF). It calls browser user alice (headless Chromium answering with
//! sipbridge.js): the gateway answers with a WebRTC leg of its own (candidates inline), bridged
//! to the browser's leg, passing Opus through untouched or transcoding when the browser takes
//! PCMU. Tones are checked both ways by frequency, and the call record. Offers with DTLS but no
//! ICE, or a DTLS profile we do not carry, get 488.

mod support;
#[path = "support/baresip.rs"]
mod baresip;

use baresip::{assert_tones, Phone};
use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{Gateway, GatewayOptions, JWT_SECRET};

fn token(user: &str, profiles: &[&str]) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let profiles = profiles.iter().map(|p| p.to_string()).collect();
    let claims = sipbridge::signaling::jwt::Claims { sub: user.into(), exp: now + 600, nbf: None, iat: None, profiles };
    sipbridge::signaling::jwt::sign(&claims, JWT_SECRET.as_bytes())
}

/// What the record of an answered call from the WebRTC phone must show.
fn assert_record(record: &sipbridge::store::CallRecord, direction: sipbridge::store::CallDirection, sip_codec: &str, transcoded: bool) {
    use sipbridge::store::{CallDirection, CallStatus};
    println!("record: {:?} {:?} sip={:?} browser={:?} transcoded={} quality={:?}", record.direction, record.status, record.sip_codec, record.browser_codec, record.transcoded, record.quality);
    assert_eq!(record.direction, direction);
    assert_eq!(record.status, CallStatus::Answered, "{record:#?}");
    assert_eq!(record.sip_codec.as_deref(), Some(sip_codec), "{record:#?}");
    assert_eq!(record.transcoded, transcoded, "{record:#?}");
    assert_eq!(record.browser_user.as_deref(), Some("alice"));
    if direction == CallDirection::Inbound {
        assert!(record.from_uri.contains("bob@example.com"), "{record:#?}");
    }
    assert!(record.sip_user_agent.as_deref().is_some_and(|ua| ua.contains("baresip")), "{record:#?}");
    let (answered, ended) = (record.answered_at.expect("answered_at"), record.ended_at.expect("ended_at"));
    assert!((2_000..30_000).contains(&(ended - answered)), "talk time within the test's span: {record:#?}");
    let ladder: Vec<&str> = record.sip_messages.iter().map(|m| m.summary.as_str()).collect();
    assert!(ladder.first().is_some_and(|s| s.starts_with("INVITE ")), "{ladder:?}");
    assert!(ladder.iter().any(|s| s.starts_with("BYE ")), "{ladder:?}");
    // Ours: the 200 to the phone's INVITE, or our INVITE to it.
    let ours = |m: &&sipbridge::store::SipMessage| if direction == CallDirection::Inbound { m.summary.starts_with("SIP/2.0 200") } else { m.summary.starts_with("INVITE ") };
    let answer = record.sip_messages.iter().filter(ours).find(|m| m.text.contains("m=audio")).expect("our SDP");
    for line in ["UDP/TLS/RTP/SAVPF", "a=fingerprint:", "a=setup:", "a=ice-ufrag:", "a=rtcp-mux", "a=candidate:", "a=end-of-candidates"] {
        assert!(answer.text.contains(line), "our answer to the WebRTC phone has {line}:\n{}", answer.text);
    }
    for leg in ["sip", "browser"] {
        let received = record.quality.iter().find(|q| q.leg == leg && q.direction == "received").unwrap_or_else(|| panic!("{leg} quality: {record:#?}"));
        assert!(received.packets > 50, "{leg} packets: {record:#?}");
    }
}

/// baresip as a WebRTC SIP client (bob) calls alice; Chromium answers. Returns the browser's
/// report, what baresip recorded, the gateway's log and the record, after checking the record.
fn webrtc_phone_calls_browser(codecs: &str, gateway_extra: &str, sip_codec: &str, transcoded: bool) -> (serde_json::Value, (String, Vec<PathBuf>), String, sipbridge::store::CallRecord) {
    let gateway = Gateway::start(GatewayOptions { extra_media: gateway_extra.into(), ..Default::default() });
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/answer.mjs");
    let mut browser = Command::new("node")
        .arg(script)
        .arg(format!("http://127.0.0.1:{}", gateway.http_port))
        .arg(token("alice", &[]))
        .arg("accept")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the browser");
    let mut lines = BufReader::new(browser.stdout.take().expect("stdout")).lines();
    assert!(lines.by_ref().map_while(Result::ok).any(|l| l == "READY"), "the browser never logged in");
    let phone = Phone::start_webrtc(&gateway, codecs, 1000, &["/dial sip:alice@example.com".to_string()], 10);
    let result: serde_json::Value = lines.map_while(Result::ok).filter(|l| l.starts_with('{')).last().and_then(|l| serde_json::from_str(&l).ok()).unwrap_or_default();
    let _ = browser.wait();
    let phone = phone.finish();
    let log = gateway.log();
    assert!(log.contains("the SIP peer's media is WebRTC"), "{log}");
    assert!(phone.0.contains("dtls_srtp") && phone.0.contains("verified"), "baresip verified our DTLS fingerprint:\n{}\n{log}", phone.0);
    let record = support::completed_record(&gateway);
    assert_record(&record, sipbridge::store::CallDirection::Inbound, sip_codec, transcoded);
    (result, phone, log, record)
}

#[test]
fn webrtc_phone_calls_browser_with_opus_passed_through() {
    let (result, phone, log, _) = webrtc_phone_calls_browser("opus/48000/2,pcmu", "", "opus", false);
    assert_tones(&result, &phone, &log);
    assert_eq!(result["codec"], "audio/opus", "{result:#}");
    assert!(log.contains("transcoding=false"), "Opus passed between the two WebRTC legs untouched:\n{log}");
    assert_eq!(result["ended"]["reason"], "normal", "baresip's BYE ended the call in the browser: {result:#}");
}

#[test]
fn webrtc_phone_with_opus_calls_a_pcmu_browser_through_the_transcoder() {
    let (result, phone, log, record) = webrtc_phone_calls_browser("opus/48000/2", "\n[calls]\nbrowser_codec = \"pcmu\"\n", "opus", true);
    assert_tones(&result, &phone, &log);
    assert_eq!(result["codec"], "audio/PCMU", "{result:#}");
    assert!(log.contains("transcoding=true"), "Opus <-> PCMU transcoded:\n{log}");
    // Our answer asked baresip for `maxplaybackrate=8000`, all that the browser's PCMU carries.
    let sip = record.quality.iter().find(|q| q.leg == "sip" && q.direction == "received");
    assert_eq!(sip.and_then(|q| q.audio_bandwidth.as_deref()), Some("narrowband (4 kHz)"), "{record:#?}");
}

/// Chromium (alice, 440 Hz) calls baresip through a profile with `srtp = "dtls"`: the gateway
/// offers baresip WebRTC (its own leg's candidates inline) and bridges it to the browser's leg
/// with Opus passed through; the browser's DTMF "123#" reaches baresip (as SIP INFO).
#[test]
fn browser_calls_a_webrtc_peer_that_the_gateway_offers_webrtc() {
    let phone_port = support::free_port_pair();
    let profile = format!("kind = \"trunk\"\nhost = \"127.0.0.1\"\nport = {phone_port}\ntrusted_addresses = [\"127.0.0.1\"]\nsrtp = \"dtls\"\n");
    let gateway = Gateway::start(GatewayOptions { profiles: vec![("webrtc-peer.toml".into(), profile)], ..Default::default() });
    // baresip does not register: a registered bob would be rung at his binding (the dial plan
    // tries local users first), and the call is to go through the profile.
    let phone = Phone::start_on(phone_port, &gateway, "opus/48000/2", &format!("{};regint=0", baresip::WEBRTC), 1000, &[], 25);
    support::wait_udp_bound(phone_port);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/echo.mjs");
    let output = Command::new("node")
        .arg(script)
        .arg(format!("http://127.0.0.1:{}", gateway.http_port))
        .arg(token("alice", &["webrtc-peer"]))
        .args(["", "bob", "dtmf", "440"])
        .output()
        .expect("run the browser");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let result: serde_json::Value = stdout.lines().rev().find(|l| l.starts_with('{')).and_then(|l| serde_json::from_str(l).ok()).unwrap_or_default();
    let phone = phone.finish();
    let log = gateway.log();
    assert!(log.contains("offering WebRTC to the SIP peer"), "{log}");
    assert_tones(&result, &phone, &log);
    assert!(phone.0.contains("dtls_srtp") && phone.0.contains("verified"), "baresip verified our DTLS fingerprint:\n{}", phone.0);
    assert!(log.contains("transcoding=false"), "Opus passed between the two WebRTC legs untouched:\n{log}");
    // Our WebRTC offer carries only the browser's codec (no telephone-event), so the digits go
    // as SIP INFO, which baresip prints as `received DTMF: '1' (duration=100)`.
    let digits: String = phone.0.split("received DTMF: '").skip(1).filter_map(|rest| rest.chars().next()).collect();
    println!("baresip received DTMF: {digits:?}");
    assert!(digits.contains("123#"), "DTMF 123# from the browser reached baresip\nbaresip:\n{}", phone.0);
    let record = support::completed_record(&gateway);
    assert_record(&record, sipbridge::store::CallDirection::Outbound, "opus", false);
}

const FINGERPRINT: &str = "a=fingerprint:sha-256 EA:BF:DD:27:58:4C:AC:E8:B9:13:0F:3F:EB:4C:80:0A:66:7E:D2:16:34:29:E2:A0:A8:A1:EE:8C:58:1C:1A:01\r\n";
const ICE: &str = "a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n";

/// The final status a trusted trunk's INVITE with `media` (the SDP after `t=`) gets.
fn status_of_invite(gateway: &Gateway, media: &str) -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket.set_read_timeout(Some(Duration::from_secs(1))).expect("timeout");
    let port = socket.local_addr().expect("addr").port();
    let branch = format!("z9hG4bK{}", rand::random::<u32>());
    let body = format!("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n{media}");
    let invite = format!(
        "INVITE sip:alice@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch={branch};rport\r\n\
         From: <sip:trunk@127.0.0.1>;tag=1\r\nTo: <sip:alice@example.com>\r\nCall-ID: {branch}@127.0.0.1\r\n\
         CSeq: 1 INVITE\r\nContact: <sip:trunk@127.0.0.1:{port}>\r\nMax-Forwards: 70\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    socket.send_to(invite.as_bytes(), gateway.sip_addr()).expect("send");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buffer = [0u8; 65_535];
    while Instant::now() < deadline {
        let Ok((len, _)) = socket.recv_from(&mut buffer) else { continue };
        let text = String::from_utf8_lossy(&buffer[..len]);
        let status: u16 = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        if status >= 200 {
            let ack = format!(
                "ACK sip:alice@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch={branch};rport\r\n\
                 From: <sip:trunk@127.0.0.1>;tag=1\r\n{}\r\nCall-ID: {branch}@127.0.0.1\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
                text.lines().find(|l| l.starts_with("To:")).unwrap_or("To: <sip:alice@example.com>")
            );
            socket.send_to(ack.as_bytes(), gateway.sip_addr()).expect("ack");
            return status;
        }
    }
    panic!("no final answer to the INVITE:\n{}", gateway.log());
}

#[test]
fn dtls_without_ice_or_on_an_unsupported_profile_gets_488() {
    let trunk = "kind = \"trunk\"\nhost = \"127.0.0.1\"\ntrusted_addresses = [\"127.0.0.1\"]\n".to_string();
    let gateway = Gateway::start(GatewayOptions { profiles: vec![("trunk.toml".into(), trunk)], ..Default::default() });
    let audio = |profile: &str| format!("m=audio 40000 {profile} 111 0\r\na=rtpmap:111 opus/48000/2\r\na=rtcp-mux\r\na=setup:actpass\r\n");
    let cases = [
        ("DTLS, no ICE", format!("{FINGERPRINT}{}", audio("UDP/TLS/RTP/SAVPF"))),
        ("ICE, no fingerprint", format!("{ICE}{}", audio("UDP/TLS/RTP/SAVPF"))),
        ("ICE and DTLS over TCP", format!("{ICE}{FINGERPRINT}{}", audio("TCP/TLS/RTP/SAVPF"))),
        ("ICE and DTLS on a DTLS/SCTP m-line", format!("{ICE}{FINGERPRINT}m=audio 40000 UDP/DTLS/SCTP webrtc-datachannel\r\n")),
    ];
    for (what, media) in cases {
        assert_eq!(status_of_invite(&gateway, &media), 488, "{what}");
    }
    let log = gateway.log();
    assert!(!log.contains("panicked"), "{log}");
    assert!(log.contains("DTLS-SRTP offered without ICE"), "the reason is logged:\n{log}");
}
