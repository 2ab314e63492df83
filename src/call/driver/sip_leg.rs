//! `SipLeg`: the SIP side of a call over the SIP endpoint's call API, as the caller (a call from
//! SIP) or the callee (a call placed toward SIP). `execute` only queues (`SipOp`); `flush` carries
//! the queue out against the endpoint, which never waits on a call, so flushing cannot block
//! on anything that waits on us. SDP, codecs and SDES stay in here (`SipSdp`).

use super::sip_sdp::{Reoffer, SipSdp};
use crate::call::machine::driver::CallLeg;
use crate::call::machine::{mapping, EndReason, LegAction, LegInput, LegKind, SessionDesc};
use crate::media::engine::{BrowserLegHandle, RtpEndpoint};
use crate::media::session::LegConfig;
use crate::sip::core::{CallEndReason, DialogEvent, OutboundEvent, SipCallId};
use crate::sip::endpoint::{CallEvents, SipCallEvent};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

mod flush;

/// How long each digit the browser sends lasts toward the SIP side.
const DIGIT_MS: u32 = 100;

/// Where a callee leg's INVITE goes, until it is placed.
pub struct Placement {
    pub profile: Option<String>,
    pub target: String,
    /// The one registered contact of `target` to call (a forked call), else the dial plan's.
    pub binding: Option<String>,
    pub user: String,
    pub events: CallEvents,
}

enum SipOp {
    Place,
    Ringing,
    Answer,
    Reject(u16),
    End,
    Hold(bool),
    Reanswer,
    ReanswerSame(String),
    OfferAnswered(String),
    InfoDtmf(char, u32),
    Refuse(u16),
    Refer(String),
    Dtmf(String),
    ExpectMedia,
    /// The WebRTC peer's answer to our offer, for its WebRTC leg.
    WebRtcAnswer(String),
    /// How the transfer the peer asked for (its REFER) goes: a NOTIFY with this status.
    ReferProgress(u16),
}

pub struct SipLeg {
    pub id: Option<SipCallId>,
    caller: bool,
    pub sdp: SipSdp,
    placement: Option<Placement>,
    /// The SIP leg's media configuration once negotiated, until the driver starts the session.
    pub media_ready: Option<LegConfig>,
    pub endpoint: Option<RtpEndpoint>,
    /// The peer's media when its SDP is WebRTC (instead of `endpoint`): a WebRTC leg on the
    /// worker of the call's browser leg.
    pub webrtc: Option<Arc<BrowserLegHandle>>,
    /// Whether the peer sends RFC 4733 digits (for the record).
    pub telephone_event: bool,
    /// The exact final status of the unanswered call (ours to a caller, the peer's as callee).
    pub final_status: Option<u16>,
    /// The SIP Call-ID once placed, for the record's ladder.
    pub placed_call_id: Option<String>,
    /// Where the peer is and its User-Agent (a caller's from its INVITE, a callee's from its
    /// first response), for the record.
    pub peer: Option<(std::net::SocketAddr, Option<String>)>,
    ended: bool,
    answered: bool,
    /// We sent the last message of the call (BYE, CANCEL, a final refusal): its answer is
    /// still on the way when the call ends.
    pub ended_by_us: bool,
    /// The peer's last offer put us on hold (for the log).
    peer_holds: bool,
    /// The local user the SIP peer is (a WebSocket client or a registered phone), whose granted
    /// profiles a transfer it asks for goes through; `None` for trunks and PBXs.
    pub referrer: Option<String>,
    /// The target of the peer's REFER, for the call task (`driver/transfer.rs`).
    pub refer_requested: Option<String>,
    ops: VecDeque<SipOp>,
    inputs: VecDeque<LegInput>,
}

impl SipLeg {
    fn new(id: Option<SipCallId>, caller: bool, sdp: SipSdp, endpoint: Option<RtpEndpoint>, placement: Option<Placement>) -> SipLeg {
        SipLeg {
            id,
            caller,
            sdp,
            placement,
            media_ready: None,
            endpoint,
            webrtc: None,
            telephone_event: false,
            final_status: None,
            placed_call_id: None,
            peer: None,
            ended: false,
            answered: false,
            peer_holds: false,
            referrer: None,
            refer_requested: None,
            ended_by_us: false,
            ops: VecDeque::new(),
            inputs: VecDeque::new(),
        }
    }

    /// The SIP caller of a call from SIP, with the answer and media already prepared.
    pub fn caller(id: SipCallId, sdp: SipSdp, endpoint: RtpEndpoint, media: LegConfig, telephone_event: bool) -> SipLeg {
        let mut leg = SipLeg::new(Some(id), true, sdp, Some(endpoint), None);
        leg.media_ready = Some(media);
        leg.telephone_event = telephone_event;
        leg
    }

