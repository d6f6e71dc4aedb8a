//! CostLayer: pre-flight, recording, cache savings, cancellation (the span is in cost_span.rs).

// In tests a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use costlayer::budget::Budget;
use costlayer::layer::cost::CostLayer;
use costlayer::ledger::{
    CostRecord, LedgerError, MemoryStorage, RecordStream, ResetReport, ResetScope, ScanFilter,
    Storage,
};
use costlayer::pricing::{ModelPrice, PriceTable, Rates};
use costlayer::tracker::book::{
    BookError, BookLine, BookTotals, BudgetBook, Hold, MemoryBook, Reserved,
};
use costlayer::tracker::CostTracker;
use costlayer::{ChatRequest, ChatResponse, Error, Message, Money, Usage};
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};

fn prices() -> PriceTable {
    let mut t = PriceTable::empty("test");
    let one = Money::from_usd(1).unwrap();
    t.insert(ModelPrice::new("gpt-test", "openai", Rates::new(one, one)));
    t
}

fn nanos(n: i64) -> Money {
    Money::from_nanos(n)
}

/// "hi" with max_tokens 10: worst case 22 tokens = 22,000 nano-dollars.
fn small() -> ChatRequest {
    ChatRequest::new("gpt-test")
        .message(Message::user("hi"))
        .max_tokens(10)
}

fn answer(req: &ChatRequest, input: u64, output: u64) -> ChatResponse {
    ChatResponse {
        provider: "openai".into(),
        model: format!("{}-2025-01-01", req.model).into(),
        usage: Usage::new(input, output),
        text: "ok".into(),
        ..Default::default()
    }
}

fn tracker(storage: &MemoryStorage, budget: Option<Budget>) -> CostTracker {
    let mut b = CostTracker::builder()
        .storage(Arc::new(storage.clone()))
        .prices(prices())
        .user("alice");
    if let Some(budget) = budget {
        b = b.budget(budget);
    }
    b.build().unwrap()
}

#[tokio::test]
async fn records_the_billed_usage() {
    let storage = MemoryStorage::new();
    let svc = ServiceBuilder::new()
        .layer(CostLayer::new(tracker(&storage, None)))
        .service(service_fn(|req: ChatRequest| async move {
            Ok::<_, Error>(answer(&req, 100, 20))
        }));
    let resp = svc.oneshot(small()).await.unwrap();
    assert_eq!(resp.text, "ok");
    let recs = storage.records();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].model, "gpt-test");
    assert_eq!(recs[0].nano_usd, Some(nanos(120_000)));
    assert_eq!(recs[0].user, "alice");
    assert!(!recs[0].cached);
}

#[tokio::test]
async fn a_blocked_call_never_reaches_the_provider() {
    let storage = MemoryStorage::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let mut svc = ServiceBuilder::new()
        .layer(CostLayer::new(tracker(
            &storage,
            Some(Budget::monthly(nanos(30_000)).block()),
        )))
        .service(service_fn(move |req: ChatRequest| {
            c.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, Error>(answer(&req, 12, 10)) }
        }));
    svc.ready().await.unwrap().call(small()).await.unwrap();
    let err = svc.ready().await.unwrap().call(small()).await.unwrap_err();
    assert!(
        matches!(&err, Error::BudgetExceeded { budget, .. } if budget == "monthly"),
        "{err}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(storage.len(), 1);
}

#[tokio::test]
async fn a_cache_hit_records_zero_cost_and_the_saving() {
    let storage = MemoryStorage::new();
    let svc = ServiceBuilder::new()
        .layer(CostLayer::new(tracker(&storage, None)))
        .service(service_fn(|req: ChatRequest| async move {
            Ok::<_, Error>(ChatResponse {
                cached: true,
                ..answer(&req, 1_000, 500)
            })
        }));
    svc.oneshot(small()).await.unwrap();
    let rec = &storage.records()[0];
    assert!(rec.cached);
    assert_eq!(rec.nano_usd, Some(Money::ZERO));
    assert_eq!(rec.saved_nano_usd, Some(nanos(1_500_000)));
}

