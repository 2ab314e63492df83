//! Media path costs, printed as figures: what a browser leg's descriptions cost at call setup,
//! passthrough per packet (RTP -> RTP, and SRTP -> RTP), the SRTP primitives, a transcoded Opus <->
//! PCMU call against raw libopus measured in the same run (one call, and 100 calls served in turn),
//! and the codec tables per 20 ms frame.
//! `make bench` runs it.

use sipbridge::media::codec::{bench, CodecKind, CodecParams, DEFAULT_OPUS_COMPLEXITY};
use sipbridge::media::codec_glue;
use sipbridge::media::handler::{Encoding, PayloadFormat, PayloadTranscoder, TranscoderFactory};
use sipbridge::media::rtp::{self, RtpHeader};
use sipbridge::media::session::{DtmfMode, EgressSeeds, LegConfig, MediaSession, RtcpMode, Side, Timeouts};
use sipbridge::media::srtp::{SrtpContext, Suite};
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const PCMU: PayloadFormat = PayloadFormat { encoding: Encoding::Pcmu, payload_type: 0, channels: 1 };
const OPUS: PayloadFormat = PayloadFormat { encoding: Encoding::Opus, payload_type: 111, channels: 1 };

fn leg(remote: &str) -> LegConfig {
    leg_with(PCMU, remote)
}

