//! End-to-end tests of `cost-tracker` on ledgers generated in tempdirs.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use chrono::{DateTime, Duration, TimeZone, Utc};
use costlayer::ledger::CostRecord;
use costlayer::{Mode, Money, Usage};
use predicates::prelude::*;
use serde_json::Value;

const NOW: &str = "2026-11-16T12:00:00Z";

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(NOW)
        .unwrap()
        .with_timezone(&Utc)
}

/// A command with a clean environment: fixed clock, no colours, 80 columns,
/// run inside `dir` (so no stray costlayer.toml is read).
fn cli(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("cost-tracker").unwrap();
    c.current_dir(dir)
        .env("COSTLAYER_NOW", NOW)
        .env("NO_COLOR", "1")
        .env("COLUMNS", "80")
        .env("COSTLAYER_USER", "alice");
    for v in [
        "COSTLAYER_DATA_DIR",
        "COSTLAYER_MONTHLY_BUDGET",
        "COSTLAYER_TOTAL_BUDGET",
        "COSTLAYER_ALERT_EMAILS",
        "COSTLAYER_CONFIG",
    ] {
        c.env_remove(v);
    }
    c
}

fn rec(
    user: &str,
    provider: &str,
    model: &str,
    ts: DateTime<Utc>,
    nanos: Option<i64>,
) -> CostRecord {
    let mut r = CostRecord::new(user, provider, model, Usage::new(1_000, 100));
    r.ts = ts;
    r.nano_usd = nanos.map(Money::from_nanos);
    r
}

fn write_ledger(dir: &Path, user: &str, records: &[CostRecord]) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    let path = dir.join(format!("costs_{user}.jsonl"));
    let mut text = String::new();
    for r in records {
        text.push_str(&serde_json::to_string(r).unwrap());
        text.push('\n');
    }
    fs::write(&path, text).unwrap();
    path
}

/// A deterministic pseudo-random ledger over several providers, models and
/// 60 days, with awkward nano amounts.
fn generated(user: &str, n: u64) -> Vec<CostRecord> {
    let models = [
        ("openai", "gpt-4o"),
        ("openai", "gpt-4o-mini"),
        ("anthropic", "claude-sonnet-4-5"),
        ("gemini", "gemini-2.5-pro"),
    ];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ n;
    (0..n)
        .map(|i| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let (p, m) = models[(x >> 33) as usize % models.len()];
            let ts = now() - Duration::seconds(((x >> 20) % (60 * 86_400)) as i64);
            let nanos = if i % 17 == 0 {
                None
            } else {
                Some(((x >> 7) % 50_000_000_007) as i64)
            };
            let mut r = rec(user, p, m, ts, nanos);
            if i % 5 == 0 {
                r.mode = Mode::Batch;
            }
            r
        })
        .collect()
}

/// The budget named `name` in a `--json` dashboard.
fn budget<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == name)
        .unwrap_or_else(|| panic!("no budget {name} in {v}"))
}

