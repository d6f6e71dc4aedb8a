//! The future returned by [`CostService`](super::CostService).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::{ChatResponse, Error};

pub(crate) type BoxFuture = Pin<Box<dyn Future<Output = Result<ChatResponse, Error>> + Send>>;

/// The response future of [`CostService`](super::CostService).
///
/// It is a boxed `async` block rather than a hand-written state machine
/// because the layer must await *before* calling the inner service (the
/// reservation may load budget totals from the ledger on first use or at a
/// period rollover) and *after* it (the ledger append): three async phases,
/// the first and last of which are themselves `async fn`s of the tracker.
/// One allocation per call is noise next to the ledger write.
pub struct ResponseFuture {
    inner: BoxFuture,
}

impl ResponseFuture {
    pub(crate) fn new(inner: BoxFuture) -> Self {
        ResponseFuture { inner }
    }
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl Future for ResponseFuture {
    type Output = Result<ChatResponse, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}
