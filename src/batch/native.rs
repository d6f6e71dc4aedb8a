//! Provider-native batch lines read back into neutral requests: the inverse
//! of each codec's `body` (OpenAI Chat Completions and Responses, Anthropic
//! Messages `params`, Gemini `GenerateContentRequest`), so tools, tool
//! calls and results, images and system prompts come through and the codec
//! sends the line as it was written. What has no neutral form is an error
//! saying what to do (the caller adds the line number).

use serde_json::{Map, Value};

use crate::{
    ChatRequest, Content, ContentPart, Message, ResponseFormat, Role, SharedStr, ToolCall,
    ToolChoice, ToolDefinition,
};

/// What to do with content that has no neutral form.
const NEUTRAL: &str =
    "write this line as {\"custom_id\": ..., \"request\": <ChatRequest>} (the neutral format), or remove the field";

type R<T> = Result<T, String>;

fn take_str(body: &mut Map<String, Value>, key: &str) -> R<Option<String>> {
    match body.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("`{key}` must be text")),
    }
}

fn take_u32(body: &mut Map<String, Value>, key: &str) -> R<Option<u32>> {
    match body.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(n) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or(format!("`{key}` must be a positive whole number")),
    }
}

fn take_f32(body: &mut Map<String, Value>, key: &str) -> R<Option<f32>> {
    match body.remove(key) {
        None | Some(Value::Null) => Ok(None),
        // Through the decimal text, so 0.7 stays 0.7 when sent again.
        Some(Value::Number(n)) => n
            .to_string()
            .parse::<f32>()
            .map(Some)
            .map_err(|_| format!("`{key}` must be a number")),
        Some(_) => Err(format!("`{key}` must be a number")),
    }
}

fn take_stop(body: &mut Map<String, Value>, key: &str) -> R<Vec<String>> {
    match body.remove(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s]),
        Some(Value::Array(a)) => a
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(format!("`{key}` must be text or a list of texts")),
            })
            .collect(),
        Some(_) => Err(format!("`{key}` must be text or a list of texts")),
    }
}

fn model_of(body: &mut Map<String, Value>) -> String {
    body.remove("model")
        .and_then(|m| m.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn object(v: &Value, what: &str) -> R<Map<String, Value>> {
    match v {
        Value::Object(m) => Ok(m.clone()),
        _ => Err(format!("{what} is not an object")),
    }
}

fn str_at<'a>(v: &'a Value, key: &str, what: &str) -> R<&'a str> {
    v.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{what} has no `{key}`"))
}

/// A tool definition from an object with `name` and an optional
/// `description` (OpenAI chat's `function`, a Responses or Anthropic tool).
fn tool(v: &Value, parameters: Value, what: &str) -> R<ToolDefinition> {
    Ok(ToolDefinition {
        name: str_at(v, "name", what)?.to_owned(),
        description: v
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned),
        parameters,
    })
}

/// Text, or the parts when there is more than one text or an image.
fn content_of(parts: Vec<ContentPart>) -> Content {
    match parts.as_slice() {
        [ContentPart::Text { text }] => Content::Text(text.clone()),
        _ => Content::Parts(parts),
    }
}

