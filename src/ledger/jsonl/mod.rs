//! The default ledger: one append-only JSONL file per user, no server.
//! See [`JsonlStorage`].

use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use chrono::Utc;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::{
    Aggregate, CostRecord, LedgerError, RecordStream, ResetReport, ResetScope, ScanFilter,
    ScanItem, Storage,
};

mod amounts;
mod canonical;
pub(crate) mod checkpoint;
pub(crate) mod files;
#[doc(hidden)]
pub mod fuzz;
mod legacy;
mod outbox;
mod par;
mod quarantine;
pub(crate) mod read;
pub(crate) mod safe_open;
mod scan;
mod scrub;
mod view;
mod writer;

pub use view::{ParallelFold, RecordRef};

pub(crate) use files::fnv1a64;

use files::{ensure_dir, io_error, open_locked_append, sync_dir, LockGuard};
use read::{Quarantine, ScanContext};
use writer::{Job, WriterHandle};

/// The default ledger directory, relative to the working directory.
pub const DEFAULT_DIR: &str = "data/metadata";

/// Who the legacy `costs.json` entries without a user are attributed to,
/// unless [`JsonlStorageBuilder::legacy_user`] says otherwise.
pub const DEFAULT_LEGACY_USER: &str = "legacy";

/// The seed tool's legacy single-file ledger, read on every scan.
pub(crate) const LEGACY_FILE: &str = "costs.json";

/// How many scan items travel together through the scan channel.
const SCAN_BATCH: usize = 1024;
/// How many batches may wait in the channel (memory stays flat).
const SCAN_CHANNEL: usize = 4;

/// Maps a user name to the `<user>` part of `costs_<user>.jsonl`.
///
/// The mapping is injective (two names never share a file) and the result
/// is always a plain file-name component:
///
/// - ASCII letters, digits, `-` and `_` are kept;
/// - `.` is kept, except at the start or right after another `.`, where it
///   becomes `%2E` (so no `..` and no hidden files);
/// - every other character (`/`, `\`, `%`, spaces, control characters,
///   non-ASCII letters) becomes `%XX` per UTF-8 byte, upper-case hex.
///
/// `alice` → `alice`, `john.doe` → `john.doe`, `josé` → `jos%C3%A9`,
/// `../../etc/passwd` → `%2E%2E%2F.%2E%2Fetc%2Fpasswd`.
///
/// # Errors
///
/// [`LedgerError::Config`] if the name is empty or longer than 200 bytes
/// once mapped.
///
/// # Example
///
/// ```
/// use costlayer::ledger::sanitize_user;
/// assert_eq!(sanitize_user("../../etc/passwd").unwrap(), "%2E%2E%2F.%2E%2Fetc%2Fpasswd");
/// assert!(sanitize_user("").is_err());
/// ```
pub fn sanitize_user(name: &str) -> Result<String, LedgerError> {
    files::sanitize_user(name)
}

/// Writes and syncs every record that any [`JsonlStorage`] of this process
/// has queued, waiting up to 5 seconds per ledger file. Dropping a storage
/// (its last clone) does the same for its files; call this before
/// `std::process::exit`, or at the end of `main` when a storage or tracker
/// lives in a `static` (such as [`CostTracker::global`](crate::tracker::CostTracker::global)),
/// which is never dropped. Blocking: from async code, prefer
/// [`Storage::flush`].
///
/// ```
/// costlayer::ledger::flush_all_queued();
/// ```
pub fn flush_all_queued() {
    writer::flush_all_blocking();
}

/// What [`Storage::append`] waits for. See
/// [Concurrency and durability](JsonlStorage#concurrency-and-durability).
///
/// | mode | `append` returns | a `kill -9` of the process may lose |
/// |---|---|---|
/// | `Queued` (default) | once the record is handed to the ledger's writer thread (no disk wait) | the records handed over in the last moments that the writer had not written yet (at most 256); never a line other readers cannot read past |
/// | `Confirmed` | once the record is in the file, and synced under [`FsyncPolicy::Always`] | nothing `append` returned `Ok` for |
///
/// In both modes [`Storage::flush`], dropping the last clone of the
/// storage, and the process's normal exit (`main` returning,
/// `std::process::exit`) write and sync everything queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AppendMode {
    /// Hand the record to the writer thread and return: the call path
    /// never waits for the disk. The writer group-commits what is queued
    /// into one locked `write` within a millisecond (while appends keep
    /// coming it naps 1 ms between groups, so that a queued append does
    /// not have to wake it), then syncs as the [`FsyncPolicy`]
    /// says. A write the file refuses (a full disk) is kept and retried,
    /// or handed to the tracker's [`Spool`](crate::ledger::Spool), and
    /// later appends wait for their answer until writes succeed again.
    #[default]
    Queued,
    /// Wait until the record is written (and synced, under
    /// [`FsyncPolicy::Always`]): every `Ok` is a durable record, and a
    /// write error is returned by the append it concerns.
    Confirmed,
}

/// When appended records are forced to disk (`fsync`).
///
/// The writer thread writes every group of queued records to the file as
/// soon as it has them; the policy says when it syncs. A crash of *the
/// process* never loses a record the writer wrote (the data is in the OS
/// page cache); the policies differ on a crash of *the machine* (power
/// loss, kernel panic):
///
/// | policy | the writer syncs | on power loss you may lose |
/// |---|---|---|
/// | `Always` (default) | after every group (one `fdatasync` shared by the records queued together) | the group being written |
/// | `EveryMillis(n)` | at most `n` ms after a write: the group-commit window | the records of the last `n` ms |
/// | `Never` | never; the OS writes back when it likes | whatever the OS had not written back (often ~30 s on Linux) |
///
/// With [`AppendMode::Confirmed`] and `Always`, `append` returns only once
/// its record is synced. [`Storage::flush`] forces a sync under any policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsyncPolicy {
    /// Sync before acknowledging every append (or group of concurrent
    /// appends). The default: losing a record is the worst bug a ledger can
    /// have, and a sync costs little next to an LLM call.
    #[default]
    Always,
    /// Sync in the background at most this many milliseconds after a write
    /// (must be at least 1).
    EveryMillis(u64),
    /// Never sync explicitly; the OS writes back when it likes.
    Never,
}

