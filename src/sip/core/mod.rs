//! `SipCore`: the sans-IO heart of the SIP side. It owns every transaction, the registrar and the
//! upstream registrations, and is driven like quinn-proto: feed it bytes (`handle_inbound`) and
//! time (`handle_timeout`), then drain `poll_transmit`, `poll_event` and `poll_timeout`.
//! It never reads a clock and never touches a socket, so tests run a 32 s timer in microseconds.

mod calls;
mod in_dialog;
mod log_throttle;
mod outbound;
mod refer;
mod reliable;
mod routing;
mod sending;
mod status;
mod uas;
mod upstream;

pub use calls::{CallEndReason, IncomingCall, SipCallId};
pub use in_dialog::{parse_info_dtmf, DialogEvent};
pub use outbound::OutboundEvent;
pub use refer::{refer_target, ReferError};
pub use status::{BindingView, CoreStatus, SipCounters, UpstreamView};
pub use uas::CallerIdentity;

use super::auth::{Algorithm, DigestServer};
use super::message::{self, Inbound, ParsedRequest, ParsedResponse};
use super::registrar::{Registrar, RegistrarPolicy};
use super::response::{self, ResponseRoute};
use super::transaction::{
    ClientInvite, ClientNonInvite, Output, Reliability, ServerInvite, ServerNonInvite, TimerConfig, TransactionKey, Verdict,
};
use super::{Peer, TransportKind};
use crate::config::{Profile, ProfileKind};
use bytes::Bytes;
use rsipstack::sip::{Header, Headers};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};
use upstream::Upstream;

#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub timers: TimerConfig,
    /// Sent in Server and User-Agent headers.
    pub product: String,
    pub nonce_lifetime: Duration,
}

/// Bytes to put on the wire and how to get them there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub route: Route,
    pub bytes: Bytes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// A response or retransmission toward where a request came from.
    Reply(ResponseRoute),
    /// A request the gateway originates toward an upstream peer. For TCP/TLS the driver reuses or
    /// opens a connection; a failure comes back through `handle_send_failure` with this branch.
    Request { transport: TransportKind, to: SocketAddr, branch_id: u64 },
}

/// What the driver must do beyond sending bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreEvent {
    /// Resolve a profile's peer and answer with `handle_resolved`.
    Resolve { profile: String, host: String, port: u16, transport: TransportKind },
    /// Close a stream whose framing can no longer be trusted (RFC 4475 §3.1.2.3).
    CloseConnection(Peer),
    /// Registrations, bindings or peer status changed: republish the status snapshot.
    StatusChanged,
    /// The first outcome of a registration made on a browser user's behalf (`register_user`).
    UserRegistration { key: String, result: Result<(), String> },
    /// A call that passed the trust gate, for the call layer to route (answer with `call_*`).
    IncomingCall(IncomingCall),
    CallEnded { id: SipCallId, reason: CallEndReason },
    /// Progress of a call the gateway placed (`place_call`).
    Outbound(OutboundEvent),
    /// Something happened inside an answered call's dialog (new offer, DTMF by INFO).
    Dialog(DialogEvent),
}

/// A resolved route toward an upstream profile, with the local address our Via/Contact advertise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolvedPeer {
    pub remote: SocketAddr,
    pub advertised: SocketAddr,
}

enum ServerMachine {
    Invite(ServerInvite),
    NonInvite(ServerNonInvite),
}

struct ServerTransaction {
    machine: ServerMachine,
    route: ResponseRoute,
    request_headers: Headers,
    to_tag: String,
    final_sent: bool,
}

enum ClientMachine {
    Invite(ClientInvite),
    NonInvite(ClientNonInvite),
}

struct ClientTransaction {
    machine: ClientMachine,
    route: Route,
    purpose: upstream::Purpose,
    sent_at: Instant,
}

/// Who owns an armed transaction deadline.
enum TimerOwner {
    Server(TransactionKey),
    Client(u64),
    /// A call's session timer (RFC 4028): refresh, or end the session.
    Session(SipCallId),
    /// Retransmission of a reliable 180 until its PRACK (RFC 3262).
    Reliable(SipCallId),
}

