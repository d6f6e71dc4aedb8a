//! OpenAI's usage object and its mapping into costlayer's disjoint buckets.

use costlayer_core::Usage;
use serde::{Deserialize, Serialize};

/// The `usage` object of a chat completion, exactly as OpenAI sends it.
///
/// Fields OpenAI (or an OpenAI-compatible server) omits or sends as `null`
/// read as zero.
///
/// ```
/// use costlayer_core::Usage;
/// use costlayer_openai::OpenAiUsage;
///
/// let raw: OpenAiUsage = serde_json::from_str(r#"{
///   "prompt_tokens": 2048, "completion_tokens": 300, "total_tokens": 2348,
///   "prompt_tokens_details": {"cached_tokens": 1024},
///   "completion_tokens_details": {"reasoning_tokens": 128}
/// }"#).unwrap();
/// let u = Usage::from(raw);
/// assert_eq!((u.input_tokens, u.cache_read_tokens, u.output_tokens, u.reasoning_tokens), (1024, 1024, 300, 128));
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
        let cached = u
            .prompt_tokens_details
            .as_ref()
            .map_or(0, |d| d.cached_tokens);
        let reasoning = u
            .completion_tokens_details
            .as_ref()
            .map_or(0, |d| d.reasoning_tokens);
        Usage {
            // `prompt_tokens` INCLUDES the cached tokens: the full-rate part
            // is the rest. Saturating, so a server reporting more cached than
            // prompt tokens cannot underflow.
            input_tokens: u.prompt_tokens.saturating_sub(cached),
            // Cached tokens are billed at the cached-input rate.
            cache_read_tokens: cached.min(u.prompt_tokens),
            // Chat Completions does not report cache writes; OpenAI does not
            // bill them apart (they are ordinary input tokens).
            cache_write_5m_tokens: 0,
            cache_write_1h_tokens: 0,
            // `completion_tokens` already INCLUDES reasoning and rejected
            // prediction tokens, all billed at the output rate: taken as is.
            output_tokens: u.completion_tokens,
            // Reasoning is a breakdown of output, never added to it. Clamped
            // to the output so the invariant holds even for a buggy server.
            reasoning_tokens: reasoning.min(u.completion_tokens),
        }
    }
}