fn leg_with(format: PayloadFormat, remote: &str) -> LegConfig {
    LegConfig {
        formats: vec![format],
        telephone_event: Some((101, format.clock_rate())),
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

/// Writes an RTP packet into `buffer` (a session buffer, as the driver receives into one).
fn rtp_into(mut buffer: Vec<u8>, payload_type: u8, frame: u32, payload: &[u8]) -> Vec<u8> {
    let ticks = if payload_type == OPUS.payload_type { 960 } else { 160 };
    let header = RtpHeader { marker: false, payload_type, sequence: frame as u16, timestamp: frame.wrapping_mul(ticks), ssrc: 0x1234 + u32::from(payload_type) };
    buffer.resize(rtp::RTP_HEADER_LEN + payload.len(), 0);
    if let Ok(len) = rtp::write_packet(&mut buffer, &header, payload) {
        buffer.truncate(len);
    }
    buffer
}

/// A transcoded Opus <-> PCMU call through the gateway's own media path (`MediaSession` with the
/// production transcoder factory), per 20 ms of call: one Opus packet in on A and one PCMU packet
/// in on B, each transcoded and sent out on the other leg.
fn transcoded_call(opus_payloads: &[Vec<u8>]) -> bench::Workload<'_> {
    transcoded_calls("gateway", 1, opus_payloads, bench::payloads(&CodecParams::new(CodecKind::Pcmu)))
}

/// `calls` such calls, each with its own `MediaSession`, served in turn frame by frame as a
/// worker serves its calls; the workload's frames are calls x 20 ms.
fn transcoded_calls<'a>(label: &'static str, calls: usize, opus_payloads: &'a [Vec<u8>], pcmu_payloads: Vec<Vec<u8>>) -> bench::Workload<'a> {
    let seeds = [EgressSeeds { ssrc: 1, sequence: 1, timestamp: 1 }, EgressSeeds { ssrc: 2, sequence: 1, timestamp: 1 }];
    let (remote_a, remote_b) = ("192.0.2.1:4000", "192.0.2.2:4000");
    let new_session = || MediaSession::new(leg_with(OPUS, remote_a), leg_with(PCMU, remote_b), seeds, codec_glue::factory(DEFAULT_OPUS_COMPLEXITY), Timeouts::default(), Duration::ZERO);
    let mut sessions: Vec<MediaSession> = (0..calls).map(|_| new_session()).collect();
    let (from_a, from_b): (SocketAddr, SocketAddr) = (remote_a.parse().expect("addr"), remote_b.parse().expect("addr"));
    let frames = opus_payloads.len().min(pcmu_payloads.len());
    let mut frame = 0u32;
    let run = move || {
        let mut sent = 0;
        for (opus, pcmu) in opus_payloads.iter().zip(&pcmu_payloads) {
            frame += 1;
            let now = Duration::from_millis(20 * u64::from(frame));
            for session in sessions.iter_mut() {
                let packet = rtp_into(session.buffer(), OPUS.payload_type, frame, opus);
                session.handle_rtp(Side::A, from_a, packet, now);
                let packet = rtp_into(session.buffer(), PCMU.payload_type, frame, pcmu);
                session.handle_rtp(Side::B, from_b, packet, now);
                while let Some(t) = session.poll_transmit() {
                    sent += 1;
                    session.recycle(black_box(t.packet));
                }
            }
        }
        assert!(sent >= (2 * frames - 4) * calls, "the sessions sent {sent} packets for {frames} frames each way of {calls} calls");
    };
    (label, frames * calls, Box::new(run))
}

/// Issue 13's transcoding target: an Opus <-> PCMU call costs at most 1.3x what libopus itself
/// spends on the call's frames (decode to 8 kHz + encode from 8 kHz), measured in this run.
fn opus_pcmu_at_codec_cost() {
    let cx = DEFAULT_OPUS_COMPLEXITY;
    // Short passes (1 s of audio), many rounds: on a shared machine some pass of each workload runs
    // undisturbed.
    let (rounds, pass) = (60, 50);
    println!("Opus <-> PCMU at the codec's own cost: µs of thread CPU per 20 ms frame, complexity {cx}, mono;");
    println!("each figure is the minimum over {rounds} interleaved passes of {pass} frames of speech-like audio (one run)");
    let browser = &bench::payloads(&CodecParams::new(CodecKind::Opus))[..pass];
    let narrowband = &bench::narrowband_opus_payloads(cx)[..pass];
    let mut raw = vec![
        bench::raw_opus_encode(8000, cx, pass),
        bench::raw_opus_decode(narrowband, 8000),
        bench::raw_opus_encode(48000, cx, pass),
        bench::raw_opus_decode(browser, 48000),
    ];
    let r = bench::interleaved_min(&mut raw, rounds);
    println!("  {:<40} encode {:>6.1} + decode {:>5.1} = {:>6.1}", "raw libopus  8 kHz (16 kbit/s narrowband)", r[0], r[1], r[0] + r[1]);
    println!("  {:<40} encode {:>6.1} + decode {:>5.1} = {:>6.1}", "raw libopus 48 kHz (32 kbit/s)", r[2], r[3], r[2] + r[3]);
    println!("  {:<40} {:>8} {:>11} {:>7} {:>9} {:>7}", "Opus <-> PCMU call, Opus packets in:", "raw", "Transcoder", "ratio", "gateway", "ratio");
    for (label, packets) in [("browser-like: 48 kHz, 32 kbit/s", browser), ("narrowband: 8 kHz, 16 kbit/s", narrowband)] {
        let mut call = vec![bench::raw_opus_pcmu_call(packets, cx), bench::transcoder_opus_pcmu_call(packets, cx), transcoded_call(packets)];
        let c = bench::interleaved_min(&mut call, rounds);
        println!("  {label:<40} {:>8.1} {:>11.1} {:>6.2}x {:>9.1} {:>6.2}x", c[0], c[1], c[1] / c[0], c[2], c[2] / c[0]);
    }
    println!("  raw = bare opus_decode of the same packets to 8 kHz + opus_encode from 8 kHz; Transcoder = the codec");
    println!("  layer both ways, G.711 included; gateway = MediaSession, RTP in -> RTP out both ways. Target: <= 1.3x\n");
}

/// What one browser leg's descriptions cost the worker at call setup: our offer to a browser,
/// the browser's answer applied, and our answer to a browser's offer (its ICE agent and DTLS
/// endpoint included), in µs of thread CPU, the median of many.
fn browser_leg_setup() {
    use sipbridge::webrtc_leg::{BrowserCodec, DtlsCertificate, LegIdentity, WebRtcConfig, WebRtcLeg};
    let certificate = DtlsCertificate::generate().expect("certificate");
    let config = WebRtcConfig { public_ip: None, lite: false, failed_timeout: Duration::from_secs(15) };
    let identity = |ufrag: &str, port: u16| LegIdentity {
        ufrag: ufrag.into(),
        pwd: format!("{ufrag}-password-0123456789abcdef"),
        ssrc: 0x1234,
        local_addresses: vec![SocketAddr::from(([127, 0, 0, 1], port))],
        certificate: certificate.clone(),
    };
    let opus = BrowserCodec { mime_type: "audio/opus".into(), payload_type: 111, clock_rate: 48_000, channels: 2 };
    let (mut offers, mut answers) = (Vec::new(), Vec::new());
    for _ in 0..300 {
        let now = Instant::now();
        let start = Instant::now();
        let (mut offerer, offer) = WebRtcLeg::offer(opus.clone(), &config, &identity("offr", 41000), now).expect("offer");
        let offered = start.elapsed();
        let start = Instant::now();
        let (_answerer, answer) = WebRtcLeg::answer(&offer, None, &config, &identity("answ", 41002), now).expect("answer");
        answers.push(start.elapsed());
        let start = Instant::now();
        offerer.set_answer(&answer, now).expect("answer applied");
        offers.push(offered + start.elapsed());
    }
    offers.sort_unstable();
    answers.sort_unstable();
    println!("{:<56} {:>8.0} µs (median)", "browser leg: our offer + the browser's answer applied", offers[offers.len() / 2].as_secs_f64() * 1e6);
    println!("{:<56} {:>8.0} µs (median)", "browser leg: our answer to the browser's offer", answers[answers.len() / 2].as_secs_f64() * 1e6);
}

fn main() {
    browser_leg_setup();
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
    opus_pcmu_at_codec_cost();
    opus_pcmu_calls_in_turn();
    // µs of CPU per 20 ms frame for every transcoding pair and direction, Opus complexity 0/5/10,
    // G.711 native against ffmpeg, and concurrent Opus<->PCMU calls per core.
    sipbridge::media::codec::bench::run_benchmarks();
}


/// A worker serves its calls in turn, so no call's codec states stay in the cache. This sets 100
/// transcoded calls through their own `MediaSession`s against raw libopus on one encoder and
/// decoder per call, frame by frame across the calls: what our session code adds when every
/// call's state is cold, with no I/O, SRTP or kernel work around it.
fn opus_pcmu_calls_in_turn() {
    const CALLS: usize = 100;
    const FRAMES: usize = 20;
    const ROUNDS: usize = 12;
    let browser = bench::payloads(&CodecParams::new(CodecKind::Opus))[..FRAMES].to_vec();
    let pcmu = bench::payloads(&CodecParams::new(CodecKind::Pcmu))[..FRAMES].to_vec();
    let mut workloads = vec![raw_libopus_in_turn(CALLS, &browser, &pcmu), transcoded_calls("sessions in turn", CALLS, &browser, pcmu.clone())];
    let c = bench::interleaved_min(&mut workloads, ROUNDS);
    println!("Opus <-> PCMU, {CALLS} calls served in turn (every call's state cold), µs of thread CPU per call per 20 ms,");
    println!("the minimum over {ROUNDS} interleaved passes of {FRAMES} frames:");
    println!("  raw libopus, one encoder + decoder per call {:>8.1}", c[0]);
    println!("  gateway, one MediaSession per call          {:>8.1} = {:.2}x\n", c[1], c[1] / c[0]);
}

/// One decode of the browser's packet to 8 kHz and one encode of the trunk's PCM per call and
/// frame, on each call's own states, through the codec API the floor of `gateway_load` uses.
fn raw_libopus_in_turn<'a>(calls: usize, browser: &'a [Vec<u8>], pcmu: &[Vec<u8>]) -> bench::Workload<'a> {
    use sipbridge::media::codec::{ulaw_to_linear, AudioDecoder, AudioEncoder, OpusDecoder, OpusEncoder};
    let mut params = CodecParams::new(CodecKind::Opus);
    params.opus.complexity = DEFAULT_OPUS_COMPLEXITY;
    let mut states: Vec<(OpusEncoder, OpusDecoder)> = (0..calls).map(|_| (OpusEncoder::new(&params, 8000).expect("encoder"), OpusDecoder::new(&params, 8000).expect("decoder"))).collect();
    let pcm: Vec<Vec<i16>> = pcmu.iter().map(|p| p.iter().map(|&b| ulaw_to_linear(b)).collect()).collect();
    let (mut encoded, mut decoded) = (Vec::with_capacity(4000), Vec::with_capacity(960));
    let frames = browser.len().min(pcm.len());
    let run = move || {
        for (opus, pcm) in browser.iter().zip(&pcm) {
            for (encoder, decoder) in states.iter_mut() {
                decoded.clear();
                decoder.decode(opus, &mut decoded).expect("decode");
                encoded.clear();
                encoder.encode(pcm, &mut encoded).expect("encode");
            }
        }
    };
    ("raw libopus in turn", frames * calls, Box::new(run))
}
