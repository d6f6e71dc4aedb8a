//! One pass over the ledger that feeds the summary and every budget.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use futures_util::StreamExt;

use super::summary::Windows;
use super::{Bucket, BudgetTally, Dashboard, ReportError, Summary};
use crate::budget::Budget;
#[cfg(feature = "postgres")]
use crate::budget::Period;
use crate::calendar::Calendar;
use crate::ledger::{CorruptLine, ParallelFold, RecordRef, ScanFilter, ScanItem, Storage};
use crate::Money;

/// A breakdown (by provider, model, user or team) keyed by small ids
/// while a pass runs: a ledger has a handful of providers and models and
/// few users, so a short linear search over the keys seen so far beats a
/// map lookup keyed by `String` per record. Past [`Interned::LINEAR`]
/// keys, a hash index takes over. Moved into the summary's map when the
/// pass is merged or finished.
#[derive(Debug, Default)]
struct Interned {
    keys: Vec<(Box<str>, Bucket)>,
    index: HashMap<Box<str>, usize>,
}

impl Interned {
    const LINEAR: usize = 8;

    #[inline]
    fn add(&mut self, key: &str, cost: Money) {
        let found = if self.keys.len() <= Self::LINEAR {
            self.keys.iter().position(|(k, _)| **k == *key)
        } else {
            self.index.get(key).copied()
        };
        let i = match found {
            Some(i) => i,
            None => {
                self.keys.push((key.into(), Bucket::default()));
                let n = self.keys.len();
                if n > Self::LINEAR {
                    if self.index.is_empty() {
                        self.index = self
                            .keys
                            .iter()
                            .enumerate()
                            .map(|(i, (k, _))| (k.clone(), i))
                            .collect();
                    } else {
                        self.index.insert(key.into(), n - 1);
                    }
                }
                n - 1
            }
        };
        self.keys[i].1.add(cost);
    }

    /// Moves every key's bucket into `map` (exact: buckets add up).
    fn drain_into(&mut self, map: &mut BTreeMap<String, Bucket>) {
        for (k, b) in self.keys.drain(..) {
            match map.get_mut(&*k) {
                Some(x) => x.merge(b),
                None => {
                    map.insert(k.into(), b);
                }
            }
        }
        self.index.clear();
    }
}

/// The per-day breakdown while a pass runs: a bucket per day in a dense
/// run of days (a ledger spans a few hundred), instead of a map lookup
/// per record. A day far outside the run goes to the map directly.
#[derive(Debug, Default)]
struct Days {
    /// Days from the common era of `buckets[0]`.
    first: i32,
    buckets: Vec<Bucket>,
}

impl Days {
    /// The longest run of days kept (about 11 years).
    const SPAN: usize = 4096;

    #[inline]
    fn add(&mut self, day: NaiveDate, cost: Money, map: &mut BTreeMap<NaiveDate, Bucket>) {
        let d = day.num_days_from_ce();
        if self.buckets.is_empty() {
            self.first = d;
            self.buckets.push(Bucket::default());
        }
        let at = i64::from(d) - i64::from(self.first);
        let len = self.buckets.len() as i64;
        if at >= 0 && at < len {
            // In range: 0 <= at < len.
            self.buckets[at as usize].add(cost);
        } else if at >= len && at < Self::SPAN as i64 {
            self.buckets.resize(at as usize + 1, Bucket::default());
            self.buckets[at as usize].add(cost);
        } else if at < 0 && len - at <= Self::SPAN as i64 {
            let more = (-at) as usize;
            self.buckets
                .splice(0..0, std::iter::repeat_n(Bucket::default(), more));
            self.first = d;
            self.buckets[0].add(cost);
        } else {
            map.entry(day).or_default().add(cost);
        }
    }

    /// Moves the days seen into `map` (exact: buckets add up).
    fn drain_into(&mut self, map: &mut BTreeMap<NaiveDate, Bucket>) {
        for (i, b) in self.buckets.drain(..).enumerate() {
            if b.calls == 0 {
                continue;
            }
            let day = i32::try_from(i)
                .ok()
                .and_then(|i| self.first.checked_add(i))
                .and_then(NaiveDate::from_num_days_from_ce_opt);
            if let Some(day) = day {
                map.entry(day).or_default().merge(b);
            }
        }
    }
}

