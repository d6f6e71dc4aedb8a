//! The fleet backends against real servers on loopback: PostgreSQL appends
//! (one record, and batches), the budget book's reserve + settle round
//! trip, the dashboard pushed down into SQL over many rows, and one Redis
//! rate-limit check (take + correction).
//!
//! Needs `COSTLAYER_TEST_DATABASE_URL` and `COSTLAYER_TEST_REDIS_URL` (as
//! `.ci/run` sets them); each run uses a fresh schema and key prefix.
//! `DASHBOARD_ROWS` sets the dashboard's row count (default 1,000,000).
//!
//! `cargo bench --features postgres,redis --bench postgres -- --quick`

use std::num::NonZeroU32;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use costlayer::budget::{Budget, Scope};
use costlayer::layer::rate_limit::{OnUnreachable, Quota, RateLimitLayer, RedisBuckets};
use costlayer::ledger::{CostRecord, PostgresStorage, ScanFilter, Storage};
use costlayer::report::DashboardPass;
use costlayer::tracker::book::{BookKey, BookLine, BudgetBook, PostgresBudgetBook, Reserved};
use costlayer::{ChatRequest, Message, Money, Usage};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

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
    // Spread over 60 days before 2026-11-20.
    r.ts = Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap()
        - chrono::Duration::seconds((i * 5_184_000 / 1_000_000 % 5_184_000) as i64);
    r.nano_usd = Some(Money::from_nanos((i % 10_000) as i64 * 37));
    r.latency_ms = 300 + i % 900;
    r.request_id = Some(format!("req_{i:016x}").into());
    r
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_bench_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0)
    )
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    match std::env::var("COSTLAYER_TEST_DATABASE_URL") {
        Ok(url) => postgres(c, &rt, &url),
        Err(_) => eprintln!(
            "*** SKIPPED the PostgreSQL benches: COSTLAYER_TEST_DATABASE_URL is not set ***"
        ),
    }
    match std::env::var("COSTLAYER_TEST_REDIS_URL") {
        Ok(url) => redis(c, &rt, &url),
        Err(_) => eprintln!("*** SKIPPED the Redis bench: COSTLAYER_TEST_REDIS_URL is not set ***"),
    }
}

fn postgres(c: &mut Criterion, rt: &tokio::runtime::Runtime, url: &str) {
    let st = rt
        .block_on(PostgresStorage::builder(url).schema(unique("b")).connect())
        .expect("connect");
    let mut n = 10_000_000u64;
    let mut g = c.benchmark_group("postgres_append");
    g.throughput(Throughput::Elements(1));
    g.bench_function("single", |b| {
        b.to_async(rt).iter(|| {
            n += 1;
            let r = record(n);
            let st = st.clone();
            async move { st.append(&r).await.expect("append") }
        })
    });
    const BATCH: u64 = 5_000;
    g.throughput(Throughput::Elements(BATCH));
    g.sample_size(10);
    g.bench_function("batch_5000", |b| {
        b.to_async(rt).iter(|| {
            let batch: Vec<CostRecord> = (0..BATCH).map(|i| record(n + i)).collect();
            n += BATCH;
            let st = st.clone();
            async move { st.append_batch(&batch).await.expect("append") }
        })
    });
    g.finish();

    // The budget book's round trip: reserve a worst case, settle it to the
    // billed record (two transactions on one blocking line).
    let book = PostgresBudgetBook::new(&st);
    let line = BookLine::new(
        BookKey::new("monthly", "2026-11", &Scope::All),
        Money::from_usd(1_000_000).expect("usd"),
    )
    .blocking(true);
    let lines = [line];
    let mut g = c.benchmark_group("postgres_book");
    g.throughput(Throughput::Elements(1));
    g.bench_function("reserve_settle", |b| {
        b.to_async(rt).iter(|| {
            n += 1;
            let r = record(n);
            let (book, lines) = (book.clone(), lines.clone());
            async move {
                let hold = match book
                    .reserve(&lines, Money::from_nanos(1_000_000))
                    .await
                    .expect("reserve")
                {
                    Reserved::Granted { hold, .. } => hold,
                    other => panic!("refused: {other:?}"),
                };
                book.settle(Some(hold), &r, &lines).await.expect("settle")
            }
        })
    });
    g.finish();

    let rows: u64 = std::env::var("DASHBOARD_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dash = rt
        .block_on(PostgresStorage::builder(url).schema(unique("d")).connect())
        .expect("connect");
    rt.block_on(async {
        let mut i = 0;
        while i < rows {
            let batch: Vec<CostRecord> = (i..(i + 20_000).min(rows)).map(record).collect();
            i += batch.len() as u64;
            dash.append_batch(&batch).await.expect("seed");
        }
    });
    let now = Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap();
    let budgets = [
        Budget::monthly(Money::from_usd(200).expect("usd")),
        Budget::total(Money::from_usd(1_000).expect("usd")),
    ];
    let mut g = c.benchmark_group("postgres_dashboard");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Elements(rows));
    g.bench_function(format!("push_down_{rows}_rows"), |b| {
        b.to_async(rt).iter(|| {
            let dash = dash.clone();
            let budgets = budgets.clone();
            async move {
                let mut pass = DashboardPass::new(now, budgets, ScanFilter::default());
                pass.fold_storage(&dash).await.expect("dashboard");
                pass.finish("x")
            }
        })
    });
    g.finish();
}

fn redis(c: &mut Criterion, rt: &tokio::runtime::Runtime, url: &str) {
    let nz = |n| NonZeroU32::new(n).expect("non-zero");
    let buckets = RedisBuckets::builder(url)
        .prefix(unique("rl"))
        .build()
        .expect("redis");
    let limiter = rt.block_on(async {
        RateLimitLayer::new(Quota::per_minute(nz(u32::MAX / 2), nz(u32::MAX / 2)))
            .fail_fast()
            .shared(buckets, OnUnreachable::FailClosed)
            .limiter()
    });
    let req = ChatRequest::new("gpt-4o-mini")
        .message(Message::user("hi"))
        .max_tokens(100);
    c.bench_function("redis_limiter_check", |b| {
        b.to_async(rt).iter(|| {
            let (limiter, req) = (limiter.clone(), req.clone());
            async move {
                let p = limiter.acquire(&req).await.expect("admitted");
                p.settle(50);
            }
        })
    });
}

criterion_group!(fleet, benches);
criterion_main!(fleet);
