//! The whole-gateway load tool (benches/gateway_load, `make bench`) in miniature: every scenario
//! runs against a real gateway with real WebRTC and SIP on both sides, loses nothing at a size
//! any machine holds, and the report states every target, with a profile of the gateway. The
//! JsSIP-style scenario (the tool's own SIP-over-WebSocket client calling the trunk) runs in it too.

#[path = "../benches/gateway_load/main.rs"]
#[allow(dead_code)]
mod gateway_load;

use gateway_load::{report, Media, Origin, Plan};
use std::time::Duration;

#[test]
fn every_scenario_runs_clean_and_the_report_covers_every_target() {
    let plan = Plan {
        ramp: false,
        passthrough: vec![6],
        transcoded: vec![4],
        websocket: vec![3],
        setups_per_second: 10.0,
        setup_seconds: 2,
        settle: Duration::from_secs(2),
        measure: Duration::from_secs(3),
        floor_measure: Duration::from_secs(2),
        profile: true,
        interleave: true,
    };
    let run = gateway_load::run_plan(&plan);
    // The floors come first: the bare relay at each scenario's size loses nothing, and raw libopus
    // costs something. The relay is measured again after each of the two scenarios (from browsers,
    // from SIP) at its size, and its floor is the mean of the three.
    assert_eq!(run.floors.relay.len(), 2, "a bare relay floor per call count (6 and 4)");
    for relay in &run.floors.relay {
        let relay = relay.as_ref().expect("bare relay floor");
        assert!(relay.relayed > 0 && relay.cpu_percent > 0.0 && relay.lost == 0, "{relay:?}");
        let (lowest, highest) = relay.per_packet_range;
        assert!(relay.measurements == 3 && lowest <= relay.us_per_packet() && relay.us_per_packet() <= highest, "{relay:?}");
    }
    // The floor is placed as the load places the gateway's worker and itself; the same relay
    // unpinned is measured at each size too, for comparison.
    let placed = gateway_load::floor::Placement::as_the_load();
    // Each floor records the CPUs its threads took; on this machine they can take the ones asked
    // for, and one that does not exist is never recorded as taken.
    assert!(placed.is_pinned() && run.floors.relay.iter().all(|r| r.as_ref().is_ok_and(|r| r.placement == placed)), "{placed:?}: {:?}", run.floors.relay);
    assert!(run.floors.shared_port.iter().all(|f| f.as_ref().is_ok_and(|f| f.placement == placed)), "{placed:?}");
    let far_off = gateway_load::floor::Placement::pin(Some(4_096));
    assert_eq!(far_off, None, "a CPU the machine lacks is not recorded as taken");
    assert_eq!(run.floors.relay_unpinned.len(), 2, "an unpinned relay per call count");
    for relay in &run.floors.relay_unpinned {
        let relay = relay.as_ref().expect("unpinned bare relay");
        assert!(relay.placement == Default::default() && relay.relayed > 0 && relay.lost == 0, "{relay:?}");
    }
    // The same relay fed by the scenarios' own sender, for comparison, at the largest relayed size.
    let fed = run.floors.fed_relay.as_ref().expect("a fed relay at 6 calls").as_ref().expect("fed relay floor");
    assert!(fed.calls == 6 && fed.relayed > 0 && fed.cpu_percent > 0.0 && fed.lost == 0, "{fed:?}");
    // Its probes give the latency the host imposes on any relay, the gateway's reference.
    let (p50, p99) = fed.latency_us.expect("the fed relay's latency");
    assert!(0 < p50 && p50 <= p99, "{fed:?}");
    // Raw libopus on one state per call at the transcoded size, and on one hot state, timed where
    // the gateway's first worker runs: 5 passes each before the scenarios; then, in each of the two
    // transcoded scenarios, 2 passes in each of the pauses before and after its one 2.4 s stretch
    // (its 3 s window less the last pause's 0.6 s) on the calls' states, and 8 after it on the hot
    // state.
    assert_eq!(run.floors.codec.len(), plan.transcoded.len(), "a libopus floor per transcoded size");
    let hot = run.floors.codec_one_state.as_ref().expect("libopus floor on one state");
    for (codec, passes) in run.floors.codec.iter().map(|c| (c.as_ref().expect("libopus floor"), 5 + 2 * 4)).chain([(hot, 5 + 2 * 8)]) {
        let mean = codec.encode_us + codec.decode_us;
        assert!(codec.encode_us > 0.0 && codec.decode_us > 0.0 && codec.passes == passes, "{codec:?}");
        assert!(codec.lowest_us <= mean && mean <= codec.highest_us && codec.cpu == placed.relay, "{codec:?}");
    }
    assert!(run.floors.codec.iter().zip(&plan.transcoded).all(|(c, &calls)| c.as_ref().is_ok_and(|c| c.states == calls)) && hot.states == 1);
    // For comparison, the same states paced as the calls send (a frame per call each 20 ms, idle
    // between): 3 passes of 10 ticks before the scenarios, on the same CPU.
    assert_eq!(run.floors.codec_paced.len(), plan.transcoded.len(), "a paced libopus figure per transcoded size");
    for paced in &run.floors.codec_paced {
        let paced = paced.as_ref().expect("paced libopus");
        assert!(paced.passes == 3 && paced.states == 4 && paced.encode_us > 0.0 && paced.decode_us > 0.0 && paced.cpu == placed.relay, "{paced:?}");
    }
    let outcomes = &run.outcomes;
    assert_eq!(outcomes.len(), 9, "passthrough and transcoded both ways, each once more under perf, JsSIP-style calls, and two setup rates");
    for outcome in outcomes {
        let name = outcome.scenario.name();
        assert_eq!((outcome.answered, outcome.failed), (outcome.scenario.calls, 0), "{name}: {:?}", outcome.failures);
        assert_eq!(outcome.setup_us.len(), outcome.scenario.calls, "{name}: a setup time per call");
        assert!(outcome.setup_us.iter().all(|&us| us > 0 && us < 2_000_000), "{name}: setup times {:?}", outcome.setup_us);
        if outcome.scenario.hold.is_some() {
            continue;
        }
        // 50 packets/s each way for the 3 s window, per call, give or take the window's edges,
        // less what the senders skipped while paused for libopus (a transcoded scenario's two
        // pauses, each edge a packet either way per stream).
        let paused = outcome.interleaved.map_or(Duration::ZERO, |cut| cut.paused);
        let calls = outcome.scenario.calls as u64;
        let expected = (calls as f64 * 50.0 * (3.0 - paused.as_secs_f64())) as u64;
        let slack = 10 + if paused.is_zero() { 0 } else { 4 * calls };
        for (direction, tally) in [("to browser", &outcome.to_browser), ("to SIP", &outcome.to_sip)] {
            // Nothing is lost: the one-way defect of the old media plane (a browser-placed call's
            // browser -> SIP audio now and then never arrived) is gone with the workers, and a
            // pause of the senders is no loss.
            assert_eq!(tally.lost, 0, "{name} {direction}: {tally:?}");
            assert!(tally.received + slack >= expected && tally.received <= expected + slack, "{name} {direction}: {} received, about {expected} expected", tally.received);
            let probed = outcome.scenario.media == Media::Passthrough;
            assert_eq!(tally.latencies_us.len() as u64, if probed { tally.received } else { 0 }, "{name} {direction}: a latency sample per probe");
        }
        assert!(outcome.gateway_cpu > 0.0 && outcome.loaded_rss_kib > outcome.idle_rss_kib, "{name}: /proc readings {} % {} KiB", outcome.gateway_cpu, outcome.loaded_rss_kib);
        // A transcoded scenario is held to the libopus passes timed in its window's pauses, with
        // its CPU read over the one stretch between them (not the profiled run, which counts for
        // nothing).
        let interleaved = outcome.scenario.media == Media::Transcoded && !outcome.scenario.profile;
        match (&outcome.codec_floor, outcome.interleaved) {
            (Some(inside), Some(cut)) => {
                assert!(interleaved && inside.passes == 4 && inside.states == outcome.scenario.calls && inside.cpu == placed.relay, "{name}: {inside:?}");
                // Two pauses of a drain (80 ms) and two passes each.
                assert!(cut.stretches == 1 && cut.paused >= Duration::from_millis(160) && cut.paused < Duration::from_secs(2), "{name}: {cut:?}");
            }
            (None, None) => assert!(!interleaved, "{name}: no libopus floor inside its window"),
            other => panic!("{name}: a floor without its pauses or pauses without a floor: {other:?}"),
        }
    }
    // The JsSIP-style calls: registered with digest, set up through the INVITE's 407 and routed to
    // the trunk through the clients' granted profile, media both ways over one WebRTC and one RTP
    // leg with every probe's payload untouched (a latency per probe) and nothing lost (the loop
    // above), and CPU and RSS per call measured.
    let websocket = outcomes.iter().find(|o| o.scenario.origin == Origin::WebSocketSip).expect("the JsSIP-style scenario ran");
    assert_eq!((websocket.answered, websocket.setup_us.len()), (3, 3), "{:?}", websocket.failures);
    assert!(websocket.to_browser.received > 0 && websocket.to_sip.received > 0 && websocket.lost() == 0, "{:?} {:?}", websocket.to_browser, websocket.to_sip);
    assert!(websocket.cpu_per_call() > 0.0 && websocket.rss_per_call_kib() > 0.0, "{} % {} KiB", websocket.cpu_per_call(), websocket.rss_per_call_kib());
    let profiled: Vec<_> = outcomes.iter().filter_map(|o| o.profile.as_ref()).collect();
    assert_eq!(profiled.len(), 2, "one profiled run each for passthrough and transcoding");
    let summaries: Vec<_> = profiled.iter().map(|profile| profile.as_ref().expect("perf profile")).collect();
    for summary in &summaries {
        assert!(summary.samples > 0 && !summary.areas.is_empty() && !summary.symbols.is_empty(), "{summary:?}");
        // Every sample is in some binary: the gateway's own, the kernel, the libraries.
        let binaries: f64 = summary.binaries.iter().map(|(_, percent)| percent).sum();
        assert!(binaries > 95.0, "{summary:?}");
    }
    // The gateway's own binary shows in the profiles. A miniature transcoded run has about 30
    // samples, nearly all in libopus and the kernel, so one profile alone may hold none of ours.
    assert!(summaries.iter().any(|s| s.binaries.iter().any(|(binary, _)| binary.contains("sipbridge"))), "{summaries:?}");

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bench/REPORT.md");
    report::write(&path, &run, false, Duration::from_secs(1)).expect("report");
    let text = std::fs::read_to_string(&path).expect("read report");
    for row in [
        "## Floors",
        "the load tool's media loop is pinned to CPU ",
        "(one media worker pinned to each)",
        "bare relay: 1 thread, epoll (mio), 1 recv + 1 send per packet, 2 x 6 streams",
        "raw libopus, complexity 5, 8 kHz: one encode + one decode per 20 ms (the stand-in browsers' narrowband packets, as the gateway asks of a browser bridged to G.711), on 4 encoder and 4 decoder states in turn (one of each per call); the mean of 13 passes timed before and during the scenarios, timed on CPU 0, where the gateway's first media worker runs",
        "for comparison, not a target's floor: raw libopus on one encoder and one decoder state",
        "for comparison, not a target's floor: raw libopus on the same 4 states paced as the calls send (each 20 ms, one frame per call back to back, then idle to the next tick, as the gateway's worker codes); 3 passes before the scenarios",
        "x raw libopus paced as the calls send",
        "x the passes back to back)",
        "for comparison, not a target's floor: the same bare relay fed by the scenarios' own sender",
        "for comparison, not a target's floor: the same bare relay unpinned, 2 x 6 streams",
        "x the unpinned relay (",
        "; against the unpinned relay floor (",
        "are placed the same way, the relay thread on CPU ",
        "the same relay fed by the scenarios' sender (",
        "relayed WebRTC (DTLS-SRTP) ↔ RTP PCMU at 200 calls ≤ 3x the floor per call, from browsers",
        "relayed WebRTC (DTLS-SRTP) ↔ RTP PCMU at 200 calls ≤ 3x the floor per call, from SIP",
        "transcoded Opus ↔ PCMU at 100 calls ≤ 1.3x raw libopus + the relay floor per call, from browsers",
        "transcoded Opus ↔ PCMU at 100 calls ≤ 1.3x raw libopus + the relay floor per call, from SIP",
        "zero lost packets and failed calls at 200 relayed calls, from browsers",
        "zero lost packets and failed calls at 100 transcoded calls, from SIP",
        "≤ 256 KiB RSS per relayed call",
        "added latency p99 < 0.50 ms in passthrough at 200 calls, browser → SIP",
        "added latency p99 < 0.50 ms in passthrough at 200 calls, SIP → browser",
        "through the bare relay fed by the same sender at 6 calls (before the scenarios, both ways): p50 ",
        " raw libopus on the calls' states timed in 2 pauses of its window, its CPU read only between them (4 passes; ",
        "setup p99 < 3.00 ms at 50 setups/s: SIP INVITE → browser `incoming`",
        "setup p99 < 3.00 ms at 50 setups/s: browser `call` → `answered`",
        "## Where the gateway's time goes",
        "Self time by binary (every sample, symbols or not):",
        "## SIP over WebSocket (JsSIP-style) next to the JSON path",
        "| SIP over WebSocket (JsSIP-style) → SIP, PCMU passthrough, 3 concurrent | 3 | 3 / 0 |",
        "| browser → SIP, PCMU passthrough, 6 concurrent | 6 | 6 / 0 |",
    ] {
        assert!(text.contains(row), "report lacks {row:?}:\n{text}");
    }
}
