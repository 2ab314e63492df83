//! The HTTP API under attack. schemathesis (PyPI, pinned in tests/api/schemathesis-requirements.txt,
//! installed by scripts/schemathesis.sh into a venv under the user's cache) reads the gateway's own
//! `/api/v1/openapi.json` with a valid token and sends what the schema allows and what it does not:
//! every answer must be no 5xx and must match the document (status, content type, body schema),
//! invalid input must be refused and valid input accepted, and the auth must not be ignored.
//! Forged JWTs (`alg: none`, HS256 under a wrong key, and their cousins) are refused on the
//! signaling WebSocket, the only place that takes JWTs, and are no API credential either.

mod support;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use sipbridge::store::{CallDirection, CallRecord, CallStatus, CallStore, HangupSide, LegQuality, SipMessage, SqlStore};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{http_get, Gateway, GatewayOptions, API_TOKEN, JWT_SECRET};
use tokio_tungstenite::tungstenite::Message;

/// Bounds of the run: cases per operation, and the wall-clock limit of the whole run.
const MAX_EXAMPLES: &str = "150";
const RUN_LIMIT: Duration = Duration::from_secs(240);
/// A fixed seed: CI sees the same cases every run; `SCHEMATHESIS_SEED` explores others.
const DEFAULT_SEED: &str = "20261202";

/// Records of every shape the API returns: answered with media figures, missed with none, one
/// still in progress, with events and masked SIP messages.
fn seed(gateway: &Gateway) {
    let url = format!("sqlite://{}", gateway.dir.path().join("data/records.db").display());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let store = SqlStore::connect(&url).await.expect("open the gateway's database");
        store.migrate().await.expect("migrate");
        let t0 = 1_795_514_400_000i64;
        for i in 0..12i64 {
            let direction = if i % 2 == 0 { CallDirection::Inbound } else { CallDirection::Outbound };
            let mut r = CallRecord::new(format!("call-{i:02}"), direction, t0 + i * 60_000);
            r.from_uri = format!("sip:+1555{i:07}@carrier.example");
            r.from_name = (i % 3 == 0).then(|| format!("Caller \"{i}\""));
            r.to_uri = "sip:alice@example.com".into();
            r.profile = Some(if i % 2 == 0 { "trunk" } else { "pbx" }.into());
            r.browser_user = Some("alice".into());
            r.sip_call_ids = vec![format!("{i}@carrier.example")];
            r.event(r.started_at, "invite", "from 127.0.0.1:5062");
            r.event(r.started_at + 10, "ringing", "");
            r.sip_messages.push(SipMessage { at: r.started_at, direction: "in".into(), peer: "127.0.0.1:5062".into(), summary: "INVITE".into(), text: "INVITE sip:alice@example.com SIP/2.0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:(masked)\r\n".into() });
            if i == 11 {
                r.revision = 1;
                store.upsert(&r).await.expect("seed");
                continue; // still in progress: no end, no hangup
            }
            let status = [CallStatus::Answered, CallStatus::Missed, CallStatus::Busy, CallStatus::Failed, CallStatus::Cancelled, CallStatus::Rejected][i as usize % 6];
            if status == CallStatus::Answered {
                r.answered_at = Some(r.started_at + 2_000);
                r.sip_codec = Some("PCMU".into());
                r.browser_codec = Some("opus".into());
                r.transcoded = true;
                r.quality = vec![LegQuality::new("sip", "received", 1_500, Some(4.3)), LegQuality::new("browser", "sent", 0, None)];
            }
            r.finish(r.started_at + 2_000 + i * 5_000, status, [HangupSide::Sip, HangupSide::Browser, HangupSide::Gateway][i as usize % 3], "normal", Some(200));
            r.revision = 1;
            store.upsert(&r).await.expect("seed");
        }
        store.close().await;
    });
}

