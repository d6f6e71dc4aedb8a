//! A team dashboard from a ledger, without the CLI.
//!
//! Writes a few calls for two users into a JSONL ledger in a temporary
//! directory, then reads every user's file in one pass and prints the
//! verbose dashboard and its JSON totals.
//!
//! ```sh
//! cargo run --example team_dashboard
//! ```

use chrono::{Duration, Utc};
use costlayer::budget::Budget;
use costlayer::ledger::{CostRecord, FsyncPolicy, JsonlStorage, ScanFilter, Storage};
use costlayer::report::{DashboardPass, RenderOptions};
use costlayer::{Money, Usage};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("costlayer-team-dashboard-{}", std::process::id()));
    let usd = |s: &str| s.parse::<Money>();

    for (user, provider, model, cost, days_ago) in [
        ("alice", "openai", "gpt-4o", "12.50", 1),
        ("alice", "anthropic", "claude-sonnet-4-5", "4.20", 3),
        ("bob", "gemini", "gemini-2.5-pro", "7.75", 2),
        ("bob", "openai", "gpt-4o-mini", "0.0115", 0),
    ] {
        let ledger = JsonlStorage::builder(&dir)
            .user(user)
            .fsync(FsyncPolicy::Never)
            .build()?;
        let mut r = CostRecord::new(user, provider, model, Usage::new(1_000, 200));
        r.ts = Utc::now() - Duration::days(days_ago);
        r.nano_usd = Some(usd(cost)?);
        ledger.append(&r).await?;
        ledger.flush().await?;
    }

    // One pass: the summary and every budget together.
    let now = Utc::now();
    let ledger = JsonlStorage::builder(&dir).build()?;
    let mut pass = DashboardPass::new(
        now,
        [Budget::monthly(usd("200")?), Budget::total(usd("1000")?)],
        ScanFilter::default(),
    );
    ledger.scan_blocking(&ScanFilter::default(), |item| pass.push(&item))?;
    let dash = pass
        .finish(dir.display().to_string())
        .scope("team: every user");
    print!("{}", dash.render(&RenderOptions::new().verbose(true)));
    let json = dash.to_json();
    println!("\ntotal_nano_usd = {}", json["total_nano_usd"]);
    assert_eq!(json["by_user"].as_object().map(|m| m.len()), Some(2));

    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
