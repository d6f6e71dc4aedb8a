//! Exact money: integer nano-dollars.
//!
//! Every amount in costlayer is a [`Money`]: a signed count of nano-dollars
//! (10⁻⁹ USD) in an `i64`, which covers ±$9.2 billion. Sums are exact; there
//! is no `f64` anywhere in a total.
//!
//! # Example
//!
//! ```
//! use costlayer_core::Money;
//!
//! let a: Money = "0.0115".parse().unwrap();
//! assert_eq!(a.nanos(), 11_500_000);
//! assert_eq!(a.to_string(), "$0.0115");
//! assert_eq!(format!("{a:.2}"), "$0.01");
//! assert_eq!(a.to_decimal_string(), "0.011500000");
//! assert_eq!(a.checked_add(a), Some(Money::from_nanos(23_000_000)));
//! ```

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Neg, Sub, SubAssign};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Nano-dollars in one US dollar.
pub const NANOS_PER_USD: i64 = 1_000_000_000;

/// An exact amount of US dollars, stored as integer nano-dollars.
///
/// Serialises as a plain integer (nano-dollars), so ledgers and JSON output
/// never round. `Display` prints dollars with at least two decimals and no
/// trailing zeros beyond them (`$0.0115`, `$12.50`); a precision
/// (`{:.4}`) rounds half away from zero to that many decimals.
///
/// The `+`/`-` operators saturate at the bounds of `i64` (±$9.2 billion);
/// use [`Money::checked_add`] where an overflow must be reported.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Money(i64);

/// The error returned when a string is not a valid dollar amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseMoneyError {
    /// The string is empty or not a decimal number.
    #[error("`{input}` is not a dollar amount: write a decimal number such as 12.50 or 0.0115")]
    Invalid {
        /// The rejected input.
        input: String,
    },
    /// More than nine decimals: below one nano-dollar.
    #[error(
        "`{input}` has more than 9 decimals: costlayer counts whole nano-dollars (0.000000001)"
    )]
    TooPrecise {
        /// The rejected input.
        input: String,
    },
    /// The amount does not fit in ±$9.2 billion.
    #[error("`{input}` is too large: amounts must stay within ±$9,223,372,036")]
    Overflow {
        /// The rejected input.
        input: String,
    },
}

impl Money {
    /// Zero dollars.
    pub const ZERO: Money = Money(0);
    /// The largest amount (about $9.2 billion).
    pub const MAX: Money = Money(i64::MAX);

    /// An amount of nano-dollars.
    pub const fn from_nanos(nanos: i64) -> Self {
        Money(nanos)
    }

    /// Whole dollars. Returns `None` if the amount overflows.
    pub const fn from_usd(dollars: i64) -> Option<Self> {
        match dollars.checked_mul(NANOS_PER_USD) {
            Some(n) => Some(Money(n)),
            None => None,
        }
    }

    /// The amount in nano-dollars.
    pub const fn nanos(self) -> i64 {
        self.0
    }

    /// `true` if the amount is zero.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// `true` if the amount is below zero.
    pub const fn is_negative(self) -> bool {
        self.0 < 0
    }

    /// Exact addition; `None` on overflow.
    pub const fn checked_add(self, rhs: Money) -> Option<Money> {
        match self.0.checked_add(rhs.0) {
            Some(n) => Some(Money(n)),
            None => None,
        }
    }

    /// Exact subtraction; `None` on overflow.
    pub const fn checked_sub(self, rhs: Money) -> Option<Money> {
        match self.0.checked_sub(rhs.0) {
            Some(n) => Some(Money(n)),
            None => None,
        }
    }

    /// Exact multiplication by an integer; `None` on overflow.
    pub const fn checked_mul(self, rhs: i64) -> Option<Money> {
        match self.0.checked_mul(rhs) {
            Some(n) => Some(Money(n)),
            None => None,
        }
    }

    /// Addition clamped to the bounds of `i64`.
    pub const fn saturating_add(self, rhs: Money) -> Money {
        Money(self.0.saturating_add(rhs.0))
    }

    /// Subtraction clamped to the bounds of `i64`.
    pub const fn saturating_sub(self, rhs: Money) -> Money {
        Money(self.0.saturating_sub(rhs.0))
    }

    /// Exact sum of an iterator; `None` on overflow.
    pub fn checked_sum<I: IntoIterator<Item = Money>>(iter: I) -> Option<Money> {
        iter.into_iter()
            .try_fold(Money::ZERO, |acc, m| acc.checked_add(m))
    }

