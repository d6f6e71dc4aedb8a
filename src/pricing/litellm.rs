//! Loader for LiteLLM's `model_prices_and_context_window.json`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::file::infer_provider;
use super::{normalize_model_id, BatchPricing, ModelPrice, PriceTable, PricingError, Rates, Tier};
use crate::Money;

/// A per-token USD price as LiteLLM stores it, converted to dollars per
/// million tokens exactly: the shortest decimal form of the `f64` (what the
/// file says, `2.5e-06`) shifted by six places, rounded half up to the
/// nano-dollar only if it carries more digits than that.
pub(crate) fn per_token_to_per_million(v: f64) -> Option<Money> {
    if !v.is_finite() || v < 0.0 {
        return None;
    }
    let s = format!("{v:e}"); // "2.5e-6"
    let (mantissa, exp) = s.split_once('e')?;
    let exp: i32 = exp.parse().ok()?;
    let (whole, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: i128 = format!("{whole}{frac}").parse().ok()?;
    // value = digits × 10^(exp − frac.len()) USD per token
    //       = digits × 10^(exp − frac.len() + 15) nano-USD per million.
    let shift = exp - frac.len() as i32 + 15;
    let nanos = if shift >= 0 {
        digits.checked_mul(10i128.checked_pow(shift as u32)?)?
    } else if shift < -38 {
        0
    } else {
        let d = 10i128.pow((-shift) as u32);
        (digits + d / 2) / d
    };
    i64::try_from(nanos).ok().map(Money::from_nanos)
}

#[derive(Default)]
struct Entry {
    provider: Option<String>,
    deprecated: Option<String>,
    source: Option<String>,
    /// base key -> (tier threshold or 0) -> rate
    costs: HashMap<&'static str, BTreeMap<u64, Money>>,
}

const INPUT: &str = "input_cost_per_token";
const OUTPUT: &str = "output_cost_per_token";
const READ: &str = "cache_read_input_token_cost";
const W5: &str = "cache_creation_input_token_cost";
const W1: &str = "cache_creation_input_token_cost_above_1hr";
const B_IN: &str = "input_cost_per_token_batches";
const B_OUT: &str = "output_cost_per_token_batches";

fn base_key(k: &str) -> Option<&'static str> {
    [INPUT, OUTPUT, READ, W5, W1, B_IN, B_OUT]
        .into_iter()
        .find(|b| *b == k)
}

/// `input_cost_per_token_above_200k_tokens` -> (`input_cost_per_token`, 200_000)
fn split_key(key: &str) -> Option<(&'static str, u64)> {
    if let Some(b) = base_key(key) {
        return Some((b, 0));
    }
    let (base, rest) = key.rsplit_once("_above_")?;
    let n = rest.strip_suffix("k_tokens")?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let b = base_key(base)?;
    if b == B_IN || b == B_OUT {
        return None;
    }
    Some((b, n.parse::<u64>().ok()?.checked_mul(1_000)?))
}

struct CostSeed<'a> {
    model: &'a str,
    field: &'a str,
}

impl<'de> DeserializeSeed<'de> for CostSeed<'_> {
    type Value = Option<Money>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for CostSeed<'_> {
    type Value = Option<Money>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a number (USD per token) in field `{}` of model `{}`",
            self.field, self.model
        )
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        per_token_to_per_million(v).map(Some).ok_or_else(|| {
            E::custom(format!(
                "model `{}`: field `{}`: {v} is not a valid price (it must be zero or more, and below $9 billion per million tokens)",
                self.model, self.field
            ))
        })
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        self.visit_f64(v as f64)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        self.visit_f64(v as f64)
    }
}

struct EntrySeed<'a>(&'a str);

impl<'de> DeserializeSeed<'de> for EntrySeed<'_> {
    type Value = Entry;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Entry, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EntrySeed<'_> {
    type Value = Entry;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an object of prices for model `{}`", self.0)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entry, A::Error> {
        let mut e = Entry::default();
        while let Some(key) = map.next_key::<String>()? {
            if let Some((base, above)) = split_key(&key) {
                let v = map.next_value_seed(CostSeed {
                    model: self.0,
                    field: &key,
                })?;
                if let Some(v) = v {
                    e.costs.entry(base).or_default().insert(above, v);
                }
                continue;
            }
            match key.as_str() {
                "litellm_provider" => e.provider = map.next_value::<Option<String>>()?,
                "deprecation_date" => e.deprecated = map.next_value::<Option<String>>()?,
                "source" => e.source = map.next_value::<Option<String>>()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(e)
    }
}

struct FileVisitor;

impl<'de> Visitor<'de> for FileVisitor {
    type Value = Vec<(String, Entry)>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object mapping model names to their prices (LiteLLM format)")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == "sample_spec" {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let entry = map.next_value_seed(EntrySeed(&key))?;
            out.push((key, entry));
        }
        Ok(out)
    }
}

fn provider_name(litellm: &str) -> String {
    match litellm {
        p if p.starts_with("vertex_ai") => "vertex_ai".to_owned(),
        p => p.to_owned(),
    }
}

fn rates_at(e: &Entry, above: u64) -> Option<Rates> {
    // A bucket without a tier rate keeps its base rate (as LiteLLM does).
    let get = |k: &str| -> Option<Money> {
        let m = e.costs.get(k)?;
        m.get(&above).or_else(|| m.get(&0)).copied()
    };
    let input = get(INPUT);
    let output = get(OUTPUT);
    if input.is_none() && output.is_none() {
        return None;
    }
    Some(Rates {
        input: input.unwrap_or(Money::ZERO),
        output: output.unwrap_or(Money::ZERO),
        cache_read: get(READ),
        cache_write_5m: get(W5),
        cache_write_1h: get(W1),
    })
}

