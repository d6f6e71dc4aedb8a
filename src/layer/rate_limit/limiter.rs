//! [`RateLimiter`]: the keyed token buckets shared by every service of a
//! [`RateLimitLayer`](super::RateLimitLayer).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::shared::{OnUnreachable, Remote, RemotePermit};
use super::Quota;
use crate::estimate::Estimator;
use crate::{ChatRequest, Error};

/// One minute in nanoseconds: bucket levels are kept in token-nanoseconds
/// per minute, so refills are exact integers.
const PERIOD: i128 = 60_000_000_000;

/// A token bucket with exact integer arithmetic. The level may go negative
/// (debt) when a call used more tokens than it reserved.
#[derive(Debug)]
struct Bucket {
    /// Refill per minute.
    rate: i128,
    /// Capacity, in tokens.
    burst: u64,
    /// Tokens × PERIOD.
    level: i128,
    updated: Instant,
}

impl Bucket {
    fn new(rate: u32, burst: u32, now: Instant) -> Self {
        Bucket {
            rate: i128::from(rate),
            burst: u64::from(burst),
            level: i128::from(burst) * PERIOD,
            updated: now,
        }
    }

    fn cap(&self) -> i128 {
        i128::from(self.burst) * PERIOD
    }

    fn refill(&mut self, now: Instant) {
        if now > self.updated {
            let dt =
                i128::try_from(now.duration_since(self.updated).as_nanos()).unwrap_or(i128::MAX);
            self.level = self
                .level
                .saturating_add(dt.saturating_mul(self.rate))
                .min(self.cap());
            self.updated = now;
        }
    }

    fn has(&self, n: u64) -> bool {
        self.level >= i128::from(n) * PERIOD
    }

    fn take(&mut self, n: u64) {
        self.level = self.level.saturating_sub(i128::from(n) * PERIOD);
    }

    fn give(&mut self, n: u64) {
        self.level = self
            .level
            .saturating_add(i128::from(n) * PERIOD)
            .min(self.cap());
    }

    /// How long until the bucket holds `n` tokens (ignoring the cap).
    fn wait_for(&self, n: u64) -> Duration {
        let need = i128::from(n) * PERIOD - self.level;
        if need <= 0 {
            return Duration::ZERO;
        }
        // Ceiling division: never wake before the tokens are there.
        let nanos = (need + self.rate - 1) / self.rate;
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// Tokens available now (negative when in debt).
    fn available(&self) -> i64 {
        i64::try_from(self.level.div_euclid(PERIOD)).unwrap_or(i64::MIN)
    }
}

#[derive(Debug)]
struct Waiter {
    id: u64,
    tokens: u64,
    notify: Arc<Notify>,
}

#[derive(Debug)]
struct KeyInner {
    requests: Option<Bucket>,
    tokens: Option<Bucket>,
    /// Callers waiting, in arrival order. Only the front one may take.
    queue: VecDeque<Waiter>,
    next_id: u64,
}

impl KeyInner {
    fn refill(&mut self, now: Instant) {
        if let Some(b) = &mut self.requests {
            b.refill(now);
        }
        if let Some(b) = &mut self.tokens {
            b.refill(now);
        }
    }

    fn can_take(&self, tokens: u64) -> bool {
        self.requests.as_ref().is_none_or(|b| b.has(1))
            && self.tokens.as_ref().is_none_or(|b| b.has(tokens))
    }

    fn take(&mut self, tokens: u64) {
        if let Some(b) = &mut self.requests {
            b.take(1);
        }
        if let Some(b) = &mut self.tokens {
            b.take(tokens);
        }
    }

    /// How long until `requests` requests and `tokens` tokens are there.
    fn wait_for(&self, requests: u64, tokens: u64) -> Duration {
        let r = self
            .requests
            .as_ref()
            .map_or(Duration::ZERO, |b| b.wait_for(requests));
        let t = self
            .tokens
            .as_ref()
            .map_or(Duration::ZERO, |b| b.wait_for(tokens));
        r.max(t)
    }

    /// The wait of a newcomer: everyone queued goes first.
    fn wait_behind_queue(&self, tokens: u64) -> Duration {
        let queued: u64 = self.queue.iter().map(|w| w.tokens).sum();
        self.wait_for(self.queue.len() as u64 + 1, queued.saturating_add(tokens))
    }

    fn wake_front(&self) {
        if let Some(w) = self.queue.front() {
            w.notify.notify_one();
        }
    }

