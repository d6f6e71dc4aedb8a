//! Budgets: a limit over a window, for a scope, with alert thresholds and an
//! action.
//!
//! A [`Budget`] has a name, a limit ([`Money`]), a [`Window`] (calendar
//! month in UTC, at a fixed offset or in an IANA time zone such as
//! `Europe/Berlin`; all time; a fixed date range; the last N days), a [`Scope`] (all
//! spend, or one user, team, provider or model), [`Threshold`]s (80% and
//! 100% unless told otherwise), an [`Action`] (alert only, or block calls
//! that would cross the limit) and a [`Severity`] for its alerts.
//!
//! The [`CostTracker`](crate::tracker::CostTracker) keeps each budget's
//! spend and reports it as a [`BudgetStatus`] (spent, remaining, percent,
//! projection, projected run-out date).
//!
//! # Example
//!
//! ```
//! use chrono::NaiveDate;
//! use costlayer::budget::{Action, Budget, Scope, Severity, Threshold, Window};
//! use costlayer::Money;
//!
//! let usd = |s: &str| s.parse::<Money>().unwrap();
//!
//! // $50 a month for gpt-4o, refusing calls that would cross it.
//! let b = Budget::monthly(usd("50"))
//!     .name("gpt-4o-monthly")
//!     .scope(Scope::Model("gpt-4o".into()))
//!     .thresholds([Threshold::percent(50), Threshold::percent(90)])
//!     .block();
//! assert!(b.validate().is_ok());
//! assert_eq!(b.action, Action::Block);
//!
//! // The seed's three budgets.
//! let seed = Budget::seed_defaults(NaiveDate::from_ymd_opt(2026, 1, 1).unwrap());
//! assert_eq!(seed.len(), 3);
//! assert_eq!(seed[2].severity, Severity::Critical);
//! assert_eq!(seed[2].window, Window::range(
//!     NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
//!     NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(),
//! ));
//!
//! // Invalid budgets are refused with a message that says what to do.
//! let err = Budget::monthly(Money::ZERO).validate().unwrap_err();
//! assert!(err.to_string().contains("must be above $0"));
//! ```

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Months, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An IANA time zone (re-exported from `chrono-tz`), for
/// [`Window::monthly_in`]: `costlayer::budget::Tz::Europe__Berlin`, or
/// [`parse_time_zone`]`("Europe/Berlin")`.
pub use chrono_tz::Tz;

use crate::ledger::{CostRecord, ScanFilter};
use crate::Money;

/// Everything that can be wrong with a budget or its textual form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BudgetError {
    /// The limit is zero or negative.
    #[error("budget `{budget}` has a limit of {limit}: a limit must be above $0. Set a positive amount such as 200 or 12.50")]
    InvalidLimit {
        /// The budget.
        budget: String,
        /// The rejected limit.
        limit: Money,
    },
    /// A threshold is not in (0, 10] (as a fraction of the limit).
    #[error("budget `{budget}` has threshold {threshold}: thresholds must be above 0% and at most 1000% of the limit (for example 0.8 or 80%)")]
    InvalidThreshold {
        /// The budget.
        budget: String,
        /// The rejected threshold.
        threshold: Threshold,
    },
    /// A date range that contains no day.
    #[error("budget `{budget}` has an empty window {start}..{end}: the end date must be after the start date")]
    EmptyWindow {
        /// The budget.
        budget: String,
        /// The first day.
        start: NaiveDate,
        /// The day after the last.
        end: NaiveDate,
    },
    /// A monthly window with a UTC offset of a day or more.
    #[error("budget `{budget}` has a UTC offset of {minutes} minutes: use an offset strictly between -24h and +24h (for example 60 for UTC+1)")]
    InvalidOffset {
        /// The budget.
        budget: String,
        /// The rejected offset.
        minutes: i32,
    },
    /// A time-zone name that is not in the IANA database.
    #[error("`{name}` is not a known time zone: use an IANA name such as Europe/Berlin, America/New_York or UTC{}", suggestion.as_ref().map(|s| format!(" (did you mean {s}?)")).unwrap_or_default())]
    UnknownTimeZone {
        /// The rejected name.
        name: String,
        /// The closest known name, if one is close.
        suggestion: Option<String>,
    },
    /// The name is empty or contains `:` or `#` (used in alert keys).
    #[error("budget name `{name}` is not valid: use a non-empty name without `:`, `#` or control characters, such as `monthly` or `team-ml`")]
    InvalidName {
        /// The rejected name.
        name: String,
    },
    /// Two budgets with one name (their alerts would be confused).
    #[error("two budgets are named `{name}`: give each budget its own name")]
    DuplicateName {
        /// The repeated name.
        name: String,
    },
    /// A string that is not a threshold, scope, window, action or severity.
    #[error("`{input}` is not a valid {what}: expected {expected}")]
    Parse {
        /// The rejected input.
        input: String,
        /// What was being parsed (`threshold`, `scope`, ...).
        what: &'static str,
        /// What is accepted.
        expected: &'static str,
    },
}

