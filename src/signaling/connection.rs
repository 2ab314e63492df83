//! One signaling WebSocket connection, sans-IO.
//!
//! The owner feeds text frames in with `handle_frame`, sends whatever `poll_outgoing` yields and
//! carries out whatever `poll_request` yields, answering each with `reply` or `error`. Everything
//! a browser can get wrong is answered here, so the owner only sees validated requests from a
//! logged-in user. No frame, however broken, closes the connection or touches its calls: closing
//! is the owner's decision (e.g. after repeated `rate_limited`).

use super::jwt::{self, TokenError};
use super::protocol::{
    ClientMessage, ErrorCode, ErrorFrame, LoginMethod, RequestId, ServerEvent, CLIENT_TYPES,
    SUPPORTED_VERSIONS,
};
use super::request::{envelope, message_id, precheck, to_request, Request};
use super::validate::{self, MAX_PASSWORD, MAX_PROFILE, MAX_USER};
use serde_json::{Map, Value};
use std::collections::VecDeque;
use std::fmt;

pub const DEFAULT_MAX_FRAME: usize = 64 * 1024;
/// Clock skew tolerated between the token issuer and us.
pub const TOKEN_LEEWAY_SECS: u64 = 30;
/// Requests the owner has not answered yet; beyond this a client is not waiting, it is flooding.
pub const MAX_PENDING: usize = 32;
/// Per connection. It only slows guessing down: the owner must also limit per source address.
pub const MAX_LOGIN_FAILURES: u32 = 5;
/// Token bucket over all frames. The burst covers a page's trickle ICE at call setup.
pub const RATE_BURST: u32 = 100;
pub const RATE_PER_SEC: u32 = 20;
/// Error messages quote serde's diagnostics, which can quote the frame; keep them short.
const MAX_DETAIL: usize = 200;

#[derive(Clone)]
pub struct ConnectionConfig {
    /// HS256 secret for token logins; `None` disables them.
    pub jwt_secret: Option<Vec<u8>>,
    /// Sent in the hello reply, e.g. "sipbridge/0.1.0".
    pub server: String,
    /// Handed to the browser at login, with TURN credentials minted for its user (`ice::for_login`).
    pub ice_servers: Vec<crate::config::IceServerConfig>,
    pub max_frame: usize,
}

