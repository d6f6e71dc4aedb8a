//! # costlayer-core
//!
//! The provider contract of [costlayer](https://docs.rs/costlayer): the
//! provider-neutral [`ChatRequest`] / [`ChatResponse`], the disjoint
//! [`Usage`] buckets, exact [`Money`], the one [`Error`] type, token
//! counting, the [`BatchProvider`] trait, and the shared HTTP transport that
//! turns a pure [`Codec`] into a `tower::Service`.
//!
//! Provider adapters and third-party provider plugins depend on this crate
//! alone, never on the `costlayer` facade.
//!
//! # Example: a provider is any `Service<ChatRequest>`
//!
//! ```
//! use std::{future::{ready, Ready}, task::{Context, Poll}};
//! use costlayer_core::{ChatRequest, ChatResponse, Error, Usage};
//!
//! #[derive(Clone)]
//! struct Echo;
//!
//! impl tower_service::Service<ChatRequest> for Echo {
//!     type Response = ChatResponse;
//!     type Error = Error;
//!     type Future = Ready<Result<ChatResponse, Error>>;
//!     fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Error>> { Poll::Ready(Ok(())) }
//!     fn call(&mut self, req: ChatRequest) -> Self::Future {
//!         let text = req.messages.last().map(|m| m.content.text()).unwrap_or_default();
//!         ready(Ok(ChatResponse {
//!             provider: "echo".into(),
//!             model: req.model,
//!             usage: Usage::new(text.len() as u64, text.len() as u64),
//!             text,
//!             ..Default::default()
//!         }))
//!     }
//! }
//! ```
#![deny(missing_docs)]

pub mod batch;
mod chat;
mod cost;
mod error;
pub mod money;
pub mod redact;
mod shared;
pub mod sse;
pub mod stream;
pub mod tokens;
pub mod transport;
mod usage;

pub use batch::{BatchItem, BatchLimits, BatchProvider, BatchResult, BatchState, BatchStatus};
pub use chat::{
    provider_for_model, ChatRequest, ChatResponse, Content, ContentPart, FinishReason, Message,
    Mode, ResponseFormat, Role, ToolCall, ToolCallKind, ToolChoice, ToolDefinition,
};
pub use cost::{CostStatus, RecordedCost};
pub use error::{BoxError, Error};
pub use money::{Money, ParseMoneyError};
pub use shared::{SharedStr, SharedVec};
pub use stream::{
    ChatDelta, ChatStream, StreamAccumulator, StreamCodec, StreamDecoder, StreamRequest,
    ToolCallDelta,
};
pub use tokens::TokenCounter;
#[cfg(feature = "http")]
pub use transport::HttpTransport;
pub use transport::{ApiKey, ClientSettings, Codec, HttpResponse, TransportConfig};
pub use usage::{ServiceTier, Usage};
