//! Streamed Responses API calls: `POST /v1/responses` with `stream: true`,
//! read as server-sent events.
//!
//! Event shapes as in the OpenAPI description of the API
//! (github.com/openai/openai-openapi, `openapi.yaml` at commit
//! f85dbe223d40e1a31cba812ab2d755c7e98a92a3: `ResponseStreamEvent` and the
//! `Response*Event` schemas it lists). Each frame is
//! `event: <type>` + `data: {"type": "<type>", "sequence_number": n, ...}`:
//!
//! | event | delta |
//! |---|---|
//! | `response.created`, `response.in_progress`, `response.queued` | none: the response id and model are kept for the first delta (so an error before any output can still be retried) |
//! | `response.output_text.delta`, `response.refusal.delta` | `text` |
//! | `response.reasoning_summary_text.delta`, `response.reasoning_text.delta` | `thinking` |
//! | `response.output_item.added` (`function_call`, `custom_tool_call`) | a tool call's first fragment: `call_id` as id, `name`, the item `id` |
//! | `response.function_call_arguments.delta`, `response.custom_tool_call_input.delta` | more of that call's arguments (joined by `output_index`) |
//! | `response.output_item.done` (`reasoning`, built-in tool calls, ...) | the whole item as a [`ContentPart::ProviderItem`], so the next request sends it back |
//! | `response.completed`, `response.incomplete` | the final delta: the usage of the whole call (cached and reasoning tokens), the finish reason, read from the embedded response exactly as an unstreamed answer |
//! | `response.failed` | the final delta with [`FinishReason::Failed`] when it carries usage (billed, as unstreamed); otherwise the typed error of its `error` |
//! | `error` (after HTTP 200) | the typed error of its `code` and `message` |
//!
//! Every other event (`response.content_part.*`, `*.done` texts,
//! annotations, built-in tool progress) adds nothing a delta carries.
//!
//! [`FinishReason::Failed`]: costlayer_core::FinishReason::Failed

use std::collections::HashMap;

use bytes::Bytes;
use costlayer_core::sse::SseEvent;
use costlayer_core::stream::{bad_event, stream_cut};
use costlayer_core::{
    ChatDelta, ChatRequest, ContentPart, Error, StreamCodec, StreamDecoder, ToolCallDelta,
    ToolCallKind,
};
use serde_json::{json, Value};

use crate::responses::{parse_response_body, str_of};
use crate::stream::stream_error;
use crate::OpenAiResponsesCodec;

const PROVIDER: &str = "openai";

impl StreamCodec for OpenAiResponsesCodec {
    type Decoder = OpenAiResponsesStreamDecoder;

    fn encode_stream(&self, req: &ChatRequest) -> Result<http::Request<Bytes>, Error> {
        let mut body = self.body(req)?;
        if let Value::Object(map) = &mut body {
            // The usage always comes in `response.completed`: nothing else to ask.
            map.insert("stream".into(), json!(true));
        }
        self.chat_codec().post("/responses", &body)
    }

    fn stream_decoder(&self, req: &ChatRequest) -> OpenAiResponsesStreamDecoder {
        OpenAiResponsesStreamDecoder::new(&req.model)
    }
}

