//! `/ws`: the browser signaling endpoint. One task per WebSocket runs the sans-IO
//! `signaling::Connection` and carries out its requests. Today the only call target is `echo`
//! (the media engine loops the caller's audio back); SIP targets arrive with the calls issue.

use super::AppState;
use crate::call::echo::{EchoCall, EchoEvent};
use crate::call::registry::{BrowserAnswer, BrowserPush};
use crate::signaling::{Caller, RejectReason};
use crate::config::{LocalUser, UserSecret};
use crate::signaling::{Connection, ConnectionConfig, ErrorCode, HangupReason, IceCandidate, LoginError, LoginInfo, Request, ServerEvent};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use std::net::SocketAddr;
use axum::response::Response;
use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// Echo calls one connection may hold at once (each holds a port and a peer connection).
const MAX_CALLS_PER_CONNECTION: usize = 4;

/// The protocol limit: larger frames get a `frame_too_large` error and the connection lives on.
pub const MAX_FRAME: usize = 64 * 1024;
/// The transport limit: beyond this the WebSocket itself is closed, so a client cannot make the
/// server buffer without bound.
const MAX_TRANSPORT_MESSAGE: usize = 1024 * 1024;
/// What the WebSocket reads into. tungstenite zero-fills its whole read buffer before the first
/// read, so its 128 KiB default was resident for every connection: about 40 % of a call's
/// memory. Signalling frames are a few KiB at most (an SDP); a larger frame grows the buffer to
/// its length.
const READ_BUFFER: usize = 4 * 1024;

pub async fn upgrade(State(state): State<AppState>, ConnectInfo(peer): ConnectInfo<SocketAddr>, ws: WebSocketUpgrade) -> Response {
    ws.read_buffer_size(READ_BUFFER)
        .max_frame_size(MAX_TRANSPORT_MESSAGE)
        .max_message_size(MAX_TRANSPORT_MESSAGE)
        .on_upgrade(move |socket| serve(socket, state, peer))
}

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

