//! `--dashboard`, `--export FILE` and `--reset`.

use std::fs::File;
use std::io::{BufRead, BufWriter, IsTerminal, Write};
use std::path::Path;

use std::collections::BTreeMap;

use costlayer::ledger::{JsonlStorage, ResetScope, ScanFilter, ScanItem, Storage};
use costlayer::report::{
    Bucket, CsvWriter, Dashboard, DashboardPass, ExportStats, RenderOptions, ReportError, Summary,
};

use crate::settings::Settings;
use crate::{fleet, store, CliError};

/// How wide and colourful the terminal is: colours only on a TTY and never
/// with `NO_COLOR` set (or `TERM=dumb`); the width from `COLUMNS`, then the
/// terminal, then 80.
pub(crate) fn render_options(verbose: bool) -> RenderOptions {
    let tty = std::io::stdout().is_terminal();
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
    let width = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|&w| w > 0)
        .or_else(|| {
            if tty {
                terminal_size::terminal_size().map(|(w, _)| usize::from(w.0))
            } else {
                None
            }
        })
        .unwrap_or(80);
    RenderOptions::new()
        .width(width)
        .color(tty && !no_color && !dumb)
        .verbose(verbose)
}

/// The dashboard for the resolved settings, in one pass over the ledger
/// (on every core): the summary counts the records the flags select, each
/// budget its whole scope (as the tracker does when it enforces it).
pub(crate) fn build_dashboard(s: &Settings) -> Result<Dashboard, CliError> {
    let mut pass =
        DashboardPass::new(s.now, s.budgets.iter().cloned(), s.filter.clone()).calendar(s.calendar);
    if s.database_url.is_some() {
        // The shared PostgreSQL ledger: sums pushed down into SQL.
        let label = fleet::fold_blocking(s, &mut pass)?;
        let scope = if s.team {
            "team: every user".to_owned()
        } else {
            format!("user {}", s.user)
        };
        return Ok(pass
            .finish(label)
            .scope(scope)
            .recipients(s.recipients.iter().cloned())
            .reachable(s.reachable));
    }
    let storage = store::open(&s.data_dir, &s.user)?;
    storage.fold_blocking(&mut pass)?;
    // The alert outbox: what was sent or failed this period.
    let alerts = match storage.deliveries_blocking() {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the alert outbox");
            Vec::new()
        }
    };
    let scope = if s.team {
        "team: every user".to_owned()
    } else {
        format!("user {}", s.user)
    };
    let mut dash = pass
        .finish(s.data_dir.display().to_string())
        .scope(scope)
        .recipients(s.recipients.iter().cloned())
        .reachable(s.reachable)
        .alerts(alerts);
    if let Some(start) = s.start_date {
        dash = dash.project_start(start);
    }
    if !s.data_dir.is_dir() {
        return Ok(dash.note(
            "The directory does not exist yet: the first recorded call creates it (check --data-dir / COSTLAYER_DATA_DIR).",
        ));
    }
    let unknown_filter = unmatched(&s.filter.providers, &dash.summary.by_provider)
        || unmatched(&s.filter.models, &dash.summary.by_model);
    if dash.summary.total.calls == 0 || unknown_filter {
        let all = overview(s, &storage)?;
        for (flag, values, seen) in [
            ("--provider", &s.filter.providers, &all.by_provider),
            ("--model", &s.filter.models, &all.by_model),
        ] {
            if let Some(note) = check_filter(flag, values, seen, &s.data_dir)? {
                dash = dash.note(note);
            }
        }
        if let Some(hint) = other_ledgers(s, &all.by_user) {
            dash = dash.note(hint);
        }
    }
    Ok(dash)
}

/// Whether a filter value matches no key of `seen`.
fn unmatched(values: &[String], seen: &BTreeMap<String, Bucket>) -> bool {
    values.iter().any(|v| !seen.contains_key(v))
}

