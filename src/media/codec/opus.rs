//! Opus through libopus, reached with the `audiopus_sys` binding crate (generated bindings to the
//! libopus 1.3 API, linked dynamically against the system library found by pkg-config: Debian's
//! libopus0 1.3.1 from `libopus-dev`, the same library libavcodec's `libopus` wrapper uses).
//! This file is the only user of that crate and holds all of its `unsafe`.
//!
//! libopus directly, not through FFmpeg, because FFmpeg 5.1's wrapper cannot do what the gateway
//! needs (see `mod.rs`): DTX, FEC decoding, PLC of a chosen length, and decoding straight to 8 or
//! 16 kHz. `audiopus_sys` rather than the `opus` crate because the gateway needs one private CTL
//! (`OPUS_SET_FORCE_MODE`, below) that a safe wrapper does not offer and `opus` 0.4 hides its raw
//! state, and because `opus` 0.4 builds its own libopus with cmake by default instead of linking
//! Debian's.
//!
//! * Encoder: `OPUS_APPLICATION_VOIP`, VBR, complexity/bitrate/FEC/DTX/max bandwidth from
//!   [`OpusSettings`](super::OpusSettings). 10, 20 and 40 ms are single Opus packets; 30 ms (not an
//!   Opus frame size) is three 10 ms frames joined by the libopus repacketizer into one code-3 packet;
//!   the frames of one packet must share mode, bandwidth and channel count, so the second and third
//!   are encoded with those of the first forced (what libopus does internally for 40/60 ms).
//! * Decoder: decodes to any of 8/12/16/24/48 kHz and to 1 or 2 channels (libopus down- or
//!   up-mixes), so a transcoder needs no resampler on the Opus side.
//!
//! No allocation per frame: payloads are written straight into the caller's `Vec` capacity.

use std::os::raw::c_int;
use std::ptr::NonNull;

use audiopus_sys as ffi;
use ffi::{
    OPUS_APPLICATION_VOIP, OPUS_AUTO, OPUS_BANDWIDTH_FULLBAND, OPUS_BANDWIDTH_MEDIUMBAND, OPUS_BANDWIDTH_NARROWBAND,
    OPUS_BANDWIDTH_SUPERWIDEBAND, OPUS_BANDWIDTH_WIDEBAND, OPUS_GET_LOOKAHEAD_REQUEST, OPUS_SET_BANDWIDTH_REQUEST,
    OPUS_SET_BITRATE_REQUEST, OPUS_SET_COMPLEXITY_REQUEST, OPUS_SET_DTX_REQUEST, OPUS_SET_FORCE_CHANNELS_REQUEST,
    OPUS_SET_INBAND_FEC_REQUEST, OPUS_SET_MAX_BANDWIDTH_REQUEST, OPUS_SET_PACKET_LOSS_PERC_REQUEST, OPUS_SET_VBR_REQUEST,
};

use super::{AudioDecoder, AudioEncoder, CodecError, CodecKind, CodecParams};

/// From libopus's `opus_private.h` (not in the public header, so not in the bindings; accepted by
/// `opus_encoder_ctl` and used by libopus itself for 40/60 ms multi-frame packets). Values: 1000
/// SILK, 1001 hybrid, 1002 CELT, `OPUS_AUTO`.
const OPUS_SET_FORCE_MODE_REQUEST: c_int = 11002;
/// `OPUS_ALLOC_FAIL`, reported when a constructor returns NULL without an error code.
const OPUS_ALLOC_FAIL: c_int = -7;

/// Largest payload one call can produce (40 ms at 510 kbit/s is 2550 bytes, plus code-3 framing).
const MAX_PAYLOAD: usize = 4000;

fn opus_err(op: &'static str, code: c_int) -> CodecError {
    // SAFETY: opus_strerror returns a pointer to a static NUL-terminated string for any code.
    let msg = unsafe { std::ffi::CStr::from_ptr(ffi::opus_strerror(code)) }.to_string_lossy().into_owned();
    CodecError::Opus { op, code, msg }
}

