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
    /// The budget book's error if the totals could not be read.
    pub async fn budget_status(&self) -> Result<Vec<BudgetStatus>, Error> {
        let now = self.inner.clock.now();
        let (periods, lines): (Vec<_>, Vec<_>) = self.lines(now).all.iter().cloned().unzip();
        let totals = self.inner.book.totals(&lines).await?;
        Ok(self
            .inner
            .budgets
            .iter()
            .zip(periods)
            .zip(totals)
            .map(|((b, period), s)| {
                let (projected, run_out) =
                    budget::project(s.settled, b.limit, &period, now, s.first_spend);
                let mut status = BudgetStatus {
                    name: b.name.clone(),
                    scope: b.scope.clone(),
                    action: b.action,
                    severity: b.severity,
                    limit: b.limit,
                    spent: s.settled,
                    reserved: s.held,
                    remaining: b.limit.saturating_sub(s.settled).max(Money::ZERO),
                    percent_bp: s.settled.basis_points_of(b.limit).unwrap_or(0),
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
                        .filter(|t| t.is_crossed(s.settled, b.limit))
                        .collect(),
                };
                if !status.active && matches!(b.window, Window::Range { .. }) {
                    // Not begun, or over: nothing to project.
                    status.projected =
                        Some(s.settled).filter(|_| period.end.is_some_and(|e| now >= e));
                    status.run_out = None;
                }
                status
            })
            .collect())
    }
}