/// A JSON value as tool-call arguments (its JSON text).
fn arguments(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "{}".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

// ---------------------------------------------------------------- OpenAI chat

/// An OpenAI Chat Completions body (`url: /v1/chat/completions`).
pub(super) fn openai_chat(body: &Value) -> R<ChatRequest> {
    let mut body = object(body, "the native request body")?;
    let mut req = ChatRequest::new(model_of(&mut body));
    let messages = match body.remove("messages") {
        Some(Value::Array(m)) => m,
        None => Vec::new(),
        Some(_) => return Err("`messages` must be an array".into()),
    };
    for (i, m) in messages.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
        let at = |e: String| format!("messages[{i}]: {e}");
        let mut msg = match role {
            "system" | "developer" => {
                let text = openai_parts(m.get("content"), false)
                    .map_err(at)?
                    .iter()
                    .map(part_text)
                    .collect::<String>();
                // The leading system message is the request's system prompt.
                if i == 0 && req.system.is_none() && role == "system" {
                    req.system = Some(text.into());
                    continue;
                }
                Message::system(text)
            }
            "user" => Message::user(content_of(
                openai_parts(m.get("content"), true).map_err(at)?,
            )),
            "assistant" => {
                let mut msg = Message::assistant(match m.get("content") {
                    None | Some(Value::Null) => Content::Text(String::new()),
                    c => content_of(openai_parts(c, true).map_err(at)?),
                });
                for (j, c) in m
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    let what = format!("messages[{i}].tool_calls[{j}]");
                    let id = str_at(c, "id", &what)?;
                    msg.tool_calls
                        .push(match c.get("type").and_then(Value::as_str) {
                            Some("custom") => ToolCall::custom(
                                id,
                                str_at(&c["custom"], "name", &what)?,
                                str_at(&c["custom"], "input", &what)?,
                            ),
                            _ => ToolCall::function(
                                id,
                                str_at(&c["function"], "name", &what)?,
                                str_at(&c["function"], "arguments", &what)?,
                            ),
                        });
                }
                msg
            }
            "tool" => Message::tool(
                str_at(m, "tool_call_id", &format!("messages[{i}]"))?,
                content_of(openai_parts(m.get("content"), true).map_err(at)?),
            ),
            other => return Err(at(format!("role `{other}` has no neutral form: {NEUTRAL}"))),
        };
        if let Some(name) = m.get("name").and_then(Value::as_str) {
            msg.name = Some(name.to_owned());
        }
        req.messages.push(msg);
    }
    req.max_tokens = take_u32(&mut body, "max_completion_tokens")?;
    if let Some(n) = take_u32(&mut body, "max_tokens")? {
        req.max_tokens = Some(n);
    }
    req.temperature = take_f32(&mut body, "temperature")?;
    req.top_p = take_f32(&mut body, "top_p")?;
    req.stop = take_stop(&mut body, "stop")?;
    if let Some(tools) = body.remove("tools") {
        for (j, t) in tools.as_array().into_iter().flatten().enumerate() {
            if t.get("type").and_then(Value::as_str) != Some("function") {
                return Err(format!(
                    "tools[{j}] is not a function tool: only function tools have a neutral form; {NEUTRAL}"
                ));
            }
            let f = &t["function"];
            let parameters = f.get("parameters").cloned().unwrap_or(Value::Null);
            req.tools
                .push(tool(f, parameters, &format!("tools[{j}].function"))?);
        }
    }
    if let Some(c) = body.remove("tool_choice") {
        req.tool_choice = Some(
            match (&c, c.pointer("/function/name").and_then(Value::as_str)) {
                (Value::String(s), _) => choice(s)?,
                (_, Some(name)) => ToolChoice::Tool(name.to_owned()),
                _ => return Err(format!("this `tool_choice` has no neutral form: {NEUTRAL}")),
            },
        );
    }
    if let Some(f) = body.remove("response_format") {
        req.response_format = Some(match f.get("type").and_then(Value::as_str) {
            Some("text") => ResponseFormat::Text,
            Some("json_object") => ResponseFormat::JsonObject,
            Some("json_schema") => json_schema(&f["json_schema"])?,
            _ => {
                return Err(format!(
                    "this `response_format` has no neutral form: {NEUTRAL}"
                ))
            }
        });
    }
    req.extra = body;
    Ok(req)
}

fn choice(s: &str) -> R<ToolChoice> {
    match s {
        "auto" => Ok(ToolChoice::Auto),
        "none" => Ok(ToolChoice::None),
        "required" => Ok(ToolChoice::Required),
        other => Err(format!(
            "tool_choice `{other}` has no neutral form: {NEUTRAL}"
        )),
    }
}

fn json_schema(s: &Value) -> R<ResponseFormat> {
    Ok(ResponseFormat::JsonSchema {
        name: str_at(s, "name", "the json_schema")?.to_owned(),
        schema: s.get("schema").cloned().unwrap_or(Value::Null),
        strict: s.get("strict").and_then(Value::as_bool).unwrap_or(false),
    })
}

