//! The price of one model: [`Rates`], [`Tier`], [`BatchPricing`], [`ModelPrice`].

use serde::{Deserialize, Serialize};

use crate::{Mode, Money};

/// Per-million-token rates for each usage bucket.
///
/// A cache rate that is `None` falls back to the input rate: the provider
/// neither discounts nor surcharges that bucket (OpenAI and Gemini report no
/// cache writes at all, so their write rates are `None`).
///
/// # Example
///
/// ```
/// use costlayer::pricing::Rates;
/// use costlayer::Money;
///
/// let usd = |s: &str| s.parse::<Money>().unwrap();
/// let rates = Rates::new(usd("3"), usd("15")).cache_read(usd("0.30"));
/// assert_eq!(rates.cache_read_rate(), usd("0.30"));
/// assert_eq!(rates.cache_write_5m_rate(), usd("3")); // falls back to input
/// assert_eq!(rates.scaled(50).output, usd("7.50"));
/// ```
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
    /// Audio input tokens ([`Usage::input_audio_tokens`](crate::Usage::input_audio_tokens)).
    /// `None`: the provider's audio rate is not in the table; audio is then
    /// billed at the input rate and the cost is marked incomplete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_audio: Option<Money>,
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
            input_audio: None,
        }
    }

    /// Sets the audio input rate. Without it audio input is billed at the
    /// input rate and the cost is marked incomplete.
    pub const fn input_audio(mut self, rate: Money) -> Self {
        self.input_audio = Some(rate);
        self
    }

    /// Sets the cache-read rate. Defaults to the input rate.
    pub const fn cache_read(mut self, rate: Money) -> Self {
        self.cache_read = Some(rate);
        self
    }

    /// Sets the 5-minute cache-write rate. Defaults to the input rate.
    pub const fn cache_write_5m(mut self, rate: Money) -> Self {
        self.cache_write_5m = Some(rate);
        self
    }

    /// Sets the 1-hour cache-write rate. Defaults to the input rate.
    pub const fn cache_write_1h(mut self, rate: Money) -> Self {
        self.cache_write_1h = Some(rate);
        self
    }

    /// The rate that applies to cache reads (the input rate if unset).
    pub fn cache_read_rate(&self) -> Money {
        self.cache_read.unwrap_or(self.input)
    }

    /// The rate that applies to 5-minute cache writes (the input rate if unset).
    pub fn cache_write_5m_rate(&self) -> Money {
        self.cache_write_5m.unwrap_or(self.input)
    }

    /// The rate that applies to 1-hour cache writes (the input rate if unset).
    pub fn cache_write_1h_rate(&self) -> Money {
        self.cache_write_1h.unwrap_or(self.input)
    }

    /// These rates scaled by `percent` (50 for the usual batch discount),
    /// rounded half up to the nano-dollar.
    pub fn scaled(&self, percent: u32) -> Rates {
        let s = |m: Money| {
            let n = (m.nanos() as i128 * percent as i128 + 50).div_euclid(100);
            Money::from_nanos(i64::try_from(n).unwrap_or(i64::MAX))
        };
        Rates {
            input: s(self.input),
            output: s(self.output),
            cache_read: self.cache_read.map(s),
            cache_write_5m: self.cache_write_5m.map(s),
            cache_write_1h: self.cache_write_1h.map(s),
            input_audio: self.input_audio.map(s),
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
    /// Every online rate, tiers and cache buckets included, times this
    /// percentage (50 = half price). OpenAI, Anthropic and Gemini all
    /// document their batch discount this way.
    Percent(u32),
    /// Explicit batch rates, with their own long-context tiers (if `tiers`
    /// is empty, the explicit rates apply at every prompt size).
    Explicit {
        /// Batch rates below every tier threshold.
        rates: Rates,
        /// Batch long-context tiers, by ascending threshold.
        tiers: Vec<Tier>,
    },
}

/// A long-context tier: when a request's whole prompt
/// ([`Usage::prompt_tokens`](crate::Usage::prompt_tokens): input + cache
/// reads + cache writes) is **strictly above** `above_prompt_tokens`, these
/// rates apply to every bucket of that request, output included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tier {
    /// The threshold (exclusive), e.g. 200,000.
    pub above_prompt_tokens: u64,
    /// The rates above it.
    pub rates: Rates,
}

