//! Alerts posted as JSON to a webhook (Slack-compatible).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use super::{redact_url, Alert, AlertSink, SinkError};
use costlayer_core::redact;

/// The body [`WebhookSink`] posts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum WebhookFormat {
    /// The whole [`Alert`] as JSON ([`Alert::to_json`]), with a `text`
    /// field holding the summary (the default).
    #[default]
    Json,
    /// Only `{"text": "<summary>"}`: what Slack, Mattermost and Discord's
    /// Slack-compatible endpoints accept.
    Slack,
}

/// POSTs each alert as JSON to a URL. A non-2xx answer is an error (and the
/// tracker retries it).
///
/// The URL's path and query are never printed (Slack webhook URLs are
/// secrets): `Debug` and errors show the scheme and host only.
///
/// ```
/// use costlayer::alert::{WebhookFormat, WebhookSink};
///
/// let sink = WebhookSink::new("https://hooks.slack.com/services/T0/B0/secret")
///     .unwrap()
///     .format(WebhookFormat::Slack);
/// assert!(!format!("{sink:?}").contains("secret"));
/// assert!(WebhookSink::new("ftp://example.com").is_err());
/// ```
#[derive(Clone)]
pub struct WebhookSink {
    url: String,
    format: WebhookFormat,
    client: reqwest::Client,
    timeout: Duration,
}

impl fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSink")
            .field("endpoint", &redact_url(&self.url))
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl WebhookSink {
    /// A sink posting JSON to `url` (`http://` or `https://`).
    ///
    /// # Errors
    ///
    /// [`SinkError::Config`] if the URL is not an absolute http(s) URL.
    pub fn new(url: impl Into<String>) -> Result<Self, SinkError> {
        let url = url.into();
        let parsed = reqwest::Url::parse(&url).map_err(|e| {
            SinkError::Config(format!(
                "the webhook URL {} is not valid ({e}): write an absolute http(s) URL",
                redact_url(&url)
            ))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(SinkError::Config(format!(
                "the webhook URL {} must start with http:// or https://",
                redact_url(&url)
            )));
        }
        // Its tokens (path, query, password) are masked from every log,
        // error and file from now on.
        redact::register_url(&url);
        Ok(WebhookSink {
            url,
            format: WebhookFormat::Json,
            client: reqwest::Client::new(),
            timeout: Duration::from_secs(10),
        })
    }

    /// Sets the body format. Defaults to [`WebhookFormat::Json`].
    pub fn format(mut self, format: WebhookFormat) -> Self {
        self.format = format;
        self
    }

    /// Shorthand for `.format(WebhookFormat::Slack)`.
    pub fn slack(self) -> Self {
        self.format(WebhookFormat::Slack)
    }

    /// Uses this HTTP client (proxies, custom TLS). Defaults to a new
    /// `reqwest::Client`.
    pub fn client(mut self, client: reqwest::Client) -> Self {
        self.client = client;
        self
    }

    /// How long to wait for the receiver. Defaults to 10 seconds.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The JSON body posted for `alert`.
    pub fn body(&self, alert: &Alert) -> serde_json::Value {
        match self.format {
            WebhookFormat::Slack => serde_json::json!({ "text": alert.message }),
            WebhookFormat::Json => {
                let mut v = alert.to_json();
                if let Some(o) = v.as_object_mut() {
                    o.insert("text".into(), alert.message.clone().into());
                }
                v
            }
        }
    }
}

#[async_trait]
impl AlertSink for WebhookSink {
    async fn send(&self, alert: &Alert) -> Result<(), SinkError> {
        let endpoint = redact_url(&self.url);
        let resp = self
            .client
            .post(&self.url)
            .timeout(self.timeout)
            .json(&self.body(alert))
            .send()
            .await
            .map_err(|e| SinkError::Http {
                endpoint: endpoint.clone(),
                // Without the URL: reqwest's Display includes it.
                message: redact::string(&e.without_url().to_string()),
            })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let body = resp.text().await.unwrap_or_default();
        Err(SinkError::HttpStatus {
            endpoint,
            status: status.as_u16(),
            body: redact::string(&body.chars().take(200).collect::<String>()),
        })
    }

    fn name(&self) -> &str {
        "webhook"
    }

    fn target(&self) -> Option<String> {
        Some(redact_url(&self.url))
    }
}
