//! Request and response translation for `POST /v1/chat/completions`.

use std::time::SystemTime;

use bytes::Bytes;
use costlayer_core::transport::{body_snippet, merge_extra, normalize_base_url};
use costlayer_core::{
    ApiKey, ChatRequest, ChatResponse, Codec, Content, ContentPart, Error, FinishReason,
    HttpResponse, Message, ResponseFormat, Role, ToolCall, ToolCallKind, ToolChoice, Usage,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::error::error_from_response;
use crate::usage::OpenAiUsage;

/// The default base URL, `https://api.openai.com/v1`.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

const PROVIDER: &str = "openai";

/// Pure translation between costlayer's types and OpenAI Chat Completions.
///
/// | `ChatRequest` | OpenAI body |
/// |---|---|
/// | `system` | a first `{"role":"system"}` message |
/// | `messages` | `messages` (text, `image_url` parts, `name`, assistant `tool_calls` of type `function` or `custom`, `tool` results; other providers' thinking and items are not sent) |
/// | `max_tokens` | `max_completion_tokens` (`max_tokens` is deprecated and refused by o-series models) |
/// | `temperature`, `top_p`, `stop` | same names |
/// | `tools`, `tool_choice` | `tools: [{"type":"function","function":{..}}]`, `"auto"`/`"none"`/`"required"`/`{"type":"function",..}` |
/// | `response_format` | `response_format` (`text`, `json_object`, `json_schema`) |
/// | `extra` | merged last (objects key by key), so it can set or override anything |
///
/// `user`, `team` and `tags` are attribution only and are not sent.
///
/// ```
/// use costlayer_core::{ApiKey, ChatRequest, Message};
/// use costlayer_openai::OpenAiCodec;
///
/// let codec = OpenAiCodec::new(ApiKey::new("sk-1"));
/// let body = codec.body(&ChatRequest::new("gpt-4o-mini").system("Be terse.")
///     .message(Message::user("Say hi")).max_tokens(16))?;
/// assert_eq!(body, serde_json::json!({
///     "model": "gpt-4o-mini",
///     "messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Say hi"}],
///     "max_completion_tokens": 16
/// }));
/// # Ok::<(), costlayer_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct OpenAiCodec {
    api_key: ApiKey,
    base_url: String,
    organization: Option<String>,
    project: Option<String>,
}

impl OpenAiCodec {
    /// A codec for `https://api.openai.com/v1` with `api_key`.
    pub fn new(api_key: ApiKey) -> Self {
        OpenAiCodec {
            api_key,
            base_url: DEFAULT_BASE_URL.to_owned(),
            organization: None,
            project: None,
        }
    }

    /// Sets the base URL (up to and including `/v1`).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if it is not an absolute `http(s)://` URL.
    pub fn base_url(mut self, url: &str) -> Result<Self, Error> {
        self.base_url = normalize_base_url(PROVIDER, url)?;
        Ok(self)
    }

    /// Sets the `OpenAI-Organization` header.
    pub fn organization(mut self, org: impl Into<String>) -> Self {
        self.organization = Some(org.into());
        self
    }

    /// Sets the `OpenAI-Project` header.
    pub fn project(mut self, project: impl Into<String>) -> Self {
        self.project = Some(project.into());
        self
    }

    /// The chat completions URL.
    pub fn url(&self) -> String {
        format!("{}/chat/completions", self.base_url)
    }

    /// The base URL.
    pub fn get_base_url(&self) -> &str {
        &self.base_url
    }

    /// Builds an authenticated JSON `POST` to `path` (relative to the base
    /// URL), for chat calls and any other endpoint.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the key or a header cannot be sent.
    pub fn post(&self, path: &str, body: &Value) -> Result<http::Request<Bytes>, Error> {
        let body = serde_json::to_vec(body).map_err(|e| {
            Error::config(format!("the request could not be serialised to JSON: {e}"))
        })?;
        self.request(
            http::Method::POST,
            path,
            Some(("application/json", Bytes::from(body))),
        )
    }

