//! [`JsonlDirBook`]: the book of every process on the host that uses one
//! JSONL data directory.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::fs::{File, OpenOptions};

use crate::ledger::safe_open;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{
    BookError, BookKey, BookLine, BookTotals, BudgetBook, Hold, HoldKeys, LineTotals, Reserved,
};
use crate::ledger::jsonl::files::identity;
use crate::ledger::jsonl::read::{classify, list_matching, Line, Lines, Outcome};
use crate::ledger::CostRecord;
use crate::Money;

/// How long a hold outlives its owner's last sign of life: 5 minutes. Set
/// it above your longest call with [`JsonlDirBookBuilder::lease`].
pub const DEFAULT_LEASE: Duration = Duration::from_secs(300);

const LOCK_FILE: &str = "budget.lock";
const HOLDS_FILE: &str = "budget_holds.json";
const CHECKPOINT_FILE: &str = "budget_checkpoint.json";
const VERSION: u32 = 1;
/// How many of a chunk's settled records its hold lists by id.
const LISTED_UNREAD: usize = 64;
/// Ledger bytes read between two checkpoint writes.
const CHECKPOINT_EVERY: u64 = 1 << 20;
/// How long a process serves reservations from its chunk without the
/// directory lock, by default: 500 ms. See
/// [`JsonlDirBookBuilder::chunk_window`].
pub const DEFAULT_CHUNK_WINDOW: Duration = Duration::from_millis(500);
/// How many calls' worth a chunk grows to at most, by default: 32. See
/// [`JsonlDirBookBuilder::chunk_max_calls`].
pub const DEFAULT_CHUNK_MAX_CALLS: u32 = 32;
/// The share of the headroom one chunk may take, by default: 1/8. See
/// [`JsonlDirBookBuilder::chunk_headroom_share`].
pub const DEFAULT_CHUNK_HEADROOM_SHARE: u32 = 8;

/// Builds a [`JsonlDirBook`]; see [`JsonlDirBook::builder`].
///
/// # Chunks
///
/// To keep the directory lock off most calls, a process leases a *chunk*
/// of each blocking budget's headroom (one hold in the holds file, which
/// every process counts) and serves its next reservations from it in
/// memory. Three settings size it; each trades fewer lock round trips
/// (throughput, latency) against how much of the headroom one process can
/// hold that the others cannot use until it is returned:
///
/// | setting | default | larger | smaller |
/// |---|---|---|---|
/// | [`chunk_window`](Self::chunk_window) | 500 ms (at most a quarter of the lease) | fewer lock round trips; unused headroom comes back later | the unused part returns sooner; `0` turns chunks off |
/// | [`chunk_max_calls`](Self::chunk_max_calls) | 32 calls' worth | fewer round trips under steady load | less headroom held per process; `0` turns chunks off |
/// | [`chunk_headroom_share`](Self::chunk_headroom_share) | 1/8 of the headroom left | smaller chunks near the limit, so many processes each still get the last dollars | (a share of 1) one process may take all the headroom left |
///
/// The bound is exact whatever the settings: a chunk is counted at its
/// full size by every other process, and a call that does not fit in any
/// chunk is decided under the lock. With chunks off every reserve, settle
/// and release takes the lock and writes its own hold, call by call.
#[derive(Debug)]
#[must_use]
pub struct JsonlDirBookBuilder {
    dir: PathBuf,
    lease: Duration,
    chunks: ChunkConfig,
    create_dir: bool,
}

/// The chunk settings of a book (see [`JsonlDirBookBuilder`]).
#[derive(Debug, Clone, Copy)]
struct ChunkConfig {
    window: Duration,
    max_calls: i64,
    share: i64,
}

impl Default for ChunkConfig {
    fn default() -> Self {
        ChunkConfig {
            window: DEFAULT_CHUNK_WINDOW,
            max_calls: i64::from(DEFAULT_CHUNK_MAX_CALLS),
            share: i64::from(DEFAULT_CHUNK_HEADROOM_SHARE),
        }
    }
}

impl JsonlDirBookBuilder {
    /// How long another process waits before it drops a hold of this one
    /// that was not renewed (a crashed process's holds). Defaults to
    /// [`DEFAULT_LEASE`].
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How long this process serves reservations from its chunk without
    /// the directory lock before it takes the lock again (to return the
    /// unused part, resize the chunk to the load and renew its lease).
    /// Defaults to [`DEFAULT_CHUNK_WINDOW`] (500 ms); never more than a
    /// quarter of the [lease](Self::lease). `Duration::ZERO` turns chunks
    /// off: every call takes the lock.
    pub fn chunk_window(mut self, window: Duration) -> Self {
        self.chunks.window = window;
        self
    }

    /// How far a chunk grows while this process keeps coming back for
    /// more: a new chunk covers the call that takes it and no more (a
    /// short program holds only what it spends), then each renewal doubles
    /// the room for further calls (1, 2, 4... calls' worth) up to `calls`.
    /// Defaults to [`DEFAULT_CHUNK_MAX_CALLS`] (32). `0` turns chunks off.
    pub fn chunk_max_calls(mut self, calls: u32) -> Self {
        self.chunks.max_calls = i64::from(calls);
        self
    }

    /// A chunk takes at most `1/share` of the headroom left after the call
    /// that takes it, so several processes near the limit still each get
    /// a part of the last dollars (near the limit a chunk shrinks to the
    /// call itself). Defaults to [`DEFAULT_CHUNK_HEADROOM_SHARE`] (8);
    /// `1` lets one process take all of it, `0` is refused by
    /// [`build`](Self::build).
    pub fn chunk_headroom_share(mut self, share: u32) -> Self {
        self.chunks.share = i64::from(share);
        self
    }

    /// Turns chunks off (as [`chunk_window`](Self::chunk_window) with
    /// zero): every reservation is decided and written under the lock, one
    /// hold per call. The slowest setting; for tests, or processes that
    /// make a call now and then.
    pub fn no_chunks(self) -> Self {
        self.chunk_window(Duration::ZERO)
    }

    /// Whether [`build`](Self::build) creates the directory (the default).
    /// Without it the first operation creates it (the ledger's default
    /// book: a directory that cannot be created is then reported by the
    /// ledger's pre-flight check, before the call is sent).
    pub(crate) fn create_dir(mut self, create: bool) -> Self {
        self.create_dir = create;
        self
    }

