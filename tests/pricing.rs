//! The embedded price table, the cost function and the price-file loaders,
//! on hand-computed vectors.

use std::path::PathBuf;

use costlayer::pricing::{BatchPricing, ModelPrice, PriceTable, PricingError, Rates};
use costlayer::{Mode, Money, Usage};

fn usd(s: &str) -> Money {
    s.parse().expect("money literal")
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pricing")
        .join(name)
}

fn usage(input: u64, cache_read: u64, w5m: u64, w1h: u64, output: u64) -> Usage {
    Usage {
        input_tokens: input,
        cache_read_tokens: cache_read,
        cache_write_5m_tokens: w5m,
        cache_write_1h_tokens: w1h,
        output_tokens: output,
        ..Usage::default()
    }
}

fn total(model: &str, u: Usage, mode: Mode) -> Money {
    PriceTable::embedded()
        .cost(model, &u, mode)
        .unwrap_or_else(|e| panic!("{model}: {e}"))
        .total
}

// ---------------------------------------------------------------- table ----

#[test]
fn embedded_table_lists_every_model_with_source_and_date() {
    let t = PriceTable::embedded();
    assert_eq!(t.version(), "2026-12-01");
    let names: Vec<&str> = t.models().map(|m| m.model.as_str()).collect();
    for m in [
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4.1",
        "gpt-4.1-mini",
        "gpt-4.1-nano",
        "claude-opus-4-5",
        "claude-sonnet-4-5",
        "claude-haiku-4-5",
        "gemini-3-pro-preview",
        "gemini-2.5-pro",
        "gemini-2.5-flash",
        "gemini-2.5-flash-lite",
    ] {
        assert!(names.contains(&m), "{m} missing from {names:?}");
    }
    for m in t.models() {
        assert_eq!(m.origin, "embedded");
        assert!(
            m.source.as_deref().is_some_and(|s| s.contains("http")),
            "{}",
            m.model
        );
        // Batch never costs more than online.
        let (b, _) = m.rates_for(0, Mode::Batch);
        assert!(
            b.input <= m.rates.input && b.output <= m.rates.output,
            "{}",
            m.model
        );
        // The models users have: batch is half of input and output (cache
        // rates follow their sources, see prices.toml).
        if names[..12].contains(&m.model.as_str()) {
            assert_eq!(b.input.nanos() * 2, m.rates.input.nanos(), "{}", m.model);
            assert_eq!(b.output.nanos() * 2, m.rates.output.nanos(), "{}", m.model);
        }
    }
    // Every current first-party family the issue names is priced.
    for m in [
        "gpt-5",
        "gpt-5.5",
        "o3",
        "o4-mini",
        "gpt-4.1-mini-2025-04-14",
        "claude-sonnet-4-6",
        "claude-opus-4-6-20260205",
        "claude-sonnet-5",
        "gemini-3-flash-preview",
        "gemini-3.1-pro-preview",
    ] {
        assert!(t.get(m).is_some(), "{m}");
    }
    assert!(t.len() > 100, "{}", t.len());
    assert!(t.shadowed().is_empty());
    assert_eq!(PriceTable::default().len(), t.len());
}

#[test]
fn deprecation_dates_are_shown_and_pricing_still_works() {
    let t = PriceTable::embedded();
    let dep = |m: &str| t.get(m).and_then(|p| p.deprecated.clone());
    assert_eq!(dep("gpt-4.1-nano").as_deref(), Some("2026-10-23"));
    assert_eq!(dep("claude-sonnet-4-5").as_deref(), Some("2026-11-30"));
    assert_eq!(dep("gemini-2.5-pro").as_deref(), Some("2026-12-01"));
    assert_eq!(dep("claude-haiku-4-5"), None);
    // Retired already, still priced.
    assert_eq!(
        total("gpt-4.1-nano", Usage::new(1_000_000, 0), Mode::Online),
        usd("0.10")
    );
}

