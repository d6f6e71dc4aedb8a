//! The Batch API (`/v1/files` + `/v1/batches`) as a [`BatchProvider`].

use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use costlayer_core::transport::body_snippet;
use costlayer_core::{
    BatchItem, BatchLimits, BatchProvider, BatchResult, BatchState, BatchStatus, ChatRequest,
    Error, HttpResponse, Mode,
};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::error_from_response;
use crate::OpenAi;

const PROVIDER: &str = "openai";
/// JSONL lines never contain `\r\n--`, so a fixed boundary cannot collide.
const BOUNDARY: &str = "costlayer-batch-boundary-7c1f0e9a";

#[derive(Deserialize)]
struct FileObject {
    id: String,
}

#[derive(Deserialize)]
struct BatchList {
    #[serde(default)]
    data: Vec<Batch>,
}

#[derive(Deserialize)]
struct Batch {
    id: String,
    status: String,
    #[serde(default)]
    output_file_id: Option<String>,
    #[serde(default)]
    error_file_id: Option<String>,
    #[serde(default)]
    request_counts: Option<RequestCounts>,
}

#[derive(Deserialize, Default)]
struct RequestCounts {
    #[serde(default)]
    total: u64,
    #[serde(default)]
    completed: u64,
    #[serde(default)]
    failed: u64,
}

impl From<Batch> for BatchStatus {
    fn from(b: Batch) -> BatchStatus {
        let counts = b.request_counts.unwrap_or_default();
        let state = match b.status.as_str() {
            "validating" => BatchState::Validating,
            "finalizing" => BatchState::Finalizing,
            "completed" => BatchState::Completed,
            "failed" => BatchState::Failed,
            "expired" => BatchState::Expired,
            "cancelling" => BatchState::Cancelling,
            "cancelled" => BatchState::Cancelled,
            // `in_progress`, and any state added later: not finished.
            _ => BatchState::InProgress,
        };
        BatchStatus {
            id: b.id,
            state,
            succeeded: counts.completed,
            failed: counts.failed,
            total: counts.total,
        }
    }
}

fn decode<T: for<'de> Deserialize<'de>>(resp: &HttpResponse, what: &str) -> Result<T, Error> {
    if !resp.status.is_success() {
        return Err(error_from_response(resp, SystemTime::now()));
    }
    serde_json::from_slice(&resp.body).map_err(|e| Error::Decode {
        provider: PROVIDER.into(),
        message: format!("not a {what}: {e}"),
        body_snippet: body_snippet(&resp.body, 200),
    })
}

fn check_id(id: &str, what: &str) -> Result<(), Error> {
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(Error::config(format!(
            "invalid OpenAI {what} id {id:?}: use the id the API returned"
        )));
    }
    Ok(())
}

