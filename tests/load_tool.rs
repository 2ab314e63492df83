//! The whole-gateway load tool (benches/gateway_load, `make bench`) in miniature: every scenario
//! runs against a real gateway with real WebRTC and SIP on both sides, loses nothing at a size
//! any machine holds, and the report states every target, with a profile of the gateway.

#[path = "../benches/gateway_load/main.rs"]
#[allow(dead_code)]
mod gateway_load;

use gateway_load::{report, Media, Plan};
use std::time::Duration;

#[test]
fn every_scenario_runs_clean_and_the_report_covers_every_target() {
    let plan = Plan {
        ramp: false,
        passthrough: vec![6],
        transcoded: vec![4],
        setups_per_second: 10.0,
        setup_seconds: 2,
        settle: Duration::from_secs(2),
        measure: Duration::from_secs(3),
        profile: true,
    };
    let outcomes = gateway_load::run_plan(&plan);
    assert_eq!(outcomes.len(), 8, "passthrough and transcoded both ways, each once more under perf, and two setup rates");
    for outcome in &outcomes {
        let name = outcome.scenario.name();
        assert_eq!((outcome.answered, outcome.failed), (outcome.scenario.calls, 0), "{name}: {:?}", outcome.failures);
        assert_eq!(outcome.setup_us.len(), outcome.scenario.calls, "{name}: a setup time per call");
        assert!(outcome.setup_us.iter().all(|&us| us > 0 && us < 2_000_000), "{name}: setup times {:?}", outcome.setup_us);
        if outcome.scenario.hold.is_some() {
            continue;
        }
        // 50 packets/s each way for the 3 s window, per call, give or take the window's edges.
        let expected = outcome.scenario.calls as u64 * 150;
        for (direction, tally) in [("to browser", &outcome.to_browser), ("to SIP", &outcome.to_sip)] {
            // Nothing is lost: the one-way defect of the old media plane (a browser-placed call's
            // browser -> SIP audio now and then never arrived) is gone with the workers.
            assert_eq!(tally.lost, 0, "{name} {direction}: {tally:?}");
            assert!(tally.received + 10 >= expected && tally.received <= expected + 10, "{name} {direction}: {} received, about {expected} expected", tally.received);
            let probed = outcome.scenario.media == Media::Passthrough;
            assert_eq!(tally.latencies_us.len() as u64, if probed { tally.received } else { 0 }, "{name} {direction}: a latency sample per probe");
        }
        assert!(outcome.gateway_cpu > 0.0 && outcome.loaded_rss_kib > outcome.idle_rss_kib, "{name}: /proc readings {} % {} KiB", outcome.gateway_cpu, outcome.loaded_rss_kib);
    }
    let profiled: Vec<_> = outcomes.iter().filter_map(|o| o.profile.as_ref()).collect();
    assert_eq!(profiled.len(), 2, "one profiled run each for passthrough and transcoding");
    for profile in profiled {
        let summary = profile.as_ref().expect("perf profile");
        assert!(summary.samples > 0 && !summary.areas.is_empty() && !summary.symbols.is_empty(), "{summary:?}");
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bench/REPORT.md");
    report::write(&path, &outcomes, false, Duration::from_secs(1)).expect("report");
    let text = std::fs::read_to_string(&path).expect("read report");
    for row in [
        "≥ 500 concurrent passthrough calls with zero loss",
        "< 0.15 % of a core per passthrough call",
        "≥ 200 concurrent Opus ↔ PCMU transcoded calls with zero loss",
        "< 0.42 % of a core per Opus ↔ PCMU transcoded call",
        "setup p99 < 5 ms: SIP INVITE → browser `incoming`",
        "setup p99 < 5 ms: browser `call` → `answered`",
        "added media latency p99 < 1 ms, passthrough browser → SIP",
        "added media latency p99 < 1 ms, passthrough SIP → browser",
        "< 1 MB RSS per call",
        "≥ 50 call setups per second",
        "## Where the gateway's time goes",
    ] {
        assert!(text.contains(row), "report lacks {row:?}:\n{text}");
    }
}
