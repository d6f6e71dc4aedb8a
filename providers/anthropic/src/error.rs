//! Anthropic error bodies and retry hints mapped to [`Error`].

use std::time::{Duration, SystemTime};

use costlayer_core::transport::{
    apply_should_retry, body_snippet, error_for_status, retry_after_from_headers,
};
use costlayer_core::{Error, HttpResponse};
use http::HeaderMap;
use serde::Deserialize;

use crate::codec::header_str;

const PROVIDER: &str = "anthropic";

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
    #[serde(default)]
    request_id: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// Maps an Anthropic error response to a typed [`Error`]; `now` is the
/// clock the reset times are measured against.
///
/// The body's `error.type` decides first, then the status:
///
/// | `error.type` (status) | variant |
/// |---|---|
/// | `rate_limit_error` (429) | [`Error::RateLimited`] |
/// | `overloaded_error` (529) | [`Error::Overloaded`] |
/// | `billing_error` (402), or `invalid_request_error` about the credit balance | [`Error::QuotaExceeded`], not retried |
/// | `authentication_error` (401), `permission_error` (403) | [`Error::Authentication`] |
/// | `invalid_request_error` saying "prompt is too long" or that input and `max_tokens` exceed the context limit | [`Error::ContextLengthExceeded`] |
/// | `api_error` (500), `timeout_error` (504) | [`Error::Server`] |
/// | anything else, or no JSON (an HTML 502 page) | by status |
///
/// The wait: `retry-after-ms`, then `retry-after`, then, on a 429 only,
/// `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-reset`
/// (RFC 3339): the reset of the exhausted bucket (remaining `0`), or the
/// latest. `x-should-retry` overrides the status-based decision. The request
/// id (`request-id` header or body) is appended to the message.
///
/// ```
/// use std::time::SystemTime;
/// use costlayer_core::{Error, HttpResponse};
/// use costlayer_anthropic::error_from_response;
///
/// let resp = HttpResponse {
///     status: http::StatusCode::from_u16(529).unwrap(),
///     headers: http::HeaderMap::new(),
///     body: r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_011"}"#.into(),
/// };
/// let err = error_from_response(&resp, SystemTime::now());
/// assert!(matches!(err, Error::Overloaded { status: 529, .. }));
/// assert!(err.is_retryable() && err.to_string().contains("req_011"));
/// ```
pub fn error_from_response(resp: &HttpResponse, now: SystemTime) -> Error {
    let parsed = serde_json::from_slice::<ErrorEnvelope>(&resp.body).ok();
    let kind = parsed
        .as_ref()
        .and_then(|e| e.error.kind.clone())
        .unwrap_or_default();
    let mut message = match parsed.as_ref().and_then(|e| e.error.message.clone()) {
        Some(m) if !m.is_empty() => m,
        _ if resp.body.is_empty() => resp
            .status
            .canonical_reason()
            .unwrap_or("no message")
            .to_owned(),
        _ => format!("unreadable error body: {}", body_snippet(&resp.body, 200)),
    };
    let lower = message.to_ascii_lowercase();
    let context_exceeded = lower.contains("prompt is too long")
        || (lower.contains("exceed") && lower.contains("context limit"))
        || lower.contains("context window");
    // An empty account is often reported as a 400 `invalid_request_error`
    // ("Your credit balance is too low ..."), not as `billing_error`.
    let out_of_credit = lower.contains("credit balance");
    let request_id = header_str(&resp.headers, "request-id")
        .or_else(|| parsed.as_ref().and_then(|e| e.request_id.clone()));
    if let Some(id) = request_id {
        message.push_str(&format!(" (request id {id})"));
    }
    let provider = PROVIDER.to_owned();
    let status = resp.status.as_u16();
    let mut retry_after = retry_after_from_headers(&resp.headers, now);
    if retry_after.is_none() && (status == 429 || kind == "rate_limit_error") {
        retry_after = ratelimit_reset(&resp.headers, now);
    }
    let err = match kind.as_str() {
        "billing_error" => Error::QuotaExceeded { provider, message },
        "invalid_request_error" if out_of_credit => Error::QuotaExceeded { provider, message },
        "rate_limit_error" => Error::RateLimited {
            provider,
            message,
            retry_after,
        },
        "overloaded_error" => Error::Overloaded {
            provider,
            status,
            message,
            retry_after,
        },
        "authentication_error" | "permission_error" => Error::Authentication {
            provider,
            status,
            message,
        },
        "invalid_request_error" if context_exceeded => {
            Error::ContextLengthExceeded { provider, message }
        }
        "api_error" | "timeout_error" => Error::Server {
            provider,
            status,
            message,
            retry_after,
        },
        _ => error_for_status(PROVIDER, resp.status, message, retry_after),
    };
    apply_should_retry(err, &resp.headers)
}

