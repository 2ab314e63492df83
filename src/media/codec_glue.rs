//! Connects the session's `PayloadTranscoder` trait to the codec module, so the session never
//! names a codec library and the codec module never names a session type.

use super::codec::{CodecKind, CodecParams, OutFrame, Transcoder};
use super::handler::{CodecFrame, Encoding, PayloadFormat, PayloadTranscoder, TranscoderFactory};

fn kind(encoding: Encoding) -> CodecKind {
    match encoding {
        Encoding::Pcmu => CodecKind::Pcmu,
        Encoding::Pcma => CodecKind::Pcma,
        Encoding::G722 => CodecKind::G722,
        Encoding::Opus => CodecKind::Opus,
    }
}

fn params(format: &PayloadFormat, ptime_ms: u32, opus_complexity: u8) -> CodecParams {
    let mut params = CodecParams::new(kind(format.encoding));
    params.payload_type = format.payload_type;
    params.channels = format.channels.max(1);
    params.ptime_ms = ptime_ms;
    params.opus.complexity = opus_complexity;
    params
}

struct Adapter {
    transcoder: Transcoder,
    frames: Vec<OutFrame>,
}

impl Adapter {
    fn drain(&mut self, out: &mut Vec<CodecFrame>) {
        for frame in self.frames.drain(..) {
            out.push(CodecFrame { payload: frame.payload, rtp_ticks: frame.rtp_ticks });
        }
    }
}

impl PayloadTranscoder for Adapter {
    fn push(&mut self, payload: &[u8], out: &mut Vec<CodecFrame>) -> Result<(), String> {
        let result = self.transcoder.push(payload, &mut self.frames).map_err(|e| e.to_string());
        self.drain(out);
        result
    }

    fn push_lost(&mut self, next_payload: Option<&[u8]>, out: &mut Vec<CodecFrame>) -> Result<(), String> {
        let result = self.transcoder.push_lost(next_payload, &mut self.frames).map_err(|e| e.to_string());
        self.drain(out);
        result
    }

    fn recycle(&mut self, payload: Vec<u8>) {
        self.transcoder.recycle(OutFrame { payload, rtp_ticks: 0 });
    }
}

/// The production transcoder factory: ffmpeg/libopus codecs at the configured Opus complexity.
pub fn factory(opus_complexity: u8) -> TranscoderFactory {
    Box::new(move |from: &PayloadFormat, to: &PayloadFormat, ptime_ms: u32| {
        let transcoder = Transcoder::new(&params(from, 20, opus_complexity), &params(to, ptime_ms, opus_complexity)).map_err(|e| e.to_string())?;
        Ok(Box::new(Adapter { transcoder, frames: Vec::new() }) as Box<dyn PayloadTranscoder>)
    })
}
