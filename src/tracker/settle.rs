//! Reservations (the pre-flight hold on a call's worst case, released on
//! drop) and [`Settlement`] (the post-response record, finished even if the
//! caller stops waiting).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use chrono::{DateTime, Utc};

use super::book::{run_detached, BookKey, BookLine, BudgetBook, Hold, LineTotals, Reserved};
use super::{CallInfo, CostTracker, UnpricedPolicy};
use crate::budget::Action;
use crate::ledger::CostRecord;
use crate::{ChatRequest, ChatResponse, Error, Money};

/// A call's hold on its worst-case cost in every blocking budget it falls
/// under. Returned by [`CostTracker::reserve`]; pass it to
/// [`CostTracker::record`] (or [`CostTracker::settlement`]) to settle it to
/// the billed cost.
///
/// Dropping it without recording (the call failed, timed out, its future
/// was dropped, a panic unwound through it) releases the hold in the book
/// at once.
#[must_use = "dropping a Reservation releases it at once"]
pub struct Reservation {
    pub(super) book: Option<Arc<dyn BudgetBook>>,
    pub(super) hold: Option<Hold>,
    pub(super) estimate: Option<Money>,
    pub(super) unpriced: bool,
    pub(super) output_cap: Option<u32>,
}

impl fmt::Debug for Reservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("estimate", &self.estimate)
            .field("budgets", &self.hold.as_ref().map_or(0, |h| h.lines.len()))
            .field("unpriced", &self.unpriced)
            .field("output_cap", &self.output_cap)
            .finish()
    }
}

impl Reservation {
    /// A reservation that holds nothing.
    pub fn none() -> Self {
        Reservation {
            book: None,
            hold: None,
            estimate: None,
            unpriced: false,
            output_cap: None,
        }
    }

    /// The worst-case cost reserved, if an estimate was made (only when a
    /// blocking budget applies to the call).
    pub fn estimate(&self) -> Option<Money> {
        self.estimate
    }

    /// Whether the call was let through unpriced ([`UnpricedPolicy::Allow`]).
    pub fn is_unpriced(&self) -> bool {
        self.unpriced
    }

    /// Whether the reservation holds anything.
    pub fn is_empty(&self) -> bool {
        self.hold.is_none()
    }

    /// The output tokens the reservation assumed, when it holds anything:
    /// the request's `max_tokens`, or the estimator's default
    /// ([`DEFAULT_MAX_OUTPUT_TOKENS`](crate::estimate::DEFAULT_MAX_OUTPUT_TOKENS)
    /// unless set with [`Estimator::default_max_output`](crate::estimate::Estimator::default_max_output)).
    /// The cost layer sends it as the request's `max_tokens` when the
    /// caller set none, so the billed cost cannot exceed the reservation.
    pub fn output_cap(&self) -> Option<u32> {
        self.hold.as_ref().and(self.output_cap)
    }

    /// Makes `req` carry what was reserved: a request without
    /// `max_tokens` gets the [output cap](Self::output_cap), so the billed
    /// cost cannot exceed the reservation.
    #[cfg(feature = "cost")]
    pub(crate) fn cap(&self, req: &mut ChatRequest) {
        if req.max_tokens.is_none() {
            req.max_tokens = self.output_cap();
        }
    }

    /// The hold, disarming the release on drop.
    pub(super) fn take_hold(&mut self) -> Option<Hold> {
        self.hold.take()
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let (Some(hold), Some(book)) = (self.hold.take(), self.book.take()) {
            run_detached(
                async move {
                    if let Err(e) = book.release(hold).await {
                        tracing::warn!(error = %e, "a budget hold could not be released; it expires after the book's lease");
                    }
                },
                "releasing a budget hold",
            );
        }
    }
}

/// What a settlement gives: the response, with
/// [`ChatResponse::recorded`] filled in, and its record.
pub(crate) type SettleOutput = (ChatResponse, Result<CostRecord, Error>);

/// The budget pre-flight's next step ([`CostTracker::reserve_step`]).
enum Step {
    /// Decided without the book.
    Done(Reservation),
    /// The book must be asked.
    Ask(Ask),
}

