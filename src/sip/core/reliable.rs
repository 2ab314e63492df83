//! Reliable provisional responses (RFC 3262), both ways. As UAS we ring reliably only when the
//! caller requires it, retransmit the 180 until its PRACK, and hold our 2xx until then so the
//! caller sees them in order. As UAC we advertise `100rel` and PRACK every new reliable 1xx.

use super::calls::{CallEndReason, SipCallId};
use super::routing::{contact_uri, dialog_destination, header_value, lists_option, record_route_values};
use crate::sip::dialog::Dialog;
use super::upstream::Purpose;
use super::{ClientMachine, ClientTransaction, CoreEvent, Route, SipCore, TimerOwner};
use crate::sip::message::{ParsedRequest, ParsedResponse};
use crate::sip::syntax;
use crate::sip::transaction::{ClientNonInvite, Reliability, TransactionKey};
use bytes::Bytes;
use rsipstack::sip::headers::make_header;
use rsipstack::sip::{Header, Headers, Method, Request, Version};
use std::time::{Duration, Instant};

/// The RSeq of our only reliable provisional (the 180) in a call.
const RINGING_RSEQ: u32 = 1;

#[derive(Debug)]
pub(super) struct ReliableRinging {
    interval: Duration,
    next_at: Instant,
    give_up_at: Instant,
    /// Our 2xx, held until the PRACK arrives.
    held_answer: Option<String>,
}

impl SipCore {
    pub(super) fn ring_reliably(&mut self, id: SipCallId, now: Instant) {
        let t1 = self.config.timers.t1;
        let Some(call) = self.calls.get_mut(&id) else { return };
        if call.reliable.is_none() {
            call.reliable = Some(ReliableRinging { interval: t1, next_at: now + t1, give_up_at: now + t1 * 64, held_answer: None });
        }
        let (key, contact) = (call.invite.clone(), call.our_contact());
        let extra = vec![make_header("Require", "100rel".into()), make_header("RSeq", RINGING_RSEQ.to_string()), make_header("Contact", contact)];
        self.respond(&key, 180, extra, Vec::new(), now);
        self.arm(TimerOwner::Reliable(id), Some(now + t1));
    }

    /// True when the answer must wait for the PRACK of our reliable 180; it goes out then.
    pub(super) fn hold_answer_for_prack(&mut self, id: SipCallId, sdp: &str) -> bool {
        match self.calls.get_mut(&id).and_then(|c| c.reliable.as_mut()) {
            Some(reliable) => {
                reliable.held_answer = Some(sdp.to_string());
                true
            }
            None => false,
        }
    }

    pub(super) fn reliable_timer_fired(&mut self, id: SipCallId, now: Instant) {
        let Some(reliable) = self.calls.get_mut(&id).and_then(|c| c.reliable.as_mut()) else { return };
        if reliable.next_at > now {
            return;
        }
        if now >= reliable.give_up_at {
            // RFC 3262 §3: no PRACK in 64*T1, the request is rejected with a 5xx.
            tracing::info!(call = id, "no PRACK for our reliable 180: 500");
            self.call_reject(id, 500, now);
            self.events.push_back(CoreEvent::CallEnded { id, reason: CallEndReason::NoAck });
            return;
        }
        reliable.interval *= 2;
        reliable.next_at = (now + reliable.interval).min(reliable.give_up_at);
        let next = reliable.next_at;
        let Some(call) = self.calls.get(&id) else { return };
        let (key, contact) = (call.invite.clone(), call.our_contact());
        let extra = vec![make_header("Require", "100rel".into()), make_header("RSeq", RINGING_RSEQ.to_string()), make_header("Contact", contact)];
        self.respond(&key, 180, extra, Vec::new(), now);
        self.arm(TimerOwner::Reliable(id), Some(next));
    }