async fn serve(mut socket: WebSocket, state: AppState, peer: SocketAddr) {
    let signaling = &state.signaling;
    let _open = signaling.websockets.open();
    let mut connection = Connection::new(ConnectionConfig {
        jwt_secret: signaling.jwt_secret.clone(),
        server: signaling.server.clone(),
        ice_servers: signaling.ice_servers.clone(),
        max_frame: MAX_FRAME,
    });
    let mut calls: HashMap<String, EchoCall> = HashMap::new();
    // Calls from SIP ringing or bridged on this connection, by call id.
    let mut bridged: HashMap<String, tokio::sync::mpsc::Sender<BrowserAnswer>> = HashMap::new();
    let device: u64 = rand::random();
    let (push_tx, mut push_rx) = mpsc::channel::<BrowserPush>(64);
    let mut registered_as: Option<String> = None;
    // Upstream registrations made for this connection's user (PBX login), ended when it closes.
    let mut registrations: Vec<String> = Vec::new();
    let (events_tx, mut events_rx) = mpsc::channel::<(String, EchoEvent)>(256);
    let mut drain = state.signaling.calls.drain.watch();
    let mut shutting_down = false;
    'session: loop {
        // Reachable before the login reply leaves: a client may be called the moment it has it.
        if registered_as.is_none() {
            if let Some(user) = connection.user() {
                state.signaling.browsers.add(&user.user, device, push_tx.clone());
                registered_as = Some(user.user.clone());
            }
        }
        while let Some(frame) = connection.poll_outgoing() {
            if socket.send(Message::Text(frame.into())).await.is_err() {
                // Through the cleanup below, like every other way out: the user's registration
                // and its answered calls must not outlive the socket.
                break 'session;
            }
        }
        // A call that ended has dropped its control channel.
        bridged.retain(|_, control| !control.is_closed());
        // Shutting down: once every call of this connection has told the browser how it ended,
        // the socket closes, so the process does not exit with hangups unsent.
        if shutting_down && bridged.is_empty() && calls.is_empty() && push_rx.is_empty() {
            let _ = socket.send(Message::Close(Some(axum::extract::ws::CloseFrame { code: 1001, reason: "the gateway is shutting down".into() }))).await;
            break 'session;
        }
        tokio::select! {
            () = drain.ending(), if !shutting_down => {
                shutting_down = true;
                for (call_id, call) in calls.drain() {
                    call.hangup().await;
                    connection.event(ServerEvent::Hangup { call_id, reason: HangupReason::Shutdown, cause: crate::call::machine::mapping::SHUTDOWN_CAUSE.into() });
                }
            }
            message = socket.recv() => match message {
                Some(Ok(Message::Text(text))) => {
                    let was_logged_in = connection.user().is_some();
                    if !was_logged_in && is_login(text.as_str()) && state.signaling.login_guard.blocked(peer.ip()) {
                        connection.error(login_id(text.as_str()), ErrorCode::RateLimited, "too many failed logins from this address; try again later");
                        continue;
                    }
                    connection.handle_frame(text.as_str(), now_unix());
                    if !was_logged_in && is_token_login(text.as_str()) && login_failed_now(&connection) {
                        state.signaling.login_guard.failed(peer.ip());
                    }
                }
                Some(Ok(Message::Binary(_))) => connection.error(None, ErrorCode::BadFrame, "frames must be JSON text"),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
            },
            Some(push) = push_rx.recv() => match push {
                BrowserPush::Incoming { call_id, caller_uri, caller_name, sdp, control } => {
                    bridged.insert(call_id.clone(), control);
                    connection.event(ServerEvent::Incoming { call_id, caller: Caller { uri: caller_uri, display_name: caller_name }, sdp });
                }
                BrowserPush::Candidate { call_id, candidate } => {
                    let candidate = candidate.and_then(|c| serde_json::from_value::<IceCandidate>(c).ok());
                    connection.event(ServerEvent::Candidate { call_id, candidate });
                }
                BrowserPush::Hangup { call_id, reason, cause } => {
                    bridged.remove(&call_id);
                    connection.event(ServerEvent::Hangup { call_id, reason, cause });
                }
                BrowserPush::Ringing { call_id, sdp } => connection.event(ServerEvent::Ringing { call_id, sdp }),
                BrowserPush::Answered { call_id, sdp } => connection.event(ServerEvent::Answered { call_id, sdp }),
                BrowserPush::Dtmf { call_id, digit, duration_ms } => connection.event(ServerEvent::Dtmf { call_id, digit: digit.to_string(), duration_ms }),
                BrowserPush::RemoteHold { call_id, on_hold } => connection.event(ServerEvent::RemoteHold { call_id, on_hold }),
                BrowserPush::Reply { id, result, .. } => match result {
                    Ok(()) => connection.reply(id, serde_json::json!({})),
                    Err((code, message)) => connection.error(Some(id), code, &message),
                },
            },
            Some((call_id, event)) = events_rx.recv() => match event {
                EchoEvent::Candidate(candidate) => {
                    let candidate = candidate.and_then(|c| serde_json::from_value::<IceCandidate>(c).ok());
                    connection.event(ServerEvent::Candidate { call_id, candidate });
                }
                EchoEvent::Connected => {}
                EchoEvent::Ended { reason } => {
                    if let Some(call) = calls.remove(&call_id) {
                        call.hangup().await;
                        tracing::info!(%call_id, %reason, "browser leg failed; call ended");
                        connection.event(ServerEvent::Hangup { call_id, reason: HangupReason::Failed, cause: reason });
                    }
                }
            },
        }
        while let Some(request) = connection.poll_request() {
            let password_login = matches!(request, Request::PasswordLogin { .. } | Request::PbxLogin { .. });
            if let Request::Reclaim { id, call_id } = request {
                reclaim(&mut connection, &state, id, call_id, device, &mut bridged, &push_tx).await;
                continue;
            }
            if let Some(request) = route_bridged(request, &mut connection, &mut bridged, device).await {
                if let Request::Call { id, target, sdp, codec } = &request {
                if target != "echo" {
                    place_call(&mut connection, &state, id.clone(), target, sdp, codec.as_deref(), &mut bridged, (device, &push_tx)).await;
                    continue;
                }
            }
            handle(request, &mut connection, &mut calls, &mut registrations, &state, &events_tx).await;
            }
            if password_login && connection.user().is_none() {
                state.signaling.login_guard.failed(peer.ip());
                tracing::warn!(source = %peer, "browser login failed");
            }
        }
    }
    if let Some(user) = &registered_as {
        state.signaling.browsers.remove(user, device);
    }
    // Answered calls wait out the grace period for a `reclaim` from the user's next connection;
    // ringing ones just lose this device.
    for (call_id, control) in bridged {
        if let Some(user) = &registered_as {
            state.signaling.browsers.park(&call_id, user, control.clone());
        }
        let _ = control.send(BrowserAnswer::Detached { device }).await;
    }
    close(calls, registrations, &state).await;
}

