//! Real SIP peers (sipp) against the running gateway: registrar with digest, OPTIONS, the trust
//! gate, and the gateway registering upstream to a PBX that challenges.

mod support;

use std::time::Duration;
use support::{sipp, sipp_available, Gateway, GatewayOptions};

fn target(gateway: &Gateway) -> String {
    format!("127.0.0.1:{}", gateway.sip_port)
}

#[test]
fn register_with_digest_over_udp_and_tcp() {
    sipp_available();
    let gateway = Gateway::start(GatewayOptions::default());
    for (transport, name) in [("u1", "UDP"), ("t1", "TCP")] {
        let run = sipp("register_digest.xml", &target(&gateway), &["-t", transport]);
        assert!(run.success(), "register over {transport}:\n{}\n{}", run.describe(), gateway.log());
        // The same contact re-registered over another transport replaces the old binding.
        let status = gateway.status();
        let bindings = status["bindings"].as_array().expect("bindings");
        assert_eq!(bindings.len(), 1, "{status:#}");
        assert_eq!(bindings[0]["aor"], "sip:alice@example.com", "{status:#}");
        assert_eq!(bindings[0]["transport"], name, "{status:#}");
        assert!(bindings[0]["expires_in_secs"].as_u64().is_some_and(|e| e > 250 && e <= 300), "{status:#}");
    }
}

#[test]
fn register_with_wrong_password_is_refused() {
    sipp_available();
    let gateway = Gateway::start(GatewayOptions::default());
    let run = sipp("register_wrong_password.xml", &target(&gateway), &["-t", "u1"]);
    assert!(run.success(), "{}", run.describe());
    assert_eq!(gateway.status()["bindings"].as_array().map(Vec::len), Some(0));
    assert!(gateway.log().contains("REGISTER authentication failed"), "the refusal is logged");
}

#[test]
fn options_is_answered_with_capabilities() {
    sipp_available();
    let gateway = Gateway::start(GatewayOptions::default());
    for transport in ["u1", "t1"] {
        let run = sipp("options.xml", &target(&gateway), &["-t", transport]);
        assert!(run.success(), "OPTIONS over {transport}:\n{}", run.describe());
    }
}

#[test]
fn invite_from_untrusted_address_is_refused_and_logged() {
    sipp_available();
    let gateway = Gateway::start(GatewayOptions::default());
    let run = sipp("invite_untrusted.xml", &target(&gateway), &["-t", "u1"]);
    assert!(run.success(), "{}", run.describe());
    let run = sipp("invite_local_unauthenticated.xml", &target(&gateway), &["-t", "u1"]);
    assert!(run.success(), "{}", run.describe());
    let status = gateway.status();
    assert_eq!(status["counters"]["untrusted_refused"], 1, "{status:#}");
    let log = gateway.log();
    assert!(
        log.lines().any(|l| l.contains("refused dialog from untrusted source") && l.contains("source=127.0.0.1:")),
        "the refusal names the source address:\n{log}"
    );
}

#[test]
fn gateway_registers_upstream_answers_401_and_refreshes() {
    sipp_available();
    let pbx_port = support::free_port();
    let profile = format!(
        "kind = \"pbx\"\nhost = \"127.0.0.1\"\nport = {pbx_port}\ntransport = \"udp\"\nregister = true\n\
         username = \"gw-user\"\npassword = \"gw-secret\"\nregister_expires = 60\n"
    );
    // The PBX (sipp as UAS) must be listening before the gateway sends its first REGISTER.
    let pbx = std::thread::spawn(move || {
        sipp("upstream_registrar.xml", "", &["-t", "u1", "-p", &pbx_port.to_string()])
    });
    std::thread::sleep(Duration::from_millis(500));
    let gateway = Gateway::start(GatewayOptions { profiles: vec![("pbx.toml".into(), profile)], ..Default::default() });
    let run = pbx.join().expect("sipp thread");
    assert!(run.success(), "the PBX saw a bad or late registration:\n{}\n{}", run.describe(), gateway.log());
    let status = gateway.wait_status("registered upstream", Duration::from_secs(5), |s| {
        s["upstreams"][0]["registration"] == "registered" && s["upstreams"][0]["expires_in_secs"].as_u64().is_some_and(|e| e > 30)
    });
    assert_eq!(status["upstreams"][0]["registered"], true, "{status:#}");
    assert_eq!(status["upstreams"][0]["last_error"], serde_json::Value::Null, "{status:#}");
}
