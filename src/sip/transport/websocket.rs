//! SIP over WebSocket (RFC 7118): the `ws`/`wss` listeners on a port of their own, and the
//! connection driver they share with the HTTP listener's `/sip` route. Each connection is a flow
//! (RFC 5626): the endpoint tracks it like a TCP connection, so responses and in-dialog requests
//! to a browser go back over it whatever `.invalid` host its Via or Contact names.

use super::{bind_socket, ConnectionCommand, OpenConnection, TransportEvent, TransportShared};
use crate::sip::{Peer, TransportKind};
use axum::http::{HeaderValue, StatusCode};
use bytes::Bytes;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use ws_server::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use ws_server::tungstenite::protocol::frame::coding::CloseCode;
use ws_server::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use ws_server::tungstenite::{Error as WsError, Message};

/// The subprotocol RFC 7118 registers; a client that does not offer it is refused.
pub const SUBPROTOCOL: &str = "sip";
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Close codes (RFC 6455 §7.4.1) the gateway sends, as docs/sip-over-websocket.md lists them.
pub const CLOSE_NORMAL: u16 = 1000;
pub const CLOSE_GOING_AWAY: u16 = 1001;
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
pub const CLOSE_TOO_BIG: u16 = 1009;

/// What a WebSocket library handed us, reduced to what the flow acts on.
pub enum Inbound {
    /// A text or binary message: one SIP message (RFC 7118 §5.1 allows both).
    Sip(Bytes),
    /// A ping or pong; the library answers pings itself.
    Control,
    Closed,
    TooBig,
    /// Not WebSocket (bad UTF-8 in a text frame, a bad frame): the connection cannot go on.
    ProtocolError,
}

/// What the flow asks a WebSocket library to send.
pub enum Outbound {
    Sip(Bytes),
    Ping,
    Close(u16, &'static str),
}

/// Whether a `Sec-WebSocket-Protocol` header list offers `sip`.
pub fn offers_sip<'a>(values: impl IntoIterator<Item = &'a HeaderValue>) -> bool {
    values
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case(SUBPROTOCOL))
}

/// Handle for serving flows that arrive on another listener (the HTTP listener's `/sip`).
#[derive(Clone)]
pub struct WebSocketEntry {
    pub(crate) shared: Arc<TransportShared>,
}

impl WebSocketEntry {
    pub fn max_message(&self) -> usize {
        self.shared.max_message
    }

    /// Takes a slot of the connection cap and checks the source's rate, before the upgrade.
    pub fn admit(&self, remote: SocketAddr) -> Option<FlowSlot> {
        if self.shared.open_connections() >= self.shared.max_connections || !self.shared.admit(remote) {
            self.shared.counters.connections_refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        self.shared.counters.connections_accepted.fetch_add(1, Ordering::Relaxed);
        Some(FlowSlot { _held: OpenConnection::new(self.shared.clone()) })
    }

    /// Counts a handshake refused for want of the `sip` subprotocol.
    pub fn refused_handshake(&self) {
        self.shared.counters.ws_handshake_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Serves one upgraded connection as a flow until it closes; `secure` when it came over TLS.
    pub async fn serve<S, M, E>(&self, socket: S, slot: FlowSlot, (remote, local, secure): (SocketAddr, SocketAddr, bool), codec: Codec<M, E>)
    where
        S: Stream<Item = Result<M, E>> + Sink<M> + Unpin,
    {
        let _slot = slot;
        let transport = if secure { TransportKind::Wss } else { TransportKind::Ws };
        let peer = Peer { transport, remote, local, connection: Some(self.shared.connection_id()) };
        run_flow(socket, peer, self.shared.clone(), codec).await;
    }
}

/// A held slot of the connection cap, given back when dropped.
pub struct FlowSlot {
    _held: OpenConnection,
}

/// How to turn one library's messages into ours and back.
pub struct Codec<M, E> {
    pub decode: fn(Result<M, E>) -> Inbound,
    pub encode: fn(Outbound) -> M,
}

/// Binds a `ws` (or, with an acceptor, `wss`) listener and spawns its accept loop.
pub fn spawn_ws_listener(address: SocketAddr, tls: Option<TlsAcceptor>, shared: Arc<TransportShared>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::from_std(bind_socket(address, true)?.into())?;
    let local = listener.local_addr()?;
    let transport = if tls.is_some() { TransportKind::Wss } else { TransportKind::Ws };
    let entry = WebSocketEntry { shared };
    tokio::spawn(async move {
        loop {
            let (stream, remote) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(%local, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Some(slot) = entry.admit(remote) else { continue };
            let _ = stream.set_nodelay(true);
            let (entry, tls) = (entry.clone(), tls.clone());
            tokio::spawn(async move {
                let peer = Peer { transport, remote, local, connection: Some(entry.shared.connection_id()) };
                let served = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
                    match tls {
                        None => handshake(stream, &entry).await.map(|ws| (Some(ws), None)),
                        Some(acceptor) => match acceptor.accept(stream).await {
                            Ok(tls_stream) => handshake(tls_stream, &entry).await.map(|ws| (None, Some(ws))),
                            Err(e) => Err(format!("TLS handshake: {e}")),
                        },
                    }
                });
                let _slot = slot;
                match served.await {
                    Ok(Ok((Some(ws), _))) => run_flow(ws, peer, entry.shared, TUNGSTENITE).await,
                    Ok(Ok((_, Some(ws)))) => run_flow(ws, peer, entry.shared, TUNGSTENITE).await,
                    Ok(Ok(_)) => {}
                    Ok(Err(reason)) => tracing::info!(%remote, %reason, "SIP WebSocket handshake failed"),
                    Err(_) => tracing::info!(%remote, "SIP WebSocket handshake timed out"),
                }
            });
        }
    });
    Ok(local)
}

async fn handshake<S>(stream: S, entry: &WebSocketEntry) -> Result<ws_server::WebSocketStream<S>, String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let refused = entry.clone();
    let select_sip = move |request: &Request, response: Response| answer_handshake(request, response).inspect_err(|_| refused.refused_handshake());
    ws_server::accept_hdr_async_with_config(stream, select_sip, Some(websocket_config(entry.max_message()))).await.map_err(|e| e.to_string())
}

