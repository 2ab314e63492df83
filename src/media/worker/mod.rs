//! Media workers: a small fixed set of threads, each owning the sockets and the state of its
//! calls (SIP-side RTP/RTCP sockets, browser legs on one shared WebRTC port per address, and the
//! `MediaSession`s). A packet goes receive -> decrypt -> codec handler -> encrypt -> send in one
//! `&mut` call chain on one thread (`paths.rs`); signalling talks to a worker through commands
//! (a channel plus an epoll waker) and hears back through per-call event channels, both off the
//! packet path.

mod codec_batch;
mod datagrams;
pub(crate) mod demux;
mod load;
mod outbox;
mod paths;
pub mod scheduling;

use super::engine::{EngineError, RtpEndpoint};
use super::session::{LegConfig, LegCounters, LegQuality, MediaEvent, MediaSession, Side};
use crate::webrtc_leg::{BrowserCodec, BrowserMedia, LegEvent, WebRtcConfig, WebRtcError, WebRtcLeg};
use mio::net::UdpSocket;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use std::os::fd::AsRawFd;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

pub type LegId = u64;
pub type SessionId = u64;

/// Drops on the shared WebRTC ports, per cause (the metrics endpoint reads them).
#[derive(Debug, Default)]
pub struct WorkerCounters {
    /// Not STUN and from a 5-tuple no leg has used.
    pub unknown_flow: AtomicU64,
    /// STUN naming a ufrag no leg has.
    pub unknown_ufrag: AtomicU64,
    /// Refused by a leg's connection: bad DTLS, SRTP that fails authentication, bad STUN.
    pub rejected_by_leg: AtomicU64,
    /// Media packets the kernel would not take (a full socket buffer, an unreachable peer).
    pub send_refused: AtomicU64,
}

/// How a browser leg starts: answering the browser's offer, or offering to it.
pub enum BrowserLegStart {
    Answer { offer: String, forced_codec: Option<String> },
    Offer { codec: BrowserCodec },
}

/// A leg of a session as the worker holds it.
pub enum WorkerLeg {
    Udp(RtpEndpoint),
    Browser(LegId),
    Loopback,
}

pub enum SessionCommand {
    UpdateLeg(Side, LegConfig),
    /// The call was answered after early media: inactivity counts from now.
    ExpectMedia,
    SendDtmf(Side, String, u32),
    Quality(Side, oneshot::Sender<LegQuality>),
    Counters(Side, oneshot::Sender<LegCounters>),
    /// New SDES keys after a re-INVITE; `None` keeps that direction's context.
    RekeySrtp(Side, Option<super::srtp::SrtpContext>, Option<super::srtp::SrtpContext>),
    Stop,
}

pub enum Command {
    /// A browser leg built on the caller's thread (`WorkerHandle::open_browser_leg`), from now on
    /// the worker's.
    AdoptBrowserLeg { id: LegId, leg: Box<WebRtcLeg>, events: mpsc::Sender<LegEvent> },
    SetBrowserAnswer { id: LegId, sdp: String, reply: oneshot::Sender<Result<BrowserMedia, WebRtcError>> },
    AddRemoteCandidate { id: LegId, candidate: Option<serde_json::Value> },
    CloseBrowserLeg { id: LegId },
    StartSession { id: SessionId, session: Box<MediaSession>, legs: [WorkerLeg; 2], events: mpsc::Sender<MediaEvent> },
    Session { id: SessionId, command: SessionCommand },
}

/// A worker's mailbox. Cheap to clone; every send wakes the worker's epoll.
#[derive(Clone)]
pub struct WorkerHandle {
    commands: std_mpsc::Sender<Command>,
    waker: Arc<Waker>,
    pub counters: Arc<WorkerCounters>,
    /// The shared WebRTC sockets' addresses (the candidates every leg of this worker offers).
    pub webrtc_addresses: Arc<Vec<SocketAddr>>,
    /// Thousandths of a core the worker's thread used over its last sampling window.
    load: Arc<AtomicU32>,
    /// The DTLS certificate every leg of this worker presents (one per worker: a key pair per
    /// call would be setup time spent for nothing). Shared: every leg's handle holds a clone of
    /// this handle.
    certificate: Arc<crate::webrtc_leg::DtlsCertificate>,
}

