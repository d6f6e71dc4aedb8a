//! Streamed calls against loopback servers: wiremock for whole bodies, and
//! a raw TCP server where the bytes must arrive split (frames cut across
//! reads, CRLF split, keep-alive comments) or the connection must be cut.
//!
//! Runs on the real clock (real sockets and tokio's paused clock do not mix;
//! see tests/providers_stack.rs).

#![allow(clippy::unwrap_used)]

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use costlayer::anthropic::Anthropic;
use costlayer::budget::Budget;
use costlayer::core::tokens::{TiktokenCounter, TokenCounter};
use costlayer::gemini::Gemini;
use costlayer::layer::builder::StackBuilder;
use costlayer::layer::retry::RetryLayer;
use costlayer::ledger::{CostRecord, MemoryStorage};
use costlayer::openai::{OpenAi, OpenAiResponses};
use costlayer::tracker::CostTracker;
use costlayer::{
    ChatRequest, ChatResponse, ChatStream, CostStatus, Error, Message, Money, StreamRequest, Usage,
};
use futures_util::StreamExt;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tower::{Service, ServiceBuilder, ServiceExt};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockBuilder, MockServer, ResponseTemplate};

const KEY: &str = "sk-test-streaming-77a1";

fn sse(body: &str) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("content-type", "text/event-stream")
        .set_body_string(body)
}

const OPENAI_BODY: &str = concat!(
    "data: {\"id\":\"chatcmpl-9\",\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
    ": keep-alive\n\n",
    "data: {\"id\":\"chatcmpl-9\",\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"}}]}\n\n",
    "data: {\"id\":\"chatcmpl-9\",\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" there\"},\"finish_reason\":\"stop\"}]}\n\n",
    "data: {\"id\":\"chatcmpl-9\",\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[],\"usage\":{\"prompt_tokens\":2000,\"completion_tokens\":9,\"prompt_tokens_details\":{\"cached_tokens\":1536}}}\n\n",
    "data: [DONE]\n\n",
);

const ANTHROPIC_BODY: &str = concat!(
    "event: message_start\r\n",
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_9\",\"model\":\"claude-haiku-4-5-20251001\",\"usage\":{\"input_tokens\":40,\"cache_read_input_tokens\":3000,\"cache_creation_input_tokens\":0,\"output_tokens\":1}}}\r\n\r\n",
    "event: ping\r\n",
    "data: {\"type\":\"ping\"}\r\n\r\n",
    "event: content_block_start\r\n",
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\r\n\r\n",
    "event: content_block_delta\r\n",
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello there\"}}\r\n\r\n",
    "event: message_delta\r\n",
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":9}}\r\n\r\n",
    "event: message_stop\r\n",
    "data: {\"type\":\"message_stop\"}",
);

const GEMINI_BODY: &str = concat!(
    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hello\"}],\"role\":\"model\"}}],\"usageMetadata\":{\"promptTokenCount\":300,\"candidatesTokenCount\":2},\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"g9\"}\n\n",
    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\" there\"}],\"role\":\"model\"},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":300,\"candidatesTokenCount\":9},\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"g9\"}\n",
);

/// The clients against a loopback `base` (the server's root URL).
fn openai(base: &str) -> OpenAi {
    OpenAi::builder()
        .api_key(KEY)
        .base_url(format!("{base}/v1"))
        .build()
        .unwrap()
}

fn openai_responses(base: &str) -> OpenAiResponses {
    OpenAi::builder()
        .api_key(KEY)
        .base_url(format!("{base}/v1"))
        .build_responses()
        .unwrap()
}

fn anthropic(base: &str) -> Anthropic {
    Anthropic::builder()
        .api_key(KEY)
        .base_url(base)
        .build()
        .unwrap()
}

fn gemini(base: &str) -> Gemini {
    Gemini::builder()
        .api_key(KEY)
        .base_url(base)
        .build()
        .unwrap()
}

