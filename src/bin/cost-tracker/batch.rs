//! `cost-tracker batch`: batch jobs at batch rates, held against the
//! blocking budgets, recorded once.
//!
//! Every subcommand reads the configuration as `chat` does and keeps its
//! jobs in `<data dir>/batches/registry.json`, so any later command (or
//! process) can follow a job. `--provider` is needed to submit; later
//! commands take it from the registry.
//!
//! Exit codes: 0 success; 1 the provider, a budget or the ledger refused;
//! 2 bad input (the job file, a flag, a missing key).

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use costlayer::batch::{BatchError, BatchJobs, JobEntry, ResultsReport};
use costlayer::core::{BatchProvider, BatchStatus};
use costlayer::mock::SimulatedProvider;
use costlayer::{Error, Money};
use serde_json::json;

use crate::args::ConfigArgs;
use crate::chat::{ApiName, ProviderName};
use crate::CliError;

/// Testing aid: how long a simulated batch job takes, in milliseconds
/// (default 2000).
const SIM_DELAY_ENV: &str = "COSTLAYER_SIMULATED_BATCH_MS";

/// Arguments of `cost-tracker batch`.
#[derive(Debug, clap::Args)]
pub(crate) struct BatchArgs {
    #[command(subcommand)]
    command: BatchCommand,
}

#[derive(Debug, clap::Subcommand)]
enum BatchCommand {
    /// Check a JSONL job file, hold its worst case at batch rates against the blocking budgets, and submit it.
    Submit(SubmitArgs),
    /// The job's state and request counts, from the provider.
    Status(IdArgs),
    /// Poll until the job ends (a progress bar on a terminal), then record its results.
    Wait(WaitArgs),
    /// Record the job's results (once) and write them as JSONL.
    Results(ResultsArgs),
    /// Ask the provider to cancel the job.
    Cancel(IdArgs),
    /// The jobs in the registry; with --provider, also recover the provider's jobs the registry lost.
    List(ListArgs),
}

#[derive(Debug, clap::Args)]
struct Common {
    /// The provider: openai, anthropic, gemini, or simulated (offline). [default: the job's, from the registry]
    #[arg(long, value_enum, value_name = "NAME")]
    provider: Option<ProviderName>,

    /// Print one JSON object.
    #[arg(long)]
    json: bool,

    /// A price file merged over the embedded table (costlayer TOML or LiteLLM JSON).
    #[arg(long, value_name = "FILE")]
    prices: Option<PathBuf>,

    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(Debug, clap::Args)]
struct SubmitArgs {
    /// The job: one request a line, `{"custom_id": ..., "request": {...}}` or the provider's own batch line.
    #[arg(long, value_name = "FILE")]
    input: PathBuf,

    /// The model of every request (replaces the file's).
    #[arg(long, value_name = "MODEL")]
    model: Option<String>,

    /// The OpenAI API every line runs on: chat (`/v1/chat/completions`) or
    /// responses (`/v1/responses`). One job has one endpoint; later commands
    /// read it from the job.
    #[arg(long, value_enum, value_name = "API", default_value = "chat")]
    api: ApiName,

    #[command(flatten)]
    common: Common,
}

#[derive(Debug, clap::Args)]
struct IdArgs {
    /// The batch id `submit` printed.
    #[arg(value_name = "ID")]
    id: String,

    #[command(flatten)]
    common: Common,
}

#[derive(Debug, clap::Args)]
struct WaitArgs {
    /// The batch id `submit` printed.
    #[arg(value_name = "ID")]
    id: String,

    /// Seconds between polls.
    #[arg(long, value_name = "SECONDS", default_value = "30", value_parser = parse_interval)]
    interval: Duration,

    #[command(flatten)]
    common: Common,
}

#[derive(Debug, clap::Args)]
struct ResultsArgs {
    /// The batch id `submit` printed.
    #[arg(value_name = "ID")]
    id: String,

    /// Where to write the results as JSONL (custom_id, text, usage, nano_usd, record_id, error); `-` for stdout.
    #[arg(long, value_name = "FILE", default_value = "-")]
    output: PathBuf,

    #[command(flatten)]
    common: Common,
}

#[derive(Debug, clap::Args)]
struct ListArgs {
    #[command(flatten)]
    common: Common,
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds (e.g. 30 or 0.5)"))?;
    if !v.is_finite() || v <= 0.0 || v > 86_400.0 {
        return Err(format!(
            "`{s}` is out of range: from just above 0 to 86400 seconds"
        ));
    }
    Ok(Duration::from_secs_f64(v))
}