/// Every record in the directory, unfiltered: who, which providers and
/// models there are, for hints.
fn overview(s: &Settings, storage: &JsonlStorage) -> Result<Summary, CliError> {
    let mut pass = DashboardPass::new(s.now, [], ScanFilter::default());
    storage.fold_blocking(&mut pass)?;
    Ok(pass.finish("").summary)
}

/// A `--provider` / `--model` value no record in the directory has: a
/// usage error naming the closest name when one is close (a typo), else a
/// note listing the names there.
fn check_filter(
    flag: &str,
    values: &[String],
    seen: &BTreeMap<String, Bucket>,
    dir: &Path,
) -> Result<Option<String>, CliError> {
    let Some(bad) = values.iter().find(|v| !seen.contains_key(*v)) else {
        return Ok(None);
    };
    let mut close: Vec<(f64, &String)> = seen
        .keys()
        .map(|k| {
            (
                strsim::jaro_winkler(&bad.to_lowercase(), &k.to_lowercase()),
                k,
            )
        })
        .filter(|(score, _)| *score >= 0.8)
        .collect();
    close.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    let names: Vec<&str> = seen.keys().map(String::as_str).collect();
    let known = if names.is_empty() {
        "there are no records there".to_owned()
    } else {
        format!("the ledger has: {}", names.join(", "))
    };
    match close.first() {
        Some((_, k)) => Err(CliError::Usage(format!(
            "{flag} `{bad}` matches no call in {}: did you mean `{k}`? ({known})",
            dir.display()
        ))),
        None => Ok(Some(format!("{flag} `{bad}` matches no call: {known}."))),
    }
}

/// For an empty single-user view: the users whose ledgers are in the
/// directory, and the flags that show them.
fn other_ledgers(s: &Settings, by_user: &BTreeMap<String, Bucket>) -> Option<String> {
    if s.team {
        return None;
    }
    let others: Vec<String> = by_user
        .iter()
        .filter(|(u, _)| **u != s.user)
        .map(|(u, b)| format!("{u} ({})", plural(b.calls, "call")))
        .collect();
    let first = by_user.keys().find(|u| **u != s.user)?;
    Some(format!(
        "Ledgers in this directory: {}. Show one with --user {first}, or every user with --team.",
        others.join(", ")
    ))
}

fn plural(n: u64, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

pub(crate) async fn dashboard(s: &Settings, json: bool, verbose: bool) -> Result<(), CliError> {
    let dash = build_dashboard(s)?;
    let out = if json {
        let mut v = serde_json::to_string_pretty(&dash.to_json())
            .map_err(|e| CliError::Runtime(format!("cannot encode the JSON report: {e}")))?;
        v.push('\n');
        v
    } else {
        dash.render(&render_options(verbose))
    };
    write_stdout(&out)?;
    if dash.summary.totals_overflowed {
        return Err(CliError::Runtime(
            "the ledger's costs add up to more than the largest total this version can hold \
             ($9,223,372,036.85): the totals shown are capped. Check the ledger for implausible \
             records"
                .into(),
        ));
    }
    Ok(())
}

fn write_stdout(s: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|()| out.flush()) {
        // A closed pipe (`| head`) is not a failure.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(CliError::Runtime(format!("cannot write to stdout: {e}")))
        }
        _ => Ok(()),
    }
}

/// Streams every matching record to `out` as CSV.
fn export_to<W: Write>(s: &Settings, out: W) -> Result<ExportStats, CliError> {
    let mut w = CsvWriter::new(out)?;
    let mut failed: Option<ReportError> = None;
    let sink = |item: ScanItem| {
        if failed.is_none() {
            if let Err(e) = w.push(&item) {
                failed = Some(e);
            }
        }
    };
    if s.database_url.is_some() {
        fleet::scan_blocking(s, sink)?;
    } else {
        store::open(&s.data_dir, &s.user)?.scan_blocking(&s.filter, sink)?;
    }
    if let Some(e) = failed {
        return Err(e.into());
    }
    Ok(w.finish()?)
}

