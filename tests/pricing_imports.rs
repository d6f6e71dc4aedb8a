//! Imported price files (LiteLLM, genai-prices) never override a first
//! party by accident; new billed dimensions; effective dates; hostile files.
//!
//! The fixtures are cut from the real files: `litellm_1.110.2_cut.json`
//! from `litellm/model_prices_and_context_window_backup.json` in the
//! `litellm==1.110.2` wheel, `genai_prices_0.2.3_cut.json` from the data of
//! the `genai-prices==0.2.3` wheel (both MIT licensed; see
//! tests/fixtures/pricing/README.md).

use std::path::PathBuf;

use chrono::{TimeZone, Utc};
use costlayer::pricing::{BatchPricing, PriceTable, PricingError};
use costlayer::{CostStatus, Mode, Money, ServiceTier, Usage};

fn usd(s: &str) -> Money {
    s.parse().expect("money literal")
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pricing")
        .join(name)
}

/// The issue's documented example: 50 input, 100,000 cache reads, 500 output.
fn sonnet_example() -> Usage {
    Usage {
        input_tokens: 50,
        cache_read_tokens: 100_000,
        output_tokens: 500,
        ..Usage::default()
    }
}

fn with(file: &str) -> PriceTable {
    PriceTable::with_user_file(fixture(file)).expect("load")
}

// -------------------------------------------------------------- imports ----

#[test]
fn litellm_map_keeps_first_party_prices_and_providers() {
    let t = with("litellm_1.110.2_cut.json");
    // $0.00015 input + $0.03 cache reads + $0.0075 output.
    for name in [
        "claude-sonnet-4.5",
        "claude-sonnet-4-5",
        "claude-sonnet-4-5-20250929",
        "anthropic/claude-sonnet-4.5",
        "claude-4-5-sonnet",
    ] {
        let c = t
            .cost(name, &sonnet_example(), Mode::Online)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(c.total, usd("0.03765"), "{name}");
        assert_eq!(c.provider, "anthropic", "{name}");
    }
    for name in [
        "claude-haiku-4.5",
        "claude-haiku-4-5-20251001",
        "claude-4-5-haiku",
    ] {
        assert_eq!(t.get(name).expect(name).provider, "anthropic", "{name}");
    }
    assert_eq!(
        t.get("gemini-3-pro").expect("gemini-3-pro").provider,
        "gemini"
    );
    // Resellers are reachable by their own prefixed names only.
    let r = t
        .get("replicate/anthropic/claude-4.5-sonnet")
        .expect("replicate");
    assert_eq!(r.provider, "replicate");
    assert!(r.prefixed_only);
    assert_eq!(
        t.get("vertex_ai/claude-3-5-haiku")
            .expect("vertex")
            .provider,
        "vertex_ai"
    );
    assert_eq!(
        t.get("bedrock/anthropic.claude-3-5-haiku-20241022-v1:0")
            .expect("bedrock")
            .provider,
        "bedrock"
    );
}

#[test]
fn a_model_no_first_party_prices_never_gets_a_resellers_rate() {
    let bare = PriceTable::from_path(fixture("litellm_1.110.2_cut.json")).expect("load");
    // The map prices claude-3-5-haiku only through Vertex, Bedrock, Heroku.
    assert!(bare.get("claude-3-5-haiku").is_none());
    assert!(bare.get("claude-3-5-haiku-20241022").is_none());
    assert!(bare.get("gemini-3-pro-preview").is_none());
    // Over the embedded table, only a first party's own entry can price it.
    let t = with("litellm_1.110.2_cut.json");
    if let Some(m) = t.get("claude-3-5-haiku") {
        assert_eq!(m.provider, "anthropic");
        assert!(!m.prefixed_only);
    }
    assert!(t.models().filter(|m| !m.prefixed_only).all(|m| !matches!(
        m.provider.as_str(),
        "replicate" | "bedrock" | "bedrock_converse" | "vertex_ai" | "openrouter" | "azure"
    ) || !m.model.contains("claude")));
}

