//! Batch jobs through the facade: budgets (detached holds at batch rates),
//! the ledger (recorded once, mode batch), the registry, and each
//! provider's lifecycle on wiremock.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use costlayer::batch::{parse_jsonl, BatchError, BatchJobs};
use costlayer::budget::Budget;
use costlayer::core::{BatchItem, BatchProvider, BatchState};
use costlayer::ledger::{CostRecord, JsonlStorage, ScanFilter, ScanItem, Storage};
use costlayer::mock::SimulatedProvider;
use costlayer::tracker::book::JsonlDirBook;
use costlayer::tracker::CostTracker;
use costlayer::{ChatRequest, Error, Message, Mode, Money};
use futures_util::StreamExt as _;
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "sk-test-SECRET-0123456789abcdef5678";

fn usd(s: &str) -> Money {
    s.parse().expect("amount")
}

fn tracker(dir: &Path, monthly: Option<Money>) -> CostTracker {
    let storage = JsonlStorage::builder(dir)
        .user("alice")
        .build()
        .expect("ledger");
    let mut b = CostTracker::builder()
        .storage(Arc::new(storage))
        .book(Arc::new(JsonlDirBook::open(dir).expect("book")))
        .user("alice");
    if let Some(m) = monthly {
        b = b.budget(Budget::monthly(m).block());
    }
    b.build().expect("tracker")
}

async fn records(dir: &Path) -> Vec<CostRecord> {
    let storage = JsonlStorage::builder(dir)
        .user("alice")
        .build()
        .expect("ledger");
    let mut s = storage.scan(&ScanFilter::default()).await.expect("scan");
    let mut out = Vec::new();
    while let Some(item) = s.next().await {
        if let ScanItem::Record(r) = item.expect("item") {
            out.push(r);
        }
    }
    out
}

fn item(id: &str, model: &str, text: &str, max: u32) -> BatchItem {
    BatchItem {
        custom_id: id.into(),
        request: ChatRequest::new(model)
            .message(Message::user(text))
            .max_tokens(max),
    }
}

/// One provider test's world: a wiremock server standing in for the
/// provider, a data directory, and the jobs facade over its JSONL ledger
/// and book (alice, with a monthly blocking budget when given). Built per
/// provider by [`Fixture::openai`] and [`Fixture::anthropic`].
struct Fixture {
    server: MockServer,
    dir: tempfile::TempDir,
    jobs: BatchJobs,
}

impl Fixture {
    async fn new(monthly: Option<&str>) -> Self {
        let dir = tempfile::tempdir().expect("tmp");
        let jobs = BatchJobs::new(tracker(dir.path(), monthly.map(usd)), dir.path()).expect("jobs");
        Fixture {
            server: MockServer::start().await,
            dir,
            jobs,
        }
    }

    /// OpenAI: `POST /v1/files` answers the uploaded file `file-in`
    /// (`expect` times when given).
    async fn openai(monthly: Option<&str>, expect: Option<u64>) -> Self {
        let f = Fixture::new(monthly).await;
        let upload = Mock::given(method("POST"))
            .and(path("/v1/files"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"id": "file-in", "object": "file", "purpose": "batch"})),
            );
        match expect {
            Some(n) => upload.expect(n),
            None => upload,
        }
        .mount(&f.server)
        .await;
        f
    }

    /// Anthropic: nothing mounted yet.
    async fn anthropic(monthly: Option<&str>) -> Self {
        Fixture::new(monthly).await
    }

    /// The Chat Completions client on the server.
    fn chat(&self) -> costlayer::openai::OpenAi {
        costlayer::openai::OpenAi::builder()
            .api_key(KEY)
            .base_url(format!("{}/v1", self.server.uri()))
            .build()
            .expect("client")
    }

    /// The Responses client on the server.
    fn responses(&self) -> costlayer::openai::OpenAiResponses {
        costlayer::openai::OpenAi::builder()
            .api_key(KEY)
            .base_url(format!("{}/v1", self.server.uri()))
            .build_responses()
            .expect("client")
    }

    /// The Anthropic client on the server.
    fn claude(&self) -> costlayer::anthropic::Anthropic {
        costlayer::anthropic::Anthropic::builder()
            .api_key(KEY)
            .base_url(self.server.uri())
            .build()
            .expect("client")
    }

    /// `method path` answers `resp`, any number of times.
    async fn on(&self, m: &str, p: &str, resp: ResponseTemplate) {
        Mock::given(method(m))
            .and(path(p))
            .respond_with(resp)
            .mount(&self.server)
            .await;
    }

    /// `GET path` answers `lines` as a JSONL file.
    async fn jsonl(&self, p: &str, lines: &[Value]) {
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        self.on("GET", p, ResponseTemplate::new(200).set_body_string(text))
            .await;
    }

    /// The request the server received on `p`.
    async fn sent(&self, p: &str) -> wiremock::Request {
        self.server
            .received_requests()
            .await
            .expect("recorded")
            .into_iter()
            .find(|r| r.url.path() == p)
            .unwrap_or_else(|| panic!("nothing was sent to {p}"))
    }

    async fn records(&self) -> Vec<CostRecord> {
        records(self.dir.path()).await
    }
}

