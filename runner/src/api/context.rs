//! The edge of every request: request id, client address, body cap, security headers, audit.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;
use crate::config::{Config, cidr_contains};
use crate::store::audit::AuditEvent;

/// Largest feedback request body, bytes (title + body + tags at their limits fit with room).
pub const FEEDBACK_MAX_BYTES: usize = 64 * 1024;

/// How long a client may take to send its request body.
pub const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// Who made the request, filled in by authentication for the audit line.
#[derive(Debug, Clone, Default)]
pub struct AuditSlot {
    pub actor: Option<String>,
    pub workspace_id: Option<i64>,
    pub action: Option<String>,
}

/// Per-request facts handlers can read from extensions.
#[derive(Debug, Clone)]
pub struct ReqCtx {
    pub request_id: String,
    pub client_ip: IpAddr,
    pub audit: Arc<Mutex<AuditSlot>>,
}

impl ReqCtx {
    /// Records the authenticated actor for the audit line.
    pub fn set_actor(&self, actor: String, workspace_id: Option<i64>) {
        if let Ok(mut s) = self.audit.lock() {
            s.actor = Some(actor);
            s.workspace_id = workspace_id;
        }
    }

    /// Names the action for the audit line (default: method and path).
    pub fn set_action(&self, action: &str) {
        if let Ok(mut s) = self.audit.lock() {
            s.action = Some(action.to_string());
        }
    }
}

/// The client's address: the peer, or, when the peer is a trusted reverse proxy, the right-most
/// address in the configured header that is not itself a trusted proxy. Anyone else's header is
/// ignored, so a client cannot choose its own rate-limit bucket.
pub fn client_ip(config: &Config, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
    let Some(name) = &config.http.trusted_proxy_header else {
        return peer;
    };
    let trusted = |ip: IpAddr| config.trusted_proxies.iter().any(|n| cidr_contains(*n, ip));
    if !trusted(peer) {
        return peer;
    }
    let Some(value) = headers
        .get_all(name.as_str())
        .iter()
        .next_back()
        .and_then(|v| v.to_str().ok())
    else {
        return peer;
    };
    for part in value.rsplit(',') {
        let p = part.trim();
        let parsed = p
            .parse::<IpAddr>()
            .ok()
            .or_else(|| p.parse::<SocketAddr>().ok().map(|s| s.ip()));
        match parsed {
            Some(ip) if trusted(ip) => continue,
            Some(ip) => return ip,
            None => return peer,
        }
    }
    peer
}

const REDACT_KEYS: &[&str] = &[
    "password",
    "secret",
    "token",
    "key",
    "authorization",
    "cookie",
    "signature",
];

fn redact_value(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                let lk = k.to_ascii_lowercase();
                if REDACT_KEYS.iter().any(|r| lk.contains(r)) {
                    *val = serde_json::Value::String("[redacted]".into());
                } else {
                    redact_value(val);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(redact_value),
        _ => {}
    }
}

/// The request body as stored in the audit ledger: JSON with secret-looking fields redacted,
/// anything else only by size; at most 4 KiB.
pub fn redact_body(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return String::new();
    }
    let s = match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(mut v) => {
            redact_value(&mut v);
            v.to_string()
        }
        Err(_) => format!("<{} bytes, not JSON>", bytes.len()),
    };
    if s.len() > 4096 {
        let cut: String = s.chars().take(4000).collect();
        format!("{cut}…<truncated>")
    } else {
        s
    }
}

/// The audit body of a request: a secret write records only its size, anything else goes
/// through [`redact_body`].
pub fn audit_body(path: &str, bytes: &[u8]) -> String {
    if path.starts_with("/api/v1/secrets") {
        return format!("<{} bytes, secret value withheld>", bytes.len());
    }
    redact_body(bytes)
}

fn set_security_headers(config: &Config, h: &mut HeaderMap, request_id: &str) {
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    if config.public_url.starts_with("https://") {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=63072000; includeSubDomains"),
        );
    }
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-request-id", v);
    }
}

fn is_mutating(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The outermost middleware of the API.
pub async fn edge(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    let config = state.config.clone();
    let request_id = uuid::Uuid::new_v4().to_string();
    let ip = client_ip(&config, peer.ip(), req.headers());
    let ctx = ReqCtx {
        request_id: request_id.clone(),
        client_ip: ip,
        audit: Arc::new(Mutex::new(AuditSlot::default())),
    };
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let mutating = is_mutating(&method);

    let (mut parts, body) = req.into_parts();
    let limit = if path == "/api/v1/feedback" {
        FEEDBACK_MAX_BYTES.min(config.http.max_body_bytes)
    } else {
        config.http.max_body_bytes
    };
    let mut body_bytes = Bytes::new();
    let mut early: Option<Response> = None;
    if mutating {
        // The cap applies before any parsing: a declared length over it is refused unread, and a
        // body that grows past it while streaming is cut off.
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let too_big = ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body is limited to {limit} bytes"),
        );
        if declared.is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX)) {
            early = Some(too_big.into_response());
        } else {
            // A body dripped in slowly must not hold a connection and a task forever.
            match tokio::time::timeout(BODY_READ_TIMEOUT, axum::body::to_bytes(body, limit)).await {
                Ok(Ok(b)) => body_bytes = b,
                Ok(Err(_)) => early = Some(too_big.into_response()),
                Err(_) => {
                    early = Some(
                        ApiError::new(
                            StatusCode::REQUEST_TIMEOUT,
                            "request_timeout",
                            "the request body was not received in time",
                        )
                        .into_response(),
                    )
                }
            }
        }
    }
    parts.extensions.insert(ctx.clone());
    // The handler and its audit line run in their own task: a client that hangs up mid-request
    // cannot cancel the audit write after the change was made.
    let tasks = state.tasks.clone();
    let work = tasks.spawn(async move {
        let mut resp = match early {
            Some(r) => r,
            None => {
                let req = Request::from_parts(parts, Body::from(body_bytes.clone()));
                next.run(req).await
            }
        };
        if resp.status().is_client_error() || resp.status().is_server_error() {
            resp = json_error(resp);
        }
        set_security_headers(&config, resp.headers_mut(), &request_id);
        if mutating && resp.status() != StatusCode::TOO_MANY_REQUESTS {
            audit(&state, &ctx, &method, &path, resp.status(), &body_bytes).await;
        }
        tracing::info!(request_id = %request_id, method = %method, path = %path, status = resp.status().as_u16(), client = %ip, "request");
        resp
    });
    match work.await {
        Ok(resp) => resp,
        Err(_) => ApiError::internal().into_response(),
    }
}

