//! A call from SIP to a browser user: refuse it if it cannot be taken, else build its legs (the
//! SIP caller with its answer and media prepared, one browser leg per device the user is logged
//! in on) and hand them to the call's task (`call::driver`), where `Call` decides the rest.

use super::call_log::CallLog;
use super::driver::browser_leg::{BrowserLeg, Incoming};
use super::driver::sip_leg::SipLeg;
use super::driver::sip_sdp::SipSdp;
use super::driver::{CallTask, Leg};
use super::legs::{encoding_of_codec, sip_leg};
use super::limits::{CallCounter, CallScope, CallSlot};
use super::machine::{mapping, Call, CallConfig, EndReason, LegKind, SessionDesc};
use super::registry::BrowserRegistry;
use crate::call::echo::WebRtcSettings;
use crate::config::BrowserCodecPolicy;
use crate::media::engine::{BrowserLegHandle, MediaEngine, RtpEndpoint};
use crate::media::handler::PayloadFormat;
use crate::media::session::{Side, Timeouts};
use crate::media::worker::BrowserLegStart;
use crate::sdp::{self, Codec, LocalCapabilities, SessionDescription};
use crate::sip::core::{CallerIdentity, IncomingCall};
use crate::sip::endpoint::{IncomingSipCall, SipCallEvent, StatusHandle};
use crate::store::CallStatus;
use crate::webrtc_leg::{BrowserCodec, LegEvent, WebRtcConfig};
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
    /// The trunk and PBX profiles each local user may call through (`profiles` of its
    /// `[[users]]` entry), first one first: where a transfer it asks for (REFER) goes.
    pub local_grants: HashMap<String, Vec<String>>,
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
    let Some(slot) = layer.acquire_slot(&call.to_user, through) else {
        tracing::warn!(user = %call.to_user, "call limit reached: 503");
        return refuse(&layer, &call, log, 503, CallStatus::Failed, "call limit reached").await;
    };
    let prepared = match prepare_answer(&layer, &call, through).await {
        Ok(prepared) => prepared,
        Err((status, why)) => return refuse(&layer, &call, log, status, CallStatus::Failed, why).await,
    };
    // After the offer is known to be acceptable: a 488 says more than a 480 would.
    let (control_tx, control) = mpsc::channel(64);
    let incoming = Incoming { caller_uri: call.from_uri.clone(), caller_name: call.from_display.clone(), control: control_tx };
    let browser_codec = browser_codec_for(layer.limits.browser_codec, prepared.sdp.codec);
    let beside = match &prepared.io {
        PreparedIo::WebRtc(handle, _) => Some(Arc::clone(handle)),
        PreparedIo::Rtp(_) => None,
    };
    let (mut legs, webrtc_events) = open_devices(&layer, &call.to_user, &call_id, browser_codec, &incoming, beside.as_deref()).await;
    if legs.is_empty() {
        return refuse(&layer, &call, log, 480, CallStatus::Missed, "nobody is logged in").await;
    }
    tracing::info!(devices = legs.len(), user = %call.to_user, "ringing");
    let callees = vec![LegKind::Browser; legs.len()];
    let mut webrtc_events: WebRtcEvents = webrtc_events.into_iter().map(|(i, events)| (i + 1, events)).collect();
    let mut sip = match prepared.io {
        PreparedIo::Rtp(endpoint) => SipLeg::caller(call.id, prepared.sdp, endpoint, prepared.media, prepared.telephone_event),
        PreparedIo::WebRtc(handle, events) => {
            log.event("sip_media", "WebRTC (ICE, DTLS-SRTP)");
            webrtc_events.push((0, events));
            SipLeg::webrtc_caller(call.id, prepared.sdp, handle, prepared.media, prepared.telephone_event)
        }
    };
    if let CallerIdentity::LocalUser { username } = &call.identity {
        sip.referrer = Some(username.clone());
    }
    legs.insert(0, Leg::Sip(Box::new(sip)));
    let config = layer.call_config(Some(Duration::from_secs(layer.limits.ring_timeout_secs)));
    let machine = Call::new(config, LegKind::Sip, SessionDesc::new(call.sdp.clone()), &callees, std::time::Instant::now());
    CallTask::new(layer.clone(), machine, legs, webrtc_events, log, slot, sip_events, control).run().await;
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
    let port = endpoint.port;
    let sdp = SipSdp::new(Side::A, media_address, port, answer, Some(offer), codec.codec, srtp, keys);
    Ok(Prepared { sdp, io: PreparedIo::Rtp(endpoint), media, telephone_event: negotiated.telephone_event.is_some() })
}

