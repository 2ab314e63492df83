//! `SqlStore`: call records in PostgreSQL or SQLite. Both run the same SQL through sqlx's `Any`
//! driver. It is written with `$n` placeholders numbered in order of first use, which both
//! databases accept, and with only types both share (BIGINT, TEXT, BOOLEAN). Migrations are per
//! backend.

use super::record::{CallDirection, CallRecord, CallStatus, HangupSide};
use super::{CallStore, RecordFilter, StoreError};
use async_trait::async_trait;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, AssertSqlSafe, Row};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

pub struct SqlStore {
    pool: AnyPool,
    backend: Backend,
    /// Migrations ran in this process (they run before the first query, so a database that is
    /// down at start is migrated when it comes up).
    migrated: tokio::sync::OnceCell<()>,
}

const COLUMNS: [&str; 34] = [
    "id", "direction", "status", "profile", "browser_user", "browser_device", "sip_call_ids", "from_uri", "from_name", "to_uri",
    "to_name", "started_at", "ringing_at", "answered_at", "ended_at", "duration_ms", "billable_secs", "hangup_sip_code",
    "hangup_reason", "hangup_q850", "hangup_side", "sip_codec", "browser_codec", "transcoded", "dtmf_mode", "sip_remote",
    "browser_remote", "ice_candidate_type", "sip_user_agent", "browser_user_agent", "quality", "events", "sip_messages", "revision",
];

/// The largest page a list returns.
pub const MAX_PAGE: u32 = 500;

fn db_error(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_) => StoreError::Unavailable(e.to_string()),
        other => StoreError::Database(other.to_string()),
    }
}

impl SqlStore {
    /// `postgres://…` or `sqlite://PATH` (created if missing). Connects now, so a bad URL or an
    /// unreachable database shows at once.
    pub async fn connect(url: &str) -> Result<SqlStore, StoreError> {
        let store = SqlStore::connect_lazy(url)?;
        drop(store.pool.acquire().await.map_err(db_error)?);
        Ok(store)
    }

    /// Like `connect`, but the first connection is made when first needed: the gateway starts
    /// while its database is down, and records wait in the spool.
    pub fn connect_lazy(url: &str) -> Result<SqlStore, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(StoreError::Database(format!("unsupported database URL scheme in `{}`", url.split(':').next().unwrap_or(""))));
        };
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' }),
            _ => url.to_string(),
        };
        let pool = AnyPoolOptions::new()
            // SQLite allows one writer; more connections only queue on its lock.
            .max_connections(if backend == Backend::Sqlite { 1 } else { 8 })
            .acquire_timeout(Duration::from_secs(3))
            .connect_lazy(&url)
            .map_err(db_error)?;
        Ok(SqlStore { pool, backend, migrated: tokio::sync::OnceCell::new() })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.run_migrations().await?;
        let _ = self.migrated.set(());
        Ok(())
    }

    async fn ready(&self) -> Result<(), StoreError> {
        self.migrated.get_or_try_init(|| self.run_migrations()).await.map(|_| ())
    }

    async fn run_migrations(&self) -> Result<(), StoreError> {
        let result = match self.backend {
            Backend::Postgres => sqlx::migrate!("migrations/postgres").run(&self.pool).await,
            Backend::Sqlite => {
                // Write-ahead logging: a commit appends to one log and syncs it once, where the
                // default rollback journal creates, syncs and deletes a file besides syncing
                // the database; and API reads no longer wait on a record being written. The
                // mode is kept in the database file.
                sqlx::query("PRAGMA journal_mode = WAL").execute(&self.pool).await.map_err(db_error)?;
                sqlx::migrate!("migrations/sqlite").run(&self.pool).await
            }
        };
        result.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(inner) => db_error(inner),
            other => StoreError::Migration(other.to_string()),
        })
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "[]".into())
}

fn upsert_sql() -> String {
    let placeholders: Vec<String> = (1..=COLUMNS.len()).map(|i| format!("${i}")).collect();
    let updates: Vec<String> = COLUMNS.iter().skip(1).map(|c| format!("{c} = excluded.{c}")).collect();
    format!(
        "INSERT INTO call_records ({}) VALUES ({}) ON CONFLICT (id) DO UPDATE SET {} WHERE call_records.revision <= excluded.revision",
        COLUMNS.join(", "),
        placeholders.join(", "),
        updates.join(", ")
    )
}

