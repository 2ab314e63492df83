use super::*;

fn header(pt: u8, marker: bool) -> RtpHeader {
    RtpHeader {
        marker,
        payload_type: pt,
        sequence: 0xfffe,
        timestamp: 0x1234_5678,
        ssrc: 0xdead_beef,
    }
}

/// V=2, P=1, X=1, CC=2, two CSRCs, a 2-word one-byte-header extension, 5 payload bytes of 0xff
/// (larger than any remainder, so a truncated copy cannot pass as padding), 3 padding bytes.
fn full_packet() -> Vec<u8> {
    let mut p = vec![
        0xb2,
        0x80 | 96,
        0x01,
        0x02,
        0,
        0,
        0x10,
        0x00,
        0x11,
        0x22,
        0x33,
        0x44,
    ];
    p.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2]);
    p.extend_from_slice(&[0xbe, 0xde, 0x00, 0x02, 0x10, 0xaa, 0, 0, 0x21, 1, 2, 0]);
    p.extend_from_slice(&[0xff; 5]);
    p.extend_from_slice(&[0, 0, 3]);
    p
}

#[test]
fn write_then_parse_round_trip() {
    let payload = [1u8, 2, 3, 4, 5, 6, 7];
    for (pt, marker) in [
        (0, false),
        (8, true),
        (96, false),
        (127, true),
        (71, false),
        (77, true),
    ] {
        let h = header(pt, marker);
        let mut buf = [0u8; 64];
        let n = write_packet(&mut buf, &h, &payload).unwrap();
        assert_eq!(n, 12 + payload.len());
        let v = RtpView::parse(&buf[..n]).unwrap();
        assert_eq!(v.header(), h);
        assert_eq!(v.payload(), payload);
        assert_eq!(v.header_len(), 12);
        assert!(!v.has_extension());
        assert_eq!(v.csrc_count(), 0);
        assert_eq!(v.padding_len(), 0);
    }
}

#[test]
fn parse_then_write_is_byte_identical_for_minimal_packets() {
    let wire = [
        0x80, 0x88, 0x00, 0x07, 0, 0, 0x03, 0x20, 1, 2, 3, 4, 0xd5, 0xd5,
    ];
    let v = RtpView::parse(&wire).unwrap();
    let mut out = [0u8; 14];
    assert_eq!(write_packet(&mut out, &v.header(), v.payload()), Ok(14));
    assert_eq!(out, wire);
}

#[test]
fn csrc_extension_and_padding() {
    let p = full_packet();
    let v = RtpView::parse(&p).unwrap();
    let h = v.header();
    assert!(h.marker);
    assert_eq!(
        (h.payload_type, h.sequence, h.timestamp, h.ssrc),
        (96, 0x0102, 0x1000, 0x1122_3344)
    );
    assert_eq!(v.csrc_count(), 2);
    assert_eq!((v.csrc(0), v.csrc(1), v.csrc(2)), (Some(1), Some(2), None));
    assert!(v.has_extension());
    assert_eq!(
        v.extension(),
        Some((0xbede, &[0x10, 0xaa, 0, 0, 0x21, 1, 2, 0][..]))
    );
    assert_eq!(v.header_len(), 12 + 8 + 4 + 8);
    assert_eq!(v.payload(), [0xff; 5]);
    assert_eq!(v.padding_len(), 3);
}

#[test]
fn every_truncation_of_a_padded_packet_is_an_error() {
    let p = full_packet();
    for len in 0..p.len() {
        assert!(
            RtpView::parse(&p[..len]).is_err(),
            "prefix of {len} bytes parsed"
        );
    }
}

/// RTP carries no length field, so a prefix that keeps the whole header is a well-formed shorter
/// packet; what must hold is that no cut inside the header passes and none panics.
#[test]
fn truncation_without_padding_only_shortens_the_payload() {
    let mut p = full_packet();
    p[0] &= !0x20;
    p.truncate(p.len() - 3);
    let full = RtpView::parse(&p).unwrap();
    for len in 0..p.len() {
        match RtpView::parse(&p[..len]) {
            Ok(v) => {
                assert!(len >= full.header_len());
                assert_eq!(v.payload(), &full.payload()[..len - full.header_len()]);
            }
            Err(e) => {
                assert!(len < full.header_len(), "prefix {len}: {e}");
                assert_eq!(e, RtpError::Truncated);
            }
        }
    }
}

#[test]
fn malformed_headers() {
    assert_eq!(RtpView::parse(&[]).unwrap_err(), RtpError::Truncated);
    assert_eq!(
        RtpView::parse(&[0x40; 12]).unwrap_err(),
        RtpError::BadVersion(1)
    );
    let mut p = [0u8; 16];
    p[0] = 0xa0;
    p[15] = 0;
    assert_eq!(RtpView::parse(&p).unwrap_err(), RtpError::BadPadding);
    p[15] = 5;
    assert_eq!(RtpView::parse(&p).unwrap_err(), RtpError::BadPadding);
    p[15] = 4;
    assert_eq!(RtpView::parse(&p).unwrap().payload(), &[] as &[u8]);
    // Extension header present but its length points past the end.
    let mut x = vec![
        0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xbe, 0xde, 0, 3, 0, 0, 0, 0,
    ];
    assert_eq!(RtpView::parse(&x).unwrap_err(), RtpError::Truncated);
    x.extend_from_slice(&[0; 8]);
    assert!(RtpView::parse(&x).is_ok());
}

