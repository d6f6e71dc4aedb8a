//! A shared ledger on PostgreSQL. See [`PostgresStorage`].

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio_postgres::NoTls;

use super::{
    Aggregate, CorruptLine, CostRecord, JsonlStorage, LedgerError, RecordStream, ResetReport,
    ResetScope, ScanFilter, ScanItem, Storage,
};
use crate::alert::{latest_per_key, take_if_claimable, DeliveryOwner, OutboxEntry};
use crate::report::{DashboardPass, Group};
use crate::{Mode, Money, Usage};

mod book;
mod rows;
mod schema;

pub use book::PostgresBudgetBook;

use rows::{columns, decode, filter_sql, CopyRow, Params, COLUMNS, COPY_TYPES, UNNEST_TYPES};

/// The rollup's key columns.
const KEYS: &str =
    "hour, provider, model, user_name, team, has_team, mode, cached, unpriced, cost_status";

/// The schema costlayer uses when none is given.
pub const DEFAULT_SCHEMA: &str = "costlayer";

/// How many records one `INSERT` carries at most.
const INSERT_CHUNK: usize = 5_000;
/// From this many records on, a batch goes in by `COPY` rather than one
/// `INSERT ... unnest(...)`.
const COPY_MIN: usize = 64;
/// How many scanned rows travel together through the scan channel.
const SCAN_BATCH: usize = 1_024;
/// Appends between two compactions of the rollup, by default.
const COMPACT_EVERY: u32 = 32;
/// The per-connection staging table of batches that may hold ids already
/// present (created once per connection, emptied at every commit).
const STAGING: &str = "costlayer_incoming";

/// A PostgreSQL failure, with what costlayer was doing.
#[derive(Debug, thiserror::Error)]
#[error("PostgreSQL: cannot {action}: {source}. Check the database URL, that the server is running and that the user may write the schema")]
pub struct PgError {
    action: String,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

pub(crate) fn pg_error(
    action: &str,
    e: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> LedgerError {
    LedgerError::Backend(Box::new(PgError {
        action: action.to_owned(),
        source: e.into(),
    }))
}

/// `name` as a quoted SQL identifier.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Builds a [`PostgresStorage`]. See [`PostgresStorage::builder`].
#[derive(Clone)]
#[must_use]
pub struct PostgresStorageBuilder {
    url: String,
    schema: String,
    user: Option<String>,
    max_connections: usize,
    connect_timeout: Duration,
    compact_every: u32,
}

impl fmt::Debug for PostgresStorageBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password: never print it.
        f.debug_struct("PostgresStorageBuilder")
            .field("schema", &self.schema)
            .field("user", &self.user)
            .field("max_connections", &self.max_connections)
            .field("compact_every", &self.compact_every)
            .finish_non_exhaustive()
    }
}

impl PostgresStorageBuilder {
    /// The schema holding costlayer's tables (created if missing).
    /// Defaults to [`DEFAULT_SCHEMA`], `costlayer`. Several ledgers can
    /// share one database in different schemas.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// Who this process records as: the alerts it marks carry this user,
    /// so resetting the user re-arms them. Defaults to the OS user.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// The most connections the pool opens. Defaults to 8.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// How long to wait for the server when connecting. Defaults to 5 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Every how many appends (single or batched) this process compacts the
    /// dashboard's rollup: folds the pending per-append deltas into the
    /// hourly rollup, right after the append's commit, under a lock that
    /// lets one host at a time do it (a host that finds it taken skips its
    /// turn). Defaults to 32; `0` leaves compaction to the dashboard,
    /// [`PostgresStorage::migrate`] and [`PostgresStorage::compact`].
    pub fn compact_every(mut self, appends: u32) -> Self {
        self.compact_every = appends;
        self
    }

    /// Connects, creates the schema if needed and applies every missing
    /// migration (safe when several processes start at once: an advisory
    /// lock makes them take turns).
    ///
    /// # Errors
    ///
    /// [`LedgerError::Config`] if the URL cannot be parsed or the schema is
    /// newer than this build; [`LedgerError::Backend`] if the server cannot
    /// be reached or the migration fails.
    pub async fn connect(self) -> Result<PostgresStorage, LedgerError> {
        let storage = self.build_lazy()?;
        storage.migrate().await?;
        Ok(storage)
    }

    /// The storage without connecting yet: the URL and schema name are
    /// checked now, the connection and the migrations happen on first use
    /// (any error then comes from that operation). For code that cannot
    /// await while it is set up, such as
    /// [`CostTracker::from_config`](crate::tracker::CostTracker::from_config).
    ///
    /// ```
    /// use costlayer::ledger::PostgresStorage;
    ///
    /// let ledger = PostgresStorage::builder("postgres://costlayer@db.internal/costs")
    ///     .build_lazy()
    ///     .unwrap();
    /// assert_eq!(ledger.location(), "db.internal:5432/costs");
    /// ```
    ///
    /// # Errors
    ///
    /// [`LedgerError::Config`] if the URL cannot be parsed or the schema
    /// name is empty or too long.
    pub fn build_lazy(self) -> Result<PostgresStorage, LedgerError> {
        if self.schema.is_empty() || self.schema.len() > 63 {
            return Err(LedgerError::Config(format!(
                "the PostgreSQL schema name `{}` must be 1 to 63 bytes long",
                self.schema
            )));
        }
        let mut config: tokio_postgres::Config = self.url.parse().map_err(|e| {
            LedgerError::Config(format!(
                "the database URL is not a PostgreSQL URL ({e}): expected \
                 postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
            ))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(self.connect_timeout);
        }
        let location = location(&config);
        let mgr = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(self.max_connections)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(self.connect_timeout))
            .build()
            .map_err(|e| pg_error("build the connection pool", e))?;
        Ok(PostgresStorage {
            inner: Arc::new(Inner {
                pool,
                location,
                user: self.user.unwrap_or_else(whoami::username),
                t: Tables::new(&self.schema),
                schema: self.schema,
                migrated: tokio::sync::OnceCell::new(),
                compact_every: u64::from(self.compact_every),
                appends: AtomicU64::new(0),
            }),
        })
    }
}

