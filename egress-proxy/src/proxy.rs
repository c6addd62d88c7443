//! Request handling: every request is judged by the policy, then forwarded (absolute-form
//! HTTP) or tunnelled (CONNECT) through the dialler; everything else is refused.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use http::header::{
    CONNECTION, CONTENT_LENGTH, HOST, HeaderMap, HeaderName, HeaderValue, PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use paddock_policy::{
    BodyFormat, BrokerRule, EgressRequest, Host, Rule, Scheme, UsageMeter, Verdict, parse_authority,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::audit::{AuditRecord, Auditor};
use crate::body::{BodyError, DownBody, DownFilter, Meter, PendingAudit, UpBody};
use crate::config::Limits;
use crate::credentials::{broker, scrub_response_headers};
use crate::dial::{self, DialError, Resolver};
use crate::drive::Drivers;
use crate::framing::Verdicts;
use crate::limits::ConnPermit;
use crate::method_override::has_method_override;
use crate::metrics::Metrics;
use crate::reply;
use crate::run::Run;
use crate::tls::UpstreamTls;
use crate::tunnel;

/// Rule name for a host that does not parse (malformed, numeric-looking but invalid, userinfo).
pub const RULE_INVALID_HOST: &str = "invalid_host";

/// Denials (and rejections) one client connection may collect; the reply to the last one
/// closes the connection, so that a client cannot flood denials on one kept-alive connection.
pub const MAX_DENIALS_PER_CONNECTION: u32 = 32;

/// State shared by every connection of one proxy.
#[derive(Debug)]
pub struct Shared {
    /// The resolver (configured nameservers only).
    pub resolver: Resolver,
    /// Limits and timeouts.
    pub limits: Limits,
    /// The audit stream.
    pub auditor: Auditor,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Cancelled when the shutdown grace period is over: tunnels and connections stop.
    pub kill: CancellationToken,
    /// Tracks connection and tunnel tasks for shutdown.
    pub tracker: TaskTracker,
    /// The verified TLS client for intercepted requests.
    pub upstream_tls: UpstreamTls,
}

/// One upstream connection kept for reuse within one client connection.
struct Upstream {
    host: Host,
    port: u16,
    ip: IpAddr,
    sender: SendRequest<UpBody>,
}

/// Per client connection.
pub struct ConnCtx {
    /// The proxy.
    pub shared: Arc<Shared>,
    /// `ip:port` or `unix:<path>`.
    pub client: Arc<str>,
    /// The run this connection belongs to (the socket it arrived on).
    pub run: Arc<Run>,
    /// For a connection inside intercepted TLS: the CONNECT host and port every request on it
    /// goes to.
    pub origin: Option<(Host, u16)>,
    /// What the framing guard found.
    pub verdicts: Arc<Verdicts>,
    /// Upstream connections this client connection's task drives.
    pub drivers: Arc<Drivers>,
    /// The client connection's slot under the connection limits, held by every task that
    /// still uses the connection (the HTTP server, a tunnel, an intercepted session).
    pub permit: Option<Arc<ConnPermit>>,
    upstream: Mutex<Option<Upstream>>,
    denials: AtomicU32,
}

impl std::fmt::Debug for ConnCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnCtx")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl ConnCtx {
    /// A context for a new client connection.
    pub fn new(
        shared: Arc<Shared>,
        client: Arc<str>,
        run: Arc<Run>,
        origin: Option<(Host, u16)>,
        verdicts: Arc<Verdicts>,
        permit: Option<Arc<ConnPermit>>,
    ) -> Self {
        ConnCtx {
            shared,
            client,
            run,
            origin,
            verdicts,
            drivers: Arc::new(Drivers::default()),
            permit,
            upstream: Mutex::new(None),
            denials: AtomicU32::new(0),
        }
    }

    /// Counts one denial on this connection; true once the connection has had its share and
    /// must be closed after the reply.
    fn note_denial(&self) -> bool {
        let n = self
            .denials
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        n >= MAX_DENIALS_PER_CONNECTION
    }

    fn take_upstream(&self, host: &Host, port: u16) -> Option<Upstream> {
        let mut slot = self.upstream.lock().ok()?;
        match slot.take() {
            Some(up) if up.port == port && up.host == *host && !up.sender.is_closed() => Some(up),
            _ => None,
        }
    }

    fn put_upstream(&self, up: Upstream) {
        if up.sender.is_closed() {
            return;
        }
        if let Ok(mut slot) = self.upstream.lock() {
            *slot = Some(up);
        }
    }
}

