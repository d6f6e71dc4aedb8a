//! Every request body costlayer-anthropic can produce (Messages,
//! count_tokens, Message Batches), checked against the schemas in
//! `tests/schema/anthropic.json` (transcribed from the Stainless-generated
//! anthropic-sdk-python types, see its `$comment`) by a strict checker: an
//! unknown field or a wrong type fails. No network.

#![allow(clippy::unwrap_used)]

#[path = "../../conformance/requests.rs"]
mod matrix;
#[path = "../../conformance/strict_schema.rs"]
mod strict_schema;

use std::time::Duration;

use costlayer_anthropic::{Anthropic, AnthropicCodec};
use costlayer_core::{
    ApiKey, BatchItem, BatchProvider, ChatRequest, Content, ContentPart, Message, ToolCall,
    ToolDefinition,
};
use serde_json::{json, Value};
use strict_schema::{assert_conforms, Schemas};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn schemas() -> Schemas {
    Schemas::parse(include_str!("schema/anthropic.json"))
}

/// A conversation with every kind of message the codec translates.
fn history() -> Vec<Message> {
    let mut assistant = Message::assistant(Content::Parts(vec![
        ContentPart::Thinking {
            text: "The user wants Paris.".into(),
            signature: Some("EqQB".into()),
        },
        ContentPart::RedactedThinking {
            data: "EmwK".into(),
        },
        // Another provider's state: dropped.
        ContentPart::Thinking {
            text: "unsigned".into(),
            signature: None,
        },
        ContentPart::provider_item(
            "openai",
            json!({"type": "reasoning", "id": "rs_1", "summary": []}),
        ),
        ContentPart::text("Let me check."),
    ]));
    assistant.tool_calls = vec![
        ToolCall::function("toolu_1", "get_weather", r#"{"city":"Paris"}"#),
        ToolCall::function("toolu_2", "get_weather", ""),
    ];
    // A final answer with thinking and no tool call.
    let final_answer = Message::assistant(Content::Parts(vec![
        ContentPart::Thinking {
            text: "Done.".into(),
            signature: Some("sig2".into()),
        },
        ContentPart::text("18C and -3C."),
    ]));
    vec![
        Message::system("more rules"),
        Message::user(Content::Parts(vec![
            ContentPart::text("look"),
            ContentPart::ImageUrl {
                url: "data:image/png;base64,iVBORw0K".into(),
            },
            ContentPart::ImageUrl {
                url: "https://x/cat.jpg".into(),
            },
        ])),
        assistant,
        Message::tool("toolu_1", "18C"),
        Message::tool("toolu_2", "-3C"),
        final_answer,
        Message::user("thanks"),
    ]
}

fn requests() -> Vec<ChatRequest> {
    // Anthropic has no JSON-object mode.
    matrix::matrix("claude-haiku-4-5", false, || {
        let mut req = ChatRequest::new("claude-sonnet-4-5")
            .system("Be terse.")
            .max_tokens(4096)
            .temperature(1.0)
            .tool(ToolDefinition {
                name: "get_weather".into(),
                description: Some("Current weather".into()),
                parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}}),
            })
            .extra(
                "thinking",
                json!({"type": "enabled", "budget_tokens": 2048}),
            )
            .extra("metadata", json!({"user_id": "u-1"}));
        req.messages = history().into();
        req.top_p = Some(0.95);
        req.stop = vec!["END".into()];
        req
    })
}

#[test]
fn every_messages_and_count_tokens_body_conforms() {
    let s = schemas();
    let codec = AnthropicCodec::new(ApiKey::new("k"));
    let reqs = requests();
    assert_eq!(reqs.len(), 16);
    for (i, req) in reqs.iter().enumerate() {
        let body = codec.body(req).unwrap();
        assert_conforms(
            &s,
            "MessageCreateParams",
            &body,
            &format!("messages body {i}"),
        );
        let count = codec.count_tokens_request(req).unwrap();
        let count: Value = serde_json::from_slice(count.body()).unwrap();
        assert_conforms(
            &s,
            "MessageCountTokensParams",
            &count,
            &format!("count_tokens body {i}"),
        );
        // The structured-output schema is part of the prompt: it is counted.
        if req.response_format.is_some() && body.get("output_config").is_some() {
            assert_eq!(count["output_config"], body["output_config"]);
        }
    }
}

#[test]
fn the_checker_refuses_unknown_fields_and_wrong_types() {
    let s = schemas();
    let codec = AnthropicCodec::new(ApiKey::new("k"));
    let good = codec.body(&requests()[3]).unwrap();
    assert!(s.check("MessageCreateParams", &good).is_empty());
    let mut unknown = good.clone();
    unknown["max_completion_tokens"] = json!(10);
    assert!(!s.check("MessageCreateParams", &unknown).is_empty());
    let mut wrong = good.clone();
    wrong["max_tokens"] = json!("4096");
    assert!(!s.check("MessageCreateParams", &wrong).is_empty());
    // A thinking block without its signature is refused by the API.
    let mut unsigned = good.clone();
    unsigned["messages"][1]["content"][0]
        .as_object_mut()
        .unwrap()
        .remove("signature");
    assert!(!s.check("MessageCreateParams", &unsigned).is_empty());
    // count_tokens takes no max_tokens (nor sampling parameters).
    assert!(!s.check("MessageCountTokensParams", &good).is_empty());
}

#[tokio::test]
async fn the_batch_body_conforms() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages/batches"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "msgbatch_1", "type": "message_batch", "processing_status": "in_progress",
            "request_counts": {"processing": 16, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        })))
        .expect(1)
        .mount(&server)
        .await;
    let client = Anthropic::builder()
        .api_key("k")
        .base_url(server.uri())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let items = requests()
        .into_iter()
        .enumerate()
        .map(|(i, request)| BatchItem {
            custom_id: format!("r{i}"),
            request,
        })
        .collect();
    client.submit(items).await.unwrap();
    let received = server.received_requests().await.unwrap();
    let body: Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(body["requests"].as_array().unwrap().len(), 16);
    assert_conforms(&schemas(), "BatchCreateParams", &body, "batch creation");
}
