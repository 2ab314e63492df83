//! The tokio task that runs `SipCore`: it feeds transport events, resolutions and timers into the
//! core, and carries out what the core asks for (send bytes, resolve a peer, close a stream).
//! All SIP decisions live in the core; this file only does I/O.

use super::core::{CoreConfig, CoreEvent, CoreStatus, ResolvedPeer, Route, SipCore, Transmit};
use super::response::ResponseRoute;
use super::transaction::TimerConfig;
use super::transport::rate_limit::RateLimiter;
use super::transport::tls;
use super::transport::{self, ConnectionCommand, TransportEvent, TransportShared};
use super::{ConnectionId, TransportKind};
use crate::config::{Config, ListenTransport};
use anyhow::Context;

mod addresses;
mod ladder_takes;
use serde::Serialize;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

pub use super::transport::TransportView;

#[derive(Debug, Clone, Default, Serialize)]
pub struct SipStatus {
    #[serde(flatten)]
    pub core: CoreStatus,
    pub transport: TransportView,
    /// The ladders of calls in progress, and the messages that were not kept.
    pub ladder: super::ladder::LadderStatus,
}

/// Calls as the call layer receives them from the SIP side.
/// Where one call's events go. Unbounded so the endpoint never waits on a call and never drops
/// one of its events (a lost `Ended` would leave a zombie call): a call's events come only from
/// SIP messages of its own dialog that passed the trust gate and the rate limiter, so the queue
/// stays short unless the call's task has stopped reading, and then the call is gone and the
/// sink is dropped with it.
pub type CallEvents = mpsc::UnboundedSender<SipCallEvent>;

/// A call from SIP, and the receiver of the events that follow it.
pub struct IncomingSipCall {
    pub call: super::core::IncomingCall,
    pub events: mpsc::UnboundedReceiver<SipCallEvent>,
}

#[derive(Debug)]
pub enum SipCallEvent {
    Ended { id: super::core::SipCallId, reason: super::core::CallEndReason },
    Outbound(super::core::OutboundEvent),
    Dialog(super::core::DialogEvent),
}

impl SipCallEvent {
    pub fn call(&self) -> super::core::SipCallId {
        match self {
            Self::Ended { id, .. } => *id,
            Self::Outbound(event) => event.id(),
            Self::Dialog(event) => event.id(),
        }
    }
}

/// What other parts of the gateway ask of the SIP endpoint task.
enum SipCommand {
    Status(oneshot::Sender<SipStatus>),
    BindingsOf(String, oneshot::Sender<Vec<super::core::BindingView>>),
    CallRinging(super::core::SipCallId),
    CallAnswer { id: super::core::SipCallId, sdp: String, reply: oneshot::Sender<Result<(), String>> },
    CallReject { id: super::core::SipCallId, status: u16 },
    CallHangup(super::core::SipCallId),
    PlaceCall { profile: Option<String>, user: String, binding: Option<String>, caller: String, sdp: String, events: CallEvents, reply: oneshot::Sender<Result<(super::core::SipCallId, String), String>> },
    TakeLadder { call_id: String, settle: bool, reply: oneshot::Sender<Vec<super::ladder::LadderEntry>> },
    Destination { profile: Option<String>, user: String, reply: oneshot::Sender<Option<SocketAddr>> },
    OutboundHangup(super::core::SipCallId),
    Reanswer { id: super::core::SipCallId, answer: Result<String, u16> },
    InfoDtmf { id: super::core::SipCallId, digit: char, duration_ms: u32 },
    ReferProgress { id: super::core::SipCallId, status: u16 },
    Refer { id: super::core::SipCallId, target: String, reply: oneshot::Sender<Result<(), String>> },
    Reoffer { id: super::core::SipCallId, sdp: String, reply: oneshot::Sender<Result<(), String>> },
    RegisterUser { profile: String, user: String, password: String, reply: oneshot::Sender<Result<String, String>> },
    UnregisterUser(String),
}

/// The rest of the gateway's handle on the SIP endpoint task.
#[derive(Clone)]
pub struct StatusHandle {
    requests: mpsc::Sender<SipCommand>,
}

