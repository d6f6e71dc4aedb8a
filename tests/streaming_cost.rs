//! Streams through the cost layer: recorded exactly once, when the stream
//! ends, at the same cost as the call unstreamed; estimated (never $0,
//! never twice) when it fails midway or the caller drops it; a blocking
//! budget's hold settled or released on every path; a cached stream
//! replayed and recorded as a hit.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use costlayer::budget::Budget;
use costlayer::layer::builder::{LlmStreamService, StackBuilder};
use costlayer::layer::cache::{CacheLayer, MokaCache};
use costlayer::layer::cost::{CostLayer, CostService};
use costlayer::ledger::{CostRecord, MemoryStorage};
use costlayer::mock::{Failure, SimulatedProvider};
use costlayer::tracker::CostTracker;
use costlayer::{ChatRequest, CostStatus, Error, Message, Money, StreamRequest};
use futures_util::StreamExt;
use tower::{ServiceBuilder, ServiceExt};

fn tracker(storage: &MemoryStorage, budget: Option<Budget>) -> CostTracker {
    let mut b = CostTracker::builder()
        .storage(Arc::new(storage.clone()))
        .user("alice");
    if let Some(budget) = budget {
        b = b.budget(budget);
    }
    b.build().unwrap()
}

/// `provider` behind the cost layer, recording into a fresh ledger: the
/// ledger, its tracker and the service.
fn cost_stack(
    provider: SimulatedProvider,
    budget: Option<Budget>,
) -> (MemoryStorage, CostTracker, CostService<SimulatedProvider>) {
    let storage = MemoryStorage::new();
    let tracker = tracker(&storage, budget);
    let svc = ServiceBuilder::new()
        .layer(CostLayer::new(tracker.clone()))
        .service(provider);
    (storage, tracker, svc)
}

/// A blocking $1 monthly budget, for the cases that check its hold.
fn one_dollar() -> Option<Budget> {
    Some(Budget::monthly(Money::from_usd(1).unwrap()).block())
}

fn req() -> ChatRequest {
    ChatRequest::new("gpt-4o-mini")
        .message(Message::user(
            "Tell me about streams, at some length please.",
        ))
        .max_tokens(200)
}

/// Waits (bounded) until the ledger holds `n` records: a dropped stream is
/// settled in the background.
async fn records(storage: &MemoryStorage, n: usize) -> Vec<CostRecord> {
    for _ in 0..200 {
        let recs = storage.records();
        if recs.len() >= n {
            // Give a second record the chance to show up, if one were coming.
            tokio::time::sleep(Duration::from_millis(20)).await;
            return storage.records();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    storage.records()
}

#[tokio::test]
async fn a_completed_stream_is_recorded_once_at_the_unstreamed_cost() {
    let provider = SimulatedProvider::new();
    // The same call unstreamed, for the expected cost.
    let (plain, _, svc) = cost_stack(provider.clone(), None);
    let whole = svc.oneshot(req()).await.unwrap();
    let expected = plain.records()[0].nano_usd.unwrap();
    assert!(expected > Money::ZERO);

    let (storage, _, svc) = cost_stack(provider, None);
    let mut stream = svc.oneshot(StreamRequest::new(req())).await.unwrap();
    let mut text = String::new();
    let mut last = None;
    let mut deltas = 0;
    while let Some(d) = stream.next().await {
        let d = d.unwrap();
        deltas += 1;
        // Nothing is recorded before the end.
        if !d.done {
            assert!(storage.records().is_empty());
        }
        text.push_str(&d.text);
        last = Some(d);
    }
    assert!(deltas > 2, "the simulated answer comes in several deltas");
    assert_eq!(text, whole.text);
    let last = last.unwrap();
    assert!(last.done);
    let recorded = last
        .recorded
        .expect("the final delta carries what was recorded");
    let recs = records(&storage, 1).await;
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].nano_usd, Some(expected));
    assert_eq!(recs[0].usage, whole.usage);
    assert_eq!(recs[0].cost_status, CostStatus::Exact);
    assert_eq!(recorded.record_id, recs[0].id);
    assert_eq!(recorded.nano_usd, Some(expected));
}

#[tokio::test]
async fn a_dropped_stream_is_recorded_once_as_estimated() {
    let (storage, tracker, svc) = cost_stack(SimulatedProvider::new(), one_dollar());
    let mut stream = svc.oneshot(StreamRequest::new(req())).await.unwrap();
    // The input usage and one chunk of text, then the caller goes away.
    let first = stream.next().await.unwrap().unwrap();
    let input = first.usage.unwrap().input_tokens;
    let second = stream.next().await.unwrap().unwrap();
    assert!(!second.text.is_empty());
    // While the stream is open its hold counts against the budget.
    assert!(tracker.budget_status().await.unwrap()[0].reserved > Money::ZERO);
    drop(stream);

    let recs = records(&storage, 1).await;
    assert_eq!(recs.len(), 1, "recorded once, never twice");
    let r = &recs[0];
    assert_eq!(r.cost_status, CostStatus::Estimated);
    assert!(r.cost_notes[0].contains("dropped"), "{:?}", r.cost_notes);
    assert_eq!(
        r.usage.input_tokens, input,
        "input from the first usage event"
    );
    // Eight one-token words were received.
    assert_eq!(r.usage.output_tokens, 8);
    assert!(r.nano_usd.unwrap() > Money::ZERO, "never $0");
    let status = tracker.budget_status().await.unwrap();
    assert_eq!(status[0].reserved, Money::ZERO, "the hold was settled");
    assert_eq!(status[0].spent, r.nano_usd.unwrap());
}