impl fmt::Debug for ConnectionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionConfig")
            .field("jwt_secret", &self.jwt_secret.as_ref().map(|_| "***"))
            .field("server", &self.server)
            .field("ice_servers", &self.ice_servers)
            .field("max_frame", &self.max_frame)
            .finish()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginInfo {
    pub user: String,
    pub profiles: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoginError {
    /// Wrong user or password, or the PBX refused the credentials. Counts toward the limit.
    Rejected,
    /// The profile does not exist or does not take web logins.
    Forbidden,
    /// The PBX did not answer or failed; the text is shown to the user.
    Upstream(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginKind {
    Token,
    Password,
    Pbx,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedIn {
    pub user: String,
    pub profiles: Vec<String>,
    pub method: LoginKind,
    /// The token's `exp`. The session outlives it: the token is checked at login only.
    pub expires_at: Option<u64>,
}

#[derive(Debug)]
enum Login {
    None,
    /// `requested_at` is when the login frame arrived: minted TURN credentials expire from then.
    Pending { id: RequestId, kind: LoginKind, requested_at: u64 },
    Done(LoggedIn),
}

#[derive(Debug)]
pub struct Connection {
    config: ConnectionConfig,
    version: Option<u32>,
    login: Login,
    login_failures: u32,
    /// Requests handed to the owner and not answered yet, with their type for the reply.
    pending: Vec<(RequestId, &'static str)>,
    outgoing: VecDeque<String>,
    requests: VecDeque<Request>,
    tokens: u32,
    refilled_at: u64,
}

impl Connection {
    pub fn new(config: ConnectionConfig) -> Self {
        Self {
            config,
            version: None,
            login: Login::None,
            login_failures: 0,
            pending: Vec::new(),
            outgoing: VecDeque::new(),
            requests: VecDeque::new(),
            tokens: RATE_BURST,
            refilled_at: 0,
        }
    }

    /// One text frame from the browser. Errors are answered here; anything the owner must act
    /// on comes out of `poll_request`. The size is checked again here because the owner's limit
    /// may be configured differently, and parsing must never see more than `max_frame`.
    pub fn handle_frame(&mut self, text: &str, now_unix: u64) {
        let allowed = self.take_token(now_unix);
        if text.len() > self.config.max_frame {
            let message = format!("frames are limited to {} bytes", self.config.max_frame);
            return self.send_error(None, ErrorCode::FrameTooLarge, &message);
        }
        let Ok(value) = serde_json::from_str::<Value>(text) else {
            return self.send_error(None, ErrorCode::BadJson, "frame is not valid JSON");
        };
        let (kind, id) = match envelope(&value) {
            Ok(found) => found,
            Err((id, message)) => return self.send_error(id.as_ref(), ErrorCode::BadFrame, message),
        };
        let id = id.as_ref();
        let Some(kind) = CLIENT_TYPES.iter().copied().find(|t| *t == kind) else {
            return self.send_error(id, ErrorCode::UnknownType, "unknown frame type");
        };
        if !allowed {
            return self.send_error(id, ErrorCode::RateLimited, "too many frames; slow down");
        }
        if let Err((code, message)) = precheck(kind, &value) {
            return self.send_error(id, code, message);
        }
        let message = match serde_json::from_value::<ClientMessage>(value) {
            Ok(message) => message,
            Err(e) => return self.send_error(id, ErrorCode::BadFrame, &truncate(&e.to_string())),
        };
        if self.version.is_none() && kind != "hello" {
            return self.send_error(id, ErrorCode::HelloRequired, "send hello first");
        }
        self.dispatch(kind, message, now_unix);
    }

    pub fn poll_outgoing(&mut self) -> Option<String> {
        self.outgoing.pop_front()
    }

    pub fn poll_request(&mut self) -> Option<Request> {
        self.requests.pop_front()
    }

    /// Ends a password or pbx login. A result for any other id is ignored (e.g. the login was
    /// already answered with `error`).
    pub fn login_result(&mut self, id: RequestId, result: Result<LoginInfo, LoginError>) {
        let (kind, requested_at) = match &self.login {
            Login::Pending { id: pending, kind, requested_at } if *pending == id => (*kind, *requested_at),
            _ => return,
        };
        self.take_pending(&id);
        match result {
            Ok(info) => self.finish_login(
                &id,
                LoggedIn { user: info.user, profiles: info.profiles, method: kind, expires_at: None },
                requested_at,
            ),
            Err(e) => {
                self.login = Login::None;
                let (code, message) = match e {
                    LoginError::Rejected => {
                        self.login_failures = self.login_failures.saturating_add(1);
                        (ErrorCode::LoginFailed, "invalid credentials".to_owned())
                    }
                    LoginError::Forbidden => (ErrorCode::Forbidden, "this login is not allowed here".to_owned()),
                    LoginError::Upstream(why) => (ErrorCode::LoginFailed, truncate(&format!("upstream: {why}"))),
                };
                self.send_error(Some(&id), code, &message);
            }
        }
    }

    /// Answers a pending request: `body` (an object; anything else counts as `{}`) gets `type`,
    /// `id` and `ok:true` added. Ids that are not pending, and logins, are ignored.
    pub fn reply(&mut self, id: RequestId, body: Value) {
        match self.pending.iter().find(|(p, _)| *p == id) {
            Some((_, kind)) if *kind != "login" => {}
            _ => return,
        }
        let Some(kind) = self.take_pending(&id) else { return };
        let body = match body {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        self.send_reply(kind, &id, body);
    }

    /// Refuses a pending request, or with `None` reports a failure that has no request to hang
    /// on, e.g. a candidate without id for a call that is gone.
    pub fn error(&mut self, id: Option<RequestId>, code: ErrorCode, message: &str) {
        if let Some(id) = &id {
            self.take_pending(id);
            if matches!(&self.login, Login::Pending { id: pending, .. } if pending == id) {
                self.login = Login::None;
            }
        }
        self.send_error(id.as_ref(), code, message);
    }

    pub fn event(&mut self, event: ServerEvent) {
        if let Ok(text) = serde_json::to_string(&event) {
            self.outgoing.push_back(text);
        }
    }

    pub fn user(&self) -> Option<&LoggedIn> {
        match &self.login {
            Login::Done(user) => Some(user),
            _ => None,
        }
    }

    /// The negotiated protocol version, once hello succeeded.
    pub fn version(&self) -> Option<u32> {
        self.version
    }

    fn dispatch(&mut self, kind: &'static str, message: ClientMessage, now_unix: u64) {
        let request = match message {
            ClientMessage::Hello { id, versions } => return self.on_hello(&id, &versions),
            ClientMessage::Ping { id } => return self.send_reply_raw("pong", &id, Map::new()),
            ClientMessage::Login { id, method } => return self.on_login(id, method, now_unix),
            other => other,
        };
        if self.user().is_none() {
            return self.send_error(message_id(&request), ErrorCode::NotLoggedIn, "log in first");
        }
        match to_request(request) {
            Ok(request) => {
                self.queue(kind, request);
            }
            Err((id, message)) => self.send_error(id.as_ref(), ErrorCode::BadRequest, &message),
        }
    }

    fn on_hello(&mut self, id: &RequestId, versions: &[u32]) {
        if self.version.is_some() {
            return self.send_error(Some(id), ErrorCode::BadRequest, "hello was already received");
        }
        let Some(version) = SUPPORTED_VERSIONS.iter().copied().find(|v| versions.contains(v)) else {
            let message = format!("this server speaks versions {SUPPORTED_VERSIONS:?}");
            return self.send_error(Some(id), ErrorCode::UnsupportedVersion, &message);
        };
        self.version = Some(version);
        let mut body = Map::new();
        body.insert("version".into(), version.into());
        body.insert("server".into(), self.config.server.clone().into());
        self.send_reply("hello", id, body);
    }

    fn on_login(&mut self, id: RequestId, method: LoginMethod, now_unix: u64) {
        match &self.login {
            Login::Done(user) => {
                let message = truncate(&format!("already logged in as {}", user.user));
                return self.send_error(Some(&id), ErrorCode::AlreadyLoggedIn, &message);
            }
            Login::Pending { .. } => {
                return self.send_error(Some(&id), ErrorCode::AlreadyLoggedIn, "a login is in progress")
            }
            Login::None => {}
        }
        if self.login_failures >= MAX_LOGIN_FAILURES {
            return self.send_error(Some(&id), ErrorCode::RateLimited, "too many failed logins on this connection");
        }
        let (request, kind) = match method {
            LoginMethod::Token { token } => return self.token_login(&id, token.expose(), now_unix),
            LoginMethod::Password { user, password } => {
                let checked = validate::text("user", &user, MAX_USER)
                    .and_then(|()| validate::text("password", password.expose(), MAX_PASSWORD));
                if let Err(message) = checked {
                    return self.send_error(Some(&id), ErrorCode::BadRequest, &message);
                }
                (Request::PasswordLogin { id: id.clone(), user, password }, LoginKind::Password)
            }
            LoginMethod::Pbx { profile, user, password } => {
                let checked = validate::text("profile", &profile, MAX_PROFILE)
                    .and_then(|()| validate::text("user", &user, MAX_USER))
                    .and_then(|()| validate::text("password", password.expose(), MAX_PASSWORD));
                if let Err(message) = checked {
                    return self.send_error(Some(&id), ErrorCode::BadRequest, &message);
                }
                (Request::PbxLogin { id: id.clone(), profile, user, password }, LoginKind::Pbx)
            }
        };
        if self.queue("login", request) {
            self.login = Login::Pending { id, kind, requested_at: now_unix };
        }
    }

    fn token_login(&mut self, id: &RequestId, token: &str, now_unix: u64) {
        let Some(secret) = self.config.jwt_secret.as_deref().filter(|s| !s.is_empty()) else {
            return self.send_error(Some(id), ErrorCode::LoginFailed, "token login is not enabled");
        };
        match jwt::verify(token, secret, now_unix, TOKEN_LEEWAY_SECS) {
            Ok(claims) => {
                let user = LoggedIn {
                    user: claims.sub,
                    profiles: claims.profiles,
                    method: LoginKind::Token,
                    expires_at: Some(claims.exp),
                };
                self.finish_login(id, user, now_unix);
            }
            Err(e) => {
                self.login_failures = self.login_failures.saturating_add(1);
                let code = if e == TokenError::Expired { ErrorCode::TokenExpired } else { ErrorCode::TokenInvalid };
                self.send_error(Some(id), code, &e.to_string());
            }
        }
    }

    fn finish_login(&mut self, id: &RequestId, user: LoggedIn, now_unix: u64) {
        let mut body = Map::new();
        body.insert("user".into(), user.user.clone().into());
        body.insert("profiles".into(), user.profiles.clone().into());
        let ice_servers = super::ice::for_login(&self.config.ice_servers, &user.user, now_unix);
        body.insert("ice_servers".into(), serde_json::to_value(&ice_servers).unwrap_or_default());
        self.login = Login::Done(user);
        self.send_reply("login", id, body);
    }

    /// Hands a request to the owner; false (and an error sent) when it cannot be tracked.
    fn queue(&mut self, kind: &'static str, request: Request) -> bool {
        if let Some(id) = request.id() {
            if self.pending.iter().any(|(p, _)| p == id) {
                self.send_error(Some(id), ErrorCode::BadRequest, "id is already used by a pending request");
                return false;
            }
            if self.pending.len() >= MAX_PENDING {
                self.send_error(Some(id), ErrorCode::RateLimited, "too many requests in flight");
                return false;
            }
            self.pending.push((id.clone(), kind));
        }
        self.requests.push_back(request);
        true
    }

    fn take_pending(&mut self, id: &RequestId) -> Option<&'static str> {
        let index = self.pending.iter().position(|(p, _)| p == id)?;
        Some(self.pending.swap_remove(index).1)
    }

    fn take_token(&mut self, now_unix: u64) -> bool {
        let elapsed = now_unix.saturating_sub(self.refilled_at);
        if elapsed > 0 {
            let refill = elapsed.saturating_mul(u64::from(RATE_PER_SEC));
            self.tokens = u64::from(self.tokens).saturating_add(refill).min(u64::from(RATE_BURST)) as u32;
            self.refilled_at = now_unix;
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens = self.tokens.saturating_sub(1);
        true
    }

    fn send_reply(&mut self, kind: &str, id: &RequestId, mut body: Map<String, Value>) {
        body.insert("ok".into(), Value::Bool(true));
        self.send_reply_raw(kind, id, body);
    }

    fn send_reply_raw(&mut self, kind: &str, id: &RequestId, mut body: Map<String, Value>) {
        body.insert("type".into(), kind.into());
        body.insert("id".into(), serde_json::to_value(id).unwrap_or_default());
        if let Ok(text) = serde_json::to_string(&body) {
            self.outgoing.push_back(text);
        }
    }

    fn send_error(&mut self, id: Option<&RequestId>, code: ErrorCode, message: &str) {
        let frame = ErrorFrame { kind: "error", id, code, message };
        if let Ok(text) = serde_json::to_string(&frame) {
            self.outgoing.push_back(text);
        }
    }
}

fn truncate(text: &str) -> String {
    match text.char_indices().nth(MAX_DETAIL) {
        Some((cut, _)) => format!("{}…", text.get(..cut).unwrap_or_default()),
        None => text.to_owned(),
    }
}
