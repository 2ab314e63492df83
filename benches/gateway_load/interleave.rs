//! A transcoded scenario's window with raw libopus timed inside it.
//!
//! This host's speed drifts by tens of per cent within minutes (ARCHITECTURE.md), so libopus
//! timed a few seconds before or after the calls' window can be timed on another host, as far
//! as speed goes. So the window is cut into stretches of about three seconds, and between them
//! the load pauses: every sender stops (the calls stay up), the gateway, which codes only what
//! arrives, falls idle, and libopus passes run on the gateway's CPU. Then the senders resume and,
//! once the calls are back at their pace, the gateway's CPU is read over the next stretch. The
//! gateway's cost is its CPU over the stretches only, and the floor is the mean of the passes
//! between them, so the two are sampled across the same seconds.

use super::floor::CodecBench;
use super::media_loop::MediaLoops;
use super::meter::{CpuSample, Window};
use std::time::{Duration, Instant};

/// The gateway's CPU over the stretches, and what the pauses took.
#[derive(Debug, Clone, Copy, Default)]
pub struct Interleaved {
    /// % of a core, over the stretches only.
    pub gateway_percent: f64,
    /// The load tool's own % of a core over the same stretches (the passes are not in it).
    pub loader_percent: f64,
    pub stretches: usize,
    /// How long the senders were stopped in all.
    pub paused: Duration,
}

/// A stretch is at most this long: the host's speed has been seen to move by a tenth within
/// seconds, and each pause costs about half a second of the window.
const STRETCH: Duration = Duration::from_secs(3);
/// After the senders stop, what is in flight arrives and the gateway codes what its codec tick
/// (20 ms) holds; then it is idle.
const DRAIN: Duration = Duration::from_millis(80);
/// After the senders resume, this long before a stretch is read: the first frames after a
/// pause find the calls' codec states out of the cache, which steady calls do not.
const RESUME: Duration = Duration::from_millis(200);
/// What the last pause needs before the window closes: the drain and two passes.
const LAST_PAUSE: Duration = Duration::from_millis(600);
/// libopus passes in each pause: about 0.15 s at 100 calls.
const PASSES: usize = 2;

/// Reads the gateway's CPU and the load tool's (% of a core) over the window: with `libopus`,
/// over the stretches between its passes (`measure`), else over the whole window.
pub async fn read_window(window: &Window, gateway_pid: u32, media: &MediaLoops, libopus: Option<&mut CodecBench>) -> (f64, f64, Option<Interleaved>) {
    match libopus {
        Some(libopus) => {
            let measured = measure(window, gateway_pid, media, libopus).await;
            (measured.gateway_percent, measured.loader_percent, Some(measured))
        }
        None => {
            let (gateway, loader) = (CpuSample::start(gateway_pid), CpuSample::start(std::process::id()));
            tokio::time::sleep_until((window.end - Duration::from_millis(100)).into()).await;
            (gateway.percent_of_core(), loader.percent_of_core(), None)
        }
    }
}

/// Runs the window: a pause, then each stretch followed by a pause. The last pause ends the
/// window, its passes timed as the calls' senders stop for good.
async fn measure(window: &Window, gateway_pid: u32, media: &MediaLoops, libopus: &mut CodecBench) -> Interleaved {
    let usable = window.end.saturating_duration_since(window.start).saturating_sub(LAST_PAUSE);
    let stretches = (usable.as_secs_f64() / STRETCH.as_secs_f64()).ceil().max(1.0) as usize;
    let slot = usable / stretches as u32;
    let mut measured = Interleaved { stretches, ..Interleaved::default() };
    let (mut gateway_cpu, mut loader_cpu, mut seconds) = (0.0, 0.0, 0.0);
    for stretch in 1..=stretches {
        measured.paused += pause_for_passes(media, libopus).await;
        tokio::time::sleep(RESUME).await;
        let (gateway, loader) = (CpuSample::start(gateway_pid), CpuSample::start(std::process::id()));
        tokio::time::sleep_until((window.start + slot * stretch as u32).into()).await;
        let (gateway, loader) = (gateway.taken(), loader.taken());
        gateway_cpu += gateway.0;
        loader_cpu += loader.0;
        seconds += gateway.1;
    }
    measured.paused += pause_for_passes(media, libopus).await;
    measured.gateway_percent = gateway_cpu / f64::max(seconds, 1e-3) * 100.0;
    measured.loader_percent = loader_cpu / f64::max(seconds, 1e-3) * 100.0;
    measured
}

/// Stops the senders, lets the gateway drain, times the passes, and resumes; returns how long
/// the senders were stopped.
async fn pause_for_passes(media: &MediaLoops, libopus: &mut CodecBench) -> Duration {
    let stopped = Instant::now();
    media.pause(true);
    tokio::time::sleep(DRAIN).await;
    // The passes run on a thread pinned to the gateway's CPU; this one only waits for them.
    if let Err(e) = tokio::task::block_in_place(|| libopus.measure(PASSES)) {
        println!("raw libopus floor inside the window: {e}");
    }
    media.pause(false);
    stopped.elapsed()
}
