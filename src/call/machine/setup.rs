//! Before the answer: callees alert, offer early media, answer (first one wins), refuse or go
//! away; the caller gives up; and the leaving of a party in any phase.

use super::call::{LegState, Phase};
use super::{Call, CallEvent, EndReason, LegAction, LegId, RequestError, SessionDesc, Tag};
use std::time::Instant;

impl Call {
    pub(super) fn on_ringing(&mut self, leg: LegId) {
        if leg == LegId::CALLER || self.phase != Phase::Ringing {
            return;
        }
        self.legs[leg.index()].state = LegState::Ringing;
        if !self.told_ringing {
            self.told_ringing = true;
            self.events.push_back(CallEvent::Ringing { callee: leg });
            self.command(LegId::CALLER, LegAction::Ringing { early: None });
        }
    }

    /// Early media goes to the caller once: with several callees only the first can be heard.
    pub(super) fn on_early_media(&mut self, leg: LegId, answer: SessionDesc) {
        if leg == LegId::CALLER || self.phase != Phase::Ringing {
            return;
        }
        self.legs[leg.index()].state = LegState::Ringing;
        if !self.told_early {
            self.told_early = true;
            self.told_ringing = true;
            self.events.push_back(CallEvent::EarlyMedia { callee: leg });
            self.command(LegId::CALLER, LegAction::Ringing { early: Some(answer) });
        }
    }

    /// The first callee to answer wins: its `accept` is confirmed, every other callee is
    /// cancelled as answered elsewhere, and the caller is answered with its answer.
    pub(super) fn on_answered(&mut self, leg: LegId, answer: SessionDesc, tag: Option<Tag>, now: Instant) {
        if leg == LegId::CALLER {
            return self.reply(leg, tag, Err(RequestError::NotAllowed));
        }
        if self.phase != Phase::Ringing {
            return self.reply(leg, tag, Err(RequestError::AlreadyAnswered));
        }
        self.reply(leg, tag, Ok(()));
        self.legs[leg.index()].state = LegState::Answered;
        let losers: Vec<LegId> = self.callees().filter(|c| *c != leg && self.legs[c.index()].state != LegState::Gone).collect();
        for loser in losers {
            let reason = EndReason::AnsweredElsewhere;
            self.legs[loser.index()].state = LegState::Gone;
            self.legs[loser.index()].ended_with = Some(reason.clone());
            self.command(loser, LegAction::Cancel { reason });
        }
        self.phase = Phase::Answering { callee: leg };
        self.ring_deadline = None;
        // From the accept, not the delivery: a caller's leg that never reports delivering the
        // answer is still ended in time.
        self.duration_deadline = Some(now + self.config.max_duration);
        self.legs[LegId::CALLER.index()].state = LegState::Answering;
        self.command(LegId::CALLER, LegAction::Answer { answer });
    }

    pub(super) fn on_answer_delivered(&mut self, leg: LegId, now: Instant) {
        let Phase::Answering { callee } = self.phase else { return };
        if leg != LegId::CALLER {
            return;
        }
        self.legs[leg.index()].state = LegState::Answered;
        self.phase = Phase::Answered { callee, since: now };
        self.events.push_back(CallEvent::Answered { callee });
    }

    /// The party behind `leg` hung up: before the answer the caller cancels and a callee
    /// declines (docs/signaling.md: `hangup` on a ringing call declines it); after it, the call
    /// ends normally.
    pub(super) fn on_hung_up(&mut self, leg: LegId, tag: Option<Tag>, now: Instant) {
        self.reply(leg, tag, Ok(()));
        let kind = self.legs[leg.index()].kind;
        match (self.phase, leg) {
            (Phase::Ringing | Phase::Answering { .. }, LegId::CALLER) => self.end(EndReason::Cancelled, Some(leg), now),
            (Phase::Ringing, _) => self.on_leg_left(leg, EndReason::Declined, now),
            _ => self.end(EndReason::Hangup { by: kind }, Some(leg), now),
        }
    }

    /// `leg` refused, failed or went away for `reason`. A ringing callee just leaves the ring,
    /// and the call ends once nobody is left ringing; anyone else ends the call.
    pub(super) fn on_leg_left(&mut self, leg: LegId, reason: EndReason, now: Instant) {
        if leg == LegId::CALLER || self.phase != Phase::Ringing {
            return self.end(reason, Some(leg), now);
        }
        self.legs[leg.index()].state = LegState::Gone;
        self.legs[leg.index()].ended_with = Some(reason);
        if self.callees().all(|c| self.legs[c.index()].state == LegState::Gone) {
            let reason = self.refusal();
            self.end(reason, Some(leg), now);
        }
    }

    /// What the callees' refusals add up to: a busy device makes the call busy (a PBX may
    /// route busy to voicemail), else a decline declines it; a single callee's reason stands
    /// as it is; devices that merely went away or failed leave nobody to answer.
    fn refusal(&self) -> EndReason {
        let reasons: Vec<&EndReason> = self.callees().filter_map(|c| self.legs[c.index()].ended_with.as_ref()).collect();
        if let [only] = reasons.as_slice() {
            return (*only).clone();
        }
        if reasons.contains(&&EndReason::Busy) {
            return EndReason::Busy;
        }
        if reasons.contains(&&EndReason::Declined) {
            return EndReason::Declined;
        }
        let definite = |r: &&&EndReason| !matches!(r, EndReason::LegGone { .. } | EndReason::LegFailed { .. } | EndReason::NobodyAvailable);
        reasons.iter().find(definite).map(|r| (*r).clone()).unwrap_or(EndReason::NobodyAvailable)
    }

    /// A leg's connection dropped. Before the answer there is nobody to wait for: a ringing
    /// callee leaves the ring and a caller ends the call. After it, the call waits out the
    /// reclaim grace period (none configured: it ends now).
    pub(super) fn on_detached(&mut self, leg: LegId, now: Instant) {
        let kind = self.legs[leg.index()].kind;
        let gone = EndReason::LegGone { kind };
        if self.phase == Phase::Ringing || self.config.reclaim_grace.is_zero() {
            return self.on_leg_left(leg, gone, now);
        }
        if self.legs[leg.index()].detached_until.is_some() {
            return;
        }
        let until = now + self.config.reclaim_grace;
        self.legs[leg.index()].detached_until = Some(until);
        self.events.push_back(CallEvent::Detached { leg, until });
    }

    /// The party came back within the grace period: it is told what it missed that still
    /// holds (the other side's hold).
    pub(super) fn on_reattached(&mut self, leg: LegId, tag: Option<Tag>) {
        self.reply(leg, tag, Ok(()));
        if self.legs[leg.index()].detached_until.take().is_none() {
            return;
        }
        self.events.push_back(CallEvent::Reattached { leg });
        let held = self.other(leg).is_some_and(|other| self.legs[other.index()].held_by_peer);
        if held {
            self.command(leg, LegAction::RemoteHold { on_hold: true });
        }
    }
}
