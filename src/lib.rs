//! # costlayer
//!
//! Know what every LLM call costs, and never spend more than you meant to.
//!
//! costlayer is a stack of [tower](https://docs.rs/tower) middleware around
//! your OpenAI, Anthropic and Gemini calls: it prices each call exactly from
//! a reviewed price table, writes it to an append-only ledger, enforces
//! budgets with alerts, caches responses, retries transient failures and
//! rate-limits by requests and tokens per minute.
//!
//! ```text
//! application
//!   -> CostLayer        budget pre-flight (reserve the worst case), then price + record (settle)
//!   -> CacheLayer       identical answers from memory: cost 0, the saving recorded
//!   -> RetryLayer       429 / 5xx / timeouts, full-jitter backoff, Retry-After
//!   -> RateLimitLayer   requests and tokens per minute, per provider + model
//!   -> provider         openai::OpenAi, anthropic::Anthropic, gemini::Gemini, mock::SimulatedProvider, yours
//! ```
//!
//! Cost is outermost so cache hits are recorded and a blocked call reaches
//! nothing; the cache sits above retry so a hit never retries; retry sits
//! above the rate limit so every attempt waits its turn.
//!
//! # Example
//!
//! ```
//! use std::{num::NonZeroU32, sync::Arc};
//! use costlayer::layer::{cache::CacheLayer, cost::CostLayer, retry::RetryLayer};
//! use costlayer::layer::rate_limit::{Quota, RateLimitLayer};
//! use costlayer::{budget::Budget, ledger::MemoryStorage, mock::SimulatedProvider};
//! use costlayer::tracker::CostTracker;
//! use costlayer::{ChatRequest, Message, Money};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let ledger = MemoryStorage::new();
//! let tracker = CostTracker::builder()
//!     .storage(Arc::new(ledger.clone()))
//!     .user("alice")
//!     .budget(Budget::monthly("200".parse::<Money>()?).block())
//!     .build()?;
//! let quota = Quota::per_minute(NonZeroU32::new(500).unwrap(), NonZeroU32::new(200_000).unwrap());
//! let llm = ServiceBuilder::new()
//!     .layer(CostLayer::new(tracker.clone()))
//!     .layer(CacheLayer::default())
//!     .layer(RetryLayer::new())
//!     .layer(RateLimitLayer::new(quota))
//!     .service(SimulatedProvider::new());
//!
//! let req = ChatRequest::new("claude-haiku-4.5").message(Message::user("Say hi"));
//! let first = llm.clone().oneshot(req.clone()).await?;
//! let again = llm.oneshot(req).await?;
//! assert!(!first.cached && again.cached);
//!
//! let records = ledger.records();
//! assert_eq!(records.len(), 2);
//! assert_eq!(records[0].model, "claude-haiku-4-5");            // canonical name
//! assert!(records[0].nano_usd.unwrap() > Money::ZERO);         // priced exactly
//! assert_eq!(records[1].nano_usd, Some(Money::ZERO));          // the cache hit is free
//! # Ok(()) }
//! ```
//!
//! Start from [`layer::builder::StackBuilder`] for the usual stack from one
//! [`config::Config`], [`tracker::CostTracker`] for budgets and alerts,
//! [`ledger`] for the JSONL ledger, [`pricing`] for prices, and [`report`]
//! for summaries and the dashboard. The `cost-tracker` binary is the CLI.
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// The dashboard's JSON object has more keys than `serde_json::json!` expands by default.
#![recursion_limit = "256"]

pub mod alert;
pub mod batch;
pub mod budget;
pub mod calendar;
pub mod clock;
pub mod config;
pub mod estimate;
pub mod layer;
pub mod ledger;
pub mod metrics;
pub mod mock;
pub mod pricing;
pub mod report;
pub mod tracker;

/// Fuzz entry points (`fuzz/`); not part of the public API.
#[doc(hidden)]
#[path = "fuzz_hooks.rs"]
pub mod __fuzz;

pub use costlayer_core as core;
pub use costlayer_core::{
    tokens, transport, ApiKey, BatchProvider, BoxError, ChatDelta, ChatRequest, ChatResponse,
    ChatStream, Content, ContentPart, CostStatus, Error, FinishReason, Message, Mode, Money,
    RecordedCost, ResponseFormat, Role, ServiceTier, SharedStr, SharedVec, StreamAccumulator,
    StreamRequest, TokenCounter, ToolCall, ToolCallDelta, ToolChoice, ToolDefinition, Usage,
};

/// The OpenAI adapter (feature `openai`).
#[cfg(feature = "openai")]
#[cfg_attr(docsrs, doc(cfg(feature = "openai")))]
pub use costlayer_openai as openai;

/// The Anthropic adapter (feature `anthropic`).
#[cfg(feature = "anthropic")]
#[cfg_attr(docsrs, doc(cfg(feature = "anthropic")))]
pub use costlayer_anthropic as anthropic;

/// The Gemini adapter (feature `gemini`).
#[cfg(feature = "gemini")]
#[cfg_attr(docsrs, doc(cfg(feature = "gemini")))]
pub use costlayer_gemini as gemini;

// The README's Rust examples are compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
