//! The tracker over the real JSONL ledger: built from the config, restarted,
//! and raced by several OS processes sharing one directory.

// In tests a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use costlayer::alert::{Alert, SinkError};
use costlayer::config::{Config, StdoutAlerts};
use costlayer::ledger::JsonlStorage;
use costlayer::tracker::CostTracker;
use costlayer::{ChatRequest, ChatResponse, Message, Money, Usage};
use wiremock::matchers::{body_partial_json, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The environment a process of the team would have.
fn config(dir: &Path, extra: &[(&str, String)]) -> Config {
    let mut vars: Vec<(String, String)> = vec![
        ("COSTLAYER_DATA_DIR".into(), dir.display().to_string()),
        ("COSTLAYER_USER".into(), "alice".into()),
        ("COSTLAYER_MONTHLY_BUDGET".into(), "0.01".into()),
        ("COSTLAYER_TOTAL_BUDGET".into(), "none".into()),
    ];
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
    let mut c = Config::load_with_env(None, move |k| {
        // Later entries (the extras) override earlier ones.
        vars.iter().rfind(|(n, _)| n == k).map(|(_, v)| v.clone())
    })
    .unwrap();
    c.stdout_alerts = StdoutAlerts::Off;
    c
}

/// gpt-4o-mini from the embedded table: $0.15 per million input tokens.
fn call(input_tokens: u64) -> (ChatRequest, ChatResponse) {
    (
        ChatRequest::new("gpt-4o-mini").message(Message::user("hi")),
        ChatResponse {
            provider: "openai".into(),
            model: "gpt-4o-mini-2024-07-18".into(),
            usage: Usage::new(input_tokens, 0),
            ..Default::default()
        },
    )
}

#[tokio::test]
async fn from_config_writes_the_ledger_and_dedups_alerts_across_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_partial_json(
            serde_json::json!({"budget": "monthly", "threshold": "80%"}),
        ))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let cfg = config(
        tmp.path(),
        &[("COSTLAYER_WEBHOOK_URL", format!("{}/hook", server.uri()))],
    );
    // 60,000 tokens × $0.15/M = $0.009: 90% of $0.01.
    {
        let t = CostTracker::from_config(&cfg).unwrap();
        let (req, resp) = call(60_000);
        let rec = t.record(&req, &resp, None).await.unwrap();
        assert_eq!(rec.nano_usd, Some(Money::from_nanos(9_000_000)));
        assert_eq!(rec.model, "gpt-4o-mini");
        t.flush_alerts().await;
    }
    // The restarted process loads the spend and does not alert again.
    let t = CostTracker::from_config(&cfg).unwrap();
    assert_eq!(
        t.budget_status().await.unwrap()[0].spent,
        Money::from_nanos(9_000_000)
    );
    let (req, resp) = call(1_000);
    t.record(&req, &resp, None).await.unwrap();
    t.flush_alerts().await;
    server.verify().await;
    let ledger = std::fs::read_to_string(tmp.path().join("costs_alice.jsonl")).unwrap();
    assert_eq!(ledger.lines().count(), 2);
    assert!(t
        .storage()
        .alert_fired(&format!("monthly:8000:{}", t.now().format("%Y-%m")))
        .await
        .unwrap());
}

#[tokio::test]
async fn a_team_budget_alerts_once_for_the_team_not_once_per_user() {
    let tmp = tempfile::tempdir().unwrap();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_partial_json(
            serde_json::json!({"budget": "monthly", "threshold": "80%"}),
        ))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let hook = format!("{}/hook", server.uri());
    let alice = CostTracker::from_config(&config(
        tmp.path(),
        &[("COSTLAYER_WEBHOOK_URL", hook.clone())],
    ))
    .unwrap();
    // Alice spends $0.009 (90% of the shared $0.01 monthly budget) and
    // alerts; Bob's process, started after hers, loads the team's spend and
    // his call is over the same threshold: the team already had its alert.
    let (req, resp) = call(60_000);
    alice.record(&req, &resp, None).await.unwrap();
    alice.flush_alerts().await;
    let bob = CostTracker::from_config(&config(
        tmp.path(),
        &[
            ("COSTLAYER_WEBHOOK_URL", hook),
            ("COSTLAYER_USER", "bob".into()),
        ],
    ))
    .unwrap();
    assert_eq!(bob.user(), "bob");
    let (req, resp) = call(1_000);
    bob.record(&req, &resp, None).await.unwrap();
    bob.flush_alerts().await;
    server.verify().await;
    let key = format!("monthly:8000:{}", bob.now().format("%Y-%m"));
    assert!(bob.storage().alert_fired(&key).await.unwrap());
    assert!(tmp.path().join("alerts_alice.jsonl").exists());
    assert!(!tmp.path().join("alerts_bob.jsonl").exists());
}

