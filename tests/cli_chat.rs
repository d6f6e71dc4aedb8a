//! `cost-tracker chat`: one call through the full stack, against wiremock
//! servers on loopback (via `*_BASE_URL` and a dummy key) and offline on the
//! simulated provider. Each test checks the request reached the mock (or
//! did not), the printed cost against a hand-computed price, and the ledger
//! file.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use costlayer::ledger::CostRecord;
use predicates::prelude::*;
use serde_json::{json, Value};
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "sk-test-dummy-key-7f3a9c";

/// Every variable that could leak in from the developer's environment.
const CLEARED: &[&str] = &[
    "COSTLAYER_CONFIG",
    "COSTLAYER_DATA_DIR",
    "COSTLAYER_TEAM",
    "COSTLAYER_MONTHLY_BUDGET",
    "COSTLAYER_TOTAL_BUDGET",
    "COSTLAYER_ALERT_EMAILS",
    "COSTLAYER_SMTP_HOST",
    "COSTLAYER_WEBHOOK_URL",
    "COSTLAYER_PRICES",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_ORG_ID",
    "OPENAI_PROJECT_ID",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "GEMINI_BASE_URL",
];

/// `cost-tracker chat` in `dir` (so no stray costlayer.toml is read), as
/// user alice, with the ledger in `dir/ledger`.
fn chat(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("cost-tracker").unwrap();
    c.current_dir(dir).env("COSTLAYER_USER", "alice");
    for v in CLEARED {
        c.env_remove(v);
    }
    c.arg("chat").arg("--data-dir").arg(dir.join("ledger"));
    c
}

fn ledger_path(dir: &Path) -> PathBuf {
    dir.join("ledger").join("costs_alice.jsonl")
}

