//! SIP over WebSocket (RFC 7118, docs/sip-over-websocket.md): JsSIP from npm in headless Chromium
//! registers over ws://, wss:// (self-signed certificate) and the HTTP listener's /sip, SIP.js
//! too, and a
//! connection that closes takes its bindings with it; raw WebSocket clients get the documented
//! answer to every kind of bad input.

mod support;

use futures_util::{SinkExt, StreamExt};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::{free_port, Gateway, GatewayOptions, ALICE_PASSWORD, LOCAL_DOMAIN};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const MAX_MESSAGE: usize = 8192;

/// A gateway with `ws` and `wss` listeners of their own and SIP over WebSocket at `/sip`.
fn start_gateway() -> (Gateway, u16, u16) {
    start_gateway_with("")
}

/// `start_gateway` with more `[sip]` settings.
fn start_gateway_with(sip_settings: &str) -> (Gateway, u16, u16) {
    let (ws_port, wss_port) = (free_port(), free_port());
    let extra_sip = format!(
        "max_message_bytes = {MAX_MESSAGE}\n{sip_settings}\
         [[sip.listen]]\ntransport = \"ws\"\naddress = \"127.0.0.1:{ws_port}\"\n\
         [[sip.listen]]\ntransport = \"wss\"\naddress = \"127.0.0.1:{wss_port}\"\n"
    );
    let options = GatewayOptions { extra_sip, extra_http: "sip_websocket = true\n".into(), ..GatewayOptions::default() };
    (Gateway::start(options), ws_port, wss_port)
}

fn bindings(gateway: &Gateway) -> Vec<serde_json::Value> {
    gateway.status()["bindings"].as_array().cloned().unwrap_or_default()
}

fn jssip_registers_then_vanishes(gateway: &Gateway, url: &str, via_transport: &str) {
    registers_then_vanishes(gateway, "jssip", url, via_transport, &[ALICE_PASSWORD, "register"]);
}

/// Runs tests/browser/sip_ws_register.mjs: `library` (jssip or sipjs) registers as alice; the
/// binding is checked through the API; then the browser is dropped without un-registering and
/// the binding must go. `password_mode_token`: the script's PASSWORD MODE [TOKEN] arguments.
fn registers_then_vanishes(gateway: &Gateway, library: &str, url: &str, via_transport: &str, password_mode_token: &[&str]) {
    let user_agent = if library == "sipjs" { "SIPjs-test" } else { "JsSIP-test" };
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/sip_ws_register.mjs");
    let mut child = Command::new("node")
        .arg(script)
        .args([library, url, &format!("sip:alice@{LOCAL_DOMAIN}")])
        .env("SIP_WS_PAGE", format!("http://127.0.0.1:{}/healthz", gateway.http_port))
        .args(password_mode_token)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = lines.next().expect("a result line").expect("read");
    let result: serde_json::Value = serde_json::from_str(&first).expect("JSON");
    assert_eq!(result["registered"], true, "{url}: {result}\nlog:\n{}", gateway.log());
    assert_eq!(result["status"], 200, "{result}");
    let status = gateway.wait_status("the JsSIP binding", Duration::from_secs(10), |s| {
        s["bindings"].as_array().is_some_and(|b| b.iter().any(|b| b["transport"] == via_transport && b["user_agent"] == user_agent))
    });
    let binding = status["bindings"].as_array().and_then(|b| b.iter().find(|b| b["transport"] == via_transport).cloned()).expect("binding");
    assert_eq!(binding["aor"], format!("sip:alice@{LOCAL_DOMAIN}"), "{binding}");
    assert!(binding["contact"].as_str().is_some_and(|c| c.contains(".invalid")), "the client's contact host is .invalid: {binding}");
    let mut stdin = child.stdin.take().expect("stdin");
    writeln!(stdin, "close").expect("tell the page to go");
    drop(stdin);
    let exit = child.wait().expect("node exits");
    assert!(exit.success(), "sip_ws_register.mjs failed");
    gateway.wait_status("the binding to go with its connection", Duration::from_secs(10), |s| {
        s["bindings"].as_array().is_some_and(|b| !b.iter().any(|b| b["transport"] == via_transport))
    });
}

