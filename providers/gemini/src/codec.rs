//! Request and response translation for `models/{model}:generateContent`.

use std::time::SystemTime;

use bytes::Bytes;
use costlayer_core::transport::{body_snippet, merge_extra, normalize_base_url};
use costlayer_core::{
    ApiKey, ChatRequest, ChatResponse, Codec, Content, ContentPart, Error, FinishReason,
    HttpResponse, Message, ResponseFormat, Role, ToolCall, ToolChoice, Usage,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::error::error_from_response;
use crate::usage::GeminiUsage;

/// The default base URL, `https://generativelanguage.googleapis.com`.
pub const DEFAULT_BASE_URL: &str = "https://generativelanguage.googleapis.com";
/// The default API version, `v1beta`.
pub const DEFAULT_API_VERSION: &str = "v1beta";

const PROVIDER: &str = "gemini";

/// Pure translation between costlayer's types and Gemini's `generateContent`.
///
/// | `ChatRequest` | Gemini body |
/// |---|---|
/// | `system` and any `Role::System` messages | `systemInstruction: {parts: [{text}]}` |
/// | `messages` | `contents`: roles `user` / `model`; text parts; images as `inlineData` (`data:` URLs) or `fileData` (other URLs); assistant tool calls as `functionCall` parts; tool results as `functionResponse` parts in a `user` turn |
/// | `max_tokens`, `temperature`, `top_p`, `stop` | `generationConfig.maxOutputTokens`, `.temperature`, `.topP`, `.stopSequences` |
/// | `response_format` | `generationConfig.responseMimeType: application/json` (+ `responseJsonSchema`) |
/// | `tools`, `tool_choice` | `tools: [{functionDeclarations: [{name, description, parametersJsonSchema}]}]` (the JSON Schema as given), `toolConfig.functionCallingConfig` (`AUTO`, `NONE`, `ANY`, `ANY` + `allowedFunctionNames`) |
/// | assistant continuation state | thought parts (`thought: true`) from [`ContentPart::Thinking`], `thoughtSignature` on function calls ([`ToolCall::signature`]) and on the parts it came with, Gemini [`ContentPart::ProviderItem`]s verbatim |
/// | `extra` | merged last, objects key by key: `{"generationConfig": {"thinkingConfig": ..}}` keeps `maxOutputTokens` |
///
/// A tool call's id is Gemini's `functionCall.id` when it sends one, else
/// the function name; a tool result is matched back to its call's function
/// name through the conversation.
///
/// ```
/// use costlayer_core::{ApiKey, ChatRequest, Message};
/// use costlayer_gemini::GeminiCodec;
///
/// let codec = GeminiCodec::new(ApiKey::new("k"));
/// let body = codec.body(&ChatRequest::new("gemini-2.5-flash").system("Be terse.")
///     .message(Message::user("Hi")).max_tokens(64))?;
/// assert_eq!(body, serde_json::json!({
///     "contents": [{"role": "user", "parts": [{"text": "Hi"}]}],
///     "systemInstruction": {"parts": [{"text": "Be terse."}]},
///     "generationConfig": {"maxOutputTokens": 64}
/// }));
/// # Ok::<(), costlayer_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct GeminiCodec {
    api_key: ApiKey,
    base_url: String,
    api_version: String,
}

impl GeminiCodec {
    /// A codec for `https://generativelanguage.googleapis.com/v1beta` with `api_key`.
    pub fn new(api_key: ApiKey) -> Self {
        GeminiCodec {
            api_key,
            base_url: DEFAULT_BASE_URL.to_owned(),
            api_version: DEFAULT_API_VERSION.to_owned(),
        }
    }

    /// Sets the base URL (without the API version).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if it is not an absolute `http(s)://` URL.
    pub fn base_url(mut self, url: &str) -> Result<Self, Error> {
        self.base_url = normalize_base_url(PROVIDER, url)?;
        Ok(self)
    }

