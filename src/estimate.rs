//! Estimating a request's tokens before it is sent.
//!
//! The rate limiter and the budget pre-flight need a request's weight before
//! the provider reports its usage. An [`Estimator`] picks a policy:
//!
//! | policy | cost | guarantee | default for |
//! |---|---|---|---|
//! | [`EstimatePolicy::UpperBound`] | free (byte length) | never below the real count | hard budgets: a limit can never be crossed by an under-estimate |
//! | [`EstimatePolicy::Heuristic`] | free (about 4 bytes a token) | none | — |
//! | [`EstimatePolicy::Exact`] | tiktoken: ~50–100 µs per 2 KB prompt | exact for OpenAI models; for Anthropic and Gemini the o200k count is an approximation | rate limiting (tokens per minute want accuracy) |
//!
//! Defaults per use: the budget pre-flight of the cost layer estimates with
//! [`EstimatePolicy::UpperBound`] (a blocking budget must never be crossed
//! because of an under-estimate; the reservation is settled to the billed
//! cost afterwards), and
//! [`RateLimitLayer`](crate::layer::rate_limit::RateLimitLayer) with
//! [`EstimatePolicy::Exact`] (a tokens-per-minute bucket charged with an
//! upper bound would admit far fewer calls than the provider allows; the
//! bucket is corrected to the billed usage afterwards anyway). Both can be
//! changed.
//!
//! # Example
//!
//! ```
//! use costlayer::estimate::{Estimator, EstimatePolicy};
//! use costlayer::{ChatRequest, Message};
//!
//! let req = ChatRequest::new("gpt-4o").message(Message::user("hello world")).max_tokens(100);
//! let exact = Estimator::new(EstimatePolicy::Exact);
//! let bound = Estimator::new(EstimatePolicy::UpperBound);
//! assert!(bound.prompt_tokens(&req) >= exact.prompt_tokens(&req));
//! assert_eq!(exact.total_tokens(&req), exact.prompt_tokens(&req) + 100);
//! ```

use costlayer_core::tokens::{HeuristicCounter, TiktokenCounter, TokenCounter, UpperBoundCounter};

use crate::ChatRequest;

/// Output tokens assumed when a request sets no `max_tokens`.
pub const DEFAULT_MAX_OUTPUT_TOKENS: u64 = 4_096;

/// How to estimate a request's prompt tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EstimatePolicy {
    /// UTF-8 bytes plus per-message overhead: a strict upper bound.
    #[default]
    UpperBound,
    /// About four bytes a token: free, not a bound.
    Heuristic,
    /// The tokenizer (tiktoken o200k/cl100k).
    Exact,
}

/// Estimates a request's tokens with a policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Estimator {
    policy: EstimatePolicy,
    default_max_output: u64,
}

impl Estimator {
    /// An estimator with `policy`, assuming [`DEFAULT_MAX_OUTPUT_TOKENS`]
    /// when a request sets no `max_tokens`.
    pub const fn new(policy: EstimatePolicy) -> Self {
        Estimator {
            policy,
            default_max_output: DEFAULT_MAX_OUTPUT_TOKENS,
        }
    }

    /// Sets the output tokens assumed without `max_tokens`.
    /// Defaults to [`DEFAULT_MAX_OUTPUT_TOKENS`].
    pub const fn default_max_output(mut self, tokens: u64) -> Self {
        self.default_max_output = tokens;
        self
    }

    /// The policy.
    pub const fn policy(&self) -> EstimatePolicy {
        self.policy
    }

    /// The request's prompt tokens, chat-format overhead included.
    pub fn prompt_tokens(&self, req: &ChatRequest) -> u64 {
        match self.policy {
            EstimatePolicy::UpperBound => UpperBoundCounter.count_request(req),
            EstimatePolicy::Heuristic => HeuristicCounter.count_request(req),
            EstimatePolicy::Exact => TiktokenCounter::for_model(&req.model).count_request(req),
        }
    }

    /// The most output the request can produce: its `max_tokens`, or the default.
    pub fn max_output_tokens(&self, req: &ChatRequest) -> u64 {
        req.max_tokens.map_or(self.default_max_output, u64::from)
    }

    /// Prompt plus maximum output: the request's worst-case token weight.
    pub fn total_tokens(&self, req: &ChatRequest) -> u64 {
        self.prompt_tokens(req)
            .saturating_add(self.max_output_tokens(req))
    }
}
