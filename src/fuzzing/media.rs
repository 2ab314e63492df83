//! RTP and RTCP as the media workers read them, and SRTP/SRTCP unprotect with a fixed key.

use crate::media::dtmf::{DtmfReceiver, DtmfRelay, TelephoneEvent};
use crate::media::rtcp;
use crate::media::rtp::{self, RtpHeader, RtpView};
use crate::media::srtp::{SrtpContext, Suite};

/// One datagram: classified, parsed as RTP (every accessor, re-stamped, re-written and read back)
/// and as RTCP, its payload as a telephone-event.
pub fn rtp_rtcp(data: &[u8]) {
    let _ = (rtp::classify(data), rtp::is_rtcp(data), rtp::looks_like_stun(data), rtp::looks_like_dtls(data));
    let _ = rtcp::parse_compound(data);
    let Ok(view) = RtpView::parse(data) else { return };
    let header = view.header();
    let _ = (view.extension(), view.padding_len(), view.has_extension());
    for index in 0..=usize::from(view.csrc_count()) {
        let _ = view.csrc(index);
    }
    let payload = view.payload();
    assert!(view.header_len() + payload.len() <= data.len(), "RTP payload runs past the packet");

    let mut restamped = data.to_vec();
    if rtp::rewrite_in_place(&mut restamped, 0x1234_5678, header.sequence.wrapping_add(1), header.timestamp, 0).is_ok() {
        let again = RtpView::parse(&restamped).expect("a re-stamped packet parses"); // ok: fuzz harness, never reached from the network; a panic here is the fuzzer's finding
        assert_eq!(again.payload(), payload, "re-stamping changed the payload");
    }

    let mut out = vec![0u8; rtp::RTP_HEADER_LEN + payload.len()];
    let minimal = RtpHeader { payload_type: header.payload_type & 0x3f, ..header };
    if let Ok(len) = rtp::write_packet(&mut out, &minimal, payload) {
        let written = RtpView::parse(&out[..len]).expect("a written packet parses"); // ok: fuzz harness, never reached from the network; a panic here is the fuzzer's finding
        assert_eq!(written.header(), minimal, "a written header reads back differently");
    }

    let _ = TelephoneEvent::parse(payload);
    let mut receiver = DtmfReceiver::new();
    let mut relay = DtmfRelay::new(48_000, header.timestamp, 7);
    for (step, rate) in [(0u32, 8_000), (160, 8_000), (320, 48_000), (0, 0)] {
        let timestamp = header.timestamp.wrapping_add(step);
        let _ = receiver.on_packet(timestamp, header.marker, payload, rate);
        let _ = relay.relay(timestamp, header.marker, payload, rate);
    }
}

const KEY: [u8; 16] = *b"fuzz-master-key!";
const SALT: [u8; 14] = *b"fuzz-mastersal";

/// Unprotect with a fixed key, as the receiving side of an SDES call. The first byte chooses:
/// the rest unprotected as it is (bit 0: SRTCP instead of SRTP), or (bit 1) protected first with
/// the same key and then unprotected, with one byte flipped when bit 2 is set, so the decrypt and
/// replay paths are reached, not only the tag check. Bit 3 picks the 32-bit tag suite.
pub fn srtp_unprotect(data: &[u8]) {
    let Some((&mode, packet)) = data.split_first() else { return };
    let suite = if mode & 8 == 0 { Suite::AesCm128HmacSha1_80 } else { Suite::AesCm128HmacSha1_32 };
    let rtcp = mode & 1 != 0;
    let mut receiver = SrtpContext::new(suite, &KEY, &SALT);
    let unprotect = |context: &mut SrtpContext, buffer: &mut Vec<u8>| if rtcp { context.unprotect_rtcp(buffer) } else { context.unprotect_rtp(buffer) };
    if mode & 2 == 0 {
        let mut buffer = packet.to_vec();
        let _ = unprotect(&mut receiver, &mut buffer);
        return;
    }
    let mut sender = SrtpContext::new(suite, &KEY, &SALT);
    let mut buffer = packet.to_vec();
    let protected = if rtcp { sender.protect_rtcp(&mut buffer) } else { sender.protect_rtp(&mut buffer) };
    if protected.is_err() {
        assert_eq!(buffer, packet, "a failed protect changed the packet");
        return;
    }
    let flip = mode & 4 != 0 && !buffer.is_empty();
    if flip {
        let at = usize::from(mode >> 4) * buffer.len() / 16;
        buffer[at] ^= 0x01;
    }
    let result = unprotect(&mut receiver, &mut buffer);
    if !flip {
        result.unwrap_or_else(|e| panic!("our own protected packet fails to unprotect: {e}"));
        assert_eq!(buffer, packet, "unprotect(protect(p)) != p");
        // The same packet again is a replay.
        let mut protected_again = packet.to_vec();
        let _ = if rtcp { SrtpContext::new(suite, &KEY, &SALT).protect_rtcp(&mut protected_again) } else { SrtpContext::new(suite, &KEY, &SALT).protect_rtp(&mut protected_again) };
        assert!(unprotect(&mut receiver, &mut protected_again).is_err(), "a replayed packet was accepted");
    }
}
