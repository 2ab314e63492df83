//! The soak: one gateway held at a number of concurrent calls for a long time, with churn (every
//! call lasts a random time between two bounds, and a new one takes its place), a mix of call
//! kinds in turn (from browsers: PCMU passthrough, Opus transcoded, with DTMF, with hold and
//! resume; from SIP: passthrough, with DTMF, with hold and resume), and the gateway's RSS, open fds, threads, active calls and spool depth
//! sampled every `sample_every`. `tests/soak.rs` runs it (5 minutes in `make test`, an hour in
//! `make soak`) and judges the figures.

use super::browser::Voice;
use super::calls::{self, CallContext, CallReport};
use super::meter::{self, StreamTally, Window};
use super::sip_peer::SipPeer;
use super::support::{http_get, Gateway, API_TOKEN};
use super::{media_loop, start_gateway, Media};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct SoakPlan {
    pub duration: Duration,
    pub concurrency: usize,
    pub shortest_call: Duration,
    pub longest_call: Duration,
    /// Figures before this are not judged (allocator arenas, caches and pools fill up).
    pub warm_up: Duration,
    pub sample_every: Duration,
}

/// The kinds of call the soak cycles through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    BrowserPassthrough,
    BrowserTranscoded,
    BrowserDtmf,
    BrowserHold,
    SipPassthrough,
    SipDtmf,
    SipHold,
}

const KINDS: [Kind; 7] = [Kind::BrowserPassthrough, Kind::BrowserTranscoded, Kind::SipPassthrough, Kind::BrowserDtmf, Kind::SipHold, Kind::SipDtmf, Kind::BrowserHold];

impl Kind {
    /// What the browser asks for mid-call, and when after the answer: DTMF, or hold then resume
    /// (the browser holds; the gateway re-INVITEs the trunk sendonly, then sendrecv).
    fn requests(self) -> Vec<(Duration, serde_json::Value)> {
        match self {
            Kind::BrowserDtmf | Kind::SipDtmf => vec![(Duration::from_secs(5), serde_json::json!({"type": "dtmf", "digits": "1234#"}))],
            Kind::BrowserHold | Kind::SipHold => vec![
                (Duration::from_secs(6), serde_json::json!({"type": "hold"})),
                (Duration::from_secs(12), serde_json::json!({"type": "unhold"})),
            ],
            _ => Vec::new(),
        }
    }
}

/// One reading of the gateway process.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub at_secs: u64,
    pub rss_kib: u64,
    pub fds: u64,
    pub threads: u64,
    pub spool_depth: u64,
    pub active_calls: u64,
    /// SIP ladders the gateway keeps for calls in progress (sipbridge_sip_ladder_calls).
    pub ladders: u64,
}

#[derive(Debug, Default)]
pub struct SoakReport {
    pub calls: usize,
    pub failed: usize,
    pub failures: Vec<String>,
    pub by_kind: Vec<(String, usize)>,
    /// Per kind: packets lost and packets expected, both directions.
    pub loss_by_kind: Vec<(String, u64, u64)>,
    /// Mid-call requests (DTMF, hold, resume) sent, and those the gateway confirmed.
    pub requests_sent: usize,
    pub requests_confirmed: usize,
    pub to_browser: StreamTally,
    pub to_sip: StreamTally,
    pub samples: Vec<Sample>,
    /// Idle readings before the first call and after the last (fds, threads, RSS KiB).
    pub idle_before: Option<Sample>,
    pub idle_after: Option<Sample>,
    /// Records in the gateway's database once everything settled, and those still in progress.
    pub records: u64,
    pub records_in_progress: u64,
}

impl SoakReport {
    pub fn lost_fraction(&self) -> f64 {
        let lost = self.to_browser.lost + self.to_sip.lost;
        let total = lost + self.to_browser.received + self.to_sip.received;
        if total == 0 { 0.0 } else { lost as f64 / total as f64 }
    }

    /// RSS growth under load from the end of the warm-up to the end of the run: the median of the
    /// three samples after the warm-up against the median of the last three at full load.
    pub fn rss_growth_kib(&self, plan: &SoakPlan) -> i64 {
        let loaded: Vec<&Sample> = self.samples.iter().filter(|s| s.at_secs >= plan.warm_up.as_secs() && s.at_secs + plan.longest_call.as_secs() <= plan.duration.as_secs()).collect();
        let median = |samples: &[&Sample]| -> i64 {
            let mut values: Vec<i64> = samples.iter().map(|s| s.rss_kib as i64).collect();
            values.sort_unstable();
            values.get(values.len() / 2).copied().unwrap_or(0)
        };
        if loaded.len() < 6 {
            return 0;
        }
        median(&loaded[loaded.len() - 3..]) - median(&loaded[..3])
    }
}

