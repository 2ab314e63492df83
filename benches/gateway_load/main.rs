//! Whole-gateway load: a release gateway on loopback, Rust WebRTC browsers on one side and a SIP
//! trunk with an RTP generator on the other, in one process. Signalling runs in tokio tasks, one
//! per call; every packet of both sides is sent and counted by the sans-IO media loop
//! (media_loop.rs), so the tool costs a fraction of the gateway it loads. Prints each scenario and writes
//! target/bench/REPORT.md with every figure against its target.
//!
//! `LOAD=quick` (the default, `make bench`) runs each scenario once at a size a 2-core machine
//! holds; `LOAD=full` (`make bench-full`) ramps each until calls fail or packets are lost.
//! Smaller looks: `LOAD_PASSTHROUGH` and `LOAD_TRANSCODED` (comma-separated call counts, empty
//! for none), `LOAD_WEBSOCKET` (call counts of the JsSIP-style scenario: SIP over WebSocket to
//! the trunk, ws_sip.rs), `LOAD_SETUP_RATE` (0 for none), `LOAD_PROFILE=0` (no runs under perf),
//! `LOAD_TOOL_THREADS` (the tool's media loops, default 1), `LOAD_WORKERS` (the gateway's
//! `[media] workers`, unpinned; by default one pinned worker per CPU but the tool's), `LOAD_REALTIME` (its `[media] realtime_priority`,
//! default off), `LOAD_FILL` (its `[media] worker_fill_percent`, default 30), `LOAD_SLICE`
//! (its `[media] worker_slice_us`, default 100), `LOAD_CPUS` (its `[media] worker_cpus`, default
//! one worker on each CPU but the tool's; `none` for unpinned), `LOAD_CODEC_BATCH` (its
//! `[media] codec_batch_ms`, default 20) and `LOAD_PIN` (the CPU of the tool's media loops,
//! default the last; `none` for unpinned).

#[path = "../../tests/support/mod.rs"]
mod support;

pub mod batched;
pub mod browser;
pub mod calls;
pub mod floor;
pub mod floor_fed;
pub mod floors;
pub mod interleave;
pub mod media_loop;
pub mod meter;
pub mod profile;
pub mod report;
pub mod sip_peer;
pub mod soak;
pub mod stamped;
pub mod stream;
pub mod targets;
pub mod ws_sip;

use browser::Voice;
use calls::{CallContext, CallReport};
use meter::{percentile, CpuSample, StealSample, StreamTally, Window};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{Gateway, GatewayOptions};
pub use floors::Floors;
use floors::measure_floors;
pub use support::JWT_SECRET;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Browser,
    Sip,
    /// A JsSIP-style client: SIP over WebSocket with a WebRTC offer, dialling a number on the trunk.
    WebSocketSip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Media {
    /// PCMU on both legs: RTP <-> SRTP, payload untouched.
    Passthrough,
    /// Opus in the browser, PCMU on the trunk.
    Transcoded,
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub origin: Origin,
    pub media: Media,
    pub calls: usize,
    pub arrivals_per_second: f64,
    /// `None`: every call stays up through the measured window (concurrency). `Some`: each call
    /// lasts this long after it starts (setup rate).
    pub hold: Option<Duration>,
    /// After the last call starts, before measuring: ICE and DTLS finish, jitter settles.
    pub settle: Duration,
    pub measure: Duration,
    pub profile: bool,
}

impl Scenario {
    fn slug(&self) -> String {
        self.name().chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect::<String>().split('-').filter(|p| !p.is_empty()).collect::<Vec<_>>().join("-")
    }

    pub fn name(&self) -> String {
        let origin = match self.origin {
            Origin::Browser => "browser → SIP",
            Origin::Sip => "SIP → browser",
            Origin::WebSocketSip => "SIP over WebSocket (JsSIP-style) → SIP",
        };
        let media = match self.media {
            Media::Passthrough => "PCMU passthrough",
            Media::Transcoded => "Opus ↔ PCMU",
        };
        match self.hold {
            None if self.profile => format!("{origin}, {media}, {} concurrent, under perf (figures not counted)", self.calls),
            None => format!("{origin}, {media}, {} concurrent", self.calls),
            Some(hold) => format!("{origin}, {media}, {:.0} setups/s, {}s calls", self.arrivals_per_second, hold.as_secs()),
        }
    }
}

