//! Opening the ledger the CLI reads.
//!
//! Reads `costs_<user>.jsonl` (or every `costs_*.jsonl` with `--team`) in the
//! data directory through the [`Storage`] trait, so the commands work the
//! same on any backend.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use costlayer::ledger::{
    CorruptLine, CostRecord, LedgerError, RecordStream, ResetReport, ResetScope, ScanFilter,
    ScanItem, Storage,
};

/// Opens the ledger in `dir`: one user's file, or every user's with `team`.
pub(crate) fn open(dir: &Path, user: &str, team: bool) -> Arc<dyn Storage> {
    Arc::new(DirLedger {
        dir: dir.to_path_buf(),
        user: user.to_owned(),
        team,
    })
}

/// `costs_<user>.jsonl` for `user`, with anything but `[A-Za-z0-9._-]`
/// replaced so a user name can never leave the directory.
pub(crate) fn file_name(user: &str) -> String {
    let safe: String = user
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let safe = safe.replace("..", "__");
    format!("costs_{safe}.jsonl")
}

#[derive(Debug)]
struct DirLedger {
    dir: PathBuf,
    user: String,
    team: bool,
}

impl DirLedger {
    fn io(&self, path: &Path, source: std::io::Error, hint: &str) -> LedgerError {
        LedgerError::Io {
            path: path.to_path_buf(),
            source,
            hint: hint.to_owned(),
        }
    }

    /// The ledger files this view covers, sorted.
    fn files(&self, all: bool) -> Result<Vec<PathBuf>, LedgerError> {
        if !all {
            let p = self.dir.join(file_name(&self.user));
            return Ok(if p.is_file() { vec![p] } else { Vec::new() });
        }
        let rd = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(self.io(&self.dir, e, "check that the data directory is readable"))
            }
        };
        let mut files: Vec<PathBuf> = rd
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.is_file()
                    && p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("costs_") && n.ends_with(".jsonl"))
            })
            .collect();
        files.sort();
        Ok(files)
    }
}

struct FileLines {
    files: std::vec::IntoIter<PathBuf>,
    current: Option<(PathBuf, std::io::Lines<BufReader<File>>, u64)>,
    filter: ScanFilter,
}

impl Iterator for FileLines {
    type Item = Result<ScanItem, LedgerError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((path, lines, n)) = &mut self.current {
                match lines.next() {
                    Some(Ok(line)) => {
                        *n += 1;
                        if line.trim().is_empty() {
                            continue;
                        }
                        match serde_json::from_str::<CostRecord>(&line) {
                            Ok(r) if self.filter.matches(&r) => {
                                return Some(Ok(ScanItem::Record(r)))
                            }
                            Ok(_) => continue,
                            Err(e) => {
                                return Some(Ok(ScanItem::Corrupt(CorruptLine {
                                    source: path.display().to_string(),
                                    line: *n,
                                    reason: e.to_string(),
                                    quarantined_to: None,
                                })))
                            }
                        }
                    }
                    Some(Err(e)) => {
                        let err = LedgerError::Io {
                            path: path.clone(),
                            source: e,
                            hint: "check that the ledger file is readable".into(),
                        };
                        self.current = None;
                        return Some(Err(err));
                    }
                    None => self.current = None,
                }
            } else {
                let path = self.files.next()?;
                match File::open(&path) {
                    Ok(f) => {
                        self.current = Some((path, BufReader::with_capacity(1 << 16, f).lines(), 0))
                    }
                    Err(e) => {
                        return Some(Err(LedgerError::Io {
                            path,
                            source: e,
                            hint: "check that the ledger file is readable".into(),
                        }))
                    }
                }
            }
        }
    }
}

#[async_trait]
impl Storage for DirLedger {
    async fn append(&self, record: &CostRecord) -> Result<(), LedgerError> {
        fs::create_dir_all(&self.dir)
            .map_err(|e| self.io(&self.dir, e, "check that the data directory can be created"))?;
        let path = self.dir.join(file_name(&record.user));
        let mut line = serde_json::to_vec(record)?;
        line.push(b'\n');
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| self.io(&path, e, "check that the ledger file is writable"))?;
        f.write_all(&line)
            .map_err(|e| self.io(&path, e, "check free disk space"))
    }

    async fn scan(&self, filter: &ScanFilter) -> Result<RecordStream, LedgerError> {
        let files = self.files(self.team)?;
        Ok(Box::pin(futures_util::stream::iter(FileLines {
            files: files.into_iter(),
            current: None,
            filter: filter.clone(),
        })))
    }

    async fn mark_alert(&self, _: &str, _: &serde_json::Value) -> Result<bool, LedgerError> {
        Err(LedgerError::Config(
            "the CLI's ledger view does not record alerts".into(),
        ))
    }

    async fn alert_fired(&self, _: &str) -> Result<bool, LedgerError> {
        Ok(false)
    }

    async fn reset(&self, scope: ResetScope) -> Result<ResetReport, LedgerError> {
        let files = match &scope {
            ResetScope::User(u) => {
                let p = self.dir.join(file_name(u));
                if p.is_file() {
                    vec![p]
                } else {
                    Vec::new()
                }
            }
            _ => self.files(true)?,
        };
        if files.is_empty() {
            return Ok(ResetReport::default());
        }
        let mut records = 0;
        for f in &files {
            let file = File::open(f)
                .map_err(|e| self.io(f, e, "check that the ledger file is readable"))?;
            records += BufReader::new(file)
                .lines()
                .map_while(Result::ok)
                .filter(|l| !l.trim().is_empty())
                .count() as u64;
        }
        let stamp = Utc::now().format("%Y%m%dT%H%M%S%.3fZ").to_string();
        let archive = self.dir.join("archive").join(stamp);
        fs::create_dir_all(&archive)
            .map_err(|e| self.io(&archive, e, "check that the data directory is writable"))?;
        let mut moved = Vec::new();
        for f in &files {
            let name = f.file_name().map(|n| n.to_owned()).unwrap_or_default();
            let to = archive.join(&name);
            fs::rename(f, &to)
                .map_err(|e| self.io(f, e, "check that the data directory is writable"))?;
            moved.push(name.to_string_lossy().into_owned());
        }
        Ok(ResetReport {
            archived_to: Some(archive.display().to_string()),
            moved,
            records,
        })
    }
}
