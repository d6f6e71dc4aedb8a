//! The alert outbox, with real OS processes, real files and a real webhook
//! receiver (wiremock) on loopback:
//!
//! - a short program (one call, then exit) delivers its alert, with
//!   `shutdown` and with nothing but the drop of its tracker;
//! - 20 processes whose joint spend crosses 80% of a blocking budget, none
//!   alone, send exactly one alert, and later processes do not resend it;
//! - a failing webhook (HTTP 500) is reported on the CLI's stderr and on the
//!   dashboard, and the next run delivers it.
//!
//! Worker processes are this test binary run again with `OUTBOX_WORKER`
//! set (see `worker_entry`), or the `cost-tracker` binary.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command as StdCommand, Output};
use std::sync::Arc;

use assert_cmd::Command;
use costlayer::alert::{DeliveryOwner, DeliveryState, OutboxEntry, WebhookSink};
use costlayer::budget::{Budget, Threshold};
use costlayer::ledger::{JsonlStorage, Storage};
use costlayer::pricing::{ModelPrice, PriceTable, Rates};
use costlayer::tracker::CostTracker;
use costlayer::{ChatRequest, ChatResponse, Message, Money, Usage};
use serde_json::Value;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const WORKER: &str = "OUTBOX_WORKER";

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

/// The worker side: one tracker on the JSONL directory `OUTBOX_DIR`, a
/// webhook sink to `OUTBOX_HOOK`, a $0.001 monthly budget alerting at 50%,
/// and one call of 600 tokens ($0.0006), then the process exits.
/// `OUTBOX_WORKER=shutdown` calls `shutdown()` first; `drop` only drops
/// the tracker when `main` returns.
fn worker(mode: &str) {
    let dir = std::env::var("OUTBOX_DIR").unwrap();
    let hook = std::env::var("OUTBOX_HOOK").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let storage = JsonlStorage::builder(&dir).user("alice").build().unwrap();
        let tracker = CostTracker::builder()
            .storage(Arc::new(storage))
            .prices(prices())
            .user("alice")
            .budget(
                Budget::monthly(Money::from_nanos(1_000_000)).thresholds([Threshold::percent(50)]),
            )
            .sink(WebhookSink::new(hook).unwrap())
            .build()
            .unwrap();
        let req = ChatRequest::new("test-model").message(Message::user("hi"));
        let resp = ChatResponse {
            provider: "openai".into(),
            model: "test-model".into(),
            usage: Usage::new(600, 0),
            ..Default::default()
        };
        tracker.record(&req, &resp, None).await.unwrap();
        if mode == "shutdown" {
            tracker.shutdown().await.unwrap();
        }
    });
    // The runtime is gone; in `drop` mode the tracker was dropped at the end
    // of the block above, with its alert possibly still queued.
}

/// Runs as a worker when `OUTBOX_WORKER` is set; a no-op test otherwise.
#[test]
fn worker_entry() {
    if let Ok(mode) = std::env::var(WORKER) {
        worker(&mode);
    }
}

fn run_worker(mode: &str, dir: &Path, hook: &str) -> Output {
    StdCommand::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "worker_entry",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(WORKER, mode)
        .env("OUTBOX_DIR", dir)
        .env("OUTBOX_HOOK", hook)
        .output()
        .unwrap()
}

/// A webhook receiver on loopback that accepts every POST.
async fn accepting_hook() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    server
}

