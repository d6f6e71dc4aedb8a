//! `cost-tracker chat`: one call through the full stack, priced and recorded.
//!
//! The call goes through the same layers an application uses
//! ([`StackBuilder`]: cost, cache, retry, an optional rate limit, then the
//! provider), with the user's configuration read as every other command
//! reads it ([`settings::config`]: flags > `COSTLAYER_*` > config file >
//! defaults). It is recorded in the JSONL ledger like any other call, and
//! the ledger is flushed before the command exits.
//!
//! Exit codes: 0 success; 1 the call failed (provider error, budget block,
//! ledger write failure); 2 usage or configuration error (bad flag, missing
//! API key, malformed config file).

use std::io::Read as _;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use costlayer::alert::{DeliveryOwner, OutboxEntry, StdoutFormat, StdoutSink};
use costlayer::config::{Config, StdoutAlerts};
use costlayer::layer::builder::{LlmService, LlmStreamService, StackBuilder};
use costlayer::layer::rate_limit::{Quota, RateLimitLayer};
use costlayer::ledger::{
    Aggregate, CostRecord, LedgerError, RecordStream, ResetReport, ResetScope, ScanFilter, Storage,
};
use costlayer::mock::SimulatedProvider;
use costlayer::pricing::PriceTable;
use costlayer::tracker::book::BudgetBook;
use costlayer::tracker::CostTracker;
use costlayer::{ChatRequest, ChatResponse, Error, Message, Money, StreamRequest};
use serde_json::json;
use tower::ServiceExt as _;

use crate::args::ConfigArgs;
use crate::{settings, store, CliError};

/// Which provider answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ProviderName {
    /// OpenAI Chat Completions (`OPENAI_API_KEY`, `OPENAI_BASE_URL`).
    Openai,
    /// Anthropic Messages (`ANTHROPIC_API_KEY`, `ANTHROPIC_BASE_URL`).
    Anthropic,
    /// Google Gemini (`GEMINI_API_KEY` or `GOOGLE_API_KEY`, `GEMINI_BASE_URL`).
    Gemini,
    /// costlayer's deterministic offline provider: no network, no key.
    Simulated,
}

impl ProviderName {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ProviderName::Openai => "openai",
            ProviderName::Anthropic => "anthropic",
            ProviderName::Gemini => "gemini",
            ProviderName::Simulated => "simulated",
        }
    }

    /// The provider as people write it, for messages.
    pub(crate) fn label(self) -> &'static str {
        match self {
            ProviderName::Openai => "OpenAI",
            ProviderName::Anthropic => "Anthropic",
            ProviderName::Gemini => "Gemini",
            ProviderName::Simulated => "simulated",
        }
    }

    /// The model used when `--model` is left out.
    fn default_model(self) -> &'static str {
        match self {
            ProviderName::Openai | ProviderName::Simulated => "gpt-4o-mini",
            ProviderName::Anthropic => "claude-haiku-4-5",
            ProviderName::Gemini => "gemini-2.5-flash",
        }
    }

    /// The environment variables holding the API key, in the order read.
    pub(crate) fn key_vars(self) -> &'static [&'static str] {
        match self {
            ProviderName::Openai => &["OPENAI_API_KEY"],
            ProviderName::Anthropic => &["ANTHROPIC_API_KEY"],
            ProviderName::Gemini => &["GEMINI_API_KEY", "GOOGLE_API_KEY"],
            ProviderName::Simulated => &[],
        }
    }
}

/// Which OpenAI API answers (`--api`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ApiName {
    /// Chat Completions (`/v1/chat/completions`).
    #[default]
    Chat,
    /// The Responses API (`/v1/responses`); OpenAI only.
    Responses,
}

/// Arguments of `cost-tracker chat`.
#[derive(Debug, clap::Args)]
pub(crate) struct ChatArgs {
    /// The provider: openai, anthropic, gemini, or simulated (offline, no key).
    #[arg(long, value_enum, value_name = "NAME")]
    provider: ProviderName,

    /// The OpenAI API: chat (Chat Completions) or responses (the Responses API).
    #[arg(long, value_enum, value_name = "API", default_value = "chat")]
    api: ApiName,

