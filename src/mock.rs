//! [`SimulatedProvider`]: a deterministic, offline provider.
//!
//! It implements the same `Service<ChatRequest>` as the real adapters, so
//! every layer can be exercised (and the quickstart run) without a network
//! or an API key. Nothing in it is special-cased by the layers.
//!
//! - **Prompt tokens** are counted with the real tokenizer
//!   ([`TiktokenCounter`], chat-format overhead included), so usage, prices
//!   and rate limits behave as they would against OpenAI.
//! - **Output tokens** are a deterministic function of the request (a stable
//!   hash of its content), between 16 and 255, never above `max_tokens`. The
//!   reply text has exactly that many tokens.
//! - **Latency** is a [`tokio::time::sleep`], so tests on tokio's paused
//!   clock stay instant.
//! - **Failures** can be injected: the first N calls, or every Nth call,
//!   fail with a 429 carrying `Retry-After`, a 5xx, an overload or a timeout.
//! - [`SimulatedProvider::calls`] counts the calls that reached it, shared by
//!   all clones.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use costlayer::mock::{Failure, SimulatedProvider};
//! use costlayer::{ChatRequest, Error, Message};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let provider = SimulatedProvider::builder()
//!     .fail_first(1, Failure::RateLimited { retry_after: Some(Duration::from_secs(2)) })
//!     .build();
//! let req = ChatRequest::new("gpt-4o-mini").message(Message::user("Say hi")).max_tokens(50);
//!
//! let err = provider.clone().oneshot(req.clone()).await.unwrap_err();
//! assert!(matches!(err, Error::RateLimited { .. }));
//!
//! let resp = provider.clone().oneshot(req).await.unwrap();
//! assert_eq!(resp.provider, "simulated"); // never mistaken for real spend
//! assert_eq!(resp.model, "gpt-4o-mini");
//! assert!(resp.usage.output_tokens <= 50);
//! assert_eq!(provider.calls(), 2);
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::hash::Hasher;
use std::num::NonZeroU64;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use costlayer_core::tokens::{TiktokenCounter, TokenCounter};
use tower::Service;

use crate::{
    ChatDelta, ChatRequest, ChatResponse, ChatStream, Error, FinishReason, StreamRequest, Usage,
};

/// The provider name simulated calls are recorded under (unless
/// [`SimulatedProviderBuilder::provider`] says otherwise), by the library
/// and by `cost-tracker chat --provider simulated` alike, so simulated
/// calls stay apart from real spend in every breakdown.
pub const SIMULATED_PROVIDER: &str = "simulated";

/// Fewest output tokens a simulated reply has (unless `max_tokens` is lower).
pub const MIN_OUTPUT_TOKENS: u64 = 16;
/// Most output tokens a simulated reply has.
pub const MAX_OUTPUT_TOKENS: u64 = 255;

/// A failure the simulated provider can inject.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// HTTP 429 ([`Error::RateLimited`]) with an optional `Retry-After`.
    RateLimited {
        /// The `Retry-After` the provider sends.
        retry_after: Option<Duration>,
    },
    /// A server error ([`Error::Server`]) with this status (500, 502, ...).
    Server {
        /// The HTTP status.
        status: u16,
    },
    /// Overload ([`Error::Overloaded`], Anthropic's 529 or a 503).
    Overloaded {
        /// The HTTP status.
        status: u16,
    },
    /// No answer: the call sleeps `after`, then fails with [`Error::Timeout`].
    Timeout {
        /// How long the call hangs before failing.
        after: Duration,
    },
    /// A non-retryable 400 ([`Error::InvalidRequest`]).
    InvalidRequest,
}

impl Failure {
    fn to_error(&self, provider: &str) -> Error {
        let provider = provider.to_owned();
        match self {
            Failure::RateLimited { retry_after } => Error::RateLimited {
                provider,
                message: "simulated rate limit".into(),
                retry_after: *retry_after,
            },
            Failure::Server { status } => Error::Server {
                provider,
                status: *status,
                message: "simulated server error".into(),
                retry_after: None,
            },
            Failure::Overloaded { status } => Error::Overloaded {
                provider,
                status: *status,
                message: "simulated overload".into(),
                retry_after: None,
            },
            Failure::Timeout { after } => Error::Timeout {
                provider,
                after: *after,
            },
            Failure::InvalidRequest => Error::InvalidRequest {
                provider,
                status: 400,
                message: "simulated invalid request".into(),
            },
        }
    }
}