async fn posts(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.method.as_str() == "POST")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_program_delivers_its_alert_with_shutdown_or_drop() {
    for mode in ["shutdown", "drop"] {
        let server = accepting_hook().await;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ledger");
        let hook = format!("{}/hook", server.uri());
        let out = run_worker(mode, &dir, &hook);
        assert!(
            out.status.success(),
            "{mode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got = posts(&server).await;
        assert_eq!(got.len(), 1, "{mode}: exactly one alert: {got:?}");
        assert_eq!(got[0]["budget"], "monthly");
        assert_eq!(got[0]["threshold"], "50%");
        // Its delivery is recorded in the outbox.
        let storage = JsonlStorage::builder(&dir).user("alice").build().unwrap();
        let entries = storage.deliveries().await.unwrap();
        assert_eq!(entries.len(), 1, "{mode}");
        assert_eq!(entries[0].state(), DeliveryState::Delivered, "{mode}");
        assert_eq!(entries[0].sinks["webhook"].attempts, 1, "{mode}");

        // A second run crosses nothing new and sends nothing.
        let out = run_worker(mode, &dir, &hook);
        assert!(out.status.success());
        assert_eq!(posts(&server).await.len(), 1, "{mode}: not resent");
    }
}

/// `cost-tracker chat` on the simulated provider, as alice, in `dir`.
fn chat(dir: &Path) -> StdCommand {
    let mut c = StdCommand::new(assert_cmd::cargo::cargo_bin("cost-tracker"));
    c.current_dir(dir).env("COSTLAYER_USER", "alice");
    for v in [
        "COSTLAYER_CONFIG",
        "COSTLAYER_DATA_DIR",
        "COSTLAYER_TEAM",
        "COSTLAYER_MONTHLY_BUDGET",
        "COSTLAYER_TOTAL_BUDGET",
        "COSTLAYER_ALERT_EMAILS",
        "COSTLAYER_SMTP_HOST",
        "COSTLAYER_WEBHOOK_URL",
        "COSTLAYER_PRICES",
        "COSTLAYER_SPOOL_DIR",
        "COSTLAYER_NOW",
        "RUST_LOG",
    ] {
        c.env_remove(v);
    }
    c.arg("chat").arg("--data-dir").arg(dir.join("ledger"));
    c
}

fn dashboard(dir: &Path) -> Value {
    let mut c = Command::cargo_bin("cost-tracker").unwrap();
    c.current_dir(dir).env("COSTLAYER_USER", "alice");
    for v in ["COSTLAYER_CONFIG", "COSTLAYER_DATA_DIR", "COSTLAYER_NOW"] {
        c.env_remove(v);
    }
    let out = c
        .args(["--dashboard", "--json", "--team", "--data-dir"])
        .arg(dir.join("ledger"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The cost of one simulated `gpt-4o-mini` call on `prompt`, measured in a
/// scratch directory.
fn simulated_cost(prompt: &str) -> i64 {
    let tmp = tempfile::tempdir().unwrap();
    let out = chat(tmp.path())
        .args(["--monthly-budget", "none", "--total-budget", "none"])
        .args([
            "--provider",
            "simulated",
            "--max-tokens",
            "16",
            "--json",
            prompt,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["nano_usd"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_processes_crossing_jointly_send_one_alert() {
    let server = accepting_hook().await;
    let prompt = "hi";
    let cost = simulated_cost(prompt);
    // 80% of the limit is 10 calls: no process alone comes near it.
    let limit = Money::from_nanos(cost * 25 / 2);
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("block.toml");
    std::fs::write(
        &config,
        "[budget]\naction = \"block\"\nthresholds = [0.8]\n",
    )
    .unwrap();
    let spawn = |n: usize| {
        let mut handles = Vec::new();
        for _ in 0..n {
            let mut c = chat(tmp.path());
            c.env("COSTLAYER_WEBHOOK_URL", format!("{}/hook", server.uri()))
                .arg("--config")
                .arg(&config)
                .args(["--monthly-budget", &limit.to_decimal_string()])
                .args(["--total-budget", "none"])
                .args(["--provider", "simulated", "--max-tokens", "16", prompt]);
            handles.push(std::thread::spawn(move || c.output().unwrap()));
        }
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    };
    let outs = spawn(20);
    let ok = outs.iter().filter(|o| o.status.success()).count();
    assert!(ok >= 10, "at least 80% of the limit was spent: {ok} calls");
    let alerts = posts(&server).await;
    assert_eq!(alerts.len(), 1, "exactly one alert: {alerts:#?}");
    assert_eq!(alerts[0]["threshold"], "80%");
    // Later processes (refused or not) do not resend it.
    let _ = spawn(3);
    assert_eq!(posts(&server).await.len(), 1);
    let d = dashboard(tmp.path());
    let sent: Vec<&Value> = d["alerts"].as_array().unwrap().iter().collect();
    assert_eq!(sent.len(), 1, "{d:#}");
    assert_eq!(sent[0]["state"], "delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_webhook_is_reported_and_retried_by_the_next_run() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500).set_body_string("receiver down"))
        .up_to_n_times(3)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("alert.toml");
    std::fs::write(&config, "[budget]\nthresholds = [0.8]\n").unwrap();
    let hook = format!("{}/services/T0/B0/secret-token", server.uri());
    let run = |prompt: &str| {
        chat(tmp.path())
            .env("COSTLAYER_WEBHOOK_URL", &hook)
            .arg("--config")
            .arg(&config)
            .args(["--monthly-budget", "0.000001", "--total-budget", "none"])
            .args(["--provider", "simulated", prompt])
            .output()
            .unwrap()
    };
    // The call succeeds; the alert's three attempts fail.
    let out = run("hi");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("could not be sent by the webhook sink after 3 attempts"),
        "{stderr}"
    );
    assert!(stderr.contains("HTTP 500"), "{stderr}");
    assert!(stderr.contains("retried"), "{stderr}");
    assert!(!stderr.contains("secret-token"), "{stderr}");
    assert_eq!(posts(&server).await.len(), 3);

    let d = dashboard(tmp.path());
    let alerts = d["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{d:#}");
    assert_eq!(alerts[0]["state"], "failed", "{d:#}");
    let w = &alerts[0]["sinks"]["webhook"];
    assert_eq!(w["attempts"], 3, "{w}");
    assert!(
        w["last_error"].as_str().unwrap().contains("HTTP 500"),
        "{w}"
    );
    assert!(!d.to_string().contains("secret-token"), "{d}");

    // The next run (its own call crosses nothing new) retries it, once.
    let out = run("hi again");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = posts(&server).await;
    assert_eq!(got.len(), 4);
    assert_eq!(got[3]["key"], got[0]["key"]);
    let d = dashboard(tmp.path());
    let alerts = d["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{d:#}");
    assert_eq!(alerts[0]["state"], "delivered", "{d:#}");
    assert_eq!(alerts[0]["sinks"]["webhook"]["attempts"], 4);
    // And the text dashboard says what was sent.
    let mut c = Command::cargo_bin("cost-tracker").unwrap();
    let out = c
        .current_dir(tmp.path())
        .env("COSTLAYER_USER", "alice")
        .env("NO_COLOR", "1")
        .env_remove("COSTLAYER_CONFIG")
        .args(["--dashboard", "--data-dir"])
        .arg(tmp.path().join("ledger"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Sent:"), "{text}");
    assert!(text.contains("via webhook to http://127.0.0.1"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_left_pending_by_a_dead_process_is_delivered_by_the_next() {
    let server = accepting_hook().await;
    let tmp = tempfile::tempdir().unwrap();
    let storage = Arc::new(
        JsonlStorage::builder(tmp.path())
            .user("alice")
            .build()
            .unwrap(),
    );
    // A process claimed the alert, then died before its sinks ran.
    let mut dead = StdCommand::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    let mut owner = DeliveryOwner::this_process();
    owner.pid = dead_pid;
    let alert = costlayer::alert::Alert::example();
    let entry = OutboxEntry::claimed(
        alert.clone(),
        [("webhook".to_owned(), None)],
        owner,
        chrono::Utc::now(),
        std::time::Duration::from_secs(3600),
    );
    assert!(storage.claim_alert(&entry).await.unwrap());
    assert!(!storage.claim_alert(&entry).await.unwrap(), "claimed once");

    let tracker = CostTracker::builder()
        .storage(storage.clone())
        .prices(prices())
        .sink(WebhookSink::new(format!("{}/hook", server.uri())).unwrap())
        .build()
        .unwrap();
    let req = ChatRequest::new("test-model").message(Message::user("hi"));
    drop(tracker.reserve(&req).await.unwrap());
    tracker.flush().await.unwrap();
    let got = posts(&server).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["key"], alert.key);
    let e = &storage.deliveries().await.unwrap()[0];
    assert_eq!(e.state(), DeliveryState::Delivered);
    assert_eq!(e.sinks["webhook"].attempts, 1);
    assert!(e.owner.is_none());
    // A further flush, or another tracker, sends nothing more.
    tracker.flush().await.unwrap();
    let other = CostTracker::builder()
        .storage(storage.clone())
        .prices(prices())
        .sink(WebhookSink::new(format!("{}/hook", server.uri())).unwrap())
        .build()
        .unwrap();
    other.flush().await.unwrap();
    assert_eq!(posts(&server).await.len(), 1);
}