const CHILD_ENV: &str = "COSTLAYER_TEST_CHILD_DIR";

/// Not a test on its own: the body of each child process of
/// `several_processes_send_one_alert`, which runs this binary again with
/// `CHILD_ENV` set. Without it, it returns at once.
#[tokio::test]
async fn child_process_entry() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let cfg = config(&dir.join("data"), &[]);
    let sent_log = dir.join("sent.log");
    let storage = JsonlStorage::builder(&cfg.data_dir)
        .user(cfg.user.clone())
        .build()
        .unwrap();
    // The directory's shared book, as `CostTracker::from_config` gives every
    // process of the team (a per-process memory book sees only its own spend).
    let book = costlayer::tracker::book::JsonlDirBook::open(&cfg.data_dir).unwrap();
    let tracker = CostTracker::builder_from_config(&cfg)
        .unwrap()
        .storage(Arc::new(storage))
        .book(Arc::new(book))
        .sink(move |a: Alert| {
            let sent_log = sent_log.clone();
            async move {
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&sent_log)
                    .map_err(SinkError::Io)?;
                writeln!(f, "{} {}", std::process::id(), a.key).map_err(SinkError::Io)?;
                Ok(())
            }
        })
        .build()
        .unwrap();
    // Load the totals (all zero), then wait for the start signal so every
    // process records at the same moment.
    tracker.budget_status().await.unwrap();
    let go = dir.join("go");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !go.exists() {
        assert!(Instant::now() < deadline, "no start signal");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let (req, resp) = call(60_000);
    tracker.record(&req, &resp, None).await.unwrap();
    tracker.flush_alerts().await;
}

#[test]
fn several_processes_send_each_alert_once() {
    let tmp = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..4)
        .map(|_| {
            Command::new(&exe)
                .args(["--exact", "child_process_entry", "--test-threads=1"])
                .env(CHILD_ENV, tmp.path())
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    // Give them time to start and load, then fire.
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(tmp.path().join("go"), b"").unwrap();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let sent = std::fs::read_to_string(tmp.path().join("sent.log")).unwrap();
    // Together the four calls spend $0.036 of $0.01: the book they share
    // shows every process the others' spend, so both thresholds are crossed
    // and each is sent exactly once, by one process.
    let mut keys: Vec<&str> = sent
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["monthly:10000:2026-12", "monthly:8000:2026-12"]
            .map(|k| k.replace("2026-12", &chrono::Utc::now().format("%Y-%m").to_string())),
        "{sent}"
    );
    let ledger = std::fs::read_to_string(tmp.path().join("data/costs_alice.jsonl")).unwrap();
    assert_eq!(
        ledger.lines().count(),
        4,
        "every process's call is in the ledger"
    );
    let history = std::fs::read_to_string(tmp.path().join("data/alerts_alice.jsonl")).unwrap();
    for key in keys {
        assert_eq!(
            history
                .lines()
                .filter(|l| l.contains(&format!("\"key\":\"{key}\"")))
                .count(),
            1,
            "{history}"
        );
    }
}

