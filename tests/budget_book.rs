//! The budget books: the shared behaviour suite on MemoryBook and
//! JsonlDirBook, and what only the directory book does (reading the ledger
//! back, checkpoints, damaged files).

#![allow(clippy::unwrap_used)]

#[path = "support/book_suite.rs"]
mod book_suite;
#[cfg(feature = "postgres")]
#[path = "support/servers.rs"]
mod servers;

use std::sync::Arc;
use std::time::Duration;

use book_suite::{line, record};
use costlayer::budget::Scope;
use costlayer::ledger::{JsonlStorage, Storage};
use costlayer::tracker::book::{BudgetBook, JsonlDirBook, MemoryBook, Reserved};
use costlayer::Money;

#[tokio::test]
async fn memory_book_passes_the_suite() {
    book_suite::run(|| Arc::new(MemoryBook::new()) as Arc<dyn BudgetBook>).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jsonl_dir_book_passes_the_suite() {
    let root = tempfile::tempdir().unwrap();
    let n = std::sync::atomic::AtomicUsize::new(0);
    book_suite::run(|| {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Arc::new(JsonlDirBook::open(root.path().join(i.to_string())).unwrap())
            as Arc<dyn BudgetBook>
    })
    .await;
}

/// A settled call counts once: as a settled hold until its record is in the
/// ledger, then as the record, in this process and in a new one.
#[tokio::test]
async fn a_settled_record_read_back_from_the_ledger_counts_once() {
    let dir = tempfile::tempdir().unwrap();
    let l = [line("m", Scope::All, 1_000, true)];
    let book = JsonlDirBook::open(dir.path()).unwrap();
    let hold = match book.reserve(&l, Money::from_nanos(500)).await.unwrap() {
        Reserved::Granted { hold, .. } => hold,
        other => panic!("{other:?}"),
    };
    let rec = record("alice", 300);
    let t = book.settle(Some(hold), &rec, &l).await.unwrap();
    assert_eq!(t[0].settled, Money::from_nanos(300));
    let storage = JsonlStorage::builder(dir.path())
        .user("alice")
        .build()
        .unwrap();
    storage.append(&rec).await.unwrap();
    storage.flush().await.unwrap();
    let t = &book.totals(&l).await.unwrap()[0];
    assert_eq!((t.settled, t.held), (Money::from_nanos(300), Money::ZERO));
    let holds = std::fs::read_to_string(dir.path().join("budget_holds.json")).unwrap();
    assert!(
        !holds.contains(&rec.id.to_string()),
        "the settled hold is dropped once read back: {holds}"
    );
    let fresh = JsonlDirBook::open(dir.path()).unwrap();
    assert_eq!(
        fresh.totals(&l).await.unwrap()[0].settled,
        Money::from_nanos(300)
    );
}

/// A ledger written by an older costlayer (no holds, no checkpoint) counts.
#[tokio::test]
async fn an_old_ledger_without_holds_counts() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = String::new();
    for i in 0..5 {
        let mut r = record("bob", 100 + i);
        r.provider = "OpenAI".into();
        lines.push_str(&serde_json::to_string(&r).unwrap());
        lines.push('\n');
    }
    std::fs::write(dir.path().join("costs_bob.jsonl"), lines).unwrap();
    let book = JsonlDirBook::open(dir.path()).unwrap();
    let l = [line("p", Scope::Provider("openai".into()), 10_000, true)];
    assert_eq!(
        book.totals(&l).await.unwrap()[0].settled,
        Money::from_nanos(510)
    );
}

