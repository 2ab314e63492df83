//! OPTIONS keep-alive pinger for one profile, sans-IO.
//!
//! The owner sends an OPTIONS whenever `poll_send` says so, runs it through a client
//! transaction and reports the final response or failure. Only one ping is out at a
//! time; the next is due one interval after the previous one was sent, or as soon as
//! that ping settles if it took longer than the interval (a Timer F of 32 s can outlast
//! a short interval). Pinging goes on at the same pace while the peer is down, so
//! recovery is noticed within one interval.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerStatus {
    Unknown,
    Up { since: Instant, last_rtt: Duration },
    Down { since: Instant, reason: String },
}

#[derive(Debug)]
pub struct Pinger {
    interval: Duration,
    next_due: Instant,
    send_queued: bool,
    /// Send time of the OPTIONS in flight, if any.
    in_flight: Option<Instant>,
    status: PeerStatus,
    /// A queue rather than a flag, so Up -> Down -> Up between polls is not lost.
    changes: VecDeque<PeerStatus>,
}

impl Pinger {
    pub fn new(interval: Duration, now: Instant) -> Self {
        Self {
            interval,
            next_due: now,
            send_queued: false,
            in_flight: None,
            status: PeerStatus::Unknown,
            changes: VecDeque::new(),
        }
    }

