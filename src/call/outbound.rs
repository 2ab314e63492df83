//! A call from a browser to SIP: answer the browser's WebRTC offer, prepare the offer to the SIP
//! peer of one of the user's profiles, and hand both legs to the call's task (`call::driver`),
//! where `Call` decides the rest (the SIP leg places the call when `Call` rings it).

use super::call_log::CallLog;
use super::driver::browser_leg::BrowserLeg;
use super::driver::sip_leg::{Placement, SipLeg};
use super::driver::sip_sdp::SipSdp;
use super::driver::{CallTask, Leg};
use super::inbound::CallLayer;
use super::legs::{browser_leg, codec_of_encoding};
use super::machine::{mapping, Call, EndReason, LegKind, SessionDesc};
use super::registry::{BrowserAnswer, BrowserPush};
use super::webrtc_sip;
use crate::config::SrtpPolicy;
use crate::media::engine::BrowserLegHandle;
use crate::media::handler::Encoding;
use crate::webrtc_leg::LegEvent;
use crate::media::session::Side;
use crate::media::worker::BrowserLegStart;
use crate::sdp::{self, Codec, LocalCapabilities};
use crate::signaling::HangupReason;
use crate::store::{CallStatus, HangupSide};
use std::sync::Arc;
use tokio::sync::mpsc;

/// What the browser asked for in its `call` request.
pub struct OutboundCall {
    pub call_id: String,
    /// The connection that placed it (its requests carry this device id).
    pub device: u64,
    pub user: String,
    pub profile: Option<String>,
    pub target: String,
    pub browser_offer: String,
    /// The `codec` field: the only codec offered to the SIP side (transcoded when the browser's
    /// differs); `None` offers the browser's codec first, then every other one.
    pub sip_codec: Option<Encoding>,
}

/// The codecs offered to the SIP side: the one asked for, or the browser's first so the peer can
/// take it untouched, then the others so it may choose one we transcode.
fn sip_offer_codecs(browser: Encoding, forced: Option<Encoding>) -> Vec<Codec> {
    if let Some(forced) = forced {
        return vec![codec_of_encoding(forced)];
    }
    let mut codecs = vec![codec_of_encoding(browser)];
    codecs.extend([Codec::Pcmu, Codec::Pcma, Codec::G722, Codec::Opus].into_iter().filter(|c| *c != codec_of_encoding(browser)));
    codecs
}

/// Sets the call up and runs it; a call that cannot start is ended here with a `hangup` to the
/// browser and a record, without a `Call`.
pub async fn place(layer: Arc<CallLayer>, call: OutboundCall, push: mpsc::Sender<BrowserPush>, control: mpsc::Receiver<BrowserAnswer>) {
    let log = CallLog::outbound(&layer.records, &layer.stats, &call.call_id, &call.user, call.profile.as_deref(), &call.target);
    let refuse = |reason: HangupReason, cause: String, side: HangupSide, record: String| Refusal { reason, cause, side, record };
    if !layer.drain.accepting() {
        let (reason, cause) = mapping::browser_hangup(&EndReason::Draining);
        return refused(&push, &call.call_id, log, refuse(reason, cause, HangupSide::Gateway, mapping::SHUTDOWN_CAUSE.into())).await;
    }
    let Some(slot) = layer.acquire_slot(&call.user, call.profile.as_deref()) else {
        let refusal = refuse(HangupReason::Unavailable, "call limit reached; try again later".into(), HangupSide::Gateway, "call limit reached".into());
        return refused(&push, &call.call_id, log, refusal).await;
    };
    let start = BrowserLegStart::Answer { offer: call.browser_offer.clone(), forced_codec: None };
    let (handle, browser_answer, _, webrtc_events) = match layer.engine.open_browser_leg(start, &layer.webrtc_config(), rand::random()).await {
        Ok(answered) => answered,
        Err(e) => return refused(&push, &call.call_id, log, refuse(HangupReason::Failed, e.to_string(), HangupSide::Browser, "the browser's offer was refused".into())).await,
    };
    let handle = Arc::new(handle);
    // The browser leg keeps the numbers it negotiated; the media session maps them to the SIP leg's.
    let Some((_, browser_format)) = browser_leg(&handle.media()) else {
        handle.close().await;
        return refused(&push, &call.call_id, log, refuse(HangupReason::Failed, "no usable codec".into(), HangupSide::Browser, "the browser's offer was refused".into())).await;
    };
    let sip = match prepare_offer(&layer, &call, browser_format.encoding, &handle).await {
        Ok(sip) => sip,
        Err(refusal) => {
            handle.close().await;
            return refused(&push, &call.call_id, log, refusal).await;
        }
    };
    let browser = BrowserLeg::new(call.device, &call.call_id, push, handle, browser_answer, None);
    let PreparedSip { mut leg, events, webrtc } = sip;
    if call.profile.is_none() {
        // A user registered here: a transfer it asks for goes through its granted profiles.
        leg.referrer = Some(call.target.clone());
    }
    let legs = vec![Leg::Browser(Box::new(browser)), Leg::Sip(Box::new(leg))];
    let machine = Call::new(layer.call_config(None), LegKind::Browser, SessionDesc::new(call.browser_offer), &[LegKind::Sip], std::time::Instant::now());
    let mut webrtc_events = vec![(0, webrtc_events)];
    webrtc_events.extend(webrtc.map(|events| (1, events)));
    CallTask::new(layer.clone(), machine, legs, webrtc_events, log, slot, events, control).run().await;
}

