//! The path every call record write takes: into the spool (synced), then, in order, into the
//! store. While the database is unreachable the spool grows and the flusher retries with backoff;
//! a restart picks the spool up where it stopped, and closes the calls it left open
//! (`restart.rs`). A spool that cannot be written holds writes in memory (`appender.rs`).

use super::appender::{Appender, SpoolHealth};
use super::record::CallRecord;
use super::spool::Spool;
use super::CallStore;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, Notify};

const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(15);
/// Writes taken from the spool into one database transaction: what waited while the last
/// commit ran goes in the next, so a burst of calls costs a few commits, not one per write.
const FLUSH_BATCH: usize = 64;

/// How the rest of the gateway writes call records. Cheap to clone; never blocks a call.
#[derive(Clone)]
pub struct RecorderHandle {
    writes: mpsc::UnboundedSender<CallRecord>,
    /// Writes queued but not yet in the spool.
    queued: Arc<AtomicUsize>,
    /// Woken whenever a write reaches the spool or the spool's front reaches the store.
    progress: Arc<Notify>,
    depth: Arc<AtomicUsize>,
    last_revision: Arc<AtomicI64>,
    health: Arc<SpoolHealth>,
}

impl RecorderHandle {
    /// Queues a write of `record` (its start, or its end); a newer write of the same record
    /// replaces an older one in the store.
    pub fn write(&self, record: &CallRecord) {
        let mut record = record.clone();
        record.revision = self.next_revision();
        self.queued.fetch_add(1, Ordering::Relaxed);
        if self.writes.send(record).is_err() {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            tracing::error!("the call record writer has stopped; a record was not written");
        }
    }

    /// Waits, up to `within`, until every write so far is in the spool (durable) and, if the
    /// database answers, in the store. False when the store is behind at the deadline: the
    /// spool keeps those records for the next start.
    pub async fn settle(&self, within: Duration) -> bool {
        let settled = async {
            loop {
                let progress = self.progress.notified();
                tokio::pin!(progress);
                progress.as_mut().enable();
                if self.queued.load(Ordering::Relaxed) == 0 && self.spool_depth() == 0 {
                    return;
                }
                progress.await;
            }
        };
        tokio::time::timeout(within, settled).await.is_ok()
    }

    /// Writes not yet in the spool.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Records in the spool not yet in the database (for /metrics).
    pub fn spool_depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }

    /// Whether the spool can be written, and what waits in memory meanwhile.
    pub fn spool_health(&self) -> &SpoolHealth {
        &self.health
    }

    /// Microseconds since the epoch, strictly increasing in this process: later writes win,
    /// also across restarts.
    fn next_revision(&self) -> i64 {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0);
        let mut last = self.last_revision.load(Ordering::Relaxed);
        loop {
            let next = now.max(last + 1);
            match self.last_revision.compare_exchange(last, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }
}

pub struct Recorder;

impl Recorder {
    /// Starts the appender and the flusher over `spool` and `store`, and closes the calls a
    /// previous run left open.
    pub fn start(mut spool: Spool, store: Arc<dyn CallStore>) -> RecorderHandle {
        let left_open = spool.take_left_open();
        let depth = Arc::new(AtomicUsize::new(spool.depth()));
        let spool = Arc::new(Mutex::new(spool));
        let (writes, incoming) = mpsc::unbounded_channel::<CallRecord>();
        let wake = Arc::new(Notify::new());
        let (queued, progress) = (Arc::new(AtomicUsize::new(0)), Arc::new(Notify::new()));
        let health = Arc::new(SpoolHealth::default());
        let appender = Appender { spool: spool.clone(), depth: depth.clone(), queued: queued.clone(), progress: progress.clone(), wake: wake.clone(), health: health.clone() };
        tokio::spawn(appender.run(incoming));
        tokio::spawn(flush(spool.clone(), store.clone(), depth.clone(), wake, progress.clone(), health.clone()));
        let handle = RecorderHandle { writes, queued, progress, depth, last_revision: Arc::new(AtomicI64::new(0)), health };
        if !left_open.is_empty() {
            tokio::spawn(super::restart::close_left_open(left_open, handle.clone(), spool, store));
        }
        handle
    }
}

/// Runs `work` on the spool off the async workers: moving the spool forward syncs and renames a
/// file, and the appender holds the lock through its own sync, so either would stall every call's
/// signalling task on the same worker thread for as long as the disk takes.
pub(super) async fn with_spool<T: Send + 'static>(spool: &Arc<Mutex<Spool>>, work: impl FnOnce(&mut Spool) -> T + Send + 'static) -> Option<T> {
    let spool = Arc::clone(spool);
    tokio::task::spawn_blocking(move || work(&mut spool.lock().unwrap_or_else(|p| p.into_inner()))).await.ok()
}

async fn flush(spool: Arc<Mutex<Spool>>, store: Arc<dyn CallStore>, depth: Arc<AtomicUsize>, wake: Arc<Notify>, progress: Arc<Notify>, health: Arc<SpoolHealth>) {
    let mut retry = RETRY_FIRST;
    let mut failing = false;
    loop {
        let batch = with_spool(&spool, |spool| spool.front_batch(FLUSH_BATCH)).await.unwrap_or_default();
        if batch.is_empty() {
            wake.notified().await;
            continue;
        }
        match store.upsert_all(&batch).await {
            Ok(()) => {
                let written = batch.len();
                let (acknowledged, waiting) = with_spool(&spool, move |spool| (spool.acknowledge(written), spool.depth())).await.unwrap_or((Ok(()), 0));
                if let Err(e) = acknowledged {
                    health.failed("cannot move the spool forward (the record is written again after a restart)", &e);
                }
                depth.store(waiting, Ordering::Relaxed);
                progress.notify_waiters();
                if failing {
                    tracing::info!(waiting, "the database is back; flushing the spool");
                    failing = false;
                }
                retry = RETRY_FIRST;
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "cannot write call records; keeping them in the spool");
                    failing = true;
                }
                // New writes still wake us, but the retry waits its turn.
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(RETRY_MAX);
            }
        }
    }
}
