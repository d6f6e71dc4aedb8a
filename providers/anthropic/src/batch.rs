//! The Message Batches API (`/v1/messages/batches`) as a [`BatchProvider`].

use std::time::SystemTime;

use async_trait::async_trait;
use costlayer_core::batch::{result_line_error, result_line_json};
use costlayer_core::transport::body_snippet;
use costlayer_core::{
    BatchItem, BatchLimits, BatchProvider, BatchResult, BatchState, BatchStatus, ChatRequest,
    Error, HttpResponse, Mode,
};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::error_from_response;
use crate::Anthropic;

const PROVIDER: &str = "anthropic";

#[derive(Deserialize)]
struct MessageBatch {
    id: String,
    processing_status: String,
    #[serde(default)]
    request_counts: RequestCounts,
    #[serde(default)]
    cancel_initiated_at: Option<String>,
}

#[derive(Deserialize)]
struct BatchList {
    #[serde(default)]
    data: Vec<MessageBatch>,
}

#[derive(Deserialize, Default)]
struct RequestCounts {
    #[serde(default)]
    processing: u64,
    #[serde(default)]
    succeeded: u64,
    #[serde(default)]
    errored: u64,
    #[serde(default)]
    canceled: u64,
    #[serde(default)]
    expired: u64,
}

impl From<MessageBatch> for BatchStatus {
    fn from(b: MessageBatch) -> BatchStatus {
        let c = &b.request_counts;
        let total = c.processing + c.succeeded + c.errored + c.canceled + c.expired;
        let state = match b.processing_status.as_str() {
            "ended" if b.cancel_initiated_at.is_some() => BatchState::Cancelled,
            // Some requests ran out of the 24-hour window: the job expired,
            // with results for those that finished.
            "ended" if c.expired > 0 => BatchState::Expired,
            "ended" => BatchState::Completed,
            "canceling" => BatchState::Cancelling,
            // `in_progress`, and any state added later: not finished.
            _ => BatchState::InProgress,
        };
        BatchStatus {
            id: b.id,
            state,
            succeeded: c.succeeded,
            failed: c.errored + c.canceled + c.expired,
            total,
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

fn batch_path(batch_id: &str) -> Result<String, Error> {
    if batch_id.is_empty()
        || !batch_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(Error::config(format!(
            "invalid Anthropic batch id {batch_id:?}: use the id submit() returned (msgbatch_…)"
        )));
    }
    Ok(format!("/v1/messages/batches/{batch_id}"))
}

/// The HTTP status an Anthropic error type stands for, to classify a
/// per-request error of a batch like a live one.
fn status_for(kind: &str) -> http::StatusCode {
    let code = match kind {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "billing_error" => 402,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "overloaded_error" => 529,
        // The request timed out on Anthropic's side: a gateway timeout,
        // retryable like a live 504.
        "timeout_error" => 504,
        _ => 500,
    };
    http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR)
}

/// Submits, polls, reads and cancels Message Batches. Results are priced
/// at batch rates: every successful response carries [`Mode::Batch`].
#[async_trait]
impl BatchProvider for Anthropic {
    async fn submit(&self, items: Vec<BatchItem>) -> Result<String, Error> {
        if items.is_empty() {
            return Err(Error::config(
                "a batch needs at least one request: pass one or more BatchItems",
            ));
        }
        let requests = items
            .iter()
            .map(|item| {
                Ok(json!({"custom_id": item.custom_id, "params": self.codec().body(&item.request)?}))
            })
            .collect::<Result<Vec<Value>, Error>>()?;
        let req = self
            .codec()
            .post("/v1/messages/batches", &json!({"requests": requests}))?;
        let resp = self.get_ref().send(req).await?;
        Ok(decode::<MessageBatch>(&resp, "message batch")?.id)
    }

