//! Web console logins: argon2-hashed users with a role, and signed session cookies. A session is
//! `user.role.expiry.id.mac` (HMAC-SHA256 with a key kept in the data directory; `id` is random,
//! so every login gets a new session and a cookie planted before it is never adopted), `HttpOnly`,
//! `SameSite=Strict`, and `Secure` when the request came over HTTPS (a TLS proxy says so with
//! `X-Forwarded-Proto` or `Forwarded`). Logout revokes the session. Login, logout and every
//! state-changing request a session makes check `Origin` against `Host` (`same_origin`), so
//! another site can neither use nor plant a session; failed logins count toward the per-address
//! limit shared with the softphone (`LoginGuard`).

use super::{error, AppState};
use crate::config::{ConsoleRole, ConsoleUser};
use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::net::SocketAddr;
use std::path::Path;

pub use super::console_users::{add_user, first_admin, load_users, users_file, ChangeError, ConsoleUsers};
use std::time::{SystemTime, UNIX_EPOCH};

const COOKIE: &str = "sb_session";
const SESSION_SECS: u64 = 8 * 3_600;

pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| e.to_string())
}

fn password_matches(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

/// Signs and checks session cookies, and remembers the sessions logged out before they expire.
pub struct Sessions {
    key: Vec<u8>,
    /// Session id -> expiry of logged-out sessions; bounded, pruned as they expire.
    revoked: std::sync::Mutex<std::collections::HashMap<String, u64>>,
}

/// Logged-out sessions remembered at most; beyond it the one expiring first is forgotten.
const MAX_REVOKED: usize = 100_000;

impl Sessions {
    /// The key lives in the data directory so sessions survive a restart; made on first use.
    pub fn open(data_dir: &Path) -> std::io::Result<Sessions> {
        let path = data_dir.join("session.key");
        let key = match std::fs::read(&path) {
            Ok(key) if key.len() >= 32 => key,
            _ => {
                let key: Vec<u8> = (0..32).map(|_| rand::random::<u8>()).collect();
                std::fs::create_dir_all(data_dir)?;
                std::fs::write(&path, &key)?;
                key
            }
        };
        Ok(Sessions { key, revoked: Default::default() })
    }

    fn mac(&self, payload: &str) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else { return String::new() };
        mac.update(payload.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// A new session: its id is random, so no two logins share a cookie.
    pub fn issue(&self, user: &str, role: ConsoleRole, now: u64) -> String {
        let user = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(user);
        let role = if role == ConsoleRole::Admin { "admin" } else { "viewer" };
        let id = format!("{:032x}", rand::random::<u128>());
        let payload = format!("{user}.{role}.{}.{id}", now + SESSION_SECS);
        format!("{payload}.{}", self.mac(&payload))
    }

    pub fn verify(&self, cookie: &str, now: u64) -> Option<(String, ConsoleRole)> {
        self.check(cookie, now).map(|session| (session.user, session.role))
    }

    /// Logs the session out: its cookie is refused from now on, even if a copy survives.
    pub fn revoke(&self, cookie: &str, now: u64) {
        let Some(session) = self.check(cookie, now) else { return };
        let mut revoked = self.revoked.lock().unwrap_or_else(|p| p.into_inner());
        if revoked.len() >= MAX_REVOKED {
            revoked.retain(|_, expiry| *expiry > now);
        }
        if revoked.len() >= MAX_REVOKED {
            let first = revoked.iter().min_by_key(|(_, expiry)| **expiry).map(|(id, _)| id.clone());
            if let Some(first) = first {
                revoked.remove(&first);
            }
        }
        revoked.insert(session.id, session.expiry);
    }

    fn check(&self, cookie: &str, now: u64) -> Option<Session> {
        let (payload, mac) = cookie.rsplit_once('.')?;
        let expected = self.mac(payload);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), mac.as_bytes())) {
            return None;
        }
        let mut parts = payload.split('.');
        let user = String::from_utf8(base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(parts.next()?).ok()?).ok()?;
        let role = match parts.next()? {
            "admin" => ConsoleRole::Admin,
            "viewer" => ConsoleRole::Viewer,
            _ => return None,
        };
        let expiry: u64 = parts.next()?.parse().ok()?;
        let id = parts.next().filter(|id| id.len() == 32)?.to_string();
        if parts.next().is_some() || now >= expiry {
            return None;
        }
        let revoked = self.revoked.lock().unwrap_or_else(|p| p.into_inner());
        (!revoked.contains_key(&id)).then_some(Session { user, role, expiry, id })
    }
}

