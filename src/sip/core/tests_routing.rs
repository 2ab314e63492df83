//! Dialogs behind record-routing proxies (RFC 3261 §12), both roles, with a manual clock: the
//! route set, the remote target, and the address each in-dialog request is really sent to.

use super::tests::{core_with, header, pbx_profile, placed_invite, profiles, request, resolve, response_to, sent, status_line, udp_from, PBX};
use super::*;
use crate::config::OutboundProxy;

/// Where a request went: the address of its route.
fn destination(route: &Route) -> SocketAddr {
    match route {
        Route::Request { to, .. } | Route::Reply(crate::sip::response::ResponseRoute::Datagram { to, .. }) => *to,
        Route::Reply(crate::sip::response::ResponseRoute::Connection(peer)) => peer.remote,
    }
}

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("socket address")
}

fn routes(text: &str) -> Vec<&str> {
    text.lines().filter_map(|l| l.strip_prefix("Route: ")).collect()
}

/// A trunk INVITE that came through two record-routing proxies; the nearer one sent it to us.
#[test]
fn as_uas_record_route_is_echoed_and_our_requests_follow_the_route_set() {
    let t0 = Instant::now();
    let mut core = core_with(profiles(), t0);
    let rr = ["Record-Route: <sip:192.0.2.50:5060;lr;did=a1>".to_string(), "Record-Route: <sip:192.0.2.77:5070;lr>".to_string()];
    let invite = request("INVITE", "sip:bob@example.com", "sip:carrier@trunk", "z9hG4bKrr1", &rr);
    core.handle_inbound(&invite, udp_from("192.0.2.50:5060"), t0);
    let id = std::iter::from_fn(|| core.poll_event()).find_map(|e| if let CoreEvent::IncomingCall(c) = e { Some(c.id) } else { None }).expect("call");
    core.call_ringing(id, t0);
    core.call_answer(id, "v=0\r\n", t0).expect("answer");
    let out = sent(&mut core);
    for status in [180, 200] {
        let answer = &out.iter().find(|(_, t)| status_line(t) == status).expect("answer").1;
        let echoed: Vec<&str> = answer.lines().filter_map(|l| l.strip_prefix("Record-Route: ")).collect();
        assert_eq!(echoed, vec!["<sip:192.0.2.50:5060;lr;did=a1>", "<sip:192.0.2.77:5070;lr>"], "{status}: {answer}");
    }
    let to_tag = header(&out[out.len() - 1].1, "To").and_then(|t| t.split("tag=").nth(1)).expect("tag").to_string();
    // The caller's ACK, routed to us by the proxy.
    let ack = String::from_utf8_lossy(&invite)
        .replace("INVITE sip:bob@example.com", "ACK sip:sipbridge@127.0.0.1:5060")
        .replace("1 INVITE", "1 ACK")
        .replace("z9hG4bKrr1;", "z9hG4bKrr1ack;")
        .replace("To: <sip:bob@example.com>", &format!("To: <sip:bob@example.com>;tag={to_tag}"));
    core.handle_inbound(ack.as_bytes(), udp_from("192.0.2.50:5060"), t0);
    assert!(sent(&mut core).is_empty());

    core.call_hangup(id, t0);
    let out = sent(&mut core);
    let (route, bye) = &out[0];
    assert!(bye.starts_with("BYE sip:alice@192.0.2.1:5062 SIP/2.0"), "to the caller's Contact: {bye}");
    assert_eq!(routes(bye), vec!["<sip:192.0.2.50:5060;lr;did=a1>", "<sip:192.0.2.77:5070;lr>"], "the route set in request order");
    assert_eq!(destination(route), addr("192.0.2.50:5060"));
}