    /// RTTs are measured from the `now` given here, so send right after `poll_send`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.in_flight.is_some() || now < self.next_due {
            return;
        }
        self.in_flight = Some(now);
        self.send_queued = true;
        // From the actual send time: after a stall the pinger resumes its pace instead
        // of firing a burst to catch up on missed pings.
        self.next_due = now + self.interval;
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        // The transaction in flight reports back on its own; offering a past deadline
        // meanwhile would make the owner spin.
        match self.in_flight {
            Some(_) => None,
            None => Some(self.next_due),
        }
    }

    pub fn poll_send(&mut self) -> bool {
        std::mem::take(&mut self.send_queued)
    }

    /// Any final response proves the peer answers, even 404 or 405; only 408 and 503
    /// say the peer (or the proxy in front of it) cannot serve us. Provisionals are ignored.
    pub fn handle_response(&mut self, status: u16, now: Instant) {
        if status < 200 {
            return;
        }
        let Some(sent_at) = self.settle(now) else {
            return;
        };
        match status {
            408 | 503 => self.mark_down(format!("OPTIONS answered {status}"), now),
            _ => self.mark_up(now.saturating_duration_since(sent_at), now),
        }
    }

    /// Transaction timeout or transport error.
    pub fn handle_failure(&mut self, reason: &str, now: Instant) {
        if self.settle(now).is_some() {
            self.mark_down(reason.to_owned(), now);
        }
    }

    pub fn status(&self) -> &PeerStatus {
        &self.status
    }

    pub fn poll_status_change(&mut self) -> Option<PeerStatus> {
        self.changes.pop_front()
    }

    /// Ends the ping in flight and returns its send time; `None` when nothing was out,
    /// so a stray or duplicated report cannot move the status.
    fn settle(&mut self, now: Instant) -> Option<Instant> {
        let sent_at = self.in_flight.take()?;
        self.next_due = self.next_due.max(now);
        Some(sent_at)
    }

    fn mark_up(&mut self, rtt: Duration, now: Instant) {
        if let PeerStatus::Up { last_rtt, .. } = &mut self.status {
            *last_rtt = rtt;
            return;
        }
        self.transition(PeerStatus::Up {
            since: now,
            last_rtt: rtt,
        });
    }

    fn mark_down(&mut self, new_reason: String, now: Instant) {
        if let PeerStatus::Down { reason, .. } = &mut self.status {
            // Still the same outage: keep its start, but show the latest cause.
            *reason = new_reason;
            return;
        }
        self.transition(PeerStatus::Down {
            since: now,
            reason: new_reason,
        });
    }

    fn transition(&mut self, status: PeerStatus) {
        self.changes.push_back(status.clone());
        self.status = status;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_secs(30);

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Fires the due ping at `at` and checks exactly one send comes out.
    fn ping(p: &mut Pinger, at: Instant) {
        assert_eq!(p.poll_timeout(), Some(at));
        p.handle_timeout(at);
        assert!(p.poll_send());
        assert!(!p.poll_send(), "one send per due ping");
    }

    fn pinger() -> (Pinger, Instant) {
        let t0 = Instant::now();
        let p = Pinger::new(INTERVAL, t0);
        assert_eq!(p.status(), &PeerStatus::Unknown);
        (p, t0)
    }

    #[test]
    fn first_ping_is_due_at_once_and_then_every_interval() {
        let (mut p, t0) = pinger();
        assert!(!p.poll_send());
        for n in 0..4 {
            let at = t0 + INTERVAL * n;
            ping(&mut p, at);
            p.handle_response(200, at + ms(40));
        }
        assert_eq!(p.poll_timeout(), Some(t0 + INTERVAL * 4));
    }

    #[test]
    fn only_one_ping_in_flight() {
        let (mut p, t0) = pinger();
        ping(&mut p, t0);
        assert_eq!(p.poll_timeout(), None);
        p.handle_timeout(t0 + secs(31));
        p.handle_timeout(t0 + secs(62));
        assert!(!p.poll_send());
        // The transaction gave up after the interval had passed: ping again at once.
        p.handle_failure("timeout", t0 + secs(32));
        ping(&mut p, t0 + secs(32));
        p.handle_response(200, t0 + secs(33));
        assert_eq!(p.poll_timeout(), Some(t0 + secs(62)));
    }

    #[test]
    fn rtt_is_response_time_minus_send_time() {
        let (mut p, t0) = pinger();
        ping(&mut p, t0);
        p.handle_response(200, t0 + ms(120));
        let up = PeerStatus::Up {
            since: t0 + ms(120),
            last_rtt: ms(120),
        };
        assert_eq!(p.status(), &up);
        ping(&mut p, t0 + INTERVAL);
        p.handle_response(200, t0 + INTERVAL + ms(75));
        let up = PeerStatus::Up {
            since: t0 + ms(120),
            last_rtt: ms(75),
        };
        assert_eq!(p.status(), &up, "since is kept, rtt is the latest");
    }

    #[test]
    fn transitions_are_reported_once() {
        let (mut p, t0) = pinger();
        let mut at = t0;
        let mut step = |p: &mut Pinger, status: Option<u16>| {
            ping(p, at);
            match status {
                Some(code) => p.handle_response(code, at + ms(10)),
                None => p.handle_failure("transport error: connection refused", at + ms(10)),
            }
            let change = p.poll_status_change();
            assert_eq!(p.poll_status_change(), None);
            at += INTERVAL;
            change
        };
        let since = |n: u32| t0 + INTERVAL * n + ms(10);
        let up = |n| {
            Some(PeerStatus::Up {
                since: since(n),
                last_rtt: ms(10),
            })
        };
        let down = |n, reason: &str| {
            Some(PeerStatus::Down {
                since: since(n),
                reason: reason.to_owned(),
            })
        };
        assert_eq!(step(&mut p, Some(200)), up(0));
        assert_eq!(step(&mut p, Some(404)), None, "an answer, so still up");
        assert_eq!(step(&mut p, Some(503)), down(2, "OPTIONS answered 503"));
        assert_eq!(step(&mut p, None), None, "same outage");
        let reason = "transport error: connection refused";
        assert_eq!(
            Some(p.status().clone()),
            down(2, reason),
            "latest cause shown"
        );
        assert_eq!(step(&mut p, Some(405)), up(4));
        assert_eq!(step(&mut p, Some(408)), down(5, "OPTIONS answered 408"));
    }

    #[test]
    fn unknown_to_down_is_a_transition_too() {
        let (mut p, t0) = pinger();
        ping(&mut p, t0);
        p.handle_failure("timeout", t0 + secs(32));
        let down = PeerStatus::Down {
            since: t0 + secs(32),
            reason: "timeout".into(),
        };
        assert_eq!(p.poll_status_change(), Some(down));
    }

    #[test]
    fn changes_between_polls_are_all_kept() {
        let (mut p, t0) = pinger();
        ping(&mut p, t0);
        p.handle_response(200, t0);
        ping(&mut p, t0 + INTERVAL);
        p.handle_failure("timeout", t0 + INTERVAL);
        let changes: Vec<_> = std::iter::from_fn(|| p.poll_status_change()).collect();
        assert!(matches!(
            changes[..],
            [PeerStatus::Up { .. }, PeerStatus::Down { .. }]
        ));
    }

    #[test]
    fn keeps_pinging_at_the_same_interval_while_down() {
        let (mut p, t0) = pinger();
        for n in 0..3 {
            ping(&mut p, t0 + INTERVAL * n);
            p.handle_response(503, t0 + INTERVAL * n + ms(5));
        }
        assert_eq!(p.poll_timeout(), Some(t0 + INTERVAL * 3));
        assert!(matches!(p.status(), PeerStatus::Down { since, .. } if *since == t0 + ms(5)));
    }

    #[test]
    fn stray_and_provisional_reports_are_ignored() {
        let (mut p, t0) = pinger();
        p.handle_response(200, t0);
        p.handle_failure("timeout", t0);
        assert_eq!(p.status(), &PeerStatus::Unknown);
        ping(&mut p, t0);
        p.handle_response(100, t0 + ms(10));
        assert_eq!(p.status(), &PeerStatus::Unknown);
        assert_eq!(p.poll_timeout(), None, "still in flight");
        p.handle_response(200, t0 + ms(20));
        assert!(matches!(p.status(), PeerStatus::Up { last_rtt, .. } if *last_rtt == ms(20)));
    }
}
