//! CPU cost of the codec layer: `run_benchmarks()` prints µs of thread CPU time
//! (`CLOCK_THREAD_CPUTIME_ID`, so other load on the machine does not inflate it) per 20 ms frame.
//! Build in release. Input is a speech-like signal (harmonics of a gliding 80-200 Hz pitch under a
//! 4 Hz syllable envelope, plus a quiet noise floor), 5 s long, looped.

use std::f64::consts::PI;

use super::opus::{OpusDecoder, OpusEncoder};
use super::{
    decoder_with, encoder, encoder_with, AudioDecoder, AudioEncoder, Backend, CodecKind, CodecParams, FfmpegDecoder,
    FfmpegEncoder, G711Decoder, G711Encoder, OutFrame, Transcoder, DEFAULT_OPUS_COMPLEXITY,
};

#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

extern "C" {
    fn clock_gettime(clk_id: i32, tp: *mut Timespec) -> i32;
}

const CLOCK_THREAD_CPUTIME_ID: i32 = 3;

/// Thread CPU time in µs.
fn cpu_us() -> f64 {
    let mut ts = Timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid pointer to a timespec; Linux x86_64/aarch64 layout (two 64-bit fields).
    unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 * 1e6 + ts.tv_nsec as f64 / 1e3
}

/// Speech-like test signal at `rate`, `secs` long, mono.
fn speech_like(rate: u32, secs: f64) -> Vec<i16> {
    let n = (rate as f64 * secs) as usize;
    let mut seed = 0x1234_5678u32;
    (0..n)
        .map(|i| {
            let t = i as f64 / rate as f64;
            let phase = 2.0 * PI * (140.0 * t - 60.0 / (2.0 * PI * 2.3) * (2.0 * PI * 2.3 * t).cos());
            let env = 0.1 + 0.9 * (2.0 * PI * 4.0 * t).sin().abs();
            let s: f64 = (1..=12).map(|h| (0.35 / h as f64) * (h as f64 * phase).sin()).sum();
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let noise = ((seed >> 16) as f64 / 32768.0 - 1.0) * 60.0;
            (env * s * 20000.0 + noise) as i16
        })
        .collect()
}

fn encode_all(params: &CodecParams, pcm: &[i16]) -> Vec<Vec<u8>> {
    let mut enc = encoder(params).expect("encoder"); // ok: a benchmark on generated audio
    let ch = params.channels as usize;
    let fs = enc.frame_samples();
    let stereo: Vec<i16>;
    let src = if ch == 2 {
        stereo = pcm.iter().flat_map(|&s| [s, s]).collect();
        &stereo[..]
    } else {
        pcm
    };
    src.chunks_exact(fs * ch)
        .map(|c| {
            let mut p = Vec::new();
            enc.encode(c, &mut p).expect("encode"); // ok: a benchmark on generated audio
            p
        })
        .collect()
}

/// µs of CPU per input packet for `Transcoder::push` (decode + resample + encode).
fn bench_transcoder(from: &CodecParams, to: &CodecParams, backend: Backend, min_cpu_us: f64) -> f64 {
    let pcm = speech_like(from.kind.sample_rate(), 5.0);
    let packets = encode_all(from, &pcm);
    let mut t = Transcoder::with_backend(from, to, backend).expect("transcoder"); // ok: a benchmark on generated audio
    let mut out: Vec<OutFrame> = Vec::with_capacity(8);
    let mut run = |t: &mut Transcoder| {
        for p in &packets {
            t.push(p, &mut out).expect("push"); // ok: a benchmark on generated audio
            for f in out.drain(..) {
                t.recycle(f);
            }
        }
    };
    run(&mut t); // warm-up
    let (mut frames, start) = (0usize, cpu_us());
    while cpu_us() - start < min_cpu_us {
        run(&mut t);
        frames += packets.len();
    }
    (cpu_us() - start) / frames as f64
}

