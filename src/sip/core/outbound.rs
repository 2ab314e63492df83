//! Calls the gateway places toward a SIP peer (browser -> trunk or PBX): INVITE through a client
//! transaction, ACK for 2xx, the dialog, CANCEL before the answer and BYE after it.

use super::calls::SipCallId;
use super::in_dialog::{DialogSession, REQUESTED_SESSION_EXPIRES};
use super::routing::{ack_for_2xx, dialog_destination, lists_option, record_route_values};
use super::upstream::Purpose;
use super::{ClientMachine, ClientTransaction, CoreEvent, Route, SipCore};
use crate::sip::dialog::Dialog;
use crate::sip::message::ParsedResponse;
use crate::sip::response;
use crate::sip::syntax::{self, NameAddr};
use crate::sip::transaction::{ClientInvite, Reliability};
use crate::sip::Peer;
use bytes::Bytes;
use rsipstack::sip::headers::make_header;
use rsipstack::sip::{Header, Headers, Method, Request, Version};
use std::time::Instant;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboundEvent {
    /// 1xx: `sdp` is set for early media (183 with a body).
    Progress { id: SipCallId, status: u16, sdp: Option<String> },
    Answered { id: SipCallId, sdp: String },
    /// A final failure, or 408 when the peer never answered.
    Failed { id: SipCallId, status: u16 },
    /// The first response from the peer: where the call went and what the peer calls itself
    /// (its Server or User-Agent header), for the call's record.
    PeerSeen { id: SipCallId, remote: std::net::SocketAddr, user_agent: Option<String> },
}

impl OutboundEvent {
    pub fn id(&self) -> SipCallId {
        match self {
            Self::Progress { id, .. } | Self::Answered { id, .. } | Self::Failed { id, .. } | Self::PeerSeen { id, .. } => *id,
        }
    }
}

pub(super) struct OutboundCall {
    branch_id: u64,
    /// Where in-dialog requests go once answered.
    pub(super) peer: Option<Peer>,
    pub(super) session: DialogSession,
    /// The INVITE as sent, to build CANCEL and the ACK for an error answer from.
    pub(super) invite: Request,
    pub(super) route: Route,
    pub(super) dialog: Option<Dialog>,
    answered: bool,
    /// Answers 401/407 with the profile's credentials, once per call.
    digest: Option<crate::sip::auth::DigestClient>,
    pub(super) cseq: u32,
    /// CANCEL sent: the call stays until the INVITE's final answer, which is ACKed (or BYEd when
    /// it is a 2xx that crossed the CANCEL) but no longer reported.
    cancelled: bool,
    /// A CANCEL may only follow a provisional answer (RFC 3261 §9.1); until one comes it waits.
    provisional_seen: bool,
    /// Our address as the peer sees it (Via, Contact): the source of in-dialog requests.
    advertised: std::net::SocketAddr,
    /// The last reliable provisional PRACKed, and the CSeq our last PRACK used (RFC 3262).
    pub(super) last_rseq: Option<u32>,
    pub(super) prack_cseq: u32,
    /// `PeerSeen` was reported.
    peer_seen: bool,
    /// The User-Agent a registered phone gave when it registered: the record's fallback when its
    /// answers carry neither Server nor User-Agent (JsSIP's and SIP.js's do not).
    registered_user_agent: Option<String>,
}

impl OutboundCall {
    /// The ACK for the INVITE's 2xx and where it goes: the dialog's next hop once the dialog exists.
    fn ack_for_2xx(&self, to: &str, cseq: u32) -> Option<(Request, std::net::SocketAddr)> {
        let Route::Request { to: flow, .. } = self.route else { return None };
        let Some(dialog) = self.dialog.as_ref() else {
            return Some((build_ack(&self.invite, to, cseq, AckTransaction::ItsOwn), flow));
        };
        let target = dialog.request_target();
        let destination = dialog_destination(dialog, &target, self.session.symmetric, flow);
        Some((ack_for_2xx(&self.invite, to, cseq, &target)?, destination))
    }

