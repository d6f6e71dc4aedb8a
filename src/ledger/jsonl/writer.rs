//! The appender: one background thread per ledger file that group-commits
//! queued appends into one locked `write`.
//!
//! Under [`AppendMode::Queued`] (the default) an append is handed to the
//! thread and returns at once; under [`AppendMode::Confirmed`] it returns
//! once its bytes are in the file (and on disk, under
//! [`FsyncPolicy::Always`]). Dropping the last handle of a file writes and
//! syncs whatever is queued, and waits for it.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::files::{
    ensure_dir, io_error, last_byte, open_locked_append, still_at_path, sync_dir, LockGuard,
};
use super::FsyncPolicy;
use crate::ledger::{CostRecord, LedgerError, Spool};

/// At most this many bytes are gathered into one `write`.
const MAX_GROUP_BYTES: usize = 4 << 20;
/// At most this many writes in a row before the group is synced and
/// answered.
const MAX_ROUNDS: usize = 64;
/// At most this many queued writes wait for the writer; beyond, an append
/// waits for its answer (back-pressure, and a bound on what a kill loses).
pub(crate) const MAX_QUEUED: u64 = 256;
/// How long the writer naps when its queue is empty, while appends keep
/// coming: a queued append does not wake it (which would cost the caller
/// a system call), it is written at the nap's end at the latest. Appends
/// somebody waits for, and a queue of [`WAKE_AT`] writes, wake it at once.
const NAP: Duration = Duration::from_millis(1);
/// Queued writes that wake a napping writer (a quarter of the bound, so
/// that the queue is written long before appends would wait).
const WAKE_AT: u64 = MAX_QUEUED / 4;
/// After this many naps in a row without a job the writer stops napping and
/// sleeps until the next append wakes it: it naps only while appends come
/// more often than every few milliseconds (where a wake-up per append
/// would cost the callers most), and a process making a call now and then
/// does not poll.
const IDLE_NAPS: u32 = 4;
/// How often queued records whose write failed are tried again.
const RETRY_EVERY: Duration = Duration::from_millis(500);
/// How long the process's exit waits for each writer to finish.
const EXIT_WAIT: Duration = Duration::from_secs(5);

/// Where an answer goes: an async caller or a blocking one.
pub(crate) enum Ack {
    Async(oneshot::Sender<Result<(), LedgerError>>),
    Blocking(mpsc::Sender<Result<(), LedgerError>>),
}

impl Ack {
    fn send(self, r: Result<(), LedgerError>) {
        match self {
            Ack::Async(tx) => {
                let _ = tx.send(r);
            }
            Ack::Blocking(tx) => {
                let _ = tx.send(r);
            }
        }
    }
}

// `Record` is the large variant (a whole `CostRecord`, ~300 bytes): it is
// the common job, and boxing it would put an allocation back on every
// queued append, which is what it is there to avoid. The channel keeps
// jobs in blocks, so the size costs no allocation either.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Job {
    /// Complete lines (each ends with `\n`) to append in one write. With
    /// no `ack` the append was queued (nobody waits); with `sync` the
    /// group is synced before the answer, whatever the policy.
    Write {
        bytes: Vec<u8>,
        ack: Option<Ack>,
        sync: bool,
    },
    /// One record queued with nobody waiting, serialised (and scrubbed of
    /// secrets) by the writer into its group's buffer: the caller's append
    /// is a clone and a send.
    Record(CostRecord),
    /// Answer once everything queued before is in the file.
    Barrier { ack: Ack },
    /// Make every write so far durable.
    Flush { ack: Ack },
}

/// The state a storage and its writer thread share.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Writes handed to the thread, and writes it has finished (written or
    /// failed): equal when nothing is queued.
    sent: AtomicU64,
    done: AtomicU64,
    /// The last write failed: appends wait for their answer (so the caller
    /// learns it) until a write succeeds again.
    failed: AtomicBool,
    /// A write succeeded: the file is there and takes writes. Until then
    /// appends wait for their answer, so a ledger that cannot be opened at
    /// all (a link, a directory, no permission) fails the first append.
    ready: AtomicBool,
    /// Where queued records go when the file refuses them.
    pub(crate) spool: OnceLock<Arc<Spool>>,
    /// The writer naps ([`NAP`]): a job that must not wait for the nap's
    /// end unparks [`Shared::thread`].
    napping: AtomicBool,
    /// The writer thread, to unpark it.
    thread: OnceLock<std::thread::Thread>,
}