#[test]
fn jssip_registers_over_ws_wss_and_the_http_path_and_its_bindings_go_with_the_connection() {
    let (gateway, ws_port, wss_port) = start_gateway();
    jssip_registers_then_vanishes(&gateway, &format!("ws://127.0.0.1:{ws_port}"), "WS");
    jssip_registers_then_vanishes(&gateway, &format!("wss://127.0.0.1:{wss_port}"), "WSS");
    jssip_registers_then_vanishes(&gateway, &format!("ws://127.0.0.1:{}/sip", gateway.http_port), "WS");
    assert!(bindings(&gateway).is_empty(), "{:?}", bindings(&gateway));
    assert!(!gateway.log().contains("panicked"), "{}", gateway.log());
}

async fn connect(url: &str, subprotocol: Option<&str>) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
    let mut request = url.into_client_request().expect("request");
    if let Some(protocol) = subprotocol {
        request.headers_mut().insert("Sec-WebSocket-Protocol", protocol.parse().expect("header"));
    }
    let (socket, response) = tokio_tungstenite::connect_async(request).await?;
    assert_eq!(response.headers().get("Sec-WebSocket-Protocol").map(|v| v.to_str().unwrap_or_default()), Some("sip"));
    Ok(socket)
}

/// The next SIP message (text or binary) within 5 s.
async fn next_sip(socket: &mut Socket) -> String {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), socket.next()).await.expect("an answer within 5 s").expect("open").expect("frame");
        match message {
            Message::Text(text) => return text.to_string(),
            Message::Binary(bytes) => return String::from_utf8_lossy(&bytes).into_owned(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected SIP, got {other:?}"),
        }
    }
}

fn status_of(answer: &str) -> u16 {
    answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("not a response: {answer:?}"))
}

