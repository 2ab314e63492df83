//! `/sip`: SIP over WebSocket (RFC 7118) on the HTTP listener, for softphones such as JsSIP and
//! SIP.js. The upgrade is axum's; the flow is served by the SIP transport like one that arrived on
//! a `ws` listener of its own (`sip::transport::websocket`).

use super::AppState;
use crate::sip::transport::websocket::{classify_error, offers_sip, Codec, Inbound, Outbound, SUBPROTOCOL};
use crate::sip::transport::WebSocketEntry;
use axum::extract::ws::{CloseFrame, Message, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;

/// The SIP transport's entry, and the HTTP listener's address (what the flow's peer sees).
#[derive(Clone)]
pub struct SipWebSocket {
    pub entry: WebSocketEntry,
    pub local: SocketAddr,
    /// The listener serves HTTPS (`[http.tls]`): its flows are `wss`.
    pub secure: bool,
}

pub(super) async fn upgrade(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(SipWebSocket { entry, local, secure }) = state.sip_websocket.clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if !offers_sip(headers.get_all(header::SEC_WEBSOCKET_PROTOCOL)) {
        entry.refused_handshake();
        return (StatusCode::BAD_REQUEST, "the `sip` WebSocket subprotocol is required (RFC 7118)\n").into_response();
    }
    let Some(slot) = entry.admit(remote) else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let limit = entry.max_message();
    upgrade
        .protocols([SUBPROTOCOL])
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| async move { entry.serve(socket, slot, (remote, local, secure), AXUM).await })
}

const AXUM: Codec<Message, axum::Error> = Codec { decode, encode };

fn decode(message: Result<Message, axum::Error>) -> Inbound {
    match message {
        Ok(Message::Text(text)) => Inbound::Sip(bytes::Bytes::copy_from_slice(text.as_str().as_bytes())),
        Ok(Message::Binary(bytes)) => Inbound::Sip(bytes),
        Ok(Message::Ping(_) | Message::Pong(_)) => Inbound::Control,
        Ok(Message::Close(_)) => Inbound::Closed,
        // axum wraps tungstenite's error: an oversize message must still close with 1009.
        Err(e) => match e.into_inner().downcast::<ws_server::tungstenite::Error>() {
            Ok(error) => classify_error(&error),
            Err(_) => Inbound::ProtocolError,
        },
    }
}

fn encode(outbound: Outbound) -> Message {
    match outbound {
        Outbound::Sip(bytes) => match std::str::from_utf8(&bytes) {
            Ok(text) => Message::text(text),
            Err(_) => Message::Binary(bytes),
        },
        Outbound::Ping => Message::Ping(bytes::Bytes::new()),
        Outbound::Close(code, reason) => Message::Close(Some(CloseFrame { code, reason: reason.into() })),
    }
}
