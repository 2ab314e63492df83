//! SipCore driven with a manual clock: no sockets, no sleeps.

use super::*;
use crate::config::{LocalUser, UserSecret};
use crate::sip::auth::{ChallengeKind, DigestClient};
use std::net::SocketAddr;

pub(super) const GATEWAY: &str = "127.0.0.1:5060";
pub(super) const PBX: &str = "192.0.2.60:5060";

pub(super) fn profile(name: &str, kind: ProfileKind) -> Profile {
    Profile::bare(name, kind)
}

pub(super) fn profiles() -> Vec<Profile> {
    let mut local = profile("local", ProfileKind::Local);
    local.domain = Some("example.com".into());
    local.users = vec![LocalUser { username: "alice".into(), secret: UserSecret::Password("wonderland".into()), profiles: vec![] }];
    let mut trunk = profile("trunk", ProfileKind::Trunk);
    trunk.host = Some("192.0.2.50".into());
    trunk.trusted_networks = vec!["192.0.2.50/32".parse().expect("net")];
    vec![local, trunk]
}

pub(super) fn pbx_profile(register_expires: u32) -> Profile {
    let mut pbx = profile("pbx", ProfileKind::Pbx);
    pbx.host = Some("pbx.example.net".into());
    pbx.register = true;
    pbx.username = Some("gw".into());
    pbx.password = Some("s3cret".into());
    pbx.register_expires = register_expires;
    pbx
}

pub(super) fn core_with(profiles: Vec<Profile>, t0: Instant) -> SipCore {
    let config = CoreConfig { timers: TimerConfig::default(), product: "sipbridge-test".into(), nonce_lifetime: Duration::from_secs(300) };
    SipCore::new(config, profiles, t0, SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000))
}

pub(super) fn udp_from(remote: &str) -> Peer {
    Peer { transport: TransportKind::Udp, remote: remote.parse().expect("addr"), local: GATEWAY.parse().expect("addr"), connection: None }
}

pub(super) fn request(method: &str, uri: &str, from: &str, branch: &str, extra: &[String]) -> Vec<u8> {
    let to = if method == "REGISTER" { from } else { uri };
    let mut text = format!(
        "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5062;branch={branch};rport\r\nMax-Forwards: 70\r\n\
         From: <{from}>;tag=abc\r\nTo: <{to}>\r\nCall-ID: {branch}@test\r\nCSeq: 1 {method}\r\n\
         Contact: <sip:alice@192.0.2.1:5062>\r\n"
    );
    for header in extra {
        text.push_str(header);
        text.push_str("\r\n");
    }
    text.push_str("Content-Length: 0\r\n\r\n");
    text.into_bytes()
}

pub(super) fn sent(core: &mut SipCore) -> Vec<(Route, String)> {
    std::iter::from_fn(|| core.poll_transmit()).map(|t| (t.route, String::from_utf8_lossy(&t.bytes).into_owned())).collect()
}

pub(super) fn status_line(text: &str) -> u16 {
    text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

pub(super) fn statuses(core: &mut SipCore) -> Vec<u16> {
    sent(core).iter().map(|(_, t)| status_line(t)).collect()
}

pub(super) fn header<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.split("\r\n").find_map(|l| l.strip_prefix(&format!("{name}: ")))
}

#[test]
fn options_is_answered_with_capabilities_at_the_rport_address() {
    let t0 = Instant::now();
    let mut core = core_with(profiles(), t0);
    core.handle_inbound(&request("OPTIONS", "sip:gw@example.com", "sip:x@elsewhere.net", "z9hG4bK1", &[]), udp_from("192.0.2.1:40000"), t0);
    let out = sent(&mut core);
    assert_eq!(out.len(), 1);
    let (route, text) = &out[0];
    assert_eq!(status_line(text), 200);
    for name in ["Allow", "Accept", "Supported"] {
        assert!(header(text, name).is_some(), "{name} missing in\n{text}");
    }
    // Same IP as the sent-by, so only rport is filled in (RFC 3581 §4).
    assert!(header(text, "Via").is_some_and(|v| v.contains("rport=40000") && !v.contains("received=")), "{text}");
    let expected_to: SocketAddr = "192.0.2.1:40000".parse().expect("addr");
    assert_eq!(*route, Route::Reply(ResponseRoute::Datagram { from: GATEWAY.parse().expect("addr"), to: expected_to }));
}

