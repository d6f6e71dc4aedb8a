//! A provider plugin written here, in a page: a `Codec` for Ollama's native
//! `/api/chat`, over costlayer's shared HTTP transport, plugged into the
//! same stack as OpenAI, Anthropic and Gemini, with a price for its model.
//!
//! ```text
//! cargo run --example custom_provider                      # offline: a stand-in Ollama
//! OLLAMA_HOST=http://127.0.0.1:11434 cargo run --example custom_provider   # your Ollama
//! ```
//!
//! A provider is anything that is
//! `tower::Service<ChatRequest, Response = ChatResponse, Error = costlayer::Error>`.
//! The easiest way to write one for an HTTP API is a [`Codec`]: pure
//! translation, `ChatRequest` to an HTTP request and the HTTP response to a
//! `ChatResponse` (usage in costlayer's disjoint buckets) or a typed
//! `Error`. [`HttpTransport`] does the I/O (connection pool, timeouts,
//! transport errors) and turns the codec into the `Service`. A published
//! plugin depends on `costlayer-core` alone (plus `http` and `bytes`).
//!
//! Without `OLLAMA_HOST` the example starts a stand-in server on loopback
//! that answers the way Ollama does, busy (503) on the first request so the
//! retry layer has something to do. Runs in a couple of seconds.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use costlayer::core::transport::{
    error_for_status, Codec, HttpResponse, HttpTransport, TransportConfig,
};
use costlayer::layer::builder::StackBuilder;
use costlayer::layer::retry::RetryLayer;
use costlayer::ledger::{JsonlStorage, ScanFilter, ScanItem, Storage};
use costlayer::pricing::{ModelPrice, PriceTable, Rates};
use costlayer::tracker::CostTracker;
use costlayer::{ChatRequest, ChatResponse, Error, FinishReason, Message, Money, Role, Usage};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tower::ServiceExt;

// ------------------------------------------------------------- the plugin

/// Ollama's `POST /api/chat`, non-streaming.
#[derive(Debug)]
struct OllamaCodec {
    base_url: String,
}

impl Codec for OllamaCodec {
    fn provider(&self) -> &'static str {
        "ollama"
    }

    fn encode(&self, req: &ChatRequest) -> Result<http::Request<Bytes>, Error> {
        let mut messages = Vec::new();
        if let Some(system) = &req.system {
            messages.push(json!({"role": "system", "content": system}));
        }
        for m in &req.messages {
            let role = match m.role {
                Role::System => "system",
                Role::Assistant => "assistant",
                Role::Tool => "tool",
                _ => "user",
            };
            messages.push(json!({"role": role, "content": m.content.text()}));
        }
        let mut options = serde_json::Map::new();
        if let Some(n) = req.max_tokens {
            options.insert("num_predict".into(), json!(n));
        }
        if let Some(t) = req.temperature {
            options.insert("temperature".into(), json!(t));
        }
        let body =
            json!({"model": req.model, "messages": messages, "stream": false, "options": options});
        http::Request::post(format!("{}/api/chat", self.base_url))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Bytes::from(body.to_string()))
            .map_err(|e| Error::config(format!("invalid Ollama URL: {e}. Check OLLAMA_HOST")))
    }

    fn decode(&self, req: &ChatRequest, resp: HttpResponse) -> Result<ChatResponse, Error> {
        let body: Value = serde_json::from_slice(&resp.body).map_err(|e| Error::Decode {
            provider: "ollama".into(),
            message: e.to_string(),
            body_snippet: String::from_utf8_lossy(&resp.body)
                .chars()
                .take(200)
                .collect(),
        })?;
        if !resp.status.is_success() {
            // Ollama's errors are `{"error": "..."}`; the status says the kind
            // (503 busy is retryable, 404 unknown model is not).
            let message = body["error"].as_str().unwrap_or("no message").to_owned();
            return Err(error_for_status("ollama", resp.status, message, None));
        }
        // `prompt_eval_count` is the whole prompt (Ollama has no prompt
        // cache billing), `eval_count` the generated tokens.
        let count = |k: &str| body[k].as_u64().unwrap_or(0);
        Ok(ChatResponse {
            provider: "ollama".into(),
            model: body["model"].as_str().unwrap_or(&req.model).into(),
            text: body["message"]["content"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            finish_reason: match body["done_reason"].as_str() {
                Some("length") => Some(FinishReason::Length),
                _ => Some(FinishReason::Stop),
            },
            usage: Usage::new(count("prompt_eval_count"), count("eval_count")),
            request_id: body["created_at"].as_str().map(Into::into),
            ..Default::default()
        })
    }
}

// ---------------------------------------------------------------- using it

