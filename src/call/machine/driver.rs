//! The seam between `Call` and real legs, kept sans-IO so a driver task stays thin.
//!
//! A leg (`SipLeg` over the SIP core's call API, `BrowserLeg` over one signalling connection,
//! later a SIP-over-WebSocket leg or a leg on another node) implements `CallLeg`: it carries a
//! command out without waiting (anything that needs I/O goes into the leg's own outbox, which
//! the driver flushes with back-pressure), and it hands back what its side reported.
//! `pump` moves both ways until everything is quiet; the driver then flushes the legs' outboxes,
//! writes the call's events to the record, and sleeps until the next input or
//! `Call::poll_timeout`.
//!
//! What the legs do with the commands (the one place they meet the wire is `mapping`):
//! - SIP caller: `Ringing` is `call_ringing`; `Answer` is `call_answer` with the SDP the leg
//!   built, then `AnswerDelivered` (or `HungUp` when the caller's CANCEL got there first);
//!   `Reject` is `call_reject` with `mapping::sip_status` (503 for `Shutdown` with
//!   Retry-After); `Hangup` is BYE. The core's `Ended` is `HungUp` (CANCEL, BYE) or
//!   `Ended { SessionExpired | NoAck }`.
//! - SIP callee: `Ring` places the call; 180/183 are `Ringing`/`EarlyMedia`, 200 `Answered`, a
//!   final failure `Rejected` with `mapping::end_reason_of_sip_failure`; the core answers one
//!   401/407 itself (`Challenged`). `Cancel` is CANCEL, `Hangup` BYE (also for a 200 that
//!   crossed the CANCEL).
//! - Either SIP leg: `Hold` is a re-INVITE (sendonly/sendrecv) whose outcome is `HoldResult`
//!   (`mapping::hold_failure_of_sip_status`); a peer's re-INVITE is `Reoffer { hold }` with the
//!   leg's prepared answer kept until `AnswerReoffer` (then `call_reanswer` and the media
//!   update) or `RefuseReoffer` (`mapping::reoffer_status`); `Transfer` is REFER, and INFO or
//!   RFC 4733 digits are `Dtmf`.
//! - Browser: `Ring` opens the WebRTC leg and sends `incoming`, then `Ringing`; an `accept`
//!   whose SDP the leg cannot apply is refused by the leg and the device keeps ringing, else it
//!   is `Answered` with the request's `Tag`. `Answer` sends `answered` then `AnswerDelivered`.
//!   `Reject`/`Cancel`/`Hangup` send `hangup` with `mapping::browser_hangup` and close the leg;
//!   `Reply` answers the tagged request (`mapping::request_error`) through the connection's
//!   push channel, so the WebSocket task never waits on the call. `Reoffer` is answered at once
//!   (WebRTC is not renegotiated; the media session transcodes), `RemoteHold` and `Dtmf` are
//!   events. A dropped WebSocket is `Detached`, a `reclaim` `Reattached`.
//! - The media session's `Inactive { side }` is `MediaTimeout` on that side's leg.

use super::{Call, CallEvent, LegAction, LegEvent, LegId, LegInput};
use std::time::Instant;

pub trait CallLeg {
    /// Carries out one command for this leg. Never blocks and never drops: a leg that must
    /// send something queues it.
    fn execute(&mut self, action: LegAction, now: Instant);

    /// The next report the leg has for the call, including any that `execute` produced at
    /// once (a browser leg reports `AnswerDelivered` as soon as `answered` is queued).
    fn poll_input(&mut self) -> Option<LegInput>;
}

/// A boxed leg is a leg, so a driver may keep `Vec<Box<dyn CallLeg + Send>>`.
impl<T: CallLeg + ?Sized> CallLeg for Box<T> {
    fn execute(&mut self, action: LegAction, now: Instant) {
        (**self).execute(action, now)
    }

    fn poll_input(&mut self) -> Option<LegInput> {
        (**self).poll_input()
    }
}

/// Rounds after which `pump` stops: only a leg answering every command with a new report for
/// ever would reach it, and the driver then goes on with the next input rather than spin.
const MAX_ROUNDS: usize = 1_000;

/// Hands the call's commands to their legs and the legs' reports to the call until neither has
/// anything left, then returns the call's events in order. `legs[i]` is `LegId(i)`; a command
/// for a leg the driver does not have is dropped (the driver built `legs` from the call).
pub fn pump<L: CallLeg>(call: &mut Call, legs: &mut [L], now: Instant) -> Vec<CallEvent> {
    for _ in 0..MAX_ROUNDS {
        let mut moved = false;
        while let Some(command) = call.poll_command() {
            moved = true;
            if let Some(leg) = legs.get_mut(command.leg.index()) {
                leg.execute(command.action, now);
            }
        }
        for (index, leg) in legs.iter_mut().enumerate() {
            let Ok(id) = u8::try_from(index) else { break };
            while let Some(input) = leg.poll_input() {
                moved = true;
                call.handle(LegEvent::new(LegId(id), input), now);
            }
        }
        if !moved {
            break;
        }
    }
    std::iter::from_fn(|| call.poll_event()).collect()
}
