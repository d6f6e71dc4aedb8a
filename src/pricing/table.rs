//! [`PriceTable`]: model ids to prices, alias resolution and [`Cost`].

use foldhash::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::{OnceLock, RwLock};

use serde::{Deserialize, Serialize};

use super::{file, genai, litellm, ModelPrice, PricingError};
use crate::{CostStatus, Mode, Money, ServiceTier, SharedStr, Usage};

/// The embedded, reviewed price data (see `src/pricing/prices.toml`).
const EMBEDDED: &str = include_str!("prices.toml");

/// The cost of one call, bucket by bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cost {
    /// The canonical model that priced it (shared with the table: a clone
    /// is a reference count).
    pub model: SharedStr,
    /// The provider of that model.
    pub provider: SharedStr,
    /// Online or batch.
    pub mode: Mode,
    /// The long-context tier threshold applied, if any.
    pub tier_above: Option<u64>,
    /// Input tokens × input rate.
    pub input: Money,
    /// Output tokens (reasoning included) × output rate.
    pub output: Money,
    /// Cache reads × cache-read rate.
    pub cache_read: Money,
    /// 5-minute cache writes × their rate.
    pub cache_write_5m: Money,
    /// 1-hour cache writes × their rate.
    pub cache_write_1h: Money,
    /// Audio input tokens × the audio rate (the input rate if the table has
    /// no audio rate, and then `status` is incomplete).
    pub input_audio: Money,
    /// Web searches × the fee per 1,000 (zero if the table has no fee, and
    /// then `status` is incomplete).
    pub web_search: Money,
    /// The service tier whose rates were applied.
    pub service_tier: ServiceTier,
    /// [`CostStatus::Exact`], or [`CostStatus::Incomplete`] when the usage
    /// holds a billed dimension this entry has no rate for (named in `notes`).
    pub status: CostStatus,
    /// One line per dimension that could not be priced exactly.
    pub notes: Vec<String>,
    /// The exact total (rounded once, see the [module docs](super)); it may
    /// differ from the sum of the rounded buckets by a nano-dollar or two.
    pub total: Money,
    /// Which table entry priced it: `<table version>:<model>`, followed by
    /// `@<effective-from date>` when the entry has one.
    pub price_version: SharedStr,
}

/// A table of model prices with alias resolution.
///
/// `Clone` copies the table; share one behind an `Arc` (or use
/// [`PriceTable::embedded`], a `&'static`) to avoid that.
#[derive(Clone)]
pub struct PriceTable {
    version: String,
    models: Vec<ModelPrice>,
    /// Bare names and aliases -> (entry, is a canonical name).
    index: HashMap<String, (usize, bool)>,
    /// Reseller entries, by their full prefixed name ([`normalize_full`]).
    prefixed: HashMap<String, usize>,
    /// (normalised canonical name of the new entry, the entry it replaced)
    shadowed: Vec<(String, ModelPrice)>,
    shadowed_names: Vec<String>,
    /// Lookups already resolved, so a call prices its model without
    /// normalising the id again (and without allocating).
    memo: Memo,
}

/// Most model ids a table remembers resolving: ids come from requests and
/// responses, so the memo is bounded; past it, lookups take the slow path.
const MEMO_CAPACITY: usize = 1024;

/// What [`PriceTable::get`] and [`PriceTable::cost_at`] resolved before:
/// the model id as given to its entry, and each entry's `price_version`
/// (per set of rates: the latest, then each earlier one). Emptied by every
/// change to the table; a clone starts empty.
#[derive(Default)]
struct Memo {
    resolved: RwLock<HashMap<String, Option<usize>>>,
    versions: RwLock<HashMap<(usize, usize), Names>>,
}

/// The shared strings a [`Cost`] takes from one set of rates: its model,
/// provider and `price_version`.
#[derive(Clone)]
struct Names {
    model: SharedStr,
    provider: SharedStr,
    version: SharedStr,
}

impl Clone for Memo {
    fn clone(&self) -> Self {
        Memo::default()
    }
}

/// Reads a memo map; a poisoned lock (a panic elsewhere while inserting)
/// still holds consistent entries.
fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

impl fmt::Debug for PriceTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PriceTable")
            .field("version", &self.version)
            .field("models", &self.models.len())
            .field("shadowed", &self.shadowed_names)
            .finish()
    }
}

impl Default for PriceTable {
    /// A copy of [`PriceTable::embedded`].
    fn default() -> Self {
        PriceTable::embedded().clone()
    }
}

