//! `cost-tracker batch` end to end: the simulated provider (across OS
//! processes) and the Gemini Batch API on wiremock.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::prelude::*;
use costlayer::ledger::CostRecord;
use costlayer::{Mode, Money};
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[cfg(feature = "postgres")]
use costlayer::ledger::Storage as _;

#[cfg(feature = "postgres")]
#[path = "support/servers.rs"]
mod servers;

const KEY: &str = "AIzaSy-SECRET-0123456789abcdefghijk";

const CLEARED: &[&str] = &[
    "COSTLAYER_CONFIG",
    "COSTLAYER_DATA_DIR",
    "COSTLAYER_USER",
    "COSTLAYER_TEAM",
    "COSTLAYER_MONTHLY_BUDGET",
    "COSTLAYER_TOTAL_BUDGET",
    "COSTLAYER_ALERT_EMAILS",
    "COSTLAYER_SMTP_HOST",
    "COSTLAYER_WEBHOOK_URL",
    "COSTLAYER_PRICES",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "GEMINI_BASE_URL",
];

/// `cost-tracker batch ARGS` in `dir`, as alice, ledger in `dir/ledger`,
/// blocking budgets (from `dir/block.toml`), simulated jobs of 2.5 s.
fn batch(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::cargo_bin("cost-tracker").expect("binary");
    for v in CLEARED {
        c.env_remove(v);
    }
    c.current_dir(dir)
        .env("COSTLAYER_USER", "alice")
        .env("COSTLAYER_SIMULATED_BATCH_MS", "2500");
    fs::write(dir.join("block.toml"), "[budget]\naction = \"block\"\n").expect("config");
    c.arg("batch").args(args);
    c.arg("--data-dir").arg(dir.join("ledger"));
    c.arg("--config").arg(dir.join("block.toml"));
    c
}