pub fn open_fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count() as u64).unwrap_or(0)
}

pub fn threads(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default().lines().find_map(|l| l.strip_prefix("Threads:").and_then(|v| v.trim().parse().ok())).unwrap_or(0)
}

fn metric(gateway_http: u16, name: &str) -> u64 {
    let body = http_get(gateway_http, "/metrics", Some(API_TOKEN)).map(|(_, b)| b).unwrap_or_default();
    let prefix = format!("{name} ");
    body.lines().find_map(|l| l.strip_prefix(prefix.as_str())).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

fn sample(gateway: &Gateway, epoch: Instant) -> Sample {
    let pid = gateway.pid();
    Sample {
        at_secs: epoch.elapsed().as_secs(),
        rss_kib: meter::rss_kib(pid),
        fds: open_fds(pid),
        threads: threads(pid),
        spool_depth: metric(gateway.http_port, "sipbridge_record_spool_depth"),
        active_calls: metric(gateway.http_port, "sipbridge_calls_active"),
        ladders: metric(gateway.http_port, "sipbridge_sip_ladder_calls"),
    }
}

/// A call length between the plan's bounds, spread evenly by a cheap hash of the call's number.
fn call_length(plan: &SoakPlan, call: u64) -> Duration {
    let spread = plan.longest_call.saturating_sub(plan.shortest_call).as_millis() as u64;
    let mixed = call.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17);
    plan.shortest_call + Duration::from_millis(if spread == 0 { 0 } else { mixed % (spread + 1) })
}

/// Runs the soak on a gateway of its own (SQLite records) and returns what it saw.
pub fn run(plan: &SoakPlan) -> SoakReport {
    let trunk_socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("trunk socket");
    let trunk_port = trunk_socket.local_addr().expect("addr").port();
    let gateway = start_gateway(Media::Passthrough, trunk_port, 0);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let mut report = runtime.block_on(drive(plan, &gateway, trunk_socket));
    runtime.shutdown_timeout(Duration::from_secs(2));
    settle_records(&gateway, &mut report);
    report
}

