//! Streamed Messages (`"stream": true`), read as server-sent events.
//!
//! The usage arrives in two parts, and both are needed to price the call:
//! `message_start` carries the input side (`input_tokens`, cache reads and
//! writes) with a provisional `output_tokens`; `message_delta` carries the
//! **cumulative** `output_tokens` (and, on newer models, may repeat or
//! update the input fields). The decoder merges the raw usage objects key
//! by key (a later non-null value wins) and maps the merged object with the
//! same [`AnthropicUsage`] mapping as an unstreamed message, so cache reads
//! stay cache reads. `content_block_*` events carry text, thinking and
//! `tool_use` input as partial JSON; `ping` is ignored; an `error` event
//! (which can arrive after HTTP 200) ends the stream with the typed error;
//! `message_stop` completes it.

use std::collections::HashMap;
use std::time::SystemTime;

use bytes::Bytes;
use costlayer_core::sse::SseEvent;
use costlayer_core::stream::{bad_event, stream_cut};
use costlayer_core::{
    ChatDelta, ChatRequest, ContentPart, Error, HttpResponse, StreamCodec, StreamDecoder,
    ToolCallDelta, Usage,
};
use serde_json::{json, Map, Value};

use crate::codec::{stop_reason, AnthropicCodec};
use crate::error::error_from_response;
use crate::usage::AnthropicUsage;

const PROVIDER: &str = "anthropic";

impl StreamCodec for AnthropicCodec {
    type Decoder = AnthropicStreamDecoder;

    fn encode_stream(&self, req: &ChatRequest) -> Result<http::Request<Bytes>, Error> {
        let mut body = self.body(req)?;
        if let Value::Object(map) = &mut body {
            map.insert("stream".into(), json!(true));
        }
        self.post("/v1/messages", &body)
    }

    fn stream_decoder(&self, _req: &ChatRequest) -> AnthropicStreamDecoder {
        AnthropicStreamDecoder::default()
    }
}

/// Reads a Messages stream: usage merged from `message_start` and
/// `message_delta`, thinking and server-tool blocks kept as parts.
#[derive(Debug, Default)]
pub struct AnthropicStreamDecoder {
    /// The merged raw usage.
    usage: Map<String, Value>,
    /// Content block index → tool-call ordinal.
    tools: HashMap<u64, usize>,
    /// Blocks the next turn must carry back, assembled until their
    /// `content_block_stop`: thinking (text + signature), redacted
    /// thinking, server-tool blocks (with their streamed input).
    open: HashMap<u64, OpenBlock>,
    events: u64,
    done: bool,
}

#[derive(Debug)]
enum OpenBlock {
    Thinking {
        text: String,
        signature: Option<String>,
    },
    Redacted(String),
    Item {
        block: Value,
        input: String,
    },
}

impl AnthropicStreamDecoder {
    fn merge_usage(&mut self, raw: &Value) -> Result<(Usage, Value), Error> {
        if let Value::Object(o) = raw {
            for (k, v) in o {
                if !v.is_null() {
                    self.usage.insert(k.clone(), v.clone());
                }
            }
        }
        let merged = Value::Object(self.usage.clone());
        let parsed: AnthropicUsage = serde_json::from_value(merged.clone())
            .map_err(|e| bad_event(PROVIDER, &e, &merged.to_string()))?;
        Ok((Usage::from(parsed), merged))
    }
}

