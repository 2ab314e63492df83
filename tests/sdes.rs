//! SDES-SRTP on the SIP leg with real peers: baresip with `mediaenc=srtp-mand` (it sends and
//! accepts only SRTP) calls a browser user and is called by one, with tones checked both ways;
//! and offers that the profile's `srtp` policy cannot meet are refused with 488.

mod support;
#[path = "support/baresip.rs"]
mod baresip;

use baresip::{assert_tones, Phone};
use std::net::UdpSocket;
use std::time::{Duration, Instant};
use support::calls::{answering_browser, echo_page_args, token};
use support::{completed_record, free_port, Gateway, GatewayOptions};

const SRTP_MANDATORY: &str = ";mediaenc=srtp-mand";

/// What the record of an SRTP call must show, and must not: the suite, the SAVP ladder, no key.
fn assert_srtp_record(record: &sipbridge::store::CallRecord) {
    let srtp = record.events.iter().find(|e| e.kind == "srtp").unwrap_or_else(|| panic!("no srtp event: {record:#?}"));
    assert!(srtp.detail.starts_with("SDES AES_CM_128_HMAC_SHA1_"), "{record:#?}");
    let bodies: Vec<&str> = record.sip_messages.iter().map(|m| m.text.as_str()).filter(|t| t.contains("a=crypto:")).collect();
    assert!(bodies.len() >= 2, "offer and answer both carry a=crypto: {bodies:#?}");
    for body in bodies {
        assert!(body.contains("RTP/SAVP"), "{body}");
        for line in body.lines().filter(|l| l.starts_with("a=crypto:")) {
            assert!(line.contains("inline:(masked)"), "the key is masked in the record: {line}");
        }
    }
    let sip = record.quality.iter().find(|q| q.leg == "sip" && q.direction == "received").unwrap_or_else(|| panic!("{record:#?}"));
    assert!(sip.packets > 50, "SRTP from baresip was authenticated and decrypted: {record:#?}");
    assert!(!record.events.iter().any(|e| e.kind == "srtp_dropped"), "no packet from baresip failed authentication: {record:#?}");
}

/// baresip's own account of the call: SRTP was on (with `srtp-mand` it accepts nothing else)
/// and every packet from the gateway decrypted.
fn assert_baresip_used_srtp(phone_log: &str) {
    assert!(phone_log.contains("SRTP is Enabled (cryptosuite=AES_CM_128_HMAC_SHA1_"), "baresip negotiated SRTP:\n{phone_log}");
    assert!(!phone_log.contains("failed to decrypt"), "baresip authenticated all we sent:\n{phone_log}");
}

/// Also holds and resumes from baresip: both re-INVITEs keep the keys, and audio comes back.
#[test]
fn srtp_mandatory_baresip_calls_a_browser_with_tones_both_ways() {
    let gateway = Gateway::start(GatewayOptions::default());
    let (mut browser, lines) = answering_browser(&gateway, &token("alice", &[]));
    let phone = Phone::start_with(&gateway, "pcmu", SRTP_MANDATORY, 1000, &["/dial sip:alice@example.com".to_string()], 16);
    phone.wait_received_audio(3);
    phone.command("/hold");
    gateway.wait_for_log("the SIP peer holds the call");
    phone.command("/resume");
    gateway.wait_for_log("the SIP peer resumed the call");
    let result: serde_json::Value = lines.map_while(Result::ok).filter(|l| l.starts_with('{')).last().and_then(|l| serde_json::from_str(&l).ok()).unwrap_or_default();
    let _ = browser.wait();
    let phone = phone.finish();
    let log = gateway.log();
    assert_tones(&result, &phone, &log);
    assert_baresip_used_srtp(&phone.0);
    assert_eq!(result["holds"], serde_json::json!(["hold", "resume"]), "{result:#}");
    assert!(result["levels"]["afterResume"].as_f64().unwrap_or(0.0) > 0.05, "audio came back after the resume: {result:#}");
    assert!(!log.contains("new SDES keys"), "baresip kept its key, so did we:\n{log}");
    let record = completed_record(&gateway);
    assert_srtp_record(&record);
    assert!(!log.contains("inline:") || log.contains("inline:(masked)"), "no key in the gateway's log:\n{log}");
}