    /// Builds an authenticated request of `method` to `path` (relative to
    /// the base URL) with an optional `(content type, body)`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the key or a header cannot be sent.
    pub fn request(
        &self,
        method: http::Method,
        path: &str,
        body: Option<(&str, Bytes)>,
    ) -> Result<http::Request<Bytes>, Error> {
        let mut builder = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base_url))
            .header(
                http::header::AUTHORIZATION,
                self.api_key.header_value("Bearer ")?,
            );
        if let Some(org) = &self.organization {
            builder = builder.header("openai-organization", org.as_str());
        }
        if let Some(project) = &self.project {
            builder = builder.header("openai-project", project.as_str());
        }
        let body = match body {
            Some((content_type, body)) => {
                builder = builder.header(http::header::CONTENT_TYPE, content_type);
                body
            }
            None => Bytes::new(),
        };
        builder.body(body).map_err(|e| {
            Error::config(format!(
                "invalid OpenAI request: {e}. Check the base URL, organization and project"
            ))
        })
    }

    /// The JSON body of a chat completion request.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a request OpenAI cannot express (a tool result
    /// without `tool_call_id`).
    pub fn body(&self, req: &ChatRequest) -> Result<Value, Error> {
        let mut messages = Vec::with_capacity(req.messages.len() + 1);
        if let Some(system) = &req.system {
            messages.push(json!({"role": "system", "content": system}));
        }
        for m in &req.messages {
            messages.push(message_json(m)?);
        }
        let mut body = Map::new();
        body.insert("model".into(), Value::String(req.model.to_string()));
        body.insert("messages".into(), Value::Array(messages));
        insert_sampling(&mut body, req, "max_completion_tokens");
        if !req.stop.is_empty() {
            body.insert("stop".into(), json!(req.stop));
        }
        if !req.tools.is_empty() {
            let tools: Vec<Value> = req
                .tools
                .iter()
                .map(|t| {
                    let mut f = json!({"name": t.name, "parameters": t.parameters});
                    if let Some(d) = &t.description {
                        f["description"] = json!(d);
                    }
                    json!({"type": "function", "function": f})
                })
                .collect();
            body.insert("tools".into(), Value::Array(tools));
        }
        if let Some(choice) = &req.tool_choice {
            let v = match choice {
                ToolChoice::Auto => json!("auto"),
                ToolChoice::None => json!("none"),
                ToolChoice::Required => json!("required"),
                ToolChoice::Tool(name) => json!({"type": "function", "function": {"name": name}}),
                other => {
                    return Err(Error::config(format!(
                        "tool_choice {other:?} is not supported by costlayer-openai: set it through `extra`"
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
                } => json!({"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": strict}}),
                other => {
                    return Err(Error::config(format!(
                        "response_format {other:?} is not supported by costlayer-openai: set it through `extra`"
                    )))
                }
            };
            body.insert("response_format".into(), v);
        }
        let mut body = Value::Object(body);
        merge_extra(&mut body, &req.extra);
        Ok(body)
    }

    /// Reads a successful chat completion body.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] with the start of the body if it is not a chat
    /// completion.
    pub fn parse_completion(
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
        let completion: Completion = serde_json::from_slice(body)
            .map_err(|e| decode_err(format!("not a chat completion: {e}")))?;
        let choice = completion
            .choices
            .into_iter()
            .next()
            .ok_or_else(|| decode_err("the completion has no choices".into()))?;
        let message = choice.message.unwrap_or_default();
        let tool_calls: Vec<ToolCall> = message
            .tool_calls
            .into_iter()
            .filter_map(|c| match (c.kind.as_deref(), c.function, c.custom) {
                (Some("custom"), _, Some(custom)) => {
                    Some(ToolCall::custom(c.id, custom.name, custom.input))
                }
                (_, Some(f), _) => Some(ToolCall::function(c.id, f.name, f.arguments)),
                // A call of a kind this version does not know: left out,
                // and said so, rather than guessed at.
                (kind, _, _) => {
                    tracing::warn!(kind = ?kind, "OpenAI tool call of an unknown type left out of the response");
                    None
                }
            })
            .collect();
        // A refusal comes instead of content; surface it as the text.
        let text = message
            .content
            .filter(|c| !c.is_empty())
            .or(message.refusal)
            .unwrap_or_default();
        let finish_reason = choice.finish_reason.map(finish_reason);
        let (usage, raw_usage) = match completion.usage {
            Some(raw) if !raw.is_null() => {
                let mut parsed: OpenAiUsage = serde_json::from_value(raw.clone())
                    .map_err(|e| decode_err(format!("the usage object is malformed: {e}")))?;
                parsed.service_tier = completion.service_tier.clone();
                (Usage::from(parsed), Some(raw))
            }
            _ => {
                tracing::warn!(model = %req.model, "OpenAI response without usage: the call is recorded with zero tokens");
                (Usage::default(), None)
            }
        };
        Ok(ChatResponse {
            provider: PROVIDER.into(),
            model: completion
                .model
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| req.model.clone()),
            text,
            tool_calls,
            finish_reason,
            usage,
            request_id: request_id.map(Into::into).or(completion.id),
            raw_usage,
            ..Default::default()
        })
    }
}

impl Codec for OpenAiCodec {
    fn provider(&self) -> &'static str {
        PROVIDER
    }

    fn encode(&self, req: &ChatRequest) -> Result<http::Request<Bytes>, Error> {
        self.post("/chat/completions", &self.body(req)?)
    }

    fn decode(&self, req: &ChatRequest, resp: HttpResponse) -> Result<ChatResponse, Error> {
        if !resp.status.is_success() {
            return Err(error_from_response(&resp, SystemTime::now()));
        }
        let request_id = header_str(&resp.headers, "x-request-id");
        self.parse_completion(req, &resp.body, request_id)
    }
}

