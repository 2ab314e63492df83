//! Why a call or a leg ends, and why a request or a re-offer was refused: typed, so the call's
//! logic branches on meaning. What each means on the wire is in `mapping`, and only there.

use super::LegKind;
use std::time::Duration;

/// Why a call ended, or why one leg is being ended (a losing callee: `AnsweredElsewhere`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// A party hung up the answered call (BYE, or the browser's `hangup`).
    Hangup { by: LegKind },
    /// The caller gave up before the answer (CANCEL, or the browser's `hangup`).
    Cancelled,
    /// Another callee answered first.
    AnsweredElsewhere,
    Busy,
    Declined,
    NotFound,
    /// Nobody answered: the ring timeout, or the far end's 480.
    NoAnswer,
    /// No callee could be rung, or every one went away before answering.
    NobodyAvailable,
    /// The far end still refused the profile's credentials (the SIP leg answers one challenge).
    AuthFailed,
    Forbidden,
    /// The far end or the route could not be reached (5xx, 408, transport failure).
    Unavailable,
    /// No codec or SRTP setting both sides accept.
    NoCommonMedia,
    /// A leg's connection dropped and it did not come back: before the answer at once, after it
    /// once the reclaim grace period ran out.
    LegGone { kind: LegKind },
    /// A leg sent no RTP for the media timeout; `on_hold` says which limit applied.
    MediaTimeout { kind: LegKind, silent_for: Duration, on_hold: bool },
    MaxDuration,
    /// The SIP side took a blind transfer and the target answered: our part is done.
    Transferred,
    /// The SIP peer stopped refreshing the session (RFC 4028).
    SessionExpired,
    /// Our 2xx was never acknowledged.
    NoAck,
    /// A leg failed on its own (ICE failure, a closed leg, an answer it could not use); the
    /// detail is for people and logs.
    LegFailed { kind: LegKind, detail: String },
    /// The gateway is shutting down: the drain time ran out, or it was told to stop at once.
    Shutdown,
    /// A new call refused because the gateway is draining (it never rang).
    Draining,
}

/// Why a request from a leg (`accept`, `hold`, `dtmf`, `transfer`, `reclaim`) was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// The call has ended, or ended for this leg.
    CallEnded,
    /// Hold, DTMF or transfer before the answer.
    NotAnswered,
    /// `accept` from a leg that did not ring, or on a call that is already answered.
    AlreadyAnswered,
    /// Another callee accepted first.
    AnsweredElsewhere,
    /// A hold, resume or transfer is already under way.
    InProgress,
    /// The leg is not one that can ask this (e.g. `accept` from the caller).
    NotAllowed,
    /// The far end refused; the detail says how (e.g. with which SIP status).
    Refused(String),
}

/// Why a leg could not put its peer on hold or resume it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldFailure {
    /// Both sides offered at once (SIP 491): the call tries again after a random pause.
    Glare,
    /// The peer refused; the detail says how.
    Refused(String),
}

/// Why a leg must refuse its peer's new offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReofferRefusal {
    /// Our own offer to that peer is still unanswered (SIP 491).
    Glare,
    /// The call is not answered yet, or another offer is being answered: try later.
    NotNow,
    /// The other side cannot take the new offer.
    NotAcceptable,
}
