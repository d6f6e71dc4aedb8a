//! Prices and the exact cost of a call.
//!
//! A [`PriceTable`] maps model ids (canonical names and aliases) to a
//! [`ModelPrice`]: per-million-token [`Rates`] for each [`Usage`](crate::Usage)
//! bucket, batch pricing, long-context [`Tier`]s and a deprecation date.
//! [`PriceTable::cost`] turns a usage into an exact [`Cost`] with a
//! per-bucket breakdown.
//!
//! # Example
//!
//! ```
//! use costlayer::pricing::PriceTable;
//! use costlayer::{Mode, Money, Usage};
//!
//! let table = PriceTable::embedded();
//! // Anthropic: 50 input, 100,000 cache reads, 500 output on Sonnet 4.5.
//! let usage = Usage { input_tokens: 50, cache_read_tokens: 100_000, output_tokens: 500, ..Usage::default() };
//! let cost = table.cost("claude-sonnet-4.5", &usage, Mode::Online)?;
//! assert_eq!(cost.model, "claude-sonnet-4-5");
//! assert_eq!(cost.total, "0.03765".parse::<Money>()?);
//! assert_eq!(cost.cache_read, "0.03".parse::<Money>()?);
//! // The same call through the Batch API is half price.
//! let batch = table.cost("claude-sonnet-4-5-20250929", &usage, Mode::Batch)?;
//! assert_eq!(batch.total, "0.018825".parse::<Money>()?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Rounding
//!
//! Every bucket is multiplied exactly (`tokens × nano-dollars per million`,
//! in 128-bit integers), the products are summed, and the sum is divided by
//! one million **once**, rounding half up. So a call's cost is exact to the
//! nano-dollar and independent of the order of the buckets.
//!
//! # Model ids
//!
//! Lookup is by canonical name or alias after [`normalize_model_id`]
//! (case, `models/` and `provider/` prefixes, `.` vs `-`), and a known name
//! followed by a version suffix (a date, `-latest`, `-preview-…`, `-001`)
//! resolves to it. So `gpt-4o-2024-11-20`, `claude-sonnet-4.5`,
//! `claude-sonnet-4-5@20250929` and `models/gemini-2.5-pro` all find their
//! model, while `gpt-4o-mini` never falls back to `gpt-4o`.
//!
//! # Long-context tiers
//!
//! A tier applies when the request's whole prompt (input + cache reads +
//! cache writes) is **strictly above** its threshold, and then prices every
//! bucket of that request, output included: 200,000 prompt tokens on
//! `gemini-2.5-pro` cost $1.25/M, 200,001 cost $2.50/M for all of them.
//!
//! # The price file format
//!
//! The embedded table and user files (`--prices FILE`, `COSTLAYER_PRICES`,
//! [`PriceTable::with_user_file`]) use this TOML format. Rates are dollars
//! per million tokens, as strings (exact) or numbers. Unknown keys are
//! errors, so a typo never silently prices at zero.
//!
//! ```toml
//! version = "2026-11-25"            # optional: the date you checked the prices
//!
//! [[models]]
//! model = "gemini-2.5-pro"          # canonical name
//! provider = "gemini"               # optional for gpt-*, o*, claude-*, gemini-*
//! aliases = ["gemini-2.5-pro-001"]  # optional
//! source = "https://ai.google.dev/gemini-api/docs/pricing"  # optional
//! deprecated = "2026-12-01"         # optional, YYYY-MM-DD
//! input = "1.25"
//! output = "10.00"                  # reasoning is billed as output
//! cache_read = "0.125"              # optional; cache rates default to `input`
//! cache_write_5m = "1.25"           # optional
//! cache_write_1h = "1.25"           # optional
//! batch_percent = 50                # optional: batch = 50% of every rate, tiers included
//!
//! [[models.tiers]]                  # optional, ascending thresholds
//! above_prompt_tokens = 200000
//! input = "2.50"
//! output = "15.00"
//! cache_read = "0.25"
//! ```
//!
//! Instead of `batch_percent`, a `[models.batch]` table gives explicit batch
//! rates (`input`, `output`, cache rates, and its own `[[models.batch.tiers]]`).
//! A user file's model replaces the default of the same name or alias
//! (`cost-tracker models` marks it), and adds any other.
//!
//! # LiteLLM files
//!
//! A `.json` file (or one starting with `{`) is read as LiteLLM's
//! `model_prices_and_context_window.json`: `input_cost_per_token`,
//! `output_cost_per_token`, `cache_read_input_token_cost`,
//! `cache_creation_input_token_cost` (5-minute writes),
//! `cache_creation_input_token_cost_above_1hr` (1-hour writes), every
//! `*_above_<N>k_tokens` key as a tier above N×1000 prompt tokens,
//! `input/output_cost_per_token_batches` (a percentage when both are the
//! same fraction of the online rates, else explicit rates with online cache
//! and tier rates), `litellm_provider` and `deprecation_date`. Per-token
//! prices are converted to per-million exactly. Entries not priced per token
//! (images, audio seconds) and `sample_spec` are skipped. When several keys
//! name the same model (`gpt-4o`, `azure/gpt-4o`), the entry of the
//! first-party provider (OpenAI, Anthropic, Gemini) wins, then an unprefixed
//! key, then the first one in the file.

mod error;
mod file;
mod litellm;
mod model;
mod table;

pub use error::PricingError;
pub use model::{BatchPricing, ModelPrice, Rates, Tier};
pub use table::{normalize_model_id, same_model, same_provider, Cost, PriceTable};