#[test]
fn the_listing_names_the_file_and_entry() {
    let t = with("litellm_1.110.2_cut.json");
    let s = t.get("claude-sonnet-4-5").expect("sonnet");
    assert!(
        s.origin.ends_with("litellm_1.110.2_cut.json"),
        "{}",
        s.origin
    );
    assert_eq!(s.entry, None); // the key is the name
    let g = t.get("gemini-2.5-flash-lite").expect("flash-lite");
    assert_eq!(g.entry.as_deref(), Some("gemini/gemini-2.5-flash-lite"));
    let r = t
        .get("vertex_ai/gemini-3-pro-preview")
        .expect("vertex gemini");
    assert_eq!(r.model, "vertex_ai/gemini-3-pro-preview");
    assert!(t.reseller_count() > 10, "{}", t.reseller_count());
}

#[test]
fn litellm_batch_cache_read_and_service_tier_keys_are_honoured() {
    let t = PriceTable::from_path(fixture("litellm_1.110.2_cut.json")).expect("load");
    // Gemini batch: the file keeps cache reads at the online rate.
    let lite = t.get("gemini-2.5-flash-lite").expect("flash-lite");
    match &lite.batch {
        BatchPricing::Explicit { rates, .. } => {
            assert_eq!(rates.input, usd("0.05"));
            assert_eq!(rates.cache_read, Some(usd("0.01")));
        }
        other => panic!("expected explicit batch rates, got {other:?}"),
    }
    let reads = Usage {
        cache_read_tokens: 1_000_000,
        ..Usage::default()
    };
    assert_eq!(
        t.cost("gemini-2.5-flash-lite", &reads, Mode::Batch)
            .expect("cost")
            .total,
        usd("0.01")
    );
    // Anthropic: every batch key is half: one percentage.
    assert_eq!(
        t.get("claude-sonnet-4-5").expect("sonnet").batch,
        BatchPricing::Percent(50)
    );
    // gpt-5: flex is half, priority double (input 1.25 / 0.625 / 2.50).
    let flex = Usage {
        input_tokens: 1_000_000,
        service_tier: ServiceTier::Flex,
        ..Usage::default()
    };
    let c = t.cost("gpt-5", &flex, Mode::Online).expect("cost");
    assert_eq!((c.total, c.status), (usd("0.625"), CostStatus::Exact));
    let prio = Usage {
        service_tier: ServiceTier::Priority,
        ..flex
    };
    let c = t.cost("gpt-5", &prio, Mode::Online).expect("cost");
    assert_eq!(
        (c.total, c.service_tier),
        (usd("2.50"), ServiceTier::Priority)
    );
    // Web search: $0.01 per query is $10 per 1,000.
    assert_eq!(
        t.get("claude-sonnet-4-5")
            .expect("sonnet")
            .web_search_per_1k,
        Some(usd("10"))
    );
}

#[test]
fn genai_prices_data_loads_with_first_party_names_and_prefixed_resellers() {
    let t = with("genai_prices_0.2.3_cut.json");
    let c = t
        .cost("claude-sonnet-4.5", &sonnet_example(), Mode::Online)
        .expect("cost");
    assert_eq!(
        (c.total, c.provider.as_str()),
        (usd("0.03765"), "anthropic")
    );
    let haiku = t
        .get("claude-3-5-haiku")
        .expect("haiku 3.5 by its match clause");
    assert_eq!(haiku.provider, "anthropic");
    assert_eq!(haiku.rates.input, usd("0.8"));
    assert_eq!(
        haiku.entry.as_deref(),
        Some("anthropic/claude-3-5-haiku-latest")
    );
    let or = t
        .get("openrouter/anthropic/claude-3.5-haiku")
        .expect("openrouter");
    assert!(or.prefixed_only);
    assert_eq!(or.provider, "openrouter");
    // Gemini audio input has its own rate: 1,000 text + 1,000 audio.
    let audio = Usage {
        input_tokens: 1_000,
        input_audio_tokens: 1_000,
        ..Usage::default()
    };
    let c = t
        .cost("gemini-2.5-flash", &audio, Mode::Online)
        .expect("cost");
    assert_eq!((c.total, c.status), (usd("0.0013"), CostStatus::Exact));
    assert_eq!(c.provider, "gemini");
}