/// Reads a Responses API stream (see the table in the module source, and
/// [`OpenAiResponses`](crate::OpenAiResponses)): text, reasoning summary
/// and tool-call deltas, then the final usage from `response.completed`.
///
/// ```
/// use costlayer_core::stream::decode_body;
/// use costlayer_openai::OpenAiResponsesStreamDecoder;
///
/// let body = concat!(
///     "event: response.created\n",
///     "data: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\",\"object\":\"response\",\"status\":\"in_progress\",\"model\":\"gpt-4.1-2025-04-14\",\"output\":[],\"usage\":null}}\n\n",
///     "event: response.output_text.delta\n",
///     "data: {\"type\":\"response.output_text.delta\",\"sequence_number\":1,\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\"Hi!\"}\n\n",
///     "event: response.completed\n",
///     "data: {\"type\":\"response.completed\",\"sequence_number\":2,\"response\":{\"id\":\"resp_1\",\"object\":\"response\",\"status\":\"completed\",\"model\":\"gpt-4.1-2025-04-14\",\"output\":[],\"usage\":{\"input_tokens\":2000,\"input_tokens_details\":{\"cached_tokens\":1500},\"output_tokens\":3,\"output_tokens_details\":{\"reasoning_tokens\":0},\"total_tokens\":2003}}}\n\n",
/// );
/// let read = decode_body(OpenAiResponsesStreamDecoder::new("gpt-4.1"), body.as_bytes(), &[]);
/// let resp = read.response();
/// assert_eq!(resp.text, "Hi!");
/// assert_eq!(resp.request_id.as_deref(), Some("resp_1"));
/// assert_eq!((resp.usage.input_tokens, resp.usage.cache_read_tokens), (500, 1500));
/// ```
#[derive(Debug, Default)]
pub struct OpenAiResponsesStreamDecoder {
    /// The request's model, for a response that does not name one.
    model: String,
    /// The response id and model from `response.created`, not yet sent.
    header: Option<(Option<String>, Option<String>)>,
    /// Tool calls by `output_index`: their index in the response, and
    /// whether argument deltas came for them.
    tools: HashMap<u64, (usize, bool)>,
    done: bool,
    events: u64,
}

impl OpenAiResponsesStreamDecoder {
    /// A decoder for a call to `model`.
    pub fn new(model: &str) -> Self {
        OpenAiResponsesStreamDecoder {
            model: model.to_owned(),
            ..Default::default()
        }
    }

    /// `d`, with the response id and model if they have not been sent yet.
    fn emit(&mut self, mut d: ChatDelta) -> Option<ChatDelta> {
        if let Some((id, model)) = self.header.take() {
            if d.request_id.is_none() {
                d.request_id = id.map(Into::into);
            }
            if d.model.is_none() {
                d.model = model.map(Into::into);
            }
        }
        Some(d)
    }

    fn tool_for(&mut self, output_index: u64) -> (usize, bool) {
        let next = self.tools.len();
        *self.tools.entry(output_index).or_insert((next, false))
    }

    fn final_event(&mut self, v: &Value, data: &str) -> Result<Option<ChatDelta>, Error> {
        let response = v.get("response").cloned().unwrap_or(Value::Null);
        let failed = response.get("status").and_then(Value::as_str) == Some("failed");
        let no_usage = response.get("usage").is_none_or(Value::is_null);
        if failed && no_usage {
            // Nothing to bill from: the cost layer estimates what was sent.
            let err = response.get("error").cloned().unwrap_or(Value::Null);
            return Err(stream_error(object_error(&err, "server_error")));
        }
        let body = serde_json::to_vec(&response).map_err(|e| bad_event(PROVIDER, &e, data))?;
        // The same reading, and so the same usage, as an unstreamed answer.
        let whole = parse_response_body(&self.model, &body, None)?;
        self.done = true;
        let d = ChatDelta {
            finish_reason: whole.finish_reason,
            usage: Some(whole.usage),
            raw_usage: whole.raw_usage,
            model: Some(whole.model),
            request_id: whole.request_id,
            done: true,
            ..ChatDelta::default()
        };
        Ok(self.emit(d))
    }
}

/// An error object as the chat stream's `{"error": ...}` payload reads it.
fn object_error(v: &Value, default_code: &str) -> Value {
    let get = |k: &str| v.get(k).filter(|x| !x.is_null()).cloned();
    json!({
        "code": get("code").unwrap_or_else(|| json!(default_code)),
        "message": get("message").unwrap_or_else(|| json!("the response failed")),
        "type": get("type"),
        "param": get("param"),
    })
}

