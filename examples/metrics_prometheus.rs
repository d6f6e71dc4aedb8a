//! costlayer's metrics in Prometheus: calls, cost, tokens, cache hits and
//! savings, blocked calls, budget ratios and alert deliveries.
//!
//! ```sh
//! cargo run --example metrics_prometheus --features metrics            # then curl 127.0.0.1:9464/metrics
//! cargo run --example metrics_prometheus --features metrics -- 127.0.0.1:0 20
//! ```
//!
//! It installs `metrics-exporter-prometheus` as the `metrics` recorder,
//! serves its text format on loopback (a plain `std::net` listener, no web
//! framework), makes simulated calls through the cost and cache layers (some
//! repeated, so the cache answers; some to a model a blocking budget
//! refuses) and keeps serving until Ctrl-C.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use costlayer::alert::StdoutSink;
use costlayer::budget::{Budget, Scope};
use costlayer::layer::cache::CacheLayer;
use costlayer::layer::cost::CostLayer;
use costlayer::ledger::MemoryStorage;
use costlayer::mock::SimulatedProvider;
use costlayer::tracker::CostTracker;
use costlayer::{ChatRequest, Error, Message, Money};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tower::{ServiceBuilder, ServiceExt};

/// The models the calls cycle through; the last one is refused by the
/// `no-opus` budget.
pub const MODELS: [&str; 4] = [
    "gpt-4o-mini",
    "claude-haiku-4-5",
    "gemini-2.5-flash",
    "claude-opus-4-5",
];

/// What the calls did, to compare with the scraped counters.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Calls that went through (recorded in the ledger).
    pub recorded: u64,
    /// Calls a blocking budget refused.
    pub blocked: u64,
}

/// Installs the Prometheus recorder as the global `metrics` recorder and
/// serves `GET /metrics` on `addr` from a background thread; returns the
/// bound address (port 0 picks a free one) and the handle.
pub fn serve(addr: &str) -> Result<(SocketAddr, PrometheusHandle), Box<dyn std::error::Error>> {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)?;
    let listener = TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    let render = handle.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            // Read the request line and headers; every path gets the metrics.
            let mut reader = BufReader::new(&stream);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let body = render.render();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    Ok((bound, handle))
}

/// Makes `n` simulated calls as user `demo`: prompts repeat every 8 calls
/// (so later ones are cache hits), every fourth call goes to a model the
/// `no-opus` budget refuses, and a $0.0001 monthly budget fires alerts to
/// stdout.
pub async fn calls(n: u64, ledger: MemoryStorage) -> Result<Outcome, Box<dyn std::error::Error>> {
    let tracker = CostTracker::builder()
        .storage(Arc::new(ledger))
        .user("demo")
        .budget(Budget::monthly("0.0001".parse::<Money>()?))
        .budget(
            Budget::total(Money::from_nanos(1))
                .name("no-opus")
                .scope(Scope::Model("claude-opus-4-5".into()))
                .block(),
        )
        .sink(StdoutSink::human())
        .build()?;
    let llm = ServiceBuilder::new()
        .layer(CostLayer::new(tracker.clone()))
        .layer(CacheLayer::default())
        .service(SimulatedProvider::new());
    let mut out = Outcome::default();
    for i in 0..n {
        let model = MODELS[(i % 4) as usize];
        let req = ChatRequest::new(model)
            .message(Message::user(format!("Question {}", i % 8)))
            .max_tokens(64);
        match llm.clone().oneshot(req).await {
            Ok(_) => out.recorded += 1,
            Err(Error::BudgetExceeded { .. }) => out.blocked += 1,
            Err(e) => return Err(e.into()),
        }
    }
    tracker.flush_alerts().await;
    Ok(out)
}

#[allow(dead_code)] // the test includes this file and calls `serve` and `calls` itself
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9464".to_owned());
    let n: u64 = args.next().map_or(Ok(40), |s| s.parse())?;
    let (bound, _handle) = serve(&addr)?;
    let out = calls(n, MemoryStorage::new()).await?;
    println!(
        "{} calls recorded, {} blocked; metrics on http://{bound}/metrics (Ctrl-C to stop)",
        out.recorded, out.blocked
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}
