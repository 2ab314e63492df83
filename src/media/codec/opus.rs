//! Opus through libopus directly (Debian's libopus0 1.3.1, the same library libavcodec's
//! `libopus` wrapper uses; linked with `-lopus`, so `libopus-dev` must be installed to build).
//!
//! Direct because FFmpeg 5.1's wrapper cannot do what the gateway needs (see `mod.rs`): DTX,
//! FEC decoding, PLC of a chosen length, and decoding straight to 8 or 16 kHz.
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

use std::os::raw::{c_char, c_int};

use super::{AudioDecoder, AudioEncoder, CodecError, CodecKind, CodecParams};

#[repr(C)]
struct RawEncoder {
    _opaque: [u8; 0],
}
#[repr(C)]
struct RawDecoder {
    _opaque: [u8; 0],
}
#[repr(C)]
struct RawRepacketizer {
    _opaque: [u8; 0],
}

#[link(name = "opus")]
extern "C" {
    fn opus_encoder_create(fs: i32, channels: c_int, application: c_int, error: *mut c_int) -> *mut RawEncoder;
    fn opus_encode(st: *mut RawEncoder, pcm: *const i16, frame_size: c_int, data: *mut u8, max_data_bytes: i32) -> i32;
    fn opus_encoder_ctl(st: *mut RawEncoder, request: c_int, ...) -> c_int;
    fn opus_encoder_destroy(st: *mut RawEncoder);
    fn opus_decoder_create(fs: i32, channels: c_int, error: *mut c_int) -> *mut RawDecoder;
    fn opus_decode(st: *mut RawDecoder, data: *const u8, len: i32, pcm: *mut i16, frame_size: c_int, decode_fec: c_int) -> c_int;
    fn opus_decoder_destroy(st: *mut RawDecoder);
    fn opus_repacketizer_create() -> *mut RawRepacketizer;
    fn opus_repacketizer_init(rp: *mut RawRepacketizer) -> *mut RawRepacketizer;
    fn opus_repacketizer_cat(rp: *mut RawRepacketizer, data: *const u8, len: i32) -> c_int;
    fn opus_repacketizer_out(rp: *mut RawRepacketizer, data: *mut u8, maxlen: i32) -> i32;
    fn opus_repacketizer_destroy(rp: *mut RawRepacketizer);
    fn opus_packet_get_nb_samples(packet: *const u8, len: i32, fs: i32) -> c_int;
    fn opus_strerror(error: c_int) -> *const c_char;
}

const OPUS_APPLICATION_VOIP: c_int = 2048;
const OPUS_SET_BITRATE: c_int = 4002;
const OPUS_SET_MAX_BANDWIDTH: c_int = 4004;
const OPUS_SET_VBR: c_int = 4006;
const OPUS_SET_COMPLEXITY: c_int = 4010;
const OPUS_SET_INBAND_FEC: c_int = 4012;
const OPUS_SET_PACKET_LOSS_PERC: c_int = 4014;
const OPUS_SET_DTX: c_int = 4016;
const OPUS_SET_BANDWIDTH: c_int = 4008;
const OPUS_SET_FORCE_CHANNELS: c_int = 4022;
const OPUS_GET_LOOKAHEAD: c_int = 4027;
/// From libopus's `opus_private.h` (not in the public header; accepted by `opus_encoder_ctl` and
/// used by libopus itself for 40/60 ms multi-frame packets). Values: 1000 SILK, 1001 hybrid,
/// 1002 CELT, OPUS_AUTO.
const OPUS_SET_FORCE_MODE: c_int = 11002;
const OPUS_AUTO: c_int = -1000;
const OPUS_BANDWIDTH_NARROWBAND: c_int = 1101;
const OPUS_BANDWIDTH_MEDIUMBAND: c_int = 1102;
const OPUS_BANDWIDTH_WIDEBAND: c_int = 1103;
const OPUS_BANDWIDTH_SUPERWIDEBAND: c_int = 1104;
const OPUS_BANDWIDTH_FULLBAND: c_int = 1105;

/// Largest payload one call can produce (40 ms at 510 kbit/s is 2550 bytes, plus code-3 framing).
const MAX_PAYLOAD: usize = 4000;

