//! The limiter seam: buckets kept outside the process ([`SharedBuckets`]),
//! so a fleet of processes shares one set of requests- and tokens-per-minute
//! ceilings.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::Quota;

/// The error of a [`SharedBuckets`] call: the store could not be reached
/// or refused the command.
pub type SharedBucketsError = Box<dyn std::error::Error + Send + Sync>;

/// Token buckets kept outside the process (Redis, ...), shared by every
/// process that names the same store and key.
///
/// [`RateLimitLayer::shared`](super::RateLimitLayer::shared) puts one behind
/// the layer; the in-process buckets stay as the fallback when the store
/// is unreachable and the policy is [`OnUnreachable::FailOpen`].
///
/// Both methods must be atomic in the store: of several processes taking
/// at once, each sees the others' takes.
#[async_trait]
pub trait SharedBuckets: Send + Sync + fmt::Debug + 'static {
    /// Takes one request and `tokens` tokens from `key`'s buckets (those
    /// `quota` has) if both hold enough, and returns `None`; otherwise
    /// takes nothing and returns how long until they would.
    async fn take(
        &self,
        key: &str,
        quota: &Quota,
        tokens: u64,
    ) -> Result<Option<Duration>, SharedBucketsError>;

    /// Corrects `key`'s token bucket once the call was billed: a positive
    /// `delta` refunds tokens (up to the burst), a negative one charges
    /// them as debt.
    async fn adjust(&self, key: &str, quota: &Quota, delta: i64) -> Result<(), SharedBucketsError>;
}

/// What a limiter (or cache) does when its shared store cannot be reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OnUnreachable {
    /// Carry on without it: the rate limiter falls back to its in-process
    /// buckets (each process then enforces the quota on its own), the cache
    /// calls the provider. A warning is logged (at most every 10 s).
    #[default]
    FailOpen,
    /// Refuse the call with [`Error::Connection`](crate::Error::Connection):
    /// no call goes out unaccounted.
    FailClosed,
}

/// The shared buckets behind a limiter, and the policy.
#[derive(Clone)]
pub(crate) struct Remote {
    pub(crate) buckets: Arc<dyn SharedBuckets>,
    pub(crate) on_unreachable: OnUnreachable,
    last_warning: Arc<AtomicU64>,
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote")
            .field("buckets", &self.buckets)
            .field("on_unreachable", &self.on_unreachable)
            .finish()
    }
}

impl Remote {
    pub(crate) fn new(buckets: Arc<dyn SharedBuckets>, on_unreachable: OnUnreachable) -> Self {
        Remote {
            buckets,
            on_unreachable,
            last_warning: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Logs that the store is unreachable, at most every 10 s.
    pub(crate) fn warn(&self, key: &str, e: &SharedBucketsError) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let last = self.last_warning.load(Ordering::Relaxed);
        if now >= last + 10
            && self
                .last_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(key, error = %e, "costlayer: shared rate limits unreachable; enforcing in-process limits only (fail open)");
        }
    }
}

/// A permit's claim on shared buckets, corrected when it is settled.
#[derive(Debug)]
pub(crate) struct RemotePermit {
    pub(crate) buckets: Arc<dyn SharedBuckets>,
    pub(crate) key: String,
    pub(crate) quota: Quota,
}

impl RemotePermit {
    /// Sends the correction in the background (settling is synchronous).
    pub(crate) fn adjust(self, delta: i64) {
        if delta == 0 || self.quota.tokens().is_none() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(key = %self.key, delta, "costlayer: no async runtime to correct the shared token bucket");
            return;
        };
        rt.spawn(async move {
            if let Err(e) = self.buckets.adjust(&self.key, &self.quota, delta).await {
                tracing::warn!(key = %self.key, delta, error = %e, "costlayer: cannot correct the shared token bucket");
            }
        });
    }
}
