//! The rate limiter's response future.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;

use crate::{ChatResponse, Error};

/// The future [`RateLimit`](super::RateLimit) returns.
///
/// It is boxed because the limiter must await its turn (a queue and a
/// timer) before it calls the inner service.
pub struct ResponseFuture {
    inner: BoxFuture<'static, Result<ChatResponse, Error>>,
}

impl ResponseFuture {
    pub(crate) fn new(
        fut: impl Future<Output = Result<ChatResponse, Error>> + Send + 'static,
    ) -> Self {
        ResponseFuture {
            inner: Box::pin(fut),
        }
    }
}

impl Future for ResponseFuture {
    type Output = Result<ChatResponse, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
