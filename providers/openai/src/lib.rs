//! # costlayer-openai
//!
//! The OpenAI adapter of [costlayer](https://docs.rs/costlayer): a
//! `tower::Service<ChatRequest, Response = ChatResponse, Error = costlayer_core::Error>`
//! over `POST /v1/chat/completions`.
//!
//! [`OpenAi`] is a thin, cheaply cloned handle over the shared
//! [`HttpTransport`] and a pure [`OpenAiCodec`]: the codec turns a
//! [`ChatRequest`] into the HTTP request and the HTTP answer into a
//! [`ChatResponse`] (usage mapped into costlayer's disjoint buckets, see
//! [`OpenAiUsage`]) or a typed [`Error`] (see [`error_from_response`]).
//!
//! [`ChatResponse`]: costlayer_core::ChatResponse
//!
//! [`OpenAiResponses`] is the same client over the Responses API
//! (`POST /v1/responses`, [`OpenAiResponsesCodec`]): reasoning items,
//! `previous_response_id`, structured output through `text.format`, priced
//! with the same usage mapping. Build it with
//! [`OpenAiBuilder::build_responses`].
//!
//! [`OpenAi`] also implements [`costlayer_core::BatchProvider`] over `/v1/files` + `/v1/batches`:
//! results come back joined on `custom_id`, each successful one marked
//! [`costlayer_core::Mode::Batch`] so it is priced at batch rates.
//!
//! | setting | builder | environment (`from_env`) | default |
//! |---|---|---|---|
//! | API key | [`OpenAiBuilder::api_key`] | `OPENAI_API_KEY` | required |
//! | base URL | [`OpenAiBuilder::base_url`] | `OPENAI_BASE_URL` | `https://api.openai.com/v1` |
//! | organization | [`OpenAiBuilder::organization`] | `OPENAI_ORG_ID` | none |
//! | project | [`OpenAiBuilder::project`] | `OPENAI_PROJECT_ID` | none |
//! | timeout | [`OpenAiBuilder::timeout`] | | 600 s |
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use costlayer_openai::OpenAi;
//!
//! let openai = OpenAi::builder()
//!     .api_key("sk-test-123")
//!     .base_url("http://127.0.0.1:8080/v1")
//!     .timeout(Duration::from_secs(30))
//!     .build()?;
//! // The key never shows in Debug output.
//! assert!(!format!("{openai:?}").contains("sk-test-123"));
//! # Ok::<(), costlayer_core::Error>(())
//! ```
//!
//! A call, through any tower stack:
//!
//! ```no_run
//! use costlayer_core::{ChatRequest, Message};
//! use costlayer_openai::OpenAi;
//! use tower::ServiceExt;
//!
//! # #[tokio::main] async fn main() -> Result<(), costlayer_core::Error> {
//! let openai = OpenAi::from_env()?; // OPENAI_API_KEY
//! let req = ChatRequest::new("gpt-4o-mini").message(Message::user("Say hi")).max_tokens(16);
//! let resp = openai.oneshot(req).await?;
//! println!("{} ({} input, {} cached, {} output tokens)", resp.text,
//!     resp.usage.input_tokens, resp.usage.cache_read_tokens, resp.usage.output_tokens);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod batch;
mod codec;
mod error;
mod responses;
mod responses_stream;
mod stream;
mod usage;

use costlayer_core::tokens::{TiktokenCounter, TokenCounter};
use costlayer_core::{ChatRequest, ClientSettings, Error, HttpTransport};

pub use codec::{OpenAiCodec, DEFAULT_BASE_URL};
pub use error::{error_from_response, parse_go_duration};
pub use responses::{OpenAiResponses, OpenAiResponsesCodec};
pub use responses_stream::OpenAiResponsesStreamDecoder;
pub use stream::OpenAiStreamDecoder;
pub use usage::{CompletionTokensDetails, OpenAiUsage, PromptTokensDetails};

/// The environment variable holding the API key.
pub const API_KEY_VAR: &str = "OPENAI_API_KEY";
/// The environment variable overriding the base URL.
pub const BASE_URL_VAR: &str = "OPENAI_BASE_URL";

/// The OpenAI Chat Completions client: a `tower::Service<ChatRequest>`.
///
/// Cloning is cheap (two `Arc`s) and shares the connection pool.
#[derive(Debug, Clone)]
pub struct OpenAi {
    inner: HttpTransport<OpenAiCodec>,
}

impl OpenAi {
    /// A builder with nothing set.
    pub fn builder() -> OpenAiBuilder {
        OpenAiBuilder::default()
    }

    /// A client configured from the environment: the key from
    /// `OPENAI_API_KEY`, the base URL from `OPENAI_BASE_URL`, organization and
    /// project from `OPENAI_ORG_ID` / `OPENAI_PROJECT_ID` when set.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming `OPENAI_API_KEY` when it is unset or empty,
    /// or describing a malformed `OPENAI_BASE_URL`.
    pub fn from_env() -> Result<Self, Error> {
        OpenAiBuilder::from_env().build()
    }

    /// A client over an existing transport.
    pub fn from_transport(inner: HttpTransport<OpenAiCodec>) -> Self {
        OpenAi { inner }
    }

    costlayer_core::transport_client! {
        accessors(inner: OpenAiCodec);
    }

