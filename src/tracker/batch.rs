//! Holds that outlive their process: a batch job's reservation.

use chrono::{DateTime, Utc};

use super::book::Reserved;
use super::{CostTracker, UnpricedPolicy};
use crate::budget::Action;
use crate::{ChatRequest, Error, Money};

/// A hold taken by [`CostTracker::reserve_detached`]: kept in the budget
/// book under `id` until released or until `expires`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DetachedHold {
    /// The hold's id in the book.
    pub id: String,
    /// The amount held in each budget.
    pub amount: Money,
    /// The blocking budgets it is held in, by name.
    pub budgets: Vec<String>,
    /// When the book drops it if nobody released it.
    pub expires: DateTime<Utc>,
}

impl CostTracker {
    /// Holds `amount` (the worst case of `requests`, `None` when one of
    /// them has no price) in every blocking budget whose scope and current
    /// period any of `requests` falls in, under `id` until `expires`,
    /// whatever happens to this process (see
    /// [`BudgetBook::reserve_detached`](super::book::BudgetBook::reserve_detached)).
    /// Returns `None` when no blocking budget applies. Reserving an `id`
    /// already held holds nothing more.
    ///
    /// # Errors
    ///
    /// As [`CostTracker::reserve`]: [`Error::BudgetExceeded`] naming the
    /// first budget the amount does not fit in (nothing is held),
    /// [`Error::LedgerUnwritable`], [`Error::UnpricedModel`] under
    /// [`UnpricedPolicy::Reject`], or the book's error.
    pub async fn reserve_detached(
        &self,
        requests: &[ChatRequest],
        amount: Option<Money>,
        id: &str,
        expires: DateTime<Utc>,
    ) -> Result<Option<DetachedHold>, Error> {
        self.preflight().await?;
        let inner = &self.inner;
        if !inner.budgets.iter().any(|b| b.action == Action::Block) {
            return Ok(None);
        }
        let now = inner.clock.now();
        let lines = self.lines(now);
        let in_scope: Vec<_> = inner
            .budgets
            .iter()
            .zip(&lines.all)
            .filter(|(b, (p, _))| {
                b.action == Action::Block
                    && p.contains(now)
                    && requests.iter().any(|req| {
                        let (user, team) =
                            self.attribution(req.user.as_deref(), req.team.as_deref());
                        let (provider, model) = self.identity(None, &req.model);
                        b.scope.matches(user, team, &provider, &model)
                    })
            })
            .map(|(_, (_, line))| line.clone())
            .collect();
        if in_scope.is_empty() {
            return Ok(None);
        }
        let amount = match (amount, inner.unpriced) {
            (Some(a), _) => a,
            (None, UnpricedPolicy::ReserveCap(cap)) => cap,
            (None, UnpricedPolicy::Allow) => {
                tracing::warn!("a batch with an unpriced model is let through a blocking budget unreserved (UnpricedPolicy::Allow)");
                return Ok(None);
            }
            (None, _) => {
                let model = requests
                    .iter()
                    .find(|r| self.estimate_batch(r).is_none())
                    .map_or_else(String::new, |r| r.model.to_string());
                return Err(Error::UnpricedModel { model });
            }
        };
        match inner
            .book
            .reserve_detached(&in_scope, amount, id, expires)
            .await?
        {
            Reserved::Granted { hold, .. } => Ok(Some(DetachedHold {
                id: id.to_owned(),
                amount: hold.amount,
                budgets: in_scope.iter().map(|l| l.key.budget.to_string()).collect(),
                expires,
            })),
            Reserved::Refused { key, totals } => {
                let user = self.user().to_owned();
                Err(self.refused(key, &totals, &in_scope, &user, now, amount))
            }
            #[allow(unreachable_patterns)]
            _ => Err(Error::config("the budget book gave an unknown answer")),
        }
    }

    /// Releases the detached hold `id`, from any process sharing the book.
    /// A hold already gone is not an error.
    ///
    /// # Errors
    ///
    /// The book's error.
    pub async fn release_detached(&self, id: &str) -> Result<(), Error> {
        Ok(self.inner.book.release_detached(id).await?)
    }
}

impl CostTracker {
    /// The output tokens a reservation assumes for `req` (its `max_tokens`,
    /// or the estimator's default).
    pub(crate) fn output_cap_for(&self, req: &ChatRequest) -> u32 {
        u32::try_from(self.inner.estimator.max_output_tokens(req)).unwrap_or(u32::MAX)
    }
}
