//! INVITE server transaction: RFC 3261 §17.2.1 (Figure 7) as amended by RFC 6026 §7.1,
//! which keeps the transaction alive in Accepted after a 2xx so INVITE retransmissions
//! are absorbed and ACKs for the 2xx reach the dialog.
//!
//! The 2xx retransmission of RFC 3261 §13.3.1.4 is a UAS core duty that RFC 6026 keeps
//! out of the transaction; this machine does it anyway so the owner has one timer source.
//! The owner must therefore not retransmit 2xx responses itself.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;

use super::timers::{earliest, first_due, Backoff, Oneshot};
use super::{Output, Reliability, TimerConfig, Verdict};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
    Terminated,
}

#[derive(Clone, Copy, Debug)]
enum Timer {
    G,
    H,
    I,
    /// §13.3.1.4 2xx retransmission; the RFC gives it no letter.
    Retransmit2xx,
    L,
}

#[derive(Debug)]
pub struct ServerInvite {
    state: State,
    reliability: Reliability,
    config: TimerConfig,
    last_response: Option<Bytes>,
    ack_seen: bool,
    timer_g: Backoff,
    timer_h: Oneshot,
    timer_i: Oneshot,
    timer_2xx: Backoff,
    timer_l: Oneshot,
    outputs: VecDeque<Output>,
}

