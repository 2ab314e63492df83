//! Non-INVITE server transaction: RFC 3261 §17.2.2 (Figure 8).
//!
//! The server never retransmits on its own here: the client's Timer E does the
//! driving, and each request retransmission is answered with the last response.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;

use super::timers::{earliest, first_due, Oneshot};
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
    J,
}

#[derive(Debug)]
pub struct ServerNonInvite {
    state: State,
    reliability: Reliability,
    config: TimerConfig,
    last_response: Option<Bytes>,
    timer_j: Oneshot,
    outputs: VecDeque<Output>,
}

impl ServerNonInvite {
    /// Starts in Trying; nothing is sent until the TU responds.
    pub fn new(reliability: Reliability, config: TimerConfig, _now: Instant) -> Self {
        Self {
            state: State::Trying,
            reliability,
            config,
            last_response: None,
            timer_j: Oneshot::default(),
            outputs: VecDeque::new(),
        }
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
        while let Some(Timer::J) = first_due(now, &self.timers()) {
            self.terminate();
        }
    }

    /// Sends a response built by the TU; `status` picks the transition.
    pub fn send_response(&mut self, response: Bytes, status: u16, now: Instant) {
        match (self.state, status) {
            (State::Trying | State::Proceeding, 100..=199) => {
                self.state = State::Proceeding;
                self.transmit(response);
            }
            (State::Trying | State::Proceeding, 200..=699) => {
                self.state = State::Completed;
                self.transmit(response);
                let timer_j = self.config.timer_j(self.reliability);
                if timer_j.is_zero() {
                    self.terminate();
                } else {
                    // Keep answering retransmitted requests until the client's Timer F
                    // has surely expired.
                    self.timer_j.arm(now, timer_j);
                }
            }
            // §17.2.2: any later final from the TU is discarded.
            _ => {}
        }
    }

    /// Shows the machine a retransmission of the request that created it.
    pub fn handle_request_retransmission(&mut self, _now: Instant) -> Verdict {
        if matches!(self.state, State::Proceeding | State::Completed) {
            if let Some(response) = &self.last_response {
                self.outputs.push_back(Output::Transmit(response.clone()));
            }
        }
        // In Trying the TU is still working on it; there is nothing to resend yet.
        Verdict::Absorb
    }

    /// §17.2.4: the TU hears about it and the transaction is over.
    pub fn handle_transport_error(&mut self, _now: Instant) {
        if self.state != State::Terminated {
            self.outputs.push_back(Output::TransportError);
            self.terminate();
        }
    }

    fn transmit(&mut self, response: Bytes) {
        self.last_response = Some(response.clone());
        self.outputs.push_back(Output::Transmit(response));
    }

    fn terminate(&mut self) {
        self.state = State::Terminated;
        self.timer_j.stop();
        self.outputs.push_back(Output::Terminated);
    }

    fn timers(&self) -> [(Timer, Option<Instant>); 1] {
        [(Timer::J, self.timer_j.deadline())]
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{drain, ms, run, secs};
    use super::*;

    fn options(reliability: Reliability) -> (ServerNonInvite, Instant) {
        let t0 = Instant::now();
        let m = ServerNonInvite::new(reliability, TimerConfig::default(), t0);
        (m, t0)
    }

    fn respond(m: &mut ServerNonInvite, at: Instant, status: u16) {
        m.send_response(Bytes::from(status.to_string()), status, at);
    }

    #[test]
    fn trying_absorbs_retransmissions_silently() {
        let (mut m, t0) = options(Reliability::Unreliable);
        assert_eq!(
            m.handle_request_retransmission(t0 + ms(500)),
            Verdict::Absorb
        );
        assert_eq!(drain(&mut m), Vec::<String>::new());
        assert_eq!(m.state(), State::Trying);
    }

    #[test]
    fn proceeding_and_completed_resend_the_last_response_until_timer_j() {
        let (mut m, t0) = options(Reliability::Unreliable);
        respond(&mut m, t0 + ms(100), 100);
        assert_eq!(m.state(), State::Proceeding);
        assert_eq!(
            m.handle_request_retransmission(t0 + ms(500)),
            Verdict::Absorb
        );
        assert_eq!(drain(&mut m), ["tx 100", "tx 100"]);

        respond(&mut m, t0 + secs(1), 200);
        assert_eq!(m.state(), State::Completed);
        respond(&mut m, t0 + secs(1), 500);
        assert_eq!(
            m.handle_request_retransmission(t0 + ms(1500)),
            Verdict::Absorb
        );
        assert_eq!(drain(&mut m), ["tx 200", "tx 200"]);
        assert_eq!(run(&mut m, t0, secs(100)), ["33s terminated"]);
        assert_eq!(
            m.handle_request_retransmission(t0 + secs(34)),
            Verdict::Absorb
        );
        assert_eq!(drain(&mut m), Vec::<String>::new());
    }

    #[test]
    fn reliable_terminates_right_after_the_final() {
        let (mut m, t0) = options(Reliability::Reliable);
        respond(&mut m, t0 + ms(10), 200);
        assert_eq!(drain(&mut m), ["tx 200", "terminated"]);
        assert_eq!(m.poll_timeout(), None);
    }

    #[test]
    fn transport_error_informs_tu_and_terminates() {
        let (mut m, t0) = options(Reliability::Unreliable);
        respond(&mut m, t0, 200);
        m.handle_transport_error(t0 + ms(1));
        assert_eq!(drain(&mut m), ["tx 200", "transport error", "terminated"]);
        assert_eq!(m.poll_timeout(), None);
    }
}
