//! Budget alerts and where they go.
//!
//! When a budget's spend crosses one of its thresholds, the
//! [`CostTracker`](crate::tracker::CostTracker) builds an [`Alert`] and
//! hands it to every [`AlertSink`]: [`StdoutSink`] (a human line or JSON),
//! [`EmailSink`] (SMTP through lettre, feature `email`) and [`WebhookSink`]
//! (an HTTP POST of JSON, Slack-compatible, feature `webhook`), or your own.
//!
//! An alert fires **once** per budget, threshold and period, across restarts
//! and across processes sharing a ledger: the tracker claims it with
//! [`Storage::claim_alert`](crate::ledger::Storage::claim_alert) before
//! sending. Sinks run off the caller's path (on the outbox's own thread); a
//! failing sink is retried with backoff, then the failure is logged, kept
//! in the outbox ([`OutboxEntry`]) and retried by the next process. It never
//! fails the LLM call or the ledger write.
//!
//! # Example: a sink in a few lines
//!
//! Any `Fn(Alert) -> impl Future<Output = Result<(), SinkError>>` is a sink;
//! so is a type implementing [`AlertSink`], and `()` (which drops alerts).
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use costlayer::alert::{Alert, AlertSink, SinkError};
//!
//! let seen = Arc::new(Mutex::new(Vec::new()));
//! let log = seen.clone();
//! let sink = move |alert: Alert| {
//!     let log = log.clone();
//!     async move {
//!         log.lock().unwrap().push(alert.message);
//!         Ok::<(), SinkError>(())
//!     }
//! };
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! sink.send(&Alert::example()).await.unwrap();
//! # });
//! assert_eq!(seen.lock().unwrap().len(), 1);
//! ```

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::budget::{Severity, Threshold};
use crate::Money;

#[cfg(feature = "email")]
mod email;
mod outbox;
mod stdout;
#[cfg(feature = "webhook")]
mod webhook;

#[cfg(feature = "email")]
#[cfg_attr(docsrs, doc(cfg(feature = "email")))]
pub use email::{EmailSink, EmailSinkBuilder};
pub(crate) use outbox::{latest_per_key, take_if_claimable, Outbox, OutboxConfig};
pub use outbox::{
    redact_secrets, AlertRetry, DeliveryFailure, DeliveryOwner, DeliveryState, OutboxEntry,
    SinkDelivery,
};
pub use stdout::{StdoutFormat, StdoutSink};
#[cfg(feature = "webhook")]
#[cfg_attr(docsrs, doc(cfg(feature = "webhook")))]
pub use webhook::{WebhookFormat, WebhookSink};

/// Why an alert was raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AlertKind {
    /// Spend reached a threshold.
    Threshold,
    /// The projected end-of-period spend exceeds the limit.
    Projection,
}

/// A budget alert: what crossed, by how much, in which period.
///
/// Serialises to the JSON that [`WebhookSink`] posts and [`StdoutSink`]
/// prints in JSON mode (amounts as integer nano-dollars, plus `*_usd`
/// decimal strings for humans).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Alert {
    /// The budget's name.
    pub budget: String,
    /// Threshold or projection.
    pub kind: AlertKind,
    /// The threshold crossed (for a projection alert: 100%).
    pub threshold: Threshold,
    /// Spent in the period when the alert fired.
    pub spent: Money,
    /// The budget's limit.
    pub limit: Money,
    /// The projected end-of-period spend, when known.
    pub projected: Option<Money>,
    /// The period label (`2026-11`, `all-time`, ...).
    pub period: String,
    /// How loud.
    pub severity: Severity,
    /// The user whose call crossed it.
    pub user: String,
    /// When it fired.
    pub fired_at: DateTime<Utc>,
    /// A one-line human summary.
    pub message: String,
    /// The key that makes it fire once (`<budget>:<bp>:<period>`).
    pub key: String,
}

impl Alert {
    /// The one-line summary used as `message`, e-mail subject and Slack
    /// text, built from the other fields.
    pub fn summary(&self) -> String {
        let sev = self.severity.as_str().to_ascii_uppercase();
        let (budget, period) = (&self.budget, &self.period);
        match self.kind {
            AlertKind::Threshold => format!(
                "{sev}: budget `{budget}` reached {} of its limit for {period}: spent {} of {}",
                self.threshold, self.spent, self.limit
            ),
            AlertKind::Projection => format!(
                "{sev}: budget `{budget}` is projected to spend {} in {period}, over its limit of {} (spent {} so far)",
                self.projected.unwrap_or(self.spent),
                self.limit,
                self.spent
            ),
        }
    }

    /// A sample alert (monthly budget, 80%, $160 of $200), for docs and tests.
    pub fn example() -> Alert {
        let spent = Money::from_usd(160).unwrap_or(Money::ZERO);
        let limit = Money::from_usd(200).unwrap_or(Money::ZERO);
        let mut a = Alert {
            budget: "monthly".into(),
            kind: AlertKind::Threshold,
            threshold: Threshold::percent(80),
            spent,
            limit,
            projected: None,
            period: "2026-11".into(),
            severity: Severity::Warning,
            user: "alice".into(),
            fired_at: DateTime::<Utc>::UNIX_EPOCH,
            message: String::new(),
            key: "monthly:8000:2026-11".into(),
        };
        a.message = a.summary();
        a
    }

