//! # costlayer-gemini
//!
//! The Google Gemini adapter of [costlayer](https://docs.rs/costlayer): a
//! `tower::Service<ChatRequest, Response = ChatResponse, Error = costlayer_core::Error>`
//! over `POST /v1beta/models/{model}:generateContent` (the Gemini Developer API).
//!
//! [`Gemini`] is a thin, cheaply cloned handle over the shared
//! [`HttpTransport`] and a pure [`GeminiCodec`]. Usage is mapped into
//! costlayer's disjoint buckets with thinking billed as output (see
//! [`GeminiUsage`]); errors become typed variants, with `RetryInfo.retryDelay`
//! read from the error body (see [`error_from_response`]).
//!
//! | setting | builder | environment (`from_env`) | default |
//! |---|---|---|---|
//! | API key (`x-goog-api-key`) | [`GeminiBuilder::api_key`] | `GEMINI_API_KEY`, then `GOOGLE_API_KEY` | required |
//! | base URL | [`GeminiBuilder::base_url`] | `GEMINI_BASE_URL` | `https://generativelanguage.googleapis.com` |
//! | API version | [`GeminiBuilder::api_version`] | | `v1beta` |
//! | timeout | [`GeminiBuilder::timeout`] | | 600 s |
//!
//! # Example
//!
//! ```
//! use costlayer_gemini::Gemini;
//!
//! let gemini = Gemini::builder()
//!     .api_key("AIza-test")
//!     .base_url("http://127.0.0.1:8080")
//!     .build()?;
//! assert!(!format!("{gemini:?}").contains("AIza-test"));
//! # Ok::<(), costlayer_core::Error>(())
//! ```
//!
//! A call:
//!
//! ```no_run
//! use costlayer_core::{ChatRequest, Message};
//! use costlayer_gemini::Gemini;
//! use tower::ServiceExt;
//!
//! # #[tokio::main] async fn main() -> Result<(), costlayer_core::Error> {
//! let gemini = Gemini::from_env()?; // GEMINI_API_KEY or GOOGLE_API_KEY
//! let req = ChatRequest::new("gemini-2.5-flash").message(Message::user("Say hi")).max_tokens(256);
//! let resp = gemini.oneshot(req).await?;
//! println!("{} ({} output tokens, {} of them thinking)", resp.text,
//!     resp.usage.output_tokens, resp.usage.reasoning_tokens);
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

pub use batch::{INLINE_BATCH_LIMIT, UPLOAD_CHUNK};
pub use codec::{GeminiCodec, DEFAULT_API_VERSION, DEFAULT_BASE_URL};
pub use error::{error_from_response, parse_retry_delay};
pub use stream::GeminiStreamDecoder;
pub use usage::GeminiUsage;

/// The environment variables tried for the API key, in order.
pub const API_KEY_VARS: [&str; 2] = ["GEMINI_API_KEY", "GOOGLE_API_KEY"];
/// The environment variable overriding the base URL.
pub const BASE_URL_VAR: &str = "GEMINI_BASE_URL";

/// The Gemini client: a `tower::Service<ChatRequest>`.
///
/// Cloning is cheap (two `Arc`s) and shares the connection pool.
#[derive(Debug, Clone)]
pub struct Gemini {
    inner: HttpTransport<GeminiCodec>,
    inline_limit: usize,
    upload_chunk: usize,
}

impl Gemini {
    /// A builder with nothing set.
    pub fn builder() -> GeminiBuilder {
        GeminiBuilder::default()
    }

    /// A client configured from `GEMINI_API_KEY` (or, when unset,
    /// `GOOGLE_API_KEY`) and, when set, `GEMINI_BASE_URL`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming both variables when neither is set, or
    /// describing a malformed base URL.
    pub fn from_env() -> Result<Self, Error> {
        GeminiBuilder::from_env().build()
    }

    /// A client over an existing transport.
    pub fn from_transport(inner: HttpTransport<GeminiCodec>) -> Self {
        Gemini {
            inner,
            inline_limit: INLINE_BATCH_LIMIT,
            upload_chunk: UPLOAD_CHUNK,
        }
    }

    costlayer_core::transport_client! {
        accessors(inner: GeminiCodec);
    }

    /// The exact prompt tokens of `req` from `:countTokens` (the whole
    /// request is sent as `generateContentRequest`, so the system
    /// instruction and tools are counted).
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
    /// token plus the chat-format overhead. Free, not exact; use
    /// [`count_tokens`](Self::count_tokens) when the number matters.
    pub fn estimate_tokens(&self, req: &ChatRequest) -> u64 {
        HeuristicCounter.count_request(req)
    }
}

