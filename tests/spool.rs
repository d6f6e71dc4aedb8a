//! Never billed but unrecorded: a ledger that cannot be written refuses the
//! call before it is sent (the loopback provider sees no request), and a
//! record refused after the provider answered goes to the spool, counts in
//! the budgets, and reaches the ledger on the next run.
//!
//! The tests run as root, so `chmod` cannot make a directory read-only;
//! they use a data directory that is a regular file, a ledger file that is
//! `/dev/full` (every write fails with "no space left on device"), and,
//! where `mount` is allowed, a real tmpfs filled to the last byte and a
//! read-only tmpfs.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use std::process::Command as StdCommand;

use async_trait::async_trait;
use costlayer::budget::Budget;
use costlayer::ledger::{
    CostRecord, JsonlStorage, LedgerError, MemoryStorage, RecordStream, ResetReport, ResetScope,
    ScanFilter, Spool, Storage,
};
use costlayer::pricing::{ModelPrice, PriceTable, Rates};
use costlayer::tracker::CostTracker;
use costlayer::{ChatRequest, ChatResponse, Error, Message, Money, Usage};
use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "sk-test-dummy-key-7f3a9c";

fn openai_answer() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "chatcmpl-spool",
        "object": "chat.completion",
        "created": 1_735_689_600,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": "4", "refusal": null},
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100}
    }))
}

/// `cost-tracker chat --provider openai` against `server`, as alice, with
/// the ledger in `data` and the spool in `spool`.
fn chat(cwd: &Path, data: &Path, spool: &Path, server: &MockServer) -> StdCommand {
    let mut c = StdCommand::new(assert_cmd::cargo::cargo_bin("cost-tracker"));
    c.current_dir(cwd).env("COSTLAYER_USER", "alice");
    for v in [
        "COSTLAYER_CONFIG",
        "COSTLAYER_DATA_DIR",
        "COSTLAYER_MONTHLY_BUDGET",
        "COSTLAYER_TOTAL_BUDGET",
        "COSTLAYER_WEBHOOK_URL",
        "COSTLAYER_ALERT_EMAILS",
        "COSTLAYER_PRICES",
        "RUST_LOG",
    ] {
        c.env_remove(v);
    }
    c.env("OPENAI_API_KEY", KEY)
        .env("OPENAI_BASE_URL", format!("{}/v1", server.uri()))
        .env("COSTLAYER_SPOOL_DIR", spool)
        .arg("chat")
        .arg("--data-dir")
        .arg(data)
        .args([
            "--provider",
            "openai",
            "--model",
            "gpt-4o-mini",
            "--max-tokens",
            "100",
        ]);
    c
}

async fn refusing_provider() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(openai_answer())
        .expect(0)
        .mount(&server)
        .await;
    server
}