/// What a synchronous scan read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScanSummary {
    /// The files read, in order (the legacy `costs.json` first, if any).
    pub files: Vec<PathBuf>,
    /// Good records read (whether or not they matched the filter).
    pub records: u64,
    /// Records that matched the filter (and were passed on).
    pub matched: u64,
    /// Corrupt lines skipped (and passed on as [`ScanItem::Corrupt`]).
    pub corrupt: u64,
}

/// Builds a [`JsonlStorage`]. See [`JsonlStorage::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct JsonlStorageBuilder {
    dir: PathBuf,
    user: Option<String>,
    fsync: FsyncPolicy,
    append_mode: AppendMode,
    legacy_user: Option<String>,
}

impl JsonlStorageBuilder {
    /// What `append` waits for. Defaults to [`AppendMode::Queued`] (the
    /// disk is never on the caller's path); [`AppendMode::Confirmed`] makes
    /// each append wait for its record to be written (and synced, under
    /// [`FsyncPolicy::Always`]).
    pub fn append_mode(mut self, mode: AppendMode) -> Self {
        self.append_mode = mode;
        self
    }

    /// Whose ledger file this storage appends to (`costs_<user>.jsonl`, see
    /// [`sanitize_user`]) and whose alert history it keeps.
    ///
    /// Defaults to the OS user name (from `whoami`), or `unknown` if the OS
    /// does not tell.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// Who the entries of the legacy `costs.json` that name no user are
    /// attributed to. Defaults to [`DEFAULT_LEGACY_USER`] (`legacy`): never
    /// to whoever happens to read the directory.
    pub fn legacy_user(mut self, user: impl Into<String>) -> Self {
        self.legacy_user = Some(user.into());
        self
    }

    /// When appends are forced to disk. Defaults to [`FsyncPolicy::Always`].
    pub fn fsync(mut self, policy: FsyncPolicy) -> Self {
        self.fsync = policy;
        self
    }

    /// Builds the storage. No file or directory is created until the first
    /// write (so read-only tools leave no trace); call
    /// [`JsonlStorage::ensure_writable`] to check write access up front.
    ///
    /// # Errors
    ///
    /// [`LedgerError::Config`] if the user name is empty or too long, or
    /// `EveryMillis(0)` was given.
    pub fn build(self) -> Result<JsonlStorage, LedgerError> {
        if self.fsync == FsyncPolicy::EveryMillis(0) {
            return Err(LedgerError::Config(
                "FsyncPolicy::EveryMillis(0) syncs on every append: use FsyncPolicy::Always, or a \
                 period of at least 1 ms"
                    .to_owned(),
            ));
        }
        let user = self.user.unwrap_or_else(files::os_user);
        let file_user = sanitize_user(&user)?;
        Ok(JsonlStorage {
            inner: Arc::new(Inner {
                path: self.dir.join(format!("costs_{file_user}.jsonl")),
                dir: self.dir,
                user,
                file_user,
                legacy_user: self
                    .legacy_user
                    .unwrap_or_else(|| DEFAULT_LEGACY_USER.to_owned()),
                fsync: self.fsync,
                append_mode: self.append_mode,
                spool: OnceLock::new(),
                writer: OnceLock::new(),
                others: std::sync::Mutex::new(std::collections::HashMap::new()),
                book: std::sync::Mutex::new(std::sync::Weak::new()),
            }),
        })
    }
}

