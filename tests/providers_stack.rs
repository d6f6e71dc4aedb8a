//! Each real provider client under the full stack ([`StackBuilder`]: cost,
//! cache, retry, rate limit) against a wiremock server on loopback.
//!
//! - A server that fails twice (429 with `Retry-After: 1`, then an overload)
//!   and then answers: exactly three requests reach it, the answer comes
//!   back, and exactly one ledger record is written, at the hand-computed
//!   price.
//! - A credentials error is not retried (one request) and not billed.
//! - The API key never appears in an error's `Display` or `Debug`.
//!
//! Real sockets and tokio's paused clock do not mix: with the clock paused,
//! the runtime jumps time forward whenever it idles, which includes waiting
//! for the server's bytes, so the clients' own timeouts would fire at once.
//! So these tests run on the real clock with a one-second `Retry-After` and
//! a 10 ms backoff, and assert on request counts. The one time check is a
//! lower bound (a timer never fires early), which cannot flake.

#![allow(clippy::unwrap_used)]

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use costlayer::anthropic::Anthropic;
use costlayer::gemini::Gemini;
use costlayer::layer::builder::{LlmService, StackBuilder};
use costlayer::layer::rate_limit::{Quota, RateLimitLayer};
use costlayer::layer::retry::RetryLayer;
use costlayer::ledger::MemoryStorage;
use costlayer::openai::OpenAi;
use costlayer::tracker::CostTracker;
use costlayer::{ChatRequest, ChatResponse, Error, Message};
use serde_json::{json, Value};
use tower::{Service, ServiceExt};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockBuilder, MockServer, Request, Respond, ResponseTemplate};

const KEY: &str = "sk-test-providers-stack-5e1d";

/// Answers the `i`th request with the `i`th template (the last one
/// repeated), and notes when each request arrived.
#[derive(Clone)]
struct Sequence {
    templates: Arc<Vec<ResponseTemplate>>,
    seen: Arc<AtomicUsize>,
    arrivals: Arc<Mutex<Vec<Instant>>>,
}