/// Answers a WebRTC offer (ICE, DTLS-SRTP) with a WebRTC leg, as a browser's would be, with our
/// candidates inline: SIP has no trickle.
async fn prepare_webrtc_answer(layer: &CallLayer, offer: SessionDescription, through: Option<&str>) -> Result<Prepared, (u16, &'static str)> {
    let start = BrowserLegStart::Answer { offer: webrtc_sip::offer_for_leg(&offer), forced_codec: None };
    let (handle, leg_sdp, media, mut events) = layer.engine.open_browser_leg(start, &layer.webrtc_config(), rand::random()).await.map_err(|e| {
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
    let mut sdp = SipSdp::new(Side::A, address, port, answer, Some(offer), codec, layer.srtp.for_profile(through), None);
    sdp.webrtc = true;
    let telephone_event = media.telephone_event.is_some();
    Ok(Prepared { sdp, io: PreparedIo::WebRtc(Arc::new(handle), events), media: config, telephone_event })
}

type WebRtcEvents = Vec<(usize, mpsc::Receiver<crate::webrtc_leg::LegEvent>)>;

/// A browser leg for every device the user is logged in on, each with a WebRTC offer.
async fn open_devices(layer: &CallLayer, user: &str, call_id: &str, codec: BrowserCodec, incoming: &Incoming, beside: Option<&BrowserLegHandle>) -> (Vec<Leg>, WebRtcEvents) {
    let mut legs = Vec::new();
    let mut events = Vec::new();
    for (device, push) in layer.browsers.devices(user) {
        let start = BrowserLegStart::Offer { codec: codec.clone() };
        match layer.engine.open_browser_leg_beside(start, &layer.webrtc_config(), rand::random(), beside).await {
            Ok((handle, sdp, _, leg_events)) => {
                events.push((legs.len(), leg_events));
                let leg = BrowserLeg::new(device, call_id, push, Arc::new(handle), sdp, Some(incoming.clone()));
                legs.push(Leg::Browser(Box::new(leg)));
            }
            Err(e) => tracing::warn!(error = %e, "cannot offer to a browser"),
        }
    }
    (legs, events)
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

/// What browsers are offered: by default the SIP side's codec, so audio passes through untouched.
/// Only the codec carries over: the browser leg numbers its payload types itself (Opus is 111
/// there even when the SIP side calls it 96), and the media session translates.
fn browser_codec_for(policy: BrowserCodecPolicy, sip_codec: Codec) -> BrowserCodec {
    let codec = match policy {
        BrowserCodecPolicy::Same => sip_codec,
        BrowserCodecPolicy::Opus => Codec::Opus,
        BrowserCodecPolicy::Pcmu => Codec::Pcmu,
        BrowserCodecPolicy::Pcma => Codec::Pcma,
        BrowserCodecPolicy::G722 => Codec::G722,
    };
    BrowserCodec {
        mime_type: format!("audio/{}", codec.encoding_name()),
        // The browser leg's registered number; the sender's negotiated parameters confirm it.
        payload_type: codec.static_payload_type().unwrap_or(111),
        clock_rate: codec.clock_rate(),
        channels: if codec == Codec::Opus { 2 } else { 1 },
    }
}