/// A wiremock server answering requests matching `route` with `answers`,
/// one request each, in order (each expected exactly once, checked when
/// the server drops), and the `client` built against it.
async fn mock_server<C>(
    route: impl Fn() -> MockBuilder,
    answers: Vec<ResponseTemplate>,
    client: fn(&str) -> C,
) -> (MockServer, C) {
    let server = MockServer::start().await;
    for answer in answers {
        route()
            .respond_with(answer)
            .up_to_n_times(1)
            .expect(1)
            .mount(&server)
            .await;
    }
    let client = client(&server.uri());
    (server, client)
}

/// The OpenAI Chat Completions client, its server answering
/// `/v1/chat/completions` with `answers` (see [`mock_server`]).
async fn openai_mock(answers: Vec<ResponseTemplate>) -> (MockServer, OpenAi) {
    let route = || Mock::given(method("POST")).and(path("/v1/chat/completions"));
    mock_server(route, answers, openai).await
}

/// The OpenAI Responses client, its server answering `/v1/responses`.
async fn responses_mock(answers: Vec<ResponseTemplate>) -> (MockServer, OpenAiResponses) {
    let route = || Mock::given(method("POST")).and(path("/v1/responses"));
    mock_server(route, answers, openai_responses).await
}

/// The Anthropic client, its server answering `/v1/messages`.
async fn anthropic_mock(answers: Vec<ResponseTemplate>) -> (MockServer, Anthropic) {
    let route = || Mock::given(method("POST")).and(path("/v1/messages"));
    mock_server(route, answers, anthropic).await
}

/// The Gemini client, its server answering gemini-2.5-flash's
/// `streamGenerateContent?alt=sse`.
async fn gemini_mock(answers: Vec<ResponseTemplate>) -> (MockServer, Gemini) {
    let route = || {
        Mock::given(method("POST"))
            .and(path(
                "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
            ))
            .and(query_param("alt", "sse"))
    };
    mock_server(route, answers, gemini).await
}

/// A retry layer with short delays, for the retry tests.
fn quick_retry() -> RetryLayer {
    RetryLayer::new()
        .max_attempts(NonZeroU32::new(3).unwrap())
        .base_delay(Duration::from_millis(5))
}

fn req(model: &str) -> StreamRequest {
    StreamRequest::new(
        ChatRequest::new(model)
            .message(Message::user("Say hello"))
            .max_tokens(64),
    )
}

/// Streams `req` through `svc` and folds the stream into one response.
async fn stream_whole<S>(svc: S, req: StreamRequest) -> ChatResponse
where
    S: Service<StreamRequest, Response = ChatStream, Error = Error>,
{
    svc.oneshot(req)
        .await
        .unwrap()
        .collect_response()
        .await
        .unwrap()
}

async fn collect(s: ChatStream) -> (Vec<costlayer::ChatDelta>, Option<Error>) {
    let mut deltas = Vec::new();
    let mut s = s;
    while let Some(item) = s.next().await {
        match item {
            Ok(d) => deltas.push(d),
            Err(e) => return (deltas, Some(e)),
        }
    }
    (deltas, None)
}

#[tokio::test]
async fn each_provider_streams_its_documented_shape() {
    let (openai_server, openai) = openai_mock(vec![sse(OPENAI_BODY)]).await;
    let resp = stream_whole(openai, req("gpt-4o-mini")).await;
    assert_eq!(resp.text, "Hello there");
    assert_eq!(resp.provider, "openai");
    assert_eq!(
        resp.usage,
        Usage {
            input_tokens: 464,
            cache_read_tokens: 1536,
            output_tokens: 9,
            ..Usage::default()
        }
    );

    let (anthropic_server, anthropic) = anthropic_mock(vec![sse(ANTHROPIC_BODY)]).await;
    let resp = stream_whole(anthropic, req("claude-haiku-4-5")).await;
    assert_eq!(resp.text, "Hello there");
    assert_eq!(resp.model, "claude-haiku-4-5-20251001");
    assert_eq!(
        resp.usage,
        Usage {
            input_tokens: 40,
            cache_read_tokens: 3000,
            output_tokens: 9,
            ..Usage::default()
        }
    );

    let (_gemini_server, gemini) = gemini_mock(vec![sse(GEMINI_BODY)]).await;
    let resp = stream_whole(gemini, req("gemini-2.5-flash")).await;
    assert_eq!(resp.text, "Hello there");
    assert_eq!(resp.usage, Usage::new(300, 9));

    // What was sent: the stream flags.
    let openai_body = sent_body(&openai_server, 0).await;
    assert_eq!(openai_body["stream"], true);
    assert_eq!(openai_body["stream_options"]["include_usage"], true);
    let anthropic_body = sent_body(&anthropic_server, 0).await;
    assert_eq!(anthropic_body["stream"], true);
}

