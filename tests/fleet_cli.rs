//! `cost-tracker` on a PostgreSQL ledger (feature `postgres`): migrate,
//! import from JSONL (twice: no duplicates), and the dashboard, export and
//! reset giving what they give on the JSONL ledger.
//!
//! Needs `COSTLAYER_TEST_DATABASE_URL` (see tests/support/servers.rs); each
//! test uses its own schema.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use assert_cmd::Command;
use costlayer::ledger::{CostRecord, JsonlStorage, Storage};
use costlayer::{Money, Usage};
use serde_json::Value;

#[path = "support/servers.rs"]
mod servers;

fn cli(dir: &Path, schema: &str) -> Command {
    let mut c = Command::cargo_bin("cost-tracker").unwrap();
    c.current_dir(dir)
        .env("COSTLAYER_NOW", "2026-11-16T12:00:00Z")
        .env("NO_COLOR", "1")
        .env("COSTLAYER_USER", "alice")
        .env("COSTLAYER_DATABASE_SCHEMA", schema)
        .env_remove("COSTLAYER_CONFIG")
        .env_remove("COSTLAYER_DATA_DIR")
        .env_remove("COSTLAYER_DATABASE_URL");
    c
}

/// Runs `args`, then `--database-url` (flags follow the subcommand).
fn run(dir: &Path, url: &str, schema: &str, args: &[&str]) -> assert_cmd::assert::Assert {
    cli(dir, schema)
        .args(args)
        .args(["--database-url", url])
        .assert()
}

fn json(out: &[u8]) -> Value {
    serde_json::from_slice(out).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(out)))
}

async fn seed(dir: &Path) {
    for (user, n) in [("alice", 30), ("bob", 20)] {
        let st = JsonlStorage::builder(dir).user(user).build().unwrap();
        let recs: Vec<CostRecord> = (0..n)
            .map(|i| {
                let mut r = CostRecord::new(user, "openai", "gpt-4o", Usage::new(100, 10));
                r.ts = chrono::DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z")
                    .unwrap()
                    .into();
                r.ts += chrono::Duration::hours(i64::from(i) * 7);
                r.nano_usd = Some(Money::from_nanos(1_000_000 * i64::from(i + 1)));
                r
            })
            .collect();
        st.append_batch(&recs).await.unwrap();
        st.flush().await.unwrap();
    }
    std::fs::write(
        dir.join("costs.json"),
        r#"[{"timestamp": "2026-11-02T10:00:00Z", "model": "gpt-4o-mini", "prompt_tokens": 10, "completion_tokens": 5, "cost": 0.5}]"#,
    )
    .unwrap();
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("costs_bob.jsonl"))
        .unwrap();
    f.write_all(b"this is not json\n").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_twice_then_reports_match_the_jsonl_ledger() {
    let Some(url) = servers::database_url("cli_import") else {
        return;
    };
    let schema = servers::unique("t", "cli");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("metadata");
    std::fs::create_dir(&data).unwrap();
    seed(&data).await;
    let from = data.to_str().unwrap();

    let out = run(tmp.path(), &url, &schema, &["migrate"]).success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(text.contains("up to date at version"), "{text}");
    assert!(
        !text.contains("postgres://"),
        "the URL is never printed: {text}"
    );

    let first = run(
        tmp.path(),
        &url,
        &schema,
        &["import", "--from", from, "--json"],
    )
    .success();
    let first = json(&first.get_output().stdout);
    assert_eq!(
        (first["read"].as_u64(), first["inserted"].as_u64()),
        (Some(51), Some(51))
    );
    assert_eq!(first["corrupt"], 1);
    let second = run(tmp.path(), &url, &schema, &["import", "--from", from]).success();
    let text = String::from_utf8_lossy(&second.get_output().stdout).into_owned();
    assert!(
        text.contains("Imported 0 records") && text.contains("51 already there"),
        "{text}"
    );
    assert!(text.contains("Skipped 1 corrupt lines"), "{text}");

    // The dashboard: the same numbers from PostgreSQL and from the JSONL files.
    let mut jsonl = Command::cargo_bin("cost-tracker").unwrap();
    jsonl
        .current_dir(tmp.path())
        .env("COSTLAYER_NOW", "2026-11-16T12:00:00Z")
        .env("COSTLAYER_USER", "alice")
        .env_remove("COSTLAYER_DATABASE_URL")
        .env_remove("COSTLAYER_CONFIG")
        .args(["--dashboard", "--team", "--json", "--data-dir", from]);
    let j = json(&jsonl.assert().success().get_output().stdout);
    let p = run(
        tmp.path(),
        &url,
        &schema,
        &["--dashboard", "--team", "--json"],
    )
    .success();
    let p = json(&p.get_output().stdout);
    for key in ["total_calls", "total_nano_usd"] {
        assert_eq!(p[key], j[key], "{key}: {p} vs {j}");
    }
    assert_eq!(p["total_calls"], 51);
    assert_eq!(p["budgets"], j["budgets"]);

    // Export: every record as CSV.
    let csv = run(tmp.path(), &url, &schema, &["export", "-", "--team"]).success();
    let rows = String::from_utf8_lossy(&csv.get_output().stdout)
        .lines()
        .count();
    assert_eq!(rows, 52, "header + 51 records");

    // Reset alice: archived, not deleted; the team view keeps bob.
    let r = run(tmp.path(), &url, &schema, &["reset", "--yes", "--json"]).success();
    let r = json(&r.get_output().stdout);
    assert_eq!(
        r["records"], 30,
        "alice's 30 (the legacy record without a user belongs to `legacy`)"
    );
    let p = run(
        tmp.path(),
        &url,
        &schema,
        &["--dashboard", "--team", "--json"],
    )
    .success();
    // bob's 20 and the legacy record.
    assert_eq!(json(&p.get_output().stdout)["total_calls"], 21);
    // The JSONL files are untouched by all of this.
    let st = JsonlStorage::builder(&data).user("alice").build().unwrap();
    assert_eq!(st.aggregate(&Default::default()).await.unwrap().calls, 51);
}