    /// The SIP caller of a call from SIP whose SDP is WebRTC: its media is `webrtc`, already
    /// answered (the SDP in `sdp.local`).
    pub fn webrtc_caller(id: SipCallId, sdp: SipSdp, webrtc: Arc<BrowserLegHandle>, media: LegConfig, telephone_event: bool) -> SipLeg {
        let mut leg = SipLeg::new(Some(id), true, sdp, None, None);
        leg.webrtc = Some(webrtc);
        leg.media_ready = Some(media);
        leg.telephone_event = telephone_event;
        leg
    }

    /// The SIP callee of a browser's call whose peer takes WebRTC: `sdp.local` is the WebRTC
    /// leg's offer, placed on `Ring`.
    pub fn webrtc_callee(sdp: SipSdp, webrtc: Arc<BrowserLegHandle>, placement: Placement) -> SipLeg {
        let mut leg = SipLeg::new(None, false, sdp, None, Some(placement));
        leg.webrtc = Some(webrtc);
        leg
    }

    /// What the peer's WebRTC leg reported; `None` when it closed. ICE or DTLS failing ends the
    /// call as a failed SIP leg.
    pub fn on_webrtc(&mut self, event: Option<crate::webrtc_leg::LegEvent>) {
        use crate::webrtc_leg::LegEvent;
        match event {
            Some(LegEvent::Connected) => tracing::info!("SIP peer's WebRTC media connected"),
            Some(LegEvent::Failed(detail)) if !self.ended && self.webrtc.is_some() => {
                self.ops.push_back(SipOp::End);
                self.ended = true;
                let detail = format!("the SIP peer's WebRTC media failed: {detail}");
                self.inputs.push_back(LegInput::Ended { reason: EndReason::LegFailed { kind: LegKind::Sip, detail } });
            }
            _ => {}
        }
    }

    /// The SIP callee of a browser's call: placed on `Ring`.
    pub fn callee(sdp: SipSdp, endpoint: RtpEndpoint, placement: Placement) -> SipLeg {
        SipLeg::new(None, false, sdp, Some(endpoint), Some(placement))
    }

    /// What the SIP core reported about this leg's call.
    pub fn on_sip_event(&mut self, event: SipCallEvent) {
        match event {
            SipCallEvent::Ended { reason, .. } => {
                self.ended = true;
                self.inputs.push_back(match reason {
                    CallEndReason::NoAck => LegInput::Ended { reason: EndReason::NoAck },
                    CallEndReason::SessionExpired => LegInput::Ended { reason: EndReason::SessionExpired },
                    _ => LegInput::HungUp { tag: None },
                });
            }
            SipCallEvent::Outbound(event) => self.on_outbound(event),
            SipCallEvent::Dialog(event) => self.on_dialog(event),
        }
    }

    fn on_outbound(&mut self, event: OutboundEvent) {
        match event {
            OutboundEvent::Progress { status, sdp, .. } => {
                // 183 with SDP is early media: ringback or an announcement the browser must hear.
                // A WebRTC peer's early SDP is not applied: its 2xx repeats it.
                let early = sdp.filter(|_| self.media_ready.is_none() && !self.answered && !self.sdp.webrtc).and_then(|sdp| match self.sdp.read_first_answer(&sdp) {
                    Ok((config, negotiated)) => {
                        tracing::info!(sip_codec = ?self.sdp.codec, "early media");
                        self.telephone_event = negotiated.telephone_event.is_some();
                        self.media_ready = Some(config);
                        Some(sdp)
                    }
                    Err(e) => {
                        tracing::info!(error = e, "early media refused; waiting for the answer");
                        None
                    }
                });
                match early {
                    Some(sdp) => self.inputs.push_back(LegInput::EarlyMedia { answer: SessionDesc::new(sdp) }),
                    None if status == 180 || status == 183 => self.inputs.push_back(LegInput::Ringing),
                    None => {}
                }
            }
            OutboundEvent::Answered { sdp, .. } => self.on_answered(sdp),
            OutboundEvent::Failed { status, .. } => {
                self.ended = true;
                self.final_status = Some(status);
                self.inputs.push_back(LegInput::Rejected { reason: mapping::end_reason_of_sip_failure(status), tag: None });
            }
            // Recorded by the driver before the event reaches the leg.
            OutboundEvent::PeerSeen { .. } => {}
        }
    }

    fn on_answered(&mut self, sdp: String) {
        self.answered = true;
        if self.sdp.webrtc && self.media_ready.is_none() {
            // Applied to the WebRTC leg in `flush`, which then reports the answer.
            return self.ops.push_back(SipOp::WebRtcAnswer(sdp));
        }
        if self.media_ready.is_none() {
            match self.sdp.read_first_answer(&sdp) {
                Ok((config, negotiated)) => {
                    self.telephone_event = negotiated.telephone_event.is_some();
                    self.media_ready = Some(config);
                }
                Err(e) => {
                    // The dialog exists: it is ended here, and the call hears why.
                    self.ops.push_back(SipOp::End);
                    self.ended = true;
                    let detail = format!("the SIP answer cannot be used: {e}");
                    return self.inputs.push_back(LegInput::Ended { reason: EndReason::LegFailed { kind: LegKind::Sip, detail } });
                }
            }
        }
        // Media must flow from the answer on (early media may be silent).
        self.ops.push_back(SipOp::ExpectMedia);
        self.inputs.push_back(LegInput::Answered { answer: SessionDesc::new(sdp), tag: None });
    }

