//! The main job, offline: price, record, budget and report LLM calls.
//!
//! ```sh
//! cargo run --example quickstart            # ledger in a fresh temp directory
//! cargo run --example quickstart -- ./data  # or in a directory of yours
//! ```
//!
//! No network, no keys. It builds the full stack (cost, cache, retry, rate
//! limit) around the [`SimulatedProvider`], which counts prompt tokens with
//! the real tokenizer and answers deterministically. It makes a realistic mix
//! of calls across OpenAI, Anthropic and Gemini models (some repeated, so the
//! cache answers them for free), crosses 80% of a small monthly budget so an
//! alert prints, then prints the dashboard read back from the JSONL ledger.

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;

use costlayer::alert::StdoutSink;
use costlayer::budget::Budget;
use costlayer::layer::builder::StackBuilder;
use costlayer::layer::rate_limit::{Quota, RateLimitLayer};
use costlayer::ledger::{FsyncPolicy, JsonlStorage, ScanFilter};
use costlayer::mock::SimulatedProvider;
use costlayer::report::{DashboardPass, RenderOptions};
use costlayer::tracker::CostTracker;
use costlayer::{ChatRequest, Message, Money};
use tower::ServiceExt;

/// (model, system prompt, user prompt, max_tokens): what a small product
/// team's assistant, summariser and classifier send in an afternoon.
const CALLS: &[(&str, &str, &str, u32)] = &[
    (
        "gpt-4o",
        "You are a support assistant.",
        "My invoice shows two charges for November. Can you explain why?",
        400,
    ),
    (
        "gpt-4o-mini",
        "Classify the ticket: billing, bug, or question.",
        "The export button does nothing on Safari.",
        8,
    ),
    (
        "gpt-4.1",
        "You review pull requests.",
        "Review: fn total(v: &[f64]) -> f64 { v.iter().sum() } used for invoice totals.",
        600,
    ),
    (
        "claude-sonnet-4.5",
        "You are a careful analyst.",
        "Summarise the Q3 revenue drivers from the board memo in five bullets.",
        800,
    ),
    (
        "claude-haiku-4.5",
        "Extract the dates as ISO 8601.",
        "Ship on the 3rd of March, review on April 10th, launch mid-May.",
        100,
    ),
    (
        "claude-opus-4.5",
        "You are a contract lawyer.",
        "List the termination clauses a SaaS master agreement should have, with risks.",
        1000,
    ),
    (
        "gemini-2.5-pro",
        "You plan database migrations.",
        "Plan a zero-downtime migration from a single Postgres to a primary/replica pair.",
        1000,
    ),
    (
        "gemini-2.5-flash",
        "Translate to French.",
        "The report is ready; please review it before Friday.",
        120,
    ),
    (
        "gemini-2.5-flash-lite",
        "Answer yes or no.",
        "Is 2027 a leap year?",
        4,
    ),
];

/// A small monthly budget, so the run crosses its 80% alert.
const MONTHLY_BUDGET: &str = "0.0125";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = match std::env::args_os().nth(1) {
        Some(d) => PathBuf::from(d),
        None => std::env::temp_dir().join(format!("costlayer-quickstart-{}", std::process::id())),
    };
    let monthly: Money = MONTHLY_BUDGET.parse()?;

    // The ledger: one append-only JSONL file per user, no server.
    let ledger = JsonlStorage::builder(&dir)
        .user("quickstart")
        .fsync(FsyncPolicy::Never) // a demo; production keeps the default
        .build()?;
    println!(
        "costlayer quickstart: ledger {}",
        ledger.ledger_path().display()
    );
    println!("monthly budget {monthly}, alerts at 80% and 100%\n");

    // The tracker prices each call, appends it, and alerts once per threshold.
    let tracker = CostTracker::builder()
        .storage(Arc::new(ledger.clone()))
        .user("quickstart")
        .budget(Budget::monthly(monthly))
        .sink(StdoutSink::human())
        .build()?;

    // The stack: cost -> cache -> retry -> rate limit -> provider.
    let rpm = NonZeroU32::new(600).ok_or("zero quota")?;
    let tpm = NonZeroU32::new(1_000_000).ok_or("zero quota")?;
    let llm = StackBuilder::new(tracker.clone())
        .rate_limit(RateLimitLayer::new(Quota::per_minute(rpm, tpm)))
        .build(SimulatedProvider::new());

    // Three rounds: the second and third repeat the first, so the cache
    // answers most of them at no cost. The first round prints each call,
    // the repeats one line each.
    for round in 0..3 {
        let (mut calls, mut hits, mut spent, mut saved) = (0, 0, Money::ZERO, Money::ZERO);
        for (i, (model, system, prompt, max_tokens)) in CALLS.iter().enumerate() {
            if round > 0 && i % 3 == 2 {
                continue;
            }
            let req = ChatRequest::new(*model)
                .system(*system)
                .message(Message::user(*prompt))
                .max_tokens(*max_tokens)
                .tag("feature", "quickstart");
            let resp = llm.clone().oneshot(req).await?;
            let cost = tracker
                .prices()
                .cost(&resp.model, &resp.usage, resp.mode)
                .map(|c| c.total)
                .unwrap_or(Money::ZERO);
            calls += 1;
            if resp.cached {
                hits += 1;
                saved += cost;
            } else {
                spent += cost;
            }
            if round == 0 {
                println!(
                    "{:<22} {:>5} in {:>4} out  {:>12}",
                    model,
                    resp.usage.prompt_tokens(),
                    resp.usage.output_tokens,
                    cost.to_string(),
                );
            }
        }
        if round > 0 {
            println!(
                "round {}: {calls} repeated calls, {hits} from the cache (saved {saved}), spent {spent}",
                round + 1
            );
        }
    }

    // Alerts go to their sinks off the call path; wait for them before the report.
    tracker.flush_alerts().await;
    costlayer::ledger::Storage::flush(&ledger).await?;

    // The dashboard, read back from the ledger in one pass.
    let mut pass = DashboardPass::new(
        tracker.now(),
        tracker.budgets().to_vec(),
        ScanFilter::default(),
    );
    ledger.scan_blocking(&ScanFilter::default(), |item| pass.push(&item))?;
    let dash = pass
        .finish(dir.display().to_string())
        .scope("user quickstart");
    println!();
    print!("{}", dash.render(&RenderOptions::new().verbose(true)));
    println!(
        "\nSee it again with: cargo run --bin cost-tracker -- --dashboard --verbose --user quickstart \\\n    --monthly-budget {MONTHLY_BUDGET} --total-budget none --data-dir {}",
        dir.display()
    );
    Ok(())
}