#[test]
fn browser_calls_an_srtp_mandatory_phone_when_the_local_domain_requires_srtp() {
    let gateway = Gateway::start(GatewayOptions { local_srtp: "mandatory", ..Default::default() });
    let phone = Phone::start_with(&gateway, "pcmu", SRTP_MANDATORY, 1000, &[], 25);
    phone.wait_registered(&gateway);
    let result = echo_page_args(&gateway, &token("alice", &[]), &["", "bob", "", "440"], &[]);
    let phone = phone.finish();
    let log = gateway.log();
    assert_tones(&result, &phone, &log);
    assert_baresip_used_srtp(&phone.0);
    assert_srtp_record(&completed_record(&gateway));
}

/// A trunk profile toward nowhere, trusted by 127.0.0.1, with `srtp` set.
fn gateway_with_trunk_srtp(policy: &str) -> Gateway {
    let trunk = format!("kind = \"trunk\"\nhost = \"127.0.0.1\"\nport = {}\ntrusted_addresses = [\"127.0.0.1\"]\nsrtp = \"{policy}\"\n", free_port());
    Gateway::start(GatewayOptions { profiles: vec![("trunk.toml".into(), trunk)], ..Default::default() })
}

/// Sends an INVITE with `protocol` and `crypto` lines from a socket of our own and returns the
/// final status the gateway answered.
fn final_status_for_offer(gateway: &Gateway, protocol: &str, crypto: &[&str]) -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let local = socket.local_addr().expect("address");
    let mut sdp = format!("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {} {protocol} 0\r\n", free_port());
    for line in crypto {
        sdp.push_str(&format!("a=crypto:{line}\r\n"));
    }
    sdp.push_str("a=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n");
    let invite = format!(
        "INVITE sip:alice@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-sdes-{n}\r\nMax-Forwards: 70\r\n\
         From: <sip:carrier@127.0.0.1>;tag=sdes\r\nTo: <sip:alice@127.0.0.1>\r\nCall-ID: sdes-{n}@127.0.0.1\r\nCSeq: 1 INVITE\r\n\
         Contact: <sip:carrier@{local}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len(),
        port = gateway.sip_port,
        n = local.port(),
    );
    socket.send_to(invite.as_bytes(), gateway.sip_addr()).expect("send");
    socket.set_read_timeout(Some(Duration::from_secs(1))).expect("timeout");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        let Ok((n, _)) = socket.recv_from(&mut buf) else { continue };
        let status = support::status_code(&String::from_utf8_lossy(&buf[..n]));
        if let Some(status) = status.filter(|s| *s >= 200) {
            return status;
        }
    }
    panic!("no final answer to the INVITE:\n{}", gateway.log());
}

const KEY: &str = "1 AES_CM_128_HMAC_SHA1_80 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd";

#[test]
fn a_savp_offer_to_a_profile_with_srtp_off_gets_488() {
    let gateway = gateway_with_trunk_srtp("off");
    assert_eq!(final_status_for_offer(&gateway, "RTP/SAVP", &[KEY]), 488);
    let record = completed_record(&gateway);
    assert_eq!(record.hangup_sip_code, Some(488), "{record:#?}");
    // A plain offer gets past the SRTP check (and finds nobody logged in).
    assert_eq!(final_status_for_offer(&gateway, "RTP/AVP", &[]), 480);
}

#[test]
fn a_plain_offer_to_a_profile_with_srtp_mandatory_gets_488() {
    let gateway = gateway_with_trunk_srtp("mandatory");
    assert_eq!(final_status_for_offer(&gateway, "RTP/AVP", &[]), 488);
    // Only unknown suites: 488 as well.
    let unknown = "1 AEAD_AES_256_GCM inline:MjM0NTY3ODk6Ozw9Pj9AQUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVpbXF1eXw==";
    assert_eq!(final_status_for_offer(&gateway, "RTP/SAVP", &[unknown]), 488);
    // A usable SAVP offer gets past the SRTP check (and finds nobody logged in).
    assert_eq!(final_status_for_offer(&gateway, "RTP/SAVP", &[KEY]), 480);
}
