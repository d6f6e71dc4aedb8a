//! costlayer-anthropic against a wiremock server on 127.0.0.1.

use std::time::Duration;

use costlayer_anthropic::{Anthropic, AnthropicUsage};
use costlayer_core::{ChatRequest, Error, FinishReason, Message, Usage};
use serde_json::{json, Value};
use tower::ServiceExt;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "sk-ant-api03-SECRET-0123456789abcdef";

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("fixture exists");
    serde_json::from_str(&text).expect("fixture is JSON")
}

fn client(server: &MockServer) -> Anthropic {
    Anthropic::builder()
        .api_key(KEY)
        .base_url(server.uri())
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client builds")
}

fn hi() -> ChatRequest {
    ChatRequest::new("claude-sonnet-4-5")
        .system("Be terse.")
        .message(Message::user("Say hi"))
}

fn assert_no_key(err: &Error) {
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("SECRET"), "the key leaked: {shown}");
}

fn usage_of(name: &str) -> Usage {
    let raw: AnthropicUsage =
        serde_json::from_value(fixture(name)["usage"].clone()).expect("usage");
    Usage::from(raw)
}

#[tokio::test]
async fn sends_the_documented_request_and_maps_the_response() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(header("x-api-key", KEY))
        .and(header("anthropic-version", "2023-06-01"))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({
            "model": "claude-sonnet-4-5",
            // Not set on the request: the documented default.
            "max_tokens": 4096,
            "system": "Be terse.",
            "messages": [{"role": "user", "content": "Say hi"}]
        })))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("request-id", "req_011CHdr")
                .set_body_json(fixture("message.json")),
        )
        .expect(1)
        .mount(&server)
        .await;

    let resp = client(&server).oneshot(hi()).await.expect("call succeeds");
    assert_eq!(resp.provider, "anthropic");
    assert_eq!(resp.text, "Hi!");
    assert_eq!(resp.model, "claude-sonnet-4-5-20250929");
    assert_eq!(resp.finish_reason, Some(FinishReason::Stop));
    assert_eq!(resp.request_id.as_deref(), Some("req_011CHdr"));
    assert_eq!(
        resp.usage,
        Usage {
            input_tokens: 50,
            cache_read_tokens: 100_000,
            output_tokens: 500,
            ..Usage::default()
        }
    );
    assert_eq!(
        resp.raw_usage,
        Some(fixture("message.json")["usage"].clone())
    );
}

#[tokio::test]
async fn configured_version_betas_and_extra() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(header("anthropic-version", "2026-10-21"))
        .and(header("anthropic-beta", "context-1m-2025-08-07"))
        .and(body_json(json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 64,
            // extra replaces the plain system string with a cached block.
            "system": [{"type": "text", "text": "<long doc>", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
            "messages": [{"role": "user", "content": "Say hi"}],
            "metadata": {"user_id": "u-1"}
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("message.json")))
        .expect(1)
        .mount(&server)
        .await;
    let claude = Anthropic::builder()
        .api_key(KEY)
        .base_url(server.uri())
        .version("2026-10-21")
        .beta("context-1m-2025-08-07")
        .build()
        .expect("client");
    let req = hi()
        .max_tokens(64)
        .extra(
            "system",
            json!([{"type": "text", "text": "<long doc>", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]),
        )
        .extra("metadata", json!({"user_id": "u-1"}));
    let resp = claude.oneshot(req).await.expect("ok");
    // Without the header, the message id is the request id.
    assert_eq!(resp.request_id.as_deref(), Some("msg_01XyZ"));
}

#[test]
fn usage_fixtures_map_into_disjoint_buckets() {
    // 5-minute and 1-hour writes apart.
    let u = usage_of("cache_write.json");
    assert_eq!(u.input_tokens, 20);
    assert_eq!(u.cache_write_5m_tokens, 4000);
    assert_eq!(u.cache_write_1h_tokens, 6000);
    assert_eq!(u.cache_read_tokens, 0);
    assert_eq!(u.output_tokens, 100);
    assert_eq!(u.prompt_tokens(), 10_020);

    // Older responses without the split: all writes are 5-minute writes.
    let u = usage_of("legacy_cache_write.json");
    assert_eq!(
        (u.cache_write_5m_tokens, u.cache_write_1h_tokens),
        (10_000, 0)
    );

    // Thinking is inside output_tokens, never added again.
    let u = usage_of("thinking.json");
    assert_eq!(u.output_tokens, 1600);
    assert_eq!(u.reasoning_tokens, 1400);
    assert_eq!(u.total_tokens(), 1720);

    // A split that does not add up: the rest is billed as 5-minute writes.
    let raw: AnthropicUsage = serde_json::from_value(json!({
        "input_tokens": 1, "cache_creation_input_tokens": 100,
        "cache_creation": {"ephemeral_5m_input_tokens": 10, "ephemeral_1h_input_tokens": 30},
        "output_tokens": 1
    }))
    .expect("usage");
    let u = Usage::from(raw);
    assert_eq!((u.cache_write_5m_tokens, u.cache_write_1h_tokens), (70, 30));
}

#[tokio::test]
async fn thinking_blocks_are_not_answer_text() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("thinking.json")))
        .mount(&server)
        .await;
    let resp = client(&server).oneshot(hi()).await.expect("ok");
    assert_eq!(resp.text, "The answer is 42.");
    assert_eq!(resp.model, "claude-opus-4-5-20251101");
    assert_eq!(resp.usage.reasoning_tokens, 1400);
}

