//! What legs report to the call (`LegEvent`), what the call tells legs (`LegCommand`), and what
//! it reports about itself (`CallEvent`).

use super::{EndReason, HoldFailure, LegId, LegKind, ReofferRefusal, RequestError, SessionDesc, Tag};
use std::time::{Duration, Instant};

/// Something one leg reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegEvent {
    pub leg: LegId,
    pub input: LegInput,
}

impl LegEvent {
    pub fn new(leg: LegId, input: LegInput) -> LegEvent {
        LegEvent { leg, input }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegInput {
    /// A callee is alerting (SIP 180/183; a browser was sent `incoming`).
    Ringing,
    /// A callee's early media (SIP 183 with SDP): the caller may start hearing it.
    EarlyMedia { answer: SessionDesc },
    /// A callee answered (SIP 200, a browser's `accept`).
    Answered { answer: SessionDesc, tag: Option<Tag> },
    /// The caller's leg delivered our answer (its SIP 200 went out; the browser was sent
    /// `answered`): the call is answered from here on.
    AnswerDelivered,
    /// A callee refused (a browser's `reject`; a SIP final failure, classified by
    /// `mapping::end_reason_of_sip_failure`).
    Rejected { reason: EndReason, tag: Option<Tag> },
    /// The leg's party ended its part: BYE, CANCEL, or the browser's `hangup`.
    HungUp { tag: Option<Tag> },
    /// The leg ended on its own (ICE failure, session expiry, no ACK, a closed leg).
    Ended { reason: EndReason },
    /// The SIP leg answered an authentication challenge and is trying again. The leg answers
    /// one challenge per call itself; a refusal after that arrives as `Rejected(AuthFailed)`.
    Challenged,
    /// Keypad digits from this leg's party, for the other leg.
    Dtmf { digits: String, duration_ms: u32, tag: Option<Tag> },
    /// This leg's party asks to hold (`true`) or resume the other side.
    HoldRequest { hold: bool, tag: Option<Tag> },
    /// The outcome of `LegAction::Hold` on this leg.
    HoldResult { result: Result<(), HoldFailure> },
    /// This leg's peer sent a new offer (re-INVITE, UPDATE); `hold` says whether it puts us
    /// on hold (sendonly, inactive).
    Reoffer { offer: SessionDesc, hold: bool },
    /// This leg's answer to `LegAction::Reoffer`.
    ReofferAnswer { result: Result<SessionDesc, ReofferRefusal> },
    /// This leg's party asks for a blind transfer of the other side to `target`.
    TransferRequest { target: String, tag: Option<Tag> },
    /// The outcome of `LegAction::Transfer` on this leg (the peer accepted or refused REFER).
    TransferResult { result: Result<(), String> },
    /// The transfer target answered (NOTIFY with a 2xx).
    Transferred,
    /// The leg's connection dropped (WebSocket closed).
    Detached,
    /// The leg's party came back on a new connection (`reclaim`).
    Reattached { tag: Option<Tag> },
    /// The leg sent no RTP for `silent_for` (the media session's report).
    MediaTimeout { silent_for: Duration },
}

/// Something one leg must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegCommand {
    pub leg: LegId,
    pub action: LegAction,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegAction {
    /// Call this callee with the caller's offer (SIP INVITE; a browser's `incoming`).
    Ring { offer: SessionDesc },
    /// Tell the caller a callee is alerting (SIP 180/183; a browser's `ringing`); `early` is
    /// the early-media answer.
    Ringing { early: Option<SessionDesc> },
    /// Answer the caller with the winning callee's answer (SIP 200; a browser's `answered`).
    /// The leg reports `AnswerDelivered` once it is out.
    Answer { answer: SessionDesc },
    /// Refuse the unanswered caller (a SIP final status from `mapping`; a browser `hangup`).
    Reject { reason: EndReason },
    /// Stop an unanswered callee (SIP CANCEL; a browser `hangup`). A SIP callee whose 200
    /// crosses the CANCEL reports `Answered`, and gets `Hangup` for it.
    Cancel { reason: EndReason },
    /// End an answered leg (SIP BYE; a browser `hangup`). A leg that already ended ignores it.
    Hangup { reason: EndReason },
    /// The answer to the request sent with `tag`.
    Reply { tag: Tag, result: Result<(), RequestError> },
    /// Send digits to this leg's party (RFC 4733 or INFO toward SIP; `dtmf` events to a browser).
    Dtmf { digits: String, duration_ms: u32 },
    /// Put this leg's peer on hold or resume it (a re-INVITE); report `HoldResult`.
    Hold { hold: bool },
    /// The other side's new offer, for this leg to answer with `ReofferAnswer`.
    Reoffer { offer: SessionDesc },
    /// Answer this leg's peer's new offer with `answer`.
    AnswerReoffer { answer: SessionDesc },
    /// Refuse this leg's peer's new offer (SIP status from `mapping`).
    RefuseReoffer { refusal: ReofferRefusal },
    /// The other side holds (`true`) or resumed: a browser's `remote_hold`.
    RemoteHold { on_hold: bool },
    /// Ask this leg's peer to call `target` instead (REFER); report `TransferResult`.
    Transfer { target: String },
}

/// What the call reports about itself: for the call's record, metrics and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    /// The first callee is alerting.
    Ringing { callee: LegId },
    /// A callee's early media reached the caller.
    EarlyMedia { callee: LegId },
    /// The call is answered (the caller's leg delivered the answer).
    Answered { callee: LegId },
    /// The SIP leg answered an authentication challenge.
    Challenged { leg: LegId },
    /// The call's hold state changed (either side holds, or nobody does).
    Hold { on_hold: bool },
    /// A leg's connection dropped; the call waits for a reclaim until `until`.
    Detached { leg: LegId, until: Instant },
    Reattached { leg: LegId },
    /// `shutdown` was asked: the call ends by `deadline` at the latest.
    Draining { deadline: Instant },
    /// The end. Exactly once per call; nothing follows but replies to late requests.
    Ended(CallEnd),
}

/// How a call ended, everything the record needs (`mapping::record` turns it into fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallEnd {
    pub reason: EndReason,
    /// The leg whose party or failure ended it; `None` when the gateway did (limits, drain).
    pub by: Option<(LegId, LegKind)>,
    /// Whether the call had been answered.
    pub answered: bool,
    /// How long it was answered.
    pub talk_time: Duration,
}
