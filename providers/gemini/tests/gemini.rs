//! costlayer-gemini against a wiremock server on 127.0.0.1.

use std::time::Duration;

use costlayer_core::{ChatRequest, Error, FinishReason, Message, Usage};
use costlayer_gemini::{Gemini, GeminiUsage};
use serde_json::{json, Value};
use tower::ServiceExt;
use wiremock::matchers::{body_json, header, method, path, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "AIzaSy-SECRET-0123456789abcdefghijk";

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("fixture exists");
    serde_json::from_str(&text).expect("fixture is JSON")
}

fn client(server: &MockServer) -> Gemini {
    Gemini::builder()
        .api_key(KEY)
        .base_url(server.uri())
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client builds")
}

fn invoice() -> ChatRequest {
    ChatRequest::new("gemini-2.5-flash")
        .system("You write invoices.")
        .message(Message::user("Write an invoice"))
        .max_tokens(2048)
}

fn assert_no_key(err: &Error) {
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("SECRET"), "the key leaked: {shown}");
}

#[tokio::test]
async fn sends_the_documented_request_and_maps_the_response() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1beta/models/gemini-2.5-flash:generateContent"))
        .and(header("x-goog-api-key", KEY))
        .and(header("content-type", "application/json"))
        // The key travels in the header, never in the URL.
        .and(query_param_is_missing("key"))
        .and(body_json(json!({
            "contents": [{"role": "user", "parts": [{"text": "Write an invoice"}]}],
            "systemInstruction": {"parts": [{"text": "You write invoices."}]},
            "generationConfig": {"maxOutputTokens": 2048, "thinkingConfig": {"thinkingBudget": 1024}}
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("generate_content.json")))
        .expect(1)
        .mount(&server)
        .await;

    let req = invoice().extra(
        "generationConfig",
        json!({"thinkingConfig": {"thinkingBudget": 1024}}),
    );
    let resp = client(&server).oneshot(req).await.expect("call succeeds");
    assert_eq!(resp.provider, "gemini");
    assert_eq!(resp.text, "Invoice #1\n...");
    assert_eq!(resp.model, "gemini-2.5-flash");
    assert_eq!(resp.finish_reason, Some(FinishReason::Stop));
    assert_eq!(resp.request_id.as_deref(), Some("3w4Vad6yF-y1vdIP_q_zgAw"));
    // Thoughts are billed as output: 418 + 438.
    assert_eq!(
        resp.usage,
        Usage {
            input_tokens: 34,
            output_tokens: 856,
            reasoning_tokens: 438,
            ..Usage::default()
        }
    );
    assert_eq!(resp.usage.total_tokens(), 890);
    assert_eq!(
        resp.raw_usage,
        Some(fixture("generate_content.json")["usageMetadata"].clone())
    );
}

#[test]
fn usage_fixtures_map_into_disjoint_buckets() {
    let raw: GeminiUsage =
        serde_json::from_value(fixture("cached.json")["usageMetadata"].clone()).expect("usage");
    let u = Usage::from(raw);
    // promptTokenCount includes the cached content.
    assert_eq!(u.input_tokens, 1500);
    assert_eq!(u.cache_read_tokens, 10_000);
    assert_eq!(u.output_tokens, 11_000);
    assert_eq!(u.reasoning_tokens, 10_000);
    assert_eq!(u.total_tokens(), 22_500);

    // Tool-use prompt tokens are billed as input and keep the total exact.
    let raw: GeminiUsage = serde_json::from_value(json!({
        "promptTokenCount": 100, "candidatesTokenCount": 50, "toolUsePromptTokenCount": 400,
        "totalTokenCount": 550
    }))
    .expect("usage");
    let u = Usage::from(raw);
    assert_eq!(u.input_tokens, 500);
    assert_eq!(u.total_tokens(), 550);
}

#[tokio::test]
async fn cached_response_with_models_prefix() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1beta/models/gemini-2.5-pro:generateContent"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("cached.json")))
        .expect(1)
        .mount(&server)
        .await;
    let req = ChatRequest::new("models/gemini-2.5-pro").message(Message::user("Summarise"));
    let resp = client(&server).oneshot(req).await.expect("ok");
    assert_eq!(resp.finish_reason, Some(FinishReason::Length));
    assert_eq!(resp.usage.cache_read_tokens, 10_000);
}

