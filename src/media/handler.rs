//! One codec handler per (source payload type, destination payload type), as rtpengine does it:
//! passthrough when the other leg accepts the source codec, transcoding otherwise.


#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    Pcmu,
    Pcma,
    G722,
    Opus,
}

impl Encoding {
    /// RFC 3551 and RFC 7587 clock rates (G.722 keeps 8000 for historical reasons).
    pub fn rtp_clock_rate(self) -> u32 {
        match self {
            Self::Pcmu | Self::Pcma | Self::G722 => 8_000,
            Self::Opus => 48_000,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Self::Pcmu => "PCMU",
            Self::Pcma => "PCMA",
            Self::G722 => "G722",
            Self::Opus => "opus",
        }
    }
}

/// A negotiated audio payload format on one leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadFormat {
    pub encoding: Encoding,
    pub payload_type: u8,
    pub channels: u8,
}

impl PayloadFormat {
    pub fn clock_rate(&self) -> u32 {
        self.encoding.rtp_clock_rate()
    }
}

/// One encoded frame a transcoder produced, and how much RTP time it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecFrame {
    pub payload: Vec<u8>,
    pub rtp_ticks: u32,
}

/// Decode, resample and re-encode one direction. Implemented by the codec module (ffmpeg); the
/// session only sees this trait, so it stays free of codec libraries.
pub trait PayloadTranscoder: Send {
    fn push(&mut self, payload: &[u8], out: &mut Vec<CodecFrame>) -> Result<(), String>;
    /// Conceal one lost input packet (PLC, or FEC from the packet that followed).
    fn push_lost(&mut self, next_payload: Option<&[u8]>, out: &mut Vec<CodecFrame>) -> Result<(), String>;
    /// Takes back a sent frame's buffer, so that the next frame need not allocate one.
    fn recycle(&mut self, _payload: Vec<u8>) {}
}

/// Builds transcoders: (from, to, output ptime in ms).
pub type TranscoderFactory = Box<dyn Fn(&PayloadFormat, &PayloadFormat, u32) -> Result<Box<dyn PayloadTranscoder>, String> + Send>;

pub enum Handler {
    Passthrough { out: PayloadFormat },
    Transcode { out: PayloadFormat, transcoder: Box<dyn PayloadTranscoder> },
}

impl Handler {
    pub fn is_passthrough(&self) -> bool {
        matches!(self, Self::Passthrough { .. })
    }
    pub fn out_format(&self) -> PayloadFormat {
        match self {
            Self::Passthrough { out } | Self::Transcode { out, .. } => *out,
        }
    }
}

/// The handlers for one direction, keyed by source payload type. A call negotiates a handful of
/// formats, so a short list scanned in order is cheaper per packet than hashing the key.
#[derive(Default)]
pub struct HandlerTable {
    handlers: Vec<(u8, Handler)>,
}

impl HandlerTable {
    /// Passthrough for every source format the destination also negotiated; transcoding to the
    /// destination's preferred format for the rest. Formats that cannot be transcoded are left
    /// out: their packets are dropped and counted.
    pub fn build(sources: &[PayloadFormat], destinations: &[PayloadFormat], ptime_ms: u32, factory: &TranscoderFactory) -> (HandlerTable, Vec<String>) {
        let mut handlers: Vec<(u8, Handler)> = Vec::with_capacity(sources.len());
        let mut problems = Vec::new();
        for source in sources {
            let same = destinations.iter().find(|d| d.encoding == source.encoding && d.channels == source.channels);
            let handler = match (same, destinations.first()) {
                (Some(out), _) => Handler::Passthrough { out: *out },
                (None, Some(preferred)) => match factory(source, preferred, ptime_ms) {
                    Ok(transcoder) => Handler::Transcode { out: *preferred, transcoder },
                    Err(e) => {
                        problems.push(format!("{} -> {}: {e}", source.encoding.name(), preferred.encoding.name()));
                        continue;
                    }
                },
                (None, None) => continue,
            };
            // A payload type listed twice keeps its last handler.
            handlers.retain(|(payload_type, _)| *payload_type != source.payload_type);
            handlers.push((source.payload_type, handler));
        }
        (HandlerTable { handlers }, problems)
    }

    pub fn get_mut(&mut self, payload_type: u8) -> Option<&mut Handler> {
        self.handlers.iter_mut().find(|(pt, _)| *pt == payload_type).map(|(_, handler)| handler)
    }

    pub fn transcodes(&self) -> bool {
        self.handlers.iter().any(|(_, h)| !h.is_passthrough())
    }
}
