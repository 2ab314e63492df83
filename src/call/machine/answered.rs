//! After the answer: DTMF, hold and resume either way (with glare), the peer's new offers
//! (codec changes, hold), blind transfer, and media timeouts.

use super::call::{HoldOp, HoldStage, Phase, ReofferOp, TransferOp};
use super::{Call, CallEvent, EndReason, HoldFailure, LegAction, LegId, ReofferRefusal, RequestError, SessionDesc, Tag};
use std::time::{Duration, Instant};

/// Offers that meet glare before a hold gives up.
const MAX_GLARES: u8 = 3;

impl Call {
    /// The other leg of the answered call, or the request refused as not answered yet.
    fn answered_peer(&mut self, leg: LegId, tag: Option<Tag>) -> Option<LegId> {
        let peer = match self.phase {
            Phase::Answered { .. } => self.other(leg),
            _ => None,
        };
        if peer.is_none() {
            self.reply(leg, tag, Err(RequestError::NotAnswered));
        }
        peer
    }

    pub(super) fn on_dtmf(&mut self, leg: LegId, digits: String, duration_ms: u32, tag: Option<Tag>) {
        let Some(peer) = self.answered_peer(leg, tag) else { return };
        self.command(peer, LegAction::Dtmf { digits, duration_ms });
        self.reply(leg, tag, Ok(()));
    }

    /// `leg`'s party asks to hold or resume the other side; answered once the other side's
    /// peer answered (or at once when nothing changes).
    pub(super) fn on_hold_request(&mut self, leg: LegId, hold: bool, tag: Option<Tag>) {
        let Some(peer) = self.answered_peer(leg, tag) else { return };
        if self.hold.is_some() {
            return self.reply(leg, tag, Err(RequestError::InProgress));
        }
        if self.legs[leg.index()].holds == hold {
            return self.reply(leg, tag, Ok(()));
        }
        self.hold = Some(HoldOp { from: leg, tag, hold, glares: 0, stage: HoldStage::Queued });
        self.send_hold(peer);
    }

    /// Sends the waiting hold or resume, unless the other side's own offer is being answered
    /// (one offer at a time: it goes when that one is done).
    pub(super) fn send_hold(&mut self, peer: LegId) {
        if self.reoffer.is_some() {
            return;
        }
        let Some(op) = self.hold.as_mut() else { return };
        if op.stage != HoldStage::Queued {
            return;
        }
        op.stage = HoldStage::Sent;
        let hold = op.hold;
        self.command(peer, LegAction::Hold { hold });
    }

    pub(super) fn on_hold_result(&mut self, leg: LegId, result: Result<(), HoldFailure>, now: Instant) {
        let on_wire = self.hold.as_ref().is_some_and(|op| op.stage == HoldStage::Sent && self.other(op.from) == Some(leg));
        if !on_wire {
            return;
        }
        let Some(mut op) = self.hold.take() else { return };
        match result {
            Ok(()) => {
                self.legs[op.from.index()].holds = op.hold;
                self.reply(op.from, op.tag, Ok(()));
                self.report_hold();
            }
            Err(HoldFailure::Glare) if op.glares + 1 < MAX_GLARES => {
                op.glares += 1;
                op.stage = HoldStage::BackingOff { until: now + self.glare_backoff(leg) };
                self.hold = Some(op);
            }
            Err(HoldFailure::Glare) => self.reply(op.from, op.tag, Err(RequestError::Refused("the far end kept offering at the same time".into()))),
            Err(HoldFailure::Refused(detail)) => self.reply(op.from, op.tag, Err(RequestError::Refused(detail))),
        }
    }

    /// RFC 3261 §14.1: after a 491 the side that chose the dialog's Call-ID waits 2.1 to 4 s,
    /// the other 0 to 2 s, in 10 ms steps. We chose it for the legs we called (callees).
    fn glare_backoff(&mut self, leg: LegId) -> Duration {
        // xorshift64: enough to keep two gateways from retrying in step.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let (base, span) = if leg == LegId::CALLER { (0, 200) } else { (210, 190) };
        Duration::from_millis((base + self.rng % (span + 1)) * 10)
    }

