//! Request and response translation for `POST /v1/responses`, and the
//! [`OpenAiResponses`] client.

use std::time::SystemTime;

use bytes::Bytes;
use costlayer_core::tokens::{TiktokenCounter, TokenCounter};
use costlayer_core::transport::{body_snippet, merge_extra};
use costlayer_core::{
    ChatRequest, ChatResponse, Codec, Content, ContentPart, Error, FinishReason, HttpResponse,
    HttpTransport, Message, ResponseFormat, Role, ToolCall, ToolCallKind, ToolChoice, Usage,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::codec::{header_str, insert_sampling};
use crate::error::error_from_response;
use crate::usage::OpenAiUsage;
use crate::OpenAiCodec;

const PROVIDER: &str = "openai";

/// Pure translation between costlayer's types and the OpenAI Responses API
/// (`POST /v1/responses`), over the same authentication, base URL and
/// error mapping as [`OpenAiCodec`].
///
/// | `ChatRequest` | Responses body |
/// |---|---|
/// | `system` | `instructions` |
/// | `messages` | `input` items: `message` (user, system, assistant text; `input_text` / `input_image` parts), the assistant's `function_call` / `custom_tool_call` items, tool results as `function_call_output` / `custom_tool_call_output`, and OpenAI [`ContentPart::ProviderItem`]s (reasoning items) verbatim, in order |
/// | `max_tokens` | `max_output_tokens` |
/// | `temperature`, `top_p` | same names |
/// | `stop` | refused: the Responses API has no stop sequences |
/// | `tools`, `tool_choice` | `tools: [{"type":"function", name, description, parameters, "strict": false}]`; `"auto"`/`"none"`/`"required"`/`{"type":"function","name"}` |
/// | `response_format` | `text.format` (`text`, `json_object`, `json_schema` with `name`, `schema`, `strict`) |
/// | `extra` | merged last: `previous_response_id`, `store`, `reasoning`, `include: ["reasoning.encrypted_content"]`, built-in tools, ... |
///
/// # Continuing a conversation
///
/// Either send the whole history, with each answer put back by
/// [`ChatResponse::message`] (its reasoning items, function-call item ids
/// and call ids are echoed exactly, as the API requires for reasoning
/// models), or send only the new messages with
/// `extra("previous_response_id", resp.request_id)`: for this codec
/// [`ChatResponse::request_id`] is the response id (`resp_…`).
///
/// ```
/// use costlayer_core::{ApiKey, ChatRequest, Message};
/// use costlayer_openai::OpenAiResponsesCodec;
///
/// let codec = OpenAiResponsesCodec::new(ApiKey::new("sk-1"));
/// let body = codec.body(&ChatRequest::new("gpt-4.1").system("Be terse.")
///     .message(Message::user("Say hi")).max_tokens(16)
///     .extra("previous_response_id", "resp_1".into()))?;
/// assert_eq!(body, serde_json::json!({
///     "model": "gpt-4.1",
///     "instructions": "Be terse.",
///     "input": [{"type": "message", "role": "user", "content": "Say hi"}],
///     "max_output_tokens": 16,
///     "previous_response_id": "resp_1"
/// }));
/// # Ok::<(), costlayer_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct OpenAiResponsesCodec {
    inner: OpenAiCodec,
}

impl OpenAiResponsesCodec {
    /// A codec for `https://api.openai.com/v1` with `api_key`.
    pub fn new(api_key: costlayer_core::ApiKey) -> Self {
        OpenAiResponsesCodec {
            inner: OpenAiCodec::new(api_key),
        }
    }

    /// A Responses codec with the key, base URL, organization and project
    /// of a chat codec.
    pub fn from_chat(codec: OpenAiCodec) -> Self {
        OpenAiResponsesCodec { inner: codec }
    }

    /// The chat codec holding the key, base URL and headers.
    pub fn chat_codec(&self) -> &OpenAiCodec {
        &self.inner
    }

    /// The Responses URL.
    pub fn url(&self) -> String {
        format!("{}/responses", self.inner.get_base_url())
    }

