//! Issue 13's acceptance figures, each against its target, as ratios to the floors measured in the
//! same run (floor.rs).

use super::meter::percentile;
use super::{Floors, Media, Origin, Outcome};
use super::floor::{CodecFloor, RelayFloor};
use std::fmt::Write as _;

/// The sizes the targets are stated at.
pub const RELAYED_CALLS: usize = 200;
pub const TRANSCODED_CALLS: usize = 100;
pub const SETUPS_PER_SECOND: f64 = 50.0;
/// Relayed call CPU, as a multiple of the bare relay's per call.
pub const RELAY_FLOOR_MULTIPLE: f64 = 3.0;
/// Transcoded call CPU, as a multiple of raw libopus, plus the relay floor.
pub const CODEC_MULTIPLE: f64 = 1.3;
pub const RSS_KIB_PER_RELAYED_CALL: f64 = 256.0;
pub const LATENCY_P99_US: u32 = 500;
pub const SETUP_P99_US: u32 = 3_000;

fn verdict(met: bool) -> &'static str {
    if met { "PASS" } else { "**FAIL**" }
}

fn ms(us: u32) -> String {
    format!("{:.2}", us as f64 / 1_000.0)
}

fn origin_name(origin: Origin) -> &'static str {
    match origin {
        Origin::Browser => "from browsers",
        Origin::Sip => "from SIP",
        Origin::WebSocketSip => "from SIP over WebSocket",
    }
}

/// The counted concurrent run of one kind at the target size, or the largest one run.
fn at_size(outcomes: &[Outcome], media: Media, origin: Origin, size: usize) -> Option<&Outcome> {
    let runs = || outcomes.iter().filter(|o| !o.scenario.profile && o.scenario.hold.is_none() && o.scenario.media == media && o.scenario.origin == origin);
    runs().find(|o| o.scenario.calls == size).or_else(|| runs().max_by_key(|o| o.scenario.calls))
}

/// µs of gateway CPU per packet: every call carries 50 packets/s each way.
fn us_per_packet(o: &Outcome) -> f64 {
    o.gateway_cpu / 100.0 * 1e6 / (o.scenario.calls.max(1) as f64 * 100.0)
}

pub fn floors_table(out: &mut String, floors: &Floors) {
    out.push_str("| floor (same run, same machine) | measured |\n|---|---|\n");
    for relay in &floors.relay {
        let label = |f: &RelayFloor| {
            let (lowest, highest) = f.per_packet_range;
            format!("bare relay: 1 thread, epoll (mio), 1 recv + 1 send per packet, 2 x {} streams of 172-byte packets at 50/s, loopback{}; the mean of {} measurements before and after the scenarios of this size ({lowest:.2}-{highest:.2} µs per packet)", f.calls, f.placement.describe(), f.measurements)
        };
        relay_floor_row(out, label, "bare relay", relay, true);
    }
    for relay in &floors.relay_unpinned {
        let label = |f: &RelayFloor| format!("for comparison, not a target's floor: the same bare relay unpinned, 2 x {} streams (the scheduler may run the relay beside its senders and wake them on its own core)", f.calls);
        relay_floor_row(out, label, "bare relay, unpinned", relay, false);
    }
    for codec in &floors.codec {
        let _ = match codec {
            Ok(c) => writeln!(
                out,
                "| raw libopus, complexity 5, 8 kHz: one encode + one decode per 20 ms (the stand-in browsers' narrowband packets, as the gateway asks of a browser bridged to G.711), on {} encoder and {} decoder states in turn (one of each per call); the mean of {} passes timed before and during the scenarios{} | {:.1} + {:.1} µs per frame = **{:.3} % per call** (passes {:.1}-{:.1} µs, median {:.1}) |",
                c.states, c.states, c.passes, c.timed_on(), c.encode_us, c.decode_us, c.per_call(), c.lowest_us, c.highest_us, c.median_us
            ),
            Err(e) => writeln!(out, "| raw libopus | not measured: {e} |"),
        };
    }
    for paced in floors.codec_paced.iter().filter_map(|p| p.as_ref().ok()) {
        let tight = floors.codec_at(paced.states).map_or(String::new(), |t| format!(" ({:.2}x the passes back to back)", paced.per_call() / t.per_call().max(1e-9)));
        let _ = writeln!(
            out,
            "| for comparison, not a target's floor: raw libopus on the same {} states paced as the calls send (each 20 ms, one frame per call back to back, then idle to the next tick, as the gateway's worker codes); {} passes before the scenarios | {:.1} + {:.1} µs per frame = {:.3} % per call{tight} |",
            paced.states,
            paced.passes,
            paced.encode_us,
            paced.decode_us,
            paced.per_call()
        );
    }
    let _ = match &floors.codec_one_state {
        Ok(c) => writeln!(out, "| for comparison, not a target's floor: raw libopus on one encoder and one decoder state kept hot in the cache | {:.1} + {:.1} µs per frame = {:.3} % per call |", c.encode_us, c.decode_us, c.per_call()),
        Err(e) => writeln!(out, "| raw libopus on one state | not measured: {e} |"),
    };
    shared_port_rows(out, floors);
    if let Some(fed) = &floors.fed_relay {
        let label = |f: &RelayFloor| format!("for comparison, not a target's floor: the same bare relay fed by the scenarios' own sender (the load tool's media loop, the trunk's PCMU probes both ways), 2 x {} streams", f.calls);
        relay_floor_row(out, label, "bare relay fed by the scenarios' sender", fed, false);
    }
}

