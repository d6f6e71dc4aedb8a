//! Request and response translation for `POST /v1/messages`.

use std::time::SystemTime;

use bytes::Bytes;
use costlayer_core::transport::{body_snippet, merge_extra, normalize_base_url};
use costlayer_core::{
    ApiKey, ChatRequest, ChatResponse, Codec, Content, ContentPart, Error, FinishReason,
    HttpResponse, Message, ResponseFormat, Role, ToolCall, ToolChoice, Usage,
};
use http::HeaderValue;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::error::error_from_response;
use crate::usage::AnthropicUsage;

/// The default base URL, `https://api.anthropic.com`.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
/// The default `anthropic-version`, `2023-06-01`.
pub const DEFAULT_VERSION: &str = "2023-06-01";
/// `max_tokens` sent when a request sets none: 4096.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

const PROVIDER: &str = "anthropic";

/// Fields `POST /v1/messages/count_tokens` accepts (the SDK's
/// `MessageCountTokensParams`, plus the beta `mcp_servers`,
/// `context_management` and `output_format`); everything else of a
/// Messages body (`max_tokens`, sampling parameters, `metadata`,
/// `stop_sequences`, `stream`) is left out. `output_config` stays: a
/// structured-output schema is part of the prompt.
const COUNT_TOKENS_FIELDS: &[&str] = &[
    "model",
    "messages",
    "system",
    "tools",
    "tool_choice",
    "thinking",
    "output_config",
    "cache_control",
    "mcp_servers",
    "context_management",
    "output_format",
];

/// Pure translation between costlayer's types and the Anthropic Messages API.
///
/// | `ChatRequest` | Anthropic body |
/// |---|---|
/// | `system` and any `Role::System` messages | top-level `system` (joined by a blank line) |
/// | `messages` | `messages`: text, images (`data:` URLs as `base64` sources, others as `url` sources), assistant `thinking` / `redacted_thinking` blocks first (from [`ContentPart::Thinking`] with a signature and [`ContentPart::RedactedThinking`]), Anthropic [`ContentPart::ProviderItem`]s verbatim, `tool_use` blocks, tool results as `tool_result` blocks in a `user` turn |
/// | `max_tokens` | `max_tokens` (required by the API: [`DEFAULT_MAX_TOKENS`] when unset) |
/// | `temperature`, `top_p` | same names |
/// | `stop` | `stop_sequences` |
/// | `tools`, `tool_choice` | `tools: [{name, description, input_schema}]`; `auto`, `none`, `any` (for required), `tool` |
/// | `response_format` | `JsonSchema` as `output_config.format`; `JsonObject` is refused (no such mode) |
/// | `extra` | merged last (objects key by key): e.g. `thinking`, `metadata`, a `system` array with `cache_control` |
///
/// ```
/// use costlayer_core::{ApiKey, ChatRequest, Message};
/// use costlayer_anthropic::AnthropicCodec;
///
/// let codec = AnthropicCodec::new(ApiKey::new("k"));
/// let body = codec.body(&ChatRequest::new("claude-haiku-4-5").system("Be terse.")
///     .message(Message::user("Hi")))?;
/// assert_eq!(body, serde_json::json!({
///     "model": "claude-haiku-4-5", "max_tokens": 4096, "system": "Be terse.",
///     "messages": [{"role": "user", "content": "Hi"}]
/// }));
/// # Ok::<(), costlayer_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct AnthropicCodec {
    api_key: ApiKey,
    base_url: String,
    version: HeaderValue,
    betas: Vec<HeaderValue>,
    default_max_tokens: u32,
}

impl AnthropicCodec {
    /// A codec for `https://api.anthropic.com` with `api_key`, version
    /// `2023-06-01` and a default `max_tokens` of 4096.
    pub fn new(api_key: ApiKey) -> Self {
        AnthropicCodec {
            api_key,
            base_url: DEFAULT_BASE_URL.to_owned(),
            version: HeaderValue::from_static(DEFAULT_VERSION),
            betas: Vec::new(),
            default_max_tokens: DEFAULT_MAX_TOKENS,
        }
    }

    /// Sets the base URL (without `/v1`).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if it is not an absolute `http(s)://` URL.
    pub fn base_url(mut self, url: &str) -> Result<Self, Error> {
        self.base_url = normalize_base_url(PROVIDER, url)?;
        Ok(self)
    }

