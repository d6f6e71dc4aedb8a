//! [`Summary`]: everything the dashboard shows, in one streaming pass.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::calendar::Calendar;
use crate::ledger::{
    CorruptLine, CostRecord, RecordRef, RecordStream, ScanFilter, ScanItem, Storage,
};
use crate::{CostStatus, Mode, Money, Usage};

use super::ReportError;

/// A number of calls and what they cost.
///
/// Unpriced calls count in `calls` and add nothing to `nano_usd`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    /// Number of calls.
    pub calls: u64,
    /// Their exact cost in nano-dollars.
    pub nano_usd: Money,
}

impl Bucket {
    /// Counts one call of cost `cost`.
    pub fn add(&mut self, cost: Money) {
        self.calls += 1;
        self.nano_usd += cost;
    }

    /// This bucket's cost as a share of `total`, in basis points (1/100 of
    /// a percent), rounded down; 0 when `total` is zero.
    pub fn share_bp(&self, total: Money) -> i64 {
        self.nano_usd.basis_points_of(total).unwrap_or(0)
    }

    /// Adds another bucket's calls and cost.
    pub fn merge(&mut self, other: Bucket) {
        self.calls += other.calls;
        self.nano_usd += other.nano_usd;
    }
}

/// The number of seconds in the 7-day window before `now`'s second.
pub(crate) const WEEK_SECONDS: i64 = 7 * 86_400;

/// The first instant of the 7-day window up to `now`: `now - 7 days`
/// rounded down to the whole second. The window is `[week_start, now]`
/// (its start included); starting at a whole second lets the dashboard's
/// checkpoint keep per-second sums and still move the window exactly.
/// `None` at the start of chrono's range (the window then has no start).
pub(crate) fn week_start(now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let start = now.checked_sub_signed(Duration::seconds(WEEK_SECONDS))?;
    // `timestamp` rounds down (the sub-second part is never negative).
    DateTime::from_timestamp(start.timestamp(), 0)
}

/// The calendar month and 7-day window of a summary's `now`, worked out
/// once instead of per record.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Windows {
    /// `[start, end)` of the calendar month of `now`, in the summary's
    /// calendar (`None` at the ends of chrono's range, where the local year
    /// and month are compared instead).
    month_range: Option<(DateTime<Utc>, DateTime<Utc>)>,
    month_first: NaiveDate,
    now: DateTime<Utc>,
    week_start: Option<DateTime<Utc>>,
    calendar: Calendar,
}

impl Windows {
    pub(crate) fn new(now: DateTime<Utc>, calendar: Calendar) -> Self {
        let month = calendar.month(now);
        Windows {
            month_range: month.start.zip(month.end),
            month_first: calendar.month_start_date(now),
            now,
            week_start: week_start(now),
            calendar,
        }
    }

    /// The start of the 7-day window, [`week_start`] of `now`.
    pub(crate) fn week_start(&self) -> Option<DateTime<Utc>> {
        self.week_start
    }

    /// The instant the windows are worked out for.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// Whether `ts` is in the 7-day window, `[week_start, now]`.
    #[inline]
    pub(crate) fn in_week(&self, ts: DateTime<Utc>) -> bool {
        ts <= self.now && self.week_start.is_none_or(|start| ts >= start)
    }

    /// The calendar month of `now`, as it is compared, in words.
    pub(crate) fn month_key(&self) -> String {
        format!("{:?}|{:?}", self.month_range, self.month_first)
    }

    fn in_month(&self, ts: DateTime<Utc>, day: NaiveDate) -> bool {
        match self.month_range {
            Some((start, end)) => ts >= start && ts < end,
            None => {
                day.year() == self.month_first.year() && day.month() == self.month_first.month()
            }
        }
    }

    fn day(&self, ts: DateTime<Utc>) -> NaiveDate {
        match self.calendar {
            Calendar::Utc => ts.naive_utc().date(),
            c => c.local_date(ts),
        }
    }
}

