//! The worst-case cost of a request.

use super::CostTracker;
use crate::pricing::PricingError;
use crate::{ChatRequest, Mode, Money, Usage};

impl CostTracker {
    /// The worst-case cost of `req`: its prompt estimated with the
    /// tracker's [`Estimator`](crate::estimate::Estimator) (a strict upper bound by default), plus its
    /// `max_tokens` (or the estimator's default), at the model's online
    /// rates, with the whole prompt priced at the dearest of the input and
    /// cache-write rates. `None` if the model has no price.
    pub fn estimate(&self, req: &ChatRequest) -> Option<Money> {
        self.estimate_at(req, Mode::Online)
    }

    /// The worst-case cost of `req` sent through a provider's Batch API:
    /// as [`estimate`](Self::estimate), at the model's batch rates.
    pub fn estimate_batch(&self, req: &ChatRequest) -> Option<Money> {
        self.estimate_at(req, Mode::Batch)
    }

    fn estimate_at(&self, req: &ChatRequest, mode: Mode) -> Option<Money> {
        let inner = &self.inner;
        inner.prices.get(&req.model)?;
        let now = inner.clock.now();
        let prompt = inner.estimator.prompt_tokens(req);
        let output = inner.estimator.max_output_tokens(req);
        let shapes = [
            Usage::new(prompt, output),
            Usage {
                cache_write_5m_tokens: prompt,
                output_tokens: output,
                ..Usage::default()
            },
            Usage {
                cache_write_1h_tokens: prompt,
                output_tokens: output,
                ..Usage::default()
            },
        ];
        shapes
            .iter()
            .map(|u| match inner.prices.total_at(&req.model, u, mode, now) {
                Ok(c) => Some(c),
                Err(PricingError::Overflow { .. }) => Some(Money::MAX),
                Err(_) => None,
            })
            .try_fold(Money::ZERO, |acc, c| c.map(|c| acc.max(c)))
    }
}