#[tokio::test]
async fn count_tokens_endpoint() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages/count_tokens"))
        .and(header("x-api-key", KEY))
        .and(header("anthropic-version", "2023-06-01"))
        .and(body_json(json!({
            "model": "claude-sonnet-4-5",
            "system": "Be terse.",
            "messages": [{"role": "user", "content": "Say hi"}]
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"input_tokens": 14})))
        .expect(1)
        .mount(&server)
        .await;
    let claude = client(&server);
    assert_eq!(
        claude
            .count_tokens(&hi().max_tokens(5))
            .await
            .expect("count"),
        14
    );
    // The offline estimate is free and in the same range.
    let estimate = claude.estimate_tokens(&hi());
    assert!((5..=40).contains(&estimate), "{estimate}");
}

#[tokio::test]
async fn count_tokens_errors_are_typed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages/count_tokens"))
        .respond_with(ResponseTemplate::new(401).set_body_json(fixture("authentication.json")))
        .mount(&server)
        .await;
    let err = client(&server).count_tokens(&hi()).await.expect_err("401");
    assert!(
        matches!(err, Error::Authentication { status: 401, .. }),
        "{err}"
    );
    assert_no_key(&err);
}

async fn error_for(template: ResponseTemplate) -> Error {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(template)
        .expect(1)
        .mount(&server)
        .await;
    let err = client(&server).oneshot(hi()).await.expect_err("must fail");
    assert_no_key(&err);
    err
}

