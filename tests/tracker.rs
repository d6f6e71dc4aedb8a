//! CostTracker: thresholds, dedup, rollover, hard limits, reservations.

// In tests a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeZone, Utc};
use costlayer::alert::{Alert, AlertKind, SinkError};
use costlayer::budget::{Budget, Scope, Severity, Threshold};
use costlayer::clock::ManualClock;
use costlayer::ledger::{MemoryStorage, Storage};
use costlayer::pricing::{ModelPrice, PriceTable, Rates};
use costlayer::tracker::{AlertRetry, CostTracker, UnpricedPolicy};
use costlayer::{ChatRequest, ChatResponse, Error, Message, Money, Usage};

/// `test-model`: $1 per million tokens in and out, so 1 token = 1,000 nano-dollars.
fn prices() -> PriceTable {
    let mut t = PriceTable::empty("test");
    let one = Money::from_usd(1).unwrap();
    t.insert(ModelPrice::new(
        "test-model",
        "openai",
        Rates::new(one, one),
    ));
    t.insert(ModelPrice::new(
        "other-model",
        "anthropic",
        Rates::new(one, one),
    ));
    t
}

fn nanos(n: i64) -> Money {
    Money::from_nanos(n)
}

fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
}

fn req(model: &str) -> ChatRequest {
    ChatRequest::new(model)
        .message(Message::user("hello"))
        .max_tokens(100)
}

fn resp(model: &str, tokens: u64) -> ChatResponse {
    ChatResponse {
        provider: "openai".into(),
        model: model.into(),
        usage: Usage::new(tokens, 0),
        ..Default::default()
    }
}

type Seen = Arc<Mutex<Vec<Alert>>>;

fn collecting_sink() -> (
    Seen,
    impl Fn(Alert) -> std::future::Ready<Result<(), SinkError>> + Send + Sync + 'static,
) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    (seen, move |a: Alert| {
        s.lock().unwrap().push(a);
        std::future::ready(Ok(()))
    })
}

fn keys(seen: &Seen) -> Vec<String> {
    let mut k: Vec<String> = seen.lock().unwrap().iter().map(|a| a.key.clone()).collect();
    k.sort();
    k
}

#[tokio::test]
async fn thresholds_fire_exactly_at_80_and_100_percent() {
    let clock = ManualClock::new(at(2026, 11, 10, 12));
    let (seen, sink) = collecting_sink();
    let tracker = CostTracker::builder()
        .prices(prices())
        .user("alice")
        .clock(clock)
        // $0.01 = 10,000 tokens of test-model.
        .budget(Budget::monthly(nanos(10_000_000)))
        .sink(sink)
        .build()
        .unwrap();
    let r = req("test-model");

    tracker
        .record(&r, &resp("test-model", 7_999), None)
        .await
        .unwrap();
    tracker.flush_alerts().await;
    assert!(seen.lock().unwrap().is_empty(), "79.99% must not alert");

    tracker
        .record(&r, &resp("test-model", 1), None)
        .await
        .unwrap();
    tracker.flush_alerts().await;
    assert_eq!(keys(&seen), ["monthly:8000:2026-11"]);
    {
        let a = &seen.lock().unwrap()[0];
        assert_eq!(a.spent, nanos(8_000_000));
        assert_eq!(a.limit, nanos(10_000_000));
        assert_eq!(a.threshold, Threshold::percent(80));
        assert_eq!(a.kind, AlertKind::Threshold);
        assert_eq!(a.period, "2026-11");
        assert_eq!(a.user, "alice");
        assert!(a.message.contains("80%"), "{}", a.message);
    }

    tracker
        .record(&r, &resp("test-model", 1_999), None)
        .await
        .unwrap();
    tracker.flush_alerts().await;
    assert_eq!(seen.lock().unwrap().len(), 1, "99.99% must not alert again");

    tracker
        .record(&r, &resp("test-model", 1), None)
        .await
        .unwrap();
    tracker.flush_alerts().await;
    assert_eq!(
        keys(&seen),
        ["monthly:10000:2026-11", "monthly:8000:2026-11"]
    );

    // Further spend re-sends nothing.
    tracker
        .record(&r, &resp("test-model", 5_000), None)
        .await
        .unwrap();
    tracker.flush_alerts().await;
    assert_eq!(seen.lock().unwrap().len(), 2);

    let status = tracker.budget_status().await.unwrap();
    assert_eq!(status[0].spent, nanos(15_000_000));
    assert_eq!(status[0].percent_bp, 15_000);
    assert_eq!(status[0].remaining, Money::ZERO);
    assert_eq!(
        status[0].thresholds_crossed,
        [Threshold::percent(80), Threshold::percent(100)]
    );
}