#[test]
fn rtcp_payload_types_are_reported_for_rerouting() {
    for pt in 72..=76u8 {
        let mut p = [0u8; 12];
        p[0] = 0x80;
        p[1] = 0x80 | pt;
        assert_eq!(
            RtpView::parse(&p).unwrap_err(),
            RtpError::RtcpPayloadType(pt)
        );
        // An empty RR is only 8 bytes and must still be recognised as RTCP.
        assert_eq!(
            RtpView::parse(&p[..8]).unwrap_err(),
            RtpError::RtcpPayloadType(pt)
        );
    }
    let mut buf = [0u8; 32];
    assert_eq!(
        write_packet(&mut buf, &header(72, false), &[]),
        Err(RtpError::InvalidPayloadType(72))
    );
    assert_eq!(
        write_packet(&mut buf, &header(128, false), &[]),
        Err(RtpError::InvalidPayloadType(128))
    );
}

#[test]
fn write_into_small_buffer_fails() {
    let mut buf = [0u8; 15];
    assert_eq!(
        write_packet(&mut buf, &header(0, false), &[0; 4]),
        Err(RtpError::BufferTooSmall)
    );
    assert_eq!(
        write_packet(&mut buf[..11], &header(0, false), &[]),
        Err(RtpError::BufferTooSmall)
    );
    assert_eq!(write_packet(&mut buf, &header(0, false), &[0; 3]), Ok(15));
}

#[test]
fn rewrite_keeps_marker_csrc_extension_and_padding() {
    let mut p = full_packet();
    let before = p.clone();
    rewrite_in_place(&mut p, 0xcafe_f00d, 65535, 0xffff_ffff, 0).unwrap();
    let v = RtpView::parse(&p).unwrap();
    let h = v.header();
    assert_eq!(
        (h.ssrc, h.sequence, h.timestamp, h.payload_type),
        (0xcafe_f00d, 65535, u32::MAX, 0)
    );
    assert!(h.marker);
    assert_eq!(p[0], before[0]);
    assert_eq!(p[12..], before[12..]);

    p[1] &= 0x7f;
    rewrite_in_place(&mut p, 1, 2, 3, 111).unwrap();
    let h = RtpView::parse(&p).unwrap().header();
    assert!(!h.marker);
    assert_eq!(h.payload_type, 111);
}

#[test]
fn rewrite_rejects_invalid_input_and_leaves_it_untouched() {
    let mut short = [0x80u8, 0, 0, 0, 0];
    assert_eq!(
        rewrite_in_place(&mut short, 1, 1, 1, 0),
        Err(RtpError::Truncated)
    );
    assert_eq!(short, [0x80, 0, 0, 0, 0]);
    let mut p = full_packet();
    let before = p.clone();
    assert_eq!(
        rewrite_in_place(&mut p, 1, 1, 1, 200),
        Err(RtpError::InvalidPayloadType(200))
    );
    assert_eq!(
        rewrite_in_place(&mut p, 1, 1, 1, 74),
        Err(RtpError::InvalidPayloadType(74))
    );
    assert_eq!(p, before);
}

#[test]
fn sequence_and_timestamp_arithmetic_wraps() {
    assert_eq!(seq_diff(0, 65535), 1);
    assert_eq!(seq_diff(65535, 0), -1);
    assert_eq!(seq_diff(5, 65530), 11);
    assert_eq!(seq_diff(100, 100), 0);
    assert_eq!(seq_diff(32767, 0), 32767);
    assert_eq!(seq_diff(32768, 0), -32768);
    assert_eq!(ts_diff(10, u32::MAX - 9), 20);
    assert_eq!(ts_diff(u32::MAX - 9, 10), -20);
    assert_eq!(ts_diff(0x8000_0000, 0), i64::from(i32::MIN));
}

#[test]
fn rfc7983_demux() {
    let cases: [(u8, PacketKind); 10] = [
        (0, PacketKind::Stun),
        (1, PacketKind::Stun),
        (3, PacketKind::Stun),
        (4, PacketKind::Unknown),
        (19, PacketKind::Unknown),
        (20, PacketKind::Dtls),
        (22, PacketKind::Dtls),
        (63, PacketKind::Dtls),
        (64, PacketKind::Unknown),
        (192, PacketKind::Unknown),
    ];
    for (first, kind) in cases {
        assert_eq!(classify(&[first, 0, 0, 0]), kind, "first byte {first}");
    }
    assert_eq!(classify(&[]), PacketKind::Unknown);
    assert_eq!(classify(&[0x80, 0]), PacketKind::Rtp);
    assert_eq!(classify(&[0x80, 0xe0]), PacketKind::Rtp);
    for second in 192..=223u8 {
        assert!(is_rtcp(&[0x81, second]));
        assert_eq!(classify(&[0x81, second]), PacketKind::Rtcp);
    }
    assert!(!is_rtcp(&[0x80, 191]));
    assert!(!is_rtcp(&[0x80]));
    assert!(looks_like_rtp_or_rtcp(&[191]) && !looks_like_rtp_or_rtcp(&[127]));
}

#[test]
fn garbage_never_panics() {
    let mut state = 0x1234_5678u32;
    let mut buf = [0u8; 80];
    for _ in 0..20_000 {
        for b in buf.iter_mut() {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            *b = state as u8;
        }
        buf[0] = 0x80 | (buf[0] & 0x3f);
        let len = (state as usize) % buf.len();
        let _ = RtpView::parse(&buf[..len]).map(|v| (v.payload().len(), v.extension(), v.csrc(3)));
        let _ = rewrite_in_place(&mut buf[..len], 1, 2, 3, 0);
    }
}
