//! The parallel fold over the team view
//! ([`JsonlStorage::fold_blocking`](super::JsonlStorage::fold_blocking)).
//!
//! Every ledger file is cut into byte ranges of [`CHUNK`] bytes. A line
//! belongs to the range holding its first byte, so a worker starts at the
//! first line beginning in its range and reads past the range's end to
//! finish its last line: no line is split or read twice. Workers pull
//! ranges from a shared counter (a slow range does not stall the others)
//! and each folds into its own accumulator.
//!
//! Line numbers (which name quarantine copies) depend on every earlier
//! range, so a worker only notes where each corrupt line starts, its
//! number within the range and why it is corrupt. Once every range is
//! read, the numbers are made absolute and the corrupt lines are re-read,
//! copied to quarantine and folded, in file and line order, exactly as the
//! sequential scan does.

use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::files::{io_error, read_at};
use super::read::{self, classify, Lines, Outcome, ScanContext};
use super::view::{ParallelFold, RecordRef};
use super::{legacy, ScanSummary, LEGACY_FILE};
use crate::ledger::{LedgerError, ScanFilter, ScanItem};

/// The size of the byte ranges the files are cut into.
const CHUNK: u64 = 8 << 20;

/// A ledger file, open, with its length at the start of the scan.
struct Snap {
    path: PathBuf,
    file: File,
    len: u64,
}

/// A byte range of a file: the lines that start in `start..end`.
#[derive(Clone, Copy)]
struct Range {
    file: usize,
    start: u64,
    end: u64,
}

/// A corrupt line, noted by a worker.
struct Noted {
    /// The line's number within its range (1-based).
    line: u64,
    /// Where the line starts in its file.
    offset: u64,
    /// How many bytes of it the sequential scan would quarantine.
    keep: usize,
    reason: String,
}

/// What a worker found in one range besides records.
#[derive(Default)]
struct RangeOut {
    /// Lines that start in the range (blank and corrupt ones included).
    lines: u64,
    corrupt: Vec<Noted>,
}

