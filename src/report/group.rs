//! A group of records summed by a backend (an SQL `GROUP BY`), folded into
//! a [`DashboardPass`] as if each record had been pushed.

use chrono::{DateTime, Datelike, NaiveDate, Utc};

use super::{Bucket, DashboardPass};
use crate::{Mode, Money, Usage};

/// Records sharing every key below, with their sums.
#[derive(Debug, Clone)]
pub(crate) struct Group<'a> {
    pub(crate) provider: String,
    pub(crate) model: String,
    pub(crate) user: String,
    pub(crate) team: Option<String>,
    /// The UTC day.
    pub(crate) day: NaiveDate,
    pub(crate) mode: Mode,
    pub(crate) cached: bool,
    /// `nano_usd` is null.
    pub(crate) unpriced: bool,
    /// How far the cost can be trusted.
    pub(crate) status: crate::CostStatus,
    /// In the 7-day window `[week_start, now]` (`week_start`: `now - 7
    /// days` rounded down to the whole second).
    pub(crate) in_week: bool,
    /// Selected by the pass's filter.
    pub(crate) in_filter: bool,
    /// In each budget's period (budget order).
    pub(crate) in_period: &'a [bool],
    pub(crate) calls: u64,
    pub(crate) nano_usd: Money,
    pub(crate) saved_nano_usd: Money,
    pub(crate) usage: Usage,
    pub(crate) first_ts: DateTime<Utc>,
    pub(crate) last_ts: DateTime<Utc>,
}

fn add(map: &mut std::collections::BTreeMap<String, Bucket>, key: &str, b: Bucket) {
    if let Some(x) = map.get_mut(key) {
        x.merge(b);
    } else {
        map.insert(key.to_owned(), b);
    }
}

impl DashboardPass {
    /// Adds a group: exactly what pushing each of its records would add.
    pub(crate) fn push_group(&mut self, g: &Group<'_>) {
        let bucket = Bucket {
            calls: g.calls,
            nano_usd: g.nano_usd,
        };
        let (summary, tallies) = self.parts_mut();
        for (t, _) in tallies.iter_mut().zip(g.in_period).filter(|(_, &p)| p) {
            if t.budget()
                .scope
                .matches(&g.user, g.team.as_deref(), &g.provider, &g.model)
            {
                t.add_spent(g.nano_usd);
            }
        }
        if !g.in_filter {
            return;
        }
        let s = summary;
        s.total.merge(bucket);
        if g.day.year() == s.now.year() && g.day.month() == s.now.month() {
            s.month.merge(bucket);
        }
        if g.in_week {
            s.last_7_days.merge(bucket);
        }
        add(&mut s.by_provider, &g.provider, bucket);
        add(&mut s.by_model, &g.model, bucket);
        add(&mut s.by_user, &g.user, bucket);
        if let Some(team) = &g.team {
            add(&mut s.by_team, team, bucket);
        }
        s.by_day.entry(g.day).or_default().merge(bucket);
        match g.mode {
            Mode::Batch => s.batch.merge(bucket),
            _ => s.online.merge(bucket),
        }
        if g.cached {
            s.cache_hits += g.calls;
            s.saved_nano_usd += g.saved_nano_usd;
        }
        match g.status {
            crate::CostStatus::Incomplete => s.incomplete.merge(bucket),
            crate::CostStatus::Estimated => s.estimated.merge(bucket),
            _ => {}
        }
        if g.unpriced {
            s.unpriced_calls += g.calls;
            *s.unpriced_models.entry(g.model.clone()).or_default() += g.calls;
        }
        s.usage += g.usage;
        s.first_ts = Some(s.first_ts.map_or(g.first_ts, |t| t.min(g.first_ts)));
        s.last_ts = Some(s.last_ts.map_or(g.last_ts, |t| t.max(g.last_ts)));
    }
}
