//! Streamed chat calls: the request marker [`StreamRequest`], the response
//! [`ChatStream`] of [`ChatDelta`]s, the [`StreamCodec`] a provider
//! implements to stream, and the [`StreamAccumulator`] that folds a stream
//! back into a [`ChatResponse`].
//!
//! A streaming call is a `tower::Service<StreamRequest, Response = ChatStream>`.
//! It is a second request type rather than a flag on [`ChatRequest`] so
//! that the non-streaming path keeps its concrete, cheap response type, and
//! every layer implements both with the same logic (reserve before, record
//! after), only the "after" happening when the stream ends.
//!
//! # The contract of a stream
//!
//! - The call's future resolves once the provider's first delta has
//!   arrived (or with the error that came instead), so a failure before the
//!   first delta is an ordinary error a retry layer may retry; after it,
//!   an error ends the stream with that error and nothing is retried.
//! - Each [`ChatDelta`] carries what arrived since the previous one: text,
//!   thinking, tool-call fragments. `usage` is set whenever the provider
//!   reported usage, and is then the **cumulative** billed usage so far
//!   (Anthropic reports input tokens first and output at the end; Gemini
//!   repeats its totals on every chunk; OpenAI sends one usage chunk last).
//! - The last delta has `done == true` and the final usage. A stream that
//!   ends without it (a cut connection, an error event) ends with an
//!   [`Error`] instead.
//!
//! # Example
//!
//! ```
//! use costlayer_core::{ChatDelta, FinishReason, StreamAccumulator, ToolCallDelta, Usage};
//!
//! let mut acc = StreamAccumulator::new();
//! acc.push(&ChatDelta { text: "Hel".into(), usage: Some(Usage::new(12, 0)), ..Default::default() });
//! acc.push(&ChatDelta { text: "lo".into(), ..Default::default() });
//! acc.push(&ChatDelta {
//!     tool_calls: vec![ToolCallDelta { index: 0, id: Some("call_1".into()), name: Some("f".into()), arguments: "{\"a\"".into(), ..Default::default() }],
//!     ..Default::default()
//! });
//! acc.push(&ChatDelta {
//!     tool_calls: vec![ToolCallDelta { index: 0, arguments: ":1}".into(), ..Default::default() }],
//!     finish_reason: Some(FinishReason::ToolCalls),
//!     usage: Some(Usage::new(12, 7)),
//!     done: true,
//!     ..Default::default()
//! });
//! assert!(acc.is_done());
//! let resp = acc.into_response();
//! assert_eq!(resp.text, "Hello");
//! assert_eq!(resp.tool_calls[0].arguments, "{\"a\":1}");
//! assert_eq!(resp.usage, Usage::new(12, 7));
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
#[cfg(feature = "http")]
use std::time::Instant;

use bytes::Bytes;
use futures_core::Stream;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::sse::{SseEvent, SseParser};
use crate::transport::Codec;
#[cfg(feature = "http")]
use crate::transport::HttpResponse;
use crate::{
    ChatRequest, ChatResponse, ContentPart, Error, FinishReason, SharedStr, ToolCall, ToolCallKind,
    Usage,
};

/// One increment of a streamed response. See the [module docs](self) for
/// the contract.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChatDelta {
    /// Text generated since the previous delta.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub text: String,
    /// Reasoning ("thinking") text since the previous delta, where the
    /// provider streams it.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub thinking: String,
    /// Fragments of tool calls, joined by `index`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCallDelta>,
    /// Completed parts of the assistant turn that the next request must
    /// carry back (thinking with its signature, redacted thinking,
    /// provider items), with the text parts around them, in order: what a
    /// codec puts in [`ChatResponse::parts`]. Empty while the turn is
    /// plain text. Appended by the accumulator.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<ContentPart>,
    /// Why generation stopped, once known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<FinishReason>,
    /// The cumulative billed usage, whenever the provider reported it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// The model as billed, once the provider said it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<SharedStr>,
    /// The provider's response id, once known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<SharedStr>,
    /// The provider's usage object as received (the last one wins).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_usage: Option<Value>,
    /// Set on the last delta: the stream completed and `usage` is final.
    pub done: bool,
    /// `true` when the stream is a replay from costlayer's response cache
    /// (nothing was billed).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cached: bool,
    /// Set on the last delta by the cost layer: what it recorded for the
    /// whole stream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded: Option<crate::RecordedCost>,
}

