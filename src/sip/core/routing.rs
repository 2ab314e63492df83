//! Where requests inside a dialog go (RFC 3261 §12): the route set read from Record-Route, the
//! next hop of each request, the ACK of a 2xx built like any in-dialog request, and the header
//! readers the dialog code shares.

use super::outbound::{build_ack, AckTransaction};
use crate::sip::dialog::{Dialog, RequestTarget};
use crate::sip::syntax::{self, NameAddr};
use rsipstack::sip::headers::make_header;
use rsipstack::sip::{Header, Headers, Request};
use std::net::SocketAddr;

/// Every Record-Route value of a message, in order, one name-addr each.
pub(super) fn record_route_values(headers: &Headers) -> Vec<String> {
    headers
        .iter()
        .filter(|h| matches!(h, Header::RecordRoute(_)))
        .flat_map(|h| syntax::split_values(h.value()).into_iter().map(str::to_string).collect::<Vec<_>>())
        .collect()
}

/// Where a request inside a dialog goes (RFC 3261 §12.2.1.1, §8.1.2): the first route when
/// there is a route set, else the remote target, or the peer's own flow for a symmetric dialog.
/// A host name is not resolved here: the flow the dialog was set up on serves instead.
pub(super) fn dialog_destination(dialog: &Dialog, target: &RequestTarget, symmetric: bool, flow: SocketAddr) -> SocketAddr {
    if dialog.route_set.is_empty() && symmetric {
        return flow;
    }
    target.next_hop_address().filter(|hop| hop.is_ipv4() == flow.is_ipv4()).unwrap_or(flow)
}

/// The ACK for a 2xx (RFC 3261 §13.2.2.4): a request of the dialog, to its target with its
/// route set, in a transaction of its own.
pub(super) fn ack_for_2xx(invite: &Request, to: &str, cseq: u32, target: &RequestTarget) -> Option<Request> {
    let mut ack = build_ack(invite, to, cseq, AckTransaction::ItsOwn);
    ack.uri = rsipstack::sip::Uri::try_from(target.request_uri.as_str()).ok()?;
    let mut headers = Headers::default();
    for header in ack.headers.iter() {
        if matches!(header, Header::To(_)) {
            for route in &target.routes {
                headers.push(make_header("Route", route.clone()));
            }
        }
        headers.push(header.clone());
    }
    ack.headers = headers;
    Some(ack)
}

/// The URI of a message's first Contact.
pub(super) fn contact_uri(headers: &Headers) -> Option<String> {
    header_value(headers, "Contact").and_then(|v| syntax::split_values(&v).first().and_then(|c| NameAddr::parse(c).ok())).map(|c| c.uri)
}

pub(super) fn header_value(headers: &Headers, name: &str) -> Option<String> {
    headers.iter().find(|h| h.name().eq_ignore_ascii_case(name)).map(|h| h.value().trim().to_string())
}

pub(super) fn lists_option(headers: &Headers, name: &str, option: &str) -> bool {
    headers
        .iter()
        .filter(|h| h.name().eq_ignore_ascii_case(name))
        .any(|h| h.value().split(',').any(|t| t.trim().eq_ignore_ascii_case(option)))
}
