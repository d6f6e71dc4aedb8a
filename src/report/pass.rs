//! One pass over the ledger that feeds the summary and every budget.

use chrono::{DateTime, Utc};
use futures_util::StreamExt;

use super::summary::Windows;
use super::{BudgetTally, Dashboard, ReportError, Summary};
use crate::budget::Budget;
#[cfg(feature = "postgres")]
use crate::budget::Period;
use crate::calendar::Calendar;
use crate::ledger::{CorruptLine, ParallelFold, RecordRef, ScanFilter, ScanItem, Storage};

/// Folds a ledger scan into a [`Dashboard`]: the [`Summary`] counts the
/// records `filter` selects; each budget counts its whole scope, as the
/// tracker does when it enforces it. Scan the ledger **unfiltered** and push
/// every item.
///
/// It is a [`ParallelFold`]: with a
/// [`JsonlStorage`](crate::ledger::JsonlStorage), hand it to
/// [`fold_blocking`](crate::ledger::JsonlStorage::fold_blocking) to read
/// the ledger on every core, with the same result.
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
    windows: Windows,
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
            windows: Windows::new(now, Calendar::Utc),
        }
    }

    /// Counts the summary's months and days in `calendar` (the budgets'
    /// calendar when `budget.time_zone` is set). Defaults to UTC. Budgets
    /// keep their own windows. Call it before pushing any item: it starts
    /// the summary afresh.
    pub fn calendar(mut self, calendar: Calendar) -> Self {
        let now = self.summary.now;
        self.summary = Summary::new_in(now, calendar);
        self.windows = Windows::new(now, calendar);
        self
    }

    /// Adds one scanned item.
    pub fn push(&mut self, item: &ScanItem) {
        match item {
            ScanItem::Record(r) => self.push_ref(&RecordRef::from(r)),
            ScanItem::Corrupt(c) => self.summary.add_corrupt(c),
        }
    }

    /// Adds one record, from a borrowed view (the same as pushing
    /// [`ScanItem::Record`] of the record itself).
    pub fn push_ref(&mut self, r: &RecordRef<'_>) {
        for t in &mut self.tallies {
            t.add_ref(r);
        }
        if self.filter.matches_ref(r) {
            self.summary.add_in(r, &self.windows);
        }
    }

    /// Adds everything `other` folded: `other` must be a pass with the
    /// same `now`, budgets and filter (a [`ParallelFold::fork`] of this
    /// one), fed other items. The result is exact: the same as one pass
    /// fed both sets of items.
    pub fn merge(&mut self, other: DashboardPass) {
        self.summary.merge(other.summary);
        for (mine, theirs) in self.tallies.iter_mut().zip(other.tallies) {
            mine.merge(theirs);
        }
    }

    /// Folds `storage` into the pass: in the backend when it can
    /// ([`Storage::fold_dashboard`], SQL group-bys), else by scanning the
    /// whole ledger and pushing every item. The result is the same.
    ///
    /// # Errors
    ///
    /// [`ReportError::Ledger`] if the ledger cannot be read.
    pub async fn fold_storage<S: Storage + ?Sized>(
        &mut self,
        storage: &S,
    ) -> Result<(), ReportError> {
        if storage.fold_dashboard(self).await? {
            return Ok(());
        }
        let mut stream = storage.scan(&ScanFilter::default()).await?;
        while let Some(item) = stream.next().await {
            self.push(&item?);
        }
        Ok(())
    }

    /// The instant the pass is computed for.
    #[cfg(feature = "postgres")]
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.summary.now
    }

    /// The filter the summary counts.
    #[cfg(feature = "postgres")]
    pub(crate) fn filter(&self) -> &ScanFilter {
        &self.filter
    }

    /// Each budget's period, in budget order.
    #[cfg(feature = "postgres")]
    pub(crate) fn periods(&self) -> Vec<Period> {
        self.tallies.iter().map(|t| t.period().clone()).collect()
    }

    /// The summary and the tallies, for a backend that folds groups.
    #[cfg(feature = "postgres")]
    pub(crate) fn parts_mut(&mut self) -> (&mut Summary, &mut [BudgetTally]) {
        (&mut self.summary, &mut self.tallies)
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

impl ParallelFold for DashboardPass {
    fn fork(&self) -> Self {
        let now = self.summary.now;
        DashboardPass {
            summary: Summary::new_in(now, self.summary.calendar),
            tallies: self
                .tallies
                .iter()
                .map(|t| BudgetTally::new(t.budget().clone(), now))
                .collect(),
            filter: self.filter.clone(),
            windows: self.windows,
        }
    }

    fn record(&mut self, r: &RecordRef<'_>) {
        self.push_ref(r);
    }

    fn corrupt(&mut self, c: CorruptLine) {
        self.summary.add_corrupt(&c);
    }

    fn merge(&mut self, other: Self) {
        DashboardPass::merge(self, other);
    }
}
