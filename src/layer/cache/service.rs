//! [`Cache`], the service.

use std::fmt;
use std::mem;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower::Service;
use tracing::Span;

use super::future::ResponseFuture;
use super::layer::Settings;
use super::{CacheKey, Fetch, Lookup, ResponseCache};
use crate::{ChatRequest, ChatResponse, Error};

/// The span field this layer records: `"hit"`, `"miss"` or `"bypass"`.
pub const CACHE_FIELD: &str = "costlayer.cache";

/// Serves repeated requests from a [`ResponseCache`]; built by
/// [`CacheLayer`](super::CacheLayer).
///
/// Clones share the cache.
#[derive(Clone)]
pub struct Cache<S> {
    pub(crate) inner: S,
    pub(crate) cache: Arc<dyn ResponseCache>,
    pub(crate) settings: Arc<Settings>,
}

impl<S: fmt::Debug> fmt::Debug for Cache<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("inner", &self.inner)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl<S> Cache<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes the cache service, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The cache this service uses.
    pub fn cache(&self) -> &Arc<dyn ResponseCache> {
        &self.cache
    }
}

impl<S> Service<ChatRequest> for Cache<S>
where
    S: Service<ChatRequest, Response = ChatResponse> + Clone + Send + 'static,
    S::Error: Into<Error>,
    S::Future: Send + 'static,
{
    type Response = ChatResponse;
    type Error = Error;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: ChatRequest) -> Self::Future {
        // The ready service goes into the future; `self` keeps a clone.
        let clone = self.inner.clone();
        let mut inner = mem::replace(&mut self.inner, clone);
        let cache = Arc::clone(&self.cache);
        let settings = Arc::clone(&self.settings);
        ResponseFuture::new(async move {
            let span = Span::current();
            let key = if settings.is_cacheable(&req) {
                match CacheKey::for_request(&req, settings.namespace.as_deref()) {
                    Ok(key) => Some(key),
                    Err(e) => {
                        tracing::warn!(error = %e, "costlayer: could not derive a cache key; calling the provider uncached");
                        None
                    }
                }
            } else {
                None
            };
            let Some(key) = key else {
                span.record(CACHE_FIELD, "bypass");
                return inner.call(req).await.map_err(Into::into);
            };
            let start = tokio::time::Instant::now();
            let fetch: Fetch = Box::pin(async move { inner.call(req).await.map_err(Into::into) });
            match cache.get_or_fetch(key, fetch).await {
                Ok(Lookup::Hit(mut resp)) => {
                    span.record(CACHE_FIELD, "hit");
                    tracing::debug!(key = ?key, "costlayer: cache hit");
                    resp.cached = true;
                    crate::metrics::cache_hit(&resp.model);
                    resp.latency = start.elapsed();
                    Ok(resp)
                }
                Ok(Lookup::Miss(resp)) => {
                    span.record(CACHE_FIELD, "miss");
                    Ok(resp)
                }
                Err(e) => {
                    span.record(CACHE_FIELD, "miss");
                    Err(e)
                }
            }
        })
    }
}
