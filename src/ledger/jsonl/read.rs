//! Reading the ledger: line splitting with a 1 MiB cap, the fast record
//! parser, quarantine of corrupt lines, and the directory scan (team view).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, ErrorKind, Read};
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;

use super::files::{io_error, LockGuard};
use super::legacy;
use super::safe_open;
use super::{ScanSummary, LEGACY_FILE};
use crate::ledger::{CorruptLine, CostRecord, LedgerError, RecordRef, ScanFilter, ScanItem};
use crate::{Mode, Money, Usage};

/// A line longer than this (without its newline) is corrupt.
pub(crate) const MAX_LINE: usize = 1 << 20;

/// What the scan callback says: keep going or stop.
pub(crate) type Sink<'a> = dyn FnMut(ScanItem) -> bool + 'a;

pub(crate) use super::quarantine::Quarantine;

/// Splits a reader into lines of at most [`MAX_LINE`] bytes.
pub(crate) struct Lines<R> {
    inner: BufReader<R>,
    /// Lines read so far (the 1-based number of the last one).
    pub(crate) number: u64,
    /// Bytes consumed so far.
    pub(crate) pos: u64,
}

pub(crate) enum Line {
    /// A line (without its `\n`); `complete` is false for a final line with
    /// no newline (a torn tail).
    Normal { complete: bool },
    /// Longer than [`MAX_LINE`]: `buf` holds its first bytes, `len` is the
    /// full length.
    Oversized { len: u64 },
}

impl<R: Read> Lines<R> {
    pub(crate) fn new(inner: R) -> Self {
        Self::with_capacity(256 * 1024, inner)
    }

    /// Lines read through a buffer of `capacity` bytes.
    pub(crate) fn with_capacity(capacity: usize, inner: R) -> Self {
        Lines {
            inner: BufReader::with_capacity(capacity, inner),
            number: 0,
            pos: 0,
        }
    }

