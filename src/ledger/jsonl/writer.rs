//! The appender: one background thread per [`super::JsonlStorage`] that
//! group-commits queued appends into one locked `write` and acknowledges
//! each append only once its bytes are in the file (and on disk, under
//! [`FsyncPolicy::Always`]).

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::files::{
    ensure_dir, io_error, last_byte, open_locked_append, still_at_path, sync_dir, LockGuard,
};
use super::FsyncPolicy;
use crate::ledger::LedgerError;

/// At most this many bytes are gathered into one `write`.
const MAX_GROUP_BYTES: usize = 4 << 20;

type Ack = oneshot::Sender<Result<(), LedgerError>>;

pub(crate) enum Job {
    /// Complete lines (each ends with `\n`) to append in one write.
    Write { bytes: Vec<u8>, ack: Ack },
    /// Make every write so far durable.
    Flush { ack: Ack },
}

/// The sending half, owned by the storage. Dropping it lets the thread
/// finish the queue, sync (unless the policy is `Never`) and exit.
#[derive(Debug)]
pub(crate) struct WriterHandle {
    tx: Sender<Job>,
}

impl WriterHandle {
    pub(crate) fn spawn(path: PathBuf, policy: FsyncPolicy) -> Result<Self, LedgerError> {
        let (tx, rx) = mpsc::channel();
        let name = "costlayer-ledger".to_owned();
        let thread_path = path.clone();
        std::thread::Builder::new()
            .name(name)
            .spawn(move || Writer::new(thread_path, policy).run(rx))
            .map_err(|e| io_error(&path, "start the ledger writer thread for", e))?;
        Ok(WriterHandle { tx })
    }

    /// Queues a job; the error is returned if the writer thread is gone.
    pub(crate) fn send(&self, job: Job, path: &Path) -> Result<(), LedgerError> {
        self.tx.send(job).map_err(|_| {
            io_error(
                path,
                "append to",
                io::Error::other("the ledger writer thread has stopped"),
            )
        })
    }
}

struct Writer {
    path: PathBuf,
    policy: FsyncPolicy,
    /// The open file (not locked between writes) and the length we left it
    /// at, to skip the torn-tail check when nobody else wrote since.
    file: Option<(std::fs::File, u64)>,
    /// Bytes written since the last sync.
    dirty: bool,
    last_sync: Instant,
}

impl Writer {
    fn new(path: PathBuf, policy: FsyncPolicy) -> Self {
        Writer {
            path,
            policy,
            file: None,
            dirty: false,
            last_sync: Instant::now(),
        }
    }

    fn run(mut self, rx: Receiver<Job>) {
        loop {
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
                            self.sync_quietly();
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
            };
            self.handle_group(first, &rx);
        }
        // Every sender is gone: the queue is drained. Make it durable unless
        // the policy leaves that to the OS.
        if self.policy != FsyncPolicy::Never {
            self.sync_quietly();
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        match self.policy {
            FsyncPolicy::EveryMillis(ms) if self.dirty => {
                Some(self.last_sync + Duration::from_millis(ms))
            }
            _ => None,
        }
    }

    /// Gathers `first` and whatever else is queued into one write.
    fn handle_group(&mut self, first: Job, rx: &Receiver<Job>) {
        let mut buf: Vec<u8> = Vec::new();
        let mut acks: Vec<Ack> = Vec::new();
        let mut flushes: Vec<Ack> = Vec::new();
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match job {
                Job::Write { bytes, ack } => {
                    if buf.is_empty() {
                        buf = bytes;
                    } else {
                        buf.extend_from_slice(&bytes);
                    }
                    acks.push(ack);
                }
                Job::Flush { ack } => flushes.push(ack),
            }
            if buf.len() < MAX_GROUP_BYTES {
                next = rx.try_recv().ok();
            }
        }
        if !buf.is_empty() {
            let res = self.write_locked(&buf);
            let res = res.and_then(|()| match self.policy {
                FsyncPolicy::Always => self.sync(),
                FsyncPolicy::EveryMillis(ms) => {
                    if self.last_sync.elapsed() >= Duration::from_millis(ms) {
                        self.sync()
                    } else {
                        Ok(())
                    }
                }
                FsyncPolicy::Never => Ok(()),
            });
            match res {
                Ok(()) => {
                    for ack in acks {
                        let _ = ack.send(Ok(()));
                    }
                }
                Err(e) => {
                    let (kind, msg) = describe(&e);
                    let _ = acks.pop().map(|a| a.send(Err(e)));
                    for ack in acks {
                        let _ = ack.send(Err(io_error(
                            &self.path,
                            "append to",
                            io::Error::new(kind, msg.clone()),
                        )));
                    }
                }
            }
        }
        if !flushes.is_empty() {
            let res = self.sync();
            let (kind, msg) = match &res {
                Ok(()) => (io::ErrorKind::Other, String::new()),
                Err(e) => describe(e),
            };
            for ack in flushes {
                let r = match &res {
                    Ok(()) => Ok(()),
                    Err(_) => Err(io_error(
                        &self.path,
                        "sync",
                        io::Error::new(kind, msg.clone()),
                    )),
                };
                let _ = ack.send(r);
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
