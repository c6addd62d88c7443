//! Local replies: small JSON bodies for denials and errors. Never a stack trace, never more of
//! the client's input than a sanitised, truncated host.

use http::header::{CONNECTION, CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};
use serde::Serialize;

use crate::body::DownBody;

/// Longest host text echoed back.
const MAX_HOST_ECHO: usize = 100;

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<&'a str>,
}

/// Makes client-supplied host text safe to echo: printable ASCII only (others become `?`),
/// at most 100 characters.
pub fn sanitize_host(raw: &str) -> String {
    raw.chars()
        .take(MAX_HOST_ECHO)
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

fn json(status: StatusCode, body: &ErrorBody<'_>, close: bool) -> Response<DownBody> {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = Response::new(DownBody::full(bytes));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if close {
        resp.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// 403 `{"error":"egress_denied","rule":…,"host":…}`.
pub fn denied(rule: &str, host: &str, close: bool) -> Response<DownBody> {
    json(
        StatusCode::FORBIDDEN,
        &ErrorBody {
            error: "egress_denied",
            rule: Some(rule),
            reason: None,
            host: Some(host),
        },
        close,
    )
}

/// 400 `{"error":"bad_request","reason":…}`; the connection is closed after it.
pub fn bad_request(reason: &str) -> Response<DownBody> {
    json(
        StatusCode::BAD_REQUEST,
        &ErrorBody {
            error: "bad_request",
            rule: None,
            reason: Some(reason),
            host: None,
        },
        true,
    )
}

/// 413 for a request body over the limit.
pub fn too_large() -> Response<DownBody> {
    json(
        StatusCode::PAYLOAD_TOO_LARGE,
        &ErrorBody {
            error: "request_body_too_large",
            rule: None,
            reason: None,
            host: None,
        },
        true,
    )
}

/// 502 (upstream unreachable or failed) with a reason.
pub fn bad_gateway(reason: &str, host: &str, close: bool) -> Response<DownBody> {
    json(
        StatusCode::BAD_GATEWAY,
        &ErrorBody {
            error: "upstream_error",
            rule: None,
            reason: Some(reason),
            host: Some(host),
        },
        close,
    )
}

/// 504 (upstream connect or response timed out).
pub fn gateway_timeout(reason: &str, host: &str, close: bool) -> Response<DownBody> {
    json(
        StatusCode::GATEWAY_TIMEOUT,
        &ErrorBody {
            error: "upstream_timeout",
            rule: None,
            reason: Some(reason),
            host: Some(host),
        },
        close,
    )
}

/// A complete HTTP/1.1 response written straight to a socket that is about to be closed
/// (connection limits), before any request was read.
pub fn raw_refusal(status: u16, reason: &str, error: &str) -> Vec<u8> {
    let body = format!("{{\"error\":\"{error}\"}}");
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_echo_is_sanitised_and_truncated() {
        assert_eq!(sanitize_host("a\"b\\c\u{0}é"), "a?b?c??");
        assert_eq!(sanitize_host(&"x".repeat(500)).len(), 100);
    }
}
