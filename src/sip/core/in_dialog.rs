//! Requests inside an answered call's dialog, both ways: re-INVITE and UPDATE (new offers, hold,
//! session refreshes), INFO (DTMF), the ACK of every 2xx, and the session timer of RFC 4028 that
//! ends a call whose peer vanished without a BYE. Inbound and outbound calls share all of it
//! through `DialogSession`.

use super::calls::{CallEndReason, SipCallId};
use super::outbound::{build_ack, AckTransaction};
use super::routing::{ack_for_2xx, contact_uri, dialog_destination, header_value, lists_option};
use super::upstream::Purpose;
use super::{ClientMachine, ClientTransaction, CoreEvent, Route, SipCore, TimerOwner};
use crate::sip::dialog::Dialog;
use crate::sip::message::{ParsedRequest, ParsedResponse};
use crate::sip::syntax;
use crate::sip::transaction::{ClientInvite, ClientNonInvite, Reliability, TransactionKey};
use crate::sip::Peer;
use bytes::Bytes;
use rsipstack::sip::headers::make_header;
use rsipstack::sip::{Header, Headers, Method, Request, Version};
use std::time::{Duration, Instant};

/// Shorter Session-Expires values are refused with 422 (RFC 4028 §4: the Min-SE floor).
pub const MIN_SESSION_EXPIRES: u32 = 90;
/// What calls we place ask for (RFC 4028 §4 recommends 1800 s).
pub const REQUESTED_SESSION_EXPIRES: u32 = 1800;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialogEvent {
    /// The peer sent a new offer (re-INVITE or UPDATE with SDP): answer it with `call_reanswer`.
    Reoffer { id: SipCallId, sdp: String },
    /// A digit that came as SIP INFO.
    Dtmf { id: SipCallId, digit: char, duration_ms: u32 },
    /// The answer to our own re-INVITE (`call_reoffer`).
    ReofferAnswered { id: SipCallId, sdp: String },
    ReofferRefused { id: SipCallId, status: u16 },
    /// The peer's final answer to our REFER (202 accepted, or a refusal).
    ReferAnswered { id: SipCallId, status: u16 },
    /// The peer's NOTIFY says the transfer target answered (RFC 3515 sipfrag 2xx).
    Transferred { id: SipCallId },
    /// The peer asks us to connect the other party to `target` (a user or number; its REFER
    /// was answered 202): report how that goes with `call_refer_progress`.
    ReferRequested { id: SipCallId, target: String },
}

impl DialogEvent {
    pub fn id(&self) -> SipCallId {
        match self {
            Self::Reoffer { id, .. } | Self::Dtmf { id, .. } | Self::ReofferAnswered { id, .. } | Self::ReofferRefused { id, .. } => *id,
            Self::ReferAnswered { id, .. } | Self::Transferred { id } | Self::ReferRequested { id, .. } => *id,
        }
    }
}

/// RFC 4028 as agreed for one dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SessionTimer {
    pub interval: u32,
    pub we_refresh: bool,
    /// The peer said `Supported: timer`, so our answers carry `Require: timer`.
    pub peer_supports: bool,
}

impl SessionTimer {
    /// When the next refresh goes out (we refresh) or when the session is dead (the peer does):
    /// RFC 4028 §10 lets the refresher use half the interval and makes the other side wait for
    /// all of it less min(32 s, interval / 3).
    fn next_deadline(&self, now: Instant) -> Instant {
        let secs = if self.we_refresh { self.interval / 2 } else { self.interval - (self.interval / 3).min(32) };
        now + Duration::from_secs(u64::from(secs))
    }

    /// `Session-Expires` for a message where `uac_is_us` tells who the transaction's UAC is.
    pub(super) fn header(&self, uac_is_us: bool) -> Header {
        let refresher = if self.we_refresh == uac_is_us { "uac" } else { "uas" };
        make_header("Session-Expires", format!("{};refresher={refresher}", self.interval))
    }
}

