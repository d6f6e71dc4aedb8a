//! [`RateLimit`], the service.

use std::mem;
use std::task::{Context, Poll};

use tower::Service;

use super::future::ResponseFuture;
use super::RateLimiter;
use crate::{ChatRequest, ChatResponse, Error};

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
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: ChatRequest) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = mem::replace(&mut self.inner, clone);
        let limiter = self.limiter.clone();
        ResponseFuture::new(async move {
            let permit = limiter.acquire(&req).await?;
            let result = inner.call(req).await.map_err(Into::into);
            match &result {
                // Correct the reservation to what was billed.
                Ok(resp) => permit.settle(resp.usage.total_tokens()),
                // The provider may have done the work: keep the charge.
                Err(Error::Timeout { .. }) => drop(permit),
                // Providers do not bill failed calls: refund the tokens.
                Err(_) => permit.settle(0),
            }
            result
        })
    }
}