const BUCKETS: [&str; 4] = ["requests", "tokens", "input-tokens", "output-tokens"];

/// The wait until the exhausted bucket resets, or until the latest reset
/// when no bucket says it is exhausted.
fn ratelimit_reset(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let reset = |bucket: &str| {
        let v = header_str(headers, &format!("anthropic-ratelimit-{bucket}-reset"))?;
        let at: SystemTime = chrono::DateTime::parse_from_rfc3339(&v).ok()?.into();
        Some(at.duration_since(now).unwrap_or(Duration::ZERO))
    };
    let exhausted = |bucket: &str| {
        header_str(headers, &format!("anthropic-ratelimit-{bucket}-remaining")).as_deref()
            == Some("0")
    };
    BUCKETS
        .iter()
        .filter(|b| exhausted(b))
        .filter_map(|b| reset(b))
        .max()
        .or_else(|| BUCKETS.iter().filter_map(|b| reset(b)).max())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    fn resp(status: u16, headers: &[(&str, &str)], body: &str) -> HttpResponse {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.parse().expect("value"),
            );
        }
        HttpResponse {
            status: StatusCode::from_u16(status).expect("status"),
            headers: h,
            body: body.to_owned().into(),
        }
    }

    fn at(rfc3339: &str) -> SystemTime {
        chrono::DateTime::parse_from_rfc3339(rfc3339)
            .expect("date")
            .into()
    }

    const RATE: &str = r#"{"type":"error","error":{"type":"rate_limit_error","message":"This request would exceed the rate limit for your organization of 50,000 input tokens per minute."}}"#;

    #[test]
    fn reset_headers_without_retry_after() {
        let now = at("2025-08-21T12:40:00Z");
        let r = resp(
            429,
            &[
                ("anthropic-ratelimit-requests-remaining", "40"),
                ("anthropic-ratelimit-requests-reset", "2025-08-21T12:40:05Z"),
                ("anthropic-ratelimit-input-tokens-remaining", "0"),
                (
                    "anthropic-ratelimit-input-tokens-reset",
                    "2025-08-21T12:40:59Z",
                ),
            ],
            RATE,
        );
        let e = error_from_response(&r, now);
        assert!(matches!(e, Error::RateLimited { .. }), "{e}");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(59)));

        // No bucket marked exhausted: the latest reset.
        let r = resp(
            429,
            &[
                ("anthropic-ratelimit-requests-reset", "2025-08-21T12:40:05Z"),
                (
                    "anthropic-ratelimit-tokens-reset",
                    "2025-08-21T12:40:30.500Z",
                ),
            ],
            RATE,
        );
        assert_eq!(
            error_from_response(&r, now).retry_after(),
            Some(Duration::from_millis(30_500))
        );

        // retry-after wins.
        let r = resp(
            429,
            &[
                ("retry-after", "7"),
                ("anthropic-ratelimit-tokens-reset", "2025-08-21T12:40:30Z"),
            ],
            RATE,
        );
        assert_eq!(
            error_from_response(&r, now).retry_after(),
            Some(Duration::from_secs(7))
        );
    }

    #[test]
    fn billing_and_context_length() {
        let r = resp(
            400,
            &[],
            r#"{"type":"error","error":{"type":"billing_error","message":"Your credit balance is too low to access the Anthropic API."}}"#,
        );
        let e = error_from_response(&r, SystemTime::now());
        assert!(matches!(e, Error::QuotaExceeded { .. }), "{e}");
        assert!(!e.is_retryable());

        for msg in [
            "prompt is too long: 208310 tokens > 200000 maximum",
            "input length and `max_tokens` exceed context limit: 188240 + 21333 > 200000, decrease input length or `max_tokens` and try again",
        ] {
            let body = serde_json::json!({"type":"error","error":{"type":"invalid_request_error","message":msg}}).to_string();
            let e = error_from_response(&resp(400, &[], &body), SystemTime::now());
            assert!(matches!(e, Error::ContextLengthExceeded { .. }), "{e}");
        }
        let body = r#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"}}"#;
        let e = error_from_response(&resp(400, &[], body), SystemTime::now());
        assert!(
            matches!(e, Error::InvalidRequest { status: 400, .. }),
            "{e}"
        );
    }

    #[test]
    fn permission_and_timeout_types() {
        let body = r#"{"type":"error","error":{"type":"permission_error","message":"Your API key does not have permission to use the specified resource."}}"#;
        assert!(matches!(
            error_from_response(&resp(403, &[], body), SystemTime::now()),
            Error::Authentication { status: 403, .. }
        ));
        let body =
            r#"{"type":"error","error":{"type":"timeout_error","message":"Request timed out"}}"#;
        let e = error_from_response(&resp(504, &[], body), SystemTime::now());
        assert!(
            matches!(e, Error::Server { status: 504, .. }) && e.is_retryable(),
            "{e}"
        );
    }
}
