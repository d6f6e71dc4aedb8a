//! JSONL ledger throughput: appends under each fsync policy, and a full
//! scan over 1,000,000 records generated here (nothing is committed).
//!
//! `cargo bench --bench ledger` (or `-- --quick` for a short run).

use std::time::Duration;

use std::num::NonZeroUsize;

use costlayer::ledger::{
    AppendMode, CorruptLine, CostRecord, FsyncPolicy, JsonlStorage, ParallelFold, RecordRef,
    ScanFilter, ScanItem, Storage,
};
use costlayer::{Money, Usage};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const SCAN_RECORDS: u64 = 1_000_000;

fn record(i: u64) -> CostRecord {
    let models = [
        "gpt-4o-mini",
        "claude-haiku-4-5",
        "gemini-2.5-flash",
        "gpt-4o",
    ];
    let providers = ["openai", "anthropic", "gemini", "openai"];
    let k = (i % 4) as usize;
    let mut r = CostRecord::new(
        format!("user{}", i % 7),
        providers[k],
        models[k],
        Usage::new(1_000 + i % 500, 200 + i % 50),
    );
    r.nano_usd = Some(Money::from_nanos((i % 10_000) as i64 * 37));
    r.latency_ms = 300 + i % 900;
    r.request_id = Some(format!("req_{i:016x}").into());
    r.price_version = Some(format!("2026-11-01:{}", models[k]).into());
    r
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}

fn append(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("ledger_append");
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(1));
    // `queued` (the default): the append hands the record to the writer
    // thread; `confirmed`: it waits for the write (and the sync, under
    // `always`). A tight loop of appends outruns the disk, so a queued run
    // under `always` ends up waiting on the writer's 256-record backlog.
    for (mode_name, mode) in [
        ("queued", AppendMode::Queued),
        ("confirmed", AppendMode::Confirmed),
    ] {
        for (name, policy) in [
            ("always", FsyncPolicy::Always),
            ("every_100ms", FsyncPolicy::EveryMillis(100)),
            ("never", FsyncPolicy::Never),
        ] {
            let tmp = tempfile::tempdir().expect("tempdir");
            let st = JsonlStorage::builder(tmp.path())
                .user("bench")
                .fsync(policy)
                .append_mode(mode)
                .build()
                .expect("storage");
            let rec = record(1);
            group.bench_function(BenchmarkId::new(format!("one_{mode_name}"), name), |b| {
                b.to_async(&rt)
                    .iter(|| async { st.append(&rec).await.expect("append") })
            });
        }
    }
    // 16 concurrent appenders share one lock and one fsync (group commit).
    group.throughput(Throughput::Elements(16));
    for (name, policy) in [
        ("always", FsyncPolicy::Always),
        ("never", FsyncPolicy::Never),
    ] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let st = JsonlStorage::builder(tmp.path())
            .user("bench")
            .fsync(policy)
            .append_mode(AppendMode::Confirmed)
            .build()
            .expect("storage");
        let rec = record(2);
        group.bench_function(BenchmarkId::new("16_concurrent", name), |b| {
            b.to_async(&rt).iter(|| async {
                let calls = (0..16).map(|_| st.append(&rec));
                for r in futures_util::future::join_all(calls).await {
                    r.expect("append");
                }
            })
        });
    }
    group.finish();
}

