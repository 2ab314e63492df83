//! SIP signalling. Everything here is sans-IO except `transport/` and `endpoint.rs`, which are the
//! thin tokio drivers around `core::SipCore`.

pub mod auth;
pub mod core;
pub mod dialog;
pub mod endpoint;
pub mod ladder;
pub mod mask;
pub mod message;
pub mod options;
pub mod registrar;
pub mod registration;
pub mod response;
pub mod syntax;
pub mod transaction;
pub mod transport;
pub mod uas_policy;

use std::fmt;
use std::net::SocketAddr;

/// The transport a message travelled on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    Udp,
    Tcp,
    Tls,
    /// SIP over WebSocket (RFC 7118), plain or over TLS: one SIP message per WebSocket message.
    Ws,
    Wss,
}

impl TransportKind {
    pub fn is_reliable(self) -> bool {
        !matches!(self, Self::Udp)
    }
    /// Each message arrives whole (a datagram, a WebSocket message): no Content-Length framing.
    pub fn is_message_framed(self) -> bool {
        matches!(self, Self::Udp | Self::Ws | Self::Wss)
    }
    pub fn is_websocket(self) -> bool {
        matches!(self, Self::Ws | Self::Wss)
    }
    pub fn via_name(self) -> &'static str {
        match self {
            Self::Udp => "UDP",
            Self::Tcp => "TCP",
            Self::Tls => "TLS",
            Self::Ws => "WS",
            Self::Wss => "WSS",
        }
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.via_name())
    }
}

/// Identifies one accepted or opened stream connection inside the transport layer.
pub type ConnectionId = u64;

/// Where a message came from, as the transport saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    pub transport: TransportKind,
    pub remote: SocketAddr,
    pub local: SocketAddr,
    /// Set for TCP/TLS/WS/WSS: responses go back on this connection (RFC 3261 §18.2.2).
    pub connection: Option<ConnectionId>,
}
