//! The call's media session: started once the SIP side's media is negotiated and the browser
//! that takes part is known, and its reports turned into leg inputs.

use super::{CallTask, Leg};
use crate::call::legs::browser_leg;
use crate::call::machine::{EndReason, LegInput};
use crate::media::engine::LegIo;
use crate::media::session::{EgressSeeds, MediaEvent, MediaSession, Side};
use std::time::Instant;

impl CallTask {
    /// Starts the media session when both sides are ready: a call from SIP once a browser
    /// accepted, a call to SIP once the peer's answer (or early media) came.
    pub(super) fn start_media(&mut self) {
        if self.media.is_some() || self.call.is_ended() {
            return;
        }
        let Some(browser_index) = self.browser_in_call() else { return };
        let Some(Leg::Browser(browser)) = self.legs.get(browser_index) else { return };
        let handle = browser.webrtc.clone();
        let Leg::Sip(sip) = &mut self.legs[self.sip_index] else { return };
        let Some(sip_config) = sip.media_ready.clone() else { return };
        // The browser's own numbers, as its answer settled them: not the SIP side's.
        let Some((browser_config, _)) = browser_leg(&handle.media()) else {
            return self.call.abort(EndReason::NoCommonMedia, Instant::now());
        };
        // A WebRTC SIP peer's leg, else the SIP-side RTP sockets.
        let (sip_io, sip_ssrc) = match (&sip.webrtc, sip.endpoint.take()) {
            (Some(webrtc), _) => (webrtc.io(), Some(webrtc.ssrc())),
            (None, Some(endpoint)) => (LegIo::Udp(endpoint), None),
            (None, None) => return,
        };
        if let (Some(sip_format), Some(browser_format)) = (sip_config.formats.first(), browser_config.formats.first()) {
            let transcoding = sip_format.encoding != browser_format.encoding;
            let (sip_payload_type, browser_payload_type) = (sip_format.payload_type, browser_format.payload_type);
            tracing::info!(sip_codec = ?sip.sdp.codec, sip_payload_type, browser_payload_type, transcoding, "media");
        }
        let side = sip.sdp.side;
        let random = || EgressSeeds { ssrc: rand::random(), sequence: rand::random(), timestamp: rand::random() };
        let browser_seeds = self.next_browser_seeds.take().unwrap_or(EgressSeeds { ssrc: handle.ssrc(), ..random() });
        self.browser_seeds = Some(browser_seeds);
        let sip_seeds = EgressSeeds { ssrc: sip_ssrc.unwrap_or_else(rand::random), ..random() };
        let (a, b, seeds) = match side {
            Side::A => (sip_config, browser_config, [sip_seeds, browser_seeds]),
            Side::B => (browser_config, sip_config, [browser_seeds, sip_seeds]),
        };
        let layer = &self.layer;
        let factory = crate::media::codec_glue::factory(layer.opus_complexity);
        let mut session = MediaSession::new(a, b, seeds, factory, layer.media_timeouts, layer.engine.now());
        if let Some(keys) = &sip.sdp.keys {
            let (outbound, inbound) = keys.contexts();
            session.set_srtp(side, outbound, inbound);
        }
        let (a_io, b_io) = match side {
            Side::A => (sip_io, handle.io()),
            Side::B => {
                // Until the 200 (`expect_media`): a 183's media may stay silent while the far end rings.
                session.defer_inactivity();
                (handle.io(), sip_io)
            }
        };
        self.media = Some(layer.engine.spawn_with_browser(session, a_io, b_io, &handle));
    }

    /// What the media session reported: digits from the SIP peer, digits to send as INFO, and
    /// a silent leg.
    pub(super) fn on_media_event(&mut self, event: MediaEvent) {
        let sip_side = self.sip().sdp.side;
        match event {
            MediaEvent::Digit { from, digit, duration_ms } if from == sip_side => {
                tracing::info!(%digit, duration_ms, "DTMF from the SIP side");
                self.sip().inject(LegInput::Dtmf { digits: digit.to_string(), duration_ms, tag: None });
            }
            MediaEvent::SendInfo { toward, digit, duration_ms } if toward == sip_side => self.sip().send_info(digit, duration_ms),
            MediaEvent::Inactive { side, silent_for } => {
                let index = if side == sip_side { Some(self.sip_index) } else { self.browser_in_call() };
                tracing::info!(?side, ?silent_for, "media timeout");
                match index.and_then(|i| self.legs.get_mut(i)) {
                    Some(Leg::Sip(leg)) => leg.inject(LegInput::MediaTimeout { silent_for }),
                    Some(Leg::Browser(leg)) => leg.inject(LegInput::MediaTimeout { silent_for }),
                    None => {}
                }
            }
            _ => {}
        }
    }

    /// The record's answer: codecs both sides use, whether the call transcodes, the device.
    pub(super) fn record_answer(&mut self, callee: usize) {
        let browser_index = self.browser_in_call().unwrap_or(callee);
        let (browser_codec, device) = match self.legs.get(browser_index) {
            Some(Leg::Browser(b)) => (b.webrtc.media().codec.mime_type, b.device),
            _ => return,
        };
        let inbound = self.sip_index == 0;
        let sip = self.sip();
        let codec = sip.sdp.codec;
        let sip_codec = codec.encoding_name();
        let telephone_event = sip.telephone_event;
        let keys = sip.sdp.keys.clone();
        let browser_encoding = crate::call::echo::encoding_of(&browser_codec);
        let transcoding = browser_encoding != Some(crate::call::legs::encoding_of_codec(codec));
        tracing::info!(%browser_codec, sip_codec = ?codec, transcoding, "answered");
        if let Some(log) = self.log.as_mut() {
            log.dtmf_mode(telephone_event);
            log.answered(sip_codec, &browser_codec, transcoding, inbound.then_some(device));
            log.srtp(keys.as_ref());
        }
    }
}
