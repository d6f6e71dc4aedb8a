//! [`RateLimit`], the service.

use std::mem;
use std::task::{Context, Poll};

use tower::Service;

use super::future::ResponseFuture;
use super::RateLimiter;
use futures_util::future::BoxFuture;

use crate::layer::tap::{End, StreamHook, Tap};
use crate::{ChatRequest, ChatResponse, ChatStream, Error, StreamRequest};

/// Limits requests and tokens per minute; built by
/// [`RateLimitLayer`](super::RateLimitLayer).
///
/// Clones share the buckets.
///
/// `poll_ready` only forwards to the inner service: it does not reserve
/// anything, because the token weight depends on the request, which
/// `poll_ready` does not see, and a slot reserved there would leak whenever
/// a caller polls ready and then drops the service. The wait happens in the
/// response future, where the weight is known, in arrival order.
#[derive(Debug, Clone)]
pub struct RateLimit<S> {
    pub(crate) inner: S,
    pub(crate) limiter: RateLimiter,
}

impl<S> RateLimit<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes the rate limiter, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The shared limiter.
    pub fn limiter(&self) -> &RateLimiter {
        &self.limiter
    }
}

impl<S> Service<ChatRequest> for RateLimit<S>
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
        // Admitted at once (nobody queued, the buckets hold enough): the
        // ready inner service is called now, nothing is boxed.
        match self.limiter.admit_now(&req) {
            Ok(Some(permit)) => return ResponseFuture::admitted(self.inner.call(req), permit),
            Ok(None) => {}
            Err(e) => return ResponseFuture::waiting(std::future::ready(Err(e))),
        }
        let clone = self.inner.clone();
        let mut inner = mem::replace(&mut self.inner, clone);
        let limiter = self.limiter.clone();
        ResponseFuture::waiting(async move {
            let permit = limiter.acquire(&req).await?;
            let result = inner.call(req).await.map_err(Into::into);
            super::future::settle(permit, &result);
            result
        })
    }
}

/// Settles a streamed call's permit when the stream ends.
struct SettleOnEnd {
    permit: Option<super::limiter::Permit>,
    usage: Option<crate::Usage>,
}

impl StreamHook for SettleOnEnd {
    fn delta(&mut self, d: &crate::ChatDelta) {
        if d.usage.is_some() {
            self.usage = d.usage;
        }
    }

    fn end(mut self, end: End<'_>) {
        let Some(permit) = self.permit.take() else {
            return;
        };
        match end {
            End::Completed => {
                permit.settle(self.usage.map_or(0, |u| u.total_tokens()));
            }
            // The provider did work it bills: keep the whole charge (what a
            // cut stream used is not known exactly).
            End::Failed(e) => {
                tracing::debug!(error = %e, "costlayer: stream failed midway; its rate-limit charge is kept");
                drop(permit);
            }
            End::Dropped => drop(permit),
        }
    }
}

/// Streams: the permit is taken before the call, as for a single call,
/// and settled to the billed tokens when the stream completes (kept whole
/// when it fails or is dropped midway). An error before the first delta
/// refunds it, as for a failed single call.
impl<S> Service<StreamRequest> for RateLimit<S>
where
    S: Service<StreamRequest, Response = ChatStream> + Clone + Send + 'static,
    S::Error: Into<Error>,
    S::Future: Send + 'static,
{
    type Response = ChatStream;
    type Error = Error;
    type Future = BoxFuture<'static, Result<ChatStream, Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: StreamRequest) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = mem::replace(&mut self.inner, clone);
        let limiter = self.limiter.clone();
        Box::pin(async move {
            let permit = limiter.acquire(req.get_ref()).await?;
            match inner.call(req).await.map_err(Into::into) {
                Ok(stream) => Ok(Tap::wrap(
                    stream,
                    SettleOnEnd {
                        permit: Some(permit),
                        usage: None,
                    },
                )),
                Err(e) => {
                    if !matches!(e, Error::Timeout { .. }) {
                        permit.settle(0);
                    }
                    Err(e)
                }
            }
        })
    }
}
