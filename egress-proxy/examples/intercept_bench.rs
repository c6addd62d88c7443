//! Interception benchmark on loopback: the same HTTPS upstream reached directly, through a
//! pass-through CONNECT tunnel, and through an intercepted CONNECT (TLS terminated with the
//! proxy's CA, every request judged and brokered, TLS originated again upstream).
//!
//! Figures per path: new TLS connections per second (CONNECT + handshake + one request),
//! keep-alive request latency p50/p99, and streaming throughput of one large response; then
//! the ratios against the targets (interception adds ≤ 1 ms p50 to a keep-alive request and
//! keeps ≥ 0.7× the pass-through throughput). It prints PASS/MISS and never fails on a miss.
//!
//! Run: `scripts/bench-egress tls`, or `cargo run --release -p paddock-egress --example
//! intercept_bench`. Knobs: `PADDOCK_BENCH_SECS` (seconds per connection-rate phase, 3),
//! `PADDOCK_BENCH_REQS` (keep-alive requests per path, 3000), `PADDOCK_BENCH_STREAM_MB`
//! (MiB per streaming transfer, 1024). The proxy runs on its own thread with one worker, as the
//! `paddock-egress` binary does by default; the upstream and the client on their own threads.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use hickory_proto::op::{Message, MessageType, OpCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use http_body::Frame;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use paddock_egress::{Config, Proxy};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

const TUNNEL_HOST: &str = "tunnel.bench.test";
const INTERCEPT_HOST: &str = "intercept.bench.test";
const UPSTREAM_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const CHUNK: usize = 64 * 1024;

fn env_num<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// A response body of `left` bytes in 64 KiB chunks, produced as fast as it is read.
struct Stream {
    left: usize,
    chunk: Bytes,
}

impl http_body::Body for Stream {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.left == 0 {
            return Poll::Ready(None);
        }
        let n = this.left.min(this.chunk.len());
        this.left -= n;
        Poll::Ready(Some(Ok(Frame::data(this.chunk.slice(..n)))))
    }
}

type UpBody = http_body_util::Either<Full<Bytes>, Stream>;

fn serve(req: &Request<Incoming>) -> Response<UpBody> {
    let n: usize = req
        .uri()
        .query()
        .and_then(|q| q.strip_prefix("n="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    if req.uri().path() == "/stream" {
        return Response::new(http_body_util::Either::Right(Stream {
            left: n,
            chunk: Bytes::from(vec![b'x'; CHUNK]),
        }));
    }
    Response::new(http_body_util::Either::Left(Full::new(Bytes::from_static(
        b"{\"ok\":true}",
    ))))
}

/// The HTTPS upstream (certificate for both names from a CA made here) and a DNS server
/// answering every name with the upstream's address, on one current-thread runtime.
fn start_upstream() -> Result<(SocketAddr, SocketAddr, String)> {
    let mut ca = CertificateParams::default();
    ca.distinguished_name
        .push(DnType::CommonName, "bench upstream CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let ca_key = KeyPair::generate()?;
    let ca_pem = ca.self_signed(&ca_key)?.pem();
    let issuer = Issuer::new(ca, ca_key);
    let leaf_key = KeyPair::generate()?;
    let leaf = CertificateParams::new(vec![TUNNEL_HOST.to_owned(), INTERCEPT_HOST.to_owned()])?
        .signed_by(&leaf_key, &issuer)?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(vec![leaf.der().clone()], PrivateKeyDer::from(leaf_key))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                let _ = tx.send(Err(anyhow::anyhow!(e)));
                return;
            }
        };
        rt.block_on(async move {
            let bound = async {
                let l = TcpListener::bind((UPSTREAM_IP, 0)).await?;
                let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?;
                anyhow::Ok((l, udp))
            }
            .await;
            let (l, udp) = match bound {
                Ok(v) => v,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            let addrs = (l.local_addr(), udp.local_addr());
            let _ = match addrs {
                (Ok(a), Ok(d)) => tx.send(Ok((a, d))),
                _ => tx.send(Err(anyhow::anyhow!("no local address"))),
            };
            tokio::spawn(dns(udp));
            while let Ok((tcp, _)) = l.accept().await {
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                        Ok::<_, Infallible>(serve(&req))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
    });
    let (addr, dns) = rx.recv().context("upstream thread")??;
    Ok((addr, dns, ca_pem))
}

async fn dns(udp: UdpSocket) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, peer)) = udp.recv_from(&mut buf).await else {
            return;
        };
        let Ok(req) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        let Some(q) = req.queries.first().cloned() else {
            continue;
        };
        let mut resp = Message::new(req.metadata.id, MessageType::Response, OpCode::Query);
        resp.metadata.authoritative = true;
        resp.metadata.recursion_desired = req.metadata.recursion_desired;
        resp.metadata.recursion_available = true;
        resp.add_query(q.clone());
        if q.query_type() == RecordType::A {
            resp.add_answer(Record::from_rdata(
                q.name().clone(),
                300,
                RData::A(A(UPSTREAM_IP)),
            ));
        }
        if let Ok(bytes) = resp.to_vec() {
            let _ = udp.send_to(&bytes, peer).await;
        }
    }
}

