//! costlayer's own price file format (TOML).

use std::collections::HashMap;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use toml::Spanned;

use super::error::line_col;
use super::{BatchPricing, ModelPrice, PriceTable, PricingError, Rates, Tier};
use crate::Money;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    version: Option<String>,
    #[serde(default)]
    models: Vec<ModelSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelSpec {
    model: Spanned<String>,
    provider: Option<String>,
    #[serde(default)]
    aliases: Vec<Spanned<String>>,
    source: Option<String>,
    deprecated: Option<Spanned<String>>,
    effective_from: Option<Spanned<String>>,
    input: Rate,
    output: Rate,
    cache_read: Option<Rate>,
    cache_write_5m: Option<Rate>,
    cache_write_1h: Option<Rate>,
    input_audio: Option<Rate>,
    web_search_per_1k: Option<Rate>,
    #[serde(default)]
    tiers: Vec<TierSpec>,
    batch_percent: Option<Spanned<u32>>,
    batch: Option<BatchSpec>,
    flex: Option<TierRates>,
    priority: Option<TierRates>,
}

/// Flex or priority service-tier rates.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TierRates {
    input: Rate,
    output: Rate,
    cache_read: Option<Rate>,
    cache_write_5m: Option<Rate>,
    cache_write_1h: Option<Rate>,
    input_audio: Option<Rate>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TierSpec {
    above_prompt_tokens: Spanned<u64>,
    input: Rate,
    output: Rate,
    cache_read: Option<Rate>,
    cache_write_5m: Option<Rate>,
    cache_write_1h: Option<Rate>,
    input_audio: Option<Rate>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchSpec {
    input: Rate,
    output: Rate,
    cache_read: Option<Rate>,
    cache_write_5m: Option<Rate>,
    cache_write_1h: Option<Rate>,
    input_audio: Option<Rate>,
    #[serde(default)]
    tiers: Vec<TierSpec>,
}

/// A rate in dollars per million tokens: a decimal string (`"2.50"`,
/// exact), or a TOML number (`2.5`, read through its shortest decimal form).
struct Rate(Money);

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Rate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a rate in dollars per million tokens, such as \"2.50\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Rate, E> {
                let m: Money = s.parse().map_err(|e| E::custom(format!("{e}")))?;
                if m.is_negative() {
                    return Err(E::custom(format!(
                        "rate `{s}` is negative: rates are dollars per million tokens, zero or more"
                    )));
                }
                let absurd: Money = ABSURD.parse().map_err(|e| E::custom(format!("{e}")))?;
                if m > absurd {
                    return Err(E::custom(format!(
                        "rate `{s}` is absurd (above ${ABSURD} per million tokens): rates are dollars per million tokens, not per billion or per thousand"
                    )));
                }
                Ok(Rate(m))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Rate, E> {
                if !v.is_finite() {
                    return Err(E::custom(format!("rate {v} is not a number")));
                }
                // Rust prints the shortest decimal that reads back as `v`,
                // so `0.075` stays `0.075`.
                self.visit_str(&format!("{v}"))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Rate, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Rate, E> {
                self.visit_str(&v.to_string())
            }
        }
        d.deserialize_any(V)
    }
}

fn rates(
    input: Rate,
    output: Rate,
    read: Option<Rate>,
    w5: Option<Rate>,
    w1: Option<Rate>,
    audio: Option<Rate>,
) -> Rates {
    Rates {
        input: input.0,
        output: output.0,
        cache_read: read.map(|r| r.0),
        cache_write_5m: w5.map(|r| r.0),
        cache_write_1h: w1.map(|r| r.0),
        input_audio: audio.map(|r| r.0),
    }
}

/// Rates above this (dollars per million tokens) are refused as absurd: the
/// dearest model priced anywhere is under $1,000 per million output tokens.
const ABSURD: &str = "10000";

/// [`ABSURD`] in nano-dollars, for the JSON importers.
pub(crate) const ABSURD_NANOS: i64 = 10_000_000_000_000;

