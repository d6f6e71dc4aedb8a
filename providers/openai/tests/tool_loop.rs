//! Two-turn tool loops against a wiremock server on 127.0.0.1.
//!
//! - Responses API: turn 1 answers with a reasoning item and a function
//!   call; turn 2 must carry the reasoning item (id, summary,
//!   `encrypted_content`) and the call (item id, call id) back exactly.
//! - Chat Completions: a custom tool call is read and written back.
//! - Batch cancel sends no body.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use costlayer_core::{
    BatchProvider, ChatRequest, FinishReason, Message, ToolCallKind, ToolDefinition,
};
use costlayer_openai::OpenAi;
use serde_json::json;
use tower::ServiceExt;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn builder(server: &MockServer) -> costlayer_openai::OpenAiBuilder {
    OpenAi::builder()
        .api_key("sk-test")
        .base_url(format!("{}/v1", server.uri()))
        .timeout(Duration::from_secs(5))
}

#[tokio::test]
async fn reasoning_items_survive_a_responses_tool_loop() {
    let server = MockServer::start().await;
    let tools = json!([{"type": "function", "name": "get_weather", "description": "Current weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}, "strict": false}]);
    let user = json!({"type": "message", "role": "user", "content": "Weather in Paris?"});
    let reasoning = json!({"type": "reasoning", "id": "rs_68af", "summary": [{"type": "summary_text", "text": "Look it up."}],
        "encrypted_content": "gAAAAABoD3-encrypted"});
    Mock::given(method("POST"))
        .and(path("/v1/responses"))
        .and(header("authorization", "Bearer sk-test"))
        .and(body_json(json!({
            "model": "o4-mini", "instructions": "Be brief.", "input": [user], "tools": tools,
            "store": false, "include": ["reasoning.encrypted_content"]
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "resp_1", "object": "response", "status": "completed", "model": "o4-mini-2025-04-16",
            "output": [
                reasoning,
                {"type": "function_call", "id": "fc_68af", "call_id": "call_Z1", "name": "get_weather",
                 "arguments": "{\"city\":\"Paris\"}", "status": "completed"}
            ],
            "usage": {"input_tokens": 60, "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens": 90, "output_tokens_details": {"reasoning_tokens": 64}, "total_tokens": 150}
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/responses"))
        .and(body_json(json!({
            "model": "o4-mini", "instructions": "Be brief.",
            "input": [
                user,
                reasoning,
                {"type": "function_call", "id": "fc_68af", "call_id": "call_Z1", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
                {"type": "function_call_output", "call_id": "call_Z1", "output": "18C"}
            ],
            "tools": tools, "store": false, "include": ["reasoning.encrypted_content"]
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "resp_2", "object": "response", "status": "completed", "model": "o4-mini-2025-04-16",
            "output": [{"type": "message", "id": "msg_2", "role": "assistant", "status": "completed",
                        "content": [{"type": "output_text", "text": "18C.", "annotations": []}]}],
            "usage": {"input_tokens": 200, "input_tokens_details": {"cached_tokens": 128},
                      "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 205}
        })))
        .expect(1)
        .mount(&server)
        .await;

    let client = builder(&server).build_responses().unwrap();
    let mut req = ChatRequest::new("o4-mini")
        .system("Be brief.")
        .message(Message::user("Weather in Paris?"))
        .tool(ToolDefinition {
            name: "get_weather".into(),
            description: Some("Current weather".into()),
            parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}}),
        })
        .extra("store", json!(false))
        .extra("include", json!(["reasoning.encrypted_content"]));
    let first = client.clone().oneshot(req.clone()).await.unwrap();
    assert_eq!(first.finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(first.request_id.as_deref(), Some("resp_1"));
    assert_eq!(first.usage.reasoning_tokens, 64);
    req.messages.push(first.message());
    req.messages
        .push(Message::tool(first.tool_calls[0].id.clone(), "18C"));
    let second = client.oneshot(req).await.unwrap();
    assert_eq!(second.text, "18C.");
    assert_eq!(
        (second.usage.input_tokens, second.usage.cache_read_tokens),
        (72, 128)
    );
}

#[tokio::test]
async fn previous_response_id_continues_on_the_server() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/responses"))
        .and(body_json(json!({
            "model": "gpt-4.1", "previous_response_id": "resp_1",
            "input": [{"type": "function_call_output", "call_id": "call_Z1", "output": "18C"}]
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "resp_2", "object": "response", "status": "completed",
            "output": [{"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "18C."}]}],
            "usage": {"input_tokens": 20, "output_tokens": 3, "total_tokens": 23}
        })))
        .expect(1)
        .mount(&server)
        .await;
    let resp = builder(&server)
        .build_responses()
        .unwrap()
        .oneshot(
            ChatRequest::new("gpt-4.1")
                .message(Message::tool("call_Z1", "18C"))
                .extra("previous_response_id", json!("resp_1")),
        )
        .await
        .unwrap();
    assert_eq!(resp.text, "18C.");
}

#[tokio::test]
async fn responses_errors_carry_retry_hints() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/responses"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after-ms", "1500")
                .set_body_json(json!({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let err = builder(&server)
        .build_responses()
        .unwrap()
        .oneshot(ChatRequest::new("gpt-4.1").message(Message::user("x")))
        .await
        .unwrap_err();
    assert!(
        matches!(err, costlayer_core::Error::RateLimited { .. }),
        "{err}"
    );
    assert_eq!(err.retry_after(), Some(Duration::from_millis(1500)));
}

#[tokio::test]
async fn custom_tool_calls_survive_a_chat_tool_loop() {
    let server = MockServer::start().await;
    let user = json!({"role": "user", "content": "Find TODOs"});
    let custom_call = json!({"id": "call_C1", "type": "custom", "custom": {"name": "grep", "input": "TODO src/"}});
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(body_json(json!({"model": "gpt-5", "messages": [user]})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-5-2025-08-07",
            "choices": [{"index": 0, "finish_reason": "tool_calls",
                "message": {"role": "assistant", "content": null, "tool_calls": [custom_call]}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(body_json(json!({"model": "gpt-5", "messages": [
            user,
            {"role": "assistant", "content": null, "tool_calls": [custom_call]},
            {"role": "tool", "tool_call_id": "call_C1", "content": "src/a.rs:3"}
        ]})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "chatcmpl-2", "object": "chat.completion", "model": "gpt-5-2025-08-07",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "One TODO."}}],
            "usage": {"prompt_tokens": 30, "completion_tokens": 3, "total_tokens": 33}
        })))
        .expect(1)
        .mount(&server)
        .await;
    let client = builder(&server).build().unwrap();
    let mut req = ChatRequest::new("gpt-5").message(Message::user("Find TODOs"));
    let first = client.clone().oneshot(req.clone()).await.unwrap();
    assert_eq!(first.tool_calls[0].kind, ToolCallKind::Custom);
    assert_eq!(first.tool_calls[0].arguments, "TODO src/");
    req.messages.push(first.message());
    req.messages.push(Message::tool("call_C1", "src/a.rs:3"));
    assert_eq!(client.oneshot(req).await.unwrap().text, "One TODO.");
}

#[tokio::test]
async fn batch_cancel_sends_no_body() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/batches/batch_1/cancel"))
        .and(|req: &wiremock::Request| {
            req.body.is_empty() && !req.headers.contains_key("content-type")
        })
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "batch_1", "object": "batch", "status": "cancelling",
            "request_counts": {"total": 2, "completed": 0, "failed": 0}
        })))
        .expect(1)
        .mount(&server)
        .await;
    let status = builder(&server)
        .build()
        .unwrap()
        .cancel("batch_1")
        .await
        .unwrap();
    assert_eq!(status.state, costlayer_core::BatchState::Cancelling);
}