/// The default ledger: one append-only JSONL file per user, no server.
///
/// Cheap to clone: clones share the writer thread.
///
/// # Files
///
/// In the ledger directory (default [`DEFAULT_DIR`], `data/metadata`):
///
/// | path | what |
/// |---|---|
/// | `costs_<user>.jsonl` | this user's records, one [`CostRecord`] a line, append-only |
/// | `alerts_<user>.jsonl` | the alerts this user's processes sent (every such file together is the directory's alert history) |
/// | `.alerts.lock` | the directory-wide lock held while an alert is marked |
/// | `outbox.jsonl` | the alert outbox: each alert's delivery state per sink (pending, delivered, failed with attempts and the last error), one [`OutboxEntry`](crate::alert::OutboxEntry) a line, the last line of a key wins |
/// | `costs.json` | the seed tool's legacy file, read (never rewritten) by every scan |
/// | `quarantine/` | `<file>.quarantine.jsonl`: one copy of every corrupt line of `<file>` met by a scan |
/// | `archive/<UTC timestamp>/` | where [`Storage::reset`] moves files |
///
/// `<user>` is the user name run through [`sanitize_user`], so it can never
/// leave the directory.
///
/// # Concurrency and durability
///
/// Any number of threads and processes may append to the same file. Every
/// append (or batch) is one `write` on a file opened with `O_APPEND`, made
/// while holding the file's advisory lock ([`std::fs::File::lock`]), so
/// records never interleave. Appends to one file from a process go through
/// a background thread that gathers the appends queued at that moment into
/// one write (group commit): concurrent callers share one lock and one
/// `fsync`.
///
/// By default ([`AppendMode::Queued`]) `append` hands the record to that
/// thread and returns: the caller never waits for the disk (except on the
/// first append to a file, which waits for its write so that a ledger that
/// cannot be opened at all fails there and then). The thread
/// writes each group within a millisecond of its first record (between
/// groups it naps up to 1 ms; an append somebody waits for, or 64 queued
/// ones, wake it at once; after four naps without an append, when appends
/// come less often than every few milliseconds, it sleeps until the next
/// one wakes it) and syncs it as the
/// [`FsyncPolicy`] says (default: right after writing it;
/// `EveryMillis(n)`: within `n` ms, the group-commit window). A scan by
/// this process first waits for what the process queued for the
/// directory, so it reads its own writes. [`Storage::flush`] writes and
/// syncs everything queued; so does dropping the storage's last clone (it
/// waits for the thread), and [`flush_all_queued`] for every storage of the
/// process. [`AppendMode::Confirmed`] makes each `append` wait for its
/// record to be written (and synced, under [`FsyncPolicy::Always`]), and
/// return the write's error.
///
/// What a `kill -9` (or a crash) of the process can lose:
///
/// | mode | lost | never lost |
/// |---|---|---|
/// | `Queued` | the records handed to the writer that it had not written yet: the tail of what was handed over, never a record in the middle, and never more than 256 records (beyond 256 queued writes an append waits for its answer); at the pace of real LLM calls, the records of the last millisecond | any record of a group already written; the file's other lines (a torn final line is at worst one cut-off line, which every reader skips and quarantines) |
/// | `Confirmed` | nothing `append` returned `Ok` for | every acknowledged record |
///
/// A power loss can also lose what was written but not yet synced: nothing
/// acknowledged under `Confirmed` + `Always`, the last window's records
/// under `EveryMillis(n)`.
///
/// If a queued write fails (disk full, permissions), its records are kept
/// and retried every 500 ms, or handed to the tracker's
/// [`Spool`](crate::ledger::Spool) when the storage belongs to a
/// [`CostTracker`](crate::tracker::CostTracker) (they keep counting in its
/// budgets); until a write succeeds again, appends wait for their answer,
/// so the next caller sees the error (and the tracker spools that record
/// too and refuses new calls at its pre-flight).
///
/// A writer killed mid-write can leave a torn final line. The next append
/// starts on a new line, and scans report the fragment as
/// [`ScanItem::Corrupt`] and copy it to `quarantine/`; every other line is
/// still read. Nothing is rewritten in place.
///
/// Locks are advisory: tools that edit ledger files by hand while
/// costlayer runs (editors, `sed -i`) bypass them.
///
/// # Alert history
///
/// Each user appends the alerts they sent to `alerts_<user>.jsonl`, but the
/// history is the **directory's**: [`Storage::mark_alert`] holds the
/// directory-wide lock file `.alerts.lock` while it looks for the key in
/// every `alerts_*.jsonl` and appends it to its own, so of several processes
/// (or threads, or users) racing on one key, exactly one gets `true`. A
/// team-wide budget therefore alerts once for the team, not once per user;
/// a budget over one user's spend has that scope in its key. Resetting a
/// user archives their alert file, re-arming the alerts they had sent.
///
/// # Reading
///
/// A scan (the team view) reads the legacy `costs.json` if present, then
/// every `costs_*.jsonl` by file name; [`ScanFilter::users`] and the other
/// filters narrow what is returned. Each file is read up to its length
/// when the scan reaches it, measured under a shared lock, so an append in
/// progress is never seen in part. Records are not sorted by time across
/// files. A line is corrupt if it is not a record, is not UTF-8, or is
/// longer than 1 MiB; a final line without newline is reported as a torn
/// tail. Each corrupt line is appended once to
/// `quarantine/<file>.quarantine.jsonl`, one file per ledger file, as a JSON
/// line with its source, line number, reason and bytes (an over-long
/// line's copy keeps its first 1 MiB).
///
/// The directory may be shared (committed to git, filled by teammates), so
/// its entries are not trusted: a `costs_*.jsonl`, `alerts_*.jsonl` or
/// `costs.json` that is a symbolic link, a directory, a FIFO or a device is
/// never opened through, written to or copied; a scan reports it as a
/// corrupt entry (line 0) and skips it, and an append to it fails with an
/// error that says to replace it. Amounts are validated: a negative cost,
/// or a cost or token count out of range, makes the line corrupt.
///
/// # Legacy `costs.json`
///
/// The file is a JSON array of call objects, or an object holding such an
/// array (under `records`, `calls`, `entries`, `history` or `costs`), or an
/// object mapping ids to call objects. Each entry is read as a
/// [`CostRecord`] if it already has that shape; otherwise these fields are
/// mapped (first match wins) and every other field is kept in
/// [`CostRecord::extra`]:
///
/// | record field | legacy field |
/// |---|---|
/// | `ts` | `ts`, `timestamp`, `time`, `date`, `created_at`: RFC 3339, `YYYY-MM-DD HH:MM:SS[.f]` (UTC), `YYYY-MM-DD`, or Unix seconds / milliseconds |
/// | `model` | `model` (required) |
/// | `provider` | `provider`; else from the model name (`gpt-*`, `o1`/`o3`/`o4*` → `openai`, `claude*` → `anthropic`, `gemini*` → `gemini`, otherwise `unknown`) |
/// | `user`, `team` | `user` / `user_id`, `team`; the user defaults to [`JsonlStorageBuilder::legacy_user`] (`legacy`) |
/// | `input_tokens` | `input_tokens`, `prompt_tokens` |
/// | `output_tokens` | `output_tokens`, `completion_tokens` |
/// | `cache_read_tokens` | `cache_read_tokens`, `cached_tokens`, `cache_read_input_tokens` |
/// | `cache_write_5m_tokens` | `cache_write_5m_tokens`, `cache_write_tokens`, `cache_creation_input_tokens` |
/// | `nano_usd` | `nano_usd`; else `cost`, `cost_usd`, `total_cost`, `usd` in dollars (exact decimal) |
/// | `id` | `id` if it is a ULID; else a ULID derived from the timestamp and the entry's content, stable across reads (the original `id` is kept as `legacy_id`) |
///
/// Every imported record also carries `"legacy_import": "costs.json"` in
/// `extra`. The file is only read, never rewritten. It holds several
/// users' records, so only a team reset ([`ResetScope::All`]) archives it.
///
/// # Lines of the earlier Python tool
///
/// The Python tool wrote one JSON object per call to the same per-user
/// `costs_<user>.jsonl` files, without `v` or `id` and with the cost in
/// dollars, for example
/// `{"timestamp": "2025-01-15T10:30:00.123456", "provider": "anthropic", "model": "claude-sonnet-4.5", "input_tokens": 1000, "output_tokens": 200, "cost": 0.0115}`.
/// A line that is not a ledger record is read with the mapping of the table
/// above, with two differences: the user defaults to the file's
/// (`costs_bob.jsonl` -> `bob`), and the dollar cost (`cost`, `cost_usd`,
/// `total_cost` or `usd`: a number such as `0.0115` or `1.23e-05`, or a
/// string such as `"0.0115"` or `"$0.0115"`) is converted exactly from its
/// decimal text, rounded half away from zero to the nano-dollar, never
/// through a binary float. Such records carry `"legacy_import":
/// "python-jsonl"`. A line the mapping cannot read (no `model`, no
/// timestamp, a cost that is not a number) is quarantined like any corrupt
/// line. Nothing is rewritten: new calls are appended in this version's
/// format after the old lines.
///
/// # Example
///
/// ```
/// use costlayer::ledger::{CostRecord, FsyncPolicy, JsonlStorage, ScanFilter, Storage};
/// use costlayer::{Money, Usage};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), costlayer::ledger::LedgerError> {
/// # let tmp = tempfile::tempdir().unwrap();
/// # let dir = tmp.path().join("metadata");
/// let ledger = JsonlStorage::builder(&dir)
///     .user("alice")
///     .fsync(FsyncPolicy::EveryMillis(200))
///     .build()?;
/// let mut rec = CostRecord::new("alice", "openai", "gpt-4o-mini", Usage::new(1_000, 200));
/// rec.nano_usd = Some(Money::from_nanos(270_000));
/// ledger.append(&rec).await?;
/// ledger.flush().await?;
/// assert!(dir.join("costs_alice.jsonl").is_file());
///
/// // The team view: every costs_*.jsonl in the directory.
/// let bob = JsonlStorage::builder(&dir).user("bob").build()?;
/// bob.append(&CostRecord::new("bob", "anthropic", "claude-haiku-4-5", Usage::new(10, 1))).await?;
/// let all = ledger.aggregate(&ScanFilter::default()).await?;
/// assert_eq!(all.calls, 2);
///
/// // Synchronous scan, for CLIs and reports.
/// let mut total = Money::ZERO;
/// let summary = ledger.scan_blocking(&ScanFilter::default(), |item| {
///     if let costlayer::ledger::ScanItem::Record(r) = item {
///         total += r.cost();
///     }
/// })?;
/// assert_eq!((summary.records, summary.corrupt), (2, 0));
/// assert_eq!(total, Money::from_nanos(270_000));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct JsonlStorage {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// This user's ledger file, `<dir>/costs_<user>.jsonl` (made once: the
    /// append path does not format it per record).
    path: PathBuf,
    dir: PathBuf,
    user: String,
    file_user: String,
    legacy_user: String,
    fsync: FsyncPolicy,
    append_mode: AppendMode,
    /// Where the writer puts queued records the file refuses.
    spool: OnceLock<Arc<super::Spool>>,
    writer: OnceLock<WriterHandle>,
    /// Writers of other users' files: a record goes to its own user's file.
    others: std::sync::Mutex<std::collections::HashMap<String, Arc<WriterHandle>>>,
    /// The directory book [`Storage::default_book`] handed out, while a
    /// tracker uses it (so trackers of one storage share one book).
    book: std::sync::Mutex<std::sync::Weak<crate::tracker::book::JsonlDirBook>>,
}

