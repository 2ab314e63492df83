//! target/bench/REPORT.md: every scenario's figures, then each target against what was measured.

use super::meter::percentile;
use super::{targets, Media, Origin, Outcome, Run};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

fn ms(us: u32) -> String {
    format!("{:.2}", us as f64 / 1_000.0)
}

fn loss_percent(outcome: &Outcome) -> f64 {
    let expected = outcome.to_browser.received + outcome.to_browser.lost + outcome.to_sip.received + outcome.to_sip.lost;
    if expected == 0 { 0.0 } else { outcome.lost() as f64 * 100.0 / expected as f64 }
}

fn scenario_table(out: &mut String, outcomes: &[Outcome]) {
    out.push_str("| scenario | answered | failed | packets (to browser / to SIP) | lost | gateway CPU, % of a core | per call | RSS per call | setup p50 / p99 (ms) | added latency to browser p50 / p99 (ms) | to SIP p50 / p99 (ms) | load tool CPU | host steal |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for o in outcomes {
        let latency = |s: &super::StreamTally| if s.latencies_us.is_empty() { "–".to_string() } else { format!("{} / {}", ms(percentile(&s.latencies_us, 0.5)), ms(percentile(&s.latencies_us, 0.99))) };
        let concurrent = o.scenario.hold.is_none();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} ({:.3} %) | {:.1} | {} | {} | {} / {} | {} | {} | {} | {:.1} % |",
            o.scenario.name(),
            o.answered,
            o.failed,
            if concurrent { format!("{} / {}", o.to_browser.received + o.to_browser.lost, o.to_sip.received + o.to_sip.lost) } else { "–".into() },
            o.lost(),
            loss_percent(o),
            o.gateway_cpu,
            if concurrent { format!("{:.3} %", o.cpu_per_call()) } else { "–".into() },
            if concurrent { format!("{:.0} KiB", o.rss_per_call_kib()) } else { "–".into() },
            ms(percentile(&o.setup_us, 0.5)),
            ms(percentile(&o.setup_us, 0.99)),
            latency(&o.to_browser),
            latency(&o.to_sip),
            if concurrent { format!("{:.0} %", o.loader_cpu) } else { "–".into() },
            o.steal_percent,
        );
    }
}

/// JsSIP-style calls next to the JSON path's, from the same run: setup, CPU and RSS per call, and
/// media delivery.
fn websocket_section(out: &mut String, outcomes: &[Outcome]) {
    let websocket: Vec<&Outcome> = outcomes.iter().filter(|o| o.scenario.origin == Origin::WebSocketSip).collect();
    if websocket.is_empty() {
        return;
    }
    out.push_str(
        "\n## SIP over WebSocket (JsSIP-style) next to the JSON path\n\n\
         The load tool's own SIP-over-WebSocket client (`benches/gateway_load/ws_sip.rs`, as JsSIP or SIP.js speak it): it connects \
         to the `ws` listener with the `sip` subprotocol, registers with digest, and dials a number (`t<index>`) with a WebRTC \
         offer (ICE, DTLS-SRTP, PCMU, candidates inline), answering the INVITE's 407 with digest; the gateway routes it to the \
         trunk through the client's granted profile, as it does the JSON path's browser → SIP calls, and the client hangs up \
         with BYE. Both kinds of call have one WebRTC leg and one RTP PCMU leg, passthrough. Setup: the first INVITE (its 407 \
         round included) to its 200 OK, less the trunk's think time; for the JSON path, `call` to `answered` less the trunk's \
         think time (browser → SIP), and the trunk's INVITE to `incoming` (SIP → browser). The concurrent runs set calls up at \
         50 a second.\n\n",
    );
    out.push_str("| path | calls | answered / failed | setup p50 / p99 (ms) | gateway CPU per call, % of a core | RSS per call | lost / packets (to the WebRTC side, to the trunk) |\n|---|---|---|---|---|---|---|\n");
    let json_path = outcomes.iter().filter(|o| !o.scenario.profile && o.scenario.media == Media::Passthrough && o.scenario.origin != Origin::WebSocketSip);
    for o in websocket.iter().copied().chain(json_path) {
        let concurrent = o.scenario.hold.is_none();
        let _ = writeln!(
            out,
            "| {} | {} | {} / {} | {} / {} | {} | {} | {} |",
            o.scenario.name(),
            o.scenario.calls,
            o.answered,
            o.failed,
            ms(percentile(&o.setup_us, 0.5)),
            ms(percentile(&o.setup_us, 0.99)),
            if concurrent { format!("{:.3} %", o.cpu_per_call()) } else { "–".into() },
            if concurrent { format!("{:.0} KiB", o.rss_per_call_kib()) } else { "–".into() },
            if concurrent { format!("{} / {}, {} / {}", o.to_browser.lost, o.to_browser.received + o.to_browser.lost, o.to_sip.lost, o.to_sip.received + o.to_sip.lost) } else { "–".into() },
        );
    }
}