impl ChatDelta {
    /// The single, final delta that carries a whole response.
    pub fn whole(resp: &ChatResponse) -> Self {
        ChatDelta {
            text: resp.text.clone(),
            tool_calls: resp
                .tool_calls
                .iter()
                .enumerate()
                .map(|(index, t)| ToolCallDelta {
                    index,
                    id: Some(t.id.clone()),
                    name: Some(t.name.clone()),
                    arguments: t.arguments.clone(),
                    kind: Some(t.kind),
                    signature: t.signature.clone(),
                    item_id: t.item_id.clone(),
                })
                .collect(),
            parts: resp.parts.clone(),
            finish_reason: resp.finish_reason.clone(),
            usage: Some(resp.usage),
            model: Some(resp.model.clone()),
            request_id: resp.request_id.clone(),
            raw_usage: resp.raw_usage.clone(),
            done: true,
            cached: resp.cached,
            ..ChatDelta::default()
        }
    }

    /// Whether the delta carries nothing at all (decoders drop those).
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
            && self.thinking.is_empty()
            && self.tool_calls.is_empty()
            && self.parts.is_empty()
            && self.finish_reason.is_none()
            && self.usage.is_none()
            && self.model.is_none()
            && self.request_id.is_none()
            && !self.done
    }
}

/// A fragment of a tool call: the first fragment of a call carries its
/// `id` and `name`, later ones more of its `arguments` JSON text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ToolCallDelta {
    /// Which tool call of the response this fragment belongs to.
    pub index: usize,
    /// The call's id (first fragment).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The tool's name (first fragment).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// More of the arguments' JSON text.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub arguments: String,
    /// The call's kind, when not a function (first fragment).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<ToolCallKind>,
    /// Continuation data for the call ([`ToolCall::signature`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// The provider's id of the output item holding the call
    /// ([`ToolCall::item_id`]; the Responses API's `fc_…`), first fragment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item_id: Option<String>,
}

/// Folds a stream's deltas into the [`ChatResponse`] the same call would
/// have returned unstreamed. The cost layer uses it to record a stream,
/// the cache to store one, and callers to get the whole answer.
#[derive(Debug, Clone, Default)]
pub struct StreamAccumulator {
    resp: ChatResponse,
    thinking: String,
    tools: Vec<ToolCall>,
    usage_seen: bool,
    done: bool,
    deltas: u64,
}

impl StreamAccumulator {
    /// An empty accumulator.
    pub fn new() -> Self {
        StreamAccumulator::default()
    }

    /// Adds one delta.
    pub fn push(&mut self, d: &ChatDelta) {
        self.deltas += 1;
        self.resp.text.push_str(&d.text);
        self.thinking.push_str(&d.thinking);
        for t in &d.tool_calls {
            if self.tools.len() <= t.index {
                self.tools.resize_with(t.index + 1, ToolCall::default);
            }
            let call = &mut self.tools[t.index];
            if let Some(id) = &t.id {
                call.id.clone_from(id);
            }
            if let Some(name) = &t.name {
                call.name.push_str(name);
            }
            call.arguments.push_str(&t.arguments);
            if let Some(k) = t.kind {
                call.kind = k;
            }
            if t.signature.is_some() {
                call.signature.clone_from(&t.signature);
            }
            if t.item_id.is_some() {
                call.item_id.clone_from(&t.item_id);
            }
        }
        if !d.parts.is_empty() {
            // The delta's parts hold its text too, in place.
            self.resp.parts.extend(d.parts.iter().cloned());
        } else if !d.text.is_empty() {
            match self.resp.parts.last_mut() {
                Some(ContentPart::Text { text }) => text.push_str(&d.text),
                _ => self.resp.parts.push(ContentPart::text(d.text.clone())),
            }
        }
        if let Some(f) = &d.finish_reason {
            self.resp.finish_reason = Some(f.clone());
        }
        if let Some(u) = d.usage {
            self.resp.usage = u;
            self.usage_seen = true;
        }
        if let Some(m) = &d.model {
            self.resp.model.clone_from(m);
        }
        if let Some(r) = &d.request_id {
            self.resp.request_id = Some(r.clone());
        }
        if d.raw_usage.is_some() {
            self.resp.raw_usage.clone_from(&d.raw_usage);
        }
        self.done |= d.done;
        self.resp.cached |= d.cached;
        if d.recorded.is_some() {
            self.resp.recorded.clone_from(&d.recorded);
        }
    }

