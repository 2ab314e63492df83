//! Per-packet cost, printed rather than asserted (machines differ). Run with
//! `cargo test --release -- --nocapture per_packet_cost` for real figures.

use std::hint::black_box;
use std::time::Instant;

use super::super::Suite;
use super::{pair, rtp_packet};

#[test]
fn per_packet_cost() {
    // 12-byte header + 160-byte payload: 20 ms of G.711.
    const PAYLOAD: usize = 160;
    let rounds: usize = if cfg!(debug_assertions) { 2_000 } else { 50_000 };
    for suite in Suite::ALL {
        let (mut tx, mut rx) = pair(suite);
        // Buffers are built up front so that only the transforms are timed.
        let mut packets: Vec<Vec<u8>> = (0..rounds)
            .map(|n| rtp_packet(0x0bad_cafe, n as u16, PAYLOAD))
            .collect();
        assert_eq!(packets[0].len(), 172);

        let started = Instant::now();
        for p in packets.iter_mut() {
            tx.protect_rtp(black_box(p)).unwrap();
        }
        let protect_ns = started.elapsed().as_nanos() / rounds as u128;

        let started = Instant::now();
        for p in packets.iter_mut() {
            rx.unprotect_rtp(black_box(p)).unwrap();
        }
        let unprotect_ns = started.elapsed().as_nanos() / rounds as u128;

        println!(
            "srtp {:?} 172-byte RTP ({}): protect {protect_ns} ns/packet, unprotect {unprotect_ns} ns/packet",
            suite,
            if cfg!(debug_assertions) {
                "debug build"
            } else {
                "release build"
            },
        );
    }
}
