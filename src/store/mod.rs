//! Call records. The only module that imports sqlx. `CallStore` is the small trait the rest of
//! the gateway sees; `SqlStore` implements it for PostgreSQL and SQLite through sqlx's `Any`
//! driver (one set of queries, one migration folder per backend). Calls never write to the
//! database directly: `Recorder` puts every write in a durable spool first, so no record is lost
//! while the database is down, and flushes the spool in order; calls a killed gateway left open
//! are closed as `gateway_restart` when it starts again.

mod appender;
mod record;
mod recorder;
mod restart;
mod spool;
mod sql;

pub use record::{CallDirection, CallEvent, CallRecord, CallStatus, HangupSide, LegQuality, SipMessage, NO_MEDIA_RECEIVED, NO_MEDIA_SENT};
pub use appender::SpoolHealth;
pub use recorder::{Recorder, RecorderHandle};
pub use restart::{close_after_restart, GATEWAY_RESTART};
pub use spool::{read_pending as read_spool_lines, LeftOpen, Spool, SpoolError};
pub use sql::{Backend, SqlStore};

use async_trait::async_trait;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database unreachable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Database(String),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("stored record is unreadable: {0}")]
    Corrupt(String),
}

/// Which records a list returns, newest first. Every field narrows; `None` does not.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordFilter {
    /// Unix milliseconds, inclusive start and exclusive end of `started_at`.
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// Case-insensitive substring of the from/to URIs, display names or browser user.
    pub text: Option<String>,
    pub direction: Option<CallDirection>,
    pub status: Option<CallStatus>,
    pub profile: Option<String>,
    pub min_duration_ms: Option<i64>,
    pub transcoded: Option<bool>,
    /// Continue after this (started_at, id) of the previous page's last record.
    pub after: Option<(i64, String)>,
    pub limit: u32,
}

#[async_trait]
pub trait CallStore: Send + Sync {
    /// Inserts the record or, if it exists, replaces it unless the stored revision is newer.
    async fn upsert(&self, record: &CallRecord) -> Result<(), StoreError>;
    /// `upsert` of each record in order, all or none (one transaction).
    async fn upsert_all(&self, records: &[CallRecord]) -> Result<(), StoreError>;
    async fn get(&self, id: &str) -> Result<Option<CallRecord>, StoreError>;
    async fn list(&self, filter: &RecordFilter) -> Result<Vec<CallRecord>, StoreError>;
    async fn count(&self) -> Result<u64, StoreError>;
}
