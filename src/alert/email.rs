//! Alerts sent by e-mail over SMTP (lettre).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{Alert, AlertSink, SinkError};
use crate::config::{Config, Secret, SmtpTls};

/// Sends each alert as a plain-text e-mail through an SMTP server.
///
/// Addresses are checked when the sink is built, so a typo fails at start-up
/// rather than at the first alert. The password is never printed (`Debug`
/// shows the server, sender and recipients only).
///
/// ```
/// use costlayer::alert::EmailSink;
/// use costlayer::config::SmtpTls;
///
/// let sink = EmailSink::builder("smtp.example.com")
///     .tls(SmtpTls::StartTls)
///     .credentials("alerts", "hunter2")
///     .from("costlayer <alerts@example.com>")
///     .to("oncall@example.com")
///     .build()
///     .unwrap();
/// assert!(!format!("{sink:?}").contains("hunter2"));
///
/// let err = EmailSink::builder("smtp.example.com")
///     .from("alerts@example.com")
///     .to("not an address")
///     .build()
///     .unwrap_err();
/// assert!(err.to_string().contains("not a valid e-mail address"));
/// ```
#[derive(Clone)]
pub struct EmailSink {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    server: String,
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl fmt::Debug for EmailSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailSink")
            .field("server", &self.server)
            .field("from", &self.from.to_string())
            .field(
                "to",
                &self.to.iter().map(ToString::to_string).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// Builds an [`EmailSink`]; see [`EmailSink::builder`].
#[derive(Clone)]
pub struct EmailSinkBuilder {
    host: String,
    port: Option<u16>,
    tls: SmtpTls,
    username: Option<String>,
    password: Option<Secret>,
    from: Option<String>,
    to: Vec<String>,
    timeout: Duration,
}

impl fmt::Debug for EmailSinkBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailSinkBuilder")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password)
            .field("from", &self.from)
            .field("to", &self.to)
            .finish()
    }
}

impl EmailSink {
    /// A builder for a sink sending through the SMTP server `host`.
    pub fn builder(host: impl Into<String>) -> EmailSinkBuilder {
        EmailSinkBuilder {
            host: host.into(),
            port: None,
            tls: SmtpTls::default(),
            username: None,
            password: None,
            from: None,
            to: Vec::new(),
            timeout: Duration::from_secs(30),
        }
    }

    /// The sink described by `config` (`COSTLAYER_SMTP_*`,
    /// `COSTLAYER_ALERT_FROM`, `COSTLAYER_ALERT_EMAILS`), or `None` if no
    /// recipient is configured.
    ///
    /// # Errors
    ///
    /// Recipients without an SMTP host or a from-address, or an invalid
    /// address.
    pub fn from_config(config: &Config) -> Result<Option<EmailSink>, SinkError> {
        if config.alert_emails.is_empty() {
            return Ok(None);
        }
        let host = config.smtp.host.clone().ok_or_else(|| {
            SinkError::Config(
                "alert e-mails are configured but no SMTP server: set COSTLAYER_SMTP_HOST (or [smtp] host in costlayer.toml)".into(),
            )
        })?;
        let mut b = EmailSink::builder(host).tls(config.smtp.tls);
        if let Some(port) = config.smtp.port {
            b = b.port(port);
        }
        if let Some(user) = &config.smtp.username {
            let password = config.smtp.password.clone().unwrap_or_default();
            b = b.credentials(user.clone(), password);
        }
        let from = config.alert_from.clone().ok_or_else(|| {
            SinkError::Config(
                "alert e-mails are configured but no sender: set COSTLAYER_ALERT_FROM (or [alerts] from in costlayer.toml)".into(),
            )
        })?;
        b = b.from(from);
        for to in &config.alert_emails {
            b = b.to(to.clone());
        }
        b.build().map(Some)
    }

    /// The server, as `host:port`.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The e-mail sent for `alert`: subject and plain-text body.
    pub fn render(alert: &Alert) -> (String, String) {
        let subject = format!("[costlayer] {}", alert.message);
        let mut body = format!(
            "{}\n\nBudget:    {}\nPeriod:    {}\nSpent:     {}\nLimit:     {}\nThreshold: {}\nSeverity:  {}\nUser:      {}\nFired at:  {}\n",
            alert.message,
            alert.budget,
            alert.period,
            alert.spent,
            alert.limit,
            alert.threshold,
            alert.severity,
            alert.user,
            alert.fired_at.to_rfc3339(),
        );
        if let Some(p) = alert.projected {
            body.push_str(&format!("Projected: {p}\n"));
        }
        body.push_str("\nRun `cost-tracker` for the dashboard.\n");
        (subject, body)
    }
}

