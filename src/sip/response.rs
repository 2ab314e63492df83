//! Building responses from the request they answer, and routing them back (RFC 3261 §8.2.6, §18.2.2,
//! RFC 3581).

use super::syntax::{self, ViaValue};
use super::Peer;
use rsipstack::sip::headers::make_header;
use rsipstack::sip::{Header, Headers, Response, StatusCode, Version};
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};

/// RFC 3261 §18.2.1 and RFC 3581 §4: the server notes where a request really came from in its top
/// Via, so every response (and every retransmission) is routed back the same way.
pub fn stamp_received(headers: &mut Headers, source: SocketAddr) {
    let Some(header) = headers.iter_mut().find(|h| matches!(h, Header::Via(_))) else { return };
    let values = syntax::split_values(header.value()).into_iter().map(str::to_string).collect::<Vec<_>>();
    let Some(first) = values.first() else { return };
    let Ok(mut via) = ViaValue::parse(first) else { return };
    let host_ip = via.host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().ok();
    if host_ip != Some(source.ip()) {
        set_param(&mut via, "received", Some(source.ip().to_string()));
    } else {
        // A `received` the sender wrote itself must never steer our answers to a third party.
        via.params.retain(|(name, _)| name != "received");
    }
    if syntax::param(&via.params, "rport").is_some() {
        set_param(&mut via, "rport", Some(source.port().to_string()));
    }
    let mut rewritten = vec![via.to_string()];
    rewritten.extend(values.into_iter().skip(1));
    *header = make_header("Via", rewritten.join(", "));
}

fn set_param(via: &mut ViaValue, name: &str, value: Option<String>) {
    match via.params.iter_mut().find(|(n, _)| n == name) {
        Some(slot) => slot.1 = value,
        None => via.params.push((name.to_string(), value)),
    }
}

/// Where a response to a request with this (already stamped) top Via goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseRoute {
    /// Back on the stream the request arrived on.
    Connection(Peer),
    /// A UDP datagram to this address, sent from the socket the request arrived on.
    Datagram { from: SocketAddr, to: SocketAddr },
}

pub fn response_route(top_via: &ViaValue, peer: &Peer) -> ResponseRoute {
    if peer.connection.is_some() {
        return ResponseRoute::Connection(*peer);
    }
    // maddr is ignored on purpose: honouring it lets anyone aim our responses at a third party.
    let ip = syntax::param(&top_via.params, "received")
        .flatten()
        .and_then(|r| r.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().ok())
        .unwrap_or(peer.remote.ip());
    let port = match syntax::param(&top_via.params, "rport") {
        Some(Some(port)) => port.parse().unwrap_or(peer.remote.port()),
        Some(None) => peer.remote.port(),
        None => top_via.port.unwrap_or(5060),
    };
    ResponseRoute::Datagram { from: peer.local, to: SocketAddr::new(ip, port) }
}

/// A To tag that is the same for every retransmission of the same request, so stateless answers
/// (to requests refused before a transaction exists) stay consistent.
pub fn stateless_tag(headers: &Headers) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for header in headers.iter() {
        if matches!(header, Header::Via(_) | Header::From(_) | Header::CallId(_) | Header::CSeq(_)) {
            header.value().hash(&mut hasher);
        }
    }
    format!("sb{:016x}", hasher.finish())
}

pub fn random_token(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// Standard reason phrases for the codes the gateway sends; rsipstack prints its own for known codes.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        483 => "Too Many Hops",
        487 => "Request Terminated",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "Version Not Supported",
        _ => "Unknown",
    }
}

/// Copies Via, From, To, Call-ID and CSeq from the request (RFC 3261 §8.2.6.2), adds our To tag to
/// anything but 100 Trying, then the extra headers, Server and Content-Length.
pub fn build(
    request_headers: &Headers,
    status: u16,
    to_tag: Option<&str>,
    extra: Vec<Header>,
    body: Vec<u8>,
    server: &str,
) -> Response {
    let mut headers = Headers::default();
    let creates_dialog = (101..300).contains(&status) && is_invite(request_headers);
    for header in request_headers.iter() {
        match header {
            Header::Via(_) | Header::From(_) | Header::CallId(_) | Header::CSeq(_) => headers.push(header.clone()),
            // RFC 3261 §12.1.1: proxies that record-routed must see their values again, in order,
            // or the caller's ACK and BYE carry no Route and a stateful proxy drops them.
            Header::RecordRoute(_) if creates_dialog => headers.push(header.clone()),
            Header::To(to) => {
                let value = to.value().to_string();
                let has_tag = syntax::NameAddr::parse(&value).map(|n| n.tag().is_some()).unwrap_or(true);
                match to_tag {
                    Some(tag) if status > 100 && !has_tag => headers.push(make_header("To", format!("{value};tag={tag}"))),
                    _ => headers.push(header.clone()),
                }
            }
            _ => {}
        }
    }
    headers.extend(extra);
    headers.push(make_header("Server", server.to_string()));
    headers.push(make_header("Content-Length", body.len().to_string()));
    Response {
        status_code: StatusCode::from(status),
        wire_reason: None,
        version: Version::V2,
        headers,
        body,
    }
}

