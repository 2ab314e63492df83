//! Non-INVITE client transaction: RFC 3261 §17.1.2 (Figure 6).

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;

use super::timers::{earliest, first_due, Backoff, Oneshot};
use super::{Output, Reliability, TimerConfig, Verdict};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Trying,
    Proceeding,
    Completed,
    Terminated,
}

#[derive(Clone, Copy, Debug)]
enum Timer {
    E,
    F,
    K,
}

#[derive(Debug)]
pub struct ClientNonInvite {
    state: State,
    reliability: Reliability,
    config: TimerConfig,
    request: Bytes,
    timer_e: Backoff,
    timer_f: Oneshot,
    timer_k: Oneshot,
    outputs: VecDeque<Output>,
}

impl ClientNonInvite {
    /// Starts in Trying with the request already queued for transmission.
    pub fn new(
        request: Bytes,
        reliability: Reliability,
        config: TimerConfig,
        now: Instant,
    ) -> Self {
        let mut m = Self {
            state: State::Trying,
            reliability,
            config,
            request: request.clone(),
            timer_e: Backoff::default(),
            timer_f: Oneshot::default(),
            timer_k: Oneshot::default(),
            outputs: VecDeque::from([Output::Transmit(request)]),
        };
        if reliability == Reliability::Unreliable {
            m.timer_e.start(now, config.t1, config.t2);
        }
        m.timer_f.arm(now, config.timer_f());
        m
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        earliest(&self.timers())
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(timer) = first_due(now, &self.timers()) {
            match timer {
                Timer::E => {
                    self.outputs
                        .push_back(Output::Transmit(self.request.clone()));
                    self.timer_e.fired(now);
                }
                Timer::F => {
                    self.outputs.push_back(Output::Timeout);
                    self.terminate();
                }
                Timer::K => self.terminate(),
            }
        }
    }

    /// Shows the machine a response whose CSeq matched this transaction.
    pub fn handle_response(&mut self, status: u16, now: Instant) -> Verdict {
        match (self.state, status) {
            (State::Trying | State::Proceeding, 100..=199) => {
                // Unlike INVITE, retransmission goes on (the final may still be lost),
                // but at the relaxed pace of T2 now that the server is known to be alive.
                self.state = State::Proceeding;
                self.timer_e.hold_at(self.config.t2);
                Verdict::PassUp
            }
            (State::Trying | State::Proceeding, 200..=699) => {
                self.state = State::Completed;
                self.timer_e.stop();
                self.timer_f.stop();
                let timer_k = self.config.timer_k(self.reliability);
                if timer_k.is_zero() {
                    self.terminate();
                } else {
                    // Linger to absorb retransmitted finals still in the network.
                    self.timer_k.arm(now, timer_k);
                }
                Verdict::PassUp
            }
            _ => Verdict::Absorb,
        }
    }

    /// §17.1.4: the TU hears about it and the transaction is over.
    pub fn handle_transport_error(&mut self, _now: Instant) {
        if self.state != State::Terminated {
            self.outputs.push_back(Output::TransportError);
            self.terminate();
        }
    }

    fn terminate(&mut self) {
        self.state = State::Terminated;
        self.timer_e.stop();
        self.timer_f.stop();
        self.timer_k.stop();
        self.outputs.push_back(Output::Terminated);
    }

    fn timers(&self) -> [(Timer, Option<Instant>); 3] {
        [
            (Timer::E, self.timer_e.deadline()),
            (Timer::F, self.timer_f.deadline()),
            (Timer::K, self.timer_k.deadline()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{drain, ms, run, secs};
    use super::*;

    fn register(reliability: Reliability) -> (ClientNonInvite, Instant) {
        let t0 = Instant::now();
        let request = Bytes::from_static(b"REGISTER");
        let mut m = ClientNonInvite::new(request, reliability, TimerConfig::default(), t0);
        assert_eq!(drain(&mut m), ["tx REGISTER"]);
        (m, t0)
    }

    #[test]
    fn timer_e_doubles_up_to_t2_until_timer_f() {
        let (mut m, t0) = register(Reliability::Unreliable);
        assert_eq!(
            run(&mut m, t0, secs(100)),
            [
                "500ms tx REGISTER",
                "1.5s tx REGISTER",
                "3.5s tx REGISTER",
                "7.5s tx REGISTER",
                "11.5s tx REGISTER",
                "15.5s tx REGISTER",
                "19.5s tx REGISTER",
                "23.5s tx REGISTER",
                "27.5s tx REGISTER",
                "31.5s tx REGISTER",
                "32s timeout",
                "32s terminated",
            ]
        );
    }

    #[test]
    fn timer_e_runs_every_t2_in_proceeding() {
        let (mut m, t0) = register(Reliability::Unreliable);
        assert_eq!(run(&mut m, t0, ms(500)), ["500ms tx REGISTER"]);
        assert_eq!(m.handle_response(100, t0 + secs(1)), Verdict::PassUp);
        assert_eq!(m.state(), State::Proceeding);
        assert_eq!(m.handle_response(100, t0 + secs(1)), Verdict::PassUp);
        let log = run(&mut m, t0, secs(100));
        // The deadline armed in Trying stands; only the intervals after it change.
        assert_eq!(
            log[..4],
            [
                "1.5s tx REGISTER",
                "5.5s tx REGISTER",
                "9.5s tx REGISTER",
                "13.5s tx REGISTER"
            ]
        );
        assert_eq!(
            log[log.len() - 3..],
            ["29.5s tx REGISTER", "32s timeout", "32s terminated"]
        );
    }

    #[test]
    fn final_stops_e_and_f_and_timer_k_absorbs_retransmissions() {
        let (mut m, t0) = register(Reliability::Unreliable);
        assert_eq!(m.handle_response(200, t0 + secs(1)), Verdict::PassUp);
        assert_eq!(m.state(), State::Completed);
        assert_eq!(m.handle_response(200, t0 + secs(2)), Verdict::Absorb);
        assert_eq!(m.handle_response(100, t0 + secs(2)), Verdict::Absorb);
        assert_eq!(run(&mut m, t0, secs(100)), ["6s terminated"]);
    }

    #[test]
    fn reliable_sends_once_and_terminates_on_the_final() {
        let (mut m, t0) = register(Reliability::Reliable);
        assert_eq!(m.poll_timeout(), Some(t0 + secs(32)), "only Timer F");
        assert_eq!(m.handle_response(401, t0 + secs(1)), Verdict::PassUp);
        assert_eq!(drain(&mut m), ["terminated"]);
    }

    #[test]
    fn reliable_times_out_at_timer_f() {
        let (mut m, t0) = register(Reliability::Reliable);
        assert_eq!(
            run(&mut m, t0, secs(100)),
            ["32s timeout", "32s terminated"]
        );
    }

    #[test]
    fn transport_error_informs_tu_and_terminates() {
        let (mut m, t0) = register(Reliability::Unreliable);
        m.handle_transport_error(t0 + ms(1));
        assert_eq!(drain(&mut m), ["transport error", "terminated"]);
        assert_eq!(m.poll_timeout(), None);
        assert_eq!(m.handle_response(200, t0 + ms(2)), Verdict::Absorb);
    }
}
