//! Building a tracker: [`CostTrackerBuilder`] and the config wiring.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex};

use super::book::{BookError, BudgetBook, JsonlDirBook, MemoryBook};
use super::preflight::WritableCache;
use super::{AlertRetry, CostTracker, Inner, State, UnpricedPolicy};
use crate::alert::{AlertSink, Outbox, OutboxConfig};
use crate::budget::{Budget, BudgetError, Scope};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::estimate::{EstimatePolicy, Estimator};
use crate::ledger::{MemoryStorage, Spool, SpooledLedger, Storage};
use crate::pricing::PriceTable;
use crate::Error;

/// Builds a [`CostTracker`]; see [`CostTracker::builder`].
#[must_use]
pub struct CostTrackerBuilder {
    storage: Option<Arc<dyn Storage>>,
    book: Option<Arc<dyn BudgetBook>>,
    provider: Option<String>,
    prices: Option<PriceTable>,
    user: Option<String>,
    team: Option<String>,
    budgets: Vec<Budget>,
    sinks: Vec<Arc<dyn AlertSink>>,
    clock: Option<Arc<dyn Clock>>,
    estimator: Estimator,
    unpriced: UnpricedPolicy,
    alert_retry: AlertRetry,
    spool: Option<Spool>,
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
            book: None,
            provider: None,
            prices: None,
            user: None,
            team: None,
            budgets: Vec::new(),
            sinks: Vec::new(),
            clock: None,
            estimator: Estimator::new(EstimatePolicy::UpperBound),
            unpriced: UnpricedPolicy::default(),
            alert_retry: AlertRetry::default(),
            spool: None,
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

    /// The budget book: where every budget's settled spend and live holds
    /// are kept and hard limits decided. Give every process sharing a
    /// ledger the same kind of book.
    ///
    /// Defaults to the book the storage names
    /// ([`Storage::default_book`]), so a blocking budget is one bound for
    /// every process sharing the ledger without further setup:
    ///
    /// | storage | default book |
    /// |---|---|
    /// | [`JsonlStorage`](crate::ledger::JsonlStorage) | a [`JsonlDirBook`] on its directory, default settings (one per storage, shared by the trackers built on it) |
    /// | `PostgresStorage` | a `PostgresBudgetBook` on its pool and schema |
    /// | [`MemoryStorage`], or a storage that names none | a [`MemoryBook`] seeded from the storage and the spool (one process) |
    ///
    /// Set a book here to change its settings (the directory book's lease
    /// and chunks: [`JsonlDirBook::builder`]) or to share a ledger in an
    /// unusual way.
    ///
    /// Records the ledger refused and the [spool](Self::spool) holds count
    /// in every default book: the memory book reads the spool with the
    /// ledger; the directory and PostgreSQL books count a settled call from
    /// the moment it is settled (the directory book as a settled hold in
    /// its holds file until the record is read back from the ledger, or for
    /// the hold lease at most if it stays in the spool that long).
    pub fn book(mut self, book: Arc<dyn BudgetBook>) -> Self {
        self.book = Some(book);
        self
    }

    /// The provider every call of this tracker goes to, for budget scopes
    /// and records when the response names none (`simulated` for the
    /// simulated provider). Defaults to the price table's provider of the
    /// model.
    pub fn provider(mut self, provider: impl Into<String>) -> Self {
        self.provider = Some(provider.into());
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

    /// Where a record goes when the ledger refuses it after the provider
    /// answered (so a billed call is never unrecorded): a [`Spool`] file in
    /// a directory, retried into the ledger before later calls and at
    /// [`CostTracker::flush`]. Defaults to [`Spool::memory`]; from a
    /// config, `spool_dir` / `COSTLAYER_SPOOL_DIR`.
    pub fn spool(mut self, spool: Spool) -> Self {
        self.spool = Some(spool);
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
    /// [`BookError::Open`](super::book::BookError::Open) (as
    /// [`Error::Other`]) when no book is given and the storage's default
    /// book cannot be opened (the directory book's directory cannot be
    /// created, say): the message names the cause.
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
            lines: None,
            fired: HashSet::new(),
        };
        let storage = self
            .storage
            .unwrap_or_else(|| Arc::new(MemoryStorage::new()));
        let spool = Arc::new(self.spool.unwrap_or_default());
        // Records a deferred ledger write refuses go to the spool too.
        storage.attach_spool(spool.clone());
        let book = match self.book {
            Some(book) => book,
            None => match storage.default_book() {
                Some(Ok(book)) => book,
                Some(Err(e)) => return Err(BookError::Open(Box::new(e)).into()),
                // The memory book counts spooled records too (they were
                // billed).
                None => Arc::new(MemoryBook::seeded_from(Arc::new(SpooledLedger {
                    ledger: storage.clone(),
                    spool: spool.clone(),
                }))),
            },
        };
        let inner = Arc::new_cyclic(|weak: &std::sync::Weak<Inner>| {
            let weak = weak.clone();
            let outbox = Outbox::new(OutboxConfig {
                storage: storage.clone(),
                sinks: self.sinks.clone(),
                retry: self.alert_retry,
                lease: ALERT_LEASE,
                drop_timeout: DROP_TIMEOUT,
                // A claim the storage could not record is tried again at
                // the next crossing.
                on_claim_error: Box::new(move |key: &str| {
                    if let Some(inner) = weak.upgrade() {
                        inner.lock().fired.remove(key);
                    }
                }),
            });
            Inner {
                storage,
                book,
                provider: self.provider,
                prices,
                user: user.into(),
                team: self.team.map(Into::into),
                budgets,
                sinks: self.sinks,
                clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
                estimator: self.estimator,
                unpriced: self.unpriced,
                state: Mutex::new(state),
                outbox,
                spool,
                writable: WritableCache::default(),
            }
        });
        Ok(CostTracker { inner })
    }
}