/// The qualified table names of one schema.
#[derive(Debug)]
struct Tables {
    records: String,
    alerts: String,
    archives: String,
    records_archive: String,
    alerts_archive: String,
    rollup: String,
    rollup_delta: String,
    outbox: String,
    insert: String,
}

impl Tables {
    fn new(schema: &str) -> Self {
        let s = quote_ident(schema);
        let records = format!("{s}.records");
        let unnest: Vec<String> = UNNEST_TYPES
            .iter()
            .enumerate()
            .map(|(i, t)| format!("${}::{t}", i + 1))
            .collect();
        let insert = format!(
            "INSERT INTO {records} ({COLUMNS}) SELECT * FROM unnest({}) ON CONFLICT (id) DO NOTHING",
            unnest.join(", ")
        );
        Tables {
            alerts: format!("{s}.alerts"),
            archives: format!("{s}.archives"),
            records_archive: format!("{s}.records_archive"),
            alerts_archive: format!("{s}.alerts_archive"),
            rollup: format!("{s}.rollup"),
            rollup_delta: format!("{s}.rollup_delta"),
            outbox: format!("{s}.outbox"),
            records,
            insert,
        }
    }
}

#[derive(Debug)]
struct Inner {
    pool: Pool,
    /// `host:port/database`, for messages (never the password).
    location: String,
    schema: String,
    user: String,
    t: Tables,
    /// Set once the migrations have run in this process.
    migrated: tokio::sync::OnceCell<()>,
    /// Appends between two compactions of the rollup (0: never on appends).
    compact_every: u64,
    /// Appends made through this storage (and its clones).
    appends: AtomicU64,
}

fn location(c: &tokio_postgres::Config) -> String {
    let host = match c.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = c.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}/{}", c.get_dbname().unwrap_or("postgres"))
}

/// The hour ranges `[lo, hi)` (UTC) in which a condition on one of
/// `boundaries` may differ between records of one hour: the hour each falls
/// in, and its neighbour when it is within a second of the hour's edge
/// (timestamps are rounded to microseconds by the server).
fn dirty_hours(boundaries: &[DateTime<Utc>]) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let hour = |t: DateTime<Utc>| {
        let s = t.timestamp().div_euclid(3_600) * 3_600;
        DateTime::from_timestamp(s, 0).unwrap_or(t)
    };
    let second = chrono::Duration::seconds(1);
    let mut out: Vec<(DateTime<Utc>, DateTime<Utc>)> = boundaries
        .iter()
        .map(|&b| {
            let lo = hour(b.checked_sub_signed(second).unwrap_or(b));
            let hi = hour(b.checked_add_signed(second).unwrap_or(b));
            (
                lo,
                hi.checked_add_signed(chrono::Duration::hours(1))
                    .unwrap_or(hi),
            )
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// A binary `COPY` of [`COLUMNS`] into `table`.
fn copy_sql(table: &str) -> String {
    format!("COPY {table} ({COLUMNS}) FROM STDIN (FORMAT binary)")
}

fn entry_json(entry: &OutboxEntry) -> Result<serde_json::Value, LedgerError> {
    serde_json::to_value(entry).map_err(|e| pg_error("encode the alert's delivery state", e))
}

/// An outbox row's entry; an unreadable one is skipped with a warning.
fn parse_entry(key: &str, v: serde_json::Value) -> Option<OutboxEntry> {
    match serde_json::from_value(v) {
        Ok(e) => Some(e),
        Err(e) => {
            tracing::warn!(key, error = %e, "skipping an unreadable row of the alert outbox");
            None
        }
    }
}

/// What [`PostgresStorage::import_jsonl`] moved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ImportReport {
    /// The files read (the legacy `costs.json` first, if any).
    pub files: Vec<PathBuf>,
    /// Good records read.
    pub read: u64,
    /// Records inserted now.
    pub inserted: u64,
    /// Records already in the database (an earlier import), skipped.
    pub duplicates: u64,
    /// Alerts copied into the alert history now (already present: skipped).
    pub alerts: u64,
    /// Corrupt lines skipped.
    pub corrupt: u64,
    /// Where the corrupt lines were copied.
    pub quarantined: Vec<PathBuf>,
}

/// A shared ledger on PostgreSQL: every host of a fleet appends to one
/// table, budgets and dashboards see everyone's spend, and an alert is sent
/// once across every host.
///
/// Cheap to clone: clones share the connection pool.
///
/// # Schema
///
/// All tables live in one schema (default `costlayer`, see
/// [`PostgresStorageBuilder::schema`]), created and migrated on connect by
/// versioned migrations (`schema_migrations`), applied under a PostgreSQL
/// advisory lock so processes starting together take turns.
///
/// | table | what |
/// |---|---|
/// | `records` | one row per [`CostRecord`], primary key `id` (the ULID) |
/// | `alerts` | the alert history, primary key `key` |
/// | `archives` | one row per reset |
/// | `records_archive`, `alerts_archive` | what resets moved, with their `archive_id` |
///
/// # Semantics
///
/// - **Appends are idempotent by record id** (`ON CONFLICT (id) DO
///   NOTHING`): a retried append or a repeated import never duplicates.
///   Small batches are one `INSERT ... SELECT FROM unnest(...)`; from 64
///   records on, one binary `COPY` straight into `records` (through a
///   staging table and `ON CONFLICT` only when an id is already there).
/// - **The dashboard's hourly rollup** is fed by a statement trigger through
///   `rollup_delta` and compacted every
///   [`compact_every`](PostgresStorageBuilder::compact_every) appends, by
///   [`PostgresStorage::compact`], `migrate` and the dashboard, one host at
///   a time.
/// - **Scans** take the same [`ScanFilter`] as every backend, evaluated in
///   SQL, in `(ts, id)` order, streamed.
/// - **Totals and the dashboard are pushed down**: [`Storage::aggregate`]
///   and [`Storage::fold_dashboard`] run `SUM`/`COUNT ... GROUP BY` in the
///   server and read back one row per group, never every record.
/// - **[`Storage::mark_alert`]** inserts the key under its primary key: of
///   any number of hosts racing on one key exactly one gets `true`.
/// - **The alert outbox** (`outbox`, one row per alert key with its
///   [`OutboxEntry`]): [`Storage::claim_alert`] writes the history row and
///   the outbox row in one statement, so one host claims an alert;
///   [`Storage::take_delivery`] takes a pending alert of a dead or expired
///   owner (or a failed one) under a row lock, so one host retries it.
/// - **[`Storage::reset`]** moves the rows into the archive tables in one
///   transaction; nothing is deleted.
///
/// # Example
///
/// ```no_run
/// use costlayer::ledger::{CostRecord, PostgresStorage, ScanFilter, Storage};
/// use costlayer::{Money, Usage};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), costlayer::ledger::LedgerError> {
/// let ledger = PostgresStorage::builder("postgres://costlayer@db.internal/costs")
///     .user("alice")
///     .connect()
///     .await?;
/// let mut rec = CostRecord::new("alice", "openai", "gpt-4o-mini", Usage::new(1_000, 200));
/// rec.nano_usd = Some(Money::from_nanos(270_000));
/// ledger.append(&rec).await?;
/// ledger.append(&rec).await?; // the same id: no duplicate
/// assert_eq!(ledger.aggregate(&ScanFilter::default()).await?.calls, 1);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PostgresStorage {
    inner: Arc<Inner>,
}