/// Writers alive in this process, so scans see every record this process
/// queued (read-your-writes across storages of one directory), and
/// [`flush_all_blocking`] reaches every queue.
struct Registered {
    id: u64,
    dir: PathBuf,
    tx: Sender<Job>,
    shared: Arc<Shared>,
}

fn registry() -> &'static Mutex<Vec<Registered>> {
    static REGISTRY: OnceLock<Mutex<Vec<Registered>>> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(Vec::new()))
}

fn lock_registry() -> std::sync::MutexGuard<'static, Vec<Registered>> {
    registry().lock().unwrap_or_else(|p| p.into_inner())
}

/// Writes and syncs the queue of every live writer of the process, waiting
/// up to [`EXIT_WAIT`] for each.
pub(crate) fn flush_all_blocking() {
    let senders: Vec<(Sender<Job>, Arc<Shared>)> = lock_registry()
        .iter()
        .map(|r| (r.tx.clone(), r.shared.clone()))
        .collect();
    for (tx, shared) in senders {
        let (ack, done) = mpsc::channel();
        if tx
            .send(Job::Flush {
                ack: Ack::Blocking(ack),
            })
            .is_ok()
        {
            shared.wake();
            let _ = done.recv_timeout(EXIT_WAIT);
        }
    }
}

/// Waits until every record queued so far by this process for a ledger
/// file in `dir` is in its file (not necessarily synced).
pub(crate) fn barrier_dir_blocking(dir: &Path) {
    for (tx, shared) in pending_in(dir) {
        let (ack, done) = mpsc::channel();
        if tx
            .send(Job::Barrier {
                ack: Ack::Blocking(ack),
            })
            .is_ok()
        {
            shared.wake();
            let _ = done.recv();
        }
    }
}

/// [`barrier_dir_blocking`] for async callers.
pub(crate) async fn barrier_dir(dir: &Path) {
    for (tx, shared) in pending_in(dir) {
        let (ack, done) = oneshot::channel();
        if tx
            .send(Job::Barrier {
                ack: Ack::Async(ack),
            })
            .is_ok()
        {
            shared.wake();
            let _ = done.await;
        }
    }
}

/// The writers of `dir` with queued records.
fn pending_in(dir: &Path) -> Vec<(Sender<Job>, Arc<Shared>)> {
    lock_registry()
        .iter()
        .filter(|r| r.dir == dir && r.shared.queued())
        .map(|r| (r.tx.clone(), r.shared.clone()))
        .collect()
}

impl Shared {
    /// A write succeeded. The flags are stored only when they change: the
    /// appenders read them on every append, and a store, even of the same
    /// value, takes their cache line away from them.
    fn wrote(&self) {
        if self.failed.load(Ordering::Relaxed) {
            self.failed.store(false, Ordering::Release);
        }
        if !self.ready.load(Ordering::Relaxed) {
            self.ready.store(true, Ordering::Release);
        }
    }

    /// Ends the writer's nap, if it naps: a job was sent that must not
    /// wait for the nap's end.
    fn wake(&self) {
        // Pairs with the writer's fence between announcing its nap and
        // looking at the queue once more: either it sees the job, or this
        // sees the nap (and a missed nap costs at most one `NAP`).
        fence(Ordering::SeqCst);
        if self.napping.load(Ordering::Relaxed) {
            if let Some(t) = self.thread.get() {
                t.unpark();
            }
        }
    }

    fn queued(&self) -> bool {
        self.sent.load(Ordering::Acquire) != self.done.load(Ordering::Acquire)
    }

    /// Whether an append may be queued without waiting for its answer.
    pub(crate) fn may_queue(&self) -> bool {
        self.ready.load(Ordering::Acquire)
            && !self.failed.load(Ordering::Acquire)
            && self
                .sent
                .load(Ordering::Acquire)
                .saturating_sub(self.done.load(Ordering::Acquire))
                < MAX_QUEUED
    }
}

