//! A call from a browser to SIP: answer the browser's WebRTC offer, offer SIP to the peer of one
//! of the user's profiles, and bridge when the peer answers (transcoding if the codecs differ).

use super::legs::{accept_offered_numbers, browser_leg, codec_of_encoding, encoding_of_codec, sip_leg};
use super::inbound::{CallLayer, SHUTDOWN_CAUSE};
use super::registry::{BrowserAnswer, BrowserPush, Parking};
use super::call_log::CallLog;
use super::sip_side::{MediaTimeout, SipSide};
use crate::store::{CallStatus, HangupSide};
use crate::media::session::Side;
use crate::sip::core::{CallEndReason, DialogEvent};
use crate::media::engine::{BrowserLegHandle, LegIo, SessionHandle};
use crate::media::worker::BrowserLegStart;
use crate::media::handler::{Encoding, PayloadFormat};
use crate::media::session::LegConfig;
use crate::media::srtp::SdesKeys;
use crate::media::session::{EgressSeeds, MediaSession};
use crate::sdp::{self, Codec, LocalCapabilities, SessionDescription};
use crate::signaling::HangupReason;
use crate::sip::core::OutboundEvent;
use crate::sip::endpoint::SipCallEvent;
use crate::webrtc_leg::{LegEvent, WebRtcConfig};
use std::sync::Arc;
use tokio::sync::mpsc;

fn failure_reason(status: u16) -> (HangupReason, &'static str) {
    match status {
        486 | 600 => (HangupReason::Busy, "busy"),
        603 => (HangupReason::Declined, "declined"),
        404 | 484 | 604 => (HangupReason::NotFound, "not found"),
        480 => (HangupReason::NoAnswer, "no answer"),
        // Still challenged after answering with the profile's credentials.
        401 | 407 => (HangupReason::Forbidden, "authentication failed at the peer"),
        403 => (HangupReason::Forbidden, "refused by the peer"),
        488 | 606 => (HangupReason::Failed, "no common codec or SRTP setting"),
        _ => (HangupReason::Unavailable, "unavailable"),
    }
}

