//! Opening the ledger the CLI reads: the JSONL ledger in the data directory.

use std::path::Path;

use costlayer::ledger::JsonlStorage;

use crate::CliError;

/// The JSONL ledger in `dir`, acting as `user` (whose file `--reset`
/// archives). Scans always see the team view; the report filters by user.
pub(crate) fn open(dir: &Path, user: &str) -> Result<JsonlStorage, CliError> {
    JsonlStorage::builder(dir)
        .user(user)
        .build()
        .map_err(|e| CliError::Usage(format!("{e} (check --user / COSTLAYER_USER)")))
}
