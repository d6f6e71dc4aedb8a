//! Token usage in disjoint, billable buckets.

use std::ops::{Add, AddAssign};

use serde::{Deserialize, Serialize};

/// Tokens a call consumed, split into **disjoint** buckets, each billed at its
/// own rate.
///
/// # The convention
///
/// - `input_tokens`: prompt tokens billed at the full input rate. It
///   **excludes** cache reads and cache writes.
/// - `cache_read_tokens`: prompt tokens served from the provider's prompt cache.
/// - `cache_write_5m_tokens` / `cache_write_1h_tokens`: prompt tokens written to
///   the provider's prompt cache with a 5-minute or 1-hour lifetime (Anthropic
///   bills them at 1.25× and 2× the input rate).
/// - `output_tokens`: every billed output token, **reasoning included**.
/// - `reasoning_tokens`: the part of `output_tokens` that was reasoning
///   ("thinking"). Informational: it is never added to a total or billed twice.
/// - `input_audio_tokens`: uncached prompt tokens of audio input, billed at
///   the audio rate (Gemini: several times the text rate). **Excluded** from
///   `input_tokens`. Image and video input are billed as text by every
///   provider covered here and stay in `input_tokens`.
/// - `web_search_requests`: server-side web searches the provider ran for
///   the call (billed per 1,000, not per token).
/// - `service_tier`: the tier the provider says served the call (flex and
///   priority are billed at their own rates; batch is [`Mode`](crate::Mode)).
///
/// The whole prompt of a request is [`Usage::prompt_tokens`] (input + cache
/// reads + cache writes); long-context price tiers are chosen by it.
///
/// # How each provider maps onto it
///
/// | provider | `input_tokens` | `cache_read_tokens` | cache writes | `output_tokens` | `reasoning_tokens` |
/// |---|---|---|---|---|---|
/// | OpenAI Chat | `prompt_tokens − prompt_tokens_details.cached_tokens` (prompt_tokens **includes** cached) | `cached_tokens` | none (OpenAI does not bill writes) | `completion_tokens` (already includes reasoning) | `completion_tokens_details.reasoning_tokens` |
/// | Anthropic | `input_tokens` (already **excludes** cache reads and writes) | `cache_read_input_tokens` | `cache_creation.ephemeral_5m_input_tokens` / `ephemeral_1h_input_tokens`; without the split, `cache_creation_input_tokens` counts as 5-minute writes | `output_tokens` (includes thinking) | `output_tokens_details.thinking_tokens` when present |
/// | Gemini | `promptTokenCount − cachedContentTokenCount − input_audio_tokens` (promptTokenCount **includes** cached) | `cachedContentTokenCount` | none (explicit caches are billed as storage) | `candidatesTokenCount + thoughtsTokenCount` (candidates **exclude** thoughts, which are billed as output) | `thoughtsTokenCount` |
///
/// | provider | `input_audio_tokens` | `web_search_requests` | `service_tier` |
/// |---|---|---|---|
/// | OpenAI Chat | `prompt_tokens_details.audio_tokens` (uncached part) | none (search models bill per call) | response `service_tier`: `flex`, `priority`, else standard |
/// | Anthropic | none (no audio input) | `server_tool_use.web_search_requests` | `usage.service_tier`: `priority`, else standard (`batch` is the batch mode) |
/// | Gemini | `promptTokensDetails[modality=AUDIO]` minus `cacheTokensDetails[modality=AUDIO]` | none | `usageMetadata.trafficType`: `ON_DEMAND_PRIORITY` → priority, `ON_DEMAND_FLEX` → flex |
///
/// OpenAI's `prompt_tokens_details.cache_write_tokens`, where a model reports
/// it, is a 5-minute cache write (taken out of `input_tokens`). Anthropic's
/// `usage.iterations` (server-side compaction) are summed: the top-level
/// counts cover only the final pass.
///
/// # Example
///
/// ```
/// use costlayer_core::Usage;
///
/// let a = Usage { input_tokens: 100, output_tokens: 20, reasoning_tokens: 5, ..Usage::default() };
/// let b = Usage { cache_read_tokens: 1_000, ..Usage::default() };
/// let sum = a + b;
/// assert_eq!(sum.prompt_tokens(), 1_100);
/// assert_eq!(sum.total_tokens(), 1_120); // reasoning is inside output
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct Usage {
    /// Prompt tokens billed at the full input rate (excludes cache reads and writes).
    pub input_tokens: u64,
    /// All billed output tokens, reasoning included.
    pub output_tokens: u64,
    /// Prompt tokens read from the provider's prompt cache.
    pub cache_read_tokens: u64,
    /// Prompt tokens written to a 5-minute prompt cache entry.
    pub cache_write_5m_tokens: u64,
    /// Prompt tokens written to a 1-hour prompt cache entry.
    pub cache_write_1h_tokens: u64,
    /// The reasoning part of `output_tokens` (informational, never added).
    pub reasoning_tokens: u64,
    /// Uncached audio prompt tokens, billed at the audio rate (excluded from
    /// `input_tokens`).
    #[serde(skip_serializing_if = "is_zero")]
    pub input_audio_tokens: u64,
    /// Server-side web searches (billed per 1,000 requests).
    #[serde(skip_serializing_if = "is_zero")]
    pub web_search_requests: u64,
    /// The service tier that served the call.
    #[serde(skip_serializing_if = "ServiceTier::is_standard")]
    pub service_tier: ServiceTier,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The service tier a provider says served a call. Flex and priority are
/// billed at their own rates; the Batch APIs are [`Mode::Batch`](crate::Mode).
///
/// ```
/// use costlayer_core::ServiceTier;
///
/// assert_eq!(ServiceTier::default(), ServiceTier::Standard);
/// assert_eq!(ServiceTier::Priority.as_str(), "priority");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ServiceTier {
    /// The default tier (OpenAI `default`/`auto`, Anthropic `standard`,
    /// Gemini `ON_DEMAND`).
    #[default]
    Standard,
    /// Cheaper, slower capacity (OpenAI `flex`, Gemini Flex).
    Flex,
    /// Dearer, faster capacity (OpenAI and Anthropic `priority`, Gemini
    /// `ON_DEMAND_PRIORITY`).
    Priority,
}