impl StreamDecoder for OpenAiResponsesStreamDecoder {
    fn event(&mut self, ev: &SseEvent) -> Result<Option<ChatDelta>, Error> {
        let data = ev.data.trim();
        if data.is_empty() || self.done {
            return Ok(None);
        }
        self.events += 1;
        let v: Value = serde_json::from_str(data).map_err(|e| bad_event(PROVIDER, &e, data))?;
        let kind = v
            .get("type")
            .and_then(Value::as_str)
            .or(ev.event.as_deref())
            .unwrap_or_default()
            .to_owned();
        let text = |key: &str| str_of(&v, key).to_owned();
        let output_index = v.get("output_index").and_then(Value::as_u64).unwrap_or(0);
        match kind.as_str() {
            "response.created" | "response.in_progress" | "response.queued" => {
                let r = v.get("response").unwrap_or(&Value::Null);
                let id = r.get("id").and_then(Value::as_str).map(str::to_owned);
                let model = r
                    .get("model")
                    .and_then(Value::as_str)
                    .filter(|m| !m.is_empty())
                    .map(str::to_owned);
                match &mut self.header {
                    Some((i, m)) => {
                        *i = id.or(i.take());
                        *m = model.or(m.take());
                    }
                    None => self.header = Some((id, model)),
                }
                Ok(None)
            }
            "response.output_text.delta" | "response.refusal.delta" => {
                let d = ChatDelta {
                    text: text("delta"),
                    ..ChatDelta::default()
                };
                Ok(self.emit(d))
            }
            "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
                let d = ChatDelta {
                    thinking: text("delta"),
                    ..ChatDelta::default()
                };
                Ok(self.emit(d))
            }
            "response.output_item.added" => {
                let item = v.get("item").unwrap_or(&Value::Null);
                let (kind, args_key) = match item.get("type").and_then(Value::as_str) {
                    Some("function_call") => (None, "arguments"),
                    Some("custom_tool_call") => (Some(ToolCallKind::Custom), "input"),
                    _ => return Ok(None),
                };
                let (index, _) = self.tool_for(output_index);
                let arguments = str_of(item, args_key).to_owned();
                if !arguments.is_empty() {
                    self.tools.insert(output_index, (index, true));
                }
                let d = ChatDelta {
                    tool_calls: vec![ToolCallDelta {
                        index,
                        id: Some(str_of(item, "call_id").to_owned()),
                        name: Some(str_of(item, "name").to_owned()),
                        arguments,
                        kind,
                        item_id: item.get("id").and_then(Value::as_str).map(str::to_owned),
                        ..ToolCallDelta::default()
                    }],
                    ..ChatDelta::default()
                };
                Ok(self.emit(d))
            }
            "response.function_call_arguments.delta" | "response.custom_tool_call_input.delta" => {
                let (index, _) = self.tool_for(output_index);
                self.tools.insert(output_index, (index, true));
                let d = ChatDelta {
                    tool_calls: vec![ToolCallDelta {
                        index,
                        arguments: text("delta"),
                        ..ToolCallDelta::default()
                    }],
                    ..ChatDelta::default()
                };
                Ok(self.emit(d))
            }
            "response.output_item.done" => {
                let item = v.get("item").cloned().unwrap_or(Value::Null);
                match item.get("type").and_then(Value::as_str) {
                    // Its text came as deltas.
                    Some("message") | None => Ok(None),
                    Some(t @ ("function_call" | "custom_tool_call")) => {
                        // A server that skipped the `added` event or the
                        // argument deltas: the finished item has it all.
                        let known = self.tools.contains_key(&output_index);
                        let (index, seen) = self.tool_for(output_index);
                        let (key, kind) = if t == "function_call" {
                            ("arguments", None)
                        } else {
                            ("input", Some(ToolCallKind::Custom))
                        };
                        let arguments = str_of(&item, key).to_owned();
                        if seen || (known && arguments.is_empty()) {
                            return Ok(None);
                        }
                        self.tools.insert(output_index, (index, true));
                        let mut call = ToolCallDelta {
                            index,
                            arguments,
                            ..ToolCallDelta::default()
                        };
                        if !known {
                            call.id = Some(str_of(&item, "call_id").to_owned());
                            call.name = Some(str_of(&item, "name").to_owned());
                            call.kind = kind;
                            call.item_id =
                                item.get("id").and_then(Value::as_str).map(str::to_owned);
                        }
                        let d = ChatDelta {
                            tool_calls: vec![call],
                            ..ChatDelta::default()
                        };
                        Ok(self.emit(d))
                    }
                    // Reasoning (with its encrypted content), built-in tool
                    // calls: sent back verbatim on the next turn.
                    Some(_) => {
                        let d = ChatDelta {
                            parts: vec![ContentPart::provider_item(PROVIDER, item)],
                            ..ChatDelta::default()
                        };
                        Ok(self.emit(d))
                    }
                }
            }
            "response.completed" | "response.incomplete" | "response.failed" => {
                self.final_event(&v, data)
            }
            "error" => {
                // `{"type":"error","code","message","param"}`, or the chat
                // envelope `{"error": {...}}`.
                let err = match v.get("error").filter(|e| e.is_object()) {
                    Some(e) => object_error(e, "server_error"),
                    None => object_error(&v, "server_error"),
                };
                Err(stream_error(err))
            }
            _ => Ok(None),
        }
    }

    fn finish(&mut self) -> Result<Option<ChatDelta>, Error> {
        if self.done {
            return Ok(None);
        }
        Err(stream_cut(PROVIDER, self.events))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use costlayer_core::stream::decode_body;
    use costlayer_core::{ApiKey, Codec, FinishReason, HttpResponse, Message, ToolCall};

    /// A reasoning model calling a tool: a reasoning item with a summary,
    /// a function call streamed in fragments, cached and reasoning tokens.
    pub(crate) const TOOL_BODY: &str = concat!(
        "event: response.created\n",
        "data: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_7\",\"object\":\"response\",\"status\":\"in_progress\",\"model\":\"o4-mini-2025-04-16\",\"output\":[],\"usage\":null}}\n\n",
        "event: response.in_progress\n",
        "data: {\"type\":\"response.in_progress\",\"sequence_number\":1,\"response\":{\"id\":\"resp_7\",\"object\":\"response\",\"status\":\"in_progress\",\"model\":\"o4-mini-2025-04-16\",\"output\":[],\"usage\":null}}\n\n",
        "event: response.output_item.added\n",
        "data: {\"type\":\"response.output_item.added\",\"sequence_number\":2,\"output_index\":0,\"item\":{\"id\":\"rs_1\",\"type\":\"reasoning\",\"summary\":[]}}\n\n",
        "event: response.reasoning_summary_part.added\n",
        "data: {\"type\":\"response.reasoning_summary_part.added\",\"sequence_number\":3,\"item_id\":\"rs_1\",\"output_index\":0,\"summary_index\":0,\"part\":{\"type\":\"summary_text\",\"text\":\"\"}}\n\n",
        "event: response.reasoning_summary_text.delta\n",
        "data: {\"type\":\"response.reasoning_summary_text.delta\",\"sequence_number\":4,\"item_id\":\"rs_1\",\"output_index\":0,\"summary_index\":0,\"delta\":\"Need the weather.\"}\n\n",
        "event: response.output_item.done\n",
        "data: {\"type\":\"response.output_item.done\",\"sequence_number\":5,\"output_index\":0,\"item\":{\"id\":\"rs_1\",\"type\":\"reasoning\",\"summary\":[{\"type\":\"summary_text\",\"text\":\"Need the weather.\"}],\"encrypted_content\":\"gAAA\"}}\n\n",
        "event: response.output_item.added\n",
        "data: {\"type\":\"response.output_item.added\",\"sequence_number\":6,\"output_index\":1,\"item\":{\"id\":\"fc_1\",\"type\":\"function_call\",\"status\":\"in_progress\",\"arguments\":\"\",\"call_id\":\"call_1\",\"name\":\"get_weather\"}}\n\n",
        "event: response.function_call_arguments.delta\n",
        "data: {\"type\":\"response.function_call_arguments.delta\",\"sequence_number\":7,\"item_id\":\"fc_1\",\"output_index\":1,\"delta\":\"{\\\"city\\\":\"}\n\n",
        "event: response.function_call_arguments.delta\n",
        "data: {\"type\":\"response.function_call_arguments.delta\",\"sequence_number\":8,\"item_id\":\"fc_1\",\"output_index\":1,\"delta\":\"\\\"Oslo\\\"}\"}\n\n",
        "event: response.function_call_arguments.done\n",
        "data: {\"type\":\"response.function_call_arguments.done\",\"sequence_number\":9,\"item_id\":\"fc_1\",\"output_index\":1,\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Oslo\\\"}\"}\n\n",
        "event: response.output_item.done\n",
        "data: {\"type\":\"response.output_item.done\",\"sequence_number\":10,\"output_index\":1,\"item\":{\"id\":\"fc_1\",\"type\":\"function_call\",\"status\":\"completed\",\"arguments\":\"{\\\"city\\\":\\\"Oslo\\\"}\",\"call_id\":\"call_1\",\"name\":\"get_weather\"}}\n\n",
        "event: response.completed\n",
        "data: {\"type\":\"response.completed\",\"sequence_number\":11,\"response\":{\"id\":\"resp_7\",\"object\":\"response\",\"status\":\"completed\",\"model\":\"o4-mini-2025-04-16\",",
        "\"output\":[{\"id\":\"rs_1\",\"type\":\"reasoning\",\"summary\":[{\"type\":\"summary_text\",\"text\":\"Need the weather.\"}],\"encrypted_content\":\"gAAA\"},",
        "{\"id\":\"fc_1\",\"type\":\"function_call\",\"status\":\"completed\",\"arguments\":\"{\\\"city\\\":\\\"Oslo\\\"}\",\"call_id\":\"call_1\",\"name\":\"get_weather\"}],",
        "\"usage\":{\"input_tokens\":2048,\"input_tokens_details\":{\"cached_tokens\":1024},\"output_tokens\":300,\"output_tokens_details\":{\"reasoning_tokens\":256},\"total_tokens\":2348}}}\n\n",
    );

    fn run(body: &str, chunks: &[usize]) -> costlayer_core::stream::DecodedBody {
        decode_body(
            OpenAiResponsesStreamDecoder::new("o4-mini"),
            body.as_bytes(),
            chunks,
        )
    }

    /// The `response` object of the body's last event, as an unstreamed answer.
    fn unstreamed(body: &str) -> costlayer_core::ChatResponse {
        let (_, last) = body.trim_end().rsplit_once("data: ").expect("an event");
        let v: Value = serde_json::from_str(last).expect("json");
        let codec = OpenAiResponsesCodec::new(ApiKey::new("k"));
        let resp = HttpResponse {
            status: http::StatusCode::OK,
            headers: http::HeaderMap::new(),
            body: Bytes::from(v["response"].to_string()),
        };
        codec
            .decode(&ChatRequest::new("o4-mini"), resp)
            .expect("decodes")
    }

    #[test]
    fn the_streamed_answer_equals_the_unstreamed_one() {
        let whole = unstreamed(TOOL_BODY);
        for chunks in [&[][..], &[1], &[7, 3, 64], &[4096]] {
            let read = run(TOOL_BODY, chunks);
            assert!(read.error.is_none(), "{:?}", read.error);
            assert!(read.is_done());
            let acc = read.accumulator();
            assert_eq!(
                acc.generated_text(),
                "Need the weather.get_weather{\"city\":\"Oslo\"}"
            );
            let resp = read.response();
            assert_eq!(resp.usage, whole.usage);
            assert_eq!(
                (
                    resp.usage.input_tokens,
                    resp.usage.cache_read_tokens,
                    resp.usage.output_tokens,
                    resp.usage.reasoning_tokens
                ),
                (1024, 1024, 300, 256)
            );
            assert_eq!(resp.raw_usage, whole.raw_usage);
            assert_eq!(resp.tool_calls, whole.tool_calls);
            assert_eq!(
                resp.tool_calls,
                vec![
                    ToolCall::function("call_1", "get_weather", r#"{"city":"Oslo"}"#)
                        .with_item_id("fc_1")
                ]
            );
            assert_eq!(
                resp.parts, whole.parts,
                "the reasoning item, for the next turn"
            );
            assert_eq!(resp.finish_reason, Some(FinishReason::ToolCalls));
            assert_eq!(resp.model, "o4-mini-2025-04-16");
            assert_eq!(resp.request_id.as_deref(), Some("resp_7"));
        }
    }

    #[test]
    fn the_first_delta_carries_the_response_id_and_model() {
        let read = run(TOOL_BODY, &[]);
        let first = &read.deltas[0];
        assert_eq!(first.thinking, "Need the weather.");
        assert_eq!(first.request_id.as_deref(), Some("resp_7"));
        assert_eq!(first.model.as_deref(), Some("o4-mini-2025-04-16"));
        assert!(read.deltas[1..]
            .iter()
            .all(|d| d.done || d.request_id.is_none()));
    }

    #[test]
    fn text_refusal_and_incomplete() {
        let body = concat!(
            "event: response.created\n",
            "data: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_8\",\"object\":\"response\",\"status\":\"in_progress\",\"model\":\"gpt-4.1-2025-04-14\",\"output\":[]}}\n\n",
            "event: response.output_text.delta\n",
            "data: {\"type\":\"response.output_text.delta\",\"sequence_number\":1,\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\"Once upon\"}\n\n",
            "event: response.output_text.delta\n",
            "data: {\"type\":\"response.output_text.delta\",\"sequence_number\":2,\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\" a time\"}\n\n",
            "event: response.output_item.done\n",
            "data: {\"type\":\"response.output_item.done\",\"sequence_number\":3,\"output_index\":0,\"item\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":\"Once upon a time\",\"annotations\":[]}]}}\n\n",
            "event: response.incomplete\n",
            "data: {\"type\":\"response.incomplete\",\"sequence_number\":4,\"response\":{\"id\":\"resp_8\",\"object\":\"response\",\"status\":\"incomplete\",\"incomplete_details\":{\"reason\":\"max_output_tokens\"},\"model\":\"gpt-4.1-2025-04-14\",\"output\":[{\"id\":\"msg_1\",\"type\":\"message\",\"content\":[{\"type\":\"output_text\",\"text\":\"Once upon a time\"}]}],\"usage\":{\"input_tokens\":12,\"output_tokens\":4,\"total_tokens\":16}}}\n\n",
        );
        let read = run(body, &[5]);
        assert!(read.is_done(), "{:?}", read.error);
        let resp = read.response();
        assert_eq!(resp.text, "Once upon a time");
        assert!(resp.parts.is_empty(), "plain text keeps no parts");
        assert_eq!(resp.finish_reason, Some(FinishReason::Length));
        let whole = unstreamed(body);
        assert_eq!(
            (
                &resp.text,
                resp.usage,
                &resp.model,
                &resp.request_id,
                &resp.raw_usage
            ),
            (
                &whole.text,
                whole.usage,
                &whole.model,
                &whole.request_id,
                &whole.raw_usage
            )
        );
    }

    #[test]
    fn failed_without_usage_and_error_after_200_are_typed() {
        let created = "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_9\",\"status\":\"in_progress\",\"output\":[]}}\n\n";
        let text = "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":1,\"output_index\":0,\"content_index\":0,\"delta\":\"Hi\"}\n\n";
        let failed = "event: response.failed\ndata: {\"type\":\"response.failed\",\"sequence_number\":2,\"response\":{\"id\":\"resp_9\",\"object\":\"response\",\"status\":\"failed\",\"error\":{\"code\":\"server_error\",\"message\":\"The model failed to generate a response.\"},\"output\":[],\"usage\":null}}\n\n";
        let read = run(&format!("{created}{text}{failed}"), &[]);
        let e = read.error.as_ref().expect("failed");
        assert!(e.is_retryable(), "{e:?}");
        assert!(e.to_string().contains("failed to generate"), "{e}");
        assert_eq!(read.response().text, "Hi");
        assert!(!read.is_done());

        let error = "event: error\ndata: {\"type\":\"error\",\"code\":\"rate_limit_exceeded\",\"message\":\"Rate limit reached\",\"param\":null,\"sequence_number\":2}\n\n";
        let read = run(&format!("{created}{text}{error}"), &[3]);
        assert!(
            matches!(read.error, Some(Error::RateLimited { .. })),
            "{:?}",
            read.error
        );
        let error = "event: error\ndata: {\"type\":\"error\",\"code\":\"invalid_prompt\",\"message\":\"Bad prompt\",\"param\":null,\"sequence_number\":1}\n\n";
        let read = run(&format!("{created}{error}"), &[]);
        let e = read.error.expect("error");
        assert!(!e.is_retryable(), "{e:?}");
        assert!(read.deltas.is_empty(), "nothing reached the caller");
    }

    #[test]
    fn failed_with_usage_is_billed_as_unstreamed() {
        let body = "event: response.failed\ndata: {\"type\":\"response.failed\",\"sequence_number\":1,\"response\":{\"id\":\"resp_10\",\"object\":\"response\",\"status\":\"failed\",\"error\":{\"code\":\"server_error\",\"message\":\"x\"},\"output\":[],\"usage\":{\"input_tokens\":100,\"output_tokens\":20,\"total_tokens\":120}}}\n\n";
        let read = run(body, &[]);
        assert!(read.is_done());
        let resp = read.response();
        assert_eq!(
            resp.finish_reason,
            Some(FinishReason::Failed("server_error".into()))
        );
        assert_eq!(resp.usage, unstreamed(body).usage);
        assert_eq!(resp.usage.output_tokens, 20);
    }

    #[test]
    fn cut_before_completed_is_a_cut_and_keeps_what_came() {
        let cut = &TOOL_BODY[..TOOL_BODY
            .find("event: response.completed")
            .expect("completed")];
        let read = run(cut, &[11]);
        assert!(
            matches!(read.error, Some(Error::Connection { .. })),
            "{:?}",
            read.error
        );
        assert!(!read.is_done());
        assert_eq!(
            read.response().tool_calls[0].arguments,
            r#"{"city":"Oslo"}"#
        );
        assert!(read.accumulator().usage().is_none());
    }

    #[test]
    fn arguments_only_in_the_finished_item_are_kept() {
        let body = concat!(
            "data: {\"type\":\"response.output_item.done\",\"output_index\":0,\"item\":{\"id\":\"ctc_1\",\"type\":\"custom_tool_call\",\"call_id\":\"call_2\",\"name\":\"grep\",\"input\":\"needle\"}}\n\n",
            "data: {\"type\":\"response.completed\",\"response\":{\"object\":\"response\",\"status\":\"completed\",\"output\":[{\"id\":\"ctc_1\",\"type\":\"custom_tool_call\",\"call_id\":\"call_2\",\"name\":\"grep\",\"input\":\"needle\"}],\"usage\":{\"input_tokens\":5,\"output_tokens\":2}}}\n\n",
        );
        let read = run(body, &[]);
        assert!(read.is_done(), "{:?}", read.error);
        assert_eq!(
            read.response().tool_calls,
            vec![ToolCall::custom("call_2", "grep", "needle").with_item_id("ctc_1")]
        );
    }

    #[test]
    fn encode_stream_sets_stream_on_the_responses_body() {
        let codec = OpenAiResponsesCodec::new(ApiKey::new("sk-1"));
        let req = ChatRequest::new("gpt-4.1").message(Message::user("hi"));
        let http = codec.encode_stream(&req).expect("encode");
        assert!(http.uri().to_string().ends_with("/v1/responses"));
        let body: Value = serde_json::from_slice(http.body()).expect("json");
        assert_eq!(body["stream"], json!(true));
        assert_eq!(body["input"][0]["content"], json!("hi"));
        assert!(body.get("stream_options").is_none());
    }
}