/// A browser calls SIP: a phone registered to the gateway by its user name, else through the
/// first profile the user may use (token claim or PBX login). `codec` is the only codec offered
/// to the SIP side (docs/signaling.md §4.4).
#[allow(clippy::too_many_arguments)]
async fn place_call(
    connection: &mut Connection,
    state: &AppState,
    id: crate::signaling::RequestId,
    target: &str,
    sdp: &str,
    codec: Option<&str>,
    bridged: &mut HashMap<String, tokio::sync::mpsc::Sender<BrowserAnswer>>,
    (device, push): (u64, &mpsc::Sender<BrowserPush>),
) {
    let Some((user, profile)) = connection.user().map(|u| (u.user.clone(), u.profiles.first().cloned())) else { return };
    let sip_codec = match codec.map(|name| crate::call::echo::encoding_of(name).ok_or(name)) {
        None => None,
        Some(Ok(encoding)) => Some(encoding),
        Some(Err(name)) => return connection.error(Some(id), ErrorCode::BadRequest, &format!("unknown codec `{name}` (use opus, g722, pcmu or pcma)")),
    };
    if profile.is_none() && !phone_registered(state, target).await {
        tracing::info!(%user, %target, "call refused: the user has no profile to call out through and the target is no registered phone");
        return connection.error(Some(id), ErrorCode::Forbidden, "this user may only call phones registered to the gateway (no profile)");
    }
    if bridged.len() >= MAX_CALLS_PER_CONNECTION {
        return connection.error(Some(id), ErrorCode::RateLimited, "too many calls on this connection");
    }
    let call_id = uuid::Uuid::new_v4().to_string();
    let (control_tx, control_rx) = mpsc::channel(32);
    bridged.insert(call_id.clone(), control_tx);
    connection.reply(id, serde_json::json!({ "call_id": call_id }));
    let layer = state.signaling.calls.clone();
    let (target, sdp, push) = (target.to_string(), sdp.to_string(), push.clone());
    let span = tracing::info_span!("call", %call_id);
    let call = crate::call::outbound::OutboundCall { call_id, device, user, profile, target, browser_offer: sdp, sip_codec };
    tokio::spawn(tracing::Instrument::instrument(crate::call::outbound::place(layer, call, push, control_rx), span));
}

async fn phone_registered(state: &AppState, user: &str) -> bool {
    let Some(status) = state.sip.snapshot().await else { return false };
    status.core.bindings.iter().any(|b| crate::sip::syntax::uri_user(b.aor.trim_start_matches('<')) == Some(user))
}

/// Requests about calls from SIP go to that call's task; anything else is returned for `handle`.
/// Nothing here waits for the call: a request that needs its answer (`accept`, `dtmf`, `hold`,
/// `unhold`, `transfer`) carries its id, and the answer comes back as `BrowserPush::Reply`. The
/// call's control channel is bounded and the call always takes from it, so `send` only waits
/// for room.
async fn route_bridged(
    request: Request,
    connection: &mut Connection,
    bridged: &mut HashMap<String, tokio::sync::mpsc::Sender<BrowserAnswer>>,
    device: u64,
) -> Option<Request> {
    let call_id = match &request {
        Request::Accept { call_id, .. } | Request::Reject { call_id, .. } | Request::Candidate { call_id, .. } => call_id,
        Request::Hangup { call_id, .. } | Request::Dtmf { call_id, .. } | Request::Hold { call_id, .. } | Request::Unhold { call_id, .. } => call_id,
        Request::Transfer { call_id, .. } => call_id,
        _ => return Some(request),
    };
    let call_id = call_id.clone();
    let Some(control) = bridged.get(&call_id).cloned() else { return Some(request) };
    // What to answer at once, if anything: requests the call answers itself get `None`.
    let (message, reply_now) = match request {
        Request::Accept { id, sdp, .. } => (BrowserAnswer::Accept { device, sdp, id: id.clone() }, Err(id)),
        Request::Reject { id, reason, .. } => {
            bridged.remove(&call_id);
            (BrowserAnswer::Reject { device, busy: reason == RejectReason::Busy }, Ok(Some(id)))
        }
        Request::Hangup { id, .. } => {
            bridged.remove(&call_id);
            (BrowserAnswer::Hangup { device }, Ok(Some(id)))
        }
        Request::Candidate { id, candidate, .. } => {
            let candidate = candidate.and_then(|c| serde_json::to_value(c).ok());
            (BrowserAnswer::Candidate { device, candidate }, Ok(id))
        }
        Request::Dtmf { id, digits, .. } => (BrowserAnswer::Dtmf { device, digits, id: id.clone() }, Err(id)),
        Request::Transfer { id, target, .. } => (BrowserAnswer::Transfer { device, target, id: id.clone() }, Err(id)),
        Request::Hold { id, .. } => (BrowserAnswer::Hold { device, hold: true, id: id.clone() }, Err(id)),
        Request::Unhold { id, .. } => (BrowserAnswer::Hold { device, hold: false, id: id.clone() }, Err(id)),
        other => return Some(other),
    };
    let delivered = control.send(message).await.is_ok();
    match reply_now {
        Ok(Some(id)) => connection.reply(id, serde_json::json!({})),
        Ok(None) => {}
        Err(id) if !delivered => {
            bridged.remove(&call_id);
            connection.error(Some(id), ErrorCode::UnknownCall, "the call has ended");
        }
        Err(_) => {}
    }
    None
}