fn check(op: &'static str, code: c_int) -> Result<(), CodecError> {
    if code < 0 {
        Err(opus_err(op, code))
    } else {
        Ok(())
    }
}

/// Bit rate used when the settings leave it at 0: 16 kbit/s per channel for narrowband input,
/// 24 kbit/s for 12-16 kHz, 32 kbit/s above.
pub fn default_bitrate(rate: u32, channels: u8) -> u32 {
    let per_channel = match rate {
        0..=8000 => 16_000,
        8001..=16000 => 24_000,
        _ => 32_000,
    };
    per_channel * channels as u32
}

/// The audio bandwidth an Opus packet's TOC byte declares (RFC 6716 §3.1), narrowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum OpusBandwidth {
    Narrowband,
    Mediumband,
    Wideband,
    SuperWideband,
    Fullband,
}

impl OpusBandwidth {
    /// From the TOC's configuration number: SILK-only, hybrid, then CELT-only ranges.
    pub fn of_toc(toc: u8) -> OpusBandwidth {
        match toc >> 3 {
            0..=3 | 16..=19 => OpusBandwidth::Narrowband,
            4..=7 => OpusBandwidth::Mediumband,
            8..=11 | 20..=23 => OpusBandwidth::Wideband,
            12..=13 | 24..=27 => OpusBandwidth::SuperWideband,
            _ => OpusBandwidth::Fullband,
        }
    }

    /// As the call record names it, with the audio it carries.
    pub fn name(self) -> &'static str {
        match self {
            OpusBandwidth::Narrowband => "narrowband (4 kHz)",
            OpusBandwidth::Mediumband => "mediumband (6 kHz)",
            OpusBandwidth::Wideband => "wideband (8 kHz)",
            OpusBandwidth::SuperWideband => "super-wideband (12 kHz)",
            OpusBandwidth::Fullband => "fullband (20 kHz)",
        }
    }
}

/// Number of samples per channel at `rate` in an Opus packet (parses the TOC and frame count).
pub fn packet_samples(payload: &[u8], rate: u32) -> Result<usize, CodecError> {
    if payload.is_empty() {
        return Err(CodecError::Corrupt("empty Opus payload".into()));
    }
    let len = i32::try_from(payload.len()).map_err(|_| CodecError::Corrupt("oversized Opus payload".into()))?;
    // SAFETY: pointer and length describe a valid, initialised slice that libopus only reads.
    let n = unsafe { ffi::opus_packet_get_nb_samples(payload.as_ptr(), len, rate as i32) };
    if n < 0 {
        return Err(opus_err("opus_packet_get_nb_samples", n));
    }
    Ok(n as usize)
}

/// Mode (1000 SILK, 1001 hybrid, 1002 CELT) and `OPUS_BANDWIDTH_*` of a TOC byte (RFC 6716 §3.1).
fn toc_mode_bandwidth(toc: u8) -> (c_int, c_int) {
    let config = toc >> 3;
    match config {
        0..=11 => (1000, OPUS_BANDWIDTH_NARROWBAND + (config / 4) as c_int),
        12..=13 => (1001, OPUS_BANDWIDTH_SUPERWIDEBAND),
        14..=15 => (1001, OPUS_BANDWIDTH_FULLBAND),
        _ => {
            let b = ((config - 16) / 4) as c_int; // NB, WB, SWB, FB (CELT has no MB)
            (1002, if b == 0 { OPUS_BANDWIDTH_NARROWBAND } else { OPUS_BANDWIDTH_MEDIUMBAND + b })
        }
    }
}

/// `OPUS_SET_MAX_BANDWIDTH` value for the receiver's `maxplaybackrate`.
fn max_bandwidth(max_playback_rate: u32) -> c_int {
    match max_playback_rate {
        0..=8000 => OPUS_BANDWIDTH_NARROWBAND,
        8001..=12000 => OPUS_BANDWIDTH_MEDIUMBAND,
        12001..=16000 => OPUS_BANDWIDTH_WIDEBAND,
        16001..=24000 => OPUS_BANDWIDTH_SUPERWIDEBAND,
        _ => OPUS_BANDWIDTH_FULLBAND,
    }
}

