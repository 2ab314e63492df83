use super::*;

const PCMU_RATE: u32 = 8000;

/// Feeds `seqs` as a 20 ms PCMU stream: timestamp and arrival follow the sequence number, so
/// the jitter stays zero unless a test says otherwise.
fn feed(stats: &mut ReceiveStats, seqs: impl IntoIterator<Item = u16>) {
    for seq in seqs {
        let n = u32::from(seq);
        stats.on_packet(
            seq,
            n * 160,
            Duration::from_millis(u64::from(n) * 20),
            PCMU_RATE,
            160,
        );
    }
}

#[test]
fn in_order_stream_has_no_loss_and_no_jitter() {
    let mut s = ReceiveStats::new();
    feed(&mut s, 1000..1500);
    // A.1 probation: the first packet only arms the source, counting starts at the second.
    assert_eq!(s.packets(), 500);
    assert_eq!(s.bytes(), 500 * 160);
    assert_eq!(s.expected(), 499);
    assert_eq!(s.received(), 499);
    assert_eq!(s.lost(), 0);
    assert_eq!(s.longest_loss_burst(), 0);
    assert_eq!(s.jitter(), 0);
    assert_eq!(s.jitter_ms(), 0.0);
    assert_eq!(s.extended_highest_seq(), Some(1499));
    let rb = s.report_block(7, None, Duration::from_secs(10));
    assert_eq!(
        (
            rb.ssrc,
            rb.fraction_lost,
            rb.cumulative_lost,
            rb.highest_seq
        ),
        (7, 0, 0, 1499)
    );
    assert_eq!((rb.lsr, rb.dlsr), (0, 0));
}

#[test]
fn nothing_valid_before_probation_ends() {
    let mut s = ReceiveStats::new();
    assert_eq!(s.extended_highest_seq(), None);
    feed(&mut s, [5]);
    assert_eq!((s.expected(), s.received(), s.lost()), (0, 0, 0));
    assert_eq!(
        s.report_block(1, None, Duration::ZERO),
        ReportBlock {
            ssrc: 1,
            ..ReportBlock::default()
        }
    );
    // Out-of-order during probation restarts it instead of counting anything.
    feed(&mut s, [9, 11, 12]);
    assert_eq!(s.extended_highest_seq(), Some(12));
    assert_eq!(s.expected(), 1);
}

#[test]
fn dropping_every_tenth_packet_is_ten_percent() {
    let mut s = ReceiveStats::new();
    feed(&mut s, (0..=1000).filter(|i| i % 10 != 9));
    assert_eq!(s.expected(), 1000);
    assert_eq!(s.lost(), 100);
    assert!((s.loss_percent() - 10.0).abs() < 1e-9);
    assert_eq!(s.longest_loss_burst(), 1);
    let rb = s.report_block(1, None, Duration::ZERO);
    assert_eq!(rb.fraction_lost, 25, "floor(256 * 100 / 1000)");
    assert_eq!(rb.cumulative_lost, 100);

    // The next interval is clean: fraction resets, the cumulative count does not.
    feed(&mut s, 1001..1100);
    let rb = s.report_block(1, None, Duration::ZERO);
    assert_eq!((rb.fraction_lost, rb.cumulative_lost), (0, 100));
}

#[test]
fn burst_of_five() {
    let mut s = ReceiveStats::new();
    feed(&mut s, (0..100).filter(|i| !(50..55).contains(i)));
    assert_eq!(s.lost(), 5);
    assert_eq!(
        s.longest_loss_burst(),
        5,
        "while the gap is still inside the window"
    );
    feed(&mut s, 100..600);
    assert_eq!(s.longest_loss_burst(), 5, "after it has been finalised");
    feed(&mut s, (600..700).filter(|i| i % 2 == 0));
    assert_eq!(s.longest_loss_burst(), 5);
}

#[test]
fn a_late_packet_splits_a_burst() {
    let mut s = ReceiveStats::new();
    feed(&mut s, (0..60).filter(|i| !(50..55).contains(i)));
    feed(&mut s, [52]);
    feed(&mut s, 60..400);
    assert_eq!(s.lost(), 4);
    assert_eq!(s.longest_loss_burst(), 2);
}

#[test]
fn a_gap_wider_than_the_window_is_one_burst() {
    let mut s = ReceiveStats::new();
    feed(&mut s, (0..2000).filter(|i| !(100..1100).contains(i)));
    assert_eq!(s.lost(), 1000);
    assert_eq!(s.longest_loss_burst(), 1000);
}

#[test]
fn reordering_and_duplicates_are_not_loss() {
    let mut s = ReceiveStats::new();
    feed(
        &mut s,
        [10, 11, 12, 14, 13, 15, 15, 16, 18, 17, 17, 19, 12, 9],
    );
    assert_eq!(s.expected(), 9, "11..=19");
    assert_eq!(s.received(), 9);
    assert_eq!(s.lost(), 0);
    assert_eq!(s.duplicates(), 4, "15, 17, 12 and 9 (before the base)");
    assert_eq!(s.longest_loss_burst(), 0);
    assert_eq!(s.report_block(1, None, Duration::ZERO).fraction_lost, 0);

    // A duplicate must not hide a real loss, as plain A.1 counting would.
    let mut s = ReceiveStats::new();
    feed(&mut s, [0, 1, 2, 4, 4, 5]);
    assert_eq!((s.lost(), s.duplicates()), (1, 1));
}

