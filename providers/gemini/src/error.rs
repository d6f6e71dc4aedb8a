//! Gemini (Google API) error bodies mapped to [`Error`].

use std::time::{Duration, SystemTime};

use costlayer_core::transport::{body_snippet, error_for_status, retry_after_from_headers};
use costlayer_core::{Error, HttpResponse};
use serde::Deserialize;
use serde_json::Value;

const PROVIDER: &str = "gemini";

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    details: Vec<Value>,
}

fn parse_body(body: &[u8]) -> Option<ErrorBody> {
    // Some endpoints wrap the error in an array: `[{"error": {...}}]`.
    match serde_json::from_slice::<Value>(body).ok()? {
        Value::Array(items) => items
            .into_iter()
            .find_map(|v| serde_json::from_value::<ErrorEnvelope>(v).ok())
            .map(|e| e.error),
        v => serde_json::from_value::<ErrorEnvelope>(v)
            .ok()
            .map(|e| e.error),
    }
}

fn detail_type(d: &Value) -> &str {
    d.get("@type").and_then(Value::as_str).unwrap_or_default()
}

/// Maps a Gemini error response to a typed [`Error`]; `now` is the clock an
/// HTTP-date `retry-after` is measured against.
///
/// - `RESOURCE_EXHAUSTED` (429): [`Error::RateLimited`], waiting
///   `RetryInfo.retryDelay` from `error.details`; but a `QuotaFailure` whose
///   `quotaId` is a per-day quota is [`Error::QuotaExceeded`] (not retried:
///   it lifts tomorrow).
/// - `INVALID_ARGUMENT` saying the input token count exceeds the maximum:
///   [`Error::ContextLengthExceeded`]; with reason `API_KEY_INVALID`:
///   [`Error::Authentication`].
/// - `PERMISSION_DENIED`, `UNAUTHENTICATED`: [`Error::Authentication`].
/// - Otherwise by status (503 `UNAVAILABLE` is [`Error::Overloaded`]); an
///   HTML page or other unreadable body becomes the message, shortened.
/// - Both `{"error": {...}}` and the array-wrapped `[{"error": {...}}]` are read.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use costlayer_core::{Error, HttpResponse};
/// use costlayer_gemini::error_from_response;
///
/// let resp = HttpResponse {
///     status: http::StatusCode::TOO_MANY_REQUESTS,
///     headers: http::HeaderMap::new(),
///     body: r#"{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED",
///       "details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"34s"}]}}"#.into(),
/// };
/// let err = error_from_response(&resp, SystemTime::now());
/// assert!(matches!(err, Error::RateLimited { .. }));
/// assert_eq!(err.retry_after(), Some(Duration::from_secs(34)));
/// ```
pub fn error_from_response(resp: &HttpResponse, now: SystemTime) -> Error {
    let parsed = parse_body(&resp.body);
    let body = parsed.unwrap_or_default();
    let status_name = body.status.clone().unwrap_or_default();
    let message = match body.message.clone() {
        Some(m) if !m.is_empty() => m,
        _ if resp.body.is_empty() => resp
            .status
            .canonical_reason()
            .unwrap_or("no message")
            .to_owned(),
        _ => format!("unreadable error body: {}", body_snippet(&resp.body, 200)),
    };
    let provider = PROVIDER.to_owned();
    let retry_delay = body
        .details
        .iter()
        .filter(|d| detail_type(d).ends_with("google.rpc.RetryInfo"))
        .find_map(|d| d.get("retryDelay").and_then(Value::as_str))
        .and_then(parse_retry_delay);
    let retry_after = retry_after_from_headers(&resp.headers, now).or(retry_delay);
    let daily_quota = body
        .details
        .iter()
        .filter(|d| detail_type(d).ends_with("google.rpc.QuotaFailure"))
        .filter_map(|d| d.get("violations").and_then(Value::as_array))
        .flatten()
        .filter_map(|v| v.get("quotaId").and_then(Value::as_str))
        .any(|id| id.contains("PerDay"));
    let reason_is = |reason: &str| {
        body.details
            .iter()
            .any(|d| d.get("reason").and_then(Value::as_str) == Some(reason))
    };
    let lower = message.to_ascii_lowercase();
    let too_long = lower.contains("token count")
        && (lower.contains("exceeds the maximum") || lower.contains("exceeds the limit"));
    let status = resp.status.as_u16();
    match status_name.as_str() {
        "RESOURCE_EXHAUSTED" | "" if status == 429 && daily_quota => {
            Error::QuotaExceeded { provider, message }
        }
        "RESOURCE_EXHAUSTED" => Error::RateLimited {
            provider,
            message,
            retry_after,
        },
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "" if too_long => {
            Error::ContextLengthExceeded { provider, message }
        }
        "INVALID_ARGUMENT" if reason_is("API_KEY_INVALID") => Error::Authentication {
            provider,
            status,
            message,
        },
        "PERMISSION_DENIED" | "UNAUTHENTICATED" => Error::Authentication {
            provider,
            status,
            message,
        },
        _ => error_for_status(PROVIDER, resp.status, message, retry_after),
    }
}