#[test]
fn anthropic_cache_multipliers_hold_for_every_claude_model() {
    let t = PriceTable::embedded();
    for m in ["claude-opus-4-5", "claude-sonnet-4-5", "claude-haiku-4-5"] {
        let r = t.get(m).expect(m).rates;
        let n = r.input.nanos();
        assert_eq!(r.cache_write_5m_rate().nanos(), n * 5 / 4, "{m} 5m");
        assert_eq!(r.cache_write_1h_rate().nanos(), n * 2, "{m} 1h");
        assert_eq!(r.cache_read_rate().nanos(), n / 10, "{m} read");
    }
}

// ------------------------------------------------------ per-model vectors ----
// Each expected value is computed by hand from providers.md section 1.

#[test]
fn gpt_4o_mini_cached_prompt() {
    // providers.md 1d: prompt 2048 (cached 1024), completion 300
    // = 1024×0.15 + 1024×0.075 + 300×0.60 = $0.0004104
    let c = PriceTable::embedded()
        .cost("gpt-4o-mini", &usage(1024, 1024, 0, 0, 300), Mode::Online)
        .expect("cost");
    assert_eq!(c.total, usd("0.0004104"));
    assert_eq!(c.input, usd("0.0001536"));
    assert_eq!(c.cache_read, usd("0.0000768"));
    assert_eq!(c.output, usd("0.00018"));
    assert_eq!(c.price_version, "2026-12-01:gpt-4o-mini");
}

#[test]
fn gpt_4o() {
    // 1000×2.50 + 2000×1.25 + 100×10 = 2500 + 2500 + 1000 µ$
    assert_eq!(
        total("gpt-4o", usage(1000, 2000, 0, 0, 100), Mode::Online),
        usd("0.006")
    );
    // The May 2024 snapshot keeps its own price: 1000×5 + 1000×15
    assert_eq!(
        total("gpt-4o-2024-05-13", Usage::new(1000, 1000), Mode::Online),
        usd("0.02")
    );
}

#[test]
fn gpt_4_1_family() {
    // 10,000×2 + 40,000×0.50 + 2,000×8 = 20,000 + 20,000 + 16,000 µ$
    assert_eq!(
        total("gpt-4.1", usage(10_000, 40_000, 0, 0, 2_000), Mode::Online),
        usd("0.056")
    );
    // 123,456×0.40 + 7,890×1.60 = 49,382.4 + 12,624 µ$
    assert_eq!(
        total("gpt-4.1-mini", Usage::new(123_456, 7_890), Mode::Online),
        usd("0.0620064")
    );
    // 1×0.10 + 3×0.025 + 1×0.40 = 0.1 + 0.075 + 0.4 µ$ = 575 nano-dollars
    assert_eq!(
        total("gpt-4.1-nano", usage(1, 3, 0, 0, 1), Mode::Online),
        Money::from_nanos(575)
    );
}

#[test]
fn claude_opus_4_5_every_bucket() {
    // 1000×5 + 4000×0.50 + 2000×6.25 + 3000×10 + 500×25
    // = 5000 + 2000 + 12,500 + 30,000 + 12,500 µ$
    let c = PriceTable::embedded()
        .cost(
            "claude-opus-4-5",
            &usage(1000, 4000, 2000, 3000, 500),
            Mode::Online,
        )
        .expect("cost");
    assert_eq!(c.total, usd("0.062"));
    assert_eq!(c.cache_write_5m, usd("0.0125"));
    assert_eq!(c.cache_write_1h, usd("0.03"));
    assert_eq!(c.cache_read, usd("0.002"));
}

#[test]
fn claude_sonnet_4_5_cache_read() {
    // providers.md 1d: 50×3 + 100,000×0.30 + 500×15 = $0.03765
    assert_eq!(
        total(
            "claude-sonnet-4.5",
            usage(50, 100_000, 0, 0, 500),
            Mode::Online
        ),
        usd("0.03765")
    );
}

