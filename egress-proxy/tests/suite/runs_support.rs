//! Fixtures for per-run tests: an HTTPS upstream of our own (test CA, loopback) that records
//! what it receives, the proxy with a control socket, a control client, and a client that
//! goes through a run's socket with CONNECT + TLS trusting a given CA.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use paddock_egress::{Config, Proxy, ProxyHandle};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixStream};
use tokio::sync::{Notify, mpsc};

use super::support::{Dns, Seen, Upstream};

/// Names the HTTPS upstream holds a certificate for (all resolve to 127.0.0.2).
pub const TLS_NAMES: [&str; 4] = [
    "api.anthropic.test",
    "api.openai.test",
    "other.test",
    "registry.npmjs.test",
];

/// A body fed from a channel: each message is one chunk, sent as soon as it is queued.
pub struct ChannelBody(pub mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.get_mut()
            .0
            .poll_recv(cx)
            .map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

type UpBody = http_body_util::Either<Full<Bytes>, ChannelBody>;

/// A loopback HTTPS server with a certificate from a CA made here.
/// Paths: `/echo-headers` echoes the request headers in the body and `x-api-key` /
/// `authorization` in response headers; `/v1/messages` answers Anthropic usage (SSE with
/// `?stream=1`); `/v1/chat/completions` answers OpenAI usage (SSE with `?stream=1`);
/// `/gated` sends one event, then the rest only after [`HttpsUp::release`]; `/big?n=N` answers
/// N bytes of JSON without any usage; `/v1/no-usage` answers a stream without any usage event;
/// anything else `ok`.
#[derive(Clone)]
pub struct HttpsUp {
    pub addr: SocketAddr,
    pub ca_pem: String,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub connections: Arc<AtomicUsize>,
    pub release: Arc<Notify>,
}

pub fn test_ca(name: &str) -> (Issuer<'static, KeyPair>, String) {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let key = KeyPair::generate().unwrap();
    let pem = params.self_signed(&key).unwrap().pem();
    (Issuer::new(params, key), pem)
}

impl HttpsUp {
    pub async fn start(ip: &str) -> HttpsUp {
        let (issuer, ca_pem) = test_ca("Paddock test upstream CA");
        let leaf_key = KeyPair::generate().unwrap();
        let names: Vec<String> = TLS_NAMES.iter().map(|s| (*s).to_owned()).collect();
        let leaf = CertificateParams::new(names)
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], PrivateKeyDer::from(leaf_key))
        .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let l = TcpListener::bind((ip.parse::<IpAddr>().unwrap(), 0))
            .await
            .unwrap();
        let up = HttpsUp {
            addr: l.local_addr().unwrap(),
            ca_pem,
            seen: Arc::new(Mutex::new(Vec::new())),
            connections: Arc::new(AtomicUsize::new(0)),
            release: Arc::new(Notify::new()),
        };
        let u = up.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = l.accept().await {
                u.connections.fetch_add(1, Ordering::SeqCst);
                let (u, acceptor) = (u.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = hyper::service::service_fn(move |req| {
                        let u = u.clone();
                        async move { Ok::<_, Infallible>(u.serve(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        up
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Every byte the upstream received (heads and bodies), as text.
    pub fn all_seen_text(&self) -> String {
        let mut out = String::new();
        for s in self.seen() {
            out.push_str(&format!("{} {}\n", s.method, s.uri));
            for (k, v) in &s.headers {
                out.push_str(&format!("{k}: {v}\n"));
            }
            out.push_str(&String::from_utf8_lossy(&s.body));
            out.push('\n');
        }
        out
    }

    async fn serve(&self, req: Request<Incoming>) -> Response<UpBody> {
        let (parts, mut incoming) = req.into_parts();
        // Frame by frame, so a body the proxy cuts short is still recorded as far as it came.
        let mut body = Vec::new();
        while let Some(Ok(frame)) = incoming.frame().await {
            if let Some(data) = frame.data_ref() {
                body.extend_from_slice(data);
            }
        }
        let headers: Vec<(String, String)> = parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        self.seen.lock().unwrap().push(Seen {
            method: parts.method.to_string(),
            uri: parts.uri.to_string(),
            headers: headers.clone(),
            body,
        });
        let full = |b: String| http_body_util::Either::Left(Full::new(Bytes::from(b)));
        let stream = parts.uri.query() == Some("stream=1");
        match parts.uri.path() {
            "/echo-headers" => {
                let mut r = Response::builder();
                for name in ["x-api-key", "authorization"] {
                    if let Some(v) = parts.headers.get(name) {
                        r = r.header(format!("x-echo-{name}"), v.clone());
                    }
                }
                let text: String = headers.iter().map(|(k, v)| format!("{k}: {v}\n")).collect();
                r.body(full(text)).unwrap()
            }
            "/v1/messages" if stream => sse(&[
                r#"event: message_start
data: {"type":"message_start","message":{"id":"m","usage":{"input_tokens":120,"output_tokens":1}}}"#,
                r#"event: content_block_delta
data: {"type":"content_block_delta","delta":{"text":"hi"}}"#,
                r#"event: message_delta
data: {"type":"message_delta","usage":{"output_tokens":80}}"#,
                r#"event: message_stop
data: {"type":"message_stop"}"#,
            ]),
            "/v1/messages" => Response::builder()
                .header("content-type", "application/json")
                .body(full(
                    r#"{"id":"m","type":"message","usage":{"input_tokens":100,"output_tokens":50}}"#
                        .into(),
                ))
                .unwrap(),
            "/v1/chat/completions" if stream => sse(&[
                r#"data: {"id":"c","object":"chat.completion.chunk","choices":[{"delta":{"content":"hi"}}]}"#,
                r#"data: {"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":90,"completion_tokens":60,"total_tokens":150}}"#,
                "data: [DONE]",
            ]),
            "/v1/chat/completions" => Response::builder()
                .header("content-type", "application/json")
                .body(full(
                    r#"{"id":"c","object":"chat.completion","usage":{"prompt_tokens":70,"completion_tokens":40,"total_tokens":110}}"#
                        .into(),
                ))
                .unwrap(),
            "/big" => {
                let n: usize = parts
                    .uri
                    .query()
                    .and_then(|q| q.strip_prefix("n="))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                let pad = "x".repeat(n.saturating_sub(10));
                Response::builder()
                    .header("content-type", "application/json")
                    .body(full(format!(r#"{{"pad":"{pad}"}}"#)))
                    .unwrap()
            }
            "/v1/no-usage" => sse(&[
                r#"event: content_block_delta
data: {"type":"content_block_delta","delta":{"text":"hi"}}"#,
            ]),
            "/gated" => {
                let (tx, rx) = mpsc::channel(4);
                let release = self.release.clone();
                tokio::spawn(async move {
                    let _ = tx.send(Bytes::from_static(b"data: first\n\n")).await;
                    release.notified().await;
                    let _ = tx.send(Bytes::from_static(b"data: last\n\n")).await;
                });
                Response::builder()
                    .header("content-type", "text/event-stream")
                    .body(http_body_util::Either::Right(ChannelBody(rx)))
                    .unwrap()
            }
            p => {
                let text = format!("ok {} {p}", parts.method);
                Response::new(full(text))
            }
        }
    }
}

fn sse(events: &[&str]) -> Response<UpBody> {
    let text: String = events.iter().map(|e| format!("{e}\n\n")).collect();
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(http_body_util::Either::Left(Full::new(Bytes::from(text))))
        .unwrap()
}

/// The proxy with a control socket, an HTTPS upstream, a plain upstream and a DNS server.
pub struct RunEnv {
    pub _dns: Dns,
    pub https: HttpsUp,
    pub plain: Upstream,
    pub proxy: Option<ProxyHandle>,
    pub control: PathBuf,
    pub runs: PathBuf,
    pub audit: PathBuf,
    pub _dir: tempfile::TempDir,
}

impl RunEnv {
    pub async fn start() -> RunEnv {
        RunEnv::start_with_limits("").await
    }

    /// With extra `[limits]` lines.
    pub async fn start_with_limits(limits: &str) -> RunEnv {
        let dns = Dns::start().await;
        for name in TLS_NAMES.iter().chain(["plain.test"].iter()) {
            dns.set(name, &["127.0.0.2"]);
        }
        let https = HttpsUp::start("127.0.0.2").await;
        let plain = Upstream::start("127.0.0.2").await;
        let dir = tempfile::tempdir().unwrap();
        let audit = dir.path().join("audit.jsonl");
        let bundle = dir.path().join("upstream-ca.pem");
        std::fs::write(&bundle, &https.ca_pem).unwrap();
        let control = dir.path().join("ctl").join("control.sock");
        std::fs::create_dir(dir.path().join("ctl")).unwrap();
        let runs = dir.path().join("sock");
        let toml = format!(
            r#"listen = "127.0.0.1:0"
[resolver]
nameservers = ["{dns}"]
timeout = "2s"
[policy]
approved_write_hosts = ["api.anthropic.test"]
allowed_ports = [80, 443, {tls}, {plain}]
allow_ranges = ["127.0.0.2/32"]
[audit]
path = {audit:?}
[tls]
extra_ca_bundle = {bundle:?}
[control]
unix = {control:?}
runs_dir = {runs:?}
[limits]
{limits}
"#,
            dns = dns.addr,
            tls = https.port(),
            plain = plain.port(),
            audit = audit.display().to_string(),
            bundle = bundle.display().to_string(),
            control = control.display().to_string(),
            runs = runs.display().to_string(),
        );
        let cfg = Config::from_toml(&toml).unwrap().validate().unwrap();
        let proxy = Proxy::start(cfg).await.unwrap();
        RunEnv {
            _dns: dns,
            https,
            plain,
            proxy: Some(proxy),
            control,
            runs,
            audit,
            _dir: dir,
        }
    }

    /// The standard run policy: writes to api.anthropic.test, tunnels to registry.npmjs.test.
    pub fn policy(&self) -> serde_json::Value {
        serde_json::json!({
            "approved_write_hosts": ["api.anthropic.test"],
            "tunnel_hosts": ["registry.npmjs.test"],
            "tunnel_ports": [self.https.port()],
            "allowed_ports": [80, 443, self.https.port(), self.plain.port()],
            "allow_ranges": ["127.0.0.2/32"],
        })
    }

    /// One control request; the response line as JSON.
    pub async fn control(&self, line: &str) -> serde_json::Value {
        control_line(&self.control, line).await
    }

    /// Registers `run` with the given register body fields (merged over the defaults).
    pub async fn register(&self, run: &str, fields: serde_json::Value) -> Registered {
        let mut op = serde_json::json!({
            "kind": "register",
            "run": run,
            "policy": self.policy(),
            "ttl_secs": 3600,
        });
        for (k, v) in fields.as_object().unwrap() {
            op[k] = v.clone();
        }
        let req = serde_json::json!({"version": 1, "op": op});
        let resp = self.control(&req.to_string()).await;
        assert_eq!(resp["status"], "registered", "{resp}");
        let handles = resp["handles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h["name"].as_str().unwrap().to_owned(),
                    h["handle"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        Registered {
            socket: self.runs.join(resp["socket"].as_str().unwrap()),
            ca_pem: resp["ca_pem"].as_str().unwrap().to_owned(),
            handles,
        }
    }

    pub fn audit_text(&self) -> String {
        std::fs::read_to_string(&self.audit).unwrap_or_default()
    }

    pub async fn stop(mut self) {
        if let Some(p) = self.proxy.take() {
            p.shutdown(Duration::from_secs(2)).await;
        }
    }
}

/// A registered run as the test sees it.
pub struct Registered {
    pub socket: PathBuf,
    pub ca_pem: String,
    pub handles: Vec<(String, String)>,
}

impl Registered {
    pub fn handle(&self, name: &str) -> String {
        self.handles
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, h)| h.clone())
            .unwrap()
    }
}

pub async fn control_line(path: &Path, line: &str) -> serde_json::Value {
    let mut s = UnixStream::connect(path).await.unwrap();
    s.write_all(line.as_bytes()).await.unwrap();
    s.write_all(b"\n").await.unwrap();
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    while s.read(&mut byte).await.unwrap() == 1 {
        if byte[0] == b'\n' {
            break;
        }
        out.push(byte[0]);
    }
    serde_json::from_slice(&out).unwrap()
}

/// Sends a CONNECT on `io` and reads the response head; the status.
pub async fn connect_on<S: AsyncRead + AsyncWrite + Unpin>(io: &mut S, authority: &str) -> u16 {
    io.write_all(format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if io.read(&mut byte).await.unwrap() == 0 {
            break;
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

pub fn client_config(ca_pem: &str) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut c = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    c
}

/// CONNECT through the run socket, then TLS trusting `ca_pem`: the raw stream.
pub async fn intercepted_tls(
    socket: &Path,
    host: &str,
    port: u16,
    ca_pem: &str,
) -> anyhow::Result<tokio_rustls::client::TlsStream<UnixStream>> {
    let mut s = UnixStream::connect(socket).await?;
    let status = connect_on(&mut s, &format!("{host}:{port}")).await;
    anyhow::ensure!(status == 200, "CONNECT answered {status}");
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(ca_pem)));
    Ok(connector
        .connect(ServerName::try_from(host.to_owned())?, s)
        .await?)
}

/// CONNECT through the run socket, TLS trusting `ca_pem`, HTTP/1.1 on top.
pub async fn intercepted(
    socket: &Path,
    host: &str,
    port: u16,
    ca_pem: &str,
) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let tls = intercepted_tls(socket, host, port, ca_pem).await?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// A response, read whole.
#[derive(Debug)]
pub struct Got {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Got {
    pub fn rule(&self) -> String {
        serde_json::from_str::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v["rule"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }
    pub fn all_text(&self) -> String {
        let mut out = String::new();
        for (k, v) in &self.headers {
            out.push_str(&format!("{k}: {v}\n"));
        }
        out.push_str(&self.body);
        out
    }
}

/// One request on an open connection; `host` goes into the Host header.
pub async fn request(
    sender: &mut SendRequest<Full<Bytes>>,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Got {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("host", host);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(Full::new(Bytes::from(body.to_owned()))).unwrap();
    sender.ready().await.unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Got {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}
