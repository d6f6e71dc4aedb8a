//! Checkpoints over the ledger files: the per-file [`Cursor`] shared with
//! the budget book, and the dashboard's checkpoint, which lets a repeat
//! dashboard read only what was appended since the last one.
//!
//! The dashboard's checkpoint (`dashboard_checkpoint.bin` in the ledger
//! directory) holds, for each `costs_*.jsonl` file, its identity (device
//! and inode), how far it was read (always the end of a whole line), how
//! many lines that is (corrupt lines are numbered by line) and a hash of
//! its first and last bytes up to there; and what the
//! [`DashboardPass`] had folded from exactly those bytes: the summary, each
//! budget's spend, and what may still fall in a later 7-day window: the
//! calls and cost of each second of the pass's window that has any (the
//! window starts at a whole second, so a later one takes a second whole or
//! not at all) and the time and cost of each record after its `now`. Its
//! size is bounded whatever the ledger's size: at most a week of seconds
//! (20 bytes each, about 12 MB) and the future-dated records. It is
//! written for one filter, calendar, month and set of budget periods (the
//! pass's key).
//!
//! A later pass with the same key and a later `now` starts from it and
//! reads each file from its cursor; the result is exactly that of reading
//! every file from the start. Anything else reads everything again (and
//! writes a new checkpoint): a different key or an earlier `now`; a file
//! of the checkpoint gone, replaced (another inode: a reset or a rotation),
//! shorter than its cursor (truncated) or with other bytes where it was
//! read (rewritten in place); a checkpoint that is corrupt or of another
//! version (reported at debug level); the legacy `costs.json` present.
//! Bytes after a file's last line break (a line being written) are read
//! every time and never checkpointed.
//!
//! The file is written whole to a temporary file and renamed into place,
//! so a reader sees the old checkpoint or the new one, never a mix, and of
//! two processes writing at once the last rename wins. It ends in a
//! checksum: a torn or altered file is ignored.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::files::{identity, io_error, read_exact_at};
use super::par::{self, Snap, CHUNK, MAX_OPEN};
use super::read::{self, ScanContext, Snapshot};
use super::{safe_open, ScanSummary, LEGACY_FILE};
use crate::ledger::{CorruptLine, LedgerError, ParallelFold};
use crate::report::{Bucket, DashboardPass, PassState, Recent, Summary};
use crate::Money;

/// How far a ledger file has been read, and which file it was: a later
/// read resumes at `offset` only if the file at the path still has this
/// device and inode and is at least that long.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Cursor {
    /// The file's device (0 where the platform has none).
    #[serde(default)]
    pub(crate) dev: u64,
    /// The file's inode (0 where the platform has none).
    #[serde(default)]
    pub(crate) ino: u64,
    /// The byte offset read up to.
    pub(crate) offset: u64,
}

/// The name of the dashboard's checkpoint in the ledger directory.
pub(crate) const CHECKPOINT_FILE: &str = "dashboard_checkpoint.bin";

/// The start of the file: its name and format version.
const MAGIC: &[u8; 8] = b"CLDASHCP";
/// The format version this build writes and reads (1 kept each recent
/// record; it is read as stale).
const VERSION: u32 = 2;
/// How many bytes at each end of a file's read part are hashed.
const SAMPLE: u64 = 4096;
/// The size of a second of the 7-day window in the file: its offset from
/// the window's start, calls and nano-dollars.
const SECOND_LEN: usize = 20;
/// The size of a future record in the file: seconds, nanoseconds, cost.
const FUTURE_LEN: usize = 20;

/// One ledger file in the checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct FileMark {
    #[serde(flatten)]
    cursor: Cursor,
    /// Lines up to the cursor (blank and corrupt ones included).
    lines: u64,
    /// Hash of the first bytes up to the cursor.
    head: u64,
    /// Hash of the last bytes before the cursor.
    tail: u64,
}

/// The JSON part of the checkpoint.
#[derive(Debug, Serialize, Deserialize)]
struct Head {
    v: u32,
    key: String,
    summary: Summary,
    spent: Vec<Money>,
    files: BTreeMap<String, FileMark>,
    /// Good records up to the cursors (filtered out or not).
    records: u64,
    /// Corrupt lines up to the cursors.
    corrupt: u64,
}

/// A checkpoint read back.
struct Loaded {
    files: BTreeMap<String, FileMark>,
    state: PassState,
    records: u64,
    corrupt: u64,
}

