//! `BrowserLeg`: one browser device of a call, over its signalling connection's push channel and
//! its WebRTC leg. `execute` queues pushes (the driver sends them as the connection takes them,
//! never dropping one) and WebRTC work; ICE candidates both ways stay in here. A browser request
//! that needs the call's answer carries a request id, kept here under a `Tag` until the call
//! replies, and the reply goes back through the push channel: the WebSocket task never waits.

use crate::call::machine::driver::CallLeg;
use crate::call::machine::{mapping, EndReason, LegAction, LegInput, LegKind, SessionDesc, Tag};
use crate::call::registry::{BrowserAnswer, BrowserPush};
use crate::media::engine::BrowserLegHandle;
use crate::signaling::{ErrorCode, RequestId};
use crate::webrtc_leg::LegEvent;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;

/// How long each digit a browser sends lasts (its `dtmf` request has no duration).
const DIGIT_MS: u32 = 100;

/// Who called: the caller's details for `incoming`.
#[derive(Clone)]
pub struct Incoming {
    pub caller_uri: String,
    pub caller_name: Option<String>,
    /// The call's control channel, where this device's requests go.
    pub control: mpsc::Sender<BrowserAnswer>,
}

pub struct BrowserLeg {
    pub device: u64,
    call_id: String,
    pub push: mpsc::Sender<BrowserPush>,
    pub webrtc: Arc<BrowserLegHandle>,
    /// Our SDP for the browser: the offer in `incoming`, or the answer to its `call`.
    local_sdp: String,
    /// The browser has our SDP: it is not changed again.
    local_sdp_sent: bool,
    incoming: Option<Incoming>,
    requests: HashMap<u64, RequestId>,
    next_tag: u64,
    /// The device was told how its part ended (or its party ended it): nothing more is sent.
    done: bool,
    close: bool,
    closed: bool,
    /// The call was told this device's connection is gone (by the connection, or because a
    /// push found it closed); told once until a reclaim.
    detached: bool,
    /// Pushes waiting for room on the connection's channel, in order.
    pub outbox: VecDeque<BrowserPush>,
    inputs: VecDeque<LegInput>,
}

impl BrowserLeg {
    pub fn new(device: u64, call_id: &str, push: mpsc::Sender<BrowserPush>, webrtc: Arc<BrowserLegHandle>, local_sdp: String, incoming: Option<Incoming>) -> BrowserLeg {
        BrowserLeg {
            device,
            call_id: call_id.to_string(),
            push,
            webrtc,
            local_sdp,
            local_sdp_sent: false,
            incoming,
            requests: HashMap::new(),
            next_tag: 0,
            done: false,
            close: false,
            closed: false,
            detached: false,
            outbox: VecDeque::new(),
            inputs: VecDeque::new(),
        }
    }

    fn tag(&mut self, id: RequestId) -> Option<Tag> {
        self.next_tag += 1;
        self.requests.insert(self.next_tag, id);
        Some(Tag(self.next_tag))
    }

    fn reply(&mut self, id: RequestId, result: Result<(), (ErrorCode, String)>) {
        self.outbox.push_back(BrowserPush::Reply { call_id: self.call_id.clone(), id, result });
    }

    /// A request from this device's connection. `accept` applies the browser's answer first: one
    /// the leg cannot use is refused here and the device keeps ringing.
    pub async fn on_request(&mut self, request: BrowserAnswer) {
        let input = match request {
            BrowserAnswer::Accept { sdp, id, .. } => match self.webrtc.set_answer(&sdp).await {
                Ok(_) => LegInput::Answered { answer: SessionDesc::new(sdp), tag: self.tag(id) },
                Err(e) => return self.reply(id, Err((ErrorCode::BadRequest, e.to_string()))),
            },
            BrowserAnswer::Reject { busy, .. } => {
                self.done = true;
                LegInput::Rejected { reason: if busy { EndReason::Busy } else { EndReason::Declined }, tag: None }
            }
            BrowserAnswer::Candidate { candidate, .. } => {
                if let Err(e) = self.webrtc.add_remote_candidate(candidate).await {
                    tracing::info!(error = %e, "browser candidate refused");
                }
                return;
            }
            BrowserAnswer::Hangup { .. } => {
                self.done = true;
                LegInput::HungUp { tag: None }
            }
            BrowserAnswer::Dtmf { digits, id, .. } => LegInput::Dtmf { digits, duration_ms: DIGIT_MS, tag: self.tag(id) },
            BrowserAnswer::Hold { hold, id, .. } => LegInput::HoldRequest { hold, tag: self.tag(id) },
            BrowserAnswer::Transfer { target, id, .. } => LegInput::TransferRequest { target, tag: self.tag(id) },
            BrowserAnswer::Detached { .. } => return self.connection_gone(),
            BrowserAnswer::Reattach { device, push, id } => {
                self.detached = false;
                self.device = device;
                self.push = push;
                LegInput::Reattached { tag: self.tag(id) }
            }
        };
        self.inputs.push_back(input);
    }