fn bench_encoder(enc: &mut dyn AudioEncoder, pcm: &[i16], min_cpu_us: f64) -> f64 {
    let n = enc.frame_samples() * enc.channels() as usize;
    let mut out = Vec::with_capacity(4096);
    let mut run = |enc: &mut dyn AudioEncoder| {
        for c in pcm.chunks_exact(n) {
            out.clear();
            enc.encode(c, &mut out).expect("encode"); // ok: a benchmark on generated audio
        }
    };
    run(enc);
    let (mut frames, start) = (0usize, cpu_us());
    while cpu_us() - start < min_cpu_us {
        run(enc);
        frames += pcm.len() / n;
    }
    (cpu_us() - start) / frames as f64
}

fn bench_decoder(dec: &mut dyn AudioDecoder, packets: &[Vec<u8>], min_cpu_us: f64) -> f64 {
    let mut out = Vec::with_capacity(48 * 120 * 2);
    let mut run = |dec: &mut dyn AudioDecoder| {
        for p in packets {
            out.clear();
            dec.decode(p, &mut out).expect("decode"); // ok: a benchmark on generated audio
        }
    };
    run(dec);
    let (mut frames, start) = (0usize, cpu_us());
    while cpu_us() - start < min_cpu_us {
        run(dec);
        frames += packets.len();
    }
    (cpu_us() - start) / frames as f64
}

/// In-place radix-2 FFT (re, im), n a power of two.
fn fft(re: &mut [f64], im: &mut [f64]) {
    let n = re.len();
    let mut j = 0;
    for i in 1..n {
        let mut bit = n >> 1;
        while j & bit != 0 {
            j ^= bit;
            bit >>= 1;
        }
        j |= bit;
        if i < j {
            re.swap(i, j);
            im.swap(i, j);
        }
    }
    let mut len = 2;
    while len <= n {
        let ang = -2.0 * PI / len as f64;
        for start in (0..n).step_by(len) {
            for k in 0..len / 2 {
                let (wr, wi) = ((ang * k as f64).cos(), (ang * k as f64).sin());
                let (a, b) = (start + k, start + k + len / 2);
                let (xr, xi) = (re[b] * wr - im[b] * wi, re[b] * wi + im[b] * wr);
                re[b] = re[a] - xr;
                im[b] = im[a] - xi;
                re[a] += xr;
                im[a] += xi;
            }
        }
        len <<= 1;
    }
}

/// Phase-insensitive quality proxy: per 32 ms Hann frame, magnitude-spectrum SNR
/// sum|X|^2 / sum(|X|-|Y|)^2 over 100 Hz .. min(3800 Hz, Nyquist), averaged in dB over frames.
/// (Waveform SNR is meaningless for Opus, whose VoIP high-pass and noise shaping move phase.)
fn spectral_snr(reference: &[i16], decoded: &[i16], rate: u32) -> f64 {
    let n = (rate as usize * 32 / 1000).next_power_of_two();
    let lo = 100 * n / rate as usize;
    let hi = (3800usize.min(rate as usize / 2) * n) / rate as usize;
    let win: Vec<f64> = (0..n).map(|i| 0.5 - 0.5 * (2.0 * PI * i as f64 / n as f64).cos()).collect();
    let mut total = 0.0;
    let mut count = 0;
    let mut pos = rate as usize / 5;
    while pos + n <= reference.len().min(decoded.len()) {
        let spec = |x: &[i16]| {
            let mut re: Vec<f64> = x.iter().zip(&win).map(|(&s, &w)| s as f64 * w).collect();
            let mut im = vec![0.0; n];
            fft(&mut re, &mut im);
            (lo..hi).map(|k| (re[k] * re[k] + im[k] * im[k]).sqrt()).collect::<Vec<f64>>()
        };
        let a = spec(&reference[pos..pos + n]);
        let b = spec(&decoded[pos..pos + n]);
        let es: f64 = a.iter().map(|v| v * v).sum();
        let en: f64 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum();
        if es > 1e6 {
            total += 10.0 * (es / en.max(1e-9)).log10();
            count += 1;
        }
        pos += n / 2;
    }
    total / count.max(1) as f64
}

