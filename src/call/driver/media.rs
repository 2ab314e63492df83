//! The call's media session: started once the caller and the leg it talks to (the callee that
//! answered, or the one SIP callee sending early media) both have their media, whatever their
//! kinds (a browser's WebRTC leg, a SIP peer's RTP or SDES sockets, a SIP peer's WebRTC leg), and
//! its reports turned into leg inputs. The caller is side A, its partner side B.

use super::{CallTask, Leg};
use crate::call::legs::browser_leg;
use crate::call::machine::{EndReason, LegInput};
use crate::media::engine::{BrowserLegHandle, LegIo};
use crate::media::session::{EgressSeeds, LegConfig, MediaEvent, MediaSession, Side};
use crate::media::srtp::SdesKeys;
use std::sync::Arc;
use std::time::Instant;

/// One leg's media, as the session takes it.
struct LegMedia {
    config: LegConfig,
    io: LegIo,
    /// Its WebRTC leg, when it has one: the SSRC it sends under, and the worker that runs it.
    webrtc: Option<Arc<BrowserLegHandle>>,
    keys: Option<SdesKeys>,
}

impl CallTask {
    /// The leg the caller talks to: the callee that answered, else a lone SIP callee (its early
    /// media plays before the answer).
    fn media_partner(&self) -> Option<usize> {
        if let Some(winner) = self.call.winner() {
            return Some(winner.index());
        }
        let callees: Vec<usize> = self.call.callees().map(|c| c.index()).collect();
        match callees.as_slice() {
            [only] if matches!(self.legs.get(*only), Some(Leg::Sip(_))) => Some(*only),
            _ => None,
        }
    }

    /// Whether `index` has its media: a browser once it takes part (the caller, or the callee
    /// that answered), a SIP leg once its offer/answer settled.
    fn media_ready(&self, index: usize) -> bool {
        match self.legs.get(index) {
            Some(Leg::Browser(_)) => index == 0 || self.call.winner().map(|w| w.index()) == Some(index),
            Some(Leg::Sip(sip)) => sip.media_ready.is_some() && (sip.webrtc.is_some() || sip.endpoint.is_some()),
            None => false,
        }
    }

    /// Takes `index`'s media for the session; `None` when its codec is not one we handle.
    fn take_media(&mut self, index: usize) -> Option<LegMedia> {
        match self.legs.get_mut(index)? {
            Leg::Browser(browser) => {
                // The browser's own numbers, as its answer settled them: not the SIP side's.
                let (config, _) = browser_leg(&browser.webrtc.media())?;
                Some(LegMedia { config, io: browser.webrtc.io(), webrtc: Some(browser.webrtc.clone()), keys: None })
            }
            Leg::Sip(sip) => {
                let config = sip.media_ready.clone()?;
                let keys = sip.sdp.keys.clone();
                match (&sip.webrtc, sip.endpoint.take()) {
                    (Some(webrtc), _) => Some(LegMedia { config, io: webrtc.io(), webrtc: Some(webrtc.clone()), keys }),
                    (None, Some(endpoint)) => Some(LegMedia { config, io: LegIo::Udp(endpoint), webrtc: None, keys }),
                    (None, None) => None,
                }
            }
        }
    }

    /// Starts the media session when both legs are ready.
    pub(super) fn start_media(&mut self) {
        if self.media.is_some() || self.call.is_ended() {
            return;
        }
        let Some(partner) = self.media_partner() else { return };
        if !self.media_ready(0) || !self.media_ready(partner) {
            return;
        }
        let (Some(a), Some(b)) = (self.take_media(0), self.take_media(partner)) else {
            return self.call.abort(EndReason::NoCommonMedia, Instant::now());
        };
        self.partner = Some(partner);
        // Named as the record names them: the SIP party, and the WebRTC client facing it.
        let sip_is_caller = self.record_sip_index() == Some(0);
        let (sip, client) = if sip_is_caller { (&a, &b) } else { (&b, &a) };
        if let (Some(sip_format), Some(client_format)) = (sip.config.formats.first(), client.config.formats.first()) {
            let transcoding = sip_format.encoding != client_format.encoding;
            let (sip_payload_type, browser_payload_type) = (sip_format.payload_type, client_format.payload_type);
            let sip_codec = crate::call::legs::codec_of_encoding(sip_format.encoding);
            tracing::info!(?sip_codec, sip_payload_type, browser_payload_type, transcoding, "media");
        }
        let seeds = |leg: &LegMedia| EgressSeeds {
            ssrc: leg.webrtc.as_ref().map_or_else(rand::random, |w| w.ssrc()),
            sequence: rand::random(),
            timestamp: rand::random(),
        };
        let layer = &self.layer;
        let factory = crate::media::codec_glue::factory(layer.opus_complexity);
        let seeds = [self.next_seeds[0].take().unwrap_or_else(|| seeds(&a)), self.next_seeds[1].take().unwrap_or_else(|| seeds(&b))];
        self.egress_seeds = seeds.map(Some);
        let mut session = MediaSession::new(a.config, b.config, seeds, factory, layer.media_timeouts, layer.engine.now());
        for (side, keys) in [(Side::A, &a.keys), (Side::B, &b.keys)] {
            if let Some(keys) = keys {
                let (outbound, inbound) = keys.contexts();
                session.set_srtp(side, outbound, inbound);
            }
        }
        if matches!(self.legs.get(partner), Some(Leg::Sip(_))) {
            // Until the 200 (`expect_media`): a 183's media may stay silent while the far end rings.
            session.defer_inactivity();
        }
        // A WebRTC leg's worker runs the session (both WebRTC legs share one: `beside`).
        let handle = a.webrtc.or(b.webrtc);
        self.media = Some(match handle {
            Some(handle) => layer.engine.spawn_with_browser(session, a.io, b.io, &handle),
            None => layer.engine.spawn_legs(session, a.io, b.io),
        });
    }