/// Built with `.storage(JsonlStorage)` and no `.book(..)`, trackers on one
/// directory share the directory book: a live reservation of one is seen
/// by a tracker on another storage of the directory; trackers on clones of
/// one storage share one book; a memory ledger still gets a memory book.
#[tokio::test]
async fn without_a_book_the_jsonl_storage_names_the_directory_book() {
    use costlayer::budget::Budget;
    use costlayer::ledger::MemoryStorage;
    let dir = tempfile::tempdir().unwrap();
    let storage = JsonlStorage::builder(dir.path())
        .user("alice")
        .build()
        .unwrap();
    let build = |s: JsonlStorage| {
        CostTracker::builder()
            .storage(Arc::new(s))
            .user("alice")
            .budget(Budget::monthly("0.01".parse().unwrap()).block())
            .build()
            .unwrap()
    };
    let a = build(storage.clone());
    let a2 = build(storage.clone());
    let b = build(
        JsonlStorage::builder(dir.path())
            .user("bob")
            .build()
            .unwrap(),
    );
    assert!(format!("{:?}", a.book()).starts_with("JsonlDirBook"));
    assert!(Arc::ptr_eq(a.book(), a2.book()), "one book per storage");
    assert!(!Arc::ptr_eq(a.book(), b.book()));
    let (req, resp) = call(1_000);
    let r = a.reserve(&req).await.unwrap();
    let seen = b.budget_status().await.unwrap()[0].reserved;
    assert!(seen > Money::ZERO, "the other tracker sees the hold");
    let rec = a.record(&req, &resp, Some(r)).await.unwrap();
    a.storage().flush().await.unwrap();
    let status = &b.budget_status().await.unwrap()[0];
    assert_eq!(
        (status.spent, status.reserved),
        (rec.nano_usd.unwrap(), Money::ZERO)
    );
    let m = CostTracker::builder()
        .storage(Arc::new(MemoryStorage::new()))
        .build()
        .unwrap();
    assert!(format!("{:?}", m.book()).starts_with("MemoryBook"));
}

/// A storage whose default book cannot be opened fails the build with the
/// typed `BookError::Open`, whose message says what to do.
#[tokio::test]
async fn a_default_book_that_cannot_be_opened_fails_the_build() {
    use costlayer::ledger::CostRecord;
    use costlayer::ledger::{
        LedgerError, MemoryStorage, RecordStream, ResetReport, ResetScope, ScanFilter, Storage,
    };
    use costlayer::tracker::book::{BookError, BudgetBook};

    #[derive(Debug)]
    struct Broken(MemoryStorage);
    #[async_trait::async_trait]
    impl Storage for Broken {
        async fn append(&self, r: &CostRecord) -> Result<(), LedgerError> {
            self.0.append(r).await
        }
        async fn scan(&self, f: &ScanFilter) -> Result<RecordStream, LedgerError> {
            self.0.scan(f).await
        }
        async fn mark_alert(&self, k: &str, p: &serde_json::Value) -> Result<bool, LedgerError> {
            self.0.mark_alert(k, p).await
        }
        async fn alert_fired(&self, k: &str) -> Result<bool, LedgerError> {
            self.0.alert_fired(k).await
        }
        async fn reset(&self, s: ResetScope) -> Result<ResetReport, LedgerError> {
            self.0.reset(s).await
        }
        fn default_book(&self) -> Option<Result<Arc<dyn BudgetBook>, BookError>> {
            Some(Err(BookError::Other("the book's table is missing".into())))
        }
    }
    let err = CostTracker::builder()
        .storage(Arc::new(Broken(MemoryStorage::new())))
        .build()
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("the book's table is missing"), "{msg}");
    assert!(
        msg.contains("CostTrackerBuilder::book"),
        "says what to do: {msg}"
    );
    match err {
        costlayer::Error::Other(e) => assert!(matches!(
            e.downcast_ref::<BookError>(),
            Some(BookError::Open(_))
        )),
        other => panic!("{other:?}"),
    }
    // A book given explicitly is used instead.
    CostTracker::builder()
        .storage(Arc::new(Broken(MemoryStorage::new())))
        .book(Arc::new(costlayer::tracker::book::MemoryBook::new()))
        .build()
        .unwrap();
}

