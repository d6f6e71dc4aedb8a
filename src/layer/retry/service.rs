//! [`Retry`], the service.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tower::Service;

use super::future::ResponseFuture;
use super::policy::RetryPolicy;
use crate::{ChatRequest, ChatResponse, ChatStream, Error, StreamRequest};

/// Retries transient failures of the inner service; built by
/// [`RetryLayer`](super::RetryLayer).
#[derive(Debug, Clone)]
pub struct Retry<S> {
    pub(crate) inner: tower::retry::Retry<RetryPolicy, IntoError<S>>,
}

impl<S> Retry<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner.get_ref().inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner.get_mut().inner
    }

    /// Consumes the retry service, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner.into_inner().inner
    }
}

impl<S> Service<ChatRequest> for Retry<S>
where
    S: Service<ChatRequest, Response = ChatResponse> + Clone,
    S::Error: Into<Error>,
{
    type Response = ChatResponse;
    type Error = Error;
    type Future = ResponseFuture<S>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Service::<ChatRequest>::poll_ready(&mut self.inner, cx)
    }

    fn call(&mut self, req: ChatRequest) -> Self::Future {
        // tower's Retry calls its (ready) inner service and clones itself
        // into the future for the retries; each retry polls the clone ready.
        ResponseFuture {
            inner: self.inner.call(req),
        }
    }
}

/// Streams are retried only until their first delta: the inner service's
/// future resolves with it (see [`costlayer_core::stream`]), and a failure
/// after it ends the stream, which is never re-sent.
impl<S> Service<StreamRequest> for Retry<S>
where
    S: Service<StreamRequest, Response = ChatStream> + Clone,
    S::Error: Into<Error>,
{
    type Response = ChatStream;
    type Error = Error;
    type Future = ResponseFuture<S, StreamRequest>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Service::<StreamRequest>::poll_ready(&mut self.inner, cx)
    }

    fn call(&mut self, req: StreamRequest) -> Self::Future {
        ResponseFuture {
            inner: self.inner.call(req),
        }
    }
}

/// The inner service with its error converted into [`Error`], so the
/// policy can classify it.
#[derive(Debug, Clone)]
pub(crate) struct IntoError<S> {
    pub(crate) inner: S,
}

impl<S, R> Service<R> for IntoError<S>
where
    S: Service<R>,
    S::Error: Into<Error>,
{
    type Response = S::Response;
    type Error = Error;
    type Future = IntoErrorFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: R) -> Self::Future {
        IntoErrorFuture {
            inner: self.inner.call(req),
        }
    }
}

pin_project! {
    #[derive(Debug)]
    pub(crate) struct IntoErrorFuture<F> {
        #[pin]
        inner: F,
    }
}

impl<F, T, E> Future for IntoErrorFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<Error>,
{
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx).map_err(Into::into)
    }
}