/// What every audit line of one request shares.
struct Start {
    ts: SystemTime,
    at: Instant,
    method: String,
    scheme: &'static str,
}

impl Start {
    fn new(method: &Method, scheme: &'static str) -> Start {
        Start {
            ts: SystemTime::now(),
            at: Instant::now(),
            method: reply::sanitize_host(method.as_str())
                .chars()
                .take(32)
                .collect(),
            scheme,
        }
    }
}

struct Outcome<'a> {
    host: &'a str,
    port: Option<u16>,
    ip: Option<IpAddr>,
    rule: &'static str,
    verdict: &'static str,
    status: StatusCode,
}

impl ConnCtx {
    fn record(&self, s: &Start, o: Outcome<'_>) -> AuditRecord {
        AuditRecord {
            ts: s.ts,
            run: self.run.id.clone(),
            client: self.client.clone(),
            method: s.method.clone(),
            scheme: s.scheme,
            host: o.host.to_owned(),
            port: o.port,
            resolved_ip: o.ip,
            rule: o.rule,
            verdict: o.verdict,
            status: o.status.as_u16(),
            bytes_up: 0,
            bytes_down: 0,
            duration_ms: u64::try_from(s.at.elapsed().as_millis()).unwrap_or(u64::MAX),
            security_event: false,
            suppressed: 0,
            muted: false,
        }
    }

    /// Audits one outcome; true when it was a denial that used up the connection's share.
    fn emit(&self, s: &Start, o: Outcome<'_>) -> bool {
        let mut close = false;
        let mut line = Some(0);
        if matches!(o.verdict, "deny" | "reject") {
            self.run.note_denied(o.host);
            close = self.note_denial();
            line = self.run.denial_line();
        }
        let mut rec = self.record(s, o);
        let Some(suppressed) = line else {
            // Over the run's denial-line rate: counted (metrics, totals), not written.
            rec.muted = true;
            self.shared.auditor.record(rec);
            return close;
        };
        rec.suppressed = suppressed;
        tracing::info!(
            client = %rec.client,
            method = %rec.method,
            host = %rec.host,
            port = rec.port,
            rule = rec.rule,
            verdict = rec.verdict,
            status = rec.status,
            "egress decision"
        );
        self.shared.auditor.record(rec);
        close
    }

    /// Audits and returns a local reply; the reply closes the connection once it has had
    /// [`MAX_DENIALS_PER_CONNECTION`] denials.
    fn reply(&self, s: &Start, o: Outcome<'_>, resp: Response<DownBody>) -> Response<DownBody> {
        let close = self.emit(s, o);
        closing(resp, close)
    }
}

/// The hyper service entry point.
pub async fn handle(
    ctx: Arc<ConnCtx>,
    req: Request<Incoming>,
) -> Result<Response<DownBody>, Infallible> {
    if let Some(reason) = ctx.verdicts.next_request() {
        let s = Start::new(req.method(), "http");
        return Ok(ctx.reply(
            &s,
            Outcome {
                host: "",
                port: None,
                ip: None,
                rule: reason,
                verdict: "reject",
                status: StatusCode::BAD_REQUEST,
            },
            reply::bad_request(reason),
        ));
    }
    if req.method() == Method::CONNECT {
        if ctx.origin.is_some() {
            let s = Start::new(req.method(), "https");
            return Ok(reject(&ctx, &s, "", "connect_inside_tls"));
        }
        Ok(connect(ctx, req).await)
    } else {
        Ok(forward(ctx, req).await)
    }
}

