//! The Batch API (`/v1/files` + `/v1/batches`) as a [`BatchProvider`], on
//! `/v1/chat/completions` ([`OpenAi`]) or `/v1/responses`
//! ([`OpenAiResponses`]).

use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use costlayer_core::batch::{result_line_error, result_line_json};
use costlayer_core::transport::{body_snippet, Codec, HttpTransport};
use costlayer_core::{
    BatchItem, BatchLimits, BatchProvider, BatchResult, BatchState, BatchStatus, ChatRequest,
    Error, HttpResponse, Mode,
};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::error_from_response;
use crate::responses::parse_response_body;
use crate::{OpenAi, OpenAiCodec, OpenAiResponses, OpenAiResponsesCodec};

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
    /// `/v1/chat/completions` or `/v1/responses`: how the output lines read.
    #[serde(default)]
    endpoint: Option<String>,
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

/// Which API the lines of one batch target. OpenAI runs one endpoint a
/// batch: `endpoint` of `POST /v1/batches` is one of `/v1/responses`,
/// `/v1/chat/completions`, ... "to be used for all requests in the batch"
/// (openai/openai-openapi `openapi.json`, `CreateBatchRequest.endpoint`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    /// `/v1/chat/completions`, encoded and read by [`OpenAiCodec`].
    Chat,
    /// `/v1/responses`, encoded and read by [`OpenAiResponsesCodec`].
    Responses,
}

impl Endpoint {
    const fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => "/v1/chat/completions",
            Endpoint::Responses => "/v1/responses",
        }
    }
}

/// 50,000 requests and 200 MB a batch, a 24-hour window (openai-python
/// `batch_create_params.py`; openai-openapi `CreateBatchRequest`), on one
/// endpoint.
fn limits(endpoint: Endpoint) -> BatchLimits {
    BatchLimits::new(
        50_000,
        200 * 1024 * 1024,
        std::time::Duration::from_secs(24 * 3600),
    )
    .endpoint(endpoint.path())
}

/// The Batch API over one client: its transport (any codec; only
/// [`HttpTransport::send`] is used) and the chat codec holding the key,
/// base URL and headers.
struct Api<'a, C> {
    transport: &'a HttpTransport<C>,
    codec: &'a OpenAiCodec,
}

