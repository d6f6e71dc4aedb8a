//! The alert outbox: every alert is claimed once across processes, then
//! delivered, and its delivery state is kept in the ledger's storage until
//! every sink has it.
//!
//! # Life of an alert
//!
//! 1. **Claimed.** [`Storage::claim_alert`] records the alert in the alert
//!    history and saves an [`OutboxEntry`] whose sinks are all
//!    [`DeliveryState::Pending`], owned by this process (a
//!    [`DeliveryOwner`]) under a lease. Of several processes racing on one
//!    key exactly one claims it; the others never send it.
//! 2. **Delivered.** The claiming process sends it to each sink (retried
//!    with backoff, [`AlertRetry`]) and saves the result per sink:
//!    delivered, or failed with the number of attempts and the last error
//!    (secrets redacted).
//! 3. **Retried.** An alert still pending (its process died before
//!    delivering it) or failed is taken over by the next process that uses
//!    the storage ([`Storage::take_delivery`]: atomic, so one process
//!    retries it), and again at [`CostTracker::flush`]. A pending alert is
//!    taken over when its owner is gone (a dead process on the same host)
//!    or its lease has expired; a failed one at once. A sink is given up on
//!    after [`OutboxEntry::MAX_ATTEMPTS`] attempts in all.
//!
//! Delivery runs on a thread of its own (with its own small Tokio
//! runtime), off the caller's path and independent of the caller's runtime:
//! a short program whose runtime ends right after its last call still gets
//! its alerts out at [`CostTracker::flush`] / [`CostTracker::shutdown`], or,
//! best effort, when the last clone of the tracker is dropped.
//!
//! [`Storage::claim_alert`]: crate::ledger::Storage::claim_alert
//! [`Storage::take_delivery`]: crate::ledger::Storage::take_delivery
//! [`CostTracker::flush`]: crate::tracker::CostTracker::flush
//! [`CostTracker::shutdown`]: crate::tracker::CostTracker::shutdown

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Alert, AlertSink};
use crate::ledger::{LedgerError, Storage};

/// How failing alert sinks are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertRetry {
    /// Attempts per sink in one delivery round, the first included (at
    /// least 1).
    pub attempts: u32,
    /// Wait before the second attempt; doubled before each further one.
    pub backoff: Duration,
}

impl Default for AlertRetry {
    /// Three attempts, 500 ms then 1 s apart.
    fn default() -> Self {
        AlertRetry {
            attempts: 3,
            backoff: Duration::from_millis(500),
        }
    }
}

/// A sink that gave up on an alert after all its attempts of a round.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeliveryFailure {
    /// The alert's key.
    pub key: String,
    /// The sink's name.
    pub sink: String,
    /// The last error (secrets redacted).
    pub error: String,
    /// How many attempts were made in this round.
    pub attempts: u32,
}

impl fmt::Display for DeliveryFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "alert `{}` could not be sent by the {} sink after {} attempt{}: {}",
            self.key,
            self.sink,
            self.attempts,
            if self.attempts == 1 { "" } else { "s" },
            self.error
        )
    }
}

/// Where one sink's delivery of an alert stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeliveryState {
    /// Not sent yet (or being sent).
    Pending,
    /// Sent.
    Delivered,
    /// The last round of attempts failed; it will be retried.
    Failed,
}

impl DeliveryState {
    /// `pending`, `delivered` or `failed`.
    pub const fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }
}

impl fmt::Display for DeliveryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One sink's delivery of an alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SinkDelivery {
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts so far, over every round and process.
    #[serde(default)]
    pub attempts: u32,
    /// The last error, secrets redacted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Who receives it (`oncall@example.com`, `https://hooks.slack.com/…`),
    /// when the sink says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// When it was delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<DateTime<Utc>>,
}

impl SinkDelivery {
    /// A sink that has not been tried yet.
    pub fn pending(target: Option<String>) -> Self {
        SinkDelivery {
            state: DeliveryState::Pending,
            attempts: 0,
            last_error: None,
            target,
            delivered_at: None,
        }
    }
}

