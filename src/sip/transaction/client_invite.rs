//! INVITE client transaction: RFC 3261 §17.1.1 (Figure 5) as amended by RFC 6026 §7.2,
//! which adds the Accepted state so that 2xx retransmissions from every fork reach the TU.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::timers::{earliest, first_due, Backoff, Oneshot};
use super::{Output, Reliability, TimerConfig, Verdict};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Calling,
    Proceeding,
    Completed,
    Accepted,
    Terminated,
}

#[derive(Clone, Copy, Debug)]
enum Timer {
    A,
    B,
    D,
    M,
}

#[derive(Debug)]
pub struct ClientInvite {
    state: State,
    reliability: Reliability,
    config: TimerConfig,
    request: Bytes,
    ack: Option<Bytes>,
    timer_a: Backoff,
    timer_b: Oneshot,
    timer_d: Oneshot,
    timer_m: Oneshot,
    outputs: VecDeque<Output>,
}

impl ClientInvite {
    /// Starts in Calling with the INVITE already queued for transmission.
    pub fn new(
        request: Bytes,
        reliability: Reliability,
        config: TimerConfig,
        now: Instant,
    ) -> Self {
        let mut m = Self {
            state: State::Calling,
            reliability,
            config,
            request: request.clone(),
            ack: None,
            timer_a: Backoff::default(),
            timer_b: Oneshot::default(),
            timer_d: Oneshot::default(),
            timer_m: Oneshot::default(),
            outputs: VecDeque::from([Output::Transmit(request)]),
        };
        if reliability == Reliability::Unreliable {
            // Timer A is not capped by T2: Timer B already bounds it to seven sends.
            m.timer_a.start(now, config.t1, Duration::MAX);
        }
        m.timer_b.arm(now, config.timer_b());
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
                Timer::A => {
                    self.outputs
                        .push_back(Output::Transmit(self.request.clone()));
                    self.timer_a.fired(now);
                }
                Timer::B => {
                    self.outputs.push_back(Output::Timeout);
                    self.terminate();
                }
                Timer::D | Timer::M => self.terminate(),
            }
        }
    }

    /// Shows the machine a response whose CSeq matched this transaction.
    ///
    /// `ack_for_non_2xx` is the ACK the owner built for a 300-699 response (§17.1.1.3);
    /// it is sent now and again for every retransmission of that response.
    pub fn handle_response(
        &mut self,
        status: u16,
        ack_for_non_2xx: Option<Bytes>,
        now: Instant,
    ) -> Verdict {
        match (self.state, status) {
            (State::Calling | State::Proceeding, 100..=199) => {
                // The server has the request, so stop resending it; there is no Timer B in
                // Proceeding because how long to let it ring is the TU's call (CANCEL).
                self.state = State::Proceeding;
                self.timer_a.stop();
                self.timer_b.stop();
                Verdict::PassUp
            }
            (State::Calling | State::Proceeding, 200..=299) => {
                self.state = State::Accepted;
                self.timer_a.stop();
                self.timer_b.stop();
                self.timer_m.arm(now, self.config.timer_m());
                Verdict::PassUp
            }
            // Each 2xx may come from another fork and needs its own ACK, sent by the TU.
            (State::Accepted, 200..=299) => Verdict::PassUp,
            (State::Calling | State::Proceeding, 300..=699) => {
                self.state = State::Completed;
                self.timer_a.stop();
                self.timer_b.stop();
                self.ack = ack_for_non_2xx;
                self.send_ack();
                let timer_d = self.config.timer_d(self.reliability);
                if timer_d.is_zero() {
                    self.terminate();
                } else {
                    // Stay around to answer retransmitted finals whose ACK was lost.
                    self.timer_d.arm(now, timer_d);
                }
                Verdict::PassUp
            }
            (State::Completed, 300..=699) => {
                self.send_ack();
                Verdict::Absorb
            }
            // Stray provisionals after a final, mismatched finals, out-of-range codes.
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

    fn send_ack(&mut self) {
        if let Some(ack) = &self.ack {
            self.outputs.push_back(Output::Transmit(ack.clone()));
        }
    }

    fn terminate(&mut self) {
        self.state = State::Terminated;
        self.timer_a.stop();
        self.timer_b.stop();
        self.timer_d.stop();
        self.timer_m.stop();
        self.outputs.push_back(Output::Terminated);
    }

    fn timers(&self) -> [(Timer, Option<Instant>); 4] {
        [
            (Timer::A, self.timer_a.deadline()),
            (Timer::B, self.timer_b.deadline()),
            (Timer::D, self.timer_d.deadline()),
            (Timer::M, self.timer_m.deadline()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{drain, ms, run, secs};
    use super::*;

    const INVITE: &[u8] = b"INVITE";
    const ACK: &[u8] = b"ACK";

    fn invite(reliability: Reliability, config: TimerConfig) -> (ClientInvite, Instant) {
        let t0 = Instant::now();
        let mut m = ClientInvite::new(Bytes::from_static(INVITE), reliability, config, t0);
        assert_eq!(drain(&mut m), ["tx INVITE"]);
        (m, t0)
    }

    fn ack() -> Option<Bytes> {
        Some(Bytes::from_static(ACK))
    }

    #[test]
    fn timer_a_doubles_uncapped_until_timer_b() {
        let (mut m, t0) = invite(Reliability::Unreliable, TimerConfig::default());
        assert_eq!(m.poll_timeout(), Some(t0 + ms(500)));
        assert_eq!(
            run(&mut m, t0, secs(100)),
            [
                "500ms tx INVITE",
                "1.5s tx INVITE",
                "3.5s tx INVITE",
                "7.5s tx INVITE",
                "15.5s tx INVITE",
                "31.5s tx INVITE",
                "32s timeout",
                "32s terminated",
            ]
        );
        assert_eq!(m.state(), State::Terminated);
        assert_eq!(m.poll_timeout(), None);
    }

    #[test]
    fn timer_b_scales_with_t1() {
        let config = TimerConfig {
            t1: ms(100),
            ..TimerConfig::default()
        };
        let (mut m, t0) = invite(Reliability::Unreliable, config);
        let log = run(&mut m, t0, secs(100));
        assert_eq!(log[log.len() - 2..], ["6.4s timeout", "6.4s terminated"]);
    }

    #[test]
    fn reliable_sends_once_and_times_out_at_timer_b() {
        let (mut m, t0) = invite(Reliability::Reliable, TimerConfig::default());
        assert_eq!(
            run(&mut m, t0, secs(100)),
            ["32s timeout", "32s terminated"]
        );
    }

    #[test]
    fn a_late_tick_fires_a_then_b_without_a_burst() {
        let (mut m, t0) = invite(Reliability::Unreliable, TimerConfig::default());
        m.handle_timeout(t0 + secs(40));
        assert_eq!(drain(&mut m), ["tx INVITE", "timeout", "terminated"]);
    }

    #[test]
    fn provisional_then_486_is_acked_and_retransmissions_reack_until_timer_d() {
        let (mut m, t0) = invite(Reliability::Unreliable, TimerConfig::default());
        assert_eq!(m.handle_response(180, None, t0 + ms(100)), Verdict::PassUp);
        assert_eq!(m.state(), State::Proceeding);
        assert_eq!(m.poll_timeout(), None, "no Timer A or B in Proceeding");

        assert_eq!(m.handle_response(486, ack(), t0 + secs(1)), Verdict::PassUp);
        assert_eq!(m.state(), State::Completed);
        assert_eq!(drain(&mut m), ["tx ACK"]);

        // The ACK got lost, so the server resends its final.
        assert_eq!(m.handle_response(486, ack(), t0 + secs(2)), Verdict::Absorb);
        assert_eq!(drain(&mut m), ["tx ACK"]);
        assert_eq!(run(&mut m, t0, secs(100)), ["33s terminated"]);
    }

    #[test]
    fn reliable_non_2xx_final_terminates_at_once() {
        let (mut m, t0) = invite(Reliability::Reliable, TimerConfig::default());
        assert_eq!(m.handle_response(603, ack(), t0 + secs(1)), Verdict::PassUp);
        assert_eq!(drain(&mut m), ["tx ACK", "terminated"]);
        assert_eq!(m.handle_response(603, ack(), t0 + secs(2)), Verdict::Absorb);
        assert_eq!(drain(&mut m), Vec::<String>::new());
    }

    #[test]
    fn every_2xx_is_passed_up_in_accepted_until_timer_m() {
        let (mut m, t0) = invite(Reliability::Unreliable, TimerConfig::default());
        assert_eq!(m.handle_response(200, None, t0 + secs(1)), Verdict::PassUp);
        assert_eq!(m.state(), State::Accepted);
        assert_eq!(m.handle_response(200, None, t0 + secs(2)), Verdict::PassUp);
        assert_eq!(m.handle_response(486, ack(), t0 + secs(3)), Verdict::Absorb);
        assert_eq!(m.handle_response(180, None, t0 + secs(3)), Verdict::Absorb);
        assert_eq!(run(&mut m, t0, secs(100)), ["33s terminated"]);
        assert_eq!(m.handle_response(200, None, t0 + secs(34)), Verdict::Absorb);
    }

    #[test]
    fn transport_error_informs_tu_and_terminates() {
        let (mut m, t0) = invite(Reliability::Reliable, TimerConfig::default());
        m.handle_transport_error(t0 + ms(1));
        assert_eq!(drain(&mut m), ["transport error", "terminated"]);
        m.handle_transport_error(t0 + ms(2));
        assert_eq!((m.poll_output(), m.poll_timeout()), (None, None));
    }
}