#[tokio::test]
async fn count_tokens_endpoint() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1beta/models/gemini-2.5-flash:countTokens"))
        .and(header("x-goog-api-key", KEY))
        .and(body_json(json!({"generateContentRequest": {
            "model": "models/gemini-2.5-flash",
            "contents": [{"role": "user", "parts": [{"text": "Write an invoice"}]}],
            "systemInstruction": {"parts": [{"text": "You write invoices."}]},
            "generationConfig": {"maxOutputTokens": 2048}
        }})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "totalTokens": 11,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 11}]
        })))
        .expect(1)
        .mount(&server)
        .await;
    let gemini = client(&server);
    assert_eq!(gemini.count_tokens(&invoice()).await.expect("count"), 11);
    let estimate = gemini.estimate_tokens(&invoice());
    assert!((5..=40).contains(&estimate), "{estimate}");
}

async fn error_for(template: ResponseTemplate) -> Error {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1beta/models/gemini-2.5-flash:generateContent"))
        .respond_with(template)
        .expect(1)
        .mount(&server)
        .await;
    let err = client(&server)
        .oneshot(invoice())
        .await
        .expect_err("must fail");
    assert_no_key(&err);
    err
}

#[tokio::test]
async fn rate_limited_with_retry_info_in_the_body() {
    let err = error_for(ResponseTemplate::new(429).set_body_json(fixture("rate_limit.json"))).await;
    assert!(matches!(err, Error::RateLimited { .. }), "{err}");
    assert!(err.is_retryable());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(34)));
}

#[tokio::test]
async fn retry_after_header_wins_over_retry_info() {
    let err = error_for(
        ResponseTemplate::new(429)
            .insert_header("retry-after", "5")
            .set_body_json(fixture("rate_limit.json")),
    )
    .await;
    assert_eq!(err.retry_after(), Some(Duration::from_secs(5)));
}

#[tokio::test]
async fn daily_quota_in_an_array_wrapped_body() {
    let err =
        error_for(ResponseTemplate::new(429).set_body_json(fixture("daily_quota.json"))).await;
    assert!(matches!(err, Error::QuotaExceeded { .. }), "{err}");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn unavailable_503_is_overloaded() {
    let err =
        error_for(ResponseTemplate::new(503).set_body_json(fixture("unavailable.json"))).await;
    assert!(
        matches!(err, Error::Overloaded { status: 503, .. }),
        "{err}"
    );
    assert!(err.is_retryable());
}

#[tokio::test]
async fn auth_failures() {
    let err = error_for(ResponseTemplate::new(401).set_body_json(json!({"error": {
        "code": 401, "message": "Request had invalid authentication credentials.", "status": "UNAUTHENTICATED"
    }})))
    .await;
    assert!(
        matches!(err, Error::Authentication { status: 401, .. }),
        "{err}"
    );
    let err =
        error_for(ResponseTemplate::new(403).set_body_json(fixture("permission_denied.json")))
            .await;
    assert!(
        matches!(err, Error::Authentication { status: 403, .. }),
        "{err}"
    );
    let err = error_for(ResponseTemplate::new(400).set_body_json(json!({"error": {
        "code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT",
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]
    }})))
    .await;
    assert!(
        matches!(err, Error::Authentication { status: 400, .. }),
        "{err}"
    );
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn token_limit_400() {
    let err =
        error_for(ResponseTemplate::new(400).set_body_json(fixture("token_limit.json"))).await;
    assert!(matches!(err, Error::ContextLengthExceeded { .. }), "{err}");
}

#[tokio::test]
async fn internal_500() {
    let err = error_for(ResponseTemplate::new(500).set_body_json(fixture("internal.json"))).await;
    assert!(matches!(err, Error::Server { status: 500, .. }), "{err}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn html_502_and_truncated_json() {
    let err = error_for(
        ResponseTemplate::new(502).set_body_string(
            "<!DOCTYPE html><html lang=en><meta charset=utf-8><title>Error 502 (Server Error)!!1</title><p><b>502.</b> That’s an error.",
        ),
    )
    .await;
    assert!(matches!(err, Error::Server { status: 502, .. }), "{err}");
    assert!(err.to_string().contains("Error 502"), "{err}");

    let full = fixture("generate_content.json").to_string();
    let err = error_for(ResponseTemplate::new(200).set_body_string(&full[..40])).await;
    assert!(matches!(err, Error::Decode { .. }), "{err}");
}

#[tokio::test]
async fn slow_response_times_out() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(fixture("generate_content.json"))
                .set_delay(Duration::from_secs(10)),
        )
        .mount(&server)
        .await;
    let gemini = Gemini::builder()
        .api_key(KEY)
        .base_url(server.uri())
        .timeout(Duration::from_millis(200))
        .build()
        .expect("client");
    let err = gemini.oneshot(invoice()).await.expect_err("times out");
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert_no_key(&err);
}

#[test]
fn key_never_in_debug() {
    let c = Gemini::builder().api_key(KEY).build().expect("client");
    let shown = format!("{c:?} {:?}", c.codec());
    assert!(!shown.contains("SECRET"), "{shown}");
}
