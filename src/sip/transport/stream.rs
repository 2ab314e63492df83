use super::framer::{Frame, FrameError, StreamFramer};
use super::{bind_socket, ConnectionCommand, TransportEvent, TransportShared};
use crate::sip::{Peer, TransportKind};
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

/// A connection that sends nothing for this long is closed. Phones keep NAT bindings open with
/// CRLF pings far more often (RFC 5626 suggests 95-120 s).
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds a TCP (or, with an acceptor, TLS) listener and spawns its accept loop.
pub fn spawn_stream_listener(
    address: SocketAddr,
    tls: Option<TlsAcceptor>,
    shared: Arc<TransportShared>,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::from_std(bind_socket(address, true)?.into())?;
    let local = listener.local_addr()?;
    let transport = if tls.is_some() { TransportKind::Tls } else { TransportKind::Tcp };
    tokio::spawn(async move {
        loop {
            let (stream, remote) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(%local, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            if shared.open_connections() >= shared.max_connections || !shared.admit(remote) {
                shared.counters.connections_refused.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            shared.counters.connections_accepted.fetch_add(1, Ordering::Relaxed);
            let _ = stream.set_nodelay(true);
            let shared = shared.clone();
            let tls = tls.clone();
            // Counted from accept, so TLS handshakes in progress count against the cap too.
            let counted = OpenConnection::new(shared.clone());
            tokio::spawn(async move {
                let _counted = counted;
                let peer = Peer { transport, remote, local, connection: Some(shared.connection_id()) };
                match tls {
                    None => run_connection(stream, peer, shared, None, Some(IDLE_TIMEOUT)).await,
                    Some(acceptor) => match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => run_connection(tls_stream, peer, shared, None, Some(IDLE_TIMEOUT)).await,
                        Ok(Err(e)) => tracing::info!(%remote, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::info!(%remote, "TLS handshake timed out"),
                    },
                }
            });
        }
    });
    Ok(local)
}

/// Opens a TCP connection for a request the gateway originates, sends `first`, then serves the
/// connection like an accepted one so responses and later requests flow on it.
pub fn connect_outbound(remote: SocketAddr, first: Bytes, branch_id: u64, shared: Arc<TransportShared>) {
    tokio::spawn(async move {
        let connected = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(remote)).await;
        let stream = match connected {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return shared.deliver(TransportEvent::ConnectFailed { branch_id, reason: format!("connect {remote}: {e}") }),
            Err(_) => return shared.deliver(TransportEvent::ConnectFailed { branch_id, reason: format!("connect {remote}: timed out") }),
        };
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().unwrap_or(remote);
        let peer = Peer { transport: TransportKind::Tcp, remote, local, connection: Some(shared.connection_id()) };
        let _counted = OpenConnection::new(shared.clone());
        // Our own flow to a PBX must outlive the gaps between registration refreshes (default
        // 480 s): it lives until the peer closes it.
        run_connection(stream, peer, shared, Some(first), None).await;
    });
}

async fn run_connection<S>(stream: S, peer: Peer, shared: Arc<TransportShared>, first: Option<Bytes>, idle: Option<Duration>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Some(id) = peer.connection else { return };
    let (mut reader, mut writer) = tokio::io::split(stream);
    let (commands_tx, mut commands) = mpsc::channel::<ConnectionCommand>(256);
    // The endpoint must learn about the connection before any message from it.
    if shared.events.send(TransportEvent::ConnectionOpened { peer, commands: commands_tx.clone() }).await.is_err() {
        return;
    }
    let writer_task = tokio::spawn(async move {
        if let Some(bytes) = first {
            if writer.write_all(&bytes).await.is_err() {
                return;
            }
        }
        while let Some(command) = commands.recv().await {
            match command {
                ConnectionCommand::Send(bytes) => {
                    if writer.write_all(&bytes).await.is_err() {
                        break;
                    }
                }
                ConnectionCommand::Close => break,
            }
        }
        let _ = writer.shutdown().await;
    });
    let mut framer = StreamFramer::new(shared.max_message);
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = tokio::select! {
            read = tokio::time::timeout(idle.unwrap_or(Duration::MAX), reader.read(&mut buffer)) => read,
            _ = commands_tx.closed() => break,
        };
        let len = match read {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(len)) => len,
        };
        framer.push(&buffer[..len]);
        match drain_frames(&mut framer, &peer, &shared, &commands_tx) {
            Next::Read => {}
            Next::Close => break,
            Next::CloseAfterReply => {
                // The endpoint answers, then asks us to close; give it a bounded time to do so.
                let _ = tokio::time::timeout(Duration::from_secs(5), commands_tx.closed()).await;
                break;
            }
        }
        if writer_task.is_finished() {
            break;
        }
    }
    let _ = commands_tx.try_send(ConnectionCommand::Close);
    let _ = shared.events.send(TransportEvent::ConnectionClosed { id }).await;
}

/// Holds one slot of the connection cap for as long as it lives, whichever way the task ends.
pub(super) struct OpenConnection(Arc<TransportShared>);

impl OpenConnection {
    pub(super) fn new(shared: Arc<TransportShared>) -> OpenConnection {
        shared.open_connections.fetch_add(1, Ordering::Relaxed);
        OpenConnection(shared)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

enum Next {
    Read,
    Close,
    CloseAfterReply,
}

fn drain_frames(framer: &mut StreamFramer, peer: &Peer, shared: &TransportShared, commands: &mpsc::Sender<ConnectionCommand>) -> Next {
    loop {
        match framer.next_frame() {
            Ok(None) => return Next::Read,
            Ok(Some(Frame::Ping)) => {
                let _ = commands.try_send(ConnectionCommand::Send(Bytes::from_static(b"\r\n")));
            }
            Ok(Some(Frame::Message(bytes))) => {
                if !shared.admit(peer.remote) {
                    continue;
                }
                shared.deliver(TransportEvent::Message { bytes, peer: *peer });
            }
            Err(FrameError::TooLarge) => {
                shared.counters.oversized.fetch_add(1, Ordering::Relaxed);
                tracing::info!(remote = %peer.remote, "closing stream: message too large");
                return Next::Close;
            }
            Err(FrameError::BadLength(head)) => {
                // Answer 400 from the header section, then close (RFC 4475 §3.1.2.3).
                shared.deliver(TransportEvent::Message { bytes: head, peer: *peer });
                return Next::CloseAfterReply;
            }
        }
    }
}
