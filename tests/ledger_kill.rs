//! What a `kill -9` of an appending process can lose, with real OS
//! processes: a child appends records one after the other and prints
//! `ACK <id>` for each append that returned `Ok`; the parent SIGKILLs it
//! mid-stream and reads the file.
//!
//! - No torn line, in either mode: every line of the file is a record.
//! - `AppendMode::Confirmed`: every acknowledged record is in the file.
//! - `AppendMode::Queued` (the default): what is lost is only the tail
//!   (records acknowledged after the last one written), never a record in
//!   the middle, and at most the writer's backlog (256 queued writes; this
//!   worker appends in a tight loop, the worst case).
//! - A short program that makes one call and exits (dropping its tracker,
//!   without `flush`) never loses its record.
//!
//! Worker processes are this test binary run again with `WORKER_ENV` set.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use costlayer::ledger::{AppendMode, CostRecord, FsyncPolicy, JsonlStorage, Storage};
use costlayer::tracker::CostTracker;
use costlayer::{ChatRequest, ChatResponse, Message, Money, Usage};

const WORKER_ENV: &str = "COSTLAYER_KILL_WORKER";
/// Calls of the short program: enough that the last ones are still queued
/// when it ends.
const SHORT_CALLS: u64 = 2_000;
/// The paced worker's interval, a real call rate: far slower than the
/// writer's nap (1 ms), so the writer has stopped napping and each append
/// wakes it. (The nap itself ending on its own is tested in
/// `tests/ledger.rs`.)
const PACE: std::time::Duration = std::time::Duration::from_millis(20);

fn storage(dir: &Path, mode: AppendMode, fsync: FsyncPolicy) -> JsonlStorage {
    JsonlStorage::builder(dir)
        .user("alice")
        .append_mode(mode)
        .fsync(fsync)
        .build()
        .unwrap()
}

fn mode_of(s: &str) -> (AppendMode, FsyncPolicy) {
    match s {
        "confirmed" => (AppendMode::Confirmed, FsyncPolicy::Always),
        "queued-window" => (AppendMode::Queued, FsyncPolicy::EveryMillis(100)),
        // One append every `PACE`: the writer naps between them.
        "queued-paced" => (AppendMode::Queued, FsyncPolicy::Always),
        _ => (AppendMode::Queued, FsyncPolicy::Always),
    }
}

/// Not a test on its own: the body of a worker process. Modes:
/// `append|<dir>|<mode>`: appends records forever, printing `ACK <id>`
/// after each `Ok`; `once|<dir>`: one call through a tracker, then the
/// process ends without any flush; `exit|<dir>`: one queued append,
/// [`costlayer::ledger::flush_all_queued`], then `std::process::exit`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_entry() {
    let Ok(spec) = std::env::var(WORKER_ENV) else {
        return;
    };
    let args: Vec<&str> = spec.split('|').collect();
    let dir = PathBuf::from(args[1]);
    match args[0] {
        "append" => {
            let (mode, fsync) = mode_of(args[2]);
            let st = storage(&dir, mode, fsync);
            let mut out = std::io::stdout().lock();
            for i in 0u64.. {
                let mut r = CostRecord::new("alice", "openai", "gpt-4o-mini", Usage::new(i, 1));
                r.nano_usd = Some(Money::from_nanos(1));
                // Long enough lines that a write spans several pages now and then.
                r.tags
                    .insert("pad".into(), "x".repeat((i % 7) as usize * 900));
                st.append(&r).await.unwrap();
                writeln!(out, "ACK {}", r.id).unwrap();
                out.flush().unwrap();
                if args[2] == "queued-paced" {
                    std::thread::sleep(PACE);
                }
            }
        }
        "once" => {
            let mut prices = costlayer::pricing::PriceTable::empty("test");
            let one = Money::from_usd(1).unwrap();
            prices.insert(costlayer::pricing::ModelPrice::new(
                "test-model",
                "openai",
                costlayer::pricing::Rates::new(one, one),
            ));
            let t = CostTracker::builder()
                .storage(Arc::new(
                    JsonlStorage::builder(&dir).user("alice").build().unwrap(),
                ))
                .prices(prices)
                .user("alice")
                .build()
                .unwrap();
            let req = ChatRequest::new("test-model").message(Message::user("hi"));
            let resp = ChatResponse {
                provider: "openai".into(),
                model: "test-model".into(),
                usage: Usage::new(2, 3),
                ..Default::default()
            };
            // The first append of a file waits for its write: make many,
            // so the last ones are still queued when the process ends.
            for _ in 0..SHORT_CALLS {
                let rec = t.record(&req, &resp, None).await.unwrap();
                println!("ACK {}", rec.id);
            }
            // The tracker is dropped here, without flush or shutdown.
        }
        "exit" => {
            let st = storage(&dir, AppendMode::Queued, FsyncPolicy::Always);
            for i in 0..SHORT_CALLS {
                let mut r = CostRecord::new("alice", "openai", "gpt-4o-mini", Usage::new(i, 1));
                r.tags.insert("pad".into(), "x".repeat(4_000));
                st.append(&r).await.unwrap();
                println!("ACK {}", r.id);
            }
            costlayer::ledger::flush_all_queued();
            std::process::exit(0);
        }
        other => panic!("unknown worker mode {other}"),
    }
}

