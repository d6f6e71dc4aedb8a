//! One behaviour suite for every `Storage` backend: memory, JSONL and
//! PostgreSQL run the same function over `Arc<dyn Storage>`; then the
//! PostgreSQL-only guarantees (idempotent appends, concurrent migrations,
//! alerts once across hosts, archives, push-down, JSONL import).
//!
//! PostgreSQL tests need `COSTLAYER_TEST_DATABASE_URL` (see
//! tests/support/servers.rs); each uses its own schema.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use costlayer::budget::{Budget, Scope};
use costlayer::ledger::{
    CostRecord, JsonlStorage, MemoryStorage, PostgresStorage, ResetScope, ScanFilter, ScanItem,
    Storage,
};
use costlayer::report::{Dashboard, DashboardPass};
use costlayer::{CostStatus, Mode, Money, Usage};
use futures_util::StreamExt;
use serde_json::json;

#[path = "support/servers.rs"]
mod servers;

fn at(d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0).unwrap()
}

fn rec(
    user: &str,
    provider: &str,
    model: &str,
    ts: DateTime<Utc>,
    nanos: Option<i64>,
) -> CostRecord {
    let mut r = CostRecord::new(user, provider, model, Usage::new(100, 10));
    r.ts = ts;
    r.nano_usd = nanos.map(Money::from_nanos);
    r
}

/// A record using every field, so a round trip through the backend shows
/// what it loses.
fn rich() -> CostRecord {
    let mut r = rec("carol", "anthropic", "claude-haiku-4-5", at(3, 7), Some(42));
    r.team = Some("ml".into());
    r.mode = Mode::Batch;
    r.usage = Usage {
        input_tokens: 1,
        output_tokens: 2,
        cache_read_tokens: 3,
        cache_write_5m_tokens: 4,
        cache_write_1h_tokens: 5,
        reasoning_tokens: 1,
        input_audio_tokens: 6,
        web_search_requests: 7,
        ..Usage::default()
    };
    r.cached = true;
    r.saved_nano_usd = Some(Money::from_nanos(9_000));
    r.latency_ms = 812;
    r.request_id = Some("req_123".into());
    r.tags = BTreeMap::from([("feature".into(), "search".into())]);
    r.price_version = Some("2026-11:claude-haiku-4-5".into());
    r.cost_status = CostStatus::Estimated;
    r.cost_notes = vec!["stream dropped".into()];
    r.extra.insert("future_field".into(), json!({"x": [1, 2]}));
    r
}

async fn collect(st: &dyn Storage, f: &ScanFilter) -> Vec<CostRecord> {
    let mut out = Vec::new();
    let mut s = st.scan(f).await.expect("scan");
    while let Some(item) = s.next().await {
        match item.expect("scan item") {
            ScanItem::Record(r) => out.push(r),
            ScanItem::Corrupt(c) => panic!("unexpected corrupt line {c:?}"),
        }
    }
    out.sort_by_key(|r| r.id);
    out
}

/// The behaviour every backend shares. `storage` is empty and records as
/// user `alice`; `writer(user)` is the storage that user's processes append
/// through (the same one for shared backends; their own file for JSONL).
/// The dashboard of `st` at `now` for `filter`: pushed down to the backend,
/// and folded in process from a plain scan of every record.
async fn pushed_and_scanned(
    st: &dyn Storage,
    now: DateTime<Utc>,
    budgets: &[Budget],
    filter: &ScanFilter,
) -> (Dashboard, Dashboard) {
    let mut pushed = DashboardPass::new(now, budgets.to_vec(), filter.clone());
    pushed.fold_storage(st).await.unwrap();
    let mut scanned = DashboardPass::new(now, budgets.to_vec(), filter.clone());
    let mut s = st.scan(&ScanFilter::default()).await.unwrap();
    while let Some(item) = s.next().await {
        scanned.push(&item.unwrap());
    }
    (pushed.finish("x"), scanned.finish("x"))
}