#[test]
fn claude_haiku_4_5_cache_write() {
    // providers.md 1d: 20×1 + 10,000×1.25 + 100×5 = $0.01302
    assert_eq!(
        total(
            "claude-haiku-4-5",
            usage(20, 0, 10_000, 0, 100),
            Mode::Online
        ),
        usd("0.01302")
    );
}

#[test]
fn gemini_2_5_flash_thinking_is_output() {
    // providers.md 1d: prompt 34, candidates 418 + thoughts 438 = 856 output
    // = 34×0.30 + 856×2.50 = $0.0021502
    let u = Usage {
        input_tokens: 34,
        output_tokens: 856,
        reasoning_tokens: 438,
        ..Usage::default()
    };
    assert_eq!(total("gemini-2.5-flash", u, Mode::Online), usd("0.0021502"));
}

#[test]
fn gemini_2_5_pro_cached() {
    // providers.md 1d: prompt 11,500 incl. cached 10,000; 1000 + 10,000 thoughts
    // = 1500×1.25 + 10,000×0.125 + 11,000×10 = $0.113125
    assert_eq!(
        total(
            "gemini-2.5-pro",
            usage(1_500, 10_000, 0, 0, 11_000),
            Mode::Online
        ),
        usd("0.113125")
    );
}

#[test]
fn gemini_2_5_flash_lite() {
    // 10,000×0.10 + 5,000×0.01 + 1,000×0.40 = 1000 + 50 + 400 µ$
    assert_eq!(
        total(
            "gemini-2.5-flash-lite",
            usage(10_000, 5_000, 0, 0, 1_000),
            Mode::Online
        ),
        usd("0.00145")
    );
}

#[test]
fn gemini_3_pro_both_tiers() {
    // ≤200K: 100,000×2 + 10,000×12 = 200,000 + 120,000 µ$
    assert_eq!(
        total("gemini-3-pro", Usage::new(100_000, 10_000), Mode::Online),
        usd("0.32")
    );
    // 150,000 + 50,001 cached = 200,001 prompt tokens: the whole request at >200K
    // = 150,000×4 + 50,001×0.40 + 1,000×18 = 600,000 + 20,000.4 + 18,000 µ$
    let c = PriceTable::embedded()
        .cost(
            "gemini-3-pro-preview",
            &usage(150_000, 50_001, 0, 0, 1_000),
            Mode::Online,
        )
        .expect("cost");
    assert_eq!(c.tier_above, Some(200_000));
    assert_eq!(c.total, usd("0.6380004"));
}

// --------------------------------------------------- long-context tiers ----

#[test]
fn tier_boundary_200000_vs_200001_whole_prompt() {
    // Exactly 200,000 prompt tokens (150,000 input + 50,000 cached): base rates.
    // 150,000×1.25 + 50,000×0.125 + 1,000×10 = 187,500 + 6,250 + 10,000 µ$
    let at = PriceTable::embedded()
        .cost(
            "gemini-2.5-pro",
            &usage(150_000, 50_000, 0, 0, 1_000),
            Mode::Online,
        )
        .expect("cost");
    assert_eq!(at.tier_above, None);
    assert_eq!(at.total, usd("0.20375"));
    // 200,001: every bucket, output included, at the >200K rates.
    // 150,001×2.50 + 50,000×0.25 + 1,000×15 = 375,002.5 + 12,500 + 15,000 µ$
    let above = PriceTable::embedded()
        .cost(
            "gemini-2.5-pro",
            &usage(150_001, 50_000, 0, 0, 1_000),
            Mode::Online,
        )
        .expect("cost");
    assert_eq!(above.tier_above, Some(200_000));
    assert_eq!(above.total, usd("0.4025025"));
    assert_eq!(above.output, usd("0.015"));
}

