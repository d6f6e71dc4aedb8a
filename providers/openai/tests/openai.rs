//! costlayer-openai against a wiremock server on 127.0.0.1.

use std::time::Duration;

use costlayer_core::{ChatRequest, Error, FinishReason, Message, ToolDefinition, Usage};
use costlayer_openai::{OpenAi, OpenAiUsage};
use serde_json::{json, Value};
use tower::ServiceExt;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "sk-test-SECRET-0123456789abcdef5678";

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("fixture exists");
    serde_json::from_str(&text).expect("fixture is JSON")
}

fn client(server: &MockServer) -> OpenAi {
    OpenAi::builder()
        .api_key(KEY)
        .base_url(format!("{}/v1", server.uri()))
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client builds")
}

fn hi() -> ChatRequest {
    ChatRequest::new("gpt-4o-mini")
        .system("Be terse.")
        .message(Message::user("Say hi"))
        .max_tokens(16)
}

fn assert_no_key(err: &Error) {
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(KEY), "the key leaked: {shown}");
    assert!(!shown.contains("SECRET"), "the key leaked: {shown}");
}

#[tokio::test]
async fn sends_the_documented_request_and_maps_the_response() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "Be terse."},
                {"role": "user", "content": "Say hi"}
            ],
            "max_completion_tokens": 16
        })))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("x-request-id", "req_7f3a")
                .set_body_json(fixture("chat_completion.json")),
        )
        .expect(1)
        .mount(&server)
        .await;

    let resp = client(&server).oneshot(hi()).await.expect("call succeeds");
    assert_eq!(resp.provider, "openai");
    assert_eq!(resp.text, "Hi!");
    // The model as billed: dated, resolved to `gpt-4o-mini` by the price table.
    assert_eq!(resp.model, "gpt-4o-mini-2024-07-18");
    assert_eq!(resp.finish_reason, Some(FinishReason::Stop));
    assert_eq!(resp.request_id.as_deref(), Some("req_7f3a"));
    assert_eq!(
        resp.usage,
        Usage {
            input_tokens: 1024,
            cache_read_tokens: 1024,
            output_tokens: 300,
            ..Usage::default()
        }
    );
    assert_eq!(resp.usage.prompt_tokens(), 2048);
    assert_eq!(
        resp.raw_usage,
        Some(fixture("chat_completion.json")["usage"].clone())
    );
}

#[tokio::test]
async fn response_id_is_the_request_id_without_the_header() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("chat_completion.json")))
        .mount(&server)
        .await;
    let resp = client(&server).oneshot(hi()).await.expect("ok");
    assert_eq!(resp.request_id.as_deref(), Some("chatcmpl-AbC123"));
}

#[test]
fn usage_fixtures_map_into_disjoint_buckets() {
    let cached: OpenAiUsage =
        serde_json::from_value(fixture("chat_completion.json")["usage"].clone()).expect("usage");
    let u = Usage::from(cached);
    assert_eq!(
        (u.input_tokens, u.cache_read_tokens, u.output_tokens),
        (1024, 1024, 300)
    );

    // Reasoning is inside completion_tokens: output stays 2200, reasoning is
    // its 2048-token part, and the total is not inflated.
    let reasoning: OpenAiUsage =
        serde_json::from_value(fixture("reasoning.json")["usage"].clone()).expect("usage");
    let u = Usage::from(reasoning);
    assert_eq!(u.input_tokens, 1500);
    assert_eq!(u.output_tokens, 2200);
    assert_eq!(u.reasoning_tokens, 2048);
    assert_eq!(u.total_tokens(), 3700);

    // Missing and null details read as zero.
    let bare: OpenAiUsage = serde_json::from_value(json!({
        "prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6,
        "prompt_tokens_details": null, "completion_tokens_details": {"reasoning_tokens": null}
    }))
    .expect("usage");
    assert_eq!(Usage::from(bare), Usage::new(5, 1));
}

