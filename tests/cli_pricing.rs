//! `cost-tracker cost` and `cost-tracker models`, run as a real process.

use std::path::PathBuf;

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pricing")
        .join(name)
}

fn cli() -> Command {
    let mut c = Command::cargo_bin("cost-tracker").expect("binary");
    c.env_remove("COSTLAYER_PRICES");
    c
}

fn json_of(args: &[&str]) -> Value {
    let out = cli().args(args).output().expect("run");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON object")
}

fn cost_json(args: &[&str]) -> Value {
    let mut all = vec!["cost", "--json"];
    all.extend_from_slice(args);
    json_of(&all)
}

// ----------------------------------------------------------------- cost ----

#[test]
fn cost_plain_shows_breakdown_and_total() {
    cli()
        .args([
            "cost",
            "--model",
            "gpt-4o-mini",
            "--input",
            "1024",
            "--cache-read",
            "1024",
            "--output",
            "300",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("gpt-4o-mini (openai), online"))
        .stdout(predicate::str::contains("cache read"))
        .stdout(predicate::str::contains("$0.0001536"))
        .stdout(predicate::str::contains("$0.0000768"))
        .stdout(predicate::str::contains("$0.00018"))
        .stdout(predicate::str::is_match(r"total\s+2,348\s+\$0\.0004104").expect("regex"));
}

#[test]
fn cost_json_has_model_nano_usd_and_exact_usd() {
    let v = cost_json(&[
        "--model",
        "gpt-4o-mini-2024-07-18",
        "--input",
        "1024",
        "--cache-read",
        "1024",
        "--output",
        "300",
    ]);
    assert_eq!(v["model"], "gpt-4o-mini");
    assert_eq!(v["provider"], "openai");
    assert_eq!(v["mode"], "online");
    assert_eq!(v["nano_usd"], 410_400);
    assert_eq!(v["usd"], "0.000410400");
    assert_eq!(v["price_version"], "2026-12-01:gpt-4o-mini");
    let read = &v["breakdown"][1];
    assert_eq!(read["bucket"], "cache_read");
    assert_eq!(read["rate_per_million_usd"], "0.075000000");
    assert_eq!(read["nano_usd"], 76_800);
}

#[test]
fn cost_of_every_listed_model_matches_hand_computed_values() {
    // (args, canonical, usd) — the same vectors as tests/pricing.rs.
    let cases: &[(&[&str], &str, &str)] = &[
        (
            &[
                "--model",
                "gpt-4o",
                "--input",
                "1000",
                "--cache-read",
                "2000",
                "--output",
                "100",
            ],
            "gpt-4o",
            "0.006000000",
        ),
        (
            &[
                "--model",
                "gpt-4.1",
                "--input",
                "10000",
                "--cache-read",
                "40000",
                "--output",
                "2000",
            ],
            "gpt-4.1",
            "0.056000000",
        ),
        (
            &[
                "--model",
                "gpt-4.1-mini",
                "--input",
                "123456",
                "--output",
                "7890",
            ],
            "gpt-4.1-mini",
            "0.062006400",
        ),
        (
            &[
                "--model",
                "gpt-4.1-nano",
                "--input",
                "1",
                "--cache-read",
                "3",
                "--output",
                "1",
            ],
            "gpt-4.1-nano",
            "0.000000575",
        ),
        (
            &[
                "--model",
                "claude-opus-4.5",
                "--input",
                "1000",
                "--cache-read",
                "4000",
                "--cache-write-5m",
                "2000",
                "--cache-write-1h",
                "3000",
                "--output",
                "500",
            ],
            "claude-opus-4-5",
            "0.062000000",
        ),
        (
            &[
                "--model",
                "claude-sonnet-4.5",
                "--input",
                "50",
                "--cache-read",
                "100000",
                "--output",
                "500",
            ],
            "claude-sonnet-4-5",
            "0.037650000",
        ),
        (
            &[
                "--model",
                "claude-haiku-4-5-20251001",
                "--input",
                "20",
                "--cache-write-5m",
                "10000",
                "--output",
                "100",
            ],
            "claude-haiku-4-5",
            "0.013020000",
        ),
        (
            &[
                "--model",
                "gemini-2.5-flash",
                "--input",
                "34",
                "--output",
                "856",
                "--reasoning",
                "438",
            ],
            "gemini-2.5-flash",
            "0.002150200",
        ),
        (
            &[
                "--model",
                "models/gemini-2.5-pro",
                "--input",
                "1500",
                "--cache-read",
                "10000",
                "--output",
                "11000",
            ],
            "gemini-2.5-pro",
            "0.113125000",
        ),
        (
            &[
                "--model",
                "gemini-2.5-flash-lite",
                "--input",
                "10000",
                "--cache-read",
                "5000",
                "--output",
                "1000",
            ],
            "gemini-2.5-flash-lite",
            "0.001450000",
        ),
        (
            &[
                "--model",
                "gemini-3-pro",
                "--input",
                "100000",
                "--output",
                "10000",
            ],
            "gemini-3-pro-preview",
            "0.320000000",
        ),
    ];
    for (args, model, usd) in cases {
        let v = cost_json(args);
        assert_eq!(v["model"], *model, "{args:?}");
        assert_eq!(v["usd"], *usd, "{args:?}");
    }
}

#[test]
fn cost_batch_and_long_context_boundary() {
    let v = cost_json(&[
        "--model",
        "claude-haiku-4-5",
        "--input",
        "20",
        "--cache-write-5m",
        "10000",
        "--output",
        "100",
        "--batch",
    ]);
    assert_eq!(v["mode"], "batch");
    assert_eq!(v["usd"], "0.006510000");

    let at = cost_json(&[
        "--model",
        "gemini-2.5-pro",
        "--input",
        "150000",
        "--cache-read",
        "50000",
        "--output",
        "1000",
    ]);
    assert_eq!(at["usd"], "0.203750000");
    assert_eq!(at["tier_above_prompt_tokens"], Value::Null);
    let above = cost_json(&[
        "--model",
        "gemini-2.5-pro",
        "--input",
        "150001",
        "--cache-read",
        "50000",
        "--output",
        "1000",
    ]);
    assert_eq!(above["usd"], "0.402502500");
    assert_eq!(above["tier_above_prompt_tokens"], 200_000);
    assert_eq!(above["prompt_tokens"], 200_001);

    cli()
        .args(["cost", "--model", "gemini-2.5-pro", "--input", "200001"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "long-context rates: the prompt of 200,001 tokens is above 200,000",
        ));
}

#[test]
fn cost_warns_about_deprecated_models_but_prices_them() {
    let out = cli()
        .args([
            "cost",
            "--model",
            "gpt-4.1-nano",
            "--input",
            "1000000",
            "--json",
        ])
        .output()
        .expect("run");
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("gpt-4.1-nano") && stderr.contains("2026-10-23"),
        "{stderr}"
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["usd"], "0.100000000");
    assert_eq!(v["deprecated"], "2026-10-23");
}

