//! The tokio driver of the media engine: binds RTP/RTCP port pairs from the configured range and
//! runs one task per session (never a thread per call). All media decisions are in `session.rs`;
//! this file only moves packets and time. It never waits on signalling or storage: commands and
//! events travel over bounded channels, and a full event channel drops the event rather than block.

use super::ports::{PortError, PortPool};
use super::session::{LegConfig, LegCounters, LegQuality, MediaEvent, MediaSession, Side};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Ports(#[from] PortError),
    #[error("cannot bind RTP port {port}: {source}")]
    Bind { port: u16, source: std::io::Error },
    #[error("the media session has ended")]
    Ended,
}

/// One leg's sockets: RTP on an even port, RTCP on the port above (unless rtcp-mux is used).
pub struct RtpEndpoint {
    pub rtp: UdpSocket,
    pub rtcp: UdpSocket,
    pub port: u16,
}

pub struct MediaEngine {
    address: IpAddr,
    ports: Mutex<PortPool>,
    started: Instant,
}

impl MediaEngine {
    pub fn new(address: IpAddr, port_min: u16, port_max: u16) -> Result<Arc<MediaEngine>, EngineError> {
        Ok(Arc::new(MediaEngine { address, ports: Mutex::new(PortPool::new(port_min, port_max)?), started: Instant::now() }))
    }

    /// Binds the next free even/odd pair. Ports another process holds are skipped (and returned to
    /// the pool so a later attempt can retry them).
    pub async fn allocate(&self) -> Result<RtpEndpoint, EngineError> {
        let mut last_error = None;
        for _ in 0..32 {
            let port = self.lock_ports().allocate()?;
            let rtp = UdpSocket::bind(SocketAddr::new(self.address, port)).await;
            let rtcp = UdpSocket::bind(SocketAddr::new(self.address, port + 1)).await;
            match (rtp, rtcp) {
                (Ok(rtp), Ok(rtcp)) => return Ok(RtpEndpoint { rtp, rtcp, port }),
                (Err(e), _) | (_, Err(e)) => {
                    self.lock_ports().release(port);
                    last_error = Some(EngineError::Bind { port, source: e });
                }
            }
        }
        Err(last_error.unwrap_or(EngineError::Ports(PortError::Exhausted(0, 0))))
    }

    fn lock_ports(&self) -> std::sync::MutexGuard<'_, PortPool> {
        // The pool holds no invariant a panic could break halfway; recover from poisoning.
        self.ports.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn release(&self, port: u16) {
        self.lock_ports().release(port);
    }

    /// The monotonic clock the sessions run on.
    pub fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// Starts the task that runs `session` between the two endpoints.
    pub fn spawn(self: &Arc<Self>, session: MediaSession, a: RtpEndpoint, b: RtpEndpoint) -> SessionHandle {
        let (commands_tx, commands_rx) = mpsc::channel(32);
        let (events_tx, events_rx) = mpsc::channel(256);
        let engine = self.clone();
        tokio::spawn(async move {
            let ports = (a.port, b.port);
            run(engine.clone(), session, [a, b], commands_rx, events_tx).await;
            engine.release(ports.0);
            engine.release(ports.1);
        });
        SessionHandle { commands: commands_tx, events: events_rx }
    }
}

enum Command {
    UpdateLeg(Side, LegConfig),
    SendDtmf(Side, String, u32),
    Quality(Side, oneshot::Sender<LegQuality>),
    Counters(Side, oneshot::Sender<LegCounters>),
    Stop,
}

/// The call layer's grip on a running session.
pub struct SessionHandle {
    commands: mpsc::Sender<Command>,
    pub events: mpsc::Receiver<MediaEvent>,
}

impl SessionHandle {
    pub async fn update_leg(&self, side: Side, config: LegConfig) -> Result<(), EngineError> {
        self.commands.send(Command::UpdateLeg(side, config)).await.map_err(|_| EngineError::Ended)
    }

