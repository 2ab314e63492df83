//! Acceptance tests of the codec layer. Run with `-- --nocapture` to see the codec table.
//!
//! Method of the codec table (`codec_table_all_pairs`):
//! * Source: a 1 kHz tone at -6 dBFS, and a speech-like mix of 310 + 730 + 1170 + 2330 Hz at
//!   decreasing levels (-14, -16.5, -20, -23 dBFS), amplitude-modulated at 3 Hz (+-20 %). The
//!   frequencies have a 100 ms common period, so delay estimation over a +-60 ms range is unambiguous
//!   (with 300/700/1100/2300 Hz it would repeat every 10 ms).
//! * 100 packets of 20 ms are encoded in codec A at its own rate, packets 7, 23 and 24 are "lost"
//!   (`push_lost` with the next packet when that one arrived, for Opus FEC), the rest are pushed
//!   through `Transcoder` A -> B; B's payloads are decoded at B's own rate.
//! * Delay: first measured per pair with a chirp (200 -> 3400 Hz sweeps: one sharp correlation
//!   peak) by cross-correlation over 0..60 ms; then for the tone and the multi-tone, whose
//!   correlations repeat (every 1 ms; nearly every 9.5 ms), the integer lag is searched within
//!   +-0.5 ms / +-2 ms of it, and refined to 1/20 sample by evaluating the analytic signal at
//!   fractional delays.
//! * SNR = energy(reference) / energy(output - reference), no gain fitting, measured from 100 ms to
//!   the end minus 60 ms, **excluding** each lost packet's span plus a guard of 2 ms before and
//!   30 ms after it (decoder/PLC recovery). The SNR including the lost spans is printed too
//!   (informational: it shows the concealment).
//! * Frequency: Goertzel scan (Hann window) 50 Hz .. min(3900 Hz, Nyquist), 2 Hz steps on 200 ms,
//!   refined in 0.1 Hz steps on 1 s. Multi-tone: each component's amplitude must be within +-3 dB of
//!   the source's.

use super::opus::packet_samples;
use super::*;

use std::f64::consts::PI;

const PACKETS: usize = 100;
const LOST: [usize; 3] = [7, 23, 24];

#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Sig {
    Tone,
    Multi,
    /// Vowel-like: 12 harmonics of a pitch gliding 80..200 Hz at 2.3 Hz, syllable envelope at 4 Hz.
    Vowel,
    /// Linear sweeps 200 -> 3400 Hz, 0.4 s each: its cross-correlation has one sharp peak
    /// (pulse compression), so it measures each chain's delay unambiguously.
    Chirp,
}

const MULTI: [(f64, f64, f64); 4] = [(310.0, 0.20, 0.0), (730.0, 0.15, 1.0), (1170.0, 0.10, 2.0), (2330.0, 0.07, 3.0)];

fn sig_value(sig: Sig, t: f64) -> f64 {
    match sig {
        Sig::Tone => 0.5 * 32767.0 * (2.0 * PI * 1000.0 * t).sin(),
        Sig::Multi => {
            let env = 0.8 + 0.2 * (2.0 * PI * 3.0 * t).sin();
            let s: f64 = MULTI.iter().map(|&(f, a, p)| a * (2.0 * PI * f * t + p).sin()).sum();
            env * s * 32767.0
        }
        Sig::Vowel => {
            let phase = 2.0 * PI * (140.0 * t - 60.0 / (2.0 * PI * 2.3) * (2.0 * PI * 2.3 * t).cos());
            let env = 0.5 + 0.5 * (2.0 * PI * 4.0 * t).sin().abs();
            let s: f64 = (1..=12).map(|h| (0.35 / h as f64) * (h as f64 * phase).sin()).sum();
            env * s * 20000.0
        }
        Sig::Chirp => {
            let (f0, f1, period) = (200.0, 3400.0, 0.4);
            let tau = t.rem_euclid(period);
            let k = (f1 - f0) / period;
            0.4 * 32767.0 * (2.0 * PI * (f0 * tau + 0.5 * k * tau * tau)).sin()
        }
    }
}

/// `n` samples of `sig` at `rate`, delayed by `delay` seconds.
pub(super) fn gen(sig: Sig, rate: u32, n: usize, delay: f64) -> Vec<f64> {
    (0..n).map(|i| sig_value(sig, i as f64 / rate as f64 - delay)).collect()
}

pub(super) fn to_pcm(x: &[f64], channels: usize) -> Vec<i16> {
    let mut v = Vec::with_capacity(x.len() * channels);
    for &s in x {
        let s = s.round().clamp(-32768.0, 32767.0) as i16;
        for _ in 0..channels {
            v.push(s);
        }
    }
    v
}

fn to_mono_f64(pcm: &[i16], channels: usize) -> Vec<f64> {
    pcm.chunks(channels).map(|c| c.iter().map(|&s| s as f64).sum::<f64>() / channels as f64).collect()
}

