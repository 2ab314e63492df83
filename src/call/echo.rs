//! The echo test: the browser's audio goes through the gateway's media engine and straight back.
//! With a forced codec the loop runs through that codec, so the audio is transcoded both ways
//! (e.g. Opus -> PCMU -> Opus): the first thing to try when "there is no audio".

use super::legs::internal_leg;
use crate::media::engine::{BrowserLegHandle, LegIo, MediaEngine, SessionHandle};
use crate::media::worker::BrowserLegStart;
use crate::media::handler::{Encoding, PayloadFormat, TranscoderFactory};
use crate::media::session::{EgressSeeds, MediaSession, Side, Timeouts};
use crate::webrtc_leg::{BrowserCodec, LegEvent, WebRtcConfig};
use std::sync::Arc;
use tokio::sync::mpsc;

#[derive(Debug)]
pub enum EchoEvent {
    Candidate(Option<serde_json::Value>),
    Connected,
    Ended { reason: String },
}

/// The operator's WebRTC settings, per call.
#[derive(Debug, Clone)]
pub struct WebRtcSettings {
    pub public_ip: Option<std::net::IpAddr>,
    pub lite: bool,
    pub failed_timeout: std::time::Duration,
}

pub struct EchoCall {
    leg: Arc<BrowserLegHandle>,
    media: SessionHandle,
    pub transcoding: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum EchoError {
    #[error(transparent)]
    WebRtc(#[from] crate::webrtc_leg::WebRtcError),
    #[error(transparent)]
    Media(#[from] crate::media::engine::EngineError),
    #[error("unknown codec `{0}` (use opus, g722, pcmu or pcma)")]
    UnknownCodec(String),
    #[error("cannot transcode: {0}")]
    Transcoding(String),
}

pub fn encoding_of(name: &str) -> Option<Encoding> {
    match name.to_ascii_lowercase().trim_start_matches("audio/") {
        "opus" => Some(Encoding::Opus),
        "g722" => Some(Encoding::G722),
        "pcmu" => Some(Encoding::Pcmu),
        "pcma" => Some(Encoding::Pcma),
        _ => None,
    }
}

fn static_payload_type(encoding: Encoding) -> u8 {
    match encoding {
        Encoding::Pcmu => 0,
        Encoding::Pcma => 8,
        Encoding::G722 => 9,
        Encoding::Opus => 111,
    }
}

fn browser_format(codec: &BrowserCodec) -> Option<PayloadFormat> {
    Some(PayloadFormat { encoding: encoding_of(&codec.mime_type)?, payload_type: codec.payload_type, channels: 1 })
}

impl EchoCall {
    /// Answers the browser's offer and starts the loop. Returns the call, the answer SDP and the
    /// events to forward to the browser.
    pub async fn start(
        offer_sdp: &str,
        forced_codec: Option<&str>,
        engine: &Arc<MediaEngine>,
        factory: TranscoderFactory,
        webrtc: WebRtcSettings,
    ) -> Result<(EchoCall, String, mpsc::Receiver<EchoEvent>), EchoError> {
        let loop_encoding = match forced_codec {
            Some(name) => Some(encoding_of(name).ok_or_else(|| EchoError::UnknownCodec(name.to_string()))?),
            None => None,
        };
        let ssrc: u32 = rand::random();
        let config = WebRtcConfig { public_ip: webrtc.public_ip, lite: webrtc.lite, failed_timeout: webrtc.failed_timeout };
        let start = BrowserLegStart::Answer { offer: offer_sdp.to_string(), forced_codec: None };
        let (leg, answer, _, mut leg_events) = engine.open_browser_leg(start, &config, ssrc)?;
        let Some(browser) = browser_format(&leg.codec()) else {
            leg.close().await;
            return Err(crate::webrtc_leg::WebRtcError::NoCommonCodec.into());
        };
        let looped = match loop_encoding {
            Some(encoding) if encoding != browser.encoding => PayloadFormat { encoding, payload_type: static_payload_type(encoding), channels: 1 },
            _ => browser,
        };
        let transcoding = looped.encoding != browser.encoding;
        let seeds = [
            EgressSeeds { ssrc, sequence: rand::random(), timestamp: rand::random() },
            EgressSeeds { ssrc: rand::random(), sequence: rand::random(), timestamp: rand::random() },
        ];
        let session = MediaSession::new(internal_leg(vec![browser]), internal_leg(vec![looped]), seeds, factory, Timeouts::default(), engine.now());
        if let Some(problem) = session.problems().first() {
            leg.close().await;
            return Err(EchoError::Transcoding(problem.clone()));
        }
        let media = engine.spawn_with_browser(session, leg.io(), LegIo::Loopback, &leg);
        let leg = Arc::new(leg);
        let (events_tx, events_rx) = mpsc::channel(64);
        tokio::spawn(async move {
            while let Some(event) = leg_events.recv().await {
                let forwarded = match event {
                    LegEvent::LocalCandidate(candidate) => EchoEvent::Candidate(candidate),
                    LegEvent::Connected => EchoEvent::Connected,
                    LegEvent::Failed(reason) => EchoEvent::Ended { reason },
                };
                if events_tx.send(forwarded).await.is_err() {
                    break;
                }
            }
        });
        Ok((EchoCall { leg, media, transcoding }, answer, events_rx))
    }

    pub async fn add_remote_candidate(&self, candidate: Option<serde_json::Value>) -> Result<(), EchoError> {
        Ok(self.leg.add_remote_candidate(candidate).await?)
    }

    pub async fn quality(&self) -> Option<crate::media::session::LegQuality> {
        self.media.quality(Side::A).await.ok()
    }

    pub async fn hangup(&self) {
        self.media.stop().await;
        self.leg.close().await;
    }
}