    /// The dashboard's fast path: finds the next line in the read buffer
    /// (memchr) and reads it with the canonical parser, else with the
    /// layout-independent scanner ([`super::scan`]), calling `f` with a
    /// view of the record. Returns false (consuming nothing) if the line is
    /// not wholly buffered or neither takes it: [`Lines::next`] and the
    /// full parser then decide.
    pub(crate) fn next_scan_ref(
        &mut self,
        scratch: &mut super::scan::Scratch,
        f: impl FnOnce(&RecordRef<'_>),
    ) -> io::Result<bool> {
        let avail = self.inner.fill_buf()?;
        let Some(nl) = memchr::memchr(b'\n', avail) else {
            return Ok(false);
        };
        if nl > MAX_LINE {
            return Ok(false);
        }
        let mut line = &avail[..nl];
        if let [rest @ .., b'\r'] = line {
            line = rest;
        }
        match super::canonical::parse_prefix_ref(line) {
            Some((rec, end)) if end == line.len() => f(&rec),
            _ => match super::scan::scan_line(line, scratch) {
                Some(rec) => f(&rec),
                None => return Ok(false),
            },
        }
        let used = nl + 1;
        self.inner.consume(used);
        self.number += 1;
        self.pos += used as u64;
        Ok(true)
    }

    /// The fast path: parses a canonical record straight out of the read
    /// buffer (no newline search, no copy) if the next line is one and is
    /// wholly buffered. Otherwise consumes nothing and returns `None`, and
    /// [`Lines::next`] takes over.
    pub(crate) fn next_canonical(&mut self) -> io::Result<Option<CostRecord>> {
        let avail = self.inner.fill_buf()?;
        let Some((rec, end)) = super::canonical::parse_prefix(avail) else {
            return Ok(None);
        };
        let Some(used) = line_end(avail, end) else {
            return Ok(None);
        };
        self.inner.consume(used);
        self.number += 1;
        self.pos += used as u64;
        Ok(Some(rec))
    }

    pub(crate) fn next(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<Line>> {
        buf.clear();
        let limit = MAX_LINE as u64 + 1;
        let n = (&mut self.inner).take(limit).read_until(b'\n', buf)?;
        if n == 0 {
            return Ok(None);
        }
        self.number += 1;
        self.pos += n as u64;
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return Ok(Some(Line::Normal { complete: true }));
        }
        if n as u64 <= MAX_LINE as u64 {
            return Ok(Some(Line::Normal { complete: false }));
        }
        // Oversized: skip to the end of the line without holding it.
        let mut len = n as u64;
        let mut scratch = Vec::with_capacity(64 * 1024);
        loop {
            scratch.clear();
            let m = (&mut self.inner)
                .take(64 * 1024)
                .read_until(b'\n', &mut scratch)?;
            len += m as u64;
            self.pos += m as u64;
            if m == 0 {
                break;
            }
            if scratch.last() == Some(&b'\n') {
                len -= 1;
                break;
            }
        }
        Ok(Some(Line::Oversized { len }))
    }
}

/// How many bytes the canonical record ending at `end` takes with its line
/// break, if the break is in `avail` (`None`: not a whole line, or more
/// follows the record on its line).
fn line_end(avail: &[u8], end: usize) -> Option<usize> {
    match avail.get(end..end + 2) {
        Some([b'\n', _]) => Some(end + 1),
        Some([b'\r', b'\n']) => Some(end + 2),
        None if avail.get(end) == Some(&b'\n') => Some(end + 1),
        _ => None,
    }
}

/// The common shape of a line, without `flatten` (which buffers every
/// field): any line with a field this struct does not know falls back to
/// the full [`CostRecord`] parse, which keeps unknown fields.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FastRecord<'a> {
    #[serde(default = "one")]
    v: u32,
    #[serde(borrow)]
    id: &'a str,
    #[serde(borrow)]
    ts: &'a str,
    user: String,
    #[serde(default)]
    team: Option<String>,
    provider: String,
    model: String,
    #[serde(default)]
    mode: Mode,
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    cache_read_tokens: u64,
    #[serde(default)]
    cache_write_5m_tokens: u64,
    #[serde(default)]
    cache_write_1h_tokens: u64,
    #[serde(default)]
    reasoning_tokens: u64,
    #[serde(default)]
    nano_usd: Option<i64>,
    #[serde(default)]
    cached: bool,
    #[serde(default)]
    saved_nano_usd: Option<i64>,
    #[serde(default)]
    latency_ms: u64,
    #[serde(default)]
    request_id: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    #[serde(default)]
    price_version: Option<String>,
    #[serde(default)]
    cost_status: crate::CostStatus,
    #[serde(default)]
    cost_notes: Vec<String>,
}

fn one() -> u32 {
    crate::ledger::SCHEMA_VERSION
}

/// Parses `YYYY-MM-DDTHH:MM:SS.mmmZ`, the form the ledger writes.
pub(crate) fn parse_ts_fast(s: &str) -> Option<DateTime<Utc>> {
    parse_ts_bytes(s.as_bytes())
}

/// [`parse_ts_fast`] on bytes (any non-ASCII byte fails the parse).
pub(crate) fn parse_ts_bytes(b: &[u8]) -> Option<DateTime<Utc>> {
    if b.len() != 24
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'.'
        || b[23] != b'Z'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let mut n = 0u32;
        for &c in &b[r] {
            if !c.is_ascii_digit() {
                return None;
            }
            n = n * 10 + u32::from(c - b'0');
        }
        Some(n)
    };
    let year = i32::try_from(num(0..4)?).ok()?;
    let date = NaiveDate::from_ymd_opt(year, num(5..7)?, num(8..10)?)?;
    let time = date.and_hms_milli_opt(num(11..13)?, num(14..16)?, num(17..19)?, num(20..23)?)?;
    Some(time.and_utc())
}

/// [`fast_parse`], for the differential fuzz checks.
pub(crate) fn fast_parse_for_fuzz(line: &[u8]) -> Option<CostRecord> {
    fast_parse(line)
}