/// Amplitude of the component at `f` (Hann window, Goertzel).
pub(super) fn tone_amp(x: &[f64], rate: f64, f: f64) -> f64 {
    let n = x.len();
    let w = 2.0 * PI * f / rate;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    let mut wsum = 0.0;
    for (i, &v) in x.iter().enumerate() {
        let win = 0.5 - 0.5 * (2.0 * PI * i as f64 / (n - 1) as f64).cos();
        wsum += win;
        let s = v * win + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    2.0 * power.max(0.0).sqrt() / wsum
}

/// Dominant frequency of `x` between 50 Hz and min(3900 Hz, Nyquist).
pub(super) fn dominant_freq(x: &[f64], rate: u32) -> f64 {
    let r = rate as f64;
    let short = &x[..(rate as usize / 5).min(x.len())];
    let top = 3900.0f64.min(r / 2.0 - 50.0);
    let mut best = (0.0, 0.0);
    let mut f = 50.0;
    while f <= top {
        let a = tone_amp(short, r, f);
        if a > best.1 {
            best = (f, a);
        }
        f += 2.0;
    }
    let long = &x[..(rate as usize).min(x.len())];
    let mut fine = (best.0, 0.0);
    let mut f = best.0 - 6.0;
    while f <= best.0 + 6.0 {
        let a = tone_amp(long, r, f);
        if a > fine.1 {
            fine = (f, a);
        }
        f += 0.1;
    }
    fine.0
}

fn snr_db(out: &[f64], reference: &[f64], mask: &[bool]) -> f64 {
    let (mut es, mut en) = (0.0, 0.0);
    for i in 0..out.len().min(reference.len()).min(mask.len()) {
        if mask[i] {
            es += reference[i] * reference[i];
            let d = out[i] - reference[i];
            en += d * d;
        }
    }
    10.0 * (es / en.max(1e-9)).log10()
}

/// Delay (seconds) of `out` relative to the analytic `sig`, searched over integer lags in
/// `lag_range` (samples), then refined to 1/20 sample.
fn estimate_delay(out: &[f64], rate: u32, sig: Sig, lag_range: std::ops::RangeInclusive<i64>) -> f64 {
    let r = rate as usize;
    let (w0, w1) = (r * 6 / 10, r * 14 / 10); // 0.6 s .. 1.4 s: no losses there
    let reference = gen(sig, rate, w1 + 1, 0.0);
    let mut best = (0i64, f64::MIN);
    for lag in lag_range {
        let mut c = 0.0;
        for (n, &r) in reference.iter().enumerate().take(w1).skip(w0) {
            let j = n as i64 + lag;
            if j >= 0 && (j as usize) < out.len() {
                c += out[j as usize] * r;
            }
        }
        if c > best.1 {
            best = (lag, c);
        }
    }
    let window: Vec<bool> = (0..out.len()).map(|i| i >= w0 && i < w1).collect();
    let mut fine = (best.0 as f64, f64::MIN);
    for k in -20..=20 {
        let d = best.0 as f64 + k as f64 / 20.0;
        let reference = gen(sig, rate, w1, d / rate as f64);
        let s = snr_db(&out[..w1.min(out.len())], &reference, &window);
        if s > fine.1 {
            fine = (d, s);
        }
    }
    fine.0 / rate as f64
}

fn opus_params(channels: u8) -> CodecParams {
    CodecParams::new(CodecKind::Opus).with_channels(channels)
}

struct PairResult {
    freq: f64,
    snr: f64,
    snr_with_loss: f64,
    delay_ms: f64,
    comp_db: Vec<f64>,
}

/// Encodes `sig` as A, transcodes A -> B with the loss pattern, decodes B and measures.
fn run_pair(from: &CodecParams, to: &CodecParams, sig: Sig, backend: Backend, delay_hint: Option<f64>) -> PairResult {
    let a_rate = from.kind.sample_rate();
    let a_ch = from.channels as usize;
    let mut enc = encoder(from).unwrap();
    let fs = enc.frame_samples();
    let src = to_pcm(&gen(sig, a_rate, fs * PACKETS, 0.0), a_ch);
    let packets: Vec<Vec<u8>> = src
        .chunks(fs * a_ch)
        .map(|c| {
            let mut p = Vec::new();
            enc.encode(c, &mut p).unwrap();
            p
        })
        .collect();

    let mut t = Transcoder::with_backend(from, to, backend).unwrap();
    let mut frames = Vec::new();
    for i in 0..PACKETS {
        if LOST.contains(&i) {
            let next = if i + 1 < PACKETS && !LOST.contains(&(i + 1)) { Some(&packets[i + 1][..]) } else { None };
            t.push_lost(next, &mut frames).unwrap();
        } else {
            t.push(&packets[i], &mut frames).unwrap();
        }
    }
    let ticks = t.ticks_per_frame();
    assert!(frames.iter().all(|f| f.rtp_ticks == ticks));
    assert_eq!(ticks, to.rtp_ticks_per_packet());

    let b_rate = to.kind.sample_rate();
    let b_ch = to.channels as usize;
    let mut dec = decoder(to).unwrap();
    let mut pcm = Vec::new();
    for f in &frames {
        dec.decode(&f.payload, &mut pcm).unwrap();
    }
    if b_ch == 2 {
        // Same signal was put in both channels (or up-mixed): check they match.
        let (mut el, mut ed) = (0.0, 0.0);
        for c in pcm.chunks(2) {
            el += (c[0] as f64).powi(2);
            ed += (c[0] as f64 - c[1] as f64).powi(2);
        }
        assert!(10.0 * (el / ed.max(1.0)).log10() > 20.0, "stereo channels differ");
    }
    let out = to_mono_f64(&pcm, b_ch);
    let r = b_rate as f64;
    assert!(out.len() as f64 > 1.8 * r, "only {} samples out", out.len());

    let delay = match delay_hint {
        None => estimate_delay(&out, b_rate, sig, 0..=(0.06 * r) as i64),
        Some(d) => {
            // Near the chain's delay measured on the chirp: within +-0.5 ms for the tone, which
            // repeats every 1 ms; +-2 ms for the multi-tone, which almost repeats after ~9.5 ms
            // (3 x 310, 7 x 730, 11 x 1170 Hz) and may see more group delay at 310 Hz than the chirp
            // (Opus's VoIP high-pass).
            let c = (d * r).round() as i64;
            let half = ((if sig == Sig::Tone { 0.0005 } else { 0.002 }) * r).ceil() as i64;
            estimate_delay(&out, b_rate, sig, (c - half).max(0)..=(c + half))
        }
    };
    let reference = gen(sig, b_rate, out.len(), delay);
    let end = out.len() - (0.06 * r) as usize;
    let start = (0.1 * r) as usize;
    let in_range: Vec<bool> = (0..out.len()).map(|i| i >= start && i < end).collect();
    let mask: Vec<bool> = (0..out.len())
        .map(|i| {
            let t = i as f64 / r - delay;
            in_range[i]
                && !LOST.iter().any(|&k| {
                    let (a, b) = (k as f64 * 0.02, (k + 1) as f64 * 0.02);
                    t >= a - 0.002 && t < b + 0.030
                })
        })
        .collect();
    let snr = snr_db(&out, &reference, &mask);
    let snr_with_loss = snr_db(&out, &reference, &in_range);
    let analysed = &out[start..start + b_rate as usize];
    let freq = dominant_freq(analysed, b_rate);
    let comp_db = if sig == Sig::Multi {
        let ref_seg = &reference[start..start + b_rate as usize];
        MULTI.iter().map(|&(f, _, _)| 20.0 * (tone_amp(analysed, r, f) / tone_amp(ref_seg, r, f)).log10()).collect()
    } else {
        Vec::new()
    };
    PairResult { freq, snr, snr_with_loss, delay_ms: delay * 1000.0, comp_db }
}

/// Minimum SNR (dB, lost spans excluded) for the chain "encode A, transcode A -> B, decode B".
/// Measured values are printed by the test; each threshold leaves about 3 dB of margin under them
/// and lies far above what real faults give (a sample lost or repeated at a frame boundary, a wrong
/// rate, a channel mix-up or a misaligned resampler all land near or below 0 dB).
///
/// * G.711 only. Companded 8-bit PCM gives ~38 dB on a "random" signal, flat over a wide level
///   range (the multi-tone measures 37.5 dB). A 1000 Hz tone sampled at 8 kHz only ever visits five
///   sample magnitudes (period of 8 samples), so its quantisation error does not average out:
///   33.8 dB (PCMU), 34.9 dB (PCMA) — the reason the ITU uses 1004/1020 Hz test tones.
///   PCMU -> PCMU and PCMA -> PCMA are lossless (decode/encode is idempotent): one stage,
///   thresholds tone 31 / multi 34. PCMU <-> PCMA quantises twice (about -3 dB for the multi-tone,
///   little for the tone whose first-stage levels are re-quantised nearly exactly): 30 / 30.
/// * G.722 (64 kbit/s ADPCM, 16 kHz) with G.711 or G.722: the backward-adaptive predictor
///   follows a steady tone almost perfectly (42.7 dB through two G.722 stages), the multi-tone
///   measures ~33-35 dB; the 8 <-> 16 kHz resampler adds no measurable loss. Threshold 28 / 28.
/// * Opus is a perceptual codec and waveform SNR is not what it optimises: SILK's noise shaping
///   and the VoIP-mode high-pass (whose phase shift at 310 Hz alone caps the multi-tone near
///   10 dB; `OPUS_APPLICATION_AUDIO` would lift it a few dB) keep one Opus stage at ~15-25 dB on
///   the tone and ~9-13 dB on the multi-tone, at the default 16 kbit/s (8 kHz input) to 32 kbit/s
///   (48 kHz). Thresholds: one Opus stage tone 12 / multi 6; Opus -> Opus (two stages) 15 / 3.
fn snr_threshold(from: CodecKind, to: CodecKind, sig: Sig) -> f64 {
    use CodecKind::*;
    let tone = sig == Sig::Tone;
    match (from, to) {
        (Opus, Opus) => if tone { 15.0 } else { 3.0 },
        (Opus, _) | (_, Opus) => if tone { 12.0 } else { 6.0 },
        (G722, _) | (_, G722) => 28.0,
        (Pcmu, Pcmu) | (Pcma, Pcma) => if tone { 31.0 } else { 34.0 },
        _ => 30.0,
    }
}

fn label(p: &CodecParams) -> String {
    let base = match p.kind {
        CodecKind::Pcmu => "PCMU",
        CodecKind::Pcma => "PCMA",
        CodecKind::G722 => "G722",
        CodecKind::Opus => "Opus",
    };
    if p.channels == 2 {
        format!("{base}/2")
    } else {
        base.to_string()
    }
}

#[test]
fn codec_table_all_pairs() {
    let kinds = [CodecKind::Pcmu, CodecKind::Pcma, CodecKind::G722, CodecKind::Opus];
    let mut cases: Vec<(CodecParams, CodecParams, Backend)> = Vec::new();
    for &a in &kinds {
        for &b in &kinds {
            cases.push((CodecParams::new(a), CodecParams::new(b), Backend::Default));
        }
    }
    // Opus stereo (stereo=1): into and out of a mono G.711 leg, and stereo to stereo.
    cases.push((CodecParams::new(CodecKind::Pcmu), opus_params(2), Backend::Default));
    cases.push((opus_params(2), CodecParams::new(CodecKind::Pcmu), Backend::Default));
    cases.push((opus_params(2), opus_params(2), Backend::Default));
    // The all-ffmpeg path (ffmpeg libopus at 48 kHz + swresample), for comparison.
    cases.push((CodecParams::new(CodecKind::Pcmu), opus_params(1), Backend::Ffmpeg));
    cases.push((opus_params(1), CodecParams::new(CodecKind::Pcmu), Backend::Ffmpeg));
    cases.push((CodecParams::new(CodecKind::G722), CodecParams::new(CodecKind::Pcma), Backend::Ffmpeg));

    println!();
    println!("{:<22} {:>9} {:>9} {:>10} {:>9} {:>10} {:>10}  multi-tone components (dB vs source)", "pair", "signal", "freq Hz", "SNR dB", "min dB", "SNR+loss", "delay ms");
    let mut failures = Vec::new();
    for (from, to, backend) in &cases {
        let name = format!(
            "{} -> {}{}",
            label(from),
            label(to),
            if *backend == Backend::Ffmpeg { " [ffmpeg]" } else { "" }
        );
        let has_opus = from.kind == CodecKind::Opus || to.kind == CodecKind::Opus;
        let probe = run_pair(from, to, Sig::Chirp, *backend, None);
        let d = Some(probe.delay_ms / 1000.0);
        let multi = run_pair(from, to, Sig::Multi, *backend, d);
        let tone = run_pair(from, to, Sig::Tone, *backend, d);
        for (sig, r) in [(Sig::Tone, &tone), (Sig::Multi, &multi)] {
            let thr = snr_threshold(from.kind, to.kind, sig);
            let sig = if sig == Sig::Tone { "tone" } else { "multi" };
            let comps = r.comp_db.iter().map(|d| format!("{d:+.1}")).collect::<Vec<_>>().join(" ");
            println!(
                "{:<22} {:>9} {:>9.1} {:>10.1} {:>9.0} {:>10.1} {:>10.2}  {}",
                name, sig, r.freq, r.snr, thr, r.snr_with_loss, r.delay_ms, comps
            );
            if r.snr < thr {
                failures.push(format!("{name} {sig}: SNR {:.1} dB < {thr} dB", r.snr));
            }
        }
        if (tone.freq - 1000.0).abs() > 10.0 {
            failures.push(format!("{name}: tone at {:.1} Hz", tone.freq));
        }
        println!("{:<22} {:>9} {:>9} {:>10.1} {:>9} {:>10.1} {:>10.2}", name, "chirp", "", probe.snr, "", probe.snr_with_loss, probe.delay_ms);
        if (multi.freq - 310.0).abs() > 10.0 {
            failures.push(format!("{name}: multi-tone dominant at {:.1} Hz, expected 310", multi.freq));
        }
        // "Present": within +-3 dB of the source; +-6 dB through Opus, whose SILK layer at
        // 16 kbit/s narrowband loses up to ~5 dB on the weakest (-23 dBFS) 2330 Hz component.
        let tol = if has_opus { 6.0 } else { 3.0 };
        for (i, d) in multi.comp_db.iter().enumerate() {
            if d.abs() > tol {
                failures.push(format!("{name}: component {} Hz off by {d:.1} dB", MULTI[i].0));
            }
        }
    }
    assert!(failures.is_empty(), "codec table failures:\n{}", failures.join("\n"));
}

/// Pushes `packets` through `t`, checking after every push that no sample went missing:
/// output frames * frame size + pending == input samples converted to the output rate.
fn push_all_exact(t: &mut Transcoder, packets: &[Vec<u8>], in_samples_per_packet: usize, in_rate: u32, out_bytes: usize) -> Vec<OutFrame> {
    let mut frames = Vec::new();
    let out_rate = t.pivot_rate() as usize;
    for (i, p) in packets.iter().enumerate() {
        t.push(p, &mut frames).unwrap();
        let expected_in = (i + 1) * in_samples_per_packet * out_rate / in_rate as usize;
        assert_eq!(frames.len() * t.output_frame_samples() + t.pending_samples(), expected_in, "after packet {i}");
        for f in &frames {
            assert_eq!(f.rtp_ticks, t.ticks_per_frame());
            if out_bytes > 0 {
                assert_eq!(f.payload.len(), out_bytes);
            }
        }
    }
    frames
}

#[test]
fn repacketize_pcmu_20_to_10_30_40_and_back() {
    let n_packets = 60; // 1.2 s: a multiple of 10, 30 and 40 ms
    let src = to_pcm(&gen(Sig::Multi, 8000, 160 * n_packets, 0.0), 1);
    let mut enc = encoder(&CodecParams::new(CodecKind::Pcmu)).unwrap();
    let packets: Vec<Vec<u8>> = src
        .chunks(160)
        .map(|c| {
            let mut p = Vec::new();
            enc.encode(c, &mut p).unwrap();
            p
        })
        .collect();
    for ptime in [10u32, 30, 40] {
        let p20 = CodecParams::new(CodecKind::Pcmu);
        let px = CodecParams::new(CodecKind::Pcmu).with_ptime(ptime);
        let mut there = Transcoder::new(&p20, &px).unwrap();
        assert_eq!(there.ticks_per_frame(), 8 * ptime);
        let mid = push_all_exact(&mut there, &packets, 160, 8000, 8 * ptime as usize);
        assert_eq!(mid.len(), (n_packets * 20) / ptime as usize);
        assert_eq!(there.pending_samples(), 0);
        let mid_payloads: Vec<Vec<u8>> = mid.into_iter().map(|f| f.payload).collect();
        let mut back = Transcoder::new(&px, &p20).unwrap();
        let out = push_all_exact(&mut back, &mid_payloads, 8 * ptime as usize, 8000, 160);
        assert_eq!(out.len(), n_packets);
        // G.711 decode/encode is idempotent: the round trip must be bit-exact, i.e. no sample lost,
        // duplicated or shifted at any frame boundary.
        for (i, (a, b)) in packets.iter().zip(&out).enumerate() {
            assert_eq!(a, &b.payload, "ptime {ptime}: packet {i} differs");
        }
        let mut dec = decoder(&p20).unwrap();
        let mut pcm = Vec::new();
        for f in &out {
            dec.decode(&f.payload, &mut pcm).unwrap();
        }
        let out_f = to_mono_f64(&pcm, 1);
        let reference = gen(Sig::Multi, 8000, out_f.len(), 0.0);
        let snr = snr_db(&out_f, &reference, &vec![true; out_f.len()]);
        println!("PCMU 20 -> {ptime} -> 20 ms: {} frames, SNR {snr:.1} dB", out.len());
        assert!(snr > 33.0, "SNR {snr}");
    }
}

#[test]
fn repacketize_g722_and_opus_20_to_10_30_40_and_back() {
    let n_packets = 60;
    for kind in [CodecKind::G722, CodecKind::Opus] {
        let rate = kind.sample_rate();
        let fs = (rate / 50) as usize;
        let src = to_pcm(&gen(Sig::Multi, rate, fs * n_packets, 0.0), 1);
        let p20 = CodecParams::new(kind);
        let mut enc = encoder(&p20).unwrap();
        let packets: Vec<Vec<u8>> = src
            .chunks(fs)
            .map(|c| {
                let mut p = Vec::new();
                enc.encode(c, &mut p).unwrap();
                p
            })
            .collect();
        for ptime in [10u32, 30, 40] {
            let px = CodecParams::new(kind).with_ptime(ptime);
            let out_bytes = if kind == CodecKind::G722 { 8 * ptime as usize } else { 0 };
            let mut there = Transcoder::new(&p20, &px).unwrap();
            assert_eq!(there.ticks_per_frame(), kind.rtp_clock_rate() / 1000 * ptime);
            let mid = push_all_exact(&mut there, &packets, fs, rate, out_bytes);
            assert_eq!(mid.len(), (n_packets * 20) / ptime as usize);
            if kind == CodecKind::Opus {
                for f in &mid {
                    assert_eq!(packet_samples(&f.payload, 48000).unwrap(), 48 * ptime as usize);
                }
            }
            let mid_payloads: Vec<Vec<u8>> = mid.into_iter().map(|f| f.payload).collect();
            let mut back = Transcoder::new(&px, &p20).unwrap();
            let out = push_all_exact(&mut back, &mid_payloads, fs * ptime as usize / 20, rate, if kind == CodecKind::G722 { 160 } else { 0 });
            assert_eq!(out.len(), n_packets);
            let mut dec = decoder(&p20).unwrap();
            let mut pcm = Vec::new();
            for f in &out {
                dec.decode(&f.payload, &mut pcm).unwrap();
            }
            assert_eq!(pcm.len(), fs * n_packets);
            let out_f = to_mono_f64(&pcm, 1);
            let delay = estimate_delay(&out_f, rate, Sig::Multi, 0..=(0.06 * rate as f64) as i64);
            let reference = gen(Sig::Multi, rate, out_f.len(), delay);
            let mask: Vec<bool> = (0..out_f.len()).map(|i| i > rate as usize / 10).collect();
            let snr = snr_db(&out_f, &reference, &mask);
            println!("{kind:?} 20 -> {ptime} -> 20 ms: {} frames, delay {:.2} ms, SNR {snr:.1} dB", out.len(), delay * 1e3);
            // Three codec stages in tandem (source encode, two transcodes): G.722 ~3x the noise of
            // one stage (-5 dB), Opus the same. A lost or repeated block at a boundary would drop
            // the SNR to ~0 dB.
            let min = if kind == CodecKind::G722 { 15.0 } else { 5.0 };
            assert!(snr > min, "{kind:?} {ptime} ms: SNR {snr:.1}");
        }
    }
}

#[test]
fn flush_pads_the_last_partial_frame_with_silence() {
    let p20 = CodecParams::new(CodecKind::Pcmu);
    let p30 = CodecParams::new(CodecKind::Pcmu).with_ptime(30);
    let mut t = Transcoder::new(&p20, &p30).unwrap();
    let mut frames = Vec::new();
    let pkt = vec![0x00u8; 160]; // μ-law 0x00: large negative value
    for _ in 0..4 {
        t.push(&pkt, &mut frames).unwrap();
    }
    assert_eq!(frames.len(), 2); // 80 ms in: two 30 ms frames, 20 ms pending
    assert_eq!(t.pending_samples(), 160);
    t.flush(&mut frames).unwrap();
    assert_eq!(frames.len(), 3);
    assert_eq!(t.pending_samples(), 0);
    let last = &frames[2].payload;
    assert_eq!(last.len(), 240);
    assert!(last[..160].iter().all(|&b| b == 0x00));
    assert!(last[160..].iter().all(|&b| b == linear_to_ulaw(0)), "padding is silence");
    t.flush(&mut frames).unwrap();
    assert_eq!(frames.len(), 3, "flush of an empty FIFO emits nothing");
    // Recycled buffers are reused.
    let f = frames.pop().unwrap();
    let ptr = f.payload.as_ptr();
    t.recycle(f);
    for _ in 0..3 {
        t.push(&pkt, &mut frames).unwrap();
    }
    assert_eq!(frames[2].payload.as_ptr(), ptr);
}

/// Opus with useinbandfec: concealing a lost frame from the next packet's FEC data must come much
/// closer to the real frame than plain PLC.
#[test]
fn opus_fec_beats_plc() {
    let rate = 16000;
    let mut params = opus_params(1);
    params.opus.fec = true;
    params.opus.packet_loss_perc = 20;
    params.opus.bitrate = 24000;
    let mut enc = OpusEncoder::new(&params, rate).unwrap();
    let fs = enc.frame_samples();
    // Harmonics of a gliding pitch under a syllable envelope, which PLC cannot extrapolate well.
    let src = to_pcm(&gen(Sig::Vowel, rate, fs * 100, 0.0), 1);
    let packets: Vec<Vec<u8>> = src
        .chunks(fs)
        .map(|c| {
            let mut p = Vec::new();
            enc.encode(c, &mut p).unwrap();
            p
        })
        .collect();
    let lost: Vec<usize> = (5..95).step_by(9).collect();
    let mut clean = OpusDecoder::new(&params, rate).unwrap();
    let mut fec = OpusDecoder::new(&params, rate).unwrap();
    let mut plc = OpusDecoder::new(&params, rate).unwrap();
    let (mut ref_pcm, mut fec_pcm, mut plc_pcm) = (Vec::new(), Vec::new(), Vec::new());
    for (i, p) in packets.iter().enumerate() {
        clean.decode(p, &mut ref_pcm).unwrap();
        if lost.contains(&i) {
            fec.conceal(fs, Some(&packets[i + 1]), &mut fec_pcm).unwrap();
            plc.conceal(fs, None, &mut plc_pcm).unwrap();
        } else {
            fec.decode(p, &mut fec_pcm).unwrap();
            plc.decode(p, &mut plc_pcm).unwrap();
        }
    }
    assert_eq!(ref_pcm.len(), fec_pcm.len());
    assert_eq!(ref_pcm.len(), plc_pcm.len());
    let mask: Vec<bool> = (0..ref_pcm.len()).map(|i| lost.contains(&(i / fs))).collect();
    let r = to_mono_f64(&ref_pcm, 1);
    let snr_fec = snr_db(&to_mono_f64(&fec_pcm, 1), &r, &mask);
    let snr_plc = snr_db(&to_mono_f64(&plc_pcm, 1), &r, &mask);
    println!("Opus 24 kbit/s WB, {} lost frames: FEC {snr_fec:.1} dB, PLC {snr_plc:.1} dB (vs. the frames decoded from the real packets)", lost.len());
    assert!(snr_fec > snr_plc + 3.0, "FEC {snr_fec:.1} dB vs PLC {snr_plc:.1} dB");

    // Same through the transcoder (Opus -> PCMU), decoded back, compared with the loss-free run.
    let pcmu = CodecParams::new(CodecKind::Pcmu);
    let run = |use_next: bool, drop: bool| -> Vec<f64> {
        let mut t = Transcoder::new(&params, &pcmu).unwrap();
        let mut frames = Vec::new();
        for (i, p) in packets.iter().enumerate() {
            if drop && lost.contains(&i) {
                t.push_lost(if use_next { Some(&packets[i + 1]) } else { None }, &mut frames).unwrap();
            } else {
                t.push(p, &mut frames).unwrap();
            }
        }
        let mut d = decoder(&pcmu).unwrap();
        let mut pcm = Vec::new();
        for f in &frames {
            d.decode(&f.payload, &mut pcm).unwrap();
        }
        to_mono_f64(&pcm, 1)
    };
    let clean8 = run(false, false);
    let (fec8, plc8) = (run(true, true), run(false, true));
    let mask8: Vec<bool> = (0..clean8.len()).map(|i| lost.contains(&(i / 160))).collect();
    let (a, b) = (snr_db(&fec8, &clean8, &mask8), snr_db(&plc8, &clean8, &mask8));
    println!("through Opus -> PCMU transcoder: FEC {a:.1} dB, PLC {b:.1} dB");
    assert!(a > b + 3.0);
}

/// usedtx: silence is sent as 1-2 byte payloads (after libopus's ~200 ms hangover); without DTX
/// it is not.
#[test]
fn opus_dtx_small_payloads_for_silence() {
    for rate in [8000u32, 48000] {
        let mut sizes = [Vec::new(), Vec::new()];
        for (k, dtx) in [false, true].into_iter().enumerate() {
            let mut params = opus_params(1);
            params.opus.dtx = dtx;
            let mut enc = OpusEncoder::new(&params, rate).unwrap();
            let fs = enc.frame_samples();
            let speech = to_pcm(&gen(Sig::Multi, rate, fs * 25, 0.0), 1);
            let silence = vec![0i16; fs * 100];
            for c in speech.chunks(fs).chain(silence.chunks(fs)) {
                let mut p = Vec::new();
                enc.encode(c, &mut p).unwrap();
                sizes[k].push(p.len());
            }
        }
        let silent = |v: &Vec<usize>| v[25..].iter().filter(|&&n| n <= 2).count();
        let avg = |v: &Vec<usize>| v[25..].iter().sum::<usize>() as f64 / 100.0;
        println!(
            "{rate} Hz: silence frames <= 2 bytes: DTX off {}/100 (avg {:.1} B), DTX on {}/100 (avg {:.1} B); speech avg {:.1} B",
            silent(&sizes[0]),
            avg(&sizes[0]),
            silent(&sizes[1]),
            avg(&sizes[1]),
            sizes[1][..25].iter().sum::<usize>() as f64 / 25.0
        );
        assert_eq!(silent(&sizes[0]), 0);
        assert!(silent(&sizes[1]) >= 70, "DTX frames: {:?}", &sizes[1][25..]);
        assert!(sizes[1][..25].iter().all(|&n| n > 2), "speech must not be DTX");
    }
    // And through a transcoder: PCMU silence -> Opus with usedtx.
    let mut to = opus_params(1);
    to.opus.dtx = true;
    let mut t = Transcoder::new(&CodecParams::new(CodecKind::Pcmu), &to).unwrap();
    let mut frames = Vec::new();
    for _ in 0..100 {
        t.push(&[linear_to_ulaw(0); 160], &mut frames).unwrap();
    }
    let small = frames.iter().filter(|f| f.payload.len() <= 2).count();
    assert!(small >= 70, "{small} DTX frames of {}", frames.len());
    assert!(frames.iter().all(|f| f.rtp_ticks == 960));
}

/// ITU-T G.191 STL `ulaw_compress`, transcribed (16-bit input).
fn stl_ulaw(x: i16) -> u8 {
    let x = x as i32;
    let mut absno = if x < 0 { ((!x) >> 2) + 33 } else { (x >> 2) + 33 };
    if absno > 0x1FFF {
        absno = 0x1FFF;
    }
    let mut i = absno >> 6;
    let mut segno = 1;
    while i != 0 {
        segno += 1;
        i >>= 1;
    }
    let high_nibble = 0x0008 - segno;
    let low_nibble = 0x000F - ((absno >> segno) & 0x000F);
    let mut v = (high_nibble << 4) | low_nibble;
    if x >= 0 {
        v |= 0x0080;
    }
    v as u8
}

/// ITU-T G.191 STL `alaw_compress`, transcribed (16-bit input).
fn stl_alaw(x: i16) -> u8 {
    let x = x as i32;
    let mut ix = if x < 0 { (!x) >> 4 } else { x >> 4 };
    if ix > 15 {
        let mut iexp = 1;
        while ix > 16 + 15 {
            ix >>= 1;
            iexp += 1;
        }
        ix -= 16;
        ix += iexp << 4;
    }
    if x >= 0 {
        ix |= 0x0080;
    }
    (ix ^ 0x0055) as u8
}

/// Our tables against the ITU-T reference (bit-exact) and against ffmpeg's `pcm_mulaw`/`pcm_alaw`:
/// decoding is identical; encoding differs only where ffmpeg's tables put a decision level halfway
/// between two reconstruction levels instead of at G.711's interval edge, so a differing code is
/// always the neighbouring level.
#[test]
fn g711_tables_match_itu_reference_and_ffmpeg() {
    for kind in [CodecKind::Pcmu, CodecKind::Pcma] {
        let params = CodecParams::new(kind);
        type Fns = (fn(i16) -> u8, fn(u8) -> i16, fn(i16) -> u8);
        let (ours_enc, ours_dec, stl): Fns = if kind == CodecKind::Pcmu {
            (linear_to_ulaw, ulaw_to_linear, stl_ulaw)
        } else {
            (linear_to_alaw, alaw_to_linear, stl_alaw)
        };
        // Decoding: all 256 codes, identical to ffmpeg.
        let codes: Vec<u8> = (0..=255).collect();
        let mut ff_dec = FfmpegDecoder::new(&params).unwrap();
        let mut theirs = Vec::new();
        ff_dec.decode(&codes, &mut theirs).unwrap();
        let ours: Vec<i16> = codes.iter().map(|&c| ours_dec(c)).collect();
        assert_eq!(ours, theirs, "{kind:?} decode");
        let mut levels = ours.clone();
        levels.sort();
        // Encoding: all 65536 inputs.
        let mut ff_enc = FfmpegEncoder::new(&params, 8000).unwrap();
        let all: Vec<i16> = (i16::MIN..=i16::MAX).collect();
        let (mut differ, mut err_ours, mut err_ff) = (0usize, 0f64, 0f64);
        for chunk in all.chunks(160) {
            let mut frame = chunk.to_vec();
            frame.resize(160, 0);
            let mut theirs = Vec::new();
            ff_enc.encode(&frame, &mut theirs).unwrap();
            for (&x, &t) in frame.iter().zip(&theirs).take(chunk.len()) {
                let o = ours_enc(x);
                assert_eq!(o, stl(x), "{kind:?} encode {x} vs ITU-T STL");
                let (lo, lt) = (ours_dec(o), ours_dec(t));
                err_ours += (lo as f64 - x as f64).powi(2);
                err_ff += (lt as f64 - x as f64).powi(2);
                if o != t {
                    differ += 1;
                    let (a, b) = (lo.min(lt), lo.max(lt));
                    assert!(!levels.iter().any(|&l| l > a && l < b), "{kind:?} {x}: ours {lo}, ffmpeg {lt}: not neighbours");
                }
            }
        }
        println!(
            "{kind:?}: encoding differs from ffmpeg for {differ} of 65536 inputs (neighbouring levels); \
             uniform-input MSE ours {:.0}, ffmpeg {:.0}",
            err_ours / 65536.0,
            err_ff / 65536.0
        );
        assert!(differ < 65536 / 20, "{differ}");
    }
}

#[test]
fn g711_plc_continues_a_tone() {
    let params = CodecParams::new(CodecKind::Pcma);
    let mut enc = encoder(&params).unwrap();
    let mut dec = decoder(&params).unwrap();
    let src = to_pcm(&gen(Sig::Tone, 8000, 160 * 10, 0.0), 1);
    let mut out = Vec::new();
    for (i, c) in src.chunks(160).enumerate() {
        let mut p = Vec::new();
        enc.encode(c, &mut p).unwrap();
        if i == 5 {
            dec.conceal(160, Some(&p), &mut out).unwrap();
        } else {
            dec.decode(&p, &mut out).unwrap();
        }
    }
    let o = to_mono_f64(&out, 1);
    let r = gen(Sig::Tone, 8000, o.len(), 0.0);
    // First 10 ms of a loss at full level: the repeated period matches the tone.
    let mask: Vec<bool> = (0..o.len()).map(|i| (800..880).contains(&i)).collect();
    let snr = snr_db(&o, &r, &mask);
    println!("G.711 PLC, first 10 ms of a lost frame of a 1 kHz tone: {snr:.1} dB");
    assert!(snr > 20.0);
    // Whole frame (with the fade) and the recovery: still the tone, no click.
    let f = dominant_freq(&o[700..1300], 8000);
    assert!((f - 1000.0).abs() < 10.0, "{f}");
}

#[test]
fn ffmpeg_opus_plc_via_toc_only_packet() {
    let params = opus_params(1);
    let mut enc = encoder(&params).unwrap();
    let mut dec = decoder_with(&params, 48000, Backend::Ffmpeg).unwrap();
    let src = to_pcm(&gen(Sig::Tone, 48000, 960 * 10, 0.0), 1);
    let mut out = Vec::new();
    for (i, c) in src.chunks(960).enumerate() {
        let mut p = Vec::new();
        enc.encode(c, &mut p).unwrap();
        let before = out.len();
        if i == 5 {
            dec.conceal(960, None, &mut out).unwrap();
        } else {
            dec.decode(&p, &mut out).unwrap();
        }
        assert_eq!(out.len() - before, 960, "frame {i}");
    }
    let o = to_mono_f64(&out, 1);
    let plc = &o[5 * 960..6 * 960];
    let energy: f64 = plc.iter().map(|s| s * s).sum::<f64>() / 960.0;
    assert!(energy.sqrt() > 1000.0, "PLC output is (near) silent: rms {}", energy.sqrt());
}

#[test]
fn invalid_params_are_rejected() {
    assert!(encoder(&CodecParams::new(CodecKind::Pcmu).with_ptime(25)).is_err());
    assert!(encoder(&CodecParams::new(CodecKind::Pcmu).with_channels(2)).is_err());
    assert!(encoder(&opus_params(3)).is_err());
    let mut p = opus_params(1);
    p.opus.complexity = 11;
    assert!(decoder(&p).is_err());
    let mut dtx = opus_params(1);
    dtx.opus.dtx = true;
    assert!(matches!(encoder_with(&dtx, 48000, Backend::Ffmpeg), Err(CodecError::Unsupported(_))));
    assert!(encoder_with(&CodecParams::new(CodecKind::Pcmu), 16000, Backend::Default).is_err());
    let mut e = encoder(&CodecParams::new(CodecKind::G722)).unwrap();
    assert!(matches!(e.encode(&[0; 100], &mut Vec::new()), Err(CodecError::FrameSize { expected: 320, got: 100 })));
    assert!(decoder(&opus_params(1)).unwrap().decode(&[0xFF, 0xFF, 0xFF], &mut Vec::new()).is_err());
}

#[test]
fn types_are_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Transcoder>();
    assert_send::<Box<dyn AudioEncoder>>();
    assert_send::<Box<dyn AudioDecoder>>();
    assert_send::<Resampler>();
}