    fn remove(&mut self, id: u64) {
        let was_front = self.queue.front().is_some_and(|w| w.id == id);
        self.queue.retain(|w| w.id != id);
        if was_front {
            self.wake_front();
        }
    }
}

#[derive(Debug)]
struct KeyState {
    key: String,
    inner: Mutex<KeyInner>,
}

impl KeyState {
    fn lock(&self) -> MutexGuard<'_, KeyInner> {
        // A panic while holding this lock cannot leave the buckets
        // inconsistent (every update is a single assignment), so a poisoned
        // lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(crate) type KeyFn = dyn Fn(&ChatRequest) -> String + Send + Sync;

pub(crate) struct Shared {
    pub(crate) quota: Quota,
    pub(crate) overrides: HashMap<String, Quota>,
    pub(crate) key_fn: Arc<KeyFn>,
    /// `key_fn` is [`default_key`]: the limiter writes the key on the
    /// stack instead of calling it.
    default_key: bool,
    pub(crate) max_wait: Duration,
    pub(crate) estimator: Estimator,
    pub(crate) remote: Option<Remote>,
    keys: Mutex<HashMap<String, Arc<KeyState>>>,
}

/// A bucket key written on the stack; writing fails past its capacity
/// (the key is then built on the heap).
struct KeyBuf {
    buf: [u8; 128],
    len: usize,
}

impl Default for KeyBuf {
    fn default() -> Self {
        KeyBuf {
            buf: [0; 128],
            len: 0,
        }
    }
}

impl KeyBuf {
    fn as_str(&self) -> &str {
        // Only whole `&str`s are written, so the bytes are UTF-8.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

impl fmt::Write for KeyBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// The default key: `provider:model`, the granularity providers limit at.
pub fn default_key(req: &ChatRequest) -> String {
    format!("{}:{}", req.provider_hint().unwrap_or("unknown"), req.model)
}

/// Keyed request and token buckets; see the [module docs](super).
///
/// Cloning is cheap and shares the buckets. Usable without tower:
/// [`acquire`](Self::acquire) before the call, [`Permit::settle`] after.
///
/// ```
/// use std::num::NonZeroU32;
/// use costlayer::layer::rate_limit::{Available, Quota, RateLimitLayer};
/// use costlayer::{ChatRequest, Message};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), costlayer::Error> {
/// let nz = |n| NonZeroU32::new(n).unwrap();
/// let limiter = RateLimitLayer::new(Quota::per_minute(nz(60), nz(10_000))).limiter();
/// let req = ChatRequest::new("gpt-4o").message(Message::user("hi")).max_tokens(100);
///
/// let permit = limiter.acquire(&req).await?;
/// assert!(permit.tokens() > 100);
/// permit.settle(20); // the call used 20 tokens: the rest is refunded
/// assert_eq!(
///     limiter.available("openai:gpt-4o"),
///     Some(Available { requests: Some(59), tokens: Some(9_980) })
/// );
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RateLimiter {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("quota", &self.shared.quota)
            .field("overrides", &self.shared.overrides)
            .field("max_wait", &self.shared.max_wait)
            .field("estimator", &self.shared.estimator)
            .finish_non_exhaustive()
    }
}

/// What a key's buckets hold at one moment (whole units, rounded down).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Available {
    /// Requests available, or `None` without a request limit.
    pub requests: Option<i64>,
    /// Tokens available (negative: debt), or `None` without a token limit.
    pub tokens: Option<i64>,
}

/// The right to make one call; see [`Permit::settle`].
#[derive(Debug)]
#[must_use = "settle the permit with the call's billed tokens"]
pub struct Permit {
    state: Option<Arc<KeyState>>,
    tokens: u64,
    remote: Option<RemotePermit>,
}

impl Permit {
    /// The tokens reserved for the call (its estimated prompt plus
    /// `max_tokens`), or 0 when the key has no token limit.
    pub fn tokens(&self) -> u64 {
        self.tokens
    }

