//! OpenAI's usage object and its mapping into costlayer's disjoint buckets.

use costlayer_core::{ServiceTier, Usage};
use serde::{Deserialize, Serialize};

/// The `usage` object of a chat completion, exactly as OpenAI sends it.
///
/// Fields OpenAI (or an OpenAI-compatible server) omits or sends as `null`
/// read as zero.
///
/// ```
/// use costlayer_core::{ServiceTier, Usage};
/// use costlayer_openai::OpenAiUsage;
///
/// let raw: OpenAiUsage = serde_json::from_str(r#"{
///   "prompt_tokens": 2048, "completion_tokens": 300, "total_tokens": 2348,
///   "prompt_tokens_details": {"cached_tokens": 1024},
///   "completion_tokens_details": {"reasoning_tokens": 128}
/// }"#).unwrap();
/// let u = Usage::from(raw);
/// assert_eq!((u.input_tokens, u.cache_read_tokens, u.output_tokens, u.reasoning_tokens), (1024, 1024, 300, 128));
///
/// // Audio and cache writes are parts of the prompt with their own rates.
/// let raw: OpenAiUsage = serde_json::from_str(r#"{
///   "prompt_tokens": 5000, "completion_tokens": 10,
///   "prompt_tokens_details": {"cached_tokens": 1000, "cache_write_tokens": 2000, "audio_tokens": 500}
/// }"#).unwrap();
/// let u = Usage::from(raw);
/// assert_eq!((u.input_tokens, u.cache_read_tokens, u.cache_write_5m_tokens, u.input_audio_tokens), (1500, 1000, 2000, 500));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OpenAiUsage {
    /// The whole prompt, cached tokens **included**.
    #[serde(deserialize_with = "null_as_zero")]
    pub prompt_tokens: u64,
    /// All generated tokens, reasoning **included**.
    #[serde(deserialize_with = "null_as_zero")]
    pub completion_tokens: u64,
    /// `prompt_tokens + completion_tokens`.
    #[serde(deserialize_with = "null_as_zero")]
    pub total_tokens: u64,
    /// The breakdown of the prompt.
    pub prompt_tokens_details: Option<PromptTokensDetails>,
    /// The breakdown of the completion.
    pub completion_tokens_details: Option<CompletionTokensDetails>,
    /// The response's top-level `service_tier` (`default`, `flex`,
    /// `priority`, ...), copied here by the codec: it is not inside `usage`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<String>,
}

/// OpenAI's `service_tier` value as a [`ServiceTier`].
pub(crate) fn service_tier(tier: Option<&str>) -> ServiceTier {
    match tier {
        Some("flex") => ServiceTier::Flex,
        Some("priority") => ServiceTier::Priority,
        _ => ServiceTier::Standard,
    }
}

/// `usage.prompt_tokens_details`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PromptTokensDetails {
    /// Prompt tokens served from the prompt cache (a subset of `prompt_tokens`).
    #[serde(deserialize_with = "null_as_zero")]
    pub cached_tokens: u64,
    /// Audio prompt tokens (a subset of `prompt_tokens`).
    #[serde(deserialize_with = "null_as_zero")]
    pub audio_tokens: u64,
    /// Prompt tokens written to the prompt cache, where the model reports
    /// and bills them (a subset of `prompt_tokens`).
    #[serde(deserialize_with = "null_as_zero")]
    pub cache_write_tokens: u64,
}

/// `usage.completion_tokens_details`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CompletionTokensDetails {
    /// Reasoning tokens (a subset of `completion_tokens`).
    #[serde(deserialize_with = "null_as_zero")]
    pub reasoning_tokens: u64,
    /// Audio output tokens (a subset of `completion_tokens`).
    #[serde(deserialize_with = "null_as_zero")]
    pub audio_tokens: u64,
    /// Predicted-output tokens that appeared in the completion.
    #[serde(deserialize_with = "null_as_zero")]
    pub accepted_prediction_tokens: u64,
    /// Predicted-output tokens that did not appear; still billed as output.
    #[serde(deserialize_with = "null_as_zero")]
    pub rejected_prediction_tokens: u64,
}

fn null_as_zero<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(Option::<u64>::deserialize(d)?.unwrap_or(0))
}

impl From<OpenAiUsage> for Usage {
    fn from(u: OpenAiUsage) -> Usage {
        let details = u.prompt_tokens_details.clone().unwrap_or_default();
        let cached = details.cached_tokens.min(u.prompt_tokens);
        // Cache writes and audio are parts of the prompt too, disjoint from
        // the cached tokens; each is clamped to what is left of the prompt.
        let written = details
            .cache_write_tokens
            .min(u.prompt_tokens.saturating_sub(cached));
        let audio = details.audio_tokens.min(
            u.prompt_tokens
                .saturating_sub(cached)
                .saturating_sub(written),
        );
        let reasoning = u
            .completion_tokens_details
            .as_ref()
            .map_or(0, |d| d.reasoning_tokens);
        Usage {
            // `prompt_tokens` INCLUDES the cached tokens: the full-rate part
            // is the rest. Saturating, so a server reporting more cached than
            // prompt tokens cannot underflow.
            input_tokens: u.prompt_tokens - cached - written - audio,
            // Cached tokens are billed at the cached-input rate.
            cache_read_tokens: cached,
            // `cache_write_tokens`, where reported, are billed at the model's
            // cache-write rate (a 5-minute write: OpenAI has one lifetime).
            cache_write_5m_tokens: written,
            cache_write_1h_tokens: 0,
            // Audio prompt tokens have their own rate (the uncached part:
            // OpenAI reports cached audio inside `cached_tokens`).
            input_audio_tokens: audio,
            web_search_requests: 0,
            service_tier: service_tier(u.service_tier.as_deref()),
            // `completion_tokens` already INCLUDES reasoning and rejected
            // prediction tokens, all billed at the output rate: taken as is.
            output_tokens: u.completion_tokens,
            // Reasoning is a breakdown of output, never added to it. Clamped
            // to the output so the invariant holds even for a buggy server.
            reasoning_tokens: reasoning.min(u.completion_tokens),
        }
    }
}
