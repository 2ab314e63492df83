//! The media engine: the port pool, the addresses SDP names, and the media workers that run the
//! sessions (`worker/`). Signalling uses it through handles: `SessionHandle` for a running
//! session and `BrowserLegHandle` for a WebRTC leg. Both send commands to the worker that owns
//! the call; nothing here is on the packet path.

use super::ports::{PortError, PortPool};
use super::session::{LegConfig, LegCounters, LegQuality, MediaEvent, MediaSession, Side};
use super::srtp::SrtpContext;
use super::worker::{self, BrowserLegStart, Command, LegId, SessionCommand, SessionId, WorkerHandle, WorkerLeg};
use crate::webrtc_leg::{BrowserCodec, BrowserMedia, LegEvent, WebRtcConfig, WebRtcError};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Ports(#[from] PortError),
    #[error("cannot bind RTP port {port}: {source}")]
    Bind { port: u16, source: std::io::Error },
    #[error("the media session has ended")]
    Ended,
    #[error("cannot make the DTLS certificate: {0}")]
    Certificate(#[source] WebRtcError),
}

/// How a leg's packets enter and leave the engine.
pub enum LegIo {
    /// A SIP-side leg: our own RTP/RTCP sockets.
    Udp(RtpEndpoint),
    /// A browser's WebRTC leg, opened with `MediaEngine::open_browser_leg`.
    Browser(LegId),
    /// Echo: what the session sends to this leg comes straight back from it.
    Loopback,
}

/// The address packets on browser and loopback legs appear to come from; configure such legs with
/// it as their remote so the latch accepts them (their transport authenticates them already).
pub const INTERNAL_PEER: SocketAddr = SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0);

/// One leg's sockets: RTP on an even port, RTCP on the port above (unless rtcp-mux is used).
/// Non-blocking; the worker that runs the session watches them. Dropping it (with its session,
/// or unused when a call fails first) gives the port back to the range.
pub struct RtpEndpoint {
    pub rtp: std::net::UdpSocket,
    pub rtcp: std::net::UdpSocket,
    pub port: u16,
    pool: Arc<Mutex<PortPool>>,
}

impl Drop for RtpEndpoint {
    fn drop(&mut self) {
        self.pool.lock().unwrap_or_else(std::sync::PoisonError::into_inner).release(self.port);
    }
}

/// How many workers, which port their shared WebRTC sockets use, and how calls are placed.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// 0: one per core.
    pub workers: usize,
    /// The first worker's WebRTC port (the next worker takes the next port); 0: from the range.
    pub webrtc_port: u16,
    /// SCHED_FIFO priority of the worker threads (1-99); 0: the normal scheduler.
    pub realtime_priority: u8,
    /// A worker under this share of a core takes new calls first (`pick_worker`).
    pub fill_percent: u8,
    /// The fair scheduler's time slice the workers ask for, µs; 0: the kernel's default.
    pub slice_us: u32,
    /// The CPU each worker is pinned to, in order (a worker past the list's end runs unpinned);
    /// empty: the scheduler places them. With `workers` at 0, one worker per listed CPU.
    pub cpus: Vec<usize>,
    /// How long transcoded RTP may wait to be coded with the rest of its tick (`worker::codec_batch`);
    /// zero: coded on arrival.
    pub codec_batch: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            workers: 0,
            webrtc_port: 0,
            realtime_priority: 0,
            fill_percent: DEFAULT_WORKER_FILL_PERCENT,
            slice_us: DEFAULT_WORKER_SLICE_US,
            cpus: Vec::new(),
            codec_batch: Duration::from_millis(u64::from(DEFAULT_CODEC_BATCH_MS)),
        }
    }
}

pub struct MediaEngine {
    address: IpAddr,
    /// `media.public_address`: what SDP names instead of our own address (NAT 1:1).
    public_address: Option<IpAddr>,
    route_sources: crate::route_source::RouteSources,
    ports: Arc<Mutex<PortPool>>,
    started: Instant,
    settings: WorkerSettings,
    /// Started on first use, so an engine that only answers address questions binds nothing.
    workers: Mutex<Option<Arc<Vec<WorkerHandle>>>>,
    next_id: AtomicU64,
}