/// A record the ledger refuses after the provider answered goes to the
/// spool, and still counts in the directory book every process shares (as
/// a settled hold, from its settlement on): another process sees the spend
/// and refuses a call that would cross the limit.
#[tokio::test]
async fn a_spooled_record_counts_in_the_default_directory_book() {
    use costlayer::budget::Budget;
    use costlayer::ledger::{
        CostRecord, LedgerError, RecordStream, ResetReport, ResetScope, ScanFilter, Storage,
    };
    use costlayer::tracker::book::{BookError, BudgetBook};

    /// The directory's ledger, refusing every append.
    #[derive(Debug)]
    struct Refusing(JsonlStorage);
    #[async_trait::async_trait]
    impl Storage for Refusing {
        async fn append(&self, _: &CostRecord) -> Result<(), LedgerError> {
            Err(LedgerError::Backend("the disk is full".into()))
        }
        async fn scan(&self, f: &ScanFilter) -> Result<RecordStream, LedgerError> {
            self.0.scan(f).await
        }
        async fn mark_alert(&self, k: &str, p: &serde_json::Value) -> Result<bool, LedgerError> {
            self.0.mark_alert(k, p).await
        }
        async fn alert_fired(&self, k: &str) -> Result<bool, LedgerError> {
            self.0.alert_fired(k).await
        }
        async fn reset(&self, s: ResetScope) -> Result<ResetReport, LedgerError> {
            self.0.reset(s).await
        }
        fn default_book(&self) -> Option<Result<Arc<dyn BudgetBook>, BookError>> {
            self.0.default_book()
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let jsonl = |user: &str| {
        JsonlStorage::builder(dir.path())
            .user(user)
            .build()
            .unwrap()
    };
    let limit: Money = "0.01".parse().unwrap();
    let a = CostTracker::builder()
        .storage(Arc::new(Refusing(jsonl("alice"))))
        .user("alice")
        .budget(Budget::monthly(limit).block())
        .build()
        .unwrap();
    assert!(format!("{:?}", a.book()).starts_with("JsonlDirBook"));
    let (req, resp) = call(50_000);
    let req = req.max_tokens(10);
    let r = a.reserve(&req).await.unwrap();
    let rec = a.record(&req, &resp, Some(r)).await.unwrap();
    assert_eq!(
        a.spool().records().len(),
        1,
        "the refused record is spooled"
    );
    let b = CostTracker::builder()
        .storage(Arc::new(jsonl("bob")))
        .user("bob")
        .budget(Budget::monthly(limit).block())
        .build()
        .unwrap();
    let status = &b.budget_status().await.unwrap()[0];
    assert_eq!(
        status.spent,
        rec.nano_usd.unwrap(),
        "counted by the other process"
    );
    // $0.0075 spent: a call that may cost $0.003 more (5,000 output
    // tokens at $0.60 per million) would cross $0.01; one of $0.0006 not.
    let (big, _) = call(0);
    assert!(matches!(
        b.reserve(&big.clone().max_tokens(5_000)).await,
        Err(costlayer::Error::BudgetExceeded { .. })
    ));
    let held = b.reserve(&big.max_tokens(1_000)).await.unwrap();
    assert!(!held.is_empty(), "a small call still fits");
}

/// The `[budget]` book settings of the config file reach the tracker
/// `from_config` builds: with `chunk_window_ms = 0` every reservation is
/// its own hold in the directory's holds file; by default one process
/// holds one chunk for its calls.
#[tokio::test]
async fn from_config_takes_the_book_settings_of_the_file() {
    async fn holds_after_two_reservations(settings: &str) -> usize {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("costlayer.toml");
        std::fs::write(
            &file,
            format!(
                "data_dir = \"{}\"\nuser = \"alice\"\n[budget]\nmonthly = \"1\"\ntotal = \"none\"\n\
                 action = \"block\"\n{settings}",
                tmp.path().join("ledger").display()
            ),
        )
        .unwrap();
        let mut cfg = Config::load_with_env(Some(&file), |_| None).unwrap();
        cfg.stdout_alerts = StdoutAlerts::Off;
        let t = CostTracker::from_config(&cfg).unwrap();
        let (req, _) = call(1_000);
        let _first = t.reserve(&req).await.unwrap();
        let _second = t.reserve(&req).await.unwrap();
        let holds: serde_json::Value = serde_json::from_slice(
            &std::fs::read(tmp.path().join("ledger").join("budget_holds.json")).unwrap(),
        )
        .unwrap();
        holds["holds"].as_array().unwrap().len()
    }
    assert_eq!(
        holds_after_two_reservations("chunk_window_ms = 0\n").await,
        2
    );
    assert_eq!(
        holds_after_two_reservations("chunk_max_calls = 0\n").await,
        2
    );
    assert_eq!(
        holds_after_two_reservations("lease_seconds = 60\n").await,
        1
    );
    assert_eq!(holds_after_two_reservations("").await, 1);
}
