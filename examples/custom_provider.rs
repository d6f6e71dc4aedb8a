//! A provider plugin written here, in one page, plugged into the same stack
//! as OpenAI, Anthropic and Gemini, with a price for its model.
//!
//! ```text
//! cargo run --example custom_provider [LEDGER_DIR]
//! ```
//!
//! Offline, no keys, a few seconds. A provider is anything that is
//! `tower::Service<ChatRequest, Response = ChatResponse, Error = costlayer::Error>`
//! (depend on `costlayer-core` alone to publish one). This one stands for a
//! model you host yourself: it answers after a short delay, reports usage
//! the way a real API does, and is overloaded on its first call, so the
//! retry layer has something to do. Its model gets a price (your GPU time
//! per million tokens), so every call is priced and recorded like any other.
//!
//! For a real HTTP API, implement `costlayer::core::transport::Codec` (pure
//! request/response translation) and wrap it in `HttpTransport`: that is
//! how the bundled providers are written.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use costlayer::layer::builder::StackBuilder;
use costlayer::layer::retry::RetryLayer;
use costlayer::ledger::{JsonlStorage, ScanFilter, ScanItem, Storage};
use costlayer::pricing::{ModelPrice, PriceTable, Rates};
use costlayer::tokens::TiktokenCounter;
use costlayer::tracker::CostTracker;
use costlayer::{
    ChatRequest, ChatResponse, Error, FinishReason, Message, Money, TokenCounter, Usage,
};
use futures_util::StreamExt;
use tower::{Service, ServiceExt};

// ---------------------------------------------------------------- the plugin

/// A self-hosted model behind a `Service<ChatRequest>`.
///
/// Clones share the call counter, as a real client shares its connection
/// pool; the stack clones the provider freely.
#[derive(Debug, Clone, Default)]
struct LocalLlm {
    calls: Arc<AtomicU64>,
}

impl Service<ChatRequest> for LocalLlm {
    type Response = ChatResponse;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<ChatResponse, Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: ChatRequest) -> Self::Future {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if n == 1 {
                // A typed, retryable error: the retry layer tries again.
                return Err(Error::Overloaded {
                    provider: "local".into(),
                    status: 503,
                    message: "the GPU is busy".into(),
                    retry_after: Some(Duration::from_millis(100)),
                });
            }
            let question = req
                .messages
                .last()
                .map(|m| m.content.text())
                .unwrap_or_default();
            let text = format!("You asked: {question:?}. The answer is 42.");
            // Usage in costlayer's disjoint buckets: the prompt counted the
            // way the model's tokenizer would, the reply likewise.
            let counter = TiktokenCounter::for_model(&req.model);
            let usage = Usage::new(counter.count_request(&req), counter.count_text(&text));
            Ok(ChatResponse {
                provider: "local".into(),
                model: req.model,
                text,
                usage,
                finish_reason: Some(FinishReason::Stop),
                request_id: Some(format!("local-{n}")),
                ..Default::default()
            })
        })
    }
}

// ------------------------------------------------------------ using it

const MODEL: &str = "local-llama-3.1-8b";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let dir = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| tmp.path().join("metadata"));

    // The embedded prices plus one for our model: $0.02 in, $0.06 out per
    // million tokens (what an hour of the GPU costs, spread over its output).
    let mut prices = PriceTable::embedded().clone();
    prices.insert(ModelPrice::new(
        MODEL,
        "local",
        Rates::new("0.02".parse()?, "0.06".parse()?),
    ));
    let ledger = JsonlStorage::builder(&dir).user("example").build()?;
    let tracker = CostTracker::builder()
        .storage(Arc::new(ledger.clone()))
        .prices(prices)
        .user("example")
        .build()?;

    let provider = LocalLlm::default();
    let llm = StackBuilder::new(tracker.clone())
        .retry(RetryLayer::new().base_delay(Duration::from_millis(50)))
        .build(provider.clone());

    for question in ["What is 6 x 7?", "And 40 + 2?", "What is 6 x 7?"] {
        let req = ChatRequest::new(MODEL)
            .message(Message::user(question))
            .max_tokens(100);
        let resp = llm.clone().oneshot(req).await?;
        println!(
            "{:<16} -> {} ({} in / {} out{})",
            question,
            resp.text,
            resp.usage.input_tokens,
            resp.usage.output_tokens,
            if resp.cached { ", from the cache" } else { "" }
        );
    }
    ledger.flush().await?;

    // Three calls and three provider requests: the first was overloaded and
    // retried, and the repeat never reached the provider (the cache answered).
    println!(
        "\nprovider requests: {} (the first was overloaded and retried; the repeat came from the cache)",
        provider.calls.load(Ordering::SeqCst)
    );
    println!("ledger: {}", ledger.ledger_path().display());
    let mut total = Money::ZERO;
    let mut stream = ledger.scan(&ScanFilter::default()).await?;
    while let Some(item) = stream.next().await {
        if let ScanItem::Record(r) = item? {
            let cost = r.nano_usd.unwrap_or(Money::ZERO);
            total += cost;
            let saved = r
                .saved_nano_usd
                .map(|s| format!(", saved {s}"))
                .unwrap_or_default();
            println!(
                "  {} {} {:>3} in {:>3} out  cost {cost} ({} nano-USD){saved}",
                r.id,
                r.model,
                r.usage.input_tokens,
                r.usage.output_tokens,
                cost.nanos()
            );
        }
    }
    println!("recorded total: {total} (exact)");
    Ok(())
}