#[tokio::test]
async fn one_call_crossing_two_thresholds_sends_both() {
    let (seen, sink) = collecting_sink();
    let tracker = CostTracker::builder()
        .prices(prices())
        .budget(Budget::total(nanos(1_000_000)))
        .sink(sink)
        .build()
        .unwrap();
    tracker
        .record(&req("test-model"), &resp("test-model", 2_000), None)
        .await
        .unwrap();
    tracker.flush_alerts().await;
    assert_eq!(keys(&seen), ["total:10000:all-time", "total:8000:all-time"]);
}

#[tokio::test]
async fn alerts_are_sent_once_across_restarts() {
    let storage = Arc::new(MemoryStorage::new());
    let build = |sink| {
        CostTracker::builder()
            .storage(storage.clone())
            .prices(prices())
            .clock(ManualClock::new(at(2026, 11, 10, 12)))
            .budget(Budget::monthly(nanos(10_000_000)))
            .sink(sink)
            .build()
            .unwrap()
    };
    let (seen1, sink1) = collecting_sink();
    let first = build(sink1);
    first
        .record(&req("test-model"), &resp("test-model", 8_500), None)
        .await
        .unwrap();
    first.flush_alerts().await;
    assert_eq!(keys(&seen1), ["monthly:8000:2026-11"]);
    drop(first);

    // "Restart": a new tracker over the same ledger loads the spend.
    let (seen2, sink2) = collecting_sink();
    let second = build(sink2);
    let status = second.budget_status().await.unwrap();
    assert_eq!(status[0].spent, nanos(8_500_000));
    second
        .record(&req("test-model"), &resp("test-model", 100), None)
        .await
        .unwrap();
    second.flush_alerts().await;
    assert!(
        seen2.lock().unwrap().is_empty(),
        "80% already fired before the restart"
    );
    second
        .record(&req("test-model"), &resp("test-model", 1_400), None)
        .await
        .unwrap();
    second.flush_alerts().await;
    assert_eq!(keys(&seen2), ["monthly:10000:2026-11"]);
    assert!(storage.alert_fired("monthly:8000:2026-11").await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_trackers_racing_on_one_ledger_send_one_alert() {
    // Two trackers over one storage stand for two processes sharing a
    // ledger: each keeps its own running total, both cross 80%, and the
    // storage's atomic mark_alert lets exactly one of them send.
    for _ in 0..20 {
        let storage = Arc::new(MemoryStorage::new());
        let sent = Arc::new(AtomicUsize::new(0));
        let mut trackers = Vec::new();
        for _ in 0..2 {
            let sent = sent.clone();
            trackers.push(
                CostTracker::builder()
                    .storage(storage.clone())
                    .prices(prices())
                    .clock(ManualClock::new(at(2026, 11, 10, 12)))
                    .budget(Budget::monthly(nanos(10_000_000)))
                    .sink(move |_a: Alert| {
                        sent.fetch_add(1, Ordering::SeqCst);
                        std::future::ready(Ok(()))
                    })
                    .build()
                    .unwrap(),
            );
        }
        // Load both before either records, as two running processes would.
        for t in &trackers {
            t.budget_status().await.unwrap();
        }
        let handles: Vec<_> = trackers
            .iter()
            .cloned()
            .map(|t| {
                tokio::spawn(async move {
                    t.record(&req("test-model"), &resp("test-model", 9_000), None)
                        .await
                        .unwrap();
                    t.flush_alerts().await;
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
        assert_eq!(sent.load(Ordering::SeqCst), 1);
    }
}

#[tokio::test]
async fn a_new_month_rearms_monthly_alerts_and_resets_spend() {
    let clock = ManualClock::new(at(2026, 1, 31, 22));
    let (seen, sink) = collecting_sink();
    let tracker = CostTracker::builder()
        .prices(prices())
        .clock(clock.clone())
        .budget(Budget::monthly(nanos(10_000_000)).thresholds([Threshold::percent(80)]))
        .budget(Budget::total(nanos(100_000_000)))
        .sink(sink)
        .build()
        .unwrap();
    tracker
        .record(&req("test-model"), &resp("test-model", 8_000), None)
        .await
        .unwrap();
    tracker.flush_alerts().await;
    assert_eq!(keys(&seen), ["monthly:8000:2026-01"]);

    clock.advance(chrono::Duration::hours(3)); // 2026-02-01 01:00
    let status = tracker.budget_status().await.unwrap();
    assert_eq!(status[0].period, "2026-02");
    assert_eq!(status[0].spent, Money::ZERO);
    assert_eq!(
        status[1].spent,
        nanos(8_000_000),
        "all-time spend carries over"
    );

    tracker
        .record(&req("test-model"), &resp("test-model", 8_000), None)
        .await
        .unwrap();
    tracker.flush_alerts().await;
    assert_eq!(
        keys(&seen),
        ["monthly:8000:2026-01", "monthly:8000:2026-02"]
    );
    let status = tracker.budget_status().await.unwrap();
    assert_eq!(status[0].spent, nanos(8_000_000));
    assert_eq!(status[1].spent, nanos(16_000_000));
}

#[tokio::test]
async fn scopes_count_only_their_calls() {
    let tracker = CostTracker::builder()
        .prices(prices())
        .user("alice")
        .budget(Budget::total(nanos(1_000_000_000)).name("all"))
        .budget(
            Budget::total(nanos(1_000_000_000))
                .name("bob")
                .scope(Scope::User("bob".into())),
        )
        .budget(
            Budget::total(nanos(1_000_000_000))
                .name("other")
                .scope(Scope::Model("other-model".into())),
        )
        .budget(
            Budget::total(nanos(1_000_000_000))
                .name("anthropic")
                .scope(Scope::Provider("anthropic".into())),
        )
        .build()
        .unwrap();
    tracker
        .record(&req("test-model"), &resp("test-model", 1_000), None)
        .await
        .unwrap();
    tracker
        .record(
            &req("other-model").user("bob"),
            &ChatResponse {
                provider: "anthropic".into(),
                ..resp("other-model-20250101", 2_000)
            },
            None,
        )
        .await
        .unwrap();
    let spent: Vec<_> = tracker
        .budget_status()
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.name, s.spent))
        .collect();
    assert_eq!(
        spent,
        [
            ("all".to_string(), nanos(3_000_000)),
            ("bob".to_string(), nanos(2_000_000)),
            ("other".to_string(), nanos(2_000_000)),
            ("anthropic".to_string(), nanos(2_000_000)),
        ]
    );
}

#[tokio::test]
async fn a_blocked_call_names_budget_spent_limit_and_estimate() {
    let tracker = CostTracker::builder()
        .prices(prices())
        .budget(Budget::monthly(nanos(1_000_000)).block()) // 1,000 tokens
        .build()
        .unwrap();
    let small = ChatRequest::new("test-model")
        .message(Message::user("hi"))
        .max_tokens(10);
    let estimate = tracker.estimate(&small).unwrap();
    // "hi": 2 bytes + 3 + 4 ("user") + 3 priming = 12 prompt tokens, + 10 output.
    assert_eq!(estimate, nanos(22_000));
    let r = tracker.reserve(&small).await.unwrap();
    assert_eq!(r.estimate(), Some(estimate));
    tracker
        .record(&small, &resp("test-model", 990), Some(r))
        .await
        .unwrap();
    match tracker.reserve(&small).await {
        Err(Error::BudgetExceeded {
            budget,
            spent,
            limit,
            estimate: e,
        }) => {
            assert_eq!(budget, "monthly");
            assert_eq!(spent, nanos(990_000));
            assert_eq!(limit, nanos(1_000_000));
            assert_eq!(e, estimate);
        }
        other => panic!("expected BudgetExceeded, got {other:?}"),
    }
    // An alert-only budget never blocks.
    let lenient = CostTracker::builder()
        .prices(prices())
        .budget(Budget::monthly(nanos(1)))
        .build()
        .unwrap();
    lenient
        .record(&small, &resp("test-model", 990), None)
        .await
        .unwrap();
    assert!(lenient.reserve(&small).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_calls_never_overshoot_a_hard_limit() {
    let storage = MemoryStorage::new();
    let tracker = CostTracker::builder()
        .storage(Arc::new(storage.clone()))
        .prices(prices())
        // 1,000,000 nanos; each call's worst case is 22,000 → at most 45 fit.
        .budget(Budget::monthly(nanos(1_000_000)).block())
        .build()
        .unwrap();
    let small = ChatRequest::new("test-model")
        .message(Message::user("hi"))
        .max_tokens(10);
    let estimate = tracker.estimate(&small).unwrap();
    // Every call reserves before any call records: without reservations all
    // 200 would pass the pre-flight and overshoot 4x.
    let attempted = Arc::new(AtomicUsize::new(0));
    let (go_tx, go_rx) = tokio::sync::watch::channel(false);
    let mut handles = Vec::new();
    for _ in 0..200 {
        let (t, small, attempted, mut go) = (
            tracker.clone(),
            small.clone(),
            attempted.clone(),
            go_rx.clone(),
        );
        handles.push(tokio::spawn(async move {
            let r = t.reserve(&small).await;
            attempted.fetch_add(1, Ordering::SeqCst);
            let r = match r {
                Ok(r) => r,
                Err(Error::BudgetExceeded { .. }) => return false,
                Err(e) => panic!("{e}"),
            };
            go.wait_for(|g| *g).await.unwrap();
            // Billed at the worst case: the tightest the limit can be tested.
            let billed = ChatResponse {
                usage: Usage::new(12, 10),
                ..resp("test-model", 0)
            };
            t.record(&small, &billed, Some(r)).await.unwrap();
            true
        }));
    }
    while attempted.load(Ordering::SeqCst) < 200 {
        tokio::task::yield_now().await;
    }
    go_tx.send(true).unwrap();
    let mut ok = 0;
    for h in handles {
        ok += usize::from(h.await.unwrap());
    }
    let fit = (1_000_000 / estimate.nanos()) as usize;
    assert_eq!(ok, fit);
    let total: Money = storage.records().iter().map(|r| r.cost()).sum();
    assert!(total <= nanos(1_000_000), "{total} overshoots");
    assert_eq!(total, nanos(estimate.nanos() * fit as i64));
    let status = tracker.budget_status().await.unwrap();
    assert_eq!(status[0].reserved, Money::ZERO);
}

#[tokio::test]
async fn dropped_reservations_are_released() {
    let tracker = CostTracker::builder()
        .prices(prices())
        .budget(Budget::monthly(nanos(30_000)).block())
        .build()
        .unwrap();
    let small = ChatRequest::new("test-model")
        .message(Message::user("hi"))
        .max_tokens(10);
    let r1 = tracker.reserve(&small).await.unwrap();
    assert!(matches!(
        tracker.reserve(&small).await,
        Err(Error::BudgetExceeded { .. })
    ));
    assert_eq!(
        tracker.budget_status().await.unwrap()[0].reserved,
        nanos(22_000)
    );
    drop(r1);
    assert_eq!(
        tracker.budget_status().await.unwrap()[0].reserved,
        Money::ZERO
    );
    let r2 = tracker.reserve(&small).await.unwrap();
    drop(r2);

    // A future dropped while holding a reservation releases it too: the
    // task holds one (seen in the status), then is aborted.
    let t = tracker.clone();
    let s = small.clone();
    let (held_tx, held_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let held = t.reserve(&s).await.unwrap();
        held_tx.send(()).unwrap();
        std::future::pending::<()>().await;
        drop(held);
    });
    held_rx.await.unwrap();
    assert_eq!(
        tracker.budget_status().await.unwrap()[0].reserved,
        nanos(22_000),
        "the task's reservation is held while it runs"
    );
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    assert_eq!(
        tracker.budget_status().await.unwrap()[0].reserved,
        Money::ZERO,
        "aborting the task released its reservation"
    );
    // And the budget admits the call again.
    let _r3 = tracker.reserve(&small).await.unwrap();
}

#[tokio::test]
async fn unpriced_models_are_recorded_and_follow_the_policy() {
    let storage = MemoryStorage::new();
    let build = |policy| {
        CostTracker::builder()
            .storage(Arc::new(storage.clone()))
            .prices(prices())
            .budget(Budget::monthly(nanos(1_000_000)).block())
            .unpriced_policy(policy)
            .build()
            .unwrap()
    };
    let mystery = req("mystery-model");
    let rejecting = build(UnpricedPolicy::default());
    assert!(matches!(
        rejecting.reserve(&mystery).await,
        Err(Error::UnpricedModel { model }) if model == "mystery-model"
    ));
    let capped = build(UnpricedPolicy::ReserveCap(nanos(600_000)));
    let r = capped.reserve(&mystery).await.unwrap();
    assert_eq!(r.estimate(), Some(nanos(600_000)));
    assert!(matches!(
        capped.reserve(&mystery).await,
        Err(Error::BudgetExceeded { .. })
    ));
    let rec = capped
        .record(&mystery, &resp("mystery-model", 50), Some(r))
        .await
        .unwrap();
    assert_eq!(rec.nano_usd, None);
    assert_eq!(rec.model, "mystery-model");
    let allowing = build(UnpricedPolicy::Allow);
    assert!(allowing.reserve(&mystery).await.unwrap().is_unpriced());
    let on_disk = storage.records();
    assert_eq!(on_disk.len(), 1);
    assert_eq!(on_disk[0].nano_usd, None);
    assert_eq!(on_disk[0].usage.input_tokens, 50);
}

#[tokio::test]
async fn records_carry_attribution_and_canonical_model() {
    let storage = MemoryStorage::new();
    let clock = ManualClock::new(at(2026, 11, 10, 12));
    let tracker = CostTracker::builder()
        .storage(Arc::new(storage.clone()))
        .prices(prices())
        .user("alice")
        .team("ml")
        .clock(clock)
        .build()
        .unwrap();
    let r = req("test-model").tag("feature", "search").user("bob");
    let mut response = resp("test-model-2025-01-01", 1_000);
    response.request_id = Some("req_1".into());
    response.latency = std::time::Duration::from_millis(42);
    let rec = tracker.record(&r, &response, None).await.unwrap();
    assert_eq!(rec.user, "bob");
    assert_eq!(rec.team.as_deref(), Some("ml"));
    assert_eq!(rec.model, "test-model");
    assert_eq!(rec.ts, at(2026, 11, 10, 12));
    assert_eq!(rec.latency_ms, 42);
    assert_eq!(rec.request_id.as_deref(), Some("req_1"));
    assert_eq!(rec.tags["feature"], "search");
    assert_eq!(rec.price_version.as_deref(), Some("test:test-model"));
    assert_eq!(storage.records(), vec![rec]);
}

#[tokio::test]
async fn failing_sinks_never_fail_the_call_and_are_recorded() {
    let storage = MemoryStorage::new();
    let attempts = Arc::new(AtomicUsize::new(0));
    let a = attempts.clone();
    let (seen, good) = collecting_sink();
    let tracker = CostTracker::builder()
        .storage(Arc::new(storage.clone()))
        .prices(prices())
        .budget(Budget::monthly(nanos(1_000_000)).thresholds([Threshold::percent(50)]))
        .sink(move |_a: Alert| {
            a.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Err(SinkError::Config("down".into())))
        })
        .sink(good)
        .alert_retry(AlertRetry {
            attempts: 3,
            backoff: std::time::Duration::from_millis(1),
        })
        .build()
        .unwrap();
    let rec = tracker
        .record(&req("test-model"), &resp("test-model", 600), None)
        .await
        .unwrap();
    assert_eq!(rec.cost(), nanos(600_000));
    tracker.flush_alerts().await;
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "the healthy sink still got it"
    );
    let failures = tracker.delivery_failures();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].sink, "custom");
    assert_eq!(failures[0].attempts, 3);
    assert!(storage
        .alert_fired(&format!("{}#failed#custom", failures[0].key))
        .await
        .unwrap());
    assert_eq!(storage.len(), 1, "the ledger kept the record");
}

#[tokio::test]
async fn projection_and_run_out_are_reported_and_can_alert() {
    let clock = ManualClock::new(at(2026, 4, 16, 0)); // half of April gone
    let (seen, sink) = collecting_sink();
    let tracker = CostTracker::builder()
        .prices(prices())
        .clock(clock)
        .budget(
            Budget::monthly(nanos(10_000_000))
                .thresholds([Threshold::percent(90)])
                .alert_on_projection(true)
                .severity(Severity::Critical),
        )
        .sink(sink)
        .build()
        .unwrap();
    tracker
        .record(&req("test-model"), &resp("test-model", 6_000), None)
        .await
        .unwrap();
    tracker.flush_alerts().await;
    let s = &tracker.budget_status().await.unwrap()[0];
    assert_eq!(s.projected, Some(nanos(12_000_000)));
    // 15 days × 10/6 = 25 days after April 1.
    assert_eq!(s.run_out, Some(at(2026, 4, 26, 0)));
    let alerts = seen.lock().unwrap().clone();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].kind, AlertKind::Projection);
    assert_eq!(alerts[0].projected, Some(nanos(12_000_000)));
    assert_eq!(alerts[0].severity, Severity::Critical);
}

