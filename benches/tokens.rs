//! Token counting throughput on a generated prompt corpus.
//!
//! The corpus is generated here from a fixed seed (English prose, Rust code,
//! JSON, and a share of non-Latin text), so every run measures the same
//! bytes and no data file is committed. Throughput is reported in bytes/s.
//!
//! Run: `cargo bench --bench tokens` (add `-- --quick` for a short run).

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use costlayer::estimate::{EstimatePolicy, Estimator};
use costlayer::tokens::{HeuristicCounter, TiktokenCounter, TokenCounter, UpperBoundCounter};
use costlayer::{ChatRequest, Message};

const WORDS: &[&str] = &[
    "the",
    "invoice",
    "customer",
    "model",
    "request",
    "budget",
    "summarise",
    "quarterly",
    "revenue",
    "please",
    "analysis",
    "between",
    "response",
    "latency",
    "provider",
    "token",
    "because",
    "report",
    "contract",
    "deadline",
    "support",
    "engineering",
    "migration",
    "database",
    "performance",
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "for",
    "with",
    "that",
];
const CODE: &str =
    "fn total(records: &[Record]) -> Money {\n    records.iter().map(|r| r.cost()).sum()\n}\n";
const JSON: &str =
    r#"{"id":"ord_8812","items":[{"sku":"A-17","qty":3,"price":"19.99"}],"status":"shipped"}"#;
const OTHER: &str = "東京の天気は晴れです。 Привет, как дела? مرحبا بالعالم ";

/// A deterministic corpus of about `bytes` bytes.
fn corpus(bytes: usize, seed: u64) -> String {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut s = String::with_capacity(bytes + 128);
    while s.len() < bytes {
        match rng.gen_range(0..10) {
            0 => s.push_str(CODE),
            1 => s.push_str(JSON),
            2 => s.push_str(OTHER),
            _ => {
                for _ in 0..rng.gen_range(8..24) {
                    s.push_str(WORDS[rng.gen_range(0..WORDS.len())]);
                    s.push(' ');
                }
                s.push_str(".\n");
            }
        }
    }
    s
}

fn counters(c: &mut Criterion) {
    let text = corpus(64 * 1024, 7);
    let tiktoken = TiktokenCounter::for_model("gpt-4o");
    tiktoken.warm_up();
    let mut g = c.benchmark_group("count_text_64KiB");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("tiktoken_o200k", |b| {
        b.iter(|| tiktoken.count_text(black_box(&text)))
    });
    g.bench_function("upper_bound", |b| {
        b.iter(|| UpperBoundCounter.count_text(black_box(&text)))
    });
    g.bench_function("heuristic", |b| {
        b.iter(|| HeuristicCounter.count_text(black_box(&text)))
    });
    g.finish();
}

fn estimator(c: &mut Criterion) {
    // A realistic 2 KB chat prompt: system + three turns.
    let req = ChatRequest::new("gpt-4o")
        .system(corpus(400, 1))
        .message(Message::user(corpus(700, 2)))
        .message(Message::assistant(corpus(300, 3)))
        .message(Message::user(corpus(600, 4)))
        .max_tokens(512);
    TiktokenCounter::for_model("gpt-4o").warm_up();
    let mut g = c.benchmark_group("estimate_2KB_prompt");
    for policy in [
        EstimatePolicy::UpperBound,
        EstimatePolicy::Heuristic,
        EstimatePolicy::Exact,
    ] {
        let est = Estimator::new(policy);
        g.bench_with_input(
            BenchmarkId::from_parameter(format!("{policy:?}")),
            &req,
            |b, r| b.iter(|| est.total_tokens(black_box(r))),
        );
    }
    g.finish();
}

criterion_group!(benches, counters, estimator);
criterion_main!(benches);