#[derive(Debug, Clone)]
enum Rule {
    /// Calls `1..=n` fail.
    First(u64, Failure),
    /// Calls `n, 2n, 3n, ...` fail.
    Every(NonZeroU64, Failure),
}

impl Rule {
    fn failure_for(&self, call: u64) -> Option<&Failure> {
        match self {
            Rule::First(n, f) => (call <= *n).then_some(f),
            Rule::Every(n, f) => call.is_multiple_of(n.get()).then_some(f),
        }
    }
}

#[derive(Debug)]
struct Config {
    latency: Duration,
    provider: Option<String>,
    model_suffix: Option<String>,
    rules: Vec<Rule>,
    cut_after: Option<usize>,
    batch: batch::BatchConfig,
}

/// Builds a [`SimulatedProvider`].
#[derive(Debug, Clone, Default)]
pub struct SimulatedProviderBuilder {
    latency: Duration,
    provider: Option<String>,
    model_suffix: Option<String>,
    rules: Vec<Rule>,
    cut_after: Option<usize>,
    batch: batch::BatchConfig,
}

impl SimulatedProviderBuilder {
    /// How long a batch job takes, from submission to completed; its
    /// requests finish one after another over that time. Defaults to 2 s.
    pub fn batch_delay(mut self, delay: Duration) -> Self {
        self.batch.delay = Some(delay);
        self
    }

    /// Keeps batch jobs as files in `dir` (one JSON file a job), so that
    /// another process (another `cost-tracker batch` command) sees them.
    /// Defaults to process memory.
    pub fn batch_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.batch.dir = Some(dir.into());
        self
    }

    /// Batch jobs expire at the end of their delay with only their first
    /// half of requests run, as a real job that outlives its completion
    /// window. Defaults to off.
    pub fn batch_expire(mut self, expire: bool) -> Self {
        self.batch.expire = expire;
        self
    }

    /// How long each call takes (a `tokio::time::sleep`). Defaults to zero.
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// The provider name written into responses and errors. Defaults to
    /// [`SIMULATED_PROVIDER`] (`"simulated"`), whatever the model.
    pub fn provider(mut self, provider: impl Into<String>) -> Self {
        self.provider = Some(provider.into());
        self
    }

    /// Bills a dated model id: the response's model is the request's model
    /// followed by `-{suffix}` (for example `gpt-4o` billed as
    /// `gpt-4o-2024-08-06`), as real providers do. Defaults to echoing the
    /// model unchanged.
    pub fn dated_model(mut self, suffix: impl Into<String>) -> Self {
        self.model_suffix = Some(suffix.into());
        self
    }

    /// The first `n` calls fail with `failure`. Rules are checked in the
    /// order they were added; the first that matches applies.
    pub fn fail_first(mut self, n: u64, failure: Failure) -> Self {
        self.rules.push(Rule::First(n, failure));
        self
    }

    /// Streams are cut after `n` deltas: the stream then ends with
    /// [`Error::Connection`], as when a connection drops mid-answer.
    /// Defaults to never.
    pub fn cut_streams_after(mut self, n: usize) -> Self {
        self.cut_after = Some(n);
        self
    }

    /// Every `n`th call (the `n`th, `2n`th, ...) fails with `failure`.
    pub fn fail_every(mut self, n: NonZeroU64, failure: Failure) -> Self {
        self.rules.push(Rule::Every(n, failure));
        self
    }

    /// Builds the provider.
    pub fn build(self) -> SimulatedProvider {
        SimulatedProvider {
            config: Arc::new(Config {
                latency: self.latency,
                provider: self.provider,
                model_suffix: self.model_suffix,
                rules: self.rules,
                cut_after: self.cut_after,
                batch: self.batch,
            }),
            calls: Arc::new(AtomicU64::new(0)),
            jobs: Arc::default(),
        }
    }
}

