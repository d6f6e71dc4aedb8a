//! The quarantine: one append-only file per source ledger,
//! `quarantine/<source>.quarantine.jsonl`, one JSON line per corrupt line:
//!
//! ```json
//! {"source":"costs_alice.jsonl","line":3,"fnv":"9f2c…","reason":"…","text":"{\"v\":1,\"id"}
//! ```
//!
//! `text` holds the line when it is UTF-8, `hex` (lower-case) otherwise;
//! `fnv` is the 64-bit FNV-1a hash of its bytes. A line (same source, same
//! number, same bytes) is kept once however often it is read, across
//! processes too: the check and the append happen under the quarantine
//! file's lock. However many lines are bad, one file per source.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::files::{fnv1a64, LockGuard};
use super::safe_open;

/// Where corrupt lines are copied, once.
#[derive(Debug, Clone, Default)]
pub(crate) struct Quarantine {
    dir: Option<PathBuf>,
    /// Per quarantine file: how far it has been read, and the entries seen.
    seen: Arc<Mutex<HashMap<PathBuf, Seen>>>,
}

#[derive(Debug, Default)]
struct Seen {
    len: u64,
    keys: HashSet<(u64, u64)>,
}

#[derive(Serialize)]
struct EntryOut<'a> {
    source: &'a str,
    line: u64,
    fnv: String,
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hex: Option<String>,
}

#[derive(Deserialize)]
struct EntryIn {
    line: u64,
    fnv: String,
}

impl Quarantine {
    /// A quarantine in `dir` (`None`: keep nothing).
    pub(crate) fn new(dir: Option<PathBuf>) -> Self {
        Quarantine {
            dir,
            seen: Arc::default(),
        }
    }

    /// The quarantine file of the ledger named `source_name`.
    pub(crate) fn file_for(dir: &Path, source_name: &str) -> PathBuf {
        dir.join(format!("{source_name}.quarantine.jsonl"))
    }

    /// Appends `bytes` (line `line` of `source_name`, corrupt because of
    /// `reason`) to the source's quarantine file unless it is there
    /// already. Returns the quarantine file. Never fails the scan: a
    /// problem is logged and `None` returned.
    pub(crate) fn keep(
        &self,
        source_name: &str,
        line: u64,
        bytes: &[u8],
        reason: &str,
    ) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        if let Err(e) = safe_open::ensure_real_dir(dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot use the ledger quarantine directory");
            return None;
        }
        let path = Self::file_for(dir, source_name);
        match self.append_once(&path, source_name, line, bytes, reason) {
            Ok(()) => Some(path),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot copy a corrupt ledger line to quarantine");
                None
            }
        }
    }

    fn append_once(
        &self,
        path: &Path,
        source_name: &str,
        line: u64,
        bytes: &[u8],
        reason: &str,
    ) -> std::io::Result<()> {
        let file = safe_open::append(path)?;
        file.lock()?;
        let _guard = LockGuard(&file);
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let seen = seen.entry(path.to_path_buf()).or_default();
        let len = file.metadata()?.len();
        if len < seen.len {
            // Replaced or truncated by someone else: read it again.
            *seen = Seen::default();
        }
        if len > seen.len {
            read_keys(&file, seen.len, len, &mut seen.keys)?;
            seen.len = len;
        }
        let hash = fnv1a64(0, bytes);
        if seen.keys.contains(&(line, hash)) {
            return Ok(());
        }
        let text = std::str::from_utf8(bytes).ok();
        let entry = EntryOut {
            source: source_name,
            line,
            fnv: format!("{hash:016x}"),
            reason,
            text,
            hex: text.is_none().then(|| hex(bytes)),
        };
        let mut out = serde_json::to_vec(&entry)?;
        out.push(b'\n');
        let end = super::writer::append_bytes(&file, &out, Some(len))?;
        seen.keys.insert((line, hash));
        seen.len = end;
        Ok(())
    }
}

/// Reads the entries of `file` between `from` and `to` into `keys`.
fn read_keys(
    mut file: &File,
    from: u64,
    to: u64,
    keys: &mut HashSet<(u64, u64)>,
) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(from))?;
    let mut reader = BufReader::new(file.take(to - from));
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            return Ok(());
        }
        if let Ok(e) = serde_json::from_slice::<EntryIn>(&buf) {
            if let Ok(h) = u64::from_str_radix(&e.fnv, 16) {
                keys.insert((e.line, h));
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn thousands_of_bad_lines_make_one_file_each_kept_once() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("quarantine");
        let q = Quarantine::new(Some(dir.clone()));
        for n in 1..=4_001u64 {
            let p = q.keep("costs_a.jsonl", n, format!("bad {n}").as_bytes(), "why");
            assert!(p.is_some());
        }
        q.keep("costs_a.jsonl", 7, b"\xff\xfe", "binary");
        // Another scan (another process) adds nothing it already holds.
        let again = Quarantine::new(Some(dir.clone()));
        for n in 1..=4_001u64 {
            again.keep("costs_a.jsonl", n, format!("bad {n}").as_bytes(), "why");
        }
        again.keep("costs_b.jsonl", 1, b"x", "why");
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(names.len(), 2);
        let text = std::fs::read_to_string(Quarantine::file_for(&dir, "costs_a.jsonl")).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 4_002);
        assert_eq!(lines[0]["source"], "costs_a.jsonl");
        assert_eq!(lines[0]["line"], 1);
        assert_eq!(lines[0]["text"], "bad 1");
        assert_eq!(lines[4_001]["hex"], "fffe");
    }
}
