//! A batch job at batch rates, held against a blocking budget, recorded once.
//!
//! ```text
//! cargo run --example batch
//! ```
//!
//! Offline, no keys: the simulated provider's batch mode completes a job a
//! moment after it is submitted. The job's worst case is held at batch
//! rates (half the online price) in a blocking monthly budget while it
//! runs; its results are recorded once with `mode = "batch"`, and the hold
//! is released. Fetching the results again records nothing more.

use std::sync::Arc;
use std::time::Duration;

use costlayer::batch::{parse_jsonl, BatchJobs};
use costlayer::budget::Budget;
use costlayer::ledger::MemoryStorage;
use costlayer::mock::SimulatedProvider;
use costlayer::tracker::book::MemoryBook;
use costlayer::tracker::CostTracker;
use costlayer::BatchProvider;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let storage = Arc::new(MemoryStorage::new());
    let tracker = CostTracker::builder()
        .storage(storage.clone())
        .book(Arc::new(MemoryBook::new()))
        .user("example")
        .budget(Budget::monthly("1.00".parse()?).block())
        .build()?;
    let jobs = BatchJobs::new(tracker, dir.path())?;
    let provider = SimulatedProvider::builder()
        .batch_delay(Duration::from_millis(500))
        .build();

    // One neutral request a line; each provider's native batch line works too.
    let input: String = (1..=5)
        .map(|i| {
            format!(
                "{{\"custom_id\": \"q{i}\", \"request\": {{\"model\": \"gpt-4o-mini\", \"max_tokens\": 200, \
                 \"messages\": [{{\"role\": \"user\", \"content\": \"Question {i}\"}}]}}}}\n"
            )
        })
        .collect();
    let items = parse_jsonl(&input, None, &provider.limits(), jobs.tracker().prices())?;
    let online = items
        .iter()
        .filter_map(|i| jobs.tracker().estimate(&i.request))
        .fold(costlayer::Money::ZERO, costlayer::Money::saturating_add);

    let sub = jobs.submit(&provider, items).await?;
    println!("submitted {} ({} requests)", sub.entry.id, sub.entry.total);
    println!(
        "worst case: {} at batch rates ({} online)",
        sub.estimate.unwrap_or_default(),
        online
    );
    if let Some(h) = &sub.hold {
        println!(
            "held in {}: {} until {}",
            h.budgets.join(", "),
            h.amount,
            h.expires
        );
    }

    jobs.wait(&provider, &sub.entry.id, Duration::from_millis(100), |s| {
        println!("  {}: {}/{}", s.state, s.finished(), s.total)
    })
    .await?;
    let report = jobs.results(&provider, &sub.entry.id).await?;
    println!(
        "recorded {} results, {} at batch rates; hold released: {}",
        report.newly_recorded,
        report.recorded_cost,
        report
            .released
            .map_or_else(|| "none".into(), |m| m.to_string())
    );
    let again = jobs.results(&provider, &sub.entry.id).await?;
    println!(
        "fetched again: {} new, {} already recorded; {} records in the ledger",
        again.newly_recorded,
        again.already_recorded,
        storage.records().len()
    );
    Ok(())
}
