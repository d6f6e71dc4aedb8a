//! Batch jobs: submit many requests at half price, collect results later.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{ChatRequest, ChatResponse, Error};

/// One request of a batch, with the caller's id to join results on
/// (providers may return results in any order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchItem {
    /// The caller's id for this request (OpenAI `custom_id`, Anthropic `custom_id`, Gemini `key`).
    pub custom_id: String,
    /// The request.
    pub request: ChatRequest,
}

/// Where a batch job is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BatchState {
    /// Accepted, not finished.
    InProgress,
    /// Finished; results can be fetched.
    Completed,
    /// Failed as a whole.
    Failed,
    /// Cancelled (results of finished requests may still be fetched).
    Cancelled,
    /// Expired before finishing.
    Expired,
}

/// A batch job's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchStatus {
    /// The provider's batch id.
    pub id: String,
    /// Where the job is.
    pub state: BatchState,
    /// Requests finished successfully so far.
    pub succeeded: u64,
    /// Requests that failed so far.
    pub failed: u64,
    /// Requests in the job.
    pub total: u64,
}

/// The result of one request of a batch. Successful responses carry
/// [`crate::Mode::Batch`] so they are priced at batch rates.
#[derive(Debug)]
pub struct BatchResult {
    /// The id given at submission.
    pub custom_id: String,
    /// The response, or why this request failed.
    pub result: Result<ChatResponse, Error>,
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
}
