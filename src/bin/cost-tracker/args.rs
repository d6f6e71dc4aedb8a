//! Flags shared by the dashboard, export and reset commands, and their parsers.

use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use costlayer::Money;

/// Where the ledger is, who you are, the budgets, and the config file: the
/// settings every command resolves the same way (flags > env > file > defaults).
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct ConfigArgs {
    /// The ledger directory, holding `costs_<user>.jsonl`. [default: $COSTLAYER_DATA_DIR, the config file's data_dir, or data/metadata]
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,

    /// The user: whose spend to show, whose ledger to reset, who a `chat` call is billed to. [default: $COSTLAYER_USER, the config file's, or the OS user]
    #[arg(long, value_name = "NAME")]
    pub(crate) user: Option<String>,

    /// Monthly budget in dollars, e.g. 500 or 199.99. [default: $COSTLAYER_MONTHLY_BUDGET, the config file's, or 200; `none` for no monthly budget]
    #[arg(long, value_name = "USD", value_parser = parse_budget, allow_hyphen_values = true)]
    pub(crate) monthly_budget: Option<BudgetLimit>,

    /// All-time budget in dollars. [default: $COSTLAYER_TOTAL_BUDGET, the config file's, or 1000; `none` for no all-time budget]
    #[arg(long, value_name = "USD", value_parser = parse_budget, allow_hyphen_values = true)]
    pub(crate) total_budget: Option<BudgetLimit>,

    /// The first day of the project (YYYY-MM-DD): enables the `month-1-2` budget ($800 over the first two months, critical) and the banner's project month. [default: $COSTLAYER_START_DATE, or the config file's budget.start_date]
    #[arg(long, value_name = "DATE", value_parser = parse_day)]
    pub(crate) start_date: Option<NaiveDate>,

    /// A shared PostgreSQL ledger, `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`, instead of the JSONL files in --data-dir. [default: $COSTLAYER_DATABASE_URL, or the config file's storage]
    #[arg(long, value_name = "URL")]
    pub(crate) database_url: Option<String>,

    /// The configuration file. [default: $COSTLAYER_CONFIG, or ./costlayer.toml if it exists]
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
}

/// Which records a report covers.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct FilterArgs {
    /// Every user's ledger in the data directory, aggregated.
    #[arg(long)]
    pub(crate) team: bool,

    /// Only calls on or after DATE (YYYY-MM-DD, UTC, or RFC 3339).
    #[arg(long, value_name = "DATE", value_parser = parse_since)]
    pub(crate) since: Option<DateTime<Utc>>,

    /// Only calls on or before DATE (YYYY-MM-DD: the whole day, UTC; or an RFC 3339 instant, exclusive).
    #[arg(long, value_name = "DATE", value_parser = parse_until)]
    pub(crate) until: Option<DateTime<Utc>>,

    /// Only calls to this provider (repeatable).
    #[arg(long, value_name = "NAME")]
    pub(crate) provider: Vec<String>,

    /// Only calls to this model (repeatable; a canonical name, alias or dated id).
    #[arg(long, value_name = "NAME")]
    pub(crate) model: Vec<String>,
}

/// Where the ledger is and whose it is, without budgets: what `export` and
/// `reset` need.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct LedgerArgs {
    /// The ledger directory, holding `costs_<user>.jsonl`. [default: $COSTLAYER_DATA_DIR, the config file's data_dir, or data/metadata]
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,

    /// The user whose ledger to read. [default: $COSTLAYER_USER, the config file's, or the OS user]
    #[arg(long, value_name = "NAME")]
    pub(crate) user: Option<String>,

    /// A shared PostgreSQL ledger, `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`, instead of the JSONL files in --data-dir. [default: $COSTLAYER_DATABASE_URL, or the config file's storage]
    #[arg(long, value_name = "URL")]
    pub(crate) database_url: Option<String>,

    /// The configuration file. [default: $COSTLAYER_CONFIG, or ./costlayer.toml if it exists]
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
}

impl From<LedgerArgs> for ConfigArgs {
    fn from(a: LedgerArgs) -> Self {
        ConfigArgs {
            data_dir: a.data_dir,
            user: a.user,
            database_url: a.database_url,
            config: a.config,
            ..ConfigArgs::default()
        }
    }
}

/// `cost-tracker dashboard`.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct DashboardArgs {
    #[command(flatten)]
    pub(crate) common: ConfigArgs,

    #[command(flatten)]
    pub(crate) filter: FilterArgs,

    /// Print machine-readable JSON instead of the dashboard (money in integer nano-dollars).
    #[arg(long)]
    pub(crate) json: bool,

    /// Add model, user, cache, projection and daily-spend sections.
    #[arg(long, short = 'v')]
    pub(crate) verbose: bool,
}

/// `cost-tracker export FILE`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ExportArgs {
    /// The CSV file (`-` for stdout).
    pub(crate) file: PathBuf,

    #[command(flatten)]
    pub(crate) ledger: LedgerArgs,

    #[command(flatten)]
    pub(crate) filter: FilterArgs,

    /// Replace FILE if it exists.
    #[arg(long, short = 'f')]
    pub(crate) force: bool,
}