/// What an answered call keeps beyond the bare dialog.
#[derive(Debug, Default)]
pub(super) struct DialogSession {
    /// Our current SDP: repeated when a re-INVITE comes without an offer.
    pub local_sdp: String,
    pub local_contact: String,
    pub timer: Option<SessionTimer>,
    timer_due: Option<Instant>,
    /// A peer's offer the call layer is answering.
    pending_offer: Option<PendingOffer>,
    /// Our own re-INVITE in flight; true when the call layer waits for its answer (not a refresh).
    our_offer: Option<bool>,
    /// The last re-INVITE we sent: every answer to it, retransmissions too, is ACKed from it.
    last_invite: Option<Request>,
    /// The INVITE whose 2xx waits for its ACK, by CSeq number: an ACK for a 2xx is a
    /// transaction of its own (new branch), so only the dialog can match it.
    awaiting_ack: Option<(u32, TransactionKey)>,
    /// The peer lists UPDATE in Allow: refreshes use it rather than a re-INVITE.
    pub peer_allows_update: bool,
    /// Our REFER waits for its answer.
    refer_pending: bool,
    /// The CSeq of the peer's REFER whose implicit subscription is open (`core/refer.rs`).
    pub(super) refer_in: Option<u32>,
    /// DTMF digits waiting for the INFO before them to be answered: one INFO at a time, or a
    /// proxy that reorders them makes the peer refuse the older CSeq (RFC 3261 §12.2.2) and a
    /// digit is lost or swapped.
    info_queue: std::collections::VecDeque<(char, u32)>,
    info_in_flight: bool,
    /// Without a route set, in-dialog requests go back along the flow the peer used rather than
    /// to its Contact: callers and registered phones may sit behind NAT (symmetric signalling).
    pub symmetric: bool,
}

#[derive(Debug)]
struct PendingOffer {
    key: TransactionKey,
    is_invite: bool,
    cseq: u32,
    timer: Option<SessionTimer>,
}

/// Session-Expires and Supported of a request that may set up or refresh a session (RFC 4028 §9):
/// `Err(())` asks for 422, `Ok(None)` means no session timer.
pub(super) fn timer_requested(headers: &Headers) -> Result<Option<SessionTimer>, ()> {
    let peer_supports = lists_option(headers, "Supported", "timer") || lists_option(headers, "Require", "timer");
    let Some(value) = header_value(headers, "Session-Expires") else { return Ok(None) };
    let Some((interval, refresher)) = parse_session_expires(&value) else { return Ok(None) };
    if interval < MIN_SESSION_EXPIRES {
        return Err(());
    }
    // `refresher` is relative to this request: its UAC is the peer. A peer without timer support
    // cannot refresh, so we do.
    let we_refresh = !peer_supports || refresher.as_deref() == Some("uas");
    Ok(Some(SessionTimer { interval, we_refresh, peer_supports }))
}

/// The session timer a 2xx to our own INVITE or refresh settled on (RFC 4028 §7.2).
pub(super) fn timer_answered(headers: &Headers) -> Option<SessionTimer> {
    let (interval, refresher) = parse_session_expires(&header_value(headers, "Session-Expires")?)?;
    let we_refresh = refresher.as_deref() != Some("uas");
    Some(SessionTimer { interval, we_refresh, peer_supports: true })
}

fn parse_session_expires(value: &str) -> Option<(u32, Option<String>)> {
    let mut parts = value.split(';');
    let interval = parts.next()?.trim().parse::<u32>().ok()?;
    let refresher = parts
        .filter_map(|p| p.split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("refresher"))
        .map(|(_, v)| v.trim().to_ascii_lowercase());
    Some((interval, refresher))
}

/// A digit from an INFO body: `application/dtmf-relay` (`Signal=5`, `Duration=160`) or
/// `application/dtmf` (the bare digit).
pub fn parse_info_dtmf(content_type: &str, body: &str) -> Option<(char, u32)> {
    let media_type = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let (signal, duration) = match media_type.as_str() {
        "application/dtmf-relay" => {
            let field = |name: &str| {
                body.lines().filter_map(|l| l.split_once('=')).find(|(k, _)| k.trim().eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_string())
            };
            (field("Signal")?, field("Duration").and_then(|d| d.parse().ok()).unwrap_or(250))
        }
        "application/dtmf" => (body.trim().to_string(), 250),
        _ => return None,
    };
    let digit = match signal.as_str() {
        "10" => '*',
        "11" => '#',
        s if s.len() == 1 => s.chars().next()?.to_ascii_uppercase(),
        _ => return None,
    };
    "0123456789*#ABCD".contains(digit).then_some((digit, duration.clamp(40, 5_000)))
}

