//! Prices and the exact cost of a call.
//!
//! A [`PriceTable`] maps model ids (canonical names and aliases) to a
//! [`ModelPrice`]: per-million-token [`Rates`] for each [`Usage`] bucket,
//! batch pricing, and long-context tiers. [`PriceTable::cost`] turns a
//! usage into an exact [`Cost`] with a per-bucket breakdown.
//!
//! # Rounding
//!
//! Every bucket is multiplied exactly (`tokens × nano-dollars per million`,
//! in 128-bit integers), the products are summed, and the sum is divided by
//! one million **once**, rounding half up. So a call's cost is exact to the
//! nano-dollar and independent of the order of the buckets.
//!
//! # Example
//!
//! ```
//! use costlayer::pricing::{ModelPrice, PriceTable, Rates};
//! use costlayer::{Mode, Money, Usage};
//!
//! let usd = |s: &str| s.parse::<Money>().unwrap();
//! let mut table = PriceTable::empty("example");
//! table.insert(ModelPrice::new("my-model", "local", Rates::new(usd("2.50"), usd("10.00"))));
//! let cost = table.cost("my-model", &Usage::new(1_000, 100), Mode::Online).unwrap();
//! assert_eq!(cost.total, usd("0.0035")); // 1000 × $2.50/M + 100 × $10/M
//! ```

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Mode, Money, Usage};

/// Per-million-token rates for each usage bucket.
///
/// A cache rate that is `None` falls back to the input rate (the provider
/// does not discount or surcharge that bucket).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rates {
    /// Input (uncached prompt) tokens.
    pub input: Money,
    /// Output tokens, reasoning included.
    pub output: Money,
    /// Cache reads.
    pub cache_read: Option<Money>,
    /// 5-minute cache writes.
    pub cache_write_5m: Option<Money>,
    /// 1-hour cache writes.
    pub cache_write_1h: Option<Money>,
}

impl Rates {
    /// Input and output rates per million tokens; cache buckets at the input rate.
    pub const fn new(input: Money, output: Money) -> Self {
        Rates {
            input,
            output,
            cache_read: None,
            cache_write_5m: None,
            cache_write_1h: None,
        }
    }

    /// These rates scaled by `percent` (50 for the usual batch discount),
    /// rounded half up to the nano-dollar.
    pub fn scaled(&self, percent: u32) -> Rates {
        let s =
            |m: Money| Money::from_nanos(((m.nanos() as i128 * percent as i128 + 50) / 100) as i64);
        Rates {
            input: s(self.input),
            output: s(self.output),
            cache_read: self.cache_read.map(s),
            cache_write_5m: self.cache_write_5m.map(s),
            cache_write_1h: self.cache_write_1h.map(s),
        }
    }
}

/// How batch calls are priced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum BatchPricing {
    /// The provider has no batch API for this model: batch usage is priced
    /// at online rates.
    None,
    /// Every online rate (and tier) times this percentage (50 = half price).
    Percent(u32),
    /// Explicit batch rates (and, optionally, explicit batch tiers).
    Explicit {
        /// Batch rates below every tier threshold.
        rates: Rates,
        /// Batch long-context tiers.
        tiers: Vec<Tier>,
    },
}

/// A long-context tier: when a request's whole prompt
/// ([`Usage::prompt_tokens`]) is **strictly above** `above_prompt_tokens`,
/// these rates apply to every bucket of that request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tier {
    /// The threshold (exclusive), e.g. 200,000.
    pub above_prompt_tokens: u64,
    /// The rates above it.
    pub rates: Rates,
}

/// The price of one model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ModelPrice {
    /// The canonical name (`gpt-4o`, `claude-sonnet-4-5`, `gemini-2.5-pro`).
    pub model: String,
    /// The provider (`openai`, `anthropic`, `gemini`, ...).
    pub provider: String,
    /// Other ids that mean this model (dated ids, spellings, prefixes).
    pub aliases: Vec<String>,
    /// Online rates below every tier threshold.
    pub rates: Rates,
    /// Online long-context tiers, by ascending threshold.
    pub tiers: Vec<Tier>,
    /// Batch pricing.
    pub batch: BatchPricing,
    /// The date the provider retires the model, if announced (`YYYY-MM-DD`).
    pub deprecated: Option<String>,
    /// Where the numbers come from (a URL or a document).
    pub source: Option<String>,
    /// Where this entry was loaded from (`embedded`, a file path).
    pub origin: String,
}

