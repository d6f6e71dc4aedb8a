//! Provider-neutral chat request and response types.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{SharedStr, SharedVec, Usage};

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Role {
    /// Instructions (most providers prefer [`ChatRequest::system`]).
    System,
    /// The end user.
    User,
    /// The model.
    Assistant,
    /// The result of a tool call.
    Tool,
}

/// One part of a multi-part message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ContentPart {
    /// Plain text.
    Text {
        /// The text.
        text: String,
    },
    /// An image by URL (`https://…` or a `data:` URL).
    ImageUrl {
        /// The URL.
        url: String,
    },
    /// The model's reasoning, as the provider returned it: Anthropic
    /// `thinking` blocks (`signature` required to send it back), Gemini
    /// thought summaries (`thought: true` parts, with their
    /// `thoughtSignature`).
    ///
    /// Only assistant messages carry it. A codec sends it back only to a
    /// provider that can check it: Anthropic needs the signature and drops
    /// an unsigned one; Gemini sends it as a thought part; OpenAI drops it.
    Thinking {
        /// The reasoning text (may be empty when the provider omits it).
        text: String,
        /// The provider's opaque signature over the text, sent back verbatim.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<String>,
    },
    /// Reasoning the provider returned encrypted (Anthropic
    /// `redacted_thinking`): opaque data sent back verbatim, never shown.
    RedactedThinking {
        /// The encrypted data.
        data: String,
    },
    /// A provider-specific item the next request must carry back unchanged,
    /// such as an OpenAI Responses `reasoning` item (id, summary,
    /// `encrypted_content`), an Anthropic server-tool block, or a Gemini
    /// `thoughtSignature` that belongs to the text part before it.
    ///
    /// Only the codec of `provider` writes it (verbatim); every other codec
    /// drops it, so a conversation can move between providers.
    ProviderItem {
        /// The provider that produced it (`openai`, `anthropic`, `gemini`).
        provider: String,
        /// The item, exactly as received.
        item: Value,
    },
}

impl ContentPart {
    /// A text part.
    pub fn text(text: impl Into<String>) -> Self {
        ContentPart::Text { text: text.into() }
    }

    /// A provider item for `provider`.
    pub fn provider_item(provider: impl Into<String>, item: Value) -> Self {
        ContentPart::ProviderItem {
            provider: provider.into(),
            item,
        }
    }
}

/// The content of a message: text, or several parts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Text and images.
    Parts(Vec<ContentPart>),
}