#[tokio::test]
async fn simulated_job_is_held_at_batch_rates_recorded_once_and_released() {
    let dir = tempfile::tempdir().expect("tmp");
    let items = vec![
        item("a", "gpt-4o-mini", "Hello", 100_000),
        item("b", "gpt-4o-mini", "World", 100_000),
    ];
    let jobs = BatchJobs::new(tracker(dir.path(), Some(usd("0.1"))), dir.path()).expect("jobs");
    let provider = SimulatedProvider::builder()
        .batch_delay(Duration::from_millis(60))
        .build();

    // The estimate is at batch rates: half the online worst case.
    let online: Money = items
        .iter()
        .map(|i| jobs.tracker().estimate(&i.request).expect("priced"))
        .fold(Money::ZERO, Money::saturating_add);
    let batch = jobs.estimate(&items).expect("priced");
    assert_eq!(batch.nanos() * 2, online.nanos());

    let sub = jobs.submit(&provider, items.clone()).await.expect("fits");
    let hold = sub.hold.clone().expect("held under the blocking budget");
    assert_eq!(hold.amount, batch);
    assert_eq!(sub.entry.held, Some(batch));
    // 2 × 100k output at $0.30/M ≈ $0.06 held: a second job does not fit
    // beside it, in this process or any other sharing the directory.
    let other = BatchJobs::new(tracker(dir.path(), Some(usd("0.1"))), dir.path()).expect("jobs");
    let err = other
        .submit(&provider, items.clone())
        .await
        .expect_err("refused");
    assert!(
        matches!(err, BatchError::Call(Error::BudgetExceeded { .. })),
        "{err}"
    );

    // Results are not ready before the job ends.
    assert!(matches!(
        jobs.results(&provider, &sub.entry.id).await,
        Err(BatchError::NotFinished { .. })
    ));
    let mut seen = Vec::new();
    let done = jobs
        .wait(&provider, &sub.entry.id, Duration::from_millis(10), |s| {
            seen.push(s.finished())
        })
        .await
        .expect("waits");
    assert_eq!(done.state, BatchState::Completed);
    assert_eq!(seen.last(), Some(&2));

    let report = jobs
        .results(&provider, &sub.entry.id)
        .await
        .expect("results");
    assert_eq!((report.newly_recorded, report.already_recorded), (2, 0));
    assert_eq!(report.released, Some(batch));
    assert!(report.not_run.is_empty());
    let recs = records(dir.path()).await;
    assert_eq!(recs.len(), 2);
    for r in &recs {
        assert_eq!(r.mode, Mode::Batch);
        assert_eq!(r.tags.get("batch_id"), Some(&sub.entry.id));
        let want = jobs
            .tracker()
            .prices()
            .cost("gpt-4o-mini", &r.usage, Mode::Batch)
            .expect("priced")
            .total;
        assert_eq!(r.nano_usd, Some(want));
    }
    assert_eq!(
        report.recorded_cost,
        recs.iter()
            .filter_map(|r| r.nano_usd)
            .fold(Money::ZERO, Money::saturating_add)
    );

    // A crash after the ledger append but before the registry's rewrite:
    // the job is marked `recording` and forgets what it recorded. The
    // ledger is read back; nothing is recorded twice.
    let reg = jobs.registry().path();
    let mut doc: Value =
        serde_json::from_slice(&std::fs::read(&reg).expect("registry")).expect("json");
    doc["jobs"][0]["recorded"] = json!({});
    doc["jobs"][0]["recording"] = json!(true);
    std::fs::write(&reg, serde_json::to_vec(&doc).expect("json")).expect("write");

    // Twice, and from another tracker: nothing more.
    let again = other
        .results(&provider, &sub.entry.id)
        .await
        .expect("results");
    assert_eq!((again.newly_recorded, again.already_recorded), (0, 2));
    assert_eq!(again.released, None);
    assert_eq!(records(dir.path()).await.len(), 2);
    // The hold is gone: the second job fits now.
    other
        .submit(&provider, items)
        .await
        .expect("fits after release");
}

#[tokio::test]
async fn expiry_records_what_finished_and_releases_the_rest() {
    let dir = tempfile::tempdir().expect("tmp");
    let jobs = BatchJobs::new(tracker(dir.path(), Some(usd("10"))), dir.path()).expect("jobs");
    let provider = SimulatedProvider::builder()
        .batch_delay(Duration::from_millis(20))
        .batch_expire(true)
        .build();
    let items: Vec<_> = (0..4)
        .map(|i| item(&format!("r{i}"), "gpt-4o-mini", &format!("q{i}"), 50))
        .collect();
    let sub = jobs.submit(&provider, items).await.expect("submit");
    let done = jobs
        .wait(&provider, &sub.entry.id, Duration::from_millis(10), |_| {})
        .await
        .expect("waits");
    assert_eq!(done.state, BatchState::Expired);
    let report = jobs
        .results(&provider, &sub.entry.id)
        .await
        .expect("results");
    assert_eq!(report.newly_recorded, 2);
    assert_eq!(report.not_run, vec!["r2".to_owned(), "r3".to_owned()]);
    assert!(report.released.is_some());
    assert!(report.entry.released);
    assert_eq!(records(dir.path()).await.len(), 2);
}

