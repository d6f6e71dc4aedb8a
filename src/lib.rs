//! # costlayer
//!
//! Know what every LLM call costs, and never spend more than you meant to.
//!
//! costlayer is a stack of [tower](https://docs.rs/tower) middleware around
//! your OpenAI, Anthropic and Gemini calls: it prices each call exactly from
//! a reviewed price table, writes it to an append-only ledger, enforces
//! budgets with alerts, caches responses, retries transient failures and
//! rate-limits by requests and tokens per minute.
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod alert;
pub mod budget;
pub mod clock;
pub mod config;
pub mod estimate;
pub mod layer;
pub mod ledger;
pub mod mock;
pub mod pricing;
pub mod report;
pub mod tracker;

pub use costlayer_core as core;
pub use costlayer_core::{
    tokens, transport, ApiKey, BatchProvider, BoxError, ChatDelta, ChatRequest, ChatResponse,
    Content, ContentPart, Error, FinishReason, Message, Mode, Money, ResponseFormat, Role,
    TokenCounter, ToolCall, ToolChoice, ToolDefinition, Usage,
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
