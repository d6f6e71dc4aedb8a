//! The default ledger: one append-only JSONL file per user.

use std::path::PathBuf;

/// One append-only JSONL file per user in a directory.
#[derive(Debug, Clone)]
pub struct JsonlStorage {
    dir: PathBuf,
}

impl JsonlStorage {
    /// The directory holding the ledger files.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }
}
