//! The Gemini Batch API against a wiremock server: inline and file input,
//! polling, inline and file results, cancel, list.

use std::time::Duration;

use costlayer_core::{BatchItem, BatchProvider, BatchState, ChatRequest, Error, Message, Mode};
use costlayer_gemini::Gemini;
use serde_json::{json, Value};
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "AIzaSy-SECRET-0123456789abcdefghijk";

fn client(server: &MockServer, inline_limit: usize) -> Gemini {
    Gemini::builder()
        .api_key(KEY)
        .base_url(server.uri())
        .timeout(Duration::from_secs(5))
        .batch_inline_limit(inline_limit)
        .build()
        .expect("client builds")
}

fn items() -> Vec<BatchItem> {
    vec![
        BatchItem {
            custom_id: "req-1".into(),
            request: ChatRequest::new("gemini-2.5-flash")
                .message(Message::user("Hi"))
                .max_tokens(8),
        },
        BatchItem {
            custom_id: "req-2".into(),
            request: ChatRequest::new("gemini-2.5-flash").message(Message::user("Bye")),
        },
    ]
}

fn operation(state: &str, done: bool, succeeded: u64, failed: u64, output: Option<Value>) -> Value {
    let mut op = json!({
        "name": "batches/abc123",
        "metadata": {
            "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
            "model": "models/gemini-2.5-flash",
            "displayName": "costlayer-req-1",
            "state": state,
            "batchStats": {
                "requestCount": "2",
                "successfulRequestCount": succeeded.to_string(),
                "failedRequestCount": failed.to_string(),
                "pendingRequestCount": (2 - succeeded - failed).to_string()
            }
        },
        "done": done
    });
    if let Some(o) = output {
        op["response"] = o;
    }
    op
}

fn ok_response(text: &str, prompt: u64, out: u64) -> Value {
    json!({
        "candidates": [{"content": {"parts": [{"text": text}], "role": "model"}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": prompt, "candidatesTokenCount": out, "totalTokenCount": prompt + out},
        "modelVersion": "gemini-2.5-flash",
        "responseId": "resp-1"
    })
}

#[tokio::test]
async fn inline_lifecycle_with_mixed_results() {
    let server = MockServer::start().await;
    let create = json!({"batch": {"display_name": "costlayer-req-1", "input_config": {"requests": {"requests": [
        {"request": {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}], "generationConfig": {"maxOutputTokens": 8}}, "metadata": {"key": "req-1"}},
        {"request": {"contents": [{"role": "user", "parts": [{"text": "Bye"}]}]}, "metadata": {"key": "req-2"}}
    ]}}}});
    Mock::given(method("POST"))
        .and(path("/v1beta/models/gemini-2.5-flash:batchGenerateContent"))
        .and(header("x-goog-api-key", KEY))
        .and(body_json(&create))
        .respond_with(ResponseTemplate::new(200).set_body_json(operation(
            "BATCH_STATE_PENDING",
            false,
            0,
            0,
            None,
        )))
        .expect(1)
        .mount(&server)
        .await;
    // Running once, then succeeded.
    Mock::given(method("GET"))
        .and(path("/v1beta/batches/abc123"))
        .respond_with(ResponseTemplate::new(200).set_body_json(operation(
            "BATCH_STATE_RUNNING",
            false,
            1,
            0,
            None,
        )))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let output = json!({
        "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput",
        "inlinedResponses": {"inlinedResponses": [
            {"response": ok_response("Hello!", 3, 2), "metadata": {"key": "req-1"}},
            {"error": {"code": 400, "message": "Request contains an invalid argument.", "status": "INVALID_ARGUMENT"}}
        ]}
    });
    Mock::given(method("GET"))
        .and(path("/v1beta/batches/abc123"))
        .respond_with(ResponseTemplate::new(200).set_body_json(operation(
            "BATCH_STATE_SUCCEEDED",
            true,
            1,
            1,
            Some(output),
        )))
        .mount(&server)
        .await;

    let gemini = client(&server, costlayer_gemini::INLINE_BATCH_LIMIT);
    let id = gemini.submit(items()).await.expect("submit");
    assert_eq!(id, "batches/abc123");
    let s = gemini.status(&id).await.expect("status");
    assert_eq!(s.state, BatchState::InProgress);
    assert_eq!((s.succeeded, s.failed, s.total, s.pending()), (1, 0, 2, 1));
    let s = gemini.status(&id).await.expect("status");
    assert_eq!(s.state, BatchState::Completed);
    assert_eq!((s.succeeded, s.failed), (1, 1));

    let results = gemini.results(&id).await.expect("results");
    assert_eq!(results.len(), 2);
    assert_eq!(results[0].custom_id, "req-1");
    let ok = results[0].result.as_ref().expect("succeeded");
    assert_eq!(ok.text, "Hello!");
    assert_eq!(ok.mode, Mode::Batch);
    assert_eq!((ok.usage.input_tokens, ok.usage.output_tokens), (3, 2));
    // An error item without a key is named by its position.
    assert_eq!(results[1].custom_id, "#1");
    assert!(
        matches!(
            results[1].result,
            Err(Error::InvalidRequest { status: 400, .. })
        ),
        "{:?}",
        results[1].result
    );
}