    pub async fn counters(&self, side: Side) -> Result<LegCounters, EngineError> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(Command::Counters(side, tx)).await.map_err(|_| EngineError::Ended)?;
        rx.await.map_err(|_| EngineError::Ended)
    }

    /// Plays digits toward `toward` (RFC 4733, or an INFO event if that leg wants INFO).
    pub async fn send_dtmf(&self, toward: Side, digits: &str, duration_ms: u32) -> Result<(), EngineError> {
        self.commands.send(Command::SendDtmf(toward, digits.to_string(), duration_ms)).await.map_err(|_| EngineError::Ended)
    }

    pub async fn quality(&self, side: Side) -> Result<LegQuality, EngineError> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(Command::Quality(side, tx)).await.map_err(|_| EngineError::Ended)?;
        rx.await.map_err(|_| EngineError::Ended)
    }

    pub async fn stop(&self) {
        let _ = self.commands.send(Command::Stop).await;
    }
}

async fn run(engine: Arc<MediaEngine>, mut session: MediaSession, legs: [RtpEndpoint; 2], mut commands: mpsc::Receiver<Command>, events: mpsc::Sender<MediaEvent>) {
    let [a, b] = legs;
    let mut buffer_a = session.buffer();
    let mut buffer_b = session.buffer();
    let (mut scratch_a, mut scratch_b) = ([0u8; 1_500], [0u8; 1_500]);
    loop {
        while let Some(transmit) = session.poll_transmit() {
            let socket = match (transmit.side, transmit.rtcp) {
                (Side::A, false) => &a.rtp,
                (Side::A, true) => &a.rtcp,
                (Side::B, false) => &b.rtp,
                (Side::B, true) => &b.rtcp,
            };
            // Never wait on a full socket buffer: media is real time, a late packet is a lost one.
            let _ = socket.try_send_to(&transmit.packet, transmit.to);
            session.recycle(transmit.packet);
        }
        while let Some(event) = session.poll_event() {
            let _ = events.try_send(event);
        }
        let deadline = session.poll_timeout().map(|d| engine.started + d).unwrap_or_else(|| Instant::now() + Duration::from_secs(3_600));
        buffer_a.resize(1_500, 0);
        buffer_b.resize(1_500, 0);
        tokio::select! {
            received = a.rtp.recv_from(&mut buffer_a) => {
                if let Ok((len, from)) = received {
                    buffer_a.truncate(len);
                    let packet = std::mem::replace(&mut buffer_a, session.buffer());
                    session.handle_rtp(Side::A, from, packet, engine.now());
                }
            }
            received = b.rtp.recv_from(&mut buffer_b) => {
                if let Ok((len, from)) = received {
                    buffer_b.truncate(len);
                    let packet = std::mem::replace(&mut buffer_b, session.buffer());
                    session.handle_rtp(Side::B, from, packet, engine.now());
                }
            }
            received = a.rtcp.recv_from(&mut scratch_a) => {
                if let Ok((len, from)) = received {
                    session.handle_rtcp(Side::A, from, scratch_a.get(..len).unwrap_or_default(), engine.now());
                }
            }
            received = b.rtcp.recv_from(&mut scratch_b) => {
                if let Ok((len, from)) = received {
                    session.handle_rtcp(Side::B, from, scratch_b.get(..len).unwrap_or_default(), engine.now());
                }
            }
            command = commands.recv() => match command {
                Some(Command::UpdateLeg(side, config)) => session.update_leg(side, config),
                Some(Command::Counters(side, reply)) => { let _ = reply.send(session.counters(side)); }
                Some(Command::Quality(side, reply)) => { let _ = reply.send(session.quality(side)); }
                Some(Command::SendDtmf(side, digits, duration)) => {
                    if let Err(e) = session.send_dtmf(side, &digits, duration, engine.now()) {
                        tracing::info!(error = %e, "cannot play DTMF");
                    }
                }
                Some(Command::Stop) | None => break,
            },
            _ = tokio::time::sleep_until(deadline.into()) => session.handle_timeout(engine.now()),
        }
    }
}