/// Streams every matching record to `path` as CSV (`-` for stdout).
pub(crate) fn export(s: &Settings, path: &Path, force: bool) -> Result<(), CliError> {
    if path == Path::new("-") {
        let stats = export_to(s, std::io::stdout().lock())?;
        eprintln!("Exported {} records to stdout", stats.records);
        return Ok(());
    }
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(dir) = parent {
        if !dir.is_dir() {
            return Err(CliError::Runtime(format!(
                "cannot export to {}: the directory {} does not exist. Create it first or choose another path",
                path.display(),
                dir.display()
            )));
        }
    }
    if path.exists() && !force {
        return Err(CliError::Usage(format!(
            "{} already exists: pass --force to replace it, or choose another file",
            path.display()
        )));
    }
    // Write next to the target and rename at the end, so a failed export
    // never leaves a half-written file under the requested name.
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = std::path::PathBuf::from(partial);
    let file = File::create(&partial).map_err(|e| {
        CliError::Runtime(format!(
            "cannot create {}: {e}. Check that the directory is writable",
            partial.display()
        ))
    })?;
    let stats = match export_to(s, BufWriter::new(file)) {
        Ok(stats) => stats,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    std::fs::rename(&partial, path).map_err(|e| {
        CliError::Runtime(format!(
            "cannot move {} to {}: {e}",
            partial.display(),
            path.display()
        ))
    })?;
    let skipped = if stats.corrupted_lines > 0 {
        format!(" ({} corrupted lines skipped)", stats.corrupted_lines)
    } else {
        String::new()
    };
    println!(
        "Exported {} records to {}{skipped}",
        stats.records,
        path.display()
    );
    Ok(())
}

/// Archives the user's (or, with `--team`, every user's) ledger after
/// confirmation.
pub(crate) async fn reset(
    s: &Settings,
    has_filters: bool,
    yes: bool,
    json: bool,
) -> Result<(), CliError> {
    if has_filters {
        return Err(CliError::Usage(
            "--reset archives whole ledgers: --since, --until, --provider and --model do not apply to it".into(),
        ));
    }
    let storage: Box<dyn Storage> = match fleet::open(s).await? {
        Some(pg) => pg,
        None => Box::new(store::open(&s.data_dir, &s.user)?),
    };
    let who = if s.team {
        "every user".to_owned()
    } else {
        s.user.clone()
    };
    let filter = ScanFilter {
        users: s.filter.users.clone(),
        ..ScanFilter::default()
    };
    let n = storage.aggregate(&filter).await?.calls;
    if n == 0 {
        println!(
            "Nothing to archive: no records for {who} in {}",
            s.data_dir.display()
        );
        return Ok(());
    }
    if !yes {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return Err(CliError::Usage(format!(
                "refusing to reset without confirmation: stdin is not a terminal. Re-run with --yes to archive {n} records for {who}"
            )));
        }
        print!("Type 'yes' to archive {n} records for {who}: ");
        let _ = std::io::stdout().flush();
        let mut answer = String::new();
        stdin
            .lock()
            .read_line(&mut answer)
            .map_err(|e| CliError::Runtime(format!("cannot read the answer: {e}")))?;
        if answer.trim() != "yes" {
            println!("Reset cancelled: nothing archived.");
            return Ok(());
        }
    }
    let scope = if s.team {
        ResetScope::All
    } else {
        ResetScope::User(s.user.clone())
    };
    let report = storage.reset(scope).await?;
    let to = report
        .archived_to
        .clone()
        .unwrap_or_else(|| "(nowhere)".into());
    if json {
        let v = serde_json::to_string_pretty(&report)
            .map_err(|e| CliError::Runtime(format!("cannot encode the JSON report: {e}")))?;
        return write_stdout(&format!("{v}\n"));
    }
    println!("Archived {} records for {who} to {to}", report.records);
    Ok(())
}
