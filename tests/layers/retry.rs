//! RetryLayer.

use std::num::NonZeroU32;
use std::time::Duration;

use costlayer::layer::retry::{Jitter, RetryBudget, RetryLayer};
use costlayer::mock::{Failure, SimulatedProvider};
use costlayer::{ChatResponse, Error, Money, Usage};
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt};

use crate::support::{capture, in_call_span, recording, req, response, Calls};

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

fn server_error() -> Error {
    Error::Server {
        provider: "openai".into(),
        status: 500,
        message: "boom".into(),
        retry_after: None,
    }
}

/// A provider that fails the first `n` calls with `err()` and records when
/// each call arrived.
fn failing_first(
    calls: Calls,
    n: usize,
    err: impl Fn() -> Error + Clone + Send + 'static,
) -> impl tower::Service<
    costlayer::ChatRequest,
    Response = ChatResponse,
    Error = Error,
    Future = std::future::Ready<Result<ChatResponse, Error>>,
> + Clone
       + Send
       + 'static {
    let seen = calls.clone();
    recording(calls, move |r| {
        if seen.len() <= n {
            Err(err())
        } else {
            Ok(response(r, Usage::new(1, 1)))
        }
    })
}

#[tokio::test(start_paused = true)]
async fn backoff_doubles_between_attempts() {
    let calls = Calls::default();
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new().max_attempts(nz(5)).jitter(Jitter::None))
        .service(failing_first(calls.clone(), 3, server_error));
    let start = Instant::now();
    svc.oneshot(req("gpt-4o", "x")).await.unwrap();
    assert_eq!(
        calls.offsets(start),
        [0, 500, 1500, 3500].map(Duration::from_millis)
    );
}

#[tokio::test(start_paused = true)]
async fn backoff_is_capped() {
    let calls = Calls::default();
    let svc = ServiceBuilder::new()
        .layer(
            RetryLayer::new()
                .max_attempts(nz(6))
                .base_delay(Duration::from_secs(1))
                .max_backoff(Duration::from_secs(3))
                .no_max_elapsed()
                .jitter(Jitter::None),
        )
        .service(failing_first(calls.clone(), 5, server_error));
    let start = Instant::now();
    svc.oneshot(req("gpt-4o", "x")).await.unwrap();
    // 1, 2, 3 (capped), 3, 3
    assert_eq!(
        calls.offsets(start),
        [0, 1, 3, 6, 9, 12].map(Duration::from_secs)
    );
}