/// The sending half, owned by the storage. Dropping it lets the thread
/// finish the queue and sync (unless the policy is `Never`), and waits for
/// it.
#[derive(Debug)]
pub(crate) struct WriterHandle {
    id: u64,
    tx: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    pub(crate) shared: Arc<Shared>,
}

impl WriterHandle {
    pub(crate) fn spawn(
        path: PathBuf,
        policy: FsyncPolicy,
        spool: Option<Arc<Spool>>,
    ) -> Result<Self, LedgerError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared::default());
        if let Some(s) = spool {
            let _ = shared.spool.set(s);
        }
        let thread_path = path.clone();
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("costlayer-ledger".to_owned())
            .spawn(move || Writer::new(thread_path, policy, thread_shared).run(rx))
            .map_err(|e| io_error(&path, "start the ledger writer thread for", e))?;
        let _ = shared.thread.set(thread.thread().clone());
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        lock_registry().push(Registered {
            id,
            dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
            tx: tx.clone(),
            shared: shared.clone(),
        });
        Ok(WriterHandle {
            id,
            tx: Some(tx),
            thread: Some(thread),
            shared,
        })
    }

    /// Queues a job; the error is returned if the writer thread is gone.
    ///
    /// A queued write (nobody waits for it) leaves a napping writer alone
    /// until the queue reaches [`WAKE_AT`]; any other job wakes it.
    pub(crate) fn send(&self, job: Job, path: &Path) -> Result<(), LedgerError> {
        let (is_write, awaited) = match &job {
            Job::Write { ack, .. } => (true, ack.is_some()),
            Job::Record(_) => (true, false),
            Job::Barrier { .. } | Job::Flush { .. } => (false, true),
        };
        let queued = if is_write {
            self.shared.sent.fetch_add(1, Ordering::AcqRel) + 1
        } else {
            0
        };
        // The job comes back inside the error only if the thread is gone;
        // it is dropped at once (see `Job` on its size).
        let sent = self.tx.as_ref().map(|tx| tx.send(job).is_ok());
        match sent {
            Some(true) => {
                if awaited
                    || queued.saturating_sub(self.shared.done.load(Ordering::Acquire)) >= WAKE_AT
                {
                    self.shared.wake();
                }
                Ok(())
            }
            _ => {
                if is_write {
                    self.shared.done.fetch_add(1, Ordering::AcqRel);
                }
                Err(io_error(
                    path,
                    "append to",
                    io::Error::other("the ledger writer thread has stopped"),
                ))
            }
        }
    }
}

impl Drop for WriterHandle {
    fn drop(&mut self) {
        lock_registry().retain(|r| r.id != self.id);
        drop(self.tx.take());
        // A napping writer sees the channel closed at once.
        self.shared.wake();
        if let Some(t) = self.thread.take() {
            // The thread writes and syncs what is queued, then exits.
            let _ = t.join();
        }
    }
}

/// One queued or awaited write of a group: where its bytes are in the
/// group's buffer, and who waits for it.
struct Part {
    end: usize,
    ack: Option<Ack>,
}

struct Writer {
    path: PathBuf,
    policy: FsyncPolicy,
    shared: Arc<Shared>,
    /// The open file (not locked between writes) and the length we left it
    /// at, to skip the torn-tail check when nobody else wrote since.
    file: Option<(std::fs::File, u64)>,
    /// Bytes written since the last sync.
    dirty: bool,
    last_sync: Instant,
    /// Queued lines the file refused (no spool to take them): written
    /// before anything else as soon as the file accepts writes again.
    pending: Vec<u8>,
    /// The records of the group being written, dropped together once it
    /// is: their names are shared with the appenders' next records, and a
    /// drop per record would take each name's reference count away from
    /// them once per record instead of once per group.
    spent: Vec<CostRecord>,
}

impl Writer {
    fn new(path: PathBuf, policy: FsyncPolicy, shared: Arc<Shared>) -> Self {
        Writer {
            path,
            policy,
            shared,
            file: None,
            dirty: false,
            last_sync: Instant::now(),
            pending: Vec::new(),
            spent: Vec::new(),
        }
    }

