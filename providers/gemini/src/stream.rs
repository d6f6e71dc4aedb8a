//! Streamed `models/{model}:streamGenerateContent?alt=sse`.
//!
//! Each event's data is a whole `GenerateContentResponse` holding the new
//! parts, so each is read with the same [`GeminiCodec::parse_response`] as
//! an unstreamed answer (finish reasons, tool calls and usage mapping are
//! one code). `usageMetadata` on a chunk is the cumulative usage so far;
//! the last chunk's is final. Gemini sends no end marker: the stream is
//! complete when the body ends after a chunk with a `finishReason`.
//! Thought-summary parts (`"thought": true`) are streamed as thinking. An
//! `{"error": {...}}` payload ends the stream with the typed error.

use std::time::SystemTime;

use bytes::Bytes;
use costlayer_core::sse::SseEvent;
use costlayer_core::stream::{bad_event, stream_cut};
use costlayer_core::{
    ChatDelta, ChatRequest, Error, HttpResponse, StreamCodec, StreamDecoder, ToolCallDelta, Usage,
};
use serde_json::Value;

use crate::codec::GeminiCodec;
use crate::error::error_from_response;

const PROVIDER: &str = "gemini";

impl StreamCodec for GeminiCodec {
    type Decoder = GeminiStreamDecoder;

    fn encode_stream(&self, req: &ChatRequest) -> Result<http::Request<Bytes>, Error> {
        let url = format!(
            "{}?alt=sse",
            self.model_url(&req.model, "streamGenerateContent")?
        );
        self.post(url, &self.body(req)?)
    }

    fn stream_decoder(&self, req: &ChatRequest) -> GeminiStreamDecoder {
        GeminiStreamDecoder {
            codec: self.clone(),
            req: req.clone(),
            usage: None,
            raw_usage: None,
            tools: 0,
            finished: false,
            done: false,
            chunks: 0,
        }
    }
}

/// Reads a `streamGenerateContent` stream: each chunk through the codec's own
/// `parse_response`, complete when the body ends after a `finishReason`.
#[derive(Debug)]
pub struct GeminiStreamDecoder {
    codec: GeminiCodec,
    req: ChatRequest,
    usage: Option<Usage>,
    raw_usage: Option<Value>,
    tools: usize,
    finished: bool,
    done: bool,
    chunks: u64,
}

impl StreamDecoder for GeminiStreamDecoder {
    fn event(&mut self, ev: &SseEvent) -> Result<Option<ChatDelta>, Error> {
        let data = ev.data.trim();
        if data.is_empty() || self.done {
            return Ok(None);
        }
        self.chunks += 1;
        let mut v: Value = serde_json::from_str(data).map_err(|e| bad_event(PROVIDER, &e, data))?;
        if let Some(err) = v.get("error") {
            return Err(stream_error(err));
        }
        let has_usage = v.get("usageMetadata").is_some_and(|u| !u.is_null());
        if !has_usage {
            // Read the parts without the "no usage" warning of a whole answer.
            v["usageMetadata"] = serde_json::json!({});
        }
        let thinking: String = v
            .pointer("/candidates/0/content/parts")
            .and_then(Value::as_array)
            .map(|parts| {
                parts
                    .iter()
                    .filter(|p| p.get("thought").and_then(Value::as_bool) == Some(true))
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect()
            })
            .unwrap_or_default();
        let bytes = serde_json::to_vec(&v).map_err(|e| bad_event(PROVIDER, &e, data))?;
        let resp = self.codec.parse_response(&self.req, &bytes)?;
        let mut d = ChatDelta {
            text: resp.text,
            thinking,
            // Thought parts, signatures and Gemini items, with the text
            // around them, for the next turn.
            parts: resp.parts,
            model: Some(resp.model).filter(|m| !m.is_empty()),
            request_id: resp.request_id,
            ..ChatDelta::default()
        };
        for t in resp.tool_calls {
            d.tool_calls.push(ToolCallDelta {
                index: self.tools,
                id: Some(t.id),
                name: Some(t.name),
                arguments: t.arguments,
                kind: Some(t.kind),
                signature: t.signature,
                item_id: t.item_id,
            });
            self.tools += 1;
        }
        if let Some(f) = resp.finish_reason {
            self.finished = true;
            d.finish_reason = Some(f);
        }
        if has_usage {
            self.usage = Some(resp.usage);
            self.raw_usage.clone_from(&resp.raw_usage);
            d.usage = Some(resp.usage);
            d.raw_usage = resp.raw_usage;
        }
        Ok(Some(d))
    }

    fn finish(&mut self) -> Result<Option<ChatDelta>, Error> {
        if self.done {
            return Ok(None);
        }
        if !self.finished {
            return Err(stream_cut(PROVIDER, self.chunks));
        }
        self.done = true;
        if self.usage.is_none() {
            tracing::warn!(model = %self.req.model, "Gemini stream without usageMetadata: the call is recorded with zero tokens");
        }
        Ok(Some(ChatDelta {
            usage: Some(self.usage.unwrap_or_default()),
            raw_usage: self.raw_usage.clone(),
            done: true,
            ..ChatDelta::default()
        }))
    }
}

