//! One direction of transcoding: RTP payloads of codec A in, RTP payloads of codec B out.
//!
//! Pipeline: decode A -> (resample) -> (mono to stereo) -> FIFO -> encode B in B's ptime.
//!
//! Rates ("pivot" PCM):
//! * Opus <-> G.711: Opus is decoded straight to 8 kHz / encoded straight from 8 kHz (libopus does
//!   both), no resampler. Opus <-> G.722 likewise at 16 kHz.
//! * G.711 <-> G.722: swresample 8 k <-> 16 k.
//! * Opus -> Opus: 48 kHz, or the lowest libopus rate covering `to.opus.max_playback_rate`
//!   (e.g. 16 kHz for `maxplaybackrate=16000`: cheaper, and that receiver plays no more anyway).
//! * [`Backend::Ffmpeg`]: ffmpeg decodes Opus at 48 kHz only, so a resampler follows it.
//!
//! Channels: an Opus decoder is created with the *output* channel count (libopus down-mixes stereo
//! to mono or up-mixes); a mono source towards stereo Opus is duplicated into both channels.
//!
//! Repacketization: decoded PCM goes into a FIFO and is cut into frames of the output ptime, so input
//! and output ptimes are independent (10/20/30/40 ms). Every output payload covers exactly one
//! output ptime, reported as [`OutFrame::rtp_ticks`] in the output RTP clock (G.722 20 ms = 160,
//! Opus 20 ms = 960). Samples that do not fill a whole output frame stay in the FIFO for the next
//! `push` (see [`Transcoder::pending_samples`]); nothing is dropped at frame boundaries.
//! [`Transcoder::flush`] emits the remainder padded with silence (end of call, or before a codec
//! change). The only other latency is the codecs' own and the resampler's filter delay.
//!
//! Allocation: the decode, resample and FIFO buffers are reused. Output payload `Vec`s come from a
//! small pool: hand sent frames back with [`Transcoder::recycle`] and steady state allocates
//! nothing on our side (otherwise one `Vec` per output packet).
//!
//! DTX: with `to.opus.dtx` the Opus encoder produces 1-2 byte payloads during silence; they are
//! returned like any other frame (with their `rtp_ticks`): a sender should advance its timestamp
//! and may skip sending them (RFC 7587 §3.1.3).

use super::resample::Resampler;
use super::{decoder_with, encoder_with, AudioDecoder, AudioEncoder, Backend, CodecError, CodecKind, CodecParams};

/// One output RTP payload and the number of output RTP clock ticks it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutFrame {
    pub payload: Vec<u8>,
    pub rtp_ticks: u32,
}

const POOL_MAX: usize = 8;

/// Lowest libopus rate carrying audio up to `max_playback_rate`.
fn opus_rate_for(max_playback_rate: u32) -> u32 {
    [8000, 12000, 16000, 24000, 48000].into_iter().find(|&r| r >= max_playback_rate).unwrap_or(48000)
}

pub struct Transcoder {
    dec: Box<dyn AudioDecoder>,
    enc: Box<dyn AudioEncoder>,
    resampler: Option<Resampler>,
    upmix: bool,
    dec_ch: usize,
    out_ch: usize,
    dec_buf: Vec<i16>,
    rs_buf: Vec<i16>,
    fifo: Vec<i16>,
    fifo_pos: usize,
    enc_frame: usize,
    ticks: u32,
    last_in_samples: usize,
    pool: Vec<Vec<u8>>,
    from: CodecKind,
    to: CodecKind,
}

impl Transcoder {
    pub fn new(from: &CodecParams, to: &CodecParams) -> Result<Self, CodecError> {
        Self::with_backend(from, to, Backend::Default)
    }

    pub fn with_backend(from: &CodecParams, to: &CodecParams, backend: Backend) -> Result<Self, CodecError> {
        from.validate()?;
        to.validate()?;
        // Encoder input rate.
        let enc_rate = match (from.kind, to.kind) {
            (CodecKind::Opus, CodecKind::Opus) => opus_rate_for(to.opus.max_playback_rate),
            (src, CodecKind::Opus) => src.sample_rate(),
            (_, dst) => dst.sample_rate(),
        };
        // Decoder output rate.
        let dec_rate = match (from.kind, backend) {
            (CodecKind::Opus, Backend::Default) => enc_rate,
            (src, _) => src.sample_rate(),
        };
        let mut dec_params = from.clone();
        if from.kind == CodecKind::Opus {
            dec_params.channels = to.channels;
        }
        let dec = decoder_with(&dec_params, dec_rate, backend)?;
        let enc = encoder_with(to, enc_rate, backend)?;
        let dec_ch = dec.channels() as usize;
        let out_ch = enc.channels() as usize;
        let resampler = if dec_rate != enc_rate { Some(Resampler::new(dec_rate, enc_rate, dec_ch as u8)?) } else { None };
        let enc_frame = enc.frame_samples();
        let ticks = (enc_frame as u64 * to.kind.rtp_clock_rate() as u64 / enc_rate as u64) as u32;
        let fifo_cap = 4 * 48 * 40 * out_ch; // > one 40 ms input frame at 48 kHz plus a partial output frame
        Ok(Transcoder {
            dec,
            enc,
            resampler,
            upmix: dec_ch == 1 && out_ch == 2,
            dec_ch,
            out_ch,
            dec_buf: Vec::with_capacity(48 * 120 * 2),
            rs_buf: Vec::with_capacity(48 * 120 * 2),
            fifo: Vec::with_capacity(fifo_cap),
            fifo_pos: 0,
            enc_frame,
            ticks,
            last_in_samples: (dec_rate / 1000 * from.ptime_ms) as usize,
            pool: Vec::with_capacity(POOL_MAX),
            from: from.kind,
            to: to.kind,
        })
    }

