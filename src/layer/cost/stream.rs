//! The cost layer for streamed calls: the same pre-flight as a single call
//! (reserve, cap the output at what was reserved), then a [`Metered`]
//! stream that settles the reservation exactly once, when the stream ends:
//!
//! - **completed**: from the provider's final usage, exactly as the same
//!   call unstreamed (the final delta is held back until the record is
//!   written, and carries [`ChatDelta::recorded`]);
//! - **failed midway or dropped by the caller**: from what the provider
//!   will bill — the input from its first usage event (or, when it sent
//!   none, the request counted with the tokenizer) and the output received
//!   so far counted with the tokenizer (never less than the provider last
//!   reported) — recorded with `cost_status: "estimated"` and a note. Never
//!   $0, never twice;
//! - **failed before the first delta**: nothing was billed; the hold is
//!   released, as for a failed single call.
//!
//! The `gen_ai.chat` span stays open for the whole stream and records
//! `costlayer.time_to_first_delta_ms`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use costlayer_core::stream::DeltaStream;
use costlayer_core::tokens::{TiktokenCounter, TokenCounter};
use futures_util::future::BoxFuture;
use futures_util::Stream;
use tower::Service;
use tracing::{Instrument, Span};

use super::service::{call_span, record_response_fields, CostService};
use crate::tracker::{CallInfo, CostTracker, Reservation, Settlement};
use crate::{
    ChatDelta, ChatRequest, ChatResponse, ChatStream, Error, StreamAccumulator, StreamRequest,
};

impl<S> Service<StreamRequest> for CostService<S>
where
    S: Service<StreamRequest, Response = ChatStream> + Clone + Send + 'static,
    S::Error: Into<Error>,
    S::Future: Send + 'static,
{
    type Response = ChatStream;
    type Error = Error;
    type Future = BoxFuture<'static, Result<ChatStream, Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Service::<StreamRequest>::poll_ready(&mut self.inner, cx).map_err(Into::into)
    }

    fn call(&mut self, req: StreamRequest) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let tracker = self.tracker.clone();
        let mut req = req.into_inner();
        let span = call_span(&req);
        let outer = span.clone();
        Box::pin(
            async move {
                // Dropped (released) on every early return and on cancellation.
                let reservation = tracker.reserve(&req).await?;
                reservation.cap(&mut req);
                let info = CallInfo::from_request(&req);
                // Kept to count the prompt only if the stream ends before
                // the provider reports usage (not on every call: an exact
                // count is the dearest step of a call).
                let request = req.clone();
                let started = Instant::now();
                let stream = inner
                    .call(StreamRequest::new(req))
                    .await
                    .map_err(Into::into)?;
                Ok(Metered::wrap(
                    stream,
                    Pending {
                        tracker,
                        info,
                        reservation,
                        request,
                        started,
                    },
                    span,
                ))
            }
            .instrument(outer),
        )
    }
}

/// What settling a stream needs.
struct Pending {
    tracker: CostTracker,
    info: CallInfo,
    reservation: Reservation,
    /// The request as sent, for counting an early-ended stream's prompt.
    request: ChatRequest,
    started: Instant,
}

/// A stream that records its cost once; see the [module docs](self).
struct Metered {
    inner: DeltaStream,
    acc: StreamAccumulator,
    provider: String,
    pending: Option<Pending>,
    settling: Option<Settlement>,
    /// The item to yield once the settlement is written (`None`: end).
    held: Option<Result<ChatDelta, Error>>,
    finished: bool,
    first_seen: bool,
    span: Span,
}

impl Metered {
    fn wrap(stream: ChatStream, pending: Pending, span: Span) -> ChatStream {
        let provider = stream.provider().to_owned();
        if let Some(t) = stream.time_to_first_delta() {
            span.record(
                "costlayer.time_to_first_delta_ms",
                u64::try_from(t.as_millis()).unwrap_or(u64::MAX),
            );
        }
        let first_seen = stream.time_to_first_delta().is_some();
        stream.map_inner(move |inner| Metered {
            inner,
            acc: StreamAccumulator::new(),
            provider,
            pending: Some(pending),
            settling: None,
            held: None,
            finished: false,
            first_seen,
            span,
        })
    }

