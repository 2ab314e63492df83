//! Web console logins: argon2-hashed users with a role, and signed session cookies. A session is
//! `user.role.expiry.mac` (HMAC-SHA256 with a key kept in the data directory), `HttpOnly` and
//! `SameSite=Strict`; login and logout also check `Origin` against `Host`, so another site can
//! neither use nor plant a session.

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

/// Users from the config plus those `sipbridge user add` wrote to the data directory.
pub fn load_users(configured: &[ConsoleUser], data_dir: &Path) -> Vec<ConsoleUser> {
    let mut users = configured.to_vec();
    if let Ok(text) = std::fs::read_to_string(users_file(data_dir)) {
        match toml::from_str::<UsersFile>(&text) {
            Ok(file) => users.extend(file.users.into_iter().filter(|u| !configured.iter().any(|c| c.username == u.username))),
            Err(e) => tracing::warn!(error = %e, "console-users.toml is unreadable; its users cannot log in"),
        }
    }
    users
}

#[derive(serde::Deserialize, serde::Serialize, Default)]
struct UsersFile {
    #[serde(default)]
    users: Vec<ConsoleUser>,
}

pub fn users_file(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("console-users.toml")
}

/// `sipbridge user add`: adds or replaces `username` in the data directory's users file.
pub fn add_user(data_dir: &Path, username: &str, password: &str, role: ConsoleRole) -> Result<(), String> {
    if username.is_empty() || username.len() > 64 || !username.chars().all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c)) {
        return Err("user names use letters, digits and . _ - @ (at most 64)".into());
    }
    if password.chars().count() < 10 {
        return Err("the password needs at least 10 characters".into());
    }
    let path = users_file(data_dir);
    let mut file: UsersFile = std::fs::read_to_string(&path).ok().and_then(|t| toml::from_str(&t).ok()).unwrap_or_default();
    file.users.retain(|u| u.username != username);
    file.users.push(ConsoleUser { username: username.into(), password_hash: hash_password(password)?, role, profiles: Vec::new() });
    std::fs::create_dir_all(data_dir).map_err(|e| e.to_string())?;
    let text = toml::to_string(&file).map_err(|e| e.to_string())?;
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Signs and checks session cookies.
pub struct Sessions {
    key: Vec<u8>,
}

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
        Ok(Sessions { key })
    }

    fn mac(&self, payload: &str) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else { return String::new() };
        mac.update(payload.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    pub fn issue(&self, user: &str, role: ConsoleRole, now: u64) -> String {
        let user = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(user);
        let role = if role == ConsoleRole::Admin { "admin" } else { "viewer" };
        let payload = format!("{user}.{role}.{}", now + SESSION_SECS);
        format!("{payload}.{}", self.mac(&payload))
    }

    pub fn verify(&self, cookie: &str, now: u64) -> Option<(String, ConsoleRole)> {
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
        (now < expiry).then_some((user, role))
    }
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The session in a request's cookies, if valid.
pub fn session(state: &AppState, headers: &HeaderMap) -> Option<(String, ConsoleRole)> {
    let cookies = headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).map(str::trim).collect::<Vec<_>>();
    let value = cookies.iter().find_map(|c| c.strip_prefix(&format!("{COOKIE}=")))?;
    state.console.sessions.verify(value, now_secs())
}

/// Cross-site form posts carry another Origin; requests without one (curl, tests) are allowed.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else { return true };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    origin.split_once("://").is_some_and(|(_, rest)| rest == host)
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
    let user = state.console.users.iter().find(|u| u.username == username);
    // Verify against a dummy hash for unknown users too, so timing does not reveal who exists.
    let hash = user.map(|u| u.password_hash.as_str()).unwrap_or_else(|| dummy_hash());
    let matches = tokio::task::spawn_blocking({
        let (hash, password) = (hash.to_string(), password.clone());
        move || password_matches(&hash, &password)
    })
    .await
    .unwrap_or(false);
    let Some(user) = user.filter(|_| matches) else {
        state.signaling.login_guard.failed(peer.ip());
        tracing::warn!(source = %peer, "console login failed");
        return error(StatusCode::UNAUTHORIZED, "login_failed", "wrong user name or password");
    };
    tracing::info!(user = %user.username, "console login");
    let cookie = format!("{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_SECS}", state.console.sessions.issue(&user.username, user.role, now_secs()));
    let mut response = Json(serde_json::json!({ "user": user.username, "role": user.role })).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

pub(super) async fn logout(headers: HeaderMap) -> Response {
    if !same_origin(&headers) {
        return error(StatusCode::FORBIDDEN, "cross_origin", "logout must come from the console's own origin");
    }
    let mut response = Json(serde_json::json!({})).into_response();
    response.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_static("sb_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"));
    response
}

pub(super) async fn me(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match session(&state, &headers) {
        Some((user, role)) => Json(serde_json::json!({ "user": user, "role": role })).into_response(),
        None => error(StatusCode::UNAUTHORIZED, "unauthorized", "log in first"),
    }
}

/// A softphone `password` login by a console user: the profiles granted to them, if the user
/// exists, has been granted any, and the password matches its hash. Unknown users are checked
/// against a dummy hash, so a refusal takes as long whether or not the name exists. Slow by
/// design (argon2): call it off the async threads.
pub fn softphone_login(users: &[ConsoleUser], username: &str, password: &str) -> Option<Vec<String>> {
    match users.iter().find(|u| u.username == username && !u.profiles.is_empty()) {
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
