//! One way to read the configuration, for every command:
//! flags > `COSTLAYER_*` environment > configuration file > defaults.
//!
//! [`Config::load`] reads the file and the environment (the same function
//! the library and the examples use); flags are applied over it here.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use costlayer::budget::Budget;
use costlayer::config::Config;
use costlayer::ledger::ScanFilter;

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
    pub(crate) now: DateTime<Utc>,
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
    if let (Some(s), Some(u)) = (args.since, args.until) {
        if s >= u {
            return Err(CliError::Usage(format!(
                "--since ({}) is not before --until ({}): swap them or widen the range",
                s.format("%Y-%m-%d %H:%M:%S UTC"),
                u.format("%Y-%m-%d %H:%M:%S UTC")
            )));
        }
    }
    let filter = ScanFilter {
        since: args.since,
        until: args.until,
        users: if args.team {
            Vec::new()
        } else {
            vec![config.user.clone()]
        },
        providers: args.provider.clone(),
        models: args.model.clone(),
        ..ScanFilter::default()
    };
    Ok(Settings {
        data_dir: args
            .common
            .data_dir
            .clone()
            .unwrap_or_else(|| config.data_dir.clone()),
        user: config.user.clone(),
        team: args.team,
        filter,
        budgets,
        recipients: config.alert_emails.clone(),
        now: now()?,
        database_url: config.database_url.as_ref().map(|u| u.expose().to_owned()),
        database_schema: config.database_schema.clone(),
    })
}
