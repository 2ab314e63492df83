//! The browser-facing WebSocket signaling protocol (docs/signaling.md), sans-IO.
//!
//! `Connection` is one WebSocket: text frames in, text frames and validated `Request`s out. The
//! WebSocket driver and the call layer own it; nothing here touches a socket or reads a clock.

mod connection;
pub mod ice;
pub mod jwt;
mod protocol;
mod request;
mod validate;

pub use connection::{
    Connection, ConnectionConfig, LoggedIn, LoginError, LoginInfo, LoginKind, DEFAULT_MAX_FRAME, MAX_LOGIN_FAILURES,
    MAX_PENDING, RATE_BURST, RATE_PER_SEC, TOKEN_LEEWAY_SECS,
};
pub use protocol::{
    Caller, ClientMessage, Credential, ErrorCode, HangupReason, IceCandidate, IceServer, LoginMethod, RejectReason,
    RequestId, ServerEvent, CLIENT_TYPES, SUPPORTED_VERSIONS,
};
pub use request::Request;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_fuzz;
#[cfg(test)]
mod tests_jwt;
#[cfg(test)]
mod tests_login;
