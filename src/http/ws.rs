//! `/ws`: the browser signaling endpoint. One task per WebSocket runs the sans-IO
//! `signaling::Connection` and carries out its requests (`requests.rs`): calls to SIP run in
//! their own tasks (`call::driver`), the `echo` test in the media engine.

mod requests;

use super::AppState;
use crate::call::echo::{EchoCall, EchoEvent};
use crate::call::registry::{BrowserAnswer, BrowserPush};
use crate::signaling::{Caller, Connection, ConnectionConfig, ErrorCode, HangupReason, IceCandidate, Request, ServerEvent};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use std::net::SocketAddr;
use axum::response::Response;
use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// Echo calls one connection may hold at once (each holds a browser leg and its session).
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

/// One WebSocket's state: the sans-IO protocol, its calls and its user's reachability.
struct Session<'a> {
    state: &'a AppState,
    peer: SocketAddr,
    connection: Connection,
    /// Echo calls, by call id.
    calls: HashMap<String, EchoCall>,
    /// Calls from SIP ringing or bridged on this connection, by call id.
    bridged: HashMap<String, mpsc::Sender<BrowserAnswer>>,
    device: u64,
    push: mpsc::Sender<BrowserPush>,
    registered_as: Option<String>,
    /// Upstream registrations made for this connection's user (PBX login), ended when it closes.
    registrations: Vec<String>,
    echo_events: mpsc::Sender<(String, EchoEvent)>,
    shutting_down: bool,
}

async fn serve(mut socket: WebSocket, state: AppState, peer: SocketAddr) {
    let signaling = &state.signaling;
    let _open = signaling.websockets.open();
    let (push, mut push_rx) = mpsc::channel::<BrowserPush>(64);
    let (echo_events, mut echo_rx) = mpsc::channel::<(String, EchoEvent)>(256);
    let mut drain = signaling.calls.drain.watch();
    let mut session = Session {
        state: &state,
        peer,
        connection: Connection::new(ConnectionConfig {
            jwt_secret: signaling.jwt_secret.clone(),
            server: signaling.server.clone(),
            ice_servers: signaling.ice_servers.clone(),
            max_frame: MAX_FRAME,
        }),
        calls: HashMap::new(),
        bridged: HashMap::new(),
        device: rand::random(),
        push,
        registered_as: None,
        registrations: Vec::new(),
        echo_events,
        shutting_down: false,
    };
    loop {
        session.note_login();
        if !session.send_frames(&mut socket).await {
            // Through the cleanup below, like every other way out: the user's registration
            // and its answered calls must not outlive the socket.
            break;
        }
        // A call that ended has dropped its control channel.
        session.bridged.retain(|_, control| !control.is_closed());
        // Shutting down: once every call of this connection has told the browser how it ended,
        // the socket closes, so the process does not exit with hangups unsent.
        if session.shutting_down && session.bridged.is_empty() && session.calls.is_empty() && push_rx.is_empty() {
            let _ = socket.send(Message::Close(Some(axum::extract::ws::CloseFrame { code: 1001, reason: "the gateway is shutting down".into() }))).await;
            break;
        }
        tokio::select! {
            () = drain.ending(), if !session.shutting_down => session.end_for_shutdown().await,
            message = socket.recv() => match message {
                Some(Ok(Message::Text(text))) => session.on_text(text.as_str()),
                Some(Ok(Message::Binary(_))) => session.connection.error(None, ErrorCode::BadFrame, "frames must be JSON text"),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
            },
            Some(push) = push_rx.recv() => session.on_push(push),
            Some((call_id, event)) = echo_rx.recv() => session.on_echo_event(call_id, event).await,
        }
        session.run_requests().await;
    }
    session.close().await;
}