/// An alert threshold, as a share of the budget's limit, in basis points
/// (1/100 of a percent): `Threshold::percent(80)` is 8,000 basis points.
///
/// A threshold is crossed when `spent ≥ limit × threshold`, compared exactly
/// in integers: $160.00 of $200 crosses 80%, $159.999999999 does not.
/// Valid thresholds are in (0, 10] as a fraction, i.e. 1 to 100,000 basis
/// points; [`Budget::validate`] checks it.
///
/// Parses from `"0.8"`, `"80%"`, `"1"`, `"1.5"`; displays as `"80%"`.
///
/// ```
/// use costlayer::budget::Threshold;
/// use costlayer::Money;
/// let t: Threshold = "0.8".parse().unwrap();
/// assert_eq!(t, Threshold::percent(80));
/// assert_eq!("80%".parse::<Threshold>().unwrap(), t);
/// assert_eq!(t.to_string(), "80%");
/// let limit = Money::from_usd(200).unwrap();
/// assert!(t.is_crossed(Money::from_usd(160).unwrap(), limit));
/// assert!(!t.is_crossed(Money::from_usd(160).unwrap() - Money::from_nanos(1), limit));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Threshold(u32);

impl Threshold {
    /// `p` percent of the limit.
    pub const fn percent(p: u32) -> Self {
        Threshold(p.saturating_mul(100))
    }

    /// A threshold in basis points (8,000 = 80%).
    pub const fn from_basis_points(bp: u32) -> Self {
        Threshold(bp)
    }

    /// The threshold in basis points.
    pub const fn basis_points(self) -> u32 {
        self.0
    }

    /// Whether the threshold is in (0, 10] as a fraction.
    pub const fn is_valid(self) -> bool {
        self.0 > 0 && self.0 <= 100_000
    }

    /// The amount of `limit` at which the threshold is crossed (rounded up to
    /// the nano-dollar, so `spent ≥ amount` is the same test as
    /// [`Threshold::is_crossed`]).
    pub fn amount_of(self, limit: Money) -> Money {
        let x = limit.nanos() as i128 * self.0 as i128;
        let n = x.div_euclid(10_000) + i128::from(x.rem_euclid(10_000) != 0);
        Money::from_nanos(n.clamp(i64::MIN as i128, i64::MAX as i128) as i64)
    }

    /// Whether `spent` has reached this share of `limit` (exact).
    pub fn is_crossed(self, spent: Money, limit: Money) -> bool {
        spent.nanos() as i128 * 10_000 >= limit.nanos() as i128 * self.0 as i128
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, frac) = (self.0 / 100, self.0 % 100);
        if frac == 0 {
            write!(f, "{whole}%")
        } else if frac % 10 == 0 {
            write!(f, "{whole}.{}%", frac / 10)
        } else {
            write!(f, "{whole}.{frac:02}%")
        }
    }
}

impl FromStr for Threshold {
    type Err = BudgetError;

    /// `"0.8"` (a fraction) or `"80%"` (a percentage), at most four
    /// significant decimals of a fraction (one basis point).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || BudgetError::Parse {
            input: s.to_owned(),
            what: "threshold",
            expected: "a fraction such as 0.8 or a percentage such as 80%",
        };
        let t = s.trim();
        let (num, scale_decimals) = match t.strip_suffix('%') {
            Some(p) => (p.trim(), 2u32), // percent: bp = value × 100
            None => (t, 4u32),           // fraction: bp = value × 10,000
        };
        let (whole, frac) = num.split_once('.').unwrap_or((num, ""));
        if whole.is_empty() && frac.is_empty()
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(err());
        }
        let frac = frac.trim_end_matches('0');
        if frac.len() > scale_decimals as usize {
            return Err(err());
        }
        let whole: u64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| err())?
        };
        let frac_v: u64 = if frac.is_empty() {
            0
        } else {
            frac.parse::<u64>().map_err(|_| err())? * 10u64.pow(scale_decimals - frac.len() as u32)
        };
        let bp = whole
            .checked_mul(10u64.pow(scale_decimals))
            .and_then(|w| w.checked_add(frac_v))
            .ok_or_else(err)?;
        u32::try_from(bp).map(Threshold).map_err(|_| err())
    }
}

impl Serialize for Threshold {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Threshold {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The default thresholds: 80% and 100%.
pub const DEFAULT_THRESHOLDS: [Threshold; 2] = [Threshold::percent(80), Threshold::percent(100)];

/// The time span a budget's limit covers.
///
/// A calendar month is counted in UTC ([`Window::monthly`]), at a fixed
/// offset from UTC ([`Window::monthly_at_offset`]), or in an IANA time zone
/// with its daylight-saving rules ([`Window::monthly_in`]). In a time zone
/// the month starts at local midnight on the 1st, converted to UTC; if that
/// midnight falls in a daylight-saving gap or overlap, the earliest valid
/// instant of the 1st is taken. The period label is the local `YYYY-MM`.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use costlayer::budget::Window;
///
/// // 23:30 UTC on March 31 is 01:30 on April 1 in Berlin (UTC+2 in summer).
/// let late = Utc.with_ymd_and_hms(2026, 3, 31, 23, 30, 0).unwrap();
/// let berlin: Window = "monthly:Europe/Berlin".parse().unwrap();
/// let p = berlin.period(late);
/// assert_eq!(p.label, "2026-04");
/// assert_eq!(p.start, Some(Utc.with_ymd_and_hms(2026, 3, 31, 22, 0, 0).unwrap()));
/// assert_eq!(Window::monthly().period(late).label, "2026-03");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Window {
    /// The calendar month, in UTC shifted by a fixed offset (minutes east of
    /// UTC; 0 for UTC). A fixed offset does not follow daylight saving time:
    /// use [`Window::MonthlyIn`] for a place.
    Monthly {
        /// Minutes east of UTC (60 for UTC+1, -300 for UTC-5).
        utc_offset_minutes: i32,
    },
    /// The calendar month in an IANA time zone, following its
    /// daylight-saving transitions: it runs from local midnight on the 1st
    /// to local midnight on the next 1st (the earliest valid instant of the
    /// 1st where midnight is skipped or repeated).
    MonthlyIn {
        /// The zone, such as `chrono_tz::Europe::Berlin`.
        zone: Tz,
    },
    /// All time.
    Total,
    /// From `start` (inclusive) to `end` (exclusive), both at 00:00 UTC.
    Range {
        /// The first day.
        start: NaiveDate,
        /// The day after the last.
        end: NaiveDate,
    },
    /// Today (UTC) and the N−1 days before it. Its period moves once a day,
    /// so its alerts fire at most once a day per threshold.
    RollingDays(NonZeroU32),
}

impl Window {
    /// The calendar month in UTC.
    pub const fn monthly() -> Self {
        Window::Monthly {
            utc_offset_minutes: 0,
        }
    }