impl Content {
    /// All the text of the content, parts joined by newlines (images skipped).
    pub fn text(&self) -> String {
        match self {
            Content::Text(t) => t.clone(),
            Content::Parts(parts) => parts
                .iter()
                .filter_map(|p| match p {
                    ContentPart::Text { text } => Some(text.as_str()),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    /// The length of the content's text in UTF-8 bytes, plus the URL bytes
    /// of image parts and the bytes of thinking text sent back (signatures
    /// and opaque items are not counted).
    pub fn byte_len(&self) -> usize {
        match self {
            Content::Text(t) => t.len(),
            Content::Parts(parts) => parts
                .iter()
                .map(|p| match p {
                    ContentPart::Text { text } => text.len(),
                    ContentPart::ImageUrl { url } => url.len(),
                    ContentPart::Thinking { text, .. } => text.len(),
                    _ => 0,
                })
                .sum(),
        }
    }

    /// The parts, a plain text being one text part (none when empty).
    pub fn parts(&self) -> Vec<ContentPart> {
        match self {
            Content::Text(t) if t.is_empty() => Vec::new(),
            Content::Text(t) => vec![ContentPart::text(t.clone())],
            Content::Parts(parts) => parts.clone(),
        }
    }
}

impl From<String> for Content {
    fn from(s: String) -> Self {
        Content::Text(s)
    }
}

impl From<&str> for Content {
    fn from(s: &str) -> Self {
        Content::Text(s.to_owned())
    }
}

/// What kind of tool the model called.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ToolCallKind {
    /// A function tool: `arguments` is a JSON object as a string.
    #[default]
    Function,
    /// An OpenAI custom (free-form) tool: `arguments` is the raw input text,
    /// not JSON (chat `tool_calls[].type: "custom"`, Responses
    /// `custom_tool_call`).
    Custom,
}

impl ToolCallKind {
    fn is_function(&self) -> bool {
        *self == ToolCallKind::Function
    }
}

/// A tool call made by the model.
///
/// # Continuation contract
///
/// A call read from a response carries what the provider needs to accept
/// it back in the next request's history: put the response back with
/// [`ChatResponse::message`] (or copy the call unchanged) and the codec
/// writes `signature` and `item_id` where its provider expects them.
/// Both are opaque: never build or edit them.
///
/// ```
/// use costlayer_core::ToolCall;
///
/// let call = ToolCall::function("call_1", "get_weather", r#"{"city":"Paris"}"#);
/// let json = serde_json::to_string(&call).unwrap();
/// // Optional fields are left out when unset, and read back the same.
/// assert_eq!(json, r#"{"id":"call_1","name":"get_weather","arguments":"{\"city\":\"Paris\"}"}"#);
/// assert_eq!(serde_json::from_str::<ToolCall>(&json).unwrap(), call);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ToolCall {
    /// The provider's id for the call, echoed in the tool result message
    /// (OpenAI `call_…`, Responses `call_id`, Anthropic `toolu_…`, Gemini
    /// `functionCall.id` or, without one, the function name).
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments as a JSON string, exactly as the model produced them
    /// (for [`ToolCallKind::Custom`], the raw input text).
    pub arguments: String,
    /// Function or custom tool. Defaults to function.
    #[serde(default, skip_serializing_if = "ToolCallKind::is_function")]
    pub kind: ToolCallKind,
    /// The opaque signature the provider attached to the call (Gemini
    /// `thoughtSignature`, required back by Gemini 3 on the next turn).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// The provider's id of the output item holding the call, when it is
    /// not `id` (OpenAI Responses `function_call.id`, `fc_…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_id: Option<String>,
}

impl ToolCall {
    /// A function call.
    pub fn function(
        id: impl Into<String>,
        name: impl Into<String>,
        arguments: impl Into<String>,
    ) -> Self {
        ToolCall {
            id: id.into(),
            name: name.into(),
            arguments: arguments.into(),
            ..Default::default()
        }
    }

    /// A custom (free-form input) tool call.
    pub fn custom(
        id: impl Into<String>,
        name: impl Into<String>,
        input: impl Into<String>,
    ) -> Self {
        ToolCall {
            kind: ToolCallKind::Custom,
            ..Self::function(id, name, input)
        }
    }

    /// Sets the provider's signature ([`ToolCall::signature`]).
    pub fn with_signature(mut self, signature: impl Into<String>) -> Self {
        self.signature = Some(signature.into());
        self
    }

    /// Sets the provider's item id ([`ToolCall::item_id`]).
    pub fn with_item_id(mut self, item_id: impl Into<String>) -> Self {
        self.item_id = Some(item_id.into());
        self
    }
}

/// One message of the conversation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// What it says.
    pub content: Content,
    /// An optional participant name (OpenAI `name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// For [`Role::Tool`] messages: the id of the call this answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// For [`Role::Assistant`] messages: the tool calls the model made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
}

impl Message {
    /// A message with a role and text.
    pub fn new(role: Role, content: impl Into<Content>) -> Self {
        Message {
            role,
            content: content.into(),
            name: None,
            tool_call_id: None,
            tool_calls: Vec::new(),
        }
    }

    /// A user message.
    pub fn user(content: impl Into<Content>) -> Self {
        Self::new(Role::User, content)
    }

    /// An assistant message.
    pub fn assistant(content: impl Into<Content>) -> Self {
        Self::new(Role::Assistant, content)
    }

    /// A system message.
    pub fn system(content: impl Into<Content>) -> Self {
        Self::new(Role::System, content)
    }

    /// A tool result answering the call `tool_call_id`.
    pub fn tool(tool_call_id: impl Into<String>, content: impl Into<Content>) -> Self {
        Message {
            tool_call_id: Some(tool_call_id.into()),
            ..Self::new(Role::Tool, content)
        }
    }
}

/// A tool (function) the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolDefinition {
    /// The function name.
    pub name: String,
    /// What it does, for the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the arguments.
    pub parameters: Value,
}