    /// The response the stream amounts to so far.
    fn response(&self, p: &Pending) -> ChatResponse {
        let mut resp = self.acc.response();
        if resp.provider.is_empty() {
            resp.provider.clone_from(&self.provider);
        }
        resp.latency = p.started.elapsed();
        resp
    }

    /// Settles from the provider's final usage.
    fn settle_exact(&mut self) {
        if let Some(p) = self.pending.take() {
            let resp = self.response(&p);
            self.settling = Some(p.tracker.settle_call(p.info, p.reservation, resp));
        }
    }

    /// The response to record for a stream that ended early, and the note
    /// saying how its usage was estimated.
    fn estimated(&self, p: &Pending, why: &str) -> (ChatResponse, String) {
        let mut resp = self.response(p);
        let reported = self.acc.usage();
        let mut usage = reported.unwrap_or_default();
        let input_note = if reported.is_some_and(|u| u.prompt_tokens() > 0) {
            "input from the provider's first usage report"
        } else {
            usage.input_tokens =
                TiktokenCounter::for_model(&p.request.model).count_request(&p.request);
            "input counted from the request"
        };
        let text = self.acc.generated_text();
        let counted = TiktokenCounter::for_model(&p.request.model).count_text(&text);
        usage.output_tokens = usage.output_tokens.max(counted);
        resp.usage = usage;
        let note = format!(
            "stream {why} before the provider's final usage: {input_note}; output counted from the {} characters received",
            text.chars().count()
        );
        (resp, note)
    }

    /// Settles a stream that failed midway or was dropped.
    fn settle_estimated(&mut self, why: &str) -> Option<Settlement> {
        let mut p = self.pending.take()?;
        let (resp, note) = self.estimated(&p, why);
        p.info.estimated = Some(note);
        Some(p.tracker.settle_call(p.info, p.reservation, resp))
    }
}

impl Stream for Metered {
    type Item = Result<ChatDelta, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let span = this.span.clone();
        let _entered = span.enter();
        loop {
            if let Some(settling) = this.settling.as_mut() {
                let (resp, rec) = std::task::ready!(Pin::new(settling).poll(cx));
                this.settling = None;
                this.finished = true;
                record_response_fields(&this.span, None, &resp, rec.as_ref());
                return Poll::Ready(match this.held.take() {
                    Some(Ok(mut d)) => {
                        d.recorded = resp.recorded;
                        Some(Ok(d))
                    }
                    Some(Err(e)) => Some(Err(e)),
                    None => None,
                });
            }
            if this.finished {
                return Poll::Ready(None);
            }
            match std::task::ready!(this.inner.as_mut().poll_next(cx)) {
                Some(Ok(d)) => {
                    if !this.first_seen {
                        this.first_seen = true;
                        if let Some(p) = &this.pending {
                            this.span.record(
                                "costlayer.time_to_first_delta_ms",
                                u64::try_from(p.started.elapsed().as_millis()).unwrap_or(u64::MAX),
                            );
                        }
                    }
                    this.acc.push(&d);
                    if !d.done {
                        return Poll::Ready(Some(Ok(d)));
                    }
                    this.settle_exact();
                    this.held = Some(Ok(d));
                }
                Some(Err(e)) => {
                    this.settling = this.settle_estimated("failed");
                    this.held = Some(Err(e));
                    if this.settling.is_none() {
                        this.finished = true;
                        return Poll::Ready(this.held.take());
                    }
                }
                None => {
                    this.settling = this.settle_estimated("ended");
                    this.held = None;
                    if this.settling.is_none() {
                        this.finished = true;
                        return Poll::Ready(None);
                    }
                }
            }
        }
    }
}

impl Drop for Metered {
    fn drop(&mut self) {
        // Dropped early: settled in the background (the Settlement's own
        // drop finishes it), at the estimate. A settlement in flight is
        // finished the same way.
        drop(self.settle_estimated("dropped"));
    }
}