    /// The JSON body of a `POST /v1/responses` request.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for what the Responses API cannot express: a tool
    /// result without `tool_call_id`, stop sequences.
    pub fn body(&self, req: &ChatRequest) -> Result<Value, Error> {
        let mut input = Vec::with_capacity(req.messages.len());
        for (i, m) in req.messages.iter().enumerate() {
            push_items(&mut input, &req.messages[..i], m)?;
        }
        let mut body = Map::new();
        body.insert("model".into(), json!(req.model));
        if let Some(system) = &req.system {
            body.insert("instructions".into(), json!(system));
        }
        body.insert("input".into(), Value::Array(input));
        insert_sampling(&mut body, req, "max_output_tokens");
        if !req.stop.is_empty() {
            return Err(Error::config(
                "the OpenAI Responses API has no stop sequences: remove `stop`, or use the chat completions client (OpenAi)",
            ));
        }
        if !req.tools.is_empty() {
            let tools: Vec<Value> = req
                .tools
                .iter()
                .map(|t| {
                    // `strict` is required by the API and defaults to true
                    // there; false keeps Chat Completions' meaning of a
                    // plain function tool (any JSON Schema accepted).
                    let mut v = json!({"type": "function", "name": t.name, "parameters": t.parameters, "strict": false});
                    if let Some(d) = &t.description {
                        v["description"] = json!(d);
                    }
                    v
                })
                .collect();
            body.insert("tools".into(), Value::Array(tools));
        }
        if let Some(choice) = &req.tool_choice {
            let v = match choice {
                ToolChoice::Auto => json!("auto"),
                ToolChoice::None => json!("none"),
                ToolChoice::Required => json!("required"),
                ToolChoice::Tool(name) => json!({"type": "function", "name": name}),
                other => {
                    return Err(Error::config(format!(
                        "tool_choice {other:?} is not supported by the Responses codec: set it through `extra`"
                    )))
                }
            };
            body.insert("tool_choice".into(), v);
        }
        if let Some(format) = &req.response_format {
            let v = match format {
                ResponseFormat::Text => json!({"type": "text"}),
                ResponseFormat::JsonObject => json!({"type": "json_object"}),
                ResponseFormat::JsonSchema {
                    name,
                    schema,
                    strict,
                } => json!({"type": "json_schema", "name": name, "schema": schema, "strict": strict}),
                other => {
                    return Err(Error::config(format!(
                        "response_format {other:?} is not supported by the Responses codec: set `text` through `extra`"
                    )))
                }
            };
            body.insert("text".into(), json!({ "format": v }));
        }
        let mut body = Value::Object(body);
        merge_extra(&mut body, &req.extra);
        Ok(body)
    }

    /// Reads a successful Responses body.
    ///
    /// Output `message` items become the text (a refusal too, when there is
    /// no text); `function_call` and `custom_tool_call` items become tool
    /// calls (`call_id` as the id, the item `id` as
    /// [`ToolCall::item_id`]); every other item (`reasoning`, built-in tool
    /// calls) is kept verbatim as a [`ContentPart::ProviderItem`] so
    /// [`ChatResponse::message`] sends it back. `status: incomplete` with
    /// `max_output_tokens` is [`FinishReason::Length`], with
    /// `content_filter` [`FinishReason::ContentFilter`]; `failed` is
    /// [`FinishReason::Failed`] with the error code (the usage is still
    /// billed).
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] with the start of the body if it is not a response.
    pub fn parse_response(
        &self,
        req: &ChatRequest,
        body: &[u8],
        request_id: Option<String>,
    ) -> Result<ChatResponse, Error> {
        parse_response_body(&req.model, body, request_id)
    }
}

