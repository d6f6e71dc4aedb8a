//! The one error type of every provider and every layer.

use std::time::Duration;

use crate::Money;

/// A boxed error, as tower uses.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong with a call, from the provider's HTTP answer
/// to a budget that refuses it.
///
/// Every message says what to do. No variant ever contains an API key.
/// [`Error::is_retryable`] tells the retry layer what is worth another
/// attempt, and [`Error::retry_after`] how long the provider asked to wait.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use costlayer_core::Error;
///
/// let e = Error::RateLimited {
///     provider: "openai".into(),
///     message: "Rate limit reached".into(),
///     retry_after: Some(Duration::from_secs(2)),
/// };
/// assert!(e.is_retryable());
/// assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The provider (or a local rate limiter) refused the call for now: HTTP 429.
    #[error("{provider} rate limit reached: {message}. Retry later{}, or lower your request rate", fmt_after(.retry_after))]
    RateLimited {
        /// Who refused (`openai`, ..., or `costlayer` for the local limiter).
        provider: String,
        /// The provider's message.
        message: String,
        /// How long the provider asked to wait.
        retry_after: Option<Duration>,
    },
    /// The account is out of credit or quota (OpenAI `insufficient_quota`,
    /// Anthropic `billing_error`, a Gemini daily quota). Not retryable.
    #[error("{provider} quota or billing limit reached: {message}. Add credit or raise the quota in the provider's console; retrying will not help")]
    QuotaExceeded {
        /// The provider.
        provider: String,
        /// The provider's message.
        message: String,
    },
    /// The provider is overloaded (Anthropic 529, HTTP 503).
    #[error("{provider} is overloaded (HTTP {status}): {message}. Retry with backoff{}", fmt_after(.retry_after))]
    Overloaded {
        /// The provider.
        provider: String,
        /// The HTTP status.
        status: u16,
        /// The provider's message.
        message: String,
        /// How long the provider asked to wait.
        retry_after: Option<Duration>,
    },
    /// The key is missing, wrong or lacks permission (HTTP 401/403).
    #[error("{provider} rejected the credentials (HTTP {status}): {message}. Check the API key (it is never printed) and its permissions")]
    Authentication {
        /// The provider.
        provider: String,
        /// The HTTP status.
        status: u16,
        /// The provider's message.
        message: String,
    },
    /// The prompt plus `max_tokens` exceed the model's context window.
    #[error("{provider}: the prompt is too long for the model's context window: {message}. Shorten the prompt or lower max_tokens")]
    ContextLengthExceeded {
        /// The provider.
        provider: String,
        /// The provider's message.
        message: String,
    },
    /// The request was malformed or named something that does not exist
    /// (HTTP 400, 404, 409, 413, 422).
    #[error("{provider} rejected the request (HTTP {status}): {message}. Fix the request; retrying the same one will fail again")]
    InvalidRequest {
        /// The provider.
        provider: String,
        /// The HTTP status.
        status: u16,
        /// The provider's message.
        message: String,
    },
    /// The provider failed (HTTP 500, 502, 504, ...).
    #[error("{provider} server error (HTTP {status}): {message}. This is usually transient: retry with backoff")]
    Server {
        /// The provider.
        provider: String,
        /// The HTTP status.
        status: u16,
        /// The provider's message (or the start of a non-JSON body).
        message: String,
        /// How long the provider asked to wait.
        retry_after: Option<Duration>,
    },
    /// No answer in time.
    #[error("{provider} did not answer within {after:?}. Retry, or raise the timeout")]
    Timeout {
        /// The provider.
        provider: String,
        /// The timeout that expired.
        after: Duration,
    },
    /// The connection failed (DNS, refused, reset, TLS).
    #[error("could not reach {provider}: {message}. Check the network and the base URL")]
    Connection {
        /// The provider.
        provider: String,
        /// What failed.
        message: String,
    },
    /// The provider answered something that is not the documented shape
    /// (an HTML error page, truncated JSON, ...).
    #[error("{provider} sent a response that could not be read ({message}); it began with: {body_snippet:?}. If this persists, report it with the request id")]
    Decode {
        /// The provider.
        provider: String,
        /// What was wrong.
        message: String,
        /// The first bytes of the body (at most 200 characters).
        body_snippet: String,
    },
    /// A budget with the `block` action refused the call before it reached
    /// the provider.
    #[error("budget `{budget}` would be exceeded: spent {spent} of {limit}, this call may cost up to {estimate}. Raise the limit, wait for the next period, or lower max_tokens")]
    BudgetExceeded {
        /// The budget's name.
        budget: String,
        /// Spent so far in the budget's current period (reservations included).
        spent: Money,
        /// The budget's limit.
        limit: Money,
        /// The worst-case estimate of this call.
        estimate: Money,
    },
    /// The ledger cannot be written (a read-only or full disk, a data
    /// directory that is a file...), so the call was refused before it was
    /// sent: it would have been billed without a record.
    #[error("the call was not sent: the ledger cannot be written, so it would have been billed without a record. {message}")]
    LedgerUnwritable {
        /// Where the ledger is.
        location: String,
        /// What is wrong, and what to do (fix the location or free disk
        /// space, then retry).
        message: String,
    },
    /// The model has no price, and the tracker's policy refuses unpriced calls.
    #[error("model `{model}` has no price, and the unpriced-model policy rejects the call. Add it to your price file, or change the policy")]
    UnpricedModel {
        /// The model id.
        model: String,
    },
    /// A request needs more capacity than a limiter can ever grant.
    #[error("the request needs {requested} {unit}, more than the limit's burst of {capacity}: it can never be admitted. Split the request or raise the limit")]
    InsufficientCapacity {
        /// What the request needs.
        requested: u64,
        /// The most the limiter can grant at once.
        capacity: u64,
        /// `requests` or `tokens`.
        unit: &'static str,
    },
    /// Invalid configuration (missing API key, bad base URL, bad setting).
    #[error("configuration error: {message}")]
    Config {
        /// What is wrong and how to fix it.
        message: String,
    },
    /// Anything else (a layer's own error, an I/O failure, ...).
    #[error(transparent)]
    Other(BoxError),
}

