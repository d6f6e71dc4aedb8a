//! CostLayer's tracing span. Alone in its own test binary: tracing caches
//! each callsite's interest process-wide, so a test that installs a scoped
//! subscriber while other tests run spans on other threads can miss its own.

// In tests a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use costlayer::budget::Budget;
use costlayer::layer::cost::CostLayer;
use costlayer::ledger::MemoryStorage;
use costlayer::pricing::{ModelPrice, PriceTable, Rates};
use costlayer::tracker::CostTracker;
use costlayer::{ChatRequest, ChatResponse, Error, Message, Money, Usage};
use tower::{service_fn, ServiceBuilder, ServiceExt};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

fn prices() -> PriceTable {
    let mut t = PriceTable::empty("test");
    let one = Money::from_usd(1).unwrap();
    t.insert(ModelPrice::new("gpt-test", "openai", Rates::new(one, one)));
    t
}

/// "hi" with max_tokens 10: worst case 22 tokens = 22,000 nano-dollars.
fn small() -> ChatRequest {
    ChatRequest::new("gpt-test")
        .message(Message::user("hi"))
        .max_tokens(10)
}

fn answer(req: &ChatRequest, input: u64, output: u64) -> ChatResponse {
    ChatResponse {
        provider: "openai".into(),
        model: format!("{}-2025-01-01", req.model).into(),
        usage: Usage::new(input, output),
        text: "ok".into(),
        ..Default::default()
    }
}

fn tracker(storage: &MemoryStorage, budget: Option<Budget>) -> CostTracker {
    let mut b = CostTracker::builder()
        .storage(Arc::new(storage.clone()))
        .prices(prices())
        .user("alice");
    if let Some(budget) = budget {
        b = b.budget(budget);
    }
    b.build().unwrap()
}

// ---- the span ---------------------------------------------------------------

/// Span id → (name, fields).
type SpanMap = HashMap<u64, (String, HashMap<String, String>)>;

#[derive(Clone, Default)]
struct Spans(Arc<Mutex<SpanMap>>);

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Spans {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _ctx: Context<'_, S>) {
        let mut fields = HashMap::new();
        attrs.record(&mut Fields(&mut fields));
        self.0
            .lock()
            .unwrap()
            .insert(id.into_u64(), (attrs.metadata().name().to_owned(), fields));
    }
    fn on_record(&self, id: &Id, values: &Record<'_>, _ctx: Context<'_, S>) {
        if let Some((_, fields)) = self.0.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Fields(fields));
        }
    }
}

#[tokio::test]
async fn one_gen_ai_span_per_call_with_the_semantic_convention_fields() {
    let spans = Spans::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(spans.clone()));
    let storage = MemoryStorage::new();
    let svc = ServiceBuilder::new()
        .layer(CostLayer::new(tracker(&storage, None)))
        .service(service_fn(|req: ChatRequest| async move {
            // What the cache and retry layers do from inside the call.
            tracing::Span::current().record("costlayer.cache", "miss");
            tracing::Span::current().record("costlayer.retries", 2u64);
            Ok::<_, Error>(ChatResponse {
                usage: Usage {
                    input_tokens: 100,
                    cache_read_tokens: 50,
                    output_tokens: 20,
                    ..Usage::default()
                },
                ..answer(&req, 0, 0)
            })
        }));
    svc.oneshot(small().user("bob")).await.unwrap();
    let spans = spans.0.lock().unwrap();
    let chat: Vec<_> = spans.values().filter(|(n, _)| n == "gen_ai.chat").collect();
    assert_eq!(chat.len(), 1);
    let f = &chat[0].1;
    let get = |k: &str| f.get(k).map(String::as_str);
    assert_eq!(get("gen_ai.operation.name"), Some("chat"));
    assert_eq!(get("gen_ai.provider.name"), Some("openai"));
    assert_eq!(get("gen_ai.request.model"), Some("gpt-test"));
    assert_eq!(get("gen_ai.response.model"), Some("gpt-test-2025-01-01"));
    assert_eq!(get("gen_ai.usage.input_tokens"), Some("150"));
    assert_eq!(get("gen_ai.usage.output_tokens"), Some("20"));
    // 100 + 50 (cache reads at the input rate here) + 20 tokens at $1/M.
    assert_eq!(get("costlayer.cost_nano_usd"), Some("170000"));
    assert_eq!(get("costlayer.cache"), Some("miss"));
    assert_eq!(get("costlayer.retries"), Some("2"));
    assert!(!f.values().any(|v| v == "hi"), "no prompt text in the span");
}
