//! Anthropic's usage object and its mapping into costlayer's disjoint buckets.

use costlayer_core::{ServiceTier, Usage};
use serde::{Deserialize, Serialize};

/// The `usage` object of a Messages response, exactly as Anthropic sends it.
///
/// Fields that are absent or `null` read as zero.
///
/// ```
/// use costlayer_core::{ServiceTier, Usage};
/// use costlayer_anthropic::AnthropicUsage;
///
/// let raw: AnthropicUsage = serde_json::from_str(r#"{
///   "input_tokens": 50, "cache_creation_input_tokens": 3000, "cache_read_input_tokens": 100000,
///   "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000},
///   "output_tokens": 500, "service_tier": "standard"
/// }"#).unwrap();
/// let u = Usage::from(raw);
/// assert_eq!(u.input_tokens, 50);
/// assert_eq!((u.cache_write_5m_tokens, u.cache_write_1h_tokens), (1000, 2000));
/// assert_eq!(u.prompt_tokens(), 103_050);
///
/// // Compaction: the call is billed for every pass; web searches per 1,000.
/// let raw: AnthropicUsage = serde_json::from_str(r#"{
///   "input_tokens": 10, "output_tokens": 20,
///   "server_tool_use": {"web_search_requests": 3},
///   "iterations": [{"input_tokens": 1000, "output_tokens": 200}, {"input_tokens": 10, "output_tokens": 20}]
/// }"#).unwrap();
/// let u = Usage::from(raw);
/// assert_eq!((u.input_tokens, u.output_tokens, u.web_search_requests), (1010, 220, 3));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AnthropicUsage {
    /// Prompt tokens after the last cache breakpoint: **excludes** cache
    /// reads and writes.
    #[serde(deserialize_with = "null_as_zero")]
    pub input_tokens: u64,
    /// All tokens written to the cache (5-minute and 1-hour).
    #[serde(deserialize_with = "null_as_zero")]
    pub cache_creation_input_tokens: u64,
    /// Tokens read from the cache.
    #[serde(deserialize_with = "null_as_zero")]
    pub cache_read_input_tokens: u64,
    /// The split of `cache_creation_input_tokens` by lifetime (absent in
    /// older responses).
    pub cache_creation: Option<CacheCreation>,
    /// Output tokens, thinking **included**.
    #[serde(deserialize_with = "null_as_zero")]
    pub output_tokens: u64,
    /// The breakdown of the output (newer responses).
    pub output_tokens_details: Option<OutputTokensDetails>,
    /// `standard`, `priority` or `batch`.
    pub service_tier: Option<String>,
    /// Server-side tools the call ran (web search is billed per 1,000).
    pub server_tool_use: Option<ServerToolUse>,
    /// Server-side compaction: one usage per pass. When present, the
    /// top-level counts cover only the final pass and the call is billed
    /// for the sum of the iterations.
    pub iterations: Option<Vec<AnthropicUsage>>,
}

/// `usage.server_tool_use`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerToolUse {
    /// Web searches run by the server tool.
    #[serde(deserialize_with = "null_as_zero")]
    pub web_search_requests: u64,
}

/// `usage.cache_creation`: cache writes by lifetime.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CacheCreation {
    /// Tokens written with a 5-minute lifetime (billed 1.25× input).
    #[serde(deserialize_with = "null_as_zero")]
    pub ephemeral_5m_input_tokens: u64,
    /// Tokens written with a 1-hour lifetime (billed 2× input).
    #[serde(deserialize_with = "null_as_zero")]
    pub ephemeral_1h_input_tokens: u64,
}

/// `usage.output_tokens_details`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OutputTokensDetails {
    /// Thinking tokens (a part of `output_tokens`).
    #[serde(deserialize_with = "null_as_zero")]
    pub thinking_tokens: u64,
}

fn null_as_zero<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(Option::<u64>::deserialize(d)?.unwrap_or(0))
}

impl From<AnthropicUsage> for Usage {
    fn from(mut u: AnthropicUsage) -> Usage {
        let tier = match u.service_tier.as_deref() {
            Some("priority") => ServiceTier::Priority,
            _ => ServiceTier::Standard,
        };
        let searches = u
            .server_tool_use
            .as_ref()
            .map_or(0, |s| s.web_search_requests);
        if let Some(passes) = u.iterations.take().filter(|p| !p.is_empty()) {
            // Compaction: every pass is billed; the top-level counts repeat
            // only the final one, so the passes are summed instead of it.
            let mut sum = passes
                .into_iter()
                .map(Usage::from)
                .fold(Usage::default(), |a, b| a + b);
            sum.web_search_requests = sum.web_search_requests.max(searches);
            sum.service_tier = tier;
            return sum;
        }
        from_single(u, tier, searches)
    }
}

/// One pass's usage (no iterations).
fn from_single(u: AnthropicUsage, tier: ServiceTier, searches: u64) -> Usage {
    // Cache writes by lifetime. With the split, each bucket is taken as
    // is; any part of `cache_creation_input_tokens` the split does not
    // account for is billed as 5-minute writes (the cheaper rate is the
    // documented default TTL), so no written token goes unbilled.
    // Without the split (older responses) every write is a 5-minute write.
    let (w5m, w1h) = match &u.cache_creation {
        Some(c) => {
            let split = c
                .ephemeral_5m_input_tokens
                .saturating_add(c.ephemeral_1h_input_tokens);
            let unaccounted = u.cache_creation_input_tokens.saturating_sub(split);
            (
                c.ephemeral_5m_input_tokens.saturating_add(unaccounted),
                c.ephemeral_1h_input_tokens,
            )
        }
        None => (u.cache_creation_input_tokens, 0),
    };
    let thinking = u
        .output_tokens_details
        .as_ref()
        .map_or(0, |d| d.thinking_tokens);
    Usage {
        // Anthropic's `input_tokens` already EXCLUDES cache reads and
        // writes: taken as is (the three are disjoint, their sum is the prompt).
        input_tokens: u.input_tokens,
        cache_read_tokens: u.cache_read_input_tokens,
        cache_write_5m_tokens: w5m,
        cache_write_1h_tokens: w1h,
        // `output_tokens` is the inclusive, billed total: thinking included.
        output_tokens: u.output_tokens,
        // Thinking is a breakdown of output, never added; clamped so the
        // invariant holds even for an inconsistent response.
        reasoning_tokens: thinking.min(u.output_tokens),
        input_audio_tokens: 0,
        web_search_requests: searches,
        service_tier: tier,
    }
}