fn part_text(p: &ContentPart) -> String {
    match p {
        ContentPart::Text { text } => text.clone(),
        _ => String::new(),
    }
}

/// Chat Completions content: text, or `text` and (when `images`) `image_url` parts.
fn openai_parts(content: Option<&Value>, images: bool) -> R<Vec<ContentPart>> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![ContentPart::text(s.clone())]),
        Some(Value::Array(parts)) => parts
            .iter()
            .map(|p| match p.get("type").and_then(Value::as_str) {
                Some("text") => Ok(ContentPart::text(str_at(p, "text", "a text part")?)),
                Some("image_url") if images => {
                    let img = &p["image_url"];
                    if img.get("detail").is_some_and(|d| d != "auto") {
                        return Err(format!(
                            "an image `detail` other than auto has no neutral form: remove it, or {NEUTRAL}"
                        ));
                    }
                    let url = img
                        .as_str()
                        .or_else(|| img.get("url").and_then(Value::as_str))
                        .ok_or("an image_url part has no `url`")?;
                    Ok(ContentPart::ImageUrl { url: url.to_owned() })
                }
                other => Err(format!(
                    "`{}` content parts have no neutral form: {NEUTRAL}",
                    other.unwrap_or("untyped")
                )),
            })
            .collect(),
        Some(_) => Err("`content` must be text or an array of parts".into()),
    }
}

// ----------------------------------------------------------- OpenAI Responses

/// A Responses API body (`url: /v1/responses`).
pub(super) fn openai_responses(body: &Value) -> R<ChatRequest> {
    let mut body = object(body, "the native request body")?;
    let mut req = ChatRequest::new(model_of(&mut body));
    req.system = take_str(&mut body, "instructions")?.map(SharedStr::from);
    match body.remove("input") {
        Some(Value::String(text)) => req.messages.push(Message::user(text)),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                responses_item(req.messages.make_mut(), item)
                    .map_err(|e| format!("input[{i}]: {e}"))?;
            }
        }
        None | Some(Value::Null) => {}
        Some(_) => return Err("`input` must be text or an array of items".into()),
    }
    req.max_tokens = take_u32(&mut body, "max_output_tokens")?;
    req.temperature = take_f32(&mut body, "temperature")?;
    req.top_p = take_f32(&mut body, "top_p")?;
    if let Some(tools) = body.remove("tools") {
        for (j, t) in tools.as_array().into_iter().flatten().enumerate() {
            if t.get("type").and_then(Value::as_str) != Some("function")
                || t.get("strict").and_then(Value::as_bool) == Some(true)
            {
                return Err(format!(
                    "tools[{j}] is not a plain function tool (built-in tools and `strict: true` have no neutral form): {NEUTRAL}"
                ));
            }
            let parameters = t.get("parameters").cloned().unwrap_or(Value::Null);
            req.tools.push(tool(t, parameters, &format!("tools[{j}]"))?);
        }
    }
    if let Some(c) = body.remove("tool_choice") {
        req.tool_choice = Some(match (&c, c.get("name").and_then(Value::as_str)) {
            (Value::String(s), _) => choice(s)?,
            (_, Some(name)) if c["type"] == "function" => ToolChoice::Tool(name.to_owned()),
            _ => return Err(format!("this `tool_choice` has no neutral form: {NEUTRAL}")),
        });
    }
    if let Some(text) = body.remove("text") {
        let f = &text["format"];
        req.response_format = Some(match f.get("type").and_then(Value::as_str) {
            Some("text") => ResponseFormat::Text,
            Some("json_object") => ResponseFormat::JsonObject,
            Some("json_schema") => json_schema(f)?,
            _ => {
                return Err(format!(
                    "this `text` setting has no neutral form: {NEUTRAL}"
                ))
            }
        });
    }
    req.extra = body;
    Ok(req)
}