#[tokio::test]
async fn file_input_and_file_results() {
    let server = MockServer::start().await;
    let upload_url = format!("{}/upload/v1beta/files?upload_id=xyz", server.uri());
    Mock::given(method("POST"))
        .and(path("/upload/v1beta/files"))
        .and(header("x-goog-api-key", KEY))
        .and(header("x-goog-upload-protocol", "resumable"))
        .and(header("x-goog-upload-command", "start"))
        .and(header(
            "x-goog-upload-header-content-type",
            "application/jsonl",
        ))
        .and(body_json(
            json!({"file": {"display_name": "costlayer-req-1"}}),
        ))
        .respond_with(
            ResponseTemplate::new(200).insert_header("x-goog-upload-url", upload_url.as_str()),
        )
        .expect(1)
        .mount(&server)
        .await;
    let jsonl = concat!(
        r#"{"key":"req-1","request":{"contents":[{"parts":[{"text":"Hi"}],"role":"user"}],"generationConfig":{"maxOutputTokens":8}}}"#,
        "\n",
        r#"{"key":"req-2","request":{"contents":[{"parts":[{"text":"Bye"}],"role":"user"}]}}"#,
        "\n"
    );
    Mock::given(method("POST"))
        .and(path("/upload/v1beta/files"))
        .and(query_param("upload_id", "xyz"))
        .and(|r: &wiremock::Request| {
            r.headers
                .get("x-goog-upload-command")
                .is_some_and(|v| v.as_bytes() == b"upload, finalize")
        })
        .and(header("x-goog-upload-offset", "0"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"file": {"name": "files/in-1", "mimeType": "application/jsonl"}}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1beta/models/gemini-2.5-flash:batchGenerateContent"))
        .and(body_json(json!({"batch": {"display_name": "costlayer-req-1", "input_config": {"file_name": "files/in-1"}}})))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(operation("BATCH_STATE_PENDING", false, 0, 0, None)),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1beta/batches/abc123"))
        .respond_with(ResponseTemplate::new(200).set_body_json(operation(
            "JOB_STATE_EXPIRED",
            true,
            1,
            0,
            Some(json!({"responsesFile": "files/out-9"})),
        )))
        .mount(&server)
        .await;
    let out = format!(
        "{}\n{}\n",
        json!({"key": "req-1", "response": ok_response("Hi there", 3, 4)}),
        "{torn"
    );
    Mock::given(method("GET"))
        .and(path("/download/v1beta/files/out-9:download"))
        .and(query_param("alt", "media"))
        .and(header("x-goog-api-key", KEY))
        .respond_with(ResponseTemplate::new(200).set_body_string(out))
        .expect(1)
        .mount(&server)
        .await;

    // An inline limit of 10 bytes forces the Files API.
    let gemini = client(&server, 10);
    let id = gemini.submit(items()).await.expect("submit");
    assert_eq!(id, "batches/abc123");
    // The uploaded JSONL, byte for byte.
    let received = server.received_requests().await.expect("recorded");
    let uploaded = received
        .iter()
        .find(|r| r.url.query() == Some("upload_id=xyz"))
        .expect("upload sent");
    // The key order of the codec's JSON is serde_json's (sorted maps).
    let lines: Vec<Value> = String::from_utf8_lossy(&uploaded.body)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let want: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(lines, want);
    assert!(String::from_utf8_lossy(&uploaded.body).ends_with('\n'));

    let s = gemini.status("abc123").await.expect("status");
    assert_eq!(s.state, BatchState::Expired);
    let results = gemini.results(&id).await.expect("results");
    assert_eq!(results.len(), 2);
    assert_eq!(results[0].custom_id, "req-1");
    assert_eq!(results[0].result.as_ref().expect("ok").text, "Hi there");
    assert!(matches!(results[1].result, Err(Error::Decode { .. })));
}

#[tokio::test]
async fn cancel_list_and_refusals() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1beta/batches/abc123:cancel"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1beta/batches/abc123"))
        .respond_with(ResponseTemplate::new(200).set_body_json(operation(
            "BATCH_STATE_RUNNING",
            false,
            0,
            0,
            None,
        )))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1beta/batches"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"operations": [
                operation("BATCH_STATE_RUNNING", false, 0, 0, None)
            ]})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1beta/models/gemini-2.5-flash:batchGenerateContent"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {
            "code": 400, "message": "Batch input is invalid.", "status": "INVALID_ARGUMENT"}})))
        .mount(&server)
        .await;
    let gemini = client(&server, costlayer_gemini::INLINE_BATCH_LIMIT);
    let s = gemini.cancel("batches/abc123").await.expect("cancel");
    assert_eq!(s.state, BatchState::Cancelling);
    let list = gemini.list().await.expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].id, "batches/abc123");

    // The upload (here the inline create) rejected: a typed error, no key in it.
    let err = gemini.submit(items()).await.expect_err("rejected");
    assert!(
        matches!(err, Error::InvalidRequest { status: 400, .. }),
        "{err}"
    );
    assert!(!err.to_string().contains(KEY));
    // Two models in one batch are refused before anything is sent.
    let mut mixed = items();
    mixed[1].request.model = "gemini-2.5-pro".into();
    let err = gemini.submit(mixed).await.expect_err("mixed");
    assert!(matches!(err, Error::Config { .. }), "{err}");
    assert!(err.to_string().contains("split the job by model"), "{err}");
    assert!(matches!(
        gemini.status("../x").await,
        Err(Error::Config { .. })
    ));
    assert!(matches!(
        gemini.submit(Vec::new()).await,
        Err(Error::Config { .. })
    ));
}

