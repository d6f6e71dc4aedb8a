//! Token counting throughput on a realistic mixed corpus.
//!
//! The corpus is built here from a fixed seed out of the paragraphs of
//! `providers/core/tests/fixtures/tokens_corpus.txt` (a support dialogue,
//! Rust, Python and SQL code, API JSON, HTML, compiler output, Japanese,
//! Chinese, Korean, Russian, Arabic, Hebrew, Hindi and Greek text, emoji
//! with ZWJ sequences, odd whitespace, numbers, URLs, hashes and
//! identifiers): paragraphs in a random order, their digits redrawn and
//! random identifiers and hex strings added, so no stretch repeats
//! verbatim. Throughput is reported in bytes/s.
//!
//! `exact_o200k` is [`TiktokenCounter::count_text`] (bpe-openai's encoder);
//! `tiktoken_rs_o200k` is tiktoken-rs alone on the same text, the encoder
//! it replaced.
//!
//! Run: `cargo bench --bench tokens` (add `-- --quick` for a short run).

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use costlayer::estimate::{EstimatePolicy, Estimator};
use costlayer::tokens::{HeuristicCounter, TiktokenCounter, TokenCounter, UpperBoundCounter};
use costlayer::{ChatRequest, Message};

const FIXTURE: &str = include_str!("../providers/core/tests/fixtures/tokens_corpus.txt");

/// A deterministic corpus of about `bytes` bytes (see the module docs).
fn corpus(bytes: usize, seed: u64) -> String {
    let paragraphs: Vec<&str> = FIXTURE.split("\n\n").collect();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut s = String::with_capacity(bytes + 4096);
    while s.len() < bytes {
        let p = paragraphs[rng.gen_range(0..paragraphs.len())];
        for ch in p.chars() {
            if ch.is_ascii_digit() {
                s.push(char::from(b'0' + rng.gen_range(0..10u8)));
            } else {
                s.push(ch);
            }
        }
        match rng.gen_range(0..4) {
            0 => s.push_str(&format!(
                " (ref {:08x}{:04x})",
                rng.gen::<u32>(),
                rng.gen::<u16>()
            )),
            1 => s.push_str(&format!(" user_{}@example.com", rng.gen_range(1..100_000))),
            _ => {}
        }
        s.push_str("\n\n");
    }
    s
}

fn counters(c: &mut Criterion) {
    let text = corpus(64 * 1024, 7);
    let exact = TiktokenCounter::for_model("gpt-4o");
    exact.warm_up();
    assert_eq!(exact.count_text(&text), exact.count_text_tiktoken(&text));
    let mut g = c.benchmark_group("count_text_64KiB");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("exact_o200k", |b| {
        b.iter(|| exact.count_text(black_box(&text)))
    });
    g.bench_function("tiktoken_rs_o200k", |b| {
        b.iter(|| exact.count_text_tiktoken(black_box(&text)))
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