#[tokio::test]
async fn reasoning_model_with_tools_and_extra() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(body_json(json!({
            "model": "o3-mini",
            "messages": [{"role": "user", "content": "weather in Paris?"}],
            "tools": [{"type": "function", "function": {
                "name": "get_weather", "description": "Current weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}
            }}],
            "tool_choice": "required",
            "reasoning_effort": "low",
            "metadata": {"team": "search"}
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("tool_calls.json")))
        .expect(1)
        .mount(&server)
        .await;
    let req = ChatRequest {
        tool_choice: Some(costlayer_core::ToolChoice::Required),
        ..ChatRequest::new("o3-mini")
            .message(Message::user("weather in Paris?"))
            .tool(ToolDefinition {
                name: "get_weather".into(),
                description: Some("Current weather".into()),
                parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}}),
            })
            .extra("reasoning_effort", json!("low"))
            .extra("metadata", json!({"team": "search"}))
    };
    let resp = client(&server).oneshot(req).await.expect("ok");
    assert_eq!(resp.finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(resp.tool_calls.len(), 1);
    assert_eq!(resp.tool_calls[0].id, "call_abc123");
    assert_eq!(resp.tool_calls[0].arguments, r#"{"city":"Paris"}"#);
    assert_eq!(resp.text, "");
}

async fn error_for(template: ResponseTemplate) -> Error {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
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
            .insert_header("retry-after", "2")
            .set_body_json(fixture("rate_limit.json")),
    )
    .await;
    assert!(matches!(err, Error::RateLimited { .. }), "{err}");
    assert!(err.is_retryable());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));
}

#[tokio::test]
async fn retry_after_ms_and_reset_headers() {
    let err = error_for(
        ResponseTemplate::new(429)
            .insert_header("retry-after-ms", "210")
            .insert_header("retry-after", "1")
            .set_body_json(fixture("rate_limit.json")),
    )
    .await;
    assert_eq!(err.retry_after(), Some(Duration::from_millis(210)));

    let err = error_for(
        ResponseTemplate::new(429)
            .insert_header("x-ratelimit-remaining-tokens", "0")
            .insert_header("x-ratelimit-reset-tokens", "1m30s")
            .insert_header("x-ratelimit-reset-requests", "12ms")
            .set_body_json(fixture("rate_limit.json")),
    )
    .await;
    assert_eq!(err.retry_after(), Some(Duration::from_secs(90)));
}

#[tokio::test]
async fn insufficient_quota_is_not_retryable() {
    let err = error_for(
        ResponseTemplate::new(429)
            .insert_header("retry-after", "20")
            .set_body_json(fixture("insufficient_quota.json")),
    )
    .await;
    assert!(matches!(err, Error::QuotaExceeded { .. }), "{err}");
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("Add credit"), "{err}");
}

#[tokio::test]
async fn overloaded_503() {
    let err = error_for(ResponseTemplate::new(503).set_body_json(fixture("overloaded.json"))).await;
    assert!(
        matches!(err, Error::Overloaded { status: 503, .. }),
        "{err}"
    );
    assert!(err.is_retryable());
}

