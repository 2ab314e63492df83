//! Stopping the process: from the first SIGTERM, SIGINT or drain request (REST or
//! `sipbridge drain`) to the moment HTTP may stop. Calls drain (`call::drain`), their records
//! settle, and browsers' sockets close.

use crate::call::inbound::CallLayer;
use crate::config::Config;
use crate::store::RecorderHandle;
use std::sync::Arc;
use std::time::Duration;

/// How long browsers' sockets get to close once their calls have ended.
pub const WEBSOCKET_CLOSE_GRACE: Duration = Duration::from_secs(2);
/// How long records get to reach the database at exit; the spool keeps what did not.
const RECORDS_GRACE: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum ShutdownError {
    #[error("the config has no http.api_tokens; send SIGTERM to the process instead")]
    NoApiToken,
    #[error("cannot reach the gateway at {address}: {source}")]
    Unreachable { address: std::net::SocketAddr, source: std::io::Error },
    #[error("the gateway answered {status}: {body}")]
    Refused { status: u16, body: String },
    #[error("the gateway's HTTP API takes only HTTPS ([http.tls]), which this command does not speak; send SIGTERM to the process, or POST /api/v1/drain over HTTPS")]
    HttpsOnly,
}

/// Completes when the process may stop serving HTTP: after a stop signal or drain request, the
/// calls have drained (a second signal ends them at once) and their records have settled.
pub async fn stop_sequence(calls: Arc<CallLayer>, drain_for: Duration, records: RecorderHandle) {
    let mut signals = StopSignals::new();
    tokio::select! {
        () = signals.next() => {}
        () = calls.drain.begun() => {}
    }
    calls.drain.begin();
    crate::call::drain::run_drain(&calls.drain, drain_for, &calls.active, signals.next()).await;
    if !records.settle(RECORDS_GRACE).await {
        tracing::warn!(spooled = records.spool_depth() + records.queued(), "call records not yet in the database stay in the spool for the next start");
    }
}

/// SIGTERM and SIGINT, as many times as they come.
struct StopSignals {
    terminate: Option<tokio::signal::unix::Signal>,
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn new() -> StopSignals {
        use tokio::signal::unix::{signal, SignalKind};
        StopSignals { terminate: signal(SignalKind::terminate()).ok(), interrupt: signal(SignalKind::interrupt()).ok() }
    }

    async fn next(&mut self) {
        async fn one(signal: &mut Option<tokio::signal::unix::Signal>) {
            match signal.as_mut() {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            () = one(&mut self.terminate) => {}
            () = one(&mut self.interrupt) => {}
        }
    }
}

/// `sipbridge drain`: POST /api/v1/drain to the gateway `config` describes; its reply.
pub fn request_drain(config: &Config) -> Result<String, ShutdownError> {
    if config.http.tls.is_some() {
        return Err(ShutdownError::HttpsOnly);
    }
    let token = config.http.api_tokens.first().ok_or(ShutdownError::NoApiToken)?;
    let mut address = config.http.listen;
    if address.ip().is_unspecified() {
        address.set_ip(if address.is_ipv4() { std::net::Ipv4Addr::LOCALHOST.into() } else { std::net::Ipv6Addr::LOCALHOST.into() });
    }
    let (status, body) = post_empty(address, "/api/v1/drain", &token.0).map_err(|source| ShutdownError::Unreachable { address, source })?;
    if status != 202 {
        return Err(ShutdownError::Refused { status, body: body.trim().to_string() });
    }
    Ok(body.trim().to_string())
}

/// A bodyless POST over plain HTTP/1.1: the status and the body.
fn post_empty(address: std::net::SocketAddr, path: &str, token: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&address, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "POST {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default();
    Ok((status, body))
}