fn fast_parse(line: &[u8]) -> Option<CostRecord> {
    let f: FastRecord<'_> = serde_json::from_slice(line).ok()?;
    let ts = parse_ts_fast(f.ts)?;
    let id = ulid::Ulid::from_string(f.id).ok()?;
    Some(CostRecord {
        v: f.v,
        id,
        ts,
        user: f.user.into(),
        team: f.team.map(Into::into),
        provider: f.provider.into(),
        model: f.model.into(),
        mode: f.mode,
        usage: Usage {
            input_tokens: f.input_tokens,
            output_tokens: f.output_tokens,
            cache_read_tokens: f.cache_read_tokens,
            cache_write_5m_tokens: f.cache_write_5m_tokens,
            cache_write_1h_tokens: f.cache_write_1h_tokens,
            reasoning_tokens: f.reasoning_tokens,
            ..Usage::default()
        },
        nano_usd: f.nano_usd.map(Money::from_nanos),
        cached: f.cached,
        saved_nano_usd: f.saved_nano_usd.map(Money::from_nanos),
        latency_ms: f.latency_ms,
        request_id: f.request_id.map(Into::into),
        tags: f.tags,
        price_version: f.price_version.map(Into::into),
        cost_status: f.cost_status,
        cost_notes: f.cost_notes,
        extra: serde_json::Map::new(),
    })
}

/// Parses one ledger line: the hand-written parser for the exact form this
/// version writes, then a serde struct without `flatten` for the known
/// fields in any order, then the full parse (keeping unknown fields).
///
/// Whichever parser reads it, a record's amounts are then checked (see
/// [`super::amounts`]): out of range, the line is corrupt.
pub(crate) fn parse_line(line: &[u8]) -> Result<CostRecord, String> {
    parse_line_of(line, "")
}

/// [`parse_line`] for a line of `file_user`'s file: a line of the earlier
/// Python tool (no `id`/`v`, a dollar `cost`) is mapped, its user
/// defaulting to the file's. Amounts are checked whichever parser read it.
pub(crate) fn parse_line_of(line: &[u8], file_user: &str) -> Result<CostRecord, String> {
    let r = parse_any(line, file_user)?;
    super::amounts::check(&r.usage, r.nano_usd, r.saved_nano_usd)?;
    Ok(r)
}

fn parse_any(line: &[u8], file_user: &str) -> Result<CostRecord, String> {
    if let Some(r) = super::canonical::parse(line) {
        return Ok(r);
    }
    if let Some(r) = fast_parse(line) {
        return Ok(r);
    }
    match serde_json::from_slice::<CostRecord>(line) {
        Ok(r) => Ok(r),
        Err(e) => {
            if std::str::from_utf8(line).is_err() {
                Err("not UTF-8 text (binary data)".to_owned())
            } else {
                super::legacy::python_line(line, file_user).map_err(|why| {
                    format!(
                        "not a ledger record ({e}), nor a line of the earlier Python tool ({why})"
                    )
                })
            }
        }
    }
}

/// Everything a scan needs besides the filter.
#[derive(Debug, Clone)]
pub(crate) struct ScanContext {
    pub(crate) dir: PathBuf,
    /// Who legacy records without a user belong to.
    pub(crate) legacy_user: String,
    pub(crate) quarantine: Quarantine,
}

/// The `costs_*.jsonl` files in `dir`, sorted by name. A missing directory
/// has none.
pub(crate) fn ledger_files(dir: &Path) -> Result<Vec<PathBuf>, LedgerError> {
    list_matching(dir, "costs_", ".jsonl")
}