    /// Sets the API version path segment (`v1beta`, `v1`).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if it is not a plain path segment.
    pub fn api_version(mut self, version: &str) -> Result<Self, Error> {
        let v = version.trim().trim_matches('/');
        if v.is_empty()
            || !v
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_')
        {
            return Err(Error::config(format!(
                "invalid Gemini API version {version:?}: use a path segment such as v1beta"
            )));
        }
        self.api_version = v.to_owned();
        Ok(self)
    }

    /// The base URL.
    pub fn get_base_url(&self) -> &str {
        &self.base_url
    }

    /// The URL of `models/{model}:{method}` (`generateContent`, `countTokens`).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the model id holds characters that do not belong
    /// in a URL path (`/`, `?`, `#`, spaces, ...).
    pub fn model_url(&self, model: &str, method: &str) -> Result<String, Error> {
        let m = model_id(model)?;
        Ok(format!(
            "{}/{}/models/{m}:{method}",
            self.base_url, self.api_version
        ))
    }

    /// The URL of `path` under the API version: `{base}/{version}/{path}`
    /// (`batches/123`, `files`).
    pub fn api_url(&self, path: &str) -> String {
        format!("{}/{}/{path}", self.base_url, self.api_version)
    }

    /// The URL of `path` under the API version of the upload or download
    /// host paths: `{base}/{prefix}/{version}/{path}` (`upload`, `download`).
    pub fn media_url(&self, prefix: &str, path: &str) -> String {
        format!("{}/{prefix}/{}/{path}", self.base_url, self.api_version)
    }

    /// An authenticated request builder (`x-goog-api-key`) of `method` to `url`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the key cannot be sent as a header.
    pub fn authed(&self, method: http::Method, url: &str) -> Result<http::request::Builder, Error> {
        Ok(http::Request::builder()
            .method(method)
            .uri(url)
            .header("x-goog-api-key", self.api_key.header_value("")?))
    }

    /// Builds an authenticated JSON `POST` to `url`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the key cannot be sent as a header.
    pub fn post(&self, url: String, body: &Value) -> Result<http::Request<Bytes>, Error> {
        let body = serde_json::to_vec(body).map_err(|e| {
            Error::config(format!("the request could not be serialised to JSON: {e}"))
        })?;
        http::Request::post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header("x-goog-api-key", self.api_key.header_value("")?)
            .body(Bytes::from(body))
            .map_err(|e| Error::config(format!("invalid Gemini request: {e}. Check the base URL")))
    }

