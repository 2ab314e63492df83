use super::*;

fn block(ssrc: u32, cumulative_lost: i32) -> ReportBlock {
    ReportBlock {
        ssrc,
        fraction_lost: 25,
        cumulative_lost,
        highest_seq: 0x0001_0010,
        jitter: 42,
        lsr: 0xb705_2000,
        dlsr: 0x0005_4000,
    }
}

fn sample_sr() -> SenderReport {
    SenderReport {
        ssrc: 0x1122_3344,
        ntp: 0xe000_0001_8000_0000,
        rtp_ts: 160_000,
        packets: 1000,
        octets: 160_000,
        reports: vec![block(0xaaaa_aaaa, 7)],
    }
}

#[test]
fn sender_report_with_sdes_round_trip() {
    let sr = sample_sr();
    let mut out = Vec::new();
    write_sender_report(&mut out, &sr, "user@host");
    assert_eq!(out.len() % 4, 0);
    assert_eq!(out[0], 0x81);
    assert_eq!(out[1], PT_SR);
    assert_eq!(u16::from_be_bytes([out[2], out[3]]), 12);
    let parsed = parse_compound(&out).unwrap();
    assert_eq!(
        parsed,
        vec![
            RtcpPacket::SenderReport(sr),
            RtcpPacket::Sdes(vec![SdesChunk {
                ssrc: 0x1122_3344,
                cname: Some("user@host".into())
            }]),
        ]
    );
}

#[test]
fn receiver_report_with_several_blocks() {
    let rr = ReceiverReport {
        ssrc: 9,
        reports: (0..5).map(|i| block(100 + i, i as i32 * 3)).collect(),
    };
    let mut out = Vec::new();
    write_receiver_report(&mut out, &rr, "x");
    let parsed = parse_compound(&out).unwrap();
    assert_eq!(parsed.len(), 2);
    assert_eq!(parsed[0], RtcpPacket::ReceiverReport(rr));

    let empty = ReceiverReport {
        ssrc: 9,
        reports: vec![],
    };
    out.clear();
    write_receiver_report(&mut out, &empty, "");
    assert_eq!(&out[..8], &[0x80, PT_RR, 0, 1, 0, 0, 0, 9]);
    assert_eq!(
        parse_compound(&out).unwrap()[0],
        RtcpPacket::ReceiverReport(empty)
    );
}