#[derive(Debug)]
pub struct Outcome {
    pub scenario: Scenario,
    pub answered: usize,
    pub failed: usize,
    pub failures: Vec<String>,
    pub setup_us: Vec<u32>,
    pub accept_to_ok_us: Vec<u32>,
    pub to_browser: StreamTally,
    pub to_sip: StreamTally,
    pub gateway_cpu: f64,
    pub loader_cpu: f64,
    pub idle_rss_kib: u64,
    pub loaded_rss_kib: u64,
    /// The anonymous part of each (heap and stacks, without code pages).
    pub idle_anon_kib: u64,
    pub loaded_anon_kib: u64,
    /// Setups completed per second over the arrival period.
    pub setup_rate: f64,
    /// The hypervisor's steal time over the measured window, % of all CPUs' time.
    pub steal_percent: f64,
    pub profile: Option<Result<profile::Summary, String>>,
    /// A transcoded scenario's raw libopus floor: the passes timed in pauses of its window, on
    /// the gateway's CPU (`interleave`).
    pub codec_floor: Option<floor::CodecFloor>,
    /// How the window was cut for those passes; its CPU figures are the stretches'.
    pub interleaved: Option<interleave::Interleaved>,
}

impl Outcome {
    pub fn lost(&self) -> u64 {
        self.to_browser.lost + self.to_sip.lost
    }

    pub fn clean(&self) -> bool {
        self.failed == 0 && self.lost() == 0
    }

    pub fn cpu_per_call(&self) -> f64 {
        self.gateway_cpu / self.scenario.calls.max(1) as f64
    }

    pub fn rss_per_call_kib(&self) -> f64 {
        self.loaded_rss_kib.saturating_sub(self.idle_rss_kib) as f64 / self.scenario.calls.max(1) as f64
    }

    pub fn anon_per_call_kib(&self) -> f64 {
        self.loaded_anon_kib.saturating_sub(self.idle_anon_kib) as f64 / self.scenario.calls.max(1) as f64
    }
}

/// A gateway whose trunk profile points at `trunk_port`, translating to Opus for browsers when
/// `media` says so, with a `ws` SIP listener and a local user for each of `websocket_clients`.
pub fn start_gateway(media: Media, trunk_port: u16, websocket_clients: usize) -> Gateway {
    let trunk = format!("kind = \"trunk\"\nhost = \"127.0.0.1\"\nport = {trunk_port}\ntrusted_addresses = [\"127.0.0.1\"]\n");
    let browser_codec = match media {
        Media::Passthrough => "same",
        Media::Transcoded => "opus",
    };
    Gateway::start(GatewayOptions {
        profiles: vec![("trunk.toml".into(), trunk)],
        // `LOAD_WORKERS=N` sets `[media] workers` (default: one per CPU of `worker_cpus()`);
        // `LOAD_REALTIME=P` sets `[media] realtime_priority` (default: off, as the gateway's);
        // `LOAD_FILL=P` sets `[media] worker_fill_percent` (default: the gateway's, 30);
        // `LOAD_SLICE=US` sets `[media] worker_slice_us` (default: the gateway's);
        // `LOAD_CODEC_BATCH=MS` sets `[media] codec_batch_ms` (default: the gateway's);
        // `LOAD_CPUS` sets `[media] worker_cpus` (worker_cpus() below).
        extra_media: format!("rtp_port_min = 20000\nrtp_port_max = 29999\n{}{}\n[calls]\nmax_concurrent = 10000\nbrowser_codec = \"{browser_codec}\"\n", std::env::var("LOAD_WORKERS").map(|n| format!("workers = {n}\n")).unwrap_or_default() + &std::env::var("LOAD_REALTIME").map(|p| format!("realtime_priority = {p}\n")).unwrap_or_default() + &std::env::var("LOAD_FILL").map(|p| format!("worker_fill_percent = {p}\n")).unwrap_or_default() + &std::env::var("LOAD_SLICE").map(|us| format!("worker_slice_us = {us}\n")).unwrap_or_default() + &std::env::var("LOAD_CODEC_BATCH").map(|ms| format!("codec_batch_ms = {ms}\n")).unwrap_or_default(), worker_cpus()),
        log_level: "info",
        sip_websocket: websocket_clients > 0,
        local_users: ws_sip::users(websocket_clients),
        // The clients dial numbers (`t<index>`): the route sends them through this profile.
        local_user_profiles: vec!["trunk"],
        ..Default::default()
    })
}