#[test]
fn genai_prices_effective_dates_price_a_call_by_its_timestamp() {
    let t = PriceTable::from_path(fixture("genai_prices_0.2.3_cut.json")).expect("load");
    let m = t.get("claude-sonnet-4-6").expect("sonnet 4.6");
    assert_eq!(m.effective_from.as_deref(), Some("2026-03-13"));
    assert_eq!(m.earlier.len(), 1);
    // Above 200K prompt tokens the tier applied until 2026-03-12 and no
    // longer from 2026-03-13 (flat 1M context).
    let long = Usage::new(300_000, 0);
    let before = Utc.with_ymd_and_hms(2026, 3, 12, 23, 59, 59).unwrap();
    let after = Utc.with_ymd_and_hms(2026, 3, 13, 0, 0, 0).unwrap();
    let c = t
        .cost_at("claude-sonnet-4-6", &long, Mode::Online, before)
        .expect("cost");
    assert_eq!(c.total, usd("1.80"));
    assert!(!c.price_version.contains('@'), "{}", c.price_version);
    let c = t
        .cost_at("claude-sonnet-4-6", &long, Mode::Online, after)
        .expect("cost");
    assert_eq!(c.total, usd("0.90"));
    assert!(
        c.price_version.ends_with("claude-sonnet-4-6@2026-03-13"),
        "{}",
        c.price_version
    );
}

// --------------------------------------------- real bodies, end to end ----

/// Decodes a documented response body with the provider's codec and prices
/// its usage with the embedded table.
fn priced(provider: &str, body: &str, model: &str) -> costlayer::pricing::Cost {
    use costlayer::core::{ApiKey, Codec, HttpResponse};
    let path = fixture("bodies").join(body);
    let resp = HttpResponse {
        status: http::StatusCode::OK,
        headers: http::HeaderMap::new(),
        body: bytes::Bytes::from(std::fs::read(&path).expect("fixture")),
    };
    let req = costlayer::ChatRequest::new(model);
    let key = ApiKey::new("test-key");
    let decoded = match provider {
        "anthropic" => costlayer::anthropic::AnthropicCodec::new(key).decode(&req, resp),
        "openai" => costlayer::openai::OpenAiCodec::new(key).decode(&req, resp),
        _ => costlayer::gemini::GeminiCodec::new(key).decode(&req, resp),
    }
    .expect("decode");
    PriceTable::embedded()
        .cost(&decoded.model, &decoded.usage, decoded.mode)
        .expect("priced")
}

#[test]
fn anthropic_web_searches_are_billed_per_thousand() {
    // 6,039×$3 + 931×$15 = $0.032082, plus 2 searches × $0.01.
    let c = priced(
        "anthropic",
        "anthropic_web_search.json",
        "claude-sonnet-4-5",
    );
    assert_eq!(c.web_search, usd("0.02"));
    assert_eq!((c.total, c.status), (usd("0.052082"), CostStatus::Exact));
}

#[test]
fn anthropic_compaction_bills_every_iteration() {
    // (180,000 + 1,200) × $3 + (3,500 + 300) × $15 = $0.5436 + $0.057;
    // the top-level counts alone would be $0.0081.
    let c = priced(
        "anthropic",
        "anthropic_compaction.json",
        "claude-sonnet-4-5",
    );
    assert_eq!((c.total, c.status), (usd("0.6006"), CostStatus::Exact));
}

#[test]
fn openai_priority_tier_is_billed_at_priority_rates() {
    // gpt-4.1 priority: 1,024×$3.50 + 1,024×$0.875 + 300×$14.
    let c = priced("openai", "openai_priority.json", "gpt-4.1");
    assert_eq!(c.model, "gpt-4.1");
    assert_eq!(c.service_tier, ServiceTier::Priority);
    assert_eq!((c.total, c.status), (usd("0.00868"), CostStatus::Exact));
}

#[test]
fn gemini_audio_and_priority_traffic() {
    // 10 text × $0.30 + 3,200 audio × $1.00 + 40 × $2.50 (text-only: $0.001063).
    let c = priced("gemini", "gemini_audio.json", "gemini-2.5-flash");
    assert_eq!(c.input_audio, usd("0.0032"));
    assert_eq!((c.total, c.status), (usd("0.003303"), CostStatus::Exact));
    // Priority: 1,000 × $0.54 + 100 × $4.50.
    let c = priced("gemini", "gemini_priority.json", "gemini-2.5-flash");
    assert_eq!(
        (c.total, c.service_tier),
        (usd("0.00099"), ServiceTier::Priority)
    );
}