fn str_of(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

impl StreamDecoder for AnthropicStreamDecoder {
    fn event(&mut self, ev: &SseEvent) -> Result<Option<ChatDelta>, Error> {
        if self.done || ev.data.trim().is_empty() {
            return Ok(None);
        }
        self.events += 1;
        let v: Value =
            serde_json::from_str(&ev.data).map_err(|e| bad_event(PROVIDER, &e, &ev.data))?;
        let kind = v
            .get("type")
            .and_then(Value::as_str)
            .or(ev.event.as_deref())
            .unwrap_or_default();
        let mut d = ChatDelta::default();
        match kind {
            "message_start" => {
                let msg = v.get("message").cloned().unwrap_or(Value::Null);
                d.model = str_of(&msg, "model")
                    .filter(|m| !m.is_empty())
                    .map(Into::into);
                d.request_id = str_of(&msg, "id").map(Into::into);
                if let Some(u) = msg.get("usage") {
                    let (usage, raw) = self.merge_usage(u)?;
                    d.usage = Some(usage);
                    d.raw_usage = Some(raw);
                }
            }
            "content_block_start" => {
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let block = v.get("content_block").cloned().unwrap_or(Value::Null);
                match block.get("type").and_then(Value::as_str) {
                    Some("tool_use") => {
                        let ordinal = self.tools.len();
                        self.tools.insert(index, ordinal);
                        d.tool_calls.push(ToolCallDelta {
                            index: ordinal,
                            id: str_of(&block, "id"),
                            name: str_of(&block, "name"),
                            ..ToolCallDelta::default()
                        });
                    }
                    Some("text") => d.text = str_of(&block, "text").unwrap_or_default(),
                    Some("thinking") => {
                        d.thinking = str_of(&block, "thinking").unwrap_or_default();
                        self.open.insert(
                            index,
                            OpenBlock::Thinking {
                                text: d.thinking.clone(),
                                signature: str_of(&block, "signature").filter(|s| !s.is_empty()),
                            },
                        );
                    }
                    Some("redacted_thinking") => {
                        let data = str_of(&block, "data").unwrap_or_default();
                        self.open.insert(index, OpenBlock::Redacted(data));
                    }
                    // Server tools (web search, code execution) and their
                    // results: sent back verbatim, as unstreamed.
                    _ => {
                        self.open.insert(
                            index,
                            OpenBlock::Item {
                                block,
                                input: String::new(),
                            },
                        );
                    }
                }
            }
            "content_block_stop" => {
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                match self.open.remove(&index) {
                    Some(OpenBlock::Thinking { text, signature }) => {
                        d.parts.push(ContentPart::Thinking { text, signature });
                    }
                    Some(OpenBlock::Redacted(data)) => {
                        d.parts.push(ContentPart::RedactedThinking { data });
                    }
                    Some(OpenBlock::Item { mut block, input }) => {
                        if let Ok(parsed) = serde_json::from_str::<Value>(&input) {
                            block["input"] = parsed;
                        }
                        d.parts.push(ContentPart::provider_item(PROVIDER, block));
                    }
                    None => return Ok(None),
                }
            }
            "content_block_delta" => {
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let delta = v.get("delta").cloned().unwrap_or(Value::Null);
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => d.text = str_of(&delta, "text").unwrap_or_default(),
                    Some("thinking_delta") => {
                        d.thinking = str_of(&delta, "thinking").unwrap_or_default();
                        if let Some(OpenBlock::Thinking { text, .. }) = self.open.get_mut(&index) {
                            text.push_str(&d.thinking);
                        }
                    }
                    Some("signature_delta") => {
                        if let Some(OpenBlock::Thinking { signature, .. }) =
                            self.open.get_mut(&index)
                        {
                            let more = str_of(&delta, "signature").unwrap_or_default();
                            signature.get_or_insert_with(String::new).push_str(&more);
                        }
                        return Ok(None);
                    }
                    Some("input_json_delta") => {
                        let partial = str_of(&delta, "partial_json").unwrap_or_default();
                        if let Some(&ordinal) = self.tools.get(&index) {
                            d.tool_calls.push(ToolCallDelta {
                                index: ordinal,
                                arguments: partial,
                                ..ToolCallDelta::default()
                            });
                        } else if let Some(OpenBlock::Item { input, .. }) =
                            self.open.get_mut(&index)
                        {
                            input.push_str(&partial);
                            return Ok(None);
                        }
                    }
                    // citations_delta: nothing to show.
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(r) = v
                    .get("delta")
                    .and_then(|x| x.get("stop_reason"))
                    .and_then(Value::as_str)
                {
                    d.finish_reason = Some(stop_reason(r.to_owned()));
                }
                if let Some(u) = v.get("usage") {
                    let (usage, raw) = self.merge_usage(u)?;
                    d.usage = Some(usage);
                    d.raw_usage = Some(raw);
                }
            }
            "message_stop" => {
                self.done = true;
                let (usage, raw) = self.merge_usage(&Value::Null)?;
                d.usage = Some(usage);
                d.raw_usage = Some(raw);
                d.done = true;
            }
            "error" => return Err(stream_error(&v)),
            // ping and event types added later.
            _ => return Ok(None),
        }
        Ok(Some(d))
    }

    fn finish(&mut self) -> Result<Option<ChatDelta>, Error> {
        if self.done {
            Ok(None)
        } else {
            Err(stream_cut(PROVIDER, self.events))
        }
    }
}

/// The typed error of an `error` event, read as the error body it is.
fn stream_error(v: &Value) -> Error {
    let status = match v
        .get("error")
        .and_then(|e| e.get("type"))
        .and_then(Value::as_str)
    {
        Some("overloaded_error") => 529,
        Some("rate_limit_error") => 429,
        Some("api_error") => 500,
        Some("timeout_error") => 504,
        Some("authentication_error") => 401,
        Some("permission_error") => 403,
        Some("not_found_error") => 404,
        Some("request_too_large") => 413,
        _ => 400,
    };
    let resp = HttpResponse {
        status: http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_REQUEST),
        headers: http::HeaderMap::new(),
        body: Bytes::from(v.to_string()),
    };
    error_from_response(&resp, SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use costlayer_core::stream::decode_body;
    use costlayer_core::{FinishReason, StreamAccumulator};

    fn run(body: &str) -> (StreamAccumulator, Result<(), Error>) {
        // In chunks of 7 bytes: every frame is split.
        decode_body(AnthropicStreamDecoder::default(), body.as_bytes(), &[7]).into_parts()
    }

    /// The documented event sequence, with cache usage and a tool call.
    pub(crate) const BODY: &str = concat!(
        "event: message_start\n",
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5-20250929\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":50,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":100000,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: ping\n",
        "data: {\"type\":\"ping\"}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Let me check\"}}\n\n",
        "event: content_block_stop\n",
        "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_01\",\"name\":\"get_weather\",\"input\":{}}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\": \"}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"Rome\\\"}\"}}\n\n",
        "event: content_block_stop\n",
        "data: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
        "event: message_delta\n",
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":500}}\n\n",
        "event: message_stop\n",
        "data: {\"type\":\"message_stop\"}\n\n",
    );

    #[test]
    fn cache_reads_stay_cache_reads_and_output_is_cumulative() {
        let (acc, r) = run(BODY);
        r.expect("complete");
        let resp = acc.into_response();
        assert_eq!(resp.text, "Let me check");
        assert_eq!(resp.model, "claude-sonnet-4-5-20250929");
        assert_eq!(resp.request_id.as_deref(), Some("msg_01"));
        assert_eq!(resp.finish_reason, Some(FinishReason::ToolCalls));
        assert_eq!(resp.usage.input_tokens, 50);
        assert_eq!(resp.usage.cache_read_tokens, 100_000);
        assert_eq!(resp.usage.output_tokens, 500);
        assert_eq!(resp.tool_calls.len(), 1);
        assert_eq!(resp.tool_calls[0].id, "toolu_01");
        assert_eq!(resp.tool_calls[0].arguments, "{\"city\": \"Rome\"}");
    }

    #[test]
    fn error_event_after_200_is_typed_and_retryable() {
        let body = concat!(
            "event: message_start\n",
            "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_02\",\"model\":\"claude-haiku-4-5\",\"usage\":{\"input_tokens\":10,\"output_tokens\":1}}}\n\n",
            "event: error\n",
            "data: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
        );
        let (acc, r) = run(body);
        let e = r.expect_err("error event");
        assert!(matches!(e, Error::Overloaded { status: 529, .. }), "{e:?}");
        // The input side is known: a dropped stream can still be priced.
        assert_eq!(acc.usage().map(|u| u.input_tokens), Some(10));
    }

    #[test]
    fn cut_before_message_stop_is_an_error() {
        let cut = &BODY[..BODY.find("event: message_delta").expect("delta")];
        let (acc, r) = run(cut);
        assert!(matches!(r, Err(Error::Connection { .. })), "{r:?}");
        assert!(!acc.is_done());
        assert_eq!(acc.usage().map(|u| u.cache_read_tokens), Some(100_000));
    }

    #[test]
    fn thinking_is_streamed_apart_from_text() {
        let body = concat!(
            "data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n",
            "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\n\n",
            "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"hmm\"}}\n\n",
            "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"sig\"}}\n\n",
            "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
            "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
            "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"42\"}}\n\n",
            "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":30}}\n\n",
            "data: {\"type\":\"message_stop\"}\n\n",
        );
        let (acc, r) = run(body);
        r.expect("complete");
        assert_eq!(acc.generated_text(), "hmm42");
        let resp = acc.into_response();
        assert_eq!(resp.text, "42");
        assert_eq!(resp.usage, Usage::new(5, 30));
        // The signed thinking block comes back for the next turn, before
        // the text, as unstreamed.
        assert_eq!(
            resp.parts,
            vec![
                ContentPart::Thinking {
                    text: "hmm".into(),
                    signature: Some("sig".into())
                },
                ContentPart::text("42"),
            ]
        );
    }
}
