//! Reading a batch job from JSONL, checked whole before anything is sent.

use std::collections::HashMap;
use std::fmt;

use serde_json::Value;

use crate::core::{BatchItem, BatchLimits};
use crate::pricing::PriceTable;
use crate::ChatRequest;

/// One problem of a job file, with its 1-based line number (0 for the
/// job as a whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// The 1-based line, or 0 for the whole job.
    pub line: usize,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(&self.message)
        } else {
            write!(f, "line {}: {}", self.line, self.message)
        }
    }
}

/// Every problem found in a job file (at most [`MAX_REPORTED`] are kept).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the batch input is not valid; nothing was uploaded:\n{}", .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
pub struct InputErrors(pub Vec<LineError>);

/// The most problems an [`InputErrors`] lists.
pub const MAX_REPORTED: usize = 20;

/// Reads a job: one request a line, as a neutral line
/// `{"custom_id": ..., "request": <ChatRequest>}` or a provider's native
/// batch line (OpenAI `{"custom_id", "method", "url", "body"}`, Anthropic
/// `{"custom_id", "params"}`, Gemini `{"key", "request"}`), read back
/// through the inverse of the provider's codec: tools, tool calls and
/// results, images and system prompts come through; what has no neutral
/// form is a line error saying what to do.
/// `model`, when given, replaces every request's model (and fills a
/// missing one). Blank lines are skipped.
///
/// Checked before anything is sent: every line parses, every custom id is
/// present and unique, every model is in `prices`, one model a batch where
/// the provider needs it, and the count and encoded size fit `limits`.
///
/// # Errors
///
/// [`InputErrors`] listing each problem with its line number.
///
/// ```
/// use costlayer::batch::parse_jsonl;
/// use costlayer::core::BatchLimits;
/// use costlayer::pricing::PriceTable;
///
/// let text = r#"{"custom_id": "a", "request": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}}
/// {"custom_id": "a", "request": {"model": "gpt-4o-mini", "messages": []}}"#;
/// let err = parse_jsonl(text, None, &BatchLimits::default(), PriceTable::embedded()).unwrap_err();
/// assert_eq!(err.0[0].line, 2);
/// assert!(err.0[0].message.contains("duplicate custom_id `a`"));
/// ```
pub fn parse_jsonl(
    text: &str,
    model: Option<&str>,
    limits: &BatchLimits,
    prices: &PriceTable,
) -> Result<Vec<BatchItem>, InputErrors> {
    let mut errors = Vec::new();
    let mut items = Vec::new();
    let mut lines_of: Vec<usize> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut size = 0usize;
    // The endpoint of the first native OpenAI line, and its line.
    let mut endpoint: Option<(String, usize)> = None;
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        if line.trim().is_empty() {
            continue;
        }
        size = size.saturating_add(line.len() + 1);
        match parse_line(line) {
            Ok((custom_id, mut req, url)) => {
                if let Some(url) = url {
                    if let Some(message) = endpoint_error(&url, endpoint.as_ref(), limits) {
                        errors.push(LineError { line: n, message });
                        continue;
                    }
                    endpoint.get_or_insert((url, n));
                }
                if let Some(m) = model {
                    req.model = m.into();
                }
                let Some(custom_id) = custom_id.filter(|c| !c.trim().is_empty()) else {
                    errors.push(LineError {
                        line: n,
                        message: "missing custom_id: give every line a unique `custom_id` (Gemini lines: `key`)".into(),
                    });
                    continue;
                };
                if let Some(first) = seen.get(&custom_id) {
                    errors.push(LineError {
                        line: n,
                        message: format!(
                            "duplicate custom_id `{custom_id}` (first on line {first}): results are joined on it, so make each one unique"
                        ),
                    });
                    continue;
                }
                seen.insert(custom_id.clone(), n);
                if req.model.trim().is_empty() {
                    errors.push(LineError {
                        line: n,
                        message: "no model: set `model` in the request, or pass --model".into(),
                    });
                    continue;
                }
                if prices.get(&req.model).is_none() {
                    errors.push(LineError {
                        line: n,
                        message: format!(
                            "unknown model `{}`: it has no price, so the job cannot be reserved at batch rates; fix the name or add it to a price file",
                            req.model
                        ),
                    });
                    continue;
                }
                if req.messages.is_empty() {
                    errors.push(LineError {
                        line: n,
                        message: "the request has no messages: add at least one".into(),
                    });
                    continue;
                }
                items.push(BatchItem {
                    custom_id,
                    request: req,
                });
                lines_of.push(n);
            }
            Err(message) => errors.push(LineError { line: n, message }),
        }
    }
    if items.is_empty() && errors.is_empty() {
        errors.push(LineError {
            line: 0,
            message: "the input has no requests: write one JSON request a line".into(),
        });
    }
    if limits.single_model {
        if let Some(first) = items.first() {
            for (item, n) in items.iter().zip(&lines_of) {
                if item.request.model != first.request.model {
                    errors.push(LineError {
                        line: *n,
                        message: format!(
                            "model `{}` differs from line {}'s `{}`: this provider runs one model a batch; split the job, or pass --model",
                            item.request.model, lines_of[0], first.request.model
                        ),
                    });
                    break;
                }
            }
        }
    }
    if items.len() > limits.max_requests {
        errors.push(LineError {
            line: 0,
            message: format!(
                "{} requests: over the provider's limit of {} a batch; split the job",
                items.len(),
                limits.max_requests
            ),
        });
    }
    if size > limits.max_bytes {
        errors.push(LineError {
            line: 0,
            message: format!(
                "{size} bytes: over the provider's limit of {} bytes a batch; split the job",
                limits.max_bytes
            ),
        });
    }
    if errors.is_empty() {
        Ok(items)
    } else {
        errors.truncate(MAX_REPORTED);
        Err(InputErrors(errors))
    }
}

