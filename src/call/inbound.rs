//! A call from SIP to a browser user: ring every device the user is logged in on, bridge the first
//! that accepts, and carry hang-ups both ways. One task per call; it only talks to the SIP side
//! through `StatusHandle` commands and `SipCallEvent`s, and to browsers through the registry.

use super::legs::{browser_leg, encoding_of_codec, sip_leg};
use super::registry::{BrowserAnswer, BrowserPush, BrowserRegistry, Parking};
use crate::call::echo::WebRtcSettings;
use crate::media::engine::{BrowserLegHandle, LegIo, MediaEngine, SessionHandle};
use crate::media::worker::BrowserLegStart;
use crate::media::handler::PayloadFormat;
use crate::media::session::{EgressSeeds, MediaSession, Timeouts};
use crate::sdp::{self, Codec, LocalCapabilities, SessionDescription};
use crate::signaling::HangupReason;
use crate::sip::core::{CallEndReason, CallerIdentity, IncomingCall, SipCallId};
use crate::sip::endpoint::{SipCallEvent, StatusHandle};
use crate::config::BrowserCodecPolicy;
use crate::webrtc_leg::{BrowserCodec, LegEvent, WebRtcConfig};
use super::limits::{CallCounter, CallScope, CallSlot};
use super::call_log::CallLog;
use super::sip_side::{MediaTimeout, SipSide};
use crate::store::{CallStatus, HangupSide};
use crate::media::session::Side;
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
    /// Calls placed by browsers register here to receive their SIP events.
    pub outbound: mpsc::Sender<(SipCallId, mpsc::Sender<SipCallEvent>)>,
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

/// Routes SIP call events to one task per call. Events for a call placed a moment ago but not yet
/// registered are held (a few per call) until it registers.
pub async fn run(layer: Arc<CallLayer>, mut events: mpsc::Receiver<SipCallEvent>, mut registrations: mpsc::Receiver<(SipCallId, mpsc::Sender<SipCallEvent>)>) {
    // Calls from SIP and calls placed by browsers share one id space in the SIP core.
    let mut calls: HashMap<SipCallId, mpsc::Sender<SipCallEvent>> = HashMap::new();
    let mut early: HashMap<SipCallId, Vec<SipCallEvent>> = HashMap::new();
    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { break };
                if let SipCallEvent::Incoming(call) = event {
                    let (tx, rx) = mpsc::channel(32);
                    calls.insert(call.id, tx);
                    tokio::spawn(inbound(layer.clone(), *call, rx));
                    continue;
                }
                let id = event.call();
                match calls.get(&id) {
                    Some(tx) => { let _ = tx.try_send(event); }
                    None => {
                        let held = early.entry(id).or_default();
                        if held.len() < 8 { held.push(event); }
                        if early.len() > 1_000 { early.clear(); }
                    }
                }
            }
            Some((id, tx)) = registrations.recv() => {
                for event in early.remove(&id).unwrap_or_default() {
                    let _ = tx.try_send(event);
                }
                calls.insert(id, tx);
            }
        }
        calls.retain(|_, tx| !tx.is_closed());
    }
}

struct Device {
    id: u64,
    push: mpsc::Sender<BrowserPush>,
    leg: Arc<BrowserLegHandle>,
    events: Option<mpsc::Receiver<LegEvent>>,
}

async fn inbound(layer: Arc<CallLayer>, call: IncomingCall, sip_events: mpsc::Receiver<SipCallEvent>) {
    use tracing::Instrument;
    let call_id = uuid::Uuid::new_v4().to_string();
    // Instrumented, not entered: a guard held across an await stays on the worker thread while
    // the task sleeps, and every call polled there (and spawned from there) nested inside it.
    let span = tracing::info_span!("call", %call_id, sip_call_id = %call.sip_call_id);
    answer_inbound(layer, call, sip_events, call_id).instrument(span).await
}

