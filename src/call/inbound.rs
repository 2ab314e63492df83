//! A call from SIP (a trunk, a desk phone, a SIP-over-WebSocket client): refuse it if it cannot
//! be taken, else build its legs (the SIP caller with its answer and media prepared, then the
//! callees the dial plan names: `call::route`, `call::callees`) and hand them to the call's task
//! (`call::driver`), where `Call` decides the rest.

use super::call_log::CallLog;
use super::callees::{CalleeLegs, CallerSide};
use super::driver::browser_leg::Incoming;
use super::driver::sip_leg::SipLeg;
use super::driver::sip_sdp::SipSdp;
use super::driver::{CallTask, Leg, LegReceivers};
use super::route::{route, Callee, Caller, Directory, RouteError};
use super::legs::{encoding_of_codec, sip_leg};
use super::limits::{CallCounter, CallScope, CallSlot};
use super::machine::{mapping, Call, CallConfig, EndReason, LegKind, SessionDesc};
use super::registry::BrowserRegistry;
use crate::call::echo::WebRtcSettings;
use crate::media::engine::{BrowserLegHandle, MediaEngine, RtpEndpoint};
use crate::media::handler::PayloadFormat;
use crate::media::session::{Side, Timeouts};
use crate::media::worker::BrowserLegStart;
use crate::sdp::{self, Codec, LocalCapabilities, SessionDescription};
use crate::sip::core::{CallerIdentity, IncomingCall};
use crate::sip::endpoint::{IncomingSipCall, SipCallEvent, StatusHandle};
use crate::store::CallStatus;
use crate::webrtc_leg::{LegEvent, WebRtcConfig};
use super::webrtc_sip::{self, MediaKind};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

pub struct CallLayer {
    pub sip: StatusHandle,
    pub engine: Arc<MediaEngine>,
    pub browsers: Arc<BrowserRegistry>,
    pub webrtc: WebRtcSettings,
    pub opus_complexity: u8,
    /// `[media] rtp_timeout_secs` and `rtp_hold_timeout_secs`: a silent leg ends the call.
    pub media_timeouts: Timeouts,
    pub limits: crate::config::CallsConfig,
    /// Per-profile caps (`max_calls` in the profile file), by profile name.
    pub profile_caps: HashMap<String, usize>,
    /// Per-profile SDES-SRTP policy (`srtp` in the profile file).
    pub srtp: super::sdes::SrtpPolicies,
    pub active: Arc<CallCounter>,
    /// Where every call's record goes (through the durable spool).
    pub records: crate::store::RecorderHandle,
    pub stats: Arc<super::call_log::CallStats>,
    /// Graceful drain: new calls are refused, and calls still up at the deadline end.
    pub drain: Arc<super::drain::Drain>,
    /// The profiles each local user may call out through (`profiles` in the local profile),
    /// for calls its SIP clients place.
    pub user_profiles: HashMap<String, Vec<String>>,
}

impl CallLayer {
    /// A slot for a call of `user` through `profile`, within every cap that applies.
    pub fn acquire_slot(&self, user: &str, profile: Option<&str>) -> Option<CallSlot> {
        let mut scopes = vec![(CallScope::User(user.to_string()), self.limits.max_per_user)];
        if let Some((name, cap)) = profile.and_then(|p| self.profile_caps.get_key_value(p)) {
            scopes.push((CallScope::Profile(name.clone()), *cap));
        }
        self.active.acquire(self.limits.max_concurrent, &scopes)
    }
}

impl CallLayer {
    /// The limits `Call` runs under; `ring` is `None` where the callee keeps its own timer.
    pub fn call_config(&self, ring: Option<Duration>) -> CallConfig {
        CallConfig {
            ring_timeout: ring,
            max_duration: Duration::from_secs(self.limits.max_duration_secs),
            reclaim_grace: Duration::from_secs(self.limits.reclaim_grace_secs),
            rtp_timeout: self.media_timeouts.rtp,
            rtp_hold_timeout: self.media_timeouts.rtp_on_hold,
            drain: Duration::from_secs(self.limits.drain_secs),
            seed: rand::random(),
        }
    }

    pub fn webrtc_config(&self) -> WebRtcConfig {
        WebRtcConfig { public_ip: self.webrtc.public_ip, lite: self.webrtc.lite, failed_timeout: self.webrtc.failed_timeout }
    }
}

/// Starts one task per call from SIP. Each call brings its own event receiver, registered by the
/// endpoint when the call was created, so nothing needs routing or holding here.
pub async fn run(layer: Arc<CallLayer>, mut incoming: mpsc::Receiver<IncomingSipCall>) {
    while let Some(IncomingSipCall { call, events }) = incoming.recv().await {
        tokio::spawn(inbound(layer.clone(), call, events));
    }
}