/// `[media] worker_cpus` for the gateway (`media_loop::gateway_worker_cpus`), or nothing for
/// unpinned workers.
pub fn worker_cpus() -> String {
    let cpus = media_loop::gateway_worker_cpus();
    if cpus.is_empty() {
        return String::new();
    }
    format!("worker_cpus = [{}]\n", cpus.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))
}

/// Runs one scenario against a gateway of its own.
/// `libopus`: the raw libopus bench to time inside the window (a transcoded scenario's floor).
pub fn run(scenario: Scenario, opus: &Arc<Vec<Vec<u8>>>, libopus: Option<&mut floor::CodecBench>) -> Result<Outcome, String> {
    let trunk_socket = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let trunk_port = trunk_socket.local_addr().map_err(|e| e.to_string())?.port();
    let websocket_clients = if scenario.origin == Origin::WebSocketSip { scenario.calls } else { 0 };
    let gateway = start_gateway(scenario.media, trunk_port, websocket_clients);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
    let outcome = runtime.block_on(drive(scenario, &gateway, trunk_socket, opus, libopus));
    runtime.shutdown_timeout(Duration::from_secs(2));
    if let Ok(outcome) = &outcome {
        if !outcome.failures.is_empty() {
            // The gateway's own account of the failed calls outlives its temporary directory.
            let kept = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench").join(format!("gateway-{}.log", outcome.scenario.slug()));
            let _ = std::fs::create_dir_all(kept.parent().unwrap_or(std::path::Path::new(".")));
            let _ = std::fs::write(&kept, gateway.log());
            println!("    gateway log: {}", kept.display());
        }
    }
    outcome
}

async fn drive(scenario: Scenario, gateway: &Gateway, trunk_socket: std::net::UdpSocket, opus: &Arc<Vec<Vec<u8>>>, libopus: Option<&mut floor::CodecBench>) -> Result<Outcome, String> {
    let pid = gateway.pid();
    let peer = sip_peer::SipPeer::start(trunk_socket, gateway.sip_addr()).map_err(|e| e.to_string())?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss_kib = (meter::rss_kib(pid), meter::rss_anon_kib(pid));
    let epoch = Instant::now();
    let arrival_gap = Duration::from_secs_f64(1.0 / scenario.arrivals_per_second);
    let ramp = arrival_gap * scenario.calls as u32;
    let settle = scenario.settle;
    let window = match scenario.hold {
        None => Window { epoch, start: epoch + ramp + settle, end: epoch + ramp + settle + scenario.measure },
        Some(_) => Window::never(epoch),
    };
    let (voice, probed) = match scenario.media {
        Media::Passthrough => (Voice::PcmuProbes, true),
        Media::Transcoded => (Voice::Opus(Arc::clone(opus)), false),
    };
    let media = Arc::new(media_loop::MediaLoops::start(media_loop::MediaLoops::threads_from_env()).map_err(|e| format!("load tool media loop: {e}"))?);
    let context = Arc::new(CallContext { http_port: gateway.http_port, jwt_secret: JWT_SECRET, peer, voice, window, probed, media, requests: Vec::new() });
    let mut tasks = Vec::with_capacity(scenario.calls);
    let (arrivals_cpu, arrivals_steal) = (CpuSample::start(pid), StealSample::start());
    for index in 0..scenario.calls {
        tokio::time::sleep_until((epoch + arrival_gap * index as u32).into()).await;
        let stop = match scenario.hold {
            None => window.end,
            Some(hold) => Instant::now() + hold,
        };
        let context = Arc::clone(&context);
        let (index, origin, ws_port) = (index as u32, scenario.origin, gateway.ws_port);
        tasks.push(tokio::spawn(async move {
            match origin {
                Origin::Browser => calls::from_browser(context, index, stop).await,
                Origin::Sip => calls::from_sip(context, index, stop).await,
                Origin::WebSocketSip => calls::from_websocket(context, ws_port, index, stop).await,
            }
        }));
    }
    // Everything measured about the gateway happens inside the window (or the arrivals, for the
    // setup-rate scenarios, which have no media window).
    let mut interleaved = None;
    let (gateway_cpu, loader_cpu, loaded_rss_kib, steal_percent, profile) = match scenario.hold {
        None => {
            tokio::time::sleep_until(window.start.into()).await;
            let recording = scenario.profile.then(|| profile::record(pid, scenario.measure, gateway.dir.path()));
            let steal = StealSample::start();
            let (gateway_cpu, loader_cpu, cut) = interleave::read_window(&window, pid, &context.media, libopus.filter(|_| !scenario.profile)).await;
            interleaved = cut;
            let figures = ((meter::rss_kib(pid), meter::rss_anon_kib(pid)), steal.percent());
            let profile = recording.map(|r| r.and_then(|r| tokio::task::block_in_place(|| profile::summarise(r))));
            (gateway_cpu, loader_cpu, figures.0, figures.1, profile)
        }
        Some(_) => (arrivals_cpu.percent_of_core(), 0.0, (meter::rss_kib(pid), meter::rss_anon_kib(pid)), arrivals_steal.percent(), None),
    };
    let mut reports = Vec::with_capacity(tasks.len());
    for task in tasks {
        reports.push(tokio::time::timeout(Duration::from_secs(60), task).await.ok().and_then(Result::ok).unwrap_or_else(|| CallReport { failure: Some("call task hung".into()), ..Default::default() }));
    }
    let mut outcome = collect(scenario, reports, (gateway_cpu, loader_cpu), (idle_rss_kib, loaded_rss_kib), profile);
    outcome.steal_percent = steal_percent;
    outcome.interleaved = interleaved;
    Ok(outcome)
}

