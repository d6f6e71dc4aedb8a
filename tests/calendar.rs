//! One calendar: with `budget.time_zone` set, the dashboard's "Monthly
//! cost", the projection and the monthly budget count the same local month.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::Path;

use assert_cmd::Command;
use chrono::{DateTime, TimeZone, Utc};
use costlayer::budget::{parse_time_zone, Budget, Window};
use costlayer::calendar::Calendar;
use costlayer::ledger::{CostRecord, ScanFilter, ScanItem};
use costlayer::report::{DashboardPass, Projection};
use costlayer::{Money, Usage};
use serde_json::Value;

/// 12:00 UTC on November 30 is 02:00 on December 1 in Kiritimati (UTC+14).
const NOW: &str = "2026-11-30T12:00:00Z";

fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
}

fn rec(ts: DateTime<Utc>, usd: i64) -> CostRecord {
    let mut r = CostRecord::new("alice", "openai", "gpt-4o", Usage::new(1_000, 100));
    r.ts = ts;
    r.nano_usd = Some(Money::from_usd(usd).unwrap());
    r
}

/// $3 on Nov 30 11:00 UTC (Dec 1 01:00 local), $5 on Nov 30 09:00 UTC
/// (Nov 30 23:00 local), $7 on Nov 2.
fn records() -> Vec<CostRecord> {
    vec![
        rec(at(2026, 11, 30, 11), 3),
        rec(at(2026, 11, 30, 9), 5),
        rec(at(2026, 11, 2, 0), 7),
    ]
}

#[test]
fn summary_projection_and_budget_share_the_local_month() {
    let now = DateTime::parse_from_rfc3339(NOW)
        .unwrap()
        .with_timezone(&Utc);
    let zone = parse_time_zone("Pacific/Kiritimati").unwrap();
    let budget = Budget::new(
        "monthly",
        Money::from_usd(100).unwrap(),
        Window::monthly_in(zone),
    );
    let mut pass =
        DashboardPass::new(now, [budget], ScanFilter::default()).calendar(Calendar::Zone(zone));
    for r in records() {
        pass.push(&ScanItem::Record(r));
    }
    let dash = pass.finish("mem");
    assert_eq!(dash.summary.month.nano_usd, Money::from_usd(3).unwrap());
    assert_eq!(dash.budgets[0].spent, Money::from_usd(3).unwrap());
    assert_eq!(dash.budgets[0].window, "2026-12");
    let p = Projection::from_summary(&dash.summary);
    assert_eq!(p.days_in_month, 31, "December, not November");
    assert_eq!(p.month_to_date, Money::from_usd(3).unwrap());
    // The daily chart counts local days too.
    let days = dash.summary.daily(2);
    assert_eq!(days[1].0.to_string(), "2026-12-01");
    assert_eq!(days[1].1.nano_usd, Money::from_usd(3).unwrap());
    assert_eq!(days[0].1.nano_usd, Money::from_usd(5).unwrap());
}

fn cli(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("cost-tracker").unwrap();
    c.current_dir(dir)
        .env("COSTLAYER_NOW", NOW)
        .env("NO_COLOR", "1")
        .env("COLUMNS", "100")
        .env("COSTLAYER_USER", "alice");
    for v in [
        "COSTLAYER_DATA_DIR",
        "COSTLAYER_MONTHLY_BUDGET",
        "COSTLAYER_TOTAL_BUDGET",
        "COSTLAYER_ALERT_EMAILS",
        "COSTLAYER_CONFIG",
    ] {
        c.env_remove(v);
    }
    c
}

#[test]
fn the_dashboard_month_is_the_budget_month_in_kiritimati() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    fs::create_dir_all(&data).unwrap();
    let mut text = String::new();
    for r in records() {
        text.push_str(&serde_json::to_string(&r).unwrap());
        text.push('\n');
    }
    fs::write(data.join("costs_alice.jsonl"), text).unwrap();
    fs::write(
        tmp.path().join("costlayer.toml"),
        "data_dir = \"data\"\n[budget]\nmonthly = 100\ntotal = \"none\"\ntime_zone = \"Pacific/Kiritimati\"\n",
    )
    .unwrap();

    let out = cli(tmp.path())
        .args(["--dashboard", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["time_zone"], "Pacific/Kiritimati");
    assert_eq!(v["month"], "2026-12");
    assert_eq!(v["month_nano_usd"], 3_000_000_000i64);
    let monthly = v["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "monthly")
        .unwrap();
    assert_eq!(monthly["window"], "2026-12");
    assert_eq!(monthly["spent_nano_usd"], v["month_nano_usd"]);
    assert_eq!(v["projection"]["month_to_date_nano_usd"], 3_000_000_000i64);

    let out = cli(tmp.path())
        .args(["--dashboard", "--verbose"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("$3.00 (December 2026 to date)"), "{text}");
    assert!(text.contains("monthly (2026-12)"), "{text}");
    assert!(text.contains("of December elapsed"), "{text}");
    assert!(!text.contains("November 2026"), "{text}");
}
