//! Encoder and decoder wrappers over libavcodec (FFmpeg 5.1 through ffmpeg-next 9.0):
//! `pcm_mulaw`, `pcm_alaw`, `g722` and `libopus`.
//!
//! With [`Backend::Default`](super::Backend) only G.722 goes through here; the other codecs are
//! here for [`Backend::Ffmpeg`](super::Backend) (comparison, benchmark).
//!
//! Cost notes: one AVFrame (refcounted, allocated once) is refilled for every encode, one
//! refcounted AVPacket (allocated once, with zeroed padding) is refilled for every decode, so
//! `avcodec_send_packet` takes a reference instead of copying into a fresh buffer. What
//! libavcodec allocates itself (the encoder's output packet buffer) is out of our hands; decoded
//! frames come from libavcodec's buffer pool.
//!
//! Pitfalls handled here (FFmpeg 5.1):
//! * PCM and G.722 decoders must have `sample_rate` and the channel layout set before opening.
//! * G.722 packs 20 ms as 320 samples into 160 bytes; its encoder's frame size must be set before
//!   opening (it defaults to 320 samples whatever the ptime).
//! * `libopusenc` reads the complexity from `compression_level` (default -1 means 10, with a
//!   warning) and the bandwidth from `cutoff`; it has no DTX option and refuses 30 ms frames.
//! * `libopusdec` always outputs 48 kHz, never decodes FEC, and an empty packet means end of stream:
//!   PLC is triggered with a TOC-only packet (libopus conceals a frame of the TOC's duration).

use std::ptr;

use ffmpeg_next as ff;
use ff::ffi;
use ff::packet::{Mut as _, Ref as _};

use super::plc::Plc;
use super::{AudioDecoder, AudioEncoder, CodecError, CodecKind, CodecParams};

const EAGAIN: i32 = -(ff::util::error::EAGAIN);
const MAX_PACKET: usize = 4000;
const PADDING: usize = ffi::AV_INPUT_BUFFER_PADDING_SIZE as usize;

fn codec_name(kind: CodecKind) -> &'static str {
    match kind {
        CodecKind::Pcmu => "pcm_mulaw",
        CodecKind::Pcma => "pcm_alaw",
        CodecKind::G722 => "g722",
        CodecKind::Opus => "libopus",
    }
}

fn layout(channels: u8) -> ff::ChannelLayout {
    if channels == 2 {
        ff::ChannelLayout::STEREO
    } else {
        ff::ChannelLayout::MONO
    }
}

fn err(code: i32) -> CodecError {
    CodecError::Ffmpeg(ff::Error::from(code))
}

/// Sets the legacy channel fields (FFmpeg 5.1 converts them into `ch_layout` when opening).
unsafe fn set_channels(ctx: *mut ffi::AVCodecContext, channels: u8) {
    (*ctx).channel_layout = layout(channels).bits();
    (*ctx).channels = channels as i32;
}

pub struct FfmpegEncoder {
    ctx: ff::codec::Context,
    frame: ff::frame::Audio,
    pkt: ff::Packet,
    rate: u32,
    channels: u8,
    frame_samples: usize,
    pts: i64,
}