impl Sequence {
    fn new(templates: Vec<ResponseTemplate>) -> Self {
        Sequence {
            templates: Arc::new(templates),
            seen: Arc::new(AtomicUsize::new(0)),
            arrivals: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn count(&self) -> usize {
        self.seen.load(Ordering::SeqCst)
    }

    fn arrivals(&self) -> Vec<Instant> {
        self.arrivals.lock().unwrap().clone()
    }
}

impl Respond for Sequence {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        self.arrivals.lock().unwrap().push(Instant::now());
        let i = self.seen.fetch_add(1, Ordering::SeqCst);
        self.templates[i.min(self.templates.len() - 1)].clone()
    }
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

/// The full stack around `provider` and the ledger it records into: the
/// default cache, a retry layer with a short backoff (Retry-After still
/// honoured up to its default 60 s cap), and a rate limit roomy enough not
/// to wait.
fn stack<S>(provider: S) -> (MemoryStorage, LlmService)
where
    S: Service<ChatRequest, Response = ChatResponse, Error = Error> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
{
    let ledger = MemoryStorage::new();
    let tracker = CostTracker::builder()
        .storage(Arc::new(ledger.clone()))
        .user("alice")
        .build()
        .unwrap();
    let llm = StackBuilder::new(tracker)
        .retry(
            RetryLayer::new()
                .max_attempts(nz(3))
                .base_delay(Duration::from_millis(10))
                .seed(7),
        )
        .rate_limit(RateLimitLayer::new(Quota::per_minute(
            nz(600),
            nz(1_000_000),
        )))
        .build(provider);
    (ledger, llm)
}

fn openai(server: &MockServer) -> OpenAi {
    OpenAi::builder()
        .api_key(KEY)
        .base_url(format!("{}/v1", server.uri()))
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn anthropic(server: &MockServer) -> Anthropic {
    Anthropic::builder()
        .api_key(KEY)
        .base_url(server.uri())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn gemini(server: &MockServer) -> Gemini {
    Gemini::builder()
        .api_key(KEY)
        .base_url(server.uri())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A wiremock server answering `route` with `answer`, expected `times`
/// times (checked by `server.verify()` and when it drops), and the `client`
/// built against it.
async fn mock_server<C>(
    route: MockBuilder,
    answer: impl Respond + 'static,
    times: u64,
    client: fn(&MockServer) -> C,
) -> (MockServer, C) {
    let server = MockServer::start().await;
    route
        .respond_with(answer)
        .expect(times)
        .mount(&server)
        .await;
    let client = client(&server);
    (server, client)
}

/// The OpenAI client, its server answering `/v1/chat/completions` sent
/// with the key.
async fn openai_mock(answer: impl Respond + 'static, times: u64) -> (MockServer, OpenAi) {
    let route = Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()));
    mock_server(route, answer, times, openai).await
}

/// The Anthropic client, its server answering `/v1/messages` sent with the
/// key.
async fn anthropic_mock(answer: impl Respond + 'static, times: u64) -> (MockServer, Anthropic) {
    let route = Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(header("x-api-key", KEY));
    mock_server(route, answer, times, anthropic).await
}

/// The Gemini client, its server answering gemini-2.5-flash's
/// `generateContent` sent with the key.
async fn gemini_mock(answer: impl Respond + 'static, times: u64) -> (MockServer, Gemini) {
    let route = Mock::given(method("POST"))
        .and(path("/v1beta/models/gemini-2.5-flash:generateContent"))
        .and(header("x-goog-api-key", KEY));
    mock_server(route, answer, times, gemini).await
}

fn json_response(status: u16, body: Value) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(body)
}

/// What every "fails twice, then succeeds" case checks.
async fn assert_retried_then_billed_once(
    llm: LlmService,
    server: &MockServer,
    seq: &Sequence,
    ledger: &MemoryStorage,
    req: ChatRequest,
    expected_text: &str,
    expected_nanos: i64,
) {
    let started = Instant::now();
    let resp = llm.oneshot(req).await.unwrap();
    assert_eq!(resp.text, expected_text);
    assert!(!resp.cached);
    assert_eq!(seq.count(), 3, "429, overload, then the answer");
    server.verify().await;

    let records = ledger.records();
    assert_eq!(records.len(), 1, "one call, one record: {records:?}");
    assert_eq!(records[0].nano_usd.map(|m| m.nanos()), Some(expected_nanos));
    assert_eq!(records[0].user, "alice");

    // The 429 asked for one second: the second attempt came no sooner.
    let arrivals = seq.arrivals();
    assert!(
        arrivals[1].duration_since(arrivals[0]) >= Duration::from_secs(1),
        "Retry-After: 1 honoured"
    );
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[tokio::test]
async fn openai_429_then_503_then_200_is_three_requests_and_one_record() {
    let seq = Sequence::new(vec![
        json_response(
            429,
            json!({"error": {
                "message": "Rate limit reached for gpt-4o-mini in organization org-xyz on requests per min (RPM): Limit 500, Used 500, Requested 1.",
                "type": "requests", "param": null, "code": "rate_limit_exceeded"}}),
        )
        .insert_header("retry-after", "1"),
        json_response(
            503,
            json!({"error": {"message": "The engine is currently overloaded, please try again later",
                "type": "server_error", "param": null, "code": null}}),
        ),
        json_response(
            200,
            json!({
                "id": "chatcmpl-stack1",
                "object": "chat.completion",
                "created": 1_735_689_600,
                "model": "gpt-4o-mini-2024-07-18",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Bonjour !", "refusal": null},
                    "logprobs": null, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 2048, "completion_tokens": 300, "total_tokens": 2348,
                    "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
                    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}}
            }),
        ),
    ]);
    let (server, client) = openai_mock(seq.clone(), 3).await;
    let (ledger, llm) = stack(client);
    let req = ChatRequest::new("gpt-4o-mini")
        .message(Message::user("Say hi in French"))
        .max_tokens(300);
    // 1024 × 150 + 1024 × 75 + 300 × 600 = 153,600 + 76,800 + 180,000.
    assert_retried_then_billed_once(llm, &server, &seq, &ledger, req, "Bonjour !", 410_400).await;
    assert_eq!(ledger.records()[0].model, "gpt-4o-mini");
    assert_eq!(ledger.records()[0].provider, "openai");
}

#[tokio::test]
async fn anthropic_429_then_529_then_200_is_three_requests_and_one_record() {
    let seq = Sequence::new(vec![
        json_response(
            429,
            json!({"type": "error", "error": {"type": "rate_limit_error",
                "message": "This request would exceed the rate limit for your organization (org-1) of 50 requests per minute."},
                "request_id": "req_011CRate"}),
        )
        .insert_header("retry-after", "1"),
        json_response(
            529,
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"},
                "request_id": "req_011CSLsOver"}),
        ),
        json_response(
            200,
            json!({
                "id": "msg_01Stack",
                "type": "message",
                "role": "assistant",
                "model": "claude-haiku-4-5-20251001",
                "content": [{"type": "text", "text": "Salut !"}],
                "stop_reason": "end_turn",
                "stop_sequence": null,
                "usage": {"input_tokens": 100, "cache_creation_input_tokens": 1000,
                    "cache_read_input_tokens": 0,
                    "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 1000},
                    "output_tokens": 40, "service_tier": "standard"}
            }),
        ),
    ]);
    let (server, client) = anthropic_mock(seq.clone(), 3).await;
    let (ledger, llm) = stack(client);
    let req = ChatRequest::new("claude-haiku-4-5")
        .message(Message::user("Say hi in French"))
        .max_tokens(200);
    // input $1/M, 1-hour write $2/M, output $5/M:
    // 100 × 1000 + 1000 × 2000 + 40 × 5000 = 100,000 + 2,000,000 + 200,000.
    assert_retried_then_billed_once(llm, &server, &seq, &ledger, req, "Salut !", 2_300_000).await;
    assert_eq!(ledger.records()[0].usage.cache_write_1h_tokens, 1000);
}

