//! What the three provider examples share: the settings every costlayer
//! entry point reads, the usual stack, one call, and its recorded cost.

use std::num::NonZeroU32;
use std::process::ExitCode;

use chrono::Utc;
use costlayer::config::Config;
use costlayer::layer::builder::StackBuilder;
use costlayer::layer::rate_limit::{Quota, RateLimitLayer};
use costlayer::ledger::{CostRecord, ScanFilter, ScanItem};
use costlayer::tracker::CostTracker;
use costlayer::{ChatRequest, ChatResponse, Error, Message};
use futures_util::StreamExt;
use tower::{Service, ServiceExt};

/// The prompt and model from the command line: `[PROMPT] [MODEL]`.
pub(crate) fn prompt_and_model(default_model: &str, max_tokens: u32) -> ChatRequest {
    let mut args = std::env::args().skip(1);
    let prompt = args
        .next()
        .unwrap_or_else(|| "Say hi in one short sentence.".into());
    let model = args.next().unwrap_or_else(|| default_model.into());
    ChatRequest::new(model)
        .system("You are concise.")
        .message(Message::user(prompt))
        .max_tokens(max_tokens)
}

/// The client, or the exit code: 2 with a hint when the key is missing.
pub(crate) fn client_or_exit<P>(
    example: &str,
    key_hint: &str,
    client: Result<P, Error>,
) -> Result<P, ExitCode> {
    client.map_err(|e| {
        eprintln!("{example}: {e}");
        if matches!(e, Error::Config { .. }) {
            eprintln!("  {key_hint} and run again (the key is never printed).");
            ExitCode::from(2)
        } else {
            ExitCode::FAILURE
        }
    })
}

/// Sends `req` through the usual stack (cost, cache, retry, rate limit) around
/// `client`, with the tracker from the user's settings (`costlayer.toml`,
/// then `COSTLAYER_*`), and prints the answer, usage and exact recorded cost.
pub(crate) async fn call_through_the_stack<P>(
    example: &str,
    client: P,
    quota: (u32, u32),
    req: ChatRequest,
) -> ExitCode
where
    P: Service<ChatRequest, Response = ChatResponse, Error = Error> + Clone + Send + Sync + 'static,
    P::Future: Send + 'static,
{
    let tracker = match Config::load(None)
        .map_err(Error::from)
        .and_then(|c| CostTracker::from_config(&c))
    {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{example}: {e}");
            return ExitCode::from(2);
        }
    };
    let nz = |n| NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
    let llm = StackBuilder::new(tracker.clone())
        .rate_limit(RateLimitLayer::new(Quota::per_minute(
            nz(quota.0),
            nz(quota.1),
        )))
        .build(client);

    let started = Utc::now();
    let result = llm.oneshot(req).await;
    if let Err(e) = tracker.storage().flush().await {
        eprintln!("{example}: the ledger could not be flushed: {e}");
    }
    tracker.flush_alerts().await;
    let resp = match result {
        Ok(resp) => resp,
        Err(e) => {
            // Retryable errors were already retried by the stack.
            eprintln!("{example}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}\n", resp.text);
    println!("model (as billed): {}", resp.model);
    println!(
        "request id:        {}",
        resp.request_id.as_deref().unwrap_or("-")
    );
    println!("latency:           {:?}", resp.latency);
    let u = resp.usage;
    println!(
        "usage:             input {} + cache read {} + cache write {} | output {} (reasoning {})",
        u.input_tokens,
        u.cache_read_tokens,
        u.cache_write_tokens(),
        u.output_tokens,
        u.reasoning_tokens
    );
    match recorded(&tracker, &resp, started).await {
        Some(rec) => {
            let cost = rec
                .nano_usd
                .map_or_else(|| "unpriced".to_owned(), |c| c.to_string());
            println!("cost:              {cost} (exact; recorded as {})", rec.id);
        }
        None => eprintln!("{example}: the call was not found in the ledger"),
    }
    ExitCode::SUCCESS
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