    /// Creates the directory if needed and builds the book. Nothing is
    /// read until the first operation.
    ///
    /// # Errors
    ///
    /// [`BookError::Io`] if the directory cannot be created, or
    /// [`BookError::Other`] for a zero lease or headroom share.
    pub fn build(self) -> Result<JsonlDirBook, BookError> {
        if self.lease.is_zero() {
            return Err(BookError::Other(
                "the hold lease is 0: use at least a few seconds (default 5 minutes)".to_owned(),
            ));
        }
        if self.chunks.share == 0 {
            return Err(BookError::Other(
                "the chunk headroom share is 0: use 1 or more (default 8, a chunk takes at most \
                 1/8 of the headroom); to turn chunks off use no_chunks()"
                    .to_owned(),
            ));
        }
        if self.create_dir {
            std::fs::create_dir_all(&self.dir).map_err(|source| BookError::Io {
                op: "create",
                path: self.dir.clone(),
                source,
            })?;
        }
        Ok(JsonlDirBook {
            dir: self.dir,
            lease: self.lease,
            chunks: self.chunks,
            owner: Owner {
                pid: std::process::id(),
                host: whoami::fallible::hostname().unwrap_or_else(|_| "unknown".to_owned()),
                nonce: ulid::Ulid::new().to_string(),
            },
            state: Mutex::new(DirState::default()),
        })
    }
}

/// The budget book of every process on the host that shares a JSONL data
/// directory: exact across processes.
///
/// Files, next to the ledger's `costs_*.jsonl`:
///
/// | file | what |
/// |---|---|
/// | `budget.lock` | the directory lock (`flock`), held for the few microseconds of each reserve, settle and release |
/// | `budget_holds.json` | the live holds: owner (pid, host, per-process nonce), lease, lines, amount, and, once settled, the record id (a chunk: its settled part and up to 64 of its records, so a process that reads one from the ledger takes it out of the chunk and nothing counts twice) |
/// | `budget_checkpoint.json` | per-line settled sums at given per-file offsets, so a new process reads only what was appended since |
///
/// Under the lock an operation (1) reads every ledger file from where this
/// process last stopped (or the checkpoint) to its end, adding each record
/// to the lines it counts in, (2) drops each settled hold whose record it
/// just read (so a settled call counts once: as a hold until its record is
/// in the ledger, then as the record), (3) expires holds whose owner's lease
/// ran out, (4) decides, and (5) rewrites the holds file (a temporary file
/// renamed over it: a full disk fails the write and refuses the call, the
/// old file stays whole).
///
/// Leases are measured on the observer's monotonic clock from the moment it
/// first saw a hold in its current state, never by comparing one process's
/// wall clock with another's; the owner renews its unsettled holds each
/// time it writes. A hold of a process that is gone (same host, no such
/// pid) expires at once. The kernel drops the lock of a process that dies.
///
/// ```
/// use costlayer::tracker::book::JsonlDirBook;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let book = JsonlDirBook::builder(dir.path())
///     .lease(std::time::Duration::from_secs(60))
///     .build()?;
/// assert_eq!(book.dir(), dir.path());
/// # Ok(()) }
/// ```
pub struct JsonlDirBook {
    dir: PathBuf,
    lease: Duration,
    chunks: ChunkConfig,
    owner: Owner,
    state: Mutex<DirState>,
}

impl Drop for JsonlDirBook {
    /// Returns the unused part of this process's chunk to the other
    /// processes (what it still covers stays held until its lease ends or
    /// this process is seen gone).
    fn drop(&mut self) {
        if self.state().chunk.is_some() {
            if let Err(e) = self.locked(&[], |_| ()) {
                tracing::warn!(error = %e, "the budget chunk could not be returned; it expires after the lease");
            }
        }
    }
}