/// OpenAI's `finish_reason`, streamed or not.
pub(crate) fn finish_reason(r: String) -> FinishReason {
    match r.as_str() {
        "stop" => FinishReason::Stop,
        "length" => FinishReason::Length,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        "content_filter" => FinishReason::ContentFilter,
        _ => FinishReason::Other(r),
    }
}

pub(crate) fn header_str(headers: &http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// The output cap (under `max_key`), `temperature` and `top_p`, as set.
pub(crate) fn insert_sampling(body: &mut Map<String, Value>, req: &ChatRequest, max_key: &str) {
    if let Some(n) = req.max_tokens {
        body.insert(max_key.into(), json!(n));
    }
    if let Some(t) = req.temperature {
        body.insert("temperature".into(), f32_json(t));
    }
    if let Some(p) = req.top_p {
        body.insert("top_p".into(), f32_json(p));
    }
}

/// `0.7f32` as the JSON number `0.7`, not `0.699999988079071`.
fn f32_json(x: f32) -> Value {
    x.to_string()
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

fn role_json(role: Role) -> Value {
    // `Role` serialises as OpenAI's lowercase role names.
    serde_json::to_value(role).unwrap_or(Value::Null)
}

fn content_json(content: &Content) -> Value {
    match content {
        Content::Text(t) => Value::String(t.clone()),
        Content::Parts(parts) => Value::Array(
            parts
                .iter()
                .filter_map(|p| match p {
                    ContentPart::Text { text } => Some(json!({"type": "text", "text": text})),
                    ContentPart::ImageUrl { url } => {
                        Some(json!({"type": "image_url", "image_url": {"url": url}}))
                    }
                    _ => None,
                })
                .collect(),
        ),
    }
}

/// An assistant turn's content: as given when it is text and images,
/// else only its text (another provider's thinking and items mean nothing
/// to Chat Completions, and an empty part list is refused).
fn assistant_content(content: &Content) -> Value {
    match content {
        Content::Parts(parts)
            if parts
                .iter()
                .any(|p| !matches!(p, ContentPart::Text { .. } | ContentPart::ImageUrl { .. })) =>
        {
            Value::String(content.text())
        }
        Content::Parts(parts) if parts.is_empty() => Value::String(String::new()),
        _ => content_json(content),
    }
}

fn message_json(m: &Message) -> Result<Value, Error> {
    let mut out = Map::new();
    out.insert("role".into(), role_json(m.role));
    match m.role {
        Role::Tool => {
            let id = m.tool_call_id.as_deref().ok_or_else(|| {
                Error::config(
                    "a Role::Tool message needs tool_call_id: build it with Message::tool(call_id, result)",
                )
            })?;
            out.insert("tool_call_id".into(), json!(id));
            out.insert("content".into(), content_json(&m.content));
        }
        Role::Assistant if !m.tool_calls.is_empty() => {
            let content = assistant_content(&m.content);
            out.insert(
                "content".into(),
                if content.as_str() == Some("") {
                    Value::Null
                } else {
                    content
                },
            );
            let calls: Vec<Value> = m
                .tool_calls
                .iter()
                .map(|c| match c.kind {
                    ToolCallKind::Custom => json!({"id": c.id, "type": "custom", "custom": {"name": c.name, "input": c.arguments}}),
                    _ => json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}),
                })
                .collect();
            out.insert("tool_calls".into(), Value::Array(calls));
        }
        Role::Assistant => {
            out.insert("content".into(), assistant_content(&m.content));
        }
        _ => {
            out.insert("content".into(), content_json(&m.content));
        }
    }
    if let Some(name) = &m.name {
        out.insert("name".into(), json!(name));
    }
    Ok(Value::Object(out))
}

#[derive(Deserialize)]
struct Completion {
    #[serde(default)]
    id: Option<costlayer_core::SharedStr>,
    #[serde(default)]
    model: Option<costlayer_core::SharedStr>,
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Value>,
    /// The tier that served the call (billed at its own rates).
    #[serde(default)]
    service_tier: Option<String>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    message: Option<RespMessage>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct RespMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    tool_calls: Vec<RespToolCall>,
}

#[derive(Deserialize)]
struct RespToolCall {
    #[serde(default)]
    id: String,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    function: Option<RespFunction>,
    #[serde(default)]
    custom: Option<RespCustom>,
}

#[derive(Deserialize)]
struct RespCustom {
    name: String,
    #[serde(default)]
    input: String,
}