    /// The device's connection is gone: its pushes are dropped with it, and the call hears of
    /// it once (a device whose `incoming` never got out stops ringing at once).
    pub fn connection_gone(&mut self) {
        self.outbox.clear();
        if !self.detached && !self.done {
            self.detached = true;
            self.inputs.push_back(LegInput::Detached);
        }
    }

    /// What the WebRTC leg reported; `None` when it closed.
    pub fn on_webrtc(&mut self, event: Option<LegEvent>) {
        match event {
            Some(LegEvent::LocalCandidate(candidate)) => {
                if !self.done {
                    self.outbox.push_back(BrowserPush::Candidate { call_id: self.call_id.clone(), candidate });
                }
            }
            Some(LegEvent::Connected) => tracing::info!(device = self.device, "browser media connected"),
            Some(LegEvent::Failed(detail)) => self.inputs.push_back(LegInput::Ended { reason: EndReason::LegFailed { kind: LegKind::Browser, detail } }),
            None if !self.closed && !self.close => {
                let detail = "browser leg closed".to_string();
                self.inputs.push_back(LegInput::Ended { reason: EndReason::LegFailed { kind: LegKind::Browser, detail } });
            }
            None => {}
        }
    }

    fn end(&mut self, reason: &EndReason) {
        if !self.done {
            self.done = true;
            let (reason, cause) = mapping::browser_hangup(reason);
            self.outbox.push_back(BrowserPush::Hangup { call_id: self.call_id.clone(), reason, cause });
        }
        self.close = true;
    }

    /// Closes the WebRTC leg once the call let it go.
    pub async fn flush(&mut self) {
        if self.close && !self.closed {
            self.closed = true;
            self.webrtc.close().await;
        }
    }

    /// A report that came by another path (the media session).
    pub fn inject(&mut self, input: LegInput) {
        self.inputs.push_back(input);
    }

    /// The call ended: the WebRTC leg closes (its `hangup` is already queued).
    pub fn release(&mut self) {
        self.close = true;
    }

    /// Our answer to the calling browser, sent with the callee's (early or final) answer: the
    /// first one sent asks the browser for no more Opus bandwidth than the callee's codec
    /// carries (`sdp::playback_limit`), and later ones repeat it.
    fn answer_for(&mut self, callee_answer: &SessionDesc) -> String {
        if !self.local_sdp_sent {
            self.local_sdp_sent = true;
            let limit = crate::sdp::sending_codec(callee_answer.as_str()).and_then(crate::sdp::playback_limit);
            if let Some(rate) = limit.filter(|_| self.incoming.is_none()) {
                self.local_sdp = crate::sdp::with_opus_playback_limit(&self.local_sdp, rate);
            }
        }
        self.local_sdp.clone()
    }

    pub fn has_work(&self) -> bool {
        self.close && !self.closed
    }
}

impl CallLeg for BrowserLeg {
    fn execute(&mut self, action: LegAction, _now: Instant) {
        let call_id = self.call_id.clone();
        match action {
            LegAction::Ring { .. } => {
                if let Some(incoming) = self.incoming.clone() {
                    let Incoming { caller_uri, caller_name, control } = incoming;
                    self.outbox.push_back(BrowserPush::Incoming { call_id, caller_uri, caller_name, sdp: self.local_sdp.clone(), control });
                }
                self.inputs.push_back(LegInput::Ringing);
            }
            LegAction::Ringing { early } => {
                let sdp = early.map(|answer| self.answer_for(&answer));
                self.outbox.push_back(BrowserPush::Ringing { call_id, sdp });
            }
            LegAction::Answer { answer } => {
                let sdp = self.answer_for(&answer);
                self.outbox.push_back(BrowserPush::Answered { call_id, sdp });
                self.inputs.push_back(LegInput::AnswerDelivered);
            }
            LegAction::Reject { reason } | LegAction::Cancel { reason } | LegAction::Hangup { reason } => self.end(&reason),
            LegAction::Reply { tag, result } => {
                let Some(id) = self.requests.remove(&tag.0) else { return };
                self.reply(id, result.map_err(|e| mapping::request_error(&e)));
            }
            LegAction::Dtmf { digits, duration_ms } => {
                for digit in digits.chars() {
                    self.outbox.push_back(BrowserPush::Dtmf { call_id: call_id.clone(), digit, duration_ms });
                }
            }
            // Nothing to renegotiate toward a browser: the media session adapts.
            LegAction::Hold { .. } => self.inputs.push_back(LegInput::HoldResult { result: Ok(()) }),
            LegAction::Reoffer { .. } => {
                let answer = SessionDesc::new(self.local_sdp.clone());
                self.inputs.push_back(LegInput::ReofferAnswer { result: Ok(answer) });
            }
            LegAction::AnswerReoffer { .. } | LegAction::RefuseReoffer { .. } => {}
            LegAction::RemoteHold { on_hold } => self.outbox.push_back(BrowserPush::RemoteHold { call_id, on_hold }),
            LegAction::Transfer { .. } => {
                let result = Err("a browser cannot be transferred".to_string());
                self.inputs.push_back(LegInput::TransferResult { result });
            }
        }
    }

    fn poll_input(&mut self) -> Option<LegInput> {
        self.inputs.pop_front()
    }
}