impl fmt::Debug for JsonlDirBook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonlDirBook")
            .field("dir", &self.dir)
            .field("lease", &self.lease)
            .field("chunk_window", &self.chunk_ttl())
            .field("pid", &self.owner.pid)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Owner {
    pid: u32,
    host: String,
    nonce: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct HoldEntry {
    id: String,
    owner: Owner,
    lease_ms: u64,
    /// Bumped by the owner each time it rewrites the file.
    renewed: u64,
    lines: HoldKeys,
    nano_usd: i64,
    /// Set by settle: the record this hold became. Dropped when read back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    record: Option<String>,
    /// A detached hold's end (Unix milliseconds, wall clock): it is kept
    /// until then whether or not its owner lives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_ms: Option<i64>,
    /// A chunk's part that is settled spend (records its owner settled and
    /// has not read back yet): counted as spend, not as held, by every
    /// process (an older version counts it all as held).
    #[serde(default, skip_serializing_if = "is_zero")]
    settled_nano_usd: i64,
    /// Records of that settled part (id, cost), at most [`LISTED_UNREAD`]
    /// of them: a process that reads one of them from the ledger takes it
    /// out of the chunk (it counts as the record from then on), so the
    /// record is not counted twice while the owner has not read it back.
    /// Unlisted records stay in the chunk until their owner reads them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    unread: Vec<(ulid::Ulid, i64)>,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct HoldsFile {
    v: u32,
    holds: Vec<HoldEntry>,
}

use crate::ledger::jsonl::checkpoint::Cursor;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CheckLine {
    key: BookKey,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    nano_usd: i64,
    first_spend: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Checkpoint {
    v: u32,
    files: BTreeMap<String, Cursor>,
    lines: Vec<CheckLine>,
}

#[derive(Debug)]
struct Tracked {
    line: BookLine,
    settled: Money,
    first_spend: Option<DateTime<Utc>>,
}

impl Tracked {
    fn add(&mut self, rec: &CostRecord) {
        if !self.line.counts(rec) {
            return;
        }
        let cost = rec.cost();
        self.settled = self.settled.saturating_add(cost);
        if !cost.is_zero() && self.first_spend.is_none_or(|f| rec.ts < f) {
            self.first_spend = Some(rec.ts);
        }
    }
}

#[derive(Debug, Default)]
struct DirState {
    lock: Option<File>,
    loaded: bool,
    files: BTreeMap<String, Cursor>,
    lines: HashMap<BookKey, Tracked>,
    /// When this process first saw each hold in its current state.
    seen: HashMap<String, (u64, Instant)>,
    unsaved: u64,
    renewals: u64,
    /// The budget this process leased from the book to serve calls without
    /// the directory lock.
    chunk: Option<Chunk>,
}

/// A chunk of budget: one hold in the holds file, owned by this process,
/// of `size` in `lines`, from which reservations of exactly those lines are
/// served in memory. It covers this process's live holds and the records
/// it settled that it has not read back from the ledger yet (`used`), so
/// what every process sees in the file is never less than what this one
/// has promised: the sum across processes stays within every blocking
/// limit.
#[derive(Debug)]
struct Chunk {
    id: String,
    lines: Vec<BookLine>,
    /// The amount of the chunk's hold in the file (as last written), and
    /// its settled part.
    size: Money,
    written_unread: Money,
    live: HashMap<u128, Money>,
    live_sum: Money,
    /// Settled records not read back yet: cost, when settled (one the
    /// ledger never shows is dropped after the lease, as a settled hold in
    /// the file would be), and the [`Chunk::side`] lines it counts in (a
    /// bit per line).
    unread: HashMap<ulid::Ulid, (Money, Instant, u64)>,
    unread_sum: Money,
    /// Lines without a limit to hold (alert-only) that the chunk's
    /// records also count in, so settling such a record needs no lock
    /// either: at most [`MAX_SIDE`].
    side: Vec<Side>,
    /// How many calls' worth the next growth adds beyond the call itself:
    /// 0 for a new chunk (a process that makes one call takes no more than
    /// that call), then 1, 2, 4... up to the book's maximum while the
    /// process keeps coming back for more.
    calls: i64,
    /// When the chunk's hold was last written (renewed).
    taken: Instant,
    /// The lines' totals as of that write (the chunk counted at `size`).
    snapshot: BookTotals,
}

/// A non-blocking line a chunk's records count in. Nothing is held in it
/// (it refuses nothing): every process counts its spend from the ledger,
/// and this process adds the records it settled without the lock until it
/// reads them back.
#[derive(Debug)]
struct Side {
    line: BookLine,
    /// Its totals in the file as of the chunk's last write; `None` while
    /// this process does not track the line (not registered yet, or
    /// forgotten).
    snapshot: Option<LineTotals>,
    /// The cost of this process's unread records that count in it.
    unread: Money,
}

/// How many non-blocking lines a chunk serves without the lock.
const MAX_SIDE: usize = 64;

impl Chunk {
    /// The settled records the chunk's hold lists (see
    /// [`HoldEntry::unread`]).
    fn listed(&self) -> Vec<(ulid::Ulid, i64)> {
        self.unread
            .iter()
            .take(LISTED_UNREAD)
            .map(|(id, (cost, _, _))| (*id, cost.nanos()))
            .collect()
    }

    /// Takes the unread record `id` out (read back, or outlived the
    /// lease), from the chunk's lines and its side lines.
    fn drop_unread(&mut self, id: &ulid::Ulid) {
        if let Some((cost, _, mask)) = self.unread.remove(id) {
            self.unread_sum = self.unread_sum.saturating_sub(cost).max(Money::ZERO);
            for (i, side) in self.side.iter_mut().enumerate() {
                if mask & (1 << i) != 0 {
                    side.unread = side.unread.saturating_sub(cost).max(Money::ZERO);
                }
            }
        }
    }

    /// Adds the lines among `counted` that are not the chunk's, do not
    /// block and are not side lines yet, when the chunk's lines are all
    /// among `counted` (a record of such a call can be settled without the
    /// lock next time).
    fn add_side(&mut self, counted: &[BookLine]) {
        if !self.lines.iter().all(|l| counted.contains(l)) {
            return;
        }
        for l in counted {
            if l.blocking || self.lines.contains(l) || self.side.iter().any(|s| s.line == *l) {
                continue;
            }
            if self.side.len() >= MAX_SIDE {
                return;
            }
            self.side.push(Side {
                line: l.clone(),
                snapshot: None,
                unread: Money::ZERO,
            });
        }
    }

    fn used(&self) -> Money {
        self.live_sum.saturating_add(self.unread_sum)
    }

    /// `totals` (where this chunk counts at `size`) as this process sees
    /// them: its live holds held, its unread records settled, the unused
    /// part of the chunk not at all.
    fn own_view(&self, totals: &mut [LineTotals]) {
        for t in totals.iter_mut() {
            if !self.lines.iter().any(|l| l.key == t.key) {
                // A side line: the file does not know this process's
                // unread records.
                if let Some(side) = self.side.iter().find(|s| s.line.key == t.key) {
                    t.settled = t.settled.saturating_add(side.unread);
                }
                continue;
            }
            t.held = t
                .held
                .saturating_sub(self.size.saturating_sub(self.written_unread))
                .saturating_add(self.live_sum)
                .max(Money::ZERO);
            t.settled = t
                .settled
                .saturating_sub(self.written_unread)
                .saturating_add(self.unread_sum)
                .max(Money::ZERO);
        }
    }

    fn view(&self) -> BookTotals {
        let mut t = self.snapshot.clone();
        self.own_view(&mut t);
        t
    }

    fn take_live(&mut self, id: &str) -> Option<Money> {
        let amount = self.live.remove(&hold_key(id)?)?;
        self.live_sum = self.live_sum.saturating_sub(amount).max(Money::ZERO);
        Some(amount)
    }
}

/// The key of a hold served from a chunk (its id is a ULID).
fn hold_key(id: &str) -> Option<u128> {
    id.parse::<ulid::Ulid>().ok().map(u128::from)
}

/// The record ids of settled holds, and those read in this operation.
struct Settled {
    wanted: HashSet<ulid::Ulid>,
    found: HashSet<ulid::Ulid>,
}

impl Settled {
    fn saw(&mut self, rec: &CostRecord) {
        if !self.wanted.is_empty() && self.wanted.contains(&rec.id) {
            self.found.insert(rec.id);
        }
    }
}

/// What an operation's decision sees and changes.
struct Ctx<'a> {
    lines: &'a HashMap<BookKey, Tracked>,
    holds: &'a mut Vec<HoldEntry>,
    chunk: &'a mut Option<Chunk>,
    write: bool,
}

impl Ctx<'_> {
    /// The totals as this process sees them: [`Ctx::file_totals`], with
    /// this process's chunk counted as what it covers (not its size).
    fn totals(&self, keys: impl IntoIterator<Item = BookKey>) -> BookTotals {
        let mut t = self.file_totals(keys);
        if let Some(c) = self.chunk.as_ref() {
            c.own_view(&mut t);
        }
        t
    }

    /// The totals as every process sees them in the file. Settled spend
    /// counts the settled holds whose record is not read back yet; held is
    /// the live holds (chunks at their size).
    fn file_totals(&self, keys: impl IntoIterator<Item = BookKey>) -> BookTotals {
        keys.into_iter()
            .map(|key| {
                let (mut settled, first_spend) = self
                    .lines
                    .get(&key)
                    .map_or((Money::ZERO, None), |t| (t.settled, t.first_spend));
                let mut held = Money::ZERO;
                for h in self.holds.iter().filter(|h| h.lines.contains(&key)) {
                    let amount = Money::from_nanos(h.nano_usd);
                    if h.record.is_some() {
                        settled = settled.saturating_add(amount);
                    } else {
                        // A chunk's settled part is spend, the rest held.
                        let part =
                            Money::from_nanos(h.settled_nano_usd.clamp(0, h.nano_usd.max(0)));
                        settled = settled.saturating_add(part);
                        held = held.saturating_add(amount.saturating_sub(part));
                    }
                }
                LineTotals {
                    key,
                    settled,
                    held,
                    first_spend,
                }
            })
            .collect()
    }
}

