//! Every setting, from one place: defaults, then `costlayer.toml`, then the
//! `COSTLAYER_*` environment variables (then, in the CLI, flags).
//!
//! [`Config::load`] is the one function every entry point uses (the library
//! builder [`CostTracker::from_config`](crate::tracker::CostTracker::from_config),
//! every CLI command, the examples), so they all read the same settings the
//! same way.
//!
//! # Precedence
//!
//! flags > environment > file > defaults. The file is the explicit path
//! given to [`Config::load`] (the CLI's `--config`), else the path in
//! `COSTLAYER_CONFIG`, else `./costlayer.toml` if it exists. An explicit or
//! `COSTLAYER_CONFIG` path that does not exist is an error; a missing
//! `./costlayer.toml` is not. An environment variable set to the empty
//! string counts as unset.
//!
//! # Environment variables (a public contract; each optional)
//!
//! | variable | setting | default |
//! |---|---|---|
//! | `COSTLAYER_CONFIG` | the config file | `./costlayer.toml` |
//! | `COSTLAYER_DATA_DIR` | ledger directory (holds `costs_<user>.jsonl`) | `data/metadata` |
//! | `COSTLAYER_SPOOL_DIR` | where records go when the ledger refuses them after a call was billed ([`Spool`](crate::ledger::Spool)) | none: memory |
//! | `COSTLAYER_USER` | who the spend is attributed to | the OS user |
//! | `COSTLAYER_TEAM` | the team | none |
//! | `COSTLAYER_MONTHLY_BUDGET` | monthly limit, USD decimal (`none` disables) | `200` |
//! | `COSTLAYER_TOTAL_BUDGET` | all-time limit, USD decimal (`none` disables) | `1000` |
//! | `COSTLAYER_START_DATE` | the project's first day (`budget.start_date`): enables the `month-1-2` budget | none |
//! | `COSTLAYER_ALERT_EMAILS` | recipients, comma-separated | none |
//! | `COSTLAYER_ALERT_FROM` | sender address | none |
//! | `COSTLAYER_SMTP_HOST` | SMTP server | none |
//! | `COSTLAYER_SMTP_PORT` | SMTP port | 25 / 587 / 465 by TLS mode |
//! | `COSTLAYER_SMTP_TLS` | `none`, `starttls` or `tls` | `starttls` |
//! | `COSTLAYER_SMTP_USERNAME` | SMTP login | none |
//! | `COSTLAYER_SMTP_PASSWORD` | SMTP password (never printed) | none |
//! | `COSTLAYER_WEBHOOK_URL` | alert webhook (never printed beyond its host) | none |
//! | `COSTLAYER_PRICES` | user price file, merged over the embedded prices | none |
//! | `COSTLAYER_DATABASE_URL` | a shared PostgreSQL ledger, `postgres://...` (never printed) | none: the JSONL ledger in `data_dir` |
//! | `COSTLAYER_DATABASE_SCHEMA` | the PostgreSQL schema holding the tables | `costlayer` |
//! | `COSTLAYER_REDIS_URL` | Redis for fleet-wide rate limits and cache, `redis://...` (never printed) | none |
//!
//! # The file
//!
//! ```toml
//! data_dir = "data/metadata"   # the ledger directory; relative paths are relative to this file
//! user = "alice"
//! team = "ml"
//! prices = "my-prices.toml"
//! storage = "postgres://costlayer@db.internal/costs"  # a shared ledger; default: JSONL in data_dir
//! redis_url = "redis://cache.internal:6379/"          # fleet-wide rate limits and cache
//!
//! [budget]
//! monthly = "200"              # USD; a string, an integer or a float; "none" disables
//! total = 1000
//! thresholds = [0.8, 1.0]      # for the monthly and total budgets; or ["80%", "100%"]
//! action = "alert"             # or "block"
//! start_date = "2026-01-01"    # enables the seed's "month-1-2" window: $800, critical
//! time_zone = "Europe/Berlin"  # months of monthly windows start at local midnight; default UTC
//! lease_seconds = 300          # the budget book: a dead process's holds go after this long
//! chunk_window_ms = 500        # how long a process serves calls from its leased chunk; 0 locks per call
//! chunk_max_calls = 32         # the most calls' worth one chunk covers; 0 locks per call
//!
//! [[budget.custom]]
//! name = "gpt-4o"
//! limit = "50"
//! window = "monthly"           # in budget.time_zone; or monthly:America/New_York, total, rolling:7d, 2026-01-01..2026-03-01
//! scope = "model:gpt-4o"       # all, user:NAME, team:NAME, provider:NAME
//! thresholds = [0.5, 1.0]
//! action = "block"
//! severity = "critical"        # info, warning, critical
//! alert_on_projection = true
//!
//! [alerts]
//! emails = ["oncall@example.com"]
//! from = "costlayer <alerts@example.com>"
//! stdout = "human"             # json, off
//! webhook_url = "https://hooks.slack.com/services/..."
//! webhook_format = "slack"     # or json
//!
//! [smtp]
//! host = "smtp.example.com"
//! port = 587
//! tls = "starttls"             # none, tls
//! username = "alerts"
//! password = "..."             # better in COSTLAYER_SMTP_PASSWORD
//! ```
//!
//! # Time zone
//!
//! `budget.time_zone` is an IANA name (`Europe/Berlin`, `America/New_York`,
//! `UTC`; see [`parse_time_zone`]). It sets
//! where every calendar month begins for the `monthly` budget and for custom
//! budgets whose window is plain `monthly`: local midnight on the 1st,
//! daylight saving included, with the period labelled by the local
//! `YYYY-MM`. A custom window `monthly:<zone>` names its own zone. Date
//! ranges and rolling windows stay in UTC. An unknown name is a
//! [`ConfigError::Invalid`] that names the key and gives an example (and the
//! closest known name).
//!
//! # Example
//!
//! ```
//! use std::collections::HashMap;
//! use costlayer::config::{Config, SmtpTls};
//! use costlayer::Money;
//!
//! let env: HashMap<&str, &str> = [
//!     ("COSTLAYER_USER", "alice"),
//!     ("COSTLAYER_MONTHLY_BUDGET", "12.50"),
//!     ("COSTLAYER_SMTP_TLS", "tls"),
//!     ("COSTLAYER_SMTP_PASSWORD", "hunter2"),
//! ].into();
//! let config = Config::load_with_env(None, |k| env.get(k).map(|v| v.to_string())).unwrap();
//! assert_eq!(config.user, "alice");
//! assert_eq!(config.monthly_budget, Some("12.50".parse::<Money>().unwrap()));
//! assert_eq!(config.smtp.tls, SmtpTls::Tls);
//! assert!(!format!("{config:?}").contains("hunter2"));
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::NaiveDate;
use serde::Deserialize;

