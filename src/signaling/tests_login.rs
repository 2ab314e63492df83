//! Logins: tokens are checked here, password and pbx logins wait for the owner's verdict.

use super::jwt::{self, Claims};
use super::tests::{assert_alive, assert_error, base64_url, config, drain, greeted, send, token, NOW, SDP, SECRET};
use super::*;
use serde_json::json;

#[test]
fn token_logins_check_expiry_signature_algorithm_and_secret() {
    let expired = token("alice", NOW - TOKEN_LEEWAY_SECS - 1);
    let good = token("alice", NOW + 60);
    let (head, rest) = good.split_once('.').unwrap();
    let (payload, sig) = rest.split_once('.').unwrap();
    let mut forged_sig = sig.to_owned().into_bytes();
    forged_sig[0] = if forged_sig[0] == b'A' { b'B' } else { b'A' };
    let forged = format!("{head}.{payload}.{}", String::from_utf8(forged_sig).unwrap());
    let none_head = base64_url(br#"{"alg":"none","typ":"JWT"}"#);
    let alg_none = format!("{none_head}.{payload}.");
    let other =
        jwt::sign(&Claims { sub: "alice".into(), exp: NOW + 60, nbf: None, iat: None, profiles: vec![] }, b"other");
    let cases =
        [(expired, "token_expired"), (forged, "token_invalid"), (alg_none, "token_invalid"), (other, "token_invalid")];
    for (tok, code) in cases {
        let mut c = greeted();
        let out = send(&mut c, json!({"type": "login", "id": "L", "method": "token", "token": tok}));
        assert_error(&out, code, json!("L"));
        assert!(c.user().is_none());
        assert_alive(&mut c);
        assert_eq!(send(&mut c, json!({"type": "login", "id": 2, "method": "token", "token": good}))[0]["ok"], true);
    }
}

#[test]
fn token_login_replies_with_user_profiles_and_ice_servers() {
    let mut c = greeted();
    let out = send(&mut c, json!({"type": "login", "id": 9, "method": "token", "token": token("bob", NOW + 60)}));
    let ice = json!([{"urls": ["turn:turn.example.com:3478"], "username": "u", "credential": "c"}]);
    assert_eq!(
        out,
        vec![json!({"type": "login", "id": 9, "ok": true, "user": "bob", "profiles": ["pbx1"], "ice_servers": ice})]
    );
    let user = c.user().unwrap();
    assert_eq!((user.method, user.expires_at), (LoginKind::Token, Some(NOW + 60)));
}

#[test]
fn token_login_without_a_secret_fails() {
    let mut c = Connection::new(ConnectionConfig { jwt_secret: None, ..config() });
    send(&mut c, json!({"type": "hello", "id": 0, "versions": [1]}));
    let out = send(&mut c, json!({"type": "login", "id": 1, "method": "token", "token": token("a", NOW + 60)}));
    assert_error(&out, "login_failed", json!(1));
}

#[test]
fn password_and_pbx_logins_wait_for_the_owner() {
    let mut c = greeted();
    send(&mut c, json!({"type": "login", "id": 1, "method": "password", "user": "carol", "password": "pw"}));
    let req = c.poll_request().unwrap();
    assert_eq!(req, Request::PasswordLogin { id: 1.into(), user: "carol".into(), password: Credential("pw".into()) });
    assert!(!format!("{req:?}").contains("pw\""), "password leaked into Debug: {req:?}");
    assert_error(&send(&mut c, json!({"type": "call", "id": 2, "target": "x", "sdp": SDP})), "not_logged_in", json!(2));
    let again = json!({"type": "login", "id": 3, "method": "password", "user": "carol", "password": "pw"});
    assert_error(&send(&mut c, again), "already_logged_in", json!(3));
    c.reply(1.into(), json!({"user": "mallory"}));
    assert!(drain(&mut c).is_empty(), "reply must not complete a login");
    c.login_result(1.into(), Err(LoginError::Rejected));
    assert_error(&drain(&mut c), "login_failed", json!(1));
    c.login_result(1.into(), Ok(LoginInfo { user: "late".into(), profiles: vec![] }));
    assert!(drain(&mut c).is_empty() && c.user().is_none());

    send(
        &mut c,
        json!({"type": "login", "id": "p", "method": "pbx", "profile": "pbx1", "user": "201", "password": "s"}),
    );
    assert!(matches!(c.poll_request(), Some(Request::PbxLogin { ref profile, .. }) if profile == "pbx1"));
    c.login_result("p".into(), Ok(LoginInfo { user: "201".into(), profiles: vec!["pbx1".into()] }));
    let out = drain(&mut c);
    assert_eq!(
        (&out[0]["type"], &out[0]["id"], &out[0]["ok"], &out[0]["user"]),
        (&json!("login"), &json!("p"), &json!(true), &json!("201"))
    );
    assert_eq!(c.user().unwrap().method, LoginKind::Pbx);
}

#[test]
fn login_errors_map_to_codes() {
    for (err, code) in [
        (LoginError::Forbidden, "forbidden"),
        (LoginError::Upstream("PBX timed out".into()), "login_failed"),
    ] {
        let mut c = greeted();
        send(&mut c, json!({"type": "login", "id": 1, "method": "pbx", "profile": "x", "user": "u", "password": "p"}));
        c.login_result(1.into(), Err(err));
        assert_error(&drain(&mut c), code, json!(1));
        assert_alive(&mut c);
    }
}

#[test]
fn repeated_failed_logins_are_rate_limited() {
    let mut c = greeted();
    for i in 0..MAX_LOGIN_FAILURES {
        let out = send(&mut c, json!({"type": "login", "id": i, "method": "token", "token": "a.b.c"}));
        assert_error(&out, "token_invalid", json!(i));
    }
    let out = send(&mut c, json!({"type": "login", "id": "last", "method": "token", "token": token("a", NOW + 60)}));
    assert_error(&out, "rate_limited", json!("last"));
    assert_alive(&mut c);
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let shown = format!("{:?}", config());
    assert!(!shown.contains(std::str::from_utf8(SECRET).unwrap()), "{shown}");
    let login: ClientMessage =
        serde_json::from_value(json!({"type": "login", "id": 1, "method": "token", "token": "tok-123"})).unwrap();
    assert!(!format!("{login:?}").contains("tok-123"));
}

/// coturn `use-auth-secret`: each login gets `expiry:user` and its HMAC, the expiry counted from
/// the login frame's arrival; neither the reply nor Debug output holds the secret itself.
#[test]
fn shared_secret_servers_get_a_credential_minted_per_login() {
    use crate::config::{IceAuth, IceServerConfig, Secret};
    let turn = IceServerConfig {
        urls: vec!["turn:127.0.0.1:3478?transport=udp".into()],
        auth: IceAuth::SharedSecret { secret: Secret("coturn-secret".into()), lifetime_secs: 3_600 },
    };
    let mut c = Connection::new(ConnectionConfig { ice_servers: vec![turn], ..config() });
    send(&mut c, json!({"type": "hello", "id": 0, "versions": [1]}));
    send(&mut c, json!({"type": "login", "id": 1, "method": "password", "user": "carol", "password": "pw"}));
    assert!(c.poll_request().is_some());
    c.login_result(1.into(), Ok(LoginInfo { user: "carol".into(), profiles: vec!["trunk".into()] }));
    let out = drain(&mut c);
    let server = &out[0]["ice_servers"][0];
    let expiry = NOW + 3_600;
    assert_eq!(server["username"], format!("{expiry}:carol"), "{out:?}");
    let (_, password) = ice::rest_credential(b"coturn-secret", "carol", expiry);
    assert_eq!(server["credential"], password);
    assert!(!out[0].to_string().contains("coturn-secret"));
    assert!(!format!("{c:?}").contains("coturn-secret"));
}