    /// The alert as JSON, with `spent_usd`, `limit_usd` (and `projected_usd`)
    /// decimal strings added for humans.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        if let Some(o) = v.as_object_mut() {
            o.insert("spent_usd".into(), self.spent.to_decimal_string().into());
            o.insert("limit_usd".into(), self.limit.to_decimal_string().into());
            if let Some(p) = self.projected {
                o.insert("projected_usd".into(), p.to_decimal_string().into());
            }
        }
        v
    }
}

/// Why a sink could not deliver, or could not be built. Messages say what to
/// do; none contains a password or a webhook URL's secret path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// An e-mail address that does not parse.
    #[error("`{address}` is not a valid e-mail address ({reason}): write it as name@example.com or \"Name <name@example.com>\"")]
    InvalidAddress {
        /// The rejected address.
        address: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A sink with nothing to send to, or a bad setting.
    #[error("alert sink misconfigured: {0}")]
    Config(String),
    /// The SMTP server refused or could not be reached.
    #[error("could not send the alert e-mail through {server}: {message}. Check COSTLAYER_SMTP_HOST/PORT/TLS and the credentials")]
    Smtp {
        /// `host:port`.
        server: String,
        /// The server's or the transport's error.
        message: String,
    },
    /// The webhook answered with a non-success status.
    #[error("the alert webhook at {endpoint} answered HTTP {status}: {body}. Check the URL and that the receiver accepts JSON")]
    HttpStatus {
        /// Scheme and host only (the path may be a secret).
        endpoint: String,
        /// The status.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// The webhook could not be reached.
    #[error(
        "could not reach the alert webhook at {endpoint}: {message}. Check the URL and the network"
    )]
    Http {
        /// Scheme and host only.
        endpoint: String,
        /// What failed.
        message: String,
    },
    /// Writing the alert failed.
    #[error("could not write the alert: {0}")]
    Io(#[from] std::io::Error),
    /// A custom sink's error.
    #[error(transparent)]
    Other(crate::BoxError),
}

/// Where alerts go.
///
/// Object-safe (`Arc<dyn AlertSink>`): implement it with
/// `#[async_trait::async_trait]`. `()` drops every alert; a closure
/// `Fn(Alert) -> impl Future<Output = Result<(), SinkError>>` is a sink.
/// The tracker calls `send` from a spawned task and retries it on error, so
/// an implementation should just try once.
#[async_trait]
pub trait AlertSink: Send + Sync + 'static {
    /// Delivers one alert.
    async fn send(&self, alert: &Alert) -> Result<(), SinkError>;

    /// A short name for logs and the recorded delivery failures. Defaults to
    /// `"custom"`.
    fn name(&self) -> &str {
        "custom"
    }

    /// Who receives the alerts, for the dashboard and the outbox (e-mail
    /// recipients, a webhook's host), never a secret. Defaults to `None`.
    fn target(&self) -> Option<String> {
        None
    }
}

#[async_trait]
impl AlertSink for () {
    async fn send(&self, _alert: &Alert) -> Result<(), SinkError> {
        Ok(())
    }

    fn name(&self) -> &str {
        "none"
    }
}

#[async_trait]
impl<F, Fut> AlertSink for F
where
    F: Fn(Alert) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), SinkError>> + Send + 'static,
{
    async fn send(&self, alert: &Alert) -> Result<(), SinkError> {
        self(alert.clone()).await
    }
}

#[async_trait]
impl<S: AlertSink + ?Sized> AlertSink for Arc<S> {
    async fn send(&self, alert: &Alert) -> Result<(), SinkError> {
        (**self).send(alert).await
    }

    fn name(&self) -> &str {
        (**self).name()
    }

    fn target(&self) -> Option<String> {
        (**self).target()
    }
}

/// Scheme, host and port of a URL, without path or query (which may carry a
/// secret, as Slack webhook URLs do).
#[cfg(feature = "webhook")]
pub(crate) fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    // Drop credentials in `user:pass@host`.
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    if scheme.is_empty() {
        format!("{host}/…")
    } else {
        format!("{scheme}://{host}/…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sinks_are_object_safe() {
        fn _obj_safe(_: &dyn AlertSink) {}
        let _: Arc<dyn AlertSink> = Arc::new(());
        let _: Arc<dyn AlertSink> = Arc::new(|_a: Alert| async { Ok(()) });
    }

    #[test]
    fn example_message_and_json() {
        let a = Alert::example();
        assert_eq!(
            a.message,
            "WARNING: budget `monthly` reached 80% of its limit for 2026-11: spent $160.00 of $200.00"
        );
        let v = a.to_json();
        assert_eq!(v["spent"], 160_000_000_000i64);
        assert_eq!(v["spent_usd"], "160.000000000");
        assert_eq!(v["threshold"], "80%");
        assert_eq!(v["severity"], "warning");
    }

    #[cfg(feature = "webhook")]
    #[test]
    fn redaction_keeps_only_the_host() {
        assert_eq!(
            redact_url("https://hooks.slack.com/services/T000/B000/XXXX"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(
            redact_url("http://user:pw@127.0.0.1:8080/x?token=1"),
            "http://127.0.0.1:8080/…"
        );
    }
}
