//! The tokio driver of the media engine: binds RTP/RTCP port pairs from the configured range and
//! runs one task per session (never a thread per call). All media decisions are in `session.rs`;
//! this file only moves packets and time. It never waits on signalling or storage: commands and
//! events travel over bounded channels, and a full event channel drops the event rather than block.

use super::ports::{PortError, PortPool};
use super::session::{LegConfig, LegCounters, LegQuality, MediaEvent, MediaSession, Side};
use super::srtp::SrtpContext;
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

/// How a leg's packets enter and leave the engine.
pub enum LegIo {
    /// A SIP-side leg: our own RTP/RTCP sockets.
    Udp(RtpEndpoint),
    /// A leg whose transport lives elsewhere (the WebRTC leg): decrypted RTP in and out.
    Channel { inbound: mpsc::Receiver<Vec<u8>>, outbound: mpsc::Sender<Vec<u8>> },
    /// Echo: what the session sends to this leg comes straight back from it.
    Loopback,
}

/// The address packets on channel and loopback legs appear to come from; configure such legs with
/// it as their remote so the latch accepts them (their transport authenticates them already).
pub const INTERNAL_PEER: SocketAddr = SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0);

/// One leg's sockets: RTP on an even port, RTCP on the port above (unless rtcp-mux is used).
pub struct RtpEndpoint {
    pub rtp: UdpSocket,
    pub rtcp: UdpSocket,
    pub port: u16,
}

pub struct MediaEngine {
    address: IpAddr,
    /// `media.public_address`: what SDP names instead of our own address (NAT 1:1).
    public_address: Option<IpAddr>,
    route_sources: crate::route_source::RouteSources,
    ports: Mutex<PortPool>,
    started: Instant,
}

impl MediaEngine {
    pub fn new(address: IpAddr, port_min: u16, port_max: u16) -> Result<Arc<MediaEngine>, EngineError> {
        Self::with_public_address(address, None, port_min, port_max)
    }

    pub fn with_public_address(address: IpAddr, public_address: Option<IpAddr>, port_min: u16, port_max: u16) -> Result<Arc<MediaEngine>, EngineError> {
        let ports = Mutex::new(PortPool::new(port_min, port_max)?);
        let public_address = public_address.filter(|ip| !ip.is_unspecified());
        Ok(Arc::new(MediaEngine { address, public_address, route_sources: Default::default(), ports, started: Instant::now() }))
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

    /// A port for a leg that binds its own socket (the WebRTC leg). Give it back with `release`.
    /// The range may overlap the kernel's ephemeral ports, so a port some other socket holds is
    /// skipped (and goes back to the pool) rather than failing the call when the leg binds it.
    pub fn reserve_port(&self) -> Result<u16, EngineError> {
        let mut last_error = None;
        for _ in 0..32 {
            let port = self.lock_ports().allocate()?;
            match std::net::UdpSocket::bind(SocketAddr::new(self.address, port)) {
                Ok(_probe) => return Ok(port),
                Err(e) => {
                    self.lock_ports().release(port);
                    last_error = Some(EngineError::Bind { port, source: e });
                }
            }
        }
        Err(last_error.unwrap_or(EngineError::Ports(PortError::Exhausted(0, 0))))
    }

    /// The address RTP sockets bind (possibly a wildcard: never write it into SDP).
    pub fn address(&self) -> IpAddr {
        self.address
    }

    /// The address SDP names for media exchanged with `peer`: the public address, else the bound
    /// one, else (bound to a wildcard) the local address of the route toward `peer`. Never
    /// `0.0.0.0` or `::`, which SDP reads as hold: with no route, the family's loopback.
    pub fn advertised_toward(&self, peer: Option<IpAddr>) -> IpAddr {
        if let Some(public) = self.public_address {
            return public;
        }
        if !self.address.is_unspecified() {
            return self.address;
        }
        let routed = peer.filter(|p| !p.is_unspecified()).and_then(|p| self.route_sources.toward(p));
        routed.filter(|ip| ip.is_ipv4() == self.address.is_ipv4()).unwrap_or(match self.address {
            IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        })
    }

    fn lock_ports(&self) -> std::sync::MutexGuard<'_, PortPool> {
        // The pool holds no invariant a panic could break halfway; recover from poisoning.
        self.ports.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn release(&self, port: u16) {
        self.lock_ports().release(port);
    }

    /// The monotonic clock the sessions run on.
    pub fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// Starts the task that runs `session` between two UDP endpoints.
    pub fn spawn(self: &Arc<Self>, session: MediaSession, a: RtpEndpoint, b: RtpEndpoint) -> SessionHandle {
        self.spawn_legs(session, LegIo::Udp(a), LegIo::Udp(b))
    }

    /// Starts the task that runs `session` between any two kinds of leg.
    pub fn spawn_legs(self: &Arc<Self>, session: MediaSession, a: LegIo, b: LegIo) -> SessionHandle {
        let (commands_tx, commands_rx) = mpsc::channel(32);
        let (events_tx, events_rx) = mpsc::channel(256);
        let engine = self.clone();
        tokio::spawn(async move {
            let ports: Vec<u16> = [&a, &b].iter().filter_map(|io| if let LegIo::Udp(e) = io { Some(e.port) } else { None }).collect();
            run(engine.clone(), session, [a, b], commands_rx, events_tx).await;
            for port in ports {
                engine.release(port);
            }
        });
        SessionHandle { commands: commands_tx, events: events_rx }
    }
}

enum Command {
    UpdateLeg(Side, LegConfig),
    SendDtmf(Side, String, u32),
    Quality(Side, oneshot::Sender<LegQuality>),
    Counters(Side, oneshot::Sender<LegCounters>),
    RekeySrtp(Side, Option<SrtpContext>, Option<SrtpContext>),
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