pub struct SipCore {
    config: CoreConfig,
    /// Transaction deadlines, earliest first. Entries go stale when a deadline moves; a stale
    /// entry only causes one early wake-up, so nothing is ever scanned per event.
    deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    deadline_owners: HashMap<u64, TimerOwner>,
    next_deadline_id: u64,
    profiles: Vec<Profile>,
    local: Option<uas::LocalDomain>,
    upstreams: Vec<Upstream>,
    server_transactions: HashMap<TransactionKey, ServerTransaction>,
    /// Keyed by the branch id we generated (the numeric part after our prefix).
    client_transactions: HashMap<u64, ClientTransaction>,
    next_branch_id: u64,
    branch_salt: String,
    transmits: VecDeque<Transmit>,
    events: VecDeque<CoreEvent>,
    counters: SipCounters,
    /// Warnings a flood can trigger (refused dialogs, failed REGISTERs) are capped.
    refusal_log: log_throttle::LogThrottle,
    calls: HashMap<SipCallId, calls::SipCall>,
    outbound: HashMap<SipCallId, outbound::OutboundCall>,
    next_call_id: SipCallId,
    /// The SIP Call-ID of the call the last input let through the trust gate (`take_admitted`).
    admitted: Option<String>,
    epoch: (Instant, SystemTime),
    next_housekeeping: Instant,
}

const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(10);
/// Server transactions alive at once; beyond this new requests get a stateless 503 (each holds a
/// copy of its request's headers for up to 32 s).
const MAX_SERVER_TRANSACTIONS: usize = 50_000;

impl SipCore {
    /// `now` and `wall` anchor the core's clock: digest nonces need wall time, everything else
    /// runs on the monotonic `Instant`s the driver passes in.
    pub fn new(config: CoreConfig, profiles: Vec<Profile>, now: Instant, wall: SystemTime) -> SipCore {
        let local = profiles.iter().find(|p| p.kind == ProfileKind::Local).map(|profile| {
            let realm = profile.domain.clone().unwrap_or_default();
            uas::LocalDomain {
                profile: profile.clone(),
                digest: DigestServer::new(realm, None)
                    .with_nonce_lifetime(config.nonce_lifetime)
                    .with_algorithms(&profile.digest_algorithms.iter().filter_map(|a| Algorithm::parse(a)).collect::<Vec<_>>()),
                failures: HashMap::new(),
                token_secret: None,
                registrar: Registrar::new(RegistrarPolicy {
                    min_expires: profile.min_expires,
                    max_expires: profile.max_expires,
                    default_expires: profile.max_expires.min(3_600),
                    max_contacts_per_aor: 10,
                }),
            }
        });
        let upstreams = profiles
            .iter()
            .filter(|p| p.kind != ProfileKind::Local)
            .map(|p| Upstream::new(p.clone(), now))
            .collect();
        let mut core = SipCore {
            config,
            deadlines: BinaryHeap::new(),
            deadline_owners: HashMap::new(),
            next_deadline_id: 0,
            profiles,
            local,
            upstreams,
            server_transactions: HashMap::new(),
            client_transactions: HashMap::new(),
            next_branch_id: 1,
            branch_salt: response::random_token(4),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            counters: SipCounters::default(),
            refusal_log: log_throttle::LogThrottle::default(),
            calls: HashMap::new(),
            outbound: HashMap::new(),
            next_call_id: 1,
            admitted: None,
            epoch: (now, wall),
            next_housekeeping: now + HOUSEKEEPING_INTERVAL,
        };
        core.start_upstreams(now);
        core
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<CoreEvent> {
        self.events.pop_front()
    }

    /// The SIP Call-ID of a call that passed the trust gate since the last look, if any. The driver
    /// asks right after each input, before the core's answers go out, so a record's ladder can
    /// start with that INVITE while strangers' messages are never kept. One input admits at
    /// most one call, so this holds at most one.
    pub fn take_admitted(&mut self) -> Option<String> {
        self.admitted.take()
    }

    pub fn counters(&self) -> &SipCounters {
        &self.counters
    }

    /// Earliest instant at which `handle_timeout` has work to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let transactions = self.deadlines.peek().map(|Reverse((at, _))| *at);
        let upstream = self.upstreams.iter().filter_map(|u| u.poll_timeout());
        let registrar = self.local.as_ref().and_then(|l| l.registrar.next_expiry());
        transactions.into_iter().chain(upstream).chain(registrar).chain(std::iter::once(self.next_housekeeping)).min()
    }

