//! The shared HTTP transport: a [`Codec`] (pure translation) turned into a
//! `tower::Service<ChatRequest>` over one `reqwest::Client`.
//!
//! [`HttpTransport`] and everything holding a `reqwest::Client` need the
//! `http` feature (on by default); the codec contract, [`ApiKey`] and the
//! header helpers are always there.
//!
//! A provider adapter is a codec: it builds the HTTP request from a
//! [`ChatRequest`] and reads the HTTP response into a [`ChatResponse`] or an
//! [`Error`]. It never does I/O, so it is tested on fixtures without a
//! server. [`HttpTransport`] does the I/O, measures latency and maps
//! transport failures (timeouts, refused connections, truncated bodies) to
//! typed errors.

use std::fmt;
#[cfg(feature = "http")]
use std::future::Future;
#[cfg(feature = "http")]
use std::pin::Pin;
use std::sync::Arc;
#[cfg(feature = "http")]
use std::task::{Context, Poll};
#[cfg(feature = "http")]
use std::time::Instant;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};

#[cfg(feature = "http")]
use crate::stream::{ChatStream, StreamCodec, StreamRequest};
use crate::{ChatRequest, ChatResponse, Error};

/// A secret API key. `Debug` and `Display` print `ApiKey(****)`; only
/// [`ApiKey::expose`] gives the value, for the one header that needs it.
///
/// ```
/// use costlayer_core::ApiKey;
/// let key = ApiKey::new("sk-secret-123");
/// assert_eq!(format!("{key:?}"), "ApiKey(****)");
/// assert_eq!(key.expose(), "sk-secret-123");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(Arc<str>);

impl ApiKey {
    /// Wraps a key.
    ///
    /// The key is registered with [`crate::redact`], so it is masked from
    /// every string the crate logs, stores or prints from then on (a
    /// provider or proxy that echoes it into a response id or an error).
    pub fn new(key: impl Into<String>) -> Self {
        let key: String = key.into();
        crate::redact::register_secret(&key);
        ApiKey(Arc::from(key))
    }

    /// The key itself. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Reads a key from the first of `vars` that is set and not empty.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming every variable tried.
    pub fn from_env(vars: &[&str]) -> Result<Self, Error> {
        for var in vars {
            if let Ok(v) = std::env::var(var) {
                let v = v.trim();
                if !v.is_empty() {
                    return Ok(ApiKey::new(v));
                }
            }
        }
        Err(Error::config(format!(
            "no API key: set the environment variable {} (or pass the key to the client builder)",
            vars.join(" or ")
        )))
    }

    /// Builds a header value holding the key, marked sensitive so that
    /// HTTP-level debug logging does not print it.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the key contains characters a header cannot hold.
    pub fn header_value(&self, prefix: &str) -> Result<http::HeaderValue, Error> {
        let mut v = http::HeaderValue::from_str(&format!("{prefix}{}", self.expose())).map_err(
            |_| Error::config("the API key contains characters that cannot be sent in an HTTP header: check for stray quotes or newlines"),
        )?;
        v.set_sensitive(true);
        Ok(v)
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(****)")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

/// The HTTP answer handed to [`Codec::decode`].
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

/// Pure translation between costlayer's types and one provider's HTTP API.
///
/// Implementations hold their base URL and key, and do no I/O.
pub trait Codec: Send + Sync + 'static {
    /// The provider's name as written to the ledger (`openai`, ...).
    fn provider(&self) -> &'static str;

    /// Builds the HTTP request for a chat call.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRequest`] or [`Error::Config`] if the request cannot be
    /// expressed for this provider.
    fn encode(&self, req: &ChatRequest) -> Result<http::Request<Bytes>, Error>;

    /// Reads the HTTP response: a [`ChatResponse`] on success, or the typed
    /// error the status and body describe. `latency` is filled in by the
    /// transport afterwards.
    ///
    /// # Errors
    ///
    /// The provider's error, or [`Error::Decode`] for an unreadable body.
    fn decode(&self, req: &ChatRequest, resp: HttpResponse) -> Result<ChatResponse, Error>;
}

/// Timeouts of the shared transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportConfig {
    /// Whole-request timeout. Defaults to 600 s (long generations are slow).
    pub timeout: Duration,
    /// Connect timeout. Defaults to 10 s.
    pub connect_timeout: Duration,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            timeout: Duration::from_secs(600),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

impl TransportConfig {
    /// Builds a `reqwest::Client` with these timeouts (rustls, no system
    /// OpenSSL needed).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the TLS backend cannot start.
    #[cfg(feature = "http")]
    pub fn client(&self) -> Result<reqwest::Client, Error> {
        reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .user_agent(concat!("costlayer/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::config(format!("could not build the HTTP client: {e}")))
    }
}

/// The connection settings every provider builder shares: API key, base
/// URL, timeouts and an optional shared `reqwest::Client`.
///
/// A provider builder holds one, forwards its setters to it (see
/// [`client_settings_setters!`](crate::client_settings_setters)), reads the
/// key and base URL into its codec, and finally calls
/// [`transport`](Self::transport).
///
/// ```
/// use std::time::Duration;
/// use costlayer_core::transport::ClientSettings;
///
/// let env = |var: &str| match var {
///     "ACME_API_KEY" => Some(" acme-secret ".to_owned()),
///     _ => None,
/// };
/// let settings = ClientSettings::from_lookup(&["ACME_API_KEY"], "ACME_BASE_URL", env)
///     .timeout(Duration::from_secs(30));
/// assert_eq!(settings.get_api_key().map(|k| k.expose()), Some("acme-secret"));
/// assert_eq!(settings.get_base_url(), None);
/// assert!(!format!("{settings:?}").contains("acme-secret"));
/// ```
#[derive(Clone, Default)]
pub struct ClientSettings {
    api_key: Option<ApiKey>,
    base_url: Option<String>,
    timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
    #[cfg(feature = "http")]
    client: Option<reqwest::Client>,
}

impl fmt::Debug for ClientSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ClientSettings");
        d.field("api_key", &self.api_key)
            .field(
                "base_url",
                &self.base_url.as_deref().map(crate::redact::url),
            )
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout);
        #[cfg(feature = "http")]
        d.field("client", &self.client.is_some());
        d.finish()
    }
}

