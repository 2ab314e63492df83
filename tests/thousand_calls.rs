//! 1,000 consecutive browser-placed calls, 20 at a time, through one gateway: every stream of every
//! call must carry media, browser -> SIP and SIP -> browser. This is the old media plane's open
//! defect ("now and then a browser-placed call's browser -> SIP audio never arrives") asked a
//! thousand times. The browsers are the load tool's Rust WebRTC client and the far end is its SIP
//! trunk (benches/gateway_load): a thousand Chromium calls would take far too long.

#[path = "../benches/gateway_load/main.rs"]
#[allow(dead_code)]
mod gateway_load;

use gateway_load::browser::Voice;
use gateway_load::calls::{from_browser, CallContext, CallReport};
use gateway_load::media_loop::MediaLoops;
use gateway_load::meter::Window;
use gateway_load::{sip_peer::SipPeer, start_gateway, Media};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CALLS: u32 = 1_000;
const AT_A_TIME: usize = 20;
/// From the browser's `call` to its hangup: setup, then about a second of media each way.
const CALL_LENGTH: Duration = Duration::from_millis(2_200);
const WHOLE_RUN: Duration = Duration::from_secs(300);

/// What is wrong with one call, if anything.
fn problem(report: &CallReport) -> Option<String> {
    if let Some(failure) = &report.failure {
        return Some(failure.clone());
    }
    let setup = format!("setup {:.0} ms", report.setup_us.unwrap_or_default() as f64 / 1_000.0);
    match (report.to_sip.received, report.to_browser.received) {
        (0, 0) => Some(format!("{}: no media either way ({setup}, {} and {} probes sent)", report.call, report.to_sip.sent, report.to_browser.sent)),
        (0, _) => Some(format!("{}: no browser -> SIP media ({setup}, {} sent; {} packets to the browser)", report.call, report.to_sip.sent, report.to_browser.received)),
        (_, 0) => Some(format!("{}: no SIP -> browser media ({setup}, {} sent; {} packets to SIP)", report.call, report.to_browser.sent, report.to_sip.received)),
        _ => None,
    }
}

async fn place_calls(http_port: u16, peer: Arc<SipPeer>) -> Vec<CallReport> {
    let media = Arc::new(MediaLoops::start(MediaLoops::threads_from_env()).expect("load tool media loop"));
    let epoch = Instant::now();
    let deadline = epoch + WHOLE_RUN;
    let mut running = tokio::task::JoinSet::new();
    let (mut next, mut reports) = (0u32, Vec::with_capacity(CALLS as usize));
    while (next < CALLS || !running.is_empty()) && Instant::now() < deadline {
        while next < CALLS && running.len() < AT_A_TIME {
            let start = Instant::now();
            // Each call counts the probes sent in its own lifetime.
            let window = Window { epoch, start, end: start + CALL_LENGTH };
            let context = Arc::new(CallContext { http_port, jwt_secret: gateway_load::JWT_SECRET, peer: Arc::clone(&peer), voice: Voice::PcmuProbes, window, probed: true, media: Arc::clone(&media), requests: Vec::new() });
            running.spawn(from_browser(context, next, window.end));
            next += 1;
        }
        match tokio::time::timeout(Duration::from_secs(30), running.join_next()).await {
            Ok(Some(Ok(report))) => reports.push(report),
            Ok(Some(Err(e))) => reports.push(CallReport { call: "a call task".into(), failure: Some(format!("panicked: {e}")), ..Default::default() }),
            Ok(None) => {}
            Err(_) => break,
        }
    }
    running.abort_all();
    reports
}

#[test]
fn a_thousand_browser_calls_twenty_at_a_time_all_carry_media_both_ways() {
    let trunk_socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("trunk socket");
    let trunk_port = trunk_socket.local_addr().expect("trunk address").port();
    let gateway = start_gateway(Media::Passthrough, trunk_port, 0);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let started = Instant::now();
    let reports = runtime.block_on(async {
        let peer = SipPeer::start(trunk_socket, gateway.sip_addr()).expect("SIP trunk");
        place_calls(gateway.http_port, peer).await
    });
    runtime.shutdown_timeout(Duration::from_secs(2));
    let problems: Vec<String> = reports.iter().filter_map(problem).collect();
    let (to_sip, to_browser): (u64, u64) = reports.iter().fold((0, 0), |(s, b), r| (s + r.to_sip.received, b + r.to_browser.received));
    println!("{} calls in {:.0} s: {to_sip} packets browser -> SIP, {to_browser} SIP -> browser, {} calls with a problem", reports.len(), started.elapsed().as_secs_f64(), problems.len());
    assert_eq!(reports.len(), CALLS as usize, "only {} of {CALLS} calls finished within {WHOLE_RUN:?}", reports.len());
    if !problems.is_empty() {
        let kept = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts/thousand_calls-gateway.log");
        let _ = std::fs::create_dir_all(kept.parent().unwrap_or(std::path::Path::new(".")));
        let _ = std::fs::write(&kept, gateway.log());
        panic!("{} of {CALLS} calls lacked media (gateway log: {}):\n{}", problems.len(), kept.display(), problems.iter().take(20).cloned().collect::<Vec<_>>().join("\n"));
    }
}
