//! One pass over the ledger that feeds the summary and every budget.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use futures_util::StreamExt;

use super::summary::{week_start, Windows, WEEK_SECONDS};
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
    /// While a checkpoint is being built: what the summary counts that may
    /// still be in a later pass's 7-day window (per second of this pass's
    /// window, and the records after `now`), so the window can be worked
    /// out again at a later `now` without reading the ledger.
    recent: Option<Recent>,
    /// Records pushed into this pass (not those it started from).
    pushed: u64,
}

/// What a [`DashboardPass`] has folded, for the dashboard's checkpoint: the
/// summary, each budget's spend and the recent spend (see
/// [`DashboardPass::take_state`]).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PassState {
    pub(crate) summary: Summary,
    pub(crate) spent: Vec<Money>,
    pub(crate) recent: Recent,
}

/// What a pass's summary counted that a later pass's 7-day window may
/// still count, in memory bounded whatever the number of records: a
/// [`Bucket`] per second of the window `[week_start, now]` (a dense run of
/// [`Recent::SLOTS`], allocated on the first record there), and the time
/// and cost of each record after `now` (future-dated: rare).
///
/// A window starts at a whole second, so a later window (a later `now`)
/// holds every record of a second or none of them: dropping the seconds
/// before its start and adding the future records that have become due
/// gives exactly what a recount of the ledger gives.
#[derive(Debug, Clone, Default)]
pub(crate) struct Recent {
    /// The window's first second (Unix time): the second of `slots[0]`.
    start: i64,
    /// The calls and cost of each second from `start` on, or empty (no
    /// record in the window yet).
    slots: Vec<Bucket>,
    /// The time and cost of each record after `now`.
    future: Vec<(DateTime<Utc>, Money)>,
    /// Records noted but not yet added to `slots` (offset and cost): they
    /// are added [`Recent::PENDING`] at a time, in a loop whose memory
    /// accesses overlap, rather than one cache miss per record between
    /// parsing the next ones.
    pending: Vec<(u32, Money)>,
}

impl PartialEq for Recent {
    fn eq(&self, other: &Self) -> bool {
        let (mut a, mut b) = (self.clone(), other.clone());
        a.settle();
        b.settle();
        a.start == b.start && a.slots == b.slots && a.future == b.future
    }
}

impl Recent {
    /// The seconds of a window: `now`'s second and the 7 days before it.
    pub(crate) const SLOTS: usize = WEEK_SECONDS as usize + 1;

    /// How many records are noted before they are added to their seconds.
    const PENDING: usize = 1024;

    /// Nothing yet, in the window whose first second is `start` (Unix time).
    pub(crate) fn new(start: i64) -> Self {
        Recent {
            start,
            slots: Vec::new(),
            future: Vec::new(),
            pending: Vec::new(),
        }
    }

    /// The window's first second (Unix time).
    pub(crate) fn start(&self) -> i64 {
        self.start
    }

    /// Notes a record the summary counts, for the windows `w`: in its
    /// second if it is in the window, in the future records if it is after
    /// `now`, nowhere if it is before the window.
    #[inline]
    fn add(&mut self, ts: DateTime<Utc>, cost: Money, w: &Windows) {
        if w.in_week(ts) {
            self.add_due(ts, cost);
        } else if ts > w.now() {
            self.future.push((ts, cost));
        }
    }

    /// Adds a record at or before `now` to its second (nothing if it is
    /// before the window).
    #[inline]
    fn add_due(&mut self, ts: DateTime<Utc>, cost: Money) {
        let Ok(at) = u32::try_from(ts.timestamp() - self.start) else {
            return;
        };
        if at as usize >= Self::SLOTS {
            return;
        }
        if self.pending.len() >= Self::PENDING {
            self.settle();
        } else if self.pending.capacity() == 0 {
            self.pending.reserve_exact(Self::PENDING);
        }
        self.pending.push((at, cost));
    }

    /// Adds the pending records to their seconds (the run of seconds is
    /// allocated on the first).
    fn settle(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        if self.slots.is_empty() {
            self.slots = vec![Bucket::default(); Self::SLOTS];
        }
        for &(at, cost) in &self.pending {
            // Every offset was checked against SLOTS.
            if let Some(b) = self.slots.get_mut(at as usize) {
                b.add(cost);
            }
        }
        self.pending.clear();
    }

