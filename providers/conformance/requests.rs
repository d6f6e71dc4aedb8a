//! The request matrix the conformance tests run through every codec:
//! each response format a codec accepts crossed with every tool choice,
//! on top of a request that sets everything else.

use costlayer_core::{ChatRequest, ResponseFormat, ToolChoice};
use serde_json::json;

/// No format, text, JSON object (when the provider has the mode) and a
/// JSON Schema.
pub(crate) fn formats(json_object: bool) -> Vec<Option<ResponseFormat>> {
    let mut out = vec![None, Some(ResponseFormat::Text)];
    if json_object {
        out.push(Some(ResponseFormat::JsonObject));
    }
    out.push(Some(ResponseFormat::JsonSchema {
        name: "answer".into(),
        schema: json!({"type": "object", "additionalProperties": false}),
        strict: true,
    }));
    out
}

/// No choice, and each `ToolChoice` (by name: `get_weather`).
pub(crate) fn choices() -> Vec<Option<ToolChoice>> {
    vec![
        None,
        Some(ToolChoice::Auto),
        Some(ToolChoice::None),
        Some(ToolChoice::Required),
        Some(ToolChoice::Tool("get_weather".into())),
    ]
}

/// `base()` with every format × choice, after a minimal request for
/// `minimal_model`.
pub(crate) fn matrix(
    minimal_model: &str,
    json_object: bool,
    base: impl Fn() -> ChatRequest,
) -> Vec<ChatRequest> {
    let mut out =
        vec![ChatRequest::new(minimal_model).message(costlayer_core::Message::user("hi"))];
    for format in formats(json_object) {
        for choice in choices() {
            let mut req = base();
            req.response_format = format.clone();
            req.tool_choice = choice;
            out.push(req);
        }
    }
    out
}