    /// Feeds one received payload (in sequence order) and appends the finished output frames.
    pub fn push(&mut self, payload: &[u8], out: &mut Vec<OutFrame>) -> Result<(), CodecError> {
        self.dec_buf.clear();
        self.dec.decode(payload, &mut self.dec_buf)?;
        if !self.dec_buf.is_empty() {
            self.last_in_samples = self.dec_buf.len() / self.dec_ch;
        }
        self.feed(out)
    }

    /// Conceals one lost input packet (of the duration of the last received one) and appends the
    /// finished output frames. `next_payload` is the packet after the lost one if already received
    /// (Opus in-band FEC); it is only peeked at and must still be `push`ed afterwards.
    pub fn push_lost(&mut self, next_payload: Option<&[u8]>, out: &mut Vec<OutFrame>) -> Result<(), CodecError> {
        self.dec_buf.clear();
        self.dec.conceal(self.last_in_samples, next_payload, &mut self.dec_buf)?;
        self.feed(out)
    }

    /// Emits what is left in the FIFO as one last frame, padded with silence. No-op when empty.
    pub fn flush(&mut self, out: &mut Vec<OutFrame>) -> Result<(), CodecError> {
        let pending = self.fifo.len() - self.fifo_pos;
        if pending == 0 {
            return Ok(());
        }
        let n = self.enc_frame * self.out_ch;
        self.fifo.resize(self.fifo_pos + n, 0);
        self.encode_ready(out)
    }

    /// Samples per channel (at the encoder's rate) waiting for a full output frame.
    pub fn pending_samples(&self) -> usize {
        (self.fifo.len() - self.fifo_pos) / self.out_ch
    }

    /// Gives a sent frame's buffer back for reuse (a pool of up to 8 buffers).
    pub fn recycle(&mut self, frame: OutFrame) {
        if self.pool.len() < POOL_MAX {
            self.pool.push(frame.payload);
        }
    }

    /// Output RTP ticks per output frame.
    pub fn ticks_per_frame(&self) -> u32 {
        self.ticks
    }

    /// Samples per channel per output frame, at the encoder's rate.
    pub fn output_frame_samples(&self) -> usize {
        self.enc_frame
    }

    /// Sample rate of the encoder's input (the pivot PCM rate).
    pub fn pivot_rate(&self) -> u32 {
        self.enc.sample_rate()
    }

    /// Sample rate the input is decoded at.
    pub fn decode_rate(&self) -> u32 {
        self.dec.sample_rate()
    }

    pub fn uses_resampler(&self) -> bool {
        self.resampler.is_some()
    }

    pub fn kinds(&self) -> (CodecKind, CodecKind) {
        (self.from, self.to)
    }

    fn feed(&mut self, out: &mut Vec<OutFrame>) -> Result<(), CodecError> {
        let src: &[i16] = match &mut self.resampler {
            Some(rs) => {
                self.rs_buf.clear();
                rs.process(&self.dec_buf, &mut self.rs_buf)?;
                &self.rs_buf
            }
            None => &self.dec_buf,
        };
        if self.upmix {
            self.fifo.reserve(src.len() * 2);
            for &s in src {
                self.fifo.push(s);
                self.fifo.push(s);
            }
        } else {
            self.fifo.extend_from_slice(src);
        }
        self.encode_ready(out)
    }

    fn encode_ready(&mut self, out: &mut Vec<OutFrame>) -> Result<(), CodecError> {
        let n = self.enc_frame * self.out_ch;
        while self.fifo.len() - self.fifo_pos >= n {
            let mut payload = self.pool.pop().unwrap_or_default();
            payload.clear();
            let pcm = &self.fifo[self.fifo_pos..self.fifo_pos + n];
            self.enc.encode(pcm, &mut payload)?;
            self.fifo_pos += n;
            out.push(OutFrame { payload, rtp_ticks: self.ticks });
        }
        if self.fifo_pos > 0 {
            // memmove of less than one output frame; no allocation.
            self.fifo.copy_within(self.fifo_pos.., 0);
            self.fifo.truncate(self.fifo.len() - self.fifo_pos);
            self.fifo_pos = 0;
        }
        Ok(())
    }
}