/// The capacity a record's line is serialised into (a line longer than
/// this grows it, once or twice).
const LINE_CAPACITY: usize = 1024;

/// The directory-wide lock file held while an alert is marked.
const ALERTS_LOCK: &str = ".alerts.lock";

/// One line of `alerts_<user>.jsonl`.
#[derive(Debug, Serialize, Deserialize)]
struct AlertLine {
    key: String,
    #[serde(default)]
    ts: Option<String>,
    #[serde(default)]
    payload: serde_json::Value,
}

impl JsonlStorage {
    /// A storage in `dir` with the default user and policy; the same as
    /// `JsonlStorage::builder(dir).build()`.
    ///
    /// # Errors
    ///
    /// As [`JsonlStorageBuilder::build`].
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, LedgerError> {
        Self::builder(dir).build()
    }

    /// A builder for a storage in `dir` (use [`DEFAULT_DIR`] for the usual
    /// `data/metadata`).
    pub fn builder(dir: impl Into<PathBuf>) -> JsonlStorageBuilder {
        JsonlStorageBuilder {
            dir: dir.into(),
            user: None,
            fsync: FsyncPolicy::default(),
            append_mode: AppendMode::default(),
            legacy_user: None,
        }
    }

    /// The default directory, [`DEFAULT_DIR`].
    pub fn default_dir() -> PathBuf {
        PathBuf::from(DEFAULT_DIR)
    }

    /// The directory holding the ledger files.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The user this storage appends as (as given, not sanitised).
    pub fn user(&self) -> &str {
        &self.inner.user
    }

    /// The durability policy.
    pub fn fsync_policy(&self) -> FsyncPolicy {
        self.inner.fsync
    }

    /// What `append` waits for.
    pub fn append_mode(&self) -> AppendMode {
        self.inner.append_mode
    }

    /// This user's ledger file, `<dir>/costs_<user>.jsonl`.
    pub fn ledger_path(&self) -> PathBuf {
        self.inner.path.clone()
    }

    /// This user's alert history, `<dir>/alerts_<user>.jsonl`.
    pub fn alerts_path(&self) -> PathBuf {
        self.inner
            .dir
            .join(format!("alerts_{}.jsonl", self.inner.file_user))
    }

    /// Where corrupt lines are copied, `<dir>/quarantine`.
    pub fn quarantine_dir(&self) -> PathBuf {
        self.inner.dir.join("quarantine")
    }

    /// Where resets move files, `<dir>/archive`.
    pub fn archive_dir(&self) -> PathBuf {
        self.inner.dir.join("archive")
    }

    /// Every ledger file of the team view (`costs_*.jsonl`, sorted), not
    /// counting the legacy `costs.json`. Empty if the directory is missing.
    ///
    /// # Errors
    ///
    /// [`LedgerError::Io`] if the directory cannot be listed.
    pub fn ledger_files(&self) -> Result<Vec<PathBuf>, LedgerError> {
        read::ledger_files(&self.inner.dir)
    }

    /// Creates the directory and this user's ledger file if needed and
    /// checks they can be appended to, so a bad setup fails at startup
    /// rather than at the first call.
    ///
    /// # Errors
    ///
    /// [`LedgerError::Io`] naming the path and what to do (permission
    /// denied, a directory where the file should be, read-only file
    /// system...).
    pub fn ensure_writable(&self) -> Result<(), LedgerError> {
        ensure_dir(&self.inner.dir)?;
        let path = self.ledger_path();
        let file = open_locked_append(&path, "append to")?;
        drop(LockGuard(&file));
        Ok(())
    }

