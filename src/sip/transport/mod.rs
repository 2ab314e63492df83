//! The thin tokio drivers under the SIP core: UDP sockets, TCP, TLS and WebSocket connections. They move
//! bytes, enforce the size limit and the per-source rate limit, and hand whole messages to the
//! endpoint over a bounded channel. They never interpret SIP beyond framing.

pub mod framer;
pub mod rate_limit;
pub mod tls;

pub mod websocket;

mod stream;
mod udp;

use stream::OpenConnection;
pub use stream::{connect_outbound, spawn_stream_listener};
pub use websocket::{spawn_ws_listener, WebSocketEntry};
pub use udp::spawn_udp_listener;

use super::{ConnectionId, Peer};
use bytes::Bytes;
use serde::Serialize;
use rate_limit::RateLimiter;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Everything the transports report to the endpoint task, in arrival order.
#[derive(Debug)]
pub enum TransportEvent {
    Message { bytes: Bytes, peer: Peer },
    ConnectionOpened { peer: Peer, commands: mpsc::Sender<ConnectionCommand> },
    ConnectionClosed { id: ConnectionId },
    /// An outbound connection for a request could not be made.
    ConnectFailed { branch_id: u64, reason: String },
}

#[derive(Debug)]
pub enum ConnectionCommand {
    Send(Bytes),
    Close,
}

#[derive(Debug, Default)]
pub struct TransportCounters {
    pub rate_limited: AtomicU64,
    pub oversized: AtomicU64,
    /// Messages dropped because the endpoint queue was full: overload shedding, never a stall.
    pub queue_full: AtomicU64,
    pub connections_accepted: AtomicU64,
    pub connections_refused: AtomicU64,
    /// WebSocket upgrades refused because the client did not offer the `sip` subprotocol.
    pub ws_handshake_refused: AtomicU64,
    /// WebSocket flows closed for a protocol error (a bad frame, bad UTF-8 in a text frame).
    pub ws_protocol_errors: AtomicU64,
    /// WebSocket flows closed after `WebSocketTimers::idle_timeout` without a frame or pong.
    pub ws_idle_closed: AtomicU64,
}

impl TransportCounters {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct TransportView {
    pub rate_limited: u64,
    pub oversized: u64,
    pub queue_full: u64,
    pub connections_open: u64,
    pub connections_accepted: u64,
    pub connections_refused: u64,
    pub send_failures: u64,
    pub ws_handshake_refused: u64,
    pub ws_protocol_errors: u64,
    pub ws_idle_closed: u64,
}

/// `[sip] websocket_ping_interval_secs` and `websocket_idle_timeout_secs`.
#[derive(Debug, Clone, Copy)]
pub struct WebSocketTimers {
    pub ping_interval: Duration,
    pub idle_timeout: Duration,
}

impl Default for WebSocketTimers {
    fn default() -> Self {
        let sip = crate::config::SipConfig::default();
        WebSocketTimers { ping_interval: sip.websocket_ping_interval(), idle_timeout: sip.websocket_idle_timeout() }
    }
}

/// State shared by every listener task.
pub struct TransportShared {
    pub max_message: usize,
    pub websocket: WebSocketTimers,
    pub limiter: Mutex<RateLimiter>,
    pub events: mpsc::Sender<TransportEvent>,
    pub counters: TransportCounters,
    next_connection: AtomicU64,
    open_connections: AtomicU64,
    pub max_connections: u64,
}

impl TransportShared {
    pub fn new(max_message: usize, websocket: WebSocketTimers, limiter: RateLimiter, events: mpsc::Sender<TransportEvent>) -> Arc<TransportShared> {
        Arc::new(TransportShared {
            max_message,
            websocket,
            limiter: Mutex::new(limiter),
            events,
            counters: TransportCounters::default(),
            next_connection: AtomicU64::new(1),
            open_connections: AtomicU64::new(0),
            max_connections: 10_000,
        })
    }

    /// Rate limit check; a poisoned lock (a panic elsewhere) fails open rather than taking SIP down.
    pub fn admit(&self, source: SocketAddr) -> bool {
        let allowed = match self.limiter.lock() {
            Ok(mut limiter) => limiter.allow(source.ip(), Instant::now()),
            Err(_) => true,
        };
        if !allowed {
            self.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
        }
        allowed
    }

    /// Hands a message to the endpoint without ever waiting on it.
    pub fn deliver(&self, event: TransportEvent) {
        if self.events.try_send(event).is_err() {
            self.counters.queue_full.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counters as the status API and /metrics show them.
    pub fn view(&self, send_failures: u64) -> TransportView {
        let (counters, get) = (&self.counters, TransportCounters::get);
        TransportView {
            rate_limited: get(&counters.rate_limited),
            oversized: get(&counters.oversized),
            queue_full: get(&counters.queue_full),
            connections_open: self.open_connections(),
            connections_accepted: get(&counters.connections_accepted),
            connections_refused: get(&counters.connections_refused),
            send_failures,
            ws_handshake_refused: get(&counters.ws_handshake_refused),
            ws_protocol_errors: get(&counters.ws_protocol_errors),
            ws_idle_closed: get(&counters.ws_idle_closed),
        }
    }

    pub fn open_connections(&self) -> u64 {
        self.open_connections.load(Ordering::Relaxed)
    }

    fn connection_id(&self) -> ConnectionId {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }
}

/// Binds a socket with the options a SIP server needs: IPv6 sockets are IPv6-only so that
/// `0.0.0.0:5060` and `[::]:5060` can both be listed, and TCP listeners reuse the address so a
/// restart does not wait for TIME_WAIT.
pub(crate) fn bind_socket(address: SocketAddr, tcp: bool) -> std::io::Result<socket2::Socket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let domain = if address.is_ipv6() { Domain::IPV6 } else { Domain::IPV4 };
    let (kind, protocol) = if tcp { (Type::STREAM, Protocol::TCP) } else { (Type::DGRAM, Protocol::UDP) };
    let socket = Socket::new(domain, kind, Some(protocol))?;
    if address.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    if tcp {
        socket.set_reuse_address(true)?;
    } else {
        // Bursts of registrations or a torture run must not overflow the kernel queue.
        let _ = socket.set_recv_buffer_size(4 << 20);
    }
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    if tcp {
        socket.listen(1024)?;
    }
    Ok(socket)
}