/// Normalises a model id for lookup: trimmed, lower case, any `models/` or
/// `provider/` prefix dropped, and `.` and `@` equivalent to `-`
/// (`claude-sonnet-4.5` = `claude-sonnet-4-5`,
/// `claude-sonnet-4-5@20250929` = `claude-sonnet-4-5-20250929`).
///
/// ```
/// use costlayer::pricing::normalize_model_id;
///
/// assert_eq!(normalize_model_id(" models/Gemini-2.5-Pro "), "gemini-2-5-pro");
/// assert_eq!(normalize_model_id("claude-sonnet-4.5"), "claude-sonnet-4-5");
/// ```
pub fn normalize_model_id(id: &str) -> String {
    let id = strip_models_prefix(id.trim());
    let tail = id.rsplit_once('/').map_or(id, |(_, tail)| tail);
    normalized(tail)
}

/// Like [`normalize_model_id`] but keeping any `provider/` prefix: the key of
/// a reseller entry (`replicate/anthropic/claude-4-5-sonnet`).
pub(crate) fn normalize_full(id: &str) -> String {
    normalized(strip_models_prefix(id.trim()))
}

/// `id` without a leading `models/` (in any case).
fn strip_models_prefix(id: &str) -> &str {
    match id.get(..7) {
        Some(head) if head.eq_ignore_ascii_case("models/") => &id[7..],
        _ => id,
    }
}