/// How long a process may deliver an alert it claimed before another
/// process may take it over (when the owner cannot be seen to be gone).
const ALERT_LEASE: std::time::Duration = std::time::Duration::from_secs(120);

/// How long dropping the last tracker waits for queued alerts.
const DROP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

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
        if let Some(dir) = &config.spool_dir {
            b = b.spool(Spool::in_dir(dir, &config.data_dir, &config.user));
        }
        Ok(b)
    }

    /// A tracker from `config`: the ledger and budget book
    /// [`CostTracker::ledger_from_config`] opens (the JSONL ledger in
    /// `data_dir`, or the shared PostgreSQL ledger when `storage` /
    /// `COSTLAYER_DATABASE_URL` names one), the embedded prices merged with
    /// `config.prices`, and everything [`CostTracker::builder_from_config`]
    /// sets.
    ///
    /// # Errors
    ///
    /// As [`CostTracker::builder_from_config`], plus a ledger directory,
    /// database URL or price file that cannot be opened.
    pub fn from_config(config: &Config) -> Result<CostTracker, Error> {
        let (storage, book) = CostTracker::ledger_from_config(config)?;
        let prices = load_prices(config)?;
        CostTracker::builder_from_config(config)?
            .storage(storage)
            .book(book)
            .prices(prices)
            .build()
    }

    /// The ledger and the budget book `config` names:
    ///
    /// - `storage = "postgres://..."` (or `COSTLAYER_DATABASE_URL`): a
    ///   `PostgresStorage` in `database_schema` (default `costlayer`),
    ///   recording as the config's user, and a `PostgresBudgetBook` in the
    ///   same schema, shared by every host. Nothing connects yet: the
    ///   first operation connects and applies the migrations (needs the
    ///   `postgres` feature).
    /// - otherwise the JSONL ledger in `data_dir`, appending to
    ///   `costs_<user>.jsonl`, and a [`JsonlDirBook`] on that directory.
    ///
    /// ```
    /// use costlayer::config::Config;
    /// use costlayer::tracker::CostTracker;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let mut config = Config::default();
    /// config.data_dir = dir.path().to_path_buf();
    /// let (ledger, book) = CostTracker::ledger_from_config(&config).unwrap();
    /// # let _ = (ledger, book);
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a database URL that does not parse (or a build
    /// without the `postgres` feature); an error if the data directory
    /// cannot be opened.
    pub fn ledger_from_config(config: &Config) -> Result<LedgerAndBook, Error> {
        if let Some(url) = &config.database_url {
            return postgres_ledger(config, url.expose());
        }
        let storage = crate::ledger::JsonlStorage::builder(&config.data_dir)
            .user(config.user.clone())
            .build()
            .map_err(ledger_error)?;
        let book: Arc<dyn BudgetBook> = if config.has_book_settings() {
            Arc::new(config.jsonl_book()?)
        } else {
            match storage.default_book() {
                Some(book) => book.map_err(|e| BookError::Open(Box::new(e)))?,
                None => Arc::new(JsonlDirBook::open(&config.data_dir)?),
            }
        };
        Ok((Arc::new(storage), book))
    }
}

/// A ledger and the budget book that goes with it, as
/// [`CostTracker::ledger_from_config`] opens them.
pub type LedgerAndBook = (Arc<dyn Storage>, Arc<dyn BudgetBook>);

#[cfg(feature = "postgres")]
fn postgres_ledger(config: &Config, url: &str) -> Result<LedgerAndBook, Error> {
    let storage = crate::ledger::PostgresStorage::builder(url)
        .schema(
            config
                .database_schema
                .clone()
                .unwrap_or_else(|| crate::ledger::DEFAULT_SCHEMA.to_owned()),
        )
        .user(config.user.clone())
        .build_lazy()
        .map_err(|e| Error::config(e.to_string()))?;
    let book = super::book::PostgresBudgetBook::new(&storage);
    Ok((Arc::new(storage), Arc::new(book)))
}

#[cfg(not(feature = "postgres"))]
fn postgres_ledger(_config: &Config, _url: &str) -> Result<LedgerAndBook, Error> {
    Err(Error::config(
        "a PostgreSQL ledger is configured (storage / COSTLAYER_DATABASE_URL) but costlayer \
         was built without the `postgres` feature: enable it in Cargo.toml, or remove the setting",
    ))
}

/// The embedded prices, with the config's price file merged over them.
pub(super) fn load_prices(config: &Config) -> Result<PriceTable, Error> {
    match &config.prices {
        Some(path) => PriceTable::with_user_file(path).map_err(|e| Error::config(e.to_string())),
        None => Ok(PriceTable::embedded().clone()),
    }
}

pub(super) fn budget_error(e: BudgetError) -> Error {
    Error::config(e.to_string())
}

pub(super) fn default_user() -> String {
    let u = whoami::username();
    if u.trim().is_empty() {
        "default".to_owned()
    } else {
        u
    }
}

pub(super) fn ledger_error(e: crate::ledger::LedgerError) -> Error {
    Error::Other(Box::new(e))
}
