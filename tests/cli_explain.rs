//! The CLI explains itself: hints on empty views, "did you mean" for
//! filters, per-subcommand help, CLI-phrased errors, exact shares, and the
//! outputs fixed in snapshots (`UPDATE_SNAPSHOTS=1` rewrites them).

#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::Path;
use std::sync::{Arc, Mutex};

use assert_cmd::Command;
use chrono::{DateTime, TimeZone, Utc};
use costlayer::alert::Alert;
use costlayer::budget::{Budget, Severity};
use costlayer::ledger::{CostRecord, MemoryStorage};
use costlayer::mock::SimulatedProvider;
use costlayer::tracker::CostTracker;
use costlayer::{ChatRequest, Message, Money, Usage};
use predicates::prelude::*;
use tower::ServiceExt;

const NOW: &str = "2026-11-16T12:00:00Z";

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
        "COSTLAYER_START_DATE",
        "COSTLAYER_SMTP_HOST",
        "COSTLAYER_PRICES",
    ] {
        c.env_remove(v);
    }
    c
}

fn ts(d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0).unwrap()
}

fn rec(user: &str, provider: &str, model: &str, at: DateTime<Utc>, nanos: i64) -> CostRecord {
    let mut r = CostRecord::new(user, provider, model, Usage::new(1_000, 100));
    r.ts = at;
    r.nano_usd = Some(Money::from_nanos(nanos));
    r
}

fn write_ledger(dir: &Path, user: &str, records: &[CostRecord]) {
    fs::create_dir_all(dir).unwrap();
    let mut text = String::new();
    for r in records {
        text.push_str(&serde_json::to_string(r).unwrap());
        text.push('\n');
    }
    fs::write(dir.join(format!("costs_{user}.jsonl")), text).unwrap();
}

fn stdout(c: &mut Command) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Compares `text` with `tests/snapshots/<name>`, with the temp dir written
/// as `<TMP>`.
fn snapshot(name: &str, text: &str, tmp: &Path) {
    let text = text.replace(&tmp.display().to_string(), "<TMP>");
    let snap = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        fs::write(&snap, &text).unwrap();
    }
    let expected =
        fs::read_to_string(&snap).expect("run with UPDATE_SNAPSHOTS=1 to create the snapshot");
    assert_eq!(
        text, expected,
        "{name} changed; review and re-run with UPDATE_SNAPSHOTS=1"
    );
}

#[test]
fn an_empty_view_names_the_other_ledgers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ledger");
    write_ledger(
        &dir,
        "quickstart",
        &[
            rec("quickstart", "simulated", "gpt-4o", ts(15, 9), 10_700_000),
            rec("quickstart", "simulated", "gpt-4o", ts(15, 10), 0),
        ],
    );
    write_ledger(
        &dir,
        "bob",
        &[rec("bob", "openai", "gpt-4o", ts(14, 9), 1_000_000)],
    );
    let text = stdout(cli(tmp.path()).args(["--dashboard", "--data-dir", "ledger"]));
    snapshot("dashboard_empty_view.txt", &text, tmp.path());
    assert!(
        text.contains("bob (1 call), quickstart (2 calls)"),
        "{text}"
    );
    assert!(text.contains("--user bob, or every user with --team"));
    assert!(text.contains("No calls recorded for user alice in ledger"));
}

#[test]
fn a_missing_directory_is_one_clear_note() {
    let tmp = tempfile::tempdir().unwrap();
    let text = stdout(cli(tmp.path()).args(["--dashboard", "--data-dir", "nowhere"]));
    assert!(
        text.contains("Data:            nowhere (user alice)\n"),
        "{text}"
    );
    assert!(!text.contains("(not found"), "{text}");
    assert!(text.contains("The directory does not exist yet"), "{text}");
}

