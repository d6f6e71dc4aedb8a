//! Hard limits across real OS processes sharing one data directory, a
//! provider that answers with as much output as it is allowed, a process
//! killed while holding reservations, and the spellings of scopes.
//!
//! Worker processes are this test binary run again with `WORKER_ENV` set
//! (see `worker_entry`).

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use costlayer::alert::{Alert, SinkError};
use costlayer::budget::{Budget, Scope, Threshold};
use costlayer::layer::cost::CostLayer;
use costlayer::ledger::{JsonlStorage, ScanFilter, ScanItem, Storage};
use costlayer::openai::OpenAi;
use costlayer::pricing::{ModelPrice, PriceTable, Rates};
use costlayer::tracker::book::JsonlDirBook;
use costlayer::tracker::CostTracker;
use costlayer::{ChatRequest, ChatResponse, Error, Message, Money, Usage};
use futures_util::StreamExt;
use tower::{Service, ServiceBuilder, ServiceExt};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const WORKER_ENV: &str = "COSTLAYER_BOOK_WORKER";
/// $0.002 at $1 per million tokens: 2,000 tokens, about 19 calls.
const LIMIT: i64 = 2_000_000;

/// `test-model`: $1 per million tokens in and out (1 token = 1,000 nano-dollars).
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

fn tracker(dir: &Path, user: &str, lease: Duration) -> CostTracker {
    tracker_with(dir, user, Some(lease))
}

/// The worker's tracker: with a directory book of `lease`, or, with
/// `None`, no `.book(..)` at all (the builder asks the storage for its
/// default book).
fn tracker_with(dir: &Path, user: &str, lease: Option<Duration>) -> CostTracker {
    builder_with(dir, user, lease).build().unwrap()
}

fn builder_with(
    dir: &Path,
    user: &str,
    lease: Option<Duration>,
) -> costlayer::tracker::CostTrackerBuilder {
    let mut b = CostTracker::builder().storage(Arc::new(
        JsonlStorage::builder(dir).user(user).build().unwrap(),
    ));
    if let Some(lease) = lease {
        b = b.book(Arc::new(
            JsonlDirBook::builder(dir).lease(lease).build().unwrap(),
        ));
    }
    b.prices(prices())
        .user(user)
        .budget(Budget::monthly(Money::from_nanos(LIMIT)).block())
}

/// The alert-only budget of the `mixed` workers: the same limit, alerts
/// at 50% and 80% (more than one worker's eight calls can spend).
fn warn_budget() -> Budget {
    Budget::monthly(Money::from_nanos(LIMIT))
        .name("w")
        .thresholds([Threshold::percent(50), Threshold::percent(80)])
}

/// A 100-token call: reserved at its prompt bound + 100 output tokens,
/// billed 2 + 100 tokens (never above the reservation).
fn call() -> (ChatRequest, ChatResponse) {
    let req = ChatRequest::new("test-model")
        .message(Message::user("hi"))
        .max_tokens(100);
    let resp = ChatResponse {
        provider: "openai".into(),
        model: "test-model".into(),
        usage: Usage::new(2, 100),
        ..Default::default()
    };
    (req, resp)
}

