//! Loader for pydantic genai-prices' `data.json` (the `prices/data.json`
//! file of the genai-prices repository, the data of the `genai-prices`
//! package).

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::error::line_col;
use super::file::{infer_provider, is_date, ABSURD_NANOS};
use super::litellm::scaled_to_money;
use super::{normalize_model_id, ModelPrice, PriceTable, PricingError, Rates, Tier};
use crate::Money;

/// A genai-prices file is a JSON list of providers (`[{` or `[]`; a TOML
/// file may start with `[[models]]`, never with those).
pub(crate) fn looks_like_genai_prices(text: &str) -> bool {
    text.trim_start_matches('\u{feff}')
        .trim_start()
        .strip_prefix('[')
        .is_some_and(|rest| rest.trim_start().starts_with(['{', ']']))
}

/// genai-prices' provider ids that are first parties, and our name for them.
fn first_party(provider: &str) -> Option<&'static str> {
    match provider {
        "openai" => Some("openai"),
        "anthropic" => Some("anthropic"),
        "google" => Some("gemini"),
        _ => None,
    }
}

/// The price keys we read; any other `*_mtok` / `*_kcount` key is a
/// dimension we do not price (audio output, per-request fees, ...) and is
/// skipped.
const KEYS: [&str; 7] = [
    "input_mtok",
    "output_mtok",
    "cache_read_mtok",
    "cache_write_mtok",
    "cache_write_1h_mtok",
    "input_audio_mtok",
    "web_searches_kcount",
];

struct Ctx<'a> {
    text: &'a str,
    origin: &'a str,
}

impl Ctx<'_> {
    fn err(&self, entry: &str, field: &str, what: String) -> PricingError {
        // serde_json::Value keeps no positions: point at the entry's id.
        let needle = format!("\"{}\"", entry.rsplit('/').next().unwrap_or(entry));
        let (line, column) = self
            .text
            .find(&needle)
            .map_or((0, 0), |at| line_col(self.text, at));
        PricingError::Parse {
            path: self.origin.to_owned(),
            line,
            column,
            message: format!(
                "model `{entry}`: field `{field}`: {what} (genai-prices data.json format)"
            ),
        }
    }

    /// A price in dollars per million (or per thousand, for counts).
    fn money(&self, entry: &str, field: &str, v: &Value) -> Result<Money, PricingError> {
        let bad = |what: &str| self.err(entry, field, format!("{v} {what}"));
        let x = v
            .as_f64()
            .ok_or_else(|| bad("is not a number (dollars per million tokens)"))?;
        if !x.is_finite() || x < 0.0 {
            return Err(bad("is not a valid price: it must be zero or more"));
        }
        // The shortest decimal form of the number, exact to the nano-dollar
        // (a float artefact such as 0.18000000000000002 rounds to 0.18).
        let m = scaled_to_money(x, 9)
            .ok_or_else(|| bad("is not a valid price (below $9 billion per million tokens)"))?;
        if m.nanos() > ABSURD_NANOS && !field.ends_with("kcount") {
            return Err(bad("is absurd (above $10,000 per million tokens): genai-prices rates are dollars per million"));
        }
        Ok(m)
    }
}

/// One bucket's price: a number, or `{base, tiers: [{start, price}]}`.
struct Tiered {
    base: Money,
    tiers: Vec<(u64, Money)>,
}

impl Tiered {
    fn at(&self, prompt: u64) -> Money {
        self.tiers
            .iter()
            .rev()
            .find(|(start, _)| *start < prompt)
            .map_or(self.base, |(_, p)| *p)
    }
}

fn tiered(ctx: &Ctx<'_>, entry: &str, field: &str, v: &Value) -> Result<Tiered, PricingError> {
    if let Some(obj) = v.as_object() {
        let base = obj
            .get("base")
            .ok_or_else(|| ctx.err(entry, field, "a tiered price needs `base`".into()))?;
        let base = ctx.money(entry, field, base)?;
        let mut tiers = Vec::new();
        for t in obj
            .get("tiers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let start = t.get("start").and_then(Value::as_u64).ok_or_else(|| {
                ctx.err(
                    entry,
                    field,
                    "each tier needs a whole-number `start`".into(),
                )
            })?;
            let price = t
                .get("price")
                .ok_or_else(|| ctx.err(entry, field, "each tier needs a `price`".into()))?;
            tiers.push((start, ctx.money(entry, field, price)?));
        }
        tiers.sort_by_key(|t| t.0);
        Ok(Tiered { base, tiers })
    } else {
        Ok(Tiered {
            base: ctx.money(entry, field, v)?,
            tiers: Vec::new(),
        })
    }
}

