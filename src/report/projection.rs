//! [`Projection`]: what this month will cost.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::calendar::Calendar;
use crate::Money;

use super::Summary;

const SECONDS_PER_DAY: i64 = 86_400;

/// The end-of-month estimate, two ways.
///
/// - [`Projection::linear`]: month-to-date spend scaled by the elapsed
///   fraction of the month (`mtd × month length / elapsed`), to the second.
///   Stable late in the month, noisy on its first days.
/// - [`Projection::seven_day`]: month-to-date spend plus the last 7 days'
///   average rate over the rest of the month. Follows recent changes in
///   usage.
///
/// Both are exact integer arithmetic in nano-dollars, rounded half up once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Projection {
    /// Spend so far this month.
    pub month_to_date: Money,
    /// Linear extrapolation of month-to-date by elapsed time.
    pub linear: Money,
    /// Month-to-date plus the 7-day daily rate times the days left.
    pub seven_day: Money,
    /// The average daily spend of the last 7 days.
    pub daily_rate_7d: Money,
    /// Days in the month.
    pub days_in_month: u32,
    /// The share of the month elapsed, in basis points.
    pub elapsed_bp: i64,
}

impl Projection {
    /// Label of [`Projection::linear`] for output.
    pub const LINEAR_LABEL: &'static str = "linear, from month-to-date";
    /// Label of [`Projection::seven_day`] for output.
    pub const SEVEN_DAY_LABEL: &'static str = "from the last 7 days' daily rate";

    /// Projects the month of [`Summary::now`] (in the summary's calendar)
    /// from `summary`.
    pub fn from_summary(summary: &Summary) -> Self {
        Self::compute_in(
            summary.calendar,
            summary.now,
            summary.month.nano_usd,
            summary.last_7_days.nano_usd,
        )
    }

    /// Projects the month of `now` from a month-to-date spend and the spend
    /// of the last 7 days.
    ///
    /// ```
    /// use chrono::{TimeZone, Utc};
    /// use costlayer::report::Projection;
    /// use costlayer::Money;
    ///
    /// let usd = |s: &str| s.parse::<Money>().unwrap();
    /// // 10 of November's 30 days have elapsed.
    /// let now = Utc.with_ymd_and_hms(2026, 11, 11, 0, 0, 0).unwrap();
    /// let p = Projection::compute(now, usd("10"), usd("14"));
    /// assert_eq!(p.linear, usd("30"));
    /// assert_eq!(p.daily_rate_7d, usd("2"));
    /// assert_eq!(p.seven_day, usd("50")); // 10 + 20 days × $2
    /// ```
    pub fn compute(now: DateTime<Utc>, month_to_date: Money, last_7_days: Money) -> Self {
        Self::compute_in(Calendar::Utc, now, month_to_date, last_7_days)
    }

    /// [`Projection::compute`] for the month of `now` in `calendar` (a
    /// month in a time zone starts at local midnight on the 1st; a month
    /// with a daylight-saving change is an hour shorter or longer).
    ///
    /// ```
    /// use chrono::{TimeZone, Utc};
    /// use costlayer::calendar::Calendar;
    /// use costlayer::report::Projection;
    /// use costlayer::Money;
    ///
    /// // 12:00 UTC on Nov 30 is 02:00 on Dec 1 in Kiritimati (UTC+14).
    /// let now = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
    /// let p = Projection::compute_in(Calendar::Zone(chrono_tz::Tz::Pacific__Kiritimati), now, Money::ZERO, Money::ZERO);
    /// assert_eq!(p.days_in_month, 31); // December
    /// ```
    pub fn compute_in(
        calendar: Calendar,
        now: DateTime<Utc>,
        month_to_date: Money,
        last_7_days: Money,
    ) -> Self {
        let month = calendar.month(now);
        let days = calendar.days_in_month(now);
        let (start, month_secs) = match (month.start, month.end) {
            (Some(s), Some(e)) => (s, i128::from((e - s).num_seconds())),
            _ => (now, i128::from(days) * i128::from(SECONDS_PER_DAY)),
        };
        let elapsed = i128::from((now - start).num_seconds()).clamp(0, month_secs);
        let remaining = month_secs - elapsed;
        let mtd = i128::from(month_to_date.nanos());
        let last7 = i128::from(last_7_days.nanos());
        let linear = if elapsed == 0 {
            mtd
        } else {
            div_round(mtd * month_secs, elapsed)
        };
        let week_secs = 7 * i128::from(SECONDS_PER_DAY);
        let seven_day = mtd + div_round(last7 * remaining, week_secs);
        Projection {
            month_to_date,
            linear: money(linear),
            seven_day: money(seven_day),
            daily_rate_7d: money(div_round(last7, 7)),
            days_in_month: days,
            elapsed_bp: if month_secs == 0 {
                0
            } else {
                (elapsed * 10_000 / month_secs) as i64
            },
        }
    }
}

/// `n / d` rounded half away from zero (`d > 0`).
fn div_round(n: i128, d: i128) -> i128 {
    if n >= 0 {
        (n + d / 2) / d
    } else {
        -((-n + d / 2) / d)
    }
}

fn money(n: i128) -> Money {
    Money::from_nanos(n.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn usd(s: &str) -> Money {
        s.parse().unwrap()
    }

    #[test]
    fn first_instant_of_the_month_projects_month_to_date() {
        let now = Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap();
        let p = Projection::compute(now, usd("3"), usd("7"));
        assert_eq!(p.linear, usd("3"));
        assert_eq!(p.days_in_month, 28);
        assert_eq!(p.seven_day, usd("31")); // 3 + 28 days × $1
        assert_eq!(p.elapsed_bp, 0);
    }

    #[test]
    fn leap_february_and_december_have_the_right_length() {
        let feb = Projection::compute(
            Utc.with_ymd_and_hms(2028, 2, 15, 0, 0, 0).unwrap(),
            usd("14"),
            Money::ZERO,
        );
        assert_eq!(feb.days_in_month, 29);
        assert_eq!(feb.linear, usd("29"));
        let dec = Projection::compute(
            Utc.with_ymd_and_hms(2026, 12, 31, 0, 0, 0).unwrap(),
            usd("30"),
            Money::ZERO,
        );
        assert_eq!(dec.days_in_month, 31);
        assert_eq!(dec.linear, usd("31"));
        assert_eq!(dec.seven_day, usd("30"));
    }

    #[test]
    fn rounding_is_half_up_once() {
        // 1 nano over a third of a 30-day month -> 3 nanos exactly.
        let now = Utc.with_ymd_and_hms(2026, 11, 11, 0, 0, 0).unwrap();
        let p = Projection::compute(now, Money::from_nanos(1), Money::from_nanos(10));
        assert_eq!(p.linear, Money::from_nanos(3));
        assert_eq!(p.daily_rate_7d, Money::from_nanos(1)); // 10/7 = 1.43
        assert_eq!(p.seven_day, Money::from_nanos(1 + 29)); // 10 × 20/7 = 28.57
        assert_eq!(p.elapsed_bp, 3_333);
    }
}