#[tokio::test]
async fn a_corrupt_registry_is_reported_and_rebuilt_without_double_recording() {
    let dir = tempfile::tempdir().expect("tmp");
    let jobs_dir = dir.path().join("sim");
    let provider = SimulatedProvider::builder()
        .batch_delay(Duration::from_millis(1))
        .batch_dir(&jobs_dir)
        .build();
    let jobs = BatchJobs::new(tracker(dir.path(), None), dir.path()).expect("jobs");
    let sub = jobs
        .submit(
            &provider,
            vec![
                item("x", "gpt-4o-mini", "hi", 20),
                item("y", "gpt-4o-mini", "yo", 20),
            ],
        )
        .await
        .expect("submit");
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(
        jobs.results(&provider, &sub.entry.id)
            .await
            .expect("results")
            .newly_recorded,
        2
    );

    std::fs::write(jobs.registry().path(), b"{\"v\":1,\"jobs\":[{\"id\": tor").expect("corrupt");
    let (list, corrupt) = jobs.list().await.expect("no panic");
    assert!(list.is_empty());
    let msg = corrupt.expect("reported");
    assert!(
        msg.contains("corrupt") && msg.contains("batch list --provider"),
        "{msg}"
    );
    let aside: Vec<_> = std::fs::read_dir(dir.path().join("batches"))
        .expect("dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "the corrupt file is kept");

    assert_eq!(jobs.recover(&provider).await.expect("recovered"), 1);
    let (list, corrupt) = jobs.list().await.expect("list");
    assert!(corrupt.is_none());
    assert_eq!(list.len(), 1);
    assert!(list[0].recovered);
    assert_eq!(list[0].recorded.len(), 2, "read back from the ledger");
    let again = jobs
        .results(&provider, &sub.entry.id)
        .await
        .expect("results");
    assert_eq!((again.newly_recorded, again.already_recorded), (0, 2));
    assert_eq!(records(dir.path()).await.len(), 2);
}

#[test]
fn a_malformed_job_file_is_refused_with_line_numbers() {
    let text = "{\"custom_id\":\"a\",\"request\":{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}}\n{\"custom_id\":\"a\"";
    let err = parse_jsonl(
        text,
        None,
        &SimulatedProvider::new().limits(),
        costlayer::pricing::PriceTable::embedded(),
    )
    .expect_err("malformed");
    assert_eq!(err.0.len(), 1);
    assert_eq!(err.0[0].line, 2);
}

mod openai {
    use super::*;

    fn batch(status: &str, out: Option<&str>, err: Option<&str>, done: u64, failed: u64) -> Value {
        json!({"id": "batch_abc", "object": "batch", "endpoint": "/v1/chat/completions",
            "input_file_id": "file-in", "completion_window": "24h", "status": status,
            "output_file_id": out, "error_file_id": err,
            "request_counts": {"total": 2, "completed": done, "failed": failed}})
    }

    /// The `file` part of a multipart body.
    fn file_part(body: &[u8]) -> String {
        let text = String::from_utf8_lossy(body);
        let start = text
            .find("Content-Type: application/jsonl\r\n\r\n")
            .expect("file part")
            + "Content-Type: application/jsonl\r\n\r\n".len();
        let end = text[start..].find("\r\n--").expect("end") + start;
        text[start..end].to_owned()
    }

    #[tokio::test]
    async fn full_lifecycle_uploaded_jsonl_costs_and_hold() {
        let f = Fixture::openai(Some("5"), Some(1)).await;
        let server = &f.server;
        Mock::given(method("POST"))
            .and(path("/v1/batches"))
            .respond_with(ResponseTemplate::new(200).set_body_json(batch(
                "validating",
                None,
                None,
                0,
                0,
            )))
            .expect(1)
            .mount(server)
            .await;
        // Polling: a connection reset (a 503) twice, then in progress, then completed.
        Mock::given(method("GET"))
            .and(path("/v1/batches/batch_abc"))
            .respond_with(ResponseTemplate::new(503).set_body_string("upstream reset"))
            .up_to_n_times(2)
            .mount(server)
            .await;
        Mock::given(method("GET"))
            .and(path("/v1/batches/batch_abc"))
            .respond_with(ResponseTemplate::new(200).set_body_json(batch(
                "in_progress",
                None,
                None,
                1,
                0,
            )))
            .up_to_n_times(1)
            .mount(server)
            .await;
        Mock::given(method("GET"))
            .and(path("/v1/batches/batch_abc"))
            .respond_with(ResponseTemplate::new(200).set_body_json(batch(
                "completed",
                Some("file-out"),
                Some("file-err"),
                1,
                1,
            )))
            .mount(server)
            .await;
        let ok = json!({"id": "batch_req_1", "custom_id": "q1", "response": {"status_code": 200, "request_id": "req_1",
            "body": {"id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini-2024-07-18",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi!"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100}}}, "error": null});
        let bad = json!({"id": "batch_req_2", "custom_id": "q2", "response": {"status_code": 400, "request_id": "req_2",
            "body": {"error": {"message": "bad", "type": "invalid_request_error", "param": null, "code": null}}}, "error": null});
        Mock::given(method("GET"))
            .and(path("/v1/files/file-out/content"))
            .respond_with(ResponseTemplate::new(200).set_body_string(format!("{ok}\n")))
            .expect(2)
            .mount(server)
            .await;
        Mock::given(method("GET"))
            .and(path("/v1/files/file-err/content"))
            .respond_with(ResponseTemplate::new(200).set_body_string(format!("{bad}\n")))
            .expect(2)
            .mount(server)
            .await;

        let jobs = &f.jobs;
        let openai = f.chat();
        let items = vec![
            item("q1", "gpt-4o-mini", "Hi", 64),
            BatchItem {
                custom_id: "q2".into(),
                request: ChatRequest::new("gpt-4o-mini").message(Message::user("Bye")),
            },
        ];
        let sub = jobs.submit(&openai, items).await.expect("submit");
        assert_eq!(sub.entry.id, "batch_abc");
        assert!(sub.hold.is_some());

        // The uploaded JSONL, exactly: q2 carries the output cap the hold assumed.
        let upload = f.sent("/v1/files").await;
        let want = format!(
            "{}\n{}\n",
            json!({"custom_id": "q1", "method": "POST", "url": "/v1/chat/completions",
                "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "max_completion_tokens": 64}}),
            json!({"custom_id": "q2", "method": "POST", "url": "/v1/chat/completions",
                "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Bye"}], "max_completion_tokens": 4096}}),
        );
        assert_eq!(file_part(&upload.body), want);
        let create = f.sent("/v1/batches").await;
        assert_eq!(
            serde_json::from_slice::<Value>(&create.body).expect("json"),
            json!({"input_file_id": "file-in", "endpoint": "/v1/chat/completions", "completion_window": "24h"})
        );

        let done = jobs
            .wait(&openai, "batch_abc", Duration::from_millis(5), |_| {})
            .await
            .expect("polling errors are retried");
        assert_eq!(done.state, BatchState::Completed);
        let report = jobs.results(&openai, "batch_abc").await.expect("results");
        assert_eq!((report.newly_recorded, report.errored), (1, 1));
        assert!(report.released.is_some());
        let recs = f.records().await;
        assert_eq!(recs.len(), 1);
        // 1000 × $0.075/M + 100 × $0.30/M = $0.000105 (batch rates).
        assert_eq!(recs[0].nano_usd, Some(usd("0.000105")));
        assert_eq!(recs[0].mode, Mode::Batch);
        assert_eq!(
            recs[0].tags.get("batch_custom_id").map(String::as_str),
            Some("q1")
        );
        let row = report
            .rows
            .iter()
            .find(|r| r.custom_id == "q2")
            .expect("q2");
        assert!(row.error.is_some() && row.record_id.is_none());
        let again = jobs.results(&openai, "batch_abc").await.expect("twice");
        assert_eq!(again.newly_recorded, 0);
        assert_eq!(f.records().await.len(), 1);
    }

    #[tokio::test]
    async fn an_expired_job_records_what_finished_and_releases_the_hold() {
        let f = Fixture::openai(Some("1"), None).await;
        let server = &f.server;
        Mock::given(method("POST"))
            .and(path("/v1/batches"))
            .respond_with(ResponseTemplate::new(200).set_body_json(batch(
                "validating",
                None,
                None,
                0,
                0,
            )))
            .mount(server)
            .await;
        Mock::given(method("GET"))
            .and(path("/v1/batches/batch_abc"))
            .respond_with(ResponseTemplate::new(200).set_body_json(batch(
                "expired",
                Some("file-out"),
                Some("file-err"),
                1,
                1,
            )))
            .mount(server)
            .await;
        let ok = json!({"id": "r1", "custom_id": "q1", "response": {"status_code": 200, "request_id": "req_1",
            "body": {"id": "c1", "object": "chat.completion", "model": "gpt-4o-mini",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "done"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 2000, "completion_tokens": 10, "total_tokens": 2010}}}, "error": null});
        let expired = json!({"id": "r2", "custom_id": "q2", "response": null,
            "error": {"code": "batch_expired", "message": "This request could not be executed before the completion window expired."}});
        f.jsonl("/v1/files/file-out/content", &[ok]).await;
        f.jsonl("/v1/files/file-err/content", &[expired]).await;
        let jobs = &f.jobs;
        let openai = f.chat();
        let sub = jobs
            .submit(
                &openai,
                vec![
                    item("q1", "gpt-4o-mini", "a", 10),
                    item("q2", "gpt-4o-mini", "b", 10),
                    item("q3", "gpt-4o-mini", "c", 10),
                ],
            )
            .await
            .expect("submit");
        let e = jobs.status(&openai, "batch_abc").await.expect("status");
        assert_eq!(e.state, BatchState::Expired);
        assert!(!e.released, "released once its results are in");
        let report = jobs.results(&openai, "batch_abc").await.expect("results");
        assert_eq!((report.newly_recorded, report.errored), (1, 1));
        assert_eq!(report.not_run, vec!["q3".to_owned()]);
        assert_eq!(report.released, sub.hold.map(|h| h.amount));
        let row = report
            .rows
            .iter()
            .find(|r| r.custom_id == "q2")
            .expect("q2");
        assert!(row
            .error
            .as_deref()
            .is_some_and(|e| e.contains("batch_expired")));
        // 2000 × $0.075/M + 10 × $0.30/M = $0.000153.
        let recs = f.records().await;
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].nano_usd, Some(usd("0.000153")));
    }

    /// A job on `/v1/responses`: neutral requests and a native Responses
    /// line, uploaded as Responses bodies, the batch created on that
    /// endpoint, and the output (Response objects) read by the Responses
    /// codec: cached and reasoning tokens exact, priced at batch rates.
    #[tokio::test]
    async fn responses_job_upload_endpoint_and_exact_usage() {
        let f = Fixture::openai(Some("5"), Some(1)).await;
        let server = &f.server;
        let mut created = batch("validating", None, None, 0, 0);
        created["endpoint"] = json!("/v1/responses");
        Mock::given(method("POST"))
            .and(path("/v1/batches"))
            .respond_with(ResponseTemplate::new(200).set_body_json(created))
            .expect(1)
            .mount(server)
            .await;
        let mut done = batch("completed", Some("file-out"), None, 2, 0);
        done["endpoint"] = json!("/v1/responses");
        f.on(
            "GET",
            "/v1/batches/batch_abc",
            ResponseTemplate::new(200).set_body_json(done),
        )
        .await;
        let response = |id: &str, text: &str, cached: u64, reasoning: u64| {
            json!({"id": format!("batch_req_{id}"), "custom_id": id, "error": null,
                "response": {"status_code": 200, "request_id": format!("req_{id}"), "body": {
                    "id": format!("resp_{id}"), "object": "response", "status": "completed",
                    "model": "gpt-4.1-2025-04-14",
                    "output": [{"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                        "content": [{"type": "output_text", "text": text, "annotations": []}]}],
                    "usage": {"input_tokens": 2000, "input_tokens_details": {"cached_tokens": cached},
                        "output_tokens": 500, "output_tokens_details": {"reasoning_tokens": reasoning},
                        "total_tokens": 2500}}}})
        };
        f.jsonl(
            "/v1/files/file-out/content",
            &[
                response("n1", "Four.", 1000, 200),
                response("n2", "Hello.", 0, 0),
            ],
        )
        .await;

        let jobs = &f.jobs;
        let responses = f.responses();
        let text = format!(
            "{}\n{}\n",
            json!({"custom_id": "n1", "request": {"model": "gpt-4.1", "system": "Be terse.",
                "messages": [{"role": "user", "content": "2+2?"}], "max_tokens": 600}}),
            json!({"custom_id": "n2", "method": "POST", "url": "/v1/responses",
                "body": {"model": "gpt-4.1", "input": "Say hello", "max_output_tokens": 700}}),
        );
        let items =
            parse_jsonl(&text, None, &responses.limits(), jobs.tracker().prices()).expect("valid");
        let sub = jobs.submit(&responses, items).await.expect("submit");
        assert_eq!(sub.entry.id, "batch_abc");

        let upload = f.sent("/v1/files").await;
        let want = format!(
            "{}\n{}\n",
            json!({"custom_id": "n1", "method": "POST", "url": "/v1/responses",
                "body": {"model": "gpt-4.1", "instructions": "Be terse.",
                    "input": [{"type": "message", "role": "user", "content": "2+2?"}],
                    "max_output_tokens": 600}}),
            json!({"custom_id": "n2", "method": "POST", "url": "/v1/responses",
                "body": {"model": "gpt-4.1",
                    "input": [{"type": "message", "role": "user", "content": "Say hello"}],
                    "max_output_tokens": 700}}),
        );
        assert_eq!(file_part(&upload.body), want);
        let create = f.sent("/v1/batches").await;
        assert_eq!(
            serde_json::from_slice::<Value>(&create.body).expect("json"),
            json!({"input_file_id": "file-in", "endpoint": "/v1/responses", "completion_window": "24h"})
        );

        // The chat client reads the job too: by the batch's own endpoint.
        let report = jobs.results(&f.chat(), "batch_abc").await.expect("results");
        assert_eq!((report.newly_recorded, report.errored), (2, 0));
        let mut recs = f.records().await;
        recs.sort_by(|a, b| {
            a.tags
                .get("batch_custom_id")
                .cmp(&b.tags.get("batch_custom_id"))
        });
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].usage.cache_read_tokens, 1000);
        assert_eq!(recs[0].usage.reasoning_tokens, 200);
        assert_eq!(recs[0].usage.output_tokens, 500);
        assert!(recs.iter().all(|r| r.mode == Mode::Batch));
        // gpt-4.1 batch: 1000 × $1.00/M + 1000 cached × $0.50/M + 500 × $4.00/M.
        assert_eq!(recs[0].nano_usd, Some(usd("0.0035")));
        // 2000 × $1.00/M + 500 × $4.00/M.
        assert_eq!(recs[1].nano_usd, Some(usd("0.004")));
        let row = report
            .rows
            .iter()
            .find(|r| r.custom_id == "n1")
            .expect("n1");
        assert_eq!(row.text.as_deref(), Some("Four."));
    }

    /// One job has one endpoint: a chat line in a Responses job, or mixed
    /// native lines, are refused with their line numbers.
    #[test]
    fn mixed_endpoints_are_refused_with_the_line() {
        let server_less = costlayer::openai::OpenAi::builder()
            .api_key(KEY)
            .base_url("http://127.0.0.1:9/v1")
            .build_responses()
            .expect("client");
        let chat = |id: &str| {
            json!({"custom_id": id, "method": "POST", "url": "/v1/chat/completions",
                "body": {"model": "gpt-4.1", "messages": [{"role": "user", "content": "x"}]}})
        };
        let resp = |id: &str| {
            json!({"custom_id": id, "method": "POST", "url": "/v1/responses",
                "body": {"model": "gpt-4.1", "input": "x"}})
        };
        let prices = costlayer::pricing::PriceTable::embedded();
        let text = format!("{}\n{}\n", resp("a"), chat("b"));
        let any = costlayer::core::BatchLimits::default();
        let err = parse_jsonl(&text, None, &any, prices).expect_err("mixed");
        assert_eq!(err.0.len(), 1, "{err}");
        assert_eq!(err.0[0].line, 2);
        assert!(
            err.0[0]
                .message
                .contains("differs from line 1's /v1/responses"),
            "{err}"
        );
        let err = parse_jsonl(&text, None, &server_less.limits(), prices).expect_err("chat line");
        assert_eq!(err.0[0].line, 2);
        assert!(err.0[0].message.contains("pass --api chat"), "{err}");
        let chat_limits = costlayer::core::BatchLimits::default().endpoint("/v1/chat/completions");
        let err = parse_jsonl(
            &format!("{}\n{}\n", chat("a"), resp("b")),
            None,
            &chat_limits,
            prices,
        )
        .expect_err("responses line in a chat job");
        assert_eq!(err.0[0].line, 2);
        assert!(err.0[0].message.contains("pass --api responses"), "{err}");
    }

    #[tokio::test]
    async fn a_rejected_upload_holds_nothing_and_registers_nothing() {
        // The limit fits one job's estimate, not two.
        let f = Fixture::new(Some("0.02")).await;
        let server = &f.server;
        Mock::given(method("POST"))
            .and(path("/v1/files"))
            .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {"message": "Invalid file format for Batch API.", "type": "invalid_request_error", "param": null, "code": null}})))
            .expect(2)
            .mount(server)
            .await;
        let jobs = &f.jobs;
        let items = vec![item("q1", "gpt-4o-mini", "Hi", 60_000)];
        for _ in 0..2 {
            let err = jobs
                .submit(&f.chat(), items.clone())
                .await
                .expect_err("rejected");
            assert!(
                matches!(err, BatchError::Call(Error::InvalidRequest { .. })),
                "{err}"
            );
            assert!(!err.to_string().contains(KEY));
        }
        assert!(jobs.list().await.expect("list").0.is_empty());
    }
}