/// The typed error of an `{"error": {...}}` chunk, read as the error body
/// it is, with its `code` as the status.
fn stream_error(err: &Value) -> Error {
    let status = err
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .and_then(|c| http::StatusCode::from_u16(c).ok())
        .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let resp = HttpResponse {
        status,
        headers: http::HeaderMap::new(),
        body: Bytes::from(serde_json::json!({ "error": err }).to_string()),
    };
    error_from_response(&resp, SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use costlayer_core::stream::decode_body;
    use costlayer_core::{ApiKey, FinishReason, Message, StreamAccumulator};

    fn run(body: &str) -> (StreamAccumulator, Result<(), Error>) {
        let codec = GeminiCodec::new(ApiKey::new("k"));
        let req = ChatRequest::new("gemini-2.5-flash").message(Message::user("hi"));
        decode_body(codec.stream_decoder(&req), body.as_bytes(), &[]).into_parts()
    }

    const BODY: &str = concat!(
        "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"thinking...\",\"thought\":true}],\"role\":\"model\"},\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":1200,\"cachedContentTokenCount\":1000,\"totalTokenCount\":1210,\"thoughtsTokenCount\":10},\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"r1\"}\r\n\r\n",
        "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hel\"}],\"role\":\"model\"},\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":1200,\"cachedContentTokenCount\":1000,\"candidatesTokenCount\":2,\"totalTokenCount\":1212,\"thoughtsTokenCount\":10},\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"r1\"}\r\n\r\n",
        "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"lo\"}],\"role\":\"model\"},\"finishReason\":\"STOP\",\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":1200,\"cachedContentTokenCount\":1000,\"candidatesTokenCount\":4,\"totalTokenCount\":1214,\"thoughtsTokenCount\":10},\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"r1\"}\r\n\r\n",
    );

    #[test]
    fn last_usage_is_final_and_thoughts_are_output() {
        let (acc, r) = run(BODY);
        r.expect("complete");
        assert_eq!(acc.generated_text(), "thinking...Hello");
        let resp = acc.into_response();
        assert_eq!(resp.text, "Hello");
        assert_eq!(resp.finish_reason, Some(FinishReason::Stop));
        assert_eq!(resp.usage.input_tokens, 200);
        assert_eq!(resp.usage.cache_read_tokens, 1000);
        assert_eq!(resp.usage.output_tokens, 14); // candidates + thoughts
        assert_eq!(resp.request_id.as_deref(), Some("r1"));
    }

    #[test]
    fn no_finish_reason_before_the_end_is_a_cut() {
        let cut = &BODY[..BODY.rfind("data: ").expect("last chunk")];
        let (acc, r) = run(cut);
        assert!(matches!(r, Err(Error::Connection { .. })), "{r:?}");
        assert_eq!(acc.response().text, "Hel");
        assert_eq!(acc.usage().map(|u| u.input_tokens), Some(200));
    }

    #[test]
    fn error_chunk_is_typed() {
        let body = "data: {\"error\":{\"code\":503,\"message\":\"The model is overloaded.\",\"status\":\"UNAVAILABLE\"}}\n\n";
        let (_, r) = run(body);
        let e = r.expect_err("error chunk");
        assert!(e.is_retryable(), "{e:?}");
    }

    #[test]
    fn function_calls_get_ordinals_across_chunks() {
        let body = concat!(
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"a\",\"args\":{\"x\":1}}}]}}]}\n\n",
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"b\",\"args\":{}}}]},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":9,\"candidatesTokenCount\":3}}\n\n",
        );
        let (acc, r) = run(body);
        r.expect("complete");
        let resp = acc.into_response();
        assert_eq!(resp.tool_calls.len(), 2);
        assert_eq!(resp.tool_calls[0].name, "a");
        assert_eq!(resp.tool_calls[0].arguments, "{\"x\":1}");
        assert_eq!(resp.tool_calls[1].name, "b");
        assert_eq!(resp.usage, Usage::new(9, 3));
    }

    #[test]
    fn thought_signatures_survive_the_stream() {
        let body = concat!(
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"plan\",\"thought\":true,\"thoughtSignature\":\"c2lnMQ==\"}]}}]}\n\n",
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"get_weather\",\"args\":{\"city\":\"Rome\"}},\"thoughtSignature\":\"c2lnMg==\"}]},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":9,\"candidatesTokenCount\":3}}\n\n",
        );
        let (acc, r) = run(body);
        r.expect("complete");
        let resp = acc.into_response();
        assert_eq!(resp.tool_calls[0].signature.as_deref(), Some("c2lnMg=="));
        assert!(
            resp.parts.iter().any(|p| matches!(
                p,
                costlayer_core::ContentPart::Thinking { signature: Some(s), .. } if s == "c2lnMQ=="
            )),
            "{:?}",
            resp.parts
        );
        // The next turn carries both back.
        let m = resp.message();
        assert_eq!(m.tool_calls[0].signature.as_deref(), Some("c2lnMg=="));
    }

    #[test]
    fn encode_stream_uses_sse() {
        let codec = GeminiCodec::new(ApiKey::new("k"));
        let req = ChatRequest::new("gemini-2.5-flash").message(Message::user("hi"));
        let http = codec.encode_stream(&req).expect("encode");
        assert!(
            http.uri()
                .to_string()
                .ends_with("/models/gemini-2.5-flash:streamGenerateContent?alt=sse"),
            "{}",
            http.uri()
        );
    }
}