    async fn status(&self, batch_id: &str) -> Result<BatchStatus, Error> {
        let req = self.codec().get(&batch_path(batch_id)?)?;
        let resp = self.get_ref().send(req).await?;
        Ok(decode::<MessageBatch>(&resp, "message batch")?.into())
    }

    async fn results(&self, batch_id: &str) -> Result<Vec<BatchResult>, Error> {
        let req = self
            .codec()
            .get(&format!("{}/results", batch_path(batch_id)?))?;
        let resp = self.get_ref().send(req).await?;
        if !resp.status.is_success() {
            return Err(error_from_response(&resp, SystemTime::now()));
        }
        let text = String::from_utf8_lossy(&resp.body);
        let mut out = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            out.push(self.result_line(n + 1, line));
        }
        Ok(out)
    }

    fn name(&self) -> &str {
        PROVIDER
    }

    /// 100,000 requests and 256 MB a batch, a 24-hour window
    /// (docs.anthropic.com, batch processing).
    fn limits(&self) -> BatchLimits {
        BatchLimits::new(
            100_000,
            256 * 1024 * 1024,
            std::time::Duration::from_secs(24 * 3600),
        )
    }

    async fn list(&self) -> Result<Vec<BatchStatus>, Error> {
        let req = self.codec().get("/v1/messages/batches?limit=100")?;
        let resp = self.get_ref().send(req).await?;
        let list: BatchList = decode(&resp, "message batch list")?;
        Ok(list.data.into_iter().map(BatchStatus::from).collect())
    }

    async fn cancel(&self, batch_id: &str) -> Result<BatchStatus, Error> {
        // The endpoint takes no body (a strict server refuses one with 415).
        let req = self
            .codec()
            .post_empty(&format!("{}/cancel", batch_path(batch_id)?))?;
        let resp = self.get_ref().send(req).await?;
        Ok(decode::<MessageBatch>(&resp, "message batch")?.into())
    }
}

impl Anthropic {
    /// One line of a results file. A line that cannot be read is a result
    /// with an [`Error::Decode`], so the other lines are still returned.
    fn result_line(&self, n: usize, line: &str) -> BatchResult {
        let decode_err = |message| result_line_error(PROVIDER, line, message);
        let v = match result_line_json(PROVIDER, "results", n, line) {
            Ok(v) => v,
            Err(unreadable) => return unreadable,
        };
        let custom_id = v
            .get("custom_id")
            .and_then(Value::as_str)
            .map_or_else(|| format!("line {n}"), str::to_owned);
        let result = &v["result"];
        let result = match result.get("type").and_then(Value::as_str) {
            Some("succeeded") => {
                let body = result["message"].to_string();
                self.codec()
                    .parse_message(&ChatRequest::default(), body.as_bytes(), None)
                    .map(|mut r| {
                        r.mode = Mode::Batch;
                        r
                    })
            }
            Some("errored") => {
                let err = &result["error"];
                let kind = err["error"]["type"].as_str().unwrap_or_default();
                Err(error_from_response(
                    &HttpResponse {
                        status: status_for(kind),
                        headers: http::HeaderMap::new(),
                        body: err.to_string().into(),
                    },
                    SystemTime::now(),
                ))
            }
            Some(kind @ ("canceled" | "expired")) => Err(Error::Other(
                format!("anthropic batch request `{custom_id}` was {kind} before it ran: submit it again").into(),
            )),
            _ => Err(decode_err(format!(
                "results line {n} has no known result type"
            ))),
        };
        BatchResult { custom_id, result }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_timeout_error_is_a_retryable_504() {
        assert_eq!(status_for("timeout_error").as_u16(), 504);
        let err = error_from_response(
            &HttpResponse {
                status: status_for("timeout_error"),
                headers: http::HeaderMap::new(),
                body: r#"{"type":"error","error":{"type":"timeout_error","message":"Request timed out"}}"#.into(),
            },
            SystemTime::now(),
        );
        assert!(matches!(err, Error::Server { status: 504, .. }), "{err}");
        assert!(err.is_retryable());
    }
}