/// A new process starts from the checkpoint and reads only what was
/// appended since: bytes before the checkpoint's offsets are not read again
/// (here they are overwritten in place, which a rescan would notice).
#[tokio::test]
async fn a_new_process_reads_only_past_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("costs_alice.jsonl");
    let one = format!(
        "{}\n",
        serde_json::to_string(&record("alice", 100)).unwrap()
    );
    std::fs::write(&path, one.repeat(3)).unwrap();
    let l = [line("m", Scope::All, 1_000_000, true)];
    let first = JsonlDirBook::open(dir.path()).unwrap();
    assert_eq!(
        first.totals(&l).await.unwrap()[0].settled,
        Money::from_nanos(300)
    );
    assert!(dir.path().join("budget_checkpoint.json").is_file());
    // Same length, same file: the first line now says 999.
    let edited = one.replacen("\"nano_usd\":100", "\"nano_usd\":999", 1);
    assert_eq!(edited.len(), one.len());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[..edited.len()].copy_from_slice(edited.as_bytes());
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|mut f| {
            use std::io::Write;
            f.write_all(&bytes)
        })
        .unwrap();
    // Appended after the checkpoint: read.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    std::io::Write::write_all(&mut f, one.as_bytes()).unwrap();
    let second = JsonlDirBook::open(dir.path()).unwrap();
    assert_eq!(
        second.totals(&l).await.unwrap()[0].settled,
        Money::from_nanos(400)
    );
}

/// A corrupt or newer-version holds file or checkpoint is rebuilt from the
/// ledger: the settled spend is all there.
#[tokio::test]
async fn damaged_book_files_are_rebuilt_from_the_ledger() {
    for (holds, checkpoint) in [
        ("{not json", "{\"v\":1,\"files\":"),
        (
            "{\"v\":99,\"holds\":[]}",
            "{\"v\":99,\"files\":{},\"lines\":[]}",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let one = format!(
            "{}\n",
            serde_json::to_string(&record("alice", 100)).unwrap()
        );
        std::fs::write(dir.path().join("costs_alice.jsonl"), one.repeat(2)).unwrap();
        std::fs::write(dir.path().join("budget_holds.json"), holds).unwrap();
        std::fs::write(dir.path().join("budget_checkpoint.json"), checkpoint).unwrap();
        let book = JsonlDirBook::open(dir.path()).unwrap();
        let l = [line("m", Scope::All, 250, true)];
        assert!(matches!(
            book.reserve(&l, Money::from_nanos(51)).await.unwrap(),
            Reserved::Refused { .. }
        ));
        assert!(matches!(
            book.reserve(&l, Money::from_nanos(50)).await.unwrap(),
            Reserved::Granted { .. }
        ));
        let rewritten = std::fs::read_to_string(dir.path().join("budget_holds.json")).unwrap();
        assert!(rewritten.starts_with("{\"v\":1"), "{rewritten}");
    }
}

/// A holds file that cannot be written (here: a directory in its place)
/// refuses the reservation: the call is not sent.
#[tokio::test]
async fn an_unwritable_holds_file_refuses_the_reservation() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("budget_holds.json")).unwrap();
    std::fs::write(dir.path().join("budget_holds.json").join("x"), "x").unwrap();
    let book = JsonlDirBook::open(dir.path()).unwrap();
    let l = [line("m", Scope::All, 1_000, true)];
    let err = book.reserve(&l, Money::from_nanos(10)).await.unwrap_err();
    assert!(err.to_string().contains("budget_holds.json"), "{err}");
}

/// A detached hold outlives its owner: with the owner's pid dead (a
/// `submit` command that exited), a new process still counts it until it
/// is released by id; an ordinary hold of the same dead owner goes.
#[tokio::test]
async fn a_detached_hold_outlives_its_process() {
    let dir = tempfile::tempdir().unwrap();
    let l = [line("m", Scope::All, 1_000, true)];
    let book = JsonlDirBook::open(dir.path()).unwrap();
    let end = chrono::Utc::now() + chrono::Duration::hours(25);
    assert!(matches!(
        book.reserve_detached(&l, Money::from_nanos(600), "batch_x", end)
            .await
            .unwrap(),
        Reserved::Granted { .. }
    ));
    assert!(matches!(
        book.reserve(&l, Money::from_nanos(100)).await.unwrap(),
        Reserved::Granted { .. }
    ));
    drop(book);
    // Make the file's owner a process that has exited.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let path = dir.path().join("budget_holds.json");
    let mut holds: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for h in holds["holds"].as_array_mut().unwrap() {
        h["owner"]["pid"] = dead.into();
        h["owner"]["nonce"] = "gone".into();
    }
    std::fs::write(&path, serde_json::to_vec(&holds).unwrap()).unwrap();

    let fresh = JsonlDirBook::open(dir.path()).unwrap();
    let t = &fresh.totals(&l).await.unwrap()[0];
    assert_eq!(
        t.held,
        Money::from_nanos(600),
        "only the detached hold stays"
    );
    fresh.release_detached("batch_x").await.unwrap();
    assert_eq!(fresh.totals(&l).await.unwrap()[0].held, Money::ZERO);
}

