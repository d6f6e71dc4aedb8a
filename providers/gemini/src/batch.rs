//! The Batch API (`models/{model}:batchGenerateContent`, `batches/{id}`)
//! as a [`BatchProvider`].
//!
//! - **Submit**: one model per batch (the model is in the URL). Requests up
//!   to [`INLINE_BATCH_LIMIT`] bytes of JSON go inline
//!   (`input_config.requests.requests[]`, each `{request, metadata: {key}}`);
//!   a larger job is uploaded as JSONL (`{"key", "request"}` a line) through
//!   the resumable Files API and named by `input_config.file_name`.
//! - **Status**: the long-running operation `batches/{id}`; its
//!   `metadata.state` (`BATCH_STATE_*` or `JOB_STATE_*`) and
//!   `metadata.batchStats` (int64 counts, sent as strings).
//! - **Results**: `response.inlinedResponses.inlinedResponses[]` (or
//!   `metadata.output...`), in input order, or the `responsesFile`
//!   downloaded from `download/v1beta/{file}:download?alt=media`.
//!
//! Sources: ai.google.dev/gemini-api/docs/batch-api; ai.google.dev/api/batch-api;
//! google-genai `batches.py`.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use costlayer_core::transport::body_snippet;
use costlayer_core::{
    BatchItem, BatchLimits, BatchProvider, BatchResult, BatchState, BatchStatus, ChatRequest,
    Error, HttpResponse, Mode,
};
use serde_json::{json, Value};

use crate::error::error_from_response;
use crate::Gemini;

const PROVIDER: &str = "gemini";

/// The largest inline `batchGenerateContent` body, 20 MB (ai.google.dev,
/// batch API: "inline requests ... under 20MB").
pub const INLINE_BATCH_LIMIT: usize = 20 * 1000 * 1000;

/// The bytes of an input file sent in one upload request: 8 MiB, the
/// google-genai SDK's `CHUNK_SIZE` (python-genai `_api_client.py`).
pub const UPLOAD_CHUNK: usize = 8 * 1024 * 1024;

/// How many times in a row a chunk (or the offset query after it) may
/// fail before the upload gives up.
const UPLOAD_ATTEMPTS: u32 = 4;

/// A Gemini batch's requests must fit in a 2 GB input file.
const FILE_LIMIT: usize = 2 * 1000 * 1000 * 1000;

fn decode(resp: &HttpResponse, what: &str) -> Result<Value, Error> {
    if !resp.status.is_success() {
        return Err(error_from_response(resp, SystemTime::now()));
    }
    serde_json::from_slice(&resp.body).map_err(|e| Error::Decode {
        provider: PROVIDER.into(),
        message: format!("not a {what}: {e}"),
        body_snippet: body_snippet(&resp.body, 200),
    })
}

/// `batches/abc` or `abc` to `batches/abc`, checked.
fn batch_name(batch_id: &str) -> Result<String, Error> {
    let id = batch_id.strip_prefix("batches/").unwrap_or(batch_id);
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(Error::config(format!(
            "invalid Gemini batch id {batch_id:?}: use the name submit() returned (batches/…)"
        )));
    }
    Ok(format!("batches/{id}"))
}

/// A count sent as an int64 string (`"12"`) or a number.
fn count(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        v => v.as_u64().unwrap_or(0),
    }
}

/// The batch object of an operation (its `metadata`), or the object itself.
fn batch_of(v: &Value) -> &Value {
    v.get("metadata").filter(|m| m.is_object()).unwrap_or(v)
}

fn state_of(s: &str) -> BatchState {
    let s = s
        .strip_prefix("BATCH_STATE_")
        .or_else(|| s.strip_prefix("JOB_STATE_"))
        .unwrap_or(s);
    match s {
        "PENDING" | "QUEUED" | "UNSPECIFIED" => BatchState::Validating,
        "SUCCEEDED" => BatchState::Completed,
        "FAILED" => BatchState::Failed,
        "CANCELLED" => BatchState::Cancelled,
        "CANCELLING" => BatchState::Cancelling,
        "EXPIRED" => BatchState::Expired,
        // RUNNING, and any state added later: not finished.
        _ => BatchState::InProgress,
    }
}

