//! [`BatchJobs`]: submit, status, wait, results, cancel, list, recover.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt as _;
use serde::Serialize;

use super::registry::{JobEntry, JobItem, JobRegistry, RecordedItem};
use super::BatchError;
use crate::core::{BatchItem, BatchProvider, BatchState, BatchStatus};
use crate::ledger::{ScanFilter, ScanItem};
use crate::tracker::{CostTracker, DetachedHold};
use crate::{ChatRequest, Error, Money, Usage};

/// Added to the provider's completion window for a job's budget hold: the
/// job may end a little after its window, and its results are fetched
/// after that. One hour.
pub const HOLD_MARGIN: Duration = Duration::from_secs(3600);

/// The most polls in a row that may fail (with a retryable error) before
/// [`BatchJobs::wait`] gives up.
const MAX_POLL_FAILURES: u32 = 8;

/// What [`BatchJobs::submit`] did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Submitted {
    /// The registry entry of the new job.
    pub entry: JobEntry,
    /// The job's worst case at batch rates (`None`: a model has no price).
    pub estimate: Option<Money>,
    /// The budget hold, when a blocking budget covers the job.
    pub hold: Option<DetachedHold>,
}

/// One line of a job's results file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResultRow {
    /// The caller's id.
    pub custom_id: String,
    /// The answer, for a succeeded request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Its usage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Its cost at batch rates, as recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nano_usd: Option<Money>,
    /// The ledger record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_id: Option<String>,
    /// Why it failed, for a request that did not succeed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What [`BatchJobs::results`] found and recorded.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ResultsReport {
    /// The job, after recording.
    pub entry: JobEntry,
    /// One row a result the provider returned, in its order.
    pub rows: Vec<ResultRow>,
    /// Succeeded results recorded by this call.
    pub newly_recorded: usize,
    /// Succeeded results recorded before (by this or another process).
    pub already_recorded: usize,
    /// The cost this call recorded.
    pub recorded_cost: Money,
    /// Results that failed.
    pub errored: usize,
    /// Submitted items the provider returned no result for (did not run).
    pub not_run: Vec<String>,
    /// The hold released by this call, if any.
    pub released: Option<Money>,
}

/// Batch jobs over one tracker (budgets, prices, ledger) and one data
/// directory's registry. See the [module docs](super).
#[derive(Debug, Clone)]
pub struct BatchJobs {
    tracker: CostTracker,
    registry: JobRegistry,
}

impl BatchJobs {
    /// Jobs priced, budgeted and recorded by `tracker`, registered in
    /// `<data_dir>/batches/`.
    ///
    /// # Errors
    ///
    /// [`BatchError::Registry`] if the registry directory cannot be made.
    pub fn new(tracker: CostTracker, data_dir: &Path) -> Result<Self, BatchError> {
        Ok(BatchJobs {
            tracker,
            registry: JobRegistry::open(data_dir)?,
        })
    }

    /// The tracker.
    pub fn tracker(&self) -> &CostTracker {
        &self.tracker
    }

    /// The registry.
    pub fn registry(&self) -> &JobRegistry {
        &self.registry
    }

    /// The worst case of `items` at batch rates: `None` when a model has
    /// no price.
    pub fn estimate(&self, items: &[BatchItem]) -> Option<Money> {
        items.iter().try_fold(Money::ZERO, |acc, i| {
            self.tracker
                .estimate_batch(&i.request)
                .map(|c| acc.saturating_add(c))
        })
    }

