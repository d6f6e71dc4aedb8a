//! `cost-tracker --dashboard --team` over 1,000,000 ledger records.
//!
//! The ledger (four users, 250,000 records each, 60 days, four models) is
//! generated once per run in a temporary directory. Two measurements:
//!
//! - `aggregate/1M_records_in_memory`: [`Summary`] folding records that are
//!   already parsed (the report engine alone);
//! - `cli/dashboard_team_1M_records`: the whole binary, end to end: spawn,
//!   read and parse every JSONL line, summarise, render.
//!
//! Run with `cargo bench --bench dashboard -- --quick`.

use std::io::Write;
use std::process::Command;

use chrono::{Duration, TimeZone, Utc};
use costlayer::ledger::{CostRecord, ScanItem};
use costlayer::report::{Dashboard, RenderOptions, Summary};
use costlayer::{Mode, Money, Usage};
use criterion::{criterion_group, criterion_main, Criterion};

const RECORDS: u64 = 1_000_000;
const USERS: [&str; 4] = ["alice", "bob", "carol", "dave"];

fn records() -> impl Iterator<Item = CostRecord> {
    let models = [
        ("openai", "gpt-4o"),
        ("openai", "gpt-4o-mini"),
        ("anthropic", "claude-sonnet-4-5"),
        ("gemini", "gemini-2.5-pro"),
    ];
    let now = Utc.with_ymd_and_hms(2026, 11, 16, 12, 0, 0).unwrap();
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    (0..RECORDS).map(move |i| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let (p, m) = models[(x >> 33) as usize % models.len()];
        let mut r = CostRecord::new(
            USERS[(i % 4) as usize],
            p,
            m,
            Usage::new((x >> 40) % 5_000, (x >> 50) % 800),
        );
        r.ts = now - Duration::seconds(((x >> 20) % (60 * 86_400)) as i64);
        r.nano_usd = Some(Money::from_nanos(((x >> 7) % 50_000_000) as i64));
        r.latency_ms = (x >> 45) % 3_000;
        if i % 5 == 0 {
            r.mode = Mode::Batch;
        }
        r
    })
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let now = Utc.with_ymd_and_hms(2026, 11, 16, 12, 0, 0).unwrap();
    let mut files: Vec<_> = USERS
        .iter()
        .map(|u| {
            let f =
                std::fs::File::create(dir.path().join(format!("costs_{u}.jsonl"))).expect("create");
            std::io::BufWriter::new(f)
        })
        .collect();
    let mut parsed = Vec::with_capacity(RECORDS as usize);
    for (i, r) in records().enumerate() {
        let line = serde_json::to_string(&r).expect("serialise");
        writeln!(files[i % 4], "{line}").expect("write");
        parsed.push(ScanItem::Record(r));
    }
    for mut f in files {
        f.flush().expect("flush");
    }

    let mut g = c.benchmark_group("dashboard");
    g.sample_size(10);
    g.bench_function("aggregate/1M_records_in_memory", |b| {
        b.iter(|| {
            let mut s = Summary::new(now);
            for item in &parsed {
                s.push(item);
            }
            let text = Dashboard::new(s, "bench").render(&RenderOptions::new().verbose(true));
            assert!(text.contains("1,000,000"));
        })
    });
    drop(parsed);
    g.bench_function("cli/dashboard_team_1M_records", |b| {
        b.iter(|| {
            let out = Command::new(env!("CARGO_BIN_EXE_cost-tracker"))
                .args(["--dashboard", "--team", "--verbose", "--data-dir"])
                .arg(dir.path())
                .env("COSTLAYER_NOW", "2026-11-16T12:00:00Z")
                .env("NO_COLOR", "1")
                .output()
                .expect("run cost-tracker");
            assert!(out.status.success());
            assert!(String::from_utf8_lossy(&out.stdout).contains("1,000,000"));
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
