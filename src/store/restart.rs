//! Calls a previous run of the gateway left open (it was killed, or the machine lost power, with
//! calls up) are closed when it starts again: answered ones stay answered, the others failed,
//! ended by the gateway with the reason `gateway_restart`. They end at the restart, the moment
//! the gateway learned of their end. Each close is an ordinary write of the same record (a newer
//! revision), so the database never holds a call twice.

use super::record::{CallRecord, CallStatus, HangupSide};
use super::recorder::{with_spool, RecorderHandle};
use super::spool::{LeftOpen, Spool};
use super::CallStore;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The reason of a call closed after a restart (the first word is what operators filter on).
pub const GATEWAY_RESTART: &str = "gateway_restart: the gateway stopped while the call was in progress";

const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(15);

/// Closes `record`, left open by a previous run, at `at` (Unix milliseconds).
pub fn close_after_restart(record: &mut CallRecord, at: i64) {
    let status = if record.answered_at.is_some() { CallStatus::Answered } else { CallStatus::Failed };
    record.finish(at.max(record.started_at), status, HangupSide::Gateway, GATEWAY_RESTART, None);
}

pub(super) async fn close_left_open(left_open: Vec<LeftOpen>, recorder: RecorderHandle, spool: Arc<Mutex<Spool>>, store: Arc<dyn CallStore>) {
    let restarted_at = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    let (mut closed, mut already_closed) = (0usize, 0usize);
    for left in left_open {
        // Not in the spool any more: then it reached the database before the spool started over.
        let last = match left.last_write {
            Some(record) => Some(record),
            None => stored(store.as_ref(), &left.id).await,
        };
        match last.filter(|r| r.ended_at.is_none()) {
            Some(mut record) => {
                close_after_restart(&mut record, restarted_at);
                tracing::info!(call_id = %record.id, status = record.status.as_str(), "call left in progress by the previous run closed");
                recorder.write(&record);
                closed += 1;
            }
            None => {
                let id = left.id;
                with_spool(&spool, move |spool| spool.forget_open(&id)).await;
                already_closed += 1;
            }
        }
    }
    tracing::warn!(closed, already_closed, "calls left in progress when the gateway last stopped are closed as gateway_restart");
}

/// The stored record `id`, asking again (with backoff) while the database does not answer.
async fn stored(store: &dyn CallStore, id: &str) -> Option<CallRecord> {
    let mut retry = RETRY_FIRST;
    let mut reported = false;
    loop {
        match store.get(id).await {
            Ok(record) => return record,
            Err(e) => {
                if !reported {
                    tracing::warn!(error = %e, "cannot read a call left open by the previous run yet; asking again");
                    reported = true;
                }
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(RETRY_MAX);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::CallDirection;

    #[test]
    fn an_answered_call_stays_answered_and_a_ringing_one_fails() {
        let mut answered = CallRecord::new("a".into(), CallDirection::Inbound, 1_000);
        answered.answered_at = Some(2_000);
        close_after_restart(&mut answered, 10_000);
        assert_eq!((answered.status, answered.hangup_side, answered.billable_secs), (CallStatus::Answered, Some(HangupSide::Gateway), Some(8)));
        assert!(answered.hangup_reason.as_deref().is_some_and(|r| r.starts_with("gateway_restart")));
        let mut ringing = CallRecord::new("r".into(), CallDirection::Outbound, 1_000);
        close_after_restart(&mut ringing, 500);
        assert_eq!((ringing.status, ringing.ended_at, ringing.billable_secs), (CallStatus::Failed, Some(1_000), Some(0)));
    }
}
