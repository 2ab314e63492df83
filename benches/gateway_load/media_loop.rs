//! The load tool's media plane: a few threads (one by default), each an epoll loop that owns the
//! sockets and state of its streams, stand-in browsers and trunk RTP endpoints alike. A packet is
//! stamped, written and sent, or received and counted, in one pass with no task, channel or lock
//! on the way, so the tool stays far cheaper than the gateway it loads and its figures are the
//! gateway's. Call tasks (signalling, in tokio) talk to a loop through commands and hear back
//! through per-stream channels.

use super::stream::{BrowserEvent, Endpoint, Stream, StreamPlan, Tally};
use mio::{Events, Interest, Poll, Token, Waker};
use serde_json::Value;
use sipbridge::webrtc_leg::{BrowserCodec, DtlsCertificate, LegEvent, LegIdentity, WebRtcConfig, WebRtcLeg};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// How a stand-in browser starts: offering a call, or answering the gateway's offer.
pub enum BrowserStart {
    Offer { codec: BrowserCodec },
    Answer { offer: String, codec: String },
}

/// A stand-in browser as its call task holds it.
pub struct BrowserHandle {
    handle: LoopHandle,
    id: usize,
    /// Our offer or answer.
    pub sdp: String,
    /// Our host candidates, to trickle.
    pub candidates: Vec<Option<Value>>,
    pub events: mpsc::UnboundedReceiver<BrowserEvent>,
    /// The stream's tally, at its `stop` plus the drain.
    pub done: oneshot::Receiver<Tally>,
}

impl BrowserHandle {
    pub async fn set_answer(&self, sdp: &str) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        self.handle.send(Command::SetAnswer { id: self.id, sdp: sdp.to_string(), reply })?;
        answer.await.map_err(|_| "media loop gone".to_string())?
    }

    pub fn add_remote_candidate(&self, candidate: Option<Value>) {
        let _ = self.handle.send(Command::AddCandidate { id: self.id, candidate });
    }
}

type Opened = (String, Vec<Option<Value>>);

enum Command {
    OpenBrowser { id: usize, start: BrowserStart, plan: StreamPlan, events: mpsc::UnboundedSender<BrowserEvent>, done: oneshot::Sender<Tally>, reply: oneshot::Sender<Result<Opened, String>> },
    SetAnswer { id: usize, sdp: String, reply: oneshot::Sender<Result<(), String>> },
    AddCandidate { id: usize, candidate: Option<Value> },
    StartRtp { id: usize, socket: std::net::UdpSocket, remote: SocketAddr, plan: StreamPlan, done: oneshot::Sender<Tally> },
    Shutdown,
}

#[derive(Clone)]
struct LoopHandle {
    commands: std_mpsc::Sender<Command>,
    waker: Arc<Waker>,
}

impl LoopHandle {
    fn send(&self, command: Command) -> Result<(), String> {
        self.commands.send(command).map_err(|_| "media loop gone".to_string())?;
        self.waker.wake().map_err(|e| format!("media loop waker: {e}"))
    }
}

/// The loops of one scenario; streams are spread over them in turn. Dropping it stops them.
pub struct MediaLoops {
    loops: Vec<LoopHandle>,
    /// While set, no stream sends (`pause`).
    paused: Arc<AtomicBool>,
    next: AtomicUsize,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

const WAKER: Token = Token(usize::MAX);

impl MediaLoops {
    /// `threads` loops (`LOAD_TOOL_THREADS`, default 1).
    pub fn start(threads: usize) -> std::io::Result<MediaLoops> {
        let certificate = DtlsCertificate::generate().map_err(std::io::Error::other)?;
        let mut loops = Vec::new();
        let mut handles = Vec::new();
        let paused = Arc::new(AtomicBool::new(false));
        for index in 0..threads.max(1) {
            let poll = Poll::new()?;
            let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
            let (commands_tx, commands) = std_mpsc::channel();
            let media_loop = MediaLoop { poll, commands, streams: HashMap::new(), timers: BinaryHeap::new(), certificate: certificate.clone(), buffer: vec![0; 2_048], plain: Vec::with_capacity(2_048), paused: Arc::clone(&paused) };
            let cpu = load_tool_cpu();
            handles.push(
                std::thread::Builder::new()
                    .name(format!("load-media-{index}"))
                    .spawn(move || {
                        if let Some(cpu) = cpu {
                            pin_media_loop(cpu);
                        }
                        media_loop.run()
                    })?,
            );
            loops.push(LoopHandle { commands: commands_tx, waker });
        }
        Ok(MediaLoops { loops, paused, next: AtomicUsize::new(1), threads: Mutex::new(handles) })
    }

