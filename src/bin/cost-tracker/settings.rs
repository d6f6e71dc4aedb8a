//! One way to read the configuration, for every command:
//! flags > `COSTLAYER_*` environment > configuration file > defaults.
//!
//! Flags and their environment variables are resolved by clap (`env = ...`
//! on each flag); this module adds the file and the defaults.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use costlayer::ledger::ScanFilter;
use costlayer::Money;
use serde::Deserialize;

use crate::args::ReportArgs;
use crate::CliError;

/// The default ledger directory.
pub(crate) const DEFAULT_DATA_DIR: &str = "data/metadata";
/// The default monthly budget (the Python tool's), in dollars.
pub(crate) const DEFAULT_MONTHLY_BUDGET_USD: i64 = 200;
/// The default all-time budget (the Python tool's), in dollars.
pub(crate) const DEFAULT_TOTAL_BUDGET_USD: i64 = 1_000;

/// Everything a report command needs, resolved.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) data_dir: PathBuf,
    pub(crate) user: String,
    pub(crate) team: bool,
    pub(crate) filter: ScanFilter,
    pub(crate) monthly_budget: Money,
    pub(crate) total_budget: Money,
    pub(crate) recipients: Vec<String>,
    pub(crate) now: DateTime<Utc>,
}

/// The subset of `costlayer.toml` the report commands read.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    user: Option<String>,
    budgets: FileBudgets,
    alerts: FileAlerts,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct FileBudgets {
    monthly: Option<String>,
    total: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct FileAlerts {
    emails: Vec<String>,
}

fn load_file(explicit: Option<&Path>) -> Result<FileConfig, CliError> {
    let (path, required) = match explicit {
        Some(p) => (p.to_path_buf(), true),
        None => (PathBuf::from("costlayer.toml"), false),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            return Ok(FileConfig::default())
        }
        Err(e) => {
            return Err(CliError::Usage(format!(
                "cannot read the configuration file {}: {e}. Check the --config path",
                path.display()
            )))
        }
    };
    toml::from_str(&text).map_err(|e| {
        CliError::Usage(format!(
            "invalid configuration file {}: {e}",
            path.display()
        ))
    })
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

pub(crate) fn resolve(args: &ReportArgs) -> Result<Settings, CliError> {
    let file = load_file(args.config.as_deref())?;
    let budget = |flag: Option<Money>, file: &Option<String>, name: &str, default: i64| {
        if let Some(m) = flag {
            return Ok(m);
        }
        match file {
            Some(s) => crate::args::parse_budget(s).map_err(|e| {
                CliError::Usage(format!("budgets.{name} in the configuration file: {e}"))
            }),
            None => Ok(Money::from_usd(default).unwrap_or(Money::MAX)),
        }
    };
    let monthly_budget = budget(
        args.monthly_budget,
        &file.budgets.monthly,
        "monthly",
        DEFAULT_MONTHLY_BUDGET_USD,
    )?;
    let total_budget = budget(
        args.total_budget,
        &file.budgets.total,
        "total",
        DEFAULT_TOTAL_BUDGET_USD,
    )?;
    let recipients = match std::env::var("COSTLAYER_ALERT_EMAILS") {
        Ok(s) if !s.trim().is_empty() => s
            .split(',')
            .map(|e| e.trim().to_owned())
            .filter(|e| !e.is_empty())
            .collect(),
        _ => file.alerts.emails,
    };
    let data_dir = args
        .data_dir
        .clone()
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let user = args
        .user
        .clone()
        .or(file.user)
        .unwrap_or_else(whoami::username);
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
            vec![user.clone()]
        },
        providers: args.provider.clone(),
        models: args.model.clone(),
        ..ScanFilter::default()
    };
    Ok(Settings {
        data_dir,
        user,
        team: args.team,
        filter,
        monthly_budget,
        total_budget,
        recipients,
        now: now()?,
    })
}
