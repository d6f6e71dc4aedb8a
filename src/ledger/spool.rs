//! The spool: where a record goes when the ledger refuses it after the
//! provider has answered (the call was billed, so the record must not be
//! lost).
//!
//! See [`Spool`].

use std::fmt;
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use super::jsonl::{fnv1a64, sanitize_user};
use super::{CostRecord, LedgerError, Storage};

/// Where a spooled record went.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpoolLocation {
    /// The spool file.
    File(PathBuf),
    /// This process's memory (lost if the process exits before the ledger
    /// accepts it again).
    Memory,
}

impl fmt::Display for SpoolLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpoolLocation::File(p) => write!(f, "{}", p.display()),
            SpoolLocation::Memory => f.write_str("memory (lost if the process exits first)"),
        }
    }
}

/// Records the ledger refused, kept until it accepts them.
///
/// A [`Spool`] keeps records in a fallback file in a directory of your
/// choice (one file per ledger and user, `spool_<ledger hash>_<user>.jsonl`),
/// or in memory when no directory is set or the file cannot be written
/// either. Spooled records still count in the tracker's budgets, and are
/// moved into the ledger ([`Spool::drain_into`]) as soon as it accepts
/// writes again: before the next call, at
/// [`CostTracker::flush`](crate::tracker::CostTracker::flush), or by the
/// next process using the same spool directory and ledger.
///
/// ```
/// use costlayer::ledger::{CostRecord, MemoryStorage, Spool, SpoolLocation, Storage};
/// use costlayer::Usage;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), costlayer::ledger::LedgerError> {
/// let tmp = tempfile::tempdir().unwrap();
/// let spool = Spool::in_dir(tmp.path(), "data/metadata", "alice");
/// let rec = CostRecord::new("alice", "openai", "gpt-4o-mini", Usage::new(10, 1));
/// let at = spool.put(&rec);
/// assert!(matches!(at, SpoolLocation::File(_)));
/// assert_eq!(spool.records().len(), 1);
///
/// let ledger = MemoryStorage::new();
/// assert_eq!(spool.drain_into(&ledger).await?, 1);
/// assert_eq!(ledger.len(), 1);
/// assert!(spool.records().is_empty());
/// # Ok(()) }
/// ```
pub struct Spool {
    file: Option<PathBuf>,
    memory: Mutex<Vec<CostRecord>>,
    /// Whether anything may be in the spool (so the hot path skips it).
    maybe_full: AtomicBool,
    /// Serialises drains and puts within the process.
    io: Mutex<()>,
}

impl fmt::Debug for Spool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spool")
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

impl Default for Spool {
    fn default() -> Self {
        Spool::memory()
    }
}

impl Spool {
    /// A spool in memory only.
    pub fn memory() -> Self {
        Spool {
            file: None,
            memory: Mutex::new(Vec::new()),
            maybe_full: AtomicBool::new(false),
            io: Mutex::new(()),
        }
    }

    /// A spool file in `dir` for the ledger at `ledger` (any stable name of
    /// it: its directory) and `user`: `dir/spool_<hash of ledger>_<user>.jsonl`.
    /// A process using the same three finds what an earlier one spooled.
    pub fn in_dir(dir: impl AsRef<Path>, ledger: impl AsRef<Path>, user: &str) -> Self {
        let ledger = ledger.as_ref();
        let canonical = std::fs::canonicalize(ledger).unwrap_or_else(|_| ledger.to_path_buf());
        let hash = fnv1a64(0, canonical.to_string_lossy().as_bytes());
        let user = sanitize_user(user).unwrap_or_else(|_| "unknown".to_owned());
        let file = dir.as_ref().join(format!("spool_{hash:016x}_{user}.jsonl"));
        let maybe_full = file.exists();
        Spool {
            file: Some(file),
            memory: Mutex::new(Vec::new()),
            maybe_full: AtomicBool::new(maybe_full),
            io: Mutex::new(()),
        }
    }