/// Totals and breakdowns of a ledger, computed in one pass.
///
/// Build it with [`Summary::from_storage`] or [`Summary::from_stream`], or
/// feed it item by item with [`Summary::push`]. Memory is flat in the
/// number of records: only per-key and per-day totals are kept.
///
/// "Month" and "day" are calendar months and days of [`Summary::calendar`]
/// (UTC unless set with [`Summary::new_in`]: the same calendar as the
/// budgets when `budget.time_zone` is set); `month` is the calendar month
/// that contains [`Summary::now`], and `last_7_days` is the window
/// `[week_start, now]`, where `week_start` is `now - 7 days` rounded down to
/// the whole second (a record exactly at the start is counted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Summary {
    /// The instant the report is computed for (month-to-date, projections).
    pub now: DateTime<Utc>,
    /// Every call.
    pub total: Bucket,
    /// Calls in the calendar month of `now`.
    pub month: Bucket,
    /// Calls in the 7 days up to `now`: from `now - 7 days` rounded down
    /// to the whole second, to `now`, both included.
    pub last_7_days: Bucket,
    /// By provider.
    pub by_provider: BTreeMap<String, Bucket>,
    /// By model (canonical name as billed).
    pub by_model: BTreeMap<String, Bucket>,
    /// By user.
    pub by_user: BTreeMap<String, Bucket>,
    /// By team (records without a team are not counted here).
    pub by_team: BTreeMap<String, Bucket>,
    /// By UTC day.
    pub by_day: BTreeMap<NaiveDate, Bucket>,
    /// Calls billed at online prices.
    pub online: Bucket,
    /// Calls billed at batch prices.
    pub batch: Bucket,
    /// Calls served from the response cache.
    pub cache_hits: u64,
    /// What the cache saved (the sum of the cached records' `saved_nano_usd`).
    pub saved_nano_usd: Money,
    /// Calls whose model had no price (`nano_usd: null`).
    pub unpriced_calls: u64,
    /// The unpriced models and how many calls each.
    pub unpriced_models: BTreeMap<String, u64>,
    /// Calls whose cost is incomplete (a billed dimension the table could
    /// not price: the figure is a lower bound), and what they cost.
    pub incomplete: Bucket,
    /// Calls whose cost is estimated (the usage itself was an estimate).
    pub estimated: Bucket,
    /// Tokens of every call, bucket by bucket.
    pub usage: Usage,
    /// Ledger lines skipped because they could not be read.
    pub corrupted_lines: u64,
    /// The files the corrupted lines came from.
    pub corrupt_sources: BTreeSet<String>,
    /// Where copies of the corrupted lines were kept.
    pub quarantined_to: BTreeSet<PathBuf>,
    /// The earliest record.
    pub first_ts: Option<DateTime<Utc>>,
    /// The latest record.
    pub last_ts: Option<DateTime<Utc>>,
    /// Where months and days begin (not serialised; UTC when read back).
    #[serde(skip)]
    pub calendar: Calendar,
    /// Whether the costs (or the savings) added up to more than
    /// [`Money`] holds: the totals are then capped at its maximum and
    /// wrong, and the dashboard says so. Ledger amounts are validated
    /// (never negative, at most $1,000,000 a record), so the totals never
    /// overflow on a real ledger, and the capped values do not depend on
    /// the order of the records.
    #[serde(default)]
    pub totals_overflowed: bool,
}

impl Summary {
    /// An empty summary as of `now`, in UTC months and days.
    pub fn new(now: DateTime<Utc>) -> Self {
        Self::new_in(now, Calendar::Utc)
    }

