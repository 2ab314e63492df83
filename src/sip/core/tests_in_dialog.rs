//! In-dialog requests and session timers, driven with a manual clock.

use super::tests::{core_with, header, placed_invite, profiles, request, response_to, sent, status_line, udp_from};
use super::*;

const TRUNK: &str = "192.0.2.50:5060";

/// A trunk call answered by us: (call, the INVITE as sent, our To tag, what we sent in answer).
pub(super) fn answered_call(core: &mut SipCore, t0: Instant, extra: &[String]) -> (SipCallId, String, String, String) {
    let invite = request("INVITE", "sip:bob@example.com", "sip:carrier@trunk", "z9hG4bKinv", extra);
    core.handle_inbound(&invite, udp_from(TRUNK), t0);
    let id = std::iter::from_fn(|| core.poll_event()).find_map(|e| if let CoreEvent::IncomingCall(c) = e { Some(c.id) } else { None }).expect("call");
    core.call_answer(id, "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n", t0).expect("answer");
    let ok = sent(core).into_iter().map(|(_, t)| t).find(|t| status_line(t) == 200).expect("200");
    let tag = header(&ok, "To").and_then(|t| t.split("tag=").nth(1)).expect("To tag").to_string();
    (id, String::from_utf8_lossy(&invite).into_owned(), tag, ok)
}

/// A request from the trunk inside the dialog of `invite`.
pub(super) fn in_dialog(invite: &str, our_tag: &str, method: &str, cseq: u32, branch: &str, extra: &[&str], body: &str) -> Vec<u8> {
    let mut text = invite
        .replace("INVITE sip", &format!("{method} sip"))
        .replace("1 INVITE", &format!("{cseq} {method}"))
        .replace("z9hG4bKinv;", &format!("{branch};"))
        .replace("To: <sip:bob@example.com>", &format!("To: <sip:bob@example.com>;tag={our_tag}"))
        .replace("Content-Length: 0\r\n\r\n", "");
    for h in extra {
        text.push_str(h);
        text.push_str("\r\n");
    }
    text.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    text.into_bytes()
}

pub(super) fn events(core: &mut SipCore) -> Vec<CoreEvent> {
    std::iter::from_fn(|| core.poll_event()).collect()
}

/// Runs the clock from `from` to `to` in 100 ms steps, collecting what was sent and reported.
fn run_clock(core: &mut SipCore, from: Instant, to: Instant) -> (Vec<String>, Vec<CoreEvent>) {
    let (mut out, mut reported) = (Vec::new(), Vec::new());
    let mut now = from;
    while now < to {
        now += Duration::from_millis(100);
        core.handle_timeout(now);
        out.extend(sent(core).into_iter().map(|(_, t)| t));
        reported.extend(events(core));
    }
    (out, reported)
}

#[test]
fn ack_with_its_own_branch_confirms_the_call_so_timer_l_does_not_end_it() {
    let t0 = Instant::now();
    let mut core = core_with(profiles(), t0);
    let (id, invite, tag, _) = answered_call(&mut core, t0, &[]);
    core.handle_inbound(&in_dialog(&invite, &tag, "ACK", 1, "z9hG4bKack1", &[], ""), udp_from(TRUNK), t0);
    let (out, reported) = run_clock(&mut core, t0, t0 + Duration::from_secs(40));
    assert!(out.is_empty(), "no 2xx retransmission after the ACK: {out:?}");
    assert!(!reported.iter().any(|e| matches!(e, CoreEvent::CallEnded { .. })), "{reported:?}");
    let _ = id;
}

