//! Wire types of signaling protocol v1. docs/signaling.md is the contract; a change here that a
//! browser could notice needs a change there too.
//!
//! Client frames derive both `Serialize` and `Deserialize` so Rust clients (tests, the load tool)
//! build frames with the same types the gateway parses.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Protocol versions this build speaks, best first.
pub const SUPPORTED_VERSIONS: &[u32] = &[1];

/// Frame types a client may send. Anything else is `unknown_type`, not `bad_frame`, so a client
/// can tell "this server is older than me" from "my frame is broken".
pub const CLIENT_TYPES: &[&str] =
    &["hello", "login", "call", "accept", "reject", "hangup", "dtmf", "hold", "unhold", "reclaim", "transfer", "candidate", "ping"];

/// The client's request id, echoed back unchanged so it can match replies to requests.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RequestId {
    Num(serde_json::Number),
    Str(String),
}

impl From<u64> for RequestId {
    fn from(n: u64) -> Self {
        RequestId::Num(n.into())
    }
}

impl From<&str> for RequestId {
    fn from(s: &str) -> Self {
        RequestId::Str(s.to_owned())
    }
}

/// A password or token. `Debug` hides it so a logged request never leaks it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Credential(pub String);

impl Credential {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credential(***)")
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum LoginMethod {
    Token {
        token: Credential,
    },
    /// A local user of the gateway.
    Password {
        user: String,
        password: Credential,
    },
    /// The gateway registers upstream to `profile` as `user`; success means the PBX accepted it.
    Pbx {
        profile: String,
        user: String,
        password: Credential,
    },
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    Busy,
    /// The default: a person said no, so the caller should not be routed to voicemail as "busy".
    #[default]
    Declined,
}

/// RTCIceCandidate.toJSON(), as browsers send it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceCandidate {
    pub candidate: String,
    #[serde(rename = "sdpMid", default)]
    pub sdp_mid: Option<String>,
    #[serde(rename = "sdpMLineIndex", default)]
    pub sdp_m_line_index: Option<u16>,
    #[serde(rename = "usernameFragment", default, skip_serializing_if = "Option::is_none")]
    pub username_fragment: Option<String>,
}

/// Frames a client sends. `candidate: None` is end-of-candidates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    Hello {
        id: RequestId,
        versions: Vec<u32>,
    },
    Login {
        id: RequestId,
        #[serde(flatten)]
        method: LoginMethod,
    },
    Call {
        id: RequestId,
        target: String,
        sdp: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
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
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<RejectReason>,
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
    /// Takes over an answered call whose WebSocket dropped, within the grace period.
    Reclaim {
        id: RequestId,
        call_id: String,
    },
    /// Blind transfer: the SIP side is asked (REFER) to call `target` instead.
    Transfer {
        id: RequestId,
        call_id: String,
        target: String,
    },
    Candidate {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        call_id: String,
        candidate: Option<IceCandidate>,
    },
    Ping {
        id: RequestId,
    },
}

/// One entry of the login reply's `ice_servers`. `credential` may be minted per login from a
/// TURN shared secret: it goes to the browser and nowhere else, so `Debug` hides it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

impl std::fmt::Debug for IceServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceServer")
            .field("urls", &self.urls)
            .field("username", &self.username)
            .field("credential", &self.credential.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    pub uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

/// Why a call ended, for the page to branch on. `cause` in the event carries the detail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HangupReason {
    /// Either side hung up an answered call.
    Normal,
    /// Another device of the same user took the call.
    AnsweredElsewhere,
    /// The caller gave up before the answer.
    Cancelled,
    Busy,
    Declined,
    NoAnswer,
    NotFound,
    Forbidden,
    /// The far end or the route was unreachable (5xx, timeout, transport failure).
    Unavailable,
    /// No media arrived for the configured time.
    MediaTimeout,
    /// The gateway is shutting down and its drain time is over.
    Shutdown,
    Failed,
}

/// Frames the server sends without a request: they carry no `id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerEvent {
    Incoming { call_id: String, caller: Caller, sdp: String },
    /// `sdp` (early media): the answer to the caller's offer, before `answered`.
    Ringing {
        call_id: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        sdp: Option<String>,
    },
    Answered { call_id: String, sdp: String },
    Hangup { call_id: String, reason: HangupReason, cause: String },
    Candidate { call_id: String, candidate: Option<IceCandidate> },
    /// A keypad digit from the SIP side (RFC 4733 or SIP INFO), once it ended.
    Dtmf { call_id: String, digit: String, duration_ms: u32 },
    /// The SIP side put the call on hold (`on_hold: true`) or took it off hold.
    RemoteHold { call_id: String, on_hold: bool },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadJson,
    BadFrame,
    UnknownType,
    FrameTooLarge,
    HelloRequired,
    UnsupportedVersion,
    NotLoggedIn,
    AlreadyLoggedIn,
    LoginFailed,
    TokenExpired,
    TokenInvalid,
    RateLimited,
    UnknownCall,
    BadRequest,
    Forbidden,
    Internal,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 16] = [
        ErrorCode::BadJson,
        ErrorCode::BadFrame,
        ErrorCode::UnknownType,
        ErrorCode::FrameTooLarge,
        ErrorCode::HelloRequired,
        ErrorCode::UnsupportedVersion,
        ErrorCode::NotLoggedIn,
        ErrorCode::AlreadyLoggedIn,
        ErrorCode::LoginFailed,
        ErrorCode::TokenExpired,
        ErrorCode::TokenInvalid,
        ErrorCode::RateLimited,
        ErrorCode::UnknownCall,
        ErrorCode::BadRequest,
        ErrorCode::Forbidden,
        ErrorCode::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::BadFrame => "bad_frame",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::HelloRequired => "hello_required",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::NotLoggedIn => "not_logged_in",
            ErrorCode::AlreadyLoggedIn => "already_logged_in",
            ErrorCode::LoginFailed => "login_failed",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::TokenInvalid => "token_invalid",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::UnknownCall => "unknown_call",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Serialize)]
pub(super) struct ErrorFrame<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a RequestId>,
    pub code: ErrorCode,
    pub message: &'a str,
}
