//! A two-turn tool loop against a wiremock server on 127.0.0.1: turn 1
//! answers with a thought and function calls carrying thought signatures
//! (Gemini 3), turn 2 must send them back exactly, or Gemini 3 refuses the
//! request ("Function call is missing a thought_signature").

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use costlayer_core::{ChatRequest, ContentPart, FinishReason, Message, ToolDefinition};
use costlayer_gemini::Gemini;
use serde_json::json;
use tower::ServiceExt;
use wiremock::matchers::{body_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const URL: &str = "/v1beta/models/gemini-3-pro-preview:generateContent";

fn weather_tool() -> ToolDefinition {
    ToolDefinition {
        name: "get_weather".into(),
        description: Some("Current weather".into()),
        // Full JSON Schema: only `parametersJsonSchema` accepts these keywords.
        parameters: json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"const": "C"}},
            "required": ["city"],
            "additionalProperties": false
        }),
    }
}

#[tokio::test]
async fn thought_signatures_survive_a_tool_loop() {
    let server = MockServer::start().await;
    let tools = json!([{"functionDeclarations": [{
        "name": "get_weather",
        "description": "Current weather",
        "parametersJsonSchema": weather_tool().parameters
    }]}]);
    let user = json!({"role": "user", "parts": [{"text": "Weather in Paris and Oslo?"}]});
    let model_turn = json!({"role": "model", "parts": [
        {"text": "Two cities: two calls.", "thought": true, "thoughtSignature": "c2lnLXRob3VnaHQ="},
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2lnLWNhbGwtMQ=="},
        {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}
    ]});
    Mock::given(method("POST"))
        .and(path(URL))
        .and(body_json(json!({"contents": [user], "tools": tools})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "candidates": [{"content": model_turn, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 40, "candidatesTokenCount": 20, "thoughtsTokenCount": 30, "totalTokenCount": 90},
            "modelVersion": "gemini-3-pro-preview",
            "responseId": "r-1"
        })))
        .expect(1)
        .mount(&server)
        .await;
    // Turn 2: the model turn exactly as received (thought part, both
    // signatures, the unsigned second call), then both results in one turn.
    Mock::given(method("POST"))
        .and(path(URL))
        .and(body_json(json!({
            "contents": [
                user,
                model_turn,
                {"role": "user", "parts": [
                    {"functionResponse": {"name": "get_weather", "response": {"temp": 18}}},
                    {"functionResponse": {"name": "get_weather", "response": {"temp": -3}}}
                ]}
            ],
            "tools": tools
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "candidates": [{"content": {"role": "model", "parts": [
                {"text": "Paris 18C, Oslo -3C.", "thoughtSignature": "c2lnLXRleHQ="}
            ]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 80, "candidatesTokenCount": 10, "totalTokenCount": 90},
            "modelVersion": "gemini-3-pro-preview"
        })))
        .expect(1)
        .mount(&server)
        .await;

    let client = Gemini::builder()
        .api_key("AIza-test")
        .base_url(server.uri())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut req = ChatRequest::new("gemini-3-pro-preview")
        .message(Message::user("Weather in Paris and Oslo?"))
        .tool(weather_tool());
    let first = client.clone().oneshot(req.clone()).await.unwrap();
    assert_eq!(first.finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(first.tool_calls.len(), 2);
    assert_eq!(
        first.tool_calls[0].signature.as_deref(),
        Some("c2lnLWNhbGwtMQ==")
    );
    assert_eq!(first.tool_calls[1].signature, None);
    // The thought is not the answer.
    assert_eq!(first.text, "");

    req.messages.push(first.message());
    for (call, temp) in first.tool_calls.iter().zip(["18", "-3"]) {
        req.messages.push(Message::tool(
            call.id.clone(),
            format!(r#"{{"temp":{temp}}}"#),
        ));
    }
    let second = client.clone().oneshot(req.clone()).await.unwrap();
    assert_eq!(second.text, "Paris 18C, Oslo -3C.");
    assert_eq!(second.finish_reason, Some(FinishReason::Stop));
    // A signature on a text part is kept too, and goes back on that part.
    let m = second.message();
    assert!(
        matches!(&second.parts[1], ContentPart::ProviderItem { item, .. } if item["thoughtSignature"] == "c2lnLXRleHQ=")
    );
    let body = client.codec().body(&req.message(m)).unwrap();
    assert_eq!(
        body["contents"][3],
        json!({"role": "model", "parts": [{"text": "Paris 18C, Oslo -3C.", "thoughtSignature": "c2lnLXRleHQ="}]})
    );
}

#[tokio::test]
async fn tool_finish_reasons_are_not_other() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1beta/models/gemini-2.5-flash:generateContent"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "candidates": [{"finishReason": "MALFORMED_FUNCTION_CALL"}],
            "usageMetadata": {"promptTokenCount": 12, "totalTokenCount": 12}
        })))
        .expect(1)
        .mount(&server)
        .await;
    let client = Gemini::builder()
        .api_key("AIza-test")
        .base_url(server.uri())
        .build()
        .unwrap();
    let resp = client
        .oneshot(ChatRequest::new("gemini-2.5-flash").message(Message::user("x")))
        .await
        .unwrap();
    assert_eq!(
        resp.finish_reason,
        Some(FinishReason::ToolCallError(
            "MALFORMED_FUNCTION_CALL".into()
        ))
    );
    // Billed all the same.
    assert_eq!(resp.usage.input_tokens, 12);
}