#[test]
fn bad_counts_are_usage_errors() {
    for (flag, value, needle) in [
        ("--input", "-5", "cannot be negative"),
        ("--output", "-1", "cannot be negative"),
        ("--cache-read", "lots", "not a token count"),
        ("--cache-write-5m", "1.5", "not a token count"),
        ("--cache-write-1h", "1000000000001", "more than the limit"),
        (
            "--input",
            "99999999999999999999999999",
            "more than the limit",
        ),
    ] {
        cli()
            .args(["cost", "--model", "gpt-4o", flag, value])
            .assert()
            .code(2)
            .stdout(predicate::str::is_empty())
            .stderr(predicate::str::contains(needle));
    }
    cli()
        .args([
            "cost",
            "--model",
            "gpt-4o",
            "--output",
            "10",
            "--reasoning",
            "11",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot exceed it"));
}

#[test]
fn unknown_model_is_a_usage_error_with_suggestions() {
    cli()
        .args(["cost", "--model", "claude-sonet-4.5", "--input", "1"])
        .assert()
        .code(2)
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains(
            "no price for model `claude-sonet-4.5`",
        ))
        .stderr(predicate::str::contains("did you mean claude-sonnet-4-5"));
    cli().args(["cost"]).assert().code(2);
}

#[test]
fn prices_flag_and_env_var_load_a_user_file() {
    let user = fixture("user_prices.toml");
    let args = [
        "cost",
        "--json",
        "--model",
        "gpt-4o",
        "--input",
        "1000",
        "--cache-read",
        "1000",
        "--output",
        "100",
    ];
    let mut with_flag = args.to_vec();
    with_flag.extend(["--prices", user.to_str().expect("utf-8 path")]);
    let v = json_of(&with_flag);
    assert_eq!(v["usd"], "0.003800000");
    assert_eq!(v["price_version"], "2026-12-01+acme-2026-12:gpt-4o");

    let out = cli()
        .args(args)
        .env("COSTLAYER_PRICES", &user)
        .output()
        .expect("run");
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["usd"], "0.003800000");

    // Embedded: 1000×2.50 + 1000×1.25 + 100×10 = 4750 µ$.
    let v = json_of(&args);
    assert_eq!(v["usd"], "0.004750000");
    // An empty variable means no user file.
    let out = cli()
        .args(args)
        .env("COSTLAYER_PRICES", "")
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["usd"], "0.004750000");
    // --prices wins over the variable (which names a broken file here).
    let out = cli()
        .args(&with_flag)
        .env("COSTLAYER_PRICES", fixture("bad_rate.toml"))
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["usd"], "0.003800000");
}

