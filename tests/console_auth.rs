//! The web console's auth against a running gateway, as an attacker's browser or script would
//! try it: cookie attributes (HttpOnly, SameSite, Secure behind HTTPS), Origin checks on every
//! state-changing request a session can make, the login rate limit per source address, and no
//! session fixation (each login a new session, a planted cookie never adopted, logout revokes).

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use support::{Gateway, GatewayOptions, API_TOKEN};

const ADMIN_PASSWORD: &str = "console-admin-pass";
const VIEWER_PASSWORD: &str = "console-viewer-pass";

fn console_gateway() -> Gateway {
    let admin = sipbridge::http::console::hash_password(ADMIN_PASSWORD).expect("hash");
    let viewer = sipbridge::http::console::hash_password(VIEWER_PASSWORD).expect("hash");
    Gateway::start(GatewayOptions {
        extra_http: format!(
            "\n[[http.console_users]]\nusername = \"ops\"\npassword_hash = \"{admin}\"\nrole = \"admin\"\n\
             \n[[http.console_users]]\nusername = \"viewer\"\npassword_hash = \"{viewer}\"\nrole = \"viewer\"\n"
        ),
        ..Default::default()
    })
}

struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    /// The session cookie's `name=value` and its attributes, if the answer sets one.
    fn set_cookie(&self) -> Option<(String, Vec<String>)> {
        let line = self.head.lines().find_map(|l| l.strip_prefix("set-cookie: ").or_else(|| l.strip_prefix("Set-Cookie: ")))?;
        let mut parts = line.split(';').map(|p| p.trim().to_string());
        Some((parts.next()?, parts.collect()))
    }
}

/// One HTTP/1.1 request from `source` (any 127.0.0.0/8 address) to the gateway.
fn request_from(source: [u8; 4], port: u16, method: &str, path: &str, headers: &[&str], body: &str) -> Answer {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind(SocketAddr::from((source, 0))).expect("bind the source address");
        socket.connect(SocketAddr::from(([127, 0, 0, 1], port))).await.expect("connect")
    });
    let mut stream: TcpStream = stream.into_std().expect("std stream");
    stream.set_nonblocking(false).expect("blocking");
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).expect("timeout");
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    write!(stream, "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}\r\n{body}", body.len()).expect("write");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Answer { status, head: head.to_string(), body: body.to_string() }
}

fn request(port: u16, method: &str, path: &str, headers: &[&str], body: &str) -> Answer {
    request_from([127, 0, 0, 1], port, method, path, headers, body)
}

fn credentials(user: &str, password: &str) -> String {
    serde_json::json!({ "username": user, "password": password }).to_string()
}

/// Logs in with extra headers; the session cookie's `name=value`.
fn login_with(port: u16, user: &str, password: &str, headers: &[&str]) -> String {
    let answer = request(port, "POST", "/console/login", headers, &credentials(user, password));
    assert_eq!(answer.status, 200, "{} {}", answer.head, answer.body);
    answer.set_cookie().expect("a session cookie").0
}

fn me(port: u16, cookie: &str) -> u16 {
    request(port, "GET", "/console/me", &[&format!("Cookie: {cookie}")], "").status
}

#[test]
fn session_cookies_are_http_only_same_site_strict_and_secure_behind_https() {
    let gateway = console_gateway();
    let port = gateway.http_port;
    let answer = request(port, "POST", "/console/login", &[], &credentials("ops", ADMIN_PASSWORD));
    let (cookie, attributes) = answer.set_cookie().expect("a session cookie");
    assert!(cookie.starts_with("sb_session=") && cookie.len() > 60, "{cookie}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=28800"] {
        assert!(attributes.iter().any(|a| a == attribute), "{attribute} in {attributes:?}");
    }
    assert!(!attributes.iter().any(|a| a == "Secure"), "plain HTTP: a Secure cookie would never come back: {attributes:?}");

    // Behind a TLS proxy the cookie is Secure, by either header a proxy sets.
    for proxy in ["X-Forwarded-Proto: https", "Forwarded: for=192.0.2.7;proto=https"] {
        let answer = request(port, "POST", "/console/login", &[proxy], &credentials("ops", ADMIN_PASSWORD));
        let (_, attributes) = answer.set_cookie().expect("a session cookie");
        assert!(attributes.iter().any(|a| a == "Secure") && attributes.iter().any(|a| a == "HttpOnly"), "{proxy}: {attributes:?}");
        let logout = request(port, "POST", "/console/logout", &[proxy, &format!("Cookie: {cookie}")], "");
        let (cleared, attributes) = logout.set_cookie().expect("logout clears the cookie");
        assert_eq!(cleared, "sb_session=");
        assert!(attributes.iter().any(|a| a == "Max-Age=0") && attributes.iter().any(|a| a == "Secure"), "{attributes:?}");
    }
    assert!(!gateway.log().contains(ADMIN_PASSWORD), "passwords are never logged");
}

