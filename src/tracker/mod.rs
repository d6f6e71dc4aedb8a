//! The [`CostTracker`]: prices each call, writes it to the ledger, keeps every
//! budget's spend, refuses calls that would cross a hard limit, and sends
//! each threshold alert once.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use costlayer::budget::Budget;
//! use costlayer::ledger::MemoryStorage;
//! use costlayer::pricing::{ModelPrice, PriceTable, Rates};
//! use costlayer::tracker::CostTracker;
//! use costlayer::{ChatRequest, ChatResponse, Error, Message, Money, Usage};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Error> {
//! let usd = |s: &str| s.parse::<Money>().unwrap();
//! let mut prices = PriceTable::empty("example");
//! prices.insert(ModelPrice::new("gpt-4o-mini", "openai", Rates::new(usd("0.15"), usd("0.60"))));
//!
//! let tracker = CostTracker::builder()
//!     .storage(Arc::new(MemoryStorage::new()))
//!     .prices(prices)
//!     .user("alice")
//!     .budget(Budget::monthly(usd("0.001")).block())
//!     .build()?;
//!
//! let req = ChatRequest::new("gpt-4o-mini").message(Message::user("Hi")).max_tokens(100);
//! let reservation = tracker.reserve(&req).await?; // worst case fits the budget
//! let resp = ChatResponse {
//!     provider: "openai".into(),
//!     model: "gpt-4o-mini-2024-07-18".into(),
//!     usage: Usage::new(1_000, 100),
//!     ..Default::default()
//! };
//! let record = tracker.record(&req, &resp, Some(reservation)).await?;
//! assert_eq!(record.model, "gpt-4o-mini");
//! assert_eq!(record.nano_usd, Some(usd("0.00021"))); // 1000 × $0.15/M + 100 × $0.60/M
//!
//! // A call whose worst case would cross the limit never reaches the provider.
//! let big = ChatRequest::new("gpt-4o-mini").message(Message::user("Hi")).max_tokens(10_000);
//! assert!(matches!(tracker.reserve(&big).await, Err(Error::BudgetExceeded { .. })));
//! # Ok(()) }
//! ```
//!
//! # Running totals, and several processes sharing a ledger
//!
//! The tracker does not rescan the ledger on every call. The first
//! operation (or the first after a period rolls over: a new month, a new
//! day for rolling windows) loads each budget's spend for its current period
//! from the [`Storage`] (`aggregate`, or a scan for all-time budgets, which
//! also need the first spend for their projection); after that it keeps
//! running totals in memory, adding each call it records and the
//! reservations of calls in flight.
//!
//! So with several processes appending to one ledger, each process sees its
//! own calls at once and the others' only when it next loads a period (at
//! rollover, or on [`CostTracker::reload`]). Consequences:
//!
//! - **Hard limits are exact per process**, not across processes: two
//!   processes sharing a $100 block budget can together spend up to their
//!   combined view. Give each process its own budget share (a
//!   [`Scope::User`](crate::budget::Scope) budget per service), or call
//!   `reload` periodically if you need a tighter shared view.
//! - **Alerts stay exactly-once across processes**: an alert is claimed with
//!   [`Storage::claim_alert`], which is atomic across every process sharing
//!   the alert history; only the process that claims it sends it. Its
//!   delivery state is kept in the alert outbox, so an alert whose process
//!   exits or crashes before its sinks ran, or whose sinks failed, is
//!   retried by the next process (see [`crate::alert::OutboxEntry`]). Call
//!   [`CostTracker::flush`] or [`CostTracker::shutdown`] before a program
//!   exits.
//! - A reset done elsewhere (`cost-tracker --reset`) is seen at the next
//!   `reload` or period rollover.

mod alerts;
mod builder;
mod estimate;
mod preflight;
mod record;
mod settle;
mod status;

pub use builder::CostTrackerBuilder;
pub use settle::Reservation;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use crate::alert::{AlertSink, Outbox};
use crate::budget::{Budget, Period, Window};
use crate::clock::Clock;
use crate::config::Config;
use crate::estimate::Estimator;
use crate::ledger::{ScanItem, Spool, Storage};
use crate::pricing::PriceTable;
use crate::{ChatRequest, Error, Money};
use builder::ledger_error;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;

/// What [`CostTracker::reserve`] does with a model that has no price, when a
/// blocking budget applies to the call (with no blocking budget in scope
/// nothing is reserved and the policy does not matter).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnpricedPolicy {
    /// Refuse the call with [`Error::UnpricedModel`] (the default): a hard
    /// limit cannot be enforced on spend it cannot price.
    #[default]
    Reject,
    /// Reserve this fixed amount as the call's worst case.
    ReserveCap(Money),
    /// Let the call through without a reservation, and log a warning. The
    /// reservation is flagged ([`Reservation::is_unpriced`]).
    Allow,
}

