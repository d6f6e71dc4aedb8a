//! The layers' overhead: cache hit, rate-limiter check, estimator policies,
//! and the full stack around an instant simulated provider (one caller and
//! 64 concurrent callers).
//!
//! Run with `cargo bench --bench stack` (or `-- --quick` for a rough pass).

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use costlayer::layer::builder::StackBuilder;
use costlayer::layer::retry::RetryLayer;
use costlayer::ledger::{
    CostRecord, LedgerError, RecordStream, ResetReport, ResetScope, ScanFilter, Storage,
};
use costlayer::tracker::CostTracker;
use futures_util::StreamExt;

use costlayer::estimate::{EstimatePolicy, Estimator};
use costlayer::layer::cache::{CacheKey, CacheLayer};
use costlayer::layer::rate_limit::{Quota, RateLimitLayer};
use costlayer::mock::SimulatedProvider;
use costlayer::tokens::TiktokenCounter;
use costlayer::{ChatRequest, Message};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use tower::{ServiceBuilder, ServiceExt};

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
        g.bench_function(format!("check_settle/{policy:?}"), |b| {
            b.iter(|| {
                let permit = limiter.try_acquire(black_box(&req)).expect("admitted");
                permit.settle(700);
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

/// The full stack around an instant simulated provider. The rate limiter's
/// quota never binds; its estimator policy is `policy`.
fn full_stack(policy: EstimatePolicy) -> costlayer::layer::builder::LlmService {
    let nz = |n| NonZeroU32::new(n).expect("non-zero");
    let tracker = CostTracker::builder()
        .storage(Arc::new(NullStorage))
        .user("bench")
        .build()
        .expect("tracker");
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

criterion_group!(benches, estimator, cache_hit, rate_limit, stack, concurrent);
criterion_main!(benches);
