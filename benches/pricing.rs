//! Loading price files: a LiteLLM-format map of 5,000 entries (generated
//! here, shaped like `model_prices_and_context_window.json`: first-party
//! and reseller keys, tiers, batch, flex and priority keys) and a
//! genai-prices file of 1,000 models, each parsed into a [`PriceTable`]
//! and merged over the embedded table. Loading is O(n): the target is
//! well under 200 ms for 5,000 entries.
//!
//! Run: `cargo bench --bench pricing` (add `-- --quick` for a short run).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

use costlayer::pricing::PriceTable;

const RESELLERS: &[&str] = &["bedrock", "vertex_ai", "azure", "openrouter", "replicate"];

fn litellm_map(n: usize) -> String {
    let mut out = String::from("{\n");
    for i in 0..n {
        let (key, provider) = match i % 4 {
            0 => (format!("gpt-bench-{i}"), "openai".to_owned()),
            1 => (format!("claude-bench-{i}"), "anthropic".to_owned()),
            2 => (format!("gemini/gemini-bench-{i}"), "gemini".to_owned()),
            _ => {
                let r = RESELLERS[i % RESELLERS.len()];
                (format!("{r}/anthropic/claude-bench-{i}"), r.to_owned())
            }
        };
        let sep = if i + 1 == n { "" } else { "," };
        out.push_str(&format!(
            r#"  "{key}": {{"litellm_provider": "{provider}", "mode": "chat", "max_input_tokens": 200000,
    "input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05,
    "cache_read_input_token_cost": 3e-07, "cache_creation_input_token_cost": 3.75e-06,
    "input_cost_per_token_above_200k_tokens": 6e-06, "output_cost_per_token_above_200k_tokens": 2.25e-05,
    "input_cost_per_token_batches": 1.5e-06, "output_cost_per_token_batches": 7.5e-06,
    "input_cost_per_token_priority": 5.4e-06, "output_cost_per_token_priority": 2.7e-05,
    "supports_vision": true, "source": "https://example.com/pricing"}}{sep}
"#
        ));
    }
    out.push('}');
    out
}

fn genai_data(n: usize) -> String {
    let models: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"id": "claude-bench-{i}", "match": {{"or": [{{"starts_with": "claude-bench-{i}"}}]}},
  "prices": [{{"prices": {{"input_mtok": {{"base": 3, "tiers": [{{"start": 200000, "price": 6}}]}}, "output_mtok": 15}}}},
             {{"constraint": {{"start_date": "2026-03-13"}}, "prices": {{"input_mtok": 3, "output_mtok": 15, "cache_read_mtok": 0.3}}}}]}}"#
            )
        })
        .collect();
    format!(
        r#"[{{"id": "anthropic", "pricing_urls": ["https://example.com"], "models": [{}]}}]"#,
        models.join(",\n")
    )
}

fn loading(c: &mut Criterion) {
    let map = litellm_map(5_000);
    let mut g = c.benchmark_group("price_files");
    g.throughput(Throughput::Elements(5_000));
    g.bench_function("litellm_5000_entries", |b| {
        b.iter(|| PriceTable::from_litellm_str(black_box(&map), "map.json").expect("parse"))
    });
    g.bench_function("litellm_5000_entries_over_embedded", |b| {
        b.iter(|| {
            let mut t = PriceTable::embedded().clone();
            t.merge_overrides(
                PriceTable::from_litellm_str(black_box(&map), "map.json").expect("parse"),
            );
            t
        })
    });
    let data = genai_data(1_000);
    g.throughput(Throughput::Elements(1_000));
    g.bench_function("genai_prices_1000_models", |b| {
        b.iter(|| PriceTable::from_genai_prices_str(black_box(&data), "data.json").expect("parse"))
    });
    g.finish();
}

criterion_group!(benches, loading);
criterion_main!(benches);
