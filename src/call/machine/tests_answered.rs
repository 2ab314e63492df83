//! Flows of an answered call: hang-ups, DTMF, hold, new offers, transfer, reclaim, limits.

use super::tests::{desc, Rig, BROWSER, SIP};
use super::*;
use crate::signaling::HangupReason;
use crate::store::{CallStatus, HangupSide};
use std::time::Duration;

fn reply(leg: u8, tag: u64, result: Result<(), RequestError>) -> (u8, LegAction) {
    (leg, LegAction::Reply { tag: Tag(tag), result })
}

#[test]
fn bye_from_the_sip_side_hangs_up_the_browser() {
    let mut rig = Rig::answered_inbound(1);
    rig.advance(Duration::from_secs(90));
    rig.send(0, LegInput::HungUp { tag: None });
    let reason = EndReason::Hangup { by: SIP };
    assert_eq!(rig.commands(), vec![(1, LegAction::Hangup { reason: reason.clone() })]);
    let end = rig.ended();
    assert_eq!((end.answered, end.talk_time), (true, Duration::from_secs(90)));
    assert_eq!(mapping::browser_hangup(&reason).0, HangupReason::Normal);
    let record = mapping::record(&end);
    assert_eq!((record.status, record.side, record.sip_status), (CallStatus::Answered, HangupSide::Sip, None));
}

#[test]
fn the_browser_hanging_up_sends_bye_and_gets_no_hangup_event_itself() {
    let mut rig = Rig::answered_outbound();
    rig.send(0, LegInput::HungUp { tag: Some(Tag(9)) });
    assert_eq!(rig.commands(), vec![reply(0, 9, Ok(())), (1, LegAction::Hangup { reason: EndReason::Hangup { by: BROWSER } })]);
    assert_eq!(mapping::record(&rig.ended()).side, HangupSide::Browser);
}

#[test]
fn dtmf_goes_both_ways_and_is_refused_before_the_answer() {
    let mut early = Rig::outbound();
    early.send(0, LegInput::Dtmf { digits: "1".into(), duration_ms: 100, tag: Some(Tag(1)) });
    assert_eq!(early.commands(), vec![reply(0, 1, Err(RequestError::NotAnswered))]);

    let mut rig = Rig::answered_outbound();
    rig.send(0, LegInput::Dtmf { digits: "12#".into(), duration_ms: 100, tag: Some(Tag(2)) });
    assert_eq!(rig.commands(), vec![(1, LegAction::Dtmf { digits: "12#".into(), duration_ms: 100 }), reply(0, 2, Ok(()))]);
    rig.send(1, LegInput::Dtmf { digits: "5".into(), duration_ms: 160, tag: None });
    assert_eq!(rig.commands(), vec![(0, LegAction::Dtmf { digits: "5".into(), duration_ms: 160 })]);
}

#[test]
fn the_browser_holds_and_resumes_the_sip_side() {
    let mut rig = Rig::answered_inbound(1);
    rig.send(1, LegInput::HoldRequest { hold: true, tag: Some(Tag(5)) });
    assert_eq!(rig.commands(), vec![(0, LegAction::Hold { hold: true })], "the reply waits for the peer");
    rig.send(0, LegInput::HoldResult { result: Ok(()) });
    assert_eq!(rig.commands(), vec![reply(1, 5, Ok(()))]);
    assert!(rig.call.on_hold());
    assert_eq!(rig.events(), vec![CallEvent::Hold { on_hold: true }]);
    rig.send(1, LegInput::HoldRequest { hold: false, tag: Some(Tag(6)) });
    rig.send(0, LegInput::HoldResult { result: Ok(()) });
    assert_eq!(rig.commands(), vec![(0, LegAction::Hold { hold: false }), reply(1, 6, Ok(()))]);
    assert!(!rig.call.on_hold());
}

#[test]
fn a_second_hold_while_one_is_under_way_is_refused_and_a_repeated_one_changes_nothing() {
    let mut rig = Rig::answered_inbound(1);
    rig.send(1, LegInput::HoldRequest { hold: false, tag: Some(Tag(1)) });
    assert_eq!(rig.commands(), vec![reply(1, 1, Ok(()))], "not held: resuming is already done");
    rig.send(1, LegInput::HoldRequest { hold: true, tag: Some(Tag(2)) });
    rig.send(1, LegInput::HoldRequest { hold: true, tag: Some(Tag(3)) });
    assert_eq!(rig.commands(), vec![(0, LegAction::Hold { hold: true }), reply(1, 3, Err(RequestError::InProgress))]);
    rig.send(0, LegInput::HoldResult { result: Err(mapping::hold_failure_of_sip_status(488)) });
    assert_eq!(rig.commands(), vec![reply(1, 2, Err(RequestError::Refused("the SIP peer refused with 488".into())))]);
    assert!(!rig.call.on_hold());
}