/// A deterministic offline provider; see the [module docs](self).
///
/// Clones share the call counter.
#[derive(Clone)]
pub struct SimulatedProvider {
    config: Arc<Config>,
    calls: Arc<AtomicU64>,
    jobs: batch::Jobs,
}

impl fmt::Debug for SimulatedProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimulatedProvider")
            .field("latency", &self.config.latency)
            .field("provider", &self.config.provider)
            .field("calls", &self.calls())
            .finish_non_exhaustive()
    }
}

impl Default for SimulatedProvider {
    fn default() -> Self {
        Self::new()
    }
}

impl SimulatedProvider {
    /// An instant provider that never fails.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder. See [`SimulatedProviderBuilder`] for the defaults.
    pub fn builder() -> SimulatedProviderBuilder {
        SimulatedProviderBuilder::default()
    }

    /// How many calls reached this provider (and its clones), failed or not.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// The response the provider gives `req` when it does not fail: the
    /// same function the service uses, without the latency or the counter.
    pub fn respond(&self, req: &ChatRequest) -> ChatResponse {
        let provider = self.provider_for(req);
        let prompt = TiktokenCounter::for_model(&req.model).count_request(req);
        let cap = req.max_tokens.map_or(u64::MAX, u64::from);
        let natural =
            MIN_OUTPUT_TOKENS + content_hash(req) % (MAX_OUTPUT_TOKENS - MIN_OUTPUT_TOKENS + 1);
        let output = natural.min(cap);
        let model = match &self.config.model_suffix {
            Some(suffix) => format!("{}-{suffix}", req.model).into(),
            None => req.model.clone(),
        };
        ChatResponse {
            provider,
            model,
            text: reply_text(output),
            finish_reason: Some(if output < natural {
                FinishReason::Length
            } else {
                FinishReason::Stop
            }),
            usage: Usage::new(prompt, output),
            latency: self.config.latency,
            ..ChatResponse::default()
        }
    }

    fn provider_for(&self, _req: &ChatRequest) -> String {
        match &self.config.provider {
            Some(p) => p.clone(),
            None => SIMULATED_PROVIDER.to_owned(),
        }
    }
}

/// A stable 64-bit FNV-1a hash of what the request asks (model, system,
/// messages, max_tokens): the same request always gets the same reply.
fn content_hash(req: &ChatRequest) -> u64 {
    let mut h = Fnv1a::default();
    h.write(req.model.as_bytes());
    h.write_u8(0);
    if let Some(s) = &req.system {
        h.write(s.as_bytes());
    }
    for m in &req.messages {
        h.write_u8(0xff);
        h.write(m.content.text().as_bytes());
    }
    h.finish()
}

#[derive(Debug, Clone, Copy)]
struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv1a {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Words that are one token each in both o200k and cl100k, so a reply of `n`
/// words is `n` tokens.
const WORDS: [&str; 8] = [
    " the", " quick", " brown", " fox", " jumps", " over", " lazy", " dog",
];

fn reply_text(tokens: u64) -> String {
    let mut s = String::with_capacity(tokens as usize * 6);
    for i in 0..tokens {
        s.push_str(WORDS[(i % WORDS.len() as u64) as usize]);
    }
    s
}

impl Service<ChatRequest> for SimulatedProvider {
    type Response = ChatResponse;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<ChatResponse, Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: ChatRequest) -> Self::Future {
        let attempt = self.attempt(&req);
        Box::pin(async move {
            let (this, call) = attempt.await?;
            let mut resp = this.respond(&req);
            resp.request_id = Some(format!("sim-{call}").into());
            Ok(resp)
        })
    }
}