/// Two books on one directory (as two processes): each serves its calls
/// from a chunk of the budget, yet together they never commit more than
/// the limit, and the last dollars are still used (the chunks shrink near
/// the limit and return what they do not cover).
#[tokio::test]
async fn chunks_of_two_books_share_the_limit_to_the_last_dollars() {
    two_books_share_the_limit(None).await;
}

/// As above with a chunk window short enough that chunks are returned and
/// renewed between calls, and with chunks off.
#[tokio::test]
async fn two_books_share_the_limit_with_short_or_no_chunk_windows() {
    for ms in [0, 1] {
        two_books_share_the_limit(Some(Duration::from_millis(ms))).await;
    }
}

async fn two_books_share_the_limit(window: Option<Duration>) {
    let dir = tempfile::tempdir().unwrap();
    let l = [line("m", Scope::All, 10_000, true)];
    let open = || {
        let mut b = JsonlDirBook::builder(dir.path());
        if let Some(w) = window {
            b = b.chunk_window(w);
        }
        b.build().unwrap()
    };
    let a = open();
    let b = open();
    let ledger = JsonlStorage::builder(dir.path())
        .user("alice")
        .build()
        .unwrap();
    let (mut spent, mut refused) = (0i64, [false, false]);
    let mut turn = 0usize;
    while !(refused[0] && refused[1]) {
        let book = if turn.is_multiple_of(2) { &a } else { &b };
        match book.reserve(&l, Money::from_nanos(100)).await.unwrap() {
            Reserved::Granted { hold, .. } => {
                let rec = record("alice", 90);
                book.settle(Some(hold), &rec, &l).await.unwrap();
                // Half the records reach the ledger (read back later), half
                // are still "in the writer" when the books decide.
                if turn % 4 < 2 {
                    ledger.append(&rec).await.unwrap();
                }
                spent += 90;
                refused[turn % 2] = false;
            }
            Reserved::Refused { .. } => refused[turn % 2] = true,
            other => panic!("{other:?}"),
        }
        // What every process sees never crosses the limit.
        let holds: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dir.path().join("budget_holds.json")).unwrap_or_else(|_| b"{}".to_vec()),
        )
        .unwrap_or_default();
        let held: i64 = holds["holds"]
            .as_array()
            .map(|h| h.iter().map(|h| h["nano_usd"].as_i64().unwrap_or(0)).sum())
            .unwrap_or(0);
        assert!(held <= 10_000, "the holds file commits {held} > 10,000");
        turn += 1;
        assert!(turn < 1_000, "no end");
    }
    assert!(spent <= 10_000, "spent {spent}");
    // Each grant reserves 100 and bills 90: the last dollars are used when
    // less than one reservation of headroom is left to either book.
    assert!(spent + 100 > 10_000 - 100, "only {spent} of 10,000 used");
    ledger.flush().await.unwrap();
    let ta = &a.totals(&l).await.unwrap()[0];
    let tb = &b.totals(&l).await.unwrap()[0];
    // Nothing is held but what was spent (the other book's records it has
    // not read back yet show as its chunk).
    assert_eq!(
        ta.committed(),
        Money::from_nanos(spent),
        "{ta:?} (window {window:?})"
    );
    assert_eq!(
        tb.committed(),
        Money::from_nanos(spent),
        "{tb:?} (window {window:?})"
    );
    drop((a, b));
    let fresh = JsonlDirBook::open(dir.path()).unwrap();
    let t = &fresh.totals(&l).await.unwrap()[0];
    assert!(t.committed() <= Money::from_nanos(10_000), "{t:?}");
}