struct Session {
    user: String,
    role: ConsoleRole,
    expiry: u64,
    id: String,
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The session cookie's value in a request, valid or not.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).map(str::trim).find_map(|c| c.strip_prefix(COOKIE)?.strip_prefix('='))
}

/// A request's console session.
pub enum SessionCheck {
    None,
    /// A valid session of a user who must change the password before anything else.
    MustChangePassword(String),
    Ready(String, ConsoleRole),
}

/// The session in a request's cookies: valid, not logged out, of a user who still exists.
pub fn session(state: &AppState, headers: &HeaderMap) -> SessionCheck {
    let Some((name, role)) = session_cookie(headers).and_then(|value| state.console.sessions.verify(value, now_secs())) else {
        return SessionCheck::None;
    };
    match state.console.users.get(&name) {
        None => SessionCheck::None,
        Some(user) if user.must_change_password => SessionCheck::MustChangePassword(name),
        Some(_) => SessionCheck::Ready(name, role),
    }
}

/// Whether a request may change state on behalf of whoever's cookie it carries: its `Origin` is
/// this host, or, without one (curl, tests), the browser's `Sec-Fetch-Site` does not call it
/// another site's. Browsers send `Origin` with every POST, so a cross-site form or `fetch`
/// is always caught here, whatever `SameSite` an old browser ignores.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    match headers.get(header::ORIGIN).map(|o| o.to_str().unwrap_or("")) {
        Some(origin) => origin.split_once("://").is_some_and(|(_, rest)| !host.is_empty() && rest.eq_ignore_ascii_case(host)),
        None => !headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()).is_some_and(|site| site == "cross-site" || site == "same-site"),
    }
}

/// The request reached us over HTTPS through a TLS-terminating proxy that says so. Only used to
/// add `Secure` to cookies, which a forged header cannot abuse.
fn over_https(headers: &HeaderMap) -> bool {
    let forwarded_proto = headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
    let forwarded = headers.get("forwarded").and_then(|v| v.to_str().ok()).is_some_and(|f| {
        f.split([';', ',']).any(|pair| pair.trim().split_once('=').is_some_and(|(k, v)| k.trim().eq_ignore_ascii_case("proto") && v.trim().trim_matches('"').eq_ignore_ascii_case("https")))
    });
    forwarded_proto || forwarded
}

