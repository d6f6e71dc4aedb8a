//! Redis-shared rate limits and cache (feature `redis`), against a real
//! server (`COSTLAYER_TEST_REDIS_URL`, see tests/support/servers.rs), with
//! real OS processes: the multi-process tests re-run this test binary with
//! `COSTLAYER_FLEET_CHILD=<mode>:<prefix>` set; the test
//! `child_process_entry` then acts as the child.

#![allow(clippy::unwrap_used)]

use std::num::NonZeroU32;
use std::process::Command;
use std::time::{Duration, Instant};

use costlayer::layer::cache::{CacheLayer, RedisCache, ResponseCache};
use costlayer::layer::rate_limit::{OnUnreachable, Quota, RateLimitLayer, RedisBuckets};
use costlayer::mock::SimulatedProvider;
use costlayer::{ChatRequest, Error, Message};
use tower::{ServiceBuilder, ServiceExt};

#[path = "support/servers.rs"]
mod servers;

const CHILD_ENV: &str = "COSTLAYER_FLEET_CHILD";
/// Nothing listens here: a refused connection, at once.
const CLOSED: &str = "redis://127.0.0.1:1/";

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

fn req() -> ChatRequest {
    ChatRequest::new("gpt-4o-mini")
        .message(Message::user("hi"))
        .max_tokens(100)
}

fn layer(url: &str, prefix: &str, quota: Quota, policy: OnUnreachable) -> RateLimitLayer {
    let buckets = RedisBuckets::builder(url).prefix(prefix).build().unwrap();
    RateLimitLayer::new(quota)
        .fail_fast()
        .shared(buckets, policy)
}

/// The child: tries `n` acquisitions as fast as it can, prints what it got.
#[tokio::test]
async fn child_process_entry() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let url = std::env::var("COSTLAYER_TEST_REDIS_URL").unwrap();
    let (mode, prefix) = spec.split_once(':').unwrap();
    let quota = match mode {
        "rpm" => Quota::requests_per_minute(nz(20)),
        _ => Quota::tokens_per_minute(nz(3_000)),
    };
    let limiter = layer(&url, prefix, quota, OnUnreachable::FailClosed).limiter();
    // Warm up (the token estimator loads its tables), then start together:
    // each child marks itself ready and waits for the other.
    let _ = costlayer::estimate::Estimator::new(costlayer::estimate::EstimatePolicy::Exact)
        .total_tokens(&req());
    let barrier = std::path::PathBuf::from(std::env::var("COSTLAYER_FLEET_BARRIER").unwrap());
    std::fs::write(barrier.join(format!("ready-{}", std::process::id())), b"").unwrap();
    while std::fs::read_dir(&barrier).unwrap().count() < 2 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let (mut admitted, mut tokens, mut refused) = (0u64, 0u64, 0u64);
    let until = Instant::now() + Duration::from_millis(1_500);
    while Instant::now() < until {
        match limiter.acquire(&req()).await {
            Ok(p) => {
                admitted += 1;
                tokens += p.tokens();
                let t = p.tokens();
                p.settle(t);
            }
            Err(Error::RateLimited { .. }) => {
                refused += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    println!("ADMITTED {admitted} {tokens} {refused}");
}

/// Runs two children at once; returns (requests, tokens) admitted in all.
fn two_children(mode: &str, prefix: &str) -> (u64, u64, Duration) {
    let barrier = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let children: Vec<_> = (0..2)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "child_process_entry",
                    "--exact",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_ENV, format!("{mode}:{prefix}"))
                .env("COSTLAYER_FLEET_BARRIER", barrier.path())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let (mut req, mut tok) = (0, 0);
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "child failed");
        let text = String::from_utf8_lossy(&out.stdout);
        let at = text.find("ADMITTED ").expect("child output");
        let mut parts = text[at..]
            .split_whitespace()
            .skip(1)
            .map(|n| n.parse::<u64>().unwrap());
        let (r, t, refused) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        // Each process drew on the one bucket: admitted, or refused because
        // the other had drained it (which of the two gets the burst is a
        // race between them).
        assert!(r + refused > 0, "each process used the bucket: {text}");
        req += r;
        tok += t;
    }
    (req, tok, start.elapsed())
}

#[test]
fn two_processes_share_one_requests_per_minute_ceiling() {
    let Some(_) = servers::redis_url("rpm_two_processes") else {
        return;
    };
    let prefix = servers::unique("rl", "rpm");
    let (admitted, _, took) = two_children("rpm", &prefix);
    // 20 at once (the burst), plus one per 3 s of refill while they ran;
    // alone, each process would have admitted 20.
    let refill = took.as_secs() / 3 + 1;
    assert!(
        (20..=20 + refill).contains(&admitted),
        "{admitted} admitted in {took:?}"
    );
}

