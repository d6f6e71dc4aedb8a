//! Gemini's `usageMetadata` and its mapping into costlayer's disjoint buckets.

use costlayer_core::{ServiceTier, Usage};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The `usageMetadata` object of a `GenerateContentResponse`, as Gemini
/// sends it (camelCase). Absent counts read as zero.
///
/// ```
/// use costlayer_core::{ServiceTier, Usage};
/// use costlayer_gemini::GeminiUsage;
///
/// let raw: GeminiUsage = serde_json::from_str(r#"{
///   "promptTokenCount": 34, "candidatesTokenCount": 418, "thoughtsTokenCount": 438,
///   "totalTokenCount": 890
/// }"#).unwrap();
/// let u = Usage::from(raw);
/// assert_eq!((u.input_tokens, u.output_tokens, u.reasoning_tokens), (34, 856, 438));
/// assert_eq!(u.total_tokens(), 890);
///
/// // Audio input is its own bucket; priority traffic is a service tier.
/// let raw: GeminiUsage = serde_json::from_str(r#"{
///   "promptTokenCount": 1000, "candidatesTokenCount": 10, "trafficType": "ON_DEMAND_PRIORITY",
///   "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 200}, {"modality": "AUDIO", "tokenCount": 800}]
/// }"#).unwrap();
/// let u = Usage::from(raw);
/// assert_eq!((u.input_tokens, u.input_audio_tokens), (200, 800));
/// assert_eq!(u.service_tier, costlayer_core::ServiceTier::Priority);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GeminiUsage {
    /// The whole prompt, cached content **included**.
    pub prompt_token_count: u64,
    /// Prompt tokens served from cached content (a part of `promptTokenCount`).
    pub cached_content_token_count: u64,
    /// Generated answer tokens, thoughts **excluded**.
    pub candidates_token_count: u64,
    /// Thinking tokens (billed as output).
    pub thoughts_token_count: u64,
    /// Tokens of tool-use prompts (grounding, code execution results).
    pub tool_use_prompt_token_count: u64,
    /// prompt + candidates + tool-use prompt + thoughts.
    pub total_token_count: u64,
    /// Per-modality breakdown of the prompt, kept as sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<Value>,
    /// Per-modality breakdown of the cached content, kept as sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_tokens_details: Option<Value>,
    /// Per-modality breakdown of the candidates, kept as sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidates_tokens_details: Option<Value>,
    /// `ON_DEMAND`, `ON_DEMAND_PRIORITY`, `ON_DEMAND_FLEX`, `PROVISIONED_THROUGHPUT`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic_type: Option<String>,
}

/// The `tokenCount` of the `modality` entries of a `*TokensDetails` list.
fn modality_tokens(details: Option<&Value>, modality: &str) -> u64 {
    details
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|d| d.get("modality").and_then(Value::as_str) == Some(modality))
        .filter_map(|d| d.get("tokenCount").and_then(Value::as_u64))
        .fold(0, u64::saturating_add)
}

impl From<GeminiUsage> for Usage {
    fn from(u: GeminiUsage) -> Usage {
        let cached = u.cached_content_token_count.min(u.prompt_token_count);
        // Audio prompt tokens are billed at the audio rate; the cached part
        // of them is inside `cached` (billed at the cache rate), so only the
        // uncached audio is its own bucket. Image and video bill as text.
        let audio = modality_tokens(u.prompt_tokens_details.as_ref(), "AUDIO")
            .saturating_sub(modality_tokens(u.cache_tokens_details.as_ref(), "AUDIO"))
            .min(u.prompt_token_count - cached);
        let service_tier = match u.traffic_type.as_deref() {
            Some("ON_DEMAND_PRIORITY") => ServiceTier::Priority,
            Some("ON_DEMAND_FLEX") => ServiceTier::Flex,
            _ => ServiceTier::Standard,
        };
        Usage {
            // `promptTokenCount` INCLUDES the cached content: the full-rate
            // part is the rest. Tool-use prompt tokens (grounding and code
            // execution results fed back to the model) are outside
            // `promptTokenCount` but inside `totalTokenCount`, and are billed
            // as input, so they are added here.
            input_tokens: (u.prompt_token_count - cached - audio)
                .saturating_add(u.tool_use_prompt_token_count),
            input_audio_tokens: audio,
            web_search_requests: 0,
            service_tier,
            // Cached content is billed at the cache rate (its storage per hour
            // is billed apart, not per call).
            cache_read_tokens: cached,
            // Explicit caches are created through `cachedContents`, not by a
            // generateContent call: no per-call cache writes.
            cache_write_5m_tokens: 0,
            cache_write_1h_tokens: 0,
            // `candidatesTokenCount` EXCLUDES thoughts, which are billed at the
            // output rate: output is their sum.
            output_tokens: u
                .candidates_token_count
                .saturating_add(u.thoughts_token_count),
            // Thoughts are the reasoning part of that output, never added again.
            reasoning_tokens: u.thoughts_token_count,
        }
    }
}