#[test]
fn the_sip_peer_holding_reaches_the_browser_as_remote_hold() {
    let mut rig = Rig::answered_inbound(1);
    rig.send(0, LegInput::Reoffer { offer: desc("sendonly"), hold: true });
    assert_eq!(rig.commands(), vec![(1, LegAction::Reoffer { offer: desc("sendonly") })]);
    rig.send(1, LegInput::ReofferAnswer { result: Ok(desc("recvonly")) });
    assert_eq!(rig.commands(), vec![(0, LegAction::AnswerReoffer { answer: desc("recvonly") }), (1, LegAction::RemoteHold { on_hold: true })]);
    assert!(rig.call.on_hold());
    rig.send(0, LegInput::Reoffer { offer: desc("sendrecv"), hold: false });
    rig.send(1, LegInput::ReofferAnswer { result: Ok(desc("sendrecv")) });
    assert_eq!(
        rig.commands(),
        vec![
            (1, LegAction::Reoffer { offer: desc("sendrecv") }),
            (0, LegAction::AnswerReoffer { answer: desc("sendrecv") }),
            (1, LegAction::RemoteHold { on_hold: false })
        ]
    );
    assert_eq!(rig.events(), vec![CallEvent::Hold { on_hold: true }, CallEvent::Hold { on_hold: false }]);
}

#[test]
fn a_codec_reoffer_is_answered_through_the_other_leg_with_no_hold_change() {
    let mut rig = Rig::answered_outbound();
    rig.send(1, LegInput::Reoffer { offer: desc("pcma"), hold: false });
    rig.send(0, LegInput::ReofferAnswer { result: Ok(desc("pcma-answer")) });
    assert_eq!(rig.commands(), vec![(0, LegAction::Reoffer { offer: desc("pcma") }), (1, LegAction::AnswerReoffer { answer: desc("pcma-answer") })]);
    assert!(rig.events().is_empty());
}

#[test]
fn a_reoffer_the_other_leg_cannot_take_is_refused_to_the_peer() {
    let mut rig = Rig::answered_outbound();
    rig.send(1, LegInput::Reoffer { offer: desc("video"), hold: false });
    rig.send(0, LegInput::ReofferAnswer { result: Err(ReofferRefusal::NotAcceptable) });
    let refusal = ReofferRefusal::NotAcceptable;
    assert_eq!(rig.commands(), vec![(0, LegAction::Reoffer { offer: desc("video") }), (1, LegAction::RefuseReoffer { refusal })]);
    assert_eq!(mapping::reoffer_status(refusal).code, 488);
}

#[test]
fn a_reoffer_before_the_answer_or_during_another_is_refused_with_491() {
    let mut rig = Rig::outbound();
    rig.send(1, LegInput::Reoffer { offer: desc("early"), hold: false });
    assert_eq!(rig.commands(), vec![(1, LegAction::RefuseReoffer { refusal: ReofferRefusal::NotNow })]);
    let mut rig = Rig::answered_outbound();
    rig.send(1, LegInput::Reoffer { offer: desc("one"), hold: false });
    rig.send(1, LegInput::Reoffer { offer: desc("two"), hold: false });
    assert_eq!(rig.commands()[1], (1, LegAction::RefuseReoffer { refusal: ReofferRefusal::NotNow }));
    assert_eq!(mapping::reoffer_status(ReofferRefusal::NotNow).code, 491);
}

#[test]
fn a_blind_transfer_is_confirmed_and_ends_the_call_when_the_target_answers() {
    let mut rig = Rig::answered_inbound(1);
    rig.send(1, LegInput::TransferRequest { target: "1002".into(), tag: Some(Tag(8)) });
    rig.send(1, LegInput::TransferRequest { target: "1003".into(), tag: Some(Tag(9)) });
    assert_eq!(rig.commands(), vec![(0, LegAction::Transfer { target: "1002".into() }), reply(1, 9, Err(RequestError::InProgress))]);
    rig.send(0, LegInput::TransferResult { result: Ok(()) });
    assert_eq!(rig.commands(), vec![reply(1, 8, Ok(()))]);
    rig.send(0, LegInput::Transferred);
    let hangup = LegAction::Hangup { reason: EndReason::Transferred };
    assert_eq!(rig.commands(), vec![(0, hangup.clone()), (1, hangup)]);
    let end = rig.ended();
    assert_eq!(mapping::browser_hangup(&end.reason), (HangupReason::Normal, "transferred".to_string()));
    assert_eq!(mapping::record(&end).side, HangupSide::Gateway);
}