/// Takes the listed records of other processes' chunks that this
/// operation read from the ledger out of their chunks (they count as
/// records now). Returns whether a hold changed.
fn take_read_back(holds: &mut [HoldEntry], found: &HashSet<ulid::Ulid>, me: &Owner) -> bool {
    if found.is_empty() {
        return false;
    }
    let mut changed = false;
    for h in holds.iter_mut().filter(|h| h.owner.nonce != me.nonce) {
        let mut gone = 0i64;
        h.unread.retain(|(id, cost)| {
            let read = found.contains(id);
            if read {
                gone = gone.saturating_add(*cost);
            }
            !read
        });
        if gone != 0 {
            h.nano_usd = h.nano_usd.saturating_sub(gone).max(0);
            h.settled_nano_usd = h.settled_nano_usd.saturating_sub(gone).max(0);
            changed = true;
        }
    }
    changed
}

/// Adds the hold `entry` makes of the lines' keys, unless a blocking line
/// would cross its limit.
fn grant(
    ctx: &mut Ctx<'_>,
    lines: &[BookLine],
    amount: Money,
    entry: impl FnOnce(HoldKeys) -> HoldEntry,
) -> Reserved {
    let keys = || lines.iter().map(|l| l.key.clone());
    let before = ctx.totals(keys());
    for (l, t) in lines.iter().zip(&before) {
        let would_be = t.committed().checked_add(amount).unwrap_or(Money::MAX);
        if l.blocking && would_be > l.limit {
            return Reserved::Refused {
                key: l.key.clone(),
                totals: before,
            };
        }
    }
    let entry = entry(keys().collect());
    let hold = Hold {
        id: entry.id.clone(),
        lines: entry.lines.clone(),
        amount,
    };
    ctx.holds.push(entry);
    ctx.write = true;
    Reserved::Granted {
        hold,
        totals: ctx.totals(keys()),
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> BookError + 'a {
    move |source| BookError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

impl JsonlDirBook {
    /// A builder for the book of `dir` (the ledger's data directory).
    pub fn builder(dir: impl Into<PathBuf>) -> JsonlDirBookBuilder {
        JsonlDirBookBuilder {
            dir: dir.into(),
            lease: DEFAULT_LEASE,
            chunks: ChunkConfig::default(),
            create_dir: true,
        }
    }

    /// The book of `dir` with the default lease.
    ///
    /// # Errors
    ///
    /// As [`JsonlDirBookBuilder::build`].
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, BookError> {
        JsonlDirBook::builder(dir).build()
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The lease of this process's holds.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    fn state(&self) -> MutexGuard<'_, DirState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `decide` under the directory lock, after catching up with the
    /// ledger and the holds file; rewrites the holds file if it changed.
    fn locked<R>(
        &self,
        lines: &[BookLine],
        decide: impl FnOnce(&mut Ctx<'_>) -> R,
    ) -> Result<R, BookError> {
        self.locked_ending(lines, None, decide)
    }

    /// [`JsonlDirBook::locked`], first ending the chunk's local hold
    /// `local` (if it is one), in the same step.
    fn locked_ending<R>(
        &self,
        lines: &[BookLine],
        local: Option<&str>,
        decide: impl FnOnce(&mut Ctx<'_>) -> R,
    ) -> Result<R, BookError> {
        let mut st = self.state();
        if let (Some(id), Some(c)) = (local, st.chunk.as_mut()) {
            c.take_live(id);
        }
        if st.lock.is_none() {
            // A book built without its directory (the ledger's default
            // book) creates it at its first operation.
            std::fs::create_dir_all(&self.dir).map_err(io_err("create", &self.dir))?;
            let path = self.dir.join(LOCK_FILE);
            reject_symlink(&path)?;
            let f = safe_open::open_with(
                &path,
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false),
            )
            .map_err(io_err("open", &path))?;
            st.lock = Some(f);
        }
        let lock = st
            .lock
            .take()
            .ok_or_else(|| BookError::Other("lock file".into()))?;
        let result = lock
            .lock()
            .map_err(io_err("lock", &self.dir.join(LOCK_FILE)))
            .and_then(|()| self.locked_inner(&mut st, lines, decide));
        let _ = lock.unlock();
        st.lock = Some(lock);
        result
    }

    fn locked_inner<R>(
        &self,
        st: &mut DirState,
        lines: &[BookLine],
        decide: impl FnOnce(&mut Ctx<'_>) -> R,
    ) -> Result<R, BookError> {
        if !st.loaded {
            self.load_checkpoint(st);
            st.loaded = true;
        }
        let (mut holds, mut dirty) = self.read_holds();
        // The records of settled holds: each hold goes when its record is
        // read; so do the chunk's unread records.
        let mut ids = Settled {
            wanted: holds
                .iter()
                .filter_map(|h| h.record.as_deref()?.parse().ok())
                .chain(st.chunk.iter().flat_map(|c| c.unread.keys().copied()))
                .chain(
                    holds
                        .iter()
                        .filter(|h| h.owner.nonce != self.owner.nonce)
                        .flat_map(|h| h.unread.iter().map(|(id, _)| *id)),
                )
                .collect(),
            found: HashSet::new(),
        };
        let mut save = self.catch_up(st, &mut ids)?;
        save |= self.register(st, lines, &mut ids)?;
        let before = holds.len();
        holds.retain(|h| {
            h.record
                .as_deref()
                .and_then(|r| r.parse::<ulid::Ulid>().ok())
                .is_none_or(|r| !ids.found.contains(&r))
        });
        dirty |= holds.len() != before;
        dirty |= take_read_back(&mut holds, &ids.found, &self.owner);
        dirty |= self.expire(st, &mut holds);
        dirty |= self.trim_chunk(st, &mut holds, &ids.found);
        let mut ctx = Ctx {
            lines: &st.lines,
            holds: &mut holds,
            chunk: &mut st.chunk,
            write: false,
        };
        let r = decide(&mut ctx);
        let wrote = ctx.write || dirty;
        if let Some(c) = ctx.chunk.as_ref() {
            let keys: HoldKeys = c.lines.iter().map(|l| l.key.clone()).collect();
            let snapshot = ctx.file_totals(keys);
            let side: Vec<Option<LineTotals>> =
                c.side
                    .iter()
                    .map(|s| {
                        let tracked = ctx.lines.get(&s.line.key).is_some_and(|t| {
                            t.line.same_span(&s.line.key, s.line.start, s.line.end)
                        });
                        tracked.then(|| {
                            let mut t = ctx.file_totals([s.line.key.clone()]);
                            t.pop()
                                .unwrap_or_else(|| LineTotals::zero(s.line.key.clone()))
                        })
                    })
                    .collect();
            if let Some(c) = st.chunk.as_mut() {
                c.snapshot = snapshot;
                for (s, t) in c.side.iter_mut().zip(side) {
                    s.snapshot = t;
                }
                if wrote {
                    c.taken = Instant::now();
                }
            }
        }
        if wrote {
            st.renewals += 1;
            let renewal = st.renewals;
            for h in holds.iter_mut() {
                if h.owner == self.owner && h.record.is_none() {
                    h.renewed = renewal;
                }
            }
            self.write_holds(&holds)?;
        }
        if save || st.unsaved >= CHECKPOINT_EVERY {
            self.write_checkpoint(st);
        }
        Ok(r)
    }

    /// Drops the chunk's records read back from the ledger, and sets its
    /// hold in the file to what it still covers (returning the unused part
    /// to every process; removing it when it covers nothing, and writing
    /// it again if another process dropped it). Returns whether the holds
    /// changed.
    fn trim_chunk(
        &self,
        st: &mut DirState,
        holds: &mut Vec<HoldEntry>,
        found: &HashSet<ulid::Ulid>,
    ) -> bool {
        let Some(c) = st.chunk.as_mut() else {
            return false;
        };
        for id in found {
            c.drop_unread(id);
        }
        let lease = self.lease;
        let old: Vec<ulid::Ulid> = c
            .unread
            .iter()
            .filter(|(_, (_, at, _))| at.elapsed() >= lease)
            .map(|(id, _)| *id)
            .collect();
        if !old.is_empty() {
            tracing::info!("settled records never read back from the ledger outlived the lease; the budget chunk no longer covers them");
            for id in &old {
                c.drop_unread(id);
            }
        }
        let target = c.used();
        let unread = c.unread_sum;
        let at = holds.iter().position(|h| h.id == c.id);
        c.size = target;
        c.written_unread = if target.is_zero() {
            Money::ZERO
        } else {
            unread
        };
        match at {
            Some(i) if target.is_zero() => {
                holds.remove(i);
                true
            }
            Some(i)
                if holds[i].nano_usd != target.nanos()
                    || holds[i].settled_nano_usd != unread.nanos()
                    || holds[i].unread.len() != c.unread.len().min(LISTED_UNREAD) =>
            {
                holds[i].nano_usd = target.nanos();
                holds[i].settled_nano_usd = unread.nanos();
                holds[i].unread = c.listed();
                true
            }
            Some(_) => false,
            None if target.is_zero() => false,
            None => {
                let keys = c.lines.iter().map(|l| l.key.clone()).collect();
                let mut entry = self.hold_entry(keys, target, None);
                entry.id = c.id.clone();
                entry.settled_nano_usd = unread.nanos();
                entry.unread = c.listed();
                holds.push(entry);
                true
            }
        }
    }

    /// Serves a reservation of `lines` from a chunk, taking or growing it
    /// under the lock: the chunk grows to what it covers + `amount` + room
    /// for more calls (none for a new chunk, then doubling up to the
    /// book's maximum, 32 calls' worth by default, as this process keeps
    /// needing more) but never more than its share (1/8 by default)
    /// of the headroom left, so the next calls of this process need no
    /// lock, and near the limit the chunk shrinks to the call itself. `None` when the reservation is
    /// better made as a hold of its own (no blocking line, or the chunk
    /// serves other lines and is in use).
    fn chunk_grant(
        &self,
        ctx: &mut Ctx<'_>,
        lines: &[BookLine],
        amount: Money,
    ) -> Option<Reserved> {
        if !lines.iter().any(|l| l.blocking) || self.chunk_ttl().is_zero() {
            return None;
        }
        let same = ctx.chunk.as_ref().is_some_and(|c| c.lines[..] == *lines);
        if !same {
            if ctx.chunk.as_ref().is_some_and(|c| !c.used().is_zero()) {
                return None;
            }
            if let Some(old) = ctx.chunk.take() {
                ctx.holds.retain(|h| h.id != old.id);
                ctx.write = true;
            }
            *ctx.chunk = Some(Chunk {
                id: ulid::Ulid::new().to_string(),
                lines: lines.to_vec(),
                size: Money::ZERO,
                written_unread: Money::ZERO,
                live: HashMap::new(),
                live_sum: Money::ZERO,
                unread: HashMap::new(),
                unread_sum: Money::ZERO,
                side: Vec::new(),
                calls: 0,
                taken: Instant::now(),
                snapshot: BookTotals::new(),
            });
        } else if let Some(c) = ctx.chunk.as_mut() {
            c.calls = (c.calls * 2).clamp(1, self.chunks.max_calls.max(1));
        }
        let keys: HoldKeys = lines.iter().map(|l| l.key.clone()).collect();
        let file = ctx.file_totals(keys.iter().cloned());
        let (size, used, calls) = ctx.chunk.as_ref().map(|c| (c.size, c.used(), c.calls))?;
        let mut extra = amount.nanos().saturating_mul(calls);
        for (l, t) in lines.iter().zip(&file).filter(|(l, _)| l.blocking) {
            let after = t
                .committed()
                .saturating_sub(size)
                .checked_add(used)
                .and_then(|m| m.checked_add(amount))
                .unwrap_or(Money::MAX);
            if after > l.limit {
                return Some(Reserved::Refused {
                    key: l.key.clone(),
                    totals: ctx.totals(keys),
                });
            }
            extra =
                extra.min(l.limit.nanos().saturating_sub(after.nanos()) / self.chunks.share.max(1));
        }
        let new_size = used
            .saturating_add(amount)
            .saturating_add(Money::from_nanos(extra.max(0)));
        let c = ctx.chunk.as_mut()?;
        match ctx.holds.iter_mut().find(|h| h.id == c.id) {
            Some(h) => {
                h.nano_usd = new_size.nanos();
                h.settled_nano_usd = c.unread_sum.nanos();
                h.unread = c.listed();
            }
            None => {
                let mut entry = self.hold_entry(keys.clone(), new_size, None);
                entry.id = c.id.clone();
                entry.settled_nano_usd = c.unread_sum.nanos();
                entry.unread = c.listed();
                ctx.holds.push(entry);
            }
        }
        c.size = new_size;
        c.written_unread = c.unread_sum;
        let id = ulid::Ulid::new();
        c.live.insert(u128::from(id), amount);
        c.live_sum = c.live_sum.saturating_add(amount);
        ctx.write = true;
        Some(Reserved::Granted {
            hold: Hold {
                id: id.to_string(),
                lines: keys.clone(),
                amount,
            },
            totals: ctx.totals(keys),
        })
    }

    /// How long the chunk serves calls without the lock (zero: chunks
    /// are off).
    fn chunk_ttl(&self) -> Duration {
        if self.chunks.max_calls == 0 {
            return Duration::ZERO;
        }
        self.chunks.window.min(self.lease / 4)
    }

    /// The chunk window in effect ([`JsonlDirBookBuilder::chunk_window`],
    /// at most a quarter of the lease); zero when chunks are off.
    pub fn chunk_window(&self) -> Duration {
        self.chunk_ttl()
    }

    /// A reservation served from the chunk without the directory lock, if
    /// it fits and the chunk is fresh.
    fn reserve_fast(&self, lines: &[BookLine], amount: Money) -> Option<Reserved> {
        let ttl = self.chunk_ttl();
        let mut st = self.state();
        let c = st.chunk.as_mut()?;
        if c.taken.elapsed() >= ttl || c.lines[..] != *lines {
            return None;
        }
        if c.used().checked_add(amount)? > c.size {
            return None;
        }
        let id = ulid::Ulid::new();
        c.live.insert(u128::from(id), amount);
        c.live_sum = c.live_sum.saturating_add(amount);
        Some(Reserved::Granted {
            hold: Hold {
                id: id.to_string(),
                lines: lines.iter().map(|l| l.key.clone()).collect(),
                amount,
            },
            totals: c.view(),
        })
    }

    /// A settlement of a chunk's hold whose record counts in exactly the
    /// chunk's lines, without the lock: the record stays covered by the
    /// chunk until this process reads it back. Returns whether the chunk
    /// is due for the lock (to return its unused part).
    ///
    /// `fresh_only`: a chunk already due is left alone (`None`, nothing
    /// changed), for a caller that cannot take the lock.
    fn settle_fast(
        &self,
        hold: &Hold,
        record: &CostRecord,
        lines: &[BookLine],
        fresh_only: bool,
    ) -> Option<(BookTotals, bool)> {
        let key = hold_key(&hold.id)?;
        let ttl = self.chunk_ttl();
        let mut guard = self.state();
        let st = &mut *guard;
        let c = st.chunk.as_mut()?;
        // A chunk that has served one call only (a short program) settles
        // under the lock, so its settlement sees every process's spend at
        // once (alerts on a joint crossing).
        if c.calls == 0 || !c.live.contains_key(&key) || (fresh_only && c.taken.elapsed() >= ttl) {
            return None;
        }
        // The record must count in each of the chunk's lines (they hold
        // it) and otherwise only in side lines this process tracks (they
        // hold nothing: their spend is the ledger's plus this process's
        // unread records).
        let (mut own, mut mask, mut in_order) = (0usize, 0u64, true);
        for l in lines.iter().filter(|l| l.counts(record)) {
            if c.lines.get(own) == Some(l) {
                own += 1;
                continue;
            }
            if c.lines.contains(l) {
                own += 1;
                in_order = false;
                continue;
            }
            let i = c.side.iter().position(|s| s.line == *l)?;
            let tracked = st
                .lines
                .get(&l.key)
                .is_some_and(|t| t.line.same_span(&l.key, l.start, l.end));
            if l.blocking || !tracked || c.side[i].snapshot.is_none() {
                return None;
            }
            mask |= 1 << i;
        }
        if own != c.lines.len() {
            return None;
        }
        c.take_live(&hold.id);
        let cost = record.cost();
        if !cost.is_zero() {
            let e = c
                .unread
                .entry(record.id)
                .or_insert((Money::ZERO, Instant::now(), 0));
            e.0 = e.0.saturating_add(cost);
            e.2 |= mask;
            c.unread_sum = c.unread_sum.saturating_add(cost);
            for (i, side) in c.side.iter_mut().enumerate() {
                if mask & (1 << i) != 0 {
                    side.unread = side.unread.saturating_add(cost);
                }
            }
        }
        let due = c.taken.elapsed() >= ttl;
        let view = c.view();
        if mask == 0 && in_order {
            // The record counts in the chunk's lines alone (in order).
            return Some((view, due));
        }
        // The totals in the order of `lines`: the chunk's from its view,
        // side lines from their snapshot and this process's unread.
        let totals = lines
            .iter()
            .filter(|l| l.counts(record))
            .map(|l| match c.lines.iter().position(|x| x == l) {
                Some(i) => view[i].clone(),
                None => {
                    let s = c.side.iter().find(|s| s.line == *l);
                    let mut t = s
                        .and_then(|s| s.snapshot.clone())
                        .unwrap_or_else(|| LineTotals::zero(l.key.clone()));
                    t.settled = t
                        .settled
                        .saturating_add(s.map_or(Money::ZERO, |s| s.unread));
                    t
                }
            })
            .collect();
        Some((totals, due))
    }

    /// Drops holds whose owner's lease ran out (as this process measures
    /// it) or whose owner is gone. Returns whether any went.
    fn expire(&self, st: &mut DirState, holds: &mut Vec<HoldEntry>) -> bool {
        let now = Instant::now();
        let mut live = HashSet::new();
        let before = holds.len();
        let wall_ms = Utc::now().timestamp_millis();
        holds.retain(|h| {
            live.insert(h.id.clone());
            if let Some(end) = h.expires_ms {
                if h.record.is_none() {
                    let keep = wall_ms < end;
                    if !keep {
                        tracing::info!(hold = %h.id, "a detached budget hold reached its end; dropping it");
                    }
                    return keep;
                }
            }
            let ours = h.owner.nonce == self.owner.nonce;
            if ours && h.record.is_none() {
                return true;
            }
            if !ours && h.owner.host == self.owner.host && !pid_alive(h.owner.pid) {
                tracing::info!(hold = %h.id, pid = h.owner.pid, "dropping the budget hold of a process that is gone");
                return false;
            }
            let first = match st.seen.get(&h.id) {
                Some(&(renewed, at)) if renewed == h.renewed => at,
                _ => {
                    st.seen.insert(h.id.clone(), (h.renewed, now));
                    now
                }
            };
            let keep = now.duration_since(first) < Duration::from_millis(h.lease_ms);
            if !keep {
                tracing::info!(hold = %h.id, pid = h.owner.pid, host = %h.owner.host, "a budget hold outlived its lease; dropping it");
            }
            keep
        });
        st.seen.retain(|id, _| live.contains(id));
        holds.len() != before
    }

    /// Reads every ledger file from its cursor to its end. Starts over
    /// (every sum from zero) if a file was replaced, shrank or went away (a
    /// reset). Returns whether a checkpoint is worth writing.
    fn catch_up(&self, st: &mut DirState, ids: &mut Settled) -> Result<bool, BookError> {
        let paths = list_matching(&self.dir, "costs_", ".jsonl")
            .map_err(|e| BookError::Other(e.to_string()))?;
        let mut rebuild = false;
        let mut opened = Vec::with_capacity(paths.len());
        for path in paths {
            let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
                continue;
            };
            let file = match safe_open::read(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                // A symlinked or special ledger is skipped, as the scans do.
                Err(e) if safe_open::unsafe_file(&e).is_some() => continue,
                Err(e) => return Err(io_err("read", &path)(e)),
            };
            let meta = file.metadata().map_err(io_err("read", &path))?;
            let (dev, ino) = identity(&meta).unwrap_or((0, 0));
            if let Some(c) = st.files.get(&name) {
                if (c.dev, c.ino) != (dev, ino) || meta.len() < c.offset {
                    rebuild = true;
                }
            }
            opened.push((name, path, file, dev, ino, meta.len()));
        }
        if st.files.keys().any(|k| !opened.iter().any(|o| &o.0 == k)) {
            rebuild = true;
        }
        if rebuild {
            tracing::info!(dir = %self.dir.display(), "a ledger file was reset or replaced: budget totals are read again from the ledger");
            st.files.clear();
            for t in st.lines.values_mut() {
                t.settled = Money::ZERO;
                t.first_spend = None;
            }
        }
        let mut read = 0;
        for (name, path, mut file, dev, ino, len) in opened {
            let from = st.files.get(&name).map_or(0, |c| c.offset);
            if from >= len {
                continue;
            }
            let lines = &mut st.lines;
            let end = read_range(&mut file, &path, from, None, &mut |rec| {
                ids.saw(&rec);
                for t in lines.values_mut() {
                    t.add(&rec);
                }
            })?;
            read += end - from;
            st.files.insert(
                name,
                Cursor {
                    dev,
                    ino,
                    offset: end,
                },
            );
        }
        st.unsaved += read;
        Ok(rebuild)
    }

    /// Adds the lines not tracked yet (the checkpoint's lines are tracked
    /// from the start) by reading the ledger up to this process's offsets.
    /// Returns whether the ledger was read.
    fn register(
        &self,
        st: &mut DirState,
        lines: &[BookLine],
        ids: &mut Settled,
    ) -> Result<bool, BookError> {
        let mut fresh: Vec<BookLine> = Vec::new();
        for l in lines {
            if st
                .lines
                .get(&l.key)
                .is_some_and(|t| t.line.same_span(&l.key, l.start, l.end))
            {
                continue;
            }
            fresh.push(l.clone());
        }
        if fresh.is_empty() {
            return Ok(false);
        }
        let mut new: Vec<Tracked> = fresh
            .into_iter()
            .map(|line| Tracked {
                line,
                settled: Money::ZERO,
                first_spend: None,
            })
            .collect();
        let mut read = false;
        for (name, c) in &st.files {
            if c.offset == 0 {
                continue;
            }
            let path = self.dir.join(name);
            let mut file = match safe_open::read(&path) {
                Ok(f) => f,
                Err(e) if safe_open::unsafe_file(&e).is_some() => continue,
                Err(e) => return Err(io_err("read", &path)(e)),
            };
            read_range(&mut file, &path, 0, Some(c.offset), &mut |rec| {
                ids.saw(&rec);
                for t in new.iter_mut() {
                    t.add(&rec);
                }
            })?;
            read = true;
        }
        for t in new {
            st.lines.insert(t.line.key.clone(), t);
        }
        Ok(read)
    }

    fn load_checkpoint(&self, st: &mut DirState) {
        let path = self.dir.join(CHECKPOINT_FILE);
        let bytes = match safe_open::read_to_end(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read the budget checkpoint; budget totals are read from the ledger");
                return;
            }
        };
        match serde_json::from_slice::<Checkpoint>(&bytes) {
            Ok(cp) if cp.v == VERSION => {
                st.files = cp.files;
                for c in cp.lines {
                    let mut line = BookLine::new(c.key.clone(), Money::ZERO);
                    line.start = c.start;
                    line.end = c.end;
                    st.lines.insert(
                        c.key,
                        Tracked {
                            line,
                            settled: Money::from_nanos(c.nano_usd),
                            first_spend: c.first_spend,
                        },
                    );
                }
            }
            Ok(cp) => {
                tracing::warn!(path = %path.display(), version = cp.v, "the budget checkpoint is from another costlayer version; budget totals are rebuilt from the ledger")
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "the budget checkpoint is corrupt; budget totals are rebuilt from the ledger")
            }
        }
    }

    fn write_checkpoint(&self, st: &mut DirState) {
        let cp = Checkpoint {
            v: VERSION,
            files: st.files.clone(),
            lines: st
                .lines
                .values()
                // Periods over for a month are not needed again.
                .filter(|t| {
                    t.line
                        .end
                        .is_none_or(|e| Utc::now() - e < chrono::Duration::days(31))
                })
                .map(|t| CheckLine {
                    key: t.line.key.clone(),
                    start: t.line.start,
                    end: t.line.end,
                    nano_usd: t.settled.nanos(),
                    first_spend: t.first_spend,
                })
                .collect(),
        };
        let path = self.dir.join(CHECKPOINT_FILE);
        match serde_json::to_vec(&cp)
            .map_err(|e| io::Error::other(e.to_string()))
            .and_then(|b| self.replace(&path, &b))
        {
            Ok(()) => st.unsaved = 0,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot write the budget checkpoint (totals stay exact; a new process reads more of the ledger)")
            }
        }
    }

    /// The holds file's entries, and whether it must be rewritten (it was
    /// unreadable).
    fn read_holds(&self) -> (Vec<HoldEntry>, bool) {
        let path = self.dir.join(HOLDS_FILE);
        // A link or special file here is unreadable: rewritten in place.
        let bytes = match safe_open::read_to_end(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return (Vec::new(), false),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read the budget holds; calls in flight elsewhere are not counted until it is rewritten");
                return (Vec::new(), true);
            }
        };
        if bytes.is_empty() {
            return (Vec::new(), false);
        }
        match serde_json::from_slice::<HoldsFile>(&bytes) {
            Ok(h) if h.v == VERSION => (h.holds, false),
            Ok(h) => {
                tracing::warn!(path = %path.display(), version = h.v, "the budget holds file is from another costlayer version; it is replaced (settled spend is read from the ledger)");
                (Vec::new(), true)
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "the budget holds file is corrupt; it is replaced (settled spend is read from the ledger, holds of calls in flight elsewhere are lost)");
                (Vec::new(), true)
            }
        }
    }

    fn write_holds(&self, holds: &[HoldEntry]) -> Result<(), BookError> {
        let path = self.dir.join(HOLDS_FILE);
        let file = HoldsFile {
            v: VERSION,
            holds: holds.to_vec(),
        };
        let bytes = serde_json::to_vec(&file).map_err(|e| BookError::Other(e.to_string()))?;
        self.replace(&path, &bytes).map_err(io_err("write", &path))
    }

    /// Writes `bytes` to a temporary file and renames it over `path`, so a
    /// failed write (a full disk) leaves the old file whole.
    fn replace(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let tmp = self.dir.join(format!(
            ".{}.{}.tmp",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("book"),
            self.owner.nonce
        ));
        let written = (|| {
            let mut f = safe_open::open_with(
                &tmp,
                OpenOptions::new().write(true).create(true).truncate(true),
            )?;
            f.write_all(bytes)?;
            f.flush()
        })();
        if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(())
    }

    fn hold_entry(&self, lines: HoldKeys, amount: Money, record: Option<String>) -> HoldEntry {
        HoldEntry {
            id: ulid::Ulid::new().to_string(),
            owner: self.owner.clone(),
            lease_ms: u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX),
            renewed: 0,
            lines,
            nano_usd: amount.nanos(),
            record,
            expires_ms: None,
            settled_nano_usd: 0,
            unread: Vec::new(),
        }
    }
}