    /// Adds what `other` noted: `other` must be for the same window.
    fn merge(&mut self, mut other: Recent) {
        debug_assert_eq!(self.start, other.start);
        self.settle();
        other.settle();
        if self.slots.is_empty() {
            self.slots = other.slots;
        } else {
            for (mine, theirs) in self.slots.iter_mut().zip(other.slots) {
                mine.merge(theirs);
            }
        }
        if self.future.is_empty() {
            self.future = other.future;
        } else {
            self.future.extend(other.future);
        }
    }

    /// Moves the window on to the one starting at second `start`, at
    /// `now`: drops the seconds before it, moves the future records up to
    /// `now` into their seconds (or drops them if they are before it).
    /// Returns what the window holds, or `None` if `start` is before the
    /// current start (a window never moves back).
    fn shift(&mut self, start: i64, now: DateTime<Utc>) -> Option<Bucket> {
        let by = usize::try_from(start.checked_sub(self.start)?).ok()?;
        self.settle();
        if by >= Self::SLOTS {
            self.slots = Vec::new();
        } else if by > 0 && !self.slots.is_empty() {
            self.slots.copy_within(by.., 0);
            self.slots[Self::SLOTS - by..].fill(Bucket::default());
        }
        self.start = start;
        let future = std::mem::take(&mut self.future);
        for (ts, cost) in future {
            if ts > now {
                self.future.push((ts, cost));
            } else {
                self.add_due(ts, cost);
            }
        }
        self.settle();
        let mut sum = Bucket::default();
        for b in &self.slots {
            sum.merge(*b);
        }
        Some(sum)
    }