    /// ACK for a 3xx-6xx, which belongs to the INVITE transaction (same branch).
    pub(super) fn ack_for_error(&self, response: &ParsedResponse) -> Option<Bytes> {
        let to = response.response.headers.iter().find(|h| matches!(h, Header::To(_)))?.value();
        Some(Bytes::from(build_ack(&self.invite, to, self.cseq, AckTransaction::TheInvites).to_bytes()))
    }
}

impl SipCore {
    /// Places a call to `user`: a phone registered to our local domain under that name, else the
    /// peer of `profile`. `caller` names the browser user in From. Progress comes back as
    /// `CoreEvent::Outbound`.
    pub fn place_call(&mut self, profile: Option<&str>, user: &str, caller: &str, sdp: &str, now: Instant) -> Result<SipCallId, String> {
        self.place_call_to(profile, user, None, caller, sdp, now)
    }

    /// `place_call`, to one binding of the registered `user` when `binding` names its contact
    /// (a call forked to every device of a user places one INVITE per binding).
    pub fn place_call_to(&mut self, profile: Option<&str>, user: &str, binding: Option<&str>, caller: &str, sdp: &str, now: Instant) -> Result<SipCallId, String> {
        if user.is_empty() || !user.chars().all(|c| c.is_ascii_alphanumeric() || "+-_.*#".contains(c)) {
            return Err(format!("`{user}` is not a number or user name"));
        }
        if let Some((uri, peer, user_agent)) = self.registered_phone(user, binding, now) {
            let domain = self.local.as_ref().and_then(|l| l.profile.domain.clone()).unwrap_or_default();
            let from = format!("<sip:{caller}@{domain}>");
            let to = format!("<sip:{user}@{domain}>");
            let id = self.send_first_invite(uri, (from, to, None), (peer.transport, peer.remote), peer.local, None, sdp, now);
            // A registered phone may sit behind NAT: its dialog follows the flow it registered over.
            if let Some(call) = self.outbound.get_mut(&id) {
                call.session.symmetric = true;
                call.registered_user_agent = user_agent;
            }
            return Ok(id);
        }
        if binding.is_some() {
            return Err(format!("`{user}` is no longer registered at that contact"));
        }
        let profile = profile.ok_or_else(|| format!("`{user}` is not a registered phone and this user may not call out"))?;
        let upstream = self.upstreams.iter().find(|u| u.profile.name == profile).ok_or_else(|| format!("no peer profile `{profile}`"))?;
        let dialed = user;
        let user = &upstream.profile.dial.apply(dialed).map_err(|e| e.to_string())?;
        if user != dialed {
            tracing::info!(%dialed, sent = %user, %profile, "dial plan rewrote the number");
        }
        let digest = match (&upstream.profile.username, &upstream.profile.password) {
            (Some(user), Some(password)) => Some(crate::sip::auth::DigestClient::new(
                upstream.profile.auth_username.clone().unwrap_or_else(|| user.clone()),
                password.clone(),
            )),
            _ => None,
        };
        let resolved = upstream.resolved.ok_or_else(|| format!("profile `{profile}` is not reachable yet"))?;
        let host = upstream.profile.host.clone().unwrap_or_default();
        let port = upstream.profile.port;
        let transport = upstream.transport();
        let uri = rsipstack::sip::Uri::try_from(format!("sip:{user}@{host}:{port}").as_str()).map_err(|e| e.to_string())?;
        let from = format!("<sip:sipbridge@{}>", resolved.advertised);
        let preloaded_route = upstream.profile.outbound_proxy.as_ref().map(|p| p.route());
        let to = format!("<sip:{user}@{host}>");
        Ok(self.send_first_invite(uri, (from, to, preloaded_route), (transport, resolved.remote), resolved.advertised, digest, sdp, now))
    }