async fn behaviour(storage: Arc<dyn Storage>, writer: impl Fn(&str) -> Arc<dyn Storage>) {
    let st = storage.as_ref();
    let all = ScanFilter::default();
    assert_eq!(st.aggregate(&all).await.unwrap().calls, 0);
    assert!(collect(st, &all).await.is_empty());

    // Appends, single and batched; a rich record survives the round trip.
    let r = rich();
    let carol = writer(&r.user);
    carol.append(&r).await.unwrap();
    carol.flush().await.unwrap();
    let mut team_rec = rec("bob", "openai", "gpt-4o", at(10, 12), Some(1_000));
    team_rec.team = Some("ml".into());
    let batch = [
        rec("alice", "openai", "gpt-4o", at(1, 0), Some(333_333_333)),
        rec("alice", "openai", "gpt-4o-mini", at(15, 0), Some(1)),
        rec("bob", "gemini", "mystery-model", at(18, 0), None),
        team_rec,
        rec(
            "alice",
            "openai",
            "gpt-4o",
            Utc.with_ymd_and_hms(2026, 10, 31, 23, 59, 59).unwrap(),
            Some(7),
        ),
    ];
    for user in ["alice", "bob"] {
        let mine: Vec<CostRecord> = batch.iter().filter(|r| r.user == user).cloned().collect();
        let w = writer(user);
        w.append_batch(&mine).await.unwrap();
        w.append_batch(&[]).await.unwrap();
        w.flush().await.unwrap();
    }
    let got = collect(st, &all).await;
    assert_eq!(got.len(), 6);
    assert_eq!(got.iter().find(|g| g.id == r.id), Some(&r), "round trip");
    let agg = st.aggregate(&all).await.unwrap();
    assert_eq!(agg.calls, 6);
    assert_eq!(
        agg.nano_usd,
        Money::from_nanos(42 + 333_333_333 + 1 + 1_000 + 7)
    );
    assert_eq!(agg.unpriced_calls, 1);

    // Every filter, alone and combined.
    let cases: Vec<(ScanFilter, usize)> = vec![
        (
            ScanFilter {
                since: Some(at(10, 12)),
                ..all.clone()
            },
            3,
        ),
        (
            ScanFilter {
                until: Some(at(10, 12)),
                ..all.clone()
            },
            3,
        ),
        (
            ScanFilter {
                since: Some(at(1, 0)),
                until: Some(at(16, 0)),
                ..all.clone()
            },
            4,
        ),
        (
            ScanFilter {
                users: vec!["alice".into()],
                ..all.clone()
            },
            3,
        ),
        (
            ScanFilter {
                users: vec!["alice".into(), "carol".into()],
                ..all.clone()
            },
            4,
        ),
        (
            ScanFilter {
                providers: vec!["gemini".into()],
                ..all.clone()
            },
            1,
        ),
        (
            ScanFilter {
                models: vec!["gpt-4o".into()],
                ..all.clone()
            },
            3,
        ),
        (
            ScanFilter {
                team: Some("ml".into()),
                ..all.clone()
            },
            2,
        ),
        (
            ScanFilter {
                users: vec!["alice".into()],
                models: vec!["gpt-4o".into()],
                since: Some(at(1, 0)),
                ..all.clone()
            },
            1,
        ),
        (
            ScanFilter {
                users: vec!["nobody".into()],
                ..all.clone()
            },
            0,
        ),
    ];
    for (f, n) in &cases {
        let got = collect(st, f).await;
        assert_eq!(got.len(), *n, "{f:?}");
        assert!(got.iter().all(|r| f.matches(r)), "{f:?}");
        assert_eq!(st.aggregate(f).await.unwrap().calls, *n as u64, "{f:?}");
    }

    // The dashboard through the backend equals one fed by a plain scan.
    let now = at(20, 12);
    let budgets = vec![
        Budget::monthly(Money::from_usd(1).unwrap()),
        Budget::total(Money::from_usd(5).unwrap()).scope(Scope::User("bob".into())),
        Budget::rolling_days(
            "week",
            Money::from_usd(1).unwrap(),
            std::num::NonZeroU32::new(7).unwrap(),
        ),
    ];
    for filter in [all.clone(), cases[3].0.clone(), cases[2].0.clone()] {
        let (pushed, scanned) = pushed_and_scanned(st, now, &budgets, &filter).await;
        assert_eq!(pushed, scanned, "{filter:?}");
    }

    // Alerts: marked once, also under a race.
    assert!(!st.alert_fired("monthly:80:2026-11").await.unwrap());
    assert!(st
        .mark_alert("monthly:80:2026-11", &json!({"spent": 1}))
        .await
        .unwrap());
    assert!(!st
        .mark_alert("monthly:80:2026-11", &json!({"spent": 2}))
        .await
        .unwrap());
    assert!(st.alert_fired("monthly:80:2026-11").await.unwrap());
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let s = Arc::clone(&storage);
        tasks.push(tokio::spawn(async move {
            s.mark_alert("total:100:all", &json!({})).await.unwrap()
        }));
    }
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.unwrap());
    }
    assert_eq!(wins, 1, "exactly one of 16 racing marks wins");

    // Reset one user: their records and alerts are archived, others kept.
    let report = st.reset(ResetScope::User("alice".into())).await.unwrap();
    assert_eq!(report.records, 3);
    assert!(report.archived_to.is_some());
    let left = collect(st, &all).await;
    assert_eq!(left.len(), 3);
    assert!(left.iter().all(|r| r.user != "alice"));
    assert!(
        !st.alert_fired("monthly:80:2026-11").await.unwrap(),
        "re-armed"
    );
    assert!(st
        .mark_alert("monthly:80:2026-11", &json!({}))
        .await
        .unwrap());
    // Reset everything.
    let report = st.reset(ResetScope::All).await.unwrap();
    assert_eq!(report.records, 3);
    assert_eq!(st.aggregate(&all).await.unwrap().calls, 0);
    assert!(!st.alert_fired("monthly:80:2026-11").await.unwrap());
    // Appends after a reset start afresh.
    st.append(&rec("alice", "openai", "gpt-4o", at(19, 0), Some(5)))
        .await
        .unwrap();
    st.flush().await.unwrap();
    assert_eq!(
        st.aggregate(&all).await.unwrap().nano_usd,
        Money::from_nanos(5)
    );

    // The 7-day window starts at `now - 7 days` rounded down to the whole
    // second, included, and ends at `now`, included: the same records on
    // every backend, through its own fold or a plain scan.
    let ms = Duration::milliseconds;
    let now = at(20, 12) + ms(250);
    let start = at(13, 12);
    let edge: Vec<CostRecord> = [
        (start - ms(1), 1),
        (start, 2),
        (start + ms(100), 4),
        (now - Duration::days(7), 8),
        (start + ms(251), 16),
        (now, 32),
        (now + ms(1), 64),
    ]
    .iter()
    .map(|&(ts, n)| rec("wendy", "openai", "gpt-4o", ts, Some(n)))
    .collect();
    let w = writer("wendy");
    w.append_batch(&edge).await.unwrap();
    w.flush().await.unwrap();
    let wendy = ScanFilter {
        users: vec!["wendy".into()],
        ..all.clone()
    };
    for filter in [all.clone(), wendy.clone()] {
        let (pushed, scanned) = pushed_and_scanned(st, now, &budgets, &filter).await;
        assert_eq!(pushed, scanned, "{filter:?}");
        let week = pushed.summary.last_7_days;
        if filter == wendy {
            // All but the one before the start and the one after now.
            assert_eq!(
                (week.calls, week.nano_usd),
                (5, Money::from_nanos(2 + 4 + 8 + 16 + 32))
            );
        } else {
            // Alice's record of the 19th too.
            assert_eq!(week.calls, 6);
        }
    }
}

