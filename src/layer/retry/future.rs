//! The retry layer's response future.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tower::Service;

use super::policy::RetryPolicy;
use super::service::IntoError;
use crate::{ChatRequest, ChatResponse, Error};

pin_project! {
    /// The future [`Retry`](super::Retry) returns: tower's retry future,
    /// not boxed.
    pub struct ResponseFuture<S>
    where
        S: Service<ChatRequest, Response = ChatResponse>,
        S::Error: Into<Error>,
    {
        #[pin]
        pub(crate) inner: tower::retry::future::ResponseFuture<RetryPolicy, IntoError<S>, ChatRequest>,
    }
}

impl<S> Future for ResponseFuture<S>
where
    S: Service<ChatRequest, Response = ChatResponse> + Clone,
    S::Error: Into<Error>,
{
    type Output = Result<ChatResponse, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx)
    }
}

impl<S> fmt::Debug for ResponseFuture<S>
where
    S: Service<ChatRequest, Response = ChatResponse>,
    S::Error: Into<Error>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