impl ModelPrice {
    /// A model with online rates only: no tiers, batch at online rates.
    pub fn new(model: impl Into<String>, provider: impl Into<String>, rates: Rates) -> Self {
        ModelPrice {
            model: model.into(),
            provider: provider.into(),
            aliases: Vec::new(),
            rates,
            tiers: Vec::new(),
            batch: BatchPricing::None,
            deprecated: None,
            source: None,
            origin: "code".to_owned(),
        }
    }

    /// Adds aliases.
    pub fn aliases<I, S>(mut self, aliases: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.aliases.extend(aliases.into_iter().map(Into::into));
        self
    }

    /// Adds a long-context tier.
    pub fn tier(mut self, above_prompt_tokens: u64, rates: Rates) -> Self {
        self.tiers.push(Tier {
            above_prompt_tokens,
            rates,
        });
        self.tiers.sort_by_key(|t| t.above_prompt_tokens);
        self
    }

    /// Sets batch pricing.
    pub fn batch(mut self, batch: BatchPricing) -> Self {
        self.batch = batch;
        self
    }

    /// The rates that apply to a request of `prompt_tokens` in `mode`, and
    /// the tier threshold chosen (if any).
    pub fn rates_for(&self, prompt_tokens: u64, mode: Mode) -> (Rates, Option<u64>) {
        let pick = |base: &Rates, tiers: &[Tier]| -> (Rates, Option<u64>) {
            tiers
                .iter()
                .rev()
                .find(|t| prompt_tokens > t.above_prompt_tokens)
                .map_or((*base, None), |t| (t.rates, Some(t.above_prompt_tokens)))
        };
        match (mode, &self.batch) {
            (Mode::Online, _) | (Mode::Batch, BatchPricing::None) => pick(&self.rates, &self.tiers),
            (Mode::Batch, BatchPricing::Percent(p)) => {
                let (r, t) = pick(&self.rates, &self.tiers);
                (r.scaled(*p), t)
            }
            (Mode::Batch, BatchPricing::Explicit { rates, tiers }) => {
                if tiers.is_empty() && !self.tiers.is_empty() {
                    // Explicit base batch rates, tiers derived by the same
                    // ratio as the base input rate is not knowable: use the
                    // online tier halved, the documented rule for every
                    // provider that publishes batch tiers at all.
                    let (r, t) = pick(&self.rates, &self.tiers);
                    if t.is_some() {
                        return (r.scaled(50), t);
                    }
                    (*rates, None)
                } else {
                    pick(rates, tiers)
                }
            }
        }
    }
}

/// The cost of one call, bucket by bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cost {
    /// The canonical model that priced it.
    pub model: String,
    /// The provider of that model.
    pub provider: String,
    /// Online or batch.
    pub mode: Mode,
    /// The long-context tier threshold applied, if any.
    pub tier_above: Option<u64>,
    /// Input tokens × input rate.
    pub input: Money,
    /// Output tokens × output rate.
    pub output: Money,
    /// Cache reads × cache-read rate.
    pub cache_read: Money,
    /// 5-minute cache writes × their rate.
    pub cache_write_5m: Money,
    /// 1-hour cache writes × their rate.
    pub cache_write_1h: Money,
    /// The exact total (rounded once, see the module docs); it may differ
    /// from the sum of the rounded buckets by a nano-dollar or two.
    pub total: Money,
    /// Which table entry priced it: `<table version>:<model>`.
    pub price_version: String,
}

/// Why a cost could not be computed or a price file not loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PricingError {
    /// No price for this model.
    #[error("no price for model `{model}`{}. Run `cost-tracker models` for the list, or add it to your price file (--prices FILE)", suggest(.suggestions))]
    UnknownModel {
        /// The id asked for.
        model: String,
        /// The closest known models.
        suggestions: Vec<String>,
    },
    /// The cost does not fit in a [`Money`].
    #[error("the cost of {tokens} tokens of `{model}` overflows: check the token counts")]
    Overflow {
        /// The model.
        model: String,
        /// The largest bucket.
        tokens: u64,
    },
    /// A price file is malformed.
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// 1-based line (0 if unknown).
        line: usize,
        /// 1-based column (0 if unknown).
        column: usize,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A price file could not be read.
    #[error("cannot read price file {path}: {source}. Check the path and its permissions")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

fn suggest(s: &[String]) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!(" (did you mean {}?)", s.join(", "))
    }
}

/// A table of model prices with alias resolution.
#[derive(Clone)]
pub struct PriceTable {
    version: String,
    models: Vec<ModelPrice>,
    index: HashMap<String, usize>,
    shadowed: Vec<String>,
}

