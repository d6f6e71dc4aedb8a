//! The [`ResponseCache`] trait and its in-process implementation,
//! [`MokaCache`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::CacheKey;
use crate::{ChatResponse, Error};

/// The provider call a cache runs on a miss: borrowed from the calling
/// layer's own future, so a lookup allocates nothing for it (and a hit
/// drops it unpolled). Await it at most once.
pub type Fetch<'a> = Pin<&'a mut (dyn Future<Output = Result<ChatResponse, Error>> + Send + 'a)>;

/// What a [`ResponseCache::get_or_fetch`] lookup found.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Lookup {
    /// Served from the cache (or from a concurrent identical call that was
    /// in flight): the provider was not called for this request.
    Hit(ChatResponse),
    /// The provider was called and its answer stored.
    Miss(ChatResponse),
}

/// Where [`CacheLayer`](super::CacheLayer) keeps responses.
///
/// [`MokaCache`] is the in-process implementation; a shared cache (Redis,
/// memcached) implements the same trait. The trait is object safe:
/// the layer holds an `Arc<dyn ResponseCache>`.
///
/// Implementations must never store an error.
///
/// # Example: a cache that stores nothing
///
/// ```
/// use async_trait::async_trait;
/// use costlayer::layer::cache::{CacheKey, ResponseCache};
/// use costlayer::ChatResponse;
///
/// #[derive(Debug)]
/// struct NoCache;
///
/// #[async_trait]
/// impl ResponseCache for NoCache {
///     async fn get(&self, _: &CacheKey) -> Option<ChatResponse> { None }
///     async fn insert(&self, _: CacheKey, _: ChatResponse) {}
///     async fn invalidate(&self, _: &CacheKey) {}
/// }
/// let _: std::sync::Arc<dyn ResponseCache> = std::sync::Arc::new(NoCache);
/// ```
#[async_trait]
pub trait ResponseCache: Send + Sync + fmt::Debug + 'static {
    /// The stored response for `key`, if any.
    async fn get(&self, key: &CacheKey) -> Option<ChatResponse>;

    /// Stores `response` under `key`.
    async fn insert(&self, key: CacheKey, response: ChatResponse);

    /// Removes the entry for `key`.
    async fn invalidate(&self, key: &CacheKey);

    /// The stored response, or the result of `fetch`, which is stored if it
    /// succeeds. An error is returned and never stored.
    ///
    /// The default does a [`get`](Self::get), then `fetch` and
    /// [`insert`](Self::insert): concurrent misses for one key each call
    /// the provider. Implementations that can should coalesce them, as
    /// [`MokaCache`] does.
    ///
    /// # Errors
    ///
    /// The error `fetch` returned.
    async fn get_or_fetch(&self, key: CacheKey, fetch: Fetch<'_>) -> Result<Lookup, Error> {
        if let Some(hit) = self.get(&key).await {
            return Ok(Lookup::Hit(hit));
        }
        let resp = fetch.await?;
        self.insert(key, resp.clone()).await;
        Ok(Lookup::Miss(resp))
    }
}

