//! One lazily (re)connected Redis connection, shared by the Redis-backed
//! rate limiter and response cache.

use std::fmt;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use tokio::sync::Mutex;

/// Why a Redis command failed (unreachable, timed out, or refused).
#[derive(Debug, thiserror::Error)]
#[error("Redis at {location}: {message}")]
pub struct RedisError {
    location: String,
    message: String,
}

/// A multiplexed connection, opened on first use and reopened after a
/// failure; every command has a timeout, so a hung server is an error, not
/// a hang.
pub(crate) struct RedisConn {
    client: redis::Client,
    location: String,
    timeout: Duration,
    conn: Mutex<Option<MultiplexedConnection>>,
}

impl fmt::Debug for RedisConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password: show only where.
        f.debug_struct("RedisConn")
            .field("location", &self.location)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisConn {
    pub(crate) fn open(url: &str, timeout: Duration) -> Result<Self, RedisError> {
        let client = redis::Client::open(url).map_err(|e| RedisError {
            location: "(the configured URL)".to_owned(),
            message: format!(
                "not a Redis URL ({e}): expected redis://[:PASSWORD@]HOST[:PORT][/DB]"
            ),
        })?;
        let info = client.get_connection_info();
        let location = format!("{}", info.addr());
        Ok(RedisConn {
            client,
            location,
            timeout,
            conn: Mutex::new(None),
        })
    }

    pub(crate) fn location(&self) -> &str {
        &self.location
    }

    fn error(&self, message: impl fmt::Display) -> RedisError {
        RedisError {
            location: self.location.clone(),
            message: message.to_string(),
        }
    }

    async fn connection(&self) -> Result<MultiplexedConnection, RedisError> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let c = tokio::time::timeout(self.timeout, self.client.get_multiplexed_async_connection())
            .await
            .map_err(|_| self.error(format!("no connection within {:?}", self.timeout)))?
            .map_err(|e| self.error(format!("cannot connect: {e}")))?;
        *slot = Some(c.clone());
        Ok(c)
    }

    /// Runs `script` with `keys` and `args`, reconnecting next time if it fails.
    pub(crate) async fn script<T: redis::FromRedisValue>(
        &self,
        script: &redis::Script,
        keys: &[&str],
        args: &[String],
    ) -> Result<T, RedisError> {
        let mut conn = self.connection().await?;
        let mut inv = script.prepare_invoke();
        for k in keys {
            inv.key(*k);
        }
        for a in args {
            inv.arg(a);
        }
        let result = tokio::time::timeout(self.timeout, inv.invoke_async(&mut conn)).await;
        self.settle(result).await
    }

    /// Runs a prepared script invocation, reconnecting next time if it fails.
    pub(crate) async fn invoke<T: redis::FromRedisValue>(
        &self,
        inv: redis::ScriptInvocation<'_>,
    ) -> Result<T, RedisError> {
        let mut conn = self.connection().await?;
        let result = tokio::time::timeout(self.timeout, inv.invoke_async(&mut conn)).await;
        self.settle(result).await
    }

    /// Runs one command, reconnecting next time if it fails.
    pub(crate) async fn query<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> Result<T, RedisError> {
        let mut conn = self.connection().await?;
        let result = tokio::time::timeout(self.timeout, cmd.query_async(&mut conn)).await;
        self.settle(result).await
    }

    async fn settle<T>(
        &self,
        result: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
    ) -> Result<T, RedisError> {
        match result {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
                    *self.conn.lock().await = None;
                }
                Err(self.error(e))
            }
            Err(_) => {
                *self.conn.lock().await = None;
                Err(self.error(format!("no answer within {:?}", self.timeout)))
            }
        }
    }
}
