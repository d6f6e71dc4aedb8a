//! Building the [`CostRecord`] of a call and appending it.

use std::cell::RefCell;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::book::Hold;
use super::{CallInfo, CostTracker, Lines, Reservation};
use crate::alert::Alert;
use crate::ledger::CostRecord;
use crate::{ChatRequest, ChatResponse, Error, Money, SharedStr};

impl CostTracker {
    /// Records a call's billed usage: prices it, settles its reservation to
    /// the billed cost, appends the record to the ledger, updates the
    /// budgets and dispatches any alert off the caller's path.
    ///
    /// A model without a price is still recorded (cost `null`) with a
    /// `tracing` warning: money was spent, the record must not be lost. A
    /// response with `cached == true` is recorded at cost 0 with
    /// `saved_nano_usd` set to what it would have cost.
    ///
    /// If the ledger refuses the record, it is kept in the tracker's
    /// [`Spool`](crate::ledger::Spool) (logged as an error), still counts in
    /// the budgets, and is written to the ledger once it accepts writes
    /// again.
    ///
    /// # Errors
    ///
    /// None today; the `Result` is kept for backends that may refuse a
    /// record outright.
    pub async fn record(
        &self,
        req: &ChatRequest,
        resp: &ChatResponse,
        reservation: Option<Reservation>,
    ) -> Result<CostRecord, Error> {
        self.record_call(&CallInfo::from_request(req), resp, reservation)
            .await
    }

    pub(crate) async fn record_call(
        &self,
        info: &CallInfo,
        resp: &ChatResponse,
        reservation: Option<Reservation>,
    ) -> Result<CostRecord, Error> {
        let (rec, rest) = self.record_now(info, resp, reservation);
        Ok(match rest {
            None => rec,
            Some(rest) => self.record_rest(rec, rest).await,
        })
    }

    /// Records a call's billed usage as far as it can without waiting:
    /// builds the record, settles the hold in the book if the book answers
    /// at once ([`BudgetBook::settle_now`](super::book::BudgetBook::settle_now)),
    /// appends if the ledger answers at once
    /// ([`Storage::append_now`](crate::ledger::Storage::append_now)), and
    /// dispatches the alerts. Returns the record and what is left to await
    /// ([`CostTracker::record_rest`]), if anything: the usual call (a
    /// queued JSONL append, a book's fresh chunk) needs no future.
    pub(crate) fn record_now(
        &self,
        info: &CallInfo,
        resp: &ChatResponse,
        reservation: Option<Reservation>,
    ) -> (CostRecord, Option<Rest>) {
        let inner = &self.inner;
        let now = inner.clock.now();
        let rec = self.build_record(info, resp, now);
        let hold = reservation.and_then(|mut r| r.take_hold());
        let alerts = if inner.budgets.is_empty() {
            Vec::new()
        } else {
            // Settled in the book before the append, so the record counts
            // once: as a settled hold until the book reads it back.
            //
            // The hold is handed over, not copied (a copy is 2 + 3 × lines
            // allocations a call). A book whose settle fails releases it
            // itself (the memory book does) or keeps it until its lease
            // runs out, which over-counts the budget for that long and
            // never under-counts it.
            let lines = self.lines(now);
            match inner.book.settle_now(hold.as_ref(), &rec, &lines.books) {
                Some(totals) => self.evaluate(&totals, &rec.user, now),
                None => return (rec, Some(Rest::Settle { hold, lines, now })),
            }
        };
        match inner.storage.append_now(&rec) {
            Some(Ok(())) => {}
            // A refused append goes to the spool: the call was billed.
            Some(Err(e)) => {
                self.spool_refused(&rec, e);
            }
            None => return (rec, Some(Rest::Append { alerts })),
        }
        self.recorded(&rec, alerts);
        (rec, None)
    }

    /// Finishes what [`CostTracker::record_now`] could not do at once.
    pub(crate) async fn record_rest(&self, rec: CostRecord, rest: Rest) -> CostRecord {
        let alerts = match rest {
            Rest::Settle { hold, lines, now } => {
                match self.inner.book.settle(hold, &rec, &lines.books).await {
                    Ok(totals) => self.evaluate(&totals, &rec.user, now),
                    Err(e) => {
                        tracing::warn!(error = %e, "the call could not be settled in the budget book; its hold is released by the book or expires with its lease");
                        Vec::new()
                    }
                }
            }
            Rest::Append { alerts } => alerts,
        };
        // A refused append goes to the spool: the call was billed.
        self.append_or_spool(&rec).await;
        self.recorded(&rec, alerts);
        rec
    }

    /// The last steps of a record in the ledger: metrics, then alerts.
    fn recorded(&self, rec: &CostRecord, alerts: Vec<Alert>) {
        crate::metrics::record(rec);
        if !alerts.is_empty() {
            self.dispatch(alerts);
        }
    }