/// One Responses input item, appended to `out` (a function call joins the
/// assistant turn before it).
fn responses_item(out: &mut Vec<Message>, item: &Value) -> R<()> {
    let kind = item
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("message");
    match kind {
        "message" => {
            let role = item.get("role").and_then(Value::as_str).unwrap_or("user");
            let parts: Vec<ContentPart> = match item.get("content") {
                Some(Value::String(t)) => vec![ContentPart::text(t.clone())],
                Some(Value::Array(parts)) => parts
                    .iter()
                    .map(|p| match p.get("type").and_then(Value::as_str) {
                        Some("input_text" | "output_text") => {
                            Ok(ContentPart::text(str_at(p, "text", "a text part")?))
                        }
                        Some("input_image") => {
                            if p.get("detail").is_some_and(|d| d != "auto") {
                                return Err(format!(
                                    "an image `detail` other than auto has no neutral form: remove it, or {NEUTRAL}"
                                ));
                            }
                            Ok(ContentPart::ImageUrl {
                                url: str_at(p, "image_url", "an input_image part (file_id images have no neutral form)")?
                                    .to_owned(),
                            })
                        }
                        other => Err(format!(
                            "`{}` parts have no neutral form: {NEUTRAL}",
                            other.unwrap_or("untyped")
                        )),
                    })
                    .collect::<R<_>>()?,
                _ => return Err("a message item needs `content`".into()),
            };
            out.push(match role {
                "assistant" => {
                    Message::assistant(Content::Text(parts.iter().map(part_text).collect()))
                }
                "system" | "developer" => {
                    Message::system(parts.iter().map(part_text).collect::<String>())
                }
                _ => Message::user(content_of(parts)),
            });
        }
        "function_call" | "custom_tool_call" => {
            let id = str_at(item, "call_id", kind)?;
            let name = str_at(item, "name", kind)?;
            let mut call = if kind == "function_call" {
                ToolCall::function(id, name, arguments(item.get("arguments")))
            } else {
                ToolCall::custom(id, name, str_at(item, "input", kind)?)
            };
            if let Some(item_id) = item.get("id").and_then(Value::as_str) {
                call = call.with_item_id(item_id);
            }
            match out.last_mut() {
                Some(m) if m.role == Role::Assistant => m.tool_calls.push(call),
                _ => {
                    let mut m = Message::assistant(Content::Text(String::new()));
                    m.tool_calls.push(call);
                    out.push(m);
                }
            }
        }
        "function_call_output" | "custom_tool_call_output" => {
            let output = match item.get("output") {
                Some(Value::String(s)) => s.clone(),
                _ => {
                    return Err(format!(
                        "only text `output` of a {kind} has a neutral form: {NEUTRAL}"
                    ))
                }
            };
            out.push(Message::tool(str_at(item, "call_id", kind)?, output));
        }
        other => {
            return Err(format!("`{other}` items have no neutral form: {NEUTRAL}"));
        }
    }
    Ok(())
}

// ----------------------------------------------------------------- Anthropic

