//! The metrics example, scraped on loopback: after N simulated calls every
//! counter equals what the ledger holds.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use costlayer::alert::{Alert, AlertRetry, AlertSink, SinkError};
use costlayer::budget::Budget;
use costlayer::layer::cost::CostLayer;
use costlayer::ledger::MemoryStorage;
use costlayer::mock::SimulatedProvider;
use costlayer::tracker::CostTracker;
use costlayer::{ChatRequest, Message, Money};
use tower::{ServiceBuilder, ServiceExt};

#[path = "../examples/metrics_prometheus.rs"]
#[allow(unreachable_pub)]
mod example;

/// `GET /metrics` over a plain TCP connection.
fn scrape(addr: std::net::SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    body.to_owned()
}

/// Every sample line as `name{labels}` -> value (labels as exported, in
/// their order).
fn samples(body: &str) -> BTreeMap<String, f64> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_owned(), v.parse().unwrap())
        })
        .collect()
}

/// The sum of every sample of `name` whose labels include all of `with`.
fn total(s: &BTreeMap<String, f64>, name: &str, with: &[&str]) -> u64 {
    s.iter()
        .filter(|(k, _)| k.starts_with(&format!("{name}{{")) || *k == name)
        .filter(|(k, _)| with.iter().all(|w| k.contains(w)))
        .map(|(_, v)| *v as u64)
        .sum()
}

#[tokio::test]
async fn counters_equal_the_ledger_after_n_calls() {
    const N: u64 = 24;
    let (addr, _handle) = example::serve("127.0.0.1:0").unwrap();
    let ledger = MemoryStorage::new();
    let out = example::calls(N, ledger.clone()).await.unwrap();
    // Every 4th call goes to the refused model.
    assert_eq!(out.blocked, N / 4);
    assert_eq!(out.recorded, N - N / 4);

    let s = samples(&scrape(addr));
    let records = ledger.records();
    assert_eq!(records.len() as u64, out.recorded);
    let hits = records.iter().filter(|r| r.cached).count() as u64;
    // Prompts repeat every 8 calls: the first 8 miss (6 recorded), the rest hit.
    assert_eq!(hits, out.recorded - 6);

    assert_eq!(total(&s, "costlayer_calls_total", &[]), out.recorded);
    assert_eq!(
        total(&s, "costlayer_calls_total", &["cached=\"true\""]),
        hits
    );
    assert_eq!(
        total(
            &s,
            "costlayer_calls_total",
            &["user=\"demo\"", "provider=\"simulated\""]
        ),
        out.recorded
    );
    assert_eq!(total(&s, "costlayer_cache_hits_total", &[]), hits);
    let nanos: i64 = records.iter().map(|r| r.cost().nanos()).sum();
    assert!(nanos > 0);
    assert_eq!(
        total(&s, "costlayer_cost_nano_usd_total", &[]),
        nanos as u64
    );
    let saved: i64 = records
        .iter()
        .filter_map(|r| r.saved_nano_usd)
        .map(|m| m.nanos())
        .sum();
    assert!(saved > 0);
    assert_eq!(
        total(&s, "costlayer_cache_saved_nano_usd_total", &[]),
        saved as u64
    );
    let input: u64 = records.iter().map(|r| r.usage.input_tokens).sum();
    let output: u64 = records.iter().map(|r| r.usage.output_tokens).sum();
    assert_eq!(
        total(&s, "costlayer_tokens_total", &["kind=\"input\""]),
        input
    );
    assert_eq!(
        total(&s, "costlayer_tokens_total", &["kind=\"output\""]),
        output
    );
    assert_eq!(
        total(
            &s,
            "costlayer_tokens_total",
            &["model=\"gpt-4o-mini\"", "kind=\"input\""]
        ),
        records
            .iter()
            .filter(|r| r.model == "gpt-4o-mini")
            .map(|r| r.usage.input_tokens)
            .sum::<u64>()
    );
    assert_eq!(
        total(&s, "costlayer_blocked_calls_total", &["budget=\"no-opus\""]),
        out.blocked
    );
    // The $0.0001 monthly budget is past its limit: both alerts delivered.
    let ratio = s
        .iter()
        .find(|(k, _)| k.contains("costlayer_budget_spent_ratio") && k.contains("monthly"))
        .map(|(_, v)| *v)
        .unwrap();
    let expected = nanos as f64 / 100_000.0;
    assert!((ratio - expected).abs() < 1e-9, "{ratio} vs {expected}");
    assert_eq!(
        total(
            &s,
            "costlayer_alert_deliveries_total",
            &["sink=\"stdout\"", "outcome=\"delivered\""]
        ),
        2
    );
    assert_eq!(
        total(
            &s,
            "costlayer_alert_deliveries_total",
            &["sink=\"stdout\"", "outcome=\"failed\""]
        ),
        0
    );

    // A sink that always fails: every attempt is counted as failed.
    let broken = Arc::new(Broken::default());
    let tracker = CostTracker::builder()
        .storage(Arc::new(MemoryStorage::new()))
        .user("demo")
        .budget(Budget::monthly(Money::from_nanos(1)))
        .sink(broken.clone())
        .alert_retry(AlertRetry {
            attempts: 2,
            backoff: std::time::Duration::from_millis(1),
        })
        .build()
        .unwrap();
    let llm = ServiceBuilder::new()
        .layer(CostLayer::new(tracker.clone()))
        .service(SimulatedProvider::new());
    llm.oneshot(ChatRequest::new("gpt-4o-mini").message(Message::user("hi")))
        .await
        .unwrap();
    tracker.flush_alerts().await;
    // One failed delivery per alert, after every attempt of its round.
    let alerts = broken.alerts.lock().unwrap().len() as u64;
    assert!(alerts >= 1, "the budget's alerts reached the sink");
    assert_eq!(broken.attempts.load(Ordering::SeqCst) as u64, 2 * alerts);
    let s = samples(&scrape(addr));
    assert_eq!(
        total(
            &s,
            "costlayer_alert_deliveries_total",
            &["sink=\"broken\"", "outcome=\"failed\""]
        ),
        alerts
    );
    assert_eq!(
        total(
            &s,
            "costlayer_alert_deliveries_total",
            &["sink=\"broken\"", "outcome=\"delivered\""]
        ),
        0
    );
}

/// An alert sink whose every delivery fails, counting its attempts.
#[derive(Default)]
struct Broken {
    attempts: AtomicUsize,
    alerts: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

#[async_trait::async_trait]
impl AlertSink for Broken {
    async fn send(&self, alert: &Alert) -> Result<(), SinkError> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        self.alerts.lock().unwrap().insert(alert.key.clone());
        Err(SinkError::Config("always fails (test)".into()))
    }

    fn name(&self) -> &str {
        "broken"
    }
}
