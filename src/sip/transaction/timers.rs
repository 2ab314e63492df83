//! RFC 3261 Table 4 timer values (plus RFC 6026 Timers L and M) and the
//! small deadline helpers the four machines share.

use std::time::{Duration, Instant};

use super::Reliability;

/// The three base values every transaction timer is derived from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerConfig {
    /// Round-trip time estimate (default 500 ms).
    pub t1: Duration,
    /// Longest retransmit interval for non-INVITE requests and INVITE responses (default 4 s).
    pub t2: Duration,
    /// Longest time a message can linger in the network (default 5 s).
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

/// RFC 3261 asks for "at least 32 s"; a fixed value keeps behaviour predictable.
const TIMER_D_UNRELIABLE: Duration = Duration::from_secs(32);

fn unreliable_only(reliability: Reliability, value: Duration) -> Duration {
    match reliability {
        Reliability::Unreliable => value,
        // Nothing can be retransmitted over a stream, so there is nothing to wait for.
        Reliability::Reliable => Duration::ZERO,
    }
}

/// One method per RFC timer letter, so call sites read like Table 4.
impl TimerConfig {
    fn t1_x64(&self) -> Duration {
        self.t1.saturating_mul(64)
    }
    pub fn timer_b(&self) -> Duration {
        self.t1_x64()
    }
    pub fn timer_d(&self, reliability: Reliability) -> Duration {
        unreliable_only(reliability, TIMER_D_UNRELIABLE)
    }
    pub fn timer_f(&self) -> Duration {
        self.t1_x64()
    }
    pub fn timer_h(&self) -> Duration {
        self.t1_x64()
    }
    pub fn timer_i(&self, reliability: Reliability) -> Duration {
        unreliable_only(reliability, self.t4)
    }
    pub fn timer_j(&self, reliability: Reliability) -> Duration {
        unreliable_only(reliability, self.t1_x64())
    }
    pub fn timer_k(&self, reliability: Reliability) -> Duration {
        unreliable_only(reliability, self.t4)
    }
    /// RFC 6026 §8.7: same value on every transport.
    pub fn timer_l(&self) -> Duration {
        self.t1_x64()
    }
    /// RFC 6026 §8.4: same value on every transport.
    pub fn timer_m(&self) -> Duration {
        self.t1_x64()
    }
}

/// A single deadline; `None` while disarmed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Oneshot(Option<Instant>);

impl Oneshot {
    pub(super) fn arm(&mut self, now: Instant, after: Duration) {
        // An unrepresentable deadline can never be reached, so it is the same as disarmed.
        self.0 = now.checked_add(after);
    }
    pub(super) fn stop(&mut self) {
        self.0 = None;
    }
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.0
    }
}

/// Retransmission timers reschedule themselves, so a zero interval would make
/// `handle_timeout` spin forever; a misconfigured T1 of 0 degrades to 1 ms instead.
const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// A retransmit timer whose interval doubles after each firing, up to `cap`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Backoff {
    deadline: Option<Instant>,
    interval: Duration,
    cap: Duration,
}

impl Backoff {
    pub(super) fn start(&mut self, now: Instant, initial: Duration, cap: Duration) {
        self.interval = initial.max(MIN_INTERVAL);
        self.cap = cap.max(MIN_INTERVAL);
        self.deadline = now.checked_add(self.interval);
    }
    /// Reschedules from `now`, not from the old deadline: a late tick then sends
    /// one retransmission instead of a burst of catch-up copies.
    pub(super) fn fired(&mut self, now: Instant) {
        self.interval = self.interval.saturating_mul(2).min(self.cap);
        self.deadline = now.checked_add(self.interval);
    }
    /// Keeps the current deadline but makes every later interval exactly `interval`.
    pub(super) fn hold_at(&mut self, interval: Duration) {
        self.interval = interval.max(MIN_INTERVAL);
        self.cap = self.interval;
    }
    pub(super) fn stop(&mut self) {
        self.deadline = None;
    }
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }
}

/// The earliest armed deadline.
pub(super) fn earliest<K>(timers: &[(K, Option<Instant>)]) -> Option<Instant> {
    timers.iter().filter_map(|(_, at)| *at).min()
}

/// The timer with the earliest deadline `<= now`; ties go to the one listed first.
pub(super) fn first_due<K: Copy>(now: Instant, timers: &[(K, Option<Instant>)]) -> Option<K> {
    timers
        .iter()
        .filter_map(|(kind, at)| at.filter(|at| *at <= now).map(|at| (at, *kind)))
        .min_by_key(|(at, _)| *at)
        .map(|(_, kind)| kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_4_values() {
        let c = TimerConfig::default();
        let (u, r) = (Reliability::Unreliable, Reliability::Reliable);
        assert_eq!(c.timer_b(), Duration::from_secs(32));
        assert_eq!(
            (c.timer_d(u), c.timer_d(r)),
            (Duration::from_secs(32), Duration::ZERO)
        );
        assert_eq!(
            (c.timer_i(u), c.timer_k(r)),
            (Duration::from_secs(5), Duration::ZERO)
        );
        assert_eq!(
            (c.timer_j(u), c.timer_j(r)),
            (Duration::from_secs(32), Duration::ZERO)
        );
        assert_eq!(
            (c.timer_l(), c.timer_m()),
            (Duration::from_secs(32), Duration::from_secs(32))
        );
    }

    #[test]
    fn backoff_doubles_up_to_cap_and_zero_t1_cannot_spin() {
        let t0 = Instant::now();
        let mut b = Backoff::default();
        b.start(t0, Duration::from_secs(1), Duration::from_secs(3));
        let mut seen = vec![];
        while let Some(at) = b
            .deadline()
            .filter(|at| *at <= t0 + Duration::from_secs(10))
        {
            seen.push((at - t0).as_secs());
            b.fired(at);
        }
        assert_eq!(seen, [1, 3, 6, 9]);
        b.start(t0, Duration::ZERO, Duration::ZERO);
        assert!(b.deadline() > Some(t0));
    }

    #[test]
    fn ties_go_to_the_first_listed() {
        let t0 = Instant::now();
        let timers = [('x', Some(t0)), ('y', Some(t0)), ('z', None)];
        assert_eq!(first_due(t0, &timers), Some('x'));
        assert_eq!(earliest(&timers), Some(t0));
        assert_eq!(first_due(t0, &[('z', Some(t0 + MIN_INTERVAL))]), None);
    }
}
