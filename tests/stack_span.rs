//! The full stack's tracing span. Alone in its own test binary: tracing
//! caches each callsite's interest process-wide, so a test that installs a
//! scoped dispatcher while other tests hit the same span on other threads
//! can miss its own span.

#![allow(clippy::unwrap_used)]

#[path = "layers/support.rs"]
mod support;

use std::sync::Arc;

use costlayer::layer::builder::StackBuilder;
use costlayer::layer::retry::{Jitter, RetryLayer};
use costlayer::ledger::MemoryStorage;
use costlayer::mock::{Failure, SimulatedProvider};
use costlayer::tracker::CostTracker;
use costlayer::{ChatRequest, Message};
use tower::{Service, ServiceExt};

use support::{capture, in_call_span};

fn tracker(ledger: &MemoryStorage) -> CostTracker {
    CostTracker::builder()
        .storage(Arc::new(ledger.clone()))
        .user("alice")
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn the_span_carries_the_genai_fields_cache_outcome_and_retries_and_no_secret() {
    let (dispatch, captured) = capture();
    let ledger = MemoryStorage::new();
    let provider = SimulatedProvider::builder()
        .fail_first(1, Failure::Overloaded { status: 529 })
        .build();
    let mut llm = StackBuilder::new(tracker(&ledger))
        .retry(RetryLayer::new().jitter(Jitter::None))
        .build(provider);
    let secret = "sk-ant-SECRET-TOKEN";
    let req = ChatRequest::new("claude-haiku-4-5")
        .message(Message::user(format!("the key is {secret}")))
        .max_tokens(50);

    // The cost layer opens its span in `call`: call under the dispatcher.
    llm.ready().await.unwrap();
    let fut = tracing::dispatcher::with_default(&dispatch, || llm.call(req.clone()));
    in_call_span(&dispatch, fut).await.unwrap();
    assert_eq!(captured.field("costlayer.cache").as_deref(), Some("miss"));
    assert_eq!(captured.field("costlayer.retries").as_deref(), Some("1"));
    assert_eq!(
        captured.field("gen_ai.provider.name").as_deref(),
        // The response's provider wins over the model's: the simulated one.
        Some("simulated")
    );
    assert_eq!(
        captured.field("gen_ai.request.model").as_deref(),
        Some("claude-haiku-4-5")
    );
    assert!(captured.field("gen_ai.usage.input_tokens").is_some());

    llm.ready().await.unwrap();
    let fut = tracing::dispatcher::with_default(&dispatch, || llm.call(req));
    in_call_span(&dispatch, fut).await.unwrap();
    assert_eq!(captured.field("costlayer.cache").as_deref(), Some("hit"));
    assert_eq!(
        captured.field("costlayer.cost_nano_usd").as_deref(),
        Some("0")
    );

    let all = captured.all();
    assert!(!all.contains("SECRET"), "{all}");
}