/// The proxy on its own single-thread runtime; its address and its default CA (PEM).
fn start_proxy(
    upstream: SocketAddr,
    dns: SocketAddr,
    ca_pem: &str,
) -> Result<(SocketAddr, String)> {
    let dir = std::env::temp_dir().join(format!("paddock-intercept-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let bundle = dir.join("upstream-ca.pem");
    std::fs::write(&bundle, ca_pem)?;
    let toml = format!(
        r#"listen = "127.0.0.1:0"
[resolver]
nameservers = ["{dns}"]
[policy]
tunnel_hosts = ["{TUNNEL_HOST}"]
tunnel_ports = [{port}]
allowed_ports = [{port}]
allow_ranges = ["{UPSTREAM_IP}/32"]
[audit]
path = {audit:?}
[tls]
extra_ca_bundle = {bundle:?}
[limits]
max_request_body = 1073741824
"#,
        port = upstream.port(),
        audit = dir.join("audit.jsonl").display().to_string(),
        bundle = bundle.display().to_string(),
    );
    let cfg = Config::from_toml(&toml)?.validate()?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                let _ = tx.send(Err(anyhow::anyhow!(e)));
                return;
            }
        };
        rt.block_on(async move {
            match Proxy::start(cfg).await {
                Ok(h) => {
                    let out = match (h.local_addr(), h.default_ca_pem()) {
                        (Some(a), Some(pem)) => Ok((a, pem.to_owned())),
                        _ => Err(anyhow::anyhow!("the proxy has no listener or CA")),
                    };
                    let _ = tx.send(out);
                    std::future::pending::<()>().await;
                }
                Err(e) => {
                    let _ = tx.send(Err(anyhow::anyhow!(e)));
                }
            }
        });
    });
    rx.recv().context("proxy thread")?
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Path {
    Direct,
    Tunnel,
    Intercept,
}

impl Path {
    fn name(self) -> &'static str {
        match self {
            Path::Direct => "direct",
            Path::Tunnel => "tunnel",
            Path::Intercept => "intercept",
        }
    }
    fn host(self) -> &'static str {
        match self {
            Path::Intercept => INTERCEPT_HOST,
            _ => TUNNEL_HOST,
        }
    }
}

struct Target {
    upstream: SocketAddr,
    proxy: SocketAddr,
    upstream_tls: Arc<rustls::ClientConfig>,
    proxy_tls: Arc<rustls::ClientConfig>,
}

fn client_config(pem: &str) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        roots.add(cert?)?;
    }
    let mut c = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(c))
}

async fn connect_through<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    authority: &str,
) -> Result<()> {
    s.write_all(format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n").as_bytes())
        .await?;
    let mut head = Vec::with_capacity(128);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).await? == 0 {
            bail!("the proxy closed the CONNECT");
        }
        head.push(byte[0]);
    }
    if !head.starts_with(b"HTTP/1.1 200") {
        bail!("CONNECT refused: {}", String::from_utf8_lossy(&head));
    }
    Ok(())
}

/// A new TLS connection to the upstream over `path`, ready for HTTP/1.1 requests.
async fn open(t: &Target, path: Path) -> Result<SendRequest<Empty<Bytes>>> {
    let authority = format!("{}:{}", path.host(), t.upstream.port());
    let (mut tcp, tls) = match path {
        Path::Direct => (TcpStream::connect(t.upstream).await?, &t.upstream_tls),
        Path::Tunnel => (TcpStream::connect(t.proxy).await?, &t.upstream_tls),
        Path::Intercept => (TcpStream::connect(t.proxy).await?, &t.proxy_tls),
    };
    tcp.set_nodelay(true)?;
    if path != Path::Direct {
        connect_through(&mut tcp, &authority).await?;
    }
    let stream = tokio_rustls::TlsConnector::from(Arc::clone(tls))
        .connect(ServerName::try_from(path.host().to_owned())?, tcp)
        .await?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

async fn get(
    s: &mut SendRequest<Empty<Bytes>>,
    path: Path,
    port: u16,
    target: &str,
) -> Result<usize> {
    s.ready().await?;
    let req = Request::builder()
        .uri(target)
        .header("host", format!("{}:{port}", path.host()))
        .body(Empty::new())?;
    let resp = s.send_request(req).await?;
    if !resp.status().is_success() {
        bail!("{} answered {}", path.name(), resp.status());
    }
    let mut body = resp.into_body();
    let mut n = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(d) = frame?.into_data() {
            n += d.len();
        }
    }
    Ok(n)
}

