//! # costlayer-anthropic
//!
//! The Anthropic adapter of [costlayer](https://docs.rs/costlayer): a
//! `tower::Service<ChatRequest, Response = ChatResponse, Error = costlayer_core::Error>`
//! over `POST /v1/messages`.
//!
//! [`Anthropic`] is a thin, cheaply cloned handle over the shared
//! [`HttpTransport`] and a pure [`AnthropicCodec`]. Usage is mapped into
//! costlayer's disjoint buckets with the 5-minute and 1-hour cache writes
//! apart (see [`AnthropicUsage`]); errors become typed variants with their
//! retry hints (see [`error_from_response`]).
//!
//! [`Anthropic`] also implements [`costlayer_core::BatchProvider`] over `/v1/messages/batches`:
//! results come back joined on `custom_id`, each successful one marked
//! [`costlayer_core::Mode::Batch`] so it is priced at batch rates.
//!
//! | setting | builder | environment (`from_env`) | default |
//! |---|---|---|---|
//! | API key | [`AnthropicBuilder::api_key`] | `ANTHROPIC_API_KEY` | required |
//! | base URL | [`AnthropicBuilder::base_url`] | `ANTHROPIC_BASE_URL` | `https://api.anthropic.com` |
//! | `anthropic-version` | [`AnthropicBuilder::version`] | | `2023-06-01` |
//! | `max_tokens` when the request has none | [`AnthropicBuilder::default_max_tokens`] | | 4096 |
//! | `anthropic-beta` | [`AnthropicBuilder::beta`] | | none |
//! | timeout | [`AnthropicBuilder::timeout`] | | 600 s |
//!
//! # Example
//!
//! ```
//! use costlayer_anthropic::Anthropic;
//!
//! let claude = Anthropic::builder()
//!     .api_key("sk-ant-test")
//!     .base_url("http://127.0.0.1:8080")
//!     .default_max_tokens(1024)
//!     .build()?;
//! assert!(!format!("{claude:?}").contains("sk-ant-test"));
//! # Ok::<(), costlayer_core::Error>(())
//! ```
//!
//! A call, and an exact token count:
//!
//! ```no_run
//! use costlayer_core::{ChatRequest, Message};
//! use costlayer_anthropic::Anthropic;
//! use tower::ServiceExt;
//!
//! # #[tokio::main] async fn main() -> Result<(), costlayer_core::Error> {
//! let claude = Anthropic::from_env()?; // ANTHROPIC_API_KEY
//! let req = ChatRequest::new("claude-haiku-4-5").system("Be terse.").message(Message::user("Say hi"));
//! let exact = claude.count_tokens(&req).await?; // POST /v1/messages/count_tokens
//! let resp = claude.clone().oneshot(req).await?;
//! println!("{} ({exact} prompt tokens counted, {} billed)", resp.text, resp.usage.prompt_tokens());
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod batch;
mod codec;
mod error;
mod stream;
mod usage;

use costlayer_core::tokens::{HeuristicCounter, TokenCounter};
use costlayer_core::{ChatRequest, ClientSettings, Error, HttpTransport};

pub use codec::{AnthropicCodec, DEFAULT_BASE_URL, DEFAULT_MAX_TOKENS, DEFAULT_VERSION};
pub use error::error_from_response;
pub use stream::AnthropicStreamDecoder;
pub use usage::{AnthropicUsage, CacheCreation, OutputTokensDetails, ServerToolUse};

/// The environment variable holding the API key.
pub const API_KEY_VAR: &str = "ANTHROPIC_API_KEY";
/// The environment variable overriding the base URL.
pub const BASE_URL_VAR: &str = "ANTHROPIC_BASE_URL";

/// The Anthropic Messages client: a `tower::Service<ChatRequest>`.
///
/// Cloning is cheap (two `Arc`s) and shares the connection pool.
#[derive(Debug, Clone)]
pub struct Anthropic {
    inner: HttpTransport<AnthropicCodec>,
}

impl Anthropic {
    /// A builder with nothing set.
    pub fn builder() -> AnthropicBuilder {
        AnthropicBuilder::default()
    }

    /// A client configured from `ANTHROPIC_API_KEY` and, when set,
    /// `ANTHROPIC_BASE_URL`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming `ANTHROPIC_API_KEY` when it is unset or
    /// empty, or describing a malformed base URL.
    pub fn from_env() -> Result<Self, Error> {
        AnthropicBuilder::from_env().build()
    }

    /// A client over an existing transport.
    pub fn from_transport(inner: HttpTransport<AnthropicCodec>) -> Self {
        Anthropic { inner }
    }

    costlayer_core::transport_client! {
        accessors(inner: AnthropicCodec);
    }