#[tokio::test]
async fn unauthorized_401() {
    let err =
        error_for(ResponseTemplate::new(401).set_body_json(fixture("invalid_key.json"))).await;
    assert!(
        matches!(err, Error::Authentication { status: 401, .. }),
        "{err}"
    );
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn context_length_400() {
    let err = error_for(
        ResponseTemplate::new(400)
            .insert_header("x-request-id", "req_ctx")
            .set_body_json(fixture("context_length.json")),
    )
    .await;
    assert!(matches!(err, Error::ContextLengthExceeded { .. }), "{err}");
    assert!(err.to_string().contains("req_ctx"), "{err}");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn server_error_500() {
    let err =
        error_for(ResponseTemplate::new(500).set_body_json(fixture("server_error.json"))).await;
    assert!(matches!(err, Error::Server { status: 500, .. }), "{err}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn html_502_page_is_a_server_error() {
    let err = error_for(
        ResponseTemplate::new(502)
            .insert_header("content-type", "text/html")
            .set_body_string("<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>cloudflare</center></body></html>"),
    )
    .await;
    assert!(matches!(err, Error::Server { status: 502, .. }), "{err}");
    assert!(err.to_string().contains("502 Bad Gateway"), "{err}");
}

#[tokio::test]
async fn html_with_200_and_truncated_json_are_decode_errors() {
    let err = error_for(
        ResponseTemplate::new(200).set_body_string("<html><body>Gateway says hello</body></html>"),
    )
    .await;
    match &err {
        Error::Decode { body_snippet, .. } => assert!(body_snippet.starts_with("<html>")),
        other => panic!("expected Decode, got {other}"),
    }

    let full = fixture("chat_completion.json").to_string();
    let truncated = &full[..full.len() / 2];
    let err = error_for(ResponseTemplate::new(200).set_body_string(truncated)).await;
    assert!(matches!(err, Error::Decode { .. }), "{err}");
}

#[tokio::test]
async fn slow_response_times_out() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(fixture("chat_completion.json"))
                .set_delay(Duration::from_secs(10)),
        )
        .mount(&server)
        .await;
    let client = OpenAi::builder()
        .api_key(KEY)
        .base_url(format!("{}/v1", server.uri()))
        .timeout(Duration::from_millis(200))
        .build()
        .expect("client");
    let err = client.oneshot(hi()).await.expect_err("times out");
    assert!(
        matches!(err, Error::Timeout { after, .. } if after == Duration::from_millis(200)),
        "{err}"
    );
    assert!(err.is_retryable());
    assert_no_key(&err);
}

#[tokio::test]
async fn refused_connection_is_a_connection_error() {
    // Bind then drop a listener: the port is very likely closed afterwards.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let client = OpenAi::builder()
        .api_key(KEY)
        .base_url(format!("http://127.0.0.1:{port}/v1"))
        .build()
        .expect("client");
    let err = client.oneshot(hi()).await.expect_err("refused");
    assert!(matches!(err, Error::Connection { .. }), "{err}");
    assert_no_key(&err);
}

#[test]
fn key_never_in_debug() {
    let c = OpenAi::builder().api_key(KEY).build().expect("client");
    let shown = format!("{c:?} {:?}", c.codec());
    assert!(!shown.contains("SECRET"), "{shown}");
}

#[test]
fn count_tokens_uses_tiktoken_with_chat_overhead() {
    let c = OpenAi::builder().api_key(KEY).build().expect("client");
    // 3 priming + (3 per message + "user" 1 token + "hello world" 2 tokens)
    let req = ChatRequest::new("gpt-4o").message(Message::user("hello world"));
    assert_eq!(c.count_tokens(&req), 9);
}

mod batch {
    use super::*;
    use costlayer_core::{BatchItem, BatchProvider, BatchState, Mode};
    use wiremock::matchers::{body_string_contains, header_regex};

    fn batch_object(status: &str, output: Option<&str>, errors: Option<&str>) -> Value {
        json!({
            "id": "batch_abc123",
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "errors": null,
            "input_file_id": "file-in123",
            "completion_window": "24h",
            "status": status,
            "output_file_id": output,
            "error_file_id": errors,
            "created_at": 1711471533,
            "request_counts": {"total": 3, "completed": 1, "failed": 2},
            "metadata": null
        })
    }

    fn read(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("fixture")
    }

    #[tokio::test]
    async fn submit_status_results_cancel() {
        let server = MockServer::start().await;
        let line1 = json!({"custom_id": "req-1", "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "max_completion_tokens": 8}})
        .to_string();
        Mock::given(method("POST"))
            .and(path("/v1/files"))
            .and(header("authorization", format!("Bearer {KEY}").as_str()))
            .and(header_regex(
                "content-type",
                "^multipart/form-data; boundary=.+",
            ))
            .and(body_string_contains("name=\"purpose\"\r\n\r\nbatch\r\n"))
            .and(body_string_contains(line1.as_str()))
            .and(body_string_contains("\"custom_id\":\"req-2\""))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "id": "file-in123", "object": "file", "bytes": 300, "created_at": 1711471533,
                "filename": "costlayer-batch.jsonl", "purpose": "batch"
            })))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/v1/batches"))
            .and(body_json(json!({"input_file_id": "file-in123", "endpoint": "/v1/chat/completions", "completion_window": "24h"})))
            .respond_with(ResponseTemplate::new(200).set_body_json(batch_object("validating", None, None)))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/v1/batches/batch_abc123"))
            .respond_with(ResponseTemplate::new(200).set_body_json(batch_object(
                "completed",
                Some("file-out456"),
                Some("file-err789"),
            )))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/v1/files/file-out456/content"))
            .respond_with(ResponseTemplate::new(200).set_body_string(read("batch_output.jsonl")))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/v1/files/file-err789/content"))
            .respond_with(ResponseTemplate::new(200).set_body_string(read("batch_errors.jsonl")))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/v1/batches/batch_abc123/cancel"))
            .respond_with(ResponseTemplate::new(200).set_body_json(batch_object(
                "cancelling",
                None,
                None,
            )))
            .expect(1)
            .mount(&server)
            .await;

        let openai = client(&server);
        let id = openai
            .submit(vec![
                BatchItem {
                    custom_id: "req-1".into(),
                    request: ChatRequest::new("gpt-4o-mini")
                        .message(Message::user("Hi"))
                        .max_tokens(8),
                },
                BatchItem {
                    custom_id: "req-2".into(),
                    request: ChatRequest::new("gpt-4o-mini").message(Message::user("long")),
                },
            ])
            .await
            .expect("submit");
        assert_eq!(id, "batch_abc123");

        let status = openai.status(&id).await.expect("status");
        assert_eq!(status.state, BatchState::Completed);
        assert_eq!((status.succeeded, status.failed, status.total), (1, 2, 3));

        let results = openai.results(&id).await.expect("results");
        assert_eq!(results.len(), 3);
        let by_id = |id: &str| results.iter().find(|r| r.custom_id == id).expect("present");
        let ok = by_id("req-1").result.as_ref().expect("succeeded");
        assert_eq!(ok.text, "Hello.");
        assert_eq!(ok.mode, Mode::Batch);
        assert_eq!(ok.model, "gpt-4o-mini-2024-07-18");
        assert_eq!(ok.request_id.as_deref(), Some("req_123"));
        assert_eq!(ok.usage, Usage::new(22, 2));
        assert!(matches!(
            by_id("req-2").result,
            Err(Error::ContextLengthExceeded { .. })
        ));
        assert!(by_id("req-3")
            .result
            .as_ref()
            .is_err_and(|e| e.to_string().contains("batch_expired")));

        let cancelled = openai.cancel(&id).await.expect("cancel");
        assert_eq!(cancelled.state, BatchState::Cancelling);
    }

    #[tokio::test]
    async fn batch_errors_are_typed() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/files"))
            .respond_with(ResponseTemplate::new(401).set_body_json(fixture("invalid_key.json")))
            .mount(&server)
            .await;
        let openai = client(&server);
        let err = openai
            .submit(vec![BatchItem {
                custom_id: "a".into(),
                request: ChatRequest::new("gpt-4o-mini").message(Message::user("x")),
            }])
            .await
            .expect_err("401");
        assert!(
            matches!(err, Error::Authentication { status: 401, .. }),
            "{err}"
        );
        assert_no_key(&err);
        assert!(matches!(
            openai.status("../files").await,
            Err(Error::Config { .. })
        ));
        assert!(matches!(
            openai.submit(Vec::new()).await,
            Err(Error::Config { .. })
        ));
    }
}
