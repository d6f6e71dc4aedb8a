//! [`CacheLayer`].

use std::fmt;
use std::sync::Arc;

use tower::Layer;

use super::{Cache, MokaCache, ResponseCache};
use crate::ChatRequest;

/// Settings shared by a layer and every service it builds.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) cache_sampled: bool,
    pub(crate) namespace: Option<String>,
    pub(crate) streams: bool,
}

impl Settings {
    /// Whether `req` may be served from (and stored in) the cache.
    pub(crate) fn is_cacheable(&self, req: &ChatRequest) -> bool {
        self.cache_sampled || !req.temperature.is_some_and(|t| t > 0.0)
    }
}

/// Serves repeated requests from a [`ResponseCache`]; see the
/// [module docs](super).
///
/// ```
/// use std::time::Duration;
/// use costlayer::layer::cache::{CacheLayer, MokaCache};
///
/// let layer = CacheLayer::new(MokaCache::builder().time_to_live(Duration::from_secs(600)).build())
///     .namespace("prod")
///     .cache_sampled(false);
/// # let _ = layer;
/// ```
#[derive(Clone)]
pub struct CacheLayer {
    pub(crate) cache: Arc<dyn ResponseCache>,
    pub(crate) settings: Arc<Settings>,
}

impl fmt::Debug for CacheLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheLayer")
            .field("cache", &self.cache)
            .field("cache_sampled", &self.settings.cache_sampled)
            .field("namespace", &self.settings.namespace)
            .finish()
    }
}

impl Default for CacheLayer {
    /// A layer over a default [`MokaCache`] (64 MiB, one-hour TTL).
    fn default() -> Self {
        Self::new(MokaCache::default())
    }
}

impl CacheLayer {
    /// A layer keeping responses in `cache`.
    pub fn new(cache: impl ResponseCache) -> Self {
        Self::from_arc(Arc::new(cache))
    }

    /// A layer keeping responses in a shared cache object.
    pub fn from_arc(cache: Arc<dyn ResponseCache>) -> Self {
        CacheLayer {
            cache,
            settings: Arc::new(Settings {
                cache_sampled: false,
                namespace: None,
                streams: false,
            }),
        }
    }

    /// Whether requests with a `temperature` above zero are cached too.
    /// Their answers are samples: caching one freezes it, which is right for
    /// tests and evaluations and wrong for a chat product. A request that
    /// sets no temperature is cached. Defaults to `false`.
    pub fn cache_sampled(mut self, yes: bool) -> Self {
        Arc::make_mut(&mut self.settings).cache_sampled = yes;
        self
    }

    /// Whether streamed calls ([`StreamRequest`](crate::StreamRequest)) are
    /// cached too: a completed stream is stored as its whole response, and a
    /// hit is replayed as a one-delta stream marked `cached` (recorded at
    /// cost 0 with the saving, as any hit). A stream that fails or is
    /// dropped is not stored. Streams and single calls share entries.
    /// Defaults to `false` (streams pass through uncached).
    pub fn cache_streams(mut self, yes: bool) -> Self {
        Arc::make_mut(&mut self.settings).streams = yes;
        self
    }

    /// A namespace mixed into every key, so several applications (or
    /// provider accounts) can share one cache without sharing entries.
    /// Defaults to none.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.settings).namespace = Some(namespace.into());
        self
    }

    /// The cache this layer uses.
    pub fn cache(&self) -> &Arc<dyn ResponseCache> {
        &self.cache
    }
}

impl<S> Layer<S> for CacheLayer {
    type Service = Cache<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Cache {
            inner,
            cache: Arc::clone(&self.cache),
            settings: Arc::clone(&self.settings),
        }
    }
}
