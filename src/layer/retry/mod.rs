//! Retry: transient failures are retried with exponential backoff.
//!
//! [`RetryLayer`] is a [`tower::retry::Policy`] ([`RetryPolicy`]) on tower's
//! own `Retry` service:
//!
//! - only errors that [`Error::is_retryable`](crate::Error::is_retryable)
//!   are retried: rate limits (429), overload (503, Anthropic's 529),
//!   server errors (500, 502, 504), timeouts and connection failures —
//!   never a bad request (400, 404, 422), bad credentials (401, 403), an
//!   exhausted quota or a refused budget;
//! - a provider's `Retry-After` (and the reset headers the adapters read
//!   into it) is honoured exactly, up to a cap;
//! - otherwise the delay is exponential with full jitter, capped;
//! - `max_attempts` and `max_elapsed` bound each call, and a shared
//!   [`RetryBudget`] bounds retries across calls, so an outage does not
//!   turn into a retry storm;
//! - every attempt is logged (`tracing`, target `costlayer`), and the
//!   number of retries is recorded as `costlayer.retries` in the current
//!   span (the cost layer's per-call span) when the call is retried (a
//!   call that is not retried leaves the field empty).
//!
//! Retrying needs a copy of the request for each attempt: every
//! [`ChatRequest`](crate::ChatRequest) is `Clone`, so every call can be
//! retried. The copy kept for the next attempt is taken before the first
//! one (tower's `Policy::clone_request`), but it copies nothing large: the
//! request's model and system prompt are [`SharedStr`](crate::SharedStr)s
//! and its messages and tools [`SharedVec`](crate::SharedVec)s, so the
//! copy is a few reference counts however long the conversation (none of
//! a call's allocations is the retry layer's).
//!
//! Place it inside the cache (a hit never retries) and outside the rate
//! limiter (each attempt waits for its own tokens).
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use costlayer::layer::retry::{Jitter, RetryLayer};
//! use costlayer::mock::{Failure, SimulatedProvider};
//! use costlayer::{ChatRequest, Message};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), costlayer::Error> {
//! let provider = SimulatedProvider::builder()
//!     .fail_first(2, Failure::Server { status: 502 })
//!     .build();
//! let svc = ServiceBuilder::new()
//!     .layer(RetryLayer::new().jitter(Jitter::None))
//!     .service(provider.clone());
//!
//! let start = tokio::time::Instant::now();
//! let resp = svc.oneshot(ChatRequest::new("gpt-4o").message(Message::user("hi"))).await?;
//! assert_eq!(provider.calls(), 3);
//! // 500 ms, then 1 s of backoff (tokio's paused clock: no real wait).
//! assert_eq!(start.elapsed(), Duration::from_millis(1500));
//! # let _ = resp;
//! # Ok(())
//! # }
//! ```

mod future;
mod layer;
mod policy;
mod service;

pub use self::future::ResponseFuture;
pub use self::layer::RetryLayer;
pub use self::policy::{should_retry, Jitter, RetryBudget, RetryPolicy, RETRIES_FIELD};
pub use self::service::Retry;