#[test]
fn two_processes_share_one_tokens_per_minute_ceiling() {
    let Some(_) = servers::redis_url("tpm_two_processes") else {
        return;
    };
    let prefix = servers::unique("rl", "tpm");
    let (admitted, tokens, took) = two_children("tpm", &prefix);
    // 3,000 tokens at once, plus 50 a second of refill.
    let refill = 50 * (took.as_secs() + 1);
    assert!(tokens <= 3_000 + refill, "{tokens} tokens in {took:?}");
    let weight = tokens / admitted;
    assert!(tokens + weight > 3_000, "the ceiling was reached: {tokens}");
}

#[tokio::test]
async fn billed_usage_refunds_or_charges_the_shared_bucket() {
    let Some(url) = servers::redis_url("refund_debt") else {
        return;
    };
    let prefix = servers::unique("rl", "refund");
    let limiter = layer(
        &url,
        &prefix,
        Quota::tokens_per_minute(nz(1_000)),
        OnUnreachable::FailClosed,
    )
    .limiter();
    let mut held = Vec::new();
    let refused = loop {
        match limiter.acquire(&req()).await {
            Ok(p) => held.push(p),
            Err(e) => break e,
        }
        assert!(held.len() < 20);
    };
    assert!(matches!(refused, Error::RateLimited { .. }), "{refused}");
    let weight = held[0].tokens();
    assert_eq!(held.len() as u64, 1_000 / weight);
    // A call that used nothing gives its tokens back.
    held.pop().unwrap().settle(0);
    let back = async {
        for _ in 0..50 {
            if let Ok(p) = limiter.acquire(&req()).await {
                return Some(p);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    };
    let again = back.await.expect("the refund is visible to the next call");
    // A call that used far more than it reserved leaves the bucket in debt.
    again.settle(weight + 2_000);
    tokio::time::sleep(Duration::from_millis(200)).await;
    match limiter.acquire(&req()).await {
        Err(Error::RateLimited {
            retry_after: Some(wait),
            ..
        }) => {
            assert!(
                wait > Duration::from_secs(100),
                "debt is waited out: {wait:?}"
            )
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn unreachable_redis_fails_open_to_in_process_limits() {
    let limiter = layer(
        CLOSED,
        "x",
        Quota::requests_per_minute(nz(2)),
        OnUnreachable::FailOpen,
    )
    .limiter();
    limiter.acquire(&req()).await.unwrap().settle(0);
    limiter.acquire(&req()).await.unwrap().settle(0);
    // The in-process bucket still holds the quota.
    let e = limiter.acquire(&req()).await.unwrap_err();
    assert!(matches!(e, Error::RateLimited { .. }), "{e}");
}

#[tokio::test]
async fn unreachable_redis_fails_closed_when_configured() {
    let limiter = layer(
        CLOSED,
        "x",
        Quota::requests_per_minute(nz(2)),
        OnUnreachable::FailClosed,
    )
    .limiter();
    let e = limiter.acquire(&req()).await.unwrap_err();
    assert!(matches!(e, Error::Connection { .. }), "{e}");
    assert!(e.to_string().contains("fail closed"), "{e}");
    // Through the layer: the provider is never called.
    let provider = SimulatedProvider::new();
    let buckets = RedisBuckets::builder(CLOSED).build().unwrap();
    let svc = ServiceBuilder::new()
        .layer(
            RateLimitLayer::new(Quota::requests_per_minute(nz(2)))
                .shared(buckets, OnUnreachable::FailClosed),
        )
        .service(provider.clone());
    assert!(svc.oneshot(req()).await.is_err());
    assert_eq!(provider.calls(), 0);
}

#[tokio::test]
async fn redis_cache_is_shared_compressed_capped_and_expires() {
    let Some(url) = servers::redis_url("cache") else {
        return;
    };
    let prefix = servers::unique("cache", "shared");
    let cache = |compress: bool| {
        let b = RedisCache::builder(&url)
            .prefix(&prefix)
            .max_entries(3)
            .time_to_live(Duration::from_millis(800));
        if compress { b.compress_over(0) } else { b }
            .build()
            .unwrap()
    };
    let provider = SimulatedProvider::new();
    let svc = ServiceBuilder::new()
        .layer(CacheLayer::new(cache(true)))
        .service(provider.clone());
    let first = svc.clone().oneshot(req()).await.unwrap();
    assert!(!first.cached);
    // Another process (another cache and connection) gets the hit.
    let other = ServiceBuilder::new()
        .layer(CacheLayer::new(cache(false)))
        .service(provider.clone());
    let hit = other.clone().oneshot(req()).await.unwrap();
    assert!(hit.cached);
    assert_eq!(hit.text, first.text);
    assert_eq!(provider.calls(), 1);
    // The cap: five distinct questions, three entries kept, the oldest gone.
    for i in 0..5 {
        let q = ChatRequest::new("gpt-4o-mini").message(Message::user(format!("question {i}")));
        svc.clone().oneshot(q).await.unwrap();
    }
    let c = cache(false);
    assert_eq!(c.entry_count().await.unwrap(), 3);
    let oldest = costlayer::layer::cache::CacheKey::for_request(
        &ChatRequest::new("gpt-4o-mini").message(Message::user("question 0")),
        None,
    )
    .unwrap();
    assert!(c.get(&oldest).await.is_none());
    // The TTL.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let calls = provider.calls();
    assert!(!svc.clone().oneshot(req()).await.unwrap().cached);
    assert_eq!(provider.calls(), calls + 1);
}

#[tokio::test]
async fn unreachable_cache_fails_open_or_closed_as_configured() {
    let provider = SimulatedProvider::new();
    let open = RedisCache::builder(CLOSED).build().unwrap();
    let svc = ServiceBuilder::new()
        .layer(CacheLayer::new(open))
        .service(provider.clone());
    assert!(!svc.clone().oneshot(req()).await.unwrap().cached);
    assert!(!svc.oneshot(req()).await.unwrap().cached);
    assert_eq!(provider.calls(), 2);
    let closed = RedisCache::builder(CLOSED)
        .on_unreachable(OnUnreachable::FailClosed)
        .build()
        .unwrap();
    let svc = ServiceBuilder::new()
        .layer(CacheLayer::new(closed))
        .service(provider.clone());
    let e = svc.oneshot(req()).await.unwrap_err();
    assert!(matches!(e, Error::Connection { .. }), "{e}");
    assert_eq!(provider.calls(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stacks_from_a_config_with_a_redis_url_share_the_cache() {
    let Some(url) = servers::redis_url("stack_from_config") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut config = costlayer::config::Config::default();
    config.data_dir = tmp.path().to_owned();
    config.user = "alice".into();
    config.redis_url = Some(costlayer::config::Secret::new(url.clone()));
    // A fresh question, so no earlier run's entry answers it.
    let q = ChatRequest::new("gpt-4o-mini").message(Message::user(servers::unique("q", "stack")));
    let provider = SimulatedProvider::new();
    let a = costlayer::layer::builder::StackBuilder::from_config(&config)
        .unwrap()
        .build(provider.clone());
    let b = costlayer::layer::builder::StackBuilder::from_config(&config)
        .unwrap()
        .build(provider.clone());
    assert!(!a.oneshot(q.clone()).await.unwrap().cached);
    assert!(
        b.oneshot(q).await.unwrap().cached,
        "the second stack is answered from Redis"
    );
    assert_eq!(provider.calls(), 1);
}

/// Entries inserted within one millisecond (a burst) are evicted oldest
/// first: the index's scores are strictly increasing, never tied (a tie
/// made the cap drop the lexicographically smallest key instead).
#[tokio::test]
async fn a_burst_of_inserts_evicts_the_oldest_first() {
    use costlayer::layer::cache::CacheKey;
    let Some(url) = servers::redis_url("cache") else {
        return;
    };
    let cache = RedisCache::builder(&url)
        .prefix(servers::unique("cache", "burst"))
        .max_entries(10)
        .time_to_live(Duration::from_secs(60))
        .build()
        .unwrap();
    let key = |i: usize| {
        CacheKey::for_request(
            &ChatRequest::new("gpt-4o-mini").message(Message::user(format!("burst {i}"))),
            None,
        )
        .unwrap()
    };
    for i in 0..50 {
        let resp = costlayer::ChatResponse {
            text: format!("answer {i}"),
            ..Default::default()
        };
        cache.insert(key(i), resp).await;
    }
    assert_eq!(cache.entry_count().await.unwrap(), 10);
    for i in 0..40 {
        assert!(
            cache.get(&key(i)).await.is_none(),
            "entry {i} should be evicted"
        );
    }
    for i in 40..50 {
        let hit = cache.get(&key(i)).await;
        assert_eq!(
            hit.map(|r| r.text),
            Some(format!("answer {i}")),
            "entry {i}"
        );
    }
}
