//! Connection and protocol tests, and the helpers the other test files share. Each error path is
//! followed by a ping, because an invalid frame must never break the connection. Logins are in
//! `tests_login.rs`, JWT checks in `tests_jwt.rs`, random frames in `tests_fuzz.rs`.

use super::jwt::{self, Claims};
use super::*;
use serde_json::{json, Value};

pub(super) const SECRET: &[u8] = b"test-secret-0123456789abcdef";
pub(super) const NOW: u64 = 1_700_000_000;
pub(super) const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";

pub(super) fn config() -> ConnectionConfig {
    ConnectionConfig {
        jwt_secret: Some(SECRET.to_vec()),
        server: "sipbridge/test".into(),
        ice_servers: vec![crate::config::IceServerConfig {
            urls: vec!["turn:turn.example.com:3478".into()],
            auth: crate::config::IceAuth::Static { username: "u".into(), credential: crate::config::Secret("c".into()) },
        }],
        max_frame: DEFAULT_MAX_FRAME,
    }
}

pub(super) fn token(sub: &str, exp: u64) -> String {
    jwt::sign(&Claims { sub: sub.into(), exp, nbf: None, iat: Some(NOW), profiles: vec!["pbx1".into()] }, SECRET)
}

pub(super) fn fresh() -> Connection {
    Connection::new(config())
}

pub(super) fn greeted() -> Connection {
    let mut c = fresh();
    let out = send(&mut c, json!({"type": "hello", "id": 0, "versions": [1]}));
    assert_eq!(out[0]["ok"], true, "{out:?}");
    c
}

pub(super) fn logged_in() -> Connection {
    let mut c = greeted();
    let out = send(&mut c, json!({"type": "login", "id": "l", "method": "token", "token": token("alice", NOW + 600)}));
    assert_eq!(out[0]["ok"], true, "{out:?}");
    c
}

pub(super) fn send_text(c: &mut Connection, text: &str) -> Vec<Value> {
    c.handle_frame(text, NOW);
    drain(c)
}

pub(super) fn send(c: &mut Connection, frame: Value) -> Vec<Value> {
    send_text(c, &frame.to_string())
}

pub(super) fn drain(c: &mut Connection) -> Vec<Value> {
    std::iter::from_fn(|| c.poll_outgoing()).map(|t| serde_json::from_str(&t).unwrap()).collect()
}

#[track_caller]
pub(super) fn assert_error(out: &[Value], code: &str, id: Value) {
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0]["type"], "error", "{out:?}");
    assert_eq!(out[0]["code"], code, "{out:?}");
    assert_eq!(out[0].get("id").cloned().unwrap_or(Value::Null), id, "{out:?}");
    assert!(!out[0]["message"].as_str().unwrap().is_empty());
}