#[test]
fn wraparound_at_65535() {
    let mut s = ReceiveStats::new();
    feed(&mut s, (0..20u16).map(|i| 65530u16.wrapping_add(i)));
    assert_eq!(s.extended_highest_seq(), Some(65536 + 13));
    assert_eq!(s.expected(), 19);
    assert_eq!(s.lost(), 0);

    let mut s = ReceiveStats::new();
    feed(&mut s, [65532, 65533, 65534, 1, 2, 0, 3]);
    assert_eq!(s.lost(), 1, "65535 missing, 0 arrived late across the wrap");
    assert_eq!(s.longest_loss_burst(), 1);
    assert_eq!(s.extended_highest_seq(), Some(65536 + 3));
}

#[test]
fn a_lone_jump_is_ignored_and_a_confirmed_one_restarts() {
    let mut s = ReceiveStats::new();
    feed(&mut s, 0..100);
    feed(&mut s, [40_000]);
    feed(&mut s, 100..110);
    assert_eq!((s.expected(), s.lost()), (109, 0));
    assert_eq!(s.extended_highest_seq(), Some(109));

    feed(&mut s, [50_000, 50_001, 50_002]);
    assert_eq!(s.extended_highest_seq(), Some(50_002));
    assert_eq!((s.expected(), s.received(), s.lost()), (2, 2, 0));
}

#[test]
fn constant_spacing_has_zero_jitter_even_with_an_offset() {
    let mut s = ReceiveStats::new();
    for i in 0..200u16 {
        let arrival = Duration::from_millis(3_000 + u64::from(i) * 20);
        s.on_packet(i, 0x1234_0000 + u32::from(i) * 160, arrival, PCMU_RATE, 160);
    }
    assert_eq!(s.jitter(), 0);
}

/// Arrival spacing alternating 15 ms and 25 ms against a 20 ms timestamp step: every transit
/// difference |D| is 5 ms = 40 ticks at 8 kHz, so A.8 gives J_n = 40 (1 - (15/16)^n) after n
/// updates, tending to 40 ticks = 5 ms. The first packet is probation and the second only
/// seeds the transit, so packet k (k >= 2) makes update n = k - 1.
#[test]
fn alternating_spacing_jitter_follows_the_closed_form() {
    let mut s = ReceiveStats::new();
    let mut arrival = Duration::from_millis(100);
    for k in 0..300u16 {
        s.on_packet(k, u32::from(k) * 160, arrival, PCMU_RATE, 160);
        arrival += Duration::from_millis(if k % 2 == 0 { 15 } else { 25 });
        if k >= 2 {
            let n = i32::from(k) - 1;
            let expected_ticks = 40.0 * (1.0 - (15.0f64 / 16.0).powi(n));
            assert!(
                (s.jitter_ms() - expected_ticks / 8.0).abs() < 1e-9,
                "packet {k}"
            );
        }
    }
    assert!((s.jitter_ms() - 5.0).abs() < 1e-6);
    assert_eq!(s.jitter(), 40);
}

#[test]
fn jitter_is_in_the_stream_clock() {
    let mut s = ReceiveStats::new();
    let mut arrival = Duration::ZERO;
    for k in 0..400u16 {
        s.on_packet(k, u32::from(k) * 960, arrival, 48_000, 80);
        arrival += Duration::from_millis(if k % 2 == 0 { 15 } else { 25 });
    }
    assert!((s.jitter_ms() - 5.0).abs() < 1e-6);
    assert_eq!(s.jitter(), 240, "5 ms at 48 kHz");
}

#[test]
fn dlsr_is_time_since_the_last_sr() {
    let mut s = ReceiveStats::new();
    feed(&mut s, 0..10);
    let last_sr = Some((0xb705_2000, Duration::from_secs(1)));
    let rb = s.report_block(1, last_sr, Duration::from_millis(6_250));
    assert_eq!((rb.lsr, rb.dlsr), (0xb705_2000, 0x0005_4000));
}

#[test]
fn rtt_from_the_rfc_3550_example() {
    // RFC 3550 §6.4.1 figure: A = b710:8000 (46864.500 s), LSR = b705:2000 (46853.125 s),
    // DLSR = 0005:4000 (5.250 s), so the round trip is 0006:2000 = 6.125 s.
    let block = ReportBlock {
        lsr: 0xb705_2000,
        dlsr: 0x0005_4000,
        ..ReportBlock::default()
    };
    assert_eq!(
        rtt_from_report(&block, 0xb710_8000),
        Some(Duration::from_millis(6_125))
    );
    assert_eq!(
        rtt_from_report(&ReportBlock { lsr: 0, ..block }, 0xb710_8000),
        None
    );
    // DLSR longer than the time since the SR: clocks disagree, no RTT.
    assert_eq!(
        rtt_from_report(
            &ReportBlock {
                dlsr: 0x000c_0000,
                ..block
            },
            0xb710_8000
        ),
        None
    );
    // Arrival before LSR.
    assert_eq!(rtt_from_report(&block, 0xb700_0000), None);
    // Across the 16.16 wrap.
    let wrapped = ReportBlock {
        lsr: 0xffff_8000,
        dlsr: 0x0000_4000,
        ..ReportBlock::default()
    };
    assert_eq!(
        rtt_from_report(&wrapped, 0x0000_4000),
        Some(Duration::from_millis(500))
    );
}