#[test]
fn a_refused_transfer_is_reported_with_the_detail_and_the_call_goes_on() {
    let mut rig = Rig::answered_inbound(1);
    rig.send(1, LegInput::TransferRequest { target: "x".into(), tag: Some(Tag(1)) });
    rig.send(0, LegInput::TransferResult { result: Err("the SIP peer refused the transfer with 603".into()) });
    assert_eq!(rig.commands()[1], reply(1, 1, Err(RequestError::Refused("the SIP peer refused the transfer with 603".into()))));
    assert!(rig.call.is_answered());
}

#[test]
fn a_dropped_browser_reclaims_within_the_grace_and_learns_it_is_held() {
    let mut rig = Rig::answered_inbound(1);
    rig.send(0, LegInput::Reoffer { offer: desc("sendonly"), hold: true });
    rig.send(1, LegInput::ReofferAnswer { result: Ok(desc("recvonly")) });
    rig.commands();
    rig.events();
    rig.send(1, LegInput::Detached);
    assert_eq!(rig.events(), vec![CallEvent::Detached { leg: LegId(1), until: rig.now + Duration::from_secs(30) }]);
    rig.advance(Duration::from_secs(29));
    assert!(!rig.call.is_ended());
    rig.send(1, LegInput::Reattached { tag: Some(Tag(3)) });
    assert_eq!(rig.commands(), vec![reply(1, 3, Ok(())), (1, LegAction::RemoteHold { on_hold: true })]);
    rig.advance(Duration::from_secs(60));
    assert!(rig.call.is_answered(), "the grace timer stopped at the reclaim");
}

#[test]
fn without_a_grace_period_a_dropped_browser_ends_the_call_at_once() {
    let mut rig = Rig::new(CallConfig { reclaim_grace: Duration::ZERO, ..super::tests::config() }, SIP, &[BROWSER]);
    rig.send(1, LegInput::Answered { answer: desc("a"), tag: None });
    rig.send(0, LegInput::AnswerDelivered);
    rig.commands();
    rig.send(1, LegInput::Detached);
    assert_eq!(rig.commands(), vec![(0, LegAction::Hangup { reason: EndReason::LegGone { kind: BROWSER } })]);
}

#[test]
fn the_maximum_duration_ends_an_answered_call() {
    let mut rig = Rig::answered_outbound();
    rig.advance(Duration::from_secs(3_599));
    assert!(rig.call.is_answered());
    rig.advance(Duration::from_secs(1));
    let hangup = LegAction::Hangup { reason: EndReason::MaxDuration };
    assert_eq!(rig.commands(), vec![(0, hangup.clone()), (1, hangup)]);
    let record = mapping::record(&rig.ended());
    assert_eq!((record.status, record.side, record.cause.as_str()), (CallStatus::Answered, HangupSide::Gateway, "maximum call duration"));
}

#[test]
fn a_media_timeout_ends_the_call_with_bye_and_media_timeout() {
    let mut rig = Rig::answered_inbound(1);
    rig.send(0, LegInput::MediaTimeout { silent_for: Duration::from_secs(30) });
    let reason = EndReason::MediaTimeout { kind: SIP, silent_for: Duration::from_secs(30), on_hold: false };
    assert_eq!(rig.commands(), vec![(0, LegAction::Hangup { reason: reason.clone() }), (1, LegAction::Hangup { reason: reason.clone() })]);
    let (browser, cause) = mapping::browser_hangup(&reason);
    assert_eq!((browser, cause.as_str()), (HangupReason::MediaTimeout, "media_timeout: no RTP from the SIP side for 30 s"));
    assert_eq!(mapping::record(&rig.ended()).status, CallStatus::Failed);
}

#[test]
fn a_leg_failing_or_the_session_expiring_ends_the_call() {
    let mut rig = Rig::answered_outbound();
    rig.send(0, LegInput::Ended { reason: EndReason::LegFailed { kind: BROWSER, detail: "ICE failed".into() } });
    assert_eq!(rig.commands(), vec![(1, LegAction::Hangup { reason: EndReason::LegFailed { kind: BROWSER, detail: "ICE failed".into() } })]);
    let mut rig = Rig::answered_outbound();
    rig.send(1, LegInput::Ended { reason: EndReason::SessionExpired });
    assert_eq!(rig.commands(), vec![(0, LegAction::Hangup { reason: EndReason::SessionExpired })]);
    assert_eq!(mapping::record(&rig.ended()).status, CallStatus::Answered);
}