fn options(branch: &str) -> String {
    format!(
        "OPTIONS sip:{LOCAL_DOMAIN} SIP/2.0\r\nVia: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK{branch}\r\nMax-Forwards: 70\r\n\
         From: <sip:alice@{LOCAL_DOMAIN}>;tag=ws1\r\nTo: <sip:{LOCAL_DOMAIN}>\r\nCall-ID: {branch}@test\r\nCSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

fn register(cseq: u32, authorization: Option<&str>) -> String {
    let auth = authorization.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
    format!(
        "REGISTER sip:{LOCAL_DOMAIN} SIP/2.0\r\nVia: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bKreg{cseq}\r\nMax-Forwards: 70\r\n\
         From: <sip:alice@{LOCAL_DOMAIN}>;tag=ws2\r\nTo: <sip:alice@{LOCAL_DOMAIN}>\r\nCall-ID: guess@test\r\nCSeq: {cseq} REGISTER\r\n\
         Contact: <sip:alice@df7jal23ls0d.invalid;transport=ws>\r\nExpires: 600\r\n{auth}Content-Length: 0\r\n\r\n"
    )
}

fn dropped(gateway: &Gateway, reason: &str) -> u64 {
    gateway.status()["counters"]["dropped"][reason].as_u64().unwrap_or(0)
}

/// Every kind of bad input on one URL: refused handshake, garbage, a SIP parse failure, binary
/// frames, and an oversize message last (it closes the connection with 1009).
async fn bad_input_on(gateway: &Gateway, url: &str) {
    match connect(url, None).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 400, "{url}"),
        other => panic!("{url}: a client without the sip subprotocol must be refused with 400, got {:?}", other.map(|_| ())),
    }
    let mut socket = connect(url, Some("sip")).await.expect("connect with sip");
    socket.send(Message::text(options("ok1"))).await.expect("send");
    assert_eq!(status_of(&next_sip(&mut socket).await), 200);

    // RFC 5626 keep-alive: a double CRLF is answered with one CRLF.
    socket.send(Message::text("\r\n\r\n")).await.expect("send");
    assert_eq!(next_sip(&mut socket).await, "\r\n");

    // Garbage is not SIP: nothing can be answered, the drop is counted, the flow lives on.
    let before = dropped(gateway, "unanswerable");
    socket.send(Message::text("this is not SIP at all")).await.expect("send");
    socket.send(Message::binary(vec![0u8, 159, 146, 150, 255])).await.expect("send");
    socket.send(Message::text(options("ok2"))).await.expect("send");
    assert_eq!(status_of(&next_sip(&mut socket).await), 200, "the connection survives garbage");
    assert_eq!(dropped(gateway, "unanswerable"), before + 2, "both garbage frames are counted");

    // SIP that fails to parse gets 400.
    let broken = options("bad1").replace("CSeq: 1 OPTIONS", "CSeq: one OPTIONS");
    socket.send(Message::text(broken)).await.expect("send");
    assert_eq!(status_of(&next_sip(&mut socket).await), 400);
    // A Content-Length beyond the message: 400, and the flow stays (the WebSocket framed it).
    socket.send(Message::text(options("bad2").replace("Content-Length: 0", "Content-Length: 40"))).await.expect("send");
    assert_eq!(status_of(&next_sip(&mut socket).await), 400);

    // A binary frame holding SIP is SIP (RFC 7118 §5.1).
    socket.send(Message::binary(options("bin1").into_bytes())).await.expect("send");
    assert_eq!(status_of(&next_sip(&mut socket).await), 200);

    // Oversize: closed with 1009 and counted.
    let oversized_before = gateway.status()["transport"]["oversized"].as_u64().unwrap_or(0);
    let _ = socket.send(Message::text("x".repeat(MAX_MESSAGE + 1))).await;
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(5), socket.next()).await.expect("a close within 5 s") {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            other => panic!("{url}: expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(close.map(|f| f.code), Some(CloseCode::Size), "{url}");
    assert_eq!(gateway.status()["transport"]["oversized"].as_u64().unwrap_or(0), oversized_before + 1);
}

#[tokio::test]
async fn bad_input_gets_the_documented_answer_on_both_entries() {
    let (gateway, ws_port, _) = start_gateway();
    bad_input_on(&gateway, &format!("ws://127.0.0.1:{ws_port}")).await;
    bad_input_on(&gateway, &format!("ws://127.0.0.1:{}/sip", gateway.http_port)).await;
    let metrics = support::http_get(gateway.http_port, "/metrics", Some(support::API_TOKEN)).expect("metrics").1;
    assert!(metrics.contains("sipbridge_sip_websocket_refused_total{reason=\"no_sip_subprotocol\"} 2"), "{metrics}");
    assert!(metrics.contains("sipbridge_sip_oversized_total 2"), "{metrics}");
    assert!(!gateway.log().contains("panicked"), "{}", gateway.log());
}

/// A REGISTER with a wrong password, answered to a fresh challenge each time.
async fn register_with(socket: &mut Socket, cseq: u32, password: &str) -> String {
    socket.send(Message::text(register(cseq, None))).await.expect("send");
    let challenge = next_sip(socket).await;
    if status_of(&challenge) != 401 {
        return challenge;
    }
    let value = challenge
        .lines()
        .find_map(|l| l.strip_prefix("WWW-Authenticate: "))
        .unwrap_or_else(|| panic!("401 without a challenge: {challenge}"));
    let challenge = sipbridge::sip::auth::Challenge::parse(value).expect("challenge");
    let uri = format!("sip:{LOCAL_DOMAIN}");
    let credentials = sipbridge::sip::auth::answer_challenge(&challenge, "alice", password, "REGISTER", &uri, None, "0a4f113b", 1).expect("answer");
    socket.send(Message::text(register(cseq + 1, Some(&credentials.to_string())))).await.expect("send");
    next_sip(socket).await
}

#[tokio::test]
async fn ten_wrong_passwords_then_the_address_is_refused_even_with_the_right_one() {
    let (gateway, ws_port, _) = start_gateway();
    let mut socket = connect(&format!("ws://127.0.0.1:{ws_port}"), Some("sip")).await.expect("connect");
    let mut cseq = 1;
    for attempt in 1..=10 {
        let answer = register_with(&mut socket, cseq, "not-the-password").await;
        assert_eq!(status_of(&answer), 403, "attempt {attempt}: {answer}");
        assert!(answer.contains("authentication failed"), "attempt {attempt}: {answer}");
        cseq += 2;
    }
    let answer = register_with(&mut socket, cseq, ALICE_PASSWORD).await;
    assert_eq!(status_of(&answer), 403, "{answer}");
    assert!(answer.contains("too many failed attempts"), "{answer}");
    assert!(bindings(&gateway).is_empty(), "no binding from a guessing address");
}

#[tokio::test]
async fn a_raw_client_registers_with_digest_and_its_binding_goes_when_it_closes() {
    let (gateway, ws_port, _) = start_gateway();
    let mut socket = connect(&format!("ws://127.0.0.1:{ws_port}"), Some("sip")).await.expect("connect");
    let answer = register_with(&mut socket, 1, ALICE_PASSWORD).await;
    assert_eq!(status_of(&answer), 200, "{answer}");
    assert!(answer.contains("df7jal23ls0d.invalid"), "the 200 lists the binding: {answer}");
    gateway.wait_status("the binding", Duration::from_secs(5), |s| s["bindings"].as_array().is_some_and(|b| b.len() == 1));
    socket.close(None).await.expect("close");
    gateway.wait_status("no binding", Duration::from_secs(5), |s| s["bindings"].as_array().is_some_and(|b| b.is_empty()));
}

#[test]
fn sipjs_registers_over_wss_and_the_http_path_with_digest_or_a_token() {
    let (gateway, _, wss_port) = start_gateway();
    registers_then_vanishes(&gateway, "sipjs", &format!("wss://127.0.0.1:{wss_port}"), "WSS", &[ALICE_PASSWORD, "register"]);
    let token = support::calls::token("alice", &[]);
    registers_then_vanishes(&gateway, "sipjs", &format!("ws://127.0.0.1:{}/sip", gateway.http_port), "WS", &["-", "register", &token]);
}

#[test]
fn jssip_registers_with_the_json_protocols_token_instead_of_digest() {
    let (gateway, _, wss_port) = start_gateway();
    let token = support::calls::token("alice", &[]);
    registers_then_vanishes(&gateway, "jssip", &format!("wss://127.0.0.1:{wss_port}"), "WSS", &["-", "register", &token]);
    assert!(!gateway.log().contains(&token), "the token never reaches the log");
}

#[tokio::test]
async fn a_forged_token_is_a_failed_attempt() {
    let (gateway, ws_port, _) = start_gateway();
    let mut socket = connect(&format!("ws://127.0.0.1:{ws_port}"), Some("sip")).await.expect("connect");
    let forged = sipbridge::signaling::jwt::sign(
        &sipbridge::signaling::jwt::Claims { sub: "alice".into(), exp: u64::MAX / 2, nbf: None, iat: None, profiles: vec![] },
        b"not-the-gateway-secret-0123456789abcdef",
    );
    let request = register(1, None).replace("Expires: 600\r\n", &format!("Expires: 600\r\nX-Sipbridge-Token: {forged}\r\n"));
    socket.send(Message::text(request)).await.expect("send");
    let answer = next_sip(&mut socket).await;
    assert_eq!(status_of(&answer), 403, "{answer}");
    assert!(bindings(&gateway).is_empty());
}

/// The answer a UAS gives to `request`: its Via, From, Call-ID and CSeq, and its To with a tag.
fn answer(request: &str, status: &str) -> String {
    let mut out = format!("SIP/2.0 {status}\r\n");
    for line in request.split("\r\n") {
        let name = line.split(':').next().unwrap_or_default().trim().to_ascii_lowercase();
        match name.as_str() {
            "via" | "from" | "call-id" | "cseq" => out.push_str(&format!("{line}\r\n")),
            "to" => out.push_str(&format!("{line};tag=wsbob\r\n")),
            _ => {}
        }
    }
    out + "Content-Length: 0\r\n\r\n"
}

/// A browser (the JSON protocol) calls bob, registered over a WebSocket flow: the INVITE goes
/// down that flow to bob's `.invalid` contact, bob's 486 is ACKed on it, and the browser hears busy.
#[tokio::test]
async fn a_call_to_a_user_registered_over_websocket_is_signalled_over_its_flow() {
    let (gateway, ws_port, _) = start_gateway();
    let mut bob = connect(&format!("ws://127.0.0.1:{ws_port}"), Some("sip")).await.expect("connect");
    let bob_register = |cseq: u32, auth: Option<&str>| register(cseq, auth).replace("alice@", "bob@").replace("Call-ID: guess@test", "Call-ID: bob@test");
    bob.send(Message::text(bob_register(1, None))).await.expect("send");
    let challenge = next_sip(&mut bob).await;
    let value = challenge.lines().find_map(|l| l.strip_prefix("WWW-Authenticate: ")).expect("challenge");
    let challenge = sipbridge::sip::auth::Challenge::parse(value).expect("challenge");
    let uri = format!("sip:{LOCAL_DOMAIN}");
    let credentials = sipbridge::sip::auth::answer_challenge(&challenge, "bob", support::BOB_PASSWORD, "REGISTER", &uri, None, "0b4f113b", 1).expect("answer");
    bob.send(Message::text(bob_register(2, Some(&credentials.to_string())))).await.expect("send");
    assert_eq!(status_of(&next_sip(&mut bob).await), 200);

    let (mut browser, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}/ws", gateway.http_port)).await.expect("connect /ws");
    let offer = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\na=ice-ufrag:Qx7b\r\n\
a=ice-pwd:tdYfbZxBbd2lQ1KJnxMRz4Yx\r\na=ice-options:trickle\r\n\
a=fingerprint:sha-256 3A:58:9C:21:7E:AF:60:37:9E:5B:26:30:29:6D:F7:3E:2E:3B:B5:96:62:53:9C:55:0B:F6:59:83:95:49:2C:E0\r\n\
a=setup:actpass\r\na=mid:0\r\na=sendrecv\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n";
    let frames = [
        serde_json::json!({"type": "hello", "id": 1, "versions": [1]}),
        serde_json::json!({"type": "login", "id": 2, "method": "token", "token": support::calls::token("alice", &[])}),
        serde_json::json!({"type": "call", "id": 3, "target": "bob", "sdp": offer}),
    ];
    for frame in frames {
        browser.send(Message::text(frame.to_string())).await.expect("send");
    }

    let invite = next_sip(&mut bob).await;
    assert!(invite.starts_with("INVITE sip:bob@df7jal23ls0d.invalid"), "sent to bob's contact, over the flow: {invite}");
    assert!(invite.contains("SIP/2.0/WS "), "the gateway's Via names the WebSocket transport: {invite}");
    bob.send(Message::text(answer(&invite, "486 Busy Here"))).await.expect("send");
    let ack = next_sip(&mut bob).await;
    assert!(ack.starts_with("ACK "), "the 486 is ACKed over the flow: {ack}");

    let hangup = loop {
        let message = tokio::time::timeout(Duration::from_secs(10), browser.next()).await.expect("an event within 10 s").expect("open").expect("frame");
        let Message::Text(text) = message else { continue };
        let event: serde_json::Value = serde_json::from_str(text.as_str()).expect("JSON");
        if event["type"] == "hangup" {
            break event;
        }
    };
    assert_eq!(hangup["reason"], "busy", "{hangup}");
    bob.close(None).await.expect("close");
    gateway.wait_status("bob's binding to go", Duration::from_secs(5), |s| s["bindings"].as_array().is_some_and(|b| b.is_empty()));
}

/// Pings every second, idle after three: alice's client reads (so it answers the pings) and stays
/// registered past the idle timeout; bob's stops reading after registering, answers no ping, and
/// is closed as idle with his binding removed. (Bob's close frame is not read: his client would
/// first answer the queued pings into a closed connection.)
#[tokio::test]
async fn a_client_that_answers_no_ping_is_closed_as_idle_and_its_binding_goes() {
    let (gateway, ws_port, _) = start_gateway_with("websocket_ping_interval_secs = 1\nwebsocket_idle_timeout_secs = 3\n");
    let url = format!("ws://127.0.0.1:{ws_port}");
    let mut alice = connect(&url, Some("sip")).await.expect("connect");
    assert_eq!(status_of(&register_with(&mut alice, 1, ALICE_PASSWORD).await), 200);
    let mut bob = connect(&url, Some("sip")).await.expect("connect");
    let bob_register = register(1, None).replace("alice@", "bob@").replace("Call-ID: guess@test", "Call-ID: bob@test");
    bob.send(Message::text(bob_register.clone())).await.expect("send");
    let challenge = next_sip(&mut bob).await;
    let value = challenge.lines().find_map(|l| l.strip_prefix("WWW-Authenticate: ")).expect("challenge");
    let challenge = sipbridge::sip::auth::Challenge::parse(value).expect("challenge");
    let credentials = sipbridge::sip::auth::answer_challenge(&challenge, "bob", support::BOB_PASSWORD, "REGISTER", &format!("sip:{LOCAL_DOMAIN}"), None, "0c4f113b", 1).expect("answer");
    let authorized = bob_register.replace("CSeq: 1 ", "CSeq: 2 ").replace("Expires: 600\r\n", &format!("Expires: 600\r\nAuthorization: {credentials}\r\n"));
    bob.send(Message::text(authorized)).await.expect("send");
    assert_eq!(status_of(&next_sip(&mut bob).await), 200);
    gateway.wait_status("both bindings", Duration::from_secs(5), |s| s["bindings"].as_array().is_some_and(|b| b.len() == 2));

    // Alice reads: five pings (beyond the 3 s idle timeout), each answered with a pong by the library.
    let mut pings = 0;
    while pings < 5 {
        match tokio::time::timeout(Duration::from_secs(5), alice.next()).await.expect("a ping within 5 s") {
            Some(Ok(Message::Ping(_))) => pings += 1,
            Some(Ok(_)) => {}
            other => panic!("alice's flow must stay open while she answers pings: {other:?}"),
        }
    }
    // By now bob (who read nothing since) has been silent past the idle timeout.
    let status = gateway.wait_status("bob's binding to go", Duration::from_secs(10), |s| {
        s["bindings"].as_array().is_some_and(|b| b.len() == 1) && s["transport"]["ws_idle_closed"].as_u64() == Some(1)
    });
    let aors: Vec<&str> = status["bindings"].as_array().into_iter().flatten().filter_map(|b| b["aor"].as_str()).collect();
    assert_eq!(aors, vec![format!("sip:alice@{LOCAL_DOMAIN}")], "alice stays, bob goes");
    let metrics = support::http_get(gateway.http_port, "/metrics", Some(support::API_TOKEN)).expect("metrics").1;
    assert!(metrics.contains("sipbridge_sip_websocket_closed_total{reason=\"idle\"} 1"), "{metrics}");
}