/// The own-port listeners' limits: one SIP message per WebSocket message, neither above `max_message`.
pub fn websocket_config(max_message: usize) -> WebSocketConfig {
    WebSocketConfig::default().max_message_size(Some(max_message)).max_frame_size(Some(max_message))
}

/// The own-port listeners' answer to an upgrade request: the `sip` subprotocol selected, or a 400
/// when the client does not offer it.
pub fn answer_handshake(request: &Request, mut response: Response) -> Result<Response, ErrorResponse> {
    if !offers_sip(request.headers().get_all(axum::http::header::SEC_WEBSOCKET_PROTOCOL)) {
        let mut refusal = ErrorResponse::new(Some("the `sip` WebSocket subprotocol is required (RFC 7118)\n".into()));
        *refusal.status_mut() = StatusCode::BAD_REQUEST;
        return Err(refusal);
    }
    response.headers_mut().insert(axum::http::header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(SUBPROTOCOL));
    Ok(response)
}

/// tokio-tungstenite's messages (the own-port listeners).
const TUNGSTENITE: Codec<Message, WsError> = Codec { decode: decode_tungstenite, encode: encode_tungstenite };

pub fn decode_tungstenite(message: Result<Message, WsError>) -> Inbound {
    match message {
        Ok(Message::Text(text)) => Inbound::Sip(Bytes::from(text)),
        Ok(Message::Binary(bytes)) => Inbound::Sip(bytes),
        Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => Inbound::Control,
        Ok(Message::Close(_)) => Inbound::Closed,
        Err(e) => classify_error(&e),
    }
}

/// Also used for axum's `/sip`, whose errors wrap the same tungstenite error type.
pub fn classify_error(error: &WsError) -> Inbound {
    match error {
        WsError::Capacity(_) => Inbound::TooBig,
        WsError::ConnectionClosed | WsError::AlreadyClosed | WsError::Io(_) => Inbound::Closed,
        _ => Inbound::ProtocolError,
    }
}

pub fn encode_tungstenite(outbound: Outbound) -> Message {
    match outbound {
        // SIP text is UTF-8 (RFC 3261 §7.3.1); a body that is not goes out as a binary message.
        Outbound::Sip(bytes) => match std::str::from_utf8(&bytes) {
            Ok(text) => Message::text(text),
            Err(_) => Message::Binary(bytes),
        },
        Outbound::Ping => Message::Ping(Bytes::new()),
        Outbound::Close(code, reason) => Message::Close(Some(CloseFrame { code: CloseCode::from(code), reason: reason.into() })),
    }
}

