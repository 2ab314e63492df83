//! The signaling protocol over a real WebSocket against the running gateway: every error path gets
//! its documented code (docs/signaling.md), and the connection keeps working afterwards.

mod support;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use support::{Gateway, GatewayOptions, ALICE_PASSWORD, JWT_SECRET};
use tokio_tungstenite::tungstenite::Message;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(gateway: &Gateway) -> Socket {
    let (socket, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}/ws", gateway.http_port)).await.expect("connect /ws");
    socket
}

/// Sends a frame and returns the reply to it: the frame with the same id, or for frames whose id
/// cannot be read (bad JSON), the first reply without one. Events in between are skipped.
async fn send_raw(socket: &mut Socket, text: String) -> Value {
    let expected_id = serde_json::from_str::<Value>(&text).ok().map(|v| v["id"].clone()).unwrap_or(Value::Null);
    socket.send(Message::Text(text.into())).await.expect("send");
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), socket.next()).await.expect("a reply within 5 s").expect("open").expect("frame");
        if let Message::Text(text) = message {
            let reply: Value = serde_json::from_str(text.as_str()).expect("JSON reply");
            // Errors for frames the server could not read (bad JSON, oversize) carry no id.
            if reply["id"] == expected_id || (reply["type"] == "error" && reply["id"].is_null()) {
                return reply;
            }
        }
    }
}

async fn send(socket: &mut Socket, frame: Value) -> Value {
    send_raw(socket, frame.to_string()).await
}

/// After any error the connection must still answer.
async fn still_alive(socket: &mut Socket) {
    let pong = send(socket, json!({"type": "ping", "id": "alive"})).await;
    assert_eq!((pong["type"].as_str(), pong["id"].as_str()), (Some("pong"), Some("alive")), "{pong}");
}

fn token(exp_offset: i64, secret: &str) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64;
    let claims = sipbridge::signaling::jwt::Claims { sub: "alice".into(), exp: (now + exp_offset) as u64, nbf: None, iat: None, profiles: vec![] };
    sipbridge::signaling::jwt::sign(&claims, secret.as_bytes())
}