    /// An empty summary as of `now`, with months and days of `calendar`.
    ///
    /// ```
    /// use chrono::{TimeZone, Utc};
    /// use costlayer::calendar::Calendar;
    /// use costlayer::report::Summary;
    ///
    /// let now = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
    /// let s = Summary::new_in(now, Calendar::Zone(chrono_tz::Tz::Pacific__Kiritimati));
    /// assert_eq!(s.month_start().to_string(), "2026-12-01");
    /// ```
    pub fn new_in(now: DateTime<Utc>, calendar: Calendar) -> Self {
        Summary {
            calendar,
            now,
            total: Bucket::default(),
            month: Bucket::default(),
            last_7_days: Bucket::default(),
            by_provider: BTreeMap::new(),
            by_model: BTreeMap::new(),
            by_user: BTreeMap::new(),
            by_team: BTreeMap::new(),
            by_day: BTreeMap::new(),
            online: Bucket::default(),
            batch: Bucket::default(),
            cache_hits: 0,
            saved_nano_usd: Money::ZERO,
            unpriced_calls: 0,
            unpriced_models: BTreeMap::new(),
            incomplete: Bucket::default(),
            estimated: Bucket::default(),
            usage: Usage::default(),
            corrupted_lines: 0,
            corrupt_sources: BTreeSet::new(),
            quarantined_to: BTreeSet::new(),
            first_ts: None,
            last_ts: None,
            totals_overflowed: false,
        }
    }

    /// Scans `storage` with `filter` and summarises it.
    ///
    /// # Errors
    ///
    /// [`ReportError::Ledger`] if the ledger cannot be read. Corrupted lines
    /// are not errors: they are counted in [`Summary::corrupted_lines`].
    pub async fn from_storage<S>(
        storage: &S,
        filter: &ScanFilter,
        now: DateTime<Utc>,
    ) -> Result<Self, ReportError>
    where
        S: Storage + ?Sized,
    {
        let stream = storage.scan(filter).await?;
        Self::from_stream(stream, now).await
    }

    /// Summarises a scan stream.
    ///
    /// # Errors
    ///
    /// The first error the stream yields.
    pub async fn from_stream(
        mut stream: RecordStream,
        now: DateTime<Utc>,
    ) -> Result<Self, ReportError> {
        let mut s = Summary::new(now);
        while let Some(item) = stream.next().await {
            s.push(&item?);
        }
        Ok(s)
    }

    /// Adds one scan item.
    pub fn push(&mut self, item: &ScanItem) {
        match item {
            ScanItem::Record(r) => self.add_record(r),
            ScanItem::Corrupt(c) => self.add_corrupt(c),
        }
    }

    /// Adds one record.
    pub fn add_record(&mut self, r: &CostRecord) {
        self.add_ref(&RecordRef::from(r));
    }

    /// Adds one record, from a borrowed view (the same as
    /// [`Summary::add_record`] on the record itself).
    pub fn add_ref(&mut self, r: &RecordRef<'_>) {
        self.add_in(r, &Windows::new(self.now, self.calendar));
    }

    /// [`Summary::add_ref`] with the windows of `now` worked out already.
    pub(crate) fn add_in(&mut self, r: &RecordRef<'_>, w: &Windows) {
        let cost = self.add_unkeyed(r, w);
        add_to(&mut self.by_provider, r.provider, cost);
        add_to(&mut self.by_model, r.model, cost);
        add_to(&mut self.by_user, r.user, cost);
        if let Some(team) = r.team {
            add_to(&mut self.by_team, team, cost);
        }
    }

    /// [`Summary::add_in`] but for the per-provider, model, user and team
    /// breakdowns, which the caller adds (the dashboard pass interns the
    /// keys first); returns the record's cost.
    #[inline]
    pub(crate) fn add_unkeyed(&mut self, r: &RecordRef<'_>, w: &Windows) -> Money {
        let (cost, day) = self.add_undated(r, w);
        self.by_day.entry(day).or_default().add(cost);
        cost
    }