#[test]
fn filter_typos_get_did_you_mean() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ledger");
    write_ledger(
        &dir,
        "alice",
        &[
            rec("alice", "openai", "gpt-4o-mini", ts(15, 9), 1_000),
            rec("alice", "anthropic", "claude-sonnet-4-5", ts(15, 9), 1_000),
        ],
    );
    let out = cli(tmp.path())
        .args([
            "--dashboard",
            "--data-dir",
            "ledger",
            "--provider",
            "opeani",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: --provider `opeani` matches no call in ledger: did you mean `openai`? \
         (the ledger has: anthropic, openai)\n"
    );
    cli(tmp.path())
        .args(["dashboard", "--data-dir", "ledger", "--model", "gpt-4o-mni"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("did you mean `gpt-4o-mini`?"));
    // A real name with no calls here is not an error: the view says so.
    let text = stdout(cli(tmp.path()).args([
        "--dashboard",
        "--data-dir",
        "ledger",
        "--provider",
        "gemini",
    ]));
    assert!(
        text.contains("--provider `gemini` matches no call: the ledger has: anthropic, openai."),
        "{text}"
    );
    // An alias selects the canonical name the ledger records.
    let v: serde_json::Value = serde_json::from_str(&stdout(cli(tmp.path()).args([
        "--dashboard",
        "--json",
        "--data-dir",
        "ledger",
        "--model",
        "claude-sonnet-4.5",
    ])))
    .unwrap();
    assert_eq!(v["total_calls"], 1);
}

#[test]
fn shares_sum_to_100_and_show_small_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ledger");
    // 21.735% / 78.2645% / 0.0005%: truncation would print 21.73 + 78.26 + 0.00.
    write_ledger(
        &dir,
        "alice",
        &[
            rec(
                "alice",
                "anthropic",
                "claude-sonnet-4-5",
                ts(10, 9),
                21_735_000,
            ),
            rec("alice", "openai", "gpt-4o", ts(11, 9), 78_264_500),
            rec("alice", "gemini", "gemini-2.5-flash-lite", ts(12, 9), 500),
        ],
    );
    let text = stdout(cli(tmp.path()).args([
        "--dashboard",
        "--verbose",
        "--data-dir",
        "ledger",
        "--total-budget",
        "none",
    ]));
    snapshot("dashboard_shares.txt", &text, tmp.path());
    assert!(text.contains("78.265%"), "{text}");
    assert!(text.contains("21.735%"), "{text}");
    assert!(
        text.contains("0.001%") || text.contains("<0.001%"),
        "{text}"
    );
    // The daily rate of a small spend keeps two significant digits.
    assert!(text.contains("$0.014/day"), "{text}");
    assert!(text.contains("no spend"), "{text}");
}

#[test]
fn project_month_and_reachable_recipients_in_the_banner() {
    let tmp = tempfile::tempdir().unwrap();
    let text = stdout(
        cli(tmp.path())
            .env("COSTLAYER_START_DATE", "2026-10-05")
            .env(
                "COSTLAYER_ALERT_EMAILS",
                "ops@example.com, not-an-address, fin@example.com, x@y",
            )
            .env("COSTLAYER_SMTP_HOST", "smtp.example.com")
            .args(["--dashboard", "--data-dir", "ledger"]),
    );
    assert!(
        text.contains("Project month:   2 (started 2026-10-05)"),
        "{text}"
    );
    assert!(
        text.contains("Budget:          month-1-2 $800.00"),
        "{text}"
    );
    assert!(text.contains("2/4 recipients reachable"), "{text}");
    // The flag wins over the variable; no SMTP host: none reachable.
    let text = stdout(
        cli(tmp.path())
            .env("COSTLAYER_ALERT_EMAILS", "ops@example.com")
            .args([
                "dashboard",
                "--start-date",
                "2026-11-16",
                "--data-dir",
                "ledger",
            ]),
    );
    assert!(
        text.contains("Project month:   1 (started 2026-11-16)"),
        "{text}"
    );
    assert!(text.contains("0/1 recipients reachable"), "{text}");
    cli(tmp.path())
        .args(["dashboard", "--start-date", "16/11/2026"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("YYYY-MM-DD"));
}

#[test]
fn subcommand_help_shows_only_what_applies() {
    let tmp = tempfile::tempdir().unwrap();
    let export = stdout(cli(tmp.path()).args(["export", "--help"]));
    for absent in ["--monthly-budget", "--verbose", "--yes", "--json"] {
        assert!(!export.contains(absent), "export --help shows {absent}");
    }
    assert!(export.contains("--force"));
    let reset = stdout(cli(tmp.path()).args(["reset", "--help"]));
    for absent in ["--monthly-budget", "--verbose", "--since", "--provider"] {
        assert!(!reset.contains(absent), "reset --help shows {absent}");
    }
    let dash = stdout(cli(tmp.path()).args(["dashboard", "--help"]));
    assert!(!dash.contains("--yes") && !dash.contains("--force"));
    assert!(dash.contains("--monthly-budget") && dash.contains("--verbose"));
    let top = stdout(cli(tmp.path()).arg("--help"));
    assert!(top.starts_with("See what your LLM calls cost"), "{top}");
    let cost = stdout(cli(tmp.path()).args(["cost", "--help"]));
    assert!(
        cost.contains("Usage: cost-tracker cost [OPTIONS] --model <MODEL>\n"),
        "{cost}"
    );
}

#[test]
fn export_refuses_to_overwrite_without_force() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ledger");
    write_ledger(
        &dir,
        "alice",
        &[rec("alice", "openai", "gpt-4o", ts(15, 9), 1_000)],
    );
    fs::write(tmp.path().join("out.csv"), "keep me").unwrap();
    cli(tmp.path())
        .args(["export", "out.csv", "--data-dir", "ledger"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "out.csv already exists: pass --force to replace it",
        ));
    assert_eq!(
        fs::read_to_string(tmp.path().join("out.csv")).unwrap(),
        "keep me"
    );
    cli(tmp.path())
        .args(["--export", "out.csv", "--force", "--data-dir", "ledger"])
        .assert()
        .success();
    assert!(fs::read_to_string(tmp.path().join("out.csv"))
        .unwrap()
        .contains("gpt-4o"));
}