    /// The spool file, if the spool has a directory.
    pub fn path(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Whether the spool may hold records (cheap).
    pub fn may_hold_records(&self) -> bool {
        self.maybe_full.load(Ordering::Acquire)
    }

    /// Keeps `record`: in the file if there is one and it can be written,
    /// else in memory. Never fails.
    pub fn put(&self, record: &CostRecord) -> SpoolLocation {
        let _io = self.io.lock().unwrap_or_else(|p| p.into_inner());
        self.maybe_full.store(true, Ordering::Release);
        if let Some(path) = &self.file {
            match append_line(path, record) {
                Ok(()) => return SpoolLocation::File(path.clone()),
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "the spool file cannot be written either; keeping the record in memory");
                }
            }
        }
        self.lock_memory().push(record.clone());
        SpoolLocation::Memory
    }

    /// Every spooled record (file, then memory).
    pub fn records(&self) -> Vec<CostRecord> {
        let mut out = self.file.as_deref().map(read_file).unwrap_or_default();
        out.extend(self.lock_memory().iter().cloned());
        out
    }

    /// Moves every spooled record into `storage` (one batch), then empties
    /// the spool. Returns how many were moved. On an error nothing is
    /// removed from the spool.
    ///
    /// # Errors
    ///
    /// The storage's error.
    pub async fn drain_into<S: Storage + ?Sized>(&self, storage: &S) -> Result<usize, LedgerError> {
        if !self.may_hold_records() {
            return Ok(0);
        }
        let records = {
            let _io = self.io.lock().unwrap_or_else(|p| p.into_inner());
            self.records()
        };
        if records.is_empty() {
            self.maybe_full.store(false, Ordering::Release);
            return Ok(0);
        }
        storage.append_batch(&records).await?;
        let _io = self.io.lock().unwrap_or_else(|p| p.into_inner());
        let ids: std::collections::HashSet<ulid::Ulid> = records.iter().map(|r| r.id).collect();
        self.lock_memory().retain(|r| !ids.contains(&r.id));
        if let Some(path) = &self.file {
            // Keep whatever was spooled while we appended.
            let rest: Vec<CostRecord> = read_file(path)
                .into_iter()
                .filter(|r| !ids.contains(&r.id))
                .collect();
            let res = if rest.is_empty() {
                match std::fs::remove_file(path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                    _ => Ok(()),
                }
            } else {
                rewrite(path, &rest)
            };
            if let Err(e) = res {
                tracing::error!(path = %path.display(), error = %e, "spooled records were written to the ledger but the spool file could not be emptied: remove it by hand, or they will be written again");
            }
        }
        let empty =
            self.lock_memory().is_empty() && self.file.as_deref().is_none_or(|p| !p.exists());
        if empty {
            self.maybe_full.store(false, Ordering::Release);
        }
        tracing::info!(
            records = records.len(),
            "spooled records moved into the ledger"
        );
        Ok(records.len())
    }

    fn lock_memory(&self) -> std::sync::MutexGuard<'_, Vec<CostRecord>> {
        self.memory.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn append_line(path: &Path, record: &CostRecord) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut bytes = serde_json::to_vec(record)?;
    bytes.push(b'\n');
    let mut f = crate::ledger::safe_open::append(path)?;
    f.lock()?;
    let res = f.write_all(&bytes).and_then(|()| f.sync_data());
    let _ = f.unlock();
    res
}

fn read_file(path: &Path) -> Vec<CostRecord> {
    let Ok(f) = crate::ledger::safe_open::read(path) else {
        return Vec::new();
    };
    if f.lock_shared().is_err() {
        return Vec::new();
    }
    let out = BufReader::new(&f)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str::<CostRecord>(&l).ok())
        .collect();
    let _ = f.unlock();
    out
}

fn rewrite(path: &Path, records: &[CostRecord]) -> std::io::Result<()> {
    let tmp = path.with_extension("jsonl.tmp");
    let mut bytes = Vec::new();
    for r in records {
        serde_json::to_writer(&mut bytes, r)?;
        bytes.push(b'\n');
    }
    {
        use std::io::Write as _;
        let mut f = crate::ledger::safe_open::open_with(
            &tmp,
            OpenOptions::new().write(true).create(true).truncate(true),
        )?;
        f.write_all(&bytes)?;
    }
    std::fs::rename(&tmp, path)
}

/// A ledger seen together with its spool: what the budgets must count
/// (every billed call, written or spooled). Appends go to the ledger; scans
/// and totals add the spooled records that match.
#[derive(Debug)]
pub(crate) struct SpooledLedger {
    pub(crate) ledger: std::sync::Arc<dyn Storage>,
    pub(crate) spool: std::sync::Arc<Spool>,
}

impl SpooledLedger {
    fn spooled(&self, filter: &super::ScanFilter) -> Vec<CostRecord> {
        if !self.spool.may_hold_records() {
            return Vec::new();
        }
        self.spool
            .records()
            .into_iter()
            .filter(|r| filter.matches(r))
            .collect()
    }
}

#[async_trait::async_trait]
impl Storage for SpooledLedger {
    async fn append(&self, record: &CostRecord) -> Result<(), LedgerError> {
        self.ledger.append(record).await
    }

    fn append_now(&self, record: &CostRecord) -> Option<Result<(), LedgerError>> {
        self.ledger.append_now(record)
    }

    async fn scan(&self, filter: &super::ScanFilter) -> Result<super::RecordStream, LedgerError> {
        use futures_util::StreamExt;
        let spooled = self.spooled(filter);
        let stream = self.ledger.scan(filter).await?;
        let extra =
            futures_util::stream::iter(spooled.into_iter().map(|r| Ok(super::ScanItem::Record(r))));
        Ok(Box::pin(stream.chain(extra)))
    }

    async fn aggregate(&self, filter: &super::ScanFilter) -> Result<super::Aggregate, LedgerError> {
        let mut agg = self.ledger.aggregate(filter).await?;
        for r in self.spooled(filter) {
            agg.calls += 1;
            match r.nano_usd {
                Some(c) => agg.nano_usd += c,
                None => agg.unpriced_calls += 1,
            }
        }
        Ok(agg)
    }

    async fn mark_alert(
        &self,
        key: &str,
        payload: &serde_json::Value,
    ) -> Result<bool, LedgerError> {
        self.ledger.mark_alert(key, payload).await
    }

    async fn alert_fired(&self, key: &str) -> Result<bool, LedgerError> {
        self.ledger.alert_fired(key).await
    }

    async fn reset(&self, scope: super::ResetScope) -> Result<super::ResetReport, LedgerError> {
        self.ledger.reset(scope).await
    }
}
