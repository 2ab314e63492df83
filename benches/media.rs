//! Media path costs, printed as figures: passthrough per packet (RTP -> RTP, and SRTP -> RTP), the
//! SRTP primitives, and (once codecs land) transcoding per 20 ms frame. `make bench` runs it.

use sipbridge::media::handler::{Encoding, PayloadFormat, PayloadTranscoder, TranscoderFactory};
use sipbridge::media::rtp::{self, RtpHeader};
use sipbridge::media::session::{DtmfMode, EgressSeeds, LegConfig, MediaSession, RtcpMode, Side, Timeouts};
use sipbridge::media::srtp::{SrtpContext, Suite};
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn leg(remote: &str) -> LegConfig {
    LegConfig {
        formats: vec![PayloadFormat { encoding: Encoding::Pcmu, payload_type: 0, channels: 1 }],
        telephone_event: Some((101, 8_000)),
        dtmf: DtmfMode::Rfc4733,
        ptime_ms: 20,
        remote: Some(remote.parse().expect("addr")),
        send: true,
        rtcp: RtcpMode::Off,
    }
}

fn packet(seq: u16) -> Vec<u8> {
    let mut buffer = Vec::with_capacity(1_600);
    buffer.resize(172, 0);
    let header = RtpHeader { marker: false, payload_type: 0, sequence: seq, timestamp: u32::from(seq) * 160, ssrc: 0x1234 };
    let _ = rtp::write_packet(&mut buffer, &header, &[0x55; 160]);
    buffer
}

fn new_session() -> MediaSession {
    let none: TranscoderFactory = Box::new(|_, _, _| Err::<Box<dyn PayloadTranscoder>, _>("none".to_string()));
    let seeds = [EgressSeeds { ssrc: 1, sequence: 1, timestamp: 1 }, EgressSeeds { ssrc: 2, sequence: 1, timestamp: 1 }];
    MediaSession::new(leg("192.0.2.1:4000"), leg("192.0.2.2:4000"), seeds, none, Timeouts::default(), Duration::ZERO)
}

fn passthrough(srtp: bool) -> f64 {
    let mut session = new_session();
    let from: SocketAddr = "192.0.2.1:4000".parse().expect("addr");
    let mut sender = SrtpContext::new(Suite::AesCm128HmacSha1_80, &[7; 16], &[8; 14]);
    if srtp {
        session.set_srtp(Side::A, SrtpContext::new(Suite::AesCm128HmacSha1_80, &[9; 16], &[9; 14]), SrtpContext::new(Suite::AesCm128HmacSha1_80, &[7; 16], &[8; 14]));
    }
    let count = 200_000u32;
    let packets: Vec<Vec<u8>> = (0..count)
        .map(|i| {
            let mut p = packet(i as u16);
            if srtp {
                let _ = sender.protect_rtp(&mut p);
            }
            p
        })
        .collect();
    let start = Instant::now();
    for (i, p) in packets.into_iter().enumerate() {
        session.handle_rtp(Side::A, from, p, Duration::from_micros(i as u64 * 20));
        while let Some(t) = session.poll_transmit() {
            session.recycle(black_box(t.packet));
        }
    }
    start.elapsed().as_nanos() as f64 / f64::from(count)
}

fn main() {
    let plain = passthrough(false);
    let srtp = passthrough(true);
    println!("{:<56} {:>8.0} ns/packet", "passthrough RTP -> RTP (latch, rewrite, egress)", plain);
    println!("{:<56} {:>8.0} ns/packet", "passthrough SRTP -> RTP (+ unprotect)", srtp);
    // A call is two streams at 50 packets/s each way.
    let per_call = plain * 2.0 * 50.0 / 1e9 * 100.0;
    println!("{:<56} {:>8.4} % of one core per call (2 x 50 pkt/s)", "passthrough call cost", per_call);
    let mut context = SrtpContext::new(Suite::AesCm128HmacSha1_80, &[1; 16], &[2; 14]);
    let start = Instant::now();
    let n = 200_000u32;
    for i in 0..n {
        let mut p = packet(i as u16);
        let _ = context.protect_rtp(&mut p);
        black_box(p);
    }
    println!("{:<56} {:>8.0} ns/packet (incl. building the packet)", "SRTP protect", start.elapsed().as_nanos() as f64 / f64::from(n));
    println!();
    // µs of CPU per 20 ms frame for every transcoding pair and direction, Opus complexity 0/5/10,
    // G.711 native against ffmpeg, and concurrent Opus<->PCMU calls per core.
    sipbridge::media::codec::bench::run_benchmarks();
}