fn kind_name(k: CodecKind) -> &'static str {
    match k {
        CodecKind::Pcmu => "PCMU",
        CodecKind::Pcma => "PCMA",
        CodecKind::G722 => "G722",
        CodecKind::Opus => "Opus",
    }
}

/// Prints the benchmark tables (see module doc). Takes about a minute in release.
pub fn run_benchmarks() {
    super::ffmpeg_init();
    let min = 300_000.0; // µs of CPU per measurement
    println!("codec benchmarks: µs of thread CPU time per 20 ms frame (release build)\n");

    // G.711 native tables vs ffmpeg.
    println!("G.711, 160 samples / 160 bytes per frame:");
    println!("{:<8} {:>14} {:>14} {:>14} {:>14}", "codec", "enc native", "enc ffmpeg", "dec native", "dec ffmpeg");
    let pcm8 = speech_like(8000, 5.0);
    for kind in [CodecKind::Pcmu, CodecKind::Pcma] {
        let p = CodecParams::new(kind);
        let en = bench_encoder(&mut G711Encoder::new(&p).unwrap(), &pcm8, min); // ok: a benchmark on generated audio
        let ef = bench_encoder(&mut FfmpegEncoder::new(&p, 8000).unwrap(), &pcm8, min); // ok: a benchmark on generated audio
        let packets = encode_all(&p, &pcm8);
        let dn = bench_decoder(&mut G711Decoder::new(&p).unwrap(), &packets, min); // ok: a benchmark on generated audio
        let df = bench_decoder(&mut FfmpegDecoder::new(&p).unwrap(), &packets, min); // ok: a benchmark on generated audio
        println!("{:<8} {:>14.3} {:>14.3} {:>14.3} {:>14.3}", kind_name(kind), en, ef, dn, df);
    }
    let p722 = CodecParams::new(CodecKind::G722);
    let pcm16 = speech_like(16000, 5.0);
    let e722 = bench_encoder(&mut FfmpegEncoder::new(&p722, 16000).unwrap(), &pcm16, min); // ok: a benchmark on generated audio
    let d722 = bench_decoder(&mut FfmpegDecoder::new(&p722).unwrap(), &encode_all(&p722, &pcm16), min); // ok: a benchmark on generated audio
    println!("G.722 (ffmpeg, 320 samples / 160 bytes): encode {e722:.2} µs, decode {d722:.2} µs\n");

    // Opus complexity.
    println!("Opus (libopus 1.3.1, VoIP, VBR, FEC on) encode per 20 ms frame by complexity; spectral SNR = quality proxy:");
    println!("{:<30} {:>6} {:>10} {:>12} {:>10}", "input", "cx", "enc µs", "spec SNR dB", "bytes");
    for (rate, label) in [(8000u32, "8 kHz (G.711 leg), 16 kbit/s"), (16000, "16 kHz (G.722 leg), 24 kbit/s"), (48000, "48 kHz, 32 kbit/s")] {
        let pcm = speech_like(rate, 5.0);
        for cx in [0u8, 5, 10] {
            let mut p = CodecParams::new(CodecKind::Opus);
            p.opus.complexity = cx;
            let mut enc = OpusEncoder::new(&p, rate).unwrap(); // ok: a benchmark on generated audio
            let us = bench_encoder(&mut enc, &pcm, min);
            // Quality: fresh encoder/decoder pair at the same rate, aligned by the encoder lookahead.
            let mut enc = OpusEncoder::new(&p, rate).unwrap(); // ok: a benchmark on generated audio
            let la = enc.lookahead();
            let mut dec = OpusDecoder::new(&p, rate).unwrap(); // ok: a benchmark on generated audio
            let (mut decoded, mut bytes, mut frames) = (Vec::new(), 0usize, 0usize);
            let fs = enc.frame_samples();
            for c in pcm.chunks_exact(fs) {
                let mut pk = Vec::new();
                enc.encode(c, &mut pk).unwrap(); // ok: a benchmark on generated audio
                bytes += pk.len();
                frames += 1;
                dec.decode(&pk, &mut decoded).unwrap(); // ok: a benchmark on generated audio
            }
            let q = spectral_snr(&pcm, &decoded[la.min(decoded.len())..], rate);
            println!("{:<30} {:>6} {:>10.1} {:>12.1} {:>10.1}", label, cx, us, q, bytes as f64 / frames as f64);
        }
    }
    {
        let mut p = CodecParams::new(CodecKind::Opus);
        p.opus.fec = false;
        let us = bench_encoder(&mut OpusEncoder::new(&p, 8000).unwrap(), &pcm8, min); // ok: a benchmark on generated audio
        println!("{:<30} {:>6} {:>10.1}   (FEC off)", "8 kHz (G.711 leg), 16 kbit/s", DEFAULT_OPUS_COMPLEXITY, us);
    }
    let p = CodecParams::new(CodecKind::Opus);
    let fb_packets = encode_all(&p, &speech_like(48000, 5.0));
    let mut nb_enc = OpusEncoder::new(&p, 8000).unwrap(); // ok: a benchmark on generated audio
    let nb_packets: Vec<Vec<u8>> = pcm8
        .chunks_exact(160)
        .map(|c| {
            let mut v = Vec::new();
            nb_enc.encode(c, &mut v).unwrap(); // ok: a benchmark on generated audio
            v
        })
        .collect();
    for rate in [8000u32, 16000, 48000] {
        let d = bench_decoder(&mut OpusDecoder::new(&p, rate).unwrap(), &fb_packets, min); // ok: a benchmark on generated audio
        println!("Opus decode (libopus) of 48 kHz/32 kbit/s packets to {rate} Hz: {d:.1} µs");
    }
    let d = bench_decoder(&mut OpusDecoder::new(&p, 8000).unwrap(), &nb_packets, min); // ok: a benchmark on generated audio
    println!("Opus decode (libopus) of 8 kHz/16 kbit/s (narrowband) packets to 8000 Hz: {d:.1} µs");
    {
        let d = bench_decoder(&mut *decoder_with(&p, 48000, Backend::Ffmpeg).unwrap(), &fb_packets, min); // ok: a benchmark on generated audio
        println!("Opus decode (ffmpeg libopus wrapper, 48 kHz only): {d:.1} µs");
        let e = bench_encoder(&mut *encoder_with(&p, 8000, Backend::Ffmpeg).unwrap(), &speech_like(8000, 5.0), min); // ok: a benchmark on generated audio
        println!("Opus encode (ffmpeg libopus wrapper) 8 kHz, cx {DEFAULT_OPUS_COMPLEXITY}: {e:.1} µs\n");
    }

    // Transcoding pairs.
    println!("Transcoder::push, 20 ms in -> 20 ms out, decode + resample + encode, Opus complexity {DEFAULT_OPUS_COMPLEXITY}:");
    println!("{:<16} {:>12} {:>14} {:>20}", "pair", "default µs", "all-ffmpeg µs", "pivot rate / resample");
    let kinds = [CodecKind::Pcmu, CodecKind::Pcma, CodecKind::G722, CodecKind::Opus];
    let mut pairs: Vec<(CodecParams, CodecParams)> = Vec::new();
    for &a in &kinds {
        for &b in &kinds {
            pairs.push((CodecParams::new(a), CodecParams::new(b)));
        }
    }
    pairs.push((CodecParams::new(CodecKind::Pcmu), CodecParams::new(CodecKind::Opus).with_channels(2)));
    pairs.push((CodecParams::new(CodecKind::Opus).with_channels(2), CodecParams::new(CodecKind::Pcmu)));
    let mut opus_pcmu = (0.0, 0.0);
    let mut pcmu_opus = (0.0, 0.0);
    for (a, b) in &pairs {
        let d = bench_transcoder(a, b, Backend::Default, min);
        let f = bench_transcoder(a, b, Backend::Ffmpeg, min);
        let t = Transcoder::new(a, b).unwrap(); // ok: a benchmark on generated audio
        let name = format!(
            "{}{} -> {}{}",
            kind_name(a.kind),
            if a.channels == 2 { "/2" } else { "" },
            kind_name(b.kind),
            if b.channels == 2 { "/2" } else { "" }
        );
        println!(
            "{:<16} {:>12.1} {:>14.1} {:>14} {}",
            name,
            d,
            f,
            t.pivot_rate(),
            if t.uses_resampler() { "yes" } else { "no" }
        );
        if a.channels == 1 && b.channels == 1 {
            match (a.kind, b.kind) {
                (CodecKind::Opus, CodecKind::Pcmu) => opus_pcmu = (d, f),
                (CodecKind::Pcmu, CodecKind::Opus) => pcmu_opus = (d, f),
                _ => {}
            }
        }
    }
    println!();
    println!("Opus <-> PCMU call (both directions) by Opus complexity:");
    println!("{:<22} {:>12} {:>12} {:>12} {:>16}", "", "Opus->PCMU", "PCMU->Opus", "sum µs", "calls per core");
    for cx in [0u8, 5, 10] {
        let mut o = CodecParams::new(CodecKind::Opus);
        o.opus.complexity = cx;
        let pcmu = CodecParams::new(CodecKind::Pcmu);
        let a = bench_transcoder(&o, &pcmu, Backend::Default, min);
        let b = bench_transcoder(&pcmu, &o, Backend::Default, min);
        println!("{:<22} {:>12.1} {:>12.1} {:>12.1} {:>16.0}", format!("default, cx {cx}"), a, b, a + b, 20_000.0 / (a + b));
    }
    let (d, f) = (opus_pcmu.0 + pcmu_opus.0, opus_pcmu.1 + pcmu_opus.1);
    println!(
        "\nconcurrent Opus<->PCMU calls per core = 20 ms / (µs(Opus->PCMU) + µs(PCMU->Opus)):\n  default backend (cx {DEFAULT_OPUS_COMPLEXITY}): 20000 / ({:.1} + {:.1}) = {:.0}\n  all-ffmpeg backend (cx {DEFAULT_OPUS_COMPLEXITY}): 20000 / ({:.1} + {:.1}) = {:.0}",
        opus_pcmu.0,
        pcmu_opus.0,
        20_000.0 / d,
        opus_pcmu.1,
        pcmu_opus.1,
        20_000.0 / f
    );
}

