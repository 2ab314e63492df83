//! Leg set-up shared by every call kind: the media session's view of a SIP peer and of a browser,
//! and the task that carries the engine's packets out through a WebRTC leg.

use crate::media::engine::INTERNAL_PEER;
use crate::media::handler::{Encoding, PayloadFormat};
use crate::media::session::{DtmfMode, LegConfig, RtcpMode};
use crate::sdp::{Codec, NegotiatedAudio};
use crate::webrtc_leg::{BrowserMedia, WebRtcLeg};
use std::sync::Arc;
use tokio::sync::mpsc;

pub fn encoding_of_codec(codec: Codec) -> Encoding {
    match codec {
        Codec::Pcmu => Encoding::Pcmu,
        Codec::Pcma => Encoding::Pcma,
        Codec::G722 => Encoding::G722,
        Codec::Opus => Encoding::Opus,
    }
}

pub fn codec_of_encoding(encoding: Encoding) -> Codec {
    match encoding {
        Encoding::Pcmu => Codec::Pcmu,
        Encoding::Pcma => Codec::Pcma,
        Encoding::G722 => Codec::G722,
        Encoding::Opus => Codec::Opus,
    }
}

/// The SIP peer's leg as the offer/answer settled it: where to send, in which format, and how.
pub fn sip_leg(negotiated: &NegotiatedAudio, format: PayloadFormat) -> LegConfig {
    LegConfig {
        formats: vec![format],
        telephone_event: negotiated.telephone_event,
        // A peer without telephone-event still gets the browser's digits, as SIP INFO.
        dtmf: if negotiated.telephone_event.is_some() { DtmfMode::Rfc4733 } else { DtmfMode::Info },
        ptime_ms: negotiated.ptime.unwrap_or(20),
        remote: negotiated.remote,
        send: negotiated.direction.receives(),
        rtcp: if negotiated.rtcp_mux { RtcpMode::Mux } else { RtcpMode::SeparatePort },
    }
}

/// A leg fed through a channel (a browser's WebRTC leg, or the echo loop): no socket, no RTCP.
pub fn internal_leg(formats: Vec<PayloadFormat>) -> LegConfig {
    LegConfig { formats, telephone_event: None, dtmf: DtmfMode::Rfc4733, ptime_ms: 20, remote: Some(INTERNAL_PEER), send: true, rtcp: RtcpMode::Off }
}

/// A browser's leg under its own payload numbers (e.g. Opus 111 while the SIP leg says 96): the
/// media session translates between the legs, and webrtc-rs drops packets under any other
/// number. `None` when the browser's codec is not one the engine handles.
pub fn browser_leg(media: &BrowserMedia) -> Option<(LegConfig, PayloadFormat)> {
    let encoding = crate::call::echo::encoding_of(&media.codec.mime_type)?;
    let format = PayloadFormat { encoding, payload_type: media.codec.payload_type, channels: 1 };
    let mut config = internal_leg(vec![format]);
    config.telephone_event = media.telephone_event;
    Some((config, format))
}

/// Sends what the engine produced for the browser until the engine drops its side.
pub fn forward_to_browser(mut from_engine: mpsc::Receiver<Vec<u8>>, leg: Arc<WebRtcLeg>) {
    tokio::spawn(async move {
        while let Some(packet) = from_engine.recv().await {
            if let Err(e) = leg.send_rtp(&packet).await {
                tracing::debug!(error = %e, "cannot send to the browser");
            }
        }
    });
}