#[test]
fn reinvite_with_sdp_is_handed_to_the_call_layer_and_answered_with_its_sdp() {
    let t0 = Instant::now();
    let mut core = core_with(profiles(), t0);
    let (id, invite, tag, _) = answered_call(&mut core, t0, &[]);
    core.handle_inbound(&in_dialog(&invite, &tag, "ACK", 1, "z9hG4bKack1", &[], ""), udp_from(TRUNK), t0);
    let hold = "v=0\r\no=- 7 2 IN IP4 192.0.2.50\r\ns=-\r\nc=IN IP4 192.0.2.50\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=sendonly\r\n";
    let reinvite = in_dialog(&invite, &tag, "INVITE", 2, "z9hG4bKre1", &["Content-Type: application/sdp"], hold);
    core.handle_inbound(&reinvite, udp_from(TRUNK), t0);
    assert_eq!(sent(&mut core).iter().map(|(_, t)| status_line(t)).collect::<Vec<_>>(), vec![100]);
    assert!(events(&mut core).contains(&CoreEvent::Dialog(DialogEvent::Reoffer { id, sdp: hold.into() })));
    core.call_reanswer(id, Ok("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\na=recvonly\r\n".into()), t0);
    let out = sent(&mut core);
    assert_eq!(status_line(&out[0].1), 200);
    assert!(out[0].1.ends_with("a=recvonly\r\n") && header(&out[0].1, "Contact").is_some(), "{}", out[0].1);
    // Its ACK has a branch of its own and stops the 2xx retransmissions.
    core.handle_inbound(&in_dialog(&invite, &tag, "ACK", 2, "z9hG4bKack2", &[], ""), udp_from(TRUNK), t0);
    let (out, _) = run_clock(&mut core, t0, t0 + Duration::from_secs(5));
    assert!(out.is_empty(), "{out:?}");
    // A lower CSeq is out of order: 500.
    core.handle_inbound(&in_dialog(&invite, &tag, "INVITE", 1, "z9hG4bKre0", &[], ""), udp_from(TRUNK), t0);
    assert_eq!(status_line(&sent(&mut core)[0].1), 500);
}

#[test]
fn refused_reoffer_and_offerless_reinvite() {
    let t0 = Instant::now();
    let mut core = core_with(profiles(), t0);
    let (id, invite, tag, _) = answered_call(&mut core, t0, &[]);
    core.handle_inbound(&in_dialog(&invite, &tag, "INVITE", 2, "z9hG4bKr2", &["Content-Type: application/sdp"], "v=0\r\n"), udp_from(TRUNK), t0);
    let _ = sent(&mut core);
    core.call_reanswer(id, Err(488), t0);
    assert_eq!(status_line(&sent(&mut core)[0].1), 488);
    // Without an offer the 200 carries our current SDP as the offer.
    core.handle_inbound(&in_dialog(&invite, &tag, "INVITE", 3, "z9hG4bKr3", &[], ""), udp_from(TRUNK), t0);
    let out = sent(&mut core);
    assert_eq!(status_line(&out[0].1), 200);
    assert!(out[0].1.ends_with("o=- 1 1 IN IP4 127.0.0.1\r\n"), "{}", out[0].1);
}

#[test]
fn info_dtmf_and_other_in_dialog_requests() {
    let t0 = Instant::now();
    let mut core = core_with(profiles(), t0);
    let (id, invite, tag, _) = answered_call(&mut core, t0, &[]);
    let info = in_dialog(&invite, &tag, "INFO", 2, "z9hG4bKi1", &["Content-Type: application/dtmf-relay"], "Signal=5\r\nDuration=160\r\n");
    core.handle_inbound(&info, udp_from(TRUNK), t0);
    assert_eq!(status_line(&sent(&mut core)[0].1), 200);
    assert!(events(&mut core).contains(&CoreEvent::Dialog(DialogEvent::Dtmf { id, digit: '5', duration_ms: 160 })));
    let cases = [("OPTIONS", 200), ("REFER", 400), ("NOTIFY", 200)];
    for (i, (method, status)) in cases.into_iter().enumerate() {
        let bytes = in_dialog(&invite, &tag, method, 3 + i as u32, &format!("z9hG4bKm{i}"), &[], "");
        core.handle_inbound(&bytes, udp_from(TRUNK), t0);
        assert_eq!(status_line(&sent(&mut core)[0].1), status, "{method}");
    }
    // A dialog nobody knows.
    core.handle_inbound(&in_dialog(&invite, "not-ours", "INFO", 9, "z9hG4bKx", &[], ""), udp_from(TRUNK), t0);
    assert_eq!(status_line(&sent(&mut core)[0].1), 481);
    assert_eq!(parse_info_dtmf("application/dtmf-relay", "Signal=11\r\nDuration=100"), Some(('#', 100)));
    assert_eq!(parse_info_dtmf("application/dtmf", "*"), Some(('*', 250)));
    assert_eq!(parse_info_dtmf("application/dtmf-relay", "Signal=x"), None);
    assert_eq!(parse_info_dtmf("text/plain", "1"), None);
}

#[test]
fn session_expires_below_min_se_is_refused_with_422() {
    let t0 = Instant::now();
    let mut core = core_with(profiles(), t0);
    let invite = request("INVITE", "sip:bob@example.com", "sip:carrier@trunk", "z9hG4bKse", &["Session-Expires: 60".into(), "Supported: timer".into()]);
    core.handle_inbound(&invite, udp_from(TRUNK), t0);
    let out = sent(&mut core);
    let last = &out.last().expect("answer").1;
    assert_eq!(status_line(last), 422);
    assert_eq!(header(last, "Min-SE"), Some("90"));
}