    /// The model. [default: gpt-4o-mini (openai, simulated), claude-haiku-4-5, gemini-2.5-flash]
    #[arg(long, value_name = "MODEL")]
    model: Option<String>,

    /// A system prompt.
    #[arg(long, value_name = "TEXT")]
    system: Option<String>,

    /// The most output tokens; also bounds the budget's worst-case estimate.
    /// [default: the provider's (Anthropic: the client's default)]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_tokens: Option<u32>,

    /// Sampling temperature, from 0 to 2. [default: the provider's]
    #[arg(long, value_name = "T", value_parser = parse_temperature, allow_negative_numbers = true)]
    temperature: Option<f32>,

    /// Print one JSON object: text, provider, model, usage, nano_usd, usd, cached, record_id.
    #[arg(long)]
    json: bool,

    /// Stream the answer: print its text as it arrives, then the cost line
    /// (with --json, one object at the end, as without --stream).
    #[arg(long)]
    stream: bool,

    /// Requests-per-minute limit of the stack's rate limiter. [default: no limit]
    #[arg(long, value_name = "N")]
    rpm: Option<NonZeroU32>,

    /// Tokens-per-minute limit of the stack's rate limiter; a request that can
    /// never fit is refused before it is sent. [default: no limit]
    #[arg(long, value_name = "N")]
    tpm: Option<NonZeroU32>,

    /// A price file merged over the embedded table (costlayer TOML or LiteLLM
    /// JSON). [default: $COSTLAYER_PRICES, or the config file's `prices`]
    #[arg(long, value_name = "FILE")]
    prices: Option<PathBuf>,

    #[command(flatten)]
    common: ConfigArgs,

    /// The prompt (`-` reads it from standard input).
    #[arg(value_name = "PROMPT")]
    prompt: String,
}

/// `--temperature`: a finite number from 0 to 2.
fn parse_temperature(s: &str) -> Result<f32, String> {
    let t: f32 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number: write a temperature such as 0.7"))?;
    if !t.is_finite() || !(0.0..=2.0).contains(&t) {
        return Err(format!(
            "`{s}` is out of range: a temperature is from 0 to 2 (e.g. 0.7)"
        ));
    }
    Ok(t)
}

/// A [`Storage`] that forwards everything to the ledger and keeps the
/// outcome of the last append, so the command can print the record the
/// cost layer wrote (its id and cost) without reading the ledger back.
#[derive(Debug)]
struct Capture {
    inner: Arc<dyn Storage>,
    last: Mutex<Option<(CostRecord, Result<(), String>)>>,
}

impl Capture {
    fn new(inner: Arc<dyn Storage>) -> Self {
        Capture {
            inner,
            last: Mutex::new(None),
        }
    }

    fn last(&self) -> Option<(CostRecord, Result<(), String>)> {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[async_trait]
impl Storage for Capture {
    async fn append(&self, record: &CostRecord) -> Result<(), LedgerError> {
        let result = self.inner.append(record).await;
        let outcome = result.as_ref().map(|_| ()).map_err(|e| e.to_string());
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some((record.clone(), outcome));
        result
    }

    async fn scan(&self, filter: &ScanFilter) -> Result<RecordStream, LedgerError> {
        self.inner.scan(filter).await
    }

    async fn aggregate(&self, filter: &ScanFilter) -> Result<Aggregate, LedgerError> {
        self.inner.aggregate(filter).await
    }

    async fn mark_alert(
        &self,
        key: &str,
        payload: &serde_json::Value,
    ) -> Result<bool, LedgerError> {
        self.inner.mark_alert(key, payload).await
    }

    async fn alert_fired(&self, key: &str) -> Result<bool, LedgerError> {
        self.inner.alert_fired(key).await
    }

    async fn reset(&self, scope: ResetScope) -> Result<ResetReport, LedgerError> {
        self.inner.reset(scope).await
    }

    async fn flush(&self) -> Result<(), LedgerError> {
        self.inner.flush().await
    }

    async fn check_writable(&self) -> Result<(), LedgerError> {
        self.inner.check_writable().await
    }

    async fn claim_alert(&self, entry: &OutboxEntry) -> Result<bool, LedgerError> {
        self.inner.claim_alert(entry).await
    }

    async fn save_delivery(&self, entry: &OutboxEntry) -> Result<(), LedgerError> {
        self.inner.save_delivery(entry).await
    }

    async fn take_delivery(
        &self,
        key: &str,
        owner: &DeliveryOwner,
        now: chrono::DateTime<chrono::Utc>,
        lease: std::time::Duration,
    ) -> Result<Option<OutboxEntry>, LedgerError> {
        self.inner.take_delivery(key, owner, now, lease).await
    }

    async fn deliveries(&self) -> Result<Vec<OutboxEntry>, LedgerError> {
        self.inner.deliveries().await
    }
}

/// Runs `cost-tracker chat`.
pub(crate) fn run(args: ChatArgs) -> Result<(), CliError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Runtime(format!("cannot start the async runtime: {e}")))?;
    rt.block_on(chat(args))
}

