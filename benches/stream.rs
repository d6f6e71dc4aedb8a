//! The layers' cost per streamed delta: the full stack (cost, cache,
//! retry, rate limit) around an in-process provider that replays a
//! prepared stream, against the same provider bare, at 1 and 1,000 deltas
//! a stream. The per-delta overhead is the difference of the slopes:
//! `((stack_1000 - stack_1) - (bare_1000 - bare_1)) / 999`.
//!
//! Run with `cargo bench --bench stream` (or `-- --quick`).

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::Arc;

use costlayer::layer::builder::StackBuilder;
use costlayer::layer::rate_limit::{Quota, RateLimitLayer};
use costlayer::ledger::MemoryStorage;
use costlayer::tracker::CostTracker;
use costlayer::{ChatDelta, ChatRequest, ChatStream, Error, Message, StreamRequest, Usage};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use futures_util::StreamExt;
use tower::{service_fn, ServiceExt};

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

fn stream(c: &mut Criterion) {
    let rt = rt();
    let mut g = c.benchmark_group("stream");
    for n in [1usize, 1000] {
        let prepared = deltas(n);
        let provider = service_fn(move |_: StreamRequest| {
            let d = prepared.clone();
            async move { Ok::<_, Error>(ChatStream::from_deltas("openai", (*d).clone())) }
        });
        g.throughput(Throughput::Elements(n as u64));
        let bare = provider.clone();
        g.bench_with_input(BenchmarkId::new("bare", n), &n, |b, _| {
            b.iter(|| {
                rt.block_on(async {
                    let mut s = bare.clone().oneshot(req()).await.expect("stream");
                    while let Some(d) = s.next().await {
                        black_box(d.expect("delta"));
                    }
                })
            })
        });
        let tracker = CostTracker::builder()
            .storage(Arc::new(MemoryStorage::new()))
            .user("bench")
            .build()
            .expect("tracker");
        let big = NonZeroU32::new(u32::MAX).expect("non-zero");
        let stack = StackBuilder::new(tracker)
            .rate_limit(RateLimitLayer::new(Quota::requests_per_minute(big)))
            .build_streaming(provider);
        g.bench_with_input(BenchmarkId::new("stack", n), &n, |b, _| {
            b.iter(|| {
                rt.block_on(async {
                    let mut s = stack.clone().oneshot(req()).await.expect("stream");
                    while let Some(d) = s.next().await {
                        black_box(d.expect("delta"));
                    }
                })
            })
        });
    }
    g.finish();
}

criterion_group!(benches, stream);
criterion_main!(benches);
