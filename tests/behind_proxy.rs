//! The gateway behind a record-routing proxy (Kamailio 5.6 with dispatcher and record_route, as
//! tests/kamailio/front.cfg). Like the stock kamailio.cfg, the proxy drops in-dialog requests that
//! carry no Route to it, so every ACK, PRACK, re-INVITE, UPDATE, INFO and BYE below passes only
//! if both sides keep the RFC 3261 §12 route set. Each test also reads the proxy's trace: no 404,
//! nothing dropped, and exactly one 200 for the call's INVITE (a retransmitted 200 means our 200
//! was never acknowledged).

mod support;

use support::calls::{echo_page, AnsweringPages, EchoTrunk};
use support::kamailio::Proxy;
use support::{free_port, sipp_available, Gateway, GatewayOptions, JWT_SECRET};

fn token(profiles: Vec<String>) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let claims = sipbridge::signaling::jwt::Claims { sub: "alice".into(), exp: now + 600, nbf: None, iat: None, profiles };
    sipbridge::signaling::jwt::sign(&claims, JWT_SECRET.as_bytes())
}

/// The gateway with a trunk profile whose host is the proxy (`proxy_port`, or any port when the
/// trunk only calls in): calls in come from the proxy's address, calls out go to it.
fn gateway(proxy_port: u16) -> Gateway {
    let trunk = format!("kind = \"trunk\"\nhost = \"127.0.0.1\"\nport = {proxy_port}\ntrusted_addresses = [\"127.0.0.1\"]\n");
    Gateway::start(GatewayOptions { profiles: vec![("trunk.toml".into(), trunk)], ..Default::default() })
}

/// No request was dropped or refused by the proxy, and the call's INVITE got one 200 only.
fn assert_clean_trace(proxy: &Proxy, gateway: &Gateway) {
    let trace = proxy.trace();
    let text = trace.join("\n");
    assert!(!text.contains("PROXY DROP"), "an in-dialog request came without a Route:\n{text}\n{}", gateway.log());
    assert!(!trace.iter().any(|l| l.starts_with("PROXY REPLY 404")), "the proxy answered 404:\n{text}");
    let first_answers = trace.iter().filter(|l| l.starts_with("PROXY REPLY 200 INVITE cseq=1 ")).count();
    assert_eq!(first_answers, 1, "one 200 for the INVITE, never retransmitted:\n{text}");
    assert!(!gateway.log().contains("no ACK"), "{}", gateway.log());
}

/// sipp -rtp_echo calls alice through the proxy; answer.mjs hears its own 440 Hz tone come back.
fn trunk_calls_browser(scenario: &str, mode: &str) -> (serde_json::Value, Proxy, Gateway) {
    sipp_available();
    let gateway = gateway(free_port());
    let proxy = Proxy::start(gateway.sip_port, free_port());
    let browser = AnsweringPages::start(&gateway, &[mode]);
    let run = support::sipp(scenario, &format!("127.0.0.1:{}", proxy.port), &["-t", "u1", "-rtp_echo", "-mp", &support::free_sipp_media_port().to_string()]);
    let page = browser.reports().pop().unwrap_or_default();
    assert!(run.success(), "{}\nproxy:\n{}\n{}", run.describe(), proxy.trace().join("\n"), gateway.log());
    assert_eq!(page["ok"], true, "{page:#}\n{}", gateway.log());
    let hz = page["peakHz"].as_f64().unwrap_or(0.0);
    println!("{scenario}: the browser heard {hz:.1} Hz back through the trunk");
    assert!((hz - 440.0).abs() <= 15.0, "the browser's tone came back through sipp's echo: {page:#}");
    (page, proxy, gateway)
}

/// Trunk -> proxy -> gateway -> browser: a reliable 180 (PRACK), the ACK, hold and resume by
/// re-INVITE, a session refresh by UPDATE and the trunk's BYE all pass through the proxy.
#[test]
fn trunk_call_through_the_proxy_with_prack_hold_refresh_and_bye() {
    let (page, proxy, gateway) = trunk_calls_browser("proxied_call_to_browser.xml", "accept");
    assert_eq!(page["holds"], serde_json::json!(["hold", "resume"]), "{page:#}");
    assert_eq!(page["ended"]["reason"], "normal", "the trunk's BYE reached the browser: {page:#}");
    assert_clean_trace(&proxy, &gateway);
    let trace = proxy.trace().join("\n");
    for method in ["PRACK", "ACK", "UPDATE", "BYE"] {
        assert!(trace.contains(&format!("PROXY IN {method} sip:sipbridge@")), "{method} went through the proxy to our Contact:\n{trace}");
    }
}

