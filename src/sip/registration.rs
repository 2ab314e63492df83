//! Upstream REGISTER client for one profile (RFC 3261 §10.2), sans-IO.
//!
//! The owner builds each REGISTER (same Call-ID, CSeq + 1), runs it through a client
//! transaction, answers 401/407 itself and reports the result with `handle_outcome`.
//! This machine only decides when to send, with which Expires, and what the state is.
//!
//! Policy:
//! - Refresh once 80 % of the granted time has elapsed, but at least `refresh_margin`
//!   before expiry and never sooner than 1 s after the 200: 10 s -> 8 s, 600 s -> 480 s,
//!   3 s -> 1 s. 80 % leaves room for a full Timer F (32 s) plus a retry on long grants.
//! - Failures back off `retry_min`, doubling up to `retry_max`. Jitter is opt-in through
//!   `jitter_seed` and is a pure function of (seed, attempt), so tests stay exact.
//! - While a REGISTER is in flight no other is sent: CSeq order must match send order,
//!   and an overlapping request would make the outcome ambiguous. A `stop` or network
//!   change meanwhile is remembered and acted on when that request's outcome arrives.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// RFC 3261 puts no ceiling on Min-Expires; a day keeps a hostile 423 from pinning us.
const MAX_MIN_EXPIRES: u32 = 86_400;
const MIN_REFRESH_DELAY: Duration = Duration::from_secs(1);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistrationConfig {
    /// Expires we ask for; a 423 may raise it for the life of the machine.
    pub expires: u32,
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// The refresh goes out at least this long before the binding expires.
    pub refresh_margin: Duration,
    /// `Some` shortens each backoff by up to 10 %, so profiles sharing a registrar that
    /// failed together do not retry in lockstep. Seed it per profile (e.g. a name hash).
    pub jitter_seed: Option<u64>,
}

