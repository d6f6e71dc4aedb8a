//! Threshold evaluation and alert dispatch.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::book::LineTotals;
use super::{CostTracker, DeliveryFailure, Inner};
use crate::alert::{Alert, AlertKind, AlertSink};
use crate::budget::{self, Threshold};

impl CostTracker {
    /// The alerts due on `totals`, the *shared* totals a book operation
    /// returned (every process's spend, see [`LineTotals`]): each threshold
    /// crossed by the settled spend, and the projection alert, that this
    /// process has not fired yet in the period. Called after every
    /// settlement and on every refusal by a blocking budget; the caller
    /// hands the result to [`CostTracker::dispatch`]. `user` is the user of
    /// the call that triggered it.
    pub(super) fn evaluate(
        &self,
        totals: &[LineTotals],
        user: &str,
        now: DateTime<Utc>,
    ) -> Vec<Alert> {
        let inner = &self.inner;
        let lines = self.lines(now);
        let mut alerts = Vec::new();
        let mut st = inner.lock();
        for t in totals {
            let Some((b, (period, _))) = inner
                .budgets
                .iter()
                .zip(&lines)
                .find(|(_, (_, l))| l.key == t.key)
            else {
                continue;
            };
            let spent = t.settled;
            let label = period.label.clone();
            let make = |kind, threshold: Threshold, key: String, projected| {
                let mut a = Alert {
                    budget: b.name.clone(),
                    kind,
                    threshold,
                    spent,
                    limit: b.limit,
                    projected,
                    period: label.clone(),
                    severity: b.severity,
                    user: user.to_owned(),
                    fired_at: now,
                    message: String::new(),
                    key,
                };
                a.message = a.summary();
                a
            };
            let mut new_alerts = Vec::new();
            for &th in &b.thresholds {
                if th.is_crossed(spent, b.limit) {
                    let key = b.alert_key(th, &label);
                    if !st.fired.contains(&key) {
                        new_alerts.push(make(AlertKind::Threshold, th, key, None));
                    }
                }
            }
            if b.alert_on_projection {
                let day_passed = period
                    .start
                    .or(t.first_spend)
                    .is_some_and(|start| now - start >= chrono::Duration::days(1));
                let (projected, _) = budget::project(spent, b.limit, period, now, t.first_spend);
                if let Some(proj) = projected.filter(|pr| day_passed && *pr > b.limit) {
                    let key = b.projection_key(&label);
                    if !st.fired.contains(&key) {
                        new_alerts.push(make(
                            AlertKind::Projection,
                            Threshold::percent(100),
                            key,
                            Some(proj),
                        ));
                    }
                }
            }
            for a in &new_alerts {
                st.fired.insert(a.key.clone());
            }
            alerts.extend(new_alerts);
        }
        alerts
    }

    /// Delivers `alerts` (from [`CostTracker::evaluate`]): each is claimed
    /// in the storage's alert history and sent to every sink, from a spawned
    /// task (or inline without a Tokio runtime).
    pub(super) async fn dispatch(&self, alerts: Vec<Alert>) {
        for alert in alerts {
            let inner = self.inner.clone();
            inner.in_flight.fetch_add(1, Ordering::AcqRel);
            let guard = InFlight(inner.clone());
            let task = async move {
                let _guard = guard;
                deliver(&inner, alert).await;
            };
            match tokio::runtime::Handle::try_current() {
                Ok(h) => {
                    h.spawn(task);
                }
                Err(_) => task.await,
            }
        }
    }

    /// Waits until every alert dispatched so far has been delivered or
    /// given up on. Call it before exiting a short program so queued
    /// e-mails are not lost, and in tests.
    pub async fn flush_alerts(&self) {
        loop {
            let idle = self.inner.idle.notified();
            if self.inner.in_flight.load(Ordering::Acquire) == 0 {
                return;
            }
            idle.await;
        }
    }

    /// Sinks that gave up on an alert, since the tracker was built.
    pub fn delivery_failures(&self) -> Vec<DeliveryFailure> {
        self.inner
            .failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Decrements the in-flight alert count when an alert task ends (or is
/// cancelled with its runtime).
pub(super) struct InFlight(Arc<Inner>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Claims an alert in the storage and, if this process is first, sends it
/// to every sink (concurrently), each retried with backoff.
pub(super) async fn deliver(inner: &Arc<Inner>, alert: Alert) {
    match inner.storage.mark_alert(&alert.key, &alert.to_json()).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::debug!(key = %alert.key, "alert already fired (another process or an earlier run)");
            return;
        }
        Err(e) => {
            tracing::warn!(key = %alert.key, error = %e, "could not record the alert in the alert history; it will be tried again on the next call");
            inner.lock().fired.remove(&alert.key);
            return;
        }
    }
    tracing::warn!(
        budget = %alert.budget,
        threshold = %alert.threshold,
        period = %alert.period,
        severity = %alert.severity,
        "{}",
        alert.message
    );
    let sends = inner
        .sinks
        .iter()
        .map(|s| send_with_retry(inner, s.as_ref(), &alert));
    futures_util::future::join_all(sends).await;
}

async fn send_with_retry(inner: &Arc<Inner>, sink: &dyn AlertSink, alert: &Alert) {
    let retry = inner.alert_retry;
    let mut delay = retry.backoff;
    for attempt in 1..=retry.attempts {
        match sink.send(alert).await {
            Ok(()) => return,
            Err(e) if attempt < retry.attempts => {
                tracing::warn!(sink = sink.name(), key = %alert.key, attempt, error = %e, "alert delivery failed; retrying");
                tokio::time::sleep(delay).await;
                delay = delay.saturating_mul(2);
            }
            Err(e) => {
                tracing::error!(sink = sink.name(), key = %alert.key, attempts = attempt, error = %e, "alert delivery failed; giving up");
                let failure = DeliveryFailure {
                    key: alert.key.clone(),
                    sink: sink.name().to_owned(),
                    error: e.to_string(),
                    attempts: attempt,
                };
                let payload = serde_json::json!({
                    "delivery_failed": true,
                    "sink": failure.sink,
                    "error": failure.error,
                    "attempts": attempt,
                    "alert": alert.to_json(),
                });
                let key = format!("{}#failed#{}", alert.key, failure.sink);
                if let Err(le) = inner.storage.mark_alert(&key, &payload).await {
                    tracing::error!(error = %le, "could not record the delivery failure in the alert history");
                }
                inner
                    .failures
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(failure);
            }
        }
    }
}
