//! [`Summary`]: everything the dashboard shows, in one streaming pass.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::ledger::{CorruptLine, CostRecord, RecordStream, ScanFilter, ScanItem, Storage};
use crate::{Mode, Money, Usage};

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
}

/// Totals and breakdowns of a ledger, computed in one pass.
///
/// Build it with [`Summary::from_storage`] or [`Summary::from_stream`], or
/// feed it item by item with [`Summary::push`]. Memory is flat in the
/// number of records: only per-key and per-day totals are kept.
///
/// "Month" and "day" are UTC calendar months and days; `month` is the
/// calendar month that contains [`Summary::now`], and `last_7_days` is the
/// window `(now - 7 days, now]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Summary {
    /// The instant the report is computed for (month-to-date, projections).
    pub now: DateTime<Utc>,
    /// Every call.
    pub total: Bucket,
    /// Calls in the calendar month of `now`.
    pub month: Bucket,
    /// Calls in the 7 days up to `now`.
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
}

impl Summary {
    /// An empty summary as of `now`.
    pub fn new(now: DateTime<Utc>) -> Self {
        Summary {
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
            usage: Usage::default(),
            corrupted_lines: 0,
            corrupt_sources: BTreeSet::new(),
            quarantined_to: BTreeSet::new(),
            first_ts: None,
            last_ts: None,
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
        let cost = r.cost();
        self.total.add(cost);
        if r.ts.year() == self.now.year() && r.ts.month() == self.now.month() {
            self.month.add(cost);
        }
        if r.ts <= self.now && r.ts > self.now - Duration::days(7) {
            self.last_7_days.add(cost);
        }
        add_to(&mut self.by_provider, &r.provider, cost);
        add_to(&mut self.by_model, &r.model, cost);
        add_to(&mut self.by_user, &r.user, cost);
        if let Some(team) = &r.team {
            add_to(&mut self.by_team, team, cost);
        }
        self.by_day.entry(r.ts.date_naive()).or_default().add(cost);
        match r.mode {
            Mode::Batch => self.batch.add(cost),
            _ => self.online.add(cost),
        }
        if r.cached {
            self.cache_hits += 1;
            if let Some(saved) = r.saved_nano_usd {
                self.saved_nano_usd += saved;
            }
        }
        if r.nano_usd.is_none() {
            self.unpriced_calls += 1;
            if let Some(n) = self.unpriced_models.get_mut(&r.model) {
                *n += 1;
            } else {
                self.unpriced_models.insert(r.model.clone(), 1);
            }
        }
        self.usage += r.usage;
        self.first_ts = Some(self.first_ts.map_or(r.ts, |t| t.min(r.ts)));
        self.last_ts = Some(self.last_ts.map_or(r.ts, |t| t.max(r.ts)));
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
        self.now
            .date_naive()
            .with_day(1)
            .unwrap_or(self.now.date_naive())
    }

    /// The spend of each of the `days` UTC days up to and including today,
    /// oldest first (days without calls are zero).
    pub fn daily(&self, days: u32) -> Vec<(NaiveDate, Bucket)> {
        let today = self.now.date_naive();
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
        // (Nov 13 12:00, Nov 20 12:00]: the 15th, 18th and 19th.
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