    /// Whether the final delta has been pushed.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// How many deltas were pushed.
    pub fn deltas(&self) -> u64 {
        self.deltas
    }

    /// The last usage the provider reported, if any (final once
    /// [`is_done`](Self::is_done)).
    pub fn usage(&self) -> Option<Usage> {
        self.usage_seen.then_some(self.resp.usage)
    }

    /// Everything generated so far as one text (answer, thinking and tool
    /// arguments), for counting the output of a stream that ended early.
    pub fn generated_text(&self) -> String {
        let mut s = String::with_capacity(self.resp.text.len() + self.thinking.len());
        s.push_str(&self.thinking);
        s.push_str(&self.resp.text);
        for t in &self.tools {
            s.push_str(&t.name);
            s.push_str(&t.arguments);
        }
        s
    }

    /// The response so far (the whole response once done).
    pub fn response(&self) -> ChatResponse {
        let mut r = self.resp.clone();
        r.tool_calls = self.tools.clone();
        plain_text_has_no_parts(&mut r);
        r
    }

    /// The response, consuming the accumulator.
    pub fn into_response(self) -> ChatResponse {
        let mut r = self.resp;
        r.tool_calls = self.tools;
        plain_text_has_no_parts(&mut r);
        r
    }
}

/// As the codecs do: a turn of text alone keeps no parts (`text` is all).
fn plain_text_has_no_parts(r: &mut ChatResponse) {
    if r.parts
        .iter()
        .all(|p| matches!(p, ContentPart::Text { .. }))
    {
        r.parts.clear();
    }
}

/// A chat request to be answered as a stream: the request type of the
/// streaming `Service`s (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRequest(pub ChatRequest);

impl StreamRequest {
    /// Wraps a request.
    pub fn new(req: ChatRequest) -> Self {
        StreamRequest(req)
    }

    /// The request.
    pub fn get_ref(&self) -> &ChatRequest {
        &self.0
    }

    /// The request, mutably.
    pub fn get_mut(&mut self) -> &mut ChatRequest {
        &mut self.0
    }

    /// The request, unwrapped.
    pub fn into_inner(self) -> ChatRequest {
        self.0
    }
}

impl From<ChatRequest> for StreamRequest {
    fn from(req: ChatRequest) -> Self {
        StreamRequest(req)
    }
}

/// The boxed stream inside a [`ChatStream`].
pub type DeltaStream = Pin<Box<dyn Stream<Item = Result<ChatDelta, Error>> + Send>>;

/// A streamed answer: a `Stream` of [`ChatDelta`]s, the last one `done`.
/// Layers wrap it (to record the cost when it ends, to fill the cache);
/// dropping it early cancels the HTTP body.
pub struct ChatStream {
    inner: DeltaStream,
    provider: String,
    time_to_first_delta: Option<Duration>,
}

impl fmt::Debug for ChatStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatStream")
            .field("provider", &self.provider)
            .field("time_to_first_delta", &self.time_to_first_delta)
            .finish_non_exhaustive()
    }
}

impl ChatStream {
    /// A stream of deltas from `provider`.
    pub fn new(
        provider: impl Into<String>,
        stream: impl Stream<Item = Result<ChatDelta, Error>> + Send + 'static,
    ) -> Self {
        ChatStream {
            inner: Box::pin(stream),
            provider: provider.into(),
            time_to_first_delta: None,
        }
    }

    /// A one-delta stream replaying a whole response (a cache hit): its
    /// text, tool calls, finish reason and usage in one final delta.
    pub fn from_response(resp: &ChatResponse) -> Self {
        ChatStream::from_deltas(resp.provider.clone(), vec![ChatDelta::whole(resp)])
    }

    /// A stream that replays `deltas` (a cached answer, a test).
    pub fn from_deltas(provider: impl Into<String>, deltas: Vec<ChatDelta>) -> Self {
        ChatStream::new(provider, Replay(deltas.into_iter().map(Ok).collect()))
    }

    /// The provider serving it.
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// How long the provider took to send its first delta, when the
    /// transport measured it.
    pub fn time_to_first_delta(&self) -> Option<Duration> {
        self.time_to_first_delta
    }

    /// Sets the time to first delta (for transports and layers).
    pub fn set_time_to_first_delta(&mut self, d: Duration) {
        self.time_to_first_delta = Some(d);
    }

