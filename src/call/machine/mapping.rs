//! The one place where the call's typed reasons meet the wire: SIP statuses (and reason
//! phrases) both ways, the browser's `hangup` reason and cause, the error a browser request gets,
//! and the fields of the call's record. Legs and drivers call these; `Call` never does.

use super::{CallEnd, EndReason, HoldFailure, LegId, LegKind, ReofferRefusal, RequestError};
use crate::signaling::{ErrorCode, HangupReason};
use crate::store::{CallStatus, HangupSide};

/// The `cause` of every call the drain ends or refuses (docs/signaling.md §4.9).
pub const SHUTDOWN_CAUSE: &str = "shutdown: the gateway is shutting down";

/// A SIP final status and its reason phrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipStatus {
    pub code: u16,
    pub phrase: &'static str,
}

const fn status(code: u16, phrase: &'static str) -> SipStatus {
    SipStatus { code, phrase }
}

/// The status an unanswered SIP caller is refused with when the call ends for `reason` (after
/// the answer the SIP leg sends BYE instead). `Shutdown` and `Draining` are 503s: the leg adds
/// `Retry-After`, so the caller may try another gateway.
pub fn sip_status(reason: &EndReason) -> SipStatus {
    match reason {
        EndReason::Busy => status(486, "Busy Here"),
        EndReason::Declined => status(603, "Decline"),
        EndReason::NotFound => status(404, "Not Found"),
        EndReason::NoAnswer | EndReason::NobodyAvailable | EndReason::LegGone { .. } => status(480, "Temporarily Unavailable"),
        EndReason::Cancelled => status(487, "Request Terminated"),
        // We cannot pass the peer's challenge on: to the caller it is a refusal.
        EndReason::AuthFailed | EndReason::Forbidden => status(403, "Forbidden"),
        EndReason::Unavailable | EndReason::Shutdown | EndReason::Draining => status(503, "Service Unavailable"),
        EndReason::NoCommonMedia => status(488, "Not Acceptable Here"),
        EndReason::Hangup { .. }
        | EndReason::AnsweredElsewhere
        | EndReason::MediaTimeout { .. }
        | EndReason::MaxDuration
        | EndReason::Transferred
        | EndReason::SessionExpired
        | EndReason::NoAck
        | EndReason::LegFailed { .. } => status(500, "Server Internal Error"),
    }
}

/// What a SIP callee's final failure means (the SIP leg reports it as `Rejected`). 401 and 407
/// arrive here only once the leg's own answer to the challenge was refused too.
pub fn end_reason_of_sip_failure(code: u16) -> EndReason {
    match code {
        486 | 600 => EndReason::Busy,
        603 => EndReason::Declined,
        404 | 484 | 604 => EndReason::NotFound,
        480 => EndReason::NoAnswer,
        401 | 407 => EndReason::AuthFailed,
        403 => EndReason::Forbidden,
        488 | 606 => EndReason::NoCommonMedia,
        _ => EndReason::Unavailable,
    }
}

/// What the SIP peer's answer to our hold or resume re-INVITE means.
pub fn hold_failure_of_sip_status(code: u16) -> HoldFailure {
    match code {
        491 => HoldFailure::Glare,
        _ => HoldFailure::Refused(format!("the SIP peer refused with {code}")),
    }
}

/// The status a SIP leg refuses its peer's new offer with.
pub fn reoffer_status(refusal: ReofferRefusal) -> SipStatus {
    match refusal {
        ReofferRefusal::Glare | ReofferRefusal::NotNow => status(491, "Request Pending"),
        ReofferRefusal::NotAcceptable => status(488, "Not Acceptable Here"),
    }
}

fn side_name(kind: LegKind) -> &'static str {
    match kind {
        LegKind::Sip => "SIP",
        LegKind::Browser => "browser",
    }
}