    /// PRACK for our reliable 180: it names the INVITE by RAck and our To tag.
    pub(super) fn handle_prack(&mut self, key: TransactionKey, parsed: &ParsedRequest, now: Instant) {
        let rack = header_value(&parsed.request.headers, "RAck").unwrap_or_default();
        let mut fields = rack.split_whitespace();
        let (rseq, cseq) = (fields.next().and_then(|f| f.parse::<u32>().ok()), fields.next().and_then(|f| f.parse::<u32>().ok()));
        let our_tag = parsed.to.tag().unwrap_or_default();
        let found = self
            .calls
            .iter()
            .find(|(_, c)| {
                c.reliable.is_some()
                    && self.server_transactions.get(&c.invite).is_some_and(|tx| {
                        tx.to_tag == our_tag && invite_call_id(&tx.request_headers) == Some(parsed.call_id.as_str()) && invite_cseq(&tx.request_headers) == cseq
                    })
            })
            .map(|(id, _)| *id);
        let Some(id) = found.filter(|_| rseq == Some(RINGING_RSEQ)) else {
            return self.respond(&key, 481, Vec::new(), Vec::new(), now);
        };
        self.respond(&key, 200, Vec::new(), Vec::new(), now);
        let held = self.calls.get_mut(&id).and_then(|c| c.reliable.take()).and_then(|r| r.held_answer);
        if let Some(sdp) = held {
            if let Err(e) = self.call_answer(id, &sdp, now) {
                tracing::warn!(call = id, error = %e, "could not send the answer held for the PRACK");
            }
        }
    }

    /// A reliable provisional answer to a call we placed gets its PRACK (RFC 3262 §4).
    pub(super) fn prack_provisional(&mut self, id: SipCallId, parsed: &ParsedResponse, now: Instant) {
        let headers = &parsed.response.headers;
        if !lists_option(headers, "Require", "100rel") {
            return;
        }
        let Some(rseq) = header_value(headers, "RSeq").and_then(|v| v.parse::<u32>().ok()) else { return };
        let to = headers.iter().find(|h| matches!(h, Header::To(_))).map(|h| h.value().to_string()).unwrap_or_default();
        let (branch_id, branch) = self.new_branch();
        let Some(call) = self.outbound.get_mut(&id) else { return };
        let Route::Request { transport, to: flow, .. } = call.route else { return };
        // The PRACK rides the early dialog: the 1xx's Record-Route reversed, to its Contact.
        let remote_target = contact_uri(headers).unwrap_or_else(|| call.invite.uri.to_string());
        let early = Dialog::new_uac("", "", "", "", "", remote_target, record_route_values(headers), 0, false, true);
        let target = early.request_target();
        let destination = dialog_destination(&early, &target, call.session.symmetric, flow);
        let Ok(uri) = rsipstack::sip::Uri::try_from(target.request_uri.as_str()) else { return };
        if call.last_rseq.is_some_and(|last| rseq <= last) {
            return;
        }
        call.last_rseq = Some(rseq);
        call.prack_cseq = call.prack_cseq.max(call.cseq) + 1;
        let mut out = Headers::default();
        for header in call.invite.headers.iter() {
            match header {
                Header::Via(via) => out.push(make_header("Via", super::outbound::with_branch(via.value(), |_| branch.clone()))),
                Header::From(_) | Header::CallId(_) | Header::MaxForwards(_) => out.push(header.clone()),
                _ => {}
            }
        }
        for route in &target.routes {
            out.push(make_header("Route", route.clone()));
        }
        out.push(make_header("To", to));
        out.push(make_header("CSeq", format!("{} PRACK", call.prack_cseq)));
        out.push(make_header("RAck", format!("{rseq} {} INVITE", call.cseq)));
        out.push(make_header("Content-Length", "0".into()));
        let prack = Request { method: Method::PRack, uri, version: Version::V2, headers: out, body: Vec::new() };
        let route = Route::Request { transport, to: destination, branch_id };
        let reliability = if transport.is_reliable() { Reliability::Reliable } else { Reliability::Unreliable };
        let machine = ClientNonInvite::new(Bytes::from(prack.to_bytes()), reliability, self.config.timers, now);
        self.client_transactions.insert(branch_id, ClientTransaction { machine: ClientMachine::NonInvite(machine), route, purpose: Purpose::InDialog, sent_at: now });
        self.drain_client(branch_id, now);
    }
}

fn invite_call_id(headers: &Headers) -> Option<&str> {
    headers.iter().find(|h| matches!(h, Header::CallId(_))).map(|h| h.value().trim())
}

fn invite_cseq(headers: &Headers) -> Option<u32> {
    headers.iter().find(|h| matches!(h, Header::CSeq(_))).and_then(|h| syntax::parse_cseq(h.value()).ok()).map(|(n, _)| n)
}