    /// Replaces the inner stream with `f(inner)`, keeping the metadata: how
    /// layers wrap a stream.
    pub fn map_inner<S, F>(self, f: F) -> ChatStream
    where
        F: FnOnce(DeltaStream) -> S,
        S: Stream<Item = Result<ChatDelta, Error>> + Send + 'static,
    {
        ChatStream {
            inner: Box::pin(f(self.inner)),
            provider: self.provider,
            time_to_first_delta: self.time_to_first_delta,
        }
    }

    /// Reads the whole stream into the response the call would have
    /// returned unstreamed.
    ///
    /// # Errors
    ///
    /// The error that ended the stream.
    pub async fn collect_response(mut self) -> Result<ChatResponse, Error> {
        let mut acc = StreamAccumulator::new();
        while let Some(d) = std::future::poll_fn(|cx| Pin::new(&mut self).poll_next(cx)).await {
            acc.push(&d?);
        }
        let mut r = acc.into_response();
        if r.provider.is_empty() {
            r.provider.clone_from(&self.provider);
        }
        Ok(r)
    }
}

impl Stream for ChatStream {
    type Item = Result<ChatDelta, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

struct Replay(VecDeque<Result<ChatDelta, Error>>);

impl Stream for Replay {
    type Item = Result<ChatDelta, Error>;

    fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(self.0.pop_front())
    }
}

/// Turns one provider's server-sent events into [`ChatDelta`]s. Pure: no
/// I/O, so each decoder is tested on recorded bodies.
pub trait StreamDecoder: Send + 'static {
    /// One event. Returns the delta it carries, if any, or the error the
    /// provider sent in the stream.
    ///
    /// # Errors
    ///
    /// An error event, or [`Error::Decode`] for an unreadable payload.
    fn event(&mut self, event: &SseEvent) -> Result<Option<ChatDelta>, Error>;

    /// The body ended. Returns a last delta if the decoder held one back.
    ///
    /// # Errors
    ///
    /// [`Error::Connection`] if the provider's final event never came (the
    /// stream was cut).
    fn finish(&mut self) -> Result<Option<ChatDelta>, Error>;
}

/// A [`Codec`] that can also stream. The transport sends
/// [`encode_stream`](Self::encode_stream)'s request, reads an error status
/// with [`Codec::decode`], and feeds a 2xx body's events to a fresh
/// [`StreamCodec::Decoder`].
pub trait StreamCodec: Codec {
    /// The per-call decoder.
    type Decoder: StreamDecoder;

    /// Builds the HTTP request for a streamed chat call.
    ///
    /// # Errors
    ///
    /// As [`Codec::encode`].
    fn encode_stream(&self, req: &ChatRequest) -> Result<http::Request<Bytes>, Error>;

    /// A decoder for one call's stream.
    fn stream_decoder(&self, req: &ChatRequest) -> Self::Decoder;
}

/// The error for a stream whose final event never came.
pub fn stream_cut(provider: &str, deltas: u64) -> Error {
    Error::Connection {
        provider: provider.to_owned(),
        message: format!(
            "the stream ended after {deltas} deltas without the provider's final event (the connection was cut)"
        ),
    }
}

/// The error for an unreadable event payload.
pub fn bad_event(provider: &str, e: &serde_json::Error, data: &str) -> Error {
    Error::Decode {
        provider: provider.to_owned(),
        message: format!("a stream event could not be read: {e}"),
        body_snippet: crate::transport::body_snippet(data.as_bytes(), 200),
    }
}

/// What [`decode_body`] read from a body.
#[doc(hidden)]
#[derive(Debug)]
pub struct DecodedBody {
    /// The deltas, in order, as the transport would yield them (empty ones
    /// dropped, nothing after the final one).
    pub deltas: Vec<ChatDelta>,
    /// The error that ended the stream instead of a final delta, if any.
    pub error: Option<Error>,
}

impl DecodedBody {
    /// The deltas folded together.
    pub fn accumulator(&self) -> StreamAccumulator {
        let mut acc = StreamAccumulator::new();
        for d in &self.deltas {
            acc.push(d);
        }
        acc
    }

    /// The response the deltas add up to.
    pub fn response(&self) -> ChatResponse {
        self.accumulator().into_response()
    }

    /// Whether the final delta came.
    pub fn is_done(&self) -> bool {
        self.deltas.last().is_some_and(|d| d.done)
    }

