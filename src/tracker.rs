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
//!   [`Storage::mark_alert`], which is atomic across every process sharing
//!   the alert history; only the process that claims it sends it. An alert
//!   is marked before it is sent, so a crash between the two loses that one
//!   alert rather than sending it twice. The JSONL backend keeps one alert
//!   history per user (`alerts_<user>.jsonl`): processes running as the same
//!   user share it; two *different* users sharing a directory each get
//!   their own alert for an all-spend budget.
//! - A reset done elsewhere (`cost-tracker --reset`) is seen at the next
//!   `reload` or period rollover.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use tokio::sync::Notify;

use crate::alert::{Alert, AlertKind, AlertSink};
use crate::budget::{
    self, Action, Budget, BudgetError, BudgetStatus, Period, Scope, Threshold, Window,
};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::estimate::{EstimatePolicy, Estimator};
use crate::ledger::{CostRecord, MemoryStorage, ScanItem, Storage};
use crate::pricing::{PriceTable, PricingError};
use crate::{ChatRequest, ChatResponse, Error, Mode, Money, Usage};

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

/// How failing alert sinks are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertRetry {
    /// Attempts per sink, the first included (at least 1).
    pub attempts: u32,
    /// Wait before the second attempt; doubled before each further one.
    pub backoff: Duration,
}

impl Default for AlertRetry {
    /// Three attempts, 500 ms then 1 s apart.
    fn default() -> Self {
        AlertRetry {
            attempts: 3,
            backoff: Duration::from_millis(500),
        }
    }
}

/// A sink that gave up on an alert after all its attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeliveryFailure {
    /// The alert's key.
    pub key: String,
    /// The sink's name.
    pub sink: String,
    /// The last error.
    pub error: String,
    /// How many attempts were made.
    pub attempts: u32,
}

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
    alert_retry: AlertRetry,
    state: Mutex<State>,
    refresh: tokio::sync::Mutex<()>,
    in_flight: AtomicUsize,
    idle: Notify,
    failures: Mutex<Vec<DeliveryFailure>>,
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

/// Builds a [`CostTracker`]; see [`CostTracker::builder`].
#[must_use]
pub struct CostTrackerBuilder {
    storage: Option<Arc<dyn Storage>>,
    prices: Option<PriceTable>,
    user: Option<String>,
    team: Option<String>,
    budgets: Vec<Budget>,
    sinks: Vec<Arc<dyn AlertSink>>,
    clock: Option<Arc<dyn Clock>>,
    estimator: Estimator,
    unpriced: UnpricedPolicy,
    alert_retry: AlertRetry,
}

impl fmt::Debug for CostTrackerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CostTrackerBuilder")
            .field("storage", &self.storage)
            .field("user", &self.user)
            .field("team", &self.team)
            .field("budgets", &self.budgets)
            .field("sinks", &self.sinks.len())
            .finish_non_exhaustive()
    }
}

impl Default for CostTrackerBuilder {
    fn default() -> Self {
        CostTrackerBuilder {
            storage: None,
            prices: None,
            user: None,
            team: None,
            budgets: Vec::new(),
            sinks: Vec::new(),
            clock: None,
            estimator: Estimator::new(EstimatePolicy::UpperBound),
            unpriced: UnpricedPolicy::default(),
            alert_retry: AlertRetry::default(),
        }
    }
}

impl CostTrackerBuilder {
    /// The ledger. Defaults to a new [`MemoryStorage`] (nothing persisted;
    /// use [`JsonlStorage`](crate::ledger::JsonlStorage) or
    /// [`CostTracker::from_config`] for a ledger on disk).
    pub fn storage(mut self, storage: Arc<dyn Storage>) -> Self {
        self.storage = Some(storage);
        self
    }

    /// The prices. Defaults to the embedded, reviewed table
    /// ([`PriceTable::embedded`]).
    pub fn prices(mut self, prices: PriceTable) -> Self {
        self.prices = Some(prices);
        self
    }

