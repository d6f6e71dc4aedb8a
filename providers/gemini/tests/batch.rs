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