impl SipCore {
    /// The call whose dialog a request from the peer belongs to (To tag ours, From tag theirs).
    fn dialog_call(&self, call_id: &str, our_tag: &str, their_tag: &str) -> Option<SipCallId> {
        let matches = |d: &Option<Dialog>| d.as_ref().is_some_and(|d| d.matches(call_id, our_tag, their_tag));
        self.calls
            .iter()
            .find(|(_, c)| matches(&c.dialog))
            .map(|(id, _)| *id)
            .or_else(|| self.outbound.iter().find(|(_, c)| matches(&c.dialog)).map(|(id, _)| *id))
    }

    pub(super) fn established(&mut self, id: SipCallId) -> Option<(&mut Dialog, &mut DialogSession, Peer)> {
        if let Some(call) = self.calls.get_mut(&id) {
            let peer = call.peer;
            return Some((call.dialog.as_mut()?, &mut call.session, peer));
        }
        let call = self.outbound.get_mut(&id)?;
        let peer = call.peer?;
        Some((call.dialog.as_mut()?, &mut call.session, peer))
    }

    /// The INVITE transaction an ACK with a branch of its own acknowledges, found by dialog.
    pub(super) fn ack_target(&self, parsed: &ParsedRequest) -> Option<TransactionKey> {
        let (our_tag, their_tag) = (parsed.to.tag()?, parsed.from.tag()?);
        let id = self.dialog_call(&parsed.call_id, our_tag, their_tag)?;
        let session = self.calls.get(&id).map(|c| &c.session).or_else(|| self.outbound.get(&id).map(|c| &c.session))?;
        session.awaiting_ack.as_ref().filter(|(cseq, _)| *cseq == parsed.cseq).map(|(_, key)| key.clone())
    }

    /// Records that the 2xx just sent for `key` waits for an ACK, and arms the session timer.
    pub(super) fn dialog_answered(&mut self, id: SipCallId, cseq: u32, key: TransactionKey, now: Instant) {
        if let Some((_, session, _)) = self.established(id) {
            session.awaiting_ack = Some((cseq, key));
        }
        self.restart_session_timer(id, now);
    }

    pub(super) fn restart_session_timer(&mut self, id: SipCallId, now: Instant) {
        let Some((_, session, _)) = self.established(id) else { return };
        let Some(timer) = session.timer else {
            session.timer_due = None;
            return;
        };
        let due = timer.next_deadline(now);
        session.timer_due = Some(due);
        self.arm(TimerOwner::Session(id), Some(due));
    }

    /// The session timer of `id` fired (maybe a stale deadline): refresh, or end a dead session.
    pub(super) fn session_timer_fired(&mut self, id: SipCallId, now: Instant) {
        let Some((_, session, _)) = self.established(id) else { return };
        let (Some(timer), Some(due)) = (session.timer, session.timer_due) else { return };
        if due > now {
            return;
        }
        if timer.we_refresh {
            self.send_refresh(id, now);
            // If the refresh fails, the call ends on its answer; this only paces the next one.
            self.restart_session_timer(id, now);
        } else {
            tracing::info!(call = id, interval = timer.interval, "session expired without a refresh: BYE");
            self.end_dialog(id, now);
            self.events.push_back(CoreEvent::CallEnded { id, reason: CallEndReason::SessionExpired });
        }
    }

    /// Ends an answered call from our side, whichever way it was set up.
    fn end_dialog(&mut self, id: SipCallId, now: Instant) {
        if self.calls.contains_key(&id) {
            self.call_hangup(id, now);
        } else {
            self.outbound_hangup(id, now);
        }
    }