fn assert_refused(out: &std::process::Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("the call was not sent"), "{stderr}");
    assert!(stderr.contains("ledger cannot be written"), "{stderr}");
    assert!(!stderr.contains(KEY), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_that_is_a_file_refuses_the_call_before_it_is_sent() {
    let server = refusing_provider().await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("ledger");
    fs::write(&data, "not a directory").unwrap();
    let out = chat(tmp.path(), &data, &tmp.path().join("spool"), &server)
        .arg("hi")
        .output()
        .unwrap();
    // Refused before the call: by the pre-flight check, or already when the
    // CLI opens the directory's budget book there.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains(&data.display().to_string()), "{stderr}");
    assert!(
        stderr.contains("File exists") || stderr.contains("ledger cannot be written"),
        "{stderr}"
    );
    assert!(!stderr.contains(KEY), "{stderr}");
    server.verify().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_on_a_full_device_refuses_the_call_before_it_is_sent() {
    let server = refusing_provider().await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("ledger");
    fs::create_dir_all(&data).unwrap();
    std::os::unix::fs::symlink("/dev/full", data.join("costs_alice.jsonl")).unwrap();
    let out = chat(tmp.path(), &data, &tmp.path().join("spool"), &server)
        .arg("hi")
        .output()
        .unwrap();
    assert_refused(&out);
    server.verify().await;
}

/// A tmpfs mounted at `dir` with `options`. `None` if this process may
/// not mount (not root, or no CAP_SYS_ADMIN).
fn tmpfs(dir: &Path, options: &str) -> Option<TmpfsGuard> {
    fs::create_dir_all(dir).unwrap();
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", options, "tmpfs"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success());
    ok.then(|| TmpfsGuard(dir.to_path_buf()))
}

/// A tmpfs of 64 KiB at `dir`, filled until the disk is full.
fn full_tmpfs(dir: &Path) -> Option<TmpfsGuard> {
    let guard = tmpfs(dir, "size=64k")?;
    let data = dir.join("ledger");
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("costs_alice.jsonl"), "").unwrap();
    let mut filler = fs::File::create(dir.join("filler")).unwrap();
    let block = vec![0u8; 4096];
    while std::io::Write::write_all(&mut filler, &block).is_ok() {}
    Some(guard)
}

struct TmpfsGuard(PathBuf);

impl Drop for TmpfsGuard {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_the_call_before_it_is_sent() {
    let server = refusing_provider().await;
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("mnt");
    let Some(_guard) = full_tmpfs(&mnt) else {
        eprintln!(
            "skipped: this process cannot mount a tmpfs (the /dev/full test covers the case)"
        );
        return;
    };
    let out = chat(
        tmp.path(),
        &mnt.join("ledger"),
        &tmp.path().join("spool"),
        &server,
    )
    .arg("hi")
    .output()
    .unwrap();
    assert_refused(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("disk is full"));
    server.verify().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_file_system_refuses_the_call_before_it_is_sent() {
    // chmod does not stop root; a read-only mount does.
    let server = refusing_provider().await;
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("ro");
    let Some(_guard) = tmpfs(&mnt, "ro,size=64k") else {
        eprintln!(
            "skipped: this process cannot mount a tmpfs (the other refusal tests cover the check)"
        );
        return;
    };
    let out = chat(tmp.path(), &mnt, &tmp.path().join("spool"), &server)
        .arg("hi")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("read-only"), "{stderr}");
    assert!(!stderr.contains(KEY), "{stderr}");
    server.verify().await;
}

fn ledger_records(path: &Path) -> Vec<CostRecord> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_refused_after_the_answer_is_spooled_and_written_by_the_next_run() {
    // The provider answers after a second; meanwhile the ledger file
    // becomes /dev/full, after the pre-flight check passed.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(openai_answer().set_delay(Duration::from_millis(1500)))
        .expect(2)
        .mount(&server)
        .await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("ledger");
    let spool = tmp.path().join("spool");
    let ledger = data.join("costs_alice.jsonl");
    let child = chat(tmp.path(), &data, &spool, &server)
        .arg("--json")
        .arg("hi")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if !server.received_requests().await.unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
    assert!(data.is_dir(), "the pre-flight check created the directory");
    std::os::unix::fs::symlink("/dev/full", &ledger).unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "the call was answered and its record kept: {stderr}"
    );
    let spool_files: Vec<PathBuf> = fs::read_dir(&spool)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(spool_files.len(), 1, "{spool_files:?}");
    assert!(stderr.contains("spool"), "{stderr}");
    assert!(
        stderr.contains(&spool_files[0].display().to_string()),
        "{stderr}"
    );
    let spooled = ledger_records(&spool_files[0]);
    assert_eq!(spooled.len(), 1);
    assert_eq!(spooled[0].nano_usd, Some(Money::from_nanos(210_000)));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["record_id"], spooled[0].id.to_string());

    // The disk is fixed; the next run writes the spooled record first.
    fs::remove_file(&ledger).unwrap();
    let out = chat(tmp.path(), &data, &spool, &server)
        .arg("hi again")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recs = ledger_records(&ledger);
    assert_eq!(recs.len(), 2, "{recs:?}");
    assert_eq!(recs[0].id, spooled[0].id);
    assert!(!spool_files[0].exists(), "the spool was emptied");
    server.verify().await;
}

