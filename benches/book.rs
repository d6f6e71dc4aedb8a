//! The budget book: reserve + settle per call in memory and through the
//! JSONL directory book, and a new process's first reservation on a large
//! ledger (generated here, in a temp dir; the book starts from its
//! checkpoint and reads only the tail).
//!
//! `cargo bench --bench book` (or `-- --quick` for a short run).
//! `COSTLAYER_BENCH_LEDGER_MB` sets the large ledger's size (default 200).

use std::io::Write;

use chrono::{TimeZone, Utc};
use costlayer::budget::Scope;
use costlayer::ledger::CostRecord;
use costlayer::tracker::book::{BookKey, BookLine, BudgetBook, JsonlDirBook, MemoryBook, Reserved};
use costlayer::{Money, Usage};
use criterion::{criterion_group, criterion_main, Criterion};

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
    r.request_id = Some(format!("req_{i:016x}"));
    r
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

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let jsonl = JsonlDirBook::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    c.bench_function("book/jsonl-dir reserve+settle", |b| {
        b.iter(|| rt.block_on(reserve_settle(&jsonl, &lines, &rec)))
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

criterion_group!(benches, bench);
criterion_main!(benches);
