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

async fn send_raw(socket: &mut Socket, text: String) -> Value {
    socket.send(Message::Text(text.into())).await.expect("send");
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), socket.next()).await.expect("a reply within 5 s").expect("open").expect("frame");
        if let Message::Text(text) = message {
            return serde_json::from_str(text.as_str()).expect("JSON reply");
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
    let mut tampered = token(600, JWT_SECRET);
    tampered.pop();
    tampered.push('A');
    assert!(matches!(error_code(&send(&mut ws, json!({"type": "login", "id": 8, "method": "token", "token": tampered})).await), "token_invalid"));
    still_alive(&mut ws).await;

    let login = send(&mut ws, json!({"type": "login", "id": "login", "method": "token", "token": token(600, JWT_SECRET)})).await;
    assert_eq!((login["ok"].as_bool(), login["user"].as_str(), login["id"].as_str()), (Some(true), Some("alice"), Some("login")), "{login}");
    assert_eq!(error_code(&send(&mut ws, json!({"type": "login", "id": 9, "method": "token", "token": token(600, JWT_SECRET)})).await), "already_logged_in");
    assert_eq!(error_code(&send(&mut ws, json!({"type": "hangup", "id": 10, "call_id": "nope"})).await), "unknown_call");
    assert_eq!(error_code(&send(&mut ws, json!({"type": "dtmf", "id": 11, "call_id": "x", "digits": "12<script>"})).await), "bad_request");
    assert_eq!(error_code(&send(&mut ws, json!({"type": "call", "id": 12, "target": "+15551234567", "sdp": "v=0"})).await), "forbidden");
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