    fn leg_on_side(&self, side: Side) -> Option<usize> {
        match side {
            Side::A => Some(0),
            Side::B => self.partner,
        }
    }

    /// What the media session reported: digits from a SIP peer, digits to send as INFO, and a
    /// silent leg.
    pub(super) fn on_media_event(&mut self, event: MediaEvent) {
        match event {
            MediaEvent::Digit { from, digit, duration_ms } => {
                if let Some(leg) = self.leg_on_side(from).and_then(|i| self.sip_leg(i)) {
                    tracing::info!(%digit, duration_ms, "DTMF from the SIP side");
                    leg.inject(LegInput::Dtmf { digits: digit.to_string(), duration_ms, tag: None });
                }
            }
            MediaEvent::SendInfo { toward, digit, duration_ms } => {
                if let Some(leg) = self.leg_on_side(toward).and_then(|i| self.sip_leg(i)) {
                    leg.send_info(digit, duration_ms);
                }
            }
            MediaEvent::Inactive { side, silent_for } => {
                tracing::info!(?side, ?silent_for, "media timeout");
                match self.leg_on_side(side).and_then(|i| self.legs.get_mut(i)) {
                    Some(Leg::Sip(leg)) => leg.inject(LegInput::MediaTimeout { silent_for }),
                    Some(Leg::Browser(leg)) => leg.inject(LegInput::MediaTimeout { silent_for }),
                    None => {}
                }
            }
            _ => {}
        }
    }

    /// The record's answer: the SIP party and the WebRTC client (a sipbridge.js browser, or a
    /// SIP-over-WebSocket client talking to a plain SIP party), their codecs, whether the call
    /// transcodes, the device.
    pub(super) fn record_answer(&mut self, callee: usize) {
        let Some(sip_index) = [0, callee].into_iter().find(|i| matches!(self.legs.get(*i), Some(Leg::Sip(s)) if s.webrtc.is_none())).or_else(|| [0, callee].into_iter().find(|i| matches!(self.legs.get(*i), Some(Leg::Sip(_))))) else {
            return;
        };
        let client_index = if sip_index == 0 { callee } else { 0 };
        let (client_codec, device, client_peer) = match self.legs.get(client_index) {
            Some(Leg::Browser(b)) => (b.webrtc.media().codec.mime_type, (client_index != 0).then_some(b.device), None),
            Some(Leg::Sip(s)) => match &s.webrtc {
                Some(webrtc) => (webrtc.media().codec.mime_type, None, s.peer.clone()),
                None => return,
            },
            None => return,
        };
        let Some(Leg::Sip(sip)) = self.legs.get(sip_index) else { return };
        let codec = sip.sdp.codec;
        let (telephone_event, keys, sip_peer) = (sip.telephone_event, sip.sdp.keys.clone(), sip.peer.clone());
        let client_encoding = crate::call::echo::encoding_of(&client_codec);
        let transcoding = client_encoding != Some(crate::call::legs::encoding_of_codec(codec));
        tracing::info!(%client_codec, sip_codec = ?codec, transcoding, "answered");
        if let Some(log) = self.log.as_mut() {
            if let (Some((remote, user_agent)), true) = (sip_peer, client_peer.is_some()) {
                log.sip_peer(remote, user_agent);
            }
            if let Some((remote, user_agent)) = client_peer {
                log.webrtc_client(remote, user_agent);
            }
            log.dtmf_mode(telephone_event);
            log.answered(codec.encoding_name(), &client_codec, transcoding, device);
            log.srtp(keys.as_ref());
        }
    }
}