fn error_code(reply: &Value) -> &str {
    assert_eq!(reply["type"], "error", "{reply}");
    reply["code"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn every_error_path_gets_its_code_and_the_connection_survives() {
    let gateway = Gateway::start(GatewayOptions::default());
    let mut ws = connect(&gateway).await;

    assert_eq!(error_code(&send(&mut ws, json!({"type": "call", "id": 1, "target": "echo", "sdp": "v=0"})).await), "hello_required");
    let hello = send(&mut ws, json!({"type": "hello", "id": 2, "versions": [1]})).await;
    assert_eq!((hello["ok"].as_bool(), hello["version"].as_u64()), (Some(true), Some(1)), "{hello}");

    assert_eq!(error_code(&send_raw(&mut ws, "{not json".into()).await), "bad_json");
    still_alive(&mut ws).await;
    assert_eq!(error_code(&send_raw(&mut ws, "[1,2,3]".into()).await), "bad_frame");
    still_alive(&mut ws).await;
    assert_eq!(error_code(&send(&mut ws, json!({"type": "teleport", "id": 3})).await), "unknown_type");
    still_alive(&mut ws).await;
    let oversize = json!({"type": "ping", "id": 4, "padding": "x".repeat(70_000)});
    assert_eq!(error_code(&send(&mut ws, oversize).await), "frame_too_large");
    still_alive(&mut ws).await;
    assert_eq!(error_code(&send(&mut ws, json!({"type": "call", "id": 5, "target": "echo", "sdp": "v=0"})).await), "not_logged_in");
    still_alive(&mut ws).await;

    let expired = send(&mut ws, json!({"type": "login", "id": 6, "method": "token", "token": token(-3_600, JWT_SECRET)})).await;
    assert_eq!(error_code(&expired), "token_expired");
    let forged = send(&mut ws, json!({"type": "login", "id": 7, "method": "token", "token": token(600, "another-secret-that-is-not-ours-at-all!!")})).await;
    assert_eq!(error_code(&forged), "token_invalid");
    // Change a character inside the signature (the last one may only carry padding bits, which
    // lenient decoders ignore), always to a different one.
    let tampered = {
        let mut chars: Vec<char> = token(600, JWT_SECRET).chars().collect();
        let at = chars.len() - 10;
        chars[at] = if chars[at] == 'A' { 'B' } else { 'A' };
        chars.into_iter().collect::<String>()
    };
    assert!(matches!(error_code(&send(&mut ws, json!({"type": "login", "id": 8, "method": "token", "token": tampered})).await), "token_invalid"));
    still_alive(&mut ws).await;

    let login = send(&mut ws, json!({"type": "login", "id": "login", "method": "token", "token": token(600, JWT_SECRET)})).await;
    assert_eq!((login["ok"].as_bool(), login["user"].as_str(), login["id"].as_str()), (Some(true), Some("alice"), Some("login")), "{login}");
    assert_eq!(error_code(&send(&mut ws, json!({"type": "login", "id": 9, "method": "token", "token": token(600, JWT_SECRET)})).await), "already_logged_in");
    assert_eq!(error_code(&send(&mut ws, json!({"type": "hangup", "id": 10, "call_id": "nope"})).await), "unknown_call");
    assert_eq!(error_code(&send(&mut ws, json!({"type": "dtmf", "id": 11, "call_id": "x", "digits": "12<script>"})).await), "bad_request");
    assert_eq!(error_code(&send(&mut ws, json!({"type": "call", "id": 12, "target": "+15551234567", "sdp": "v=0"})).await), "forbidden");
    // A codec the SIP side cannot be offered (docs/signaling.md section 4.4) is refused before anything is placed.
    assert_eq!(error_code(&send(&mut ws, json!({"type": "call", "id": 13, "target": "+15551234567", "sdp": "v=0", "codec": "G729"})).await), "bad_request");
    still_alive(&mut ws).await;
}

#[tokio::test]
async fn local_users_log_in_with_a_password() {
    let gateway = Gateway::start(GatewayOptions::default());
    let mut ws = connect(&gateway).await;
    send(&mut ws, json!({"type": "hello", "id": 1, "versions": [1]})).await;
    let wrong = send(&mut ws, json!({"type": "login", "id": 2, "method": "password", "user": "alice", "password": "nope"})).await;
    assert_eq!(error_code(&wrong), "login_failed");
    let ok = send(&mut ws, json!({"type": "login", "id": 3, "method": "password", "user": "alice", "password": ALICE_PASSWORD})).await;
    assert_eq!((ok["ok"].as_bool(), ok["user"].as_str()), (Some(true), Some("alice")), "{ok}");
    assert!(!gateway.log().contains(ALICE_PASSWORD), "passwords are never logged");
}

/// A browser offer whose only candidate is dead: ICE can never connect.
const UNREACHABLE_OFFER: &str = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\na=ice-ufrag:Qx7b\r\n\
a=ice-pwd:tdYfbZxBbd2lQ1KJnxMRz4Yx\r\na=ice-options:trickle\r\n\
a=fingerprint:sha-256 3A:58:9C:21:7E:AF:60:37:9E:5B:26:30:29:6D:F7:3E:2E:3B:B5:96:62:53:9C:55:0B:F6:59:83:95:49:2C:E0\r\n\
a=setup:actpass\r\na=mid:0\r\na=sendrecv\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n";

#[tokio::test]
async fn a_call_whose_ice_fails_ends_with_a_clear_reason() {
    let gateway = Gateway::start(GatewayOptions { extra_media: "ice_failed_timeout_secs = 3".into(), ..Default::default() });
    let mut ws = connect(&gateway).await;
    send(&mut ws, json!({"type": "hello", "id": 1, "versions": [1]})).await;
    send(&mut ws, json!({"type": "login", "id": 2, "method": "token", "token": token(600, JWT_SECRET)})).await;
    let reply = send(&mut ws, json!({"type": "call", "id": 3, "target": "echo", "sdp": UNREACHABLE_OFFER})).await;
    assert_eq!(reply["ok"], true, "{reply}");
    let call_id = reply["call_id"].as_str().unwrap_or_default().to_string();
    // The candidate arrives after the answer (trickle); it points at a port nobody answers on.
    ws.send(Message::Text(json!({"type": "candidate", "call_id": call_id, "candidate": {"candidate": "candidate:1 1 udp 2122260223 127.0.0.1 9 typ host", "sdpMid": "0", "sdpMLineIndex": 0}}).to_string().into())).await.expect("send");
    let started = std::time::Instant::now();
    let mut seen = Vec::new();
    let hangup = loop {
        let message = tokio::time::timeout(Duration::from_secs(20), ws.next()).await.expect("an event within 20 s").expect("open").expect("frame");
        let Message::Text(text) = message else { continue };
        let event: Value = serde_json::from_str(text.as_str()).expect("JSON");
        seen.push(event["type"].as_str().unwrap_or_default().to_string());
        if event["type"] == "hangup" {
            break event;
        }
    };
    println!("ICE failure reported after {:?}; events: {seen:?}", started.elapsed());
    assert!(seen.contains(&"answered".to_string()), "{seen:?}");
    assert_eq!((hangup["call_id"].as_str(), hangup["reason"].as_str(), hangup["cause"].as_str()), (Some(call_id.as_str()), Some("failed"), Some("ice_failed")), "{hangup}");
    still_alive(&mut ws).await;
}

/// A user with no outbound profile calls a number that is no registered phone: the browser
/// gets `forbidden`, and the gateway log has one line saying who was refused and why.
#[tokio::test]
async fn a_call_the_user_may_not_place_is_refused_and_logged() {
    let gateway = Gateway::start(GatewayOptions::default());
    let mut ws = connect(&gateway).await;
    send(&mut ws, json!({"type": "hello", "id": 1, "versions": [1]})).await;
    send(&mut ws, json!({"type": "login", "id": 2, "method": "token", "token": token(600, JWT_SECRET)})).await;
    let reply = send(&mut ws, json!({"type": "call", "id": 3, "target": "+15551234567", "sdp": UNREACHABLE_OFFER})).await;
    assert_eq!(error_code(&reply), "forbidden");
    let log = gateway.log();
    let line = log.lines().find(|l| l.contains("call refused")).unwrap_or_else(|| panic!("no log line for the refused call:\n{log}"));
    assert!(line.contains("user=alice") && line.contains("target=+15551234567"), "{line}");
    still_alive(&mut ws).await;
}

#[tokio::test]
async fn failed_logins_are_rate_limited_per_address() {
    let gateway = Gateway::start(GatewayOptions::default());
    // Ten failures from one address, spread over fresh connections as an attacker would.
    for attempt in 0..10 {
        let mut ws = connect(&gateway).await;
        send(&mut ws, json!({"type": "hello", "id": 1, "versions": [1]})).await;
        let reply = send(&mut ws, json!({"type": "login", "id": 2, "method": "password", "user": "alice", "password": format!("guess-{attempt}")})).await;
        assert_eq!(error_code(&reply), "login_failed", "attempt {attempt}: {reply}");
    }
    let mut ws = connect(&gateway).await;
    send(&mut ws, json!({"type": "hello", "id": 1, "versions": [1]})).await;
    let blocked = send(&mut ws, json!({"type": "login", "id": 2, "method": "password", "user": "alice", "password": ALICE_PASSWORD})).await;
    assert_eq!(error_code(&blocked), "rate_limited", "even the right password waits out the window: {blocked}");
    still_alive(&mut ws).await;
}

fn pbx_profile(port: u16) -> (String, String) {
    ("office.toml".into(), format!("kind = \"pbx\"\nhost = \"127.0.0.1\"\nport = {port}\ntransport = \"udp\"\nregister = false\n"))
}

async fn pbx_login(gateway: &Gateway, password: &str) -> (Socket, Value) {
    let mut ws = connect(gateway).await;
    send(&mut ws, json!({"type": "hello", "id": 1, "versions": [1]})).await;
    let reply = send(&mut ws, json!({"type": "login", "id": 2, "method": "pbx", "profile": "office", "user": "bob", "password": password})).await;
    (ws, reply)
}

#[tokio::test]
async fn login_through_the_pbx_succeeds_only_if_the_pbx_accepts() {
    support::sipp_available();
    let port = support::free_port();
    let pbx = std::thread::spawn(move || support::sipp("pbx_user_accept.xml", "", &["-t", "u1", "-p", &port.to_string()]));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let gateway = Gateway::start(GatewayOptions { profiles: vec![pbx_profile(port)], ..Default::default() });
    let (ws, reply) = pbx_login(&gateway, "bobs-pbx-password").await;
    assert_eq!((reply["ok"].as_bool(), reply["user"].as_str()), (Some(true), Some("bob")), "{reply}\n{}", gateway.log());
    assert_eq!(reply["profiles"], json!(["office"]));
    let run = pbx.join().expect("sipp");
    assert!(run.success(), "the PBX saw bob's digest REGISTER: {}", run.describe());
    let status = gateway.status();
    assert!(status["upstreams"].as_array().is_some_and(|u| u.iter().any(|u| u["profile"] == "office/bob" && u["registered"] == true)), "{status:#}");
    assert!(!gateway.log().contains("bobs-pbx-password"), "the password is never logged");
    // The user's last browser leaves: the gateway unregisters them upstream.
    drop(ws);
    gateway.wait_status("bob unregistering", Duration::from_secs(5), |s| {
        s["upstreams"].as_array().is_some_and(|u| u.iter().any(|u| u["profile"] == "office/bob" && u["registered"] == false))
    });
}

#[tokio::test]
async fn login_through_the_pbx_fails_when_the_pbx_refuses() {
    support::sipp_available();
    let port = support::free_port();
    let pbx = std::thread::spawn(move || support::sipp("pbx_user_refuse.xml", "", &["-t", "u1", "-p", &port.to_string()]));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let gateway = Gateway::start(GatewayOptions { profiles: vec![pbx_profile(port)], ..Default::default() });
    let (_ws, reply) = pbx_login(&gateway, "wrong").await;
    assert_eq!(error_code(&reply), "login_failed", "{reply}\n{}", gateway.log());
    let _ = pbx.join();
}

#[tokio::test]
async fn video_m_lines_are_declined_with_port_zero() {
    let gateway = Gateway::start(GatewayOptions::default());
    let mut ws = connect(&gateway).await;
    send(&mut ws, json!({"type": "hello", "id": 1, "versions": [1]})).await;
    send(&mut ws, json!({"type": "login", "id": 2, "method": "token", "token": token(600, JWT_SECRET)})).await;
    // Chrome's shape: audio and video bundled, video with VP8.
    let offer = UNREACHABLE_OFFER.replace("a=group:BUNDLE 0", "a=group:BUNDLE 0 1")
        + "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\na=ice-ufrag:Qx7b\r\na=ice-pwd:tdYfbZxBbd2lQ1KJnxMRz4Yx\r\n\
a=fingerprint:sha-256 3A:58:9C:21:7E:AF:60:37:9E:5B:26:30:29:6D:F7:3E:2E:3B:B5:96:62:53:9C:55:0B:F6:59:83:95:49:2C:E0\r\n\
a=setup:actpass\r\na=mid:1\r\na=sendrecv\r\na=rtcp-mux\r\na=rtpmap:96 VP8/90000\r\n";
    let reply = send(&mut ws, json!({"type": "call", "id": 3, "target": "echo", "sdp": offer})).await;
    assert_eq!(reply["ok"], true, "{reply}");
    let answered = loop {
        let message = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("answer").expect("open").expect("frame");
        if let Message::Text(text) = message {
            let event: Value = serde_json::from_str(text.as_str()).expect("JSON");
            if event["type"] == "answered" {
                break event;
            }
        }
    };
    let sdp = answered["sdp"].as_str().unwrap_or_default();
    let video = sdp.lines().find(|l| l.starts_with("m=video")).unwrap_or_default();
    assert!(video.starts_with("m=video 0 "), "video declined with port 0: {sdp}");
    let audio = sdp.lines().find(|l| l.starts_with("m=audio")).unwrap_or_default();
    assert!(!audio.starts_with("m=audio 0 "), "audio accepted: {sdp}");
}