impl Default for RegistrationConfig {
    fn default() -> Self {
        Self {
            expires: 600,
            retry_min: Duration::from_secs(5),
            retry_max: Duration::from_secs(300),
            refresh_margin: Duration::from_secs(2),
            jitter_seed: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegistrationState {
    Idle,
    /// `attempt` counts tries since the last success, starting at 1.
    Registering {
        attempt: u32,
    },
    /// Stays put while a refresh is in flight, so status pages do not flicker each interval.
    Registered {
        expires_at: Instant,
        granted: u32,
    },
    /// `attempt` is the number of consecutive failures so far.
    Failed {
        reason: String,
        retry_at: Instant,
        attempt: u32,
    },
    Unregistering,
    Unregistered,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    SendRegister { expires: u32 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome<'a> {
    /// `None` means the 200 named no expiry, so the requested one applies.
    Accepted {
        granted_expires: Option<u32>,
    },
    IntervalTooBrief {
        min_expires: u32,
    },
    Rejected {
        status: u16,
        reason: &'a str,
    },
    Timeout,
    TransportError {
        reason: &'a str,
    },
}

#[derive(Debug)]
pub struct Registration {
    config: RegistrationConfig,
    /// Starts as `config.expires`; kept separate because a 423 may raise it.
    expires: u32,
    state: RegistrationState,
    /// The Expires of the REGISTER in flight, if any.
    in_flight: Option<u32>,
    /// Until when the registrar holds a binding for us, as far as we know. Kept across
    /// failed refreshes, so a registrar hiccup does not mark us unreachable early.
    binding_until: Option<Instant>,
    consecutive_failures: u32,
    /// Refresh (Registered) or retry (Failed) time.
    deadline: Option<Instant>,
    /// The network changed while a REGISTER was in flight; redo it once that settles.
    reregister_pending: bool,
    /// `stop` arrived while a REGISTER was in flight; unregister once that settles.
    stop_pending: bool,
    actions: VecDeque<Action>,
}

impl Registration {
    pub fn new(config: RegistrationConfig) -> Self {
        Self {
            expires: config.expires,
            config,
            state: RegistrationState::Idle,
            in_flight: None,
            binding_until: None,
            consecutive_failures: 0,
            deadline: None,
            reregister_pending: false,
            stop_pending: false,
            actions: VecDeque::new(),
        }
    }

    /// Also restarts a machine that reached Unregistered; otherwise a no-op when running.
    pub fn start(&mut self, _now: Instant) {
        if matches!(
            self.state,
            RegistrationState::Idle | RegistrationState::Unregistered
        ) {
            self.consecutive_failures = 0;
            self.binding_until = None;
            self.state = RegistrationState::Registering { attempt: 1 };
            self.send(self.expires);
        }
    }

    pub fn handle_outcome(&mut self, outcome: Outcome<'_>, now: Instant) {
        let Some(sent_expires) = self.in_flight.take() else {
            return;
        };
        if sent_expires == 0 {
            // Unregistration is best effort: on failure the binding simply lapses.
            self.finish_stop();
            return;
        }
        match outcome {
            Outcome::Accepted { granted_expires } => {
                let granted = granted_expires.unwrap_or(sent_expires);
                if granted == 0 {
                    self.fail("registrar granted 0".to_owned(), now);
                } else {
                    self.accept(granted, now);
                }
            }
            Outcome::IntervalTooBrief { min_expires } => {
                if min_expires > sent_expires
                    && min_expires <= MAX_MIN_EXPIRES
                    && !self.stop_pending
                {
                    // Strictly increasing and capped, so a registrar cannot loop us forever.
                    self.expires = min_expires;
                    self.send(min_expires);
                } else {
                    let reason = format!("423 with unusable Min-Expires {min_expires}");
                    self.fail(reason, now);
                }
            }
            Outcome::Rejected { status, reason } => self.fail(format!("{status} {reason}"), now),
            Outcome::Timeout => self.fail("timeout".to_owned(), now),
            Outcome::TransportError { reason } => {
                self.fail(format!("transport error: {reason}"), now)
            }
        }
        if self.stop_pending && self.in_flight.is_none() {
            self.stop_pending = false;
            self.unregister_or_finish(now);
        } else if self.reregister_pending && self.in_flight.is_none() {
            self.reregister_now();
        }
    }

    /// The old Contact is likely unreachable now, so the binding no longer counts.
    pub fn network_changed(&mut self, _now: Instant) {
        if matches!(
            self.state,
            RegistrationState::Idle
                | RegistrationState::Unregistering
                | RegistrationState::Unregistered
        ) {
            return;
        }
        self.binding_until = None;
        self.state = RegistrationState::Registering { attempt: 1 };
        if self.in_flight.is_some() {
            // Likely sent from the old address; its outcome may be moot, but it still
            // occupies the CSeq slot, so wait for it rather than overlap.
            self.reregister_pending = true;
        } else {
            self.reregister_now();
        }
    }

    /// The peer stopped answering pings: the binding it held can no longer be counted on.
    pub fn peer_down(&mut self) {
        self.binding_until = None;
    }

    /// The peer answers again after being down: it may have restarted and forgotten our
    /// binding, so register again now rather than at the next refresh.
    pub fn peer_back(&mut self, now: Instant) {
        self.network_changed(now);
    }

    pub fn stop(&mut self, now: Instant) {
        if matches!(
            self.state,
            RegistrationState::Unregistering | RegistrationState::Unregistered
        ) {
            return;
        }
        self.deadline = None;
        self.reregister_pending = false;
        if self.in_flight.is_some() {
            self.stop_pending = true;
            self.state = RegistrationState::Unregistering;
        } else {
            self.unregister_or_finish(now);
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.in_flight.is_some() || self.deadline.is_none_or(|d| d > now) {
            return;
        }
        self.deadline = None;
        match self.state {
            RegistrationState::Registered { .. } => self.send(self.expires),
            RegistrationState::Failed { attempt, .. } => {
                self.state = RegistrationState::Registering {
                    attempt: attempt.saturating_add(1),
                };
                self.send(self.expires);
            }
            _ => {}
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        // A deadline is only ever armed with nothing in flight, but returning one while a
        // request is out would make the owner spin on a timer that cannot fire.
        self.deadline.filter(|_| self.in_flight.is_none())
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    pub fn state(&self) -> &RegistrationState {
        &self.state
    }

    /// True while the registrar holds a binding we have not asked to remove; a failed
    /// refresh does not end it early, the binding's own expiry does.
    pub fn is_registered(&self, now: Instant) -> bool {
        let stopping = matches!(
            self.state,
            RegistrationState::Unregistering | RegistrationState::Unregistered
        );
        !stopping && self.binding_until.is_some_and(|until| now < until)
    }

    fn send(&mut self, expires: u32) {
        self.in_flight = Some(expires);
        self.deadline = None;
        if expires != 0 {
            // This request already goes out on the current network.
            self.reregister_pending = false;
        }
        self.actions.push_back(Action::SendRegister { expires });
    }

    fn reregister_now(&mut self) {
        // The failures so far may be the old network's fault; start the backoff afresh.
        self.consecutive_failures = 0;
        if !matches!(self.state, RegistrationState::Registered { .. }) {
            self.state = RegistrationState::Registering { attempt: 1 };
        }
        self.send(self.expires);
    }

    fn accept(&mut self, granted: u32, now: Instant) {
        let lifetime = Duration::from_secs(u64::from(granted));
        let expires_at = now + lifetime;
        self.binding_until = Some(expires_at);
        self.consecutive_failures = 0;
        self.state = RegistrationState::Registered {
            expires_at,
            granted,
        };
        self.deadline = Some(now + refresh_delay(lifetime, self.config.refresh_margin));
    }

    fn fail(&mut self, reason: String, now: Instant) {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        let attempt = self.consecutive_failures;
        let retry_at = now + self.backoff(attempt);
        self.state = RegistrationState::Failed {
            reason,
            retry_at,
            attempt,
        };
        self.deadline = Some(retry_at);
    }

    fn unregister_or_finish(&mut self, now: Instant) {
        if self.binding_until.is_some_and(|until| now < until) {
            self.state = RegistrationState::Unregistering;
            self.send(0);
        } else {
            self.finish_stop();
        }
    }

    fn finish_stop(&mut self) {
        self.state = RegistrationState::Unregistered;
        self.binding_until = None;
        self.deadline = None;
        self.stop_pending = false;
        self.reregister_pending = false;
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1);
        let delay = self
            .config
            .retry_min
            .saturating_mul(2u32.saturating_pow(doublings))
            .min(self.config.retry_max);
        match self.config.jitter_seed {
            Some(seed) => {
                let permille = (splitmix64(seed ^ u64::from(attempt)) % 101) as u32;
                delay.saturating_sub(delay / 1000 * permille)
            }
            None => delay,
        }
    }
}

/// 80 % of the lifetime, but at least `margin` before expiry and not within the first second.
fn refresh_delay(lifetime: Duration, margin: Duration) -> Duration {
    let at_80_percent = lifetime / 10 * 8;
    at_80_percent
        .min(lifetime.saturating_sub(margin))
        .max(MIN_REFRESH_DELAY)
}

/// A well-mixed pure function, so jitter is reproducible without a random source.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
#[path = "registration/tests.rs"]
mod tests;
