//! `cost-tracker chat --stream`: the text printed as it arrives, then the
//! cost line; the ledger holds one record, priced as the same call
//! unstreamed; against the simulated provider and a loopback Anthropic.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use assert_cmd::Command;
use costlayer::ledger::CostRecord;
use serde_json::Value;
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn cli(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("cost-tracker").unwrap();
    for (k, _) in std::env::vars() {
        if k.starts_with("COSTLAYER_") || k.ends_with("_API_KEY") || k.ends_with("_BASE_URL") {
            c.env_remove(k);
        }
    }
    c.env("COSTLAYER_USER", "streamer")
        .env("NO_COLOR", "1")
        .arg("chat")
        .arg("--data-dir")
        .arg(dir);
    c
}

fn ledger(dir: &Path) -> Vec<CostRecord> {
    std::fs::read_to_string(dir.join("costs_streamer.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn simulated_stream_prints_text_then_cost_and_records_once() {
    let plain = tempfile::tempdir().unwrap();
    let out = cli(plain.path())
        .args(["--provider", "simulated", "--json", "Stream me a story"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let whole: Value = serde_json::from_slice(&out.stdout).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let out = cli(dir.path())
        .args(["--provider", "simulated", "--stream", "Stream me a story"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let text = whole["text"].as_str().unwrap().trim_end();
    assert!(stdout.starts_with(text), "{stdout}");
    assert!(
        stdout.contains(&format!("({} nano-USD)", whole["nano_usd"])),
        "{stdout}"
    );
    let recs = ledger(dir.path());
    assert_eq!(recs.len(), 1);
    assert_eq!(
        recs[0].nano_usd.unwrap().nanos(),
        whole["nano_usd"].as_i64().unwrap()
    );

    // --stream --json: one object at the end, the same cost.
    let dir = tempfile::tempdir().unwrap();
    let out = cli(dir.path())
        .args([
            "--provider",
            "simulated",
            "--stream",
            "--json",
            "Stream me a story",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let obj: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(obj["nano_usd"], whole["nano_usd"]);
    assert_eq!(obj["text"], whole["text"]);
    assert_eq!(ledger(dir.path()).len(), 1);
}

#[tokio::test]
async fn anthropic_stream_against_loopback() {
    let server = MockServer::start().await;
    let body = concat!(
        "event: message_start\n",
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_cli\",\"model\":\"claude-haiku-4-5-20251001\",\"usage\":{\"input_tokens\":1000,\"cache_read_input_tokens\":0,\"cache_creation_input_tokens\":0,\"output_tokens\":1}}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"streamed hi\"}}\n\n",
        "event: message_delta\n",
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":200}}\n\n",
        "event: message_stop\n",
        "data: {\"type\":\"message_stop\"}\n\n",
    );
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/event-stream")
                .set_body_string(body),
        )
        .expect(1)
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let uri = server.uri();
    let dir_path = dir.path().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        cli(&dir_path)
            .env("ANTHROPIC_API_KEY", "sk-ant-test-cli-stream")
            .env("ANTHROPIC_BASE_URL", uri)
            .args(["--provider", "anthropic", "--stream", "hi"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.starts_with("streamed hi"), "{stdout}");
    let recs = ledger(dir.path());
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].usage.input_tokens, 1000);
    assert_eq!(recs[0].usage.output_tokens, 200);
    // claude-haiku-4.5: $1/M input, $5/M output: 1000 + 200×5 = $0.002.
    assert_eq!(recs[0].nano_usd.unwrap().nanos(), 2_000_000);
}

/// `--provider openai --api responses --stream`: the Responses API
/// streamed, the text printed as it arrives, one record at the exact cost.
#[tokio::test]
async fn openai_responses_stream_against_loopback() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/responses"))
        .and(body_partial_json(serde_json::json!({
            "model": "gpt-4.1",
            "stream": true,
            "input": [{"type": "message", "role": "user", "content": "Total?"}]
        })))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/event-stream")
                .set_body_string(include_str!("fixtures/streams/openai_responses.sse")),
        )
        .expect(2)
        .mount(&server)
        .await;
    let uri = server.uri();
    let run = |json: bool| {
        let dir = tempfile::tempdir().unwrap();
        let uri = uri.clone();
        async move {
            let dir_path = dir.path().to_owned();
            let out = tokio::task::spawn_blocking(move || {
                let mut c = cli(&dir_path);
                c.env("OPENAI_API_KEY", "sk-test-cli-responses-stream")
                    .env("OPENAI_BASE_URL", format!("{uri}/v1"))
                    .env_remove("OPENAI_ORG_ID")
                    .env_remove("OPENAI_PROJECT_ID")
                    .args(["--provider", "openai", "--api", "responses", "--stream"])
                    .args(["--model", "gpt-4.1"]);
                if json {
                    c.arg("--json");
                }
                c.arg("Total?").output().unwrap()
            })
            .await
            .unwrap();
            (dir, out)
        }
    };

    let (dir, out) = run(false).await;
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("Invoice total: 42 EUR."), "{stdout}");
    // gpt-4.1: 6000 × $2.00 + 4000 × $0.50 + 2000 × $8.00 per million.
    assert!(stdout.contains("(30000000 nano-USD)"), "{stdout}");
    let recs = ledger(dir.path());
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].usage.cache_read_tokens, 4000);
    assert_eq!(recs[0].usage.reasoning_tokens, 1500);
    assert_eq!(recs[0].nano_usd.unwrap().nanos(), 30_000_000);

    // --json: one object at the end.
    let (dir, out) = run(true).await;
    assert!(out.status.success());
    let obj: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(obj["text"], "Invoice total: 42 EUR.");
    assert_eq!(obj["nano_usd"], 30_000_000);
    assert_eq!(ledger(dir.path()).len(), 1);
}