#[test]
fn register_is_challenged_then_bound_and_expires() {
    let t0 = Instant::now();
    let mut core = core_with(profiles(), t0);
    let from = "sip:alice@example.com";
    core.handle_inbound(&request("REGISTER", "sip:example.com", from, "z9hG4bKr1", &["Expires: 120".into()]), udp_from("192.0.2.1:5062"), t0);
    let out = sent(&mut core);
    assert_eq!(status_line(&out[0].1), 401);
    let challenges: Vec<&str> = out[0].1.split("\r\n").filter_map(|l| l.strip_prefix("WWW-Authenticate: ")).collect();
    assert!(challenges.len() >= 2, "SHA-256 and MD5 are both offered: {challenges:?}");

    let mut client = DigestClient::new("alice", "wonderland");
    let auth = client.respond(ChallengeKind::Www, challenges.iter().copied(), "REGISTER", "sip:example.com", None).expect("answer");
    let authorization = format!("Authorization: {}", auth[0].value);
    let bytes = request("REGISTER", "sip:example.com", from, "z9hG4bKr2", &["Expires: 120".into(), authorization.clone()]);
    core.handle_inbound(&bytes, udp_from("192.0.2.1:5062"), t0);
    let out = sent(&mut core);
    assert_eq!(status_line(&out[0].1), 200, "{}", out[0].1);
    assert!(header(&out[0].1, "Contact").is_some_and(|c| c.contains("expires=120")), "{}", out[0].1);
    assert_eq!(core.status(t0).bindings.len(), 1);

    // The same credentials replayed (same nonce count) in a new transaction are not accepted:
    // they get a fresh nonce (stale), as SIP.js's un-REGISTER needs, and are no failed password,
    // so even many of them leave the address free to register.
    for attempt in 0..12 {
        let replay = request("REGISTER", "sip:example.com", from, &format!("z9hG4bKr3x{attempt}"), &["Expires: 0".into(), authorization.clone()]);
        core.handle_inbound(&replay, udp_from("192.0.2.1:5062"), t0);
        let out = sent(&mut core);
        assert_eq!(status_line(&out[0].1), 401, "{}", out[0].1);
        assert!(out[0].1.to_ascii_lowercase().contains("stale=true"), "{}", out[0].1);
    }
    assert_eq!(core.status(t0).bindings.len(), 1, "a replay changed nothing");
    let challenges: Vec<String> = out_challenges(&mut core, from, t0);
    let mut client = DigestClient::new("alice", "wonderland");
    let auth = client.respond(ChallengeKind::Www, challenges.iter().map(String::as_str), "REGISTER", "sip:example.com", None).expect("answer");
    let bytes = request("REGISTER", "sip:example.com", from, "z9hG4bKr4", &["Expires: 120".into(), format!("Authorization: {}", auth[0].value)]);
    core.handle_inbound(&bytes, udp_from("192.0.2.1:5062"), t0);
    assert_eq!(statuses(&mut core), vec![200], "not blocked by the replays");

    // Past its expiry the binding is gone without any traffic.
    let later = t0 + Duration::from_secs(121);
    assert!(core.poll_timeout().is_some_and(|t| t <= later));
    core.handle_timeout(later);
    assert!(core.status(later).bindings.is_empty());
}

#[test]
fn wrong_password_is_refused() {
    let t0 = Instant::now();
    let mut core = core_with(profiles(), t0);
    let from = "sip:alice@example.com";
    core.handle_inbound(&request("REGISTER", "sip:example.com", from, "z9hG4bKw1", &[]), udp_from("192.0.2.1:5062"), t0);
    let out = sent(&mut core);
    let challenges: Vec<&str> = out[0].1.split("\r\n").filter_map(|l| l.strip_prefix("WWW-Authenticate: ")).collect();
    let mut client = DigestClient::new("alice", "guess");
    let auth = client.respond(ChallengeKind::Www, challenges.iter().copied(), "REGISTER", "sip:example.com", None).expect("answer");
    let bytes = request("REGISTER", "sip:example.com", from, "z9hG4bKw2", &[format!("Authorization: {}", auth[0].value)]);
    core.handle_inbound(&bytes, udp_from("192.0.2.1:5062"), t0);
    assert_eq!(statuses(&mut core), vec![403]);
    assert!(core.status(t0).bindings.is_empty());
}

/// A fresh challenge for `from`, from an unauthenticated REGISTER.
fn out_challenges(core: &mut SipCore, from: &str, now: Instant) -> Vec<String> {
    core.handle_inbound(&request("REGISTER", "sip:example.com", from, "z9hG4bKrc", &[]), udp_from("192.0.2.1:5062"), now);
    let out = sent(core);
    out[0].1.split("\r\n").filter_map(|l| l.strip_prefix("WWW-Authenticate: ")).map(str::to_string).collect()
}

