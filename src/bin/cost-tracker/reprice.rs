//! `cost-tracker reprice --prices FILE`: what the ledger (with the usual
//! filters) would cost under another price table, per model and month, next
//! to what was recorded. The ledger is only read, never rewritten.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use costlayer::ledger::ScanItem;
use costlayer::{CostStatus, Money};
use serde_json::json;

use crate::args::ReportArgs;
use crate::models::load_table;
use crate::{settings, store, CliError};

/// What the ledger would cost under another price table.
#[derive(Debug, clap::Args)]
pub(crate) struct RepriceArgs {
    /// The price file to reprice with (costlayer TOML, LiteLLM
    /// model_prices_and_context_window.json or genai-prices data.json),
    /// merged over the embedded table.
    #[arg(long, value_name = "FILE")]
    prices: PathBuf,

    #[command(flatten)]
    report: ReportArgs,
}

/// One month and model.
#[derive(Default)]
struct Row {
    calls: u64,
    /// The sum of the recorded costs (unpriced records add nothing).
    recorded: Money,
    recorded_unpriced: u64,
    /// The sum under the new table, each call at its own timestamp.
    repriced: Money,
    repriced_unpriced: u64,
    /// Calls the new table prices only in part (a dimension it lacks).
    repriced_incomplete: u64,
}

impl Row {
    fn add(&mut self, other: &Row) {
        self.calls += other.calls;
        self.recorded += other.recorded;
        self.recorded_unpriced += other.recorded_unpriced;
        self.repriced += other.repriced;
        self.repriced_unpriced += other.repriced_unpriced;
        self.repriced_incomplete += other.repriced_incomplete;
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "calls": self.calls,
            "recorded_nano_usd": self.recorded.nanos(),
            "recorded_unpriced_calls": self.recorded_unpriced,
            "repriced_nano_usd": self.repriced.nanos(),
            "repriced_unpriced_calls": self.repriced_unpriced,
            "repriced_incomplete_calls": self.repriced_incomplete,
            "difference_nano_usd": self.repriced.nanos().saturating_sub(self.recorded.nanos()),
        })
    }

    fn notes(&self) -> String {
        let mut n = Vec::new();
        if self.recorded_unpriced > 0 {
            n.push(format!("{} unpriced when recorded", self.recorded_unpriced));
        }
        if self.repriced_unpriced > 0 {
            n.push(format!("{} not in the new table", self.repriced_unpriced));
        }
        if self.repriced_incomplete > 0 {
            n.push(format!("{} incomplete", self.repriced_incomplete));
        }
        n.join(", ")
    }
}

pub(crate) fn run(args: RepriceArgs) -> ExitCode {
    let table = match load_table(Some(&args.prices)) {
        Ok(t) => t,
        Err(code) => return code,
    };
    crate::finish(reprice(&table, &args))
}

fn reprice(table: &costlayer::pricing::PriceTable, args: &RepriceArgs) -> Result<(), CliError> {
    let s = settings::resolve(&args.report)?;
    let storage = store::open(&s.data_dir, &s.user)?;
    let mut rows: BTreeMap<(String, String), Row> = BTreeMap::new();
    let mut corrupt = 0u64;
    storage.scan_blocking(&s.filter, |item| {
        let r = match item {
            ScanItem::Record(r) => r,
            ScanItem::Corrupt(_) => {
                corrupt += 1;
                return;
            }
        };
        let row = rows
            .entry((r.ts.format("%Y-%m").to_string(), r.model.to_string()))
            .or_default();
        row.calls += 1;
        match r.nano_usd {
            Some(m) => row.recorded += m,
            None => row.recorded_unpriced += 1,
        }
        match table.cost_at(&r.model, &r.usage, r.mode, r.ts) {
            // A cache hit cost nothing then and would cost nothing now.
            Ok(_) if r.cached => {}
            Ok(c) => {
                row.repriced += c.total;
                if c.status == CostStatus::Incomplete {
                    row.repriced_incomplete += 1;
                }
            }
            Err(_) => row.repriced_unpriced += 1,
        }
    })?;
    let mut total = Row::default();
    for row in rows.values() {
        total.add(row);
    }
    if args.report.json {
        let out = json!({
            "prices": args.prices.display().to_string(),
            "version": table.version(),
            "rows": rows.iter().map(|((month, model), row)| {
                let mut v = row.json();
                v["month"] = json!(month);
                v["model"] = json!(model);
                v
            }).collect::<Vec<_>>(),
            "total": total.json(),
            "corrupted_lines": corrupt,
        });
        println!("{out}");
        return Ok(());
    }
    let diff = |row: &Row| {
        let d = row.repriced.nanos().saturating_sub(row.recorded.nanos());
        let sign = if d > 0 { "+" } else { "" };
        format!("{sign}{}", Money::from_nanos(d))
    };
    let mut lines = vec![[
        "MONTH",
        "MODEL",
        "CALLS",
        "RECORDED",
        "REPRICED",
        "DIFFERENCE",
        "NOTES",
    ]
    .map(String::from)
    .to_vec()];
    for ((month, model), row) in &rows {
        lines.push(vec![
            month.clone(),
            model.clone(),
            row.calls.to_string(),
            row.recorded.to_string(),
            row.repriced.to_string(),
            diff(row),
            row.notes(),
        ]);
    }
    lines.push(vec![
        "total".into(),
        String::new(),
        total.calls.to_string(),
        total.recorded.to_string(),
        total.repriced.to_string(),
        diff(&total),
        total.notes(),
    ]);
    crate::models::print_table(&lines);
    println!();
    println!(
        "Repriced with {} (table {}); each call at the rates in force on its day. The ledger is unchanged.",
        args.prices.display(),
        table.version()
    );
    if corrupt > 0 {
        println!("{corrupt} corrupted ledger lines skipped.");
    }
    Ok(())
}