mod anthropic {
    use super::*;

    fn batch(status: &str, counts: Value, cancel: Option<&str>) -> Value {
        json!({"id": "msgbatch_01", "type": "message_batch", "processing_status": status,
            "request_counts": counts, "created_at": "2026-12-01T10:00:00Z",
            "expires_at": "2026-12-02T10:00:00Z", "cancel_initiated_at": cancel,
            "results_url": null})
    }

    #[tokio::test]
    async fn cancel_then_results_record_what_ran_and_release_the_hold() {
        let f = Fixture::anthropic(Some("1")).await;
        let server = &f.server;
        Mock::given(method("POST"))
            .and(path("/v1/messages/batches"))
            .and(wiremock::matchers::body_json(json!({"requests": [
                {"custom_id": "c1", "params": {"model": "claude-haiku-4-5", "max_tokens": 32, "messages": [{"role": "user", "content": "One"}]}},
                {"custom_id": "c2", "params": {"model": "claude-haiku-4-5", "max_tokens": 32, "messages": [{"role": "user", "content": "Two"}]}}
            ]})))
            .respond_with(ResponseTemplate::new(200).set_body_json(batch("in_progress",
                json!({"processing": 2, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}), None)))
            .expect(1)
            .mount(server)
            .await;
        Mock::given(method("POST"))
            .and(path("/v1/messages/batches/msgbatch_01/cancel"))
            .respond_with(ResponseTemplate::new(200).set_body_json(batch(
                "canceling",
                json!({"processing": 2, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}),
                Some("2026-12-01T10:05:00Z"),
            )))
            .expect(1)
            .mount(server)
            .await;
        Mock::given(method("GET"))
            .and(path("/v1/messages/batches/msgbatch_01"))
            .respond_with(ResponseTemplate::new(200).set_body_json(batch(
                "ended",
                json!({"processing": 0, "succeeded": 1, "errored": 0, "canceled": 1, "expired": 0}),
                Some("2026-12-01T10:05:00Z"),
            )))
            .mount(server)
            .await;
        let results = concat!(
            r#"{"custom_id":"c2","result":{"type":"canceled"}}"#,
            "\n",
            r#"{"custom_id":"c1","result":{"type":"succeeded","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-haiku-4-5-20251001","content":[{"type":"text","text":"1"}],"stop_reason":"end_turn","usage":{"input_tokens":1000,"output_tokens":10,"service_tier":"batch"}}}}"#,
            "\n"
        );
        Mock::given(method("GET"))
            .and(path("/v1/messages/batches/msgbatch_01/results"))
            .respond_with(ResponseTemplate::new(200).set_body_string(results))
            .mount(server)
            .await;
        let client = f.claude();
        let jobs = &f.jobs;
        let sub = jobs
            .submit(
                &client,
                vec![
                    item("c1", "claude-haiku-4-5", "One", 32),
                    item("c2", "claude-haiku-4-5", "Two", 32),
                ],
            )
            .await
            .expect("submit");
        assert_eq!(sub.entry.id, "msgbatch_01");
        let e = jobs.cancel(&client, "msgbatch_01").await.expect("cancel");
        assert_eq!(e.state, BatchState::Cancelling);
        assert!(!e.released, "requests already running may still be billed");
        let e = jobs.status(&client, "msgbatch_01").await.expect("status");
        assert_eq!(e.state, BatchState::Cancelled);
        let report = jobs.results(&client, "msgbatch_01").await.expect("results");
        assert_eq!((report.newly_recorded, report.errored), (1, 1));
        assert_eq!(report.released, sub.hold.map(|h| h.amount));
        let recs = f.records().await;
        assert_eq!(recs.len(), 1);
        // 1000 × $0.50/M + 10 × $2.50/M = $0.000525 (batch rates).
        assert_eq!(recs[0].nano_usd, Some(usd("0.000525")));
    }
}