#[test]
fn invite_trust_gate() {
    let t0 = Instant::now();
    let mut core = core_with(profiles(), t0);
    // Unknown source, foreign domain: refused outright.
    core.handle_inbound(&request("INVITE", "sip:bob@example.com", "sip:eve@evil.example", "z9hG4bKi1", &[]), udp_from("203.0.113.9:5060"), t0);
    assert_eq!(statuses(&mut core), vec![403], "one stateless answer: no 100, nothing to retransmit");
    core.handle_timeout(t0 + Duration::from_secs(1));
    assert!(sent(&mut core).is_empty(), "refusals are never retransmitted (no amplification)");
    assert_eq!(core.counters().untrusted_refused, 1);
    assert_eq!(core.take_admitted(), None, "nothing of a refused call is admitted (for its ladder)");
    // Claims to be a local user: must prove it.
    core.handle_inbound(&request("INVITE", "sip:bob@example.com", "sip:alice@example.com", "z9hG4bKi2", &[]), udp_from("203.0.113.9:5060"), t0);
    assert_eq!(statuses(&mut core), vec![407]);
    assert_eq!(core.take_admitted(), None, "a challenged caller is not admitted yet");
    // A trusted trunk passes the gate: the call layer gets it and decides.
    let trusted = request("INVITE", "sip:bob@example.com", "sip:carrier@trunk", "z9hG4bKi3", &[]);
    core.handle_inbound(&trusted, udp_from("192.0.2.50:5060"), t0);
    let call_id = String::from_utf8_lossy(&trusted).lines().find_map(|l| l.strip_prefix("Call-ID: ").map(str::to_string));
    assert_eq!((core.take_admitted(), core.take_admitted()), (call_id, None), "admitted once");
    assert_eq!(statuses(&mut core), vec![100]);
    let incoming = std::iter::from_fn(|| core.poll_event()).find_map(|e| match e {
        CoreEvent::IncomingCall(call) => Some(call),
        _ => None,
    });
    let incoming = incoming.expect("the call layer is offered the call");
    assert_eq!((incoming.to_user.as_str(), incoming.identity.clone()), ("bob", CallerIdentity::TrustedPeer { profile: "trunk".into() }));
    core.call_reject(incoming.id, 480, t0);
    assert_eq!(statuses(&mut core), vec![480]);
}

#[test]
fn invite_final_answer_is_retransmitted_until_ack() {
    let t0 = Instant::now();
    let mut core = core_with(profiles(), t0);
    // A trusted call the call layer refuses: the final answer goes through the transaction.
    let invite = request("INVITE", "sip:bob@example.com", "sip:carrier@trunk", "z9hG4bKg1", &[]);
    core.handle_inbound(&invite, udp_from("192.0.2.50:5060"), t0);
    assert_eq!(statuses(&mut core), vec![100]);
    let id = std::iter::from_fn(|| core.poll_event()).find_map(|e| if let CoreEvent::IncomingCall(c) = e { Some(c.id) } else { None }).expect("call");
    core.call_reject(id, 403, t0);
    assert_eq!(statuses(&mut core), vec![403]);
    // Timer G: the 403 goes again at 0.5 s, then 1 s later.
    core.handle_timeout(t0 + Duration::from_millis(500));
    assert_eq!(statuses(&mut core), vec![403]);
    core.handle_timeout(t0 + Duration::from_millis(1500));
    assert_eq!(statuses(&mut core), vec![403]);
    // A retransmitted INVITE is absorbed and answered with the same 403.
    core.handle_inbound(&invite, udp_from("192.0.2.50:5060"), t0 + Duration::from_millis(1600));
    assert_eq!(statuses(&mut core), vec![403]);
    let ack = String::from_utf8_lossy(&invite).replace("INVITE sip", "ACK sip").replace("1 INVITE", "1 ACK");
    core.handle_inbound(ack.as_bytes(), udp_from("192.0.2.50:5060"), t0 + Duration::from_millis(1700));
    core.handle_timeout(t0 + Duration::from_secs(4));
    assert!(sent(&mut core).is_empty(), "ACK stops Timer G");
    // Timer I (T4 = 5 s) then removes the transaction.
    core.handle_timeout(t0 + Duration::from_secs(7));
    assert_eq!(core.status(t0 + Duration::from_secs(7)).server_transactions, 0);
}