/// Every record in alice's ledger (none if the file does not exist).
fn records(dir: &Path) -> Vec<CostRecord> {
    match fs::read_to_string(ledger_path(dir)) {
        Ok(text) => text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn stdout_json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap()
}

// The async tests run the blocking command on a multi-threaded runtime so
// the mock server keeps answering meanwhile.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_through_the_base_url_prints_the_exact_cost_and_records_it() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .and(body_partial_json(json!({
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "Be terse."},
                {"role": "user", "content": "What is 2+2?"}
            ],
            "max_completion_tokens": 64,
            "temperature": 0.5
        })))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("x-request-id", "req_cli_1")
                .set_body_json(json!({
                    "id": "chatcmpl-cli1",
                    "object": "chat.completion",
                    "created": 1_735_689_600,
                    "model": "gpt-4o-mini-2024-07-18",
                    "choices": [{
                        "index": 0,
                        "message": {"role": "assistant", "content": "4", "refusal": null},
                        "logprobs": null,
                        "finish_reason": "stop"
                    }],
                    "usage": {
                        "prompt_tokens": 1200,
                        "completion_tokens": 300,
                        "total_tokens": 1500,
                        "prompt_tokens_details": {"cached_tokens": 200, "audio_tokens": 0},
                        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}
                    }
                })),
        )
        .expect(1)
        .mount(&server)
        .await;

    let tmp = tempfile::tempdir().unwrap();
    let out = chat(tmp.path())
        .env("OPENAI_API_KEY", KEY)
        .env("OPENAI_BASE_URL", format!("{}/v1", server.uri()))
        .args(["--provider", "openai", "--model", "gpt-4o-mini"])
        .args(["--system", "Be terse.", "--max-tokens", "64"])
        .args(["--temperature", "0.5", "What is 2+2?"])
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stdout}\n{stderr}");

    // gpt-4o-mini: input $0.15/M, cache read $0.075/M, output $0.60/M.
    // 1000 × 150 + 200 × 75 + 300 × 600 nano-dollars = 345,000 = $0.000345.
    assert!(stdout.starts_with("4\n"), "{stdout}");
    assert!(
        stdout.contains("cost: $0.000345 (345000 nano-USD)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("usage: 1000 input + 200 cache read, 300 output"),
        "{stdout}"
    );
    assert!(!stdout.contains(KEY) && !stderr.contains(KEY));

    let recs = records(tmp.path());
    assert_eq!(recs.len(), 1, "{recs:?}");
    let r = &recs[0];
    assert_eq!(
        (r.provider.as_str(), r.model.as_str()),
        ("openai", "gpt-4o-mini")
    );
    assert_eq!(r.user, "alice");
    assert_eq!(r.nano_usd.map(|m| m.nanos()), Some(345_000));
    assert_eq!(r.usage.cache_read_tokens, 200);
    assert_eq!(r.request_id.as_deref(), Some("req_cli_1"));
    assert!(stdout.contains(&format!("recorded: {}", r.id)), "{stdout}");
    let line = fs::read_to_string(ledger_path(tmp.path())).unwrap();
    assert!(!line.contains(KEY));
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_json_has_the_buckets_the_exact_cost_and_the_record_id() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(header("x-api-key", KEY))
        .and(header("anthropic-version", "2023-06-01"))
        .and(body_partial_json(json!({
            "model": "claude-haiku-4-5",
            "max_tokens": 128,
            "system": "You are concise.",
            "messages": [{"role": "user", "content": "Summarise the doc"}]
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "msg_01CliTest",
            "type": "message",
            "role": "assistant",
            "model": "claude-haiku-4-5-20251001",
            "content": [{"type": "text", "text": "A short summary."}],
            "stop_reason": "end_turn",
            "stop_sequence": null,
            "usage": {
                "input_tokens": 100,
                "cache_creation_input_tokens": 400,
                "cache_read_input_tokens": 2000,
                "cache_creation": {"ephemeral_5m_input_tokens": 400, "ephemeral_1h_input_tokens": 0},
                "output_tokens": 50,
                "service_tier": "standard"
            }
        })))
        .expect(1)
        .mount(&server)
        .await;

    let tmp = tempfile::tempdir().unwrap();
    let out = chat(tmp.path())
        .env("ANTHROPIC_API_KEY", KEY)
        .env("ANTHROPIC_BASE_URL", server.uri())
        .args(["--provider", "anthropic", "--model", "claude-haiku-4-5"])
        .args(["--system", "You are concise.", "--max-tokens", "128"])
        .args(["--json", "Summarise the doc"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = stdout_json(&out);
    // claude-haiku-4-5: input $1/M, cache read $0.10/M, 5-minute write
    // $1.25/M, output $5/M. 100 × 1000 + 2000 × 100 + 400 × 1250 + 50 × 5000
    // = 100,000 + 200,000 + 500,000 + 250,000 = 1,050,000 nano-dollars.
    assert_eq!(v["nano_usd"], 1_050_000);
    assert_eq!(v["usd"], "0.001050000");
    assert_eq!(v["text"], "A short summary.");
    assert_eq!(v["provider"], "anthropic");
    assert_eq!(v["model"], "claude-haiku-4-5");
    assert_eq!(v["billed_model"], "claude-haiku-4-5-20251001");
    assert_eq!(v["cached"], false);
    assert_eq!(
        v["usage"],
        json!({
            "input_tokens": 100,
            "output_tokens": 50,
            "cache_read_tokens": 2000,
            "cache_write_5m_tokens": 400,
            "cache_write_1h_tokens": 0,
            "reasoning_tokens": 0
        })
    );
    let recs = records(tmp.path());
    assert_eq!(recs.len(), 1);
    assert_eq!(v["record_id"], recs[0].id.to_string());
    assert_eq!(recs[0].nano_usd.map(|m| m.nanos()), Some(1_050_000));
    assert_eq!(recs[0].request_id.as_deref(), Some("msg_01CliTest"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_through_the_base_url_is_priced_with_thoughts_as_output() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1beta/models/gemini-2.5-flash:generateContent"))
        .and(header("x-goog-api-key", KEY))
        .and(body_partial_json(json!({
            "contents": [{"role": "user", "parts": [{"text": "Plan a trip"}]}],
            "generationConfig": {"maxOutputTokens": 512}
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "candidates": [{
                "content": {"parts": [{"text": "Day 1: ..."}], "role": "model"},
                "finishReason": "STOP",
                "index": 0
            }],
            "usageMetadata": {
                "promptTokenCount": 1000,
                "cachedContentTokenCount": 400,
                "candidatesTokenCount": 100,
                "thoughtsTokenCount": 200,
                "totalTokenCount": 1300
            },
            "modelVersion": "gemini-2.5-flash",
            "responseId": "resp-cli-gemini"
        })))
        .expect(1)
        .mount(&server)
        .await;

    let tmp = tempfile::tempdir().unwrap();
    let out = chat(tmp.path())
        .env("GEMINI_API_KEY", KEY)
        .env("GEMINI_BASE_URL", server.uri())
        .args(["--provider", "gemini", "--model", "gemini-2.5-flash"])
        .args(["--max-tokens", "512", "--json", "Plan a trip"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = stdout_json(&out);
    // gemini-2.5-flash: input $0.30/M, cache read $0.03/M, output $2.50/M.
    // (1000 - 400) × 300 + 400 × 30 + (100 + 200) × 2500
    // = 180,000 + 12,000 + 750,000 = 942,000 nano-dollars.
    assert_eq!(v["nano_usd"], 942_000);
    assert_eq!(v["usd"], "0.000942000");
    assert_eq!(v["usage"]["output_tokens"], 300);
    assert_eq!(v["usage"]["reasoning_tokens"], 200);
    let recs = records(tmp.path());
    assert_eq!(recs.len(), 1);
    assert_eq!(v["record_id"], recs[0].id.to_string());
    assert_eq!(recs[0].provider, "gemini");
    assert_eq!(recs[0].nano_usd.map(|m| m.nanos()), Some(942_000));
}

#[test]
fn simulated_works_offline_and_is_recorded_apart_from_real_spend() {
    let tmp = tempfile::tempdir().unwrap();
    let out = chat(tmp.path())
        .args(["--provider", "simulated", "--model", "gpt-4o-mini"])
        .args(["--max-tokens", "40", "--json", "Say hi"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = stdout_json(&out);
    let input = v["usage"]["input_tokens"].as_i64().unwrap();
    let output = v["usage"]["output_tokens"].as_i64().unwrap();
    assert!(input > 0 && (1..=40).contains(&output), "{v}");
    // gpt-4o-mini: 150 nano-dollars an input token, 600 an output token.
    assert_eq!(v["nano_usd"], input * 150 + output * 600);
    assert_eq!(v["provider"], "simulated");
    let recs = records(tmp.path());
    assert_eq!(recs.len(), 1);
    assert_eq!(v["record_id"], recs[0].id.to_string());
    assert_eq!(recs[0].provider, "simulated");
    assert_eq!(recs[0].model, "gpt-4o-mini");
    assert_eq!(
        recs[0].nano_usd.map(|m| m.nanos()),
        Some(input * 150 + output * 600)
    );

    // A second call appends: the ledger is append-only, one line a call.
    chat(tmp.path())
        .args(["--provider", "simulated", "Say hi again"])
        .assert()
        .success()
        .stdout(predicate::str::contains("cost: $0.0"));
    assert_eq!(records(tmp.path()).len(), 2);
}

#[test]
fn a_dash_reads_the_prompt_from_stdin_and_the_tpm_limit_refuses_what_cannot_fit() {
    let tmp = tempfile::tempdir().unwrap();
    let out = chat(tmp.path())
        .args(["--provider", "simulated", "--json", "-"])
        .write_stdin("A prompt long enough to count: one two three four five six seven.")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(stdout_json(&out)["usage"]["input_tokens"].as_u64().unwrap() > 10);
    assert_eq!(records(tmp.path()).len(), 1);

    // A 10-tokens-a-minute limit can never admit this request: refused
    // before the provider, not billed.
    chat(tmp.path())
        .args([
            "--provider",
            "simulated",
            "--tpm",
            "10",
            "--max-tokens",
            "100",
            "hi",
        ])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("never be admitted"));
    assert_eq!(records(tmp.path()).len(), 1);
}

#[test]
fn the_config_file_decides_where_and_as_whom_the_call_is_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(
        tmp.path().join("costlayer.toml"),
        "data_dir = \"shared\"\nuser = \"carol\"\n",
    )
    .unwrap();
    let mut c = Command::cargo_bin("cost-tracker").unwrap();
    c.current_dir(tmp.path());
    for v in CLEARED.iter().chain(&["COSTLAYER_USER"]) {
        c.env_remove(v);
    }
    c.args(["chat", "--provider", "simulated", "hello"])
        .assert()
        .success();
    let path = tmp.path().join("shared/costs_carol.jsonl");
    let text = fs::read_to_string(&path).unwrap();
    let rec: CostRecord = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(rec.user, "carol");
}

#[test]
fn a_missing_key_names_the_variable_and_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    for (provider, var) in [
        ("openai", "OPENAI_API_KEY"),
        ("anthropic", "ANTHROPIC_API_KEY"),
        ("gemini", "GEMINI_API_KEY"),
    ] {
        chat(tmp.path())
            .args(["--provider", provider, "hi"])
            .assert()
            .code(2)
            .stdout(predicate::str::is_empty())
            .stderr(predicate::str::contains(var));
    }
    assert!(records(tmp.path()).is_empty());
}

#[test]
fn bad_flags_are_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    chat(tmp.path())
        .args(["--provider", "simulated", "--temperature", "3", "hi"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("from 0 to 2"));
    chat(tmp.path())
        .args(["--provider", "simulated", "--max-tokens", "0", "hi"])
        .assert()
        .code(2);
    chat(tmp.path())
        .args(["--provider", "mistral", "hi"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("simulated"));
    chat(tmp.path())
        .args(["--provider", "simulated", "   "])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("prompt is empty"));
    assert!(records(tmp.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_error_exits_1_without_the_key_and_is_not_billed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "error": {
                "message": "Incorrect API key provided: sk-test-***************9c. You can find your API key at https://platform.openai.com/account/api-keys.",
                "type": "invalid_request_error",
                "param": null,
                "code": "invalid_api_key"
            }
        })))
        // A 401 is not retryable: exactly one request.
        .expect(1)
        .mount(&server)
        .await;

    let tmp = tempfile::tempdir().unwrap();
    let out = chat(tmp.path())
        .env("OPENAI_API_KEY", KEY)
        .env("OPENAI_BASE_URL", format!("{}/v1", server.uri()))
        .args(["--provider", "openai", "hi"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("rejected the credentials"), "{stderr}");
    assert!(!stderr.contains(KEY), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(records(tmp.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_budget_stops_the_call_before_the_provider() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&server)
        .await;

    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("block.toml");
    fs::write(&config, "[budget]\naction = \"block\"\n").unwrap();
    let out = chat(tmp.path())
        .env("OPENAI_API_KEY", KEY)
        .env("OPENAI_BASE_URL", format!("{}/v1", server.uri()))
        .arg("--config")
        .arg(&config)
        .args(["--monthly-budget", "0.000001"])
        .args(["--provider", "openai", "--max-tokens", "100", "hi"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("BudgetExceeded"), "{stderr}");
    assert!(stderr.contains("monthly"), "{stderr}");
    assert!(records(tmp.path()).is_empty());
    assert!(server.received_requests().await.unwrap().is_empty());

    // The same budget with the default action (alert only) lets it through.
    let out = chat(tmp.path())
        .args(["--monthly-budget", "0.000001"])
        .args(["--provider", "simulated", "--json", "hi"])
        .output()
        .unwrap();
    assert!(out.status.success());
    // The alert goes to stderr; stdout stays one JSON object.
    let v = stdout_json(&out);
    assert!(v["nano_usd"].as_i64().unwrap() > 1_000);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("monthly"), "{stderr}");
}
