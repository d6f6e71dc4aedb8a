use tower::Layer;

use super::CostService;
use crate::tracker::CostTracker;

/// Wraps a service in a [`CostService`] recording into a [`CostTracker`].
///
/// Clones share the tracker (its totals, reservations and alert state).
#[derive(Debug, Clone)]
pub struct CostLayer {
    tracker: CostTracker,
}

impl CostLayer {
    /// A layer recording into `tracker`.
    pub const fn new(tracker: CostTracker) -> Self {
        CostLayer { tracker }
    }

    /// The tracker.
    pub fn tracker(&self) -> &CostTracker {
        &self.tracker
    }
}

impl<S> Layer<S> for CostLayer {
    type Service = CostService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CostService::new(inner, self.tracker.clone())
    }
}
