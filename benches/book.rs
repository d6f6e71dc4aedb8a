//! The budget book: reserve + settle per call in memory and through the
//! JSONL directory book, and a new process's first reservation on a large
//! ledger (generated here, in a temp dir; the book starts from its
//! checkpoint and reads only the tail).
//!
//! `cargo bench --bench book` (or `-- --quick` for a short run). The
//! contention bench runs 3 more processes (this binary again) that reserve
//! and settle through the same directory book while this one is measured.
//! `COSTLAYER_BENCH_LEDGER_MB` sets the large ledger's size (default 200).

use std::io::Write;

use chrono::{TimeZone, Utc};
use costlayer::budget::Scope;
use costlayer::ledger::CostRecord;
use costlayer::tracker::book::{BookKey, BookLine, BudgetBook, JsonlDirBook, MemoryBook, Reserved};
use costlayer::{Money, Usage};
use criterion::{criterion_group, Criterion};

fn line() -> BookLine {
    let mut l =
        BookLine::new(BookKey::new("monthly", "2026-12", &Scope::All), Money::MAX).blocking(true);
    l.start = Some(
        Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0)
            .single()
            .unwrap_or_default(),
    );
    l.end = Some(
        Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0)
            .single()
            .unwrap_or_default(),
    );
    l
}

fn record(i: u64) -> CostRecord {
    let mut r = CostRecord::new(
        format!("user{}", i % 7),
        "openai",
        "gpt-4o-mini",
        Usage::new(1_000, 200),
    );
    r.ts = Utc
        .with_ymd_and_hms(2026, 12, 10, 12, 0, 0)
        .single()
        .unwrap_or_default();
    r.nano_usd = Some(Money::from_nanos(37 + (i % 100) as i64));
    r.request_id = Some(format!("req_{i:016x}").into());
    r
}

/// A ledger that keeps nothing (so a long run does not grow memory); the
/// tracker's own work is what is measured.
#[derive(Debug)]
struct Discard;

#[async_trait::async_trait]
impl costlayer::ledger::Storage for Discard {
    async fn append(&self, _: &CostRecord) -> Result<(), costlayer::ledger::LedgerError> {
        Ok(())
    }
    async fn scan(
        &self,
        _: &costlayer::ledger::ScanFilter,
    ) -> Result<costlayer::ledger::RecordStream, costlayer::ledger::LedgerError> {
        Ok(Box::pin(futures_util::stream::empty()))
    }
    async fn mark_alert(
        &self,
        _: &str,
        _: &serde_json::Value,
    ) -> Result<bool, costlayer::ledger::LedgerError> {
        Ok(true)
    }
    async fn alert_fired(&self, _: &str) -> Result<bool, costlayer::ledger::LedgerError> {
        Ok(false)
    }
    async fn reset(
        &self,
        _: costlayer::ledger::ResetScope,
    ) -> Result<costlayer::ledger::ResetReport, costlayer::ledger::LedgerError> {
        Ok(Default::default())
    }
}