/// A call that could not start: the browser's `hangup` and the record.
struct Refusal {
    reason: HangupReason,
    cause: String,
    side: HangupSide,
    record: String,
}

async fn refused(push: &mpsc::Sender<BrowserPush>, call_id: &str, log: CallLog, refusal: Refusal) {
    let _ = push.send(BrowserPush::Hangup { call_id: call_id.to_string(), reason: refusal.reason, cause: refusal.cause }).await;
    log.finish(CallStatus::Failed, refusal.side, &refusal.record, None);
}

/// The SIP callee leg, its SIP event queue, and its WebRTC leg's events when it has one.
struct PreparedSip {
    leg: SipLeg,
    events: mpsc::UnboundedReceiver<crate::sip::endpoint::SipCallEvent>,
    webrtc: Option<mpsc::Receiver<LegEvent>>,
}

/// Whether the SIP peer is offered WebRTC: its profile says `srtp = "dtls"`, or (a registered
/// user) it registered over a WebSocket (`webrtc_sip::registered_over_websocket`).
async fn offers_webrtc(layer: &CallLayer, call: &OutboundCall) -> bool {
    if layer.srtp.for_profile(call.profile.as_deref()) == SrtpPolicy::Dtls {
        return true;
    }
    if call.profile.is_some() {
        return false;
    }
    let bindings = layer.sip.snapshot().await.map(|status| status.core.bindings).unwrap_or_default();
    webrtc_sip::registered_over_websocket(&bindings, &call.target)
}

/// The SIP callee leg with our offer (SDES when the profile asks, WebRTC when the peer takes
/// only that) and its event queue.
async fn prepare_offer(layer: &CallLayer, call: &OutboundCall, browser: Encoding, browser_leg: &Arc<BrowserLegHandle>) -> Result<PreparedSip, Refusal> {
    if offers_webrtc(layer, call).await {
        return prepare_webrtc_offer(layer, call, browser, browser_leg).await;
    }
    let Ok(endpoint) = layer.engine.allocate().await else {
        return Err(Refusal { reason: HangupReason::Unavailable, cause: "no media port".into(), side: HangupSide::Gateway, record: "no media port".into() });
    };
    let codecs = sip_offer_codecs(browser, call.sip_codec);
    if let Some(forced) = call.sip_codec {
        tracing::info!(codec = forced.name(), "the browser asked for one codec on the SIP side");
    }
    let destination = layer.sip.call_destination(call.profile.as_deref(), &call.target).await;
    let media_address = super::legs::sip_media_address(&layer.engine, None, destination.map(|d| d.ip()));
    let mut our_offer = sdp::offer(&LocalCapabilities::new(codecs.clone()), media_address, endpoint.port, rand::random::<u32>().into(), 1);
    let srtp = layer.srtp.for_profile(call.profile.as_deref());
    if let Err(e) = super::sdes::secure_offer(srtp, &mut our_offer) {
        return Err(Refusal { reason: HangupReason::Failed, cause: e.cause().into(), side: HangupSide::Gateway, record: e.cause().into() });
    }
    let sdp = SipSdp::new(Side::B, media_address, endpoint.port, our_offer, None, codecs[0], srtp, None);
    let (events, receiver) = mpsc::unbounded_channel();
    let placement = Placement { profile: call.profile.clone(), target: call.target.clone(), user: call.user.clone(), events };
    Ok(PreparedSip { leg: SipLeg::callee(sdp, endpoint, placement), events: receiver, webrtc: None })
}

/// A WebRTC offer from a WebRTC leg beside the browser's (one media worker runs the call), in
/// the browser's codec so two WebRTC clients that share it need no transcoder, with our
/// candidates inline: SIP has no trickle.
async fn prepare_webrtc_offer(layer: &CallLayer, call: &OutboundCall, browser: Encoding, browser_leg: &Arc<BrowserLegHandle>) -> Result<PreparedSip, Refusal> {
    let failed = |cause: String| Refusal { reason: HangupReason::Failed, cause: cause.clone(), side: HangupSide::Gateway, record: cause };
    let codec = webrtc_sip::offered_codec(codec_of_encoding(call.sip_codec.unwrap_or(browser)));
    let start = BrowserLegStart::Offer { codec };
    let opened = layer.engine.open_browser_leg_beside(start, &layer.webrtc_config(), rand::random(), Some(browser_leg)).await;
    let (handle, leg_sdp, _, mut events) = opened.map_err(|e| failed(format!("no WebRTC leg for the SIP peer: {e}")))?;
    let candidates = webrtc_sip::gather_candidates(&mut events).await;
    let offer = webrtc_sip::with_candidates(&leg_sdp, &candidates).map_err(|e| failed(e.to_string()))?;
    let (address, port) = offer.media.iter().find(|m| m.is_audio()).and_then(|m| m.rtp_address(&offer)).map(|a| (a.ip(), a.port())).ok_or_else(|| failed("no WebRTC offer".into()))?;
    tracing::info!(to = %call.target, "offering WebRTC to the SIP peer");
    let srtp = layer.srtp.for_profile(call.profile.as_deref());
    let mut sdp = SipSdp::new(Side::B, address, port, offer, None, codec_of_encoding(browser), srtp, None);
    sdp.webrtc = true;
    let (events_tx, receiver) = mpsc::unbounded_channel();
    let placement = Placement { profile: call.profile.clone(), target: call.target.clone(), user: call.user.clone(), events: events_tx };
    Ok(PreparedSip { leg: SipLeg::webrtc_callee(sdp, Arc::new(handle), placement), events: receiver, webrtc: Some(events) })
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
