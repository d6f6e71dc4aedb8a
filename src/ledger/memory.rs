//! An in-memory ledger for tests and short-lived programs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};

use crate::alert::{latest_per_key, take_if_claimable, DeliveryOwner, OutboxEntry};

use super::{
    CostRecord, LedgerError, RecordStream, ResetReport, ResetScope, ScanFilter, ScanItem, Storage,
};

#[derive(Debug, Default)]
struct Inner {
    records: Vec<CostRecord>,
    alerts: HashMap<String, serde_json::Value>,
    outbox: Vec<OutboxEntry>,
    archives: Vec<(String, Vec<CostRecord>)>,
}

/// A ledger in memory, with the same semantics as the JSONL backend:
/// append-only, alerts marked once, reset archives (kept in memory) instead
/// of deleting. Clones share the same ledger.
///
/// ```
/// use costlayer::ledger::{MemoryStorage, Storage};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let ledger = MemoryStorage::new();
/// assert!(ledger.mark_alert("monthly:80:2026-11", &serde_json::json!({})).await.unwrap());
/// assert!(!ledger.mark_alert("monthly:80:2026-11", &serde_json::json!({})).await.unwrap());
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryStorage {
    inner: Arc<Mutex<Inner>>,
}

impl MemoryStorage {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the Vec half-pushed;
        // keep serving the data.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of every record, in append order.
    pub fn records(&self) -> Vec<CostRecord> {
        self.lock().records.clone()
    }

    /// The number of records.
    pub fn len(&self) -> usize {
        self.lock().records.len()
    }

    /// `true` if no record was appended.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl Storage for MemoryStorage {
    async fn append(&self, record: &CostRecord) -> Result<(), LedgerError> {
        self.lock().records.push(record.clone());
        Ok(())
    }

    fn append_now(&self, record: &CostRecord) -> Option<Result<(), LedgerError>> {
        self.lock().records.push(record.clone());
        Some(Ok(()))
    }

    async fn append_batch(&self, records: &[CostRecord]) -> Result<(), LedgerError> {
        self.lock().records.extend_from_slice(records);
        Ok(())
    }

    async fn scan(&self, filter: &ScanFilter) -> Result<RecordStream, LedgerError> {
        let items: Vec<Result<ScanItem, LedgerError>> = self
            .lock()
            .records
            .iter()
            .filter(|r| filter.matches(r))
            .cloned()
            .map(|r| Ok(ScanItem::Record(r)))
            .collect();
        Ok(Box::pin(futures_util::stream::iter(items)))
    }

    async fn mark_alert(
        &self,
        key: &str,
        payload: &serde_json::Value,
    ) -> Result<bool, LedgerError> {
        let mut inner = self.lock();
        if inner.alerts.contains_key(key) {
            return Ok(false);
        }
        inner.alerts.insert(key.to_owned(), payload.clone());
        Ok(true)
    }

    async fn alert_fired(&self, key: &str) -> Result<bool, LedgerError> {
        Ok(self.lock().alerts.contains_key(key))
    }

    async fn claim_alert(&self, entry: &OutboxEntry) -> Result<bool, LedgerError> {
        let mut inner = self.lock();
        if inner.alerts.contains_key(&entry.key) {
            return Ok(false);
        }
        inner
            .alerts
            .insert(entry.key.clone(), entry.alert.to_json());
        inner.outbox.push(entry.clone());
        Ok(true)
    }

    async fn save_delivery(&self, entry: &OutboxEntry) -> Result<(), LedgerError> {
        self.lock().outbox.push(entry.clone());
        Ok(())
    }

    async fn take_delivery(
        &self,
        key: &str,
        owner: &DeliveryOwner,
        now: DateTime<Utc>,
        lease: std::time::Duration,
    ) -> Result<Option<OutboxEntry>, LedgerError> {
        let mut inner = self.lock();
        let entry = inner.outbox.iter().rev().find(|e| e.key == key).cloned();
        let taken = take_if_claimable(entry, owner, now, lease)?;
        if let Some(e) = &taken {
            inner.outbox.push(e.clone());
        }
        Ok(taken)
    }

    async fn deliveries(&self) -> Result<Vec<OutboxEntry>, LedgerError> {
        Ok(latest_per_key(self.lock().outbox.iter().cloned()))
    }

    async fn reset(&self, scope: ResetScope) -> Result<ResetReport, LedgerError> {
        let mut inner = self.lock();
        let (archived, kept): (Vec<_>, Vec<_>) = match &scope {
            ResetScope::All => (std::mem::take(&mut inner.records), Vec::new()),
            ResetScope::User(u) => std::mem::take(&mut inner.records)
                .into_iter()
                .partition(|r| r.user == *u),
        };
        inner.records = kept;
        inner.alerts.clear();
        inner.outbox.clear();
        let name = format!(
            "memory-archive-{}",
            Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
        );
        let records = archived.len() as u64;
        inner.archives.push((name.clone(), archived));
        Ok(ResetReport {
            archived_to: Some(name),
            moved: vec!["records".to_owned(), "alerts".to_owned()],
            records,
        })
    }
}
