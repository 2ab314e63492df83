//! No lost events, no zombie calls: a browser stops reading its WebSocket (a tiny receive buffer,
//! and nobody reading it) while a sipp trunk rings it with many calls at once and then cancels
//! them all at once. The gateway's push channel to that connection and its socket fill up. Every
//! call must still end for the trunk (487), write a final record, and free its slot; once the
//! browser reads again it gets every call's `incoming` and `hangup`: nothing was dropped.

mod support;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};
use support::{http_get, sipp, Gateway, GatewayOptions, API_TOKEN};
use tokio_tungstenite::tungstenite::Message;

/// Enough calls that their frames (about 1.3 KiB each) overflow the gateway's fixed send buffer
/// (`http::SEND_BUFFER`, 128 KiB as the kernel counts it) and then the connection's push
/// channel.
const CALLS: usize = 200;

type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// A WebSocket with a receive buffer so small that a few frames fill it.
async fn slow_socket(gateway: &Gateway) -> Socket {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(2_048).expect("small receive buffer");
    let stream = socket.connect(([127, 0, 0, 1], gateway.http_port).into()).await.expect("connect");
    let url = format!("ws://127.0.0.1:{}/ws", gateway.http_port);
    let (socket, _) = tokio_tungstenite::client_async(url, stream).await.expect("WebSocket handshake");
    socket
}

async fn request(socket: &mut Socket, frame: Value) -> Value {
    let id = frame["id"].clone();
    socket.send(Message::Text(frame.to_string().into())).await.expect("send");
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), socket.next()).await.expect("a reply").expect("open").expect("frame");
        if let Message::Text(text) = message {
            let reply: Value = serde_json::from_str(text.as_str()).expect("JSON");
            if reply["id"] == id {
                return reply;
            }
        }
    }
}

/// Waits until every call has a final record; the records by status.
fn final_records(gateway: &Gateway, within: Duration) -> HashMap<String, usize> {
    let deadline = Instant::now() + within;
    loop {
        let records = gateway.stored_records();
        let finals: Vec<_> = records.iter().filter(|r| r.ended_at.is_some()).collect();
        if finals.len() >= CALLS || Instant::now() > deadline {
            let mut by_status = HashMap::new();
            for record in finals {
                *by_status.entry(format!("{:?}", record.status)).or_insert(0) += 1;
            }
            return by_status;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A gauge or counter without labels from /metrics.
fn metric(gateway: &Gateway, name: &str) -> Option<u64> {
    let (_, body) = http_get(gateway.http_port, "/metrics", Some(API_TOKEN)).ok()?;
    let prefix = format!("{name} ");
    body.lines().find_map(|line| line.strip_prefix(prefix.as_str())).and_then(|v| v.trim().parse().ok())
}

#[test]
fn a_browser_that_stops_reading_loses_no_event_and_leaves_no_zombie() {
    support::sipp_available();
    // Two RTP ports a call, below the range the other tests' gateways spread over.
    let rtp_min = 10_000 + std::process::id() % 19 * 500;
    let calls = format!("rtp_port_min = {rtp_min}\nrtp_port_max = {}\n\n[calls]\nmax_per_user = {CALLS}\nmax_concurrent = {}\n", rtp_min + 499, CALLS * 2);
    let trunk = "kind = \"trunk\"\nhost = \"127.0.0.1\"\ntrusted_addresses = [\"127.0.0.1\"]\n".to_string();
    let gateway = Gateway::start(GatewayOptions { profiles: vec![("trunk.toml".into(), trunk)], extra_media: calls, ..Default::default() });
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let mut socket = runtime.block_on(async {
        let mut socket = slow_socket(&gateway).await;
        let hello = request(&mut socket, json!({"type": "hello", "id": 1, "versions": [1]})).await;
        assert_eq!(hello["ok"], true, "{hello}");
        let login = request(&mut socket, json!({"type": "login", "id": 2, "method": "token", "token": support::calls::token("alice", &[])})).await;
        assert_eq!(login["ok"], true, "{login}");
        socket
    });

    // The browser reads nothing while the trunk rings it CALLS times and cancels every call.
    let target = gateway.sip_addr().to_string();
    let calls = CALLS.to_string();
    let run = sipp("call_cancelled.xml", &target, &["-m", &calls, "-l", &calls, "-r", "100", "-timeout", "60s"]);
    assert!(run.success(), "every call ended for the trunk with 487: {}\n{}", run.describe(), gateway.log());

    let by_status = final_records(&gateway, Duration::from_secs(30));
    assert_eq!(by_status.values().sum::<usize>(), CALLS, "every call wrote a final record: {by_status:?}\n{}", gateway.log());
    assert_eq!(by_status.get("Cancelled"), Some(&CALLS), "{by_status:?}");
    assert_eq!(metric(&gateway, "sipbridge_calls_active"), Some(0), "no call holds a slot: 0 zombies");
    // The test is about a full channel: prove the pushes really had to wait for room.
    let waits = metric(&gateway, "sipbridge_browser_push_waits_total").unwrap_or(0);
    assert!(waits > 0, "the slow browser's push channel never filled: the test proves nothing\n{}", gateway.log());

    // Reading again: every call's `incoming` and its `hangup` are there.
    let (incoming, hangups) = runtime.block_on(async {
        let mut incoming = HashSet::new();
        let mut hangups = HashSet::new();
        while hangups.len() < CALLS {
            let Ok(Some(Ok(message))) = tokio::time::timeout(Duration::from_secs(10), socket.next()).await else { break };
            let Message::Text(text) = message else { continue };
            let event: Value = serde_json::from_str(text.as_str()).expect("JSON");
            let call_id = event["call_id"].as_str().unwrap_or_default().to_string();
            match event["type"].as_str() {
                Some("incoming") => {
                    incoming.insert(call_id);
                }
                Some("hangup") => {
                    assert_eq!(event["reason"], "cancelled", "{event}");
                    hangups.insert(call_id);
                }
                _ => {}
            }
        }
        (incoming, hangups)
    });
    assert_eq!(incoming.len(), CALLS, "every incoming reached the slow browser");
    assert_eq!(hangups, incoming, "every call's hangup reached the slow browser");
}
