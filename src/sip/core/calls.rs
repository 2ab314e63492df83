//! Calls on the SIP side, as the call layer sees them: an INVITE that passed the trust gate becomes
//! an `IncomingCall`; the call layer answers it (ringing, answer, reject) and either side ends it
//! (BYE, CANCEL). The SIP dialog (tags, CSeq, route set, remote target) is kept here.

use super::{CoreEvent, SipCore};
use crate::sip::dialog::Dialog;
use crate::sip::message::ParsedRequest;
use crate::sip::syntax::{self, NameAddr};
use crate::sip::transaction::TransactionKey;
use super::in_dialog::{timer_requested, DialogSession, MIN_SESSION_EXPIRES};
use super::uas::CallerIdentity;
use crate::sip::Peer;
use rsipstack::sip::headers::make_header;
use rsipstack::sip::{Header, Method};
use std::net::SocketAddr;
use std::time::Instant;

pub type SipCallId = u64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingCall {
    pub id: SipCallId,
    pub identity: CallerIdentity,
    pub from_uri: String,
    pub from_display: Option<String>,
    /// The user part of the Request-URI: who is being called.
    pub to_user: String,
    pub sdp: String,
    pub source: SocketAddr,
    pub sip_call_id: String,
    /// The caller's User-Agent, for the call record.
    pub user_agent: Option<String>,
    /// The live bindings of `to_user` when the INVITE came in: the call layer routes by them
    /// without asking the endpoint again.
    pub to_bindings: Vec<super::BindingView>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallEndReason {
    /// The caller sent CANCEL before we answered.
    Cancelled,
    /// The far end sent BYE.
    RemoteHangup,
    /// Our 2xx was never acknowledged.
    NoAck,
    /// The peer stopped refreshing the session (RFC 4028): we sent BYE.
    SessionExpired,
}

pub(super) struct SipCall {
    pub(super) invite: TransactionKey,
    pub(super) peer: Peer,
    request_uri_host: String,
    /// The caller sent `Require: 100rel`: our 180 goes reliably (RFC 3262).
    pub(super) requires_100rel: bool,
    pub(super) reliable: Option<super::reliable::ReliableRinging>,
    pub(super) dialog: Option<Dialog>,
    pub(super) session: DialogSession,
}

impl SipCore {
    /// Hands a gated INVITE to the call layer instead of answering it here.
    pub(super) fn offer_call(&mut self, key: TransactionKey, parsed: &ParsedRequest, peer: Peer, identity: CallerIdentity, now: Instant) {
        let Ok(timer) = timer_requested(&parsed.request.headers) else {
            let min_se = make_header("Min-SE", MIN_SESSION_EXPIRES.to_string());
            return self.respond(&key, 422, vec![min_se], Vec::new(), now);
        };
        let mut session = DialogSession::default();
        session.timer = timer;
        session.symmetric = true;
        session.peer_allows_update = super::routing::lists_option(&parsed.request.headers, "Allow", "UPDATE");
        let id = self.next_call_id;
        self.next_call_id += 1;
        let uri = parsed.request_uri.clone();
        let to_user = syntax::uri_user(&uri).unwrap_or_default().to_string();
        let to_bindings = self.bindings_of(&to_user, now);
        let request_uri_host = syntax::uri_host(&uri).unwrap_or_default().to_string();
        let requires_100rel = super::routing::lists_option(&parsed.request.headers, "Require", "100rel");
        self.calls.insert(id, SipCall { invite: key, peer, request_uri_host, requires_100rel, reliable: None, dialog: None, session });
        self.admitted = Some(parsed.call_id.clone());
        self.events.push_back(CoreEvent::IncomingCall(IncomingCall {
            id,
            identity,
            // Shown to browsers and kept in records: a password in it (`sip:user:pw@`) is not.
            from_uri: crate::sip::mask::mask_uri(&parsed.from.uri),
            from_display: parsed.from.display_name.clone(),
            to_user,
            to_bindings,
            sdp: String::from_utf8_lossy(&parsed.request.body).into_owned(),
            source: peer.remote,
            sip_call_id: parsed.call_id.clone(),
            user_agent: parsed.request.headers.iter().find(|h| matches!(h, Header::UserAgent(_))).map(|h| h.value().chars().take(200).collect()),
        }));
    }

    pub fn call_ringing(&mut self, id: SipCallId, now: Instant) {
        let Some(call) = self.calls.get(&id) else { return };
        if call.requires_100rel {
            return self.ring_reliably(id, now);
        }
        // The 180 carries a To tag, so it sets up an early dialog, which needs our Contact
        // (RFC 3261 §12.1.1): SIP.js drops a 180 without one.
        let (key, contact) = (call.invite.clone(), call.our_contact());
        self.respond(&key, 180, vec![make_header("Contact", contact)], Vec::new(), now);
    }

    pub fn call_reject(&mut self, id: SipCallId, status: u16, now: Instant) {
        if let Some(call) = self.calls.remove(&id) {
            // Overload: tell the caller when to come back (RFC 3261 §21.5.4).
            let extra = if status == 503 { vec![make_header("Retry-After", "30".into())] } else { Vec::new() };
            self.respond(&call.invite, status, extra, Vec::new(), now);
        }
    }

    /// Answers with our SDP and sets up the dialog (RFC 3261 §12.1.1).
    pub fn call_answer(&mut self, id: SipCallId, sdp: &str, now: Instant) -> Result<(), String> {
        if self.hold_answer_for_prack(id, sdp) {
            return Ok(());
        }
        let call = self.calls.get(&id).ok_or("no such call")?;
        let tx = self.server_transactions.get(&call.invite).ok_or("the INVITE transaction is gone")?;
        let headers = &tx.request_headers;
        let find = |test: fn(&Header) -> bool| headers.iter().find(|h| test(h)).map(|h| h.value().to_string());
        let from = find(|h| matches!(h, Header::From(_))).and_then(|v| NameAddr::parse(&v).ok()).ok_or("no From")?;
        let to = find(|h| matches!(h, Header::To(_))).and_then(|v| NameAddr::parse(&v).ok()).ok_or("no To")?;
        let call_id = find(|h| matches!(h, Header::CallId(_))).ok_or("no Call-ID")?;
        let cseq = find(|h| matches!(h, Header::CSeq(_))).and_then(|v| syntax::parse_cseq(&v).ok()).map(|(n, _)| n).unwrap_or(1);
        let contact = find(|h| matches!(h, Header::Contact(_)))
            .and_then(|v| syntax::split_values(&v).first().and_then(|c| NameAddr::parse(c).ok()))
            .map(|c| c.uri)
            .unwrap_or_else(|| from.uri.clone());
        let record_route = super::routing::record_route_values(headers);
        let local_tag = tx.to_tag.clone();
        let remote_tag = from.tag().unwrap_or_default().to_string();
        let our_contact = call.our_contact();
        let dialog = Dialog::new_uas(call_id, local_tag, remote_tag, to.uri, from.uri, contact, record_route, cseq, false);
        let key = call.invite.clone();
        let mut extra = vec![
            make_header("Contact", our_contact.clone()),
            make_header("Content-Type", "application/sdp".into()),
            crate::sip::uas_policy::allow_header(),
            crate::sip::uas_policy::supported_header(),
        ];
        if let Some(timer) = call.session.timer {
            extra.push(timer.header(false));
            if timer.peer_supports {
                extra.push(make_header("Require", "timer".into()));
            }
        }
        self.respond(&key, 200, extra, sdp.as_bytes().to_vec(), now);
        if let Some(call) = self.calls.get_mut(&id) {
            call.dialog = Some(dialog);
            call.session.local_sdp = sdp.to_string();
            call.session.local_contact = our_contact;
        }
        self.dialog_answered(id, cseq, key, now);
        Ok(())
    }

    /// Ends an answered call from our side: BYE to the far end.
    pub fn call_hangup(&mut self, id: SipCallId, now: Instant) {
        let Some(call) = self.calls.get(&id) else { return };
        if call.dialog.is_none() {
            // Not answered yet: the caller learns with a final response.
            let invite = call.invite.clone();
            self.calls.remove(&id);
            return self.respond(&invite, 480, Vec::new(), Vec::new(), now);
        }
        // To the route set's first hop, or where the caller's packets really came from.
        let _ = self.send_dialog_request(id, Method::Bye, Vec::new(), Vec::new(), now);
        self.calls.remove(&id);
    }

    /// In-dialog BYE from the far end.
    pub(super) fn handle_bye(&mut self, key: &TransactionKey, parsed: &ParsedRequest, now: Instant) -> bool {
        let (Some(our_tag), Some(their_tag)) = (parsed.to.tag(), parsed.from.tag()) else { return false };
        let found = self
            .calls
            .iter()
            .find(|(_, c)| c.dialog.as_ref().is_some_and(|d| d.matches(&parsed.call_id, our_tag, their_tag)))
            .map(|(id, _)| *id);
        let Some(id) = found.or_else(|| self.outbound_bye(&parsed.call_id, our_tag, their_tag)) else { return false };
        self.calls.remove(&id);
        self.respond(key, 200, Vec::new(), Vec::new(), now);
        self.events.push_back(CoreEvent::CallEnded { id, reason: CallEndReason::RemoteHangup });
        true
    }

    /// CANCEL matched a pending INVITE: tell the call layer.
    pub(super) fn call_cancelled(&mut self, invite: &TransactionKey) {
        let found = self.calls.iter().find(|(_, c)| &c.invite == invite && c.dialog.is_none()).map(|(id, _)| *id);
        if let Some(id) = found {
            self.calls.remove(&id);
            self.events.push_back(CoreEvent::CallEnded { id, reason: CallEndReason::Cancelled });
        }
    }

    /// Timer L expired without an ACK for our 2xx (RFC 6026): the call never really started.
    pub(super) fn call_not_acknowledged(&mut self, invite: &TransactionKey) {
        let found = self.calls.iter().find(|(_, c)| &c.invite == invite).map(|(id, _)| *id);
        if let Some(id) = found {
            self.calls.remove(&id);
            self.events.push_back(CoreEvent::CallEnded { id, reason: CallEndReason::NoAck });
        }
    }
}

impl SipCall {
    /// Our Contact for this call's dialog: the address the caller reached us on.
    pub(super) fn our_contact(&self) -> String {
        let our_host = if self.peer.local.ip().is_unspecified() { self.request_uri_host.clone() } else { self.peer.local.ip().to_string() };
        let transport = self.peer.transport;
        let transport_param = if transport.is_reliable() { format!(";transport={}", transport.via_name().to_ascii_lowercase()) } else { String::new() };
        format!("<sip:sipbridge@{}:{}{transport_param}>", bracket(&our_host), self.peer.local.port())
    }
}

fn bracket(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}