/// RFC 4028 as UAS with the caller refreshing: the 200 confirms, refreshes keep the call, and
/// silence ends it with BYE after the interval less min(32 s, interval/3) = 60 s.
#[test]
fn caller_refreshed_session_survives_refreshes_and_ends_when_they_stop() {
    let t0 = Instant::now();
    let mut core = core_with(profiles(), t0);
    let extra = ["Session-Expires: 90;refresher=uac".to_string(), "Supported: timer".to_string()];
    let (id, invite, tag, ok) = answered_call(&mut core, t0, &extra);
    assert_eq!(header(&ok, "Session-Expires"), Some("90;refresher=uac"));
    assert_eq!(header(&ok, "Require"), Some("timer"));
    core.handle_inbound(&in_dialog(&invite, &tag, "ACK", 1, "z9hG4bKa1", &[], ""), udp_from(TRUNK), t0);
    // Refreshes at 45 s (UPDATE) and 90 s (re-INVITE without SDP) keep the call past 60 s and 105 s.
    let (_, reported) = run_clock(&mut core, t0, t0 + Duration::from_secs(45));
    assert!(reported.is_empty());
    let t45 = t0 + Duration::from_secs(45);
    core.handle_inbound(&in_dialog(&invite, &tag, "UPDATE", 2, "z9hG4bKu1", &["Session-Expires: 90;refresher=uac", "Supported: timer"], ""), udp_from(TRUNK), t45);
    let refreshed = sent(&mut core);
    assert_eq!(status_line(&refreshed[0].1), 200);
    assert_eq!(header(&refreshed[0].1, "Session-Expires"), Some("90;refresher=uac"));
    let (_, reported) = run_clock(&mut core, t45, t0 + Duration::from_secs(90));
    assert!(reported.is_empty(), "{reported:?}");
    let t90 = t0 + Duration::from_secs(90);
    core.handle_inbound(&in_dialog(&invite, &tag, "INVITE", 3, "z9hG4bKu2", &["Session-Expires: 90;refresher=uac", "Supported: timer"], ""), udp_from(TRUNK), t90);
    assert_eq!(status_line(&sent(&mut core)[0].1), 200);
    core.handle_inbound(&in_dialog(&invite, &tag, "ACK", 3, "z9hG4bKa3", &[], ""), udp_from(TRUNK), t90);
    // Then silence: BYE at 90 + 60 s, not before.
    let (out, reported) = run_clock(&mut core, t90, t90 + Duration::from_millis(59_900));
    assert!(reported.is_empty() && out.is_empty(), "{reported:?} {out:?}");
    let (out, reported) = run_clock(&mut core, t90 + Duration::from_millis(59_900), t90 + Duration::from_secs(61));
    assert!(out.iter().any(|t| t.starts_with("BYE ")), "{out:?}");
    assert!(reported.contains(&CoreEvent::CallEnded { id, reason: CallEndReason::SessionExpired }));
}

/// A caller without timer support gets us as the refresher (RFC 4028 §9): we send UPDATE-less
/// re-INVITEs with our SDP at half the interval.
#[test]
fn we_refresh_when_the_caller_cannot() {
    let t0 = Instant::now();
    let mut core = core_with(profiles(), t0);
    let (_, invite, tag, ok) = answered_call(&mut core, t0, &["Session-Expires: 120".to_string()]);
    core.handle_inbound(&in_dialog(&invite, &tag, "ACK", 1, "z9hG4bKack1", &[], ""), udp_from(TRUNK), t0);
    assert_eq!(header(&ok, "Session-Expires"), Some("120;refresher=uas"));
    assert_eq!(header(&ok, "Require"), None, "the caller did not say it supports timer");
    let (out, _) = run_clock(&mut core, t0, t0 + Duration::from_secs(61));
    let refresh = out.iter().find(|t| t.starts_with("INVITE ")).expect("a refresh re-INVITE");
    assert_eq!(header(refresh, "CSeq"), Some("1 INVITE"));
    assert!(refresh.ends_with("o=- 1 1 IN IP4 127.0.0.1\r\n"), "repeats our SDP: {refresh}");
    assert_eq!(header(refresh, "Session-Expires"), Some("120;refresher=uac"));
}