impl SimulatedProvider {
    /// Counts the call and waits its latency; fails it if a rule says so.
    fn attempt(
        &self,
        req: &ChatRequest,
    ) -> impl Future<Output = Result<(SimulatedProvider, u64), Error>> + Send + 'static {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let failure = self
            .config
            .rules
            .iter()
            .find_map(|r| r.failure_for(call))
            .cloned();
        let this = self.clone();
        let provider = self.provider_for(req);
        async move {
            if let Some(failure) = failure {
                let wait = match failure {
                    Failure::Timeout { after } => after,
                    _ => this.config.latency,
                };
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                return Err(failure.to_error(&provider));
            }
            if !this.config.latency.is_zero() {
                tokio::time::sleep(this.config.latency).await;
            }
            Ok((this, call))
        }
    }

    /// The deltas of [`respond`](Self::respond)'s answer as a stream would
    /// bring them: the input usage first (as Anthropic reports it), the
    /// text eight words at a time, then the finish reason and the final
    /// usage.
    pub fn respond_deltas(&self, req: &ChatRequest) -> Vec<ChatDelta> {
        let resp = self.respond(req);
        let mut out = vec![ChatDelta {
            model: Some(resp.model.clone()),
            usage: Some(Usage::new(resp.usage.input_tokens, 0)),
            ..ChatDelta::default()
        }];
        let words: Vec<&str> = resp.text.split_inclusive(' ').collect();
        for chunk in words.chunks(8) {
            out.push(ChatDelta {
                text: chunk.concat(),
                ..ChatDelta::default()
            });
        }
        out.push(ChatDelta {
            finish_reason: resp.finish_reason.clone(),
            usage: Some(resp.usage),
            done: true,
            ..ChatDelta::default()
        });
        out
    }
}