/// Whether and which tool the model must call.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ToolChoice {
    /// The model decides.
    Auto,
    /// No tool call.
    None,
    /// At least one tool call.
    Required,
    /// This tool, by name.
    Tool(String),
}

/// The shape of the answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ResponseFormat {
    /// Free text (the default).
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON matching a schema.
    JsonSchema {
        /// The schema's name.
        name: String,
        /// The JSON Schema.
        schema: Value,
        /// Whether the provider must follow the schema strictly.
        #[serde(default)]
        strict: bool,
    },
}

/// A provider-neutral chat request.
///
/// Sampling fields that are `None` are left to the provider's default.
/// `user`, `team` and `tags` are for cost attribution only: they are written
/// to the ledger, never into a cache key. `extra` is merged into the
/// provider's JSON body last, so it can set any parameter this type does not
/// model (and override one it does).
///
/// # Example
///
/// ```
/// use costlayer_core::{ChatRequest, Message};
///
/// let req = ChatRequest::new("gpt-4o-mini")
///     .system("Be terse.")
///     .message(Message::user("Say hi"))
///     .max_tokens(16)
///     .user("alice")
///     .tag("feature", "greeting");
/// assert_eq!(req.messages.len(), 1);
/// assert_eq!(req.tags["feature"], "greeting");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChatRequest {
    /// The model id, as the provider or the price table names it.
    pub model: SharedStr,
    /// The conversation (shared by the request's clones until one of them
    /// changes it).
    pub messages: SharedVec<Message>,
    /// The system prompt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<SharedStr>,
    /// The most output tokens to generate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Nucleus sampling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// Stop sequences.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    /// Tools the model may call (shared by the request's clones, as the
    /// messages).
    #[serde(skip_serializing_if = "SharedVec::is_empty")]
    pub tools: SharedVec<ToolDefinition>,
    /// Whether and which tool to call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// The answer's shape.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    /// Who the spend is attributed to (overrides the tracker's user).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The team the spend is attributed to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// Free-form attribution tags (project, feature, ...), copied to the ledger.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Provider-specific JSON merged into the request body last.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
}

impl ChatRequest {
    /// A request for `model` with no messages yet.
    pub fn new(model: impl Into<SharedStr>) -> Self {
        ChatRequest {
            model: model.into(),
            ..Default::default()
        }
    }

    /// Appends a message.
    pub fn message(mut self, message: Message) -> Self {
        self.messages.push(message);
        self
    }

    /// Sets the system prompt.
    pub fn system(mut self, system: impl Into<SharedStr>) -> Self {
        self.system = Some(system.into());
        self
    }

    /// Sets the output token limit.
    pub fn max_tokens(mut self, max_tokens: u32) -> Self {
        self.max_tokens = Some(max_tokens);
        self
    }

    /// Sets the temperature.
    pub fn temperature(mut self, temperature: f32) -> Self {
        self.temperature = Some(temperature);
        self
    }

    /// Attributes the call to a user.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// Attributes the call to a team.
    pub fn team(mut self, team: impl Into<String>) -> Self {
        self.team = Some(team.into());
        self
    }

    /// Adds an attribution tag.
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.insert(key.into(), value.into());
        self
    }

    /// Adds a tool.
    pub fn tool(mut self, tool: ToolDefinition) -> Self {
        self.tools.push(tool);
        self
    }

    /// Sets a provider-specific body field.
    pub fn extra(mut self, key: impl Into<String>, value: Value) -> Self {
        self.extra.insert(key.into(), value);
        self
    }

    /// The provider that serves this model, guessed from the model id's
    /// prefix (`gpt-`, `o1`…, `claude-`, `gemini-`, `models/gemini-`).
    ///
    /// ```
    /// # use costlayer_core::ChatRequest;
    /// assert_eq!(ChatRequest::new("claude-sonnet-4-5").provider_hint(), Some("anthropic"));
    /// assert_eq!(ChatRequest::new("my-local-model").provider_hint(), None);
    /// ```
    pub fn provider_hint(&self) -> Option<&'static str> {
        provider_for_model(&self.model)
    }
}

