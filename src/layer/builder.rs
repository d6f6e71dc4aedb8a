//! [`ServiceBuilderExt`]: one `tower::ServiceBuilder` method per costlayer
//! layer.
//!
//! ```
//! use std::num::NonZeroU32;
//! use costlayer::layer::ServiceBuilderExt;
//! use costlayer::layer::rate_limit::Quota;
//! use costlayer::mock::SimulatedProvider;
//! use costlayer::{ChatRequest, Message};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), costlayer::Error> {
//! let nz = |n| NonZeroU32::new(n).unwrap();
//! let svc = ServiceBuilder::new()
//!     .llm_cache()
//!     .llm_retry()
//!     .llm_rate_limit(Quota::per_minute(nz(500), nz(200_000)))
//!     .service(SimulatedProvider::new());
//! let resp = svc.oneshot(ChatRequest::new("gpt-4o").message(Message::user("hi"))).await?;
//! assert!(!resp.cached);
//! # Ok(())
//! # }
//! ```

use tower::layer::util::Stack;
use tower::ServiceBuilder;

use super::cache::CacheLayer;
use super::rate_limit::{Quota, RateLimitLayer};
use super::retry::RetryLayer;

mod sealed {
    pub trait Sealed<T> {}
    impl<L> Sealed<L> for tower::ServiceBuilder<L> {}
}

/// Adds one method per costlayer layer to [`tower::ServiceBuilder`], each
/// with the layer's defaults. For other settings, pass the configured layer
/// to `ServiceBuilder::layer`.
///
/// Methods are listed in the recommended order (outermost first); see the
/// [`layer`](super) module for why.
///
/// This trait is sealed: it is implemented for `ServiceBuilder` only.
pub trait ServiceBuilderExt<L>: sealed::Sealed<L> + Sized {
    /// Adds a [`CacheLayer`] over a default in-process cache (64 MiB,
    /// one-hour TTL).
    ///
    /// See [`crate::layer::cache`] for more details.
    fn llm_cache(self) -> ServiceBuilder<Stack<CacheLayer, L>>;

    /// Adds a [`RetryLayer`] with its defaults (3 attempts, 500 ms base
    /// backoff with full jitter, Retry-After honoured up to 60 s).
    ///
    /// See [`crate::layer::retry`] for more details.
    fn llm_retry(self) -> ServiceBuilder<Stack<RetryLayer, L>>;

    /// Adds a [`RateLimitLayer`] applying `quota` per provider and model.
    ///
    /// See [`crate::layer::rate_limit`] for more details.
    fn llm_rate_limit(self, quota: Quota) -> ServiceBuilder<Stack<RateLimitLayer, L>>;
}

impl<L> ServiceBuilderExt<L> for ServiceBuilder<L> {
    fn llm_cache(self) -> ServiceBuilder<Stack<CacheLayer, L>> {
        self.layer(CacheLayer::default())
    }

    fn llm_retry(self) -> ServiceBuilder<Stack<RetryLayer, L>> {
        self.layer(RetryLayer::new())
    }

    fn llm_rate_limit(self, quota: Quota) -> ServiceBuilder<Stack<RateLimitLayer, L>> {
        self.layer(RateLimitLayer::new(quota))
    }
}