/// Not a test on its own: the body of a worker process. Modes:
/// `calls <dir> <user> <n> [default]`: n concurrent calls, printing
/// `ACK <id>` per recorded call and `REFUSED` per refusal (with `default`,
/// the tracker is built with no `.book(..)`); `hold <dir> <user>`: one
/// settled call, then three live holds, `HELD`, and waits to be killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn worker_entry() {
    let Ok(spec) = std::env::var(WORKER_ENV) else {
        return;
    };
    let args: Vec<&str> = spec.split('|').collect();
    let dir = PathBuf::from(args[1]);
    let user = args[2];
    match args[0] {
        "calls" => {
            let lease = match args.get(4) {
                Some(&"default" | &"mixed") => None,
                _ => Some(Duration::from_secs(60)),
            };
            let mut b = builder_with(&dir, user, lease);
            if args.get(4) == Some(&"mixed") {
                // An alert-only budget besides the blocking one; alerts
                // go to `sent.log` next to the data directory.
                let log = dir.with_extension("sent.log");
                b = b.budget(warn_budget()).sink(move |a: Alert| {
                    let log = log.clone();
                    async move {
                        use std::io::Write;
                        let mut f = std::fs::OpenOptions::new()
                            .create(true)
                            .append(true)
                            .open(&log)
                            .map_err(SinkError::Io)?;
                        writeln!(f, "{} {}", std::process::id(), a.key).map_err(SinkError::Io)?;
                        Ok(())
                    }
                });
            }
            let t = b.build().unwrap();
            let n: usize = args[3].parse().unwrap();
            let out = Arc::new(Mutex::new(std::io::stdout()));
            let tasks: Vec<_> = (0..n)
                .map(|_| {
                    let (t, out) = (t.clone(), out.clone());
                    tokio::spawn(async move {
                        let (req, resp) = call();
                        let line = match t.reserve(&req).await {
                            Ok(r) => {
                                tokio::time::sleep(Duration::from_millis(5)).await;
                                let rec = t.record(&req, &resp, Some(r)).await.unwrap();
                                format!("ACK {}\n", rec.id)
                            }
                            Err(Error::BudgetExceeded { .. }) => "REFUSED\n".to_owned(),
                            Err(e) => panic!("unexpected error: {e}"),
                        };
                        use std::io::Write;
                        let mut o = out.lock().unwrap();
                        o.write_all(line.as_bytes()).unwrap();
                        o.flush().unwrap();
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
            t.storage().flush().await.unwrap();
            t.shutdown().await.unwrap();
        }
        "hold" => {
            let t = tracker(&dir, user, Duration::from_secs(2));
            let (req, resp) = call();
            let r = t.reserve(&req).await.unwrap();
            let rec = t.record(&req, &resp, Some(r)).await.unwrap();
            t.storage().flush().await.unwrap();
            // Three holds of 600 tokens each: with the settled call, 95% of the limit.
            let big = ChatRequest::new("test-model")
                .message(Message::user("hi"))
                .max_tokens(600);
            let mut held = Vec::new();
            for _ in 0..3 {
                held.push(t.reserve(&big).await.unwrap());
            }
            println!("SETTLED {} {}", rec.id, rec.nano_usd.unwrap().nanos());
            println!("HELD");
            std::future::pending::<()>().await;
        }
        other => panic!("unknown worker mode {other}"),
    }
}

fn worker(spec: &str) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args([
        "--exact",
        "worker_entry",
        "--nocapture",
        "--test-threads",
        "1",
    ])
    .env(WORKER_ENV, spec)
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    c
}

/// Every record in the directory: (id, cost).
async fn ledger(dir: &Path) -> Vec<(String, i64)> {
    let s = JsonlStorage::builder(dir).user("reader").build().unwrap();
    let mut out = Vec::new();
    let mut stream = s.scan(&ScanFilter::default()).await.unwrap();
    while let Some(item) = stream.next().await {
        if let ScanItem::Record(r) = item.unwrap() {
            out.push((r.id.to_string(), r.cost().nanos()));
        }
    }
    out
}

async fn four_processes(users: [&str; 4]) {
    four_processes_with(users, "book").await;
}

async fn four_processes_with(users: [&str; 4], book: &str) -> i64 {
    let root = tempfile::tempdir().unwrap();
    four_processes_in(&root.path().join("data"), users, book).await
}

/// Runs the four workers on `dir`; returns the recorded spend.
async fn four_processes_in(dir: &Path, users: [&str; 4], book: &str) -> i64 {
    let children: Vec<_> = users
        .iter()
        .map(|u| {
            worker(&format!("calls|{}|{u}|8|{book}", dir.display()))
                .spawn()
                .unwrap()
        })
        .collect();
    let mut acked = Vec::new();
    let mut refused = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "a worker failed");
        for line in String::from_utf8(out.stdout).unwrap().lines() {
            // The harness's own output may share a line with ours.
            if let Some((_, id)) = line.split_once("ACK ") {
                acked.push(id.trim().to_owned());
            } else if line.contains("REFUSED") {
                refused += 1;
            }
        }
    }
    assert_eq!(acked.len() + refused, 32, "every call answered");
    assert!(
        refused > 0 && !acked.is_empty(),
        "the limit bites: {} acked, {refused} refused",
        acked.len()
    );
    let records = ledger(dir).await;
    let spent: i64 = records.iter().map(|r| r.1).sum();
    assert!(spent <= LIMIT, "spent {spent} > limit {LIMIT}");
    for id in &acked {
        assert!(
            records.iter().any(|r| &r.0 == id),
            "acknowledged record {id} is missing"
        );
    }
    assert_eq!(records.len(), acked.len());
    spent
}