/// Thread CPU time in µs, for benchmarks outside this module that compare against these figures.
pub fn thread_cpu_us() -> f64 {
    cpu_us()
}

/// Payloads of `params` encoding 5 s of speech-like input at the codec's own rate (Opus: 48 kHz,
/// 32 kbit/s, as a browser sends).
pub fn payloads(params: &CodecParams) -> Vec<Vec<u8>> {
    encode_all(params, &speech_like(params.kind.sample_rate(), 5.0))
}

/// Narrowband Opus payloads (encoded from 8 kHz input, 16 kbit/s): what a gateway sends towards
/// a browser on behalf of a G.711 phone.
pub fn narrowband_opus_payloads(complexity: u8) -> Vec<Vec<u8>> {
    let mut p = CodecParams::new(CodecKind::Opus);
    p.opus.complexity = complexity;
    let mut enc = OpusEncoder::new(&p, 8000).expect("encoder"); // ok: a benchmark on generated audio
    speech_like(8000, 5.0)
        .chunks_exact(160)
        .map(|c| {
            let mut v = Vec::new();
            enc.encode(c, &mut v).expect("encode"); // ok: a benchmark on generated audio
            v
        })
        .collect()
}

/// One pass of a workload for [`interleaved_min`]: a label, the 20 ms frames one call of the
/// closure handles, and the closure.
pub type Workload<'a> = (&'static str, usize, Box<dyn FnMut() + 'a>);

