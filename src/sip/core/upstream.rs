//! The gateway as a client of its upstream peers: REGISTER per profile (with digest), and OPTIONS
//! pings that mark each peer up or down.

use super::{ClientMachine, ClientTransaction, CoreEvent, ResolvedPeer, Route, SipCore};
use crate::config::{PeerTransport, Profile};
use crate::sip::auth::{ChallengeKind, ClientError, DigestClient};
use crate::sip::message::ParsedResponse;
use crate::sip::options::{PeerStatus, Pinger};
use crate::sip::registration::{Action, Outcome, Registration, RegistrationConfig};
use crate::sip::response;
use crate::sip::syntax::{self, NameAddr};
use crate::sip::transaction::{ClientNonInvite, Reliability};
use crate::sip::{uas_policy, TransportKind};
use bytes::Bytes;
use rsipstack::sip::headers::make_header;
use rsipstack::sip::{Header, Headers, Method, Request, Version};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Purpose {
    Register { upstream: usize },
    Ping { upstream: usize },
    /// A request inside a call's dialog (BYE): the transaction's own retransmissions suffice.
    InDialog,
    /// The INVITE of a call we placed.
    Call { id: u64 },
    /// A re-INVITE, UPDATE or refresh in an answered call's dialog, whose answer matters.
    Dialog { id: u64 },
}

pub(super) struct Upstream {
    pub profile: Profile,
    pub registration: Option<Registration>,
    pub pinger: Option<Pinger>,
    pub resolved: Option<ResolvedPeer>,
    pub resolving: bool,
    pub last_error: Option<String>,
    /// A REGISTER the registration machine asked for while the peer was being resolved.
    pending_register: Option<u32>,
    register_in_flight: Option<u64>,
    ping_in_flight: Option<u64>,
    digest: Option<DigestClient>,
    call_id: String,
    from_tag: String,
    cseq: u32,
    /// Auth retries for the REGISTER in flight: bounds the loop if a registrar keeps challenging.
    auth_attempts: u32,
    /// Set for registrations made on a browser user's behalf until their first outcome is reported.
    report_first_outcome: bool,
    /// Browser logins this registration serves; it is unregistered when the last one leaves.
    logins: u32,
    /// Whether the registrar asked for credentials: a PBX that accepts anyone proves nothing about
    /// a browser user's password.
    challenged: bool,
    /// The pinger last saw the peer down: when it answers again, register again.
    peer_was_down: bool,
}

/// Upper bound on registrations made for browser users (each is a few hundred bytes of state).
const MAX_USER_REGISTRATIONS: usize = 10_000;