#[tokio::test]
async fn four_processes_of_one_user_never_overshoot_a_shared_limit() {
    four_processes(["alice"; 4]).await;
}

#[tokio::test]
async fn four_processes_of_different_users_never_overshoot_a_shared_limit() {
    four_processes(["w0", "w1", "w2", "w3"]).await;
}

/// Four processes, each built with `.storage(JsonlStorage)` and no
/// `.book(..)`: the builder takes the storage's default book (the
/// directory book), so they share one bound.
#[tokio::test]
async fn four_processes_without_a_book_share_the_directory_book() {
    four_processes_with(["alice"; 4], "default").await;
}

#[tokio::test]
async fn four_processes_of_different_users_without_a_book_share_the_directory_book() {
    four_processes_with(["w0", "w1", "w2", "w3"], "default").await;
}

/// Four processes with a blocking budget and an alert-only one over the
/// same calls: the blocking one still bounds the joint spend, and each
/// threshold of the alert-only one that the joint spend crossed (no
/// worker alone can cross 50%) is alerted exactly once, by one process.
#[tokio::test]
async fn an_alert_only_budget_beside_a_blocking_one_alerts_the_joint_spend_once() {
    for users in [["alice"; 4], ["w0", "w1", "w2", "w3"]] {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("data");
        let spent = four_processes_in(&dir, users, "mixed").await;
        let sent = std::fs::read_to_string(dir.with_extension("sent.log")).unwrap_or_default();
        let month = chrono::Utc::now().format("%Y-%m").to_string();
        assert!(spent * 2 >= LIMIT, "the workers spend past 50%: {spent}");
        for (bp, pct) in [(5_000, 50), (8_000, 80)] {
            let key = format!("w:{bp}:{month}");
            let n = sent
                .lines()
                .filter(|l| l.split_whitespace().nth(1) == Some(key.as_str()))
                .count();
            let crossed = spent * 100 >= LIMIT * pct;
            assert_eq!(
                n,
                usize::from(crossed),
                "{key} sent {n} times for a joint spend of {spent} (crossed: {crossed}): {sent}"
            );
        }
    }
}

/// A worker killed with SIGKILL while it holds three reservations: once
/// its lease is over, the budget admits calls again, and its settled call
/// counts exactly once.
#[tokio::test]
async fn a_killed_process_holds_expire_after_the_lease() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = worker(&format!("hold|{}|alice", dir.path().display()))
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut settled = None;
    loop {
        let line = lines.next().expect("worker output").unwrap();
        if let Some((_, rest)) = line.split_once("SETTLED ") {
            let (_, cost) = rest.split_once(' ').unwrap();
            settled = Some(cost.trim().parse::<i64>().unwrap());
        }
        if line.contains("HELD") {
            break;
        }
    }
    let settled = settled.unwrap();
    // The worker serves its calls from one chunk of the budget: a single
    // live hold in the file, covering the three reservations (and the
    // settled call until the worker read it back).
    let holds: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("budget_holds.json")).unwrap())
            .unwrap();
    let entries = holds["holds"].as_array().unwrap();
    assert!(
        entries.iter().all(|h| h.get("record").is_none()),
        "only live holds left: {holds}"
    );
    let held: i64 = entries
        .iter()
        .map(|h| h["nano_usd"].as_i64().unwrap())
        .sum();
    assert!(
        held >= 3 * 600_000,
        "the chunk covers the three holds: {holds}"
    );
    assert!(held <= LIMIT, "never above the limit: {holds}");
    let t = tracker(dir.path(), "bob", Duration::from_secs(60));
    let (req, resp) = call();
    assert!(
        matches!(t.reserve(&req).await, Err(Error::BudgetExceeded { .. })),
        "the live holds of the other process count"
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let status = &t.budget_status().await.unwrap()[0];
    assert_eq!(
        status.reserved,
        Money::ZERO,
        "the dead process's holds are gone"
    );
    assert_eq!(
        status.spent,
        Money::from_nanos(settled),
        "its settled call counts once"
    );
    // The whole rest of the limit is available again.
    let mut admitted = 0;
    while let Ok(r) = t.reserve(&req).await {
        t.record(&req, &resp, Some(r)).await.unwrap();
        admitted += 1;
    }
    assert!(
        admitted >= 15,
        "only {admitted} calls admitted after the lease"
    );
    let spent = t.budget_status().await.unwrap()[0].spent;
    assert_eq!(spent, Money::from_nanos(settled + 102_000 * admitted));
    assert!(spent <= Money::from_nanos(LIMIT));
}

