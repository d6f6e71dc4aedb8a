//! One real Anthropic call through the full costlayer stack (cost, cache,
//! retry, rate limit), recorded in your ledger, with its exact cost, plus an
//! exact token count from `/v1/messages/count_tokens`.
//!
//! ```text
//! ANTHROPIC_API_KEY=sk-ant-... cargo run --example anthropic_chat -- "Say hi in French" [model]
//! ```
//!
//! The settings are the ones every costlayer entry point reads
//! (`costlayer.toml`, then `COSTLAYER_*`): the call is appended to
//! `<data_dir>/costs_<user>.jsonl` (default `data/metadata`), where `cost-tracker --dashboard`
//! sees it, and counts against your budgets. `ANTHROPIC_BASE_URL` points the
//! client at a proxy or gateway.
//!
//! Exits with code 2 and a clear message when the key is missing, 1 when
//! the call fails.

use std::num::NonZeroU32;
use std::process::ExitCode;

use chrono::Utc;
use costlayer::anthropic::Anthropic;
use costlayer::config::Config;
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
    let model = args.next().unwrap_or_else(|| "claude-haiku-4-5".into());

    // The provider first, so a missing key is reported before anything else.
    let client = match Anthropic::from_env() {
        Ok(c) => c,
        Err(e @ Error::Config { .. }) => {
            eprintln!("anthropic_chat: {e}");
            eprintln!(
                "  export ANTHROPIC_API_KEY=sk-ant-... and run again (the key is never printed)."
            );
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("anthropic_chat: {e}");
            return ExitCode::FAILURE;
        }
    };
    let tracker = match Config::load(None)
        .map_err(Error::from)
        .and_then(|c| CostTracker::from_config(&c))
    {
        Ok(t) => t,
        Err(e) => {
            eprintln!("anthropic_chat: {e}");
            return ExitCode::from(2);
        }
    };

    let req = ChatRequest::new(model)
        .system("You are concise.")
        .message(Message::user(prompt))
        .max_tokens(200);
    match client.count_tokens(&req).await {
        Ok(n) => println!("prompt tokens (count_tokens endpoint): {n}"),
        Err(e) => println!(
            "prompt tokens (offline estimate, count_tokens failed: {e}): {}",
            client.estimate_tokens(&req)
        ),
    }

    // The usual stack; the rate limit is an example tier-1 quota.
    let quota = Quota::per_minute(nz(50), nz(50_000));
    let llm = StackBuilder::new(tracker.clone())
        .rate_limit(RateLimitLayer::new(quota))
        .build(client);

    let started = Utc::now();
    let result = llm.oneshot(req).await;
    if let Err(e) = tracker.storage().flush().await {
        eprintln!("anthropic_chat: the ledger could not be flushed: {e}");
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
                None => eprintln!("anthropic_chat: the call was not found in the ledger"),
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            // Retryable errors were already retried by the stack.
            eprintln!("anthropic_chat: {e}");
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
        "request id:        {}",
        resp.request_id.as_deref().unwrap_or("-")
    );
    println!("latency:           {:?}", resp.latency);
    let u = resp.usage;
    println!(
        "usage:             input {} + cache read {} + cache write 5m {} / 1h {} | output {} (thinking {})",
        u.input_tokens,
        u.cache_read_tokens,
        u.cache_write_5m_tokens,
        u.cache_write_1h_tokens,
        u.output_tokens,
        u.reasoning_tokens
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