fn scan(c: &mut Criterion) {
    let rt = runtime();
    let tmp = tempfile::tempdir().expect("tempdir");
    let st = JsonlStorage::builder(tmp.path())
        .user("bench")
        .fsync(FsyncPolicy::Never)
        .build()
        .expect("storage");
    rt.block_on(async {
        let mut i = 0;
        while i < SCAN_RECORDS {
            let batch: Vec<CostRecord> = (i..i + 10_000).map(record).collect();
            st.append_batch(&batch).await.expect("append");
            i += 10_000;
        }
        st.flush().await.expect("flush");
    });
    // Each record goes to its own user's file (`costs_user0.jsonl` …).
    let bytes: u64 = std::fs::read_dir(tmp.path())
        .expect("read_dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("costs_"))
        .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .sum();
    eprintln!("scan bench: {SCAN_RECORDS} records, {bytes} bytes");
    // On a shared machine wall time includes waiting for a core: also
    // report the CPU time of one scan on this thread (Linux only).
    for _ in 0..3 {
        let (cpu0, t0) = (thread_cpu_ns(), std::time::Instant::now());
        let s = st
            .scan_blocking(&ScanFilter::default(), |_| {})
            .expect("scan");
        let wall = t0.elapsed();
        if let (Some(a), Some(b)) = (cpu0, thread_cpu_ns()) {
            let cpu = (b - a) as f64 / 1e9;
            eprintln!(
                "one scan: {} records, wall {:.3} s, CPU {cpu:.3} s = {:.2} M records/s per CPU-second",
                s.records,
                wall.as_secs_f64(),
                s.records as f64 / cpu / 1e6
            );
        }
    }

    // The parallel fold on one thread: the CPU cost of reading a record
    // without allocating it.
    for _ in 0..3 {
        let (cpu0, t0) = (thread_cpu_ns(), std::time::Instant::now());
        let mut sum = Sum::default();
        let s = st
            .fold_blocking_threads(&mut sum, NonZeroUsize::MIN)
            .expect("fold");
        let wall = t0.elapsed();
        assert_eq!(sum.calls, SCAN_RECORDS);
        if let (Some(a), Some(b)) = (cpu0, thread_cpu_ns()) {
            let cpu = (b - a) as f64 / 1e9;
            eprintln!(
                "one fold (1 thread): {} records, wall {:.3} s, CPU {cpu:.3} s = {:.2} M records/s per CPU-second",
                s.records,
                wall.as_secs_f64(),
                s.records as f64 / cpu / 1e6
            );
        }
    }

    let mut group = c.benchmark_group("ledger_scan_1m");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(SCAN_RECORDS));
    group.bench_function("scan_blocking_sum", |b| {
        b.iter(|| {
            let mut total = Money::ZERO;
            let s = st
                .scan_blocking(&ScanFilter::default(), |item| {
                    if let ScanItem::Record(r) = item {
                        total += r.cost();
                    }
                })
                .expect("scan");
            assert_eq!(s.records, SCAN_RECORDS);
            total
        })
    });
    group.bench_function("fold_blocking_sum_all_cores", |b| {
        b.iter(|| {
            let mut sum = Sum::default();
            let s = st.fold_blocking(&mut sum).expect("fold");
            assert_eq!((s.records, sum.calls), (SCAN_RECORDS, SCAN_RECORDS));
            sum.total
        })
    });
    group.bench_function("async_stream_sum", |b| {
        b.to_async(&rt).iter(|| async {
            use futures_util::StreamExt;
            let mut stream = st.scan(&ScanFilter::default()).await.expect("scan");
            let mut n = 0u64;
            let mut total = Money::ZERO;
            while let Some(item) = stream.next().await {
                if let ScanItem::Record(r) = item.expect("item") {
                    n += 1;
                    total += r.cost();
                }
            }
            assert_eq!(n, SCAN_RECORDS);
            total
        })
    });
    group.finish();
}

/// Calls and total cost, folded on any number of threads.
#[derive(Default)]
struct Sum {
    calls: u64,
    total: Money,
}

impl ParallelFold for Sum {
    fn fork(&self) -> Self {
        Sum::default()
    }
    fn record(&mut self, r: &RecordRef<'_>) {
        self.calls += 1;
        self.total += r.cost();
    }
    fn corrupt(&mut self, _: CorruptLine) {}
    fn merge(&mut self, other: Self) {
        self.calls += other.calls;
        self.total += other.total;
    }
}

/// CPU time of the current thread in ns, from /proc (Linux).
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

criterion_group!(benches, append, scan);
criterion_main!(benches);