/// What [`CostTracker::reserve_now`] left to await: the whole pre-flight
/// (`None`: the ledger must be checked), or the book's answer.
#[cfg(feature = "cost")]
pub(crate) struct Later(Option<Ask>);

/// What the budget pre-flight asks the book for.
pub(crate) struct Ask {
    lines: Arc<super::Lines>,
    /// The blocking lines the call falls in, when not all of them: else
    /// `lines.blocking`.
    picked: Option<Vec<BookLine>>,
    estimate: Money,
    now: DateTime<Utc>,
}

impl Ask {
    fn in_scope(&self) -> &[BookLine] {
        self.picked.as_deref().unwrap_or(&self.lines.blocking)
    }
}

type SettleFuture = Pin<Box<dyn Future<Output = SettleOutput> + Send>>;

/// Tells the response what was recorded for it.
fn fill_recorded(resp: &mut ChatResponse, rec: &CostRecord) {
    let mut recorded = crate::core::RecordedCost::default();
    recorded.record_id = rec.id;
    recorded.nano_usd = rec.nano_usd;
    recorded.status = rec.cost_status;
    recorded.durable = true;
    resp.recorded = Some(recorded);
}

/// The recording of a call the provider answered: settles its reservation
/// to the billed usage and appends the record, exactly once. Await it for
/// the response (with [`ChatResponse::recorded`] filled in) and the record;
/// if it is dropped before it finishes (the caller's future was
/// cancelled), it finishes on its own (inline, or on the Tokio runtime), so
/// an answered call is always recorded. Single calls, streams (at their end
/// or on drop) and batch results all settle through it; a single call
/// through the cost layer whose record needs no wait (a queued ledger
/// append, a book that answers at once) is recorded in the very `poll`
/// that sees the provider's answer, with no settlement future to drop.
#[must_use = "a Settlement records the call when awaited (or, dropped, in the background)"]
pub struct Settlement {
    fut: Option<SettleFuture>,
}

impl fmt::Debug for Settlement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settlement")
            .field("pending", &self.fut.is_some())
            .finish()
    }
}

impl Future for Settlement {
    type Output = (ChatResponse, Result<CostRecord, Error>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(fut) = self.fut.as_mut() else {
            return Poll::Ready((
                ChatResponse::default(),
                Err(Error::config("a Settlement was polled after it finished")),
            ));
        };
        let out = std::task::ready!(fut.as_mut().poll(cx));
        self.fut = None;
        Poll::Ready(out)
    }
}

impl Drop for Settlement {
    fn drop(&mut self) {
        if let Some(fut) = self.fut.take() {
            run_detached(
                async move {
                    let _ = fut.await;
                },
                "recording an answered call",
            );
        }
    }
}

impl CostTracker {
    /// The settlement of a call the provider answered with `resp`: see
    /// [`Settlement`]. `reservation` is what [`CostTracker::reserve`]
    /// returned for `req`.
    pub fn settlement(
        &self,
        req: &ChatRequest,
        reservation: Reservation,
        resp: ChatResponse,
    ) -> Settlement {
        self.settle_call(CallInfo::from_request(req), reservation, resp)
    }

    pub(crate) fn settle_call(
        &self,
        info: CallInfo,
        reservation: Reservation,
        mut resp: ChatResponse,
    ) -> Settlement {
        let tracker = self.clone();
        Settlement {
            fut: Some(Box::pin(async move {
                let rec = tracker.record_call(&info, &resp, Some(reservation)).await;
                if let Ok(r) = &rec {
                    fill_recorded(&mut resp, r);
                }
                (resp, rec)
            })),
        }
    }