use crate::budget::{
    parse_time_zone, Action, Budget, BudgetError, Scope, Severity, Threshold, Tz, Window,
};
use crate::Money;

/// The name of the config file looked for in the working directory.
pub const CONFIG_FILE_NAME: &str = "costlayer.toml";

/// A string that must never be printed: `Debug` shows `[redacted]`, and
/// there is no `Display`. Use [`Secret::expose`] where the value is needed.
///
/// ```
/// use costlayer::config::Secret;
/// let s = Secret::from("hunter2");
/// assert_eq!(format!("{s:?}"), "Secret([redacted])");
/// assert_eq!(s.expose(), "hunter2");
/// ```
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// A secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `true` if empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_owned())
    }
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SmtpTls {
    /// Plain text (a local relay, a test server). Default port 25.
    None,
    /// Upgrade with STARTTLS (the default). Default port 587.
    #[default]
    StartTls,
    /// Implicit TLS from the first byte. Default port 465.
    Tls,
}

impl FromStr for SmtpTls {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" | "off" | "plain" => Ok(SmtpTls::None),
            "starttls" => Ok(SmtpTls::StartTls),
            "tls" | "ssl" | "smtps" => Ok(SmtpTls::Tls),
            _ => Err(ConfigError::invalid(
                "COSTLAYER_SMTP_TLS / smtp.tls",
                s,
                "none, starttls or tls",
            )),
        }
    }
}

/// SMTP settings for the e-mail alert sink.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SmtpConfig {
    /// The server.
    pub host: Option<String>,
    /// The port (default by TLS mode: 25, 587, 465).
    pub port: Option<u16>,
    /// How the connection is secured.
    pub tls: SmtpTls,
    /// The login.
    pub username: Option<String>,
    /// The password (redacted in `Debug`).
    pub password: Option<Secret>,
}

/// How alerts are printed on standard output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum StdoutAlerts {
    /// Not at all.
    Off,
    /// A human line (the default).
    #[default]
    Human,
    /// A JSON line.
    Json,
}