    /// Stops every stream's sending (`true`) until called again with `false`; the calls stay up
    /// and receivers go on counting. A paused sender skips its packets as a phone that stops
    /// sending does (`Source::skip_due`), so nothing counts as lost.
    pub fn pause(&self, paused: bool) {
        self.paused.store(paused, Ordering::Relaxed);
    }

    pub fn threads_from_env() -> usize {
        std::env::var("LOAD_TOOL_THREADS").ok().and_then(|n| n.parse().ok()).unwrap_or(1)
    }

    /// A fresh stream id and the loop it lives on.
    fn place(&self) -> (usize, LoopHandle) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        (id, self.loops[id % self.loops.len()].clone())
    }

    /// A stand-in browser on its own loopback socket.
    pub async fn open_browser(&self, start: BrowserStart, plan: StreamPlan) -> Result<BrowserHandle, String> {
        let (id, handle) = self.place();
        let (events_tx, events) = mpsc::unbounded_channel();
        let (done_tx, done) = oneshot::channel();
        let (reply, opened) = oneshot::channel();
        handle.send(Command::OpenBrowser { id, start, plan, events: events_tx, done: done_tx, reply })?;
        let (sdp, candidates) = opened.await.map_err(|_| "media loop gone".to_string())??;
        Ok(BrowserHandle { handle, id, sdp, candidates, events, done })
    }

    /// A trunk endpoint: sends to `remote` from now, counts what reaches `socket`.
    pub fn start_rtp(&self, socket: std::net::UdpSocket, remote: SocketAddr, plan: StreamPlan) -> Result<oneshot::Receiver<Tally>, String> {
        let (id, handle) = self.place();
        let (done_tx, done) = oneshot::channel();
        handle.send(Command::StartRtp { id, socket, remote, plan, done: done_tx })?;
        Ok(done)
    }
}

impl Drop for MediaLoops {
    fn drop(&mut self) {
        for handle in &self.loops {
            let _ = handle.send(Command::Shutdown);
        }
        for thread in self.threads.lock().map(|mut t| std::mem::take(&mut *t)).unwrap_or_default() {
            let _ = thread.join();
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Send,
    Leg,
    Finish,
}

struct MediaLoop {
    poll: Poll,
    commands: std_mpsc::Receiver<Command>,
    streams: HashMap<usize, Stream>,
    timers: BinaryHeap<Reverse<(Instant, usize, Timer)>>,
    certificate: DtlsCertificate,
    buffer: Vec<u8>,
    plain: Vec<u8>,
    paused: Arc<AtomicBool>,
}

fn ice_token(len: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut rng = rand::thread_rng();
    (0..len).map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())])).collect()
}