/// The largest clean concurrent run of one kind, and the figures from it.
pub fn best<'a>(outcomes: &'a [Outcome], media: Media, origin: Option<Origin>) -> Option<&'a Outcome> {
    outcomes
        .iter()
        .filter(|o| !o.scenario.profile && o.scenario.hold.is_none() && o.scenario.media == media && origin.is_none_or(|origin| o.scenario.origin == origin))
        .filter(|o| o.clean())
        .max_by_key(|o| o.scenario.calls)
}

fn profile_section(out: &mut String, outcomes: &[Outcome]) {
    for o in outcomes {
        let Some(profile) = &o.profile else { continue };
        let _ = writeln!(out, "\n## Where the gateway's time goes: {}\n", o.scenario.name());
        match profile {
            Err(e) => {
                let _ = writeln!(out, "No profile: {e}");
            }
            Ok(summary) => {
                let _ = writeln!(out, "`perf record -e cpu-clock -F 499` on the gateway for the measured window: {} samples. Self time by area:\n", summary.samples);
                out.push_str("| area | share of gateway CPU |\n|---|---|\n");
                for (area, percent) in &summary.areas {
                    let _ = writeln!(out, "| {area} | {percent:.1} % |");
                }
                out.push_str("\nSelf time by binary (every sample, symbols or not):\n\n| binary | share of gateway CPU |\n|---|---|\n");
                for (binary, percent) in &summary.binaries {
                    let _ = writeln!(out, "| `{binary}` | {percent:.1} % |");
                }
                out.push_str("\nHottest functions (self time):\n\n| function | share |\n|---|---|\n");
                for (symbol, percent) in &summary.symbols {
                    let _ = writeln!(out, "| `{}` | {percent:.1} % |", symbol.replace('|', "\\|"));
                }
            }
        }
    }
}