#[test]
fn cancel_terminates_a_pending_invite() {
    let t0 = Instant::now();
    let mut core = core_with(profiles(), t0);
    let invite = request("INVITE", "sip:bob@example.com", "sip:alice@example.com", "z9hG4bKc1", &[]);
    core.handle_inbound(&invite, udp_from("192.0.2.1:5062"), t0);
    let _ = sent(&mut core);
    // The 407 was stateless, so CANCEL finds nothing pending: 481.
    let cancel = String::from_utf8_lossy(&invite).replace("INVITE sip", "CANCEL sip").replace("1 INVITE", "1 CANCEL");
    core.handle_inbound(cancel.as_bytes(), udp_from("192.0.2.1:5062"), t0);
    assert_eq!(statuses(&mut core), vec![481]);
}

#[test]
fn malformed_requests_get_stateless_answers() {
    let t0 = Instant::now();
    let mut core = core_with(profiles(), t0);
    let bad_version = String::from_utf8_lossy(&request("OPTIONS", "sip:x@example.com", "sip:a@b.c", "z9hG4bKv", &[])).replace("SIP/2.0\r\nVia", "SIP/7.0\r\nVia");
    core.handle_inbound(bad_version.as_bytes(), udp_from("192.0.2.1:5062"), t0);
    assert_eq!(statuses(&mut core), vec![505]);
    core.handle_inbound(b"garbage without structure", udp_from("192.0.2.1:5062"), t0);
    assert!(sent(&mut core).is_empty());
    assert_eq!(core.counters().dropped.get("unanswerable"), Some(&1));
}

/// Runs the driver's side of resolution for the PBX profile.
pub(super) fn resolve(core: &mut SipCore, now: Instant) {
    while let Some(event) = core.poll_event() {
        if let CoreEvent::Resolve { profile, .. } = event {
            let resolved = ResolvedPeer { remote: PBX.parse().expect("addr"), advertised: GATEWAY.parse().expect("addr") };
            core.handle_resolved(&profile, Ok(resolved), now);
        }
    }
}

