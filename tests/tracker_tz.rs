//! CostTracker with calendar months in IANA time zones: where a month
//! begins, daylight saving, alert keys labelled by the local month, and the
//! `budget.time_zone` config key.

// In tests a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeZone, Utc};
use costlayer::alert::{Alert, SinkError};
use costlayer::budget::{parse_time_zone, Budget, BudgetStatus, Threshold, Window};
use costlayer::clock::ManualClock;
use costlayer::config::{Config, ConfigError};
use costlayer::ledger::MemoryStorage;
use costlayer::pricing::{ModelPrice, PriceTable, Rates};
use costlayer::tracker::CostTracker;
use costlayer::{ChatRequest, ChatResponse, Message, Money, Usage};

/// `test-model`: $1 per million tokens, so 1 token = 1,000 nano-dollars.
fn prices() -> PriceTable {
    let mut t = PriceTable::empty("test");
    let one = Money::from_usd(1).unwrap();
    t.insert(ModelPrice::new(
        "test-model",
        "openai",
        Rates::new(one, one),
    ));
    t
}

fn nanos(n: i64) -> Money {
    Money::from_nanos(n)
}

fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
}

fn req() -> ChatRequest {
    ChatRequest::new("test-model")
        .message(Message::user("hello"))
        .max_tokens(100)
}

fn resp(tokens: u64) -> ChatResponse {
    ChatResponse {
        provider: "openai".into(),
        model: "test-model".into(),
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

fn status<'a>(all: &'a [BudgetStatus], name: &str) -> &'a BudgetStatus {
    all.iter().find(|s| s.name == name).unwrap()
}

fn window(zone: &str) -> Window {
    Window::monthly_in(parse_time_zone(zone).unwrap())
}

#[tokio::test]
async fn late_march_utc_is_april_in_berlin() {
    let clock = ManualClock::new(at(2026, 3, 31, 21, 30));
    let storage = Arc::new(MemoryStorage::new());
    let (seen, sink) = collecting_sink();
    let build = |sink| {
        CostTracker::builder()
            .storage(storage.clone())
            .prices(prices())
            .clock(clock.clone())
            // $0.01 = 10,000 tokens.
            .budget(
                Budget::new("berlin", nanos(10_000_000), window("Europe/Berlin"))
                    .thresholds([Threshold::percent(80)]),
            )
            .budget(
                Budget::new("utc", nanos(100_000_000), Window::monthly())
                    .thresholds([Threshold::percent(80)]),
            )
            .sink(sink)
            .build()
            .unwrap()
    };
    let tracker = build(sink);

    // 21:30 UTC = 23:30 in Berlin (UTC+2 since the March switch): March.
    tracker.record(&req(), &resp(1_000), None).await.unwrap();
    // 23:30 UTC = 01:30 on April 1 in Berlin, still March in UTC.
    clock.set(at(2026, 3, 31, 23, 30));
    tracker.record(&req(), &resp(8_000), None).await.unwrap();
    tracker.flush_alerts().await;

    let all = tracker.budget_status().await.unwrap();
    let berlin = status(&all, "berlin");
    assert_eq!(berlin.period, "2026-04");
    assert_eq!(berlin.spent, nanos(8_000_000), "only the April record");
    assert_eq!(berlin.period_start, Some(at(2026, 3, 31, 22, 0)));
    assert_eq!(berlin.period_end, Some(at(2026, 4, 30, 22, 0)));
    let utc = status(&all, "utc");
    assert_eq!(utc.period, "2026-03");
    assert_eq!(utc.spent, nanos(9_000_000), "both records are in March");

    // The alert is keyed by the local month, so April's re-arms.
    let keys: Vec<String> = seen.lock().unwrap().iter().map(|a| a.key.clone()).collect();
    assert_eq!(keys, ["berlin:8000:2026-04"]);

    // A restart over the same ledger finds the same split.
    drop(tracker);
    let (_seen2, sink2) = collecting_sink();
    let again = build(sink2);
    let all = again.budget_status().await.unwrap();
    assert_eq!(status(&all, "berlin").spent, nanos(8_000_000));
    assert_eq!(status(&all, "utc").spent, nanos(9_000_000));
}