    /// Scans the team view synchronously (see [Reading](JsonlStorage#reading)), calling `f` with every record
    /// that matches `filter` and every corrupt line, in file order (the
    /// legacy `costs.json` first, then `costs_*.jsonl` by name; append
    /// order within a file). Memory stays flat: one line at a time.
    ///
    /// Blocking: call it from a plain thread or `spawn_blocking`, not from
    /// an async task. [`Storage::scan`] is the async form.
    ///
    /// # Errors
    ///
    /// [`LedgerError::Io`] if the directory or a file cannot be read (a
    /// missing directory is an empty ledger, not an error).
    pub fn scan_blocking(
        &self,
        filter: &ScanFilter,
        mut f: impl FnMut(ScanItem),
    ) -> Result<ScanSummary, LedgerError> {
        writer::barrier_dir_blocking(&self.inner.dir);
        read::scan_dir(&self.scan_context(), filter, &mut |item| {
            f(item);
            true
        })
    }

    /// Folds the whole team view into `fold` on every available core
    /// ([`std::thread::available_parallelism`]); see
    /// [`JsonlStorage::fold_blocking_threads`].
    ///
    /// # Errors
    ///
    /// As [`JsonlStorage::scan_blocking`].
    pub fn fold_blocking<F: ParallelFold>(&self, fold: &mut F) -> Result<ScanSummary, LedgerError> {
        let threads = std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN);
        self.fold_blocking_threads(fold, threads)
    }

    /// Folds the whole team view (unfiltered) into `fold`, on up to
    /// `threads` threads: the parallel form of
    /// `scan_blocking(&ScanFilter::default(), ..)`, for reports that read
    /// every record (the dashboard).
    ///
    /// The same lines are read as by [`JsonlStorage::scan_blocking`], with
    /// the same results: the same records, the same corrupt lines with the
    /// same line numbers and reasons, each copied to quarantine once. Each
    /// thread folds part of the ledger into its own [`ParallelFold::fork`]
    /// of `fold`, and the parts are merged into `fold`. Records reach the
    /// fold as [`RecordRef`]s, borrowed from the read buffer: a valid line
    /// in any layout (costlayer's own, Python's `json.dumps`, keys in any
    /// order, escapes, fields left out) is read in place by a scanner that
    /// skips the fields reports do not use, and only lines it cannot take
    /// go through the full parser into a [`CostRecord`]. Memory stays
    /// flat: a read buffer per thread, and a few bytes per corrupt line.
    ///
    /// Unlike `scan_blocking`, files are folded in groups of up to 64 (so
    /// a directory of thousands of users never holds more descriptors
    /// open), each group's lengths are taken when the group starts (under
    /// each file's shared lock), and records arrive in no particular order.
    /// A group's corrupt lines are folded after its records, in file and
    /// line order, into `fold` itself.
    ///
    /// Blocking: call it from a plain thread or `spawn_blocking`.
    ///
    /// # Errors
    ///
    /// As [`JsonlStorage::scan_blocking`].
    ///
    /// # Example
    ///
    /// ```
    /// use std::num::NonZeroUsize;
    /// use costlayer::ledger::{CorruptLine, JsonlStorage, ParallelFold, RecordRef};
    /// use costlayer::{Money, Usage};
    ///
    /// #[derive(Default)]
    /// struct Spend { calls: u64, cost: Money }
    ///
    /// impl ParallelFold for Spend {
    ///     fn fork(&self) -> Self { Spend::default() }
    ///     fn record(&mut self, r: &RecordRef<'_>) { self.calls += 1; self.cost += r.cost(); }
    ///     fn corrupt(&mut self, _: CorruptLine) {}
    ///     fn merge(&mut self, other: Self) { self.calls += other.calls; self.cost += other.cost; }
    /// }
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let tmp = tempfile::tempdir()?;
    /// # let dir = tmp.path();
    /// let line = r#"{"v":1,"id":"01JDQ3Z6Y2V8W5H4K7M9N0P1Q2","ts":"2026-11-01T10:00:00.000Z","user":"alice","provider":"openai","model":"gpt-4o","nano_usd":250}"#;
    /// std::fs::write(dir.join("costs_alice.jsonl"), format!("{line}\n{line}\n"))?;
    /// let ledger = JsonlStorage::builder(dir).user("alice").build()?;
    /// let mut spend = Spend::default();
    /// let scanned = ledger.fold_blocking_threads(&mut spend, NonZeroUsize::new(2).unwrap())?;
    /// assert_eq!((scanned.records, spend.calls), (2, 2));
    /// assert_eq!(spend.cost, Money::from_nanos(500));
    /// # Ok(()) }
    /// ```
    pub fn fold_blocking_threads<F: ParallelFold>(
        &self,
        fold: &mut F,
        threads: NonZeroUsize,
    ) -> Result<ScanSummary, LedgerError> {
        writer::barrier_dir_blocking(&self.inner.dir);
        par::fold_dir(&self.scan_context(), fold, threads.get())
    }

    /// Every alert in the directory's history, as `(key, user, payload)`:
    /// the user is the `<user>` part of the `alerts_<user>.jsonl` file it
    /// came from (the sanitised name). Unreadable lines are skipped.
    ///
    /// # Errors
    ///
    /// [`LedgerError::Io`] if a history file cannot be read.
    pub fn alert_history(&self) -> Result<Vec<(String, String, serde_json::Value)>, LedgerError> {
        let mut out = Vec::new();
        for path in read::list_matching(&self.inner.dir, "alerts_", ".jsonl")? {
            let user = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix("alerts_"))
                .and_then(|n| n.strip_suffix(".jsonl"))
                .unwrap_or_default()
                .to_owned();
            let file = match safe_open::read(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                // A linked or special alert history is not read.
                Err(e) if safe_open::unsafe_file(&e).is_some() => continue,
                Err(e) => return Err(io_error(&path, "read the alert history", e)),
            };
            for line in BufReader::new(file).split(b'\n') {
                let line = line.map_err(|e| io_error(&path, "read the alert history", e))?;
                if let Ok(a) = serde_json::from_slice::<AlertLine>(&line) {
                    out.push((a.key, user.clone(), a.payload));
                }
            }
        }
        Ok(out)
    }

    fn scan_context(&self) -> ScanContext {
        ScanContext {
            dir: self.inner.dir.clone(),
            legacy_user: self.inner.legacy_user.clone(),
            quarantine: Quarantine::new(Some(self.quarantine_dir())),
        }
    }

    fn writer(&self) -> Result<&WriterHandle, LedgerError> {
        if let Some(w) = self.inner.writer.get() {
            return Ok(w);
        }
        let handle = WriterHandle::spawn(
            self.ledger_path(),
            self.inner.fsync,
            self.inner.spool.get().cloned(),
        )?;
        // If another thread won the race, its handle is used and ours is
        // dropped (its idle thread exits at once).
        let _ = self.inner.writer.set(handle);
        self.inner
            .writer
            .get()
            .ok_or_else(|| LedgerError::Config("the ledger writer failed to start".to_owned()))
    }

    /// The usual record, the storage's own user's, queued: handed to the
    /// writer thread, which serialises it (the caller pays a clone of
    /// shared strings and a send, not the JSON). `None` when the append
    /// has to wait: another user's record, [`AppendMode::Confirmed`], the
    /// file's first append, a failing file or a full queue.
    fn queue_own(&self, record: &CostRecord) -> Option<Result<(), LedgerError>> {
        if record.user != self.inner.user || self.inner.append_mode != AppendMode::Queued {
            return None;
        }
        let handle = match self.writer() {
            Ok(h) => h,
            Err(e) => return Some(Err(e)),
        };
        handle
            .shared
            .may_queue()
            .then(|| handle.send(Job::Record(record.clone()), &self.inner.path))
    }

    /// Appends `bytes` (records of `user`) to `costs_<user>.jsonl`: the
    /// record's user decides its file, whatever this storage's user is.
    async fn submit_as(&self, user: &str, bytes: Vec<u8>) -> Result<(), LedgerError> {
        // The storage's own user (the usual record): no name to sanitise.
        if user == self.inner.user {
            return self.submit(bytes).await;
        }
        let file_user = sanitize_user(user)?;
        if file_user == self.inner.file_user {
            return self.submit(bytes).await;
        }
        let path = self.inner.dir.join(format!("costs_{file_user}.jsonl"));
        let handle = {
            let mut others = self.inner.others.lock().unwrap_or_else(|p| p.into_inner());
            match others.get(&file_user) {
                Some(h) => h.clone(),
                None => {
                    let h = Arc::new(WriterHandle::spawn(
                        path.clone(),
                        self.inner.fsync,
                        self.inner.spool.get().cloned(),
                    )?);
                    others.insert(file_user, h.clone());
                    h
                }
            }
        };
        self.submit_to(&handle, &path, bytes).await
    }

    async fn submit(&self, bytes: Vec<u8>) -> Result<(), LedgerError> {
        self.submit_to(self.writer()?, &self.inner.path, bytes)
            .await
    }

    /// Hands `bytes` to `handle`'s writer: queued (returns at once) under
    /// [`AppendMode::Queued`] once a write to the file succeeded and while
    /// writes succeed, else waits for the answer (so the first append of a
    /// file, and the first after a failure, reports its error).
    async fn submit_to(
        &self,
        handle: &WriterHandle,
        path: &Path,
        bytes: Vec<u8>,
    ) -> Result<(), LedgerError> {
        let confirmed = self.inner.append_mode == AppendMode::Confirmed;
        if !confirmed && handle.shared.may_queue() {
            return handle.send(
                Job::Write {
                    bytes,
                    ack: None,
                    sync: false,
                },
                path,
            );
        }
        let (ack, done) = tokio::sync::oneshot::channel();
        handle.send(
            Job::Write {
                bytes,
                ack: Some(writer::Ack::Async(ack)),
                sync: confirmed && self.inner.fsync == FsyncPolicy::Always,
            },
            path,
        )?;
        done.await.map_err(|_| stopped(path))?
    }

    fn mark_alert_blocking(
        &self,
        key: &str,
        payload: &serde_json::Value,
    ) -> Result<bool, LedgerError> {
        // One lock for the whole directory: the check over every user's
        // history and the append are one atomic step for all processes.
        self.with_alerts_lock(|| self.mark_alert_locked(key, payload))
    }

    /// Runs `f` holding the directory-wide alert lock (created if needed).
    fn with_alerts_lock<T>(
        &self,
        f: impl FnOnce() -> Result<T, LedgerError>,
    ) -> Result<T, LedgerError> {
        ensure_dir(&self.inner.dir)?;
        let lock_path = self.inner.dir.join(ALERTS_LOCK);
        let lock = open_locked_append(&lock_path, "lock the alert history in")?;
        let _dir_guard = LockGuard(&lock);
        f()
    }

    /// [`Storage::mark_alert`], the alert lock held.
    fn mark_alert_locked(
        &self,
        key: &str,
        payload: &serde_json::Value,
    ) -> Result<bool, LedgerError> {
        if self.alert_fired_blocking(key)? {
            return Ok(false);
        }
        let path = self.alerts_path();
        let file = open_locked_append(&path, "record an alert in")?;
        let guard = LockGuard(&file);
        let line = AlertLine {
            key: key.to_owned(),
            ts: Some(Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            payload: payload.clone(),
        };
        let mut bytes = serde_json::to_vec(&line)?;
        bytes.push(b'\n');
        writer::append_bytes(&file, &bytes, None)
            .and_then(|_| file.sync_data())
            .map_err(|e| io_error(&path, "record an alert in", e))?;
        drop(guard);
        Ok(true)
    }

    /// Whether `key` is in any user's alert history in the directory.
    fn alert_fired_blocking(&self, key: &str) -> Result<bool, LedgerError> {
        for path in read::list_matching(&self.inner.dir, "alerts_", ".jsonl")? {
            let file = match safe_open::read(&path) {
                Ok(f) => f,
                // Archived by a reset since the listing.
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                // A link or a special file: never read through.
                Err(e) if safe_open::unsafe_file(&e).is_some() => {
                    tracing::warn!(error = %e, "skipped an alert history file");
                    continue;
                }
                Err(e) => return Err(io_error(&path, "read the alert history", e)),
            };
            file.lock_shared().map_err(|e| io_error(&path, "lock", e))?;
            let _guard = LockGuard(&file);
            if alert_in(&file, key, &path)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn reset_blocking(&self, scope: &ResetScope) -> Result<ResetReport, LedgerError> {
        let dir = &self.inner.dir;
        // What this process queued is archived with the rest.
        writer::barrier_dir_blocking(dir);
        let legacy = dir.join(LEGACY_FILE);
        let mut targets: Vec<PathBuf> = match scope {
            ResetScope::User(u) => {
                let s = sanitize_user(u)?;
                // Only this user's own files: the legacy file holds other
                // users' records too, so only a team reset archives it.
                vec![
                    dir.join(format!("costs_{s}.jsonl")),
                    dir.join(format!("alerts_{s}.jsonl")),
                ]
            }
            ResetScope::All => {
                let mut v = read::ledger_files(dir)?;
                v.extend(read::list_matching(dir, "alerts_", ".jsonl")?);
                v.push(dir.join(outbox::OUTBOX_FILE));
                v.push(legacy.clone());
                v
            }
        };
        targets.retain(|p| safe_open::exists_nofollow(p));
        if targets.is_empty() {
            return Ok(ResetReport::default());
        }
        let archive = create_archive_dir(&self.archive_dir())?;
        let mut report = ResetReport {
            archived_to: Some(archive.display().to_string()),
            moved: Vec::new(),
            records: 0,
        };
        for path in targets {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let dest = archive.join(&name);
            let file = match safe_open::read(&path) {
                Ok(f) => f,
                Err(e) if safe_open::unsafe_file(&e).is_some() => {
                    // A link (or a special file) is moved as it is, never
                    // opened: renaming a link does not touch its target.
                    std::fs::rename(&path, &dest)
                        .map_err(|e| io_error(&path, "move to the archive", e))?;
                    report.moved.push(name);
                    continue;
                }
                Err(e) => return Err(io_error(&path, "archive", e)),
            };
            // Hold the lock while moving, so no append is cut in half; a
            // writer waiting on it sees the file moved and opens a new one.
            file.lock().map_err(|e| io_error(&path, "lock", e))?;
            let guard = LockGuard(&file);
            if path == legacy {
                report.records += count_legacy(&path, &self.inner.legacy_user)?;
            } else if name.starts_with("costs_") {
                report.records +=
                    read::count_records(&file).map_err(|e| io_error(&path, "archive", e))?;
            }
            std::fs::rename(&path, &dest).map_err(|e| io_error(&path, "move to the archive", e))?;
            drop(guard);
            report.moved.push(name);
        }
        sync_dir(&archive);
        sync_dir(dir);
        tracing::info!(archive = %archive.display(), moved = ?report.moved, records = report.records, "ledger reset");
        Ok(report)
    }
}

fn stopped(path: &Path) -> LedgerError {
    io_error(
        path,
        "append to",
        std::io::Error::other("the ledger writer thread stopped before confirming the append"),
    )
}

/// Whether `key` is in an alert history file (read from the start).
fn alert_in(file: &File, key: &str, path: &Path) -> Result<bool, LedgerError> {
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| io_error(path, "read the alert history", e))?;
        if n == 0 {
            return Ok(false);
        }
        if let Ok(a) = serde_json::from_slice::<AlertLine>(&line) {
            if a.key == key {
                return Ok(true);
            }
        }
    }
}

