//! RateLimitLayer.

use std::num::NonZeroU32;
use std::time::Duration;

use costlayer::estimate::{EstimatePolicy, Estimator};
use costlayer::layer::rate_limit::{Available, Quota, RateLimitLayer};
use costlayer::mock::SimulatedProvider;
use costlayer::{ChatRequest, ChatResponse, Error, Usage};
use futures_util::future::join_all;
use tokio::time::Instant;
use tower::{ServiceBuilder, ServiceExt};

use crate::support::{recording, req, response, Calls};

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

fn secs(s: &[u64]) -> Vec<Duration> {
    s.iter().map(|s| Duration::from_secs(*s)).collect()
}

/// A provider billing exactly `usage(request)`.
fn billing(
    calls: Calls,
    usage: impl Fn(&ChatRequest) -> Usage + Clone + Send + 'static,
) -> impl tower::Service<
    ChatRequest,
    Response = ChatResponse,
    Error = Error,
    Future = std::future::Ready<Result<ChatResponse, Error>>,
> + Clone
       + Send
       + 'static {
    recording(calls, move |r| Ok(response(r, usage(r))))
}

/// Billing exactly the estimate, so the buckets see no correction.
fn exact_estimate(r: &ChatRequest) -> Usage {
    let e = Estimator::new(EstimatePolicy::Exact);
    Usage::new(e.prompt_tokens(r), e.max_output_tokens(r))
}

#[tokio::test(start_paused = true)]
async fn the_rpm_ceiling_holds_over_a_simulated_minute_in_arrival_order() {
    let calls = Calls::default();
    let svc = ServiceBuilder::new()
        .layer(
            RateLimitLayer::new(Quota::requests_per_minute(nz(10)))
                .max_wait(Duration::from_secs(600)),
        )
        .service(billing(calls.clone(), exact_estimate));
    let start = Instant::now();
    let results =
        join_all((0..25).map(|i| svc.clone().oneshot(req("gpt-4o", &format!("call {i}"))))).await;
    assert!(results.iter().all(Result::is_ok));
    let offsets = calls.offsets(start);
    // The burst of 10 at once, then one every 6 s.
    let expected: Vec<Duration> = (0..25u64)
        .map(|i| Duration::from_secs(i.saturating_sub(9) * 6))
        .collect();
    assert_eq!(offsets, expected);
    // Within the first minute: the burst plus the refill, never more.
    assert_eq!(
        offsets
            .iter()
            .filter(|t| **t < Duration::from_secs(60))
            .count(),
        19
    );
    // First come, first served.
    let order: Vec<String> = calls
        .requests()
        .iter()
        .map(|r| r.messages[0].content.text())
        .collect();
    let arrival: Vec<String> = (0..25).map(|i| format!("call {i}")).collect();
    assert_eq!(order, arrival);
}

#[tokio::test(start_paused = true)]
async fn the_tpm_ceiling_holds_over_a_simulated_minute() {
    let calls = Calls::default();
    let r = req("gpt-4o", "weigh me").max_tokens(190);
    let w = Estimator::new(EstimatePolicy::Exact).total_tokens(&r);
    let svc = ServiceBuilder::new()
        .layer(
            RateLimitLayer::new(Quota::tokens_per_minute(nz(1_000)))
                .max_wait(Duration::from_secs(600)),
        )
        .service(billing(calls.clone(), exact_estimate));
    let start = Instant::now();
    join_all((0..12).map(|_| svc.clone().oneshot(r.clone()))).await;
    let offsets = calls.offsets(start);
    // Request n (0-based) goes when (n + 1) * w tokens have been granted:
    // 1000 at once, then 1000 a minute, to the nanosecond (rounded up).
    let expected: Vec<Duration> = (0..12u64)
        .map(|n| {
            let need = (n + 1) * w;
            let extra = need.saturating_sub(1_000) as u128;
            Duration::from_nanos(((extra * 60_000_000_000).div_ceil(1_000)) as u64)
        })
        .collect();
    assert_eq!(offsets, expected);
    let in_first_minute = offsets
        .iter()
        .filter(|t| **t < Duration::from_secs(60))
        .count() as u64;
    assert!(in_first_minute * w <= 2_000, "{in_first_minute} x {w}");
}

