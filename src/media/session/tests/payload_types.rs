//! Each leg keeps its own payload numbering (a phone's Opus 96 is a browser's 111): the handler
//! for (source PT, destination PT) translates, in passthrough, transcoding and DTMF, and follows
//! re-offers that renumber.

use super::*;

/// A SIP phone's leg: Opus as 96, telephone-event/48000 as 97.
fn phone(opus: u8, event: u8) -> LegConfig {
    let mut config = leg(vec![format(Encoding::Opus, opus)], A_PEER);
    config.telephone_event = Some((event, 48_000));
    config
}

/// A browser's leg: Opus as 111, telephone-event/48000 as 110.
fn browser() -> LegConfig {
    let mut config = leg(vec![format(Encoding::Opus, 111)], B_PEER);
    config.telephone_event = Some((110, 48_000));
    config
}

fn event_packet(pt: u8, ts: u32, seq: u16, marker: bool, end: bool, duration: u16) -> Vec<u8> {
    event_packet_from(0x77, pt, ts, seq, marker, end, duration)
}

fn event_packet_from(ssrc: u32, pt: u8, ts: u32, seq: u16, marker: bool, end: bool, duration: u16) -> Vec<u8> {
    let mut packet = vec![0u8; 16];
    let header = rtp::RtpHeader { marker, payload_type: pt, sequence: seq, timestamp: ts, ssrc };
    let payload = [7u8, if end { 0x80 | 10 } else { 10 }, (duration >> 8) as u8, duration as u8];
    rtp::write_packet(&mut packet, &header, &payload).expect("write");
    packet
}

/// Sends one 100 ms digit '7' (start, middle, three end copies) from `side` under `pt`; returns
/// the payload types of what left toward the other leg.
fn play_digit(s: &mut MediaSession, side: Side, from: &str, pt: u8, seq: u16, at: u64) -> Vec<u8> {
    let packets = [(true, false, 960), (false, false, 2_880), (false, true, 4_800), (false, true, 4_800), (false, true, 4_800)];
    let mut out = Vec::new();
    for (i, (marker, end, duration)) in packets.into_iter().enumerate() {
        s.handle_rtp(side, addr(from), event_packet(pt, 48_000, seq + i as u16, marker, end, duration), ms(at + i as u64 * 20));
        out.extend(std::iter::from_fn(|| s.poll_transmit()).map(|t| {
            assert_eq!(t.side, side.other());
            parse(&t.packet).payload_type
        }));
    }
    out
}

fn digits(s: &mut MediaSession) -> Vec<(Side, char)> {
    std::iter::from_fn(|| s.poll_event())
        .filter_map(|e| match e {
            MediaEvent::Digit { from, digit, .. } => Some((from, digit)),
            _ => None,
        })
        .collect()
}

#[test]
fn passthrough_renumbers_opus_both_ways_in_the_received_buffer() {
    let mut s = session(phone(96, 97), browser());
    for i in 0..5u16 {
        let packet = rtp_packet(96, 100 + i, u32::from(i) * 960, 0x1234);
        let before = packet.as_ptr();
        s.handle_rtp(Side::A, addr(A_PEER), packet, ms(u64::from(i) * 20));
        let out = s.poll_transmit().expect("relayed to the browser");
        assert_eq!(out.packet.as_ptr(), before, "the PT byte is rewritten in place: no copy");
        assert_eq!((out.side, parse(&out.packet).payload_type), (Side::B, 111));
        s.recycle(out.packet);

        s.handle_rtp(Side::B, addr(B_PEER), rtp_packet(111, 500 + i, u32::from(i) * 960, 0x5678), ms(u64::from(i) * 20 + 5));
        let out = s.poll_transmit().expect("relayed to the phone");
        assert_eq!((out.side, parse(&out.packet).payload_type), (Side::A, 96));
        s.recycle(out.packet);
    }
    assert!(!s.counters(Side::A).transcoded && !s.counters(Side::B).transcoded);
    assert_eq!(s.counters(Side::A).dropped_unknown_payload + s.counters(Side::B).dropped_unknown_payload, 0);
}

#[test]
fn telephone_events_are_renumbered_both_ways() {
    let mut s = session(phone(96, 97), browser());
    let toward_browser = play_digit(&mut s, Side::A, A_PEER, 97, 10, 0);
    assert_eq!(toward_browser, vec![110; 5], "the phone's 97 reaches the browser as its 110");
    assert_eq!(digits(&mut s), vec![(Side::A, '7')]);
    let toward_phone = play_digit(&mut s, Side::B, B_PEER, 110, 10, 500);
    assert_eq!(toward_phone, vec![97; 5], "the browser's 110 reaches the phone as its 97");
    assert_eq!(digits(&mut s), vec![(Side::B, '7')]);
    // Digits the gateway generates toward the phone carry the phone's number too.
    s.send_dtmf(Side::A, "1", 100, ms(1_000)).expect("dtmf");
    let mut generated = Vec::new();
    let mut now = ms(1_000);
    while let Some(next) = s.poll_timeout().filter(|t| *t < ms(2_000)) {
        now = next.max(now);
        s.handle_timeout(now);
        generated.extend(std::iter::from_fn(|| s.poll_transmit()).map(|t| (t.side, parse(&t.packet).payload_type)));
        now += Duration::from_millis(1);
    }
    assert!(!generated.is_empty() && generated.iter().all(|&g| g == (Side::A, 97)), "{generated:?}");
}