    /// Reserves the job's batch-rate worst case (refusing a job that does
    /// not fit a blocking budget), submits it and registers it. A submit
    /// the provider refuses releases the hold.
    ///
    /// Under a blocking budget a request without `max_tokens` is sent with
    /// the output the estimate assumed, so the job cannot cost more than
    /// its hold.
    ///
    /// # Errors
    ///
    /// [`BatchError::Call`] with [`Error::BudgetExceeded`] (nothing sent),
    /// the provider's error (nothing held), or [`BatchError::Registry`].
    pub async fn submit(
        &self,
        provider: &dyn BatchProvider,
        mut items: Vec<BatchItem>,
    ) -> Result<Submitted, BatchError> {
        let now = self.tracker.now();
        let window = provider.limits().completion_window;
        let expires = now
            + chrono::Duration::from_std(window + HOLD_MARGIN)
                .unwrap_or_else(|_| chrono::Duration::days(3));
        let estimate = self.estimate(&items);
        let hold_id = format!("batch-{}", ulid::Ulid::new());
        let requests: Vec<ChatRequest> = items.iter().map(|i| i.request.clone()).collect();
        let hold = self
            .tracker
            .reserve_detached(&requests, estimate, &hold_id, expires)
            .await?;
        if hold.is_some() {
            for i in &mut items {
                let cap = self.tracker.output_cap_for(&i.request);
                i.request.max_tokens.get_or_insert(cap);
            }
        }
        let job_items: Vec<JobItem> = items
            .iter()
            .map(|i| JobItem {
                custom_id: i.custom_id.clone(),
                model: i.request.model.to_string(),
                user: i.request.user.clone(),
                team: i.request.team.clone(),
            })
            .collect();
        let total = items.len() as u64;
        let id = match provider.submit(items).await {
            Ok(id) => id,
            Err(e) => {
                if hold.is_some() {
                    if let Err(r) = self.tracker.release_detached(&hold_id).await {
                        tracing::warn!(error = %r, "the hold of a refused batch could not be released; it expires at {expires}");
                    }
                }
                return Err(e.into());
            }
        };
        let entry = JobEntry {
            id: id.clone(),
            provider: provider.name().to_owned(),
            submitted_at: now,
            expires_at: expires,
            items: job_items,
            estimate,
            hold_id: hold.as_ref().map(|h| h.id.clone()),
            held: hold.as_ref().map(|h| h.amount),
            released: hold.is_none(),
            state: BatchState::Validating,
            succeeded: 0,
            failed: 0,
            total,
            recorded: BTreeMap::new(),
            recording: false,
            recovered: false,
            updated_at: now,
        };
        let mut reg = self.registry.lock().await?;
        reg.jobs.retain(|j| j.id != id);
        reg.jobs.push(entry.clone());
        reg.save()?;
        Ok(Submitted {
            entry,
            estimate,
            hold,
        })
    }

    /// The job's status from the provider, saved in the registry. A job
    /// the registry does not know is added (recovered) if the provider
    /// knows it. A job that failed as a whole (nothing ran) has its hold
    /// released here.
    ///
    /// # Errors
    ///
    /// The provider's error, or [`BatchError::Registry`].
    pub async fn status(
        &self,
        provider: &dyn BatchProvider,
        id: &str,
    ) -> Result<JobEntry, BatchError> {
        let s = provider.status(id).await?;
        self.observe(provider, id, &s).await
    }

    async fn observe(
        &self,
        provider: &dyn BatchProvider,
        id: &str,
        s: &BatchStatus,
    ) -> Result<JobEntry, BatchError> {
        let now = self.tracker.now();
        let mut reg = self.registry.lock().await?;
        if reg.get(id).is_none() {
            reg.jobs.push(recovered_entry(provider, s, now));
        }
        let entry = reg.get_mut(id).ok_or_else(|| BatchError::UnknownJob {
            id: id.to_owned(),
            registry: self.registry.path(),
        })?;
        entry.update(s, now);
        if s.state == BatchState::Failed && !entry.released {
            if let Some(h) = &entry.hold_id {
                self.tracker.release_detached(h).await?;
            }
            entry.released = true;
        }
        let out = entry.clone();
        reg.save()?;
        Ok(out)
    }

