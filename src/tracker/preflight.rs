//! Never billed but unrecorded: the ledger check before a call is sent,
//! the spool for records refused after the provider answered, and the
//! tracker's `flush` / `shutdown`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::builder::ledger_error;
use super::CostTracker;
use crate::ledger::{CostRecord, LedgerError, Spool, SpoolLocation};
use crate::Error;

/// How long a successful writability check is trusted (a failed append
/// forgets it at once).
const WRITABLE_FOR: Duration = Duration::from_secs(30);

/// The cached verdict of [`Storage::check_writable`](crate::ledger::Storage::check_writable):
/// "writable until" in nanoseconds since `base`, 0 for "check again".
#[derive(Debug)]
pub(super) struct WritableCache {
    base: Instant,
    until: AtomicU64,
}

impl Default for WritableCache {
    fn default() -> Self {
        WritableCache {
            base: Instant::now(),
            until: AtomicU64::new(0),
        }
    }
}

impl WritableCache {
    fn now(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn is_fresh(&self) -> bool {
        self.now() < self.until.load(Ordering::Acquire)
    }

    fn trust(&self) {
        let until = self.now().saturating_add(WRITABLE_FOR.as_nanos() as u64);
        self.until.store(until.max(1), Ordering::Release);
    }

    fn forget(&self) {
        self.until.store(0, Ordering::Release);
    }
}

impl CostTracker {
    /// Before a call is sent: starts retrying the alerts earlier processes
    /// left undelivered (once), and checks that the ledger can be written
    /// (cached for a while after a success, checked again after any
    /// failure). A spool left by a failed append is written to the ledger
    /// as soon as the ledger accepts writes again.
    pub(super) async fn preflight(&self) -> Result<(), Error> {
        let inner = &self.inner;
        inner.outbox.recover_once();
        if inner.writable.is_fresh() {
            return Ok(());
        }
        if let Err(e) = inner.storage.check_writable().await {
            tracing::error!(error = %e, "the ledger cannot be written: refusing the call before it is sent");
            return Err(unwritable(e));
        }
        inner.writable.trust();
        self.drain_spool().await;
        Ok(())
    }

    /// [`preflight`](Self::preflight) when it can be decided without
    /// waiting: `true` when the ledger is known writable (the cached
    /// verdict is fresh), `false` when it has to be checked.
    #[cfg(feature = "cost")]
    pub(super) fn preflight_now(&self) -> bool {
        self.inner.outbox.recover_once();
        self.inner.writable.is_fresh()
    }

    /// Appends `rec`, or keeps it in the spool if the ledger refuses it.
    pub(super) async fn append_or_spool(&self, rec: &CostRecord) -> Option<SpoolLocation> {
        let err = self.inner.storage.append(rec).await.err()?;
        Some(self.spool_refused(rec, err))
    }

    /// Keeps `rec`, which the ledger refused with `err`, in the spool.
    pub(super) fn spool_refused(&self, rec: &CostRecord, err: LedgerError) -> SpoolLocation {
        let inner = &self.inner;
        inner.writable.forget();
        let at = inner.spool.put(rec);
        tracing::error!(
            error = %err,
            record = %rec.id,
            spooled_to = %at,
            "the ledger refused a billed call's record: it was kept in the spool, still counts in the budgets, and is written to the ledger once it accepts writes again"
        );
        at
    }

    async fn drain_spool(&self) {
        let inner = &self.inner;
        if !inner.spool.may_hold_records() {
            return;
        }
        if let Err(e) = inner.spool.drain_into(inner.storage.as_ref()).await {
            inner.writable.forget();
            tracing::warn!(error = %e, "spooled records could not be written to the ledger yet; they stay in the spool");
        }
    }

    /// The spool of records the ledger refused after the provider answered.
    pub fn spool(&self) -> &Spool {
        &self.inner.spool
    }

    /// Gets everything out before a program exits, and keeps the tracker
    /// usable: writes spooled records to the ledger if it accepts them,
    /// evaluates the budgets' thresholds on the shared totals once more (a
    /// threshold crossed by the joint spend of several processes during
    /// this process's last calls is alerted), retries the alerts left
    /// pending or failed (by this process's earlier rounds excepted: by
    /// earlier or crashed processes), waits for every queued alert, and
    /// makes the ledger durable
    /// ([`Storage::flush`](crate::ledger::Storage::flush)).
    ///
    /// # Errors
    ///
    /// The ledger's flush error. Undelivered alerts are not errors: they
    /// stay in the outbox ([`CostTracker::delivery_failures`] lists this
    /// process's failures).
    pub async fn flush(&self) -> Result<(), Error> {
        let inner = &self.inner;
        if inner.spool.may_hold_records() && inner.storage.check_writable().await.is_ok() {
            self.drain_spool().await;
        }
        self.alert_shared().await;
        inner.outbox.flush().await;
        inner.storage.flush().await.map_err(ledger_error)
    }

    /// [`CostTracker::flush`], then stops this tracker's alert delivery
    /// thread. Call it at the end of `main` (clones still work, but alerts
    /// they raise are delivered by a new thread). Dropping the last clone
    /// does the same on a best-effort basis: it waits up to 10 seconds for
    /// queued alerts, cannot flush the ledger's buffers, and leaves what is
    /// undelivered in the outbox for the next process.
    ///
    /// # Errors
    ///
    /// As [`CostTracker::flush`].
    pub async fn shutdown(self) -> Result<(), Error> {
        let result = self.flush().await;
        self.inner.outbox.close();
        result
    }
}

/// The typed refusal for a ledger that cannot be written.
fn unwritable(e: LedgerError) -> Error {
    let location = match &e {
        LedgerError::Io { path, .. } => path.display().to_string(),
        _ => "the ledger".to_owned(),
    };
    Error::LedgerUnwritable {
        location,
        message: e.to_string(),
    }
}

impl Drop for super::Inner {
    /// The last clone of a tracker is gone: write and sync every record
    /// this process queued for its ledger (records queued by
    /// [`AppendMode::Queued`](crate::ledger::AppendMode::Queued) are never
    /// lost by a short program that drops its tracker and exits).
    fn drop(&mut self) {
        crate::ledger::flush_all_queued();
    }
}
