//! `cost-tracker cost`: price a usage on a model.

use std::path::PathBuf;
use std::process::ExitCode;

use costlayer::{Mode, Money, Usage};
use serde_json::json;

use crate::models::{is_past, load_table, today, EXIT_USAGE};

/// The largest token count accepted per bucket: a trillion tokens, far above
/// any call or month of calls, and small enough that no price overflows.
const MAX_TOKENS: u64 = 1_000_000_000_000;

/// Arguments of `cost-tracker cost`.
#[derive(Debug, clap::Args)]
pub(crate) struct CostArgs {
    /// The model (canonical name, alias or dated id).
    #[arg(long)]
    model: String,
    /// Uncached input tokens (excludes cache reads and writes).
    #[arg(long, value_name = "N", default_value = "0", allow_negative_numbers = true, value_parser = parse_tokens)]
    input: u64,
    /// Output tokens, reasoning included.
    #[arg(long, value_name = "N", default_value = "0", allow_negative_numbers = true, value_parser = parse_tokens)]
    output: u64,
    /// Prompt tokens read from the provider's cache.
    #[arg(long, value_name = "N", default_value = "0", allow_negative_numbers = true, value_parser = parse_tokens)]
    cache_read: u64,
    /// Prompt tokens written to a 5-minute cache entry.
    #[arg(long = "cache-write-5m", value_name = "N", default_value = "0", allow_negative_numbers = true, value_parser = parse_tokens)]
    cache_write_5m: u64,
    /// Prompt tokens written to a 1-hour cache entry.
    #[arg(long = "cache-write-1h", value_name = "N", default_value = "0", allow_negative_numbers = true, value_parser = parse_tokens)]
    cache_write_1h: u64,
    /// The reasoning part of --output (informational: already inside
    /// --output, never billed twice; must not exceed it).
    #[arg(long, value_name = "N", default_value = "0", allow_negative_numbers = true, value_parser = parse_tokens)]
    reasoning: u64,
    /// Price at batch rates.
    #[arg(long)]
    batch: bool,
    /// A price file merged over the embedded table: costlayer's TOML format
    /// or LiteLLM's model_prices_and_context_window.json. Defaults to
    /// $COSTLAYER_PRICES when set and not empty.
    #[arg(long, value_name = "FILE")]
    prices: Option<PathBuf>,
    /// Print one JSON object instead of the breakdown.
    #[arg(long)]
    json: bool,
}

/// A token count: a whole number from 0 to [`MAX_TOKENS`]; `_` and `,` may
/// group digits.
fn parse_tokens(s: &str) -> Result<u64, String> {
    let t = s.trim();
    if t.starts_with('-') {
        return Err(format!(
            "token counts cannot be negative (got `{s}`): write 0 or more"
        ));
    }
    let digits: String = t.chars().filter(|c| *c != '_' && *c != ',').collect();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "`{s}` is not a token count: write a whole number such as 1500"
        ));
    }
    match digits.parse::<u64>() {
        Ok(n) if n <= MAX_TOKENS => Ok(n),
        _ => Err(format!(
            "`{s}` tokens is more than the limit of {} per bucket: check the number",
            group(MAX_TOKENS)
        )),
    }
}

