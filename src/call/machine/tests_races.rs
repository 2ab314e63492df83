//! Races, made deterministic: the order events reach the call is the whole test. Also the
//! graceful drain and the auth outcome.

use super::tests::{config, desc, Rig, BROWSER, SIP};
use super::*;
use crate::signaling::HangupReason;
use crate::store::CallStatus;
use std::time::Duration;

fn reply(leg: u8, tag: u64, result: Result<(), RequestError>) -> (u8, LegAction) {
    (leg, LegAction::Reply { tag: Tag(tag), result })
}

/// The browser accepted and our 200 went to the SIP leg, but the caller's CANCEL got there
/// first: the 200 never left, so the call was never answered and the browser is hung up.
#[test]
fn cancel_crossing_the_200_ends_the_call_cancelled_and_hangs_up_the_browser() {
    let mut rig = Rig::inbound(1);
    rig.send(1, LegInput::Answered { answer: desc("a"), tag: Some(Tag(1)) });
    assert_eq!(rig.commands().last(), Some(&(0, LegAction::Answer { answer: desc("a") })));
    rig.send(0, LegInput::HungUp { tag: None });
    rig.send(0, LegInput::AnswerDelivered);
    assert_eq!(rig.commands(), vec![(1, LegAction::Hangup { reason: EndReason::Cancelled })]);
    let end = rig.ended();
    assert!(!end.answered, "the answer never reached the caller");
    assert_eq!(mapping::record(&end).status, CallStatus::Cancelled);
}

/// The browser hung up and we sent CANCEL, but the peer's 200 crossed it: the leg must end
/// that dialog with BYE.
#[test]
fn a_200_crossing_our_cancel_is_hung_up() {
    let mut rig = Rig::outbound();
    rig.send(0, LegInput::HungUp { tag: None });
    assert_eq!(rig.commands(), vec![(1, LegAction::Cancel { reason: EndReason::Cancelled })]);
    rig.send(1, LegInput::Answered { answer: desc("200"), tag: None });
    assert_eq!(rig.commands(), vec![(1, LegAction::Hangup { reason: EndReason::Cancelled })]);
    assert_eq!(rig.ended().reason, EndReason::Cancelled);
}

/// Our hold re-INVITE is out when the peer's BYE arrives: the call ends, and the browser's
/// hold request is answered all the same.
#[test]
fn bye_during_our_reinvite_ends_the_call_and_answers_the_pending_hold() {
    let mut rig = Rig::answered_inbound(1);
    rig.send(1, LegInput::HoldRequest { hold: true, tag: Some(Tag(4)) });
    rig.commands();
    rig.send(0, LegInput::HungUp { tag: None });
    rig.send(0, LegInput::HoldResult { result: Err(HoldFailure::Refused("481".into())) });
    assert_eq!(rig.commands(), vec![(1, LegAction::Hangup { reason: EndReason::Hangup { by: SIP } }), reply(1, 4, Err(RequestError::CallEnded))]);
    assert_eq!(rig.ended().reason, EndReason::Hangup { by: SIP });
}

#[test]
fn accept_from_two_tabs_in_the_same_instant_answers_once() {
    let mut rig = Rig::inbound(2);
    rig.send(1, LegInput::Answered { answer: desc("tab 1"), tag: Some(Tag(1)) });
    rig.send(2, LegInput::Answered { answer: desc("tab 2"), tag: Some(Tag(2)) });
    assert_eq!(
        rig.commands(),
        vec![
            reply(1, 1, Ok(())),
            (2, LegAction::Cancel { reason: EndReason::AnsweredElsewhere }),
            (0, LegAction::Answer { answer: desc("tab 1") }),
            reply(2, 2, Err(RequestError::AnsweredElsewhere)),
            (2, LegAction::Hangup { reason: EndReason::AnsweredElsewhere }),
        ]
    );
    assert_eq!(rig.call.winner(), Some(LegId(1)));
    assert_eq!(mapping::request_error(&RequestError::AnsweredElsewhere).0, crate::signaling::ErrorCode::UnknownCall);
}

#[test]
fn accept_after_cancel_is_refused_as_ended() {
    let mut rig = Rig::inbound(1);
    rig.send(0, LegInput::HungUp { tag: None });
    rig.commands();
    rig.send(1, LegInput::Answered { answer: desc("late"), tag: Some(Tag(5)) });
    assert_eq!(rig.commands(), vec![reply(1, 5, Err(RequestError::CallEnded)), (1, LegAction::Hangup { reason: EndReason::Cancelled })]);
    assert_eq!(rig.ended().reason, EndReason::Cancelled);
}

