//! The cache's response future.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;

use crate::{ChatResponse, Error};

/// The future [`Cache`](super::Cache) returns.
///
/// It is boxed because the cache must await a lookup before it knows whether
/// to call the inner service at all (and, on a concurrent miss, waits for
/// another caller's provider call).
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