    /// The calendar month at a fixed offset from UTC, in minutes (60 = UTC+1).
    /// A fixed offset ignores daylight saving time; see [`Window::monthly_in`].
    pub const fn monthly_at_offset(utc_offset_minutes: i32) -> Self {
        Window::Monthly { utc_offset_minutes }
    }

    /// The calendar month in the IANA time zone `zone`, daylight saving
    /// included. [`parse_time_zone`] turns a name into a zone.
    ///
    /// ```
    /// use costlayer::budget::{parse_time_zone, Window};
    ///
    /// let w = Window::monthly_in(parse_time_zone("America/New_York").unwrap());
    /// assert_eq!(w.to_string(), "monthly (America/New_York)");
    /// ```
    pub const fn monthly_in(zone: Tz) -> Self {
        Window::MonthlyIn { zone }
    }

    /// From `start` (inclusive) to `end` (exclusive).
    pub const fn range(start: NaiveDate, end: NaiveDate) -> Self {
        Window::Range { start, end }
    }

    /// The last `days` days, today included.
    pub const fn rolling_days(days: NonZeroU32) -> Self {
        Window::RollingDays(days)
    }

    /// The period of this window that contains `now` (for a date range, the
    /// range itself, whether or not it contains `now`).
    pub fn period(&self, now: DateTime<Utc>) -> Period {
        match self {
            Window::Monthly { utc_offset_minutes } => {
                let off = chrono::Duration::minutes(i64::from(*utc_offset_minutes));
                let local = (now + off).date_naive();
                let first = local.with_day(1).unwrap_or(local);
                let next = first.checked_add_months(Months::new(1)).unwrap_or(first);
                Period {
                    start: Some(midnight(first) - off),
                    end: Some(midnight(next) - off),
                    label: format!("{:04}-{:02}", first.year(), first.month()),
                }
            }
            Window::MonthlyIn { zone } => {
                let local = now.with_timezone(zone).date_naive();
                let first = local.with_day(1).unwrap_or(local);
                let next = first.checked_add_months(Months::new(1)).unwrap_or(first);
                Period {
                    start: Some(local_midnight(zone, first)),
                    end: Some(local_midnight(zone, next)),
                    label: format!("{:04}-{:02}", first.year(), first.month()),
                }
            }
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
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Window::Monthly {
                utc_offset_minutes: 0,
            } => f.write_str("monthly"),
            Window::Monthly { utc_offset_minutes } => {
                write!(f, "monthly (UTC{utc_offset_minutes:+} min)")
            }
            Window::MonthlyIn { zone } => write!(f, "monthly ({})", zone.name()),
            Window::Total => f.write_str("total"),
            Window::Range { start, end } => write!(f, "{start}..{end}"),
            Window::RollingDays(n) => write!(f, "rolling {n} days"),
        }
    }
}

impl FromStr for Window {
    type Err = BudgetError;

    /// `monthly` (UTC), `monthly:<IANA zone>` (`monthly:Europe/Berlin`),
    /// `total`, `rolling:7d` (or `rolling:7`), or `2026-01-01..2026-03-01`
    /// (end exclusive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || {
            BudgetError::Parse {
            input: s.to_owned(),
            what: "window",
            expected: "monthly, monthly:<time zone> (monthly:Europe/Berlin), total, rolling:<days>d, or <start>..<end> dates (2026-01-01..2026-03-01)",
        }
        };
        let t = s.trim();
        match t {
            "monthly" | "month" => return Ok(Window::monthly()),
            "total" | "all" | "all-time" => return Ok(Window::Total),
            _ => {}
        }
        if let Some(zone) = t
            .strip_prefix("monthly:")
            .or_else(|| t.strip_prefix("month:"))
        {
            return parse_time_zone(zone).map(Window::monthly_in);
        }
        if let Some(days) = t.strip_prefix("rolling:") {
            let days = days.trim().trim_end_matches('d');
            let n: u32 = days.parse().map_err(|_| err())?;
            return NonZeroU32::new(n).map(Window::RollingDays).ok_or_else(err);
        }
        if let Some((a, b)) = t.split_once("..") {
            let a = NaiveDate::parse_from_str(a.trim(), "%Y-%m-%d").map_err(|_| err())?;
            let b = NaiveDate::parse_from_str(b.trim(), "%Y-%m-%d").map_err(|_| err())?;
            return Ok(Window::range(a, b));
        }
        Err(err())
    }
}