fn percent_of(part: Money, whole: Money) -> Option<u32> {
    if whole.is_zero() {
        return None;
    }
    let x = part.nanos() as i128 * 100;
    let w = whole.nanos() as i128;
    (x % w == 0).then(|| u32::try_from(x / w).ok()).flatten()
}

pub(crate) fn parse_litellm(text: &str, origin: &str) -> Result<PriceTable, PricingError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let entries = de
        .deserialize_map(FileVisitor)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| {
            let full = e.to_string();
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            let msg = full.strip_suffix(&suffix).unwrap_or(&full);
            PricingError::Parse {
                path: origin.to_owned(),
                line: e.line(),
                column: e.column(),
                message: format!("{msg} (LiteLLM model_prices_and_context_window.json format)"),
            }
        })?;
    let name = std::path::Path::new(origin)
        .file_name()
        .map_or_else(|| origin.to_owned(), |f| f.to_string_lossy().into_owned());
    let mut table = PriceTable::empty(format!("litellm:{name}"));
    let mut priority: HashMap<String, u8> = HashMap::new();
    for (key, e) in entries {
        let Some(rates) = rates_at(&e, 0) else {
            continue; // priced per image, per second, ...: not per token
        };
        let provider = e
            .provider
            .as_deref()
            .map(provider_name)
            .or_else(|| infer_provider(&key).map(str::to_owned))
            .unwrap_or_else(|| "unknown".to_owned());
        let model = match (key.split_once('/'), e.provider.as_deref()) {
            (Some((prefix, rest)), Some(p)) if prefix == p => rest.to_owned(),
            _ => key.clone(),
        };
        let mut thresholds: Vec<u64> = e
            .costs
            .values()
            .flat_map(|m| m.keys().copied())
            .filter(|t| *t > 0)
            .collect();
        thresholds.sort_unstable();
        thresholds.dedup();
        let tiers: Vec<Tier> = thresholds
            .into_iter()
            .filter_map(|t| {
                rates_at(&e, t).map(|rates| Tier {
                    above_prompt_tokens: t,
                    rates,
                })
            })
            .collect();
        let b_in = e.costs.get(B_IN).and_then(|m| m.get(&0)).copied();
        let b_out = e.costs.get(B_OUT).and_then(|m| m.get(&0)).copied();
        let batch = if b_in.is_none() && b_out.is_none() {
            BatchPricing::None
        } else {
            let bi = b_in.unwrap_or(rates.input);
            let bo = b_out.unwrap_or(rates.output);
            match (percent_of(bi, rates.input), percent_of(bo, rates.output)) {
                (Some(a), Some(b)) if a == b => BatchPricing::Percent(a),
                (Some(a), None) if rates.output.is_zero() && bo.is_zero() => {
                    BatchPricing::Percent(a)
                }
                _ => BatchPricing::Explicit {
                    // No batch cache or tier rates in the file: keep the
                    // online ones (never under-counts).
                    rates: Rates {
                        input: bi,
                        output: bo,
                        ..rates
                    },
                    tiers: tiers.clone(),
                },
            }
        };
        let rank = match e.provider.as_deref() {
            Some("openai" | "anthropic" | "gemini") => 3,
            _ if !key.contains('/') => 2,
            _ => 1,
        };
        let norm = normalize_model_id(&model);
        // A collision is replaced in place by replace_or_push below.
        if table.exact_index(&model).is_some() && priority.get(&norm).copied().unwrap_or(0) >= rank
        {
            continue;
        }
        priority.insert(norm, rank);
        let mut price = ModelPrice::new(model, provider, rates).batch(batch);
        price.tiers = tiers;
        price.deprecated = e.deprecated;
        price.source = e.source.or_else(|| Some(format!("LiteLLM entry `{key}`")));
        price.origin = origin.to_owned();
        table.replace_or_push(price);
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_token_prices_convert_exactly() {
        let m = |v: f64| per_token_to_per_million(v).map(Money::nanos);
        assert_eq!(m(2.5e-6), Some(2_500_000_000));
        assert_eq!(m(7.5e-8), Some(75_000_000));
        assert_eq!(m(1.25e-7), Some(125_000_000));
        assert_eq!(m(3e-5), Some(30_000_000_000));
        assert_eq!(m(0.0), Some(0));
        assert_eq!(m(1e-17), Some(0)); // below a nano-dollar per million
        assert_eq!(m(1.5e-15), Some(2)); // rounds half up
        assert_eq!(m(-1e-6), None);
        assert_eq!(m(1e10), None); // overflows Money
    }

    #[test]
    fn tier_keys_split() {
        assert_eq!(
            split_key("input_cost_per_token_above_200k_tokens"),
            Some((INPUT, 200_000))
        );
        assert_eq!(
            split_key("cache_creation_input_token_cost_above_1hr_above_200k_tokens"),
            Some((W1, 200_000))
        );
        assert_eq!(
            split_key("cache_creation_input_token_cost_above_1hr"),
            Some((W1, 0))
        );
        assert_eq!(split_key("input_cost_per_token_priority"), None);
        assert_eq!(split_key("input_cost_per_token_above_xk_tokens"), None);
    }
}