fn opus_err(op: &'static str, code: c_int) -> CodecError {
    // SAFETY: opus_strerror returns a pointer to a static NUL-terminated string for any code.
    let msg = unsafe { std::ffi::CStr::from_ptr(opus_strerror(code)) }.to_string_lossy().into_owned();
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

/// Number of samples per channel at `rate` in an Opus packet (parses the TOC and frame count).
pub fn packet_samples(payload: &[u8], rate: u32) -> Result<usize, CodecError> {
    if payload.is_empty() {
        return Err(CodecError::Corrupt("empty Opus payload".into()));
    }
    // SAFETY: pointer and length describe a valid slice.
    let n = unsafe { opus_packet_get_nb_samples(payload.as_ptr(), payload.len() as i32, rate as i32) };
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

pub struct OpusEncoder {
    st: *mut RawEncoder,
    rp: *mut RawRepacketizer,
    rate: u32,
    channels: u8,
    frame: usize,
    /// Sub-frames per packet (3 for 30 ms, 1 otherwise) and the sub-frame size.
    sub_frames: usize,
    sub_frame: usize,
    scratch: Vec<u8>,
}

// SAFETY: the libopus encoder/repacketizer states are plain heap memory owned by this value, with no
// thread affinity; `&mut self` serialises all use.
unsafe impl Send for OpusEncoder {}

impl OpusEncoder {
    /// Encoder taking PCM at `rate` (8000, 12000, 16000, 24000 or 48000) with `params.channels`.
    pub fn new(params: &CodecParams, rate: u32) -> Result<Self, CodecError> {
        params.validate()?;
        if params.kind != CodecKind::Opus {
            return Err(CodecError::InvalidParams(format!("{:?} is not Opus", params.kind)));
        }
        if !matches!(rate, 8000 | 12000 | 16000 | 24000 | 48000) {
            return Err(CodecError::InvalidParams(format!("Opus at {rate} Hz")));
        }
        let o = &params.opus;
        let mut err: c_int = 0;
        // SAFETY: valid arguments; the result is checked for NULL.
        let st = unsafe { opus_encoder_create(rate as i32, params.channels as c_int, OPUS_APPLICATION_VOIP, &mut err) };
        if st.is_null() || err < 0 {
            return Err(opus_err("opus_encoder_create", err));
        }
        let mut enc = OpusEncoder {
            st,
            rp: std::ptr::null_mut(),
            rate,
            channels: params.channels,
            frame: (rate / 1000 * params.ptime_ms) as usize,
            sub_frames: 1,
            sub_frame: (rate / 1000 * params.ptime_ms) as usize,
            scratch: Vec::new(),
        };
        let bitrate = if o.bitrate == 0 { default_bitrate(rate, params.channels) } else { o.bitrate };
        let bw = match o.max_playback_rate {
            0..=8000 => OPUS_BANDWIDTH_NARROWBAND,
            8001..=12000 => OPUS_BANDWIDTH_MEDIUMBAND,
            12001..=16000 => OPUS_BANDWIDTH_WIDEBAND,
            16001..=24000 => OPUS_BANDWIDTH_SUPERWIDEBAND,
            _ => OPUS_BANDWIDTH_FULLBAND,
        };
        enc.ctl(OPUS_SET_BITRATE, bitrate as c_int)?;
        enc.ctl(OPUS_SET_VBR, 1)?;
        enc.ctl(OPUS_SET_COMPLEXITY, o.complexity as c_int)?;
        enc.ctl(OPUS_SET_INBAND_FEC, o.fec as c_int)?;
        enc.ctl(OPUS_SET_PACKET_LOSS_PERC, o.packet_loss_perc as c_int)?;
        enc.ctl(OPUS_SET_DTX, o.dtx as c_int)?;
        enc.ctl(OPUS_SET_MAX_BANDWIDTH, bw)?;
        if params.ptime_ms == 30 {
            // SAFETY: plain constructor, checked for NULL.
            enc.rp = unsafe { opus_repacketizer_create() };
            if enc.rp.is_null() {
                return Err(opus_err("opus_repacketizer_create", -7));
            }
            enc.sub_frames = 3;
            enc.sub_frame = enc.frame / 3;
            enc.scratch = vec![0; 3 * MAX_PAYLOAD];
        }
        Ok(enc)
    }

    fn ctl(&mut self, request: c_int, value: c_int) -> Result<(), CodecError> {
        // SAFETY: `st` is a live encoder; all SET requests used here take one opus_int32.
        check("opus_encoder_ctl", unsafe { opus_encoder_ctl(self.st, request, value) })
    }

    /// Encoder delay in samples at the input rate (`OPUS_GET_LOOKAHEAD`).
    pub fn lookahead(&self) -> usize {
        let mut v: i32 = 0;
        // SAFETY: GET_LOOKAHEAD takes an opus_int32 pointer.
        unsafe { opus_encoder_ctl(self.st, OPUS_GET_LOOKAHEAD, &mut v as *mut i32) };
        v.max(0) as usize
    }
}

impl OpusEncoder {
    /// Encodes the sub-frames of a 30 ms packet into `scratch` and adds them to the repacketizer.
    fn encode_sub_frames(&mut self, pcm: &[i16]) -> Result<(), CodecError> {
        let ch = self.channels as usize;
        // SAFETY: `rp` is live; init resets it.
        unsafe { opus_repacketizer_init(self.rp) };
        let mut off = 0;
        for i in 0..self.sub_frames {
            if i == 1 {
                // Frames 2 and 3 get the first frame's configuration (TOC): mode, bandwidth, channels.
                let toc = self.scratch[0];
                let (mode, bw) = toc_mode_bandwidth(toc);
                self.ctl(OPUS_SET_FORCE_MODE, mode)?;
                self.ctl(OPUS_SET_BANDWIDTH, bw)?;
                if self.channels == 2 {
                    self.ctl(OPUS_SET_FORCE_CHANNELS, if toc & 0x04 != 0 { 2 } else { 1 })?;
                }
            }
            let chunk = &pcm[i * self.sub_frame * ch..(i + 1) * self.sub_frame * ch];
            let buf = &mut self.scratch[off..off + MAX_PAYLOAD];
            // SAFETY: chunk holds sub_frame*ch samples, buf MAX_PAYLOAD bytes.
            let n = unsafe {
                opus_encode(self.st, chunk.as_ptr(), self.sub_frame as c_int, buf.as_mut_ptr(), MAX_PAYLOAD as i32)
            };
            check("opus_encode", n)?;
            // SAFETY: the repacketizer keeps pointers into `scratch`, which is not touched until
            // opus_repacketizer_out has run.
            check("opus_repacketizer_cat", unsafe { opus_repacketizer_cat(self.rp, buf.as_ptr(), n) })?;
            off += n as usize;
        }
        Ok(())
    }
}

impl Drop for OpusEncoder {
    fn drop(&mut self) {
        // SAFETY: created by the matching create calls, destroyed once.
        unsafe {
            opus_encoder_destroy(self.st);
            if !self.rp.is_null() {
                opus_repacketizer_destroy(self.rp);
            }
        }
    }
}

impl AudioEncoder for OpusEncoder {
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        let ch = self.channels as usize;
        if pcm.len() != self.frame * ch {
            return Err(CodecError::FrameSize { expected: self.frame * ch, got: pcm.len() });
        }
        out.reserve(MAX_PAYLOAD);
        let len = out.len();
        if self.sub_frames == 1 {
            // SAFETY: `pcm` holds frame*ch samples; `out` has MAX_PAYLOAD spare bytes.
            let n = unsafe {
                opus_encode(self.st, pcm.as_ptr(), self.frame as c_int, out.as_mut_ptr().add(len), MAX_PAYLOAD as i32)
            };
            check("opus_encode", n)?;
            // SAFETY: libopus initialised `n` bytes.
            unsafe { out.set_len(len + n as usize) };
            return Ok(());
        }
        // 30 ms: three 10 ms frames, repacketized into one packet.
        let res = self.encode_sub_frames(pcm);
        // Undo the forcing even if a sub-frame failed.
        self.ctl(OPUS_SET_FORCE_MODE, OPUS_AUTO)?;
        self.ctl(OPUS_SET_BANDWIDTH, OPUS_AUTO)?;
        if self.channels == 2 {
            self.ctl(OPUS_SET_FORCE_CHANNELS, OPUS_AUTO)?;
        }
        res?;
        // SAFETY: `out` has MAX_PAYLOAD spare bytes.
        let n = unsafe { opus_repacketizer_out(self.rp, out.as_mut_ptr().add(len), MAX_PAYLOAD as i32) };
        check("opus_repacketizer_out", n)?;
        // SAFETY: libopus initialised `n` bytes.
        unsafe { out.set_len(len + n as usize) };
        Ok(())
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
    st: *mut RawDecoder,
    rate: u32,
    channels: u8,
    last_frame: usize,
}

// SAFETY: as for the encoder.
unsafe impl Send for OpusDecoder {}

impl OpusDecoder {
    /// Decoder producing `params.channels` channels at `rate` (8000, 12000, 16000, 24000, 48000).
    pub fn new(params: &CodecParams, rate: u32) -> Result<Self, CodecError> {
        params.validate()?;
        if params.kind != CodecKind::Opus {
            return Err(CodecError::InvalidParams(format!("{:?} is not Opus", params.kind)));
        }
        if !matches!(rate, 8000 | 12000 | 16000 | 24000 | 48000) {
            return Err(CodecError::InvalidParams(format!("Opus at {rate} Hz")));
        }
        let mut err: c_int = 0;
        // SAFETY: valid arguments; the result is checked for NULL.
        let st = unsafe { opus_decoder_create(rate as i32, params.channels as c_int, &mut err) };
        if st.is_null() || err < 0 {
            return Err(opus_err("opus_decoder_create", err));
        }
        Ok(OpusDecoder { st, rate, channels: params.channels, last_frame: (rate / 1000 * params.ptime_ms) as usize })
    }

    fn run(&mut self, data: Option<&[u8]>, samples: usize, fec: bool, out: &mut Vec<i16>) -> Result<(), CodecError> {
        let ch = self.channels as usize;
        out.reserve(samples * ch);
        let len = out.len();
        let (ptr, n) = match data {
            Some(d) => (d.as_ptr(), d.len() as i32),
            None => (std::ptr::null(), 0),
        };
        // SAFETY: `out` has samples*ch spare samples; data/len describe a slice or are NULL/0.
        let got = unsafe { opus_decode(self.st, ptr, n, out.as_mut_ptr().add(len), samples as c_int, fec as c_int) };
        check("opus_decode", got)?;
        // SAFETY: libopus wrote `got` samples per channel.
        unsafe { out.set_len(len + got as usize * ch) };
        Ok(())
    }
}

impl Drop for OpusDecoder {
    fn drop(&mut self) {
        // SAFETY: created by opus_decoder_create, destroyed once.
        unsafe { opus_decoder_destroy(self.st) };
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