/// Entries of `dir` named `<prefix>*<suffix>`, sorted.
pub(crate) fn list_matching(
    dir: &Path,
    prefix: &str,
    suffix: &str,
) -> Result<Vec<PathBuf>, LedgerError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(dir, "list the ledger directory", e)),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| io_error(dir, "list the ledger directory", e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.len() > prefix.len() + suffix.len()
            && name.starts_with(prefix)
            && name.ends_with(suffix)
        {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// Scans the whole directory: the legacy file first, then every
/// `costs_*.jsonl` in name order. Stops early if `sink` returns false.
pub(crate) fn scan_dir(
    ctx: &ScanContext,
    filter: &ScanFilter,
    sink: &mut Sink<'_>,
) -> Result<ScanSummary, LedgerError> {
    let mut summary = ScanSummary::default();
    let legacy_path = ctx.dir.join(LEGACY_FILE);
    if safe_open::exists_nofollow(&legacy_path) {
        summary.files.push(legacy_path.clone());
        let go_on = legacy::scan_legacy(
            &legacy_path,
            &ctx.legacy_user,
            &ctx.quarantine,
            filter,
            &mut summary,
            sink,
        )?;
        if !go_on {
            return Ok(summary);
        }
    }
    for path in ledger_files(&ctx.dir)? {
        summary.files.push(path.clone());
        if !scan_file(&path, &ctx.quarantine, filter, &mut summary, sink)? {
            break;
        }
    }
    Ok(summary)
}

/// A ledger file opened for a scan.
pub(crate) enum Snapshot {
    /// Open, with its length under a shared lock (no append half-seen).
    Open(File, u64),
    /// Moved away (by a concurrent reset): nothing to read.
    Gone,
    /// A symbolic link or not a regular file: never read, reported as this
    /// corrupt entry (line 0: the whole file).
    Refused(CorruptLine),
}

/// Opens a ledger file (never through a link, only a regular file) and
/// measures its length under a shared lock.
pub(crate) fn open_snapshot(path: &Path) -> Result<Snapshot, LedgerError> {
    let file = match safe_open::read(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Snapshot::Gone),
        Err(e) => match refused_entry(path, &e) {
            Some(c) => return Ok(Snapshot::Refused(c)),
            None => return Err(io_error(path, "read", e)),
        },
    };
    let snapshot = {
        file.lock_shared().map_err(|e| io_error(path, "lock", e))?;
        let _guard = LockGuard(&file);
        file.metadata()
            .map_err(|e| io_error(path, "read", e))?
            .len()
    };
    Ok(Snapshot::Open(file, snapshot))
}

/// The report of a file the scan refused to open (a link, a FIFO, a
/// directory), or `None` if `e` is another error.
pub(crate) fn refused_entry(path: &Path, e: &io::Error) -> Option<CorruptLine> {
    let refused = safe_open::unsafe_file(e)?;
    let c = CorruptLine {
        source: path.display().to_string(),
        line: 0,
        reason: format!("skipped the whole file: {refused}"),
        quarantined_to: None,
    };
    tracing::warn!(file = %c.source, reason = %c.reason, "skipped a ledger file");
    Some(c)
}

/// A file's name, for quarantine copies.
pub(crate) fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// What a line that is not a canonical record turned out to be.
// Short-lived and returned by value; boxing the record would cost an
// allocation per non-canonical line (as `ScanItem` explains).
#[allow(clippy::large_enum_variant)]
pub(crate) enum Outcome {
    /// Empty or whitespace only: skipped, not counted.
    Blank,
    /// A record.
    Record(CostRecord),
    /// A corrupt line, and why.
    Corrupt(String),
}

/// The user a ledger file belongs to: `costs_<user>.jsonl` -> `<user>`.
pub(crate) fn file_user(path: &Path) -> String {
    let name = file_name(path);
    name.strip_prefix("costs_")
        .and_then(|n| n.strip_suffix(".jsonl"))
        .unwrap_or(&name)
        .to_owned()
}

/// Reads the line `lines.next` just put in `buf`, from `file_user`'s file.
pub(crate) fn classify(line: Line, buf: &[u8], file_user: &str) -> Outcome {
    match line {
        Line::Normal { complete } => {
            if buf.iter().all(super::amounts::is_json_ws) {
                return Outcome::Blank;
            }
            match parse_line_of(buf, file_user) {
                Ok(rec) => Outcome::Record(rec),
                Err(why) if !complete => Outcome::Corrupt(format!(
                    "torn final line (a writer stopped mid-append): {why}"
                )),
                Err(why) => Outcome::Corrupt(why),
            }
        }
        Line::Oversized { len } => Outcome::Corrupt(format!(
            "line is {len} bytes, over the 1 MiB limit (the quarantine copy keeps the first 1 MiB)"
        )),
    }
}

/// Copies corrupt line `line` of `path` (its first bytes in `bytes`) to
/// quarantine, logs it, and describes it.
pub(crate) fn corrupt_line(
    path: &Path,
    name: &str,
    quarantine: &Quarantine,
    line: u64,
    bytes: &[u8],
    reason: String,
) -> CorruptLine {
    let corrupt = CorruptLine {
        source: path.display().to_string(),
        line,
        quarantined_to: quarantine.keep(name, line, bytes, &reason),
        reason,
    };
    tracing::warn!(
        file = %corrupt.source,
        line = corrupt.line,
        reason = %corrupt.reason,
        "skipped a corrupt ledger line"
    );
    corrupt
}

/// Scans one JSONL ledger file up to its length at the start of the scan
/// (taken under a shared lock, so no append is half-seen). Returns false
/// if the sink asked to stop.
pub(crate) fn scan_file(
    path: &Path,
    quarantine: &Quarantine,
    filter: &ScanFilter,
    summary: &mut ScanSummary,
    sink: &mut Sink<'_>,
) -> Result<bool, LedgerError> {
    let (file, snapshot) = match open_snapshot(path)? {
        Snapshot::Open(file, len) => (file, len),
        Snapshot::Gone => return Ok(true),
        Snapshot::Refused(c) => {
            summary.corrupt += 1;
            return Ok(sink(ScanItem::Corrupt(c)));
        }
    };
    let name = file_name(path);
    let user = file_user(path);
    let mut lines = Lines::new((&file).take(snapshot));
    let mut buf = Vec::with_capacity(1024);
    loop {
        match lines.next_canonical() {
            Ok(Some(rec)) => {
                summary.records += 1;
                if filter.matches(&rec) {
                    summary.matched += 1;
                    if !sink(ScanItem::Record(rec)) {
                        return Ok(false);
                    }
                }
                continue;
            }
            Ok(None) => {}
            Err(e) => return Err(io_error(path, "read", e)),
        }
        let line = lines
            .next(&mut buf)
            .map_err(|e| io_error(path, "read", e))?;
        let Some(line) = line else { break };
        let reason = match classify(line, &buf, &user) {
            Outcome::Blank => continue,
            Outcome::Record(rec) => {
                summary.records += 1;
                if filter.matches(&rec) {
                    summary.matched += 1;
                    if !sink(ScanItem::Record(rec)) {
                        return Ok(false);
                    }
                }
                continue;
            }
            Outcome::Corrupt(why) => why,
        };
        summary.corrupt += 1;
        let corrupt = corrupt_line(path, &name, quarantine, lines.number, &buf, reason);
        if !sink(ScanItem::Corrupt(corrupt)) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Counts the good records of a (locked) ledger file from its start.
pub(crate) fn count_records(file: &File) -> io::Result<u64> {
    let mut lines = Lines::new(file);
    let mut buf = Vec::with_capacity(1024);
    let mut n = 0;
    while let Some(line) = lines.next(&mut buf)? {
        if matches!(line, Line::Normal { .. }) && parse_line(&buf).is_ok() {
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_path_equals_full_parse() {
        let mut r = CostRecord::new("al\"ice", "openai", "gpt-4o", Usage::new(3, 4));
        r.team = Some("t".into());
        r.nano_usd = Some(Money::from_nanos(-5));
        r.saved_nano_usd = Some(Money::from_nanos(9));
        r.tags.insert("k".into(), "v\n".into());
        r.request_id = Some("req_1".into());
        r.price_version = Some("2026-11-01:gpt-4o".into());
        r.mode = Mode::Batch;
        r.cached = true;
        r.latency_ms = 12;
        let line = serde_json::to_vec(&r).expect("ser");
        let fast = fast_parse(&line).expect("fast path taken");
        let full: CostRecord = serde_json::from_slice(&line).expect("full");
        assert_eq!(fast, full);
        assert_eq!(fast, r);
    }

    #[test]
    fn unknown_fields_take_the_full_path() {
        let r = CostRecord::new("a", "openai", "gpt-4o", Usage::new(1, 1));
        let mut v = serde_json::to_value(&r).expect("ser");
        v["new_field"] = serde_json::json!([1, 2]);
        let line = serde_json::to_vec(&v).expect("ser");
        assert!(fast_parse(&line).is_none());
        let parsed = parse_line(&line).expect("parse");
        assert_eq!(parsed.extra.len(), 1, "{:?}", parsed.extra);
        assert_eq!(parsed.extra["new_field"], serde_json::json!([1, 2]));
    }

    #[test]
    fn other_timestamp_forms_fall_back() {
        assert!(parse_ts_fast("2026-11-01T10:00:00.123Z").is_some());
        assert!(parse_ts_fast("2026-11-01T10:00:00Z").is_none());
        assert!(parse_ts_fast("2026-13-01T10:00:00.123Z").is_none());
        let line = br#"{"v":1,"id":"01JDQ3Z6Y2V8W5H4K7M9N0P1Q2","ts":"2026-11-01T12:00:00+02:00","user":"u","provider":"p","model":"m"}"#;
        let r = parse_line(line).expect("parse");
        assert_eq!(r.ts.to_rfc3339(), "2026-11-01T10:00:00+00:00");
    }

    #[test]
    fn canonical_lines_are_parsed_in_the_buffer_and_numbered() {
        let a = CostRecord::new("a", "openai", "gpt-4o", Usage::new(1, 2));
        let b = CostRecord::new("b", "openai", "gpt-4o", Usage::new(3, 4));
        let mut data = serde_json::to_vec(&a).expect("ser");
        data.extend_from_slice(b"\r\n{junk}\n");
        data.extend(serde_json::to_vec(&b).expect("ser"));
        data.push(b'\n');
        let mut lines = Lines::new(&data[..]);
        let mut buf = Vec::new();
        assert_eq!(lines.next_canonical().expect("io"), Some(a));
        assert_eq!(lines.next_canonical().expect("io"), None);
        assert!(matches!(
            lines.next(&mut buf).expect("io"),
            Some(Line::Normal { complete: true })
        ));
        assert_eq!(buf, b"{junk}");
        assert_eq!(lines.next_canonical().expect("io"), Some(b));
        assert_eq!(lines.number, 3);
        assert_eq!(lines.next_canonical().expect("io"), None);
        assert!(lines.next(&mut buf).expect("io").is_none());
    }

    #[test]
    fn lines_cap_length_and_flag_torn_tails() {
        let mut data = Vec::new();
        data.extend_from_slice(b"short\r\n");
        data.extend(std::iter::repeat_n(b'x', MAX_LINE + 10));
        data.extend_from_slice(b"\nexact");
        data.extend(std::iter::repeat_n(b'y', MAX_LINE - 5));
        data.extend_from_slice(b"\ntail");
        let mut lines = Lines::new(&data[..]);
        let mut buf = Vec::new();
        assert!(matches!(
            lines.next(&mut buf).expect("io"),
            Some(Line::Normal { complete: true })
        ));
        assert_eq!(buf, b"short");
        match lines.next(&mut buf).expect("io") {
            Some(Line::Oversized { len }) => assert_eq!(len, MAX_LINE as u64 + 10),
            _ => panic!("expected oversized"),
        }
        assert!(matches!(
            lines.next(&mut buf).expect("io"),
            Some(Line::Normal { complete: true })
        ));
        assert_eq!(buf.len(), MAX_LINE);
        assert!(matches!(
            lines.next(&mut buf).expect("io"),
            Some(Line::Normal { complete: false })
        ));
        assert_eq!(buf, b"tail");
        assert_eq!(lines.number, 4);
        assert!(lines.next(&mut buf).expect("io").is_none());
    }
}