async fn inbound(layer: Arc<CallLayer>, call: IncomingCall, sip_events: mpsc::UnboundedReceiver<SipCallEvent>) {
    use tracing::Instrument;
    let call_id = uuid::Uuid::new_v4().to_string();
    // Instrumented, not entered: a guard held across an await stays on the worker thread while
    // the task sleeps, and every call polled there (and spawned from there) nested inside it.
    let span = tracing::info_span!("call", %call_id, sip_call_id = %call.sip_call_id);
    answer_inbound(layer, call, sip_events, call_id).instrument(span).await
}

/// Our answer to the caller's offer and what the media session's SIP leg needs.
struct Prepared {
    sdp: SipSdp,
    io: PreparedIo,
    media: crate::media::session::LegConfig,
    telephone_event: bool,
}

/// Where the caller's media goes: the SIP-side RTP sockets, or a WebRTC leg when its SDP is
/// WebRTC (`webrtc_sip`).
enum PreparedIo {
    Rtp(RtpEndpoint),
    WebRtc(Arc<BrowserLegHandle>, mpsc::Receiver<LegEvent>),
}

async fn answer_inbound(layer: Arc<CallLayer>, call: IncomingCall, sip_events: mpsc::UnboundedReceiver<SipCallEvent>, call_id: String) {
    let through = match &call.identity {
        CallerIdentity::TrustedPeer { profile } => Some(profile.as_str()),
        CallerIdentity::LocalUser { .. } => None,
    };
    let mut log = CallLog::inbound(&layer.records, &layer.stats, &call_id, &call, through);
    if let CallerIdentity::LocalUser { username } = &call.identity {
        log.event("caller", format!("local user {username}"));
    }
    if !layer.drain.accepting() {
        let status = mapping::sip_status(&EndReason::Draining).code;
        return refuse(&layer, &call, log, status, CallStatus::Failed, mapping::SHUTDOWN_CAUSE).await;
    }
    // Refused only once the offer is known to be acceptable: a 488 says more than a 480 would.
    let routed = route_call(&layer, &call);
    let trunk = routed.as_deref().unwrap_or_default().iter().find_map(|c| match c {
        Callee::Trunk { profile, .. } => Some(profile.clone()),
        _ => None,
    });
    let (slot_user, slot_profile) = match (&call.identity, &trunk) {
        (CallerIdentity::LocalUser { username }, Some(profile)) => (username.as_str(), Some(profile.as_str())),
        _ => (call.to_user.as_str(), through),
    };
    let Some(slot) = layer.acquire_slot(slot_user, slot_profile) else {
        tracing::warn!(user = %slot_user, "call limit reached: 503");
        return refuse(&layer, &call, log, 503, CallStatus::Failed, "call limit reached").await;
    };
    let prepared = match prepare_answer(&layer, &call, through).await {
        Ok(prepared) => prepared,
        Err((status, why)) => return refuse(&layer, &call, log, status, CallStatus::Failed, why).await,
    };
    let callees = match routed {
        Ok(callees) => callees,
        Err(e) => {
            tracing::info!(error = %e, user = %call.to_user, "nobody to ring: 480");
            return refuse(&layer, &call, log, 480, CallStatus::Missed, "nobody is logged in").await;
        }
    };
    let (control_tx, control) = mpsc::channel(64);
    let incoming = Incoming { caller_uri: call.from_uri.clone(), caller_name: call.from_display.clone(), control: control_tx };
    let beside = match &prepared.io {
        PreparedIo::WebRtc(handle, _) => Some(Arc::clone(handle)),
        PreparedIo::Rtp(_) => None,
    };
    let from_user = caller_name(&call);
    let caller = CallerSide { call_id: &call_id, from_user: &from_user, codec: encoding_of_codec(prepared.sdp.codec), forced: None, webrtc: beside.as_deref(), incoming: Some(&incoming) };
    let opened = match super::callees::open(&layer, &caller, &callees).await {
        Ok(opened) => opened,
        Err(e) => {
            tracing::info!(error = %e, "no callee could be rung: 480");
            return refuse(&layer, &call, log, 480, CallStatus::Missed, "nobody is logged in").await;
        }
    };
    tracing::info!(callees = opened.legs.len(), user = %call.to_user, "ringing");
    let webrtc_client = matches!(prepared.io, PreparedIo::WebRtc(..));
    if let (true, CallerIdentity::LocalUser { username }) = (webrtc_client && only_plain_sip(&callees), &call.identity) {
        log.from_webrtc_client(username, trunk.as_deref());
    }
    let CalleeLegs { legs: callee_legs, kinds, webrtc_events, sip_events: callee_events } = opened;
    let mut webrtc_events: LegReceivers<_> = webrtc_events.into_iter().map(|(i, events)| (i + 1, events)).collect();
    let mut all_sip_events: LegReceivers<_> = callee_events.into_iter().map(|(i, events)| (i + 1, events)).collect();
    all_sip_events.push((0, sip_events));
    let mut sip = match prepared.io {
        PreparedIo::Rtp(endpoint) => SipLeg::caller(call.id, prepared.sdp, endpoint, prepared.media, prepared.telephone_event),
        PreparedIo::WebRtc(handle, events) => {
            log.event("sip_media", "WebRTC (ICE, DTLS-SRTP)");
            webrtc_events.push((0, events));
            SipLeg::webrtc_caller(call.id, prepared.sdp, handle, prepared.media, prepared.telephone_event)
        }
    };
    sip.peer = Some((call.source, call.user_agent.clone()));
    if let CallerIdentity::LocalUser { username } = &call.identity {
        // A transfer it asks for (REFER) goes through its granted profiles (`driver/transfer.rs`).
        sip.referrer = Some(username.clone());
    }
    let mut legs = vec![Leg::Sip(Box::new(sip))];
    legs.extend(callee_legs);
    let config = layer.call_config(Some(Duration::from_secs(layer.limits.ring_timeout_secs)));
    let machine = Call::new(config, LegKind::Sip, SessionDesc::new(call.sdp.clone()), &kinds, std::time::Instant::now());
    CallTask::new(layer.clone(), machine, legs, webrtc_events, all_sip_events, log, slot, control).run().await;
}