    pub(super) fn build_record(
        &self,
        info: &CallInfo,
        resp: &ChatResponse,
        now: DateTime<Utc>,
    ) -> CostRecord {
        let inner = &self.inner;
        let billed_model = if resp.model.is_empty() {
            info.model.as_str()
        } else {
            resp.model.as_str()
        };
        let (user, team) = self.attribution_shared(info.user.as_deref(), info.team.as_deref());
        // Priced first: the record takes the canonical model and (when no
        // provider is given) the provider from the cost itself, so building
        // the record allocates each string once.
        let priced = inner
            .prices
            .cost_at(billed_model, &resp.usage, resp.mode, now);
        // The provider as `identity` resolves it: given, the tracker's,
        // the price table's, else guessed from the model id.
        let given = Some(resp.provider.as_str())
            .filter(|p| !p.is_empty())
            .or(inner.provider.as_deref());
        // The price table's shared strings where they fit: no new string.
        let provider = match (given, &priced) {
            (Some(p), Ok(cost)) if cost.provider == p => cost.provider.clone(),
            (Some(p), _) => canonical_provider(p),
            (None, Ok(cost)) => cost.provider.clone(),
            (None, Err(_)) => canonical_provider(
                inner
                    .prices
                    .get(billed_model)
                    .map(|p| p.provider.as_str())
                    .or_else(|| crate::core::provider_for_model(billed_model))
                    .unwrap_or("unknown"),
            ),
        };
        let model = match &priced {
            Ok(cost) => cost.model.clone(),
            Err(_) => SharedStr::from(billed_model),
        };
        let mut rec = CostRecord::new_at(user, provider, model, resp.usage, now);
        rec.team = team;
        rec.mode = resp.mode;
        rec.cached = resp.cached;
        rec.latency_ms = resp.latency.as_millis().min(u128::from(u64::MAX)) as u64;
        rec.request_id = resp.request_id.clone();
        rec.tags = info.tags.clone();
        if let Some(note) = &info.estimated {
            rec.cost_status = crate::CostStatus::Estimated;
            rec.cost_notes.push(note.clone());
        }
        match priced {
            Ok(cost) => {
                rec.price_version = Some(cost.price_version);
                if !cost.status.is_exact() {
                    // A billed dimension the table cannot price: the figure
                    // is a lower bound, and the record says why.
                    rec.cost_status = cost.status;
                    rec.cost_notes = cost.notes;
                }
                if resp.cached {
                    rec.nano_usd = Some(Money::ZERO);
                    rec.saved_nano_usd = Some(cost.total);
                } else {
                    rec.nano_usd = Some(cost.total);
                }
            }
            Err(e) => {
                tracing::warn!(
                    model = %billed_model,
                    error = %e,
                    "call recorded without a cost (nano_usd null): add the model to your price file"
                );
                if resp.cached {
                    rec.nano_usd = Some(Money::ZERO);
                }
            }
        }
        rec
    }
}

/// What is left of recording a call after [`CostTracker::record_now`].
pub(crate) enum Rest {
    /// The book must be awaited to settle the hold; then the append.
    Settle {
        hold: Option<Hold>,
        lines: Arc<Lines>,
        now: DateTime<Utc>,
    },
    /// The book settled (these alerts are due); the append must be awaited.
    Append { alerts: Vec<Alert> },
}

thread_local! {
    /// The last provider name this thread recorded that no price supplied
    /// (a simulated, proxied or custom provider): the next record of the
    /// same provider shares it instead of copying it.
    static LAST_PROVIDER: RefCell<Option<SharedStr>> = const { RefCell::new(None) };
}

/// A provider name as identities use it: trimmed, lower case.
fn canonical_provider(p: &str) -> SharedStr {
    let lowered;
    let name = if p.trim().len() == p.len() && !p.bytes().any(|b| b.is_ascii_uppercase()) {
        p
    } else {
        lowered = p.trim().to_ascii_lowercase();
        lowered.as_str()
    };
    // `try_with` and `try_borrow_mut`: in a thread-local destructor, or
    // re-entered, the name is simply not shared.
    LAST_PROVIDER
        .try_with(|last| {
            let mut last = last.try_borrow_mut().ok()?;
            Some(match &*last {
                Some(s) if *s == *name => s.clone(),
                _ => {
                    let s = SharedStr::from(name);
                    *last = Some(s.clone());
                    s
                }
            })
        })
        .ok()
        .flatten()
        .unwrap_or_else(|| SharedStr::from(name))
}

#[cfg(test)]
mod tests {
    use super::canonical_provider;
    use crate::SharedStr;

    #[test]
    fn provider_names_are_canonical_and_shared_with_the_last_record() {
        let a = canonical_provider("simulated");
        let b = canonical_provider(" Simulated ");
        assert_eq!(b, "simulated");
        assert!(SharedStr::ptr_eq(&a, &b));
        let c = canonical_provider("AcmeProxy");
        assert_eq!(c, "acmeproxy");
        assert_eq!(canonical_provider("simulated"), "simulated");
        assert!(!SharedStr::ptr_eq(&a, &canonical_provider("simulated")));
        assert_eq!(canonical_provider("acmeproxy"), c);
    }
}