    /// The JSON body of a `generateContent` request.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a tool result without `tool_call_id` or tool-call
    /// arguments that are not JSON.
    pub fn body(&self, req: &ChatRequest) -> Result<Value, Error> {
        let mut system: Vec<String> = req.system.iter().map(|s| s.to_string()).collect();
        let mut contents: Vec<Value> = Vec::with_capacity(req.messages.len());
        let mut last_was_tool = false;
        for (i, m) in req.messages.iter().enumerate() {
            let is_tool = m.role == Role::Tool;
            match m.role {
                Role::System => {
                    system.push(m.content.text());
                    continue;
                }
                Role::Tool => {
                    let part = function_response_part(&req.messages[..i], m)?;
                    // Consecutive tool results share one user turn.
                    if last_was_tool {
                        if let Some(Value::Array(parts)) =
                            contents.last_mut().and_then(|c| c.get_mut("parts"))
                        {
                            parts.push(part);
                            continue;
                        }
                    }
                    contents.push(json!({"role": "user", "parts": [part]}));
                }
                Role::Assistant => {
                    let mut parts = assistant_parts(&m.content);
                    for call in &m.tool_calls {
                        let args: Value = if call.arguments.trim().is_empty() {
                            json!({})
                        } else {
                            serde_json::from_str(&call.arguments).map_err(|e| {
                                Error::config(format!(
                                    "the arguments of tool call `{}` are not JSON ({e}): Gemini needs functionCall args as a JSON object",
                                    call.id
                                ))
                            })?
                        };
                        let mut fc = json!({"name": call.name, "args": args});
                        if !call.id.is_empty() && call.id != call.name {
                            fc["id"] = json!(call.id);
                        }
                        let mut part = json!({"functionCall": fc});
                        // Gemini 3 refuses a function call sent back without
                        // the signature it came with.
                        if let Some(sig) = &call.signature {
                            part["thoughtSignature"] = json!(sig);
                        }
                        parts.push(part);
                    }
                    if parts.is_empty() {
                        // Only another provider's state: nothing Gemini can
                        // read, and it refuses a turn without parts.
                        last_was_tool = false;
                        continue;
                    }
                    contents.push(json!({"role": "model", "parts": parts}));
                }
                _ => contents.push(json!({"role": "user", "parts": content_parts(&m.content)})),
            }
            last_was_tool = is_tool;
        }
        let mut body = Map::new();
        body.insert("contents".into(), Value::Array(contents));
        if !system.is_empty() {
            body.insert(
                "systemInstruction".into(),
                json!({"parts": [{"text": system.join("\n\n")}]}),
            );
        }
        let mut config = Map::new();
        if let Some(n) = req.max_tokens {
            config.insert("maxOutputTokens".into(), json!(n));
        }
        if let Some(t) = req.temperature {
            config.insert("temperature".into(), f32_json(t));
        }
        if let Some(p) = req.top_p {
            config.insert("topP".into(), f32_json(p));
        }
        if !req.stop.is_empty() {
            config.insert("stopSequences".into(), json!(req.stop));
        }
        match &req.response_format {
            None | Some(ResponseFormat::Text) => {}
            Some(ResponseFormat::JsonObject) => {
                config.insert("responseMimeType".into(), json!("application/json"));
            }
            Some(ResponseFormat::JsonSchema { schema, .. }) => {
                config.insert("responseMimeType".into(), json!("application/json"));
                config.insert("responseJsonSchema".into(), schema.clone());
            }
            Some(other) => {
                return Err(Error::config(format!(
                    "response_format {other:?} is not supported by costlayer-gemini: set generationConfig through `extra`"
                )))
            }
        }
        if !config.is_empty() {
            body.insert("generationConfig".into(), Value::Object(config));
        }
        if !req.tools.is_empty() {
            let decls: Vec<Value> = req
                .tools
                .iter()
                .map(|t| {
                    // `parameters` is Gemini's own `Schema` proto, which
                    // refuses JSON Schema keywords (`additionalProperties`,
                    // `$ref`, `const`, ...); `parametersJsonSchema` takes
                    // the caller's JSON Schema as is.
                    let mut d = json!({"name": t.name, "parametersJsonSchema": t.parameters});
                    if let Some(desc) = &t.description {
                        d["description"] = json!(desc);
                    }
                    d
                })
                .collect();
            body.insert("tools".into(), json!([{"functionDeclarations": decls}]));
        }
        if let Some(choice) = &req.tool_choice {
            let fcc = match choice {
                ToolChoice::Auto => json!({"mode": "AUTO"}),
                ToolChoice::None => json!({"mode": "NONE"}),
                ToolChoice::Required => json!({"mode": "ANY"}),
                ToolChoice::Tool(name) => json!({"mode": "ANY", "allowedFunctionNames": [name]}),
                other => {
                    return Err(Error::config(format!(
                        "tool_choice {other:?} is not supported by costlayer-gemini: set toolConfig through `extra`"
                    )))
                }
            };
            body.insert("toolConfig".into(), json!({"functionCallingConfig": fcc}));
        }
        let mut body = Value::Object(body);
        merge_extra(&mut body, &req.extra);
        Ok(body)
    }

