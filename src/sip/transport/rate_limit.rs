//! Per-source-IP token buckets, so one noisy or hostile source cannot starve everyone else.
//! Sans-IO: time comes in as an argument. The table is bounded; when full, the idlest entry goes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

pub struct RateLimiter {
    rate_per_second: f64,
    burst: f64,
    max_sources: usize,
    buckets: HashMap<IpAddr, Bucket>,
    refused: u64,
    /// While the table is full of active sources, new ones are refused until this time.
    next_sweep: Option<Instant>,
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    pub fn new(rate_per_second: u32, burst: u32, max_sources: usize) -> RateLimiter {
        RateLimiter {
            rate_per_second: f64::from(rate_per_second.max(1)),
            burst: f64::from(burst.max(1)),
            max_sources: max_sources.max(1),
            buckets: HashMap::new(),
            refused: 0,
            next_sweep: None,
        }
    }

    /// Whether one more message from `source` may be processed now.
    pub fn allow(&mut self, source: IpAddr, now: Instant) -> bool {
        if !self.buckets.contains_key(&source) && self.buckets.len() >= self.max_sources && !self.make_room(now) {
            // A table full of active sources is itself a flood: new sources wait (fail closed).
            self.refused += 1;
            return false;
        }
        let (rate, burst) = (self.rate_per_second, self.burst);
        let bucket = self.buckets.entry(source).or_insert(Bucket { tokens: burst, last: now });
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            self.refused += 1;
            false
        }
    }

    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Drops buckets idle long enough to have refilled completely (they hold no state a fresh
    /// bucket would not). The sweep is O(n), so it runs at most once a second.
    fn make_room(&mut self, now: Instant) -> bool {
        if self.next_sweep.is_some_and(|t| now < t) {
            return false;
        }
        let refill = std::time::Duration::from_secs_f64(self.burst / self.rate_per_second);
        self.buckets.retain(|_, b| now.saturating_duration_since(b.last) < refill);
        if self.buckets.len() < self.max_sources {
            self.next_sweep = None;
            true
        } else {
            self.next_sweep = Some(now + std::time::Duration::from_secs(1));
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_sustained_rate() {
        let t0 = Instant::now();
        let mut limiter = RateLimiter::new(10, 20, 100);
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        let allowed = (0..30).filter(|_| limiter.allow(ip, t0)).count();
        assert_eq!(allowed, 20, "the burst is honoured, then refused");
        assert!(!limiter.allow(ip, t0 + Duration::from_millis(50)), "half a token is not enough");
        assert!(limiter.allow(ip, t0 + Duration::from_millis(100)), "10/s refills one token per 100 ms");
        let other: IpAddr = "192.0.2.2".parse().expect("ip");
        assert!(limiter.allow(other, t0), "other sources are not affected");
        assert_eq!(limiter.refused(), 11);
    }

    #[test]
    fn table_is_bounded() {
        let t0 = Instant::now();
        let mut limiter = RateLimiter::new(1, 1, 3);
        // Sources one second apart: each earlier bucket has refilled, so it can make room.
        for i in 0..10u8 {
            assert!(limiter.allow(IpAddr::from([10, 0, 0, i]), t0 + Duration::from_secs(u64::from(i) * 2)));
        }
        assert!(limiter.buckets.len() <= 3);
        // A burst of new sources at one instant fills the table; the rest are refused, cheaply.
        let mut limiter = RateLimiter::new(1, 1, 3);
        let allowed = (0..100u8).filter(|i| limiter.allow(IpAddr::from([10, 0, 1, *i]), t0)).count();
        assert_eq!(allowed, 3);
        assert_eq!(limiter.buckets.len(), 3);
    }
}