fn record_from_row(row: &AnyRow) -> Result<CallRecord, StoreError> {
    let corrupt = |e: sqlx::Error| StoreError::Corrupt(e.to_string());
    let text = |name: &str| row.try_get::<String, _>(name).map_err(corrupt);
    let opt_text = |name: &str| row.try_get::<Option<String>, _>(name).map_err(corrupt);
    let opt_i64 = |name: &str| row.try_get::<Option<i64>, _>(name).map_err(corrupt);
    let parse_json = |name: &str| -> Result<serde_json::Value, StoreError> {
        serde_json::from_str(&text(name)?).map_err(|e| StoreError::Corrupt(format!("{name}: {e}")))
    };
    let direction = text("direction")?;
    let status = text("status")?;
    Ok(CallRecord {
        id: text("id")?,
        direction: CallDirection::parse(&direction).ok_or_else(|| StoreError::Corrupt(format!("direction `{direction}`")))?,
        status: CallStatus::parse(&status).ok_or_else(|| StoreError::Corrupt(format!("status `{status}`")))?,
        profile: opt_text("profile")?,
        browser_user: opt_text("browser_user")?,
        browser_device: opt_text("browser_device")?,
        sip_call_ids: text("sip_call_ids")?.split(' ').filter(|s| !s.is_empty()).map(str::to_string).collect(),
        from_uri: text("from_uri")?,
        from_name: opt_text("from_name")?,
        to_uri: text("to_uri")?,
        to_name: opt_text("to_name")?,
        started_at: row.try_get::<i64, _>("started_at").map_err(corrupt)?,
        ringing_at: opt_i64("ringing_at")?,
        answered_at: opt_i64("answered_at")?,
        ended_at: opt_i64("ended_at")?,
        duration_ms: opt_i64("duration_ms")?,
        billable_secs: opt_i64("billable_secs")?,
        hangup_sip_code: opt_i64("hangup_sip_code")?.and_then(|v| u16::try_from(v).ok()),
        hangup_reason: opt_text("hangup_reason")?,
        hangup_q850: opt_i64("hangup_q850")?.and_then(|v| u16::try_from(v).ok()),
        hangup_side: opt_text("hangup_side")?.and_then(|s| HangupSide::parse(&s)),
        sip_codec: opt_text("sip_codec")?,
        browser_codec: opt_text("browser_codec")?,
        // SQLite keeps booleans as integers.
        transcoded: row.try_get::<bool, _>("transcoded").or_else(|_| row.try_get::<i64, _>("transcoded").map(|v| v != 0)).map_err(corrupt)?,
        dtmf_mode: opt_text("dtmf_mode")?,
        sip_remote: opt_text("sip_remote")?,
        browser_remote: opt_text("browser_remote")?,
        ice_candidate_type: opt_text("ice_candidate_type")?,
        sip_user_agent: opt_text("sip_user_agent")?,
        browser_user_agent: opt_text("browser_user_agent")?,
        quality: serde_json::from_value(parse_json("quality")?).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        events: serde_json::from_value(parse_json("events")?).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        sip_messages: serde_json::from_value(parse_json("sip_messages")?).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        revision: row.try_get::<i64, _>("revision").map_err(corrupt)?,
    })
}

/// A value bound into a list query, in placeholder order.
enum Bind {
    Int(i64),
    Text(String),
    Bool(bool),
}

/// The WHERE clause and binds of a filter; placeholders continue from `$1`. PostgreSQL searches
/// one trigram-indexed column; SQLite (the small embedded default) scans the fields.
fn filter_sql(filter: &RecordFilter, backend: Backend) -> (String, Vec<Bind>) {
    let mut clauses: Vec<String> = Vec::new();
    let mut binds: Vec<Bind> = Vec::new();
    let next = |bind: Bind, binds: &mut Vec<Bind>| {
        binds.push(bind);
        format!("${}", binds.len())
    };
    if let Some(from) = filter.from {
        clauses.push(format!("started_at >= {}", next(Bind::Int(from), &mut binds)));
    }
    if let Some(to) = filter.to {
        clauses.push(format!("started_at < {}", next(Bind::Int(to), &mut binds)));
    }
    if let Some(text) = filter.text.as_deref().filter(|t| !t.is_empty()) {
        let escaped: String = text.to_lowercase().chars().flat_map(|c| if "%_\\".contains(c) { vec!['\\', c] } else { vec![c] }).collect();
        let p = next(Bind::Text(format!("%{escaped}%")), &mut binds);
        let like = |col: &str| format!("LOWER(COALESCE({col}, '')) LIKE {p} ESCAPE '\\'");
        clauses.push(match backend {
            Backend::Postgres => format!("search_text LIKE {p} ESCAPE '\\'"),
            Backend::Sqlite => format!("({} OR {} OR {} OR {} OR {})", like("from_uri"), like("to_uri"), like("from_name"), like("to_name"), like("browser_user")),
        });
    }
    if let Some(direction) = filter.direction {
        clauses.push(format!("direction = {}", next(Bind::Text(direction.as_str().into()), &mut binds)));
    }
    if let Some(status) = filter.status {
        clauses.push(format!("status = {}", next(Bind::Text(status.as_str().into()), &mut binds)));
    }
    if let Some(profile) = &filter.profile {
        clauses.push(format!("profile = {}", next(Bind::Text(profile.clone()), &mut binds)));
    }
    if let Some(min) = filter.min_duration_ms {
        clauses.push(format!("duration_ms >= {}", next(Bind::Int(min), &mut binds)));
    }
    if let Some(transcoded) = filter.transcoded {
        clauses.push(format!("transcoded = {}", next(Bind::Bool(transcoded), &mut binds)));
    }
    if let Some((started_at, id)) = &filter.after {
        let s = next(Bind::Int(*started_at), &mut binds);
        let i = next(Bind::Text(id.clone()), &mut binds);
        clauses.push(format!("(started_at < {s} OR (started_at = {s} AND id < {i}))"));
    }
    let sql = if clauses.is_empty() { String::new() } else { format!(" WHERE {}", clauses.join(" AND ")) };
    (sql, binds)
}