/// Builds one [`ModelPrice`] from a `prices` object.
fn price_of(
    ctx: &Ctx<'_>,
    entry: &str,
    model: &str,
    provider: &str,
    prices: &Map<String, Value>,
) -> Result<Option<ModelPrice>, PricingError> {
    let mut got: [Option<Tiered>; 7] = Default::default();
    for (i, k) in KEYS.iter().enumerate() {
        if let Some(v) = prices.get(*k).filter(|v| !v.is_null()) {
            got[i] = Some(tiered(ctx, entry, k, v)?);
        }
    }
    if got[0].is_none() && got[1].is_none() {
        return Ok(None); // priced per request, per image, ...: not per token
    }
    let thresholds: BTreeSet<u64> = got
        .iter()
        .flatten()
        .flat_map(|t| t.tiers.iter().map(|x| x.0))
        .collect();
    let rates_at = |prompt: u64| Rates {
        input: got[0].as_ref().map_or(Money::ZERO, |t| t.at(prompt)),
        output: got[1].as_ref().map_or(Money::ZERO, |t| t.at(prompt)),
        cache_read: got[2].as_ref().map(|t| t.at(prompt)),
        cache_write_5m: got[3].as_ref().map(|t| t.at(prompt)),
        cache_write_1h: got[4].as_ref().map(|t| t.at(prompt)),
        input_audio: got[5].as_ref().map(|t| t.at(prompt)),
    };
    let mut price = ModelPrice::new(model, provider, rates_at(0));
    price.tiers = thresholds
        .into_iter()
        .map(|t| Tier {
            above_prompt_tokens: t,
            rates: rates_at(t.saturating_add(1)),
        })
        .collect();
    price.web_search_per_1k = got[6].as_ref().map(|t| t.base);
    Ok(Some(price))
}

fn match_names(clause: &Value, out: &mut Vec<String>) {
    let Some(obj) = clause.as_object() else {
        return;
    };
    for key in ["equals", "starts_with"] {
        if let Some(s) = obj.get(key).and_then(Value::as_str) {
            out.push(s.to_owned());
        }
    }
    if let Some(list) = obj.get("or").and_then(Value::as_array) {
        for c in list {
            match_names(c, out);
        }
    }
}

pub(crate) fn parse_genai(text: &str, origin: &str) -> Result<PriceTable, PricingError> {
    let ctx = Ctx { text, origin };
    let root: Value = serde_json::from_str(text).map_err(|e| PricingError::Parse {
        path: origin.to_owned(),
        line: e.line(),
        column: e.column(),
        message: format!("{e} (genai-prices data.json format)"),
    })?;
    let providers = root.as_array().ok_or_else(|| PricingError::Parse {
        path: origin.to_owned(),
        line: 1,
        column: 1,
        message: "expected a list of providers (genai-prices data.json format)".into(),
    })?;
    let name = std::path::Path::new(origin)
        .file_name()
        .map_or_else(|| origin.to_owned(), |f| f.to_string_lossy().into_owned());
    let mut table = PriceTable::empty(format!("genai-prices:{name}"));
    for p in providers {
        let pid = p.get("id").and_then(Value::as_str).unwrap_or("unknown");
        let ours = first_party(pid);
        let provider = ours.unwrap_or(pid);
        let source = p
            .get("pricing_urls")
            .and_then(Value::as_array)
            .and_then(|u| u.first())
            .and_then(Value::as_str)
            .map(str::to_owned);
        for m in p
            .get("models")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(id) = m.get("id").and_then(Value::as_str) else {
                continue;
            };
            let entry = format!("{pid}/{id}");
            // A first party reselling another's model (Google's Vertex
            // serves Claude) is a reseller for that model.
            let own = ours.filter(|o| infer_provider(id).is_none_or(|p| p == *o));
            let model = if own.is_some() {
                id.to_owned()
            } else {
                entry.clone()
            };
            let mut periods: Vec<ModelPrice> = Vec::new();
            match m.get("prices") {
                Some(Value::Object(prices)) => {
                    periods.extend(price_of(&ctx, &entry, &model, provider, prices)?);
                }
                Some(Value::Array(list)) => {
                    for cp in list {
                        let from = match cp.get("constraint") {
                            None | Some(Value::Null) => None,
                            Some(Value::Object(c)) => {
                                // Only date constraints are effective dates;
                                // time-of-day discounts are not modelled.
                                if c.keys().any(|k| k != "start_date") {
                                    continue;
                                }
                                let d = c.get("start_date").and_then(Value::as_str).unwrap_or("");
                                let d = d.get(..10).unwrap_or(d);
                                if !is_date(d) {
                                    return Err(ctx.err(
                                        &entry,
                                        "constraint.start_date",
                                        format!("`{d}` is not a date (YYYY-MM-DD)"),
                                    ));
                                }
                                Some(d.to_owned())
                            }
                            Some(_) => continue,
                        };
                        let Some(prices) = cp.get("prices").and_then(Value::as_object) else {
                            continue;
                        };
                        if let Some(mut price) = price_of(&ctx, &entry, &model, provider, prices)? {
                            price.effective_from = from;
                            periods.push(price);
                        }
                    }
                }
                _ => {}
            }
            // Newest first; the newest carries the earlier ones.
            periods.sort_by(|a, b| b.effective_from.cmp(&a.effective_from));
            let mut it = periods.into_iter();
            let Some(mut price) = it.next() else {
                continue;
            };
            price.earlier = it.collect();
            if own.is_some() {
                let mut names = Vec::new();
                if let Some(c) = m.get("match") {
                    match_names(c, &mut names);
                }
                let key = normalize_model_id(id);
                let mut seen = BTreeSet::new();
                names
                    .retain(|n| normalize_model_id(n) != key && seen.insert(normalize_model_id(n)));
                price.aliases = names;
            } else {
                price.prefixed_only = true;
            }
            price.source.clone_from(&source);
            price.origin = origin.to_owned();
            price.entry = Some(entry);
            for e in &mut price.earlier {
                e.origin = origin.to_owned();
            }
            table.replace_or_push(price);
        }
    }
    Ok(table)
}