fn check_params(params: &CodecParams, rate: u32) -> Result<(), CodecError> {
    params.validate()?;
    if params.kind != CodecKind::Opus {
        return Err(CodecError::InvalidParams(format!("{:?} is not Opus", params.kind)));
    }
    if !matches!(rate, 8000 | 12000 | 16000 | 24000 | 48000) {
        return Err(CodecError::InvalidParams(format!("Opus at {rate} Hz")));
    }
    Ok(())
}

/// The repacketizer of a 30 ms encoder, and the scratch space its three sub-frames are encoded into
/// (it keeps pointers into that space until `opus_repacketizer_out`).
struct Repacketizer {
    rp: NonNull<ffi::OpusRepacketizer>,
    scratch: Vec<u8>,
}

impl Repacketizer {
    fn new() -> Result<Self, CodecError> {
        // SAFETY: plain constructor without arguments; NULL (allocation failure) is checked.
        let rp = NonNull::new(unsafe { ffi::opus_repacketizer_create() })
            .ok_or_else(|| opus_err("opus_repacketizer_create", OPUS_ALLOC_FAIL))?;
        Ok(Repacketizer { rp, scratch: vec![0; 3 * MAX_PAYLOAD] })
    }
}

impl Drop for Repacketizer {
    fn drop(&mut self) {
        // SAFETY: created by opus_repacketizer_create, destroyed once, here.
        unsafe { ffi::opus_repacketizer_destroy(self.rp.as_ptr()) };
    }
}

pub struct OpusEncoder {
    st: NonNull<ffi::OpusEncoder>,
    /// Only for 30 ms packets.
    repacketizer: Option<Repacketizer>,
    rate: u32,
    channels: u8,
    frame: usize,
    /// Sub-frames per packet (3 for 30 ms, 1 otherwise) and the sub-frame size.
    sub_frames: usize,
    sub_frame: usize,
}

// SAFETY: the libopus encoder/repacketizer states are plain heap memory owned by this value, with no
// thread affinity; `&mut self` serialises all use.
unsafe impl Send for OpusEncoder {}

impl OpusEncoder {
    /// Encoder taking PCM at `rate` (8000, 12000, 16000, 24000 or 48000) with `params.channels`.
    pub fn new(params: &CodecParams, rate: u32) -> Result<Self, CodecError> {
        check_params(params, rate)?;
        let mut err: c_int = 0;
        // SAFETY: rate and channel count were checked above; `err` is a valid out-pointer; NULL is
        // checked.
        let st = unsafe { ffi::opus_encoder_create(rate as i32, params.channels as c_int, OPUS_APPLICATION_VOIP, &mut err) };
        let st = NonNull::new(st).ok_or_else(|| opus_err("opus_encoder_create", if err < 0 { err } else { OPUS_ALLOC_FAIL }))?;
        let frame = (rate / 1000 * params.ptime_ms) as usize;
        let mut enc =
            OpusEncoder { st, repacketizer: None, rate, channels: params.channels, frame, sub_frames: 1, sub_frame: frame };
        let o = &params.opus;
        let bitrate = if o.bitrate == 0 { default_bitrate(rate, params.channels) } else { o.bitrate };
        enc.ctl(OPUS_SET_BITRATE_REQUEST, bitrate as c_int)?;
        enc.ctl(OPUS_SET_VBR_REQUEST, 1)?;
        enc.ctl(OPUS_SET_COMPLEXITY_REQUEST, o.complexity as c_int)?;
        enc.ctl(OPUS_SET_INBAND_FEC_REQUEST, o.fec as c_int)?;
        enc.ctl(OPUS_SET_PACKET_LOSS_PERC_REQUEST, o.packet_loss_perc as c_int)?;
        enc.ctl(OPUS_SET_DTX_REQUEST, o.dtx as c_int)?;
        enc.ctl(OPUS_SET_MAX_BANDWIDTH_REQUEST, max_bandwidth(o.max_playback_rate))?;
        if params.ptime_ms == 30 {
            enc.repacketizer = Some(Repacketizer::new()?);
            enc.sub_frames = 3;
            enc.sub_frame = frame / 3;
        }
        Ok(enc)
    }