/// `rss`: (idle, loaded), each as (all, anonymous).
fn collect(scenario: Scenario, reports: Vec<CallReport>, cpu: (f64, f64), rss: ((u64, u64), (u64, u64)), profile: Option<Result<profile::Summary, String>>) -> Outcome {
    let mut outcome = Outcome {
        answered: 0,
        failed: 0,
        failures: Vec::new(),
        setup_us: Vec::new(),
        accept_to_ok_us: Vec::new(),
        to_browser: StreamTally::default(),
        to_sip: StreamTally::default(),
        gateway_cpu: cpu.0,
        loader_cpu: cpu.1,
        idle_rss_kib: rss.0 .0,
        loaded_rss_kib: rss.1 .0,
        idle_anon_kib: rss.0 .1,
        loaded_anon_kib: rss.1 .1,
        setup_rate: 0.0,
        steal_percent: 0.0,
        profile,
        scenario,
        codec_floor: None,
        interleaved: None,
    };
    for report in reports {
        if report.to_browser.lost + report.to_sip.lost > 0 && outcome.failures.len() < 5 {
            outcome.failures.push(format!("{}: lost {} to the browser, {} to SIP", report.call, report.to_browser.lost, report.to_sip.lost));
        }
        outcome.setup_us.extend(report.setup_us);
        outcome.accept_to_ok_us.extend(report.accept_to_ok_us);
        outcome.to_browser.merge(report.to_browser);
        outcome.to_sip.merge(report.to_sip);
        match report.failure {
            Some(failure) => {
                outcome.failed += 1;
                if outcome.failures.len() < 5 {
                    outcome.failures.push(failure);
                }
            }
            None => outcome.answered += 1,
        }
    }
    outcome.setup_us.sort_unstable();
    outcome.accept_to_ok_us.sort_unstable();
    outcome.to_browser.latencies_us.sort_unstable();
    outcome.to_sip.latencies_us.sort_unstable();
    let arrival_seconds = outcome.scenario.calls as f64 / outcome.scenario.arrivals_per_second;
    outcome.setup_rate = outcome.setup_us.len().min(outcome.answered) as f64 / arrival_seconds.max(1e-3);
    outcome
}

