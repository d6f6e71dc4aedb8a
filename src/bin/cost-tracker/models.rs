//! `cost-tracker models`: list the price table.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use costlayer::pricing::{BatchPricing, ModelPrice, PriceTable, PricingError, Rates, Tier};
use costlayer::Money;
use serde_json::{json, Value};

/// Exit code for usage errors (bad arguments, unknown model, malformed file).
pub(crate) const EXIT_USAGE: u8 = 2;

/// Arguments of `cost-tracker models`.
#[derive(Debug, clap::Args)]
pub(crate) struct ModelsArgs {
    /// A price file merged over the embedded table: costlayer's TOML format
    /// or LiteLLM's model_prices_and_context_window.json. Defaults to
    /// $COSTLAYER_PRICES when set and not empty.
    #[arg(long, value_name = "FILE")]
    prices: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// The environment variable naming a user price file (the default of `--prices`).
pub(crate) const PRICES_ENV: &str = "COSTLAYER_PRICES";

/// The embedded table, with the user file merged over it: `path` (from
/// `--prices`), else `$COSTLAYER_PRICES` unless empty. On failure, prints the
/// error and returns the exit code: 2 for a malformed file, 1 if it cannot
/// be read.
pub(crate) fn load_table(path: Option<&Path>) -> Result<PriceTable, ExitCode> {
    // Read by hand rather than with clap's `env`, which rejects an empty
    // value instead of treating it as unset.
    let from_env = std::env::var_os(PRICES_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let chosen = path.map(Path::to_path_buf).or(from_env);
    match chosen.filter(|p| !p.as_os_str().is_empty()) {
        None => Ok(PriceTable::default()),
        Some(p) => PriceTable::with_user_file(&p).map_err(|e| {
            eprintln!("error: {e}");
            match e {
                // A missing file or a directory is a usage error, as for
                // --config; only a file that exists but cannot be read is a
                // runtime failure.
                PricingError::Io { ref source, .. }
                    if !matches!(
                        source.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::IsADirectory
                    ) && !p.is_dir() =>
                {
                    ExitCode::FAILURE
                }
                _ => ExitCode::from(EXIT_USAGE),
            }
        }),
    }
}

/// Today's date as `YYYY-MM-DD` (UTC), to tell announced from past retirements.
pub(crate) fn today() -> String {
    chrono::Utc::now()
        .date_naive()
        .format("%Y-%m-%d")
        .to_string()
}

/// `true` if `date` (`YYYY-MM-DD`) is today or earlier.
pub(crate) fn is_past(date: &str, today: &str) -> bool {
    date <= today
}

fn opt_rate(m: Option<Money>) -> String {
    m.map_or_else(|| "-".to_owned(), |m| m.to_string())
}

fn tier_text(tiers: &[Tier]) -> String {
    if tiers.is_empty() {
        return "-".to_owned();
    }
    tiers
        .iter()
        .map(|t| {
            let k = t.above_prompt_tokens;
            let n = if k % 1000 == 0 {
                format!("{}K", k / 1000)
            } else {
                k.to_string()
            };
            format!(">{n}: {}/{}", t.rates.input, t.rates.output)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn batch_text(b: &BatchPricing) -> String {
    match b {
        BatchPricing::Percent(p) => format!("{p}%"),
        BatchPricing::Explicit { rates, .. } => format!("{}/{}", rates.input, rates.output),
        _ => "-".to_owned(),
    }
}

fn rates_json(r: &Rates) -> Value {
    let s = |m: Option<Money>| m.map(Money::to_decimal_string);
    json!({
        "input": r.input.to_decimal_string(),
        "output": r.output.to_decimal_string(),
        "cache_read": s(r.cache_read),
        "cache_write_5m": s(r.cache_write_5m),
        "cache_write_1h": s(r.cache_write_1h),
        "input_audio": s(r.input_audio),
    })
}

/// Which file and entry priced a model: `embedded`, or the file path with
/// the entry's own key when it differs from the name.
fn from_text(m: &ModelPrice) -> String {
    match &m.entry {
        Some(e) => format!("{} [{e}]", m.origin),
        None => m.origin.clone(),
    }
}

fn tiers_json(tiers: &[Tier]) -> Value {
    tiers
        .iter()
        .map(|t| json!({"above_prompt_tokens": t.above_prompt_tokens, "rates_per_million_usd": rates_json(&t.rates)}))
        .collect()
}

fn model_json(table: &PriceTable, m: &ModelPrice, today: &str) -> Value {
    let batch = match &m.batch {
        BatchPricing::Percent(p) => json!({"percent": p}),
        BatchPricing::Explicit { rates, tiers } => {
            json!({"rates_per_million_usd": rates_json(rates), "tiers": tiers_json(tiers)})
        }
        _ => Value::Null,
    };
    let shadowed = table.shadowed_entry(&m.model);
    json!({
        "provider": m.provider,
        "model": m.model,
        "aliases": m.aliases,
        "rates_per_million_usd": rates_json(&m.rates),
        "tiers": tiers_json(&m.tiers),
        "batch": batch,
        "deprecated": m.deprecated,
        "retired": m.deprecated.as_deref().is_some_and(|d| is_past(d, today)),
        "source": m.source,
        "origin": m.origin,
        "entry": m.entry,
        "prefixed_only": m.prefixed_only,
        "flex": m.flex.as_ref().map(rates_json),
        "priority": m.priority.as_ref().map(rates_json),
        "web_search_per_1k_usd": m.web_search_per_1k.map(Money::to_decimal_string),
        "effective_from": m.effective_from,
        "earlier": m.earlier.iter().map(|e| json!({
            "effective_from": e.effective_from,
            "rates_per_million_usd": rates_json(&e.rates),
        })).collect::<Vec<_>>(),
        "shadows_default": shadowed.is_some(),
        "shadowed": shadowed.map(|s| json!({
            "model": s.model,
            "origin": s.origin,
            "rates_per_million_usd": rates_json(&s.rates),
        })),
    })
}

pub(crate) fn print_table(rows: &[Vec<String>]) {
    let cols = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
}

pub(crate) fn run(args: ModelsArgs) -> ExitCode {
    let table = match load_table(args.prices.as_deref()) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let today = today();
    if args.json {
        let out = json!({
            "version": table.version(),
            "unit": "USD per 1,000,000 tokens; a null cache rate is billed at the input rate",
            "models": table.models().map(|m| model_json(&table, m, &today)).collect::<Vec<_>>(),
        });
        println!("{out:#}");
        return ExitCode::SUCCESS;
    }
    println!(
        "Prices {} in USD per 1M tokens (output includes reasoning)",
        table.version()
    );
    println!();
    let mut rows = vec![[
        "PROVIDER",
        "MODEL",
        "INPUT",
        "OUTPUT",
        "CACHE READ",
        "WRITE 5M",
        "WRITE 1H",
        "BATCH",
        "LONG CONTEXT",
        "DEPRECATED",
        "FROM",
    ]
    .map(String::from)
    .to_vec()];
    let mut notes = Vec::new();
    for m in table.models() {
        let mut name = m.model.clone();
        if let Some(old) = table.shadowed_entry(&m.model) {
            name.push_str(" *");
            notes.push(format!(
                "* {} from {} overrides the {} price ({} / {})",
                m.model, m.origin, old.origin, old.rates.input, old.rates.output
            ));
        } else if m.origin != "embedded" {
            name.push_str(" +");
        }
        let deprecated = match &m.deprecated {
            Some(d) if is_past(d, &today) => format!("{d} (retired)"),
            Some(d) => d.clone(),
            None => "-".to_owned(),
        };
        rows.push(vec![
            m.provider.clone(),
            name,
            m.rates.input.to_string(),
            m.rates.output.to_string(),
            opt_rate(m.rates.cache_read),
            opt_rate(m.rates.cache_write_5m),
            opt_rate(m.rates.cache_write_1h),
            batch_text(&m.batch),
            tier_text(&m.tiers),
            deprecated,
            from_text(m),
        ]);
    }
    print_table(&rows);
    println!();
    println!("- : no separate rate (billed as input). BATCH: share of every online rate, or explicit input/output.");
    println!("LONG CONTEXT: input/output rates for every token of a request whose whole prompt is above the threshold.");
    if table.models().any(|m| m.origin != "embedded") {
        println!("+ : added by a user price file.");
    }
    if table.models().any(|m| m.prefixed_only) {
        println!(
            "Reseller entries (Bedrock, Vertex, Azure, OpenRouter, ...) price only their own prefixed name; a bare name is priced by the first party."
        );
    }
    for n in notes {
        println!("{n}");
    }
    ExitCode::SUCCESS
}
