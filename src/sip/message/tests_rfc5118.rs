//! RFC 5118's IPv6 torture messages (tests/data/rfc5118, written after its §4): the valid ones
//! parse, the invalid ones are refused with 400 and can still be answered.

use super::*;
use std::path::PathBuf;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/rfc5118")
}

/// (file name, expected status: None for a message that parses).
fn index() -> Vec<(String, Option<u16>)> {
    let text = std::fs::read_to_string(corpus_dir().join("INDEX.tsv")).expect("INDEX.tsv");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let fields: Vec<&str> = l.split('\t').collect();
            (format!("{}.dat", fields[0]), fields[2].parse().ok())
        })
        .collect()
}

#[test]
fn every_message_gets_the_indexed_verdict_over_both_transports() {
    let cases = index();
    assert!(cases.len() >= 12, "the RFC's twelve messages at least");
    for (name, expected) in cases {
        let bytes = std::fs::read(corpus_dir().join(&name)).expect("corpus file");
        for transport in [TransportKind::Udp, TransportKind::Tcp] {
            match (parse(&bytes, transport), expected) {
                (Ok(_), None) => {}
                (Err(rejected), Some(status)) => {
                    assert_eq!(rejected.error.status(), status, "{name}: {}", rejected.error);
                    assert!(rejected.reply_headers.is_some(), "{name}: the refusal can be answered");
                }
                (Ok(_), Some(status)) => panic!("{name} parsed, but must get {status}"),
                (Err(rejected), None) => panic!("{name} must parse: {}", rejected.error),
            }
        }
    }
}

fn request(name: &str) -> ParsedRequest {
    let bytes = std::fs::read(corpus_dir().join(name)).expect("corpus file");
    match parse(&bytes, TransportKind::Udp) {
        Ok(Inbound::Request(request)) => *request,
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn a_port_inside_the_brackets_is_part_of_the_address() {
    // §4.3: the sender meant port 5070, but the colon is inside the reference.
    let ambiguous = request("port-ambiguous.dat");
    assert_eq!(syntax::uri_host(&ambiguous.request_uri), Some("2001:db8::10:5070"));
    let unambiguous = request("port-unambiguous.dat");
    assert_eq!(syntax::uri_host(&unambiguous.request_uri), Some("2001:db8::10"));
    assert!(unambiguous.request_uri.ends_with("]:5070"));
}

#[test]
fn via_hosts_and_received_parameters_are_read_with_or_without_brackets() {
    let with = request("via-received-param-with-delim.dat");
    assert_eq!((with.top_via.host.as_str(), with.top_via.port), ("[2001:db8::9:1]", Some(6050)));
    assert_eq!(syntax::param(&with.top_via.params, "received"), Some(Some("[2001:db8::9:255]")));
    let without = request("via-received-param-no-delim.dat");
    assert_eq!(syntax::param(&without.top_via.params, "received"), Some(Some("2001:db8::9:255")));
    let mapped = request("ipv4-mapped-ipv6.dat");
    assert_eq!((mapped.top_via.host.as_str(), mapped.top_via.port), ("[::ffff:192.0.2.10]", Some(19823)));
}

#[test]
fn ipv6_sdp_bodies_parse() {
    for name in ["ipv6-in-sdp.dat", "mult-ip-in-sdp.dat", "ipv4-mapped-ipv6.dat"] {
        let parsed = request(name);
        let body = String::from_utf8(parsed.request.body.clone()).expect("utf-8 body");
        let sdp = crate::sdp::SessionDescription::parse(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
        let audio = sdp.media.iter().find(|m| m.kind == "audio").expect("audio");
        let rtp = audio.rtp_address(&sdp).expect("an RTP address");
        assert!(!rtp.ip().is_unspecified(), "{name}: {rtp}");
    }
}