fn midnight(d: NaiveDate) -> DateTime<Utc> {
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

/// Parses an IANA time-zone name (`Europe/Berlin`, `America/New_York`,
/// `UTC`), exactly as the IANA database spells it.
///
/// ```
/// use costlayer::budget::{parse_time_zone, BudgetError};
///
/// assert_eq!(parse_time_zone("Europe/Berlin").unwrap().name(), "Europe/Berlin");
/// let err = parse_time_zone("Europe/Berln").unwrap_err();
/// assert!(matches!(err, BudgetError::UnknownTimeZone { .. }));
/// assert!(err.to_string().contains("did you mean Europe/Berlin?"));
/// ```
///
/// # Errors
///
/// [`BudgetError::UnknownTimeZone`], with the closest known name when one
/// is close.
pub fn parse_time_zone(name: &str) -> Result<Tz, BudgetError> {
    let name = name.trim();
    name.parse::<Tz>().map_err(|_| {
        let lower = name.to_ascii_lowercase();
        let suggestion = chrono_tz::TZ_VARIANTS
            .iter()
            .map(|z| {
                (
                    strsim::jaro_winkler(&lower, &z.name().to_ascii_lowercase()),
                    z,
                )
            })
            .filter(|(score, _)| *score >= 0.9)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, z)| z.name().to_owned());
        BudgetError::UnknownTimeZone {
            name: name.to_owned(),
            suggestion,
        }
    })
}

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

/// Whose spend a budget counts.
///
/// Displays and parses as `all`, `user:alice`, `team:ml`,
/// `provider:openai`, `model:gpt-4o`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scope {
    /// Everything in the ledger (every user sharing it).
    #[default]
    All,
    /// One user.
    User(String),
    /// One team.
    Team(String),
    /// One provider (`openai`, `anthropic`, `gemini`, ...).
    Provider(String),
    /// One model (matched on its canonical name: dated ids count too).
    Model(String),
}

impl Scope {
    /// Whether a call with this attribution counts toward the scope.
    pub fn matches(&self, user: &str, team: Option<&str>, provider: &str, model: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::User(u) => u == user,
            Scope::Team(t) => team == Some(t.as_str()),
            Scope::Provider(p) => crate::pricing::same_provider(p, provider),
            Scope::Model(m) => crate::pricing::same_model(m, model),
        }
    }

    /// Whether a ledger record counts toward the scope.
    pub fn matches_record(&self, r: &CostRecord) -> bool {
        self.matches(&r.user, r.team.as_deref(), &r.provider, &r.model)
    }

    /// The ledger filter selecting this scope's records.
    pub fn filter(&self) -> ScanFilter {
        let mut f = ScanFilter::default();
        match self {
            Scope::All => {}
            Scope::User(u) => f.users.push(u.clone()),
            Scope::Team(t) => f.team = Some(t.clone()),
            Scope::Provider(p) => f.providers.push(p.clone()),
            Scope::Model(m) => f.models.push(m.clone()),
        }
        f
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::All => f.write_str("all"),
            Scope::User(u) => write!(f, "user:{u}"),
            Scope::Team(t) => write!(f, "team:{t}"),
            Scope::Provider(p) => write!(f, "provider:{p}"),
            Scope::Model(m) => write!(f, "model:{m}"),
        }
    }
}

impl FromStr for Scope {
    type Err = BudgetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || BudgetError::Parse {
            input: s.to_owned(),
            what: "scope",
            expected: "all, user:<name>, team:<name>, provider:<name> or model:<id>",
        };
        let t = s.trim();
        if t == "all" {
            return Ok(Scope::All);
        }
        let (kind, value) = t.split_once(':').ok_or_else(err)?;
        let value = value.trim();
        if value.is_empty() {
            return Err(err());
        }
        let v = value.to_owned();
        match kind.trim() {
            "user" => Ok(Scope::User(v)),
            "team" => Ok(Scope::Team(v)),
            "provider" => Ok(Scope::Provider(v)),
            "model" => Ok(Scope::Model(v)),
            _ => Err(err()),
        }
    }
}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What a budget does when a call would cross it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Action {
    /// Send alerts; never refuse a call.
    #[default]
    AlertOnly,
    /// Refuse a call whose worst-case cost would cross the limit
    /// ([`Error::BudgetExceeded`](crate::Error::BudgetExceeded)), and alert.
    Block,
}

impl FromStr for Action {
    type Err = BudgetError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "alert" | "alert_only" | "alert-only" => Ok(Action::AlertOnly),
            "block" => Ok(Action::Block),
            _ => Err(BudgetError::Parse {
                input: s.to_owned(),
                what: "action",
                expected: "alert or block",
            }),
        }
    }
}

/// How loud a budget's alerts are.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Severity {
    /// For information.
    Info,
    /// Worth a look (the default).
    #[default]
    Warning,
    /// Act now.
    Critical,
}

impl Severity {
    /// `"info"`, `"warning"` or `"critical"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = BudgetError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "info" => Ok(Severity::Info),
            "warning" | "warn" => Ok(Severity::Warning),
            "critical" => Ok(Severity::Critical),
            _ => Err(BudgetError::Parse {
                input: s.to_owned(),
                what: "severity",
                expected: "info, warning or critical",
            }),
        }
    }
}