#[test]
fn send_stats_feed_the_sender_report() {
    let mut s = SendStats::new();
    assert_eq!(s.last_rtp_ts(), None);
    for i in 0..50u32 {
        s.on_sent(160, i * 160);
    }
    let sr = s.sender_report(0xabc, 0x1_0000_0000, 9_000);
    assert_eq!(
        (sr.ssrc, sr.ntp, sr.rtp_ts, sr.packets, sr.octets),
        (0xabc, 0x1_0000_0000, 9_000, 50, 8_000)
    );
    assert!(sr.reports.is_empty());
    assert_eq!(
        (s.packets(), s.octets(), s.last_rtp_ts()),
        (50, 8_000, Some(49 * 160))
    );
}

#[test]
fn random_sequences_never_panic() {
    let mut state = 0x2545_f491u32;
    let mut s = ReceiveStats::new();
    let mut seq = 0u16;
    for i in 0..200_000u64 {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        seq = match state % 8 {
            0 => state as u16,
            1 => seq.wrapping_sub((state >> 8) as u16 % 200),
            2 => seq.wrapping_add((state >> 8) as u16 % 4000),
            _ => seq.wrapping_add(1),
        };
        s.on_packet(
            seq,
            state,
            Duration::from_micros(i * 997),
            8000,
            (state % 1500) as usize,
        );
        if i % 1000 == 0 {
            let rb = s.report_block(
                1,
                Some((state, Duration::from_micros(i))),
                Duration::from_micros(i * 997),
            );
            assert!(rb.cumulative_lost >= -0x80_0000 && rb.cumulative_lost <= 0x7f_ffff);
        }
    }
    assert!(s.loss_percent() >= 0.0 && s.loss_percent() <= 100.0);
}

#[test]
fn mos_figures() {
    let g711 = CodecQuality::G711 { plc: true };
    let clean = mos(g711, 0.0, 0.0, 0.0);
    assert!((clean - 4.40).abs() < 0.01, "{clean}");

    let at = |loss| mos(g711, loss, 20.0, 40.0);
    let (m0, m1, m5, m20) = (at(0.0), at(1.0), at(5.0), at(20.0));
    println!(
        "MOS G.711+PLC, 20 ms jitter, 40 ms RTT: 0% {m0:.3}, 1% {m1:.3}, 5% {m5:.3}, 20% {m20:.3}"
    );
    assert!(m0 > 4.3 && m0 <= clean);
    assert!(m1 < m0 && m5 < m1 && m20 < m5);
    assert!(m5 > 3.0, "{m5}");
    assert!(m20 < 3.0, "{m20}");

    let no_plc = mos(CodecQuality::G711 { plc: false }, 5.0, 20.0, 40.0);
    println!("MOS G.711 without PLC, 5%: {no_plc:.3}");
    assert!(no_plc < m5);

    let slow = mos(g711, 0.0, 20.0, 600.0);
    println!("MOS G.711+PLC, 0%, 20 ms jitter, 600 ms RTT: {slow:.3}");
    assert!(slow < m0 - 0.3, "{slow}");

    let opus = mos(CodecQuality::Opus, 0.0, 20.0, 40.0);
    let g722 = mos(CodecQuality::G722, 0.0, 20.0, 40.0);
    println!("MOS 0%, 20 ms jitter, 40 ms RTT: Opus {opus:.3}, G.722 {g722:.3}");
    assert!(opus > 3.9 && opus < m0);
    assert!(g722 > 4.3);
}

#[test]
fn mos_stays_in_range_for_any_input() {
    let codecs = [
        CodecQuality::G711 { plc: true },
        CodecQuality::G711 { plc: false },
        CodecQuality::G722,
        CodecQuality::Opus,
    ];
    let values = [
        f64::NAN,
        f64::NEG_INFINITY,
        -5.0,
        0.0,
        3.0,
        100.0,
        250.0,
        1e9,
        f64::INFINITY,
    ];
    for codec in codecs {
        for loss in values {
            for jitter in values {
                for rtt in values {
                    let m = mos(codec, loss, jitter, rtt);
                    assert!(
                        (1.0..=4.5).contains(&m),
                        "{codec:?} {loss} {jitter} {rtt} -> {m}"
                    );
                }
            }
        }
    }
    assert_eq!(mos_from_r(f64::NAN), 1.0);
    assert_eq!(mos_from_r(200.0), 4.5);
    assert_eq!(mos_from_r(-3.0), 1.0);
}
