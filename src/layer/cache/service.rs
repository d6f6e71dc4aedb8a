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
use futures_util::future::BoxFuture;

use crate::layer::tap::{End, StreamHook, Tap};
use crate::{ChatRequest, ChatResponse, ChatStream, Error, StreamRequest};

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
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Service::<ChatRequest>::poll_ready(&mut self.inner, cx).map_err(Into::into)
    }

    fn call(&mut self, req: ChatRequest) -> Self::Future {
        let Some(key) = self.settings.key(&req) else {
            // Decided now: the ready inner service is called at once and
            // its future returned as it is.
            return ResponseFuture::bypass(self.inner.call(req));
        };
        // The ready service goes into the future; `self` keeps a clone.
        let clone = self.inner.clone();
        let inner = mem::replace(&mut self.inner, clone);
        let cache = Arc::clone(&self.cache);
        let mut call = MissCall::Before(inner, req);
        ResponseFuture::lookup(async move {
            let span = Span::current();
            let start = tokio::time::Instant::now();
            // Borrowed by the cache where it lies, and called only on a miss.
            let pinned: std::pin::Pin<&mut MissCall<S>> = std::pin::Pin::new(&mut call);
            let fetch: Fetch<'_> = pinned;
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

/// The inner service's call on a cache miss, made when the cache first
/// polls it, its future boxed. A hit never makes it, and the lookup's
/// future (moved whole into its box, hit or miss) then holds the service
/// and the request, not room for the inner service's future as well: on a
/// hit that room was copied for nothing.
// The large variant is the point: the service and request stay where the
// lookup's box put them (boxing them would be an allocation a lookup).
#[allow(clippy::large_enum_variant)]
enum MissCall<S: Service<ChatRequest>> {
    /// The ready service and the request, not called yet.
    Before(S, ChatRequest),
    /// Called.
    Calling(std::pin::Pin<Box<S::Future>>),
    /// Taken for the call (only while it is made), or finished.
    Gone,
}

// Never pinned in place: the inner future is pinned in its box.
impl<S: Service<ChatRequest>> Unpin for MissCall<S> {}

impl<S> std::future::Future for MissCall<S>
where
    S: Service<ChatRequest, Response = ChatResponse>,
    S::Error: Into<Error>,
{
    type Output = Result<ChatResponse, Error>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if let MissCall::Before(..) = this {
            if let MissCall::Before(mut inner, req) = mem::replace(this, MissCall::Gone) {
                *this = MissCall::Calling(Box::pin(inner.call(req)));
            }
        }
        match this {
            MissCall::Calling(fut) => {
                let out = std::task::ready!(fut.as_mut().poll(cx));
                *this = MissCall::Gone;
                Poll::Ready(out.map_err(Into::into))
            }
            _ => Poll::Ready(Err(Error::config(
                "a cache's fetch was polled after it finished: a `ResponseCache` \
                 must poll its `Fetch` only until it is ready",
            ))),
        }
    }
}

impl Settings {
    /// The cache key of `req`, or `None` when it is not to be cached.
    fn key(&self, req: &ChatRequest) -> Option<CacheKey> {
        if !self.is_cacheable(req) {
            return None;
        }
        match CacheKey::for_request(req, self.namespace.as_deref()) {
            Ok(key) => Some(key),
            Err(e) => {
                tracing::warn!(error = %e, "costlayer: could not derive a cache key; calling the provider uncached");
                None
            }
        }
    }
}

/// Stores a stream's whole response once it completes.
struct StoreOnEnd {
    cache: Arc<dyn ResponseCache>,
    key: CacheKey,
    acc: crate::StreamAccumulator,
    provider: String,
}

impl StreamHook for StoreOnEnd {
    fn delta(&mut self, d: &crate::ChatDelta) {
        self.acc.push(d);
    }

    fn end(self, end: End<'_>) {
        if !matches!(end, End::Completed) {
            return;
        }
        let mut resp = self.acc.into_response();
        if resp.provider.is_empty() {
            resp.provider = self.provider;
        }
        resp.recorded = None;
        let (cache, key) = (self.cache, self.key);
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn(async move { cache.insert(key, resp).await });
            }
            Err(_) => tracing::debug!(
                "costlayer: no Tokio runtime to store a completed stream in the cache"
            ),
        }
    }
}

/// Streams, when [`CacheLayer::cache_streams`](super::CacheLayer::cache_streams)
/// is on: a hit is replayed as a one-delta stream marked `cached`; a miss
/// streams from the inner service and is stored once it completes.
/// Concurrent identical streams are not coalesced (each streams its own
/// answer).
impl<S> Service<StreamRequest> for Cache<S>
where
    S: Service<StreamRequest, Response = ChatStream> + Clone + Send + 'static,
    S::Error: Into<Error>,
    S::Future: Send + 'static,
{
    type Response = ChatStream;
    type Error = Error;
    type Future = BoxFuture<'static, Result<ChatStream, Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Service::<StreamRequest>::poll_ready(&mut self.inner, cx).map_err(Into::into)
    }

    fn call(&mut self, req: StreamRequest) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = mem::replace(&mut self.inner, clone);
        let cache = Arc::clone(&self.cache);
        let settings = Arc::clone(&self.settings);
        Box::pin(async move {
            let span = Span::current();
            let key = if settings.streams {
                settings.key(req.get_ref())
            } else {
                None
            };
            let Some(key) = key else {
                span.record(CACHE_FIELD, "bypass");
                return inner.call(req).await.map_err(Into::into);
            };
            if let Some(mut resp) = cache.get(&key).await {
                span.record(CACHE_FIELD, "hit");
                resp.cached = true;
                return Ok(ChatStream::from_response(&resp));
            }
            span.record(CACHE_FIELD, "miss");
            let stream = inner.call(req).await.map_err(Into::into)?;
            let provider = stream.provider().to_owned();
            Ok(Tap::wrap(
                stream,
                StoreOnEnd {
                    cache,
                    key,
                    acc: crate::StreamAccumulator::new(),
                    provider,
                },
            ))
        })
    }
}
