//! Response cache: a repeated request is answered from memory, not billed.
//!
//! [`CacheLayer`] keys each request by a BLAKE3 digest of what determines the
//! answer ([`CacheKey`]: model, messages, system prompt, sampling
//! parameters, tools, response format, `extra`) — never by attribution
//! (`user`, `team`, `tags`), never by a credential — and keeps the responses
//! in a [`ResponseCache`]: in process, [`MokaCache`] (size-weighted
//! capacity, time to live, time to idle); a shared cache implements the same
//! trait.
//!
//! - A **hit** returns the stored response with `cached = true`. Its `usage`
//!   is the original call's (what the hit saved: the cost layer records a
//!   cost of zero and this saving); its `latency` is the time the lookup
//!   took.
//! - **Concurrent identical misses are coalesced**: a hundred callers asking
//!   the same question at once cause one provider call; the others wait for
//!   it and get a hit.
//! - **Errors are never cached**; every caller of a failed coalesced call
//!   gets the error.
//! - Requests with a **`temperature` above zero bypass** the cache unless
//!   [`CacheLayer::cache_sampled`] opts in.
//!
//! The outcome is recorded as `costlayer.cache` = `"hit"`, `"miss"` or
//! `"bypass"` in the current tracing span (the cost layer's per-call span).
//!
//! Place it inside the cost layer (so hits are recorded) and outside the
//! retry layer (so a hit never retries).
//!
//! # Example
//!
//! ```
//! use costlayer::layer::cache::{CacheLayer, MokaCache};
//! use costlayer::mock::SimulatedProvider;
//! use costlayer::{ChatRequest, Message};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), costlayer::Error> {
//! let provider = SimulatedProvider::new();
//! let svc = ServiceBuilder::new()
//!     .layer(CacheLayer::new(MokaCache::default()))
//!     .service(provider.clone());
//!
//! let req = ChatRequest::new("gpt-4o-mini").message(Message::user("What is 2+2?"));
//! let first = svc.clone().oneshot(req.clone()).await?;
//! let second = svc.clone().oneshot(req.user("someone-else")).await?;
//! assert!(!first.cached);
//! assert!(second.cached);
//! assert_eq!(second.text, first.text);
//! assert_eq!(provider.calls(), 1);
//! # Ok(())
//! # }
//! ```

mod future;
mod key;
mod layer;
#[cfg(feature = "redis")]
mod redis;
mod service;
mod store;

pub use self::future::ResponseFuture;
pub use self::key::CacheKey;
pub use self::layer::CacheLayer;
#[cfg(feature = "redis")]
pub use self::redis::{RedisCache, RedisCacheBuilder};
pub use self::service::{Cache, CACHE_FIELD};
pub use self::store::{Fetch, Lookup, MokaCache, MokaCacheBuilder, ResponseCache};