#[test]
fn a_priority_claude_call_is_incomplete_not_silently_standard() {
    let u = Usage {
        input_tokens: 1_000,
        service_tier: ServiceTier::Priority,
        ..Usage::default()
    };
    let c = PriceTable::embedded()
        .cost("claude-sonnet-4-5", &u, Mode::Online)
        .expect("cost");
    assert_eq!((c.total, c.status), (usd("0.003"), CostStatus::Incomplete));
    assert!(c.notes[0].contains("priority"), "{:?}", c.notes);
}

// ----------------------------------------------------- billed dimensions ----

#[test]
fn unpriced_dimensions_make_the_cost_incomplete_and_say_which() {
    let t = PriceTable::from_toml_str(
        r#"
[[models]]
model = "claude-x"
input = "3"
output = "15"
"#,
        "t.toml",
    )
    .expect("parse");
    let u = Usage {
        input_tokens: 1_000,
        web_search_requests: 2,
        service_tier: ServiceTier::Priority,
        ..Usage::default()
    };
    let c = t.cost("claude-x", &u, Mode::Online).expect("cost");
    assert_eq!(c.status, CostStatus::Incomplete);
    assert_eq!(c.total, usd("0.003")); // a lower bound: standard rates, no search fee
    assert_eq!(c.notes.len(), 2, "{:?}", c.notes);
    assert!(c.notes.iter().any(|n| n.contains("web_search_requests")));
    assert!(c.notes.iter().any(|n| n.contains("priority")));
    let audio = Usage {
        input_audio_tokens: 10,
        ..Usage::default()
    };
    let c = t.cost("claude-x", &audio, Mode::Online).expect("cost");
    assert_eq!(c.status, CostStatus::Incomplete);
    assert!(c.notes[0].contains("input_audio_tokens"), "{:?}", c.notes);
    // Plain usage stays exact.
    let c = t
        .cost("claude-x", &Usage::new(1, 1), Mode::Online)
        .expect("cost");
    assert_eq!((c.status, c.notes.len()), (CostStatus::Exact, 0));
}

#[test]
fn toml_prices_every_dimension_by_hand() {
    let t = PriceTable::from_toml_str(
        r#"
[[models]]
model = "gpt-z"
input = "2"
output = "8"
cache_read = "0.5"
cache_write_5m = "2.5"
input_audio = "40"
web_search_per_1k = "10"
flex = { input = "1", output = "4", cache_read = "0.25" }
priority = { input = "3.5", output = "14" }
"#,
        "t.toml",
    )
    .expect("parse");
    let u = Usage {
        input_tokens: 1_000,
        cache_read_tokens: 2_000,
        cache_write_5m_tokens: 400,
        input_audio_tokens: 100,
        output_tokens: 500,
        web_search_requests: 3,
        ..Usage::default()
    };
    // 1000×2 + 2000×0.5 + 400×2.5 + 100×40 + 500×8 = 12,000 µ$ = $0.012;
    // 3 searches × $0.01 = $0.03.
    let c = t.cost("gpt-z", &u, Mode::Online).expect("cost");
    assert_eq!(c.input_audio, usd("0.004"));
    assert_eq!(c.web_search, usd("0.03"));
    assert_eq!((c.total, c.status), (usd("0.042"), CostStatus::Exact));
    // Flex: 1000×1 + 2000×0.25 + 400×1 (no flex write rate: the flex input
    // rate) + 500×4 = 3,900 µ$, plus the searches.
    let flex = Usage {
        service_tier: ServiceTier::Flex,
        input_audio_tokens: 0,
        ..u
    };
    let c = t.cost("gpt-z", &flex, Mode::Online).expect("cost");
    assert_eq!(c.total, usd("0.0339")); // 0.0039 + 0.03
    assert_eq!(c.service_tier, ServiceTier::Flex);
}

