//! Opus next to a narrowband or wideband leg runs at that leg's rate: decoded straight to 8 kHz
//! (16 kHz for G.722) and encoded from it, with no resampler anywhere in the chain. Tone helpers
//! come from `tests.rs`.

use super::tests::{dominant_freq, gen, to_pcm, tone_amp, Sig};
use super::*;

#[test]
fn an_opus_tocs_bandwidth_follows_rfc_6716() {
    use OpusBandwidth::*;
    let expected = [(0..=3, Narrowband), (4..=7, Mediumband), (8..=11, Wideband), (12..=13, SuperWideband), (14..=15, Fullband)];
    let celt = [(16..=19, Narrowband), (20..=23, Wideband), (24..=27, SuperWideband), (28..=31, Fullband)];
    for (configs, bandwidth) in expected.into_iter().chain(celt) {
        for config in configs {
            for low_bits in [0, 0b111] {
                assert_eq!(OpusBandwidth::of_toc(config << 3 | low_bits), bandwidth, "configuration {config}");
            }
        }
    }
    assert!(Narrowband < Wideband && Wideband < Fullband, "ordered narrowest first");
}

/// What the gateway asks of a browser bridged to G.711 (`maxplaybackrate=8000`) is what libopus
/// then encodes, even from fullband input: the stand-in browsers of the load tool rely on it.
#[test]
fn an_encoder_told_maxplaybackrate_8000_stays_narrowband() {
    for (limit, widest) in [(8_000, OpusBandwidth::Narrowband), (48_000, OpusBandwidth::Fullband)] {
        let mut params = CodecParams::new(CodecKind::Opus).with_channels(1);
        params.opus.max_playback_rate = limit;
        let mut encoder = encoder(&params).unwrap();
        let mut seen = Vec::new();
        for i in 0..25 {
            let pcm: Vec<i16> = (0..960).map(|n| (((i * 960 + n) as f64 * 2.0 * std::f64::consts::PI * 9_000.0 / 48_000.0).sin() * 8_000.0) as i16).collect();
            let mut out = Vec::new();
            encoder.encode(&pcm, &mut out).unwrap();
            seen.push(OpusBandwidth::of_toc(out[0]));
        }
        assert_eq!(seen.iter().max(), Some(&widest), "maxplaybackrate {limit}: {seen:?}");
    }
}

#[test]
fn opus_next_to_g711_and_g722_needs_no_resampler() {
    for partner in [CodecKind::Pcmu, CodecKind::Pcma, CodecKind::G722] {
        let rate = partner.sample_rate();
        for channels in [1, 2] {
            let opus = CodecParams::new(CodecKind::Opus).with_channels(channels);
            let other = CodecParams::new(partner);
            let to_opus = Transcoder::new(&other, &opus).unwrap();
            assert!(!to_opus.uses_resampler(), "{partner:?} -> Opus/{channels}");
            assert_eq!((to_opus.decode_rate(), to_opus.pivot_rate(), to_opus.ticks_per_frame()), (rate, rate, 960));
            let from_opus = Transcoder::new(&opus, &other).unwrap();
            assert!(!from_opus.uses_resampler(), "Opus/{channels} -> {partner:?}");
            assert_eq!((from_opus.decode_rate(), from_opus.pivot_rate()), (rate, rate), "Opus decoded at {partner:?}'s rate");
        }
    }
    // The one pair that must resample: G.711 <-> G.722 (8 <-> 16 kHz).
    let t = Transcoder::new(&CodecParams::new(CodecKind::Pcmu), &CodecParams::new(CodecKind::G722)).unwrap();
    assert!(t.uses_resampler());
}

/// PCMU payloads of a 1 kHz tone, `packets` x 20 ms.
fn pcmu_tone(packets: usize) -> Vec<Vec<u8>> {
    let pcmu = CodecParams::new(CodecKind::Pcmu);
    let mut enc = encoder(&pcmu).unwrap();
    let pcm = to_pcm(&gen(Sig::Tone, 8000, 160 * packets, 0.0), 1);
    pcm.chunks(160)
        .map(|c| {
            let mut p = Vec::new();
            enc.encode(c, &mut p).unwrap();
            p
        })
        .collect()
}