fn fmt_after(after: &Option<Duration>) -> String {
    match after {
        Some(d) => format!(" (the provider asked to wait {:.3}s)", d.as_secs_f64()),
        None => String::new(),
    }
}

impl Error {
    /// The same error with every message passed through
    /// [`redact::text`](crate::redact::text): no known secret, URL
    /// credential or SMTP `AUTH` token survives into a log or a file.
    /// Applied by the shared transport to every error it returns.
    ///
    /// ```
    /// use costlayer_core::Error;
    /// let e = Error::Connection { provider: "openai".into(), message: "url (http://u:pw@10.0.0.1/)".into() };
    /// assert!(!e.redacted().to_string().contains("pw"));
    /// ```
    #[must_use]
    pub fn redacted(self) -> Self {
        fn r(s: &mut String) {
            if let std::borrow::Cow::Owned(o) = crate::redact::text(s) {
                *s = o;
            }
        }
        let mut e = self;
        match &mut e {
            Error::RateLimited { message, .. }
            | Error::QuotaExceeded { message, .. }
            | Error::Overloaded { message, .. }
            | Error::Authentication { message, .. }
            | Error::ContextLengthExceeded { message, .. }
            | Error::InvalidRequest { message, .. }
            | Error::Server { message, .. }
            | Error::Connection { message, .. }
            | Error::Config { message } => r(message),
            Error::Decode {
                message,
                body_snippet,
                ..
            } => {
                r(message);
                r(body_snippet);
            }
            Error::Other(inner) => {
                let shown = inner.to_string();
                if let std::borrow::Cow::Owned(o) = crate::redact::text(&shown) {
                    return Error::Other(o.into());
                }
            }
            _ => {}
        }
        e
    }

    /// A [`Error::Config`] with a message.
    pub fn config(message: impl Into<String>) -> Self {
        Error::Config {
            message: message.into(),
        }
    }

    /// Whether another attempt may succeed: rate limits, overload, server
    /// errors, timeouts and connection failures. Never quota, auth, invalid
    /// requests, budgets or configuration.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::RateLimited { .. }
                | Error::Overloaded { .. }
                | Error::Server { .. }
                | Error::Timeout { .. }
                | Error::Connection { .. }
        )
    }

    /// How long the provider asked to wait before retrying, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::RateLimited { retry_after, .. }
            | Error::Overloaded { retry_after, .. }
            | Error::Server { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The HTTP status the provider answered, if any.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::RateLimited { .. } => Some(429),
            Error::Overloaded { status, .. }
            | Error::Authentication { status, .. }
            | Error::InvalidRequest { status, .. }
            | Error::Server { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Converts a boxed error back into an [`Error`] if it is one, as tower
    /// layers hand errors around as [`BoxError`].
    pub fn from_boxed(err: BoxError) -> Self {
        match err.downcast::<Error>() {
            Ok(e) => *e,
            Err(other) => Error::Other(other),
        }
    }
}

impl From<BoxError> for Error {
    fn from(err: BoxError) -> Self {
        Error::from_boxed(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_classification() {
        let p = || "openai".to_string();
        assert!(Error::Timeout {
            provider: p(),
            after: Duration::from_secs(1)
        }
        .is_retryable());
        assert!(!Error::QuotaExceeded {
            provider: p(),
            message: "x".into()
        }
        .is_retryable());
        assert!(!Error::Authentication {
            provider: p(),
            status: 401,
            message: "x".into()
        }
        .is_retryable());
        assert!(!Error::BudgetExceeded {
            budget: "monthly".into(),
            spent: Money::ZERO,
            limit: Money::ZERO,
            estimate: Money::ZERO
        }
        .is_retryable());
    }

    #[test]
    fn boxed_errors_round_trip() {
        let boxed: BoxError = Box::new(Error::config("no key"));
        assert!(matches!(Error::from(boxed), Error::Config { .. }));
        let io: BoxError = Box::new(std::io::Error::other("disk"));
        assert!(matches!(Error::from(io), Error::Other(_)));
    }

    #[test]
    fn messages_say_what_to_do() {
        let e = Error::BudgetExceeded {
            budget: "monthly".into(),
            spent: Money::from_nanos(190_000_000_000),
            limit: Money::from_nanos(200_000_000_000),
            estimate: Money::from_nanos(20_000_000_000),
        };
        let s = e.to_string();
        assert!(
            s.contains("$190.00") && s.contains("$200.00") && s.contains("Raise the limit"),
            "{s}"
        );
    }
}
