//! What a client frame becomes: the envelope read first (so every error can echo the id), then
//! the typed message, then a validated `Request` for the owner.

use super::protocol::{ClientMessage, Credential, ErrorCode, IceCandidate, RejectReason, RequestId};
use super::validate::{self, MAX_ID, MAX_TARGET};
use serde_json::Value;

/// A validated request from a logged-in client (logins excepted: they are what logs it in).
/// Each one with an `id` must be answered with `Connection::reply` or `Connection::error`;
/// logins with `Connection::login_result`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    PasswordLogin {
        id: RequestId,
        user: String,
        password: Credential,
    },
    PbxLogin {
        id: RequestId,
        profile: String,
        user: String,
        password: Credential,
    },
    Call {
        id: RequestId,
        target: String,
        sdp: String,
        codec: Option<String>,
    },
    Accept {
        id: RequestId,
        call_id: String,
        sdp: String,
    },
    Reject {
        id: RequestId,
        call_id: String,
        reason: RejectReason,
    },
    Hangup {
        id: RequestId,
        call_id: String,
    },
    Dtmf {
        id: RequestId,
        call_id: String,
        digits: String,
    },
    Hold {
        id: RequestId,
        call_id: String,
    },
    Unhold {
        id: RequestId,
        call_id: String,
    },
    Reclaim {
        id: RequestId,
        call_id: String,
    },
    Transfer {
        id: RequestId,
        call_id: String,
        target: String,
    },
    /// `candidate: None` is end-of-candidates. Without an id, success gets no reply.
    Candidate {
        id: Option<RequestId>,
        call_id: String,
        candidate: Option<IceCandidate>,
    },
}

impl Request {
    pub fn id(&self) -> Option<&RequestId> {
        match self {
            Request::PasswordLogin { id, .. }
            | Request::PbxLogin { id, .. }
            | Request::Call { id, .. }
            | Request::Accept { id, .. }
            | Request::Reject { id, .. }
            | Request::Hangup { id, .. }
            | Request::Dtmf { id, .. }
            | Request::Hold { id, .. }
            | Request::Unhold { id, .. }
            | Request::Reclaim { id, .. }
            | Request::Transfer { id, .. } => Some(id),
            Request::Candidate { id, .. } => id.as_ref(),
        }
    }
}

pub(super) type FrameFault = (Option<RequestId>, &'static str);

/// Reads `type` and `id` before anything else, so every later error can echo the id.
pub(super) fn envelope(value: &Value) -> Result<(&str, Option<RequestId>), FrameFault> {
    let Some(obj) = value.as_object() else { return Err((None, "frame must be a JSON object")) };
    let id = match obj.get("id") {
        None => None,
        Some(Value::String(s)) if s.len() <= MAX_ID => Some(RequestId::Str(s.clone())),
        Some(Value::Number(n)) => Some(RequestId::Num(n.clone())),
        Some(_) => return Err((None, "id must be a number or a string of at most 128 bytes")),
    };
    match obj.get("type") {
        Some(Value::String(kind)) => Ok((kind, id)),
        None => Err((id, "frame has no type")),
        Some(_) => Err((id, "type must be a string")),
    }
}

/// What serde would get wrong or word badly: a missing `candidate` would silently read as
/// end-of-candidates, and an unknown login method is a bad value, not a bad frame.
pub(super) fn precheck(kind: &str, value: &Value) -> Result<(), (ErrorCode, &'static str)> {
    match kind {
        "candidate" if value.get("candidate").is_none() => {
            Err((ErrorCode::BadFrame, "candidate is required (null means end-of-candidates)"))
        }
        "login" => match value.get("method").and_then(Value::as_str) {
            Some("token" | "password" | "pbx") | None => Ok(()),
            Some(_) => Err((ErrorCode::BadRequest, "method must be token, password or pbx")),
        },
        _ => Ok(()),
    }
}

pub(super) fn message_id(message: &ClientMessage) -> Option<&RequestId> {
    match message {
        ClientMessage::Hello { id, .. }
        | ClientMessage::Login { id, .. }
        | ClientMessage::Call { id, .. }
        | ClientMessage::Accept { id, .. }
        | ClientMessage::Reject { id, .. }
        | ClientMessage::Hangup { id, .. }
        | ClientMessage::Dtmf { id, .. }
        | ClientMessage::Hold { id, .. }
        | ClientMessage::Unhold { id, .. }
        | ClientMessage::Reclaim { id, .. }
        | ClientMessage::Transfer { id, .. }
        | ClientMessage::Ping { id } => Some(id),
        ClientMessage::Candidate { id, .. } => id.as_ref(),
    }
}

/// Call-related frames only; hello, ping and login never get here.
pub(super) fn to_request(message: ClientMessage) -> Result<Request, (Option<RequestId>, String)> {
    let id = message_id(&message).cloned();
    let fail = |e: String| (id.clone(), e);
    Ok(match message {
        ClientMessage::Call { id, target, sdp, codec } => {
            validate::text("target", &target, MAX_TARGET).and_then(|()| validate::sdp(&sdp)).map_err(fail)?;
            if let Some(codec) = &codec {
                validate::codec(codec).map_err(fail)?;
            }
            Request::Call { id, target, sdp, codec }
        }
        ClientMessage::Accept { id, call_id, sdp } => {
            validate::call_id(&call_id).and_then(|()| validate::sdp(&sdp)).map_err(fail)?;
            Request::Accept { id, call_id, sdp }
        }
        ClientMessage::Reject { id, call_id, reason } => {
            validate::call_id(&call_id).map_err(fail)?;
            Request::Reject { id, call_id, reason: reason.unwrap_or_default() }
        }
        ClientMessage::Hangup { id, call_id } => {
            validate::call_id(&call_id).map_err(fail)?;
            Request::Hangup { id, call_id }
        }
        ClientMessage::Dtmf { id, call_id, digits } => {
            validate::call_id(&call_id).and_then(|()| validate::digits(&digits)).map_err(fail)?;
            Request::Dtmf { id, call_id, digits }
        }
        ClientMessage::Hold { id, call_id } => {
            validate::call_id(&call_id).map_err(fail)?;
            Request::Hold { id, call_id }
        }
        ClientMessage::Unhold { id, call_id } => {
            validate::call_id(&call_id).map_err(fail)?;
            Request::Unhold { id, call_id }
        }
        ClientMessage::Reclaim { id, call_id } => {
            validate::call_id(&call_id).map_err(fail)?;
            Request::Reclaim { id, call_id }
        }
        ClientMessage::Transfer { id, call_id, target } => {
            validate::call_id(&call_id).and_then(|()| validate::text("target", &target, MAX_TARGET)).map_err(fail)?;
            Request::Transfer { id, call_id, target }
        }
        ClientMessage::Candidate { id, call_id, candidate } => {
            validate::call_id(&call_id).map_err(fail)?;
            Request::Candidate { id, call_id, candidate: validate::candidate(candidate).map_err(fail)? }
        }
        ClientMessage::Hello { .. } | ClientMessage::Login { .. } | ClientMessage::Ping { .. } => {
            return Err((id, "not a call request".to_owned()));
        }
    })
}