/// The holds file's entries: (nano_usd, whether settled).
fn hold_entries(dir: &std::path::Path) -> Vec<(i64, bool)> {
    let holds: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join("budget_holds.json")).unwrap_or_else(|_| b"{}".to_vec()),
    )
    .unwrap_or_default();
    holds["holds"]
        .as_array()
        .map(|h| {
            h.iter()
                .map(|h| (h["nano_usd"].as_i64().unwrap(), h.get("record").is_some()))
                .collect()
        })
        .unwrap_or_default()
}

/// With chunks off (a window of 0, or no growth), every reservation is
/// its own hold in the file, written under the lock: another process sees
/// exactly what is held, call by call. With the default chunks, repeated
/// calls share one growing hold.
#[tokio::test]
async fn chunks_off_means_one_hold_per_call() {
    let l = [line("m", Scope::All, 100_000, true)];
    let dir = tempfile::tempdir().unwrap();
    let a = JsonlDirBook::builder(dir.path())
        .no_chunks()
        .build()
        .unwrap();
    let a2 = JsonlDirBook::builder(dir.path())
        .chunk_max_calls(0)
        .build()
        .unwrap();
    let b = JsonlDirBook::open(dir.path()).unwrap();
    for (book, tag) in [(&a, "window 0"), (&a2, "max calls 0")] {
        assert_eq!(book.chunk_window(), Duration::ZERO, "{tag}");
        let mut holds = Vec::new();
        for k in 1..=4i64 {
            match book.reserve(&l, Money::from_nanos(100)).await.unwrap() {
                Reserved::Granted { hold, .. } => holds.push(hold),
                other => panic!("{other:?}"),
            }
            let entries = hold_entries(dir.path());
            assert_eq!(
                entries,
                vec![(100, false); k as usize],
                "{tag}: one hold per call"
            );
            let t = &b.totals(&l).await.unwrap()[0];
            assert_eq!(
                t.held,
                Money::from_nanos(100 * k),
                "{tag}: exact, call by call"
            );
        }
        for (i, h) in holds.into_iter().enumerate() {
            let rec = record("alice", 60);
            book.settle(Some(h), &rec, &l).await.unwrap();
            let entries = hold_entries(dir.path());
            assert_eq!(
                entries.iter().filter(|e| e.1).count(),
                i + 1,
                "{tag}: settled under the lock"
            );
        }
        for other in [&a, &a2, &b] {
            let t = &other.totals(&l).await.unwrap()[0];
            assert_eq!(
                (t.settled, t.held),
                (Money::from_nanos(240), Money::ZERO),
                "{tag}"
            );
        }
        // The next book starts from an empty file.
        std::fs::remove_file(dir.path().join("budget_holds.json")).unwrap();
    }
    // The default: one chunk, grown past what it covers after a few calls.
    let dir = tempfile::tempdir().unwrap();
    let a = JsonlDirBook::open(dir.path()).unwrap();
    assert_eq!(a.chunk_window(), Duration::from_millis(500));
    let mut holds = Vec::new();
    for _ in 0..4 {
        match a.reserve(&l, Money::from_nanos(100)).await.unwrap() {
            Reserved::Granted { hold, .. } => holds.push(hold),
            other => panic!("{other:?}"),
        }
    }
    let entries = hold_entries(dir.path());
    assert_eq!(entries.len(), 1, "one chunk: {entries:?}");
    assert!(
        entries[0].0 >= 400,
        "the chunk covers the four holds: {entries:?}"
    );
}

#[test]
fn a_zero_headroom_share_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let e = JsonlDirBook::builder(dir.path())
        .chunk_headroom_share(0)
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("no_chunks()"), "{e}");
}

