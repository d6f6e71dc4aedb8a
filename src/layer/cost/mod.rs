//! Cost recording: the budget pre-flight before each call, the ledger
//! record after it, and one `gen_ai.chat` tracing span around it.
//!
//! [`CostLayer`] wraps a provider (or the rest of the stack) in a
//! [`CostService`]. For every [`ChatRequest`](crate::ChatRequest):
//!
//! 1. a span `gen_ai.chat` is opened (fields below) and the rest of the call
//!    runs inside it, so the cache and retry layers can record into
//!    [`tracing::Span::current`];
//! 2. [`CostTracker::reserve`](crate::tracker::CostTracker::reserve) holds
//!    the call's worst-case cost in every blocking budget; a call that would
//!    cross one returns [`Error::BudgetExceeded`](crate::Error::BudgetExceeded)
//!    and the inner service is **never called**;
//! 3. the inner service is called;
//! 4. on success, [`CostTracker::record`](crate::tracker::CostTracker::record)
//!    prices the billed usage, settles the reservation and appends the
//!    ledger record. A response with `cached == true` is recorded at cost 0
//!    with the money saved. Errors are not billed: the reservation is
//!    released. A dropped future (timeout, client gone) releases it too.
//!
//! A failure to *write* the ledger does not fail a call the provider has
//! already answered (and billed): it is logged at `error` level and the
//! spend still counts in the budgets.
//!
//! # The span
//!
//! | field | value |
//! |---|---|
//! | `gen_ai.operation.name` | `chat` |
//! | `gen_ai.provider.name` | `openai`, `anthropic`, `gemini`, ... (from the model id, then the response) |
//! | `gen_ai.request.model` | the model asked for |
//! | `gen_ai.response.model` | the model billed |
//! | `gen_ai.usage.input_tokens` | the whole prompt (input + cache reads + cache writes), as OpenTelemetry defines it |
//! | `gen_ai.usage.output_tokens` | output tokens, reasoning included |
//! | `costlayer.cost_nano_usd` | the cost recorded (0 for a cache hit; absent if unpriced) |
//! | `costlayer.cache` | `hit` / `miss`, recorded by the cache layer |
//! | `costlayer.retries` | the retry count, recorded by the retry layer (empty when the call was not retried) |
//!
//! No field ever holds a prompt, an answer or a secret.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use costlayer::layer::cost::CostLayer;
//! use costlayer::ledger::MemoryStorage;
//! use costlayer::tracker::CostTracker;
//! use costlayer::{ChatRequest, ChatResponse, Error, Message, Usage};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Error> {
//! let ledger = MemoryStorage::new();
//! let tracker = CostTracker::builder().storage(Arc::new(ledger.clone())).user("alice").build()?;
//! let provider = service_fn(|req: ChatRequest| async move {
//!     Ok::<_, Error>(ChatResponse { model: req.model, usage: Usage::new(10, 5), ..Default::default() })
//! });
//! let svc = ServiceBuilder::new().layer(CostLayer::new(tracker)).service(provider);
//! let resp = svc.oneshot(ChatRequest::new("my-model").message(Message::user("hi"))).await?;
//! assert_eq!(resp.usage.output_tokens, 5);
//! assert_eq!(ledger.records()[0].user, "alice");
//! # Ok(()) }
//! ```

pub mod future;
mod layer;
mod service;
mod stream;

pub use self::layer::CostLayer;
pub use self::service::CostService;