/// An Anthropic Messages `params` object.
pub(super) fn anthropic(params: &Value) -> R<ChatRequest> {
    let mut body = object(params, "`params`")?;
    let mut req = ChatRequest::new(model_of(&mut body));
    req.max_tokens = take_u32(&mut body, "max_tokens")?;
    match body.remove("system") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => req.system = Some(s.into()),
        Some(Value::Array(blocks)) => {
            let texts = blocks
                .iter()
                .map(|b| {
                    if b.get("cache_control").is_some() {
                        return Err(format!(
                            "`cache_control` on the system prompt has no neutral form: {NEUTRAL}"
                        ));
                    }
                    str_at(b, "text", "a system block").map(str::to_owned)
                })
                .collect::<R<Vec<_>>>()?;
            req.system = Some(texts.join("\n\n").into());
        }
        Some(_) => return Err("`system` must be text or text blocks".into()),
    }
    let messages = match body.remove("messages") {
        Some(Value::Array(m)) => m,
        None => Vec::new(),
        Some(_) => return Err("`messages` must be an array".into()),
    };
    for (i, m) in messages.iter().enumerate() {
        let at = |e: String| format!("messages[{i}]: {e}");
        let assistant = m.get("role").and_then(Value::as_str) == Some("assistant");
        let blocks = match m.get("content") {
            Some(Value::String(s)) => {
                req.messages.push(if assistant {
                    Message::assistant(s.clone())
                } else {
                    Message::user(s.clone())
                });
                continue;
            }
            Some(Value::Array(b)) => b,
            _ => return Err(at("`content` must be text or blocks".into())),
        };
        let mut parts = Vec::new();
        let mut calls = Vec::new();
        for b in blocks {
            if b.get("cache_control").is_some() {
                return Err(at(format!(
                    "`cache_control` has no neutral form: {NEUTRAL}"
                )));
            }
            match b.get("type").and_then(Value::as_str) {
                Some("text") => parts.push(ContentPart::text(str_at(b, "text", "a text block")?)),
                Some("image") => parts.push(ContentPart::ImageUrl {
                    url: anthropic_image(&b["source"]).map_err(at)?,
                }),
                Some("thinking") if assistant => parts.push(ContentPart::Thinking {
                    text: str_at(b, "thinking", "a thinking block")?.to_owned(),
                    signature: b
                        .get("signature")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                }),
                Some("redacted_thinking") if assistant => {
                    parts.push(ContentPart::RedactedThinking {
                        data: str_at(b, "data", "a redacted_thinking block")?.to_owned(),
                    })
                }
                Some("tool_use") if assistant => calls.push(ToolCall::function(
                    str_at(b, "id", "a tool_use block")?,
                    str_at(b, "name", "a tool_use block")?,
                    arguments(b.get("input")),
                )),
                Some("tool_result") if !assistant => {
                    if b.get("is_error").and_then(Value::as_bool) == Some(true) {
                        return Err(at(format!(
                            "a tool_result with `is_error` has no neutral form: {NEUTRAL}"
                        )));
                    }
                    let content = match b.get("content") {
                        None | Some(Value::Null) => Content::Text(String::new()),
                        Some(Value::String(s)) => Content::Text(s.clone()),
                        Some(Value::Array(inner)) => {
                            let mut p = Vec::new();
                            for ib in inner {
                                match ib.get("type").and_then(Value::as_str) {
                                    Some("text") => p.push(ContentPart::text(str_at(
                                        ib,
                                        "text",
                                        "a text block",
                                    )?)),
                                    Some("image") => p.push(ContentPart::ImageUrl {
                                        url: anthropic_image(&ib["source"]).map_err(at)?,
                                    }),
                                    _ => {
                                        return Err(at(format!(
                                        "this tool_result content has no neutral form: {NEUTRAL}"
                                    )))
                                    }
                                }
                            }
                            Content::Parts(p)
                        }
                        Some(_) => {
                            return Err(at(
                                "a tool_result's `content` must be text or blocks".into()
                            ))
                        }
                    };
                    // Text the turn held before the results stays before them.
                    if !parts.is_empty() {
                        req.messages
                            .push(Message::user(content_of(std::mem::take(&mut parts))));
                    }
                    req.messages.push(Message::tool(
                        str_at(b, "tool_use_id", "a tool_result block")?,
                        content,
                    ));
                }
                other => {
                    return Err(at(format!(
                        "`{}` blocks have no neutral form here: {NEUTRAL}",
                        other.unwrap_or("untyped")
                    )))
                }
            }
        }
        if assistant {
            let mut msg = Message::assistant(Content::Parts(parts));
            msg.tool_calls = calls;
            req.messages.push(msg);
        } else if !parts.is_empty() {
            req.messages.push(Message::user(Content::Parts(parts)));
        }
    }
    req.temperature = take_f32(&mut body, "temperature")?;
    req.top_p = take_f32(&mut body, "top_p")?;
    req.stop = take_stop(&mut body, "stop_sequences")?;
    if let Some(tools) = body.remove("tools") {
        for (j, t) in tools.as_array().into_iter().flatten().enumerate() {
            let Some(schema) = t.get("input_schema") else {
                return Err(format!(
                    "tools[{j}] is a server tool: only client tools with `input_schema` have a neutral form; {NEUTRAL}"
                ));
            };
            req.tools
                .push(tool(t, schema.clone(), &format!("tools[{j}]"))?);
        }
    }
    if let Some(c) = body.remove("tool_choice") {
        req.tool_choice = Some(match c.get("type").and_then(Value::as_str) {
            Some("auto") if c.get("disable_parallel_tool_use").is_none() => ToolChoice::Auto,
            Some("none") => ToolChoice::None,
            Some("any") if c.get("disable_parallel_tool_use").is_none() => ToolChoice::Required,
            Some("tool") if c.get("disable_parallel_tool_use").is_none() => {
                ToolChoice::Tool(str_at(&c, "name", "tool_choice")?.to_owned())
            }
            _ => return Err(format!("this `tool_choice` has no neutral form: {NEUTRAL}")),
        });
    }
    req.extra = body;
    Ok(req)
}