/// The provider that serves `model`, guessed from the id's prefix.
pub fn provider_for_model(model: &str) -> Option<&'static str> {
    let m = model.strip_prefix("models/").unwrap_or(model);
    // The last path segment; model ids are short, so a plain loop beats
    // `rsplit_once`'s `memrchr` call (this runs twice on every call).
    let m = match m.bytes().rposition(|b| b == b'/') {
        Some(at) => &m[at + 1..],
        None => m,
    };
    if m.starts_with("gpt-")
        || m.starts_with("chatgpt-")
        || m.starts_with("o1")
        || m.starts_with("o3")
        || m.starts_with("o4")
        || m.starts_with("text-embedding-")
    {
        Some("openai")
    } else if m.starts_with("claude-") {
        Some("anthropic")
    } else if m.starts_with("gemini-") {
        Some("gemini")
    } else {
        None
    }
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FinishReason {
    /// A natural stop or a stop sequence.
    Stop,
    /// The output token limit.
    Length,
    /// The model called tools.
    ToolCalls,
    /// A safety or content filter (Gemini `SAFETY`, `RECITATION`,
    /// `BLOCKLIST`, `PROHIBITED_CONTENT`, `SPII`, `IMAGE_SAFETY`,
    /// `IMAGE_PROHIBITED_CONTENT`, `IMAGE_RECITATION`; Anthropic `refusal`).
    ContentFilter,
    /// The model tried to call a tool and the call was refused, with the
    /// provider's reason (Gemini `MALFORMED_FUNCTION_CALL`,
    /// `UNEXPECTED_TOOL_CALL`, `TOO_MANY_TOOL_CALLS`,
    /// `MISSING_THOUGHT_SIGNATURE`). No usable tool call came back.
    ToolCallError(String),
    /// Generation ended without a usable answer for a reason that is not a
    /// filter, with the provider's reason (Gemini `LANGUAGE`: unsupported
    /// language; `NO_IMAGE`, `IMAGE_OTHER`, `MALFORMED_RESPONSE`).
    Failed(String),
    /// Anything else, as the provider said it.
    Other(String),
}

/// Whether a call was billed at online or batch prices.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A normal, synchronous call.
    #[default]
    Online,
    /// A call made through a provider's batch API (usually half price).
    Batch,
}

impl Mode {
    /// `"online"` or `"batch"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Mode::Online => "online",
            Mode::Batch => "batch",
        }
    }
}

/// A provider-neutral chat response.
///
/// `model` is the id the provider billed (often dated, such as
/// `gpt-4o-2024-08-06`); the price table resolves it to its canonical model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChatResponse {
    /// The provider that served the call (`openai`, `anthropic`, `gemini`, ...).
    pub provider: String,
    /// The model as billed.
    pub model: SharedStr,
    /// The answer's text (all text parts joined).
    pub text: String,
    /// Tool calls the model made.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// The assistant turn's non-tool output in the provider's order: text,
    /// [`ContentPart::Thinking`], [`ContentPart::RedactedThinking`] and
    /// [`ContentPart::ProviderItem`]s. [`message`](Self::message) puts it
    /// (with the tool calls) into the history for the next turn.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<ContentPart>,
    /// Why generation stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<FinishReason>,
    /// Billed usage.
    pub usage: Usage,
    /// Online or batch pricing.
    pub mode: Mode,
    /// Wall time of the call as seen by the client.
    #[serde(with = "duration_ms")]
    pub latency: Duration,
    /// The provider's id for the response or request (`chatcmpl-…`,
    /// `msg_…`, `request-id` header), for matching invoices and support tickets.
    /// Shared with the ledger record, which keeps the same id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<SharedStr>,
    /// `true` when served from costlayer's response cache (nothing was billed).
    pub cached: bool,
    /// The provider's usage object exactly as received, kept for audit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_usage: Option<Value>,
    /// What the cost layer recorded for this call (record id, cost, cost
    /// status); `None` until a cost layer has recorded it. Provider
    /// adapters leave it `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded: Option<crate::RecordedCost>,
}

