//! `Call` on a manual clock: no sockets, no tokio. This file holds the rig the other test files
//! share, and the flows before the answer.

use super::*;
use std::time::{Duration, Instant};

pub(super) const SIP: LegKind = LegKind::Sip;
pub(super) const BROWSER: LegKind = LegKind::Browser;

pub(super) fn desc(text: &str) -> SessionDesc {
    SessionDesc::new(text)
}

pub(super) fn config() -> CallConfig {
    CallConfig {
        ring_timeout: Some(Duration::from_secs(60)),
        max_duration: Duration::from_secs(3_600),
        reclaim_grace: Duration::from_secs(30),
        rtp_timeout: Duration::from_secs(30),
        rtp_hold_timeout: Duration::from_secs(600),
        drain: Duration::from_secs(120),
        seed: 42,
    }
}

/// A call and the clock it runs on.
pub(super) struct Rig {
    pub call: Call,
    pub now: Instant,
    pub t0: Instant,
}

impl Rig {
    pub fn new(config: CallConfig, caller: LegKind, callees: &[LegKind]) -> Rig {
        let t0 = Instant::now();
        let call = Call::new(config, caller, desc("caller-offer"), callees, t0);
        Rig { call, now: t0, t0 }
    }

    /// A SIP caller ringing `browsers` devices, the ring commands already taken.
    pub fn inbound(browsers: usize) -> Rig {
        let mut rig = Rig::new(config(), SIP, &vec![BROWSER; browsers]);
        rig.commands();
        rig
    }

    /// A browser calling SIP, the INVITE already taken.
    pub fn outbound() -> Rig {
        let mut rig = Rig::new(config(), BROWSER, &[SIP]);
        rig.commands();
        rig
    }

    /// An inbound call answered by browser 1 of `browsers` (caller leg 0 is SIP), with every
    /// command and event so far taken.
    pub fn answered_inbound(browsers: usize) -> Rig {
        let mut rig = Rig::inbound(browsers);
        rig.send(1, LegInput::Ringing);
        rig.send(1, LegInput::Answered { answer: desc("browser-answer"), tag: Some(Tag(1)) });
        rig.send(0, LegInput::AnswerDelivered);
        rig.commands();
        rig.events();
        rig
    }

    /// An outbound call the SIP side (leg 1) answered, everything so far taken.
    pub fn answered_outbound() -> Rig {
        let mut rig = Rig::outbound();
        rig.send(1, LegInput::Answered { answer: desc("sip-answer"), tag: None });
        rig.send(0, LegInput::AnswerDelivered);
        rig.commands();
        rig.events();
        rig
    }

    pub fn send(&mut self, leg: u8, input: LegInput) {
        self.call.handle(LegEvent::new(LegId(leg), input), self.now);
    }

    /// Moves the clock on by `by`, running every timeout due on the way, as a driver sleeping
    /// until `poll_timeout` would.
    pub fn advance(&mut self, by: Duration) {
        let target = self.now + by;
        while let Some(at) = self.call.poll_timeout().filter(|at| *at <= target) {
            self.now = self.now.max(at);
            self.call.handle_timeout(self.now);
            if self.call.poll_timeout() == Some(at) {
                break;
            }
        }
        self.now = target;
        self.call.handle_timeout(self.now);
    }

    pub fn commands(&mut self) -> Vec<(u8, LegAction)> {
        std::iter::from_fn(|| self.call.poll_command()).map(|c| (c.leg.0, c.action)).collect()
    }

    pub fn events(&mut self) -> Vec<CallEvent> {
        std::iter::from_fn(|| self.call.poll_event()).collect()
    }

    /// The call's end, which must have been reported exactly once among the pending events.
    pub fn ended(&mut self) -> CallEnd {
        let ends: Vec<CallEnd> = self.events().into_iter().filter_map(|e| if let CallEvent::Ended(end) = e { Some(end) } else { None }).collect();
        assert_eq!(ends.len(), 1, "exactly one end: {ends:?}");
        assert!(self.call.is_ended());
        ends.into_iter().next().expect("one end")
    }
}

#[test]
fn ringing_every_browser_rings_each_and_tells_the_sip_caller_once() {
    let mut rig = Rig::new(config(), SIP, &[BROWSER, BROWSER, BROWSER]);
    let ring = |leg| (leg, LegAction::Ring { offer: desc("caller-offer") });
    assert_eq!(rig.commands(), vec![ring(1), ring(2), ring(3)]);
    rig.send(2, LegInput::Ringing);
    rig.send(1, LegInput::Ringing);
    assert_eq!(rig.commands(), vec![(0, LegAction::Ringing { early: None })], "one 180 however many ring");
    assert_eq!(rig.events(), vec![CallEvent::Ringing { callee: LegId(2) }]);
}

