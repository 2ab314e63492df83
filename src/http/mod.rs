//! The HTTP side: health, metrics, the status API, the browser signaling WebSocket and the web/
//! pages (embedded in the binary). The API and metrics need a bearer token; `/ws` needs a login.

pub mod console;
mod console_users;
mod openapi;
pub(crate) mod records;
pub mod tls;
pub mod sip_ws;
mod ws;

use crate::config::{LocalUser, Secret};
use crate::media::engine::MediaEngine;
use crate::sip::endpoint::StatusHandle;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::fmt::Write;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub sip: StatusHandle,
    pub api_tokens: Arc<Vec<Secret>>,
    pub signaling: Arc<SignalingContext>,
    pub records: Arc<dyn crate::store::CallStore>,
    pub recorder: crate::store::RecorderHandle,
    pub console: Arc<ConsoleContext>,
    /// Set when `http.sip_websocket` serves SIP over WebSocket at `/sip`.
    pub sip_websocket: Option<sip_ws::SipWebSocket>,
}

/// Who may log in to the web console, and the session signer.
pub struct ConsoleContext {
    pub users: console::ConsoleUsers,
    pub sessions: console::Sessions,
    /// Served over HTTPS: session cookies are marked `Secure`.
    pub secure_cookies: bool,
}

/// What the WebSocket endpoint needs from the rest of the gateway.
pub struct SignalingContext {
    pub jwt_secret: Option<Vec<u8>>,
    pub server: String,
    /// For the login reply (`signaling::ice`); the gateway's own legs use none of them.
    pub ice_servers: Vec<crate::config::IceServerConfig>,
    pub engine: Arc<MediaEngine>,
    pub opus_complexity: u8,
    pub local_users: Vec<LocalUser>,
    pub realm: String,
    pub webrtc: crate::call::echo::WebRtcSettings,
    pub login_guard: LoginGuard,
    pub browsers: Arc<crate::call::registry::BrowserRegistry>,
    pub calls: Arc<crate::call::inbound::CallLayer>,
    /// Open signaling WebSockets.
    pub websockets: OpenSockets,
}

/// How many signaling WebSockets are open, and a way to wait for none (a drain closes them).
#[derive(Default)]
pub struct OpenSockets {
    count: std::sync::atomic::AtomicUsize,
    closed: tokio::sync::Notify,
}

impl OpenSockets {
    pub fn count(&self) -> usize {
        self.count.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Counts one open socket until the guard drops.
    pub(crate) fn open(&self) -> OpenSocket<'_> {
        self.count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        OpenSocket(self)
    }

    /// Completes once no signaling WebSocket is open.
    pub async fn none_open(&self) {
        loop {
            let closed = self.closed.notified();
            tokio::pin!(closed);
            closed.as_mut().enable();
            if self.count() == 0 {
                return;
            }
            closed.await;
        }
    }
}

pub(crate) struct OpenSocket<'a>(&'a OpenSockets);

impl Drop for OpenSocket<'_> {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        self.0.closed.notify_waiters();
    }
}

/// Failed browser logins per source address: after `MAX_FAILURES` within `WINDOW`, further login
/// attempts from that address are refused with `rate_limited` until the window passes. Bounded.
#[derive(Default)]
pub struct LoginGuard {
    failures: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, (u32, std::time::Instant)>>,
}

impl LoginGuard {
    const MAX_FAILURES: u32 = 10;
    const WINDOW: std::time::Duration = std::time::Duration::from_secs(300);
    const MAX_ADDRESSES: usize = 100_000;

    pub fn blocked(&self, address: std::net::IpAddr) -> bool {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.get(&address).is_some_and(|(count, since)| *count >= Self::MAX_FAILURES && since.elapsed() < Self::WINDOW)
    }

    pub fn failed(&self, address: std::net::IpAddr) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() >= Self::MAX_ADDRESSES {
            failures.retain(|_, (_, since)| since.elapsed() < Self::WINDOW);
        }
        let entry = failures.entry(address).or_insert((0, std::time::Instant::now()));
        if entry.1.elapsed() >= Self::WINDOW {
            *entry = (0, std::time::Instant::now());
        }
        entry.0 += 1;
    }
}

