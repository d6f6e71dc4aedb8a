//! Where "now" comes from.
//!
//! Budgets have calendar windows (this month, a date range, the last N
//! days), so the tracker asks a [`Clock`] for the time instead of calling
//! `Utc::now()` directly. Production code uses [`SystemClock`]; tests use a
//! [`ManualClock`] they can set and advance, so a month rollover takes no
//! time at all.
//!
//! # Example
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use costlayer::clock::{Clock, ManualClock};
//!
//! let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 1, 31, 23, 59, 0).unwrap());
//! let shared = clock.clone(); // clones share the same time
//! clock.advance(chrono::Duration::minutes(2));
//! assert_eq!(shared.now(), Utc.with_ymd_and_hms(2026, 2, 1, 0, 1, 0).unwrap());
//! ```

use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

/// A source of the current UTC time.
///
/// Object-safe (`Arc<dyn Clock>`), `Send + Sync`.
pub trait Clock: Send + Sync + Debug {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The operating system's clock (`Utc::now()`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to. Clones share the same time, so a
/// test can keep one handle and give another to the tracker.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl ManualClock {
    /// A clock stopped at `now`.
    pub fn new(now: DateTime<Utc>) -> Self {
        ManualClock {
            now: Arc::new(Mutex::new(now)),
        }
    }

    /// Sets the time (it may go backwards).
    pub fn set(&self, now: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(|p| p.into_inner()) = now;
    }

    /// Moves the time forward by `by` (backward if negative).
    pub fn advance(&self, by: chrono::Duration) {
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> DateTime<Utc> {
        (**self).now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn manual_clock_is_shared_and_settable() {
        let t0 = Utc
            .with_ymd_and_hms(2026, 3, 1, 0, 0, 0)
            .single()
            .expect("valid time");
        let c = ManualClock::new(t0);
        let dynamic: Arc<dyn Clock> = Arc::new(c.clone());
        c.advance(chrono::Duration::days(1));
        assert_eq!(dynamic.now(), t0 + chrono::Duration::days(1));
        c.set(t0);
        assert_eq!(dynamic.now(), t0);
        assert!(SystemClock.now() > t0 - chrono::Duration::days(365 * 100));
    }
}