impl ChatResponse {
    /// The assistant message to append to the history for the next turn:
    /// every part of [`parts`](Self::parts) (thinking, signatures,
    /// provider items, in order) and every tool call with its continuation
    /// data, so the provider accepts the next request.
    ///
    /// Without such parts the content is the plain [`text`](Self::text).
    ///
    /// ```
    /// use costlayer_core::{ChatResponse, ContentPart, Content, ToolCall, Role};
    ///
    /// let resp = ChatResponse {
    ///     text: "Checking.".into(),
    ///     parts: vec![
    ///         ContentPart::Thinking { text: "The user wants Paris.".into(), signature: Some("sig".into()) },
    ///         ContentPart::text("Checking."),
    ///     ],
    ///     tool_calls: vec![ToolCall::function("toolu_1", "weather", "{}")],
    ///     ..Default::default()
    /// };
    /// let m = resp.message();
    /// assert_eq!(m.role, Role::Assistant);
    /// assert!(matches!(&m.content, Content::Parts(p) if p.len() == 2));
    /// assert_eq!(m.tool_calls[0].id, "toolu_1");
    /// ```
    pub fn message(&self) -> Message {
        let only_text = self
            .parts
            .iter()
            .all(|p| matches!(p, ContentPart::Text { .. }));
        let content = if only_text {
            Content::Text(self.text.clone())
        } else {
            Content::Parts(self.parts.clone())
        };
        Message {
            tool_calls: self.tool_calls.clone(),
            ..Message::new(Role::Assistant, content)
        }
    }
}

mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis().min(u64::MAX as u128) as u64)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_hints() {
        for (m, p) in [
            ("gpt-4o-2024-08-06", Some("openai")),
            ("o3-mini", Some("openai")),
            ("claude-opus-4-5-20251101", Some("anthropic")),
            ("models/gemini-2.5-pro", Some("gemini")),
            ("openrouter/anthropic/claude-sonnet-4.5", Some("anthropic")),
            ("llama3", None),
            ("vendor/", None),
            ("modèle/gpt-4o", Some("openai")),
            ("models/", None),
        ] {
            assert_eq!(provider_for_model(m), p, "{m}");
        }
    }

    #[test]
    fn content_text_and_bytes() {
        let c = Content::Parts(vec![
            ContentPart::Text {
                text: "héllo".into(),
            },
            ContentPart::ImageUrl {
                url: "https://x/y.png".into(),
            },
            ContentPart::Text {
                text: "world".into(),
            },
        ]);
        assert_eq!(c.text(), "héllo\nworld");
        assert_eq!(c.byte_len(), 6 + 15 + 5);
    }

    #[test]
    fn continuation_data_round_trips_through_json() {
        let resp = ChatResponse {
            provider: "anthropic".into(),
            text: "ok".into(),
            parts: vec![
                ContentPart::Thinking {
                    text: "t".into(),
                    signature: Some("sig".into()),
                },
                ContentPart::RedactedThinking { data: "enc".into() },
                ContentPart::provider_item(
                    "openai",
                    serde_json::json!({"type": "reasoning", "id": "rs_1", "summary": []}),
                ),
                ContentPart::text("ok"),
            ],
            tool_calls: vec![
                ToolCall::function("c1", "f", "{}")
                    .with_signature("ts")
                    .with_item_id("fc_1"),
                ToolCall::custom("c2", "grep", "raw input"),
            ],
            ..Default::default()
        };
        let json = serde_json::to_value(&resp).expect("serialise");
        assert_eq!(
            json["parts"][0],
            serde_json::json!({"type": "thinking", "text": "t", "signature": "sig"})
        );
        assert_eq!(json["tool_calls"][1]["kind"], "custom");
        let back: ChatResponse = serde_json::from_value(json).expect("parse");
        assert_eq!(back, resp);
        let m = back.message();
        let req = ChatRequest::new("m").message(m.clone());
        let again: ChatRequest =
            serde_json::from_str(&serde_json::to_string(&req).expect("ser")).expect("de");
        assert_eq!(again.messages[0], m);
        assert_eq!(m.content.text(), "ok");
        assert_eq!(m.content.byte_len(), 1 + 2);
    }

    #[test]
    fn request_round_trips_through_json() {
        let req = ChatRequest::new("gpt-4o")
            .system("s")
            .message(Message::user("hi"))
            .max_tokens(5)
            .extra("seed", serde_json::json!(7));
        let json = serde_json::to_string(&req).expect("serialise");
        let back: ChatRequest = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, req);
    }
}
