//! Graceful drain (SIGTERM, `sipbridge drain`, `POST /api/v1/drain`): new calls are refused at
//! once, calls in progress carry on until `[calls] drain_secs`, and then every call still up is
//! ended properly (BYE, CANCEL or a final answer to the SIP side, `hangup {reason: shutdown}` to
//! browsers) and its record written before the process exits.

use super::limits::CallCounter;
use std::time::Duration;
use tokio::sync::watch;

/// Where the gateway is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainPhase {
    /// Taking calls.
    Running,
    /// Refusing new calls; calls in progress continue.
    Draining,
    /// Every call still up ends now.
    Ending,
}

/// The one switch every call and the HTTP side look at. Phases only move forward.
pub struct Drain {
    phase: watch::Sender<DrainPhase>,
}

impl Default for Drain {
    fn default() -> Self {
        Drain { phase: watch::Sender::new(DrainPhase::Running) }
    }
}

impl Drain {
    pub fn phase(&self) -> DrainPhase {
        *self.phase.borrow()
    }

    /// New calls are refused from now on; false when a drain had already begun.
    pub fn begin(&self) -> bool {
        self.phase.send_if_modified(|phase| {
            let begins = *phase == DrainPhase::Running;
            if begins {
                *phase = DrainPhase::Draining;
            }
            begins
        })
    }

    /// Every call still up ends now.
    pub fn end_calls(&self) {
        self.phase.send_if_modified(|phase| {
            let moves = *phase != DrainPhase::Ending;
            *phase = DrainPhase::Ending;
            moves
        });
    }

    /// Whether a new call may start.
    pub fn accepting(&self) -> bool {
        self.phase() == DrainPhase::Running
    }

    pub fn watch(&self) -> DrainWatch {
        DrainWatch(self.phase.subscribe())
    }

    /// Completes once a drain has begun.
    pub async fn begun(&self) {
        let mut watch = self.phase.subscribe();
        let _ = watch.wait_for(|phase| *phase != DrainPhase::Running).await;
    }
}

/// A call's view of the drain: it completes `ending()` when the call must end.
pub struct DrainWatch(watch::Receiver<DrainPhase>);

impl DrainWatch {
    /// Completes when calls must end; never before. Cancel-safe, for `select!` loops.
    pub async fn ending(&mut self) {
        if self.0.wait_for(|phase| *phase == DrainPhase::Ending).await.is_err() {
            // The gateway dropped its switch: it is stopping anyway.
            return;
        }
    }
}

impl DrainWatch {
    /// The next phase the gateway moves to; pending for ever once there is none. Cancel-safe.
    pub async fn next_phase(&mut self) -> DrainPhase {
        if self.0.changed().await.is_err() {
            return std::future::pending().await;
        }
        *self.0.borrow_and_update()
    }
}

/// What the process does between the first stop request and exit: wait for calls to end (up to
/// `drain_for`, or until a second request), end the rest, and wait for them to write their
/// records. Returns how many calls were still up when their end was asked for.
pub async fn run_drain(drain: &Drain, drain_for: Duration, calls: &CallCounter, second_request: impl std::future::Future<Output = ()>) -> usize {
    tracing::info!(calls = calls.active(), drain_secs = drain_for.as_secs(), "draining: new calls are refused");
    tokio::select! {
        () = calls.idle() => {}
        () = tokio::time::sleep(drain_for) => {}
        () = second_request => tracing::info!("second stop request: ending every call now"),
    }
    let left = calls.active();
    if left > 0 {
        tracing::info!(calls = left, "ending the calls still up");
    }
    drain.end_calls();
    // Ending a call sends its last SIP message and writes its record; bounded, so a stuck call
    // cannot hold the process.
    if tokio::time::timeout(ENDING_GRACE, calls.idle()).await.is_err() {
        tracing::warn!(calls = calls.active(), "calls did not end in time");
    }
    left
}

/// How long ended calls get to finish their last exchange and write their records.
pub const ENDING_GRACE: Duration = Duration::from_secs(4);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_only_move_forward() {
        let drain = Drain::default();
        assert!(drain.accepting());
        assert!(drain.begin());
        assert!(!drain.begin(), "a second begin changes nothing");
        assert_eq!(drain.phase(), DrainPhase::Draining);
        assert!(!drain.accepting());
        drain.end_calls();
        assert!(!drain.begin(), "ending never goes back to draining");
        assert_eq!(drain.phase(), DrainPhase::Ending);
    }
}
