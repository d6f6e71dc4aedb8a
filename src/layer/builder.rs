//! Assembling the stack: [`StackBuilder`] (one config, the usual order) and
//! [`ServiceBuilderExt`] (one `tower::ServiceBuilder` method per layer).
//!
//! # The convenience builder
//!
//! ```
//! use std::num::NonZeroU32;
//! use std::sync::Arc;
//! use costlayer::layer::builder::StackBuilder;
//! use costlayer::layer::rate_limit::{Quota, RateLimitLayer};
//! use costlayer::ledger::MemoryStorage;
//! use costlayer::mock::SimulatedProvider;
//! use costlayer::tracker::CostTracker;
//! use costlayer::{ChatRequest, Message};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), costlayer::Error> {
//! let ledger = MemoryStorage::new();
//! let tracker = CostTracker::builder().storage(Arc::new(ledger.clone())).user("alice").build()?;
//! let nz = |n| NonZeroU32::new(n).unwrap();
//!
//! let llm = StackBuilder::new(tracker)
//!     .rate_limit(RateLimitLayer::new(Quota::per_minute(nz(500), nz(200_000))))
//!     .build(SimulatedProvider::new());
//!
//! let req = ChatRequest::new("gpt-4o-mini").message(Message::user("What is 2+2?"));
//! let first = llm.clone().oneshot(req.clone()).await?;
//! let again = llm.clone().oneshot(req).await?;
//! assert!(!first.cached && again.cached);
//! assert_eq!(ledger.records().len(), 2); // the hit is recorded too, at cost 0
//! # Ok(())
//! # }
//! ```
//!
//! # The same stack with `tower::ServiceBuilder`
//!
//! The layers stay the API: the builder above is exactly this, boxed.
//!
//! ```
//! # use std::num::NonZeroU32;
//! # use std::sync::Arc;
//! use costlayer::layer::cache::CacheLayer;
//! use costlayer::layer::cost::CostLayer;
//! use costlayer::layer::rate_limit::{Quota, RateLimitLayer};
//! use costlayer::layer::retry::RetryLayer;
//! # use costlayer::ledger::MemoryStorage;
//! use costlayer::mock::SimulatedProvider;
//! # use costlayer::tracker::CostTracker;
//! use tower::ServiceBuilder;
//! # let tracker = CostTracker::builder().storage(Arc::new(MemoryStorage::new())).build().unwrap();
//! # let nz = |n| NonZeroU32::new(n).unwrap();
//!
//! let llm = ServiceBuilder::new()
//!     .layer(CostLayer::new(tracker))        // 1. budget pre-flight, then record
//!     .layer(CacheLayer::default())          // 2. hits return here
//!     .layer(RetryLayer::new())              // 3. transient failures retried
//!     .layer(RateLimitLayer::new(Quota::per_minute(nz(500), nz(200_000)))) // 4. each attempt limited
//!     .service(SimulatedProvider::new());    // 5. the provider
//! # let _ = llm;
//! ```
//!
//! Why this order:
//!
//! - **cost outermost**, so cache hits are recorded (cost 0, the saving
//!   noted) and a call a budget blocks never reaches anything below;
//! - **cache before retry**, so a hit never retries;
//! - **retry outside the rate limit**, so each attempt is rate-limited.

use tower::layer::util::Stack;
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceBuilder, ServiceExt as _};

use super::cache::CacheLayer;
use super::cost::CostLayer;
use super::rate_limit::{Quota, RateLimitLayer};
use super::retry::RetryLayer;
use crate::config::Config;
use crate::tracker::CostTracker;
use crate::{ChatRequest, ChatResponse, ChatStream, Error, StreamRequest};

/// The assembled stack: any provider behind cost, cache, retry and rate
/// limit, as one cloneable, `Send + Sync` service.
pub type LlmService = BoxCloneSyncService<ChatRequest, ChatResponse, Error>;

/// The assembled stack for streamed calls ([`StackBuilder::build_streaming`]).
pub type LlmStreamService = BoxCloneSyncService<StreamRequest, ChatStream, Error>;

/// Assembles the usual stack (cost, cache, retry, rate limit, provider)
/// from one configuration; see the [module docs](self) for the order and
/// the equivalent `ServiceBuilder`.
///
/// The cost layer is always there (it is the point); the others can be
/// configured or left out.
#[derive(Debug, Clone)]
pub struct StackBuilder {
    cost: CostLayer,
    cache: Option<CacheLayer>,
    retry: Option<RetryLayer>,
    rate_limit: Option<RateLimitLayer>,
}

impl StackBuilder {
    /// A stack recording into `tracker`.
    pub fn new(tracker: CostTracker) -> Self {
        StackBuilder {
            cost: CostLayer::new(tracker),
            cache: Some(CacheLayer::default()),
            retry: Some(RetryLayer::new()),
            rate_limit: None,
        }
    }