impl WorkerHandle {
    pub fn send(&self, command: Command) -> Result<(), EngineError> {
        self.commands.send(command).map_err(|_| EngineError::Ended)?;
        self.waker.wake().map_err(|_| EngineError::Ended)
    }

    /// Thousandths of a core the worker used over its last window (`LOAD_WINDOW`).
    pub fn load_permille(&self) -> u32 {
        self.load.load(Ordering::Relaxed)
    }

    /// Builds a browser leg for this worker, answering the browser's offer or offering to it,
    /// and hands it over; returns our SDP and what it negotiated. Building a leg is pure work on
    /// the worker's addresses and certificate, so it runs on the caller's thread: a call's setup
    /// then has its SDP without waiting for the worker's turn and its wake-up back, a round trip
    /// across threads fewer on the way to the INVITE or the `incoming`. The worker's commands
    /// keep their order, so every later command about the leg finds it.
    pub fn open_browser_leg(&self, id: LegId, start: BrowserLegStart, config: &WebRtcConfig, ssrc: u32, events: mpsc::Sender<LegEvent>) -> Result<(String, BrowserMedia), WebRtcError> {
        let identity = crate::webrtc_leg::LegIdentity {
            ufrag: random_token(16),
            pwd: random_token(32),
            ssrc,
            local_addresses: self.webrtc_addresses.to_vec(),
            certificate: crate::webrtc_leg::DtlsCertificate::clone(&self.certificate),
        };
        let now = Instant::now();
        let (leg, sdp) = match start {
            BrowserLegStart::Answer { offer, forced_codec } => WebRtcLeg::answer(&offer, forced_codec.as_deref(), config, &identity, now)?,
            BrowserLegStart::Offer { codec } => WebRtcLeg::offer(codec, config, &identity, now)?,
        };
        let media = leg.media().clone();
        self.send(Command::AdoptBrowserLeg { id, leg: Box::new(leg), events }).map_err(|e| WebRtcError::Engine(e.to_string()))?;
        Ok((sdp, media))
    }
}

const WAKER: Token = Token(0);
const SHARED_SOCKET_BUFFER: usize = 8 << 20;
/// Tokens below this are shared WebRTC sockets (index + 1); above, session sockets.
const SESSION_TOKENS: usize = 1 << 16;

fn session_token(id: SessionId, side: Side, rtcp: bool) -> Token {
    let side_bit = usize::from(side == Side::B);
    Token(SESSION_TOKENS + ((id as usize) << 2 | side_bit << 1 | usize::from(rtcp)))
}

fn token_session(token: Token) -> (SessionId, Side, bool) {
    let raw = token.0 - SESSION_TOKENS;
    ((raw >> 2) as SessionId, if raw & 2 == 0 { Side::A } else { Side::B }, raw & 1 == 1)
}

/// A table looked up for every packet. Its keys are our own ids, or 5-tuples that only an
/// authenticated STUN check adds, so a seeded fast hash serves (SipHash, the default, showed in
/// the worker's profile for a few lookups a packet).
pub(super) type PacketTable<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

pub(super) struct SharedSocket {
    socket: UdpSocket,
    local: SocketAddr,
}

pub(super) struct BrowserSlot {
    leg: WebRtcLeg,
    events: mpsc::Sender<LegEvent>,
    session: Option<(SessionId, Side)>,
    flows: Vec<(usize, SocketAddr)>,
    deadline: Option<Instant>,
}

pub(super) enum SlotLeg {
    Udp(RtpEndpoint),
    Browser(LegId),
    Loopback,
    /// A browser leg that closed while its session ran: what is sent toward it is dropped.
    Closed,
}