/// Runs `cost-tracker batch`.
pub(crate) fn run(args: BatchArgs) -> Result<(), CliError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Runtime(format!("cannot start the async runtime: {e}")))?;
    rt.block_on(async move {
        match args.command {
            BatchCommand::Submit(a) => submit(a).await,
            BatchCommand::Status(a) => status(a).await,
            BatchCommand::Wait(a) => wait(a).await,
            BatchCommand::Results(a) => results(a).await,
            BatchCommand::Cancel(a) => cancel(a).await,
            BatchCommand::List(a) => list(a).await,
        }
    })
}

/// The jobs facade over the tracker `chat` would build (the PostgreSQL
/// ledger and book when one is configured), and the data dir.
fn open(common: &Common) -> Result<(BatchJobs, PathBuf), CliError> {
    let config = crate::chat::config_of(&common.config, common.prices.as_ref())?;
    let opened =
        crate::chat::open_tracker(&config, common.provider.unwrap_or(ProviderName::Openai))?;
    let jobs = BatchJobs::new(opened.tracker, &opened.data_dir)
        .map_err(|e| CliError::Usage(e.to_string()))?;
    Ok((jobs, opened.data_dir))
}

/// The batch client of `name`, from the environment; and its key, to scrub.
fn provider(
    name: ProviderName,
    api: ApiName,
    data_dir: &Path,
) -> Result<(Box<dyn BatchProvider>, Option<String>), CliError> {
    if api == ApiName::Responses && name != ProviderName::Openai {
        return Err(CliError::Usage(format!(
            "--api responses is OpenAI's Responses API: use it with --provider openai, not {}",
            name.as_str()
        )));
    }
    let key = name
        .key_vars()
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .map(|v| v.trim().to_owned())
        .find(|v| !v.is_empty());
    if let (None, [first, ..]) = (&key, name.key_vars()) {
        return Err(CliError::Usage(format!(
            "no {} API key: set {} (export {first}=...), or run offline with --provider simulated",
            name.label(),
            name.key_vars().join(" or ")
        )));
    }
    let setup = |e: Error| CliError::Usage(crate::chat::redact(&e.to_string(), key.as_deref()));
    let p: Box<dyn BatchProvider> = match name {
        ProviderName::Simulated => {
            let ms = std::env::var(SIM_DELAY_ENV)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(2000);
            Box::new(
                SimulatedProvider::builder()
                    .provider(name.as_str())
                    .batch_delay(Duration::from_millis(ms))
                    .batch_dir(data_dir.join("batches").join("simulated"))
                    .build(),
            )
        }
        #[cfg(feature = "openai")]
        ProviderName::Openai => match api {
            ApiName::Chat => Box::new(costlayer::openai::OpenAi::from_env().map_err(setup)?),
            ApiName::Responses => {
                Box::new(costlayer::openai::OpenAiResponses::from_env().map_err(setup)?)
            }
        },
        #[cfg(feature = "anthropic")]
        ProviderName::Anthropic => {
            Box::new(costlayer::anthropic::Anthropic::from_env().map_err(setup)?)
        }
        #[cfg(feature = "gemini")]
        ProviderName::Gemini => Box::new(costlayer::gemini::Gemini::from_env().map_err(setup)?),
        #[allow(unreachable_patterns)]
        other => {
            return Err(CliError::Usage(format!(
                "this cost-tracker was built without the `{}` feature: rebuild with it, or use --provider simulated",
                other.as_str()
            )))
        }
    };
    let _ = &setup;
    Ok((p, key))
}

/// The provider of job `id`: `--provider`, else the registry's.
async fn provider_of(
    jobs: &BatchJobs,
    common: &Common,
    id: &str,
    dir: &Path,
) -> Result<(Box<dyn BatchProvider>, Option<String>), CliError> {
    let name = match common.provider {
        Some(p) => p,
        None => {
            let entry = jobs.entry(id).await.map_err(|e| err(e, None))?;
            <ProviderName as clap::ValueEnum>::from_str(&entry.provider, true).map_err(|_| {
                CliError::Usage(format!(
                    "job `{id}` is on provider `{}`, which this command does not know: pass --provider",
                    entry.provider
                ))
            })?
        }
    };
    // Either OpenAI client reads any job (by the batch's own endpoint).
    provider(name, ApiName::Chat, dir)
}

/// A batch failure as a CLI error: bad input is a usage error (2), the
/// rest runtime failures (1); the key scrubbed.
fn err(e: BatchError, key: Option<&str>) -> CliError {
    let msg = crate::chat::redact(&e.to_string(), key);
    match e {
        BatchError::Input(_) => CliError::Usage(msg),
        BatchError::Call(Error::BudgetExceeded { .. }) => CliError::Runtime(format!(
            "BudgetExceeded: {msg} (the job was not submitted: nothing was uploaded, held or billed)"
        )),
        BatchError::Call(Error::Config { .. }) => CliError::Usage(msg),
        _ => CliError::Runtime(msg),
    }
}

fn usd(m: Option<Money>) -> String {
    m.map_or_else(|| "unpriced".to_owned(), |m| m.to_string())
}