impl MediaLoop {
    fn run(mut self) {
        let mut events = Events::with_capacity(256);
        loop {
            let timeout = self.timers.peek().map_or(Duration::from_secs(60), |Reverse((at, ..))| at.saturating_duration_since(Instant::now()));
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    eprintln!("load tool media loop cannot poll: {e}");
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
                    Token(id) => {
                        if let Some(stream) = self.streams.get_mut(&id) {
                            stream.read(&mut self.buffer, &mut self.plain);
                            self.schedule(id);
                        }
                    }
                }
            }
            self.run_timers(Instant::now());
        }
    }

    /// Handles every queued command; false on shutdown.
    fn drain_commands(&mut self) -> bool {
        loop {
            let command = match self.commands.try_recv() {
                Ok(command) => command,
                Err(std_mpsc::TryRecvError::Empty) => return true,
                Err(std_mpsc::TryRecvError::Disconnected) => return false,
            };
            let now = Instant::now();
            let id = match command {
                Command::OpenBrowser { id, start, plan, events, done, reply } => {
                    let _ = reply.send(self.open_browser(id, start, plan, events, done, now));
                    id
                }
                Command::SetAnswer { id, sdp, reply } => {
                    let result = match self.streams.get_mut(&id).map(|s| &mut s.endpoint) {
                        Some(Endpoint::Browser { leg, .. }) => leg.set_answer(&sdp, now).map(|_| ()).map_err(|e| e.to_string()),
                        _ => Err("no such browser".to_string()),
                    };
                    let _ = reply.send(result);
                    id
                }
                Command::AddCandidate { id, candidate } => {
                    if let Some(Endpoint::Browser { leg, .. }) = self.streams.get_mut(&id).map(|s| &mut s.endpoint) {
                        let _ = leg.add_remote_candidate(candidate);
                    }
                    id
                }
                Command::StartRtp { id, socket, remote, plan, done } => {
                    if let Err(e) = self.start_rtp(id, socket, remote, plan, done, now) {
                        eprintln!("load tool: trunk RTP endpoint: {e}");
                    }
                    id
                }
                Command::Shutdown => return false,
            };
            if let Some(stream) = self.streams.get_mut(&id) {
                stream.flush(now);
            }
            self.schedule(id);
        }
    }

    /// Re-arms a stream's send clock and leg timer when they moved. Stale heap entries are
    /// skipped when they come up.
    fn schedule(&mut self, id: usize) {
        let Some(stream) = self.streams.get_mut(&id) else { return };
        if let Some(at) = stream.new_leg_deadline() {
            self.timers.push(Reverse((at, id, Timer::Leg)));
        }
        if let Some(at) = stream.source.next {
            if stream.scheduled_send != Some(at) {
                stream.scheduled_send = Some(at);
                self.timers.push(Reverse((at, id, Timer::Send)));
            }
        }
    }

    /// Fires every timer that is due.
    fn run_timers(&mut self, now: Instant) {
        // Bounded: a state machine that keeps asking for a time already past must not spin here.
        for _ in 0..65_536 {
            let Some(&Reverse((at, id, timer))) = self.timers.peek() else { break };
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(stream) = self.streams.get_mut(&id) else { continue };
            match timer {
                Timer::Send if stream.scheduled_send == Some(at) => {
                    stream.scheduled_send = None;
                    stream.send_due(&mut self.buffer, &mut self.plain, self.paused.load(Ordering::Relaxed));
                }
                Timer::Leg if stream.leg_deadline() == Some(at) => stream.leg_timeout(now),
                Timer::Finish => {
                    if let Some(mut stream) = self.streams.remove(&id) {
                        let _ = self.poll.registry().deregister(&mut stream.socket);
                        stream.finish();
                    }
                    continue;
                }
                Timer::Send | Timer::Leg => continue,
            }
            self.schedule(id);
        }
    }

    fn open_browser(&mut self, id: usize, start: BrowserStart, plan: StreamPlan, events: mpsc::UnboundedSender<BrowserEvent>, done: oneshot::Sender<Tally>, now: Instant) -> Result<Opened, String> {
        let socket = mio::net::UdpSocket::bind("127.0.0.1:0".parse().map_err(|_| "address")?).map_err(|e| e.to_string())?;
        let identity = LegIdentity { ufrag: ice_token(16), pwd: ice_token(32), ssrc: rand::random(), local_addresses: vec![socket.local_addr().map_err(|e| e.to_string())?], certificate: self.certificate.clone() };
        let config = WebRtcConfig { public_ip: None, lite: false, failed_timeout: Duration::from_secs(15) };
        let (mut leg, sdp) = match start {
            BrowserStart::Offer { codec } => WebRtcLeg::offer(codec, &config, &identity, now),
            BrowserStart::Answer { offer, codec } => WebRtcLeg::answer(&offer, Some(&codec), &config, &identity, now),
        }
        .map_err(|e| e.to_string())?;
        let mut candidates = Vec::new();
        while let Some(event) = leg.poll_event() {
            if let LegEvent::LocalCandidate(candidate) = event {
                candidates.push(candidate);
            }
        }
        let endpoint = Endpoint::Browser { leg: Box::new(leg), events, deadline: None };
        self.add(id, socket, endpoint, plan, done).map_err(|e| e.to_string())?;
        Ok((sdp, candidates))
    }

    fn start_rtp(&mut self, id: usize, socket: std::net::UdpSocket, remote: SocketAddr, plan: StreamPlan, done: oneshot::Sender<Tally>, now: Instant) -> std::io::Result<()> {
        socket.set_nonblocking(true)?;
        self.add(id, mio::net::UdpSocket::from_std(socket), Endpoint::Rtp { remote }, plan, done)?;
        if let Some(stream) = self.streams.get_mut(&id) {
            stream.start_now(now);
            // Whatever arrived before the stream was handed over is read now: edge-triggered
            // readiness already happened.
            stream.read(&mut self.buffer, &mut self.plain);
        }
        self.schedule(id);
        Ok(())
    }

    fn add(&mut self, id: usize, mut socket: mio::net::UdpSocket, endpoint: Endpoint, plan: StreamPlan, done: oneshot::Sender<Tally>) -> std::io::Result<()> {
        self.poll.registry().register(&mut socket, Token(id), Interest::READABLE)?;
        let stream = Stream::new(socket, endpoint, plan, done)?;
        self.timers.push(Reverse((stream.finish_at, id, Timer::Finish)));
        self.streams.insert(id, stream);
        Ok(())
    }
}