fn worker(spec: &str) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args([
        "--exact",
        "worker_entry",
        "--nocapture",
        "--test-threads",
        "1",
    ])
    .env(WORKER_ENV, spec)
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    c
}

fn acks(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split_once("ACK ").map(|(_, id)| id.trim().to_owned()))
        .collect()
}

/// The file's records' ids, in file order; panics on a line that is not a
/// whole record (a torn line).
fn ids_in(path: &Path) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap();
    assert!(
        bytes.is_empty() || bytes.ends_with(b"\n"),
        "the file ends in a torn line"
    );
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let r: CostRecord = serde_json::from_slice(l).unwrap_or_else(|e| {
                panic!(
                    "a torn or corrupt line ({e}): {}",
                    String::from_utf8_lossy(l)
                )
            });
            r.id.to_string()
        })
        .collect()
}

/// Runs an appending worker, SIGKILLs it after `after` acknowledgements,
/// returns (acknowledged ids, ids in the file).
fn kill_after(mode: &str, after: usize) -> (Vec<String>, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = worker(&format!("append|{}|{mode}", dir.path().display()))
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut reader = BufReader::new(stdout);
    let mut acked = Vec::new();
    let mut line = String::new();
    while acked.len() < after {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "worker ended");
        acked.extend(acks(&line));
    }
    child.kill().unwrap(); // SIGKILL, mid-stream
    child.wait().unwrap();
    // Acknowledgements printed before the kill landed.
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut reader, &mut rest);
    acked.extend(acks(&rest));
    let in_file = ids_in(&dir.path().join("costs_alice.jsonl"));
    (acked, in_file)
}

#[test]
fn confirmed_mode_a_killed_process_loses_no_acknowledged_record_and_tears_no_line() {
    for _ in 0..3 {
        let (acked, in_file) = kill_after("confirmed", 300);
        for id in &acked {
            assert!(in_file.contains(id), "acknowledged record {id} is missing");
        }
        // Appends are sequential: the file holds the acknowledged records
        // in order, and at most the one in flight when the kill landed.
        assert_eq!(&in_file[..acked.len()], &acked[..]);
        assert!(in_file.len() <= acked.len() + 1);
    }
}

#[test]
fn queued_mode_a_killed_process_loses_at_most_the_tail_and_tears_no_line() {
    for mode in ["queued", "queued-window"] {
        for _ in 0..3 {
            let (acked, in_file) = kill_after(mode, 2_000);
            // Everything in the file was handed over, in order (the kill
            // may land between a write and its acknowledgement)...
            let n = in_file.len().min(acked.len());
            assert!(
                acked[..n] == in_file[..n],
                "{mode}: the file is not the acknowledged prefix"
            );
            assert!(
                in_file.len() <= acked.len() + 1,
                "{mode}: records nobody handed over"
            );
            // ...and what is missing is only the last records handed over.
            assert!(
                !in_file.is_empty(),
                "{mode}: nothing written after {} appends",
                acked.len()
            );
            let lost = acked.len().saturating_sub(in_file.len());
            eprintln!(
                "{mode}: {} acknowledged, {lost} lost to the kill",
                acked.len()
            );
            // At most the writer's backlog: beyond 256 queued writes an
            // append waits for its answer.
            assert!(lost <= 256, "{mode}: {lost} records lost");
        }
    }
}

#[test]
fn queued_mode_at_a_real_pace_a_kill_loses_at_most_the_last_record() {
    for _ in 0..3 {
        let (acked, in_file) = kill_after("queued-paced", 30);
        let n = in_file.len().min(acked.len());
        assert!(acked[..n] == in_file[..n], "not the acknowledged prefix");
        // Appends 20 ms apart, each written as soon as it wakes the
        // writer: the kill, right after an acknowledgement, can only
        // catch that last record still queued.
        let lost = acked.len().saturating_sub(in_file.len());
        assert!(
            lost <= 1,
            "{lost} of {} records lost: a queued record waited for more than the 20 ms between appends",
            acked.len()
        );
    }
}

#[test]
fn a_short_program_that_drops_its_tracker_loses_no_record() {
    for mode in ["once", "exit"] {
        let dir = tempfile::tempdir().unwrap();
        let out = worker(&format!("{mode}|{}", dir.path().display()))
            .output()
            .unwrap();
        assert!(out.status.success(), "{mode}: the worker failed");
        let acked = acks(&String::from_utf8(out.stdout).unwrap());
        assert_eq!(acked.len() as u64, SHORT_CALLS, "{mode}");
        let in_file = ids_in(&dir.path().join("costs_alice.jsonl"));
        assert!(
            in_file == acked,
            "{mode}: {} of {} records of the short program written",
            in_file.len(),
            acked.len()
        );
    }
}