    /// The exact decimal form in dollars with all nine decimals:
    /// `"0.011500000"`, `"-3.000000000"`. Round-trips through [`FromStr`].
    pub fn to_decimal_string(self) -> String {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let per = NANOS_PER_USD as u64;
        format!("{sign}{}.{:09}", abs / per, abs % per)
    }

    /// This amount as a ratio of `whole`, in basis points (1/100 of a percent),
    /// rounded down; `None` if `whole` is zero or negative.
    ///
    /// ```
    /// # use costlayer_core::Money;
    /// let spent = Money::from_usd(160).unwrap();
    /// let limit = Money::from_usd(200).unwrap();
    /// assert_eq!(spent.basis_points_of(limit), Some(8_000)); // 80.00%
    /// ```
    pub fn basis_points_of(self, whole: Money) -> Option<i64> {
        if whole.0 <= 0 {
            return None;
        }
        let bp = (self.0 as i128 * 10_000) / whole.0 as i128;
        Some(bp.clamp(i64::MIN as i128, i64::MAX as i128) as i64)
    }

    /// Dollars as `f64`, for display and charts only: never sum these.
    pub fn to_f64_lossy(self) -> f64 {
        self.0 as f64 / NANOS_PER_USD as f64
    }

    /// Formats the amount with a fixed number of decimals (rounded half away
    /// from zero), e.g. `display(2)` gives `$0.01` for `$0.0115`.
    pub fn display(self, decimals: usize) -> impl fmt::Display {
        struct Fixed(Money, usize);
        impl fmt::Display for Fixed {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_fixed(f, self.0, Some(self.1))
            }
        }
        Fixed(self, decimals)
    }
}

fn write_fixed(f: &mut fmt::Formatter<'_>, m: Money, decimals: Option<usize>) -> fmt::Result {
    let neg = m.0 < 0;
    let mut abs = m.0.unsigned_abs() as u128;
    let per = NANOS_PER_USD as u128;
    let digits = match decimals {
        Some(d) => {
            let d = d.min(9);
            let unit = 10u128.pow(9 - d as u32);
            abs = (abs + unit / 2) / unit * unit;
            d
        }
        None => {
            // At least two decimals, then as many as are non-zero.
            let frac = abs % per;
            let mut d = 9;
            while d > 2 && frac.is_multiple_of(10u128.pow(10 - d as u32)) {
                d -= 1;
            }
            d
        }
    };
    let whole = abs / per;
    let frac = (abs % per) / 10u128.pow(9 - digits as u32);
    let sign = if neg && abs != 0 { "-" } else { "" };
    let body = if digits == 0 {
        format!("{sign}${whole}")
    } else {
        format!("{sign}${whole}.{frac:0digits$}")
    };
    // `Formatter::pad` would treat the precision as a maximum width and cut
    // the number, so width and alignment are applied here.
    let len = body.chars().count();
    match f.width() {
        Some(w) if w > len => {
            let fill: String = std::iter::repeat_n(f.fill(), w - len).collect();
            match f.align() {
                Some(fmt::Alignment::Left) => write!(f, "{body}{fill}"),
                Some(fmt::Alignment::Center) => {
                    let (l, r) = fill.split_at((w - len) / 2 * f.fill().len_utf8());
                    write!(f, "{l}{body}{r}")
                }
                _ => write!(f, "{fill}{body}"),
            }
        }
        _ => f.write_str(&body),
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_fixed(f, *self, f.precision())
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Money({})", self.to_decimal_string())
    }
}

impl FromStr for Money {
    type Err = ParseMoneyError;

    /// Parses a decimal dollar amount: `12`, `12.5`, `-0.0115`, `$1000.00`.
    /// Up to nine decimals; no exponent, no thousands separators.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let invalid = || ParseMoneyError::Invalid {
            input: input.to_owned(),
        };
        let s = input.trim();
        let (neg, s) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        let s = s.strip_prefix('$').unwrap_or(s);
        let (whole, frac) = match s.split_once('.') {
            Some((w, f)) => (w, f),
            None => (s, ""),
        };
        if (whole.is_empty() && frac.is_empty())
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(invalid());
        }
        if frac.len() > 9 {
            return Err(ParseMoneyError::TooPrecise {
                input: input.to_owned(),
            });
        }
        let overflow = || ParseMoneyError::Overflow {
            input: input.to_owned(),
        };
        let whole: i64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| overflow())?
        };
        let frac_nanos: i64 = if frac.is_empty() {
            0
        } else {
            let v: i64 = frac.parse().map_err(|_| invalid())?;
            v * 10i64.pow(9 - frac.len() as u32)
        };
        let nanos = whole
            .checked_mul(NANOS_PER_USD)
            .and_then(|n| n.checked_add(frac_nanos))
            .ok_or_else(overflow)?;
        Ok(Money(if neg { -nanos } else { nanos }))
    }
}

