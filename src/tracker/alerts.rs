//! Threshold evaluation and alert dispatch.

use chrono::{DateTime, Utc};

use super::book::LineTotals;
use super::{CostTracker, DeliveryFailure};
use crate::alert::{Alert, AlertKind};
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
                .zip(&lines.all)
                .find(|(_, (_, l))| l.key == t.key)
            else {
                continue;
            };
            let spent = t.settled;
            crate::metrics::budget_spent(&b.name, spent, b.limit);
            let label = period.label.as_str();
            let make = |kind, threshold: Threshold, key: String, projected| {
                let mut a = Alert {
                    budget: b.name.clone(),
                    kind,
                    threshold,
                    spent,
                    limit: b.limit,
                    projected,
                    period: label.to_owned(),
                    severity: b.severity_at(threshold),
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
                    let key = b.alert_key(th, label);
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
                    let key = b.projection_key(label);
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

    /// Hands `alerts` (from [`CostTracker::evaluate`]) to the outbox:
    /// claimed once across processes, then delivered off the caller's path,
    /// their delivery state persisted and retried (see
    /// [`crate::alert::OutboxEntry`]).
    pub(super) fn dispatch(&self, alerts: Vec<Alert>) {
        for alert in alerts {
            self.inner.outbox.submit(alert);
        }
    }

    /// Evaluates the thresholds on the book's shared totals as of now and
    /// dispatches what is due, if this tracker has done budget work (its
    /// lines are computed). A book that settles calls from a chunk answers
    /// with the other processes' spend as of the chunk's last renewal, so a
    /// threshold the joint spend crossed in the last moments is seen here,
    /// at [`CostTracker::flush`], if no later call saw it.
    pub(super) async fn alert_shared(&self) {
        let inner = &self.inner;
        if inner.budgets.is_empty() || inner.lock().lines.is_none() {
            return;
        }
        let now = inner.clock.now();
        let lines = self.lines(now);
        match inner.book.totals(&lines.books).await {
            Ok(totals) => {
                let alerts = self.evaluate(&totals, &inner.user, now);
                if !alerts.is_empty() {
                    self.dispatch(alerts);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "the budget totals could not be read at flush; thresholds are evaluated again at the next call");
            }
        }
    }

    /// Waits until every alert dispatched so far has been delivered or
    /// given up on for this round. [`CostTracker::flush`] also retries what
    /// earlier processes left undelivered and makes the ledger durable.
    pub async fn flush_alerts(&self) {
        self.inner.outbox.wait().await;
    }

    /// Sinks that gave up on an alert, since the tracker was built.
    pub fn delivery_failures(&self) -> Vec<DeliveryFailure> {
        self.inner.outbox.failures()
    }
}