async fn drive(plan: &SoakPlan, gateway: &Gateway, trunk_socket: std::net::UdpSocket) -> SoakReport {
    let peer = SipPeer::start(trunk_socket, gateway.sip_addr()).expect("SIP peer");
    let media = Arc::new(media_loop::MediaLoops::start(media_loop::MediaLoops::threads_from_env()).expect("media loop"));
    let opus = Arc::new(super::browser::opus_tone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let epoch = Instant::now();
    // One short call each way first, so what the gateway opens once (the database connection,
    // pools) is open before the idle reading that the end is compared with.
    let prelude_stop = Instant::now() + Duration::from_secs(4);
    let (from_browser, from_sip) = tokio::join!(
        one_call(Kind::BrowserPassthrough, 2_000, prelude_stop, gateway.http_port, &peer, &media, &opus, epoch),
        one_call(Kind::SipPassthrough, 2_001, prelude_stop, gateway.http_port, &peer, &media, &opus, epoch),
    );
    let reports: Arc<Mutex<Vec<(Kind, CallReport)>>> = Arc::new(Mutex::new(vec![(Kind::BrowserPassthrough, from_browser), (Kind::SipPassthrough, from_sip)]));
    tokio::task::block_in_place(|| wait_idle(gateway));
    let epoch = Instant::now();
    let mut report = SoakReport { idle_before: Some(sample(gateway, epoch)), ..Default::default() };
    let deadline = epoch + plan.duration;
    let next_call = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut slots = Vec::new();
    // The calls start over the first tenth of the shortest call, then each slot keeps one up.
    let ramp = plan.shortest_call / 10;
    for slot in 0..plan.concurrency {
        let start = epoch + ramp * slot as u32 / plan.concurrency.max(1) as u32;
        let (plan, peer, media, opus, reports, next_call) = (plan.clone(), peer.clone(), media.clone(), opus.clone(), reports.clone(), next_call.clone());
        let http_port = gateway.http_port;
        slots.push(tokio::spawn(async move {
            tokio::time::sleep_until(start.into()).await;
            // Two user names per slot, in turn, so a call never meets its predecessor's user.
            for round in 0u32.. {
                let now = Instant::now();
                if now + plan.shortest_call > deadline {
                    return;
                }
                let number = next_call.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let kind = KINDS[number as usize % KINDS.len()];
                let stop = now + call_length(&plan, number).min(deadline - now);
                let index = slot as u32 + 1_000 * (round % 2);
                let call = one_call(kind, index, stop, http_port, &peer, &media, &opus, epoch).await;
                reports.lock().unwrap_or_else(|p| p.into_inner()).push((kind, call));
            }
        }));
    }
    let sampling_end = deadline + Duration::from_secs(10);
    while Instant::now() < sampling_end {
        tokio::time::sleep(plan.sample_every).await;
        let reading = tokio::task::block_in_place(|| sample(gateway, epoch));
        println!(
            "soak {:>5} s: RSS {:>7} KiB, {:>4} fds, {:>3} threads, {:>3} calls up, spool {:>3}, {:>3} ladders",
            reading.at_secs, reading.rss_kib, reading.fds, reading.threads, reading.active_calls, reading.spool_depth, reading.ladders
        );
        report.samples.push(reading);
    }
    for slot in slots {
        let _ = tokio::time::timeout(Duration::from_secs(120), slot).await;
    }
    let reports = std::mem::take(&mut *reports.lock().unwrap_or_else(|p| p.into_inner()));
    tally(&mut report, reports);
    report
}

#[allow(clippy::too_many_arguments)]
async fn one_call(kind: Kind, index: u32, stop: Instant, http_port: u16, peer: &Arc<SipPeer>, media: &Arc<media_loop::MediaLoops>, opus: &Arc<Vec<Vec<u8>>>, epoch: Instant) -> CallReport {
    // Transcoded calls, and held ones (nothing reaches the trunk while held), count loss by
    // sequence numbers, which the gateway keeps continuous across hold; the rest by probes.
    let (voice, probed) = match kind {
        Kind::BrowserTranscoded => (Voice::Opus(Arc::clone(opus)), false),
        Kind::BrowserHold | Kind::SipHold => (Voice::PcmuProbes, false),
        _ => (Voice::PcmuProbes, true),
    };
    // Media counts from 2 s after the start (ICE and DTLS done) to the end of the call.
    let window = Window { epoch, start: Instant::now() + Duration::from_secs(2), end: stop };
    let requests = kind.requests();
    let context = Arc::new(CallContext { http_port, jwt_secret: super::JWT_SECRET, peer: Arc::clone(peer), voice, window, probed, media: Arc::clone(media), requests });
    match kind {
        Kind::SipPassthrough | Kind::SipDtmf | Kind::SipHold => calls::from_sip(context, index, stop).await,
        _ => calls::from_browser(context, index, stop).await,
    }
}

fn tally(report: &mut SoakReport, reports: Vec<(Kind, CallReport)>) {
    let mut by_kind: std::collections::BTreeMap<String, usize> = Default::default();
    let mut loss: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    for (kind, call) in reports {
        report.calls += 1;
        *by_kind.entry(format!("{kind:?}")).or_default() += 1;
        let kind_loss = loss.entry(format!("{kind:?}")).or_default();
        kind_loss.0 += call.to_browser.lost + call.to_sip.lost;
        kind_loss.1 += call.to_browser.lost + call.to_sip.lost + call.to_browser.received + call.to_sip.received;
        report.requests_sent += kind.requests().len();
        report.requests_confirmed += call.confirmed;
        report.to_browser.merge(StreamTally { latencies_us: Vec::new(), ..call.to_browser });
        report.to_sip.merge(StreamTally { latencies_us: Vec::new(), ..call.to_sip });
        if let Some(failure) = call.failure {
            report.failed += 1;
            if report.failures.len() < 10 {
                report.failures.push(format!("{kind:?}: {failure}"));
            }
        }
    }
    report.by_kind = by_kind.into_iter().collect();
    report.loss_by_kind = loss.into_iter().map(|(kind, (lost, expected))| (kind, lost, expected)).collect();
}

/// Waits (bounded) for the gateway to have no call up and an empty spool, then reads the idle
/// figures and counts the records in its SQLite database.
/// Waits (bounded) for no call up and an empty spool, then for idle pools (tokio's blocking
/// threads, 10 s keep-alive) to wind down.
fn wait_idle(gateway: &Gateway) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline && (metric(gateway.http_port, "sipbridge_calls_active") > 0 || metric(gateway.http_port, "sipbridge_record_spool_depth") > 0) {
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(12));
}

fn settle_records(gateway: &Gateway, report: &mut SoakReport) {
    wait_idle(gateway);
    report.idle_after = Some(sample(gateway, Instant::now()));
    let url = format!("sqlite://{}", gateway.dir.path().join("data/records.db").display());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        use sipbridge::store::{CallStatus, CallStore, RecordFilter, SqlStore};
        let store = SqlStore::connect(&url).await.expect("open the gateway's records");
        report.records = store.count().await.unwrap_or(0);
        let open = RecordFilter { status: Some(CallStatus::InProgress), limit: 500, ..Default::default() };
        report.records_in_progress = store.list(&open).await.map(|r| r.len() as u64).unwrap_or(u64::MAX);
        store.close().await;
    });
}
