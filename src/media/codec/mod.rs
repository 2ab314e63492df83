//! Audio codec layer of the media engine: encoders, decoders, packet loss concealment,
//! resampling and RTP-payload transcoding between PCMU, PCMA, G.722 and Opus.
//!
//! This module is the only part of sipbridge that talks to FFmpeg (and to libopus).
//!
//! # Which implementation does what ([`Backend::Default`])
//! | codec | encode | decode | concealment (`conceal`) |
//! |---|---|---|---|
//! | PCMU / PCMA | Rust tables (`g711.rs`), bit-exact with ITU-T G.711 and ffmpeg's `pcm_mulaw`/`pcm_alaw`, ~10x cheaper | Rust tables | pitch-repetition PLC (`plc.rs`, after ITU-T G.711 Appendix I) |
//! | G.722 | ffmpeg `g722` (64 kbit/s) | ffmpeg `g722` | same pitch-repetition PLC at 16 kHz |
//! | Opus | libopus, called directly (`opus.rs`) | libopus, decoding straight to the rate the other leg needs | in-band FEC from the next packet when present, libopus PLC otherwise |
//!
//! Opus goes straight to libopus (the same library ffmpeg wraps) because FFmpeg 5.1's wrappers
//! expose neither DTX on the encoder (`libopusenc` has no `dtx` option before FFmpeg 6) nor FEC
//! decoding or PLC on the decoder (`libopusdec` always passes `decode_fec = 0`, an empty packet means
//! end of stream), and because ffmpeg's Opus decoders only output 48 kHz, which costs a
//! 48 kHz decode plus a 48 k -> 8 k resample on every frame towards a G.711 leg.
//! It is also cheaper: ffmpeg's wrappers use libopus's multistream API, which on this kind of
//! (virtual) machine executes a trapping `CPUID` on every call (perf: ~45 % of the wrapper's decode
//! time), 65 µs vs 31 µs per 48 kHz decode, 83 µs vs 69 µs per 8 kHz encode.
//! libopus is reached through the `audiopus_sys` binding crate (only `opus.rs` uses it), which
//! finds the system libopus with pkg-config and links it dynamically: the build needs Debian's
//! `pkg-config` and `libopus-dev` (libopus0 is already a dependency of libavcodec59). Without them
//! its build script falls back to building a bundled libopus with cmake; `scripts/system-deps.sh`
//! installs both, so that fallback never runs.
//! [`Backend::Ffmpeg`] keeps the all-ffmpeg path (pcm_mulaw, pcm_alaw, g722, libopus through
//! libavcodec, swresample down from 48 kHz) for comparison: the benchmark measures both.
//!
//! # Sample rates and RTP clocks
//! [`CodecKind::rtp_clock_rate`] is the RTP timestamp clock, [`CodecKind::sample_rate`] the audio rate
//! of the codec's PCM. They differ for G.722 (clock 8000, audio 16 kHz, RFC 3551) and, in a
//! transcoder, for Opus, whose RTP clock is always 48 kHz but whose PCM side runs at the rate of the
//! other leg (8 kHz towards G.711, 16 kHz towards G.722, 48 kHz Opus to Opus): libopus encodes 8/16 kHz
//! input and decodes to 8/16 kHz directly, so no resampler is needed on the Opus side.
//!
//! # Conventions
//! * PCM is signed 16-bit, interleaved when stereo; "samples" counts samples *per channel*.
//! * `encode`/`decode`/`conceal` *append* to `out` (they never clear it).
//! * An encoder takes exactly `frame_samples() * channels` samples per call.

pub mod bench;
mod ffmpeg;
mod g711;
mod opus;
mod plc;
mod resample;
mod transcoder;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_rates;

pub use bench::run_benchmarks;
pub use ffmpeg::{FfmpegDecoder, FfmpegEncoder};
pub use g711::{G711Decoder, G711Encoder, alaw_to_linear, linear_to_alaw, linear_to_ulaw, ulaw_to_linear};
pub use opus::{packet_samples as opus_packet_samples, OpusBandwidth, OpusDecoder, OpusEncoder};
pub use resample::Resampler;
pub use transcoder::{OutFrame, Transcoder};