#[test]
fn report_count_is_capped_at_31() {
    let rr = ReceiverReport {
        ssrc: 1,
        reports: (0..40).map(|i| block(i, 0)).collect(),
    };
    let mut out = Vec::new();
    write_receiver_report(&mut out, &rr, "c");
    match &parse_compound(&out).unwrap()[0] {
        RtcpPacket::ReceiverReport(parsed) => assert_eq!(parsed.reports, rr.reports[..31]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn bye_with_and_without_reason() {
    let mut out = Vec::new();
    write_receiver_report(
        &mut out,
        &ReceiverReport {
            ssrc: 1,
            reports: vec![],
        },
        "c",
    );
    write_bye(&mut out, &[1, 2], Some("session ended"));
    write_bye(&mut out, &[3], None);
    assert_eq!(out.len() % 4, 0);
    let parsed = parse_compound(&out).unwrap();
    assert_eq!(
        parsed[2],
        RtcpPacket::Bye(Bye {
            ssrcs: vec![1, 2],
            reason: Some("session ended".into())
        })
    );
    assert_eq!(
        parsed[3],
        RtcpPacket::Bye(Bye {
            ssrcs: vec![3],
            reason: None
        })
    );
}

#[test]
fn long_text_is_cut_at_a_char_boundary() {
    let name = "é".repeat(200);
    let mut out = Vec::new();
    write_bye(&mut out, &[1], Some(&name));
    match &parse_compound(&out).unwrap()[0] {
        RtcpPacket::Bye(bye) => assert_eq!(bye.reason.as_deref(), Some("é".repeat(127).as_str())),
        other => panic!("{other:?}"),
    }
}

#[test]
fn cumulative_lost_is_24_bit_signed() {
    let cases = [
        (0, 0),
        (-1, -1),
        (5, 5),
        (-5, -5),
        (0x7f_ffff, 0x7f_ffff),
        (-0x80_0000, -0x80_0000),
    ];
    let clamped = [(0x100_0000, 0x7f_ffff), (i32::MIN, -0x80_0000)];
    for (written, read) in cases.into_iter().chain(clamped) {
        let rr = ReceiverReport {
            ssrc: 1,
            reports: vec![block(2, written)],
        };
        let mut out = Vec::new();
        write_receiver_report(&mut out, &rr, "c");
        match &parse_compound(&out).unwrap()[0] {
            RtcpPacket::ReceiverReport(p) => {
                assert_eq!(p.reports[0].cumulative_lost, read, "wrote {written}");
                assert_eq!(p.reports[0].fraction_lost, 25);
            }
            other => panic!("{other:?}"),
        }
    }
    // Wire bytes 0xFFFFFE in the lost field are -2.
    let wire = [
        0x81, PT_RR, 0, 7, 0, 0, 0, 1, 0, 0, 0, 2, 0x10, 0xff, 0xff, 0xfe, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0,
    ];
    match &parse_compound(&wire).unwrap()[0] {
        RtcpPacket::ReceiverReport(p) => assert_eq!(
            (p.reports[0].fraction_lost, p.reports[0].cumulative_lost),
            (0x10, -2)
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn sdes_keeps_cname_and_skips_other_items() {
    // Two chunks: NAME then CNAME, and one with no items at all.
    let mut body = vec![
        0, 0, 0, 5, 2, 3, b'B', b'o', b'b', 1, 2, b'h', b'i', 0, 0, 0,
    ];
    body.extend_from_slice(&[0, 0, 0, 6, 0, 0, 0, 0]);
    let mut pkt = vec![0x82, PT_SDES, 0, (body.len() / 4) as u8];
    pkt.extend_from_slice(&body);
    assert_eq!(
        parse_compound(&pkt).unwrap(),
        vec![RtcpPacket::Sdes(vec![
            SdesChunk {
                ssrc: 5,
                cname: Some("hi".into())
            },
            SdesChunk {
                ssrc: 6,
                cname: None
            },
        ])]
    );
}

#[test]
fn feedback_and_app_packets_are_skipped_by_length() {
    let mut out = vec![0x81, 205, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2];
    out.extend_from_slice(&[0x80, 204, 0, 2, 0, 0, 0, 1, b'n', b'a', b'm', b'e']);
    write_bye(&mut out, &[1], None);
    let parsed = parse_compound(&out).unwrap();
    assert_eq!(parsed[0], RtcpPacket::Other { packet_type: 205 });
    assert_eq!(parsed[1], RtcpPacket::Other { packet_type: 204 });
    assert!(matches!(parsed[2], RtcpPacket::Bye(_)));
}

#[test]
fn padding_is_removed_and_validated() {
    // BYE, one SSRC, 4 bytes of padding (count 4) counted in the length.
    let mut pkt = vec![0xa1, PT_BYE, 0, 2, 0, 0, 0, 9, 0, 0, 0, 4];
    assert_eq!(
        parse_compound(&pkt).unwrap(),
        vec![RtcpPacket::Bye(Bye {
            ssrcs: vec![9],
            reason: None
        })]
    );
    pkt[11] = 0;
    assert_eq!(parse_compound(&pkt), Err(RtcpError::BadPadding));
    pkt[11] = 9;
    assert_eq!(parse_compound(&pkt), Err(RtcpError::BadPadding));
    // Padding that eats into the SSRC list leaves the BYE short.
    pkt[11] = 5;
    assert_eq!(parse_compound(&pkt), Err(RtcpError::BadLength));
}

#[test]
fn inconsistent_lengths_are_errors() {
    assert_eq!(parse_compound(&[]), Err(RtcpError::Truncated));
    assert_eq!(
        parse_compound(&[0x40, 201, 0, 1, 0, 0, 0, 0]),
        Err(RtcpError::BadVersion(1))
    );
    // RC says 1 block but the length covers only the SSRC.
    assert_eq!(
        parse_compound(&[0x81, 201, 0, 1, 0, 0, 0, 1]),
        Err(RtcpError::BadLength)
    );
    // Length claims more than the datagram holds.
    assert_eq!(
        parse_compound(&[0x80, 201, 0, 2, 0, 0, 0, 1]),
        Err(RtcpError::Truncated)
    );
    // Trailing bytes that cannot hold a header.
    assert_eq!(
        parse_compound(&[0x80, 201, 0, 1, 0, 0, 0, 1, 0x80]),
        Err(RtcpError::Truncated)
    );
    // BYE reason length past the end.
    assert_eq!(
        parse_compound(&[0x81, 203, 0, 2, 0, 0, 0, 1, 9, b'a', b'b', b'c']),
        Err(RtcpError::BadLength)
    );
}

#[test]
fn every_truncation_is_an_error() {
    let mut out = Vec::new();
    let mut sr = sample_sr();
    sr.reports.push(block(3, -3));
    write_sender_report(&mut out, &sr, "someone@example.org");
    write_bye(&mut out, &[sr.ssrc], Some("bye"));
    assert!(parse_compound(&out).is_ok());
    for len in 0..out.len() {
        let prefix = &out[..len];
        if len % 4 == 0 && len > 0 && parse_compound(prefix).is_ok() {
            // Cutting exactly between two packets leaves a shorter valid compound.
            let boundaries = packet_boundaries(&out);
            assert!(boundaries.contains(&len), "prefix {len} parsed");
            continue;
        }
        assert!(parse_compound(prefix).is_err(), "prefix {len} parsed");
    }
}

fn packet_boundaries(data: &[u8]) -> Vec<usize> {
    let mut at = 0;
    let mut ends = Vec::new();
    while at + 4 <= data.len() {
        at += (usize::from(u16::from_be_bytes([data[at + 2], data[at + 3]])) + 1) * 4;
        ends.push(at);
    }
    ends
}

#[test]
fn garbage_never_panics() {
    let mut state = 0x9e37_79b9u32;
    let mut buf = [0u8; 96];
    for round in 0..50_000 {
        for b in buf.iter_mut() {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            *b = state as u8;
        }
        // Keep the version valid most of the time so the deeper parsers get exercised too.
        if round % 4 != 0 {
            buf[0] = 0x80 | (buf[0] & 0x3f);
            buf[1] = 200 + (buf[1] % 8);
            buf[2] = 0;
            buf[3] %= 24;
        }
        let len = (state as usize) % buf.len();
        let _ = parse_compound(&buf[..len]);
    }
}

#[test]
fn ntp_conversion() {
    assert_eq!(ntp_from_unix(Duration::ZERO), 2_208_988_800u64 << 32);
    let t = Duration::new(1_000_000_000, 500_000_000);
    let ntp = ntp_from_unix(t);
    assert_eq!(ntp >> 32, 1_000_000_000 + 2_208_988_800);
    assert_eq!(ntp & 0xffff_ffff, 0x8000_0000);
    assert_eq!(ntp_middle_32(0x1234_b710_8000_5678), 0xb710_8000);
    // 2036-02-07T06:28:16Z is NTP era 1 second 0.
    assert_eq!(
        ntp_from_unix(Duration::from_secs((1u64 << 32) - 2_208_988_800)) >> 32,
        0
    );
}

#[test]
fn appending_after_unaligned_bytes_still_frames_correctly() {
    let mut out = vec![0xaa; 3];
    write_receiver_report(
        &mut out,
        &ReceiverReport {
            ssrc: 4,
            reports: vec![],
        },
        "abc",
    );
    write_bye(&mut out, &[4], Some("x"));
    assert_eq!((out.len() - 3) % 4, 0);
    assert_eq!(parse_compound(&out[3..]).unwrap().len(), 3);
}