/// `1234567` -> `1,234,567`.
fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub(crate) fn run(args: CostArgs) -> ExitCode {
    if args.reasoning > args.output {
        eprintln!(
            "error: --reasoning ({}) is the part of --output ({}) that was reasoning and cannot exceed it. \
             Pass every billed output token in --output (for Gemini: candidates + thoughts)",
            args.reasoning, args.output
        );
        return ExitCode::from(EXIT_USAGE);
    }
    let table = match load_table(args.prices.as_deref()) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let usage = Usage {
        input_tokens: args.input,
        output_tokens: args.output,
        cache_read_tokens: args.cache_read,
        cache_write_5m_tokens: args.cache_write_5m,
        cache_write_1h_tokens: args.cache_write_1h,
        reasoning_tokens: args.reasoning,
        ..Usage::default()
    };
    let mode = if args.batch {
        Mode::Batch
    } else {
        Mode::Online
    };
    let cost = match table.cost(&args.model, &usage, mode) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let Some(price) = table.get(&args.model) else {
        // `cost` just resolved it; unreachable, but never panic.
        eprintln!("error: model `{}` vanished from the table", args.model);
        return ExitCode::FAILURE;
    };
    let (rates, _) = price.rates_for(usage.prompt_tokens(), mode);
    if let Some(d) = &price.deprecated {
        let verb = if is_past(d, &today()) {
            "was retired on"
        } else {
            "retires on"
        };
        eprintln!(
            "warning: {} {verb} {d}; priced at its last published rates",
            price.model
        );
    }
    let buckets: [(&str, u64, Money, Money); 5] = [
        ("input", usage.input_tokens, rates.input, cost.input),
        (
            "cache_read",
            usage.cache_read_tokens,
            rates.cache_read_rate(),
            cost.cache_read,
        ),
        (
            "cache_write_5m",
            usage.cache_write_5m_tokens,
            rates.cache_write_5m_rate(),
            cost.cache_write_5m,
        ),
        (
            "cache_write_1h",
            usage.cache_write_1h_tokens,
            rates.cache_write_1h_rate(),
            cost.cache_write_1h,
        ),
        ("output", usage.output_tokens, rates.output, cost.output),
    ];
    if args.json {
        let breakdown: Vec<_> = buckets
            .iter()
            .map(|(name, tokens, rate, money)| {
                json!({
                    "bucket": name,
                    "tokens": tokens,
                    "rate_per_million_usd": rate.to_decimal_string(),
                    "nano_usd": money.nanos(),
                    "usd": money.to_decimal_string(),
                })
            })
            .collect();
        let out = json!({
            "model": cost.model,
            "provider": cost.provider,
            "mode": cost.mode,
            "usage": usage,
            "prompt_tokens": usage.prompt_tokens(),
            "tier_above_prompt_tokens": cost.tier_above,
            "breakdown": breakdown,
            "nano_usd": cost.total.nanos(),
            "usd": cost.total.to_decimal_string(),
            "price_version": cost.price_version,
            "deprecated": price.deprecated,
        });
        println!("{out}");
        return ExitCode::SUCCESS;
    }
    println!(
        "{} ({}), {}, prices {}",
        cost.model,
        cost.provider,
        mode.as_str(),
        cost.price_version
    );
    if let Some(t) = cost.tier_above {
        println!(
            "long-context rates: the prompt of {} tokens is above {}",
            group(usage.prompt_tokens()),
            group(t)
        );
    }
    let mut rows = vec![[
        "bucket".to_owned(),
        "tokens".to_owned(),
        "$/1M".to_owned(),
        "cost".to_owned(),
    ]];
    for (name, tokens, rate, money) in buckets {
        let always = name == "input" || name == "output";
        if always || tokens > 0 {
            rows.push([
                name.replace('_', " "),
                group(tokens),
                rate.to_string(),
                money.to_string(),
            ]);
        }
    }
    rows.push([
        "total".to_owned(),
        group(usage.total_tokens()),
        String::new(),
        cost.total.to_string(),
    ]);
    let w: Vec<usize> = (0..4)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for r in &rows {
        println!(
            "{:<w0$}  {:>w1$}  {:>w2$}  {:>w3$}",
            r[0],
            r[1],
            r[2],
            r[3],
            w0 = w[0],
            w1 = w[1],
            w2 = w[2],
            w3 = w[3]
        );
    }
    if usage.reasoning_tokens > 0 {
        println!(
            "(output includes {} reasoning tokens, billed as output)",
            group(usage.reasoning_tokens)
        );
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_counts_parse_strictly() {
        assert_eq!(parse_tokens("1500"), Ok(1500));
        assert_eq!(parse_tokens("1_000_000"), Ok(1_000_000));
        assert_eq!(parse_tokens("1,024"), Ok(1024));
        assert_eq!(parse_tokens("1000000000000"), Ok(MAX_TOKENS));
        for bad in [
            "-1",
            "1.5",
            "abc",
            "",
            "1e6",
            "1000000000001",
            "99999999999999999999999",
        ] {
            assert!(parse_tokens(bad).is_err(), "{bad}");
        }
        assert_eq!(group(1_234_567), "1,234,567");
        assert_eq!(group(12), "12");
    }
}