/// The process delivering an alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DeliveryOwner {
    /// Its process id.
    pub pid: u32,
    /// Its host name.
    pub host: String,
    /// A token unique to the tracker, so two trackers of one process (or a
    /// reused pid) are told apart.
    pub token: String,
}

impl DeliveryOwner {
    /// This process, with a fresh token.
    pub fn this_process() -> Self {
        DeliveryOwner {
            pid: std::process::id(),
            host: host_name(),
            token: ulid::Ulid::new().to_string(),
        }
    }

    /// Whether the owner is known to be gone: a process of this host whose
    /// pid no longer exists (checked on Linux; elsewhere, and for other
    /// hosts, only the lease tells).
    pub fn is_gone(&self) -> bool {
        if self.host != host_name() {
            return false;
        }
        if cfg!(target_os = "linux") {
            return !std::path::Path::new(&format!("/proc/{}", self.pid)).exists();
        }
        false
    }
}

fn host_name() -> String {
    whoami::fallible::hostname().unwrap_or_else(|_| "unknown".to_owned())
}

/// An alert in the outbox: the alert, and each sink's delivery of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct OutboxEntry {
    /// The alert's key (as [`Alert::key`]).
    pub key: String,
    /// The alert.
    pub alert: Alert,
    /// Each sink's delivery, by sink name.
    pub sinks: BTreeMap<String, SinkDelivery>,
    /// The process delivering it now, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<DeliveryOwner>,
    /// Until when the owner may deliver it before another process may take
    /// it over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_until: Option<DateTime<Utc>>,
    /// When this state was saved.
    pub updated_at: DateTime<Utc>,
}

impl OutboxEntry {
    /// After this many attempts in all, a sink is given up on (the entry
    /// stays failed, and is shown, but is no longer retried).
    pub const MAX_ATTEMPTS: u32 = 20;

    /// A freshly claimed alert: every sink pending, owned by `owner` until
    /// `now + lease`.
    pub fn claimed(
        alert: Alert,
        sinks: impl IntoIterator<Item = (String, Option<String>)>,
        owner: DeliveryOwner,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Self {
        OutboxEntry {
            key: alert.key.clone(),
            sinks: sinks
                .into_iter()
                .map(|(name, target)| (name, SinkDelivery::pending(target)))
                .collect(),
            alert,
            owner: Some(owner),
            lease_until: Some(now + lease_duration(lease)),
            updated_at: now,
        }
    }

    /// The alert's overall state: delivered when every sink has it, failed
    /// when a sink failed and none is pending, pending otherwise.
    pub fn state(&self) -> DeliveryState {
        let states = || self.sinks.values().map(|s| s.state);
        if states().all(|s| s == DeliveryState::Delivered) {
            DeliveryState::Delivered
        } else if states().any(|s| s == DeliveryState::Pending) {
            DeliveryState::Pending
        } else {
            DeliveryState::Failed
        }
    }

    /// Whether some sink still has to get it, and may still be tried.
    pub fn needs_delivery(&self) -> bool {
        self.sinks
            .values()
            .any(|s| s.state != DeliveryState::Delivered && s.attempts < Self::MAX_ATTEMPTS)
    }

    /// Whether `owner` may take the delivery over at `now`: something is
    /// left to deliver, and nobody is delivering it (no owner, the owner
    /// is gone, or its lease has expired).
    pub fn is_claimable(&self, owner: &DeliveryOwner, now: DateTime<Utc>) -> bool {
        if !self.needs_delivery() {
            return false;
        }
        match &self.owner {
            None => true,
            Some(o) if o == owner => true,
            Some(o) => o.is_gone() || self.lease_until.is_none_or(|l| now >= l),
        }
    }

    /// Takes the delivery over for `owner` until `now + lease`.
    pub fn take(&mut self, owner: &DeliveryOwner, now: DateTime<Utc>, lease: Duration) {
        self.owner = Some(owner.clone());
        self.lease_until = Some(now + lease_duration(lease));
        self.updated_at = now;
    }
}

fn lease_duration(lease: Duration) -> chrono::Duration {
    chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX)
}