    /// A request inside a dialog other than BYE, ACK and CANCEL.
    pub(super) fn handle_in_dialog(&mut self, key: TransactionKey, parsed: ParsedRequest, now: Instant) {
        let found = match (parsed.to.tag(), parsed.from.tag()) {
            (Some(our_tag), Some(their_tag)) => self.dialog_call(&parsed.call_id, our_tag, their_tag),
            _ => None,
        };
        let Some(id) = found else { return self.respond(&key, 481, Vec::new(), Vec::new(), now) };
        let contact = contact_uri(&parsed.request.headers);
        let Some((dialog, session, _)) = self.established(id) else { return self.respond(&key, 481, Vec::new(), Vec::new(), now) };
        if let Err(e) = dialog.accept_remote_cseq(parsed.cseq) {
            return self.respond(&key, e.status(), Vec::new(), Vec::new(), now);
        }
        let headers = &parsed.request.headers;
        match parsed.method.as_str() {
            "INVITE" | "UPDATE" => {
                let is_invite = parsed.method == "INVITE";
                // RFC 3261 §14.2 / RFC 3311 §5.2: one offer at a time in each direction.
                if session.our_offer.is_some() {
                    return self.respond(&key, 491, Vec::new(), Vec::new(), now);
                }
                if session.pending_offer.is_some() {
                    let retry = make_header("Retry-After", "1".into());
                    return self.respond(&key, 500, vec![retry], Vec::new(), now);
                }
                let timer = match timer_requested(headers) {
                    Ok(timer) => timer,
                    Err(()) => {
                        let min_se = make_header("Min-SE", MIN_SESSION_EXPIRES.to_string());
                        return self.respond(&key, 422, vec![min_se], Vec::new(), now);
                    }
                };
                if let Some(contact) = contact {
                    dialog.update_remote_target(contact);
                }
                session.peer_allows_update |= lists_option(headers, "Allow", "UPDATE");
                let pending = PendingOffer { key: key.clone(), is_invite, cseq: parsed.cseq, timer };
                if parsed.request.body.iter().all(u8::is_ascii_whitespace) {
                    // A refresh, or an INVITE asking for our offer: our current SDP serves both.
                    let sdp = is_invite.then(|| session.local_sdp.clone());
                    session.pending_offer = Some(pending);
                    return self.call_reanswer(id, Ok(sdp.unwrap_or_default()), now);
                }
                session.pending_offer = Some(pending);
                if is_invite {
                    self.respond(&key, 100, Vec::new(), Vec::new(), now);
                }
                let sdp = String::from_utf8_lossy(&parsed.request.body).into_owned();
                self.events.push_back(CoreEvent::Dialog(DialogEvent::Reoffer { id, sdp }));
            }
            "INFO" => {
                let content_type = header_value(headers, "Content-Type").unwrap_or_default();
                let body = String::from_utf8_lossy(&parsed.request.body);
                match parse_info_dtmf(&content_type, &body) {
                    Some((digit, duration_ms)) => {
                        self.events.push_back(CoreEvent::Dialog(DialogEvent::Dtmf { id, digit, duration_ms }));
                        self.respond(&key, 200, Vec::new(), Vec::new(), now);
                    }
                    // An empty INFO is a keep-alive probe (RFC 6086 §4.2.2).
                    None if body.trim().is_empty() => self.respond(&key, 200, Vec::new(), Vec::new(), now),
                    None => self.respond(&key, 415, vec![crate::sip::uas_policy::accept_header()], Vec::new(), now),
                }
            }
            "OPTIONS" => {
                let headers = vec![crate::sip::uas_policy::allow_header(), crate::sip::uas_policy::supported_header()];
                self.respond(&key, 200, headers, Vec::new(), now)
            }
            "REFER" => self.handle_peer_refer(key, id, parsed.cseq, headers, now),
            "NOTIFY" => {
                // Progress of a transfer we asked for (RFC 3515 §2.4.5): the body is a sipfrag.
                let is_refer = super::refer::is_refer_event(headers);
                let status = String::from_utf8_lossy(&parsed.request.body).split_whitespace().nth(1).and_then(|s| s.parse::<u16>().ok());
                self.respond(&key, 200, Vec::new(), Vec::new(), now);
                if is_refer && status.is_some_and(|s| (200..300).contains(&s)) {
                    self.events.push_back(CoreEvent::Dialog(DialogEvent::Transferred { id }));
                }
            }
            _ => self.respond(&key, 405, vec![crate::sip::uas_policy::allow_header()], Vec::new(), now),
        }
    }

