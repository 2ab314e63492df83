//! Users of the gateway's local domain log in to the browser API with their password. The
//! configuration grants them trunk profiles (`profiles` under `[[users]]`), as a token's claim
//! does; the login reply carries TURN credentials minted for them from the shared secret.
//! Console users granted profiles (`profiles` under `[[http.console_users]]`) log in the same way
//! with their console password.

mod support;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use support::calls::{assert_tone, chromium_calls, trunk_profile, EchoTrunk};
use support::{free_port, Gateway, GatewayOptions, ALICE_PASSWORD};
use tokio_tungstenite::tungstenite::Message;

const TURN_SECRET: &str = "login-reply-turn-secret-1b2c3d";
const LIFETIME_SECS: u64 = 3_600;

/// Chromium logs in as alice with her password and calls a number: the trunk (sipp) answers and
/// echoes, and the tone comes back. Before the grant this call was `forbidden`.
#[test]
fn password_user_granted_the_trunk_calls_it() {
    let trunk_port = free_port();
    let gateway = Gateway::start(GatewayOptions { profiles: vec![trunk_profile(trunk_port)], alice_profiles: vec!["trunk"], ..Default::default() });
    let trunk = EchoTrunk::start(trunk_port);
    let report = chromium_calls(&gateway, &format!("password:alice:{ALICE_PASSWORD}"), "+15551234567", &[]);
    let sipp = trunk.finish();
    let log = gateway.log();
    assert_eq!(report["ok"], true, "{report:#}\n{log}");
    println!("password user -> trunk: {} Hz", report["peakHz"]);
    assert_tone(&report, "peakHz", 1000.0, &log);
    assert!(sipp.is_ok(), "the trunk answered and got the BYE: {sipp:?}\n{log}");
}

async fn login(gateway: &Gateway, user: &str, password: &str) -> Value {
    let url = format!("ws://127.0.0.1:{}/ws", gateway.http_port);
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.expect("connect /ws");
    let mut reply = Value::Null;
    for frame in [
        json!({"type": "hello", "id": 1, "versions": [1]}),
        json!({"type": "login", "id": 2, "method": "password", "user": user, "password": password}),
    ] {
        socket.send(Message::Text(frame.to_string().into())).await.expect("send");
        let message = tokio::time::timeout(Duration::from_secs(5), socket.next()).await.expect("a reply").expect("open").expect("frame");
        reply = serde_json::from_str(message.to_text().expect("text")).expect("JSON");
    }
    reply
}

#[tokio::test]
async fn login_replies_carry_granted_profiles_and_minted_turn_credentials() {
    let ice = format!(
        "\n[[http.ice_servers]]\nurls = [\"stun:127.0.0.1:3478\"]\n\
         [[http.ice_servers]]\nurls = [\"turn:127.0.0.1:3478?transport=udp\"]\nshared_secret = \"{TURN_SECRET}\"\ncredential_lifetime_secs = {LIFETIME_SECS}\n"
    );
    let gateway = Gateway::start(GatewayOptions { profiles: vec![trunk_profile(free_port())], alice_profiles: vec!["trunk"], extra_http: ice, ..Default::default() });
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let alice = login(&gateway, "alice", ALICE_PASSWORD).await;
    assert_eq!((&alice["ok"], &alice["profiles"]), (&json!(true), &json!(["trunk"])), "{alice}");
    assert_eq!(alice["ice_servers"][0], json!({"urls": ["stun:127.0.0.1:3478"]}), "STUN needs no credentials: {alice}");
    let turn = &alice["ice_servers"][1];
    let username = turn["username"].as_str().expect("a TURN username");
    let (expiry, user) = username.split_once(':').expect("expiry:user");
    let expiry: u64 = expiry.parse().expect("expiry in seconds");
    assert_eq!(user, "alice");
    assert!((before + LIFETIME_SECS..=before + LIFETIME_SECS + 5).contains(&expiry), "valid for the configured lifetime: {alice}");
    let (_, expected) = sipbridge::signaling::ice::rest_credential(TURN_SECRET.as_bytes(), "alice", expiry);
    assert_eq!(turn["credential"], expected, "HMAC-SHA1 of the username under the shared secret");
    assert!(!alice.to_string().contains(TURN_SECRET));

    let bob = login(&gateway, "bob", support::BOB_PASSWORD).await;
    assert_eq!((&bob["ok"], &bob["profiles"]), (&json!(true), &json!([])), "no grant, no profile: {bob}");
    assert_eq!(bob["ice_servers"][1]["username"].as_str().map(|u| u.ends_with(":bob")), Some(true), "{bob}");
    let log = gateway.log();
    assert!(!log.contains(TURN_SECRET), "the shared secret is never logged:\n{log}");
}

/// A console user granted the trunk logs in to the softphone with the console password and gets
/// that profile; a wrong password, or a console user granted nothing, is refused.
#[tokio::test]
async fn console_users_granted_profiles_log_in_to_the_softphone() {
    let ops = sipbridge::http::console::hash_password("ops-console-pass").expect("hash");
    let viewer = sipbridge::http::console::hash_password("viewer-console-pass").expect("hash");
    let console_users = format!(
        "\n[[http.console_users]]\nusername = \"ops\"\npassword_hash = \"{ops}\"\nrole = \"admin\"\nprofiles = [\"trunk\"]\n\
         \n[[http.console_users]]\nusername = \"viewer\"\npassword_hash = \"{viewer}\"\nrole = \"viewer\"\n"
    );
    let gateway = Gateway::start(GatewayOptions { profiles: vec![trunk_profile(free_port())], extra_http: console_users, ..Default::default() });
    let ops = login(&gateway, "ops", "ops-console-pass").await;
    assert_eq!((&ops["ok"], &ops["user"], &ops["profiles"]), (&json!(true), &json!("ops"), &json!(["trunk"])), "{ops}");
    let wrong = login(&gateway, "ops", "not-the-password").await;
    assert_eq!((&wrong["type"], &wrong["code"]), (&json!("error"), &json!("login_failed")), "{wrong}");
    let ungranted = login(&gateway, "viewer", "viewer-console-pass").await;
    assert_eq!(ungranted["code"], "login_failed", "a console user with no profile has no softphone: {ungranted}");
    assert!(!gateway.log().contains("ops-console-pass"), "passwords are never logged");
}
