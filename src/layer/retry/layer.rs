//! [`RetryLayer`].

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::SeedableRng;
use tower::Layer;

use super::policy::{Jitter, RetryBudget, RetryPolicy};
use super::service::{IntoError, Retry};

/// Retries transient failures with exponential backoff; see the
/// [module docs](super) and [`RetryPolicy`] for the exact rules.
///
/// Every service built from one layer (and every clone of them) shares the
/// retry budget and the jitter source.
///
/// ```
/// use std::num::NonZeroU32;
/// use std::time::Duration;
/// use costlayer::layer::retry::RetryLayer;
///
/// let layer = RetryLayer::new()
///     .max_attempts(NonZeroU32::new(5).unwrap())
///     .base_delay(Duration::from_millis(250))
///     .max_elapsed(Duration::from_secs(30));
/// # let _ = layer;
/// ```
#[derive(Debug, Clone, Default)]
pub struct RetryLayer {
    policy: RetryPolicy,
}

impl RetryLayer {
    /// A layer with the defaults of each setter below.
    pub fn new() -> Self {
        Self::default()
    }

    fn settings(&mut self) -> &mut super::policy::Settings {
        Arc::make_mut(&mut self.policy.settings)
    }

    /// The most attempts per call, the first included (`1` disables
    /// retries). Defaults to 3.
    pub fn max_attempts(mut self, attempts: NonZeroU32) -> Self {
        self.settings().max_attempts = attempts.get();
        self
    }

    /// The backoff before the first retry; it doubles with each retry.
    /// Defaults to 500 ms.
    pub fn base_delay(mut self, delay: Duration) -> Self {
        self.settings().base_delay = delay;
        self
    }

    /// The longest exponential backoff (before jitter). Defaults to 8 s.
    pub fn max_backoff(mut self, delay: Duration) -> Self {
        self.settings().max_backoff = delay;
        self
    }

    /// No retry starts if its delay would end more than `max` after the
    /// call began. Defaults to 60 s.
    pub fn max_elapsed(mut self, max: Duration) -> Self {
        self.settings().max_elapsed = Some(max);
        self
    }

    /// Retries are bounded by `max_attempts` alone, not by time.
    pub fn no_max_elapsed(mut self) -> Self {
        self.settings().max_elapsed = None;
        self
    }

    /// The longest `Retry-After` honoured. A provider asking for more ends
    /// the retries: the error, with its `retry_after`, is returned to the
    /// caller. Defaults to 60 s.
    pub fn max_retry_after(mut self, max: Duration) -> Self {
        self.settings().max_retry_after = max;
        self
    }

    /// How backoff delays are randomised. Defaults to [`Jitter::Full`].
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.settings().jitter = jitter;
        self
    }

    /// Seeds the jitter's random number generator, making the delays
    /// reproducible (for tests). Defaults to a seed from the OS.
    pub fn seed(mut self, seed: u64) -> Self {
        self.policy.rng = Arc::new(Mutex::new(StdRng::seed_from_u64(seed)));
        self
    }

    /// The retry budget shared by all services of this layer. Defaults to
    /// [`RetryBudget::default`] (20% of recent requests, plus 10 a second).
    pub fn budget(mut self, budget: RetryBudget) -> Self {
        self.policy.set_budget(Some(budget));
        self
    }

    /// No retry budget: only `max_attempts` and `max_elapsed` bound retries.
    pub fn no_budget(mut self) -> Self {
        self.policy.set_budget(None);
        self
    }

    /// The policy, for use with `tower::retry::Retry` directly.
    pub fn policy(&self) -> RetryPolicy {
        self.policy.clone()
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = Retry<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry {
            inner: tower::retry::Retry::new(self.policy.clone(), IntoError { inner }),
        }
    }
}
