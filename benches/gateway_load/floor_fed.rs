//! The bare relay floor fed by the scenarios' own sender, for comparison (not a target's floor).
//!
//! The floor (`floor.rs`) relays packets from a generator thread that sends every due
//! packet in one burst every 0.5 ms, so its relay thread finds about a dozen packets at each
//! wake-up. The scenarios' streams come from the load tool's media thread instead, which also
//! sends what is due whenever a packet coming back wakes it: the same traffic in about twice as
//! many bursts. This floor relays exactly that traffic (the trunk's RTP streams, both ways, on
//! the load tool's media loop) with the same bare relay, so the gateway's cost can also be read
//! against a relay that meets the same arrivals.

use super::browser::Voice;
use super::floor::{bind_pair, relay, Phases, Placement, RelayFloor};
use super::media_loop::MediaLoops;
use super::meter::{percentile, StealSample, Window};
use super::sip_peer::RtpEndpoint;
use super::stream::StreamPlan;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Relays `calls` calls' RTP (2 streams each, PCMU probes at 50/s from the load tool's media
/// loop) for `measure` after a second of warm-up.
pub fn measure(calls: usize, measure: Duration) -> std::io::Result<RelayFloor> {
    let media = MediaLoops::start(MediaLoops::threads_from_env())?;
    let placement = Placement::as_the_load();
    let epoch = Instant::now();
    let window = Window { epoch, start: epoch + Duration::from_secs(1), end: epoch + Duration::from_secs(1) + measure };
    let (mut relays, mut far_ends, mut endpoints) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..calls {
        let pair = bind_pair()?;
        let ends = [RtpEndpoint::bind()?, RtpEndpoint::bind()?];
        far_ends.push([0, 1].map(|side| SocketAddr::from(([127, 0, 0, 1], ends[side].port()))));
        let relay_addrs = [pair.relay[0].local_addr()?, pair.relay[1].local_addr()?];
        relays.push(pair.relay);
        endpoints.push((ends, relay_addrs));
    }
    let phases = Arc::new(Phases::default());
    let relay_thread = {
        let phases = Arc::clone(&phases);
        // Placed as the gateway's first worker, as the floor is.
        std::thread::spawn(move || (Placement::pin(placement.relay), relay(relays, far_ends, &phases)))
    };
    let mut done = Vec::new();
    for (call, (ends, relay_addrs)) in endpoints.into_iter().enumerate() {
        for (side, end) in ends.into_iter().enumerate() {
            let plan = StreamPlan { voice: Voice::PcmuProbes, window, call: call as u32, probed: true, stop: window.end };
            done.push(end.start(&media, relay_addrs[side], plan).map_err(std::io::Error::other)?);
        }
    }
    std::thread::sleep(window.start.saturating_duration_since(Instant::now()));
    phases.measuring.store(true, Ordering::Relaxed);
    std::thread::sleep(window.end.saturating_duration_since(Instant::now()));
    phases.measured.store(true, Ordering::Relaxed);
    let mut tallies = done.into_iter().map(|d| d.blocking_recv().map_err(|_| std::io::Error::other("media loop gone")));
    let (mut lost, mut latencies_us) = (0, Vec::new());
    while let (Some(a), Some(b)) = (tallies.next(), tallies.next()) {
        let ((sent_a, heard_by_a), (sent_b, heard_by_b)) = (a?, b?);
        for tally in [heard_by_a.tally(sent_b), heard_by_b.tally(sent_a)] {
            lost += tally.lost;
            latencies_us.extend(tally.latencies_us);
        }
    }
    latencies_us.sort_unstable();
    phases.stop.store(true, Ordering::Relaxed);
    let (relay_cpu, relayed) = relay_thread.join().map_err(|_| std::io::Error::other("relay panicked"))?;
    let (relayed, cpu_us, seconds) = relayed?;
    // The far ends are the tool's media loop, which pins itself.
    let peers = placement.peers.filter(|_| super::media_loop::PINNED.load(Ordering::Relaxed));
    let latency_us = (!latencies_us.is_empty()).then(|| (percentile(&latencies_us, 0.5), percentile(&latencies_us, 0.99)));
    Ok(RelayFloor { latency_us, ..RelayFloor::measured(calls, seconds, relayed, lost, cpu_us, Placement { relay: relay_cpu, peers }) })
}

/// `measure`, with the host's steal over it, printed as the other floors are.
pub fn measure_and_print(calls: usize, duration: Duration) -> Result<RelayFloor, String> {
    let steal = StealSample::start();
    let measured = measure(calls, duration).map(|f| RelayFloor { steal_percent: steal.percent(), ..f }).map_err(|e| format!("bare relay fed by the load tool at {calls} calls: {e}"));
    match &measured {
        Ok(f) => println!("{}", f.summary("bare relay fed by the load tool's sender")),
        Err(e) => println!("{e}"),
    }
    measured
}
