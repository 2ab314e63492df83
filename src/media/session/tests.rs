use super::*;
use crate::media::handler::{Encoding, PayloadTranscoder};

const A_PEER: &str = "192.0.2.10:4000";
const B_PEER: &str = "192.0.2.20:5000";

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("addr")
}

fn format(encoding: Encoding, payload_type: u8) -> PayloadFormat {
    PayloadFormat { encoding, payload_type, channels: 1 }
}

fn leg(formats: Vec<PayloadFormat>, remote: &str) -> LegConfig {
    LegConfig { formats, telephone_event: None, dtmf: DtmfMode::Rfc4733, ptime_ms: 20, remote: Some(addr(remote)), send: true, rtcp: RtcpMode::Off }
}

/// A stand-in transcoder: one output frame per input, payload tagged so the test can see it ran.
struct Fake {
    ticks: u32,
}

impl PayloadTranscoder for Fake {
    fn push(&mut self, payload: &[u8], out: &mut Vec<CodecFrame>) -> Result<(), String> {
        out.push(CodecFrame { payload: [b"T:".as_slice(), payload].concat(), rtp_ticks: self.ticks });
        Ok(())
    }
    fn push_lost(&mut self, _next: Option<&[u8]>, out: &mut Vec<CodecFrame>) -> Result<(), String> {
        out.push(CodecFrame { payload: b"PLC".to_vec(), rtp_ticks: self.ticks });
        Ok(())
    }
}

fn factory() -> TranscoderFactory {
    Box::new(|_from, to, ptime| Ok(Box::new(Fake { ticks: to.clock_rate() / 1000 * ptime }) as Box<dyn PayloadTranscoder>))
}

fn seeds() -> [EgressSeeds; 2] {
    [EgressSeeds { ssrc: 0xA, sequence: 100, timestamp: 1_000 }, EgressSeeds { ssrc: 0xB, sequence: 200, timestamp: 2_000 }]
}

fn session(a: LegConfig, b: LegConfig) -> MediaSession {
    MediaSession::new(a, b, seeds(), factory(), Timeouts::default(), Duration::ZERO)
}

fn rtp_packet(pt: u8, seq: u16, ts: u32, ssrc: u32) -> Vec<u8> {
    let mut packet = vec![0u8; 12 + 160];
    let header = rtp::RtpHeader { marker: false, payload_type: pt, sequence: seq, timestamp: ts, ssrc };
    rtp::write_packet(&mut packet, &header, &[0x55; 160]).expect("write");
    packet
}