/// A spending limit over a window, for a scope.
///
/// Built with a constructor ([`Budget::monthly`], [`Budget::total`],
/// [`Budget::range`], [`Budget::rolling_days`]) and chained setters;
/// checked by [`Budget::validate`] (the tracker's `build()` calls it).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Budget {
    /// The name, unique per tracker (used in alert keys and messages).
    pub name: String,
    /// The limit.
    pub limit: Money,
    /// The window.
    pub window: Window,
    /// Whose spend counts.
    pub scope: Scope,
    /// Alert thresholds as shares of the limit.
    pub thresholds: Vec<Threshold>,
    /// Alert only, or block.
    pub action: Action,
    /// The severity of its alerts.
    pub severity: Severity,
    /// Also alert (once per period) when the projected end-of-period spend
    /// first exceeds the limit.
    pub alert_on_projection: bool,
}

impl Budget {
    /// A budget named `name` with `limit` over `window`: scope all,
    /// thresholds 80% and 100%, alert only, severity warning.
    pub fn new(name: impl Into<String>, limit: Money, window: Window) -> Self {
        Budget {
            name: name.into(),
            limit,
            window,
            scope: Scope::All,
            thresholds: DEFAULT_THRESHOLDS.to_vec(),
            action: Action::AlertOnly,
            severity: Severity::Warning,
            alert_on_projection: false,
        }
    }

    /// A calendar-month (UTC) budget named `monthly`. For a time zone, use
    /// [`Budget::new`] with [`Window::monthly_in`].
    pub fn monthly(limit: Money) -> Self {
        Self::new("monthly", limit, Window::monthly())
    }

    /// An all-time budget named `total`.
    pub fn total(limit: Money) -> Self {
        Self::new("total", limit, Window::Total)
    }

    /// A budget over the dates `start` (inclusive) to `end` (exclusive).
    pub fn range(name: impl Into<String>, limit: Money, start: NaiveDate, end: NaiveDate) -> Self {
        Self::new(name, limit, Window::range(start, end))
    }

    /// A budget over the last `days` days, today included.
    pub fn rolling_days(name: impl Into<String>, limit: Money, days: NonZeroU32) -> Self {
        Self::new(name, limit, Window::rolling_days(days))
    }

    /// The seed's defaults, as three budgets (alert only):
    ///
    /// | name | limit | window | thresholds | severity |
    /// |---|---|---|---|---|
    /// | `total` | $1,000 | all time | 80% ($800) | warning |
    /// | `monthly` | $200 | calendar month | 80% ($160) | warning |
    /// | `month-1-2` | $800 | `start` to `start` + 2 months | 100% ($800) | critical |
    pub fn seed_defaults(start: NaiveDate) -> Vec<Budget> {
        let usd = |d| Money::from_usd(d).unwrap_or(Money::MAX);
        let end = start.checked_add_months(Months::new(2)).unwrap_or(start);
        vec![
            Budget::total(usd(1_000)).thresholds([Threshold::percent(80)]),
            Budget::monthly(usd(200)).thresholds([Threshold::percent(80)]),
            Budget::range("month-1-2", usd(800), start, end)
                .thresholds([Threshold::percent(100)])
                .severity(Severity::Critical),
        ]
    }

    /// Renames the budget. Defaults to the constructor's name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets whose spend counts. Defaults to [`Scope::All`].
    pub fn scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }

    /// Sets the alert thresholds (any number, possibly none). Defaults to
    /// 80% and 100%.
    pub fn thresholds(mut self, thresholds: impl IntoIterator<Item = Threshold>) -> Self {
        self.thresholds = thresholds.into_iter().collect();
        self.thresholds.sort();
        self.thresholds.dedup();
        self
    }

    /// Sets the action. Defaults to [`Action::AlertOnly`].
    pub fn action(mut self, action: Action) -> Self {
        self.action = action;
        self
    }

    /// Shorthand for `.action(Action::Block)`.
    pub fn block(self) -> Self {
        self.action(Action::Block)
    }

    /// Sets the severity of the alerts. Defaults to [`Severity::Warning`].
    pub fn severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }

    /// Also alert once per period when the projected spend first exceeds
    /// the limit (after at least one day of the period has passed, so an
    /// early expensive call does not cry wolf). Defaults to `false`.
    pub fn alert_on_projection(mut self, on: bool) -> Self {
        self.alert_on_projection = on;
        self
    }

    /// Checks the budget.
    ///
    /// # Errors
    ///
    /// A zero or negative limit, a threshold outside (0, 10], an empty date
    /// range, an offset of a day or more, or a name that is empty or contains
    /// `:` or `#`.
    pub fn validate(&self) -> Result<(), BudgetError> {
        if self.name.trim().is_empty()
            || self
                .name
                .chars()
                .any(|c| c == ':' || c == '#' || c.is_control())
        {
            return Err(BudgetError::InvalidName {
                name: self.name.clone(),
            });
        }
        if self.limit <= Money::ZERO {
            return Err(BudgetError::InvalidLimit {
                budget: self.name.clone(),
                limit: self.limit,
            });
        }
        if let Some(t) = self.thresholds.iter().find(|t| !t.is_valid()) {
            return Err(BudgetError::InvalidThreshold {
                budget: self.name.clone(),
                threshold: *t,
            });
        }
        match self.window {
            Window::Range { start, end } if end <= start => Err(BudgetError::EmptyWindow {
                budget: self.name.clone(),
                start,
                end,
            }),
            Window::Monthly { utc_offset_minutes } if utc_offset_minutes.abs() >= 24 * 60 => {
                Err(BudgetError::InvalidOffset {
                    budget: self.name.clone(),
                    minutes: utc_offset_minutes,
                })
            }
            _ => Ok(()),
        }
    }

    /// The alert key of a threshold in a period: `<budget>:<bp>:<period>`.
    pub(crate) fn alert_key(&self, threshold: Threshold, period: &str) -> String {
        format!(
            "{}:{}:{}",
            self.key_name(),
            threshold.basis_points(),
            period
        )
    }

    /// The budget's part of an alert key: its name, and its scope unless it
    /// covers everything, so two users' same-named budgets over their own
    /// spend (`user:alice`, `user:bob`) never share an alert history entry,
    /// while a team-wide budget alerts once for the whole ledger.
    fn key_name(&self) -> String {
        match &self.scope {
            Scope::All => self.name.clone(),
            scope => format!("{}[{scope}]", self.name),
        }
    }

    /// The alert key of the projection alert in a period.
    pub(crate) fn projection_key(&self, period: &str) -> String {
        format!("{}:projection:{}", self.key_name(), period)
    }
}