/// Both sides re-INVITE at once: each refuses the other's with 491 and ours is tried again
/// after RFC 3261's random pause (0 to 2 s: the SIP caller chose the Call-ID).
#[test]
fn a_491_glare_on_hold_retries_after_a_random_pause() {
    let mut rig = Rig::answered_inbound(1);
    rig.send(1, LegInput::HoldRequest { hold: true, tag: Some(Tag(1)) });
    rig.send(0, LegInput::Reoffer { offer: desc("peer's"), hold: false });
    assert_eq!(rig.commands(), vec![(0, LegAction::Hold { hold: true }), (0, LegAction::RefuseReoffer { refusal: ReofferRefusal::Glare })]);
    rig.send(0, LegInput::HoldResult { result: Err(mapping::hold_failure_of_sip_status(491)) });
    assert!(rig.commands().is_empty(), "no reply yet: it will be tried again");
    let retry_at = rig.call.poll_timeout().expect("a retry is due");
    assert!(retry_at > rig.now && retry_at <= rig.now + Duration::from_secs(2), "0 to 2 s");
    // The peer's own retry arrives first and is answered normally meanwhile.
    rig.send(0, LegInput::Reoffer { offer: desc("peer's again"), hold: false });
    rig.send(1, LegInput::ReofferAnswer { result: Ok(desc("answer")) });
    assert_eq!(rig.commands().len(), 2);
    rig.advance(retry_at - rig.now);
    assert_eq!(rig.commands(), vec![(0, LegAction::Hold { hold: true })]);
    rig.send(0, LegInput::HoldResult { result: Ok(()) });
    assert_eq!(rig.commands(), vec![reply(1, 1, Ok(()))]);
    assert!(rig.call.on_hold());
}

#[test]
fn glare_against_a_sip_callee_waits_two_to_four_seconds_and_gives_up_after_three() {
    let mut rig = Rig::answered_outbound();
    rig.send(0, LegInput::HoldRequest { hold: true, tag: Some(Tag(1)) });
    for _ in 0..2 {
        rig.send(1, LegInput::HoldResult { result: Err(HoldFailure::Glare) });
        let wait = rig.call.poll_timeout().expect("retry") - rig.now;
        assert!(wait >= Duration::from_millis(2_100) && wait <= Duration::from_secs(4), "{wait:?}");
        rig.advance(wait);
    }
    rig.send(1, LegInput::HoldResult { result: Err(HoldFailure::Glare) });
    let last = rig.commands().pop();
    assert!(matches!(last, Some((0, LegAction::Reply { result: Err(RequestError::Refused(_)), .. }))), "{last:?}");
}

#[test]
fn a_hold_asked_while_the_peers_offer_is_being_answered_goes_after_it() {
    let mut rig = Rig::answered_inbound(1);
    rig.send(0, LegInput::Reoffer { offer: desc("codec"), hold: false });
    rig.send(1, LegInput::HoldRequest { hold: true, tag: Some(Tag(2)) });
    assert_eq!(rig.commands(), vec![(1, LegAction::Reoffer { offer: desc("codec") })], "one offer at a time");
    rig.send(1, LegInput::ReofferAnswer { result: Ok(desc("ok")) });
    assert_eq!(rig.commands(), vec![(0, LegAction::AnswerReoffer { answer: desc("ok") }), (0, LegAction::Hold { hold: true })]);
}

#[test]
fn reclaim_after_the_grace_period_expired_is_refused_and_the_call_ended() {
    let mut rig = Rig::answered_inbound(1);
    rig.send(1, LegInput::Detached);
    rig.advance(Duration::from_secs(30));
    assert_eq!(rig.commands(), vec![(0, LegAction::Hangup { reason: EndReason::LegGone { kind: BROWSER } })]);
    let end = rig.ended();
    assert_eq!(end.by, Some((LegId(1), BROWSER)));
    assert_eq!(mapping::record(&end).side, crate::store::HangupSide::Browser);
    rig.send(1, LegInput::Reattached { tag: Some(Tag(7)) });
    assert_eq!(rig.commands(), vec![reply(1, 7, Err(RequestError::CallEnded))]);
}