const MODEL: &str = "llama3.2";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (base_url, stand_in) = match std::env::var("OLLAMA_HOST") {
        Ok(h) if !h.trim().is_empty() => (h.trim().trim_end_matches('/').to_owned(), None),
        _ => {
            let server = stand_in_ollama().await;
            (server.uri(), Some(server))
        }
    };

    // The plugin, as a `Service<ChatRequest>`: the codec over the shared transport.
    let config = TransportConfig::default();
    let ollama = HttpTransport::new(
        OllamaCodec { base_url },
        config.client()?,
        Duration::from_secs(120),
    );

    // The embedded prices plus one for our model: $0.02 in, $0.06 out per
    // million tokens (an hour of the GPU, spread over what it generates).
    // Ollama reports `llama3.2:latest` for `llama3.2`: an alias covers it.
    let mut prices = PriceTable::embedded().clone();
    prices.insert(
        ModelPrice::new(
            MODEL,
            "ollama",
            Rates::new("0.02".parse()?, "0.06".parse()?),
        )
        .aliases(["llama3.2:latest"]),
    );
    let tmp = tempfile::tempdir()?;
    let ledger = JsonlStorage::builder(tmp.path()).user("example").build()?;
    let tracker = CostTracker::builder()
        .storage(Arc::new(ledger.clone()))
        .prices(prices)
        .user("example")
        .build()?;
    let llm = StackBuilder::new(tracker)
        .retry(RetryLayer::new().base_delay(Duration::from_millis(50)))
        .build(ollama);

    for question in ["What is 6 x 7?", "And 40 + 2?", "What is 6 x 7?"] {
        let req = ChatRequest::new(MODEL)
            .message(Message::user(question))
            .max_tokens(100);
        let resp = llm.clone().oneshot(req).await?;
        println!(
            "{question:<16} -> {} ({} in / {} out{})",
            resp.text.trim(),
            resp.usage.input_tokens,
            resp.usage.output_tokens,
            if resp.cached { ", from the cache" } else { "" }
        );
    }
    ledger.flush().await?;
    if let Some(server) = stand_in {
        let n = server.received_requests().await.map_or(0, |r| r.len());
        println!("\nrequests to the stand-in Ollama: {n} (the first was busy and retried; the repeat came from the cache)");
    }

    println!("ledger {}:", ledger.ledger_path().display());
    let mut total = Money::ZERO;
    let mut records = ledger.scan(&ScanFilter::default()).await?;
    while let Some(item) = records.next().await {
        if let ScanItem::Record(r) = item? {
            let cost = r.nano_usd.unwrap_or(Money::ZERO);
            total = total.checked_add(cost).ok_or("the total overflowed")?;
            let saved = r
                .saved_nano_usd
                .map(|s| format!(", saved {s}"))
                .unwrap_or_default();
            println!(
                "  {} {}/{} {:>3} in {:>3} out  cost {cost} ({} nano-USD){saved}",
                r.id,
                r.provider,
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

// ----------------------------------------------- a stand-in Ollama server

/// A loopback server answering `/api/chat` as Ollama does: busy on the first
/// request, then an echo with Ollama's usage fields (whitespace-separated
/// words stand in for tokens).
async fn stand_in_ollama() -> wiremock::MockServer {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

    struct Ollama(AtomicUsize);
    impl Respond for Ollama {
        fn respond(&self, req: &Request) -> ResponseTemplate {
            if self.0.fetch_add(1, Ordering::SeqCst) == 0 {
                return ResponseTemplate::new(503).set_body_json(
                    json!({"error": "server busy, please try again. maximum pending requests exceeded"}),
                );
            }
            let body: Value = serde_json::from_slice(&req.body).unwrap_or_default();
            let prompt: Vec<&str> = body["messages"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| m["content"].as_str())
                .collect();
            let question = prompt.last().copied().unwrap_or_default();
            let answer = format!("You asked {question:?}. The answer is 42.");
            let words = |s: &str| s.split_whitespace().count();
            ResponseTemplate::new(200).set_body_json(json!({
                "model": format!("{}:latest", body["model"].as_str().unwrap_or_default()),
                "created_at": "2026-11-25T10:00:00.000000Z",
                "message": {"role": "assistant", "content": answer},
                "done": true,
                "done_reason": "stop",
                "total_duration": 181_000_000u64,
                "prompt_eval_count": 8 + prompt.iter().map(|p| words(p)).sum::<usize>(),
                "eval_count": words(&answer) + 2,
            }))
        }
    }

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/chat"))
        .respond_with(Ollama(AtomicUsize::new(0)))
        .mount(&server)
        .await;
    server
}