    /// The settlement of a call, finished at once when nothing has to be
    /// awaited ([`CostTracker::record_now`]): `Ok` with the response and
    /// its record, no future made. Otherwise `Err` with the
    /// [`Settlement`] of what is left (the record is built and whatever
    /// could be done at once is done).
    #[cfg(feature = "cost")]
    pub(crate) fn settle_now_or(
        &self,
        info: &CallInfo,
        reservation: Reservation,
        mut resp: ChatResponse,
    ) -> Result<SettleOutput, Settlement> {
        let (rec, rest) = self.record_now(info, &resp, Some(reservation));
        let Some(rest) = rest else {
            fill_recorded(&mut resp, &rec);
            return Ok((resp, Ok(rec)));
        };
        let tracker = self.clone();
        Err(Settlement {
            fut: Some(Box::pin(async move {
                let rec = tracker.record_rest(rec, rest).await;
                fill_recorded(&mut resp, &rec);
                (resp, Ok(rec))
            })),
        })
    }

    /// [`reserve`](Self::reserve) when it can be decided without waiting:
    /// the ledger known writable (the cached verdict is fresh), and no
    /// blocking budget in scope or a book that answers at once
    /// ([`BudgetBook::reserve_now`]). Otherwise `Err` with what is left
    /// to await, for [`reserve_later`](Self::reserve_later): the scope and
    /// the estimate made here are not made again.
    #[cfg(feature = "cost")]
    pub(crate) fn reserve_now(
        &self,
        req: &ChatRequest,
    ) -> Result<Result<Reservation, Error>, Later> {
        if !self.preflight_now() {
            return Err(Later(None));
        }
        let ask = match self.reserve_step(req) {
            Ok(Step::Done(r)) => return Ok(Ok(r)),
            Ok(Step::Ask(ask)) => ask,
            Err(e) => return Ok(Err(e)),
        };
        match self.inner.book.reserve_now(ask.in_scope(), ask.estimate) {
            Some(reserved) => Ok(self.answered(req, &ask, reserved)),
            None => Err(Later(Some(ask))),
        }
    }

    /// Finishes what [`reserve_now`](Self::reserve_now) left: the whole
    /// pre-flight, or only the book's answer.
    #[cfg(feature = "cost")]
    pub(crate) async fn reserve_later(
        &self,
        req: &ChatRequest,
        later: Later,
    ) -> Result<Reservation, Error> {
        match later.0 {
            None => self.reserve(req).await,
            Some(ask) => self.await_book(req, &ask).await,
        }
    }

    /// The book's answer to `ask` when it could not answer at once,
    /// awaited.
    async fn await_book(&self, req: &ChatRequest, ask: &Ask) -> Result<Reservation, Error> {
        let reserved = self
            .inner
            .book
            .reserve(ask.in_scope(), ask.estimate)
            .await?;
        self.answered(req, ask, reserved)
    }

    fn has_blocking(&self) -> bool {
        self.inner.budgets.iter().any(|b| b.action == Action::Block)
    }

    /// The budget pre-flight: reserves the worst-case cost of `req` in every
    /// blocking budget whose scope and current period it falls in, through
    /// the [budget book](super::book) (so every process sharing the book
    /// sees it), or refuses it. The provider must not be called when this
    /// fails.
    ///
    /// With no blocking budget in scope this returns an empty reservation
    /// without estimating anything.
    ///
    /// # Errors
    ///
    /// - [`Error::BudgetExceeded`] if `spent + held + estimate` would
    ///   exceed a blocking budget's limit (the first such budget is named);
    ///   alerts already due on the shared spend are sent.
    /// - [`Error::LedgerUnwritable`] if the ledger cannot be written (a
    ///   read-only or full disk, a data directory that is a file): the call
    ///   would be billed without a record.
    /// - [`Error::UnpricedModel`] for a model without a price under
    ///   [`UnpricedPolicy::Reject`].
    /// - The book's error (a hold that cannot be written refuses the call).
    pub async fn reserve(&self, req: &ChatRequest) -> Result<Reservation, Error> {
        // Never send a call whose record could not be written.
        self.preflight().await?;
        let ask = match self.reserve_step(req)? {
            Step::Done(r) => return Ok(r),
            Step::Ask(ask) => ask,
        };
        // The book answers at once when it can (no boxed future), else
        // it is awaited.
        match self.inner.book.reserve_now(ask.in_scope(), ask.estimate) {
            Some(reserved) => self.answered(req, &ask, reserved),
            None => self.await_book(req, &ask).await,
        }
    }