/// Roughly how many bytes a response occupies in memory, for the weigher.
fn weight(resp: &ChatResponse) -> u32 {
    let mut n = std::mem::size_of::<ChatResponse>()
        + resp.provider.len()
        + resp.model.len()
        + resp.text.len()
        + resp.request_id.as_ref().map_or(0, |id| id.len());
    for call in &resp.tool_calls {
        n += std::mem::size_of_val(call) + call.id.len() + call.name.len() + call.arguments.len();
    }
    if let Some(raw) = &resp.raw_usage {
        // A usage object is small; its serialised length is a fair estimate.
        n += raw.to_string().len();
    }
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Builds a [`MokaCache`].
#[derive(Debug, Clone)]
pub struct MokaCacheBuilder {
    max_bytes: u64,
    ttl: Option<Duration>,
    tti: Option<Duration>,
}

impl Default for MokaCacheBuilder {
    fn default() -> Self {
        MokaCacheBuilder {
            max_bytes: 64 * 1024 * 1024,
            ttl: Some(Duration::from_secs(3600)),
            tti: None,
        }
    }
}

impl MokaCacheBuilder {
    /// The most memory the entries may use, in bytes (each weighted by its
    /// approximate size). Defaults to 64 MiB.
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// How long an entry is served after it was stored. Defaults to one hour.
    pub fn time_to_live(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Entries never expire by age (they may still be evicted for size or
    /// idleness).
    pub fn no_time_to_live(mut self) -> Self {
        self.ttl = None;
        self
    }

    /// How long an entry lives after it was last read (moka's own clock).
    /// Defaults to none.
    pub fn time_to_idle(mut self, tti: Duration) -> Self {
        self.tti = Some(tti);
        self
    }

    /// Builds the cache.
    pub fn build(self) -> MokaCache {
        let mut b = moka::future::Cache::builder()
            .max_capacity(self.max_bytes)
            .weigher(|_k: &CacheKey, v: &Arc<Stored>| weight(&v.response));
        if let Some(ttl) = self.ttl {
            // moka frees expired entries on its own (real) clock; the check
            // on read below uses tokio's clock, so paused-clock tests and
            // production agree on what is served.
            b = b.time_to_live(ttl);
        }
        if let Some(tti) = self.tti {
            b = b.time_to_idle(tti);
        }
        MokaCache {
            // foldhash, seeded per cache: the key is a BLAKE3 digest, and
            // SipHash over it was a tenth of a hit.
            inner: b.build_with_hasher(foldhash::fast::RandomState::default()),
            ttl: self.ttl,
        }
    }
}

#[derive(Debug)]
struct Stored {
    response: ChatResponse,
    at: tokio::time::Instant,
}

/// An in-process [`ResponseCache`] on [moka](https://docs.rs/moka):
/// size-weighted capacity, time to live and time to idle, and concurrent
/// misses for one key coalesced into a single provider call.
///
/// Cloning is cheap and shares the entries.
///
/// The time to live is checked on every read against tokio's clock
/// (`tokio::time::Instant`, so tests on a paused clock can age entries), and
/// enforced by moka in the background to free memory. The time to idle is
/// moka's alone (the system's monotonic clock).
///
/// ```
/// use std::time::Duration;
/// use costlayer::layer::cache::MokaCache;
///
/// let cache = MokaCache::builder()
///     .max_bytes(16 * 1024 * 1024)
///     .time_to_live(Duration::from_secs(600))
///     .build();
/// assert_eq!(cache.entry_count(), 0);
/// ```
#[derive(Clone)]
pub struct MokaCache {
    inner: moka::future::Cache<CacheKey, Arc<Stored>, foldhash::fast::RandomState>,
    ttl: Option<Duration>,
}

impl fmt::Debug for MokaCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MokaCache")
            .field("entries", &self.inner.entry_count())
            .field("weighted_size", &self.inner.weighted_size())
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl Default for MokaCache {
    fn default() -> Self {
        MokaCacheBuilder::default().build()
    }
}

impl MokaCache {
    /// A builder. See [`MokaCacheBuilder`] for the defaults.
    pub fn builder() -> MokaCacheBuilder {
        MokaCacheBuilder::default()
    }

    /// How many entries the cache holds (approximate until pending
    /// maintenance has run; see [`MokaCache::run_pending_tasks`]).
    pub fn entry_count(&self) -> u64 {
        self.inner.entry_count()
    }

    /// The entries' total weight in bytes (approximate, as above).
    pub fn weighted_size(&self) -> u64 {
        self.inner.weighted_size()
    }

    /// Runs moka's pending maintenance (evictions, expirations, counters)
    /// now instead of lazily.
    pub async fn run_pending_tasks(&self) {
        self.inner.run_pending_tasks().await;
    }

    fn fresh(&self, stored: &Stored) -> bool {
        self.ttl.is_none_or(|ttl| stored.at.elapsed() < ttl)
    }

    /// The fresh entry for `key`; an expired one is removed.
    async fn lookup(&self, key: &CacheKey) -> Option<Arc<Stored>> {
        let stored = self.inner.get(key).await?;
        if self.fresh(&stored) {
            Some(stored)
        } else {
            self.inner.invalidate(key).await;
            None
        }
    }
}

#[async_trait]
impl ResponseCache for MokaCache {
    async fn get(&self, key: &CacheKey) -> Option<ChatResponse> {
        self.lookup(key).await.map(|s| s.response.clone())
    }

    async fn insert(&self, key: CacheKey, response: ChatResponse) {
        let at = tokio::time::Instant::now();
        self.inner
            .insert(key, Arc::new(Stored { response, at }))
            .await;
    }

    async fn invalidate(&self, key: &CacheKey) {
        self.inner.invalidate(key).await;
    }

    async fn get_or_fetch(&self, key: CacheKey, fetch: Fetch<'_>) -> Result<Lookup, Error> {
        if let Some(hit) = self.lookup(&key).await {
            return Ok(Lookup::Hit(hit.response.clone()));
        }
        // `try_get_with` runs at most one `init` per key at a time; the other
        // callers wait for it and share its result. Only the caller whose
        // future ran sees `ran == true`: for everyone else it is a hit.
        let ran = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&ran);
        let init = async move {
            flag.store(true, Ordering::Relaxed);
            let response = fetch.await?;
            Ok::<_, Error>(Arc::new(Stored {
                response,
                at: tokio::time::Instant::now(),
            }))
        };
        match self.inner.try_get_with(key, init).await {
            Ok(stored) if ran.load(Ordering::Relaxed) => Ok(Lookup::Miss(stored.response.clone())),
            Ok(stored) => Ok(Lookup::Hit(stored.response.clone())),
            Err(shared) => Err(unshare(shared)),
        }
    }
}

/// The error of a coalesced call, for one of the callers that shared it:
/// the last holder gets the original, the others a copy with the same
/// variant and fields (an [`Error::Other`] is copied as its message).
fn unshare(err: Arc<Error>) -> Error {
    match Arc::try_unwrap(err) {
        Ok(e) => e,
        Err(shared) => copy_error(&shared),
    }
}

pub(crate) fn copy_error(e: &Error) -> Error {
    match e {
        Error::RateLimited {
            provider,
            message,
            retry_after,
        } => Error::RateLimited {
            provider: provider.clone(),
            message: message.clone(),
            retry_after: *retry_after,
        },
        Error::QuotaExceeded { provider, message } => Error::QuotaExceeded {
            provider: provider.clone(),
            message: message.clone(),
        },
        Error::Overloaded {
            provider,
            status,
            message,
            retry_after,
        } => Error::Overloaded {
            provider: provider.clone(),
            status: *status,
            message: message.clone(),
            retry_after: *retry_after,
        },
        Error::Authentication {
            provider,
            status,
            message,
        } => Error::Authentication {
            provider: provider.clone(),
            status: *status,
            message: message.clone(),
        },
        Error::ContextLengthExceeded { provider, message } => Error::ContextLengthExceeded {
            provider: provider.clone(),
            message: message.clone(),
        },
        Error::InvalidRequest {
            provider,
            status,
            message,
        } => Error::InvalidRequest {
            provider: provider.clone(),
            status: *status,
            message: message.clone(),
        },
        Error::Server {
            provider,
            status,
            message,
            retry_after,
        } => Error::Server {
            provider: provider.clone(),
            status: *status,
            message: message.clone(),
            retry_after: *retry_after,
        },
        Error::Timeout { provider, after } => Error::Timeout {
            provider: provider.clone(),
            after: *after,
        },
        Error::Connection { provider, message } => Error::Connection {
            provider: provider.clone(),
            message: message.clone(),
        },
        Error::Decode {
            provider,
            message,
            body_snippet,
        } => Error::Decode {
            provider: provider.clone(),
            message: message.clone(),
            body_snippet: body_snippet.clone(),
        },
        Error::BudgetExceeded {
            budget,
            spent,
            limit,
            estimate,
        } => Error::BudgetExceeded {
            budget: budget.clone(),
            spent: *spent,
            limit: *limit,
            estimate: *estimate,
        },
        Error::UnpricedModel { model } => Error::UnpricedModel {
            model: model.clone(),
        },
        Error::InsufficientCapacity {
            requested,
            capacity,
            unit,
        } => Error::InsufficientCapacity {
            requested: *requested,
            capacity: *capacity,
            unit,
        },
        Error::Config { message } => Error::Config {
            message: message.clone(),
        },
        other => Error::Other(other.to_string().into()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn _obj_safe(_: Arc<dyn ResponseCache>) {}

    #[test]
    fn copies_keep_variant_and_fields() {
        let e = Error::RateLimited {
            provider: "openai".into(),
            message: "slow down".into(),
            retry_after: Some(Duration::from_secs(3)),
        };
        let c = copy_error(&e);
        assert!(c.is_retryable());
        assert_eq!(c.retry_after(), Some(Duration::from_secs(3)));
        assert_eq!(c.to_string(), e.to_string());
        let other = Error::Other("disk full".into());
        assert_eq!(copy_error(&other).to_string(), "disk full");
    }

    #[test]
    fn weight_grows_with_text() {
        let small = ChatResponse::default();
        let big = ChatResponse {
            text: "x".repeat(10_000),
            ..ChatResponse::default()
        };
        assert_eq!(weight(&big) - weight(&small), 10_000);
    }
}
