//! [`RedisCache`]: a [`ResponseCache`] in Redis, shared by a fleet.

use std::io::{Read, Write};
use std::time::Duration;

use async_trait::async_trait;

use super::store::{Fetch, Lookup, ResponseCache};
use super::CacheKey;
use crate::layer::rate_limit::OnUnreachable;
use crate::layer::redis::{RedisConn, RedisError};
use crate::{ChatResponse, Error};

/// Stores an entry with its TTL, indexes it by time, and evicts the oldest
/// entries past the key-count cap (and index entries that have expired),
/// in one atomic step.
///
/// The index is scored in microseconds and strictly increasing (an insert
/// in the same microsecond as the last one, or after the clock stepped
/// back, scores one more than it): with equal scores `ZPOPMIN` would take
/// the smallest key, not the oldest entry.
const INSERT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local last = redis.call('ZREVRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if last[2] and tonumber(last[2]) >= now then
  now = tonumber(last[2]) + 1
end
local ttl = tonumber(ARGV[2])
local cap = tonumber(ARGV[3])
if ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - ttl * 1000)
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('ZADD', KEYS[2], now, KEYS[1])
local n = redis.call('ZCARD', KEYS[2])
if cap > 0 and n > cap then
  local old = redis.call('ZPOPMIN', KEYS[2], n - cap)
  for i = 1, #old, 2 do
    redis.call('DEL', old[i])
  end
end
return n
";

/// Entries compressed with deflate start with this byte; plain JSON with `{`.
const DEFLATE: u8 = b'z';

/// Builds a [`RedisCache`]. See [`RedisCache::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct RedisCacheBuilder {
    url: String,
    prefix: String,
    ttl: Option<Duration>,
    max_entries: u64,
    compress_over: Option<usize>,
    timeout: Duration,
    on_unreachable: OnUnreachable,
}

impl RedisCacheBuilder {
    /// The prefix of every key. Defaults to `costlayer:cache`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long an entry is served after it was stored (Redis expires it).
    /// Defaults to one hour.
    pub fn time_to_live(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Entries never expire by age (they may still be evicted by the cap).
    pub fn no_time_to_live(mut self) -> Self {
        self.ttl = None;
        self
    }

    /// The most entries kept; past it the oldest are evicted. 0: no cap.
    /// Defaults to 100,000.
    pub fn max_entries(mut self, n: u64) -> Self {
        self.max_entries = n;
        self
    }

    /// Compresses (deflate) entries whose JSON is longer than `bytes`.
    /// Defaults to off.
    pub fn compress_over(mut self, bytes: usize) -> Self {
        self.compress_over = Some(bytes);
        self
    }

    /// How long one lookup or store may take before Redis counts as
    /// unreachable. Defaults to 500 ms.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// What happens when Redis cannot be reached: a miss that calls the
    /// provider, with a warning ([`OnUnreachable::FailOpen`], the default),
    /// or an [`Error::Connection`] ([`OnUnreachable::FailClosed`]).
    pub fn on_unreachable(mut self, policy: OnUnreachable) -> Self {
        self.on_unreachable = policy;
        self
    }

    /// Builds the cache. Nothing is connected until the first lookup.
    ///
    /// # Errors
    ///
    /// [`RedisError`] if the URL is not a Redis URL.
    pub fn build(self) -> Result<RedisCache, RedisError> {
        Ok(RedisCache {
            conn: RedisConn::open(&self.url, self.timeout)?,
            index: format!("{}:index", self.prefix),
            insert: redis::Script::new(INSERT),
            b: self,
        })
    }
}

/// A [`ResponseCache`] in Redis: every process using the same server and
/// prefix shares the answers. Entries are JSON (optionally deflate
/// compressed), expire after the TTL, and the oldest are evicted past a
/// key-count cap. Keys are the request's BLAKE3 digest ([`CacheKey`]), never a
/// credential.
///
/// Concurrent identical misses in *different* processes each call the
/// provider (coalescing is per process, by [`MokaCache`](super::MokaCache)).
///
/// ```
/// use std::time::Duration;
/// use costlayer::layer::cache::{CacheLayer, RedisCache};
///
/// let cache = RedisCache::builder("redis://127.0.0.1:6379/")
///     .time_to_live(Duration::from_secs(600))
///     .max_entries(50_000)
///     .compress_over(4_096)
///     .build()?;
/// let layer = CacheLayer::new(cache);
/// # let _ = layer;
/// # Ok::<(), costlayer::layer::RedisError>(())
/// ```
#[derive(Debug)]
pub struct RedisCache {
    conn: RedisConn,
    index: String,
    insert: redis::Script,
    b: RedisCacheBuilder,
}

impl RedisCache {
    /// A builder for a cache on the server at `url`.
    pub fn builder(url: impl Into<String>) -> RedisCacheBuilder {
        RedisCacheBuilder {
            url: url.into(),
            prefix: "costlayer:cache".to_owned(),
            ttl: Some(Duration::from_secs(3600)),
            max_entries: 100_000,
            compress_over: None,
            timeout: Duration::from_millis(500),
            on_unreachable: OnUnreachable::FailOpen,
        }
    }