pub(super) struct SessionSlot {
    session: Box<MediaSession>,
    legs: [SlotLeg; 2],
    events: mpsc::Sender<MediaEvent>,
    deadline: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum TimerKey {
    Session(SessionId),
    Leg(LegId),
}

pub(super) struct Worker {
    poll: Poll,
    commands: std_mpsc::Receiver<Command>,
    started: Instant,
    shared: Vec<SharedSocket>,
    /// Boxed: a slot holds the leg's ICE agent, DTLS endpoint and SRTP state (KiBs), and a
    /// table of slots inline would hold up to twice that per leg in empty buckets and move it
    /// all on every growth.
    legs: PacketTable<LegId, Box<BrowserSlot>>,
    ufrags: HashMap<String, LegId>,
    flows: PacketTable<(usize, SocketAddr), LegId>,
    sessions: PacketTable<SessionId, SessionSlot>,
    timers: BinaryHeap<std::cmp::Reverse<(Instant, TimerKey)>>,
    counters: Arc<WorkerCounters>,
    buffer: Vec<u8>,
    /// A shared socket's read batch; each datagram is handled in `buffer`, swapped in.
    batch: [Vec<u8>; datagrams::MAX_BATCH],
    /// Sockets left readable after a full batch: edge-triggered epoll will not report them again.
    pending_reads: Vec<usize>,
    pending_sessions: Vec<(SessionId, Side, bool)>,
    load: load::LoadMeter,
    /// The turn's media, sent when the turn ends.
    outbox: outbox::Outbox,
    /// Transcoded RTP waiting for the codec tick, and the buffer it is coded from.
    codec_batch: codec_batch::CodecBatch,
    coding: Vec<codec_batch::HeldPacket>,
}

/// Binds the shared WebRTC sockets and starts the worker thread, scheduled as `settings` say
/// (scheduling.rs).
pub fn spawn(index: usize, webrtc_binds: &[SocketAddr], started: Instant, settings: &super::engine::WorkerSettings) -> Result<WorkerHandle, EngineError> {
    let poll = Poll::new().map_err(|source| EngineError::Bind { port: 0, source })?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER).map_err(|source| EngineError::Bind { port: 0, source })?);
    let mut shared = Vec::new();
    for (i, bind) in webrtc_binds.iter().enumerate() {
        let std_socket = std::net::UdpSocket::bind(bind).map_err(|source| EngineError::Bind { port: bind.port(), source })?;
        std_socket.set_nonblocking(true).map_err(|source| EngineError::Bind { port: bind.port(), source })?;
        // Every browser call of the worker arrives on this one socket: a default-sized buffer
        // (about 200 packets) overflows whenever the thread is descheduled for a few ms. The
        // kernel caps the request at net.core.rmem_max / wmem_max.
        let sized = socket2::SockRef::from(&std_socket);
        let _ = sized.set_recv_buffer_size(SHARED_SOCKET_BUFFER);
        let _ = sized.set_send_buffer_size(SHARED_SOCKET_BUFFER);
        let local = std_socket.local_addr().map_err(|source| EngineError::Bind { port: bind.port(), source })?;
        let mut socket = UdpSocket::from_std(std_socket);
        poll.registry().register(&mut socket, Token(i + 1), Interest::READABLE).map_err(|source| EngineError::Bind { port: bind.port(), source })?;
        shared.push(SharedSocket { socket, local });
    }
    let (commands_tx, commands) = std_mpsc::channel();
    let counters = Arc::new(WorkerCounters::default());
    let webrtc_addresses = Arc::new(shared.iter().map(|s| s.local).collect());
    let load = Arc::new(AtomicU32::new(0));
    let certificate = Arc::new(crate::webrtc_leg::DtlsCertificate::generate().map_err(EngineError::Certificate)?);
    let worker = Worker {
        poll,
        commands,
        started,
        shared,
        legs: PacketTable::default(),
        ufrags: HashMap::new(),
        flows: PacketTable::default(),
        sessions: PacketTable::default(),
        timers: BinaryHeap::new(),
        counters: Arc::clone(&counters),
        buffer: vec![0; 2_048],
        batch: std::array::from_fn(|_| vec![0; 2_048]),
        pending_reads: Vec::new(),
        pending_sessions: Vec::new(),
        load: load::LoadMeter::new(Arc::clone(&load)),
        outbox: outbox::Outbox::new(),
        codec_batch: codec_batch::CodecBatch::new(settings.codec_batch, started),
        coding: Vec::new(),
    };
    let settings = settings.clone();
    std::thread::Builder::new()
        .name(format!("media-{index}"))
        .spawn(move || {
            scheduling::apply(index, &settings);
            let mut worker = worker;
            // Its CPU time is counted from here, on its own thread.
            worker.load.restart(Instant::now());
            worker.run()
        })
        .map_err(|source| EngineError::Bind { port: 0, source })?;
    Ok(WorkerHandle { commands: commands_tx, waker, counters, webrtc_addresses, load, certificate })
}