#[tokio::test(start_paused = true)]
async fn a_small_actual_usage_is_refunded() {
    let calls = Calls::default();
    let layer = RateLimitLayer::new(Quota::tokens_per_minute(nz(1_000)));
    let limiter = layer.limiter();
    let svc = ServiceBuilder::new()
        .layer(layer)
        .service(billing(calls.clone(), |_| Usage::new(8, 2)));
    // Reserves ~ 910 tokens; bills 10.
    let r = req("gpt-4o", "short").max_tokens(900);
    let start = Instant::now();
    svc.clone().oneshot(r.clone()).await.unwrap();
    assert_eq!(
        limiter.available("openai:gpt-4o"),
        Some(Available {
            requests: None,
            tokens: Some(990)
        })
    );
    // Without the refund this would wait most of a minute.
    svc.clone().oneshot(r.clone()).await.unwrap();
    assert!(start.elapsed().is_zero());
    assert_eq!(
        limiter.available("openai:gpt-4o"),
        Some(Available {
            requests: None,
            tokens: Some(980)
        })
    );
}

#[tokio::test(start_paused = true)]
async fn a_larger_actual_usage_becomes_debt_that_later_calls_wait_out() {
    let calls = Calls::default();
    let layer = RateLimitLayer::new(Quota::tokens_per_minute(nz(1_000)));
    let limiter = layer.limiter();
    let svc = ServiceBuilder::new()
        .layer(layer)
        .service(billing(calls.clone(), |r| {
            if r.messages[0].content.text() == "huge" {
                Usage::new(1_000, 500)
            } else {
                exact_estimate(r)
            }
        }));
    let start = Instant::now();
    svc.clone()
        .oneshot(req("gpt-4o", "huge").max_tokens(10))
        .await
        .unwrap();
    assert_eq!(
        limiter.available("openai:gpt-4o"),
        Some(Available {
            requests: None,
            tokens: Some(-500)
        })
    );
    let small = req("gpt-4o", "small").max_tokens(10);
    let w = Estimator::new(EstimatePolicy::Exact).total_tokens(&small);
    svc.clone().oneshot(small).await.unwrap();
    // 500 of debt plus w, refilled at 1000 a minute.
    let expected = Duration::from_nanos(((500 + w) as u128 * 60_000_000_000).div_ceil(1000) as u64);
    assert_eq!(start.elapsed(), expected);
}

#[tokio::test(start_paused = true)]
async fn a_failed_call_refunds_its_tokens_but_not_its_request() {
    let provider = SimulatedProvider::builder()
        .fail_first(1, costlayer::mock::Failure::Server { status: 500 })
        .build();
    let layer = RateLimitLayer::new(Quota::per_minute(nz(10), nz(1_000)));
    let limiter = layer.limiter();
    let svc = ServiceBuilder::new().layer(layer).service(provider);
    svc.oneshot(req("gpt-4o", "x").max_tokens(500))
        .await
        .unwrap_err();
    assert_eq!(
        limiter.available("openai:gpt-4o"),
        Some(Available {
            requests: Some(9),
            tokens: Some(1_000)
        })
    );
}