fn run(c: &mut Command) -> (bool, String, String) {
    let out = c.output().expect("runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn records(dir: &Path) -> Vec<CostRecord> {
    match fs::read_to_string(dir.join("ledger").join("costs_alice.jsonl")) {
        Ok(text) => text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).expect("record"))
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn input(dir: &Path, model: &str, n: usize) -> PathBuf {
    let p = dir.join("in.jsonl");
    let text: String = (0..n)
        .map(|i| {
            format!(
                "{}\n",
                json!({"custom_id": format!("r{i}"), "request": {"model": model,
                    "messages": [{"role": "user", "content": format!("question {i}")}], "max_tokens": 64}})
            )
        })
        .collect();
    fs::write(&p, text).expect("input");
    p
}

#[test]
fn simulated_job_end_to_end_recorded_once_across_processes() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let inp = input(dir, "gpt-4o-mini", 3);
    let inp = inp.to_str().expect("utf8");

    let (ok, out, err) = run(&mut batch(
        dir,
        &[
            "submit",
            "--provider",
            "simulated",
            "--input",
            inp,
            "--json",
        ],
    ));
    assert!(ok, "{out}{err}");
    let sub: Value = serde_json::from_str(&out).expect("json");
    let id = sub["id"].as_str().expect("id").to_owned();
    assert_eq!(sub["requests"], 3);
    // 3 × (prompt + 64 output) at batch rates, held in both default budgets.
    assert!(sub["estimate_nano_usd"].as_i64().expect("priced") > 0);
    assert_eq!(sub["hold"]["nano_usd"], sub["estimate_nano_usd"]);
    assert_eq!(sub["hold"]["budgets"], json!(["total", "monthly"]));

    let (ok, out, err) = run(&mut batch(dir, &["status", &id, "--json"]));
    assert!(ok, "{out}{err}");
    let st: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(st["provider"], "simulated");
    assert_eq!(st["released"], false);

    // Results before the end: refused, nothing recorded.
    let (ok, _, err) = run(&mut batch(dir, &["results", &id]));
    assert!(!ok);
    assert!(err.contains("batch wait"), "{err}");

    // Two processes fetching the results of the ended job at once: each
    // result is recorded by exactly one of them.
    std::thread::sleep(std::time::Duration::from_millis(2600));
    let children: Vec<_> = (0..2)
        .map(|i| {
            batch(
                dir,
                &[
                    "results",
                    &id,
                    "--output",
                    &format!("out{i}.jsonl"),
                    "--json",
                ],
            )
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn")
        })
        .collect();
    let mut new = 0;
    for c in children {
        let out = c.wait_with_output().expect("waits");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).expect("json");
        new += v["newly_recorded"].as_u64().expect("n");
        assert_eq!(
            v["newly_recorded"].as_u64().expect("n") + v["already_recorded"].as_u64().expect("n"),
            3
        );
    }
    assert_eq!(new, 3);
    let recs = records(dir);
    assert_eq!(recs.len(), 3);
    assert!(recs
        .iter()
        .all(|r| r.mode == Mode::Batch && r.provider == "simulated"));

    // wait on an ended job: not a terminal, so plain lines; nothing more recorded.
    let (ok, out, err) = run(&mut batch(dir, &["wait", &id, "--interval", "0.05"]));
    assert!(ok, "{out}{err}");
    assert!(
        out.contains(&format!("{id} completed: 3/3 done (100%)")),
        "{out}"
    );
    assert!(out.contains("recorded: 0 new"), "{out}");
    assert_eq!(records(dir).len(), 3);
    let rows: Vec<Value> = fs::read_to_string(dir.join("out0.jsonl"))
        .expect("written")
        .lines()
        .map(|l| serde_json::from_str(l).expect("row"))
        .collect();
    assert_eq!(rows.len(), 3);
    let ids: Vec<_> = recs.iter().map(|r| r.id.to_string()).collect();
    for row in &rows {
        assert!(ids.contains(&row["record_id"].as_str().expect("id").to_owned()));
        assert!(row["text"].is_string() && row["usd"].is_string());
    }

    let (ok, out, _) = run(&mut batch(dir, &["list"]));
    assert!(ok);
    assert!(out.contains(&id) && out.contains("released"), "{out}");
}

#[test]
fn refusals_bad_input_budget_and_a_corrupt_registry() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    // A malformed line: exit 2, its line number, nothing registered.
    fs::write(dir.join("bad.jsonl"), "{\"custom_id\":\"a\",\"request\":{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}}\n{\"custom_id\":\n").expect("write");
    let out = batch(
        dir,
        &["submit", "--provider", "simulated", "--input", "bad.jsonl"],
    )
    .output()
    .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2: not JSON"), "{err}");

    // Over the blocking monthly budget: exit 1, a clear message, nothing sent.
    let inp = input(dir, "gpt-4o", 2);
    let out = batch(
        dir,
        &[
            "submit",
            "--provider",
            "simulated",
            "--input",
            inp.to_str().expect("utf8"),
            "--monthly-budget",
            "0.0001",
        ],
    )
    .output()
    .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("BudgetExceeded")
            && err.contains("monthly")
            && err.contains("nothing was uploaded"),
        "{err}"
    );
    assert!(
        !dir.join("ledger/batches/simulated").exists()
            || fs::read_dir(dir.join("ledger/batches/simulated"))
                .expect("dir")
                .next()
                .is_none()
    );

    // A job, then a corrupt registry: reported, recovered from the provider's list.
    let (ok, out, err) = run(&mut batch(
        dir,
        &[
            "submit",
            "--provider",
            "simulated",
            "--input",
            inp.to_str().expect("utf8"),
            "--json",
        ],
    ));
    assert!(ok, "{out}{err}");
    let id = serde_json::from_str::<Value>(&out).expect("json")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    fs::write(
        dir.join("ledger/batches/registry.json"),
        "\u{0}\u{0}garbage",
    )
    .expect("corrupt");
    let (ok, out, err) = run(&mut batch(dir, &["list", "--provider", "simulated"]));
    assert!(ok, "{out}{err}");
    assert!(err.contains("was corrupt"), "{err}");
    assert!(
        out.contains("recovered 1 job(s)") && out.contains(&id),
        "{out}"
    );
    // The recovered job is followed by id as before.
    let (ok, out, err) = run(&mut batch(dir, &["wait", &id, "--interval", "0.05"]));
    assert!(ok, "{out}{err}");
    assert_eq!(records(dir).len(), 2);
}