async fn chat(args: ChatArgs) -> Result<(), CliError> {
    let prompt = read_prompt(&args.prompt)?;
    let config = config_of(&args.common, args.prices.as_ref())?;
    // The provider first: a missing key is reported before anything is
    // created on disk.
    let (provider, key) = provider(args.provider, args.api)?;
    let Opened {
        tracker,
        capture,
        data_dir: ledger_dir,
        shared,
    } = open_tracker(&config, args.provider)?;

    let mut stack = StackBuilder::new(tracker.clone());
    let quota = match (args.rpm, args.tpm) {
        (Some(r), Some(t)) => Some(Quota::per_minute(r, t)),
        (Some(r), None) => Some(Quota::requests_per_minute(r)),
        (None, Some(t)) => Some(Quota::tokens_per_minute(t)),
        // costlayer cannot know the account's limits: none unless given.
        (None, None) => None,
    };
    if let Some(q) = quota {
        stack = stack.rate_limit(RateLimitLayer::new(q));
    }
    let (llm, streaming): (Option<LlmService>, Option<LlmStreamService>) =
        match (provider, args.stream) {
            (Provider::Simulated(p), false) => (Some(stack.build(p)), None),
            (Provider::Simulated(p), true) => (None, Some(stack.build_streaming(p))),
            #[cfg(feature = "openai")]
            (Provider::OpenAi(p), false) => (Some(stack.build(p)), None),
            #[cfg(feature = "openai")]
            (Provider::OpenAi(p), true) => (None, Some(stack.build_streaming(p))),
            #[cfg(feature = "openai")]
            (Provider::OpenAiResponses(p), false) => (Some(stack.build(p)), None),
            #[cfg(feature = "openai")]
            (Provider::OpenAiResponses(p), true) => (None, Some(stack.build_streaming(p))),
            #[cfg(feature = "anthropic")]
            (Provider::Anthropic(p), false) => (Some(stack.build(p)), None),
            #[cfg(feature = "anthropic")]
            (Provider::Anthropic(p), true) => (None, Some(stack.build_streaming(p))),
            #[cfg(feature = "gemini")]
            (Provider::Gemini(p), false) => (Some(stack.build(p)), None),
            #[cfg(feature = "gemini")]
            (Provider::Gemini(p), true) => (None, Some(stack.build_streaming(p))),
        };

    let model = args
        .model
        .clone()
        .unwrap_or_else(|| args.provider.default_model().to_owned());
    let mut req = ChatRequest::new(model).message(Message::user(prompt));
    if let Some(s) = &args.system {
        req = req.system(s.clone());
    }
    if let Some(n) = args.max_tokens {
        req = req.max_tokens(n);
    }
    if let Some(t) = args.temperature {
        req = req.temperature(t);
    }

    let result = match (llm, streaming) {
        (Some(llm), _) => llm.oneshot(req).await,
        (None, Some(svc)) => stream_call(svc, req, !args.json).await,
        (None, None) => Err(Error::config("no service was built for the call")),
    };
    // Whatever happened, what was written reaches the disk, queued alerts
    // go out and undelivered ones are retried before the process exits.
    let flushed = tracker.flush().await;
    for f in tracker.delivery_failures() {
        eprintln!("warning: {f}; it stays in the alert outbox and is retried by the next run");
    }

    let resp = result.map_err(|e| call_error(&e, key.as_deref()))?;
    let recorded = capture.last();
    print(
        &args,
        &resp,
        recorded.as_ref().map(|(r, _)| r),
        &ledger_dir,
        shared.as_deref(),
    )?;
    let spooled = |id: &str| {
        tracker
            .spool()
            .records()
            .iter()
            .any(|r| r.id.to_string() == id)
    };
    match (recorded, flushed) {
        (Some((r, Err(e))), _) if spooled(&r.id.to_string()) => match tracker.spool().path() {
            Some(path) if path.exists() => {
                eprintln!(
                    "warning: the ledger could not be written ({e}); the record {} was saved to the spool {} and is written to the ledger by the next run",
                    r.id,
                    path.display()
                );
                Ok(())
            }
            _ => Err(CliError::Runtime(format!(
                "the call succeeded (and was billed) but could not be written to the ledger ({e}), nor to a spool file: the record {} is lost when this process exits. Set COSTLAYER_SPOOL_DIR to a writable directory",
                r.id
            ))),
        },
        (Some((_, Err(e))), _) => Err(CliError::Runtime(format!(
            "the call succeeded (and was billed) but could not be written to the ledger: {e}"
        ))),
        (None, _) => Err(CliError::Runtime(
            "the call succeeded but the cost layer wrote no ledger record: this is a bug, please report it".into(),
        )),
        (Some(_), Err(e)) => Err(CliError::Runtime(format!(
            "the call was recorded but the ledger could not be flushed to disk: {e}"
        ))),
        (Some((_, Ok(()))), Ok(())) => Ok(()),
    }
}