pub use crate::alert::{AlertRetry, DeliveryFailure};

/// The error of a second [`CostTracker::init_global`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the global CostTracker is already initialised: call init_global once, at start-up, before anything uses CostTracker::global()")]
pub struct AlreadyInitialized;

/// The attribution of a call, without its prompt (so the cost layer does not
/// clone messages to record a call).
#[derive(Debug, Clone, Default)]
pub(crate) struct CallInfo {
    pub(crate) model: String,
    pub(crate) user: Option<String>,
    pub(crate) team: Option<String>,
    pub(crate) tags: BTreeMap<String, String>,
}

impl CallInfo {
    pub(crate) fn from_request(req: &ChatRequest) -> Self {
        CallInfo {
            model: req.model.clone(),
            user: req.user.clone(),
            team: req.team.clone(),
            tags: req.tags.clone(),
        }
    }
}

#[derive(Debug, Default)]
struct BudgetState {
    /// The loaded period; `None` until loaded.
    period: Option<Period>,
    spent: Money,
    reserved: Money,
    first_spend: Option<DateTime<Utc>>,
}

#[derive(Debug, Default)]
struct State {
    budgets: Vec<BudgetState>,
    /// Alert keys fired or being fired by this process (or found already
    /// fired in the storage), so the storage is asked once per key.
    fired: HashSet<String>,
}

struct Inner {
    storage: Arc<dyn Storage>,
    prices: PriceTable,
    user: String,
    team: Option<String>,
    budgets: Vec<Budget>,
    sinks: Vec<Arc<dyn AlertSink>>,
    clock: Arc<dyn Clock>,
    estimator: Estimator,
    unpriced: UnpricedPolicy,
    state: Mutex<State>,
    refresh: tokio::sync::Mutex<()>,
    /// Claims, delivers and retries alerts (see [`crate::alert::OutboxEntry`]).
    outbox: Outbox,
    /// Records the ledger refused after the provider answered.
    spool: Spool,
    /// The pre-flight's cached "the ledger is writable" verdict.
    writable: preflight::WritableCache,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // No code panics while holding the lock; if one did, the totals are
        // still consistent (every update is a single assignment).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Prices, records and budgets every call. Cheap to clone (an `Arc`);
/// clones share totals, reservations and alert state. `Send + Sync`.
///
/// See the [module docs](self) for an example and for what the in-memory
/// running totals mean when several processes share a ledger.
#[derive(Clone)]
pub struct CostTracker {
    inner: Arc<Inner>,
}

impl fmt::Debug for CostTracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("CostTracker")
            .field("user", &i.user)
            .field("team", &i.team)
            .field("storage", &i.storage)
            .field("prices", &i.prices)
            .field(
                "budgets",
                &i.budgets
                    .iter()
                    .map(|b| b.name.as_str())
                    .collect::<Vec<_>>(),
            )
            .field(
                "sinks",
                &i.sinks
                    .iter()
                    .map(|s| s.name().to_owned())
                    .collect::<Vec<_>>(),
            )
            .field("unpriced", &i.unpriced)
            .finish_non_exhaustive()
    }
}

static GLOBAL: OnceLock<CostTracker> = OnceLock::new();