#[tokio::test]
async fn new_york_month_spans_the_november_dst_change() {
    // November 2026 in New York: from 00:00 EDT (04:00 UTC) on Nov 1 to
    // 00:00 EST (05:00 UTC) on Dec 1; clocks fall back on Nov 1 at 02:00.
    let clock = ManualClock::new(at(2026, 11, 1, 3, 30)); // Oct 31, 23:30 EDT
    let tracker = CostTracker::builder()
        .storage(Arc::new(MemoryStorage::new()))
        .prices(prices())
        .clock(clock.clone())
        .budget(Budget::new(
            "ny",
            nanos(100_000_000),
            window("America/New_York"),
        ))
        .budget(Budget::new(
            "fixed-edt",
            nanos(100_000_000),
            Window::monthly_at_offset(-4 * 60),
        ))
        .build()
        .unwrap();
    tracker.record(&req(), &resp(1), None).await.unwrap();
    let all = tracker.budget_status().await.unwrap();
    assert_eq!(status(&all, "ny").period, "2026-10");

    clock.set(at(2026, 11, 1, 4, 30)); // Nov 1, 00:30 EDT
    tracker.record(&req(), &resp(10), None).await.unwrap();
    clock.set(at(2026, 11, 1, 6, 30)); // Nov 1, 01:30 EST (after the change)
    tracker.record(&req(), &resp(100), None).await.unwrap();
    clock.set(at(2026, 12, 1, 4, 30)); // Nov 30, 23:30 EST
    tracker.record(&req(), &resp(1_000), None).await.unwrap();

    let all = tracker.budget_status().await.unwrap();
    let ny = status(&all, "ny");
    assert_eq!(ny.period, "2026-11");
    assert_eq!(ny.period_start, Some(at(2026, 11, 1, 4, 0)));
    assert_eq!(ny.period_end, Some(at(2026, 12, 1, 5, 0)));
    assert_eq!(ny.spent, nanos(1_110_000));
    // A fixed UTC-4 offset misses the change: it is December already.
    let fixed = status(&all, "fixed-edt");
    assert_eq!(fixed.period, "2026-12");
    assert_eq!(fixed.spent, nanos(1_000_000));

    clock.set(at(2026, 12, 1, 5, 0)); // Dec 1, 00:00 EST
    let all = tracker.budget_status().await.unwrap();
    let ny = status(&all, "ny");
    assert_eq!(ny.period, "2026-12");
    assert_eq!(ny.spent, Money::ZERO);
}

#[tokio::test]
async fn config_time_zone_moves_the_monthly_budget() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("costlayer.toml");
    std::fs::write(
        &path,
        "[budget]\nmonthly = \"0.01\"\ntotal = \"none\"\ntime_zone = \"Europe/Berlin\"\n",
    )
    .unwrap();
    let config = Config::load_with_env(Some(&path), |_| None).unwrap();
    let clock = ManualClock::new(at(2026, 3, 31, 23, 30));
    let tracker = CostTracker::builder_from_config(&config)
        .unwrap()
        .storage(Arc::new(MemoryStorage::new()))
        .prices(prices())
        .clock(clock)
        .build()
        .unwrap();
    tracker.record(&req(), &resp(5_000), None).await.unwrap();
    let all = tracker.budget_status().await.unwrap();
    let monthly = status(&all, "monthly");
    assert_eq!(monthly.period, "2026-04");
    assert_eq!(monthly.spent, nanos(5_000_000));
}

#[test]
fn unknown_time_zone_in_config_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("costlayer.toml");
    std::fs::write(&path, "[budget]\ntime_zone = \"Europe/Atlantis\"\n").unwrap();
    let err = Config::load_with_env(Some(Path::new(&path)), |_| None).unwrap_err();
    assert!(
        matches!(&err, ConfigError::Invalid { key, value, .. }
            if key == "budget.time_zone" && value == "Europe/Atlantis"),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("budget.time_zone"), "{msg}");
    assert!(msg.contains("Europe/Berlin"), "an example: {msg}");
}