/// The audio codecs the gateway transcodes between.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CodecKind {
    Pcmu,
    Pcma,
    G722,
    Opus,
}

impl CodecKind {
    /// RTP timestamp clock (RFC 3551 / RFC 7587): 8000 for PCMU, PCMA and G.722 (a historical
    /// quirk: G.722 samples at 16 kHz), 48000 for Opus whatever its audio bandwidth.
    pub fn rtp_clock_rate(self) -> u32 {
        match self {
            CodecKind::Pcmu | CodecKind::Pcma | CodecKind::G722 => 8000,
            CodecKind::Opus => 48000,
        }
    }

    /// Audio rate of the codec's PCM when used on its own ([`encoder`], [`decoder`]):
    /// 8000, 8000, 16000, 48000. A [`Transcoder`] runs Opus at the other leg's rate instead.
    pub fn sample_rate(self) -> u32 {
        match self {
            CodecKind::Pcmu | CodecKind::Pcma => 8000,
            CodecKind::G722 => 16000,
            CodecKind::Opus => 48000,
        }
    }

    /// Static RTP payload type (0, 8, 9) or the usual dynamic one for Opus (111).
    pub fn default_payload_type(self) -> u8 {
        match self {
            CodecKind::Pcmu => 0,
            CodecKind::Pcma => 8,
            CodecKind::G722 => 9,
            CodecKind::Opus => 111,
        }
    }
}

/// Opus encoder settings, from the SDP fmtp (RFC 7587) and local policy.
#[derive(Clone, Debug, PartialEq)]
pub struct OpusSettings {
    /// `useinbandfec=1`: emit LBRR (in-band FEC) data; only produced when `packet_loss_perc > 0`.
    pub fec: bool,
    /// `usedtx=1`: during silence the encoder produces 1-2 byte payloads (see [`OutFrame`]).
    pub dtx: bool,
    /// 0..=10. Default [`DEFAULT_OPUS_COMPLEXITY`] (chosen from the benchmark, see there).
    pub complexity: u8,
    /// Target bit rate in bit/s; 0 = automatic (16 kbit/s per channel at 8 kHz input,
    /// 24 kbit/s at 12-16 kHz, 32 kbit/s at 24-48 kHz), `maxaveragebitrate` otherwise.
    pub bitrate: u32,
    /// `maxplaybackrate` of the receiver (8000..=48000): caps the encoded audio bandwidth.
    pub max_playback_rate: u32,
    /// Expected packet loss in percent given to the encoder (`OPUS_SET_PACKET_LOSS_PERC`).
    /// libopus only emits FEC when this is non-zero; default 10.
    pub packet_loss_perc: u8,
}

/// Opus complexity used unless the SDP/policy says otherwise. Measured (`run_benchmarks`, release,
/// µs of CPU per 20 ms frame, 8 kHz input from a G.711 leg, 16 kbit/s, FEC on):
/// complexity 0: 36 µs, 5: 69 µs, 10: 109 µs; a phase-insensitive quality proxy (spectral SNR)
/// 16.8 / 18.5 / 19.0 dB. Complexity 5 keeps most of 10's quality (-0.5 dB) for 64 % of its cost
/// (Opus<->PCMU calls per core: 142 at 10, 237 at 5, 382 at 0); complexity 0 loses 1.7 dB.
/// At 16 kHz (G.722 legs) the proxy does not separate the levels and 5 costs 3x more than 0:
/// operators short of CPU there can lower `OpusSettings::complexity` per leg.
pub const DEFAULT_OPUS_COMPLEXITY: u8 = 5;

impl Default for OpusSettings {
    fn default() -> Self {
        OpusSettings {
            fec: true,
            dtx: false,
            complexity: DEFAULT_OPUS_COMPLEXITY,
            bitrate: 0,
            max_playback_rate: 48000,
            packet_loss_perc: 10,
        }
    }
}

/// One negotiated codec of one leg.
#[derive(Clone, Debug, PartialEq)]
pub struct CodecParams {
    pub kind: CodecKind,
    pub payload_type: u8,
    /// 1, or 2 for Opus with `stereo=1` (SDP always says opus/48000/2).
    pub channels: u8,
    /// Packet duration: 10, 20, 30 or 40 ms.
    pub ptime_ms: u32,
    pub opus: OpusSettings,
}