/// Streams the call, printing text as it arrives when `echo`; returns the
/// whole response.
async fn stream_call(
    svc: LlmStreamService,
    req: ChatRequest,
    echo: bool,
) -> Result<ChatResponse, Error> {
    use std::io::Write as _;
    let started = std::time::Instant::now();
    let mut stream = svc.oneshot(StreamRequest::new(req)).await?;
    let provider = stream.provider().to_owned();
    let mut acc = costlayer::StreamAccumulator::new();
    let mut out = std::io::stdout();
    while let Some(d) = futures_util::StreamExt::next(&mut stream).await {
        let d = d?;
        if echo && !d.text.is_empty() {
            // The model's answer may hold terminal escapes: shown escaped.
            let _ = out.write_all(crate::shown(&d.text).as_bytes());
            let _ = out.flush();
        }
        acc.push(&d);
    }
    let mut resp = acc.into_response();
    if resp.provider.is_empty() {
        resp.provider = provider;
    }
    resp.latency = started.elapsed();
    Ok(resp)
}

/// The prompt, or standard input for `-`.
fn read_prompt(arg: &str) -> Result<String, CliError> {
    let prompt = if arg == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| CliError::Usage(format!("cannot read the prompt from stdin: {e}")))?;
        s
    } else {
        arg.to_owned()
    };
    if prompt.trim().is_empty() {
        return Err(CliError::Usage(
            "the prompt is empty: pass it as the last argument, or `-` to read it from stdin"
                .into(),
        ));
    }
    Ok(prompt)
}

/// The configuration every command that records reads: flags >
/// `COSTLAYER_*` > config file > defaults, with `--prices` over the file's,
/// `--data-dir` as the data directory, and a spool directory (a record the
/// ledger refuses after the call was billed must outlive the process).
pub(crate) fn config_of(args: &ConfigArgs, prices: Option<&PathBuf>) -> Result<Config, CliError> {
    let mut config = settings::config(args)?;
    if let Some(p) = prices {
        config.prices = Some(p.clone());
    }
    if let Some(dir) = &args.data_dir {
        config.data_dir = dir.clone();
    }
    if config.spool_dir.is_none() {
        config.spool_dir = Some(std::env::temp_dir().join("costlayer-spool"));
    }
    Ok(config)
}

