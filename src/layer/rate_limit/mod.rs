//! Rate limit: requests per minute and tokens per minute, per key.
//!
//! [`RateLimitLayer`] keeps two token buckets per key — requests per minute
//! and tokens per minute, the two limits providers enforce — with the key
//! `provider:model` by default, or any function of the request.
//!
//! - A call's **token weight** is its estimated prompt tokens plus its
//!   `max_tokens` ([`Estimator`](crate::estimate::Estimator), policy
//!   `Exact` by default). When the response arrives the bucket is
//!   **corrected to the billed usage**: the unused part is refunded, an
//!   excess is charged as debt. A failed call refunds its tokens (providers
//!   do not bill errors), except a timeout.
//! - When a bucket is short the call **waits, first come first served**, up
//!   to [`RateLimitLayer::max_wait`], then fails with
//!   [`Error::RateLimited`](crate::Error::RateLimited) (provider
//!   `costlayer`, `retry_after` = the expected wait); a call that would
//!   obviously wait too long fails at once. [`RateLimitLayer::fail_fast`]
//!   never waits.
//! - A call heavier than the token burst can never be admitted: it fails at
//!   once with [`Error::InsufficientCapacity`](crate::Error::InsufficientCapacity).
//! - Services built by one layer, and their clones, **share the buckets**.
//! - **`poll_ready` does not reserve**: the weight depends on the request,
//!   which `poll_ready` does not see, and a reservation made there would
//!   leak whenever a caller polls ready and then drops the service. The
//!   wait happens in the response future.
//!
//! Time is tokio's (`tokio::time`), so tests run on a paused clock.
//! Buckets are kept for every key ever seen: with a key per end user, the
//! memory grows with the number of users (about 200 bytes each).
//!
//! Place it innermost, just around the provider, inside the retry layer, so
//! each attempt is limited.
//!
//! # Example
//!
//! ```
//! use std::num::NonZeroU32;
//! use std::time::Duration;
//! use costlayer::layer::rate_limit::{Quota, RateLimitLayer};
//! use costlayer::mock::SimulatedProvider;
//! use costlayer::{ChatRequest, Message};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), costlayer::Error> {
//! let svc = ServiceBuilder::new()
//!     .layer(RateLimitLayer::new(Quota::requests_per_minute(NonZeroU32::new(2).unwrap())))
//!     .service(SimulatedProvider::new());
//! let req = ChatRequest::new("gpt-4o-mini").message(Message::user("hi"));
//!
//! let start = tokio::time::Instant::now();
//! for _ in 0..3 {
//!     svc.clone().oneshot(req.clone()).await?;
//! }
//! // Two at once (the burst), the third when the bucket has refilled one.
//! assert_eq!(start.elapsed(), Duration::from_secs(30));
//! # Ok(())
//! # }
//! ```

mod future;
mod layer;
mod limiter;
mod quota;
#[cfg(feature = "redis")]
mod redis;
mod service;
mod shared;

pub use self::future::ResponseFuture;
pub use self::layer::RateLimitLayer;
pub use self::limiter::{default_key, Available, Permit, RateLimiter};
pub use self::quota::Quota;
#[cfg(feature = "redis")]
pub use self::redis::{RedisBuckets, RedisBucketsBuilder};
pub use self::service::RateLimit;
pub use self::shared::{OnUnreachable, SharedBuckets, SharedBucketsError};