fn mailbox(address: &str) -> Result<Mailbox, SinkError> {
    address
        .trim()
        .parse::<Mailbox>()
        .map_err(|e| SinkError::InvalidAddress {
            address: address.to_owned(),
            reason: e.to_string(),
        })
}

impl EmailSinkBuilder {
    /// The SMTP port. Defaults to 25 without TLS, 587 with STARTTLS and 465
    /// with implicit TLS.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// How the connection is secured. Defaults to [`SmtpTls::StartTls`].
    pub fn tls(mut self, tls: SmtpTls) -> Self {
        self.tls = tls;
        self
    }

    /// The login. Defaults to none (no authentication).
    pub fn credentials(mut self, username: impl Into<String>, password: impl Into<Secret>) -> Self {
        self.username = Some(username.into());
        self.password = Some(password.into());
        self
    }

    /// The sender (`alerts@example.com` or `Name <alerts@example.com>`).
    /// Required.
    pub fn from(mut self, from: impl Into<String>) -> Self {
        self.from = Some(from.into());
        self
    }

    /// Adds a recipient. At least one is required.
    pub fn to(mut self, to: impl Into<String>) -> Self {
        self.to.push(to.into());
        self
    }

    /// How long to wait for the server. Defaults to 30 seconds.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Checks the addresses and builds the sink. Nothing is sent yet.
    ///
    /// # Errors
    ///
    /// [`SinkError::InvalidAddress`] for an address that does not parse;
    /// [`SinkError::Config`] for an empty host, no sender or no recipient.
    pub fn build(self) -> Result<EmailSink, SinkError> {
        let host = self.host.trim().to_owned();
        if host.is_empty() {
            return Err(SinkError::Config(
                "the SMTP host is empty: set COSTLAYER_SMTP_HOST".into(),
            ));
        }
        let from = self.from.as_deref().ok_or_else(|| {
            SinkError::Config("no sender address: set COSTLAYER_ALERT_FROM".into())
        })?;
        let from = mailbox(from)?;
        if self.to.is_empty() {
            return Err(SinkError::Config(
                "no recipient: set COSTLAYER_ALERT_EMAILS (comma-separated)".into(),
            ));
        }
        let to = self
            .to
            .iter()
            .map(|a| mailbox(a))
            .collect::<Result<Vec<_>, _>>()?;
        if self.port == Some(0) {
            return Err(SinkError::Config(
                "SMTP port 0 is not a port: use 1 to 65535 (or leave it unset for 25 / 587 / 465 by TLS mode)"
                    .into(),
            ));
        }
        let port = self.port.unwrap_or(match self.tls {
            SmtpTls::None => 25,
            SmtpTls::StartTls => 587,
            SmtpTls::Tls => 465,
        });
        let tls_err = |e: lettre::transport::smtp::Error| {
            SinkError::Config(format!("cannot set up TLS for {host}: {e}"))
        };
        let mut builder = match self.tls {
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host),
            SmtpTls::StartTls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&host).map_err(tls_err)?
            }
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&host).map_err(tls_err)?,
        }
        .port(port)
        .timeout(Some(self.timeout));
        if let Some(user) = self.username {
            let password = self.password.unwrap_or_default();
            // The password and its AUTH PLAIN / LOGIN encodings are masked
            // from every log, error and file from now on.
            costlayer_core::redact::register_credentials(&user, password.expose());
            builder = builder.credentials(Credentials::new(user, password.expose().to_owned()));
        }
        Ok(EmailSink {
            transport: builder.build(),
            server: format!("{host}:{port}"),
            from,
            to,
        })
    }
}

#[async_trait]
impl AlertSink for EmailSink {
    async fn send(&self, alert: &Alert) -> Result<(), SinkError> {
        let (subject, body) = EmailSink::render(alert);
        let mut msg = Message::builder()
            .from(self.from.clone())
            .subject(subject)
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            msg = msg.to(to.clone());
        }
        // Plain 7-bit when the text allows it (readable in any client and
        // in raw form); lettre picks quoted-printable or base64 otherwise.
        let body = Body::new_with_encoding(body.clone(), ContentTransferEncoding::SevenBit)
            .unwrap_or_else(|_| Body::new(body));
        let msg = msg.body(body).map_err(|e| SinkError::Smtp {
            server: self.server.clone(),
            message: format!("could not build the message: {e}"),
        })?;
        self.transport
            .send(msg)
            .await
            .map(|_| ())
            .map_err(|e| SinkError::Smtp {
                server: self.server.clone(),
                // A server may quote the client's AUTH line in its reply.
                message: costlayer_core::redact::string(&e.to_string()),
            })
    }

    fn name(&self) -> &str {
        "email"
    }

    fn target(&self) -> Option<String> {
        Some(
            self.to
                .iter()
                .map(|m| m.email.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        )
    }
}