/// µs of thread CPU per frame of each workload, as the minimum over `rounds` rounds in which every
/// workload runs one pass, interleaved. On a machine shared with other builds the minimum is the
/// cost without interference, and interleaving exposes every workload to the same conditions, so
/// their ratios hold within one run.
pub fn interleaved_min(workloads: &mut [Workload<'_>], rounds: usize) -> Vec<f64> {
    let mut best = vec![f64::INFINITY; workloads.len()];
    for (_, _, run) in workloads.iter_mut() {
        run(); // warm-up
    }
    for _ in 0..rounds {
        for (i, (_, frames, run)) in workloads.iter_mut().enumerate() {
            let start = cpu_us();
            run();
            best[i] = best[i].min((cpu_us() - start) / *frames as f64);
        }
    }
    best
}

fn opus_params(complexity: u8) -> CodecParams {
    let mut p = CodecParams::new(CodecKind::Opus);
    p.opus.complexity = complexity;
    p
}

/// Raw libopus encoding: one bare `opus_encode` call (nothing of ours around it) per 20 ms frame
/// of `rate` speech-like input, `frames` frames per pass, mono, VoIP, the gateway's settings.
pub fn raw_opus_encode(rate: u32, complexity: u8, frames: usize) -> Workload<'static> {
    let frame = (rate / 50) as usize;
    let pcm = speech_like(rate, 5.0)[..frame * frames.min(250)].to_vec();
    let mut enc = OpusEncoder::new(&opus_params(complexity), rate).expect("encoder"); // ok: a benchmark on generated audio
    let mut buf = vec![0u8; 4000];
    let frames = pcm.len() / frame;
    let run = move || {
        for c in pcm.chunks_exact(frame) {
            enc.encode_raw(c, frame, &mut buf).expect("opus_encode"); // ok: a benchmark on generated audio
        }
    };
    ("raw opus_encode", frames, Box::new(run))
}