/// A ledger that passes the pre-flight check but refuses appends while
/// `broken` is set.
#[derive(Debug)]
struct Flaky {
    inner: MemoryStorage,
    broken: AtomicBool,
}

#[async_trait]
impl Storage for Flaky {
    async fn append(&self, record: &CostRecord) -> Result<(), LedgerError> {
        if self.broken.load(Ordering::SeqCst) {
            return Err(LedgerError::Config("disk on fire".into()));
        }
        self.inner.append(record).await
    }
    async fn scan(&self, filter: &ScanFilter) -> Result<RecordStream, LedgerError> {
        self.inner.scan(filter).await
    }
    async fn mark_alert(&self, key: &str, p: &serde_json::Value) -> Result<bool, LedgerError> {
        self.inner.mark_alert(key, p).await
    }
    async fn alert_fired(&self, key: &str) -> Result<bool, LedgerError> {
        self.inner.alert_fired(key).await
    }
    async fn reset(&self, scope: ResetScope) -> Result<ResetReport, LedgerError> {
        self.inner.reset(scope).await
    }
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

#[tokio::test]
async fn spooled_spend_counts_in_the_budgets_and_is_drained() {
    let tmp = tempfile::tempdir().unwrap();
    let storage = Arc::new(Flaky {
        inner: MemoryStorage::new(),
        broken: AtomicBool::new(true),
    });
    let tracker = CostTracker::builder()
        .storage(storage.clone())
        .prices(prices())
        .spool(Spool::in_dir(tmp.path(), "flaky", "alice"))
        .budget(Budget::monthly(Money::from_nanos(1_000_000)).block())
        .build()
        .unwrap();
    let req = ChatRequest::new("test-model")
        .message(Message::user("hi"))
        .max_tokens(10);
    let resp = ChatResponse {
        provider: "openai".into(),
        model: "test-model".into(),
        usage: Usage::new(600, 0),
        ..Default::default()
    };
    let r = tracker.reserve(&req).await.unwrap();
    let rec = tracker.record(&req, &resp, Some(r)).await.unwrap();
    assert_eq!(rec.cost(), Money::from_nanos(600_000));
    assert_eq!(tracker.spool().records().len(), 1);
    assert!(storage.inner.is_empty());
    let status = tracker.budget_status().await.unwrap();
    assert_eq!(
        status[0].spent,
        Money::from_nanos(600_000),
        "spooled spend counts"
    );
    // Still counted after the totals are reloaded from the ledger.
    tracker.reload().await.unwrap();
    let status = tracker.budget_status().await.unwrap();
    assert_eq!(status[0].spent, Money::from_nanos(600_000));
    // The budget sees it: a call that would cross the limit is refused.
    let big = ChatRequest::new("test-model")
        .message(Message::user("hi"))
        .max_tokens(500);
    assert!(matches!(
        tracker.reserve(&big).await,
        Err(Error::BudgetExceeded { .. })
    ));

    // The ledger heals: the next pre-flight writes the spool into it.
    storage.broken.store(false, Ordering::SeqCst);
    tracker.flush().await.unwrap();
    assert_eq!(storage.inner.records()[0].id, rec.id);
    assert!(tracker.spool().records().is_empty());
    tracker.reload().await.unwrap();
    let status = tracker.budget_status().await.unwrap();
    assert_eq!(status[0].spent, Money::from_nanos(600_000), "counted once");
}

#[tokio::test]
async fn the_library_refusal_is_a_typed_error() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("file");
    fs::write(&file, "x").unwrap();
    let storage = JsonlStorage::builder(&file).user("alice").build().unwrap();
    let tracker = CostTracker::builder()
        .storage(Arc::new(storage))
        .prices(prices())
        .build()
        .unwrap();
    let req = ChatRequest::new("test-model").message(Message::user("hi"));
    match tracker.reserve(&req).await {
        Err(Error::LedgerUnwritable { location, message }) => {
            assert!(location.contains("file"), "{location}");
            assert!(message.contains("file"), "{message}");
        }
        other => panic!("expected LedgerUnwritable, got {other:?}"),
    }
}