    /// Polls the job every `interval` until it ends, calling `progress`
    /// with each status. Polls that fail with a retryable error (network,
    /// 429, 5xx) are retried with exponential backoff (from `interval`,
    /// doubling, at most 8 in a row; a `Retry-After` is honoured).
    ///
    /// # Errors
    ///
    /// The first non-retryable error, or the last retryable one.
    pub async fn wait(
        &self,
        provider: &dyn BatchProvider,
        id: &str,
        interval: Duration,
        mut progress: impl FnMut(&BatchStatus) + Send,
    ) -> Result<JobEntry, BatchError> {
        let mut failures = 0u32;
        loop {
            match provider.status(id).await {
                Ok(s) => {
                    failures = 0;
                    let entry = self.observe(provider, id, &s).await?;
                    progress(&s);
                    if s.state.is_terminal() {
                        return Ok(entry);
                    }
                    tokio::time::sleep(interval).await;
                }
                Err(e) if e.is_retryable() && failures < MAX_POLL_FAILURES => {
                    failures += 1;
                    let backoff = interval
                        .saturating_mul(1 << failures.min(6))
                        .min(Duration::from_secs(300));
                    let delay = e.retry_after().map_or(backoff, |r| r.max(backoff));
                    tracing::warn!(error = %e, attempt = failures, "polling batch {id} failed; retrying in {delay:?}");
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Fetches the results of an ended job, records every succeeded item
    /// not recorded before (mode batch, batch rates, tagged with the job
    /// and custom id), and releases the job's hold. Safe to call again, from
    /// any process: nothing is recorded twice.
    ///
    /// # Errors
    ///
    /// [`BatchError::NotFinished`] before the job ended, the provider's
    /// error, or [`BatchError::Registry`].
    pub async fn results(
        &self,
        provider: &dyn BatchProvider,
        id: &str,
    ) -> Result<ResultsReport, BatchError> {
        let s = provider.status(id).await?;
        if !s.state.is_terminal() {
            self.observe(provider, id, &s).await?;
            return Err(BatchError::NotFinished {
                id: id.to_owned(),
                state: s.state,
            });
        }
        let results = if s.state == BatchState::Failed {
            Vec::new()
        } else {
            provider.results(id).await?
        };
        let now = self.tracker.now();
        // Held from here to the end: two processes never record one result twice.
        let mut reg = self.registry.lock().await?;
        if reg.get(id).is_none() {
            reg.jobs.push(recovered_entry(provider, &s, now));
        }
        let needs_reconcile = {
            let e = reg.get(id).ok_or_else(|| BatchError::UnknownJob {
                id: id.to_owned(),
                registry: self.registry.path(),
            })?;
            e.recording || e.recovered
        };
        if needs_reconcile {
            let found = self.recorded_in_ledger(provider.name(), id).await?;
            if let Some(e) = reg.get_mut(id) {
                for (cid, item) in found {
                    e.recorded.entry(cid).or_insert(item);
                }
            }
        }
        let Some(entry) = reg.get_mut(id) else {
            return Err(BatchError::UnknownJob {
                id: id.to_owned(),
                registry: self.registry.path(),
            });
        };
        entry.update(&s, now);
        entry.recording = true;
        let mut report = ResultsReport {
            entry: entry.clone(),
            rows: Vec::new(),
            newly_recorded: 0,
            already_recorded: 0,
            recorded_cost: Money::ZERO,
            errored: 0,
            not_run: Vec::new(),
            released: None,
        };
        reg.save()?;
        let mut seen = HashSet::new();
        let mut recorded = Vec::new();
        let entry = reg.get(id).map(|e| e.items.clone()).unwrap_or_default();
        let by_id: HashMap<&str, &JobItem> =
            entry.iter().map(|i| (i.custom_id.as_str(), i)).collect();
        for r in results {
            // Gemini names a result without a key by its position.
            let custom_id = match r
                .custom_id
                .strip_prefix('#')
                .and_then(|n| n.parse::<usize>().ok())
            {
                Some(n) if n < entry.len() => entry[n].custom_id.clone(),
                _ => r.custom_id.clone(),
            };
            seen.insert(custom_id.clone());
            let item = by_id.get(custom_id.as_str()).copied();
            match r.result {
                Ok(resp) => {
                    let known = reg
                        .get(id)
                        .and_then(|e| e.recorded.get(&custom_id))
                        .cloned();
                    let (record_id, cost) = match known {
                        Some(k) => {
                            report.already_recorded += 1;
                            (k.record_id, k.nano_usd)
                        }
                        None => {
                            let mut req =
                                ChatRequest::new(item.map_or_else(
                                    || resp.model.clone(),
                                    |i| i.model.as_str().into(),
                                ));
                            req.user = item.and_then(|i| i.user.clone());
                            req.team = item.and_then(|i| i.team.clone());
                            req.tags.insert("batch_id".into(), id.to_owned());
                            req.tags.insert("batch_custom_id".into(), custom_id.clone());
                            let mut resp = resp.clone();
                            resp.mode = crate::Mode::Batch;
                            let rec = self.tracker.record(&req, &resp, None).await?;
                            report.newly_recorded += 1;
                            if let Some(c) = rec.nano_usd {
                                report.recorded_cost = report.recorded_cost.saturating_add(c);
                            }
                            recorded.push((
                                custom_id.clone(),
                                RecordedItem {
                                    record_id: rec.id.to_string(),
                                    nano_usd: rec.nano_usd,
                                },
                            ));
                            (rec.id.to_string(), rec.nano_usd)
                        }
                    };
                    report.rows.push(ResultRow {
                        custom_id,
                        text: Some(resp.text.clone()),
                        usage: Some(resp.usage),
                        nano_usd: cost,
                        record_id: Some(record_id),
                        error: None,
                    });
                }
                Err(e) => {
                    report.errored += 1;
                    report.rows.push(ResultRow {
                        custom_id,
                        text: None,
                        usage: None,
                        nano_usd: None,
                        record_id: None,
                        error: Some(e.to_string()),
                    });
                }
            }
        }
        // What was appended reaches the disk before the registry says so.
        self.tracker.flush().await?;
        let Some(entry) = reg.get_mut(id) else {
            return Err(BatchError::UnknownJob {
                id: id.to_owned(),
                registry: self.registry.path(),
            });
        };
        for (cid, item) in recorded {
            entry.recorded.insert(cid, item);
        }
        entry.recording = false;
        report.not_run = entry
            .items
            .iter()
            .filter(|i| !seen.contains(&i.custom_id))
            .map(|i| i.custom_id.clone())
            .collect();
        if !entry.released {
            if let Some(h) = &entry.hold_id {
                self.tracker.release_detached(h).await?;
                report.released = entry.held;
            }
            entry.released = true;
        }
        report.entry = entry.clone();
        reg.save()?;
        Ok(report)
    }

    /// Asks the provider to cancel the job. Requests already running may
    /// still finish (and are billed): the hold stays until the job has
    /// ended and its results are fetched, unless the provider reports it
    /// cancelled at once.
    ///
    /// # Errors
    ///
    /// The provider's error, or [`BatchError::Registry`].
    pub async fn cancel(
        &self,
        provider: &dyn BatchProvider,
        id: &str,
    ) -> Result<JobEntry, BatchError> {
        let s = provider.cancel(id).await?;
        self.observe(provider, id, &s).await?;
        if s.state.is_terminal() && s.state != BatchState::Failed {
            return Ok(self.results(provider, id).await?.entry);
        }
        self.entry(id).await
    }

    /// The registry's entry for `id`.
    ///
    /// # Errors
    ///
    /// [`BatchError::UnknownJob`], or [`BatchError::Registry`].
    pub async fn entry(&self, id: &str) -> Result<JobEntry, BatchError> {
        let reg = self.registry.lock().await?;
        reg.get(id).cloned().ok_or_else(|| BatchError::UnknownJob {
            id: id.to_owned(),
            registry: self.registry.path(),
        })
    }

    /// Every job in the registry, oldest first, and the corruption report
    /// if the registry had to be started anew.
    ///
    /// # Errors
    ///
    /// [`BatchError::Registry`].
    pub async fn list(&self) -> Result<(Vec<JobEntry>, Option<String>), BatchError> {
        let reg = self.registry.lock().await?;
        if reg.corrupt.is_some() {
            // The moved-aside file is replaced by an empty registry now.
            reg.save()?;
        }
        Ok((reg.jobs.clone(), reg.corrupt.clone()))
    }

    /// Adds to the registry every job of the provider's list it does not
    /// know (after a corrupt registry was moved aside); their recorded
    /// results are read back from the ledger, so nothing is recorded twice.
    /// Their budget holds, if any, end at their expiry. Returns how many
    /// jobs were added.
    ///
    /// # Errors
    ///
    /// The provider's error (a provider that cannot list), or
    /// [`BatchError::Registry`].
    pub async fn recover(&self, provider: &dyn BatchProvider) -> Result<usize, BatchError> {
        let listed = provider.list().await?;
        let now = self.tracker.now();
        let mut added = Vec::new();
        for s in &listed {
            let reg = self.registry.lock().await?;
            if reg.get(&s.id).is_some() {
                continue;
            }
            drop(reg);
            let found = self.recorded_in_ledger(provider.name(), &s.id).await?;
            let mut e = recovered_entry(provider, s, now);
            e.recorded = found;
            added.push(e);
        }
        let n = added.len();
        let mut reg = self.registry.lock().await?;
        for e in added {
            if reg.get(&e.id).is_none() {
                reg.jobs.push(e);
            }
        }
        reg.save()?;
        Ok(n)
    }

    /// The results of job `id` already in the ledger, by custom id.
    async fn recorded_in_ledger(
        &self,
        provider: &str,
        id: &str,
    ) -> Result<BTreeMap<String, RecordedItem>, BatchError> {
        let filter = ScanFilter {
            providers: vec![provider.to_owned()],
            ..ScanFilter::default()
        };
        let mut out = BTreeMap::new();
        let mut stream = self
            .tracker
            .storage()
            .scan(&filter)
            .await
            .map_err(|e| Error::Other(Box::new(e)))?;
        while let Some(item) = stream.next().await {
            if let Ok(ScanItem::Record(r)) = item {
                if r.tags.get("batch_id").map(String::as_str) == Some(id) {
                    if let Some(cid) = r.tags.get("batch_custom_id") {
                        out.insert(
                            cid.clone(),
                            RecordedItem {
                                record_id: r.id.to_string(),
                                nano_usd: r.nano_usd,
                            },
                        );
                    }
                }
            }
        }
        Ok(out)
    }
}

fn recovered_entry(
    provider: &dyn BatchProvider,
    s: &BatchStatus,
    now: chrono::DateTime<chrono::Utc>,
) -> JobEntry {
    let window = provider.limits().completion_window;
    JobEntry {
        id: s.id.clone(),
        provider: provider.name().to_owned(),
        submitted_at: now,
        expires_at: now
            + chrono::Duration::from_std(window + HOLD_MARGIN)
                .unwrap_or_else(|_| chrono::Duration::days(3)),
        items: Vec::new(),
        estimate: None,
        hold_id: None,
        held: None,
        released: true,
        state: s.state,
        succeeded: s.succeeded,
        failed: s.failed,
        total: s.total,
        recorded: BTreeMap::new(),
        recording: false,
        recovered: true,
        updated_at: now,
    }
}