impl Worker {
    fn run(mut self) {
        let mut events = Events::with_capacity(256);
        loop {
            let busy = !self.pending_reads.is_empty() || !self.pending_sessions.is_empty();
            let next_timer = self.timers.peek().map(|std::cmp::Reverse((at, _))| *at);
            let wake_at = next_timer.into_iter().chain(self.load.deadline()).chain(self.codec_batch.due_at()).min();
            let timeout = match wake_at {
                _ if busy => Duration::ZERO,
                Some(at) => at.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(60),
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    tracing::error!(error = %e, "media worker cannot poll; stopping");
                    return;
                }
            }
            for event in events.iter() {
                match event.token() {
                    WAKER => {
                        if !self.drain_commands() {
                            return;
                        }
                    }
                    Token(t) if t < SESSION_TOKENS => self.read_shared(t - 1),
                    token => {
                        let (id, side, rtcp) = token_session(token);
                        self.read_session(id, side, rtcp);
                    }
                }
            }
            for index in std::mem::take(&mut self.pending_reads) {
                self.read_shared(index);
            }
            for (id, side, rtcp) in std::mem::take(&mut self.pending_sessions) {
                self.read_session(id, side, rtcp);
            }
            let now = Instant::now();
            self.code_held(now);
            self.run_timers(now);
            self.flush_outbox();
            self.load.sample(now);
        }
    }

    /// Sends the turn's media now, and counts what the kernel refused.
    pub(super) fn flush_outbox(&mut self) {
        if self.outbox.is_empty() {
            return;
        }
        self.outbox.flush();
        let refused = std::mem::take(&mut self.outbox.refused);
        if refused > 0 {
            self.counters.send_refused.fetch_add(refused, Ordering::Relaxed);
        }
    }

    /// Handles every queued command; false once the engine is gone.
    fn drain_commands(&mut self) -> bool {
        loop {
            match self.commands.try_recv() {
                Ok(command) => self.handle_command(command),
                Err(std_mpsc::TryRecvError::Empty) => return true,
                Err(std_mpsc::TryRecvError::Disconnected) => return false,
            }
        }
    }

    fn handle_command(&mut self, command: Command) {
        let now = Instant::now();
        match command {
            Command::AdoptBrowserLeg { id, leg, events } => {
                self.ufrags.insert(leg.ufrag().to_string(), id);
                self.legs.insert(id, Box::new(BrowserSlot { leg: *leg, events, session: None, flows: Vec::new(), deadline: None }));
                self.after_leg(id);
            }
            Command::SetBrowserAnswer { id, sdp, reply } => {
                let result = match self.legs.get_mut(&id) {
                    Some(slot) => slot.leg.set_answer(&sdp, now),
                    None => Err(WebRtcError::NotConnected),
                };
                let _ = reply.send(result);
                self.after_leg(id);
            }
            Command::AddRemoteCandidate { id, candidate } => {
                if let Some(slot) = self.legs.get_mut(&id) {
                    if let Err(e) = slot.leg.add_remote_candidate(candidate) {
                        tracing::debug!(error = %e, "browser candidate refused");
                    }
                }
                self.after_leg(id);
            }
            Command::CloseBrowserLeg { id } => self.close_browser_leg(id),
            Command::StartSession { id, session, legs, events } => self.start_session(id, session, legs, events, now),
            Command::Session { id, command } => self.session_command(id, command, now),
        }
    }

    fn close_browser_leg(&mut self, id: LegId) {
        let Some(mut slot) = self.legs.remove(&id) else { return };
        tracing::debug!(leg = id, "browser leg closed");
        slot.leg.close(Instant::now());
        paths::flush_leg(&mut slot, id, &self.shared, &mut self.flows);
        self.ufrags.remove(slot.leg.ufrag());
        for flow in slot.flows {
            self.flows.remove(&flow);
        }
        if let Some((session, side)) = slot.session {
            if let Some(session) = self.sessions.get_mut(&session) {
                // The session keeps running toward the other leg; this side now goes nowhere.
                session.legs[side.index()] = SlotLeg::Closed;
            }
        }
    }

    fn start_session(&mut self, id: SessionId, session: Box<MediaSession>, legs: [WorkerLeg; 2], events: mpsc::Sender<MediaEvent>, now: Instant) {
        let mut slot_legs = Vec::with_capacity(2);
        for (side, leg) in [Side::A, Side::B].into_iter().zip(legs) {
            let slot_leg = match leg {
                WorkerLeg::Udp(endpoint) => self.register_endpoint(id, side, endpoint),
                WorkerLeg::Browser(leg) => {
                    if let Some(browser) = self.legs.get_mut(&leg) {
                        browser.session = Some((id, side));
                    }
                    SlotLeg::Browser(leg)
                }
                WorkerLeg::Loopback => SlotLeg::Loopback,
            };
            slot_legs.push(slot_leg);
        }
        let (Some(b), Some(a)) = (slot_legs.pop(), slot_legs.pop()) else { return };
        self.sessions.insert(id, SessionSlot { session, legs: [a, b], events, deadline: None });
        self.drive_session(id, now);
    }

    fn register_endpoint(&mut self, id: SessionId, side: Side, endpoint: RtpEndpoint) -> SlotLeg {
        let registry = self.poll.registry();
        let (rtp, rtcp) = (endpoint.rtp.as_raw_fd(), endpoint.rtcp.as_raw_fd());
        let registered = registry
            .register(&mut SourceFd(&rtp), session_token(id, side, false), Interest::READABLE)
            .and_then(|()| registry.register(&mut SourceFd(&rtcp), session_token(id, side, true), Interest::READABLE));
        if let Err(e) = registered {
            tracing::error!(error = %e, port = endpoint.port, "cannot watch an RTP socket");
        }
        SlotLeg::Udp(endpoint)
    }

    fn session_command(&mut self, id: SessionId, command: SessionCommand, now: Instant) {
        let elapsed = now.saturating_duration_since(self.started);
        let Some(slot) = self.sessions.get_mut(&id) else { return };
        match command {
            SessionCommand::UpdateLeg(side, config) => slot.session.update_leg(side, config, elapsed),
            SessionCommand::ExpectMedia => slot.session.expect_media(elapsed),
            SessionCommand::RekeySrtp(side, outbound, inbound) => slot.session.rekey_srtp(side, outbound, inbound),
            SessionCommand::Counters(side, reply) => {
                let _ = reply.send(slot.session.counters(side));
            }
            SessionCommand::Quality(side, reply) => {
                let _ = reply.send(slot.session.quality(side));
            }
            SessionCommand::SendDtmf(side, digits, duration) => {
                if let Err(e) = slot.session.send_dtmf(side, &digits, duration, elapsed) {
                    tracing::info!(error = %e, "cannot play DTMF");
                }
            }
            SessionCommand::Stop => return self.stop_session(id),
        }
        self.drive_session(id, now);
    }

    fn stop_session(&mut self, id: SessionId) {
        // Queued packets name the session's sockets by descriptor: they leave before it closes.
        self.flush_outbox();
        let Some(slot) = self.sessions.remove(&id) else { return };
        for leg in slot.legs {
            match leg {
                // Dropping the endpoint closes its sockets and gives its port back.
                SlotLeg::Udp(endpoint) => {
                    let _ = self.poll.registry().deregister(&mut SourceFd(&endpoint.rtp.as_raw_fd()));
                    let _ = self.poll.registry().deregister(&mut SourceFd(&endpoint.rtcp.as_raw_fd()));
                }
                SlotLeg::Browser(leg) => {
                    if let Some(browser) = self.legs.get_mut(&leg) {
                        browser.session = None;
                    }
                }
                SlotLeg::Loopback | SlotLeg::Closed => {}
            }
        }
    }
}

/// ICE credentials: RFC 8445 §5.3 wants at least 24 bits (ufrag) and 128 bits (pwd) of
/// randomness from the ICE character set.
fn random_token(len: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut rng = rand::thread_rng();
    (0..len).map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())])).collect()
}