impl Upstream {
    pub fn new(profile: Profile, now: Instant) -> Upstream {
        let registration = profile.register.then(|| {
            Registration::new(RegistrationConfig { expires: profile.register_expires, ..RegistrationConfig::default() })
        });
        let pinger = profile.ping.then(|| Pinger::new(profile.ping_interval, now));
        let digest = match (&profile.username, &profile.password) {
            (Some(user), Some(password)) => {
                Some(DigestClient::new(profile.auth_username.clone().unwrap_or_else(|| user.clone()), password.clone()))
            }
            _ => None,
        };
        Upstream {
            profile,
            registration,
            pinger,
            resolved: None,
            resolving: false,
            last_error: None,
            pending_register: None,
            register_in_flight: None,
            ping_in_flight: None,
            digest,
            call_id: format!("{}@sipbridge", response::random_token(12)),
            from_tag: response::random_token(6),
            cseq: 0,
            auth_attempts: 0,
            report_first_outcome: false,
            logins: 0,
            challenged: false,
            peer_was_down: false,
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let registration = self.registration.as_ref().and_then(|r| r.poll_timeout());
        let ping = if self.resolved.is_some() { self.pinger.as_ref().and_then(|p| p.poll_timeout()) } else { None };
        registration.into_iter().chain(ping).min()
    }

    pub(super) fn transport(&self) -> TransportKind {
        match self.profile.transport {
            PeerTransport::Udp => TransportKind::Udp,
            PeerTransport::Tcp => TransportKind::Tcp,
            PeerTransport::Tls => TransportKind::Tls,
        }
    }
}

impl SipCore {
    /// Registers `user` to the PBX of `profile` with the user's own credentials (a browser login
    /// through the PBX). The first outcome comes back as `CoreEvent::UserRegistration`; the
    /// registration is then refreshed like any other until `unregister_user`.
    pub fn register_user(&mut self, profile: &str, user: &str, password: &str, now: Instant) -> Result<String, String> {
        let template = self
            .profiles
            .iter()
            .find(|p| p.name == profile && p.kind == crate::config::ProfileKind::Pbx)
            .ok_or_else(|| format!("no PBX profile `{profile}`"))?
            .clone();
        let key = format!("{profile}/{user}");
        if !user.chars().all(|c| c.is_ascii_alphanumeric() || "-_.!~*'()&=+$,;?/%".contains(c)) || user.is_empty() || user.len() > 64 {
            return Err("credentials rejected: bad user name".into());
        }
        if let Some(index) = self.upstreams.iter().position(|u| u.profile.name == key) {
            let existing = &mut self.upstreams[index];
            let live = existing.logins > 0 && existing.registration.as_ref().is_some_and(|r| r.is_registered(now));
            if live {
                // Another tab while the user is registered: the password must be the one the PBX
                // accepted; the live registration is never touched by a guess.
                use subtle::ConstantTimeEq;
                let stored = existing.profile.password.clone().unwrap_or_default();
                if bool::from(stored.as_bytes().ct_eq(password.as_bytes())) {
                    existing.logins += 1;
                    self.events.push_back(CoreEvent::UserRegistration { key: key.clone(), result: Ok(()) });
                    return Ok(key);
                }
                return Err("credentials rejected: not the password in use".into());
            }
            // Logged out, failed before, or never confirmed: start over with these credentials.
            existing.profile.password = Some(password.to_string());
            existing.digest = Some(DigestClient::new(user.to_string(), password.to_string()));
            existing.report_first_outcome = true;
            existing.challenged = false;
            existing.logins = 0;
            existing.registration = Some(Registration::new(RegistrationConfig { expires: existing.profile.register_expires, ..RegistrationConfig::default() }));
            if let Some(registration) = &mut existing.registration {
                registration.start(now);
            }
            self.request_resolution(index);
            self.pump_upstream(index, now);
            return Ok(key);
        }
        let personal_count = self.upstreams.iter().filter(|u| u.profile.name.contains('/')).count();
        if personal_count >= MAX_USER_REGISTRATIONS {
            return Err("too many browser users registered through the PBX".into());
        }
        let mut personal = template;
        personal.name = key.clone();
        personal.register = true;
        personal.ping = false;
        personal.username = Some(user.to_string());
        personal.auth_username = None;
        personal.password = Some(password.to_string());
        let mut upstream = Upstream::new(personal, now);
        upstream.report_first_outcome = true;
        self.upstreams.push(upstream);
        let index = self.upstreams.len() - 1;
        if let Some(registration) = &mut self.upstreams[index].registration {
            registration.start(now);
        }
        self.request_resolution(index);
        self.pump_upstream(index, now);
        Ok(key)
    }

    /// Ends a user's registration (their last browser logged out): REGISTER with Expires 0.
    pub fn unregister_user(&mut self, key: &str, now: Instant) {
        if let Some(index) = self.upstreams.iter().position(|u| u.profile.name == key) {
            let upstream = &mut self.upstreams[index];
            upstream.logins = upstream.logins.saturating_sub(1);
            if upstream.logins == 0 {
                if let Some(registration) = &mut upstream.registration {
                    registration.stop(now);
                }
                self.pump_upstream(index, now);
            }
        }
    }

    fn report_outcome(&mut self, index: usize, result: Result<(), String>) {
        let upstream = &mut self.upstreams[index];
        if upstream.report_first_outcome {
            upstream.report_first_outcome = false;
            let result = match result {
                Ok(()) if !upstream.challenged => Err("credentials rejected: the PBX did not ask for a password".to_string()),
                other => other,
            };
            if result.is_ok() {
                upstream.logins += 1;
            } else {
                // A failed login leaves nothing behind that would keep retrying bad credentials.
                upstream.registration = None;
                upstream.digest = None;
            }
            self.events.push_back(CoreEvent::UserRegistration { key: upstream.profile.name.clone(), result });
        }
    }

    pub(super) fn start_upstreams(&mut self, now: Instant) {
        // Calls are routed to any peer profile, so every one is resolved, not only the ones that
        // register or ping.
        for index in 0..self.upstreams.len() {
            if let Some(registration) = &mut self.upstreams[index].registration {
                registration.start(now);
            }
            self.request_resolution(index);
            self.pump_upstream(index, now);
        }
    }

