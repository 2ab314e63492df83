//! The media engine: RTP in, RTP out. A stream passes ingress -> decrypt -> one codec handler per
//! (source payload type, destination payload type), passthrough or transcode -> egress.
//! Everything here is sans-IO except the engine driver; only `codec/` imports ffmpeg.

pub mod codec;
pub mod codec_glue;
pub mod dtmf;
pub mod engine;
pub mod handler;
pub mod latch;
pub mod ports;
pub mod reorder;
pub mod rtcp;
pub mod rtp;
pub mod sequencer;
pub mod session;
pub mod srtp;
pub mod stats;
pub mod worker;