#[tokio::test]
async fn gemini_429_then_503_then_200_is_three_requests_and_one_record() {
    let seq = Sequence::new(vec![
        json_response(
            429,
            json!({"error": {"code": 429,
                "message": "You exceeded your current quota, please check your plan and billing details.",
                "status": "RESOURCE_EXHAUSTED",
                "details": [
                    {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [
                        {"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                         "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}]},
                    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}
                ]}}),
        )
        .insert_header("retry-after", "1"),
        json_response(
            503,
            json!({"error": {"code": 503, "message": "The model is overloaded. Please try again later.",
                "status": "UNAVAILABLE"}}),
        ),
        json_response(
            200,
            json!({
                "candidates": [{"content": {"parts": [{"text": "Coucou !"}], "role": "model"},
                    "finishReason": "STOP", "index": 0}],
                "usageMetadata": {"promptTokenCount": 34, "candidatesTokenCount": 418,
                    "totalTokenCount": 890, "thoughtsTokenCount": 438},
                "modelVersion": "gemini-2.5-flash",
                "responseId": "stack-gemini-1"
            }),
        ),
    ]);
    let (server, client) = gemini_mock(seq.clone(), 3).await;
    let (ledger, llm) = stack(client);
    let req = ChatRequest::new("gemini-2.5-flash")
        .message(Message::user("Say hi in French"))
        .max_tokens(1000);
    // input $0.30/M, output (candidates + thoughts) $2.50/M:
    // 34 × 300 + (418 + 438) × 2500 = 10,200 + 2,140,000.
    assert_retried_then_billed_once(llm, &server, &seq, &ledger, req, "Coucou !", 2_150_200).await;
    assert_eq!(ledger.records()[0].usage.reasoning_tokens, 438);
}