    /// Who the spend is attributed to (a request's `user` overrides it).
    /// Defaults to the operating-system user name.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// The team (a request's `team` overrides it). Defaults to none.
    pub fn team(mut self, team: impl Into<String>) -> Self {
        self.team = Some(team.into());
        self
    }

    /// Adds a budget. Defaults to none.
    pub fn budget(mut self, budget: Budget) -> Self {
        self.budgets.push(budget);
        self
    }

    /// Adds several budgets.
    pub fn budgets(mut self, budgets: impl IntoIterator<Item = Budget>) -> Self {
        self.budgets.extend(budgets);
        self
    }

    /// Adds an alert sink. Defaults to none (alerts are still logged with
    /// `tracing` and marked in the ledger's alert history).
    pub fn sink(mut self, sink: impl AlertSink) -> Self {
        self.sinks.push(Arc::new(sink));
        self
    }

    /// The clock budgets' windows are computed with. Defaults to
    /// [`SystemClock`].
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// How a request's worst case is estimated for hard limits. Defaults to
    /// [`EstimatePolicy::UpperBound`], a strict bound, so an under-estimate
    /// can never let a hard limit be crossed.
    pub fn estimator(mut self, estimator: Estimator) -> Self {
        self.estimator = estimator;
        self
    }

    /// What to do with unpriced models under a blocking budget. Defaults to
    /// [`UnpricedPolicy::Reject`].
    pub fn unpriced_policy(mut self, policy: UnpricedPolicy) -> Self {
        self.unpriced = policy;
        self
    }

    /// How failing sinks are retried. Defaults to [`AlertRetry::default`]
    /// (3 attempts, 500 ms then 1 s apart).
    pub fn alert_retry(mut self, retry: AlertRetry) -> Self {
        self.alert_retry = retry;
        self
    }

    /// Checks the settings and builds the tracker. Nothing is read from the
    /// storage yet: totals are loaded by the first operation.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an invalid budget (zero or negative limit,
    /// threshold outside (0, 10], empty window, bad name), two budgets with
    /// one name, an empty user name, or zero alert attempts.
    pub fn build(self) -> Result<CostTracker, Error> {
        let prices = self
            .prices
            .unwrap_or_else(|| PriceTable::embedded().clone());
        let user = self.user.unwrap_or_else(default_user);
        if user.trim().is_empty() {
            return Err(Error::config(
                "the tracker's user name is empty: set it with .user(..) or COSTLAYER_USER",
            ));
        }
        if self.alert_retry.attempts == 0 {
            return Err(Error::config(
                "alert_retry.attempts is 0: use at least 1 (the first attempt counts)",
            ));
        }
        let mut names = HashSet::new();
        let mut budgets = Vec::with_capacity(self.budgets.len());
        for mut b in self.budgets {
            b.validate().map_err(budget_error)?;
            if !names.insert(b.name.clone()) {
                return Err(budget_error(BudgetError::DuplicateName { name: b.name }));
            }
            // Ledger records carry canonical model names.
            if let Scope::Model(m) = &b.scope {
                if let Some(c) = prices.canonical(m) {
                    b.scope = Scope::Model(c.to_owned());
                }
            }
            budgets.push(b);
        }
        let state = State {
            budgets: budgets.iter().map(|_| BudgetState::default()).collect(),
            fired: HashSet::new(),
        };
        Ok(CostTracker {
            inner: Arc::new(Inner {
                storage: self
                    .storage
                    .unwrap_or_else(|| Arc::new(MemoryStorage::new())),
                prices,
                user,
                team: self.team,
                budgets,
                sinks: self.sinks,
                clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
                estimator: self.estimator,
                unpriced: self.unpriced,
                alert_retry: self.alert_retry,
                state: Mutex::new(state),
                refresh: tokio::sync::Mutex::new(()),
                in_flight: AtomicUsize::new(0),
                idle: Notify::new(),
                failures: Mutex::new(Vec::new()),
            }),
        })
    }
}

