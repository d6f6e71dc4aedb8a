//! The layers' cost per streamed delta, around an in-process provider that
//! replays a prepared stream, at 1 and 1,000 deltas a stream:
//!
//! - `bare`: the provider alone;
//! - `cost`: the cost layer alone (the metered stream that folds every
//!   delta and settles once at the end);
//! - `stack`: the full stack (cost, cache, retry, rate limit).
//!
//! The per-delta overhead of a layered service is the difference of the
//! slopes: `((layered_1000 - layered_1) - (bare_1000 - bare_1)) / 999`,
//! which cancels the per-call cost (reservation, settlement, ledger
//! append). After criterion's groups, the bench measures that difference
//! directly, 31 rounds interleaved (so a load spike hits every variant
//! alike), and prints the median per delta: the figure the README reports.
//!
//! Run with `cargo bench --bench stream` (or `-- --quick`).

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use costlayer::layer::builder::{LlmStreamService, StackBuilder};
use costlayer::layer::cost::CostLayer;
use costlayer::layer::rate_limit::{Quota, RateLimitLayer};
use costlayer::ledger::MemoryStorage;
use costlayer::tracker::CostTracker;
use costlayer::{ChatDelta, ChatRequest, ChatStream, Error, Message, StreamRequest, Usage};
use criterion::{BenchmarkId, Criterion, Throughput};
use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use tower::util::BoxCloneSyncService;
use tower::{service_fn, ServiceBuilder, ServiceExt};

fn deltas(n: usize) -> Arc<Vec<ChatDelta>> {
    let mut v: Vec<ChatDelta> = (0..n.saturating_sub(1))
        .map(|_| ChatDelta {
            text: "word ".into(),
            ..ChatDelta::default()
        })
        .collect();
    v.push(ChatDelta {
        usage: Some(Usage::new(100, n as u64)),
        done: true,
        ..ChatDelta::default()
    });
    Arc::new(v)
}

fn req() -> StreamRequest {
    StreamRequest::new(
        ChatRequest::new("gpt-4o-mini")
            .message(Message::user("hi"))
            .max_tokens(4096),
    )
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

type Svc = BoxCloneSyncService<StreamRequest, ChatStream, Error>;

/// The provider replaying `n` deltas.
fn provider(n: usize) -> Svc {
    let prepared = deltas(n);
    BoxCloneSyncService::new(service_fn(move |_: StreamRequest| {
        let d = prepared.clone();
        let fut: BoxFuture<'static, Result<ChatStream, Error>> =
            Box::pin(async move { Ok(ChatStream::from_deltas("openai", (*d).clone())) });
        fut
    }))
}

fn tracker() -> CostTracker {
    CostTracker::builder()
        .storage(Arc::new(MemoryStorage::new()))
        .user("bench")
        .build()
        .expect("tracker")
}

/// The three variants over the provider replaying `n` deltas.
fn variants(n: usize) -> [(&'static str, Svc); 3] {
    let bare = provider(n);
    let cost = BoxCloneSyncService::new(
        ServiceBuilder::new()
            .layer(CostLayer::new(tracker()))
            .service(provider(n)),
    );
    let big = NonZeroU32::new(u32::MAX).expect("non-zero");
    let stack: LlmStreamService = StackBuilder::new(tracker())
        .rate_limit(RateLimitLayer::new(Quota::requests_per_minute(big)))
        .build_streaming(provider(n));
    [("bare", bare), ("cost", cost), ("stack", stack)]
}

/// Reads one whole stream from `svc`.
async fn drain(svc: &Svc) {
    let mut s = svc.clone().oneshot(req()).await.expect("stream");
    while let Some(d) = s.next().await {
        black_box(d.expect("delta"));
    }
}

fn stream(c: &mut Criterion) {
    let rt = rt();
    let mut g = c.benchmark_group("stream");
    for n in [1usize, 1000] {
        g.throughput(Throughput::Elements(n as u64));
        for (name, svc) in variants(n) {
            g.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
                b.iter(|| rt.block_on(drain(&svc)))
            });
        }
    }
    g.finish();
}

/// Mean time of one stream over `iters` streams.
fn mean(rt: &tokio::runtime::Runtime, svc: &Svc, iters: u32) -> Duration {
    let started = Instant::now();
    rt.block_on(async {
        for _ in 0..iters {
            drain(svc).await;
        }
    });
    started.elapsed() / iters
}

/// The per-delta overhead of `cost` and `stack` over `bare`, median of
/// interleaved rounds.
fn per_delta_overhead(rounds: usize) {
    let rt = rt();
    let short = variants(1);
    let long = variants(1000);
    let mut overhead: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for round in 0..=rounds {
        let t: Vec<(f64, f64)> = short
            .iter()
            .zip(long.iter())
            .map(|((_, s), (_, l))| {
                let one = mean(&rt, s, 2000).as_nanos() as f64;
                let thousand = mean(&rt, l, 20).as_nanos() as f64;
                (one, thousand)
            })
            .collect();
        if round == 0 {
            continue; // warm-up
        }
        let slope = |(one, thousand): (f64, f64)| (thousand - one) / 999.0;
        for (i, o) in overhead.iter_mut().enumerate() {
            o.push(slope(t[i + 1]) - slope(t[0]));
        }
    }
    for (name, mut o) in ["cost layer", "full stack"].into_iter().zip(overhead) {
        o.sort_by(f64::total_cmp);
        println!(
            "stream/per-delta overhead, {name}: median {:.0} ns (min {:.0}, max {:.0}; {} rounds)",
            o[o.len() / 2],
            o[0],
            o[o.len() - 1],
            o.len()
        );
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    stream(&mut c);
    c.final_summary();
    // `cargo bench -- --list` and criterion's test mode only ask what runs.
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    per_delta_overhead(if quick { 11 } else { 31 });
}