    /// The call layer's answer to a `Reoffer` (or our own answer to a refresh): 2xx with our SDP,
    /// or the status that refuses the offer (488, or 500 when the media cannot follow).
    pub fn call_reanswer(&mut self, id: SipCallId, answer: Result<String, u16>, now: Instant) {
        let Some((_, session, _)) = self.established(id) else { return };
        let Some(pending) = session.pending_offer.take() else { return };
        let sdp = match answer {
            Ok(sdp) => sdp,
            Err(status) => return self.respond(&pending.key, status, Vec::new(), Vec::new(), now),
        };
        let mut extra = vec![make_header("Contact", session.local_contact.clone()), crate::sip::uas_policy::allow_header()];
        // A refresh without Session-Expires ends the session timer (RFC 4028 §9).
        session.timer = pending.timer;
        if let Some(timer) = pending.timer {
            extra.push(timer.header(false));
            if timer.peer_supports {
                extra.push(make_header("Require", "timer".into()));
            }
        }
        let body = if sdp.is_empty() {
            Vec::new()
        } else {
            session.local_sdp = sdp.clone();
            extra.push(make_header("Content-Type", "application/sdp".into()));
            sdp.into_bytes()
        };
        if pending.is_invite {
            session.awaiting_ack = Some((pending.cseq, pending.key.clone()));
        }
        self.respond(&pending.key, 200, extra, body, now);
        self.restart_session_timer(id, now);
    }

    /// Sends our own offer to the peer (hold, resume): the answer comes back as
    /// `ReofferAnswered` or `ReofferRefused`.
    pub fn call_reoffer(&mut self, id: SipCallId, sdp: &str, now: Instant) -> Result<(), String> {
        let (_, session, _) = self.established(id).ok_or("the call is not answered")?;
        if session.our_offer.is_some() || session.pending_offer.is_some() {
            return Err("an offer is already in progress".into());
        }
        let timer = session.timer;
        let mut extra = vec![make_header("Content-Type", "application/sdp".into())];
        if let Some(timer) = timer {
            extra.extend([timer.header(true), make_header("Supported", "timer".into())]);
        }
        self.send_dialog_request(id, Method::Invite, extra, sdp.as_bytes().to_vec(), now).ok_or("the dialog has no target")?;
        if let Some((_, session, _)) = self.established(id) {
            session.our_offer = Some(true);
        }
        Ok(())
    }

    /// Blind transfer (RFC 3515): asks the peer to call `target` instead of us.
    pub fn call_refer(&mut self, id: SipCallId, target: &str, now: Instant) -> Result<(), String> {
        if target.is_empty() || !target.chars().all(|c| c.is_ascii_alphanumeric() || "+-_.*#".contains(c)) {
            return Err(format!("`{target}` is not a number or user name"));
        }
        let (dialog, session, _) = self.established(id).ok_or("the call is not answered")?;
        if session.refer_pending {
            return Err("a transfer is already in progress".into());
        }
        // The target is named in the peer's own domain, which is where it will route it.
        let host = syntax::uri_host(&dialog.remote_uri).unwrap_or_default().to_string();
        let local = dialog.local_uri.clone();
        let extra = vec![make_header("Refer-To", format!("<sip:{target}@{host}>")), make_header("Referred-By", format!("<{local}>"))];
        self.send_dialog_request(id, Method::Refer, extra, Vec::new(), now).ok_or("the dialog has no target")?;
        if let Some((_, session, _)) = self.established(id) {
            session.refer_pending = true;
        }
        Ok(())
    }

    /// A digit toward a peer that wants DTMF as SIP INFO (`application/dtmf-relay`), sent once
    /// the INFO before it has its final answer.
    pub fn call_info_dtmf(&mut self, id: SipCallId, digit: char, duration_ms: u32, now: Instant) {
        let Some((_, session, _)) = self.established(id) else { return };
        session.info_queue.push_back((digit, duration_ms));
        if !session.info_in_flight {
            self.send_next_info(id, now);
        }
    }