fn json(dir: &Path, args: &[&str]) -> Value {
    let out = cli(dir).args(args).arg("--json").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn sum(records: &[&CostRecord]) -> (u64, i64) {
    (
        records.len() as u64,
        records.iter().map(|r| r.cost()).sum::<Money>().nanos(),
    )
}

#[test]
fn json_equals_the_sum_of_the_records() {
    let tmp = tempfile::tempdir().unwrap();
    let records = generated("alice", 500);
    write_ledger(&tmp.path().join("data/metadata"), "alice", &records);
    let v = json(tmp.path(), &["--dashboard"]);

    let all: Vec<&CostRecord> = records.iter().collect();
    let (calls, nanos) = sum(&all);
    assert_eq!(v["total_calls"], calls);
    assert_eq!(v["total_nano_usd"], nanos);
    let month: Vec<&CostRecord> = records
        .iter()
        .filter(|r| r.ts >= Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap())
        .collect();
    assert_eq!(v["month_nano_usd"], sum(&month).1);
    let mut by_model: BTreeMap<&str, Vec<&CostRecord>> = BTreeMap::new();
    let mut by_provider: BTreeMap<&str, Vec<&CostRecord>> = BTreeMap::new();
    for r in &records {
        by_model.entry(&r.model).or_default().push(r);
        by_provider.entry(&r.provider).or_default().push(r);
    }
    for (m, rs) in &by_model {
        let (c, n) = sum(rs);
        assert_eq!(v["by_model"][m]["calls"], c, "{m}");
        assert_eq!(v["by_model"][m]["nano_usd"], n, "{m}");
    }
    for (p, rs) in &by_provider {
        assert_eq!(v["by_provider"][p]["nano_usd"], sum(rs).1, "{p}");
    }
    assert_eq!(v["by_user"]["alice"]["nano_usd"], nanos);
    assert_eq!(
        v["unpriced_calls"],
        records.iter().filter(|r| r.nano_usd.is_none()).count()
    );
    assert_eq!(v["batch"]["calls"], 100);
    assert_eq!(v["corrupted_lines"], 0);
    assert_eq!(v["budgets"].as_array().unwrap().len(), 2);
}

#[test]
fn team_aggregates_every_users_file_and_user_view_does_not() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data/metadata");
    let a = generated("alice", 40);
    let b = generated("bob", 30);
    write_ledger(&dir, "alice", &a);
    write_ledger(&dir, "bob", &b);
    let team = json(tmp.path(), &["--dashboard", "--team"]);
    assert_eq!(team["total_calls"], 70);
    let (_, na) = sum(&a.iter().collect::<Vec<_>>());
    let (_, nb) = sum(&b.iter().collect::<Vec<_>>());
    assert_eq!(team["total_nano_usd"], na + nb);
    assert_eq!(team["by_user"]["alice"]["calls"], 40);
    assert_eq!(team["by_user"]["bob"]["nano_usd"], nb);

    let alice = json(tmp.path(), &["--dashboard"]);
    assert_eq!(alice["total_calls"], 40);
    assert!(alice["by_user"].get("bob").is_none());
    let bob = json(tmp.path(), &["dashboard", "--user", "bob"]);
    assert_eq!(bob["total_nano_usd"], nb);
}

#[test]
fn filters_select_provider_model_and_dates() {
    let tmp = tempfile::tempdir().unwrap();
    let records = generated("alice", 300);
    write_ledger(&tmp.path().join("data/metadata"), "alice", &records);

    let v = json(tmp.path(), &["--dashboard", "--provider", "openai"]);
    let openai: Vec<&CostRecord> = records.iter().filter(|r| r.provider == "openai").collect();
    assert_eq!(
        (
            v["total_calls"].as_u64().unwrap(),
            v["total_nano_usd"].as_i64().unwrap()
        ),
        sum(&openai)
    );
    assert_eq!(v["by_provider"].as_object().unwrap().len(), 1);

    let v = json(
        tmp.path(),
        &[
            "--dashboard",
            "--model",
            "gpt-4o-mini",
            "--model",
            "gemini-2.5-pro",
        ],
    );
    let two: Vec<&CostRecord> = records
        .iter()
        .filter(|r| r.model == "gpt-4o-mini" || r.model == "gemini-2.5-pro")
        .collect();
    assert_eq!(v["total_nano_usd"].as_i64().unwrap(), sum(&two).1);

    // --until a day includes that whole day.
    let v = json(
        tmp.path(),
        &[
            "--dashboard",
            "--since",
            "2026-10-01",
            "--until",
            "2026-10-31",
        ],
    );
    let oct: Vec<&CostRecord> = records
        .iter()
        .filter(|r| {
            r.ts >= Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap()
                && r.ts < Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap()
        })
        .collect();
    assert!(!oct.is_empty());
    assert_eq!(
        (
            v["total_calls"].as_u64().unwrap(),
            v["total_nano_usd"].as_i64().unwrap()
        ),
        sum(&oct)
    );
    assert_eq!(v["month_nano_usd"], 0);
}

fn simple_ledger(dir: &Path) {
    let ts = Utc.with_ymd_and_hms(2026, 11, 10, 9, 30, 0).unwrap();
    write_ledger(
        dir,
        "alice",
        &[
            rec("alice", "openai", "gpt-4o", ts, Some(120_000_000_000)),
            rec(
                "alice",
                "anthropic",
                "claude-sonnet-4-5",
                ts,
                Some(40_000_000_000),
            ),
            rec(
                "alice",
                "openai",
                "gpt-4o",
                ts - Duration::days(40),
                Some(20_000_000_000),
            ),
        ],
    );
}