impl PostgresStorage {
    /// A builder for a ledger in the database at `url`
    /// (`postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`).
    pub fn builder(url: impl Into<String>) -> PostgresStorageBuilder {
        PostgresStorageBuilder {
            url: url.into(),
            schema: DEFAULT_SCHEMA.to_owned(),
            user: None,
            max_connections: 8,
            connect_timeout: Duration::from_secs(5),
            compact_every: COMPACT_EVERY,
        }
    }

    /// Connects to `url` with the defaults; the same as
    /// `PostgresStorage::builder(url).connect()`.
    ///
    /// # Errors
    ///
    /// As [`PostgresStorageBuilder::connect`].
    pub async fn connect(url: impl Into<String>) -> Result<Self, LedgerError> {
        Self::builder(url).connect().await
    }

    /// The schema holding the tables.
    pub fn schema(&self) -> &str {
        &self.inner.schema
    }

    /// Where the database is (`host:port/database`, never the password).
    pub fn location(&self) -> &str {
        &self.inner.location
    }

    /// The user this storage records alerts as.
    pub fn user(&self) -> &str {
        &self.inner.user
    }

    /// Applies every missing migration (done by `connect` already); returns
    /// the versions applied now.
    ///
    /// # Errors
    ///
    /// As [`PostgresStorageBuilder::connect`].
    ///
    /// Then compacts the dashboard's rollup (see [`PostgresStorage::compact`]),
    /// so `cost-tracker migrate` is also the compaction step a deployment can
    /// schedule.
    pub async fn migrate(&self) -> Result<Vec<i32>, LedgerError> {
        let mut client = self.connection().await?;
        let done = schema::migrate(&mut client, &self.inner.schema).await?;
        let _ = self.inner.migrated.set(());
        self.fold_rollup(&mut client).await?;
        Ok(done)
    }

    /// Compacts the dashboard's rollup: folds the deltas every append leaves
    /// (one set of rows per append) into the hourly rollup, in one
    /// transaction. Returns how many delta rows were folded, or `None` when
    /// another process is compacting right now (its fold covers the same
    /// rows). Appends do this on their own every
    /// [`compact_every`](PostgresStorageBuilder::compact_every) appends, the
    /// dashboard before it reads, and [`migrate`](Self::migrate) too; the
    /// dashboard's figures are the same before and after.
    ///
    /// # Errors
    ///
    /// [`LedgerError::Backend`] if the database refuses the fold (nothing
    /// of it is written).
    pub async fn compact(&self) -> Result<Option<u64>, LedgerError> {
        let mut client = self.client().await?;
        self.fold_rollup(&mut client).await
    }