#[tokio::test]
async fn errors_are_not_billed_and_release_the_reservation() {
    let storage = MemoryStorage::new();
    let t = tracker(&storage, Some(Budget::monthly(nanos(30_000)).block()));
    let svc = ServiceBuilder::new()
        .layer(CostLayer::new(t.clone()))
        .service(service_fn(|_req: ChatRequest| async move {
            Err::<ChatResponse, _>(Error::Server {
                provider: "openai".into(),
                status: 500,
                message: "boom".into(),
                retry_after: None,
            })
        }));
    for _ in 0..3 {
        let e = svc.clone().oneshot(small()).await.unwrap_err();
        assert!(matches!(e, Error::Server { status: 500, .. }));
    }
    assert!(storage.is_empty());
    let s = &t.budget_status().await.unwrap()[0];
    assert_eq!((s.spent, s.reserved), (Money::ZERO, Money::ZERO));
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_call_releases_its_reservation() {
    let storage = MemoryStorage::new();
    let t = tracker(&storage, Some(Budget::monthly(nanos(30_000)).block()));
    let hang = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let h = hang.clone();
    let svc = ServiceBuilder::new()
        .layer(CostLayer::new(t.clone()))
        .service(service_fn(move |req: ChatRequest| {
            let h = h.clone();
            async move {
                if h.load(Ordering::SeqCst) {
                    std::future::pending::<()>().await;
                }
                Ok::<_, Error>(answer(&req, 12, 10))
            }
        }));
    for _ in 0..5 {
        let r = tokio::time::timeout(Duration::from_secs(30), svc.clone().oneshot(small())).await;
        assert!(r.is_err(), "timed out");
    }
    let s = &t.budget_status().await.unwrap()[0];
    assert_eq!(s.reserved, Money::ZERO);
    hang.store(false, Ordering::SeqCst);
    svc.oneshot(small()).await.unwrap();
    assert_eq!(storage.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_calls_through_the_layer_never_overshoot() {
    let storage = MemoryStorage::new();
    let t = tracker(&storage, Some(Budget::monthly(nanos(1_000_000)).block()));
    let provider_calls = Arc::new(AtomicUsize::new(0));
    let (go_tx, go_rx) = tokio::sync::watch::channel(false);
    let pc = provider_calls.clone();
    let svc = ServiceBuilder::new()
        .layer(CostLayer::new(t.clone()))
        .service(service_fn(move |req: ChatRequest| {
            pc.fetch_add(1, Ordering::SeqCst);
            let mut go = go_rx.clone();
            async move {
                // Hold every admitted call in flight until all 200 were tried.
                go.wait_for(|g| *g)
                    .await
                    .map_err(|e| Error::Other(e.into()))?;
                Ok::<_, Error>(answer(&req, 12, 10))
            }
        }));
    let settled = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for _ in 0..200 {
        let (svc, settled) = (svc.clone(), settled.clone());
        handles.push(tokio::spawn(async move {
            let r = svc.oneshot(small()).await;
            settled.fetch_add(1, Ordering::SeqCst);
            r
        }));
    }
    // Wait until every call was either refused or admitted to the provider.
    while provider_calls.load(Ordering::SeqCst) + settled.load(Ordering::SeqCst) < 200 {
        tokio::task::yield_now().await;
    }
    go_tx.send(true).unwrap();
    let mut ok = 0;
    for h in handles {
        match h.await.unwrap() {
            Ok(_) => ok += 1,
            Err(Error::BudgetExceeded { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(ok, 1_000_000 / 22_000);
    assert_eq!(provider_calls.load(Ordering::SeqCst), ok);
    let total: Money = storage.records().iter().map(CostRecord::cost).sum();
    assert!(total <= nanos(1_000_000));
    assert_eq!(t.budget_status().await.unwrap()[0].reserved, Money::ZERO);
}

#[tokio::test]
async fn clones_share_the_budget() {
    let storage = MemoryStorage::new();
    let layer = CostLayer::new(tracker(
        &storage,
        Some(Budget::monthly(nanos(50_000)).block()),
    ));
    let provider =
        service_fn(|req: ChatRequest| async move { Ok::<_, Error>(answer(&req, 12, 10)) });
    let a = ServiceBuilder::new().layer(layer.clone()).service(provider);
    let b = a.clone();
    a.oneshot(small()).await.unwrap();
    b.clone().oneshot(small()).await.unwrap();
    assert!(matches!(
        b.oneshot(small()).await,
        Err(Error::BudgetExceeded { .. })
    ));
}

/// How a test ledger answers its appends; the rest goes to the memory
/// ledger inside.
#[derive(Debug, Clone, Copy, Default)]
enum How {
    /// Every append fails (a full disk), after a wait.
    #[default]
    Broken,
    /// Appends wait first (a remote store): never answered at once.
    Waiting,
    /// Appends fail, and say so at once.
    RefusingAtOnce,
}

#[derive(Debug, Default)]
struct OddLedger(MemoryStorage, How);

fn disk_full() -> LedgerError {
    LedgerError::Config("disk full".into())
}

#[async_trait]
impl Storage for OddLedger {
    async fn append(&self, record: &CostRecord) -> Result<(), LedgerError> {
        match self.1 {
            How::Broken | How::RefusingAtOnce => Err(disk_full()),
            How::Waiting => {
                tokio::task::yield_now().await;
                self.0.append(record).await
            }
        }
    }
    fn append_now(&self, _record: &CostRecord) -> Option<Result<(), LedgerError>> {
        match self.1 {
            How::RefusingAtOnce => Some(Err(disk_full())),
            How::Broken | How::Waiting => None,
        }
    }
    async fn scan(&self, filter: &ScanFilter) -> Result<RecordStream, LedgerError> {
        self.0.scan(filter).await
    }
    async fn mark_alert(&self, key: &str, p: &serde_json::Value) -> Result<bool, LedgerError> {
        self.0.mark_alert(key, p).await
    }
    async fn alert_fired(&self, key: &str) -> Result<bool, LedgerError> {
        self.0.alert_fired(key).await
    }
    async fn reset(&self, scope: ResetScope) -> Result<ResetReport, LedgerError> {
        self.0.reset(scope).await
    }
}

#[tokio::test]
async fn a_ledger_failure_does_not_fail_an_answered_call() -> Result<(), Error> {
    // Refused after a wait, or at once: the record goes to the spool and
    // keeps counting in the budget.
    for how in [How::Broken, How::RefusingAtOnce] {
        let t = CostTracker::builder()
            .storage(Arc::new(OddLedger(MemoryStorage::new(), how)))
            .prices(prices())
            .budget(Budget::monthly(nanos(1_000_000)).block())
            .build()?;
        let svc = ServiceBuilder::new()
            .layer(CostLayer::new(t.clone()))
            .service(service_fn(|req: ChatRequest| async move {
                Ok::<_, Error>(answer(&req, 12, 10))
            }));
        let resp = svc.oneshot(small()).await?;
        assert_eq!(resp.text, "ok");
        assert_eq!(t.budget_status().await?[0].spent, nanos(22_000));
        let spooled = t.spool().records();
        assert_eq!(spooled.len(), 1, "{how:?}");
        assert_eq!(spooled[0].nano_usd, Some(nanos(22_000)));
    }
    Ok(())
}

#[tokio::test]
async fn the_response_names_its_record_whether_the_ledger_answers_at_once_or_later(
) -> Result<(), Error> {
    for blocking in [false, true] {
        let at_once = MemoryStorage::new();
        let waiting = Arc::new(OddLedger(MemoryStorage::new(), How::Waiting));
        let ledgers: [(&str, Arc<dyn Storage>, MemoryStorage); 2] = [
            ("at once", Arc::new(at_once.clone()), at_once),
            ("later", waiting.clone(), waiting.0.clone()),
        ];
        for (how, storage, records) in ledgers {
            let mut b = CostTracker::builder()
                .storage(storage)
                .prices(prices())
                .user("alice");
            if blocking {
                b = b.budget(Budget::monthly(nanos(1_000_000)).block());
            }
            let t = b.build()?;
            let svc = ServiceBuilder::new()
                .layer(CostLayer::new(t.clone()))
                .service(service_fn(|req: ChatRequest| async move {
                    Ok::<_, Error>(answer(&req, 100, 20))
                }));
            let resp = svc.oneshot(small()).await?;
            let recs = records.records();
            assert_eq!(recs.len(), 1, "{how}, blocking {blocking}");
            let recorded = resp.recorded.expect("the response names its record");
            assert_eq!(recorded.record_id, recs[0].id, "{how}, blocking {blocking}");
            assert_eq!(recorded.nano_usd, Some(nanos(120_000)));
            assert!(recorded.durable);
            if blocking {
                assert_eq!(t.budget_status().await?[0].spent, nanos(120_000));
            }
        }
    }
    Ok(())
}

/// The `max_tokens` of each request a provider saw.
type Caps = Arc<std::sync::Mutex<Vec<Option<u32>>>>;

/// The cost layer with a blocking monthly budget of `limit`, over a
/// provider that notes each request's `max_tokens`.
fn noting_caps(
    storage: &MemoryStorage,
    limit: Money,
) -> (
    impl Service<ChatRequest, Response = ChatResponse, Error = Error>,
    Caps,
) {
    let caps = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = caps.clone();
    let svc = ServiceBuilder::new()
        .layer(CostLayer::new(tracker(
            storage,
            Some(Budget::monthly(limit).block()),
        )))
        .service(service_fn(move |req: ChatRequest| {
            seen.lock().expect("not poisoned").push(req.max_tokens);
            async move { Ok::<_, Error>(answer(&req, 12, 10)) }
        }));
    (svc, caps)
}

/// After its first call the in-memory book answers at once, so most calls
/// reserve, call and settle without a boxed future: the bound, the
/// refusal and the output cap must be the same as on the awaited path.
#[tokio::test]
async fn a_book_that_answers_at_once_keeps_the_bound_refuses_and_caps_the_output(
) -> Result<(), Error> {
    // Each call: 12 input + 10 output tokens billed = 22,000 nano-dollars;
    // reserved: "hi" with max_tokens 10 = 22,000 too.
    let storage = MemoryStorage::new();
    let (mut svc, caps) = noting_caps(&storage, nanos(22_000 * 5 + 1));
    for _ in 0..5 {
        svc.ready().await?.call(small()).await?;
    }
    for _ in 0..3 {
        let err = svc.ready().await?.call(small()).await;
        assert!(matches!(&err, Err(Error::BudgetExceeded { .. })), "{err:?}");
    }
    assert_eq!(
        caps.lock().expect("not poisoned").len(),
        5,
        "a refused call reached the provider"
    );
    assert_eq!(storage.len(), 5);
    // A request without max_tokens is sent with the output cap reserved.
    let storage = MemoryStorage::new();
    let (mut svc, caps) = noting_caps(&storage, nanos(1_000_000_000_000));
    for _ in 0..3 {
        let req = ChatRequest::new("gpt-test").message(Message::user("hi"));
        svc.ready().await?.call(req).await?;
    }
    let caps = caps.lock().expect("not poisoned").clone();
    assert_eq!(caps.len(), 3);
    assert!(
        caps.iter().all(|c| c.is_some() && *c == caps[0]),
        "{caps:?}"
    );
    Ok(())
}

/// A memory book that always makes the tracker wait (as a remote book
/// does), counting what it is asked.
#[derive(Debug, Default)]
struct AwaitedBook {
    book: MemoryBook,
    asked_now: AtomicUsize,
    reserved: AtomicUsize,
}

#[async_trait]
impl BudgetBook for AwaitedBook {
    async fn totals(&self, lines: &[BookLine]) -> Result<BookTotals, BookError> {
        self.book.totals(lines).await
    }
    async fn reserve(&self, lines: &[BookLine], amount: Money) -> Result<Reserved, BookError> {
        self.reserved.fetch_add(1, Ordering::SeqCst);
        self.book.reserve(lines, amount).await
    }
    fn reserve_now(&self, _lines: &[BookLine], _amount: Money) -> Option<Reserved> {
        self.asked_now.fetch_add(1, Ordering::SeqCst);
        None
    }
    async fn settle(
        &self,
        hold: Option<Hold>,
        record: &CostRecord,
        lines: &[BookLine],
    ) -> Result<BookTotals, BookError> {
        self.book.settle(hold, record, lines).await
    }
    async fn release(&self, hold: Hold) -> Result<(), BookError> {
        self.book.release(hold).await
    }
}

/// A book that must be awaited is asked once a call: the pre-flight the
/// cost layer started at once (scope, estimate, the book's `reserve_now`)
/// is carried on, not made again.
#[tokio::test]
async fn a_book_that_must_be_awaited_is_asked_once_a_call() -> Result<(), Error> {
    let book = Arc::new(AwaitedBook::default());
    let storage = MemoryStorage::new();
    let t = CostTracker::builder()
        .storage(Arc::new(storage.clone()))
        .book(book.clone())
        .prices(prices())
        .user("alice")
        .budget(Budget::monthly(nanos(22_000 * 3 + 1)).block())
        .build()?;
    let mut svc = ServiceBuilder::new()
        .layer(CostLayer::new(t))
        .service(service_fn(|req: ChatRequest| async move {
            Ok::<_, Error>(answer(&req, 12, 10))
        }));
    for _ in 0..3 {
        svc.ready().await?.call(small()).await?;
    }
    let refused = svc.ready().await?.call(small()).await;
    assert!(
        matches!(refused, Err(Error::BudgetExceeded { .. })),
        "{refused:?}"
    );
    assert_eq!(storage.len(), 3);
    assert_eq!(book.reserved.load(Ordering::SeqCst), 4);
    assert_eq!(
        book.asked_now.load(Ordering::SeqCst),
        4,
        "the pre-flight was made twice"
    );
    Ok(())
}