fn count_legacy(path: &Path, user: &str) -> Result<u64, LedgerError> {
    let mut summary = ScanSummary::default();
    legacy::scan_legacy(
        path,
        user,
        &Quarantine::new(None),
        &ScanFilter::default(),
        &mut summary,
        &mut |_| true,
    )?;
    Ok(summary.records)
}

/// Creates `archive/<UTC timestamp>[-n]`, unique even for two resets in the
/// same millisecond.
fn create_archive_dir(root: &Path) -> Result<PathBuf, LedgerError> {
    // A committed `archive` link must not receive the moved files.
    safe_open::ensure_real_dir(root)
        .map_err(|e| io_error(root, "create the archive directory", e))?;
    let stamp = Utc::now().format("%Y%m%dT%H%M%S%.3fZ").to_string();
    for n in 0u32.. {
        let name = if n == 0 {
            stamp.clone()
        } else {
            format!("{stamp}-{n}")
        };
        let path = root.join(name);
        match std::fs::create_dir(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == ErrorKind::AlreadyExists && n < 1000 => continue,
            Err(e) => return Err(io_error(&path, "create the archive directory", e)),
        }
    }
    Err(LedgerError::Config(
        "no free archive directory name".to_owned(),
    ))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, LedgerError> + Send + 'static,
) -> Result<T, LedgerError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| LedgerError::Backend(Box::new(e)))?
}