fn status_of(op: &Value) -> BatchStatus {
    let b = batch_of(op);
    let name = op
        .get("name")
        .or_else(|| b.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut state = state_of(b.get("state").and_then(Value::as_str).unwrap_or_default());
    // A finished operation without a state is read by its outcome.
    if op.get("done").and_then(Value::as_bool) == Some(true) && !state.is_terminal() {
        state = if op.get("error").is_some() {
            BatchState::Failed
        } else {
            BatchState::Completed
        };
    }
    let stats = &b["batchStats"];
    BatchStatus::new(name, state, count(&stats["requestCount"])).counts(
        count(&stats["successfulRequestCount"]),
        count(&stats["failedRequestCount"]),
    )
}

/// The batch output: `response` of the operation, else `metadata.output`.
fn output_of(op: &Value) -> Option<&Value> {
    op.get("response")
        .filter(|r| r.get("inlinedResponses").is_some() || r.get("responsesFile").is_some())
        .or_else(|| batch_of(op).get("output"))
}

/// The HTTP status a google.rpc status name stands for.
/// `x-goog-upload-status` of an upload answer, lower-cased.
fn upload_status(resp: &HttpResponse) -> Option<String> {
    resp.headers
        .get("x-goog-upload-status")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
}

fn status_code(err: &Value) -> http::StatusCode {
    let code = err.get("code").and_then(Value::as_u64).unwrap_or(0);
    let code = match (code, err.get("status").and_then(Value::as_str)) {
        (c @ 400..=599, _) => c as u16,
        (_, Some("INVALID_ARGUMENT" | "FAILED_PRECONDITION")) | (3 | 9, _) => 400,
        (_, Some("PERMISSION_DENIED")) | (7, _) => 403,
        (_, Some("NOT_FOUND")) | (5, _) => 404,
        (_, Some("RESOURCE_EXHAUSTED")) | (8, _) => 429,
        (_, Some("UNAVAILABLE")) | (14, _) => 503,
        (_, Some("DEADLINE_EXCEEDED")) | (4, _) => 504,
        _ => 500,
    };
    http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR)
}

/// Submits, polls, reads and cancels Gemini batches. Results are priced at
/// batch rates: every successful response carries [`Mode::Batch`].
#[async_trait]
impl BatchProvider for Gemini {
    async fn submit(&self, items: Vec<BatchItem>) -> Result<String, Error> {
        let Some(first) = items.first() else {
            return Err(Error::config(
                "a batch needs at least one request: pass one or more BatchItems",
            ));
        };
        let model = first.request.model.clone();
        if let Some(other) = items.iter().find(|i| i.request.model != model) {
            return Err(Error::config(format!(
                "a Gemini batch runs one model: `{}` asks for {} but `{}` for {}; split the job by model",
                first.custom_id, model, other.custom_id, other.request.model
            )));
        }
        let mut inline = Vec::with_capacity(items.len());
        let mut size = 0usize;
        for item in &items {
            let r = json!({"request": self.codec().body(&item.request)?, "metadata": {"key": item.custom_id}});
            size = size.saturating_add(r.to_string().len() + 1);
            inline.push(r);
        }
        let display_name = format!("costlayer-{}", first.custom_id);
        let input_config = if size <= self.inline_limit {
            json!({"requests": {"requests": inline}})
        } else {
            json!({"file_name": self.upload_jsonl(&items, &display_name).await?})
        };
        let url = self.codec().model_url(&model, "batchGenerateContent")?;
        let body = json!({"batch": {"display_name": display_name, "input_config": input_config}});
        let op = decode(
            &self.get_ref().send(self.codec().post(url, &body)?).await?,
            "batch operation",
        )?;
        let status = status_of(&op);
        if status.id.is_empty() {
            return Err(Error::Decode {
                provider: PROVIDER.into(),
                message: "the batch operation has no name".into(),
                body_snippet: body_snippet(op.to_string().as_bytes(), 200),
            });
        }
        Ok(status.id)
    }

    async fn status(&self, batch_id: &str) -> Result<BatchStatus, Error> {
        let op = self.operation(batch_id).await?;
        let mut status = status_of(&op);
        if status.id.is_empty() {
            status.id = batch_name(batch_id)?;
        }
        Ok(status)
    }

