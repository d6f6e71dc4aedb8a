//! A stream wrapper that lets a layer watch the deltas of a streamed call
//! and act once when it ends: completed, failed, or dropped by the caller.
//! Layers that must do something at the end of a stream (settle a rate
//! limit, fill the cache) implement [`StreamHook`] and wrap the inner
//! stream in a [`Tap`], so their logic is the same function for a single
//! call (the end is the response) and for a stream.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;

use crate::{ChatDelta, ChatStream, Error};

/// How a stream ended.
#[derive(Debug)]
pub(crate) enum End<'a> {
    /// The final delta arrived.
    Completed,
    /// The stream ended with this error (read by the rate limiter).
    #[cfg_attr(not(feature = "rate-limit"), allow(dead_code))]
    Failed(&'a Error),
    /// The caller dropped the stream before its end (or the stream ended
    /// without its final delta and without an error).
    Dropped,
}

/// What a layer does as a stream passes.
pub(crate) trait StreamHook: Send + Unpin + 'static {
    /// Sees each delta as it passes.
    fn delta(&mut self, _d: &ChatDelta) {}
    /// Called exactly once, at the end.
    fn end(self, end: End<'_>);
}

/// Wraps a stream with a hook; see the [module docs](self).
pub(crate) struct Tap<H: StreamHook> {
    inner: crate::core::stream::DeltaStream,
    hook: Option<H>,
}

impl<H: StreamHook> Tap<H> {
    /// `stream` with `hook` watching it.
    pub(crate) fn wrap(stream: ChatStream, hook: H) -> ChatStream {
        stream.map_inner(|inner| Tap {
            inner,
            hook: Some(hook),
        })
    }
}

impl<H: StreamHook> Stream for Tap<H> {
    type Item = Result<ChatDelta, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let item = std::task::ready!(this.inner.as_mut().poll_next(cx));
        match &item {
            Some(Ok(d)) => {
                if let Some(h) = this.hook.as_mut() {
                    h.delta(d);
                }
                if d.done {
                    if let Some(h) = this.hook.take() {
                        h.end(End::Completed);
                    }
                }
            }
            Some(Err(e)) => {
                if let Some(h) = this.hook.take() {
                    h.end(End::Failed(e));
                }
            }
            None => {
                if let Some(h) = this.hook.take() {
                    h.end(End::Dropped);
                }
            }
        }
        Poll::Ready(item)
    }
}

impl<H: StreamHook> Drop for Tap<H> {
    fn drop(&mut self) {
        if let Some(h) = self.hook.take() {
            h.end(End::Dropped);
        }
    }
}