/// The JSONL ledger in `data_dir`, appending as the config's user.
fn open_ledger(config: &Config) -> Result<Arc<dyn Storage>, Error> {
    let storage = crate::ledger::JsonlStorage::builder(&config.data_dir)
        .user(config.user.clone())
        .build()
        .map_err(ledger_error)?;
    Ok(Arc::new(storage))
}

/// The embedded prices, with the config's price file merged over them.
fn load_prices(config: &Config) -> Result<PriceTable, Error> {
    match &config.prices {
        Some(path) => PriceTable::with_user_file(path).map_err(|e| Error::config(e.to_string())),
        None => Ok(PriceTable::embedded().clone()),
    }
}

fn budget_error(e: BudgetError) -> Error {
    Error::config(e.to_string())
}

fn default_user() -> String {
    let u = whoami::username();
    if u.trim().is_empty() {
        "default".to_owned()
    } else {
        u
    }
}

fn ledger_error(e: crate::ledger::LedgerError) -> Error {
    Error::Other(Box::new(e))
}

/// A call's hold on its worst-case cost in every blocking budget it falls
/// under. Returned by [`CostTracker::reserve`]; pass it to
/// [`CostTracker::record`] to settle it to the billed cost.
///
/// Dropping it without recording (the call failed, timed out, or its future
/// was dropped) releases the hold.
#[must_use = "dropping a Reservation releases it at once"]
pub struct Reservation {
    inner: Option<Arc<Inner>>,
    holds: Vec<(usize, Money)>,
    estimate: Option<Money>,
    unpriced: bool,
}

impl fmt::Debug for Reservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("estimate", &self.estimate)
            .field("budgets", &self.holds.len())
            .field("unpriced", &self.unpriced)
            .finish()
    }
}

impl Reservation {
    /// A reservation that holds nothing.
    pub fn none() -> Self {
        Reservation {
            inner: None,
            holds: Vec::new(),
            estimate: None,
            unpriced: false,
        }
    }

    /// The worst-case cost reserved, if an estimate was made (only when a
    /// blocking budget applies to the call).
    pub fn estimate(&self) -> Option<Money> {
        self.estimate
    }

    /// Whether the call was let through unpriced ([`UnpricedPolicy::Allow`]).
    pub fn is_unpriced(&self) -> bool {
        self.unpriced
    }

    /// Whether the reservation holds anything.
    pub fn is_empty(&self) -> bool {
        self.holds.is_empty()
    }