/// Every costlayer setting. See the [module docs](self) for the sources and
/// their precedence.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// The file the settings were read from, if any.
    pub file: Option<PathBuf>,
    /// The ledger directory: it holds `costs_<user>.jsonl`, `alerts_<user>.jsonl`,
    /// `quarantine/` and `archive/`. The same directory as the CLI's `--data-dir`.
    pub data_dir: PathBuf,
    /// Where a record goes when the ledger refuses it after the call was
    /// billed (`spool_dir`, `COSTLAYER_SPOOL_DIR`); `None`: in memory.
    pub spool_dir: Option<PathBuf>,
    /// Who the spend is attributed to.
    pub user: String,
    /// The team.
    pub team: Option<String>,
    /// A user price file merged over the embedded prices.
    pub prices: Option<PathBuf>,
    /// The monthly limit (`None`: no monthly budget).
    pub monthly_budget: Option<Money>,
    /// The all-time limit (`None`: no total budget).
    pub total_budget: Option<Money>,
    /// Thresholds of the monthly and total budgets.
    pub budget_thresholds: Vec<Threshold>,
    /// Action of the monthly and total budgets.
    pub budget_action: Action,
    /// Start of the seed's "month-1-2" window ($800, critical); `None`
    /// disables it.
    pub budget_start: Option<NaiveDate>,
    /// The time zone of calendar-month windows (`budget.time_zone`):
    /// `None` for UTC. Applies to the monthly budget and to custom budgets
    /// whose window is plain `monthly`.
    pub budget_time_zone: Option<Tz>,
    /// Further budgets (`[[budget.custom]]`).
    pub custom_budgets: Vec<Budget>,
    /// Alert e-mail recipients.
    pub alert_emails: Vec<String>,
    /// Alert e-mail sender.
    pub alert_from: Option<String>,
    /// SMTP settings.
    pub smtp: SmtpConfig,
    /// Alert webhook URL (a secret: Slack puts the token in the path).
    pub webhook_url: Option<Secret>,
    /// Post only `{"text": ...}` (Slack-compatible) instead of the full alert.
    pub webhook_slack: bool,
    /// How alerts print on standard output.
    pub stdout_alerts: StdoutAlerts,
    /// A shared PostgreSQL ledger (`storage = "postgres://..."`,
    /// `COSTLAYER_DATABASE_URL`); `None` for the JSONL ledger in `data_dir`.
    /// A secret: the URL may hold a password.
    pub database_url: Option<Secret>,
    /// The PostgreSQL schema (`database_schema`, `COSTLAYER_DATABASE_SCHEMA`);
    /// `None` for `costlayer`.
    pub database_schema: Option<String>,
    /// Redis for fleet-wide rate limits and cache (`redis_url`,
    /// `COSTLAYER_REDIS_URL`). A secret.
    pub redis_url: Option<Secret>,
    /// The directory budget book's hold lease (`budget.lease_seconds`):
    /// how long other processes wait before they drop the holds of a
    /// process that stopped renewing them (one killed on another host);
    /// `None` for [`DEFAULT_LEASE`](crate::tracker::book::DEFAULT_LEASE)
    /// (5 minutes). See
    /// [`JsonlDirBookBuilder::lease`](crate::tracker::book::JsonlDirBookBuilder::lease).
    pub book_lease: Option<std::time::Duration>,
    /// How long a process serves reservations from its leased chunk
    /// before it takes the directory lock again (`budget.chunk_window_ms`;
    /// zero locks per call); `None` for 500 ms. See
    /// [`JsonlDirBookBuilder::chunk_window`](crate::tracker::book::JsonlDirBookBuilder::chunk_window).
    pub book_chunk_window: Option<std::time::Duration>,
    /// The most calls' worth one chunk covers (`budget.chunk_max_calls`;
    /// zero locks per call); `None` for 32. See
    /// [`JsonlDirBookBuilder::chunk_max_calls`](crate::tracker::book::JsonlDirBookBuilder::chunk_max_calls).
    pub book_chunk_max_calls: Option<u32>,
}

impl Default for Config {
    /// The defaults: `data/`, the OS user, monthly $200 and total $1,000
    /// (alert at 80% and 100%), alerts printed on standard output.
    fn default() -> Self {
        Config {
            file: None,
            data_dir: PathBuf::from("data/metadata"),
            spool_dir: None,
            user: default_user(),
            team: None,
            prices: None,
            monthly_budget: Money::from_usd(200),
            total_budget: Money::from_usd(1_000),
            budget_thresholds: crate::budget::DEFAULT_THRESHOLDS.to_vec(),
            budget_action: Action::AlertOnly,
            budget_start: None,
            budget_time_zone: None,
            custom_budgets: Vec::new(),
            alert_emails: Vec::new(),
            alert_from: None,
            smtp: SmtpConfig::default(),
            webhook_url: None,
            webhook_slack: false,
            stdout_alerts: StdoutAlerts::Human,
            database_url: None,
            database_schema: None,
            redis_url: None,
            book_lease: None,
            book_chunk_window: None,
            book_chunk_max_calls: None,
        }
    }
}

fn default_user() -> String {
    let u = whoami::username();
    if u.trim().is_empty() {
        "default".to_owned()
    } else {
        u
    }
}