    /// Exact prompt tokens of `req` with tiktoken (`o200k_base` for gpt-4o,
    /// gpt-4.1, gpt-5 and the o-series; `cl100k_base` for gpt-4 and
    /// gpt-3.5), including the chat-format overhead (3 tokens a message, 1
    /// for a name, 3 to prime the reply). Offline; the vocabulary is built
    /// once per process.
    ///
    /// Tool definitions are counted from their JSON, which is close to but
    /// not exactly what OpenAI bills for them.
    pub fn count_tokens(&self, req: &ChatRequest) -> u64 {
        TiktokenCounter::for_model(&req.model).count_request(req)
    }
}

costlayer_core::transport_client! {
    services(OpenAi, inner);
    ChatRequest;
    /// Streamed chat completions (`stream: true`, usage included); see
    /// [`costlayer_core::stream`] for the contract.
    StreamRequest;
}

/// Builds an [`OpenAi`] client.
#[derive(Debug, Default)]
pub struct OpenAiBuilder {
    settings: ClientSettings,
    organization: Option<String>,
    project: Option<String>,
}

impl OpenAiBuilder {
    /// A builder preset from the environment (`OPENAI_API_KEY`,
    /// `OPENAI_BASE_URL`, `OPENAI_ORG_ID`, `OPENAI_PROJECT_ID`); a missing key
    /// is reported by [`build`](Self::build). Later setters override.
    pub fn from_env() -> Self {
        Self::from_lookup(|var| std::env::var(var).ok())
    }

    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let get = |var: &str| {
            lookup(var)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        OpenAiBuilder {
            organization: get("OPENAI_ORG_ID"),
            project: get("OPENAI_PROJECT_ID"),
            settings: ClientSettings::from_lookup(&[API_KEY_VAR], BASE_URL_VAR, lookup),
        }
    }

    costlayer_core::client_settings_setters! {
        settings;
        /// The API key. Required. Held in an [`ApiKey`](costlayer_core::ApiKey): never printed.
        api_key;
        /// The base URL, up to and including the API version (`/v1`), for
        /// proxies, gateways, Azure-style deployments and test servers.
        /// Defaults to `https://api.openai.com/v1`.
        base_url;
    }

    /// Sends `OpenAI-Organization`. Defaults to none (the key's default organization).
    pub fn organization(mut self, org: impl Into<String>) -> Self {
        self.organization = Some(org.into());
        self
    }

    /// Sends `OpenAI-Project`. Defaults to none (the key's default project).
    pub fn project(mut self, project: impl Into<String>) -> Self {
        self.project = Some(project.into());
        self
    }

    /// Builds the client.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when no key was given (naming `OPENAI_API_KEY`), the
    /// base URL is not an `http(s)://` URL, or the HTTP client cannot start.
    pub fn build(self) -> Result<OpenAi, Error> {
        let (settings, codec) = self.into_codec()?;
        Ok(OpenAi {
            inner: settings.transport(codec)?,
        })
    }

    /// Builds a Responses API client ([`OpenAiResponses`], `POST
    /// /v1/responses`) with the same settings.
    ///
    /// # Errors
    ///
    /// As [`build`](Self::build).
    pub fn build_responses(self) -> Result<OpenAiResponses, Error> {
        let (settings, codec) = self.into_codec()?;
        Ok(OpenAiResponses::from_transport(
            settings.transport(OpenAiResponsesCodec::from_chat(codec))?,
        ))
    }

    fn into_codec(self) -> Result<(ClientSettings, OpenAiCodec), Error> {
        let key = self.settings.get_api_key().cloned().ok_or_else(|| {
            Error::config(format!(
                "no OpenAI API key: set the environment variable {API_KEY_VAR} or call OpenAi::builder().api_key(..)"
            ))
        })?;
        let mut codec = OpenAiCodec::new(key);
        if let Some(url) = self.settings.get_base_url() {
            codec = codec.base_url(url)?;
        }
        if let Some(org) = self.organization {
            codec = codec.organization(org);
        }
        if let Some(project) = self.project {
            codec = codec.project(project);
        }
        Ok((self.settings, codec))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_env_reads_key_and_base_url() {
        let env = |v: &str| match v {
            "OPENAI_API_KEY" => Some("sk-env-1".to_owned()),
            "OPENAI_BASE_URL" => Some("http://127.0.0.1:9/v1/".to_owned()),
            "OPENAI_PROJECT_ID" => Some("proj_1".to_owned()),
            _ => None,
        };
        let client = OpenAiBuilder::from_lookup(env).build().expect("builds");
        assert_eq!(
            client.codec().url(),
            "http://127.0.0.1:9/v1/chat/completions"
        );
        assert!(!format!("{client:?} {:?}", client.codec()).contains("sk-env-1"));
    }

    #[test]
    fn missing_key_names_the_variable() {
        let err = OpenAiBuilder::from_lookup(|_| None)
            .build()
            .expect_err("no key");
        assert!(matches!(err, Error::Config { .. }));
        assert!(err.to_string().contains("OPENAI_API_KEY"), "{err}");
        // An empty variable is as good as unset.
        let err = OpenAiBuilder::from_lookup(|_| Some("  ".into()))
            .build()
            .expect_err("empty key");
        assert!(err.to_string().contains("OPENAI_API_KEY"), "{err}");
    }

    #[test]
    fn bad_base_url_is_a_config_error() {
        let err = OpenAi::builder()
            .api_key("k")
            .base_url("api.openai.com/v1")
            .build()
            .expect_err("no scheme");
        assert!(err.to_string().contains("http"), "{err}");
    }
}