    /// The `:countTokens` request for `req`, sending the whole request as
    /// `generateContentRequest` so the system instruction and tools count.
    ///
    /// # Errors
    ///
    /// As [`body`](Self::body) and [`model_url`](Self::model_url).
    pub fn count_tokens_request(&self, req: &ChatRequest) -> Result<http::Request<Bytes>, Error> {
        let mut inner = self.body(req)?;
        inner["model"] = json!(format!("models/{}", model_id(&req.model)?));
        self.post(
            self.model_url(&req.model, "countTokens")?,
            &json!({"generateContentRequest": inner}),
        )
    }

    /// Reads a `:countTokens` answer (`{"totalTokens": N}`).
    ///
    /// # Errors
    ///
    /// The typed error of an error status, or [`Error::Decode`].
    pub fn parse_count_tokens(&self, resp: &HttpResponse) -> Result<u64, Error> {
        if !resp.status.is_success() {
            return Err(error_from_response(resp, SystemTime::now()));
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Count {
            #[serde(default)]
            total_tokens: u64,
        }
        serde_json::from_slice::<Count>(&resp.body)
            .map(|c| c.total_tokens)
            .map_err(|e| Error::Decode {
                provider: PROVIDER.into(),
                message: format!("not a token count: {e}"),
                body_snippet: body_snippet(&resp.body, 200),
            })
    }

    /// Reads a successful `generateContent` body.
    ///
    /// A prompt blocked by safety filters (no candidates, a
    /// `promptFeedback.blockReason`) is a response with empty text and
    /// [`FinishReason::ContentFilter`]: the prompt was still billed.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] with the start of the body if it is not a
    /// `GenerateContentResponse`.
    pub fn parse_response(&self, req: &ChatRequest, body: &[u8]) -> Result<ChatResponse, Error> {
        let decode_err = |message: String| Error::Decode {
            provider: PROVIDER.into(),
            message,
            body_snippet: body_snippet(body, 200),
        };
        let resp: GenerateContentResponse = serde_json::from_slice(body)
            .map_err(|e| decode_err(format!("not a GenerateContentResponse: {e}")))?;
        let mut text = String::new();
        let mut tool_calls = Vec::new();
        let mut out_parts = Vec::new();
        let mut finish_reason = None;
        if let Some(candidate) = resp.candidates.into_iter().next() {
            let parts = candidate
                .content
                .and_then(|c| c.get("parts").cloned())
                .and_then(|p| match p {
                    Value::Array(a) => Some(a),
                    _ => None,
                })
                .unwrap_or_default();
            for part in parts {
                let signature = part
                    .get("thoughtSignature")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                // Thought summaries are not the answer, but are kept (with
                // their signature) for the next turn.
                if part.get("thought").and_then(Value::as_bool) == Some(true) {
                    out_parts.push(ContentPart::Thinking {
                        text: part
                            .get("text")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                        signature,
                    });
                    continue;
                }
                if let Some(t) = part.get("text").and_then(Value::as_str) {
                    text.push_str(t);
                    out_parts.push(ContentPart::text(t));
                    // A signature on a text part belongs to that part: kept
                    // as an item the codec re-attaches when sending it back.
                    if let Some(sig) = signature {
                        out_parts.push(ContentPart::provider_item(
                            PROVIDER,
                            json!({"thoughtSignature": sig}),
                        ));
                    }
                } else if let Some(fc) = part.get("functionCall") {
                    let name = fc
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    let id = fc
                        .get("id")
                        .and_then(Value::as_str)
                        .map_or_else(|| name.clone(), str::to_owned);
                    let mut call = ToolCall::function(
                        id,
                        name,
                        fc.get("args")
                            .map_or_else(|| "{}".to_owned(), Value::to_string),
                    );
                    call.signature = signature;
                    tool_calls.push(call);
                } else {
                    // Code execution, inline data, ...: sent back as received.
                    out_parts.push(ContentPart::provider_item(PROVIDER, part));
                }
            }
            finish_reason = candidate
                .finish_reason
                .map(|r| finish_reason_from(r, !tool_calls.is_empty()));
        } else if resp
            .prompt_feedback
            .as_ref()
            .and_then(|f| f.get("blockReason"))
            .is_some()
        {
            finish_reason = Some(FinishReason::ContentFilter);
        }
        let (usage, raw_usage) = match resp.usage_metadata {
            Some(raw) if !raw.is_null() => {
                let parsed: GeminiUsage = serde_json::from_value(raw.clone())
                    .map_err(|e| decode_err(format!("usageMetadata is malformed: {e}")))?;
                (Usage::from(parsed), Some(raw))
            }
            _ => {
                tracing::warn!(model = %req.model, "Gemini response without usageMetadata: the call is recorded with zero tokens");
                (Usage::default(), None)
            }
        };
        Ok(ChatResponse {
            provider: PROVIDER.into(),
            model: resp
                .model_version
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| match req.model.strip_prefix("models/") {
                    Some(m) => m.into(),
                    None => req.model.clone(),
                }),
            text,
            tool_calls,
            // Plain text needs no parts: `text` is the whole turn.
            parts: if out_parts
                .iter()
                .all(|p| matches!(p, ContentPart::Text { .. }))
            {
                Vec::new()
            } else {
                out_parts
            },
            finish_reason,
            usage,
            request_id: resp.response_id,
            raw_usage,
            ..Default::default()
        })
    }
}

