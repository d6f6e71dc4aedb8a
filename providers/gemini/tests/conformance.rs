//! Every request body costlayer-gemini can produce (generateContent and
//! countTokens), checked against the schemas in `tests/schema/gemini.json`
//! (transcribed from the googleapis v1beta protos, see its `$comment`) by a
//! strict checker: an unknown field or a wrong type fails, as in Google's
//! proto3 JSON parser. No network.

#![allow(clippy::unwrap_used)]

#[path = "../../conformance/requests.rs"]
mod matrix;
#[path = "../../conformance/strict_schema.rs"]
mod strict_schema;

use costlayer_core::{
    ApiKey, ChatRequest, Content, ContentPart, Message, ToolCall, ToolDefinition,
};
use costlayer_gemini::GeminiCodec;
use serde_json::{json, Value};
use strict_schema::{assert_conforms, Schemas};

fn schemas() -> Schemas {
    Schemas::parse(include_str!("schema/gemini.json"))
}

/// Full JSON Schema, as callers write it: refused by the `Schema` proto.
fn tool() -> ToolDefinition {
    ToolDefinition {
        name: "get_weather".into(),
        description: Some("Current weather".into()),
        parameters: json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"const": "C"},
                "when": {"$ref": "#/$defs/date"}},
            "$defs": {"date": {"type": "string", "format": "date"}},
            "required": ["city"],
            "additionalProperties": false
        }),
    }
}

fn history() -> Vec<Message> {
    let mut assistant = Message::assistant(Content::Parts(vec![
        ContentPart::Thinking {
            text: "Two calls.".into(),
            signature: Some("c2ln".into()),
        },
        ContentPart::text("Checking."),
        ContentPart::provider_item("gemini", json!({"thoughtSignature": "dGV4dA=="})),
        ContentPart::provider_item(
            "gemini",
            json!({"executableCode": {"language": "PYTHON", "code": "print(1)"}}),
        ),
        ContentPart::provider_item(
            "gemini",
            json!({"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": "1"}}),
        ),
        // Other providers' state: dropped.
        ContentPart::RedactedThinking { data: "x".into() },
        ContentPart::provider_item("anthropic", json!({"type": "server_tool_use"})),
    ]));
    assistant.tool_calls = vec![
        ToolCall::function("get_weather", "get_weather", r#"{"city":"Paris"}"#)
            .with_signature("Y2FsbA=="),
        ToolCall::function("call-2", "get_weather", ""),
    ];
    vec![
        Message::system("more rules"),
        Message::user(Content::Parts(vec![
            ContentPart::text("look"),
            ContentPart::ImageUrl {
                url: "data:image/png;base64,iVBOR".into(),
            },
            ContentPart::ImageUrl {
                url: "https://x/y.webp".into(),
            },
        ])),
        assistant,
        Message::tool("get_weather", r#"{"temp":18}"#),
        Message::tool("call-2", "plain text"),
        Message::assistant("18C."),
        Message::user("thanks"),
    ]
}

fn requests() -> Vec<ChatRequest> {
    matrix::matrix("gemini-2.5-flash", true, || {
        let mut req = ChatRequest::new("gemini-3-pro-preview")
            .system("Be terse.")
            .max_tokens(1024)
            .temperature(0.3)
            .tool(tool())
            .extra(
                "generationConfig",
                json!({"thinkingConfig": {"thinkingBudget": 512, "includeThoughts": true}}),
            );
        req.messages = history().into();
        req.top_p = Some(0.95);
        req.stop = vec!["END".into()];
        req
    })
}

#[test]
fn every_generate_content_and_count_tokens_body_conforms() {
    let s = schemas();
    let codec = GeminiCodec::new(ApiKey::new("k"));
    let reqs = requests();
    assert_eq!(reqs.len(), 21);
    for (i, req) in reqs.iter().enumerate() {
        let body = codec.body(req).unwrap();
        assert_conforms(
            &s,
            "GenerateContentRequest",
            &body,
            &format!("generateContent body {i}"),
        );
        let count = codec.count_tokens_request(req).unwrap();
        let count: Value = serde_json::from_slice(count.body()).unwrap();
        assert_conforms(
            &s,
            "CountTokensRequest",
            &count,
            &format!("countTokens body {i}"),
        );
    }
}

#[test]
fn the_checker_refuses_what_gemini_refuses() {
    let s = schemas();
    let codec = GeminiCodec::new(ApiKey::new("k"));
    let good = codec.body(&requests()[4]).unwrap();
    assert!(s.check("GenerateContentRequest", &good).is_empty());
    // The shape before this fix: the raw JSON Schema in `parameters`.
    let mut raw = good.clone();
    let decl = &mut raw["tools"][0]["functionDeclarations"][0];
    decl["parameters"] = decl["parametersJsonSchema"].take();
    decl.as_object_mut().unwrap().remove("parametersJsonSchema");
    let errors = s.check("GenerateContentRequest", &raw);
    assert!(
        errors.iter().any(|e| e.contains("additionalProperties")),
        "{errors:?}"
    );
    // A snake_case or unknown generation field, a wrong type.
    let mut unknown = good.clone();
    unknown["generationConfig"]["max_tokens"] = json!(5);
    assert!(!s.check("GenerateContentRequest", &unknown).is_empty());
    let mut wrong = good.clone();
    wrong["generationConfig"]["maxOutputTokens"] = json!("1024");
    assert!(!s.check("GenerateContentRequest", &wrong).is_empty());
    // A part with two kinds of data.
    let mut two = good;
    two["contents"][0]["parts"][0]["fileData"] = json!({"fileUri": "gs://x"});
    assert!(!s.check("GenerateContentRequest", &two).is_empty());
}