/// Who the caller rings, by the dial plan (`call::route`), from the callee's bindings as the
/// endpoint saw them when the INVITE came in.
fn route_call(layer: &CallLayer, call: &IncomingCall) -> Result<Vec<Callee>, RouteError> {
    let caller = match &call.identity {
        CallerIdentity::TrustedPeer { profile } => Caller::TrustedPeer { profile: profile.clone() },
        CallerIdentity::LocalUser { username } => Caller::LocalUser { user: username.clone(), profiles: layer.user_profiles.get(username).cloned().unwrap_or_default() },
    };
    let directory = Directory { browser_sessions: layer.browsers.devices(&call.to_user).len(), bindings: &call.to_bindings };
    route(&caller, &call.to_user, &directory)
}

/// Only SIP parties that take plain media (RTP or SDES): a trunk, or desk phones.
fn only_plain_sip(callees: &[Callee]) -> bool {
    callees.iter().all(|c| matches!(c, Callee::Trunk { .. } | Callee::Registered { webrtc: false, .. }))
}

/// The caller's name in the From of INVITEs placed for it: a local user's name, else the user
/// part of its From when it is a plain number or name.
fn caller_name(call: &IncomingCall) -> String {
    if let CallerIdentity::LocalUser { username } = &call.identity {
        return username.clone();
    }
    let user = crate::sip::syntax::uri_user(call.from_uri.trim_start_matches('<')).unwrap_or("");
    let plain = !user.is_empty() && user.len() <= 64 && user.chars().all(|c| c.is_ascii_alphanumeric() || "+-_.".contains(c));
    if plain { user.to_string() } else { "anonymous".to_string() }
}