#[tokio::test]
async fn a_stream_cut_midway_ends_with_the_error_and_an_estimated_record() {
    let provider = SimulatedProvider::builder().cut_streams_after(3).build();
    let (storage, tracker, svc) = cost_stack(provider, one_dollar());
    let mut stream = svc.oneshot(StreamRequest::new(req())).await.unwrap();
    let mut texts = 0;
    let err = loop {
        match stream.next().await {
            Some(Ok(d)) => {
                assert!(!d.done);
                if !d.text.is_empty() {
                    texts += 1;
                }
            }
            Some(Err(e)) => break e,
            None => panic!("the stream must end with its error"),
        }
    };
    assert!(matches!(err, Error::Connection { .. }), "{err:?}");
    assert!(stream.next().await.is_none(), "nothing after the error");
    drop(stream);
    let recs = records(&storage, 1).await;
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].cost_status, CostStatus::Estimated);
    assert_eq!(recs[0].usage.output_tokens, 8 * texts);
    assert!(recs[0].cost_notes[0].contains("failed"));
    assert_eq!(
        tracker.budget_status().await.unwrap()[0].reserved,
        Money::ZERO
    );
}

#[tokio::test]
async fn a_failure_before_the_first_delta_records_nothing_and_releases_the_hold() {
    let provider = SimulatedProvider::builder()
        .fail_first(1, Failure::InvalidRequest)
        .build();
    let (storage, tracker, svc) = cost_stack(provider, one_dollar());
    let err = svc.oneshot(StreamRequest::new(req())).await.unwrap_err();
    assert!(matches!(err, Error::InvalidRequest { .. }));
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(storage.records().is_empty());
    let status = tracker.budget_status().await.unwrap();
    assert_eq!(status[0].reserved, Money::ZERO);
    assert_eq!(status[0].spent, Money::ZERO);
}

#[tokio::test]
async fn a_blocking_budget_refuses_a_stream_and_caps_its_output() {
    // Far below one call's worst case at the default output cap.
    let budget = Budget::monthly(Money::from_nanos(1_000)).block();
    let (_, _, svc) = cost_stack(SimulatedProvider::new(), Some(budget));
    let err = svc
        .oneshot(StreamRequest::new(
            ChatRequest::new("gpt-4o-mini").message(Message::user("hi")),
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::BudgetExceeded { .. }), "{err:?}");

    // Uncapped, under a budget that fits: the stream is capped at what
    // was reserved, so billed <= reserved.
    let (storage, tracker, svc) = cost_stack(SimulatedProvider::new(), one_dollar());
    let uncapped = ChatRequest::new("gpt-4o-mini").message(Message::user("hi"));
    let estimate = tracker.estimate(&uncapped).unwrap();
    let resp = svc
        .oneshot(StreamRequest::new(uncapped))
        .await
        .unwrap()
        .collect_response()
        .await
        .unwrap();
    let recs = records(&storage, 1).await;
    assert_eq!(recs.len(), 1);
    assert!(recs[0].nano_usd.unwrap() <= estimate);
    assert_eq!(recs[0].usage, resp.usage);
}

#[tokio::test]
async fn a_cached_stream_is_replayed_and_recorded_as_a_hit() {
    let storage = MemoryStorage::new();
    let provider = SimulatedProvider::new();
    let cache = MokaCache::default();
    let stack = StackBuilder::new(tracker(&storage, None))
        .cache(CacheLayer::new(cache.clone()).cache_streams(true))
        .no_retry();
    let svc = stack.build_streaming(provider.clone());

    let stream_whole = |svc: LlmStreamService| async move {
        let stream = svc.oneshot(StreamRequest::new(req())).await.unwrap();
        stream.collect_response().await.unwrap()
    };
    let first = stream_whole(svc.clone()).await;
    assert!(!first.cached);
    // The completed stream is stored in the background.
    for _ in 0..200 {
        cache.run_pending_tasks().await;
        if cache.entry_count() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(cache.entry_count(), 1, "the completed stream was stored");
    let second = stream_whole(svc).await;
    assert!(second.cached);
    assert_eq!(second.text, first.text);
    assert_eq!(second.usage, first.usage);
    assert_eq!(provider.calls(), 1, "the replay did not reach the provider");
    let recs = records(&storage, 2).await;
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[1].nano_usd, Some(Money::ZERO));
    assert_eq!(recs[1].saved_nano_usd, recs[0].nano_usd);
    assert!(recs[1].cached);
}