/// Makes sure an error answer is the JSON error shape even when it came from a framework
/// rejection (e.g. a path that is not valid UTF-8) rather than from our handlers.
fn json_error(resp: Response) -> Response {
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return resp;
    }
    let status = resp.status();
    let code = match status.as_u16() {
        400 => "bad_request",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "request_timeout",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        422 => "invalid_field",
        429 => "rate_limited",
        500 => "internal",
        _ => "error",
    };
    let (parts, _) = resp.into_parts();
    let mut out =
        ApiError::new(status, code, status.canonical_reason().unwrap_or("error")).into_response();
    for (k, v) in &parts.headers {
        if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
            out.headers_mut().insert(k.clone(), v.clone());
        }
    }
    out
}

/// Appends the audit line of one mutating request. Requests refused by a rate limit never get
/// here: they did nothing, and a flood must not fill the ledger.
async fn audit(
    state: &AppState,
    ctx: &ReqCtx,
    method: &Method,
    path: &str,
    status: StatusCode,
    body: &[u8],
) {
    let slot = ctx.audit.lock().map(|s| s.clone()).unwrap_or_default();
    let outcome = if status.is_success() {
        "ok".to_string()
    } else if status.is_client_error() {
        format!("denied:{}", status.as_u16())
    } else {
        format!("error:{}", status.as_u16())
    };
    let event = AuditEvent {
        actor: slot
            .actor
            .unwrap_or_else(|| format!("anonymous:{}", ctx.client_ip)),
        workspace_id: slot.workspace_id,
        action: slot.action.unwrap_or_else(|| format!("{method} {path}")),
        resource: path.chars().take(512).collect(),
        outcome,
        request_id: ctx.request_id.clone(),
        body: audit_body(path, body),
    };
    if let Err(e) = state.store.append_audit(&event).await {
        tracing::error!(request_id = %ctx.request_id, error = ?e, "audit append failed");
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(extra: &[(&str, &str)]) -> Config {
        let mut env: HashMap<String, String> = HashMap::new();
        env.insert("PADDOCK_DATABASE_URL".into(), "sqlite:///tmp/x.db".into());
        env.insert(
            "PADDOCK_SESSION_SECRET".into(),
            "k3J9xQ2vL8mN4pR7sT1wY6zA0bC5dE8f".into(),
        );
        for (k, v) in extra {
            env.insert((*k).into(), (*v).into());
        }
        Config::from_toml("", &env).unwrap()
    }

    #[test]
    fn forwarded_header_trusted_only_from_proxy() {
        let c = cfg(&[
            ("PADDOCK_HTTP_TRUSTED_PROXY_HEADER", "X-Forwarded-For"),
            ("PADDOCK_HTTP_TRUSTED_PROXIES", "127.0.0.1"),
        ]);
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 203.0.113.9"),
        );
        let proxy: IpAddr = "127.0.0.1".parse().unwrap();
        let stranger: IpAddr = "198.51.100.7".parse().unwrap();
        assert_eq!(
            client_ip(&c, proxy, &h),
            "203.0.113.9".parse::<IpAddr>().unwrap(),
            "right-most, not the spoofable left"
        );
        assert_eq!(
            client_ip(&c, stranger, &h),
            stranger,
            "a non-proxy peer cannot pick its address"
        );
        let none = cfg(&[]);
        assert_eq!(
            client_ip(&none, proxy, &h),
            proxy,
            "no header configured: peer"
        );
        h.insert("x-forwarded-for", HeaderValue::from_static("garbage"));
        assert_eq!(client_ip(&c, proxy, &h), proxy);
    }

    #[test]
    fn redaction() {
        let r = redact_body(br#"{"email":"a@b","password":"hunter2hunter2","nested":{"api_key":"pdk_x"},"title":"t"}"#);
        assert!(!r.contains("hunter2"));
        assert!(!r.contains("pdk_x"));
        assert!(r.contains("a@b") && r.contains("\"title\":\"t\""));
        assert_eq!(redact_body(b"\x00\x01"), "<2 bytes, not JSON>");
    }
}