/// The tracker a recording command works through, and where it records.
pub(crate) struct Opened {
    /// The tracker (its ledger wrapped in [`Capture`]).
    pub(crate) tracker: CostTracker,
    /// The last record the tracker appended.
    capture: Arc<Capture>,
    /// The data directory (the JSONL ledger, the batch registry).
    pub(crate) data_dir: PathBuf,
    /// Where the PostgreSQL ledger is, for messages (no credentials), when
    /// one is configured.
    pub(crate) shared: Option<String>,
}

/// Opens the ledger and budget book of `config` and the tracker over them:
/// the shared PostgreSQL ledger and book when `--database-url` /
/// `COSTLAYER_DATABASE_URL` (or the config file's `storage`) names one,
/// else the JSONL files in the data directory. `chat` and `batch` both
/// record through it.
pub(crate) fn open_tracker(config: &Config, provider: ProviderName) -> Result<Opened, CliError> {
    let data_dir = config.data_dir.clone();
    let (ledger, book, shared): (Arc<dyn Storage>, _, _) = match &config.database_url {
        Some(url) => {
            let (ledger, book) = CostTracker::ledger_from_config(config)
                .map_err(|e| CliError::Usage(e.to_string()))?;
            let label = crate::fleet::label(url.expose(), config.database_schema.as_deref());
            (ledger, Some(book), Some(label))
        }
        None => (Arc::new(store::open(&data_dir, &config.user)?), None, None),
    };
    let capture = Arc::new(Capture::new(ledger));
    let tracker = tracker(config, capture.clone(), book, provider)?;
    Ok(Opened {
        tracker,
        capture,
        data_dir,
        shared,
    })
}

/// The tracker [`CostTracker::from_config`] would build, with two changes:
/// the ledger is wrapped in [`Capture`], and alerts print on standard error
/// (standard output is the answer, or the JSON object).
fn tracker(
    config: &Config,
    storage: Arc<dyn Storage>,
    book: Option<Arc<dyn BudgetBook>>,
    provider: ProviderName,
) -> Result<CostTracker, CliError> {
    let mut quiet = config.clone();
    quiet.stdout_alerts = StdoutAlerts::Off;
    let prices = match &config.prices {
        Some(path) => {
            PriceTable::with_user_file(path).map_err(|e| CliError::Usage(e.to_string()))?
        }
        None => PriceTable::embedded().clone(),
    };
    let mut builder = CostTracker::builder_from_config(&quiet)
        .map_err(|e| CliError::Usage(e.to_string()))?
        .storage(storage)
        // Hard limits shared with every process using the ledger.
        .book(match book {
            Some(book) => book,
            None => Arc::new(
                config
                    .jsonl_book()
                    .map_err(|e| CliError::Usage(e.to_string()))?,
            ),
        })
        .prices(prices);
    if provider == ProviderName::Simulated {
        // Reserved and recorded under one provider name.
        builder = builder.provider(provider.as_str());
    }
    let format = match config.stdout_alerts {
        StdoutAlerts::Human => Some(StdoutFormat::Human),
        StdoutAlerts::Json => Some(StdoutFormat::Json),
        _ => None,
    };
    if let Some(f) = format {
        builder = builder.sink(StdoutSink::new(f).writer(Arc::new(Mutex::new(std::io::stderr()))));
    }
    builder.build().map_err(|e| CliError::Usage(e.to_string()))
}

/// The provider service behind the stack.
enum Provider {
    Simulated(SimulatedProvider),
    #[cfg(feature = "openai")]
    OpenAi(costlayer::openai::OpenAi),
    #[cfg(feature = "openai")]
    OpenAiResponses(costlayer::openai::OpenAiResponses),
    #[cfg(feature = "anthropic")]
    Anthropic(costlayer::anthropic::Anthropic),
    #[cfg(feature = "gemini")]
    Gemini(costlayer::gemini::Gemini),
}

