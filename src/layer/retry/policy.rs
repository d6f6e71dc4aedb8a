//! [`RetryPolicy`]: the `tower::retry::Policy` behind [`RetryLayer`](super::RetryLayer).

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::{Instant, Sleep};
use tower::retry::budget::{Budget, TpsBudget};
use tower::retry::Policy;
use tracing::Span;

use crate::{ChatRequest, ChatResponse, ChatStream, Error, StreamRequest};

/// The span field this layer records: how many retries the call took.
pub const RETRIES_FIELD: &str = "costlayer.retries";

/// How a backoff delay is randomised.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Jitter {
    /// "Full jitter": uniform between zero and the exponential delay, so
    /// clients that failed together do not retry together.
    #[default]
    Full,
    /// The exponential delay exactly (for tests and single clients).
    None,
}

/// A retry budget: retries may be at most a fraction of recent requests,
/// plus a small floor, so an outage does not multiply the load on a
/// provider that is already failing (tower's [`TpsBudget`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryBudget {
    ttl: Duration,
    min_per_sec: u32,
    retry_ratio: f32,
}

impl Default for RetryBudget {
    /// Retries up to 20% of the requests of the last 10 seconds, plus 10
    /// retries a second.
    fn default() -> Self {
        RetryBudget {
            ttl: Duration::from_secs(10),
            min_per_sec: 10,
            retry_ratio: 0.2,
        }
    }
}

impl RetryBudget {
    /// Retries may be `retry_ratio` of the requests of the last `ttl`
    /// (0.2 = one retry per five requests), plus `min_per_sec` retries a
    /// second whatever the traffic.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if `ttl` is outside 1–60 s, `retry_ratio` outside
    /// 0–1000 (or not a number), or `min_per_sec` above `i32::MAX`.
    pub fn new(ttl: Duration, min_per_sec: u32, retry_ratio: f32) -> Result<Self, Error> {
        if !(Duration::from_secs(1)..=Duration::from_secs(60)).contains(&ttl) {
            return Err(Error::config(format!(
                "retry budget window {ttl:?} is out of range: use between 1 and 60 seconds"
            )));
        }
        if !(0.0..=1000.0).contains(&retry_ratio) {
            return Err(Error::config(format!(
                "retry budget ratio {retry_ratio} is out of range: use between 0.0 and 1000.0 (0.2 = one retry per five requests)"
            )));
        }
        if min_per_sec >= i32::MAX as u32 {
            return Err(Error::config(
                "retry budget floor is too large: use fewer than 2^31 retries a second",
            ));
        }
        Ok(RetryBudget {
            ttl,
            min_per_sec,
            retry_ratio,
        })
    }

    fn build(self) -> TpsBudget {
        // `new` validated exactly the ranges TpsBudget asserts.
        TpsBudget::new(self.ttl, self.min_per_sec, self.retry_ratio)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) max_attempts: u32,
    pub(crate) base_delay: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) max_elapsed: Option<Duration>,
    pub(crate) max_retry_after: Duration,
    pub(crate) jitter: Jitter,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_attempts: 3,
            base_delay: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            max_elapsed: Some(Duration::from_secs(60)),
            max_retry_after: Duration::from_secs(60),
            jitter: Jitter::Full,
        }
    }
}