impl ClientSettings {
    /// Settings with nothing set.
    pub fn new() -> Self {
        ClientSettings::default()
    }

    /// Settings preset from the environment: the key from the first of
    /// `key_vars` that is set and not blank, the base URL from
    /// `base_url_var` when set and not blank. Values are trimmed. A missing
    /// key is not an error here: the provider's `build()` reports it.
    pub fn from_env(key_vars: &[&str], base_url_var: &str) -> Self {
        Self::from_lookup(key_vars, base_url_var, |var| std::env::var(var).ok())
    }

    /// As [`from_env`](Self::from_env), reading variables through `lookup`
    /// (for tests, or configuration that is not the process environment).
    pub fn from_lookup(
        key_vars: &[&str],
        base_url_var: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Self {
        let get = |var: &str| {
            lookup(var)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        ClientSettings {
            api_key: key_vars.iter().find_map(|v| get(v)).map(ApiKey::new),
            base_url: get(base_url_var),
            ..ClientSettings::default()
        }
    }

    /// The API key. Held in an [`ApiKey`]: never printed. Defaults to none.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(ApiKey::new(key));
        self
    }

    /// The base URL, checked by the provider's codec at build time.
    /// Defaults to none (the provider's own default).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// The whole-request timeout (connect, headers and body). Defaults to
    /// 600 s ([`TransportConfig::default`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The connect timeout (ignored when [`client`](Self::client) is given).
    /// Defaults to 10 s ([`TransportConfig::default`]).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// A `reqwest::Client` to share one connection pool between providers.
    /// Defaults to a new rustls client ([`TransportConfig::client`]).
    #[cfg(feature = "http")]
    pub fn client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// The API key, if one was given.
    pub fn get_api_key(&self) -> Option<&ApiKey> {
        self.api_key.as_ref()
    }

    /// The base URL, if one was given.
    pub fn get_base_url(&self) -> Option<&str> {
        self.base_url.as_deref()
    }

    /// The timeouts, with the defaults filled in.
    pub fn transport_config(&self) -> TransportConfig {
        let defaults = TransportConfig::default();
        TransportConfig {
            timeout: self.timeout.unwrap_or(defaults.timeout),
            connect_timeout: self.connect_timeout.unwrap_or(defaults.connect_timeout),
        }
    }

    /// The transport for `codec`: over the given client, or a new one with
    /// these timeouts. The key and base URL are the codec's business; read
    /// them with [`get_api_key`](Self::get_api_key) and
    /// [`get_base_url`](Self::get_base_url) first.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if a new HTTP client cannot start.
    #[cfg(feature = "http")]
    pub fn transport<C: Codec>(self, codec: C) -> Result<HttpTransport<C>, Error> {
        let config = self.transport_config();
        let client = match self.client {
            Some(c) => c,
            None => config.client()?,
        };
        Ok(HttpTransport::new(codec, client, config.timeout))
    }
}

/// Writes the [`ClientSettings`] setters on a provider builder, each
/// forwarding to the builder's `ClientSettings` field: `api_key` and
/// `base_url` with the docs given (they differ by provider), `timeout`,
/// `connect_timeout` and `client` with shared docs.
///
/// ```
/// use costlayer_core::transport::ClientSettings;
///
/// /// Builds an Acme client.
/// #[derive(Debug, Default)]
/// pub struct AcmeBuilder {
///     settings: ClientSettings,
/// }
///
/// impl AcmeBuilder {
///     costlayer_core::client_settings_setters! {
///         settings;
///         /// The Acme API key. Required.
///         api_key;
///         /// The base URL. Defaults to `https://api.acme.example`.
///         base_url;
///     }
/// }
///
/// let b = AcmeBuilder::default()
///     .api_key("k")
///     .timeout(std::time::Duration::from_secs(5));
/// assert_eq!(b.settings.get_api_key().map(|k| k.expose()), Some("k"));
/// assert_eq!(b.settings.transport_config().timeout.as_secs(), 5);
/// ```
#[macro_export]
macro_rules! client_settings_setters {
    (
        $field:ident;
        $(#[$key_doc:meta])*
        api_key;
        $(#[$url_doc:meta])*
        base_url;
    ) => {
        $(#[$key_doc])*
        pub fn api_key(mut self, key: impl Into<String>) -> Self {
            self.$field = self.$field.api_key(key);
            self
        }

        $(#[$url_doc])*
        pub fn base_url(mut self, url: impl Into<String>) -> Self {
            self.$field = self.$field.base_url(url);
            self
        }

        /// The whole-request timeout (connect, headers and body); expiry is
        /// [`Error::Timeout`](costlayer_core::Error::Timeout). Defaults to 600 s.
        pub fn timeout(mut self, timeout: ::std::time::Duration) -> Self {
            self.$field = self.$field.timeout(timeout);
            self
        }

        /// The connect timeout (ignored when [`client`](Self::client) is given).
        /// Defaults to 10 s.
        pub fn connect_timeout(mut self, timeout: ::std::time::Duration) -> Self {
            self.$field = self.$field.connect_timeout(timeout);
            self
        }

        /// A `reqwest::Client` to share one connection pool between providers.
        /// Defaults to a new rustls client.
        pub fn client(mut self, client: $crate::transport::__private::Client) -> Self {
            self.$field = self.$field.client(client);
            self
        }
    };
}

/// Writes the delegation of a provider client to the [`HttpTransport`] it
/// wraps, so that every client says it once.
///
/// - `accessors(field: Codec);`, inside the client's inherent `impl`:
///   `codec`, `get_ref` and `into_inner`, with shared docs.
/// - `services(Client, field); ChatRequest; StreamRequest;`, at module
///   level: `tower_service::Service<ChatRequest>` and
///   `Service<StreamRequest>` for the client, each forwarding `poll_ready`
///   and `call` to the transport. Doc comments written before
///   `ChatRequest;` and `StreamRequest;` go on the two impls (what the
///   provider's stream is, say).
///
/// The client is a struct holding an `HttpTransport<Codec>` in `field`; the
/// codec must be a [`StreamCodec`](crate::StreamCodec). Constructors
/// (`from_transport`, `build`) stay with the client: they differ.
///
/// ```
/// use costlayer_core::stream::StreamDecoder;
/// use costlayer_core::transport::{ClientSettings, HttpResponse};
/// use costlayer_core::{
///     sse::SseEvent, ChatDelta, ChatRequest, ChatResponse, Codec, Error, HttpTransport,
///     StreamCodec, StreamRequest,
/// };
///
/// # pub struct AcmeDecoder;
/// # impl StreamDecoder for AcmeDecoder {
/// #     fn event(&mut self, _: &SseEvent) -> Result<Option<ChatDelta>, Error> { Ok(None) }
/// #     fn finish(&mut self) -> Result<Option<ChatDelta>, Error> { Ok(None) }
/// # }
/// /// Translation for the Acme API.
/// #[derive(Debug)]
/// pub struct AcmeCodec;
/// # impl Codec for AcmeCodec {
/// #     fn provider(&self) -> &'static str { "acme" }
/// #     fn encode(&self, _: &ChatRequest) -> Result<http::Request<bytes::Bytes>, Error> {
/// #         Err(Error::config("offline"))
/// #     }
/// #     fn decode(&self, _: &ChatRequest, _: HttpResponse) -> Result<ChatResponse, Error> {
/// #         Err(Error::config("offline"))
/// #     }
/// # }
/// # impl StreamCodec for AcmeCodec {
/// #     type Decoder = AcmeDecoder;
/// #     fn encode_stream(&self, _: &ChatRequest) -> Result<http::Request<bytes::Bytes>, Error> {
/// #         Err(Error::config("offline"))
/// #     }
/// #     fn stream_decoder(&self, _: &ChatRequest) -> AcmeDecoder { AcmeDecoder }
/// # }
///
/// /// The Acme client.
/// #[derive(Debug, Clone)]
/// pub struct Acme {
///     inner: HttpTransport<AcmeCodec>,
/// }
///
/// impl Acme {
///     costlayer_core::transport_client! {
///         accessors(inner: AcmeCodec);
///     }
/// }
///
/// costlayer_core::transport_client! {
///     services(Acme, inner);
///     ChatRequest;
///     /// Streamed Acme calls.
///     StreamRequest;
/// }
///
/// fn is_service<S: tower_service::Service<ChatRequest> + tower_service::Service<StreamRequest>>(_: &S) {}
///
/// let acme = Acme { inner: ClientSettings::new().transport(AcmeCodec)? };
/// is_service(&acme);
/// assert_eq!(acme.codec().provider(), "acme");
/// assert_eq!(acme.get_ref().codec().provider(), "acme");
/// let transport: HttpTransport<AcmeCodec> = acme.into_inner();
/// assert!(format!("{transport:?}").contains("acme"));
/// # Ok::<(), Error>(())
/// ```
#[macro_export]
macro_rules! transport_client {
    (accessors($field:ident: $codec:ty);) => {
        /// The codec (request and response translation).
        pub fn codec(&self) -> &$codec {
            self.$field.codec()
        }

        /// The shared transport.
        pub fn get_ref(&self) -> &$crate::transport::HttpTransport<$codec> {
            &self.$field
        }

        /// The shared transport, by value.
        pub fn into_inner(self) -> $crate::transport::HttpTransport<$codec> {
            self.$field
        }
    };
    (
        services($client:ty, $field:ident);
        $(#[$chat_doc:meta])*
        ChatRequest;
        $(#[$stream_doc:meta])*
        StreamRequest;
    ) => {
        $crate::transport_client! {
            @service($client, $field, $crate::ChatRequest, $crate::ChatResponse,
                $crate::transport::ResponseFuture);
            $(#[$chat_doc])*
        }
        $crate::transport_client! {
            @service($client, $field, $crate::StreamRequest, $crate::ChatStream,
                $crate::transport::StreamFuture);
            $(#[$stream_doc])*
        }
    };
    // One `Service` impl forwarding to the transport; used by `services`.
    (
        @service($client:ty, $field:ident, $req:ty, $resp:ty, $future:ty);
        $(#[$doc:meta])*
    ) => {
        $(#[$doc])*
        impl $crate::transport::__private::Service<$req> for $client {
            type Response = $resp;
            type Error = $crate::Error;
            type Future = $future;

            fn poll_ready(
                &mut self,
                cx: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<::std::result::Result<(), $crate::Error>> {
                $crate::transport::__private::Service::<$req>::poll_ready(&mut self.$field, cx)
            }

            fn call(&mut self, req: $req) -> Self::Future {
                $crate::transport::__private::Service::<$req>::call(&mut self.$field, req)
            }
        }
    };
}

#[doc(hidden)]
#[cfg(feature = "http")]
pub mod __private {
    //! Paths used by [`client_settings_setters!`](crate::client_settings_setters)
    //! and [`transport_client!`](crate::transport_client).
    pub use reqwest::Client;
    pub use tower_service::Service;
}

/// A [`Codec`] turned into a `tower::Service<ChatRequest>`.
///
/// Cloning is cheap and shares the connection pool.
#[cfg(feature = "http")]
pub struct HttpTransport<C> {
    codec: Arc<C>,
    client: reqwest::Client,
    timeout: Duration,
}

#[cfg(feature = "http")]
impl<C> Clone for HttpTransport<C> {
    fn clone(&self) -> Self {
        HttpTransport {
            codec: Arc::clone(&self.codec),
            client: self.client.clone(),
            timeout: self.timeout,
        }
    }
}

#[cfg(feature = "http")]
impl<C: Codec> fmt::Debug for HttpTransport<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpTransport")
            .field("provider", &self.codec.provider())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "http")]
impl<C: Codec> HttpTransport<C> {
    /// A transport for `codec` over `client`, with a whole-request timeout.
    pub fn new(codec: C, client: reqwest::Client, timeout: Duration) -> Self {
        HttpTransport {
            codec: Arc::new(codec),
            client,
            timeout,
        }
    }

    /// The codec.
    pub fn codec(&self) -> &C {
        &self.codec
    }

    /// The HTTP client (shared connection pool).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends one HTTP request and reads the whole response, mapping
    /// transport failures to [`Error::Timeout`], [`Error::Connection`] or
    /// [`Error::Decode`]. Used for chat calls and for any other endpoint of
    /// the provider (token counting, batches).
    ///
    /// # Errors
    ///
    /// Transport failures only; HTTP error statuses are returned as a
    /// response for the codec to read.
    pub fn send(
        &self,
        req: http::Request<Bytes>,
    ) -> impl Future<Output = Result<HttpResponse, Error>> + Send + 'static {
        send(
            self.client.clone(),
            self.codec.provider(),
            self.timeout,
            req,
        )
    }
}

/// Maps a reqwest failure to the typed transport error.
#[cfg(feature = "http")]
fn transport_error(provider: &'static str, timeout: Duration, e: &reqwest::Error) -> Error {
    if e.is_timeout() {
        Error::Timeout {
            provider: provider.to_owned(),
            after: timeout,
        }
    } else if e.is_connect() || e.is_request() {
        Error::Connection {
            provider: provider.to_owned(),
            // reqwest names the URL, credentials included.
            message: crate::redact::string(&error_chain(e)),
        }
    } else {
        Error::Decode {
            provider: provider.to_owned(),
            message: crate::redact::string(&format!(
                "the body could not be read: {}",
                error_chain(e)
            )),
            body_snippet: String::new(),
        }
    }
}

/// Sends a request and waits for the response head. `body_timeout`: whether
/// the timeout also covers reading the body (not for streams, whose reads
/// are bounded by an idle timeout instead).
#[cfg(feature = "http")]
async fn send_head(
    client: &reqwest::Client,
    provider: &'static str,
    timeout: Duration,
    req: http::Request<Bytes>,
    body_timeout: bool,
) -> Result<reqwest::Response, Error> {
    let mut req = reqwest::Request::try_from(req).map_err(|e| {
        Error::config(crate::redact::string(&format!(
            "invalid request URL for {provider}: {e}. Check the base URL"
        )))
    })?;
    if body_timeout {
        // reqwest's per-request timeout covers connect, headers and the body.
        *req.timeout_mut() = Some(timeout);
        client
            .execute(req)
            .await
            .map_err(|e| transport_error(provider, timeout, &e))
    } else {
        match tokio::time::timeout(timeout, client.execute(req)).await {
            Ok(r) => r.map_err(|e| transport_error(provider, timeout, &e)),
            Err(_) => Err(Error::Timeout {
                provider: provider.to_owned(),
                after: timeout,
            }),
        }
    }
}

#[cfg(feature = "http")]
async fn send(
    client: reqwest::Client,
    provider: &'static str,
    timeout: Duration,
    req: http::Request<Bytes>,
) -> Result<HttpResponse, Error> {
    let resp = send_head(&client, provider, timeout, req, true).await?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .bytes()
        .await
        .map_err(|e| transport_error(provider, timeout, &e))?;
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

#[cfg(feature = "http")]
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// The future returned by [`HttpTransport`].
#[cfg(feature = "http")]
pub type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<ChatResponse, Error>> + Send + 'static>>;

#[cfg(feature = "http")]
impl<C: Codec> tower_service::Service<ChatRequest> for HttpTransport<C> {
    type Response = ChatResponse;
    type Error = Error;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        // reqwest's pool has no back-pressure to report.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: ChatRequest) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { call(this, req).await.map_err(Error::redacted) })
    }
}

/// One call through the transport; the caller redacts the error.
#[cfg(feature = "http")]
async fn call<C: Codec>(this: HttpTransport<C>, req: ChatRequest) -> Result<ChatResponse, Error> {
    let http_req = this.codec.encode(&req)?;
    let started = Instant::now();
    tracing::debug!(provider = this.codec.provider(), model = %req.model, "sending request");
    let resp = this.send(http_req).await?;
    let latency = started.elapsed();
    let mut out = this.codec.decode(&req, resp)?;
    out.latency = latency;
    if out.provider.is_empty() {
        out.provider = this.codec.provider().to_owned();
    }
    // A provider or proxy that echoes a key into its response id must not
    // put it in the ledger.
    if let Some(id) = &mut out.request_id {
        if let std::borrow::Cow::Owned(clean) = crate::redact::text(id) {
            *id = clean.into();
        }
    }
    Ok(out)
}

/// The future returned by [`HttpTransport`] for a streamed call.
#[cfg(feature = "http")]
pub type StreamFuture = Pin<Box<dyn Future<Output = Result<ChatStream, Error>> + Send + 'static>>;

/// Streamed calls: the future resolves with the provider's first delta
/// already read (so an error before it can be retried), the stream then
/// yields every delta; each read waits at most the transport's timeout.
#[cfg(feature = "http")]
impl<C: StreamCodec> tower_service::Service<StreamRequest> for HttpTransport<C>
where
    C::Decoder: Unpin,
{
    type Response = ChatStream;
    type Error = Error;
    type Future = StreamFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: StreamRequest) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { stream_call(this, req).await.map_err(Error::redacted) })
    }
}

/// One streamed call through the transport; the caller redacts the error.
#[cfg(feature = "http")]
async fn stream_call<C: StreamCodec>(
    this: HttpTransport<C>,
    req: StreamRequest,
) -> Result<ChatStream, Error>
where
    C::Decoder: Unpin,
{
    let req = req.into_inner();
    let provider = this.codec.provider();
    let http_req = this.codec.encode_stream(&req)?;
    let started = Instant::now();
    tracing::debug!(provider, model = %req.model, "sending streamed request");
    let resp = send_head(&this.client, provider, this.timeout, http_req, false).await?;
    let status = resp.status();
    if !status.is_success() {
        let headers = resp.headers().clone();
        let body = match tokio::time::timeout(this.timeout, resp.bytes()).await {
            Ok(b) => b.map_err(|e| transport_error(provider, this.timeout, &e))?,
            Err(_) => Bytes::new(),
        };
        let http = HttpResponse {
            status,
            headers,
            body,
        };
        return crate::stream::error_or_whole(&*this.codec, &req, http, started);
    }
    let body: Pin<Box<dyn futures_core::Stream<Item = reqwest::Result<Bytes>> + Send>> =
        Box::pin(resp.bytes_stream());
    let mut deltas = crate::stream::SseDeltas {
        body,
        parser: crate::sse::SseParser::new(),
        decoder: this.codec.stream_decoder(&req),
        pending: std::collections::VecDeque::new(),
        provider,
        idle: this.timeout,
        sleep: None,
        deltas: 0,
        body_ended: false,
        tail_error: None,
        finished: false,
    };
    let first =
        std::future::poll_fn(|cx| futures_core::Stream::poll_next(Pin::new(&mut deltas), cx)).await;
    let ttfd = started.elapsed();
    match first {
        None => Err(crate::stream::stream_cut(provider, 0)),
        Some(Err(e)) => Err(e),
        Some(Ok(d)) => {
            deltas.unread(d);
            let mut s = ChatStream::new(provider, deltas);
            s.set_time_to_first_delta(ttfd);
            Ok(s)
        }
    }
}

/// At most `max` characters of a body, for error messages.
pub fn body_snippet(body: &[u8], max: usize) -> String {
    let s = String::from_utf8_lossy(body);
    let s = crate::redact::text(&s);
    let mut out: String = s.chars().take(max).collect();
    if s.chars().count() > max {
        out.push('…');
    }
    out
}

/// The wait a response asks for, from the standard headers: `retry-after-ms`
/// (milliseconds, OpenAI and Anthropic SDKs), then `retry-after` (seconds, or
/// an HTTP-date measured against `now`). A date in the past gives zero.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use http::HeaderMap;
/// use costlayer_core::transport::retry_after_from_headers;
///
/// let mut h = HeaderMap::new();
/// h.insert("retry-after", "7".parse().unwrap());
/// assert_eq!(retry_after_from_headers(&h, SystemTime::now()), Some(Duration::from_secs(7)));
/// ```
pub fn retry_after_from_headers(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        if ms.is_finite() && ms >= 0.0 {
            return Some(Duration::from_secs_f64(ms / 1000.0));
        }
    }
    let v = get("retry-after")?;
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The `x-should-retry` header (`true`/`false`), which OpenAI and Anthropic
/// send to override the status-based decision.
pub fn should_retry_header(headers: &HeaderMap) -> Option<bool> {
    match headers.get("x-should-retry")?.to_str().ok()?.trim() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// Applies the `x-should-retry` header (see [`should_retry_header`]) to an
/// error classified from the status: the server's word wins over the
/// status-based guess.
///
/// - `x-should-retry: true` on an error that is not retryable (a 409 lock
///   timeout, say) turns it into [`Error::Server`], which is.
/// - `x-should-retry: false` on a 429 turns it into [`Error::QuotaExceeded`]
///   (the limit will not lift by waiting); on an overload or server error it
///   becomes [`Error::InvalidRequest`], which is not retried.
///
/// Other errors, and responses without the header, are returned unchanged.
///
/// ```
/// use http::{HeaderMap, StatusCode};
/// use costlayer_core::transport::{apply_should_retry, error_for_status};
///
/// let mut h = HeaderMap::new();
/// h.insert("x-should-retry", "true".parse().unwrap());
/// let e = error_for_status("openai", StatusCode::CONFLICT, "lock timeout".into(), None);
/// assert!(!e.is_retryable());
/// assert!(apply_should_retry(e, &h).is_retryable());
/// ```
pub fn apply_should_retry(err: Error, headers: &HeaderMap) -> Error {
    match (should_retry_header(headers), err) {
        (
            Some(true),
            Error::InvalidRequest {
                provider,
                status,
                message,
            },
        ) => Error::Server {
            provider,
            status,
            message,
            retry_after: None,
        },
        (
            Some(false),
            Error::RateLimited {
                provider, message, ..
            },
        ) => Error::QuotaExceeded { provider, message },
        (
            Some(false),
            Error::Overloaded {
                provider,
                status,
                message,
                ..
            }
            | Error::Server {
                provider,
                status,
                message,
                ..
            },
        ) => Error::InvalidRequest {
            provider,
            status,
            message: format!("{message} (the provider said not to retry)"),
        },
        (_, err) => err,
    }
}

/// Merges `extra` into a JSON request body, last, so it wins: objects are
/// merged key by key (recursively), any other value replaces what was there.
/// This is how [`ChatRequest::extra`] reaches every provider, so
/// `{"generationConfig": {"seed": 7}}` adds a field to Gemini's
/// `generationConfig` without dropping the ones costlayer set.
///
/// ```
/// use serde_json::json;
/// use costlayer_core::transport::merge_extra;
///
/// let mut body = json!({"model": "m", "config": {"a": 1, "b": 2}});
/// let extra = json!({"config": {"b": 3}, "seed": 7});
/// merge_extra(&mut body, extra.as_object().unwrap());
/// assert_eq!(body, json!({"model": "m", "config": {"a": 1, "b": 3}, "seed": 7}));
/// ```
pub fn merge_extra(
    body: &mut serde_json::Value,
    extra: &serde_json::Map<String, serde_json::Value>,
) {
    let Some(obj) = body.as_object_mut() else {
        return;
    };
    for (k, v) in extra {
        match (obj.get_mut(k), v) {
            (Some(existing @ serde_json::Value::Object(_)), serde_json::Value::Object(add)) => {
                merge_extra(existing, add);
            }
            _ => {
                obj.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Checks and normalises a base URL for a codec: it must be an absolute
/// `http://` or `https://` URL; a trailing `/` is removed so paths can be
/// appended.
///
/// # Errors
///
/// [`Error::Config`] naming `provider` and saying what a valid URL looks like.
///
/// ```
/// use costlayer_core::transport::normalize_base_url;
/// assert_eq!(normalize_base_url("openai", "http://127.0.0.1:8080/v1/").unwrap(), "http://127.0.0.1:8080/v1");
/// assert!(normalize_base_url("openai", "api.openai.com").is_err());
/// ```
pub fn normalize_base_url(provider: &str, url: &str) -> Result<String, Error> {
    let url = url.trim();
    let bad = || {
        let shown = crate::redact::url(url);
        Error::config(format!(
            "invalid {provider} base URL {shown:?}: use an absolute http:// or https:// URL such as https://proxy.example.com/v1"
        ))
    };
    let uri: http::Uri = url.parse().map_err(|_| bad())?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(h)) if !h.is_empty() => {}
        _ => return Err(bad()),
    }
    if uri.query().is_some() || url.contains('#') {
        return Err(bad());
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// The generic mapping of an HTTP error status to an [`Error`], for codecs
/// to refine with what the body says (context length, quota, ...).
pub fn error_for_status(
    provider: &str,
    status: StatusCode,
    message: String,
    retry_after: Option<Duration>,
) -> Error {
    let provider = provider.to_owned();
    match status.as_u16() {
        429 => Error::RateLimited {
            provider,
            message,
            retry_after,
        },
        401 | 403 => Error::Authentication {
            provider,
            status: status.as_u16(),
            message,
        },
        402 => Error::QuotaExceeded { provider, message },
        408 => Error::Timeout {
            provider,
            after: Duration::ZERO,
        },
        503 | 529 => Error::Overloaded {
            provider,
            status: status.as_u16(),
            message,
            retry_after,
        },
        s if s >= 500 => Error::Server {
            provider,
            status: s,
            message,
            retry_after,
        },
        s => Error::InvalidRequest {
            provider,
            status: s,
            message,
        },
    }
}

#[cfg(all(test, feature = "http"))]
mod tests {
    use super::*;

    #[test]
    fn retry_after_variants() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut h = HeaderMap::new();
        h.insert("retry-after", "2".parse().expect("header"));
        assert_eq!(
            retry_after_from_headers(&h, now),
            Some(Duration::from_secs(2))
        );
        h.insert("retry-after-ms", "1500".parse().expect("header"));
        assert_eq!(
            retry_after_from_headers(&h, now),
            Some(Duration::from_millis(1500))
        );
        let mut h = HeaderMap::new();
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        h.insert("retry-after", later.parse().expect("header"));
        assert_eq!(
            retry_after_from_headers(&h, now),
            Some(Duration::from_secs(30))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        h.insert("retry-after", earlier.parse().expect("header"));
        assert_eq!(retry_after_from_headers(&h, now), Some(Duration::ZERO));
        h.insert("retry-after", "soon".parse().expect("header"));
        assert_eq!(retry_after_from_headers(&h, now), None);
        h.insert("retry-after", "-3".parse().expect("header"));
        assert_eq!(retry_after_from_headers(&h, now), None);
    }

    #[test]
    fn status_mapping() {
        let e = |s: u16| {
            error_for_status(
                "p",
                StatusCode::from_u16(s).expect("status"),
                "m".into(),
                None,
            )
        };
        assert!(matches!(e(429), Error::RateLimited { .. }));
        assert!(matches!(e(529), Error::Overloaded { status: 529, .. }));
        assert!(matches!(e(503), Error::Overloaded { .. }));
        assert!(matches!(e(502), Error::Server { status: 502, .. }));
        assert!(matches!(e(401), Error::Authentication { .. }));
        assert!(matches!(e(422), Error::InvalidRequest { status: 422, .. }));
        assert!(!e(404).is_retryable());
        assert!(e(500).is_retryable());
    }

    #[test]
    fn api_key_never_printed() {
        let k = ApiKey::new("sk-live-abcdef");
        assert!(!format!("{k:?} {k}").contains("abcdef"));
        let hv = k.header_value("Bearer ").expect("valid");
        assert!(hv.is_sensitive());
        assert!(!format!("{hv:?}").contains("abcdef"));
        assert!(ApiKey::new("bad\nkey").header_value("").is_err());
    }

    #[test]
    fn should_retry_header_overrides() {
        let mut no = HeaderMap::new();
        no.insert("x-should-retry", "false".parse().expect("header"));
        let e = |s: u16| {
            error_for_status(
                "p",
                StatusCode::from_u16(s).expect("status"),
                "m".into(),
                None,
            )
        };
        assert!(matches!(
            apply_should_retry(e(429), &no),
            Error::QuotaExceeded { .. }
        ));
        let server = apply_should_retry(e(500), &no);
        assert!(matches!(server, Error::InvalidRequest { status: 500, .. }));
        assert!(!server.is_retryable());
        // Without the header nothing changes.
        assert!(apply_should_retry(e(500), &HeaderMap::new()).is_retryable());
        assert!(!apply_should_retry(e(400), &HeaderMap::new()).is_retryable());
    }

    #[test]
    fn base_urls() {
        for bad in [
            "",
            "localhost:8080",
            "ftp://x",
            "http://",
            "https://x/v1?key=1",
            "https://x/#a",
        ] {
            assert!(normalize_base_url("p", bad).is_err(), "{bad}");
        }
        assert_eq!(
            normalize_base_url("p", " https://gw.example.com/openai/v1/ ").expect("valid"),
            "https://gw.example.com/openai/v1"
        );
    }

    #[test]
    fn client_settings_from_lookup_and_defaults() {
        let env = |v: &str| match v {
            "A_KEY" => Some("  ".to_owned()),
            "B_KEY" => Some(" b-key ".to_owned()),
            "X_URL" => Some("http://127.0.0.1:9".to_owned()),
            _ => None,
        };
        // A blank first variable falls through to the second, trimmed.
        let s = ClientSettings::from_lookup(&["A_KEY", "B_KEY"], "X_URL", env);
        assert_eq!(s.get_api_key().map(ApiKey::expose), Some("b-key"));
        assert_eq!(s.get_base_url(), Some("http://127.0.0.1:9"));
        assert_eq!(s.transport_config(), TransportConfig::default());
        assert!(!format!("{s:?}").contains("b-key"));

        let none = ClientSettings::from_lookup(&["A_KEY"], "NOPE", env);
        assert!(none.get_api_key().is_none() && none.get_base_url().is_none());

        // Later setters override the environment.
        let s = s
            .api_key("set-key")
            .base_url("https://gw.example.com")
            .timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(2));
        assert_eq!(s.get_api_key().map(ApiKey::expose), Some("set-key"));
        assert_eq!(s.get_base_url(), Some("https://gw.example.com"));
        assert_eq!(
            s.transport_config(),
            TransportConfig {
                timeout: Duration::from_secs(5),
                connect_timeout: Duration::from_secs(2),
            }
        );
    }

    #[test]
    fn snippet_is_bounded() {
        assert_eq!(body_snippet(b"<html>", 3), "<ht…");
        assert_eq!(body_snippet(&[0xff, b'a'], 10), "\u{fffd}a");
    }
}