async fn answer_inbound(layer: Arc<CallLayer>, call: IncomingCall, mut sip_events: mpsc::Receiver<SipCallEvent>, call_id: String) {
    let through = match &call.identity {
        CallerIdentity::TrustedPeer { profile } => Some(profile.as_str()),
        CallerIdentity::LocalUser { .. } => None,
    };
    let mut log = CallLog::inbound(&layer.records, &layer.stats, &call_id, &call, through);
    if let CallerIdentity::LocalUser { username } = &call.identity {
        log.event("caller", format!("local user {username}"));
    }
    if !layer.drain.accepting() {
        return refuse(&layer, &call, log, 503, CallStatus::Failed, SHUTDOWN_CAUSE).await;
    }
    let Some(_slot) = layer.acquire_slot(&call.to_user, through) else {
        tracing::warn!(user = %call.to_user, "call limit reached: 503");
        return refuse(&layer, &call, log, 503, CallStatus::Failed, "call limit reached").await;
    };
    let offer = match SessionDescription::parse(&call.sdp) {
        Ok(offer) => offer,
        Err(e) => return refuse(&layer, &call, log, e.sip_status(), CallStatus::Failed, "unreadable SDP").await,
    };
    let endpoint = match layer.engine.allocate().await {
        Ok(endpoint) => endpoint,
        Err(e) => {
            tracing::warn!(error = %e, "no RTP port: 503");
            return refuse(&layer, &call, log, 503, CallStatus::Failed, "no RTP port").await;
        }
    };
    let capabilities = LocalCapabilities::new(vec![Codec::Pcmu, Codec::Pcma, Codec::G722, Codec::Opus]);
    let media_address = super::legs::sip_media_address(&layer.engine, Some(&offer), Some(call.source.ip()));
    let srtp = layer.srtp.for_profile(through);
    let answered = sdp::answer(&offer, &capabilities, media_address, endpoint.port, rand::random::<u32>().into()).and_then(|(mut answer, negotiated)| {
        let keys = super::sdes::answer_offer(srtp, &offer, &negotiated, &mut answer, None)?;
        let codec = negotiated.codecs.first().cloned().ok_or(sdp::SdpError::NoCommonCodec)?;
        Ok((answer, negotiated, keys, codec))
    });
    let (answer, negotiated, keys, sip_codec) = match answered {
        Ok(answered) => answered,
        Err(e) => {
            tracing::info!(error = %e, status = e.sip_status(), "offer refused");
            return refuse(&layer, &call, log, e.sip_status(), CallStatus::Failed, e.cause()).await;
        }
    };
    // After the offer is known to be acceptable: a 488 says more than a 480 would.
    let devices = layer.browsers.devices(&call.to_user);
    if devices.is_empty() {
        return refuse(&layer, &call, log, 480, CallStatus::Missed, "nobody is logged in").await;
    }
    let sip_format = PayloadFormat { encoding: encoding_of_codec(sip_codec.codec), payload_type: sip_codec.payload_type, channels: 1 };
    let browser_codec = browser_codec_for(layer.limits.browser_codec, sip_codec.codec);
    let (control_tx, mut control) = mpsc::channel::<BrowserAnswer>(64);
    let mut ringing: Vec<Device> = Vec::new();
    for (device, push) in devices {
        let config = WebRtcConfig { public_ip: layer.webrtc.public_ip, lite: layer.webrtc.lite, failed_timeout: layer.webrtc.failed_timeout };
        let start = BrowserLegStart::Offer { codec: browser_codec.clone() };
        match layer.engine.open_browser_leg(start, &config, rand::random()).await {
            Ok((leg, sdp, _, events)) => {
                let incoming = BrowserPush::Incoming {
                    call_id: call_id.clone(),
                    caller_uri: call.from_uri.clone(),
                    caller_name: call.from_display.clone(),
                    sdp,
                    control: control_tx.clone(),
                };
                if push.send(incoming).await.is_ok() {
                    ringing.push(Device { id: device, push, leg: Arc::new(leg), events: Some(events) });
                    continue;
                }
                leg.close().await;
            }
            Err(e) => tracing::warn!(error = %e, "cannot offer to a browser"),
        }
    }
    if ringing.is_empty() {
        return refuse(&layer, &call, log, 480, CallStatus::Missed, "no browser could be offered the call").await;
    }
    layer.sip.call_ringing(call.id).await;
    log.ringing();
    tracing::info!(devices = ringing.len(), user = %call.to_user, "ringing");

    // Ring until one device accepts, all refuse, the caller cancels, or nobody answers.
    let deadline = tokio::time::sleep(Duration::from_secs(layer.limits.ring_timeout_secs));
    tokio::pin!(deadline);
    let mut refused = 0;
    let mut any_busy = false;
    let mut ending = (CallStatus::Failed, HangupSide::Gateway, "call layer stopped", None);
    let mut drain = layer.drain.watch();
    let winner = loop {
        tokio::select! {
            () = drain.ending() => {
                // 503 with Retry-After: the caller may try another gateway.
                layer.sip.call_reject(call.id, 503).await;
                for d in &ringing { let _ = d.push.send(BrowserPush::Hangup { call_id: call_id.clone(), reason: HangupReason::Shutdown, cause: SHUTDOWN_CAUSE.into() }).await; }
                ending = (CallStatus::Failed, HangupSide::Gateway, SHUTDOWN_CAUSE, Some(503));
                break None;
            }
            answer = control.recv() => match answer {
                Some(BrowserAnswer::Accept { device, sdp, reply }) => {
                    let Some(index) = ringing.iter().position(|d| d.id == device) else { let _ = reply.send(Err("not ringing".into())); continue };
                    match ringing[index].leg.set_answer(&sdp).await {
                        Ok(_) => { let _ = reply.send(Ok(())); break Some(index); }
                        Err(e) => { let _ = reply.send(Err(e.to_string())); }
                    }
                }
                Some(BrowserAnswer::Reject { busy, .. }) => {
                    refused += 1;
                    any_busy |= busy;
                    if refused >= ringing.len() {
                        let status = if any_busy { 486 } else { 603 };
                        layer.sip.call_reject(call.id, status).await;
                        ending = if any_busy { (CallStatus::Busy, HangupSide::Browser, "busy", Some(status)) } else { (CallStatus::Rejected, HangupSide::Browser, "declined", Some(status)) };
                        break None;
                    }
                }
                Some(BrowserAnswer::Candidate { device, candidate }) => {
                    if let Some(d) = ringing.iter().find(|d| d.id == device) { let _ = d.leg.add_remote_candidate(candidate).await; }
                }
                Some(BrowserAnswer::Dtmf { reply, .. } | BrowserAnswer::Hold { reply, .. } | BrowserAnswer::Transfer { reply, .. } | BrowserAnswer::Reattach { reply, .. }) => {
                    let _ = reply.send(Err("the call is not answered yet".into()));
                }
                // A device whose connection dropped cannot answer any more.
                Some(BrowserAnswer::Detached { .. }) => {
                    refused += 1;
                    if refused >= ringing.len() {
                        let status = if any_busy { 486 } else { 480 };
                        layer.sip.call_reject(call.id, status).await;
                        ending = (if any_busy { CallStatus::Busy } else { CallStatus::Missed }, HangupSide::Browser, "the browsers went away", Some(status));
                        break None;
                    }
                }
                Some(BrowserAnswer::Hangup { .. }) | None => {}
            },
            event = sip_events.recv() => match event {
                Some(SipCallEvent::Ended { reason, .. }) => {
                    tracing::info!(?reason, "caller gave up");
                    for d in &ringing { let _ = d.push.send(BrowserPush::Hangup { call_id: call_id.clone(), reason: HangupReason::Cancelled, cause: "caller cancelled".into() }).await; }
                    ending = (CallStatus::Cancelled, HangupSide::Sip, "caller cancelled", Some(487));
                    break None;
                }
                Some(_) => {}
                None => break None,
            },
            () = &mut deadline => {
                layer.sip.call_reject(call.id, 480).await;
                for d in &ringing { let _ = d.push.send(BrowserPush::Hangup { call_id: call_id.clone(), reason: HangupReason::NoAnswer, cause: "no answer".into() }).await; }
                ending = (CallStatus::Missed, HangupSide::Gateway, "no answer", Some(480));
                break None;
            }
            Some(candidate) = next_candidate(&mut ringing) => {
                let (device, candidate) = candidate;
                if let Some(d) = ringing.iter().find(|d| d.id == device) {
                    let _ = d.push.send(BrowserPush::Candidate { call_id: call_id.clone(), candidate }).await;
                }
            }
        }
    };
    let Some(index) = winner else {
        for d in ringing {
            d.leg.close().await;
        }
        let (status, side, reason, sip_code) = ending;
        attach_ladder(&layer, &mut log).await;
        return log.finish(status, side, reason, sip_code);
    };
    let mut device = ringing.remove(index);
    for other in ringing {
        let _ = other.push.send(BrowserPush::Hangup { call_id: call_id.clone(), reason: HangupReason::AnsweredElsewhere, cause: "answered on another device".into() }).await;
        other.leg.close().await;
    }
    let sip_leg = sip_leg(&negotiated, sip_format);
    // The browser's own numbers, as its answer settled them: not the SIP side's.
    let browser_media = device.leg.media();
    let Some((browser_leg, browser_format)) = browser_leg(&browser_media) else {
        // Cannot happen with the codecs we offer; refused cleanly all the same.
        let _ = device.push.send(BrowserPush::Hangup { call_id: call_id.clone(), reason: HangupReason::Failed, cause: "no usable codec".into() }).await;
        device.leg.close().await;
        return refuse(&layer, &call, log, 488, CallStatus::Failed, "the browser answered with no usable codec").await;
    };
    let seeds = [
        EgressSeeds { ssrc: rand::random(), sequence: rand::random(), timestamp: rand::random() },
        EgressSeeds { ssrc: device.leg.ssrc(), sequence: rand::random(), timestamp: rand::random() },
    ];
    let factory = crate::media::codec_glue::factory(layer.opus_complexity);
    let mut session = MediaSession::new(sip_leg, browser_leg, seeds, factory, layer.media_timeouts, layer.engine.now());
    if let Some(keys) = &keys {
        let (outbound, inbound) = keys.contexts();
        session.set_srtp(Side::A, outbound, inbound);
    }
    let rtp_port = endpoint.port;
    let mut media = layer.engine.spawn_with_browser(session, LegIo::Udp(endpoint), device.leg.io(), &device.leg);
    if let Err(e) = layer.sip.call_answer(call.id, answer.to_string()).await {
        tracing::warn!(error = %e, "cannot answer the SIP side");
        return finish(&layer, &device, &media, log, HangupSide::Gateway, &call_id, HangupReason::Failed, &e).await;
    }
    let transcoding = browser_format.encoding != sip_format.encoding;
    tracing::info!(codec = %browser_media.codec.mime_type, browser_payload_type = browser_format.payload_type, sip_codec = ?sip_codec.codec, sip_payload_type = sip_format.payload_type, transcoding, "answered");
    log.dtmf_mode(negotiated.telephone_event.is_some());
    log.answered(sip_codec.codec.encoding_name(), &browser_media.codec.mime_type, transcoding, Some(device.id));
    log.srtp(keys.as_ref());
    let mut sip = SipSide::new(call.id, Side::A, &call_id, media_address, rtp_port, answer, Some(offer), sip_codec.codec).with_srtp(srtp, keys);
    bridge(&layer, &call, &mut device, &mut media, &mut sip, log, &call_id, &mut control, &mut sip_events).await;
}