fn tracker() -> costlayer::tracker::CostTracker {
    let mut prices = costlayer::pricing::PriceTable::empty("bench");
    let usd = |s: &str| s.parse::<Money>().unwrap_or_default();
    prices.insert(costlayer::pricing::ModelPrice::new(
        "gpt-4o-mini",
        "openai",
        costlayer::pricing::Rates::new(usd("0.15"), usd("0.60")),
    ));
    costlayer::tracker::CostTracker::builder()
        .storage(std::sync::Arc::new(Discard))
        .prices(prices)
        .user("bench")
        .budget(costlayer::budget::Budget::monthly(Money::MAX).block())
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn reserve_settle(book: &dyn BudgetBook, lines: &[BookLine], rec: &CostRecord) {
    if let Ok(Reserved::Granted { hold, .. }) = book.reserve(lines, Money::from_nanos(1_000)).await
    {
        let _ = book.settle(Some(hold), rec, lines).await;
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let lines = [line()];
    let rec = record(1);

    let memory = MemoryBook::new();
    c.bench_function("book/memory reserve+settle", |b| {
        b.iter(|| rt.block_on(reserve_settle(&memory, &lines, &rec)))
    });

    // The tracker's path around the memory book: reserve (scope match,
    // estimate, hold) and record (price, settle, append to a memory
    // ledger) of one call under a blocking monthly budget.
    let tracker = tracker();
    let req = costlayer::ChatRequest::new("gpt-4o-mini")
        .message(costlayer::Message::user("hi"))
        .max_tokens(100);
    let resp = costlayer::ChatResponse {
        provider: "openai".into(),
        model: "gpt-4o-mini".into(),
        usage: Usage::new(20, 100),
        ..Default::default()
    };
    c.bench_function(
        "book/tracker reserve+record (memory book, memory ledger)",
        |b| {
            b.iter(|| {
                rt.block_on(async {
                    let r = tracker
                        .reserve(&req)
                        .await
                        .unwrap_or_else(|e| panic!("{e}"));
                    let _ = tracker.record(&req, &resp, Some(r)).await;
                })
            })
        },
    );

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let jsonl = JsonlDirBook::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    // As in real use, each settled call's record reaches the ledger (so the
    // book drops its settled hold when it reads it back).
    let mut ledger = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("costs_bench.jsonl"))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut i = 0;
    c.bench_function("book/jsonl-dir reserve+settle", |b| {
        b.iter(|| {
            i += 1;
            let rec = record(i);
            rt.block_on(reserve_settle(&jsonl, &lines, &rec));
            let mut l = serde_json::to_vec(&rec).unwrap_or_default();
            l.push(b'\n');
            ledger.write_all(&l).unwrap_or_else(|e| panic!("{e}"));
        })
    });

    // A large ledger, then a book that scans it once (writing the
    // checkpoint), then a little more appended: a new process's first
    // reservation reads the checkpoint and that tail.
    let mb: u64 = std::env::var("COSTLAYER_BENCH_LEDGER_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let big = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = big.path().join("costs_bench.jsonl");
    {
        let mut f =
            std::io::BufWriter::new(std::fs::File::create(&path).unwrap_or_else(|e| panic!("{e}")));
        let (mut written, mut i) = (0u64, 0u64);
        while written < mb << 20 {
            let mut l = serde_json::to_vec(&record(i)).unwrap_or_default();
            l.push(b'\n');
            written += l.len() as u64;
            f.write_all(&l).unwrap_or_else(|e| panic!("{e}"));
            i += 1;
        }
    }
    let scanner = JsonlDirBook::open(big.path()).unwrap_or_else(|e| panic!("{e}"));
    rt.block_on(scanner.totals(&lines))
        .unwrap_or_else(|e| panic!("{e}"));
    {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("{e}"));
        for i in 0..1_000 {
            let mut l = serde_json::to_vec(&record(i)).unwrap_or_default();
            l.push(b'\n');
            f.write_all(&l).unwrap_or_else(|e| panic!("{e}"));
        }
    }
    let name = format!("book/jsonl-dir first reservation of a new process ({mb} MB ledger)");
    let mut group = c.benchmark_group("book/new-process");
    group.sample_size(20);
    group.bench_function(name, |b| {
        b.iter(|| {
            let fresh = JsonlDirBook::open(big.path()).unwrap_or_else(|e| panic!("{e}"));
            rt.block_on(async {
                if let Ok(Reserved::Granted { hold, .. }) =
                    fresh.reserve(&lines, Money::from_nanos(1)).await
                {
                    let _ = fresh.release(hold).await;
                }
            })
        })
    });
    group.finish();
}

/// Set in the contending processes of `contention`: the data directory.
const CHILD_ENV: &str = "COSTLAYER_BENCH_BOOK_CHILD";

/// The body of a contending process: reserve + settle + append the record
/// to its own ledger file, in a loop, until killed.
fn child(dir: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = std::path::Path::new(dir);
    let book = JsonlDirBook::open(dir).unwrap_or_else(|e| panic!("{e}"));
    let mut ledger = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("costs_child{}.jsonl", std::process::id())))
        .unwrap_or_else(|e| panic!("{e}"));
    let lines = [line()];
    for i in 0u64.. {
        let rec = record(i);
        rt.block_on(reserve_settle(&book, &lines, &rec));
        let mut l = serde_json::to_vec(&rec).unwrap_or_default();
        l.push(b'\n');
        ledger.write_all(&l).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// This process and 3 others reserve + settle through one directory book
/// at once (each appends its records to its own ledger file, as real
/// processes do): the median of this process's calls.
fn contention(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    let mut children: Vec<std::process::Child> = (0..3)
        .map(|_| {
            std::process::Command::new(&exe)
                .env(CHILD_ENV, dir.path())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    let book = JsonlDirBook::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let mut ledger = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("costs_bench.jsonl"))
        .unwrap_or_else(|e| panic!("{e}"));
    let lines = [line()];
    let mut i = 0;
    c.bench_function(
        "book/jsonl-dir reserve+settle, 4 processes contending",
        |b| {
            b.iter(|| {
                i += 1;
                let rec = record(i);
                rt.block_on(reserve_settle(&book, &lines, &rec));
                let mut l = serde_json::to_vec(&rec).unwrap_or_default();
                l.push(b'\n');
                ledger.write_all(&l).unwrap_or_else(|e| panic!("{e}"));
            })
        },
    );
    for ch in &mut children {
        let _ = ch.kill();
        let _ = ch.wait();
    }
}

criterion_group!(benches, bench, contention);

fn main() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(&dir);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
