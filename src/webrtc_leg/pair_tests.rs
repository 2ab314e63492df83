//! Two legs wired back to back in memory, one offering and one answering, with a manual clock:
//! ICE, DTLS and the exported SRTP keys must agree without any socket.

use super::{BrowserCodec, DtlsCertificate, LegEvent, LegIdentity, WebRtcConfig, WebRtcLeg};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const OFFERER: &str = "127.0.0.1:41000";
const ANSWERER: &str = "127.0.0.1:41002";

fn identity(address: &str, ufrag: &str, certificate: &DtlsCertificate) -> LegIdentity {
    LegIdentity { ufrag: ufrag.into(), pwd: format!("{ufrag}-password-0123456789"), ssrc: 0x1234, local_addresses: vec![address.parse().expect("address")], certificate: certificate.clone() }
}

fn pcmu() -> BrowserCodec {
    BrowserCodec { mime_type: "audio/PCMU".into(), payload_type: 0, clock_rate: 8_000, channels: 1 }
}

/// Moves `from`'s datagrams into `to`; whether there were any.
fn deliver(from: &mut WebRtcLeg, to: &mut WebRtcLeg, to_address: &str, now: Instant) -> bool {
    let mut moved = false;
    while let Some(datagram) = from.poll_datagram() {
        moved = true;
        assert_eq!(datagram.peer, to_address.parse::<SocketAddr>().expect("address"), "sent where the other leg listens");
        let _ = to.handle_datagram(datagram.peer, datagram.local, &datagram.payload, now);
    }
    moved
}

fn events_of(leg: &mut WebRtcLeg, events: &mut Vec<String>) {
    while let Some(event) = leg.poll_event() {
        match event {
            LegEvent::Connected => events.push("connected".to_string()),
            LegEvent::Failed(reason) => events.push(reason),
            LegEvent::LocalCandidate(_) => {}
        }
    }
}

fn fire_due(leg: &mut WebRtcLeg, now: Instant) {
    if leg.poll_timeout().is_some_and(|at| at <= now) {
        leg.handle_timeout(now);
    }
}

/// Hands each leg's datagrams to the other until both are connected, moving the clock on when
/// both are quiet; returns the events each leg reported.
fn pump(a: &mut WebRtcLeg, b: &mut WebRtcLeg, now: &mut Instant, rounds: usize) -> (Vec<String>, Vec<String>) {
    let (mut a_events, mut b_events) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let moved = deliver(a, b, ANSWERER, *now) | deliver(b, a, OFFERER, *now);
        events_of(a, &mut a_events);
        events_of(b, &mut b_events);
        if a.is_connected() && b.is_connected() {
            break;
        }
        if !moved {
            *now += Duration::from_millis(50);
            fire_due(a, *now);
            fire_due(b, *now);
        }
    }
    (a_events, b_events)
}

fn connected_pair(lite: bool) -> (WebRtcLeg, WebRtcLeg, Instant) {
    let certificate = DtlsCertificate::generate().expect("certificate");
    let other_certificate = DtlsCertificate::generate().expect("certificate");
    let config = WebRtcConfig { public_ip: None, lite: false, failed_timeout: Duration::from_secs(15) };
    let mut now = Instant::now();
    let (mut offerer, offer) = WebRtcLeg::offer(pcmu(), &config, &identity(OFFERER, "offr", &certificate), now).expect("offer");
    let answering = WebRtcConfig { lite, ..config };
    let (mut answerer, answer) = WebRtcLeg::answer(&offer, None, &answering, &identity(ANSWERER, "answ", &other_certificate), now).expect("answer");
    assert_eq!(answer.contains("a=ice-lite"), lite, "{answer}");
    offerer.set_answer(&answer, now).expect("answer applied");
    let (a_events, b_events) = pump(&mut offerer, &mut answerer, &mut now, 400);
    assert_eq!((a_events, b_events), (vec!["connected".to_string()], vec!["connected".to_string()]));
    (offerer, answerer, now)
}

fn rtp(sequence: u16) -> Vec<u8> {
    let mut packet = vec![0x80, 0, 0, 0, 0, 0, 0, 160, 0, 0, 0x12, 0x34];
    packet[2..4].copy_from_slice(&sequence.to_be_bytes());
    packet.extend_from_slice(&[0xd5; 160]);
    packet
}

/// One packet each way of protect and unprotect, and a tampered one refused.
fn srtp_round_trip(from: &mut WebRtcLeg, to: &mut WebRtcLeg, sequence: u16) {
    let plain = rtp(sequence);
    let mut packet = plain.clone();
    from.protect(&mut packet, false).expect("protected");
    assert_ne!(packet, plain, "encrypted and tagged");
    to.unprotect(&mut packet, false).expect("authenticated");
    assert_eq!(packet, plain, "the same bytes come out");
    let mut tampered = rtp(sequence + 1);
    from.protect(&mut tampered, false).expect("protected");
    tampered[20] ^= 1;
    assert!(to.unprotect(&mut tampered, false).is_err(), "a flipped bit fails authentication");
}

#[test]
fn an_offerer_and_an_answerer_connect_and_share_srtp_both_ways() {
    let (mut offerer, mut answerer, _) = connected_pair(false);
    srtp_round_trip(&mut offerer, &mut answerer, 7);
    srtp_round_trip(&mut answerer, &mut offerer, 100);
    assert!(offerer.route().is_some() && answerer.route().is_some());
}

#[test]
fn a_lite_answerer_connects_with_a_full_offerer() {
    let (mut offerer, mut answerer, _) = connected_pair(true);
    let mut packet = rtp(1);
    answerer.protect(&mut packet, false).expect("protected");
    offerer.unprotect(&mut packet, false).expect("authenticated");
}

#[test]
fn after_the_handshake_a_forged_dtls_record_is_reported_as_discarded() {
    let (mut offerer, _answerer, now) = connected_pair(false);
    // An application-data record of epoch 1 with a MAC that cannot verify.
    let mut forged = vec![23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 9, 0, 40];
    forged.extend_from_slice(&[0x5a; 40]);
    let result = offerer.handle_datagram(OFFERER.parse().expect("address"), ANSWERER.parse().expect("address"), &forged, now);
    assert!(matches!(result, Err(super::WebRtcError::DtlsDiscarded)), "{result:?}");
    assert!(offerer.is_connected(), "a forged record does not end the association");
}

#[test]
fn before_dtls_there_are_no_keys_and_media_is_refused() {
    let certificate = DtlsCertificate::generate().expect("certificate");
    let config = WebRtcConfig { public_ip: None, lite: false, failed_timeout: Duration::from_secs(15) };
    let (mut leg, _) = WebRtcLeg::offer(pcmu(), &config, &identity(OFFERER, "solo", &certificate), Instant::now()).expect("offer");
    let mut packet = rtp(1);
    assert!(leg.protect(&mut packet, false).is_err());
    assert!(leg.unprotect(&mut packet, false).is_err());
    assert!(leg.route().is_none());
}