impl StatusHandle {
    /// A fresh status snapshot (the API never serves stale counters).
    pub async fn snapshot(&self) -> Option<SipStatus> {
        let (reply, answer) = oneshot::channel();
        self.requests.send(SipCommand::Status(reply)).await.ok()?;
        answer.await.ok()
    }

    /// The live bindings of `user` (any domain): what a call to `user` is routed by. Empty when
    /// the endpoint has stopped.
    pub async fn bindings_of(&self, user: &str) -> Vec<super::core::BindingView> {
        let (reply, answer) = oneshot::channel();
        if self.requests.send(SipCommand::BindingsOf(user.to_string(), reply)).await.is_err() {
            return Vec::new();
        }
        answer.await.unwrap_or_default()
    }

    /// Registers `user` to `profile`'s PBX with their own password; resolves with the
    /// registration key once the PBX accepted (or why it did not), within 10 s.
    pub async fn register_user(&self, profile: &str, user: &str, password: &str) -> Result<String, String> {
        let (reply, answer) = oneshot::channel();
        let command = SipCommand::RegisterUser { profile: profile.into(), user: user.into(), password: password.into(), reply };
        self.requests.send(command).await.map_err(|_| "the SIP endpoint is not running".to_string())?;
        match tokio::time::timeout(Duration::from_secs(10), answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err("the SIP endpoint stopped".into()),
            Err(_) => {
                // Nobody waits for this registration any more: stop it rather than let it live on.
                let _ = self.requests.send(SipCommand::UnregisterUser(format!("{profile}/{user}"))).await;
                Err("the PBX did not answer in time".into())
            }
        }
    }

    pub async fn unregister_user(&self, key: &str) {
        let _ = self.requests.send(SipCommand::UnregisterUser(key.to_string())).await;
    }

    pub async fn call_ringing(&self, id: super::core::SipCallId) {
        let _ = self.requests.send(SipCommand::CallRinging(id)).await;
    }