/// web/ is compiled into the binary so one file serves everything.
const STATIC_FILES: &[(&str, &str, &str)] = &[
    ("/", include_str!("../../web/phone.html"), "text/html; charset=utf-8"),
    ("/phone.html", include_str!("../../web/phone.html"), "text/html; charset=utf-8"),
    ("/sipbridge.js", include_str!("../../web/sipbridge.js"), "text/javascript; charset=utf-8"),
    ("/phone.js", include_str!("../../web/phone.js"), "text/javascript; charset=utf-8"),
    ("/phone_logic.mjs", include_str!("../../web/phone_logic.mjs"), "text/javascript; charset=utf-8"),
    ("/phone_audio.js", include_str!("../../web/phone_audio.js"), "text/javascript; charset=utf-8"),
    ("/phone.css", include_str!("../../web/phone.css"), "text/css; charset=utf-8"),
    ("/console", include_str!("../../web/console.html"), "text/html; charset=utf-8"),
    ("/console.js", include_str!("../../web/console.js"), "text/javascript; charset=utf-8"),
    ("/console.css", include_str!("../../web/console.css"), "text/css; charset=utf-8"),
];

/// Bytes the kernel may queue toward one HTTP client (it doubles the figure for its own
/// bookkeeping). Signalling frames are a few KiB; an API reply larger than this is sent as
/// the client reads it.
pub const SEND_BUFFER: usize = 64 * 1024;

pub fn router(state: AppState) -> Router {
    let mut router = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/readyz", get(readyz))
        .route("/api/v1/sip/status", get(sip_status))
        .route("/api/v1/drain", post(start_drain))
        .route("/api/v1/calls", get(records::list))
        .route("/api/v1/calls.csv", get(records::export))
        .route("/api/v1/calls/{id}", get(records::one))
        .route("/api/v1/openapi.json", get(openapi_document))
        .route("/console/login", post(console::login))
        .route("/console/logout", post(console::logout))
        .route("/console/me", get(console::me))
        .route("/console/password", post(console::change_password))
        .route("/ws", get(ws::upgrade))
        .route("/sip", get(sip_ws::upgrade));
    for (path, body, content_type) in STATIC_FILES {
        router = router.route(path, get(move || async move { ([(header::CONTENT_TYPE, *content_type)], *body) }));
    }
    router
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
        .with_state(state)
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": { "code": code, "message": message } }))).into_response()
}

/// Constant-time comparison, so response timing does not reveal how much of a token was right.
fn authorized(headers: &HeaderMap, tokens: &[Secret]) -> bool {
    let Some(presented) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")) else {
        return false;
    };
    tokens.iter().any(|token| {
        let (a, b) = (token.0.as_bytes(), presented.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    })
}

/// Bearer tokens (operators' scripts) act as admin; console sessions carry their role.
/// `Err` is the 401 or 403 to answer with.
fn access(state: &AppState, headers: &HeaderMap, admin_only: bool) -> Result<(), Response> {
    if authorized(headers, &state.api_tokens) {
        return Ok(());
    }
    match console::session(state, headers) {
        console::SessionCheck::Ready(_, crate::config::ConsoleRole::Admin) => Ok(()),
        console::SessionCheck::Ready(..) if admin_only => Err(error(StatusCode::FORBIDDEN, "forbidden", "this needs an admin")),
        console::SessionCheck::Ready(..) => Ok(()),
        console::SessionCheck::MustChangePassword(_) => Err(error(StatusCode::FORBIDDEN, "password_change_required", "change the password first (POST /console/password)")),
        console::SessionCheck::None => Err(unauthorized()),
    }
}

/// `access` for a request that changes state (admins only). A console session's request must
/// also come from the console's own origin: a cookie rides along with any site's form post.
fn access_to_change(state: &AppState, headers: &HeaderMap) -> Result<(), Response> {
    if authorized(headers, &state.api_tokens) {
        return Ok(());
    }
    if !matches!(console::session(state, headers), console::SessionCheck::None) && !console::same_origin(headers) {
        return Err(error(StatusCode::FORBIDDEN, "cross_origin", "a console session's changes must come from the console's own origin"));
    }
    access(state, headers, true)
}

fn unauthorized() -> Response {
    let mut response = error(StatusCode::UNAUTHORIZED, "unauthorized", "a valid bearer token is required");
    response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
    response
}

async fn openapi_document(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(refusal) = access(&state, &headers, false) {
        return refusal;
    }
    ([(header::CONTENT_TYPE, "application/json")], openapi::DOCUMENT).into_response()
}