/// The `Set-Cookie` value for a session (`value` empty and `max_age` 0 clear it). `Secure` when
/// the gateway serves HTTPS itself (`[http.tls]`) or a proxy in front did, so a browser never
/// sends the session over plain HTTP.
fn session_cookie_header(state: &AppState, value: &str, max_age: u64, headers: &HeaderMap) -> Option<HeaderValue> {
    let secure = if state.console.secure_cookies || over_https(headers) { "; Secure" } else { "" };
    HeaderValue::from_str(&format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")).ok()
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Login {
    username: String,
    password: String,
}

pub(super) async fn login(State(state): State<AppState>, ConnectInfo(peer): ConnectInfo<SocketAddr>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if !same_origin(&headers) {
        return error(StatusCode::FORBIDDEN, "cross_origin", "login must come from the console's own origin");
    }
    if state.signaling.login_guard.blocked(peer.ip()) {
        return error(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many failed logins from this address; try again later");
    }
    let Ok(Login { username, password }) = serde_json::from_slice::<Login>(&body) else {
        return error(StatusCode::BAD_REQUEST, "bad_request", "expected {\"username\": ..., \"password\": ...}");
    };
    let Some(user) = checked_user(&state, &username, &password).await else {
        state.signaling.login_guard.failed(peer.ip());
        tracing::warn!(source = %peer, "console login failed");
        return error(StatusCode::UNAUTHORIZED, "login_failed", "wrong user name or password");
    };
    tracing::info!(user = %user.username, must_change_password = user.must_change_password, "console login");
    // Always a new session, whatever cookie came with the request (no session fixation).
    let session = state.console.sessions.issue(&user.username, user.role, now_secs());
    let mut response = Json(serde_json::json!({ "user": user.username, "role": user.role, "must_change_password": user.must_change_password })).into_response();
    if let Some(value) = session_cookie_header(&state, &session, SESSION_SECS, &headers) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// The user if the password is theirs. Unknown users are checked against a dummy hash, so timing
/// does not reveal who exists.
async fn checked_user(state: &AppState, username: &str, password: &str) -> Option<ConsoleUser> {
    let user = state.console.users.get(username);
    let hash = user.as_ref().map(|u| u.password_hash.clone()).unwrap_or_else(|| dummy_hash().to_string());
    let password = password.to_string();
    let matches = tokio::task::spawn_blocking(move || password_matches(&hash, &password)).await.unwrap_or(false);
    user.filter(|_| matches)
}

pub(super) async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !same_origin(&headers) {
        return error(StatusCode::FORBIDDEN, "cross_origin", "logout must come from the console's own origin");
    }
    if let Some(cookie) = session_cookie(&headers) {
        state.console.sessions.revoke(cookie, now_secs());
    }
    let mut response = Json(serde_json::json!({})).into_response();
    if let Some(value) = session_cookie_header(&state, "", 0, &headers) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

pub(super) async fn me(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match session(&state, &headers) {
        SessionCheck::Ready(user, role) => Json(serde_json::json!({ "user": user, "role": role, "must_change_password": false })).into_response(),
        SessionCheck::MustChangePassword(user) => Json(serde_json::json!({ "user": user, "must_change_password": true })).into_response(),
        SessionCheck::None => error(StatusCode::UNAUTHORIZED, "unauthorized", "log in first"),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// `POST /console/password`: the logged-in user changes their password (the current one is
/// asked again). The only thing a session of a user who must change the password may do.
pub(super) async fn change_password(State(state): State<AppState>, ConnectInfo(peer): ConnectInfo<SocketAddr>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if !same_origin(&headers) {
        return error(StatusCode::FORBIDDEN, "cross_origin", "a password change must come from the console's own origin");
    }
    let user = match session(&state, &headers) {
        SessionCheck::Ready(user, _) | SessionCheck::MustChangePassword(user) => user,
        SessionCheck::None => return error(StatusCode::UNAUTHORIZED, "unauthorized", "log in first"),
    };
    if state.signaling.login_guard.blocked(peer.ip()) {
        return error(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many failed logins from this address; try again later");
    }
    let Ok(PasswordChange { current_password, new_password }) = serde_json::from_slice::<PasswordChange>(&body) else {
        return error(StatusCode::BAD_REQUEST, "bad_request", "expected {\"current_password\": ..., \"new_password\": ...}");
    };
    if checked_user(&state, &user, &current_password).await.is_none() {
        state.signaling.login_guard.failed(peer.ip());
        return error(StatusCode::UNAUTHORIZED, "login_failed", "the current password is wrong");
    }
    let console = state.console.clone();
    let changed = tokio::task::spawn_blocking({
        let user = user.clone();
        move || console.users.change_password(&user, &current_password, &new_password)
    })
    .await;
    match changed {
        Ok(Ok(())) => {
            tracing::info!(user = %user, "console password changed");
            Json(serde_json::json!({ "user": user, "must_change_password": false })).into_response()
        }
        Ok(Err(e @ (ChangeError::Weak(_) | ChangeError::Unchanged))) => error(StatusCode::BAD_REQUEST, "weak_password", &e.to_string()),
        Ok(Err(e @ ChangeError::Configured)) => error(StatusCode::CONFLICT, "configured_user", &e.to_string()),
        Ok(Err(e)) => {
            tracing::error!(user = %user, error = %e, "console password change failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the new password could not be saved")
        }
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the new password could not be saved"),
    }
}

/// A softphone `password` login by a console user: the profiles granted to them, if the user
/// exists, has been granted any, and the password matches its hash. Unknown users are checked
/// against a dummy hash, so a refusal takes as long whether or not the name exists. Slow by
/// design (argon2): call it off the async threads.
pub fn softphone_login(users: &[ConsoleUser], username: &str, password: &str) -> Option<Vec<String>> {
    match users.iter().find(|u| u.username == username && !u.profiles.is_empty() && !u.must_change_password) {
        Some(user) => password_matches(&user.password_hash, password).then(|| user.profiles.clone()),
        None => {
            let _ = password_matches(dummy_hash(), password);
            None
        }
    }
}

/// An argon2 hash of a random password nobody knows, for constant-time refusals.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password(&format!("{:032x}", rand::random::<u128>())).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_verify_only_untampered_unexpired_cookies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sessions = Sessions::open(dir.path()).expect("key");
        let cookie = sessions.issue("ops.lead", ConsoleRole::Viewer, 1_000);
        assert_eq!(sessions.verify(&cookie, 1_001), Some(("ops.lead".into(), ConsoleRole::Viewer)));
        assert_eq!(sessions.verify(&cookie, 1_000 + SESSION_SECS), None, "expired");
        assert_eq!(sessions.verify(&cookie.replace(".viewer.", ".admin."), 1_001), None, "role tampered");
        assert_eq!(Sessions::open(dir.path()).expect("key").verify(&cookie, 1_001).map(|(u, _)| u), Some("ops.lead".into()), "the key survives a restart");
        let other = tempfile::tempdir().expect("tempdir");
        assert_eq!(Sessions::open(other.path()).expect("key").verify(&cookie, 1_001), None, "another key");
    }

    #[test]
    fn every_login_is_a_new_session_and_logout_revokes_only_its_own() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sessions = Sessions::open(dir.path()).expect("key");
        let (first, second) = (sessions.issue("ops", ConsoleRole::Admin, 1_000), sessions.issue("ops", ConsoleRole::Admin, 1_000));
        assert_ne!(first, second, "the same user in the same second gets another session");
        sessions.revoke(&first, 1_001);
        assert_eq!(sessions.verify(&first, 1_002), None, "logged out");
        assert!(sessions.verify(&second, 1_002).is_some(), "the other session lives on");
        sessions.revoke("not.a.session", 1_002);
        let (payload, _) = second.rsplit_once('.').expect("mac");
        let extended = payload.replacen(&(1_000 + SESSION_SECS).to_string(), &(1_000 + 2 * SESSION_SECS).to_string(), 1);
        assert_eq!(sessions.verify(&format!("{extended}.{}", sessions.mac(payload)), 1_002), None, "the expiry is signed");
        assert_eq!(sessions.verify(&format!("{payload}.extra.{}", sessions.mac(payload)), 1_002), None);
    }

    #[test]
    fn origins_and_fetch_metadata_decide_what_is_same_origin() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, HeaderValue::from_static(value));
            }
            map
        };
        assert!(same_origin(&headers(&[("host", "gw.example:8080"), ("origin", "https://gw.example:8080")])));
        assert!(same_origin(&headers(&[("host", "gw.example:8080"), ("origin", "http://GW.example:8080")])));
        assert!(!same_origin(&headers(&[("host", "gw.example:8080"), ("origin", "https://evil.example")])));
        assert!(!same_origin(&headers(&[("host", "gw.example:8080"), ("origin", "null")])));
        assert!(!same_origin(&headers(&[("origin", "http://gw.example:8080")])), "no Host to match");
        assert!(same_origin(&headers(&[("host", "gw.example:8080")])), "curl sends no Origin");
        assert!(same_origin(&headers(&[("host", "gw.example:8080"), ("sec-fetch-site", "same-origin")])));
        assert!(!same_origin(&headers(&[("host", "gw.example:8080"), ("sec-fetch-site", "cross-site")])));
        assert!(over_https(&headers(&[("x-forwarded-proto", "https")])));
        assert!(over_https(&headers(&[("forwarded", "for=192.0.2.1;proto=https;by=proxy")])));
        assert!(!over_https(&headers(&[("x-forwarded-proto", "http")])));
    }

    #[test]
    fn users_added_by_the_command_can_log_in() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(add_user(dir.path(), "bad name", "long enough pw", ConsoleRole::Viewer).is_err());
        assert!(add_user(dir.path(), "ops", "short", ConsoleRole::Viewer).is_err());
        add_user(dir.path(), "ops", "correct horse battery", ConsoleRole::Admin).expect("add");
        let users = load_users(&[], dir.path());
        assert_eq!(users.len(), 1);
        assert!(users[0].password_hash.starts_with("$argon2"), "only the hash is stored");
        assert!(password_matches(&users[0].password_hash, "correct horse battery"));
        assert!(!password_matches(&users[0].password_hash, "wrong"));
        assert!(dummy_hash().starts_with("$argon2") && !password_matches(dummy_hash(), ""));
    }
}