/// The client for `name`, read from the environment (key and base URL), and
/// the key itself, so it can be scrubbed from any message as a last guard.
fn provider(name: ProviderName, api: ApiName) -> Result<(Provider, Option<String>), CliError> {
    if api == ApiName::Responses && name != ProviderName::Openai {
        return Err(CliError::Usage(format!(
            "--api responses is OpenAI's Responses API: use it with --provider openai, not {}",
            name.as_str()
        )));
    }
    let key = name
        .key_vars()
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .map(|v| v.trim().to_owned())
        .find(|v| !v.is_empty());
    if let (None, [first, ..]) = (&key, name.key_vars()) {
        return Err(CliError::Usage(format!(
            "no {} API key: set {} (export {first}=...), or run offline with --provider simulated",
            name.label(),
            name.key_vars().join(" or ")
        )));
    }
    let setup = |e: Error| {
        let msg = e.to_string();
        // The missing-key message names the variable; others (a malformed
        // base URL) get told where the setting came from.
        let hint = match name.key_vars() {
            vars @ [first, ..] if !msg.contains(first) => format!(
                " (the key is read from {}, the base URL from {}_BASE_URL)",
                vars.join(" or "),
                name.as_str().to_uppercase()
            ),
            _ => String::new(),
        };
        CliError::Usage(redact(&format!("{msg}{hint}"), key.as_deref()))
    };
    let p = match name {
        // Named `simulated` in the ledger, so its calls stay apart from real
        // spend in every breakdown; priced at the model's real rates.
        ProviderName::Simulated => Provider::Simulated(
            SimulatedProvider::builder()
                .provider(ProviderName::Simulated.as_str())
                .build(),
        ),
        ProviderName::Openai => {
            #[cfg(feature = "openai")]
            {
                match api {
                    ApiName::Responses => Provider::OpenAiResponses(
                        costlayer::openai::OpenAiResponses::from_env().map_err(setup)?,
                    ),
                    ApiName::Chat => {
                        Provider::OpenAi(costlayer::openai::OpenAi::from_env().map_err(setup)?)
                    }
                }
            }
            #[cfg(not(feature = "openai"))]
            return Err(not_built("openai"));
        }
        ProviderName::Anthropic => {
            #[cfg(feature = "anthropic")]
            {
                Provider::Anthropic(costlayer::anthropic::Anthropic::from_env().map_err(setup)?)
            }
            #[cfg(not(feature = "anthropic"))]
            return Err(not_built("anthropic"));
        }
        ProviderName::Gemini => {
            #[cfg(feature = "gemini")]
            {
                Provider::Gemini(costlayer::gemini::Gemini::from_env().map_err(setup)?)
            }
            #[cfg(not(feature = "gemini"))]
            return Err(not_built("gemini"));
        }
    };
    let _ = &setup;
    Ok((p, key))
}

/// The error for a provider left out of this build.
#[cfg_attr(
    all(feature = "openai", feature = "anthropic", feature = "gemini"),
    allow(dead_code)
)]
fn not_built(feature: &str) -> CliError {
    CliError::Usage(format!(
        "this cost-tracker was built without the `{feature}` feature: rebuild with `--features {feature}`, or use --provider simulated"
    ))
}

/// The message of a failed call. Every error the stack returns is a runtime
/// failure (exit 1), a budget block included.
fn call_error(e: &Error, key: Option<&str>) -> CliError {
    let msg = match e {
        Error::BudgetExceeded { .. } => {
            format!("BudgetExceeded: {e} (the call was not sent; nothing was billed or recorded)")
        }
        _ => format!("{e}"),
    };
    CliError::Runtime(redact(&msg, key))
}

/// `text` with every occurrence of the API key replaced by `****`. The
/// providers never put the key in an error; this is a second guard, since
/// a message may quote what a proxy echoed back.
pub(crate) fn redact(text: &str, key: Option<&str>) -> String {
    match key {
        Some(k) if !k.is_empty() => text.replace(k, "****"),
        _ => text.to_owned(),
    }
}

/// `$0.000345 (345000 nano-USD)`, or `unpriced` for a model without a price.
fn cost_line(cost: Option<Money>) -> String {
    match cost {
        Some(c) => format!("{c} ({} nano-USD)", c.nanos()),
        None => "unpriced: the model has no price (recorded with cost null); add it to a price file with --prices".into(),
    }
}