impl ServiceTier {
    /// `"standard"`, `"flex"` or `"priority"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ServiceTier::Standard => "standard",
            ServiceTier::Flex => "flex",
            ServiceTier::Priority => "priority",
        }
    }

    /// Whether this is [`ServiceTier::Standard`] (used to omit the field).
    pub fn is_standard(&self) -> bool {
        matches!(self, ServiceTier::Standard)
    }
}

impl Usage {
    /// Usage with only plain input and output tokens.
    pub const fn new(input_tokens: u64, output_tokens: u64) -> Self {
        Usage {
            input_tokens,
            output_tokens,
            cache_read_tokens: 0,
            cache_write_5m_tokens: 0,
            cache_write_1h_tokens: 0,
            reasoning_tokens: 0,
            input_audio_tokens: 0,
            web_search_requests: 0,
            service_tier: ServiceTier::Standard,
        }
    }

    /// The whole prompt: input (text and audio) + cache reads + cache
    /// writes (saturating).
    pub const fn prompt_tokens(&self) -> u64 {
        self.input_tokens
            .saturating_add(self.input_audio_tokens)
            .saturating_add(self.cache_read_tokens)
            .saturating_add(self.cache_write_5m_tokens)
            .saturating_add(self.cache_write_1h_tokens)
    }

    /// All cache writes, 5-minute and 1-hour.
    pub const fn cache_write_tokens(&self) -> u64 {
        self.cache_write_5m_tokens
            .saturating_add(self.cache_write_1h_tokens)
    }

    /// Prompt plus output (reasoning is inside output and not added again).
    pub const fn total_tokens(&self) -> u64 {
        self.prompt_tokens().saturating_add(self.output_tokens)
    }

    /// `true` if no token was used at all.
    pub const fn is_empty(&self) -> bool {
        self.total_tokens() == 0
    }
}

impl Add for Usage {
    type Output = Usage;
    fn add(mut self, rhs: Usage) -> Usage {
        self += rhs;
        self
    }
}

impl AddAssign for Usage {
    fn add_assign(&mut self, rhs: Usage) {
        self.input_tokens = self.input_tokens.saturating_add(rhs.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(rhs.output_tokens);
        self.cache_read_tokens = self.cache_read_tokens.saturating_add(rhs.cache_read_tokens);
        self.cache_write_5m_tokens = self
            .cache_write_5m_tokens
            .saturating_add(rhs.cache_write_5m_tokens);
        self.cache_write_1h_tokens = self
            .cache_write_1h_tokens
            .saturating_add(rhs.cache_write_1h_tokens);
        self.reasoning_tokens = self.reasoning_tokens.saturating_add(rhs.reasoning_tokens);
        self.input_audio_tokens = self
            .input_audio_tokens
            .saturating_add(rhs.input_audio_tokens);
        self.web_search_requests = self
            .web_search_requests
            .saturating_add(rhs.web_search_requests);
        if self.service_tier.is_standard() {
            self.service_tier = rhs.service_tier;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_disjoint_and_reasoning_is_not_added() {
        let u = Usage {
            input_tokens: 10,
            output_tokens: 30,
            cache_read_tokens: 100,
            cache_write_5m_tokens: 7,
            cache_write_1h_tokens: 3,
            reasoning_tokens: 20,
            ..Usage::default()
        };
        assert_eq!(u.prompt_tokens(), 120);
        assert_eq!(u.cache_write_tokens(), 10);
        assert_eq!(u.total_tokens(), 150);
        let twice = u + u;
        assert_eq!(twice.reasoning_tokens, 40);
        assert_eq!(twice.total_tokens(), 300);
    }

    #[test]
    fn missing_fields_default_to_zero() {
        let u: Usage = serde_json::from_str(r#"{"input_tokens":5}"#).expect("parse");
        assert_eq!(u, Usage::new(5, 0));
        assert!(Usage::default().is_empty());
    }
}