    /// One `SET` request with an integer value.
    fn ctl(&mut self, request: c_int, value: c_int) -> Result<(), CodecError> {
        // SAFETY: `st` is a live encoder; every SET request used here takes exactly one opus_int32
        // (c_int) argument, which is what the variadic call passes.
        check("opus_encoder_ctl", unsafe { ffi::opus_encoder_ctl(self.st.as_ptr(), request, value) })
    }

    /// Encoder delay in samples at the input rate (`OPUS_GET_LOOKAHEAD`).
    pub fn lookahead(&self) -> usize {
        let mut v: i32 = 0;
        // SAFETY: `st` is live; GET_LOOKAHEAD takes one opus_int32 pointer, valid for the call.
        unsafe { ffi::opus_encoder_ctl(self.st.as_ptr(), OPUS_GET_LOOKAHEAD_REQUEST, &mut v as *mut i32) };
        v.max(0) as usize
    }

    /// Encodes `pcm` (`samples` per channel) into `buf` with one `opus_encode` call and nothing
    /// else (the benchmark's raw libopus reference uses it too); returns the payload length.
    pub(super) fn encode_raw(&mut self, pcm: &[i16], samples: usize, buf: &mut [u8]) -> Result<usize, CodecError> {
        debug_assert_eq!(pcm.len(), samples * self.channels as usize);
        let max = buf.len().min(MAX_PAYLOAD) as i32;
        // SAFETY: `st` is live; `pcm` holds `samples` samples per channel; `buf` has at least `max`
        // writable bytes. libopus only reads `pcm` and writes at most `max` bytes.
        let n = unsafe { ffi::opus_encode(self.st.as_ptr(), pcm.as_ptr(), samples as c_int, buf.as_mut_ptr(), max) };
        check("opus_encode", n)?;
        Ok(n as usize)
    }

    /// Encodes the three 10 ms sub-frames of a 30 ms packet and appends the repacketized packet.
    fn encode_repacketized(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        let Some(mut rp) = self.repacketizer.take() else {
            return Err(CodecError::InvalidParams("30 ms Opus without a repacketizer".into()));
        };
        let res = self.encode_sub_frames(&mut rp, pcm);
        // Undo the forcing even if a sub-frame failed.
        let undo = self.release_forcing();
        let res = res.and(undo).and_then(|()| {
            write_into_spare(out, |buf| {
                // SAFETY: `rp` is live and holds the three sub-frames in `rp.scratch`, which has not
                // been touched since; `buf` has `buf.len()` writable bytes.
                let n = unsafe { ffi::opus_repacketizer_out(rp.rp.as_ptr(), buf.as_mut_ptr(), buf.len() as i32) };
                check("opus_repacketizer_out", n).map(|()| n as usize)
            })
        });
        self.repacketizer = Some(rp);
        res
    }

    /// Encodes the sub-frames into the repacketizer's scratch space and adds them to it.
    fn encode_sub_frames(&mut self, rp: &mut Repacketizer, pcm: &[i16]) -> Result<(), CodecError> {
        let ch = self.channels as usize;
        // SAFETY: `rp` is live; init resets it (it drops its pointers into the scratch space).
        unsafe { ffi::opus_repacketizer_init(rp.rp.as_ptr()) };
        let mut off = 0;
        for i in 0..self.sub_frames {
            if i == 1 {
                // Frames 2 and 3 get the first frame's configuration (TOC): mode, bandwidth, channels.
                let toc = rp.scratch[0];
                let (mode, bw) = toc_mode_bandwidth(toc);
                self.ctl(OPUS_SET_FORCE_MODE_REQUEST, mode)?;
                self.ctl(OPUS_SET_BANDWIDTH_REQUEST, bw)?;
                if self.channels == 2 {
                    self.ctl(OPUS_SET_FORCE_CHANNELS_REQUEST, if toc & 0x04 != 0 { 2 } else { 1 })?;
                }
            }
            let chunk = &pcm[i * self.sub_frame * ch..(i + 1) * self.sub_frame * ch];
            let n = self.encode_raw(chunk, self.sub_frame, &mut rp.scratch[off..off + MAX_PAYLOAD])?;
            let frame = &rp.scratch[off..off + n];
            // SAFETY: `rp` is live; it keeps a pointer to `frame` inside `rp.scratch`, which stays
            // untouched until opus_repacketizer_out (the next init resets the pointers).
            check("opus_repacketizer_cat", unsafe { ffi::opus_repacketizer_cat(rp.rp.as_ptr(), frame.as_ptr(), n as i32) })?;
            off += n;
        }
        Ok(())
    }

