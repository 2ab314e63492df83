//! Records that wait for their ladder to settle: a call we ended takes its ladder only once the
//! peer's answer to our BYE, CANCEL or refusal has joined it (`Ladder::settled`), or once that
//! answer is overdue. Nothing sleeps: the endpoint answers a waiting take after each message it
//! handles, and at the deadline.

use crate::sip::ladder::{Ladder, LadderEntry};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How long a record waits for the peer's answer. Over UDP our request is sent again at 0.5, 1.5
/// and 3.5 s (T1 = 500 ms), so an answer later than this is to a peer that is gone.
pub const SETTLE_LIMIT: Duration = Duration::from_secs(4);

struct Waiting {
    call_id: String,
    deadline: Instant,
    reply: oneshot::Sender<Vec<LadderEntry>>,
}

#[derive(Default)]
pub struct LadderTakes {
    waiting: Vec<Waiting>,
}

impl LadderTakes {
    /// Answers at once when nothing is awaited, or waits for the answer, or for `SETTLE_LIMIT`.
    pub fn take(&mut self, ladder: &mut Ladder, call_id: String, settle: bool, reply: oneshot::Sender<Vec<LadderEntry>>, now: Instant) {
        if settle && !ladder.settled(&call_id) {
            self.waiting.push(Waiting { call_id, deadline: now + SETTLE_LIMIT, reply });
        } else {
            let _ = reply.send(ladder.take(&call_id));
        }
    }

    /// Hands over every ladder that has settled or waited long enough.
    pub fn answer_ready(&mut self, ladder: &mut Ladder, now: Instant) {
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiting).into_iter().partition(|w| now >= w.deadline || ladder.settled(&w.call_id));
        self.waiting = waiting;
        for w in ready {
            let _ = w.reply.send(ladder.take(&w.call_id));
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.waiting.iter().map(|w| w.deadline).min()
    }
}