/// Redacts what may be a secret in a sink's error before it is stored or
/// shown, with [`costlayer_core::redact::text`] (the one redaction helper:
/// registered keys and webhook URL tokens, URL credentials and key
/// parameters, SMTP `AUTH` and HTTP `Bearer`/`Basic` tokens). Keeps at most
/// 500 characters.
///
/// ```
/// use costlayer::alert::redact_secrets;
///
/// let s = redact_secrets("POST https://u:hunter22@hooks.example/x?token=abc123 failed: Bearer sk-abcdefghijklmnop");
/// assert!(!s.contains("hunter22") && !s.contains("abc123") && !s.contains("abcdefghijklmnop"), "{s}");
/// ```
pub fn redact_secrets(message: &str) -> String {
    let s = costlayer_core::redact::text(message);
    if s.chars().count() > 500 {
        let mut t: String = s.chars().take(500).collect();
        t.push('…');
        t
    } else {
        s.into_owned()
    }
}

/// How the outbox is set up: the sinks (with unique names), the retry
/// policy, the delivery lease, how long a drop may wait.
pub(crate) struct OutboxConfig {
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) sinks: Vec<Arc<dyn AlertSink>>,
    pub(crate) retry: AlertRetry,
    pub(crate) lease: Duration,
    pub(crate) drop_timeout: Duration,
    /// Called with an alert key whose claim failed in the storage, so the
    /// tracker tries it again later.
    pub(crate) on_claim_error: Box<dyn Fn(&str) + Send + Sync>,
}

enum Msg {
    Deliver(Alert),
    Recover,
    Flush(tokio::sync::oneshot::Sender<()>),
}

struct Shared {
    storage: Arc<dyn Storage>,
    sinks: Vec<(String, Arc<dyn AlertSink>)>,
    retry: AlertRetry,
    lease: Duration,
    owner: DeliveryOwner,
    failures: Mutex<Vec<DeliveryFailure>>,
    on_claim_error: Box<dyn Fn(&str) + Send + Sync>,
    /// Messages sent and not yet handled.
    queued: AtomicUsize,
    /// Keys this process has delivered or tried: a recovery round leaves
    /// them to the next process.
    attempted: Mutex<std::collections::HashSet<String>>,
}

struct Worker {
    tx: tokio::sync::mpsc::UnboundedSender<Msg>,
    done: std::sync::mpsc::Receiver<()>,
}

/// The delivery side of the outbox: a lazily started thread that claims,
/// delivers and retries alerts. Owned by the tracker.
pub(crate) struct Outbox {
    shared: Arc<Shared>,
    worker: Mutex<Option<Worker>>,
    recovered: AtomicBool,
    drop_timeout: Duration,
}

impl fmt::Debug for Outbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outbox")
            .field(
                "sinks",
                &self.shared.sinks.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("owner", &self.shared.owner)
            .finish_non_exhaustive()
    }
}

impl Outbox {
    pub(crate) fn new(config: OutboxConfig) -> Self {
        // Unique sink names: the second `custom` sink is `custom#2`.
        let mut sinks: Vec<(String, Arc<dyn AlertSink>)> = Vec::new();
        for s in config.sinks {
            let base = s.name().to_owned();
            let mut name = base.clone();
            let mut n = 1;
            while sinks.iter().any(|(m, _)| *m == name) {
                n += 1;
                name = format!("{base}#{n}");
            }
            sinks.push((name, s));
        }
        Outbox {
            shared: Arc::new(Shared {
                storage: config.storage,
                sinks,
                retry: config.retry,
                lease: config.lease,
                owner: DeliveryOwner::this_process(),
                failures: Mutex::new(Vec::new()),
                on_claim_error: config.on_claim_error,
                queued: AtomicUsize::new(0),
                attempted: Mutex::new(std::collections::HashSet::new()),
            }),
            worker: Mutex::new(None),
            recovered: AtomicBool::new(false),
            drop_timeout: config.drop_timeout,
        }
    }

    /// Queues `alert` to be claimed and delivered.
    pub(crate) fn submit(&self, alert: Alert) {
        self.send(Msg::Deliver(alert));
    }