/// Calls we place ask for a session timer; a 2xx naming us the refresher gets an UPDATE at half
/// the interval when the peer allows UPDATE, and our hold re-INVITE is ACKed and reported.
#[test]
fn placed_call_refreshes_with_update_and_reoffers() {
    let t0 = Instant::now();
    let mut core = core_with(vec![], t0);
    let (id, invite) = placed_invite(&mut core, t0);
    assert_eq!(header(&invite, "Session-Expires"), Some("1800"));
    assert!(header(&invite, "Supported").is_some_and(|s| s.contains("timer")));
    let extra = ["Contact: <sip:pbx@192.0.2.60:5060>".to_string(), "Session-Expires: 1800;refresher=uac".into(), "Allow: INVITE, ACK, BYE, UPDATE".into()];
    core.handle_inbound(&response_to(&invite, 200, &extra), udp_from(PBX_ADDR), t0);
    let _ = sent(&mut core);
    let _ = events(&mut core);
    // Hold: our re-INVITE, then the PBX's 200 is ACKed and its SDP reported.
    core.call_reoffer(id, "v=0\r\na=sendonly\r\n", t0).expect("re-offer");
    let out = sent(&mut core);
    let reinvite = &out[0].1;
    assert!(reinvite.starts_with("INVITE sip:pbx@192.0.2.60:5060 SIP/2.0"), "{reinvite}");
    assert_eq!(header(reinvite, "CSeq"), Some("2 INVITE"));
    assert!(reinvite.ends_with("a=sendonly\r\n"));
    assert!(core.call_reoffer(id, "v=0\r\n", t0).is_err(), "one offer at a time");
    let mut answer = String::from_utf8_lossy(&response_to(reinvite, 200, &["Content-Type: application/sdp".into()])).into_owned();
    answer = answer.replace("Content-Length: 0\r\n\r\n", "Content-Length: 21\r\n\r\nv=0\r\na=recvonly\r\nxx\r\n");
    core.handle_inbound(answer.as_bytes(), udp_from(PBX_ADDR), t0);
    let out = sent(&mut core);
    assert!(out.iter().any(|(_, t)| t.starts_with("ACK sip:pbx@192.0.2.60:5060") && header(t, "CSeq") == Some("2 ACK")), "{out:?}");
    assert!(events(&mut core).iter().any(|e| matches!(e, CoreEvent::Dialog(DialogEvent::ReofferAnswered { id: i, .. }) if *i == id)));
    // The refresh: UPDATE without a body at 900 s.
    let (out, _) = run_clock(&mut core, t0, t0 + Duration::from_secs(901));
    let update = out.iter().find(|t| t.starts_with("UPDATE ")).expect("UPDATE refresh");
    assert_eq!(header(update, "Session-Expires"), Some("1800;refresher=uac"));
    assert_eq!(header(update, "Content-Length"), Some("0"));
}

const PBX_ADDR: &str = "192.0.2.60:5060";

/// RFC 3262 as UAS: a caller that requires 100rel gets a reliable 180, retransmitted until its
/// PRACK; our 2xx waits for the PRACK so the two arrive in order.
#[test]
fn reliable_ringing_is_retransmitted_until_prack_and_the_answer_waits_for_it() {
    let t0 = Instant::now();
    let mut core = core_with(profiles(), t0);
    let invite = request("INVITE", "sip:bob@example.com", "sip:carrier@trunk", "z9hG4bKinv", &["Require: 100rel".into()]);
    core.handle_inbound(&invite, udp_from(TRUNK), t0);
    let id = std::iter::from_fn(|| core.poll_event()).find_map(|e| if let CoreEvent::IncomingCall(c) = e { Some(c.id) } else { None }).expect("call");
    let _ = sent(&mut core);
    core.call_ringing(id, t0);
    let ringing = sent(&mut core).remove(0).1;
    assert_eq!(status_line(&ringing), 180);
    assert_eq!((header(&ringing, "Require"), header(&ringing, "RSeq")), (Some("100rel"), Some("1")));
    assert!(header(&ringing, "Contact").is_some(), "a reliable 1xx sets up the early dialog");
    let tag = header(&ringing, "To").and_then(|t| t.split("tag=").nth(1)).expect("To tag").to_string();
    let (out, _) = run_clock(&mut core, t0, t0 + Duration::from_millis(1600));
    assert_eq!(out.iter().filter(|t| status_line(t) == 180).count(), 2, "retransmitted at 0.5 s and 1.5 s");
    core.call_answer(id, "v=0\r\n", t0 + Duration::from_millis(1600)).expect("answer");
    assert!(sent(&mut core).is_empty(), "the 2xx waits for the PRACK");
    let t2 = t0 + Duration::from_secs(2);
    core.handle_inbound(&in_dialog(&String::from_utf8_lossy(&invite), &tag, "PRACK", 2, "z9hG4bKpr", &["RAck: 1 1 INVITE"], ""), udp_from(TRUNK), t2);
    let out = sent(&mut core);
    let answers: Vec<(u16, String)> = out.iter().map(|(_, t)| (status_line(t), header(t, "CSeq").unwrap_or_default().to_string())).collect();
    assert_eq!(answers, vec![(200, "2 PRACK".to_string()), (200, "1 INVITE".to_string())]);
    core.handle_inbound(&in_dialog(&String::from_utf8_lossy(&invite), &tag, "ACK", 1, "z9hG4bKack", &[], ""), udp_from(TRUNK), t2);
    let (out, _) = run_clock(&mut core, t2, t2 + Duration::from_secs(10));
    assert!(!out.iter().any(|t| status_line(t) == 180), "no 180 after the PRACK: {out:?}");
}

