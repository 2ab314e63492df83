use super::{bind_socket, TransportEvent, TransportShared};
use crate::sip::{Peer, TransportKind};
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::net::UdpSocket;

/// Binds `address` and spawns its receive loop. The socket is returned so the endpoint can send
/// responses from the address the request arrived on.
pub fn spawn_udp_listener(address: SocketAddr, shared: Arc<TransportShared>) -> std::io::Result<Arc<UdpSocket>> {
    let socket = Arc::new(UdpSocket::from_std(bind_socket(address, false)?.into())?);
    let local = socket.local_addr()?;
    let reader = socket.clone();
    tokio::spawn(async move {
        // One byte more than the limit, so an oversized datagram is detected rather than truncated.
        let mut buffer = vec![0u8; shared.max_message + 1];
        loop {
            let (len, remote) = match reader.recv_from(&mut buffer).await {
                Ok(received) => received,
                // ICMP port-unreachable from an earlier send shows up here on Linux; keep serving.
                Err(e) => {
                    tracing::debug!(%local, error = %e, "udp receive error");
                    continue;
                }
            };
            if len > shared.max_message {
                shared.counters.oversized.fetch_add(1, Ordering::Relaxed);
                tracing::info!(%remote, len, "dropped oversized datagram");
                continue;
            }
            if !shared.admit(remote) {
                continue;
            }
            let peer = Peer { transport: TransportKind::Udp, remote, local, connection: None };
            shared.deliver(TransportEvent::Message { bytes: Bytes::copy_from_slice(&buffer[..len]), peer });
        }
    });
    Ok(socket)
}