pub(super) fn response_to(request: &str, status: u16, extra: &[String]) -> Vec<u8> {
    let mut text = format!("SIP/2.0 {status} X\r\n");
    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
        if let Some(value) = header(request, name) {
            let value = if name == "To" && status >= 200 { format!("{value};tag=pbx") } else { value.to_string() };
            text.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    for h in extra {
        text.push_str(h);
        text.push_str("\r\n");
    }
    text.push_str("Content-Length: 0\r\n\r\n");
    text.into_bytes()
}

#[test]
fn upstream_registration_answers_digest_and_refreshes_before_expiry() {
    let t0 = Instant::now();
    let mut core = core_with(vec![pbx_profile(10)], t0);
    resolve(&mut core, t0);
    let out = sent(&mut core);
    assert_eq!(out.len(), 1);
    let first = out[0].1.clone();
    assert!(first.starts_with("REGISTER sip:pbx.example.net SIP/2.0"), "{first}");
    assert_eq!(header(&first, "Expires"), Some("10"));

    let challenge = "WWW-Authenticate: Digest realm=\"pbx\", nonce=\"n1\", qop=\"auth\", algorithm=MD5".to_string();
    core.handle_inbound(&response_to(&first, 401, &[challenge]), udp_from(PBX), t0);
    let out = sent(&mut core);
    let second = out[0].1.clone();
    assert!(header(&second, "Authorization").is_some_and(|a| a.contains("username=\"gw\"")), "{second}");
    assert_eq!(header(&second, "CSeq"), Some("2 REGISTER"));

    core.handle_inbound(&response_to(&second, 200, &["Contact: <sip:gw@127.0.0.1:5060>;expires=10".into()]), udp_from(PBX), t0);
    assert_eq!(core.status(t0).upstreams[0].registration, "registered");
    assert!(core.status(t0).upstreams[0].registered);

    // 80 % of 10 s: the refresh goes out at 8 s, before expiry, and reuses the cached challenge.
    core.handle_timeout(t0 + Duration::from_millis(7_900));
    resolve(&mut core, t0 + Duration::from_millis(7_900));
    assert!(sent(&mut core).is_empty(), "no refresh before 8 s");
    core.handle_timeout(t0 + Duration::from_secs(8));
    resolve(&mut core, t0 + Duration::from_secs(8));
    let out = sent(&mut core);
    assert_eq!(out.len(), 1, "one refresh at 8 s");
    assert_eq!(header(&out[0].1, "CSeq"), Some("3 REGISTER"));
    assert!(header(&out[0].1, "Authorization").is_some_and(|a| a.contains("nc=00000002")), "{}", out[0].1);
    assert_eq!(header(&out[0].1, "Call-ID"), header(&first, "Call-ID"), "refreshes keep the Call-ID");
}

#[test]
fn unanswered_register_retransmits_on_rfc_schedule_then_backs_off() {
    let t0 = Instant::now();
    let mut core = core_with(vec![pbx_profile(600)], t0);
    resolve(&mut core, t0);
    assert_eq!(sent(&mut core).len(), 1);
    // Timer E: 0.5, 1.5, 3.5, 7.5, then every T2 = 4 s; Timer F gives up at 64*T1 = 32 s.
    let mut retransmits = Vec::new();
    let mut now = t0;
    while let Some(next) = core.poll_timeout().filter(|t| *t <= t0 + Duration::from_secs(32)) {
        now = next;
        core.handle_timeout(now);
        if !sent(&mut core).is_empty() {
            retransmits.push(now.duration_since(t0).as_millis());
        }
    }
    assert_eq!(retransmits, vec![500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]);
    let status = core.status(now);
    assert_eq!(status.upstreams[0].registration, "failed");
    assert_eq!(status.upstreams[0].retry_in_secs, Some(5), "first retry after 5 s");
    assert!(status.upstreams[0].last_error.as_deref().is_some_and(|e| e.contains("timeout")));
}

#[test]
fn unresolvable_peer_is_retried_and_reported() {
    let t0 = Instant::now();
    let mut core = core_with(vec![pbx_profile(600)], t0);
    while let Some(event) = core.poll_event() {
        if let CoreEvent::Resolve { profile, .. } = event {
            core.handle_resolved(&profile, Err("no such host".into()), t0);
        }
    }
    let status = core.status(t0);
    assert_eq!(status.upstreams[0].registration, "failed");
    assert_eq!(status.upstreams[0].last_error.as_deref(), Some("no such host"));
    core.handle_timeout(t0 + Duration::from_secs(5));
    assert!(std::iter::from_fn(|| core.poll_event()).any(|e| matches!(e, CoreEvent::Resolve { .. })), "retried after backoff");
}


#[test]
fn answered_call_gets_a_dialog_and_the_far_end_bye_ends_it() {
    let t0 = Instant::now();
    let mut core = core_with(profiles(), t0);
    let invite = request("INVITE", "sip:bob@example.com", "sip:carrier@trunk", "z9hG4bKd1", &[]);
    core.handle_inbound(&invite, udp_from("192.0.2.50:5060"), t0);
    let _ = sent(&mut core);
    let id = std::iter::from_fn(|| core.poll_event()).find_map(|e| if let CoreEvent::IncomingCall(c) = e { Some(c.id) } else { None }).expect("call");
    core.call_ringing(id, t0);
    core.call_answer(id, "v=0\r\n", t0).expect("answer");
    let out = sent(&mut core);
    let statuses: Vec<u16> = out.iter().map(|(_, t)| status_line(t)).collect();
    assert_eq!(statuses, vec![180, 200]);
    let ok = &out[1].1;
    assert!(header(ok, "Contact").is_some_and(|c| c.starts_with("<sip:sipbridge@127.0.0.1:5060")), "{ok}");
    assert_eq!(header(ok, "Content-Type"), Some("application/sdp"));
    let our_tag = header(ok, "To").and_then(|t| t.split("tag=").nth(1)).expect("To tag").to_string();
    // The phone hangs up: BYE in the dialog gets 200 and ends the call.
    let bye = String::from_utf8_lossy(&invite)
        .replace("INVITE sip", "BYE sip")
        .replace("1 INVITE", "2 BYE")
        .replace("z9hG4bKd1;rport", "z9hG4bKd2;rport")
        .replace("To: <sip:bob@example.com>", &format!("To: <sip:bob@example.com>;tag={our_tag}"));
    core.handle_inbound(bye.as_bytes(), udp_from("192.0.2.50:5060"), t0);
    assert_eq!(statuses_of(&mut core), vec![200]);
    assert!(std::iter::from_fn(|| core.poll_event()).any(|e| e == CoreEvent::CallEnded { id, reason: CallEndReason::RemoteHangup }));
}

#[test]
fn our_hangup_sends_bye_in_the_dialog() {
    let t0 = Instant::now();
    let mut core = core_with(profiles(), t0);
    let invite = request("INVITE", "sip:bob@example.com", "sip:carrier@trunk", "z9hG4bKh1", &[]);
    core.handle_inbound(&invite, udp_from("192.0.2.50:5060"), t0);
    let id = std::iter::from_fn(|| core.poll_event()).find_map(|e| if let CoreEvent::IncomingCall(c) = e { Some(c.id) } else { None }).expect("call");
    core.call_answer(id, "v=0\r\n", t0).expect("answer");
    let _ = sent(&mut core);
    core.call_hangup(id, t0);
    let out = sent(&mut core);
    assert_eq!(out.len(), 1);
    let bye = &out[0].1;
    assert!(bye.starts_with("BYE sip:alice@192.0.2.1:5062 SIP/2.0"), "to the caller's Contact: {bye}");
    assert!(header(bye, "From").is_some_and(|f| f.contains("tag=")) && header(bye, "To").is_some_and(|t| t.contains("tag=abc")), "{bye}");
    assert_eq!(header(bye, "CSeq"), Some("1 BYE"));
    assert!(matches!(out[0].0, Route::Request { to, .. } if to == "192.0.2.50:5060".parse::<SocketAddr>().expect("addr")), "sent where the caller's packets came from");
}

fn statuses_of(core: &mut SipCore) -> Vec<u16> {
    statuses(core)
}

#[test]
fn cancel_stops_a_ringing_call() {
    let t0 = Instant::now();
    let mut core = core_with(profiles(), t0);
    let invite = request("INVITE", "sip:bob@example.com", "sip:carrier@trunk", "z9hG4bKcc1", &[]);
    core.handle_inbound(&invite, udp_from("192.0.2.50:5060"), t0);
    let id = std::iter::from_fn(|| core.poll_event()).find_map(|e| if let CoreEvent::IncomingCall(c) = e { Some(c.id) } else { None }).expect("call");
    core.call_ringing(id, t0);
    let _ = sent(&mut core);
    let cancel = String::from_utf8_lossy(&invite).replace("INVITE sip", "CANCEL sip").replace("1 INVITE", "1 CANCEL");
    core.handle_inbound(cancel.as_bytes(), udp_from("192.0.2.50:5060"), t0);
    let mut answers = statuses(&mut core);
    answers.sort_unstable();
    assert_eq!(answers, vec![200, 487], "200 for the CANCEL, 487 for the INVITE");
    assert!(std::iter::from_fn(|| core.poll_event()).any(|e| e == CoreEvent::CallEnded { id, reason: CallEndReason::Cancelled }));
}

#[test]
fn digest_guessing_is_cut_off() {
    let t0 = Instant::now();
    let mut core = core_with(profiles(), t0);
    let from = "sip:alice@example.com";
    let answer = |core: &mut SipCore, password: &str, branch: &str| {
        core.handle_inbound(&request("REGISTER", "sip:example.com", from, &format!("{branch}a"), &[]), udp_from("192.0.2.1:5062"), t0);
        let out = sent(core);
        let challenges: Vec<String> = out[0].1.split("\r\n").filter_map(|l| l.strip_prefix("WWW-Authenticate: ")).map(str::to_string).collect();
        let mut client = DigestClient::new("alice", password);
        let auth = client.respond(ChallengeKind::Www, challenges.iter().map(String::as_str), "REGISTER", "sip:example.com", None).expect("answer");
        let bytes = request("REGISTER", "sip:example.com", from, &format!("{branch}b"), &[format!("Authorization: {}", auth[0].value)]);
        core.handle_inbound(&bytes, udp_from("192.0.2.1:5062"), t0);
        statuses(core)
    };
    for i in 0..10 {
        assert_eq!(answer(&mut core, "guess", &format!("z9hG4bKg{i}")), vec![403]);
    }
    // Even the right password waits out the window once guessing was detected.
    core.handle_inbound(&request("REGISTER", "sip:example.com", from, "z9hG4bKright", &[]), udp_from("192.0.2.1:5062"), t0);
    let out = sent(&mut core);
    assert_eq!(status_line(&out[0].1), 403, "no more challenges for this source");
    assert!(out[0].1.contains("too many failed attempts"));
    // Another source is unaffected.
    core.handle_inbound(&request("REGISTER", "sip:example.com", from, "z9hG4bKother", &[]), udp_from("192.0.2.2:5062"), t0);
    assert_eq!(statuses(&mut core), vec![401]);
}

/// Progress, answers and failures; `PeerSeen` has a test of its own.
fn outbound_events(core: &mut SipCore) -> Vec<OutboundEvent> {
    std::iter::from_fn(|| core.poll_event())
        .filter_map(|e| if let CoreEvent::Outbound(o) = e { Some(o) } else { None })
        .filter(|o| !matches!(o, OutboundEvent::PeerSeen { .. }))
        .collect()
}

/// A core with one PBX profile that has credentials but does not register, and the INVITE of
/// a call placed through it.
pub(super) fn placed_invite(core: &mut SipCore, t0: Instant) -> (SipCallId, String) {
    let mut pbx = pbx_profile(600);
    pbx.register = false;
    *core = core_with(vec![pbx], t0);
    resolve(core, t0);
    let id = core.place_call(Some("pbx"), "+15551234567", "alice", "v=0\r\n", t0).expect("placed");
    let out = sent(core);
    assert_eq!(out.len(), 1);
    (id, out[0].1.clone())
}

#[test]
fn challenged_invite_is_acked_and_retried_once_with_credentials() {
    let t0 = Instant::now();
    let mut core = core_with(vec![], t0);
    let (id, first) = placed_invite(&mut core, t0);
    assert_eq!(header(&first, "CSeq"), Some("1 INVITE"));

    let challenge = "Proxy-Authenticate: Digest realm=\"pbx\", nonce=\"n1\", qop=\"auth\", algorithm=MD5".to_string();
    core.handle_inbound(&response_to(&first, 407, &[challenge]), udp_from(PBX), t0);
    let out = sent(&mut core);
    assert_eq!(out.len(), 2, "ACK for the 407, then the retried INVITE: {out:?}");
    let ack = &out[0].1;
    assert!(ack.starts_with("ACK sip:+15551234567@pbx.example.net"), "{ack}");
    assert_eq!(header(ack, "CSeq"), Some("1 ACK"));
    assert_eq!(header(ack, "Via"), header(&first, "Via"), "the error ACK reuses the INVITE's branch");
    assert!(header(ack, "To").is_some_and(|t| t.contains("tag=pbx")), "{ack}");
    let second = &out[1].1;
    assert_eq!(header(second, "CSeq"), Some("2 INVITE"));
    assert_ne!(header(second, "Via"), header(&first, "Via"), "a new transaction");
    assert_eq!(header(second, "Call-ID"), header(&first, "Call-ID"));
    assert!(header(second, "Proxy-Authorization").is_some_and(|a| a.contains("username=\"gw\"")), "{second}");
    assert!(outbound_events(&mut core).is_empty(), "the challenge is not a failure");

    core.handle_inbound(&response_to(second, 200, &["Contact: <sip:pbx@192.0.2.60:5060>".into()]), udp_from(PBX), t0);
    let out = sent(&mut core);
    assert!(out.iter().any(|(_, t)| t.starts_with("ACK ") && header(t, "CSeq") == Some("2 ACK")), "{out:?}");
    assert!(outbound_events(&mut core).iter().any(|e| matches!(e, OutboundEvent::Answered { id: answered, .. } if *answered == id)));
}

#[test]
fn second_challenge_fails_the_call_instead_of_looping() {
    let t0 = Instant::now();
    let mut core = core_with(vec![], t0);
    let (id, first) = placed_invite(&mut core, t0);
    let challenge = "WWW-Authenticate: Digest realm=\"pbx\", nonce=\"n1\", algorithm=MD5".to_string();
    core.handle_inbound(&response_to(&first, 401, std::slice::from_ref(&challenge)), udp_from(PBX), t0);
    let second = sent(&mut core).pop().expect("retry").1;
    assert!(header(&second, "Authorization").is_some(), "{second}");
    core.handle_inbound(&response_to(&second, 401, &[challenge]), udp_from(PBX), t0);
    let out = sent(&mut core);
    assert_eq!(out.len(), 1, "only the ACK; no third INVITE: {out:?}");
    assert_eq!(header(&out[0].1, "CSeq"), Some("2 ACK"));
    assert_eq!(outbound_events(&mut core), vec![OutboundEvent::Failed { id, status: 401 }]);
}

#[test]
fn busy_answer_is_acked_and_reported_once() {
    let t0 = Instant::now();
    let mut core = core_with(vec![], t0);
    let (id, first) = placed_invite(&mut core, t0);
    core.handle_inbound(&response_to(&first, 486, &[]), udp_from(PBX), t0);
    let out = sent(&mut core);
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out[0].1.starts_with("ACK ") && header(&out[0].1, "CSeq") == Some("1 ACK"), "{}", out[0].1);
    assert_eq!(outbound_events(&mut core), vec![OutboundEvent::Failed { id, status: 486 }]);
    // A retransmitted 486 is ACKed again by the transaction, not reported twice.
    core.handle_inbound(&response_to(&first, 486, &[]), udp_from(PBX), t0);
    assert_eq!(sent(&mut core).len(), 1);
    assert!(outbound_events(&mut core).is_empty());
}

