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
//!
//! The files are folded in groups of at most [`MAX_OPEN`], so the number
//! of open descriptors stays bounded however many users the directory
//! holds; each group's corrupt lines are folded after its records.

use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::files::{io_error, read_at, read_exact_at};
use super::read::{self, classify, Lines, Outcome, ScanContext, Snapshot};
use super::safe_open;
use super::view::{ParallelFold, RecordRef};
use super::{legacy, ScanSummary, LEGACY_FILE};
use crate::ledger::{CorruptLine, LedgerError, ScanFilter, ScanItem};

/// The size of the byte ranges the files are cut into.
pub(crate) const CHUNK: u64 = 8 << 20;

/// At most this many ledger files are open at once (a team directory may
/// hold thousands; macOS allows 256 descriptors by default).
pub(crate) const MAX_OPEN: usize = 64;

/// A ledger file, open, and the part of it to read: the lines that start
/// in `from..len` (`len`: its length at the start of the scan, or where a
/// checkpointed fold stops), numbered from `lines_before + 1`.
pub(crate) struct Snap {
    pub(crate) path: PathBuf,
    pub(crate) file: File,
    pub(crate) from: u64,
    pub(crate) len: u64,
    pub(crate) lines_before: u64,
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
        let want = (buf.len() as u64)
            .min(limit)
            .min(self.len - self.pos.min(self.len));
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
    if let Some(pass) = fold.as_dashboard_pass() {
        if pass.is_incremental() {
            return super::checkpoint::fold_dashboard(ctx, pass, threads);
        }
    }
    fold_dir_in(ctx, fold, threads, CHUNK)
}

/// [`fold_dir`] without the dashboard's checkpoint: every file from the
/// start.
pub(crate) fn fold_dir_full<F: ParallelFold>(
    ctx: &ScanContext,
    fold: &mut F,
    threads: usize,
) -> Result<ScanSummary, LedgerError> {
    fold_dir_in(ctx, fold, threads, CHUNK)
}

