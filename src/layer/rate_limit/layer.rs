//! [`RateLimitLayer`].

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower::Layer;

use super::limiter::{default_key, KeyFn, RateLimiter};
use super::shared::{OnUnreachable, Remote, SharedBuckets};
use super::{Quota, RateLimit};
use crate::estimate::{EstimatePolicy, Estimator};
use crate::ChatRequest;

/// Limits requests and tokens per minute, per key; see the
/// [module docs](super).
///
/// Every service the layer builds, and every clone of the layer or of its
/// services, shares one set of buckets. (Each setter starts a new set: set
/// everything before building services.)
///
/// ```
/// use std::num::NonZeroU32;
/// use std::time::Duration;
/// use costlayer::layer::rate_limit::{Quota, RateLimitLayer};
///
/// let nz = |n| NonZeroU32::new(n).unwrap();
/// let layer = RateLimitLayer::new(Quota::per_minute(nz(500), nz(30_000)))
///     .quota_for("openai:gpt-4o-mini", Quota::per_minute(nz(5_000), nz(2_000_000)))
///     .key(|req| format!("{}:{}", req.user.as_deref().unwrap_or("anonymous"), req.model))
///     .max_wait(Duration::from_secs(10));
/// # let _ = layer;
/// ```
#[derive(Clone)]
pub struct RateLimitLayer {
    quota: Quota,
    overrides: HashMap<String, Quota>,
    key_fn: Arc<KeyFn>,
    /// `key_fn` was set with [`key`](Self::key) (else it is [`default_key`]).
    custom_key: bool,
    max_wait: Duration,
    estimator: Estimator,
    remote: Option<Remote>,
    limiter: RateLimiter,
}

impl fmt::Debug for RateLimitLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("quota", &self.quota)
            .field("overrides", &self.overrides)
            .field("max_wait", &self.max_wait)
            .field("estimator", &self.estimator)
            .finish_non_exhaustive()
    }
}

impl RateLimitLayer {
    /// A layer applying `quota` to every key.
    pub fn new(quota: Quota) -> Self {
        let key_fn: Arc<KeyFn> = Arc::new(default_key);
        let max_wait = Duration::from_secs(60);
        let estimator = Estimator::new(EstimatePolicy::Exact);
        RateLimitLayer {
            limiter: RateLimiter::new(
                quota,
                HashMap::new(),
                (Arc::clone(&key_fn), false),
                max_wait,
                estimator,
                None,
            ),
            quota,
            overrides: HashMap::new(),
            key_fn,
            custom_key: false,
            max_wait,
            estimator,
            remote: None,
        }
    }

    fn changed(mut self) -> Self {
        self.limiter = RateLimiter::new(
            self.quota,
            self.overrides.clone(),
            (Arc::clone(&self.key_fn), self.custom_key),
            self.max_wait,
            self.estimator,
            self.remote.clone(),
        );
        self
    }

    /// Keeps the buckets in a store shared by every process (such as
    /// `RedisBuckets`, feature `redis`), so the quotas hold for the whole
    /// fleet; `on_unreachable` decides what happens when the store cannot
    /// be reached: fall back to the in-process buckets with a warning
    /// ([`OnUnreachable::FailOpen`]) or refuse the call
    /// ([`OnUnreachable::FailClosed`]). Defaults to in-process buckets only.
    ///
    /// Across processes, waiters are not served in arrival order; within
    /// the `max_wait` a call retries when the buckets should have refilled.
    pub fn shared(mut self, buckets: impl SharedBuckets, on_unreachable: OnUnreachable) -> Self {
        self.remote = Some(Remote::new(Arc::new(buckets), on_unreachable));
        self.changed()
    }

    /// A different quota for one key (a model with its own limits).
    /// Defaults to the layer's quota for every key.
    pub fn quota_for(mut self, key: impl Into<String>, quota: Quota) -> Self {
        self.overrides.insert(key.into(), quota);
        self.changed()
    }

    /// The bucket key of a request. Defaults to `provider:model` (the
    /// provider from [`ChatRequest::provider_hint`], or `unknown`), the
    /// granularity at which providers limit.
    pub fn key(mut self, f: impl Fn(&ChatRequest) -> String + Send + Sync + 'static) -> Self {
        self.key_fn = Arc::new(f);
        self.custom_key = true;
        self.changed()
    }

    /// The longest a call waits for its turn before failing with
    /// [`Error::RateLimited`](crate::Error::RateLimited). Defaults to 60 s.
    pub fn max_wait(mut self, max: Duration) -> Self {
        self.max_wait = max;
        self.changed()
    }

    /// Calls never wait: a call that cannot be admitted at once fails with
    /// [`Error::RateLimited`](crate::Error::RateLimited) and the wait as its
    /// `retry_after`. Same as `max_wait(Duration::ZERO)`.
    pub fn fail_fast(self) -> Self {
        self.max_wait(Duration::ZERO)
    }

    /// How a request's token weight is estimated: prompt tokens plus
    /// `max_tokens` (or the estimator's default output). Defaults to
    /// [`EstimatePolicy::Exact`]: tokens-per-minute limits want accuracy,
    /// and the bucket is corrected to the billed usage afterwards anyway.
    pub fn estimator(mut self, estimator: Estimator) -> Self {
        self.estimator = estimator;
        self.changed()
    }

    /// The limiter (the buckets) this layer's services share.
    pub fn limiter(&self) -> RateLimiter {
        self.limiter.clone()
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            limiter: self.limiter(),
        }
    }
}