    fn release_forcing(&mut self) -> Result<(), CodecError> {
        self.ctl(OPUS_SET_FORCE_MODE_REQUEST, OPUS_AUTO)?;
        self.ctl(OPUS_SET_BANDWIDTH_REQUEST, OPUS_AUTO)?;
        if self.channels == 2 {
            self.ctl(OPUS_SET_FORCE_CHANNELS_REQUEST, OPUS_AUTO)?;
        }
        Ok(())
    }
}

/// Lets `write` fill up to [`MAX_PAYLOAD`] bytes of `out`'s spare capacity (reserved here; no
/// allocation once `out` has that capacity) and appends the `n` bytes it reports written.
fn write_into_spare(out: &mut Vec<u8>, write: impl FnOnce(&mut [u8]) -> Result<usize, CodecError>) -> Result<(), CodecError> {
    out.reserve(MAX_PAYLOAD);
    let len = out.len();
    // Zeroing the spare bytes costs ~60 ns per packet and keeps the slice handed to libopus
    // initialised, so no uninitialised memory is ever viewed as `&mut [u8]`.
    out.resize(len + MAX_PAYLOAD, 0);
    match write(&mut out[len..]) {
        Ok(n) => {
            out.truncate(len + n.min(MAX_PAYLOAD));
            Ok(())
        }
        Err(e) => {
            out.truncate(len);
            Err(e)
        }
    }
}

impl Drop for OpusEncoder {
    fn drop(&mut self) {
        // SAFETY: created by opus_encoder_create, destroyed once, here.
        unsafe { ffi::opus_encoder_destroy(self.st.as_ptr()) };
    }
}

impl AudioEncoder for OpusEncoder {
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        let ch = self.channels as usize;
        if pcm.len() != self.frame * ch {
            return Err(CodecError::FrameSize { expected: self.frame * ch, got: pcm.len() });
        }
        if self.sub_frames == 1 {
            let frame = self.frame;
            return write_into_spare(out, |buf| self.encode_raw(pcm, frame, buf));
        }
        self.encode_repacketized(pcm, out)
    }

    fn frame_samples(&self) -> usize {
        self.frame
    }

    fn sample_rate(&self) -> u32 {
        self.rate
    }

    fn channels(&self) -> u8 {
        self.channels
    }
}

pub struct OpusDecoder {
    st: NonNull<ffi::OpusDecoder>,
    rate: u32,
    channels: u8,
    last_frame: usize,
}

// SAFETY: as for the encoder.
unsafe impl Send for OpusDecoder {}

/// Longest Opus packet: 120 ms, in samples per channel at 48 kHz.
const MAX_PACKET_SAMPLES_48K: usize = 5760;

impl OpusDecoder {
    /// Decoder producing `params.channels` channels at `rate` (8000, 12000, 16000, 24000, 48000).
    pub fn new(params: &CodecParams, rate: u32) -> Result<Self, CodecError> {
        check_params(params, rate)?;
        let mut err: c_int = 0;
        // SAFETY: rate and channel count were checked above; `err` is a valid out-pointer; NULL is
        // checked.
        let st = unsafe { ffi::opus_decoder_create(rate as i32, params.channels as c_int, &mut err) };
        let st = NonNull::new(st).ok_or_else(|| opus_err("opus_decoder_create", if err < 0 { err } else { OPUS_ALLOC_FAIL }))?;
        Ok(OpusDecoder { st, rate, channels: params.channels, last_frame: (rate / 1000 * params.ptime_ms) as usize })
    }