/// Reads the caller's offer and builds our answer, with SDES when the profile asks for it; the
/// status to refuse with when it cannot be answered.
async fn prepare_answer(layer: &CallLayer, call: &IncomingCall, through: Option<&str>) -> Result<Prepared, (u16, &'static str)> {
    let offer = SessionDescription::parse(&call.sdp).map_err(|e| (e.sip_status(), "unreadable SDP"))?;
    match webrtc_sip::classify(&offer) {
        Ok(MediaKind::Rtp) => {}
        Ok(MediaKind::WebRtc) => return prepare_webrtc_answer(layer, offer, through).await,
        Err(e) => {
            tracing::info!(error = %e, status = e.sip_status(), "offer refused");
            return Err((e.sip_status(), "unusable WebRTC SDP"));
        }
    }
    let endpoint = layer.engine.allocate().await.map_err(|e| {
        tracing::warn!(error = %e, "no RTP port: 503");
        (503, "no RTP port")
    })?;
    let capabilities = LocalCapabilities::new(vec![Codec::Pcmu, Codec::Pcma, Codec::G722, Codec::Opus]);
    let media_address = super::legs::sip_media_address(&layer.engine, Some(&offer), Some(call.source.ip()));
    let srtp = layer.srtp.for_profile(through);
    let answered = sdp::answer(&offer, &capabilities, media_address, endpoint.port, rand::random::<u32>().into()).and_then(|(mut answer, negotiated)| {
        let keys = super::sdes::answer_offer(srtp, &offer, &negotiated, &mut answer, None)?;
        let codec = negotiated.codecs.first().cloned().ok_or(sdp::SdpError::NoCommonCodec)?;
        Ok((answer, negotiated, keys, codec))
    });
    let (answer, negotiated, keys, codec) = answered.map_err(|e| {
        tracing::info!(error = %e, status = e.sip_status(), "offer refused");
        (e.sip_status(), e.cause())
    })?;
    let format = PayloadFormat { encoding: encoding_of_codec(codec.codec), payload_type: codec.payload_type, channels: 1 };
    let media = sip_leg(&negotiated, format);
    let answer = limited_for_browsers(layer, answer, codec.codec);
    let port = endpoint.port;
    let sdp = SipSdp::new(Side::A, media_address, port, answer, Some(offer), codec.codec, srtp, keys);
    Ok(Prepared { sdp, io: PreparedIo::Rtp(endpoint), media, telephone_event: negotiated.telephone_event.is_some() })
}

/// Our answer to a caller whose audio browsers will take in a narrower codec (`browser_codec`):
/// its Opus asks for no more than that codec carries (`sdp::playback_limit`), as toward browsers.
fn limited_for_browsers(layer: &CallLayer, answer: SessionDescription, sip_codec: Codec) -> SessionDescription {
    let browsers = super::callees::browser_codec_choice(layer.limits.browser_codec, sip_codec);
    match sdp::playback_limit(browsers) {
        Some(rate) => sdp::limit_opus_playback(answer, rate),
        None => answer,
    }
}

/// Answers a WebRTC offer (ICE, DTLS-SRTP) with a WebRTC leg, as a browser's would be, with our
/// candidates inline: SIP has no trickle.
async fn prepare_webrtc_answer(layer: &CallLayer, offer: SessionDescription, through: Option<&str>) -> Result<Prepared, (u16, &'static str)> {
    let start = BrowserLegStart::Answer { offer: webrtc_sip::offer_for_leg(&offer), forced_codec: None };
    let (handle, leg_sdp, media, mut events) = layer.engine.open_browser_leg(start, &layer.webrtc_config(), rand::random()).map_err(|e| {
        tracing::info!(error = %e, "WebRTC offer refused: 488");
        (488, "the WebRTC offer cannot be answered")
    })?;
    let candidates = webrtc_sip::gather_candidates(&mut events).await;
    let answer = webrtc_sip::with_candidates(&leg_sdp, &candidates).map_err(|e| {
        tracing::warn!(error = %e, sdp = %leg_sdp, "no WebRTC answer for the SIP peer");
        (500, "no WebRTC answer")
    })?;
    let (config, format) = webrtc_sip::sip_peer_leg(&media).ok_or((488, "no common codec"))?;
    let codec = super::legs::codec_of_encoding(format.encoding);
    let (address, port) = answer.media.iter().find(|m| m.is_audio()).and_then(|m| m.rtp_address(&answer)).map(|a| (a.ip(), a.port())).ok_or((500, "no WebRTC answer"))?;
    tracing::info!(sip_codec = ?codec, payload_type = format.payload_type, "the SIP peer's media is WebRTC");
    let answer = limited_for_browsers(layer, answer, codec);
    let mut sdp = SipSdp::new(Side::A, address, port, answer, Some(offer), codec, layer.srtp.for_profile(through), None);
    sdp.webrtc = true;
    let telephone_event = media.telephone_event.is_some();
    Ok(Prepared { sdp, io: PreparedIo::WebRtc(Arc::new(handle), events), media: config, telephone_event })
}

/// Refuses the caller with `status` and closes the record: the call never rang, so there is
/// no `Call` for it.
async fn refuse(layer: &CallLayer, call: &IncomingCall, mut log: CallLog, status: u16, outcome: CallStatus, why: &str) {
    layer.sip.call_reject(call.id, status).await;
    for sip_call_id in log.sip_call_ids() {
        let messages = layer.sip.take_ladder(&sip_call_id, true).await;
        log.sip_messages(messages);
    }
    log.finish(outcome, crate::store::HangupSide::Gateway, why, Some(status));
}
