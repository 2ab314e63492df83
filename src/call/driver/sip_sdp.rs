//! The SIP leg's offer/answer state after the first exchange (moved from the old `SipSide`):
//! the peer's new offers (hold, resume, codec change, refresh), our hold and resume offers, and
//! SDES rekeying. It prepares; the SIP leg decides when to apply, since the call must agree to a
//! re-offer before it is answered.

use crate::call::legs::{accept_offered_numbers, encoding_of_codec, sip_leg};
use crate::config::SrtpPolicy;
use crate::media::engine::SessionHandle;
use crate::media::handler::PayloadFormat;
use crate::media::session::{LegConfig, Side};
use crate::media::srtp::SdesKeys;
use crate::sdp::{self, Codec, Direction, LocalCapabilities, NegotiatedAudio, SessionDescription};
use std::net::IpAddr;

mod webrtc_hold;

/// The peer's new offer, once read.
pub enum Reoffer {
    /// A session refresh or a repeated offer (same origin version): answered with what we have.
    Same(String),
    /// A real change, prepared and waiting for the call's go-ahead; `hold` when the peer stops
    /// taking our audio (sendonly, inactive).
    New { hold: bool },
}

struct Prepared {
    offer: SessionDescription,
    answer: SessionDescription,
    negotiated: NegotiatedAudio,
    keys: Option<SdesKeys>,
}

pub struct SipSdp {
    /// Which side of the media session is the SIP peer.
    pub side: Side,
    address: IpAddr,
    port: u16,
    /// Our SDP as last agreed, so a new answer or offer keeps its origin with a higher version.
    pub local: SessionDescription,
    /// The peer's last SDP: a re-offer with the same origin changes nothing (RFC 3264 §8).
    remote: Option<SessionDescription>,
    pub codec: Codec,
    srtp: SrtpPolicy,
    /// SDES keys in use on the SIP leg, when the call is SRTP.
    pub keys: Option<SdesKeys>,
    /// We hold the peer (the browser asked): our answers say sendonly and we send nothing.
    pub holding: bool,
    /// The hold or resume offer we sent and whether it holds.
    our_offer: Option<(SessionDescription, bool)>,
    prepared: Option<Prepared>,
    /// The peer's media is WebRTC (ICE + DTLS-SRTP), terminated by a WebRTC leg: its SDP is the
    /// leg's; a new offer is answered with it (direction mirrored) unless it restarts ICE or
    /// changes the fingerprint (488).
    pub webrtc: bool,
    /// The WebRTC peer's re-offer, answered and waiting for the call's go-ahead.
    webrtc_prepared: Option<webrtc_hold::WebRtcPrepared>,
    /// The WebRTC peer takes our audio (its last SDP did not say sendonly or inactive).
    peer_receives: bool,
}

impl SipSdp {
    #[allow(clippy::too_many_arguments)]
    pub fn new(side: Side, address: IpAddr, port: u16, local: SessionDescription, remote: Option<SessionDescription>, codec: Codec, srtp: SrtpPolicy, keys: Option<SdesKeys>) -> SipSdp {
        SipSdp { side, address, port, local, remote, codec, srtp, keys, holding: false, our_offer: None, prepared: None, webrtc: false, webrtc_prepared: None, peer_receives: true }
    }