/// Marks `resp` as the connection's last when `close`.
fn closing(mut resp: Response<DownBody>, close: bool) -> Response<DownBody> {
    if close {
        resp.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

fn deny_outcome<'a>(host: &'a str, port: Option<u16>, rule: &'static str) -> Outcome<'a> {
    Outcome {
        host,
        port,
        ip: None,
        rule,
        verdict: "deny",
        status: StatusCode::FORBIDDEN,
    }
}

fn reject(ctx: &ConnCtx, s: &Start, host: &str, reason: &'static str) -> Response<DownBody> {
    ctx.reply(
        s,
        Outcome {
            host,
            port: None,
            ip: None,
            rule: reason,
            verdict: "reject",
            status: StatusCode::BAD_REQUEST,
        },
        reply::bad_request(reason),
    )
}

/// Parses the request target's authority; a host that does not parse is denied, never resolved.
fn target(uri: &Uri, default_port: Option<u16>) -> Result<(Host, u16), String> {
    let Some(auth) = uri.authority() else {
        return Err(String::new());
    };
    parse_authority(auth.as_str(), default_port).map_err(|_| reply::sanitize_host(auth.host()))
}

/// Removes hop-by-hop headers: `Connection` and every header it names, `Keep-Alive`, `TE`,
/// `Trailer`, `Transfer-Encoding`, `Upgrade`, and every `Proxy-*` header.
pub fn strip_hop_by_hop(h: &mut HeaderMap) {
    let named: Vec<HeaderName> = h
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for n in named {
        h.remove(n);
    }
    for n in [
        CONNECTION,
        TE,
        TRAILER,
        TRANSFER_ENCODING,
        UPGRADE,
        PROXY_AUTHORIZATION,
        PROXY_AUTHENTICATE,
    ] {
        h.remove(n);
    }
    h.remove("keep-alive");
    let proxy: Vec<HeaderName> = h
        .keys()
        .filter(|k| k.as_str().starts_with("proxy-"))
        .cloned()
        .collect();
    for n in proxy {
        h.remove(n);
    }
}

fn host_header(host: &Host, port: u16) -> Option<HeaderValue> {
    let text = if port == 80 {
        host.to_string()
    } else {
        format!("{host}:{port}")
    };
    HeaderValue::from_str(&text).ok()
}

/// The target of a request: absolute-form `http://` on a plain connection, or (inside
/// intercepted TLS) origin-form, or absolute-form naming exactly the CONNECT origin.
fn request_target(
    ctx: &ConnCtx,
    s: &Start,
    req: &Request<Incoming>,
    has_body: bool,
) -> Result<(Host, u16), Box<Response<DownBody>>> {
    if let Some((origin, port)) = &ctx.origin {
        match req.uri().scheme_str() {
            None if req.uri().authority().is_none() => {}
            None => return Err(Box::new(reject(ctx, s, "", "invalid_request_target"))),
            Some("https") => {
                let same =
                    target(req.uri(), Some(443)).is_ok_and(|(h, p)| h == *origin && p == *port);
                if !same {
                    return Err(Box::new(reject(
                        ctx,
                        s,
                        &origin.to_string(),
                        "authority_mismatch",
                    )));
                }
            }
            Some(_) => return Err(Box::new(reject(ctx, s, "", "unsupported_scheme"))),
        }
        return Ok((origin.clone(), *port));
    }
    match req.uri().scheme_str() {
        Some("http") => {}
        None => return Err(Box::new(reject(ctx, s, "", "not_a_proxy_request"))),
        Some(_) => return Err(Box::new(reject(ctx, s, "", "unsupported_scheme"))),
    }
    match target(req.uri(), Some(80)) {
        Ok(t) => Ok(t),
        Err(raw) if raw.is_empty() => Err(Box::new(reject(ctx, s, "", "not_a_proxy_request"))),
        Err(raw) => Err(Box::new(ctx.reply(
            s,
            deny_outcome(&raw, None, RULE_INVALID_HOST),
            reply::denied(RULE_INVALID_HOST, &raw, has_body),
        ))),
    }
}

/// Audits a broker refusal as a security event and answers 403 naming the rule.
fn broker_denied(
    ctx: &ConnCtx,
    s: &Start,
    host: &str,
    port: Option<u16>,
    rule: BrokerRule,
    close: bool,
) -> Response<DownBody> {
    ctx.run.note_security_event();
    tracing::warn!(
        run_id = ctx.run.id.as_deref().unwrap_or("default"),
        client = %ctx.client,
        host = %host,
        rule = rule.name(),
        security_event = true,
        "credential broker refused a request"
    );
    ctx.run.note_denied(host);
    let last = ctx.note_denial();
    let mut rec = ctx.record(s, deny_outcome(host, port, rule.name()));
    rec.security_event = true;
    ctx.shared.auditor.record(rec);
    closing(reply::denied(rule.name(), host, close), last)
}

async fn forward(ctx: Arc<ConnCtx>, req: Request<Incoming>) -> Response<DownBody> {
    let tls = ctx.origin.is_some();
    let s = Start::new(req.method(), if tls { "https" } else { "http" });
    let has_body = !req.body().is_end_stream();
    let (host, port) = match request_target(&ctx, &s, &req, has_body) {
        Ok(t) => t,
        Err(resp) => return *resp,
    };
    let default_port = if tls { 443 } else { 80 };
    let host_text = host.to_string();
    // The Host header must name the same authority as the request target.
    let mut hosts = req.headers().get_all(HOST).iter();
    if let Some(h) = hosts.next() {
        if hosts.next().is_some() {
            return reject(&ctx, &s, &host_text, "duplicate_host_header");
        }
        let same = h
            .to_str()
            .ok()
            .and_then(|v| parse_authority(v, Some(default_port)).ok())
            .is_some_and(|(hh, hp)| hh == host && hp == port);
        if !same {
            return reject(&ctx, &s, &host_text, "host_header_mismatch");
        }
    }
    let method_override = has_method_override(&req);
    let decision = ctx.run.policy.decide(&EgressRequest {
        method: req.method().as_str(),
        scheme: if tls { Scheme::Https } else { Scheme::Http },
        host: &host,
        port,
        method_override,
    });
    if decision.verdict != Verdict::Allow {
        let rule = decision.rule.name();
        return ctx.reply(
            &s,
            deny_outcome(&host_text, Some(port), rule),
            reply::denied(rule, &host_text, has_body),
        );
    }
    let limit = ctx.shared.limits.max_request_body;
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return ctx.reply(
            &s,
            Outcome {
                host: &host_text,
                port: Some(port),
                ip: None,
                rule: "body_too_large",
                verdict: "deny",
                status: StatusCode::PAYLOAD_TOO_LARGE,
            },
            reply::too_large(),
        );
    }

    let (parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers);
    headers.remove(HOST);
    // The broker judges the request before anything leaves: a handle out of place never
    // reaches a resolver or a socket.
    let mut headers = match broker(&ctx.run, &host, &path, headers) {
        Ok(h) => h,
        Err(rule) => return broker_denied(&ctx, &s, &host_text, Some(port), rule, has_body),
    };
    if let Err(rule) = ctx.run.admit(&host) {
        let rule = rule.name();
        return ctx.reply(
            &s,
            deny_outcome(&host_text, Some(port), rule),
            reply::denied(rule, &host_text, has_body),
        );
    }

    let (mut up, mut reused) = match ctx.take_upstream(&host, port) {
        Some(up) => (up, true),
        None => match open_upstream(&ctx, &host, port).await {
            Ok(up) => (up, false),
            Err(e) => return dial_failure(&ctx, &s, &host_text, port, e, has_body),
        },
    };
    if up.sender.ready().await.is_err() {
        reused = false;
        up = match open_upstream(&ctx, &host, port).await {
            Ok(up) => up,
            Err(e) => return dial_failure(&ctx, &s, &host_text, port, e, has_body),
        };
    }

    // A body of unknown length goes on chunked, whatever the method (the HTTP client would
    // otherwise send a GET's chunked body as no body at all).
    if !body.is_end_stream() && body.size_hint().exact().is_none() {
        headers.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
    }
    let authority = if port == default_port {
        HeaderValue::from_str(&host_text).ok()
    } else {
        host_header(&host, port)
    };
    if let Some(v) = authority {
        headers.insert(HOST, v);
    }
    let meter = Arc::new(Meter::default());
    let guard = Some(ctx.run.handles.body_guard());
    let mut up_req = Request::new(UpBody::new(body, limit, meter.clone(), guard));
    let method = parts.method.clone();
    *up_req.method_mut() = parts.method;
    *up_req.version_mut() = Version::HTTP_11;
    *up_req.headers_mut() = headers;
    match Uri::try_from(path) {
        Ok(u) => *up_req.uri_mut() = u,
        Err(_) => return reject(&ctx, &s, &host_text, "invalid_request_target"),
    }

    let idle = ctx.shared.limits.idle_timeout.get();
    let mut sent = tokio::time::timeout(idle, up.sender.try_send_request(up_req)).await;
    // A kept-alive upstream connection that closed before the request was written: send the
    // untouched request once more on a fresh, freshly validated connection.
    if reused
        && let Ok(Err(e)) = &mut sent
        && let Some(again) = e.take_message()
    {
        up = match open_upstream(&ctx, &host, port).await {
            Ok(up) => up,
            Err(e) => return dial_failure(&ctx, &s, &host_text, port, e, has_body),
        };
        sent = tokio::time::timeout(idle, up.sender.try_send_request(again)).await;
    }
    let ip = up.ip;
    let sent = sent.map(|r| r.map_err(hyper::client::conn::TrySendError::into_error));
    if let Some(rule) = meter.broker_denied() {
        // The chunk that carried the handle never left; the upstream's view of the cut
        // request is not relayed and its connection is not reused.
        return broker_denied(&ctx, &s, &host_text, Some(port), rule, true);
    }
    let resp = match sent {
        Ok(Ok(_)) if meter.exceeded() => {
            // The body was cut at the limit; whatever the upstream made of the truncated
            // request is not relayed, and its connection is not reused.
            return ctx.reply(
                &s,
                Outcome {
                    host: &host_text,
                    port: Some(port),
                    ip: Some(ip),
                    rule: "body_too_large",
                    verdict: "deny",
                    status: StatusCode::PAYLOAD_TOO_LARGE,
                },
                reply::too_large(),
            );
        }
        Ok(Ok(resp)) => resp,
        Ok(Err(e)) => {
            let too_large = std::error::Error::source(&e)
                .and_then(|s| s.downcast_ref::<BodyError>())
                .is_some_and(|b| matches!(b, BodyError::TooLarge));
            let o = Outcome {
                host: &host_text,
                port: Some(port),
                ip: Some(ip),
                rule: if too_large {
                    "body_too_large"
                } else {
                    "upstream_failed"
                },
                verdict: "error",
                status: if too_large {
                    StatusCode::PAYLOAD_TOO_LARGE
                } else {
                    StatusCode::BAD_GATEWAY
                },
            };
            let r = if too_large {
                reply::too_large()
            } else {
                reply::bad_gateway("upstream_failed", &host_text, true)
            };
            return ctx.reply(&s, o, r);
        }
        Err(_) => {
            return ctx.reply(
                &s,
                Outcome {
                    host: &host_text,
                    port: Some(port),
                    ip: Some(ip),
                    rule: "upstream_timeout",
                    verdict: "error",
                    status: StatusCode::GATEWAY_TIMEOUT,
                },
                reply::gateway_timeout("upstream_response_timeout", &host_text, true),
            );
        }
    };
    ctx.put_upstream(up);

    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    scrub_response_headers(&ctx.run, &mut parts.headers);
    let scrub = (!ctx.run.handles.is_empty()).then(|| ctx.run.handles.stream_scrubber());
    if scrub.is_some() {
        parts.headers.remove(CONTENT_LENGTH);
    }
    // Every response of a token host is metered. A write's (in practice a POST's) JSON and SSE
    // are read for their usage (JSON buffered up to 1 MiB); a GET or HEAD without a method
    // override is counted, never buffered (`Opaque`), and charged by the byte estimate, since
    // some APIs deliver the tokens of earlier work through a GET (background responses, batch
    // results).
    let write = !matches!(method, Method::GET | Method::HEAD) || method_override;
    let usage = ctx.run.is_token_host(&host).then(|| {
        let format = if write {
            parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map_or(BodyFormat::Opaque, BodyFormat::from_content_type)
        } else {
            BodyFormat::Opaque
        };
        UsageMeter::new(format)
    });
    let status = parts.status;
    let record = ctx.record(
        &s,
        Outcome {
            host: &host_text,
            port: Some(port),
            ip: Some(ip),
            rule: decision.rule.name(),
            verdict: "allow",
            status,
        },
    );
    let audit = Box::new(PendingAudit {
        record,
        start: s.at,
        up: meter,
        shared: ctx.shared.clone(),
        run: ctx.run.clone(),
    });
    Response::from_parts(
        parts,
        DownBody::Upstream {
            inner: body,
            seen: 0,
            audit: Some(audit),
            filter: Box::new(DownFilter::new(
                scrub,
                usage,
                ctx.shared.limits.body_idle_timeout.get(),
            )),
        },
    )
}

/// Resolves, validates, connects, performs the TLS handshake for an intercepted origin, and
/// the HTTP/1.1 handshake.
async fn open_upstream(ctx: &ConnCtx, host: &Host, port: u16) -> Result<Upstream, DialError> {
    let shared = &ctx.shared;
    let addrs = shared.resolver.resolve(&ctx.run.policy, host, port).await?;
    let (stream, addr) = dial::connect(&addrs, shared.limits.connect_timeout.get()).await?;
    let builder = hyper::client::conn::http1::Builder::new();
    let sender = if ctx.origin.is_some() {
        let tls = shared
            .upstream_tls
            .connect_upstream(stream, host)
            .await
            .map_err(|e| {
                tracing::info!(host = %host, error = %e, "upstream TLS refused");
                DialError::Tls
            })?;
        let (sender, conn) = builder
            .handshake(TokioIo::new(tls))
            .await
            .map_err(|e| DialError::Connect(std::io::Error::other(e)))?;
        ctx.drivers.add(Box::pin(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        }));
        sender
    } else {
        let (sender, conn) = builder
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| DialError::Connect(std::io::Error::other(e)))?;
        ctx.drivers.add(Box::pin(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        }));
        sender
    };
    Ok(Upstream {
        host: host.clone(),
        port,
        ip: addr.socket_addr().ip(),
        sender,
    })
}