fn is_invite(headers: &Headers) -> bool {
    headers
        .iter()
        .find(|h| matches!(h, Header::CSeq(_)))
        .and_then(|h| syntax::parse_cseq(h.value()).ok())
        .is_some_and(|(_, method)| method.eq_ignore_ascii_case("INVITE"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::TransportKind;

    fn headers(via: &str) -> Headers {
        let mut h = Headers::default();
        h.push(make_header("Via", via.to_string()));
        h.push(make_header("From", "<sip:a@example.com>;tag=1".into()));
        h.push(make_header("To", "<sip:b@example.com>".into()));
        h.push(make_header("Call-ID", "abc".into()));
        h.push(make_header("CSeq", "1 OPTIONS".into()));
        h
    }

    fn udp_peer(remote: &str) -> Peer {
        Peer {
            transport: TransportKind::Udp,
            remote: remote.parse().expect("addr"),
            local: "127.0.0.1:5060".parse().expect("addr"),
            connection: None,
        }
    }

    #[test]
    fn received_and_rport_are_stamped_and_used() {
        let mut h = headers("SIP/2.0/UDP phone.example.com:5062;branch=z9hG4bK1;rport, SIP/2.0/UDP p2;branch=z9hG4bK2");
        stamp_received(&mut h, "192.0.2.7:40000".parse().expect("addr"));
        let via = h.iter().find(|x| matches!(x, Header::Via(_))).expect("via").value().to_string();
        assert!(via.starts_with("SIP/2.0/UDP phone.example.com:5062;branch=z9hG4bK1;rport=40000;received=192.0.2.7"), "{via}");
        assert!(via.ends_with(", SIP/2.0/UDP p2;branch=z9hG4bK2"), "{via}");
        let top = ViaValue::parse(syntax::split_values(&via)[0]).expect("top");
        let route = response_route(&top, &udp_peer("192.0.2.7:40000"));
        assert_eq!(route, ResponseRoute::Datagram { from: "127.0.0.1:5060".parse().expect("a"), to: "192.0.2.7:40000".parse().expect("a") });
    }

    #[test]
    fn a_sender_supplied_received_is_never_trusted() {
        let mut h = headers("SIP/2.0/UDP 192.0.2.7:5070;branch=z9hG4bK1;received=203.0.113.99;rport");
        stamp_received(&mut h, "192.0.2.7:40000".parse().expect("addr"));
        let via = h.iter().find(|x| matches!(x, Header::Via(_))).expect("via").value().to_string();
        assert!(!via.contains("203.0.113.99"), "{via}");
        let top = ViaValue::parse(&via).expect("top");
        let ResponseRoute::Datagram { to, .. } = response_route(&top, &udp_peer("192.0.2.7:40000")) else { panic!() };
        assert_eq!(to, "192.0.2.7:40000".parse::<std::net::SocketAddr>().expect("a"));
    }

    #[test]
    fn without_rport_the_sent_by_port_is_used() {
        let mut h = headers("SIP/2.0/UDP 192.0.2.7:5070;branch=z9hG4bK1");
        stamp_received(&mut h, "192.0.2.7:40000".parse().expect("addr"));
        let via = h.iter().find(|x| matches!(x, Header::Via(_))).expect("via").value().to_string();
        assert!(!via.contains("received"), "same IP needs no received: {via}");
        let top = ViaValue::parse(&via).expect("top");
        let ResponseRoute::Datagram { to, .. } = response_route(&top, &udp_peer("192.0.2.7:40000")) else { panic!() };
        assert_eq!(to, "192.0.2.7:5070".parse::<std::net::SocketAddr>().expect("a"));
    }

    #[test]
    fn dialog_creating_answers_carry_record_route_in_order() {
        let mut h = headers("SIP/2.0/UDP 192.0.2.7;branch=z9hG4bK1");
        h.retain(|x| !matches!(x, Header::CSeq(_)));
        h.push(make_header("CSeq", "1 INVITE".into()));
        h.push(make_header("Record-Route", "<sip:p2.example.com;lr>".into()));
        h.push(make_header("Record-Route", "<sip:p1.example.com;lr;ftag=x>, <sip:p0;lr>".into()));
        for status in [180, 200] {
            let text = String::from_utf8(build(&h, status, Some("t"), vec![], vec![], "s").to_bytes()).expect("utf8");
            let p2 = text.find("Record-Route: <sip:p2.example.com;lr>\r\n").expect("first value");
            let p1 = text.find("Record-Route: <sip:p1.example.com;lr;ftag=x>, <sip:p0;lr>\r\n").expect("second value");
            assert!(p2 < p1, "{text}");
        }
        for status in [100, 486] {
            let text = String::from_utf8(build(&h, status, Some("t"), vec![], vec![], "s").to_bytes()).expect("utf8");
            assert!(!text.contains("Record-Route"), "{status}: {text}");
        }
        let options = headers("SIP/2.0/UDP 192.0.2.7;branch=z9hG4bK1");
        assert!(!String::from_utf8(build(&options, 200, Some("t"), vec![], vec![], "s").to_bytes()).expect("utf8").contains("Record-Route"));
    }

    #[test]
    fn response_copies_headers_and_adds_tag() {
        let h = headers("SIP/2.0/UDP 192.0.2.7;branch=z9hG4bK1");
        let text = String::from_utf8(build(&h, 200, Some("xyz"), vec![], vec![], "sipbridge").to_bytes()).expect("utf8");
        assert!(text.starts_with("SIP/2.0 200 OK\r\n"), "{text}");
        assert!(text.contains("To: <sip:b@example.com>;tag=xyz\r\n"), "{text}");
        assert!(text.contains("Call-ID: abc\r\n") && text.contains("CSeq: 1 OPTIONS\r\n"), "{text}");
        assert!(text.ends_with("Content-Length: 0\r\n\r\n"), "{text}");
        let trying = String::from_utf8(build(&h, 100, Some("xyz"), vec![], vec![], "s").to_bytes()).expect("utf8");
        assert!(!trying.contains("tag=xyz"), "100 Trying carries no To tag");
    }
}
