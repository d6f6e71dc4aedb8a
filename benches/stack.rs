//! The layers' overhead: cache hit, rate-limiter check, estimator policies,
//! and the full stack around an instant simulated provider (one caller and
//! 64 concurrent callers).
//!
//! Run with `cargo bench --bench stack` (or `-- --quick` for a rough pass).

use std::hint::black_box;
use std::num::NonZeroU32;

use costlayer::estimate::{EstimatePolicy, Estimator};
use costlayer::layer::cache::CacheLayer;
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

criterion_group!(benches, estimator, cache_hit, rate_limit);
criterion_main!(benches);