/// [`OpenAiResponsesCodec::parse_response`], for a request of `model` (the
/// streamed `response.completed` event carries the same object).
pub(crate) fn parse_response_body(
    model: &str,
    body: &[u8],
    request_id: Option<String>,
) -> Result<ChatResponse, Error> {
    let decode_err = |message: String| Error::Decode {
        provider: PROVIDER.into(),
        message,
        body_snippet: body_snippet(body, 200),
    };
    let resp: ResponseObject = serde_json::from_slice(body)
        .map_err(|e| decode_err(format!("not a Responses API response: {e}")))?;
    if resp.object.as_deref().is_some_and(|o| o != "response") {
        return Err(decode_err(format!(
            "expected a `response` object, got `{}`",
            resp.object.as_deref().unwrap_or_default()
        )));
    }
    let mut text = String::new();
    let mut refusal = String::new();
    let mut tool_calls = Vec::new();
    let mut parts = Vec::new();
    for item in resp.output {
        let kind = item.get("type").and_then(Value::as_str).unwrap_or_default();
        match kind {
            "message" => {
                let mut message_text = String::new();
                for c in item
                    .get("content")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    match c.get("type").and_then(Value::as_str) {
                        Some("output_text") => {
                            message_text.push_str(str_of(c, "text"));
                        }
                        Some("refusal") => refusal.push_str(str_of(c, "refusal")),
                        _ => {}
                    }
                }
                if !message_text.is_empty() {
                    text.push_str(&message_text);
                    parts.push(ContentPart::text(message_text));
                }
            }
            "function_call" | "custom_tool_call" => {
                let call_id = str_of(&item, "call_id");
                let name = str_of(&item, "name");
                let mut call = if kind == "function_call" {
                    ToolCall::function(call_id, name, str_of(&item, "arguments"))
                } else {
                    ToolCall::custom(call_id, name, str_of(&item, "input"))
                };
                call.item_id = item.get("id").and_then(Value::as_str).map(str::to_owned);
                tool_calls.push(call);
            }
            _ => parts.push(ContentPart::provider_item(PROVIDER, item)),
        }
    }
    if text.is_empty() && !refusal.is_empty() {
        text = refusal;
    }
    if parts.iter().all(|p| matches!(p, ContentPart::Text { .. })) {
        // Plain text needs no parts: `text` is the whole turn.
        parts.clear();
    }
    let reason = |v: &Option<Value>, key: &str| {
        v.as_ref()
            .and_then(|d| d.get(key))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let finish_reason = match resp.status.as_deref() {
        Some("incomplete") => Some(match reason(&resp.incomplete_details, "reason").as_str() {
            "max_output_tokens" => FinishReason::Length,
            "content_filter" => FinishReason::ContentFilter,
            other => FinishReason::Other(other.to_owned()),
        }),
        Some("failed") => Some(FinishReason::Failed(reason(&resp.error, "code"))),
        Some("completed") if !tool_calls.is_empty() => Some(FinishReason::ToolCalls),
        Some("completed") => Some(FinishReason::Stop),
        Some(other) => Some(FinishReason::Other(other.to_owned())),
        None => None,
    };
    let (usage, raw_usage) = match resp.usage {
        Some(raw) if !raw.is_null() => {
            let parsed: OpenAiUsage = serde_json::from_value(as_chat_usage(&raw))
                .map_err(|e| decode_err(format!("the usage object is malformed: {e}")))?;
            (Usage::from(parsed), Some(raw))
        }
        _ => {
            tracing::warn!(model = %model, "OpenAI Responses answer without usage: the call is recorded with zero tokens");
            (Usage::default(), None)
        }
    };
    Ok(ChatResponse {
        provider: PROVIDER.into(),
        model: resp
            .model
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| model.into()),
        text,
        tool_calls,
        parts,
        finish_reason,
        usage,
        // The response id first: it is what `previous_response_id` takes.
        request_id: resp.id.or_else(|| request_id.map(Into::into)),
        raw_usage,
        ..Default::default()
    })
}

impl Codec for OpenAiResponsesCodec {
    fn provider(&self) -> &'static str {
        PROVIDER
    }

    fn encode(&self, req: &ChatRequest) -> Result<http::Request<Bytes>, Error> {
        self.inner.post("/responses", &self.body(req)?)
    }

    fn decode(&self, req: &ChatRequest, resp: HttpResponse) -> Result<ChatResponse, Error> {
        if !resp.status.is_success() {
            // Same error envelope, rate-limit headers and retry hints as
            // Chat Completions.
            return Err(error_from_response(&resp, SystemTime::now()));
        }
        let request_id = header_str(&resp.headers, "x-request-id");
        self.parse_response(req, &resp.body, request_id)
    }
}

/// The Responses usage object in Chat Completions' names, so one mapping
/// ([`OpenAiUsage`] into [`Usage`]) prices both APIs: `input_tokens` is
/// `prompt_tokens` (cached included), `output_tokens` is
/// `completion_tokens` (reasoning included), and the detail objects keep
/// every field they carry.
pub(crate) fn as_chat_usage(raw: &Value) -> Value {
    let Some(obj) = raw.as_object() else {
        return raw.clone();
    };
    let renamed = obj
        .iter()
        .map(|(k, v)| {
            let k = match k.as_str() {
                "input_tokens" => "prompt_tokens",
                "output_tokens" => "completion_tokens",
                "input_tokens_details" => "prompt_tokens_details",
                "output_tokens_details" => "completion_tokens_details",
                other => other,
            };
            (k.to_owned(), v.clone())
        })
        .collect();
    Value::Object(renamed)
}

