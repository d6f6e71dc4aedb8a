//! Loader for LiteLLM's `model_prices_and_context_window.json`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::file::{infer_provider, is_date, ABSURD_NANOS};
use super::{normalize_model_id, BatchPricing, ModelPrice, PriceTable, PricingError, Rates, Tier};
use crate::Money;

/// A per-token USD price as LiteLLM stores it, converted to dollars per
/// million tokens exactly: the shortest decimal form of the `f64` (what the
/// file says, `2.5e-06`) shifted by six places, rounded half up to the
/// nano-dollar only if it carries more digits than that.
pub(crate) fn per_token_to_per_million(v: f64) -> Option<Money> {
    scaled_to_money(v, 15)
}

/// `v` (its shortest decimal form) × 10^`shift` nano-dollars, exactly,
/// rounded half up only past the last digit: `shift` is 15 for dollars per
/// token to nano-dollars per million, 9 for dollars to nano-dollars.
pub(crate) fn scaled_to_money(v: f64, shift: i32) -> Option<Money> {
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
    let shift = exp - frac.len() as i32 + shift;
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
    /// USD per web search (`search_context_cost_per_query`, medium context).
    search_per_query: Option<f64>,
    /// (base key, variant) -> (tier threshold or 0) -> rate
    costs: HashMap<(&'static str, Variant), BTreeMap<u64, Money>>,
}

/// Which price list a key belongs to (`_batches`, `_flex`, `_priority`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Variant {
    Online,
    Batch,
    Flex,
    Priority,
}

const INPUT: &str = "input_cost_per_token";
const OUTPUT: &str = "output_cost_per_token";
const READ: &str = "cache_read_input_token_cost";
const W5: &str = "cache_creation_input_token_cost";
const W1: &str = "cache_creation_input_token_cost_above_1hr";
const AUDIO: &str = "input_cost_per_audio_token";

fn base_key(k: &str) -> Option<&'static str> {
    [INPUT, OUTPUT, READ, W5, W1, AUDIO]
        .into_iter()
        .find(|b| *b == k)
}

/// `input_cost_per_token_above_200k_tokens_batches` ->
/// (`input_cost_per_token`, 200_000, batch)
fn split_key(key: &str) -> Option<(&'static str, u64, Variant)> {
    let (key, variant) = [
        ("_batches", Variant::Batch),
        ("_flex", Variant::Flex),
        ("_priority", Variant::Priority),
    ]
    .into_iter()
    .find_map(|(suffix, v)| key.strip_suffix(suffix).map(|k| (k, v)))
    .unwrap_or((key, Variant::Online));
    if let Some(b) = base_key(key) {
        return Some((b, 0, variant));
    }
    let (base, rest) = key.rsplit_once("_above_")?;
    let n = rest.strip_suffix("k_tokens")?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let b = base_key(base)?;
    Some((b, n.parse::<u64>().ok()?.checked_mul(1_000)?, variant))
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
        if let Some(m) = per_token_to_per_million(v).filter(|m| m.nanos() > ABSURD_NANOS) {
            return Err(E::custom(format!(
                "model `{}`: field `{}`: {v} per token is absurd ({m} per million tokens): LiteLLM prices are dollars per token",
                self.model, self.field
            )));
        }
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
            if let Some((base, above, variant)) = split_key(&key) {
                let v = map.next_value_seed(CostSeed {
                    model: self.0,
                    field: &key,
                })?;
                if let Some(v) = v {
                    e.costs.entry((base, variant)).or_default().insert(above, v);
                }
                continue;
            }
            match key.as_str() {
                "litellm_provider" => e.provider = map.next_value::<Option<String>>()?,
                "deprecation_date" => e.deprecated = map.next_value::<Option<String>>()?,
                "source" => e.source = map.next_value::<Option<String>>()?,
                "search_context_cost_per_query" => {
                    let v = map.next_value::<Option<HashMap<String, serde_json::Value>>>()?;
                    e.search_per_query = v
                        .and_then(|m| m.get("search_context_size_medium").and_then(|x| x.as_f64()));
                }
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

/// The providers whose own entries may be found by a bare model name.
pub(crate) fn is_first_party(provider: &str) -> bool {
    matches!(provider, "openai" | "anthropic" | "gemini")
}

/// Does this name look like a first party's model (so that only the first
/// party's own entry may take it as a bare name)?
pub(crate) fn names_first_party_model(name: &str) -> bool {
    let n = normalize_model_id(name);
    infer_provider(&n).is_some()
        || ["claude", "gemini", "gpt-", "gpt4", "chatgpt"]
            .iter()
            .any(|p| n.contains(p))
}

fn rates_at(e: &Entry, variant: Variant, above: u64) -> Option<Rates> {
    // A bucket without a tier rate keeps its base rate (as LiteLLM does);
    // a variant bucket without its own rate keeps the online one.
    let get = |k: &'static str| -> Option<Money> {
        let pick = |v: Variant| {
            let m = e.costs.get(&(k, v))?;
            m.get(&above).or_else(|| m.get(&0)).copied()
        };
        pick(variant).or_else(|| pick(Variant::Online))
    };
    let own = |k: &'static str| e.costs.contains_key(&(k, variant));
    if variant != Variant::Online && !own(INPUT) && !own(OUTPUT) {
        return None;
    }
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
        input_audio: get(AUDIO),
    })
}