#[test]
fn as_uac_the_route_set_is_reversed_and_the_ack_and_bye_go_to_its_first_hop() {
    let t0 = Instant::now();
    let mut core = core_with(vec![], t0);
    let (id, invite) = placed_invite(&mut core, t0);
    let answer = [
        "Record-Route: <sip:192.0.2.90:5080;lr>".to_string(),
        "Record-Route: <sip:192.0.2.61:5062;lr;ftag=x>".to_string(),
        "Contact: <sip:callee@192.0.2.99:5090;transport=udp>".to_string(),
    ];
    let ok = response_to(&invite, 200, &answer);
    core.handle_inbound(&ok, udp_from(PBX), t0);
    let out = sent(&mut core);
    let (route, ack) = &out[0];
    assert!(ack.to_ascii_lowercase().starts_with("ack sip:callee@192.0.2.99:5090;transport=udp sip/2.0"), "ACK to the remote target: {ack}");
    assert_eq!(routes(ack), vec!["<sip:192.0.2.61:5062;lr;ftag=x>", "<sip:192.0.2.90:5080;lr>"], "reversed: {ack}");
    assert_eq!(destination(route), addr("192.0.2.61:5062"));
    // A retransmitted 2xx gets the same ACK, to the same hop.
    core.handle_inbound(&ok, udp_from(PBX), t0);
    let again = sent(&mut core);
    assert_eq!((destination(&again[0].0), again[0].1.as_str()), (destination(route), ack.as_str()));

    core.call_reoffer(id, "v=0\r\na=sendonly\r\n", t0).expect("reoffer");
    let (route, reinvite) = sent(&mut core).remove(0);
    assert!(reinvite.to_ascii_lowercase().starts_with("invite sip:callee@192.0.2.99:5090;transport=udp sip/2.0"), "{reinvite}");
    assert_eq!(routes(&reinvite).len(), 2);
    assert_eq!(destination(&route), addr("192.0.2.61:5062"));
    // Its 2xx moves the remote target; the ACK follows the route set to the new target.
    let ok2 = response_to(&reinvite, 200, &["Contact: <sip:callee@192.0.2.98:5094>".to_string()]);
    core.handle_inbound(&ok2, udp_from("192.0.2.61:5062"), t0);
    let (route, ack2) = sent(&mut core).remove(0);
    assert!(ack2.starts_with("ACK sip:callee@192.0.2.98:5094 SIP/2.0"), "{ack2}");
    assert_eq!((routes(&ack2).len(), header(&ack2, "CSeq")), (2, Some("2 ACK")), "{ack2}");
    assert_eq!(destination(&route), addr("192.0.2.61:5062"));

    core.outbound_hangup(id, t0);
    let (route, bye) = sent(&mut core).remove(0);
    assert!(bye.starts_with("BYE sip:callee@192.0.2.98:5094 SIP/2.0"), "{bye}");
    assert_eq!(routes(&bye), vec!["<sip:192.0.2.61:5062;lr;ftag=x>", "<sip:192.0.2.90:5080;lr>"]);
    assert_eq!(destination(&route), addr("192.0.2.61:5062"));
}

#[test]
fn as_uac_without_a_route_set_requests_go_to_the_contact() {
    let t0 = Instant::now();
    let mut core = core_with(vec![], t0);
    let (id, invite) = placed_invite(&mut core, t0);
    core.handle_inbound(&response_to(&invite, 200, &["Contact: <sip:callee@192.0.2.99:5090>".to_string()]), udp_from(PBX), t0);
    let (route, ack) = sent(&mut core).remove(0);
    assert!(ack.starts_with("ACK sip:callee@192.0.2.99:5090 SIP/2.0") && routes(&ack).is_empty(), "{ack}");
    assert_eq!(destination(&route), addr("192.0.2.99:5090"));
    core.outbound_hangup(id, t0);
    let (route, _) = sent(&mut core).remove(0);
    assert_eq!(destination(&route), addr("192.0.2.99:5090"));
}

#[test]
fn a_strict_router_gets_itself_as_request_uri_and_the_target_last() {
    let t0 = Instant::now();
    let mut core = core_with(vec![], t0);
    let (id, invite) = placed_invite(&mut core, t0);
    let answer = ["Record-Route: <sip:192.0.2.91:5066>".to_string(), "Contact: <sip:callee@192.0.2.99:5090>".to_string()];
    core.handle_inbound(&response_to(&invite, 200, &answer), udp_from(PBX), t0);
    let _ = sent(&mut core);
    core.outbound_hangup(id, t0);
    let (route, bye) = sent(&mut core).remove(0);
    assert!(bye.starts_with("BYE sip:192.0.2.91:5066 SIP/2.0"), "{bye}");
    assert_eq!(routes(&bye), vec!["<sip:callee@192.0.2.99:5090>"]);
    assert_eq!(destination(&route), addr("192.0.2.91:5066"));
}