    /// Once per tracker: takes over the alerts that earlier or other
    /// processes left pending or failed.
    pub(crate) fn recover_once(&self) {
        if self.shared.sinks.is_empty()
            || self.recovered.load(Ordering::Acquire)
            || self.recovered.swap(true, Ordering::AcqRel)
        {
            return;
        }
        self.send(Msg::Recover);
    }

    /// Retries what earlier processes left in the outbox, then waits until
    /// every alert queued so far is delivered or failed.
    pub(crate) async fn flush(&self) {
        if !self.shared.sinks.is_empty() {
            self.recovered.store(true, Ordering::Release);
            self.send(Msg::Recover);
        }
        self.wait().await;
    }

    /// Waits until every alert queued so far is delivered or failed.
    pub(crate) async fn wait(&self) {
        if self.shared.queued.load(Ordering::Acquire) == 0 {
            return;
        }
        let (ack, done) = tokio::sync::oneshot::channel();
        if self.send(Msg::Flush(ack)) {
            let _ = done.await;
        }
    }

    /// Sinks that gave up on an alert, since the tracker was built.
    pub(crate) fn failures(&self) -> Vec<DeliveryFailure> {
        self.shared
            .failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Stops the worker after it has handled everything queued, waiting at
    /// most the drop timeout. What is not delivered by then stays in the
    /// outbox for the next process.
    pub(crate) fn close(&self) {
        let worker = self.worker.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(worker) = worker else { return };
        // Never wait for the worker from the worker itself (the last
        // tracker reference may be released there).
        let on_worker = std::thread::current().name() == Some(WORKER_THREAD);
        let busy = self.shared.queued.load(Ordering::Acquire) > 0 && !on_worker;
        drop(worker.tx);
        if busy && worker.done.recv_timeout(self.drop_timeout).is_err() {
            tracing::warn!(
                "alerts were still being delivered when the tracker was dropped; they stay in the outbox and the next process retries them (call CostTracker::flush before exiting)"
            );
        }
    }

    fn send(&self, msg: Msg) -> bool {
        let mut guard = self.worker.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            match spawn_worker(self.shared.clone()) {
                Ok(w) => *guard = Some(w),
                Err(e) => {
                    tracing::error!(error = %e, "could not start the alert delivery thread; alerts stay in the outbox for the next process");
                    return false;
                }
            }
        }
        let Some(w) = guard.as_ref() else {
            return false;
        };
        self.shared.queued.fetch_add(1, Ordering::AcqRel);
        if w.tx.send(msg).is_err() {
            self.shared.queued.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        self.close();
    }
}

/// The name of the delivery thread.
const WORKER_THREAD: &str = "costlayer-alerts";

fn spawn_worker(shared: Arc<Shared>) -> std::io::Result<Worker> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Msg>();
    let (done_tx, done) = std::sync::mpsc::channel();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name(WORKER_THREAD.to_owned())
        .spawn(move || {
            rt.block_on(async move {
                while let Some(msg) = rx.recv().await {
                    match msg {
                        Msg::Deliver(alert) => deliver_new(&shared, alert).await,
                        Msg::Recover => recover(&shared).await,
                        Msg::Flush(ack) => {
                            let _ = ack.send(());
                        }
                    }
                    shared.queued.fetch_sub(1, Ordering::AcqRel);
                }
            });
            let _ = done_tx.send(());
        })?;
    Ok(Worker { tx, done })
}

/// Claims a new alert and, if this process is first, delivers it.
async fn deliver_new(shared: &Shared, alert: Alert) {
    let now = Utc::now();
    let sinks = shared.sinks.iter().map(|(n, s)| (n.clone(), s.target()));
    let entry = OutboxEntry::claimed(alert, sinks, shared.owner.clone(), now, shared.lease);
    match shared.storage.claim_alert(&entry).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::debug!(key = %entry.key, "alert already claimed (another process or an earlier run)");
            return;
        }
        Err(e) => {
            tracing::warn!(key = %entry.key, error = %e, "could not record the alert in the alert history; it will be tried again on the next call");
            (shared.on_claim_error)(&entry.key);
            return;
        }
    }
    let a = &entry.alert;
    tracing::warn!(
        budget = %a.budget,
        threshold = %a.threshold,
        period = %a.period,
        severity = %a.severity,
        "{}",
        a.message
    );
    deliver(shared, entry).await;
}

