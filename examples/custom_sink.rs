//! An alert sink plugin in a few lines: append every budget alert to a file
//! as a JSON line (the same pattern posts to a chat, a pager, a queue).
//!
//! ```text
//! cargo run --example custom_sink
//! ```
//!
//! Offline, no keys: a canned provider answers, a $0.01 monthly budget is
//! crossed at 80% and then 100%, and the file sink receives both alerts.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use costlayer::alert::{Alert, AlertSink, SinkError, StdoutSink};
use costlayer::budget::Budget;
use costlayer::layer::cost::CostLayer;
use costlayer::ledger::MemoryStorage;
use costlayer::tracker::CostTracker;
use costlayer::{ChatRequest, ChatResponse, Error, Message, Money, Usage};
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};

/// The plugin: one struct, one method.
struct FileSink {
    path: PathBuf,
}

#[async_trait]
impl AlertSink for FileSink {
    async fn send(&self, alert: &Alert) -> Result<(), SinkError> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        writeln!(file, "{}", alert.to_json())?;
        Ok(())
    }

    fn name(&self) -> &str {
        "file"
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::temp_dir().join(format!("costlayer-alerts-{}.jsonl", std::process::id()));
    let tracker = CostTracker::builder()
        .storage(Arc::new(MemoryStorage::new()))
        .user("example")
        .budget(Budget::monthly("0.01".parse::<Money>()?))
        .sink(FileSink { path: path.clone() })
        .sink(StdoutSink::human())
        .build()?;

    // A canned provider: every answer bills 10,000 input tokens of gpt-4o-mini
    // ($0.15 per million: $0.0015 a call).
    let provider = service_fn(|req: ChatRequest| async move {
        Ok::<_, Error>(ChatResponse {
            provider: "openai".into(),
            model: req.model,
            usage: Usage::new(10_000, 0),
            text: "ok".into(),
            ..Default::default()
        })
    });
    let mut svc = ServiceBuilder::new()
        .layer(CostLayer::new(tracker.clone()))
        .service(provider);

    for i in 0..7 {
        let req = ChatRequest::new("gpt-4o-mini").message(Message::user(format!("question {i}")));
        svc.ready().await?.call(req).await?;
    }
    // Sinks run off the caller's path: wait for them before exiting.
    tracker.flush_alerts().await;

    let written = std::fs::read_to_string(&path)?;
    println!(
        "\n{} alert(s) written to {}:",
        written.lines().count(),
        path.display()
    );
    print!("{written}");
    let _ = std::fs::remove_file(&path);
    Ok(())
}