#[async_trait]
impl Storage for JsonlStorage {
    /// A [`JsonlDirBook`](crate::tracker::book::JsonlDirBook) on this
    /// ledger's directory, with its default settings: every process using
    /// the directory shares its bound. One book per storage while in use:
    /// clones of the storage, and trackers built on them, share it.
    fn default_book(
        &self,
    ) -> Option<Result<Arc<dyn crate::tracker::book::BudgetBook>, crate::tracker::book::BookError>>
    {
        use crate::tracker::book::{BudgetBook, JsonlDirBook};
        let mut slot = self.inner.book.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(book) = slot.upgrade() {
            return Some(Ok(book as Arc<dyn BudgetBook>));
        }
        // The directory is created by the first write; until then the
        // ledger's pre-flight check reports a directory that cannot be.
        let book = JsonlDirBook::builder(&self.inner.dir)
            .create_dir(false)
            .build();
        Some(book.map(|book| {
            let book = Arc::new(book);
            *slot = Arc::downgrade(&book);
            book as Arc<dyn BudgetBook>
        }))
    }

    fn append_now(&self, record: &CostRecord) -> Option<Result<(), LedgerError>> {
        self.queue_own(record)
    }

    async fn append(&self, record: &CostRecord) -> Result<(), LedgerError> {
        if let Some(r) = self.queue_own(record) {
            return r;
        }
        // One allocation for the line: a record is 300–700 bytes
        // (`to_vec` would start at 128 and grow three times).
        let mut bytes = Vec::with_capacity(LINE_CAPACITY);
        serde_json::to_writer(&mut bytes, &scrub::record(record))?;
        bytes.push(b'\n');
        self.submit_as(&record.user, bytes).await
    }