/// Ready when the SIP endpoint runs, the call-record spool can be written and the call-record
/// database answers. Like everything but
/// /healthz it needs a token (probes can send one).
async fn readyz(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(refusal) = access(&state, &headers, false) {
        return refusal;
    }
    if state.sip.snapshot().await.is_none() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "sip_unavailable", "the SIP endpoint is not running");
    }
    // A load balancer or Kamailio's dispatcher stops sending calls to a draining gateway.
    if !state.signaling.calls.drain.accepting() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "draining", "the gateway is draining and takes no new calls");
    }
    // Calls go on, but their records only wait in memory: a crash now would lose them.
    let spool = state.recorder.spool_health();
    if spool.failing() {
        let message = format!("the call-record spool cannot be written (disk full?); {} record writes wait in memory", spool.backlog());
        return error(StatusCode::SERVICE_UNAVAILABLE, "records_degraded", &message);
    }
    match state.records.count().await {
        Ok(_) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => records::store_error(e),
    }
}

/// `POST /api/v1/drain` (admin): the same as SIGTERM. New calls are refused, calls in progress
/// carry on for `[calls] drain_secs`, then the rest are ended and the process exits.
async fn start_drain(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(refusal) = access_to_change(&state, &headers) {
        return refusal;
    }
    let calls = &state.signaling.calls;
    let started = calls.drain.begin();
    let body = serde_json::json!({ "draining": true, "already_draining": !started, "calls": calls.active.active() });
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

async fn sip_status(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(refusal) = access(&state, &headers, true) {
        return refusal;
    }
    match state.sip.snapshot().await {
        Some(status) => Json(status).into_response(),
        None => error(StatusCode::SERVICE_UNAVAILABLE, "sip_unavailable", "the SIP endpoint is not running"),
    }
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(refusal) = access(&state, &headers, true) {
        return refusal;
    }
    let Some(status) = state.sip.snapshot().await else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "sip_unavailable", "the SIP endpoint is not running");
    };
    let mut out = String::new();
    let counters = &status.core.counters;
    let _ = writeln!(out, "# TYPE sipbridge_sip_messages_received_total counter");
    let _ = writeln!(out, "sipbridge_sip_messages_received_total {}", counters.messages_received);
    let _ = writeln!(out, "# TYPE sipbridge_sip_responses_sent_total counter");
    for (code, count) in &counters.responses_sent {
        let _ = writeln!(out, "sipbridge_sip_responses_sent_total{{code=\"{code}\"}} {count}");
    }
    let _ = writeln!(out, "# TYPE sipbridge_sip_dropped_total counter");
    for (reason, count) in &counters.dropped {
        let _ = writeln!(out, "sipbridge_sip_dropped_total{{reason=\"{reason}\"}} {count}");
    }
    let _ = writeln!(out, "# TYPE sipbridge_sip_untrusted_refused_total counter");
    let _ = writeln!(out, "sipbridge_sip_untrusted_refused_total {}", counters.untrusted_refused);
    // Ladders: only calls past the trust gate are kept; the rest is counted here.
    let ladder = &status.ladder;
    let _ = writeln!(out, "# TYPE sipbridge_sip_ladder_skipped_total counter");
    let _ = writeln!(out, "sipbridge_sip_ladder_skipped_total{{reason=\"outside_trusted_call\"}} {}", ladder.outside_trusted_calls);
    let _ = writeln!(out, "sipbridge_sip_ladder_skipped_total{{reason=\"call_limit\"}} {}", ladder.over_call_limit);
    let _ = writeln!(out, "# TYPE sipbridge_sip_ladder_evicted_total counter");
    let _ = writeln!(out, "sipbridge_sip_ladder_evicted_total {}", ladder.evicted);
    let _ = writeln!(out, "# TYPE sipbridge_sip_ladder_calls gauge");
    let _ = writeln!(out, "sipbridge_sip_ladder_calls {}", ladder.calls);
    let _ = writeln!(out, "# TYPE sipbridge_sip_ladder_bytes gauge");
    let _ = writeln!(out, "sipbridge_sip_ladder_bytes {}", ladder.bytes);
    let transport = &status.transport;
    let _ = writeln!(out, "# TYPE sipbridge_sip_rate_limited_total counter");
    let _ = writeln!(out, "sipbridge_sip_rate_limited_total {}", transport.rate_limited);
    let _ = writeln!(out, "# TYPE sipbridge_sip_connections_open gauge");
    let _ = writeln!(out, "sipbridge_sip_connections_open {}", transport.connections_open);
    let _ = writeln!(out, "# TYPE sipbridge_sip_oversized_total counter");
    let _ = writeln!(out, "sipbridge_sip_oversized_total {}", transport.oversized);
    let _ = writeln!(out, "# TYPE sipbridge_sip_websocket_closed_total counter");
    let _ = writeln!(out, "sipbridge_sip_websocket_closed_total{{reason=\"protocol_error\"}} {}", transport.ws_protocol_errors);
    let _ = writeln!(out, "sipbridge_sip_websocket_closed_total{{reason=\"idle\"}} {}", transport.ws_idle_closed);
    let _ = writeln!(out, "# TYPE sipbridge_sip_websocket_refused_total counter");
    let _ = writeln!(out, "sipbridge_sip_websocket_refused_total{{reason=\"no_sip_subprotocol\"}} {}", transport.ws_handshake_refused);
    let _ = writeln!(out, "# TYPE sipbridge_registrations gauge");
    let _ = writeln!(out, "sipbridge_registrations{{side=\"phones\"}} {}", status.core.bindings.len());
    let upstream_up = status.core.upstreams.iter().filter(|u| u.registered).count();
    let _ = writeln!(out, "sipbridge_registrations{{side=\"upstream\"}} {upstream_up}");
    let _ = writeln!(out, "# TYPE sipbridge_peer_up gauge");
    for upstream in &status.core.upstreams {
        let up = u8::from(upstream.peer_status == "up");
        let _ = writeln!(out, "sipbridge_peer_up{{profile=\"{}\"}} {up}", upstream.profile);
    }
    let calls = &state.signaling.calls;
    let _ = writeln!(out, "# TYPE sipbridge_calls_active gauge");
    let _ = writeln!(out, "sipbridge_calls_active {}", calls.active.active());
    let _ = writeln!(out, "# TYPE sipbridge_calls_total counter");
    for (status, count) in calls.stats.ended_by_status() {
        let _ = writeln!(out, "sipbridge_calls_total{{status=\"{status}\"}} {count}");
    }
    let _ = writeln!(out, "# TYPE sipbridge_transcoding_sessions gauge");
    let _ = writeln!(out, "sipbridge_transcoding_sessions {}", calls.stats.transcoding_sessions());
    let (received, lost) = calls.stats.rtp();
    let _ = writeln!(out, "# TYPE sipbridge_rtp_packets_received_total counter");
    let _ = writeln!(out, "sipbridge_rtp_packets_received_total {received}");
    let _ = writeln!(out, "# TYPE sipbridge_rtp_packets_lost_total counter");
    let _ = writeln!(out, "sipbridge_rtp_packets_lost_total {lost}");
    let (unknown_flow, unknown_ufrag, rejected) = calls.engine.webrtc_drops();
    let _ = writeln!(out, "# TYPE sipbridge_webrtc_dropped_total counter");
    let _ = writeln!(out, "sipbridge_webrtc_dropped_total{{reason=\"unknown_flow\"}} {unknown_flow}");
    let _ = writeln!(out, "sipbridge_webrtc_dropped_total{{reason=\"unknown_ufrag\"}} {unknown_ufrag}");
    let _ = writeln!(out, "sipbridge_webrtc_dropped_total{{reason=\"rejected_by_leg\"}} {rejected}");
    let _ = writeln!(out, "# TYPE sipbridge_media_sends_refused_total counter");
    let _ = writeln!(out, "sipbridge_media_sends_refused_total {}", calls.engine.sends_refused());
    let _ = writeln!(out, "# TYPE sipbridge_browser_push_waits_total counter");
    let _ = writeln!(out, "sipbridge_browser_push_waits_total {}", calls.stats.push_waits());
    let _ = writeln!(out, "# TYPE sipbridge_websocket_connections gauge");
    let _ = writeln!(out, "sipbridge_websocket_connections {}", state.signaling.websockets.count());
    let _ = writeln!(out, "# TYPE sipbridge_record_spool_depth gauge");
    let _ = writeln!(out, "sipbridge_record_spool_depth {}", state.recorder.spool_depth());
    let spool = state.recorder.spool_health();
    let _ = writeln!(out, "# TYPE sipbridge_record_spool_writable gauge");
    let _ = writeln!(out, "sipbridge_record_spool_writable {}", u8::from(!spool.failing()));
    let _ = writeln!(out, "# TYPE sipbridge_record_spool_errors_total counter");
    let _ = writeln!(out, "sipbridge_record_spool_errors_total {}", spool.errors());
    let _ = writeln!(out, "# TYPE sipbridge_record_memory_backlog gauge");
    let _ = writeln!(out, "sipbridge_record_memory_backlog {}", spool.backlog());
    let _ = writeln!(out, "# TYPE sipbridge_record_writes_dropped_total counter");
    let _ = writeln!(out, "sipbridge_record_writes_dropped_total {}", spool.dropped());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}
