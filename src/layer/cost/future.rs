//! The future returned by [`CostService`](super::CostService).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tracing::Span;

use super::service::record_response_fields;
use crate::tracker::{CallInfo, CostTracker, Reservation, Settlement};
use crate::{ChatResponse, Error};

pub(crate) type BoxFuture = Pin<Box<dyn Future<Output = Result<ChatResponse, Error>> + Send>>;

pin_project! {
    /// The response future of [`CostService`](super::CostService); `F` is
    /// the inner service's future.
    ///
    /// When the pre-flight can be decided at once (the ledger known
    /// writable, and no blocking budget in scope or a budget book that
    /// answers at once) the inner service is called in
    /// `call` and its future is polled here, not boxed; the recording
    /// that follows is done at once when nothing has to be awaited (a
    /// queued ledger append), else it is a [`Settlement`] (finished in
    /// the background if this future is dropped once the provider has
    /// answered). Otherwise
    /// (a book to wait for, a ledger to check) the whole call
    /// is one boxed `async` block: the reservation may wait for the book
    /// or the ledger before the inner service is called.
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        // Reserve, call and settle in one boxed block (the budget path).
        Boxed { fut: BoxFuture },
        // The inner service called already; no reservation to settle.
        Calling {
            #[pin]
            fut: F,
            settle: Option<Pending>,
        },
        // The provider answered; the record is being written.
        Settling { settlement: Settlement, span: Span, hint: Option<&'static str> },
        // Refused before the call (a budget): the error, once.
        Failed { error: Option<Error> },
        Done,
    }
}

/// What the settlement of a fast-path call needs.
pub(crate) struct Pending {
    pub(crate) tracker: CostTracker,
    pub(crate) info: CallInfo,
    pub(crate) reservation: Reservation,
    pub(crate) span: Span,
    pub(crate) hint: Option<&'static str>,
}

impl<F> ResponseFuture<F> {
    pub(crate) fn boxed(fut: BoxFuture) -> Self {
        ResponseFuture {
            state: State::Boxed { fut },
        }
    }

    pub(crate) fn failed(error: Error) -> Self {
        ResponseFuture {
            state: State::Failed { error: Some(error) },
        }
    }

    pub(crate) fn calling(fut: F, pending: Pending) -> Self {
        ResponseFuture {
            state: State::Calling {
                fut,
                settle: Some(pending),
            },
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<ChatResponse, E>>,
    E: Into<Error>,
{
    type Output = Result<ChatResponse, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let mut state = self.as_mut().project().state;
            match state.as_mut().project() {
                StateProj::Boxed { fut } => return fut.as_mut().poll(cx),
                StateProj::Calling { fut, settle } => {
                    let out = {
                        let _entered = settle.as_ref().map(|p| p.span.enter());
                        std::task::ready!(fut.poll(cx))
                    };
                    let Some(p) = settle.take() else {
                        state.set(State::Done);
                        return Poll::Ready(Err(Error::config(
                            "the cost layer's future was polled after it finished",
                        )));
                    };
                    let resp = match out {
                        Ok(resp) => resp,
                        Err(e) => {
                            // Not billed: the (empty) reservation goes.
                            state.set(State::Done);
                            return Poll::Ready(Err(e.into()));
                        }
                    };
                    // Usually recorded at once (a queued append, no
                    // book to wait for): no settlement future at all.
                    let settled = {
                        let _entered = p.span.enter();
                        p.tracker.settle_now_or(&p.info, p.reservation, resp)
                    };
                    match settled {
                        Ok((resp, rec)) => {
                            record_response_fields(&p.span, p.hint, &resp, rec.as_ref());
                            state.set(State::Done);
                            return Poll::Ready(Ok(resp));
                        }
                        Err(settlement) => state.set(State::Settling {
                            settlement,
                            span: p.span,
                            hint: p.hint,
                        }),
                    }
                }
                StateProj::Settling {
                    settlement,
                    span,
                    hint,
                } => {
                    let (resp, rec) = {
                        let _entered = span.enter();
                        std::task::ready!(Pin::new(settlement).poll(cx))
                    };
                    record_response_fields(span, *hint, &resp, rec.as_ref());
                    state.set(State::Done);
                    return Poll::Ready(Ok(resp));
                }
                StateProj::Failed { error } => {
                    let error = error.take().unwrap_or_else(|| {
                        Error::config("the cost layer's future was polled after it finished")
                    });
                    state.set(State::Done);
                    return Poll::Ready(Err(error));
                }
                StateProj::Done => {
                    return Poll::Ready(Err(Error::config(
                        "the cost layer's future was polled after it finished",
                    )))
                }
            }
        }
    }
}