    /// `leg`'s peer offers anew. Refused while our own offer to it is out (glare), before the
    /// answer, or while another offer is being answered; otherwise the other leg answers it.
    pub(super) fn on_reoffer(&mut self, leg: LegId, offer: SessionDesc, hold: bool) {
        let peer = match self.phase {
            Phase::Answered { .. } => self.other(leg),
            _ => None,
        };
        let ours_out = self.hold.as_ref().is_some_and(|op| op.stage == HoldStage::Sent && self.other(op.from) == Some(leg));
        let refusal = match peer {
            _ if ours_out => Some(ReofferRefusal::Glare),
            None => Some(ReofferRefusal::NotNow),
            Some(_) if self.reoffer.is_some() => Some(ReofferRefusal::NotNow),
            Some(_) => None,
        };
        match (refusal, peer) {
            (Some(refusal), _) => self.command(leg, LegAction::RefuseReoffer { refusal }),
            (None, Some(peer)) => {
                self.reoffer = Some(ReofferOp { from: leg, hold });
                self.command(peer, LegAction::Reoffer { offer });
            }
            (None, None) => {}
        }
    }

    /// The other leg answered (or refused) the peer's new offer: the peer gets the answer, and
    /// a change in the peer's hold reaches the other side.
    pub(super) fn on_reoffer_answer(&mut self, leg: LegId, result: Result<SessionDesc, ReofferRefusal>) {
        if self.reoffer.as_ref().map(|op| self.other(op.from)) != Some(Some(leg)) {
            return;
        }
        let Some(op) = self.reoffer.take() else { return };
        match result {
            Ok(answer) => {
                self.command(op.from, LegAction::AnswerReoffer { answer });
                if self.legs[op.from.index()].held_by_peer != op.hold {
                    self.legs[op.from.index()].held_by_peer = op.hold;
                    self.command(leg, LegAction::RemoteHold { on_hold: op.hold });
                    self.report_hold();
                }
            }
            Err(refusal) => self.command(op.from, LegAction::RefuseReoffer { refusal }),
        }
        // A hold asked while this offer was being answered goes now.
        if let Some(peer) = self.hold.as_ref().filter(|h| h.stage == HoldStage::Queued).and_then(|h| self.other(h.from)) {
            self.send_hold(peer);
        }
    }

    pub(super) fn report_hold(&mut self) {
        let on_hold = self.on_hold();
        if on_hold != self.reported_hold {
            self.reported_hold = on_hold;
            self.events.push_back(CallEvent::Hold { on_hold });
        }
    }

    pub(super) fn on_transfer_request(&mut self, leg: LegId, target: String, tag: Option<Tag>) {
        let Some(peer) = self.answered_peer(leg, tag) else { return };
        if self.transfer.is_some() {
            return self.reply(leg, tag, Err(RequestError::InProgress));
        }
        self.transfer = Some(TransferOp { from: leg, tag });
        self.command(peer, LegAction::Transfer { target });
    }

    pub(super) fn on_transfer_result(&mut self, leg: LegId, result: Result<(), String>) {
        if self.transfer.as_ref().map(|op| self.other(op.from)) != Some(Some(leg)) {
            return;
        }
        let Some(op) = self.transfer.take() else { return };
        self.reply(op.from, op.tag, result.map_err(RequestError::Refused));
    }

    /// The transfer target answered: our part is done (RFC 5589 §6), both legs are hung up.
    pub(super) fn on_transferred(&mut self, leg: LegId, now: Instant) {
        if self.is_answered() && self.other(leg).is_some() {
            // The NOTIFY can overtake the REFER's own answer: the transfer happened all the same.
            if let Some(op) = self.transfer.take() {
                self.reply(op.from, op.tag, Ok(()));
            }
            self.end(EndReason::Transferred, None, now);
        }
    }

    /// A leg was silent for `silent_for`. The media session measures against the limit of the
    /// hold state it had; a report measured before a hold took effect can arrive after the
    /// call learnt of it, and is shorter than the hold limit: it is stale and ignored (the
    /// media session restarted its timers when the hold reached it, so a leg that stays
    /// silent is reported again). Before the answer silence means nothing (early media).
    pub(super) fn on_media_timeout(&mut self, leg: LegId, silent_for: Duration, now: Instant) {
        if !self.is_answered() {
            return;
        }
        let on_hold = self.on_hold();
        let limit = if on_hold { self.config.rtp_hold_timeout } else { self.config.rtp_timeout };
        if silent_for < limit {
            return;
        }
        let kind = self.legs[leg.index()].kind;
        self.end(EndReason::MediaTimeout { kind, silent_for, on_hold }, None, now);
    }
}