    /// The schema version in the database.
    ///
    /// # Errors
    ///
    /// [`LedgerError::Backend`] if the database cannot be read.
    pub async fn schema_version(&self) -> Result<i32, LedgerError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                &format!(
                    "SELECT coalesce(max(version), 0) FROM {}.schema_migrations",
                    quote_ident(&self.inner.schema)
                ),
                &[],
            )
            .await
            .map_err(|e| pg_error("read the schema version", e))?;
        Ok(row.get(0))
    }

    /// The newest schema version this build knows.
    pub fn latest_schema_version() -> i32 {
        schema::LATEST
    }

    /// A pooled connection, after the migrations (run once per process).
    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Client, LedgerError> {
        if self.inner.migrated.get().is_none() {
            self.inner
                .migrated
                .get_or_try_init(|| async {
                    let mut client = self.connection().await?;
                    schema::migrate(&mut client, &self.inner.schema)
                        .await
                        .map(drop)
                })
                .await?;
        }
        self.connection().await
    }

    async fn connection(&self) -> Result<deadpool_postgres::Client, LedgerError> {
        self.inner.pool.get().await.map_err(|e| {
            pg_error(
                &format!("connect to {}", self.inner.location),
                e.to_string(),
            )
        })
    }

    /// Appends `records` (skipping ids already present); returns how many
    /// were inserted.
    ///
    /// # Errors
    ///
    /// [`LedgerError::Backend`] if the insert fails (nothing of the failed
    /// chunk is written).
    pub async fn insert_batch(&self, records: &[CostRecord]) -> Result<u64, LedgerError> {
        if records.is_empty() {
            return Ok(0);
        }
        let mut client = self.client().await?;
        let inserted = if records.len() >= COPY_MIN {
            self.copy_batch(&mut client, records).await?
        } else {
            let stmt = client
                .prepare_cached(&self.inner.t.insert)
                .await
                .map_err(|e| pg_error("prepare the insert", e))?;
            let mut inserted = 0;
            for chunk in records.chunks(INSERT_CHUNK) {
                let params = columns(chunk);
                inserted += client
                    .execute(&stmt, &params.refs())
                    .await
                    .map_err(|e| pg_error("append to the ledger", e))?;
            }
            inserted
        };
        self.after_append(&mut client).await;
        Ok(inserted)
    }

    /// Every `compact_every` appends, compacts the rollup (after the
    /// append's commit: a failure here is logged, the append stands).
    async fn after_append(&self, client: &mut deadpool_postgres::Client) {
        let every = self.inner.compact_every;
        if every == 0 {
            return;
        }
        let n = self.inner.appends.fetch_add(1, Ordering::Relaxed) + 1;
        if !n.is_multiple_of(every) {
            return;
        }
        if let Err(e) = self.fold_rollup(client).await {
            tracing::warn!(
                schema = %self.inner.schema,
                error = %e,
                "costlayer: could not compact the dashboard rollup after an append (the next \
                 compaction or dashboard folds it)"
            );
        }
    }

    /// `records` into a started binary `COPY` (see [`copy_sql`]).
    async fn copy_rows(
        sink: tokio_postgres::CopyInSink<bytes::Bytes>,
        records: &[CostRecord],
    ) -> Result<u64, tokio_postgres::Error> {
        let writer = tokio_postgres::binary_copy::BinaryCopyInWriter::new(sink, &COPY_TYPES);
        futures_util::pin_mut!(writer);
        for r in records {
            let row = CopyRow::new(r);
            writer.as_mut().write(&row.values(r)).await?;
        }
        writer.finish().await
    }

    /// A large batch, all or nothing. First one binary `COPY` straight into
    /// `records` (atomic on its own): fresh ids, the usual case, cost one
    /// write per row. If an id is already there (a retried batch, an
    /// import run again, or an id repeated in the batch) the `COPY` fails
    /// as a whole and the batch goes again through the staging table: a
    /// `COPY` into it, then one `INSERT ... SELECT ... ON CONFLICT (id) DO
    /// NOTHING`, in one transaction.
    async fn copy_batch(
        &self,
        client: &mut deadpool_postgres::Client,
        records: &[CostRecord],
    ) -> Result<u64, LedgerError> {
        let t = &self.inner.t;
        let direct = async {
            let sink = client.copy_in(&copy_sql(&t.records)).await?;
            Self::copy_rows(sink, records).await
        };
        match direct.await {
            Ok(n) => return Ok(n),
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {}
            Err(e) => return Err(pg_error("copy the batch", e)),
        }
        let tx = client
            .transaction()
            .await
            .map_err(|e| pg_error("begin the batch append", e))?;
        // Created once per connection; emptied at every commit.
        tx.batch_execute(&format!(
            "CREATE TEMPORARY TABLE IF NOT EXISTS {STAGING} (LIKE {}) ON COMMIT DELETE ROWS",
            t.records
        ))
        .await
        .map_err(|e| pg_error("stage the batch append", e))?;
        let sink = tx
            .copy_in(&copy_sql(STAGING))
            .await
            .map_err(|e| pg_error("start copying the batch", e))?;
        Self::copy_rows(sink, records)
            .await
            .map_err(|e| pg_error("copy the batch", e))?;
        let inserted = tx
            .execute(
                &format!(
                    "INSERT INTO {} ({COLUMNS}) SELECT {COLUMNS} FROM {STAGING} \
                     ON CONFLICT (id) DO NOTHING",
                    t.records
                ),
                &[],
            )
            .await
            .map_err(|e| pg_error("append to the ledger", e))?;
        tx.commit()
            .await
            .map_err(|e| pg_error("commit the batch append", e))?;
        Ok(inserted)
    }

    /// Folds the rollup's pending deltas (one set per append) into the
    /// rollup, so the dashboard reads one row per hour and group. Skipped
    /// while another process folds them (the dashboard reads the deltas
    /// too, so nothing is missed).
    async fn fold_rollup(
        &self,
        client: &mut deadpool_postgres::Client,
    ) -> Result<Option<u64>, LedgerError> {
        let tx = client
            .transaction()
            .await
            .map_err(|e| pg_error("begin folding the rollup", e))?;
        let folded = self.fold_in(&tx).await?;
        if folded.is_some() {
            tx.commit()
                .await
                .map_err(|e| pg_error("commit the rollup", e))?;
        }
        Ok(folded)
    }

    /// [`fold_rollup`](Self::fold_rollup) in the caller's transaction: the
    /// lock (held to the transaction's end) and the fold. `None` when
    /// another process holds the lock.
    async fn fold_in(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
    ) -> Result<Option<u64>, LedgerError> {
        let t = &self.inner.t;
        let lock = tx
            .prepare_cached(
                "SELECT pg_try_advisory_xact_lock(hashtext('costlayer.rollup'), hashtext($1))",
            )
            .await
            .map_err(|e| pg_error("take the rollup lock", e))?;
        let got: bool = tx
            .query_one(&lock, &[&self.inner.schema])
            .await
            .map_err(|e| pg_error("take the rollup lock", e))?
            .get(0);
        if !got {
            return Ok(None);
        }
        let rollup_as_r = format!("{} AS r", t.rollup);
        let fold = tx.prepare_cached(
            &format!(
                "WITH d AS (DELETE FROM {delta} RETURNING *), \
                 i AS (INSERT INTO {r} SELECT {KEYS}, sum(calls)::bigint, sum(nano_usd)::bigint, \
                 sum(saved_nano_usd)::bigint, sum(input_tokens)::bigint, sum(output_tokens)::bigint, \
                 sum(cache_read_tokens)::bigint, sum(cache_write_5m_tokens)::bigint, \
                 sum(cache_write_1h_tokens)::bigint, sum(reasoning_tokens)::bigint, \
                 sum(input_audio_tokens)::bigint, sum(web_search_requests)::bigint, min(min_ts), max(max_ts) \
                 FROM d GROUP BY {KEYS} \
                 ON CONFLICT ({KEYS}) DO UPDATE SET calls = r.calls + excluded.calls, \
                 nano_usd = r.nano_usd + excluded.nano_usd, \
                 saved_nano_usd = r.saved_nano_usd + excluded.saved_nano_usd, \
                 input_tokens = r.input_tokens + excluded.input_tokens, \
                 output_tokens = r.output_tokens + excluded.output_tokens, \
                 cache_read_tokens = r.cache_read_tokens + excluded.cache_read_tokens, \
                 cache_write_5m_tokens = r.cache_write_5m_tokens + excluded.cache_write_5m_tokens, \
                 cache_write_1h_tokens = r.cache_write_1h_tokens + excluded.cache_write_1h_tokens, \
                 reasoning_tokens = r.reasoning_tokens + excluded.reasoning_tokens, \
                 input_audio_tokens = r.input_audio_tokens + excluded.input_audio_tokens, \
                 web_search_requests = r.web_search_requests + excluded.web_search_requests, \
                 min_ts = least(r.min_ts, excluded.min_ts), max_ts = greatest(r.max_ts, excluded.max_ts) \
                 RETURNING 1) SELECT count(*) FROM d",
                delta = t.rollup_delta,
                r = rollup_as_r,
            ),
        )
        .await
        .map_err(|e| pg_error("prepare folding the rollup", e))?;
        let folded: i64 = tx
            .query_one(&fold, &[])
            .await
            .map_err(|e| pg_error("fold the rollup", e))?
            .get(0);
        Ok(Some(u64::try_from(folded).unwrap_or(0)))
    }

    /// Copies a JSONL ledger directory into this database: every
    /// `costs_*.jsonl`, the legacy `costs.json` (attributed to `jsonl`'s
    /// user) and every `alerts_*.jsonl`. Idempotent: records go in by id and
    /// alerts by key, so a second import inserts nothing. Corrupt lines are
    /// skipped, counted and copied to the directory's `quarantine/`, as a
    /// JSONL scan does. The JSONL files are only read.
    ///
    /// # Errors
    ///
    /// [`LedgerError::Io`] if the directory cannot be read,
    /// [`LedgerError::Backend`] if the database refuses the rows (what was
    /// inserted before stays: run the import again to finish).
    pub async fn import_jsonl(&self, jsonl: &JsonlStorage) -> Result<ImportReport, LedgerError> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<CostRecord>>(4);
        let source = jsonl.clone();
        let reader = tokio::task::spawn_blocking(move || {
            let mut batch = Vec::with_capacity(INSERT_CHUNK);
            let mut corrupt: Vec<CorruptLine> = Vec::new();
            let mut gone = false;
            let summary = source.scan_blocking(&ScanFilter::default(), |item| match item {
                ScanItem::Record(r) => {
                    batch.push(r);
                    if batch.len() >= INSERT_CHUNK && !gone {
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(INSERT_CHUNK));
                        gone = tx.blocking_send(full).is_err();
                    }
                }
                ScanItem::Corrupt(c) => corrupt.push(c),
            });
            if !batch.is_empty() && !gone {
                let _ = tx.blocking_send(batch);
            }
            summary.map(|s| (s, corrupt))
        });
        let mut report = ImportReport::default();
        while let Some(batch) = rx.recv().await {
            let n = batch.len() as u64;
            let inserted = self.insert_batch(&batch).await?;
            report.read += n;
            report.inserted += inserted;
            report.duplicates += n - inserted;
        }
        let (summary, corrupt) = reader
            .await
            .map_err(|e| LedgerError::Backend(Box::new(e)))??;
        report.files = summary.files;
        report.corrupt = corrupt.len() as u64;
        let mut quarantined: Vec<PathBuf> = corrupt
            .into_iter()
            .filter_map(|c| c.quarantined_to)
            .collect();
        quarantined.sort();
        quarantined.dedup();
        report.quarantined = quarantined;
        for (key, user, payload) in jsonl.alert_history()? {
            if self.insert_alert(&key, &user, &payload).await? {
                report.alerts += 1;
            }
        }
        Ok(report)
    }

    async fn insert_alert(
        &self,
        key: &str,
        user: &str,
        payload: &serde_json::Value,
    ) -> Result<bool, LedgerError> {
        let client = self.client().await?;
        let n = client
            .execute(
                &format!(
                    "INSERT INTO {} (key, user_name, payload) VALUES ($1, $2, $3) \
                     ON CONFLICT (key) DO NOTHING",
                    self.inner.t.alerts
                ),
                &[&key, &user, payload],
            )
            .await
            .map_err(|e| pg_error("record the alert", e))?;
        Ok(n == 1)
    }

    fn source(&self) -> String {
        format!("postgres:{}.records", self.inner.schema)
    }
}

