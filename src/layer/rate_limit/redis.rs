//! [`RedisBuckets`]: the limiter's token buckets in Redis, shared by a fleet.

use std::time::Duration;

use async_trait::async_trait;

use super::shared::{SharedBuckets, SharedBucketsError};
use super::Quota;
use crate::layer::redis::{RedisConn, RedisError};

/// Takes (or corrects) both buckets of a key in one atomic step, on the
/// server's clock (`TIME`), so hosts with skewed clocks agree.
///
/// A bucket is a hash `{l: level, t: last update in µs}`; the level is in
/// tokens × 60,000,000 (µs per minute), so a refill of `rate` per minute is
/// `elapsed µs × rate`, exactly. Keys expire once they would be full again.
const SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local P = 60000000
local function load(key, rate, burst)
  local v = redis.call('HMGET', key, 'l', 't')
  local cap = burst * P
  local level = tonumber(v[1])
  local last = tonumber(v[2])
  if level == nil or last == nil then
    level = cap
    last = now
  end
  if now > last then
    level = math.min(cap, level + (now - last) * rate)
  end
  return level, cap
end
local function save(key, level, cap, rate)
  redis.call('HSET', key, 'l', string.format('%.0f', level), 't', string.format('%.0f', now))
  local ms = math.ceil((cap - level) / rate / 1000) + 1000
  redis.call('PEXPIRE', key, ms)
end
local rr, rb = tonumber(ARGV[1]), tonumber(ARGV[2])
local tr, tb = tonumber(ARGV[3]), tonumber(ARGV[4])
local need = tonumber(ARGV[5])
if ARGV[6] == 'adjust' then
  if tr > 0 then
    local l, cap = load(KEYS[2], tr, tb)
    l = math.min(cap, l + need * P)
    save(KEYS[2], l, cap, tr)
  end
  return 0
end
local wait = 0
local rl, rcap, tl, tcap
if rr > 0 then
  rl, rcap = load(KEYS[1], rr, rb)
  if rl < P then wait = math.max(wait, math.ceil((P - rl) / rr)) end
end
if tr > 0 then
  tl, tcap = load(KEYS[2], tr, tb)
  if tl < need * P then wait = math.max(wait, math.ceil((need * P - tl) / tr)) end
end
if wait > 0 then return wait end
if rr > 0 then save(KEYS[1], rl - P, rcap, rr) end
if tr > 0 then save(KEYS[2], tl - need * P, tcap, tr) end
return 0
";

/// Builds [`RedisBuckets`]. See [`RedisBuckets::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct RedisBucketsBuilder {
    url: String,
    prefix: String,
    timeout: Duration,
}

impl RedisBucketsBuilder {
    /// The prefix of every key (`<prefix>:<bucket key>:req` / `:tok`).
    /// Defaults to `costlayer:rl`. Processes sharing a ceiling use the same.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long one check may take, connecting included, before the store
    /// counts as unreachable. Defaults to 500 ms.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Builds the buckets. Nothing is connected until the first check.
    ///
    /// # Errors
    ///
    /// [`RedisError`] if the URL is not a Redis URL.
    pub fn build(self) -> Result<RedisBuckets, RedisError> {
        Ok(RedisBuckets {
            conn: RedisConn::open(&self.url, self.timeout)?,
            prefix: self.prefix,
            script: redis::Script::new(SCRIPT),
        })
    }
}

/// Requests- and tokens-per-minute buckets in Redis, shared by every
/// process using the same server and prefix: one atomic Lua script per
/// check (both buckets, refilled on the server's clock), one per
/// correction after the billed usage (refund, or debt below zero).
///
/// Put it behind a layer with
/// [`RateLimitLayer::shared`](super::RateLimitLayer::shared).
///
/// ```
/// use std::num::NonZeroU32;
/// use costlayer::layer::rate_limit::{OnUnreachable, Quota, RateLimitLayer, RedisBuckets};
///
/// let nz = |n| NonZeroU32::new(n).unwrap();
/// let buckets = RedisBuckets::builder("redis://127.0.0.1:6379/").prefix("prod:rl").build()?;
/// let layer = RateLimitLayer::new(Quota::per_minute(nz(500), nz(200_000)))
///     .shared(buckets, OnUnreachable::FailOpen);
/// # let _ = layer;
/// # Ok::<(), costlayer::layer::RedisError>(())
/// ```
#[derive(Debug)]
pub struct RedisBuckets {
    conn: RedisConn,
    prefix: String,
    script: redis::Script,
}

impl RedisBuckets {
    /// A builder for buckets on the server at `url`
    /// (`redis://[:PASSWORD@]HOST[:PORT][/DB]`).
    pub fn builder(url: impl Into<String>) -> RedisBucketsBuilder {
        RedisBucketsBuilder {
            url: url.into(),
            prefix: "costlayer:rl".to_owned(),
            timeout: Duration::from_millis(500),
        }
    }

    /// Where the server is (never the password).
    pub fn location(&self) -> &str {
        self.conn.location()
    }

    async fn run(&self, key: &str, quota: &Quota, n: i128, mode: &str) -> Result<i64, RedisError> {
        let (rr, rb) = quota.requests().unwrap_or((0, 0));
        let (tr, tb) = quota.tokens().unwrap_or((0, 0));
        let req = format!("{}:{key}:req", self.prefix);
        let tok = format!("{}:{key}:tok", self.prefix);
        let int = |v: i128| v.to_string();
        self.conn
            .script(
                &self.script,
                &[&req, &tok],
                &[
                    int(rr.into()),
                    int(rb.into()),
                    int(tr.into()),
                    int(tb.into()),
                    int(n),
                    mode.to_owned(),
                ],
            )
            .await
    }
}

#[async_trait]
impl SharedBuckets for RedisBuckets {
    async fn take(
        &self,
        key: &str,
        quota: &Quota,
        tokens: u64,
    ) -> Result<Option<Duration>, SharedBucketsError> {
        let wait_us = self.run(key, quota, tokens.into(), "take").await?;
        Ok((wait_us > 0).then(|| Duration::from_micros(u64::try_from(wait_us).unwrap_or(0))))
    }

    async fn adjust(&self, key: &str, quota: &Quota, delta: i64) -> Result<(), SharedBucketsError> {
        self.run(key, quota, delta.into(), "adjust").await?;
        Ok(())
    }
}