/// A resumable upload session as Google's: it keeps the bytes received at
/// the offsets sent, answers `query` with what it holds, and fails the
/// third chunk once after storing only its first 10 bytes.
#[derive(Default)]
struct Session {
    state: std::sync::Mutex<SessionState>,
}

#[derive(Default)]
struct SessionState {
    received: Vec<u8>,
    uploads: usize,
    failed: bool,
    /// Fail the third chunk with a 400 instead (not retryable).
    fatal: bool,
    /// (command, offset) of every request, in order.
    log: Vec<(String, Option<usize>)>,
}

impl wiremock::Respond for Session {
    fn respond(&self, req: &wiremock::Request) -> ResponseTemplate {
        let mut s = self.state.lock().expect("lock");
        let header = |name: &str| {
            req.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let command = header("x-goog-upload-command").unwrap_or_default();
        let offset = header("x-goog-upload-offset").and_then(|v| v.parse::<usize>().ok());
        s.log.push((command.clone(), offset));
        if command == "query" {
            return ResponseTemplate::new(200)
                .insert_header("x-goog-upload-status", "active")
                .insert_header("x-goog-upload-size-received", s.received.len().to_string());
        }
        if offset != Some(s.received.len()) {
            return ResponseTemplate::new(400).set_body_json(json!({"error": {"code": 400,
                "message": "offset mismatch", "status": "INVALID_ARGUMENT"}}));
        }
        s.uploads += 1;
        if s.uploads == 3 && s.fatal {
            return ResponseTemplate::new(400).set_body_json(json!({"error": {"code": 400,
                "message": "bad chunk", "status": "INVALID_ARGUMENT"}}));
        }
        if s.uploads == 3 && !s.failed {
            s.failed = true;
            let part = req.body.len().min(10);
            s.received.extend_from_slice(&req.body[..part]);
            return ResponseTemplate::new(503).set_body_json(json!({"error": {"code": 503,
                "message": "backend reset", "status": "UNAVAILABLE"}}));
        }
        s.received.extend_from_slice(&req.body);
        if command == "upload, finalize" {
            ResponseTemplate::new(200)
                .insert_header("x-goog-upload-status", "final")
                .set_body_json(json!({"file": {"name": "files/in-7", "sizeBytes": s.received.len().to_string()}}))
        } else {
            ResponseTemplate::new(200).insert_header("x-goog-upload-status", "active")
        }
    }
}

#[tokio::test]
async fn a_failed_chunk_is_resumed_from_the_offset_the_server_reports() {
    let server = MockServer::start().await;
    let upload_url = format!("{}/upload/v1beta/files?upload_id=chunks", server.uri());
    let jsonl = concat!(
        r#"{"key":"req-1","request":{"contents":[{"parts":[{"text":"Hi"}],"role":"user"}],"generationConfig":{"maxOutputTokens":8}}}"#,
        "\n",
        r#"{"key":"req-2","request":{"contents":[{"parts":[{"text":"Bye"}],"role":"user"}]}}"#,
        "\n"
    );
    Mock::given(method("POST"))
        .and(path("/upload/v1beta/files"))
        .and(header("x-goog-upload-protocol", "resumable"))
        .and(header("x-goog-upload-command", "start"))
        .and(header(
            "x-goog-upload-header-content-length",
            jsonl.len().to_string().as_str(),
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("x-goog-upload-url", upload_url.as_str())
                .insert_header("x-goog-upload-chunk-granularity", "16"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let session = std::sync::Arc::new(Session::default());
    struct Shared(std::sync::Arc<Session>);
    impl wiremock::Respond for Shared {
        fn respond(&self, req: &wiremock::Request) -> ResponseTemplate {
            self.0.respond(req)
        }
    }
    Mock::given(method("POST"))
        .and(path("/upload/v1beta/files"))
        .and(query_param("upload_id", "chunks"))
        .and(header("x-goog-api-key", KEY))
        .respond_with(Shared(session.clone()))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1beta/models/gemini-2.5-flash:batchGenerateContent"))
        .and(body_json(json!({"batch": {"display_name": "costlayer-req-1", "input_config": {"file_name": "files/in-7"}}})))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(operation("BATCH_STATE_PENDING", false, 0, 0, None)),
        )
        .expect(1)
        .mount(&server)
        .await;

    // Chunks of 40 bytes, rounded down to the server's 16-byte granularity: 32.
    let gemini = Gemini::builder()
        .api_key(KEY)
        .base_url(server.uri())
        .timeout(Duration::from_secs(5))
        .batch_inline_limit(10)
        .batch_upload_chunk(40)
        .build()
        .expect("client builds");
    let id = gemini.submit(items()).await.expect("submit");
    assert_eq!(id, "batches/abc123");

    let s = session.state.lock().expect("lock");
    // The assembled file is the JSONL, byte for byte.
    assert_eq!(String::from_utf8_lossy(&s.received), jsonl);
    let total = jsonl.len();
    // 0, 32, 64 (fails after 10 bytes), query, then 74 onwards in 32s.
    let mut want = vec![
        ("upload".to_owned(), Some(0)),
        ("upload".to_owned(), Some(32)),
        ("upload".to_owned(), Some(64)),
        ("query".to_owned(), None),
    ];
    let mut off = 74;
    while off + 32 < total {
        want.push(("upload".to_owned(), Some(off)));
        off += 32;
    }
    want.push(("upload, finalize".to_owned(), Some(off)));
    assert_eq!(s.log, want);
}

/// A chunk refused for good (a 400) ends the upload at once: no offset
/// query, no retry, no batch created, and the error is typed.
#[tokio::test]
async fn a_refused_chunk_is_not_retried() {
    let server = MockServer::start().await;
    let upload_url = format!("{}/upload/v1beta/files?upload_id=bad", server.uri());
    Mock::given(method("POST"))
        .and(path("/upload/v1beta/files"))
        .and(header("x-goog-upload-command", "start"))
        .respond_with(
            ResponseTemplate::new(200).insert_header("x-goog-upload-url", upload_url.as_str()),
        )
        .expect(1)
        .mount(&server)
        .await;
    let session = std::sync::Arc::new(Session::default());
    session.state.lock().expect("lock").fatal = true;
    struct Shared(std::sync::Arc<Session>);
    impl wiremock::Respond for Shared {
        fn respond(&self, req: &wiremock::Request) -> ResponseTemplate {
            self.0.respond(req)
        }
    }
    Mock::given(method("POST"))
        .and(path("/upload/v1beta/files"))
        .and(query_param("upload_id", "bad"))
        .respond_with(Shared(session.clone()))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1beta/models/gemini-2.5-flash:batchGenerateContent"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&server)
        .await;
    let gemini = Gemini::builder()
        .api_key(KEY)
        .base_url(server.uri())
        .timeout(Duration::from_secs(5))
        .batch_inline_limit(10)
        .batch_upload_chunk(32)
        .build()
        .expect("client builds");
    let err = gemini.submit(items()).await.expect_err("refused");
    assert!(matches!(err, Error::InvalidRequest { .. }), "{err}");
    assert!(!err.to_string().contains(KEY));
    let s = session.state.lock().expect("lock");
    assert_eq!(
        s.log,
        vec![
            ("upload".to_owned(), Some(0)),
            ("upload".to_owned(), Some(32)),
            ("upload".to_owned(), Some(64)),
        ]
    );
}
