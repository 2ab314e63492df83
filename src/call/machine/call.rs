//! The `Call` itself: its legs and phase, the queues it fills, event dispatch and the one way a
//! call ends (`end`). The handlers live in `setup` (before the answer), `answered` (after it)
//! and `timers` (the clock and drain).

use super::{
    CallConfig, CallEnd, CallEvent, EndReason, LegAction, LegCommand, LegEvent, LegId, LegInput, LegKind, RequestError,
    SessionDesc, Tag,
};
use std::collections::VecDeque;
use std::time::Instant;

/// Legs beyond this many callees are not rung: `LegId` is a `u8`, and no user has 254 tabs.
const MAX_CALLEES: usize = 254;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LegState {
    /// A callee was sent `Ring` and has not said it is alerting; the caller, before the answer.
    Offered,
    Ringing,
    /// The caller was sent `Answer` and has not reported `AnswerDelivered`.
    Answering,
    Answered,
    /// Ended for this leg: it was told so (or it ended the call), and gets nothing more.
    Gone,
}

#[derive(Debug)]
pub(super) struct Leg {
    pub(super) kind: LegKind,
    pub(super) state: LegState,
    /// Set while the leg's connection is down: it may be reclaimed until then.
    pub(super) detached_until: Option<Instant>,
    /// This leg's party holds the other side (its hold request took).
    pub(super) holds: bool,
    /// This leg's peer holds us (its last new offer was sendonly or inactive).
    pub(super) held_by_peer: bool,
    /// Why the leg left: a callee's refusal, or what it was told when it was ended.
    pub(super) ended_with: Option<EndReason>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Callees are being rung.
    Ringing,
    /// `callee` answered; the caller's leg is delivering the answer.
    Answering { callee: LegId },
    Answered { callee: LegId, since: Instant },
    Ended,
}

/// A hold or resume asked by `from`, carried out on the other leg.
#[derive(Debug)]
pub(super) struct HoldOp {
    pub(super) from: LegId,
    pub(super) tag: Option<Tag>,
    pub(super) hold: bool,
    /// Offers that met glare so far.
    pub(super) glares: u8,
    pub(super) stage: HoldStage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HoldStage {
    /// To be sent once no other offer is being answered.
    Queued,
    /// The offer is out; its outcome comes as `HoldResult`.
    Sent,
    /// It met glare and goes again at `until` (RFC 3261 §14.1).
    BackingOff { until: Instant },
}

impl HoldStage {
    pub(super) fn until(self) -> Option<Instant> {
        match self {
            HoldStage::BackingOff { until } => Some(until),
            HoldStage::Queued | HoldStage::Sent => None,
        }
    }
}

/// A new offer from `from`'s peer, being answered by the other leg.
#[derive(Debug)]
pub(super) struct ReofferOp {
    pub(super) from: LegId,
    pub(super) hold: bool,
}

/// A transfer asked by `from`, carried out on the other leg.
#[derive(Debug)]
pub(super) struct TransferOp {
    pub(super) from: LegId,
    pub(super) tag: Option<Tag>,
}

/// One call: see the module documentation for how a driver runs it.
#[derive(Debug)]
pub struct Call {
    pub(super) config: CallConfig,
    pub(super) legs: Vec<Leg>,
    pub(super) phase: Phase,
    pub(super) commands: VecDeque<LegCommand>,
    pub(super) events: VecDeque<CallEvent>,
    pub(super) ring_deadline: Option<Instant>,
    /// `max_duration` from the start, and again from the answer.
    pub(super) duration_deadline: Option<Instant>,
    pub(super) drain_deadline: Option<Instant>,
    pub(super) hold: Option<HoldOp>,
    pub(super) reoffer: Option<ReofferOp>,
    pub(super) transfer: Option<TransferOp>,
    /// The caller was told a callee is alerting / was given early media.
    pub(super) told_ringing: bool,
    pub(super) told_early: bool,
    /// The call-level hold state last reported (`CallEvent::Hold`).
    pub(super) reported_hold: bool,
    pub(super) rng: u64,
}

impl Call {
    /// A call from `caller` (who offers `offer`) to `callees`, rung at once. The caller is
    /// `LegId::CALLER`, the callees `LegId(1)`, `LegId(2)`, … in order. With no callee the
    /// call ends at once as `NobodyAvailable`.
    pub fn new(config: CallConfig, caller: LegKind, offer: SessionDesc, callees: &[LegKind], now: Instant) -> Call {
        let leg = |kind| Leg { kind, state: LegState::Offered, detached_until: None, holds: false, held_by_peer: false, ended_with: None };
        let mut legs = vec![leg(caller)];
        legs.extend(callees.iter().take(MAX_CALLEES).map(|kind| leg(*kind)));
        let mut call = Call {
            config,
            legs,
            phase: Phase::Ringing,
            commands: VecDeque::new(),
            events: VecDeque::new(),
            ring_deadline: config.ring_timeout.map(|ring| now + ring),
            // Also while ringing: a leg that never reports cannot keep the call for ever.
            duration_deadline: Some(now + config.max_duration),
            drain_deadline: None,
            hold: None,
            reoffer: None,
            transfer: None,
            told_ringing: false,
            told_early: false,
            reported_hold: false,
            rng: config.seed | 1,
        };
        if call.legs.len() == 1 {
            call.end(EndReason::NobodyAvailable, None, now);
        }
        for callee in call.callees() {
            call.command(callee, LegAction::Ring { offer: offer.clone() });
        }
        call
    }

