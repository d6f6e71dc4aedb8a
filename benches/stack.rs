//! The layers' overhead: cache hit, rate-limiter check, estimator policies,
//! and the full stack around an instant simulated provider (one caller and
//! 64 concurrent callers).
//!
//! Run with `cargo bench --bench stack` (or `-- --quick` for a rough pass).
//!
//! Before the timings, the bench prints the heap allocations a call makes
//! through each stack (a counting global allocator), and what the stack
//! adds to the provider alone, and the in-memory budget book's reserve +
//! settle alone; then per-call latency percentiles (p50 / p99 / p99.9,
//! `COSTLAYER_BENCH_LATENCY_CALLS` calls timed one by one, 0 to skip; each
//! paired with a call of the provider alone, in alternating order, whose
//! percentiles the overhead is measured against;
//! `COSTLAYER_BENCH_LATENCY_PACE_US=n` makes one pair every n µs;
//! `COSTLAYER_BENCH_ONLY` picks the stacks here too).
//! `call_through_Jsonl` records into a real `JsonlStorage` (its defaults,
//! in `<temp>/costlayer-bench-stack`); `COSTLAYER_BENCH_FSYNC=every100` or
//! `never` changes its fsync policy.

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Instant;

use async_trait::async_trait;
use costlayer::layer::builder::StackBuilder;
use costlayer::layer::retry::RetryLayer;
use costlayer::ledger::{
    CostRecord, LedgerError, RecordStream, ResetReport, ResetScope, ScanFilter, Storage,
};
use costlayer::tracker::CostTracker;
use futures_util::StreamExt;

use costlayer::budget::{Budget, Scope};
use costlayer::estimate::{EstimatePolicy, Estimator};
use costlayer::layer::cache::{CacheKey, CacheLayer};
use costlayer::layer::rate_limit::{Quota, RateLimitLayer};
use costlayer::mock::SimulatedProvider;
use costlayer::tokens::TiktokenCounter;
use costlayer::tracker::book::{BookKey, BookLine, BudgetBook, MemoryBook, Reserved};
use costlayer::Money;
use costlayer::{ChatRequest, Message};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use tower::{ServiceBuilder, ServiceExt};