/// A budget's state, for dashboards and `budget_status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct BudgetStatus {
    /// The budget's name.
    pub name: String,
    /// Its scope.
    pub scope: Scope,
    /// Alert only, or block.
    pub action: Action,
    /// Severity of its alerts.
    pub severity: Severity,
    /// The limit.
    pub limit: Money,
    /// Billed spend in the current period.
    pub spent: Money,
    /// Worst-case estimates of calls in flight (blocking budgets only).
    pub reserved: Money,
    /// `limit − spent`, never below zero.
    pub remaining: Money,
    /// `spent / limit` in basis points (8,000 = 80.00%), rounded down.
    pub percent_bp: i64,
    /// The spend projected at the end of the period at the current rate
    /// (`None` for all-time budgets, which have no end).
    pub projected: Option<Money>,
    /// When the limit is projected to be reached at the current rate: `None`
    /// if nothing was spent or the period ends first; the current time if
    /// it is already reached.
    pub run_out: Option<DateTime<Utc>>,
    /// The period label (`2026-11`, `all-time`, ...).
    pub period: String,
    /// The period's start (`None` for all time).
    pub period_start: Option<DateTime<Utc>>,
    /// The period's exclusive end (`None` for all time).
    pub period_end: Option<DateTime<Utc>>,
    /// Whether the period contains the current time (a date range may be
    /// over or not yet begun; it then blocks nothing).
    pub active: bool,
    /// The thresholds spent has reached, ascending.
    pub thresholds_crossed: Vec<Threshold>,
}

impl BudgetStatus {
    /// The percentage spent, for display only (never sum these).
    pub fn percent(&self) -> f64 {
        self.percent_bp as f64 / 100.0
    }

    /// Whether the limit is reached.
    pub fn is_exhausted(&self) -> bool {
        self.spent >= self.limit
    }
}

