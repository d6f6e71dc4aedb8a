//! The ledger: every priced call, append-only.
//!
//! [`CostRecord`] is one line; [`Storage`] is the backend contract
//! (append, scan with a filter, alert history, reset).
//! [`JsonlStorage`] is the default backend (one append-only JSONL file per
//! user, no server) and [`MemoryStorage`] the one for tests.
//!
//! # Example
//!
//! ```
//! use costlayer::ledger::{CostRecord, MemoryStorage, ScanFilter, Storage};
//! use costlayer::{Money, Usage};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), costlayer::ledger::LedgerError> {
//! let ledger = MemoryStorage::new();
//! let mut rec = CostRecord::new("alice", "openai", "gpt-4o-mini", Usage::new(1_000, 200));
//! rec.nano_usd = Some(Money::from_nanos(270_000));
//! ledger.append(&rec).await?;
//! let agg = ledger.aggregate(&ScanFilter::default()).await?;
//! assert_eq!((agg.calls, agg.nano_usd), (1, Money::from_nanos(270_000)));
//! # Ok(()) }
//! ```

use std::fmt::Debug;
use std::path::PathBuf;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::alert::{DeliveryOwner, OutboxEntry};
use crate::Money;

pub(crate) mod jsonl;
// For every state file kept in the data directory (see its docs).
#[allow(unused_imports)]
pub(crate) use jsonl::safe_open;

/// Hooks for the fuzz targets (`fuzz/`); not part of the public API.
#[doc(hidden)]
pub use jsonl::fuzz as __fuzz;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
mod record;
mod spool;

pub use jsonl::{
    flush_all_queued, sanitize_user, AppendMode, FsyncPolicy, JsonlStorage, JsonlStorageBuilder,
    ParallelFold, RecordRef, ScanSummary, DEFAULT_DIR, DEFAULT_LEGACY_USER,
};
pub use memory::MemoryStorage;
#[cfg(feature = "postgres")]
pub use postgres::{
    ImportReport, PgError, PostgresBudgetBook, PostgresStorage, PostgresStorageBuilder,
    DEFAULT_SCHEMA,
};
pub use record::{CostRecord, SCHEMA_VERSION};
pub(crate) use spool::SpooledLedger;
pub use spool::{Spool, SpoolLocation};

/// Which records a scan returns. Empty lists mean "any".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanFilter {
    /// Records at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Records strictly before this instant.
    pub until: Option<DateTime<Utc>>,
    /// Only these users.
    pub users: Vec<String>,
    /// Only these providers (case-insensitive).
    pub providers: Vec<String>,
    /// Only these models ([`same_model`](crate::pricing::same_model): aliases' spellings and dated ids count).
    pub models: Vec<String>,
    /// Only this team.
    pub team: Option<String>,
}

impl ScanFilter {
    /// Whether `r` passes the filter.
    pub fn matches(&self, r: &CostRecord) -> bool {
        self.since.is_none_or(|s| r.ts >= s)
            && self.until.is_none_or(|u| r.ts < u)
            && (self.users.is_empty() || self.users.iter().any(|u| *u == r.user))
            && (self.providers.is_empty()
                || self
                    .providers
                    .iter()
                    .any(|p| crate::pricing::same_provider(p, &r.provider)))
            && (self.models.is_empty()
                || self
                    .models
                    .iter()
                    .any(|m| crate::pricing::same_model(m, &r.model)))
            && self
                .team
                .as_ref()
                .is_none_or(|t| r.team.as_deref() == Some(t.as_str()))
    }
}

/// A line of a ledger that could not be read, and where it went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorruptLine {
    /// The file (or backend location) it came from.
    pub source: String,
    /// 1-based line number.
    pub line: u64,
    /// Why it could not be parsed.
    pub reason: String,
    /// Where a copy was kept, if anywhere.
    pub quarantined_to: Option<PathBuf>,
}

/// One item of a scan: a record, or a line that was skipped.
#[derive(Debug, Clone, PartialEq)]
// Records are the hot path of every scan: boxing them would cost an
// allocation per record to save space on the rare corrupt line.
#[allow(clippy::large_enum_variant)]
pub enum ScanItem {
    /// A record that passed the filter.
    Record(CostRecord),
    /// A line that could not be read (skipped; every good line is still read).
    Corrupt(CorruptLine),
}

/// A stream of scan items; memory stays flat in the number of records.
pub type RecordStream = BoxStream<'static, Result<ScanItem, LedgerError>>;

