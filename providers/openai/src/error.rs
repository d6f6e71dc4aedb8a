//! OpenAI error bodies and retry hints mapped to [`Error`].

use std::time::{Duration, SystemTime};

use costlayer_core::transport::{
    apply_should_retry, body_snippet, error_for_status, retry_after_from_headers,
};
use costlayer_core::{Error, HttpResponse};
use http::HeaderMap;
use serde::Deserialize;
use serde_json::Value;

use crate::codec::header_str;

const PROVIDER: &str = "openai";

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<Value>,
    #[serde(default)]
    code: Option<Value>,
}

fn as_str(v: &Option<Value>) -> Option<&str> {
    v.as_ref().and_then(Value::as_str)
}

/// Maps an OpenAI error response (status, headers, body) to a typed
/// [`Error`]; `now` is the clock HTTP-date hints are measured against.
///
/// - `429` with `insufficient_quota` (as `code` or `type`) is
///   [`Error::QuotaExceeded`], which is **not** retried: retrying an empty
///   account only burns time. Any other `429` is [`Error::RateLimited`].
/// - `code: context_length_exceeded` is [`Error::ContextLengthExceeded`].
/// - Otherwise the status decides (see
///   [`error_for_status`](costlayer_core::transport::error_for_status)); an
///   HTML or otherwise unreadable body becomes the message, shortened.
/// - The wait: `retry-after-ms`, then `retry-after` (seconds or HTTP-date),
///   then, on a 429 only, `x-ratelimit-reset-requests` /
///   `x-ratelimit-reset-tokens` (Go durations such as `6m0s`): the reset of
///   the exhausted bucket (remaining `0`), or the later of the two.
/// - `x-should-retry` overrides the status-based decision.
/// - The `x-request-id` header is appended to the message, for support tickets.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use costlayer_core::{Error, HttpResponse};
/// use costlayer_openai::error_from_response;
///
/// let mut headers = http::HeaderMap::new();
/// headers.insert("retry-after", "2".parse().unwrap());
/// let resp = HttpResponse {
///     status: http::StatusCode::TOO_MANY_REQUESTS,
///     headers,
///     body: r#"{"error":{"message":"Rate limit reached","type":"tokens","param":null,"code":"rate_limit_exceeded"}}"#.into(),
/// };
/// let err = error_from_response(&resp, SystemTime::now());
/// assert!(matches!(err, Error::RateLimited { .. }));
/// assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));
/// ```
pub fn error_from_response(resp: &HttpResponse, now: SystemTime) -> Error {
    let parsed = serde_json::from_slice::<ErrorEnvelope>(&resp.body)
        .ok()
        .map(|e| e.error);
    let code = parsed.as_ref().and_then(|e| as_str(&e.code)).unwrap_or("");
    let kind = parsed.as_ref().and_then(|e| as_str(&e.kind)).unwrap_or("");
    let mut message = match parsed.as_ref().and_then(|e| e.message.clone()) {
        Some(m) if !m.is_empty() => m,
        _ if resp.body.is_empty() => resp
            .status
            .canonical_reason()
            .unwrap_or("no message")
            .to_owned(),
        _ => format!("unreadable error body: {}", body_snippet(&resp.body, 200)),
    };
    if let Some(id) = header_str(&resp.headers, "x-request-id") {
        message.push_str(&format!(" (request id {id})"));
    }
    let provider = PROVIDER.to_owned();
    if code == "insufficient_quota" || kind == "insufficient_quota" {
        return Error::QuotaExceeded { provider, message };
    }
    if code == "context_length_exceeded" {
        return Error::ContextLengthExceeded { provider, message };
    }
    let mut retry_after = retry_after_from_headers(&resp.headers, now);
    if retry_after.is_none() && resp.status.as_u16() == 429 {
        retry_after = ratelimit_reset(&resp.headers);
    }
    apply_should_retry(
        error_for_status(PROVIDER, resp.status, message, retry_after),
        &resp.headers,
    )
}

/// The reset of the exhausted rate-limit bucket (the one whose remaining
/// count is `0`), or the later of the two resets when neither says.
fn ratelimit_reset(headers: &HeaderMap) -> Option<Duration> {
    let reset = |bucket: &str| {
        header_str(headers, &format!("x-ratelimit-reset-{bucket}"))
            .and_then(|v| parse_go_duration(&v))
    };
    let exhausted = |bucket: &str| {
        header_str(headers, &format!("x-ratelimit-remaining-{bucket}")).as_deref() == Some("0")
    };
    let (requests, tokens) = (reset("requests"), reset("tokens"));
    match (exhausted("requests"), exhausted("tokens")) {
        (true, false) if requests.is_some() => requests,
        (false, true) if tokens.is_some() => tokens,
        _ => requests.max(tokens),
    }
}