impl Codec for GeminiCodec {
    fn provider(&self) -> &'static str {
        PROVIDER
    }

    fn encode(&self, req: &ChatRequest) -> Result<http::Request<Bytes>, Error> {
        self.post(
            self.model_url(&req.model, "generateContent")?,
            &self.body(req)?,
        )
    }

    fn decode(&self, req: &ChatRequest, resp: HttpResponse) -> Result<ChatResponse, Error> {
        if !resp.status.is_success() {
            return Err(error_from_response(&resp, SystemTime::now()));
        }
        self.parse_response(req, &resp.body)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerateContentResponse {
    #[serde(default)]
    candidates: Vec<Candidate>,
    #[serde(default)]
    prompt_feedback: Option<Value>,
    #[serde(default)]
    usage_metadata: Option<Value>,
    #[serde(default)]
    model_version: Option<costlayer_core::SharedStr>,
    #[serde(default)]
    response_id: Option<costlayer_core::SharedStr>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    #[serde(default)]
    content: Option<Value>,
    #[serde(default)]
    finish_reason: Option<String>,
}

/// The model id for the URL path: `models/` stripped, characters checked.
fn model_id(model: &str) -> Result<&str, Error> {
    let m = model.trim().strip_prefix("models/").unwrap_or(model.trim());
    if m.is_empty()
        || !m
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    {
        return Err(Error::config(format!(
            "invalid Gemini model id {model:?}: use an id such as gemini-2.5-flash (letters, digits, '-', '.', '_')"
        )));
    }
    Ok(m)
}

/// `0.7f32` as the JSON number `0.7`, not `0.699999988079071`.
fn f32_json(x: f32) -> Value {
    x.to_string()
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

/// Gemini's `Candidate.FinishReason` (v1beta) in costlayer's terms.
fn finish_reason_from(r: String, has_tool_calls: bool) -> FinishReason {
    match r.as_str() {
        "STOP" if has_tool_calls => FinishReason::ToolCalls,
        "STOP" => FinishReason::Stop,
        "MAX_TOKENS" => FinishReason::Length,
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION" => FinishReason::ContentFilter,
        "MALFORMED_FUNCTION_CALL"
        | "UNEXPECTED_TOOL_CALL"
        | "TOO_MANY_TOOL_CALLS"
        | "MISSING_THOUGHT_SIGNATURE" => FinishReason::ToolCallError(r),
        "LANGUAGE" | "NO_IMAGE" | "IMAGE_OTHER" | "MALFORMED_RESPONSE" => FinishReason::Failed(r),
        // OTHER, FINISH_REASON_UNSPECIFIED and reasons newer than this code.
        _ => FinishReason::Other(r),
    }
}

/// The parts of an assistant turn sent back: text, thought parts with
/// their signatures, Gemini items verbatim (a lone `thoughtSignature` item
/// re-attached to the part before it); other providers' items and
/// redacted thinking are dropped. Empty text parts are left out.
fn assistant_parts(content: &Content) -> Vec<Value> {
    let Content::Parts(parts) = content else {
        let mut v = content_parts(content);
        v.retain(|p| p.get("text").is_none_or(|t| t != ""));
        return v;
    };
    let mut out: Vec<Value> = Vec::with_capacity(parts.len());
    for p in parts {
        match p {
            ContentPart::Text { text } if text.is_empty() => {}
            ContentPart::Text { text } => out.push(json!({"text": text})),
            ContentPart::ImageUrl { url } => out.push(image_part(url)),
            ContentPart::Thinking { text, signature } => {
                let mut v = json!({"text": text, "thought": true});
                if let Some(sig) = signature {
                    v["thoughtSignature"] = json!(sig);
                }
                out.push(v);
            }
            ContentPart::ProviderItem { provider, item } if provider == PROVIDER => {
                let lone_signature = item
                    .as_object()
                    .filter(|o| o.len() == 1)
                    .and_then(|o| o.get("thoughtSignature"));
                match (lone_signature, out.last_mut()) {
                    (Some(sig), Some(prev)) => prev["thoughtSignature"] = sig.clone(),
                    (Some(_), None) => {}
                    (None, _) => out.push(item.clone()),
                }
            }
            _ => {}
        }
    }
    out
}

fn content_parts(content: &Content) -> Vec<Value> {
    match content {
        Content::Text(t) => vec![json!({"text": t})],
        Content::Parts(parts) => parts
            .iter()
            .filter_map(|p| match p {
                ContentPart::Text { text } => Some(json!({"text": text})),
                ContentPart::ImageUrl { url } => Some(image_part(url)),
                _ => None,
            })
            .collect(),
    }
}

fn image_part(url: &str) -> Value {
    if let Some((mime, data)) = url
        .strip_prefix("data:")
        .and_then(|r| r.split_once(','))
        .and_then(|(meta, data)| Some((meta.strip_suffix(";base64")?, data)))
    {
        return json!({"inlineData": {"mimeType": mime, "data": data}});
    }
    json!({"fileData": {"mimeType": guess_mime(url), "fileUri": url}})
}

fn guess_mime(url: &str) -> &'static str {
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .to_ascii_lowercase();
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("png") => "image/png",
        Some("webp") => "image/webp",
        Some("gif") => "image/gif",
        Some("heic") => "image/heic",
        Some("heif") => "image/heif",
        _ => "image/jpeg",
    }
}

