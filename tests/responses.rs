//! The OpenAI Responses API client under the full stack, against a
//! wiremock server on loopback: usage with cached and reasoning tokens is
//! priced exactly from the embedded price table and recorded once.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use costlayer::layer::builder::StackBuilder;
use costlayer::ledger::MemoryStorage;
use costlayer::openai::OpenAi;
use costlayer::tracker::CostTracker;
use costlayer::{ChatRequest, ContentPart, Message};
use serde_json::{json, Value};
use tower::ServiceExt;
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn fixture() -> Value {
    serde_json::from_str(include_str!(
        "../providers/openai/tests/fixtures/responses_reasoning.json"
    ))
    .unwrap()
}

/// A wiremock server answering one `POST /v1/responses` whose body holds
/// `sent` with the recorded [`fixture`] (checked when it drops).
async fn responses_server(sent: Value) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/responses"))
        .and(body_partial_json(sent))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture()))
        .expect(1)
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn responses_usage_is_priced_exactly_with_cached_and_reasoning_tokens() {
    let server = responses_server(json!({"model": "gpt-4.1"})).await;
    let client = OpenAi::builder()
        .api_key("sk-test-responses")
        .base_url(format!("{}/v1", server.uri()))
        .timeout(Duration::from_secs(10))
        .build_responses()
        .unwrap();
    let ledger = MemoryStorage::new();
    let tracker = CostTracker::builder()
        .storage(Arc::new(ledger.clone()))
        .user("alice")
        .build()
        .unwrap();
    let llm = StackBuilder::new(tracker).build(client);

    let resp = llm
        .oneshot(ChatRequest::new("gpt-4.1").message(Message::user("Total of the invoice?")))
        .await
        .unwrap();
    assert_eq!(resp.text, "Invoice total: 42 EUR.");
    assert!(
        matches!(&resp.parts[0], ContentPart::ProviderItem { item, .. } if item["type"] == "reasoning")
    );
    // 10000 input of which 4000 cached; 2000 output of which 1500 reasoning.
    assert_eq!(
        (
            resp.usage.input_tokens,
            resp.usage.cache_read_tokens,
            resp.usage.output_tokens,
            resp.usage.reasoning_tokens
        ),
        (6000, 4000, 2000, 1500)
    );
    // gpt-4.1: $2.00 input, $0.50 cached input, $8.00 output per million;
    // reasoning is billed inside the output, never on top:
    // 6000 × 2.00 + 4000 × 0.50 + 2000 × 8.00 = 30 000 µ$ = $0.030.
    let records = ledger.records();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].provider, "openai");
    // Recorded under the price table's canonical id.
    assert_eq!(records[0].model, "gpt-4.1");
    assert_eq!(resp.model, "gpt-4.1-2025-04-14");
    assert_eq!(records[0].nano_usd.map(|m| m.nanos()), Some(30_000_000));
    assert_eq!(
        records[0].request_id.as_deref(),
        Some("resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b")
    );
}

/// `cost-tracker chat --provider openai --api responses`: one call to
/// `/v1/responses`, priced from the embedded table and recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_calls_the_responses_api() {
    let server = responses_server(json!({
        "model": "gpt-4.1",
        "input": [{"type": "message", "role": "user", "content": "Total?"}],
        "max_output_tokens": 64
    }))
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = assert_cmd::Command::cargo_bin("cost-tracker").unwrap();
    cmd.current_dir(tmp.path()).env("COSTLAYER_USER", "alice");
    for v in [
        "COSTLAYER_CONFIG",
        "COSTLAYER_DATA_DIR",
        "COSTLAYER_PRICES",
        "COSTLAYER_MONTHLY_BUDGET",
        "COSTLAYER_TOTAL_BUDGET",
        "OPENAI_ORG_ID",
        "OPENAI_PROJECT_ID",
    ] {
        cmd.env_remove(v);
    }
    let out = cmd
        .env("OPENAI_API_KEY", "sk-test-cli-responses")
        .env("OPENAI_BASE_URL", format!("{}/v1", server.uri()))
        .arg("chat")
        .arg("--data-dir")
        .arg(tmp.path().join("ledger"))
        .args([
            "--provider",
            "openai",
            "--api",
            "responses",
            "--model",
            "gpt-4.1",
        ])
        .args(["--max-tokens", "64", "Total?"])
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.starts_with("Invoice total: 42 EUR.\n"), "{stdout}");
    assert!(stdout.contains("(30000000 nano-USD)"), "{stdout}");

    // Only OpenAI has a Responses API.
    let mut cmd = assert_cmd::Command::cargo_bin("cost-tracker").unwrap();
    let out = cmd
        .current_dir(tmp.path())
        .env("ANTHROPIC_API_KEY", "k")
        .arg("chat")
        .arg("--data-dir")
        .arg(tmp.path().join("ledger"))
        .args(["--provider", "anthropic", "--api", "responses", "hi"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--provider openai"));
}