/// Linear projection of a period's spend: `(projected end-of-period spend,
/// run-out instant)`. `first_spend` is the first record of an all-time
/// budget (its rate is measured from there).
pub(crate) fn project(
    spent: Money,
    limit: Money,
    period: &Period,
    now: DateTime<Utc>,
    first_spend: Option<DateTime<Utc>>,
) -> (Option<Money>, Option<DateTime<Utc>>) {
    if spent >= limit {
        let projected = period.end.map(|_| spent);
        return (projected, Some(now));
    }
    let start = match period.start.or(first_spend) {
        Some(s) => s,
        None => return (None, None),
    };
    let elapsed = (now - start).num_seconds().max(1) as i128;
    let spent_n = spent.nanos() as i128;
    let projected = period.end.map(|end| {
        let len = (end - start).num_seconds().max(1) as i128;
        if now >= end {
            spent
        } else {
            let p = spent_n * len / elapsed;
            Money::from_nanos(p.clamp(0, i64::MAX as i128) as i64)
        }
    });
    let run_out = if spent_n <= 0 {
        None
    } else {
        // elapsed × limit / spent seconds after the start.
        let secs = elapsed * limit.nanos() as i128 / spent_n;
        i64::try_from(secs)
            .ok()
            .and_then(|s| start.checked_add_signed(chrono::Duration::try_seconds(s)?))
            .filter(|t| period.end.is_none_or(|e| *t < e))
    };
    (projected, run_out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).expect("date")
    }

    fn t(y: i32, m: u32, day: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, day, h, 0, 0)
            .single()
            .expect("time")
    }

    #[test]
    fn threshold_parsing_and_display() {
        for (s, bp) in [
            ("0.8", 8000),
            ("80%", 8000),
            ("1", 10000),
            ("1.0", 10000),
            ("10", 100_000),
            ("0.0001", 1),
            ("12.5%", 1250),
            (".5", 5000),
        ] {
            assert_eq!(s.parse::<Threshold>().expect(s).basis_points(), bp, "{s}");
        }
        for bad in ["", "abc", "0.00001", "-0.5", "80%%", "1e3"] {
            assert!(bad.parse::<Threshold>().is_err(), "{bad}");
        }
        assert_eq!(Threshold::from_basis_points(1250).to_string(), "12.5%");
        assert_eq!(Threshold::from_basis_points(1201).to_string(), "12.01%");
    }

    #[test]
    fn threshold_crossing_is_exact() {
        let limit = Money::from_usd(200).expect("usd");
        let t80 = Threshold::percent(80);
        assert_eq!(t80.amount_of(limit), Money::from_usd(160).expect("usd"));
        assert!(t80.is_crossed(Money::from_usd(160).expect("usd"), limit));
        assert!(!t80.is_crossed(Money::from_nanos(159_999_999_999), limit));
        // Rounded up: 1/3 of a nano-dollar limit is crossed at one nano.
        assert_eq!(
            Threshold::percent(50).amount_of(Money::from_nanos(3)),
            Money::from_nanos(2)
        );
    }

    #[test]
    fn validation_rejects_bad_budgets() {
        let usd = Money::from_usd(1).expect("usd");
        assert!(matches!(
            Budget::monthly(Money::from_nanos(-1)).validate(),
            Err(BudgetError::InvalidLimit { .. })
        ));
        assert!(matches!(
            Budget::monthly(usd)
                .thresholds([Threshold::from_basis_points(0)])
                .validate(),
            Err(BudgetError::InvalidThreshold { .. })
        ));
        assert!(matches!(
            Budget::monthly(usd)
                .thresholds([Threshold::from_basis_points(100_001)])
                .validate(),
            Err(BudgetError::InvalidThreshold { .. })
        ));
        assert!(Budget::monthly(usd)
            .thresholds([Threshold::from_basis_points(100_000)])
            .validate()
            .is_ok());
        assert!(matches!(
            Budget::range("r", usd, d(2026, 1, 1), d(2026, 1, 1)).validate(),
            Err(BudgetError::EmptyWindow { .. })
        ));
        assert!(matches!(
            Budget::monthly(usd).name("a:b").validate(),
            Err(BudgetError::InvalidName { .. })
        ));
        assert!(matches!(
            Budget::new("m", usd, Window::monthly_at_offset(24 * 60)).validate(),
            Err(BudgetError::InvalidOffset { .. })
        ));
    }

    #[test]
    fn monthly_periods_roll_over_and_honour_offsets() {
        let w = Window::monthly();
        let p = w.period(t(2026, 1, 31, 23));
        assert_eq!(p.label, "2026-01");
        assert_eq!(p.start, Some(t(2026, 1, 1, 0)));
        assert_eq!(p.end, Some(t(2026, 2, 1, 0)));
        assert_eq!(w.period(t(2026, 12, 31, 23)).end, Some(t(2027, 1, 1, 0)));
        // UTC+2: 23:00 UTC on Jan 31 is already February locally.
        let p = Window::monthly_at_offset(120).period(t(2026, 1, 31, 23));
        assert_eq!(p.label, "2026-02");
        assert_eq!(p.start, Some(t(2026, 1, 31, 22)));
    }

    fn hm(y: i32, m: u32, day: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, day, h, min, 0)
            .single()
            .expect("time")
    }

    fn zone(name: &str) -> Window {
        Window::monthly_in(parse_time_zone(name).expect(name))
    }

    #[test]
    fn zoned_months_follow_daylight_saving() {
        // Berlin is UTC+2 after the March switch: April starts at 22:00 UTC.
        let berlin = zone("Europe/Berlin");
        let p = berlin.period(hm(2026, 3, 31, 23, 30));
        assert_eq!(p.label, "2026-04");
        assert_eq!(p.start, Some(t(2026, 3, 31, 22)));
        assert_eq!(p.end, Some(t(2026, 4, 30, 22)));
        // ... while March started in winter time, at 23:00 UTC.
        let p = berlin.period(hm(2026, 3, 31, 21, 59));
        assert_eq!(p.label, "2026-03");
        assert_eq!(p.start, Some(t(2026, 2, 28, 23)));
        assert_eq!(p.end, Some(t(2026, 3, 31, 22)));
        // New York: November starts in EDT (UTC-4), December in EST (UTC-5).
        let ny = zone("America/New_York");
        let p = ny.period(hm(2026, 11, 15, 12, 0));
        assert_eq!(p.label, "2026-11");
        assert_eq!(p.start, Some(t(2026, 11, 1, 4)));
        assert_eq!(p.end, Some(t(2026, 12, 1, 5)));
        assert_eq!(ny.period(hm(2026, 12, 1, 4, 30)).label, "2026-11");
        assert_eq!(ny.period(hm(2026, 11, 1, 3, 59)).label, "2026-10");
        // A fixed UTC-4 offset would already say December.
        assert_eq!(
            Window::monthly_at_offset(-240)
                .period(hm(2026, 12, 1, 4, 30))
                .label,
            "2026-12"
        );
    }

    #[test]
    fn midnight_in_a_gap_or_overlap_takes_the_earliest_instant() {
        // Paraguay sprang forward at 00:00 on Sunday 2017-10-01: local
        // midnight did not exist; the day began at 01:00 -03 = 04:00 UTC.
        let tz = parse_time_zone("America/Asuncion").expect("zone");
        let midnight = d(2017, 10, 1).and_hms_opt(0, 0, 0).expect("time");
        assert!(tz.from_local_datetime(&midnight).earliest().is_none());
        let p = Window::monthly_in(tz).period(hm(2017, 10, 10, 0, 0));
        assert_eq!(p.label, "2017-10");
        assert_eq!(p.start, Some(t(2017, 10, 1, 4)));
        assert_eq!(
            Window::monthly_in(tz).period(hm(2017, 10, 1, 3, 59)).label,
            "2017-09"
        );
        // Cuba fell back at 01:00 on Sunday 2015-11-01: local midnight
        // happened twice (04:00 and 05:00 UTC); the month starts at the first.
        let tz = parse_time_zone("America/Havana").expect("zone");
        let midnight = d(2015, 11, 1).and_hms_opt(0, 0, 0).expect("time");
        assert!(matches!(
            tz.from_local_datetime(&midnight),
            chrono::LocalResult::Ambiguous(..)
        ));
        let p = Window::monthly_in(tz).period(hm(2015, 11, 10, 0, 0));
        assert_eq!(p.start, Some(t(2015, 11, 1, 4)));
        assert_eq!(
            Window::monthly_in(tz).period(hm(2015, 10, 20, 0, 0)).end,
            p.start
        );
    }

    #[test]
    fn time_zones_parse_and_display() {
        assert_eq!(
            "monthly:Europe/Berlin".parse::<Window>().expect("window"),
            Window::monthly_in(Tz::Europe__Berlin)
        );
        assert_eq!(
            Window::monthly_in(Tz::Europe__Berlin).to_string(),
            "monthly (Europe/Berlin)"
        );
        assert_eq!(
            "monthly".parse::<Window>().expect("window"),
            Window::monthly()
        );
        let e = "monthly:Mars/Olympus"
            .parse::<Window>()
            .expect_err("unknown");
        assert!(
            matches!(e, BudgetError::UnknownTimeZone { ref name, .. } if name == "Mars/Olympus")
        );
        assert!(e.to_string().contains("Europe/Berlin"), "{e}");
        let e = parse_time_zone("America/New_Yrok").expect_err("typo");
        assert!(
            e.to_string().contains("did you mean America/New_York?"),
            "{e}"
        );
        // UTC itself is an IANA zone, and agrees with the plain UTC month.
        let utc = zone("UTC").period(hm(2026, 3, 31, 23, 30));
        assert_eq!(utc, Window::monthly().period(hm(2026, 3, 31, 23, 30)));
    }

    #[test]
    fn rolling_and_range_periods() {
        let w = Window::rolling_days(NonZeroU32::new(7).expect("nonzero"));
        let p = w.period(t(2026, 3, 10, 15));
        assert_eq!(p.start, Some(t(2026, 3, 4, 0)));
        assert_eq!(p.end, Some(t(2026, 3, 11, 0)));
        let r = Window::range(d(2026, 1, 1), d(2026, 3, 1)).period(t(2026, 5, 1, 0));
        assert!(!r.contains(t(2026, 5, 1, 0)));
        assert!(r.contains(t(2026, 2, 28, 23)));
        assert_eq!(
            "2026-01-01..2026-03-01".parse::<Window>().expect("window"),
            Window::range(d(2026, 1, 1), d(2026, 3, 1))
        );
        assert_eq!(
            "rolling:7d".parse::<Window>().expect("window"),
            Window::RollingDays(NonZeroU32::new(7).expect("nonzero"))
        );
        assert!("rolling:0".parse::<Window>().is_err());
    }

    #[test]
    fn scope_matching_and_parsing() {
        let s: Scope = "model:gpt-4o".parse().expect("scope");
        assert!(s.matches("a", None, "openai", "gpt-4o"));
        assert!(!s.matches("a", None, "openai", "gpt-4o-mini"));
        assert!(Scope::Team("ml".into()).matches("a", Some("ml"), "x", "y"));
        assert!(!Scope::Team("ml".into()).matches("a", None, "x", "y"));
        assert_eq!(s.to_string(), "model:gpt-4o");
        assert!("bogus".parse::<Scope>().is_err());
        assert!("user:".parse::<Scope>().is_err());
    }

    #[test]
    fn projection_is_linear_and_run_out_is_bounded_by_the_period() {
        let p = Window::monthly().period(t(2026, 4, 16, 0)); // 30-day month, half gone
        let limit = Money::from_usd(200).expect("usd");
        let (proj, out) = project(
            Money::from_usd(50).expect("usd"),
            limit,
            &p,
            t(2026, 4, 16, 0),
            None,
        );
        assert_eq!(proj, Some(Money::from_usd(100).expect("usd")));
        assert_eq!(out, None); // $200 would take 60 days
        let (proj, out) = project(
            Money::from_usd(150).expect("usd"),
            limit,
            &p,
            t(2026, 4, 16, 0),
            None,
        );
        assert_eq!(proj, Some(Money::from_usd(300).expect("usd")));
        assert_eq!(out, Some(t(2026, 4, 21, 0))); // 15 days × 200/150 = 20 days
        let (_, out) = project(limit, limit, &p, t(2026, 4, 16, 0), None);
        assert_eq!(out, Some(t(2026, 4, 16, 0)));
    }

    #[test]
    fn seed_defaults_are_the_seeds_three_alerts() {
        let seed = Budget::seed_defaults(d(2026, 1, 15));
        let names: Vec<_> = seed.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["total", "monthly", "month-1-2"]);
        assert_eq!(
            seed[0].thresholds[0].amount_of(seed[0].limit),
            Money::from_usd(800).expect("usd")
        );
        assert_eq!(
            seed[1].thresholds[0].amount_of(seed[1].limit),
            Money::from_usd(160).expect("usd")
        );
        assert_eq!(
            seed[2].window,
            Window::range(d(2026, 1, 15), d(2026, 3, 15))
        );
        for b in &seed {
            b.validate().expect("valid");
        }
    }
}