#[test]
fn cancelled_call_acks_the_487_and_reports_nothing_more() {
    let t0 = Instant::now();
    let mut core = core_with(vec![], t0);
    let (id, invite) = placed_invite(&mut core, t0);
    core.handle_inbound(&response_to(&invite, 183, &[]), udp_from(PBX), t0);
    let _ = outbound_events(&mut core);
    core.outbound_hangup(id, t0);
    let out = sent(&mut core);
    assert_eq!(out.len(), 1);
    assert!(out[0].1.starts_with("CANCEL ") && header(&out[0].1, "CSeq") == Some("1 CANCEL"), "{}", out[0].1);
    assert_eq!(header(&out[0].1, "Via"), header(&invite, "Via"), "CANCEL matches the INVITE's branch");
    core.outbound_hangup(id, t0);
    assert!(sent(&mut core).is_empty(), "one CANCEL per call");
    // The 200 for the CANCEL has the INVITE's branch: it must not read as the call being answered.
    core.handle_inbound(&response_to(&out[0].1, 200, &[]), udp_from(PBX), t0);
    assert!(sent(&mut core).is_empty(), "no ACK for the CANCEL's 200");
    assert!(outbound_events(&mut core).is_empty());
    core.handle_inbound(&response_to(&invite, 487, &[]), udp_from(PBX), t0);
    let out = sent(&mut core);
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out[0].1.starts_with("ACK ") && header(&out[0].1, "CSeq") == Some("1 ACK"), "{}", out[0].1);
    assert!(outbound_events(&mut core).is_empty(), "the call layer already ended the call");
}