    fn request_resolution(&mut self, index: usize) {
        let upstream = &mut self.upstreams[index];
        if upstream.resolving {
            return;
        }
        upstream.resolving = true;
        // Through an outbound proxy, the proxy is the only address we ever send to.
        let (host, port) = match &upstream.profile.outbound_proxy {
            Some(proxy) => (proxy.host.trim_start_matches('[').trim_end_matches(']').to_string(), proxy.port),
            None => (upstream.profile.host.clone().unwrap_or_default(), upstream.profile.port),
        };
        self.events.push_back(CoreEvent::Resolve {
            profile: upstream.profile.name.clone(),
            host,
            port,
            transport: upstream.transport(),
        });
    }

    /// The driver's answer to `CoreEvent::Resolve`.
    pub fn handle_resolved(&mut self, profile: &str, result: Result<ResolvedPeer, String>, now: Instant) {
        let Some(index) = self.upstreams.iter().position(|u| u.profile.name == profile) else { return };
        let upstream = &mut self.upstreams[index];
        upstream.resolving = false;
        match result {
            Ok(resolved) => {
                let moved = upstream.resolved.is_some_and(|old| old != resolved);
                upstream.resolved = Some(resolved);
                upstream.last_error = None;
                if moved {
                    // Our address or the peer's changed (network change): bindings upstream are stale.
                    tracing::info!(profile, ?resolved, "route to peer changed; re-registering");
                    if let Some(registration) = &mut upstream.registration {
                        registration.network_changed(now);
                    }
                }
                if let Some(expires) = upstream.pending_register.take() {
                    self.send_register(index, expires, now);
                }
            }
            Err(reason) => {
                tracing::warn!(profile, %reason, "cannot resolve peer");
                upstream.last_error = Some(reason.clone());
                let report = upstream.report_first_outcome.then(|| reason.clone());
                if upstream.pending_register.take().is_some() {
                    if let Some(registration) = &mut upstream.registration {
                        registration.handle_outcome(Outcome::TransportError { reason: &reason }, now);
                    }
                }
                if let Some(reason) = report {
                    self.report_outcome(index, Err(reason));
                }
                self.events.push_back(CoreEvent::StatusChanged);
            }
        }
        self.pump_upstream(index, now);
    }

    pub(super) fn upstream_timeouts(&mut self, now: Instant) {
        for index in 0..self.upstreams.len() {
            let upstream = &mut self.upstreams[index];
            if let Some(registration) = &mut upstream.registration {
                if registration.poll_timeout().is_some_and(|d| d <= now) {
                    registration.handle_timeout(now);
                }
            }
            if upstream.resolved.is_some() {
                if let Some(pinger) = &mut upstream.pinger {
                    if pinger.poll_timeout().is_some_and(|d| d <= now) {
                        pinger.handle_timeout(now);
                    }
                }
            }
            self.pump_upstream(index, now);
        }
    }

    /// Executes whatever the registration and ping machines asked for.
    fn pump_upstream(&mut self, index: usize, now: Instant) {
        self.peer_status_changes(index, now);
        loop {
            let action = self.upstreams[index].registration.as_mut().and_then(|r| r.poll_action());
            let Some(Action::SendRegister { expires }) = action else { break };
            // Every REGISTER re-resolves the peer first, so a changed DNS answer or local address
            // (network loss and return) is noticed at the next refresh or retry.
            self.upstreams[index].pending_register = Some(expires);
            self.request_resolution(index);
            self.events.push_back(CoreEvent::StatusChanged);
        }
        let wants_ping = self.upstreams[index].pinger.as_mut().is_some_and(|p| p.poll_send());
        if wants_ping {
            self.send_ping(index, now);
        }
    }

    /// A registrar that stops answering pings holds no binding we can count on; one that answers
    /// again may have restarted without our binding, so it gets a REGISTER at once.
    fn peer_status_changes(&mut self, index: usize, now: Instant) {
        let upstream = &mut self.upstreams[index];
        let mut changed = false;
        while let Some(status) = upstream.pinger.as_mut().and_then(|p| p.poll_status_change()) {
            tracing::info!(profile = %upstream.profile.name, ?status, "peer status changed");
            match (&status, upstream.registration.as_mut()) {
                (PeerStatus::Down { .. }, registration) => {
                    upstream.peer_was_down = true;
                    if let Some(registration) = registration {
                        registration.peer_down();
                    }
                }
                (PeerStatus::Up { .. }, Some(registration)) if upstream.peer_was_down => {
                    tracing::info!(profile = %upstream.profile.name, "peer is back; registering again");
                    registration.peer_back(now);
                    upstream.peer_was_down = false;
                }
                _ => upstream.peer_was_down = false,
            }
            changed = true;
        }
        if changed {
            self.events.push_back(CoreEvent::StatusChanged);
        }
    }