impl FfmpegEncoder {
    /// Encoder taking PCM at `rate` (the codec's own rate; 8-48 kHz for Opus).
    pub fn new(params: &CodecParams, rate: u32) -> Result<Self, CodecError> {
        params.validate()?;
        super::ffmpeg_init();
        let kind = params.kind;
        let codec = ff::encoder::find_by_name(codec_name(kind))
            .ok_or_else(|| CodecError::Unsupported(format!("libavcodec has no {} encoder", codec_name(kind))))?;
        let frame_samples = (rate / 1000 * params.ptime_ms) as usize;
        let mut ctx = ff::codec::Context::new_with_codec(codec);
        let mut opts = ff::Dictionary::new();
        // SAFETY: plain field writes on a freshly allocated, not yet opened context.
        unsafe {
            let c = ctx.as_mut_ptr();
            (*c).sample_rate = rate as i32;
            (*c).sample_fmt = ffi::AVSampleFormat::AV_SAMPLE_FMT_S16;
            set_channels(c, params.channels);
            (*c).time_base = ffi::AVRational { num: 1, den: rate as i32 };
            match kind {
                CodecKind::G722 => (*c).frame_size = frame_samples as i32,
                CodecKind::Opus => {
                    let o = &params.opus;
                    if o.dtx {
                        return Err(CodecError::Unsupported("DTX through FFmpeg 5.1's libopus encoder".into()));
                    }
                    if params.ptime_ms == 30 {
                        return Err(CodecError::Unsupported("30 ms Opus frames through ffmpeg".into()));
                    }
                    (*c).compression_level = o.complexity as i32;
                    (*c).bit_rate = if o.bitrate == 0 {
                        super::opus::default_bitrate(rate, params.channels) as i64
                    } else {
                        o.bitrate as i64
                    };
                    (*c).cutoff = match o.max_playback_rate {
                        0..=8000 => 4000,
                        8001..=12000 => 6000,
                        12001..=16000 => 8000,
                        16001..=24000 => 12000,
                        _ => 20000,
                    };
                    opts.set("application", "voip");
                    opts.set("frame_duration", &params.ptime_ms.to_string());
                    opts.set("fec", if o.fec { "1" } else { "0" });
                    opts.set("packet_loss", &o.packet_loss_perc.to_string());
                    opts.set("vbr", "on");
                }
                _ => {}
            }
        }
        let enc = ctx.encoder().audio()?;
        let opened = enc.open_as_with(codec, opts)?;
        // Take the context back out of the opened encoder wrapper: we drive it through ffi.
        let ctx = into_context(opened);
        // SAFETY: the context is open; read-only field access.
        let fs = unsafe { (*ctx.as_ptr()).frame_size } as usize;
        if fs != 0 && fs != frame_samples {
            return Err(CodecError::Unsupported(format!(
                "{} opened with frame size {fs}, wanted {frame_samples}",
                codec_name(kind)
            )));
        }
        let mut frame = ff::frame::Audio::new(ff::format::Sample::I16(ff::format::sample::Type::Packed), frame_samples, layout(params.channels));
        frame.set_rate(rate);
        Ok(FfmpegEncoder { ctx, frame, pkt: ff::Packet::empty(), rate, channels: params.channels, frame_samples, pts: 0 })
    }
}

/// `encoder::Audio::open*` returns a newtype chain `Encoder(Audio(Encoder(Context)))` (no `Drop`
/// on the wrappers): unwrap it.
fn into_context(opened: ff::encoder::audio::Encoder) -> ff::codec::Context {
    opened.0 .0 .0
}

impl AudioEncoder for FfmpegEncoder {
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        let n = self.frame_samples * self.channels as usize;
        if pcm.len() != n {
            return Err(CodecError::FrameSize { expected: n, got: pcm.len() });
        }
        // SAFETY: the frame was allocated with av_frame_get_buffer; make_writable only copies if
        // libavcodec still holds a reference (it does not once the packet has been received).
        unsafe {
            let r = ffi::av_frame_make_writable(self.frame.as_mut_ptr());
            if r < 0 {
                return Err(err(r));
            }
        }
        self.frame.plane_mut::<i16>(0)[..n].copy_from_slice(pcm);
        self.frame.set_pts(Some(self.pts));
        self.pts += self.frame_samples as i64;
        let before = out.len();
        // SAFETY: open context, valid frame and packet.
        unsafe {
            let r = ffi::avcodec_send_frame(self.ctx.as_mut_ptr(), self.frame.as_ptr());
            if r < 0 {
                return Err(err(r));
            }
            loop {
                let r = ffi::avcodec_receive_packet(self.ctx.as_mut_ptr(), self.pkt.as_mut_ptr());
                if r == EAGAIN {
                    break;
                }
                if r < 0 {
                    return Err(err(r));
                }
                let p = self.pkt.as_ptr();
                out.extend_from_slice(std::slice::from_raw_parts((*p).data, (*p).size as usize));
                ffi::av_packet_unref(self.pkt.as_mut_ptr());
            }
        }
        if out.len() == before {
            return Err(CodecError::Unsupported(format!("{} buffered a frame", self.codec_label())));
        }
        Ok(())
    }

    fn frame_samples(&self) -> usize {
        self.frame_samples
    }

    fn sample_rate(&self) -> u32 {
        self.rate
    }

    fn channels(&self) -> u8 {
        self.channels
    }
}

impl FfmpegEncoder {
    fn codec_label(&self) -> String {
        self.ctx.id().name().to_string()
    }
}

pub struct FfmpegDecoder {
    ctx: ff::codec::Context,
    frame: ff::frame::Audio,
    pkt: ff::Packet,
    rate: u32,
    channels: u8,
    plc: Option<Plc>,
    /// Opus: TOC of the last good packet (PLC via a TOC-only packet).
    last_toc: u8,
}