/// Native lines with tools, tool calls and results, images and system
/// prompts: read back through the inverse of each codec, the codec sends
/// the body as it was written; what has no neutral form is a line error.
mod native_lines {
    use super::*;
    use costlayer::pricing::PriceTable;

    /// The one request of `line`, read as a job.
    fn read(line: &Value) -> ChatRequest {
        let items = parse_jsonl(
            &format!("{line}\n"),
            Some("gpt-4.1"),
            &costlayer::core::BatchLimits::default(),
            PriceTable::embedded(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let mut req = items.into_iter().next().expect("one").request;
        req.model = line_model(line).into();
        req
    }

    fn line_model(line: &Value) -> String {
        ["/body/model", "/params/model", "/request/model"]
            .iter()
            .find_map(|p| line.pointer(p).and_then(Value::as_str))
            .unwrap_or("gpt-4.1")
            .to_owned()
    }

    /// The line's error messages, with their line numbers.
    fn refused(lines: &[Value]) -> Vec<(usize, String)> {
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        parse_jsonl(
            &text,
            Some("gpt-4.1"),
            &costlayer::core::BatchLimits::default(),
            PriceTable::embedded(),
        )
        .expect_err("refused")
        .0
        .into_iter()
        .map(|e| (e.line, e.message))
        .collect()
    }

    fn weather_schema() -> Value {
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
    }

    #[test]
    fn openai_chat_lines_round_trip_through_the_codec() {
        let body = json!({
            "model": "gpt-4.1",
            "messages": [
                {"role": "system", "content": "Be terse."},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is here, and the weather?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
                ]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\":21}"}
            ],
            "max_completion_tokens": 300,
            "temperature": 0.2,
            "tools": [{"type": "function", "function": {"name": "weather", "description": "Weather by city", "parameters": weather_schema()}}],
            "tool_choice": "auto",
            "seed": 7
        });
        let line = json!({"custom_id": "c1", "method": "POST", "url": "/v1/chat/completions", "body": body});
        let req = read(&line);
        assert_eq!(req.system.as_deref(), Some("Be terse."));
        assert_eq!(req.tools.len(), 1);
        assert_eq!(req.messages[1].tool_calls[0].name, "weather");
        let client = costlayer::openai::OpenAi::builder()
            .api_key(KEY)
            .build()
            .expect("client");
        assert_eq!(client.codec().body(&req).expect("encodes"), body);
    }