#[test]
fn opus_to_opus_pivot_follows_maxplaybackrate() {
    let mut to = opus_params(1);
    to.opus.max_playback_rate = 16000;
    let t = Transcoder::new(&opus_params(1), &to).unwrap();
    assert_eq!((t.decode_rate(), t.pivot_rate(), t.uses_resampler(), t.ticks_per_frame()), (16000, 16000, false, 960));
    let t = Transcoder::new(&opus_params(1), &opus_params(2)).unwrap();
    assert_eq!((t.pivot_rate(), t.ticks_per_frame()), (48000, 960));
}

#[test]
fn rtp_clock_and_sample_rates() {
    assert_eq!(CodecKind::G722.rtp_clock_rate(), 8000);
    assert_eq!(CodecKind::G722.sample_rate(), 16000);
    assert_eq!(CodecKind::Opus.rtp_clock_rate(), 48000);
    assert_eq!(CodecParams::new(CodecKind::G722).rtp_ticks_per_packet(), 160);
    assert_eq!(CodecParams::new(CodecKind::Opus).with_ptime(30).rtp_ticks_per_packet(), 1440);
    let mut e = encoder(&CodecParams::new(CodecKind::G722)).unwrap();
    let mut out = Vec::new();
    e.encode(&[0; 320], &mut out).unwrap();
    assert_eq!(out.len(), 160, "G.722 20 ms = 320 samples = 160 bytes");
    // Opus in a PCMU transcoder runs at 8 kHz both ways, no resampler.
    let t = Transcoder::new(&CodecParams::new(CodecKind::Pcmu), &opus_params(1)).unwrap();
    assert_eq!((t.pivot_rate(), t.uses_resampler(), t.ticks_per_frame()), (8000, false, 960));
    let t = Transcoder::new(&opus_params(1), &CodecParams::new(CodecKind::Pcmu)).unwrap();
    assert_eq!((t.decode_rate(), t.uses_resampler(), t.ticks_per_frame()), (8000, false, 160));
    let t = Transcoder::new(&opus_params(1), &CodecParams::new(CodecKind::G722)).unwrap();
    assert_eq!((t.decode_rate(), t.uses_resampler(), t.ticks_per_frame()), (16000, false, 160));
    let t = Transcoder::with_backend(&opus_params(1), &CodecParams::new(CodecKind::Pcmu), Backend::Ffmpeg).unwrap();
    assert_eq!((t.decode_rate(), t.uses_resampler()), (48000, true));
}

