//! Leg set-up shared by every call kind: the media session's view of a SIP peer and of a browser,
//! and the task that carries the engine's packets out through a WebRTC leg.

use crate::media::engine::{MediaEngine, INTERNAL_PEER};
use crate::media::handler::{Encoding, PayloadFormat};
use crate::media::session::{DtmfMode, LegConfig, RtcpMode};
use crate::sdp::{Codec, NegotiatedAudio, SessionDescription};
use std::net::IpAddr;
use crate::webrtc_leg::WebRtcLeg;
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

/// The address our SDP gives a SIP peer for media: toward the address its offer names for RTP,
/// else toward its signalling address (the engine never returns a wildcard, which means hold).
pub fn sip_media_address(engine: &MediaEngine, offer: Option<&SessionDescription>, signalling: Option<IpAddr>) -> IpAddr {
    let offered = offer.and_then(|o| o.media.iter().find(|m| m.kind == "audio").and_then(|m| m.rtp_address(o))).map(|a| a.ip());
    engine.advertised_toward(offered.or(signalling))
}