    fn on_dialog(&mut self, event: DialogEvent) {
        let input = match event {
            DialogEvent::Reoffer { sdp, .. } => match self.sdp.prepare_reoffer(&sdp) {
                Ok(Reoffer::New { hold }) => {
                    if hold != self.peer_holds {
                        self.peer_holds = hold;
                        tracing::info!(on_hold = hold, "{}", if hold { "the SIP peer holds the call" } else { "the SIP peer resumed the call" });
                    }
                    LegInput::Reoffer { offer: SessionDesc::new(sdp), hold }
                }
                Ok(Reoffer::Same(answer)) => return self.ops.push_back(SipOp::ReanswerSame(answer)),
                Err(status) => return self.ops.push_back(SipOp::Refuse(status)),
            },
            DialogEvent::Dtmf { digit, duration_ms, .. } => LegInput::Dtmf { digits: digit.to_string(), duration_ms, tag: None },
            // Applied in `flush`, which has the media session.
            DialogEvent::ReofferAnswered { sdp, .. } => return self.ops.push_back(SipOp::OfferAnswered(sdp)),
            DialogEvent::ReofferRefused { status, .. } => {
                self.sdp.offer_refused();
                LegInput::HoldResult { result: Err(mapping::hold_failure_of_sip_status(status)) }
            }
            DialogEvent::ReferAnswered { status, .. } => {
                let result = if (200..300).contains(&status) { Ok(()) } else { Err(format!("the SIP peer refused the transfer with {status}")) };
                LegInput::TransferResult { result }
            }
            DialogEvent::Transferred { .. } => LegInput::Transferred,
            DialogEvent::ReferRequested { target, .. } => {
                tracing::info!(%target, "the SIP peer asks to transfer the other party");
                self.refer_requested = Some(target);
                return;
            }
        };
        self.inputs.push_back(input);
    }
}

impl CallLeg for SipLeg {
    fn execute(&mut self, action: LegAction, _now: Instant) {
        let op = match action {
            LegAction::Ring { .. } => SipOp::Place,
            LegAction::Ringing { .. } => SipOp::Ringing,
            LegAction::Answer { .. } => SipOp::Answer,
            LegAction::Reject { reason } => {
                let status = mapping::sip_status(&reason).code;
                self.final_status = Some(status);
                SipOp::Reject(status)
            }
            LegAction::Cancel { .. } | LegAction::Hangup { .. } => SipOp::End,
            LegAction::Hold { hold } => SipOp::Hold(hold),
            LegAction::AnswerReoffer { .. } => SipOp::Reanswer,
            LegAction::RefuseReoffer { refusal } => SipOp::Refuse(mapping::reoffer_status(refusal).code),
            LegAction::Transfer { target } => SipOp::Refer(target),
            LegAction::Dtmf { digits, .. } => SipOp::Dtmf(digits),
            // A browser never re-offers (WebRTC is not renegotiated): nothing for the peer.
            LegAction::Reoffer { .. } => {
                let result = Err(crate::call::machine::ReofferRefusal::NotAcceptable);
                return self.inputs.push_back(LegInput::ReofferAnswer { result });
            }
            LegAction::Reply { .. } | LegAction::RemoteHold { .. } => return,
        };
        self.ops.push_back(op);
    }

    fn poll_input(&mut self) -> Option<LegInput> {
        self.inputs.pop_front()
    }
}

impl SipLeg {
    /// Digits the media session wants sent as SIP INFO (the peer has no telephone-event).
    pub fn send_info(&mut self, digit: char, duration_ms: u32) {
        self.ops.push_back(SipOp::InfoDtmf(digit, duration_ms));
    }

    /// A report that came by another path (the media session).
    pub fn inject(&mut self, input: LegInput) {
        self.inputs.push_back(input);
    }

    /// A NOTIFY to the peer about the transfer it asked for.
    pub fn refer_progress(&mut self, status: u16) {
        self.ops.push_back(SipOp::ReferProgress(status));
    }

    /// Places a callee leg now, outside the call's `Ring` (a transfer's new leg).
    pub fn place_now(&mut self) {
        self.ops.push_back(SipOp::Place);
    }

    /// Ends this leg's dialog (BYE, or CANCEL while unanswered) outside the call's commands.
    pub fn end_now(&mut self) {
        self.ended = true;
        self.ops.push_back(SipOp::End);
    }

    pub fn has_ops(&self) -> bool {
        !self.ops.is_empty()
    }
}