    /// The seconds with calls: each one's offset from the window's start
    /// and bucket, in order (of the records added: see
    /// [`DashboardPass::take_state`], which adds the pending ones).
    pub(crate) fn seconds(&self) -> impl Iterator<Item = (usize, Bucket)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, b)| b.calls > 0)
            .map(|(i, b)| (i, *b))
    }

    /// Sets the bucket of the second `at` seconds after the start (for a
    /// checkpoint read back); false if that is not a second of the window.
    pub(crate) fn set_second(&mut self, at: usize, bucket: Bucket) -> bool {
        if at >= Self::SLOTS {
            return false;
        }
        self.settle();
        if self.slots.is_empty() {
            self.slots = vec![Bucket::default(); Self::SLOTS];
        }
        self.slots[at] = bucket;
        true
    }

    /// The records after `now`: time and cost.
    pub(crate) fn future(&self) -> &[(DateTime<Utc>, Money)] {
        &self.future
    }

    /// Notes a record after `now` (for a checkpoint read back).
    pub(crate) fn push_future(&mut self, ts: DateTime<Utc>, cost: Money) {
        self.future.push((ts, cost));
    }
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

    /// Starts noting the recent spend (call it before pushing any).
    pub(crate) fn track_recent(&mut self) {
        self.recent = self
            .windows
            .week_start()
            .map(|start| Recent::new(start.timestamp()));
    }

    /// What the pass has folded so far, for a checkpoint; `None` unless it
    /// was noting the recent spend ([`DashboardPass::track_recent`]). The
    /// pass stops noting it (its per-second sums move into the state).
    pub(crate) fn take_state(&mut self) -> Option<PassState> {
        let mut recent = self.recent.take()?;
        recent.settle();
        self.flush();
        Some(PassState {
            summary: self.summary.clone(),
            spent: self.tallies.iter().map(BudgetTally::spent).collect(),
            recent,
        })
    }

    /// Starts this pass (fresh: nothing pushed yet) from what a pass with
    /// the same [`DashboardPass::checkpoint_key`] had folded at an earlier
    /// or equal `now`: the summary is taken as it is but for `now` and the
    /// 7-day window, worked out again from the recent spend moved on to
    /// this pass's window. Returns false (and changes nothing) if `state`
    /// does not fit.
    pub(crate) fn restore(&mut self, state: PassState) -> bool {
        let now = self.summary.now;
        let Some(start) = self.windows.week_start() else {
            return false;
        };
        if state.summary.now > now
            || state.spent.len() != self.tallies.len()
            || week_start(state.summary.now).map(|s| s.timestamp()) != Some(state.recent.start)
        {
            return false;
        }
        let mut recent = state.recent;
        let Some(week) = recent.shift(start.timestamp(), now) else {
            return false;
        };
        let mut summary = state.summary;
        summary.now = now;
        summary.calendar = self.summary.calendar;
        summary.last_7_days = week;
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
                recent.add(r.ts, cost, &self.windows);
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
            mine.merge(theirs);
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
            recent: self.recent.as_ref().map(|r| Recent::new(r.start)),
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

    /// A record at `ts` costing `nanos`.
    fn at(ts: DateTime<Utc>, nanos: i64) -> ScanItem {
        let mut r = CostRecord::new("u", "openai", "gpt-4o", Usage::new(1, 1));
        r.ts = ts;
        r.nano_usd = Some(Money::from_nanos(nanos));
        ScanItem::Record(r)
    }

    #[test]
    fn a_pass_restored_at_a_later_now_counts_the_week_like_a_recount() {
        let ms = Duration::milliseconds;
        let first = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move |n: i64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            i64::try_from(x % u64::try_from(n).unwrap()).unwrap()
        };
        for round in 0..60 {
            // Two instants of one month, with sub-second parts; the second
            // from the same instant up to 19 days later.
            let now = first + Duration::days(9) + ms(next(86_400_000));
            let later = now
                + match round % 4 {
                    0 => ms(next(2_000)),
                    1 => ms(next(86_400_000)),
                    2 => ms(next(19 * 86_400_000)),
                    _ => Duration::days(7) + ms(next(3_000) - 1_500),
                };
            let starts = [week_start(now).unwrap(), week_start(later).unwrap()];
            let mut old = Vec::new();
            for i in 0..300 {
                let ts = match next(6) {
                    // On and next to either window's first second.
                    0 => starts[i % 2] + ms([-1_000, -1, 0, 1, 999][next(5) as usize]),
                    // Between and after the two instants (future-dated at first).
                    1 => {
                        now + ms(next(
                            later.signed_duration_since(now).num_milliseconds() + 2_000,
                        ))
                    }
                    2 => now,
                    _ => now - ms(next(8 * 86_400_000)),
                };
                old.push(at(ts, next(1_000_000)));
            }
            let new: Vec<ScanItem> = (0..50)
                .map(|_| at(later - ms(next(9 * 86_400_000) - 86_400_000), next(1_000)))
                .collect();

            let mut before = DashboardPass::new(now, [], ScanFilter::default());
            before.track_recent();
            for item in &old {
                before.push(item);
            }
            let state = before.take_state().unwrap();
            assert!(before.take_state().is_none());

            // Restored, then fed by two threads (a fork merged back).
            let mut after = DashboardPass::new(later, [], ScanFilter::default());
            after.track_recent();
            assert!(after.restore(state.clone()), "round {round}");
            let mut fork = after.fork();
            for (i, item) in new.iter().enumerate() {
                if i % 2 == 0 {
                    after.push(item);
                } else {
                    fork.push(item);
                }
            }
            after.merge(fork);
            let mut recount = DashboardPass::new(later, [], ScanFilter::default());
            for item in old.iter().chain(&new) {
                recount.push(item);
            }
            let after_state = after.take_state().unwrap();
            let (got, want) = (after.finish("x"), recount.finish("x"));
            assert_eq!(
                got.summary, want.summary,
                "round {round}: {now} then {later}"
            );
            assert!(want.summary.last_7_days.calls > 0);
            // What it keeps for the next pass is the window of `later`.
            let mut again = DashboardPass::new(later, [], ScanFilter::default());
            assert!(again.restore(after_state));
            assert_eq!(again.finish("x").summary, want.summary);

            // Nor back in time.
            let mut earlier = DashboardPass::new(now - ms(1), [], ScanFilter::default());
            assert!(!earlier.restore(state));
        }
    }
}