impl MediaEngine {
    pub fn new(address: IpAddr, port_min: u16, port_max: u16) -> Result<Arc<MediaEngine>, EngineError> {
        Self::with_public_address(address, None, port_min, port_max)
    }

    pub fn with_public_address(address: IpAddr, public_address: Option<IpAddr>, port_min: u16, port_max: u16) -> Result<Arc<MediaEngine>, EngineError> {
        Self::with_workers(address, public_address, port_min, port_max, WorkerSettings::default())
    }

    pub fn with_workers(address: IpAddr, public_address: Option<IpAddr>, port_min: u16, port_max: u16, settings: WorkerSettings) -> Result<Arc<MediaEngine>, EngineError> {
        let ports = Arc::new(Mutex::new(PortPool::new(port_min, port_max)?));
        let public_address = public_address.filter(|ip| !ip.is_unspecified());
        Ok(Arc::new(MediaEngine {
            address,
            public_address,
            route_sources: Default::default(),
            ports,
            started: Instant::now(),
            settings,
            workers: Mutex::new(None),
            next_id: AtomicU64::new(1),
        }))
    }

    /// Binds the next free even/odd pair. Ports another process holds are skipped (and returned to
    /// the pool so a later attempt can retry them).
    pub async fn allocate(&self) -> Result<RtpEndpoint, EngineError> {
        let mut last_error = None;
        for _ in 0..32 {
            let port = self.lock_ports().allocate()?;
            let bind = |port: u16| std::net::UdpSocket::bind(SocketAddr::new(self.address, port)).and_then(|s| s.set_nonblocking(true).map(|()| s));
            match (bind(port), bind(port + 1)) {
                (Ok(rtp), Ok(rtcp)) => return Ok(RtpEndpoint { rtp, rtcp, port, pool: Arc::clone(&self.ports) }),
                (Err(e), _) | (_, Err(e)) => {
                    self.lock_ports().release(port);
                    last_error = Some(EngineError::Bind { port, source: e });
                }
            }
        }
        Err(last_error.unwrap_or(EngineError::Ports(PortError::Exhausted(0, 0))))
    }

    /// A port from the range that no other socket holds now. The range may overlap the kernel's
    /// ephemeral ports, so a held port is skipped (and goes back to the pool).
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

    /// The address SDP names for media with every peer, when it does not depend on the peer: the
    /// public address, else the bound one. `None` when bound to a wildcard.
    pub fn advertised_to_all(&self) -> Option<IpAddr> {
        self.public_address.or(Some(self.address).filter(|a| !a.is_unspecified()))
    }