#[test]
fn cache_writes_count_toward_the_tier() {
    // 199,999 input + 2 cache writes = 200,001: above. Gemini has no write
    // rate, so writes bill at the (tier) input rate: 200,001 × 2.50 µ$.
    assert_eq!(
        total("gemini-2.5-pro", usage(199_999, 0, 1, 1, 0), Mode::Online),
        usd("0.5000025")
    );
}

#[test]
fn sonnet_legacy_long_context_tier() {
    assert_eq!(
        total("claude-sonnet-4-5", Usage::new(200_000, 0), Mode::Online),
        usd("0.60")
    );
    assert_eq!(
        total("claude-sonnet-4-5", Usage::new(200_001, 0), Mode::Online),
        usd("1.200006")
    );
}

// ---------------------------------------------------------------- batch ----

#[test]
fn batch_is_half_of_every_bucket() {
    // gpt-4o-mini: 1024×0.075 + 1024×0.075 + 300×0.30 = 76.8 + 76.8 + 90 µ$
    // (no source gives a batched cached-input rate: the online cached rate)
    assert_eq!(
        total("gpt-4o-mini", usage(1024, 1024, 0, 0, 300), Mode::Batch),
        usd("0.0002436")
    );
    // gpt-5, whose batch cached input is published: 1024×0.625 + 1024×0.0625
    // + 300×5 = 640 + 64 + 1500 µ$
    assert_eq!(
        total("gpt-5", usage(1024, 1024, 0, 0, 300), Mode::Batch),
        usd("0.002204")
    );
    // Sonnet 4.5: 50×1.50 + 100,000×0.15 + 500×7.50
    assert_eq!(
        total(
            "claude-sonnet-4-5-20250929",
            usage(50, 100_000, 0, 0, 500),
            Mode::Batch
        ),
        usd("0.018825")
    );
    // Haiku 4.5 5-minute write at batch: 20×0.50 + 10,000×0.625 + 100×2.50
    assert_eq!(
        total(
            "claude-haiku-4-5",
            usage(20, 0, 10_000, 0, 100),
            Mode::Batch
        ),
        usd("0.00651")
    );
    // Opus 4.5 1-hour write at batch: 1000 × 5.00
    assert_eq!(
        total("claude-opus-4-5", usage(0, 0, 0, 1_000, 0), Mode::Batch),
        usd("0.005")
    );
    // Gemini 2.5 Pro batch, published as 0.625 / 5.00 below 200K ...
    assert_eq!(
        total("gemini-2.5-pro", Usage::new(1_000, 1_000), Mode::Batch),
        usd("0.005625")
    );
    // ... and 1.25 / 7.50 above.
    assert_eq!(
        total("gemini-2.5-pro", Usage::new(300_000, 1_000), Mode::Batch),
        usd("0.3825")
    );
}

#[test]
fn rounding_is_half_up_once() {
    // gpt-5 batch cache read is $0.0625/M: 62.5 nano-dollars a token.
    let c = PriceTable::embedded()
        .cost("gpt-5", &usage(0, 1, 0, 0, 0), Mode::Batch)
        .expect("cost");
    assert_eq!(c.total, Money::from_nanos(63));
    // 3 tokens = 187.5 → 188 (rounded once, on the exact sum)
    assert_eq!(
        total("gpt-5", usage(0, 3, 0, 0, 0), Mode::Batch),
        Money::from_nanos(188)
    );
    // Two half-nano buckets: the total rounds the exact sum (12.5 + 62.5 = 75),
    // not the sum of rounded buckets (13 + 63 = 76).
    let mut t = PriceTable::empty("t");
    t.insert(ModelPrice::new(
        "m",
        "x",
        Rates::new(Money::from_nanos(12_500_000), Money::from_nanos(62_500_000)),
    ));
    let c = t.cost("m", &Usage::new(1, 1), Mode::Online).expect("cost");
    assert_eq!((c.input.nanos(), c.output.nanos()), (13, 63));
    assert_eq!(c.total, Money::from_nanos(75));
}