/// PCMU -> Opus -> PCMU, as a call through two gateways (or a gateway and an Opus echo) carries
/// it: the Opus in the middle must be narrowband (encoded from 8 kHz input) and the tone must
/// come out at 1 kHz at about its level.
#[test]
fn tone_survives_pcmu_opus_pcmu() {
    let pcmu = CodecParams::new(CodecKind::Pcmu);
    let opus = CodecParams::new(CodecKind::Opus);
    let mut there = Transcoder::new(&pcmu, &opus).unwrap();
    let mut back = Transcoder::new(&opus, &pcmu).unwrap();
    let (mut opus_frames, mut pcmu_frames) = (Vec::new(), Vec::new());
    for payload in pcmu_tone(100) {
        there.push(&payload, &mut opus_frames).unwrap();
        for frame in opus_frames.drain(..) {
            assert_eq!(OpusBandwidth::of_toc(frame.payload[0]), OpusBandwidth::Narrowband, "Opus from 8 kHz input is narrowband");
            assert_eq!(opus_packet_samples(&frame.payload, 48000).unwrap(), 960);
            back.push(&frame.payload, &mut pcmu_frames).unwrap();
            there.recycle(frame);
        }
    }
    assert!(pcmu_frames.len() >= 98, "{} frames came back", pcmu_frames.len());
    let mut dec = decoder(&pcmu).unwrap();
    let mut pcm = Vec::new();
    for frame in &pcmu_frames {
        assert_eq!((frame.payload.len(), frame.rtp_ticks), (160, 160));
        dec.decode(&frame.payload, &mut pcm).unwrap();
    }
    // Skip the codecs' start-up (first 100 ms).
    let out: Vec<f64> = pcm[800..].iter().map(|&s| s as f64).collect();
    let freq = dominant_freq(&out, 8000);
    assert!((freq - 1000.0).abs() < 2.0, "tone came back at {freq:.1} Hz");
    let level_db = 20.0 * (tone_amp(&out[..8000], 8000.0, freq) / (0.5 * 32767.0)).log10();
    assert!(level_db.abs() < 3.0, "tone level off by {level_db:.1} dB");
}

/// G.722 -> Opus -> G.722 keeps the Opus at 16 kHz (wideband at most) and the tone at 1 kHz.
#[test]
fn tone_survives_g722_opus_g722() {
    let g722 = CodecParams::new(CodecKind::G722);
    let opus = CodecParams::new(CodecKind::Opus);
    let mut enc = encoder(&g722).unwrap();
    let mut there = Transcoder::new(&g722, &opus).unwrap();
    let mut back = Transcoder::new(&opus, &g722).unwrap();
    let pcm = to_pcm(&gen(Sig::Tone, 16000, 320 * 100, 0.0), 1);
    let (mut payload, mut opus_frames, mut g722_frames) = (Vec::new(), Vec::new(), Vec::new());
    for chunk in pcm.chunks(320) {
        payload.clear();
        enc.encode(chunk, &mut payload).unwrap();
        there.push(&payload, &mut opus_frames).unwrap();
        for frame in opus_frames.drain(..) {
            assert!(OpusBandwidth::of_toc(frame.payload[0]) <= OpusBandwidth::Wideband, "Opus from 16 kHz input is wideband at most");
            back.push(&frame.payload, &mut g722_frames).unwrap();
        }
    }
    let mut dec = decoder(&g722).unwrap();
    let mut out = Vec::new();
    for frame in &g722_frames {
        dec.decode(&frame.payload, &mut out).unwrap();
    }
    let out: Vec<f64> = out[1600..].iter().map(|&s| s as f64).collect();
    let freq = dominant_freq(&out, 16000);
    assert!((freq - 1000.0).abs() < 2.0, "tone came back at {freq:.1} Hz");
}

/// Only the codec module may name the libopus binding crate (project rule: one place for each
/// foreign library).
#[test]
fn only_the_codec_module_imports_the_libopus_binding() {
    fn visit(dir: &std::path::Path, offenders: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.ends_with("media/codec") {
                continue;
            }
            if path.is_dir() {
                visit(&path, offenders);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                if text.contains("audiopus_sys") || text.contains("opus_encoder_create") {
                    offenders.push(path.display().to_string());
                }
            }
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut offenders = Vec::new();
    for dir in ["src", "benches", "tests"] {
        visit(&root.join(dir), &mut offenders);
    }
    assert!(offenders.is_empty(), "libopus used outside src/media/codec: {offenders:?}");
}