/// `cost-tracker reset`.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct ResetArgs {
    #[command(flatten)]
    pub(crate) ledger: LedgerArgs,

    /// Archive every user's ledger in the data directory.
    #[arg(long)]
    pub(crate) team: bool,

    /// Archive without asking (needed when stdin is not a terminal).
    #[arg(long, short = 'y')]
    pub(crate) yes: bool,

    /// Print the archive report as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Everything the dashboard, export and reset read: the flag form
/// (`--dashboard`, `--export FILE`, `--reset`) takes all of it, each
/// subcommand only its part.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct ReportArgs {
    #[command(flatten)]
    pub(crate) common: ConfigArgs,

    #[command(flatten)]
    pub(crate) filter: FilterArgs,

    /// Print machine-readable JSON instead of the dashboard (money in integer nano-dollars).
    #[arg(long)]
    pub(crate) json: bool,

    /// Add model, user, cache, projection and daily-spend sections to the dashboard.
    #[arg(long, short = 'v')]
    pub(crate) verbose: bool,

    /// Reset without asking (needed when stdin is not a terminal).
    #[arg(long, short = 'y')]
    pub(crate) yes: bool,

    /// Let --export replace an existing file.
    #[arg(long, short = 'f')]
    pub(crate) force: bool,
}

impl From<DashboardArgs> for ReportArgs {
    fn from(a: DashboardArgs) -> Self {
        ReportArgs {
            common: a.common,
            filter: a.filter,
            json: a.json,
            verbose: a.verbose,
            ..ReportArgs::default()
        }
    }
}

impl From<ExportArgs> for ReportArgs {
    fn from(a: ExportArgs) -> Self {
        ReportArgs {
            common: a.ledger.into(),
            filter: a.filter,
            force: a.force,
            ..ReportArgs::default()
        }
    }
}

impl From<ResetArgs> for ReportArgs {
    fn from(a: ResetArgs) -> Self {
        ReportArgs {
            common: a.ledger.into(),
            filter: FilterArgs {
                team: a.team,
                ..FilterArgs::default()
            },
            yes: a.yes,
            json: a.json,
            ..ReportArgs::default()
        }
    }
}

const DATE_HINT: &str = "use YYYY-MM-DD (UTC) or an RFC 3339 instant such as 2026-11-01T00:00:00Z";

fn parse_date(s: &str) -> Result<(DateTime<Utc>, bool), String> {
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let t = d
            .and_hms_opt(0, 0, 0)
            .map(|t| Utc.from_utc_datetime(&t))
            .ok_or_else(|| format!("`{s}` is out of range: {DATE_HINT}"))?;
        return Ok((t, true));
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| (t.with_timezone(&Utc), false))
        .map_err(|_| format!("`{s}` is not a date: {DATE_HINT}"))
}

/// `--start-date`: a calendar day.
pub(crate) fn parse_day(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|_| format!("`{s}` is not a day: use YYYY-MM-DD, such as 2026-01-15"))
}

/// `--since`: a day starts at 00:00 UTC.
pub(crate) fn parse_since(s: &str) -> Result<DateTime<Utc>, String> {
    parse_date(s).map(|(t, _)| t)
}

/// `--until`: a plain day includes the whole day (the filter's bound is
/// exclusive, so it becomes the next midnight).
pub(crate) fn parse_until(s: &str) -> Result<DateTime<Utc>, String> {
    let (t, day) = parse_date(s)?;
    Ok(if day {
        t + chrono::Duration::days(1)
    } else {
        t
    })
}

/// A budget flag's value: a limit, or `none` for no budget at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BudgetLimit(pub(crate) Option<Money>);

pub(crate) fn parse_budget(s: &str) -> Result<BudgetLimit, String> {
    if s.trim().eq_ignore_ascii_case("none") {
        return Ok(BudgetLimit(None));
    }
    let m: Money = s
        .parse()
        .map_err(|e| format!("{e}, or `none` for no budget"))?;
    if m.is_negative() {
        return Err(format!(
            "`{s}` is negative: a budget is a limit in dollars above 0 (e.g. 500)"
        ));
    }
    if m.is_zero() {
        return Err(format!(
            "`{s}` is zero: a budget is a limit in dollars above 0 (e.g. 500); `none` for no limit"
        ));
    }
    Ok(BudgetLimit(Some(m)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn until_a_day_includes_the_day() {
        let u = parse_until("2026-11-30").unwrap();
        assert_eq!(u, Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap());
        let i = parse_until("2026-11-30T12:00:00Z").unwrap();
        assert_eq!(i, Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap());
        assert!(parse_since("2026-13-01")
            .unwrap_err()
            .contains("YYYY-MM-DD"));
    }

    #[test]
    fn budgets_must_not_be_negative() {
        assert!(parse_budget("-5").unwrap_err().contains("negative"));
        assert_eq!(
            parse_budget("500").unwrap(),
            BudgetLimit(Money::from_usd(500))
        );
        assert_eq!(parse_budget("none").unwrap(), BudgetLimit(None));
        assert!(parse_budget("abc").is_err());
        assert!(parse_budget("0").unwrap_err().contains("zero"));
    }
}