/// The schemathesis command, installed on first use (`make test` installs it beforehand).
fn schemathesis() -> String {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/schemathesis.sh");
    let output = Command::new(&script).output().expect("run scripts/schemathesis.sh");
    assert!(output.status.success(), "installing schemathesis failed: {}", support::describe(&output));
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

#[test]
fn schemathesis_finds_no_server_error_and_no_answer_off_the_schema() {
    let st = schemathesis();
    let gateway = Gateway::start(GatewayOptions::default());
    seed(&gateway);
    // schemathesis keeps its example database and cassettes in its working directory: a fresh one
    // each run, so every run sees the same cases; the JUnit report stays with the test artifacts.
    let work = tempfile::tempdir().expect("tempdir");
    let target = std::env::var("CARGO_TARGET_DIR").map(std::path::PathBuf::from).unwrap_or_else(|_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let reports = std::path::absolute(target.join("test-artifacts/schemathesis")).expect("report path");
    let seed = std::env::var("SCHEMATHESIS_SEED").unwrap_or_else(|_| DEFAULT_SEED.into());
    let base = format!("http://127.0.0.1:{}", gateway.http_port);
    let started = Instant::now();
    let mut child = Command::new(&st)
        .arg("--no-color")
        .arg("run")
        .arg(format!("{base}/api/v1/openapi.json"))
        .args(["--header", &format!("Authorization: Bearer {API_TOKEN}")])
        .args(["--checks", "all"])
        // The drain ends the process (its own test is tests/drain.rs); without it nothing is left to test.
        .args(["--exclude-path", "/api/v1/drain"])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", MAX_EXAMPLES, "--seed", &seed, "--workers", "1"])
        .args(["--request-timeout", "10"])
        .args(["--report", "junit", "--report-junit-path"])
        .arg(reports.join("junit.xml"))
        .current_dir(work.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start schemathesis");
    let deadline = Instant::now() + RUN_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("output");
            panic!("schemathesis ran past {RUN_LIMIT:?}:\n{}", support::describe(&output));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let output = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary: Vec<&str> = stdout.lines().filter(|l| l.contains("passed") || l.contains("failed") || l.contains("Test cases") || l.contains("API Operations")).collect();
    println!("schemathesis (seed {seed}) in {:.0} s:\n{}", started.elapsed().as_secs_f64(), summary.join("\n"));
    assert!(status.success(), "schemathesis found problems (seed {seed}):\n{}\ngateway log:\n{}", support::describe(&output), gateway.log());
    assert!(stdout.contains("test cases") || stdout.contains("Test cases"), "schemathesis ran test cases:\n{stdout}");
    assert!(!gateway.log().contains("panicked"), "{}", gateway.log());
    assert_eq!(http_get(gateway.http_port, "/healthz", None).expect("health").0, 200, "the gateway is still up");
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn send(socket: &mut Socket, frame: Value) -> Value {
    socket.send(Message::Text(frame.to_string().into())).await.expect("send");
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), socket.next()).await.expect("a reply within 5 s").expect("open").expect("frame");
        if let Message::Text(text) = message {
            let reply: Value = serde_json::from_str(text.as_str()).expect("JSON reply");
            if reply["id"] == frame["id"] {
                return reply;
            }
        }
    }
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn hs256(signed: &str, key: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("key");
    mac.update(signed.as_bytes());
    b64(&mac.finalize().into_bytes())
}

/// A token with this header; `signature` gets the signed part and returns the third part.
fn token(header: Value, signature: impl Fn(&str) -> String) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let claims = json!({ "sub": "alice", "exp": now + 600, "profiles": ["trunk"] });
    let signed = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
    format!("{signed}.{}", signature(&signed))
}

#[tokio::test]
async fn forged_jwts_are_refused_wherever_tokens_are_taken() {
    let gateway = Gateway::start(GatewayOptions::default());
    let secret = JWT_SECRET.as_bytes();
    let forgeries = [
        ("alg none, unsigned", token(json!({"alg": "none", "typ": "JWT"}), |_| String::new())),
        ("alg None, unsigned", token(json!({"alg": "None"}), |_| String::new())),
        ("alg NONE, unsigned", token(json!({"alg": "NONE"}), |_| String::new())),
        ("alg none, signed with the right key", token(json!({"alg": "none"}), |s| hs256(s, secret))),
        ("no alg", token(json!({"typ": "JWT"}), |s| hs256(s, secret))),
        ("HS256, unsigned", token(json!({"alg": "HS256", "typ": "JWT"}), |_| String::new())),
        ("HS256 under a wrong key", token(json!({"alg": "HS256", "typ": "JWT"}), |s| hs256(s, b"a-wrong-key-of-the-same-length-as-ours!!!!"))),
        ("HS256 under an empty key", token(json!({"alg": "HS256"}), |s| hs256(s, b""))),
        ("RS256 keyed with the HMAC secret (algorithm confusion)", token(json!({"alg": "RS256"}), |s| hs256(s, secret))),
        ("HS512 label on an HS256 signature", token(json!({"alg": "HS512"}), |s| hs256(s, secret))),
    ];
    // A connection closes after 5 failed logins, an address is limited after 10: one connection
    // for each forgery, and 10 of them, so each gets its own answer.
    for (i, (what, forged)) in forgeries.iter().enumerate() {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}/ws", gateway.http_port)).await.expect("connect /ws");
        let hello = send(&mut ws, json!({"type": "hello", "id": "hello", "versions": [1]})).await;
        assert_eq!(hello["ok"], true, "{hello}");
        let reply = send(&mut ws, json!({"type": "login", "id": i, "method": "token", "token": forged})).await;
        assert_eq!((reply["type"].as_str(), reply["code"].as_str()), (Some("error"), Some("token_invalid")), "{what}: {reply}");
        let call = send(&mut ws, json!({"type": "call", "id": format!("call-{i}"), "target": "echo", "sdp": "v=0"})).await;
        assert_eq!(call["code"], "not_logged_in", "{what} logged nobody in: {call}");
    }

    // The API takes only its configured tokens: a JWT, forged or genuine, is no bearer token.
    let genuine = token(json!({"alg": "HS256", "typ": "JWT"}), |s| hs256(s, secret));
    for (what, presented) in forgeries.iter().map(|(w, t)| (*w, t.as_str())).chain([("a genuine login token", genuine.as_str())]) {
        for path in ["/api/v1/calls", "/api/v1/sip/status", "/metrics"] {
            let (status, body) = http_get(gateway.http_port, path, Some(presented)).expect("request");
            assert_eq!(status, 401, "{what} on {path}: {body}");
        }
    }
    // The genuine token logs in (from another address: this one has used up its failures), so
    // the refusals above were the forgeries', not token logins switched off.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind("127.0.0.2:0".parse().expect("address")).expect("bind 127.0.0.2");
    let stream = socket.connect(([127, 0, 0, 1], gateway.http_port).into()).await.expect("connect");
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://127.0.0.1:{}/ws", gateway.http_port), tokio_tungstenite::MaybeTlsStream::Plain(stream)).await.expect("upgrade /ws");
    send(&mut ws, json!({"type": "hello", "id": "hello", "versions": [1]})).await;
    let login = send(&mut ws, json!({"type": "login", "id": "genuine", "method": "token", "token": genuine})).await;
    assert_eq!((login["ok"].as_bool(), login["user"].as_str()), (Some(true), Some("alice")), "{login}");
    let log = gateway.log();
    assert!(!log.contains(JWT_SECRET) && !log.contains("eyJ"), "no token or secret in the log:\n{log}");
}