/// The browser hangs up: the gateway's BYE goes to the proxy with the route set.
#[test]
fn browser_hangs_up_a_trunk_call_through_the_proxy() {
    let (_, proxy, gateway) = trunk_calls_browser("proxied_call_browser_hangs_up.xml", "hangup");
    assert_clean_trace(&proxy, &gateway);
    assert!(proxy.trace().iter().any(|l| l.starts_with("PROXY IN BYE sip:sipp@")), "{}", proxy.trace().join("\n"));
}

/// Browser -> gateway -> proxy -> trunk (sipp -rtp_echo on `trunk_port`); echo.mjs in `mode`.
fn browser_calls_trunk(scenario: &str, mode: &str) -> (serde_json::Value, Proxy, Gateway) {
    sipp_available();
    let trunk_port = free_port();
    // The gateway must know the proxy's port, and the proxy the gateway's: the proxy's port is
    // chosen first, the gateway pointed at it, then the proxy started on it.
    let reserved = free_port();
    let gateway = gateway(reserved);
    let proxy = Proxy::start_on(reserved, gateway.sip_port, trunk_port);
    let scenario_file = support::scenario_path(scenario).to_string_lossy().into_owned();
    let trunk = EchoTrunk::with_scenario(trunk_port, &["-sf", &scenario_file]);
    let page = echo_page(&gateway, &token(vec!["trunk".into()]), ["", "+15551234567", mode], &[]);
    let verdict = trunk.finish();
    let context = format!("proxy:\n{}\n{}", proxy.trace().join("\n"), gateway.log());
    assert_eq!(page["ok"], true, "{page:#}\n{verdict:?}\n{context}");
    assert!(verdict.is_ok(), "the trunk's scenario: {verdict:?}\n{context}");
    let hz = page["peakHz"].as_f64().unwrap_or(0.0);
    println!("{scenario}: the tone came back at {hz:.1} Hz");
    assert!((hz - 1000.0).abs() <= 20.0, "the browser's tone came back through the trunk: {page:#}");
    (page, proxy, gateway)
}

/// The trunk rings reliably (our PRACK rides the early dialog's route set), answers, sees the
/// browser hold and resume, gets "123#" as INFO, and the browser's BYE, all through the proxy.
#[test]
fn browser_call_through_the_proxy_with_prack_hold_dtmf_and_bye() {
    let (page, proxy, gateway) = browser_calls_trunk("proxied_trunk.xml", "hold-dtmf");
    let before = page["levelBeforeHold"].as_f64().unwrap_or(0.0);
    assert!(before > 0.05, "{page:#}");
    assert!(page["levelAfterResume"].as_f64().unwrap_or(0.0) > 0.05, "audio resumed: {page:#}");
    assert_clean_trace(&proxy, &gateway);
    let trace = proxy.trace().join("\n");
    for method in ["PRACK", "ACK", "INFO", "BYE"] {
        assert!(trace.contains(&format!("PROXY IN {method} sip:127.0.0.1:")), "{method} went through the proxy to the trunk's Contact:\n{trace}");
    }
}

/// The trunk hangs up a browser's call: its BYE reaches us through the proxy.
#[test]
fn trunk_hangs_up_a_browser_call_through_the_proxy() {
    let (page, proxy, gateway) = browser_calls_trunk("proxied_trunk_hangs_up.xml", "remote-end");
    assert_eq!(page["ended"]["reason"], "normal", "{page:#}");
    assert_clean_trace(&proxy, &gateway);
    let trace = proxy.trace().join("\n");
    assert!(trace.contains("PROXY IN ACK sip:127.0.0.1:"), "our ACK followed the record-route, not the Contact:\n{trace}");
    assert!(trace.contains("PROXY IN BYE sip:sipbridge@"), "{trace}");
    // The record names the peer the call went to, and what it calls itself.
    let record = support::completed_record(&gateway);
    assert_eq!(record.sip_remote, Some(format!("127.0.0.1:{}", proxy.port)), "{record:#?}");
    assert_eq!(record.sip_user_agent.as_deref(), Some("Example Trunk 4.2"), "{record:#?}");
}