impl CodecParams {
    /// Mono, 20 ms, default payload type and Opus settings.
    pub fn new(kind: CodecKind) -> Self {
        CodecParams {
            kind,
            payload_type: kind.default_payload_type(),
            channels: 1,
            ptime_ms: 20,
            opus: OpusSettings::default(),
        }
    }

    pub fn with_ptime(mut self, ptime_ms: u32) -> Self {
        self.ptime_ms = ptime_ms;
        self
    }

    pub fn with_channels(mut self, channels: u8) -> Self {
        self.channels = channels;
        self
    }

    /// RTP ticks covered by one packet of `ptime_ms`.
    pub fn rtp_ticks_per_packet(&self) -> u32 {
        self.kind.rtp_clock_rate() / 1000 * self.ptime_ms
    }

    pub(crate) fn validate(&self) -> Result<(), CodecError> {
        if !matches!(self.ptime_ms, 10 | 20 | 30 | 40) {
            return Err(CodecError::InvalidParams(format!("ptime {} ms (10, 20, 30 or 40)", self.ptime_ms)));
        }
        match (self.kind, self.channels) {
            (CodecKind::Opus, 1 | 2) | (_, 1) => {}
            (k, c) => return Err(CodecError::InvalidParams(format!("{k:?} with {c} channels"))),
        }
        if self.kind == CodecKind::Opus {
            let o = &self.opus;
            if o.complexity > 10 {
                return Err(CodecError::InvalidParams(format!("Opus complexity {}", o.complexity)));
            }
            if !(8000..=48000).contains(&o.max_playback_rate) {
                return Err(CodecError::InvalidParams(format!("maxplaybackrate {}", o.max_playback_rate)));
            }
            if o.bitrate != 0 && !(6000..=510_000).contains(&o.bitrate) {
                return Err(CodecError::InvalidParams(format!("Opus bitrate {}", o.bitrate)));
            }
            if o.packet_loss_perc > 100 {
                return Err(CodecError::InvalidParams(format!("packet loss {} %", o.packet_loss_perc)));
            }
        }
        Ok(())
    }
}

/// Errors of the codec layer.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("invalid codec parameters: {0}")]
    InvalidParams(String),
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("encoder expects {expected} samples, got {got}")]
    FrameSize { expected: usize, got: usize },
    #[error("ffmpeg: {0}")]
    Ffmpeg(#[from] ::ffmpeg_next::Error),
    #[error("libopus {op}: {msg} ({code})")]
    Opus { op: &'static str, code: i32, msg: String },
    #[error("corrupt payload: {0}")]
    Corrupt(String),
}

/// Encodes PCM frames into RTP payloads.
pub trait AudioEncoder: Send {
    /// Encodes exactly `frame_samples() * channels()` interleaved samples and appends one RTP
    /// payload to `out`.
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError>;
    /// Samples per channel per packet (`sample_rate * ptime`).
    fn frame_samples(&self) -> usize;
    fn sample_rate(&self) -> u32;
    fn channels(&self) -> u8 {
        1
    }
}

/// Decodes RTP payloads into PCM.
pub trait AudioDecoder: Send {
    /// Decodes one RTP payload and appends its samples (interleaved) to `out`.
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), CodecError>;
    /// Packet loss concealment for one missing frame of `samples` samples (per channel), appended
    /// to `out`:
    /// * Opus (libopus): with `next_payload` and in-band FEC in it, decodes the FEC copy of the lost
    ///   frame (`decode_fec = 1`); otherwise (or if the next packet has no LBRR data) libopus PLC.
    ///   `next_payload` is only peeked at: pass it to `decode` afterwards as usual.
    /// * Opus through ffmpeg ([`Backend::Ffmpeg`]): libopus PLC, triggered by a TOC-only packet;
    ///   FEC is not reachable through FFmpeg 5.1 and `next_payload` is ignored.
    /// * PCMU, PCMA, G.722: pitch-repetition PLC after ITU-T G.711 Appendix I (`plc.rs`): the last
    ///   pitch period is repeated, full level for 10 ms, then faded out by 20 % per 10 ms to silence
    ///   after 60 ms; the first good frame after a loss is cross-faded with the continued repetition.
    ///   The decoder states are not advanced (G.722's ADPCM re-converges within a few ms).
    ///   `next_payload` is ignored.
    fn conceal(&mut self, samples: usize, next_payload: Option<&[u8]>, out: &mut Vec<i16>) -> Result<(), CodecError>;
    fn sample_rate(&self) -> u32;
    fn channels(&self) -> u8 {
        1
    }
}