    /// One `opus_decode` of `payload` into `pcm` (room for a whole frame) and nothing else: the
    /// benchmark's raw libopus reference. Returns samples per channel.
    pub(super) fn decode_raw(&mut self, payload: &[u8], pcm: &mut [i16]) -> Result<usize, CodecError> {
        let frame = pcm.len() / self.channels as usize;
        let len = i32::try_from(payload.len()).map_err(|_| CodecError::Corrupt("oversized Opus payload".into()))?;
        // SAFETY: `st` is live; `payload` is a readable slice of `len` bytes; `pcm` has room for
        // `frame` samples per channel.
        let got = unsafe { ffi::opus_decode(self.st.as_ptr(), payload.as_ptr(), len, pcm.as_mut_ptr(), frame as c_int, 0) };
        check("opus_decode", got).map(|()| got as usize)
    }

    /// Decodes `data` (or conceals when `None`) into `samples` per channel appended to `out`.
    fn run(&mut self, data: Option<&[u8]>, samples: usize, fec: bool, out: &mut Vec<i16>) -> Result<(), CodecError> {
        let max_samples = MAX_PACKET_SAMPLES_48K * self.rate as usize / 48000;
        if samples > max_samples {
            return Err(CodecError::InvalidParams(format!("Opus frame of {samples} samples")));
        }
        let (ptr, len) = match data {
            Some(d) => (d.as_ptr(), i32::try_from(d.len()).map_err(|_| CodecError::Corrupt("oversized Opus payload".into()))?),
            None => (std::ptr::null(), 0),
        };
        let ch = self.channels as usize;
        let start = out.len();
        // Initialised (zeroed) room for the samples, so libopus writes into a valid `&mut [i16]`;
        // no allocation once `out` has grown to a frame.
        out.resize(start + samples * ch, 0);
        let buf = &mut out[start..];
        // SAFETY: `st` is live; `buf` holds `samples * channels` writable samples, the most libopus
        // writes for a frame_size of `samples`; `ptr`/`len` describe a readable slice, or are
        // NULL/0, which asks for concealment.
        let got = unsafe { ffi::opus_decode(self.st.as_ptr(), ptr, len, buf.as_mut_ptr(), samples as c_int, fec as c_int) };
        if got < 0 {
            out.truncate(start);
            return Err(opus_err("opus_decode", got));
        }
        out.truncate(start + (got as usize).min(samples) * ch);
        Ok(())
    }
}

impl Drop for OpusDecoder {
    fn drop(&mut self) {
        // SAFETY: created by opus_decoder_create, destroyed once, here.
        unsafe { ffi::opus_decoder_destroy(self.st.as_ptr()) };
    }
}

impl AudioDecoder for OpusDecoder {
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), CodecError> {
        if payload.is_empty() {
            // Not a valid Opus packet; treat like a lost one.
            return self.conceal(self.last_frame, None, out);
        }
        let n = packet_samples(payload, self.rate)?;
        self.run(Some(payload), n, false, out)?;
        self.last_frame = n;
        Ok(())
    }

    fn conceal(&mut self, samples: usize, next_payload: Option<&[u8]>, out: &mut Vec<i16>) -> Result<(), CodecError> {
        let quantum = (self.rate / 400) as usize; // 2.5 ms
        if samples == 0 || !samples.is_multiple_of(quantum) {
            return Err(CodecError::InvalidParams(format!("Opus concealment of {samples} samples (multiple of 2.5 ms)")));
        }
        match next_payload {
            Some(next) if !next.is_empty() => self.run(Some(next), samples, true, out),
            _ => self.run(None, samples, false, out),
        }
    }

    fn sample_rate(&self) -> u32 {
        self.rate
    }

    fn channels(&self) -> u8 {
        self.channels
    }
}