/// [`fold_dir`] with ranges of `chunk` bytes (at least 1).
fn fold_dir_in<F: ParallelFold>(
    ctx: &ScanContext,
    fold: &mut F,
    threads: usize,
    chunk: u64,
) -> Result<ScanSummary, LedgerError> {
    let chunk = chunk.max(1);
    let mut summary = ScanSummary::default();
    let legacy_path = ctx.dir.join(LEGACY_FILE);
    if safe_open::exists_nofollow(&legacy_path) {
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
    let paths = read::ledger_files(&ctx.dir)?;
    summary.files.extend(paths.iter().cloned());
    // At most MAX_OPEN files are open at once, however many users the
    // directory holds: the files are folded group by group.
    for group in paths.chunks(MAX_OPEN) {
        fold_group(ctx, group, fold, threads, chunk, &mut summary)?;
    }
    summary.matched = summary.records;
    Ok(summary)
}

/// Folds one group of ledger files: their records on `threads` threads,
/// then their corrupt lines in file and line order.
fn fold_group<F: ParallelFold>(
    ctx: &ScanContext,
    paths: &[PathBuf],
    fold: &mut F,
    threads: usize,
    chunk: u64,
    summary: &mut ScanSummary,
) -> Result<(), LedgerError> {
    // `Err`: refused (reported in its place among the corrupt lines).
    let mut snaps: Vec<Result<Snap, CorruptLine>> = Vec::new();
    for path in paths {
        match read::open_snapshot(path)? {
            Snapshot::Open(file, len) => snaps.push(Ok(Snap {
                path: path.clone(),
                file,
                from: 0,
                len,
                lines_before: 0,
            })),
            Snapshot::Gone => {}
            Snapshot::Refused(c) => snaps.push(Err(c)),
        }
    }
    fold_snaps(ctx, &snaps, fold, threads, chunk, summary)?;
    Ok(())
}

/// Folds the given parts of open ledger files: their records on `threads`
/// threads, then their corrupt lines in file and line order. Returns how
/// many lines were read in each (0 for a refused one).
pub(crate) fn fold_snaps<F: ParallelFold>(
    ctx: &ScanContext,
    snaps: &[Result<Snap, CorruptLine>],
    fold: &mut F,
    threads: usize,
    chunk: u64,
    summary: &mut ScanSummary,
) -> Result<Vec<u64>, LedgerError> {
    let chunk = chunk.max(1);
    let mut counted = vec![0u64; snaps.len()];
    let mut ranges = Vec::new();
    for (i, s) in snaps.iter().enumerate() {
        let Ok(s) = s else { continue };
        let mut start = s.from;
        while start < s.len {
            let end = s.len.min(start.saturating_add(chunk));
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
            let Some(Ok(snap)) = snaps.get(range.file) else {
                continue;
            };
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

    // Corrupt lines, in file and line order, numbered as one pass would.
    let mut bytes = Vec::new();
    let mut ranges = ranges.iter().enumerate().peekable();
    for (f, snap) in snaps.iter().enumerate() {
        let snap = match snap {
            Ok(snap) => snap,
            Err(refused) => {
                summary.corrupt += 1;
                fold.corrupt(refused.clone());
                continue;
            }
        };
        let name = read::file_name(&snap.path);
        let mut file_lines = snap.lines_before;
        while let Some((i, _)) = ranges.next_if(|(_, r)| r.file == f) {
            let out = outs[i].take().unwrap_or_default();
            for noted in out.corrupt {
                bytes.resize(noted.keep, 0);
                read_exact_at(&snap.file, &mut bytes, noted.offset)
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
        counted[f] = file_lines - snap.lines_before;
    }
    Ok(counted)
}

/// Folds the records of the lines that start in `range`.
fn fold_range<F: ParallelFold>(
    snap: &Snap,
    range: Range,
    fold: &mut F,
    buf: &mut Vec<u8>,
    records: &mut u64,
) -> io::Result<RangeOut> {
    let Some(first_line) = first_line_start(&snap.file, range, buf)? else {
        return Ok(RangeOut::default());
    };
    let capacity = (range.end - range.start).clamp(4 << 10, 256 << 10);
    let mut lines = Lines::with_capacity(
        usize::try_from(capacity).unwrap_or(256 << 10),
        At {
            file: &snap.file,
            pos: first_line,
            soft_end: range.end,
            len: snap.len,
        },
    );
    let origin = first_line;
    let user = read::file_user(&snap.path);
    let mut out = RangeOut::default();
    let mut scratch = super::scan::Scratch::default();
    loop {
        let offset = origin + lines.pos;
        if offset >= range.end {
            break;
        }
        if lines.next_scan_ref(&mut scratch, |r| fold.record(r))? {
            *records += 1;
            continue;
        }
        let Some(line) = lines.next(buf)? else { break };
        match classify(line, buf, &user) {
            Outcome::Blank => {}
            Outcome::Record(rec) => {
                *records += 1;
                fold.record(&RecordRef::from(&rec));
            }
            Outcome::Corrupt(reason) => out.corrupt.push(Noted {
                line: lines.number,
                offset,
                keep: buf.len(),
                reason,
            }),
        }
    }
    out.lines = lines.number;
    Ok(out)
}

/// Where the first line that starts in `range` starts: `range.start` if
/// the byte before it is a line break (or it is 0), else just past the next
/// line break. `None` if no line starts in the range (the search stops at
/// its end, so a long line is not read once per range it covers).
fn first_line_start(file: &File, range: Range, buf: &mut Vec<u8>) -> io::Result<Option<u64>> {
    if range.start == 0 {
        return Ok(Some(0));
    }
    let mut pos = range.start - 1;
    buf.resize(64 << 10, 0);
    while pos < range.end {
        let want = usize::try_from((range.end - pos).min(buf.len() as u64)).unwrap_or(buf.len());
        let n = read_at(file, &mut buf[..want], pos)?;
        if n == 0 {
            break;
        }
        if let Some(i) = buf[..n].iter().position(|&b| b == b'\n') {
            let start = pos + i as u64 + 1;
            return Ok((start < range.end).then_some(start));
        }
        pos += n as u64;
    }
    Ok(None)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use std::collections::BTreeSet;
    use std::io::Write;
    use std::path::Path;

    use chrono::{Duration, TimeZone, Utc};

    use super::*;
    use crate::ledger::{CorruptLine, CostRecord, JsonlStorage};
    use crate::{Mode, Money, Usage};

    /// Writes a ledger with every kind of line a scan meets: canonical
    /// records (with and without team, cache savings, tags, prices), other
    /// key orders, escapes, unknown fields, other timestamp forms, CRLF,
    /// blank lines, bad JSON, binary, an over-long line, a torn tail, and a
    /// legacy `costs.json` with a bad entry.
    pub(crate) fn write_messy_ledger(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        let now = Utc.with_ymd_and_hms(2026, 11, 16, 12, 0, 0).unwrap();
        let models = [
            ("openai", "gpt-4o"),
            ("openai", "gpt-4o-mini"),
            ("anthropic", "claude-sonnet-4-5"),
            ("gemini", "gemini-2.5-pro"),
        ];
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for (u, user) in ["alice", "bob", "c\"arol"].iter().enumerate() {
            let mut out = Vec::new();
            for i in 0..700u64 {
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let (p, m) = models[(x >> 33) as usize % models.len()];
                let mut r = CostRecord::new(*user, p, m, Usage::new((x >> 40) % 5_000, i));
                r.ts = now - Duration::milliseconds(((x >> 20) % (50 * 86_400_000)) as i64);
                r.nano_usd = match i % 11 {
                    0 => None,
                    _ => Some(Money::from_nanos(((x >> 7) % 50_000_000) as i64 - 1_000)),
                };
                if i % 3 == 0 {
                    r.team = Some(["ml", "web"][(i % 2) as usize].into());
                }
                if i % 5 == 0 {
                    r.mode = Mode::Batch;
                }
                if i % 13 == 0 {
                    r.cached = true;
                    r.saved_nano_usd = Some(Money::from_nanos(77));
                }
                if i % 17 == 0 {
                    r.tags.insert("k".into(), "v".into());
                    r.request_id = Some(format!("req_{i}").into());
                }
                let line = serde_json::to_string(&r).unwrap();
                match (i + u as u64) % 97 {
                    1 => out.extend_from_slice(b"{not json at all\n"),
                    2 => out.extend_from_slice(b"\xff\xfe binary \x00\n"),
                    3 => out.extend_from_slice(b"\n   \t\n"),
                    4 => {
                        // Unknown field: kept by the full parse.
                        let mut v = serde_json::to_value(&r).unwrap();
                        v["future_field"] = serde_json::json!({"a": [1, 2]});
                        out.extend(serde_json::to_vec(&v).unwrap());
                        out.push(b'\n');
                    }
                    5 => {
                        // Another key order and an escape.
                        let v = serde_json::to_value(&r).unwrap();
                        let mut pretty =
                            serde_json::to_string_pretty(&v).unwrap().replace('\n', " ");
                        pretty = pretty.replacen(
                            &format!("\"model\": \"{m}\""),
                            &format!("\"model\": \"{}\\u0031\"", &m[..m.len() - 1]),
                            1,
                        );
                        out.extend_from_slice(pretty.as_bytes());
                        out.push(b'\n');
                    }
                    6 => {
                        out.extend_from_slice(line.as_bytes());
                        out.extend_from_slice(b"\r\n");
                    }
                    7 => {
                        let other = line.replace(
                            &format!(
                                "\"ts\":\"{}",
                                &serde_json::to_value(r.ts).unwrap().as_str().unwrap()[..10]
                            ),
                            "\"ts\":\"2026-11-02T03:04:05.123456+02:00\",\"x\":\"",
                        );
                        out.extend_from_slice(other.as_bytes());
                        out.push(b'\n');
                    }
                    _ => {
                        out.extend_from_slice(line.as_bytes());
                        out.push(b'\n');
                    }
                }
                if u == 1 && i == 300 {
                    out.extend(std::iter::repeat_n(b'x', read::MAX_LINE + 5));
                    out.push(b'\n');
                }
            }
            if u == 2 {
                out.extend_from_slice(b"{\"v\":1,\"id\":\"01JDQ");
            }
            let name = format!(
                "costs_{}.jsonl",
                crate::ledger::sanitize_user(user).unwrap()
            );
            std::fs::File::create(dir.join(name))
                .unwrap()
                .write_all(&out)
                .unwrap();
        }
        std::fs::write(
            dir.join(LEGACY_FILE),
            r#"[{"timestamp": "2026-11-10 10:30:00", "model": "gpt-4o", "cost": 0.25},
                {"model": "gpt-4o"},
                {"ts": 1762000000, "model": "claude-haiku-4-5", "cost": 0.001, "user": "zed"}]"#,
        )
        .unwrap();
    }

    /// Every item, as text, to compare multisets.
    #[derive(Default)]
    struct Collect {
        records: Vec<String>,
        corrupt: Vec<CorruptLine>,
    }

    impl ParallelFold for Collect {
        fn fork(&self) -> Self {
            Collect::default()
        }
        fn record(&mut self, r: &RecordRef<'_>) {
            self.records.push(format!("{r:?}"));
        }
        fn corrupt(&mut self, c: CorruptLine) {
            self.corrupt.push(c);
        }
        fn merge(&mut self, other: Self) {
            self.records.extend(other.records);
            self.corrupt.extend(other.corrupt);
        }
    }

    /// Every quarantine entry, as `<quarantine file>: <entry line>`.
    fn quarantined(dir: &Path) -> BTreeSet<String> {
        let Ok(rd) = std::fs::read_dir(dir.join("quarantine")) else {
            return BTreeSet::new();
        };
        let mut out = BTreeSet::new();
        for e in rd {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            for line in std::fs::read_to_string(e.path()).unwrap().lines() {
                assert!(out.insert(format!("{name}: {line}")), "twice: {line}");
            }
        }
        out
    }

    #[test]
    fn parallel_fold_reads_exactly_what_the_sequential_scan_reads() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ledger");
        write_messy_ledger(&dir);
        let storage = JsonlStorage::builder(&dir).user("legacy").build().unwrap();
        let ctx = storage.scan_context();

        // Parallel first, so the quarantine copies are its own.
        let mut first = Collect::default();
        let par_summary = fold_dir_in(&ctx, &mut first, 2, 4096).unwrap();
        let copies = quarantined(&dir);

        let mut seq = Collect::default();
        let seq_summary = storage
            .scan_blocking(&ScanFilter::default(), |item| match item {
                ScanItem::Record(r) => seq.record(&RecordRef::from(&r)),
                ScanItem::Corrupt(c) => seq.corrupt(c),
            })
            .unwrap();
        assert!(seq_summary.corrupt >= 30, "{seq_summary:?}");
        assert!(seq_summary.records > 2_000, "{seq_summary:?}");
        // The sequential scan found every copy already there: same names,
        // same line numbers, same content hashes.
        assert_eq!(quarantined(&dir), copies);
        assert_eq!(copies.len() as u64, seq_summary.corrupt);
        seq.records.sort();

        for (threads, chunk) in [
            (1, CHUNK),
            (2, 4096),
            (3, 50),
            (2, 777),
            (4, 100_000),
            (8, 31),
        ] {
            let mut par = Collect::default();
            let summary = fold_dir_in(&ctx, &mut par, threads, chunk).unwrap();
            assert_eq!(summary, seq_summary, "threads {threads}, chunk {chunk}");
            assert_eq!(summary, par_summary);
            par.records.sort();
            assert_eq!(par.records, seq.records, "threads {threads}, chunk {chunk}");
            assert_eq!(par.corrupt, seq.corrupt, "threads {threads}, chunk {chunk}");
        }
        assert_eq!(quarantined(&dir), copies);
    }

    #[test]
    fn a_fresh_ledger_quarantines_the_same_copies_either_way() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        write_messy_ledger(&a);
        write_messy_ledger(&b);
        let sa = JsonlStorage::builder(&a).user("legacy").build().unwrap();
        let sb = JsonlStorage::builder(&b).user("legacy").build().unwrap();
        sa.scan_blocking(&ScanFilter::default(), |_| {}).unwrap();
        fold_dir_in(&sb.scan_context(), &mut Collect::default(), 3, 1000).unwrap();
        let qa = quarantined(&a);
        assert!(!qa.is_empty());
        assert_eq!(qa, quarantined(&b));
        for e in std::fs::read_dir(a.join("quarantine")).unwrap() {
            let name = e.unwrap().file_name();
            assert_eq!(
                std::fs::read(a.join("quarantine").join(&name)).unwrap(),
                std::fs::read(b.join("quarantine").join(&name)).unwrap(),
                "{name:?}"
            );
        }
    }

    #[test]
    fn the_dashboard_folded_in_parallel_equals_the_sequential_one() {
        use crate::budget::{Budget, Scope};
        use crate::report::DashboardPass;

        let tmp = tempfile::tempdir().unwrap();
        write_messy_ledger(tmp.path());
        let st = JsonlStorage::builder(tmp.path())
            .user("legacy")
            .build()
            .unwrap();
        let now = Utc.with_ymd_and_hms(2026, 11, 16, 12, 0, 0).unwrap();
        let usd = |n| Money::from_usd(n).unwrap();
        let budgets = [
            Budget::monthly(usd(200)),
            Budget::total(usd(1_000)),
            Budget::monthly(usd(50)).scope(Scope::User("bob".into())),
            Budget::monthly(usd(50)).scope(Scope::Team("ml".into())),
            Budget::total(usd(50)).scope(Scope::Model("GPT-4o".into())),
            Budget::total(usd(50)).scope(Scope::Provider("Anthropic".into())),
        ];
        let filters = [
            ScanFilter::default(),
            ScanFilter {
                providers: vec!["openai".into()],
                since: Some(now - Duration::days(20)),
                ..ScanFilter::default()
            },
            ScanFilter {
                users: vec!["alice".into(), "zed".into()],
                team: Some("ml".into()),
                until: Some(now - Duration::days(3)),
                ..ScanFilter::default()
            },
        ];
        for filter in filters {
            let mut seq = DashboardPass::new(now, budgets.clone(), filter.clone());
            st.scan_blocking(&ScanFilter::default(), |item| seq.push(&item))
                .unwrap();
            let seq = seq.finish("x").to_json();
            assert!(seq["total_calls"].as_u64().unwrap() > 0, "{filter:?}");
            assert!(seq["corrupted_lines"].as_u64().unwrap() > 0);
            for (threads, chunk) in [(2, 4096), (3, 65_536), (2, CHUNK)] {
                let mut par = DashboardPass::new(now, budgets.clone(), filter.clone());
                fold_dir_in(&st.scan_context(), &mut par, threads, chunk).unwrap();
                assert_eq!(
                    par.finish("x").to_json(),
                    seq,
                    "{filter:?} {threads} {chunk}"
                );
            }
            let mut par = DashboardPass::new(now, budgets.clone(), filter.clone());
            st.fold_blocking(&mut par).unwrap();
            assert_eq!(par.finish("x").to_json(), seq);
        }
    }

    #[test]
    fn ranges_of_a_few_bytes_still_read_every_line_once() {
        let tmp = tempfile::tempdir().unwrap();
        let mut data = Vec::new();
        for i in 0..4u64 {
            let mut r = CostRecord::new("u", "openai", "gpt-4o", Usage::new(i, 1));
            r.nano_usd = Some(Money::from_nanos(i as i64));
            data.extend(serde_json::to_vec(&r).unwrap());
            data.extend_from_slice(if i == 2 { b"\r\n" } else { b"\n" });
            data.extend_from_slice([b"{bad\n".as_slice(), b"\n", b"  \n", b"x\n"][i as usize]);
        }
        data.extend_from_slice(b"{\"v\":1,\"id");
        std::fs::write(tmp.path().join("costs_u.jsonl"), &data).unwrap();
        let st = JsonlStorage::builder(tmp.path()).build().unwrap();
        let mut seq = Collect::default();
        let seq_summary = st
            .scan_blocking(&ScanFilter::default(), |item| match item {
                ScanItem::Record(r) => seq.record(&RecordRef::from(&r)),
                ScanItem::Corrupt(c) => seq.corrupt(c),
            })
            .unwrap();
        assert_eq!((seq_summary.records, seq_summary.corrupt), (4, 3));
        for chunk in [1, 2, 3, 5, 64] {
            let mut par = Collect::default();
            let summary = fold_dir_in(&st.scan_context(), &mut par, 3, chunk).unwrap();
            assert_eq!(summary, seq_summary, "chunk {chunk}");
            par.records.sort();
            seq.records.sort();
            assert_eq!(par.records, seq.records, "chunk {chunk}");
            assert_eq!(par.corrupt, seq.corrupt, "chunk {chunk}");
        }
        let lines: Vec<u64> = seq.corrupt.iter().map(|c| c.line).collect();
        assert_eq!(lines, [2, 8, 9]);
    }

    #[test]
    fn empty_missing_and_blank_ledgers() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = JsonlStorage::builder(tmp.path().join("nope"))
            .build()
            .unwrap();
        let mut c = Collect::default();
        let s = fold_dir_in(&missing.scan_context(), &mut c, 2, 10).unwrap();
        assert_eq!(s, ScanSummary::default());

        std::fs::write(tmp.path().join("costs_a.jsonl"), b"").unwrap();
        std::fs::write(tmp.path().join("costs_b.jsonl"), b"\n\n  \n").unwrap();
        let st = JsonlStorage::builder(tmp.path()).build().unwrap();
        let s = fold_dir_in(&st.scan_context(), &mut c, 2, 1).unwrap();
        assert_eq!((s.files.len(), s.records, s.corrupt), (2, 0, 0));
        assert!(c.records.is_empty() && c.corrupt.is_empty());
    }

    #[test]
    fn a_directory_or_a_link_named_like_a_ledger_is_reported_and_skipped() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("costs_x.jsonl")).unwrap();
        let r = CostRecord::new("y", "openai", "gpt-4o", Usage::new(1, 1));
        let mut line = serde_json::to_vec(&r).unwrap();
        line.push(b'\n');
        std::fs::write(tmp.path().join("costs_y.jsonl"), &line).unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(
            tmp.path().join("costs_y.jsonl"),
            tmp.path().join("costs_z.jsonl"),
        )
        .unwrap();
        let st = JsonlStorage::builder(tmp.path()).build().unwrap();
        for threads in [1, 3] {
            let mut par = Collect::default();
            let s = fold_dir_in(&st.scan_context(), &mut par, threads, 7).unwrap();
            let mut seq = Collect::default();
            let seq_s = st
                .scan_blocking(&ScanFilter::default(), |item| match item {
                    ScanItem::Record(r) => seq.record(&RecordRef::from(&r)),
                    ScanItem::Corrupt(c) => seq.corrupt(c),
                })
                .unwrap();
            assert_eq!(s, seq_s);
            assert_eq!(par.corrupt, seq.corrupt);
            assert_eq!(s.records, 1, "only the regular file is read");
            let expected = if cfg!(unix) { 2 } else { 1 };
            assert_eq!(par.corrupt.len(), expected, "{:?}", par.corrupt);
            assert!(par.corrupt[0].source.ends_with("costs_x.jsonl"));
            assert_eq!(par.corrupt[0].line, 0);
            assert!(par.corrupt[0].reason.contains("is a directory"));
            assert!(par.corrupt.iter().all(|c| c.quarantined_to.is_none()));
        }
        assert!(!tmp.path().join("quarantine").exists());
    }
}