fn print(outcome: &Outcome) {
    let ms = |us: u32| us as f64 / 1_000.0;
    println!(
        "{:<58} answered {:>4} failed {:>3} | setup p50 {:>6.2} ms p99 {:>7.2} ms | gateway {:>6.1} % core = {:.3} %/call | RSS +{:.0} KiB/call ({:.0} anonymous) | lost {} of {}/{} (to browser/to SIP) | latency p50/p99 to browser {:.2}/{:.2} ms, to SIP {:.2}/{:.2} ms | load tool {:.0} % core | host steal {:.1} %",
        outcome.scenario.name(),
        outcome.answered,
        outcome.failed,
        ms(percentile(&outcome.setup_us, 0.5)),
        ms(percentile(&outcome.setup_us, 0.99)),
        outcome.gateway_cpu,
        outcome.cpu_per_call(),
        outcome.rss_per_call_kib(),
        outcome.anon_per_call_kib(),
        outcome.lost(),
        outcome.to_browser.received + outcome.to_browser.lost,
        outcome.to_sip.received + outcome.to_sip.lost,
        ms(percentile(&outcome.to_browser.latencies_us, 0.5)),
        ms(percentile(&outcome.to_browser.latencies_us, 0.99)),
        ms(percentile(&outcome.to_sip.latencies_us, 0.5)),
        ms(percentile(&outcome.to_sip.latencies_us, 0.99)),
        outcome.loader_cpu,
        outcome.steal_percent,
    );
    for failure in &outcome.failures {
        println!("    failure: {failure}");
    }
}

fn run_scenario(scenario: Scenario, opus: &Arc<Vec<Vec<u8>>>, outcomes: &mut Vec<Outcome>) -> bool {
    run_scenario_timing(scenario, opus, None, outcomes)
}

/// The same, with `libopus` timed inside its window (`interleave`).
fn run_scenario_timing(scenario: Scenario, opus: &Arc<Vec<Vec<u8>>>, libopus: Option<&mut floor::CodecBench>, outcomes: &mut Vec<Outcome>) -> bool {
    match run(scenario.clone(), opus, libopus) {
        Ok(outcome) => {
            print(&outcome);
            let clean = outcome.clean();
            outcomes.push(outcome);
            clean
        }
        Err(e) => {
            println!("{}: could not run: {e}", scenario.name());
            false
        }
    }
}

fn concurrent(plan: &Plan, origin: Origin, media: Media, calls: usize, profile: bool) -> Scenario {
    Scenario { origin, media, calls, arrivals_per_second: 50.0, hold: None, settle: plan.settle, measure: plan.measure, profile }
}

fn setup_rate(plan: &Plan, origin: Origin, per_second: f64) -> Scenario {
    let calls = (per_second * plan.setup_seconds as f64) as usize;
    Scenario { origin, media: Media::Passthrough, calls, arrivals_per_second: per_second, hold: Some(Duration::from_secs(2)), settle: plan.settle, measure: Duration::ZERO, profile: false }
}

/// What one run does: fixed sizes (quick), or ramps that stop at the first loss or failure (full).
pub struct Plan {
    pub ramp: bool,
    pub passthrough: Vec<usize>,
    pub transcoded: Vec<usize>,
    /// JsSIP-style calls (SIP over WebSocket → trunk: a WebRTC leg and an RTP leg, PCMU passthrough).
    pub websocket: Vec<usize>,
    pub setups_per_second: f64,
    pub setup_seconds: u64,
    pub settle: Duration,
    pub measure: Duration,
    /// How long each bare-relay floor is measured.
    pub floor_measure: Duration,
    /// Profile the gateway in an extra run at the largest clean passthrough and transcoded sizes.
    pub profile: bool,
    /// Time raw libopus inside each transcoded scenario's window (`interleave`); without it, a
    /// transcoded scenario runs unpaused and is held to the mean of the run's passes.
    pub interleave: bool,
}

