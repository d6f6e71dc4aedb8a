//! `--dashboard`, `--export FILE` and `--reset`.

use std::fs::File;
use std::io::{BufRead, BufWriter, IsTerminal, Write};
use std::path::Path;

use costlayer::ledger::{ResetScope, ScanFilter, ScanItem, Storage};
use costlayer::report::{
    CsvWriter, Dashboard, DashboardPass, ExportStats, RenderOptions, ReportError,
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

fn data_label(s: &Settings) -> String {
    let dir = s.data_dir.display().to_string();
    if s.data_dir.is_dir() {
        dir
    } else {
        format!("{dir} (not found: no ledger there yet)")
    }
}

/// The dashboard for the resolved settings, in one pass over the ledger
/// (on every core): the summary counts the records the flags select, each
/// budget its whole scope (as the tracker does when it enforces it).
pub(crate) fn build_dashboard(s: &Settings) -> Result<Dashboard, CliError> {
    let mut pass = DashboardPass::new(s.now, s.budgets.iter().cloned(), s.filter.clone());
    let label = if s.database_url.is_some() {
        fleet::fold_blocking(s, &mut pass)?
    } else {
        store::open(&s.data_dir, &s.user)?.fold_blocking(&mut pass)?;
        data_label(s)
    };
    let scope = if s.team {
        "team: every user".to_owned()
    } else {
        format!("user {}", s.user)
    };
    let dash = pass
        .finish(label)
        .scope(scope)
        .recipients(s.recipients.iter().cloned());
    Ok(dash)
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
    write_stdout(&out)
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
pub(crate) fn export(s: &Settings, path: &Path) -> Result<(), CliError> {
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
            return Err(CliError::Runtime(
                "reset cancelled: nothing was archived".into(),
            ));
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
