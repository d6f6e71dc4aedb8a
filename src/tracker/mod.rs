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
//! # Hard limits across processes: the budget book
//!
//! Every budget's spend lives in a [budget book](book): per budget and
//! period, the settled spend and the live holds of calls in flight. A
//! blocking budget is decided there, in one atomic step for every process
//! sharing the book: [`CostTracker::reserve`] holds the call's worst case
//! unless settled + held + worst case would cross the limit;
//! [`CostTracker::record`] settles the hold to the billed cost; a
//! [`Reservation`] dropped unsettled releases it.
//!
//! - [`CostTracker::from_config`] (and `cost-tracker chat`) use a
//!   [`JsonlDirBook`](book::JsonlDirBook) on the data directory: **every
//!   process on the host using that directory shares one exact limit**,
//!   whichever user it runs as. A process killed while holding
//!   reservations has its holds dropped once its lease (default
//!   [5 minutes](book::DEFAULT_LEASE), set it with
//!   [`JsonlDirBookBuilder::lease`](book::JsonlDirBookBuilder::lease))
//!   runs out, or at once when its pid is gone from this host. A new
//!   process starts from the directory's checkpoint and reads only the
//!   ledger appended since (never the whole ledger, except once for a
//!   budget the directory has not seen before).
//! - [`CostTracker::builder`] defaults to the book the storage names
//!   ([`Storage::default_book`]): the
//!   directory book for a JSONL ledger, the PostgreSQL book for PostgreSQL,
//!   a [`MemoryBook`](book::MemoryBook) seeded from the storage for a memory
//!   ledger (exact within the process only). Pass another book with
//!   [`CostTrackerBuilder::book`].
//! - **The request carries what was reserved**: under a blocking budget,
//!   a request without `max_tokens` is sent with `max_tokens` set to the
//!   output the reservation assumed
//!   ([`DEFAULT_MAX_OUTPUT_TOKENS`](crate::estimate::DEFAULT_MAX_OUTPUT_TOKENS),
//!   4,096, unless changed with
//!   [`Estimator::default_max_output`](crate::estimate::Estimator::default_max_output)
//!   through [`CostTrackerBuilder::estimator`]), so the billed cost never
//!   exceeds the reservation.
//! - **Settlement cannot be lost**: once the provider has answered, the
//!   call is recorded even if the caller's future is dropped
//!   ([`Settlement`] finishes in the background).
//! - **One identity**: budget scopes, ledger filters and enforcement match
//!   providers case-insensitively and models with
//!   [`same_model`](crate::pricing::same_model) (aliases, dated ids), and
//!   reservations and records resolve a call's provider and model with
//!   [`CostTracker::identity`].
//! - **Alerts** are evaluated on the shared totals each book operation
//!   returns (after each settlement, and when a blocking budget refuses a
//!   call), so a threshold crossed by several processes together is seen.
//!   An alert is claimed with [`Storage::claim_alert`], atomic across every
//!   process sharing the alert history; only the claimer sends it. Its
//!   delivery state is kept in the alert outbox, so an alert whose process
//!   exits or crashes before its sinks ran, or whose sinks failed, is
//!   retried by the next process (see [`crate::alert::OutboxEntry`]); call
//!   [`CostTracker::flush`] or [`CostTracker::shutdown`] before exiting.
//! - **Never billed but unrecorded**: [`CostTracker::reserve`] first checks
//!   that the ledger can be written ([`Storage::check_writable`]) and
//!   refuses the call with [`Error::LedgerUnwritable`] if not; a record the
//!   ledger still refuses after the provider answered goes to the
//!   [`Spool`] and is written later.
//! - A reset done elsewhere (`cost-tracker --reset`) is seen by the
//!   directory book at its next operation (the ledger files were moved);
//!   call [`CostTracker::reload`] to re-arm this process's alerts.

mod alerts;
mod batch;
pub mod book;
mod builder;
mod estimate;
mod preflight;
mod record;
mod settle;
mod status;

pub use batch::DetachedHold;
pub use builder::{CostTrackerBuilder, LedgerAndBook};
pub use settle::{Reservation, Settlement};

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use chrono::{DateTime, Utc};

