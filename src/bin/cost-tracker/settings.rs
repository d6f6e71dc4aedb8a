//! One way to read the configuration, for every command:
//! flags > `COSTLAYER_*` environment > configuration file > defaults.
//!
//! [`Config::load`] reads the file and the environment (the same function
//! the library and the examples use); flags are applied over it here.

use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, Utc};
use costlayer::budget::Budget;
use costlayer::calendar::Calendar;
use costlayer::config::Config;
use costlayer::ledger::ScanFilter;
use costlayer::pricing::PriceTable;

use crate::args::{ConfigArgs, ReportArgs};
use crate::CliError;

/// Everything a report command needs, resolved.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) data_dir: PathBuf,
    pub(crate) user: String,
    pub(crate) team: bool,
    pub(crate) filter: ScanFilter,
    pub(crate) budgets: Vec<Budget>,
    pub(crate) recipients: Vec<String>,
    /// How many of the recipients an alert can reach: a well-formed address,
    /// an SMTP host configured and e-mail built in.
    pub(crate) reachable: usize,
    /// The project's first day (`--start-date`), if set.
    pub(crate) start_date: Option<NaiveDate>,
    pub(crate) now: DateTime<Utc>,
    /// Where months and days begin (`budget.time_zone`, else UTC).
    pub(crate) calendar: Calendar,
    /// The shared PostgreSQL ledger, if one is configured (a secret).
    pub(crate) database_url: Option<String>,
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) database_schema: Option<String>,
}

/// The clock: `COSTLAYER_NOW` (RFC 3339) when set, a testing aid for
/// deterministic output; the system clock otherwise.
pub(crate) fn now() -> Result<DateTime<Utc>, CliError> {
    match std::env::var("COSTLAYER_NOW") {
        Ok(s) if !s.trim().is_empty() => DateTime::parse_from_rfc3339(s.trim())
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| {
                CliError::Usage(format!(
                    "COSTLAYER_NOW=`{s}` is not an RFC 3339 instant (e.g. 2026-11-16T12:00:00Z); unset it to use the system clock"
                ))
            }),
        _ => Ok(Utc::now()),
    }
}

/// The configuration with the flags applied.
pub(crate) fn config(args: &ConfigArgs) -> Result<Config, CliError> {
    let mut config =
        Config::load(args.config.as_deref()).map_err(|e| CliError::Usage(e.to_string()))?;
    if let Some(u) = &args.user {
        config.user = u.clone();
    }
    if let Some(m) = args.monthly_budget {
        config.monthly_budget = m.0;
    }
    if let Some(t) = args.total_budget {
        config.total_budget = t.0;
    }
    if let Some(d) = args.start_date {
        config.budget_start = Some(d);
    }
    if let Some(url) = &args.database_url {
        config
            .apply_env(|k| (k == "COSTLAYER_DATABASE_URL").then(|| url.clone()))
            .map_err(|e| {
                CliError::Usage(
                    e.to_string()
                        .replace("COSTLAYER_DATABASE_URL", "--database-url"),
                )
            })?;
    }
    Ok(config)
}

pub(crate) fn resolve(args: &ReportArgs) -> Result<Settings, CliError> {
    let config = config(&args.common)?;
    let budgets = config
        .budgets()
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let f = &args.filter;
    if let (Some(s), Some(u)) = (f.since, f.until) {
        if s >= u {
            return Err(CliError::Usage(format!(
                "--since ({}) is not before --until ({}): swap them or widen the range",
                s.format("%Y-%m-%d %H:%M:%S UTC"),
                u.format("%Y-%m-%d %H:%M:%S UTC")
            )));
        }
    }
    let filter = ScanFilter {
        since: f.since,
        until: f.until,
        users: if f.team {
            Vec::new()
        } else {
            vec![config.user.clone()]
        },
        providers: f.provider.clone(),
        // Aliases and dated ids (`claude-sonnet-4.5`) select the canonical
        // name the ledger records.
        models: f
            .model
            .iter()
            .map(|m| {
                PriceTable::embedded()
                    .get(m)
                    .map_or_else(|| m.clone(), |p| p.model.clone())
            })
            .collect(),
        ..ScanFilter::default()
    };
    Ok(Settings {
        data_dir: args
            .common
            .data_dir
            .clone()
            .unwrap_or_else(|| config.data_dir.clone()),
        user: config.user.clone(),
        team: f.team,
        filter,
        budgets,
        recipients: config.alert_emails.clone(),
        reachable: reachable(&config),
        start_date: config.budget_start,
        now: now()?,
        calendar: Calendar::from_zone(config.budget_time_zone),
        database_url: config.database_url.as_ref().map(|u| u.expose().to_owned()),
        database_schema: config.database_schema.clone(),
    })
}

/// The recipients an e-mail alert can reach: none without an SMTP host (or
/// without the `email` feature), else the well-formed addresses.
fn reachable(config: &Config) -> usize {
    if !cfg!(feature = "email") || config.smtp.host.as_deref().is_none_or(str::is_empty) {
        return 0;
    }
    config
        .alert_emails
        .iter()
        .filter(|a| well_formed(a))
        .count()
}

/// `local@domain.tld`, one `@`, no spaces.
fn well_formed(address: &str) -> bool {
    let mut parts = address.split('@');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(local), Some(domain), None) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !address.contains(char::is_whitespace)
        }
        _ => false,
    }
}