    /// Reads the peer's answer to our first offer: the media session's SIP leg and its keys.
    pub fn read_first_answer(&mut self, peer_sdp: &str) -> Result<(LegConfig, NegotiatedAudio), &'static str> {
        let answer = SessionDescription::parse(peer_sdp).map_err(|e| e.cause())?;
        let negotiated = sdp::read_answer(&self.local, &answer).map_err(|e| e.cause())?;
        let keys = crate::call::sdes::read_answer(&self.local, &negotiated).map_err(|e| e.cause())?;
        let codec = negotiated.codecs.first().ok_or("no common codec")?;
        let format = PayloadFormat { encoding: encoding_of_codec(codec.codec), payload_type: codec.payload_type, channels: 1 };
        let mut config = sip_leg(&negotiated, format);
        accept_offered_numbers(&mut config, &self.local);
        self.codec = codec.codec;
        self.keys = keys;
        self.remote = Some(answer);
        Ok((config, negotiated))
    }

    /// The WebRTC peer answered our first offer (its WebRTC leg took the answer): kept so a
    /// re-INVITE repeating it is a session refresh.
    pub fn webrtc_answered(&mut self, answer: SessionDescription, codec: Codec) {
        self.remote = Some(answer);
        self.codec = codec;
    }

    /// Reads the peer's new offer; an offer we cannot take is refused with the returned status.
    pub fn prepare_reoffer(&mut self, sdp_text: &str) -> Result<Reoffer, u16> {
        let offer = SessionDescription::parse(sdp_text).map_err(|e| e.sip_status())?;
        if self.remote.as_ref().is_some_and(|last| sdp::is_same_version(last, &offer)) {
            return Ok(Reoffer::Same(self.local.to_string()));
        }
        if self.webrtc {
            return self.webrtc_reoffer(offer);
        }
        // The codec in use first, so a re-INVITE that keeps it needs no transcoder change.
        let mut codecs = vec![self.codec];
        codecs.extend([Codec::Pcmu, Codec::Pcma, Codec::G722, Codec::Opus].into_iter().filter(|c| *c != self.codec));
        let mut capabilities = LocalCapabilities::new(codecs);
        if self.holding {
            capabilities.direction = Direction::SendOnly;
        }
        let refused = |e: sdp::SdpError| {
            tracing::info!(error = %e, status = e.sip_status(), "re-offer refused");
            e.sip_status()
        };
        let (mut answer, negotiated) = sdp::answer(&offer, &capabilities, self.address, self.port, self.local.origin.session_id).map_err(refused)?;
        let keys = crate::call::sdes::answer_offer(self.srtp, &offer, &negotiated, &mut answer, self.keys.as_ref()).map_err(refused)?;
        answer.origin = self.local.origin.clone();
        answer.origin.version = self.local.origin.version.wrapping_add(1);
        let hold = !negotiated.direction.receives();
        self.prepared = Some(Prepared { offer, answer, negotiated, keys });
        Ok(Reoffer::New { hold })
    }

    /// Applies the prepared answer to the media session; the SDP to answer with.
    pub async fn apply_prepared(&mut self, media: Option<&SessionHandle>) -> Result<String, u16> {
        let Some(prepared) = self.prepared.take() else { return Err(500) };
        if let Some(media) = media {
            self.rekey(media, prepared.keys).await;
            self.apply(media, &prepared.negotiated, None).await.map_err(|_| 500u16)?;
        }
        self.local = prepared.answer;
        self.remote = Some(prepared.offer);
        Ok(self.local.to_string())
    }

    /// Our hold (`true`) or resume offer; held by us, the peer gets nothing from the browser,
    /// so it says sendonly and we send nothing.
    pub fn hold_offer(&mut self, hold: bool) -> String {
        let offer = sdp::with_direction(&self.local, if hold { Direction::SendOnly } else { Direction::SendRecv });
        let text = offer.to_string();
        self.our_offer = Some((offer, hold));
        text
    }

    /// The peer answered our hold or resume offer.
    pub async fn offer_answered(&mut self, media: Option<&SessionHandle>, sdp_text: &str) -> Result<(), String> {
        let Some((offer, hold)) = self.our_offer.take() else { return Err("no offer of ours was pending".into()) };
        let answered = SessionDescription::parse(sdp_text).and_then(|answer| sdp::read_answer(&offer, &answer).map(|n| (answer, n)));
        let keyed = answered.and_then(|(answer, n)| crate::call::sdes::read_answer(&offer, &n).map(|keys| (answer, n, keys)));
        let Ok((answer, negotiated, keys)) = keyed else { return Err("the peer's answer cannot be used".into()) };
        self.holding = hold;
        if let Some(media) = media {
            self.rekey(media, keys).await;
            self.apply(media, &negotiated, Some(&offer)).await?;
        }
        self.local = offer;
        self.remote = Some(answer);
        Ok(())
    }

    pub fn offer_refused(&mut self) {
        self.our_offer = None;
    }

    /// Points the media session's SIP leg at what was just agreed; `our_offer` when the peer
    /// answered ours (it may send under our numbers).
    async fn apply(&mut self, media: &SessionHandle, negotiated: &NegotiatedAudio, our_offer: Option<&SessionDescription>) -> Result<(), String> {
        let codec = negotiated.codecs.first().ok_or("no codec agreed")?;
        let format = PayloadFormat { encoding: encoding_of_codec(codec.codec), payload_type: codec.payload_type, channels: 1 };
        let mut config = sip_leg(negotiated, format);
        if let Some(offer) = our_offer {
            accept_offered_numbers(&mut config, offer);
        }
        config.send &= !self.holding;
        if codec.codec != self.codec {
            tracing::info!(from = ?self.codec, to = ?codec.codec, "the SIP side changed codec");
        }
        self.codec = codec.codec;
        media.update_leg(self.side, config).await.map_err(|e| e.to_string())
    }

    /// Installs the keys a re-INVITE settled, replacing only the directions whose key changed,
    /// so an unchanged direction keeps its SRTP indices and replay window.
    async fn rekey(&mut self, media: &SessionHandle, keys: Option<SdesKeys>) {
        let (Some(new), current) = (keys, self.keys.as_ref()) else { return };
        let outbound = (current.map(|c| &c.local) != Some(&new.local)).then(|| new.local.context());
        let inbound = (current.map(|c| &c.remote) != Some(&new.remote)).then(|| new.remote.context());
        if outbound.is_some() || inbound.is_some() {
            tracing::info!(rekey_outbound = outbound.is_some(), rekey_inbound = inbound.is_some(), "new SDES keys on the SIP leg");
            if media.rekey_srtp(self.side, outbound, inbound).await.is_err() {
                tracing::warn!("the media session ended before the new keys");
            }
        }
        self.keys = Some(new);
    }
}