impl FfmpegDecoder {
    /// Decoder at the codec's own rate (48 kHz for Opus: ffmpeg cannot decode Opus to less).
    pub fn new(params: &CodecParams) -> Result<Self, CodecError> {
        params.validate()?;
        super::ffmpeg_init();
        let kind = params.kind;
        let codec = ff::decoder::find_by_name(codec_name(kind))
            .ok_or_else(|| CodecError::Unsupported(format!("libavcodec has no {} decoder", codec_name(kind))))?;
        let rate = kind.sample_rate();
        let mut ctx = ff::codec::Context::new_with_codec(codec);
        // SAFETY: field writes on a context that is not open yet.
        unsafe {
            let c = ctx.as_mut_ptr();
            (*c).sample_rate = rate as i32;
            set_channels(c, params.channels);
            (*c).request_sample_fmt = ffi::AVSampleFormat::AV_SAMPLE_FMT_S16;
            (*c).pkt_timebase = ffi::AVRational { num: 1, den: rate as i32 };
        }
        // SAFETY: opening with the codec the context was allocated for.
        unsafe {
            let r = ffi::avcodec_open2(ctx.as_mut_ptr(), codec.as_ptr(), ptr::null_mut());
            if r < 0 {
                return Err(err(r));
            }
            if (*ctx.as_ptr()).sample_fmt != ffi::AVSampleFormat::AV_SAMPLE_FMT_S16 {
                return Err(CodecError::Unsupported(format!("{} does not decode to s16", codec_name(kind))));
            }
        }
        let mut pkt = ff::Packet::new(MAX_PACKET);
        // SAFETY: av_new_packet zeroed the padding; we also zero the payload area.
        unsafe {
            ptr::write_bytes((*pkt.as_mut_ptr()).data, 0, MAX_PACKET + PADDING);
        }
        let plc = if kind == CodecKind::Opus { None } else { Some(Plc::new(rate)) };
        Ok(FfmpegDecoder {
            ctx,
            frame: ff::frame::Audio::empty(),
            pkt,
            rate,
            channels: params.channels,
            plc,
            last_toc: 0,
        })
    }

    /// Sends `data` as one packet and appends every frame it yields.
    fn run(&mut self, data: &[u8], out: &mut Vec<i16>) -> Result<(), CodecError> {
        if data.len() > MAX_PACKET {
            return Err(CodecError::Corrupt(format!("payload of {} bytes", data.len())));
        }
        // SAFETY: the packet buffer holds MAX_PACKET + padding bytes; make_writable keeps it so (it
        // only reallocates if libavcodec still references it, copying size + padding).
        unsafe {
            let p = self.pkt.as_mut_ptr();
            (*p).size = MAX_PACKET as i32;
            let r = ffi::av_packet_make_writable(p);
            if r < 0 {
                return Err(err(r));
            }
            ptr::copy_nonoverlapping(data.as_ptr(), (*p).data, data.len());
            ptr::write_bytes((*p).data.add(data.len()), 0, PADDING);
            (*p).size = data.len() as i32;
            let r = ffi::avcodec_send_packet(self.ctx.as_mut_ptr(), p);
            if r < 0 {
                return Err(err(r));
            }
            loop {
                let r = ffi::avcodec_receive_frame(self.ctx.as_mut_ptr(), self.frame.as_mut_ptr());
                if r == EAGAIN {
                    break;
                }
                if r < 0 {
                    return Err(err(r));
                }
                let f = self.frame.as_ptr();
                let n = (*f).nb_samples as usize * self.channels as usize;
                out.extend_from_slice(std::slice::from_raw_parts((*f).data[0] as *const i16, n));
                ffi::av_frame_unref(self.frame.as_mut_ptr());
            }
        }
        Ok(())
    }
}

impl AudioDecoder for FfmpegDecoder {
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), CodecError> {
        let start = out.len();
        self.run(payload, out)?;
        if let Some(plc) = &mut self.plc {
            plc.good_frame(&mut out[start..]);
        } else if let Some(&toc) = payload.first() {
            self.last_toc = toc;
        }
        Ok(())
    }

    fn conceal(&mut self, samples: usize, _next: Option<&[u8]>, out: &mut Vec<i16>) -> Result<(), CodecError> {
        if let Some(plc) = &mut self.plc {
            plc.conceal(samples, out);
            return Ok(());
        }
        // Opus: a TOC-only packet (code 0, one empty frame) makes libopus run its PLC for one frame
        // of the TOC's duration; repeat until `samples` are covered, then trim.
        let start = out.len();
        let want = start + samples * self.channels as usize;
        let toc = [self.last_toc & 0xFC];
        while out.len() < want {
            let before = out.len();
            self.run(&toc, out)?;
            if out.len() == before {
                return Err(CodecError::Unsupported("ffmpeg libopus decoder produced no PLC output".into()));
            }
        }
        out.truncate(want);
        Ok(())
    }

    fn sample_rate(&self) -> u32 {
        self.rate
    }

    fn channels(&self) -> u8 {
        self.channels
    }
}
