//! One real Gemini call through the full costlayer stack (cost, cache,
//! retry, rate limit), recorded in your ledger, with its exact cost, plus an
//! exact token count from `:countTokens`.
//!
//! ```text
//! GEMINI_API_KEY=AIza... cargo run --example gemini_chat -- "Say hi in French" [model]
//! ```
//!
//! The settings are the ones every costlayer entry point reads
//! (`costlayer.toml`, then `COSTLAYER_*`): the call is appended to
//! `<data_dir>/costs_<user>.jsonl` (default `data/metadata`), where `cost-tracker --dashboard`
//! sees it, and counts against your budgets. `GOOGLE_API_KEY` is read when
//! `GEMINI_API_KEY` is unset; `GEMINI_BASE_URL` points the client at a proxy.
//!
//! Exits with code 2 and a clear message when the key is missing, 1 when
//! the call fails.

use std::num::NonZeroU32;
use std::process::ExitCode;

use chrono::Utc;
use costlayer::config::Config;
use costlayer::gemini::Gemini;
use costlayer::layer::builder::StackBuilder;
use costlayer::layer::rate_limit::{Quota, RateLimitLayer};
use costlayer::ledger::{CostRecord, ScanFilter, ScanItem};
use costlayer::tracker::CostTracker;
use costlayer::{ChatRequest, ChatResponse, Error, Message};
use futures_util::StreamExt;
use tower::ServiceExt;

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let prompt = args
        .next()
        .unwrap_or_else(|| "Say hi in one short sentence.".into());
    let model = args.next().unwrap_or_else(|| "gemini-2.5-flash".into());

    // The provider first, so a missing key is reported before anything else.
    let client = match Gemini::from_env() {
        Ok(c) => c,
        Err(e @ Error::Config { .. }) => {
            eprintln!("gemini_chat: {e}");
            eprintln!("  export GEMINI_API_KEY=AIza... and run again (the key is never printed).");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("gemini_chat: {e}");
            return ExitCode::FAILURE;
        }
    };
    let tracker = match Config::load(None)
        .map_err(Error::from)
        .and_then(|c| CostTracker::from_config(&c))
    {
        Ok(t) => t,
        Err(e) => {
            eprintln!("gemini_chat: {e}");
            return ExitCode::from(2);
        }
    };

    let req = ChatRequest::new(model)
        .system("You are concise.")
        .message(Message::user(prompt))
        .max_tokens(1024);
    match client.count_tokens(&req).await {
        Ok(n) => println!("prompt tokens (countTokens endpoint): {n}"),
        Err(e) => println!(
            "prompt tokens (offline estimate, countTokens failed: {e}): {}",
            client.estimate_tokens(&req)
        ),
    }

    // The usual stack; the rate limit is an example free-tier quota.
    let quota = Quota::per_minute(nz(10), nz(250_000));
    let llm = StackBuilder::new(tracker.clone())
        .rate_limit(RateLimitLayer::new(quota))
        .build(client);

    let started = Utc::now();
    let result = llm.oneshot(req).await;
    if let Err(e) = tracker.storage().flush().await {
        eprintln!("gemini_chat: the ledger could not be flushed: {e}");
    }
    tracker.flush_alerts().await;
    match result {
        Ok(resp) => {
            report(&resp);
            match recorded(&tracker, &resp, started).await {
                Some(rec) => {
                    let cost = rec
                        .nano_usd
                        .map_or_else(|| "unpriced".to_owned(), |c| c.to_string());
                    println!("cost:              {cost} (exact; recorded as {})", rec.id);
                }
                None => eprintln!("gemini_chat: the call was not found in the ledger"),
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            // Retryable errors were already retried by the stack.
            eprintln!("gemini_chat: {e}");
            ExitCode::FAILURE
        }
    }
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

fn report(resp: &ChatResponse) {
    println!("{}\n", resp.text);
    println!("model (as billed): {}", resp.model);
    println!(
        "response id:       {}",
        resp.request_id.as_deref().unwrap_or("-")
    );
    println!("latency:           {:?}", resp.latency);
    let u = resp.usage;
    println!(
        "usage:             input {} + cached {} | output {} (thinking {})",
        u.input_tokens, u.cache_read_tokens, u.output_tokens, u.reasoning_tokens
    );
}

/// The record the cost layer wrote for `resp`, read back from the ledger.
async fn recorded(
    tracker: &CostTracker,
    resp: &ChatResponse,
    since: chrono::DateTime<Utc>,
) -> Option<CostRecord> {
    let filter = ScanFilter {
        since: Some(since - chrono::Duration::seconds(1)),
        users: vec![tracker.user().to_owned()],
        ..ScanFilter::default()
    };
    let mut stream = tracker.storage().scan(&filter).await.ok()?;
    let mut found = None;
    while let Some(item) = stream.next().await {
        if let Ok(ScanItem::Record(r)) = item {
            if r.request_id == resp.request_id {
                found = Some(r);
            }
        }
    }
    found
}