    fn key(&self, key: &CacheKey) -> String {
        format!("{}:r:{}", self.b.prefix, key.to_hex())
    }

    /// How many entries the cache's index holds (expired ones included
    /// until the next store trims them).
    ///
    /// # Errors
    ///
    /// [`RedisError`] if Redis cannot be reached.
    pub async fn entry_count(&self) -> Result<u64, RedisError> {
        self.conn.query(redis::cmd("ZCARD").arg(&self.index)).await
    }

    fn encode(&self, resp: &ChatResponse) -> Option<Vec<u8>> {
        let json = serde_json::to_vec(resp).ok()?;
        match self.b.compress_over {
            Some(n) if json.len() > n => {
                let mut out = vec![DEFLATE];
                let mut enc =
                    flate2::write::DeflateEncoder::new(&mut out, flate2::Compression::fast());
                enc.write_all(&json).ok()?;
                enc.finish().ok()?;
                Some(out)
            }
            _ => Some(json),
        }
    }

    fn decode(bytes: &[u8]) -> Option<ChatResponse> {
        match bytes.split_first() {
            Some((&DEFLATE, rest)) => {
                let mut json = Vec::new();
                flate2::read::DeflateDecoder::new(rest)
                    .read_to_end(&mut json)
                    .ok()?;
                serde_json::from_slice(&json).ok()
            }
            _ => serde_json::from_slice(bytes).ok(),
        }
    }

    async fn fetch(&self, key: &CacheKey) -> Result<Option<ChatResponse>, RedisError> {
        let bytes: Option<Vec<u8>> = self
            .conn
            .query(redis::cmd("GET").arg(self.key(key)))
            .await?;
        Ok(bytes.as_deref().and_then(Self::decode))
    }

    async fn store(&self, key: &CacheKey, resp: &ChatResponse) -> Result<(), RedisError> {
        let Some(bytes) = self.encode(resp) else {
            return Ok(());
        };
        let ttl = self.b.ttl.map_or(0, |t| t.as_millis().max(1));
        let mut inv = self.insert.prepare_invoke();
        inv.key(self.key(key))
            .key(&self.index)
            .arg(bytes)
            .arg(ttl.to_string())
            .arg(self.b.max_entries.to_string());
        self.conn.invoke::<i64>(inv).await.map(drop)
    }

    fn unreachable(&self, e: &RedisError) -> Option<Error> {
        match self.b.on_unreachable {
            OnUnreachable::FailClosed => Some(Error::Connection {
                provider: "the shared response cache".into(),
                message: format!("{e}; the cache is configured to fail closed"),
            }),
            _ => {
                tracing::warn!(error = %e, "costlayer: shared response cache unreachable; calling the provider (fail open)");
                None
            }
        }
    }
}

#[async_trait]
impl ResponseCache for RedisCache {
    async fn get(&self, key: &CacheKey) -> Option<ChatResponse> {
        match self.fetch(key).await {
            Ok(r) => r,
            Err(e) => {
                let _ = self.unreachable(&e);
                None
            }
        }
    }

    async fn insert(&self, key: CacheKey, response: ChatResponse) {
        if let Err(e) = self.store(&key, &response).await {
            let _ = self.unreachable(&e);
        }
    }

    async fn invalidate(&self, key: &CacheKey) {
        let k = self.key(key);
        let r: Result<i64, _> = self.conn.query(redis::cmd("DEL").arg(&k)).await;
        if let Err(e) = r {
            let _ = self.unreachable(&e);
        }
    }

    async fn get_or_fetch(&self, key: CacheKey, fetch: Fetch<'_>) -> Result<Lookup, Error> {
        match self.fetch(&key).await {
            Ok(Some(hit)) => return Ok(Lookup::Hit(hit)),
            Ok(None) => {}
            Err(e) => {
                if let Some(err) = self.unreachable(&e) {
                    return Err(err);
                }
                return fetch.await.map(Lookup::Miss);
            }
        }
        let resp = fetch.await?;
        if let Err(e) = self.store(&key, &resp).await {
            // The answer is good: return it even if it could not be stored.
            let _ = self.unreachable(&e);
        }
        Ok(Lookup::Miss(resp))
    }
}