#[test]
fn answer_that_crosses_the_cancel_is_acked_then_ended_with_bye() {
    let t0 = Instant::now();
    let mut core = core_with(vec![], t0);
    let (id, invite) = placed_invite(&mut core, t0);
    core.handle_inbound(&response_to(&invite, 180, &[]), udp_from(PBX), t0);
    core.outbound_hangup(id, t0);
    let _ = sent(&mut core);
    core.handle_inbound(&response_to(&invite, 200, &["Contact: <sip:pbx@192.0.2.60:5060>".into()]), udp_from(PBX), t0);
    let out = sent(&mut core);
    let methods: Vec<&str> = out.iter().filter_map(|(_, t)| t.split(' ').next()).collect();
    assert_eq!(methods, vec!["ACK", "BYE"], "{out:?}");
    assert!(!outbound_events(&mut core).iter().any(|e| matches!(e, OutboundEvent::Answered { .. })));
}

#[test]
fn cancel_waits_for_a_provisional_answer() {
    let t0 = Instant::now();
    let mut core = core_with(vec![], t0);
    let (id, invite) = placed_invite(&mut core, t0);
    core.outbound_hangup(id, t0);
    assert!(sent(&mut core).is_empty(), "no CANCEL before the peer has answered at all");
    core.handle_inbound(&response_to(&invite, 100, &[]), udp_from(PBX), t0);
    let out = sent(&mut core);
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out[0].1.starts_with("CANCEL "), "{}", out[0].1);
    core.handle_inbound(&response_to(&invite, 180, &[]), udp_from(PBX), t0);
    assert!(sent(&mut core).is_empty(), "still one CANCEL");
    assert!(outbound_events(&mut core).is_empty(), "a cancelled call reports no progress");
}

#[test]
fn dial_plan_rewrites_the_number_sent_to_the_peer() {
    let t0 = Instant::now();
    let mut pbx = pbx_profile(600);
    pbx.register = false;
    pbx.dial = crate::config::DialPlan { strip_prefix: Some("9".into()), prepend: None, country_code: Some("44".into()) };
    let mut core = core_with(vec![pbx], t0);
    resolve(&mut core, t0);
    core.place_call(Some("pbx"), "9020 7946 0018", "alice", "v=0\r\n", t0).expect_err("spaces are not allowed in a dial string");
    core.place_call(Some("pbx"), "902079460018", "alice", "v=0\r\n", t0).expect("placed");
    let invite = sent(&mut core).remove(0).1;
    assert!(invite.starts_with("INVITE sip:+442079460018@pbx.example.net:5060 SIP/2.0"), "{invite}");
    assert!(core.place_call(Some("pbx"), "9123", "alice", "v=0\r\n", t0).is_err(), "not a valid E.164 number");
}
