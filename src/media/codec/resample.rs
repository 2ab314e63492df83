//! Sample-rate conversion with libswresample (s16 interleaved in and out, same channel count).
//!
//! `swr_convert` is called on our own buffers, never through AVFrames: the output is written into
//! the spare capacity of the caller's `Vec`, sized with `swr_get_out_samples` (an upper bound).
//! This sidesteps the ffmpeg-next pitfall where `resampling::Context::run` sizes an empty output
//! frame to the *input* sample count and so silently truncates upsampling (8 k -> 48 k gives 1/6).
//!
//! The resampler is streaming: its filter keeps a few input samples back, so the first calls return
//! slightly fewer samples than `len * out_rate / in_rate` and the deficit (the filter delay, about
//! 16 input samples with the default 32-tap filter) stays constant afterwards. Nothing is lost: it
//! comes out with the next call. No allocation per call once the output `Vec` has grown.

use ffmpeg_next as ff;
use ff::ffi;

use super::CodecError;

pub struct Resampler {
    ctx: ff::software::resampling::Context,
    in_rate: u32,
    out_rate: u32,
    channels: usize,
}

// SAFETY: the SwrContext is plain heap state owned by this value; `&mut self` serialises all use.
unsafe impl Send for Resampler {}

impl Resampler {
    pub fn new(in_rate: u32, out_rate: u32, channels: u8) -> Result<Self, CodecError> {
        super::ffmpeg_init();
        let layout = if channels == 2 { ff::ChannelLayout::STEREO } else { ff::ChannelLayout::MONO };
        let fmt = ff::format::Sample::I16(ff::format::sample::Type::Packed);
        let ctx = ff::software::resampling::Context::get(fmt, layout, in_rate, fmt, layout, out_rate)?;
        Ok(Resampler { ctx, in_rate, out_rate, channels: channels as usize })
    }

    pub fn in_rate(&self) -> u32 {
        self.in_rate
    }

    pub fn out_rate(&self) -> u32 {
        self.out_rate
    }

    /// Converts `input` (interleaved) and appends what is ready to `out`.
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) -> Result<(), CodecError> {
        let in_count = (input.len() / self.channels) as i32;
        // SAFETY: the context is initialised; the output pointer has room for `cap` samples per
        // channel (reserved just before), the input pointer `in_count` samples per channel.
        unsafe {
            let ctx = self.ctx.as_mut_ptr();
            let cap = ffi::swr_get_out_samples(ctx, in_count);
            if cap < 0 {
                return Err(CodecError::Ffmpeg(ff::Error::from(cap)));
            }
            out.reserve(cap as usize * self.channels);
            let len = out.len();
            let mut out_ptr = out.as_mut_ptr().add(len) as *mut u8;
            let mut in_ptr = input.as_ptr() as *const u8;
            let n = ffi::swr_convert(ctx, &mut out_ptr, cap, &mut in_ptr, in_count);
            if n < 0 {
                return Err(CodecError::Ffmpeg(ff::Error::from(n)));
            }
            out.set_len(len + n as usize * self.channels);
        }
        Ok(())
    }

    /// Samples (per channel, at the output rate) held back in the filter.
    pub fn delay(&self) -> i64 {
        // SAFETY: read-only query on an initialised context.
        unsafe { ffi::swr_get_delay(self.ctx.as_ptr() as *mut _, self.out_rate as i64) }
    }
}