    fn send_register(&mut self, index: usize, expires: u32, now: Instant) {
        let upstream = &mut self.upstreams[index];
        upstream.auth_attempts = 0;
        // Refreshes answer the cached challenge with the next nonce count, saving the registrar a
        // round trip; a stale nonce just brings a new 401.
        let uri = request_uri(upstream.profile.host.as_deref().unwrap_or(""), upstream.profile.port, upstream.transport()).to_string();
        let cached = upstream
            .digest
            .as_mut()
            .and_then(|d| d.authorize("REGISTER", &uri, None).ok())
            .filter(|h| !h.is_empty())
            .map(|h| h.into_iter().map(|h| make_header(h.name, h.value)).collect());
        let Some(request) = self.build_register(index, expires, cached) else { return };
        self.start_client(index, request, Purpose::Register { upstream: index }, now);
    }

    fn build_register(&mut self, index: usize, expires: u32, auth: Option<Vec<Header>>) -> Option<Request> {
        let upstream = &mut self.upstreams[index];
        let resolved = upstream.resolved?;
        let host = upstream.profile.host.clone().unwrap_or_default();
        let user = upstream.profile.username.clone().unwrap_or_default();
        upstream.cseq += 1;
        let transport = upstream.transport();
        let contact_params = if transport == TransportKind::Udp { String::new() } else { format!(";transport={}", transport.via_name().to_ascii_lowercase()) };
        let mut headers = vec![
            make_header("Max-Forwards", "70".into()),
            make_header("From", format!("<sip:{user}@{host}>;tag={}", upstream.from_tag)),
            make_header("To", format!("<sip:{user}@{host}>")),
            make_header("Call-ID", upstream.call_id.clone()),
            make_header("CSeq", format!("{} REGISTER", upstream.cseq)),
            make_header("Contact", format!("<sip:{user}@{}{contact_params}>", resolved.advertised)),
            make_header("Expires", expires.to_string()),
            uas_policy::allow_header(),
            make_header("User-Agent", self.config.product.clone()),
        ];
        headers.extend(auth.unwrap_or_default());
        let uri = request_uri(&host, upstream.profile.port, transport);
        Some(Request { method: Method::Register, uri, version: Version::V2, headers: Headers(headers), body: Vec::new() })
    }

    fn send_ping(&mut self, index: usize, now: Instant) {
        let upstream = &self.upstreams[index];
        let Some(resolved) = upstream.resolved else { return };
        let host = upstream.profile.host.clone().unwrap_or_default();
        let headers = vec![
            make_header("Max-Forwards", "70".into()),
            make_header("From", format!("<sip:sipbridge@{}>;tag={}", resolved.advertised, response::random_token(6))),
            make_header("To", format!("<sip:{host}>")),
            make_header("Call-ID", format!("{}@sipbridge", response::random_token(12))),
            make_header("CSeq", "1 OPTIONS".into()),
            make_header("User-Agent", self.config.product.clone()),
        ];
        let uri = request_uri(&host, upstream.profile.port, upstream.transport());
        let request = Request { method: Method::Options, uri, version: Version::V2, headers: Headers(headers), body: Vec::new() };
        self.start_client(index, request, Purpose::Ping { upstream: index }, now);
    }