#[test]
fn litellm_file_through_the_cli() {
    let path = fixture("litellm_prices.json");
    let v = cost_json(&[
        "--model",
        "acme-odd-batch",
        "--input",
        "1000000",
        "--batch",
        "--prices",
        path.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(v["usd"], "0.700000000");
    assert_eq!(v["provider"], "acme");
}

#[test]
fn bad_price_files_are_reported_with_line_and_exit_code() {
    cli()
        .args(["cost", "--model", "gpt-4o"])
        .arg("--prices")
        .arg(fixture("bad_date.toml"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("bad_date.toml:10:14"))
        .stderr(predicate::str::contains("YYYY-MM-DD"));
    cli()
        .args(["models"])
        .env("COSTLAYER_PRICES", fixture("bad_litellm.json"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains(":8:"))
        .stderr(predicate::str::contains("acme-broken"));
    let dir = tempfile::tempdir().expect("tempdir");
    cli()
        .args(["models", "--prices"])
        .arg(dir.path().join("missing.toml"))
        .assert()
        .code(2) // like --config: a missing file is a usage error
        .stderr(predicate::str::contains("cannot read price file"));
    cli()
        .args(["models", "--prices"])
        .arg(dir.path())
        .assert()
        .code(2) // a directory too
        .stderr(predicate::str::contains("cannot read price file"));
}

// --------------------------------------------------------------- models ----

#[test]
fn models_lists_provider_model_rates_and_deprecation() {
    cli()
        .arg("models")
        .assert()
        .success()
        .stdout(predicate::str::contains("USD per 1M tokens"))
        .stdout(predicate::str::is_match(r"PROVIDER\s+MODEL\s+INPUT\s+OUTPUT\s+CACHE READ\s+WRITE 5M\s+WRITE 1H").expect("regex"))
        .stdout(predicate::str::is_match(r"anthropic\s+claude-opus-4-5\s+\$5\.00\s+\$25\.00\s+\$0\.50\s+\$6\.25\s+\$10\.00\s+50%").expect("regex"))
        .stdout(predicate::str::is_match(r"openai\s+gpt-4o-mini\s+\$0\.15\s+\$0\.60\s+\$0\.075").expect("regex"))
        .stdout(predicate::str::is_match(r"gemini-2\.5-pro\s.*>200K: \$2\.50/\$15\.00\s+2026-12-01").expect("regex"))
        .stdout(predicate::str::contains("2026-10-23"))
        .stdout(predicate::str::contains(" * ").not())
        .stdout(predicate::str::contains("overrides").not());
}

#[test]
fn models_marks_user_file_shadowing() {
    cli()
        .args(["models", "--prices"])
        .arg(fixture("user_prices.toml"))
        .assert()
        .success()
        .stdout(predicate::str::contains("2026-12-01+acme-2026-12"))
        .stdout(predicate::str::is_match(r"openai\s+gpt-4o \*\s+\$2\.00\s+\$8\.00").expect("regex"))
        .stdout(
            predicate::str::is_match(r"acme\s+acme-llm-7b \+\s+\$0\.05\s+\$0\.20").expect("regex"),
        )
        .stdout(predicate::str::contains(
            "overrides the embedded price ($2.50 / $10.00)",
        ));
}

#[test]
fn models_json() {
    let v = json_of(&["models", "--json"]);
    assert_eq!(v["version"], "2026-12-01");
    let models = v["models"].as_array().expect("array");
    assert_eq!(
        models.len(),
        costlayer::pricing::PriceTable::embedded().len()
    );
    let sonnet = models
        .iter()
        .find(|m| m["model"] == "claude-sonnet-4-5")
        .expect("sonnet");
    assert_eq!(sonnet["provider"], "anthropic");
    assert_eq!(sonnet["rates_per_million_usd"]["input"], "3.000000000");
    assert_eq!(
        sonnet["rates_per_million_usd"]["cache_write_1h"],
        "6.000000000"
    );
    assert_eq!(sonnet["tiers"][0]["above_prompt_tokens"], 200_000);
    assert_eq!(sonnet["batch"]["percent"], 50);
    assert_eq!(sonnet["deprecated"], "2026-11-30");
    assert_eq!(sonnet["shadows_default"], false);
    assert_eq!(sonnet["web_search_per_1k_usd"], "10.000000000");
    assert_eq!(sonnet["origin"], "embedded");
    let flash = models
        .iter()
        .find(|m| m["model"] == "gemini-2.5-flash")
        .expect("flash");
    assert_eq!(flash["rates_per_million_usd"]["input_audio"], "1.000000000");
    assert_eq!(flash["priority"]["input"], "0.540000000");
    assert!(sonnet["aliases"]
        .as_array()
        .expect("aliases")
        .contains(&Value::from("claude-sonnet-4-5-20250929")));

    let user = fixture("user_prices.toml");
    let out = cli()
        .args(["models", "--json"])
        .env("COSTLAYER_PRICES", &user)
        .output()
        .expect("run");
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    let gpt = v["models"]
        .as_array()
        .expect("array")
        .iter()
        .find(|m| m["model"] == "gpt-4o")
        .expect("gpt-4o")
        .clone();
    assert_eq!(gpt["shadows_default"], true);
    assert_eq!(gpt["rates_per_million_usd"]["input"], "2.000000000");
    assert_eq!(
        gpt["shadowed"]["rates_per_million_usd"]["input"],
        "2.500000000"
    );
    assert_eq!(gpt["shadowed"]["origin"], "embedded");
}

// -------------------------------------------------------------- reprice ----

#[test]
fn reprice_shows_each_month_and_model_next_to_what_was_recorded() {
    use chrono::{TimeZone, Utc};
    use costlayer::ledger::CostRecord;
    use costlayer::{Money, Usage};

    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let rec = |model: &str, month: u32, nanos: Option<i64>| {
        let mut r = CostRecord::new("alice", "openai", model, Usage::new(1_000_000, 100_000));
        r.ts = Utc.with_ymd_and_hms(2026, month, 15, 12, 0, 0).unwrap();
        r.nano_usd = nanos.map(Money::from_nanos);
        serde_json::to_string(&r).expect("json")
    };
    // gpt-4o was recorded at $2.50/$10 (1M in, 100K out = $3.50) twice;
    // an unknown model once.
    let lines = [
        rec("gpt-4o", 10, Some(3_500_000_000)),
        rec("gpt-4o", 11, Some(3_500_000_000)),
        rec("acme-x", 11, None),
    ];
    let ledger = data.join("costs_alice.jsonl");
    std::fs::write(&ledger, lines.join("\n") + "\n").expect("write");
    let before = std::fs::read(&ledger).expect("read");
    let prices = tmp.path().join("new.toml");
    std::fs::write(
        &prices,
        "version = \"invoice\"\n[[models]]\nmodel = \"gpt-4o\"\ninput = \"2\"\noutput = \"8\"\n\
         [[models]]\nmodel = \"acme-x\"\nprovider = \"acme\"\ninput = \"1\"\noutput = \"1\"\n",
    )
    .expect("write prices");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "reprice",
            "--prices",
            prices.to_str().expect("utf-8"),
            "--data-dir",
            data.to_str().expect("utf-8"),
            "--user",
            "alice",
        ];
        args.extend_from_slice(extra);
        let out = cli()
            .current_dir(tmp.path())
            .env_remove("COSTLAYER_DATA_DIR")
            .env_remove("COSTLAYER_CONFIG")
            .args(&args)
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).expect("one JSON object")
    };
    let v = run(&["--json"]);
    let rows = v["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 3, "{v}");
    // 2026-10 gpt-4o: recorded $3.50, now 1M×$2 + 100K×$8 = $2.80.
    assert_eq!(rows[0]["month"], "2026-10");
    assert_eq!(rows[0]["model"], "gpt-4o");
    assert_eq!(rows[0]["recorded_nano_usd"], 3_500_000_000i64);
    assert_eq!(rows[0]["repriced_nano_usd"], 2_800_000_000i64);
    assert_eq!(rows[0]["difference_nano_usd"], -700_000_000i64);
    // The unpriced call gets a price: 1M×$1 + 100K×$1 = $1.10.
    assert_eq!(rows[1]["model"], "acme-x");
    assert_eq!(rows[1]["recorded_unpriced_calls"], 1);
    assert_eq!(rows[1]["repriced_nano_usd"], 1_100_000_000i64);
    assert_eq!(v["total"]["calls"], 3);
    assert_eq!(v["total"]["repriced_nano_usd"], 6_700_000_000i64);
    // Filters apply; the ledger is never rewritten.
    let v = run(&["--json", "--since", "2026-11-01"]);
    assert_eq!(v["total"]["calls"], 2);
    assert_eq!(std::fs::read(&ledger).expect("read"), before);
    // The plain table.
    let mut c = cli();
    c.current_dir(tmp.path())
        .env_remove("COSTLAYER_CONFIG")
        .args([
            "reprice",
            "--prices",
            prices.to_str().expect("utf-8"),
            "--data-dir",
            data.to_str().expect("utf-8"),
            "--user",
            "alice",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("2026-10  gpt-4o"))
        .stdout(predicate::str::contains("-$0.70").or(predicate::str::contains("$-0.70")))
        .stdout(predicate::str::contains("1 unpriced when recorded"));
}

#[test]
fn models_says_which_file_and_entry_priced_a_model() {
    let map = fixture("litellm_1.110.2_cut.json");
    let v = json_of(&["models", "--json", "--prices", map.to_str().expect("utf-8")]);
    let models = v["models"].as_array().expect("array");
    let find = |name: &str| {
        models
            .iter()
            .find(|m| m["model"] == name)
            .unwrap_or_else(|| panic!("{name}"))
    };
    let lite = find("gemini-2.5-flash-lite");
    assert!(lite["origin"]
        .as_str()
        .expect("origin")
        .ends_with("litellm_1.110.2_cut.json"));
    assert_eq!(lite["entry"], "gemini/gemini-2.5-flash-lite");
    let replicate = find("replicate/anthropic/claude-4.5-sonnet");
    assert_eq!(replicate["provider"], "replicate");
    assert_eq!(replicate["prefixed_only"], true);
    // The bare name stays Anthropic's.
    let sonnet = find("claude-sonnet-4-5");
    assert_eq!(sonnet["provider"], "anthropic");
    cli()
        .args(["models", "--prices", map.to_str().expect("utf-8")])
        .assert()
        .success()
        .stdout(predicate::str::contains("[gemini/gemini-2.5-flash-lite]"))
        .stdout(predicate::str::contains("Reseller entries"));
}
