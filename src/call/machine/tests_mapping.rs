//! The mapping keeps what the call code sent before `Call` existed (call::inbound,
//! call::outbound, call::sip_side), so browsers and SIP peers see no change.

use super::mapping::{browser_hangup, end_reason_of_sip_failure, hold_failure_of_sip_status, record, sip_status};
use super::*;
use crate::signaling::HangupReason;
use crate::store::{CallStatus, HangupSide};
use std::time::Duration;

#[test]
fn sip_failures_map_to_the_documented_browser_reasons_as_before() {
    let cases = [
        (486, HangupReason::Busy),
        (600, HangupReason::Busy),
        (603, HangupReason::Declined),
        (404, HangupReason::NotFound),
        (484, HangupReason::NotFound),
        (480, HangupReason::NoAnswer),
        (401, HangupReason::Forbidden),
        (407, HangupReason::Forbidden),
        (403, HangupReason::Forbidden),
        (488, HangupReason::Failed),
        (503, HangupReason::Unavailable),
        (408, HangupReason::Unavailable),
    ];
    for (code, reason) in cases {
        assert_eq!(browser_hangup(&end_reason_of_sip_failure(code)).0, reason, "SIP {code}");
    }
    assert_eq!(browser_hangup(&end_reason_of_sip_failure(407)).1, "authentication failed at the peer");
    assert_eq!(browser_hangup(&end_reason_of_sip_failure(606)).1, "no common codec or SRTP setting");
}

#[test]
fn a_sip_caller_is_refused_with_the_statuses_the_old_inbound_code_sent() {
    let cases = [
        (EndReason::Busy, 486, "Busy Here"),
        (EndReason::Declined, 603, "Decline"),
        (EndReason::NoAnswer, 480, "Temporarily Unavailable"),
        (EndReason::NobodyAvailable, 480, "Temporarily Unavailable"),
        (EndReason::LegGone { kind: LegKind::Browser }, 480, "Temporarily Unavailable"),
        (EndReason::Cancelled, 487, "Request Terminated"),
        (EndReason::NoCommonMedia, 488, "Not Acceptable Here"),
        (EndReason::Unavailable, 503, "Service Unavailable"),
        (EndReason::Shutdown, 503, "Service Unavailable"),
        (EndReason::Draining, 503, "Service Unavailable"),
    ];
    for (reason, code, phrase) in cases {
        let status = sip_status(&reason);
        assert_eq!((status.code, status.phrase), (code, phrase), "{reason:?}");
    }
}

#[test]
fn a_refusal_keeps_its_meaning_from_sip_to_sip() {
    for code in [486, 603, 404, 480, 403, 488, 503] {
        assert_eq!(sip_status(&end_reason_of_sip_failure(code)).code, code);
    }
}

#[test]
fn browser_reasons_and_causes_match_the_protocol() {
    let cases = [
        (EndReason::AnsweredElsewhere, HangupReason::AnsweredElsewhere, "answered on another device"),
        (EndReason::Cancelled, HangupReason::Cancelled, "caller cancelled"),
        (EndReason::NoAnswer, HangupReason::NoAnswer, "no answer"),
        (EndReason::Hangup { by: LegKind::Sip }, HangupReason::Normal, "the far end hung up"),
        (EndReason::Transferred, HangupReason::Normal, "transferred"),
        (EndReason::MaxDuration, HangupReason::Normal, "maximum call duration"),
        (EndReason::SessionExpired, HangupReason::Normal, "the SIP session expired"),
        (EndReason::Shutdown, HangupReason::Shutdown, "shutdown: the gateway is shutting down"),
        (EndReason::Draining, HangupReason::Unavailable, "shutdown: the gateway is shutting down"),
    ];
    for (end, reason, cause) in cases {
        assert_eq!(browser_hangup(&end), (reason, cause.to_string()), "{end:?}");
    }
    let timeout = EndReason::MediaTimeout { kind: LegKind::Browser, silent_for: Duration::from_secs(31), on_hold: false };
    assert_eq!(browser_hangup(&timeout).1, "media_timeout: no RTP from the browser side for 31 s");
}

#[test]
fn a_491_to_our_hold_is_glare_and_anything_else_a_refusal_naming_the_status() {
    assert_eq!(hold_failure_of_sip_status(491), HoldFailure::Glare);
    assert_eq!(hold_failure_of_sip_status(488), HoldFailure::Refused("the SIP peer refused with 488".into()));
}

#[test]
fn records_name_who_ended_the_call_and_how_it_went() {
    let end = |reason, by, answered| CallEnd { reason, by, answered, talk_time: Duration::ZERO };
    let sip = Some((LegId(1), LegKind::Sip));
    let browser = Some((LegId(0), LegKind::Browser));
    let cases = [
        (end(EndReason::Hangup { by: LegKind::Sip }, sip, true), CallStatus::Answered, HangupSide::Sip, None),
        (end(EndReason::MediaTimeout { kind: LegKind::Sip, silent_for: Duration::from_secs(30), on_hold: false }, None, true), CallStatus::Failed, HangupSide::Gateway, None),
        (end(EndReason::Declined, browser, false), CallStatus::Rejected, HangupSide::Browser, Some(603)),
        (end(EndReason::NoAnswer, None, false), CallStatus::Missed, HangupSide::Gateway, Some(480)),
        (end(EndReason::LegGone { kind: LegKind::Browser }, browser, false), CallStatus::Cancelled, HangupSide::Browser, Some(480)),
        (end(EndReason::Unavailable, sip, false), CallStatus::Failed, HangupSide::Sip, Some(503)),
    ];
    for (end, status, side, sip_status) in cases {
        let record = record(&end);
        assert_eq!((record.status, record.side, record.sip_status), (status, side, sip_status), "{end:?}");
    }
}

#[test]
fn drained_calls_are_recorded_like_the_drain_records_them() {
    let end = |answered| CallEnd { reason: EndReason::Shutdown, by: None, answered, talk_time: Duration::ZERO };
    let ringing = record(&end(false));
    assert_eq!((ringing.status, ringing.side, ringing.sip_status), (CallStatus::Failed, HangupSide::Gateway, Some(503)));
    assert_eq!(record(&end(true)).status, CallStatus::Answered);
}
