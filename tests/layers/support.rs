//! Shared helpers: a tracing subscriber that captures what the layers
//! record, and a provider with scripted usage.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::future::Future;
use std::sync::{Arc, Mutex};

use costlayer::{ChatRequest, ChatResponse, Error, Message, Usage};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Dispatch, Event, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// Everything recorded: `field=value` for span fields, and each event's
/// fields, one line each.
#[derive(Clone, Default)]
pub(crate) struct Captured(Arc<Mutex<Vec<String>>>);

impl Captured {
    pub(crate) fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    pub(crate) fn all(&self) -> String {
        self.lines().join("\n")
    }

    /// The last value recorded for a span field.
    pub(crate) fn field(&self, name: &str) -> Option<String> {
        let prefix = format!("{name}=");
        self.lines()
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix(&prefix).map(str::to_owned))
    }
}

struct Fields<'a>(&'a mut Vec<(String, String)>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name().to_owned(), value.to_owned()));
    }
}

struct CaptureLayer(Captured);

impl<S: Subscriber> Layer<S> for CaptureLayer {
    fn on_new_span(&self, attrs: &Attributes<'_>, _id: &Id, _ctx: Context<'_, S>) {
        let mut f = Vec::new();
        attrs.record(&mut Fields(&mut f));
        let mut lines = self.0 .0.lock().unwrap();
        lines.extend(f.into_iter().map(|(k, v)| format!("{k}={v}")));
    }
    fn on_record(&self, _id: &Id, values: &Record<'_>, _ctx: Context<'_, S>) {
        let mut f = Vec::new();
        values.record(&mut Fields(&mut f));
        let mut lines = self.0 .0.lock().unwrap();
        lines.extend(f.into_iter().map(|(k, v)| format!("{k}={v}")));
    }
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut f = Vec::new();
        event.record(&mut Fields(&mut f));
        let mut line = String::from("event:");
        for (k, v) in f {
            let _ = write!(line, " {k}={v}");
        }
        self.0 .0.lock().unwrap().push(line);
    }
}

/// A dispatcher capturing everything at TRACE level.
pub(crate) fn capture() -> (Dispatch, Captured) {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::registry().with(CaptureLayer(captured.clone()));
    (Dispatch::new(subscriber), captured)
}

/// Runs `fut` inside a span shaped like the cost layer's, with the fields
/// the layers record declared empty.
pub(crate) async fn in_call_span<F: Future>(dispatch: &Dispatch, fut: F) -> F::Output {
    use tracing::instrument::{Instrument, WithSubscriber};
    let span = tracing::dispatcher::with_default(dispatch, || {
        tracing::info_span!(
            "llm.call",
            costlayer.cache = tracing::field::Empty,
            costlayer.retries = tracing::field::Empty,
        )
    });
    fut.instrument(span).with_subscriber(dispatch.clone()).await
}

/// A user request for `model`.
pub(crate) fn req(model: &str, text: &str) -> ChatRequest {
    ChatRequest::new(model).message(Message::user(text))
}

/// A response with the given usage.
pub(crate) fn response(req: &ChatRequest, usage: Usage) -> ChatResponse {
    ChatResponse {
        provider: req.provider_hint().unwrap_or("test").into(),
        model: req.model.clone(),
        text: "ok".into(),
        usage,
        ..ChatResponse::default()
    }
}

/// Calls recorded by a test provider, with tokio's time of each call.
#[derive(Clone, Default)]
pub(crate) struct Calls(Arc<Mutex<Vec<(tokio::time::Instant, ChatRequest)>>>);

impl Calls {
    pub(crate) fn push(&self, req: &ChatRequest) {
        self.0
            .lock()
            .unwrap()
            .push((tokio::time::Instant::now(), req.clone()));
    }
    pub(crate) fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    /// Offsets of the calls from `start`.
    pub(crate) fn offsets(&self, start: tokio::time::Instant) -> Vec<std::time::Duration> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(t, _)| t.duration_since(start))
            .collect()
    }
    pub(crate) fn requests(&self) -> Vec<ChatRequest> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(_, r)| r.clone())
            .collect()
    }
}

/// A provider that records each call and answers with `f(request)`.
pub(crate) fn recording<F>(
    calls: Calls,
    f: F,
) -> impl tower::Service<
    ChatRequest,
    Response = ChatResponse,
    Error = Error,
    Future = std::future::Ready<Result<ChatResponse, Error>>,
> + Clone
       + Send
       + 'static
where
    F: Fn(&ChatRequest) -> Result<ChatResponse, Error> + Clone + Send + 'static,
{
    tower::service_fn(move |req: ChatRequest| {
        calls.push(&req);
        std::future::ready(f(&req))
    })
}