use crate::alert::{AlertSink, Outbox};
use crate::budget::{Action, Budget, Period, Window};
use crate::clock::Clock;
use crate::config::Config;
use crate::estimate::Estimator;
use crate::ledger::{Spool, Storage};
use crate::pricing::PriceTable;
use crate::{ChatRequest, Error, Money, SharedStr};
use book::{BookKey, BookLine, BudgetBook};

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
    pub(crate) model: ModelId,
    pub(crate) user: Option<String>,
    pub(crate) team: Option<String>,
    pub(crate) tags: BTreeMap<String, String>,
    /// Set when the usage is an estimate (a stream that ended early): the
    /// record is `cost_status: "estimated"` with this note.
    pub(crate) estimated: Option<String>,
}

impl CallInfo {
    pub(crate) fn from_request(req: &ChatRequest) -> Self {
        CallInfo {
            model: ModelId::new(&req.model),
            user: req.user.clone(),
            team: req.team.clone(),
            tags: req.tags.clone(),
            estimated: None,
        }
    }
}

/// A model id, kept inline (no allocation) when it is at most
/// [`ModelId::INLINE`] bytes long, as model ids almost always are: the
/// call's attribution copies it on every call.
#[derive(Clone)]
pub(crate) enum ModelId {
    Inline { len: u8, buf: [u8; ModelId::INLINE] },
    Heap(String),
}

impl ModelId {
    pub(crate) const INLINE: usize = 46;

    pub(crate) fn new(s: &str) -> Self {
        match ModelId::inline(s) {
            Some(m) => m,
            None => ModelId::Heap(s.to_owned()),
        }
    }

    fn inline(s: &str) -> Option<Self> {
        let len = u8::try_from(s.len())
            .ok()
            .filter(|&n| usize::from(n) <= Self::INLINE)?;
        let mut buf = [0; Self::INLINE];
        buf[..s.len()].copy_from_slice(s.as_bytes());
        Some(ModelId::Inline { len, buf })
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            // Copied from a `&str` whole: always valid UTF-8.
            ModelId::Inline { len, buf } => {
                std::str::from_utf8(&buf[..usize::from(*len)]).unwrap_or_default()
            }
            ModelId::Heap(s) => s,
        }
    }
}

impl Default for ModelId {
    fn default() -> Self {
        ModelId::new("")
    }
}

impl fmt::Debug for ModelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// Every budget's current period and book line, shared by the calls of a
/// period (rebuilt only when a period rolls over), so a call passes the
/// book slices of it instead of building lines.
#[derive(Debug, Default)]
pub(super) struct Lines {
    /// `(period, line)` per budget, in the order of [`CostTracker::budgets`].
    pub(super) all: Vec<(Period, BookLine)>,
    /// The lines of `all` alone, for the book.
    pub(super) books: Vec<BookLine>,
    /// The lines of the blocking budgets, in budget order.
    pub(super) blocking: Vec<BookLine>,
}

#[derive(Debug, Default)]
struct State {
    /// Each budget's current period and book line; `None` until computed.
    lines: Option<Arc<Lines>>,
    /// Alert keys fired or being fired by this process (or found already
    /// fired in the storage), so the storage is asked once per key.
    fired: HashSet<String>,
}

