//! The budget book and the alert outbox on PostgreSQL (feature
//! `postgres`): the shared `BudgetBook` behaviour suite, leases of crashed
//! hosts, detached holds, four OS processes × 16 concurrent calls against
//! one blocking budget (spend never crosses it; each alert is sent once
//! across the fleet), and the outbox's delivery state (claimed once by OS
//! processes racing, taken over once, failures retried by the next process
//! with their errors redacted).
//!
//! Needs `COSTLAYER_TEST_DATABASE_URL` (see tests/support/servers.rs); each
//! test uses its own schema. Worker processes are this test binary run
//! again with `WORKER_ENV` set (see `worker_entry`).

#![allow(clippy::unwrap_used)]

#[path = "support/book_suite.rs"]
mod book_suite;
#[path = "support/servers.rs"]
mod servers;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use book_suite::{line, record};
use costlayer::alert::{
    Alert, AlertRetry, AlertSink, DeliveryOwner, DeliveryState, OutboxEntry, SinkError,
};
use costlayer::budget::{Budget, Scope};
use costlayer::ledger::{PostgresStorage, ScanFilter, Storage};
use costlayer::pricing::{ModelPrice, PriceTable, Rates};
use costlayer::tracker::book::{BudgetBook, PostgresBudgetBook, Reserved};
use costlayer::tracker::CostTracker;
use costlayer::{ChatRequest, ChatResponse, Error, Message, Money, Usage};

const WORKER_ENV: &str = "COSTLAYER_PG_BOOK_WORKER";
const OUTBOX_WORKER_ENV: &str = "COSTLAYER_PG_OUTBOX_WORKER";
/// $0.005 at $1 per million tokens: 5,000 tokens, about 48 calls of 102.
const LIMIT: i64 = 5_000_000;