#[test]
fn dashboard_totals_and_percentages_are_exact() {
    let tmp = tempfile::tempdir().unwrap();
    simple_ledger(&tmp.path().join("data/metadata"));
    cli(tmp.path())
        .arg("--dashboard")
        .assert()
        .success()
        .stdout(predicate::str::contains("Total calls:     3"))
        .stdout(predicate::str::contains("Total cost:      $180.00"))
        .stdout(predicate::str::contains("Monthly cost:    $160.00"))
        // openai 140/180 = 77.78%, anthropic 40/180 = 22.22% (largest
        // remainder: the column sums to 100.00%)
        .stdout(predicate::str::is_match(r"openai\s+2\s+\$140\.00\s+77\.78%").unwrap())
        .stdout(predicate::str::is_match(r"anthropic\s+1\s+\$40\.00\s+22\.22%").unwrap())
        // default budgets: monthly $200 (160 = 80%), total $1000 (180 = 18%)
        .stdout(predicate::str::contains(
            "Spent $160.00 of $200.00, $40.00 remaining",
        ))
        .stdout(predicate::str::contains("]  80.00%"))
        .stdout(predicate::str::contains("]  18.00%"))
        .stdout(predicate::str::contains("MODEL BREAKDOWN").not())
        .stdout(predicate::str::contains("\x1b[").not());
}

#[test]
fn budget_overrides_change_the_dashboard_flags_beat_env_beat_file() {
    let tmp = tempfile::tempdir().unwrap();
    simple_ledger(&tmp.path().join("data/metadata"));
    cli(tmp.path())
        .args([
            "--monthly-budget",
            "500",
            "--total-budget",
            "2000",
            "--dashboard",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "monthly $500.00 (alert at 80.00% = $400.00)",
        ))
        .stdout(predicate::str::contains(
            "Spent $160.00 of $500.00, $340.00 remaining",
        ))
        .stdout(predicate::str::contains("]  32.00%"))
        .stdout(predicate::str::contains(
            "Spent $180.00 of $2000.00, $1820.00 remaining",
        ))
        .stdout(predicate::str::contains("]   9.00%"));

    fs::write(
        tmp.path().join("costlayer.toml"),
        "[budget]\nmonthly = \"100\"\ntotal = \"150\"\n[alerts]\nemails = [\"ops@example.com\"]\n",
    )
    .unwrap();
    let file = json(tmp.path(), &["--dashboard"]);
    assert_eq!(
        budget(&file, "monthly")["limit_nano_usd"],
        100_000_000_000i64
    );
    assert_eq!(budget(&file, "monthly")["status"], "exceeded");
    assert_eq!(
        budget(&file, "total")["remaining_nano_usd"],
        -30_000_000_000i64
    );
    assert_eq!(file["recipients"][0], "ops@example.com");

    let out = cli(tmp.path())
        .env("COSTLAYER_MONTHLY_BUDGET", "300")
        .args(["--dashboard", "--json"])
        .output()
        .unwrap();
    let env: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        budget(&env, "monthly")["limit_nano_usd"],
        300_000_000_000i64
    );
    assert_eq!(budget(&env, "total")["limit_nano_usd"], 150_000_000_000i64);

    let out = cli(tmp.path())
        .env("COSTLAYER_MONTHLY_BUDGET", "300")
        .args(["--dashboard", "--json", "--monthly-budget", "400"])
        .output()
        .unwrap();
    let flag: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        budget(&flag, "monthly")["limit_nano_usd"],
        400_000_000_000i64
    );
    assert_eq!(budget(&flag, "monthly")["status"], "ok");

    // `none` turns a budget off, whatever the file says.
    let off = json(tmp.path(), &["--dashboard", "--total-budget", "none"]);
    let names: Vec<&str> = off["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["monthly"]);
}

#[test]
fn verbose_adds_sections() {
    let tmp = tempfile::tempdir().unwrap();
    simple_ledger(&tmp.path().join("data/metadata"));
    cli(tmp.path())
        .args(["--dashboard", "--verbose"])
        .assert()
        .success()
        .stdout(predicate::str::contains("MODEL BREAKDOWN"))
        .stdout(predicate::str::contains("USERS"))
        .stdout(predicate::str::contains("CACHE SAVINGS"))
        .stdout(predicate::str::contains("PROJECTION"))
        .stdout(predicate::str::contains("DAILY SPEND"));
}

#[test]
fn missing_and_empty_ledgers_show_an_empty_dashboard() {
    let tmp = tempfile::tempdir().unwrap();
    cli(tmp.path())
        .args(["--dashboard", "--data-dir", "nowhere"])
        .assert()
        .success()
        .stdout(predicate::str::contains("nowhere (user alice)\n"))
        .stdout(predicate::str::contains("Total calls:     0"))
        .stdout(predicate::str::contains(
            "No calls recorded for user alice in nowhere",
        ))
        .stdout(predicate::str::contains("The directory does not exist yet"));
    fs::create_dir_all(tmp.path().join("empty")).unwrap();
    fs::write(tmp.path().join("empty/costs_alice.jsonl"), "").unwrap();
    let v = json(
        tmp.path(),
        &["--dashboard", "--data-dir", "empty", "--team"],
    );
    assert_eq!(v["total_calls"], 0);
    assert_eq!(v["total_nano_usd"], 0);
}