impl<C: Codec> Api<'_, C> {
    async fn send(&self, req: http::Request<Bytes>) -> Result<HttpResponse, Error> {
        self.transport.send(req).await
    }

    /// Uploads `bodies` (custom id, request body) as a JSONL file with
    /// purpose `batch` and creates a 24-hour batch on `endpoint`.
    async fn submit(
        &self,
        endpoint: Endpoint,
        bodies: Vec<(String, Value)>,
    ) -> Result<String, Error> {
        if bodies.is_empty() {
            return Err(Error::config(
                "a batch needs at least one request: pass one or more BatchItems",
            ));
        }
        let mut jsonl = String::new();
        for (custom_id, body) in bodies {
            let line = json!({
                "custom_id": custom_id,
                "method": "POST",
                "url": endpoint.path(),
                "body": body,
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
        let upload = self.codec.request(
            http::Method::POST,
            "/files",
            Some((&content_type, Bytes::from(form))),
        )?;
        let file: FileObject = decode(&self.send(upload).await?, "file object")?;
        let create = self.codec.post(
            "/batches",
            &json!({
                "input_file_id": file.id,
                "endpoint": endpoint.path(),
                "completion_window": "24h",
            }),
        )?;
        Ok(decode::<Batch>(&self.send(create).await?, "batch")?.id)
    }

    async fn batch(&self, batch_id: &str) -> Result<Batch, Error> {
        check_id(batch_id, "batch")?;
        let req = self
            .codec
            .request(http::Method::GET, &format!("/batches/{batch_id}"), None)?;
        decode(&self.send(req).await?, "batch")
    }

    /// The output and error files, each line read with the codec of the
    /// batch's own `endpoint` (so either client reads any job's results).
    async fn results(&self, batch_id: &str) -> Result<Vec<BatchResult>, Error> {
        let batch = self.batch(batch_id).await?;
        let endpoint = match batch.endpoint.as_deref() {
            Some("/v1/responses") => Endpoint::Responses,
            _ => Endpoint::Chat,
        };
        let mut out = Vec::new();
        for file_id in [&batch.output_file_id, &batch.error_file_id]
            .into_iter()
            .flatten()
        {
            check_id(file_id, "file")?;
            let req = self.codec.request(
                http::Method::GET,
                &format!("/files/{file_id}/content"),
                None,
            )?;
            let resp = self.send(req).await?;
            if !resp.status.is_success() {
                return Err(error_from_response(&resp, SystemTime::now()));
            }
            let text = String::from_utf8_lossy(&resp.body);
            for (n, line) in text.lines().enumerate() {
                if !line.trim().is_empty() {
                    out.push(result_line(self.codec, endpoint, n + 1, line));
                }
            }
        }
        Ok(out)
    }

    async fn list(&self) -> Result<Vec<BatchStatus>, Error> {
        let req = self
            .codec
            .request(http::Method::GET, "/batches?limit=100", None)?;
        let list: BatchList = decode(&self.send(req).await?, "batch list")?;
        Ok(list.data.into_iter().map(BatchStatus::from).collect())
    }

    async fn cancel(&self, batch_id: &str) -> Result<BatchStatus, Error> {
        check_id(batch_id, "batch")?;
        // The endpoint takes no body (a strict server refuses one with 415).
        let req = self.codec.request(
            http::Method::POST,
            &format!("/batches/{batch_id}/cancel"),
            None,
        )?;
        Ok(decode::<Batch>(&self.send(req).await?, "batch")?.into())
    }
}

/// One `BatchProvider` impl per OpenAI client: the same Batch API, the
/// lines encoded by the client's own codec and sent to its endpoint.
macro_rules! batch_provider {
    ($(#[$doc:meta])* $client:ty, $endpoint:expr, $limits_doc:literal) => {
        $(#[$doc])*
        #[async_trait]
        impl BatchProvider for $client {
            async fn submit(&self, items: Vec<BatchItem>) -> Result<String, Error> {
                let bodies = items
                    .into_iter()
                    .map(|i| Ok((i.custom_id, self.codec().body(&i.request)?)))
                    .collect::<Result<Vec<_>, Error>>()?;
                self.api().submit($endpoint, bodies).await
            }

            async fn status(&self, batch_id: &str) -> Result<BatchStatus, Error> {
                Ok(self.api().batch(batch_id).await?.into())
            }

            async fn results(&self, batch_id: &str) -> Result<Vec<BatchResult>, Error> {
                self.api().results(batch_id).await
            }

            fn name(&self) -> &str {
                PROVIDER
            }

            #[doc = $limits_doc]
            fn limits(&self) -> BatchLimits {
                limits($endpoint)
            }

            async fn list(&self) -> Result<Vec<BatchStatus>, Error> {
                self.api().list().await
            }

            async fn cancel(&self, batch_id: &str) -> Result<BatchStatus, Error> {
                self.api().cancel(batch_id).await
            }
        }
    };
}

batch_provider!(
    /// Uploads the requests as a JSONL file, creates a 24-hour batch on
    /// `/v1/chat/completions`, polls it, reads the output and error files
    /// (joined on `custom_id`; OpenAI does not keep the order) and cancels.
    /// Every successful response carries [`Mode::Batch`], priced at batch rates.
    OpenAi,
    Endpoint::Chat,
    "50,000 requests and 200 MB a batch, a 24-hour window, on `/v1/chat/completions`."
);

batch_provider!(
    /// The same Batch API with every line on `/v1/responses`, encoded by
    /// [`OpenAiResponsesCodec::body`] and read by its parser, so cached and
    /// reasoning tokens are exact. Statuses, lists and cancels are shared with
    /// [`OpenAi`]; results are read by the batch's own endpoint, so either
    /// client reads any job.
    OpenAiResponses,
    Endpoint::Responses,
    "50,000 requests and 200 MB a batch, a 24-hour window, on `/v1/responses`."
);

impl OpenAi {
    fn api(&self) -> Api<'_, OpenAiCodec> {
        Api {
            transport: self.get_ref(),
            codec: self.codec(),
        }
    }
}

impl OpenAiResponses {
    fn api(&self) -> Api<'_, OpenAiResponsesCodec> {
        Api {
            transport: self.get_ref(),
            codec: self.codec().chat_codec(),
        }
    }
}

/// One line of an output or error file. A line that cannot be read is a
/// result with an [`Error::Decode`], so the other lines are still returned.
fn result_line(codec: &OpenAiCodec, endpoint: Endpoint, n: usize, line: &str) -> BatchResult {
    let decode_err = |message| result_line_error(PROVIDER, line, message);
    let v = match result_line_json(PROVIDER, "batch output", n, line) {
        Ok(v) => v,
        Err(unreadable) => return unreadable,
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
            Some(s) if s.is_success() => match endpoint {
                Endpoint::Chat => {
                    codec.parse_completion(&ChatRequest::default(), body.as_bytes(), request_id)
                }
                Endpoint::Responses => parse_response_body("", body.as_bytes(), request_id),
            }
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