    pub async fn call_answer(&self, id: super::core::SipCallId, sdp: String) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        self.requests.send(SipCommand::CallAnswer { id, sdp, reply }).await.map_err(|_| "the SIP endpoint is not running".to_string())?;
        answer.await.map_err(|_| "the SIP endpoint stopped".to_string())?
    }

    pub async fn call_reject(&self, id: super::core::SipCallId, status: u16) {
        let _ = self.requests.send(SipCommand::CallReject { id, status }).await;
    }

    pub async fn call_hangup(&self, id: super::core::SipCallId) {
        let _ = self.requests.send(SipCommand::CallHangup(id)).await;
    }

    /// Places a call to `user` at the peer of `profile` with our SDP offer.
    /// Returns the call's id and its SIP Call-ID.
    /// Places a call whose events go to `events` from its first one on: the sink is registered
    /// in the same step that creates the call, so nothing can arrive before it.
    /// `binding` (a registered contact of `user`) sends it to that one device only.
    pub async fn place_call(&self, profile: Option<&str>, user: &str, binding: Option<&str>, caller: &str, sdp: String, events: CallEvents) -> Result<(super::core::SipCallId, String), String> {
        let (reply, answer) = oneshot::channel();
        let command = SipCommand::PlaceCall { profile: profile.map(str::to_string), user: user.into(), binding: binding.map(str::to_string), caller: caller.into(), sdp, events, reply };
        self.requests.send(command).await.map_err(|_| "the SIP endpoint is not running".to_string())?;
        answer.await.map_err(|_| "the SIP endpoint stopped".to_string())?
    }

    /// Where a call to `user` through `profile` would be sent, so its media can be routed (and
    /// its SDP address chosen) before the offer is written. `None` when not reachable yet.
    pub async fn call_destination(&self, profile: Option<&str>, user: &str) -> Option<SocketAddr> {
        let (reply, answer) = oneshot::channel();
        let command = SipCommand::Destination { profile: profile.map(str::to_string), user: user.into(), reply };
        self.requests.send(command).await.ok()?;
        answer.await.ok().flatten()
    }

    pub async fn outbound_hangup(&self, id: super::core::SipCallId) {
        let _ = self.requests.send(SipCommand::OutboundHangup(id)).await;
    }

    /// Answers the peer's new offer (`DialogEvent::Reoffer`) with our SDP, or refuses it.
    pub async fn call_reanswer(&self, id: super::core::SipCallId, answer: Result<String, u16>) {
        let _ = self.requests.send(SipCommand::Reanswer { id, answer }).await;
    }

    /// Blind transfer: REFER the peer to `target`; its answer comes as `DialogEvent::ReferAnswered`.
    pub async fn call_refer(&self, id: super::core::SipCallId, target: String) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        self.requests.send(SipCommand::Refer { id, target, reply }).await.map_err(|_| "the SIP endpoint is not running".to_string())?;
        answer.await.map_err(|_| "the SIP endpoint stopped".to_string())?
    }

    /// The SIP messages of a call (by SIP Call-ID) for its record; they are forgotten here. With
    /// `settle`, for a call we ended, the answer to our last message joins them first.
    pub async fn take_ladder(&self, call_id: &str, settle: bool) -> Vec<super::ladder::LadderEntry> {
        let (reply, answer) = oneshot::channel();
        if self.requests.send(SipCommand::TakeLadder { call_id: call_id.to_string(), settle, reply }).await.is_err() {
            return Vec::new();
        }
        answer.await.unwrap_or_default()
    }

    /// A digit as SIP INFO, for a peer without telephone-event.
    pub async fn call_info_dtmf(&self, id: super::core::SipCallId, digit: char, duration_ms: u32) {
        let _ = self.requests.send(SipCommand::InfoDtmf { id, digit, duration_ms }).await;
    }

    /// How the call toward the target of the peer's REFER goes (a NOTIFY to the peer).
    pub async fn call_refer_progress(&self, id: super::core::SipCallId, status: u16) {
        let _ = self.requests.send(SipCommand::ReferProgress { id, status }).await;
    }

    /// Sends our new offer (hold, resume) in an answered call; the answer comes as a `DialogEvent`.
    pub async fn call_reoffer(&self, id: super::core::SipCallId, sdp: String) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        self.requests.send(SipCommand::Reoffer { id, sdp, reply }).await.map_err(|_| "the SIP endpoint is not running".to_string())?;
        answer.await.map_err(|_| "the SIP endpoint stopped".to_string())?
    }
}

pub struct SipEndpoint {
    pub status: StatusHandle,
    /// Incoming calls for the call layer, each with the receiver of its own events.
    pub calls: mpsc::Receiver<IncomingSipCall>,
    /// The addresses actually bound (port 0 in the config becomes a real port here).
    pub bound: Vec<(ListenTransport, SocketAddr)>,
    /// Serves SIP WebSocket flows that arrive on the HTTP listener (`/sip`).
    pub websocket: transport::WebSocketEntry,
}

const QUEUE_DEPTH: usize = 10_000;