/// One bare relay floor's row: `label` names it, `short` when it could not be measured; a
/// target's floor has its per-call figure in bold.
fn relay_floor_row(out: &mut String, label: impl Fn(&RelayFloor) -> String, short: &str, relay: &Result<RelayFloor, String>, target: bool) {
    let _ = match relay {
        Ok(f) => {
            let per_call = if target { format!("**{:.4} % per call**", f.per_call()) } else { format!("{:.4} % per call", f.per_call()) };
            writeln!(
                out,
                "| {} | {:.2} % of a core = {per_call}, {:.2} µs per packet ({} packets over {:.1} s, {} lost; host steal {:.1} %) |",
                label(f),
                f.cpu_percent,
                f.us_per_packet(),
                f.relayed,
                f.seconds,
                f.lost,
                f.steal_percent
            )
        }
        Err(e) => writeln!(out, "| {short} | not measured: {e} |"),
    };
}

/// Batched I/O, evaluated: the shared WebRTC port relayed per datagram and in batches.
fn shared_port_rows(out: &mut String, floors: &Floors) {
    let measured: Vec<_> = floors.shared_port.iter().filter_map(|f| f.as_ref().ok()).collect();
    for f in &measured {
        let how = if f.batched { "recvmmsg + sendmmsg, 32 a call" } else { "1 recv + 1 send per packet" };
        let _ = writeln!(
            out,
            "| shared-port relay (batched I/O evaluated): browsers' 2 x {} streams through one socket, {how} | {:.2} % of a core, {:.2} µs per packet ({} packets, {} lost) |",
            f.calls, f.cpu_percent, f.us_per_packet(), f.relayed, f.lost
        );
    }
    if let [single, batch] = measured.as_slice() {
        let _ = writeln!(out, "| batched / per-packet, shared port | **{:.2}x** the CPU per packet |", batch.us_per_packet() / single.us_per_packet().max(1e-9));
    }
    for e in floors.shared_port.iter().filter_map(|f| f.as_ref().err()) {
        let _ = writeln!(out, "| shared-port relay | not measured: {e} |");
    }
}

fn relay_rows(out: &mut String, outcomes: &[Outcome], floors: &Floors) {
    for origin in [Origin::Browser, Origin::Sip] {
        let label = format!("relayed WebRTC (DTLS-SRTP) ↔ RTP PCMU at {RELAYED_CALLS} calls ≤ {RELAY_FLOOR_MULTIPLE}x the floor per call, {}", origin_name(origin));
        let row = at_size(outcomes, Media::Passthrough, origin, RELAYED_CALLS).and_then(|o| floors.relay_at(o.scenario.calls).map(|f| (o, f)));
        let _ = match row {
            Some((o, f)) => {
                let multiple = o.cpu_per_call() / f.per_call().max(1e-9);
                // For comparison only: the verdict stays on the floor.
                let unpinned = match floors.relay_unpinned_at(o.scenario.calls) {
                    Some(u) => format!("; {:.2}x the unpinned relay ({:.2} µs per packet)", o.cpu_per_call() / u.per_call().max(1e-9), u.us_per_packet()),
                    None => String::new(),
                };
                let fed = match &floors.fed_relay {
                    Some(Ok(fed)) if fed.calls == o.scenario.calls => format!("; {:.1}x the same relay fed by the scenarios' sender ({:.2} µs per packet)", o.cpu_per_call() / fed.per_call().max(1e-9), fed.us_per_packet()),
                    _ => String::new(),
                };
                writeln!(
                    out,
                    "| {label} | {:.4} % per call at {} calls = **{multiple:.2}x** the floor ({:.4} %); {:.2} µs per packet against {:.2}; host steal {:.1} % (floor's {:.1} %){unpinned}{fed} | {} |",
                    o.cpu_per_call(),
                    o.scenario.calls,
                    f.per_call(),
                    us_per_packet(o),
                    f.us_per_packet(),
                    o.steal_percent,
                    f.steal_percent,
                    verdict(o.scenario.calls >= RELAYED_CALLS && multiple <= RELAY_FLOOR_MULTIPLE)
                )
            }
            None => writeln!(out, "| {label} | not measured | {} |", verdict(false)),
        };
    }
}

