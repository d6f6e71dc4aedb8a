//! [`RecordRef`], a borrowed view of a record, and [`ParallelFold`], a
//! fold over the ledger that runs on several threads.

use chrono::{DateTime, Utc};

use crate::ledger::{CorruptLine, CostRecord, ScanFilter};
use crate::{CostStatus, Mode, Money, Usage};

/// A borrowed view of a ledger record: the fields reports need, without
/// the id, tags or unknown fields, and without allocating.
///
/// [`JsonlStorage::fold_blocking`](super::JsonlStorage::fold_blocking)
/// hands these to a [`ParallelFold`] straight out of its read buffer; any
/// [`CostRecord`] converts with `RecordRef::from(&record)`.
///
/// # Example
///
/// ```
/// use costlayer::ledger::{CostRecord, RecordRef};
/// use costlayer::{Money, Usage};
///
/// let mut r = CostRecord::new("alice", "openai", "gpt-4o", Usage::new(10, 2));
/// r.nano_usd = Some(Money::from_nanos(42));
/// let view = RecordRef::from(&r);
/// assert_eq!((view.user, view.model), ("alice", "gpt-4o"));
/// assert_eq!(view.cost(), Money::from_nanos(42));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordRef<'a> {
    /// When the call completed.
    pub ts: DateTime<Utc>,
    /// Who made it.
    pub user: &'a str,
    /// Their team, if recorded.
    pub team: Option<&'a str>,
    /// The provider (`openai`, `anthropic`, `gemini`, ...).
    pub provider: &'a str,
    /// The canonical model name, as billed.
    pub model: &'a str,
    /// Online or batch prices.
    pub mode: Mode,
    /// Tokens, bucket by bucket.
    pub usage: Usage,
    /// The cost; `None` if the model had no price.
    pub nano_usd: Option<Money>,
    /// Served from the response cache.
    pub cached: bool,
    /// What the cache saved, for cached calls.
    pub saved_nano_usd: Option<Money>,
    /// Call latency in milliseconds.
    pub latency_ms: u64,
    /// How far the cost can be trusted.
    pub cost_status: CostStatus,
}

impl RecordRef<'_> {
    /// The cost, zero when unpriced (as [`CostRecord::cost`]).
    pub fn cost(&self) -> Money {
        self.nano_usd.unwrap_or(Money::ZERO)
    }
}

impl<'a> From<&'a CostRecord> for RecordRef<'a> {
    fn from(r: &'a CostRecord) -> Self {
        RecordRef {
            ts: r.ts,
            user: &r.user,
            team: r.team.as_deref(),
            provider: &r.provider,
            model: &r.model,
            mode: r.mode,
            usage: r.usage,
            nano_usd: r.nano_usd,
            cached: r.cached,
            saved_nano_usd: r.saved_nano_usd,
            latency_ms: r.latency_ms,
            cost_status: r.cost_status,
        }
    }
}

impl ScanFilter {
    /// Whether the record `r` views passes the filter: always the same
    /// answer as [`ScanFilter::matches`] on the record itself.
    ///
    /// ```
    /// use costlayer::ledger::{CostRecord, RecordRef, ScanFilter};
    /// use costlayer::Usage;
    ///
    /// let r = CostRecord::new("alice", "openai", "gpt-4o", Usage::new(1, 1));
    /// let f = ScanFilter { users: vec!["bob".into()], ..ScanFilter::default() };
    /// assert!(!f.matches_ref(&RecordRef::from(&r)));
    /// assert!(ScanFilter::default().matches_ref(&RecordRef::from(&r)));
    /// ```
    pub fn matches_ref(&self, r: &RecordRef<'_>) -> bool {
        self.since.is_none_or(|s| r.ts >= s)
            && self.until.is_none_or(|u| r.ts < u)
            && (self.users.is_empty() || self.users.iter().any(|u| u == r.user))
            && (self.providers.is_empty()
                || self
                    .providers
                    .iter()
                    .any(|p| crate::pricing::same_provider(p, r.provider)))
            && (self.models.is_empty()
                || self
                    .models
                    .iter()
                    .any(|m| crate::pricing::same_model(m, r.model)))
            && self
                .team
                .as_ref()
                .is_none_or(|t| r.team == Some(t.as_str()))
    }
}

/// A fold over every item of a ledger that can run on several threads:
/// each thread folds part of the ledger into its own accumulator (made by
/// [`ParallelFold::fork`]), and the accumulators are merged at the end.
///
/// For the result to equal a one-thread fold, `merge` must be exact and
/// the fold must not depend on the order of the items (sums, counts, sets,
/// minimum and maximum do not). Records come in no particular order;
/// corrupt lines are handed to the merged accumulator, in file and line
/// order, after every record.
///
/// [`DashboardPass`](crate::report::DashboardPass) implements it; see
/// [`JsonlStorage::fold_blocking`](super::JsonlStorage::fold_blocking).
///
/// # Example
///
/// ```
/// use costlayer::ledger::{CorruptLine, ParallelFold, RecordRef};
/// use costlayer::Money;
///
/// /// Total cost and number of calls.
/// #[derive(Default)]
/// struct Total { calls: u64, cost: Money, corrupt: u64 }
///
/// impl ParallelFold for Total {
///     fn fork(&self) -> Self { Total::default() }
///     fn record(&mut self, r: &RecordRef<'_>) { self.calls += 1; self.cost += r.cost(); }
///     fn corrupt(&mut self, _: CorruptLine) { self.corrupt += 1; }
///     fn merge(&mut self, other: Self) {
///         self.calls += other.calls;
///         self.cost += other.cost;
///         self.corrupt += other.corrupt;
///     }
/// }
///
/// let (mut a, mut b) = (Total::default(), Total::default());
/// let r = costlayer::ledger::CostRecord::new("u", "openai", "gpt-4o", costlayer::Usage::new(1, 1));
/// a.record(&RecordRef::from(&r));
/// b.record(&RecordRef::from(&r));
/// a.merge(b);
/// assert_eq!(a.calls, 2);
/// ```
pub trait ParallelFold: Send {
    /// A fresh, empty accumulator with the same settings, for another
    /// thread.
    fn fork(&self) -> Self
    where
        Self: Sized;

    /// Folds in one good record.
    fn record(&mut self, r: &RecordRef<'_>);

    /// Folds in one corrupt line (already copied to quarantine).
    fn corrupt(&mut self, c: CorruptLine);

    /// Adds everything `other` folded into `self`.
    fn merge(&mut self, other: Self)
    where
        Self: Sized;

    /// The fold as a [`DashboardPass`](crate::report::DashboardPass), if
    /// it is one: [`JsonlStorage::fold_blocking`](super::JsonlStorage::fold_blocking)
    /// then folds it incrementally, from the dashboard's checkpoint. Other
    /// folds keep the default, `None`.
    #[doc(hidden)]
    fn as_dashboard_pass(&mut self) -> Option<&mut crate::report::DashboardPass> {
        None
    }
}