fn parse(packet: &[u8]) -> rtp::RtpHeader {
    RtpView::parse(packet).expect("rtp").header()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn passthrough_rewrites_in_place_without_allocating() {
    let mut s = session(leg(vec![format(Encoding::Pcmu, 0)], A_PEER), leg(vec![format(Encoding::Pcmu, 0)], B_PEER));
    for i in 0..50u16 {
        let packet = rtp_packet(0, 7_000 + i, 90_000 + u32::from(i) * 160, 0x1234);
        let before = packet.as_ptr();
        s.handle_rtp(Side::A, addr(A_PEER), packet, ms(u64::from(i) * 20));
        let out = s.poll_transmit().expect("forwarded");
        assert_eq!(out.packet.as_ptr(), before, "the received buffer itself is forwarded");
        assert_eq!((out.side, out.to), (Side::B, addr(B_PEER)));
        let header = parse(&out.packet);
        assert_eq!((header.ssrc, header.sequence, header.timestamp), (0xB, 200 + i, 2_000 + u32::from(i) * 160));
        assert_eq!(header.marker, i == 0);
        s.recycle(out.packet);
    }
    assert!(!s.counters(Side::A).transcoded);
}

#[test]
fn spoofed_stream_from_a_third_address_never_reaches_the_other_leg() {
    let mut s = session(leg(vec![format(Encoding::Pcmu, 0)], A_PEER), leg(vec![format(Encoding::Pcmu, 0)], B_PEER));
    s.handle_rtp(Side::A, addr(A_PEER), rtp_packet(0, 1, 160, 0x1234), ms(0));
    assert!(s.poll_transmit().is_some());
    for i in 0..200u16 {
        // A third party: both a foreign SSRC and a copied one, interleaved with the real peer.
        s.handle_rtp(Side::A, addr("198.51.100.66:6666"), rtp_packet(0, i, 0, 0x6666), ms(20));
        s.handle_rtp(Side::A, addr("198.51.100.66:6666"), rtp_packet(0, i, 0, 0x1234), ms(20));
        s.handle_rtp(Side::A, addr(A_PEER), rtp_packet(0, 2 + i, 320 + u32::from(i) * 160, 0x1234), ms(40));
    }
    let forwarded: Vec<MediaTransmit> = std::iter::from_fn(|| s.poll_transmit()).collect();
    assert_eq!(forwarded.len(), 200, "only the real peer's packets");
    assert!(forwarded.iter().all(|t| t.packet[12..].iter().all(|b| *b == 0x55) && t.to == addr(B_PEER)));
    assert_eq!(s.counters(Side::A).dropped_foreign, 400);
}

#[test]
fn a_new_source_is_followed_only_after_probation() {
    // The phone is behind NAT: the SDP address is private and never sends.
    let mut s = session(leg(vec![format(Encoding::Pcmu, 0)], "10.0.0.5:4000"), leg(vec![format(Encoding::Pcmu, 0)], B_PEER));
    let nat = addr("203.0.113.9:61000");
    for i in 0..3u16 {
        s.handle_rtp(Side::A, nat, rtp_packet(0, i, u32::from(i) * 160, 0x77), ms(u64::from(i) * 20));
    }
    assert_eq!(std::iter::from_fn(|| s.poll_transmit()).count(), 1, "two probation packets are held back, the third passes");
    assert_eq!(s.destination(Side::A), Some(nat), "replies now go where packets really come from");
    assert!(std::iter::from_fn(|| s.poll_event()).any(|e| e == MediaEvent::Latched { side: Side::A, address: nat }));
}

#[test]
fn hold_stops_sending_and_unhold_resumes_continuously() {
    let mut s = session(leg(vec![format(Encoding::Pcmu, 0)], A_PEER), leg(vec![format(Encoding::Pcmu, 0)], B_PEER));
    s.handle_rtp(Side::A, addr(A_PEER), rtp_packet(0, 1, 160, 0x1234), ms(0));
    let before = parse(&s.poll_transmit().expect("sent").packet);
    let mut held = leg(vec![format(Encoding::Pcmu, 0)], B_PEER);
    held.send = false;
    s.update_leg(Side::B, held.clone(), Duration::ZERO);
    s.handle_rtp(Side::A, addr(A_PEER), rtp_packet(0, 2, 320, 0x1234), ms(20));
    assert!(s.poll_transmit().is_none(), "nothing is sent to a held leg");
    held.send = true;
    s.update_leg(Side::B, held, Duration::ZERO);
    s.handle_rtp(Side::A, addr(A_PEER), rtp_packet(0, 150, 24_000, 0x1234), ms(3_000));
    let after = parse(&s.poll_transmit().expect("resumed").packet);
    assert_eq!(after.ssrc, before.ssrc);
    assert_eq!(after.sequence, before.sequence.wrapping_add(1), "no sequence gap across hold");
    assert_eq!(after.timestamp.wrapping_sub(before.timestamp), 24_000, "3 s of wall time at 8 kHz");
    assert!(after.marker);
}

#[test]
fn transcoding_stamps_the_destination_codec_and_clock() {
    let mut s = session(leg(vec![format(Encoding::Pcmu, 0)], A_PEER), leg(vec![format(Encoding::Opus, 111)], B_PEER));
    for i in 0..3u16 {
        s.handle_rtp(Side::A, addr(A_PEER), rtp_packet(0, i, u32::from(i) * 160, 0x1234), ms(u64::from(i) * 20));
    }
    let out: Vec<rtp::RtpHeader> = std::iter::from_fn(|| s.poll_transmit()).map(|t| parse(&t.packet)).collect();
    assert_eq!(out.len(), 3);
    assert!(out.iter().all(|h| h.payload_type == 111 && h.ssrc == 0xB));
    assert_eq!(out[1].timestamp.wrapping_sub(out[0].timestamp), 960, "20 ms at 48 kHz");
    assert!(s.counters(Side::A).transcoded);
}

/// Counts the frame buffers handed back, and writes each frame into one when it has one.
struct Recycling {
    spare: Vec<Vec<u8>>,
    handed_back: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl PayloadTranscoder for Recycling {
    fn push(&mut self, payload: &[u8], out: &mut Vec<CodecFrame>) -> Result<(), String> {
        let mut frame = self.spare.pop().unwrap_or_default();
        frame.extend_from_slice(payload);
        out.push(CodecFrame { payload: frame, rtp_ticks: 960 });
        Ok(())
    }
    fn push_lost(&mut self, _next: Option<&[u8]>, _out: &mut Vec<CodecFrame>) -> Result<(), String> {
        Ok(())
    }
    fn recycle(&mut self, mut payload: Vec<u8>) {
        payload.clear();
        self.spare.push(payload);
        self.handed_back.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

#[test]
fn transcoding_hands_every_buffer_back() {
    let handed_back = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&handed_back);
    let factory: TranscoderFactory = Box::new(move |_, _, _| Ok(Box::new(Recycling { spare: Vec::new(), handed_back: std::sync::Arc::clone(&counter) }) as Box<dyn PayloadTranscoder>));
    let (a, b) = (leg(vec![format(Encoding::Pcmu, 0)], A_PEER), leg(vec![format(Encoding::Opus, 111)], B_PEER));
    let mut s = MediaSession::new(a, b, seeds(), factory, Timeouts::default(), Duration::ZERO);
    for i in 0..20u16 {
        let mut packet = s.buffer();
        packet.extend_from_slice(&rtp_packet(0, i, u32::from(i) * 160, 0x1234));
        let received = packet.as_ptr();
        s.handle_rtp(Side::A, addr(A_PEER), packet, ms(u64::from(i) * 20));
        let out = s.poll_transmit().expect("one frame out per frame in");
        assert_eq!(&out.packet[rtp::RTP_HEADER_LEN..], &[0x55; 160][..], "the payload went through the transcoder");
        s.recycle(out.packet);
        assert_eq!(handed_back.load(std::sync::atomic::Ordering::Relaxed), usize::from(i) + 1, "the frame's buffer went back to the transcoder");
        // The received packet's buffer carried the payload to the transcoder and came back.
        let pooled = [s.buffer(), s.buffer()];
        assert!(pooled.iter().any(|b| b.as_ptr() == received), "the received buffer is in the pool again");
        pooled.into_iter().for_each(|b| s.recycle(b));
    }
}

#[test]
fn switching_into_and_out_of_transcoding_keeps_one_stream() {
    let mut s = session(leg(vec![format(Encoding::Pcmu, 0)], A_PEER), leg(vec![format(Encoding::Pcmu, 0), format(Encoding::G722, 9)], B_PEER));
    let mut stamps = Vec::new();
    let send = |s: &mut MediaSession, pt: u8, seq: u16, at: u64| {
        s.handle_rtp(Side::A, addr(A_PEER), rtp_packet(pt, seq, u32::from(seq) * 160, 0x1234), ms(at));
        std::iter::from_fn(|| s.poll_transmit()).map(|t| parse(&t.packet)).collect::<Vec<_>>()
    };
    stamps.extend(send(&mut s, 0, 1, 0));
    // Re-INVITE: A now sends G.729-less... say Opus, which B lacks: transcode to B's PCMU.
    s.update_leg(Side::A, leg(vec![format(Encoding::Opus, 111)], A_PEER), Duration::ZERO);
    stamps.extend(send(&mut s, 111, 2, 20));
    stamps.extend(send(&mut s, 111, 3, 40));
    // And back to a shared codec: passthrough again.
    s.update_leg(Side::A, leg(vec![format(Encoding::Pcmu, 0)], A_PEER), Duration::ZERO);
    stamps.extend(send(&mut s, 0, 4, 60));
    let sequences: Vec<u16> = stamps.iter().map(|h| h.sequence).collect();
    assert_eq!(sequences, vec![200, 201, 202, 203]);
    assert!(stamps.iter().all(|h| h.ssrc == 0xB));
    let deltas: Vec<u32> = stamps.windows(2).map(|w| w[1].timestamp.wrapping_sub(w[0].timestamp)).collect();
    assert_eq!(deltas, vec![160, 160, 160], "one continuous 8 kHz timeline");
}

fn te_packet(ts: u32, seq: u16, marker: bool, end: bool, duration: u16) -> Vec<u8> {
    let mut packet = vec![0u8; 16];
    let header = rtp::RtpHeader { marker, payload_type: 101, sequence: seq, timestamp: ts, ssrc: 0x1234 };
    let payload = [5u8, if end { 0x80 | 10 } else { 10 }, (duration >> 8) as u8, duration as u8];
    rtp::write_packet(&mut packet, &header, &payload).expect("write");
    packet
}

fn dtmf_legs(b_mode: DtmfMode) -> (LegConfig, LegConfig) {
    let mut a = leg(vec![format(Encoding::Pcmu, 0)], A_PEER);
    a.telephone_event = Some((101, 8_000));
    let mut b = leg(vec![format(Encoding::Opus, 111)], B_PEER);
    b.telephone_event = Some((110, 48_000));
    b.dtmf = b_mode;
    (a, b)
}

#[test]
fn rfc4733_at_8000_is_relayed_at_48000_with_scaled_durations() {
    let (a, b) = dtmf_legs(DtmfMode::Rfc4733);
    let mut s = session(a, b);
    // A 200 ms '5' at 8 kHz: start with marker, growing durations, then three end packets.
    let mut seq = 10;
    for (i, duration) in [160u16, 320, 480, 640, 800, 960, 1120, 1280, 1440].iter().enumerate() {
        s.handle_rtp(Side::A, addr(A_PEER), te_packet(8_000, seq, i == 0, false, *duration), ms(i as u64 * 20));
        seq += 1;
    }
    for copy in 0..3u64 {
        s.handle_rtp(Side::A, addr(A_PEER), te_packet(8_000, seq, false, true, 1_600), ms(180 + copy * 20));
        seq += 1;
    }
    let out: Vec<(rtp::RtpHeader, Vec<u8>)> = std::iter::from_fn(|| s.poll_transmit())
        .map(|t| {
            let view = RtpView::parse(&t.packet).expect("rtp");
            (view.header(), view.payload().to_vec())
        })
        .collect();
    assert_eq!(out.len(), 12, "every packet relayed once, end copies not multiplied");
    assert!(out.iter().all(|(h, _)| h.payload_type == 110 && h.ssrc == 0xB));
    assert!(out.iter().all(|(h, _)| h.timestamp == out[0].0.timestamp), "one event timestamp");
    assert!(out[0].0.marker && out.iter().skip(1).all(|(h, _)| !h.marker));
    let durations: Vec<u16> = out.iter().map(|(_, p)| u16::from_be_bytes([p[2], p[3]])).collect();
    assert_eq!(durations[..9], [960, 1920, 2880, 3840, 4800, 5760, 6720, 7680, 8640]);
    assert_eq!(durations[9..], [9_600, 9_600, 9_600], "200 ms at 48 kHz");
    assert!(out[9..].iter().all(|(_, p)| p[1] & 0x80 != 0), "end bit on the three end copies");
    let sequences: Vec<u16> = out.iter().map(|(h, _)| h.sequence).collect();
    assert!(sequences.windows(2).all(|w| w[1] == w[0].wrapping_add(1)));
    let digits: Vec<MediaEvent> = std::iter::from_fn(|| s.poll_event()).filter(|e| matches!(e, MediaEvent::Digit { .. })).collect();
    assert_eq!(digits, vec![MediaEvent::Digit { from: Side::A, digit: '5', duration_ms: 200 }]);
}

#[test]
fn rfc4733_toward_an_info_leg_becomes_an_info_request() {
    let (a, b) = dtmf_legs(DtmfMode::Info);
    let mut s = session(a, b);
    s.handle_rtp(Side::A, addr(A_PEER), te_packet(8_000, 1, true, false, 160), ms(0));
    for copy in 0..3u64 {
        s.handle_rtp(Side::A, addr(A_PEER), te_packet(8_000, 2 + copy as u16, false, true, 800), ms(100 + copy * 20));
    }
    assert!(s.poll_transmit().is_none(), "no 4733 toward an INFO leg");
    let events: Vec<MediaEvent> = std::iter::from_fn(|| s.poll_event()).collect();
    assert!(events.contains(&MediaEvent::SendInfo { toward: Side::B, digit: '5', duration_ms: 100 }), "{events:?}");
}

#[test]
fn info_digits_are_played_as_rfc4733() {
    let (a, b) = dtmf_legs(DtmfMode::Rfc4733);
    let mut s = session(a, b);
    s.send_dtmf(Side::A, "1#", 100, ms(0)).expect("dtmf");
    let mut packets = Vec::new();
    let mut now = ms(0);
    while let Some(next) = s.poll_timeout().filter(|t| *t < ms(1_000)) {
        now = next.max(now);
        s.handle_timeout(now);
        packets.extend(std::iter::from_fn(|| s.poll_transmit()).map(|t| RtpView::parse(&t.packet).expect("rtp").payload().to_vec()));
        now += Duration::from_millis(1);
    }
    assert!(packets.len() >= 8, "packets: {packets:?}");
    let mut receiver = crate::media::dtmf::DtmfReceiver::new();
    let mut digits = Vec::new();
    for (i, payload) in packets.iter().enumerate() {
        // Receiver timestamps: the first digit's packets share one ts, the second's another.
        let ts = if payload[0] == 1 { 0 } else { 100_000 };
        for event in receiver.on_packet(ts, i == 0, payload, 8_000) {
            if let crate::media::dtmf::DigitEvent::Ended { digit, duration_ms } = event {
                digits.push((digit, duration_ms));
            }
        }
    }
    assert_eq!(digits, vec![('1', 100), ('#', 100)]);
}

#[test]
fn srtp_leg_is_decrypted_and_plain_leg_encrypted() {
    use crate::media::srtp::{SrtpContext, Suite};
    let (key_a, salt_a, key_b, salt_b) = ([1u8; 16], [2u8; 14], [3u8; 16], [4u8; 14]);
    let mut s = session(leg(vec![format(Encoding::Pcmu, 0)], A_PEER), leg(vec![format(Encoding::Pcmu, 0)], B_PEER));
    // Leg A speaks SRTP: it encrypts with key_a, we answer with key_b.
    s.set_srtp(Side::A, SrtpContext::new(Suite::AesCm128HmacSha1_80, &key_b, &salt_b), SrtpContext::new(Suite::AesCm128HmacSha1_80, &key_a, &salt_a));
    let mut phone_a_tx = SrtpContext::new(Suite::AesCm128HmacSha1_80, &key_a, &salt_a);
    let mut phone_a_rx = SrtpContext::new(Suite::AesCm128HmacSha1_80, &key_b, &salt_b);
    let mut packet = rtp_packet(0, 1, 160, 0x1234);
    phone_a_tx.protect_rtp(&mut packet).expect("protect");
    s.handle_rtp(Side::A, addr(A_PEER), packet.clone(), ms(0));
    let to_b = s.poll_transmit().expect("relayed");
    assert_eq!(RtpView::parse(&to_b.packet).expect("plain").payload(), &[0x55; 160], "B gets plain RTP");
    // A tampered copy never passes.
    let mut tampered = packet;
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    s.handle_rtp(Side::A, addr(A_PEER), tampered, ms(20));
    assert!(s.poll_transmit().is_none());
    assert_eq!(s.counters(Side::A).dropped_srtp, 1);
    // B -> A is encrypted for A.
    s.handle_rtp(Side::B, addr(B_PEER), rtp_packet(0, 5, 800, 0x9999), ms(20));
    let mut to_a = s.poll_transmit().expect("relayed").packet;
    assert_eq!(to_a.len(), 172 + 10, "80-bit tag appended");
    phone_a_rx.unprotect_rtp(&mut to_a).expect("A can decrypt");
    assert_eq!(RtpView::parse(&to_a).expect("rtp").payload(), &[0x55; 160]);
}

#[test]
fn quality_figures_and_rtcp_reports() {
    let mut a = leg(vec![format(Encoding::Pcmu, 0)], A_PEER);
    a.rtcp = RtcpMode::SeparatePort;
    let mut s = session(a, leg(vec![format(Encoding::Pcmu, 0)], B_PEER));
    // 100 packets with 5 lost.
    for i in 0..100u16 {
        if i % 20 == 7 {
            continue;
        }
        s.handle_rtp(Side::A, addr(A_PEER), rtp_packet(0, i, u32::from(i) * 160, 0x1234), ms(u64::from(i) * 20));
        s.handle_rtp(Side::B, addr(B_PEER), rtp_packet(0, i, u32::from(i) * 160, 0x4321), ms(u64::from(i) * 20));
    }
    let _ = std::iter::from_fn(|| s.poll_transmit()).count();
    let quality = s.quality(Side::A);
    assert_eq!(quality.codec, "PCMU");
    assert_eq!(quality.lost, 5);
    assert!((quality.loss_percent - 5.0).abs() < 0.2, "{quality:?}");
    assert!(quality.mos.is_some_and(|mos| mos > 3.0 && mos < 4.3), "{quality:?}");
    assert_eq!(quality.sent_packets, 95);
    s.handle_timeout(Duration::from_secs(5));
    let reports: Vec<MediaTransmit> = std::iter::from_fn(|| s.poll_transmit()).collect();
    assert_eq!(reports.len(), 1, "only leg A has RTCP on");
    assert!(reports[0].rtcp && reports[0].to == addr("192.0.2.10:4001"));
    let parsed = crate::media::rtcp::parse_compound(&reports[0].packet).expect("rtcp");
    assert!(matches!(&parsed[0], crate::media::rtcp::RtcpPacket::SenderReport(sr) if sr.ssrc == 0xA && sr.packets == 95 && sr.reports.len() == 1));
}

#[test]
fn transcoded_path_reorders_and_conceals_losses() {
    let mut s = session(leg(vec![format(Encoding::Pcmu, 0)], A_PEER), leg(vec![format(Encoding::Opus, 111)], B_PEER));
    // 1, 3, 2 arrive (reordered), 4 is lost, 5..8 follow.
    for (seq, at) in [(1u16, 0u64), (3, 40), (2, 45), (5, 80), (6, 100), (7, 120), (8, 140)] {
        s.handle_rtp(Side::A, addr(A_PEER), rtp_packet(0, seq, u32::from(seq) * 160, 0x1234), ms(at));
    }
    let payloads: Vec<Vec<u8>> = std::iter::from_fn(|| s.poll_transmit()).map(|t| RtpView::parse(&t.packet).expect("rtp").payload().to_vec()).collect();
    let kinds: Vec<&str> = payloads.iter().map(|p| if p.starts_with(b"PLC") { "plc" } else { "frame" }).collect();
    assert_eq!(kinds, vec!["frame", "frame", "frame", "plc", "frame", "frame", "frame", "frame"], "decoder saw 1,2,3, a concealed 4, then 5..8");
    s.handle_timeout(ms(300));
    assert_eq!(std::iter::from_fn(|| s.poll_transmit()).count(), 0, "nothing was left held");
}

#[test]
fn a_leg_that_received_nothing_has_no_mos() {
    let mut s = session(leg(vec![format(Encoding::Pcmu, 0)], A_PEER), leg(vec![format(Encoding::Pcmu, 0)], B_PEER));
    for i in 0..50u16 {
        s.handle_rtp(Side::A, addr(A_PEER), rtp_packet(0, i, u32::from(i) * 160, 0x1234), ms(u64::from(i) * 20));
        while let Some(t) = s.poll_transmit() {
            s.recycle(t.packet);
        }
    }
    let (heard, deaf) = (s.quality(Side::A), s.quality(Side::B));
    assert!(heard.mos.is_some_and(|mos| mos > 4.0), "{heard:?}");
    assert_eq!((deaf.received_packets, deaf.sent_packets, deaf.mos), (0, 50, None), "0 packets is no figure, not MOS 4.08");
}

mod payload_types;
mod inactivity;