    pub fn caller(&self) -> LegId {
        LegId::CALLER
    }

    pub fn callees(&self) -> impl Iterator<Item = LegId> {
        (1..self.legs.len()).filter_map(|i| u8::try_from(i).ok()).map(LegId)
    }

    pub fn kind(&self, leg: LegId) -> Option<LegKind> {
        self.legs.get(leg.index()).map(|l| l.kind)
    }

    pub fn is_answered(&self) -> bool {
        matches!(self.phase, Phase::Answered { .. })
    }

    pub fn is_ended(&self) -> bool {
        self.phase == Phase::Ended
    }

    /// The answering callee, once one has answered.
    pub fn winner(&self) -> Option<LegId> {
        match self.phase {
            Phase::Answering { callee } | Phase::Answered { callee, .. } => Some(callee),
            Phase::Ringing | Phase::Ended => None,
        }
    }

    /// Either side holds the other, as last agreed (a hold under way does not count).
    pub fn on_hold(&self) -> bool {
        self.legs.iter().any(|l| l.state != LegState::Gone && (l.holds || l.held_by_peer))
    }

    pub fn poll_command(&mut self) -> Option<LegCommand> {
        self.commands.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<CallEvent> {
        self.events.pop_front()
    }

    /// Ends the call now for `reason`, on the gateway's behalf (an internal failure, an admin).
    pub fn abort(&mut self, reason: EndReason, now: Instant) {
        self.end(reason, None, now);
    }

    /// One report from a leg. Reports from a leg that has left, or after the end, only get
    /// their requests refused (and a callee that answers after its cancel is hung up).
    pub fn handle(&mut self, event: LegEvent, now: Instant) {
        let LegEvent { leg, input } = event;
        let Some(state) = self.legs.get(leg.index()).map(|l| l.state) else { return };
        if state == LegState::Gone {
            return self.late(leg, input);
        }
        match input {
            LegInput::Ringing => self.on_ringing(leg),
            LegInput::EarlyMedia { answer } => self.on_early_media(leg, answer),
            LegInput::Answered { answer, tag } => self.on_answered(leg, answer, tag, now),
            LegInput::AnswerDelivered => self.on_answer_delivered(leg, now),
            LegInput::Rejected { reason, tag } => {
                self.reply(leg, tag, Ok(()));
                self.on_leg_left(leg, reason, now);
            }
            LegInput::HungUp { tag } => self.on_hung_up(leg, tag, now),
            LegInput::Ended { reason } => self.on_leg_left(leg, reason, now),
            LegInput::Challenged => self.events.push_back(CallEvent::Challenged { leg }),
            LegInput::Dtmf { digits, duration_ms, tag } => self.on_dtmf(leg, digits, duration_ms, tag),
            LegInput::HoldRequest { hold, tag } => self.on_hold_request(leg, hold, tag),
            LegInput::HoldResult { result } => self.on_hold_result(leg, result, now),
            LegInput::Reoffer { offer, hold } => self.on_reoffer(leg, offer, hold),
            LegInput::ReofferAnswer { result } => self.on_reoffer_answer(leg, result),
            LegInput::TransferRequest { target, tag } => self.on_transfer_request(leg, target, tag),
            LegInput::TransferResult { result } => self.on_transfer_result(leg, result),
            LegInput::Transferred => self.on_transferred(leg, now),
            LegInput::Detached => self.on_detached(leg, now),
            LegInput::Reattached { tag } => self.on_reattached(leg, tag),
            LegInput::MediaTimeout { silent_for } => self.on_media_timeout(leg, silent_for, now),
        }
    }

    /// A report from a leg that is gone: requests are refused, and a callee whose answer
    /// crossed its cancel (a SIP 200 crossing CANCEL) is hung up.
    fn late(&mut self, leg: LegId, input: LegInput) {
        let ended_with = self.legs[leg.index()].ended_with.clone().unwrap_or(EndReason::Shutdown);
        let refusal = match ended_with {
            EndReason::AnsweredElsewhere => RequestError::AnsweredElsewhere,
            _ => RequestError::CallEnded,
        };
        match input {
            LegInput::Answered { tag, .. } => {
                self.reply(leg, tag, Err(refusal));
                self.command(leg, LegAction::Hangup { reason: ended_with });
            }
            LegInput::Rejected { tag, .. } | LegInput::HungUp { tag } => self.reply(leg, tag, Ok(())),
            LegInput::Dtmf { tag, .. } | LegInput::HoldRequest { tag, .. } | LegInput::TransferRequest { tag, .. } => {
                self.reply(leg, tag, Err(refusal))
            }
            LegInput::Reattached { tag } => self.reply(leg, tag, Err(refusal)),
            _ => {}
        }
    }

    pub(super) fn command(&mut self, leg: LegId, action: LegAction) {
        self.commands.push_back(LegCommand { leg, action });
    }

    pub(super) fn reply(&mut self, leg: LegId, tag: Option<Tag>, result: Result<(), RequestError>) {
        if let Some(tag) = tag {
            self.command(leg, LegAction::Reply { tag, result });
        }
    }

    /// The leg on the other end of the answered (or answering) call from `leg`.
    pub(super) fn other(&self, leg: LegId) -> Option<LegId> {
        let callee = self.winner()?;
        match leg {
            LegId::CALLER => Some(callee),
            _ if leg == callee => Some(LegId::CALLER),
            _ => None,
        }
    }

    /// The end, for every reason and every path: each leg still there is told in the way its
    /// state needs (an answered leg is hung up, an unanswered caller refused, an unanswered
    /// callee cancelled), except `by`, the leg that ended it; every request still open is
    /// refused; the end is reported once.
    pub(super) fn end(&mut self, reason: EndReason, by: Option<LegId>, now: Instant) {
        let answered_since = match self.phase {
            Phase::Ended => return,
            Phase::Answered { since, .. } => Some(since),
            Phase::Ringing | Phase::Answering { .. } => None,
        };
        self.phase = Phase::Ended;
        for index in 0..self.legs.len() {
            let Some(leg) = u8::try_from(index).ok().map(LegId) else { continue };
            let state = self.legs[index].state;
            if state == LegState::Gone {
                continue;
            }
            self.legs[index].state = LegState::Gone;
            self.legs[index].ended_with = Some(reason.clone());
            self.legs[index].detached_until = None;
            if Some(leg) == by {
                continue;
            }
            let action = match (state, leg) {
                (LegState::Answering | LegState::Answered, _) => LegAction::Hangup { reason: reason.clone() },
                (_, LegId::CALLER) => LegAction::Reject { reason: reason.clone() },
                _ => LegAction::Cancel { reason: reason.clone() },
            };
            self.command(leg, action);
        }
        self.refuse_open_requests();
        let by = by.map(|leg| (leg, self.legs[leg.index()].kind));
        let talk_time = answered_since.map(|since| now.saturating_duration_since(since)).unwrap_or_default();
        let end = CallEnd { reason, by, answered: answered_since.is_some(), talk_time };
        self.events.push_back(CallEvent::Ended(end));
        self.ring_deadline = None;
        self.duration_deadline = None;
        self.drain_deadline = None;
    }

    fn refuse_open_requests(&mut self) {
        if let Some(op) = self.hold.take() {
            self.reply(op.from, op.tag, Err(RequestError::CallEnded));
        }
        if let Some(op) = self.transfer.take() {
            self.reply(op.from, op.tag, Err(RequestError::CallEnded));
        }
        self.reoffer = None;
    }
}
