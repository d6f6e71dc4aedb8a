//! Batch jobs tied to budgets and the ledger.
//!
//! [`BatchJobs`] runs a job on any [`BatchProvider`] (OpenAI, Anthropic,
//! Gemini, or [`SimulatedProvider`](crate::mock::SimulatedProvider)):
//!
//! 1. **Input** is read whole and checked before anything is sent
//!    ([`parse_jsonl`]: unique custom ids, known models, the provider's
//!    limits; errors carry line numbers).
//! 2. **Submit** estimates the job's worst case at *batch* rates
//!    ([`CostTracker::estimate_batch`]) and holds it in every blocking
//!    budget that covers it, as a detached hold in the budget book
//!    ([`CostTracker::reserve_detached`]) that outlives the process and
//!    ends at the provider's completion window plus [`HOLD_MARGIN`]. A job
//!    that does not fit is refused before anything is uploaded.
//! 3. The **registry** (`<data dir>/batches/registry.json`, see
//!    [`JobRegistry`]) remembers every job: provider, id, items, hold, and
//!    which results were recorded, so any process can follow it.
//! 4. **Results** record every succeeded item once, with `mode = "batch"`
//!    at batch rates and the tags `batch_id` and `batch_custom_id`; fetching
//!    them again, from this process or another, records nothing more. Once
//!    the job has ended (completed, expired, cancelled, failed) the hold is
//!    released: what did not run is no longer held.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use costlayer::batch::{parse_jsonl, BatchJobs};
//! use costlayer::ledger::MemoryStorage;
//! use costlayer::mock::SimulatedProvider;
//! use costlayer::tracker::{book::MemoryBook, CostTracker};
//! use costlayer::{BatchProvider, Mode};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let storage = Arc::new(MemoryStorage::new());
//! let tracker = CostTracker::builder().storage(storage.clone()).book(Arc::new(MemoryBook::new())).build()?;
//! let jobs = BatchJobs::new(tracker, dir.path())?;
//! let provider = SimulatedProvider::builder().batch_delay(Duration::from_millis(10)).build();
//!
//! let items = parse_jsonl(
//!     r#"{"custom_id": "q1", "request": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}}"#,
//!     None, &provider.limits(), jobs.tracker().prices())?;
//! let job = jobs.submit(&provider, items).await?;
//! jobs.wait(&provider, &job.entry.id, Duration::from_millis(5), |_| {}).await?;
//! let report = jobs.results(&provider, &job.entry.id).await?;
//! assert_eq!(report.newly_recorded, 1);
//! assert_eq!(jobs.results(&provider, &job.entry.id).await?.newly_recorded, 0); // once
//! assert_eq!(storage.records()[0].mode, Mode::Batch);
//! # Ok(()) }
//! ```

mod input;
mod jobs;
mod native;
mod registry;

pub use input::{parse_jsonl, InputErrors, LineError, MAX_REPORTED};
pub use jobs::{BatchJobs, ResultRow, ResultsReport, Submitted, HOLD_MARGIN};
pub use registry::{JobEntry, JobItem, JobRegistry, Locked, RecordedItem, REGISTRY_FILE};

#[allow(unused_imports)]
use crate::{tracker::CostTracker, BatchProvider};

use std::path::{Path, PathBuf};

use crate::core::BatchState;

/// A batch operation's failure; each message says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// The input file is not valid (nothing was sent).
    #[error(transparent)]
    Input(#[from] InputErrors),
    /// The provider, the budget or the ledger refused
    /// ([`crate::Error::BudgetExceeded`] for a job that does not fit).
    #[error(transparent)]
    Call(#[from] crate::Error),
    /// No such job in the registry.
    #[error("no batch job `{id}` in the registry {registry}: check `cost-tracker batch list`, or pass --provider to look it up at the provider")]
    UnknownJob {
        /// The id asked for.
        id: String,
        /// The registry file.
        registry: PathBuf,
    },
    /// Results were asked for before the job ended.
    #[error("batch job `{id}` is {state}: its results are not ready; run `cost-tracker batch wait {id}`")]
    NotFinished {
        /// The job.
        id: String,
        /// Where it is.
        state: BatchState,
    },
    /// The registry could not be read or written.
    #[error("batch registry: cannot {op} {path}: {source} (check the data directory's permissions and free space)")]
    Registry {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl BatchError {
    fn registry(op: &'static str, path: &Path, source: std::io::Error) -> Self {
        BatchError::Registry {
            op,
            path: path.to_owned(),
            source,
        }
    }
}