    /// Sets `anthropic-version`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if it cannot be sent as a header.
    pub fn version(mut self, version: impl Into<String>) -> Result<Self, Error> {
        self.version = header_value("anthropic-version", version.into())?;
        Ok(self)
    }

    /// Adds an `anthropic-beta` feature.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if it cannot be sent as a header.
    pub fn beta(mut self, feature: impl Into<String>) -> Result<Self, Error> {
        self.betas
            .push(header_value("anthropic-beta", feature.into())?);
        Ok(self)
    }

    /// Sets the `max_tokens` sent when a request has none.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for 0 (the API requires at least 1).
    pub fn default_max_tokens(mut self, max_tokens: u32) -> Result<Self, Error> {
        if max_tokens == 0 {
            return Err(Error::config(
                "default_max_tokens must be at least 1: Anthropic requires max_tokens ≥ 1",
            ));
        }
        self.default_max_tokens = max_tokens;
        Ok(self)
    }

    /// The base URL.
    pub fn get_base_url(&self) -> &str {
        &self.base_url
    }

    /// Builds an authenticated JSON `POST` to `path` (such as `/v1/messages`).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the key cannot be sent as a header.
    pub fn post(&self, path: &str, body: &Value) -> Result<http::Request<Bytes>, Error> {
        let body = serde_json::to_vec(body).map_err(|e| {
            Error::config(format!("the request could not be serialised to JSON: {e}"))
        })?;
        let mut builder = http::Request::post(format!("{}{path}", self.base_url))
            .header(http::header::CONTENT_TYPE, "application/json")
            .header("x-api-key", self.api_key.header_value("")?)
            .header("anthropic-version", self.version.clone());
        for beta in &self.betas {
            builder = builder.header("anthropic-beta", beta.clone());
        }
        builder.body(Bytes::from(body)).map_err(|e| {
            Error::config(format!(
                "invalid Anthropic request: {e}. Check the base URL"
            ))
        })
    }

    /// Builds an authenticated `POST` to `path` with no body and no
    /// content type, for endpoints that take none (batch `cancel`).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the key cannot be sent as a header.
    pub fn post_empty(&self, path: &str) -> Result<http::Request<Bytes>, Error> {
        self.bodiless(http::Method::POST, path)
    }

    /// Builds an authenticated `GET` of `path` (such as
    /// `/v1/messages/batches/{id}`).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the key cannot be sent as a header.
    pub fn get(&self, path: &str) -> Result<http::Request<Bytes>, Error> {
        self.bodiless(http::Method::GET, path)
    }