fn entry_json(e: &JobEntry) -> serde_json::Value {
    json!({
        "id": e.id,
        "provider": e.provider,
        "state": e.state,
        "total": e.total,
        "succeeded": e.succeeded,
        "failed": e.failed,
        "estimate_nano_usd": e.estimate.map(Money::nanos),
        "held_nano_usd": e.held.map(Money::nanos),
        "released": e.released,
        "recorded": e.recorded.len(),
        "recovered": e.recovered,
        "submitted_at": e.submitted_at,
        "expires_at": e.expires_at,
    })
}

fn status_line(e: &JobEntry) -> String {
    let s = e.status();
    format!(
        "{} {} {}: {}/{} done ({} succeeded, {} failed)",
        e.id,
        e.provider,
        e.state,
        s.finished(),
        s.total,
        s.succeeded,
        s.failed
    )
}

async fn submit(a: SubmitArgs) -> Result<(), CliError> {
    let (jobs, dir) = open(&a.common)?;
    let name = a.common.provider.ok_or_else(|| {
        CliError::Usage(
            "say which provider runs the job: --provider openai|anthropic|gemini|simulated".into(),
        )
    })?;
    let text = std::fs::read_to_string(&a.input)
        .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", a.input.display())))?;
    let (p, key) = provider(name, a.api, &dir)?;
    let items = costlayer::batch::parse_jsonl(
        &text,
        a.model.as_deref(),
        &p.limits(),
        jobs.tracker().prices(),
    )
    .map_err(|e| CliError::Usage(format!("{}: {e}", a.input.display())))?;
    let n = items.len();
    let estimate = jobs.estimate(&items);
    let sub = jobs
        .submit(p.as_ref(), items)
        .await
        .map_err(|e| err(e, key.as_deref()))?;
    if a.common.json {
        println!(
            "{}",
            json!({
                "id": sub.entry.id,
                "provider": sub.entry.provider,
                "requests": n,
                "estimate_nano_usd": estimate.map(Money::nanos),
                "estimate_usd": estimate.map(Money::to_decimal_string),
                "hold": sub.hold.as_ref().map(|h| json!({
                    "id": h.id,
                    "nano_usd": h.amount.nanos(),
                    "budgets": h.budgets,
                    "expires": h.expires,
                })),
            })
        );
        return Ok(());
    }
    println!(
        "submitted {} ({}, {n} requests)",
        sub.entry.id, sub.entry.provider
    );
    println!("estimate: {} at batch rates (worst case)", usd(estimate));
    match &sub.hold {
        Some(h) => println!(
            "hold: {} in {} until {}",
            h.amount,
            h.budgets.join(", "),
            h.expires.to_rfc3339()
        ),
        None => println!("hold: none (no blocking budget covers this job)"),
    }
    println!("next: cost-tracker batch wait {}", sub.entry.id);
    Ok(())
}

async fn status(a: IdArgs) -> Result<(), CliError> {
    let (jobs, dir) = open(&a.common)?;
    let (p, key) = provider_of(&jobs, &a.common, &a.id, &dir).await?;
    let e = jobs
        .status(p.as_ref(), &a.id)
        .await
        .map_err(|e| err(e, key.as_deref()))?;
    if a.common.json {
        println!("{}", entry_json(&e));
    } else {
        println!("{}", status_line(&e));
    }
    Ok(())
}

async fn wait(a: WaitArgs) -> Result<(), CliError> {
    let (jobs, dir) = open(&a.common)?;
    let (p, key) = provider_of(&jobs, &a.common, &a.id, &dir).await?;
    let started = Instant::now();
    let bar = (!a.common.json && std::io::stdout().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(0);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {pos}/{len} elapsed {elapsed} eta {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    });
    let json = a.common.json;
    let progress = |s: &BatchStatus| match &bar {
        Some(b) => {
            b.set_length(s.total);
            b.set_position(s.finished());
            b.set_message(format!("{} {}", s.id, s.state));
        }
        None if !json => {
            let pct = s
                .finished()
                .saturating_mul(100)
                .checked_div(s.total)
                .unwrap_or(0);
            println!(
                "{} {}: {}/{} done ({pct}%), elapsed {}s",
                s.id,
                s.state,
                s.finished(),
                s.total,
                started.elapsed().as_secs()
            );
            let _ = std::io::stdout().flush();
        }
        None => {}
    };
    let entry = jobs
        .wait(p.as_ref(), &a.id, a.interval, progress)
        .await
        .map_err(|e| err(e, key.as_deref()))?;
    if let Some(b) = &bar {
        b.finish();
    }
    // The job has ended: record what ran and release the hold now.
    let report = jobs
        .results(p.as_ref(), &a.id)
        .await
        .map_err(|e| err(e, key.as_deref()))?;
    if json {
        let mut v = entry_json(&report.entry);
        v["newly_recorded"] = json!(report.newly_recorded);
        v["recorded_nano_usd"] = json!(report.recorded_cost.nanos());
        println!("{v}");
    } else {
        println!("{}", status_line(&entry));
        summary(&report, &mut std::io::stdout());
        println!(
            "next: cost-tracker batch results {} --output results.jsonl",
            a.id
        );
    }
    Ok(())
}

