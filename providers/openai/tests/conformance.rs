//! Every request body costlayer-openai can produce, checked against the
//! OpenAI OpenAPI schemas in `tests/schema/openai.json` (transcribed from
//! github.com/openai/openai-openapi, see its `$comment`) by a strict
//! checker: an unknown field or a wrong type fails. No network.

#![allow(clippy::unwrap_used)]

#[path = "../../conformance/requests.rs"]
mod matrix;
#[path = "../../conformance/strict_schema.rs"]
mod strict_schema;

use std::time::Duration;

use costlayer_core::{
    ApiKey, BatchItem, BatchProvider, ChatRequest, Content, ContentPart, Message, ToolCall,
    ToolDefinition,
};
use costlayer_openai::{OpenAi, OpenAiCodec, OpenAiResponsesCodec};
use serde_json::{json, Value};
use strict_schema::{assert_conforms, Schemas};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn schemas() -> Schemas {
    Schemas::parse(include_str!("schema/openai.json"))
}

fn tool() -> ToolDefinition {
    ToolDefinition {
        name: "get_weather".into(),
        description: Some("Current weather".into()),
        parameters: json!({"type": "object", "properties": {"city": {"type": "string"}},
            "required": ["city"], "additionalProperties": false}),
    }
}

/// A conversation with every kind of message: system, a multi-part user
/// turn with an image, an assistant turn with text, thinking from another
/// provider, an OpenAI reasoning item, function and custom tool calls, and
/// both tool results.
fn history() -> Vec<Message> {
    let mut assistant = Message::assistant(Content::Parts(vec![
        ContentPart::provider_item(
            "openai",
            json!({"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "s"}], "encrypted_content": "e"}),
        ),
        ContentPart::Thinking {
            text: "t".into(),
            signature: Some("sig".into()),
        },
        ContentPart::RedactedThinking { data: "r".into() },
        ContentPart::provider_item("gemini", json!({"thoughtSignature": "x"})),
        ContentPart::text("Checking."),
    ]));
    assistant.tool_calls = vec![
        ToolCall::function("call_1", "get_weather", r#"{"city":"Paris"}"#).with_item_id("fc_1"),
        ToolCall::custom("call_2", "grep", "TODO"),
    ];
    let mut named = Message::user("hi");
    named.name = Some("alice".into());
    vec![
        Message::system("more rules"),
        named,
        Message::user(Content::Parts(vec![
            ContentPart::text("what is this?"),
            ContentPart::ImageUrl {
                url: "https://x/cat.png".into(),
            },
        ])),
        assistant,
        Message::tool("call_1", "18C"),
        Message::tool("call_2", "3 matches"),
        Message::assistant("Done."),
        Message::user("thanks"),
        // Turns from another provider: only state, no text.
        only_state(true),
        Message::tool("toolu_9", "ok"),
        only_state(false),
        Message::user("bye"),
    ]
}

fn only_state(with_call: bool) -> Message {
    let mut m = Message::assistant(Content::Parts(vec![ContentPart::Thinking {
        text: "hidden".into(),
        signature: Some("sig".into()),
    }]));
    if with_call {
        m.tool_calls = vec![ToolCall::function("toolu_9", "get_weather", "{}")];
    }
    m
}

fn requests(with_stop: bool) -> Vec<ChatRequest> {
    matrix::matrix("gpt-4o-mini", true, || {
        let mut req = ChatRequest::new("gpt-4.1")
            .system("Be terse.")
            .max_tokens(256)
            .temperature(0.7)
            .tool(tool());
        req.messages = history().into();
        req.top_p = Some(0.9);
        if with_stop {
            req.stop = vec!["END".into()];
        }
        req
    })
}

#[test]
fn every_chat_completions_body_conforms() {
    let s = schemas();
    let codec = OpenAiCodec::new(ApiKey::new("sk-test"));
    let reqs = requests(true);
    for (i, req) in reqs.iter().enumerate() {
        let body = codec.body(req).unwrap();
        assert_conforms(
            &s,
            "CreateChatCompletionRequest",
            &body,
            &format!("chat body {i}"),
        );
    }
    assert_eq!(reqs.len(), 21);
}

#[test]
fn every_responses_body_conforms() {
    let s = schemas();
    let codec = OpenAiResponsesCodec::new(ApiKey::new("sk-test"));
    let mut reqs = requests(false);
    // A continuation: only the new input, on top of the stored response.
    reqs.push(
        ChatRequest::new("o4-mini")
            .message(Message::tool("call_1", "18C"))
            .extra("previous_response_id", json!("resp_1"))
            .extra("store", json!(false))
            .extra("include", json!(["reasoning.encrypted_content"])),
    );
    for (i, req) in reqs.iter().enumerate() {
        let body = codec.body(req).unwrap();
        assert_conforms(&s, "CreateResponse", &body, &format!("responses body {i}"));
    }
    // A real answer put back into the history is a valid input too.
    let answer = br#"{"id":"resp_1","object":"response","status":"completed","output":[
        {"type":"reasoning","id":"rs_9","summary":[],"encrypted_content":"gAAA","status":"completed"},
        {"type":"message","id":"msg_9","role":"assistant","status":"completed","content":[{"type":"output_text","text":"Hm.","annotations":[]}]},
        {"type":"function_call","id":"fc_9","call_id":"call_9","name":"get_weather","arguments":"{}","status":"completed"}]}"#;
    let first = ChatRequest::new("o4-mini").message(Message::user("hi"));
    let resp = codec.parse_response(&first, answer, None).unwrap();
    let next = first
        .message(resp.message())
        .message(Message::tool("call_9", "18C"));
    assert_conforms(
        &s,
        "CreateResponse",
        &codec.body(&next).unwrap(),
        "continued history",
    );
}

#[test]
fn the_checker_refuses_unknown_fields_and_wrong_types() {
    let s = schemas();
    let codec = OpenAiCodec::new(ApiKey::new("sk-test"));
    let good = codec.body(&requests(true)[5]).unwrap();
    let mut unknown = good.clone();
    unknown["max_output_tokens"] = json!(5);
    assert!(!s.check("CreateChatCompletionRequest", &unknown).is_empty());
    let mut wrong = good.clone();
    wrong["temperature"] = json!("0.7");
    assert!(!s.check("CreateChatCompletionRequest", &wrong).is_empty());
    let mut nested = good;
    nested["messages"][0]["cache_control"] = json!({"type": "ephemeral"});
    assert!(!s.check("CreateChatCompletionRequest", &nested).is_empty());
    // Chat's `tool_calls` shape is not an input item of the Responses API.
    let mut responses = OpenAiResponsesCodec::new(ApiKey::new("k"))
        .body(&ChatRequest::new("gpt-4.1").message(Message::user("hi")))
        .unwrap();
    responses["input"][0]["tool_calls"] = json!([]);
    assert!(!s.check("CreateResponse", &responses).is_empty());
    // The Responses API needs at least 16 output tokens.
    let small = OpenAiResponsesCodec::new(ApiKey::new("k"))
        .body(
            &ChatRequest::new("gpt-4.1")
                .message(Message::user("hi"))
                .max_tokens(8),
        )
        .unwrap();
    assert!(!s.check("CreateResponse", &small).is_empty());
}

/// The batch upload (each JSONL line) and the batch creation, as sent.
#[tokio::test]
async fn batch_bodies_conform() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/files"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": "file-1", "object": "file", "purpose": "batch"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/batches"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": "batch_1", "object": "batch", "status": "validating"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let client = OpenAi::builder()
        .api_key("sk-test")
        .base_url(format!("{}/v1", server.uri()))
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let items = requests(true)
        .into_iter()
        .enumerate()
        .map(|(i, request)| BatchItem {
            custom_id: format!("r{i}"),
            request,
        })
        .collect();
    client.submit(items).await.unwrap();
    let received = server.received_requests().await.unwrap();
    let s = schemas();
    let upload = String::from_utf8(received[0].body.clone()).unwrap();
    let lines: Vec<Value> = upload
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 21);
    for (i, line) in lines.iter().enumerate() {
        assert_conforms(
            &s,
            "BatchRequestInputLine",
            line,
            &format!("batch line {i}"),
        );
    }
    let create: Value = serde_json::from_slice(&received[1].body).unwrap();
    assert_conforms(&s, "CreateBatchRequest", &create, "batch creation");
}
