//! Batch jobs: submit many requests at half price, collect results later.
//!
//! Every provider's batch API is mapped onto one lifecycle, [`BatchState`]
//! (validating, in progress, finalizing, completed, failed, expired,
//! cancelling, cancelled), with request counts in [`BatchStatus`]. Results
//! are joined on the caller's `custom_id` ([`BatchResult`]); providers may
//! return them in any order.
//!
//! ```
//! use costlayer_core::{BatchState, BatchStatus};
//!
//! let s = BatchStatus::new("batch_1", BatchState::InProgress, 10).counts(4, 1);
//! assert_eq!(s.pending(), 5);
//! assert!(!s.state.is_terminal());
//! assert!(BatchState::Expired.is_terminal());
//! assert_eq!(BatchState::Cancelling.as_str(), "cancelling");
//! ```

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{ChatRequest, ChatResponse, Error};

/// An [`Error::Decode`] about one line of a provider's batch result file,
/// with the line's start (secrets redacted) as the snippet.
pub fn result_line_error(provider: &str, line: &str, message: String) -> Error {
    Error::Decode {
        provider: provider.to_owned(),
        message,
        body_snippet: crate::transport::body_snippet(line.as_bytes(), 200),
    }
}

/// Line `n` of a provider's batch result file (`file` names it in the
/// message) as JSON. A line that is not JSON becomes a result of its own,
/// under the id `line {n}` with an [`Error::Decode`], so the job's other
/// lines are still returned.
///
/// ```
/// use costlayer_core::batch::result_line_json;
///
/// assert_eq!(result_line_json("openai", "output", 1, r#"{"custom_id":"a"}"#).unwrap()["custom_id"], "a");
/// let bad = result_line_json("openai", "output", 2, "{not json").unwrap_err();
/// assert_eq!(bad.custom_id, "line 2");
/// assert!(bad.result.unwrap_err().to_string().contains("output line 2 is not JSON"));
/// ```
///
/// # Errors
///
/// The [`BatchResult`] to return for a line that is not JSON.
#[allow(clippy::result_large_err)]
pub fn result_line_json(
    provider: &str,
    file: &str,
    n: usize,
    line: &str,
) -> Result<serde_json::Value, BatchResult> {
    serde_json::from_str(line).map_err(|e| BatchResult {
        custom_id: format!("line {n}"),
        result: Err(result_line_error(
            provider,
            line,
            format!("{file} line {n} is not JSON: {e}"),
        )),
    })
}

/// One request of a batch, with the caller's id to join results on
/// (providers may return results in any order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchItem {
    /// The caller's id for this request (OpenAI `custom_id`, Anthropic `custom_id`, Gemini `key`).
    pub custom_id: String,
    /// The request.
    pub request: ChatRequest,
}

/// Where a batch job is, normalised across providers.
///
/// | state | OpenAI `status` | Anthropic `processing_status` | Gemini `state` |
/// |---|---|---|---|
/// | `Validating` | `validating` | | `BATCH_STATE_PENDING` |
/// | `InProgress` | `in_progress` | `in_progress` | `BATCH_STATE_RUNNING` |
/// | `Finalizing` | `finalizing` | | |
/// | `Completed` | `completed` | `ended` | `BATCH_STATE_SUCCEEDED` |
/// | `Failed` | `failed` | | `BATCH_STATE_FAILED` |
/// | `Expired` | `expired` | `ended`, every request expired | `BATCH_STATE_EXPIRED` |
/// | `Cancelling` | `cancelling` | `canceling` | |
/// | `Cancelled` | `cancelled` | `ended` after a cancel | `BATCH_STATE_CANCELLED` |
///
/// (Gemini's `JOB_STATE_*` spellings are accepted too.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BatchState {
    /// The input is being checked; nothing runs yet.
    Validating,
    /// Requests are running.
    InProgress,
    /// Every request ran; the results are being written.
    Finalizing,
    /// Finished; results can be fetched.
    Completed,
    /// Failed as a whole (the input was refused); nothing ran.
    Failed,
    /// The completion window passed; finished requests may have results.
    Expired,
    /// A cancel was asked for; requests already running may still finish.
    Cancelling,
    /// Cancelled; results of the requests that finished may be fetched.
    Cancelled,
}

