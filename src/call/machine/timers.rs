//! The clock: ring timeout, maximum duration, reclaim grace, the glare back-off, and the
//! graceful drain.

use super::call::{HoldStage, Phase};
use super::{Call, CallEvent, EndReason, LegId};
use std::time::Instant;

impl Call {
    /// When `handle_timeout` should run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_ended() {
            return None;
        }
        let detached = self.legs.iter().filter_map(|l| l.detached_until);
        let glare = self.hold.as_ref().and_then(|op| op.stage.until());
        [self.ring_deadline, self.duration_deadline, self.drain_deadline, glare].into_iter().flatten().chain(detached).min()
    }

    /// Whatever is due at `now`. Early or repeated calls are harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.is_ended() {
            return;
        }
        let due = |deadline: Option<Instant>| deadline.is_some_and(|at| at <= now);
        if self.phase == Phase::Ringing && due(self.ring_deadline) {
            return self.end(EndReason::NoAnswer, None, now);
        }
        if due(self.duration_deadline) {
            return self.end(EndReason::MaxDuration, None, now);
        }
        if due(self.drain_deadline) {
            return self.end(EndReason::Shutdown, None, now);
        }
        let gone = self.legs.iter().position(|l| due(l.detached_until));
        if let Some(leg) = gone.and_then(|i| u8::try_from(i).ok()).map(LegId) {
            let kind = self.legs[leg.index()].kind;
            return self.end(EndReason::LegGone { kind }, Some(leg), now);
        }
        let retry = self.hold.as_ref().filter(|op| due(op.stage.until())).and_then(|op| self.other(op.from));
        if let Some(peer) = retry {
            if let Some(op) = self.hold.as_mut() {
                op.stage = HoldStage::Queued;
            }
            self.send_hold(peer);
        }
    }

    /// Graceful drain. A call not answered yet ends now (the caller is refused, callees are
    /// cancelled, with `Shutdown`); an answered one goes on until `now + drain` and then ends
    /// the same way. Asking again while draining ends the call at once (a second SIGTERM).
    pub fn shutdown(&mut self, now: Instant) {
        match self.phase {
            Phase::Ended => {}
            Phase::Ringing => self.end(EndReason::Shutdown, None, now),
            Phase::Answering { .. } | Phase::Answered { .. } => {
                if self.drain_deadline.is_some() || self.config.drain.is_zero() {
                    return self.end(EndReason::Shutdown, None, now);
                }
                let deadline = now + self.config.drain;
                self.drain_deadline = Some(deadline);
                self.events.push_back(CallEvent::Draining { deadline });
            }
        }
    }

    /// Draining after `shutdown`.
    pub fn is_draining(&self) -> bool {
        self.drain_deadline.is_some()
    }
}