/// Refuses a symlink where the book keeps its own files.
fn reject_symlink(path: &Path) -> Result<(), BookError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(BookError::Io {
            op: "open",
            path: path.to_path_buf(),
            source: io::Error::new(
                io::ErrorKind::InvalidInput,
                "is a symbolic link: remove it (the budget book never follows links)",
            ),
        }),
        _ => Ok(()),
    }
}

/// Whether a process with `pid` runs on this host (always true where that
/// cannot be told).
fn pid_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true
    }
}

/// Reads the whole lines of `file` from `from` (to `to`, or its end),
/// calling `f` with each record; returns the offset after the last whole
/// line (a torn final line is read again next time). Corrupt lines are
/// skipped (the ledger's scans report and quarantine them).
fn read_range(
    file: &mut File,
    path: &Path,
    from: u64,
    to: Option<u64>,
    f: &mut dyn FnMut(CostRecord),
) -> Result<u64, BookError> {
    file.seek(SeekFrom::Start(from))
        .map_err(io_err("read", path))?;
    let reader: Box<dyn Read + '_> = match to {
        Some(to) => Box::new(Read::take(&mut *file, to.saturating_sub(from))),
        None => Box::new(&mut *file),
    };
    let mut lines = Lines::new(reader);
    let mut buf = Vec::new();
    let user = crate::ledger::jsonl::read::file_user(path);
    loop {
        let before = lines.pos;
        if let Some(rec) = lines.next_canonical().map_err(io_err("read", path))? {
            f(rec);
            continue;
        }
        match lines.next(&mut buf).map_err(io_err("read", path))? {
            None => break,
            Some(Line::Normal { complete: false }) => return Ok(from + before),
            Some(line) => {
                if let Outcome::Record(rec) = classify(line, &buf, &user) {
                    f(rec);
                }
            }
        }
    }
    Ok(from + lines.pos)
}