/// Takes over a call whose WebSocket dropped: only its own user, only within the grace period.
/// The call answers the request itself (through this connection's push channel).
async fn reclaim(
    connection: &mut Connection,
    state: &AppState,
    id: crate::signaling::RequestId,
    call_id: String,
    device: u64,
    bridged: &mut HashMap<String, mpsc::Sender<BrowserAnswer>>,
    push: &mpsc::Sender<BrowserPush>,
) {
    let Some(user) = connection.user().map(|u| u.user.clone()) else { return };
    let Some(control) = state.signaling.browsers.unpark(&call_id, &user) else {
        return connection.error(Some(id), ErrorCode::UnknownCall, "no call of yours is waiting to be reclaimed under this id");
    };
    if control.send(BrowserAnswer::Reattach { device, push: push.clone(), id: id.clone() }).await.is_err() {
        return connection.error(Some(id), ErrorCode::UnknownCall, "the call has ended");
    }
    tracing::info!(%call_id, %user, "reclaim passed to the call");
    bridged.insert(call_id, control);
}

async fn close(calls: HashMap<String, EchoCall>, registrations: Vec<String>, state: &AppState) {
    hang_up_all(calls).await;
    for key in registrations {
        state.sip.unregister_user(&key).await;
    }
}

fn is_login(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text).is_ok_and(|v| v["type"] == "login")
}

fn is_token_login(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text).is_ok_and(|v| v["type"] == "login" && v["method"] == "token")
}

fn login_id(text: &str) -> Option<crate::signaling::RequestId> {
    serde_json::from_str::<serde_json::Value>(text).ok().and_then(|v| serde_json::from_value(v["id"].clone()).ok())
}

/// Token logins are judged inside the connection: a login frame that left it logged out failed
/// (password logins are judged by the owner, below).
fn login_failed_now(connection: &Connection) -> bool {
    connection.user().is_none()
}

async fn hang_up_all(calls: HashMap<String, EchoCall>) {
    for call in calls.into_values() {
        call.hangup().await;
    }
}