/// Why a native OpenAI line for `url` cannot join the job, if it cannot:
/// one job has one endpoint (OpenAI's rule), the client's.
fn endpoint_error(
    url: &str,
    first: Option<&(String, usize)>,
    limits: &BatchLimits,
) -> Option<String> {
    if let Some(e) = limits.endpoint.filter(|e| *e != url) {
        return Some(format!(
            "the line targets {url} but this job runs on {e}: pass --api {} (in code, submit with {}), or change the line's `url`",
            if url == RESPONSES { "responses" } else { "chat" },
            if url == RESPONSES { "OpenAiResponses" } else { "OpenAi" },
        ));
    }
    first.filter(|(f, _)| f != url).map(|(first, line)| {
        format!(
            "`url` {url} differs from line {line}'s {first}: one OpenAI batch has one endpoint; split the job in two"
        )
    })
}

/// OpenAI's Chat Completions and Responses endpoints, as native lines name them.
const CHAT: &str = "/v1/chat/completions";
const RESPONSES: &str = "/v1/responses";

/// One line: its custom id (if any), the request, and the endpoint a
/// native OpenAI line names.
fn parse_line(line: &str) -> Result<(Option<String>, ChatRequest, Option<String>), String> {
    let v: Value = serde_json::from_str(line)
        .map_err(|e| format!("not JSON ({e}): write one JSON object a line"))?;
    let Value::Object(obj) = v else {
        return Err("not a JSON object: write one object a line".into());
    };
    let str_of = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_owned);
    if let Some(body) = obj.get("body") {
        // OpenAI: {"custom_id", "method": "POST", "url": "/v1/chat/completions" | "/v1/responses", "body"}
        let url = obj.get("url").and_then(Value::as_str);
        let req = match url {
            None | Some(CHAT) => super::native::openai_chat(body)?,
            Some(RESPONSES) => super::native::openai_responses(body)?,
            Some(other) => {
                return Err(format!(
                    "OpenAI line for `{other}`: only {CHAT} and {RESPONSES} batches are supported"
                ))
            }
        };
        return Ok((str_of("custom_id"), req, url.map(str::to_owned)));
    }
    if let Some(params) = obj.get("params") {
        // Anthropic: {"custom_id", "params"}
        return Ok((str_of("custom_id"), super::native::anthropic(params)?, None));
    }
    if let (Some(key), Some(req)) = (obj.get("key"), obj.get("request")) {
        // Gemini: {"key", "request": GenerateContentRequest}
        return Ok((
            key.as_str().map(str::to_owned),
            super::native::gemini(req)?,
            None,
        ));
    }
    let Some(req) = obj.get("request") else {
        return Err(
            "no `request`: write {\"custom_id\": ..., \"request\": {\"model\": ..., \"messages\": [...]}}"
                .into(),
        );
    };
    let req: ChatRequest = serde_json::from_value(req.clone())
        .map_err(|e| format!("the request is not a ChatRequest: {e}"))?;
    Ok((str_of("custom_id"), req, None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Message;

    fn parse(text: &str, limits: BatchLimits) -> Result<Vec<BatchItem>, InputErrors> {
        parse_jsonl(text, None, &limits, PriceTable::embedded())
    }

    #[test]
    fn native_lines_of_each_provider() {
        let text = r#"{"custom_id":"o","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi"}],"max_completion_tokens":9}}
{"custom_id":"a","params":{"model":"claude-haiku-4-5","max_tokens":7,"system":"Be terse.","messages":[{"role":"user","content":"Yo"}]}}
{"key":"g","request":{"model":"models/gemini-2.5-flash","contents":[{"role":"user","parts":[{"text":"He"},{"text":"y"}]}],"generationConfig":{"maxOutputTokens":5}}}
"#;
        let items = parse(text, BatchLimits::default()).expect("valid");
        assert_eq!(items.len(), 3);
        assert_eq!(items[0].request.max_tokens, Some(9));
        assert_eq!(items[1].request.system.as_deref(), Some("Be terse."));
        assert_eq!(items[2].custom_id, "g");
        assert_eq!(items[2].request.model, "gemini-2.5-flash");
        // Two text parts stay two, so the codec sends them as written.
        assert_eq!(
            items[2].request.messages,
            vec![Message::user(crate::Content::Parts(vec![
                crate::ContentPart::text("He"),
                crate::ContentPart::text("y")
            ]))]
        );
    }

    #[test]
    fn every_problem_has_its_line() {
        let text = "{\"custom_id\":\"a\",\"request\":{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}}\n\
                    {not json\n\
                    \n\
                    {\"request\":{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}}\n\
                    {\"custom_id\":\"a\",\"request\":{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}}\n\
                    {\"custom_id\":\"b\",\"request\":{\"model\":\"gpt-9-imaginary\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}}\n";
        let err = parse(text, BatchLimits::default()).expect_err("invalid");
        let lines: Vec<usize> = err.0.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 4, 5, 6], "{err}");
        assert!(err.0[0].message.contains("not JSON"));
        assert!(err.0[1].message.contains("missing custom_id"));
        assert!(err.0[2].message.contains("first on line 1"));
        assert!(err.0[3].message.contains("unknown model `gpt-9-imaginary`"));
        assert!(err.to_string().contains("nothing was uploaded"));
    }

    #[test]
    fn limits_count_size_and_one_model() {
        let line = |id: &str, m: &str| {
            format!("{{\"custom_id\":\"{id}\",\"request\":{{\"model\":\"{m}\",\"messages\":[{{\"role\":\"user\",\"content\":\"x\"}}]}}}}\n")
        };
        let text = line("a", "gemini-2.5-flash") + &line("b", "gemini-2.5-pro");
        let limits = BatchLimits::new(1, 100, std::time::Duration::from_secs(1)).single_model(true);
        let err = parse(&text, limits).expect_err("over");
        let s = err.to_string();
        assert!(s.contains("line 2: model `gemini-2.5-pro` differs"), "{s}");
        assert!(s.contains("over the provider's limit of 1 a batch"), "{s}");
        assert!(s.contains("over the provider's limit of 100 bytes"), "{s}");
        assert!(parse("", BatchLimits::default()).is_err());
        // --model overrides every line.
        let items = parse_jsonl(
            &text,
            Some("gemini-2.5-flash"),
            &limits.single_model(true),
            PriceTable::embedded(),
        );
        assert!(items.is_err_and(|e| !e.to_string().contains("differs")));
    }
}