// ---------------------------------------------------------------- aliases ----

#[test]
fn aliases_and_spellings_resolve_to_canonical_names() {
    let t = PriceTable::embedded();
    for (id, canonical) in [
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-2024-11-20", "gpt-4o"),
        ("openai/gpt-4o", "gpt-4o"),
        ("GPT-4o", "gpt-4o"),
        ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4.1-2025-04-14", "gpt-4.1"),
        ("gpt-4-1-mini", "gpt-4.1-mini"),
        ("gpt-4.1-nano-2025-04-14", "gpt-4.1-nano"),
        ("claude-sonnet-4.5", "claude-sonnet-4-5"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),
        ("anthropic/claude-sonnet-4-5", "claude-sonnet-4-5"),
        ("claude-opus-4-5-20251101", "claude-opus-4-5"),
        ("claude-opus-4.5", "claude-opus-4-5"),
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("claude-haiku-4.5", "claude-haiku-4-5"),
        ("models/gemini-2.5-pro", "gemini-2.5-pro"),
        ("gemini-2.5-pro-preview-06-05", "gemini-2.5-pro"),
        ("gemini-2.5-flash-preview-09-2025", "gemini-2.5-flash"),
        ("models/gemini-2.5-flash-lite", "gemini-2.5-flash-lite"),
        ("gemini-3-pro", "gemini-3-pro-preview"),
        ("models/gemini-3-pro-preview", "gemini-3-pro-preview"),
    ] {
        assert_eq!(t.canonical(id), Some(canonical), "{id}");
    }
    // Different models never fall back to a shorter name.
    for id in [
        "gpt-4o-mini-tts",
        "gemini-2.5-flash-image",
        "claude-sonnet-4",
        "claude-sonnet-4-5-turbo",
        "",
    ] {
        assert_eq!(t.canonical(id), None, "{id}");
    }
}

