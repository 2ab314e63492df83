//! A worker's measure of its own load: the thread CPU time it used over the last window,
//! published for the engine's placement of new calls (`engine::pick_worker`).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a worker measures its own CPU time for placement (`MediaEngine` packs new calls
/// onto the first worker below a load, see `engine::pick_worker`): short enough that a burst
/// of new calls overshoots by a few calls, long enough to cost nothing.
const LOAD_WINDOW: Duration = Duration::from_millis(200);

/// The calling thread's CPU time so far.
fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is a valid timespec for the call to fill; the clock id is a constant.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    Duration::new(u64::try_from(now.tv_sec).unwrap_or(0), u32::try_from(now.tv_nsec).unwrap_or(0))
}

/// A worker's own CPU meter, published for placement.
pub(super) struct LoadMeter {
    published: Arc<AtomicU32>,
    window_start: Instant,
    cpu_at_start: Duration,
}

impl LoadMeter {
    pub(super) fn new(published: Arc<AtomicU32>) -> LoadMeter {
        LoadMeter { published, window_start: Instant::now(), cpu_at_start: Duration::ZERO }
    }

    /// Starts a window now; on the worker's own thread, whose CPU time it reads.
    pub(super) fn restart(&mut self, now: Instant) {
        self.window_start = now;
        self.cpu_at_start = thread_cpu_time();
    }

    /// When the meter wants the loop to come round again: while it reports load, an idle
    /// worker must still wake once to report that it fell.
    pub(super) fn deadline(&self) -> Option<Instant> {
        (self.published.load(Ordering::Relaxed) > 0).then_some(self.window_start + LOAD_WINDOW)
    }

    pub(super) fn sample(&mut self, now: Instant) {
        if now.saturating_duration_since(self.window_start) >= LOAD_WINDOW {
            self.close_window(now, thread_cpu_time());
        }
    }

    /// Publishes the share of `now - window_start` that the thread spent on a CPU, given its
    /// CPU time `cpu` now, and starts the next window.
    fn close_window(&mut self, now: Instant, cpu: Duration) {
        let wall = now.saturating_duration_since(self.window_start);
        let used = cpu.saturating_sub(self.cpu_at_start);
        let permille = (used.as_nanos() * 1_000 / wall.as_nanos().max(1)).min(1_000) as u32;
        self.published.store(permille, Ordering::Relaxed);
        self.window_start = now;
        self.cpu_at_start = cpu;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_publishes_its_cpu_share_and_an_idle_meter_stops_asking_for_wake_ups() {
        let published = Arc::new(AtomicU32::new(0));
        let mut meter = LoadMeter::new(Arc::clone(&published));
        let start = Instant::now();
        meter.window_start = start;
        assert_eq!(meter.deadline(), None, "nothing reported: no wake-up needed");
        meter.close_window(start + Duration::from_millis(200), Duration::from_millis(60));
        assert_eq!(published.load(Ordering::Relaxed), 300, "60 ms of CPU in 200 ms");
        assert_eq!(meter.deadline(), Some(start + Duration::from_millis(400)), "a loaded meter comes back to report a fall");
        meter.close_window(start + Duration::from_millis(400), Duration::from_millis(60));
        assert_eq!(published.load(Ordering::Relaxed), 0);
        assert_eq!(meter.deadline(), None);
        meter.close_window(start + Duration::from_millis(500), Duration::from_millis(400));
        assert_eq!(published.load(Ordering::Relaxed), 1_000, "capped at a whole core");
    }
}