// ---------------------------------------------------------- effective dates ----

#[test]
fn toml_effective_dates_and_their_boundary() {
    let t = PriceTable::from_toml_str(
        r#"
version = "t"
[[models]]
model = "gemini-q"
input = "0.30"
output = "2.50"
cache_read = "0.075"

[[models]]
model = "gemini-q"
effective_from = "2026-10-01"
input = "0.30"
output = "2.50"
cache_read = "0.03"
"#,
        "t.toml",
    )
    .expect("parse");
    assert_eq!(t.len(), 1);
    let reads = Usage {
        cache_read_tokens: 1_000_000,
        ..Usage::default()
    };
    let at = |y, m, d, h| {
        t.cost_at(
            "gemini-q",
            &reads,
            Mode::Online,
            Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap(),
        )
        .expect("cost")
    };
    assert_eq!(at(2026, 9, 30, 23).total, usd("0.075"));
    assert_eq!(at(2026, 9, 30, 23).price_version, "t:gemini-q");
    assert_eq!(at(2026, 10, 1, 0).total, usd("0.03"));
    assert_eq!(at(2026, 10, 1, 0).price_version, "t:gemini-q@2026-10-01");
}

// ------------------------------------------------------------ bad input ----

fn parse_err(text: &str) -> String {
    match PriceTable::from_toml_str(text, "hostile.toml") {
        Err(e @ PricingError::Parse { .. }) => e.to_string(),
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn hostile_toml_files_name_file_entry_and_field() {
    let e = parse_err("[[models]]\nmodel = \"gpt-m\"\ninput = \"-1\"\noutput = \"1\"\n");
    assert!(e.starts_with("hostile.toml:3:"), "{e}");
    assert!(e.contains("negative"), "{e}");
    let e = parse_err("[[models]]\nmodel = \"gpt-m\"\ninput = nan\noutput = \"1\"\n");
    assert!(e.contains("not a number"), "{e}");
    let e = parse_err("[[models]]\nmodel = \"gpt-m\"\ninput = \"5000000\"\noutput = \"1\"\n");
    assert!(e.contains("absurd"), "{e}");
    let e = parse_err("[[models]]\nmodel = \"gpt-m\"\ninput = \"1\"\noutput = \"1\"\ncolour = 1\n");
    assert!(e.contains("colour"), "{e}");
    let e = parse_err(
        "[[models]]\nmodel = \"gpt-m\"\ninput = \"1\"\noutput = \"1\"\n[[models]]\nmodel = \"gpt-m\"\ninput = \"2\"\noutput = \"2\"\n",
    );
    assert!(e.starts_with("hostile.toml:6:"), "{e}");
    assert!(e.contains("already used") && e.contains("`gpt-m`"), "{e}");
    let e = parse_err(
        "[[models]]\nmodel = \"gpt-m\"\neffective_from = \"soon\"\ninput = \"1\"\noutput = \"1\"\n",
    );
    assert!(
        e.contains("effective_from") && e.contains("model `gpt-m`"),
        "{e}"
    );
}

#[test]
fn hostile_genai_prices_files_name_entry_and_field() {
    let text = r#"[{"id": "anthropic", "models": [
        {"id": "claude-q", "prices": {"input_mtok": -3, "output_mtok": 15}}]}]"#;
    match PriceTable::from_genai_prices_str(text, "data.json") {
        Err(PricingError::Parse { line, message, .. }) => {
            assert_eq!(line, 2, "{message}");
            assert!(message.contains("anthropic/claude-q"), "{message}");
            assert!(message.contains("input_mtok"), "{message}");
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
    let text = r#"[{"id": "openai", "models": [
        {"id": "gpt-q", "prices": {"input_mtok": "cheap", "output_mtok": 1}}]}]"#;
    let e = PriceTable::from_genai_prices_str(text, "data.json").expect_err("string rate");
    assert!(e.to_string().contains("not a number"), "{e}");
    let text = r#"[{"id": "openai", "models": [{"id": "gpt-q", "prices": {"input_mtok": 1e9}}]}]"#;
    let e = PriceTable::from_genai_prices_str(text, "data.json").expect_err("absurd");
    assert!(e.to_string().contains("absurd"), "{e}");
    let nan = r#"{"gpt-q": {"litellm_provider": "openai", "input_cost_per_token": 5.0}}"#;
    let e = PriceTable::from_litellm_str(nan, "map.json").expect_err("absurd");
    assert!(
        e.to_string().contains("absurd") && e.to_string().contains("gpt-q"),
        "{e}"
    );
}