/// A loopback OpenAI that writes as many completion tokens as the request
/// allows (32,768 when uncapped): under a blocking budget the cost layer
/// sends the reserved output cap, so spend stays within the limit.
#[tokio::test]
async fn the_request_carries_the_reserved_output_cap() {
    let server = MockServer::start().await;
    let seen = Arc::new(Mutex::new(Vec::<Option<u64>>::new()));
    let log = seen.clone();
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(move |req: &Request| {
            let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
            let cap = body.get("max_completion_tokens").and_then(serde_json::Value::as_u64);
            log.lock().unwrap().push(cap);
            let out = cap.unwrap_or(32_768);
            ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "id": "chatcmpl-1", "object": "chat.completion", "created": 1_735_689_600,
                "model": "gpt-4.1-2025-04-14",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "…"}, "finish_reason": "length"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": out, "total_tokens": out + 10}
            }))
        })
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let limit: Money = "0.05".parse().unwrap();
    let tracker = CostTracker::builder()
        .storage(Arc::new(
            JsonlStorage::builder(dir.path())
                .user("alice")
                .build()
                .unwrap(),
        ))
        .book(Arc::new(JsonlDirBook::open(dir.path()).unwrap()))
        .user("alice")
        .budget(Budget::monthly(limit).block())
        .build()
        .unwrap();
    let openai = OpenAi::builder()
        .api_key("sk-test")
        .base_url(format!("{}/v1", server.uri()))
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(CostLayer::new(tracker.clone()))
        .service(openai);
    let mut answered = 0;
    loop {
        let req = ChatRequest::new("gpt-4.1").message(Message::user("Write a novel."));
        match ServiceExt::<ChatRequest>::ready(&mut svc)
            .await
            .unwrap()
            .call(req)
            .await
        {
            Ok(resp) => {
                answered += 1;
                let rec = resp
                    .recorded
                    .expect("the cost layer fills ChatResponse.recorded");
                assert!(rec.durable && rec.nano_usd.is_some());
            }
            Err(Error::BudgetExceeded { .. }) => break,
            Err(e) => panic!("{e}"),
        }
        assert!(answered < 10);
    }
    assert!(answered >= 1);
    let caps = seen.lock().unwrap().clone();
    assert_eq!(caps.len(), answered);
    assert!(caps.iter().all(|c| *c == Some(4_096)), "{caps:?}");
    let spent: i64 = ledger(dir.path()).await.iter().map(|r| r.1).sum();
    assert!(spent <= limit.nanos(), "spent {spent} over {limit}");
}