    fn send_next_info(&mut self, id: SipCallId, now: Instant) {
        let Some((_, session, _)) = self.established(id) else { return };
        let Some((digit, duration_ms)) = session.info_queue.pop_front() else {
            session.info_in_flight = false;
            return;
        };
        let body = format!("Signal={digit}\r\nDuration={duration_ms}\r\n").into_bytes();
        let extra = vec![make_header("Content-Type", "application/dtmf-relay".into())];
        let sent = self.send_dialog_request(id, Method::Info, extra, body, now).is_some();
        if let Some((_, session, _)) = self.established(id) {
            session.info_in_flight = sent;
        }
    }

    /// A session refresh from our side (RFC 4028 §7.4): UPDATE without a body where the peer
    /// allows it, else a re-INVITE repeating our SDP unchanged.
    fn send_refresh(&mut self, id: SipCallId, now: Instant) {
        let Some((_, session, _)) = self.established(id) else { return };
        let Some(timer) = session.timer else { return };
        let extra = vec![timer.header(true), make_header("Supported", "timer".into())];
        if session.peer_allows_update {
            let _ = self.send_dialog_request(id, Method::Update, extra, Vec::new(), now);
        } else if session.our_offer.is_none() && session.pending_offer.is_none() {
            let sdp = session.local_sdp.clone().into_bytes();
            let mut extra = extra;
            extra.push(make_header("Content-Type", "application/sdp".into()));
            if self.send_dialog_request(id, Method::Invite, extra, sdp, now).is_some() {
                if let Some((_, session, _)) = self.established(id) {
                    session.our_offer = Some(false);
                }
            }
        }
    }

    /// Builds and sends a request in the dialog of `id` through a client transaction of its own.
    pub(super) fn send_dialog_request(&mut self, id: SipCallId, method: Method, extra: Vec<Header>, body: Vec<u8>, now: Instant) -> Option<u64> {
        let (branch_id, branch) = self.new_branch();
        let product = self.config.product.clone();
        let timers = self.config.timers;
        let (dialog, session, peer) = self.established(id)?;
        let target = dialog.request_target();
        let uri = rsipstack::sip::Uri::try_from(target.request_uri.as_str()).ok()?;
        let cseq = dialog.next_local_cseq();
        let host = if peer.local.ip().is_unspecified() { peer.remote.ip() } else { peer.local.ip() };
        let host = if host.is_ipv6() { format!("[{host}]") } else { host.to_string() };
        let mut headers = vec![
            make_header("Via", format!("SIP/2.0/{} {host}:{};branch={branch};rport", peer.transport.via_name(), peer.local.port())),
            make_header("Max-Forwards", "70".into()),
            make_header("From", format!("<{}>;tag={}", dialog.local_uri, dialog.id.local_tag)),
            make_header("To", format!("<{}>;tag={}", dialog.remote_uri, dialog.id.remote_tag)),
            make_header("Call-ID", dialog.id.call_id.clone()),
            make_header("CSeq", format!("{cseq} {method}")),
        ];
        headers.extend(target.routes.iter().map(|r| make_header("Route", r.clone())));
        if matches!(method, Method::Invite | Method::Update | Method::Refer | Method::Notify) {
            headers.push(make_header("Contact", session.local_contact.clone()));
            headers.push(crate::sip::uas_policy::allow_header());
        }
        headers.extend(extra);
        headers.push(make_header("User-Agent", product));
        headers.push(make_header("Content-Length", body.len().to_string()));
        let request = Request { method, uri, version: Version::V2, headers: Headers(headers), body };
        let bytes = Bytes::from(request.to_bytes());
        let reliability = if peer.transport.is_reliable() { Reliability::Reliable } else { Reliability::Unreliable };
        let destination = dialog_destination(dialog, &target, session.symmetric, peer.remote);
        let route = Route::Request { transport: peer.transport, to: destination, branch_id };
        let machine = if method == Method::Invite {
            session.last_invite = Some(request);
            ClientMachine::Invite(ClientInvite::new(bytes, reliability, timers, now))
        } else {
            ClientMachine::NonInvite(ClientNonInvite::new(bytes, reliability, timers, now))
        };
        let purpose = Purpose::Dialog { id };
        self.client_transactions.insert(branch_id, ClientTransaction { machine, route, purpose, sent_at: now });
        self.drain_client(branch_id, now);
        Some(branch_id)
    }