/// Lower case, `.` and `@` as `-`: one allocation.
fn normalized(id: &str) -> String {
    id.chars()
        .map(|c| match c {
            '.' | '@' => '-',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// Whether two model ids name the same model: the one identity budget
/// scopes, ledger filters (the dashboard's too) and enforcement share. Equal
/// after [`normalize_model_id`] (case, `models/` and routing prefixes, `.`
/// for `-`), or one is the other with a version suffix (a dated id).
///
/// ```
/// use costlayer::pricing::same_model;
/// assert!(same_model("claude-sonnet-4.5", "claude-sonnet-4-5-20250929"));
/// assert!(same_model("GPT-4o", "gpt-4o-2024-08-06"));
/// assert!(!same_model("gpt-4o", "gpt-4o-mini"));
/// ```
pub fn same_model(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    let (a, b) = (normalize_model_id(a), normalize_model_id(b));
    let dated = |long: &str, short: &str| {
        long.strip_prefix(short)
            .and_then(|r| r.strip_prefix('-'))
            .is_some_and(is_version_suffix)
    };
    a == b || dated(&a, &b) || dated(&b, &a)
}

/// Whether two provider names are the same provider (case and surrounding
/// blanks aside): `OpenAI` is `openai`.
pub fn same_provider(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

impl PriceTable {
    /// An empty table with a version label (a date or a name).
    pub fn empty(version: impl Into<String>) -> Self {
        PriceTable {
            version: version.into(),
            models: Vec::new(),
            index: HashMap::default(),
            prefixed: HashMap::default(),
            shadowed: Vec::new(),
            shadowed_names: Vec::new(),
            memo: Memo::default(),
        }
    }

    /// The embedded, reviewed price table, parsed once. Its
    /// [`version`](Self::version) is the date the prices were checked; each
    /// entry cites its source.
    ///
    /// ```
    /// use costlayer::pricing::PriceTable;
    ///
    /// let table = PriceTable::embedded();
    /// assert_eq!(table.canonical("claude-sonnet-4-5-20250929"), Some("claude-sonnet-4-5"));
    /// assert_eq!(table.canonical("models/gemini-2.5-pro"), Some("gemini-2.5-pro"));
    /// ```
    pub fn embedded() -> &'static PriceTable {
        static TABLE: OnceLock<PriceTable> = OnceLock::new();
        TABLE.get_or_init(|| {
            file::parse_toml(EMBEDDED, "embedded").unwrap_or_else(|e| {
                // Unreachable in a released build: the test suite parses the
                // embedded file. Degrade to an empty table rather than panic.
                tracing::error!(error = %e, "the embedded price table is malformed");
                PriceTable::empty("invalid-embedded")
            })
        })
    }

    /// Loads a price file: costlayer's own TOML format, LiteLLM's
    /// `model_prices_and_context_window.json`, or pydantic genai-prices'
    /// `data.json` (detected: a `.json` file, or one that starts with `{` or
    /// `[`, is JSON; a top-level list of providers is genai-prices, an
    /// object LiteLLM).
    ///
    /// Every entry's [`origin`](ModelPrice::origin) is the path.
    ///
    /// # Errors
    ///
    /// [`PricingError::Io`] if the file cannot be read,
    /// [`PricingError::Parse`] (with line, column, model and field) if it is
    /// malformed.
    pub fn from_path(path: impl AsRef<Path>) -> Result<PriceTable, PricingError> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| PricingError::Io {
            path: shown.clone(),
            source,
        })?;
        let is_json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"))
            || genai::looks_like_genai_prices(&text)
            || text
                .trim_start_matches('\u{feff}')
                .trim_start()
                .starts_with('{');
        if is_json {
            if genai::looks_like_genai_prices(&text) {
                genai::parse_genai(&text, &shown)
            } else {
                litellm::parse_litellm(&text, &shown)
            }
        } else {
            file::parse_toml(&text, &shown)
        }
    }

    /// Parses costlayer's TOML price format from a string; `origin` names it
    /// in errors and in [`ModelPrice::origin`]. The format is documented in
    /// the [module docs](super#the-price-file-format).
    ///
    /// # Errors
    ///
    /// [`PricingError::Parse`] with line, column, model and field.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<PriceTable, PricingError> {
        file::parse_toml(text, origin)
    }

    /// Parses LiteLLM's `model_prices_and_context_window.json` format from a
    /// string; see the [module docs](super#litellm-files) for the mapping.
    ///
    /// # Errors
    ///
    /// [`PricingError::Parse`] with line, column, model and field.
    pub fn from_litellm_str(text: &str, origin: &str) -> Result<PriceTable, PricingError> {
        litellm::parse_litellm(text, origin)
    }

    /// Parses pydantic genai-prices' `data.json` (a list of providers, each
    /// with its models) from a string; see the
    /// [module docs](super#genai-prices-files) for the mapping.
    ///
    /// # Errors
    ///
    /// [`PricingError::Parse`] with line, column, model and field.
    pub fn from_genai_prices_str(text: &str, origin: &str) -> Result<PriceTable, PricingError> {
        genai::parse_genai(text, origin)
    }

    /// The embedded table with a user file merged over it (see
    /// [`merge_overrides`](Self::merge_overrides)).
    ///
    /// # Errors
    ///
    /// As [`from_path`](Self::from_path).
    pub fn with_user_file(path: impl AsRef<Path>) -> Result<PriceTable, PricingError> {
        let user = PriceTable::from_path(path)?;
        let mut table = PriceTable::embedded().clone();
        table.merge_overrides(user);
        Ok(table)
    }

    /// Merges `other` over this table: its models replace the ones they name
    /// (by canonical name or alias; the replaced entry is reported by
    /// [`shadowed`](Self::shadowed) and [`shadowed_entry`](Self::shadowed_entry),
    /// and its aliases carry over) and the rest are added. The version becomes
    /// `<this version>+<other version>`.
    ///
    /// ```
    /// use costlayer::pricing::{ModelPrice, PriceTable, Rates};
    /// use costlayer::Money;
    ///
    /// let usd = |s: &str| s.parse::<Money>().unwrap();
    /// let mut user = PriceTable::empty("ours");
    /// user.insert(ModelPrice::new("gpt-4o", "openai", Rates::new(usd("2"), usd("8"))));
    /// let mut table = PriceTable::default();
    /// table.merge_overrides(user);
    /// assert_eq!(table.get("gpt-4o-2024-08-06").unwrap().rates.input, usd("2"));
    /// assert_eq!(table.shadowed(), ["gpt-4o"]);
    /// assert!(table.version().ends_with("+ours"));
    /// ```
    pub fn merge_overrides(&mut self, other: PriceTable) {
        self.memo = Memo::default();
        self.version = format!("{}+{}", self.version, other.version);
        for m in other.models {
            self.insert(m);
        }
    }

    /// The table's version label (the date the prices were checked).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Adds a model, or replaces the one whose canonical name is
    /// `price.model` (the replaced entry's aliases carry over). A name that
    /// is only another entry's alias (a dated id) becomes an entry of its
    /// own and takes that name. Either way the entry it displaces is
    /// reported by [`shadowed`](Self::shadowed) and returned.
    pub fn insert(&mut self, price: ModelPrice) -> Option<ModelPrice> {
        let key = normalize_model_id(&price.model);
        let replaced = self.replace_or_push(price);
        if let Some(old) = &replaced {
            self.shadowed_names.push(old.model.clone());
            self.shadowed.push((key, old.clone()));
        }
        replaced
    }

    /// Insert without recording a shadow (duplicates inside one source).
    ///
    /// A bare-name entry replaces the entry of the same canonical name in
    /// place and inherits its names; a name that is another entry's alias
    /// becomes an entry of its own. A
    /// reseller entry ([`ModelPrice::prefixed_only`]) goes to the prefixed
    /// index only and replaces the reseller entry of the same full name.
    /// Constant time per name: loading n entries is O(n).
    pub(crate) fn replace_or_push(&mut self, mut price: ModelPrice) -> Option<ModelPrice> {
        self.memo = Memo::default();
        if price.prefixed_only {
            let key = normalize_full(&price.model);
            let keys: Vec<String> = price.aliases.iter().map(|a| normalize_full(a)).collect();
            let i = match self.prefixed.get(&key).copied() {
                Some(i) => {
                    let old = std::mem::replace(&mut self.models[i], price);
                    for k in keys {
                        self.prefixed.insert(k, i);
                    }
                    return Some(old);
                }
                None => {
                    self.models.push(price);
                    self.models.len() - 1
                }
            };
            self.prefixed.insert(key, i);
            for k in keys {
                self.prefixed.entry(k).or_insert(i);
            }
            return None;
        }
        let key = normalize_model_id(&price.model);
        let (at, canonical) = match self.index.get(&key) {
            Some(&(i, c)) => (Some(i), c),
            None => (None, false),
        };
        let replaced = match at {
            // The same model: replaced in place, its other names carried over.
            Some(i) if canonical => {
                let old = &self.models[i];
                let mut aliases = std::mem::take(&mut price.aliases);
                aliases.extend(old.aliases.iter().cloned());
                let mut seen = std::collections::HashSet::new();
                aliases
                    .retain(|a| normalize_model_id(a) != key && seen.insert(normalize_model_id(a)));
                price.aliases = aliases;
                // A replacement keeps the replaced entry's place in the listing.
                Some(std::mem::replace(&mut self.models[i], price))
            }
            // Another model's alias (a dated id priced on its own): a new
            // entry that takes that name; the other keeps the rest.
            Some(i) => {
                let old = self.models[i].clone();
                self.models.push(price);
                Some(old)
            }
            None => {
                self.models.push(price);
                None
            }
        };
        let i = if canonical {
            at.unwrap_or(self.models.len() - 1)
        } else {
            self.models.len() - 1
        };
        self.index_names(i);
        replaced
    }

    /// Indexes entry `i`'s names. An alias never takes a name that is
    /// another entry's canonical name; a canonical name always wins.
    fn index_names(&mut self, i: usize) {
        let m = &self.models[i];
        let canonical = normalize_model_id(&m.model);
        for a in &m.aliases {
            let k = normalize_model_id(a);
            match self.index.get(&k) {
                Some(&(j, true)) if j != i => {}
                _ => {
                    self.index.insert(k, (i, false));
                }
            }
        }
        self.index.insert(canonical, (i, true));
    }

    /// The index of the model `id` names exactly (canonical name or alias).
    pub(crate) fn exact_index(&self, id: &str) -> Option<usize> {
        self.index.get(&normalize_model_id(id)).map(|&(i, _)| i)
    }

    /// Canonical names of entries that a later [`insert`](Self::insert) or
    /// [`merge_overrides`](Self::merge_overrides) replaced.
    pub fn shadowed(&self) -> &[String] {
        &self.shadowed_names
    }

    /// The entry that `model`'s current entry replaced (a user price
    /// shadowing a default), if any.
    pub fn shadowed_entry(&self, model: &str) -> Option<&ModelPrice> {
        let key = normalize_model_id(self.canonical(model)?);
        self.shadowed
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .map(|(_, old)| old)
    }

    /// Every model, in insertion order (a replacement takes the place of the
    /// entry it replaced).
    pub fn models(&self) -> impl ExactSizeIterator<Item = &ModelPrice> {
        self.models.iter()
    }

    /// The number of models.
    pub fn len(&self) -> usize {
        self.models.len()
    }

    /// `true` if the table has no model.
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }

    /// The price of `model`: a canonical name, an alias, or either followed
    /// by a version suffix (`-2024-08-06`, `-20250929`, `-latest`,
    /// `-preview-06-05`, `-exp-0827`, `-001`). Other suffixes never match:
    /// `gpt-4o-mini` is not `gpt-4o`, and `gpt-4.1` is not `gpt-4`.
    ///
    /// A prefixed id (`vertex_ai/claude-3-5-haiku`) first looks for a
    /// reseller entry of that exact name; a reseller entry is never found by
    /// a bare name. A prefixed id with no reseller entry falls back to the
    /// bare name (`gemini/gemini-2.5-pro`, `anthropic/claude-sonnet-4.5`).
    pub fn get(&self, model: &str) -> Option<&ModelPrice> {
        self.resolve(model).and_then(|i| self.models.get(i))
    }

    /// The entry `model` names, remembered: a model id seen before costs
    /// one hash lookup and no allocation.
    fn resolve(&self, model: &str) -> Option<usize> {
        if let Some(&found) = read(&self.memo.resolved).get(model) {
            return found;
        }
        let found = self.resolve_uncached(model);
        let mut memo = write(&self.memo.resolved);
        if memo.len() < MEMO_CAPACITY {
            memo.insert(model.to_owned(), found);
        }
        found
    }

    fn resolve_uncached(&self, model: &str) -> Option<usize> {
        if !self.prefixed.is_empty() {
            let full = normalize_full(model);
            if full.contains('/') {
                let found = lookup(&full, |k| self.prefixed.get(k).copied());
                if found.is_some() {
                    return found;
                }
            }
        }
        let key = normalize_model_id(model);
        lookup(&key, |k| self.index.get(k).map(|&(i, _)| i))
    }

    /// The model, provider and `price_version` of entry `i`'s rates
    /// `price` (the entry itself or one of its earlier rates), made once:
    /// later calls share them.
    fn names(&self, i: usize, latest: &ModelPrice, price: &ModelPrice) -> Names {
        let which = if std::ptr::eq(latest, price) {
            0
        } else {
            latest
                .earlier
                .iter()
                .position(|e| std::ptr::eq(e, price))
                .map_or(0, |p| p + 1)
        };
        if let Some(v) = read(&self.memo.versions).get(&(i, which)) {
            return v.clone();
        }
        let v = Names {
            model: SharedStr::from(price.model.as_str()),
            provider: SharedStr::from(price.provider.as_str()),
            version: SharedStr::from(match &price.effective_from {
                Some(d) => format!("{}:{}@{d}", self.version, price.model),
                None => format!("{}:{}", self.version, price.model),
            }),
        };
        let mut memo = write(&self.memo.versions);
        if memo.len() < MEMO_CAPACITY {
            memo.insert((i, which), v.clone());
        }
        v
    }

    /// Every reseller entry ([`ModelPrice::prefixed_only`]) is listed in
    /// [`models`](Self::models); this says how many there are.
    pub fn reseller_count(&self) -> usize {
        self.models.iter().filter(|m| m.prefixed_only).count()
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
                let score = std::iter::once(&m.model)
                    .chain(&m.aliases)
                    .map(|n| strsim::jaro_winkler(&key, &normalize_model_id(n)))
                    .fold(0.0, f64::max);
                (score, m.model.as_str())
            })
            .filter(|(s, _)| *s > 0.8)
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        scored
            .into_iter()
            .take(3)
            .map(|(_, m)| m.to_owned())
            .collect()
    }

    /// The exact cost of `usage` on `model` in `mode`, at the rates in force
    /// today (see [`cost_at`](Self::cost_at)).
    ///
    /// The long-context tier is chosen by the whole prompt
    /// ([`Usage::prompt_tokens`]) and applies to every bucket; reasoning
    /// tokens are inside `output_tokens` and are not added again.
    ///
    /// # Errors
    ///
    /// [`PricingError::UnknownModel`] (with the closest names) or
    /// [`PricingError::Overflow`] (the cost exceeds about $9.2 billion).
    pub fn cost(&self, model: &str, usage: &Usage, mode: Mode) -> Result<Cost, PricingError> {
        self.cost_at(model, usage, mode, chrono::Utc::now())
    }

    /// The exact cost of `usage` on `model` in `mode` at the rates in force
    /// at `at` (the call's timestamp; entries change on UTC days, see
    /// [`ModelPrice::at`]).
    ///
    /// A billed dimension the entry has no rate for (audio input, web
    /// searches, a flex or priority tier) makes the cost
    /// [`CostStatus::Incomplete`] with a note naming it: audio is then
    /// billed at the input rate, searches at zero, the tier at standard
    /// rates.
    ///
    /// # Errors
    ///
    /// As [`cost`](Self::cost).
    pub fn cost_at(
        &self,
        model: &str,
        usage: &Usage,
        mode: Mode,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Cost, PricingError> {
        self.cost_inner(model, usage, mode, at, true)
    }

    /// The total of [`cost_at`](Self::cost_at) alone: no names, no
    /// `price_version`, no allocation for a known model.
    pub(crate) fn total_at(
        &self,
        model: &str,
        usage: &Usage,
        mode: Mode,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Money, PricingError> {
        self.cost_inner(model, usage, mode, at, false)
            .map(|c| c.total)
    }

    /// [`cost_at`](Self::cost_at); with `named == false` the model,
    /// provider and `price_version` are left empty.
    fn cost_inner(
        &self,
        model: &str,
        usage: &Usage,
        mode: Mode,
        at: chrono::DateTime<chrono::Utc>,
        named: bool,
    ) -> Result<Cost, PricingError> {
        let Some((i, latest)) = self
            .resolve(model)
            .and_then(|i| Some((i, self.models.get(i)?)))
        else {
            return Err(PricingError::UnknownModel {
                model: model.to_owned(),
                suggestions: self.suggestions(model),
            });
        };
        let price = if latest.effective_from.is_none() && latest.earlier.is_empty() {
            latest
        } else {
            latest.at(ymd(at).as_str())
        };
        let mut notes = Vec::new();
        let tier_rates = match usage.service_tier {
            ServiceTier::Flex => Some(("flex", price.flex)),
            ServiceTier::Priority => Some(("priority", price.priority)),
            _ => None,
        };
        let (rates, tier_above, service_tier) = match (mode, tier_rates) {
            (Mode::Online, Some((_, Some(r)))) => (r, None, usage.service_tier),
            (Mode::Online, Some((name, None))) => {
                notes.push(format!(
                    "service tier {name}: no {name} rates for {}; priced at standard rates",
                    price.model
                ));
                let (r, t) = price.rates_for(usage.prompt_tokens(), mode);
                (r, t, ServiceTier::Standard)
            }
            _ => {
                let (r, t) = price.rates_for(usage.prompt_tokens(), mode);
                (r, t, ServiceTier::Standard)
            }
        };
        let audio_rate = match rates.input_audio {
            Some(r) => r,
            None => {
                if usage.input_audio_tokens > 0 {
                    notes.push(format!(
                        "input_audio_tokens: no audio input rate for {}; {} audio tokens priced at the text input rate",
                        price.model, usage.input_audio_tokens
                    ));
                }
                rates.input
            }
        };
        // The fee per 1,000 searches is, per search, fee / 1,000 — that is
        // fee × 1,000 per million searches, which keeps one rounding below.
        let search_rate = match price.web_search_per_1k {
            Some(fee) => Money::from_nanos(fee.nanos().saturating_mul(1_000)),
            None => {
                if usage.web_search_requests > 0 {
                    notes.push(format!(
                        "web_search_requests: no web-search fee for {}; {} searches not priced",
                        price.model, usage.web_search_requests
                    ));
                }
                Money::ZERO
            }
        };
        let buckets = [
            (usage.input_tokens, rates.input),
            (usage.output_tokens, rates.output),
            (usage.cache_read_tokens, rates.cache_read_rate()),
            (usage.cache_write_5m_tokens, rates.cache_write_5m_rate()),
            (usage.cache_write_1h_tokens, rates.cache_write_1h_rate()),
            (usage.input_audio_tokens, audio_rate),
            (usage.web_search_requests, search_rate),
        ];
        let overflow = || PricingError::Overflow {
            model: price.model.clone(),
            tokens: buckets.iter().map(|b| b.0).max().unwrap_or(0),
        };
        // u64 × i64 always fits in i128; the sum of seven such products too.
        let mut products = [0i128; 7];
        for (p, (tokens, rate)) in products.iter_mut().zip(buckets) {
            *p = tokens as i128 * rate.nanos() as i128;
        }
        let to_money = |x: i128| -> Result<Money, PricingError> {
            // Half up. In i64 when it fits (every real call): there a
            // division by a constant is a multiply, in i128 a library call.
            let n = match i64::try_from(x).ok().and_then(|v| v.checked_add(500_000)) {
                Some(v) => i128::from(v.div_euclid(1_000_000)),
                None => (x + 500_000).div_euclid(1_000_000),
            };
            i64::try_from(n)
                .map(Money::from_nanos)
                .map_err(|_| overflow())
        };
        let sum: i128 = products.iter().sum();
        let (model, provider, price_version) = if named {
            let n = self.names(i, latest, price);
            (n.model, n.provider, n.version)
        } else {
            let empty = SharedStr::default();
            (empty.clone(), empty.clone(), empty)
        };
        Ok(Cost {
            model,
            provider,
            mode,
            tier_above,
            input: to_money(products[0])?,
            output: to_money(products[1])?,
            cache_read: to_money(products[2])?,
            cache_write_5m: to_money(products[3])?,
            cache_write_1h: to_money(products[4])?,
            input_audio: to_money(products[5])?,
            web_search: to_money(products[6])?,
            total: to_money(sum)?,
            service_tier,
            status: if notes.is_empty() {
                CostStatus::Exact
            } else {
                CostStatus::Incomplete
            },
            notes,
            price_version,
        })
    }
}

/// `YYYY-MM-DD` of `at`'s UTC day, formatted on the stack.
struct Ymd([u8; 10]);

impl Ymd {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("0000-00-00")
    }
}

