//! Every budget's status in its current period.

use super::CostTracker;
use crate::budget::{self, BudgetStatus, Window};
use crate::{Error, Money};

impl CostTracker {
    /// Every budget's spend, reservations, projection and crossed thresholds
    /// in its current period.
    ///
    /// # Errors
    ///
    /// The storage's error if the totals could not be loaded.
    pub async fn budget_status(&self) -> Result<Vec<BudgetStatus>, Error> {
        let now = self.inner.clock.now();
        self.ensure_current(now).await?;
        let st = self.inner.lock();
        Ok(self
            .inner
            .budgets
            .iter()
            .zip(&st.budgets)
            .map(|(b, s)| {
                let period = s.period.clone().unwrap_or_else(|| b.window.period(now));
                let (projected, run_out) =
                    budget::project(s.spent, b.limit, &period, now, s.first_spend);
                let mut status = BudgetStatus {
                    name: b.name.clone(),
                    scope: b.scope.clone(),
                    action: b.action,
                    severity: b.severity,
                    limit: b.limit,
                    spent: s.spent,
                    reserved: s.reserved,
                    remaining: b.limit.saturating_sub(s.spent).max(Money::ZERO),
                    percent_bp: s.spent.basis_points_of(b.limit).unwrap_or(0),
                    projected,
                    run_out,
                    period: period.label.clone(),
                    period_start: period.start,
                    period_end: period.end,
                    active: period.contains(now),
                    thresholds_crossed: b
                        .thresholds
                        .iter()
                        .copied()
                        .filter(|t| t.is_crossed(s.spent, b.limit))
                        .collect(),
                };
                if !status.active && matches!(b.window, Window::Range { .. }) {
                    // Not begun, or over: nothing to project.
                    status.projected =
                        Some(s.spent).filter(|_| period.end.is_some_and(|e| now >= e));
                    status.run_out = None;
                }
                status
            })
            .collect())
    }
}