/// One flow, until either side closes it: messages in to the endpoint, its commands out, a
/// ping every `ping_interval` (it keeps NAT bindings and proxies open and shows a vanished
/// browser), and a close after `idle_timeout` of silence (no message, no pong).
async fn run_flow<S, M, E>(socket: S, peer: Peer, shared: Arc<TransportShared>, codec: Codec<M, E>)
where
    S: Stream<Item = Result<M, E>> + Sink<M> + Unpin,
{
    let Some(id) = peer.connection else { return };
    let (mut sink, mut frames) = socket.split();
    let (commands_tx, mut commands) = mpsc::channel::<ConnectionCommand>(256);
    // The endpoint must know the flow before any message from it.
    if shared.events.send(TransportEvent::ConnectionOpened { peer, commands: commands_tx }).await.is_err() {
        return;
    }
    let timers = shared.websocket;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + timers.ping_interval, timers.ping_interval);
    let mut last_heard = tokio::time::Instant::now();
    let close = loop {
        let outbound = tokio::select! {
            frame = frames.next() => {
                let Some(frame) = frame else { break None };
                last_heard = tokio::time::Instant::now();
                match on_frame((codec.decode)(frame), &peer, &shared) {
                    FlowAction::Reply(outbound) => outbound,
                    FlowAction::Continue => continue,
                    FlowAction::Close(close) => break close,
                }
            }
            command = commands.recv() => match command {
                Some(ConnectionCommand::Send(bytes)) => Outbound::Sip(bytes),
                Some(ConnectionCommand::Close) | None => break Some((CLOSE_NORMAL, "closed by the gateway")),
            },
            _ = ping.tick() => Outbound::Ping,
            () = tokio::time::sleep_until(last_heard + timers.idle_timeout) => {
                shared.counters.ws_idle_closed.fetch_add(1, Ordering::Relaxed);
                tracing::info!(remote = %peer.remote, "closing SIP WebSocket: idle");
                break Some((CLOSE_GOING_AWAY, "idle"));
            }
        };
        // A client that stops reading must not stall its flow forever (reads wait on sends here).
        if !matches!(tokio::time::timeout(SEND_TIMEOUT, sink.send((codec.encode)(outbound))).await, Ok(Ok(()))) {
            break None;
        }
    };
    if let Some((code, reason)) = close {
        let _ = tokio::time::timeout(Duration::from_secs(2), sink.send((codec.encode)(Outbound::Close(code, reason)))).await;
    }
    let _ = shared.events.send(TransportEvent::ConnectionClosed { id }).await;
}

/// What a flow does with one inbound WebSocket message.
pub enum FlowStep {
    Reply(Outbound),
    /// A SIP message for the endpoint.
    Deliver(Bytes),
    Continue,
    PeerClosed,
    TooBig,
    ProtocolError,
}

/// The flow's decision for one inbound message, without its effects (counters, the endpoint).
pub fn step_for(inbound: Inbound) -> FlowStep {
    match inbound {
        // RFC 5626 §4.4.1 keep-alive: a double CRLF is answered with a single one.
        Inbound::Sip(bytes) if &bytes[..] == b"\r\n\r\n" => FlowStep::Reply(Outbound::Sip(Bytes::from_static(b"\r\n"))),
        Inbound::Sip(bytes) if bytes.iter().all(|b| matches!(b, b'\r' | b'\n')) => FlowStep::Continue,
        Inbound::Sip(bytes) => FlowStep::Deliver(bytes),
        Inbound::Control => FlowStep::Continue,
        Inbound::Closed => FlowStep::PeerClosed,
        Inbound::TooBig => FlowStep::TooBig,
        Inbound::ProtocolError => FlowStep::ProtocolError,
    }
}

/// What the flow's loop does next: send something, go on, or close (with a close frame or not).
enum FlowAction {
    Reply(Outbound),
    Continue,
    Close(Option<(u16, &'static str)>),
}

fn on_frame(inbound: Inbound, peer: &Peer, shared: &TransportShared) -> FlowAction {
    match step_for(inbound) {
        FlowStep::Reply(outbound) => FlowAction::Reply(outbound),
        FlowStep::Deliver(bytes) => {
            if shared.admit(peer.remote) {
                shared.deliver(TransportEvent::Message { bytes, peer: *peer });
            }
            FlowAction::Continue
        }
        FlowStep::Continue => FlowAction::Continue,
        FlowStep::PeerClosed => FlowAction::Close(None),
        FlowStep::TooBig => {
            shared.counters.oversized.fetch_add(1, Ordering::Relaxed);
            tracing::info!(remote = %peer.remote, "closing SIP WebSocket: message too large");
            FlowAction::Close(Some((CLOSE_TOO_BIG, "message too large")))
        }
        FlowStep::ProtocolError => {
            shared.counters.ws_protocol_errors.fetch_add(1, Ordering::Relaxed);
            tracing::info!(remote = %peer.remote, "closing SIP WebSocket: protocol error");
            FlowAction::Close(Some((CLOSE_PROTOCOL_ERROR, "protocol error")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sip_subprotocol_is_found_in_any_list() {
        let offered = |v: &'static str| offers_sip([&HeaderValue::from_static(v)]);
        assert!(offered("sip"));
        assert!(offered("chat, SIP"));
        assert!(!offered("sips"));
        assert!(!offered(""));
        assert!(!offers_sip([]));
    }

    #[test]
    fn capacity_errors_close_as_too_big() {
        let error = WsError::Capacity(ws_server::tungstenite::error::CapacityError::MessageTooLong { size: 2, max_size: 1 });
        assert!(matches!(classify_error(&error), Inbound::TooBig));
        assert!(matches!(classify_error(&WsError::Utf8(String::new())), Inbound::ProtocolError));
    }
}