fn dial_failure(
    ctx: &ConnCtx,
    s: &Start,
    host: &str,
    port: u16,
    e: DialError,
    close: bool,
) -> Response<DownBody> {
    let (rule, verdict, status, resp) = match e {
        DialError::Denied(d) if d.rule == Rule::NoAddress => (
            d.rule.name(),
            "error",
            StatusCode::BAD_GATEWAY,
            reply::bad_gateway("no_address", host, close),
        ),
        DialError::Denied(d) => (
            d.rule.name(),
            "deny",
            StatusCode::FORBIDDEN,
            reply::denied(d.rule.name(), host, close),
        ),
        DialError::Resolve => (
            "dns_failure",
            "error",
            StatusCode::BAD_GATEWAY,
            reply::bad_gateway("dns_failure", host, close),
        ),
        DialError::Timeout => (
            "connect_timeout",
            "error",
            StatusCode::GATEWAY_TIMEOUT,
            reply::gateway_timeout("connect_timeout", host, close),
        ),
        DialError::Connect(_) => (
            "connect_failed",
            "error",
            StatusCode::BAD_GATEWAY,
            reply::bad_gateway("connect_failed", host, close),
        ),
        DialError::Tls => (
            "upstream_tls_failed",
            "error",
            StatusCode::BAD_GATEWAY,
            reply::bad_gateway("upstream_tls_failed", host, close),
        ),
    };
    ctx.reply(
        s,
        Outcome {
            host,
            port: Some(port),
            ip: None,
            rule,
            verdict,
            status,
        },
        resp,
    )
}