/// The JSON body of the `i`th request `server` received.
async fn sent_body(server: &MockServer, i: usize) -> Value {
    let received = server.received_requests().await.unwrap();
    serde_json::from_slice(&received[i].body).unwrap()
}

/// A raw HTTP/1.1 server on loopback: answers each connection with
/// [`SSE_HEAD`] and then `pieces` of body, one write each with a pause between (so each
/// is its own read on the client), then closes (no Content-Length: the close
/// ends the body).
async fn raw_server(pieces: Vec<Vec<u8>>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let pieces = Arc::new(pieces);
    tokio::spawn(async move {
        // Bounded: a test makes at most a handful of connections.
        for _ in 0..8 {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            counter.fetch_add(1, Ordering::SeqCst);
            let pieces = pieces.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let mut got = Vec::new();
                // Read the request head and its body (Content-Length).
                loop {
                    let n = sock.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                    if let Some(end) = find(&got, b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if got.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                let _ = sock.write_all(SSE_HEAD.as_bytes()).await;
                for p in pieces.iter() {
                    let _ = sock.write_all(p).await;
                    let _ = sock.flush().await;
                    tokio::time::sleep(Duration::from_millis(15)).await;
                }
                let _ = sock.shutdown().await;
            });
        }
    });
    (format!("http://{addr}"), hits)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

const SSE_HEAD: &str =
    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";

/// Splits `body` into pieces of `n` bytes: frames, CRLFs and UTF-8 cut
/// anywhere.
fn pieces(body: &str, n: usize) -> Vec<Vec<u8>> {
    body.as_bytes().chunks(n).map(<[u8]>::to_vec).collect()
}

#[tokio::test]
async fn frames_split_across_reads_give_the_same_answer() {
    let (url, hits) = raw_server(pieces(ANTHROPIC_BODY, 37)).await;
    let anthropic = anthropic(&url);
    let stream = anthropic.oneshot(req("claude-haiku-4-5")).await.unwrap();
    assert!(stream.time_to_first_delta().is_some());
    let (deltas, err) = collect(stream).await;
    assert!(err.is_none(), "{err:?}");
    assert!(deltas.last().unwrap().done);
    let text: String = deltas.iter().map(|d| d.text.as_str()).collect();
    assert_eq!(text, "Hello there");
    assert_eq!(
        deltas.last().unwrap().usage.unwrap().cache_read_tokens,
        3000
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_cut_connection_ends_the_stream_with_a_typed_error() {
    let cut = &OPENAI_BODY[..OPENAI_BODY
        .find("data: {\"id\":\"chatcmpl-9\",\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[]")
        .unwrap()];
    let (url, _) = raw_server(pieces(cut, 50)).await;
    let openai = openai(&url);
    let (deltas, err) = collect(openai.oneshot(req("gpt-4o-mini")).await.unwrap()).await;
    let text: String = deltas.iter().map(|d| d.text.as_str()).collect();
    assert_eq!(text, "Hello there");
    assert!(deltas.iter().all(|d| !d.done));
    assert!(matches!(err, Some(Error::Connection { .. })), "{err:?}");
}

#[tokio::test]
async fn retried_only_before_the_first_delta() {
    // Every answer is an overload error event right after HTTP 200: the
    // first delta never comes, so each attempt is retried.
    let overloaded = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
    let (url, hits) = raw_server(vec![overloaded.as_bytes().to_vec()]).await;
    let svc = ServiceBuilder::new()
        .layer(quick_retry())
        .service(anthropic(&url));
    let err = svc.oneshot(req("claude-haiku-4-5")).await.unwrap_err();
    assert!(matches!(err, Error::Overloaded { .. }), "{err:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 3);

    // An error after the first delta ends the stream and is not retried.
    let body = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":10,\"output_tokens\":1}}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n",
        "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
    );
    let (url, hits) = raw_server(vec![body.as_bytes().to_vec()]).await;
    let svc = ServiceBuilder::new()
        .layer(quick_retry())
        .service(anthropic(&url));
    let stream = svc.oneshot(req("claude-haiku-4-5")).await.unwrap();
    let (deltas, err) = collect(stream).await;
    assert_eq!(
        deltas.iter().map(|d| d.text.as_str()).collect::<String>(),
        "Hi"
    );
    assert!(matches!(err, Some(Error::Overloaded { .. })), "{err:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_error_status_is_the_codecs_typed_error() {
    let (_server, openai) = openai_mock(vec![ResponseTemplate::new(429)
        .insert_header("retry-after", "3")
        .set_body_string(r#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#)])
    .await;
    let err = openai.oneshot(req("gpt-4o-mini")).await.unwrap_err();
    assert!(matches!(err, Error::RateLimited { .. }), "{err:?}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
    assert!(!format!("{err} {err:?}").contains(KEY));
}

// ---- The OpenAI Responses API, streamed ----

/// A recorded-shape Responses stream: a reasoning item with its summary,
/// then the text in four deltas, then `response.completed` carrying
/// `providers/openai/tests/fixtures/responses_reasoning.json` (10 000 input
/// tokens of which 4 000 cached, 2 000 output of which 1 500 reasoning).
const RESPONSES_BODY: &str = include_str!("fixtures/streams/openai_responses.sse");

fn responses_fixture() -> Value {
    serde_json::from_str(include_str!(
        "../providers/openai/tests/fixtures/responses_reasoning.json"
    ))
    .unwrap()
}

/// A ledger in memory, its tracker (user `alice`, under `budget` when
/// given) and the stack recording into it (with [`quick_retry`]).
struct Ledger {
    storage: MemoryStorage,
    tracker: CostTracker,
    stack: StackBuilder,
}

fn ledger(budget: Option<Budget>) -> Ledger {
    let storage = MemoryStorage::new();
    let mut b = CostTracker::builder()
        .storage(Arc::new(storage.clone()))
        .user("alice");
    if let Some(budget) = budget {
        b = b.budget(budget);
    }
    let tracker = b.build().unwrap();
    let stack = StackBuilder::new(tracker.clone()).retry(quick_retry());
    Ledger {
        storage,
        tracker,
        stack,
    }
}

/// A blocking $1 monthly budget, for the cases that check its hold.
fn one_dollar() -> Option<Budget> {
    Some(Budget::monthly(Money::from_usd(1).unwrap()).block())
}

/// Waits (bounded) for `n` records: a dropped stream settles in the background.
async fn records(storage: &MemoryStorage, n: usize) -> Vec<CostRecord> {
    for _ in 0..200 {
        if storage.records().len() >= n {
            // Room for a second record to show up, were one coming.
            tokio::time::sleep(Duration::from_millis(20)).await;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    storage.records()
}

fn responses_req() -> StreamRequest {
    StreamRequest::new(
        ChatRequest::new("gpt-4.1")
            .message(Message::user("Total of the invoice?"))
            .max_tokens(4000),
    )
}

#[tokio::test]
async fn a_responses_stream_is_recorded_once_at_the_unstreamed_cost() {
    // The call unstreamed first, then streamed.
    let (server, client) = responses_mock(vec![
        ResponseTemplate::new(200).set_body_json(responses_fixture()),
        sse(RESPONSES_BODY),
    ])
    .await;

    let plain = ledger(None);
    let whole = plain
        .stack
        .build(client.clone())
        .oneshot(responses_req().0)
        .await
        .unwrap();

    let streamed = ledger(None);
    let storage = &streamed.storage;
    let mut stream = streamed
        .stack
        .build_streaming(client)
        .oneshot(responses_req())
        .await
        .unwrap();
    let mut deltas = Vec::new();
    while let Some(d) = stream.next().await {
        let d = d.unwrap();
        if !d.done {
            assert!(storage.records().is_empty(), "nothing before the end");
        }
        deltas.push(d);
    }
    let text: String = deltas.iter().map(|d| d.text.as_str()).collect();
    let thinking: String = deltas.iter().map(|d| d.thinking.as_str()).collect();
    assert_eq!(text, whole.text);
    assert_eq!(text, "Invoice total: 42 EUR.");
    assert_eq!(thinking, "Summarised the invoice.");
    assert!(deltas.len() > 5, "streamed in pieces: {}", deltas.len());
    let last = deltas.last().unwrap();
    assert!(last.done);
    assert_eq!(last.usage, Some(whole.usage));
    assert_eq!(
        (
            whole.usage.input_tokens,
            whole.usage.cache_read_tokens,
            whole.usage.output_tokens,
            whole.usage.reasoning_tokens
        ),
        (6000, 4000, 2000, 1500)
    );

    let expected = plain.storage.records();
    let recs = records(storage, 1).await;
    assert_eq!(recs.len(), 1, "recorded once");
    assert_eq!(recs[0].cost_status, CostStatus::Exact);
    // gpt-4.1: 6000 × $2.00 + 4000 × $0.50 + 2000 × $8.00 per million = $0.030.
    assert_eq!(recs[0].nano_usd, Some(Money::from_nanos(30_000_000)));
    assert_eq!(recs[0].nano_usd, expected[0].nano_usd);
    assert_eq!(recs[0].usage, expected[0].usage);
    assert_eq!(recs[0].request_id, expected[0].request_id);
    assert_eq!(last.recorded.as_ref().unwrap().record_id, recs[0].id);
    // The unstreamed call did not ask for a stream; the streamed one did,
    // without Chat Completions' `stream_options`.
    assert!(sent_body(&server, 0).await.get("stream").is_none());
    let sent = sent_body(&server, 1).await;
    assert_eq!(sent["stream"], true);
    assert!(sent.get("stream_options").is_none());
}

#[tokio::test]
async fn responses_frames_split_across_reads_give_the_same_answer() {
    // CRLF line ends, 29-byte reads: every frame and line end is cut.
    let crlf = RESPONSES_BODY.replace('\n', "\r\n");
    let (url, hits) = raw_server(pieces(&crlf, 29)).await;
    let resp = stream_whole(openai_responses(&url), responses_req()).await;
    assert_eq!(resp.text, "Invoice total: 42 EUR.");
    assert_eq!(resp.usage.cache_read_tokens, 4000);
    assert_eq!(resp.usage.reasoning_tokens, 1500);
    assert_eq!(
        resp.request_id.as_deref(),
        Some("resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b")
    );
    assert!(
        matches!(&resp.parts[0], costlayer::ContentPart::ProviderItem { item, .. } if item["encrypted_content"] == "gAAAAABn-encrypted-reasoning")
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

/// One write per SSE frame, so the client can stop between them.
fn frames(body: &str) -> Vec<Vec<u8>> {
    body.split_inclusive("\n\n")
        .map(|f| f.as_bytes().to_vec())
        .collect()
}

/// Checks the settled hold and the estimated record of a stream that
/// ended early (`how`: "dropped", "failed"), and returns the record.
async fn assert_estimated_once(ledger: &Ledger, how: &str, once: &str) -> CostRecord {
    let recs = records(&ledger.storage, 1).await;
    assert_eq!(recs.len(), 1, "{once}");
    let r = recs[0].clone();
    assert_eq!(r.cost_status, CostStatus::Estimated);
    assert!(r.cost_notes[0].contains(how), "{:?}", r.cost_notes);
    assert!(r.nano_usd.unwrap() > Money::ZERO, "never $0");
    let status = ledger.tracker.budget_status().await.unwrap();
    assert_eq!(status[0].reserved, Money::ZERO, "the hold was settled");
    r
}

#[tokio::test]
async fn a_dropped_responses_stream_is_recorded_once_as_estimated() {
    let (url, _) = raw_server(frames(RESPONSES_BODY)).await;
    let ledger = ledger(one_dollar());
    let svc = ledger.stack.clone().build_streaming(openai_responses(&url));
    let mut stream = svc.oneshot(responses_req()).await.unwrap();
    // Read up to the first words of the answer, then go away.
    let mut received = String::new();
    while let Some(d) = stream.next().await {
        let d = d.unwrap();
        assert!(!d.done);
        received.push_str(&d.thinking);
        received.push_str(&d.text);
        if !d.text.is_empty() {
            break;
        }
    }
    assert_eq!(received, "Summarised the invoice.Invoice");
    assert!(ledger.tracker.budget_status().await.unwrap()[0].reserved > Money::ZERO);
    drop(stream);

    let r = assert_estimated_once(&ledger, "dropped", "recorded once, never twice").await;
    // No usage came before the drop: the input is the request's exact
    // count, the output what was received, both with the tokenizer.
    let counter = TiktokenCounter::for_model("gpt-4.1");
    let mut sent = responses_req().0;
    sent.max_tokens = Some(4000);
    assert_eq!(r.usage.input_tokens, counter.count_request(&sent));
    assert_eq!(r.usage.output_tokens, counter.count_text(&received));
    assert!(r.usage.output_tokens > 0);
    let status = ledger.tracker.budget_status().await.unwrap();
    assert_eq!(status[0].spent, r.nano_usd.unwrap());
}

#[tokio::test]
async fn an_error_event_after_200_ends_a_responses_stream_typed_and_estimated() {
    let head = RESPONSES_BODY
        .split_inclusive("\n\n")
        .take_while(|f| !f.contains("\" 42\""))
        .collect::<String>();
    assert!(head.contains("Invoice"));
    let body = format!(
        "{head}event: error\ndata: {{\"type\":\"error\",\"code\":\"server_error\",\"message\":\"The server had an error while processing your request.\",\"param\":null,\"sequence_number\":99}}\n\n"
    );
    let (_server, client) = responses_mock(vec![sse(&body)]).await;
    let ledger = ledger(one_dollar());
    let svc = ledger.stack.clone().build_streaming(client);
    let (deltas, err) = collect(svc.oneshot(responses_req()).await.unwrap()).await;
    let text: String = deltas.iter().map(|d| d.text.as_str()).collect();
    assert_eq!(text, "Invoice total:");
    assert!(deltas.iter().all(|d| !d.done));
    let err = err.expect("the stream ends with the error");
    assert!(matches!(err, Error::Server { .. }), "{err:?}");
    assert!(err.to_string().contains("processing your request"), "{err}");

    assert_estimated_once(
        &ledger,
        "failed",
        "one record, not retried after the first delta",
    )
    .await;
}

#[tokio::test]
async fn a_responses_error_before_any_output_is_retried() {
    // `response.created`, then an error event: no delta reached the
    // caller, so the retry layer tries again and the second answer counts.
    let created = RESPONSES_BODY.split_inclusive("\n\n").next().unwrap();
    let failing = format!(
        "{created}event: error\ndata: {{\"type\":\"error\",\"code\":\"server_error\",\"message\":\"overloaded\",\"param\":null,\"sequence_number\":1}}\n\n"
    );
    let (_server, client) = responses_mock(vec![sse(&failing), sse(RESPONSES_BODY)]).await;
    let ledger = ledger(None);
    let resp = stream_whole(ledger.stack.build_streaming(client), responses_req()).await;
    assert_eq!(resp.text, "Invoice total: 42 EUR.");
    let recs = records(&ledger.storage, 1).await;
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].cost_status, CostStatus::Exact);
    assert_eq!(recs[0].nano_usd, Some(Money::from_nanos(30_000_000)));
}