    /// The folded deltas and how the stream ended.
    pub fn into_parts(self) -> (StreamAccumulator, Result<(), Error>) {
        let acc = self.accumulator();
        (acc, self.error.map_or(Ok(()), Err))
    }
}

/// Feeds `body` through an [`SseParser`] and `decoder` in chunks of the
/// given sizes (cycled; an empty list or a zero size reads the rest
/// whole), with the transport's rules: empty deltas are dropped, nothing
/// after the final delta counts, an error event ends the stream, and a
/// body without the final delta ends with [`stream_cut`].
///
/// Not part of the API: the provider crates' decoder tests and the
/// chunking property tests use it so that they all read bodies the same way.
///
/// ```
/// use costlayer_core::sse::SseEvent;
/// use costlayer_core::stream::decode_body;
/// use costlayer_core::{ChatDelta, Error, StreamDecoder};
///
/// #[derive(Default)]
/// struct Echo(bool);
/// impl StreamDecoder for Echo {
///     fn event(&mut self, ev: &SseEvent) -> Result<Option<ChatDelta>, Error> {
///         self.0 = ev.data == "end";
///         Ok(Some(ChatDelta { text: ev.data.clone(), done: self.0, ..Default::default() }))
///     }
///     fn finish(&mut self) -> Result<Option<ChatDelta>, Error> { Ok(None) }
/// }
/// let read = decode_body(Echo::default(), b"data: a\n\ndata: end\n\ndata: late\n\n", &[3]);
/// assert!(read.is_done() && read.error.is_none());
/// assert_eq!(read.response().text, "aend");
/// ```
#[doc(hidden)]
pub fn decode_body<D: StreamDecoder>(
    mut decoder: D,
    body: &[u8],
    chunk_sizes: &[usize],
) -> DecodedBody {
    let mut parser = SseParser::new();
    let mut out = DecodedBody {
        deltas: Vec::new(),
        error: None,
    };
    let push = |out: &mut DecodedBody, d: Result<Option<ChatDelta>, Error>| -> bool {
        match d {
            Ok(Some(d)) if !d.is_empty() => {
                let done = d.done;
                out.deltas.push(d);
                !done
            }
            Ok(_) => true,
            Err(e) => {
                out.error = Some(e);
                false
            }
        }
    };
    let mut rest = body;
    let mut sizes = chunk_sizes.iter().copied().cycle();
    while !rest.is_empty() {
        let n = match sizes.next() {
            Some(n) if n > 0 => n.min(rest.len()),
            _ => rest.len(),
        };
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        for ev in parser.feed(chunk) {
            if !push(&mut out, decoder.event(&ev)) {
                return out;
            }
        }
    }
    if let Some(ev) = parser.finish() {
        if !push(&mut out, decoder.event(&ev)) {
            return out;
        }
    }
    if push(&mut out, decoder.finish()) && !out.is_done() {
        out.error = Some(stream_cut("unknown", out.deltas.len() as u64));
    }
    out
}

/// Drives an SSE body through a decoder: the stream the transport returns.
#[cfg(feature = "http")]
pub(crate) struct SseDeltas<B, D> {
    pub(crate) body: B,
    pub(crate) parser: SseParser,
    pub(crate) decoder: D,
    pub(crate) pending: VecDeque<ChatDelta>,
    pub(crate) provider: &'static str,
    pub(crate) idle: Duration,
    pub(crate) sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    pub(crate) deltas: u64,
    pub(crate) body_ended: bool,
    pub(crate) tail_error: Option<Error>,
    pub(crate) finished: bool,
}

#[cfg(feature = "http")]
impl<B, D> SseDeltas<B, D>
where
    B: Stream<Item = Result<Bytes, reqwest::Error>> + Unpin + Send,
    D: StreamDecoder,
{
    fn events(&mut self, events: Vec<SseEvent>) -> Result<(), Error> {
        for ev in events {
            if let Some(d) = self.decoder.event(&ev)? {
                if !d.is_empty() {
                    self.pending.push_back(d);
                }
            }
        }
        Ok(())
    }

    /// Puts back a delta read ahead (the transport reads the first one
    /// before handing the stream over).
    pub(crate) fn unread(&mut self, d: ChatDelta) {
        self.deltas = self.deltas.saturating_sub(1);
        if d.done {
            self.finished = false;
        }
        self.pending.push_front(d);
    }

    fn end(&mut self) -> Result<(), Error> {
        if let Some(ev) = self.parser.finish() {
            self.events(vec![ev])?;
        }
        if let Some(d) = self.decoder.finish()? {
            self.pending.push_back(d);
        }
        Ok(())
    }
}

