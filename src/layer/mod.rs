//! The tower layers: cost recording, response cache, retry, rate limit.
//!
//! Each is a public `XLayer` + `X<S>` pair, usable alone with
//! `tower::ServiceBuilder`, `Clone` with its shared state behind `Arc`
//! (cloning a service never resets a bucket, a cache or a budget).
//!
//! ```text
//! application
//!   -> CostLayer        budget pre-flight (estimate, reserve), then record the billed usage
//!   -> CacheLayer       a hit returns the stored response marked `cached`, cost 0
//!   -> RetryLayer       exponential backoff with full jitter; honours Retry-After
//!   -> RateLimitLayer   requests/min and tokens/min per provider+model
//!   -> provider         Service<ChatRequest, Response = ChatResponse, Error = costlayer::Error>
//! ```
//!
//! # Why this order
//!
//! - **Cost outermost**: a cache hit passes through it and is recorded
//!   (cost 0, the saving noted), and a call a budget blocks never reaches
//!   anything below — no cache fill, no retry, no rate-limit token spent.
//! - **Cache before retry**: a hit returns at once and never retries; a
//!   miss is retried below and only its final success is stored.
//! - **Retry outside the rate limiter**: every attempt waits for its own
//!   request and tokens, so retries count against the limits like any call,
//!   and a local `RateLimited` refusal is itself retried after its
//!   `retry_after`.
//! - **Rate limit innermost**: it sits next to the provider whose limits it
//!   mirrors.
//!
//! [`ServiceBuilderExt`] adds one `ServiceBuilder` method per layer.

//! Each layer is its own cargo feature (`cost`, `cache`, `retry`,
//! `rate-limit`); [`builder`] needs all four (feature `stack`). The default
//! features include them all.

#[cfg(feature = "stack")]
#[cfg_attr(docsrs, doc(cfg(feature = "stack")))]
pub mod builder;
#[cfg(feature = "cache")]
#[cfg_attr(docsrs, doc(cfg(feature = "cache")))]
pub mod cache;
#[cfg(feature = "cost")]
#[cfg_attr(docsrs, doc(cfg(feature = "cost")))]
pub mod cost;
#[cfg(feature = "rate-limit")]
#[cfg_attr(docsrs, doc(cfg(feature = "rate-limit")))]
pub mod rate_limit;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "retry")]
#[cfg_attr(docsrs, doc(cfg(feature = "retry")))]
pub mod retry;
#[cfg(any(feature = "cache", feature = "rate-limit"))]
pub(crate) mod tap;

#[cfg(feature = "stack")]
pub use self::builder::ServiceBuilderExt;
#[cfg(feature = "redis")]
pub use self::redis::RedisError;