    /// The budget pre-flight up to the book: which blocking lines `req`
    /// falls in and its worst-case cost, or the answer without the book.
    fn reserve_step(&self, req: &ChatRequest) -> Result<Step, Error> {
        let inner = &self.inner;
        if !self.has_blocking() {
            return Ok(Step::Done(Reservation::none()));
        }
        let now = inner.clock.now();
        let lines = self.lines(now);
        let (user, team) = self.attribution(req.user.as_deref(), req.team.as_deref());
        let (provider, model) = self.identity_ref(None, &req.model);
        let blocking = || {
            inner
                .budgets
                .iter()
                .zip(&lines.all)
                .filter(|(b, _)| b.action == Action::Block)
        };
        let applies = |b: &crate::budget::Budget, p: &crate::budget::Period| {
            p.contains(now) && b.scope.matches(user, team, &provider, model)
        };
        // Usually every blocking budget applies: the shared slice is used
        // as it is, no per-call list.
        let picked = if blocking().all(|(b, (p, _))| applies(b, p)) {
            None
        } else {
            Some(
                blocking()
                    .filter(|(b, (p, _))| applies(b, p))
                    .map(|(_, (_, line))| line.clone())
                    .collect::<Vec<BookLine>>(),
            )
        };
        let mut ask = Ask {
            lines,
            picked,
            estimate: Money::ZERO,
            now,
        };
        if ask.in_scope().is_empty() {
            return Ok(Step::Done(Reservation::none()));
        }
        ask.estimate = match self.estimate(req) {
            Some(e) => e,
            None => match inner.unpriced {
                UnpricedPolicy::Reject => {
                    return Err(Error::UnpricedModel {
                        model: req.model.to_string(),
                    })
                }
                UnpricedPolicy::ReserveCap(cap) => cap,
                UnpricedPolicy::Allow => {
                    tracing::warn!(
                        model = %req.model,
                        "model has no price: the call is let through a blocking budget unreserved (UnpricedPolicy::Allow)"
                    );
                    let mut r = Reservation::none();
                    r.unpriced = true;
                    return Ok(Step::Done(r));
                }
            },
        };
        Ok(Step::Ask(ask))
    }

    /// The reservation the book's answer makes, or the refusal.
    fn answered(
        &self,
        req: &ChatRequest,
        ask: &Ask,
        reserved: Reserved,
    ) -> Result<Reservation, Error> {
        match reserved {
            Reserved::Granted { hold, .. } => Ok(Reservation {
                book: Some(self.inner.book.clone()),
                hold: Some(hold),
                estimate: Some(ask.estimate),
                unpriced: false,
                output_cap: Some(
                    u32::try_from(self.inner.estimator.max_output_tokens(req)).unwrap_or(u32::MAX),
                ),
            }),
            Reserved::Refused { key, totals } => {
                let (user, _) = self.attribution(req.user.as_deref(), req.team.as_deref());
                Err(self.refused(key, &totals, ask.in_scope(), user, ask.now, ask.estimate))
            }
            #[allow(unreachable_patterns)]
            _ => Err(Error::config("the budget book gave an unknown answer")),
        }
    }

    /// A blocking budget refused `amount`: counts the blocked call, sends
    /// the alerts already due on the shared totals, and names the budget.
    pub(super) fn refused(
        &self,
        key: BookKey,
        totals: &[LineTotals],
        in_scope: &[BookLine],
        user: &str,
        now: DateTime<Utc>,
        amount: Money,
    ) -> Error {
        crate::metrics::blocked(&key.budget, user);
        let alerts = self.evaluate(totals, user, now);
        self.dispatch(alerts);
        let spent = totals
            .iter()
            .find(|t| t.key == key)
            .map_or(Money::ZERO, |t| t.committed());
        let limit = in_scope
            .iter()
            .find(|l| l.key == key)
            .map_or(Money::ZERO, |l| l.limit);
        Error::BudgetExceeded {
            budget: key.budget.to_string(),
            spent,
            limit,
            estimate: amount,
        }
    }
}