/// The four interned breakdowns of a pass.
#[derive(Debug, Default)]
struct Keys {
    provider: Interned,
    model: Interned,
    user: Interned,
    team: Interned,
    days: Days,
}

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
    keys: Keys,
    /// Whether [`JsonlStorage::fold_blocking`](crate::ledger::JsonlStorage::fold_blocking)
    /// may fold it from the dashboard's checkpoint.
    incremental: bool,
    /// While a checkpoint is being built: the time and cost of every
    /// record the summary counts that may still be in a later pass's 7-day
    /// window (`ts` at or after its start), so the window can be worked out
    /// again at a later `now` without reading the ledger.
    recent: Option<Vec<(DateTime<Utc>, Money)>>,
    /// Records pushed into this pass (not those it started from).
    pushed: u64,
}

/// What a [`DashboardPass`] has folded, for the dashboard's checkpoint: the
/// summary, each budget's spend and the recent records (see
/// [`DashboardPass::state`]).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PassState {
    pub(crate) summary: Summary,
    pub(crate) spent: Vec<Money>,
    pub(crate) recent: Vec<(DateTime<Utc>, Money)>,
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
            keys: Keys::default(),
            incremental: true,
            recent: None,
            pushed: 0,
        }
    }

    /// Whether [`JsonlStorage::fold_blocking`](crate::ledger::JsonlStorage::fold_blocking)
    /// may fold this pass incrementally (the default: `true`). It then
    /// keeps a checkpoint in the ledger directory
    /// (`dashboard_checkpoint.bin`: each file's identity and how far it was
    /// read, and what the pass had folded up to there) and, when the next
    /// pass has the same filter, calendar, month and budget periods and a
    /// later `now`, reads only what was appended since. The result is
    /// exactly that of reading the whole ledger; any file replaced,
    /// truncated, rewritten or removed, a missing, corrupt or foreign
    /// checkpoint, or a pass it does not fit makes it read everything
    /// again. `false` always reads everything and leaves the checkpoint
    /// alone.
    pub fn incremental(mut self, on: bool) -> Self {
        self.incremental = on;
        self
    }

    /// How many records were pushed into the pass (by
    /// [`DashboardPass::push`], [`DashboardPass::push_ref`] or a fold),
    /// filtered out or not. A pass folded from the dashboard's checkpoint
    /// counts only the records read past it: after a repeat dashboard over
    /// an append-only ledger, only what was appended since.
    pub fn records_read(&self) -> u64 {
        self.pushed
    }

    /// Whether the pass may be folded from the checkpoint.
    pub(crate) fn is_incremental(&self) -> bool {
        self.incremental
    }

    /// What a checkpoint must have been written for to be used by this
    /// pass: its filter, calendar, month and budgets with their periods.
    /// `None` if the pass cannot use one: its 7-day window has no start,
    /// or it has been fed already (a checkpoint replaces what it holds).
    pub(crate) fn checkpoint_key(&self) -> Option<String> {
        self.windows.week_start()?;
        if self.pushed > 0 || self.summary.total.calls > 0 || self.summary.corrupted_lines > 0 {
            return None;
        }
        let budgets: Vec<_> = self
            .tallies
            .iter()
            .map(|t| (t.budget(), t.period()))
            .collect();
        Some(format!(
            "{:?}|{:?}|{:?}|{:?}",
            self.filter,
            self.summary.calendar,
            self.windows.month_key(),
            budgets
        ))
    }

    /// Starts noting the recent records (call it before pushing any).
    pub(crate) fn track_recent(&mut self) {
        self.recent = Some(Vec::new());
    }

    /// What the pass has folded so far, for a checkpoint.
    pub(crate) fn state(&mut self) -> PassState {
        self.flush();
        PassState {
            summary: self.summary.clone(),
            spent: self.tallies.iter().map(BudgetTally::spent).collect(),
            recent: self.recent.clone().unwrap_or_default(),
        }
    }

    /// Starts this pass (fresh: nothing pushed yet) from what a pass with
    /// the same [`DashboardPass::checkpoint_key`] had folded at an earlier
    /// or equal `now`: the summary is taken as it is but for `now` and the
    /// 7-day window, worked out again from the recent records. Returns
    /// false (and changes nothing) if `state` does not fit.
    pub(crate) fn restore(&mut self, state: PassState) -> bool {
        let now = self.summary.now;
        let Some(week_start) = self.windows.week_start() else {
            return false;
        };
        if state.summary.now > now || state.spent.len() != self.tallies.len() {
            return false;
        }
        let mut summary = state.summary;
        summary.now = now;
        summary.calendar = self.summary.calendar;
        summary.last_7_days = Bucket::default();
        let mut recent = state.recent;
        recent.retain(|&(ts, _)| ts >= week_start);
        for &(ts, cost) in &recent {
            if ts <= now {
                summary.last_7_days.add(cost);
            }
        }
        self.summary = summary;
        for (t, spent) in self.tallies.iter_mut().zip(state.spent) {
            t.restore_spent(spent);
        }
        if self.recent.is_some() {
            self.recent = Some(recent);
        }
        true
    }

    /// Counts the summary's months and days in `calendar` (the budgets'
    /// calendar when `budget.time_zone` is set). Defaults to UTC. Budgets
    /// keep their own windows. Call it before pushing any item: it starts
    /// the summary afresh.
    pub fn calendar(mut self, calendar: Calendar) -> Self {
        let now = self.summary.now;
        self.summary = Summary::new_in(now, calendar);
        self.windows = Windows::new(now, calendar);
        self.keys = Keys::default();
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
        self.pushed += 1;
        for t in &mut self.tallies {
            t.add_ref(r);
        }
        if self.filter.matches_ref(r) {
            let (cost, day) = self.summary.add_undated(r, &self.windows);
            self.keys.days.add(day, cost, &mut self.summary.by_day);
            if let Some(recent) = &mut self.recent {
                if self.windows.week_start().is_none_or(|s| r.ts >= s) {
                    recent.push((r.ts, cost));
                }
            }
            let k = &mut self.keys;
            k.provider.add(r.provider, cost);
            k.model.add(r.model, cost);
            k.user.add(r.user, cost);
            if let Some(team) = r.team {
                k.team.add(team, cost);
            }
        }
    }

    /// Moves the interned breakdowns into the summary.
    fn flush(&mut self) {
        let (k, s) = (&mut self.keys, &mut self.summary);
        k.provider.drain_into(&mut s.by_provider);
        k.model.drain_into(&mut s.by_model);
        k.user.drain_into(&mut s.by_user);
        k.team.drain_into(&mut s.by_team);
        k.days.drain_into(&mut s.by_day);
    }

    /// Adds everything `other` folded: `other` must be a pass with the
    /// same `now`, budgets and filter (a [`ParallelFold::fork`] of this
    /// one), fed other items. The result is exact: the same as one pass
    /// fed both sets of items.
    pub fn merge(&mut self, mut other: DashboardPass) {
        self.flush();
        other.flush();
        self.summary.merge(other.summary);
        for (mine, theirs) in self.tallies.iter_mut().zip(other.tallies) {
            mine.merge(theirs);
        }
        if let (Some(mine), Some(theirs)) = (&mut self.recent, other.recent) {
            mine.extend(theirs);
        }
        self.pushed += other.pushed;
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
        self.flush();
        (&mut self.summary, &mut self.tallies)
    }

    /// The dashboard, labelled with where the ledger was read from.
    pub fn finish(mut self, data_path: impl Into<String>) -> Dashboard {
        self.flush();
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
            keys: Keys::default(),
            incremental: self.incremental,
            recent: self.recent.as_ref().map(|_| Vec::new()),
            pushed: 0,
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

    fn as_dashboard_pass(&mut self) -> Option<&mut DashboardPass> {
        Some(self)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;
    use crate::ledger::CostRecord;
    use crate::Usage;

    #[test]
    fn the_dense_days_equal_the_summary_s_map_anywhere_in_time() {
        let now = Utc.with_ymd_and_hms(2026, 11, 16, 12, 0, 0).unwrap();
        let mut pass = DashboardPass::new(now, [], ScanFilter::default());
        let mut plain = Summary::new(now);
        let mut x: u64 = 0x1234_5678_9abc_def1;
        let far = [
            Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap(),
        ];
        for i in 0..5_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut r = CostRecord::new("u", "openai", "gpt-4o", Usage::new(1, 1));
            r.nano_usd = Some(Money::from_nanos((x % 1_000) as i64));
            r.ts = match i % 50 {
                0 => far[(x % 3) as usize],
                // Days before and after the first, up to 30 years apart.
                1..=5 => now - Duration::days((x % 11_000) as i64 - 5_500),
                _ => now - Duration::seconds((x % (90 * 86_400)) as i64),
            };
            pass.push(&ScanItem::Record(r.clone()));
            plain.add_record(&r);
        }
        let dash = pass.finish("x");
        assert_eq!(dash.summary.by_day, plain.by_day);
        assert_eq!(dash.summary, plain);
    }
}
