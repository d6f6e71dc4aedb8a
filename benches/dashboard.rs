//! `cost-tracker --dashboard --team` over 1,000,000 ledger records.
//!
//! The ledger (four users, 250,000 records each, 60 days, four models) is
//! generated once per run in a temporary directory. Two measurements:
//!
//! - `aggregate/1M_records_in_memory`: [`Summary`] folding records that are
//!   already parsed (the report engine alone);
//! - `fold/dashboard_pass_1M_records`: [`DashboardPass`] folded over the
//!   JSONL files by [`JsonlStorage::fold_blocking`] on every core (read,
//!   parse, summarise, in process);
//! - `fold/dashboard_pass_1M_python_layout`: the same records as written by
//!   Python's `json.dumps` (`", "` and `": "`), the layout of scripts and
//!   of the earlier Python tool (read by the canonical parser);
//! - `fold/dashboard_pass_1M_sorted_keys`: the same with the keys sorted,
//!   as `json.dumps(record, sort_keys=True)` writes them (read by the
//!   layout-independent scanner);
//! - `cli/dashboard_team_1M_records`: the whole binary, end to end: spawn,
//!   read and parse every JSONL line (on every core), summarise, render
//!   (the dashboard's checkpoint is removed before each run: a full
//!   recount);
//! - `repeat_1M_plus_1000`: the incremental dashboard: a checkpoint over
//!   the 1,000,000 records, then 1,000 records appended (not timed) and
//!   the repeat [`DashboardPass`] folded by [`JsonlStorage::fold_blocking`],
//!   which reads only those 1,000 records;
//! - `cli/repeat_1M_plus_1000`: the same through the binary.
//!
//! The folds of the whole ledger use `DashboardPass::incremental(false)`.
//!
//! The generated files (about 1.4 GB) are deleted at the end.
//!
//! Run with `cargo bench --bench dashboard -- --quick`.

use std::io::Write;
use std::process::Command;

use chrono::{Duration, TimeZone, Utc};
use costlayer::budget::Budget;
use costlayer::ledger::{CostRecord, JsonlStorage, ScanFilter, ScanItem};
use costlayer::report::{Dashboard, DashboardPass, RenderOptions, Summary};
use costlayer::{Mode, Money, Usage};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};

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

/// `json.dumps` separators: `", "` between items, `": "` after keys.
struct PythonLayout;

impl serde_json::ser::Formatter for PythonLayout {
    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }
    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }
    fn begin_array_value<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let now = Utc.with_ymd_and_hms(2026, 11, 16, 12, 0, 0).unwrap();
    let files_in = |dir: &std::path::Path| -> Vec<_> {
        USERS
            .iter()
            .map(|u| {
                let f =
                    std::fs::File::create(dir.join(format!("costs_{u}.jsonl"))).expect("create");
                std::io::BufWriter::new(f)
            })
            .collect()
    };
    let mut files = files_in(dir.path());
    let py_dir = tempfile::tempdir().expect("tempdir");
    let mut py_files = files_in(py_dir.path());
    let sorted_dir = tempfile::tempdir().expect("tempdir");
    let mut sorted_files = files_in(sorted_dir.path());
    let mut parsed = Vec::with_capacity(RECORDS as usize);
    for (i, r) in records().enumerate() {
        let line = serde_json::to_string(&r).expect("serialise");
        writeln!(files[i % 4], "{line}").expect("write");
        let mut ser = serde_json::Serializer::with_formatter(&mut py_files[i % 4], PythonLayout);
        serde::Serialize::serialize(&r, &mut ser).expect("serialise");
        py_files[i % 4].write_all(b"\n").expect("write");
        // `json.dumps(record, sort_keys=True)`.
        let sorted: std::collections::BTreeMap<String, serde_json::Value> =
            match serde_json::to_value(&r).expect("value") {
                serde_json::Value::Object(m) => m.into_iter().collect(),
                _ => unreachable!("a record is an object"),
            };
        let mut ser =
            serde_json::Serializer::with_formatter(&mut sorted_files[i % 4], PythonLayout);
        serde::Serialize::serialize(&sorted, &mut ser).expect("serialise");
        sorted_files[i % 4].write_all(b"\n").expect("write");
        parsed.push(ScanItem::Record(r));
    }
    for mut f in files.into_iter().chain(py_files).chain(sorted_files) {
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
    let open = |d: &std::path::Path| {
        JsonlStorage::builder(d)
            .user("alice")
            .build()
            .expect("storage")
    };
    let storage = open(dir.path());
    let (py, sorted) = (open(py_dir.path()), open(sorted_dir.path()));
    for (name, layout) in [
        ("records", &storage),
        ("python_layout", &py),
        ("sorted_keys", &sorted),
    ] {
        g.bench_function(format!("fold/dashboard_pass_1M_{name}"), |b| {
            b.iter(|| {
                let budgets = [Budget::monthly(Money::from_usd(200).expect("usd"))];
                let mut pass =
                    DashboardPass::new(now, budgets, ScanFilter::default()).incremental(false);
                let scanned = layout.fold_blocking(&mut pass).expect("fold");
                assert_eq!(scanned.records, RECORDS);
                pass.finish("bench")
            })
        });
    }
    let checkpoint = dir.path().join("dashboard_checkpoint.bin");
    let cli = || {
        let out = Command::new(env!("CARGO_BIN_EXE_cost-tracker"))
            .args(["--dashboard", "--team", "--verbose", "--data-dir"])
            .arg(dir.path())
            .env("COSTLAYER_NOW", "2026-11-16T12:00:00Z")
            .env("NO_COLOR", "1")
            .output()
            .expect("run cost-tracker");
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    g.bench_function("cli/dashboard_team_1M_records", |b| {
        b.iter_batched(
            || {
                let _ = std::fs::remove_file(&checkpoint);
            },
            |()| assert!(cli().contains("1,000,000")),
            BatchSize::PerIteration,
        )
    });

    // The incremental dashboard: 1,000 records appended before each run.
    let mut appended = 0u64;
    let mut append_1000 = || {
        let f = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("costs_alice.jsonl"))
            .expect("open");
        let mut f = std::io::BufWriter::new(f);
        for r in records().take(1_000) {
            writeln!(f, "{}", serde_json::to_string(&r).expect("serialise")).expect("write");
        }
        f.flush().expect("flush");
        appended += 1_000;
    };
    let pass = || {
        let budgets = [Budget::monthly(Money::from_usd(200).expect("usd"))];
        DashboardPass::new(now, budgets, ScanFilter::default())
    };
    // The checkpoint over the 1,000,000 records.
    let mut first = pass();
    storage.fold_blocking(&mut first).expect("fold");
    g.bench_function("repeat_1M_plus_1000", |b| {
        b.iter_batched(
            &mut append_1000,
            |()| {
                let mut pass = pass();
                storage.fold_blocking(&mut pass).expect("fold");
                assert_eq!(pass.records_read(), 1_000, "only the new records are read");
                pass.finish("bench")
            },
            BatchSize::PerIteration,
        )
    });
    let mut full = pass().incremental(false);
    storage.fold_blocking(&mut full).expect("fold");
    let mut repeat = pass();
    storage.fold_blocking(&mut repeat).expect("fold");
    assert_eq!(
        repeat.finish("bench").to_json(),
        full.finish("bench").to_json(),
        "the repeat equals a full recount"
    );
    g.bench_function("cli/repeat_1M_plus_1000", |b| {
        b.iter_batched(
            &mut append_1000,
            |()| assert!(!cli().is_empty()),
            BatchSize::PerIteration,
        )
    });
    eprintln!("appended {appended} records in the repeat benches");
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