    /// The SIP Call-ID of a call we placed (for its record's ladder).
    pub fn outbound_sip_call_id(&self, id: SipCallId) -> Option<String> {
        let call = self.outbound.get(&id)?;
        call.invite.headers.iter().find(|h| matches!(h, Header::CallId(_))).map(|h| h.value().trim().to_string())
    }

    /// The freshest binding of a phone registered as `user`, with the flow it registered over and
    /// the User-Agent it registered with.
    pub(super) fn registered_phone(&self, user: &str, contact: Option<&str>, now: Instant) -> Option<(rsipstack::sip::Uri, Peer, Option<String>)> {
        let local = self.local.as_ref()?;
        let domain = local.profile.domain.as_deref()?;
        let bindings = local.registrar.lookup(&format!("sip:{user}@{domain}"), now);
        let binding = bindings.into_iter().find(|b| contact.is_none_or(|c| b.contact_uri == c))?;
        let uri = rsipstack::sip::Uri::try_from(binding.contact_uri.as_str()).ok()?;
        Some((uri, binding.source, binding.user_agent))
    }

    #[allow(clippy::too_many_arguments)]
    fn send_first_invite(
        &mut self,
        uri: rsipstack::sip::Uri,
        (from, to, preloaded_route): (String, String, Option<String>),
        (transport, remote): (crate::sip::TransportKind, std::net::SocketAddr),
        advertised: std::net::SocketAddr,
        digest: Option<crate::sip::auth::DigestClient>,
        sdp: &str,
        now: Instant,
    ) -> SipCallId {
        let id = self.next_call_id;
        self.next_call_id += 1;
        let (branch_id, branch) = self.new_branch();
        let route = Route::Request { transport, to: remote, branch_id };
        let mut headers = vec![
            make_header("Via", format!("SIP/2.0/{} {advertised};branch={branch};rport", transport.via_name())),
            make_header("Max-Forwards", "70".into()),
            make_header("From", format!("{from};tag={}", response::random_token(6))),
            make_header("To", to),
            make_header("Call-ID", format!("{}@sipbridge", response::random_token(12))),
            make_header("CSeq", "1 INVITE".into()),
            make_header("Contact", format!("<sip:sipbridge@{advertised}>")),
            crate::sip::uas_policy::allow_header(),
            crate::sip::uas_policy::supported_header(),
            make_header("Session-Expires", REQUESTED_SESSION_EXPIRES.to_string()),
            make_header("User-Agent", self.config.product.clone()),
            make_header("Content-Type", "application/sdp".into()),
            make_header("Content-Length", sdp.len().to_string()),
        ];
        if let Some(route) = preloaded_route {
            headers.insert(2, make_header("Route", route));
        }
        let invite = Request { method: Method::Invite, uri, version: Version::V2, headers: Headers(headers), body: sdp.as_bytes().to_vec() };
        let reliability = if transport.is_reliable() { Reliability::Reliable } else { Reliability::Unreliable };
        let machine = ClientInvite::new(Bytes::from(invite.to_bytes()), reliability, self.config.timers, now);
        self.client_transactions
            .insert(branch_id, ClientTransaction { machine: ClientMachine::Invite(machine), route, purpose: Purpose::Call { id }, sent_at: now });
        let mut session = DialogSession::default();
        session.local_contact = format!("<sip:sipbridge@{advertised}>");
        let call = OutboundCall { branch_id, peer: None, session, invite, route, dialog: None, answered: false, digest, cseq: 1, cancelled: false, provisional_seen: false, advertised, last_rseq: None, prack_cseq: 0, peer_seen: false, registered_user_agent: None };
        self.outbound.insert(id, call);
        self.drain_client(branch_id, now);
        id
    }

