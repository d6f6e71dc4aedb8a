//! CacheLayer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use costlayer::layer::cache::{CacheKey, CacheLayer, MokaCache, ResponseCache};
use costlayer::mock::{Failure, SimulatedProvider};
use costlayer::{ChatResponse, Error, Usage};
use futures_util::future::join_all;
use tower::{Service, ServiceBuilder, ServiceExt};

use crate::support::{capture, in_call_span, recording, req, response, Calls};

fn cached(provider: SimulatedProvider) -> costlayer::layer::cache::Cache<SimulatedProvider> {
    ServiceBuilder::new()
        .layer(CacheLayer::default())
        .service(provider)
}

#[tokio::test(start_paused = true)]
async fn a_hit_is_marked_cached_and_keeps_the_usage_it_saved() {
    let provider = SimulatedProvider::builder()
        .latency(Duration::from_millis(800))
        .build();
    let svc = cached(provider.clone());
    let r = req("gpt-4o", "What is the capital of France?");

    let miss = svc.clone().oneshot(r.clone()).await.unwrap();
    assert!(!miss.cached);
    assert_eq!(miss.latency, Duration::from_millis(800));

    let start = tokio::time::Instant::now();
    let hit = svc.clone().oneshot(r.clone()).await.unwrap();
    assert!(
        start.elapsed().is_zero(),
        "a hit does not wait for the provider"
    );
    assert!(hit.cached);
    assert_eq!(hit.text, miss.text);
    assert_eq!(hit.usage, miss.usage, "the usage the hit saved");
    assert_eq!(hit.latency, Duration::ZERO, "the hit's own latency");
    assert_eq!(provider.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn attribution_shares_an_entry_and_content_does_not() {
    let provider = SimulatedProvider::new();
    let svc = cached(provider.clone());
    svc.clone()
        .oneshot(req("gpt-4o", "hi").user("alice").team("a"))
        .await
        .unwrap();
    let other_user = svc
        .clone()
        .oneshot(req("gpt-4o", "hi").user("bob").tag("feature", "x"))
        .await
        .unwrap();
    assert!(other_user.cached);
    let other_text = svc.clone().oneshot(req("gpt-4o", "hello")).await.unwrap();
    assert!(!other_text.cached);
    let other_model = svc.clone().oneshot(req("gpt-4o-mini", "hi")).await.unwrap();
    assert!(!other_model.cached);
    assert_eq!(provider.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_hundred_concurrent_identical_requests_call_the_provider_once() {
    let provider = SimulatedProvider::builder()
        .latency(Duration::from_secs(2))
        .build();
    let svc = cached(provider.clone());
    let r = req("gpt-4o", "coalesce me");
    let results = join_all((0..100).map(|_| svc.clone().oneshot(r.clone()))).await;
    assert_eq!(provider.calls(), 1);
    let responses: Vec<ChatResponse> = results.into_iter().map(Result::unwrap).collect();
    assert_eq!(responses.iter().filter(|r| !r.cached).count(), 1);
    assert_eq!(responses.iter().filter(|r| r.cached).count(), 99);
    assert!(responses.iter().all(|x| x.text == responses[0].text));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coalescing_holds_across_threads() {
    let provider = SimulatedProvider::builder()
        .latency(Duration::from_millis(20))
        .build();
    let svc = cached(provider.clone());
    let r = req("gpt-4o", "threads");
    let tasks: Vec<_> = (0..100)
        .map(|_| tokio::spawn(svc.clone().oneshot(r.clone())))
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    // Whether a caller arrived during the call (coalesced) or after it
    // (stored), the provider was called once.
    assert_eq!(provider.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn errors_are_never_cached() {
    let provider = SimulatedProvider::builder()
        .fail_first(1, Failure::Server { status: 500 })
        .build();
    let svc = cached(provider.clone());
    let r = req("gpt-4o", "flaky");
    let err = svc.clone().oneshot(r.clone()).await.unwrap_err();
    assert!(matches!(err, Error::Server { status: 500, .. }));
    let ok = svc.clone().oneshot(r.clone()).await.unwrap();
    assert!(!ok.cached, "the error was not stored");
    assert!(svc.clone().oneshot(r).await.unwrap().cached);
    assert_eq!(provider.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_failed_coalesced_call_fails_every_waiter_with_a_typed_error() {
    let provider = SimulatedProvider::builder()
        .latency(Duration::from_secs(1))
        .fail_first(
            1,
            Failure::RateLimited {
                retry_after: Some(Duration::from_secs(4)),
            },
        )
        .build();
    let svc = cached(provider.clone());
    let r = req("gpt-4o", "all fail");
    let results = join_all((0..10).map(|_| svc.clone().oneshot(r.clone()))).await;
    assert_eq!(provider.calls(), 1);
    for res in results {
        let e = res.unwrap_err();
        assert!(matches!(e, Error::RateLimited { .. }), "{e}");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(4)));
    }
    // Nothing stored: the next call reaches the provider and succeeds.
    assert!(!svc.clone().oneshot(r).await.unwrap().cached);
    assert_eq!(provider.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn sampled_requests_bypass_unless_opted_in() {
    let provider = SimulatedProvider::new();
    let svc = cached(provider.clone());
    let r = req("gpt-4o", "a poem").temperature(0.9);
    assert!(!svc.clone().oneshot(r.clone()).await.unwrap().cached);
    assert!(!svc.clone().oneshot(r.clone()).await.unwrap().cached);
    assert_eq!(provider.calls(), 2);

    // temperature 0 and no temperature are cached.
    let zero = req("gpt-4o", "a poem").temperature(0.0);
    svc.clone().oneshot(zero.clone()).await.unwrap();
    assert!(svc.clone().oneshot(zero).await.unwrap().cached);
    assert_eq!(provider.calls(), 3);

    let opted = ServiceBuilder::new()
        .layer(CacheLayer::default().cache_sampled(true))
        .service(provider.clone());
    opted.clone().oneshot(r.clone()).await.unwrap();
    assert!(opted.clone().oneshot(r).await.unwrap().cached);
    assert_eq!(provider.calls(), 4);
}

#[tokio::test(start_paused = true)]
async fn entries_expire_after_the_time_to_live() {
    let provider = SimulatedProvider::new();
    let cache = MokaCache::builder()
        .time_to_live(Duration::from_secs(600))
        .build();
    let svc = ServiceBuilder::new()
        .layer(CacheLayer::new(cache.clone()))
        .service(provider.clone());
    let r = req("gpt-4o", "ttl");
    svc.clone().oneshot(r.clone()).await.unwrap();
    tokio::time::advance(Duration::from_secs(599)).await;
    assert!(svc.clone().oneshot(r.clone()).await.unwrap().cached);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(
        !svc.clone().oneshot(r.clone()).await.unwrap().cached,
        "expired"
    );
    assert_eq!(provider.calls(), 2);
    // The fresh answer is stored again.
    assert!(svc.clone().oneshot(r).await.unwrap().cached);
    cache.run_pending_tasks().await;
    assert_eq!(cache.entry_count(), 1);
}

#[tokio::test(start_paused = true)]
async fn capacity_is_weighted_by_response_size() {
    let calls = Calls::default();
    let big = "x".repeat(100_000);
    let provider = recording(calls.clone(), move |r| {
        let mut resp = response(r, Usage::new(1, 1));
        resp.text = big.clone();
        Ok(resp)
    });
    let cache = MokaCache::builder().max_bytes(250_000).build();
    let svc = ServiceBuilder::new()
        .layer(CacheLayer::new(cache.clone()))
        .service(provider);
    for i in 0..10 {
        svc.clone()
            .oneshot(req("gpt-4o", &format!("q{i}")))
            .await
            .unwrap();
    }
    cache.run_pending_tasks().await;
    assert!(cache.entry_count() <= 2, "{} entries", cache.entry_count());
    assert!(cache.weighted_size() <= 250_000);
}

#[tokio::test(start_paused = true)]
async fn clones_and_services_of_one_layer_share_the_cache() {
    let provider = SimulatedProvider::new();
    let layer = CacheLayer::default();
    let a = ServiceBuilder::new()
        .layer(layer.clone())
        .service(provider.clone());
    let b = ServiceBuilder::new().layer(layer).service(provider.clone());
    a.clone().oneshot(req("gpt-4o", "shared")).await.unwrap();
    assert!(b.oneshot(req("gpt-4o", "shared")).await.unwrap().cached);
    assert_eq!(provider.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_namespace_separates_entries_in_a_shared_cache() {
    let provider = SimulatedProvider::new();
    let shared = MokaCache::default();
    let a = ServiceBuilder::new()
        .layer(CacheLayer::new(shared.clone()).namespace("app-a"))
        .service(provider.clone());
    let b = ServiceBuilder::new()
        .layer(CacheLayer::new(shared.clone()).namespace("app-b"))
        .service(provider.clone());
    a.oneshot(req("gpt-4o", "ns")).await.unwrap();
    assert!(!b.oneshot(req("gpt-4o", "ns")).await.unwrap().cached);
    assert_eq!(provider.calls(), 2);
}

#[tokio::test]
async fn a_hit_never_reaches_the_inner_service_and_readiness_is_respected() {
    // tower_test's mock panics if `call` reaches a clone that was not
    // polled ready: this checks the layer calls the service it readied.
    let (mock, mut handle) = tower_test::mock::pair::<costlayer::ChatRequest, ChatResponse>();
    let svc = ServiceBuilder::new()
        .layer(CacheLayer::default())
        .service(mock);
    let r = req("gpt-4o", "mock");
    let first = tokio::spawn(svc.clone().oneshot(r.clone()));
    let (got, send) = handle.next_request().await.unwrap();
    assert_eq!(got, r);
    send.send_response(response(&got, Usage::new(5, 7)));
    assert!(!first.await.unwrap().unwrap().cached);

    let hit = svc.clone().oneshot(r).await.unwrap();
    assert!(hit.cached);
    assert_eq!(hit.usage, Usage::new(5, 7));
    let mut next = tokio_test::task::spawn(handle.next_request());
    assert!(next.poll().is_pending(), "the hit did not reach the mock");
}

#[tokio::test(start_paused = true)]
async fn the_outcome_is_recorded_in_the_span_and_nothing_secret_is() {
    let (dispatch, captured) = capture();
    let provider = SimulatedProvider::new();
    let mut svc = cached(provider.clone());
    let secret = "sk-proj-SECRET-KEY-0123456789";
    let r = req("gpt-4o", &format!("my key is {secret}")).user("alice");

    let run = |svc: &mut costlayer::layer::cache::Cache<SimulatedProvider>, r| {
        let fut = svc.call(r);
        in_call_span(&dispatch, fut)
    };
    ServiceExt::<costlayer::ChatRequest>::ready(&mut svc)
        .await
        .unwrap();
    run(&mut svc, r.clone()).await.unwrap();
    assert_eq!(captured.field("costlayer.cache").as_deref(), Some("miss"));
    ServiceExt::<costlayer::ChatRequest>::ready(&mut svc)
        .await
        .unwrap();
    run(&mut svc, r.clone()).await.unwrap();
    assert_eq!(captured.field("costlayer.cache").as_deref(), Some("hit"));
    ServiceExt::<costlayer::ChatRequest>::ready(&mut svc)
        .await
        .unwrap();
    run(&mut svc, r.temperature(1.0)).await.unwrap();
    assert_eq!(captured.field("costlayer.cache").as_deref(), Some("bypass"));

    let all = captured.all();
    assert!(all.contains("costlayer.cache=hit"), "{all}");
    assert!(!all.contains("SECRET"), "{all}");
    assert!(!all.contains("alice"), "{all}");
}

#[test]
fn cache_keys_hold_no_secret_and_ignore_attribution() {
    let secret = "sk-ant-api03-SECRET";
    let a = req("claude-sonnet-4-5", secret)
        .user("alice")
        .tag("api_key_hint", secret);
    let b = req("claude-sonnet-4-5", secret).user("bob");
    let ka = CacheKey::for_request(&a, None).unwrap();
    assert_eq!(ka, CacheKey::for_request(&b, None).unwrap());
    for shown in [ka.to_hex(), format!("{ka:?}"), ka.to_string()] {
        assert!(
            !shown.contains("SECRET") && !shown.contains("alice"),
            "{shown}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_custom_response_cache_plugs_in() {
    #[derive(Debug, Default)]
    struct Counting {
        inner: MokaCache,
        gets: AtomicUsize,
    }
    #[async_trait::async_trait]
    impl ResponseCache for Counting {
        async fn get(&self, key: &CacheKey) -> Option<ChatResponse> {
            self.gets.fetch_add(1, Ordering::SeqCst);
            self.inner.get(key).await
        }
        async fn insert(&self, key: CacheKey, response: ChatResponse) {
            self.inner.insert(key, response).await;
        }
        async fn invalidate(&self, key: &CacheKey) {
            self.inner.invalidate(key).await;
        }
    }
    let store = Arc::new(Counting::default());
    let provider = SimulatedProvider::new();
    let svc = ServiceBuilder::new()
        .layer(CacheLayer::from_arc(store.clone()))
        .service(provider.clone());
    svc.clone().oneshot(req("gpt-4o", "custom")).await.unwrap();
    assert!(svc.oneshot(req("gpt-4o", "custom")).await.unwrap().cached);
    assert_eq!(store.gets.load(Ordering::SeqCst), 2);
    assert_eq!(provider.calls(), 1);
}