    #[test]
    fn openai_responses_lines_round_trip_through_the_codec() {
        let body = json!({
            "model": "gpt-4.1",
            "instructions": "Be terse.",
            "input": [
                {"type": "message", "role": "user", "content": [
                    {"type": "input_text", "text": "Weather here?"},
                    {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "auto"}
                ]},
                {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": "{\"city\":\"Paris\"}", "id": "fc_1"},
                {"type": "function_call_output", "call_id": "call_1", "output": "{\"temp\":21}"}
            ],
            "max_output_tokens": 300,
            "tools": [{"type": "function", "name": "weather", "parameters": weather_schema(), "strict": false, "description": "Weather by city"}],
            "tool_choice": {"type": "function", "name": "weather"}
        });
        let line =
            json!({"custom_id": "r1", "method": "POST", "url": "/v1/responses", "body": body});
        let req = read(&line);
        let client = costlayer::openai::OpenAi::builder()
            .api_key(KEY)
            .build_responses()
            .expect("client");
        assert_eq!(client.codec().body(&req).expect("encodes"), body);
    }

    #[test]
    fn anthropic_params_round_trip_through_the_codec() {
        let params = json!({
            "model": "claude-haiku-4-5",
            "max_tokens": 400,
            "system": "Be terse.",
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "What is this, and the weather?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
                ]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "{\"temp\":21}"}
                ]}
            ],
            "tools": [{"name": "weather", "description": "Weather by city", "input_schema": weather_schema()}],
            "tool_choice": {"type": "any"},
            "stop_sequences": ["END"]
        });
        let line = json!({"custom_id": "a1", "params": params});
        let req = read(&line);
        assert_eq!(req.messages.len(), 3);
        assert_eq!(req.messages[2].tool_call_id.as_deref(), Some("toolu_1"));
        let client = costlayer::anthropic::Anthropic::builder()
            .api_key(KEY)
            .build()
            .expect("client");
        assert_eq!(client.codec().body(&req).expect("encodes"), params);
    }

    #[test]
    fn gemini_requests_round_trip_through_the_codec() {
        let request = json!({
            "contents": [
                {"role": "user", "parts": [
                    {"text": "What is this, and the weather?"},
                    {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}
                ]},
                {"role": "model", "parts": [{"functionCall": {"name": "weather", "args": {"city": "Paris"}}}]},
                {"role": "user", "parts": [{"functionResponse": {"name": "weather", "response": {"temp": 21}}}]}
            ],
            "systemInstruction": {"parts": [{"text": "Be terse."}]},
            "generationConfig": {"maxOutputTokens": 200, "temperature": 0.5},
            "tools": [{"functionDeclarations": [{"name": "weather", "description": "Weather by city", "parametersJsonSchema": weather_schema()}]}],
            "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["weather"]}}
        });
        let line = json!({"key": "g1", "request": request});
        let items = parse_jsonl(
            &format!("{line}\n"),
            Some("gemini-2.5-flash"),
            &costlayer::core::BatchLimits::default(),
            PriceTable::embedded(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let req = &items[0].request;
        assert_eq!(req.system.as_deref(), Some("Be terse."));
        assert_eq!(
            req.messages[1].tool_calls[0].arguments,
            r#"{"city":"Paris"}"#
        );
        let client = costlayer::gemini::Gemini::builder()
            .api_key(KEY)
            .build()
            .expect("client");
        assert_eq!(client.codec().body(req).expect("encodes"), request);
    }

    #[test]
    fn what_has_no_neutral_form_is_a_line_error_saying_what_to_do() {
        let ok = json!({"custom_id": "ok", "request": {"model": "gpt-4.1", "messages": [{"role": "user", "content": "x"}]}});
        let errs = refused(&[
            ok,
            json!({"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "gpt-4.1",
                "messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "..", "format": "wav"}}]}]}}),
            json!({"custom_id": "b", "params": {"model": "claude-haiku-4-5", "max_tokens": 5,
                "messages": [{"role": "user", "content": [{"type": "document", "source": {"type": "file", "file_id": "f"}}]}]}}),
            json!({"key": "c", "request": {"contents": [{"role": "user", "parts": [{"executableCode": {"code": "1"}}]}]}}),
            json!({"custom_id": "d", "method": "POST", "url": "/v1/responses", "body": {"model": "gpt-4.1",
                "input": "x", "tools": [{"type": "web_search_preview"}]}}),
        ]);
        let lines: Vec<usize> = errs.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, vec![2, 3, 4, 5], "{errs:?}");
        assert!(
            errs[0]
                .1
                .contains("`input_audio` content parts have no neutral form"),
            "{errs:?}"
        );
        assert!(errs[1].1.contains("`document` blocks"), "{errs:?}");
        assert!(
            errs[2]
                .1
                .contains("contents[0]: this part has no neutral form"),
            "{errs:?}"
        );
        assert!(
            errs[3].1.contains("tools[0] is not a plain function tool"),
            "{errs:?}"
        );
        for (_, m) in &errs {
            assert!(m.contains("the neutral format"), "says what to do: {m}");
        }
    }
}
