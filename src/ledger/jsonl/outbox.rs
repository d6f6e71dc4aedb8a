//! The alert outbox of a JSONL directory (`outbox.jsonl`), and the
//! pre-flight writability check.
//!
//! Every change of an alert's delivery state appends one line (the whole
//! [`OutboxEntry`]); the last line of a key is its state. Claims, saves and
//! take-overs hold the directory-wide `.alerts.lock`, so a claim (alert
//! history line, then outbox line) and a take-over are atomic for every
//! process sharing the directory.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::files::{ensure_dir, io_error, open_locked_append, LockGuard};
use super::JsonlStorage;
use crate::alert::{latest_per_key, take_if_claimable, DeliveryOwner, OutboxEntry};
use crate::ledger::LedgerError;

/// The outbox file in the ledger directory.
pub(super) const OUTBOX_FILE: &str = "outbox.jsonl";

/// The size of the probe written by the writability check: more than a
/// partly filled block, so a full disk refuses it.
const PROBE_BYTES: usize = 8192;

impl JsonlStorage {
    /// The alert outbox, `<dir>/outbox.jsonl`.
    pub fn outbox_path(&self) -> PathBuf {
        self.inner.dir.join(OUTBOX_FILE)
    }

    /// Appends one state line to the outbox (the alert lock held).
    fn append_outbox_locked(&self, entry: &OutboxEntry) -> Result<(), LedgerError> {
        let path = self.outbox_path();
        let file = open_locked_append(&path, "save an alert's delivery state in")?;
        let _guard = LockGuard(&file);
        let mut bytes = serde_json::to_vec(entry)?;
        bytes.push(b'\n');
        super::writer::append_bytes(&file, &bytes, None)
            .and_then(|_| file.sync_data())
            .map_err(|e| io_error(&path, "save an alert's delivery state in", e))?;
        Ok(())
    }

    pub(super) fn claim_alert_blocking(&self, entry: &OutboxEntry) -> Result<bool, LedgerError> {
        self.with_alerts_lock(|| {
            if !self.mark_alert_locked(&entry.key, &entry.alert.to_json())? {
                return Ok(false);
            }
            self.append_outbox_locked(entry)?;
            Ok(true)
        })
    }

    pub(super) fn save_delivery_blocking(&self, entry: &OutboxEntry) -> Result<(), LedgerError> {
        self.with_alerts_lock(|| self.append_outbox_locked(entry))
    }

    pub(super) fn take_delivery_blocking(
        &self,
        key: &str,
        owner: &DeliveryOwner,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Option<OutboxEntry>, LedgerError> {
        self.with_alerts_lock(|| {
            let entry = self.read_outbox()?.into_iter().rev().find(|e| e.key == key);
            let taken = take_if_claimable(entry, owner, now, lease)?;
            if let Some(e) = &taken {
                self.append_outbox_locked(e)?;
            }
            Ok(taken)
        })
    }

    /// The latest delivery state of every alert in `outbox.jsonl` (see
    /// [`Storage::deliveries`](crate::ledger::Storage::deliveries)).
    /// Blocking. Unreadable lines are skipped.
    ///
    /// # Errors
    ///
    /// [`LedgerError::Io`] if the file exists but cannot be read.
    pub fn deliveries_blocking(&self) -> Result<Vec<OutboxEntry>, LedgerError> {
        Ok(latest_per_key(self.read_outbox()?))
    }

    /// Every line of the outbox, in file order.
    fn read_outbox(&self) -> Result<Vec<OutboxEntry>, LedgerError> {
        let path = self.outbox_path();
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error(&path, "read the alert outbox", e)),
        };
        file.lock_shared().map_err(|e| io_error(&path, "lock", e))?;
        let _guard = LockGuard(&file);
        let mut out = Vec::new();
        let mut reader = BufReader::new(&file);
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = reader
                .read_until(b'\n', &mut line)
                .map_err(|e| io_error(&path, "read the alert outbox", e))?;
            if n == 0 {
                return Ok(out);
            }
            match serde_json::from_slice::<OutboxEntry>(&line) {
                Ok(e) => out.push(e),
                Err(e) if !line.iter().all(u8::is_ascii_whitespace) => {
                    tracing::warn!(path = %path.display(), error = %e, "skipping an unreadable line of the alert outbox");
                }
                Err(_) => {}
            }
        }
    }

    /// The pre-flight check: the directory exists (or can be created) and
    /// is a directory, this user's ledger file is a regular file (or
    /// absent) that can be opened for appending, and a probe of a few KiB
    /// can be written next to it (so a full disk is seen before the call,
    /// not after it was billed). The probe is removed.
    ///
    /// # Errors
    ///
    /// [`LedgerError::Io`] naming the path and what to do.
    pub fn check_writable_blocking(&self) -> Result<(), LedgerError> {
        let dir = &self.inner.dir;
        ensure_dir(dir)?;
        let ledger = self.ledger_path();
        let op = "append to";
        match std::fs::metadata(&ledger) {
            Ok(m) if !m.is_file() => {
                let kind = if m.is_dir() {
                    ErrorKind::IsADirectory
                } else {
                    ErrorKind::InvalidInput
                };
                return Err(io_error(
                    &ledger,
                    op,
                    std::io::Error::new(kind, "not a regular file"),
                ));
            }
            Ok(_) => {
                OpenOptions::new()
                    .append(true)
                    .open(&ledger)
                    .map_err(|e| io_error(&ledger, op, e))?;
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(&ledger, op, e)),
        }
        let probe = dir.join(format!(
            ".write-probe-{}-{}",
            std::process::id(),
            ulid::Ulid::new()
        ));
        let result = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&probe)
            .and_then(|mut f| f.write_all(&[b'\n'; PROBE_BYTES]).and_then(|()| f.flush()));
        let _ = std::fs::remove_file(&probe);
        result.map_err(|e| io_error(dir, "write a record in", e))
    }
}