struct Figures {
    conns_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    mib_per_sec: f64,
}

async fn measure(
    t: &Target,
    path: Path,
    secs: u64,
    reqs: usize,
    stream_mib: usize,
) -> Result<Figures> {
    let port = t.upstream.port();
    // New connections: 4 clients in parallel, each open + one request + close.
    let until = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let t = Target {
            upstream: t.upstream,
            proxy: t.proxy,
            upstream_tls: Arc::clone(&t.upstream_tls),
            proxy_tls: Arc::clone(&t.proxy_tls),
        };
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < until {
                let mut s = open(&t, path).await?;
                get(&mut s, path, port, "/small").await?;
                n += 1;
            }
            anyhow::Ok(n)
        }));
    }
    let start = Instant::now();
    let mut total = 0u64;
    for task in tasks {
        total += task.await??;
    }
    let conns_per_sec = total as f64 / start.elapsed().as_secs_f64();

    // Keep-alive latency on one connection.
    let mut s = open(t, path).await?;
    for _ in 0..100 {
        get(&mut s, path, port, "/small").await?;
    }
    let mut lat = Vec::with_capacity(reqs);
    for _ in 0..reqs {
        let at = Instant::now();
        get(&mut s, path, port, "/small").await?;
        lat.push(at.elapsed());
    }
    lat.sort();
    // Percentile in per-mille: index (len - 1) * q / 1000.
    let pick = |per_mille: usize| {
        let i = lat.len().saturating_sub(1) * per_mille / 1000;
        lat.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };

    // Streaming throughput: one large response on the kept-alive connection.
    let bytes = stream_mib * 1024 * 1024;
    let at = Instant::now();
    let got = get(&mut s, path, port, &format!("/stream?n={bytes}")).await?;
    let secs_taken = at.elapsed().as_secs_f64();
    if got != bytes {
        bail!("{}: streamed {got} of {bytes} bytes", path.name());
    }
    Ok(Figures {
        conns_per_sec,
        p50_ms: pick(500),
        p99_ms: pick(990),
        mib_per_sec: stream_mib as f64 / secs_taken,
    })
}

fn main() -> Result<()> {
    let secs: u64 = env_num("PADDOCK_BENCH_SECS", 3);
    let reqs: usize = env_num("PADDOCK_BENCH_REQS", 3000);
    let stream_mib: usize = env_num("PADDOCK_BENCH_STREAM_MB", 1024);
    let (upstream, dns, ca_pem) = start_upstream()?;
    let (proxy, proxy_ca) = start_proxy(upstream, dns, &ca_pem)?;
    let target = Target {
        upstream,
        proxy,
        upstream_tls: client_config(&ca_pem)?,
        proxy_tls: client_config(&proxy_ca)?,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        println!(
            "interception bench on loopback: {secs}s per connection phase, {reqs} keep-alive requests, {stream_mib} MiB streamed"
        );
        println!(
            "{:<10} {:>12} {:>10} {:>10} {:>12}",
            "path", "new conns/s", "p50 ms", "p99 ms", "stream MiB/s"
        );
        let mut rows = Vec::new();
        for path in [Path::Direct, Path::Tunnel, Path::Intercept] {
            let f = measure(&target, path, secs, reqs, stream_mib).await?;
            println!(
                "{:<10} {:>12.0} {:>10.3} {:>10.3} {:>12.0}",
                path.name(),
                f.conns_per_sec,
                f.p50_ms,
                f.p99_ms,
                f.mib_per_sec
            );
            rows.push(f);
        }
        let [direct, tunnel, intercept] = rows.as_slice() else {
            bail!("missing rows");
        };
        let added = intercept.p50_ms - tunnel.p50_ms;
        let thr = intercept.mib_per_sec / tunnel.mib_per_sec;
        println!(
            "ratios: new conns intercept/tunnel {:.2}, tunnel/direct {:.2}; stream intercept/tunnel {:.2}, tunnel/direct {:.2}",
            intercept.conns_per_sec / tunnel.conns_per_sec,
            tunnel.conns_per_sec / direct.conns_per_sec,
            thr,
            tunnel.mib_per_sec / direct.mib_per_sec
        );
        let verdict = |ok: bool| if ok { "PASS" } else { "MISS" };
        println!(
            "target: interception adds <= 1 ms p50 to a keep-alive request: +{added:.3} ms {}",
            verdict(added <= 1.0)
        );
        println!(
            "target: interception keeps >= 0.7x the pass-through throughput: {thr:.2}x {}",
            verdict(thr >= 0.7)
        );
        anyhow::Ok(())
    })?;
    // The upstream and proxy threads end with the process.
    Ok(())
}