    async fn results(&self, batch_id: &str) -> Result<Vec<BatchResult>, Error> {
        let op = self.operation(batch_id).await?;
        let Some(output) = output_of(&op) else {
            return Ok(Vec::new());
        };
        if let Some(items) = output
            .pointer("/inlinedResponses/inlinedResponses")
            .and_then(Value::as_array)
        {
            return Ok(items
                .iter()
                .enumerate()
                .map(|(n, item)| self.result_item(n, item))
                .collect());
        }
        let Some(file) = output.get("responsesFile").and_then(Value::as_str) else {
            return Ok(Vec::new());
        };
        let file_id = file.strip_prefix("files/").unwrap_or(file);
        if file_id.is_empty()
            || !file_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(Error::Decode {
                provider: PROVIDER.into(),
                message: format!("the batch names an invalid responses file {file:?}"),
                body_snippet: String::new(),
            });
        }
        let url = format!(
            "{}?alt=media",
            self.codec()
                .media_url("download", &format!("files/{file_id}:download"))
        );
        let req = self
            .codec()
            .authed(http::Method::GET, &url)?
            .body(Bytes::new())
            .map_err(|e| Error::config(format!("invalid Gemini request: {e}")))?;
        let resp = self.get_ref().send(req).await?;
        if !resp.status.is_success() {
            return Err(error_from_response(&resp, SystemTime::now()));
        }
        let text = String::from_utf8_lossy(&resp.body);
        Ok(text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(n, line)| match serde_json::from_str::<Value>(line) {
                Ok(v) => self.result_item(n, &v),
                Err(e) => BatchResult {
                    custom_id: format!("line {}", n + 1),
                    result: Err(Error::Decode {
                        provider: PROVIDER.into(),
                        message: format!("responses file line {} is not JSON: {e}", n + 1),
                        body_snippet: body_snippet(line.as_bytes(), 200),
                    }),
                },
            })
            .collect())
    }

    async fn cancel(&self, batch_id: &str) -> Result<BatchStatus, Error> {
        let name = batch_name(batch_id)?;
        let url = self.codec().api_url(&format!("{name}:cancel"));
        let req = self
            .codec()
            .authed(http::Method::POST, &url)?
            .body(Bytes::new())
            .map_err(|e| Error::config(format!("invalid Gemini request: {e}")))?;
        let resp = self.get_ref().send(req).await?;
        // The cancel answers an empty object: read the job again.
        decode(&resp, "cancel answer")?;
        let mut status = self.status(&name).await?;
        if !status.state.is_terminal() {
            status.state = BatchState::Cancelling;
        }
        Ok(status)
    }

    fn name(&self) -> &str {
        PROVIDER
    }

    /// One model a batch, 2 GB of input (20 MB inline), and a 48-hour
    /// window: a job pending or running longer expires (ai.google.dev,
    /// batch API).
    fn limits(&self) -> BatchLimits {
        BatchLimits::new(usize::MAX, FILE_LIMIT, Duration::from_secs(48 * 3600)).single_model(true)
    }

    async fn list(&self) -> Result<Vec<BatchStatus>, Error> {
        let url = format!("{}?pageSize=100", self.codec().api_url("batches"));
        let req = self
            .codec()
            .authed(http::Method::GET, &url)?
            .body(Bytes::new())
            .map_err(|e| Error::config(format!("invalid Gemini request: {e}")))?;
        let v = decode(&self.get_ref().send(req).await?, "batch list")?;
        let ops = v
            .get("operations")
            .or_else(|| v.get("batches"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        Ok(ops.iter().map(status_of).collect())
    }
}

impl Gemini {
    async fn operation(&self, batch_id: &str) -> Result<Value, Error> {
        let url = self.codec().api_url(&batch_name(batch_id)?);
        let req = self
            .codec()
            .authed(http::Method::GET, &url)?
            .body(Bytes::new())
            .map_err(|e| Error::config(format!("invalid Gemini request: {e}")))?;
        decode(&self.get_ref().send(req).await?, "batch operation")
    }

    /// Uploads the items as a JSONL file through the resumable Files API;
    /// returns its name (`files/…`).
    async fn upload_jsonl(&self, items: &[BatchItem], display_name: &str) -> Result<String, Error> {
        let mut jsonl = String::new();
        for item in items {
            jsonl.push_str(
                &json!({"key": item.custom_id, "request": self.codec().body(&item.request)?})
                    .to_string(),
            );
            jsonl.push('\n');
        }
        let invalid = |e: http::Error| Error::config(format!("invalid Gemini upload: {e}"));
        let start = self
            .codec()
            .authed(
                http::Method::POST,
                &self.codec().media_url("upload", "files"),
            )?
            .header("x-goog-upload-protocol", "resumable")
            .header("x-goog-upload-command", "start")
            .header("x-goog-upload-header-content-length", jsonl.len())
            .header("x-goog-upload-header-content-type", "application/jsonl")
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Bytes::from(
                json!({"file": {"display_name": display_name}}).to_string(),
            ))
            .map_err(invalid)?;
        let resp = self.get_ref().send(start).await?;
        if !resp.status.is_success() {
            return Err(error_from_response(&resp, SystemTime::now()));
        }
        let upload_url = resp
            .headers
            .get("x-goog-upload-url")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| Error::Decode {
                provider: PROVIDER.into(),
                message: "the upload was not started: no x-goog-upload-url header".into(),
                body_snippet: body_snippet(&resp.body, 200),
            })?;
        // The key goes only to the host it was configured for.
        if !upload_url.starts_with(&format!("{}/", self.codec().get_base_url())) {
            return Err(Error::Decode {
                provider: PROVIDER.into(),
                message: "the upload URL is on another host than the base URL: refused, the API key is not sent there".into(),
                body_snippet: String::new(),
            });
        }
        let granularity = resp
            .headers
            .get("x-goog-upload-chunk-granularity")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|g| *g > 0);
        let file = self
            .upload_chunks(&upload_url, jsonl.as_bytes(), granularity)
            .await?;
        file.pointer("/file/name")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| Error::Decode {
                provider: PROVIDER.into(),
                message: "the uploaded file has no name".into(),
                body_snippet: body_snippet(file.to_string().as_bytes(), 200),
            })
    }

    /// Sends `bytes` to a started resumable upload session in chunks of
    /// `batch_upload_chunk` bytes (a multiple of the server's
    /// granularity): `x-goog-upload-command: upload` with
    /// `x-goog-upload-offset` for each, `upload, finalize` for the last.
    /// After a failed chunk (a network error, 408, 429 or 5xx), asks the
    /// session where it is (`x-goog-upload-command: query`, answered with
    /// `x-goog-upload-status` and `x-goog-upload-size-received`) and resumes
    /// from that offset. Returns the finalize answer (the file).
    ///
    /// Sources: python-genai `_api_client.py` (`_upload_fd`: 8 MiB chunks,
    /// `upload` / `upload, finalize`, `X-Goog-Upload-Offset`, status
    /// `active` / `final`); firebase-js-sdk `storage` `requests.ts`
    /// (`getResumableUploadStatus`: `X-Goog-Upload-Command: query`,
    /// `X-Goog-Upload-Size-Received`; `continueResumableUpload`: chunks of
    /// the 256 KiB granularity).
    async fn upload_chunks(
        &self,
        upload_url: &str,
        bytes: &[u8],
        granularity: Option<usize>,
    ) -> Result<Value, Error> {
        let chunk = match granularity {
            Some(g) => (self.upload_chunk / g).max(1).saturating_mul(g),
            None => self.upload_chunk.max(1),
        };
        let total = bytes.len();
        let invalid = |e: http::Error| Error::config(format!("invalid Gemini upload: {e}"));
        let lost = |what: String| Error::Decode {
            provider: PROVIDER.into(),
            message: format!(
                "the resumable upload session {what}: submit the job again (nothing was created)"
            ),
            body_snippet: String::new(),
        };
        let mut offset = 0usize;
        let mut failures = 0u32;
        loop {
            let end = offset.saturating_add(chunk).min(total);
            let last = end == total;
            let req = self
                .codec()
                .authed(http::Method::POST, upload_url)?
                .header(
                    "x-goog-upload-command",
                    if last { "upload, finalize" } else { "upload" },
                )
                .header("x-goog-upload-offset", offset)
                .body(Bytes::copy_from_slice(&bytes[offset..end]))
                .map_err(invalid)?;
            let failed = match self.get_ref().send(req).await {
                Ok(resp) if resp.status.is_success() => {
                    if last {
                        return decode(&resp, "file");
                    }
                    if upload_status(&resp).as_deref() == Some("final") {
                        return Err(lost("was finalized before the last chunk".into()));
                    }
                    offset = end;
                    failures = 0;
                    continue;
                }
                Ok(resp) => error_from_response(&resp, SystemTime::now()),
                Err(e) => e,
            };
            if !failed.is_retryable() {
                return Err(failed);
            }
            // Where is the session? Ask until it answers (or give up).
            loop {
                failures += 1;
                if failures >= UPLOAD_ATTEMPTS {
                    return Err(failed);
                }
                tokio::time::sleep(Duration::from_millis(100 << failures.min(6))).await;
                let query = self
                    .codec()
                    .authed(http::Method::POST, upload_url)?
                    .header("x-goog-upload-command", "query")
                    .body(Bytes::new())
                    .map_err(invalid)?;
                let resp = match self.get_ref().send(query).await {
                    Ok(resp) if resp.status.is_success() => resp,
                    Ok(resp) => {
                        let e = error_from_response(&resp, SystemTime::now());
                        if !e.is_retryable() {
                            return Err(e);
                        }
                        continue;
                    }
                    Err(e) if e.is_retryable() => continue,
                    Err(e) => return Err(e),
                };
                match upload_status(&resp).as_deref() {
                    // The last chunk arrived after all: the answer is the file.
                    Some("final") => return decode(&resp, "file"),
                    Some("active") => {}
                    other => {
                        return Err(lost(format!("is {}", other.unwrap_or("in no known state"))))
                    }
                }
                let received = resp
                    .headers
                    .get("x-goog-upload-size-received")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .filter(|n| *n <= total)
                    .ok_or_else(|| {
                        lost(
                            "answered the offset query without a valid x-goog-upload-size-received"
                                .into(),
                        )
                    })?;
                offset = received;
                break;
            }
        }
    }

    /// One result: `{"response", "metadata": {"key"}}` inline, `{"key",
    /// "response"}` in a file, or either with `error`. A result without a
    /// key is named `#n`, its position (inline results keep input order).
    fn result_item(&self, n: usize, item: &Value) -> BatchResult {
        let custom_id = item
            .pointer("/metadata/key")
            .or_else(|| item.get("key"))
            .and_then(Value::as_str)
            .map_or_else(|| format!("#{n}"), str::to_owned);
        let result = if let Some(err) = item.get("error").filter(|e| !e.is_null()) {
            Err(error_from_response(
                &HttpResponse {
                    status: status_code(err),
                    headers: http::HeaderMap::new(),
                    body: json!({"error": err}).to_string().into(),
                },
                SystemTime::now(),
            ))
        } else if let Some(resp) = item.get("response") {
            self.codec()
                .parse_response(&ChatRequest::default(), resp.to_string().as_bytes())
                .map(|mut r| {
                    r.mode = Mode::Batch;
                    r
                })
        } else {
            Err(Error::Decode {
                provider: PROVIDER.into(),
                message: format!("batch result {custom_id} has neither a response nor an error"),
                body_snippet: body_snippet(item.to_string().as_bytes(), 200),
            })
        };
        BatchResult { custom_id, result }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_state_spellings_and_string_counts() {
        let op = json!({"name": "batches/1", "metadata": {"state": "JOB_STATE_RUNNING",
            "batchStats": {"requestCount": "3", "successfulRequestCount": "1", "failedRequestCount": 1}}});
        let s = status_of(&op);
        assert_eq!(s.state, BatchState::InProgress);
        assert_eq!((s.total, s.succeeded, s.failed), (3, 1, 1));
        for (raw, want) in [
            ("BATCH_STATE_PENDING", BatchState::Validating),
            ("BATCH_STATE_SUCCEEDED", BatchState::Completed),
            ("JOB_STATE_FAILED", BatchState::Failed),
            ("BATCH_STATE_CANCELLED", BatchState::Cancelled),
            ("BATCH_STATE_EXPIRED", BatchState::Expired),
        ] {
            assert_eq!(state_of(raw), want, "{raw}");
        }
        assert_eq!(batch_name("123").expect("ok"), "batches/123");
        assert!(batch_name("../files").is_err());
    }
}