#[test]
fn the_first_accept_wins_and_the_other_browsers_get_answered_elsewhere() {
    let mut rig = Rig::inbound(3);
    rig.send(3, LegInput::Answered { answer: desc("answer-3"), tag: Some(Tag(7)) });
    let cancel = |leg| (leg, LegAction::Cancel { reason: EndReason::AnsweredElsewhere });
    assert_eq!(
        rig.commands(),
        vec![(3, LegAction::Reply { tag: Tag(7), result: Ok(()) }), cancel(1), cancel(2), (0, LegAction::Answer { answer: desc("answer-3") })]
    );
    assert_eq!(rig.call.winner(), Some(LegId(3)));
}

#[test]
fn the_call_is_answered_only_once_the_callers_leg_delivered_the_answer() {
    let mut rig = Rig::inbound(1);
    rig.send(1, LegInput::Answered { answer: desc("a"), tag: None });
    assert!(!rig.call.is_answered());
    assert!(rig.events().is_empty());
    rig.send(0, LegInput::AnswerDelivered);
    assert!(rig.call.is_answered());
    assert_eq!(rig.events(), vec![CallEvent::Answered { callee: LegId(1) }]);
}

#[test]
fn a_call_for_a_user_with_no_browser_is_refused_at_once() {
    let mut rig = Rig::new(config(), SIP, &[]);
    assert_eq!(rig.commands(), vec![(0, LegAction::Reject { reason: EndReason::NobodyAvailable })]);
    let end = rig.ended();
    assert_eq!(mapping::record(&end).sip_status, Some(480));
    assert_eq!(mapping::record(&end).status, crate::store::CallStatus::Missed);
}

#[test]
fn every_browser_rejecting_declines_the_call_and_one_busy_makes_it_busy() {
    let mut rig = Rig::inbound(2);
    rig.send(1, LegInput::Rejected { reason: EndReason::Declined, tag: Some(Tag(1)) });
    assert_eq!(rig.commands(), vec![(1, LegAction::Reply { tag: Tag(1), result: Ok(()) })], "one refusal does not end the ring");
    rig.send(2, LegInput::Rejected { reason: EndReason::Declined, tag: None });
    assert_eq!(rig.commands(), vec![(0, LegAction::Reject { reason: EndReason::Declined })]);
    assert_eq!(mapping::sip_status(&rig.ended().reason).code, 603);

    let mut rig = Rig::inbound(2);
    rig.send(1, LegInput::Rejected { reason: EndReason::Busy, tag: None });
    rig.send(2, LegInput::Rejected { reason: EndReason::Declined, tag: None });
    assert_eq!(rig.commands(), vec![(0, LegAction::Reject { reason: EndReason::Busy })]);
    let end = rig.ended();
    assert_eq!(mapping::sip_status(&end.reason).code, 486);
    assert_eq!(mapping::record(&end).side, crate::store::HangupSide::Browser);
}

#[test]
fn ringing_browsers_that_go_away_leave_the_ring_and_the_last_ends_it_with_480() {
    let mut rig = Rig::inbound(2);
    rig.send(1, LegInput::Detached);
    assert!(rig.commands().is_empty());
    rig.send(2, LegInput::Ended { reason: EndReason::LegFailed { kind: BROWSER, detail: "ICE failed".into() } });
    assert_eq!(rig.commands(), vec![(0, LegAction::Reject { reason: EndReason::NobodyAvailable })]);
    assert_eq!(mapping::sip_status(&rig.ended().reason).code, 480);
}

#[test]
fn a_browser_hangup_on_a_ringing_call_declines_it() {
    let mut rig = Rig::inbound(1);
    rig.send(1, LegInput::HungUp { tag: Some(Tag(4)) });
    assert_eq!(
        rig.commands(),
        vec![(1, LegAction::Reply { tag: Tag(4), result: Ok(()) }), (0, LegAction::Reject { reason: EndReason::Declined })]
    );
}

#[test]
fn the_caller_cancelling_cancels_every_ringing_browser() {
    let mut rig = Rig::inbound(2);
    rig.send(1, LegInput::Ringing);
    rig.commands();
    rig.send(0, LegInput::HungUp { tag: None });
    let cancel = |leg| (leg, LegAction::Cancel { reason: EndReason::Cancelled });
    assert_eq!(rig.commands(), vec![cancel(1), cancel(2)], "no answer goes to the caller that cancelled");
    let end = rig.ended();
    assert_eq!(end.by, Some((LegId(0), SIP)));
    let record = mapping::record(&end);
    assert_eq!((record.status, record.sip_status), (crate::store::CallStatus::Cancelled, Some(487)));
    assert_eq!(mapping::browser_hangup(&end.reason).0, crate::signaling::HangupReason::Cancelled);
}