/// Takes over and delivers every alert left pending or failed.
async fn recover(shared: &Shared) {
    let entries = match shared.storage.deliveries().await {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the alert outbox; undelivered alerts will be retried later");
            return;
        }
    };
    let now = Utc::now();
    for e in entries {
        if shared
            .attempted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&e.key)
        {
            continue;
        }
        let ours = e.sinks.iter().any(|(name, d)| {
            d.state != DeliveryState::Delivered
                && d.attempts < OutboxEntry::MAX_ATTEMPTS
                && shared.sinks.iter().any(|(n, _)| n == name)
        });
        if !ours || !e.is_claimable(&shared.owner, now) {
            continue;
        }
        match shared
            .storage
            .take_delivery(&e.key, &shared.owner, now, shared.lease)
            .await
        {
            Ok(Some(taken)) => {
                tracing::info!(key = %taken.key, "retrying an undelivered alert");
                deliver(shared, taken).await;
            }
            Ok(None) => {}
            Err(err) => {
                tracing::warn!(key = %e.key, error = %err, "could not take over an undelivered alert");
            }
        }
    }
}

/// Sends `entry` to every sink that still needs it, then saves the result
/// and releases it.
async fn deliver(shared: &Shared, mut entry: OutboxEntry) {
    shared
        .attempted
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(entry.key.clone());
    let todo: Vec<(String, Arc<dyn AlertSink>)> = shared
        .sinks
        .iter()
        .filter(|(name, _)| {
            entry.sinks.get(name).is_none_or(|d| {
                d.state != DeliveryState::Delivered && d.attempts < OutboxEntry::MAX_ATTEMPTS
            })
        })
        .cloned()
        .collect();
    let alert = entry.alert.clone();
    let sends = todo
        .iter()
        .map(|(name, sink)| send_with_retry(shared, name, sink.as_ref(), &alert));
    let results = futures_util::future::join_all(sends).await;
    let now = Utc::now();
    for ((name, sink), (attempts, result)) in todo.iter().zip(results) {
        let d = entry
            .sinks
            .entry(name.clone())
            .or_insert_with(|| SinkDelivery::pending(sink.target()));
        d.attempts = d.attempts.saturating_add(attempts);
        match result {
            Ok(()) => {
                d.state = DeliveryState::Delivered;
                d.last_error = None;
                d.delivered_at = Some(now);
            }
            Err(error) => {
                d.state = DeliveryState::Failed;
                d.last_error = Some(error);
            }
        }
    }
    entry.owner = None;
    entry.lease_until = None;
    entry.updated_at = now;
    if let Err(e) = shared.storage.save_delivery(&entry).await {
        tracing::error!(key = %entry.key, error = %e, "could not save the alert's delivery state");
    }
}

/// One round of attempts: `(attempts made, Ok or the last redacted error)`.
async fn send_with_retry(
    shared: &Shared,
    name: &str,
    sink: &dyn AlertSink,
    alert: &Alert,
) -> (u32, Result<(), String>) {
    let retry = shared.retry;
    let mut delay = retry.backoff;
    for attempt in 1..=retry.attempts.max(1) {
        match sink.send(alert).await {
            Ok(()) => {
                crate::metrics::alert_delivery(sink.name(), true);
                return (attempt, Ok(()));
            }
            Err(e) if attempt < retry.attempts => {
                let error = redact_secrets(&e.to_string());
                tracing::warn!(sink = name, key = %alert.key, attempt, error = %error, "alert delivery failed; retrying");
                tokio::time::sleep(delay).await;
                delay = delay.saturating_mul(2);
            }
            Err(e) => {
                let error = redact_secrets(&e.to_string());
                tracing::error!(sink = name, key = %alert.key, attempts = attempt, error = %error, "alert delivery failed; it stays in the outbox and is retried by the next process");
                crate::metrics::alert_delivery(sink.name(), false);
                record_failure(shared, sink.name(), alert, &error, attempt).await;
                return (attempt, Err(error));
            }
        }
    }
    (0, Ok(()))
}

