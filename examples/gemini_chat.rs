//! One real Gemini call with the key from the environment, plus an exact
//! token count from `:countTokens`.
//!
//! ```text
//! GEMINI_API_KEY=AIza... cargo run --example gemini_chat -- "Say hi in French" [model]
//! ```
//!
//! `GOOGLE_API_KEY` is read when `GEMINI_API_KEY` is unset; `GEMINI_BASE_URL`
//! points it at a proxy. Exits with code 2 and a clear message when the key
//! is missing, 1 when the call fails.

use std::process::ExitCode;

use costlayer::gemini::Gemini;
use costlayer::{ChatRequest, Error, Message};
use tower::ServiceExt;

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let prompt = args
        .next()
        .unwrap_or_else(|| "Say hi in one short sentence.".into());
    let model = args.next().unwrap_or_else(|| "gemini-2.5-flash".into());

    let client = match Gemini::from_env() {
        Ok(c) => c,
        Err(e @ Error::Config { .. }) => {
            eprintln!("gemini_chat: {e}");
            eprintln!("  export GEMINI_API_KEY=... and run again (the key is never printed).");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("gemini_chat: {e}");
            return ExitCode::FAILURE;
        }
    };
    let req = ChatRequest::new(model)
        .system("You are concise.")
        .message(Message::user(prompt))
        .max_tokens(1024);
    match client.count_tokens(&req).await {
        Ok(n) => println!("prompt tokens (countTokens endpoint): {n}"),
        Err(e) => println!(
            "prompt tokens (offline estimate, countTokens failed: {e}): {}",
            client.estimate_tokens(&req)
        ),
    }

    match client.oneshot(req).await {
        Ok(resp) => {
            println!("{}\n", resp.text);
            println!("model (as billed): {}", resp.model);
            println!(
                "response id:       {}",
                resp.request_id.as_deref().unwrap_or("-")
            );
            println!("latency:           {:?}", resp.latency);
            let u = resp.usage;
            println!(
                "usage: input {} + cached {} | output {} (thinking {})",
                u.input_tokens, u.cache_read_tokens, u.output_tokens, u.reasoning_tokens
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gemini_chat: {e}");
            ExitCode::FAILURE
        }
    }
}