#[test]
fn reliable_ringing_without_prack_fails_the_call_after_64_t1() {
    let t0 = Instant::now();
    let mut core = core_with(profiles(), t0);
    let invite = request("INVITE", "sip:bob@example.com", "sip:carrier@trunk", "z9hG4bKinv", &["Require: 100rel".into()]);
    core.handle_inbound(&invite, udp_from(TRUNK), t0);
    let id = std::iter::from_fn(|| core.poll_event()).find_map(|e| if let CoreEvent::IncomingCall(c) = e { Some(c.id) } else { None }).expect("call");
    core.call_ringing(id, t0);
    let _ = sent(&mut core);
    let (out, reported) = run_clock(&mut core, t0, t0 + Duration::from_secs(33));
    assert!(out.iter().any(|t| status_line(t) == 500), "{out:?}");
    assert!(reported.contains(&CoreEvent::CallEnded { id, reason: CallEndReason::NoAck }));
}

/// RFC 3262 as UAC: a reliable 183 gets one PRACK per RSeq, in the early dialog, and the CSeq
/// numbers that follow (BYE) stay above the PRACK's.
#[test]
fn reliable_provisional_of_a_placed_call_is_pracked_once() {
    let t0 = Instant::now();
    let mut core = core_with(vec![], t0);
    let (id, invite) = placed_invite(&mut core, t0);
    assert!(header(&invite, "Supported").is_some_and(|s| s.contains("100rel")));
    let progress = ["Require: 100rel".to_string(), "RSeq: 7".into(), "Contact: <sip:pbx@192.0.2.60:5060>".into()];
    let mut reliable = String::from_utf8_lossy(&response_to(&invite, 183, &progress)).into_owned();
    reliable = reliable.replace(&format!("To: {}\r\n", header(&invite, "To").expect("To")), &format!("To: {};tag=pbx\r\n", header(&invite, "To").expect("To")));
    core.handle_inbound(reliable.as_bytes(), udp_from(PBX_ADDR), t0);
    let out = sent(&mut core);
    let prack = &out.iter().find(|(_, t)| t.starts_with("PRACK ")).expect("PRACK").1;
    assert!(prack.starts_with("PRACK sip:pbx@192.0.2.60:5060 SIP/2.0"), "{prack}");
    assert_eq!((header(prack, "RAck"), header(prack, "CSeq")), (Some("7 1 INVITE"), Some("2 PRACK")));
    assert!(header(prack, "To").is_some_and(|t| t.ends_with(";tag=pbx")), "{prack}");
    core.handle_inbound(reliable.as_bytes(), udp_from(PBX_ADDR), t0);
    assert!(!sent(&mut core).iter().any(|(_, t)| t.starts_with("PRACK ")), "a retransmitted 183 is not PRACKed again");
    core.handle_inbound(&response_to(&invite, 200, &["Contact: <sip:pbx@192.0.2.60:5060>".into()]), udp_from(PBX_ADDR), t0);
    let _ = sent(&mut core);
    core.outbound_hangup(id, t0);
    let bye = sent(&mut core).into_iter().map(|(_, t)| t).find(|t| t.starts_with("BYE ")).expect("BYE");
    assert_eq!(header(&bye, "CSeq"), Some("3 BYE"));
}