/// Streams [`SimulatedProvider::respond_deltas`], cut short when
/// [`cut_streams_after`](SimulatedProviderBuilder::cut_streams_after) says so.
impl Service<StreamRequest> for SimulatedProvider {
    type Response = ChatStream;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<ChatStream, Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: StreamRequest) -> Self::Future {
        let req = req.into_inner();
        let attempt = self.attempt(&req);
        Box::pin(async move {
            let (this, call) = attempt.await?;
            let provider = this.provider_for(&req);
            let mut deltas = this.respond_deltas(&req);
            deltas[0].request_id = Some(format!("sim-{call}").into());
            let items: Vec<Result<ChatDelta, Error>> = match this.config.cut_after {
                Some(n) if n < deltas.len() => {
                    deltas.truncate(n.max(1));
                    let mut items: Vec<_> = deltas.into_iter().map(Ok).collect();
                    items.push(Err(Error::Connection {
                        provider: provider.clone(),
                        message: "simulated connection cut mid-stream".into(),
                    }));
                    items
                }
                _ => deltas.into_iter().map(Ok).collect(),
            };
            Ok(ChatStream::new(provider, futures_util::stream::iter(items)))
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::Message;
    use tower::ServiceExt;

    #[test]
    fn reply_words_are_one_token_each() {
        for model in ["gpt-4o", "gpt-4"] {
            let c = TiktokenCounter::for_model(model);
            for n in [1, 7, 16, 100, 255] {
                assert_eq!(c.count_text(&reply_text(n)), n, "{model} {n}");
            }
        }
    }

    #[test]
    fn deterministic_and_bounded() {
        let p = SimulatedProvider::new();
        let req = ChatRequest::new("claude-haiku-4-5").message(Message::user("hello"));
        let a = p.respond(&req);
        assert_eq!(a, p.respond(&req));
        assert_eq!(a.provider, SIMULATED_PROVIDER);
        assert!((MIN_OUTPUT_TOKENS..=MAX_OUTPUT_TOKENS).contains(&a.usage.output_tokens));
        assert_eq!(
            a.usage.input_tokens,
            TiktokenCounter::default().count_request(&req)
        );
        let capped = p.respond(&req.clone().max_tokens(3));
        assert_eq!(capped.usage.output_tokens, 3);
        assert_eq!(capped.finish_reason, Some(FinishReason::Length));
        let other = p.respond(&ChatRequest::new("llama3").message(Message::user("hello")));
        assert_eq!(other.provider, SIMULATED_PROVIDER);
    }

    #[test]
    fn dated_model_and_provider_override() {
        let p = SimulatedProvider::builder()
            .dated_model("2024-08-06")
            .provider("acme")
            .build();
        let r = p.respond(&ChatRequest::new("gpt-4o"));
        assert_eq!(r.model, "gpt-4o-2024-08-06");
        assert_eq!(r.provider, "acme");
    }

    #[tokio::test(start_paused = true)]
    async fn injected_failures_and_latency() {
        let p = SimulatedProvider::builder()
            .latency(Duration::from_millis(300))
            .fail_first(
                1,
                Failure::Timeout {
                    after: Duration::from_secs(30),
                },
            )
            .fail_every(NonZeroU64::new(3).unwrap(), Failure::Server { status: 502 })
            .build();
        let req = ChatRequest::new("gpt-4o").message(Message::user("x"));
        let start = tokio::time::Instant::now();
        let e = p.clone().oneshot(req.clone()).await.unwrap_err();
        assert!(matches!(e, Error::Timeout { .. }));
        assert_eq!(start.elapsed(), Duration::from_secs(30));
        let ok = p.clone().oneshot(req.clone()).await.unwrap();
        assert_eq!(ok.latency, Duration::from_millis(300));
        assert_eq!(ok.request_id.as_deref(), Some("sim-2"));
        let e = p.clone().oneshot(req.clone()).await.unwrap_err();
        assert!(matches!(e, Error::Server { status: 502, .. }));
        assert!(p.clone().oneshot(req).await.is_ok());
        assert_eq!(p.calls(), 4);
    }
}

mod batch {
    //! The simulated Batch API: a job completes `delay` after submission,
    //! its requests finishing one after another; results are
    //! [`SimulatedProvider::respond`]'s, marked [`Mode::Batch`](crate::Mode::Batch).

    use std::collections::HashMap;
    use std::path::PathBuf;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use async_trait::async_trait;
    use serde::{Deserialize, Serialize};

    use super::SimulatedProvider;
    use crate::core::{
        BatchItem, BatchLimits, BatchProvider, BatchResult, BatchState, BatchStatus,
    };
    use crate::Error;

    #[derive(Debug, Clone, Default)]
    pub(super) struct BatchConfig {
        pub(super) delay: Option<Duration>,
        pub(super) dir: Option<PathBuf>,
        pub(super) expire: bool,
    }

    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub(super) struct Job {
        submitted_ms: u64,
        delay_ms: u64,
        expire: bool,
        cancelled_ms: Option<u64>,
        items: Vec<BatchItem>,
    }

    pub(super) type Jobs = Arc<Mutex<HashMap<String, Job>>>;

    fn now_ms() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    fn not_found(id: &str) -> Error {
        Error::InvalidRequest {
            provider: super::SIMULATED_PROVIDER.into(),
            status: 404,
            message: format!("no simulated batch `{id}`: use the id submit returned"),
        }
    }

    impl Job {
        /// How many requests have finished, and the state.
        fn progress(&self, now: u64) -> (usize, BatchState) {
            let total = self.items.len();
            let end = self.cancelled_ms.unwrap_or(now).min(now);
            let elapsed = end.saturating_sub(self.submitted_ms);
            let runnable = if self.expire { total / 2 } else { total };
            let done = if self.delay_ms == 0 || elapsed >= self.delay_ms {
                runnable
            } else {
                usize::try_from(elapsed.saturating_mul(total as u64) / self.delay_ms)
                    .unwrap_or(total)
                    .min(runnable)
            };
            let state = if self.cancelled_ms.is_some() {
                BatchState::Cancelled
            } else if elapsed >= self.delay_ms {
                if self.expire {
                    BatchState::Expired
                } else {
                    BatchState::Completed
                }
            } else if done == 0 {
                BatchState::Validating
            } else {
                BatchState::InProgress
            };
            (done, state)
        }
    }

    impl SimulatedProvider {
        fn job_path(&self, id: &str) -> Option<PathBuf> {
            self.config
                .batch
                .dir
                .as_ref()
                .map(|d| d.join(format!("{id}.json")))
        }

        fn save_job(&self, id: &str, job: &Job) -> Result<(), Error> {
            if let Some(path) = self.job_path(id) {
                let io = |e: std::io::Error| {
                    Error::config(format!(
                        "cannot write the simulated batch {}: {e}",
                        path.display()
                    ))
                };
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                let bytes = serde_json::to_vec(job).map_err(|e| Error::config(e.to_string()))?;
                std::fs::write(&path, bytes).map_err(io)?;
            } else {
                self.jobs
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id.to_owned(), job.clone());
            }
            Ok(())
        }

        fn load_job(&self, id: &str) -> Result<Job, Error> {
            if !id.starts_with("simbatch_") || !id[9..].chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(not_found(id));
            }
            match self.job_path(id) {
                Some(path) => {
                    let bytes = std::fs::read(&path).map_err(|_| not_found(id))?;
                    serde_json::from_slice(&bytes).map_err(|e| Error::Decode {
                        provider: super::SIMULATED_PROVIDER.into(),
                        message: format!("the simulated batch {} is corrupt: {e}", path.display()),
                        body_snippet: String::new(),
                    })
                }
                None => self
                    .jobs
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(id)
                    .cloned()
                    .ok_or_else(|| not_found(id)),
            }
        }

        fn status_of(id: &str, job: &Job) -> BatchStatus {
            let (done, state) = job.progress(now_ms());
            let total = job.items.len() as u64;
            let failed = if state.is_terminal() {
                total - done as u64
            } else {
                0
            };
            BatchStatus::new(id, state, total).counts(done as u64, failed)
        }
    }

    /// Jobs complete after [`batch_delay`](super::SimulatedProviderBuilder::batch_delay);
    /// ids are `simbatch_<ULID>`.
    #[async_trait]
    impl BatchProvider for SimulatedProvider {
        async fn submit(&self, items: Vec<BatchItem>) -> Result<String, Error> {
            if items.is_empty() {
                return Err(Error::config(
                    "a batch needs at least one request: pass one or more BatchItems",
                ));
            }
            let id = format!("simbatch_{}", ulid::Ulid::new());
            let job = Job {
                submitted_ms: now_ms(),
                delay_ms: u64::try_from(
                    self.config
                        .batch
                        .delay
                        .unwrap_or(Duration::from_secs(2))
                        .as_millis(),
                )
                .unwrap_or(u64::MAX),
                expire: self.config.batch.expire,
                cancelled_ms: None,
                items,
            };
            self.save_job(&id, &job)?;
            Ok(id)
        }

        async fn status(&self, batch_id: &str) -> Result<BatchStatus, Error> {
            Ok(Self::status_of(batch_id, &self.load_job(batch_id)?))
        }

        async fn results(&self, batch_id: &str) -> Result<Vec<BatchResult>, Error> {
            let job = self.load_job(batch_id)?;
            let (done, _) = job.progress(now_ms());
            Ok(job
                .items
                .iter()
                .take(done)
                .map(|i| {
                    let mut resp = self.respond(&i.request);
                    resp.mode = crate::Mode::Batch;
                    BatchResult {
                        custom_id: i.custom_id.clone(),
                        result: Ok(resp),
                    }
                })
                .collect())
        }

        async fn cancel(&self, batch_id: &str) -> Result<BatchStatus, Error> {
            let mut job = self.load_job(batch_id)?;
            if !job.progress(now_ms()).1.is_terminal() {
                job.cancelled_ms = Some(now_ms());
                self.save_job(batch_id, &job)?;
            }
            Ok(Self::status_of(batch_id, &job))
        }

        fn name(&self) -> &str {
            self.config
                .provider
                .as_deref()
                .unwrap_or(super::SIMULATED_PROVIDER)
        }

        fn limits(&self) -> BatchLimits {
            BatchLimits::new(50_000, 200 * 1024 * 1024, Duration::from_secs(24 * 3600))
        }

        async fn list(&self) -> Result<Vec<BatchStatus>, Error> {
            let mut out = Vec::new();
            match &self.config.batch.dir {
                Some(dir) => {
                    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                        let name = e.file_name().to_string_lossy().into_owned();
                        if let Some(id) = name.strip_suffix(".json") {
                            if let Ok(job) = self.load_job(id) {
                                out.push(Self::status_of(id, &job));
                            }
                        }
                    }
                }
                None => {
                    let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
                    out.extend(jobs.iter().map(|(id, j)| Self::status_of(id, j)));
                }
            }
            out.sort_by(|a, b| b.id.cmp(&a.id));
            Ok(out)
        }
    }
}