    /// A stack recording into the tracker `config` describes (ledger
    /// directory, user, budgets, alert sinks).
    ///
    /// # Errors
    ///
    /// The tracker's configuration errors (see [`CostTracker::from_config`]).
    ///
    /// With feature `redis` and [`Config::redis_url`] set
    /// (`COSTLAYER_REDIS_URL`), the response cache is a shared
    /// `RedisCache` (failing open)
    /// instead of the in-process one.
    pub fn from_config(config: &Config) -> Result<Self, Error> {
        let stack = Self::new(CostTracker::from_config(config)?);
        #[cfg(feature = "redis")]
        if let Some(url) = &config.redis_url {
            let cache = crate::layer::cache::RedisCache::builder(url.expose())
                .build()
                .map_err(|e| Error::config(format!("COSTLAYER_REDIS_URL / redis_url: {e}")))?;
            return Ok(stack.cache(CacheLayer::new(cache)));
        }
        Ok(stack)
    }

    /// The response cache. Defaults to [`CacheLayer::default`] (in process,
    /// 64 MiB, one-hour TTL, sampled requests bypass it).
    pub fn cache(mut self, cache: CacheLayer) -> Self {
        self.cache = Some(cache);
        self
    }

    /// No response cache.
    pub fn no_cache(mut self) -> Self {
        self.cache = None;
        self
    }

    /// The retry layer. Defaults to [`RetryLayer::new`] (3 attempts, full
    /// jitter from 500 ms, Retry-After honoured up to 60 s, a retry budget).
    pub fn retry(mut self, retry: RetryLayer) -> Self {
        self.retry = Some(retry);
        self
    }

    /// No retries.
    pub fn no_retry(mut self) -> Self {
        self.retry = None;
        self
    }

    /// The rate limiter. Defaults to none: costlayer cannot know your
    /// account's limits.
    pub fn rate_limit(mut self, rate_limit: RateLimitLayer) -> Self {
        self.rate_limit = Some(rate_limit);
        self
    }

    /// The tracker the stack records into.
    pub fn tracker(&self) -> &CostTracker {
        self.cost.tracker()
    }

    /// Wraps `provider` in the stack.
    pub fn build<S, E>(self, provider: S) -> LlmService
    where
        S: Service<ChatRequest, Response = ChatResponse, Error = E> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
        E: Into<Error> + 'static,
    {
        // Every layer has `Error = costlayer::Error`; the provider is mapped
        // to it too, so each optional layer's `Either` has one error type.
        let provider = provider.map_err(Into::<Error>::into as fn(E) -> Error);
        let svc = ServiceBuilder::new()
            .layer(self.cost)
            .option_layer(self.cache)
            .option_layer(self.retry)
            .option_layer(self.rate_limit)
            .service(provider);
        BoxCloneSyncService::new(svc)
    }

    /// Wraps `provider` in the same stack for streamed calls. The layers'
    /// state (budgets, cache, rate-limit buckets) is shared with every
    /// other service built from clones of this builder, so one builder can
    /// serve both: `builder.clone().build(p.clone())` and
    /// `builder.build_streaming(p)`.
    pub fn build_streaming<S, E>(self, provider: S) -> LlmStreamService
    where
        S: Service<StreamRequest, Response = ChatStream, Error = E> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
        E: Into<Error> + 'static,
    {
        let provider = provider.map_err(Into::<Error>::into as fn(E) -> Error);
        let svc = ServiceBuilder::new()
            .layer(self.cost)
            .option_layer(self.cache)
            .option_layer(self.retry)
            .option_layer(self.rate_limit)
            .service(provider);
        BoxCloneSyncService::new(svc)
    }
}

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
///
/// ```
/// use std::num::NonZeroU32;
/// use std::sync::Arc;
/// use costlayer::layer::ServiceBuilderExt;
/// use costlayer::layer::rate_limit::Quota;
/// use costlayer::ledger::MemoryStorage;
/// use costlayer::mock::SimulatedProvider;
/// use costlayer::tracker::CostTracker;
/// use costlayer::{ChatRequest, Message};
/// use tower::{ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), costlayer::Error> {
/// let tracker = CostTracker::builder().storage(Arc::new(MemoryStorage::new())).build()?;
/// let nz = |n| NonZeroU32::new(n).unwrap();
/// let svc = ServiceBuilder::new()
///     .llm_cost(tracker)
///     .llm_cache()
///     .llm_retry()
///     .llm_rate_limit(Quota::per_minute(nz(500), nz(200_000)))
///     .service(SimulatedProvider::new());
/// let resp = svc.oneshot(ChatRequest::new("gpt-4o").message(Message::user("hi"))).await?;
/// assert!(!resp.cached);
/// # Ok(())
/// # }
/// ```
pub trait ServiceBuilderExt<L>: sealed::Sealed<L> + Sized {
    /// Adds a [`CostLayer`] recording into `tracker`.
    ///
    /// See [`crate::layer::cost`] for more details.
    fn llm_cost(self, tracker: CostTracker) -> ServiceBuilder<Stack<CostLayer, L>>;

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
    fn llm_cost(self, tracker: CostTracker) -> ServiceBuilder<Stack<CostLayer, L>> {
        self.layer(CostLayer::new(tracker))
    }

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
