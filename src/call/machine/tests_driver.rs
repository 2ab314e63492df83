//! `pump` with scripted legs: what a driver task does, without the task.

use super::driver::{pump, CallLeg};
use super::tests::{config, desc, BROWSER, SIP};
use super::*;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

type Shared<T> = Arc<Mutex<T>>;

/// A leg that records what it was told, reports what the test queues, and answers some
/// commands at once the way real legs do.
struct Scripted {
    told: Shared<Vec<LegAction>>,
    inbox: Shared<VecDeque<LegInput>>,
    /// Reports `Answered` again for every `Hangup`: a leg that never settles.
    stubborn: bool,
}

impl CallLeg for Scripted {
    fn execute(&mut self, action: LegAction, _now: Instant) {
        let mut inbox = self.inbox.lock().expect("inbox");
        match &action {
            LegAction::Ring { .. } => inbox.push_back(LegInput::Ringing),
            LegAction::Answer { .. } => inbox.push_back(LegInput::AnswerDelivered),
            LegAction::Hangup { .. } if self.stubborn => inbox.push_back(LegInput::Answered { answer: desc("again"), tag: None }),
            _ => {}
        }
        self.told.lock().expect("told").push(action);
    }

    fn poll_input(&mut self) -> Option<LegInput> {
        self.inbox.lock().expect("inbox").pop_front()
    }
}

struct Legs {
    told: Vec<Shared<Vec<LegAction>>>,
    inboxes: Vec<Shared<VecDeque<LegInput>>>,
    boxed: Vec<Box<dyn CallLeg + Send>>,
}

fn legs(count: usize, stubborn: bool) -> Legs {
    let mut legs = Legs { told: vec![], inboxes: vec![], boxed: vec![] };
    for _ in 0..count {
        let (told, inbox) = (Shared::default(), Shared::default());
        legs.boxed.push(Box::new(Scripted { told: Arc::clone(&told), inbox: Arc::clone(&inbox), stubborn }));
        legs.told.push(told);
        legs.inboxes.push(inbox);
    }
    legs
}

impl Legs {
    fn report(&self, leg: usize, input: LegInput) {
        self.inboxes[leg].lock().expect("inbox").push_back(input);
    }

    fn told(&self, leg: usize) -> Vec<LegAction> {
        std::mem::take(&mut *self.told[leg].lock().expect("told"))
    }
}

#[test]
fn pump_runs_a_whole_inbound_call_through_scripted_legs() {
    let now = Instant::now();
    let mut call = Call::new(config(), SIP, desc("offer"), &[BROWSER, BROWSER], now);
    let mut legs = legs(3, false);
    assert_eq!(pump(&mut call, &mut legs.boxed, now), vec![CallEvent::Ringing { callee: LegId(1) }]);
    assert_eq!(legs.told(0), vec![LegAction::Ringing { early: None }]);

    legs.report(2, LegInput::Answered { answer: desc("answer"), tag: Some(Tag(1)) });
    assert_eq!(pump(&mut call, &mut legs.boxed, now), vec![CallEvent::Answered { callee: LegId(2) }]);
    assert_eq!(legs.told(0), vec![LegAction::Answer { answer: desc("answer") }]);
    assert_eq!(legs.told(1).last(), Some(&LegAction::Cancel { reason: EndReason::AnsweredElsewhere }));

    legs.report(0, LegInput::HungUp { tag: None });
    let events = pump(&mut call, &mut legs.boxed, now);
    assert!(matches!(events.as_slice(), [CallEvent::Ended(CallEnd { answered: true, .. })]), "{events:?}");
    assert_eq!(legs.told(2).last(), Some(&LegAction::Hangup { reason: EndReason::Hangup { by: SIP } }));
}

#[test]
fn pump_stops_when_a_leg_never_settles() {
    let now = Instant::now();
    let mut call = Call::new(config(), BROWSER, desc("offer"), &[SIP], now);
    let mut legs = legs(2, true);
    pump(&mut call, &mut legs.boxed, now);
    legs.report(0, LegInput::HungUp { tag: None });
    legs.report(1, LegInput::Answered { answer: desc("crossed"), tag: None });
    let events = pump(&mut call, &mut legs.boxed, now);
    assert!(call.is_ended());
    assert_eq!(events.iter().filter(|e| matches!(e, CallEvent::Ended(_))).count(), 1);
}
