//! The behaviour every `BudgetBook` must have, as one async function over a
//! factory of fresh, empty books. Include it from a test file with
//! `#[path = "support/book_suite.rs"] mod book_suite;` and call
//! `book_suite::run(|| ...).await` (see tests/budget_book.rs); a book for
//! another store runs the same suite.

#![allow(clippy::unwrap_used, dead_code, unreachable_pub)]

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use costlayer::budget::Scope;
use costlayer::ledger::CostRecord;
use costlayer::tracker::book::{BookKey, BookLine, BudgetBook, Hold, Reserved};
use costlayer::{Money, Usage};

fn nanos(n: i64) -> Money {
    Money::from_nanos(n)
}

/// A December 2026 line over `scope`, limit `limit`.
pub fn line(name: &str, scope: Scope, limit: i64, blocking: bool) -> BookLine {
    let mut l =
        BookLine::new(BookKey::new(name, "2026-12", &scope), nanos(limit)).blocking(blocking);
    l.scope = scope;
    l.start = Some(Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap());
    l.end = Some(Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap());
    l
}

/// A record of `cost` by `user` on openai/gpt-4o, on 2026-12-10.
pub fn record(user: &str, cost: i64) -> CostRecord {
    let mut r = CostRecord::new(user, "openai", "gpt-4o", Usage::new(10, 10));
    r.ts = Utc.with_ymd_and_hms(2026, 12, 10, 12, 0, 0).unwrap();
    r.nano_usd = Some(nanos(cost));
    r
}

async fn grant(book: &dyn BudgetBook, lines: &[BookLine], amount: i64) -> Hold {
    match book.reserve(lines, nanos(amount)).await.unwrap() {
        Reserved::Granted { hold, .. } => hold,
        other => panic!("expected a hold of {amount}, got {other:?}"),
    }
}

async fn refused(book: &dyn BudgetBook, lines: &[BookLine], amount: i64) -> bool {
    matches!(
        book.reserve(lines, nanos(amount)).await.unwrap(),
        Reserved::Refused { .. }
    )
}

/// Runs every case, each on a fresh book from `make`.
pub async fn run<F: Fn() -> Arc<dyn BudgetBook>>(make: F) {
    holds_count_until_released(make()).await;
    settle_replaces_the_hold_with_the_billed_cost(make()).await;
    refusal_names_the_line_and_reports_shared_totals(make()).await;
    alert_only_lines_never_refuse(make()).await;
    records_count_only_in_their_scope_and_period(make()).await;
    keys_not_instances_identify_lines(make()).await;
    concurrent_reservations_never_cross_the_limit(make()).await;
    detached_holds_count_are_idempotent_and_release_by_id(make()).await;
    detached_holds_end_at_their_time(make()).await;
    answers_now_keep_the_bound_and_the_counts(make()).await;
}

pub async fn holds_count_until_released(book: Arc<dyn BudgetBook>) {
    let l = [line("m", Scope::All, 1_000, true)];
    let h = grant(book.as_ref(), &l, 600).await;
    assert_eq!(book.totals(&l).await.unwrap()[0].held, nanos(600));
    assert!(
        refused(book.as_ref(), &l, 600).await,
        "600 + 600 > 1000 must be refused"
    );
    let h2 = grant(book.as_ref(), &l, 400).await; // exactly at the limit is fine
    book.release(h).await.unwrap();
    book.release(h2).await.unwrap();
    let t = &book.totals(&l).await.unwrap()[0];
    assert_eq!((t.settled, t.held), (Money::ZERO, Money::ZERO));
    let _ = grant(book.as_ref(), &l, 1_000).await;
}

pub async fn settle_replaces_the_hold_with_the_billed_cost(book: Arc<dyn BudgetBook>) {
    let l = [line("m", Scope::All, 1_000, true)];
    let h = grant(book.as_ref(), &l, 800).await;
    let totals = book
        .settle(Some(h), &record("alice", 300), &l)
        .await
        .unwrap();
    assert_eq!(totals.len(), 1);
    assert_eq!(
        (totals[0].settled, totals[0].held),
        (nanos(300), Money::ZERO)
    );
    // Without a hold, a settlement still counts.
    let totals = book.settle(None, &record("alice", 200), &l).await.unwrap();
    assert_eq!(totals[0].settled, nanos(500));
    assert!(refused(book.as_ref(), &l, 501).await);
    let _ = grant(book.as_ref(), &l, 500).await;
}