#[test]
fn a_missing_key_is_explained_for_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let out = cli(tmp.path())
        .env_remove("OPENAI_API_KEY")
        .args(["chat", "--provider", "openai", "--data-dir", "ledger", "hi"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: no OpenAI API key: set OPENAI_API_KEY (export OPENAI_API_KEY=...), \
         or run offline with --provider simulated\n"
    );
}

#[tokio::test]
async fn simulated_calls_are_recorded_as_simulated_and_the_limit_alert_is_critical() {
    let ledger = MemoryStorage::new();
    let alerts: Arc<Mutex<Vec<Alert>>> = Arc::default();
    let seen = alerts.clone();
    let tracker = CostTracker::builder()
        .storage(Arc::new(ledger.clone()))
        .user("alice")
        .budget(Budget::monthly(Money::from_nanos(1_000)))
        .sink(move |a: Alert| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(a);
                Ok(())
            }
        })
        .build()
        .unwrap();
    let llm = costlayer::layer::cost::CostLayer::new(tracker.clone());
    let svc = tower::Layer::layer(&llm, SimulatedProvider::new());
    svc.oneshot(ChatRequest::new("gpt-4o").message(Message::user("hi")))
        .await
        .unwrap();
    tracker.flush_alerts().await;
    assert_eq!(ledger.records()[0].provider, "simulated");
    let alerts = alerts.lock().unwrap();
    let severities: Vec<(u32, Severity)> = alerts
        .iter()
        .map(|a| (a.threshold.basis_points(), a.severity))
        .collect();
    assert_eq!(
        severities,
        [(8_000, Severity::Warning), (10_000, Severity::Critical)]
    );
    assert!(
        alerts[1].message.starts_with("CRITICAL:"),
        "{}",
        alerts[1].message
    );
}

#[test]
fn the_python_tools_lines_are_read_and_bad_ones_quarantined() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ledger");
    fs::create_dir_all(&dir).unwrap();
    let current = serde_json::to_string(&rec("bob", "openai", "gpt-4o", ts(16, 1), 5)).unwrap();
    fs::write(
        dir.join("costs_bob.jsonl"),
        format!(
            "{}\n{}\n{}\n{}\n{current}\n",
            r#"{"timestamp": "2026-11-02T10:30:00.123456", "provider": "anthropic", "model": "claude-sonnet-4-5", "input_tokens": 1000, "output_tokens": 200, "cost": 0.0115}"#,
            r#"{"timestamp": "2026-11-03 08:00:00", "provider": "openai", "model": "gpt-4o", "input_tokens": 10, "output_tokens": 2, "cost": 1.23e-05}"#,
            r#"{"timestamp": "2026-11-04 08:00:00", "model": "gpt-4o", "cost": "0.1"}"#,
            r#"{"timestamp": "2026-11-05 08:00:00", "cost": 0.2}"#,
        ),
    )
    .unwrap();
    let out = cli(tmp.path())
        .args([
            "--dashboard",
            "--json",
            "--user",
            "bob",
            "--data-dir",
            "ledger",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["total_calls"], 4);
    assert_eq!(
        v["total_nano_usd"],
        11_500_000 + 12_300 + 100_000_000 + 5,
        "{v}"
    );
    assert_eq!(v["by_provider"]["anthropic"]["nano_usd"], 11_500_000);
    assert_eq!(v["by_model"]["gpt-4o"]["calls"], 3);
    assert_eq!(v["usage"]["input_tokens"], 1000 + 10 + 1000);
    assert_eq!(v["corrupted_lines"], 1);
    let q = v["quarantined_to"].as_array().unwrap();
    assert_eq!(q.len(), 1);
    // The quarantine keeps the line as it was, one JSON entry per bad line.
    let kept = fs::read_to_string(tmp.path().join(q[0].as_str().unwrap())).unwrap();
    let entry: serde_json::Value = serde_json::from_str(kept.lines().next().unwrap()).unwrap();
    assert!(
        entry["text"].as_str().unwrap().contains(r#""cost": 0.2"#),
        "{kept}"
    );
}

/// Declining the reset prompt (on a real terminal: `script` gives the
/// command a pseudo-terminal) archives nothing and exits 0.
#[test]
fn declining_the_reset_prompt_exits_0_with_nothing_archived() {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: no `script` to give the CLI a terminal");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ledger");
    write_ledger(
        &dir,
        "alice",
        &[rec("alice", "openai", "gpt-4o", ts(15, 9), 1_000)],
    );
    let bin = assert_cmd::cargo::cargo_bin("cost-tracker");
    let line = format!("{} reset --data-dir ledger", bin.display());
    let out = Command::new("script")
        .current_dir(tmp.path())
        .env("COSTLAYER_USER", "alice")
        .env("COSTLAYER_NOW", NOW)
        .args(["-qec", &line, "/dev/null"])
        .write_stdin("no\n")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("Type 'yes' to archive 1 records for alice"),
        "{text}"
    );
    assert!(
        text.contains("Reset cancelled: nothing archived."),
        "{text}"
    );
    assert!(dir.join("costs_alice.jsonl").is_file());
    assert!(!text.contains("error"), "{text}");
}
