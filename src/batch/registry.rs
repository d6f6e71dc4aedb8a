//! The job registry: `<data dir>/batches/registry.json`, shared by every
//! process using the data directory.
//!
//! One JSON document, rewritten whole (a temporary file renamed over it)
//! under `batches/registry.lock` (`flock`), so a reader never sees half a
//! file and two processes never record one result twice. A file that does
//! not parse is moved aside to `registry.json.corrupt-<unix time>` (never
//! deleted), reported, and a new one started; jobs can then be recovered
//! from the provider's job list and the ledger (see
//! [`BatchJobs::recover`](super::BatchJobs::recover)).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::BatchError;
use crate::core::{BatchState, BatchStatus};
use crate::Money;

/// The registry file's name in `<data dir>/batches/`.
pub const REGISTRY_FILE: &str = "registry.json";
const LOCK_FILE: &str = "registry.lock";

/// One request of a job, as submitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobItem {
    /// The caller's id.
    pub custom_id: String,
    /// The model asked for.
    pub model: String,
    /// Who it is billed to, when the request said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Their team, when the request said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
}

/// A result already written to the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedItem {
    /// The ledger record's id.
    pub record_id: String,
    /// Its cost (`None`: unpriced).
    pub nano_usd: Option<Money>,
}

/// What the registry knows of one job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JobEntry {
    /// The provider's batch id.
    pub id: String,
    /// The provider (`openai`, `anthropic`, `gemini`, `simulated`).
    pub provider: String,
    /// When it was submitted (or recovered).
    pub submitted_at: DateTime<Utc>,
    /// When the provider gives up on it, and the budget hold ends.
    pub expires_at: DateTime<Utc>,
    /// The requests, in submission order (empty for a recovered job).
    #[serde(default)]
    pub items: Vec<JobItem>,
    /// The worst case at batch rates (`None`: a model without a price, or recovered).
    #[serde(default)]
    pub estimate: Option<Money>,
    /// The budget hold's id in the book, while held.
    #[serde(default)]
    pub hold_id: Option<String>,
    /// The amount held.
    #[serde(default)]
    pub held: Option<Money>,
    /// Whether the hold was released (or there was none).
    #[serde(default)]
    pub released: bool,
    /// The last state seen.
    pub state: BatchState,
    /// The last counts seen.
    #[serde(default)]
    pub succeeded: u64,
    /// The last counts seen.
    #[serde(default)]
    pub failed: u64,
    /// The last counts seen.
    #[serde(default)]
    pub total: u64,
    /// Results written to the ledger, by custom id: never recorded twice.
    #[serde(default)]
    pub recorded: BTreeMap<String, RecordedItem>,
    /// Set while results are being recorded; found set, the ledger is read
    /// back for this job's records before recording more (a crash between
    /// the append and the registry's rewrite loses nothing, doubles nothing).
    #[serde(default)]
    pub recording: bool,
    /// Rebuilt from the provider's job list after the registry was lost.
    #[serde(default)]
    pub recovered: bool,
    /// When the entry last changed.
    pub updated_at: DateTime<Utc>,
}

impl JobEntry {
    /// The entry's status as a [`BatchStatus`].
    pub fn status(&self) -> BatchStatus {
        BatchStatus::new(&self.id, self.state, self.total).counts(self.succeeded, self.failed)
    }