#[test]
fn transcoding_stamps_each_legs_own_number() {
    // The phone speaks PCMU, the browser Opus 111: the encoder's output carries 111, and the
    // reverse direction leaves as PCMU 0; with Opus 96 on the phone and G.722 in the browser, 96.
    let mut s = session(leg(vec![format(Encoding::Pcmu, 0)], A_PEER), browser());
    s.handle_rtp(Side::A, addr(A_PEER), rtp_packet(0, 1, 160, 0x1234), ms(0));
    assert_eq!(s.poll_transmit().map(|t| parse(&t.packet).payload_type), Some(111));
    s.handle_rtp(Side::B, addr(B_PEER), rtp_packet(111, 1, 960, 0x5678), ms(5));
    assert_eq!(s.poll_transmit().map(|t| parse(&t.packet).payload_type), Some(0));

    let mut s = session(phone(96, 97), leg(vec![format(Encoding::G722, 9)], B_PEER));
    s.handle_rtp(Side::B, addr(B_PEER), rtp_packet(9, 1, 160, 0x5678), ms(0));
    let out = s.poll_transmit().expect("transcoded");
    assert_eq!((out.side, parse(&out.packet).payload_type), (Side::A, 96));
    assert!(s.counters(Side::B).transcoded);
}

#[test]
fn a_reoffer_that_renumbers_is_followed_in_both_directions() {
    let mut s = session(phone(96, 97), browser());
    s.handle_rtp(Side::A, addr(A_PEER), rtp_packet(96, 1, 960, 0x1234), ms(0));
    assert_eq!(s.poll_transmit().map(|t| parse(&t.packet).payload_type), Some(111));
    // re-INVITE: the phone now calls Opus 98 and telephone-event 100.
    s.update_leg(Side::A, phone(98, 100), Duration::ZERO);
    s.handle_rtp(Side::A, addr(A_PEER), rtp_packet(98, 2, 1_920, 0x1234), ms(20));
    assert_eq!(s.poll_transmit().map(|t| parse(&t.packet).payload_type), Some(111), "the new number is understood");
    s.handle_rtp(Side::A, addr(A_PEER), rtp_packet(96, 3, 2_880, 0x1234), ms(40));
    assert!(s.poll_transmit().is_none(), "the old number means nothing any more");
    assert_eq!(s.counters(Side::A).dropped_unknown_payload, 1);
    s.handle_rtp(Side::B, addr(B_PEER), rtp_packet(111, 1, 960, 0x5678), ms(45));
    assert_eq!(s.poll_transmit().map(|t| parse(&t.packet).payload_type), Some(98), "the phone gets its new number");
    assert_eq!(play_digit(&mut s, Side::B, B_PEER, 110, 10, 100), vec![100; 5]);
    assert_eq!(play_digit(&mut s, Side::A, A_PEER, 100, 10, 300), vec![110; 5]);
    assert_eq!(digits(&mut s), vec![(Side::B, '7'), (Side::A, '7')]);
}

#[test]
fn a_new_source_after_a_reoffer_has_its_own_event_timestamps() {
    // The phone's first stream sent a digit late in its timeline; after the re-INVITE a new SSRC
    // starts its timestamps low again: its digit is new, not a stale copy of the old one.
    let mut s = session(phone(96, 97), browser());
    let packets = [(true, false, 960), (false, true, 4_800), (false, true, 4_800)];
    for (i, (marker, end, duration)) in packets.into_iter().enumerate() {
        s.handle_rtp(Side::A, addr(A_PEER), event_packet_from(0x1111, 97, 206_400, 50 + i as u16, marker, end, duration), ms(i as u64 * 20));
    }
    s.update_leg(Side::A, phone(98, 100), Duration::ZERO);
    for (i, (marker, end, duration)) in packets.into_iter().enumerate() {
        s.handle_rtp(Side::A, addr(A_PEER), event_packet_from(0x2222, 100, 48_000, 7 + i as u16, marker, end, duration), ms(500 + i as u64 * 20));
    }
    let relayed: Vec<u8> = std::iter::from_fn(|| s.poll_transmit()).map(|t| parse(&t.packet).payload_type).collect();
    assert_eq!(relayed, vec![110; 6], "both digits relayed under the browser's number");
    assert_eq!(digits(&mut s), vec![(Side::A, '7'), (Side::A, '7')]);
}

/// The record names the widest Opus audio a leg sent, read from each packet's TOC whatever the
/// leg numbers Opus: did a browser keep to the `maxplaybackrate` we asked of it?
#[test]
fn the_widest_opus_bandwidth_received_is_kept_per_leg() {
    let mut s = session(phone(96, 97), browser());
    assert_eq!(s.quality(Side::B).audio_bandwidth, None, "nothing received yet");
    let with_toc = |seq: u16, toc: u8| {
        let mut packet = rtp_packet(111, seq, u32::from(seq) * 960, 0x5678);
        packet[12] = toc;
        packet
    };
    // SILK narrowband (configuration 1), then SILK wideband (10): the widest one stays.
    for (seq, toc) in [(1, 1 << 3), (2, 10 << 3), (3, 1 << 3)] {
        s.handle_rtp(Side::B, addr(B_PEER), with_toc(seq, toc), ms(u64::from(seq) * 20));
    }
    assert_eq!(s.quality(Side::B).audio_bandwidth.as_deref(), Some("wideband (8 kHz)"));
    s.handle_rtp(Side::B, addr(B_PEER), with_toc(4, 31 << 3), ms(80));
    assert_eq!(s.quality(Side::B).audio_bandwidth.as_deref(), Some("fullband (20 kHz)"), "CELT fullband");
    s.handle_rtp(Side::A, addr(A_PEER), rtp_packet(96, 7, 0, 0x1234), ms(90));
    assert_eq!(s.quality(Side::A).audio_bandwidth.as_deref(), Some("wideband (8 kHz)"), "the phone's own, under its 96");
    while let Some(out) = s.poll_transmit() {
        s.recycle(out.packet);
    }
}