    /// A response for an outbound INVITE, after its transaction handled retransmissions.
    pub(super) fn outbound_response(&mut self, id: SipCallId, parsed: &ParsedResponse, now: Instant) {
        let Some(call) = self.outbound.get_mut(&id) else { return };
        let status = parsed.status;
        if !call.peer_seen && status > 100 {
            call.peer_seen = true;
            if let Route::Request { to: remote, .. } = call.route {
                let user_agent = parsed
                    .response
                    .headers
                    .iter()
                    .find(|h| matches!(h, Header::Server(_) | Header::UserAgent(_)))
                    .map(|h| h.value().chars().take(200).collect())
                    .or_else(|| call.registered_user_agent.clone());
                self.events.push_back(CoreEvent::Outbound(OutboundEvent::PeerSeen { id, remote, user_agent }));
            }
        }
        let Some(call) = self.outbound.get_mut(&id) else { return };
        if call.cancelled && status >= 300 {
            self.outbound.remove(&id);
            return;
        }
        let body = String::from_utf8_lossy(&parsed.response.body).into_owned();
        let headers = &parsed.response.headers;
        let find = |test: fn(&Header) -> bool| headers.iter().find(|h| test(h)).map(|h| h.value().to_string());
        match status {
            100..=199 if call.cancelled => {
                if !call.provisional_seen {
                    call.provisional_seen = true;
                    self.send_cancel(id);
                }
            }
            100..=199 => {
                call.provisional_seen = true;
                let sdp = (!body.trim().is_empty()).then_some(body);
                self.events.push_back(CoreEvent::Outbound(OutboundEvent::Progress { id, status, sdp }));
                self.prack_provisional(id, parsed, now);
            }
            200..=299 => {
                let to = find(|h| matches!(h, Header::To(_))).and_then(|v| NameAddr::parse(&v).ok());
                let to_value = find(|h| matches!(h, Header::To(_))).unwrap_or_default();
                let cseq = call.cseq;
                let route = call.route;
                if !call.answered {
                    call.answered = true;
                    let from = call.invite.headers.iter().find(|h| matches!(h, Header::From(_))).and_then(|h| NameAddr::parse(h.value()).ok());
                    let contact = find(|h| matches!(h, Header::Contact(_)))
                        .and_then(|v| syntax::split_values(&v).first().and_then(|c| NameAddr::parse(c).ok()))
                        .map(|c| c.uri)
                        .unwrap_or_else(|| call.invite.uri.to_string());
                    let call_id = call.invite.headers.iter().find(|h| matches!(h, Header::CallId(_))).map(|h| h.value().to_string()).unwrap_or_default();
                    if let (Some(from), Some(to)) = (from, to) {
                        let (local_tag, remote_tag) = (from.tag().unwrap_or_default().to_string(), to.tag().unwrap_or_default().to_string());
                        call.dialog = Some(Dialog::new_uac(
                            call_id,
                            local_tag,
                            remote_tag,
                            from.uri,
                            to.uri,
                            contact,
                            record_route_values(headers),
                            cseq.max(call.prack_cseq),
                            false,
                            false,
                        ));
                    }
                    call.session.local_sdp = String::from_utf8_lossy(&call.invite.body).into_owned();
                    call.session.peer_allows_update = lists_option(headers, "Allow", "UPDATE");
                    call.session.timer = super::in_dialog::timer_answered(headers);
                    if let Route::Request { transport, to, .. } = route {
                        call.peer = Some(Peer { transport, remote: to, local: call.advertised, connection: None });
                    }
                    if !call.cancelled {
                        self.events.push_back(CoreEvent::Outbound(OutboundEvent::Answered { id, sdp: body }));
                    }
                }
                let hang_up_crossed_answer = call.cancelled;
                // Every 2xx (retransmissions too) is acknowledged by us, not the transaction, along
                // the dialog's route set to its remote target (RFC 3261 §13.2.2.4).
                if let Some((ack, to)) = call.ack_for_2xx(&to_value, cseq) {
                    let Route::Request { transport, .. } = route else { return };
                    let route = Route::Request { transport, to, branch_id: 0 };
                    self.transmits.push_back(super::Transmit { route, bytes: Bytes::from(ack.to_bytes()) });
                }
                if hang_up_crossed_answer {
                    if let Some(call) = self.outbound.get_mut(&id) {
                        call.cancelled = false;
                    }
                    self.outbound_hangup(id, now);
                } else {
                    self.restart_session_timer(id, now);
                }
            }
            401 | 407 if call.digest.is_some() => {
                if !self.retry_with_credentials(id, parsed, now) {
                    self.outbound.remove(&id);
                    self.events.push_back(CoreEvent::Outbound(OutboundEvent::Failed { id, status }));
                }
            }
            _ => {
                self.outbound.remove(&id);
                self.events.push_back(CoreEvent::Outbound(OutboundEvent::Failed { id, status }));
            }
        }
    }

