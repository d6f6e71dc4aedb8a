//! One real Gemini call through the full costlayer stack (cost, cache,
//! retry, rate limit), recorded in your ledger, with its exact cost, plus an
//! exact token count from `:countTokens`.
//!
//! ```text
//! GEMINI_API_KEY=AIza... cargo run --example gemini_chat -- "Say hi in French" [model]
//! ```
//!
//! The settings are the ones every costlayer entry point reads
//! (`costlayer.toml`, then `COSTLAYER_*`): the call is appended to
//! `<data_dir>/costs_<user>.jsonl` (default `data/metadata`), where `cost-tracker --dashboard`
//! sees it, and counts against your budgets. `GOOGLE_API_KEY` is read when
//! `GEMINI_API_KEY` is unset; `GEMINI_BASE_URL` points the client at a proxy.
//!
//! Exits with code 2 and a clear message when the key is missing, 1 when
//! the call fails.

#[path = "support/mod.rs"]
mod support;

use std::process::ExitCode;

use costlayer::gemini::Gemini;

#[tokio::main]
async fn main() -> ExitCode {
    // The provider first, so a missing key is reported before anything else.
    let client = match support::client_or_exit(
        "gemini_chat",
        "export GEMINI_API_KEY=AIza...",
        Gemini::from_env(),
    ) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let req = support::prompt_and_model("gemini-2.5-flash", 1024);
    match client.count_tokens(&req).await {
        Ok(n) => println!("prompt tokens (countTokens endpoint): {n}"),
        Err(e) => println!(
            "prompt tokens (offline estimate, countTokens failed: {e}): {}",
            client.estimate_tokens(&req)
        ),
    }
    // The usual stack; the rate limit (requests, tokens per minute) is an example free-tier quota.
    support::call_through_the_stack("gemini_chat", client, (10, 250_000), req).await
}