fn tiers_of(e: &Entry, variant: Variant) -> Vec<Tier> {
    let mut thresholds: Vec<u64> = e
        .costs
        .iter()
        .filter(|((_, v), _)| *v == variant || *v == Variant::Online)
        .flat_map(|(_, m)| m.keys().copied())
        .filter(|t| *t > 0)
        .collect();
    thresholds.sort_unstable();
    thresholds.dedup();
    thresholds
        .into_iter()
        .filter_map(|t| {
            rates_at(e, variant, t).map(|rates| Tier {
                above_prompt_tokens: t,
                rates,
            })
        })
        .collect()
}

fn percent_of(part: Money, whole: Money) -> Option<u32> {
    if whole.is_zero() {
        return None;
    }
    let x = part.nanos() as i128 * 100;
    let w = whole.nanos() as i128;
    (x % w == 0).then(|| u32::try_from(x / w).ok()).flatten()
}

/// Batch pricing: one percentage when every batch rate the file gives is
/// that fraction of its online rate, else explicit rates (the file's own
/// batch cache-read and tier keys; a bucket it does not give keeps the
/// online rate, which never under-counts).
fn batch_of(e: &Entry, rates: &Rates) -> BatchPricing {
    let Some(batch) = rates_at(e, Variant::Batch, 0) else {
        return BatchPricing::None;
    };
    let pct =
        percent_of(batch.input, rates.input).or_else(|| percent_of(batch.output, rates.output));
    // Every batch key the file gives must be that percentage of the online
    // key at the same threshold.
    let consistent = |p: u32| {
        e.costs
            .iter()
            .filter(|((_, v), _)| *v == Variant::Batch)
            .all(|((k, _), by_tier)| {
                by_tier.iter().all(|(t, rate)| {
                    let online = e.costs.get(&(*k, Variant::Online)).and_then(|m| m.get(t));
                    online.is_some_and(|o| Rates::new(*o, *o).scaled(p).input == *rate)
                })
            })
    };
    match pct {
        Some(p) if consistent(p) => BatchPricing::Percent(p),
        _ => BatchPricing::Explicit {
            rates: batch,
            tiers: tiers_of(e, Variant::Batch),
        },
    }
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
    // Bare name -> the rank of the entry holding it (an unprefixed
    // first-party key beats a prefixed one; then the first in the file).
    let mut priority: HashMap<String, u8> = HashMap::new();
    for (key, e) in entries {
        let Some(rates) = rates_at(&e, Variant::Online, 0) else {
            continue; // priced per image, per second, ...: not per token
        };
        let provider = e
            .provider
            .as_deref()
            .map(provider_name)
            .or_else(|| infer_provider(&key).map(str::to_owned))
            .unwrap_or_else(|| "unknown".to_owned());
        // A first party pricing another's model is a reseller for it.
        let first_party =
            is_first_party(&provider) && infer_provider(&key).is_none_or(|p| p == provider);
        let stripped = match key.split_once('/') {
            Some((prefix, rest)) if prefix == provider => Some(rest),
            _ => None,
        };
        let (model, prefixed_only) = if first_party {
            (stripped.unwrap_or(&key).to_owned(), false)
        } else if key.contains('/') {
            (key.clone(), true)
        } else if names_first_party_model(&key) {
            // `gemini-2.5-pro` priced by Vertex, `claude-…-v1:0` by Bedrock.
            (format!("{provider}/{key}"), true)
        } else {
            (key.clone(), false)
        };
        if !prefixed_only {
            let rank = match (first_party, stripped.is_some() || key.contains('/')) {
                (true, false) => 3,
                (true, true) => 2,
                _ => 1,
            };
            let norm = normalize_model_id(&model);
            if table.exact_index(&model).is_some()
                && priority.get(&norm).copied().unwrap_or(0) >= rank
            {
                continue;
            }
            priority.insert(norm, rank);
        }
        let tiers = tiers_of(&e, Variant::Online);
        let batch = batch_of(&e, &rates);
        let mut price = ModelPrice::new(model.clone(), provider, rates).batch(batch);
        price.tiers = tiers;
        price.flex = rates_at(&e, Variant::Flex, 0);
        price.priority = rates_at(&e, Variant::Priority, 0);
        price.web_search_per_1k = e
            .search_per_query
            .and_then(per_token_to_per_million)
            .map(|per_million| Money::from_nanos(per_million.nanos() / 1_000));
        price.deprecated = e.deprecated.filter(|d| is_date(d));
        price.source = e.source.or_else(|| Some(format!("LiteLLM entry `{key}`")));
        price.origin = origin.to_owned();
        price.prefixed_only = prefixed_only;
        if key != model {
            price.entry = Some(key);
        }
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
            Some((INPUT, 200_000, Variant::Online))
        );
        assert_eq!(
            split_key("cache_creation_input_token_cost_above_1hr_above_200k_tokens"),
            Some((W1, 200_000, Variant::Online))
        );
        assert_eq!(
            split_key("cache_creation_input_token_cost_above_1hr"),
            Some((W1, 0, Variant::Online))
        );
        assert_eq!(
            split_key("cache_read_input_token_cost_batches"),
            Some((READ, 0, Variant::Batch))
        );
        assert_eq!(
            split_key("input_cost_per_token_priority"),
            Some((INPUT, 0, Variant::Priority))
        );
        assert_eq!(split_key("input_cost_per_token_decisions"), None);
        assert_eq!(split_key("input_cost_per_token_above_xk_tokens"), None);
    }
}