/// What the browser asked for in its `call` request.
pub struct OutboundCall {
    pub call_id: String,
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

/// Places the call; returns the WebRTC side's events-to-browser through `push`, and takes hangup
/// and candidates through `control`.
pub async fn place(layer: Arc<CallLayer>, call: OutboundCall, mut push: mpsc::Sender<BrowserPush>, mut control: mpsc::Receiver<BrowserAnswer>) {
    let OutboundCall { call_id, user, profile, target, browser_offer, sip_codec: forced_codec } = call;
    let hangup = |reason: HangupReason, cause: &str| BrowserPush::Hangup { call_id: call_id.clone(), reason, cause: cause.to_string() };
    let log = CallLog::outbound(&layer.records, &layer.stats, &call_id, &user, profile.as_deref(), &target);
    if !layer.drain.accepting() {
        let _ = push.send(hangup(HangupReason::Unavailable, SHUTDOWN_CAUSE)).await;
        return log.finish(CallStatus::Failed, HangupSide::Gateway, SHUTDOWN_CAUSE, None);
    }
    let Some(_slot) = layer.acquire_slot(&user, profile.as_deref()) else {
        let _ = push.send(hangup(HangupReason::Unavailable, "call limit reached; try again later")).await;
        return log.finish(CallStatus::Failed, HangupSide::Gateway, "call limit reached", None);
    };
    let mut log = log;
    let config = WebRtcConfig { public_ip: layer.webrtc.public_ip, lite: layer.webrtc.lite, failed_timeout: layer.webrtc.failed_timeout };
    let start = BrowserLegStart::Answer { offer: browser_offer.clone(), forced_codec: None };
    let (leg, browser_answer, _, mut leg_events) = match layer.engine.open_browser_leg(start, &config, rand::random()).await {
        Ok(answered) => answered,
        Err(e) => {
            let _ = push.send(hangup(HangupReason::Failed, &e.to_string())).await;
            return log.finish(CallStatus::Failed, HangupSide::Browser, "the browser's offer was refused", None);
        }
    };
    let leg = Arc::new(leg);
    // The browser leg keeps the numbers it negotiated; the media session maps them to the SIP leg's.
    let Some((browser_config, browser_format)) = browser_leg(&leg.media()) else {
        leg.close().await;
        let _ = push.send(hangup(HangupReason::Failed, "no usable codec")).await;
        return log.finish(CallStatus::Failed, HangupSide::Browser, "the browser's offer was refused", None);
    };
    let browser_encoding = browser_format.encoding;
    let endpoint = match layer.engine.allocate().await {
        Ok(endpoint) => endpoint,
        Err(_) => {
            leg.close().await;
            let _ = push.send(hangup(HangupReason::Unavailable, "no media port")).await;
            return log.finish(CallStatus::Failed, HangupSide::Gateway, "no media port", None);
        }
    };
    let codecs = sip_offer_codecs(browser_encoding, forced_codec);
    if let Some(forced) = forced_codec {
        tracing::info!(%call_id, codec = forced.name(), "the browser asked for one codec on the SIP side");
    }
    let destination = layer.sip.call_destination(profile.as_deref(), &target).await;
    let media_address = super::legs::sip_media_address(&layer.engine, None, destination.map(|d| d.ip()));
    let mut our_offer = sdp::offer(&LocalCapabilities::new(codecs), media_address, endpoint.port, rand::random::<u32>().into(), 1);
    let srtp = layer.srtp.for_profile(profile.as_deref());
    if let Err(e) = super::sdes::secure_offer(srtp, &mut our_offer) {
        leg.close().await;
        let _ = push.send(hangup(HangupReason::Failed, e.cause())).await;
        return log.finish(CallStatus::Failed, HangupSide::Gateway, e.cause(), None);
    }
    let sip_id = match layer.sip.place_call(profile.as_deref(), &target, &user, our_offer.to_string()).await {
        Ok((id, sip_call_id)) => {
            log.add_sip_call_id(&sip_call_id);
            id
        }
        Err(e) => {
            leg.close().await;
            let _ = push.send(hangup(HangupReason::NotFound, &e)).await;
            return log.finish(CallStatus::Failed, HangupSide::Gateway, &e, None);
        }
    };
    let (events_tx, mut events) = mpsc::channel(32);
    let _ = layer.outbound.send((sip_id, events_tx)).await;
    tracing::info!(%call_id, profile = profile.as_deref().unwrap_or("(registered phone)"), %target, "calling SIP");
    let mut media: Option<SessionHandle> = None;
    let mut keys = None;
    let mut sip: Option<SipSide> = None;
    let rtp_port = endpoint.port;
    let mut endpoint = Some(endpoint);
    let longest = tokio::time::sleep(std::time::Duration::from_secs(layer.limits.max_duration_secs));
    tokio::pin!(longest);
    let mut parking = Parking::new(layer.limits.reclaim_grace_secs);
    let mut drain = layer.drain.watch();
    // Who ended the call and the SIP status, for the record.
    let mut side = HangupSide::Gateway;
    let mut sip_status: Option<u16> = None;
    let outcome: (HangupReason, String) = loop {
        tokio::select! {
            () = drain.ending() => {
                // CANCEL before the answer, BYE after it.
                layer.sip.outbound_hangup(sip_id).await;
                break (HangupReason::Shutdown, SHUTDOWN_CAUSE.into());
            }
            () = parking.expired() => {
                layer.sip.outbound_hangup(sip_id).await;
                break (HangupReason::Failed, "the browser did not come back".into());
            }
            () = &mut longest => {
                layer.sip.outbound_hangup(sip_id).await;
                break (HangupReason::Normal, "maximum call duration".into());
            }
            event = events.recv() => match event {
                Some(SipCallEvent::Outbound(OutboundEvent::Progress { status, sdp, .. })) => {
                    // 183 with SDP is early media: ringback or an announcement the browser must hear.
                    let early = match sdp {
                        Some(sdp) if media.is_none() => match start_media(&layer, &our_offer, &sdp, &browser_config, &leg, &mut endpoint) {
                            Ok(started) => {
                                let (sip_codec, sip_payload_type) = started.1;
                                tracing::info!(%call_id, ?sip_codec, sip_payload_type, ?browser_encoding, browser_payload_type = browser_format.payload_type, "early media");
                                media = Some(started.0);
                                keys = started.2;
                                true
                            }
                            Err(e) => {
                                tracing::info!(%call_id, error = e, "early media refused; waiting for the answer");
                                false
                            }
                        },
                        _ => false,
                    };
                    if status == 180 || status == 183 || early {
                        log.ringing();
                        let sdp = early.then(|| browser_answer.clone());
                        let _ = push.send(BrowserPush::Ringing { call_id: call_id.clone(), sdp }).await;
                    }
                }
                Some(SipCallEvent::Outbound(OutboundEvent::Answered { sdp, .. })) => {
                    if media.is_none() {
                        match start_media(&layer, &our_offer, &sdp, &browser_config, &leg, &mut endpoint) {
                            Ok(started) => {
                                let (sip_codec, sip_payload_type) = started.1;
                                let transcoding = encoding_of_codec(sip_codec) != browser_encoding;
                                tracing::info!(%call_id, ?sip_codec, sip_payload_type, ?browser_encoding, browser_payload_type = browser_format.payload_type, transcoding, "answered");
                                media = Some(started.0);
                                keys = started.2;
                            }
                            Err(e) => {
                                layer.sip.outbound_hangup(sip_id).await;
                                break (HangupReason::Failed, e.into());
                            }
                        }
                    } else {
                        // Without 100rel the 200's SDP repeats the 183's (RFC 6337 §3.1), so early media carries on.
                        tracing::info!(%call_id, "answered after early media");
                    }
                    if let Some(media) = &media {
                        // Media must flow from the answer on (early media may be silent).
                        let _ = media.expect_media().await;
                        let codec = SessionDescription::parse(&sdp).ok().and_then(|a| sdp::read_answer(&our_offer, &a).ok().map(|n| (a, n)));
                        if let Some((answer, negotiated)) = codec {
                            let first = negotiated.codecs.first().map(|c| c.codec).unwrap_or(Codec::Pcmu);
                            log.dtmf_mode(negotiated.telephone_event.is_some());
                            log.answered(first.encoding_name(), &leg.codec().mime_type, encoding_of_codec(first) != browser_encoding, None);
                            log.srtp(keys.as_ref());
                            sip = Some(SipSide::new(sip_id, Side::B, &call_id, media_address, rtp_port, our_offer.clone(), Some(answer), first).with_srtp(srtp, keys.clone()));
                        }
                    }
                    let _ = push.send(BrowserPush::Answered { call_id: call_id.clone(), sdp: browser_answer.clone() }).await;
                }
                Some(SipCallEvent::Outbound(OutboundEvent::PeerSeen { remote, user_agent, .. })) => log.sip_peer(remote, user_agent),
                Some(SipCallEvent::Outbound(OutboundEvent::Failed { status, .. })) => {
                    (side, sip_status) = (HangupSide::Sip, Some(status));
                    let (reason, cause) = failure_reason(status);
                    break (reason, format!("{status} {cause}"));
                }
                Some(SipCallEvent::Ended { reason, .. }) => {
                    side = HangupSide::Sip;
                    let cause = if reason == CallEndReason::SessionExpired { "the SIP session expired" } else { "the far end hung up" };
                    break (HangupReason::Normal, cause.into());
                }
                Some(SipCallEvent::Dialog(event)) => match (sip.as_mut(), media.as_ref()) {
                    (Some(sip), Some(media)) => {
                        sip.on_dialog_event(&layer, media, &push, event).await;
                        if sip.transferred {
                            layer.sip.outbound_hangup(sip_id).await;
                            break (HangupReason::Normal, "transferred".into());
                        }
                    }
                    _ => {
                        if let DialogEvent::Reoffer { id, .. } = event { layer.sip.call_reanswer(id, Err(491)).await; }
                    }
                },
                Some(SipCallEvent::Incoming(_)) => {}
                None => break (HangupReason::Failed, "call layer stopped".into()),
            },
            event = leg_events.recv() => match event {
                Some(LegEvent::LocalCandidate(candidate)) => {
                    let _ = push.send(BrowserPush::Candidate { call_id: call_id.clone(), candidate }).await;
                }
                Some(LegEvent::Connected) => {}
                Some(LegEvent::Failed(reason)) => {
                    layer.sip.outbound_hangup(sip_id).await;
                    break (HangupReason::Failed, reason);
                }
                None => {
                    layer.sip.outbound_hangup(sip_id).await;
                    break (HangupReason::Failed, "browser leg closed".into());
                }
            },
            Some(event) = next_media_event(&mut media) => {
                let Some(sip) = sip.as_mut() else { continue };
                if let Some(timeout) = sip.on_media_event(&layer, &push, event).await {
                    layer.sip.outbound_hangup(sip_id).await;
                    break (MediaTimeout::REASON, timeout.cause());
                }
            }
            answer = control.recv() => match answer {
                Some(BrowserAnswer::Candidate { candidate, .. }) => { let _ = leg.add_remote_candidate(candidate).await; }
                Some(request @ (BrowserAnswer::Dtmf { .. } | BrowserAnswer::Hold { .. } | BrowserAnswer::Transfer { .. })) => match (sip.as_mut(), media.as_ref()) {
                    (Some(sip), Some(media)) => { let _ = sip.on_browser(&layer, media, request).await; }
                    _ => {
                        if let BrowserAnswer::Dtmf { reply, .. } | BrowserAnswer::Hold { reply, .. } | BrowserAnswer::Transfer { reply, .. } = request { let _ = reply.send(Err("the call is not answered yet".into())); }
                    }
                },
                Some(BrowserAnswer::Hangup { .. }) | None => {
                    side = HangupSide::Browser;
                    layer.sip.outbound_hangup(sip_id).await;
                    break (HangupReason::Normal, "hung up".into());
                }
                Some(BrowserAnswer::Accept { reply, .. }) => { let _ = reply.send(Err("this call was placed by the browser".into())); }
                Some(BrowserAnswer::Reject { .. }) => {}
                // Only an answered call waits for its browser; an unanswered one is given up.
                Some(BrowserAnswer::Detached { .. }) => {
                    if sip.is_none() || !parking.detach() {
                        side = HangupSide::Browser;
                        layer.sip.outbound_hangup(sip_id).await;
                        break (HangupReason::Failed, "the browser went away".into());
                    }
                    tracing::info!(%call_id, "the browser's connection dropped; waiting for a reclaim");
                }
                Some(BrowserAnswer::Reattach { push: new_push, reply, .. }) => {
                    push = new_push;
                    parking.reattach();
                    let _ = reply.send(Ok(()));
                }
            },
        }
    };
    tracing::info!(%call_id, reason = ?outcome.0, cause = %outcome.1, "call ended");
    let _ = push.send(hangup(outcome.0, &outcome.1)).await;
    let status = match (sip.is_some(), sip_status) {
        (true, _) if matches!(outcome.0, HangupReason::Normal | HangupReason::Shutdown) || side != HangupSide::Gateway => CallStatus::Answered,
        (true, _) => CallStatus::Failed,
        (false, Some(486 | 600)) => CallStatus::Busy,
        (false, Some(603)) => CallStatus::Rejected,
        (false, Some(480 | 408)) => CallStatus::Missed,
        (false, None) if side == HangupSide::Browser => CallStatus::Cancelled,
        _ => CallStatus::Failed,
    };
    // Media stops the moment the call ends: nothing more goes to a peer that hung up.
    if let Some(media) = media {
        log.collect_quality(&media, Side::B).await;
        media.stop().await;
    }
    leg.close().await;
    super::inbound::attach_ladder(&layer, &mut log).await;
    log.finish(status, side, &outcome.1, sip_status);
}

/// The media session's next event, once there is a session.
async fn next_media_event(media: &mut Option<SessionHandle>) -> Option<crate::media::session::MediaEvent> {
    match media.as_mut() {
        Some(media) => media.events.recv().await,
        None => std::future::pending().await,
    }
}

/// Bridges the browser's leg to the SIP peer's answer (from a 183 or the 200): the SIP leg takes
/// the peer's first codec, the engine transcodes when it differs from the browser's.
fn start_media(
    layer: &Arc<CallLayer>,
    our_offer: &SessionDescription,
    peer_sdp: &str,
    browser: &LegConfig,
    leg: &Arc<BrowserLegHandle>,
    endpoint: &mut Option<crate::media::engine::RtpEndpoint>,
) -> Result<(SessionHandle, (Codec, u8), Option<SdesKeys>), &'static str> {
    let negotiated = SessionDescription::parse(peer_sdp).and_then(|answer| sdp::read_answer(our_offer, &answer)).map_err(|e| e.cause())?;
    let keys = super::sdes::read_answer(our_offer, &negotiated).map_err(|e| e.cause())?;
    let sip_codec = negotiated.codecs.first().ok_or("no common codec")?;
    let sip_format = PayloadFormat { encoding: encoding_of_codec(sip_codec.codec), payload_type: sip_codec.payload_type, channels: 1 };
    let seeds = [
        EgressSeeds { ssrc: leg.ssrc(), sequence: rand::random(), timestamp: rand::random() },
        EgressSeeds { ssrc: rand::random(), sequence: rand::random(), timestamp: rand::random() },
    ];
    let Some(rtp) = endpoint.take() else { return Err("internal") };
    let mut sip_config = sip_leg(&negotiated, sip_format);
    accept_offered_numbers(&mut sip_config, our_offer);
    let mut session = MediaSession::new(
        browser.clone(),
        sip_config,
        seeds,
        crate::media::codec_glue::factory(layer.opus_complexity),
        layer.media_timeouts,
        layer.engine.now(),
    );
    if let Some(keys) = &keys {
        let (outbound, inbound) = keys.contexts();
        session.set_srtp(Side::B, outbound, inbound);
    }
    // Until the 200 (`expect_media`): a 183's media may stay silent while the far end rings.
    session.defer_inactivity();
    let media = layer.engine.spawn_with_browser(session, leg.io(), LegIo::Udp(rtp), leg);
    Ok((media, (sip_codec.codec, sip_codec.payload_type), keys))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_failures_map_to_the_documented_browser_reasons() {
        let cases = [
            (486, HangupReason::Busy),
            (603, HangupReason::Declined),
            (404, HangupReason::NotFound),
            (480, HangupReason::NoAnswer),
            (407, HangupReason::Forbidden),
            (488, HangupReason::Failed),
            (503, HangupReason::Unavailable),
            (408, HangupReason::Unavailable),
        ];
        for (status, reason) in cases {
            assert_eq!(failure_reason(status).0, reason, "SIP {status}");
        }
        assert_eq!(failure_reason(401).1, "authentication failed at the peer");
        assert_eq!(failure_reason(488).1, "no common codec or SRTP setting");
    }

    #[test]
    fn the_codec_field_is_the_only_codec_offered_to_sip() {
        assert_eq!(sip_offer_codecs(Encoding::Opus, Some(Encoding::Pcma)), vec![Codec::Pcma]);
        assert_eq!(sip_offer_codecs(Encoding::Opus, None), vec![Codec::Opus, Codec::Pcmu, Codec::Pcma, Codec::G722]);
        assert_eq!(sip_offer_codecs(Encoding::Pcmu, None)[0], Codec::Pcmu);
    }
}