#[test]
fn prack_rides_the_early_dialog_route_set() {
    let t0 = Instant::now();
    let mut core = core_with(vec![], t0);
    let (_, invite) = placed_invite(&mut core, t0);
    let mut ringing = String::from_utf8(response_to(&invite, 180, &[])).expect("utf8");
    let extra = "To: <sip:+15551234567@pbx.example.net>;tag=early\r\nRequire: 100rel\r\nRSeq: 1\r\n\
                 Record-Route: <sip:192.0.2.90:5080;lr>\r\nContact: <sip:callee@192.0.2.99:5090>\r\n";
    let to_line = format!("To: {}\r\n", header(&invite, "To").expect("To"));
    ringing = ringing.replace(&to_line, "").replace("Content-Length: 0", &format!("{}Content-Length: 0", extra));
    core.handle_inbound(ringing.as_bytes(), udp_from(PBX), t0);
    let (route, prack) = sent(&mut core).remove(0);
    assert!(prack.starts_with("PRACK sip:callee@192.0.2.99:5090 SIP/2.0"), "{prack}");
    assert_eq!(routes(&prack), vec!["<sip:192.0.2.90:5080;lr>"]);
    assert_eq!(destination(&route), addr("192.0.2.90:5080"));
}

#[test]
fn an_outbound_proxy_is_resolved_and_preloaded_as_route() {
    let t0 = Instant::now();
    let mut pbx = pbx_profile(600);
    pbx.register = false;
    pbx.outbound_proxy = OutboundProxy::parse("sip:192.0.2.60:5060;lr");
    let mut core = core_with(vec![pbx], t0);
    let asked: Vec<(String, u16)> = std::iter::from_fn(|| core.poll_event())
        .filter_map(|e| if let CoreEvent::Resolve { host, port, .. } = e { Some((host, port)) } else { None })
        .collect();
    assert_eq!(asked, vec![("192.0.2.60".to_string(), 5060)], "the proxy is resolved, not the peer");
    let resolved = ResolvedPeer { remote: addr(PBX), advertised: addr("127.0.0.1:5060") };
    core.handle_resolved("pbx", Ok(resolved), t0);
    let _ = resolve(&mut core, t0);
    core.place_call(Some("pbx"), "200", "alice", "v=0\r\n", t0).expect("placed");
    let (route, invite) = sent(&mut core).remove(0);
    assert!(invite.starts_with("INVITE sip:200@pbx.example.net:5060 SIP/2.0"), "{invite}");
    assert_eq!(routes(&invite), vec!["<sip:192.0.2.60:5060;lr>"]);
    assert_eq!(destination(&route), addr(PBX));
    assert_eq!(OutboundProxy::parse("proxy.example.net").map(|p| p.route()), Some("<sip:proxy.example.net:5060;lr>".into()));
    assert_eq!(OutboundProxy::parse("[2001:db8::1]:5070").map(|p| p.route()), Some("<sip:[2001:db8::1]:5070;lr>".into()));
    for bad in ["", "sip:a@b", "host:99999", "ho st", "[::1"] {
        assert_eq!(OutboundProxy::parse(bad), None, "{bad}");
    }
}