#[tokio::test]
async fn rate_limited_with_retry_after() {
    let err = error_for(
        ResponseTemplate::new(429)
            .insert_header("retry-after", "12")
            .insert_header("request-id", "req_011CRate")
            .set_body_json(fixture("rate_limit.json")),
    )
    .await;
    assert!(matches!(err, Error::RateLimited { .. }), "{err}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(12)));
    assert!(err.to_string().contains("req_011CRate"), "{err}");
}

#[tokio::test]
async fn overloaded_529() {
    let err = error_for(ResponseTemplate::new(529).set_body_json(fixture("overloaded.json"))).await;
    assert!(
        matches!(err, Error::Overloaded { status: 529, .. }),
        "{err}"
    );
    assert!(err.is_retryable());
}

#[tokio::test]
async fn unavailable_503_without_body() {
    let err = error_for(ResponseTemplate::new(503)).await;
    assert!(
        matches!(err, Error::Overloaded { status: 503, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn unauthorized_401() {
    let err =
        error_for(ResponseTemplate::new(401).set_body_json(fixture("authentication.json"))).await;
    assert!(
        matches!(err, Error::Authentication { status: 401, .. }),
        "{err}"
    );
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn prompt_too_long_400() {
    let err =
        error_for(ResponseTemplate::new(400).set_body_json(fixture("prompt_too_long.json"))).await;
    assert!(matches!(err, Error::ContextLengthExceeded { .. }), "{err}");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn billing_is_quota_not_retryable() {
    let err = error_for(ResponseTemplate::new(402).set_body_json(fixture("billing.json"))).await;
    assert!(matches!(err, Error::QuotaExceeded { .. }), "{err}");
    let err = error_for(ResponseTemplate::new(400).set_body_json(json!({
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits."}
    })))
    .await;
    assert!(matches!(err, Error::QuotaExceeded { .. }), "{err}");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn server_error_500_and_should_retry_false() {
    let err = error_for(ResponseTemplate::new(500).set_body_json(fixture("api_error.json"))).await;
    assert!(matches!(err, Error::Server { status: 500, .. }), "{err}");
    assert!(err.is_retryable());
    let err = error_for(
        ResponseTemplate::new(500)
            .insert_header("x-should-retry", "false")
            .set_body_json(fixture("api_error.json")),
    )
    .await;
    assert!(!err.is_retryable(), "{err}");
}

#[tokio::test]
async fn html_502_and_truncated_json() {
    let err = error_for(ResponseTemplate::new(502).set_body_string(
        "<html><head><title>502 Bad Gateway</title></head><body>cloudflare</body></html>",
    ))
    .await;
    assert!(matches!(err, Error::Server { status: 502, .. }), "{err}");
    assert!(err.to_string().contains("502 Bad Gateway"), "{err}");

    let full = fixture("message.json").to_string();
    let err = error_for(ResponseTemplate::new(200).set_body_string(&full[..full.len() - 20])).await;
    match err {
        Error::Decode { body_snippet, .. } => assert!(body_snippet.starts_with("{\"")),
        other => panic!("expected Decode, got {other}"),
    }
}

#[tokio::test]
async fn slow_response_times_out() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(fixture("message.json"))
                .set_delay(Duration::from_secs(10)),
        )
        .mount(&server)
        .await;
    let claude = Anthropic::builder()
        .api_key(KEY)
        .base_url(server.uri())
        .timeout(Duration::from_millis(200))
        .build()
        .expect("client");
    let err = claude.oneshot(hi()).await.expect_err("times out");
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert_no_key(&err);
}

#[test]
fn key_never_in_debug() {
    let c = Anthropic::builder().api_key(KEY).build().expect("client");
    let shown = format!("{c:?} {:?}", c.codec());
    assert!(!shown.contains("SECRET"), "{shown}");
}

mod batch {
    use super::*;
    use costlayer_core::{BatchItem, BatchProvider, BatchState, Mode};

    fn batch_object(status: &str, counts: Value, cancel: Option<&str>) -> Value {
        json!({
            "id": "msgbatch_013Zva2CMHLNnXjNJJKqJ2EF",
            "type": "message_batch",
            "processing_status": status,
            "request_counts": counts,
            "ended_at": null,
            "created_at": "2025-11-20T10:00:00Z",
            "expires_at": "2025-11-21T10:00:00Z",
            "archived_at": null,
            "cancel_initiated_at": cancel,
            "results_url": null
        })
    }

    #[tokio::test]
    async fn submit_status_results_cancel() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/messages/batches"))
            .and(header("x-api-key", KEY))
            .and(header("anthropic-version", "2023-06-01"))
            .and(body_json(json!({"requests": [
                {"custom_id": "req-1", "params": {"model": "claude-haiku-4-5", "max_tokens": 256,
                    "messages": [{"role": "user", "content": "Hi"}]}},
                {"custom_id": "req-2", "params": {"model": "claude-haiku-4-5", "max_tokens": 4096,
                    "messages": [{"role": "user", "content": "Hello"}]}}
            ]})))
            .respond_with(ResponseTemplate::new(200).set_body_json(batch_object(
                "in_progress",
                json!({"processing": 2, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}),
                None,
            )))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path(
                "/v1/messages/batches/msgbatch_013Zva2CMHLNnXjNJJKqJ2EF",
            ))
            .and(header("x-api-key", KEY))
            .respond_with(ResponseTemplate::new(200).set_body_json(batch_object(
                "ended",
                json!({"processing": 0, "succeeded": 1, "errored": 1, "canceled": 1, "expired": 1}),
                None,
            )))
            .expect(1)
            .mount(&server)
            .await;
        let results = std::fs::read_to_string(format!(
            "{}/tests/fixtures/batch_results.jsonl",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("fixture");
        Mock::given(method("GET"))
            .and(path(
                "/v1/messages/batches/msgbatch_013Zva2CMHLNnXjNJJKqJ2EF/results",
            ))
            .respond_with(ResponseTemplate::new(200).set_body_string(results))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path(
                "/v1/messages/batches/msgbatch_013Zva2CMHLNnXjNJJKqJ2EF/cancel",
            ))
            .respond_with(ResponseTemplate::new(200).set_body_json(batch_object(
                "canceling",
                json!({"processing": 2, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}),
                Some("2025-11-20T10:05:00Z"),
            )))
            .expect(1)
            .mount(&server)
            .await;

        let claude = client(&server);
        let id = claude
            .submit(vec![
                BatchItem {
                    custom_id: "req-1".into(),
                    request: ChatRequest::new("claude-haiku-4-5")
                        .message(Message::user("Hi"))
                        .max_tokens(256),
                },
                BatchItem {
                    custom_id: "req-2".into(),
                    request: ChatRequest::new("claude-haiku-4-5").message(Message::user("Hello")),
                },
            ])
            .await
            .expect("submit");
        assert_eq!(id, "msgbatch_013Zva2CMHLNnXjNJJKqJ2EF");

        let status = claude.status(&id).await.expect("status");
        // One request ran out of the 24-hour window: the job expired, with
        // results for the requests that finished.
        assert_eq!(status.state, BatchState::Expired);
        assert_eq!((status.succeeded, status.failed, status.total), (1, 3, 4));

        let results = claude.results(&id).await.expect("results");
        assert_eq!(results.len(), 5);
        let by_id = |id: &str| results.iter().find(|r| r.custom_id == id).expect("present");
        let ok = by_id("req-1").result.as_ref().expect("succeeded");
        assert_eq!(ok.text, "Hello!");
        assert_eq!(ok.mode, Mode::Batch);
        assert_eq!(ok.usage, Usage::new(12, 6));
        assert!(matches!(
            by_id("req-2").result,
            Err(Error::InvalidRequest { status: 400, .. })
        ));
        assert!(by_id("req-3")
            .result
            .as_ref()
            .is_err_and(|e| e.to_string().contains("canceled")));
        assert!(by_id("req-4")
            .result
            .as_ref()
            .is_err_and(|e| e.to_string().contains("expired")));
        // The torn last line is reported, not fatal.
        assert!(matches!(by_id("line 5").result, Err(Error::Decode { .. })));

        let cancelled = claude.cancel(&id).await.expect("cancel");
        assert_eq!(cancelled.state, BatchState::Cancelling);
    }

    #[tokio::test]
    async fn batch_errors_are_typed_and_ids_checked() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(404).set_body_json(json!({
                "type": "error", "error": {"type": "not_found_error", "message": "batch not found"}
            })))
            .mount(&server)
            .await;
        let claude = client(&server);
        let err = claude.status("msgbatch_missing").await.expect_err("404");
        assert!(
            matches!(err, Error::InvalidRequest { status: 404, .. }),
            "{err}"
        );
        let err = claude
            .status("../../v1/messages")
            .await
            .expect_err("bad id");
        assert!(matches!(err, Error::Config { .. }), "{err}");
        let err = claude.submit(Vec::new()).await.expect_err("empty");
        assert!(matches!(err, Error::Config { .. }), "{err}");
    }
}
