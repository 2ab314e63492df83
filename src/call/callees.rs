//! The callee legs of a call, as `route` decided them, for any caller: a browser leg per
//! sipbridge.js session (a WebRTC offer each), a SIP leg per registered binding (WebRTC offer for
//! a WebSocket client, RTP for a desk phone), or a SIP leg to a trunk (RTP, SDES when its profile
//! asks, WebRTC when it says `srtp = "dtls"`). A WebRTC callee opens beside the caller's WebRTC
//! leg, so one media worker runs both and two WebRTC clients sharing a codec need no transcoder.

use super::driver::browser_leg::{BrowserLeg, Incoming};
use super::driver::sip_leg::{Placement, SipLeg};
use super::driver::sip_sdp::SipSdp;
use super::driver::{Leg, LegReceivers};
use super::inbound::CallLayer;
use super::legs::codec_of_encoding;
use super::machine::LegKind;
use super::route::Callee;
use super::webrtc_sip;
use crate::config::{BrowserCodecPolicy, SrtpPolicy};
use crate::media::engine::BrowserLegHandle;
use crate::media::handler::Encoding;
use crate::media::session::Side;
use crate::media::worker::BrowserLegStart;
use crate::sdp::{self, Codec, LocalCapabilities};
use crate::sip::endpoint::SipCallEvent;
use crate::webrtc_leg::{BrowserCodec, LegEvent};
use std::sync::Arc;
use tokio::sync::mpsc;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalleeError {
    #[error("no media port")]
    NoMediaPort,
    #[error("{0}")]
    Srtp(&'static str),
    #[error("no WebRTC leg for the SIP peer: {0}")]
    WebRtc(String),
    #[error("nobody to ring")]
    NobodyReachable,
}

/// What the caller brings that its callees need.
pub struct CallerSide<'a> {
    pub call_id: &'a str,
    /// The caller's name in a placed INVITE's From.
    pub from_user: &'a str,
    /// The caller's codec: the one offered first, so the callee may take it untouched.
    pub codec: Encoding,
    /// The only codec offered to a SIP callee (a browser's `codec` field).
    pub forced: Option<Encoding>,
    /// The caller's WebRTC leg, if it has one: WebRTC callees open beside it.
    pub webrtc: Option<&'a BrowserLegHandle>,
    /// What a browser callee's `incoming` says.
    pub incoming: Option<&'a Incoming>,
}

/// The callee legs, in `Call` order, with the events of each (indexes counted from the first
/// callee: the driver adds the caller's place).
#[derive(Default)]
pub struct CalleeLegs {
    pub legs: Vec<Leg>,
    pub kinds: Vec<LegKind>,
    pub webrtc_events: LegReceivers<mpsc::Receiver<LegEvent>>,
    pub sip_events: LegReceivers<mpsc::UnboundedReceiver<SipCallEvent>>,
}

/// Opens every callee; one that cannot be set up is left out (logged), and a call with none
/// left fails with the last reason.
pub async fn open(layer: &CallLayer, caller: &CallerSide<'_>, callees: &[Callee]) -> Result<CalleeLegs, CalleeError> {
    let mut out = CalleeLegs::default();
    let mut last_error = CalleeError::NobodyReachable;
    for callee in callees {
        let opened = match callee {
            Callee::Browsers { user } => {
                open_browsers(layer, user, caller, &mut out).await;
                continue;
            }
            Callee::Registered { user, contact, webrtc } => {
                let placement = placement(None, user, Some(contact), caller);
                let opened = if *webrtc { offer_webrtc(layer, caller, placement).await } else { offer_rtp(layer, caller, placement).await };
                // A local user: a transfer it asks for (REFER) goes through its granted profiles.
                opened.map(|(mut leg, events, webrtc)| {
                    leg.referrer = Some(user.clone());
                    (leg, events, webrtc)
                })
            }
            Callee::Trunk { profile, number } => {
                let placement = placement(Some(profile), number, None, caller);
                if layer.srtp.for_profile(Some(profile)) == SrtpPolicy::Dtls {
                    offer_webrtc(layer, caller, placement).await
                } else {
                    offer_rtp(layer, caller, placement).await
                }
            }
        };
        match opened {
            Ok((leg, sip_events, webrtc_events)) => {
                let index = out.legs.len();
                out.sip_events.push((index, sip_events));
                out.webrtc_events.extend(webrtc_events.map(|events| (index, events)));
                out.legs.push(Leg::Sip(Box::new(leg)));
                out.kinds.push(LegKind::Sip);
            }
            Err(e) => {
                tracing::warn!(error = %e, ?callee, "a callee cannot be rung");
                last_error = e;
            }
        }
    }
    if out.legs.is_empty() {
        return Err(last_error);
    }
    Ok(out)
}