impl ServerInvite {
    /// Starts in Proceeding without sending anything: the owner sends 100 Trying
    /// through [`ServerInvite::send_response`] (§17.2.1).
    pub fn new(reliability: Reliability, config: TimerConfig, _now: Instant) -> Self {
        Self {
            state: State::Proceeding,
            reliability,
            config,
            last_response: None,
            ack_seen: false,
            timer_g: Backoff::default(),
            timer_h: Oneshot::default(),
            timer_i: Oneshot::default(),
            timer_2xx: Backoff::default(),
            timer_l: Oneshot::default(),
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
        while let Some(timer) = first_due(now, &self.timers()) {
            match timer {
                Timer::G => {
                    self.resend_last();
                    self.timer_g.fired(now);
                }
                Timer::Retransmit2xx => {
                    self.resend_last();
                    self.timer_2xx.fired(now);
                }
                Timer::H => {
                    self.outputs.push_back(Output::Timeout);
                    self.terminate();
                }
                Timer::I => self.terminate(),
                Timer::L => {
                    if !self.ack_seen {
                        // §13.3.1.4: the dialog never got confirmed; the TU should end the session.
                        self.outputs.push_back(Output::Timeout);
                    }
                    self.terminate();
                }
            }
        }
    }

    /// Sends a response built by the TU; `status` picks the transition.
    pub fn send_response(&mut self, response: Bytes, status: u16, now: Instant) {
        match (self.state, status) {
            (State::Proceeding, 100..=199) => self.transmit(response),
            (State::Proceeding, 200..=299) => {
                self.transmit(response);
                self.state = State::Accepted;
                self.timer_l.arm(now, self.config.timer_l());
                if self.reliability == Reliability::Unreliable {
                    self.timer_2xx.start(now, self.config.t1, self.config.t2);
                }
            }
            // Each fork-facing 2xx retransmission from the TU goes out and becomes the one repeated.
            (State::Accepted, 200..=299) => self.transmit(response),
            (State::Proceeding, 300..=699) => {
                self.transmit(response);
                self.state = State::Completed;
                if self.reliability == Reliability::Unreliable {
                    self.timer_g.start(now, self.config.t1, self.config.t2);
                }
                self.timer_h.arm(now, self.config.timer_h());
            }
            // A final has already been sent; anything else from the TU is discarded.
            _ => {}
        }
    }

    /// Shows the machine a retransmission of the INVITE that created it.
    pub fn handle_request_retransmission(&mut self, _now: Instant) -> Verdict {
        if matches!(self.state, State::Proceeding | State::Completed) {
            // The client evidently missed our last response.
            self.resend_last();
        }
        // In Accepted the 2xx timer already covers loss (RFC 6026 §7.1).
        Verdict::Absorb
    }

    /// Shows the machine an ACK that matched this transaction.
    pub fn handle_ack(&mut self, now: Instant) -> Verdict {
        match self.state {
            State::Completed => {
                self.state = State::Confirmed;
                self.timer_g.stop();
                self.timer_h.stop();
                let timer_i = self.config.timer_i(self.reliability);
                if timer_i.is_zero() {
                    self.terminate();
                } else {
                    // Absorb the ACK retransmissions that our own G retransmissions triggered.
                    self.timer_i.arm(now, timer_i);
                }
                Verdict::Absorb
            }
            State::Accepted => {
                // An ACK for a 2xx belongs to the dialog, and every copy is passed up.
                self.ack_seen = true;
                self.timer_2xx.stop();
                Verdict::PassUp
            }
            _ => Verdict::Absorb,
        }
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

    fn resend_last(&mut self) {
        if let Some(response) = &self.last_response {
            self.outputs.push_back(Output::Transmit(response.clone()));
        }
    }

    fn terminate(&mut self) {
        self.state = State::Terminated;
        self.timer_g.stop();
        self.timer_h.stop();
        self.timer_i.stop();
        self.timer_2xx.stop();
        self.timer_l.stop();
        self.outputs.push_back(Output::Terminated);
    }

    fn timers(&self) -> [(Timer, Option<Instant>); 5] {
        [
            (Timer::G, self.timer_g.deadline()),
            (Timer::H, self.timer_h.deadline()),
            (Timer::I, self.timer_i.deadline()),
            (Timer::Retransmit2xx, self.timer_2xx.deadline()),
            (Timer::L, self.timer_l.deadline()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{drain, ms, run, secs};
    use super::*;

    fn invite(reliability: Reliability) -> (ServerInvite, Instant) {
        let t0 = Instant::now();
        let mut m = ServerInvite::new(reliability, TimerConfig::default(), t0);
        assert_eq!(drain(&mut m), Vec::<String>::new());
        m.send_response(Bytes::from_static(b"100"), 100, t0);
        assert_eq!(drain(&mut m), ["tx 100"]);
        (m, t0)
    }

    fn respond(m: &mut ServerInvite, t0: Instant, status: u16) {
        m.send_response(Bytes::from(status.to_string()), status, t0);
        assert_eq!(drain(m), [format!("tx {status}")]);
    }

    #[test]
    fn request_retransmission_resends_the_last_provisional() {
        let (mut m, t0) = invite(Reliability::Unreliable);
        assert_eq!(
            m.handle_request_retransmission(t0 + ms(500)),
            Verdict::Absorb
        );
        assert_eq!(drain(&mut m), ["tx 100"]);
        respond(&mut m, t0 + secs(1), 180);
        assert_eq!(
            m.handle_request_retransmission(t0 + secs(2)),
            Verdict::Absorb
        );
        assert_eq!(drain(&mut m), ["tx 180"]);
        assert_eq!(m.poll_timeout(), None, "no timers in Proceeding");
    }

    #[test]
    fn timer_g_caps_at_t2_and_ack_confirms_until_timer_i() {
        let (mut m, t0) = invite(Reliability::Unreliable);
        respond(&mut m, t0, 486);
        assert_eq!(m.state(), State::Completed);
        assert_eq!(
            run(&mut m, t0, secs(12)),
            [
                "500ms tx 486",
                "1.5s tx 486",
                "3.5s tx 486",
                "7.5s tx 486",
                "11.5s tx 486"
            ]
        );
        assert_eq!(
            m.handle_request_retransmission(t0 + secs(12)),
            Verdict::Absorb
        );
        assert_eq!(drain(&mut m), ["tx 486"]);

        assert_eq!(m.handle_ack(t0 + secs(13)), Verdict::Absorb);
        assert_eq!(m.state(), State::Confirmed);
        assert_eq!(m.handle_ack(t0 + secs(14)), Verdict::Absorb);
        assert_eq!(
            m.handle_request_retransmission(t0 + secs(14)),
            Verdict::Absorb
        );
        m.send_response(Bytes::from_static(b"500"), 500, t0 + secs(14));
        assert_eq!(run(&mut m, t0, secs(100)), ["18s terminated"]);
    }

    #[test]
    fn timer_h_times_out_without_ack() {
        let (mut m, t0) = invite(Reliability::Unreliable);
        respond(&mut m, t0, 486);
        let log = run(&mut m, t0, secs(100));
        assert_eq!(
            log[log.len() - 3..],
            ["31.5s tx 486", "32s timeout", "32s terminated"]
        );
    }

    #[test]
    fn reliable_non_2xx_has_no_timer_g_and_ack_terminates_at_once() {
        let (mut m, t0) = invite(Reliability::Reliable);
        respond(&mut m, t0, 404);
        assert_eq!(m.poll_timeout(), Some(t0 + secs(32)), "only Timer H");
        assert_eq!(m.handle_ack(t0 + secs(1)), Verdict::Absorb);
        assert_eq!(drain(&mut m), ["terminated"]);
    }

    #[test]
    fn accepted_retransmits_2xx_until_ack_then_timer_l() {
        let (mut m, t0) = invite(Reliability::Unreliable);
        respond(&mut m, t0, 200);
        assert_eq!(m.state(), State::Accepted);
        assert_eq!(
            run(&mut m, t0, secs(4)),
            ["500ms tx 200", "1.5s tx 200", "3.5s tx 200"]
        );
        assert_eq!(
            m.handle_request_retransmission(t0 + secs(4)),
            Verdict::Absorb
        );
        assert_eq!(drain(&mut m), Vec::<String>::new());

        assert_eq!(m.handle_ack(t0 + secs(5)), Verdict::PassUp);
        assert_eq!(m.handle_ack(t0 + secs(6)), Verdict::PassUp);
        m.send_response(Bytes::from_static(b"486"), 486, t0 + secs(6));
        assert_eq!(run(&mut m, t0, secs(100)), ["32s terminated"]);
    }

    #[test]
    fn no_ack_for_2xx_times_out_at_timer_l() {
        let (mut m, t0) = invite(Reliability::Unreliable);
        respond(&mut m, t0, 200);
        respond(&mut m, t0 + secs(1), 200);
        let log = run(&mut m, t0, secs(100));
        assert_eq!(
            log[log.len() - 3..],
            ["31.5s tx 200", "32s timeout", "32s terminated"]
        );
    }

    #[test]
    fn reliable_2xx_is_not_retransmitted() {
        let (mut m, t0) = invite(Reliability::Reliable);
        respond(&mut m, t0, 200);
        assert_eq!(
            run(&mut m, t0, secs(100)),
            ["32s timeout", "32s terminated"]
        );
    }

    #[test]
    fn transport_error_informs_tu_and_terminates() {
        let (mut m, t0) = invite(Reliability::Unreliable);
        respond(&mut m, t0, 486);
        m.handle_transport_error(t0 + ms(1));
        assert_eq!(drain(&mut m), ["transport error", "terminated"]);
        assert_eq!(m.poll_timeout(), None);
        assert_eq!(m.handle_ack(t0 + ms(2)), Verdict::Absorb);
    }
}
