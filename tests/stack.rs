//! The full stack (cost, cache, retry, rate limit) on the simulated
//! provider, with tokio's paused clock.

#![allow(clippy::unwrap_used)]

#[path = "layers/support.rs"]
mod support;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use costlayer::budget::Budget;
use costlayer::layer::builder::StackBuilder;
use costlayer::layer::cache::CacheLayer;
use costlayer::layer::cost::CostLayer;
use costlayer::layer::rate_limit::{Quota, RateLimitLayer};
use costlayer::layer::retry::{Jitter, RetryLayer};
use costlayer::ledger::MemoryStorage;
use costlayer::mock::{Failure, SimulatedProvider};
use costlayer::tracker::CostTracker;
use costlayer::{ChatRequest, Error, Message, Money};
use futures_util::future::join_all;
use tokio::time::Instant;
use tower::{ServiceBuilder, ServiceExt};

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

fn tracker(ledger: &MemoryStorage) -> CostTracker {
    CostTracker::builder()
        .storage(Arc::new(ledger.clone()))
        .user("alice")
        .build()
        .unwrap()
}

fn question(text: &str) -> ChatRequest {
    ChatRequest::new("gpt-4o-mini")
        .message(Message::user(text))
        .max_tokens(200)
}

#[tokio::test(start_paused = true)]
async fn a_blocked_call_reaches_nothing_below_the_cost_layer() {
    let ledger = MemoryStorage::new();
    let tracker = CostTracker::builder()
        .storage(Arc::new(ledger.clone()))
        .budget(Budget::total(Money::from_nanos(1)).block())
        .build()
        .unwrap();
    let provider = SimulatedProvider::new();
    let rate_limit = RateLimitLayer::new(Quota::requests_per_minute(nz(10)));
    let limiter = rate_limit.limiter();
    let llm = StackBuilder::new(tracker)
        .rate_limit(rate_limit)
        .build(provider.clone());
    let e = llm.oneshot(question("expensive?")).await.unwrap_err();
    assert!(matches!(e, Error::BudgetExceeded { .. }), "{e}");
    assert_eq!(provider.calls(), 0, "never reached the provider");
    assert!(
        limiter.available("openai:gpt-4o-mini").is_none(),
        "never took a rate-limit token"
    );
    assert!(ledger.records().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_cache_hit_is_recorded_at_zero_cost_with_its_saving() {
    let ledger = MemoryStorage::new();
    let provider = SimulatedProvider::new();
    let llm = StackBuilder::new(tracker(&ledger)).build(provider.clone());
    let first = llm.clone().oneshot(question("2+2?")).await.unwrap();
    let hit = llm.clone().oneshot(question("2+2?")).await.unwrap();
    assert!(!first.cached && hit.cached);
    assert_eq!(provider.calls(), 1);

    let records = ledger.records();
    assert_eq!(records.len(), 2);
    let paid = records[0].nano_usd.unwrap();
    assert!(paid > Money::ZERO);
    assert!(!records[0].cached);
    assert!(records[1].cached);
    assert_eq!(records[1].nano_usd, Some(Money::ZERO));
    assert_eq!(records[1].saved_nano_usd, Some(paid));
}

#[tokio::test(start_paused = true)]
async fn a_hundred_identical_calls_are_one_provider_call_and_a_hundred_records() {
    let ledger = MemoryStorage::new();
    let provider = SimulatedProvider::builder()
        .latency(Duration::from_millis(700))
        .build();
    let llm = StackBuilder::new(tracker(&ledger)).build(provider.clone());
    let results = join_all((0..100).map(|_| llm.clone().oneshot(question("same")))).await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(provider.calls(), 1);
    let records = ledger.records();
    assert_eq!(records.len(), 100);
    assert_eq!(records.iter().filter(|r| !r.cached).count(), 1);
    let billed: Vec<Money> = records.iter().filter_map(|r| r.nano_usd).collect();
    assert_eq!(
        Money::checked_sum(billed).unwrap(),
        records
            .iter()
            .find(|r| !r.cached)
            .unwrap()
            .nano_usd
            .unwrap()
    );
}

#[tokio::test(start_paused = true)]
async fn each_retry_waits_for_the_rate_limit() {
    let ledger = MemoryStorage::new();
    let provider = SimulatedProvider::builder()
        .fail_first(1, Failure::Server { status: 500 })
        .build();
    let llm = ServiceBuilder::new()
        .layer(CostLayer::new(tracker(&ledger)))
        .layer(CacheLayer::default())
        .layer(
            RetryLayer::new()
                .jitter(Jitter::None)
                .max_elapsed(Duration::from_secs(120)),
        )
        .layer(RateLimitLayer::new(Quota::requests_per_minute(nz(1))))
        .service(provider.clone());
    let start = Instant::now();
    llm.oneshot(question("retry me")).await.unwrap();
    // Attempt 1 at 0 s fails; the retry waits 500 ms of backoff, then the
    // rest of the minute for the request bucket.
    assert_eq!(provider.calls(), 2);
    assert_eq!(start.elapsed(), Duration::from_secs(60));
    assert_eq!(ledger.records().len(), 1, "one call, billed once");
}

#[tokio::test(start_paused = true)]
async fn the_builder_can_leave_layers_out() {
    let ledger = MemoryStorage::new();
    let provider = SimulatedProvider::builder()
        .fail_first(1, Failure::Server { status: 500 })
        .build();
    let llm = StackBuilder::new(tracker(&ledger))
        .no_cache()
        .no_retry()
        .build(provider.clone());
    llm.clone().oneshot(question("x")).await.unwrap_err();
    llm.clone().oneshot(question("x")).await.unwrap();
    assert!(!llm.clone().oneshot(question("x")).await.unwrap().cached);
    assert_eq!(provider.calls(), 3);
    assert_eq!(ledger.records().len(), 2);
}