fn transcode_rows(out: &mut String, outcomes: &[Outcome], floors: &Floors) {
    for origin in [Origin::Browser, Origin::Sip] {
        let label = format!("transcoded Opus ↔ PCMU at {TRANSCODED_CALLS} calls ≤ {CODEC_MULTIPLE}x raw libopus + the relay floor per call, {}", origin_name(origin));
        // The floor timed inside the scenario's window, else the run's.
        let row = at_size(outcomes, Media::Transcoded, origin, TRANSCODED_CALLS).and_then(|o| Some((o, floors.relay_at(o.scenario.calls)?, o.codec_floor.as_ref().or(floors.codec_at(o.scenario.calls))?)));
        let _ = match row {
            Some((o, relay, codec)) => {
                // The gateway's cost less the relay floor, as a multiple of a libopus figure.
                let times = |libopus: &CodecFloor| (o.cpu_per_call() - relay.per_call()) / libopus.per_call().max(1e-9);
                let run_wide = match (floors.codec_at(o.scenario.calls), o.interleaved) {
                    (Some(all), Some(cut)) if o.codec_floor.is_some() => format!(
                        " timed in {} pauses of its window, its CPU read only between them ({} passes; {:.1} s paused; {:.2}x the mean of all the run's passes, {:.4} %)",
                        cut.stretches + 1,
                        codec.passes,
                        cut.paused.as_secs_f64(),
                        times(all),
                        all.per_call()
                    ),
                    _ => String::new(),
                };
                let budget = CODEC_MULTIPLE * codec.per_call() + relay.per_call();
                let multiple = times(codec);
                let with_unpinned_relay = match floors.relay_unpinned_at(o.scenario.calls) {
                    Some(u) => format!("; against the unpinned relay floor ({:.4} %): {:.2}x raw libopus", u.per_call(), (o.cpu_per_call() - u.per_call()) / codec.per_call().max(1e-9)),
                    None => String::new(),
                };
                let against_one_state = match &floors.codec_one_state {
                    Ok(hot) => format!(" ({:.2}x raw libopus on one hot state)", times(hot)),
                    Err(_) => String::new(),
                };
                let against_paced = floors.codec_paced_at(o.scenario.calls).map_or(String::new(), |p| format!("; {:.2}x raw libopus paced as the calls send", times(p)));
                writeln!(
                    out,
                    "| {label} | {:.4} % per call at {} calls against {budget:.4} % ({CODEC_MULTIPLE} x {:.4} + {:.4}): less the floor, **{multiple:.2}x** raw libopus on the calls' states{run_wide}{against_one_state}{against_paced}{with_unpinned_relay}; host steal {:.1} % | {} |",
                    o.cpu_per_call(),
                    o.scenario.calls,
                    codec.per_call(),
                    relay.per_call(),
                    o.steal_percent,
                    verdict(o.scenario.calls >= TRANSCODED_CALLS && o.cpu_per_call() <= budget)
                )
            }
            None => writeln!(out, "| {label} | not measured | {} |", verdict(false)),
        };
    }
}

fn clean_rows(out: &mut String, outcomes: &[Outcome]) {
    for (media, size, what) in [(Media::Passthrough, RELAYED_CALLS, "relayed"), (Media::Transcoded, TRANSCODED_CALLS, "transcoded")] {
        for origin in [Origin::Browser, Origin::Sip] {
            let label = format!("zero lost packets and failed calls at {size} {what} calls, {}", origin_name(origin));
            let _ = match at_size(outcomes, media, origin, size) {
                Some(o) => writeln!(
                    out,
                    "| {label} | {} calls: {} failed, {} of {} packets lost | {} |",
                    o.scenario.calls,
                    o.failed,
                    o.lost(),
                    o.to_browser.received + o.to_browser.lost + o.to_sip.received + o.to_sip.lost,
                    verdict(o.scenario.calls >= size && o.clean())
                ),
                None => writeln!(out, "| {label} | not measured | {} |", verdict(false)),
            };
        }
    }
}

/// The runs' host steal, as "a / b %".
fn steal_of(runs: &[&Outcome]) -> String {
    format!("{} %", runs.iter().map(|o| format!("{:.1}", o.steal_percent)).collect::<Vec<_>>().join(" / "))
}