pub(crate) fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// The input items of one message, appended to `out`.
fn push_items(out: &mut Vec<Value>, earlier: &[Message], m: &Message) -> Result<(), Error> {
    match m.role {
        Role::Tool => {
            let id = m.tool_call_id.as_deref().ok_or_else(|| {
                Error::config(
                    "a Role::Tool message needs tool_call_id: build it with Message::tool(call_id, result)",
                )
            })?;
            let custom = earlier
                .iter()
                .rev()
                .flat_map(|prev| prev.tool_calls.iter())
                .find(|c| c.id == id)
                .is_some_and(|c| c.kind == ToolCallKind::Custom);
            let kind = if custom {
                "custom_tool_call_output"
            } else {
                "function_call_output"
            };
            out.push(json!({"type": kind, "call_id": id, "output": m.content.text()}));
        }
        Role::Assistant => {
            let mut text = String::new();
            let flush = |text: &mut String, out: &mut Vec<Value>| {
                if !text.is_empty() {
                    out.push(json!({"type": "message", "role": "assistant", "content": std::mem::take(text)}));
                }
            };
            for p in m.content.parts() {
                match p {
                    ContentPart::Text { text: t } => text.push_str(&t),
                    ContentPart::ProviderItem { provider, item } if provider == PROVIDER => {
                        flush(&mut text, out);
                        out.push(item);
                    }
                    // Other providers' thinking and items mean nothing here.
                    _ => {}
                }
            }
            flush(&mut text, out);
            for c in &m.tool_calls {
                let mut item = match c.kind {
                    ToolCallKind::Custom => {
                        json!({"type": "custom_tool_call", "call_id": c.id, "name": c.name, "input": c.arguments})
                    }
                    _ => {
                        json!({"type": "function_call", "call_id": c.id, "name": c.name, "arguments": c.arguments})
                    }
                };
                if let Some(id) = &c.item_id {
                    item["id"] = json!(id);
                }
                out.push(item);
            }
        }
        _ => {
            let role = if m.role == Role::System {
                "system"
            } else {
                "user"
            };
            out.push(
                json!({"type": "message", "role": role, "content": input_content(&m.content)}),
            );
        }
    }
    Ok(())
}

fn input_content(content: &Content) -> Value {
    match content {
        Content::Text(t) => json!(t),
        Content::Parts(parts) => Value::Array(
            parts
                .iter()
                .filter_map(|p| match p {
                    ContentPart::Text { text } => Some(json!({"type": "input_text", "text": text})),
                    ContentPart::ImageUrl { url } => {
                        Some(json!({"type": "input_image", "image_url": url, "detail": "auto"}))
                    }
                    _ => None,
                })
                .collect(),
        ),
    }
}

#[derive(Deserialize)]
struct ResponseObject {
    #[serde(default)]
    id: Option<costlayer_core::SharedStr>,
    #[serde(default)]
    object: Option<String>,
    #[serde(default)]
    model: Option<costlayer_core::SharedStr>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    incomplete_details: Option<Value>,
    #[serde(default)]
    error: Option<Value>,
    #[serde(default)]
    output: Vec<Value>,
    #[serde(default)]
    usage: Option<Value>,
}

/// The OpenAI Responses API client: a `tower::Service<ChatRequest>` over
/// `POST /v1/responses`, built like [`OpenAi`](crate::OpenAi) (same key,
/// base URL, organization, project, timeouts) with
/// [`OpenAiBuilder::build_responses`](crate::OpenAiBuilder::build_responses).
///
/// Usage is priced exactly like Chat Completions: `input_tokens` minus
/// `input_tokens_details.cached_tokens` at the input rate, the cached
/// tokens at the cached-input rate, `output_tokens` (reasoning included)
/// at the output rate; `output_tokens_details.reasoning_tokens` is kept as
/// the reasoning breakdown.
///
/// ```
/// use costlayer_openai::OpenAi;
///
/// let client = OpenAi::builder()
///     .api_key("sk-test-123")
///     .base_url("http://127.0.0.1:8080/v1")
///     .build_responses()?;
/// assert_eq!(client.codec().url(), "http://127.0.0.1:8080/v1/responses");
/// assert!(!format!("{client:?}").contains("sk-test-123"));
/// # Ok::<(), costlayer_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct OpenAiResponses {
    inner: HttpTransport<OpenAiResponsesCodec>,
}