    fn bodiless(&self, method: http::Method, path: &str) -> Result<http::Request<Bytes>, Error> {
        let mut builder = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base_url))
            .header("x-api-key", self.api_key.header_value("")?)
            .header("anthropic-version", self.version.clone());
        for beta in &self.betas {
            builder = builder.header("anthropic-beta", beta.clone());
        }
        builder.body(Bytes::new()).map_err(|e| {
            Error::config(format!(
                "invalid Anthropic request: {e}. Check the base URL"
            ))
        })
    }

    /// The JSON body of a Messages request.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for what Anthropic cannot express: a tool result
    /// without `tool_call_id`, tool-call arguments that are not a JSON
    /// object, `ResponseFormat::JsonObject`.
    pub fn body(&self, req: &ChatRequest) -> Result<Value, Error> {
        let mut system: Vec<String> = req.system.iter().map(|s| s.to_string()).collect();
        let mut messages: Vec<Value> = Vec::with_capacity(req.messages.len());
        for m in &req.messages {
            match m.role {
                Role::System => system.push(m.content.text()),
                Role::Tool => {
                    let block = tool_result_block(m)?;
                    // Consecutive tool results go into one user turn, as the
                    // API expects after an assistant turn with several tool_use blocks.
                    if let Some(last) = messages.last_mut() {
                        if last["role"] == "user" && last.get("tool_results").is_some() {
                            if let Some(Value::Array(blocks)) = last.get_mut("content") {
                                blocks.push(block);
                                continue;
                            }
                        }
                    }
                    messages
                        .push(json!({"role": "user", "content": [block], "tool_results": true}));
                }
                Role::Assistant if !m.tool_calls.is_empty() || has_turn_state(&m.content) => {
                    let mut blocks = assistant_blocks(&m.content);
                    for call in &m.tool_calls {
                        let input: Value = if call.arguments.trim().is_empty() {
                            json!({})
                        } else {
                            serde_json::from_str(&call.arguments).map_err(|e| {
                                Error::config(format!(
                                    "the arguments of tool call `{}` are not JSON ({e}): Anthropic needs tool_use input as a JSON object",
                                    call.id
                                ))
                            })?
                        };
                        blocks.push(json!({"type": "tool_use", "id": call.id, "name": call.name, "input": input}));
                    }
                    // A turn holding only another provider's state has
                    // nothing Anthropic can read (an empty turn is refused):
                    // it is left out, and the API joins the user turns
                    // around it.
                    if !blocks.is_empty() {
                        messages.push(json!({"role": "assistant", "content": blocks}));
                    }
                }
                Role::Assistant => {
                    messages.push(json!({"role": "assistant", "content": content_json(&m.content)}))
                }
                _ => messages.push(json!({"role": "user", "content": content_json(&m.content)})),
            }
        }
        // The marker only groups tool results while building.
        for m in &mut messages {
            if let Some(obj) = m.as_object_mut() {
                obj.remove("tool_results");
            }
        }
        let mut body = Map::new();
        body.insert("model".into(), json!(req.model));
        body.insert(
            "max_tokens".into(),
            json!(req.max_tokens.unwrap_or(self.default_max_tokens)),
        );
        if !system.is_empty() {
            body.insert("system".into(), json!(system.join("\n\n")));
        }
        body.insert("messages".into(), Value::Array(messages));
        if let Some(t) = req.temperature {
            body.insert("temperature".into(), f32_json(t));
        }
        if let Some(p) = req.top_p {
            body.insert("top_p".into(), f32_json(p));
        }
        if !req.stop.is_empty() {
            body.insert("stop_sequences".into(), json!(req.stop));
        }
        if !req.tools.is_empty() {
            let tools: Vec<Value> = req
                .tools
                .iter()
                .map(|t| {
                    let mut v = json!({"name": t.name, "input_schema": t.parameters});
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
                ToolChoice::Auto => json!({"type": "auto"}),
                ToolChoice::None => json!({"type": "none"}),
                ToolChoice::Required => json!({"type": "any"}),
                ToolChoice::Tool(name) => json!({"type": "tool", "name": name}),
                other => {
                    return Err(Error::config(format!(
                        "tool_choice {other:?} is not supported by costlayer-anthropic: set it through `extra`"
                    )))
                }
            };
            body.insert("tool_choice".into(), v);
        }
        match &req.response_format {
            None | Some(ResponseFormat::Text) => {}
            Some(ResponseFormat::JsonSchema { schema, .. }) => {
                body.insert(
                    "output_config".into(),
                    json!({"format": {"type": "json_schema", "schema": schema}}),
                );
            }
            Some(other) => {
                return Err(Error::config(format!(
                    "Anthropic has no {other:?} mode: use ResponseFormat::JsonSchema with a schema, or ask for JSON in the prompt"
                )))
            }
        }
        let mut body = Value::Object(body);
        merge_extra(&mut body, &req.extra);
        Ok(body)
    }

    /// The `POST /v1/messages/count_tokens` request for `req`: the Messages
    /// body without `max_tokens` and sampling parameters.
    ///
    /// # Errors
    ///
    /// As [`body`](Self::body).
    pub fn count_tokens_request(&self, req: &ChatRequest) -> Result<http::Request<Bytes>, Error> {
        let mut body = self.body(req)?;
        if let Some(obj) = body.as_object_mut() {
            obj.retain(|k, _| COUNT_TOKENS_FIELDS.contains(&k.as_str()));
        }
        self.post("/v1/messages/count_tokens", &body)
    }

    /// Reads a `count_tokens` answer (`{"input_tokens": N}`).
    ///
    /// # Errors
    ///
    /// The typed error of an error status, or [`Error::Decode`].
    pub fn parse_count_tokens(&self, resp: &HttpResponse) -> Result<u64, Error> {
        if !resp.status.is_success() {
            return Err(error_from_response(resp, SystemTime::now()));
        }
        #[derive(Deserialize)]
        struct Count {
            input_tokens: u64,
        }
        serde_json::from_slice::<Count>(&resp.body)
            .map(|c| c.input_tokens)
            .map_err(|e| Error::Decode {
                provider: PROVIDER.into(),
                message: format!("not a token count: {e}"),
                body_snippet: body_snippet(&resp.body, 200),
            })
    }

    /// Reads a successful Messages body.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] with the start of the body if it is not a message.
    pub fn parse_message(
        &self,
        req: &ChatRequest,
        body: &[u8],
        request_id: Option<String>,
    ) -> Result<ChatResponse, Error> {
        let decode_err = |message: String| Error::Decode {
            provider: PROVIDER.into(),
            message,
            body_snippet: body_snippet(body, 200),
        };
        let msg: MessageResponse =
            serde_json::from_slice(body).map_err(|e| decode_err(format!("not a message: {e}")))?;
        if msg.kind.as_deref().is_some_and(|k| k != "message") {
            return Err(decode_err(format!(
                "expected a `message` object, got `{}`",
                msg.kind.as_deref().unwrap_or_default()
            )));
        }
        let mut text = String::new();
        let mut tool_calls = Vec::new();
        let mut parts = Vec::new();
        for block in msg.content {
            match block.get("type").and_then(Value::as_str) {
                Some("text") => {
                    if let Some(t) = block.get("text").and_then(Value::as_str) {
                        text.push_str(t);
                        parts.push(ContentPart::text(t));
                    }
                }
                Some("tool_use") => tool_calls.push(ToolCall::function(
                    str_field(&block, "id"),
                    str_field(&block, "name"),
                    block
                        .get("input")
                        .map_or_else(|| "{}".to_owned(), Value::to_string),
                )),
                // Not the answer, but the next request of a tool loop with
                // thinking on must start its assistant turn with them.
                Some("thinking") => parts.push(ContentPart::Thinking {
                    text: str_field(&block, "thinking"),
                    signature: block
                        .get("signature")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                }),
                Some("redacted_thinking") => parts.push(ContentPart::RedactedThinking {
                    data: str_field(&block, "data"),
                }),
                // Server tool use and results (web search, code execution,
                // ...): sent back as received.
                _ => parts.push(ContentPart::provider_item(PROVIDER, block)),
            }
        }
        if parts.iter().all(|p| matches!(p, ContentPart::Text { .. })) {
            // Plain text needs no parts: `text` is the whole turn.
            parts.clear();
        }
        let finish_reason = msg.stop_reason.map(stop_reason);
        let (usage, raw_usage) = match msg.usage {
            Some(raw) if !raw.is_null() => {
                let parsed: AnthropicUsage = serde_json::from_value(raw.clone())
                    .map_err(|e| decode_err(format!("the usage object is malformed: {e}")))?;
                (Usage::from(parsed), Some(raw))
            }
            _ => {
                tracing::warn!(model = %req.model, "Anthropic response without usage: the call is recorded with zero tokens");
                (Usage::default(), None)
            }
        };
        Ok(ChatResponse {
            provider: PROVIDER.into(),
            model: msg
                .model
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| req.model.clone()),
            text,
            tool_calls,
            parts,
            finish_reason,
            usage,
            request_id: request_id.map(Into::into).or(msg.id),
            raw_usage,
            ..Default::default()
        })
    }
}