    fn run(mut self, rx: Receiver<Job>) {
        let mut empty_naps = IDLE_NAPS;
        loop {
            // While appends keep coming, nap between groups rather than
            // wait on the channel: a queued append then costs its caller
            // no wake-up (see `NAP`).
            if empty_naps < IDLE_NAPS {
                match self.nap(&rx) {
                    Ok(Some(first)) => {
                        self.handle_group(first, &rx);
                        empty_naps = 0;
                        continue;
                    }
                    Ok(None) => {
                        empty_naps += 1;
                        continue;
                    }
                    Err(()) => break,
                }
            }
            let first = match self.next_deadline() {
                None => match rx.recv() {
                    Ok(j) => j,
                    Err(_) => break,
                },
                Some(deadline) => {
                    let wait = deadline.saturating_duration_since(Instant::now());
                    match rx.recv_timeout(wait) {
                        Ok(j) => j,
                        Err(RecvTimeoutError::Timeout) => {
                            self.retry_pending();
                            if self.sync_due() {
                                self.sync_quietly();
                            }
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
            };
            self.handle_group(first, &rx);
            empty_naps = 0;
        }
        // Every sender is gone: the queue is drained. Write what failed
        // before if the file takes it now, and make it durable unless the
        // policy leaves that to the OS.
        self.retry_pending();
        if !self.pending.is_empty() {
            let lines = std::mem::take(&mut self.pending);
            self.refused(&lines, "the ledger writer stopped");
        }
        if self.policy != FsyncPolicy::Never {
            self.sync_quietly();
        }
    }

    /// The next job if one is queued; else naps up to [`NAP`] (or the next
    /// timer) and answers `None` after running the timers that are due.
    /// `Err` when every sender is gone and the queue is empty.
    fn nap(&mut self, rx: &Receiver<Job>) -> Result<Option<Job>, ()> {
        match rx.try_recv() {
            Ok(job) => return Ok(Some(job)),
            Err(TryRecvError::Disconnected) => return Err(()),
            Err(TryRecvError::Empty) => {}
        }
        let now = Instant::now();
        let nap = self
            .next_deadline()
            .map_or(NAP, |d| NAP.min(d.saturating_duration_since(now)));
        self.shared.napping.store(true, Ordering::Relaxed);
        // Pairs with `Shared::wake`: announce the nap, then look again.
        fence(Ordering::SeqCst);
        let next = rx.try_recv();
        if matches!(next, Err(TryRecvError::Empty)) {
            std::thread::park_timeout(nap);
        }
        self.shared.napping.store(false, Ordering::Relaxed);
        match next {
            Ok(job) => Ok(Some(job)),
            Err(TryRecvError::Disconnected) => Err(()),
            Err(TryRecvError::Empty) => {
                // Failed writes are retried by the next group, or by the
                // idle wait's timer once appends stop.
                if self.sync_due() {
                    self.sync_quietly();
                }
                Ok(None)
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let sync = match self.policy {
            FsyncPolicy::EveryMillis(ms) if self.dirty => {
                Some(self.last_sync + Duration::from_millis(ms))
            }
            _ => None,
        };
        let retry = (!self.pending.is_empty()).then(|| Instant::now() + RETRY_EVERY);
        match (sync, retry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn sync_due(&self) -> bool {
        match self.policy {
            FsyncPolicy::EveryMillis(ms) => {
                self.dirty && self.last_sync.elapsed() >= Duration::from_millis(ms)
            }
            _ => false,
        }
    }

    /// Writes the lines that failed before, if the file takes them now.
    fn retry_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let lines = std::mem::take(&mut self.pending);
        match self.write_locked(&lines) {
            Ok(()) => {
                self.shared.failed.store(false, Ordering::Release);
                tracing::info!(path = %self.path.display(), "queued records the ledger refused earlier are written now");
            }
            Err(_) => self.pending = lines,
        }
    }

    /// Queued lines the file refused: to the spool if there is one (where
    /// they keep counting and are written to the ledger later), else kept
    /// to be tried again.
    fn refused(&mut self, lines: &[u8], why: &str) {
        if let Some(spool) = self.shared.spool.get() {
            let mut n = 0usize;
            for line in lines.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                match serde_json::from_slice::<CostRecord>(line) {
                    Ok(rec) => {
                        spool.put(&rec);
                        n += 1;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "a queued ledger line could not be read back to spool it")
                    }
                }
            }
            tracing::error!(path = %self.path.display(), records = n, reason = why, "the ledger refused queued records: they were kept in the spool and are written to the ledger once it accepts writes again");
        } else if why == "the ledger writer stopped" {
            tracing::error!(path = %self.path.display(), bytes = lines.len(), "the ledger refused queued records and no spool is set: they are lost; fix the data directory (permissions, free space), or use AppendMode::Confirmed to see the error on each append");
        } else {
            self.pending.extend_from_slice(lines);
        }
    }

    /// Writes `first` and whatever else is queued, in rounds of one locked
    /// write each, for as long as more arrives (so records wait for a
    /// `write`, not for the previous group's sync), then syncs once as the
    /// policy says and answers.
    fn handle_group(&mut self, first: Job, rx: &Receiver<Job>) {
        let mut written_acks: Vec<Ack> = Vec::new();
        let mut want_sync = false;
        let mut wrote = false;
        let mut barriers: Vec<Ack> = Vec::new();
        let mut flushes: Vec<Ack> = Vec::new();
        let mut failure: Option<(io::ErrorKind, String)> = None;
        let mut next = Some(first);
        let mut rounds = 0;
        while let Some(first) = next.take() {
            let mut buf: Vec<u8> = std::mem::take(&mut self.pending);
            let carried = buf.len();
            let mut parts: Vec<Part> = Vec::new();
            let mut writes = 0u64;
            let mut job = Some(first);
            while let Some(j) = job.take() {
                match j {
                    Job::Write { bytes, ack, sync } => {
                        if buf.is_empty() {
                            buf = bytes;
                        } else {
                            buf.extend_from_slice(&bytes);
                        }
                        want_sync |= sync;
                        writes += 1;
                        parts.push(Part {
                            end: buf.len(),
                            ack,
                        });
                    }
                    Job::Record(record) => {
                        writes += 1;
                        match serde_json::to_writer(&mut buf, &super::scrub::record(&record)) {
                            Ok(()) => {
                                buf.push(b'\n');
                                parts.push(Part {
                                    end: buf.len(),
                                    ack: None,
                                });
                            }
                            Err(e) => {
                                // Never for a record this crate built; what
                                // was written of it is cut off, and the
                                // record goes where refused ones go.
                                let end = parts.last().map_or(carried, |p| p.end);
                                buf.truncate(end);
                                tracing::error!(error = %e, "a queued record could not be serialised for the ledger");
                                if let Some(spool) = self.shared.spool.get() {
                                    spool.put(&record);
                                }
                            }
                        }
                        self.spent.push(record);
                    }
                    Job::Barrier { ack } => barriers.push(ack),
                    Job::Flush { ack } => flushes.push(ack),
                }
                if buf.len() < MAX_GROUP_BYTES {
                    job = rx.try_recv().ok();
                }
            }
            if !buf.is_empty() {
                match self.write_locked(&buf) {
                    Ok(()) => {
                        wrote = true;
                        self.shared.wrote();
                        written_acks.extend(parts.into_iter().filter_map(|p| p.ack));
                    }
                    Err(e) => {
                        let (kind, msg) = describe(&e);
                        tracing::warn!(path = %self.path.display(), error = %e, "a ledger write failed");
                        self.shared.failed.store(true, Ordering::Release);
                        // The lines queued with nobody waiting are retried
                        // or spooled; those awaited get the error.
                        let mut refused: Vec<u8> = buf[..carried].to_vec();
                        let mut start = carried;
                        for p in parts {
                            match p.ack {
                                Some(a) => a.send(Err(io_error(
                                    &self.path,
                                    "append to",
                                    io::Error::new(kind, msg.clone()),
                                ))),
                                None => refused.extend_from_slice(&buf[start..p.end]),
                            }
                            start = p.end;
                        }
                        if !refused.is_empty() {
                            self.refused(&refused, &msg);
                        }
                        failure = Some((kind, msg));
                    }
                }
            }
            self.shared.done.fetch_add(writes, Ordering::AcqRel);
            self.spent.clear();
            rounds += 1;
            if failure.is_none() && rounds < MAX_ROUNDS {
                next = rx.try_recv().ok();
            }
        }
        for ack in barriers {
            ack.send(Ok(()));
        }
        let synced =
            if wrote && (want_sync || self.policy == FsyncPolicy::Always || self.sync_due()) {
                self.sync().map_err(|e| describe(&e))
            } else {
                Ok(())
            };
        for ack in written_acks {
            ack.send(match &synced {
                Ok(()) => Ok(()),
                Err((kind, msg)) => Err(io_error(
                    &self.path,
                    "sync",
                    io::Error::new(*kind, msg.clone()),
                )),
            });
        }
        if let Err((_, msg)) = &synced {
            tracing::warn!(path = %self.path.display(), error = %msg, "a ledger sync failed");
        }
        if !flushes.is_empty() {
            self.retry_pending();
            let res = if let Some((kind, msg)) = failure.filter(|_| !self.pending.is_empty()) {
                Err((kind, msg))
            } else if !self.pending.is_empty() {
                Err((
                    io::ErrorKind::Other,
                    "queued records could not be written yet".to_owned(),
                ))
            } else {
                self.sync().map_err(|e| describe(&e))
            };
            for ack in flushes {
                ack.send(match &res {
                    Ok(()) => Ok(()),
                    Err((kind, msg)) => Err(io_error(
                        &self.path,
                        "sync",
                        io::Error::new(*kind, msg.clone()),
                    )),
                });
            }
        }
    }

    /// One append: lock, make sure the file still is the ledger (a reset may
    /// have moved it), separate a torn tail left by a crashed writer, write
    /// everything at once, roll back a partial write, unlock.
    fn write_locked(&mut self, bytes: &[u8]) -> Result<(), LedgerError> {
        let path = &self.path;
        let (file, expected_end) = match self.file.take() {
            Some((f, end)) => {
                f.lock().map_err(|e| io_error(path, "lock", e))?;
                if still_at_path(&f, path).map_err(|e| io_error(path, "append to", e))? {
                    (f, Some(end))
                } else {
                    let _ = f.unlock();
                    (self.open_fresh()?, None)
                }
            }
            None => (self.open_fresh()?, None),
        };
        let guard = LockGuard(&file);
        let result = append_bytes(&file, bytes, expected_end);
        drop(guard);
        match result {
            Ok(end) => {
                self.dirty = true;
                self.file = Some((file, end));
                Ok(())
            }
            Err(e) => Err(io_error(&self.path, "append to", e)),
        }
    }

    /// Opens (creating) and locks the ledger file.
    fn open_fresh(&self) -> Result<std::fs::File, LedgerError> {
        let existed = self.path.exists();
        if !existed {
            if let Some(dir) = self.path.parent() {
                ensure_dir(dir)?;
            }
        }
        let file = open_locked_append(&self.path, "append to")?;
        if !existed && self.policy != FsyncPolicy::Never {
            if let Some(dir) = self.path.parent() {
                sync_dir(dir);
            }
        }
        Ok(file)
    }

    fn sync(&mut self) -> Result<(), LedgerError> {
        if let Some((f, _)) = &self.file {
            if self.dirty {
                f.sync_data().map_err(|e| io_error(&self.path, "sync", e))?;
                #[cfg(test)]
                tests::count_sync(&self.path);
            }
        }
        self.dirty = false;
        self.last_sync = Instant::now();
        Ok(())
    }

    fn sync_quietly(&mut self) {
        if let Err(e) = self.sync() {
            tracing::warn!(error = %e, "ledger background sync failed");
        }
    }
}

/// Writes `bytes` at the end of the locked file; returns the new length.
///
/// If the file does not end with a newline (a writer crashed mid-line), a
/// newline is written first so the torn fragment stays a line of its own
/// (quarantined on read) instead of swallowing our first record. If the
/// write fails part-way (disk full, file-size limit), the file is truncated
/// back to where it was: we hold the lock, the partial bytes are ours.
pub(crate) fn append_bytes(
    mut file: &std::fs::File,
    bytes: &[u8],
    expected_end: Option<u64>,
) -> io::Result<u64> {
    let start = file.metadata()?.len();
    let needs_newline =
        start > 0 && expected_end != Some(start) && last_byte(file, start)? != b'\n';
    let res = if needs_newline {
        let mut v = Vec::with_capacity(bytes.len() + 1);
        v.push(b'\n');
        v.extend_from_slice(bytes);
        file.write_all(&v).map(|()| start + v.len() as u64)
    } else {
        file.write_all(bytes).map(|()| start + bytes.len() as u64)
    };
    if res.is_err() {
        if let Ok(m) = file.metadata() {
            if m.len() > start {
                let _ = file.set_len(start);
            }
        }
    }
    res
}

/// The kind and message of an I/O failure, to report it to every append of
/// a failed group.
fn describe(e: &LedgerError) -> (io::ErrorKind, String) {
    match e {
        LedgerError::Io { source, .. } => (source.kind(), source.to_string()),
        other => (io::ErrorKind::Other, other.to_string()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// Syncs made, by file.
    static SYNCS: Mutex<BTreeMap<PathBuf, u64>> = Mutex::new(BTreeMap::new());

    pub(crate) fn count_sync(path: &Path) {
        let mut m = SYNCS.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry(path.to_path_buf()).or_default() += 1;
    }

    fn syncs(path: &Path) -> u64 {
        let m = SYNCS.lock().unwrap_or_else(|p| p.into_inner());
        m.get(path).copied().unwrap_or(0)
    }

    fn answer(rx: &mpsc::Receiver<Result<(), LedgerError>>) -> Result<(), LedgerError> {
        rx.recv()
            .map_err(|_| LedgerError::Config("the writer dropped the answer".into()))?
    }

    fn tempdir() -> Result<tempfile::TempDir, LedgerError> {
        tempfile::tempdir().map_err(|e| io_error(Path::new("."), "make a temp dir", e))
    }

    #[test]
    fn an_awaited_append_is_answered_once_it_is_synced() -> Result<(), LedgerError> {
        let dir = tempdir()?;
        let path = dir.path().join("costs_a.jsonl");
        let handle = WriterHandle::spawn(path.clone(), FsyncPolicy::Always, None)?;
        for i in 0..3 {
            let (tx, rx) = mpsc::channel();
            handle.send(
                Job::Write {
                    bytes: format!("{{\"n\":{i}}}\n").into_bytes(),
                    ack: Some(Ack::Blocking(tx)),
                    sync: true,
                },
                &path,
            )?;
            answer(&rx)?;
            assert_eq!(syncs(&path), i + 1, "answered before its sync");
        }
        // Queued writes, then a flush: all written and synced.
        for i in 0..200 {
            handle.send(
                Job::Write {
                    bytes: format!("{{\"q\":{i}}}\n").into_bytes(),
                    ack: None,
                    sync: false,
                },
                &path,
            )?;
        }
        let (tx, rx) = mpsc::channel();
        handle.send(
            Job::Flush {
                ack: Ack::Blocking(tx),
            },
            &path,
        )?;
        answer(&rx)?;
        assert!(syncs(&path) >= 4, "the queued writes were not synced");
        let text = std::fs::read_to_string(&path).map_err(|e| io_error(&path, "read", e))?;
        assert_eq!(text.lines().count(), 203);
        Ok(())
    }

    #[test]
    fn under_never_nothing_is_synced() -> Result<(), LedgerError> {
        let dir = tempdir()?;
        let path = dir.path().join("costs_b.jsonl");
        let handle = WriterHandle::spawn(path.clone(), FsyncPolicy::Never, None)?;
        let (tx, rx) = mpsc::channel();
        handle.send(
            Job::Write {
                bytes: b"{}\n".to_vec(),
                ack: Some(Ack::Blocking(tx)),
                sync: false,
            },
            &path,
        )?;
        answer(&rx)?;
        drop(handle);
        assert_eq!(syncs(&path), 0);
        Ok(())
    }
}