#[test]
fn a_target_refresh_from_the_peer_moves_the_remote_target() {
    let t0 = Instant::now();
    let mut core = core_with(profiles(), t0);
    let invite = request("INVITE", "sip:bob@example.com", "sip:carrier@trunk", "z9hG4bKtr1", &["Record-Route: <sip:192.0.2.50;lr>".to_string()]);
    core.handle_inbound(&invite, udp_from("192.0.2.50:5060"), t0);
    let id = std::iter::from_fn(|| core.poll_event()).find_map(|e| if let CoreEvent::IncomingCall(c) = e { Some(c.id) } else { None }).expect("call");
    core.call_answer(id, "v=0\r\n", t0).expect("answer");
    let ok = sent(&mut core).into_iter().map(|(_, t)| t).find(|t| status_line(t) == 200).expect("200");
    let tag = header(&ok, "To").and_then(|t| t.split("tag=").nth(1)).expect("tag").to_string();
    let update = String::from_utf8_lossy(&invite)
        .replace("INVITE sip:bob@example.com", "UPDATE sip:sipbridge@127.0.0.1")
        .replace("1 INVITE", "2 UPDATE")
        .replace("z9hG4bKtr1;", "z9hG4bKtr2;")
        .replace("Contact: <sip:alice@192.0.2.1:5062>", "Contact: <sip:alice@192.0.2.2:5064>")
        .replace("To: <sip:bob@example.com>", &format!("To: <sip:bob@example.com>;tag={tag}"));
    core.handle_inbound(update.as_bytes(), udp_from("192.0.2.50:5060"), t0);
    assert_eq!(sent(&mut core).iter().map(|(_, t)| status_line(t)).collect::<Vec<_>>(), vec![200]);
    core.call_hangup(id, t0);
    let (route, bye) = sent(&mut core).remove(0);
    assert!(bye.starts_with("BYE sip:alice@192.0.2.2:5064 SIP/2.0"), "{bye}");
    assert_eq!(destination(&route), addr("192.0.2.50:5060"), "the route set is unchanged");
}

#[test]
fn the_first_answer_names_the_peer_for_the_record() {
    let t0 = Instant::now();
    let mut core = core_with(vec![], t0);
    let (id, invite) = placed_invite(&mut core, t0);
    let _ = std::iter::from_fn(|| core.poll_event()).count();
    core.handle_inbound(&response_to(&invite, 180, &["Server: Acme PBX 9.1".to_string()]), udp_from(PBX), t0);
    core.handle_inbound(&response_to(&invite, 200, &["Server: Acme PBX 9.1".to_string(), "Contact: <sip:c@192.0.2.60>".to_string()]), udp_from(PBX), t0);
    let seen: Vec<OutboundEvent> = std::iter::from_fn(|| core.poll_event())
        .filter_map(|e| if let CoreEvent::Outbound(o @ OutboundEvent::PeerSeen { .. }) = e { Some(o) } else { None })
        .collect();
    assert_eq!(seen, vec![OutboundEvent::PeerSeen { id, remote: addr(PBX), user_agent: Some("Acme PBX 9.1".into()) }]);
}

/// Digits sent as INFO go one at a time: a proxy may reorder parallel requests, and the peer
/// refuses the older CSeq.
#[test]
fn info_digits_wait_for_the_answer_to_the_one_before() {
    let t0 = Instant::now();
    let mut core = core_with(vec![], t0);
    let (id, invite) = placed_invite(&mut core, t0);
    core.handle_inbound(&response_to(&invite, 200, &["Contact: <sip:callee@192.0.2.60>".to_string()]), udp_from(PBX), t0);
    let _ = sent(&mut core);
    for digit in ['1', '2', '3'] {
        core.call_info_dtmf(id, digit, 100, t0);
    }
    let out = sent(&mut core);
    assert_eq!(out.len(), 1, "one INFO in flight: {out:?}");
    assert!(out[0].1.contains("Signal=1"), "{}", out[0].1);
    let mut last = out[0].1.clone();
    for next in ["Signal=2", "Signal=3"] {
        core.handle_inbound(&response_to(&last, 200, &[]), udp_from(PBX), t0);
        let out = sent(&mut core);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(out[0].1.contains(next), "{}", out[0].1);
        last = out[0].1.clone();
    }
    core.handle_inbound(&response_to(&last, 200, &[]), udp_from(PBX), t0);
    assert!(sent(&mut core).is_empty());
}