#[test]
fn unknown_model_names_the_closest() {
    let err = PriceTable::embedded()
        .cost("claude-sonet-4.5", &Usage::new(1, 1), Mode::Online)
        .expect_err("unknown");
    match &err {
        PricingError::UnknownModel { model, suggestions } => {
            assert_eq!(model, "claude-sonet-4.5");
            assert_eq!(
                suggestions.first().map(String::as_str),
                Some("claude-sonnet-4-5")
            );
        }
        other => panic!("expected UnknownModel, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("did you mean claude-sonnet-4-5"), "{msg}");
    assert!(msg.contains("cost-tracker models"), "{msg}");
}

#[test]
fn absurd_counts_overflow_with_a_typed_error() {
    let err = PriceTable::embedded()
        .cost("claude-opus-4-5", &Usage::new(0, u64::MAX), Mode::Online)
        .expect_err("overflow");
    assert!(matches!(err, PricingError::Overflow { tokens, .. } if tokens == u64::MAX));
}

// ------------------------------------------------------------ user files ----

#[test]
fn user_file_overrides_and_adds() {
    let t = PriceTable::with_user_file(fixture("user_prices.toml")).expect("load");
    assert_eq!(t.version(), "2026-12-01+acme-2026-12");
    // gpt-4o now at the negotiated rate, through its aliases too:
    // 1000×2 + 1000×1 + 100×8 = 3800 µ$
    let c = t
        .cost(
            "gpt-4o-2024-08-06",
            &usage(1000, 1000, 0, 0, 100),
            Mode::Online,
        )
        .expect("cost");
    assert_eq!(c.total, usd("0.0038"));
    assert_eq!(c.provider, "openai"); // inferred from the name
    assert_eq!(c.price_version, "2026-12-01+acme-2026-12:gpt-4o");
    assert_eq!(t.shadowed(), ["gpt-4o"]);
    let old = t.shadowed_entry("gpt-4o").expect("shadowed");
    assert_eq!(old.rates.input, usd("2.50"));
    assert_eq!(old.origin, "embedded");
    let new = t.get("gpt-4o").expect("gpt-4o");
    assert!(new.origin.ends_with("user_prices.toml"), "{}", new.origin);
    // The new model, by alias; numbers in TOML read exactly.
    let c = t
        .cost(
            "acme/llm-7b-v1",
            &Usage::new(1_000_000, 1_000_000),
            Mode::Online,
        )
        .expect("cost");
    assert_eq!(c.model, "acme-llm-7b");
    assert_eq!(c.total, usd("0.25"));
    assert_eq!(
        t.get("acme-llm-7b")
            .and_then(|m| m.deprecated.clone())
            .as_deref(),
        Some("2027-06-30")
    );
    // Everything else untouched.
    assert_eq!(t.len(), PriceTable::embedded().len() + 1);
    assert!(t.shadowed_entry("gpt-4o-mini").is_none());
}

#[test]
fn user_file_round_trips_through_a_real_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("prices.toml");
    std::fs::write(
        &path,
        "[[models]]\nmodel = \"claude-haiku-4.5\"\ninput = \"0.80\"\noutput = \"4\"\n",
    )
    .expect("write");
    let t = PriceTable::with_user_file(&path).expect("load");
    // The seed spelling replaced claude-haiku-4-5; the dated alias follows.
    assert_eq!(
        t.canonical("claude-haiku-4-5-20251001"),
        Some("claude-haiku-4.5")
    );
    assert_eq!(t.version(), "2026-12-01+prices.toml");
    // No cache rates given: cache reads bill at the input rate.
    assert_eq!(
        t.cost(
            "claude-haiku-4-5",
            &usage(0, 1_000_000, 0, 0, 0),
            Mode::Online
        )
        .expect("cost")
        .total,
        usd("0.80")
    );
}

// ----------------------------------------------------------- bad files ----

fn parse_err(name: &str) -> (usize, usize, String) {
    match PriceTable::from_path(fixture(name)) {
        Err(PricingError::Parse {
            line,
            column,
            message,
            path,
        }) => {
            assert!(path.ends_with(name), "{path}");
            (line, column, message)
        }
        other => panic!("{name}: expected a parse error, got {other:?}"),
    }
}

#[test]
fn malformed_toml_names_line_and_field() {
    let (line, _, msg) = parse_err("bad_rate.toml");
    assert_eq!(line, 6, "{msg}");
    assert!(msg.contains("two dollars"), "{msg}");
    assert!(msg.contains("decimal number"), "{msg}");

    let (line, _, msg) = parse_err("bad_field.toml");
    assert_eq!(line, 6, "{msg}");
    assert!(msg.contains("cache_reed"), "{msg}");

    let (line, col, msg) = parse_err("bad_date.toml");
    assert_eq!((line, col), (10, 14), "{msg}");
    assert!(msg.contains("acme-llm-2"), "{msg}");
    assert!(msg.contains("`deprecated`"), "{msg}");
    assert!(msg.contains("YYYY-MM-DD"), "{msg}");
    let full = PriceTable::from_path(fixture("bad_date.toml"))
        .expect_err("bad")
        .to_string();
    assert!(full.contains("bad_date.toml:10:14: "), "{full}");
}

#[test]
fn toml_semantic_errors() {
    let cases = [
        (
            "[[models]]\nmodel = \"x\"\ninput = \"1\"\noutput = \"1\"\n",
            "provider",
        ),
        (
            "[[models]]\nmodel = \"gpt-x\"\ninput = \"-1\"\noutput = \"1\"\n",
            "negative",
        ),
        (
            "[[models]]\nmodel = \"gpt-x\"\ninput = -1\noutput = \"1\"\n",
            "negative",
        ),
        (
            "[[models]]\nmodel = \"gpt-x\"\ninput = \"1\"\noutput = \"1\"\nbatch_percent = 0\n",
            "1 to 100",
        ),
        (
            "[[models]]\nmodel = \"gpt-x\"\ninput = \"1\"\noutput = \"1\"\n[[models]]\nmodel = \"gpt.x\"\ninput = \"1\"\noutput = \"1\"\n",
            "already used",
        ),
        (
            "[[models]]\nmodel = \"gpt-x\"\ninput = \"1\"\noutput = \"1\"\n[[models.tiers]]\nabove_prompt_tokens = 5\ninput = \"2\"\noutput = \"2\"\n[[models.tiers]]\nabove_prompt_tokens = 5\ninput = \"3\"\noutput = \"3\"\n",
            "ascending",
        ),
        (
            "[[models]]\nmodel = \"gpt-x\"\ninput = \"0.0000000001\"\noutput = \"1\"\n",
            "9 decimals",
        ),
        ("[[models]]\nmodel = \"gpt-x\"\noutput = \"1\"\n", "input"),
        ("this is not toml", "costlayer::pricing"),
    ];
    for (text, needle) in cases {
        match PriceTable::from_toml_str(text, "inline.toml") {
            Err(PricingError::Parse { message, line, .. }) => {
                assert!(message.contains(needle), "{needle}: {message}");
                assert!(line >= 1, "{needle}: no line");
            }
            other => panic!("{needle}: expected parse error, got {other:?}"),
        }
    }
}

#[test]
fn io_errors_are_typed() {
    let err = PriceTable::from_path(fixture("does-not-exist.toml")).expect_err("missing");
    assert!(matches!(err, PricingError::Io { .. }));
    assert!(err.to_string().contains("Check the path"), "{err}");
}

// --------------------------------------------------------------- LiteLLM ----

#[test]
fn litellm_file_loads_with_exact_rates() {
    let t = PriceTable::from_path(fixture("litellm_prices.json")).expect("load");
    assert_eq!(t.version(), "litellm:litellm_prices.json");
    // sample_spec, dall-e-3 (per pixel) and the all-null entry are skipped;
    // azure/gpt-4o and the vertex gemini-2.5-pro are kept under their
    // prefixed names only, so the bare names stay first-party.
    let names: Vec<&str> = t.models().map(|m| m.model.as_str()).collect();
    assert_eq!(
        names,
        [
            "gpt-4o",
            "azure/gpt-4o",
            "gpt-4o-mini",
            "claude-sonnet-4-5",
            "vertex_ai/gemini-2.5-pro",
            "gemini-2.5-pro",
            "text-embedding-3-small",
            "acme-odd-batch"
        ]
    );
    assert_eq!(t.get("gpt-4o").map(|m| m.provider.as_str()), Some("openai"));
    assert_eq!(
        t.get("azure/gpt-4o").map(|m| m.provider.as_str()),
        Some("azure")
    );
    let gpt4o = t.get("gpt-4o").expect("gpt-4o");
    assert_eq!(gpt4o.provider, "openai");
    assert_eq!(gpt4o.rates.input, usd("2.50"));
    assert_eq!(gpt4o.rates.cache_read, Some(usd("1.25")));
    assert_eq!(gpt4o.deprecated.as_deref(), Some("2027-01-14"));
    assert_eq!(
        gpt4o.source.as_deref(),
        Some("https://developers.openai.com/api/docs/pricing")
    );
    assert_eq!(gpt4o.batch, BatchPricing::Percent(50));

    // Same vectors as the embedded table, to the nano-dollar.
    let c = t
        .cost("gpt-4o-mini", &usage(1024, 1024, 0, 0, 300), Mode::Online)
        .expect("cost");
    assert_eq!(c.total, usd("0.0004104"));
    let c = t
        .cost(
            "claude-sonnet-4-5-20250929",
            &usage(50, 100_000, 0, 0, 500),
            Mode::Online,
        )
        .expect("cost");
    assert_eq!(c.total, usd("0.03765"));

    // Sonnet: 1-hour writes and every bucket's >200K tier.
    let s = t.get("claude-sonnet-4-5").expect("sonnet");
    assert_eq!(s.rates.cache_write_5m, Some(usd("3.75")));
    assert_eq!(s.rates.cache_write_1h, Some(usd("6")));
    let tier = s.tiers.first().expect("tier");
    assert_eq!(tier.above_prompt_tokens, 200_000);
    assert_eq!(tier.rates.input, usd("6"));
    assert_eq!(tier.rates.output, usd("22.50"));
    assert_eq!(tier.rates.cache_read, Some(usd("0.60")));
    assert_eq!(tier.rates.cache_write_5m, Some(usd("7.50")));
    assert_eq!(tier.rates.cache_write_1h, Some(usd("12")));

    // Gemini via the `gemini/` key: tier boundary and batch.
    let g = t.get("models/gemini-2.5-pro").expect("gemini");
    assert_eq!(g.provider, "gemini");
    assert_eq!(
        t.cost(
            "gemini-2.5-pro",
            &usage(150_000, 50_000, 0, 0, 1_000),
            Mode::Online
        )
        .expect("cost")
        .total,
        usd("0.20375")
    );
    assert_eq!(
        t.cost(
            "gemini-2.5-pro",
            &usage(150_001, 50_000, 0, 0, 1_000),
            Mode::Online
        )
        .expect("cost")
        .total,
        usd("0.4025025")
    );
    assert_eq!(
        t.cost("gemini-2.5-pro", &Usage::new(300_000, 1_000), Mode::Batch)
            .expect("cost")
            .total,
        usd("0.3825")
    );

    // Embeddings: output 0, batch half.
    let e = t.get("text-embedding-3-small").expect("embedding");
    assert_eq!(e.rates.input, usd("0.02"));
    assert_eq!(e.batch, BatchPricing::Percent(50));

    // A batch discount that is not one percentage: explicit rates.
    match &t.get("acme-odd-batch").expect("acme").batch {
        BatchPricing::Explicit { rates, .. } => {
            assert_eq!((rates.input, rates.output), (usd("0.70"), usd("1")));
        }
        other => panic!("expected explicit batch rates, got {other:?}"),
    }
}

#[test]
fn litellm_file_merges_over_the_defaults() {
    let mut t = PriceTable::default();
    t.merge_overrides(PriceTable::from_path(fixture("litellm_prices.json")).expect("load"));
    assert!(t.shadowed().contains(&"gpt-4o".to_owned()));
    assert!(t.get("acme-odd-batch").is_some());
    // A shadowed default keeps its aliases: the dated id still resolves.
    assert_eq!(
        t.canonical("claude-sonnet-4-5-20250929"),
        Some("claude-sonnet-4-5")
    );
}

#[test]
fn malformed_litellm_names_line_model_and_field() {
    let (line, _, msg) = parse_err("bad_litellm.json");
    assert_eq!(line, 8, "{msg}");
    assert!(msg.contains("input_cost_per_token"), "{msg}");
    assert!(msg.contains("acme-broken"), "{msg}");

    let (line, _, msg) = parse_err("truncated_litellm.json");
    assert_eq!(line, 5, "{msg}");
    assert!(msg.contains("EOF"), "{msg}");

    let negative = r#"{"m": {"litellm_provider": "x",
        "input_cost_per_token": -1e-06, "output_cost_per_token": 1e-06}}"#;
    match PriceTable::from_litellm_str(negative, "neg.json") {
        Err(PricingError::Parse { line, message, .. }) => {
            assert_eq!(line, 2, "{message}");
            assert!(message.contains("model `m`"), "{message}");
            assert!(message.contains("zero or more"), "{message}");
        }
        other => panic!("expected parse error, got {other:?}"),
    }
    assert!(matches!(
        PriceTable::from_litellm_str("[1, 2]", "list.json"),
        Err(PricingError::Parse { .. })
    ));
}
