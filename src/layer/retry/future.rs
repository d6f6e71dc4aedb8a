//! The retry layer's response future.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tower::Service;

use super::policy::RetryPolicy;
use super::service::IntoError;
use crate::{ChatRequest, Error};

pin_project! {
    /// The future [`Retry`](super::Retry) returns: tower's retry future,
    /// not boxed. `R` is the request type: [`ChatRequest`], or
    /// [`StreamRequest`](crate::StreamRequest) for streams.
    pub struct ResponseFuture<S, R = ChatRequest>
    where
        S: Service<R>,
        S::Error: Into<Error>,
        RetryPolicy: tower::retry::Policy<R, S::Response, Error>,
    {
        #[pin]
        pub(crate) inner: tower::retry::future::ResponseFuture<RetryPolicy, IntoError<S>, R>,
    }
}

impl<S, R> Future for ResponseFuture<S, R>
where
    S: Service<R> + Clone,
    S::Error: Into<Error>,
    RetryPolicy: tower::retry::Policy<R, S::Response, Error>,
{
    type Output = Result<S::Response, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx)
    }
}

impl<S, R> fmt::Debug for ResponseFuture<S, R>
where
    S: Service<R>,
    S::Error: Into<Error>,
    RetryPolicy: tower::retry::Policy<R, S::Response, Error>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