    async fn append_batch(&self, records: &[CostRecord]) -> Result<(), LedgerError> {
        if records.is_empty() {
            return Ok(());
        }
        // One write per user, each to that user's file.
        let mut by_user: Vec<(&str, Vec<u8>)> = Vec::new();
        for r in records {
            let i = match by_user.iter().position(|(u, _)| *u == r.user) {
                Some(i) => i,
                None => {
                    by_user.push((&r.user, Vec::with_capacity(records.len() * 420)));
                    by_user.len() - 1
                }
            };
            serde_json::to_writer(&mut by_user[i].1, &scrub::record(r))?;
            by_user[i].1.push(b'\n');
        }
        for (user, bytes) in by_user {
            self.submit_as(user, bytes).await?;
        }
        Ok(())
    }

    async fn scan(&self, filter: &ScanFilter) -> Result<RecordStream, LedgerError> {
        type Batch = Vec<Result<ScanItem, LedgerError>>;
        let (tx, rx) = tokio::sync::mpsc::channel::<Batch>(SCAN_CHANNEL);
        writer::barrier_dir(&self.inner.dir).await;
        let ctx = self.scan_context();
        let filter = filter.clone();
        tokio::task::spawn_blocking(move || {
            let mut batch: Batch = Vec::with_capacity(SCAN_BATCH);
            let mut receiver_gone = false;
            let mut sink = |item: ScanItem| {
                batch.push(Ok(item));
                if batch.len() >= SCAN_BATCH {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(SCAN_BATCH));
                    if tx.blocking_send(full).is_err() {
                        receiver_gone = true;
                        return false;
                    }
                }
                true
            };
            let result = read::scan_dir(&ctx, &filter, &mut sink);
            if receiver_gone {
                return;
            }
            if let Err(e) = result {
                batch.push(Err(e));
            }
            if !batch.is_empty() {
                let _ = tx.blocking_send(batch);
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
        let this = self.clone();
        let filter = filter.clone();
        blocking(move || {
            let mut agg = Aggregate::default();
            this.scan_blocking(&filter, |item| match item {
                ScanItem::Record(r) => {
                    agg.calls += 1;
                    match r.nano_usd {
                        Some(c) => agg.nano_usd += c,
                        None => agg.unpriced_calls += 1,
                    }
                }
                ScanItem::Corrupt(_) => agg.corrupted_lines += 1,
            })?;
            Ok(agg)
        })
        .await
    }

    async fn mark_alert(
        &self,
        key: &str,
        payload: &serde_json::Value,
    ) -> Result<bool, LedgerError> {
        let this = self.clone();
        let key = key.to_owned();
        let payload = payload.clone();
        blocking(move || this.mark_alert_blocking(&key, &payload)).await
    }

    async fn alert_fired(&self, key: &str) -> Result<bool, LedgerError> {
        let this = self.clone();
        let key = key.to_owned();
        blocking(move || this.alert_fired_blocking(&key)).await
    }

    async fn reset(&self, scope: ResetScope) -> Result<ResetReport, LedgerError> {
        let this = self.clone();
        blocking(move || this.reset_blocking(&scope)).await
    }

    async fn check_writable(&self) -> Result<(), LedgerError> {
        let this = self.clone();
        blocking(move || this.check_writable_blocking()).await
    }

    async fn claim_alert(&self, entry: &crate::alert::OutboxEntry) -> Result<bool, LedgerError> {
        let (this, entry) = (self.clone(), entry.clone());
        blocking(move || this.claim_alert_blocking(&entry)).await
    }

    async fn save_delivery(&self, entry: &crate::alert::OutboxEntry) -> Result<(), LedgerError> {
        let (this, entry) = (self.clone(), entry.clone());
        blocking(move || this.save_delivery_blocking(&entry)).await
    }

    async fn take_delivery(
        &self,
        key: &str,
        owner: &crate::alert::DeliveryOwner,
        now: chrono::DateTime<Utc>,
        lease: std::time::Duration,
    ) -> Result<Option<crate::alert::OutboxEntry>, LedgerError> {
        let (this, key, owner) = (self.clone(), key.to_owned(), owner.clone());
        blocking(move || this.take_delivery_blocking(&key, &owner, now, lease)).await
    }

    async fn deliveries(&self) -> Result<Vec<crate::alert::OutboxEntry>, LedgerError> {
        let this = self.clone();
        blocking(move || this.deliveries_blocking()).await
    }

    async fn flush(&self) -> Result<(), LedgerError> {
        let others: Vec<(String, Arc<WriterHandle>)> = self
            .inner
            .others
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(u, h)| (u.clone(), h.clone()))
            .collect();
        for (user, h) in others {
            let path = self.inner.dir.join(format!("costs_{user}.jsonl"));
            let (ack, done) = tokio::sync::oneshot::channel();
            h.send(
                Job::Flush {
                    ack: writer::Ack::Async(ack),
                },
                &path,
            )?;
            done.await.map_err(|_| stopped(&path))??;
        }
        let Some(w) = self.inner.writer.get() else {
            return Ok(());
        };
        let path = self.ledger_path();
        let (ack, done) = tokio::sync::oneshot::channel();
        w.send(
            Job::Flush {
                ack: writer::Ack::Async(ack),
            },
            &path,
        )?;
        done.await.map_err(|_| stopped(&path))?
    }

    fn attach_spool(&self, spool: Arc<super::Spool>) {
        if let Some(w) = self.inner.writer.get() {
            let _ = w.shared.spool.set(spool.clone());
        }
        for h in self
            .inner
            .others
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
        {
            let _ = h.shared.spool.set(spool.clone());
        }
        let _ = self.inner.spool.set(spool);
    }
}