#[test]
fn nobody_answering_ends_the_call_at_the_ring_timeout() {
    let mut rig = Rig::inbound(2);
    assert_eq!(rig.call.poll_timeout(), Some(rig.t0 + Duration::from_secs(60)));
    rig.advance(Duration::from_secs(59));
    assert!(rig.commands().is_empty());
    rig.advance(Duration::from_secs(1));
    let cancel = |leg| (leg, LegAction::Cancel { reason: EndReason::NoAnswer });
    assert_eq!(rig.commands(), vec![(0, LegAction::Reject { reason: EndReason::NoAnswer }), cancel(1), cancel(2)]);
    let record = mapping::record(&rig.ended());
    assert_eq!((record.status, record.side, record.sip_status), (crate::store::CallStatus::Missed, crate::store::HangupSide::Gateway, Some(480)));
}

#[test]
fn an_outbound_call_rings_the_sip_side_with_the_browsers_offer() {
    let mut rig = Rig::new(config(), BROWSER, &[SIP]);
    assert_eq!(rig.commands(), vec![(1, LegAction::Ring { offer: desc("caller-offer") })]);
    rig.send(1, LegInput::Ringing);
    assert_eq!(rig.commands(), vec![(0, LegAction::Ringing { early: None })]);
}

#[test]
fn early_media_reaches_the_browser_once_then_the_answer() {
    let mut rig = Rig::outbound();
    rig.send(1, LegInput::EarlyMedia { answer: desc("183") });
    rig.send(1, LegInput::EarlyMedia { answer: desc("183 again") });
    rig.send(1, LegInput::Ringing);
    assert_eq!(rig.commands(), vec![(0, LegAction::Ringing { early: Some(desc("183")) })]);
    assert_eq!(rig.events(), vec![CallEvent::EarlyMedia { callee: LegId(1) }]);
    rig.send(1, LegInput::Answered { answer: desc("200"), tag: None });
    assert_eq!(rig.commands(), vec![(0, LegAction::Answer { answer: desc("200") })]);
}

#[test]
fn a_sip_failure_ends_the_browsers_call_with_its_reason() {
    let mut rig = Rig::outbound();
    rig.send(1, LegInput::Rejected { reason: mapping::end_reason_of_sip_failure(486), tag: None });
    assert_eq!(rig.commands(), vec![(0, LegAction::Reject { reason: EndReason::Busy })]);
    let end = rig.ended();
    assert_eq!(mapping::browser_hangup(&end.reason), (crate::signaling::HangupReason::Busy, "busy".to_string()));
    let record = mapping::record(&end);
    assert_eq!((record.status, record.side), (crate::store::CallStatus::Busy, crate::store::HangupSide::Sip));
}

#[test]
fn the_browser_hanging_up_before_the_answer_cancels_the_sip_side() {
    let mut rig = Rig::outbound();
    rig.send(0, LegInput::HungUp { tag: Some(Tag(3)) });
    assert_eq!(
        rig.commands(),
        vec![(0, LegAction::Reply { tag: Tag(3), result: Ok(()) }), (1, LegAction::Cancel { reason: EndReason::Cancelled })]
    );
    assert_eq!(mapping::record(&rig.ended()).status, crate::store::CallStatus::Cancelled);
}

#[test]
fn a_browser_caller_that_goes_away_before_the_answer_cancels_the_sip_side() {
    let mut rig = Rig::outbound();
    rig.send(0, LegInput::Detached);
    assert_eq!(rig.commands(), vec![(1, LegAction::Cancel { reason: EndReason::LegGone { kind: BROWSER } })]);
    let record = mapping::record(&rig.ended());
    assert_eq!((record.status, record.side), (crate::store::CallStatus::Cancelled, crate::store::HangupSide::Browser));
}

#[test]
fn without_a_ring_timeout_the_call_rings_as_long_as_the_callee_does() {
    let mut rig = Rig::new(CallConfig { ring_timeout: None, ..config() }, BROWSER, &[SIP]);
    rig.commands();
    assert_eq!(rig.call.poll_timeout(), Some(rig.t0 + config().max_duration), "only the overall cap");
    rig.advance(Duration::from_secs(600));
    assert!(!rig.call.is_ended());
    rig.send(1, LegInput::Rejected { reason: mapping::end_reason_of_sip_failure(408), tag: None });
    assert_eq!(rig.commands(), vec![(0, LegAction::Reject { reason: EndReason::Unavailable })]);
}