fn ymd(at: chrono::DateTime<chrono::Utc>) -> Ymd {
    use chrono::Datelike;
    let d = at.date_naive();
    let mut out = *b"0000-00-00";
    // Prices are dated in years 0..=9999; a year outside is clamped, which
    // only decides which side of every effective date it falls on.
    let y = d.year().clamp(0, 9999) as u32;
    let digits = |n: u32, out: &mut [u8]| {
        let mut n = n;
        for b in out.iter_mut().rev() {
            *b = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    digits(y, &mut out[0..4]);
    digits(d.month(), &mut out[5..7]);
    digits(d.day(), &mut out[8..10]);
    Ymd(out)
}

/// Finds `key`, or a known name followed by a version suffix.
fn lookup(key: &str, find: impl Fn(&str) -> Option<usize>) -> Option<usize> {
    if let Some(i) = find(key) {
        return Some(i);
    }
    let mut k = key;
    while let Some((head, _)) = k.rsplit_once('-') {
        if let Some(i) = find(head) {
            if is_version_suffix(&key[head.len() + 1..]) {
                return Some(i);
            }
        }
        k = head;
    }
    None
}

fn all_digits(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_digit())
}

/// Is `tail` (after the model name and a dash) a version suffix?
///
/// Dates (`20250929`, `2024-08-06`, OpenAI's `0613`), `latest`, a
/// three-digit revision (`001`), or `preview` / `exp` optionally followed by a date
/// (`preview-06-05`, `preview-09-2025`, `exp-0827`, `exp-03-25`).
fn is_version_suffix(tail: &str) -> bool {
    let parts: Vec<&str> = tail.split('-').collect();
    let date = |p: &[&str]| match p {
        [d] => all_digits(d, 8) || all_digits(d, 4) || all_digits(d, 3),
        [y, m, d] => all_digits(y, 4) && all_digits(m, 2) && all_digits(d, 2),
        _ => false,
    };
    match parts.as_slice() {
        ["latest"] => true,
        ["preview" | "exp", rest @ ..] => match rest {
            [] => true,
            [d] => all_digits(d, 4) || all_digits(d, 8),
            [a, b] => all_digits(a, 2) && (all_digits(b, 2) || all_digits(b, 4)),
            _ => date(rest),
        },
        _ => date(&parts),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pricing::{BatchPricing, Rates};

    fn usd(s: &str) -> Money {
        s.parse().expect("money")
    }

    fn table() -> PriceTable {
        let mut t = PriceTable::empty("test");
        let r = Rates::new(usd("1.25"), usd("10")).cache_read(usd("0.125"));
        let hi = Rates::new(usd("2.50"), usd("15")).cache_read(usd("0.25"));
        t.insert(
            ModelPrice::new("gemini-2.5-pro", "gemini", r)
                .tier(200_000, hi)
                .batch(BatchPricing::Percent(50)),
        );
        t.insert(ModelPrice::new(
            "gpt-4",
            "openai",
            Rates::new(usd("30"), usd("60")),
        ));
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
    fn version_suffixes_are_dates_not_numbers() {
        for ok in [
            "20250929",
            "2024-08-06",
            "latest",
            "001",
            "preview",
            "preview-06-05",
            "preview-09-2025",
            "exp-0827",
            "exp-03-25",
            "0613",
        ] {
            assert!(is_version_suffix(ok), "{ok}");
        }
        for bad in ["1", "mini", "10", "12345", "lite", "preview-x", "1-2-3"] {
            assert!(!is_version_suffix(bad), "{bad}");
        }
        let t = table();
        // `gpt-4.1` is a different model, never `gpt-4` with a suffix.
        assert!(t.get("gpt-4.1").is_none());
        assert!(t.get("gpt-4-1").is_none());
        assert_eq!(t.canonical("gpt-4-0613"), Some("gpt-4"));
        assert_eq!(t.canonical("gpt-4-2024-04-09"), Some("gpt-4"));
    }

    #[test]
    fn dated_ids_and_prefixes_resolve() {
        let t = table();
        for id in [
            "models/gemini-2.5-pro",
            "GEMINI-2-5-PRO",
            "gemini-2.5-pro-preview-06-05",
            "gemini/gemini-2.5-pro",
            "gemini-2.5-pro@001",
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
        assert_eq!(c.tier_above, Some(200_000));
    }

    #[test]
    fn insert_by_alias_replaces_and_keeps_aliases() {
        let mut t = PriceTable::empty("t");
        t.insert(
            ModelPrice::new(
                "claude-sonnet-4-5",
                "anthropic",
                Rates::new(usd("3"), usd("15")),
            )
            .aliases(["sonnet"]),
        );
        let old = t.insert(ModelPrice::new(
            "claude-sonnet-4.5",
            "anthropic",
            Rates::new(usd("2"), usd("10")),
        ));
        assert_eq!(old.map(|o| o.model), Some("claude-sonnet-4-5".into()));
        assert_eq!(t.len(), 1);
        assert_eq!(t.get("sonnet").map(|m| m.rates.input), Some(usd("2")));
        assert_eq!(
            t.shadowed_entry("sonnet").map(|m| m.rates.input),
            Some(usd("3"))
        );
        assert_eq!(t.shadowed(), ["claude-sonnet-4-5"]);
    }

    #[test]
    fn a_dated_id_priced_apart_takes_only_its_own_name() {
        let mut t = PriceTable::empty("t");
        t.insert(
            ModelPrice::new("gpt-4o", "openai", Rates::new(usd("2.5"), usd("10")))
                .aliases(["gpt-4o-2024-08-06", "gpt-4o-2024-11-20"]),
        );
        t.insert(ModelPrice::new(
            "gpt-4o-2024-08-06",
            "openai",
            Rates::new(usd("5"), usd("15")),
        ));
        assert_eq!(t.len(), 2);
        assert_eq!(t.canonical("gpt-4o"), Some("gpt-4o"));
        assert_eq!(t.canonical("gpt-4o-2024-11-20"), Some("gpt-4o"));
        assert_eq!(t.canonical("gpt-4o-2024-08-06"), Some("gpt-4o-2024-08-06"));
        // In either order.
        t.insert(ModelPrice::new(
            "gpt-4o",
            "openai",
            Rates::new(usd("2"), usd("8")),
        ));
        assert_eq!(t.canonical("gpt-4o-2024-08-06"), Some("gpt-4o-2024-08-06"));
        assert_eq!(
            t.get("gpt-4o-2024-11-20").map(|m| m.rates.input),
            Some(usd("2"))
        );
    }

    #[test]
    fn rounding_is_half_up_at_every_size() {
        // A rate of 1 nano-dollar per million tokens makes the cost the
        // token count over a million, rounded half up; then a rate that
        // puts the product next to i64::MAX, where the sum leaves i64.
        let mut t = PriceTable::empty("test");
        t.insert(ModelPrice::new(
            "tiny",
            "x",
            Rates::new(Money::from_nanos(1), Money::ZERO),
        ));
        t.insert(ModelPrice::new(
            "huge",
            "x",
            Rates::new(Money::from_nanos(i64::MAX / 4), Money::ZERO),
        ));
        let reference = |tokens: u64, rate: i64| {
            let x = i128::from(tokens) * i128::from(rate);
            i64::try_from((x + 500_000).div_euclid(1_000_000)).ok()
        };
        for tokens in [0, 1, 499_999, 500_000, 1_499_999, 1_500_000, 2_500_000] {
            let c = t
                .cost("tiny", &Usage::new(tokens, 0), Mode::Online)
                .expect("priced");
            assert_eq!(Some(c.total.nanos()), reference(tokens, 1), "{tokens}");
        }
        for tokens in [1, 2, 3, 4, 5, 1_000_000, 4_000_000] {
            let got = t
                .cost("huge", &Usage::new(tokens, 0), Mode::Online)
                .ok()
                .map(|c| c.total.nanos());
            assert_eq!(got, reference(tokens, i64::MAX / 4), "{tokens}");
        }
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