#[derive(Deserialize)]
struct RespFunction {
    name: String,
    #[serde(default)]
    arguments: String,
}

fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use costlayer_core::ToolDefinition;

    fn codec() -> OpenAiCodec {
        OpenAiCodec::new(ApiKey::new("sk-test"))
    }

    #[test]
    fn body_maps_every_field() {
        let mut assistant = Message::assistant("");
        assistant.tool_calls.push(ToolCall::function(
            "call_1",
            "get_weather",
            r#"{"city":"Paris"}"#,
        ));
        let req = ChatRequest::new("gpt-4o")
            .system("sys")
            .message(Message::user(Content::Parts(vec![
                ContentPart::Text {
                    text: "what is this?".into(),
                },
                ContentPart::ImageUrl {
                    url: "https://x/cat.png".into(),
                },
            ])))
            .message(assistant)
            .message(Message::tool("call_1", "18C"))
            .max_tokens(100)
            .temperature(0.7)
            .tool(ToolDefinition {
                name: "get_weather".into(),
                description: Some("Weather".into()),
                parameters: json!({"type": "object"}),
            })
            .extra("seed", json!(42))
            .extra("temperature", json!(0.2));
        let req = ChatRequest {
            top_p: Some(0.9),
            stop: vec!["END".into()],
            tool_choice: Some(ToolChoice::Tool("get_weather".into())),
            response_format: Some(ResponseFormat::JsonObject),
            user: Some("alice".into()),
            ..req
        };
        let body = codec().body(&req).expect("body");
        assert_eq!(
            body,
            json!({
                "model": "gpt-4o",
                "messages": [
                    {"role": "system", "content": "sys"},
                    {"role": "user", "content": [
                        {"type": "text", "text": "what is this?"},
                        {"type": "image_url", "image_url": {"url": "https://x/cat.png"}}
                    ]},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}
                    ]},
                    {"role": "tool", "tool_call_id": "call_1", "content": "18C"}
                ],
                "max_completion_tokens": 100,
                // `extra` wins over the mapped field.
                "temperature": 0.2,
                "top_p": 0.9,
                "stop": ["END"],
                "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object"}}}],
                "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
                "response_format": {"type": "json_object"},
                "seed": 42
            })
        );
    }

    #[test]
    fn temperature_is_sent_as_written() {
        let body = codec()
            .body(&ChatRequest::new("gpt-4o").temperature(0.7))
            .expect("body");
        assert_eq!(body["temperature"].to_string(), "0.7");
    }

    #[test]
    fn tool_message_without_id_is_a_typed_error() {
        let req = ChatRequest::new("gpt-4o").message(Message::new(Role::Tool, "x"));
        let err = codec().body(&req).expect_err("no id");
        assert!(err.to_string().contains("Message::tool"), "{err}");
    }

    #[test]
    fn json_schema_format() {
        let req = ChatRequest {
            response_format: Some(ResponseFormat::JsonSchema {
                name: "answer".into(),
                schema: json!({"type": "object"}),
                strict: true,
            }),
            ..ChatRequest::new("gpt-4o")
        };
        assert_eq!(
            codec().body(&req).expect("body")["response_format"],
            json!({"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": true}})
        );
    }

    #[test]
    fn parses_tool_calls_and_refusals() {
        let body = br#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-2024-08-06",
          "choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[
            {"id":"call_9","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Oslo\"}"}}]},
            "finish_reason":"tool_calls"}],
          "usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}"#;
        let r = codec()
            .parse_completion(&ChatRequest::new("gpt-4o"), body, None)
            .expect("parse");
        assert_eq!(r.model, "gpt-4o-2024-08-06");
        assert_eq!(r.request_id.as_deref(), Some("chatcmpl-1"));
        assert_eq!(r.finish_reason, Some(FinishReason::ToolCalls));
        assert_eq!(r.tool_calls[0].name, "get_weather");
        assert_eq!(r.tool_calls[0].arguments, r#"{"city":"Oslo"}"#);
        assert_eq!(r.usage, Usage::new(10, 5));

        let body = br#"{"id":"c","model":"gpt-4o","choices":[{"message":{"role":"assistant","content":null,"refusal":"I can't help with that."},"finish_reason":"stop"}]}"#;
        let r = codec()
            .parse_completion(&ChatRequest::new("gpt-4o"), body, Some("req_1".into()))
            .expect("parse");
        assert_eq!(r.text, "I can't help with that.");
        assert_eq!(r.request_id.as_deref(), Some("req_1"));
        assert!(r.raw_usage.is_none());
    }

    #[test]
    fn no_choices_is_a_decode_error() {
        let err = codec()
            .parse_completion(&ChatRequest::new("m"), br#"{"choices":[]}"#, None)
            .expect_err("empty");
        assert!(matches!(err, Error::Decode { .. }), "{err}");
    }
}