async fn storage(url: &str, schema: &str, user: &str) -> PostgresStorage {
    PostgresStorage::builder(url)
        .schema(schema)
        .user(user)
        .connect()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_book_passes_the_suite() {
    let Some(url) = servers::database_url("book_suite") else {
        return;
    };
    let mut books = Vec::new();
    for _ in 0..16 {
        let st = storage(&url, &servers::unique("t", "book"), "alice").await;
        books.push(Arc::new(PostgresBudgetBook::new(&st)) as Arc<dyn BudgetBook>);
    }
    let books = Mutex::new(books);
    book_suite::run(|| books.lock().unwrap().pop().expect("enough fresh books")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_hosts_holds_expire_after_the_lease() {
    let Some(url) = servers::database_url("book_lease") else {
        return;
    };
    let schema = servers::unique("t", "lease");
    let l = [line("m", Scope::All, 1_000, true)];
    {
        // The "crashed" host: holds 900 and never settles.
        let st = storage(&url, &schema, "crashed").await;
        let book = PostgresBudgetBook::new(&st).lease(Duration::from_millis(300));
        assert!(matches!(
            book.reserve(&l, Money::from_nanos(900)).await.unwrap(),
            Reserved::Granted { .. }
        ));
    }
    let st = storage(&url, &schema, "alive").await;
    let book = PostgresBudgetBook::new(&st);
    assert!(matches!(
        book.reserve(&l, Money::from_nanos(200)).await.unwrap(),
        Reserved::Refused { .. }
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t = &book.totals(&l).await.unwrap()[0];
    assert_eq!(t.held, Money::ZERO, "the expired hold is reaped");
    assert!(matches!(
        book.reserve(&l, Money::from_nanos(1_000)).await.unwrap(),
        Reserved::Granted { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detached_hold_outlives_its_host_and_any_host_releases_it() {
    let Some(url) = servers::database_url("book_detached") else {
        return;
    };
    let schema = servers::unique("t", "detached");
    let l = [line("m", Scope::All, 1_000, true)];
    let end = chrono::Utc::now() + chrono::Duration::hours(1);
    {
        // The submitting host holds 800 for a batch job, with a short lease
        // for its ordinary holds, and goes away.
        let st = storage(&url, &schema, "submitter").await;
        let book = PostgresBudgetBook::new(&st).lease(Duration::from_millis(100));
        assert!(matches!(
            book.reserve_detached(&l, Money::from_nanos(800), "batch_abc", end)
                .await
                .unwrap(),
            Reserved::Granted { .. }
        ));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let st = storage(&url, &schema, "collector").await;
    let book = PostgresBudgetBook::new(&st).lease(Duration::from_millis(100));
    // Past the lease, the detached hold still counts.
    assert_eq!(
        book.totals(&l).await.unwrap()[0].held,
        Money::from_nanos(800)
    );
    assert!(matches!(
        book.reserve(&l, Money::from_nanos(300)).await.unwrap(),
        Reserved::Refused { .. }
    ));
    // Several hosts retrying the submission at once hold it once.
    let retries: Vec<_> = (0..8)
        .map(|_| {
            let book = book.clone();
            let l = l.clone();
            tokio::spawn(async move {
                book.reserve_detached(&l, Money::from_nanos(800), "batch_abc", end)
                    .await
                    .unwrap()
            })
        })
        .collect();
    for r in retries {
        assert!(matches!(r.await.unwrap(), Reserved::Granted { .. }));
    }
    assert_eq!(
        book.totals(&l).await.unwrap()[0].held,
        Money::from_nanos(800)
    );
    book.release_detached("batch_abc").await.unwrap();
    book.release_detached("batch_abc").await.unwrap();
    assert_eq!(book.totals(&l).await.unwrap()[0].held, Money::ZERO);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_period_starts_from_the_ledgers_spend_and_settles_once() {
    let Some(url) = servers::database_url("book_seed") else {
        return;
    };
    let st = storage(&url, &servers::unique("t", "seed"), "alice").await;
    // Spend recorded before the book was ever used.
    st.append(&record("alice", 700)).await.unwrap();
    let book = PostgresBudgetBook::new(&st);
    let l = [line("m", Scope::All, 1_000, true)];
    assert_eq!(
        book.totals(&l).await.unwrap()[0].settled,
        Money::from_nanos(700)
    );
    assert!(matches!(
        book.reserve(&l, Money::from_nanos(400)).await.unwrap(),
        Reserved::Refused { .. }
    ));
    // Settling the same record twice counts it once.
    let r = record("alice", 100);
    book.settle(None, &r, &l).await.unwrap();
    let t = book.settle(None, &r, &l).await.unwrap();
    assert_eq!(t[0].settled, Money::from_nanos(800));
}

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

/// Prints every alert it delivers, so the parent counts them across processes.
#[derive(Debug)]
struct PrintSink;

#[async_trait]
impl AlertSink for PrintSink {
    async fn send(&self, alert: &Alert) -> Result<(), SinkError> {
        use std::io::Write;
        let mut o = std::io::stdout().lock();
        writeln!(o, "\nSENT {}", alert.key).unwrap();
        o.flush().unwrap();
        Ok(())
    }
}

/// Not a test on its own: a worker process making `n` concurrent calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn worker_entry() {
    let Ok(spec) = std::env::var(WORKER_ENV) else {
        return;
    };
    let args: Vec<&str> = spec.split('|').collect();
    let (url, schema, user, n) = (args[0], args[1], args[2], args[3].parse::<usize>().unwrap());
    let st = storage(url, schema, user).await;
    let t = CostTracker::builder()
        .storage(Arc::new(st.clone()))
        .book(Arc::new(PostgresBudgetBook::new(&st)))
        .prices(prices())
        .user(user)
        .sink(PrintSink)
        .budget(Budget::monthly(Money::from_nanos(LIMIT)).block())
        .build()
        .unwrap();
    let out = Arc::new(Mutex::new(()));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (t, out) = (t.clone(), out.clone());
            tokio::spawn(async move {
                let mut acked = 0;
                loop {
                    let req = ChatRequest::new("test-model")
                        .message(Message::user("hi"))
                        .max_tokens(100);
                    let resp = ChatResponse {
                        provider: "openai".into(),
                        model: "test-model".into(),
                        usage: Usage::new(2, 100),
                        ..Default::default()
                    };
                    match t.reserve(&req).await {
                        Ok(r) => {
                            tokio::time::sleep(Duration::from_millis(2)).await;
                            t.record(&req, &resp, Some(r)).await.unwrap();
                            acked += 1;
                        }
                        Err(Error::BudgetExceeded { .. }) => break,
                        Err(e) => panic!("unexpected error: {e}"),
                    }
                }
                let _g = out.lock().unwrap();
                println!("\nACKED {acked}");
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

#[test]
fn four_processes_never_cross_one_postgres_budget_and_alert_once() {
    let Some(url) = servers::database_url("book_processes") else {
        return;
    };
    let schema = servers::unique("t", "procs");
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Migrate once up front (the workers would take turns anyway).
    let st = rt.block_on(storage(&url, &schema, "parent"));
    let children: Vec<_> = (0..4)
        .map(|i| {
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "worker_entry",
                    "--nocapture",
                    "--test-threads",
                    "1",
                ])
                .env(WORKER_ENV, format!("{url}|{schema}|host{i}|16"))
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut acked = 0u64;
    let mut sent: BTreeMap<String, u32> = BTreeMap::new();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "a worker failed");
        for l in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some(n) = l.strip_prefix("ACKED ") {
                acked += n.trim().parse::<u64>().unwrap();
            } else if let Some(k) = l.strip_prefix("SENT ") {
                *sent.entry(k.trim().to_owned()).or_default() += 1;
            }
        }
    }
    let agg = rt.block_on(st.aggregate(&ScanFilter::default())).unwrap();
    assert_eq!(agg.calls, acked, "every acknowledged call is in the ledger");
    assert!(
        agg.nano_usd <= Money::from_nanos(LIMIT),
        "spent {} > limit {LIMIT}",
        agg.nano_usd
    );
    // 102 tokens a call, reserved at ~111: the limit is reached to within a call.
    assert!(
        agg.nano_usd > Money::from_nanos(LIMIT - 2 * 111_000),
        "the budget was used: {}",
        agg.nano_usd
    );
    assert!(
        sent.keys().any(|k| k.contains("80")),
        "the 80% alert was sent: {sent:?}"
    );
    assert!(
        sent.values().all(|&n| n == 1),
        "each alert once across the fleet: {sent:?}"
    );
}

/// The outbox's sink in these tests: `fail` makes it fail with an error
/// carrying a credential; `sent` counts what it delivered.
#[derive(Debug, Clone)]
struct TestSink {
    fail: bool,
    sent: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl AlertSink for TestSink {
    async fn send(&self, alert: &Alert) -> Result<(), SinkError> {
        if self.fail {
            return Err(SinkError::Other(
                "503 from https://hooks.example/x?token=tok_abcdef123456 (Authorization: Bearer sk-secret-0123456789)".into(),
            ));
        }
        self.sent.lock().unwrap().push(alert.key.clone());
        Ok(())
    }

    fn name(&self) -> &str {
        "test"
    }
}

fn outbox_entry(owner: DeliveryOwner) -> OutboxEntry {
    OutboxEntry::claimed(
        Alert::example(),
        [("test".to_owned(), None)],
        owner,
        chrono::Utc::now(),
        Duration::from_secs(3_600),
    )
}

/// Not a test on its own: a process claiming the example alert, then
/// exiting without delivering it (as a process killed after its claim).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_worker_entry() {
    let Ok(spec) = std::env::var(OUTBOX_WORKER_ENV) else {
        return;
    };
    let (url, schema) = spec.split_once('|').unwrap();
    let st = storage(url, schema, "worker").await;
    let claimed = st
        .claim_alert(&outbox_entry(DeliveryOwner::this_process()))
        .await
        .unwrap();
    println!("\nCLAIMED {claimed}");
}

#[test]
fn postgres_outbox_claims_once_across_processes_and_the_next_process_delivers() {
    let Some(url) = servers::database_url("outbox_processes") else {
        return;
    };
    let schema = servers::unique("t", "outbox");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let st = rt.block_on(storage(&url, &schema, "parent"));
    // Six processes race to claim one alert; each exits without sending it.
    let children: Vec<_> = (0..6)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "outbox_worker_entry", "--nocapture"])
                .env(OUTBOX_WORKER_ENV, format!("{url}|{schema}"))
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut claims = 0;
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "a worker failed");
        claims += String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.trim() == "CLAIMED true")
            .count();
    }
    assert_eq!(claims, 1, "one process claims the alert");
    let key = Alert::example().key;
    let pending = rt.block_on(st.deliveries()).unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].state(), DeliveryState::Pending);
    assert!(pending[0].owner.is_some(), "owned by the (dead) claimer");

    let tracker = |fail: bool, sent: &Arc<Mutex<Vec<String>>>| {
        CostTracker::builder()
            .storage(Arc::new(st.clone()))
            .prices(prices())
            .sink(TestSink {
                fail,
                sent: sent.clone(),
            })
            .alert_retry(AlertRetry {
                attempts: 2,
                backoff: Duration::from_millis(10),
            })
            .build()
            .unwrap()
    };
    // The next process takes the dead claimer's alert over; its sink
    // fails twice: failed, two attempts, the error without its secrets.
    let sent = Arc::new(Mutex::new(Vec::new()));
    rt.block_on(async {
        let t = tracker(true, &sent);
        t.flush().await.unwrap();
    });
    let failed = rt.block_on(st.deliveries()).unwrap();
    let d = &failed[0].sinks["test"];
    assert_eq!(failed[0].state(), DeliveryState::Failed, "{failed:?}");
    assert_eq!(d.attempts, 2);
    let error = d.last_error.clone().unwrap();
    assert!(error.contains("503"), "{error}");
    assert!(
        !error.contains("tok_abcdef123456") && !error.contains("sk-secret-0123456789"),
        "secrets redacted: {error}"
    );
    assert!(failed[0].owner.is_none());
    // The process after it delivers it, once; later ones send nothing.
    rt.block_on(async {
        let t = tracker(false, &sent);
        t.flush().await.unwrap();
        t.flush().await.unwrap();
        tracker(false, &sent).flush().await.unwrap();
    });
    assert_eq!(*sent.lock().unwrap(), vec![key.clone()]);
    let done = rt.block_on(st.deliveries()).unwrap();
    let d = &done[0].sinks["test"];
    assert_eq!(done[0].state(), DeliveryState::Delivered);
    assert_eq!(d.attempts, 3, "attempts over every process");
    assert!(d.delivered_at.is_some() && d.last_error.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outbox_is_claimed_and_taken_over_once_by_concurrent_hosts() {
    let Some(url) = servers::database_url("outbox_hosts") else {
        return;
    };
    let schema = servers::unique("t", "outbox_hosts");
    let mut hosts = Vec::new();
    for i in 0..8 {
        hosts.push(storage(&url, &schema, &format!("host{i}")).await);
    }
    // Claimed by one of eight hosts at once.
    let claims: Vec<_> = hosts
        .iter()
        .map(|st| {
            let st = st.clone();
            tokio::spawn(async move {
                st.claim_alert(&outbox_entry(DeliveryOwner::this_process()))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut n = 0;
    for c in claims {
        n += usize::from(c.await.unwrap());
    }
    assert_eq!(n, 1, "one host claims it");
    assert!(hosts[0].alert_fired(&Alert::example().key).await.unwrap());
    // The claimer is alive and its lease runs: nobody takes it over.
    let key = Alert::example().key;
    let now = chrono::Utc::now();
    let lease = Duration::from_secs(60);
    let other = DeliveryOwner::this_process();
    assert!(hosts[1]
        .take_delivery(&key, &other, now, lease)
        .await
        .unwrap()
        .is_none());
    // Its lease ran out: of eight hosts taking over at once, one gets it.
    let later = now + chrono::Duration::hours(2);
    let takes: Vec<_> = hosts
        .iter()
        .map(|st| {
            let (st, key) = (st.clone(), key.clone());
            tokio::spawn(async move {
                let me = DeliveryOwner::this_process();
                st.take_delivery(&key, &me, later, lease)
                    .await
                    .unwrap()
                    .map(|e| (e, me))
            })
        })
        .collect();
    let mut taken = Vec::new();
    for t in takes {
        taken.extend(t.await.unwrap());
    }
    assert_eq!(taken.len(), 1, "one host takes it over");
    let (entry, me) = taken.pop().unwrap();
    assert_eq!(entry.owner.as_ref(), Some(&me));
    let saved = hosts[2].deliveries().await.unwrap();
    assert_eq!(saved[0].owner.as_ref(), Some(&me), "the take is saved");
    assert_eq!(saved[0].state(), DeliveryState::Pending);
}
