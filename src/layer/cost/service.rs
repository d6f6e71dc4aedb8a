use std::task::{Context, Poll};

use tower::Service;
use tracing::field::Empty;
use tracing::Instrument;

use super::future::{Pending, ResponseFuture};
use crate::ledger::CostRecord;
use crate::tracker::{CallInfo, CostTracker};
use crate::{ChatRequest, ChatResponse, Error};

/// Budget pre-flight, ledger record and tracing span around an inner
/// service. See the [module docs](super) for the sequence and the span.
///
/// Cloning it clones the inner service; the tracker is shared.
#[derive(Debug, Clone)]
pub struct CostService<S> {
    pub(super) inner: S,
    pub(super) tracker: CostTracker,
}

impl<S> CostService<S> {
    /// Wraps `inner`, recording into `tracker`.
    pub const fn new(inner: S, tracker: CostTracker) -> Self {
        CostService { inner, tracker }
    }

    /// The tracker.
    pub fn tracker(&self) -> &CostTracker {
        &self.tracker
    }

    /// A reference to the inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// A mutable reference to the inner service.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// The `gen_ai.chat` span of one call, with every later field declared.
pub(super) fn call_span(req: &ChatRequest) -> tracing::Span {
    let span = tracing::info_span!(
        "gen_ai.chat",
        gen_ai.operation.name = "chat",
        gen_ai.provider.name = Empty,
        gen_ai.request.model = %req.model,
        gen_ai.response.model = Empty,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
        costlayer.cost_nano_usd = Empty,
        costlayer.cache = Empty,
        costlayer.retries = Empty,
        costlayer.time_to_first_delta_ms = Empty,
    );
    if let Some(p) = req.provider_hint() {
        span.record("gen_ai.provider.name", p);
    }
    span
}

/// Records what the call billed on its span, and logs a ledger failure.
/// `hint` is the provider [`call_span`] recorded already, if known: the
/// field is recorded again only if the response names another one.
pub(super) fn record_response_fields(
    span: &tracing::Span,
    hint: Option<&str>,
    resp: &ChatResponse,
    rec: Result<&CostRecord, &Error>,
) {
    if !resp.provider.is_empty() && hint != Some(resp.provider.as_str()) {
        span.record("gen_ai.provider.name", resp.provider.as_str());
    }
    span.record("gen_ai.response.model", resp.model.as_str());
    span.record("gen_ai.usage.input_tokens", resp.usage.prompt_tokens());
    span.record("gen_ai.usage.output_tokens", resp.usage.output_tokens);
    match rec {
        Ok(rec) => {
            if let Some(cost) = rec.nano_usd {
                span.record("costlayer.cost_nano_usd", cost.nanos());
            }
        }
        Err(e) => tracing::error!(
            error = %e,
            "the call succeeded but its cost could not be written to the ledger (it still counts in the budgets)"
        ),
    }
}

impl<S> Service<ChatRequest> for CostService<S>
where
    S: Service<ChatRequest, Response = ChatResponse> + Clone + Send + 'static,
    S::Error: Into<Error>,
    S::Future: Send + 'static,
{
    type Response = ChatResponse;
    type Error = Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Service::<ChatRequest>::poll_ready(&mut self.inner, cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: ChatRequest) -> Self::Future {
        let span = call_span(&req);
        let hint = req.provider_hint();
        // Decided at once (the ledger known writable, no blocking budget or
        // a book that answers at once): the ready inner service is called
        // now and its future polled in place, unboxed.
        let later = match span.in_scope(|| self.tracker.reserve_now(&req)) {
            Ok(Ok(reservation)) => {
                reservation.cap(&mut req);
                let info = CallInfo::from_request(&req);
                let fut = span.in_scope(|| self.inner.call(req));
                return ResponseFuture::calling(
                    fut,
                    Pending {
                        tracker: self.tracker.clone(),
                        info,
                        reservation,
                        span,
                        hint,
                    },
                );
            }
            Ok(Err(e)) => return ResponseFuture::failed(e),
            Err(later) => later,
        };
        // The instance that was driven to readiness is the one to call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let tracker = self.tracker.clone();
        let fut = async move {
            // Dropped (released) on every early return and on cancellation.
            // Carried on from where `reserve_now` stopped: the scope and
            // the estimate are not made twice.
            let reservation = tracker.reserve_later(&req, later).await?;
            reservation.cap(&mut req);
            let info = CallInfo::from_request(&req);
            let resp = inner.call(req).await.map_err(Into::into)?;
            // Finished in the background if this future is dropped now: an
            // answered call is always recorded.
            let (resp, rec) = match tracker.settle_now_or(&info, reservation, resp) {
                Ok(done) => done,
                Err(settlement) => settlement.await,
            };
            record_response_fields(&tracing::Span::current(), hint, &resp, rec.as_ref());
            Ok(resp)
        }
        .instrument(span);
        ResponseFuture::boxed(Box::pin(fut))
    }
}