/// Which implementations to use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Backend {
    /// G.711 in Rust, Opus in libopus directly, G.722 in ffmpeg (the fastest of each, see module doc).
    #[default]
    Default,
    /// Everything through libavcodec (`pcm_mulaw`, `pcm_alaw`, `g722`, `libopus`); Opus decodes at
    /// 48 kHz only. No DTX, no FEC decoding, no 30 ms Opus packets. For comparison and benchmarks.
    Ffmpeg,
}

/// Encoder for `params` at the codec's own audio rate ([`CodecKind::sample_rate`]).
pub fn encoder(params: &CodecParams) -> Result<Box<dyn AudioEncoder>, CodecError> {
    encoder_with(params, params.kind.sample_rate(), Backend::Default)
}

/// Decoder for `params` at the codec's own audio rate ([`CodecKind::sample_rate`]).
pub fn decoder(params: &CodecParams) -> Result<Box<dyn AudioDecoder>, CodecError> {
    decoder_with(params, params.kind.sample_rate(), Backend::Default)
}

/// Encoder taking PCM at `rate`. Only Opus accepts a rate other than [`CodecKind::sample_rate`]
/// (8000, 12000, 16000, 24000 or 48000).
pub fn encoder_with(params: &CodecParams, rate: u32, backend: Backend) -> Result<Box<dyn AudioEncoder>, CodecError> {
    params.validate()?;
    check_rate(params.kind, rate)?;
    Ok(match (params.kind, backend) {
        (CodecKind::Pcmu | CodecKind::Pcma, Backend::Default) => Box::new(G711Encoder::new(params)?),
        (CodecKind::Opus, Backend::Default) => Box::new(OpusEncoder::new(params, rate)?),
        _ => Box::new(FfmpegEncoder::new(params, rate)?),
    })
}

/// Decoder producing PCM at `rate`. Only Opus accepts a rate other than [`CodecKind::sample_rate`]
/// and only with [`Backend::Default`] (ffmpeg's Opus decoders always output 48 kHz).
pub fn decoder_with(params: &CodecParams, rate: u32, backend: Backend) -> Result<Box<dyn AudioDecoder>, CodecError> {
    params.validate()?;
    check_rate(params.kind, rate)?;
    Ok(match (params.kind, backend) {
        (CodecKind::Pcmu | CodecKind::Pcma, Backend::Default) => Box::new(G711Decoder::new(params)?),
        (CodecKind::Opus, Backend::Default) => Box::new(OpusDecoder::new(params, rate)?),
        (CodecKind::Opus, Backend::Ffmpeg) if rate != 48000 => {
            return Err(CodecError::Unsupported("ffmpeg's Opus decoder only outputs 48 kHz".into()))
        }
        _ => Box::new(FfmpegDecoder::new(params)?),
    })
}

fn check_rate(kind: CodecKind, rate: u32) -> Result<(), CodecError> {
    let ok = match kind {
        CodecKind::Opus => matches!(rate, 8000 | 12000 | 16000 | 24000 | 48000),
        k => rate == k.sample_rate(),
    };
    if ok {
        Ok(())
    } else {
        Err(CodecError::InvalidParams(format!("{kind:?} at {rate} Hz")))
    }
}

/// Calls `ffmpeg::init` once and quiets libav's logging to errors.
pub(crate) fn ffmpeg_init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = ::ffmpeg_next::init();
        ::ffmpeg_next::util::log::set_level(::ffmpeg_next::util::log::Level::Error);
    });
}
