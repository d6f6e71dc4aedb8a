//! One real OpenAI call with the key from the environment.
//!
//! ```text
//! OPENAI_API_KEY=sk-... cargo run --example openai_chat -- "Say hi in French" [model]
//! ```
//!
//! `OPENAI_BASE_URL` points it at a proxy, a gateway or a local
//! OpenAI-compatible server. Exits with code 2 and a clear message when the
//! key is missing, 1 when the call fails.

use std::process::ExitCode;

use costlayer::openai::OpenAi;
use costlayer::{ChatRequest, Error, Message};
use tower::ServiceExt;

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let prompt = args
        .next()
        .unwrap_or_else(|| "Say hi in one short sentence.".into());
    let model = args.next().unwrap_or_else(|| "gpt-4o-mini".into());

    let client = match OpenAi::from_env() {
        Ok(c) => c,
        Err(e @ Error::Config { .. }) => {
            eprintln!("openai_chat: {e}");
            eprintln!("  export OPENAI_API_KEY=sk-... and run again (the key is never printed).");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("openai_chat: {e}");
            return ExitCode::FAILURE;
        }
    };
    let req = ChatRequest::new(model)
        .system("You are concise.")
        .message(Message::user(prompt))
        .max_tokens(200);
    println!(
        "prompt tokens (tiktoken, offline): {}",
        client.count_tokens(&req)
    );

    match client.oneshot(req).await {
        Ok(resp) => {
            println!("{}\n", resp.text);
            println!("model (as billed): {}", resp.model);
            println!(
                "request id:        {}",
                resp.request_id.as_deref().unwrap_or("-")
            );
            println!("latency:           {:?}", resp.latency);
            let u = resp.usage;
            println!(
                "usage: input {} + cached {} | output {} (reasoning {})",
                u.input_tokens, u.cache_read_tokens, u.output_tokens, u.reasoning_tokens
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("openai_chat: {e}");
            if e.is_retryable() {
                eprintln!(
                    "  (retryable{})",
                    e.retry_after()
                        .map(|d| format!(", after {d:?}"))
                        .unwrap_or_default()
                );
            }
            ExitCode::FAILURE
        }
    }
}