/// Counts every allocation, so the bench can print allocations per call.
#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// A ~2 KB prompt of English prose.
fn prompt_2k() -> ChatRequest {
    let para = "The quarterly report shows revenue growth across all regions, with the \
                strongest gains in the enterprise segment. Costs rose more slowly than \
                expected, mostly because of lower cloud spending and fewer contractors. ";
    let mut text = String::new();
    while text.len() < 2_000 {
        text.push_str(para);
    }
    ChatRequest::new("gpt-4o-mini")
        .system("You are a financial analyst. Answer in three sentences.")
        .message(Message::user(text))
        .max_tokens(256)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn estimator(c: &mut Criterion) {
    let req = prompt_2k();
    TiktokenCounter::for_model(&req.model).warm_up();
    let mut g = c.benchmark_group("estimate_2kb");
    for policy in [
        EstimatePolicy::UpperBound,
        EstimatePolicy::Heuristic,
        EstimatePolicy::Exact,
    ] {
        let e = Estimator::new(policy);
        g.bench_with_input(
            BenchmarkId::from_parameter(format!("{policy:?}")),
            &req,
            |b, r| b.iter(|| e.total_tokens(black_box(r))),
        );
    }
    g.finish();
}

fn cache_hit(c: &mut Criterion) {
    let rt = rt();
    let req = prompt_2k();
    let svc = ServiceBuilder::new()
        .layer(CacheLayer::default())
        .service(SimulatedProvider::new());
    rt.block_on(svc.clone().oneshot(req.clone()))
        .expect("warm the entry");
    c.bench_function("cache/key_2kb", |b| {
        b.iter(|| CacheKey::for_request(black_box(&req), None).expect("key"))
    });
    c.bench_function("cache/hit_2kb", |b| {
        b.to_async(&rt)
            .iter(|| svc.clone().oneshot(black_box(req.clone())))
    });
}

fn rate_limit(c: &mut Criterion) {
    let nz = |n| NonZeroU32::new(n).expect("non-zero");
    let req = prompt_2k();
    let mut g = c.benchmark_group("rate_limit");
    for policy in [EstimatePolicy::UpperBound, EstimatePolicy::Exact] {
        let limiter = RateLimitLayer::new(Quota::per_minute(nz(u32::MAX), nz(u32::MAX)))
            .estimator(Estimator::new(policy))
            .limiter();
        // Each call settles to 0 used tokens, refunding its whole
        // reservation: the token bucket ends every iteration where it
        // started, so the quota never binds however long criterion runs (a
        // call that kept ~700 tokens drained even `u32::MAX` tokens/min
        // within the warm-up, at millions of calls a second). The request
        // bucket refills at `u32::MAX`/min, faster than any caller.
        g.bench_function(format!("check_settle/{policy:?}"), |b| {
            b.iter(|| {
                let permit = limiter.try_acquire(black_box(&req)).expect("admitted");
                permit.settle(0);
            })
        });
    }
    g.finish();
}

/// A ledger that keeps nothing, so a long benchmark does not grow memory:
/// the stack's own overhead is measured, the ledger append is a no-op.
#[derive(Debug)]
struct NullStorage;

#[async_trait]
impl Storage for NullStorage {
    async fn append(&self, record: &CostRecord) -> Result<(), LedgerError> {
        black_box(record);
        Ok(())
    }
    fn append_now(&self, record: &CostRecord) -> Option<Result<(), LedgerError>> {
        black_box(record);
        Some(Ok(()))
    }
    async fn scan(&self, _: &ScanFilter) -> Result<RecordStream, LedgerError> {
        Ok(futures_util::stream::empty().boxed())
    }
    async fn mark_alert(&self, _: &str, _: &serde_json::Value) -> Result<bool, LedgerError> {
        Ok(true)
    }
    async fn alert_fired(&self, _: &str) -> Result<bool, LedgerError> {
        Ok(false)
    }
    async fn reset(&self, _: ResetScope) -> Result<ResetReport, LedgerError> {
        Ok(ResetReport::default())
    }
}

/// A ledger stand-in that never waits: each record is serialised as its
/// JSONL line into one in-memory buffer (cleared now and then), as a
/// writer that batches lines for a group commit would take it. No I/O, no
/// channel round trip: what the caller pays for a ledger that keeps the
/// disk off its path.
#[derive(Debug, Default)]
struct BufferedStorage {
    buf: Mutex<Vec<u8>>,
}

impl BufferedStorage {
    fn push(&self, record: &CostRecord) {
        let mut buf = self.buf.lock().unwrap_or_else(|p| p.into_inner());
        if buf.len() > 1 << 20 {
            buf.clear();
        }
        serde_json::to_writer(&mut *buf, record).expect("serialise");
        buf.push(b'\n');
    }
}

#[async_trait]
impl Storage for BufferedStorage {
    async fn append(&self, record: &CostRecord) -> Result<(), LedgerError> {
        self.push(record);
        Ok(())
    }
    fn append_now(&self, record: &CostRecord) -> Option<Result<(), LedgerError>> {
        self.push(record);
        Some(Ok(()))
    }
    async fn scan(&self, _: &ScanFilter) -> Result<RecordStream, LedgerError> {
        Ok(futures_util::stream::empty().boxed())
    }
    async fn mark_alert(&self, _: &str, _: &serde_json::Value) -> Result<bool, LedgerError> {
        Ok(true)
    }
    async fn alert_fired(&self, _: &str) -> Result<bool, LedgerError> {
        Ok(false)
    }
    async fn reset(&self, _: ResetScope) -> Result<ResetReport, LedgerError> {
        Ok(ResetReport::default())
    }
}

/// What the stacks record into.
#[derive(Debug, Clone, Copy)]
enum Ledger {
    /// [`NullStorage`]: the layers' own overhead.
    Null,
    /// [`BufferedStorage`]: plus a non-waiting ledger's buffered line.
    Buffered,
    /// [`NullStorage`] and a blocking monthly budget that never binds, in
    /// the in-memory book: the budget path (estimate, reserve, settle).
    Budget,
    /// The real `JsonlStorage` with its defaults (records queued to the
    /// writer thread, group commit), in a temporary directory: the default
    /// ledger, the writer thread's allocations counted too.
    Jsonl,
}

/// The JSONL stacks' fsync policy: `COSTLAYER_BENCH_FSYNC` = `always`
/// (the default, as the ledger's), `every100` (`EveryMillis(100)`) or
/// `never`.
fn bench_fsync() -> costlayer::ledger::FsyncPolicy {
    use costlayer::ledger::FsyncPolicy;
    match std::env::var("COSTLAYER_BENCH_FSYNC").as_deref() {
        Ok("never") => FsyncPolicy::Never,
        Ok("every100") => FsyncPolicy::EveryMillis(100),
        _ => FsyncPolicy::Always,
    }
}

/// The full stack around an instant simulated provider. The rate limiter's
/// quota never binds; its estimator policy is `policy`.
fn full_stack(policy: EstimatePolicy) -> costlayer::layer::builder::LlmService {
    full_stack_with(policy, Ledger::Null)
}

fn full_stack_with(
    policy: EstimatePolicy,
    ledger: Ledger,
) -> costlayer::layer::builder::LlmService {
    let nz = |n| NonZeroU32::new(n).expect("non-zero");
    let storage: Arc<dyn Storage> = match ledger {
        Ledger::Null | Ledger::Budget => Arc::new(NullStorage),
        Ledger::Buffered => Arc::new(BufferedStorage::default()),
        Ledger::Jsonl => {
            // One directory per stack under `<temp>/costlayer-bench-stack`,
            // emptied when the first stack of a run is made (so a run
            // leaves at most its own records behind).
            static RUN: std::sync::Once = std::sync::Once::new();
            static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let root = std::env::temp_dir().join("costlayer-bench-stack");
            RUN.call_once(|| {
                let _ = std::fs::remove_dir_all(&root);
            });
            let dir = root.join(
                N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                    .to_string(),
            );
            Arc::new(
                costlayer::ledger::JsonlStorage::builder(dir)
                    .fsync(bench_fsync())
                    .user("bench")
                    .build()
                    .expect("ledger"),
            )
        }
    };
    let mut builder = CostTracker::builder().storage(storage).user("bench");
    if let Ledger::Budget = ledger {
        builder = builder
            .budget(Budget::monthly(Money::from_usd(1_000_000_000).expect("in range")).block());
    }
    let tracker = builder.build().expect("tracker");
    StackBuilder::new(tracker)
        .retry(RetryLayer::new())
        .rate_limit(
            RateLimitLayer::new(Quota::per_minute(nz(u32::MAX), nz(u32::MAX)))
                .estimator(Estimator::new(policy)),
        )
        .build(SimulatedProvider::new())
}

fn stack(c: &mut Criterion) {
    let rt = rt();
    let short = ChatRequest::new("gpt-4o-mini")
        .message(Message::user("What is the capital of France?"))
        .max_tokens(64);
    // temperature > 0: the cache is bypassed, every call goes through the
    // whole stack to the provider.
    let sampled = short.clone().temperature(0.7);
    TiktokenCounter::for_model("gpt-4o-mini").warm_up();
    let mut g = c.benchmark_group("stack");
    for policy in [EstimatePolicy::UpperBound, EstimatePolicy::Exact] {
        let svc = full_stack(policy);
        g.bench_function(format!("call_through/{policy:?}"), |b| {
            b.to_async(&rt)
                .iter(|| svc.clone().oneshot(black_box(sampled.clone())))
        });
    }
    for ledger in [Ledger::Buffered, Ledger::Jsonl, Ledger::Budget] {
        let svc = full_stack_with(EstimatePolicy::UpperBound, ledger);
        g.bench_function(format!("call_through_{ledger:?}/UpperBound"), |b| {
            b.to_async(&rt)
                .iter(|| svc.clone().oneshot(black_box(sampled.clone())))
        });
    }
    let svc = full_stack(EstimatePolicy::Exact);
    rt.block_on(svc.clone().oneshot(short.clone()))
        .expect("warm");
    g.bench_function("cache_hit", |b| {
        b.to_async(&rt)
            .iter(|| svc.clone().oneshot(black_box(short.clone())))
    });
    // Cache (bypassed), retry and rate limit without the cost layer: this
    // layer set's share of the overhead.
    let nz = |n| NonZeroU32::new(n).expect("non-zero");
    let no_cost = ServiceBuilder::new()
        .layer(CacheLayer::default())
        .layer(RetryLayer::new())
        .layer(
            RateLimitLayer::new(Quota::per_minute(nz(u32::MAX), nz(u32::MAX)))
                .estimator(Estimator::new(EstimatePolicy::UpperBound)),
        )
        .service(SimulatedProvider::new());
    g.bench_function("call_through_without_cost/UpperBound", |b| {
        b.to_async(&rt)
            .iter(|| no_cost.clone().oneshot(black_box(sampled.clone())))
    });
    // The provider alone, for reference: what the stack adds is the difference.
    let bare = SimulatedProvider::new();
    g.bench_function("provider_alone", |b| {
        b.to_async(&rt)
            .iter(|| bare.clone().oneshot(black_box(sampled.clone())))
    });
    g.finish();
}

/// 64 tasks on a 2-worker runtime, each making calls through one shared
/// stack; reports the time per call (throughput = 1 / that).
fn concurrent(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let req = ChatRequest::new("gpt-4o-mini")
        .message(Message::user("What is the capital of France?"))
        .max_tokens(64)
        .temperature(0.7);
    let mut g = c.benchmark_group("stack_64_callers");
    g.throughput(criterion::Throughput::Elements(64));
    for policy in [EstimatePolicy::UpperBound, EstimatePolicy::Exact] {
        let svc = full_stack(policy);
        g.bench_function(format!("{policy:?}"), |b| {
            b.iter_custom(|iters| {
                let svc = svc.clone();
                let req = req.clone();
                rt.block_on(async move {
                    let start = Instant::now();
                    let tasks: Vec<_> = (0..64)
                        .map(|_| {
                            let svc = svc.clone();
                            let req = req.clone();
                            tokio::spawn(async move {
                                for _ in 0..iters {
                                    svc.clone().oneshot(req.clone()).await.expect("call");
                                }
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await.expect("task");
                    }
                    start.elapsed()
                })
            })
        });
    }
    g.finish();
}

/// Heap allocations per call through each stack, printed (criterion has no
/// place for them). Counted over 1,000 calls after a warm-up call.
fn allocations(_: &mut Criterion) {
    let rt = rt();
    let short = ChatRequest::new("gpt-4o-mini")
        .message(Message::user("What is the capital of France?"))
        .max_tokens(64);
    let sampled = short.clone().temperature(0.7);
    TiktokenCounter::for_model("gpt-4o-mini").warm_up();
    // `COSTLAYER_BENCH_ALLOC_CALLS` (default 1,000) calls per stack, and
    // `COSTLAYER_BENCH_ONLY` to run only the stacks whose name contains it
    // (the provider alone always runs): two runs under `valgrind
    // --tool=callgrind` with different call counts give a stack's exact
    // instructions per call (the difference over the extra calls).
    let n_calls: usize = std::env::var("COSTLAYER_BENCH_ALLOC_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000)
        .max(1);
    let only = std::env::var("COSTLAYER_BENCH_ONLY").unwrap_or_default();
    let per_call = |svc: &costlayer::layer::builder::LlmService, req: &ChatRequest| {
        rt.block_on(svc.clone().oneshot(req.clone())).expect("warm");
        let n = n_calls;
        let region = Region::new(GLOBAL);
        for _ in 0..n {
            let req = req.clone();
            rt.block_on(svc.clone().oneshot(black_box(req)))
                .expect("call");
        }
        let stats = region.change();
        (stats.allocations + stats.reallocations) as f64 / n as f64
    };
    // The provider alone, through the same boxing, for the difference.
    let bare = costlayer::layer::builder::LlmService::new(SimulatedProvider::new());
    let base = per_call(&bare, &sampled);
    println!("allocations per call (the request clone and the provider's answer included):");
    println!("  provider_alone                      {base:6.1}");
    let cases = [
        (
            "call_through/UpperBound",
            full_stack(EstimatePolicy::UpperBound),
            &sampled,
        ),
        (
            "call_through/Exact",
            full_stack(EstimatePolicy::Exact),
            &sampled,
        ),
        (
            "call_through_Buffered/UpperBound",
            full_stack_with(EstimatePolicy::UpperBound, Ledger::Buffered),
            &sampled,
        ),
        (
            "call_through_Jsonl/UpperBound",
            full_stack_with(EstimatePolicy::UpperBound, Ledger::Jsonl),
            &sampled,
        ),
        (
            "call_through_Budget/UpperBound",
            full_stack_with(EstimatePolicy::UpperBound, Ledger::Budget),
            &sampled,
        ),
        ("cache_hit", full_stack(EstimatePolicy::Exact), &short),
    ];
    for (name, svc, req) in cases {
        if !name.contains(only.as_str()) {
            continue;
        }
        let n = per_call(&svc, req);
        println!("  {name:<35} {n:6.1}  (stack adds {:+.1})", n - base);
    }
    if !"book/memory reserve+settle".contains(only.as_str()) {
        return;
    }
    // The in-memory budget book alone: one reserve + settle, as the budget
    // path makes them (one blocking line).
    let book = MemoryBook::new();
    let lines = [
        BookLine::new(BookKey::new("monthly", "2026-12", &Scope::All), Money::MAX).blocking(true),
    ];
    let rec = CostRecord::new(
        "bench",
        "openai",
        "gpt-4o-mini",
        costlayer::Usage::new(10, 5),
    );
    let reserve_settle = || {
        rt.block_on(async {
            if let Ok(Reserved::Granted { hold, .. }) =
                book.reserve(&lines, Money::from_nanos(1_000)).await
            {
                let _ = book.settle(Some(hold), &rec, &lines).await;
            }
        })
    };
    reserve_settle();
    let region = Region::new(GLOBAL);
    for _ in 0..n_calls {
        reserve_settle();
    }
    let stats = region.change();
    let n = (stats.allocations + stats.reallocations) as f64 / n_calls as f64;
    println!("  {:<35} {n:6.1}", "book/memory reserve+settle");
}

/// Per-call latency percentiles, which criterion does not print: after a
/// warm-up, `COSTLAYER_BENCH_LATENCY_CALLS` calls (default 200,000; 0 skips
/// the pass) are timed one by one, sorted, and p50 / p99 / p99.9 printed
/// for the provider alone and for each stack, with the overhead at each
/// percentile.
fn latency(_: &mut Criterion) {
    let calls: usize = std::env::var("COSTLAYER_BENCH_LATENCY_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    if calls == 0 {
        return;
    }
    // `COSTLAYER_BENCH_LATENCY_PACE_US`: one call every that many
    // microseconds instead of back to back (the rate real callers make
    // calls at is far below a call every few microseconds).
    let pace = std::env::var("COSTLAYER_BENCH_LATENCY_PACE_US")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|us| *us > 0)
        .map(std::time::Duration::from_micros);
    let rt = rt();
    let short = ChatRequest::new("gpt-4o-mini")
        .message(Message::user("What is the capital of France?"))
        .max_tokens(64);
    let sampled = short.clone().temperature(0.7);
    let bare = costlayer::layer::builder::LlmService::new(SimulatedProvider::new());
    let one = |svc: &costlayer::layer::builder::LlmService, req: &ChatRequest| {
        let req = req.clone();
        let svc = svc.clone();
        let start = Instant::now();
        let resp = rt.block_on(svc.oneshot(black_box(req)));
        let t = start.elapsed();
        black_box(resp).expect("call");
        u64::try_from(t.as_nanos()).unwrap_or(u64::MAX)
    };
    // Each timed call of the stack is paired with one of the provider
    // alone, in alternating order, so both see the same moment of a noisy
    // machine; the overhead is read from the pairs.
    let measure = |svc: &costlayer::layer::builder::LlmService, req: &ChatRequest| {
        for _ in 0..calls / 10 + 1 {
            rt.block_on(svc.clone().oneshot(req.clone())).expect("warm");
            rt.block_on(bare.clone().oneshot(sampled.clone()))
                .expect("warm");
        }
        let mut stack: Vec<u64> = Vec::with_capacity(calls);
        let mut alone: Vec<u64> = Vec::with_capacity(calls);
        let mut slot = Instant::now();
        for i in 0..calls {
            if let Some(pace) = pace {
                // A call every `pace`, as callers at a steady rate make
                // them (spun, not slept: a sleep's wake-up would be timed).
                slot += pace;
                while Instant::now() < slot {
                    std::hint::spin_loop();
                }
            }
            if i % 2 == 0 {
                stack.push(one(svc, req));
                alone.push(one(&bare, &sampled));
            } else {
                alone.push(one(&bare, &sampled));
                stack.push(one(svc, req));
            }
        }
        let pct = |mut ns: Vec<u64>| {
            ns.sort_unstable();
            let at = |q: f64| ns[((ns.len() as f64 * q) as usize).min(ns.len() - 1)];
            [at(0.50), at(0.99), at(0.999)]
        };
        (pct(stack), pct(alone))
    };
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned());
    let paced = pace.map_or_else(String::new, |p| {
        format!(", one pair every {} µs", p.as_micros())
    });
    println!("latency per call, {calls} calls timed one by one{paced}, each paired with a call of the provider alone (load average {load}):");
    println!("  {:<35} {:>9} {:>9} {:>9}", "", "p50", "p99", "p99.9");
    let us = |n: u64| n as f64 / 1_000.0;
    let cases = [
        (
            "call_through/UpperBound",
            full_stack(EstimatePolicy::UpperBound),
            &sampled,
        ),
        (
            "call_through_Jsonl/UpperBound",
            full_stack_with(EstimatePolicy::UpperBound, Ledger::Jsonl),
            &sampled,
        ),
        (
            "call_through_Budget/UpperBound",
            full_stack_with(EstimatePolicy::UpperBound, Ledger::Budget),
            &sampled,
        ),
        ("cache_hit", full_stack(EstimatePolicy::UpperBound), &short),
    ];
    let only = std::env::var("COSTLAYER_BENCH_ONLY").unwrap_or_default();
    for (name, svc, req) in cases {
        if !name.contains(only.as_str()) {
            continue;
        }
        let (p, base) = measure(&svc, req);
        println!(
            "  {name:<35} {:>7.2}µs {:>7.2}µs {:>7.2}µs  (over the provider: {:+.2} / {:+.2} / {:+.2} µs)",
            us(p[0]),
            us(p[1]),
            us(p[2]),
            us(p[0]) - us(base[0]),
            us(p[1]) - us(base[1]),
            us(p[2]) - us(base[2]),
        );
        println!(
            "  {:<35} {:>7.2}µs {:>7.2}µs {:>7.2}µs",
            "  its provider alone",
            us(base[0]),
            us(base[1]),
            us(base[2])
        );
    }
}

criterion_group!(
    benches,
    allocations,
    latency,
    estimator,
    cache_hit,
    rate_limit,
    stack,
    concurrent
);
criterion_main!(benches);