    /// Installs SDES keys a re-INVITE changed; `None` keeps that direction's context.
    pub async fn rekey_srtp(&self, side: Side, outbound: Option<SrtpContext>, inbound: Option<SrtpContext>) -> Result<(), EngineError> {
        self.commands.send(Command::RekeySrtp(side, outbound, inbound)).await.map_err(|_| EngineError::Ended)
    }

    pub async fn stop(&self) {
        let _ = self.commands.send(Command::Stop).await;
    }
}

/// A leg taken apart so `select!` can borrow its sockets and its channel independently.
struct LegParts {
    udp: Option<RtpEndpoint>,
    inbound: Option<mpsc::Receiver<Vec<u8>>>,
    outbound: Option<mpsc::Sender<Vec<u8>>>,
    loopback: bool,
}

impl From<LegIo> for LegParts {
    fn from(io: LegIo) -> LegParts {
        match io {
            LegIo::Udp(endpoint) => LegParts { udp: Some(endpoint), inbound: None, outbound: None, loopback: false },
            LegIo::Channel { inbound, outbound } => LegParts { udp: None, inbound: Some(inbound), outbound: Some(outbound), loopback: false },
            LegIo::Loopback => LegParts { udp: None, inbound: None, outbound: None, loopback: true },
        }
    }
}

async fn recv_udp(endpoint: &Option<RtpEndpoint>, rtcp: bool, buffer: &mut [u8]) -> Option<(usize, SocketAddr)> {
    match endpoint {
        Some(endpoint) => {
            let socket = if rtcp { &endpoint.rtcp } else { &endpoint.rtp };
            socket.recv_from(buffer).await.ok()
        }
        None => std::future::pending().await,
    }
}

async fn recv_channel(inbound: &mut Option<mpsc::Receiver<Vec<u8>>>) -> Option<Vec<u8>> {
    match inbound {
        Some(inbound) => inbound.recv().await,
        None => std::future::pending().await,
    }
}

async fn run(engine: Arc<MediaEngine>, mut session: MediaSession, legs: [LegIo; 2], mut commands: mpsc::Receiver<Command>, events: mpsc::Sender<MediaEvent>) {
    let [a, b] = legs;
    let (mut a, mut b) = (LegParts::from(a), LegParts::from(b));
    let mut buffer_a = session.buffer();
    let mut buffer_b = session.buffer();
    let (mut scratch_a, mut scratch_b) = ([0u8; 1_500], [0u8; 1_500]);
    let mut looped: Vec<(Side, Vec<u8>)> = Vec::new();
    loop {
        // Loopback packets re-enter as if received; they only ever travel toward the other leg,
        // so this cannot cycle.
        for _ in 0..8 {
            while let Some(transmit) = session.poll_transmit() {
                let parts = match transmit.side {
                    Side::A => &a,
                    Side::B => &b,
                };
                if let Some(endpoint) = &parts.udp {
                    let socket = if transmit.rtcp { &endpoint.rtcp } else { &endpoint.rtp };
                    // Never wait on a full socket buffer: a late media packet is a lost one.
                    let _ = socket.try_send_to(&transmit.packet, transmit.to);
                    session.recycle(transmit.packet);
                } else if transmit.rtcp {
                    session.recycle(transmit.packet);
                } else if let Some(outbound) = &parts.outbound {
                    let _ = outbound.try_send(transmit.packet);
                } else if parts.loopback {
                    looped.push((transmit.side, transmit.packet));
                }
            }
            if looped.is_empty() {
                break;
            }
            for (side, packet) in looped.drain(..) {
                session.handle_rtp(side, INTERNAL_PEER, packet, engine.now());
            }
        }
        while let Some(event) = session.poll_event() {
            let _ = events.try_send(event);
        }
        let deadline = session.poll_timeout().map(|d| engine.started + d).unwrap_or_else(|| Instant::now() + Duration::from_secs(3_600));
        buffer_a.resize(1_500, 0);
        buffer_b.resize(1_500, 0);
        tokio::select! {
            received = recv_udp(&a.udp, false, &mut buffer_a) => {
                if let Some((len, from)) = received {
                    buffer_a.truncate(len);
                    let packet = std::mem::replace(&mut buffer_a, session.buffer());
                    session.handle_rtp(Side::A, from, packet, engine.now());
                }
            }
            received = recv_udp(&b.udp, false, &mut buffer_b) => {
                if let Some((len, from)) = received {
                    buffer_b.truncate(len);
                    let packet = std::mem::replace(&mut buffer_b, session.buffer());
                    session.handle_rtp(Side::B, from, packet, engine.now());
                }
            }
            received = recv_udp(&a.udp, true, &mut scratch_a) => {
                if let Some((len, from)) = received {
                    session.handle_rtcp(Side::A, from, scratch_a.get(..len).unwrap_or_default(), engine.now());
                }
            }
            received = recv_udp(&b.udp, true, &mut scratch_b) => {
                if let Some((len, from)) = received {
                    session.handle_rtcp(Side::B, from, scratch_b.get(..len).unwrap_or_default(), engine.now());
                }
            }
            packet = recv_channel(&mut a.inbound) => match packet {
                Some(packet) => session.handle_rtp(Side::A, INTERNAL_PEER, packet, engine.now()),
                None => break,
            },
            packet = recv_channel(&mut b.inbound) => match packet {
                Some(packet) => session.handle_rtp(Side::B, INTERNAL_PEER, packet, engine.now()),
                None => break,
            },
            command = commands.recv() => match command {
                Some(Command::UpdateLeg(side, config)) => session.update_leg(side, config),
                Some(Command::Counters(side, reply)) => { let _ = reply.send(session.counters(side)); }
                Some(Command::Quality(side, reply)) => { let _ = reply.send(session.quality(side)); }
                Some(Command::SendDtmf(side, digits, duration)) => {
                    if let Err(e) = session.send_dtmf(side, &digits, duration, engine.now()) {
                        tracing::info!(error = %e, "cannot play DTMF");
                    }
                }
                Some(Command::RekeySrtp(side, outbound, inbound)) => session.rekey_srtp(side, outbound, inbound),
                Some(Command::Stop) | None => break,
            },
            _ = tokio::time::sleep_until(deadline.into()) => session.handle_timeout(engine.now()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn a_port_another_socket_holds_is_skipped_and_kept() {
        // An even port held by someone else, at the start of the engine's range.
        let held = (0..100)
            .filter_map(|_| std::net::UdpSocket::bind("127.0.0.1:0").ok())
            .find(|s| s.local_addr().is_ok_and(|a| a.port() % 2 == 0 && a.port() < 65_000))
            .expect("an even ephemeral port");
        let port = held.local_addr().expect("addr").port();
        let engine = MediaEngine::new(ip("127.0.0.1"), port, port + 10).expect("engine");
        let before = engine.lock_ports().available();
        let reserved = engine.reserve_port().expect("a free port");
        assert_ne!(reserved, port, "the held port is skipped");
        assert!((port..=port + 10).contains(&reserved));
        assert_eq!(engine.lock_ports().available(), before - 1, "the held port went back to the pool");
    }

    #[test]
    fn sdp_never_names_a_wildcard() {
        let concrete = MediaEngine::new(ip("127.0.0.1"), 40_000, 40_010).expect("engine");
        assert_eq!(concrete.advertised_toward(Some(ip("192.0.2.1"))), ip("127.0.0.1"), "the bound address");
        let public = MediaEngine::with_public_address(ip("0.0.0.0"), Some(ip("203.0.113.10")), 40_000, 40_010).expect("engine");
        assert_eq!(public.advertised_toward(Some(ip("127.0.0.1"))), ip("203.0.113.10"), "media.public_address wins");
        let wildcard = MediaEngine::new(ip("0.0.0.0"), 40_000, 40_010).expect("engine");
        assert_eq!(wildcard.advertised_toward(Some(ip("127.0.0.2"))), ip("127.0.0.1"), "the route source toward the peer");
        for peer in [None, Some(ip("0.0.0.0")), Some(ip("2001:db8::1"))] {
            assert!(!wildcard.advertised_toward(peer).is_unspecified(), "{peer:?}");
        }
        let v6 = MediaEngine::new(ip("::"), 40_000, 40_010).expect("engine");
        assert_eq!(v6.advertised_toward(Some(ip("::1"))), ip("::1"));
    }
}
