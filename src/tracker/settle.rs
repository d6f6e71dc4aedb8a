//! Reservations: the pre-flight hold on a call's worst case, and its release.

use std::fmt;
use std::sync::Arc;

use super::{CostTracker, Inner, State, UnpricedPolicy};
use crate::budget::Action;
use crate::{ChatRequest, Error, Money};

/// A call's hold on its worst-case cost in every blocking budget it falls
/// under. Returned by [`CostTracker::reserve`]; pass it to
/// [`CostTracker::record`] to settle it to the billed cost.
///
/// Dropping it without recording (the call failed, timed out, or its future
/// was dropped) releases the hold.
#[must_use = "dropping a Reservation releases it at once"]
pub struct Reservation {
    pub(super) inner: Option<Arc<Inner>>,
    pub(super) holds: Vec<(usize, Money)>,
    pub(super) estimate: Option<Money>,
    pub(super) unpriced: bool,
}

impl fmt::Debug for Reservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("estimate", &self.estimate)
            .field("budgets", &self.holds.len())
            .field("unpriced", &self.unpriced)
            .finish()
    }
}

impl Reservation {
    /// A reservation that holds nothing.
    pub fn none() -> Self {
        Reservation {
            inner: None,
            holds: Vec::new(),
            estimate: None,
            unpriced: false,
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
        self.holds.is_empty()
    }

    pub(super) fn release_in(&mut self, state: &mut State) {
        for (i, amount) in self.holds.drain(..) {
            if let Some(b) = state.budgets.get_mut(i) {
                b.reserved = b.reserved.saturating_sub(amount).max(Money::ZERO);
            }
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.holds.is_empty() {
            return;
        }
        if let Some(inner) = self.inner.take() {
            let mut st = inner.lock();
            self.release_in(&mut st);
        }
    }
}

impl CostTracker {
    /// The budget pre-flight: reserves the worst-case cost of `req` in every
    /// blocking budget whose scope and current period it falls in, or
    /// refuses it. The provider must not be called when this fails.
    ///
    /// With no blocking budget in scope this returns an empty reservation
    /// without estimating anything.
    ///
    /// # Errors
    ///
    /// - [`Error::BudgetExceeded`] if `spent + reserved + estimate` would
    ///   exceed a blocking budget's limit (the first such budget is named).
    /// - [`Error::LedgerUnwritable`] if the ledger cannot be written (a
    ///   read-only or full disk, a data directory that is a file): the call
    ///   would be billed without a record.
    /// - [`Error::UnpricedModel`] for a model without a price under
    ///   [`UnpricedPolicy::Reject`].
    /// - The storage's error if the budgets' totals could not be loaded.
    pub async fn reserve(&self, req: &ChatRequest) -> Result<Reservation, Error> {
        // Never send a call whose record could not be written.
        self.preflight().await?;
        let inner = &self.inner;
        if !inner.budgets.iter().any(|b| b.action == Action::Block) {
            return Ok(Reservation::none());
        }
        let now = inner.clock.now();
        self.ensure_current(now).await?;
        let price = inner.prices.get(&req.model);
        let (user, team) = self.attribution(req.user.as_deref(), req.team.as_deref());
        let provider = price
            .map(|p| p.provider.as_str())
            .or_else(|| req.provider_hint())
            .unwrap_or("unknown");
        let model = price.map_or(req.model.as_str(), |p| p.model.as_str());
        let in_scope: Vec<usize> = inner
            .budgets
            .iter()
            .enumerate()
            .filter(|(_, b)| {
                b.action == Action::Block && b.scope.matches(user, team, provider, model)
            })
            .map(|(i, _)| i)
            .collect();
        if in_scope.is_empty() {
            return Ok(Reservation::none());
        }
        let estimate = match self.estimate(req) {
            Some(e) => e,
            None => match inner.unpriced {
                UnpricedPolicy::Reject => {
                    return Err(Error::UnpricedModel {
                        model: req.model.clone(),
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
                    return Ok(r);
                }
            },
        };
        let mut st = inner.lock();
        let active: Vec<usize> = in_scope
            .into_iter()
            .filter(|&i| {
                st.budgets[i]
                    .period
                    .as_ref()
                    .is_some_and(|p| p.contains(now))
            })
            .collect();
        for &i in &active {
            let (b, s) = (&inner.budgets[i], &st.budgets[i]);
            let committed = s.spent.saturating_add(s.reserved);
            let would_be = committed.checked_add(estimate).unwrap_or(Money::MAX);
            if would_be > b.limit {
                return Err(Error::BudgetExceeded {
                    budget: b.name.clone(),
                    spent: committed,
                    limit: b.limit,
                    estimate,
                });
            }
        }
        let mut holds = Vec::with_capacity(active.len());
        for i in active {
            let s = &mut st.budgets[i];
            s.reserved = s.reserved.saturating_add(estimate);
            holds.push((i, estimate));
        }
        drop(st);
        Ok(Reservation {
            inner: Some(inner.clone()),
            holds,
            estimate: Some(estimate),
            unpriced: false,
        })
    }
}