fn gemini_op(state: &str, done: bool, ok: u64, output: Option<Value>) -> Value {
    let mut v = json!({"name": "batches/cli1", "done": done, "metadata": {"state": state,
        "batchStats": {"requestCount": "2", "successfulRequestCount": ok.to_string(), "failedRequestCount": "0"}}});
    if let Some(o) = output {
        v["response"] = o;
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_job_through_the_base_url() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1beta/models/gemini-2.5-flash:batchGenerateContent"))
        .and(wiremock::matchers::header("x-goog-api-key", KEY))
        .respond_with(ResponseTemplate::new(200).set_body_json(gemini_op(
            "BATCH_STATE_PENDING",
            false,
            0,
            None,
        )))
        .expect(1)
        .mount(&server)
        .await;
    // A network hiccup while polling is retried.
    Mock::given(method("GET"))
        .and(path("/v1beta/batches/cli1"))
        .respond_with(ResponseTemplate::new(500).set_body_json(
            json!({"error": {"code": 500, "message": "internal", "status": "INTERNAL"}}),
        ))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let resp = |text: &str| {
        json!({"candidates": [{"content": {"parts": [{"text": text}], "role": "model"}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 1000, "candidatesTokenCount": 100, "totalTokenCount": 1100}, "modelVersion": "gemini-2.5-flash"})
    };
    Mock::given(method("GET"))
        .and(path("/v1beta/batches/cli1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(gemini_op(
            "BATCH_STATE_SUCCEEDED",
            true,
            2,
            Some(json!({
            "inlinedResponses": {"inlinedResponses": [
                {"response": resp("one"), "metadata": {"key": "r0"}},
                {"response": resp("two"), "metadata": {"key": "r1"}}
            ]}})),
        )))
        .mount(&server)
        .await;
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().to_owned();
    let uri = server.uri();
    let (sub, wait) = tokio::task::spawn_blocking(move || {
        let inp = input(&dir, "gemini-2.5-flash", 2);
        let with_env = |c: &mut Command| {
            c.env("GEMINI_API_KEY", KEY).env("GEMINI_BASE_URL", &uri);
        };
        let mut s = batch(
            &dir,
            &[
                "submit",
                "--provider",
                "gemini",
                "--input",
                inp.to_str().expect("utf8"),
            ],
        );
        with_env(&mut s);
        let sub = run(&mut s);
        let mut w = batch(
            &dir,
            &["wait", "batches/cli1", "--interval", "0.05", "--json"],
        );
        with_env(&mut w);
        let wait = run(&mut w);
        (sub, (wait, records(&dir)))
    })
    .await
    .expect("joins");
    assert!(sub.0, "{}{}", sub.1, sub.2);
    assert!(
        sub.1
            .contains("submitted batches/cli1 (gemini, 2 requests)"),
        "{}",
        sub.1
    );
    assert!(sub.1.contains("hold: $"), "{}", sub.1);
    let ((ok, out, err), recs) = wait;
    assert!(ok, "{out}{err}");
    assert!(!out.contains(KEY) && !err.contains(KEY));
    let v: Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(v["state"], "completed");
    assert_eq!(v["newly_recorded"], 2);
    assert_eq!(v["released"], true);
    // Each: 1000 × $0.15/M + 100 × $1.25/M = $0.000275 at batch rates.
    assert_eq!(recs.len(), 2);
    for r in &recs {
        assert_eq!(r.nano_usd, Some("0.000275".parse::<Money>().expect("usd")));
        assert_eq!(r.provider, "gemini");
    }
}

/// `batch` on the PostgreSQL ledger and book (`--database-url`, as `chat`):
/// the hold is in the database's book, the results land in the database
/// once (two `results` runs), nothing in the JSONL ledger.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_results_land_in_postgres_once() {
    use futures_util::StreamExt as _;
    let Some(url) = servers::database_url("cli_batch_postgres") else {
        return;
    };
    let schema = servers::unique("t", "batch");
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().to_owned();
    let inp = input(&dir, "gpt-4o-mini", 3);
    let pg_batch = |args: &[&str]| {
        let mut c = batch(&dir, args);
        c.env("COSTLAYER_SIMULATED_BATCH_MS", "300")
            .env("COSTLAYER_DATABASE_SCHEMA", &schema)
            .env_remove("COSTLAYER_DATABASE_URL")
            .args(["--database-url", &url]);
        run(&mut c)
    };
    let (ok, out, err) = pg_batch(&[
        "submit",
        "--provider",
        "simulated",
        "--input",
        inp.to_str().expect("utf8"),
        "--json",
    ]);
    assert!(ok, "{out}{err}");
    let sub: Value = serde_json::from_str(&out).expect("json");
    let id = sub["id"].as_str().expect("id").to_owned();
    assert_eq!(sub["hold"]["budgets"], json!(["total", "monthly"]));

    // The hold is in the database's book while the job runs.
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connects");
    tokio::spawn(conn);
    let held = client
        .query_one(
            &format!("SELECT count(*) FROM \"{schema}\".book_holds"),
            &[],
        )
        .await
        .expect("the book's holds table");
    assert!(held.get::<_, i64>(0) >= 1, "the hold is in PostgreSQL");

    let (ok, out, err) = pg_batch(&["wait", &id, "--interval", "0.05", "--json"]);
    assert!(ok, "{out}{err}");
    let v: Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(v["newly_recorded"], 3);
    assert_eq!(v["released"], true);
    let (ok, out, err) = pg_batch(&["results", &id, "--output", "r.jsonl", "--json"]);
    assert!(ok, "{out}{err}");
    let v: Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(v["newly_recorded"], 0);
    assert_eq!(v["already_recorded"], 3);

    let st = costlayer::ledger::PostgresStorage::builder(&url)
        .schema(&schema)
        .connect()
        .await
        .expect("pg");
    let mut stream = st
        .scan(&costlayer::ledger::ScanFilter::default())
        .await
        .expect("scan");
    let mut recs = Vec::new();
    while let Some(item) = stream.next().await {
        if let costlayer::ledger::ScanItem::Record(r) = item.expect("item") {
            recs.push(r);
        }
    }
    assert_eq!(recs.len(), 3, "each result once");
    assert!(recs
        .iter()
        .all(|r| r.mode == Mode::Batch && r.user == "alice" && r.nano_usd.is_some()));
    let mut customs: Vec<_> = recs
        .iter()
        .filter_map(|r| r.tags.get("batch_custom_id").cloned())
        .collect();
    customs.sort();
    assert_eq!(customs, vec!["r0", "r1", "r2"]);
    assert!(records(&dir).is_empty(), "nothing in the JSONL ledger");
}