pub async fn start(config: &Config) -> anyhow::Result<SipEndpoint> {
    let (events_tx, events_rx) = mpsc::channel(QUEUE_DEPTH);
    let sip = &config.sip;
    let limiter = RateLimiter::new(sip.rate_limit_per_second, sip.rate_limit_burst, 100_000);
    let websocket = transport::WebSocketTimers { ping_interval: sip.websocket_ping_interval(), idle_timeout: sip.websocket_idle_timeout() };
    let shared = TransportShared::new(sip.max_message_bytes, websocket, limiter, events_tx);
    let mut udp_sockets: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut bound = Vec::new();
    let mut tls_acceptor = None;
    for listen in &sip.listen {
        let local = match listen.transport {
            ListenTransport::Udp => {
                let socket = transport::spawn_udp_listener(listen.address, shared.clone())
                    .with_context(|| format!("cannot bind SIP UDP {}", listen.address))?;
                let local = socket.local_addr()?;
                udp_sockets.insert(local, socket);
                local
            }
            ListenTransport::Tcp => transport::spawn_stream_listener(listen.address, None, shared.clone())
                .with_context(|| format!("cannot bind SIP TCP {}", listen.address))?,
            ListenTransport::Tls => {
                let acceptor = tls_acceptor.get_or_insert(tls::acceptor_for(config)?).clone();
                transport::spawn_stream_listener(listen.address, Some(acceptor), shared.clone())
                    .with_context(|| format!("cannot bind SIP TLS {}", listen.address))?
            }
            ListenTransport::Ws => transport::spawn_ws_listener(listen.address, None, shared.clone())
                .with_context(|| format!("cannot bind SIP WS {}", listen.address))?,
            ListenTransport::Wss => {
                let acceptor = tls_acceptor.get_or_insert(tls::acceptor_for(config)?).clone();
                transport::spawn_ws_listener(listen.address, Some(acceptor), shared.clone())
                    .with_context(|| format!("cannot bind SIP WSS {}", listen.address))?
            }
        };
        tracing::info!(transport = %listen.transport, address = %local, "SIP listening");
        bound.push((listen.transport, local));
    }
    let core_config = CoreConfig {
        timers: TimerConfig { t1: sip.t1(), t2: sip.t2(), t4: sip.t4() },
        product: sip.user_agent.clone(),
        nonce_lifetime: Duration::from_secs(sip.nonce_lifetime_secs),
    };
    let mut core = SipCore::new(core_config, config.profiles.clone(), Instant::now(), SystemTime::now());
    if let Some(secret) = &config.http.jwt_secret {
        core.accept_tokens(secret.0.as_bytes().to_vec());
    }
    let advertised_ip = sip.advertised_address.as_deref().and_then(|a| a.parse::<IpAddr>().ok());
    let (status_tx, status_rx) = mpsc::channel(64);
    let (calls_tx, calls_rx) = mpsc::channel(1_024);
    let websocket = transport::WebSocketEntry { shared: shared.clone() };
    let driver = Driver {
        core,
        shared,
        udp_sockets,
        bound: bound.clone(),
        advertised_ip,
        route_sources: Default::default(),
        connections: HashMap::new(),
        by_remote: HashMap::new(),
        send_failures: 0,
        pending_user_registrations: HashMap::new(),
        calls: calls_tx,
        sinks: HashMap::new(),
        ladder: super::ladder::Ladder::default(),
        ladder_takes: ladder_takes::LadderTakes::default(),
    };
    tokio::spawn(driver.run(events_rx, status_rx));
    Ok(SipEndpoint { status: StatusHandle { requests: status_tx }, calls: calls_rx, bound, websocket })
}