fn summary(r: &ResultsReport, out: &mut dyn std::io::Write) {
    let _ = writeln!(
        out,
        "recorded: {} new ({} at batch rates), {} already recorded; {} failed; {} did not run",
        r.newly_recorded,
        r.recorded_cost,
        r.already_recorded,
        r.errored,
        r.not_run.len()
    );
    if let Some(h) = r.released {
        let _ = writeln!(out, "hold released: {h}");
    }
}

async fn results(a: ResultsArgs) -> Result<(), CliError> {
    let (jobs, dir) = open(&a.common)?;
    let (p, key) = provider_of(&jobs, &a.common, &a.id, &dir).await?;
    let report = jobs
        .results(p.as_ref(), &a.id)
        .await
        .map_err(|e| err(e, key.as_deref()))?;
    let mut text = String::new();
    for row in &report.rows {
        let mut v = serde_json::to_value(row).unwrap_or_default();
        if let Some(c) = row.nano_usd {
            v["usd"] = json!(c.to_decimal_string());
        }
        text.push_str(&v.to_string());
        text.push('\n');
    }
    let to_stdout = a.output.as_os_str() == "-";
    if to_stdout {
        print!("{text}");
    } else {
        std::fs::write(&a.output, text).map_err(|e| {
            CliError::Runtime(format!(
                "the results were recorded, but {} could not be written ({e}): run the command again with another --output (nothing is recorded twice)",
                a.output.display()
            ))
        })?;
    }
    if a.common.json && !to_stdout {
        let mut v = entry_json(&report.entry);
        v["rows"] = json!(report.rows.len());
        v["newly_recorded"] = json!(report.newly_recorded);
        v["already_recorded"] = json!(report.already_recorded);
        v["errored"] = json!(report.errored);
        v["not_run"] = json!(report.not_run);
        v["recorded_nano_usd"] = json!(report.recorded_cost.nanos());
        v["released_nano_usd"] = json!(report.released.map(Money::nanos));
        v["output"] = json!(a.output.display().to_string());
        println!("{v}");
    } else if to_stdout {
        summary(&report, &mut std::io::stderr());
    } else {
        summary(&report, &mut std::io::stdout());
        println!(
            "results: {} lines in {}",
            report.rows.len(),
            a.output.display()
        );
    }
    Ok(())
}

async fn cancel(a: IdArgs) -> Result<(), CliError> {
    let (jobs, dir) = open(&a.common)?;
    let (p, key) = provider_of(&jobs, &a.common, &a.id, &dir).await?;
    let e = jobs
        .cancel(p.as_ref(), &a.id)
        .await
        .map_err(|e| err(e, key.as_deref()))?;
    if a.common.json {
        println!("{}", entry_json(&e));
    } else {
        println!("{}", status_line(&e));
        if !e.released {
            println!(
                "the hold stays until the job has ended (requests already running are billed): run `cost-tracker batch wait {}`",
                e.id
            );
        }
    }
    Ok(())
}

async fn list(a: ListArgs) -> Result<(), CliError> {
    let (jobs, dir) = open(&a.common)?;
    let (_, corrupt) = jobs.list().await.map_err(|e| err(e, None))?;
    if let Some(msg) = &corrupt {
        eprintln!("warning: {msg}");
    }
    let mut recovered = None;
    if let Some(name) = a.common.provider {
        let (p, key) = provider(name, ApiName::Chat, &dir)?;
        recovered = Some(
            jobs.recover(p.as_ref())
                .await
                .map_err(|e| err(e, key.as_deref()))?,
        );
    }
    let (entries, _) = jobs.list().await.map_err(|e| err(e, None))?;
    if a.common.json {
        println!(
            "{}",
            json!({
                "jobs": entries.iter().map(entry_json).collect::<Vec<_>>(),
                "corrupt": corrupt,
                "recovered": recovered,
            })
        );
        return Ok(());
    }
    if let Some(n) = recovered {
        println!("recovered {n} job(s) from the provider's list");
    }
    if entries.is_empty() {
        println!("no batch jobs in {}", jobs.registry().path().display());
    }
    for e in &entries {
        println!(
            "{}  estimate {}  {}",
            status_line(e),
            usd(e.estimate),
            if e.released {
                "released".to_owned()
            } else {
                format!("held {}", usd(e.held))
            }
        );
    }
    Ok(())
}