impl BatchState {
    /// Whether the job can change no more (completed, failed, expired, cancelled).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            BatchState::Completed
                | BatchState::Failed
                | BatchState::Expired
                | BatchState::Cancelled
        )
    }

    /// The state as written in JSON (`in_progress`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            BatchState::Validating => "validating",
            BatchState::InProgress => "in_progress",
            BatchState::Finalizing => "finalizing",
            BatchState::Completed => "completed",
            BatchState::Failed => "failed",
            BatchState::Expired => "expired",
            BatchState::Cancelling => "cancelling",
            BatchState::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for BatchState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A batch job's status: its state and request counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchStatus {
    /// The provider's batch id.
    pub id: String,
    /// Where the job is.
    pub state: BatchState,
    /// Requests finished successfully so far.
    pub succeeded: u64,
    /// Requests that finished unsuccessfully so far (errored, and, once the
    /// job ended, cancelled or expired before running).
    pub failed: u64,
    /// Requests in the job (0 when the provider does not say yet).
    pub total: u64,
}

impl BatchStatus {
    /// A status with no request finished.
    pub fn new(id: impl Into<String>, state: BatchState, total: u64) -> Self {
        BatchStatus {
            id: id.into(),
            state,
            succeeded: 0,
            failed: 0,
            total,
        }
    }

    /// Sets the succeeded and failed counts.
    #[must_use]
    pub fn counts(mut self, succeeded: u64, failed: u64) -> Self {
        self.succeeded = succeeded;
        self.failed = failed;
        self
    }

    /// Requests not finished yet.
    pub fn pending(&self) -> u64 {
        self.total
            .saturating_sub(self.succeeded.saturating_add(self.failed))
    }

    /// Requests finished, successfully or not.
    pub fn finished(&self) -> u64 {
        self.succeeded.saturating_add(self.failed)
    }
}

/// The result of one request of a batch. Successful responses carry
/// [`crate::Mode::Batch`] so they are priced at batch rates.
#[derive(Debug)]
pub struct BatchResult {
    /// The id given at submission. A provider that returns a result without
    /// its id names it `#N`, its 0-based position in the submitted items
    /// (Gemini inline results keep the input order).
    pub custom_id: String,
    /// The response, or why this request failed.
    pub result: Result<ChatResponse, Error>,
}

/// What one batch of a provider may hold; checked before anything is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchLimits {
    /// The most requests in one batch.
    pub max_requests: usize,
    /// The most bytes of the encoded input.
    pub max_bytes: usize,
    /// How long the provider takes at most before the job expires.
    pub completion_window: Duration,
    /// Whether every request of one batch must name the same model.
    pub single_model: bool,
    /// The one endpoint every request of a batch goes to, where the
    /// provider has one a batch (OpenAI: `/v1/chat/completions` or
    /// `/v1/responses`); a native line naming another is refused.
    pub endpoint: Option<&'static str>,
}

impl BatchLimits {
    /// Limits of `max_requests` requests, `max_bytes` bytes and a
    /// `completion_window`, models mixed freely.
    pub const fn new(max_requests: usize, max_bytes: usize, completion_window: Duration) -> Self {
        BatchLimits {
            max_requests,
            max_bytes,
            completion_window,
            single_model: false,
            endpoint: None,
        }
    }

    /// Sets the one endpoint every request of a batch goes to.
    #[must_use]
    pub const fn endpoint(mut self, endpoint: &'static str) -> Self {
        self.endpoint = Some(endpoint);
        self
    }

    /// Sets whether one batch must use one model.
    #[must_use]
    pub const fn single_model(mut self, single: bool) -> Self {
        self.single_model = single;
        self
    }
}

impl Default for BatchLimits {
    /// OpenAI's: 50,000 requests, 200 MB, 24 hours.
    fn default() -> Self {
        BatchLimits::new(50_000, 200 * 1024 * 1024, Duration::from_secs(24 * 3600))
    }
}

/// A provider's batch API.
#[async_trait]
pub trait BatchProvider: Send + Sync {
    /// Submits the requests; returns the provider's batch id.
    async fn submit(&self, items: Vec<BatchItem>) -> Result<String, Error>;
    /// The job's status.
    async fn status(&self, batch_id: &str) -> Result<BatchStatus, Error>;
    /// The results of a finished job, joined on `custom_id`.
    async fn results(&self, batch_id: &str) -> Result<Vec<BatchResult>, Error>;
    /// Cancels the job.
    async fn cancel(&self, batch_id: &str) -> Result<BatchStatus, Error>;

    /// The provider's name as recorded in the ledger (`openai`, ...).
    fn name(&self) -> &str;

    /// What one batch may hold. Defaults to [`BatchLimits::default`].
    fn limits(&self) -> BatchLimits {
        BatchLimits::default()
    }

    /// The provider's recent jobs, newest first, as far as its first page
    /// goes; used to rebuild a lost job registry.
    ///
    /// # Errors
    ///
    /// The default answers [`Error::Config`]: the provider cannot list jobs.
    async fn list(&self) -> Result<Vec<BatchStatus>, Error> {
        Err(Error::config(format!(
            "the {} batch API cannot list jobs: look the job up by its id",
            self.name()
        )))
    }
}