costlayer_core::transport_client! {
    services(Gemini, inner);
    ChatRequest;
    /// Streamed `streamGenerateContent?alt=sse`; see [`costlayer_core::stream`] for the contract.
    StreamRequest;
}

/// Builds a [`Gemini`] client.
#[derive(Debug, Default)]
pub struct GeminiBuilder {
    settings: ClientSettings,
    api_version: Option<String>,
    inline_limit: Option<usize>,
    upload_chunk: Option<usize>,
}

impl GeminiBuilder {
    /// A builder preset from `GEMINI_API_KEY` / `GOOGLE_API_KEY` and
    /// `GEMINI_BASE_URL`; a missing key is reported by [`build`](Self::build).
    pub fn from_env() -> Self {
        Self::from_lookup(|var| std::env::var(var).ok())
    }

    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        GeminiBuilder {
            settings: ClientSettings::from_lookup(&API_KEY_VARS, BASE_URL_VAR, lookup),
            ..Default::default()
        }
    }

    costlayer_core::client_settings_setters! {
        settings;
        /// The API key. Required. Held in an [`ApiKey`](costlayer_core::ApiKey):
        /// never printed, and sent as the `x-goog-api-key` header, never in the URL.
        api_key;
        /// The base URL, without the API version. Defaults to
        /// `https://generativelanguage.googleapis.com`.
        base_url;
    }

    /// The API version path segment. Defaults to `v1beta`.
    pub fn api_version(mut self, version: impl Into<String>) -> Self {
        self.api_version = Some(version.into());
        self
    }

    /// The largest batch input, in bytes of JSON, sent inline in
    /// `batchGenerateContent`; a larger one is uploaded through the Files
    /// API first. Defaults to [`INLINE_BATCH_LIMIT`] (Gemini's 20 MB).
    pub fn batch_inline_limit(mut self, bytes: usize) -> Self {
        self.inline_limit = Some(bytes);
        self
    }

    /// The bytes of a batch input file sent in one request of the
    /// resumable upload (rounded down to the chunk granularity the server
    /// announces, at least one granule). Defaults to [`UPLOAD_CHUNK`]
    /// (8 MiB, as the google-genai SDK).
    pub fn batch_upload_chunk(mut self, bytes: usize) -> Self {
        self.upload_chunk = Some(bytes.max(1));
        self
    }

    /// Builds the client.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when no key was given (naming `GEMINI_API_KEY` and
    /// `GOOGLE_API_KEY`), the base URL or API version is invalid, or the HTTP
    /// client cannot start.
    pub fn build(self) -> Result<Gemini, Error> {
        let key = self.settings.get_api_key().cloned().ok_or_else(|| {
            Error::config(format!(
                "no Gemini API key: set the environment variable {} (or {}), or call Gemini::builder().api_key(..)",
                API_KEY_VARS[0], API_KEY_VARS[1]
            ))
        })?;
        let mut codec = GeminiCodec::new(key);
        if let Some(url) = self.settings.get_base_url() {
            codec = codec.base_url(url)?;
        }
        if let Some(v) = self.api_version {
            codec = codec.api_version(&v)?;
        }
        Ok(Gemini {
            inner: self.settings.transport(codec)?,
            inline_limit: self.inline_limit.unwrap_or(INLINE_BATCH_LIMIT),
            upload_chunk: self.upload_chunk.unwrap_or(UPLOAD_CHUNK),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_from_gemini_then_google_variable() {
        let only_google = |v: &str| (v == "GOOGLE_API_KEY").then(|| "g-key".to_owned());
        let b = GeminiBuilder::from_lookup(only_google);
        assert_eq!(
            b.settings.get_api_key().map(costlayer_core::ApiKey::expose),
            Some("g-key")
        );
        let both = |v: &str| match v {
            "GEMINI_API_KEY" => Some("gem-key".to_owned()),
            "GOOGLE_API_KEY" => Some("g-key".to_owned()),
            "GEMINI_BASE_URL" => Some("http://127.0.0.1:9".to_owned()),
            _ => None,
        };
        let c = GeminiBuilder::from_lookup(both).build().expect("builds");
        assert_eq!(c.codec().get_base_url(), "http://127.0.0.1:9");
        assert!(!format!("{c:?} {:?}", c.codec()).contains("gem-key"));
    }

    #[test]
    fn missing_key_names_both_variables() {
        let err = GeminiBuilder::from_lookup(|_| None)
            .build()
            .expect_err("no key");
        let s = err.to_string();
        assert!(
            s.contains("GEMINI_API_KEY") && s.contains("GOOGLE_API_KEY"),
            "{s}"
        );
    }
}