/// The retry decision for LLM calls, as a [`tower::retry::Policy`].
///
/// Usable directly with `tower::retry::RetryLayer::new(policy)` when the
/// inner service's error is already [`Error`]; [`RetryLayer`](super::RetryLayer)
/// wraps it for any `S::Error: Into<Error>`. Build it through
/// [`RetryLayer`](super::RetryLayer)'s setters and [`RetryLayer::policy`](super::RetryLayer::policy).
///
/// For each failed attempt, in order:
///
/// 1. a success or an error that is not [`Error::is_retryable`] ends the call
///    (a budget refusal, a bad request, a bad key, an exhausted quota...);
/// 2. after `max_attempts` attempts, the last error is returned;
/// 3. the delay is the error's [`Error::retry_after`] exactly when the
///    provider sent one (if it asks for more than `max_retry_after`, the
///    error is returned at once: retrying sooner would be refused again),
///    else an exponential backoff `min(max_backoff, base_delay × 2^(n−1))`
///    with full jitter;
/// 4. if the delay would end after `max_elapsed` since the call began, the
///    error is returned now;
/// 5. the shared [`RetryBudget`] must allow one more retry.
#[derive(Clone)]
pub struct RetryPolicy {
    pub(crate) settings: Arc<Settings>,
    pub(crate) budget: Option<Arc<TpsBudget>>,
    pub(crate) rng: Arc<Mutex<StdRng>>,
    /// Retries scheduled so far for the current request. Always 0 in the
    /// service's own copy: tower clones the policy into each call's future.
    retries: u32,
    started: Option<Instant>,
}

impl fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("settings", &self.settings)
            .field("budget", &self.budget)
            .field("retries", &self.retries)
            .finish_non_exhaustive()
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            settings: Arc::new(Settings::default()),
            budget: Some(Arc::new(RetryBudget::default().build())),
            rng: Arc::new(Mutex::new(StdRng::from_entropy())),
            retries: 0,
            started: None,
        }
    }
}

/// Whether `result` is worth another attempt: an error that
/// [`Error::is_retryable`] says may succeed later (429, 503, 529, 500, 502,
/// 504, timeouts, connection failures).
pub fn should_retry(result: &Result<ChatResponse, Error>) -> bool {
    matches!(result, Err(e) if e.is_retryable())
}

impl RetryPolicy {
    pub(crate) fn set_budget(&mut self, budget: Option<RetryBudget>) {
        self.budget = budget.map(|b| Arc::new(b.build()));
    }

    /// The exponential delay before retry number `n` (1-based), jittered.
    pub(crate) fn backoff(&self, n: u32) -> Duration {
        let s = &self.settings;
        let factor = 1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX);
        let ceiling = s.base_delay.saturating_mul(factor).min(s.max_backoff);
        match s.jitter {
            Jitter::None => ceiling,
            Jitter::Full => {
                let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
                let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
                Duration::from_nanos(rng.gen_range(0..=nanos))
            }
        }
    }

    fn give_up(&self, attempt: u32, err: &Error, why: &'static str) {
        tracing::debug!(attempt, error = %err, reason = why, "costlayer: not retrying");
    }
}

impl RetryPolicy {
    /// The decision after an attempt, shared by single calls and streams
    /// (a stream's attempt ends when its first delta arrived, so a stream is
    /// only ever retried before the caller saw anything).
    fn decide(&mut self, err: Option<&Error>) -> Option<Sleep> {
        let attempt = self.retries + 1;
        let Some(err) = err else {
            tracing::trace!(attempt, "costlayer: attempt succeeded");
            return None;
        };
        if !err.is_retryable() {
            self.give_up(attempt, err, "not retryable");
            return None;
        }
        let s = &self.settings;
        if attempt >= s.max_attempts {
            self.give_up(attempt, err, "max attempts reached");
            return None;
        }
        let delay = match err.retry_after() {
            Some(after) if after > s.max_retry_after => {
                self.give_up(attempt, err, "Retry-After is longer than max_retry_after");
                return None;
            }
            Some(after) => after,
            None => self.backoff(attempt),
        };
        if let (Some(max), Some(started)) = (s.max_elapsed, self.started) {
            if started.elapsed().saturating_add(delay) > max {
                self.give_up(attempt, err, "max elapsed time reached");
                return None;
            }
        }
        if let Some(budget) = &self.budget {
            if !budget.withdraw() {
                self.give_up(attempt, err, "retry budget exhausted");
                return None;
            }
        }
        self.retries += 1;
        // Recorded when it changes, never for a call that is not retried.
        Span::current().record(RETRIES_FIELD, self.retries);
        tracing::info!(
            attempt,
            error = %err,
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            "costlayer: retrying"
        );
        Some(tokio::time::sleep(delay))
    }

