//! SIP ladders under a flood: 100,000 INVITEs from an untrusted loopback address reach the
//! gateway (the rate limit is raised so they are not cut off before the core) while a trusted
//! trunk (sipp) calls a browser user. The strangers' messages are counted and never kept, the
//! gateway's memory stays where it was, and the real call's record has its whole ladder.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::calls::AnsweringPages;
use support::{completed_record, http_get, sipp, sipp_available, Gateway, GatewayOptions, API_TOKEN};

const FLOOD: u64 = 100_000;
/// INVITEs sent but not yet counted by the gateway: enough to keep it busy, few enough that the
/// kernel's socket buffer does not drop them (a dropped INVITE would test nothing).
const WINDOW: u64 = 2_000;
/// INVITEs per Call-ID: a ladder that followed strangers would fill every call it starts.
const PER_CALL_ID: u64 = 32;
const STRANGER: &str = "127.0.0.77";
/// An SDES key in every INVITE, which must turn up nowhere.
const KEY: &str = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";

fn untrusted_invite(port: u16, n: u64) -> Vec<u8> {
    let call = n / PER_CALL_ID;
    let body = format!(
        "v=0\r\no=- 1 1 IN IP4 {STRANGER}\r\ns=-\r\nc=IN IP4 {STRANGER}\r\nt=0 0\r\nm=audio 4000 RTP/SAVP 0 8\r\n\
         a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}\r\na=x-pad:{}\r\n",
        "p".repeat(700)
    );
    format!(
        "INVITE sip:alice@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {STRANGER}:{port};branch=z9hG4bK-flood-{n};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:eve@evil.example>;tag=f{n}\r\nTo: <sip:alice@127.0.0.1>\r\n\
         Call-ID: flood-{call}@evil.example\r\nCSeq: {n} INVITE\r\nContact: <sip:eve@{STRANGER}:{port}>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The gateway's SIP status document (the test thread's `Gateway` stays where it is).
fn sip_status(http_port: u16) -> serde_json::Value {
    let (code, body) = http_get(http_port, "/api/v1/sip/status", Some(API_TOKEN)).expect("status request");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).expect("status JSON")
}

fn messages_received(http_port: u16) -> u64 {
    sip_status(http_port)["counters"]["messages_received"].as_u64().unwrap_or(0)
}

/// Sends `FLOOD` INVITEs from `STRANGER`, at most `WINDOW` ahead of what the gateway has read,
/// within `limit`. `sent` shows progress to the test thread. Returns how many went.
fn flood(to: SocketAddr, http_port: u16, sent: &AtomicU64, limit: Duration) -> u64 {
    let socket = UdpSocket::bind(format!("{STRANGER}:0")).expect("a second loopback address");
    let port = socket.local_addr().expect("addr").port();
    let start = Instant::now();
    let base = messages_received(http_port);
    let mut n = 0;
    while n < FLOOD && start.elapsed() < limit {
        for _ in 0..WINDOW / 4 {
            let _ = socket.send_to(&untrusted_invite(port, n), to);
            n += 1;
        }
        sent.store(n, Ordering::Relaxed);
        // Wait (bounded) for the gateway to catch up to within the window; if datagrams were
        // lost on the way, go on after a while rather than wait for ever.
        let wait_until = Instant::now() + Duration::from_millis(500);
        while messages_received(http_port).saturating_sub(base) + WINDOW < n && Instant::now() < wait_until {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    n
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.trim().strip_suffix("kB")?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in {status}"))
}

#[test]
fn a_flood_of_untrusted_invites_is_counted_not_kept_and_a_real_call_keeps_its_ladder() {
    sipp_available();
    let trunk = "kind = \"trunk\"\nhost = \"127.0.0.1\"\ntrusted_addresses = [\"127.0.0.1\"]\n".to_string();
    let gateway = Gateway::start(GatewayOptions {
        profiles: vec![("trunk.toml".into(), trunk)],
        extra_sip: "rate_limit_per_second = 1000000\nrate_limit_burst = 1000000\n".into(),
        // The flood's 403s at debug level would be most of the test's time.
        log_level: "info",
        ..Default::default()
    });
    let browser = AnsweringPages::start(&gateway, &["accept"]);
    let rss_before = rss_kib(gateway.pid(), "VmRSS:");

    let sent = Arc::new(AtomicU64::new(0));
    let flooder = {
        let (to, http_port, sent) = (gateway.sip_addr(), gateway.http_port, sent.clone());
        std::thread::spawn(move || flood(to, http_port, &sent, Duration::from_secs(120)))
    };
    // The real call starts once the flood is under way.
    let started = Instant::now();
    while sent.load(Ordering::Relaxed) < FLOOD / 10 && started.elapsed() < Duration::from_secs(30) && !flooder.is_finished() {
        std::thread::sleep(Duration::from_millis(10));
    }
    let at_call_start = sent.load(Ordering::Relaxed);
    let run = sipp("call_to_browser.xml", &format!("127.0.0.1:{}", gateway.sip_port), &["-t", "u1", "-mp", &support::free_sipp_media_port().to_string()]);
    let at_call_end = sent.load(Ordering::Relaxed);
    let report = browser.reports().pop().unwrap_or_default();
    let flooded = flooder.join().expect("flood thread");
    let elapsed = started.elapsed();
    assert!(run.success(), "the trusted call during the flood: {}\n{}", run.describe(), gateway.log());
    assert_eq!(report["ok"], true, "{report:#}");

    // Every stranger's INVITE that reached the core was counted and none was kept.
    let status = gateway.wait_status("the flood read", Duration::from_secs(20), |s| s["counters"]["untrusted_refused"].as_u64().is_some_and(|n| n >= flooded * 9 / 10));
    let refused = status["counters"]["untrusted_refused"].as_u64().unwrap_or(0);
    let ladder = &status["ladder"];
    let rss_after = rss_kib(gateway.pid(), "VmRSS:");
    let peak = rss_kib(gateway.pid(), "VmHWM:");
    println!(
        "flood: {flooded} INVITEs sent in {elapsed:?} ({at_call_start} before the call, {at_call_end} by its end); {refused} refused; ladder {ladder}"
    );
    println!("gateway RSS: {rss_before} KiB before, {rss_after} KiB after, peak {peak} KiB");
    assert_eq!(flooded, FLOOD, "the whole flood went within the time bound");
    assert!(at_call_start < FLOOD, "the call was made during the flood ({at_call_start} sent when it started)");
    assert!(rss_after < rss_before + 20 * 1024, "RSS grew from {rss_before} KiB to {rss_after} KiB");
    assert!(ladder["outside_trusted_calls"].as_u64().is_some_and(|n| n >= refused), "every refused INVITE counted: {ladder}");
    assert_eq!((ladder["calls"].as_u64(), ladder["bytes"].as_u64(), ladder["evicted"].as_u64()), (Some(0), Some(0), Some(0)), "nothing held, nothing evicted: {ladder}");

    // The real call's record: its whole ladder, in order, with no stranger's message in it.
    let record = completed_record(&gateway);
    let ladder: Vec<&str> = record.sip_messages.iter().map(|m| m.summary.as_str()).collect();
    println!("the call's ladder: {ladder:?}");
    let expected = ["INVITE sip:", "SIP/2.0 100", "SIP/2.0 180", "SIP/2.0 200", "ACK sip:", "BYE sip:", "SIP/2.0 200"];
    let mut rest = ladder.iter();
    for step in expected {
        assert!(rest.any(|s| s.starts_with(step)), "{step} missing or out of order in {ladder:?}");
    }
    let call_id = &record.sip_call_ids[0];
    assert!(record.sip_messages.iter().all(|m| m.text.contains(call_id.as_str()) && !m.text.contains("evil.example")), "{ladder:?}");
    assert!(record.sip_messages.iter().all(|m| m.peer.starts_with("127.0.0.1:")), "only the trunk's messages");
    let (_, calls) = http_get(gateway.http_port, "/api/v1/calls?limit=500", Some(API_TOKEN)).expect("records");
    let calls: serde_json::Value = serde_json::from_str(&calls).expect("JSON");
    assert_eq!(calls["calls"].as_array().map(Vec::len), Some(1), "one record, the real call's: {calls}");
    let log = gateway.log();
    assert!(!log.contains(KEY), "no SDES key in the log");
    // The flood's warnings are capped (20 per 10 s), not one line per INVITE.
    let refusals = log.lines().filter(|l| l.contains("refused dialog from untrusted source")).count();
    assert!((1..=400).contains(&refusals), "{refusals} refusal lines in the log for 100,000 refused INVITEs");

    let (_, metrics) = http_get(gateway.http_port, "/metrics", Some(API_TOKEN)).expect("metrics");
    let skipped = metrics.lines().find_map(|l| l.strip_prefix("sipbridge_sip_ladder_skipped_total{reason=\"outside_trusted_call\"} ")).and_then(|n| n.parse::<u64>().ok());
    assert!(skipped.is_some_and(|n| n >= refused), "{metrics}");
    assert!(metrics.contains("sipbridge_sip_ladder_calls 0\n") && metrics.contains("sipbridge_sip_ladder_bytes 0\n"), "{metrics}");
}