async fn handle(
    request: Request,
    connection: &mut Connection,
    calls: &mut HashMap<String, EchoCall>,
    registrations: &mut Vec<String>,
    state: &AppState,
    events: &mpsc::Sender<(String, EchoEvent)>,
) {
    let signaling = &state.signaling;
    match request {
        Request::PasswordLogin { id, user, password } => {
            let result = match signaling.local_users.iter().find(|u| u.username == user) {
                Some(local) if password_matches(local, &signaling.realm, password.expose()) => {
                    Ok(LoginInfo { user, profiles: local.profiles.clone() })
                }
                Some(_) => Err(LoginError::Rejected),
                None => console_login(state, user, password.expose().to_string()).await,
            };
            connection.login_result(id, result);
        }
        Request::PbxLogin { id, profile, user, password } => {
            // The login stands only if the PBX accepts the user's own REGISTER.
            match state.sip.register_user(&profile, &user, password.expose()).await {
                Ok(key) => {
                    tracing::info!(%user, %profile, "browser user registered upstream");
                    registrations.push(key);
                    connection.login_result(id, Ok(LoginInfo { user, profiles: vec![profile] }));
                }
                Err(reason) if reason.starts_with("no PBX profile") => connection.login_result(id, Err(LoginError::Forbidden)),
                Err(reason) if reason.contains("credentials rejected") || reason.contains(" 403 ") || reason.starts_with("403") => {
                    connection.login_result(id, Err(LoginError::Rejected))
                }
                Err(reason) => connection.login_result(id, Err(LoginError::Upstream(reason))),
            }
        }
        Request::Call { id, target, sdp, codec } => {
            if target != "echo" {
                return connection.error(Some(id), ErrorCode::Forbidden, "only `echo` can be called until SIP routing lands");
            }
            if calls.len() >= MAX_CALLS_PER_CONNECTION {
                return connection.error(Some(id), ErrorCode::RateLimited, "too many calls on this connection");
            }
            let factory = crate::media::codec_glue::factory(signaling.opus_complexity);
            match EchoCall::start(&sdp, codec.as_deref(), &signaling.engine, factory, signaling.webrtc.clone()).await {
                Ok((call, answer, mut call_events)) => {
                    let call_id = uuid::Uuid::new_v4().to_string();
                    tracing::info!(%call_id, transcoding = call.transcoding, "echo call answered");
                    calls.insert(call_id.clone(), call);
                    connection.reply(id, serde_json::json!({ "call_id": call_id }));
                    connection.event(ServerEvent::Answered { call_id: call_id.clone(), sdp: answer });
                    let events = events.clone();
                    tokio::spawn(async move {
                        while let Some(event) = call_events.recv().await {
                            if events.send((call_id.clone(), event)).await.is_err() {
                                break;
                            }
                        }
                    });
                }
                Err(e) => connection.error(Some(id), ErrorCode::BadRequest, &e.to_string()),
            }
        }
        Request::Candidate { id, call_id, candidate } => match calls.get(&call_id) {
            Some(call) => {
                let value = candidate.and_then(|c| serde_json::to_value(c).ok());
                match call.add_remote_candidate(value).await {
                    Ok(()) => {
                        if let Some(id) = id {
                            connection.reply(id, serde_json::json!({}));
                        }
                    }
                    Err(e) => connection.error(id, ErrorCode::BadRequest, &e.to_string()),
                }
            }
            None => connection.error(id, ErrorCode::UnknownCall, "no such call"),
        },
        Request::Hangup { id, call_id } => match calls.remove(&call_id) {
            Some(call) => {
                call.hangup().await;
                connection.reply(id, serde_json::json!({}));
            }
            None => connection.error(Some(id), ErrorCode::UnknownCall, "no such call"),
        },
        Request::Dtmf { id, call_id, .. } | Request::Hold { id, call_id } | Request::Unhold { id, call_id } => {
            if calls.contains_key(&call_id) {
                // The echo loop has no far end to signal; acknowledged so pages behave the same.
                connection.reply(id, serde_json::json!({}));
            } else {
                connection.error(Some(id), ErrorCode::UnknownCall, "no such call");
            }
        }
        Request::Accept { id, .. } | Request::Reject { id, .. } => connection.error(Some(id), ErrorCode::UnknownCall, "no such incoming call"),
        Request::Reclaim { id, .. } => connection.error(Some(id), ErrorCode::UnknownCall, "no such call"),
        Request::Transfer { id, call_id, .. } => {
            let message = if calls.contains_key(&call_id) { "the echo test cannot be transferred" } else { "no such call" };
            connection.error(Some(id), if calls.contains_key(&call_id) { ErrorCode::BadRequest } else { ErrorCode::UnknownCall }, message);
        }
    }
}

/// A console user granted profiles logs in to the softphone with the console password.
async fn console_login(state: &AppState, user: String, password: String) -> Result<LoginInfo, LoginError> {
    let console = state.console.clone();
    let name = user.clone();
    let granted = tokio::task::spawn_blocking(move || super::console::softphone_login(&console.users, &name, &password)).await;
    match granted {
        Ok(Some(profiles)) => Ok(LoginInfo { user, profiles }),
        _ => Err(LoginError::Rejected),
    }
}

fn password_matches(user: &LocalUser, realm: &str, password: &str) -> bool {
    use md5::{Digest, Md5};
    use subtle::ConstantTimeEq;
    match &user.secret {
        UserSecret::Password(expected) => expected.as_bytes().ct_eq(password.as_bytes()).into(),
        UserSecret::Ha1Md5(expected) => {
            let computed = hex::encode(Md5::digest(format!("{}:{realm}:{password}", user.username)));
            computed.as_bytes().ct_eq(expected.as_bytes()).into()
        }
    }
}