#[tokio::test(start_paused = true)]
async fn full_jitter_stays_under_the_exponential_ceiling_and_a_seed_reproduces_it() {
    let run = |seed| async move {
        let calls = Calls::default();
        let svc = ServiceBuilder::new()
            .layer(RetryLayer::new().max_attempts(nz(4)).seed(seed).no_budget())
            .service(failing_first(calls.clone(), 3, server_error));
        let start = Instant::now();
        svc.oneshot(req("gpt-4o", "x")).await.unwrap();
        calls.offsets(start)
    };
    let a = run(42).await;
    assert_eq!(a, run(42).await);
    assert_ne!(a, run(43).await);
    let gaps: Vec<Duration> = a.windows(2).map(|w| w[1] - w[0]).collect();
    for (gap, ceiling) in gaps.iter().zip([500, 1000, 2000]) {
        assert!(
            *gap <= Duration::from_millis(ceiling),
            "{gap:?} > {ceiling}ms"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured_exactly() {
    let provider = SimulatedProvider::builder()
        .fail_first(
            2,
            Failure::RateLimited {
                retry_after: Some(Duration::from_millis(7_250)),
            },
        )
        .build();
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new()) // full jitter: Retry-After must not be jittered
        .service(provider.clone());
    let start = Instant::now();
    svc.oneshot(req("gpt-4o", "x")).await.unwrap();
    assert_eq!(provider.calls(), 3);
    assert_eq!(start.elapsed(), Duration::from_millis(14_500));
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_beyond_the_cap_is_returned_at_once() {
    let provider = SimulatedProvider::builder()
        .fail_first(
            1,
            Failure::RateLimited {
                retry_after: Some(Duration::from_secs(120)),
            },
        )
        .build();
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new().max_retry_after(Duration::from_secs(30)))
        .service(provider.clone());
    let start = Instant::now();
    let e = svc.oneshot(req("gpt-4o", "x")).await.unwrap_err();
    assert_eq!(e.retry_after(), Some(Duration::from_secs(120)));
    assert_eq!(provider.calls(), 1);
    assert!(start.elapsed().is_zero());
}

#[tokio::test(start_paused = true)]
async fn non_retryable_errors_are_returned_at_once() {
    let cases: Vec<fn() -> Error> = vec![
        || Error::InvalidRequest {
            provider: "openai".into(),
            status: 400,
            message: "bad".into(),
        },
        || Error::Authentication {
            provider: "anthropic".into(),
            status: 401,
            message: "key".into(),
        },
        || Error::QuotaExceeded {
            provider: "openai".into(),
            message: "insufficient_quota".into(),
        },
        || Error::BudgetExceeded {
            budget: "monthly".into(),
            spent: Money::from_nanos(1),
            limit: Money::from_nanos(1),
            estimate: Money::from_nanos(1),
        },
        || Error::InsufficientCapacity {
            requested: 10,
            capacity: 5,
            unit: "tokens",
        },
    ];
    for make in cases {
        let calls = Calls::default();
        let svc = ServiceBuilder::new()
            .layer(RetryLayer::new())
            .service(failing_first(calls.clone(), 10, make));
        let start = Instant::now();
        let e = svc.oneshot(req("gpt-4o", "x")).await.unwrap_err();
        assert_eq!(calls.len(), 1, "{e}");
        assert!(start.elapsed().is_zero());
        assert_eq!(e.to_string(), make().to_string());
    }
}

#[tokio::test(start_paused = true)]
async fn every_retryable_kind_is_retried() {
    for failure in [
        Failure::RateLimited { retry_after: None },
        Failure::Server { status: 502 },
        Failure::Server { status: 504 },
        Failure::Overloaded { status: 529 },
        Failure::Overloaded { status: 503 },
        Failure::Timeout {
            after: Duration::from_secs(30),
        },
    ] {
        let provider = SimulatedProvider::builder()
            .fail_first(1, failure.clone())
            .build();
        let svc = ServiceBuilder::new()
            .layer(RetryLayer::new())
            .service(provider.clone());
        svc.oneshot(req("gpt-4o", "x")).await.unwrap();
        assert_eq!(provider.calls(), 2, "{failure:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn the_last_error_is_returned_after_max_attempts() {
    let provider = SimulatedProvider::builder()
        .fail_first(100, Failure::Server { status: 503 })
        .build();
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new().max_attempts(nz(4)).no_budget())
        .service(provider.clone());
    let e = svc.oneshot(req("gpt-4o", "x")).await.unwrap_err();
    assert!(matches!(e, Error::Server { status: 503, .. }));
    assert_eq!(provider.calls(), 4);

    let once = ServiceBuilder::new()
        .layer(RetryLayer::new().max_attempts(nz(1)))
        .service(provider.clone());
    once.oneshot(req("gpt-4o", "x")).await.unwrap_err();
    assert_eq!(provider.calls(), 5);
}

#[tokio::test(start_paused = true)]
async fn no_retry_starts_past_max_elapsed() {
    let calls = Calls::default();
    let svc = ServiceBuilder::new()
        .layer(
            RetryLayer::new()
                .max_attempts(nz(10))
                .base_delay(Duration::from_secs(10))
                .max_backoff(Duration::from_secs(100))
                .max_elapsed(Duration::from_secs(25))
                .jitter(Jitter::None),
        )
        .service(failing_first(calls.clone(), 100, server_error));
    let start = Instant::now();
    svc.oneshot(req("gpt-4o", "x")).await.unwrap_err();
    // 10 s fits in 25 s; 10 + 20 does not.
    assert_eq!(calls.offsets(start), [0, 10].map(Duration::from_secs));
    assert_eq!(start.elapsed(), Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn an_empty_retry_budget_stops_retries() {
    let calls = Calls::default();
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new().budget(RetryBudget::new(Duration::from_secs(10), 0, 0.0).unwrap()))
        .service(failing_first(calls.clone(), 100, server_error));
    svc.oneshot(req("gpt-4o", "x")).await.unwrap_err();
    assert_eq!(calls.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_budget_is_shared_by_clones() {
    // Ratio 0.5: a retry costs the deposits of two requests; no floor.
    let budget = RetryBudget::new(Duration::from_secs(10), 0, 0.5).unwrap();
    let layer = RetryLayer::new().budget(budget).jitter(Jitter::None);

    // Alone, a failing request has deposited one: not enough to retry.
    let calls = Calls::default();
    let alone = ServiceBuilder::new()
        .layer(layer.clone())
        .service(failing_first(calls.clone(), 1, server_error));
    alone.oneshot(req("gpt-4o", "x")).await.unwrap_err();
    assert_eq!(calls.len(), 1);

    // With a fresh budget, a clone's successful call first adds a deposit
    // that the other clone's retry can spend.
    let layer = RetryLayer::new().budget(budget).jitter(Jitter::None);
    let ok_calls = Calls::default();
    let good = ServiceBuilder::new()
        .layer(layer.clone())
        .service(recording(ok_calls, |r| Ok(response(r, Usage::new(1, 1)))));
    good.clone().oneshot(req("gpt-4o", "ok")).await.unwrap();
    let calls = Calls::default();
    let flaky =
        ServiceBuilder::new()
            .layer(layer)
            .service(failing_first(calls.clone(), 1, server_error));
    flaky.oneshot(req("gpt-4o", "x")).await.unwrap();
    assert_eq!(calls.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn boxed_errors_from_a_tower_mock_are_classified() {
    let (mut svc, mut handle) =
        tower_test::mock::spawn_layer::<costlayer::ChatRequest, ChatResponse, _>(
            RetryLayer::new().jitter(Jitter::None),
        );
    assert!(svc.poll_ready().is_ready());
    let fut = tokio::spawn(svc.call(req("gpt-4o", "x")));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_error(server_error());
    let (r, send) = handle.next_request().await.unwrap();
    send.send_response(response(&r, Usage::new(3, 4)));
    assert_eq!(fut.await.unwrap().unwrap().usage, Usage::new(3, 4));

    assert!(svc.poll_ready().is_ready());
    let fut = tokio::spawn(svc.call(req("gpt-4o", "y")));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_error(std::io::Error::other("not an LLM error"));
    let e = fut.await.unwrap().unwrap_err();
    assert!(matches!(e, Error::Other(_)), "{e}");
}

#[tokio::test(start_paused = true)]
async fn attempts_are_traced_and_the_count_recorded() {
    let (dispatch, captured) = capture();
    let provider = SimulatedProvider::builder()
        .fail_first(2, Failure::Server { status: 502 })
        .build();
    let mut svc = ServiceBuilder::new()
        .layer(RetryLayer::new().jitter(Jitter::None))
        .service(provider);
    let secret = "sk-SECRET-123";
    ServiceExt::<costlayer::ChatRequest>::ready(&mut svc)
        .await
        .unwrap();
    let fut = svc.call(req("gpt-4o", secret));
    in_call_span(&dispatch, fut).await.unwrap();
    assert_eq!(captured.field("costlayer.retries").as_deref(), Some("2"));
    let events: Vec<String> = captured
        .lines()
        .into_iter()
        .filter(|l| l.contains("costlayer: retrying"))
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(
        events[0].contains("attempt=1") && events[0].contains("delay_ms=500"),
        "{}",
        events[0]
    );
    assert!(events[1].contains("attempt=2") && events[1].contains("delay_ms=1000"));
    assert!(!captured.all().contains("SECRET"));
}