/// The same 30 s of silence: ends a call not on hold, is stale on hold (the media session
/// measured it before the hold reached it), and the hold limit ends a held call.
#[test]
fn a_media_timeout_during_hold_uses_the_hold_limit_and_outside_it_the_normal_one() {
    let thirty = Duration::from_secs(30);
    let mut rig = Rig::answered_inbound(1);
    rig.send(1, LegInput::HoldRequest { hold: true, tag: None });
    rig.commands();
    rig.send(1, LegInput::MediaTimeout { silent_for: thirty });
    let reason = EndReason::MediaTimeout { kind: BROWSER, silent_for: thirty, on_hold: false };
    assert_eq!(rig.ended().reason, reason, "a hold under way is not a hold yet");

    let mut rig = Rig::answered_inbound(1);
    rig.send(0, LegInput::Reoffer { offer: desc("sendonly"), hold: true });
    rig.send(1, LegInput::ReofferAnswer { result: Ok(desc("recvonly")) });
    rig.commands();
    rig.events();
    rig.send(0, LegInput::MediaTimeout { silent_for: thirty });
    assert!(rig.commands().is_empty() && !rig.call.is_ended(), "stale on hold");
    rig.send(0, LegInput::MediaTimeout { silent_for: Duration::from_secs(600) });
    let reason = EndReason::MediaTimeout { kind: SIP, silent_for: Duration::from_secs(600), on_hold: true };
    assert_eq!(rig.commands(), vec![(0, LegAction::Hangup { reason: reason.clone() }), (1, LegAction::Hangup { reason: reason.clone() })]);
    assert!(mapping::browser_hangup(&reason).1.ends_with("for 600 s while on hold"));
}

#[test]
fn silence_before_the_answer_is_early_media_and_ends_nothing() {
    let mut rig = Rig::outbound();
    rig.send(1, LegInput::EarlyMedia { answer: desc("183") });
    rig.send(1, LegInput::MediaTimeout { silent_for: Duration::from_secs(45) });
    assert!(!rig.call.is_ended());
}

/// The SIP leg answers one challenge itself; the call only notes it. A second 401 arrives as
/// the leg's refusal and ends the call as an authentication failure.
#[test]
fn a_401_answered_then_a_second_401_ends_the_call_as_auth_failed() {
    let mut rig = Rig::outbound();
    rig.send(1, LegInput::Challenged);
    assert!(rig.commands().is_empty());
    assert_eq!(rig.events(), vec![CallEvent::Challenged { leg: LegId(1) }]);
    rig.send(1, LegInput::Rejected { reason: mapping::end_reason_of_sip_failure(401), tag: None });
    assert_eq!(rig.commands(), vec![(0, LegAction::Reject { reason: EndReason::AuthFailed })]);
    let end = rig.ended();
    let (reason, cause) = mapping::browser_hangup(&end.reason);
    assert_eq!((reason, cause.as_str()), (HangupReason::Forbidden, "authentication failed at the peer"));
    assert_eq!(mapping::record(&end).status, CallStatus::Failed);
}

#[test]
fn shutdown_ends_a_ringing_call_at_once() {
    let mut rig = Rig::inbound(2);
    rig.call.shutdown(rig.now);
    let cancel = |leg| (leg, LegAction::Cancel { reason: EndReason::Shutdown });
    assert_eq!(rig.commands(), vec![(0, LegAction::Reject { reason: EndReason::Shutdown }), cancel(1), cancel(2)]);
    assert_eq!(mapping::sip_status(&EndReason::Shutdown).code, 503);
    assert_eq!(mapping::browser_hangup(&EndReason::Shutdown), (HangupReason::Shutdown, mapping::SHUTDOWN_CAUSE.to_string()));
    assert_eq!(rig.ended().by, None);
}

#[test]
fn shutdown_lets_an_answered_call_run_until_the_drain_deadline() {
    let mut rig = Rig::answered_outbound();
    rig.call.shutdown(rig.now);
    let deadline = rig.now + config().drain;
    assert_eq!(rig.events(), vec![CallEvent::Draining { deadline }]);
    assert_eq!(rig.call.poll_timeout(), Some(deadline));
    rig.advance(config().drain - Duration::from_secs(1));
    assert!(rig.call.is_answered() && rig.commands().is_empty());
    rig.advance(Duration::from_secs(1));
    let hangup = LegAction::Hangup { reason: EndReason::Shutdown };
    assert_eq!(rig.commands(), vec![(0, hangup.clone()), (1, hangup)]);
    assert_eq!(mapping::record(&rig.ended()).status, CallStatus::Answered, "drained, not failed");
}

#[test]
fn a_second_shutdown_ends_a_draining_call_at_once() {
    let mut rig = Rig::answered_inbound(1);
    rig.call.shutdown(rig.now);
    rig.advance(Duration::from_secs(5));
    rig.call.shutdown(rig.now);
    assert_eq!(rig.commands().len(), 2);
    assert_eq!(rig.ended().reason, EndReason::Shutdown);
}