/// `batch submit --provider openai --api responses`: the job runs on
/// `/v1/responses`; `wait` (the provider from the registry) reads the
/// Response objects by the batch's endpoint, reasoning tokens exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_responses_job_through_the_base_url() {
    const OPENAI_KEY: &str = "sk-test-SECRET-cli-0123456789abcdef";
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/files"))
        .and(wiremock::matchers::header(
            "authorization",
            format!("Bearer {OPENAI_KEY}").as_str(),
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": "file-in", "object": "file", "purpose": "batch"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let batch_obj = |status: &str, out: Option<&str>, done: u64| {
        json!({"id": "batch_cli", "object": "batch", "endpoint": "/v1/responses",
            "input_file_id": "file-in", "completion_window": "24h", "status": status,
            "output_file_id": out, "error_file_id": null,
            "request_counts": {"total": 2, "completed": done, "failed": 0}})
    };
    Mock::given(method("POST"))
        .and(path("/v1/batches"))
        .and(wiremock::matchers::body_json(
            json!({"input_file_id": "file-in",
            "endpoint": "/v1/responses", "completion_window": "24h"}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(batch_obj("validating", None, 0)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/batches/batch_cli"))
        .respond_with(ResponseTemplate::new(200).set_body_json(batch_obj(
            "completed",
            Some("file-out"),
            2,
        )))
        .mount(&server)
        .await;
    let line = |id: &str| {
        json!({"id": format!("br_{id}"), "custom_id": id, "error": null,
            "response": {"status_code": 200, "request_id": "req", "body": {
                "id": "resp_1", "object": "response", "status": "completed", "model": "gpt-4o-mini",
                "output": [{"type": "message", "id": "m", "role": "assistant", "status": "completed",
                    "content": [{"type": "output_text", "text": "ok", "annotations": []}]}],
                "usage": {"input_tokens": 1000, "input_tokens_details": {"cached_tokens": 0},
                    "output_tokens": 100, "output_tokens_details": {"reasoning_tokens": 40},
                    "total_tokens": 1100}}}})
    };
    Mock::given(method("GET"))
        .and(path("/v1/files/file-out/content"))
        .respond_with(ResponseTemplate::new(200).set_body_string(format!(
            "{}\n{}\n",
            line("r0"),
            line("r1")
        )))
        .mount(&server)
        .await;
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().to_owned();
    let uri = format!("{}/v1", server.uri());
    let (sub, wait, wrong, recs) = tokio::task::spawn_blocking(move || {
        let inp = input(&dir, "gpt-4o-mini", 2);
        let inp = inp.to_str().expect("utf8").to_owned();
        let with_env = |c: &mut Command| {
            c.env("OPENAI_API_KEY", OPENAI_KEY)
                .env("OPENAI_BASE_URL", &uri);
        };
        let mut w = batch(
            &dir,
            &[
                "submit",
                "--provider",
                "anthropic",
                "--api",
                "responses",
                "--input",
                &inp,
            ],
        );
        with_env(&mut w);
        let wrong = w.output().expect("runs");
        let mut s = batch(
            &dir,
            &[
                "submit",
                "--provider",
                "openai",
                "--api",
                "responses",
                "--input",
                &inp,
                "--json",
            ],
        );
        with_env(&mut s);
        let sub = run(&mut s);
        let mut w = batch(&dir, &["wait", "batch_cli", "--interval", "0.05", "--json"]);
        with_env(&mut w);
        let wait = run(&mut w);
        (sub, wait, wrong, records(&dir))
    })
    .await
    .expect("joins");
    assert_eq!(wrong.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("--api responses is OpenAI's"));
    assert!(sub.0, "{}{}", sub.1, sub.2);
    let v: Value = serde_json::from_str(sub.1.trim()).expect("json");
    assert_eq!(v["id"], "batch_cli");
    let (ok, out, err) = wait;
    assert!(ok, "{out}{err}");
    assert!(!out.contains(OPENAI_KEY) && !err.contains(OPENAI_KEY));
    let v: Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(v["newly_recorded"], 2);
    assert_eq!(recs.len(), 2);
    for r in &recs {
        assert_eq!(r.usage.reasoning_tokens, 40);
        assert_eq!(r.mode, Mode::Batch);
        // 1000 × $0.075/M + 100 × $0.30/M = $0.000105 at batch rates.
        assert_eq!(r.nano_usd, Some("0.000105".parse::<Money>().expect("usd")));
    }
}

/// `s` quoted for `sh`.
#[cfg(unix)]
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `batch wait` on a terminal (a real pseudo-terminal from util-linux
/// `script`) draws the indicatif bar: the job's id and state, completed/total,
/// elapsed; then the final lines. Without a terminal: plain periodic lines,
/// no bar.
#[cfg(unix)]
#[test]
fn wait_draws_a_bar_on_a_terminal_and_plain_lines_otherwise() {
    if Command::new("script").arg("--version").output().is_err() {
        // util-linux `script` gives the test its pseudo-terminal.
        panic!("util-linux `script` is needed for this test: install util-linux (apt-get install bsdutils)");
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let inp = input(dir, "gpt-4o-mini", 3);
    let submit = |dir: &Path| {
        let (ok, out, err) = run(batch(
            dir,
            &[
                "submit",
                "--provider",
                "simulated",
                "--input",
                inp.to_str().expect("utf8"),
                "--json",
            ],
        )
        .env("COSTLAYER_SIMULATED_BATCH_MS", "1500"));
        assert!(ok, "{out}{err}");
        let v: Value = serde_json::from_str(&out).expect("json");
        v["id"].as_str().expect("id").to_owned()
    };

    // On a terminal.
    let id = submit(dir);
    let bin = assert_cmd::cargo::cargo_bin("cost-tracker");
    let cmd = [
        bin.to_str().expect("utf8"),
        "batch",
        "wait",
        &id,
        "--interval",
        "0.1",
        "--data-dir",
        dir.join("ledger").to_str().expect("utf8"),
        "--config",
        dir.join("block.toml").to_str().expect("utf8"),
    ]
    .map(sh_quote)
    .join(" ");
    let mut c = Command::new("script");
    for v in CLEARED {
        c.env_remove(v);
    }
    let out = c
        .args(["-qfec", &cmd, "/dev/null"])
        .current_dir(dir)
        .env("COSTLAYER_USER", "alice")
        .env("COSTLAYER_SIMULATED_BATCH_MS", "1500")
        .env("TERM", "xterm-256color")
        .env("COLUMNS", "160")
        .output()
        .expect("script runs");
    let tty = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{tty}");
    if std::env::var_os("COSTLAYER_SHOW_TTY").is_some() {
        eprintln!("{tty:?}");
    }
    // The bar: its message, the drawn bar, completed/total and elapsed.
    assert!(tty.contains(&format!("{id} completed [")), "{tty:?}");
    assert!(
        tty.contains("==============================] 3/3 elapsed"),
        "{tty:?}"
    );
    assert!(
        tty.contains(&format!("{id} in_progress [")),
        "while running: {tty:?}"
    );
    // The final lines after the bar.
    assert!(
        tty.contains(&format!("{id} simulated completed: 3/3 done")),
        "{tty:?}"
    );
    assert!(tty.contains("recorded: 3 new"), "{tty:?}");
    // No plain progress lines on a terminal.
    assert!(!tty.contains("%), elapsed"), "{tty:?}");
    assert_eq!(records(dir).len(), 3);

    // Not a terminal: plain lines, no bar.
    let id = submit(dir);
    let (ok, out, err) =
        run(batch(dir, &["wait", &id, "--interval", "0.1"])
            .env("COSTLAYER_SIMULATED_BATCH_MS", "1500"));
    assert!(ok, "{out}{err}");
    assert!(
        out.contains(&format!("{id} validating: 0/3 done (0%), elapsed")),
        "{out}"
    );
    assert!(out.contains(&format!("{id} in_progress: ")), "{out}");
    assert!(
        out.contains(&format!("{id} completed: 3/3 done (100%), elapsed")),
        "{out}"
    );
    assert!(out.contains("recorded: 3 new"), "{out}");
    assert!(
        !out.contains("] 3/3") && !err.contains("] 3/3"),
        "{out}{err}"
    );
    assert_eq!(records(dir).len(), 6);
}