/// The whole LiteLLM map and genai-prices data, when given (they are too
/// large to commit): `COSTLAYER_LITELLM_MAP=…/model_prices_and_context_window_backup.json
/// COSTLAYER_GENAI_PRICES=…/data.json cargo test --test pricing_imports -- --ignored`.
#[test]
#[ignore = "needs the full data files; see the doc comment"]
fn whole_files_keep_first_party_prices() {
    for var in ["COSTLAYER_LITELLM_MAP", "COSTLAYER_GENAI_PRICES"] {
        let path = std::env::var(var).unwrap_or_else(|_| panic!("set {var}"));
        let started = std::time::Instant::now();
        let t = PriceTable::with_user_file(&path).expect("load");
        eprintln!("{var}: {} entries in {:?}", t.len(), started.elapsed());
        let c = t
            .cost("claude-sonnet-4.5", &sonnet_example(), Mode::Online)
            .expect("sonnet");
        assert_eq!(
            (c.total, c.provider.as_str()),
            (usd("0.03765"), "anthropic")
        );
        for m in [
            "claude-haiku-4.5",
            "gemini-3-pro",
            "gpt-4o",
            "gemini-2.5-pro",
        ] {
            let p = t.get(m).unwrap_or_else(|| panic!("{m}"));
            assert!(
                ["openai", "anthropic", "gemini"].contains(&p.provider.as_str()),
                "{m}: {}",
                p.provider
            );
        }
        if let Some(h) = t.get("claude-3-5-haiku") {
            assert_eq!(h.provider, "anthropic", "{var}");
        }
    }
}

// ------------------------------------------------------ ledger records ----

#[tokio::test]
async fn the_ledger_record_says_incomplete_and_why() {
    use std::sync::Arc;

    use costlayer::layer::cost::CostLayer;
    use costlayer::ledger::MemoryStorage;
    use costlayer::tracker::CostTracker;
    use costlayer::{ChatRequest, ChatResponse, Error, Message};
    use tower::{service_fn, ServiceBuilder, ServiceExt};

    let prices = PriceTable::from_toml_str(
        "[[models]]\nmodel = \"claude-q\"\ninput = \"3\"\noutput = \"15\"\n",
        "t.toml",
    )
    .expect("parse");
    let storage = MemoryStorage::new();
    let tracker = CostTracker::builder()
        .storage(Arc::new(storage.clone()))
        .prices(prices)
        .user("alice")
        .build()
        .expect("tracker");
    let svc = ServiceBuilder::new()
        .layer(CostLayer::new(tracker))
        .service(service_fn(|req: ChatRequest| async move {
            Ok::<_, Error>(ChatResponse {
                provider: "anthropic".into(),
                model: req.model.clone(),
                usage: Usage {
                    input_tokens: 1_000,
                    output_tokens: 100,
                    web_search_requests: 3,
                    ..Usage::default()
                },
                text: "ok".into(),
                ..Default::default()
            })
        }));
    let req = ChatRequest::new("claude-q")
        .message(Message::user("hi"))
        .max_tokens(200);
    svc.oneshot(req).await.expect("call");
    let recs = storage.records();
    assert_eq!(recs.len(), 1);
    let r = &recs[0];
    // 1,000×$3 + 100×$15: the searches are not priced, so a lower bound.
    assert_eq!(r.nano_usd, Some(usd("0.0045")));
    assert_eq!(r.cost_status, CostStatus::Incomplete);
    assert_eq!(r.cost_notes.len(), 1);
    assert!(
        r.cost_notes[0].contains("web_search_requests"),
        "{:?}",
        r.cost_notes
    );
    // The line says so, and the usage keeps the searches.
    let line = serde_json::to_value(r).expect("json");
    assert_eq!(line["cost_status"], "incomplete");
    assert_eq!(line["web_search_requests"], 3);
}
