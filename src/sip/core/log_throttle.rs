//! Caps the warnings a flood can write: a source sending 100,000 refused INVITEs must not write
//! 100,000 log lines. Each kind of warning gets `PER_WINDOW` lines per `WINDOW`; the rest are only
//! counted (the core's counters keep every one), and the next line says how many were left out.

use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(10);
const PER_WINDOW: u32 = 20;

#[derive(Debug, Default)]
pub struct LogThrottle {
    window_start: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

impl LogThrottle {
    /// `Some(n)` when this occurrence should be logged, `n` being how many were left out since
    /// the last logged one; `None` when it should not.
    pub fn admit(&mut self, now: Instant) -> Option<u64> {
        let expired = self.window_start.is_none_or(|start| now.saturating_duration_since(start) >= WINDOW);
        if expired {
            self.window_start = Some(now);
            self.logged = 0;
        }
        if self.logged >= PER_WINDOW {
            self.suppressed += 1;
            return None;
        }
        self.logged += 1;
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_logs_a_few_lines_per_window_and_then_says_how_many_it_left_out() {
        let t0 = Instant::now();
        let mut throttle = LogThrottle::default();
        let logged = (0..1_000).filter(|_| throttle.admit(t0).is_some()).count();
        assert_eq!(logged, PER_WINDOW as usize);
        assert_eq!(throttle.admit(t0 + WINDOW), Some(1_000 - u64::from(PER_WINDOW)), "the next window's first line counts what was left out");
        assert_eq!(throttle.admit(t0 + WINDOW), Some(0));
    }
}
