//! Threshold evaluation and alert dispatch.

use chrono::{DateTime, Utc};

use super::{CostTracker, DeliveryFailure, State};
use crate::alert::{Alert, AlertKind};
use crate::budget::{self, Threshold};
use crate::ledger::CostRecord;

impl CostTracker {
    /// Adds `rec` to every budget it falls in and returns the alerts to send.
    pub(super) fn account(
        &self,
        st: &mut State,
        rec: &CostRecord,
        now: DateTime<Utc>,
    ) -> Vec<Alert> {
        let inner = &self.inner;
        let cost = rec.cost();
        let mut alerts = Vec::new();
        for (i, b) in inner.budgets.iter().enumerate() {
            let s = &mut st.budgets[i];
            let Some(period) = &s.period else { continue };
            if !period.contains(rec.ts) || !b.scope.matches_record(rec) {
                continue;
            }
            s.spent = s.spent.saturating_add(cost);
            if !cost.is_zero() && s.first_spend.is_none_or(|f| rec.ts < f) {
                s.first_spend = Some(rec.ts);
            }
            let (spent, label) = (s.spent, period.label.clone());
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
                    user: rec.user.clone(),
                    fired_at: now,
                    message: String::new(),
                    key,
                };
                a.message = a.summary();
                a
            };
            let mut new_alerts = Vec::new();
            for &t in &b.thresholds {
                if t.is_crossed(spent, b.limit) {
                    let key = b.alert_key(t, &label);
                    if !st.fired.contains(&key) {
                        new_alerts.push(make(AlertKind::Threshold, t, key, None));
                    }
                }
            }
            if b.alert_on_projection {
                let s = &st.budgets[i];
                if let Some(p) = &s.period {
                    let day_passed = p
                        .start
                        .or(s.first_spend)
                        .is_some_and(|start| now - start >= chrono::Duration::days(1));
                    let (projected, _) = budget::project(spent, b.limit, p, now, s.first_spend);
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
            }
            for a in &new_alerts {
                st.fired.insert(a.key.clone());
            }
            alerts.extend(new_alerts);
        }
        alerts
    }

    /// Hands alerts to the outbox: claimed once across processes, then
    /// delivered off the caller's path, their delivery state persisted and
    /// retried (see [`crate::alert::OutboxEntry`]).
    pub(super) async fn dispatch(&self, alerts: Vec<Alert>) {
        for alert in alerts {
            self.inner.outbox.submit(alert);
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