    fn arm(&mut self, owner: TimerOwner, at: Option<Instant>) {
        if let Some(at) = at {
            let id = self.next_deadline_id;
            self.next_deadline_id += 1;
            self.deadlines.push(Reverse((at, id)));
            self.deadline_owners.insert(id, owner);
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, id))) = self.deadlines.peek().copied() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            match self.deadline_owners.remove(&id) {
                Some(TimerOwner::Server(key)) => {
                    let Some(tx) = self.server_transactions.get_mut(&key) else { continue };
                    let due = match &mut tx.machine {
                        ServerMachine::Invite(m) => m.poll_timeout().is_some_and(|d| d <= now).then(|| m.handle_timeout(now)),
                        ServerMachine::NonInvite(m) => m.poll_timeout().is_some_and(|d| d <= now).then(|| m.handle_timeout(now)),
                    };
                    if due.is_some() {
                        self.drain_server(&key);
                    }
                }
                Some(TimerOwner::Client(id)) => {
                    let Some(tx) = self.client_transactions.get_mut(&id) else { continue };
                    let due = match &mut tx.machine {
                        ClientMachine::Invite(m) => m.poll_timeout().is_some_and(|d| d <= now).then(|| m.handle_timeout(now)),
                        ClientMachine::NonInvite(m) => m.poll_timeout().is_some_and(|d| d <= now).then(|| m.handle_timeout(now)),
                    };
                    if due.is_some() {
                        self.drain_client(id, now);
                    }
                }
                Some(TimerOwner::Session(id)) => self.session_timer_fired(id, now),
                Some(TimerOwner::Reliable(id)) => self.reliable_timer_fired(id, now),
                None => {}
            }
        }
        self.upstream_timeouts(now);
        if let Some(local) = &mut self.local {
            if local.registrar.next_expiry().is_some_and(|d| d <= now) && local.registrar.purge_expired(now) > 0 {
                self.events.push_back(CoreEvent::StatusChanged);
            }
        }
        if now >= self.next_housekeeping {
            self.next_housekeeping = now + HOUSEKEEPING_INTERVAL;
            let wall = self.wall(now);
            if let Some(local) = &mut self.local {
                local.digest.purge(wall);
            }
        }
    }

    pub fn handle_inbound(&mut self, bytes: &[u8], peer: Peer, now: Instant) {
        self.counters.messages_received += 1;
        match message::parse(bytes, peer.transport) {
            Ok(Inbound::KeepAlive) => {}
            Ok(Inbound::Request(request)) => self.handle_request(*request, peer, now),
            Ok(Inbound::Response(response)) => self.handle_response(*response, peer, now),
            Err(rejected) => {
                let status = rejected.error.status();
                // The parser's error may quote the message: no credential or key reaches the log.
                let error = crate::sip::mask::mask_message(&rejected.error.to_string());
                tracing::info!(source = %peer.remote, transport = %peer.transport, status, error, "refused malformed message");
                // RFC 3261 §17: an ACK is never answered, however broken.
                let is_ack = trim_start(bytes).starts_with(b"ACK ");
                match rejected.reply_headers.filter(|_| !is_ack) {
                    Some(mut headers) => {
                        response::stamp_received(&mut headers, peer.remote);
                        let tag = response::stateless_tag(&headers);
                        self.send_stateless(&headers, status, &tag, Vec::new(), peer);
                    }
                    None => self.counters.count_drop("unanswerable"),
                }
                let unframeable = matches!(
                    rejected.error,
                    message::MessageError::BadContentLength(_) | message::MessageError::DuplicateHeader("Content-Length")
                );
                // A WebSocket message carries its own length: a bad Content-Length spoils only itself.
                if peer.transport.is_reliable() && !peer.transport.is_message_framed() && unframeable {
                    self.events.push_back(CoreEvent::CloseConnection(peer));
                }
            }
        }
    }

    fn handle_request(&mut self, mut parsed: ParsedRequest, peer: Peer, now: Instant) {
        response::stamp_received(&mut parsed.request.headers, peer.remote);
        if let Ok(via) = stamped_top_via(&parsed.request.headers) {
            parsed.top_via = via;
        }
        let key = transaction_key(&parsed);
        if parsed.method == "ACK" {
            return self.handle_ack(key, &parsed, now);
        }
        if let Some(tx) = self.server_transactions.get_mut(&key) {
            self.counters.retransmissions_received += 1;
            let _ = match &mut tx.machine {
                ServerMachine::Invite(m) => m.handle_request_retransmission(now),
                ServerMachine::NonInvite(m) => m.handle_request_retransmission(now),
            };
            self.drain_server(&key);
            return;
        }
        if self.server_transactions.len() >= MAX_SERVER_TRANSACTIONS {
            self.counters.count_drop("overload");
            let tag = response::stateless_tag(&parsed.request.headers);
            let retry_after = rsipstack::sip::headers::make_header("Retry-After", "5".into());
            return self.send_stateless(&parsed.request.headers, 503, &tag, vec![retry_after], peer);
        }
        let reliability = if peer.transport.is_reliable() { Reliability::Reliable } else { Reliability::Unreliable };
        let machine = if parsed.method == "INVITE" {
            ServerMachine::Invite(ServerInvite::new(reliability, self.config.timers, now))
        } else {
            ServerMachine::NonInvite(ServerNonInvite::new(reliability, self.config.timers, now))
        };
        let route = response::response_route(&parsed.top_via, &peer);
        let to_tag = parsed.to.tag().map(str::to_string).unwrap_or_else(|| response::random_token(6));
        self.server_transactions.insert(
            key.clone(),
            ServerTransaction { machine, route, request_headers: parsed.request.headers.clone(), to_tag, final_sent: false },
        );
        self.dispatch_request(key, parsed, peer, now);
    }

    fn handle_ack(&mut self, key: TransactionKey, parsed: &ParsedRequest, now: Instant) {
        let mut invite_key = key.with_method("INVITE");
        if !self.server_transactions.contains_key(&invite_key) {
            // The ACK for a 2xx has a branch of its own: the dialog knows which INVITE it ends.
            match self.ack_target(parsed) {
                Some(target) => invite_key = target,
                None => return self.counters.count_drop("ack_without_transaction"),
            }
        }
        if let Some(ServerTransaction { machine: ServerMachine::Invite(m), .. }) = self.server_transactions.get_mut(&invite_key) {
            // A 2xx ACK is passed up: the dialog has nothing more to do with it (an answer in it
            // to an offerless re-INVITE repeats our last SDP's peer, which media already follows).
            let _ = m.handle_ack(now);
            self.drain_server(&invite_key);
        }
    }

    fn handle_response(&mut self, parsed: ParsedResponse, peer: Peer, now: Instant) {
        let Some(id) = parsed.top_via.branch().and_then(|b| self.parse_branch(b)) else {
            self.counters.count_drop("stray_response");
            return;
        };
        let Some(tx) = self.client_transactions.get_mut(&id) else {
            self.counters.count_drop("stray_response");
            return;
        };
        // Only the peer we asked may answer: a branch seen in our Via must not let a third party
        // forge a 200 or a challenge (over UDP the address is checked; streams are bound already).
        let Route::Request { to, .. } = tx.route else { return };
        if peer.transport == TransportKind::Udp && peer.remote != to {
            self.counters.count_drop("response_from_wrong_peer");
            return;
        }
        // A CANCEL shares its INVITE's branch; only the CSeq method tells their answers apart
        // (RFC 3261 §17.1.3). A 200 to our CANCEL must not pass for an answered call.
        let invite_transaction = matches!(tx.machine, ClientMachine::Invite(_));
        if parsed.cseq_method.eq_ignore_ascii_case("INVITE") != invite_transaction {
            self.counters.count_drop("response_to_other_method");
            return;
        }
        let purpose = tx.purpose;
        // The ACK for an error answer belongs to the INVITE transaction (RFC 3261 §17.1.1.3).
        let ack = match (purpose, parsed.status >= 300) {
            (upstream::Purpose::Call { id }, true) => self.outbound.get(&id).and_then(|c| c.ack_for_error(&parsed)),
            (upstream::Purpose::Dialog { id }, true) if invite_transaction => self.dialog_ack_for_error(id, &parsed),
            _ => None,
        };
        let Some(tx) = self.client_transactions.get_mut(&id) else { return };
        let verdict = match &mut tx.machine {
            ClientMachine::NonInvite(m) => m.handle_response(parsed.status, now),
            ClientMachine::Invite(m) => m.handle_response(parsed.status, ack, now),
        };
        let purpose = tx.purpose;
        let rtt = now.saturating_duration_since(tx.sent_at);
        self.drain_client(id, now);
        if verdict == Verdict::PassUp {
            self.upstream_response(purpose, &parsed, rtt, now);
        }
    }

    /// The driver could not deliver a request (DNS, connect or write failure).
    pub fn handle_send_failure(&mut self, branch_id: u64, reason: &str, now: Instant) {
        if let Some(tx) = self.client_transactions.get_mut(&branch_id) {
            tracing::warn!(branch_id, reason, "could not send request");
            match &mut tx.machine {
                ClientMachine::Invite(m) => m.handle_transport_error(now),
                ClientMachine::NonInvite(m) => m.handle_transport_error(now),
            }
            let purpose = tx.purpose;
            self.client_transactions.remove(&branch_id);
            self.upstream_failure(purpose, reason, now);
        }
    }

    fn new_branch(&mut self) -> (u64, String) {
        let id = self.next_branch_id;
        self.next_branch_id += 1;
        (id, format!("z9hG4bK-sb{}-{id}", self.branch_salt))
    }

    fn parse_branch(&self, branch: &str) -> Option<u64> {
        let rest = branch.strip_prefix("z9hG4bK-sb")?;
        let (salt, id) = rest.split_once('-')?;
        (salt == self.branch_salt).then(|| id.parse().ok()).flatten()
    }

    fn wall(&self, now: Instant) -> SystemTime {
        self.epoch.1 + now.saturating_duration_since(self.epoch.0)
    }

    /// Entries the core keeps per call or transaction, summed: zero once every call has ended
    /// and its transactions have timed out (a test that churns calls checks nothing is kept).
    #[cfg(test)]
    fn entries_held(&self) -> usize {
        self.deadline_owners.len() + self.server_transactions.len() + self.client_transactions.len() + self.calls.len() + self.outbound.len()
    }

    pub fn status(&self, now: Instant) -> CoreStatus {
        status::snapshot(self, now)
    }
}