pub fn write(path: &Path, run: &Run, full: bool, took: Duration) -> std::io::Result<()> {
    let outcomes = &run.outcomes[..];
    let mut out = String::new();
    let _ = writeln!(out, "# sipbridge whole-gateway load ({} run)\n", if full { "full: ramped until loss" } else { "quick" });
    let _ = writeln!(
        out,
        "Release gateway on loopback with its embedded SQLite call records, {} CPU cores, {:.0} s in all. Browsers are the gateway's own sans-IO WebRTC legs \
         (rtc's ICE agent and DTLS endpoint, DTLS-SRTP) on the load tool's media thread, speaking the signaling protocol; the SIP side is a trunk in the same \
         process with an RTP generator. Every call sends 50 packets/s each way. The load tool shares the cores with the gateway, so concurrency is a floor. \
         Latency runs from the sender's clock read before sending to the kernel's arrival stamp on the receiving socket (SO_TIMESTAMPNS), so it includes \
         the sender's own stack: an upper bound on what the gateway adds; the latency rows give the same figure through the bare relay fed by the same sender, the part no relay on this host can avoid. \
         Transcoded RTP waits for the gateway's codec tick (`[media] codec_batch_ms`: {}), so a transcoded call carries up to that much more delay one way; \
         transcoded streams have no latency probes, and the latency target is about relayed media, which never waits. \
         Placement: {}. \
         This is a virtual machine: *host steal* is the share of its CPUs' time the hypervisor gave other guests during each window (/proc/stat). \
         A vCPU taken away holds what it was running, a worker and its queued packets included, for milliseconds, and other guests' load slows \
         the kernel's switches: read every CPU and latency figure next to it. The floors are measured in the same run so that they share the conditions: before the scenarios, and the target floors again after each scenario of their size (each the mean of its measurements). Raw libopus is timed on the CPU of the gateway's first media worker, and inside each transcoded scenario's window: the senders pause between stretches of about 3 s, libopus is timed while the gateway idles, and the scenario is held to those passes with its CPU read over the stretches only. Two vCPUs of one guest can differ by 10 %, and one vCPU's speed can drift by half within minutes.\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        took.as_secs_f64(),
        std::env::var("LOAD_CODEC_BATCH").map_or_else(|_| format!("{} ms, the default", sipbridge::media::engine::DEFAULT_CODEC_BATCH_MS), |ms| format!("{ms} ms, set by LOAD_CODEC_BATCH")),
        placement(&run.floors)
    );
    out.push_str("## Floors\n\nMeasured first, in this run, on this machine; every CPU target below is a multiple of them.\n\n");
    targets::floors_table(&mut out, &run.floors);
    out.push_str("\n## Targets (issue 13)\n\n");
    targets::targets_table(&mut out, outcomes, &run.floors);
    out.push_str("\n## Scenarios\n\n");
    scenario_table(&mut out, outcomes);
    websocket_section(&mut out, outcomes);
    let failures: Vec<String> = outcomes.iter().flat_map(|o| o.failures.iter().map(move |f| format!("- {}: {f}", o.scenario.name()))).collect();
    if !failures.is_empty() {
        let _ = writeln!(out, "\nFirst failures:\n\n{}", failures.join("\n"));
    }
    profile_section(&mut out, outcomes);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, out)
}

/// Which CPUs the load tool and the gateway's workers run on, as this run set them.
fn placement(floors: &super::Floors) -> String {
    let pinned = super::media_loop::PINNED.load(std::sync::atomic::Ordering::Relaxed);
    let tool = match super::media_loop::load_tool_cpu() {
        Some(cpu) if !pinned => format!("the load tool's media loop could not be pinned to CPU {cpu}"),
        Some(cpu) => format!("the load tool's media loop is pinned to CPU {cpu} (it stands for the network and the peers, which a deployed gateway does not share its cores with)"),
        None => "the load tool's media loop is not pinned".to_string(),
    };
    let workers = super::worker_cpus();
    let gateway = match workers.trim() {
        "" => "the gateway's media workers are not pinned".to_string(),
        line => format!("the gateway runs `{line}` (one media worker pinned to each)"),
    };
    // Where the floors' threads did run, which a CPU they could not take changes.
    let relays = floors.relay.iter().filter_map(|f| f.as_ref().ok()).map(|f| f.placement);
    let placed: Vec<super::floor::Placement> = relays.chain(floors.shared_port.iter().filter_map(|f| f.as_ref().ok()).map(|f| f.placement)).collect();
    let floor = match placed.first() {
        Some(first) if first.is_pinned() && placed.iter().all(|p| p == first) => {
            format!(". The bare relay floors, the shared-port ones included, are placed the same way{} (the unpinned relay is given for comparison)", first.describe())
        }
        Some(_) if placed.iter().any(super::floor::Placement::is_pinned) => ". The bare relay floors could not all be placed the same way: each floor's row says where it ran".to_string(),
        _ => ". The bare relay floors run unpinned".to_string(),
    };
    format!("{tool}; {gateway} (`LOAD_PIN`, `LOAD_CPUS`){floor}")
}