impl Add for Money {
    type Output = Money;
    fn add(self, rhs: Money) -> Money {
        self.saturating_add(rhs)
    }
}

impl AddAssign for Money {
    fn add_assign(&mut self, rhs: Money) {
        *self = self.saturating_add(rhs);
    }
}

impl Sub for Money {
    type Output = Money;
    fn sub(self, rhs: Money) -> Money {
        self.saturating_sub(rhs)
    }
}

impl SubAssign for Money {
    fn sub_assign(&mut self, rhs: Money) {
        *self = self.saturating_sub(rhs);
    }
}

impl Neg for Money {
    type Output = Money;
    fn neg(self) -> Money {
        Money(self.0.saturating_neg())
    }
}

impl Sum for Money {
    /// Saturating sum; use [`Money::checked_sum`] to detect overflow.
    fn sum<I: Iterator<Item = Money>>(iter: I) -> Money {
        iter.fold(Money::ZERO, |a, b| a + b)
    }
}

impl<'a> Sum<&'a Money> for Money {
    fn sum<I: Iterator<Item = &'a Money>>(iter: I) -> Money {
        iter.copied().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> Money {
        s.parse().expect("valid money")
    }

    #[test]
    fn display_trims_to_two_decimals_minimum() {
        assert_eq!(Money::from_nanos(11_500_000).to_string(), "$0.0115");
        assert_eq!(m("12.5").to_string(), "$12.50");
        assert_eq!(m("12").to_string(), "$12.00");
        assert_eq!(Money::from_nanos(1).to_string(), "$0.000000001");
        assert_eq!(m("-3.25").to_string(), "-$3.25");
        assert_eq!(Money::ZERO.to_string(), "$0.00");
    }

    #[test]
    fn display_precision_rounds_half_away_from_zero() {
        assert_eq!(format!("{:.2}", m("0.005")), "$0.01");
        assert_eq!(format!("{:.2}", m("0.0049")), "$0.00");
        assert_eq!(format!("{:.2}", m("-0.005")), "-$0.01");
        assert_eq!(format!("{:.0}", m("2.5")), "$3");
        assert_eq!(m("1234.5678").display(2).to_string(), "$1234.57");
        assert_eq!(format!("{:>8.2}", m("1.5")), "   $1.50");
    }

    #[test]
    fn decimal_string_round_trips() {
        for s in [
            "0.011500000",
            "-3.000000000",
            "9223372036.854775807",
            "0.000000001",
        ] {
            assert_eq!(m(s).to_decimal_string(), s);
        }
        assert_eq!(
            Money::from_nanos(i64::MIN + 1).to_decimal_string(),
            "-9223372036.854775807"
        );
    }

    #[test]
    fn parse_rejects_bad_input() {
        for bad in ["", "abc", "1.2.3", "1e5", "--1", "1,000", "$", "."] {
            assert!(
                matches!(bad.parse::<Money>(), Err(ParseMoneyError::Invalid { .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            "0.0000000001".parse::<Money>(),
            Err(ParseMoneyError::TooPrecise { .. })
        ));
        assert!(matches!(
            "99999999999".parse::<Money>(),
            Err(ParseMoneyError::Overflow { .. })
        ));
        assert_eq!(m("$1000.00"), Money::from_usd(1000).expect("fits"));
        assert_eq!(m(".5"), m("0.5"));
    }

    #[test]
    fn arithmetic_is_exact_and_overflow_is_detected() {
        let a = Money::from_nanos(1);
        let sum: Money = std::iter::repeat_n(a, 1_000_000).sum();
        assert_eq!(sum.nanos(), 1_000_000);
        assert_eq!(Money::MAX.checked_add(a), None);
        assert_eq!(Money::MAX + a, Money::MAX);
        assert_eq!(Money::checked_sum([Money::MAX, a]), None);
        assert_eq!(Money::from_usd(i64::MAX), None);
        assert_eq!(m("160").basis_points_of(m("200")), Some(8000));
        assert_eq!(m("1").basis_points_of(Money::ZERO), None);
    }

    #[test]
    fn serde_is_an_integer() {
        let json = serde_json::to_string(&m("0.0115")).expect("serialise");
        assert_eq!(json, "11500000");
        let back: Money = serde_json::from_str(&json).expect("deserialise");
        assert_eq!(back, m("0.0115"));
    }
}