#[async_trait]
impl Storage for PostgresStorage {
    /// A [`PostgresBudgetBook`] in this ledger's schema, on its pool: every
    /// host using the database shares its bound. Connects nothing yet.
    fn default_book(
        &self,
    ) -> Option<Result<Arc<dyn crate::tracker::book::BudgetBook>, crate::tracker::book::BookError>>
    {
        Some(Ok(Arc::new(PostgresBudgetBook::new(self))))
    }

    async fn append(&self, record: &CostRecord) -> Result<(), LedgerError> {
        self.insert_batch(std::slice::from_ref(record))
            .await
            .map(drop)
    }

    async fn append_batch(&self, records: &[CostRecord]) -> Result<(), LedgerError> {
        self.insert_batch(records).await.map(drop)
    }

    async fn scan(&self, filter: &ScanFilter) -> Result<RecordStream, LedgerError> {
        let mut params = Params::default();
        let cond = filter_sql(filter, &mut params);
        let sql = format!(
            "SELECT {COLUMNS} FROM {} WHERE {cond} ORDER BY ts, id",
            self.inner.t.records
        );
        let client = self.client().await?;
        let stmt = client
            .prepare(&sql)
            .await
            .map_err(|e| pg_error("prepare the scan", e))?;
        let source = self.source();
        type Batch = Vec<Result<ScanItem, LedgerError>>;
        let (tx, rx) = tokio::sync::mpsc::channel::<Batch>(4);
        tokio::spawn(async move {
            let rows = match client.query_raw(&stmt, params.refs()).await {
                Ok(rows) => rows,
                Err(e) => {
                    let _ = tx.send(vec![Err(pg_error("scan the ledger", e))]).await;
                    return;
                }
            };
            futures_util::pin_mut!(rows);
            let mut batch: Batch = Vec::with_capacity(SCAN_BATCH);
            let mut line = 0u64;
            while let Some(row) = rows.next().await {
                line += 1;
                let item = match row {
                    Ok(row) => Ok(match decode(&row) {
                        Ok(r) => ScanItem::Record(r),
                        Err(reason) => ScanItem::Corrupt(CorruptLine {
                            source: source.clone(),
                            line,
                            reason,
                            quarantined_to: None,
                        }),
                    }),
                    Err(e) => Err(pg_error("scan the ledger", e)),
                };
                let failed = item.is_err();
                batch.push(item);
                if batch.len() >= SCAN_BATCH || failed {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(SCAN_BATCH));
                    if tx.send(full).await.is_err() || failed {
                        return;
                    }
                }
            }
            if !batch.is_empty() {
                let _ = tx.send(batch).await;
            }
        });
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|batch| (futures_util::stream::iter(batch), rx))
        })
        .flatten();
        Ok(Box::pin(stream))
    }

    async fn aggregate(&self, filter: &ScanFilter) -> Result<Aggregate, LedgerError> {
        let mut params = Params::default();
        let cond = filter_sql(filter, &mut params);
        let sql = format!(
            "SELECT count(*), coalesce(sum(nano_usd), 0)::bigint, \
             count(*) FILTER (WHERE nano_usd IS NULL) FROM {} WHERE {cond}",
            self.inner.t.records
        );
        let client = self.client().await?;
        let row = client
            .query_one(&sql, &params.refs())
            .await
            .map_err(|e| pg_error("total the ledger", e))?;
        Ok(Aggregate {
            calls: u64::try_from(row.get::<_, i64>(0)).unwrap_or(0),
            nano_usd: Money::from_nanos(row.get(1)),
            unpriced_calls: u64::try_from(row.get::<_, i64>(2)).unwrap_or(0),
            corrupted_lines: 0,
        })
    }

    async fn fold_dashboard(&self, pass: &mut DashboardPass) -> Result<bool, LedgerError> {
        let mut params = Params::default();
        let now = pass.now();
        let p_now = params.push(now);
        // The 7-day window is [week_start, now], from a whole second.
        let week_start: Option<DateTime<Utc>> = crate::report::week_start(now);
        let p_week = params.push(week_start);
        let in_filter = filter_sql(pass.filter(), &mut params);
        let mut boundaries = vec![now];
        boundaries.extend(week_start);
        boundaries.extend(pass.filter().since);
        boundaries.extend(pass.filter().until);
        let mut periods = Vec::new();
        for period in pass.periods() {
            let mut parts = Vec::new();
            if let Some(s) = period.start {
                parts.push(format!("ts >= {}", params.push(s)));
                boundaries.push(s);
            }
            if let Some(e) = period.end {
                parts.push(format!("ts < {}", params.push(e)));
                boundaries.push(e);
            }
            periods.push(if parts.is_empty() {
                "TRUE".to_owned()
            } else {
                format!("({})", parts.join(" AND "))
            });
        }
        // The hours a boundary falls in (or next to) are read from the
        // records; every other hour from the rollup, where each condition
        // holds for the whole hour alike.
        let mut dirty = Vec::new();
        for (lo, hi) in dirty_hours(&boundaries) {
            dirty.push((params.push(lo), params.push(hi)));
        }
        let within = |col: &str| -> String {
            if dirty.is_empty() {
                return "FALSE".to_owned();
            }
            dirty
                .iter()
                .map(|(lo, hi)| format!("({col} >= {lo} AND {col} < {hi})"))
                .collect::<Vec<_>>()
                .join(" OR ")
        };
        let mut select = vec![
            "provider".to_owned(),
            "model".to_owned(),
            "user_name".to_owned(),
            "team".to_owned(),
            "(ts AT TIME ZONE 'UTC')::date".to_owned(),
            "mode".to_owned(),
            "cached".to_owned(),
            "unpriced".to_owned(),
            format!("(ts <= {p_now} AND ({p_week}::timestamptz IS NULL OR ts >= {p_week}))"),
            // A team filter is NULL on records without a team.
            format!("coalesce({in_filter}, FALSE)"),
        ];
        select.extend(periods.iter().cloned());
        select.push("cost_status".to_owned());
        let keys = select.len();
        let group_by: Vec<String> = (1..=keys).map(|i| i.to_string()).collect();
        let mut wanted = vec![in_filter];
        wanted.extend(periods.iter().cloned());
        let t = &self.inner.t;
        let sums = "input_tokens, output_tokens, cache_read_tokens, cache_write_5m_tokens, \
                    cache_write_1h_tokens, reasoning_tokens, input_audio_tokens, web_search_requests";
        let source = format!(
            "SELECT hour AS ts, provider, model, user_name, CASE WHEN has_team THEN team END AS team, \
             mode, cached, unpriced, cost_status, calls, nano_usd, saved_nano_usd, {sums}, min_ts, max_ts \
             FROM (SELECT * FROM {rollup} UNION ALL SELECT * FROM {delta}) AS r WHERE NOT ({dirty_hour}) \
             UNION ALL \
             SELECT ts, provider, model, user_name, team, mode, cached, nano_usd IS NULL, cost_status, \
             1::bigint, coalesce(nano_usd, 0), CASE WHEN cached THEN coalesce(saved_nano_usd, 0) ELSE 0 END, \
             {sums}, ts, ts FROM {records} WHERE {dirty_ts}",
            rollup = t.rollup,
            delta = t.rollup_delta,
            records = t.records,
            dirty_hour = within("hour"),
            dirty_ts = within("ts"),
        );
        let sql = format!(
            "SELECT {}, sum(calls)::bigint, coalesce(sum(nano_usd), 0)::bigint, \
             coalesce(sum(saved_nano_usd), 0)::bigint, \
             sum(input_tokens)::bigint, sum(output_tokens)::bigint, sum(cache_read_tokens)::bigint, \
             sum(cache_write_5m_tokens)::bigint, sum(cache_write_1h_tokens)::bigint, \
             sum(reasoning_tokens)::bigint, min(min_ts), max(max_ts), \
             sum(input_audio_tokens)::bigint, sum(web_search_requests)::bigint \
             FROM ({source}) AS u WHERE {} GROUP BY {}",
            select.join(", "),
            wanted.join(" OR "),
            group_by.join(", ")
        );
        let mut client = self.client().await?;
        // One transaction: fold the pending deltas (unless another process
        // is folding them: the query reads them too), then the query, with
        // room to hash its groups (a sort of the rollup's rows by a dozen
        // keys took most of its time) unless the server allows more.
        let tx = client
            .transaction()
            .await
            .map_err(|e| pg_error("begin the dashboard", e))?;
        self.fold_in(&tx).await?;
        tx.batch_execute(
            "SELECT set_config('work_mem', '32MB', true) \
             WHERE pg_size_bytes(current_setting('work_mem')) < 33554432",
        )
        .await
        .map_err(|e| pg_error("set up the dashboard query", e))?;
        let rows = tx
            .query(&sql, &params.refs())
            .await
            .map_err(|e| pg_error("compute the dashboard", e))?;
        tx.commit()
            .await
            .map_err(|e| pg_error("commit the dashboard", e))?;
        let n = periods.len();
        let mut in_period = vec![false; n];
        for row in &rows {
            let get_err = |e: tokio_postgres::Error| pg_error("read the dashboard", e);
            let mode: String = row.try_get(5).map_err(get_err)?;
            for (i, flag) in in_period.iter_mut().enumerate() {
                *flag = row.try_get(10 + i).map_err(get_err)?;
            }
            let at = |i: usize| keys + i;
            let tok = |i: usize| -> Result<u64, LedgerError> {
                Ok(u64::try_from(row.try_get::<_, i64>(at(3 + i)).map_err(get_err)?).unwrap_or(0))
            };
            let day: NaiveDate = row.try_get(4).map_err(get_err)?;
            let status: String = row.try_get(10 + n).map_err(get_err)?;
            let group = Group {
                status: match status.as_str() {
                    "incomplete" => crate::CostStatus::Incomplete,
                    "estimated" => crate::CostStatus::Estimated,
                    _ => crate::CostStatus::Exact,
                },
                provider: row.try_get(0).map_err(get_err)?,
                model: row.try_get(1).map_err(get_err)?,
                user: row.try_get(2).map_err(get_err)?,
                team: row.try_get(3).map_err(get_err)?,
                day,
                mode: if mode == "batch" {
                    Mode::Batch
                } else {
                    Mode::Online
                },
                cached: row.try_get(6).map_err(get_err)?,
                unpriced: row.try_get(7).map_err(get_err)?,
                in_week: row.try_get(8).map_err(get_err)?,
                in_filter: row.try_get(9).map_err(get_err)?,
                in_period: &in_period,
                calls: u64::try_from(row.try_get::<_, i64>(at(0)).map_err(get_err)?).unwrap_or(0),
                nano_usd: Money::from_nanos(row.try_get(at(1)).map_err(get_err)?),
                saved_nano_usd: Money::from_nanos(row.try_get(at(2)).map_err(get_err)?),
                usage: Usage {
                    input_tokens: tok(0)?,
                    output_tokens: tok(1)?,
                    cache_read_tokens: tok(2)?,
                    cache_write_5m_tokens: tok(3)?,
                    cache_write_1h_tokens: tok(4)?,
                    reasoning_tokens: tok(5)?,
                    input_audio_tokens: tok(8)?,
                    web_search_requests: tok(9)?,
                    ..Usage::default()
                },
                first_ts: row.try_get(at(9)).map_err(get_err)?,
                last_ts: row.try_get(at(10)).map_err(get_err)?,
            };
            pass.push_group(&group);
        }
        Ok(true)
    }

    async fn mark_alert(
        &self,
        key: &str,
        payload: &serde_json::Value,
    ) -> Result<bool, LedgerError> {
        self.insert_alert(key, &self.inner.user, payload).await
    }

    async fn claim_alert(&self, entry: &OutboxEntry) -> Result<bool, LedgerError> {
        let t = &self.inner.t;
        let client = self.client().await?;
        // One statement: the alert goes into the history and the outbox
        // together, or (already there) neither changes.
        let n = client
            .execute(
                &format!(
                    "WITH a AS (INSERT INTO {alerts} (key, user_name, payload) VALUES ($1, $2, $3) \
                     ON CONFLICT (key) DO NOTHING RETURNING key) \
                     INSERT INTO {outbox} (key, state, entry, updated_at) \
                     SELECT key, $4, $5, $6 FROM a \
                     ON CONFLICT (key) DO UPDATE SET state = excluded.state, entry = excluded.entry, \
                     updated_at = excluded.updated_at",
                    alerts = t.alerts,
                    outbox = t.outbox
                ),
                &[
                    &entry.key,
                    &self.inner.user,
                    &entry.alert.to_json(),
                    &entry.state().as_str(),
                    &entry_json(entry)?,
                    &entry.updated_at,
                ],
            )
            .await
            .map_err(|e| pg_error("claim the alert", e))?;
        Ok(n == 1)
    }

    async fn save_delivery(&self, entry: &OutboxEntry) -> Result<(), LedgerError> {
        let client = self.client().await?;
        client
            .execute(
                &format!(
                    "INSERT INTO {} (key, state, entry, updated_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (key) DO UPDATE SET state = excluded.state, entry = excluded.entry, \
                     updated_at = excluded.updated_at",
                    self.inner.t.outbox
                ),
                &[
                    &entry.key,
                    &entry.state().as_str(),
                    &entry_json(entry)?,
                    &entry.updated_at,
                ],
            )
            .await
            .map_err(|e| pg_error("save the alert's delivery state", e))?;
        Ok(())
    }

    async fn take_delivery(
        &self,
        key: &str,
        owner: &DeliveryOwner,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Option<OutboxEntry>, LedgerError> {
        let t = &self.inner.t;
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(|e| pg_error("begin taking over an alert", e))?;
        // The row lock makes the check and the take one step across hosts.
        let row = tx
            .query_opt(
                &format!("SELECT entry FROM {} WHERE key = $1 FOR UPDATE", t.outbox),
                &[&key],
            )
            .await
            .map_err(|e| pg_error("read the alert outbox", e))?;
        let entry = match row {
            Some(row) => parse_entry(key, row.get(0)),
            None => None,
        };
        let taken = take_if_claimable(entry, owner, now, lease)?;
        if let Some(e) = &taken {
            tx.execute(
                &format!(
                    "UPDATE {} SET state = $2, entry = $3, updated_at = $4 WHERE key = $1",
                    t.outbox
                ),
                &[&e.key, &e.state().as_str(), &entry_json(e)?, &e.updated_at],
            )
            .await
            .map_err(|e| pg_error("take over the alert", e))?;
        }
        tx.commit()
            .await
            .map_err(|e| pg_error("commit taking over the alert", e))?;
        Ok(taken)
    }

    async fn deliveries(&self) -> Result<Vec<OutboxEntry>, LedgerError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT key, entry FROM {} ORDER BY key",
                    self.inner.t.outbox
                ),
                &[],
            )
            .await
            .map_err(|e| pg_error("read the alert outbox", e))?;
        Ok(latest_per_key(rows.into_iter().filter_map(|r| {
            let key: String = r.get(0);
            parse_entry(&key, r.get(1))
        })))
    }

    async fn alert_fired(&self, key: &str) -> Result<bool, LedgerError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!("SELECT 1 FROM {} WHERE key = $1", self.inner.t.alerts),
                &[&key],
            )
            .await
            .map_err(|e| pg_error("read the alert history", e))?;
        Ok(row.is_some())
    }

    async fn reset(&self, scope: ResetScope) -> Result<ResetReport, LedgerError> {
        let t = &self.inner.t;
        let (label, user) = match &scope {
            ResetScope::User(u) => (format!("user:{u}"), Some(u.clone())),
            _ => ("all".to_owned(), None),
        };
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(|e| pg_error("begin the reset", e))?;
        // Appends wait until the reset is done (reads go on), and so does
        // folding the rollup, so the rollup loses exactly what is archived.
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('costlayer.rollup'), hashtext($1))",
            &[&self.inner.schema],
        )
        .await
        .map_err(|e| pg_error("take the rollup lock", e))?;
        tx.batch_execute(&format!("LOCK TABLE {} IN EXCLUSIVE MODE", t.records))
            .await
            .map_err(|e| pg_error("lock the ledger for the reset", e))?;
        let id: i64 = tx
            .query_one(
                &format!(
                    "INSERT INTO {} (scope, records, alerts) VALUES ($1, 0, 0) RETURNING id",
                    t.archives
                ),
                &[&label],
            )
            .await
            .map_err(|e| pg_error("start the archive", e))?
            .get(0);
        let cond = if user.is_some() {
            "user_name = $2"
        } else {
            "$2::text IS NULL"
        };
        let records = tx
            .execute(
                &format!(
                    "WITH moved AS (DELETE FROM {} WHERE {cond} RETURNING *) \
                     INSERT INTO {} SELECT $1::bigint, moved.* FROM moved",
                    t.records, t.records_archive
                ),
                &[&id, &user],
            )
            .await
            .map_err(|e| pg_error("archive the records", e))?;
        let alerts = tx
            .execute(
                &format!(
                    "WITH moved AS (DELETE FROM {} WHERE {cond} RETURNING *) \
                     INSERT INTO {} SELECT $1::bigint, moved.* FROM moved",
                    t.alerts, t.alerts_archive
                ),
                &[&id, &user],
            )
            .await
            .map_err(|e| pg_error("archive the alert history", e))?;
        for table in [&t.rollup, &t.rollup_delta] {
            tx.execute(
                &format!(
                    "DELETE FROM {table} WHERE {}",
                    if user.is_some() {
                        "user_name = $1"
                    } else {
                        "$1::text IS NULL"
                    }
                ),
                &[&user],
            )
            .await
            .map_err(|e| pg_error("reset the dashboard rollup", e))?;
        }
        if records == 0 && alerts == 0 {
            tx.rollback()
                .await
                .map_err(|e| pg_error("end the reset", e))?;
            return Ok(ResetReport::default());
        }
        tx.execute(
            &format!(
                "UPDATE {} SET records = $2, alerts = $3 WHERE id = $1",
                t.archives
            ),
            &[
                &id,
                &i64::try_from(records).unwrap_or(i64::MAX),
                &i64::try_from(alerts).unwrap_or(i64::MAX),
            ],
        )
        .await
        .map_err(|e| pg_error("finish the archive", e))?;
        tx.commit()
            .await
            .map_err(|e| pg_error("commit the reset", e))?;
        tracing::info!(schema = %self.inner.schema, archive = id, records, alerts, "ledger reset");
        Ok(ResetReport {
            archived_to: Some(format!(
                "{}.records_archive (archive_id {id})",
                self.inner.schema
            )),
            moved: vec!["records".to_owned(), "alerts".to_owned()],
            records,
        })
    }
}