#[tokio::test]
async fn invalid_settings_fail_at_build() {
    for (b, needle) in [
        (Budget::monthly(Money::ZERO), "must be above $0"),
        (
            Budget::monthly(nanos(1)).thresholds([Threshold::from_basis_points(200_000)]),
            "at most 1000%",
        ),
    ] {
        let e = CostTracker::builder().budget(b).build().unwrap_err();
        assert!(e.to_string().contains(needle), "{e}");
    }
    let e = CostTracker::builder()
        .budget(Budget::monthly(nanos(1)))
        .budget(Budget::monthly(nanos(2)))
        .build()
        .unwrap_err();
    assert!(
        e.to_string().contains("two budgets are named `monthly`"),
        "{e}"
    );
}

#[test]
fn global_is_initialised_once() {
    let t = CostTracker::builder().user("global-user").build().unwrap();
    CostTracker::init_global(t).unwrap();
    let again = CostTracker::builder().user("other").build().unwrap();
    let err = CostTracker::init_global(again).unwrap_err();
    assert!(err.to_string().contains("already initialised"));
    assert_eq!(CostTracker::global().unwrap().user(), "global-user");
    assert_eq!(CostTracker::try_global().unwrap().user(), "global-user");
}

#[test]
fn tracker_is_send_sync_and_cheap_to_clone() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<CostTracker>();
}

#[tokio::test]
async fn a_reset_rearms_alerts_after_reload() {
    let storage = MemoryStorage::new();
    let (seen, sink) = collecting_sink();
    let tracker = CostTracker::builder()
        .storage(Arc::new(storage.clone()))
        .prices(prices())
        .clock(ManualClock::new(at(2026, 11, 10, 12)))
        .budget(Budget::monthly(nanos(10_000_000)).thresholds([Threshold::percent(80)]))
        .sink(sink)
        .build()
        .unwrap();
    tracker
        .record(&req("test-model"), &resp("test-model", 9_000), None)
        .await
        .unwrap();
    tracker.flush_alerts().await;
    storage
        .reset(costlayer::ledger::ResetScope::All)
        .await
        .unwrap();
    tracker.reload().await.unwrap();
    assert_eq!(tracker.budget_status().await.unwrap()[0].spent, Money::ZERO);
    tracker
        .record(&req("test-model"), &resp("test-model", 9_000), None)
        .await
        .unwrap();
    tracker.flush_alerts().await;
    assert_eq!(
        seen.lock().unwrap().len(),
        2,
        "the reset archived the alert history"
    );
}
