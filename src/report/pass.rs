//! One pass over the ledger that feeds the summary and every budget.

use chrono::{DateTime, Utc};

use super::{BudgetTally, Dashboard, Summary};
use crate::budget::Budget;
use crate::ledger::{ScanFilter, ScanItem};

/// Folds a ledger scan into a [`Dashboard`]: the [`Summary`] counts the
/// records `filter` selects; each budget counts its whole scope, as the
/// tracker does when it enforces it. Scan the ledger **unfiltered** and push
/// every item.
///
/// ```
/// use chrono::Utc;
/// use costlayer::budget::Budget;
/// use costlayer::ledger::{CostRecord, ScanFilter, ScanItem};
/// use costlayer::report::DashboardPass;
/// use costlayer::{Money, Usage};
///
/// let mut pass = DashboardPass::new(Utc::now(), [Budget::monthly(Money::from_usd(200).unwrap())], ScanFilter::default());
/// let mut r = CostRecord::new("alice", "openai", "gpt-4o", Usage::new(1_000, 100));
/// r.nano_usd = Some(Money::from_nanos(3_500_000));
/// pass.push(&ScanItem::Record(r));
/// let dash = pass.finish("data/metadata");
/// assert_eq!(dash.to_json()["total_nano_usd"], 3_500_000);
/// ```
#[derive(Debug)]
pub struct DashboardPass {
    summary: Summary,
    tallies: Vec<BudgetTally>,
    filter: ScanFilter,
}

impl DashboardPass {
    /// A pass at `now` over `budgets`, summarising what `filter` selects.
    pub fn new(
        now: DateTime<Utc>,
        budgets: impl IntoIterator<Item = Budget>,
        filter: ScanFilter,
    ) -> Self {
        DashboardPass {
            summary: Summary::new(now),
            tallies: budgets
                .into_iter()
                .map(|b| BudgetTally::new(b, now))
                .collect(),
            filter,
        }
    }

    /// Adds one scanned item.
    pub fn push(&mut self, item: &ScanItem) {
        match item {
            ScanItem::Record(r) => {
                for t in &mut self.tallies {
                    t.add(r);
                }
                if self.filter.matches(r) {
                    self.summary.add_record(r);
                }
            }
            ScanItem::Corrupt(c) => self.summary.add_corrupt(c),
        }
    }

    /// The dashboard, labelled with where the ledger was read from.
    pub fn finish(self, data_path: impl Into<String>) -> Dashboard {
        self.tallies
            .iter()
            .fold(Dashboard::new(self.summary, data_path), |d, t| {
                d.budget(t.view())
            })
    }
}