/// Parses a Go duration as OpenAI's `x-ratelimit-reset-*` headers send it:
/// `6m0s`, `1.5s`, `12ms`, `1h2m3s`, `250us`, `100ns`.
///
/// ```
/// use std::time::Duration;
/// use costlayer_openai::parse_go_duration;
///
/// assert_eq!(parse_go_duration("6m0s"), Some(Duration::from_secs(360)));
/// assert_eq!(parse_go_duration("12ms"), Some(Duration::from_millis(12)));
/// assert_eq!(parse_go_duration("1.5s"), Some(Duration::from_millis(1500)));
/// assert_eq!(parse_go_duration("soon"), None);
/// ```
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" | "μs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += value * scale;
    }
    (total.is_finite() && total >= 0.0).then(|| Duration::from_secs_f64(total))
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

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1h2m3s"), Some(Duration::from_secs(3723)));
        assert_eq!(parse_go_duration("250us"), Some(Duration::from_micros(250)));
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        for bad in ["", "5", "s", "5x", "-1s", "1..2s"] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn reset_headers_when_no_retry_after() {
        let body = r#"{"error":{"message":"Rate limit reached for gpt-4o on tokens per min (TPM)","type":"tokens","param":null,"code":"rate_limit_exceeded"}}"#;
        let r = resp(
            429,
            &[
                ("x-ratelimit-remaining-requests", "499"),
                ("x-ratelimit-remaining-tokens", "0"),
                ("x-ratelimit-reset-requests", "120ms"),
                ("x-ratelimit-reset-tokens", "6m0s"),
            ],
            body,
        );
        let e = error_from_response(&r, SystemTime::now());
        assert!(matches!(e, Error::RateLimited { .. }));
        assert_eq!(e.retry_after(), Some(Duration::from_secs(360)));

        let r = resp(
            429,
            &[
                ("x-ratelimit-remaining-requests", "0"),
                ("x-ratelimit-remaining-tokens", "1000"),
                ("x-ratelimit-reset-requests", "120ms"),
                ("x-ratelimit-reset-tokens", "6m0s"),
            ],
            body,
        );
        assert_eq!(
            error_from_response(&r, SystemTime::now()).retry_after(),
            Some(Duration::from_millis(120))
        );

        // retry-after wins over the reset headers.
        let r = resp(
            429,
            &[("retry-after", "3"), ("x-ratelimit-reset-tokens", "6m0s")],
            body,
        );
        assert_eq!(
            error_from_response(&r, SystemTime::now()).retry_after(),
            Some(Duration::from_secs(3))
        );
    }

    #[test]
    fn http_date_retry_after_uses_the_given_clock() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let later = now + Duration::from_secs(45);
        let r = resp(
            503,
            &[("retry-after", &httpdate_fmt(later))],
            r#"{"error":{"message":"The server is overloaded","type":"server_error","code":null}}"#,
        );
        let e = error_from_response(&r, now);
        assert!(matches!(e, Error::Overloaded { status: 503, .. }), "{e}");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(45)));
    }

    fn httpdate_fmt(t: SystemTime) -> String {
        // RFC 7231 IMF-fixdate, computed without extra dependencies.
        let secs = t
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("after epoch")
            .as_secs();
        let days = secs / 86_400;
        let rem = secs % 86_400;
        let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
        // Civil-from-days (Howard Hinnant).
        let z = days as i64 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let mo = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(mo <= 2);
        let wd = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
        let mon = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ][(mo - 1) as usize];
        format!("{wd}, {d:02} {mon} {y} {h:02}:{m:02}:{s:02} GMT")
    }

    #[test]
    fn quota_and_context_length() {
        let r = resp(
            429,
            &[("retry-after", "1")],
            r#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#,
        );
        let e = error_from_response(&r, SystemTime::now());
        assert!(matches!(e, Error::QuotaExceeded { .. }), "{e}");
        assert!(!e.is_retryable());

        let r = resp(
            400,
            &[("x-request-id", "req_abc")],
            r#"{"error":{"message":"This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
        );
        let e = error_from_response(&r, SystemTime::now());
        assert!(matches!(e, Error::ContextLengthExceeded { .. }), "{e}");
        assert!(e.to_string().contains("req_abc"), "{e}");
    }

    #[test]
    fn should_retry_header_overrides_status() {
        let r = resp(
            409,
            &[("x-should-retry", "true")],
            r#"{"error":{"message":"lock timeout","type":"invalid_request_error","code":null}}"#,
        );
        assert!(error_from_response(&r, SystemTime::now()).is_retryable());
        let r = resp(
            500,
            &[("x-should-retry", "false")],
            r#"{"error":{"message":"boom"}}"#,
        );
        assert!(!error_from_response(&r, SystemTime::now()).is_retryable());
    }

    #[test]
    fn html_and_empty_bodies() {
        let r = resp(
            502,
            &[],
            "<html><body><h1>502 Bad Gateway</h1></body></html>",
        );
        let e = error_from_response(&r, SystemTime::now());
        assert!(matches!(e, Error::Server { status: 502, .. }), "{e}");
        assert!(e.to_string().contains("502 Bad Gateway"), "{e}");
        let r = resp(500, &[], "");
        assert!(error_from_response(&r, SystemTime::now())
            .to_string()
            .contains("Internal Server Error"));
    }
}