impl OpenAiResponses {
    /// A client configured from the environment, as [`OpenAi::from_env`](crate::OpenAi::from_env).
    ///
    /// # Errors
    ///
    /// As [`OpenAi::from_env`](crate::OpenAi::from_env).
    pub fn from_env() -> Result<Self, Error> {
        crate::OpenAiBuilder::from_env().build_responses()
    }

    /// A client over an existing transport.
    pub fn from_transport(inner: HttpTransport<OpenAiResponsesCodec>) -> Self {
        OpenAiResponses { inner }
    }

    costlayer_core::transport_client! {
        accessors(inner: OpenAiResponsesCodec);
    }

    /// Prompt tokens of `req` with tiktoken, as
    /// [`OpenAi::count_tokens`](crate::OpenAi::count_tokens).
    pub fn count_tokens(&self, req: &ChatRequest) -> u64 {
        TiktokenCounter::for_model(&req.model).count_request(req)
    }
}

costlayer_core::transport_client! {
    services(OpenAiResponses, inner);
    ChatRequest;
    /// Streamed Responses calls (`stream: true`; the usage of the whole call
    /// from `response.completed`); see [`costlayer_core::stream`] for the
    /// contract and [`OpenAiResponsesStreamDecoder`](crate::OpenAiResponsesStreamDecoder)
    /// for the events read.
    StreamRequest;
}

#[cfg(test)]
mod tests {
    use super::*;
    use costlayer_core::{ApiKey, ToolDefinition};

    fn codec() -> OpenAiResponsesCodec {
        OpenAiResponsesCodec::new(ApiKey::new("sk-test"))
    }