#[cfg(feature = "http")]
impl<B, D> Stream for SseDeltas<B, D>
where
    B: Stream<Item = Result<Bytes, reqwest::Error>> + Unpin + Send,
    D: StreamDecoder + Unpin,
{
    type Item = Result<ChatDelta, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(d) = this.pending.pop_front() {
                this.deltas += 1;
                if d.done {
                    // Nothing after the final delta counts.
                    this.finished = true;
                    this.pending.clear();
                    this.tail_error = None;
                }
                return Poll::Ready(Some(Ok(d)));
            }
            if this.finished {
                return Poll::Ready(None);
            }
            if this.body_ended {
                this.finished = true;
                return Poll::Ready(this.tail_error.take().map(Err));
            }
            match Pin::new(&mut this.body).poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    this.sleep = None;
                    let events = this.parser.feed(&chunk);
                    if let Err(e) = this.events(events) {
                        // Deliver what came before the error event, then it.
                        this.body_ended = true;
                        this.tail_error = Some(e);
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    tracing::debug!(provider = this.provider, error = %e, "stream body failed");
                    this.body_ended = true;
                    this.tail_error = Some(stream_cut(this.provider, this.deltas));
                }
                Poll::Ready(None) => {
                    this.body_ended = true;
                    match this.end() {
                        Err(e) => this.tail_error = Some(e),
                        Ok(()) if !this.pending.iter().any(|d| d.done) => {
                            let n = this.deltas + this.pending.len() as u64;
                            this.tail_error = Some(stream_cut(this.provider, n));
                        }
                        Ok(()) => {}
                    }
                }
                Poll::Pending => {
                    let idle = this.idle;
                    let sleep = this
                        .sleep
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                    if sleep.as_mut().poll(cx).is_ready() {
                        this.body_ended = true;
                        this.tail_error = Some(Error::Timeout {
                            provider: this.provider.to_owned(),
                            after: idle,
                        });
                        continue;
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

#[cfg(feature = "http")]
use std::future::Future as _;

/// Reads a non-2xx streaming answer whole and turns it into the codec's
/// typed error (a 2xx that the codec accepts as a whole response is
/// returned as a one-delta stream).
#[cfg(feature = "http")]
pub(crate) fn error_or_whole<C: Codec>(
    codec: &C,
    req: &ChatRequest,
    resp: HttpResponse,
    started: Instant,
) -> Result<ChatStream, Error> {
    let mut whole = codec.decode(req, resp)?;
    whole.latency = started.elapsed();
    Ok(ChatStream::from_deltas(
        codec.provider(),
        vec![ChatDelta::whole(&whole)],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accumulator_joins_tool_fragments_by_index() {
        let mut acc = StreamAccumulator::new();
        for (i, id, name, args) in [
            (1, Some("b"), Some("g"), "{"),
            (0, Some("a"), Some("f"), "{}"),
            (1, None, None, "}"),
        ] {
            acc.push(&ChatDelta {
                tool_calls: vec![ToolCallDelta {
                    index: i,
                    id: id.map(str::to_owned),
                    name: name.map(str::to_owned),
                    arguments: args.into(),
                    ..Default::default()
                }],
                ..Default::default()
            });
        }
        let r = acc.response();
        assert_eq!(r.tool_calls.len(), 2);
        assert_eq!(
            (
                r.tool_calls[0].id.as_str(),
                r.tool_calls[0].arguments.as_str()
            ),
            ("a", "{}")
        );
        assert_eq!(
            (
                r.tool_calls[1].name.as_str(),
                r.tool_calls[1].arguments.as_str()
            ),
            ("g", "{}")
        );
        assert!(acc.usage().is_none());
        assert!(!acc.is_done());
        assert_eq!(acc.generated_text(), "f{}g{}");
    }

    #[test]
    fn later_usage_replaces_earlier() {
        let mut acc = StreamAccumulator::new();
        acc.push(&ChatDelta {
            usage: Some(Usage::new(100, 1)),
            ..Default::default()
        });
        acc.push(&ChatDelta {
            usage: Some(Usage::new(100, 40)),
            done: true,
            ..Default::default()
        });
        assert_eq!(acc.usage(), Some(Usage::new(100, 40)));
        assert!(acc.is_done());
    }
}