/// Anthropic's `stop_reason`, streamed or not.
pub(crate) fn stop_reason(r: String) -> FinishReason {
    match r.as_str() {
        "end_turn" | "stop_sequence" => FinishReason::Stop,
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "refusal" => FinishReason::ContentFilter,
        _ => FinishReason::Other(r),
    }
}

impl Codec for AnthropicCodec {
    fn provider(&self) -> &'static str {
        PROVIDER
    }

    fn encode(&self, req: &ChatRequest) -> Result<http::Request<Bytes>, Error> {
        self.post("/v1/messages", &self.body(req)?)
    }

    fn decode(&self, req: &ChatRequest, resp: HttpResponse) -> Result<ChatResponse, Error> {
        if !resp.status.is_success() {
            return Err(error_from_response(&resp, SystemTime::now()));
        }
        let request_id = header_str(&resp.headers, "request-id");
        self.parse_message(req, &resp.body, request_id)
    }
}

#[derive(Deserialize)]
struct MessageResponse {
    #[serde(default)]
    id: Option<costlayer_core::SharedStr>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    model: Option<costlayer_core::SharedStr>,
    #[serde(default)]
    content: Vec<Value>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<Value>,
}

fn str_field(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

pub(crate) fn header_str(headers: &http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn header_value(name: &str, value: String) -> Result<HeaderValue, Error> {
    HeaderValue::from_str(value.trim()).map_err(|_| {
        Error::config(format!(
            "{name} {value:?} cannot be sent as an HTTP header: remove newlines and non-ASCII characters"
        ))
    })
}

/// `0.7f32` as the JSON number `0.7`, not `0.699999988079071`.
fn f32_json(x: f32) -> Value {
    x.to_string()
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

fn content_json(content: &Content) -> Value {
    match content {
        Content::Text(t) => Value::String(t.clone()),
        Content::Parts(_) => Value::Array(content_blocks(content)),
    }
}

fn content_blocks(content: &Content) -> Vec<Value> {
    match content {
        Content::Text(t) => vec![json!({"type": "text", "text": t})],
        Content::Parts(parts) => parts
            .iter()
            .filter_map(|p| match p {
                ContentPart::Text { text } => Some(json!({"type": "text", "text": text})),
                ContentPart::ImageUrl { url } => Some(image_block(url)),
                _ => None,
            })
            .collect(),
    }
}

/// Whether an assistant content holds parts that only a block list can
/// carry (thinking, redacted thinking, Anthropic items).
fn has_turn_state(content: &Content) -> bool {
    matches!(content, Content::Parts(parts) if parts.iter().any(|p| !matches!(p, ContentPart::Text { .. } | ContentPart::ImageUrl { .. })))
}

/// The blocks of an assistant turn sent back, tool calls left to the
/// caller: thinking and redacted thinking first (the API requires the turn
/// to start with them when thinking is on; their order among themselves
/// is kept), then text, images and Anthropic items in order. Thinking
/// without a signature (another provider's) and other providers' items are
/// dropped: Anthropic would refuse them. Empty text blocks are left out.
fn assistant_blocks(content: &Content) -> Vec<Value> {
    let Content::Parts(parts) = content else {
        let mut v = content_blocks(content);
        v.retain(|b| b["type"] != "text" || b["text"] != "");
        return v;
    };
    let mut thinking = Vec::new();
    let mut rest = Vec::new();
    for p in parts {
        match p {
            ContentPart::Thinking {
                text,
                signature: Some(sig),
            } => thinking.push(json!({"type": "thinking", "thinking": text, "signature": sig})),
            ContentPart::RedactedThinking { data } => {
                thinking.push(json!({"type": "redacted_thinking", "data": data}))
            }
            ContentPart::ProviderItem { provider, item } if provider == PROVIDER => {
                rest.push(item.clone())
            }
            ContentPart::Text { text } if !text.is_empty() => {
                rest.push(json!({"type": "text", "text": text}))
            }
            ContentPart::ImageUrl { url } => rest.push(image_block(url)),
            _ => {}
        }
    }
    thinking.extend(rest);
    thinking
}

/// `data:image/png;base64,AAAA` becomes a base64 source; any other URL a
/// `url` source.
fn image_block(url: &str) -> Value {
    if let Some((media_type, data)) = parse_data_url(url) {
        json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}})
    } else {
        json!({"type": "image", "source": {"type": "url", "url": url}})
    }
}

fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media_type = meta.strip_suffix(";base64")?;
    Some((media_type, data))
}

fn tool_result_block(m: &Message) -> Result<Value, Error> {
    let id = m.tool_call_id.as_deref().ok_or_else(|| {
        Error::config(
            "a Role::Tool message needs tool_call_id: build it with Message::tool(call_id, result)",
        )
    })?;
    Ok(json!({"type": "tool_result", "tool_use_id": id, "content": content_json(&m.content)}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use costlayer_core::ToolDefinition;

    fn codec() -> AnthropicCodec {
        AnthropicCodec::new(ApiKey::new("sk-ant-test"))
    }

    #[test]
    fn body_maps_every_field() {
        let mut assistant = Message::assistant("Let me check.");
        assistant.tool_calls = vec![
            ToolCall::function("toolu_1", "weather", r#"{"city":"Paris"}"#),
            ToolCall::function("toolu_2", "weather", r#"{"city":"Oslo"}"#),
        ];
        let req = ChatRequest {
            top_p: Some(0.9),
            stop: vec!["END".into()],
            tool_choice: Some(ToolChoice::Required),
            response_format: Some(ResponseFormat::JsonSchema {
                name: "w".into(),
                schema: json!({"type": "object"}),
                strict: true,
            }),
            ..ChatRequest::new("claude-sonnet-4-5")
                .system("sys")
                .message(Message::system("more sys"))
                .message(Message::user(Content::Parts(vec![
                    ContentPart::Text {
                        text: "look".into(),
                    },
                    ContentPart::ImageUrl {
                        url: "data:image/png;base64,iVBORw0K".into(),
                    },
                    ContentPart::ImageUrl {
                        url: "https://x/cat.jpg".into(),
                    },
                ])))
                .message(assistant)
                .message(Message::tool("toolu_1", "18C"))
                .message(Message::tool("toolu_2", "-3C"))
                .max_tokens(256)
                .temperature(0.5)
                .tool(ToolDefinition {
                    name: "weather".into(),
                    description: None,
                    parameters: json!({"type": "object"}),
                })
                .extra(
                    "thinking",
                    json!({"type": "enabled", "budget_tokens": 1024}),
                )
        };
        let body = codec().body(&req).expect("body");
        assert_eq!(
            body,
            json!({
                "model": "claude-sonnet-4-5",
                "max_tokens": 256,
                "system": "sys\n\nmore sys",
                "messages": [
                    {"role": "user", "content": [
                        {"type": "text", "text": "look"},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0K"}},
                        {"type": "image", "source": {"type": "url", "url": "https://x/cat.jpg"}}
                    ]},
                    {"role": "assistant", "content": [
                        {"type": "text", "text": "Let me check."},
                        {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
                        {"type": "tool_use", "id": "toolu_2", "name": "weather", "input": {"city": "Oslo"}}
                    ]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                        {"type": "tool_result", "tool_use_id": "toolu_2", "content": "-3C"}
                    ]}
                ],
                "temperature": 0.5,
                "top_p": 0.9,
                "stop_sequences": ["END"],
                "tools": [{"name": "weather", "input_schema": {"type": "object"}}],
                "tool_choice": {"type": "any"},
                "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}},
                "thinking": {"type": "enabled", "budget_tokens": 1024}
            })
        );
    }

    #[test]
    fn unsupported_shapes_are_typed_errors() {
        let json_object = ChatRequest {
            response_format: Some(ResponseFormat::JsonObject),
            ..ChatRequest::new("claude-haiku-4-5")
        };
        assert!(matches!(
            codec().body(&json_object),
            Err(Error::Config { .. })
        ));
        let mut bad_call = Message::assistant("");
        bad_call
            .tool_calls
            .push(ToolCall::function("t", "n", "{oops"));
        let req = ChatRequest::new("claude-haiku-4-5").message(bad_call);
        let err = codec().body(&req).expect_err("bad args");
        assert!(err.to_string().contains("JSON"), "{err}");
    }

    #[test]
    fn an_assistant_turn_with_nothing_for_anthropic_is_left_out() {
        let foreign = Message::assistant(Content::Parts(vec![ContentPart::Thinking {
            text: "unsigned".into(),
            signature: None,
        }]));
        let req = ChatRequest::new("claude-haiku-4-5")
            .message(Message::user("a"))
            .message(foreign)
            .message(Message::user("b"));
        let body = codec().body(&req).expect("body");
        assert_eq!(
            body["messages"],
            json!([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
        );
    }

    #[test]
    fn count_tokens_body_drops_sampling_fields() {
        let req = ChatRequest::new("claude-haiku-4-5")
            .system("s")
            .message(Message::user("hi"))
            .max_tokens(10)
            .temperature(0.1);
        let http = codec().count_tokens_request(&req).expect("request");
        assert_eq!(http.uri().path(), "/v1/messages/count_tokens");
        let body: Value = serde_json::from_slice(http.body()).expect("json");
        assert_eq!(
            body,
            json!({"model": "claude-haiku-4-5", "system": "s", "messages": [{"role": "user", "content": "hi"}]})
        );
    }

    #[test]
    fn parses_tool_use_and_skips_thinking() {
        let body = br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929",
          "content":[{"type":"thinking","thinking":"hmm","signature":"x"},{"type":"text","text":"Checking."},
                     {"type":"tool_use","id":"toolu_9","name":"weather","input":{"city":"Oslo"}}],
          "stop_reason":"tool_use","stop_sequence":null,
          "usage":{"input_tokens":10,"output_tokens":20}}"#;
        let r = codec()
            .parse_message(&ChatRequest::new("claude-sonnet-4-5"), body, None)
            .expect("parse");
        assert_eq!(r.text, "Checking.");
        assert_eq!(r.finish_reason, Some(FinishReason::ToolCalls));
        assert_eq!(r.tool_calls[0].arguments, r#"{"city":"Oslo"}"#);
        assert_eq!(r.request_id.as_deref(), Some("msg_1"));
        assert_eq!(r.model, "claude-sonnet-4-5-20250929");
    }
}