#[track_caller]
pub(super) fn assert_alive(c: &mut Connection) {
    let out = send_text(c, r#"{"type":"ping","id":"still-there"}"#);
    assert_eq!(out, vec![json!({"type": "pong", "id": "still-there"})]);
}

#[test]
fn hello_negotiates_the_highest_common_version() {
    let mut c = fresh();
    let out = send(&mut c, json!({"type": "hello", "id": 1, "versions": [7, 1]}));
    assert_eq!(out, vec![json!({"type": "hello", "id": 1, "ok": true, "version": 1, "server": "sipbridge/test"})]);
    assert_eq!(c.version(), Some(1));
    assert_error(&send(&mut c, json!({"type": "hello", "id": 2, "versions": [1]})), "bad_request", json!(2));
    assert_alive(&mut c);
}

#[test]
fn hello_without_a_common_version_is_refused_and_can_be_retried() {
    for versions in [json!([2, 3]), json!([])] {
        let mut c = fresh();
        let out = send(&mut c, json!({"type": "hello", "id": "h", "versions": versions}));
        assert_error(&out, "unsupported_version", json!("h"));
        assert_error(&send_text(&mut c, r#"{"type":"ping","id":1}"#), "hello_required", json!(1));
        assert_eq!(send(&mut c, json!({"type": "hello", "id": "h", "versions": [1]}))[0]["version"], 1);
        assert_alive(&mut c);
    }
}

#[test]
fn everything_before_hello_gets_hello_required() {
    let mut c = fresh();
    for t in CLIENT_TYPES.iter().filter(|t| **t != "hello") {
        let frame = example(t);
        assert_error(&send(&mut c, frame), "hello_required", json!(format!("{t}-id")));
    }
    let typed_wrong = json!({"type": "call", "id": 1, "target": 5, "sdp": SDP});
    assert_error(&send(&mut c, typed_wrong), "bad_frame", json!(1));
}

#[test]
fn ids_are_echoed_verbatim() {
    let mut c = greeted();
    for id in [json!("abc-1"), json!(""), json!(42), json!(0), json!(-7), json!(1.5), json!(u64::MAX)] {
        assert_eq!(send(&mut c, json!({"type": "ping", "id": id})), vec![json!({"type": "pong", "id": id})]);
        assert_error(&send(&mut c, json!({"type": "fly", "id": id})), "unknown_type", id.clone());
        assert_error(&send(&mut c, json!({"type": "hangup", "id": id, "call_id": "x"})), "not_logged_in", id);
    }
    let out = send_text(&mut c, r#"{"type":"ping","id":"\u00e9\"x"}"#);
    assert_eq!(out[0]["id"], "é\"x");
}

/// (frame, code, id echoed). Run on a logged-in connection.
fn bad_frames() -> Vec<(String, &'static str, Value)> {
    let long_digits = "1".repeat(33);
    let frames = [
        (r#"{"type":"ping","id":1"#.to_owned(), "bad_json", Value::Null),
        ("".to_owned(), "bad_json", Value::Null),
        ("[1,2]".to_owned(), "bad_frame", Value::Null),
        (r#""ping""#.to_owned(), "bad_frame", Value::Null),
        ("null".to_owned(), "bad_frame", Value::Null),
        (r#"{"id":5}"#.to_owned(), "bad_frame", json!(5)),
        (r#"{"type":7,"id":"t"}"#.to_owned(), "bad_frame", json!("t")),
        (r#"{"type":"ping","id":{}}"#.to_owned(), "bad_frame", Value::Null),
        (r#"{"type":"ping","id":null}"#.to_owned(), "bad_frame", Value::Null),
        (r#"{"type":"ping"}"#.to_owned(), "bad_frame", Value::Null),
        (r#"{"type":"warp","id":3}"#.to_owned(), "unknown_type", json!(3)),
        (r#"{"type":"pong","id":3}"#.to_owned(), "unknown_type", json!(3)),
        (json!({"type": "call", "id": 4, "target": 5, "sdp": SDP}).to_string(), "bad_frame", json!(4)),
        (json!({"type": "call", "id": 4, "sdp": SDP}).to_string(), "bad_frame", json!(4)),
        (json!({"type": "dtmf", "id": 4, "call_id": "c1", "digits": 5}).to_string(), "bad_frame", json!(4)),
        (json!({"type": "reject", "id": 4, "call_id": "c1", "reason": "bored"}).to_string(), "bad_frame", json!(4)),
        (json!({"type": "candidate", "call_id": "c1"}).to_string(), "bad_frame", Value::Null),
        (json!({"type": "candidate", "id": 4, "call_id": "c1", "candidate": 1}).to_string(), "bad_frame", json!(4)),
        (json!({"type": "login", "id": 4, "method": "magic"}).to_string(), "bad_request", json!(4)),
        (json!({"type": "login", "id": 4, "method": "token", "token": "x"}).to_string(), "already_logged_in", json!(4)),
        (json!({"type": "dtmf", "id": 5, "call_id": "c1", "digits": "12x"}).to_string(), "bad_request", json!(5)),
        (json!({"type": "dtmf", "id": 5, "call_id": "c1", "digits": "12a"}).to_string(), "bad_request", json!(5)),
        (json!({"type": "dtmf", "id": 5, "call_id": "c1", "digits": ""}).to_string(), "bad_request", json!(5)),
        (json!({"type": "dtmf", "id": 5, "call_id": "c1", "digits": long_digits}).to_string(), "bad_request", json!(5)),
        (json!({"type": "call", "id": 6, "target": "echo", "sdp": ""}).to_string(), "bad_request", json!(6)),
        (json!({"type": "call", "id": 6, "target": "", "sdp": SDP}).to_string(), "bad_request", json!(6)),
        (json!({"type": "call", "id": 6, "target": "a\r\nVia: x", "sdp": SDP}).to_string(), "bad_request", json!(6)),
        (json!({"type": "call", "id": 6, "target": "echo", "sdp": SDP, "codec": "PC MU"}).to_string(), "bad_request", json!(6)),
        (json!({"type": "accept", "id": 7, "call_id": "", "sdp": SDP}).to_string(), "bad_request", json!(7)),
        (json!({"type": "hangup", "id": 7, "call_id": "a b"}).to_string(), "bad_request", json!(7)),
        (json!({"type": "candidate", "id": 8, "call_id": "c1", "candidate": {"candidate": "candidate:1 1 udp 1 1.2.3.4 5 typ host"}}).to_string(), "bad_request", json!(8)),
    ];
    frames.into_iter().collect()
}

#[test]
fn every_bad_frame_gets_its_code_and_the_connection_keeps_working() {
    let mut c = logged_in();
    for (frame, code, id) in bad_frames() {
        let out = send_text(&mut c, &frame);
        assert_eq!(out.len(), 1, "{frame}: {out:?}");
        assert_eq!(out[0]["code"], code, "{frame}: {out:?}");
        assert_eq!(out[0].get("id").cloned().unwrap_or(Value::Null), id, "{frame}");
        assert!(c.poll_request().is_none(), "{frame}");
        assert_alive(&mut c);
    }
    assert_eq!(c.user().unwrap().user, "alice");
}

#[test]
fn oversize_frames_are_refused_before_parsing() {
    let mut c = logged_in();
    let frame =
        json!({"type": "call", "id": 1, "target": "echo", "sdp": format!("v=0\r\n{}", "a".repeat(DEFAULT_MAX_FRAME))});
    assert_error(&send(&mut c, frame), "frame_too_large", Value::Null);
    assert_error(&send_text(&mut c, &"x".repeat(DEFAULT_MAX_FRAME + 1)), "frame_too_large", Value::Null);
    assert_alive(&mut c);
}

#[test]
fn calls_need_a_login() {
    let mut c = greeted();
    for t in ["call", "accept", "reject", "hangup", "dtmf", "hold", "unhold", "reclaim", "transfer", "candidate"] {
        assert_error(&send(&mut c, example(t)), "not_logged_in", json!(format!("{t}-id")));
        assert_alive(&mut c);
    }
    assert!(c.poll_request().is_none());
}

/// A valid frame of each client type, with id "<type>-id".
pub(super) fn example(t: &str) -> Value {
    let id = format!("{t}-id");
    let cand = json!({"candidate": "candidate:1 1 udp 2122260223 192.0.2.1 54321 typ host", "sdpMid": "0", "sdpMLineIndex": 0});
    match t {
        "hello" => json!({"type": t, "id": id, "versions": [1]}),
        "login" => json!({"type": t, "id": id, "method": "password", "user": "u", "password": "p"}),
        "call" => json!({"type": t, "id": id, "target": "echo", "sdp": SDP, "codec": "PCMU"}),
        "accept" => json!({"type": t, "id": id, "call_id": "c1", "sdp": SDP}),
        "reject" => json!({"type": t, "id": id, "call_id": "c1", "reason": "busy"}),
        "dtmf" => json!({"type": t, "id": id, "call_id": "c1", "digits": "0123456789*#ABCD"}),
        "candidate" => json!({"type": t, "id": id, "call_id": "c1", "candidate": cand}),
        "transfer" => json!({"type": t, "id": id, "call_id": "c1", "target": "+15550001111"}),
        _ => json!({"type": t, "id": id, "call_id": "c1"}),
    }
}

#[test]
fn every_call_request_reaches_the_owner_and_its_reply_comes_back() {
    let mut c = logged_in();
    for t in ["call", "accept", "reject", "hangup", "dtmf", "hold", "unhold", "reclaim", "transfer", "candidate"] {
        let frame = example(t);
        let parsed: ClientMessage = serde_json::from_value(frame.clone()).unwrap();
        assert_eq!(serde_json::to_value(&parsed).unwrap(), frame, "ClientMessage round trip");
        assert!(send(&mut c, frame).is_empty());
        let req = c.poll_request().unwrap();
        let id = RequestId::Str(format!("{t}-id"));
        assert_eq!(req.id(), Some(&id));
        c.reply(id.clone(), json!({"call_id": "c9", "ok": false, "type": "spoof"}));
        assert_eq!(drain(&mut c), vec![json!({"type": t, "id": id, "ok": true, "call_id": "c9"})]);
        c.reply(id, json!({}));
        assert!(drain(&mut c).is_empty(), "a second reply is dropped");
    }
}

#[test]
fn requests_carry_their_fields() {
    let mut c = logged_in();
    let cand = IceCandidate {
        candidate: "candidate:1 1 udp 2122260223 192.0.2.1 54321 typ host".into(),
        sdp_mid: Some("0".into()),
        sdp_m_line_index: Some(0),
        username_fragment: None,
    };
    let expected = [
        Request::Call { id: "call-id".into(), target: "echo".into(), sdp: SDP.into(), codec: Some("PCMU".into()) },
        Request::Accept { id: "accept-id".into(), call_id: "c1".into(), sdp: SDP.into() },
        Request::Reject { id: "reject-id".into(), call_id: "c1".into(), reason: RejectReason::Busy },
        Request::Hangup { id: "hangup-id".into(), call_id: "c1".into() },
        Request::Dtmf { id: "dtmf-id".into(), call_id: "c1".into(), digits: "0123456789*#ABCD".into() },
        Request::Hold { id: "hold-id".into(), call_id: "c1".into() },
        Request::Unhold { id: "unhold-id".into(), call_id: "c1".into() },
        Request::Reclaim { id: "reclaim-id".into(), call_id: "c1".into() },
        Request::Transfer { id: "transfer-id".into(), call_id: "c1".into(), target: "+15550001111".into() },
        Request::Candidate { id: Some("candidate-id".into()), call_id: "c1".into(), candidate: Some(cand) },
    ];
    for want in expected {
        let t = match &want {
            Request::Call { .. } => "call",
            Request::Accept { .. } => "accept",
            Request::Reject { .. } => "reject",
            Request::Hangup { .. } => "hangup",
            Request::Dtmf { .. } => "dtmf",
            Request::Hold { .. } => "hold",
            Request::Unhold { .. } => "unhold",
            Request::Reclaim { .. } => "reclaim",
            Request::Transfer { .. } => "transfer",
            _ => "candidate",
        };
        send(&mut c, example(t));
        assert_eq!(c.poll_request(), Some(want));
    }
    send(&mut c, json!({"type": "reject", "id": 1, "call_id": "c1"}));
    assert!(matches!(c.poll_request(), Some(Request::Reject { reason: RejectReason::Declined, .. })));
}

#[test]
fn end_of_candidates_is_null_or_empty_and_needs_no_id() {
    let mut c = logged_in();
    for cand in [Value::Null, json!({"candidate": "", "sdpMid": "0", "sdpMLineIndex": 0})] {
        assert!(send(&mut c, json!({"type": "candidate", "call_id": "c1", "candidate": cand})).is_empty());
        assert_eq!(c.poll_request(), Some(Request::Candidate { id: None, call_id: "c1".into(), candidate: None }));
    }
    c.error(None, ErrorCode::UnknownCall, "no call c1");
    assert_eq!(drain(&mut c), vec![json!({"type": "error", "code": "unknown_call", "message": "no call c1"})]);
}

#[test]
fn owner_errors_clear_the_pending_request() {
    let mut c = logged_in();
    send(&mut c, json!({"type": "hangup", "id": 5, "call_id": "nope"}));
    c.error(Some(5.into()), ErrorCode::UnknownCall, "no such call");
    assert_error(&drain(&mut c), "unknown_call", json!(5));
    c.reply(5.into(), json!({}));
    assert!(drain(&mut c).is_empty());
    send(&mut c, json!({"type": "call", "id": 6, "target": "1002", "sdp": SDP}));
    c.error(Some(6.into()), ErrorCode::Forbidden, "target not allowed");
    assert_error(&drain(&mut c), "forbidden", json!(6));
}

#[test]
fn pending_ids_are_unique_and_bounded() {
    let mut c = logged_in();
    send(&mut c, json!({"type": "hold", "id": "dup", "call_id": "c1"}));
    assert_error(&send(&mut c, json!({"type": "unhold", "id": "dup", "call_id": "c1"})), "bad_request", json!("dup"));
    for i in 1..MAX_PENDING {
        assert!(send(&mut c, json!({"type": "hold", "id": i, "call_id": "c1"})).is_empty());
    }
    assert_error(&send(&mut c, json!({"type": "hold", "id": "over", "call_id": "c1"})), "rate_limited", json!("over"));
    c.reply(1.into(), Value::Null);
    assert_eq!(drain(&mut c), vec![json!({"type": "hold", "id": 1, "ok": true})]);
    assert!(send(&mut c, json!({"type": "hold", "id": "now-fits", "call_id": "c1"})).is_empty());
}

#[test]
fn frame_floods_are_rate_limited_then_recover() {
    let mut c = greeted();
    let mut limited = 0;
    for _ in 0..RATE_BURST + 10 {
        let out = send_text(&mut c, r#"{"type":"ping","id":1}"#);
        if out[0]["type"] == "error" {
            assert_error(&out, "rate_limited", json!(1));
            limited += 1;
        }
    }
    assert!((10..=11).contains(&limited), "{limited}");
    c.handle_frame(r#"{"type":"ping","id":2}"#, NOW + 1);
    assert_eq!(drain(&mut c), vec![json!({"type": "pong", "id": 2})]);
}

#[test]
fn events_serialize_as_documented_and_round_trip() {
    let cand = IceCandidate {
        candidate: "candidate:1".into(),
        sdp_mid: Some("0".into()),
        sdp_m_line_index: Some(0),
        username_fragment: None,
    };
    let caller = Caller { uri: "sip:1001@example.com".into(), display_name: Some("Ann".into()) };
    let cases = [
        (
            ServerEvent::Incoming { call_id: "c1".into(), caller, sdp: SDP.into() },
            json!({"type": "incoming", "call_id": "c1", "caller": {"uri": "sip:1001@example.com", "display_name": "Ann"}, "sdp": SDP}),
        ),
        (ServerEvent::Ringing { call_id: "c1".into(), sdp: None }, json!({"type": "ringing", "call_id": "c1"})),
        (ServerEvent::Ringing { call_id: "c1".into(), sdp: Some("v=0".into()) }, json!({"type": "ringing", "call_id": "c1", "sdp": "v=0"})),
        (
            ServerEvent::Answered { call_id: "c1".into(), sdp: SDP.into() },
            json!({"type": "answered", "call_id": "c1", "sdp": SDP}),
        ),
        (
            ServerEvent::Hangup { call_id: "c1".into(), reason: HangupReason::NoAnswer, cause: "SIP 480".into() },
            json!({"type": "hangup", "call_id": "c1", "reason": "no_answer", "cause": "SIP 480"}),
        ),
        (
            ServerEvent::Candidate { call_id: "c1".into(), candidate: Some(cand) },
            json!({"type": "candidate", "call_id": "c1", "candidate": {"candidate": "candidate:1", "sdpMid": "0", "sdpMLineIndex": 0}}),
        ),
        (
            ServerEvent::Candidate { call_id: "c1".into(), candidate: None },
            json!({"type": "candidate", "call_id": "c1", "candidate": null}),
        ),
    ];
    let mut c = logged_in();
    for (event, want) in cases {
        c.event(event.clone());
        assert_eq!(drain(&mut c), vec![want.clone()]);
        assert_eq!(serde_json::from_value::<ServerEvent>(want).unwrap(), event);
    }
}

#[test]
fn login_messages_round_trip() {
    for frame in [
        json!({"type": "hello", "id": 1, "versions": [1]}),
        json!({"type": "login", "id": 1, "method": "token", "token": "t"}),
        json!({"type": "login", "id": 1, "method": "password", "user": "u", "password": "p"}),
        json!({"type": "login", "id": "x", "method": "pbx", "profile": "pbx1", "user": "u", "password": "p"}),
        json!({"type": "ping", "id": 1}),
        json!({"type": "candidate", "call_id": "c", "candidate": null}),
    ] {
        let parsed: ClientMessage = serde_json::from_value(frame.clone()).unwrap();
        assert_eq!(serde_json::to_value(&parsed).unwrap(), frame);
    }
}

#[test]
fn error_codes_serialize_as_their_names() {
    for code in ErrorCode::ALL {
        assert_eq!(serde_json::to_value(code).unwrap(), json!(code.as_str()));
    }
}

#[test]
fn unknown_fields_are_ignored_for_forward_compatibility() {
    let mut c = greeted();
    let out = send(&mut c, json!({"type": "ping", "id": 1, "future": {"x": 1}}));
    assert_eq!(out, vec![json!({"type": "pong", "id": 1})]);
}

pub(super) fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
