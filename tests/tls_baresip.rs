//! A real phone (baresip) registers to the gateway over TLS, with a certificate the test generates.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;
use support::{free_port_pair, Gateway, GatewayOptions, ALICE_PASSWORD};

#[test]
fn baresip_registers_over_tls() {
    assert!(Command::new("baresip").arg("-h").output().is_ok(), "baresip is not installed: `make test` installs it");
    let certs = tempfile::tempdir().expect("tempdir");
    let generated = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()]).expect("cert");
    let (cert, key) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
    std::fs::write(&cert, generated.cert.pem()).expect("write cert");
    std::fs::write(&key, generated.key_pair.serialize_pem()).expect("write key");

    let gateway = Gateway::start(GatewayOptions { tls_cert: Some((cert.clone(), key)), ..GatewayOptions::default() });

    let phone = tempfile::tempdir().expect("tempdir");
    let sip_port = free_port_pair();
    std::fs::write(
        phone.path().join("config"),
        format!(
            "module_path /usr/lib/baresip/modules\nsip_listen 127.0.0.1:{sip_port}\nsip_cafile {}\n\
             module_tmp uuid.so\nmodule_tmp account.so\n",
            cert.display()
        ),
    )
    .expect("baresip config");
    std::fs::write(
        phone.path().join("accounts"),
        format!("<sip:alice@127.0.0.1:{};transport=tls>;auth_pass={ALICE_PASSWORD};regint=600\n", gateway.tls_port),
    )
    .expect("baresip accounts");
    let mut baresip = Command::new("baresip")
        .arg("-f")
        .arg(phone.path())
        .args(["-t", "20"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start baresip");

    let registered = |s: &serde_json::Value| {
        s["bindings"].as_array().is_some_and(|b| b.iter().any(|b| b["aor"] == "sip:alice@example.com" && b["transport"] == "TLS"))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let mut status = gateway.status();
    while !registered(&status) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        status = gateway.status();
    }
    let _ = baresip.kill();
    let output = baresip.wait_with_output().expect("baresip output");
    assert!(
        registered(&status),
        "baresip did not register over TLS; status:\n{status:#}\nbaresip:\n{}{}\ngateway:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        gateway.log()
    );
    let binding = &status["bindings"][0];
    assert!(binding["expires_in_secs"].as_u64().is_some_and(|e| e > 500), "{status:#}");
    assert!(binding["user_agent"].as_str().is_some_and(|ua| ua.contains("baresip")), "{status:#}\n{}", String::from_utf8_lossy(&output.stdout));
}