/// A blocking line and an alert-only one: reservations hold in the
/// blocking line only, and settling a record that also counts in the
/// alert-only line is served from the chunk without the lock (no settled
/// hold per call in the file), while the totals of both lines stay exact,
/// in this process and, once the records are in the ledger, in another.
#[tokio::test]
async fn an_alert_only_line_does_not_force_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let m = line("m", Scope::All, 100_000, true);
    let w = line("w", Scope::All, 50_000, false);
    let all = [m.clone(), w.clone()];
    let a = JsonlDirBook::open(dir.path()).unwrap();
    let ledger = JsonlStorage::builder(dir.path())
        .user("alice")
        .build()
        .unwrap();
    let mut recs = Vec::new();
    for k in 1..=10i64 {
        let hold = match a
            .reserve(std::slice::from_ref(&m), Money::from_nanos(100))
            .await
            .unwrap()
        {
            Reserved::Granted { hold, .. } => hold,
            other => panic!("{other:?}"),
        };
        let rec = record("alice", 60);
        let t = a.settle(Some(hold), &rec, &all).await.unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!((&t[0].key, &t[1].key), (&m.key, &w.key));
        assert_eq!(
            t[0].settled,
            Money::from_nanos(60 * k),
            "m after {k}: {t:?}"
        );
        assert_eq!(
            t[1].settled,
            Money::from_nanos(60 * k),
            "w after {k}: {t:?}"
        );
        assert_eq!(t[1].held, Money::ZERO);
        recs.push(rec);
    }
    // Under the lock each settlement would leave a settled hold in the
    // file until its record is read back from the ledger.
    let settled_holds = hold_entries(dir.path()).iter().filter(|e| e.1).count();
    assert!(
        settled_holds <= 1,
        "only the chunk's first call is settled under the lock: {settled_holds} settled holds"
    );
    ledger.append_batch(&recs).await.unwrap();
    ledger.flush().await.unwrap();
    let b = JsonlDirBook::open(dir.path()).unwrap();
    for book in [&a, &b] {
        let t = book.totals(&all).await.unwrap();
        assert_eq!(t[0].committed(), Money::from_nanos(600), "{t:?}");
        assert_eq!(t[1].committed(), Money::from_nanos(600), "{t:?}");
    }
}

/// Trackers built with `.storage(PostgresStorage)` and no `.book(..)` get
/// the PostgreSQL book on the storage's pool: a live reservation of one is
/// seen by the other, as two hosts would.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_book_a_postgres_storage_names_the_postgres_book() {
    use costlayer::budget::Budget;
    use costlayer::ledger::PostgresStorage;
    use costlayer::tracker::CostTracker;
    use costlayer::{ChatRequest, ChatResponse, Message, Usage};
    let Some(url) = servers::database_url("default_book") else {
        return;
    };
    let schema = servers::unique("t", "default_book");
    let build = |user: &'static str| {
        let storage = PostgresStorage::builder(&url)
            .schema(&schema)
            .user(user)
            .build_lazy()
            .unwrap();
        CostTracker::builder()
            .storage(Arc::new(storage))
            .user(user)
            .budget(Budget::monthly("0.01".parse().unwrap()).block())
            .build()
            .unwrap()
    };
    let (a, b) = (build("alice"), build("bob"));
    assert!(format!("{:?}", a.book()).starts_with("PostgresBudgetBook"));
    let req = ChatRequest::new("gpt-4o-mini")
        .message(Message::user("hi"))
        .max_tokens(100);
    let r = a.reserve(&req).await.unwrap();
    let held = b.budget_status().await.unwrap()[0].reserved;
    assert!(held > Money::ZERO, "the other host sees the hold");
    let resp = ChatResponse {
        provider: "openai".into(),
        model: "gpt-4o-mini".into(),
        usage: Usage::new(1_000, 100),
        ..Default::default()
    };
    let rec = a.record(&req, &resp, Some(r)).await.unwrap();
    let status = &b.budget_status().await.unwrap()[0];
    assert_eq!(
        (status.spent, status.reserved),
        (rec.nano_usd.unwrap(), Money::ZERO)
    );
}