    /// Re-sends the INVITE with the profile's digest answer (new branch, next CSeq). False when
    /// the challenge cannot or should not be answered (wrong password, already retried).
    fn retry_with_credentials(&mut self, id: SipCallId, parsed: &ParsedResponse, now: Instant) -> bool {
        use crate::sip::auth::ChallengeKind;
        let (branch_id, branch) = self.new_branch();
        let Some(call) = self.outbound.get_mut(&id) else { return false };
        if call.cseq > 1 {
            return false;
        }
        let kind = if parsed.status == 401 { ChallengeKind::Www } else { ChallengeKind::Proxy };
        let challenges: Vec<String> = parsed
            .response
            .headers
            .iter()
            .filter(|h| match kind {
                ChallengeKind::Www => matches!(h, Header::WwwAuthenticate(_)),
                ChallengeKind::Proxy => matches!(h, Header::ProxyAuthenticate(_)),
            })
            .map(|h| h.value().to_string())
            .collect();
        let uri = call.invite.uri.to_string();
        let body = call.invite.body.clone();
        let Some(digest) = call.digest.as_mut() else { return false };
        let Ok(auth) = digest.respond(kind, challenges.iter().map(String::as_str), "INVITE", &uri, Some(&body)) else { return false };
        call.cseq += 1;
        let mut headers = Headers::default();
        for header in call.invite.headers.iter() {
            match header {
                Header::Via(via) => headers.push(make_header("Via", with_branch(via.value(), |_| branch.clone()))),
                Header::CSeq(_) => headers.push(make_header("CSeq", format!("{} INVITE", call.cseq))),
                Header::Authorization(_) | Header::ProxyAuthorization(_) => {}
                other => headers.push(other.clone()),
            }
        }
        for header in auth {
            headers.push(make_header(header.name, header.value));
        }
        let invite = Request { method: Method::Invite, uri: call.invite.uri.clone(), version: Version::V2, headers, body: call.invite.body.clone() };
        let Route::Request { transport, to, .. } = call.route else { return false };
        let route = Route::Request { transport, to, branch_id };
        let reliability = if transport.is_reliable() { Reliability::Reliable } else { Reliability::Unreliable };
        let machine = ClientInvite::new(Bytes::from(invite.to_bytes()), reliability, self.config.timers, now);
        call.invite = invite;
        call.route = route;
        call.branch_id = branch_id;
        self.client_transactions
            .insert(branch_id, ClientTransaction { machine: ClientMachine::Invite(machine), route, purpose: Purpose::Call { id }, sent_at: now });
        self.drain_client(branch_id, now);
        true
    }

    pub(super) fn outbound_failed(&mut self, id: SipCallId) {
        if let Some(call) = self.outbound.remove(&id) {
            if !call.answered && !call.cancelled {
                self.events.push_back(CoreEvent::Outbound(OutboundEvent::Failed { id, status: 408 }));
            }
        }
    }

    /// The browser hung up: CANCEL before the answer, BYE after it.
    pub fn outbound_hangup(&mut self, id: SipCallId, now: Instant) {
        let Some(call) = self.outbound.get(&id) else { return };
        if call.cancelled {
            return;
        }
        if call.dialog.is_none() {
            self.cancel_outbound(id);
            return;
        }
        let _ = self.send_dialog_request(id, Method::Bye, Vec::new(), Vec::new(), now);
        self.outbound.remove(&id);
    }