/// Why the configuration could not be loaded. Messages name the file or
/// variable and what is expected; secrets are never echoed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// An explicit config file does not exist.
    #[error("config file {path} does not exist: check --config or COSTLAYER_CONFIG")]
    NotFound {
        /// The path.
        path: PathBuf,
    },
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}. Check its permissions")]
    Read {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or has an unknown key.
    #[error("{path}: {message}")]
    Parse {
        /// The path.
        path: PathBuf,
        /// What is wrong (with line and column).
        message: String,
    },
    /// A setting has a value that cannot be used.
    #[error("{key} = `{value}` is not valid: expected {expected}")]
    Invalid {
        /// The variable or file key.
        key: String,
        /// The value (never a secret).
        value: String,
        /// What is accepted.
        expected: String,
    },
    /// A budget is invalid.
    #[error(transparent)]
    Budget(#[from] BudgetError),
}

impl ConfigError {
    fn invalid(key: &str, value: &str, expected: &str) -> Self {
        ConfigError::Invalid {
            key: key.to_owned(),
            value: value.to_owned(),
            expected: expected.to_owned(),
        }
    }
}

impl From<ConfigError> for crate::Error {
    fn from(e: ConfigError) -> Self {
        crate::Error::config(e.to_string())
    }
}

/// `storage`: `jsonl` (the ledger in `data_dir`) or a PostgreSQL URL.
fn storage_value(key: &str, v: &str) -> Result<Option<Secret>, ConfigError> {
    let v = v.trim();
    if v.eq_ignore_ascii_case("jsonl") {
        return Ok(None);
    }
    if v.starts_with("postgres://") || v.starts_with("postgresql://") {
        return Ok(Some(Secret::new(v)));
    }
    // Not echoed: a mistyped URL may still hold a password.
    Err(ConfigError::invalid(
        key,
        "(not shown)",
        "`jsonl` or a PostgreSQL URL such as postgres://USER@HOST:5432/DATABASE",
    ))
}

// ---- the file's shape ------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    spool_dir: Option<PathBuf>,
    user: Option<String>,
    team: Option<String>,
    prices: Option<PathBuf>,
    storage: Option<String>,
    database_schema: Option<String>,
    redis_url: Option<String>,
    budget: Option<FileBudgets>,
    alerts: Option<FileAlerts>,
    smtp: Option<FileSmtp>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBudgets {
    monthly: Option<toml::Value>,
    total: Option<toml::Value>,
    thresholds: Option<Vec<toml::Value>>,
    action: Option<String>,
    start_date: Option<toml::Value>,
    time_zone: Option<String>,
    lease_seconds: Option<u64>,
    chunk_window_ms: Option<u64>,
    chunk_max_calls: Option<u32>,
    #[serde(default)]
    custom: Vec<FileBudget>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBudget {
    name: String,
    limit: toml::Value,
    #[serde(default)]
    window: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    thresholds: Option<Vec<toml::Value>>,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    alert_on_projection: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAlerts {
    #[serde(default)]
    emails: Option<Vec<String>>,
    from: Option<String>,
    stdout: Option<String>,
    webhook_url: Option<Secret>,
    webhook_format: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSmtp {
    host: Option<String>,
    port: Option<u16>,
    tls: Option<String>,
    username: Option<String>,
    password: Option<Secret>,
}

/// A dollar amount from TOML: `"12.50"`, `12`, `12.5`, or `"none"`.
fn money_value(key: &str, v: &toml::Value) -> Result<Option<Money>, ConfigError> {
    let s = match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        // Rust prints floats in their shortest round-trip form (0.1 → "0.1").
        toml::Value::Float(f) => f.to_string(),
        other => other.to_string(),
    };
    money_str(key, &s)
}

fn money_str(key: &str, s: &str) -> Result<Option<Money>, ConfigError> {
    let t = s.trim();
    if matches!(t.to_ascii_lowercase().as_str(), "none" | "off" | "") {
        return Ok(None);
    }
    t.parse::<Money>().map(Some).map_err(|_| {
        ConfigError::invalid(
            key,
            s,
            "a dollar amount such as 200 or 12.50 (or `none` to disable)",
        )
    })
}

fn threshold_value(key: &str, v: &toml::Value) -> Result<Threshold, ConfigError> {
    let s = match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        other => other.to_string(),
    };
    s.parse::<Threshold>().map_err(|_| {
        ConfigError::invalid(
            key,
            &s,
            "a fraction in (0, 10] such as 0.8, or a percentage such as \"80%\"",
        )
    })
}

fn date_value(key: &str, v: &toml::Value) -> Result<NaiveDate, ConfigError> {
    let s = match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|_| ConfigError::invalid(key, &s, "a date such as 2026-01-01"))
}

/// An IANA time-zone name; `UTC` (or empty) is `None`, the default.
fn time_zone_value(key: &str, s: &str) -> Result<Option<Tz>, ConfigError> {
    match s.trim() {
        "" | "UTC" | "utc" => Ok(None),
        name => match parse_time_zone(name) {
            Ok(tz) => Ok(Some(tz)),
            Err(BudgetError::UnknownTimeZone {
                suggestion: Some(near),
                ..
            }) => Err(ConfigError::invalid(
                key,
                s,
                &format!("an IANA time zone name such as Europe/Berlin or America/New_York (did you mean {near}?)"),
            )),
            Err(_) => Err(ConfigError::invalid(
                key,
                s,
                "an IANA time zone name such as Europe/Berlin, America/New_York or UTC",
            )),
        },
    }
}

fn parse_with<T: FromStr>(key: &str, s: &str, expected: &str) -> Result<T, ConfigError> {
    s.parse::<T>()
        .map_err(|_| ConfigError::invalid(key, s, expected))
}

impl Config {
    /// The directory budget book on [`data_dir`](Self::data_dir) with this
    /// configuration's lease and chunk settings (the defaults where none
    /// is set), as [`CostTracker::from_config`](crate::tracker::CostTracker::from_config)
    /// and `cost-tracker` use it.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let mut config = costlayer::config::Config::default();
    /// config.data_dir = dir.path().to_path_buf();
    /// config.book_chunk_window = Some(std::time::Duration::ZERO);
    /// let book = config.jsonl_book()?;
    /// assert_eq!(book.chunk_window(), std::time::Duration::ZERO);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`BookError`](crate::tracker::book::BookError) if the directory
    /// cannot be created, or for a zero lease.
    pub fn jsonl_book(
        &self,
    ) -> Result<crate::tracker::book::JsonlDirBook, crate::tracker::book::BookError> {
        let mut book = crate::tracker::book::JsonlDirBook::builder(&self.data_dir);
        if let Some(lease) = self.book_lease {
            book = book.lease(lease);
        }
        if let Some(window) = self.book_chunk_window {
            book = book.chunk_window(window);
        }
        if let Some(calls) = self.book_chunk_max_calls {
            book = book.chunk_max_calls(calls);
        }
        book.build()
    }

    /// Whether any budget book setting differs from the defaults.
    pub(crate) fn has_book_settings(&self) -> bool {
        self.book_lease.is_some()
            || self.book_chunk_window.is_some()
            || self.book_chunk_max_calls.is_some()
    }

    /// Loads the configuration: defaults, then the config file (`explicit`,
    /// else `COSTLAYER_CONFIG`, else `./costlayer.toml` if present), then
    /// the `COSTLAYER_*` environment variables.
    ///
    /// # Errors
    ///
    /// A missing explicit file, unreadable or malformed TOML, an unknown
    /// key, or an invalid value (with the key and what is expected).
    pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_with_env(explicit, |k| std::env::var(k).ok())
    }

    /// [`Config::load`] with the environment read through `env` (for tests,
    /// and for programs that keep settings elsewhere).
    ///
    /// # Errors
    ///
    /// As [`Config::load`].
    pub fn load_with_env(
        explicit: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let get = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let mut config = Config::default();
        let file = match (explicit, get("COSTLAYER_CONFIG")) {
            (Some(p), _) => Some((p.to_path_buf(), true)),
            (None, Some(p)) => Some((PathBuf::from(p), true)),
            (None, None) => {
                let p = PathBuf::from(CONFIG_FILE_NAME);
                p.is_file().then_some((p, false))
            }
        };
        if let Some((path, required)) = file {
            match std::fs::read_to_string(&path) {
                Ok(text) => config.apply_file(&path, &text)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && required => {
                    return Err(ConfigError::NotFound { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(ConfigError::Read { path, source }),
            }
        }
        config.apply_env(get)?;
        Ok(config)
    }

    /// Parses a config file's text over these settings. Relative paths in
    /// it are taken relative to the file's directory.
    ///
    /// # Errors
    ///
    /// Malformed TOML, an unknown key or an invalid value.
    pub fn apply_file(&mut self, path: &Path, text: &str) -> Result<(), ConfigError> {
        let f: FileConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new(""));
        let rel = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        self.file = Some(path.to_path_buf());
        if let Some(d) = f.data_dir {
            self.data_dir = rel(d);
        }
        if let Some(d) = f.spool_dir {
            self.spool_dir = Some(rel(d));
        }
        if let Some(u) = f.user {
            self.user = u;
        }
        if let Some(t) = f.team {
            self.team = Some(t);
        }
        if let Some(p) = f.prices {
            self.prices = Some(rel(p));
        }
        if let Some(v) = f.storage {
            self.database_url = storage_value("storage", &v)?;
        }
        if let Some(v) = f.database_schema {
            self.database_schema = Some(v);
        }
        if let Some(v) = f.redis_url {
            self.redis_url = Some(Secret::new(v));
        }
        if let Some(b) = f.budget {
            if let Some(v) = &b.monthly {
                self.monthly_budget = money_value("budget.monthly", v)?;
            }
            if let Some(v) = &b.total {
                self.total_budget = money_value("budget.total", v)?;
            }
            if let Some(ts) = &b.thresholds {
                self.budget_thresholds = ts
                    .iter()
                    .map(|v| threshold_value("budget.thresholds", v))
                    .collect::<Result<_, _>>()?;
            }
            if let Some(a) = &b.action {
                self.budget_action = parse_with("budget.action", a, "alert or block")?;
            }
            if let Some(d) = &b.start_date {
                self.budget_start = Some(date_value("budget.start_date", d)?);
            }
            if let Some(z) = &b.time_zone {
                self.budget_time_zone = time_zone_value("budget.time_zone", z)?;
            }
            if let Some(secs) = b.lease_seconds {
                if secs == 0 {
                    return Err(ConfigError::invalid(
                        "budget.lease_seconds",
                        "0",
                        "a whole number of seconds, at least 1 (default 300)",
                    ));
                }
                self.book_lease = Some(std::time::Duration::from_secs(secs));
            }
            if let Some(ms) = b.chunk_window_ms {
                self.book_chunk_window = Some(std::time::Duration::from_millis(ms));
            }
            if let Some(calls) = b.chunk_max_calls {
                self.book_chunk_max_calls = Some(calls);
            }
            for c in b.custom {
                self.custom_budgets.push(custom_budget(c)?);
            }
        }
        if let Some(a) = f.alerts {
            if let Some(e) = a.emails {
                self.alert_emails = e;
            }
            if let Some(from) = a.from {
                self.alert_from = Some(from);
            }
            if let Some(s) = a.stdout {
                self.stdout_alerts = parse_stdout("alerts.stdout", &s)?;
            }
            if let Some(u) = a.webhook_url {
                self.webhook_url = Some(u);
            }
            if let Some(fmt) = a.webhook_format {
                self.webhook_slack = match fmt.trim() {
                    "slack" => true,
                    "json" => false,
                    _ => {
                        return Err(ConfigError::invalid(
                            "alerts.webhook_format",
                            &fmt,
                            "slack or json",
                        ))
                    }
                };
            }
        }
        if let Some(s) = f.smtp {
            if let Some(h) = s.host {
                self.smtp.host = Some(h);
            }
            if let Some(p) = s.port {
                if p == 0 {
                    return Err(ConfigError::invalid(
                        "smtp.port",
                        "0",
                        "a port from 1 to 65535",
                    ));
                }
                self.smtp.port = Some(p);
            }
            if let Some(t) = s.tls {
                self.smtp.tls = t.parse()?;
            }
            if let Some(u) = s.username {
                self.smtp.username = Some(u);
            }
            if let Some(p) = s.password {
                self.smtp.password = Some(p);
            }
        }
        Ok(())
    }

    /// Applies the `COSTLAYER_*` variables read through `get` (which should
    /// return `None` for unset or empty variables).
    ///
    /// # Errors
    ///
    /// An invalid value, naming the variable.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = get("COSTLAYER_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = get("COSTLAYER_SPOOL_DIR") {
            self.spool_dir = Some(PathBuf::from(v));
        }
        if let Some(v) = get("COSTLAYER_USER") {
            self.user = v;
        }
        if let Some(v) = get("COSTLAYER_TEAM") {
            self.team = Some(v);
        }
        if let Some(v) = get("COSTLAYER_PRICES") {
            self.prices = Some(PathBuf::from(v));
        }
        if let Some(v) = get("COSTLAYER_DATABASE_URL") {
            self.database_url = storage_value("COSTLAYER_DATABASE_URL", &v)?;
        }
        if let Some(v) = get("COSTLAYER_DATABASE_SCHEMA") {
            self.database_schema = Some(v);
        }
        if let Some(v) = get("COSTLAYER_REDIS_URL") {
            self.redis_url = Some(Secret::new(v));
        }
        if let Some(v) = get("COSTLAYER_MONTHLY_BUDGET") {
            self.monthly_budget = money_str("COSTLAYER_MONTHLY_BUDGET", &v)?;
        }
        if let Some(v) = get("COSTLAYER_TOTAL_BUDGET") {
            self.total_budget = money_str("COSTLAYER_TOTAL_BUDGET", &v)?;
        }
        if let Some(v) = get("COSTLAYER_START_DATE") {
            self.budget_start = Some(date_value("COSTLAYER_START_DATE", &toml::Value::String(v))?);
        }
        if let Some(v) = get("COSTLAYER_ALERT_EMAILS") {
            self.alert_emails = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if let Some(v) = get("COSTLAYER_ALERT_FROM") {
            self.alert_from = Some(v);
        }
        if let Some(v) = get("COSTLAYER_SMTP_HOST") {
            self.smtp.host = Some(v);
        }
        if let Some(v) = get("COSTLAYER_SMTP_PORT") {
            let port: u16 = parse_with("COSTLAYER_SMTP_PORT", v.trim(), "a port from 1 to 65535")?;
            if port == 0 {
                return Err(ConfigError::invalid(
                    "COSTLAYER_SMTP_PORT",
                    &v,
                    "a port from 1 to 65535",
                ));
            }
            self.smtp.port = Some(port);
        }
        if let Some(v) = get("COSTLAYER_SMTP_TLS") {
            self.smtp.tls = v.parse()?;
        }
        if let Some(v) = get("COSTLAYER_SMTP_USERNAME") {
            self.smtp.username = Some(v);
        }
        if let Some(v) = get("COSTLAYER_SMTP_PASSWORD") {
            self.smtp.password = Some(Secret(v));
        }
        if let Some(v) = get("COSTLAYER_WEBHOOK_URL") {
            self.webhook_url = Some(Secret(v));
        }
        Ok(())
    }

    /// The budgets these settings describe: `total`, `monthly`, the seed's
    /// `month-1-2` window if `budget_start` is set, then the custom ones.
    ///
    /// # Errors
    ///
    /// An invalid or duplicated budget.
    pub fn budgets(&self) -> Result<Vec<Budget>, ConfigError> {
        let mut out = Vec::new();
        if let Some(limit) = self.total_budget {
            out.push(
                Budget::total(limit)
                    .thresholds(self.budget_thresholds.iter().copied())
                    .action(self.budget_action),
            );
        }
        if let Some(limit) = self.monthly_budget {
            out.push(
                Budget::monthly(limit)
                    .thresholds(self.budget_thresholds.iter().copied())
                    .action(self.budget_action),
            );
        }
        if let Some(start) = self.budget_start {
            if let Some(b) = Budget::seed_defaults(start).pop() {
                out.push(b);
            }
        }
        out.extend(self.custom_budgets.iter().cloned());
        if let Some(zone) = self.budget_time_zone {
            // The monthly budget, and custom windows given as plain
            // `monthly` (the others name their own zone or are not months).
            for b in out.iter_mut().filter(|b| b.window == Window::monthly()) {
                b.window = Window::monthly_in(zone);
            }
        }
        let mut seen = std::collections::HashSet::new();
        for b in &out {
            b.validate()?;
            if !seen.insert(b.name.as_str()) {
                return Err(BudgetError::DuplicateName {
                    name: b.name.clone(),
                }
                .into());
            }
        }
        Ok(out)
    }
}

fn parse_stdout(key: &str, s: &str) -> Result<StdoutAlerts, ConfigError> {
    match s.trim() {
        "off" | "none" => Ok(StdoutAlerts::Off),
        "human" => Ok(StdoutAlerts::Human),
        "json" => Ok(StdoutAlerts::Json),
        _ => Err(ConfigError::invalid(key, s, "human, json or off")),
    }
}

fn custom_budget(c: FileBudget) -> Result<Budget, ConfigError> {
    let key = format!("budget.custom `{}`", c.name);
    let limit = money_value(&format!("{key}.limit"), &c.limit)?
        .ok_or_else(|| ConfigError::invalid(&format!("{key}.limit"), "none", "a dollar amount"))?;
    let window = match &c.window {
        Some(w) => w.parse::<Window>()?,
        None => Window::monthly(),
    };
    let mut b = Budget::new(c.name.clone(), limit, window);
    if let Some(s) = &c.scope {
        b = b.scope(s.parse::<Scope>()?);
    }
    if let Some(ts) = &c.thresholds {
        let ts = ts
            .iter()
            .map(|v| threshold_value(&format!("{key}.thresholds"), v))
            .collect::<Result<Vec<_>, _>>()?;
        b = b.thresholds(ts);
    }
    if let Some(a) = &c.action {
        b = b.action(a.parse::<Action>()?);
    }
    if let Some(s) = &c.severity {
        b = b.severity(s.parse::<Severity>()?);
    }
    if let Some(p) = c.alert_on_projection {
        b = b.alert_on_projection(p);
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn env_overrides_file_and_file_overrides_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("costlayer.toml");
        std::fs::write(
            &path,
            r#"
data_dir = "ledger"
user = "file-user"
team = "ml"
[budget]
monthly = 50.5
total = "none"
thresholds = [0.5, "90%"]
action = "block"
start_date = "2026-01-15"
[[budget.custom]]
name = "gpt4o"
limit = 10
window = "rolling:7d"
scope = "model:gpt-4o"
severity = "critical"
[alerts]
emails = ["a@example.com"]
from = "x@example.com"
stdout = "json"
webhook_url = "https://hooks.example.com/secret-token"
webhook_format = "slack"
[smtp]
host = "smtp.example.com"
port = 2525
tls = "none"
password = "file-password"
"#,
        )
        .expect("write");
        let c = Config::load_with_env(
            Some(&path),
            env(&[
                ("COSTLAYER_USER", "env-user"),
                ("COSTLAYER_SMTP_PORT", "587"),
            ]),
        )
        .expect("load");
        assert_eq!(c.user, "env-user");
        assert_eq!(c.team.as_deref(), Some("ml"));
        assert_eq!(c.data_dir, dir.path().join("ledger"));
        assert_eq!(c.monthly_budget, Some("50.5".parse().expect("money")));
        assert_eq!(c.total_budget, None);
        assert_eq!(
            c.budget_thresholds,
            [Threshold::percent(50), Threshold::percent(90)]
        );
        assert_eq!(c.smtp.port, Some(587));
        assert_eq!(c.smtp.tls, SmtpTls::None);
        assert_eq!(c.stdout_alerts, StdoutAlerts::Json);
        assert!(c.webhook_slack);
        let names: Vec<_> = c
            .budgets()
            .expect("budgets")
            .into_iter()
            .map(|b| (b.name, b.action))
            .collect();
        assert_eq!(
            names,
            [
                ("monthly".to_string(), Action::Block),
                ("month-1-2".to_string(), Action::AlertOnly),
                ("gpt4o".to_string(), Action::AlertOnly)
            ]
        );
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("file-password") && !dbg.contains("secret-token"));
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = Config::load_with_env(None, env(&[("COSTLAYER_SMTP_PORT", "abc")]))
            .expect_err("bad port");
        assert!(e.to_string().contains("COSTLAYER_SMTP_PORT"), "{e}");
        let e = Config::load_with_env(None, env(&[("COSTLAYER_MONTHLY_BUDGET", "12,50")]))
            .expect_err("bad money");
        assert!(e.to_string().contains("12.50"), "{e}");
        let e = Config::load_with_env(None, env(&[("COSTLAYER_SMTP_TLS", "maybe")]))
            .expect_err("bad tls");
        assert!(e.to_string().contains("starttls"), "{e}");
        let e = Config::load_with_env(Some(Path::new("/definitely/not/here.toml")), env(&[]))
            .expect_err("missing file");
        assert!(matches!(e, ConfigError::NotFound { .. }));
    }

    #[test]
    fn unknown_keys_and_bad_budgets_are_errors() {
        let mut c = Config::default();
        let e = c
            .apply_file(Path::new("c.toml"), "usr = \"typo\"")
            .expect_err("unknown key");
        assert!(e.to_string().contains("usr"), "{e}");
        let mut c = Config::default();
        c.apply_file(
            Path::new("c.toml"),
            "[[budget.custom]]\nname = \"x\"\nlimit = \"-5\"",
        )
        .expect("parses");
        assert!(matches!(
            c.budgets(),
            Err(ConfigError::Budget(BudgetError::InvalidLimit { .. }))
        ));
        let mut c = Config::default();
        c.apply_file(
            Path::new("c.toml"),
            "[[budget.custom]]\nname = \"monthly\"\nlimit = 5",
        )
        .expect("parses");
        assert!(matches!(
            c.budgets(),
            Err(ConfigError::Budget(BudgetError::DuplicateName { .. }))
        ));
    }

    #[test]
    fn time_zone_sets_where_months_begin() {
        let mut c = Config::default();
        c.apply_file(
            Path::new("c.toml"),
            r#"
[budget]
time_zone = "Europe/Berlin"
[[budget.custom]]
name = "plain"
limit = 5
[[budget.custom]]
name = "ny"
limit = 5
window = "monthly:America/New_York"
[[budget.custom]]
name = "week"
limit = 5
window = "rolling:7d"
"#,
        )
        .expect("parses");
        assert_eq!(c.budget_time_zone, Some(Tz::Europe__Berlin));
        let windows: Vec<_> = c
            .budgets()
            .expect("budgets")
            .into_iter()
            .map(|b| (b.name, b.window))
            .collect();
        let berlin = Window::monthly_in(Tz::Europe__Berlin);
        assert_eq!(
            windows,
            [
                ("total".to_string(), Window::Total),
                ("monthly".to_string(), berlin.clone()),
                ("plain".to_string(), berlin),
                ("ny".to_string(), Window::monthly_in(Tz::America__New_York)),
                (
                    "week".to_string(),
                    Window::rolling_days(std::num::NonZeroU32::new(7).expect("nonzero"))
                ),
            ]
        );
        // Without the key, months are UTC.
        let c = Config::default();
        let monthly = c.budgets().expect("budgets");
        assert_eq!(monthly[1].window, Window::monthly());
    }

    #[test]
    fn budget_book_settings_are_read_and_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = Config::default();
        assert!(!c.has_book_settings());
        c.apply_file(
            Path::new("c.toml"),
            "[budget]\nlease_seconds = 60\nchunk_window_ms = 0\nchunk_max_calls = 4",
        )
        .expect("book settings");
        assert_eq!(c.book_lease, Some(std::time::Duration::from_secs(60)));
        assert_eq!(c.book_chunk_window, Some(std::time::Duration::ZERO));
        assert_eq!(c.book_chunk_max_calls, Some(4));
        assert!(c.has_book_settings());
        c.data_dir = dir.path().join("ledger");
        let book = c.jsonl_book().expect("book");
        assert_eq!(book.lease(), std::time::Duration::from_secs(60));
        assert_eq!(book.chunk_window(), std::time::Duration::ZERO);
        assert!(c.data_dir.is_dir(), "the book creates the ledger directory");

        let e = c
            .apply_file(Path::new("c.toml"), "[budget]\nlease_seconds = 0")
            .expect_err("zero lease");
        match &e {
            ConfigError::Invalid { key, .. } => assert_eq!(key, "budget.lease_seconds"),
            other => panic!("expected Invalid, got {other:?}"),
        }
        assert!(e.to_string().contains("at least 1"), "{e}");
        // A negative or non-integer value is refused by the file's parser,
        // naming the key.
        let e = c
            .apply_file(Path::new("c.toml"), "[budget]\nchunk_window_ms = -5")
            .expect_err("negative window");
        assert!(e.to_string().contains("chunk_window_ms"), "{e}");
    }

    #[test]
    fn unknown_time_zone_is_a_typed_error_with_an_example() {
        let mut c = Config::default();
        let e = c
            .apply_file(
                Path::new("c.toml"),
                "[budget]\ntime_zone = \"Mars/Olympus\"",
            )
            .expect_err("unknown zone");
        match &e {
            ConfigError::Invalid { key, value, .. } => {
                assert_eq!(key, "budget.time_zone");
                assert_eq!(value, "Mars/Olympus");
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
        assert!(e.to_string().contains("Europe/Berlin"), "{e}");
        let e = c
            .apply_file(
                Path::new("c.toml"),
                "[budget]\ntime_zone = \"Europe/Berln\"",
            )
            .expect_err("typo");
        assert!(e.to_string().contains("did you mean Europe/Berlin?"), "{e}");
        // A custom window's zone is checked too.
        let e = c
            .apply_file(
                Path::new("c.toml"),
                "[[budget.custom]]\nname = \"x\"\nlimit = 1\nwindow = \"monthly:Nowhere\"",
            )
            .expect_err("unknown custom zone");
        assert!(
            matches!(e, ConfigError::Budget(BudgetError::UnknownTimeZone { .. })),
            "{e:?}"
        );
    }

    #[test]
    fn defaults_are_the_seed_limits() {
        let c = Config::load_with_env(None, env(&[])).expect("defaults");
        assert_eq!(c.monthly_budget, Money::from_usd(200));
        assert_eq!(c.total_budget, Money::from_usd(1000));
        assert!(!c.user.is_empty());
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn storage_urls_come_from_the_file_or_the_environment_and_stay_secret() {
        let mut c = Config::default();
        c.apply_file(
            Path::new("/etc/costlayer.toml"),
            "storage = \"postgres://app:hunter2@db:5432/costs\"\nredis_url = \"redis://r:6379/\"\n",
        )
        .unwrap();
        assert_eq!(
            c.database_url.as_ref().map(Secret::expose),
            Some("postgres://app:hunter2@db:5432/costs")
        );
        assert!(!format!("{c:?}").contains("hunter2"));
        c.apply_env(env(&[
            ("COSTLAYER_DATABASE_URL", "jsonl"),
            ("COSTLAYER_DATABASE_SCHEMA", "prod"),
        ]))
        .unwrap();
        assert_eq!(c.database_url, None);
        assert_eq!(c.database_schema.as_deref(), Some("prod"));
        let e = c
            .apply_env(env(&[("COSTLAYER_DATABASE_URL", "mysql://u:hunter2@h/d")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("COSTLAYER_DATABASE_URL") && !e.contains("hunter2"),
            "{e}"
        );
    }
}