#[tokio::test(start_paused = true)]
async fn a_call_that_would_wait_past_max_wait_fails_at_once() {
    let calls = Calls::default();
    let svc = ServiceBuilder::new()
        .layer(
            RateLimitLayer::new(Quota::requests_per_minute(nz(1)))
                .max_wait(Duration::from_secs(10)),
        )
        .service(billing(calls.clone(), exact_estimate));
    let start = Instant::now();
    svc.clone().oneshot(req("gpt-4o", "1")).await.unwrap();
    let e = svc.clone().oneshot(req("gpt-4o", "2")).await.unwrap_err();
    assert!(start.elapsed().is_zero());
    match &e {
        Error::RateLimited {
            provider,
            retry_after,
            ..
        } => {
            assert_eq!(provider, "costlayer");
            assert_eq!(*retry_after, Some(Duration::from_secs(60)));
        }
        other => panic!("{other}"),
    }
    assert!(e.is_retryable());
    assert!(e.to_string().contains("openai:gpt-4o"), "{e}");
    assert_eq!(calls.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_waiting_call_gives_up_at_max_wait() {
    // The first call takes the whole bucket and then bills twice its
    // reservation; the second, queued with an expected wait of 30 s, sees
    // the debt and gives up at its 40 s deadline.
    let calls = Calls::default();
    let slow = SimulatedProvider::builder()
        .latency(Duration::from_secs(1))
        .build();
    let big = req("gpt-4o", "big").max_tokens(990);
    let w_big = Estimator::new(EstimatePolicy::Exact).total_tokens(&big);
    let inner = billing(calls.clone(), move |_| Usage::new(w_big, w_big));
    let delayed = tower::ServiceBuilder::new()
        .and_then(move |resp: ChatResponse| {
            let slow = slow.clone();
            async move {
                slow.oneshot(ChatRequest::new("x")).await?;
                Ok::<_, Error>(resp)
            }
        })
        .service(inner);
    let svc = ServiceBuilder::new()
        .layer(
            RateLimitLayer::new(Quota::tokens_per_minute(nz(1_000)).token_burst(nz(1_000)))
                .max_wait(Duration::from_secs(40)),
        )
        .service(delayed);
    let small = req("gpt-4o", "small").max_tokens(500 - 8);
    let start = Instant::now();
    let (a, b) = tokio::join!(svc.clone().oneshot(big), async {
        tokio::task::yield_now().await;
        let r = svc.clone().oneshot(small).await;
        (r, start.elapsed())
    });
    a.unwrap();
    let (b, waited) = b;
    assert!(matches!(b, Err(Error::RateLimited { .. })), "{b:?}");
    assert_eq!(waited, Duration::from_secs(40));
    assert_eq!(calls.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn fail_fast_never_waits() {
    let svc = ServiceBuilder::new()
        .layer(RateLimitLayer::new(Quota::requests_per_minute(nz(2))).fail_fast())
        .service(SimulatedProvider::new());
    svc.clone().oneshot(req("gpt-4o", "1")).await.unwrap();
    svc.clone().oneshot(req("gpt-4o", "2")).await.unwrap();
    let e = svc.clone().oneshot(req("gpt-4o", "3")).await.unwrap_err();
    assert_eq!(e.retry_after(), Some(Duration::from_secs(30)));
    tokio::time::advance(Duration::from_secs(30)).await;
    svc.clone().oneshot(req("gpt-4o", "4")).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_request_heavier_than_the_burst_fails_at_once() {
    let provider = SimulatedProvider::new();
    let svc = ServiceBuilder::new()
        .layer(RateLimitLayer::new(
            Quota::tokens_per_minute(nz(100_000)).token_burst(nz(1_000)),
        ))
        .service(provider.clone());
    let e = svc
        .oneshot(req("gpt-4o", "x").max_tokens(5_000))
        .await
        .unwrap_err();
    match e {
        Error::InsufficientCapacity {
            requested,
            capacity,
            unit,
        } => {
            assert!(requested > 5_000);
            assert_eq!(capacity, 1_000);
            assert_eq!(unit, "tokens");
        }
        other => panic!("{other}"),
    }
    assert_eq!(provider.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_small_request_does_not_overtake_a_large_one_queued_before_it() {
    let calls = Calls::default();
    let svc = ServiceBuilder::new()
        .layer(RateLimitLayer::new(Quota::tokens_per_minute(nz(1_000))))
        .service(billing(calls.clone(), exact_estimate));
    let est = |r: &ChatRequest| Estimator::new(EstimatePolicy::Exact).total_tokens(r);
    let first = req("gpt-4o", "first").max_tokens(900);
    let large = req("gpt-4o", "large").max_tokens(800);
    let small = req("gpt-4o", "small").max_tokens(1);
    let (w1, w2, w3) = (est(&first), est(&large), est(&small));
    assert!(
        1_000 - w1 >= w3,
        "the small one would fit at once if it could overtake"
    );
    let start = Instant::now();
    join_all([first, large, small].map(|r| svc.clone().oneshot(r))).await;
    let order: Vec<String> = calls
        .requests()
        .iter()
        .map(|r| r.messages[0].content.text())
        .collect();
    assert_eq!(order, ["first", "large", "small"]);
    let offsets = calls.offsets(start);
    let at = |tokens: u64| {
        Duration::from_nanos((tokens as u128 * 60_000_000_000).div_ceil(1_000) as u64)
    };
    assert_eq!(offsets[1], at(w1 + w2 - 1_000));
    // Behind the large one, the small one waits for its own few tokens.
    assert_eq!(offsets[2], at(w1 + w2 + w3 - 1_000));
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_waiter_leaves_the_queue() {
    let calls = Calls::default();
    let svc = ServiceBuilder::new()
        .layer(RateLimitLayer::new(Quota::requests_per_minute(nz(1))))
        .service(billing(calls.clone(), exact_estimate));
    let start = Instant::now();
    svc.clone().oneshot(req("gpt-4o", "1")).await.unwrap();
    // Queued for 60 s, abandoned after 5.
    let abandoned = tokio::time::timeout(
        Duration::from_secs(5),
        svc.clone().oneshot(req("gpt-4o", "2")),
    )
    .await;
    assert!(abandoned.is_err());
    // The next caller takes its place and goes when the bucket refills.
    svc.clone().oneshot(req("gpt-4o", "3")).await.unwrap();
    assert_eq!(calls.offsets(start), secs(&[0, 60]));
    let order: Vec<String> = calls
        .requests()
        .iter()
        .map(|r| r.messages[0].content.text())
        .collect();
    assert_eq!(order, ["1", "3"]);
}

#[tokio::test(start_paused = true)]
async fn clones_and_services_of_one_layer_share_buckets() {
    let calls = Calls::default();
    let layer = RateLimitLayer::new(Quota::requests_per_minute(nz(2)));
    let a = ServiceBuilder::new()
        .layer(layer.clone())
        .service(billing(calls.clone(), exact_estimate));
    let b = ServiceBuilder::new()
        .layer(layer)
        .service(billing(calls.clone(), exact_estimate));
    let start = Instant::now();
    a.clone().oneshot(req("gpt-4o", "1")).await.unwrap();
    a.clone().oneshot(req("gpt-4o", "2")).await.unwrap();
    b.clone().oneshot(req("gpt-4o", "3")).await.unwrap();
    assert_eq!(calls.offsets(start), secs(&[0, 0, 30]));
}

#[tokio::test(start_paused = true)]
async fn keys_default_to_provider_and_model_and_can_be_anything() {
    let calls = Calls::default();
    let per_model = ServiceBuilder::new()
        .layer(RateLimitLayer::new(Quota::requests_per_minute(nz(1))))
        .service(billing(calls.clone(), exact_estimate));
    let start = Instant::now();
    per_model.clone().oneshot(req("gpt-4o", "a")).await.unwrap();
    per_model
        .clone()
        .oneshot(req("gpt-4o-mini", "b"))
        .await
        .unwrap();
    per_model
        .clone()
        .oneshot(req("claude-haiku-4-5", "c"))
        .await
        .unwrap();
    assert!(start.elapsed().is_zero());

    let layer = RateLimitLayer::new(Quota::requests_per_minute(nz(1)))
        .key(|r| r.user.clone().unwrap_or_default());
    let limiter = layer.limiter();
    let per_user = ServiceBuilder::new()
        .layer(layer)
        .service(billing(calls.clone(), exact_estimate));
    per_user
        .clone()
        .oneshot(req("gpt-4o", "a").user("alice"))
        .await
        .unwrap();
    per_user
        .clone()
        .oneshot(req("gpt-4o-mini", "b").user("bob"))
        .await
        .unwrap();
    assert!(start.elapsed().is_zero());
    per_user
        .clone()
        .oneshot(req("claude-haiku-4-5", "c").user("alice"))
        .await
        .unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(60));
    assert!(limiter.available("alice").is_some());
    assert!(limiter.available("openai:gpt-4o").is_none());
}

#[tokio::test(start_paused = true)]
async fn a_key_can_have_its_own_quota() {
    let calls = Calls::default();
    let svc = ServiceBuilder::new()
        .layer(
            RateLimitLayer::new(Quota::requests_per_minute(nz(1)))
                .quota_for("openai:gpt-4o-mini", Quota::requests_per_minute(nz(3)))
                .quota_for("openai:gpt-4.1", Quota::unlimited()),
        )
        .service(billing(calls.clone(), exact_estimate));
    let start = Instant::now();
    for i in 0..3 {
        svc.clone()
            .oneshot(req("gpt-4o-mini", &i.to_string()))
            .await
            .unwrap();
    }
    for i in 0..50 {
        svc.clone()
            .oneshot(req("gpt-4.1", &i.to_string()))
            .await
            .unwrap();
    }
    assert!(start.elapsed().is_zero());
}

#[tokio::test(start_paused = true)]
async fn the_estimator_policy_sets_the_weight() {
    let layer = RateLimitLayer::new(Quota::tokens_per_minute(nz(100_000)))
        .estimator(Estimator::new(EstimatePolicy::UpperBound));
    let limiter = layer.limiter();
    let r = req("gpt-4o", &"hello ".repeat(100)).max_tokens(10);
    let permit = limiter.try_acquire(&r).unwrap();
    assert_eq!(
        permit.tokens(),
        Estimator::new(EstimatePolicy::UpperBound).total_tokens(&r)
    );
    assert!(permit.tokens() > Estimator::new(EstimatePolicy::Exact).total_tokens(&r));
    permit.settle(0);
    assert_eq!(
        limiter.available("openai:gpt-4o"),
        Some(Available {
            requests: None,
            tokens: Some(100_000)
        })
    );
}