async fn record_failure(shared: &Shared, sink: &str, alert: &Alert, error: &str, attempts: u32) {
    let failure = DeliveryFailure {
        key: alert.key.clone(),
        sink: sink.to_owned(),
        error: error.to_owned(),
        attempts,
    };
    let payload = serde_json::json!({
        "delivery_failed": true,
        "sink": failure.sink,
        "error": failure.error,
        "attempts": attempts,
        "alert": alert.to_json(),
    });
    // The first failure of a sink is also kept in the alert history, for
    // tools that read only that.
    let key = format!("{}#failed#{}", alert.key, failure.sink);
    if let Err(le) = shared.storage.mark_alert(&key, &payload).await {
        tracing::error!(error = %le, "could not record the delivery failure in the alert history");
    }
    shared
        .failures
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(failure);
}

/// The latest entry per key of an outbox log (lines in save order).
pub(crate) fn latest_per_key(entries: impl IntoIterator<Item = OutboxEntry>) -> Vec<OutboxEntry> {
    let mut by_key: BTreeMap<String, OutboxEntry> = BTreeMap::new();
    for e in entries {
        by_key.insert(e.key.clone(), e);
    }
    let mut v: Vec<OutboxEntry> = by_key.into_values().collect();
    v.sort_by(|a, b| {
        a.alert
            .fired_at
            .cmp(&b.alert.fired_at)
            .then_with(|| a.key.cmp(&b.key))
    });
    v
}

/// Takes `entry` over for `owner` if it is claimable (the storages'
/// `take_delivery`, once they hold their lock).
pub(crate) fn take_if_claimable(
    entry: Option<OutboxEntry>,
    owner: &DeliveryOwner,
    now: DateTime<Utc>,
    lease: Duration,
) -> Result<Option<OutboxEntry>, LedgerError> {
    Ok(entry.filter(|e| e.is_claimable(owner, now)).map(|mut e| {
        e.take(owner, now, lease);
        e
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted() {
        costlayer_core::redact::register_url(
            "https://hooks.slack.com/services/T0/B0/XXXXXXXXXXXXXXXXXXXX",
        );
        let s = redact_secrets(
            "POST https://hooks.slack.com/services/T0/B0/XXXXXXXXXXXXXXXXXXXX failed: Bearer sk-abcdefghijklmnop https://h.example/x?token=abc123 http://u:pw1234@proxy:1/",
        );
        assert!(!s.contains("XXXX"), "{s}");
        assert!(!s.contains("abcdefghijklmnop"), "{s}");
        assert!(!s.contains("abc123"), "{s}");
        assert!(!s.contains("pw1234"), "{s}");
        assert!(s.contains("https://hooks.slack.com/services/T0/B0/"), "{s}");
        assert_eq!(redact_secrets(&"x".repeat(600)).chars().count(), 501);
    }

    #[test]
    fn claimable_by_owner_lease_and_state() {
        let now = Utc::now();
        let me = DeliveryOwner::this_process();
        let other = DeliveryOwner {
            pid: 1,
            host: "elsewhere".into(),
            token: "t".into(),
        };
        let mut e = OutboxEntry::claimed(
            Alert::example(),
            [("webhook".to_owned(), None)],
            other.clone(),
            now,
            Duration::from_secs(60),
        );
        assert_eq!(e.state(), DeliveryState::Pending);
        assert!(!e.is_claimable(&me, now), "leased by a live owner");
        assert!(e.is_claimable(&me, now + chrono::Duration::seconds(61)));
        // A dead process on this host is taken over at once.
        e.owner = Some(DeliveryOwner {
            pid: u32::MAX - 7,
            host: host_name(),
            token: "x".into(),
        });
        assert!(e.is_claimable(&me, now));
        e.owner = None;
        if let Some(d) = e.sinks.get_mut("webhook") {
            d.state = DeliveryState::Delivered;
        }
        assert_eq!(e.state(), DeliveryState::Delivered);
        assert!(!e.is_claimable(&me, now));
    }
}