    /// Gives up on an unanswered call: CANCEL now, or on the first provisional answer.
    fn cancel_outbound(&mut self, id: SipCallId) {
        let Some(call) = self.outbound.get_mut(&id) else { return };
        call.cancelled = true;
        if call.provisional_seen {
            self.send_cancel(id);
        }
    }

    /// CANCEL: same Request-URI, Via branch, Call-ID, From, To and CSeq number (RFC 3261 §9.1).
    fn send_cancel(&mut self, id: SipCallId) {
        let Some(call) = self.outbound.get(&id) else { return };
        let mut headers = Headers::default();
        for header in call.invite.headers.iter() {
            match header {
                Header::Via(_) | Header::From(_) | Header::To(_) | Header::CallId(_) | Header::MaxForwards(_) => headers.push(header.clone()),
                Header::CSeq(_) => headers.push(make_header("CSeq", format!("{} CANCEL", call.cseq))),
                _ => {}
            }
        }
        headers.push(make_header("Content-Length", "0".into()));
        let cancel = Request { method: Method::Cancel, uri: call.invite.uri.clone(), version: Version::V2, headers, body: Vec::new() };
        self.transmits.push_back(super::Transmit { route: call.route, bytes: Bytes::from(cancel.to_bytes()) });
    }

    /// In-dialog BYE from the peer of an outbound call.
    pub(super) fn outbound_bye(&mut self, call_id: &str, our_tag: &str, their_tag: &str) -> Option<SipCallId> {
        let id = self
            .outbound
            .iter()
            .find(|(_, c)| c.dialog.as_ref().is_some_and(|d| d.matches(call_id, our_tag, their_tag)))
            .map(|(id, _)| *id)?;
        self.outbound.remove(&id);
        Some(id)
    }
}

/// Which transaction an ACK belongs to: an error answer's ACK is part of the INVITE's (same
/// branch, RFC 3261 §17.1.1.3); a 2xx ACK is a transaction of its own (§13.2.2.4), with a branch
/// derived from the INVITE's so that every retransmitted 2xx gets the same ACK.
pub(super) enum AckTransaction {
    TheInvites,
    ItsOwn,
}

/// The ACK for the INVITE's final answer: the INVITE's identity and the answer's To (with tag).
pub(super) fn build_ack(invite: &Request, to: &str, cseq: u32, transaction: AckTransaction) -> Request {
    let mut headers = Headers::default();
    for header in invite.headers.iter() {
        match header {
            Header::From(_) | Header::CallId(_) | Header::MaxForwards(_) => headers.push(header.clone()),
            // RFC 3261 §17.1.1.3: the ACK of an error answer repeats the INVITE's Route headers.
            Header::Route(_) if matches!(transaction, AckTransaction::TheInvites) => headers.push(header.clone()),
            Header::Via(via) => match transaction {
                AckTransaction::TheInvites => headers.push(header.clone()),
                AckTransaction::ItsOwn => {
                    let own = with_branch(via.value(), |old| format!("z9hG4bKack{}", old.trim_start_matches("z9hG4bK")));
                    headers.push(make_header("Via", own));
                }
            },
            _ => {}
        }
    }
    headers.push(make_header("To", to.to_string()));
    headers.push(make_header("CSeq", format!("{cseq} ACK")));
    headers.push(make_header("Content-Length", "0".into()));
    Request { method: Method::Ack, uri: invite.uri.clone(), version: Version::V2, headers, body: Vec::new() }
}

/// A Via value with its branch parameter replaced by `branch(old)`; other parameters stay.
pub(super) fn with_branch(via: &str, branch: impl FnOnce(&str) -> String) -> String {
    let Some((head, tail)) = via.split_once(";branch=") else { return via.to_string() };
    let (old, rest) = match tail.split_once(';') {
        Some((old, rest)) => (old, format!(";{rest}")),
        None => (tail, String::new()),
    };
    format!("{head};branch={}{rest}", branch(old))
}