/// A tool result as a `functionResponse` part. The function name comes from
/// the assistant call with the same id earlier in the conversation, then the
/// message's `name`, then the id itself (ids default to names for Gemini).
fn function_response_part(earlier: &[Message], m: &Message) -> Result<Value, Error> {
    let id = m.tool_call_id.as_deref().ok_or_else(|| {
        Error::config(
            "a Role::Tool message needs tool_call_id: build it with Message::tool(call_id, result)",
        )
    })?;
    let name = earlier
        .iter()
        .rev()
        .flat_map(|prev| prev.tool_calls.iter())
        .find(|c| c.id == id)
        .map(|c| c.name.as_str())
        .or(m.name.as_deref())
        .unwrap_or(id);
    let text = m.content.text();
    // `response` must be a JSON object: a JSON object result is sent as is,
    // anything else wrapped as {"result": ...}.
    let response = match serde_json::from_str::<Value>(&text) {
        Ok(v @ Value::Object(_)) => v,
        Ok(v) => json!({"result": v}),
        Err(_) => json!({"result": text}),
    };
    let mut fr = json!({"name": name, "response": response});
    if id != name {
        fr["id"] = json!(id);
    }
    Ok(json!({"functionResponse": fr}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use costlayer_core::ToolDefinition;

    fn codec() -> GeminiCodec {
        GeminiCodec::new(ApiKey::new("AIza-test"))
    }

    #[test]
    fn body_maps_every_field() {
        let mut assistant = Message::assistant("");
        assistant.tool_calls.push(ToolCall::function(
            "get_weather",
            "get_weather",
            r#"{"city":"Paris"}"#,
        ));
        let req = ChatRequest {
            top_p: Some(0.95),
            stop: vec!["END".into()],
            tool_choice: Some(ToolChoice::Tool("get_weather".into())),
            response_format: Some(ResponseFormat::JsonSchema {
                name: "w".into(),
                schema: json!({"type": "object"}),
                strict: false,
            }),
            ..ChatRequest::new("models/gemini-2.5-pro")
                .system("sys")
                .message(Message::user(Content::Parts(vec![
                    ContentPart::Text {
                        text: "what?".into(),
                    },
                    ContentPart::ImageUrl {
                        url: "data:image/png;base64,iVBOR".into(),
                    },
                    ContentPart::ImageUrl {
                        url: "https://x/y.webp".into(),
                    },
                ])))
                .message(assistant)
                .message(Message::tool("get_weather", r#"{"temp":18}"#))
                .max_tokens(512)
                .temperature(0.3)
                .tool(ToolDefinition {
                    name: "get_weather".into(),
                    description: Some("Weather".into()),
                    parameters: json!({"type": "object"}),
                })
                .extra(
                    "generationConfig",
                    json!({"thinkingConfig": {"thinkingBudget": 1024}}),
                )
        };
        let body = codec().body(&req).expect("body");
        assert_eq!(
            body,
            json!({
                "contents": [
                    {"role": "user", "parts": [
                        {"text": "what?"},
                        {"inlineData": {"mimeType": "image/png", "data": "iVBOR"}},
                        {"fileData": {"mimeType": "image/webp", "fileUri": "https://x/y.webp"}}
                    ]},
                    {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]},
                    {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"temp": 18}}}]}
                ],
                "systemInstruction": {"parts": [{"text": "sys"}]},
                "generationConfig": {
                    "maxOutputTokens": 512,
                    "temperature": 0.3,
                    "topP": 0.95,
                    "stopSequences": ["END"],
                    "responseMimeType": "application/json",
                    "responseJsonSchema": {"type": "object"},
                    "thinkingConfig": {"thinkingBudget": 1024}
                },
                "tools": [{"functionDeclarations": [{"name": "get_weather", "description": "Weather", "parametersJsonSchema": {"type": "object"}}]}],
                "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}}
            })
        );
        assert_eq!(
            codec().model_url(&req.model, "generateContent").expect("url"),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-pro:generateContent"
        );
    }

    #[test]
    fn tool_results_find_their_function_name() {
        let mut assistant = Message::assistant("");
        assistant
            .tool_calls
            .push(ToolCall::function("call-7", "lookup", "{}"));
        let req = ChatRequest::new("gemini-2.5-flash")
            .message(assistant)
            .message(Message::tool("call-7", "plain text"));
        let body = codec().body(&req).expect("body");
        assert_eq!(
            body["contents"][1]["parts"][0],
            json!({"functionResponse": {"name": "lookup", "id": "call-7", "response": {"result": "plain text"}}})
        );
        assert_eq!(
            body["contents"][0]["parts"][0],
            json!({"functionCall": {"name": "lookup", "id": "call-7", "args": {}}})
        );
    }

    #[test]
    fn a_model_turn_with_nothing_for_gemini_is_left_out() {
        let foreign = Message::assistant(Content::Parts(vec![ContentPart::RedactedThinking {
            data: "x".into(),
        }]));
        let req = ChatRequest::new("gemini-2.5-flash")
            .message(Message::user("a"))
            .message(foreign)
            .message(Message::user("b"));
        let body = codec().body(&req).expect("body");
        assert_eq!(
            body["contents"],
            json!([{"role": "user", "parts": [{"text": "a"}]}, {"role": "user", "parts": [{"text": "b"}]}])
        );
    }

    #[test]
    fn every_v1beta_finish_reason_has_a_meaning() {
        for (raw, calls, want) in [
            ("STOP", false, FinishReason::Stop),
            ("STOP", true, FinishReason::ToolCalls),
            ("MAX_TOKENS", false, FinishReason::Length),
            ("SAFETY", false, FinishReason::ContentFilter),
            ("RECITATION", false, FinishReason::ContentFilter),
            ("BLOCKLIST", false, FinishReason::ContentFilter),
            ("PROHIBITED_CONTENT", false, FinishReason::ContentFilter),
            ("SPII", false, FinishReason::ContentFilter),
            ("IMAGE_SAFETY", false, FinishReason::ContentFilter),
            (
                "IMAGE_PROHIBITED_CONTENT",
                false,
                FinishReason::ContentFilter,
            ),
            ("IMAGE_RECITATION", false, FinishReason::ContentFilter),
            (
                "MALFORMED_FUNCTION_CALL",
                false,
                FinishReason::ToolCallError("MALFORMED_FUNCTION_CALL".into()),
            ),
            (
                "UNEXPECTED_TOOL_CALL",
                false,
                FinishReason::ToolCallError("UNEXPECTED_TOOL_CALL".into()),
            ),
            (
                "TOO_MANY_TOOL_CALLS",
                false,
                FinishReason::ToolCallError("TOO_MANY_TOOL_CALLS".into()),
            ),
            ("LANGUAGE", false, FinishReason::Failed("LANGUAGE".into())),
            ("NO_IMAGE", false, FinishReason::Failed("NO_IMAGE".into())),
            (
                "IMAGE_OTHER",
                false,
                FinishReason::Failed("IMAGE_OTHER".into()),
            ),
            ("OTHER", false, FinishReason::Other("OTHER".into())),
            (
                "FINISH_REASON_UNSPECIFIED",
                false,
                FinishReason::Other("FINISH_REASON_UNSPECIFIED".into()),
            ),
        ] {
            assert_eq!(finish_reason_from(raw.into(), calls), want, "{raw}");
        }
    }

    #[test]
    fn bad_model_ids_are_config_errors() {
        for bad in ["", "gemini/../../x", "gemini-2.5-flash?key=1", "a b"] {
            let err = codec()
                .encode(&ChatRequest::new(bad))
                .expect_err("invalid model");
            assert!(matches!(err, Error::Config { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn blocked_prompt_and_function_calls() {
        let blocked = br#"{"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":8,"totalTokenCount":8},"modelVersion":"gemini-2.5-flash"}"#;
        let r = codec()
            .parse_response(&ChatRequest::new("gemini-2.5-flash"), blocked)
            .expect("parse");
        assert_eq!(r.finish_reason, Some(FinishReason::ContentFilter));
        assert_eq!(r.usage, Usage::new(8, 0));

        let call = br#"{"candidates":[{"content":{"role":"model","parts":[{"functionCall":{"name":"get_weather","args":{"city":"Rome"}}}]},"finishReason":"STOP","index":0}],
          "usageMetadata":{"promptTokenCount":20,"candidatesTokenCount":5,"totalTokenCount":25},"modelVersion":"gemini-2.5-flash","responseId":"r1"}"#;
        let r = codec()
            .parse_response(&ChatRequest::new("gemini-2.5-flash"), call)
            .expect("parse");
        assert_eq!(r.finish_reason, Some(FinishReason::ToolCalls));
        assert_eq!(r.tool_calls[0].id, "get_weather");
        assert_eq!(r.tool_calls[0].arguments, r#"{"city":"Rome"}"#);
        assert_eq!(r.request_id.as_deref(), Some("r1"));
    }
}