/// Raw libopus decoding: one bare `opus_decode` call per packet, to `rate`.
pub fn raw_opus_decode(packets: &[Vec<u8>], rate: u32) -> Workload<'_> {
    let mut dec = OpusDecoder::new(&opus_params(DEFAULT_OPUS_COMPLEXITY), rate).expect("decoder"); // ok: a benchmark on generated audio
    let mut out = vec![0i16; (rate / 50) as usize];
    let run = move || {
        for pk in packets {
            dec.decode_raw(pk, &mut out).expect("opus_decode"); // ok: a benchmark on generated audio
        }
    };
    ("raw opus_decode", packets.len(), Box::new(run))
}

/// What libopus itself must do for an Opus <-> PCMU call, per 20 ms: decode one of `packets` to
/// 8 kHz and encode one 8 kHz frame, both bare calls.
pub fn raw_opus_pcmu_call(packets: &[Vec<u8>], complexity: u8) -> Workload<'_> {
    let (_, encoded, mut encode) = raw_opus_encode(8000, complexity, packets.len());
    let (_, _, mut decode) = raw_opus_decode(packets, 8000);
    assert_eq!(encoded, packets.len(), "one encoded frame per decoded packet");
    ("raw libopus", packets.len(), Box::new(move || {
        decode();
        encode();
    }))
}

/// The codec layer's [`Transcoder`]s of an Opus <-> PCMU call, per 20 ms: one of `packets` Opus ->
/// PCMU and one PCMU packet -> Opus, output frames recycled as the session would.
pub fn transcoder_opus_pcmu_call(packets: &[Vec<u8>], complexity: u8) -> Workload<'_> {
    let opus = opus_params(complexity);
    let pcmu = CodecParams::new(CodecKind::Pcmu);
    let pcmu_packets = payloads(&pcmu);
    let mut down = Transcoder::new(&opus, &pcmu).expect("transcoder"); // ok: a benchmark on generated audio
    let mut up = Transcoder::new(&pcmu, &opus).expect("transcoder"); // ok: a benchmark on generated audio
    let mut out: Vec<OutFrame> = Vec::with_capacity(8);
    let frames = packets.len().min(pcmu_packets.len());
    let run = move || {
        for (o, u) in packets.iter().zip(&pcmu_packets) {
            for (t, p) in [(&mut down, o), (&mut up, u)] {
                t.push(p, &mut out).expect("push"); // ok: a benchmark on generated audio
                for f in out.drain(..) {
                    t.recycle(f);
                }
            }
        }
    };
    ("Transcoder", frames, Box::new(run))
}