    /// The ACK that an error answer to our re-INVITE needs, inside its transaction.
    pub(super) fn dialog_ack_for_error(&self, id: SipCallId, response: &ParsedResponse) -> Option<Bytes> {
        let session = self.calls.get(&id).map(|c| &c.session).or_else(|| self.outbound.get(&id).map(|c| &c.session))?;
        let invite = session.last_invite.as_ref()?;
        let to = response.response.headers.iter().find(|h| matches!(h, Header::To(_)))?.value();
        Some(Bytes::from(build_ack(invite, to, response.cseq, AckTransaction::TheInvites).to_bytes()))
    }

    /// A final answer to our re-INVITE, UPDATE or refresh.
    pub(super) fn dialog_response(&mut self, id: SipCallId, parsed: &ParsedResponse, now: Instant) {
        if parsed.cseq_method.eq_ignore_ascii_case("INFO") && parsed.status >= 200 {
            self.send_next_info(id, now);
        }
        if parsed.cseq_method.eq_ignore_ascii_case("REFER") {
            if parsed.status >= 200 {
                if let Some((_, session, _)) = self.established(id) {
                    session.refer_pending = false;
                }
                self.events.push_back(CoreEvent::Dialog(DialogEvent::ReferAnswered { id, status: parsed.status }));
            }
            return;
        }
        let is_invite = parsed.cseq_method.eq_ignore_ascii_case("INVITE");
        let Some((dialog, session, peer)) = self.established(id) else { return };
        if is_invite && parsed.status >= 200 && parsed.status < 300 {
            // A 2xx to a re-INVITE refreshes the target (RFC 3261 §12.2.1.2), and the ACK goes there.
            if let Some(contact) = contact_uri(&parsed.response.headers) {
                dialog.update_remote_target(contact);
            }
            // Every 2xx (retransmissions too) gets its ACK, a transaction of its own.
            let target = dialog.request_target();
            let destination = dialog_destination(dialog, &target, session.symmetric, peer.remote);
            let to = parsed.response.headers.iter().find(|h| matches!(h, Header::To(_))).map(|h| h.value().to_string()).unwrap_or_default();
            if let Some(ack) = session.last_invite.as_ref().and_then(|invite| ack_for_2xx(invite, &to, parsed.cseq, &target)) {
                let route = Route::Request { transport: peer.transport, to: destination, branch_id: 0 };
                self.transmits.push_back(super::Transmit { route, bytes: Bytes::from(ack.to_bytes()) });
            }
        }
        if parsed.status < 200 {
            return;
        }
        let Some((_, session, _)) = self.established(id) else { return };
        let ours = is_invite && session.our_offer.take() == Some(true);
        let offered = if is_invite { session.last_invite.as_ref().map(|r| r.body.clone()) } else { None };
        match parsed.status {
            200..=299 => {
                if let Some(timer) = timer_answered(&parsed.response.headers) {
                    session.timer = Some(timer);
                }
                if let Some(offered) = offered.filter(|b| !b.is_empty()) {
                    session.local_sdp = String::from_utf8_lossy(&offered).into_owned();
                }
                if ours {
                    let sdp = String::from_utf8_lossy(&parsed.response.body).into_owned();
                    self.events.push_back(CoreEvent::Dialog(DialogEvent::ReofferAnswered { id, sdp }));
                }
                self.restart_session_timer(id, now);
            }
            // The dialog or the peer is gone (RFC 5057): the call is over.
            408 | 481 => {
                tracing::info!(call = id, status = parsed.status, "in-dialog request found no session: ending the call");
                self.end_dialog(id, now);
                self.events.push_back(CoreEvent::CallEnded { id, reason: CallEndReason::RemoteHangup });
            }
            status => {
                if ours {
                    self.events.push_back(CoreEvent::Dialog(DialogEvent::ReofferRefused { id, status }));
                }
            }
        }
    }

    /// Our in-dialog request got no answer at all: like a 408.
    pub(super) fn dialog_request_failed(&mut self, id: SipCallId, now: Instant) {
        if self.established(id).is_none() {
            return;
        }
        tracing::info!(call = id, "in-dialog request timed out: ending the call");
        self.end_dialog(id, now);
        self.events.push_back(CoreEvent::CallEnded { id, reason: CallEndReason::RemoteHangup });
    }
}