    fn release_in(&mut self, state: &mut State) {
        for (i, amount) in self.holds.drain(..) {
            if let Some(b) = state.budgets.get_mut(i) {
                b.reserved = b.reserved.saturating_sub(amount).max(Money::ZERO);
            }
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.holds.is_empty() {
            return;
        }
        if let Some(inner) = self.inner.take() {
            let mut st = inner.lock();
            self.release_in(&mut st);
        }
    }
}

static GLOBAL: OnceLock<CostTracker> = OnceLock::new();

/// Decrements the in-flight alert count when an alert task ends (or is
/// cancelled with its runtime).
struct InFlight(Arc<Inner>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl CostTracker {
    /// A builder. See [`CostTrackerBuilder`] for every setting and default.
    pub fn builder() -> CostTrackerBuilder {
        CostTrackerBuilder::default()
    }

    /// A builder set up from `config`: user, team, budgets and alert sinks
    /// (standard output, e-mail, webhook), but not the storage and prices,
    /// which [`CostTracker::from_config`] adds. Use it to swap the storage.
    ///
    /// # Errors
    ///
    /// An invalid budget, e-mail address, SMTP or webhook setting, or an
    /// e-mail/webhook setting in a build without the `email`/`webhook`
    /// feature.
    pub fn builder_from_config(config: &Config) -> Result<CostTrackerBuilder, Error> {
        let mut b = CostTracker::builder()
            .user(config.user.clone())
            .budgets(config.budgets()?);
        if let Some(team) = &config.team {
            b = b.team(team.clone());
        }
        match config.stdout_alerts {
            crate::config::StdoutAlerts::Off => {}
            crate::config::StdoutAlerts::Human => b = b.sink(crate::alert::StdoutSink::human()),
            crate::config::StdoutAlerts::Json => b = b.sink(crate::alert::StdoutSink::json()),
            #[allow(unreachable_patterns)]
            _ => {}
        }
        let sink_err = |e: crate::alert::SinkError| Error::config(e.to_string());
        #[cfg(feature = "email")]
        if let Some(email) = crate::alert::EmailSink::from_config(config).map_err(sink_err)? {
            b = b.sink(email);
        }
        #[cfg(not(feature = "email"))]
        if !config.alert_emails.is_empty() {
            return Err(Error::config(
                "alert e-mails are configured but costlayer was built without the `email` feature: enable it in Cargo.toml",
            ));
        }
        #[cfg(feature = "webhook")]
        if let Some(url) = &config.webhook_url {
            let mut w = crate::alert::WebhookSink::new(url.expose()).map_err(sink_err)?;
            if config.webhook_slack {
                w = w.slack();
            }
            b = b.sink(w);
        }
        #[cfg(not(feature = "webhook"))]
        if config.webhook_url.is_some() {
            return Err(Error::config(
                "COSTLAYER_WEBHOOK_URL is set but costlayer was built without the `webhook` feature: enable it in Cargo.toml",
            ));
        }
        let _ = &sink_err;
        Ok(b)
    }

    /// A tracker from `config`: the JSONL ledger in `data_dir`
    /// (appending to `costs_<user>.jsonl`), the
    /// embedded prices merged with `config.prices`, and everything
    /// [`CostTracker::builder_from_config`] sets.
    ///
    /// # Errors
    ///
    /// As [`CostTracker::builder_from_config`], plus a ledger directory or
    /// price file that cannot be opened.
    pub fn from_config(config: &Config) -> Result<CostTracker, Error> {
        let storage = open_ledger(config)?;
        let prices = load_prices(config)?;
        CostTracker::builder_from_config(config)?
            .storage(storage)
            .prices(prices)
            .build()
    }

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

    /// The worst-case cost of `req`: its prompt estimated with the
    /// tracker's [`Estimator`] (a strict upper bound by default), plus its
    /// `max_tokens` (or the estimator's default), at the model's online
    /// rates, with the whole prompt priced at the dearest of the input and
    /// cache-write rates. `None` if the model has no price.
    pub fn estimate(&self, req: &ChatRequest) -> Option<Money> {
        let inner = &self.inner;
        inner.prices.get(&req.model)?;
        let prompt = inner.estimator.prompt_tokens(req);
        let output = inner.estimator.max_output_tokens(req);
        let shapes = [
            Usage::new(prompt, output),
            Usage {
                cache_write_5m_tokens: prompt,
                output_tokens: output,
                ..Usage::default()
            },
            Usage {
                cache_write_1h_tokens: prompt,
                output_tokens: output,
                ..Usage::default()
            },
        ];
        shapes
            .iter()
            .map(|u| match inner.prices.cost(&req.model, u, Mode::Online) {
                Ok(c) => Some(c.total),
                Err(PricingError::Overflow { .. }) => Some(Money::MAX),
                Err(_) => None,
            })
            .try_fold(Money::ZERO, |acc, c| c.map(|c| acc.max(c)))
    }

    fn attribution<'a>(
        &'a self,
        user: Option<&'a str>,
        team: Option<&'a str>,
    ) -> (&'a str, Option<&'a str>) {
        (
            user.unwrap_or(&self.inner.user),
            team.or(self.inner.team.as_deref()),
        )
    }

    /// The budget pre-flight: reserves the worst-case cost of `req` in every
    /// blocking budget whose scope and current period it falls in, or
    /// refuses it. The provider must not be called when this fails.
    ///
    /// With no blocking budget in scope this returns an empty reservation
    /// without estimating anything.
    ///
    /// # Errors
    ///
    /// - [`Error::BudgetExceeded`] if `spent + reserved + estimate` would
    ///   exceed a blocking budget's limit (the first such budget is named).
    /// - [`Error::UnpricedModel`] for a model without a price under
    ///   [`UnpricedPolicy::Reject`].
    /// - The storage's error if the budgets' totals could not be loaded.
    pub async fn reserve(&self, req: &ChatRequest) -> Result<Reservation, Error> {
        let inner = &self.inner;
        if !inner.budgets.iter().any(|b| b.action == Action::Block) {
            return Ok(Reservation::none());
        }
        let now = inner.clock.now();
        self.ensure_current(now).await?;
        let price = inner.prices.get(&req.model);
        let (user, team) = self.attribution(req.user.as_deref(), req.team.as_deref());
        let provider = price
            .map(|p| p.provider.as_str())
            .or_else(|| req.provider_hint())
            .unwrap_or("unknown");
        let model = price.map_or(req.model.as_str(), |p| p.model.as_str());
        let in_scope: Vec<usize> = inner
            .budgets
            .iter()
            .enumerate()
            .filter(|(_, b)| {
                b.action == Action::Block && b.scope.matches(user, team, provider, model)
            })
            .map(|(i, _)| i)
            .collect();
        if in_scope.is_empty() {
            return Ok(Reservation::none());
        }
        let estimate = match self.estimate(req) {
            Some(e) => e,
            None => match inner.unpriced {
                UnpricedPolicy::Reject => {
                    return Err(Error::UnpricedModel {
                        model: req.model.clone(),
                    })
                }
                UnpricedPolicy::ReserveCap(cap) => cap,
                UnpricedPolicy::Allow => {
                    tracing::warn!(
                        model = %req.model,
                        "model has no price: the call is let through a blocking budget unreserved (UnpricedPolicy::Allow)"
                    );
                    let mut r = Reservation::none();
                    r.unpriced = true;
                    return Ok(r);
                }
            },
        };
        let mut st = inner.lock();
        let active: Vec<usize> = in_scope
            .into_iter()
            .filter(|&i| {
                st.budgets[i]
                    .period
                    .as_ref()
                    .is_some_and(|p| p.contains(now))
            })
            .collect();
        for &i in &active {
            let (b, s) = (&inner.budgets[i], &st.budgets[i]);
            let committed = s.spent.saturating_add(s.reserved);
            let would_be = committed.checked_add(estimate).unwrap_or(Money::MAX);
            if would_be > b.limit {
                return Err(Error::BudgetExceeded {
                    budget: b.name.clone(),
                    spent: committed,
                    limit: b.limit,
                    estimate,
                });
            }
        }
        let mut holds = Vec::with_capacity(active.len());
        for i in active {
            let s = &mut st.budgets[i];
            s.reserved = s.reserved.saturating_add(estimate);
            holds.push((i, estimate));
        }
        drop(st);
        Ok(Reservation {
            inner: Some(inner.clone()),
            holds,
            estimate: Some(estimate),
            unpriced: false,
        })
    }

    /// Records a call's billed usage: prices it, settles its reservation to
    /// the billed cost, appends the record to the ledger, updates the
    /// budgets and dispatches any alert off the caller's path.
    ///
    /// A model without a price is still recorded (cost `null`) with a
    /// `tracing` warning: money was spent, the record must not be lost. A
    /// response with `cached == true` is recorded at cost 0 with
    /// `saved_nano_usd` set to what it would have cost.
    ///
    /// # Errors
    ///
    /// The storage's error if the append failed (the spend is still counted
    /// in the budgets, and alerts still go out).
    pub async fn record(
        &self,
        req: &ChatRequest,
        resp: &ChatResponse,
        reservation: Option<Reservation>,
    ) -> Result<CostRecord, Error> {
        self.record_call(&CallInfo::from_request(req), resp, reservation)
            .await
    }

    pub(crate) async fn record_call(
        &self,
        info: &CallInfo,
        resp: &ChatResponse,
        reservation: Option<Reservation>,
    ) -> Result<CostRecord, Error> {
        let inner = &self.inner;
        let now = inner.clock.now();
        let loaded = match self.ensure_current(now).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "budget totals could not be loaded; recording the call without budget accounting");
                false
            }
        };
        let rec = self.build_record(info, resp, now);
        let alerts = {
            let mut st = inner.lock();
            if let Some(mut r) = reservation {
                r.release_in(&mut st);
            }
            if loaded {
                self.account(&mut st, &rec, now)
            } else {
                Vec::new()
            }
        };
        let appended = inner.storage.append(&rec).await;
        if !alerts.is_empty() {
            self.dispatch(alerts).await;
        }
        appended.map_err(ledger_error)?;
        Ok(rec)
    }

    fn build_record(&self, info: &CallInfo, resp: &ChatResponse, now: DateTime<Utc>) -> CostRecord {
        let inner = &self.inner;
        let billed_model = if resp.model.is_empty() {
            info.model.as_str()
        } else {
            resp.model.as_str()
        };
        let (user, team) = self.attribution(info.user.as_deref(), info.team.as_deref());
        let price = inner.prices.get(billed_model);
        let provider = if !resp.provider.is_empty() {
            resp.provider.clone()
        } else {
            price
                .map(|p| p.provider.clone())
                .or_else(|| crate::core::provider_for_model(billed_model).map(str::to_owned))
                .unwrap_or_else(|| "unknown".to_owned())
        };
        let mut rec = CostRecord::new(user, provider, billed_model, resp.usage);
        rec.ts = now;
        rec.team = team.map(str::to_owned);
        rec.mode = resp.mode;
        rec.cached = resp.cached;
        rec.latency_ms = resp.latency.as_millis().min(u128::from(u64::MAX)) as u64;
        rec.request_id = resp.request_id.clone();
        rec.tags = info.tags.clone();
        match inner
            .prices
            .cost_at(billed_model, &resp.usage, resp.mode, now)
        {
            Ok(cost) => {
                rec.model = cost.model;
                rec.price_version = Some(cost.price_version);
                if !cost.status.is_exact() {
                    // A billed dimension the table cannot price: the figure
                    // is a lower bound, and the record says why.
                    rec.cost_status = cost.status;
                    rec.cost_notes = cost.notes;
                }
                if resp.cached {
                    rec.nano_usd = Some(Money::ZERO);
                    rec.saved_nano_usd = Some(cost.total);
                } else {
                    rec.nano_usd = Some(cost.total);
                }
            }
            Err(e) => {
                tracing::warn!(
                    model = %billed_model,
                    error = %e,
                    "call recorded without a cost (nano_usd null): add the model to your price file"
                );
                if resp.cached {
                    rec.nano_usd = Some(Money::ZERO);
                }
            }
        }
        rec
    }

    /// Adds `rec` to every budget it falls in and returns the alerts to send.
    fn account(&self, st: &mut State, rec: &CostRecord, now: DateTime<Utc>) -> Vec<Alert> {
        let inner = &self.inner;
        let cost = rec.cost();
        let mut alerts = Vec::new();
        for (i, b) in inner.budgets.iter().enumerate() {
            let s = &mut st.budgets[i];
            let Some(period) = &s.period else { continue };
            if !period.contains(rec.ts) || !b.scope.matches_record(rec) {
                continue;
            }
            s.spent = s.spent.saturating_add(cost);
            if !cost.is_zero() && s.first_spend.is_none_or(|f| rec.ts < f) {
                s.first_spend = Some(rec.ts);
            }
            let (spent, label) = (s.spent, period.label.clone());
            let make = |kind, threshold: Threshold, key: String, projected| {
                let mut a = Alert {
                    budget: b.name.clone(),
                    kind,
                    threshold,
                    spent,
                    limit: b.limit,
                    projected,
                    period: label.clone(),
                    severity: b.severity,
                    user: rec.user.clone(),
                    fired_at: now,
                    message: String::new(),
                    key,
                };
                a.message = a.summary();
                a
            };
            let mut new_alerts = Vec::new();
            for &t in &b.thresholds {
                if t.is_crossed(spent, b.limit) {
                    let key = b.alert_key(t, &label);
                    if !st.fired.contains(&key) {
                        new_alerts.push(make(AlertKind::Threshold, t, key, None));
                    }
                }
            }
            if b.alert_on_projection {
                let s = &st.budgets[i];
                if let Some(p) = &s.period {
                    let day_passed = p
                        .start
                        .or(s.first_spend)
                        .is_some_and(|start| now - start >= chrono::Duration::days(1));
                    let (projected, _) = budget::project(spent, b.limit, p, now, s.first_spend);
                    if let Some(proj) = projected.filter(|pr| day_passed && *pr > b.limit) {
                        let key = b.projection_key(&label);
                        if !st.fired.contains(&key) {
                            new_alerts.push(make(
                                AlertKind::Projection,
                                Threshold::percent(100),
                                key,
                                Some(proj),
                            ));
                        }
                    }
                }
            }
            for a in &new_alerts {
                st.fired.insert(a.key.clone());
            }
            alerts.extend(new_alerts);
        }
        alerts
    }

    /// Sends alerts from a spawned task (or inline without a Tokio runtime).
    async fn dispatch(&self, alerts: Vec<Alert>) {
        for alert in alerts {
            let inner = self.inner.clone();
            inner.in_flight.fetch_add(1, Ordering::AcqRel);
            let guard = InFlight(inner.clone());
            let task = async move {
                let _guard = guard;
                deliver(&inner, alert).await;
            };
            match tokio::runtime::Handle::try_current() {
                Ok(h) => {
                    h.spawn(task);
                }
                Err(_) => task.await,
            }
        }
    }

    /// Waits until every alert dispatched so far has been delivered or
    /// given up on. Call it before exiting a short program so queued
    /// e-mails are not lost, and in tests.
    pub async fn flush_alerts(&self) {
        loop {
            let idle = self.inner.idle.notified();
            if self.inner.in_flight.load(Ordering::Acquire) == 0 {
                return;
            }
            idle.await;
        }
    }

    /// Sinks that gave up on an alert, since the tracker was built.
    pub fn delivery_failures(&self) -> Vec<DeliveryFailure> {
        self.inner
            .failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Every budget's spend, reservations, projection and crossed thresholds
    /// in its current period.
    ///
    /// # Errors
    ///
    /// The storage's error if the totals could not be loaded.
    pub async fn budget_status(&self) -> Result<Vec<BudgetStatus>, Error> {
        let now = self.inner.clock.now();
        self.ensure_current(now).await?;
        let st = self.inner.lock();
        Ok(self
            .inner
            .budgets
            .iter()
            .zip(&st.budgets)
            .map(|(b, s)| {
                let period = s.period.clone().unwrap_or_else(|| b.window.period(now));
                let (projected, run_out) =
                    budget::project(s.spent, b.limit, &period, now, s.first_spend);
                let mut status = BudgetStatus {
                    name: b.name.clone(),
                    scope: b.scope.clone(),
                    action: b.action,
                    severity: b.severity,
                    limit: b.limit,
                    spent: s.spent,
                    reserved: s.reserved,
                    remaining: b.limit.saturating_sub(s.spent).max(Money::ZERO),
                    percent_bp: s.spent.basis_points_of(b.limit).unwrap_or(0),
                    projected,
                    run_out,
                    period: period.label.clone(),
                    period_start: period.start,
                    period_end: period.end,
                    active: period.contains(now),
                    thresholds_crossed: b
                        .thresholds
                        .iter()
                        .copied()
                        .filter(|t| t.is_crossed(s.spent, b.limit))
                        .collect(),
                };
                if !status.active && matches!(b.window, Window::Range { .. }) {
                    // Not begun, or over: nothing to project.
                    status.projected =
                        Some(s.spent).filter(|_| period.end.is_some_and(|e| now >= e));
                    status.run_out = None;
                }
                status
            })
            .collect())
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

    fn is_current(&self, now: DateTime<Utc>) -> bool {
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
    async fn ensure_current(&self, now: DateTime<Utc>) -> Result<(), Error> {
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
    async fn load_spent(
        &self,
        i: usize,
        period: &Period,
    ) -> Result<(Money, Option<DateTime<Utc>>), Error> {
        let b = &self.inner.budgets[i];
        let mut filter = b.scope.filter();
        filter.since = period.start;
        filter.until = period.end;
        if period.start.is_some() {
            let agg = self
                .inner
                .storage
                .aggregate(&filter)
                .await
                .map_err(ledger_error)?;
            return Ok((agg.nano_usd, None));
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
        Ok((spent, first))
    }
}

/// Claims an alert in the storage and, if this process is first, sends it
/// to every sink (concurrently), each retried with backoff.
async fn deliver(inner: &Arc<Inner>, alert: Alert) {
    match inner.storage.mark_alert(&alert.key, &alert.to_json()).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::debug!(key = %alert.key, "alert already fired (another process or an earlier run)");
            return;
        }
        Err(e) => {
            tracing::warn!(key = %alert.key, error = %e, "could not record the alert in the alert history; it will be tried again on the next call");
            inner.lock().fired.remove(&alert.key);
            return;
        }
    }
    tracing::warn!(
        budget = %alert.budget,
        threshold = %alert.threshold,
        period = %alert.period,
        severity = %alert.severity,
        "{}",
        alert.message
    );
    let sends = inner
        .sinks
        .iter()
        .map(|s| send_with_retry(inner, s.as_ref(), &alert));
    futures_util::future::join_all(sends).await;
}

async fn send_with_retry(inner: &Arc<Inner>, sink: &dyn AlertSink, alert: &Alert) {
    let retry = inner.alert_retry;
    let mut delay = retry.backoff;
    for attempt in 1..=retry.attempts {
        match sink.send(alert).await {
            Ok(()) => return,
            Err(e) if attempt < retry.attempts => {
                tracing::warn!(sink = sink.name(), key = %alert.key, attempt, error = %e, "alert delivery failed; retrying");
                tokio::time::sleep(delay).await;
                delay = delay.saturating_mul(2);
            }
            Err(e) => {
                tracing::error!(sink = sink.name(), key = %alert.key, attempts = attempt, error = %e, "alert delivery failed; giving up");
                let failure = DeliveryFailure {
                    key: alert.key.clone(),
                    sink: sink.name().to_owned(),
                    error: e.to_string(),
                    attempts: attempt,
                };
                let payload = serde_json::json!({
                    "delivery_failed": true,
                    "sink": failure.sink,
                    "error": failure.error,
                    "attempts": attempt,
                    "alert": alert.to_json(),
                });
                let key = format!("{}#failed#{}", alert.key, failure.sink);
                if let Err(le) = inner.storage.mark_alert(&key, &payload).await {
                    tracing::error!(error = %le, "could not record the delivery failure in the alert history");
                }
                inner
                    .failures
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(failure);
            }
        }
    }
}