impl fmt::Debug for PriceTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PriceTable")
            .field("version", &self.version)
            .field("models", &self.models.len())
            .finish()
    }
}

/// Normalises a model id for lookup: lower case, `models/` and
/// `provider/` prefixes dropped, dots and dashes in version numbers
/// equivalent (`claude-sonnet-4.5` = `claude-sonnet-4-5`).
pub fn normalize_model_id(id: &str) -> String {
    let id = id.trim().to_ascii_lowercase();
    let id = id.strip_prefix("models/").unwrap_or(&id);
    let id = id.rsplit_once('/').map_or(id, |(_, tail)| tail);
    id.replace('.', "-")
}

impl PriceTable {
    /// An empty table with a version label (a date or a name).
    pub fn empty(version: impl Into<String>) -> Self {
        PriceTable {
            version: version.into(),
            models: Vec::new(),
            index: HashMap::new(),
            shadowed: Vec::new(),
        }
    }

    /// The table's version label (the date the prices were checked).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Adds or replaces a model. Returns the entry it replaced, if any (a
    /// user price shadowing a default).
    pub fn insert(&mut self, price: ModelPrice) -> Option<ModelPrice> {
        let key = normalize_model_id(&price.model);
        let replaced = self.index.get(&key).copied().map(|i| {
            let old = self.models.remove(i);
            self.rebuild_index();
            old
        });
        if let Some(old) = &replaced {
            self.shadowed.push(old.model.clone());
        }
        self.models.push(price);
        self.rebuild_index();
        replaced
    }

    fn rebuild_index(&mut self) {
        self.index.clear();
        // Aliases first, canonical names last, so a canonical name always wins.
        for (i, m) in self.models.iter().enumerate() {
            for a in &m.aliases {
                self.index.insert(normalize_model_id(a), i);
            }
        }
        for (i, m) in self.models.iter().enumerate() {
            self.index.insert(normalize_model_id(&m.model), i);
        }
    }

    /// Canonical names of defaults that a later insert replaced.
    pub fn shadowed(&self) -> &[String] {
        &self.shadowed
    }

    /// Every model, in insertion order.
    pub fn models(&self) -> impl ExactSizeIterator<Item = &ModelPrice> {
        self.models.iter()
    }

    /// The price of `model` (a canonical name or an alias).
    pub fn get(&self, model: &str) -> Option<&ModelPrice> {
        let key = normalize_model_id(model);
        if let Some(&i) = self.index.get(&key) {
            return Some(&self.models[i]);
        }
        // Dated ids not listed as aliases: `gpt-4o-2024-08-06`,
        // `claude-sonnet-4-5-20250929`, `gemini-2-5-pro-preview-06-05`.
        let mut k = key.as_str();
        while let Some((head, _)) = k.rsplit_once('-') {
            if let Some(&i) = self.index.get(head) {
                let tail = &key[head.len() + 1..];
                if is_version_suffix(tail) {
                    return Some(&self.models[i]);
                }
            }
            k = head;
        }
        None
    }

    /// The canonical name of `model`, if it has a price.
    pub fn canonical(&self, model: &str) -> Option<&str> {
        self.get(model).map(|m| m.model.as_str())
    }

    /// The known models closest to `model` (at most three), for error messages.
    pub fn suggestions(&self, model: &str) -> Vec<String> {
        let key = normalize_model_id(model);
        let mut scored: Vec<(f64, &str)> = self
            .models
            .iter()
            .map(|m| {
                let score = strsim::jaro_winkler(&key, &normalize_model_id(&m.model));
                (score, m.model.as_str())
            })
            .filter(|(s, _)| *s > 0.7)
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        scored
            .into_iter()
            .take(3)
            .map(|(_, m)| m.to_owned())
            .collect()
    }