fn rss_and_latency_rows(out: &mut String, outcomes: &[Outcome], floors: &Floors) {
    let relayed: Vec<&Outcome> = [Origin::Browser, Origin::Sip].iter().filter_map(|&origin| at_size(outcomes, Media::Passthrough, origin, RELAYED_CALLS)).collect();
    let worst_rss = relayed.iter().map(|o| o.rss_per_call_kib()).fold(f64::NAN, f64::max);
    let text = relayed.iter().map(|o| format!("{:.0} KiB at {} calls ({})", o.rss_per_call_kib(), o.scenario.calls, origin_name(o.scenario.origin))).collect::<Vec<_>>().join(", ");
    let _ = writeln!(out, "| ≤ {RSS_KIB_PER_RELAYED_CALL:.0} KiB RSS per relayed call | {text} | {} |", verdict(relayed.iter().all(|o| o.scenario.calls >= RELAYED_CALLS) && worst_rss <= RSS_KIB_PER_RELAYED_CALL));
    // The same path through a bare relay: the part of the figure that is the host's (the sender's
    // stack, loopback, waking a thread on another core), not the gateway's.
    let through_bare_relay = match &floors.fed_relay {
        Some(Ok(RelayFloor { latency_us: Some((p50, p99)), calls, .. })) => format!("; through the bare relay fed by the same sender at {calls} calls (before the scenarios, both ways): p50 {} ms, p99 {} ms", ms(*p50), ms(*p99)),
        _ => String::new(),
    };
    for (label, to_sip) in [("browser → SIP", true), ("SIP → browser", false)] {
        let mut all: Vec<u32> = relayed.iter().flat_map(|o| if to_sip { &o.to_sip.latencies_us } else { &o.to_browser.latencies_us }.iter().copied()).collect();
        all.sort_unstable();
        let p99 = percentile(&all, 0.99);
        // Each run's own tail beside its steal: the tail follows the hypervisor, not the load.
        let per_run = relayed
            .iter()
            .map(|o| {
                let stream = if to_sip { &o.to_sip } else { &o.to_browser };
                format!("{} p99 {} ms at {:.1} % steal", origin_name(o.scenario.origin), ms(percentile(&stream.latencies_us, 0.99)), o.steal_percent)
            })
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            out,
            "| added latency p99 < {} ms in passthrough at {RELAYED_CALLS} calls, {label} | p50 {} ms, p99 {} ms over {} packets; per run: {per_run}{through_bare_relay} | {} |",
            ms(LATENCY_P99_US),
            ms(percentile(&all, 0.5)),
            ms(p99),
            all.len(),
            verdict(!all.is_empty() && relayed.iter().all(|o| o.scenario.calls >= RELAYED_CALLS) && p99 < LATENCY_P99_US)
        );
    }
}

fn setup_rows(out: &mut String, outcomes: &[Outcome]) {
    for (origin, what) in [(Origin::Sip, "SIP INVITE → browser `incoming`"), (Origin::Browser, "browser `call` → `answered`, less the trunk's think time")] {
        let runs: Vec<&Outcome> = outcomes.iter().filter(|o| o.scenario.hold.is_some() && o.scenario.origin == origin && o.scenario.arrivals_per_second >= SETUPS_PER_SECOND - 0.5).collect();
        let mut all: Vec<u32> = runs.iter().flat_map(|o| o.setup_us.iter().copied()).collect();
        all.sort_unstable();
        let failed: usize = runs.iter().map(|o| o.failed).sum();
        let p99 = percentile(&all, 0.99);
        let _ = writeln!(
            out,
            "| setup p99 < {} ms at {SETUPS_PER_SECOND:.0} setups/s: {what} | p50 {} ms, p99 {} ms over {} setups, {failed} failed; host steal {} | {} |",
            ms(SETUP_P99_US),
            ms(percentile(&all, 0.5)),
            ms(p99),
            all.len(),
            steal_of(&runs),
            verdict(!all.is_empty() && failed == 0 && p99 < SETUP_P99_US)
        );
    }
}

/// Every acceptance figure of issue 13 with its target and PASS/FAIL.
pub fn targets_table(out: &mut String, outcomes: &[Outcome], floors: &Floors) {
    out.push_str("| target (2 cores, load tool in the same run) | measured | verdict |\n|---|---|---|\n");
    relay_rows(out, outcomes, floors);
    transcode_rows(out, outcomes, floors);
    clean_rows(out, outcomes);
    rss_and_latency_rows(out, outcomes, floors);
    setup_rows(out, outcomes);
}