#[tokio::test]
async fn memory_storage_behaves() {
    let st: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    behaviour(Arc::clone(&st), |_| Arc::clone(&st)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jsonl_storage_behaves() {
    let dir = tempfile::tempdir().unwrap();
    let st = JsonlStorage::builder(dir.path())
        .user("alice")
        .build()
        .unwrap();
    let path = dir.path().to_owned();
    behaviour(Arc::new(st), move |user| {
        Arc::new(JsonlStorage::builder(&path).user(user).build().unwrap())
    })
    .await;
}

async fn pg(test: &str) -> Option<PostgresStorage> {
    let url = servers::database_url(test)?;
    let schema = servers::unique("t", test);
    Some(
        PostgresStorage::builder(url)
            .schema(schema)
            .user("alice")
            .connect()
            .await
            .expect("connect to the test database"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_storage_behaves() {
    let Some(st) = pg("behaves").await else {
        return;
    };
    let st: Arc<dyn Storage> = Arc::new(st);
    behaviour(Arc::clone(&st), |_| Arc::clone(&st)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_appends_are_idempotent_by_id() {
    let Some(st) = pg("idempotent").await else {
        return;
    };
    let a = rec("alice", "openai", "gpt-4o", at(1, 0), Some(10));
    let b = rec("bob", "openai", "gpt-4o", at(2, 0), Some(20));
    st.append(&a).await.unwrap();
    st.append(&a).await.unwrap();
    assert_eq!(
        st.insert_batch(&[a.clone(), b.clone(), b.clone()])
            .await
            .unwrap(),
        1
    );
    // A batch larger than one INSERT chunk.
    let many: Vec<CostRecord> = (0..12_000)
        .map(|i| rec("carol", "openai", "gpt-4o-mini", at(3, 0), Some(i)))
        .collect();
    assert_eq!(st.insert_batch(&many).await.unwrap(), 12_000);
    assert_eq!(st.insert_batch(&many).await.unwrap(), 0);
    // A large batch mixing ids already there, new ones and an id repeated
    // within it (its COPY fails and it goes through the staging table),
    // twice on one connection (the staging table is kept, and empty).
    let fresh: Vec<CostRecord> = (0..100)
        .map(|i| rec("dave", "openai", "gpt-4o", at(4, 0), Some(1_000_000 + i)))
        .collect();
    let mut mixed = many[..50].to_vec();
    mixed.extend(fresh.iter().cloned());
    mixed.push(fresh[7].clone());
    let one = PostgresStorage::builder(servers::database_url("idempotent").unwrap())
        .schema(st.schema())
        .max_connections(1)
        .connect()
        .await
        .unwrap();
    assert_eq!(one.insert_batch(&mixed).await.unwrap(), 100);
    assert_eq!(one.insert_batch(&mixed).await.unwrap(), 0);
    let agg = st.aggregate(&ScanFilter::default()).await.unwrap();
    assert_eq!(agg.calls, 12_102);
    assert_eq!(
        agg.nano_usd,
        Money::from_nanos(30 + (0..12_000).sum::<i64>() + (1_000_000..1_000_100).sum::<i64>())
    );
    let mut d = DashboardPass::new(at(20, 0), [], ScanFilter::default());
    d.fold_storage(&st).await.unwrap();
    assert_eq!(d.finish("x").summary.total.calls, 12_102);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_migrations_are_safe_when_processes_start_together() {
    let Some(url) = servers::database_url("migrations") else {
        return;
    };
    let schema = servers::unique("t", "migrate");
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (url, schema) = (url.clone(), schema.clone());
        tasks.push(tokio::spawn(async move {
            // Separate pools: separate sessions, as separate processes have.
            PostgresStorage::builder(url)
                .schema(schema)
                .max_connections(1)
                .connect()
                .await
        }));
    }
    let mut stores = Vec::new();
    for t in tasks {
        stores.push(t.await.unwrap().expect("every process connects"));
    }
    for s in &stores {
        assert_eq!(
            s.schema_version().await.unwrap(),
            PostgresStorage::latest_schema_version()
        );
        assert!(
            s.migrate().await.unwrap().is_empty(),
            "nothing left to migrate"
        );
    }
    stores[0]
        .append(&rec("a", "openai", "gpt-4o", at(1, 0), Some(1)))
        .await
        .unwrap();
    assert_eq!(
        stores[7]
            .aggregate(&ScanFilter::default())
            .await
            .unwrap()
            .calls,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_alert_is_marked_once_across_hosts() {
    let Some(url) = servers::database_url("alerts") else {
        return;
    };
    let schema = servers::unique("t", "alerts");
    let mut hosts = Vec::new();
    for h in 0..4 {
        hosts.push(
            PostgresStorage::builder(url.clone())
                .schema(schema.clone())
                .user(format!("host{h}"))
                .connect()
                .await
                .unwrap(),
        );
    }
    let mut tasks = Vec::new();
    for (h, host) in hosts.iter().enumerate() {
        for _ in 0..8 {
            let host = host.clone();
            tasks.push(tokio::spawn(async move {
                host.mark_alert("monthly:80:2026-11", &json!({ "host": h }))
                    .await
                    .unwrap()
            }));
        }
    }
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.unwrap());
    }
    assert_eq!(wins, 1);
    for host in &hosts {
        assert!(host.alert_fired("monthly:80:2026-11").await.unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_dashboard_push_down_matches_a_scan_over_many_rows() {
    let Some(st) = pg("pushdown").await else {
        return;
    };
    let now = at(20, 12);
    let users = ["alice", "bob", "carol", "dave"];
    let models = [
        ("openai", "gpt-4o"),
        ("openai", "gpt-4o-mini"),
        ("anthropic", "claude-haiku-4-5"),
        ("gemini", "gemini-2.5-flash"),
    ];
    let records: Vec<CostRecord> = (0..20_000u32)
        .map(|i| {
            let (p, m) = models[(i % 4) as usize];
            let ts = now - Duration::minutes(i64::from(i) * 7);
            let mut r = rec(
                users[(i / 3 % 4) as usize],
                p,
                m,
                ts,
                (i % 11 != 0).then_some(i64::from(i) * 997),
            );
            if i % 5 == 0 {
                r.team = Some(format!("t{}", i % 2).into());
            }
            if i % 13 == 0 {
                r.mode = Mode::Batch;
            }
            if i % 17 == 0 {
                r.cached = true;
                r.saved_nano_usd = Some(Money::from_nanos(3));
            }
            r
        })
        .collect();
    st.append_batch(&records).await.unwrap();
    let budgets = vec![
        Budget::monthly(Money::from_usd(100).unwrap()),
        Budget::total(Money::from_usd(100).unwrap()).scope(Scope::Team("t0".into())),
        Budget::monthly(Money::from_usd(100).unwrap())
            .name("gpt")
            .scope(Scope::Model("gpt-4o".into())),
    ];
    let filter = ScanFilter {
        users: vec!["bob".into()],
        since: Some(at(5, 0)),
        ..ScanFilter::default()
    };
    let mut pushed = DashboardPass::new(now, budgets.clone(), filter.clone());
    pushed.fold_storage(&st).await.unwrap();
    let mut scanned = DashboardPass::new(now, budgets, filter);
    for r in &records {
        scanned.push(&ScanItem::Record(r.clone()));
    }
    let (p, s) = (pushed.finish("x"), scanned.finish("x"));
    assert!(p.summary.total.calls > 500, "{}", p.summary.total.calls);
    assert_eq!(p, s);

    // After the rollup is folded: more records one by one and in a batch
    // (retried, so half are duplicates), some after `now`, audio and web
    // search usage, and a `now` and filter bounds in the middle of an hour.
    let mut more: Vec<CostRecord> = Vec::new();
    for i in 0..600u32 {
        let ts = now - Duration::seconds(i64::from(i) * 1_201) + Duration::hours(3);
        let mut r = rec(
            users[(i % 4) as usize],
            "openai",
            "gpt-4o",
            ts,
            Some(i64::from(i) * 31),
        );
        r.usage.input_audio_tokens = u64::from(i % 3);
        r.usage.web_search_requests = u64::from(i % 2);
        if i % 7 == 0 {
            r.team = Some("t0".into());
        }
        more.push(r);
    }
    for r in &more[..20] {
        st.append(r).await.unwrap();
    }
    st.append_batch(&more[..300]).await.unwrap();
    st.append_batch(&more).await.unwrap();
    let mut all = records.clone();
    all.extend(more);
    let now = now + Duration::minutes(17) + Duration::milliseconds(3_500);
    let budgets = vec![
        Budget::monthly(Money::from_usd(100).unwrap()),
        Budget::rolling_days(
            "3d",
            Money::from_usd(100).unwrap(),
            std::num::NonZeroU32::new(3).unwrap(),
        ),
    ];
    for filter in [
        ScanFilter::default(),
        ScanFilter {
            since: Some(at(19, 7) + Duration::seconds(1_800)),
            until: Some(at(20, 13) + Duration::microseconds(1)),
            team: Some("t0".into()),
            ..ScanFilter::default()
        },
    ] {
        let mut pushed = DashboardPass::new(now, budgets.clone(), filter.clone());
        pushed.fold_storage(&st).await.unwrap();
        let mut scanned = DashboardPass::new(now, budgets.clone(), filter);
        for r in &all {
            scanned.push(&ScanItem::Record(r.clone()));
        }
        assert_eq!(pushed.finish("x"), scanned.finish("x"));
    }

    // Resetting one user takes exactly their records out of the dashboard.
    st.reset(ResetScope::User("bob".into())).await.unwrap();
    let mut pushed = DashboardPass::new(now, budgets.clone(), ScanFilter::default());
    pushed.fold_storage(&st).await.unwrap();
    let mut scanned = DashboardPass::new(now, budgets, ScanFilter::default());
    for r in all.iter().filter(|r| r.user != "bob") {
        scanned.push(&ScanItem::Record(r.clone()));
    }
    assert_eq!(pushed.finish("x"), scanned.finish("x"));
}

/// How many rows wait in the rollup's delta table of `st`'s schema.
async fn pending_deltas(url: &str, st: &PostgresStorage) -> i64 {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .query_one(
            &format!("SELECT count(*) FROM \"{}\".rollup_delta", st.schema()),
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_appends_compact_the_rollup_without_a_dashboard() {
    let Some(url) = servers::database_url("compact") else {
        return;
    };
    let open = |schema: String, every: u32| {
        PostgresStorage::builder(url.clone())
            .schema(schema)
            .compact_every(every)
            .connect()
    };
    let schema = servers::unique("t", "compact");
    // Two hosts on one schema, each compacting every 4 appends of its own;
    // and a ledger that never compacts on appends, for comparison.
    let hosts = [
        open(schema.clone(), 4).await.unwrap(),
        open(schema, 4).await.unwrap(),
    ];
    let lazy = open(servers::unique("t", "compact_off"), 0).await.unwrap();
    let users = ["alice", "bob", "carol"];
    let now = at(20, 12);
    let mut all = Vec::new();
    let mut most = 0;
    for round in 0..30u32 {
        // One single append and one batch (100 records over 10 hours and 3
        // users: at most 30 delta rows) per host and round, concurrently.
        let mut tasks = Vec::new();
        for (h, host) in hosts.iter().enumerate() {
            let i = round * 2 + h as u32;
            let one = rec(
                users[(i % 3) as usize],
                "openai",
                "gpt-4o",
                now - Duration::minutes(i64::from(i) * 13),
                Some(i64::from(i) * 101),
            );
            let batch: Vec<CostRecord> = (0..100u32)
                .map(|k| {
                    let mut r = rec(
                        users[(k % 3) as usize],
                        "anthropic",
                        "claude-haiku-4-5",
                        now - Duration::hours(i64::from(i % 40) * 10 + i64::from(k % 10))
                            - Duration::seconds(i64::from(k)),
                        (k % 9 != 0).then_some(i64::from(i * 1_000 + k)),
                    );
                    r.cached = k % 7 == 0;
                    r
                })
                .collect();
            all.push(one.clone());
            all.extend(batch.iter().cloned());
            let host = host.clone();
            tasks.push(tokio::spawn(async move {
                host.append(&one).await.unwrap();
                host.append_batch(&batch).await.unwrap();
            }));
            lazy.append(&all[all.len() - 101]).await.unwrap();
            lazy.append_batch(&all[all.len() - 100..]).await.unwrap();
        }
        for t in tasks {
            t.await.unwrap();
        }
        most = most.max(pending_deltas(&url, &hosts[0]).await);
    }
    // Without compaction on appends the delta table keeps every append's
    // rows; with it, each host folds everyone's every second round (a host
    // that finds the other folding skips its turn), so it never holds more
    // than a few rounds' worth.
    let grown = pending_deltas(&url, &lazy).await;
    assert!(grown >= 30 * 2 * 2, "{grown}");
    assert!(
        most * 6 <= grown,
        "the delta table grew to {most} rows ({grown} uncompacted)"
    );

    // The figures are those of a raw scan, on either host, before and after
    // an explicit compaction; and on the ledger that never compacted.
    let budgets = vec![
        Budget::monthly(Money::from_usd(100).unwrap()),
        Budget::rolling_days(
            "3d",
            Money::from_usd(100).unwrap(),
            std::num::NonZeroU32::new(3).unwrap(),
        ),
    ];
    let mut scanned = DashboardPass::new(now, budgets.clone(), ScanFilter::default());
    for r in &all {
        scanned.push(&ScanItem::Record(r.clone()));
    }
    let scanned = scanned.finish("x");
    assert_eq!(scanned.summary.total.calls, 6_060);
    let dashboard = |st: PostgresStorage| {
        let budgets = budgets.clone();
        async move {
            let mut pushed = DashboardPass::new(now, budgets, ScanFilter::default());
            pushed.fold_storage(&st).await.unwrap();
            pushed.finish("x")
        }
    };
    assert_eq!(dashboard(lazy.clone()).await, scanned);
    assert_eq!(dashboard(hosts[1].clone()).await, scanned);
    assert!(hosts[0].compact().await.unwrap().is_some());
    assert_eq!(pending_deltas(&url, &hosts[0]).await, 0);
    assert_eq!(hosts[1].compact().await.unwrap(), Some(0));
    assert_eq!(dashboard(hosts[0].clone()).await, scanned);
    // `migrate` (what `cost-tracker migrate` runs) compacts too.
    let dave = rec("dave", "openai", "gpt-4o", now, Some(5));
    lazy.append_batch(&all[..200]).await.unwrap();
    lazy.append(&dave).await.unwrap();
    assert!(pending_deltas(&url, &lazy).await > 0);
    assert!(lazy.migrate().await.unwrap().is_empty());
    assert_eq!(pending_deltas(&url, &lazy).await, 0);
    all.push(dave);
    let mut scanned = DashboardPass::new(now, budgets.clone(), ScanFilter::default());
    for r in &all {
        scanned.push(&ScanItem::Record(r.clone()));
    }
    assert_eq!(dashboard(lazy).await, scanned.finish("x"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_import_from_jsonl_twice_has_no_duplicates() {
    let Some(st) = pg("import").await else { return };
    let dir = tempfile::tempdir().unwrap();
    for user in ["alice", "bob"] {
        let j = JsonlStorage::builder(dir.path())
            .user(user)
            .build()
            .unwrap();
        let recs: Vec<CostRecord> = (0..50)
            .map(|i| {
                rec(
                    user,
                    "openai",
                    "gpt-4o",
                    at(1 + i % 20, 0),
                    Some(i64::from(i) * 10),
                )
            })
            .collect();
        j.append_batch(&recs).await.unwrap();
        j.mark_alert(&format!("{user}:monthly:80"), &json!({"u": user}))
            .await
            .unwrap();
        j.flush().await.unwrap();
    }
    // A torn line and the legacy file.
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("costs_bob.jsonl"))
        .unwrap();
    f.write_all(b"{\"not\": \"a record\"}\n").unwrap();
    std::fs::write(
        dir.path().join("costs.json"),
        r#"[{"timestamp": "2026-11-02T10:00:00Z", "model": "gpt-4o", "prompt_tokens": 10, "completion_tokens": 5, "cost": 0.25}]"#,
    )
    .unwrap();
    let source = JsonlStorage::builder(dir.path())
        .user("legacy")
        .build()
        .unwrap();
    let first = st.import_jsonl(&source).await.unwrap();
    assert_eq!(
        (first.read, first.inserted, first.duplicates),
        (101, 101, 0)
    );
    assert_eq!((first.corrupt, first.alerts), (1, 2));
    assert_eq!(first.quarantined.len(), 1);
    let second = st.import_jsonl(&source).await.unwrap();
    assert_eq!(
        (
            second.read,
            second.inserted,
            second.duplicates,
            second.alerts
        ),
        (101, 0, 101, 0)
    );
    let all = ScanFilter::default();
    let pg_total = st.aggregate(&all).await.unwrap();
    let jsonl_total = source.aggregate(&all).await.unwrap();
    assert_eq!(
        (pg_total.calls, pg_total.nano_usd),
        (jsonl_total.calls, jsonl_total.nano_usd)
    );
    assert_eq!(
        pg_total.nano_usd,
        Money::from_nanos(2 * 12_250 + 250_000_000)
    );
    assert!(st.alert_fired("alice:monthly:80").await.unwrap());
    // The dashboards agree too.
    let now = at(20, 0);
    let mut a = DashboardPass::new(
        now,
        [Budget::monthly(Money::from_usd(1).unwrap())],
        all.clone(),
    );
    a.fold_storage(&st).await.unwrap();
    let mut b = DashboardPass::new(now, [Budget::monthly(Money::from_usd(1).unwrap())], all);
    source.fold_blocking(&mut b).unwrap();
    let (a, b) = (a.finish("x"), b.finish("x"));
    assert_eq!(a.summary.total, b.summary.total);
    assert_eq!(a.summary.by_user, b.summary.by_user);
    assert_eq!(a.budgets, b.budgets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_reset_archives_and_never_deletes() {
    let Some(st) = pg("archive").await else {
        return;
    };
    let url = servers::database_url("archive").unwrap();
    st.append_batch(&[
        rec("alice", "openai", "gpt-4o", at(1, 0), Some(1)),
        rec("bob", "openai", "gpt-4o", at(1, 0), Some(2)),
    ])
    .await
    .unwrap();
    let r = st.reset(ResetScope::User("alice".into())).await.unwrap();
    assert_eq!(r.records, 1);
    // Nothing to archive: an empty report, no archive row.
    assert_eq!(
        st.reset(ResetScope::User("alice".into()))
            .await
            .unwrap()
            .records,
        0
    );
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let q = |t: &str| format!("SELECT count(*) FROM \"{}\".{t}", st.schema());
    let n: i64 = client
        .query_one(&q("records_archive"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    let n: i64 = client.query_one(&q("archives"), &[]).await.unwrap().get(0);
    assert_eq!(n, 1);
    st.reset(ResetScope::All).await.unwrap();
    let n: i64 = client
        .query_one(&q("records_archive"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2, "both records kept in the archive");
}