#[async_trait::async_trait]
impl BudgetBook for JsonlDirBook {
    async fn totals(&self, lines: &[BookLine]) -> Result<BookTotals, BookError> {
        self.locked(lines, |ctx| ctx.totals(lines.iter().map(|l| l.key.clone())))
    }

    async fn reserve(&self, lines: &[BookLine], amount: Money) -> Result<Reserved, BookError> {
        if let Some(r) = self.reserve_fast(lines, amount) {
            return Ok(r);
        }
        self.locked(lines, |ctx| {
            if let Some(r) = self.chunk_grant(ctx, lines, amount) {
                return r;
            }
            grant(ctx, lines, amount, |keys| {
                self.hold_entry(keys, amount, None)
            })
        })
    }

    async fn reserve_detached(
        &self,
        lines: &[BookLine],
        amount: Money,
        id: &str,
        expires: DateTime<Utc>,
    ) -> Result<Reserved, BookError> {
        self.locked(lines, |ctx| {
            let keys = || lines.iter().map(|l| l.key.clone());
            if let Some(h) = ctx.holds.iter().find(|h| h.id == id && h.record.is_none()) {
                let hold = Hold {
                    id: h.id.clone(),
                    lines: h.lines.clone(),
                    amount: Money::from_nanos(h.nano_usd),
                };
                return Reserved::Granted {
                    hold,
                    totals: ctx.totals(keys()),
                };
            }
            grant(ctx, lines, amount, |keys| {
                let mut entry = self.hold_entry(keys, amount, None);
                entry.id = id.to_owned();
                entry.expires_ms = Some(expires.timestamp_millis());
                entry
            })
        })
    }