/// The upsert of one record, bound.
fn upsert_query(r: &CallRecord) -> sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments> {
    sqlx::query(AssertSqlSafe(upsert_sql()))
        .bind(r.id.clone())
        .bind(r.direction.as_str())
        .bind(r.status.as_str())
        .bind(r.profile.clone())
        .bind(r.browser_user.clone())
        .bind(r.browser_device.clone())
        .bind(r.sip_call_ids.join(" "))
        .bind(r.from_uri.clone())
        .bind(r.from_name.clone())
        .bind(r.to_uri.clone())
        .bind(r.to_name.clone())
        .bind(r.started_at)
        .bind(r.ringing_at)
        .bind(r.answered_at)
        .bind(r.ended_at)
        .bind(r.duration_ms)
        .bind(r.billable_secs)
        .bind(r.hangup_sip_code.map(i64::from))
        .bind(r.hangup_reason.clone())
        .bind(r.hangup_q850.map(i64::from))
        .bind(r.hangup_side.map(|s| s.as_str().to_string()))
        .bind(r.sip_codec.clone())
        .bind(r.browser_codec.clone())
        .bind(r.transcoded)
        .bind(r.dtmf_mode.clone())
        .bind(r.sip_remote.clone())
        .bind(r.browser_remote.clone())
        .bind(r.ice_candidate_type.clone())
        .bind(r.sip_user_agent.clone())
        .bind(r.browser_user_agent.clone())
        .bind(json(&r.quality))
        .bind(json(&r.events))
        .bind(json(&r.sip_messages))
        .bind(r.revision)
}

#[async_trait]
impl CallStore for SqlStore {
    async fn upsert(&self, r: &CallRecord) -> Result<(), StoreError> {
        self.upsert_all(std::slice::from_ref(r)).await
    }

    async fn upsert_all(&self, records: &[CallRecord]) -> Result<(), StoreError> {
        self.ready().await?;
        // One transaction for the batch: one commit (one sync of the journal) however many
        // records a burst of calls left waiting.
        let mut transaction = self.pool.begin().await.map_err(db_error)?;
        for r in records {
            upsert_query(r).execute(&mut *transaction).await.map_err(db_error)?;
        }
        transaction.commit().await.map_err(db_error)
    }

    async fn get(&self, id: &str) -> Result<Option<CallRecord>, StoreError> {
        self.ready().await?;
        let row = sqlx::query("SELECT * FROM call_records WHERE id = $1").bind(id.to_string()).fetch_optional(&self.pool).await.map_err(db_error)?;
        row.as_ref().map(record_from_row).transpose()
    }

    async fn list(&self, filter: &RecordFilter) -> Result<Vec<CallRecord>, StoreError> {
        self.ready().await?;
        let (clause, binds) = filter_sql(filter, self.backend);
        let limit = i64::from(filter.limit.clamp(1, MAX_PAGE));
        let sql = format!("SELECT * FROM call_records{clause} ORDER BY started_at DESC, id DESC LIMIT ${}", binds.len() + 1);
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for bind in binds {
            query = match bind {
                Bind::Int(v) => query.bind(v),
                Bind::Text(v) => query.bind(v),
                Bind::Bool(v) => query.bind(v),
            };
        }
        let rows = query.bind(limit).fetch_all(&self.pool).await.map_err(db_error)?;
        rows.iter().map(record_from_row).collect()
    }

    async fn count(&self) -> Result<u64, StoreError> {
        self.ready().await?;
        let row = sqlx::query("SELECT COUNT(*) AS n FROM call_records").fetch_one(&self.pool).await.map_err(db_error)?;
        Ok(u64::try_from(row.try_get::<i64, _>("n").map_err(db_error)?).unwrap_or(0))
    }
}
