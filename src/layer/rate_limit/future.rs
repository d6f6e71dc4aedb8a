//! The rate limiter's response future.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_util::future::BoxFuture;
use pin_project_lite::pin_project;

use super::limiter::Permit;
use crate::{ChatResponse, Error};

pin_project! {
    /// The future [`RateLimit`](super::RateLimit) returns; `F` is the inner
    /// service's future.
    ///
    /// A call the buckets admit at once (the usual case) is the inner
    /// future and its permit, not boxed: admission is decided in `call`. A
    /// call that must wait for its turn (a queue and a timer) or ask a
    /// shared store is boxed.
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Admitted { #[pin] fut: F, permit: Option<Permit> },
        Waiting { fut: BoxFuture<'static, Result<ChatResponse, Error>> },
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn admitted(fut: F, permit: Permit) -> Self {
        ResponseFuture {
            kind: Kind::Admitted {
                fut,
                permit: Some(permit),
            },
        }
    }

    pub(crate) fn waiting(
        fut: impl Future<Output = Result<ChatResponse, Error>> + Send + 'static,
    ) -> Self {
        ResponseFuture {
            kind: Kind::Waiting { fut: Box::pin(fut) },
        }
    }
}

/// Corrects a call's permit to what it billed.
pub(crate) fn settle(permit: Permit, result: &Result<ChatResponse, Error>) {
    match result {
        // Correct the reservation to what was billed.
        Ok(resp) => permit.settle(resp.usage.total_tokens()),
        // The provider may have done the work: keep the charge.
        Err(Error::Timeout { .. }) => drop(permit),
        // Providers do not bill failed calls: refund the tokens.
        Err(_) => permit.settle(0),
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<ChatResponse, E>>,
    E: Into<Error>,
{
    type Output = Result<ChatResponse, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Admitted { fut, permit } => {
                let result = ready!(fut.poll(cx)).map_err(Into::into);
                if let Some(permit) = permit.take() {
                    settle(permit, &result);
                }
                Poll::Ready(result)
            }
            KindProj::Waiting { fut } => fut.as_mut().poll(cx),
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