#[test]
fn requests_that_change_state_must_come_from_the_consoles_origin() {
    let gateway = console_gateway();
    let port = gateway.http_port;
    let body = credentials("ops", ADMIN_PASSWORD);
    for foreign in [&["Origin: http://evil.example"][..], &["Origin: null"], &["Origin: http://127.0.0.1:1"], &["Sec-Fetch-Site: cross-site"], &["Sec-Fetch-Site: same-site"]] {
        let answer = request(port, "POST", "/console/login", foreign, &body);
        assert_eq!(answer.status, 403, "login with {foreign:?}: {}", answer.body);
        assert!(answer.body.contains("\"cross_origin\"") && answer.set_cookie().is_none(), "{foreign:?}: {}", answer.body);
    }
    let own_origin = format!("Origin: http://127.0.0.1:{port}");
    let admin = login_with(port, "ops", ADMIN_PASSWORD, &[&own_origin, "Sec-Fetch-Site: same-origin"]);
    let with_cookie = format!("Cookie: {admin}");

    // Another site cannot log the session out, nor drain the gateway with it.
    let logout = request(port, "POST", "/console/logout", &[&with_cookie, "Origin: http://evil.example"], "");
    assert_eq!(logout.status, 403, "{}", logout.body);
    assert_eq!(me(port, &admin), 200, "the session survived");
    for foreign in ["Origin: http://evil.example", "Sec-Fetch-Site: cross-site"] {
        let drain = request(port, "POST", "/api/v1/drain", &[&with_cookie, foreign], "");
        assert_eq!(drain.status, 403, "{foreign}: {}", drain.body);
        assert!(drain.body.contains("\"cross_origin\""), "{}", drain.body);
    }
    let ready = request(port, "GET", "/readyz", &[&format!("Authorization: Bearer {API_TOKEN}")], "");
    assert_eq!(ready.status, 200, "not draining: {}", ready.body);
    // A script with the API token is no browser: no Origin check applies to it.
    assert_eq!(request(port, "GET", "/api/v1/calls", &[&format!("Authorization: Bearer {API_TOKEN}"), "Origin: http://evil.example"], "").status, 200);

    // From the console itself, the same session drains the gateway.
    let drain = request(port, "POST", "/api/v1/drain", &[&with_cookie, &own_origin], "");
    assert_eq!(drain.status, 202, "{}", drain.body);
}

#[test]
fn failed_logins_are_limited_per_source_address() {
    let gateway = console_gateway();
    let port = gateway.http_port;
    for attempt in 1..=10 {
        let answer = request(port, "POST", "/console/login", &[], &credentials("ops", &format!("guess-{attempt}")));
        assert_eq!(answer.status, 401, "attempt {attempt}: {}", answer.body);
    }
    // Now even the right password is refused from this address, before any password is checked.
    let blocked = request(port, "POST", "/console/login", &[], &credentials("ops", ADMIN_PASSWORD));
    assert_eq!(blocked.status, 429, "{}", blocked.body);
    assert!(blocked.body.contains("\"rate_limited\"") && blocked.set_cookie().is_none(), "{}", blocked.body);
    let unknown_user = request(port, "POST", "/console/login", &[], &credentials("nobody", "x"));
    assert_eq!(unknown_user.status, 429, "unknown users are limited alike: {}", unknown_user.body);
    // Another address is not punished for this one.
    let elsewhere = request_from([127, 0, 0, 2], port, "POST", "/console/login", &[], &credentials("ops", ADMIN_PASSWORD));
    assert_eq!(elsewhere.status, 200, "{}", elsewhere.body);
    assert!(gateway.log().matches("console login failed").count() == 10, "each failure is logged once, with its source:\n{}", gateway.log());
}

#[test]
fn every_login_is_a_new_session_and_no_planted_cookie_is_adopted() {
    let gateway = console_gateway();
    let port = gateway.http_port;
    // A cookie an attacker planted before the login is replaced, and stays worthless.
    let planted = "sb_session=attacker-chosen-session-id";
    let after_planting = login_with(port, "ops", ADMIN_PASSWORD, &[&format!("Cookie: {planted}")]);
    assert_ne!(after_planting, planted);
    assert_eq!(me(port, planted), 401, "the planted value is no session");
    assert_eq!(me(port, &after_planting), 200);

    // Logging in with a valid session of another user gives a new session of the new user.
    let viewer = login_with(port, "viewer", VIEWER_PASSWORD, &[]);
    let admin = login_with(port, "ops", ADMIN_PASSWORD, &[&format!("Cookie: {viewer}")]);
    assert_ne!(admin, viewer);
    let who = request(port, "GET", "/console/me", &[&format!("Cookie: {admin}")], "");
    assert!(who.body.contains("\"user\":\"ops\"") && who.body.contains("\"role\":\"admin\""), "{}", who.body);

    // The same user twice in the same second: two sessions.
    let (first, second) = (login_with(port, "ops", ADMIN_PASSWORD, &[]), login_with(port, "ops", ADMIN_PASSWORD, &[]));
    assert_ne!(first, second);

    // Logout ends that session only, even for a copy of its cookie.
    let logout = request(port, "POST", "/console/logout", &[&format!("Cookie: {first}")], "");
    assert_eq!(logout.status, 200, "{}", logout.body);
    assert_eq!(me(port, &first), 401, "a logged-out session is refused");
    assert_eq!(request(port, "GET", "/api/v1/calls", &[&format!("Cookie: {first}")], "").status, 401);
    assert_eq!(me(port, &second), 200, "other sessions live on");
    assert_eq!(me(port, &viewer), 200);
}