struct Inner {
    storage: Arc<dyn Storage>,
    book: Arc<dyn BudgetBook>,
    provider: Option<String>,
    prices: PriceTable,
    user: SharedStr,
    team: Option<SharedStr>,
    budgets: Vec<Budget>,
    sinks: Vec<Arc<dyn AlertSink>>,
    clock: Arc<dyn Clock>,
    estimator: Estimator,
    unpriced: UnpricedPolicy,
    state: Mutex<State>,
    /// Claims, delivers and retries alerts (see [`crate::alert::OutboxEntry`]).
    outbox: Outbox,
    /// Records the ledger refused after the provider answered.
    spool: Arc<Spool>,
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
            user.unwrap_or(self.inner.user.as_str()),
            team.or(self.inner.team.as_deref()),
        )
    }

    /// [`attribution`](Self::attribution) as the record keeps it: the
    /// tracker's own names are shared, not copied.
    pub(super) fn attribution_shared(
        &self,
        user: Option<&str>,
        team: Option<&str>,
    ) -> (SharedStr, Option<SharedStr>) {
        (
            user.map_or_else(|| self.inner.user.clone(), SharedStr::from),
            team.map(SharedStr::from)
                .or_else(|| self.inner.team.clone()),
        )
    }

    /// Forgets what this process learned of the budgets' spend, so the
    /// next operation reads it again from the book's store, and which
    /// alerts this process saw fired (the storage still knows). Use it
    /// after a reset done elsewhere. Holds in flight are kept.
    ///
    /// # Errors
    ///
    /// The book's error.
    pub async fn reload(&self) -> Result<(), Error> {
        self.inner.book.forget().await?;
        let mut st = self.inner.lock();
        st.fired.clear();
        st.lines = None;
        Ok(())
    }

    /// The budget book.
    pub fn book(&self) -> &Arc<dyn BudgetBook> {
        &self.inner.book
    }

    /// The canonical identity of a call, `(provider, model)`: the model as
    /// the price table names it (aliases, dated ids and case resolved),
    /// the provider as given (the response's, or the tracker's
    /// [`provider`](CostTrackerBuilder::provider)), else the price table's,
    /// else guessed from the model id; lower case. Budget scopes,
    /// enforcement and records all use it, so every spelling that prices a
    /// call also matches its budget.
    pub fn identity(&self, provider: Option<&str>, model: &str) -> (String, String) {
        let (provider, model) = self.identity_ref(provider, model);
        (provider.into_owned(), model.to_owned())
    }

    /// [`identity`](Self::identity), borrowed where it can be (no
    /// allocation unless the provider needs lower-casing).
    pub(super) fn identity_ref<'a>(
        &'a self,
        provider: Option<&'a str>,
        model: &'a str,
    ) -> (std::borrow::Cow<'a, str>, &'a str) {
        let price = self.inner.prices.get(model);
        let provider = provider
            .or(self.inner.provider.as_deref())
            .or_else(|| price.map(|p| p.provider.as_str()))
            .or_else(|| crate::core::provider_for_model(model))
            .unwrap_or("unknown")
            .trim();
        let provider = if provider.bytes().any(|b| b.is_ascii_uppercase()) {
            std::borrow::Cow::Owned(provider.to_ascii_lowercase())
        } else {
            std::borrow::Cow::Borrowed(provider)
        };
        (provider, price.map_or(model, |p| p.model.as_str()))
    }

    /// Every budget's line in the period containing `now` (computed once
    /// per period), in the order of [`CostTracker::budgets`].
    pub(super) fn lines(&self, now: DateTime<Utc>) -> Arc<Lines> {
        let mut st = self.inner.lock();
        let current = |b: &Budget, p: &Period| {
            matches!(b.window, Window::Total | Window::Range { .. }) || p.contains(now)
        };
        if let Some(lines) = &st.lines {
            if self
                .inner
                .budgets
                .iter()
                .zip(&lines.all)
                .all(|(b, (p, _))| current(b, p))
            {
                return Arc::clone(lines);
            }
        }
        let all: Vec<(Period, BookLine)> = self
            .inner
            .budgets
            .iter()
            .enumerate()
            .map(
                |(i, b)| match st.lines.as_ref().and_then(|l| l.all.get(i)) {
                    Some((p, line)) if current(b, p) => (p.clone(), line.clone()),
                    _ => line_for(b, now),
                },
            )
            .collect();
        let lines = Arc::new(Lines {
            books: all.iter().map(|(_, l)| l.clone()).collect(),
            blocking: all
                .iter()
                .filter(|(_, l)| l.blocking)
                .map(|(_, l)| l.clone())
                .collect(),
            all,
        });
        st.lines = Some(Arc::clone(&lines));
        lines
    }
}

/// Budget `b`'s period containing `now`, and its book line.
fn line_for(b: &Budget, now: DateTime<Utc>) -> (Period, BookLine) {
    let p = b.window.period(now);
    let mut line = BookLine::new(BookKey::new(&b.name, &p.label, &b.scope), b.limit)
        .blocking(b.action == Action::Block);
    line.scope = b.scope.clone();
    line.start = p.start;
    line.end = p.end;
    (p, line)
}
