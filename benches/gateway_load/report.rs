//! target/bench/REPORT.md: every scenario's figures, then each target against what was measured.

use super::meter::percentile;
use super::{Media, Origin, Outcome};
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
    out.push_str("| scenario | answered | failed | packets (to browser / to SIP) | lost | gateway CPU, % of a core | per call | RSS per call | setup p50 / p99 (ms) | added latency to browser p50 / p99 (ms) | to SIP p50 / p99 (ms) | load tool CPU |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for o in outcomes {
        let latency = |s: &super::StreamTally| if s.latencies_us.is_empty() { "–".to_string() } else { format!("{} / {}", ms(percentile(&s.latencies_us, 0.5)), ms(percentile(&s.latencies_us, 0.99))) };
        let concurrent = o.scenario.hold.is_none();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} ({:.3} %) | {:.1} | {} | {} | {} / {} | {} | {} | {} |",
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

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**missed**" }
}

fn targets_table(out: &mut String, outcomes: &[Outcome]) {
    let counted: Vec<&Outcome> = outcomes.iter().filter(|o| !o.scenario.profile).collect();
    out.push_str("| target (2 cores) | measured | verdict |\n|---|---|---|\n");
    for (media, calls_target, cpu_target, label) in [(Media::Passthrough, 500, 0.15, "passthrough"), (Media::Transcoded, 200, 0.42, "Opus ↔ PCMU transcoded")] {
        let held: Vec<String> = [Origin::Browser, Origin::Sip]
            .iter()
            .map(|&origin| match best(outcomes, media, Some(origin)) {
                Some(o) => format!("{} ({})", o.scenario.calls, origin_name(origin)),
                None => format!("none clean ({})", origin_name(origin)),
            })
            .collect();
        let least_held = [Origin::Browser, Origin::Sip].iter().map(|&o| best(outcomes, media, Some(o)).map_or(0, |o| o.scenario.calls)).min().unwrap_or(0);
        let _ = writeln!(out, "| ≥ {calls_target} concurrent {label} calls with zero loss | {} | {} |", held.join(", "), verdict(least_held >= calls_target));
        let cpu: Vec<(f64, String)> = [Origin::Browser, Origin::Sip]
            .iter()
            .filter_map(|&origin| best(outcomes, media, Some(origin)).map(|o| (o.cpu_per_call(), format!("{:.3} % at {} calls ({})", o.cpu_per_call(), o.scenario.calls, origin_name(origin)))))
            .collect();
        let worst = cpu.iter().map(|(c, _)| *c).fold(0.0, f64::max);
        let _ = writeln!(out, "| < {cpu_target} % of a core per {label} call | {} | {} |", cpu.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>().join(", "), verdict(!cpu.is_empty() && worst < cpu_target));
    }
    let concurrent: Vec<&Outcome> = counted.iter().copied().filter(|o| o.scenario.hold.is_none()).collect();
    let setups = |origin: Origin| -> Vec<u32> {
        let mut all: Vec<u32> = counted.iter().filter(|o| o.scenario.origin == origin).flat_map(|o| o.setup_us.iter().copied()).collect();
        all.sort_unstable();
        all
    };
    for (origin, what) in [(Origin::Sip, "SIP INVITE → browser `incoming`"), (Origin::Browser, "browser `call` → `answered`, less the trunk's think time")] {
        let all = setups(origin);
        let p99 = percentile(&all, 0.99);
        let _ = writeln!(out, "| setup p99 < 5 ms: {what} | p50 {} ms, p99 {} ms over {} setups | {} |", ms(percentile(&all, 0.5)), ms(p99), all.len(), verdict(!all.is_empty() && p99 < 5_000));
    }
    for (label, pick) in [("browser → SIP", 0usize), ("SIP → browser", 1usize)] {
        let mut all: Vec<u32> = concurrent
            .iter()
            .filter(|o| o.scenario.media == Media::Passthrough)
            .flat_map(|o| if pick == 0 { o.to_sip.latencies_us.iter() } else { o.to_browser.latencies_us.iter() }.copied())
            .collect();
        all.sort_unstable();
        let p99 = percentile(&all, 0.99);
        let _ = writeln!(out, "| added media latency p99 < 1 ms, passthrough {label} | p50 {} ms, p99 {} ms over {} packets | {} |", ms(percentile(&all, 0.5)), ms(p99), all.len(), verdict(!all.is_empty() && p99 < 1_000));
    }
    let rss: Vec<(f64, String)> = concurrent.iter().filter(|o| o.clean()).map(|o| (o.rss_per_call_kib(), format!("{:.0} KiB ({})", o.rss_per_call_kib(), o.scenario.name()))).collect();
    let worst_rss = rss.iter().map(|(r, _)| *r).fold(0.0, f64::max);
    let _ = writeln!(out, "| < 1 MB RSS per call | {} | {} |", rss.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>().join("; "), verdict(!rss.is_empty() && worst_rss < 1_024.0));
    let rates: Vec<&Outcome> = counted.iter().copied().filter(|o| o.scenario.hold.is_some() && o.failed == 0).collect();
    let fastest = rates.iter().map(|o| o.setup_rate).fold(0.0, f64::max);
    let text = rates.iter().map(|o| format!("{:.0}/s ({})", o.setup_rate, origin_name(o.scenario.origin))).collect::<Vec<_>>().join(", ");
    let _ = writeln!(out, "| ≥ 50 call setups per second without a failure | {} | {} |", if text.is_empty() { "no clean run".into() } else { text }, verdict(fastest >= 50.0 - 0.5));
}

fn origin_name(origin: Origin) -> &'static str {
    match origin {
        Origin::Browser => "from browsers",
        Origin::Sip => "from SIP",
    }
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
                out.push_str("\nHottest functions (self time):\n\n| function | share |\n|---|---|\n");
                for (symbol, percent) in &summary.symbols {
                    let _ = writeln!(out, "| `{}` | {percent:.1} % |", symbol.replace('|', "\\|"));
                }
            }
        }
    }
}

pub fn write(path: &Path, outcomes: &[Outcome], full: bool, took: Duration) -> std::io::Result<()> {
    let mut out = String::new();
    let _ = writeln!(out, "# sipbridge whole-gateway load ({} run)\n", if full { "full: ramped until loss" } else { "quick" });
    let _ = writeln!(
        out,
        "Release gateway on loopback with its embedded SQLite call records, {} CPU cores, {:.0} s in all. Browsers are Rust WebRTC clients (webrtc-rs: ICE, DTLS-SRTP) \
         speaking the signaling protocol; the SIP side is a trunk in the same process with an RTP generator. Every call sends 50 packets/s each way. \
         The load tool shares the cores with the gateway, so concurrency is a floor. Latency runs from the sender's clock read before sending to the receiver's \
         read on arrival, so it includes both ends' own stacks: an upper bound on what the gateway adds.\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        took.as_secs_f64()
    );
    out.push_str("## Targets\n\n");
    targets_table(&mut out, outcomes);
    out.push_str("\n## Scenarios\n\n");
    scenario_table(&mut out, outcomes);
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