    async fn release_detached(&self, id: &str) -> Result<(), BookError> {
        self.locked(&[], |ctx| {
            ctx.holds.retain(|h| h.id != id);
            ctx.write = true;
        })
    }

    async fn settle(
        &self,
        hold: Option<Hold>,
        record: &CostRecord,
        lines: &[BookLine],
    ) -> Result<BookTotals, BookError> {
        if let Some(h) = &hold {
            if let Some((totals, due)) = self.settle_fast(h, record, lines, false) {
                if !due {
                    return Ok(totals);
                }
                // Return the unused part of the chunk now and then, and
                // answer with every process's spend as of now (so a
                // threshold crossed by the joint spend is seen).
                let counted: Vec<BookLine> =
                    lines.iter().filter(|l| l.counts(record)).cloned().collect();
                return self.locked(&counted, |ctx| {
                    ctx.totals(counted.iter().map(|l| l.key.clone()))
                });
            }
        }
        let counted: Vec<BookLine> = lines.iter().filter(|l| l.counts(record)).cloned().collect();
        let keys: HoldKeys = counted.iter().map(|l| l.key.clone()).collect();
        let id = record.id.to_string();
        let cost = record.cost();
        let local = hold.as_ref().map(|h| h.id.clone());
        self.locked_ending(&counted, local.as_deref(), |ctx| {
            if let Some(c) = ctx.chunk.as_mut() {
                c.add_side(&counted);
            }
            ctx.holds
                .retain(|h| hold.as_ref().is_none_or(|held| held.id != h.id));
            if !keys.is_empty() {
                ctx.holds
                    .push(self.hold_entry(keys.clone(), cost, Some(id)));
            }
            ctx.write = true;
            ctx.totals(keys.clone())
        })
    }