    /// Adds our Via and starts a client transaction for `request`.
    fn start_client(&mut self, index: usize, mut request: Request, purpose: Purpose, now: Instant) {
        let upstream = &self.upstreams[index];
        let Some(resolved) = upstream.resolved else { return };
        let transport = upstream.transport();
        let proxy_route = upstream.profile.outbound_proxy.as_ref().map(|p| p.route());
        let (branch_id, branch) = self.new_branch();
        let via = format!("SIP/2.0/{} {};branch={branch};rport", transport.via_name(), resolved.advertised);
        request.headers.push_front(make_header("Via", via));
        if let Some(route) = proxy_route {
            request.headers.push(make_header("Route", route));
        }
        request.headers.push(make_header("Content-Length", "0".into()));
        let reliability = if transport.is_reliable() { Reliability::Reliable } else { Reliability::Unreliable };
        let machine = ClientNonInvite::new(Bytes::from(request.to_bytes()), reliability, self.config.timers, now);
        let route = Route::Request { transport, to: resolved.remote, branch_id };
        match purpose {
            Purpose::Register { .. } => self.upstreams[index].register_in_flight = Some(branch_id),
            Purpose::Ping { .. } => self.upstreams[index].ping_in_flight = Some(branch_id),
            Purpose::InDialog | Purpose::Call { .. } | Purpose::Dialog { .. } => {}
        }
        self.client_transactions
            .insert(branch_id, ClientTransaction { machine: ClientMachine::NonInvite(machine), route, purpose, sent_at: now });
        self.drain_client(branch_id, now);
    }

    pub(super) fn upstream_response(&mut self, purpose: Purpose, parsed: &ParsedResponse, rtt: Duration, now: Instant) {
        if let Purpose::Call { id } = purpose {
            return self.outbound_response(id, parsed, now);
        }
        if let Purpose::Dialog { id } = purpose {
            return self.dialog_response(id, parsed, now);
        }
        if parsed.status < 200 {
            return;
        }
        match purpose {
            Purpose::InDialog | Purpose::Call { .. } | Purpose::Dialog { .. } => {}
            Purpose::Ping { upstream } => {
                self.upstreams[upstream].ping_in_flight = None;
                if let Some(pinger) = &mut self.upstreams[upstream].pinger {
                    pinger.handle_response(parsed.status, now);
                }
                let _ = rtt;
                self.pump_upstream(upstream, now);
            }
            Purpose::Register { upstream } => {
                self.upstreams[upstream].register_in_flight = None;
                self.register_response(upstream, parsed, now);
                self.events.push_back(CoreEvent::StatusChanged);
                self.pump_upstream(upstream, now);
            }
        }
    }

    fn register_response(&mut self, index: usize, parsed: &ParsedResponse, now: Instant) {
        let status = parsed.status;
        let headers = &parsed.response.headers;
        if status == 401 || status == 407 {
            let kind = if status == 401 { ChallengeKind::Www } else { ChallengeKind::Proxy };
            let challenges: Vec<String> = headers
                .iter()
                .filter(|h| match kind {
                    ChallengeKind::Www => matches!(h, Header::WwwAuthenticate(_)),
                    ChallengeKind::Proxy => matches!(h, Header::ProxyAuthenticate(_)),
                })
                .map(|h| h.value().to_string())
                .collect();
            let upstream = &mut self.upstreams[index];
            let uri = request_uri(upstream.profile.host.as_deref().unwrap_or(""), upstream.profile.port, upstream.transport()).to_string();
            upstream.auth_attempts += 1;
            upstream.challenged = true;
            let answer = match &mut upstream.digest {
                Some(_) if upstream.auth_attempts > 3 => Err("registrar keeps challenging".to_string()),
                Some(digest) => digest.respond(kind, challenges.iter().map(String::as_str), "REGISTER", &uri, None).map_err(|e| match e {
                    ClientError::CredentialsRejected { realm } => format!("credentials rejected by realm {realm}"),
                    other => format!("cannot answer challenge: {other:?}"),
                }),
                None => Err("challenged but the profile has no credentials".to_string()),
            };
            return match answer {
                Ok(auth_headers) => {
                    let expires = self.upstreams[index].registration.as_ref().map(|_| self.upstreams[index].profile.register_expires);
                    let headers = auth_headers.into_iter().map(|h| make_header(h.name, h.value)).collect();
                    let attempts = self.upstreams[index].auth_attempts;
                    if let Some(request) = self.build_register(index, self.requested_expires(index).or(expires).unwrap_or(0), Some(headers)) {
                        self.start_client(index, request, Purpose::Register { upstream: index }, now);
                        self.upstreams[index].auth_attempts = attempts;
                    }
                }
                Err(reason) => {
                    tracing::warn!(profile = %self.upstreams[index].profile.name, status, %reason, "registration refused");
                    self.upstreams[index].last_error = Some(reason.clone());
                    self.report_outcome(index, Err(reason.clone()));
                    if let Some(registration) = &mut self.upstreams[index].registration {
                        registration.handle_outcome(Outcome::Rejected { status, reason: &reason }, now);
                    }
                }
            };
        }
        let upstream = &mut self.upstreams[index];
        if let Some(digest) = &mut upstream.digest {
            digest.request_accepted();
        }
        let outcome_reason = format!("{status} {}", parsed.response.reason_phrase().unwrap_or(response::reason_phrase(status)));
        let outcome = match status {
            200..=299 => Outcome::Accepted { granted_expires: granted_expires(headers, upstream) },
            423 => match find(headers, |h| matches!(h, Header::MinExpires(_))).and_then(|v| v.trim().parse().ok()) {
                Some(min_expires) => Outcome::IntervalTooBrief { min_expires },
                None => Outcome::Rejected { status, reason: &outcome_reason },
            },
            _ => Outcome::Rejected { status, reason: &outcome_reason },
        };
        if status >= 300 {
            tracing::warn!(profile = %upstream.profile.name, status, "registration refused");
            upstream.last_error = Some(outcome_reason.clone());
        } else {
            tracing::info!(profile = %upstream.profile.name, "registered upstream");
            upstream.last_error = None;
        }
        if let Some(registration) = &mut upstream.registration {
            registration.handle_outcome(outcome, now);
        }
        let result = if status < 300 { Ok(()) } else { Err(outcome_reason.clone()) };
        self.report_outcome(index, result);
    }

