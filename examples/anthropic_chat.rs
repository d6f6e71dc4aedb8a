//! One real Anthropic call with the key from the environment, plus an exact
//! token count from `/v1/messages/count_tokens`.
//!
//! ```text
//! ANTHROPIC_API_KEY=sk-ant-... cargo run --example anthropic_chat -- "Say hi in French" [model]
//! ```
//!
//! `ANTHROPIC_BASE_URL` points it at a proxy or gateway. Exits with code 2
//! and a clear message when the key is missing, 1 when the call fails.

use std::process::ExitCode;

use costlayer::anthropic::Anthropic;
use costlayer::{ChatRequest, Error, Message};
use tower::ServiceExt;

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let prompt = args
        .next()
        .unwrap_or_else(|| "Say hi in one short sentence.".into());
    let model = args.next().unwrap_or_else(|| "claude-haiku-4-5".into());

    let client = match Anthropic::from_env() {
        Ok(c) => c,
        Err(e @ Error::Config { .. }) => {
            eprintln!("anthropic_chat: {e}");
            eprintln!(
                "  export ANTHROPIC_API_KEY=sk-ant-... and run again (the key is never printed)."
            );
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("anthropic_chat: {e}");
            return ExitCode::FAILURE;
        }
    };
    let req = ChatRequest::new(model)
        .system("You are concise.")
        .message(Message::user(prompt))
        .max_tokens(200);
    match client.count_tokens(&req).await {
        Ok(n) => println!("prompt tokens (count_tokens endpoint): {n}"),
        Err(e) => println!(
            "prompt tokens (offline estimate, count_tokens failed: {e}): {}",
            client.estimate_tokens(&req)
        ),
    }

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
                "usage: input {} + cache read {} + cache write 5m {} / 1h {} | output {} (thinking {})",
                u.input_tokens,
                u.cache_read_tokens,
                u.cache_write_5m_tokens,
                u.cache_write_1h_tokens,
                u.output_tokens,
                u.reasoning_tokens
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("anthropic_chat: {e}");
            ExitCode::FAILURE
        }
    }
}