#[test]
fn nothing_but_refusals_follows_the_end() {
    let mut rig = Rig::answered_inbound(1);
    rig.send(0, LegInput::HungUp { tag: None });
    rig.commands();
    rig.ended();
    rig.send(1, LegInput::Dtmf { digits: "1".into(), duration_ms: 100, tag: Some(Tag(1)) });
    rig.send(1, LegInput::HungUp { tag: Some(Tag(2)) });
    rig.send(0, LegInput::Reoffer { offer: desc("x"), hold: false });
    rig.call.shutdown(rig.now);
    rig.advance(Duration::from_secs(10_000));
    assert_eq!(rig.commands(), vec![reply(1, 1, Err(RequestError::CallEnded)), reply(1, 2, Ok(()))]);
    assert!(rig.events().is_empty() && rig.call.poll_timeout().is_none());
}

/// The peer's re-INVITE was handed to the browser leg, and the browser hangs up before it is
/// answered: the SIP leg gets BYE (it ends the open re-INVITE with it), and the browser leg's
/// late answer is dropped.
#[test]
fn a_hangup_while_the_peers_reoffer_is_being_answered_ends_the_call_cleanly() {
    let mut rig = Rig::answered_inbound(1);
    rig.send(0, LegInput::Reoffer { offer: desc("pcma"), hold: false });
    rig.commands();
    rig.send(1, LegInput::HungUp { tag: None });
    rig.send(1, LegInput::ReofferAnswer { result: Ok(desc("late")) });
    assert_eq!(rig.commands(), vec![(0, LegAction::Hangup { reason: EndReason::Hangup { by: BROWSER } })]);
    assert_eq!(rig.ended().by, Some((LegId(1), BROWSER)));
}

/// Between the accept and the caller's leg delivering the answer the call counts as answered
/// for the drain: it runs on to the deadline rather than being refused.
#[test]
fn shutdown_while_the_answer_is_on_its_way_drains_like_an_answered_call() {
    let mut rig = Rig::inbound(1);
    rig.send(1, LegInput::Answered { answer: desc("a"), tag: None });
    rig.commands();
    rig.call.shutdown(rig.now);
    assert!(rig.call.is_draining() && rig.commands().is_empty());
    rig.send(0, LegInput::AnswerDelivered);
    assert!(rig.call.is_answered());
    rig.advance(config().drain);
    let hangup = LegAction::Hangup { reason: EndReason::Shutdown };
    assert_eq!(rig.commands(), vec![(0, hangup.clone()), (1, hangup)]);
}

/// The NOTIFY saying the target answered can arrive before the REFER's 202: the browser's
/// `transfer` is answered `ok` before the call ends.
#[test]
fn a_notify_overtaking_the_refers_answer_still_answers_the_transfer() {
    let mut rig = Rig::answered_inbound(1);
    rig.send(1, LegInput::TransferRequest { target: "1002".into(), tag: Some(Tag(3)) });
    rig.commands();
    rig.send(0, LegInput::Transferred);
    let commands = rig.commands();
    assert_eq!(commands[0], reply(1, 3, Ok(())));
    assert_eq!(rig.ended().reason, EndReason::Transferred);
}

/// A call that ends while a leg waits for its reclaim must not keep that timer: a driver
/// sleeping until `poll_timeout` would spin on it.
#[test]
fn a_call_ending_while_a_leg_is_detached_wants_no_more_timers() {
    let mut rig = Rig::answered_inbound(1);
    rig.send(1, LegInput::Detached);
    rig.send(0, LegInput::HungUp { tag: None });
    rig.ended();
    assert_eq!(rig.call.poll_timeout(), None);
}

/// Legs that never report again (a lost event, a stuck peer) cannot keep a call for ever: the
/// maximum duration runs from the start while ringing, and from the accept after it.
#[test]
fn no_call_outlives_the_maximum_duration_whatever_its_legs_fail_to_report() {
    let hour = config().max_duration;
    let mut rig = Rig::new(CallConfig { ring_timeout: None, ..config() }, BROWSER, &[SIP]);
    rig.advance(hour);
    assert_eq!(rig.ended().reason, EndReason::MaxDuration);

    let mut rig = Rig::inbound(1);
    rig.advance(Duration::from_secs(30));
    rig.send(1, LegInput::Answered { answer: desc("a"), tag: None });
    rig.commands();
    rig.advance(hour);
    assert_eq!(rig.commands(), vec![(0, LegAction::Hangup { reason: EndReason::MaxDuration }), (1, LegAction::Hangup { reason: EndReason::MaxDuration })]);
    assert!(!rig.ended().answered, "the answer never reached the caller");
}