#[test]
fn a_bad_database_url_is_a_usage_error_that_hides_the_password() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(tmp.path(), "mysql://u:hunter2@h/d", "x", &["--dashboard"]).code(2);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        err.contains("--database-url") && !err.contains("hunter2"),
        "{err}"
    );
    let out = run(
        tmp.path(),
        "postgres://u:hunter2@127.0.0.1:1/d",
        "x",
        &["--dashboard"],
    )
    .code(1);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        err.contains("PostgreSQL") && !err.contains("hunter2"),
        "{err}"
    );
}

async fn pg(url: &str, schema: &str) -> costlayer::ledger::PostgresStorage {
    costlayer::ledger::PostgresStorage::builder(url)
        .schema(schema)
        .connect()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_records_to_postgres_from_the_flag_or_the_config_file() {
    let Some(url) = servers::database_url("cli_chat") else {
        return;
    };
    let schema = servers::unique("t", "chat");
    let tmp = tempfile::tempdir().unwrap();
    let chat = |extra: &[&str]| {
        let out = cli(tmp.path(), &schema)
            .args(["chat", "--provider", "simulated", "--model", "gpt-4o-mini"])
            .args(["--data-dir", "ledger", "--json"])
            .args(extra)
            .arg("hello there")
            .assert()
            .success();
        json(&out.get_output().stdout)
    };
    let first = chat(&["--database-url", &url]);
    std::fs::write(
        tmp.path().join("costlayer.toml"),
        format!("storage = \"{url}\"\n"),
    )
    .unwrap();
    let second = chat(&[]);
    let st = pg(&url, &schema).await;
    let mut ids = Vec::new();
    let mut stream = st
        .scan(&costlayer::ledger::ScanFilter::default())
        .await
        .unwrap();
    use futures_util::StreamExt as _;
    while let Some(item) = stream.next().await {
        if let costlayer::ledger::ScanItem::Record(r) = item.unwrap() {
            assert_eq!(r.user, "alice");
            ids.push(r.id.to_string());
        }
    }
    assert_eq!(
        ids,
        vec![
            first["record_id"].as_str().unwrap().to_owned(),
            second["record_id"].as_str().unwrap().to_owned()
        ]
    );
    assert!(
        !tmp.path().join("ledger").join("costs_alice.jsonl").exists(),
        "nothing recorded to JSONL"
    );
    // The human output says where the record went, without the URL.
    let out = cli(tmp.path(), &schema)
        .args([
            "chat",
            "--provider",
            "simulated",
            "--data-dir",
            "ledger",
            "hi",
        ])
        .assert()
        .success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        text.contains(&format!("(schema {schema})")) && text.contains("recorded: "),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_config_opens_the_postgres_ledger_and_book() {
    let Some(url) = servers::database_url("from_config") else {
        return;
    };
    let schema = servers::unique("t", "config");
    let tmp = tempfile::tempdir().unwrap();
    let mut config = costlayer::config::Config::default();
    config.data_dir = tmp.path().join("data");
    config.user = "carol".into();
    config.monthly_budget = Some(Money::from_usd(200).unwrap());
    config
        .apply_env(|k| match k {
            "COSTLAYER_DATABASE_URL" => Some(url.clone()),
            "COSTLAYER_DATABASE_SCHEMA" => Some(schema.clone()),
            _ => None,
        })
        .unwrap();
    let tracker = costlayer::tracker::CostTracker::from_config(&config).unwrap();
    let req = costlayer::ChatRequest::new("gpt-4o-mini").message(costlayer::Message::user("hi"));
    let resp = costlayer::ChatResponse {
        provider: "openai".into(),
        model: "gpt-4o-mini".into(),
        usage: Usage::new(1_000, 100),
        ..Default::default()
    };
    let r = tracker.reserve(&req).await.unwrap();
    tracker.record(&req, &resp, Some(r)).await.unwrap();
    tracker.flush().await.unwrap();
    let st = pg(&url, &schema).await;
    let agg = st
        .aggregate(&costlayer::ledger::ScanFilter::default())
        .await
        .unwrap();
    assert_eq!(agg.calls, 1);
    assert!(!config.data_dir.join("costs_carol.jsonl").exists());
    // The book is the database's: its lines hold the settled spend.
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let row = client
        .query_one(
            &format!("SELECT count(*), coalesce(max(settled), 0) FROM \"{schema}\".book_lines"),
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, i64>(0) >= 1, "the book has its lines");
    assert_eq!(Money::from_nanos(row.get(1)), agg.nano_usd);
    assert!(agg.nano_usd > Money::ZERO);
}
