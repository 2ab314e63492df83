//! A throwaway PostgreSQL database on the server `make test` provides (DATABASE_URL), and a TCP
//! relay in front of it whose port can be closed and reopened, as when the database host goes away.

#![allow(dead_code)]

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

pub fn database_url() -> String {
    std::env::var("DATABASE_URL").expect("DATABASE_URL must name a PostgreSQL: `make test` sets it (scripts/ensure-postgres.sh)")
}

/// A fresh database on the test server, dropped when the guard goes.
pub struct TempDatabase {
    admin: String,
    name: String,
    pub url: String,
}

impl TempDatabase {
    pub fn create() -> TempDatabase {
        let admin = database_url();
        let name = format!("sipbridge_test_{}", uuid::Uuid::new_v4().simple());
        let status = Command::new("psql").arg(&admin).args(["-qc", &format!("CREATE DATABASE {name}")]).status().expect("psql");
        assert!(status.success(), "cannot create a test database on {admin}");
        let base = admin.rsplit_once('/').map(|(base, _)| base.to_string()).unwrap_or(admin.clone());
        TempDatabase { url: format!("{base}/{name}"), admin, name }
    }

    /// The URL with host:port replaced by 127.0.0.1:`port`, and the original host:port.
    pub fn through(&self, port: u16) -> (String, String) {
        let (scheme_user, rest) = self.url.split_once('@').expect("URL with user@host");
        let (host_port, db) = rest.split_once('/').expect("URL with a database");
        (format!("{scheme_user}@127.0.0.1:{port}/{db}"), host_port.to_string())
    }
}

impl Drop for TempDatabase {
    fn drop(&mut self) {
        let _ = Command::new("psql").arg(&self.admin).args(["-qc", &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)]).status();
    }
}

/// Closing drops every relayed connection within 50 ms and refuses new ones.
pub struct Relay {
    pub port: u16,
    up: Arc<AtomicBool>,
}

impl Relay {
    pub async fn start(target: String) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let up = Arc::new(AtomicBool::new(true));
        let flag = up.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !flag.load(Ordering::SeqCst) {
                    continue;
                }
                let (flag, target) = (flag.clone(), target.clone());
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&target).await else { return };
                    let relay = tokio::io::copy_bidirectional(&mut client, &mut server);
                    tokio::pin!(relay);
                    for _ in 0..100_000 {
                        tokio::select! {
                            _ = &mut relay => return,
                            () = tokio::time::sleep(Duration::from_millis(50)) => {
                                if !flag.load(Ordering::SeqCst) { return; }
                            }
                        }
                    }
                });
            }
        });
        Relay { port, up }
    }

    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
    }
}

/// A relay that holds every query for `delay` on its way to PostgreSQL, as a slow or overloaded
/// database does. Messages that start a query (simple query `Q`, extended `P` parse or `B` bind)
/// wait; the connection handshake and authentication do not, so connecting stays quick.
pub struct SlowRelay {
    pub port: u16,
    delay_ms: Arc<std::sync::atomic::AtomicU64>,
    /// Queries held so far.
    pub delayed: Arc<std::sync::atomic::AtomicU64>,
}

impl SlowRelay {
    pub async fn start(target: String, delay: Duration) -> SlowRelay {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let delay_ms = Arc::new(std::sync::atomic::AtomicU64::new(delay.as_millis() as u64));
        let delayed = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (delay_of, count) = (delay_ms.clone(), delayed.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (delay_of, count, target) = (delay_of.clone(), count.clone(), target.clone());
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&target).await else { return };
                    let (mut from_client, mut to_client) = client.into_split();
                    let (mut from_server, mut to_server) = server.into_split();
                    let answers = tokio::spawn(async move { tokio::io::copy(&mut from_server, &mut to_client).await });
                    let mut buffer = vec![0u8; 64 * 1024];
                    loop {
                        let n = match from_client.read(&mut buffer).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let wait = delay_of.load(Ordering::SeqCst);
                        if wait > 0 && matches!(buffer[0], b'Q' | b'P' | b'B') {
                            count.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(wait)).await;
                        }
                        if to_server.write_all(&buffer[..n]).await.is_err() {
                            break;
                        }
                    }
                    answers.abort();
                });
            }
        });
        SlowRelay { port, delay_ms, delayed }
    }

    pub fn set_delay(&self, delay: Duration) {
        self.delay_ms.store(delay.as_millis() as u64, Ordering::SeqCst);
    }
}