impl Session<'_> {
    /// Reachable before the login reply leaves: a client may be called the moment it has it.
    fn note_login(&mut self) {
        if self.registered_as.is_none() {
            if let Some(user) = self.connection.user() {
                self.state.signaling.browsers.add(&user.user, self.device, self.push.clone());
                self.registered_as = Some(user.user.clone());
            }
        }
    }

    /// Sends what the protocol has queued; false once the socket is gone.
    async fn send_frames(&mut self, socket: &mut WebSocket) -> bool {
        while let Some(frame) = self.connection.poll_outgoing() {
            if socket.send(Message::Text(frame.into())).await.is_err() {
                return false;
            }
        }
        true
    }

    async fn end_for_shutdown(&mut self) {
        self.shutting_down = true;
        for (call_id, call) in self.calls.drain() {
            call.hangup().await;
            self.connection.event(ServerEvent::Hangup { call_id, reason: HangupReason::Shutdown, cause: crate::call::machine::mapping::SHUTDOWN_CAUSE.into() });
        }
    }

    fn on_text(&mut self, text: &str) {
        let login_guard = &self.state.signaling.login_guard;
        let was_logged_in = self.connection.user().is_some();
        if !was_logged_in && is_login(text) && login_guard.blocked(self.peer.ip()) {
            self.connection.error(login_id(text), ErrorCode::RateLimited, "too many failed logins from this address; try again later");
            return;
        }
        self.connection.handle_frame(text, now_unix());
        // Token logins are judged inside the connection: a login frame that left it logged out
        // failed (password logins are judged by their owner, in `run_requests`).
        if !was_logged_in && is_token_login(text) && self.connection.user().is_none() {
            login_guard.failed(self.peer.ip());
        }
    }

    fn on_push(&mut self, push: BrowserPush) {
        let connection = &mut self.connection;
        match push {
            BrowserPush::Incoming { call_id, caller_uri, caller_name, sdp, control } => {
                self.bridged.insert(call_id.clone(), control);
                connection.event(ServerEvent::Incoming { call_id, caller: Caller { uri: caller_uri, display_name: caller_name }, sdp });
            }
            BrowserPush::Candidate { call_id, candidate } => {
                let candidate = candidate.and_then(|c| serde_json::from_value::<IceCandidate>(c).ok());
                connection.event(ServerEvent::Candidate { call_id, candidate });
            }
            BrowserPush::Hangup { call_id, reason, cause } => {
                self.bridged.remove(&call_id);
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
        }
    }

    async fn on_echo_event(&mut self, call_id: String, event: EchoEvent) {
        match event {
            EchoEvent::Candidate(candidate) => {
                let candidate = candidate.and_then(|c| serde_json::from_value::<IceCandidate>(c).ok());
                self.connection.event(ServerEvent::Candidate { call_id, candidate });
            }
            EchoEvent::Connected => {}
            EchoEvent::Ended { reason } => {
                if let Some(call) = self.calls.remove(&call_id) {
                    call.hangup().await;
                    tracing::info!(%call_id, %reason, "browser leg failed; call ended");
                    self.connection.event(ServerEvent::Hangup { call_id, reason: HangupReason::Failed, cause: reason });
                }
            }
        }
    }

    /// Carries out the requests the last frame produced.
    async fn run_requests(&mut self) {
        while let Some(request) = self.connection.poll_request() {
            let password_login = matches!(request, Request::PasswordLogin { .. } | Request::PbxLogin { .. });
            if let Request::Reclaim { id, call_id } = request {
                self.reclaim(id, call_id).await;
                continue;
            }
            match self.route_bridged(request).await {
                Some(Request::Call { id, target, sdp, codec }) if target != "echo" => self.place_call(id, &target, &sdp, codec.as_deref()).await,
                Some(request) => self.handle(request).await,
                None => {}
            }
            if password_login && self.connection.user().is_none() {
                self.state.signaling.login_guard.failed(self.peer.ip());
                tracing::warn!(source = %self.peer, "browser login failed");
            }
        }
    }

    async fn close(self) {
        let signaling = &self.state.signaling;
        if let Some(user) = &self.registered_as {
            signaling.browsers.remove(user, self.device);
        }
        // Answered calls wait out the grace period for a `reclaim` from the user's next
        // connection; ringing ones just lose this device.
        for (call_id, control) in self.bridged {
            if let Some(user) = &self.registered_as {
                signaling.browsers.park(&call_id, user, control.clone());
            }
            let _ = control.send(BrowserAnswer::Detached { device: self.device }).await;
        }
        for call in self.calls.into_values() {
            call.hangup().await;
        }
        for key in self.registrations {
            self.state.sip.unregister_user(&key).await;
        }
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