pub async fn refusal_names_the_line_and_reports_shared_totals(book: Arc<dyn BudgetBook>) {
    let small = line("small", Scope::All, 100, true);
    let big = line("big", Scope::All, 10_000, true);
    let lines = [big.clone(), small.clone()];
    book.settle(None, &record("a", 90), &lines).await.unwrap();
    match book.reserve(&lines, nanos(20)).await.unwrap() {
        Reserved::Refused { key, totals } => {
            assert_eq!(key, small.key);
            assert_eq!(totals.len(), 2);
            assert!(totals
                .iter()
                .all(|t| t.settled == nanos(90) && t.held.is_zero()));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Nothing was held by the refused call.
    assert_eq!(book.totals(&lines).await.unwrap()[0].held, Money::ZERO);
}

pub async fn alert_only_lines_never_refuse(book: Arc<dyn BudgetBook>) {
    let l = [line("soft", Scope::All, 10, false)];
    let h = grant(book.as_ref(), &l, 1_000).await;
    let t = book.settle(Some(h), &record("a", 900), &l).await.unwrap();
    assert_eq!(t[0].settled, nanos(900));
}

pub async fn records_count_only_in_their_scope_and_period(book: Arc<dyn BudgetBook>) {
    let alice = line("a", Scope::User("alice".into()), 1_000, true);
    let openai = line("o", Scope::Provider("OpenAI".into()), 1_000, true);
    let all = line("all", Scope::All, 1_000, true);
    let lines = [alice.clone(), openai.clone(), all.clone()];
    let t = book
        .settle(None, &record("bob", 100), &lines)
        .await
        .unwrap();
    let keys: Vec<_> = t.iter().map(|t| t.key.clone()).collect();
    assert_eq!(
        keys,
        vec![openai.key.clone(), all.key.clone()],
        "bob's openai call: not alice's line"
    );
    let mut old = record("alice", 100);
    old.ts = Utc.with_ymd_and_hms(2026, 11, 30, 23, 59, 59).unwrap();
    assert!(
        book.settle(None, &old, &lines).await.unwrap().is_empty(),
        "November is not in December's lines"
    );
    let t = book.totals(&lines).await.unwrap();
    assert_eq!(t[0].settled, Money::ZERO);
    assert_eq!(t[1].settled, nanos(100));
}

pub async fn keys_not_instances_identify_lines(book: Arc<dyn BudgetBook>) {
    let a = [line("m", Scope::All, 1_000, true)];
    let b = [line("m", Scope::All, 1_000, true)];
    let _h = grant(book.as_ref(), &a, 700).await;
    assert!(refused(book.as_ref(), &b, 400).await);
    let other = [line("n", Scope::All, 1_000, true)];
    let _ = grant(book.as_ref(), &other, 1_000).await;
}

pub async fn concurrent_reservations_never_cross_the_limit(book: Arc<dyn BudgetBook>) {
    let l = Arc::new([line("m", Scope::All, 10_000, true)]);
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (book, l) = (book.clone(), l.clone());
        tasks.push(tokio::spawn(async move {
            match book.reserve(&l[..], nanos(1_000)).await.unwrap() {
                Reserved::Granted { hold, .. } => {
                    tokio::task::yield_now().await;
                    book.settle(Some(hold), &record("a", 700), &l[..])
                        .await
                        .unwrap();
                    true
                }
                _ => false,
            }
        }));
    }
    let mut granted = 0;
    for t in tasks {
        granted += usize::from(t.await.unwrap());
    }
    let t = &book.totals(&l[..]).await.unwrap()[0];
    assert!(granted >= 10, "at least the first ten fit: {granted}");
    assert!(t.committed() <= nanos(10_000), "over the limit: {t:?}");
    assert_eq!(t.settled, nanos(700 * granted as i64));
}

/// A detached hold (a batch job's) counts like any hold, is refused past
/// the limit, is granted once per id, and goes when released by id.
pub async fn detached_holds_count_are_idempotent_and_release_by_id(book: Arc<dyn BudgetBook>) {
    let l = [line("m", Scope::All, 1_000, true)];
    let end = Utc::now() + chrono::Duration::hours(25);
    let first = book
        .reserve_detached(&l, nanos(700), "batch_1", end)
        .await
        .unwrap();
    let Reserved::Granted { hold, totals } = first else {
        panic!("expected a detached hold, got {first:?}");
    };
    assert_eq!(hold.id, "batch_1");
    assert_eq!(totals[0].held, nanos(700));
    // Submitting again holds nothing more.
    let again = book
        .reserve_detached(&l, nanos(700), "batch_1", end)
        .await
        .unwrap();
    assert!(matches!(again, Reserved::Granted { .. }), "{again:?}");
    assert_eq!(book.totals(&l).await.unwrap()[0].held, nanos(700));
    assert!(
        matches!(
            book.reserve_detached(&l, nanos(400), "batch_2", end)
                .await
                .unwrap(),
            Reserved::Refused { .. }
        ),
        "700 + 400 > 1000 must be refused"
    );
    assert!(refused(book.as_ref(), &l, 400).await);
    book.release_detached("batch_1").await.unwrap();
    book.release_detached("batch_1").await.unwrap(); // already gone: fine
    assert_eq!(book.totals(&l).await.unwrap()[0].held, Money::ZERO);
    let _ = grant(book.as_ref(), &l, 1_000).await;
}

/// A detached hold whose end has passed holds nothing.
pub async fn detached_holds_end_at_their_time(book: Arc<dyn BudgetBook>) {
    let l = [line("m", Scope::All, 1_000, true)];
    let past = Utc::now() - chrono::Duration::seconds(1);
    let _ = book
        .reserve_detached(&l, nanos(900), "batch_old", past)
        .await
        .unwrap();
    assert_eq!(book.totals(&l).await.unwrap()[0].held, Money::ZERO);
    let _ = grant(book.as_ref(), &l, 1_000).await;
}

/// A reservation as the tracker makes it: answered at once if the book
/// can, else awaited.
async fn reserve_as_the_tracker(
    book: &dyn BudgetBook,
    lines: &[BookLine],
    amount: i64,
) -> Reserved {
    match book.reserve_now(lines, nanos(amount)) {
        Some(r) => r,
        None => book.reserve(lines, nanos(amount)).await.unwrap(),
    }
}

/// `reserve_now` and `settle_now`, where a book answers them, hold the
/// same bound and make the same counts as `reserve` and `settle`, mixed
/// with them in any order.
pub async fn answers_now_keep_the_bound_and_the_counts(book: Arc<dyn BudgetBook>) {
    let l = [line("now", Scope::All, 1_000, true)];
    let b = book.as_ref();
    let first = grant(b, &l, 400).await;
    let second = match reserve_as_the_tracker(b, &l, 400).await {
        Reserved::Granted { hold, .. } => hold,
        other => panic!("400 + 400 <= 1000 must be granted, got {other:?}"),
    };
    assert!(
        matches!(
            reserve_as_the_tracker(b, &l, 201).await,
            Reserved::Refused { .. }
        ),
        "800 held + 201 > 1000 must be refused"
    );
    let rec = record("alice", 100);
    let totals = match b.settle_now(Some(&first), &rec, &l) {
        Some(t) => t,
        None => b.settle(Some(first), &rec, &l).await.unwrap(),
    };
    assert_eq!(
        (totals[0].settled, totals[0].held),
        (nanos(100), nanos(400))
    );
    // 100 settled + 400 held: 500 more fits exactly, 501 does not.
    assert!(matches!(
        reserve_as_the_tracker(b, &l, 501).await,
        Reserved::Refused { .. }
    ));
    let third = match reserve_as_the_tracker(b, &l, 500).await {
        Reserved::Granted { hold, .. } => hold,
        other => panic!("exactly at the limit must be granted, got {other:?}"),
    };
    // The second hold settled the same way: its 400 goes, 50 counts.
    let rec2 = record("alice", 50);
    let t = match b.settle_now(Some(&second), &rec2, &l) {
        Some(t) => t,
        None => b.settle(Some(second), &rec2, &l).await.unwrap(),
    };
    assert_eq!((t[0].settled, t[0].held), (nanos(150), nanos(500)));
    b.release(third).await.unwrap();
    let t = &b.totals(&l).await.unwrap()[0];
    assert_eq!((t.settled, t.held), (nanos(150), Money::ZERO));
}