/// Guesses the provider from a model name, for user files that omit it.
pub(crate) fn infer_provider(model: &str) -> Option<&'static str> {
    let m = super::normalize_model_id(model);
    if m.starts_with("gpt-")
        || m.starts_with("chatgpt-")
        || m.starts_with("o1")
        || m.starts_with("o3")
        || m.starts_with("o4")
    {
        Some("openai")
    } else if m.starts_with("claude-") {
        Some("anthropic")
    } else if m.starts_with("gemini-") {
        Some("gemini")
    } else {
        None
    }
}

pub(crate) fn is_date(s: &str) -> bool {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok() && s.len() == 10
}

pub(crate) fn parse_toml(text: &str, origin: &str) -> Result<PriceTable, PricingError> {
    let err_at = |offset: usize, message: String| {
        let (line, column) = line_col(text, offset);
        PricingError::Parse {
            path: origin.to_owned(),
            line,
            column,
            message,
        }
    };
    let spec: FileSpec = toml::from_str(text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        let (line, column) = if e.span().is_some() {
            line_col(text, offset)
        } else {
            (0, 0)
        };
        PricingError::Parse {
            path: origin.to_owned(),
            line,
            column,
            message: format!(
                "{}. See the price file format in the costlayer::pricing docs",
                e.message().trim_end_matches('.')
            ),
        }
    })?;
    let version = spec.version.unwrap_or_else(|| {
        std::path::Path::new(origin)
            .file_name()
            .map_or_else(|| origin.to_owned(), |f| f.to_string_lossy().into_owned())
    });
    let mut table = PriceTable::empty(version);
    // name or alias -> (the model using it, the effective-from dates seen)
    let mut seen: HashMap<String, (String, Vec<Option<String>>)> = HashMap::new();
    // Periods of one model, grouped under its first entry, in file order.
    let mut groups: Vec<Vec<ModelPrice>> = Vec::new();
    let mut group_of: HashMap<String, usize> = HashMap::new();
    for m in spec.models {
        let name = m.model.get_ref().trim().to_owned();
        let at = m.model.span().start;
        let bad = |field: &str, what: String| {
            err_at(at, format!("model `{name}`: field `{field}`: {what}"))
        };
        if name.is_empty() {
            return Err(err_at(
                at,
                "a model has an empty `model` name: write the provider's id, such as \"gpt-4o\""
                    .into(),
            ));
        }
        let from = m.effective_from.as_ref().map(|d| d.get_ref().clone());
        if let Some(d) = &m.effective_from {
            if !is_date(d.get_ref()) {
                return Err(err_at(
                    d.span().start,
                    format!(
                        "model `{name}`: field `effective_from`: `{}` is not a date: write \"YYYY-MM-DD\"",
                        d.get_ref()
                    ),
                ));
            }
        }
        for id in std::iter::once(&m.model).chain(&m.aliases) {
            let key = super::normalize_model_id(id.get_ref());
            let (other, dates) = seen
                .entry(key)
                .or_insert_with(|| (name.clone(), Vec::new()));
            let same_model = super::normalize_model_id(other) == super::normalize_model_id(&name);
            if !same_model || dates.contains(&from) {
                let why = if same_model {
                    format!(
                        "`{}` is already used by model `{other}` with the same `effective_from`: list a model once per date (a price change is a new entry with its own `effective_from`)",
                        id.get_ref()
                    )
                } else {
                    format!(
                        "`{}` is already used by model `{other}`: each name and alias may appear once per file (a price change is the same `model` with a new `effective_from`)",
                        id.get_ref()
                    )
                };
                return Err(err_at(id.span().start, why));
            }
            if std::ptr::eq(id, &m.model) {
                dates.push(from.clone());
            }
        }
        let provider = match m.provider {
            Some(p) if !p.trim().is_empty() => p.trim().to_owned(),
            _ => infer_provider(&name)
                .ok_or_else(|| {
                    bad(
                        "provider",
                        "missing: add provider = \"openai\" (or \"anthropic\", \"gemini\", ...)"
                            .into(),
                    )
                })?
                .to_owned(),
        };
        if let Some(d) = &m.deprecated {
            if !is_date(d.get_ref()) {
                return Err(err_at(
                    d.span().start,
                    format!(
                        "model `{name}`: field `deprecated`: `{}` is not a date: write \"YYYY-MM-DD\"",
                        d.get_ref()
                    ),
                ));
            }
        }
        let tiers = |specs: Vec<TierSpec>, field: &str| -> Result<Vec<Tier>, PricingError> {
            let mut out: Vec<Tier> = Vec::new();
            for t in specs {
                let above = *t.above_prompt_tokens.get_ref();
                if out.last().is_some_and(|p| p.above_prompt_tokens >= above) || above == 0 {
                    return Err(err_at(
                        t.above_prompt_tokens.span().start,
                        format!(
                            "model `{name}`: field `{field}.above_prompt_tokens`: {above} must be above zero and above the previous tier's threshold (list tiers in ascending order)"
                        ),
                    ));
                }
                out.push(Tier {
                    above_prompt_tokens: above,
                    rates: rates(
                        t.input,
                        t.output,
                        t.cache_read,
                        t.cache_write_5m,
                        t.cache_write_1h,
                        t.input_audio,
                    ),
                });
            }
            Ok(out)
        };
        let online_tiers = tiers(m.tiers, "tiers")?;
        let batch = match (m.batch_percent, m.batch) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "batch",
                    "set either `batch_percent` or a `[models.batch]` table, not both".into(),
                ))
            }
            (Some(p), None) => {
                let v = *p.get_ref();
                if v == 0 || v > 100 {
                    return Err(err_at(
                        p.span().start,
                        format!("model `{name}`: field `batch_percent`: {v} must be 1 to 100 (50 = half price)"),
                    ));
                }
                BatchPricing::Percent(v)
            }
            (None, Some(b)) => BatchPricing::Explicit {
                rates: rates(
                    b.input,
                    b.output,
                    b.cache_read,
                    b.cache_write_5m,
                    b.cache_write_1h,
                    b.input_audio,
                ),
                tiers: tiers(b.tiers, "batch.tiers")?,
            },
            (None, None) => BatchPricing::None,
        };
        let mut price = ModelPrice::new(
            name.clone(),
            provider,
            rates(
                m.input,
                m.output,
                m.cache_read,
                m.cache_write_5m,
                m.cache_write_1h,
                m.input_audio,
            ),
        )
        .aliases(m.aliases.into_iter().map(Spanned::into_inner))
        .batch(batch);
        price.tiers = online_tiers;
        price.deprecated = m.deprecated.map(Spanned::into_inner);
        price.source = m.source;
        price.origin = origin.to_owned();
        price.effective_from = from;
        let tier_rates = |t: TierRates| {
            rates(
                t.input,
                t.output,
                t.cache_read,
                t.cache_write_5m,
                t.cache_write_1h,
                t.input_audio,
            )
        };
        price.flex = m.flex.map(tier_rates);
        price.priority = m.priority.map(tier_rates);
        price.web_search_per_1k = m.web_search_per_1k.map(|r| r.0);
        let key = super::normalize_model_id(&name);
        match group_of.get(&key) {
            Some(&g) => groups[g].push(price),
            None => {
                group_of.insert(key, groups.len());
                groups.push(vec![price]);
            }
        }
    }
    for mut periods in groups {
        // The newest period is the entry; it carries the earlier ones.
        periods.sort_by(|a, b| b.effective_from.cmp(&a.effective_from));
        let mut it = periods.into_iter();
        if let Some(mut price) = it.next() {
            for old in it {
                for a in &old.aliases {
                    if !price.aliases.contains(a) {
                        price.aliases.push(a.clone());
                    }
                }
                if price.deprecated.is_none() {
                    price.deprecated.clone_from(&old.deprecated);
                }
                price.earlier.push(old);
            }
            table.replace_or_push(price);
        }
    }
    Ok(table)
}