    /// Corrects the token bucket to what the call actually used: the
    /// difference is refunded, or charged as debt that later callers wait
    /// out. Dropping a permit without settling keeps the reservation.
    pub fn settle(self, used_tokens: u64) {
        if let Some(remote) = self.remote {
            let delta = i128::from(self.tokens) - i128::from(used_tokens);
            remote.adjust(i64::try_from(delta).unwrap_or(if delta < 0 {
                i64::MIN
            } else {
                i64::MAX
            }));
            return;
        }
        let Some(state) = &self.state else { return };
        let mut inner = state.lock();
        let now = Instant::now();
        inner.refill(now);
        if let Some(b) = &mut inner.tokens {
            if used_tokens < self.tokens {
                b.give(self.tokens - used_tokens);
            } else {
                b.take(used_tokens - self.tokens);
            }
        }
        // A refund may let the front waiter go now.
        inner.wake_front();
    }
}

/// Removes a waiter from the queue if its future is dropped before it is
/// admitted (cancellation, or the max wait expired).
struct QueueGuard<'a> {
    state: &'a KeyState,
    id: u64,
    done: bool,
}

impl Drop for QueueGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.state.lock().remove(self.id);
        }
    }
}

impl RateLimiter {
    pub(crate) fn new(
        quota: Quota,
        overrides: HashMap<String, Quota>,
        (key_fn, custom_key): (Arc<KeyFn>, bool),
        max_wait: Duration,
        estimator: Estimator,
        remote: Option<Remote>,
    ) -> Self {
        RateLimiter {
            shared: Arc::new(Shared {
                quota,
                overrides,
                key_fn,
                default_key: !custom_key,
                max_wait,
                estimator,
                remote,
                keys: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The bucket key of `req`.
    pub fn key(&self, req: &ChatRequest) -> String {
        (self.shared.key_fn)(req)
    }

    /// The quota that applies to `key`.
    pub fn quota(&self, key: &str) -> Quota {
        self.shared
            .overrides
            .get(key)
            .copied()
            .unwrap_or(self.shared.quota)
    }

    /// What `key`'s buckets hold now, or `None` if no call has used the
    /// key yet.
    pub fn available(&self, key: &str) -> Option<Available> {
        let state = self.keys().get(key).cloned()?;
        let mut inner = state.lock();
        inner.refill(Instant::now());
        Some(Available {
            requests: inner.requests.as_ref().map(Bucket::available),
            tokens: inner.tokens.as_ref().map(Bucket::available),
        })
    }

    fn keys(&self) -> MutexGuard<'_, HashMap<String, Arc<KeyState>>> {
        self.shared.keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn state(&self, key: &str, quota: Quota) -> Arc<KeyState> {
        let mut keys = self.keys();
        if let Some(s) = keys.get(key) {
            return Arc::clone(s);
        }
        let now = Instant::now();
        let state = Arc::new(KeyState {
            key: key.to_owned(),
            inner: Mutex::new(KeyInner {
                requests: quota.requests().map(|(r, b)| Bucket::new(r, b, now)),
                tokens: quota.tokens().map(|(r, b)| Bucket::new(r, b, now)),
                queue: VecDeque::new(),
                next_id: 0,
            }),
        });
        keys.insert(key.to_owned(), Arc::clone(&state));
        state
    }

    /// Runs `f` on `req`'s bucket key. The default key is written into a
    /// buffer on the stack (no allocation per call) when it fits.
    fn with_key<T>(&self, req: &ChatRequest, f: impl FnOnce(&str) -> T) -> T {
        if self.shared.default_key {
            let mut buf = KeyBuf::default();
            let provider = req.provider_hint().unwrap_or("unknown");
            if fmt::Write::write_fmt(&mut buf, format_args!("{provider}:{}", req.model)).is_ok() {
                return f(buf.as_str());
            }
        }
        f(&self.key(req))
    }

    /// The key's state and the request's token weight, or `None` if the key
    /// is not limited at all.
    fn prepare(&self, req: &ChatRequest) -> Result<Option<(Arc<KeyState>, u64)>, Error> {
        self.with_key(req, |key| {
            Ok(self
                .weigh_key(key, req)?
                .map(|(quota, tokens)| (self.state(key, quota), tokens)))
        })
    }

    /// The key, its quota and the request's token weight, or `None` if the
    /// key is not limited at all.
    fn weigh(&self, req: &ChatRequest) -> Result<Option<(String, Quota, u64)>, Error> {
        let key = self.key(req);
        Ok(self
            .weigh_key(&key, req)?
            .map(|(quota, tokens)| (key, quota, tokens)))
    }

    /// `key`'s quota and the request's token weight, or `None` if the key
    /// is not limited at all.
    fn weigh_key(&self, key: &str, req: &ChatRequest) -> Result<Option<(Quota, u64)>, Error> {
        let quota = self.quota(key);
        if quota == Quota::unlimited() {
            return Ok(None);
        }
        let tokens = match quota.tokens() {
            Some((_, burst)) => {
                let weight = self.shared.estimator.total_tokens(req);
                if weight > u64::from(burst) {
                    return Err(Error::InsufficientCapacity {
                        requested: weight,
                        capacity: u64::from(burst),
                        unit: "tokens",
                    });
                }
                weight
            }
            None => 0,
        };
        Ok(Some((quota, tokens)))
    }

    /// Admits the call against the shared buckets, waiting (not in arrival
    /// order across processes) up to `max_wait`. `Ok(None)`: the store is
    /// unreachable and the policy is to fail open.
    async fn acquire_shared(
        &self,
        remote: &Remote,
        req: &ChatRequest,
    ) -> Result<Option<Permit>, Error> {
        let Some((key, quota, tokens)) = self.weigh(req)? else {
            return Ok(Some(Permit {
                state: None,
                tokens: 0,
                remote: None,
            }));
        };
        let deadline = Instant::now() + self.shared.max_wait;
        loop {
            match remote.buckets.take(&key, &quota, tokens).await {
                Ok(None) => {
                    return Ok(Some(Permit {
                        state: None,
                        tokens,
                        remote: Some(RemotePermit {
                            buckets: Arc::clone(&remote.buckets),
                            key,
                            quota,
                        }),
                    }))
                }
                Ok(Some(wait)) => {
                    let now = Instant::now();
                    if now + wait > deadline {
                        return Err(Self::refused(&key, wait));
                    }
                    tracing::debug!(key = %key, tokens, "costlayer: shared rate limit, waiting");
                    // Wake a little late rather than early: refills are continuous.
                    tokio::time::sleep(wait + Duration::from_millis(1)).await;
                }
                Err(e) => match remote.on_unreachable {
                    OnUnreachable::FailClosed => {
                        return Err(Error::Connection {
                            provider: "the shared rate-limit store".into(),
                            message: format!(
                                "{e}; the rate limit is configured to fail closed, so the call to `{key}` was not made"
                            ),
                        })
                    }
                    _ => {
                        remote.warn(&key, &e);
                        return Ok(None);
                    }
                },
            }
        }
    }

    fn refused(key: &str, wait: Duration) -> Error {
        Error::RateLimited {
            provider: "costlayer".into(),
            message: format!("the local limit for `{key}` is exhausted"),
            retry_after: Some(wait),
        }
    }

    /// Admits the call now, or fails without waiting.
    ///
    /// # Errors
    ///
    /// [`Error::RateLimited`] (provider `costlayer`, with the wait as
    /// `retry_after`) if the buckets are short or others are queued;
    /// [`Error::InsufficientCapacity`] if the request needs more tokens than
    /// the burst can ever hold.
    pub fn try_acquire(&self, req: &ChatRequest) -> Result<Permit, Error> {
        if self.shared.remote.is_some() {
            return Err(Error::config(
                "try_acquire cannot consult shared buckets (it does not wait for the network): \
                 use acquire, with RateLimitLayer::fail_fast for the same no-wait behaviour",
            ));
        }
        let Some((state, tokens)) = self.prepare(req)? else {
            return Ok(Permit {
                state: None,
                tokens: 0,
                remote: None,
            });
        };
        let mut inner = state.lock();
        inner.refill(Instant::now());
        if inner.queue.is_empty() && inner.can_take(tokens) {
            inner.take(tokens);
            drop(inner);
            return Ok(Permit {
                state: Some(state),
                tokens,
                remote: None,
            });
        }
        Err(Self::refused(&state.key, inner.wait_behind_queue(tokens)))
    }

    /// [`try_acquire`](Self::try_acquire) for the layer's fast path:
    /// `Ok(None)` when the call must wait (others queued, buckets short) or
    /// ask the shared store, so the caller goes on to [`acquire`](Self::acquire);
    /// an error only when waiting could never help.
    pub(crate) fn admit_now(&self, req: &ChatRequest) -> Result<Option<Permit>, Error> {
        if self.shared.remote.is_some() {
            return Ok(None);
        }
        let Some((state, tokens)) = self.prepare(req)? else {
            return Ok(Some(Permit {
                state: None,
                tokens: 0,
                remote: None,
            }));
        };
        let mut inner = state.lock();
        inner.refill(Instant::now());
        if inner.queue.is_empty() && inner.can_take(tokens) {
            inner.take(tokens);
            drop(inner);
            return Ok(Some(Permit {
                state: Some(state),
                tokens,
                remote: None,
            }));
        }
        Ok(None)
    }

    /// Waits, first come first served, until the call is admitted, for at
    /// most the layer's `max_wait`.
    ///
    /// # Errors
    ///
    /// [`Error::RateLimited`] (provider `costlayer`, with the expected wait
    /// as `retry_after`) if the call would wait longer than `max_wait` — at
    /// once when that is already clear on arrival;
    /// [`Error::InsufficientCapacity`] if the request needs more tokens than
    /// the burst can ever hold (it would wait forever).
    pub async fn acquire(&self, req: &ChatRequest) -> Result<Permit, Error> {
        if let Some(remote) = &self.shared.remote {
            if let Some(permit) = self.acquire_shared(remote, req).await? {
                return Ok(permit);
            }
            // Unreachable, failing open: the in-process buckets below.
        }
        let Some((state, tokens)) = self.prepare(req)? else {
            return Ok(Permit {
                state: None,
                tokens: 0,
                remote: None,
            });
        };
        let start = Instant::now();
        let deadline = start + self.shared.max_wait;
        let (id, notify) = {
            let mut inner = state.lock();
            inner.refill(start);
            if inner.queue.is_empty() && inner.can_take(tokens) {
                inner.take(tokens);
                drop(inner);
                return Ok(Permit {
                    state: Some(state),
                    tokens,
                    remote: None,
                });
            }
            let wait = inner.wait_behind_queue(tokens);
            if wait > self.shared.max_wait {
                return Err(Self::refused(&state.key, wait));
            }
            let id = inner.next_id;
            inner.next_id += 1;
            let notify = Arc::new(Notify::new());
            inner.queue.push_back(Waiter {
                id,
                tokens,
                notify: Arc::clone(&notify),
            });
            (id, notify)
        };
        tracing::debug!(key = %state.key, tokens, "costlayer: rate limited, waiting");
        let mut guard = QueueGuard {
            state: &state,
            id,
            done: false,
        };
        loop {
            let now = Instant::now();
            let wake_at = {
                let mut inner = state.lock();
                inner.refill(now);
                let front = inner.queue.front().is_some_and(|w| w.id == id);
                if front && inner.can_take(tokens) {
                    inner.take(tokens);
                    inner.queue.pop_front();
                    inner.wake_front();
                    guard.done = true;
                    tracing::debug!(key = %state.key, waited_ms = u64::try_from(now.duration_since(start).as_millis()).unwrap_or(u64::MAX), "costlayer: rate limit admitted");
                    break;
                }
                if now >= deadline {
                    let wait = if front {
                        inner.wait_for(1, tokens)
                    } else {
                        inner.wait_behind_queue(0)
                    };
                    // Unlock before the guard takes the lock to leave the queue.
                    drop(inner);
                    return Err(Self::refused(&state.key, wait));
                }
                if front {
                    (now + inner.wait_for(1, tokens)).min(deadline)
                } else {
                    // Woken by the waiter ahead when it is admitted or leaves.
                    deadline
                }
            };
            tokio::select! {
                _ = notify.notified() => {}
                _ = tokio::time::sleep_until(wake_at) => {}
            }
        }
        drop(guard);
        Ok(Permit {
            state: Some(state),
            tokens,
            remote: None,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bucket_arithmetic_is_exact() {
        let t0 = Instant::now();
        let mut b = Bucket::new(10, 10, t0);
        for _ in 0..10 {
            assert!(b.has(1));
            b.take(1);
        }
        assert!(!b.has(1));
        assert_eq!(b.wait_for(1), Duration::from_secs(6));
        b.refill(t0 + Duration::from_secs(6) - Duration::from_nanos(1));
        assert!(!b.has(1));
        b.refill(t0 + Duration::from_secs(6));
        assert!(b.has(1));
        // Never above the burst.
        b.refill(t0 + Duration::from_secs(3600));
        assert_eq!(b.available(), 10);
        b.give(5);
        assert_eq!(b.available(), 10);
        // Debt.
        b.take(15);
        assert_eq!(b.available(), -5);
        assert_eq!(b.wait_for(1), Duration::from_secs(36));
    }
}