/// Totals over a filter, computed by the backend if it can (SQL), or by a
/// scan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Aggregate {
    /// Number of records.
    pub calls: u64,
    /// Sum of the priced records' costs.
    pub nano_usd: Money,
    /// Records whose model had no price.
    pub unpriced_calls: u64,
    /// Lines skipped as corrupt.
    pub corrupted_lines: u64,
}

/// What a reset covers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResetScope {
    /// One user's ledger and alert history.
    User(String),
    /// Every user's.
    All,
}

/// What a reset moved, and where.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetReport {
    /// Where the archive is (a directory, a table name...).
    pub archived_to: Option<String>,
    /// What moved (file names, ...).
    pub moved: Vec<String>,
    /// How many records were archived.
    pub records: u64,
}

/// Everything a ledger backend can fail with. Every message names the path
/// (or location) and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// An I/O failure on a path.
    #[error("ledger I/O error on {path}: {source}. {hint}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
        /// What to do about it.
        hint: String,
    },
    /// A record could not be serialised.
    #[error("cannot serialise a ledger record: {0}")]
    Serialize(#[from] serde_json::Error),
    /// Invalid backend configuration.
    #[error("invalid ledger configuration: {0}")]
    Config(String),
    /// A backend-specific failure (a database error, ...).
    #[error("ledger backend error: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A ledger backend.
///
/// Object-safe (`Arc<dyn Storage>`), `Send + Sync`. Implementations must make
/// `append` durable according to their own policy before returning `Ok`, and
/// must make [`Storage::mark_alert`] atomic across every process sharing the
/// ledger: it is how an alert is sent once.
#[async_trait]
pub trait Storage: Send + Sync + Debug {
    /// Appends one record.
    async fn append(&self, record: &CostRecord) -> Result<(), LedgerError>;

    /// [`append`](Storage::append) when it can be done without waiting:
    /// `Some` with what `append` would have returned, or `None` (the
    /// default) when the append has to wait, and the caller awaits
    /// `append` instead. Nothing is appended when this returns `None`.
    ///
    /// The tracker asks this first, so an append that only hands the
    /// record over (a queue, a lock held for a push) costs no boxed
    /// future. [`JsonlStorage`] answers it while its appends are queued,
    /// [`MemoryStorage`] always.
    ///
    /// ```
    /// use costlayer::ledger::{CostRecord, MemoryStorage, Storage};
    ///
    /// let ledger = MemoryStorage::new();
    /// let rec = CostRecord::new("ada", "openai", "gpt-4o-mini", Default::default());
    /// assert!(matches!(ledger.append_now(&rec), Some(Ok(()))));
    /// assert_eq!(ledger.len(), 1);
    /// ```
    fn append_now(&self, record: &CostRecord) -> Option<Result<(), LedgerError>> {
        let _ = record;
        None
    }

    /// Appends several records, in one write where the backend can.
    async fn append_batch(&self, records: &[CostRecord]) -> Result<(), LedgerError> {
        for r in records {
            self.append(r).await?;
        }
        Ok(())
    }

    /// Streams the records matching `filter`, and the corrupt lines met.
    async fn scan(&self, filter: &ScanFilter) -> Result<RecordStream, LedgerError>;

    /// Totals over `filter`. The default folds a scan; SQL backends push it down.
    async fn aggregate(&self, filter: &ScanFilter) -> Result<Aggregate, LedgerError> {
        let mut agg = Aggregate::default();
        let mut stream = self.scan(filter).await?;
        while let Some(item) = stream.next().await {
            match item? {
                ScanItem::Record(r) => {
                    agg.calls += 1;
                    match r.nano_usd {
                        Some(c) => agg.nano_usd += c,
                        None => agg.unpriced_calls += 1,
                    }
                }
                ScanItem::Corrupt(_) => agg.corrupted_lines += 1,
            }
        }
        Ok(agg)
    }

    /// Folds the dashboard's sums and group-bys into `pass` inside the
    /// backend (SQL `GROUP BY`), if it can. `Ok(false)` (the default) means
    /// it cannot, and the caller scans instead:
    /// [`DashboardPass::fold_storage`](crate::report::DashboardPass::fold_storage)
    /// does both.
    async fn fold_dashboard(
        &self,
        pass: &mut crate::report::DashboardPass,
    ) -> Result<bool, LedgerError> {
        let _ = pass;
        Ok(false)
    }

    /// Records that the alert `key` fired, with its JSON payload. Returns
    /// `true` if this call recorded it first, `false` if it had already
    /// fired. Atomic: of several processes racing on one key, exactly one
    /// gets `true`.
    async fn mark_alert(&self, key: &str, payload: &serde_json::Value)
        -> Result<bool, LedgerError>;

    /// Whether the alert `key` has fired.
    async fn alert_fired(&self, key: &str) -> Result<bool, LedgerError>;

    /// Archives the ledger and alert history in `scope`; never deletes.
    async fn reset(&self, scope: ResetScope) -> Result<ResetReport, LedgerError>;

    /// Makes every acknowledged append durable (for buffered writers).
    async fn flush(&self) -> Result<(), LedgerError> {
        Ok(())
    }

    /// Gives the storage the tracker's spool, for records a deferred write
    /// refuses after `append` returned (the JSONL ledger's
    /// [`AppendMode::Queued`]). The default ignores it: a backend whose
    /// `append` reports every failure needs none.
    fn attach_spool(&self, spool: std::sync::Arc<Spool>) {
        let _ = spool;
    }

    /// Checks, before a call is sent, that a record could be appended now
    /// (the directory exists and is writable, the disk is not full...). The
    /// tracker caches a success and asks again after a failure. Defaults to
    /// `Ok` (a backend that cannot tell).
    async fn check_writable(&self) -> Result<(), LedgerError> {
        Ok(())
    }

    /// Claims an alert for delivery: as [`Storage::mark_alert`] with the
    /// alert's JSON, and, if this call claimed it, saves `entry` (every sink
    /// pending, owned by the caller) in the alert outbox in the same step
    /// where the backend can. Returns whether this call claimed it.
    ///
    /// The default marks the alert, then calls [`Storage::save_delivery`].
    async fn claim_alert(&self, entry: &OutboxEntry) -> Result<bool, LedgerError> {
        let claimed = self.mark_alert(&entry.key, &entry.alert.to_json()).await?;
        if claimed {
            self.save_delivery(entry).await?;
        }
        Ok(claimed)
    }

    /// Saves an alert's delivery state in the outbox, replacing the key's
    /// previous one. Defaults to doing nothing (no outbox: an alert whose
    /// process exits before delivering it is lost, as before the outbox).
    async fn save_delivery(&self, entry: &OutboxEntry) -> Result<(), LedgerError> {
        let _ = entry;
        Ok(())
    }

    /// Takes over the delivery of the undelivered alert `key` for `owner`
    /// until `now + lease`, if nobody is delivering it
    /// ([`OutboxEntry::is_claimable`]), and returns it; `None` if it is
    /// delivered, unknown or owned by a live process. Atomic across the
    /// processes sharing the storage: one of them gets it.
    ///
    /// The default reads [`Storage::deliveries`] and saves the taken entry
    /// (atomic within one process only).
    async fn take_delivery(
        &self,
        key: &str,
        owner: &DeliveryOwner,
        now: DateTime<Utc>,
        lease: std::time::Duration,
    ) -> Result<Option<OutboxEntry>, LedgerError> {
        let entry = self.deliveries().await?.into_iter().find(|e| e.key == key);
        let taken = crate::alert::take_if_claimable(entry, owner, now, lease)?;
        if let Some(e) = &taken {
            self.save_delivery(e).await?;
        }
        Ok(taken)
    }

    /// The latest delivery state of every alert in the outbox, oldest
    /// alert first. Defaults to none.
    async fn deliveries(&self) -> Result<Vec<OutboxEntry>, LedgerError> {
        Ok(Vec::new())
    }

    /// The budget book every process sharing this ledger should use, which
    /// [`CostTrackerBuilder::build`](crate::tracker::CostTrackerBuilder::build)
    /// takes when no [`book`](crate::tracker::CostTrackerBuilder::book) is
    /// given: [`JsonlStorage`] answers with a
    /// [`JsonlDirBook`](crate::tracker::book::JsonlDirBook) on its
    /// directory (one per storage, shared by its clones), `PostgresStorage`
    /// with a `PostgresBudgetBook` on its pool.
    ///
    /// `None` (the default, and [`MemoryStorage`]'s answer) means the
    /// ledger is not shared beyond this process: the builder then uses a
    /// [`MemoryBook`](crate::tracker::book::MemoryBook) seeded from the
    /// ledger (and the spool). `Some(Err(..))` fails the build: the book
    /// this ledger needs cannot be opened, and calls must not run without
    /// it.
    fn default_book(
        &self,
    ) -> Option<
        Result<
            std::sync::Arc<dyn crate::tracker::book::BudgetBook>,
            crate::tracker::book::BookError,
        >,
    > {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_is_object_safe() {
        fn _obj_safe(_: &dyn Storage) {}
        let _: std::sync::Arc<dyn Storage> = std::sync::Arc::new(MemoryStorage::new());
    }
}