impl CostTracker {
    /// The process-wide tracker. Initialised by [`CostTracker::init_global`],
    /// or, on first use, from [`Config::load`]`(None)` and
    /// [`CostTracker::from_config`].
    ///
    /// # Errors
    ///
    /// The configuration or ledger error of that first initialisation (the
    /// next call tries again).
    pub fn global() -> Result<&'static CostTracker, Error> {
        if let Some(t) = GLOBAL.get() {
            return Ok(t);
        }
        let config = Config::load(None)?;
        let tracker = CostTracker::from_config(&config)?;
        // Another thread may have won the race; either way one tracker is used.
        let _ = GLOBAL.set(tracker);
        GLOBAL
            .get()
            .ok_or_else(|| Error::config("the global CostTracker could not be initialised"))
    }

    /// The process-wide tracker, if initialised.
    pub fn try_global() -> Option<&'static CostTracker> {
        GLOBAL.get()
    }

    /// Sets the process-wide tracker, once.
    ///
    /// # Errors
    ///
    /// [`AlreadyInitialized`] if a tracker was already set (by this function
    /// or by a first call to [`CostTracker::global`]); it is not replaced.
    pub fn init_global(tracker: CostTracker) -> Result<(), AlreadyInitialized> {
        GLOBAL.set(tracker).map_err(|_| AlreadyInitialized)
    }

    /// The default user of the calls.
    pub fn user(&self) -> &str {
        &self.inner.user
    }

    /// The default team of the calls.
    pub fn team(&self) -> Option<&str> {
        self.inner.team.as_deref()
    }

    /// The budgets, in the order given.
    pub fn budgets(&self) -> &[Budget] {
        &self.inner.budgets
    }

    /// The price table.
    pub fn prices(&self) -> &PriceTable {
        &self.inner.prices
    }

    /// The ledger.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.inner.storage
    }

    /// The current time, from the tracker's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    pub(super) fn attribution<'a>(
        &'a self,
        user: Option<&'a str>,
        team: Option<&'a str>,
    ) -> (&'a str, Option<&'a str>) {
        (
            user.unwrap_or(&self.inner.user),
            team.or(self.inner.team.as_deref()),
        )
    }

    /// Reloads every budget's spend from the storage and forgets which
    /// alerts this process saw fired (the storage still knows). Use it after
    /// a reset, or periodically when several processes share a ledger and
    /// hard limits must see each other's spend. Reservations in flight are
    /// kept.
    ///
    /// # Errors
    ///
    /// The storage's error.
    pub async fn reload(&self) -> Result<(), Error> {
        let _g = self.inner.refresh.lock().await;
        let now = self.inner.clock.now();
        let periods: Vec<Period> = self
            .inner
            .budgets
            .iter()
            .map(|b| b.window.period(now))
            .collect();
        let mut loaded = Vec::with_capacity(periods.len());
        for (i, p) in periods.iter().enumerate() {
            loaded.push(self.load_spent(i, p).await?);
        }
        let mut st = self.inner.lock();
        st.fired.clear();
        for ((s, p), (spent, first)) in st.budgets.iter_mut().zip(periods).zip(loaded) {
            s.period = Some(p);
            s.spent = spent;
            s.first_spend = first;
        }
        Ok(())
    }

    pub(super) fn is_current(&self, now: DateTime<Utc>) -> bool {
        let st = self.inner.lock();
        self.inner
            .budgets
            .iter()
            .zip(&st.budgets)
            .all(|(b, s)| match (&s.period, &b.window) {
                (None, _) => false,
                (Some(_), Window::Total | Window::Range { .. }) => true,
                (Some(p), _) => p.contains(now),
            })
    }

    /// Loads the spend of every budget whose period is not loaded or is over.
    pub(super) async fn ensure_current(&self, now: DateTime<Utc>) -> Result<(), Error> {
        if self.is_current(now) {
            return Ok(());
        }
        // One loader at a time; callers that raced here find it done.
        let _g = self.inner.refresh.lock().await;
        let stale: Vec<(usize, Period)> = {
            let st = self.inner.lock();
            self.inner
                .budgets
                .iter()
                .enumerate()
                .filter_map(|(i, b)| {
                    let p = b.window.period(now);
                    (st.budgets[i].period.as_ref() != Some(&p)).then_some((i, p))
                })
                .collect()
        };
        for (i, period) in stale {
            let (spent, first) = self.load_spent(i, &period).await?;
            let mut st = self.inner.lock();
            let s = &mut st.budgets[i];
            s.period = Some(period);
            s.spent = spent;
            s.first_spend = first;
        }
        Ok(())
    }

    /// A budget's spend in `period` from the storage, and its first spend.
    pub(super) async fn load_spent(
        &self,
        i: usize,
        period: &Period,
    ) -> Result<(Money, Option<DateTime<Utc>>), Error> {
        let b = &self.inner.budgets[i];
        let mut filter = b.scope.filter();
        filter.since = period.start;
        filter.until = period.end;
        // Records waiting in the spool were billed: they count too.
        let spooled = self.spooled_spend(&filter);
        if period.start.is_some() {
            let agg = self
                .inner
                .storage
                .aggregate(&filter)
                .await
                .map_err(ledger_error)?;
            return Ok((agg.nano_usd.saturating_add(spooled), None));
        }
        // All time: also find the first spend, for the run-out projection.
        let mut stream = self
            .inner
            .storage
            .scan(&filter)
            .await
            .map_err(ledger_error)?;
        let (mut spent, mut first): (Money, Option<DateTime<Utc>>) = (Money::ZERO, None);
        while let Some(item) = stream.next().await {
            if let ScanItem::Record(r) = item.map_err(ledger_error)? {
                spent = spent.saturating_add(r.cost());
                if !r.cost().is_zero() && first.is_none_or(|f| r.ts < f) {
                    first = Some(r.ts);
                }
            }
        }
        Ok((spent.saturating_add(spooled), first))
    }
}
