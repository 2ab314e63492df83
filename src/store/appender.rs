//! The recorder's appender: moves writes from the calls' queue into the spool. When the spool
//! cannot be written (a full disk), the writes wait in memory, in order and bounded, and are
//! tried again every second; the gateway says so once a minute, in /metrics and in /readyz, and
//! says when the spool is writable again. No write is lost unless the memory bound is reached.

use super::record::CallRecord;
use super::spool::Spool;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Notify};

/// How often a failing spool is tried again.
const RETRY: Duration = Duration::from_secs(1);
/// At most one error line per this long while the spool stays unwritable.
const LOG_EVERY: Duration = Duration::from_secs(60);
/// Writes held in memory while the spool cannot take them; beyond it the oldest is dropped.
const MAX_BACKLOG: usize = 20_000;

/// Whether the spool can be written, for /metrics and /readyz.
#[derive(Default)]
pub struct SpoolHealth {
    failing: AtomicBool,
    /// Writes held in memory because the spool refused them.
    backlog: AtomicUsize,
    errors: AtomicU64,
    dropped: AtomicU64,
    last_logged: Mutex<Option<Instant>>,
}

impl SpoolHealth {
    pub fn failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }

    pub fn backlog(&self) -> usize {
        self.backlog.load(Ordering::Relaxed)
    }

    /// Failed spool operations (appends and offset updates) since start.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Writes dropped because the memory backlog was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Counts a failure and logs it, at most once per `LOG_EVERY`.
    pub(super) fn failed(&self, what: &str, error: &dyn std::fmt::Display) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut last = self.last_logged.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
            *last = Some(Instant::now());
            let held = self.backlog();
            tracing::error!(%error, held_in_memory = held, "{what}: call records wait in memory until the spool can be written (is its disk full?); next report in a minute");
        }
    }

    fn set_failing(&self, failing: bool, held: usize) {
        let was = self.failing.swap(failing, Ordering::Relaxed);
        if was && !failing {
            *self.last_logged.lock().unwrap_or_else(|p| p.into_inner()) = None;
            tracing::info!(written = held, "the call record spool is writable again; the records held in memory are in it");
        }
    }
}

/// What the appender shares with the recorder's handle and flusher.
pub(super) struct Appender {
    pub spool: Arc<Mutex<Spool>>,
    pub depth: Arc<AtomicUsize>,
    pub queued: Arc<AtomicUsize>,
    pub progress: Arc<Notify>,
    /// Wakes the flusher.
    pub wake: Arc<Notify>,
    pub health: Arc<SpoolHealth>,
}

impl Appender {
    pub async fn run(self, mut incoming: mpsc::UnboundedReceiver<CallRecord>) {
        let mut backlog: VecDeque<CallRecord> = VecDeque::new();
        let mut closed = false;
        loop {
            if backlog.is_empty() {
                match incoming.recv().await {
                    Some(record) => self.hold(&mut backlog, record),
                    None => return,
                }
            } else if closed {
                tokio::time::sleep(RETRY).await;
            } else {
                tokio::select! {
                    next = incoming.recv() => match next {
                        Some(record) => self.hold(&mut backlog, record),
                        None => closed = true,
                    },
                    () = tokio::time::sleep(RETRY) => {}
                }
            }
            // Whatever else has queued goes in the same batch: one blocking hop for a burst.
            while let Ok(record) = incoming.try_recv() {
                self.hold(&mut backlog, record);
            }
            self.append(&mut backlog).await;
        }
    }

    /// Adds a write to the backlog; a newer write of a call already waiting replaces it there.
    fn hold(&self, backlog: &mut VecDeque<CallRecord>, record: CallRecord) {
        if let Some(waiting) = backlog.iter_mut().find(|r| r.id == record.id) {
            *waiting = record;
            self.settled(1);
            return;
        }
        if backlog.len() >= MAX_BACKLOG {
            backlog.pop_front();
            self.settled(1);
            self.health.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::error!("a call record write was dropped: the spool cannot be written and {MAX_BACKLOG} writes already wait in memory");
        }
        backlog.push_back(record);
    }

    /// `n` writes no longer wait to reach the spool.
    fn settled(&self, n: usize) {
        self.queued.fetch_sub(n, Ordering::Relaxed);
    }

    /// Appends the backlog in order, off the async workers, all of it or (on failure) none.
    async fn append(&self, backlog: &mut VecDeque<CallRecord>) {
        let batch: Vec<CallRecord> = backlog.drain(..).collect();
        let spool = Arc::clone(&self.spool);
        let appended = tokio::task::spawn_blocking(move || {
            let mut spool = spool.lock().unwrap_or_else(|p| p.into_inner());
            // All or none, with one sync for the burst.
            let (done, error) = match spool.append_all(&batch) {
                Ok(()) => (batch.len(), None),
                Err(e) => (0, Some(e.to_string())),
            };
            let depth = spool.depth();
            drop(spool);
            (batch, done, depth, error)
        })
        .await;
        let (batch, done, depth, error) = match appended {
            Ok(result) => result,
            Err(e) => {
                tracing::error!(error = %e, "call record spool task failed");
                return;
            }
        };
        self.depth.store(depth, Ordering::Relaxed);
        backlog.extend(batch.into_iter().skip(done));
        self.health.backlog.store(backlog.len(), Ordering::Relaxed);
        self.settled(done);
        match error {
            Some(error) => {
                self.health.set_failing(true, 0);
                self.health.failed("cannot write the call record spool", &error);
            }
            None => self.health.set_failing(false, done),
        }
        self.progress.notify_waiters();
        self.wake.notify_one();
    }
}
