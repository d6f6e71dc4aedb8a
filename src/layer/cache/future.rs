//! The cache's response future.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use pin_project_lite::pin_project;

use crate::{ChatResponse, Error};

pin_project! {
    /// The future [`Cache`](super::Cache) returns; `F` is the inner
    /// service's future.
    ///
    /// A request that bypasses the cache (not cacheable, or no key) is the
    /// inner future itself, not boxed: the decision is made in `call` (and
    /// recorded in the span on the first poll). A
    /// lookup is boxed, because it must await the cache before it knows
    /// whether to call the inner service at all (and, on a concurrent miss,
    /// waits for another caller's provider call).
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Bypass { #[pin] fut: F, recorded: bool },
        Lookup { fut: BoxFuture<'static, Result<ChatResponse, Error>> },
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn bypass(fut: F) -> Self {
        ResponseFuture {
            kind: Kind::Bypass {
                fut,
                recorded: false,
            },
        }
    }

    pub(crate) fn lookup(
        fut: impl Future<Output = Result<ChatResponse, Error>> + Send + 'static,
    ) -> Self {
        ResponseFuture {
            kind: Kind::Lookup { fut: Box::pin(fut) },
        }
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
            KindProj::Bypass { fut, recorded } => {
                // On the first poll, in the span the future runs in (as the
                // lookup records its outcome), once.
                if !*recorded {
                    *recorded = true;
                    tracing::Span::current().record(super::CACHE_FIELD, "bypass");
                }
                fut.poll(cx).map_err(Into::into)
            }
            KindProj::Lookup { fut } => fut.as_mut().poll(cx),
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