    /// [`Summary::add_unkeyed`] but for the per-day breakdown too, which
    /// the caller adds; returns the record's cost and day.
    #[inline]
    pub(crate) fn add_undated(&mut self, r: &RecordRef<'_>, w: &Windows) -> (Money, NaiveDate) {
        let cost = r.cost();
        // Every other bucket is a part of the total: if the total fits,
        // they do.
        if self.total.nano_usd.checked_add(cost).is_none() {
            self.totals_overflowed = true;
        }
        self.total.add(cost);
        let day = w.day(r.ts);
        if w.in_month(r.ts, day) {
            self.month.add(cost);
        }
        if w.in_week(r.ts) {
            self.last_7_days.add(cost);
        }
        match r.mode {
            Mode::Batch => self.batch.add(cost),
            _ => self.online.add(cost),
        }
        if r.cached {
            self.cache_hits += 1;
            if let Some(saved) = r.saved_nano_usd {
                if self.saved_nano_usd.checked_add(saved).is_none() {
                    self.totals_overflowed = true;
                }
                self.saved_nano_usd += saved;
            }
        }
        if r.nano_usd.is_none() {
            self.unpriced_calls += 1;
            if let Some(n) = self.unpriced_models.get_mut(r.model) {
                *n += 1;
            } else {
                self.unpriced_models.insert(r.model.to_owned(), 1);
            }
        }
        match r.cost_status {
            CostStatus::Incomplete => self.incomplete.add(cost),
            CostStatus::Estimated => self.estimated.add(cost),
            _ => {}
        }
        self.usage += r.usage;
        self.first_ts = Some(self.first_ts.map_or(r.ts, |t| t.min(r.ts)));
        self.last_ts = Some(self.last_ts.map_or(r.ts, |t| t.max(r.ts)));
        (cost, day)
    }

    /// Adds everything `other` counted, exactly: the result is the summary
    /// of both sets of items, as if they had been pushed into one. Used to
    /// fold a ledger on several threads, one summary each. `other` must be
    /// for the same [`Summary::now`] (its month and 7-day window are taken
    /// as they are); `self.now` is kept.
    ///
    /// ```
    /// use chrono::{TimeZone, Utc};
    /// use costlayer::ledger::CostRecord;
    /// use costlayer::report::Summary;
    /// use costlayer::{Money, Usage};
    ///
    /// let now = Utc.with_ymd_and_hms(2026, 11, 16, 0, 0, 0).unwrap();
    /// let (mut a, mut b) = (Summary::new(now), Summary::new(now));
    /// let mut r = CostRecord::new("alice", "openai", "gpt-4o", Usage::new(1, 1));
    /// r.nano_usd = Some(Money::from_nanos(5));
    /// a.add_record(&r);
    /// b.add_record(&r);
    /// a.merge(b);
    /// assert_eq!(a.total.calls, 2);
    /// assert_eq!(a.by_user["alice"].nano_usd, Money::from_nanos(10));
    /// ```
    pub fn merge(&mut self, other: Summary) {
        if other.totals_overflowed
            || self
                .total
                .nano_usd
                .checked_add(other.total.nano_usd)
                .is_none()
            || self
                .saved_nano_usd
                .checked_add(other.saved_nano_usd)
                .is_none()
        {
            self.totals_overflowed = true;
        }
        self.total.merge(other.total);
        self.month.merge(other.month);
        self.last_7_days.merge(other.last_7_days);
        for (mine, theirs) in [
            (&mut self.by_provider, other.by_provider),
            (&mut self.by_model, other.by_model),
            (&mut self.by_user, other.by_user),
            (&mut self.by_team, other.by_team),
        ] {
            for (k, b) in theirs {
                mine.entry(k).or_default().merge(b);
            }
        }
        for (d, b) in other.by_day {
            self.by_day.entry(d).or_default().merge(b);
        }
        self.online.merge(other.online);
        self.batch.merge(other.batch);
        self.cache_hits += other.cache_hits;
        self.saved_nano_usd += other.saved_nano_usd;
        self.unpriced_calls += other.unpriced_calls;
        for (m, n) in other.unpriced_models {
            *self.unpriced_models.entry(m).or_default() += n;
        }
        self.incomplete.merge(other.incomplete);
        self.estimated.merge(other.estimated);
        self.usage += other.usage;
        self.corrupted_lines += other.corrupted_lines;
        self.corrupt_sources.extend(other.corrupt_sources);
        self.quarantined_to.extend(other.quarantined_to);
        self.first_ts = match (self.first_ts, other.first_ts) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_ts = match (self.last_ts, other.last_ts) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }

    /// Counts one corrupted line.
    pub fn add_corrupt(&mut self, c: &CorruptLine) {
        self.corrupted_lines += 1;
        if !self.corrupt_sources.contains(&c.source) {
            self.corrupt_sources.insert(c.source.clone());
        }
        if let Some(q) = &c.quarantined_to {
            if !self.quarantined_to.contains(q) {
                self.quarantined_to.insert(q.clone());
            }
        }
    }

    /// The first day of the calendar month of [`Summary::now`].
    pub fn month_start(&self) -> NaiveDate {
        self.calendar.month_start_date(self.now)
    }

    /// The spend of each of the `days` days (of the summary's calendar) up
    /// to and including today, oldest first (days without calls are zero).
    pub fn daily(&self, days: u32) -> Vec<(NaiveDate, Bucket)> {
        let today = self.calendar.local_date(self.now);
        (0..days)
            .rev()
            .map(|back| {
                let d = today - Duration::days(i64::from(back));
                (d, self.by_day.get(&d).copied().unwrap_or_default())
            })
            .collect()
    }
}

// Looks the key up before allocating it: a million records over a handful of
// providers must not allocate a million strings.
fn add_to(map: &mut BTreeMap<String, Bucket>, key: &str, cost: Money) {
    if let Some(b) = map.get_mut(key) {
        b.add(cost);
    } else {
        map.entry(key.to_owned()).or_default().add(cost);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ledger::{MemoryStorage, Storage};
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
    }

    fn rec(
        user: &str,
        provider: &str,
        model: &str,
        ts: DateTime<Utc>,
        nanos: Option<i64>,
    ) -> CostRecord {
        let mut r = CostRecord::new(user, provider, model, Usage::new(100, 10));
        r.ts = ts;
        r.nano_usd = nanos.map(Money::from_nanos);
        r
    }

    #[tokio::test]
    async fn one_pass_totals_and_breakdowns_are_exact() {
        let now = at(2026, 11, 20, 12);
        let ledger = MemoryStorage::new();
        let mut cached = rec(
            "bob",
            "anthropic",
            "claude-haiku-4-5",
            at(2026, 11, 19, 0),
            Some(0),
        );
        cached.cached = true;
        cached.saved_nano_usd = Some(Money::from_nanos(777));
        let mut batch = rec("alice", "openai", "gpt-4o", at(2026, 10, 2, 0), Some(1_000));
        batch.mode = Mode::Batch;
        batch.team = Some("ml".into());
        let records = vec![
            rec(
                "alice",
                "openai",
                "gpt-4o",
                at(2026, 11, 1, 0),
                Some(333_333_333),
            ),
            rec(
                "alice",
                "openai",
                "gpt-4o-mini",
                at(2026, 11, 15, 0),
                Some(1),
            ),
            rec("bob", "gemini", "mystery-model", at(2026, 11, 18, 0), None),
            cached,
            batch,
        ];
        ledger.append_batch(&records).await.unwrap();
        let s = Summary::from_storage(&ledger, &ScanFilter::default(), now)
            .await
            .unwrap();
        assert_eq!(
            s.total,
            Bucket {
                calls: 5,
                nano_usd: Money::from_nanos(333_334_334)
            }
        );
        assert_eq!(
            s.month,
            Bucket {
                calls: 4,
                nano_usd: Money::from_nanos(333_333_334)
            }
        );
        // [Nov 13 12:00, Nov 20 12:00]: the 15th, 18th and 19th.
        assert_eq!(
            s.last_7_days,
            Bucket {
                calls: 3,
                nano_usd: Money::from_nanos(1)
            }
        );
        assert_eq!(
            s.by_provider["openai"],
            Bucket {
                calls: 3,
                nano_usd: Money::from_nanos(333_334_334)
            }
        );
        assert_eq!(s.by_provider["gemini"].calls, 1);
        assert_eq!(s.by_model.len(), 4);
        assert_eq!(
            s.by_user["bob"],
            Bucket {
                calls: 2,
                nano_usd: Money::ZERO
            }
        );
        assert_eq!(s.by_team["ml"].calls, 1);
        assert_eq!(
            s.batch,
            Bucket {
                calls: 1,
                nano_usd: Money::from_nanos(1_000)
            }
        );
        assert_eq!(s.online.calls, 4);
        assert_eq!(
            (s.cache_hits, s.saved_nano_usd),
            (1, Money::from_nanos(777))
        );
        assert_eq!(s.unpriced_calls, 1);
        assert_eq!(s.unpriced_models["mystery-model"], 1);
        assert_eq!(s.usage.input_tokens, 500);
        assert_eq!(s.by_day.len(), 5);
        assert_eq!(s.first_ts, Some(at(2026, 10, 2, 0)));
        assert_eq!(s.last_ts, Some(at(2026, 11, 19, 0)));
        assert_eq!(
            s.month_start(),
            NaiveDate::from_ymd_opt(2026, 11, 1).unwrap()
        );
    }

    #[test]
    fn merged_summaries_equal_one_summary_of_everything() {
        let now = at(2026, 11, 20, 12);
        let mut items = Vec::new();
        for i in 0..200u32 {
            let (p, m) =
                [("openai", "gpt-4o"), ("gemini", "g"), ("anthropic", "c")][i as usize % 3];
            let nanos = (i % 7 != 0).then_some(i64::from(i) * 1_001 - 50_000);
            let mut r = rec(
                ["a", "b", "c", "d"][i as usize % 4],
                p,
                m,
                at(2026, 10 + i % 2, 1 + i % 28, i % 24),
                nanos,
            );
            if i % 3 == 0 {
                r.team = Some(format!("t{}", i % 2).into());
            }
            if i % 5 == 0 {
                r.mode = Mode::Batch;
                r.cached = true;
                r.saved_nano_usd = Some(Money::from_nanos(3));
            }
            items.push(ScanItem::Record(r));
            if i % 50 == 0 {
                items.push(ScanItem::Corrupt(CorruptLine {
                    source: format!("costs_{}.jsonl", i % 3),
                    line: u64::from(i),
                    reason: "bad".into(),
                    quarantined_to: Some(PathBuf::from(format!("q/{i}"))),
                }));
            }
        }
        let mut whole = Summary::new(now);
        for item in &items {
            whole.push(item);
        }
        for parts in [1, 2, 3, 7] {
            let mut merged = Summary::new(now);
            for part in 0..parts {
                let mut s = Summary::new(now);
                for item in items.iter().skip(part).step_by(parts) {
                    s.push(item);
                }
                merged.merge(s);
            }
            assert_eq!(merged, whole, "{parts} parts");
        }
        // Merging an empty summary changes nothing, either way round.
        let mut a = whole.clone();
        a.merge(Summary::new(now));
        assert_eq!(a, whole);
        let mut b = Summary::new(now);
        b.merge(whole.clone());
        assert_eq!(b, whole);
        assert!(whole.first_ts.is_some() && whole.unpriced_calls > 0 && whole.by_team.len() == 2);
    }

    #[test]
    fn add_ref_counts_like_add_record() {
        let now = at(2026, 11, 20, 12);
        let mut r = rec("a", "p", "m", at(2026, 11, 13, 12), Some(5));
        let (mut one, mut two) = (Summary::new(now), Summary::new(now));
        for ts in [
            at(2026, 11, 13, 12),
            at(2026, 11, 13, 13),
            now,
            at(2026, 11, 20, 13),
            at(2025, 11, 20, 12),
        ] {
            r.ts = ts;
            one.add_record(&r);
            two.add_ref(&RecordRef::from(&r));
        }
        assert_eq!(one, two);
        // [Nov 13 12:00, Nov 20 12:00]: the window's start and end are included.
        assert_eq!(one.last_7_days.calls, 3);
        assert_eq!(one.month.calls, 4);

        // Month edges, December included.
        for now in [
            at(2026, 11, 20, 12),
            at(2026, 12, 31, 23),
            at(2027, 1, 1, 0),
        ] {
            let (mut one, mut two) = (Summary::new(now), Summary::new(now));
            for ts in [
                at(2026, 10, 31, 23),
                at(2026, 11, 1, 0),
                at(2026, 11, 30, 23),
                at(2026, 12, 1, 0),
                at(2026, 12, 31, 23),
                at(2027, 1, 1, 0),
                at(2027, 1, 1, 0) - Duration::milliseconds(1),
            ] {
                r.ts = ts;
                one.add_record(&r);
                two.add_ref(&RecordRef::from(&r));
                let naive = ts.year() == now.year() && ts.month() == now.month();
                assert_eq!(
                    Windows::new(now, Calendar::Utc).in_month(ts, ts.date_naive()),
                    naive,
                    "{now} {ts}"
                );
            }
            assert_eq!(one, two);
        }
    }

    #[test]
    fn the_week_starts_at_the_whole_second_before_now_minus_7_days() {
        let ms = Duration::milliseconds;
        for (now, start) in [
            (at(2026, 11, 20, 12) + ms(250), at(2026, 11, 13, 12)),
            (at(2026, 11, 20, 12), at(2026, 11, 13, 12)),
            (
                at(2026, 11, 20, 12) - ms(1),
                at(2026, 11, 13, 12) - ms(1_000),
            ),
            // Before 1970 too (a negative second rounds down).
            (
                Utc.with_ymd_and_hms(1969, 12, 31, 0, 0, 0).unwrap() - ms(1),
                Utc.with_ymd_and_hms(1969, 12, 23, 23, 59, 59).unwrap(),
            ),
        ] {
            assert_eq!(week_start(now), Some(start), "{now}");
            let mut s = Summary::new(now);
            let mut r = rec("a", "p", "m", now, Some(1));
            for (ts, nanos) in [
                (start - ms(1), 1),
                (start, 2),
                (start + ms(1), 4),
                (now - Duration::days(7), 8),
                (now, 16),
                (now + ms(1), 32),
            ] {
                r.ts = ts;
                r.nano_usd = Some(Money::from_nanos(nanos));
                s.add_record(&r);
            }
            // All but the record before the start and the one after now
            // (`now - 7 days` is in: it is at or after the start).
            assert_eq!(
                s.last_7_days,
                Bucket {
                    calls: 4,
                    nano_usd: Money::from_nanos(2 + 4 + 8 + 16)
                },
                "{now}"
            );
        }
        assert_eq!(week_start(DateTime::<Utc>::MIN_UTC), None);
    }

    #[test]
    fn corrupt_lines_are_counted_with_their_quarantine() {
        let mut s = Summary::new(at(2026, 1, 1, 0));
        for line in [3, 9] {
            s.push(&ScanItem::Corrupt(CorruptLine {
                source: "costs_a.jsonl".into(),
                line,
                reason: "bad json".into(),
                quarantined_to: Some(PathBuf::from("quarantine/costs_a.jsonl")),
            }));
        }
        assert_eq!(s.corrupted_lines, 2);
        assert_eq!(s.quarantined_to.len(), 1);
        assert_eq!(s.total.calls, 0);
    }

    #[test]
    fn daily_fills_missing_days_with_zero() {
        let mut s = Summary::new(at(2026, 3, 2, 10));
        s.add_record(&rec("a", "p", "m", at(2026, 2, 28, 5), Some(7)));
        s.add_record(&rec("a", "p", "m", at(2026, 3, 2, 1), Some(3)));
        let d = s.daily(3);
        assert_eq!(d.len(), 3);
        assert_eq!(d[0].0, NaiveDate::from_ymd_opt(2026, 2, 28).unwrap());
        assert_eq!(d[0].1.nano_usd, Money::from_nanos(7));
        assert_eq!(d[1].1, Bucket::default());
        assert_eq!(d[2].1.nano_usd, Money::from_nanos(3));
    }

    #[test]
    fn share_is_in_basis_points_rounded_down() {
        let b = Bucket {
            calls: 1,
            nano_usd: Money::from_nanos(1),
        };
        assert_eq!(b.share_bp(Money::from_nanos(3)), 3_333);
        assert_eq!(b.share_bp(Money::ZERO), 0);
    }
}
