//! A two-turn tool loop with extended thinking against a wiremock server
//! on 127.0.0.1: turn 1 answers with thinking, redacted thinking, text and
//! a tool call; turn 2 must start its assistant turn with the thinking
//! blocks exactly as received (the API refuses it otherwise).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use costlayer_anthropic::Anthropic;
use costlayer_core::{ChatRequest, ContentPart, FinishReason, Message, ToolDefinition};
use serde_json::json;
use tower::ServiceExt;
use wiremock::matchers::{body_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test]
async fn thinking_blocks_survive_a_tool_loop() {
    let server = MockServer::start().await;
    let thinking = json!({"type": "enabled", "budget_tokens": 2048});
    let tools = json!([{"name": "get_weather", "description": "Current weather",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]);
    let user = json!({"role": "user", "content": "Weather in Paris?"});
    let assistant_blocks = json!([
        {"type": "thinking", "thinking": "The user wants Paris.", "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pk"},
        {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP"},
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris"}}
    ]);
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(body_json(json!({
            "model": "claude-sonnet-4-5", "max_tokens": 4096,
            "messages": [user], "tools": tools, "thinking": thinking
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
            "content": assistant_blocks, "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 50, "output_tokens": 120}
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(body_json(json!({
            "model": "claude-sonnet-4-5", "max_tokens": 4096,
            "messages": [
                user,
                {"role": "assistant", "content": assistant_blocks},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01A", "content": "18C"}]}
            ],
            "tools": tools, "thinking": thinking
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "msg_2", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
            "content": [{"type": "text", "text": "18C in Paris."}], "stop_reason": "end_turn",
            "usage": {"input_tokens": 200, "output_tokens": 8}
        })))
        .expect(1)
        .mount(&server)
        .await;

    let client = Anthropic::builder()
        .api_key("sk-ant-test")
        .base_url(server.uri())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut req = ChatRequest::new("claude-sonnet-4-5")
        .message(Message::user("Weather in Paris?"))
        .tool(ToolDefinition {
            name: "get_weather".into(),
            description: Some("Current weather".into()),
            parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
        })
        .extra("thinking", thinking.clone());
    let first = client.clone().oneshot(req.clone()).await.unwrap();
    assert_eq!(first.finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(first.text, "Let me check.");
    assert!(
        matches!(&first.parts[0], ContentPart::Thinking { signature: Some(s), .. } if s.starts_with("EqQB"))
    );
    assert!(matches!(
        &first.parts[1],
        ContentPart::RedactedThinking { .. }
    ));

    req.messages.push(first.message());
    req.messages
        .push(Message::tool(first.tool_calls[0].id.clone(), "18C"));
    let second = client.oneshot(req).await.unwrap();
    assert_eq!(second.text, "18C in Paris.");
    assert!(second.parts.is_empty());
}

#[tokio::test]
async fn batch_cancel_sends_no_body() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages/batches/msgbatch_1/cancel"))
        .and(|req: &wiremock::Request| {
            req.body.is_empty() && !req.headers.contains_key("content-type")
        })
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "msgbatch_1", "type": "message_batch", "processing_status": "canceling",
            "request_counts": {"processing": 2, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        })))
        .expect(1)
        .mount(&server)
        .await;
    let client = Anthropic::builder()
        .api_key("sk-ant-test")
        .base_url(server.uri())
        .build()
        .unwrap();
    let status = costlayer_core::BatchProvider::cancel(&client, "msgbatch_1")
        .await
        .unwrap();
    assert_eq!(status.state, costlayer_core::BatchState::Cancelling);
}