/// An Anthropic image source as a URL (`data:` for base64).
fn anthropic_image(source: &Value) -> R<String> {
    match source.get("type").and_then(Value::as_str) {
        Some("base64") => Ok(format!(
            "data:{};base64,{}",
            str_at(source, "media_type", "the image source")?,
            str_at(source, "data", "the image source")?
        )),
        Some("url") => Ok(str_at(source, "url", "the image source")?.to_owned()),
        _ => Err(format!(
            "this image source (file ids) has no neutral form: use a base64 or url source, or {NEUTRAL}"
        )),
    }
}

// -------------------------------------------------------------------- Gemini

/// A Gemini `GenerateContentRequest` (the model may be in `model`, or given
/// with --model).
pub(super) fn gemini(request: &Value) -> R<ChatRequest> {
    let mut body = object(request, "`request`")?;
    let model = model_of(&mut body);
    let mut req = ChatRequest::new(model.strip_prefix("models/").unwrap_or(&model));
    let contents = match body.remove("contents") {
        Some(Value::Array(c)) => c,
        _ => return Err("a Gemini request needs `contents`".into()),
    };
    // Function names by call id, for the results that follow.
    for (i, c) in contents.iter().enumerate() {
        let at = |e: String| format!("contents[{i}]: {e}");
        let model_turn = c.get("role").and_then(Value::as_str) == Some("model");
        let mut parts = Vec::new();
        let mut calls = Vec::new();
        for p in c
            .get("parts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(t) = p.get("text").and_then(Value::as_str) {
                if p.get("thought").and_then(Value::as_bool) == Some(true)
                    || p.get("thoughtSignature").is_some()
                {
                    return Err(at(format!("thought parts and signatures have no neutral form in a job file: {NEUTRAL}")));
                }
                parts.push(ContentPart::text(t));
            } else if let Some(d) = p.get("inlineData") {
                parts.push(ContentPart::ImageUrl {
                    url: format!(
                        "data:{};base64,{}",
                        str_at(d, "mimeType", "inlineData")?,
                        str_at(d, "data", "inlineData")?
                    ),
                });
            } else if let Some(f) = p.get("fileData") {
                parts.push(ContentPart::ImageUrl {
                    url: str_at(f, "fileUri", "fileData")?.to_owned(),
                });
            } else if let Some(fc) = p.get("functionCall").filter(|_| model_turn) {
                let name = str_at(fc, "name", "functionCall")?;
                let id = fc.get("id").and_then(Value::as_str).unwrap_or(name);
                let mut call = ToolCall::function(id, name, arguments(fc.get("args")));
                if let Some(sig) = p.get("thoughtSignature").and_then(Value::as_str) {
                    call = call.with_signature(sig);
                }
                calls.push(call);
            } else if let Some(fr) = p.get("functionResponse").filter(|_| !model_turn) {
                let name = str_at(fr, "name", "functionResponse")?;
                let id = fr.get("id").and_then(Value::as_str).unwrap_or(name);
                let response = fr.get("response").cloned().unwrap_or(Value::Null);
                // {"result": x} is how the codec wraps a non-object result.
                let text = match response.get("result") {
                    Some(Value::String(s))
                        if response.as_object().is_some_and(|o| o.len() == 1) =>
                    {
                        s.clone()
                    }
                    Some(v)
                        if response.as_object().is_some_and(|o| o.len() == 1) && !v.is_object() =>
                    {
                        v.to_string()
                    }
                    _ => response.to_string(),
                };
                let mut m = Message::tool(id, text);
                m.name = Some(name.to_owned());
                req.messages.push(m);
            } else {
                return Err(at(format!("this part has no neutral form: {NEUTRAL}")));
            }
        }
        if model_turn {
            let mut m = Message::assistant(content_of(parts));
            m.tool_calls = calls;
            req.messages.push(m);
        } else if !parts.is_empty() {
            req.messages.push(Message::user(content_of(parts)));
        }
    }
    if let Some(s) = body.remove("systemInstruction") {
        let texts = s
            .get("parts")
            .and_then(Value::as_array)
            .ok_or("`systemInstruction` has no parts")?
            .iter()
            .map(|p| {
                p.get("text")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or(format!(
                        "only text parts of `systemInstruction` have a neutral form: {NEUTRAL}"
                    ))
            })
            .collect::<R<Vec<_>>>()?;
        req.system = Some(texts.join("").into());
    }
    if let Some(g) = body.remove("generationConfig") {
        let mut g = object(&g, "`generationConfig`")?;
        req.max_tokens = take_u32(&mut g, "maxOutputTokens")?;
        req.temperature = take_f32(&mut g, "temperature")?;
        req.top_p = take_f32(&mut g, "topP")?;
        req.stop = take_stop(&mut g, "stopSequences")?;
        match (
            take_str(&mut g, "responseMimeType")?.as_deref(),
            g.remove("responseJsonSchema"),
        ) {
            (None, None) => {}
            (Some("application/json"), None) => {
                req.response_format = Some(ResponseFormat::JsonObject)
            }
            (Some("application/json"), Some(schema)) => {
                req.response_format = Some(ResponseFormat::JsonSchema {
                    name: "response".into(),
                    schema,
                    strict: false,
                })
            }
            _ => {
                return Err(format!(
                    "this response mime type or schema has no neutral form: {NEUTRAL}"
                ))
            }
        }
        if !g.is_empty() {
            // Other settings travel as given.
            req.extra
                .insert("generationConfig".into(), Value::Object(g));
        }
    }
    if let Some(tools) = body.remove("tools") {
        for (j, t) in tools.as_array().into_iter().flatten().enumerate() {
            let Some(decls) = t.get("functionDeclarations").and_then(Value::as_array) else {
                return Err(format!(
                    "tools[{j}] is not a function declaration list (built-in tools have no neutral form): {NEUTRAL}"
                ));
            };
            for d in decls {
                let parameters = d
                    .get("parametersJsonSchema")
                    .or_else(|| d.get("parameters"))
                    .cloned()
                    .unwrap_or(Value::Null);
                req.tools.push(tool(d, parameters, &format!("tools[{j}]"))?);
            }
        }
    }
    if let Some(tc) = body.remove("toolConfig") {
        let fcc = &tc["functionCallingConfig"];
        let names = fcc.get("allowedFunctionNames").and_then(Value::as_array);
        req.tool_choice = Some(
            match (
                fcc.get("mode").and_then(Value::as_str),
                names.map(Vec::as_slice),
            ) {
                (Some("AUTO"), None) => ToolChoice::Auto,
                (Some("NONE"), None) => ToolChoice::None,
                (Some("ANY"), None) => ToolChoice::Required,
                (Some("ANY"), Some([Value::String(n)])) => ToolChoice::Tool(n.clone()),
                _ => return Err(format!("this `toolConfig` has no neutral form: {NEUTRAL}")),
            },
        );
    }
    req.extra.extend(body);
    Ok(req)
}
