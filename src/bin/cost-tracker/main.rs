//! `cost-tracker`: the costlayer command line.
//!
//! Every command reads the same configuration: flags, then the `COSTLAYER_*`
//! environment variables, then `costlayer.toml` (or `--config FILE`), then
//! defaults.
//!
//! Exit codes: 0 success, 1 runtime failure, 2 usage error.
//!
//! Testing aid: `COSTLAYER_NOW=2026-11-16T12:00:00Z` fixes the clock that
//! month-to-date, projections and the daily chart are computed against.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod args;
mod batch;
mod chat;
mod cost;
mod fleet;
mod models;
mod report;
mod reprice;
mod settings;
mod store;

use args::{DashboardArgs, ExportArgs, ReportArgs, ResetArgs};

const AFTER_HELP: &str = "\
Examples:
  cost-tracker --dashboard                        summary dashboard
  cost-tracker --dashboard --verbose              plus models, users, cache, projection, daily chart
  cost-tracker --dashboard --team --json          every user's ledger, machine-readable
  cost-tracker --export costs.csv                 every record as CSV
  cost-tracker --reset                            asks for confirmation, then archives (never deletes)
  cost-tracker --monthly-budget 500 --total-budget 2000 --dashboard
  cost-tracker chat --provider simulated 'Say hi'  one call through the full stack, priced and recorded
  cost-tracker reprice --prices new.toml --since 2026-11-01   the ledger under another table, per model and month
  cost-tracker batch submit --provider openai --input jobs.jsonl   held at batch rates; then batch wait ID

Configuration: flags > COSTLAYER_* environment > costlayer.toml (or --config FILE) > defaults.
Environment: COSTLAYER_DATA_DIR, COSTLAYER_USER, COSTLAYER_MONTHLY_BUDGET, COSTLAYER_TOTAL_BUDGET,
  COSTLAYER_START_DATE, COSTLAYER_ALERT_EMAILS (comma-separated), COSTLAYER_SMTP_HOST,
  COSTLAYER_CONFIG, NO_COLOR, COLUMNS.
  COSTLAYER_NOW (RFC 3339) fixes the clock, for tests and reproducible reports.
  RUST_LOG sets what is logged on stderr (default warn; e.g. RUST_LOG=costlayer=debug).
Exit codes: 0 ok, 1 runtime failure, 2 usage error.";

/// The about text of `cost-tracker --help` (the crate's description is the library's).
const ABOUT: &str = "See what your LLM calls cost: a dashboard of the costlayer ledger, CSV export, budgets, the price table, and test calls.";

/// The costlayer command line.
#[derive(Debug, Parser)]
#[command(
    name = "cost-tracker",
    version,
    about = ABOUT,
    long_about = None,
    after_help = AFTER_HELP,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// Show the dashboard: summary, budget status, e-mail alerts, provider breakdown.
    #[arg(long)]
    dashboard: bool,

    /// Write every matching record to FILE as CSV (`-` for stdout).
    #[arg(long, value_name = "FILE", conflicts_with = "reset")]
    export: Option<PathBuf>,

    /// Archive the ledger (asks for confirmation; --yes to skip). Never deletes.
    #[arg(long, conflicts_with = "dashboard")]
    reset: bool,

    #[command(flatten)]
    report: ReportArgs,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show the dashboard (same as --dashboard).
    Dashboard(DashboardArgs),
    /// Write every matching record as CSV (same as --export FILE).
    Export(ExportArgs),
    /// Archive the ledger after confirmation (same as --reset).
    Reset(ResetArgs),
    /// Price a usage on a model: breakdown by bucket and exact total.
    Cost(cost::CostArgs),
    /// List the price table: provider, model, rates per million tokens.
    Models(models::ModelsArgs),
    /// One call through the full stack: prints the answer and its exact cost, and records it.
    Chat(chat::ChatArgs),
    /// What the ledger would cost under another price file, per model and month, next to what was recorded.
    Reprice(reprice::RepriceArgs),
    /// Create or upgrade the PostgreSQL ledger's schema (--database-url).
    Migrate(fleet::MigrateArgs),
    /// Copy a JSONL ledger directory into PostgreSQL (idempotent: run it again safely).
    Import(fleet::ImportArgs),
    /// Batch jobs at batch rates: submit, status, wait, results, cancel, list.
    Batch(batch::BatchArgs),
}