/// The CPU the tool's media loops run on: `LOAD_PIN=N`, `none` to let the scheduler place them,
/// by default the last one. The tool stands for the network, and on a real host the network's
/// work (the NIC's interrupts) sits on fixed CPUs; a thread the scheduler moves instead is pulled
/// onto each worker it sends to and makes the two queue for one core (ARCHITECTURE.md).
pub fn load_tool_cpu() -> Option<usize> {
    match std::env::var("LOAD_PIN") {
        Ok(value) if value == "none" => None,
        Ok(value) => value.parse().ok(),
        Err(_) => allowed_cpus().last().copied(),
    }
}

/// The CPUs this process may run on (taskset, a cgroup cpuset), in order: CPU numbers, which a
/// count of them (`available_parallelism`) is not.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: an all-zero cpu_set_t is the empty set, pid 0 is the calling thread, and `set` has
    // the size passed. Called from a pinned thread (a media loop, a floor's thread) this gives
    // that one CPU: only the main thread and the tests' threads, which nothing pins, ask.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } != 0 {
        return Vec::new();
    }
    // SAFETY: every index is within the set's size.
    (0..8 * std::mem::size_of::<libc::cpu_set_t>()).filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) }).collect()
}

/// Whether the media loops took the CPU `load_tool_cpu` names, for the report.
pub static PINNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The CPUs the load pins the gateway's media workers to, one each: `LOAD_CPUS` (a
/// comma-separated list, or `none`), by default every allowed CPU but the load tool's. The tool
/// stands for the network and the peers, which a deployed gateway does not share its cores with.
/// A worker count set alone (`LOAD_WORKERS`) leaves the workers unpinned.
pub fn gateway_worker_cpus() -> Vec<usize> {
    match std::env::var("LOAD_CPUS") {
        Ok(value) if value == "none" => Vec::new(),
        // A usage error stops the run: a list read leniently would measure another placement.
        Ok(value) => value.split(',').map(|cpu| cpu.trim().parse().unwrap_or_else(|_| panic!("LOAD_CPUS={value:?}: `{cpu}` is not a CPU number (a comma-separated list, or `none`)"))).collect(),
        Err(_) if std::env::var_os("LOAD_WORKERS").is_some() => Vec::new(),
        Err(_) => {
            let tool = load_tool_cpu();
            allowed_cpus().into_iter().filter(|cpu| Some(*cpu) != tool).collect()
        }
    }
}

/// Keeps the media loop's thread on `cpu`, and notes whether it could (`PINNED`).
fn pin_media_loop(cpu: usize) {
    match sipbridge::media::worker::scheduling::pin_current_thread(cpu) {
        Ok(()) => PINNED.store(true, Ordering::Relaxed),
        Err(e) => eprintln!("load tool: cannot pin its media loop to CPU {cpu}: {e}"),
    }
}