    fn requested_expires(&self, index: usize) -> Option<u32> {
        self.upstreams[index].pending_register.or(Some(self.upstreams[index].profile.register_expires))
    }

    pub(super) fn upstream_failure(&mut self, purpose: Purpose, reason: &str, now: Instant) {
        match purpose {
            Purpose::InDialog => tracing::info!(reason, "in-dialog request failed"),
            Purpose::Call { id } => self.outbound_failed(id),
            Purpose::Dialog { id } => self.dialog_request_failed(id, now),
            Purpose::Ping { upstream } => {
                self.upstreams[upstream].ping_in_flight = None;
                if let Some(pinger) = &mut self.upstreams[upstream].pinger {
                    pinger.handle_failure(reason, now);
                }
                self.pump_upstream(upstream, now);
            }
            Purpose::Register { upstream } => {
                let entry = &mut self.upstreams[upstream];
                entry.register_in_flight = None;
                entry.last_error = Some(reason.to_string());
                tracing::warn!(profile = %entry.profile.name, reason, "registration failed");
                if let Some(registration) = &mut entry.registration {
                    registration.handle_outcome(Outcome::Timeout, now);
                }
                self.report_outcome(upstream, Err(reason.to_string()));
                self.events.push_back(CoreEvent::StatusChanged);
                self.pump_upstream(upstream, now);
            }
        }
    }
}

fn request_uri(host: &str, port: u16, transport: TransportKind) -> rsipstack::sip::Uri {
    let default_port = if transport == TransportKind::Tls { 5061 } else { 5060 };
    let host = if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host.to_string() };
    let text = match (port == default_port, transport) {
        (true, TransportKind::Udp) => format!("sip:{host}"),
        (false, TransportKind::Udp) => format!("sip:{host}:{port}"),
        (_, t) => format!("sip:{host}:{port};transport={}", t.via_name().to_ascii_lowercase()),
    };
    rsipstack::sip::Uri::try_from(text.as_str()).unwrap_or_default()
}

fn find(headers: &Headers, test: impl Fn(&Header) -> bool) -> Option<String> {
    headers.iter().find(|h| test(h)).map(|h| h.value().to_string())
}

/// RFC 3261 §10.2.4: the registrar's answer lists our binding with the expiry it granted.
fn granted_expires(headers: &Headers, upstream: &Upstream) -> Option<u32> {
    let ours = upstream.resolved.map(|r| r.advertised.to_string());
    for value in headers.iter().filter(|h| matches!(h, Header::Contact(_))).map(|h| h.value()) {
        for contact in syntax::split_values(value) {
            let Ok(contact) = NameAddr::parse(contact) else { continue };
            let is_ours = ours.as_ref().is_some_and(|o| contact.uri.contains(o.as_str()));
            if is_ours {
                if let Some(Some(e)) = syntax::param(&contact.params, "expires") {
                    return e.parse().ok();
                }
            }
        }
    }
    find(headers, |h| matches!(h, Header::Expires(_))).and_then(|v| v.trim().parse().ok())
}