fn print(
    args: &ChatArgs,
    resp: &ChatResponse,
    rec: Option<&CostRecord>,
    ledger_dir: &Path,
    shared: Option<&str>,
) -> Result<(), CliError> {
    let cost = rec.and_then(|r| r.nano_usd);
    let provider = rec.map_or(resp.provider.as_str(), |r| r.provider.as_str());
    let model = rec.map_or(resp.model.as_str(), |r| r.model.as_str());
    let u = resp.usage;
    if args.json {
        let out = json!({
            "text": resp.text,
            "provider": provider,
            "model": model,
            "billed_model": resp.model,
            "usage": {
                "input_tokens": u.input_tokens,
                "output_tokens": u.output_tokens,
                "cache_read_tokens": u.cache_read_tokens,
                "cache_write_5m_tokens": u.cache_write_5m_tokens,
                "cache_write_1h_tokens": u.cache_write_1h_tokens,
                "reasoning_tokens": u.reasoning_tokens,
            },
            "nano_usd": cost.map(Money::nanos),
            "usd": cost.map(Money::to_decimal_string),
            "cached": resp.cached,
            "record_id": rec.map(|r| r.id.to_string()),
            "request_id": resp.request_id,
            "latency_ms": u64::try_from(resp.latency.as_millis()).unwrap_or(u64::MAX),
            "finish_reason": resp.finish_reason,
            "price_version": rec.and_then(|r| r.price_version.clone()),
        });
        println!("{out}");
        return Ok(());
    }
    if args.stream {
        // The text was printed (escaped) as it arrived.
        println!();
    } else {
        // The model's answer may hold terminal escapes: shown escaped.
        println!("{}", crate::shown(resp.text.trim_end()));
    }
    println!();
    let mut usage = format!("usage: {} input", u.input_tokens);
    if u.cache_read_tokens > 0 {
        usage.push_str(&format!(" + {} cache read", u.cache_read_tokens));
    }
    if u.cache_write_5m_tokens > 0 {
        usage.push_str(&format!(" + {} cache write 5m", u.cache_write_5m_tokens));
    }
    if u.cache_write_1h_tokens > 0 {
        usage.push_str(&format!(" + {} cache write 1h", u.cache_write_1h_tokens));
    }
    usage.push_str(&format!(", {} output", u.output_tokens));
    if u.reasoning_tokens > 0 {
        usage.push_str(&format!(" ({} reasoning)", u.reasoning_tokens));
    }
    println!(
        "{}{}",
        crate::shown(&format!("{provider} {model}")),
        if resp.cached { " (cached)" } else { "" }
    );
    println!("{usage}");
    println!("cost: {}", cost_line(cost));
    if let (Some(r), Some(shared)) = (rec, shared) {
        println!("recorded: {} in {shared}", r.id);
    } else if let Some(r) = rec {
        println!(
            "recorded: {} in {}",
            r.id,
            ledger_dir
                .join(format!(
                    "costs_{}.jsonl",
                    costlayer::ledger::sanitize_user(&r.user)
                        .unwrap_or_else(|_| r.user.to_string())
                ))
                .display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temperatures_are_checked() {
        assert_eq!(parse_temperature("0.7"), Ok(0.7));
        assert_eq!(parse_temperature("0"), Ok(0.0));
        assert_eq!(parse_temperature("2"), Ok(2.0));
        for bad in ["-0.1", "2.5", "NaN", "inf", "warm", ""] {
            assert!(parse_temperature(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_key_is_scrubbed() {
        assert_eq!(
            redact(
                "proxy said: bad key sk-abc123 (sk-abc123)",
                Some("sk-abc123")
            ),
            "proxy said: bad key **** (****)"
        );
        assert_eq!(redact("nothing", None), "nothing");
        assert_eq!(redact("nothing", Some("")), "nothing");
    }

    #[test]
    fn every_provider_has_a_priced_default_model() {
        for p in [
            ProviderName::Openai,
            ProviderName::Anthropic,
            ProviderName::Gemini,
            ProviderName::Simulated,
        ] {
            assert!(
                PriceTable::embedded().get(p.default_model()).is_some(),
                "{}",
                p.default_model()
            );
        }
    }
}