async fn connect(ctx: Arc<ConnCtx>, mut req: Request<Incoming>) -> Response<DownBody> {
    let s = Start::new(req.method(), "https");
    let (host, port) = match target(req.uri(), None) {
        Ok(t) => t,
        Err(raw) if raw.is_empty() => return reject(&ctx, &s, "", "invalid_connect_target"),
        Err(raw) => {
            return ctx.reply(
                &s,
                deny_outcome(&raw, None, RULE_INVALID_HOST),
                reply::denied(RULE_INVALID_HOST, &raw, true),
            );
        }
    };
    let host_text = host.to_string();
    let policy = &ctx.run.policy;
    let decision = policy.decide(&EgressRequest {
        method: "CONNECT",
        scheme: Scheme::Https,
        host: &host,
        port,
        method_override: false,
    });
    // A CONNECT to a host that is not a pass-through tunnel host is intercepted when the run
    // has a CA and the host may be read over HTTPS at all; each request inside is then judged
    // on its own method.
    let intercept = match decision.verdict {
        Verdict::Tunnel => false,
        _ if decision.rule == Rule::ConnectNotTunnelHost && ctx.run.interceptor.is_some() => {
            let read = policy.decide(&EgressRequest {
                method: "GET",
                scheme: Scheme::Https,
                host: &host,
                port,
                method_override: false,
            });
            if read.verdict != Verdict::Allow {
                let rule = read.rule.name();
                return ctx.reply(
                    &s,
                    deny_outcome(&host_text, Some(port), rule),
                    reply::denied(rule, &host_text, true),
                );
            }
            true
        }
        _ => {
            let rule = decision.rule.name();
            return ctx.reply(
                &s,
                deny_outcome(&host_text, Some(port), rule),
                reply::denied(rule, &host_text, true),
            );
        }
    };
    // A handle in the CONNECT host would leave in a DNS query or a certificate name.
    if let Err(rule) = broker(&ctx.run, &host, "", HeaderMap::new()) {
        return broker_denied(&ctx, &s, &host_text, Some(port), rule, true);
    }
    if intercept {
        return intercept_connect(&ctx, &s, req, host, port);
    }
    if let Err(rule) = ctx.run.admit(&host) {
        let rule = rule.name();
        return ctx.reply(
            &s,
            deny_outcome(&host_text, Some(port), rule),
            reply::denied(rule, &host_text, true),
        );
    }
    let shared = ctx.shared.clone();
    let dialled = async {
        let addrs = shared.resolver.resolve(policy, &host, port).await?;
        dial::connect(&addrs, shared.limits.connect_timeout.get()).await
    }
    .await;
    let (stream, addr) = match dialled {
        Ok(v) => v,
        Err(e) => return dial_failure(&ctx, &s, &host_text, port, e, true),
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let ip = addr.socket_addr().ip();
    let record = ctx.record(
        &s,
        Outcome {
            host: &host_text,
            port: Some(port),
            ip: Some(ip),
            rule: decision.rule.name(),
            verdict: "tunnel",
            status: StatusCode::OK,
        },
    );
    let start = s.at;
    let task_shared = shared.clone();
    let run = ctx.run.clone();
    // The tunnel outlives the HTTP connection it came from: it keeps the connection's slot.
    let permit = ctx.permit.clone();
    shared.tracker.spawn(async move {
        let _permit = permit;
        let (up, down) = match on_upgrade.await {
            Ok(upgraded) => {
                tunnel::run(
                    TokioIo::new(upgraded),
                    stream,
                    task_shared.limits.tunnel_max_lifetime.get(),
                    task_shared.limits.idle_timeout.get(),
                    &run.cancel,
                )
                .await
            }
            Err(e) => {
                tracing::debug!(error = %e, "CONNECT upgrade failed");
                (0, 0)
            }
        };
        let mut record = record;
        record.bytes_up = up;
        record.bytes_down = down;
        record.duration_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
        task_shared.metrics.add_bytes(up, down);
        run.record(up, down, None);
        task_shared.auditor.record(record);
    });
    Response::new(DownBody::empty())
}

/// Answers the CONNECT with 200, then terminates the client's TLS with the run's CA and serves
/// HTTP/1.1 on the decrypted stream, every request judged and brokered like a plain one.
fn intercept_connect(
    ctx: &Arc<ConnCtx>,
    s: &Start,
    mut req: Request<Incoming>,
    host: Host,
    port: u16,
) -> Response<DownBody> {
    let host_text = host.to_string();
    ctx.emit(
        s,
        Outcome {
            host: &host_text,
            port: Some(port),
            ip: None,
            rule: "intercept",
            verdict: "intercept",
            status: StatusCode::OK,
        },
    );
    let on_upgrade = hyper::upgrade::on(&mut req);
    let shared = ctx.shared.clone();
    let run = ctx.run.clone();
    let client = ctx.client.clone();
    let method = s.method.clone();
    // The intercepted session outlives the HTTP connection it came from: it keeps the
    // connection's slot, and so does the decrypted connection served inside it.
    let permit = ctx.permit.clone();
    shared.tracker.clone().spawn(async move {
        let upgraded = tokio::select! {
            r = on_upgrade => match r {
                Ok(u) => u,
                Err(e) => {
                    tracing::debug!(error = %e, "CONNECT upgrade failed");
                    return;
                }
            },
            () = run.cancel.cancelled() => return,
        };
        let Some(interceptor) = run.interceptor.as_ref() else {
            return;
        };
        let accepted = tokio::select! {
            r = interceptor.accept(TokioIo::new(upgraded), &host) => r,
            () = run.cancel.cancelled() => return,
        };
        let tls = match accepted {
            Ok(tls) => tls,
            Err(e) => {
                // Fail closed: a client that does not trust the run's CA (or names another
                // host in its SNI) gets nothing.
                tracing::info!(
                    run_id = run.id.as_deref().unwrap_or("default"),
                    host = %host_text,
                    error = %e,
                    "client TLS handshake refused"
                );
                let ctx = ConnCtx::new(
                    shared.clone(),
                    client,
                    run.clone(),
                    None,
                    Arc::new(Verdicts::default()),
                    None,
                );
                let s = Start {
                    ts: SystemTime::now(),
                    at: Instant::now(),
                    method,
                    scheme: "https",
                };
                ctx.emit(
                    &s,
                    Outcome {
                        host: &host_text,
                        port: Some(port),
                        ip: None,
                        rule: "client_tls_failed",
                        verdict: "error",
                        status: StatusCode::BAD_GATEWAY,
                    },
                );
                return;
            }
        };
        let verdicts = Arc::new(Verdicts::default());
        let ctx = Arc::new(ConnCtx::new(
            shared.clone(),
            client,
            run,
            Some((host, port)),
            verdicts.clone(),
            permit,
        ));
        crate::server::serve_http(ctx, tls, verdicts, None).await;
    });
    Response::new(DownBody::empty())
}