/// `provider:OpenAI`, `model:claude-sonnet-4.5` (records say
/// `claude-sonnet-4-5-20250929`) and `provider:simulated` are enforced by
/// the tracker, seen again by a new process, and selected by the ledger's
/// filter (the dashboard's) the same.
#[tokio::test]
async fn scope_spellings_are_enforced_and_shown_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let usd = |s: &str| s.parse::<Money>().unwrap();
    let build = |provider: Option<&str>| {
        let mut b = CostTracker::builder()
            .storage(Arc::new(
                JsonlStorage::builder(dir.path())
                    .user("alice")
                    .build()
                    .unwrap(),
            ))
            .book(Arc::new(JsonlDirBook::open(dir.path()).unwrap()))
            .user("alice")
            .budget(
                Budget::monthly(usd("0.01"))
                    .name("oa")
                    .scope(Scope::Provider("OpenAI".into()))
                    .block(),
            )
            .budget(
                Budget::monthly(usd("0.01"))
                    .name("son")
                    .scope(Scope::Model("claude-sonnet-4.5".into()))
                    .block(),
            )
            .budget(
                Budget::monthly(usd("0.01"))
                    .name("sim")
                    .scope(Scope::Provider("simulated".into()))
                    .block(),
            );
        if let Some(p) = provider {
            b = b.provider(p);
        }
        b.build().unwrap()
    };
    let calls = [
        (None, "gpt-4o-mini", "openai", "gpt-4o-mini-2024-07-18"),
        (
            None,
            "claude-sonnet-4-5",
            "anthropic",
            "claude-sonnet-4-5-20250929",
        ),
        (Some("simulated"), "gpt-4o-mini", "simulated", "gpt-4o-mini"),
    ];
    for (i, (hint, model, provider, billed)) in calls.into_iter().enumerate() {
        let t = build(hint);
        // 300 output tokens each time until refused.
        let req = ChatRequest::new(model)
            .message(Message::user("hi"))
            .max_tokens(300);
        let resp = ChatResponse {
            provider: provider.into(),
            model: billed.into(),
            usage: Usage::new(2, 300),
            ..Default::default()
        };
        let mut n = 0;
        while let Ok(r) = t.reserve(&req).await {
            t.record(&req, &resp, Some(r)).await.unwrap();
            n += 1;
            assert!(n < 1_000, "budget {i} is never enforced");
        }
        t.storage().flush().await.unwrap();
        let status = &t.budget_status().await.unwrap()[i];
        assert!(
            status.spent > Money::ZERO && status.spent <= usd("0.01"),
            "{status:?}"
        );
        // A new process sees the same spend and refuses the same call.
        let fresh = build(hint);
        assert_eq!(fresh.budget_status().await.unwrap()[i].spent, status.spent);
        assert!(matches!(
            fresh.reserve(&req).await,
            Err(Error::BudgetExceeded { .. })
        ));
        // The ledger filter of the scope selects exactly that spend.
        let mut filter = t.budgets()[i].scope.filter();
        filter.since = status.period_start;
        let agg = t.storage().aggregate(&filter).await.unwrap();
        assert_eq!(
            agg.nano_usd, status.spent,
            "budget {i}: filter and enforcement disagree"
        );
    }
}

/// `CostTracker::builder().user("alice")` with `JsonlStorage::open(dir)`
/// writes `costs_alice.jsonl`.
#[tokio::test]
async fn the_records_user_decides_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let t = CostTracker::builder()
        .storage(Arc::new(JsonlStorage::open(dir.path()).unwrap()))
        .prices(prices())
        .user("alice")
        .build()
        .unwrap();
    let (req, resp) = call();
    t.record(&req, &resp, None).await.unwrap();
    t.storage().flush().await.unwrap();
    assert!(dir.path().join("costs_alice.jsonl").is_file());
}

/// 32 one-call `cost-tracker chat --provider simulated` processes at once,
/// as two users, against one blocking `provider:simulated` budget: the
/// recorded spend stays within it and every successful call is recorded.
#[test]
fn thirty_two_cli_processes_never_overshoot_a_shared_limit() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("costlayer.toml"),
        "[[budget.custom]]\nname = \"sim\"\nlimit = \"0.0003\"\nwindow = \"monthly\"\nscope = \"provider:simulated\"\naction = \"block\"\n",
    )
    .unwrap();
    let data = dir.path().join("ledger");
    let children: Vec<_> = (0..32)
        .map(|i| {
            let mut c = Command::new(env!("CARGO_BIN_EXE_cost-tracker"));
            c.current_dir(dir.path())
                .env("COSTLAYER_USER", if i % 2 == 0 { "alice" } else { "bob" })
                .env_remove("COSTLAYER_CONFIG")
                .env_remove("COSTLAYER_DATA_DIR")
                .args(["chat", "--data-dir"])
                .arg(&data)
                .args([
                    "--provider",
                    "simulated",
                    "--max-tokens",
                    "40",
                    "--json",
                    "Say hi",
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    let (mut ids, mut refused) = (Vec::new(), 0);
    for child in children {
        let out = child.wait_with_output().unwrap();
        if out.status.success() {
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            ids.push(v["record_id"].as_str().unwrap().to_owned());
        } else {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("sim"), "refused for another reason: {err}");
            refused += 1;
        }
    }
    assert!(
        refused > 0 && !ids.is_empty(),
        "{} ok, {refused} refused",
        ids.len()
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let records = rt.block_on(ledger(&data));
    let spent: i64 = records.iter().map(|r| r.1).sum();
    assert!(
        spent <= 300_000,
        "spent {spent} nano-dollars over the $0.0003 limit"
    );
    for id in &ids {
        assert!(records.iter().any(|r| &r.0 == id), "record {id} missing");
    }
    assert_eq!(records.len(), ids.len());
}