type OpenedSip = (SipLeg, mpsc::UnboundedReceiver<SipCallEvent>, Option<mpsc::Receiver<LegEvent>>);

/// Where a SIP callee's INVITE goes, and the queue its events come back on.
fn placement(profile: Option<&String>, target: &str, binding: Option<&String>, caller: &CallerSide) -> (Placement, mpsc::UnboundedReceiver<SipCallEvent>) {
    let (events, receiver) = mpsc::unbounded_channel();
    let placement = Placement { profile: profile.cloned(), target: target.to_string(), binding: binding.cloned(), user: caller.from_user.to_string(), events };
    (placement, receiver)
}

/// A browser leg for every session the user is logged in on, each with a WebRTC offer.
async fn open_browsers(layer: &CallLayer, user: &str, caller: &CallerSide<'_>, out: &mut CalleeLegs) {
    let Some(incoming) = caller.incoming else { return };
    let codec = browser_codec_for(layer.limits.browser_codec, codec_of_encoding(caller.codec));
    // Opus offered to a browser for a narrower caller asks for no more than the caller carries.
    let limit = crate::sdp::playback_limit(codec_of_encoding(caller.codec));
    for (device, push) in layer.browsers.devices(user) {
        let start = BrowserLegStart::Offer { codec: codec.clone() };
        match layer.engine.open_browser_leg_beside(start, &layer.webrtc_config(), rand::random(), caller.webrtc) {
            Ok((handle, sdp, _, leg_events)) => {
                let sdp = match limit {
                    Some(rate) => crate::sdp::with_opus_playback_limit(&sdp, rate),
                    None => sdp,
                };
                out.webrtc_events.push((out.legs.len(), leg_events));
                let leg = BrowserLeg::new(device, caller.call_id, push, Arc::new(handle), sdp, Some(incoming.clone()));
                out.legs.push(Leg::Browser(Box::new(leg)));
                out.kinds.push(LegKind::Browser);
            }
            Err(e) => tracing::warn!(error = %e, "cannot offer to a browser"),
        }
    }
}

/// The codecs offered to a SIP callee: the one asked for, or the caller's first so the peer can
/// take it untouched, then the others so it may choose one we transcode.
pub fn sip_offer_codecs(caller: Encoding, forced: Option<Encoding>) -> Vec<Codec> {
    if let Some(forced) = forced {
        return vec![codec_of_encoding(forced)];
    }
    let mut codecs = vec![codec_of_encoding(caller)];
    codecs.extend([Codec::Pcmu, Codec::Pcma, Codec::G722, Codec::Opus].into_iter().filter(|c| *c != codec_of_encoding(caller)));
    codecs
}

/// A SIP callee with an RTP offer (SDES when its profile asks).
async fn offer_rtp(layer: &CallLayer, caller: &CallerSide<'_>, (placement, events): (Placement, mpsc::UnboundedReceiver<SipCallEvent>)) -> Result<OpenedSip, CalleeError> {
    let endpoint = layer.engine.allocate().await.map_err(|_| CalleeError::NoMediaPort)?;
    let codecs = sip_offer_codecs(caller.codec, caller.forced);
    if let Some(forced) = caller.forced {
        tracing::info!(codec = forced.name(), "one codec asked for on the SIP side");
    }
    let media_address = offer_media_address(layer, placement.profile.as_deref(), &placement.target).await;
    let mut our_offer = sdp::offer(&LocalCapabilities::new(codecs.clone()), media_address, endpoint.port, rand::random::<u32>().into(), 1);
    // Should the callee pick Opus beside a narrower caller, it sends no more than the caller takes.
    if let Some(rate) = sdp::playback_limit(codec_of_encoding(caller.codec)) {
        our_offer = sdp::limit_opus_playback(our_offer, rate);
    }
    let srtp = layer.srtp.for_profile(placement.profile.as_deref());
    super::sdes::secure_offer(srtp, &mut our_offer).map_err(|e| CalleeError::Srtp(e.cause()))?;
    let sdp = SipSdp::new(Side::B, media_address, endpoint.port, our_offer, None, codecs[0], srtp, None);
    Ok((SipLeg::callee(sdp, endpoint, placement), events, None))
}