/// A credentials error: one request to the fixture's server, the error
/// returned as is, no record, and the key nowhere in the error.
async fn assert_not_retried_not_billed<S>((server, client): (MockServer, S), req: ChatRequest)
where
    S: Service<ChatRequest, Response = ChatResponse, Error = Error> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
{
    let (ledger, llm) = stack(client);
    let err = llm.oneshot(req).await.unwrap_err();
    assert!(matches!(err, Error::Authentication { .. }), "{err:?}");
    assert!(!err.is_retryable());
    server.verify().await;
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
    assert!(ledger.records().is_empty(), "an error is not billed");
    let shown = format!("{err} / {err:?}");
    assert!(!shown.contains(KEY), "{shown}");
}

#[tokio::test]
async fn openai_401_is_one_request_and_no_record() {
    let answer = json_response(
        401,
        json!({"error": {"message": "Incorrect API key provided: sk-test-***********5e1d. You can find your API key at https://platform.openai.com/account/api-keys.",
            "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}}),
    );
    let req = ChatRequest::new("gpt-4o-mini").message(Message::user("hi"));
    assert_not_retried_not_billed(openai_mock(answer, 1).await, req).await;
}

#[tokio::test]
async fn anthropic_401_is_one_request_and_no_record() {
    let answer = json_response(
        401,
        json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"},
            "request_id": "req_011CAuth"}),
    );
    let req = ChatRequest::new("claude-haiku-4-5").message(Message::user("hi"));
    assert_not_retried_not_billed(anthropic_mock(answer, 1).await, req).await;
}

#[tokio::test]
async fn gemini_bad_key_is_one_request_and_no_record() {
    // Gemini answers a bad key with 400 INVALID_ARGUMENT / API_KEY_INVALID
    // (and 401 UNAUTHENTICATED for bad OAuth tokens); both are auth errors.
    for (status, body) in [
        (
            400,
            json!({"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.",
                "status": "INVALID_ARGUMENT",
                "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}}]}}),
        ),
        (
            401,
            json!({"error": {"code": 401, "message": "Request had invalid authentication credentials.",
                "status": "UNAUTHENTICATED"}}),
        ),
    ] {
        let fixture = gemini_mock(json_response(status, body), 1).await;
        let req = ChatRequest::new("gemini-2.5-flash").message(Message::user("hi"));
        assert_not_retried_not_billed(fixture, req).await;
    }
}

#[tokio::test]
async fn a_retry_after_beyond_the_cap_ends_the_retries_with_the_providers_hint() {
    // The provider asks for 30 s; the retry layer is told to wait at most
    // 1 s, so it gives up at once and hands the hint to the caller.
    let answer = json_response(
        429,
        json!({"error": {"message": "Rate limit reached", "type": "requests", "param": null,
            "code": "rate_limit_exceeded"}}),
    )
    .insert_header("retry-after", "30");
    let (server, client) = openai_mock(answer, 1).await;
    let ledger = MemoryStorage::new();
    let tracker = CostTracker::builder()
        .storage(Arc::new(ledger.clone()))
        .build()
        .unwrap();
    let llm = StackBuilder::new(tracker)
        .retry(RetryLayer::new().max_retry_after(Duration::from_secs(1)))
        .build(client);
    let err = llm
        .oneshot(ChatRequest::new("gpt-4o-mini").message(Message::user("hi")))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::RateLimited { .. }), "{err:?}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(30)));
    server.verify().await;
    assert!(ledger.records().is_empty());
    assert!(!format!("{err} {err:?}").contains(KEY));
}

#[tokio::test]
async fn three_overloads_exhaust_the_attempts_and_nothing_is_billed() {
    let answer = json_response(
        529,
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    );
    let (server, client) = anthropic_mock(answer, 3).await;
    let (ledger, llm) = stack(client);
    let err = llm
        .oneshot(ChatRequest::new("claude-haiku-4-5").message(Message::user("hi")))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Overloaded { status: 529, .. }),
        "{err:?}"
    );
    server.verify().await;
    assert!(ledger.records().is_empty());
}