/// The browser's `cause` and the record's reason when a drain ends a call; it starts with the
/// protocol's reason value so records can be searched for it.
pub const SHUTDOWN_CAUSE: &str = "shutdown: the gateway is shutting down";

/// Refuses the caller with `status` and closes the record.
async fn refuse(layer: &CallLayer, call: &IncomingCall, mut log: CallLog, status: u16, outcome: CallStatus, why: &str) {
    layer.sip.call_reject(call.id, status).await;
    attach_ladder(layer, &mut log).await;
    log.finish(outcome, HangupSide::Gateway, why, Some(status));
}

/// The call's SIP messages, once its last transaction had a moment to answer.
pub(super) async fn attach_ladder(layer: &CallLayer, log: &mut CallLog) {
    tokio::time::sleep(Duration::from_millis(300)).await;
    for sip_call_id in log.sip_call_ids() {
        let messages = layer.sip.take_ladder(&sip_call_id).await;
        log.sip_messages(messages);
    }
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

/// Candidates the ringing legs gathered, in any order.
async fn next_candidate(ringing: &mut [Device]) -> Option<(u64, Option<serde_json::Value>)> {
    for device in ringing.iter_mut() {
        if let Some(events) = device.events.as_mut() {
            while let Ok(event) = events.try_recv() {
                if let LegEvent::LocalCandidate(candidate) = event {
                    return Some((device.id, candidate));
                }
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    None
}

#[allow(clippy::too_many_arguments)]
async fn bridge(
    layer: &CallLayer,
    call: &IncomingCall,
    device: &mut Device,
    media: &mut SessionHandle,
    sip: &mut SipSide,
    log: CallLog,
    call_id: &str,
    control: &mut mpsc::Receiver<BrowserAnswer>,
    sip_events: &mut mpsc::Receiver<SipCallEvent>,
) {
    let Some(mut leg_events) = device.events.take() else { return };
    let longest = tokio::time::sleep(Duration::from_secs(layer.limits.max_duration_secs));
    tokio::pin!(longest);
    let mut parking = Parking::new(layer.limits.reclaim_grace_secs);
    let mut drain = layer.drain.watch();
    loop {
        tokio::select! {
            () = drain.ending() => {
                tracing::info!("the gateway is shutting down: BYE");
                layer.sip.call_hangup(call.id).await;
                return finish(layer, device, media, log, HangupSide::Gateway, call_id, HangupReason::Shutdown, SHUTDOWN_CAUSE).await;
            }
            () = parking.expired() => {
                tracing::info!("the browser did not reclaim the call: BYE");
                layer.sip.call_hangup(call.id).await;
                return finish(layer, device, media, log, HangupSide::Browser, call_id, HangupReason::Failed, "the browser did not come back").await;
            }
            () = &mut longest => {
                tracing::info!("maximum call duration reached");
                layer.sip.call_hangup(call.id).await;
                return finish(layer, device, media, log, HangupSide::Gateway, call_id, HangupReason::Normal, "maximum call duration").await;
            }
            event = leg_events.recv() => match event {
                Some(LegEvent::LocalCandidate(candidate)) => {
                    let _ = device.push.send(BrowserPush::Candidate { call_id: call_id.to_string(), candidate }).await;
                }
                Some(LegEvent::Connected) => tracing::info!("browser media connected"),
                Some(LegEvent::Failed(reason)) => {
                    layer.sip.call_hangup(call.id).await;
                    return finish(layer, device, media, log, HangupSide::Gateway, call_id, HangupReason::Failed, &reason).await;
                }
                None => {
                    layer.sip.call_hangup(call.id).await;
                    return finish(layer, device, media, log, HangupSide::Gateway, call_id, HangupReason::Failed, "browser leg closed").await;
                }
            },
            Some(event) = media.events.recv() => {
                if let Some(timeout) = sip.on_media_event(layer, &device.push, event).await {
                    layer.sip.call_hangup(call.id).await;
                    return finish(layer, device, media, log, HangupSide::Gateway, call_id, MediaTimeout::REASON, &timeout.cause()).await;
                }
            }
            answer = control.recv() => match answer {
                Some(request @ (BrowserAnswer::Dtmf { .. } | BrowserAnswer::Hold { .. } | BrowserAnswer::Transfer { .. })) => { let _ = sip.on_browser(layer, media, request).await; }
                Some(BrowserAnswer::Hangup { .. }) | None => {
                    tracing::info!("browser hung up: BYE");
                    layer.sip.call_hangup(call.id).await;
                    return finish(layer, device, media, log, HangupSide::Browser, call_id, HangupReason::Normal, "").await;
                }
                Some(BrowserAnswer::Candidate { candidate, .. }) => { let _ = device.leg.add_remote_candidate(candidate).await; }
                Some(BrowserAnswer::Accept { reply, .. }) => { let _ = reply.send(Err("already answered".into())); }
                Some(BrowserAnswer::Reject { .. }) => {}
                Some(BrowserAnswer::Detached { .. }) => {
                    if !parking.detach() {
                        layer.sip.call_hangup(call.id).await;
                        return finish(layer, device, media, log, HangupSide::Browser, call_id, HangupReason::Failed, "the browser went away").await;
                    }
                    tracing::info!(grace_secs = layer.limits.reclaim_grace_secs, "the browser's connection dropped; waiting for a reclaim");
                }
                Some(BrowserAnswer::Reattach { push, reply, device: new_device }) => {
                    device.push = push;
                    device.id = new_device;
                    parking.reattach();
                    let _ = reply.send(Ok(()));
                }
            },
            event = sip_events.recv() => match event {
                Some(SipCallEvent::Dialog(event)) => {
                    sip.on_dialog_event(layer, media, &device.push, event).await;
                    if sip.transferred {
                        layer.sip.call_hangup(call.id).await;
                        return finish(layer, device, media, log, HangupSide::Gateway, call_id, HangupReason::Normal, "transferred").await;
                    }
                }
                Some(SipCallEvent::Ended { reason, .. }) => {
                    tracing::info!(?reason, "SIP side ended the call");
                    let cause = match reason {
                        CallEndReason::NoAck => "no ACK from the caller",
                        CallEndReason::SessionExpired => "the SIP session expired",
                        _ => "the caller hung up",
                    };
                    return finish(layer, device, media, log, HangupSide::Sip, call_id, HangupReason::Normal, cause).await;
                }
                Some(_) => {}
                None => {
                    layer.sip.call_hangup(call.id).await;
                    return finish(layer, device, media, log, HangupSide::Gateway, call_id, HangupReason::Failed, "call layer stopped").await;
                }
            },
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn finish(layer: &CallLayer, device: &Device, media: &SessionHandle, mut log: CallLog, side: HangupSide, call_id: &str, reason: HangupReason, cause: &str) {
    let _ = device.push.send(BrowserPush::Hangup { call_id: call_id.to_string(), reason, cause: cause.to_string() }).await;
    log.collect_quality(media, Side::A).await;
    // Media stops the moment the call ends: nothing more goes to a peer that hung up.
    media.stop().await;
    device.leg.close().await;
    attach_ladder(layer, &mut log).await;
    let status = if matches!(reason, HangupReason::Normal | HangupReason::Shutdown) || side != HangupSide::Gateway { CallStatus::Answered } else { CallStatus::Failed };
    log.finish(status, side, if cause.is_empty() { "the browser hung up" } else { cause }, None);
}