/// Why a fold from the checkpoint had to start over.
enum Run {
    Done(ScanSummary),
    Stale(&'static str),
}

/// Folds the ledger into `pass` from the checkpoint where it can (see the
/// module docs), and leaves a checkpoint for the next pass.
pub(crate) fn fold_dashboard(
    ctx: &ScanContext,
    pass: &mut DashboardPass,
    threads: usize,
) -> Result<ScanSummary, LedgerError> {
    let Some(key) = pass.checkpoint_key() else {
        return par::fold_dir_full(ctx, pass, threads);
    };
    if safe_open::exists_nofollow(&ctx.dir.join(LEGACY_FILE)) {
        return par::fold_dir_full(ctx, pass, threads);
    }
    pass.track_recent();
    let fresh = pass.fork();
    let path = ctx.dir.join(CHECKPOINT_FILE);
    let prior = load(&path, &key);
    match run(ctx, pass, threads, &key, prior)? {
        Run::Done(s) => Ok(s),
        Run::Stale(why) => {
            tracing::debug!(dir = %ctx.dir.display(), why, "the dashboard checkpoint does not fit: reading the whole ledger");
            *pass = fresh;
            match run(ctx, pass, threads, &key, None)? {
                Run::Done(s) => Ok(s),
                // Without a checkpoint nothing can be stale.
                Run::Stale(_) => par::fold_dir_full(ctx, pass, threads),
            }
        }
    }
}

fn run(
    ctx: &ScanContext,
    pass: &mut DashboardPass,
    threads: usize,
    key: &str,
    prior: Option<Loaded>,
) -> Result<Run, LedgerError> {
    let paths = read::ledger_files(&ctx.dir)?;
    let mut marks = BTreeMap::new();
    let mut summary = ScanSummary {
        files: paths.clone(),
        ..ScanSummary::default()
    };
    let resumed = prior.is_some();
    if let Some(prior) = prior {
        let names: Vec<String> = paths.iter().map(|p| read::file_name(p)).collect();
        if prior.files.keys().any(|k| !names.contains(k)) {
            return Ok(Run::Stale("a ledger file was removed or moved away"));
        }
        if !pass.restore(prior.state) {
            return Ok(Run::Stale("it was written for a later time"));
        }
        marks = prior.files;
        summary.records = prior.records;
        summary.corrupt = prior.corrupt;
    }
    let mut next = BTreeMap::new();
    let mut tails: Vec<(PathBuf, FileMark)> = Vec::new();
    let mut refused: Vec<CorruptLine> = Vec::new();
    for group in paths.chunks(MAX_OPEN) {
        let mut snaps: Vec<Result<Snap, CorruptLine>> = Vec::new();
        let mut ids = Vec::new();
        for path in group {
            let name = read::file_name(path);
            let old = marks.get(&name);
            match read::open_snapshot(path)? {
                Snapshot::Open(file, len) => {
                    let (dev, ino) = file_identity(&file, path)?;
                    let (from, lines_before) = match old {
                        Some(m) => {
                            if !same_file(m, &file, dev, ino, len)
                                .map_err(|e| io_error(path, "read", e))?
                            {
                                return Ok(Run::Stale(
                                    "a ledger file was replaced, truncated or rewritten",
                                ));
                            }
                            (m.cursor.offset, m.lines)
                        }
                        None => (0, 0),
                    };
                    let cut =
                        last_line_end(&file, from, len).map_err(|e| io_error(path, "read", e))?;
                    ids.push((name, dev, ino, len));
                    snaps.push(Ok(Snap {
                        path: path.clone(),
                        file,
                        from,
                        len: cut,
                        lines_before,
                    }));
                }
                Snapshot::Gone if old.is_some() => {
                    return Ok(Run::Stale("a ledger file was moved away"));
                }
                Snapshot::Gone => {}
                Snapshot::Refused(_) if old.is_some() => {
                    return Ok(Run::Stale("a ledger file was replaced by a link"));
                }
                Snapshot::Refused(c) => refused.push(c),
            }
        }
        let lines = par::fold_snaps(ctx, &snaps, pass, threads, CHUNK, &mut summary)?;
        for ((snap, (name, dev, ino, len)), n) in snaps.iter().zip(ids).zip(lines) {
            let Ok(snap) = snap else { continue };
            let offset = snap.len;
            let (head, tail) =
                samples(&snap.file, offset).map_err(|e| io_error(&snap.path, "read", e))?;
            let mark = FileMark {
                cursor: Cursor { dev, ino, offset },
                lines: snap.lines_before + n,
                head,
                tail,
            };
            if len > offset {
                tails.push((snap.path.clone(), mark));
            }
            next.insert(name, mark);
        }
    }

    // What was read up to each file's cursor is the checkpoint (unless
    // nothing was: the one there still fits). The pass stops noting the
    // recent spend: what follows is not checkpointed.
    if resumed && next == marks {
        tracing::trace!(dir = %ctx.dir.display(), "nothing new since the dashboard checkpoint");
    } else if let Some(state) = pass.take_state() {
        if let Err(e) = save(&ctx.dir, key, &state, next, &summary) {
            tracing::debug!(dir = %ctx.dir.display(), error = %e, "could not write the dashboard checkpoint (the next dashboard reads the whole ledger)");
        }
    }

    // Then what follows the last line break of a file (a line being
    // written), and the files that are not read.
    for (path, mark) in tails {
        let Snapshot::Open(file, len) = read::open_snapshot(&path)? else {
            continue;
        };
        let (dev, ino) = file_identity(&file, &path)?;
        if (dev, ino) != (mark.cursor.dev, mark.cursor.ino) || len <= mark.cursor.offset {
            continue;
        }
        let snap = Snap {
            path,
            file,
            from: mark.cursor.offset,
            len,
            lines_before: mark.lines,
        };
        par::fold_snaps(ctx, &[Ok(snap)], pass, threads, CHUNK, &mut summary)?;
    }
    for c in refused {
        summary.corrupt += 1;
        pass.corrupt(c);
    }
    summary.matched = summary.records;
    Ok(Run::Done(summary))
}

fn file_identity(file: &File, path: &Path) -> Result<(u64, u64), LedgerError> {
    let meta = file.metadata().map_err(|e| io_error(path, "read", e))?;
    Ok(identity(&meta).unwrap_or((0, 0)))
}

/// Whether `file` (of length `len`) is the file `mark` was taken of, with
/// the same bytes where it was read.
fn same_file(mark: &FileMark, file: &File, dev: u64, ino: u64, len: u64) -> io::Result<bool> {
    if (dev, ino) != (mark.cursor.dev, mark.cursor.ino) || len < mark.cursor.offset {
        return Ok(false);
    }
    Ok(samples(file, mark.cursor.offset)? == (mark.head, mark.tail))
}

/// Hashes of the first and of the last [`SAMPLE`] bytes before `offset`.
fn samples(file: &File, offset: u64) -> io::Result<(u64, u64)> {
    let n = offset.min(SAMPLE);
    // `n` is at most SAMPLE.
    let mut buf = vec![0u8; usize::try_from(n).unwrap_or(0)];
    read_exact_at(file, &mut buf, 0)?;
    let head = hash(&buf);
    read_exact_at(file, &mut buf, offset - n)?;
    Ok((head, hash(&buf)))
}

/// Just past the last line break in `from..len` (`from` if there is none).
fn last_line_end(file: &File, from: u64, len: u64) -> io::Result<u64> {
    let mut end = len;
    let mut buf = vec![0u8; 64 << 10];
    while end > from {
        let start = end.saturating_sub(buf.len() as u64).max(from);
        // At most buf.len().
        let want = usize::try_from(end - start).unwrap_or(buf.len());
        read_exact_at(file, &mut buf[..want], start)?;
        if let Some(i) = memchr::memrchr(b'\n', &buf[..want]) {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(from)
}

/// A stable 64-bit hash (FNV-1a over 8-byte words), for the samples and
/// the checksum. Not cryptographic: it catches torn and changed files.
fn hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        h ^= u64::from_le_bytes(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        h ^= h >> 29;
    }
    for &b in words.remainder() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^ (bytes.len() as u64)
}

/// The checkpoint's bytes: magic, version, JSON length and JSON; the 7-day
/// window's first second, the count of its seconds with calls and each
/// one (offset from the first, calls, nano-dollars); the count of future
/// records and each one (seconds, nanoseconds, cost); the checksum. All
/// little-endian.
fn encode(
    key: &str,
    state: &PassState,
    files: BTreeMap<String, FileMark>,
    counts: &ScanSummary,
) -> io::Result<Vec<u8>> {
    let head = Head {
        v: VERSION,
        key: key.to_owned(),
        summary: state.summary.clone(),
        spent: state.spent.clone(),
        files,
        records: counts.records,
        corrupt: counts.corrupt,
    };
    let json = serde_json::to_vec(&head)?;
    let recent = &state.recent;
    let seconds = recent.seconds().count();
    let future = recent.future();
    let mut out =
        Vec::with_capacity(56 + json.len() + seconds * SECOND_LEN + future.len() * FUTURE_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&recent.start().to_le_bytes());
    out.extend_from_slice(&(seconds as u64).to_le_bytes());
    for (at, b) in recent.seconds() {
        // An offset within the window (at most Recent::SLOTS).
        let at = u32::try_from(at).map_err(|_| io::Error::other("a second outside the window"))?;
        out.extend_from_slice(&at.to_le_bytes());
        out.extend_from_slice(&b.calls.to_le_bytes());
        out.extend_from_slice(&b.nano_usd.nanos().to_le_bytes());
    }
    out.extend_from_slice(&(future.len() as u64).to_le_bytes());
    for (ts, cost) in future {
        out.extend_from_slice(&ts.timestamp().to_le_bytes());
        out.extend_from_slice(&ts.timestamp_subsec_nanos().to_le_bytes());
        out.extend_from_slice(&cost.nanos().to_le_bytes());
    }
    let sum = hash(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    Ok(out)
}

/// Reads the checkpoint's bytes back; `Err` says why they are not one.
fn decode(bytes: &[u8], key: &str) -> Result<Loaded, &'static str> {
    let body_len = bytes.len().checked_sub(8).ok_or("too short")?;
    let (body, sum) = bytes.split_at(body_len);
    let magic = body.get(..8).ok_or("too short")?;
    if magic != MAGIC {
        return Err("not a dashboard checkpoint");
    }
    let mut at = 8;
    let version = u32::from_le_bytes(take(body, &mut at)?);
    if version > VERSION {
        return Err("written by a newer version of costlayer");
    }
    if version < VERSION {
        return Err("written by an older version of costlayer");
    }
    if u64::from_le_bytes(take(sum, &mut 0)?) != hash(body) {
        return Err("corrupt (its checksum does not match)");
    }
    let json_len =
        usize::try_from(u64::from_le_bytes(take(body, &mut at)?)).map_err(|_| "corrupt")?;
    let json = body
        .get(at..at.checked_add(json_len).ok_or("corrupt")?)
        .ok_or("corrupt")?;
    at += json_len;
    let head: Head = serde_json::from_slice(json).map_err(|_| "corrupt")?;
    if head.v != VERSION {
        return Err("corrupt");
    }
    if head.key != key {
        return Err("written for another filter, time zone, month or budgets");
    }
    let mut recent = Recent::new(i64::from_le_bytes(take(body, &mut at)?));
    let seconds = section(body, &mut at, SECOND_LEN)?;
    let mut next = 0;
    for r in seconds.chunks_exact(SECOND_LEN) {
        let mut at = 0;
        let second =
            usize::try_from(u32::from_le_bytes(take(r, &mut at)?)).map_err(|_| "corrupt")?;
        let calls = u64::from_le_bytes(take(r, &mut at)?);
        let nano_usd = Money::from_nanos(i64::from_le_bytes(take(r, &mut at)?));
        // In order, each once, each with calls.
        if second < next || calls == 0 || !recent.set_second(second, Bucket { calls, nano_usd }) {
            return Err("corrupt");
        }
        next = second + 1;
    }
    let future = section(body, &mut at, FUTURE_LEN)?;
    for r in future.chunks_exact(FUTURE_LEN) {
        let mut at = 0;
        let secs = i64::from_le_bytes(take(r, &mut at)?);
        let nanos = u32::from_le_bytes(take(r, &mut at)?);
        let cost = i64::from_le_bytes(take(r, &mut at)?);
        let ts = DateTime::<Utc>::from_timestamp(secs, nanos).ok_or("corrupt")?;
        recent.push_future(ts, Money::from_nanos(cost));
    }
    if at != body.len() {
        return Err("corrupt");
    }
    Ok(Loaded {
        records: head.records,
        corrupt: head.corrupt,
        files: head.files,
        state: PassState {
            summary: head.summary,
            spent: head.spent,
            recent,
        },
    })
}

/// A count at `at` and the `count` entries of `len` bytes after it.
fn section<'a>(body: &'a [u8], at: &mut usize, len: usize) -> Result<&'a [u8], &'static str> {
    let count = usize::try_from(u64::from_le_bytes(take(body, at)?)).map_err(|_| "corrupt")?;
    let end = count
        .checked_mul(len)
        .and_then(|n| n.checked_add(*at))
        .ok_or("corrupt")?;
    let s = body.get(*at..end).ok_or("corrupt")?;
    *at = end;
    Ok(s)
}

fn take<const N: usize>(bytes: &[u8], at: &mut usize) -> Result<[u8; N], &'static str> {
    let end = at.checked_add(N).ok_or("corrupt")?;
    let s = bytes.get(*at..end).ok_or("too short")?;
    let mut out = [0u8; N];
    out.copy_from_slice(s);
    *at = end;
    Ok(out)
}