    /// Takes the provider's latest status.
    pub fn update(&mut self, s: &BatchStatus, now: DateTime<Utc>) {
        self.state = s.state;
        self.succeeded = s.succeeded;
        self.failed = s.failed;
        if s.total > 0 {
            self.total = s.total;
        }
        self.updated_at = now;
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct RegistryDoc {
    #[serde(default)]
    v: u32,
    #[serde(default)]
    jobs: Vec<JobEntry>,
}

/// The registry of a data directory. Cheap to clone.
#[derive(Debug, Clone)]
pub struct JobRegistry {
    dir: PathBuf,
}

/// One process at a time in the registry, besides the file lock between
/// processes (a `flock` taken twice in one process would wait on itself).
static LOCAL: LazyLock<Arc<tokio::sync::Mutex<()>>> =
    LazyLock::new(|| Arc::new(tokio::sync::Mutex::new(())));

impl JobRegistry {
    /// The registry of `data_dir` (`<data_dir>/batches/`, created).
    ///
    /// # Errors
    ///
    /// [`BatchError::Registry`] if the directory cannot be created.
    pub fn open(data_dir: &Path) -> Result<Self, BatchError> {
        let dir = data_dir.join("batches");
        std::fs::create_dir_all(&dir).map_err(|e| BatchError::registry("create", &dir, e))?;
        Ok(JobRegistry { dir })
    }

    /// The registry file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(REGISTRY_FILE)
    }

    /// Locks the registry (waiting for other processes) and reads it.
    ///
    /// # Errors
    ///
    /// [`BatchError::Registry`] if the lock or the file cannot be opened or
    /// read. A file that does not parse is not an error: it is moved aside
    /// and [`Locked::corrupt`] says so.
    pub async fn lock(&self) -> Result<Locked, BatchError> {
        let local = LOCAL.clone().lock_owned().await;
        let lock_path = self.dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| BatchError::registry("open", &lock_path, e))?;
        let file = tokio::task::spawn_blocking(move || file.lock().map(|()| file))
            .await
            .map_err(|e| BatchError::registry("lock", &lock_path, std::io::Error::other(e)))?
            .map_err(|e| BatchError::registry("lock", &lock_path, e))?;
        let path = self.path();
        let (jobs, corrupt) = match std::fs::read(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Vec::new(), None),
            Err(e) => return Err(BatchError::registry("read", &path, e)),
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => (Vec::new(), None),
            Ok(bytes) => match serde_json::from_slice::<RegistryDoc>(&bytes) {
                Ok(doc) => (doc.jobs, None),
                Err(e) => {
                    let aside = self.dir.join(format!(
                        "{REGISTRY_FILE}.corrupt-{}",
                        Utc::now().timestamp_nanos_opt().unwrap_or_default()
                    ));
                    std::fs::rename(&path, &aside)
                        .map_err(|e| BatchError::registry("move aside", &path, e))?;
                    let msg = format!(
                        "the batch registry {} was corrupt ({e}); it was moved to {} and a new one started: run `cost-tracker batch list --provider P` to recover the provider's jobs",
                        path.display(),
                        aside.display()
                    );
                    tracing::warn!("{msg}");
                    (Vec::new(), Some(msg))
                }
            },
        };
        Ok(Locked {
            jobs,
            corrupt,
            path,
            _file: file,
            _local: local,
        })
    }
}

/// The registry, locked and read; [`Locked::save`] writes it back. The lock
/// is released on drop.
#[derive(Debug)]
pub struct Locked {
    /// Every job, oldest first.
    pub jobs: Vec<JobEntry>,
    /// Set when the file was corrupt and moved aside: the message to report.
    pub corrupt: Option<String>,
    path: PathBuf,
    _file: File,
    _local: tokio::sync::OwnedMutexGuard<()>,
}

impl Locked {
    /// The job `id`, if known.
    pub fn get(&self, id: &str) -> Option<&JobEntry> {
        self.jobs.iter().find(|j| j.id == id)
    }

    /// The job `id`, if known, to change.
    pub fn get_mut(&mut self, id: &str) -> Option<&mut JobEntry> {
        self.jobs.iter_mut().find(|j| j.id == id)
    }

    /// Writes the registry back (a temporary file, synced, renamed over it).
    ///
    /// # Errors
    ///
    /// [`BatchError::Registry`] if it cannot be written.
    pub fn save(&self) -> Result<(), BatchError> {
        let doc = RegistryDoc {
            v: 1,
            jobs: self.jobs.clone(),
        };
        let tmp = self.path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(&doc)
            .map_err(|e| BatchError::registry("encode", &self.path, std::io::Error::other(e)))?;
        let mut f = File::create(&tmp).map_err(|e| BatchError::registry("create", &tmp, e))?;
        f.write_all(&bytes)
            .and_then(|()| f.sync_all())
            .map_err(|e| BatchError::registry("write", &tmp, e))?;
        std::fs::rename(&tmp, &self.path)
            .map_err(|e| BatchError::registry("replace", &self.path, e))
    }
}