#[test]
fn corrupted_lines_are_skipped_and_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data/metadata");
    let path = write_ledger(&dir, "alice", &generated("alice", 10));
    let mut text = fs::read_to_string(&path).unwrap();
    text.push_str("{\"v\":1,\"id\":\"torn\n");
    text.push_str(
        &serde_json::to_string(&rec("alice", "openai", "gpt-4o", now(), Some(5))).unwrap(),
    );
    text.push('\n');
    fs::write(&path, text).unwrap();
    let v = json(tmp.path(), &["--dashboard"]);
    assert_eq!(v["total_calls"], 11);
    assert_eq!(v["corrupted_lines"], 1);
    cli(tmp.path())
        .arg("--dashboard")
        .assert()
        .success()
        .stdout(predicate::str::contains("Corrupted lines: 1 skipped"));
}

#[test]
fn csv_round_trips_and_neutralises_formulas() {
    let tmp = tempfile::tempdir().unwrap();
    let mut records = generated("alice", 50);
    records[3].user = "alice".into();
    records[3].model = "=HYPERLINK(\"http://evil\")".into();
    records[4].team = Some("+team".into());
    records[4].request_id = Some("@req, with \"quotes\"\nand newline".into());
    records[5].tags.insert("project".into(), "-x".into());
    records[6].cached = true;
    records[6].saved_nano_usd = Some(Money::from_nanos(123_456_789));
    records[6].price_version = Some("2026-11-01:gpt-4o".into());
    write_ledger(&tmp.path().join("data/metadata"), "alice", &records);
    cli(tmp.path())
        .args(["--export", "out.csv"])
        .assert()
        .success()
        .stdout(predicate::str::contains("Exported 50 records to out.csv"));

    let mut rdr = csv::Reader::from_path(tmp.path().join("out.csv")).unwrap();
    let header: Vec<String> = rdr.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header, costlayer::report::CSV_HEADER);
    let rows: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), records.len());
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let unquote = |s: &str| s.strip_prefix('\'').unwrap_or(s).to_owned();
    for (row, r) in rows.iter().zip(&records) {
        assert_eq!(row[col("id")], r.id.to_string());
        let ts = DateTime::parse_from_rfc3339(&row[col("ts")]).unwrap();
        assert_eq!(ts.timestamp_millis(), r.ts.timestamp_millis());
        assert_eq!(row[col("user")], r.user);
        assert_eq!(unquote(&row[col("model")]), r.model);
        assert_eq!(row[col("provider")], r.provider);
        assert_eq!(&row[col("mode")], r.mode.as_str());
        assert_eq!(
            row[col("input_tokens")].parse::<u64>().unwrap(),
            r.usage.input_tokens
        );
        assert_eq!(
            row[col("output_tokens")].parse::<u64>().unwrap(),
            r.usage.output_tokens
        );
        let cost = &row[col("cost_usd")];
        match r.nano_usd {
            Some(m) => assert_eq!(cost.parse::<Money>().unwrap(), m),
            None => assert_eq!(cost, ""),
        }
        assert_eq!(row[col("cached")] == *"true", r.cached);
        let tags: BTreeMap<String, String> =
            serde_json::from_str(&unquote(&row[col("tags")])).unwrap();
        assert_eq!(tags, r.tags);
    }
    // Formula cells are neutralised, everything else kept verbatim.
    assert_eq!(&rows[3][col("model")], "'=HYPERLINK(\"http://evil\")");
    assert_eq!(&rows[4][col("team")], "'+team");
    assert_eq!(
        &rows[4][col("request_id")],
        "'@req, with \"quotes\"\nand newline"
    );
    assert_eq!(&rows[6][col("saved_usd")], "0.123456789");
    assert_eq!(&rows[6][col("price_version")], "2026-11-01:gpt-4o");
    let raw = fs::read_to_string(tmp.path().join("out.csv")).unwrap();
    assert!(raw.contains("\r\n"), "RFC 4180 line endings");
    assert!(!tmp.path().join("out.csv.partial").exists());
}