/// Reads a file at a position, without moving any shared cursor, up to
/// `len`. Reads stop at `soft_end` first (the end of the range), so the
/// buffer does not read far into the next range only to finish a line.
struct At<'a> {
    file: &'a File,
    pos: u64,
    soft_end: u64,
    len: u64,
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let limit = if self.pos < self.soft_end {
            self.soft_end - self.pos
        } else {
            64 * 1024
        };
        let want = (buf.len() as u64).min(limit).min(self.len - self.pos.min(self.len));
        if want == 0 {
            return Ok(0);
        }
        // `want` is at most `buf.len()`, so it fits in usize.
        let want = usize::try_from(want).unwrap_or(buf.len());
        let n = read_at(self.file, &mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// The team view folded on `threads` threads (see the module docs).
pub(crate) fn fold_dir<F: ParallelFold>(
    ctx: &ScanContext,
    fold: &mut F,
    threads: usize,
) -> Result<ScanSummary, LedgerError> {
    let mut summary = ScanSummary::default();
    let legacy_path = ctx.dir.join(LEGACY_FILE);
    if legacy_path.is_file() || legacy_path.is_dir() {
        summary.files.push(legacy_path.clone());
        legacy::scan_legacy(
            &legacy_path,
            &ctx.legacy_user,
            &ctx.quarantine,
            &ScanFilter::default(),
            &mut summary,
            &mut |item| {
                match item {
                    ScanItem::Record(r) => fold.record(&RecordRef::from(&r)),
                    ScanItem::Corrupt(c) => fold.corrupt(c),
                }
                true
            },
        )?;
    }

    let mut snaps = Vec::new();
    for path in read::ledger_files(&ctx.dir)? {
        summary.files.push(path.clone());
        if let Some((file, len)) = read::open_snapshot(&path)? {
            snaps.push(Snap { path, file, len });
        }
    }
    let mut ranges = Vec::new();
    for (i, s) in snaps.iter().enumerate() {
        let mut start = 0;
        while start < s.len {
            let end = s.len.min(start + CHUNK);
            ranges.push(Range {
                file: i,
                start,
                end,
            });
            start = end;
        }
    }

    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let work = |fold: &mut F| -> Result<(u64, Vec<(usize, RangeOut)>), LedgerError> {
        let mut records = 0;
        let mut outs = Vec::new();
        let mut buf = Vec::with_capacity(1024);
        loop {
            if failed.load(Ordering::Relaxed) {
                break;
            }
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(&range) = ranges.get(i) else { break };
            let snap = &snaps[range.file];
            match fold_range(snap, range, fold, &mut buf, &mut records) {
                Ok(out) => outs.push((i, out)),
                Err(e) => {
                    failed.store(true, Ordering::Relaxed);
                    return Err(io_error(&snap.path, "read", e));
                }
            }
        }
        Ok((records, outs))
    };

    let workers = threads.clamp(1, ranges.len().max(1));
    let mut results = Vec::with_capacity(workers);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (1..workers)
            .map(|_| {
                let mut own = fold.fork();
                let work = &work;
                scope.spawn(move || work(&mut own).map(|r| (own, r)))
            })
            .collect();
        results.push(work(fold).map(|r| (None, r)));
        for h in handles {
            match h.join() {
                Ok(r) => results.push(r.map(|(own, r)| (Some(own), r))),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });

    let mut outs: Vec<Option<RangeOut>> = ranges.iter().map(|_| None).collect();
    for result in results {
        let (own, (records, done)) = result?;
        if let Some(own) = own {
            fold.merge(own);
        }
        summary.records += records;
        for (i, out) in done {
            outs[i] = Some(out);
        }
    }
    summary.matched = summary.records;

    // Corrupt lines, in file and line order, numbered as one pass would.
    let mut bytes = Vec::new();
    let mut file_lines = 0u64;
    for (i, range) in ranges.iter().enumerate() {
        if range.start == 0 {
            file_lines = 0;
        }
        let out = outs[i].take().unwrap_or_default();
        let snap = &snaps[range.file];
        let name = read::file_name(&snap.path);
        for noted in out.corrupt {
            bytes.resize(noted.keep, 0);
            read_exact(&snap.file, &mut bytes, noted.offset)
                .map_err(|e| io_error(&snap.path, "read", e))?;
            let line = file_lines + noted.line;
            summary.corrupt += 1;
            fold.corrupt(read::corrupt_line(
                &snap.path,
                &name,
                &ctx.quarantine,
                line,
                &bytes,
                noted.reason,
            ));
        }
        file_lines += out.lines;
    }
    Ok(summary)
}

/// Folds the records of the lines that start in `range`.
fn fold_range<F: ParallelFold>(
    snap: &Snap,
    range: Range,
    fold: &mut F,
    buf: &mut Vec<u8>,
    records: &mut u64,
) -> io::Result<RangeOut> {
    // Start at the line break before the range: the first line read is the
    // end of the previous range's last line (only the break itself if a
    // line starts right at `range.start`).
    let origin = range.start.saturating_sub(1);
    let mut lines = Lines::new(At {
        file: &snap.file,
        pos: origin,
        soft_end: range.end,
        len: snap.len,
    });
    if range.start > 0 && lines.next(buf)?.is_none() {
        return Ok(RangeOut::default());
    }
    let first = lines.number;
    let mut out = RangeOut::default();
    loop {
        let offset = origin + lines.pos;
        if offset >= range.end {
            break;
        }
        if lines.next_canonical_ref(|r| fold.record(r))? {
            *records += 1;
            continue;
        }
        let Some(line) = lines.next(buf)? else { break };
        match classify(line, buf) {
            Outcome::Blank => {}
            Outcome::Record(rec) => {
                *records += 1;
                fold.record(&RecordRef::from(&rec));
            }
            Outcome::Corrupt(reason) => out.corrupt.push(Noted {
                line: lines.number - first,
                offset,
                keep: buf.len(),
                reason,
            }),
        }
    }
    out.lines = lines.number - first;
    Ok(out)
}

fn read_exact(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        let n = read_at(file, buf, offset)?;
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        buf = &mut buf[n..];
        offset += n as u64;
    }
    Ok(())
}