/// A registered phone whose answers name no Server or User-Agent (JsSIP, SIP.js): the record
/// gets the User-Agent it registered with.
#[test]
fn a_registered_phone_silent_in_its_answers_is_named_by_its_registration() {
    let t0 = Instant::now();
    let mut core = core_with(profiles(), t0);
    let phone = register_alice(&mut core, t0);

    let id = core.place_call(None, "alice", "bob", "v=0\r\n", t0).expect("placed");
    let invite = sent(&mut core).remove(0).1;
    core.handle_inbound(&response_to(&invite, 180, &[]), udp_from(phone), t0);
    let seen: Vec<OutboundEvent> = std::iter::from_fn(|| core.poll_event())
        .filter_map(|e| if let CoreEvent::Outbound(o @ OutboundEvent::PeerSeen { .. }) = e { Some(o) } else { None })
        .collect();
    assert_eq!(seen, vec![OutboundEvent::PeerSeen { id, remote: addr(phone), user_agent: Some("JsSIP 3.13.0".into()) }]);
}

/// An incoming call carries its callee's bindings as they were when the INVITE came in, so the
/// call layer routes it without asking the endpoint again.
#[test]
fn an_incoming_call_carries_the_callees_bindings() {
    let t0 = Instant::now();
    let mut core = core_with(profiles(), t0);
    let phone = register_alice(&mut core, t0);
    let mut incoming = |to: &str, branch: &str| {
        core.handle_inbound(&request("INVITE", &format!("sip:{to}@example.com"), "sip:carrier@trunk", branch, &[]), udp_from("192.0.2.50:5060"), t0);
        std::iter::from_fn(|| core.poll_event()).find_map(|e| if let CoreEvent::IncomingCall(c) = e { Some(c) } else { None }).expect("call")
    };
    let to_alice = incoming("alice", "z9hG4bKb1");
    assert_eq!(to_alice.to_bindings.len(), 1, "{:?}", to_alice.to_bindings);
    assert_eq!(to_alice.to_bindings[0].source, phone);
    assert_eq!(to_alice.to_bindings[0].user_agent.as_deref(), Some("JsSIP 3.13.0"));
    assert!(incoming("carol", "z9hG4bKb2").to_bindings.is_empty(), "no binding for a user who never registered");
}

/// Registers alice from her phone (with digest auth); returns the phone's address.
fn register_alice(core: &mut SipCore, t0: Instant) -> &'static str {
    use crate::sip::auth::{ChallengeKind, DigestClient};
    let (from, phone) = ("sip:alice@example.com", "192.0.2.1:5062");
    let extra = |more: &[String]| [&["Expires: 120".to_string(), "User-Agent: JsSIP 3.13.0".to_string()], more].concat();
    core.handle_inbound(&request("REGISTER", "sip:example.com", from, "z9hG4bKu1", &extra(&[])), udp_from(phone), t0);
    let challenge = sent(core).remove(0).1;
    let challenges: Vec<&str> = challenge.split("\r\n").filter_map(|l| l.strip_prefix("WWW-Authenticate: ")).collect();
    let auth = DigestClient::new("alice", "wonderland").respond(ChallengeKind::Www, challenges.iter().copied(), "REGISTER", "sip:example.com", None).expect("answer");
    let authorization = format!("Authorization: {}", auth[0].value);
    core.handle_inbound(&request("REGISTER", "sip:example.com", from, "z9hG4bKu2", &extra(&[authorization])), udp_from(phone), t0);
    assert_eq!(status_line(&sent(core).remove(0).1), 200);
    let _ = std::iter::from_fn(|| core.poll_event()).count();
    phone
}

/// A 180 has a To tag and so sets up an early dialog: it names our Contact (RFC 3261 §12.1.1),
/// as SIP.js insists.
#[test]
fn ringing_names_our_contact() {
    let t0 = Instant::now();
    let mut core = core_with(profiles(), t0);
    let invite = request("INVITE", "sip:bob@example.com", "sip:carrier@trunk", "z9hG4bKcr1", &[]);
    core.handle_inbound(&invite, udp_from("192.0.2.50:5060"), t0);
    let id = std::iter::from_fn(|| core.poll_event()).find_map(|e| if let CoreEvent::IncomingCall(c) = e { Some(c.id) } else { None }).expect("call");
    core.call_ringing(id, t0);
    let out = sent(&mut core);
    let ringing = &out.iter().find(|(_, t)| status_line(t) == 180).expect("180").1;
    assert!(header(ringing, "To").is_some_and(|v| v.contains("tag=")), "{ringing}");
    assert!(header(ringing, "Contact").is_some_and(|v| v.starts_with("<sip:")), "{ringing}");
}