impl Plan {
    fn from_env() -> Plan {
        let full = std::env::var("LOAD").is_ok_and(|v| v == "full");
        let sizes = |var: &str, default: &str| -> Vec<usize> { std::env::var(var).unwrap_or_else(|_| default.into()).split(',').filter_map(|n| n.trim().parse().ok()).collect() };
        Plan {
            ramp: full,
            passthrough: if full { (1..=10).map(|n| n * 100).collect() } else { sizes("LOAD_PASSTHROUGH", "200") },
            transcoded: if full { (1..=10).map(|n| n * 50).collect() } else { sizes("LOAD_TRANSCODED", "100") },
            websocket: if full { (1..=10).map(|n| n * 50).collect() } else { sizes("LOAD_WEBSOCKET", "50") },
            setups_per_second: std::env::var("LOAD_SETUP_RATE").ok().and_then(|r| r.parse().ok()).unwrap_or(50.0),
            setup_seconds: 10,
            settle: Duration::from_secs(3),
            measure: Duration::from_secs(if full { 20 } else { 15 }),
            floor_measure: Duration::from_secs(8),
            // `LOAD_PROFILE=0` skips the runs under perf (a quicker look at the figures).
            profile: std::env::var("LOAD_PROFILE").map_or(true, |v| v != "0"),
            // `LOAD_INTERLEAVE=0` runs the transcoded scenarios without pauses, to compare.
            interleave: std::env::var("LOAD_INTERLEAVE").map_or(true, |v| v != "0"),
        }
    }
}

/// What a run measured: its floors, then every scenario.
pub struct Run {
    pub floors: Floors,
    pub outcomes: Vec<Outcome>,
}

/// Measures the floors, then runs every scenario of the plan.
pub fn run_plan(plan: &Plan) -> Run {
    let opus = Arc::new(browser::opus_tone());
    let (mut floors, mut relay, mut codec) = measure_floors(plan, &opus);
    let mut outcomes = Vec::new();
    for (media, sizes) in [(Media::Passthrough, &plan.passthrough), (Media::Transcoded, &plan.transcoded)] {
        for origin in [Origin::Browser, Origin::Sip] {
            for &calls in sizes {
                let libopus = codec.timed_in_window(calls, media).filter(|_| plan.interleave);
                let first_pass = libopus.as_ref().map(|bench| bench.passes_timed());
                let clean = run_scenario_timing(concurrent(plan, origin, media, calls, false), &opus, libopus, &mut outcomes);
                relay.measure_after(calls);
                if let Some(first_pass) = first_pass {
                    let floor = codec.floor_in_window(calls, first_pass);
                    if let Some(outcome) = outcomes.last_mut().filter(|o| o.scenario.media == Media::Transcoded && o.scenario.calls == calls) {
                        outcome.codec_floor = floor;
                    }
                }
                if plan.ramp && !clean {
                    break;
                }
            }
        }
        // perf disturbs what it watches, so the profile is a run of its own at the largest clean
        // size (or, when none was clean, the largest run: where the time goes matters most then),
        // and none of its figures count.
        let largest_clean = report::best(&outcomes, media, Some(Origin::Browser)).map(|o| o.scenario.calls).or_else(|| sizes.iter().copied().max());
        if let Some(calls) = largest_clean.filter(|_| plan.profile) {
            run_scenario(concurrent(plan, Origin::Browser, media, calls, true), &opus, &mut outcomes);
        }
    }
    for &calls in &plan.websocket {
        let clean = run_scenario(concurrent(plan, Origin::WebSocketSip, Media::Passthrough, calls, false), &opus, &mut outcomes);
        if plan.ramp && !clean {
            break;
        }
    }
    for origin in [Origin::Browser, Origin::Sip].into_iter().filter(|_| plan.setups_per_second > 0.0) {
        let mut rate = plan.setups_per_second;
        while run_scenario(setup_rate(plan, origin, rate), &opus, &mut outcomes) && plan.ramp && rate < 300.0 {
            rate += 50.0;
        }
    }
    floors.relay = relay.floors();
    if !plan.transcoded.is_empty() {
        codec.print("over the whole run");
        (floors.codec, floors.codec_one_state) = codec.floors();
    }
    Run { floors, outcomes }
}

fn main() {
    let plan = Plan::from_env();
    let started = Instant::now();
    println!("gateway load ({}): release gateway on loopback; Rust WebRTC browsers and a SIP trunk in this process", if plan.ramp { "full" } else { "quick" });
    let run = run_plan(&plan);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench/REPORT.md");
    match report::write(&path, &run, plan.ramp, started.elapsed()) {
        Ok(()) => println!("report: {}", path.display()),
        Err(e) => println!("report not written: {e}"),
    }
}
