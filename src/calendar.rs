//! One calendar: every period costlayer sums spend over is computed here.
//!
//! Budgets ([`Window::period`](crate::budget::Window::period)), the
//! dashboard's summary ("Monthly cost", the daily chart) and the
//! end-of-month [`Projection`](crate::report::Projection) all ask this
//! module where a month or a day begins, so with `budget.time_zone` set the
//! dashboard's month and the monthly budget's month are the same month.
//!
//! A [`Calendar`] says where local days begin: UTC (the default), a fixed
//! offset from UTC, or an IANA time zone with its daylight-saving rules.
//! [`period`] turns a budget [`Window`] (calendar month, all time, a date
//! range, the last N days) and an instant into the [`Period`] that contains
//! it.
//!
//! # Example
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use costlayer::budget::{parse_time_zone, Window};
//! use costlayer::calendar::{self, Calendar};
//!
//! // 12:00 UTC on November 30 is already December 1 in Kiritimati (UTC+14).
//! let now = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
//! let zone = parse_time_zone("Pacific/Kiritimati").unwrap();
//! let cal = Calendar::Zone(zone);
//! assert_eq!(cal.month(now).label, "2026-12");
//! assert_eq!(cal.month_name(now), "December 2026");
//! assert_eq!(cal.month(now).start, Some(Utc.with_ymd_and_hms(2026, 11, 30, 10, 0, 0).unwrap()));
//! // The budget's window in that zone computes the same month.
//! assert_eq!(calendar::period(&Window::monthly_in(zone), now), cal.month(now));
//! // UTC still says November.
//! assert_eq!(Calendar::Utc.month(now).label, "2026-11");
//! ```

use std::fmt;

use chrono::{DateTime, Datelike, Months, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::budget::Window;

/// One period of a window: the span that a budget's spend is summed over
/// right now, and its label (`2026-11`, `all-time`, `2026-01-01..2026-03-01`),
/// which alert keys use so that each period alerts once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Period {
    /// Inclusive start; `None` for all time.
    pub start: Option<DateTime<Utc>>,
    /// Exclusive end; `None` for all time.
    pub end: Option<DateTime<Utc>>,
    /// The label.
    pub label: String,
}

impl Period {
    /// Whether `ts` falls in the period.
    pub fn contains(&self, ts: DateTime<Utc>) -> bool {
        self.start.is_none_or(|s| ts >= s) && self.end.is_none_or(|e| ts < e)
    }
}

/// Where local days (and so months) begin.
///
/// In a time zone a day starts at local midnight converted to UTC; where
/// midnight falls in a daylight-saving gap or overlap, the earliest valid
/// instant of the day is taken.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Calendar {
    /// UTC days (the default).
    #[default]
    Utc,
    /// Days at a fixed offset from UTC, in minutes east (60 for UTC+1). A
    /// fixed offset ignores daylight saving: use [`Calendar::Zone`] for a
    /// place.
    Offset(i32),
    /// Days in an IANA time zone, daylight saving included.
    Zone(Tz),
}

impl Calendar {
    /// The calendar of a time zone, or UTC for `None`.
    pub fn from_zone(zone: Option<Tz>) -> Self {
        zone.map_or(Calendar::Utc, Calendar::Zone)
    }

    /// The local date of the instant `ts`.
    pub fn local_date(&self, ts: DateTime<Utc>) -> NaiveDate {
        match self {
            Calendar::Utc => ts.date_naive(),
            Calendar::Offset(m) => (ts + chrono::Duration::minutes(i64::from(*m))).date_naive(),
            Calendar::Zone(z) => ts.with_timezone(z).date_naive(),
        }
    }

    /// The first instant of the local day `d`, in UTC.
    pub fn day_start(&self, d: NaiveDate) -> DateTime<Utc> {
        match self {
            Calendar::Utc => midnight(d),
            Calendar::Offset(m) => midnight(d) - chrono::Duration::minutes(i64::from(*m)),
            Calendar::Zone(z) => local_midnight(z, d),
        }
    }

    /// The local calendar month containing `now`, labelled `YYYY-MM`.
    pub fn month(&self, now: DateTime<Utc>) -> Period {
        let local = self.local_date(now);
        let first = local.with_day(1).unwrap_or(local);
        let next = first.checked_add_months(Months::new(1)).unwrap_or(first);
        Period {
            start: Some(self.day_start(first)),
            end: Some(self.day_start(next)),
            label: format!("{:04}-{:02}", first.year(), first.month()),
        }
    }

    /// The number of local days in the month containing `now`.
    pub fn days_in_month(&self, now: DateTime<Utc>) -> u32 {
        let local = self.local_date(now);
        let first = local.with_day(1).unwrap_or(local);
        let next = first.checked_add_months(Months::new(1)).unwrap_or(first);
        u32::try_from((next - first).num_days()).unwrap_or(30)
    }

    /// The first local day of the month containing `now`.
    pub fn month_start_date(&self, now: DateTime<Utc>) -> NaiveDate {
        let local = self.local_date(now);
        local.with_day(1).unwrap_or(local)
    }

    /// The month containing `now`, for people: `December 2026`.
    pub fn month_name(&self, now: DateTime<Utc>) -> String {
        self.local_date(now).format("%B %Y").to_string()
    }