    /// The exact cost of `usage` on `model` in `mode`.
    ///
    /// # Errors
    ///
    /// [`PricingError::UnknownModel`] (with the closest names) or
    /// [`PricingError::Overflow`].
    pub fn cost(&self, model: &str, usage: &Usage, mode: Mode) -> Result<Cost, PricingError> {
        let price = self.get(model).ok_or_else(|| PricingError::UnknownModel {
            model: model.to_owned(),
            suggestions: self.suggestions(model),
        })?;
        let (rates, tier_above) = price.rates_for(usage.prompt_tokens(), mode);
        let buckets = [
            (usage.input_tokens, rates.input),
            (usage.output_tokens, rates.output),
            (
                usage.cache_read_tokens,
                rates.cache_read.unwrap_or(rates.input),
            ),
            (
                usage.cache_write_5m_tokens,
                rates.cache_write_5m.unwrap_or(rates.input),
            ),
            (
                usage.cache_write_1h_tokens,
                rates.cache_write_1h.unwrap_or(rates.input),
            ),
        ];
        let overflow = || PricingError::Overflow {
            model: price.model.clone(),
            tokens: buckets.iter().map(|b| b.0).max().unwrap_or(0),
        };
        let mut products = [0i128; 5];
        for (p, (tokens, rate)) in products.iter_mut().zip(buckets) {
            *p = (tokens as i128)
                .checked_mul(rate.nanos() as i128)
                .ok_or_else(overflow)?;
        }
        let to_money = |x: i128| -> Result<Money, PricingError> {
            let n = (x + 500_000).div_euclid(1_000_000);
            i64::try_from(n)
                .map(Money::from_nanos)
                .map_err(|_| overflow())
        };
        let sum = products
            .iter()
            .try_fold(0i128, |a, p| a.checked_add(*p))
            .ok_or_else(overflow)?;
        Ok(Cost {
            model: price.model.clone(),
            provider: price.provider.clone(),
            mode,
            tier_above,
            input: to_money(products[0])?,
            output: to_money(products[1])?,
            cache_read: to_money(products[2])?,
            cache_write_5m: to_money(products[3])?,
            cache_write_1h: to_money(products[4])?,
            total: to_money(sum)?,
            price_version: format!("{}:{}", self.version, price.model),
        })
    }
}

fn is_version_suffix(tail: &str) -> bool {
    // Dates (20250929, 2024-08-06), "latest", "preview…", "exp…", "001".
    tail.split('-').all(|p| {
        p.chars().all(|c| c.is_ascii_digit())
            || p == "latest"
            || p.starts_with("preview")
            || p.starts_with("exp")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(s: &str) -> Money {
        s.parse().expect("money")
    }

    fn table() -> PriceTable {
        let mut t = PriceTable::empty("test");
        let mut r = Rates::new(usd("1.25"), usd("10"));
        r.cache_read = Some(usd("0.125"));
        let mut hi = Rates::new(usd("2.50"), usd("15"));
        hi.cache_read = Some(usd("0.25"));
        t.insert(
            ModelPrice::new("gemini-2.5-pro", "gemini", r)
                .tier(200_000, hi)
                .batch(BatchPricing::Percent(50)),
        );
        t
    }

    #[test]
    fn tier_boundary_is_strict() {
        let t = table();
        let at = t
            .cost("gemini-2.5-pro", &Usage::new(200_000, 0), Mode::Online)
            .expect("cost");
        assert_eq!(at.total, usd("0.25"));
        assert_eq!(at.tier_above, None);
        let above = t
            .cost("gemini-2.5-pro", &Usage::new(200_001, 0), Mode::Online)
            .expect("cost");
        assert_eq!(above.total, Money::from_nanos(500_002_500));
        assert_eq!(above.tier_above, Some(200_000));
    }

    #[test]
    fn dated_ids_and_prefixes_resolve() {
        let t = table();
        for id in [
            "models/gemini-2.5-pro",
            "GEMINI-2-5-PRO",
            "gemini-2.5-pro-preview-06-05",
        ] {
            assert_eq!(t.canonical(id), Some("gemini-2.5-pro"), "{id}");
        }
        assert!(t.get("gemini-2.5-pro-ultra").is_none());
        match t.cost("gemini-2.5-prox", &Usage::default(), Mode::Online) {
            Err(PricingError::UnknownModel { suggestions, .. }) => {
                assert_eq!(suggestions, vec!["gemini-2.5-pro".to_string()]);
            }
            other => panic!("expected UnknownModel, got {other:?}"),
        }
    }

    #[test]
    fn batch_percent_applies_to_tiers() {
        let t = table();
        let c = t
            .cost("gemini-2.5-pro", &Usage::new(1_000_000, 0), Mode::Batch)
            .expect("cost");
        assert_eq!(c.total, usd("1.25"));
    }

    #[test]
    fn overflow_is_an_error_not_a_panic() {
        let t = table();
        let u = Usage::new(u64::MAX, u64::MAX);
        assert!(matches!(
            t.cost("gemini-2.5-pro", &u, Mode::Online),
            Err(PricingError::Overflow { .. })
        ));
    }
}
