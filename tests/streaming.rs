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
use costlayer::gemini::Gemini;
use costlayer::layer::retry::RetryLayer;
use costlayer::openai::OpenAi;
use costlayer::{ChatRequest, ChatStream, Error, Message, StreamRequest, Usage};
use futures_util::StreamExt;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tower::{ServiceBuilder, ServiceExt};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

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

fn req(model: &str) -> StreamRequest {
    StreamRequest::new(
        ChatRequest::new(model)
            .message(Message::user("Say hello"))
            .max_tokens(64),
    )
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
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(sse(OPENAI_BODY))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(sse(ANTHROPIC_BODY))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
        ))
        .and(query_param("alt", "sse"))
        .respond_with(sse(GEMINI_BODY))
        .expect(1)
        .mount(&server)
        .await;

    let openai = OpenAi::builder()
        .api_key(KEY)
        .base_url(format!("{}/v1", server.uri()))
        .build()
        .unwrap();
    let resp = openai
        .oneshot(req("gpt-4o-mini"))
        .await
        .unwrap()
        .collect_response()
        .await
        .unwrap();
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

    let anthropic = Anthropic::builder()
        .api_key(KEY)
        .base_url(server.uri())
        .build()
        .unwrap();
    let resp = anthropic
        .oneshot(req("claude-haiku-4-5"))
        .await
        .unwrap()
        .collect_response()
        .await
        .unwrap();
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

    let gemini = Gemini::builder()
        .api_key(KEY)
        .base_url(server.uri())
        .build()
        .unwrap();
    let resp = gemini
        .oneshot(req("gemini-2.5-flash"))
        .await
        .unwrap()
        .collect_response()
        .await
        .unwrap();
    assert_eq!(resp.text, "Hello there");
    assert_eq!(resp.usage, Usage::new(300, 9));

    // What was sent: the stream flags.
    let received = server.received_requests().await.unwrap();
    let openai_body: Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(openai_body["stream"], true);
    assert_eq!(openai_body["stream_options"]["include_usage"], true);
    let anthropic_body: Value = serde_json::from_slice(&received[1].body).unwrap();
    assert_eq!(anthropic_body["stream"], true);
}

/// A raw HTTP/1.1 server on loopback: answers each connection with `head`
/// and then `pieces` of body, one write each with a pause between (so each
/// is its own read on the client), then closes (no Content-Length: the close
/// ends the body).
async fn raw_server(head: &'static str, pieces: Vec<Vec<u8>>) -> (String, Arc<AtomicUsize>) {
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
                let _ = sock.write_all(head.as_bytes()).await;
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
    let (url, hits) = raw_server(SSE_HEAD, pieces(ANTHROPIC_BODY, 37)).await;
    let anthropic = Anthropic::builder()
        .api_key(KEY)
        .base_url(url)
        .build()
        .unwrap();
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
    let (url, _) = raw_server(SSE_HEAD, pieces(cut, 50)).await;
    let openai = OpenAi::builder()
        .api_key(KEY)
        .base_url(format!("{url}/v1"))
        .build()
        .unwrap();
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
    let (url, hits) = raw_server(SSE_HEAD, vec![overloaded.as_bytes().to_vec()]).await;
    let anthropic = Anthropic::builder()
        .api_key(KEY)
        .base_url(url)
        .build()
        .unwrap();
    let svc = ServiceBuilder::new()
        .layer(
            RetryLayer::new()
                .max_attempts(NonZeroU32::new(3).unwrap())
                .base_delay(Duration::from_millis(5)),
        )
        .service(anthropic);
    let err = svc.oneshot(req("claude-haiku-4-5")).await.unwrap_err();
    assert!(matches!(err, Error::Overloaded { .. }), "{err:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 3);

    // An error after the first delta ends the stream and is not retried.
    let body = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":10,\"output_tokens\":1}}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n",
        "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
    );
    let (url, hits) = raw_server(SSE_HEAD, vec![body.as_bytes().to_vec()]).await;
    let anthropic = Anthropic::builder()
        .api_key(KEY)
        .base_url(url)
        .build()
        .unwrap();
    let svc = ServiceBuilder::new()
        .layer(
            RetryLayer::new()
                .max_attempts(NonZeroU32::new(3).unwrap())
                .base_delay(Duration::from_millis(5)),
        )
        .service(anthropic);
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
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "3")
                .set_body_string(r#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#),
        )
        .expect(1)
        .mount(&server)
        .await;
    let openai = OpenAi::builder()
        .api_key(KEY)
        .base_url(format!("{}/v1", server.uri()))
        .build()
        .unwrap();
    let err = openai.oneshot(req("gpt-4o-mini")).await.unwrap_err();
    assert!(matches!(err, Error::RateLimited { .. }), "{err:?}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
    assert!(!format!("{err} {err:?}").contains(KEY));
}