/// The checkpoint at `path` if there is one for `key` (a missing one
/// silently, any other at debug level).
fn load(path: &Path, key: &str) -> Option<Loaded> {
    let bytes = match safe_open::read_to_end(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::debug!(path = %path.display(), error = %e, "cannot read the dashboard checkpoint: reading the whole ledger");
            return None;
        }
    };
    match decode(&bytes, key) {
        Ok(l) => Some(l),
        Err(why) => {
            tracing::debug!(path = %path.display(), why, "ignoring the dashboard checkpoint: reading the whole ledger");
            None
        }
    }
}

/// Writes the checkpoint atomically: a temporary file in the same
/// directory, renamed over the old one.
fn save(
    dir: &Path,
    key: &str,
    state: &PassState,
    files: BTreeMap<String, FileMark>,
    counts: &ScanSummary,
) -> io::Result<()> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    if !dir.is_dir() {
        return Ok(());
    }
    let bytes = encode(key, state, files, counts)?;
    let tmp = dir.join(format!(
        ".{CHECKPOINT_FILE}.{}.{}.tmp",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let written = safe_open::create_new(&tmp).and_then(|mut f| f.write_all(&bytes));
    let renamed = written.and_then(|()| std::fs::rename(&tmp, dir.join(CHECKPOINT_FILE)));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    renamed
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::num::NonZeroUsize;

    use chrono::{Duration, TimeZone};

    use super::*;
    use crate::budget::{Budget, Scope};
    use crate::calendar::Calendar;
    use crate::ledger::{CostRecord, JsonlStorage, ScanFilter};
    use crate::{Mode, Usage};

    /// A small random number generator (the tests must be reproducible).
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// One pass's settings.
    #[derive(Clone)]
    struct Config {
        budgets: Vec<Budget>,
        filter: ScanFilter,
        calendar: Calendar,
    }

    fn configs(now: DateTime<Utc>) -> Vec<Config> {
        let usd = |n| Money::from_usd(n).unwrap();
        vec![
            Config {
                budgets: vec![Budget::monthly(usd(200)), Budget::total(usd(1_000))],
                filter: ScanFilter::default(),
                calendar: Calendar::Utc,
            },
            Config {
                budgets: vec![
                    Budget::monthly(usd(50)).scope(Scope::User("bob".into())),
                    Budget::monthly(usd(50)).scope(Scope::Team("ml".into())),
                ],
                filter: ScanFilter {
                    users: vec!["alice".into(), "dave".into()],
                    team: Some("ml".into()),
                    ..ScanFilter::default()
                },
                calendar: Calendar::Utc,
            },
            Config {
                budgets: vec![Budget::rolling_days(
                    "3 days",
                    usd(20),
                    std::num::NonZeroU32::new(3).unwrap(),
                )],
                filter: ScanFilter {
                    since: Some(now - Duration::days(30)),
                    until: Some(now + Duration::days(40)),
                    providers: vec!["openai".into()],
                    ..ScanFilter::default()
                },
                calendar: Calendar::Zone(chrono_tz::Tz::Pacific__Kiritimati),
            },
        ]
    }

    /// The dashboard's JSON and how many records were read.
    fn dash(
        st: &JsonlStorage,
        now: DateTime<Utc>,
        c: &Config,
        incremental: bool,
    ) -> (serde_json::Value, u64) {
        let mut pass = DashboardPass::new(now, c.budgets.clone(), c.filter.clone())
            .calendar(c.calendar)
            .incremental(incremental);
        let scanned = st
            .fold_blocking_threads(&mut pass, NonZeroUsize::new(2).unwrap())
            .unwrap();
        let read = pass.records_read();
        let mut json = pass.finish("x").to_json();
        // What the scan says it read is the whole ledger either way.
        json["scanned"] = serde_json::json!([scanned.records, scanned.corrupt, scanned.files]);
        (json, read)
    }

    fn line(rng: &mut Rng, user: &str, now: DateTime<Utc>) -> Vec<u8> {
        let models = [
            ("openai", "gpt-4o"),
            ("openai", "gpt-4o-mini"),
            ("anthropic", "claude-sonnet-4-5"),
        ];
        let (p, m) = models[rng.below(3) as usize];
        let mut r = CostRecord::new(user, p, m, Usage::new(rng.below(5_000), rng.below(900)));
        // Mostly around now, some up to 3 days ahead, some weeks back.
        let back = i64::try_from(rng.below(20 * 86_400_000)).unwrap() - 3 * 86_400_000;
        r.ts = now - Duration::milliseconds(back);
        // Now and then on or next to the whole second that starts the
        // 7-day window of `now` or of a `now` a few seconds later.
        if rng.below(8) == 0 {
            let start = crate::report::week_start(now).unwrap();
            let near = [-1_000, -1, 0, 1, 999, 1_000, 1_001][rng.below(7) as usize];
            let later = 1_000 * i64::try_from(rng.below(4)).unwrap();
            r.ts = start + Duration::milliseconds(near + later);
        }
        r.nano_usd = match rng.below(9) {
            0 => None,
            _ => Some(Money::from_nanos(
                i64::try_from(rng.below(40_000_000)).unwrap(),
            )),
        };
        if rng.below(3) == 0 {
            r.team = Some(["ml", "web"][rng.below(2) as usize].into());
        }
        if rng.below(4) == 0 {
            r.mode = Mode::Batch;
        }
        if rng.below(7) == 0 {
            r.cached = true;
            r.saved_nano_usd = Some(Money::from_nanos(11));
        }
        let mut out = match rng.below(40) {
            0 => b"{not json".to_vec(),
            1 => Vec::new(),
            2 => serde_json::to_string_pretty(&r)
                .unwrap()
                .replace('\n', " ")
                .into_bytes(),
            _ => serde_json::to_vec(&r).unwrap(),
        };
        out.push(b'\n');
        out
    }

    fn append(dir: &Path, user: &str, bytes: &[u8]) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("costs_{user}.jsonl")))
            .unwrap();
        f.write_all(bytes).unwrap();
    }

    #[test]
    fn a_repeat_dashboard_over_random_appends_equals_a_full_recount() {
        let start =
            Utc.with_ymd_and_hms(2026, 11, 20, 12, 0, 0).unwrap() + Duration::milliseconds(437);
        for (ci, config) in configs(start).into_iter().enumerate() {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path();
            super::super::par::tests::write_messy_ledger(dir);
            std::fs::remove_file(dir.join(LEGACY_FILE)).unwrap();
            let st = JsonlStorage::builder(dir).user("alice").build().unwrap();
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (ci as u64 + 1));
            let mut now = start;
            let mut torn: Option<(&str, Vec<u8>)> = None;
            let (mut partial_runs, mut runs) = (0, 0);
            for step in 0..40 {
                let users = ["alice", "bob", "dave", "c%22arol"];
                for _ in 0..rng.below(4) {
                    let user = users[rng.below(if step < 10 { 2 } else { 4 }) as usize];
                    let mut bytes = Vec::new();
                    for _ in 0..rng.below(60) {
                        bytes.extend(line(&mut rng, user, now));
                    }
                    append(dir, user, &bytes);
                }
                // A line being written: half now, the rest at the next step
                // (or never, for the last one).
                if let Some((user, rest)) = torn.take() {
                    append(dir, user, &rest);
                }
                if rng.below(4) == 0 {
                    let user = users[rng.below(2) as usize];
                    let mut l = line(&mut rng, user, now);
                    let rest = l.split_off(l.len() / 2);
                    append(dir, user, &l);
                    torn = Some((user, rest));
                }
                // Mostly minutes to hours; now and then days (a new day or
                // month: other periods, read again), or a second or two (the
                // window's start moves past the records next to it). Never a
                // whole number of seconds.
                let minutes = if rng.below(5) == 0 {
                    3 * 24 * 60
                } else {
                    6 * 60
                };
                let ms = if rng.below(4) == 0 {
                    rng.below(3_000)
                } else {
                    60_000 * rng.below(minutes) + rng.below(1_000)
                };
                now += Duration::milliseconds(i64::try_from(ms).unwrap());
                let (full, all) = dash(&st, now, &config, false);
                let (inc, read) = dash(&st, now, &config, true);
                assert_eq!(inc, full, "config {ci}, step {step}, {now}");
                runs += 1;
                if read < all {
                    partial_runs += 1;
                }
                // Read again at once: nothing new, nothing read.
                let (again, _) = dash(&st, now, &config, true);
                assert_eq!(again, full, "config {ci}, step {step}, again");
            }
            // Most repeats read only the tail (a new month or budget period
            // reads everything again).
            assert!(
                partial_runs * 2 > runs,
                "config {ci}: {partial_runs} of {runs}"
            );
        }
    }

    /// A ledger of `n` records per user for the checkpoint tests.
    fn ledger(dir: &Path, n: usize, rng: &mut Rng, now: DateTime<Utc>) {
        for user in ["alice", "bob"] {
            let mut bytes = Vec::new();
            for _ in 0..n {
                bytes.extend(line(rng, user, now));
            }
            append(dir, user, &bytes);
        }
    }

    fn check(st: &JsonlStorage, now: DateTime<Utc>, what: &str) -> u64 {
        let c = &configs(now)[0];
        let (full, all) = dash(st, now, c, false);
        let (inc, read) = dash(st, now, c, true);
        assert_eq!(inc, full, "{what}");
        assert!(read <= all);
        read
    }

    #[test]
    fn a_repeat_much_later_drops_the_old_seconds_and_counts_the_future_records() {
        let first =
            Utc.with_ymd_and_hms(2026, 11, 2, 10, 0, 0).unwrap() + Duration::milliseconds(300);
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let st = JsonlStorage::builder(dir).user("alice").build().unwrap();
        let mut rng = Rng(0x5eed);
        // Records over the week before `first` and the days after it
        // (future-dated at first), some on the later windows' first seconds.
        let mut bytes = Vec::new();
        for i in 0..400u32 {
            let mut l = line(&mut rng, "alice", first);
            if i % 5 == 0 {
                let mut r: CostRecord = serde_json::from_slice(&l).unwrap_or_else(|_| {
                    CostRecord::new("alice", "openai", "gpt-4o", Usage::new(1, 1))
                });
                let later = first + Duration::days(1 + i64::from(i % 4) * 2);
                let start = crate::report::week_start(later).unwrap();
                r.ts = start + Duration::milliseconds([-1, 0, 1, 999][((i / 5) % 4) as usize]);
                r.nano_usd = Some(Money::from_nanos(1_i64 << (i % 40)));
                l = serde_json::to_vec(&r).unwrap();
                l.push(b'\n');
            }
            bytes.extend(l);
        }
        append(dir, "alice", &bytes);
        let (full, _) = dash(&st, first, &configs(first)[0], false);
        let (inc, _) = dash(&st, first, &configs(first)[0], true);
        assert_eq!(inc, full);
        // Days later (same month): the seconds before each new window's
        // start are dropped, the records that were ahead become due.
        let mut now = first;
        for (days, ms) in [(1, 0), (3, 1), (5, 999), (7, 500), (8, 1), (20, 250)] {
            let before = now;
            now = first + Duration::days(days) + Duration::milliseconds(ms);
            let c = &configs(now)[0];
            let (full, all) = dash(&st, now, c, false);
            // Back to the checkpoint of `before`, then the later `now`.
            dash(&st, before, c, true);
            let (inc, read) = dash(&st, now, c, true);
            assert_eq!(inc, full, "{now}");
            assert!(read < all, "{now}: read from the checkpoint");
            assert_eq!(read, 0, "{now}: nothing was appended");
            append(dir, "bob", &line(&mut rng, "bob", now));
        }
    }

    #[test]
    fn truncated_rotated_rewritten_or_removed_files_are_read_again() {
        let now = Utc.with_ymd_and_hms(2026, 11, 20, 12, 0, 0).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let mut rng = Rng(77);
        ledger(dir, 300, &mut rng, now);
        let st = JsonlStorage::builder(dir).user("alice").build().unwrap();
        assert!(check(&st, now, "first") > 0);
        assert_eq!(check(&st, now, "repeat"), 0, "a repeat reads nothing");
        let alice = dir.join("costs_alice.jsonl");

        // Truncated (to a line break, so no torn line is left).
        let body = std::fs::read(&alice).unwrap();
        let cut = memchr::memrchr(b'\n', &body[..body.len() / 2]).unwrap() + 1;
        std::fs::OpenOptions::new()
            .write(true)
            .open(&alice)
            .unwrap()
            .set_len(cut as u64)
            .unwrap();
        assert!(check(&st, now, "truncated") > 0);
        assert_eq!(check(&st, now, "after truncation"), 0);

        // Rotated: another file (another inode) of the same length.
        let body = std::fs::read(&alice).unwrap();
        std::fs::rename(&alice, dir.join("old_alice.jsonl.bak")).unwrap();
        let mut other = body.clone();
        let at = other.len() / 2;
        other[at..at + 1].copy_from_slice(b" ");
        std::fs::write(&alice, &other).unwrap();
        assert!(check(&st, now, "rotated") > 0);

        // Rewritten in place where it was read (its last lines).
        let body = std::fs::read(&alice).unwrap();
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&alice)
            .unwrap();
        std::os::unix::fs::FileExt::write_at(&f, b"{\"broken", body.len() as u64 - 300).unwrap();
        drop(f);
        assert!(check(&st, now, "rewritten") > 0);

        // Appended: only the tail is read.
        ledger(dir, 5, &mut rng, now);
        let read = check(&st, now, "appended");
        assert!(read > 0 && read <= 10, "{read}");

        // Removed.
        std::fs::remove_file(dir.join("costs_bob.jsonl")).unwrap();
        assert!(check(&st, now, "removed") > 0);

        // Reset: every file archived, the dashboard is empty.
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(crate::ledger::Storage::reset(
            &st,
            crate::ledger::ResetScope::All,
        ))
        .unwrap();
        check(&st, now, "reset");
        let (after, _) = dash(&st, now, &configs(now)[0], true);
        assert_eq!(after["total_calls"], 0);
    }

    #[test]
    fn a_corrupt_foreign_or_newer_checkpoint_is_ignored() {
        let now = Utc.with_ymd_and_hms(2026, 11, 20, 12, 0, 0).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let mut rng = Rng(99);
        ledger(dir, 200, &mut rng, now);
        let st = JsonlStorage::builder(dir).user("alice").build().unwrap();
        check(&st, now, "first");
        let cp = dir.join(CHECKPOINT_FILE);
        let good = std::fs::read(&cp).unwrap();
        assert_eq!(check(&st, now, "repeat"), 0);

        let mut bad = good.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 1;
        std::fs::write(&cp, &bad).unwrap();
        assert!(check(&st, now, "corrupt") > 0);
        std::fs::write(&cp, &good[..good.len() / 3]).unwrap();
        assert!(check(&st, now, "torn") > 0);
        std::fs::write(&cp, b"").unwrap();
        assert!(check(&st, now, "empty") > 0);
        let mut newer = good.clone();
        newer[8] = 9;
        std::fs::write(&cp, &newer).unwrap();
        assert!(check(&st, now, "newer") > 0);
        // A checkpoint from another ledger (same names, other files).
        let other = tempfile::tempdir().unwrap();
        ledger(other.path(), 200, &mut rng, now);
        let so = JsonlStorage::builder(other.path())
            .user("alice")
            .build()
            .unwrap();
        check(&so, now, "other ledger");
        std::fs::copy(other.path().join(CHECKPOINT_FILE), &cp).unwrap();
        assert!(check(&st, now, "foreign") > 0);
        // An earlier `now` than the checkpoint's, then another filter.
        assert!(check(&st, now - Duration::hours(1), "earlier") > 0);
        let c = Config {
            filter: ScanFilter {
                users: vec!["bob".into()],
                ..ScanFilter::default()
            },
            ..configs(now)[0].clone()
        };
        let (full, _) = dash(&st, now, &c, false);
        let (inc, read) = dash(&st, now, &c, true);
        assert_eq!((inc, read > 0), (full, true));
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(names.is_empty(), "{names:?}");
    }

    #[test]
    fn a_pass_fed_before_the_fold_reads_the_whole_ledger() {
        let now = Utc.with_ymd_and_hms(2026, 11, 20, 12, 0, 0).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        ledger(tmp.path(), 50, &mut Rng(3), now);
        let st = JsonlStorage::builder(tmp.path())
            .user("alice")
            .build()
            .unwrap();
        check(&st, now, "checkpoint");
        let extra = CostRecord::new("zed", "openai", "gpt-4o", Usage::new(1, 1));
        let fed = |incremental: bool| {
            let mut pass =
                DashboardPass::new(now, [], ScanFilter::default()).incremental(incremental);
            pass.push(&crate::ledger::ScanItem::Record(extra.clone()));
            st.fold_blocking(&mut pass).unwrap();
            (pass.records_read(), pass.finish("x").to_json())
        };
        let (read, inc) = fed(true);
        assert_eq!(fed(false), (read, inc.clone()));
        assert!(read > 1);
        assert_eq!(inc["by_user"]["zed"]["calls"], 1);
        // And the checkpoint there is still the ledger's own.
        assert_eq!(check(&st, now, "after"), 0);
    }

    #[test]
    fn a_link_in_place_of_the_checkpoint_is_replaced_not_followed() {
        let now = Utc.with_ymd_and_hms(2026, 11, 20, 12, 0, 0).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("d");
        std::fs::create_dir(&dir).unwrap();
        let target = tmp.path().join("target");
        std::fs::write(&target, b"keep").unwrap();
        std::os::unix::fs::symlink(&target, dir.join(CHECKPOINT_FILE)).unwrap();
        ledger(&dir, 20, &mut Rng(5), now);
        let st = JsonlStorage::builder(&dir).user("alice").build().unwrap();
        check(&st, now, "link");
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
        assert!(!std::fs::symlink_metadata(dir.join(CHECKPOINT_FILE))
            .unwrap()
            .file_type()
            .is_symlink());
    }

    #[test]
    fn the_cursor_keeps_the_book_s_serde_shape() {
        let c = Cursor {
            dev: 3,
            ino: 7,
            offset: 42,
        };
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, r#"{"dev":3,"ino":7,"offset":42}"#);
        let old: Cursor = serde_json::from_str(r#"{"offset":9}"#).unwrap();
        assert_eq!(
            old,
            Cursor {
                dev: 0,
                ino: 0,
                offset: 9
            }
        );
    }

    #[test]
    fn last_line_end_finds_the_last_break() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("f");
        let mut body = vec![b'x'; 200_000];
        body[10] = b'\n';
        body[150_000] = b'\n';
        std::fs::write(&p, &body).unwrap();
        let f = File::open(&p).unwrap();
        assert_eq!(last_line_end(&f, 0, 200_000).unwrap(), 150_001);
        assert_eq!(last_line_end(&f, 0, 150_001).unwrap(), 150_001);
        assert_eq!(last_line_end(&f, 0, 150_000).unwrap(), 11);
        assert_eq!(last_line_end(&f, 11, 150_000).unwrap(), 11);
        assert_eq!(last_line_end(&f, 0, 10).unwrap(), 0);
    }

    #[test]
    fn a_checkpoint_round_trips_and_rejects_damage() {
        let now = Utc::now();
        let mut summary = Summary::new(now);
        summary.total.calls = 3;
        let mut recent = Recent::new(crate::report::week_start(now).unwrap().timestamp());
        for (at, calls, nanos) in [(0, 1, 7), (17, 3, 0), (Recent::SLOTS - 1, 2, 9)] {
            assert!(recent.set_second(
                at,
                Bucket {
                    calls,
                    nano_usd: Money::from_nanos(nanos)
                }
            ));
        }
        assert!(!recent.set_second(Recent::SLOTS, Bucket::default()));
        recent.push_future(now + Duration::milliseconds(1), Money::from_nanos(11));
        let state = PassState {
            summary,
            spent: vec![Money::from_nanos(5)],
            recent,
        };
        let mut files = BTreeMap::new();
        files.insert(
            "costs_a.jsonl".to_owned(),
            FileMark {
                cursor: Cursor {
                    dev: 1,
                    ino: 2,
                    offset: 3,
                },
                lines: 4,
                head: 5,
                tail: 6,
            },
        );
        let counts = ScanSummary {
            records: 8,
            corrupt: 9,
            ..ScanSummary::default()
        };
        let bytes = encode("k", &state, files.clone(), &counts).unwrap();
        let back = decode(&bytes, "k").unwrap();
        assert_eq!(back.files, files);
        assert_eq!(back.state.spent, state.spent);
        assert_eq!(back.state.recent, state.recent);
        assert_eq!(back.state.summary.total.calls, 3);
        assert_eq!((back.records, back.corrupt), (8, 9));
        assert!(decode(&bytes, "other").is_err());
        for i in [0, 9, 20, bytes.len() / 2, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[i] ^= 0x20;
            assert!(decode(&bad, "k").is_err(), "byte {i}");
        }
        assert!(decode(&bytes[..bytes.len() - 3], "k").is_err());
        let mut newer = bytes.clone();
        newer[8] = 3;
        assert_eq!(
            decode(&newer, "k").err(),
            Some("written by a newer version of costlayer")
        );
        // Version 1 (each recent record kept) is read as stale.
        let mut older = bytes.clone();
        older[8] = 1;
        assert_eq!(
            decode(&older, "k").err(),
            Some("written by an older version of costlayer")
        );
        // Three seconds with calls and one future record: 20 bytes each.
        let empty = PassState {
            recent: Recent::new(state.recent.start()),
            ..state.clone()
        };
        let small = encode("k", &empty, files.clone(), &counts).unwrap();
        assert_eq!(bytes.len() - small.len(), 4 * 20);
        assert_eq!(decode(&small, "k").unwrap().state.recent, empty.recent);
    }
}