/// Uploads the requests as a JSONL file, creates a 24-hour batch on
/// `/v1/chat/completions`, polls it, reads the output and error files
/// (joined on `custom_id`; OpenAI does not keep the order) and cancels.
/// Every successful response carries [`Mode::Batch`], priced at batch rates.
#[async_trait]
impl BatchProvider for OpenAi {
    async fn submit(&self, items: Vec<BatchItem>) -> Result<String, Error> {
        if items.is_empty() {
            return Err(Error::config(
                "a batch needs at least one request: pass one or more BatchItems",
            ));
        }
        let mut jsonl = String::new();
        for item in &items {
            let line = json!({
                "custom_id": item.custom_id,
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": self.codec().body(&item.request)?,
            });
            jsonl.push_str(&line.to_string());
            jsonl.push('\n');
        }
        let mut form = Vec::with_capacity(jsonl.len() + 512);
        form.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n\
                 --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"costlayer-batch.jsonl\"\r\n\
                 Content-Type: application/jsonl\r\n\r\n"
            )
            .as_bytes(),
        );
        form.extend_from_slice(jsonl.as_bytes());
        form.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
        let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
        let upload = self.codec().request(
            http::Method::POST,
            "/files",
            Some((&content_type, Bytes::from(form))),
        )?;
        let file: FileObject = decode(&self.get_ref().send(upload).await?, "file object")?;
        let create = self.codec().post(
            "/batches",
            &json!({
                "input_file_id": file.id,
                "endpoint": "/v1/chat/completions",
                "completion_window": "24h",
            }),
        )?;
        Ok(decode::<Batch>(&self.get_ref().send(create).await?, "batch")?.id)
    }

    async fn status(&self, batch_id: &str) -> Result<BatchStatus, Error> {
        Ok(self.batch(batch_id).await?.into())
    }

    async fn results(&self, batch_id: &str) -> Result<Vec<BatchResult>, Error> {
        let batch = self.batch(batch_id).await?;
        let mut out = Vec::new();
        for file_id in [&batch.output_file_id, &batch.error_file_id]
            .into_iter()
            .flatten()
        {
            check_id(file_id, "file")?;
            let req = self.codec().request(
                http::Method::GET,
                &format!("/files/{file_id}/content"),
                None,
            )?;
            let resp = self.get_ref().send(req).await?;
            if !resp.status.is_success() {
                return Err(error_from_response(&resp, SystemTime::now()));
            }
            let text = String::from_utf8_lossy(&resp.body);
            for (n, line) in text.lines().enumerate() {
                if !line.trim().is_empty() {
                    out.push(self.result_line(n + 1, line));
                }
            }
        }
        Ok(out)
    }

    fn name(&self) -> &str {
        PROVIDER
    }

    /// 50,000 requests and 200 MB a batch, a 24-hour window (openai-python
    /// `batch_create_params.py`).
    fn limits(&self) -> BatchLimits {
        BatchLimits::new(
            50_000,
            200 * 1024 * 1024,
            std::time::Duration::from_secs(24 * 3600),
        )
    }

    async fn list(&self) -> Result<Vec<BatchStatus>, Error> {
        let req = self
            .codec()
            .request(http::Method::GET, "/batches?limit=100", None)?;
        let list: BatchList = decode(&self.get_ref().send(req).await?, "batch list")?;
        Ok(list.data.into_iter().map(BatchStatus::from).collect())
    }

    async fn cancel(&self, batch_id: &str) -> Result<BatchStatus, Error> {
        check_id(batch_id, "batch")?;
        // The endpoint takes no body (a strict server refuses one with 415).
        let req = self.codec().request(
            http::Method::POST,
            &format!("/batches/{batch_id}/cancel"),
            None,
        )?;
        Ok(decode::<Batch>(&self.get_ref().send(req).await?, "batch")?.into())
    }
}

impl OpenAi {
    async fn batch(&self, batch_id: &str) -> Result<Batch, Error> {
        check_id(batch_id, "batch")?;
        let req = self
            .codec()
            .request(http::Method::GET, &format!("/batches/{batch_id}"), None)?;
        decode(&self.get_ref().send(req).await?, "batch")
    }

    /// One line of an output or error file. A line that cannot be read is a
    /// result with an [`Error::Decode`], so the other lines are still returned.
    fn result_line(&self, n: usize, line: &str) -> BatchResult {
        let decode_err = |message: String| Error::Decode {
            provider: PROVIDER.into(),
            message,
            body_snippet: body_snippet(line.as_bytes(), 200),
        };
        let v: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                return BatchResult {
                    custom_id: format!("line {n}"),
                    result: Err(decode_err(format!(
                        "batch output line {n} is not JSON: {e}"
                    ))),
                }
            }
        };
        let custom_id = v
            .get("custom_id")
            .and_then(Value::as_str)
            .map_or_else(|| format!("line {n}"), str::to_owned);
        let result = if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
            // A failure outside HTTP (the request expired, the line was invalid).
            Err(Error::Other(
                format!(
                    "openai batch request `{custom_id}` failed: {} ({})",
                    err["message"].as_str().unwrap_or("no message"),
                    err["code"].as_str().unwrap_or("no code")
                )
                .into(),
            ))
        } else {
            let response = &v["response"];
            let status = response["status_code"]
                .as_u64()
                .and_then(|s| u16::try_from(s).ok())
                .and_then(|s| http::StatusCode::from_u16(s).ok());
            let body = response["body"].to_string();
            let request_id = response["request_id"].as_str().map(str::to_owned);
            match status {
                Some(s) if s.is_success() => self
                    .codec()
                    .parse_completion(&ChatRequest::default(), body.as_bytes(), request_id)
                    .map(|mut r| {
                        r.mode = Mode::Batch;
                        r
                    }),
                Some(s) => Err(error_from_response(
                    &HttpResponse {
                        status: s,
                        headers: http::HeaderMap::new(),
                        body: body.into(),
                    },
                    SystemTime::now(),
                )),
                None => Err(decode_err(format!(
                    "batch output line {n} has neither a response status nor an error"
                ))),
            }
        };
        BatchResult { custom_id, result }
    }
}