/// The address our offer to a SIP callee gives for media. Only a wildcard-bound engine needs the
/// SIP endpoint's answer to where the call will go (the route toward it picks the address), so the
/// endpoint is asked only then: one round trip less on the way to the INVITE.
pub(crate) async fn offer_media_address(layer: &CallLayer, profile: Option<&str>, target: &str) -> std::net::IpAddr {
    if let Some(address) = layer.engine.advertised_to_all() {
        return address;
    }
    let destination = layer.sip.call_destination(profile, target).await;
    super::legs::sip_media_address(&layer.engine, None, destination.map(|d| d.ip()))
}

/// A SIP callee with a WebRTC offer from a WebRTC leg beside the caller's, in the caller's codec,
/// with our candidates inline: SIP has no trickle.
async fn offer_webrtc(layer: &CallLayer, caller: &CallerSide<'_>, (placement, events): (Placement, mpsc::UnboundedReceiver<SipCallEvent>)) -> Result<OpenedSip, CalleeError> {
    let codec = webrtc_sip::offered_codec(codec_of_encoding(caller.forced.unwrap_or(caller.codec)));
    let start = BrowserLegStart::Offer { codec };
    let opened = layer.engine.open_browser_leg_beside(start, &layer.webrtc_config(), rand::random(), caller.webrtc);
    let (handle, leg_sdp, _, mut leg_events) = opened.map_err(|e| CalleeError::WebRtc(e.to_string()))?;
    let candidates = webrtc_sip::gather_candidates(&mut leg_events).await;
    let offer = webrtc_sip::with_candidates(&leg_sdp, &candidates).map_err(|e| CalleeError::WebRtc(e.to_string()))?;
    let address = offer.media.iter().find(|m| m.is_audio()).and_then(|m| m.rtp_address(&offer)).ok_or_else(|| CalleeError::WebRtc("no WebRTC offer".into()))?;
    tracing::info!(to = %placement.target, "offering WebRTC to the SIP peer");
    let srtp = layer.srtp.for_profile(placement.profile.as_deref());
    let mut sdp = SipSdp::new(Side::B, address.ip(), address.port(), offer, None, codec_of_encoding(caller.codec), srtp, None);
    sdp.webrtc = true;
    Ok((SipLeg::webrtc_callee(sdp, Arc::new(handle), placement), events, Some(leg_events)))
}

/// What browsers are offered: by default the caller's codec, so audio passes through untouched.
/// Only the codec carries over: the browser leg numbers its payload types itself (Opus is 111
/// there even when the SIP side calls it 96), and the media session translates.
pub fn browser_codec_for(policy: BrowserCodecPolicy, caller_codec: Codec) -> BrowserCodec {
    let codec = browser_codec_choice(policy, caller_codec);
    BrowserCodec {
        mime_type: format!("audio/{}", codec.encoding_name()),
        // The browser leg's registered number; the sender's negotiated parameters confirm it.
        payload_type: codec.static_payload_type().unwrap_or(111),
        clock_rate: codec.clock_rate(),
        channels: if codec == Codec::Opus { 2 } else { 1 },
    }
}

/// The codec browsers are offered for a caller in `caller_codec` (`browser_codec`).
pub fn browser_codec_choice(policy: BrowserCodecPolicy, caller_codec: Codec) -> Codec {
    match policy {
        BrowserCodecPolicy::Same => caller_codec,
        BrowserCodecPolicy::Opus => Codec::Opus,
        BrowserCodecPolicy::Pcmu => Codec::Pcmu,
        BrowserCodecPolicy::Pcma => Codec::Pcma,
        BrowserCodecPolicy::G722 => Codec::G722,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_codec_field_is_the_only_codec_offered_to_sip() {
        assert_eq!(sip_offer_codecs(Encoding::Opus, Some(Encoding::Pcma)), vec![Codec::Pcma]);
        assert_eq!(sip_offer_codecs(Encoding::Opus, None), vec![Codec::Opus, Codec::Pcmu, Codec::Pcma, Codec::G722]);
        assert_eq!(sip_offer_codecs(Encoding::Pcmu, None)[0], Codec::Pcmu);
    }
}
