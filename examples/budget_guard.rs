//! A hard monthly limit that blocks calls, under concurrency.
//!
//! ```text
//! cargo run --example budget_guard
//! ```
//!
//! Offline, no keys. 100 calls start at once against a $0.05 monthly budget
//! with `action = block`. Each call reserves its worst-case cost (prompt
//! upper bound + `max_tokens`) before it reaches the provider and settles to
//! the billed cost after, so the calls cannot jointly overshoot the limit:
//! the ones that would are refused with `BudgetExceeded` and never reach the
//! provider.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use costlayer::budget::Budget;
use costlayer::layer::cost::CostLayer;
use costlayer::ledger::MemoryStorage;
use costlayer::tracker::CostTracker;
use costlayer::{ChatRequest, ChatResponse, Error, Message, Money, Usage};
use tower::{service_fn, ServiceBuilder, ServiceExt};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let limit: Money = "0.05".parse()?;
    let tracker = CostTracker::builder()
        .storage(Arc::new(MemoryStorage::new()))
        .user("example")
        .budget(Budget::monthly(limit).block())
        .build()?;

    // A provider with 50 ms of latency that bills 500 prompt tokens and 400
    // output tokens of gpt-4o ($2.50 / $10 per million: $0.00525 a call).
    let reached = Arc::new(AtomicUsize::new(0));
    let counter = reached.clone();
    let provider = service_fn(move |req: ChatRequest| {
        counter.fetch_add(1, Ordering::SeqCst);
        async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok::<_, Error>(ChatResponse {
                provider: "openai".into(),
                model: req.model,
                usage: Usage::new(500, 400),
                ..Default::default()
            })
        }
    });
    let svc = ServiceBuilder::new()
        .layer(CostLayer::new(tracker.clone()))
        .service(provider);

    let prompt = "Summarise this paragraph. ".repeat(20);
    let req = ChatRequest::new("gpt-4o")
        .message(Message::user(prompt))
        .max_tokens(400);
    println!(
        "limit {limit}, worst case per call {}",
        tracker.estimate(&req).unwrap_or(Money::ZERO)
    );

    let calls: Vec<_> = (0..100)
        .map(|_| tokio::spawn(svc.clone().oneshot(req.clone())))
        .collect();
    let (mut ok, mut blocked) = (0, 0);
    for c in calls {
        match c.await? {
            Ok(_) => ok += 1,
            Err(Error::BudgetExceeded { .. }) => blocked += 1,
            Err(e) => return Err(e.into()),
        }
    }

    let status = &tracker.budget_status().await?[0];
    println!("{ok} calls ran, {blocked} were refused before reaching the provider");
    println!("provider reached {} times", reached.load(Ordering::SeqCst));
    println!(
        "spent {} of {} ({:.2}%), in flight {}",
        status.spent,
        status.limit,
        status.percent(),
        status.reserved
    );
    assert!(status.spent <= limit, "a hard limit is never overshot");
    match svc.oneshot(req).await {
        Err(e @ Error::BudgetExceeded { .. }) => println!("next call: {e}"),
        other => println!("next call: {other:?}"),
    }
    Ok(())
}