    /// The exact prompt tokens of `req` from `POST /v1/messages/count_tokens`
    /// (system prompt, messages, tools and `thinking` are counted; sampling
    /// parameters are not sent). Free, but rate-limited separately from
    /// message creation; caching is ignored by the count.
    ///
    /// # Errors
    ///
    /// The same typed errors as a chat call.
    pub async fn count_tokens(&self, req: &ChatRequest) -> Result<u64, Error> {
        let http_req = self.codec().count_tokens_request(req)?;
        let resp = self.inner.send(http_req).await?;
        self.codec().parse_count_tokens(&resp)
    }

    /// An offline estimate of the prompt tokens of `req`: about four bytes a
    /// token plus the chat-format overhead. Free and instant, not exact
    /// (Claude's tokenizer is not public); use [`count_tokens`](Self::count_tokens)
    /// when the number matters.
    pub fn estimate_tokens(&self, req: &ChatRequest) -> u64 {
        HeuristicCounter.count_request(req)
    }
}

costlayer_core::transport_client! {
    services(Anthropic, inner);
    ChatRequest;
    /// Streamed Messages (`"stream": true`); see [`costlayer_core::stream`] for the contract.
    StreamRequest;
}

/// Builds an [`Anthropic`] client.
#[derive(Debug, Default)]
pub struct AnthropicBuilder {
    settings: ClientSettings,
    version: Option<String>,
    default_max_tokens: Option<u32>,
    betas: Vec<String>,
}

impl AnthropicBuilder {
    /// A builder preset from `ANTHROPIC_API_KEY` and `ANTHROPIC_BASE_URL`; a
    /// missing key is reported by [`build`](Self::build). Later setters override.
    pub fn from_env() -> Self {
        Self::from_lookup(|var| std::env::var(var).ok())
    }

    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        AnthropicBuilder {
            settings: ClientSettings::from_lookup(&[API_KEY_VAR], BASE_URL_VAR, lookup),
            ..Default::default()
        }
    }

    costlayer_core::client_settings_setters! {
        settings;
        /// The API key (`x-api-key`). Required. Held in an
        /// [`ApiKey`](costlayer_core::ApiKey): never printed.
        api_key;
        /// The base URL, without `/v1`. Defaults to `https://api.anthropic.com`.
        base_url;
    }

    /// The `anthropic-version` header. Newer versions change which sampling
    /// parameters are accepted (`2026-10-21` removes `temperature` and
    /// `top_p`), so pin the version your requests were written for.
    /// Defaults to `2023-06-01`.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// `max_tokens` sent when a request sets none (the Messages API
    /// requires it). It bounds the output you can be billed for. Defaults to
    /// 4096.
    pub fn default_max_tokens(mut self, max_tokens: u32) -> Self {
        self.default_max_tokens = Some(max_tokens);
        self
    }

    /// Adds a beta feature to the `anthropic-beta` header (may be called
    /// several times). Defaults to none.
    pub fn beta(mut self, feature: impl Into<String>) -> Self {
        self.betas.push(feature.into());
        self
    }

    /// Builds the client.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when no key was given (naming `ANTHROPIC_API_KEY`),
    /// the base URL is not an `http(s)://` URL, `default_max_tokens` is 0,
    /// the version or a beta cannot be sent as a header, or the HTTP client
    /// cannot start.
    pub fn build(self) -> Result<Anthropic, Error> {
        let key = self.settings.get_api_key().cloned().ok_or_else(|| {
            Error::config(format!(
                "no Anthropic API key: set the environment variable {API_KEY_VAR} or call Anthropic::builder().api_key(..)"
            ))
        })?;
        let mut codec = AnthropicCodec::new(key);
        if let Some(url) = self.settings.get_base_url() {
            codec = codec.base_url(url)?;
        }
        if let Some(v) = self.version {
            codec = codec.version(v)?;
        }
        if let Some(n) = self.default_max_tokens {
            codec = codec.default_max_tokens(n)?;
        }
        for beta in self.betas {
            codec = codec.beta(beta)?;
        }
        Ok(Anthropic {
            inner: self.settings.transport(codec)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_env_reads_key_and_base_url() {
        let env = |v: &str| match v {
            "ANTHROPIC_API_KEY" => Some("sk-ant-env".to_owned()),
            "ANTHROPIC_BASE_URL" => Some("http://127.0.0.1:9/".to_owned()),
            _ => None,
        };
        let c = AnthropicBuilder::from_lookup(env).build().expect("builds");
        assert_eq!(c.codec().get_base_url(), "http://127.0.0.1:9");
        assert!(!format!("{c:?} {:?}", c.codec()).contains("sk-ant-env"));
    }

    #[test]
    fn missing_key_names_the_variable() {
        let err = AnthropicBuilder::from_lookup(|_| None)
            .build()
            .expect_err("no key");
        assert!(matches!(err, Error::Config { .. }));
        assert!(err.to_string().contains("ANTHROPIC_API_KEY"), "{err}");
    }

    #[test]
    fn invalid_settings_fail_at_build() {
        let b = || Anthropic::builder().api_key("k");
        assert!(b().default_max_tokens(0).build().is_err());
        assert!(b().version("2023-06\n-01").build().is_err());
        assert!(b().base_url("ftp://x").build().is_err());
    }
}
