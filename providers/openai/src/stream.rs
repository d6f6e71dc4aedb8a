//! Streamed chat completions: `stream: true` with
//! `stream_options: {"include_usage": true}`, read as server-sent events.
//!
//! Each event is a `chat.completion.chunk` whose `choices[0].delta` holds
//! new text, refusal text or tool-call fragments (joined by `index`); the
//! last chunk before `data: [DONE]` has no choices and the usage of the
//! whole call (the same object, and so the same mapping, as an unstreamed
//! completion). An `{"error": ...}` payload in the stream is read as the
//! error it describes.

use std::time::SystemTime;

use bytes::Bytes;
use costlayer_core::sse::SseEvent;
use costlayer_core::stream::{bad_event, stream_cut};
use costlayer_core::{
    ChatDelta, ChatRequest, Error, HttpResponse, StreamCodec, StreamDecoder, ToolCallDelta,
    ToolCallKind, Usage,
};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::codec::{finish_reason, OpenAiCodec};
use crate::error::error_from_response;
use crate::usage::OpenAiUsage;

const PROVIDER: &str = "openai";

impl StreamCodec for OpenAiCodec {
    type Decoder = OpenAiStreamDecoder;

    fn encode_stream(&self, req: &ChatRequest) -> Result<http::Request<Bytes>, Error> {
        let mut body = self.body(req)?;
        if let Value::Object(map) = &mut body {
            map.insert("stream".into(), json!(true));
            // Without it the stream carries no usage and the call could not be priced.
            let opts = map.entry("stream_options").or_insert_with(|| json!({}));
            if let Value::Object(o) = opts {
                o.insert("include_usage".into(), json!(true));
            }
        }
        self.post("/chat/completions", &body)
    }

    fn stream_decoder(&self, _req: &ChatRequest) -> OpenAiStreamDecoder {
        OpenAiStreamDecoder::default()
    }
}

/// Reads a chat completion stream: deltas, tool-call fragments, the final
/// usage chunk and `[DONE]`.
#[derive(Debug, Default)]
pub struct OpenAiStreamDecoder {
    usage: Option<Usage>,
    raw_usage: Option<Value>,
    finished: bool,
    done: bool,
    chunks: u64,
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    id: Option<costlayer_core::SharedStr>,
    #[serde(default)]
    model: Option<costlayer_core::SharedStr>,
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    #[serde(default)]
    usage: Option<Value>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    delta: Option<ChunkDelta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct ChunkDelta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    reasoning_content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ChunkToolCall>>,
}

#[derive(Deserialize)]
struct ChunkToolCall {
    #[serde(default)]
    index: usize,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<ChunkFunction>,
    #[serde(default)]
    custom: Option<ChunkCustom>,
}

#[derive(Deserialize)]
struct ChunkFunction {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

#[derive(Deserialize)]
struct ChunkCustom {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    input: Option<String>,
}

impl StreamDecoder for OpenAiStreamDecoder {
    fn event(&mut self, ev: &SseEvent) -> Result<Option<ChatDelta>, Error> {
        let data = ev.data.trim();
        if data.is_empty() || self.done {
            return Ok(None);
        }
        if data == "[DONE]" {
            self.done = true;
            return Ok(Some(self.final_delta()));
        }
        self.chunks += 1;
        let chunk: Chunk = serde_json::from_str(data).map_err(|e| bad_event(PROVIDER, &e, data))?;
        if let Some(err) = chunk.error {
            return Err(stream_error(err));
        }
        let mut d = ChatDelta {
            model: chunk.model.filter(|m| !m.is_empty()),
            request_id: chunk.id,
            ..ChatDelta::default()
        };
        if let Some(choice) = chunk.choices.into_iter().next() {
            let delta = choice.delta.unwrap_or_default();
            if let Some(t) = delta.content {
                d.text = t;
            }
            if let Some(r) = delta.refusal {
                d.text.push_str(&r);
            }
            if let Some(r) = delta.reasoning_content {
                d.thinking = r;
            }
            for c in delta.tool_calls.unwrap_or_default() {
                let (name, arguments, kind) = match (c.function, c.custom) {
                    (Some(f), _) => (f.name, f.arguments.unwrap_or_default(), None),
                    (None, Some(c)) => (
                        c.name,
                        c.input.unwrap_or_default(),
                        Some(ToolCallKind::Custom),
                    ),
                    (None, None) => (None, String::new(), None),
                };
                d.tool_calls.push(ToolCallDelta {
                    index: c.index,
                    id: c.id,
                    name,
                    arguments,
                    kind,
                    ..ToolCallDelta::default()
                });
            }
            if let Some(r) = choice.finish_reason {
                d.finish_reason = Some(finish_reason(r));
                self.finished = true;
            }
        }
        if let Some(raw) = chunk.usage.filter(|u| !u.is_null()) {
            let parsed: OpenAiUsage =
                serde_json::from_value(raw.clone()).map_err(|e| bad_event(PROVIDER, &e, data))?;
            let usage = Usage::from(parsed);
            self.usage = Some(usage);
            self.raw_usage = Some(raw.clone());
            d.usage = Some(usage);
            d.raw_usage = Some(raw);
        }
        Ok(Some(d))
    }