/// The browser's `hangup` event for a call (or a leg) ended for `reason`: the reason to branch
/// on and the cause for people (docs/signaling.md §4.9).
pub fn browser_hangup(reason: &EndReason) -> (HangupReason, String) {
    let (reason, cause): (HangupReason, &str) = match reason {
        EndReason::Hangup { by: LegKind::Sip } => (HangupReason::Normal, "the far end hung up"),
        EndReason::Hangup { by: LegKind::Browser } => (HangupReason::Normal, "the browser hung up"),
        EndReason::Cancelled => (HangupReason::Cancelled, "caller cancelled"),
        EndReason::AnsweredElsewhere => (HangupReason::AnsweredElsewhere, "answered on another device"),
        EndReason::Busy => (HangupReason::Busy, "busy"),
        EndReason::Declined => (HangupReason::Declined, "declined"),
        EndReason::NotFound => (HangupReason::NotFound, "not found"),
        EndReason::NoAnswer => (HangupReason::NoAnswer, "no answer"),
        EndReason::NobodyAvailable => (HangupReason::NoAnswer, "nobody could be rung"),
        EndReason::AuthFailed => (HangupReason::Forbidden, "authentication failed at the peer"),
        EndReason::Forbidden => (HangupReason::Forbidden, "refused by the peer"),
        EndReason::Unavailable => (HangupReason::Unavailable, "unavailable"),
        EndReason::NoCommonMedia => (HangupReason::Failed, "no common codec or SRTP setting"),
        EndReason::LegGone { kind } => return (HangupReason::Failed, format!("the {} side went away", side_name(*kind))),
        EndReason::MediaTimeout { kind, silent_for, on_hold } => {
            let held = if *on_hold { " while on hold" } else { "" };
            let cause = format!("media_timeout: no RTP from the {} side for {} s{held}", side_name(*kind), silent_for.as_secs());
            return (HangupReason::MediaTimeout, cause);
        }
        EndReason::MaxDuration => (HangupReason::Normal, "maximum call duration"),
        EndReason::Transferred => (HangupReason::Normal, "transferred"),
        EndReason::SessionExpired => (HangupReason::Normal, "the SIP session expired"),
        EndReason::NoAck => (HangupReason::Normal, "no ACK from the caller"),
        EndReason::LegFailed { detail, .. } => return (HangupReason::Failed, detail.clone()),
        EndReason::Shutdown => (HangupReason::Shutdown, SHUTDOWN_CAUSE),
        EndReason::Draining => (HangupReason::Unavailable, SHUTDOWN_CAUSE),
    };
    (reason, cause.to_string())
}

/// The error frame a browser request refused with `error` gets.
pub fn request_error(error: &RequestError) -> (ErrorCode, String) {
    match error {
        RequestError::CallEnded => (ErrorCode::UnknownCall, "the call has ended".into()),
        RequestError::AlreadyAnswered => (ErrorCode::UnknownCall, "the call is already answered".into()),
        RequestError::AnsweredElsewhere => (ErrorCode::UnknownCall, "answered on another device".into()),
        RequestError::NotAnswered => (ErrorCode::BadRequest, "the call is not answered yet".into()),
        RequestError::InProgress => (ErrorCode::BadRequest, "a hold, resume or transfer is already in progress".into()),
        RequestError::NotAllowed => (ErrorCode::BadRequest, "not possible on this call".into()),
        RequestError::Refused(detail) => (ErrorCode::BadRequest, detail.clone()),
    }
}

/// The fields of a call's final record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordEnd {
    pub status: CallStatus,
    pub side: HangupSide,
    /// The final status of an unanswered call; `None` once answered (it ended with BYE).
    pub sip_status: Option<u16>,
    pub cause: String,
}

pub fn record(end: &CallEnd) -> RecordEnd {
    let (browser_reason, cause) = browser_hangup(&end.reason);
    let side = match end.by {
        Some((_, LegKind::Sip)) => HangupSide::Sip,
        Some((_, LegKind::Browser)) => HangupSide::Browser,
        None => HangupSide::Gateway,
    };
    let status = match &end.reason {
        // A party or the drain ended a call that ran: it was a call. The gateway ending it
        // for a fault (media timeout, a failed leg) makes it failed.
        _ if end.answered => {
            let ran = end.by.is_some() || matches!(browser_reason, HangupReason::Normal | HangupReason::Shutdown);
            if ran { CallStatus::Answered } else { CallStatus::Failed }
        }
        EndReason::Busy => CallStatus::Busy,
        EndReason::Declined => CallStatus::Rejected,
        EndReason::Cancelled => CallStatus::Cancelled,
        // The caller's own connection going away is its giving up.
        EndReason::LegGone { .. } if matches!(end.by, Some((LegId::CALLER, _))) => CallStatus::Cancelled,
        EndReason::NoAnswer | EndReason::NobodyAvailable | EndReason::LegGone { .. } => CallStatus::Missed,
        _ => CallStatus::Failed,
    };
    let sip_status = (!end.answered).then(|| sip_status(&end.reason).code);
    RecordEnd { status, side, sip_status, cause }
}