/// The price of one model.
///
/// # Example
///
/// ```
/// use costlayer::pricing::{BatchPricing, ModelPrice, Rates};
/// use costlayer::{Mode, Money};
///
/// let usd = |s: &str| s.parse::<Money>().unwrap();
/// let price = ModelPrice::new("my-pro", "acme", Rates::new(usd("1.25"), usd("10")))
///     .tier(200_000, Rates::new(usd("2.50"), usd("15")))
///     .batch(BatchPricing::Percent(50));
/// let (rates, tier) = price.rates_for(200_001, Mode::Batch);
/// assert_eq!((rates.input, tier), (usd("1.25"), Some(200_000)));
/// ```
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
    /// Pricing a deprecated model still works.
    pub deprecated: Option<String>,
    /// Where the numbers come from (a URL or a document).
    pub source: Option<String>,
    /// Where this entry was loaded from (`embedded`, a file path, `code`).
    pub origin: String,
    /// The entry's own key in that file (a LiteLLM key such as
    /// `replicate/anthropic/claude-4.5-sonnet`, a genai-prices
    /// `provider/model id`), when it differs from `model`.
    pub entry: Option<String>,
    /// A reseller's entry (Bedrock, Vertex, Azure, OpenRouter, ...), found
    /// only by its own prefixed name (`model`), never by a bare model name,
    /// so an import never prices a first-party call at a reseller's rate.
    pub prefixed_only: bool,
    /// Flex service-tier rates (OpenAI `service_tier: "flex"`, Gemini Flex).
    /// `None`: a flex call is priced at standard rates and marked incomplete.
    pub flex: Option<Rates>,
    /// Priority service-tier rates (OpenAI `service_tier: "priority"`,
    /// Anthropic Priority Tier, Gemini priority traffic). `None`: priced at
    /// standard rates and marked incomplete.
    pub priority: Option<Rates>,
    /// Server-side web search, dollars per 1,000 requests (Anthropic
    /// `server_tool_use.web_search_requests`). Batch does not discount it.
    pub web_search_per_1k: Option<Money>,
    /// The first day (UTC, `YYYY-MM-DD`) these rates apply; `None`: since
    /// the model's launch.
    pub effective_from: Option<String>,
    /// The rates in force before `effective_from`, as entries of their own,
    /// newest first (see [`at`](Self::at)).
    pub earlier: Vec<ModelPrice>,
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
            entry: None,
            prefixed_only: false,
            flex: None,
            priority: None,
            web_search_per_1k: None,
            effective_from: None,
            earlier: Vec::new(),
        }
    }

    /// The entry whose rates were in force on `date` (`YYYY-MM-DD`, UTC):
    /// this one if it took effect on or before that day, else the newest
    /// earlier entry that did (the oldest one if none did).
    ///
    /// ```
    /// use costlayer::pricing::{ModelPrice, Rates};
    /// use costlayer::Money;
    ///
    /// let usd = |s: &str| s.parse::<Money>().unwrap();
    /// let launch = ModelPrice::new("m", "acme", Rates::new(usd("2"), usd("10")));
    /// let now = ModelPrice::new("m", "acme", Rates::new(usd("3"), usd("15")))
    ///     .effective_from("2026-09-01")
    ///     .earlier(launch);
    /// assert_eq!(now.at("2026-08-31").rates.input, usd("2"));
    /// assert_eq!(now.at("2026-09-01").rates.input, usd("3"));
    /// ```
    pub fn at(&self, date: &str) -> &ModelPrice {
        let applies = |m: &ModelPrice| m.effective_from.as_deref().is_none_or(|f| f <= date);
        if applies(self) {
            return self;
        }
        self.earlier
            .iter()
            .find(|m| applies(m))
            .or_else(|| self.earlier.last())
            .unwrap_or(self)
    }

    /// Sets the first day these rates apply (`YYYY-MM-DD`). Defaults to none.
    pub fn effective_from(mut self, date: impl Into<String>) -> Self {
        self.effective_from = Some(date.into());
        self
    }

    /// Adds the rates in force before this entry's `effective_from`
    /// (kept newest first).
    pub fn earlier(mut self, price: ModelPrice) -> Self {
        self.earlier.push(price);
        self.earlier
            .sort_by(|a, b| b.effective_from.cmp(&a.effective_from));
        self
    }

    /// Sets the web-search fee, dollars per 1,000 requests. Defaults to none.
    pub fn web_search_per_1k(mut self, fee: Money) -> Self {
        self.web_search_per_1k = Some(fee);
        self
    }

    /// Adds aliases. Defaults to none.
    pub fn aliases<I, S>(mut self, aliases: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.aliases.extend(aliases.into_iter().map(Into::into));
        self
    }

    /// Adds a long-context tier. Defaults to none.
    pub fn tier(mut self, above_prompt_tokens: u64, rates: Rates) -> Self {
        self.tiers.push(Tier {
            above_prompt_tokens,
            rates,
        });
        self.tiers.sort_by_key(|t| t.above_prompt_tokens);
        self
    }

    /// Sets batch pricing. Defaults to [`BatchPricing::None`].
    pub fn batch(mut self, batch: BatchPricing) -> Self {
        self.batch = batch;
        self
    }

    /// Sets the announced retirement date (`YYYY-MM-DD`). Defaults to none.
    pub fn deprecated(mut self, date: impl Into<String>) -> Self {
        self.deprecated = Some(date.into());
        self
    }

    /// Sets where the numbers come from. Defaults to none.
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// The rates that apply to a request of `prompt_tokens` (the whole
    /// prompt) in `mode`, and the tier threshold chosen (if any).
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
            (Mode::Batch, BatchPricing::Explicit { rates, tiers }) => pick(rates, tiers),
        }
    }
}