/// A command's failure: a usage error (exit 2) or a runtime failure (exit 1).
#[derive(Debug)]
pub(crate) enum CliError {
    /// Bad input: the user must change the command.
    Usage(String),
    /// Something failed while running.
    Runtime(String),
}

impl From<costlayer::report::ReportError> for CliError {
    fn from(e: costlayer::report::ReportError) -> Self {
        CliError::Runtime(e.to_string())
    }
}

impl From<costlayer::ledger::LedgerError> for CliError {
    fn from(e: costlayer::ledger::LedgerError) -> Self {
        CliError::Runtime(e.to_string())
    }
}

enum Action {
    Report {
        args: ReportArgs,
        dashboard: bool,
        export: Option<PathBuf>,
        reset: bool,
    },
}

/// Logs to standard error, filtered by `RUST_LOG` (default `warn`), so
/// alert delivery failures and ledger problems are never silent.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        )
        .with_target(false)
        .try_init();
}

fn main() -> ExitCode {
    init_tracing();
    let cli = Cli::parse();
    let action = match cli.command {
        Some(Command::Cost(args)) => return cost::run(args),
        Some(Command::Models(args)) => return models::run(args),
        Some(Command::Chat(args)) => return finish(chat::run(args)),
        Some(Command::Reprice(args)) => return reprice::run(args),
        Some(Command::Migrate(args)) => return finish(fleet::migrate(args)),
        Some(Command::Import(args)) => return finish(fleet::import(args)),
        Some(Command::Batch(args)) => return finish(batch::run(args)),
        Some(Command::Dashboard(args)) => Action::Report {
            args: args.into(),
            dashboard: true,
            export: None,
            reset: false,
        },
        Some(Command::Export(args)) => Action::Report {
            export: Some(args.file.clone()),
            args: args.into(),
            dashboard: false,
            reset: false,
        },
        Some(Command::Reset(args)) => Action::Report {
            args: args.into(),
            dashboard: false,
            export: None,
            reset: true,
        },
        None => {
            let dashboard = cli.dashboard || cli.report.json && !cli.reset;
            if !dashboard && cli.export.is_none() && !cli.reset {
                use clap::CommandFactory;
                let _ = Cli::command().print_help();
                eprintln!("\nerror: say what to do: --dashboard, --export FILE or --reset (or a subcommand)");
                return ExitCode::from(2);
            }
            Action::Report {
                args: cli.report,
                dashboard,
                export: cli.export,
                reset: cli.reset,
            }
        }
    };
    finish(run(action))
}

pub(crate) fn finish(result: Result<(), CliError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Usage(m)) => {
            eprintln!("error: {}", shown(&m));
            ExitCode::from(2)
        }
        Err(CliError::Runtime(m)) => {
            eprintln!("error: {}", shown(&m));
            ExitCode::from(1)
        }
    }
}

/// Text from a ledger, a provider or an error, as it may reach the
/// terminal: known secrets and URL credentials masked, control characters
/// escaped (line breaks kept).
pub(crate) fn shown(text: &str) -> String {
    let text = costlayer::core::redact::text(text);
    text.split('\n')
        .map(|line| costlayer::report::terminal_safe(line).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

fn run(action: Action) -> Result<(), CliError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Runtime(format!("cannot start the async runtime: {e}")))?;
    rt.block_on(async move {
        match action {
            Action::Report {
                args,
                dashboard,
                export,
                reset,
            } => {
                let s = settings::resolve(&args)?;
                if reset {
                    let f = &args.filter;
                    let filtered = f.since.is_some()
                        || f.until.is_some()
                        || !f.provider.is_empty()
                        || !f.model.is_empty();
                    return report::reset(&s, filtered, args.yes, args.json).await;
                }
                if let Some(path) = export {
                    report::export(&s, &path, args.force)?;
                }
                if dashboard {
                    report::dashboard(&s, args.json, args.verbose).await?;
                }
                Ok(())
            }
        }
    })
}