fn trim_start(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != b'\r' && *b != b'\n').unwrap_or(bytes.len());
    &bytes[start..]
}

fn stamped_top_via(headers: &Headers) -> Result<super::syntax::ViaValue, super::syntax::SyntaxError> {
    let value = headers
        .iter()
        .find(|h| matches!(h, Header::Via(_)))
        .map(|h| h.value().to_string())
        .ok_or_else(|| super::syntax::SyntaxError("no Via".into()))?;
    let first = super::syntax::split_values(&value).first().map(|s| s.to_string()).unwrap_or_default();
    super::syntax::ViaValue::parse(&first)
}

/// RFC 3261 §17.2.3, with the RFC 2543 fallback for branches without the magic cookie.
fn transaction_key(parsed: &ParsedRequest) -> TransactionKey {
    let method = TransactionKey::matching_method(&parsed.method).to_string();
    let method = if parsed.method == "CANCEL" { "CANCEL".to_string() } else { method };
    match parsed.top_via.branch() {
        Some(branch) if parsed.top_via.has_rfc3261_branch() => TransactionKey::Rfc3261 {
            branch: branch.to_string(),
            // The Via transport is part of the key so a request on one transport can never match a
            // transaction on another.
            sent_by: format!("{}/{}", parsed.top_via.transport, parsed.top_via.sent_by().to_ascii_lowercase()),
            method,
        },
        _ => TransactionKey::Rfc2543 {
            request_uri: parsed.request.uri.to_string(),
            from_tag: parsed.from.tag().unwrap_or_default().to_string(),
            // The ACK for our error answer carries our To tag; the INVITE had none.
            to_tag: if parsed.method == "ACK" { String::new() } else { parsed.to.tag().unwrap_or_default().to_string() },
            call_id: parsed.call_id.clone(),
            cseq: parsed.cseq,
            top_via: format!("{}/{}", parsed.top_via.transport, parsed.top_via.sent_by().to_ascii_lowercase()),
            method,
        },
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_in_dialog;
#[cfg(test)]
mod tests_routing;
#[cfg(test)]
mod tests_churn;
#[cfg(test)]
mod tests_refer;
#[cfg(test)]
mod tests_websocket;