    /// The address SDP names for media exchanged with `peer`: the public address, else the bound
    /// one, else (bound to a wildcard) the local address of the route toward `peer`. Never
    /// `0.0.0.0` or `::`, which SDP reads as hold: with no route, the family's loopback.
    pub fn advertised_toward(&self, peer: Option<IpAddr>) -> IpAddr {
        if let Some(address) = self.advertised_to_all() {
            return address;
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

    /// The workers, started on first use.
    pub fn workers(&self) -> Result<Arc<Vec<WorkerHandle>>, EngineError> {
        let mut workers = self.workers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(started) = workers.as_ref() {
            return Ok(Arc::clone(started));
        }
        let count = match self.settings.workers {
            0 if !self.settings.cpus.is_empty() => self.settings.cpus.len(),
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        let mut started = Vec::with_capacity(count);
        for index in 0..count {
            started.push(self.start_worker(index)?);
        }
        let started = Arc::new(started);
        *workers = Some(Arc::clone(&started));
        Ok(started)
    }

    fn start_worker(&self, index: usize) -> Result<WorkerHandle, EngineError> {
        if self.settings.webrtc_port != 0 {
            let port = self.settings.webrtc_port.saturating_add(index as u16);
            let binds = crate::webrtc_leg::shared_socket_addresses(SocketAddr::new(self.address, port));
            return worker::spawn(index, &binds, self.started, &self.settings);
        }
        let mut last_error = None;
        for _ in 0..32 {
            let port = self.reserve_port()?;
            let binds = crate::webrtc_leg::shared_socket_addresses(SocketAddr::new(self.address, port));
            match worker::spawn(index, &binds, self.started, &self.settings) {
                Ok(handle) => return Ok(handle),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or(EngineError::Ended))
    }

    /// Drops counted on the shared WebRTC ports, summed over workers: (unknown 5-tuple,
    /// unknown ufrag, refused by a leg).
    pub fn webrtc_drops(&self) -> (u64, u64, u64) {
        let workers = self.workers.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        workers.map_or((0, 0, 0), |workers| {
            workers.iter().fold((0, 0, 0), |(a, b, c), w| {
                (a + w.counters.unknown_flow.load(Ordering::Relaxed), b + w.counters.unknown_ufrag.load(Ordering::Relaxed), c + w.counters.rejected_by_leg.load(Ordering::Relaxed))
            })
        })
    }

    /// Media packets the workers' sockets refused to send, summed over workers.
    pub fn sends_refused(&self) -> u64 {
        let workers = self.workers.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        workers.map_or(0, |workers| workers.iter().map(|w| w.counters.send_refused.load(Ordering::Relaxed)).sum())
    }

    fn next_worker(&self) -> Result<(usize, WorkerHandle), EngineError> {
        let workers = self.workers()?;
        let index = pick_worker(workers.iter().map(WorkerHandle::load_permille), u32::from(self.settings.fill_percent) * 10);
        workers.get(index).cloned().map(|w| (index, w)).ok_or(EngineError::Ended)
    }

    /// Opens a browser leg on a worker: answering the browser's offer, or offering to it. Returns
    /// the leg, our SDP, what it negotiated, and the leg's events (local candidates, state).
    pub fn open_browser_leg(&self, start: BrowserLegStart, config: &WebRtcConfig, ssrc: u32) -> Result<(BrowserLegHandle, String, BrowserMedia, mpsc::Receiver<LegEvent>), WebRtcError> {
        self.open_browser_leg_beside(start, config, ssrc, None)
    }

    /// As `open_browser_leg`, on the worker that holds `beside` when given: a session runs on one
    /// worker, so two WebRTC legs of one call (a WebRTC SIP peer and a browser) must share it.
    /// The leg is built on the calling thread and handed to its worker (`WorkerHandle::open_browser_leg`).
    pub fn open_browser_leg_beside(&self, start: BrowserLegStart, config: &WebRtcConfig, ssrc: u32, beside: Option<&BrowserLegHandle>) -> Result<(BrowserLegHandle, String, BrowserMedia, mpsc::Receiver<LegEvent>), WebRtcError> {
        let worker = match beside {
            Some(other) => other.worker.clone(),
            None => self.next_worker().map_err(|e| WebRtcError::Engine(e.to_string()))?.1,
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (events_tx, events) = mpsc::channel(64);
        let (sdp, media) = worker.open_browser_leg(id, start, config, ssrc, events_tx)?;
        let handle = BrowserLegHandle { id, worker, ssrc, media: Mutex::new(media.clone()) };
        Ok((handle, sdp, media, events))
    }

    /// Starts `session` between two UDP endpoints.
    pub fn spawn(self: &Arc<Self>, session: MediaSession, a: RtpEndpoint, b: RtpEndpoint) -> SessionHandle {
        self.spawn_legs(session, LegIo::Udp(a), LegIo::Udp(b))
    }

    /// Starts `session` between any two kinds of leg, on the worker of its browser leg if any.
    pub fn spawn_legs(self: &Arc<Self>, session: MediaSession, a: LegIo, b: LegIo) -> SessionHandle {
        self.spawn_on(session, a, b, None)
    }

    /// As `spawn_legs`, with the session on the worker that holds `browser`.
    pub fn spawn_with_browser(self: &Arc<Self>, session: MediaSession, a: LegIo, b: LegIo, browser: &BrowserLegHandle) -> SessionHandle {
        self.spawn_on(session, a, b, Some(browser.worker.clone()))
    }

    fn spawn_on(self: &Arc<Self>, session: MediaSession, a: LegIo, b: LegIo, worker: Option<WorkerHandle>) -> SessionHandle {
        let id: SessionId = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (events_tx, events) = mpsc::channel(256);
        let worker = worker.map(Ok).unwrap_or_else(|| self.next_worker().map(|(_, w)| w));
        let legs = [a, b].map(|io| match io {
            LegIo::Udp(endpoint) => WorkerLeg::Udp(endpoint),
            LegIo::Browser(id) => WorkerLeg::Browser(id),
            LegIo::Loopback => WorkerLeg::Loopback,
        });
        let worker = match worker {
            Ok(worker) => worker.send(Command::StartSession { id, session: Box::new(session), legs, events: events_tx }).map(|()| worker),
            Err(e) => Err(e),
        };
        if let Err(e) = &worker {
            tracing::error!(error = %e, "no media worker: the session carries no media");
        }
        SessionHandle { id, worker: worker.ok(), events }
    }
}

/// `[media] worker_slice_us` unless configured: the shortest slice the kernel grants, so a
/// packet that wakes a worker preempts the thread running on its core (scheduling.rs).
pub const DEFAULT_WORKER_SLICE_US: u32 = 100;

/// `[media] codec_batch_ms` unless configured: one frame of the usual 20 ms packet time, so that
/// a tick codes one frame of every transcoded call in each direction (`worker::codec_batch`).
pub const DEFAULT_CODEC_BATCH_MS: u16 = 20;

/// `[media] worker_fill_percent` unless configured: a worker under this share of a core takes
/// new calls before the next one does. Packing trades CPU against the relayed latency's tail:
/// - At 30 % (3 Dec 2026), 200 relayed calls cost 15-20 % less CPU a call than dealt in turn: a
///   worker woken for a packet finds others queued with it, and a wake-up (a switch, in a VM an
///   exit) is a third of a relayed packet's cost.
/// - At 80 % (4 Dec 2026) they cost 1.4-1.7x the bare relay against 2.2-2.4x at 30 %, and 100
///   transcoded calls 0.721 % a call against 0.806 % (six runs each): the other core is left to
///   the rest of the machine, whose threads then preempt the worker less. But one worker's turns
///   are longer, and the passthrough latency's p99 at 200 calls rose from 0.40-0.57 ms to
///   0.53-0.61 ms, past the 0.5 ms target; so the default stays at 30 %.
/// - Calls never move once placed (a browser's flow names its worker's port), so a full
///   worker keeps room for what its calls add later (transcoding after a re-INVITE, DTMF).
pub const DEFAULT_WORKER_FILL_PERCENT: u8 = 30;

/// Where a new call goes: the first worker below `fill_permille` (thousandths of a core), else
/// the least loaded.
pub fn pick_worker(loads: impl Iterator<Item = u32>, fill_permille: u32) -> usize {
    let mut least = (0, u32::MAX);
    for (index, load) in loads.enumerate() {
        if load < fill_permille {
            return index;
        }
        if load < least.1 {
            least = (index, load);
        }
    }
    least.0
}

/// The call layer's grip on a running session. Dropping it stops the session.
pub struct SessionHandle {
    id: SessionId,
    worker: Option<WorkerHandle>,
    pub events: mpsc::Receiver<MediaEvent>,
}

impl SessionHandle {
    fn command(&self, command: SessionCommand) -> Result<(), EngineError> {
        self.worker.as_ref().ok_or(EngineError::Ended)?.send(Command::Session { id: self.id, command })
    }

    pub async fn update_leg(&self, side: Side, config: LegConfig) -> Result<(), EngineError> {
        self.command(SessionCommand::UpdateLeg(side, config))
    }

    /// The call was answered after early media: the inactivity timers start now.
    pub async fn expect_media(&self) -> Result<(), EngineError> {
        self.command(SessionCommand::ExpectMedia)
    }

    pub async fn counters(&self, side: Side) -> Result<LegCounters, EngineError> {
        let (tx, rx) = oneshot::channel();
        self.command(SessionCommand::Counters(side, tx))?;
        rx.await.map_err(|_| EngineError::Ended)
    }

    /// Plays digits toward `toward` (RFC 4733, or an INFO event if that leg wants INFO).
    pub async fn send_dtmf(&self, toward: Side, digits: &str, duration_ms: u32) -> Result<(), EngineError> {
        self.command(SessionCommand::SendDtmf(toward, digits.to_string(), duration_ms))
    }

    pub async fn quality(&self, side: Side) -> Result<LegQuality, EngineError> {
        let (tx, rx) = oneshot::channel();
        self.command(SessionCommand::Quality(side, tx))?;
        rx.await.map_err(|_| EngineError::Ended)
    }

    /// Installs SDES keys a re-INVITE changed; `None` keeps that direction's context.
    pub async fn rekey_srtp(&self, side: Side, outbound: Option<SrtpContext>, inbound: Option<SrtpContext>) -> Result<(), EngineError> {
        self.command(SessionCommand::RekeySrtp(side, outbound, inbound))
    }

    pub async fn stop(&self) {
        let _ = self.command(SessionCommand::Stop);
    }
}

impl Drop for SessionHandle {
    fn drop(&mut self) {
        let _ = self.command(SessionCommand::Stop);
    }
}

/// The call layer's grip on a browser's WebRTC leg. Dropping it closes the leg.
pub struct BrowserLegHandle {
    id: LegId,
    worker: WorkerHandle,
    ssrc: u32,
    media: Mutex<BrowserMedia>,
}

impl BrowserLegHandle {
    /// What the session's `LegIo` names this leg by.
    pub fn io(&self) -> LegIo {
        LegIo::Browser(self.id)
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// What the leg negotiated, with the browser leg's own payload numbers.
    pub fn media(&self) -> BrowserMedia {
        self.media.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    pub fn codec(&self) -> BrowserCodec {
        self.media().codec
    }

    /// Applies the browser's answer to our offer.
    pub async fn set_answer(&self, sdp: &str) -> Result<BrowserMedia, WebRtcError> {
        let (reply, answer) = oneshot::channel();
        self.worker.send(Command::SetBrowserAnswer { id: self.id, sdp: sdp.to_string(), reply }).map_err(|e| WebRtcError::Engine(e.to_string()))?;
        let media = answer.await.map_err(|_| WebRtcError::Engine("media worker stopped".into()))??;
        *self.media.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = media.clone();
        Ok(media)
    }

    /// A trickled candidate from the browser; `None` is end-of-candidates.
    pub async fn add_remote_candidate(&self, candidate: Option<serde_json::Value>) -> Result<(), WebRtcError> {
        self.worker.send(Command::AddRemoteCandidate { id: self.id, candidate }).map_err(|e| WebRtcError::Engine(e.to_string()))
    }

    pub async fn close(&self) {
        let _ = self.worker.send(Command::CloseBrowserLeg { id: self.id });
    }
}

impl Drop for BrowserLegHandle {
    fn drop(&mut self) {
        let _ = self.worker.send(Command::CloseBrowserLeg { id: self.id });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_calls_fill_the_first_worker_below_the_fill_load_then_the_least_loaded() {
        let fill = u32::from(DEFAULT_WORKER_FILL_PERCENT) * 10;
        assert_eq!(pick_worker([0, 0].into_iter(), fill), 0, "idle workers: the first");
        assert_eq!(pick_worker([fill - 1, 0].into_iter(), fill), 0, "the first still has room");
        assert_eq!(pick_worker([fill, 0].into_iter(), fill), 1, "full: the next");
        assert_eq!(pick_worker([fill + 100, fill + 50, fill + 150].into_iter(), fill), 1, "all full: the least loaded");
        assert_eq!(pick_worker(std::iter::empty(), fill), 0);
    }

    #[test]
    fn a_fill_of_zero_deals_every_call_to_the_least_loaded_worker() {
        assert_eq!(pick_worker([10, 5, 7].into_iter(), 0), 1);
        assert_eq!(pick_worker([0, 0].into_iter(), 0), 0, "ties: the first");
    }

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
        // Only the wildcard's answer depends on the peer, so only it needs the call's destination.
        assert_eq!(concrete.advertised_to_all(), Some(ip("127.0.0.1")));
        assert_eq!(public.advertised_to_all(), Some(ip("203.0.113.10")));
        assert_eq!(wildcard.advertised_to_all(), None);
        assert_eq!(v6.advertised_to_all(), None);
    }
}