fn unix_ms() -> i64 {
    SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

struct Connection {
    commands: mpsc::Sender<ConnectionCommand>,
    transport: TransportKind,
    remote: SocketAddr,
}

struct Driver {
    core: SipCore,
    shared: Arc<TransportShared>,
    udp_sockets: HashMap<SocketAddr, Arc<UdpSocket>>,
    bound: Vec<(ListenTransport, SocketAddr)>,
    advertised_ip: Option<IpAddr>,
    /// Where packets to each peer leave from, for listeners bound to a wildcard.
    route_sources: crate::route_source::RouteSources,
    connections: HashMap<ConnectionId, Connection>,
    by_remote: HashMap<(TransportKind, SocketAddr), ConnectionId>,
    send_failures: u64,
    /// Browser logins waiting for the PBX's verdict, by registration key.
    pending_user_registrations: HashMap<String, oneshot::Sender<Result<String, String>>>,
    calls: mpsc::Sender<IncomingSipCall>,
    /// Every live call's event sink, registered when the call is created.
    sinks: HashMap<super::core::SipCallId, CallEvents>,
    /// The SIP messages of calls in progress, for their records.
    ladder: super::ladder::Ladder,
    ladder_takes: ladder_takes::LadderTakes,
}

type Resolution = (String, Result<ResolvedPeer, String>);

impl Driver {
    async fn run(mut self, mut events: mpsc::Receiver<TransportEvent>, mut commands: mpsc::Receiver<SipCommand>) {
        let (resolved_tx, mut resolved_rx) = mpsc::channel::<Resolution>(64);
        loop {
            self.flush(&resolved_tx);
            self.ladder_takes.answer_ready(&mut self.ladder, Instant::now());
            let deadline = self.core.poll_timeout().unwrap_or_else(|| Instant::now() + Duration::from_secs(60));
            let deadline = self.ladder_takes.next_deadline().map_or(deadline, |d| d.min(deadline));
            tokio::select! {
                event = events.recv() => match event {
                    Some(event) => self.handle_event(event),
                    None => break,
                },
                Some((profile, result)) = resolved_rx.recv() => self.core.handle_resolved(&profile, result, Instant::now()),
                _ = tokio::time::sleep_until(deadline.into()) => self.core.handle_timeout(Instant::now()),
                Some(command) = commands.recv() => self.handle_command(command),
            }
        }
    }

    fn handle_command(&mut self, command: SipCommand) {
        match command {
            SipCommand::Status(reply) => {
                let _ = reply.send(self.snapshot());
            }
            SipCommand::BindingsOf(user, reply) => {
                let _ = reply.send(self.core.bindings_of(&user, Instant::now()));
            }
            SipCommand::RegisterUser { profile, user, password, reply } => match self.core.register_user(&profile, &user, &password, Instant::now()) {
                Ok(key) => {
                    self.pending_user_registrations.insert(key, reply);
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            SipCommand::UnregisterUser(key) => self.core.unregister_user(&key, Instant::now()),
            SipCommand::CallRinging(id) => self.core.call_ringing(id, Instant::now()),
            SipCommand::CallAnswer { id, sdp, reply } => {
                let _ = reply.send(self.core.call_answer(id, &sdp, Instant::now()));
            }
            SipCommand::CallReject { id, status } => self.core.call_reject(id, status, Instant::now()),
            SipCommand::CallHangup(id) => self.core.call_hangup(id, Instant::now()),
            SipCommand::PlaceCall { profile, user, binding, caller, sdp, events, reply } => {
                let placed = self.core.place_call_to(profile.as_deref(), &user, binding.as_deref(), &caller, &sdp, Instant::now());
                let placed = placed.map(|id| (id, self.core.outbound_sip_call_id(id).unwrap_or_default()));
                if let Ok((id, sip_call_id)) = &placed {
                    // A call we place is ours to record from its first INVITE, which is not sent yet.
                    self.ladder.follow(sip_call_id);
                    self.sinks.retain(|_, sink| !sink.is_closed());
                    self.sinks.insert(*id, events);
                }
                let _ = reply.send(placed);
            }
            SipCommand::Destination { profile, user, reply } => {
                let _ = reply.send(self.core.call_destination(profile.as_deref(), &user, Instant::now()));
            }
            SipCommand::TakeLadder { call_id, settle, reply } => self.ladder_takes.take(&mut self.ladder, call_id, settle, reply, Instant::now()),
            SipCommand::OutboundHangup(id) => self.core.outbound_hangup(id, Instant::now()),
            SipCommand::Reanswer { id, answer } => self.core.call_reanswer(id, answer, Instant::now()),
            SipCommand::Refer { id, target, reply } => {
                let _ = reply.send(self.core.call_refer(id, &target, Instant::now()));
            }
            SipCommand::InfoDtmf { id, digit, duration_ms } => self.core.call_info_dtmf(id, digit, duration_ms, Instant::now()),
            SipCommand::ReferProgress { id, status } => self.core.call_refer_progress(id, status, Instant::now()),
            SipCommand::Reoffer { id, sdp, reply } => {
                let _ = reply.send(self.core.call_reoffer(id, &sdp, Instant::now()));
            }
        }
    }

    fn handle_event(&mut self, event: TransportEvent) {
        let now = Instant::now();
        match event {
            TransportEvent::Message { bytes, peer } => {
                let peer = self.as_seen_by(peer);
                self.handle_message(&bytes, peer, now);
            }
            TransportEvent::ConnectionOpened { peer, commands } => {
                if let Some(id) = peer.connection {
                    self.by_remote.insert((peer.transport, peer.remote), id);
                    self.connections.insert(id, Connection { commands, transport: peer.transport, remote: peer.remote });
                }
            }
            TransportEvent::ConnectionClosed { id } => {
                if let Some(connection) = self.connections.remove(&id) {
                    if self.by_remote.get(&(connection.transport, connection.remote)) == Some(&id) {
                        self.by_remote.remove(&(connection.transport, connection.remote));
                    }
                }
                self.core.connection_closed(id, now);
            }
            TransportEvent::ConnectFailed { branch_id, reason } => {
                self.send_failures += 1;
                self.core.handle_send_failure(branch_id, &reason, now);
            }
        }
    }

    /// One message into the core, and into a ladder if it belongs to a call that passed the trust
    /// gate. The gate is the core's, so the message is noted after the core has seen it; nothing
    /// the core answers is sent before the next flush, so the ladder's order is unchanged.
    fn handle_message(&mut self, bytes: &[u8], peer: super::Peer, now: Instant) {
        let remote = peer.remote.to_string();
        self.core.handle_inbound(bytes, peer, now);
        if let Some(call_id) = self.core.take_admitted() {
            self.ladder.follow(&call_id);
        }
        self.ladder.observe(bytes, false, &remote, unix_ms());
    }

    /// Hands an event to its call; a call that is gone has dropped its receiver, and its
    /// sink goes with this event.
    fn to_call(&mut self, event: SipCallEvent) {
        let id = event.call();
        if let Some(sink) = self.sinks.get(&id) {
            if sink.send(event).is_err() {
                self.sinks.remove(&id);
            }
        }
    }

    fn flush(&mut self, resolved_tx: &mpsc::Sender<Resolution>) {
        while let Some(transmit) = self.core.poll_transmit() {
            self.send(transmit);
        }
        while let Some(event) = self.core.poll_event() {
            match event {
                CoreEvent::Resolve { profile, host, port, transport } => self.resolve(profile, host, port, transport, resolved_tx.clone()),
                CoreEvent::CloseConnection(peer) => {
                    if let Some(connection) = peer.connection.and_then(|id| self.connections.get(&id)) {
                        let _ = connection.commands.try_send(ConnectionCommand::Close);
                    }
                }
                // Snapshots are taken on request, so there is nothing to push.
                CoreEvent::StatusChanged => {}
                CoreEvent::IncomingCall(call) => {
                    let id = call.id;
                    let sip_call_id = call.sip_call_id.clone();
                    let (sink, events) = mpsc::unbounded_channel();
                    // A new call is refused, never an event of a live one lost: the call layer
                    // never blocks us, and if it cannot keep up the caller hears 503.
                    if self.calls.try_send(IncomingSipCall { call, events }).is_err() {
                        self.core.call_reject(id, 503, Instant::now());
                        // No record will take this ladder.
                        self.ladder.take(&sip_call_id);
                    } else {
                        self.sinks.retain(|_, sink| !sink.is_closed());
                        self.sinks.insert(id, sink);
                    }
                }
                CoreEvent::CallEnded { id, reason } => {
                    if let Some(sink) = self.sinks.remove(&id) {
                        let _ = sink.send(SipCallEvent::Ended { id, reason });
                    }
                }
                CoreEvent::Outbound(event) => self.to_call(SipCallEvent::Outbound(event)),
                CoreEvent::Dialog(event) => self.to_call(SipCallEvent::Dialog(event)),
                CoreEvent::UserRegistration { key, result } => {
                    if let Some(reply) = self.pending_user_registrations.remove(&key) {
                        let _ = reply.send(result.map(|()| key));
                    }
                }
            }
        }
    }

    fn send(&mut self, transmit: Transmit) {
        let destination = match transmit.route {
            Route::Reply(ResponseRoute::Datagram { to, .. }) | Route::Request { to, .. } => to,
            Route::Reply(ResponseRoute::Connection(peer)) => peer.remote,
        };
        self.ladder.observe(&transmit.bytes, true, &destination.to_string(), unix_ms());
        let delivered = match transmit.route {
            Route::Reply(ResponseRoute::Datagram { from, to }) => match self.udp_socket_for(from) {
                Some(socket) => socket.try_send_to(&transmit.bytes, to).is_ok(),
                None => false,
            },
            Route::Reply(ResponseRoute::Connection(peer)) => peer
                .connection
                .and_then(|id| self.connections.get(&id))
                .is_some_and(|c| c.commands.try_send(ConnectionCommand::Send(transmit.bytes.clone())).is_ok()),
            Route::Request { transport: TransportKind::Udp, to, branch_id } => {
                let socket = self.udp_sockets.iter().find(|(local, _)| local.is_ipv4() == to.is_ipv4()).map(|(_, s)| s.clone());
                match socket {
                    Some(socket) => socket.try_send_to(&transmit.bytes, to).is_ok(),
                    None => {
                        self.core.handle_send_failure(branch_id, &format!("no UDP listener for {to}'s address family"), Instant::now());
                        true
                    }
                }
            }
            Route::Request { transport: TransportKind::Tcp, to, branch_id } => {
                match self.by_remote.get(&(TransportKind::Tcp, to)).and_then(|id| self.connections.get(id)) {
                    Some(connection) => connection.commands.try_send(ConnectionCommand::Send(transmit.bytes.clone())).is_ok(),
                    None => {
                        transport::connect_outbound(to, transmit.bytes.clone(), branch_id, self.shared.clone());
                        true
                    }
                }
            }
            // A browser cannot be dialled: only the flow it opened reaches it (RFC 7118 §5.3).
            Route::Request { transport: transport @ (TransportKind::Ws | TransportKind::Wss), to, branch_id } => {
                match self.by_remote.get(&(transport, to)).and_then(|id| self.connections.get(id)) {
                    Some(connection) => connection.commands.try_send(ConnectionCommand::Send(transmit.bytes.clone())).is_ok(),
                    None => {
                        self.core.handle_send_failure(branch_id, "the WebSocket client's connection is closed", Instant::now());
                        true
                    }
                }
            }
            Route::Request { transport: TransportKind::Tls, branch_id, .. } => {
                self.core.handle_send_failure(branch_id, "TLS toward peers is not supported yet", Instant::now());
                true
            }
        };
        if !delivered {
            // UDP is best effort and transactions retransmit; streams that vanished are logged.
            self.send_failures += 1;
            tracing::debug!(route = ?transmit.route, "could not send");
        }
    }

    /// The peer as the core must see it (`addresses::seen_by`), the route source looked up and
    /// remembered here.
    fn as_seen_by(&self, peer: super::Peer) -> super::Peer {
        addresses::seen_by(peer, self.advertised_ip, |remote| self.route_sources.toward(remote))
    }

    fn udp_socket_for(&self, local: SocketAddr) -> Option<&Arc<UdpSocket>> {
        addresses::listener_for(&self.udp_sockets, local)
    }

    fn resolve(&self, profile: String, host: String, port: u16, transport: TransportKind, reply: mpsc::Sender<Resolution>) {
        let advertised_ip = self.advertised_ip;
        let listeners = self.bound.clone();
        tokio::spawn(async move {
            let lookup = tokio::time::timeout(Duration::from_secs(5), tokio::net::lookup_host((host.as_str(), port))).await;
            let result = match lookup {
                Err(_) => Err(format!("DNS lookup of {host} timed out")),
                Ok(Err(e)) => Err(format!("cannot resolve {host}: {e}")),
                Ok(Ok(addresses)) => {
                    let addresses: Vec<SocketAddr> = addresses.collect();
                    addresses::pick_route(&addresses, &listeners, transport, advertised_ip, crate::route_source::lookup)
                        .ok_or_else(|| format!("{host} resolved to {addresses:?}, none reachable from our listeners"))
                }
            };
            let _ = reply.send((profile, result)).await;
        });
    }

    fn snapshot(&self) -> SipStatus {
        let status = SipStatus {
            core: self.core.status(Instant::now()),
            transport: self.shared.view(self.send_failures),
            ladder: self.ladder.status(),
        };
        status
    }
}
