//! SIP over WebSocket (RFC 7118) as a client's bytes reach it on the own-port listeners: the
//! upgrade request through tungstenite with the gateway's `sip` subprotocol answer, then the
//! client's frames read with the gateway's size limits, each message decided as the flow decides
//! it, and every SIP message through the SIP core as a `ws` peer, its answers sent back as frames.

use super::sip::SipHarness;
use crate::sip::transport::websocket::{answer_handshake, decode_tungstenite, encode_tungstenite, step_for, websocket_config, FlowStep, Outbound};
use std::io::{self, Read, Write};
use ws_server::tungstenite::protocol::{Role, WebSocket};

/// The gateway's default `sip.max_message_bytes`.
const MAX_MESSAGE: usize = 65_535;
/// Messages read from one input at most (each is a full pass through the core).
const MAX_MESSAGES: usize = 64;

/// A connection whose client sends the input and then closes; what the gateway writes is dropped.
struct Connection<'a> {
    input: &'a [u8],
}

impl Read for Connection<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.input.len());
        buf[..n].copy_from_slice(&self.input[..n]);
        self.input = &self.input[n..];
        Ok(n)
    }
}

impl Write for Connection<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One long-lived SIP core behind every flow (registrations and dialogs carry over), and the
/// count of flows, each a new connection.
#[derive(Default)]
pub struct WebSocketHarness {
    sip: SipHarness,
    flows: u64,
    delivered: u64,
}

impl WebSocketHarness {
    pub fn new() -> WebSocketHarness {
        WebSocketHarness::default()
    }

    /// SIP messages that got through the handshake and the framing into the core.
    pub fn reached_core(&self) -> u64 {
        self.delivered
    }
}

/// One input is one connection. First byte: bit 0 the rest starts with the HTTP upgrade request,
/// up to its blank line, and the frames follow (else the flow is already upgraded); bit 1 the
/// client is at the trunk's address (else a phone's).
pub fn sip_websocket(harness: &mut WebSocketHarness, data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else { return };
    let config = websocket_config(MAX_MESSAGE);
    let mut socket = if selector & 1 == 1 {
        // A client sends its frames only once the 101 is in (tungstenite refuses bytes after the
        // request as junk): the request goes first, the rest once the upgrade is done.
        let request_end = rest.windows(4).position(|w| w == b"\r\n\r\n").map_or(rest.len(), |at| at + 4);
        let (request, frames) = rest.split_at(request_end);
        match ws_server::tungstenite::accept_hdr_with_config(Connection { input: request }, answer_handshake, Some(config)) {
            Ok(mut socket) => {
                socket.get_mut().input = frames;
                socket
            }
            // Refused (no `sip`), not HTTP, or cut short: the listener drops such a connection.
            Err(_) => return,
        }
    } else {
        WebSocket::from_raw_socket(Connection { input: rest }, Role::Server, Some(config))
    };
    harness.flows += 1;
    let from_trunk = selector & 2 != 0;
    for _ in 0..MAX_MESSAGES {
        match step_for(decode_tungstenite(socket.read())) {
            FlowStep::Reply(outbound) => {
                let _ = socket.send(encode_tungstenite(outbound));
            }
            FlowStep::Deliver(bytes) => {
                assert!(bytes.len() <= MAX_MESSAGE, "a message over the limit reached the core: {} bytes", bytes.len());
                harness.delivered += 1;
                for answer in harness.sip.websocket_message(&bytes, from_trunk, harness.flows) {
                    let _ = socket.send(encode_tungstenite(Outbound::Sip(answer)));
                }
            }
            FlowStep::Continue => {}
            FlowStep::PeerClosed | FlowStep::TooBig | FlowStep::ProtocolError => break,
        }
    }
}