    /// The calendar's name: `UTC`, `UTC+01:00` or the IANA name.
    pub fn name(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Calendar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Calendar::Utc | Calendar::Offset(0) => f.write_str("UTC"),
            Calendar::Offset(m) => {
                let sign = if *m < 0 { '-' } else { '+' };
                let a = m.unsigned_abs();
                write!(f, "UTC{sign}{:02}:{:02}", a / 60, a % 60)
            }
            Calendar::Zone(z) => f.write_str(z.name()),
        }
    }
}

/// The period of `window` that contains `now` (for a date range, the range
/// itself, whether or not it contains `now`).
///
/// - Calendar months follow the window's own calendar (UTC, a fixed offset
///   or an IANA zone); the label is the local `YYYY-MM`.
/// - All time has neither start nor end, labelled `all-time`.
/// - A date range runs from 00:00 UTC on its first day to 00:00 UTC on its
///   end date (exclusive), labelled `<start>..<end>`.
/// - The last N days run from 00:00 UTC N−1 days ago to 00:00 UTC
///   tomorrow, labelled `<N>d-to-<today>`.
pub fn period(window: &Window, now: DateTime<Utc>) -> Period {
    match window {
        Window::Monthly { utc_offset_minutes } => Calendar::Offset(*utc_offset_minutes).month(now),
        Window::MonthlyIn { zone } => Calendar::Zone(*zone).month(now),
        Window::Total => Period {
            start: None,
            end: None,
            label: "all-time".to_owned(),
        },
        Window::Range { start, end } => Period {
            start: Some(midnight(*start)),
            end: Some(midnight(*end)),
            label: format!("{start}..{end}"),
        },
        Window::RollingDays(n) => {
            let today = now.date_naive();
            let tomorrow = today.succ_opt().unwrap_or(today);
            let end = midnight(tomorrow);
            Period {
                start: Some(end - chrono::Duration::days(i64::from(n.get()))),
                end: Some(end),
                label: format!("{}d-to-{today}", n.get()),
            }
        }
    }
}

/// 00:00 UTC on `d`.
pub(crate) fn midnight(d: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&d.and_time(chrono::NaiveTime::MIN))
}

/// The first instant of local day `d` in `zone`, in UTC: local midnight, or
/// where midnight is repeated (an overlap) its earlier occurrence, or where
/// it is skipped (a gap) the transition that skips it, the earliest instant
/// whose local date is `d`.
fn local_midnight(zone: &Tz, d: NaiveDate) -> DateTime<Utc> {
    let naive = d.and_time(chrono::NaiveTime::MIN);
    if let Some(t) = zone.from_local_datetime(&naive).earliest() {
        return t.with_timezone(&Utc);
    }
    // A gap: midnight read with the offset after the transition is at or
    // before it, read with the offset before it at or after it, and local
    // time only moves forward in between, so binary-search the first second
    // whose local time is not before midnight.
    let as_utc = naive.and_utc();
    let offset = |t: DateTime<Utc>| {
        use chrono::Offset;
        i64::from(
            zone.offset_from_utc_datetime(&t.naive_utc())
                .fix()
                .local_minus_utc(),
        )
    };
    let day = chrono::Duration::days(1);
    let (before, after) = (offset(as_utc - day), offset(as_utc + day));
    let ts = as_utc.timestamp();
    let (mut lo, mut hi) = (ts - before.max(after), ts - before.min(after));
    let local_at = |secs: i64| -> Option<NaiveDateTime> {
        DateTime::from_timestamp(secs, 0).map(|t| t.with_timezone(zone).naive_local())
    };
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match local_at(mid) {
            Some(l) if l >= naive => hi = mid,
            Some(_) => lo = mid + 1,
            None => break,
        }
    }
    DateTime::from_timestamp(lo, 0).unwrap_or_else(|| midnight(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0)
            .single()
            .expect("time")
    }

    #[test]
    fn calendars_agree_with_budget_windows() {
        let now = t(2026, 11, 30, 12);
        for (cal, w) in [
            (Calendar::Utc, Window::monthly()),
            (Calendar::Offset(120), Window::monthly_at_offset(120)),
            (
                Calendar::Zone(Tz::Pacific__Kiritimati),
                Window::monthly_in(Tz::Pacific__Kiritimati),
            ),
            (
                Calendar::Zone(Tz::America__New_York),
                Window::monthly_in(Tz::America__New_York),
            ),
        ] {
            assert_eq!(cal.month(now), period(&w, now), "{cal}");
        }
        let k = Calendar::Zone(Tz::Pacific__Kiritimati);
        assert_eq!(
            k.local_date(now),
            NaiveDate::from_ymd_opt(2026, 12, 1).expect("d")
        );
        assert_eq!(k.days_in_month(now), 31);
        assert_eq!(Calendar::Utc.days_in_month(now), 30);
    }

    #[test]
    fn names() {
        assert_eq!(Calendar::Utc.name(), "UTC");
        assert_eq!(Calendar::Offset(-330).name(), "UTC-05:30");
        assert_eq!(Calendar::Zone(Tz::Europe__Berlin).name(), "Europe/Berlin");
        assert_eq!(Calendar::from_zone(None), Calendar::Utc);
    }
}