/// The memory book answers at once once a line is loaded; a seeded book
/// waits for a line it has not loaded (it reads the ledger first).
#[tokio::test]
async fn the_memory_book_answers_at_once_once_a_line_is_loaded() {
    let l = [line("m", Scope::All, 1_000, true)];
    let dir = tempfile::tempdir().unwrap();
    let storage = JsonlStorage::builder(dir.path())
        .user("alice")
        .build()
        .unwrap();
    storage.append(&record("alice", 300)).await.unwrap();
    storage.flush().await.unwrap();
    let book = MemoryBook::seeded_from(Arc::new(storage));
    assert!(
        book.reserve_now(&l, Money::from_nanos(1)).is_none(),
        "a line not loaded yet must be awaited (its spend is in the ledger)"
    );
    assert!(book.settle_now(None, &record("alice", 1), &l).is_none());
    let _ = book.totals(&l).await.unwrap(); // loads the 300
    match book.reserve_now(&l, Money::from_nanos(700)) {
        Some(Reserved::Granted { hold, totals }) => {
            assert_eq!(totals[0].held, Money::from_nanos(700));
            assert_eq!(totals[0].settled, Money::from_nanos(300));
            let t = book
                .settle_now(Some(&hold), &record("alice", 10), &l)
                .unwrap();
            assert_eq!(
                (t[0].settled, t[0].held),
                (Money::from_nanos(310), Money::ZERO)
            );
        }
        other => panic!("expected a hold at once, got {other:?}"),
    }
    assert!(matches!(
        book.reserve_now(&l, Money::from_nanos(691)),
        Some(Reserved::Refused { .. })
    ));
}

/// The directory book answers at once from a fresh chunk with room, and
/// waits (for the lock) without one: before its chunk has grown past one
/// call (a short program reserves only what it needs), with chunks off,
/// and once the chunk's window has passed.
#[tokio::test]
async fn the_directory_book_answers_at_once_only_from_a_fresh_chunk() {
    let l = [line("m", Scope::All, 1_000_000, true)];
    let dir = tempfile::tempdir().unwrap();
    let book = JsonlDirBook::builder(dir.path())
        .chunk_window(Duration::from_secs(3600))
        .build()
        .unwrap();
    assert!(book.reserve_now(&l, Money::from_nanos(10)).is_none());
    let first = match book.reserve(&l, Money::from_nanos(10)).await.unwrap() {
        Reserved::Granted { hold, .. } => hold,
        other => panic!("{other:?}"),
    };
    // The first chunk holds one call; the next reservation grows it.
    assert!(book.reserve_now(&l, Money::from_nanos(10)).is_none());
    let grown = match book.reserve(&l, Money::from_nanos(10)).await.unwrap() {
        Reserved::Granted { hold, .. } => hold,
        other => panic!("{other:?}"),
    };
    let second = match book.reserve_now(&l, Money::from_nanos(10)) {
        Some(Reserved::Granted { hold, .. }) => hold,
        other => panic!("a fresh chunk answers at once, got {other:?}"),
    };
    let t = book
        .settle_now(Some(&second), &record("alice", 5), &l)
        .expect("a chunk's hold settles at once");
    assert_eq!(t[0].settled, Money::from_nanos(5));
    let t = book
        .settle(Some(first), &record("alice", 5), &l)
        .await
        .unwrap();
    assert_eq!(t[0].settled, Money::from_nanos(10));
    book.release(grown).await.unwrap();

    let off = tempfile::tempdir().unwrap();
    let book = JsonlDirBook::builder(off.path())
        .no_chunks()
        .build()
        .unwrap();
    let _ = book.reserve(&l, Money::from_nanos(10)).await.unwrap();
    assert!(book.reserve_now(&l, Money::from_nanos(10)).is_none());

    let short = tempfile::tempdir().unwrap();
    let book = JsonlDirBook::builder(short.path())
        .chunk_window(Duration::from_millis(1))
        .build()
        .unwrap();
    let hold = match book.reserve(&l, Money::from_nanos(10)).await.unwrap() {
        Reserved::Granted { hold, .. } => hold,
        other => panic!("{other:?}"),
    };
    std::thread::sleep(Duration::from_millis(20));
    assert!(book.reserve_now(&l, Money::from_nanos(10)).is_none());
    assert!(book
        .settle_now(Some(&hold), &record("alice", 5), &l)
        .is_none());
    let t = book
        .settle(Some(hold), &record("alice", 5), &l)
        .await
        .unwrap();
    assert_eq!(t[0].settled, Money::from_nanos(5));
}