    fn finish(&mut self) -> Result<Option<ChatDelta>, Error> {
        if self.done {
            return Ok(None);
        }
        // Some gateways drop the `[DONE]` line; a finished choice and the
        // usage chunk are the whole answer.
        if self.finished && self.usage.is_some() {
            self.done = true;
            return Ok(Some(self.final_delta()));
        }
        Err(stream_cut(PROVIDER, self.chunks))
    }
}

impl OpenAiStreamDecoder {
    fn final_delta(&self) -> ChatDelta {
        if self.usage.is_none() {
            tracing::warn!("OpenAI stream without a usage chunk: the call is recorded with zero tokens (does the server honour stream_options.include_usage?)");
        }
        ChatDelta {
            usage: Some(self.usage.unwrap_or_default()),
            raw_usage: self.raw_usage.clone(),
            done: true,
            ..ChatDelta::default()
        }
    }
}

/// The typed error of an `{"error": {...}}` event (sent after HTTP 200).
pub(crate) fn stream_error(err: Value) -> Error {
    let status = match err.get("code").and_then(Value::as_str) {
        Some("rate_limit_exceeded") => 429,
        Some("context_length_exceeded") | Some("invalid_request_error") => 400,
        // The Responses API's `invalid_prompt`, `invalid_image`, ...
        Some(c) if c.starts_with("invalid_") => 400,
        _ => match err.get("type").and_then(Value::as_str) {
            Some("invalid_request_error") => 400,
            Some("rate_limit_error") | Some("tokens") | Some("requests") => 429,
            _ => 500,
        },
    };
    let resp = HttpResponse {
        status: http::StatusCode::from_u16(status)
            .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR),
        headers: http::HeaderMap::new(),
        body: Bytes::from(json!({ "error": err }).to_string()),
    };
    error_from_response(&resp, SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use costlayer_core::stream::decode_body;
    use costlayer_core::{FinishReason, StreamAccumulator};

    fn run(body: &str) -> (StreamAccumulator, Result<(), Error>) {
        decode_body(OpenAiStreamDecoder::default(), body.as_bytes(), &[]).into_parts()
    }

    const BODY: &str = concat!(
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[],\"usage\":{\"prompt_tokens\":1200,\"completion_tokens\":7,\"total_tokens\":1207,\"prompt_tokens_details\":{\"cached_tokens\":1024},\"completion_tokens_details\":{\"reasoning_tokens\":0}}}\n\n",
        "data: [DONE]\n\n",
    );

    #[test]
    fn text_and_final_usage_as_unstreamed() {
        let (acc, r) = run(BODY);
        r.expect("complete");
        assert!(acc.is_done());
        let resp = acc.into_response();
        assert_eq!(resp.text, "Hello");
        assert_eq!(resp.finish_reason, Some(FinishReason::Stop));
        assert_eq!(resp.model, "gpt-4o-mini-2024-07-18");
        assert_eq!(resp.request_id.as_deref(), Some("chatcmpl-1"));
        // The same mapping as a completion: cached tokens out of input.
        assert_eq!(resp.usage.input_tokens, 176);
        assert_eq!(resp.usage.cache_read_tokens, 1024);
        assert_eq!(resp.usage.output_tokens, 7);
    }

    #[test]
    fn tool_call_fragments_join() {
        let body = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"city\\\":\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"Rome\\\"}\"}}]},\"finish_reason\":\"tool_calls\"}]}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":50,\"completion_tokens\":12}}\n\n",
            "data: [DONE]\n\n",
        );
        let (acc, r) = run(body);
        r.expect("complete");
        let resp = acc.into_response();
        assert_eq!(resp.tool_calls.len(), 1);
        assert_eq!(resp.tool_calls[0].id, "call_1");
        assert_eq!(resp.tool_calls[0].name, "get_weather");
        assert_eq!(resp.tool_calls[0].arguments, "{\"city\":\"Rome\"}");
        assert_eq!(resp.finish_reason, Some(FinishReason::ToolCalls));
        assert_eq!(resp.usage, Usage::new(50, 12));
    }

    #[test]
    fn cut_before_done_is_an_error_and_keeps_the_text() {
        let cut = &BODY[..BODY.find("data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[]").expect("usage chunk")];
        let (acc, r) = run(cut);
        assert!(matches!(r, Err(Error::Connection { .. })), "{r:?}");
        assert_eq!(acc.response().text, "Hello");
        assert!(!acc.is_done());
    }

    #[test]
    fn error_event_after_200_is_typed() {
        let body = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: {\"error\":{\"message\":\"The server had an error\",\"type\":\"server_error\",\"code\":null}}\n\n";
        let (acc, r) = run(body);
        let e = r.expect_err("error event");
        assert!(e.is_retryable(), "{e:?}");
        assert_eq!(acc.response().text, "Hi");
    }

    #[test]
    fn encode_stream_asks_for_usage() {
        let codec = OpenAiCodec::new(costlayer_core::ApiKey::new("sk-1"));
        let req = ChatRequest::new("gpt-4o-mini").message(costlayer_core::Message::user("hi"));
        let http = codec.encode_stream(&req).expect("encode");
        let body: Value = serde_json::from_slice(http.body()).expect("json");
        assert_eq!(body["stream"], json!(true));
        assert_eq!(body["stream_options"], json!({"include_usage": true}));
    }
}
