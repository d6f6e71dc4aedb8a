//! [`BudgetTally`]: a budget's spend, folded in the same pass as the
//! [`Summary`](super::Summary).

use chrono::{DateTime, Utc};

use crate::budget::{Budget, Period};
use crate::ledger::{CostRecord, RecordRef};
use crate::Money;

use super::BudgetView;

/// Sums the spend of one [`Budget`] over its current period and scope, one
/// record at a time, so the dashboard reads the ledger once for the summary
/// and every budget together.
///
/// Feed it every record of the ledger (not only the ones a report filters
/// on): a budget counts its whole scope, as the tracker does when it
/// enforces it.
///
/// # Example
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use costlayer::budget::Budget;
/// use costlayer::ledger::CostRecord;
/// use costlayer::report::BudgetTally;
/// use costlayer::{Money, Usage};
///
/// let now = Utc.with_ymd_and_hms(2026, 11, 16, 0, 0, 0).unwrap();
/// let mut tally = BudgetTally::new(Budget::monthly(Money::from_usd(200).unwrap()), now);
/// let mut r = CostRecord::new("alice", "openai", "gpt-4o", Usage::new(1, 1));
/// r.ts = Utc.with_ymd_and_hms(2026, 11, 2, 0, 0, 0).unwrap();
/// r.nano_usd = Some(Money::from_usd(170).unwrap());
/// tally.add(&r);
/// r.ts = Utc.with_ymd_and_hms(2026, 10, 31, 0, 0, 0).unwrap(); // last month
/// tally.add(&r);
/// let view = tally.view();
/// assert_eq!(view.spent, Money::from_usd(170).unwrap());
/// assert_eq!(view.status(), "warning");
/// ```
#[derive(Debug, Clone)]
pub struct BudgetTally {
    budget: Budget,
    period: Period,
    spent: Money,
}

impl BudgetTally {
    /// A tally of `budget` in its period containing `now`.
    pub fn new(budget: Budget, now: DateTime<Utc>) -> Self {
        let period = budget.window.period(now);
        BudgetTally {
            budget,
            period,
            spent: Money::ZERO,
        }
    }

    /// Counts `r` if it falls in the budget's period and scope.
    pub fn add(&mut self, r: &CostRecord) {
        self.add_ref(&RecordRef::from(r));
    }

    /// Counts the record `r` views if it falls in the budget's period and
    /// scope (the same as [`BudgetTally::add`] on the record itself).
    pub fn add_ref(&mut self, r: &RecordRef<'_>) {
        if self.period.contains(r.ts)
            && self
                .budget
                .scope
                .matches(r.user, r.team, r.provider, r.model)
        {
            self.spent += r.cost();
        }
    }

    /// Adds the spend `other` counted: `other` must tally the same budget
    /// at the same instant (as when a ledger is folded on several threads,
    /// one tally each).
    pub fn merge(&mut self, other: BudgetTally) {
        self.spent += other.spent;
    }

    /// Counts spend already known to be in the budget's period and scope
    /// (a backend's pushed-down sum).
    #[cfg(feature = "postgres")]
    pub(crate) fn add_spent(&mut self, amount: Money) {
        self.spent += amount;
    }

    /// The period the budget is tallied over.
    pub(crate) fn period(&self) -> &Period {
        &self.period
    }

    /// Sets the spend to what a checkpoint had counted.
    pub(crate) fn restore_spent(&mut self, spent: Money) {
        self.spent = spent;
    }

    /// The spend so far.
    pub fn spent(&self) -> Money {
        self.spent
    }

    /// The budget.
    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// The dashboard's view: the period label as the window, the lowest
    /// threshold as the alert threshold, and the scope when it is not "all".
    pub fn view(&self) -> BudgetView {
        let alert = self
            .budget
            .thresholds
            .iter()
            .map(|t| i64::from(t.basis_points()))
            .min()
            .unwrap_or(10_000);
        let scope = self.budget.scope.to_string();
        let window = if scope == "all" {
            self.period.label.clone()
        } else {
            format!("{}, {scope}", self.period.label)
        };
        BudgetView::new(self.budget.name.clone(), self.budget.limit, self.spent)
            .window(window)
            .alert_at_bp(alert)
    }
}
