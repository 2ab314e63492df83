//! HTTPS and WSS served by the gateway itself: browsers allow the microphone only on secure pages,
//! and WebRTC wants its signalling encrypted too. TCP connections are accepted here and their TLS
//! handshakes run in tasks of their own (bounded in number and time), so a slow client never holds
//! up the others; axum gets only finished TLS streams. SIGHUP swaps the certificate for new
//! connections, while connections already open (and the calls on them) carry on untouched.

use crate::sip::transport::tls::{acceptor_from_files, TlsError};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// A handshake not finished in this time is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// At most this many handshakes at once; further connections wait in the kernel's backlog.
const MAX_HANDSHAKES: usize = 256;

/// The certificate in use, and where to read it again.
pub struct Certificate {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<TlsAcceptor>,
}

impl Certificate {
    pub fn load(cert: PathBuf, key: PathBuf) -> Result<Certificate, TlsError> {
        let current = RwLock::new(acceptor_from_files(&cert, &key)?);
        Ok(Certificate { cert, key, current })
    }

    /// Reads the files again; on an error the certificate in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = acceptor_from_files(&self.cert, &self.key)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(())
    }

    fn acceptor(&self) -> TlsAcceptor {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn file(&self) -> &std::path::Path {
        &self.cert
    }
}

/// Reloads the certificate on every SIGHUP (which would otherwise end the process).
pub fn reload_on_sighup(certificate: Arc<Certificate>) -> std::io::Result<()> {
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            match certificate.reload() {
                Ok(()) => tracing::info!(cert = %certificate.file().display(), "SIGHUP: HTTPS certificate reloaded; open connections keep theirs"),
                Err(e) => tracing::error!(error = %e, "SIGHUP: HTTPS certificate not reloaded; the previous one stays in use"),
            }
        }
    });
    Ok(())
}

/// An axum listener that yields TLS streams whose handshake is done.
pub struct HttpsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl HttpsListener {
    pub fn start(listener: TcpListener, certificate: Arc<Certificate>) -> std::io::Result<HttpsListener> {
        let local = listener.local_addr()?;
        let (done, ready) = mpsc::channel(64);
        tokio::spawn(accept_loop(listener, certificate, done));
        Ok(HttpsListener { ready, local })
    }
}

async fn accept_loop(listener: TcpListener, certificate: Arc<Certificate>, done: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>) {
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let Ok(permit) = handshakes.clone().acquire_owned().await else { return };
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                tracing::warn!(error = %e, "HTTPS accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Signalling frames are small and latency-bound, and a fixed send buffer keeps the
        // back-pressure on a slow browser early (see the plain HTTP listener).
        let _ = tcp.set_nodelay(true);
        let _ = socket2::SockRef::from(&tcp).set_send_buffer_size(super::SEND_BUFFER);
        let (acceptor, handed) = (certificate.acceptor(), done.clone());
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    let _ = handed.send((stream, peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(source = %peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(source = %peer, "TLS handshake timed out"),
            }
        });
        if done.is_closed() {
            return;
        }
    }
}

impl axum::serve::Listener for HttpsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept loop ended (the server is going away): accept nothing more.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
