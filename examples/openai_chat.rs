//! One real OpenAI call through the full costlayer stack (cost, cache,
//! retry, rate limit), recorded in your ledger, with its exact cost.
//!
//! ```text
//! OPENAI_API_KEY=sk-... cargo run --example openai_chat -- "Say hi in French" [model]
//! ```
//!
//! The settings are the ones every costlayer entry point reads
//! (`costlayer.toml`, then `COSTLAYER_*`): the call is appended to
//! `<data_dir>/costs_<user>.jsonl` (default `data/metadata`), where `cost-tracker --dashboard`
//! sees it, and counts against your budgets. `OPENAI_BASE_URL` points the
//! client at a proxy, a gateway or a local OpenAI-compatible server.
//!
//! Exits with code 2 and a clear message when the key is missing, 1 when
//! the call fails.

#[path = "support/mod.rs"]
mod support;

use std::process::ExitCode;

use costlayer::openai::OpenAi;

#[tokio::main]
async fn main() -> ExitCode {
    // The provider first, so a missing key is reported before anything else.
    let client = match support::client_or_exit(
        "openai_chat",
        "export OPENAI_API_KEY=sk-...",
        OpenAi::from_env(),
    ) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let req = support::prompt_and_model("gpt-4o-mini", 200);
    println!(
        "prompt tokens (tiktoken, offline): {}",
        client.count_tokens(&req)
    );
    // The usual stack; the rate limit (requests, tokens per minute) is an example tier-1 quota.
    support::call_through_the_stack("openai_chat", client, (500, 200_000), req).await
}