    #[test]
    fn body_maps_every_field() {
        let mut assistant = Message::assistant(Content::Parts(vec![
            ContentPart::provider_item(
                "openai",
                json!({"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "enc"}),
            ),
            ContentPart::Thinking {
                text: "from another provider".into(),
                signature: None,
            },
            ContentPart::provider_item("anthropic", json!({"type": "server_tool_use"})),
        ]));
        assistant.tool_calls = vec![
            ToolCall::function("call_1", "get_weather", r#"{"city":"Paris"}"#).with_item_id("fc_1"),
            ToolCall::custom("call_2", "grep", "needle"),
        ];
        let req = ChatRequest {
            top_p: Some(0.9),
            tool_choice: Some(ToolChoice::Tool("get_weather".into())),
            response_format: Some(ResponseFormat::JsonSchema {
                name: "w".into(),
                schema: json!({"type": "object"}),
                strict: true,
            }),
            ..ChatRequest::new("o4-mini")
                .system("sys")
                .message(Message::system("more sys"))
                .message(Message::user(Content::Parts(vec![
                    ContentPart::text("look"),
                    ContentPart::ImageUrl {
                        url: "https://x/cat.png".into(),
                    },
                ])))
                .message(assistant)
                .message(Message::tool("call_1", "18C"))
                .message(Message::tool("call_2", "3 matches"))
                .max_tokens(100)
                .temperature(0.7)
                .tool(ToolDefinition {
                    name: "get_weather".into(),
                    description: Some("Weather".into()),
                    parameters: json!({"type": "object"}),
                })
                .extra("store", json!(false))
        };
        let body = codec().body(&req).expect("body");
        assert_eq!(
            body,
            json!({
                "model": "o4-mini",
                "instructions": "sys",
                "input": [
                    {"type": "message", "role": "system", "content": "more sys"},
                    {"type": "message", "role": "user", "content": [
                        {"type": "input_text", "text": "look"},
                        {"type": "input_image", "image_url": "https://x/cat.png", "detail": "auto"}
                    ]},
                    {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "enc"},
                    {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
                    {"type": "custom_tool_call", "call_id": "call_2", "name": "grep", "input": "needle"},
                    {"type": "function_call_output", "call_id": "call_1", "output": "18C"},
                    {"type": "custom_tool_call_output", "call_id": "call_2", "output": "3 matches"}
                ],
                "max_output_tokens": 100,
                "temperature": 0.7,
                "top_p": 0.9,
                "tools": [{"type": "function", "name": "get_weather", "description": "Weather", "parameters": {"type": "object"}, "strict": false}],
                "tool_choice": {"type": "function", "name": "get_weather"},
                "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}, "strict": true}},
                "store": false
            })
        );
    }

    #[test]
    fn stop_sequences_are_a_typed_error() {
        let req = ChatRequest {
            stop: vec!["END".into()],
            ..ChatRequest::new("gpt-4.1")
        };
        let err = codec().body(&req).expect_err("no stop");
        assert!(matches!(err, Error::Config { .. }), "{err}");
        assert!(err.to_string().contains("stop"), "{err}");
    }

    #[test]
    fn parses_reasoning_calls_and_usage() {
        let body = br#"{"id":"resp_1","object":"response","status":"completed","model":"o4-mini-2025-04-16",
          "output":[
            {"type":"reasoning","id":"rs_1","summary":[{"type":"summary_text","text":"Need weather."}],"encrypted_content":"gAAA"},
            {"type":"function_call","id":"fc_1","call_id":"call_1","name":"get_weather","arguments":"{\"city\":\"Oslo\"}","status":"completed"}
          ],
          "usage":{"input_tokens":2048,"input_tokens_details":{"cached_tokens":1024},"output_tokens":300,
                   "output_tokens_details":{"reasoning_tokens":256},"total_tokens":2348}}"#;
        let r = codec()
            .parse_response(&ChatRequest::new("o4-mini"), body, Some("req_9".into()))
            .expect("parse");
        assert_eq!(r.request_id.as_deref(), Some("resp_1"));
        assert_eq!(r.model, "o4-mini-2025-04-16");
        assert_eq!(r.finish_reason, Some(FinishReason::ToolCalls));
        assert_eq!(
            r.tool_calls,
            vec![
                ToolCall::function("call_1", "get_weather", r#"{"city":"Oslo"}"#)
                    .with_item_id("fc_1")
            ]
        );
        assert_eq!(r.parts.len(), 1);
        assert!(
            matches!(&r.parts[0], ContentPart::ProviderItem { provider, item } if provider == "openai" && item["encrypted_content"] == "gAAA")
        );
        assert_eq!(
            (
                r.usage.input_tokens,
                r.usage.cache_read_tokens,
                r.usage.output_tokens,
                r.usage.reasoning_tokens
            ),
            (1024, 1024, 300, 256)
        );
        assert_eq!(r.raw_usage.as_ref().expect("raw")["input_tokens"], 2048);
    }

    #[test]
    fn text_refusal_incomplete_and_failed() {
        let parse = |b: &str| {
            codec()
                .parse_response(&ChatRequest::new("gpt-4.1"), b.as_bytes(), None)
                .expect("parse")
        };
        let r = parse(
            r#"{"id":"resp_2","object":"response","status":"completed","output":[{"type":"message","id":"msg_1","role":"assistant","content":[{"type":"output_text","text":"Hi!","annotations":[]}]}],"usage":{"input_tokens":10,"output_tokens":3,"total_tokens":13}}"#,
        );
        assert_eq!((r.text.as_str(), r.parts.is_empty()), ("Hi!", true));
        assert_eq!(r.finish_reason, Some(FinishReason::Stop));
        assert_eq!(r.model, "gpt-4.1");
        let r = parse(
            r#"{"object":"response","status":"incomplete","incomplete_details":{"reason":"max_output_tokens"},"output":[{"type":"message","content":[{"type":"refusal","refusal":"No."}]}]}"#,
        );
        assert_eq!(r.text, "No.");
        assert_eq!(r.finish_reason, Some(FinishReason::Length));
        let r = parse(
            r#"{"object":"response","status":"failed","error":{"code":"server_error","message":"x"},"output":[]}"#,
        );
        assert_eq!(
            r.finish_reason,
            Some(FinishReason::Failed("server_error".into()))
        );
        let err = codec()
            .parse_response(
                &ChatRequest::new("m"),
                br#"{"object":"chat.completion"}"#,
                None,
            )
            .expect_err("not a response");
        assert!(matches!(err, Error::Decode { .. }), "{err}");
    }
}