/// Parses a protobuf `Duration` as JSON carries it (`"34s"`, `"1.5s"`,
/// `"0.250s"`), the form of `RetryInfo.retryDelay`.
///
/// ```
/// use std::time::Duration;
/// use costlayer_gemini::parse_retry_delay;
/// assert_eq!(parse_retry_delay("34s"), Some(Duration::from_secs(34)));
/// assert_eq!(parse_retry_delay("0.250s"), Some(Duration::from_millis(250)));
/// assert_eq!(parse_retry_delay("34"), None);
/// ```
pub fn parse_retry_delay(s: &str) -> Option<Duration> {
    let secs: f64 = s.trim().strip_suffix('s')?.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, StatusCode};

    fn resp(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status: StatusCode::from_u16(status).expect("status"),
            headers: HeaderMap::new(),
            body: body.to_owned().into(),
        }
    }

    #[test]
    fn daily_quota_is_not_retryable() {
        let body = r#"{"error":{"code":429,"message":"You exceeded your current quota, please check your plan and billing details.","status":"RESOURCE_EXHAUSTED",
          "details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests","quotaId":"GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]},
                     {"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"9s"}]}}"#;
        let e = error_from_response(&resp(429, body), SystemTime::now());
        assert!(matches!(e, Error::QuotaExceeded { .. }), "{e}");
        assert!(!e.is_retryable());
    }

    #[test]
    fn array_wrapped_body() {
        let body = r#"[{"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).","status":"RESOURCE_EXHAUSTED",
          "details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"1.5s"}]}}]"#;
        let e = error_from_response(&resp(429, body), SystemTime::now());
        assert!(matches!(e, Error::RateLimited { .. }), "{e}");
        assert_eq!(e.retry_after(), Some(Duration::from_millis(1500)));
    }

    #[test]
    fn token_limit_and_invalid_key() {
        let body = r#"[{"error":{"code":400,"message":"The input token count (1200293) exceeds the maximum number of tokens allowed (1048576).","errors":[{"message":"The input token count (1200293) exceeds the maximum number of tokens allowed (1048576).","domain":"global","reason":"badRequest"}],"status":"INVALID_ARGUMENT"}}]"#;
        let e = error_from_response(&resp(400, body), SystemTime::now());
        assert!(matches!(e, Error::ContextLengthExceeded { .. }), "{e}");

        let body = r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com"}]}}"#;
        let e = error_from_response(&resp(400, body), SystemTime::now());
        assert!(
            matches!(e, Error::Authentication { status: 400, .. }),
            "{e}"
        );

        let body = r#"{"error":{"code":400,"message":"Invalid JSON payload received.","status":"INVALID_ARGUMENT"}}"#;
        let e = error_from_response(&resp(400, body), SystemTime::now());
        assert!(
            matches!(e, Error::InvalidRequest { status: 400, .. }),
            "{e}"
        );
    }
}
