//! One real Anthropic call through the full costlayer stack (cost, cache,
//! retry, rate limit), recorded in your ledger, with its exact cost, plus an
//! exact token count from `/v1/messages/count_tokens`.
//!
//! ```text
//! ANTHROPIC_API_KEY=sk-ant-... cargo run --example anthropic_chat -- "Say hi in French" [model]
//! ```
//!
//! The settings are the ones every costlayer entry point reads
//! (`costlayer.toml`, then `COSTLAYER_*`): the call is appended to
//! `<data_dir>/costs_<user>.jsonl` (default `data/metadata`), where `cost-tracker --dashboard`
//! sees it, and counts against your budgets. `ANTHROPIC_BASE_URL` points the
//! client at a proxy or gateway.
//!
//! Exits with code 2 and a clear message when the key is missing, 1 when
//! the call fails.

#[path = "support/mod.rs"]
mod support;

use std::process::ExitCode;

use costlayer::anthropic::Anthropic;

#[tokio::main]
async fn main() -> ExitCode {
    // The provider first, so a missing key is reported before anything else.
    let client = match support::client_or_exit(
        "anthropic_chat",
        "export ANTHROPIC_API_KEY=sk-ant-...",
        Anthropic::from_env(),
    ) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let req = support::prompt_and_model("claude-haiku-4-5", 200);
    match client.count_tokens(&req).await {
        Ok(n) => println!("prompt tokens (count_tokens endpoint): {n}"),
        Err(e) => println!(
            "prompt tokens (offline estimate, count_tokens failed: {e}): {}",
            client.estimate_tokens(&req)
        ),
    }
    // The usual stack; the rate limit (requests, tokens per minute) is an example tier-1 quota.
    support::call_through_the_stack("anthropic_chat", client, (50, 50_000), req).await
}