    fn reserve_now(&self, lines: &[BookLine], amount: Money) -> Option<Reserved> {
        self.reserve_fast(lines, amount)
    }

    fn settle_now(
        &self,
        hold: Option<&Hold>,
        record: &CostRecord,
        lines: &[BookLine],
    ) -> Option<BookTotals> {
        // Only a settlement the chunk takes whole: one that is due returns
        // the chunk's unused part under the lock (`settle`), so it is not
        // started here.
        self.settle_fast(hold?, record, lines, true)
            .map(|(totals, _)| totals)
    }

    async fn release(&self, hold: Hold) -> Result<(), BookError> {
        let ttl = self.chunk_ttl();
        let local = {
            let mut st = self.state();
            st.chunk
                .as_mut()
                .and_then(|c| c.take_live(&hold.id).map(|_| c.taken.elapsed() >= ttl))
        };
        match local {
            Some(false) => return Ok(()),
            Some(true) => return self.locked(&[], |_| ()),
            None => {}
        }
        self.locked(&[], |ctx| {
            ctx.holds.retain(|h| h.id != hold.id);
            ctx.write = true;
        })
    }

    async fn forget(&self) -> Result<(), BookError> {
        let mut st = self.state();
        st.loaded = false;
        st.files.clear();
        st.lines.clear();
        Ok(())
    }
}