#[test]
fn export_into_a_missing_directory_fails_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    simple_ledger(&tmp.path().join("data/metadata"));
    cli(tmp.path())
        .args(["--export", "no/such/dir/out.csv"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no/such/dir does not exist"));
}

#[test]
fn bad_input_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    cli(tmp.path())
        .args(["--dashboard", "--since", "2026-13-45"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("YYYY-MM-DD"));
    cli(tmp.path())
        .args(["--dashboard", "--monthly-budget", "-5"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("negative"));
    cli(tmp.path())
        .args([
            "--dashboard",
            "--since",
            "2026-11-02",
            "--until",
            "2026-11-01",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is not before --until"));
    cli(tmp.path())
        .args(["--dashboard", "--config", "missing.toml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("missing.toml"));
    cli(tmp.path())
        .env("COSTLAYER_NOW", "yesterday")
        .arg("--dashboard")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("COSTLAYER_NOW"));
    cli(tmp.path()).assert().code(2);
    cli(tmp.path())
        .args(["--reset", "--dashboard"])
        .assert()
        .code(2);
}

#[test]
fn reset_refuses_without_a_tty_and_archives_with_yes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data/metadata");
    let alice = write_ledger(&dir, "alice", &generated("alice", 12));
    let bob = write_ledger(&dir, "bob", &generated("bob", 3));

    // Even "yes" typed into a pipe is not a confirmation.
    cli(tmp.path())
        .arg("--reset")
        .write_stdin("yes\n")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--yes to archive 12 records for alice",
        ));
    assert!(alice.exists());

    let out = cli(tmp.path())
        .args(["--reset", "--yes"])
        .assert()
        .success();
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(
        stdout.contains("Archived 12 records for alice to "),
        "{stdout}"
    );
    assert!(!alice.exists());
    assert!(bob.exists(), "another user's ledger is untouched");
    let archives: Vec<PathBuf> = fs::read_dir(dir.join("archive"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(archives.len(), 1);
    assert!(
        stdout.contains(&*archives[0].file_name().unwrap().to_string_lossy()),
        "{stdout}"
    );
    let archived = fs::read_to_string(archives[0].join("costs_alice.jsonl")).unwrap();
    assert_eq!(archived.lines().count(), 12, "never deleted, moved");

    assert_eq!(json(tmp.path(), &["--dashboard"])["total_calls"], 0);
    assert_eq!(
        json(tmp.path(), &["--dashboard", "--team"])["total_calls"],
        3
    );
    cli(tmp.path())
        .args(["reset", "--yes"])
        .assert()
        .success()
        .stdout(predicate::str::contains("Nothing to archive"));
}

#[test]
fn dashboard_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ledger");
    let ts = |d: u32, h: u32| Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0).unwrap();
    let mut cached = rec("alice", "openai", "gpt-4o-mini", ts(14, 8), Some(0));
    cached.cached = true;
    cached.saved_nano_usd = Some(Money::from_nanos(2_500_000));
    let mut batch = rec(
        "alice",
        "anthropic",
        "claude-haiku-4-5",
        ts(3, 10),
        Some(750_000_000),
    );
    batch.mode = Mode::Batch;
    write_ledger(
        &dir,
        "alice",
        &[
            rec("alice", "openai", "gpt-4o", ts(2, 9), Some(42_125_000_000)),
            rec("alice", "openai", "gpt-4o", ts(9, 17), Some(18_000_000_000)),
            rec(
                "alice",
                "anthropic",
                "claude-sonnet-4-5",
                ts(12, 11),
                Some(25_333_333_333),
            ),
            rec(
                "alice",
                "gemini",
                "gemini-2.5-pro",
                ts(15, 23),
                Some(9_999_999_999),
            ),
            rec("alice", "openai", "gpt-4o", ts(16, 6), Some(3_210_000_000)),
            rec("alice", "acme", "acme-large", ts(16, 7), None),
            rec(
                "alice",
                "openai",
                "gpt-4o",
                Utc.with_ymd_and_hms(2026, 10, 28, 12, 0, 0).unwrap(),
                Some(7_000_000_000),
            ),
            cached,
            batch,
        ],
    );
    let out = cli(tmp.path())
        .env(
            "COSTLAYER_ALERT_EMAILS",
            "ops@example.com, finance@example.com",
        )
        .args([
            "--dashboard",
            "--verbose",
            "--data-dir",
            "ledger",
            "--monthly-budget",
            "120",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let snap = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/dashboard_verbose.txt");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        fs::write(&snap, &text).unwrap();
    }
    let expected =
        fs::read_to_string(&snap).expect("run with UPDATE_SNAPSHOTS=1 to create the snapshot");
    assert_eq!(
        text, expected,
        "dashboard changed; review and re-run with UPDATE_SNAPSHOTS=1"
    );
}