    /// Called as a request is cloned for an attempt.
    fn on_clone(&mut self) {
        if self.retries == 0 {
            // The service's own policy, just before a new call: the clone
            // tower takes next carries this start time into the call.
            self.started = Some(Instant::now());
            if let Some(budget) = &self.budget {
                budget.deposit();
            }
        }
    }
}

impl Policy<ChatRequest, ChatResponse, Error> for RetryPolicy {
    type Future = Sleep;

    fn retry(
        &mut self,
        _req: &mut ChatRequest,
        result: &mut Result<ChatResponse, Error>,
    ) -> Option<Self::Future> {
        self.decide(result.as_ref().err())
    }

    fn clone_request(&mut self, req: &ChatRequest) -> Option<ChatRequest> {
        self.on_clone();
        // A policy that never retries needs no copy of the request.
        if self.settings.max_attempts <= 1 {
            return None;
        }
        // Every ChatRequest can be cloned, so every call can be retried.
        Some(req.clone())
    }
}

/// Streams: the attempt is the call up to the first delta (see
/// [`costlayer_core::stream`]); after it, nothing is retried.
impl Policy<StreamRequest, ChatStream, Error> for RetryPolicy {
    type Future = Sleep;

    fn retry(
        &mut self,
        _req: &mut StreamRequest,
        result: &mut Result<ChatStream, Error>,
    ) -> Option<Self::Future> {
        self.decide(result.as_ref().err())
    }

    fn clone_request(&mut self, req: &StreamRequest) -> Option<StreamRequest> {
        self.on_clone();
        Some(req.clone())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn budget_validation() {
        assert!(RetryBudget::new(Duration::from_millis(500), 1, 0.2).is_err());
        assert!(RetryBudget::new(Duration::from_secs(61), 1, 0.2).is_err());
        assert!(RetryBudget::new(Duration::from_secs(10), 1, -0.1).is_err());
        assert!(RetryBudget::new(Duration::from_secs(10), 1, f32::NAN).is_err());
        let e = RetryBudget::new(Duration::from_secs(10), u32::MAX, 0.2).unwrap_err();
        assert!(e.to_string().contains("configuration error"), "{e}");
        assert!(RetryBudget::new(Duration::from_secs(10), 0, 0.0).is_ok());
    }

    #[test]
    fn exponential_and_capped_without_jitter() {
        let mut p = RetryPolicy::default();
        Arc::make_mut(&mut p.settings).jitter = Jitter::None;
        let ms: Vec<u128> = (1..=7).map(|n| p.backoff(n).as_millis()).collect();
        assert_eq!(ms, [500, 1000, 2000, 4000, 8000, 8000, 8000]);
        assert_eq!(p.backoff(200), Duration::from_secs(8));
    }

    #[test]
    fn full_jitter_is_bounded_and_reproducible() {
        let mk = || RetryPolicy {
            rng: Arc::new(Mutex::new(StdRng::seed_from_u64(7))),
            ..RetryPolicy::default()
        };
        let (a, b) = (mk(), mk());
        let xs: Vec<Duration> = (1..=20).map(|n| a.backoff(n)).collect();
        let ys: Vec<Duration> = (1..=20).map(|n| b.backoff(n)).collect();
        assert_eq!(xs, ys);
        for (i, d) in xs.iter().enumerate() {
            let ceiling =
                Duration::from_millis(500 * (1u64 << i.min(4))).min(Duration::from_secs(8));
            assert!(*d <= ceiling, "{i}: {d:?} > {ceiling:?}");
        }
        // Jitter happened: the delays are not simply the ceilings.
        assert!(xs.iter().skip(5).any(|d| *d < Duration::from_secs(7)));
    }
}
