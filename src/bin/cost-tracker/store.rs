//! Opening the ledger the CLI reads: the JSONL ledger in the data directory.

use std::path::Path;

use costlayer::ledger::JsonlStorage;

use crate::CliError;

/// The environment variable naming who the legacy `costs.json` entries
/// without a user belong to (default `legacy`).
pub(crate) const LEGACY_USER_ENV: &str = "COSTLAYER_LEGACY_USER";

/// The JSONL ledger in `dir`, acting as `user` (whose file `--reset`
/// archives). Scans always see the team view; the report filters by user.
pub(crate) fn open(dir: &Path, user: &str) -> Result<JsonlStorage, CliError> {
    let mut b = JsonlStorage::builder(dir).user(user);
    if let Some(legacy) = std::env::var(LEGACY_USER_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty())
    {
        b = b.legacy_user(legacy.trim());
    }
    b.build()
        .map_err(|e| CliError::Usage(format!("{e} (check --user / COSTLAYER_USER)")))
}
