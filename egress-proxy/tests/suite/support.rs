//! Test fixtures: a DNS server of our own, loopback upstream servers, the proxy in-process,
//! and a raw HTTP/1.1 client.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use paddock_egress::{Config, Proxy, ProxyHandle};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

// ---------------------------------------------------------------- DNS

/// name → (answer sets, A queries so far).
type Zone = HashMap<String, (Vec<Vec<IpAddr>>, usize)>;

/// A tiny authoritative DNS server on 127.0.0.1 (UDP and TCP, same port). Each name has a
/// sequence of answer sets; every A query advances it (the last set repeats), so a name can
/// answer public first and private next (rebinding). TTL is 0: no caching.
#[derive(Clone)]
pub struct Dns {
    pub addr: SocketAddr,
    zone: Arc<Mutex<Zone>>,
    pub queries: Arc<AtomicUsize>,
}

impl Dns {
    pub async fn start() -> Dns {
        // UDP and TCP on the same port: retry until a port is free for both.
        let mut attempt = 0;
        let (udp, tcp, addr) = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let addr = udp.local_addr().unwrap();
            match TcpListener::bind(addr).await {
                Ok(tcp) => break (udp, tcp, addr),
                Err(e) => {
                    attempt += 1;
                    assert!(attempt < 100, "no port free for UDP and TCP: {e}");
                }
            }
        };
        let dns = Dns {
            addr,
            zone: Arc::new(Mutex::new(HashMap::new())),
            queries: Arc::new(AtomicUsize::new(0)),
        };
        let d = dns.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, peer)) = udp.recv_from(&mut buf).await else {
                    return;
                };
                if let Some(resp) = d.answer(&buf[..n]) {
                    let _ = udp.send_to(&resp, peer).await;
                }
            }
        });
        let d = dns.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = tcp.accept().await else {
                    return;
                };
                let d = d.clone();
                tokio::spawn(async move {
                    loop {
                        let mut len = [0u8; 2];
                        if s.read_exact(&mut len).await.is_err() {
                            return;
                        }
                        let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
                        if s.read_exact(&mut msg).await.is_err() {
                            return;
                        }
                        let Some(resp) = d.answer(&msg) else { return };
                        let l = u16::try_from(resp.len()).unwrap().to_be_bytes();
                        if s.write_all(&l).await.is_err() || s.write_all(&resp).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        dns
    }

    /// `name` answers `ips` every time.
    pub fn set(&self, name: &str, ips: &[&str]) {
        self.set_seq(name, &[ips]);
    }

    /// `name` answers each set in turn, then keeps answering the last.
    pub fn set_seq(&self, name: &str, seq: &[&[&str]]) {
        let seq = seq
            .iter()
            .map(|s| s.iter().map(|ip| ip.parse().unwrap()).collect())
            .collect();
        self.zone.lock().unwrap().insert(name.to_owned(), (seq, 0));
    }

    fn answer(&self, raw: &[u8]) -> Option<Vec<u8>> {
        let req = Message::from_vec(raw).ok()?;
        self.queries.fetch_add(1, Ordering::SeqCst);
        let q = req.queries.first()?.clone();
        let mut resp = Message::new(req.metadata.id, MessageType::Response, OpCode::Query);
        resp.metadata.authoritative = true;
        resp.metadata.recursion_desired = req.metadata.recursion_desired;
        resp.metadata.recursion_available = true;
        resp.add_query(q.clone());
        let name = q
            .name()
            .to_ascii()
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let mut zone = self.zone.lock().unwrap();
        match zone.get_mut(&name) {
            None => resp.metadata.response_code = ResponseCode::NXDomain,
            Some((seq, pos)) => {
                let set = seq[(*pos).min(seq.len() - 1)].clone();
                if q.query_type() == RecordType::A {
                    *pos += 1;
                }
                for ip in set {
                    let rdata = match (ip, q.query_type()) {
                        (IpAddr::V4(v4), RecordType::A) => RData::A(A(v4)),
                        (IpAddr::V6(v6), RecordType::AAAA) => RData::AAAA(AAAA(v6)),
                        _ => continue,
                    };
                    resp.add_answer(Record::from_rdata(q.name().clone(), 0, rdata));
                }
            }
        }
        resp.to_vec().ok()
    }
}

// ---------------------------------------------------------------- upstreams

/// What an upstream server saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub uri: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A loopback HTTP/1.1 server that records connections and requests.
/// Paths: `/` hello, `/echo` echoes the body, `/redirect` 302 to a private name,
/// `/slow` answers after 3 s, `/big?n=N` streams N bytes, `/hop` answers with hop-by-hop
/// headers, `/stall` sends its head and one chunk then nothing for 10 s, `/trickle` sends 8
/// chunks 200 ms apart.
#[derive(Clone)]
pub struct Upstream {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
    pub requests: Arc<Mutex<Vec<Seen>>>,
}

impl Upstream {
    pub async fn start(ip: &str) -> Upstream {
        Upstream::start_at(ip, 0).await
    }

    pub async fn start_at(ip: &str, port: u16) -> Upstream {
        let l = TcpListener::bind((ip.parse::<IpAddr>().unwrap(), port))
            .await
            .unwrap();
        let up = Upstream {
            addr: l.local_addr().unwrap(),
            connections: Arc::new(AtomicUsize::new(0)),
            requests: Arc::new(Mutex::new(Vec::new())),
        };
        let u = up.clone();
        tokio::spawn(async move {
            loop {
                let Ok((s, _)) = l.accept().await else { return };
                u.connections.fetch_add(1, Ordering::SeqCst);
                let u = u.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let u = u.clone();
                        async move { Ok::<_, Infallible>(u.serve(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(s), svc)
                        .await;
                });
            }
        });
        up
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.requests.lock().unwrap().clone()
    }

    async fn serve(
        &self,
        req: Request<Incoming>,
    ) -> Response<http_body_util::combinators::BoxBody<Bytes, Infallible>> {
        let (parts, body) = req.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes().to_vec())
            .unwrap_or_default();
        self.requests.lock().unwrap().push(Seen {
            method: parts.method.to_string(),
            uri: parts.uri.to_string(),
            headers: parts
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: body.clone(),
        });
        let full = |b: Vec<u8>| Full::new(Bytes::from(b)).boxed();
        let path = parts.uri.path();
        match path {
            "/echo" => Response::new(full(body)),
            "/redirect" => Response::builder()
                .status(302)
                .header("location", "http://private.test/")
                .body(full(Vec::new()))
                .unwrap(),
            "/slow" => {
                tokio::time::sleep(Duration::from_secs(3)).await;
                Response::new(full(b"slow".to_vec()))
            }
            "/big" => {
                let n: usize = parts
                    .uri
                    .query()
                    .and_then(|q| q.strip_prefix("n="))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                Response::new(full(vec![b'x'; n]))
            }
            "/stall" | "/trickle" => {
                let (tx, rx) = tokio::sync::mpsc::channel(8);
                let stall = path == "/stall";
                tokio::spawn(async move {
                    if stall {
                        let _ = tx.send(Bytes::from_static(b"first;")).await;
                        tokio::time::sleep(Duration::from_secs(10)).await;
                        let _ = tx.send(Bytes::from_static(b"late;")).await;
                        return;
                    }
                    for i in 0..8 {
                        let _ = tx.send(Bytes::from(format!("tick{i};"))).await;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                });
                Response::builder()
                    .header("content-type", "text/event-stream")
                    .body(super::runs_support::ChannelBody(rx).boxed())
                    .unwrap()
            }
            "/hop" => Response::builder()
                .header("connection", "x-secret-hop")
                .header("x-secret-hop", "1")
                .header("proxy-authenticate", "Basic realm=x")
                .header("keep-alive", "timeout=5")
                .header("x-end-to-end", "kept")
                .body(full(b"hop".to_vec()))
                .unwrap(),
            _ => Response::new(full(b"hello".to_vec())),
        }
    }
}

/// A listener whose accept queue is full: connects to it hang (a black hole on loopback).
pub struct BlackHole {
    pub addr: SocketAddr,
    _listener: std::net::TcpListener,
    _fillers: Vec<std::net::TcpStream>,
}

impl BlackHole {
    pub fn start(ip: &str) -> BlackHole {
        let sock =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        let addr: SocketAddr = format!("{ip}:0").parse().unwrap();
        sock.bind(&addr.into()).unwrap();
        sock.listen(0).unwrap();
        let listener: std::net::TcpListener = sock.into();
        let addr = listener.local_addr().unwrap();
        let mut fillers = Vec::new();
        // Fill the accept queue (and the SYN queue behind it) without ever accepting.
        for _ in 0..4 {
            let s =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            s.set_nonblocking(true).unwrap();
            let _ = s.connect(&addr.into());
            fillers.push(s.into());
        }
        std::thread::sleep(Duration::from_millis(100));
        BlackHole {
            addr,
            _listener: listener,
            _fillers: fillers,
        }
    }
}

// ---------------------------------------------------------------- the proxy

/// Names the test DNS server answers.
pub fn standard_zone(dns: &Dns) {
    dns.set("public.test", &["127.0.0.2"]);
    dns.set("api.github.test", &["127.0.0.2"]);
    dns.set("x.anthropic.test", &["127.0.0.2"]);
    dns.set("registry.npmjs.test", &["127.0.0.2"]);
    dns.set("private.test", &["127.0.0.1"]);
    dns.set("mixed.test", &["127.0.0.2", "127.0.0.1"]);
    dns.set("metadata.test", &["169.254.169.254"]);
    dns.set("v6loop.test", &["127.0.0.2", "::1"]);
    dns.set_seq("rebind.test", &[&["127.0.0.2"], &["127.0.0.1"]]);
}

/// One proxy with its DNS server, upstreams and audit file.
pub struct Env {
    pub dns: Dns,
    /// Public stand-in (127.0.0.2, in allow_ranges, port allowed).
    pub up: Upstream,
    /// Private target (127.0.0.1, not in allow_ranges, port allowed): must never be reached.
    pub private: Upstream,
    /// Public stand-in on a port that is not allowed: must never be reached.
    pub other_port: Upstream,
    pub blackhole: BlackHole,
    pub proxy: Option<ProxyHandle>,
    pub addr: SocketAddr,
    pub audit: PathBuf,
    pub _dir: tempfile::TempDir,
}

#[derive(Default)]
pub struct Opts {
    pub limits: String,
    /// More TOML tables, appended at the end.
    pub extra: String,
    pub unix: bool,
    pub admin: bool,
}

impl Env {
    pub async fn start() -> Env {
        Env::start_with(Opts::default()).await
    }

    pub async fn start_with(opts: Opts) -> Env {
        let dns = Dns::start().await;
        standard_zone(&dns);
        let up = Upstream::start("127.0.0.2").await;
        let private = Upstream::start("127.0.0.1").await;
        let other_port = Upstream::start("127.0.0.2").await;
        let blackhole = BlackHole::start("127.0.0.2");
        let dir = tempfile::tempdir().unwrap();
        let audit = dir.path().join("audit.jsonl");
        let unix = if opts.unix {
            format!(
                "listen_unix = {:?}\n",
                dir.path().join("egress.sock").display().to_string()
            )
        } else {
            String::new()
        };
        let admin = if opts.admin {
            "admin_listen = \"127.0.0.1:0\"\n"
        } else {
            ""
        };
        let toml = format!(
            r#"listen = "127.0.0.1:0"
{unix}{admin}
[resolver]
nameservers = ["{dns}"]
timeout = "2s"
[policy]
approved_write_hosts = ["api.github.test", "*.anthropic.test"]
tunnel_hosts = ["registry.npmjs.test"]
tunnel_ports = [{up}]
allowed_ports = [80, 443, {up}, {private}, {bh}]
allow_ranges = ["127.0.0.2/32"]
[audit]
path = {audit:?}
[limits]
{limits}
{extra}
"#,
            dns = dns.addr,
            up = up.port(),
            private = private.port(),
            bh = blackhole.addr.port(),
            audit = audit.display().to_string(),
            limits = opts.limits,
            extra = opts.extra,
        );
        let cfg = Config::from_toml(&toml).unwrap().validate().unwrap();
        let proxy = Proxy::start(cfg).await.unwrap();
        let addr = proxy.local_addr().unwrap();
        Env {
            dns,
            up,
            private,
            other_port,
            blackhole,
            proxy: Some(proxy),
            addr,
            audit,
            _dir: dir,
        }
    }

    pub fn handle(&self) -> &ProxyHandle {
        self.proxy.as_ref().unwrap()
    }

    /// One request on a fresh connection (`Connection: close` is added).
    pub async fn get(&self, url: &str) -> Resp {
        self.send(&format!("GET {url} HTTP/1.1\r\nConnection: close\r\n\r\n"))
            .await
    }

    /// Raw bytes on a fresh connection; reads until the proxy closes.
    pub async fn send(&self, raw: &str) -> Resp {
        let mut s = TcpStream::connect(self.addr).await.unwrap();
        exchange(&mut s, raw.as_bytes()).await
    }

    /// Audit lines written so far (waits up to 2 s for at least `n`).
    pub async fn audit_lines(&self, n: usize) -> Vec<serde_json::Value> {
        for _ in 0..100 {
            let text = std::fs::read_to_string(&self.audit).unwrap_or_default();
            let lines: Vec<serde_json::Value> = text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            if lines.len() >= n {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("fewer than {n} audit lines");
    }

    pub async fn stop(mut self) {
        if let Some(p) = self.proxy.take() {
            p.shutdown(Duration::from_secs(2)).await;
        }
    }
}

/// A parsed response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Everything read, raw.
    pub raw: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&self.raw)))
    }
    pub fn rule(&self) -> String {
        self.json()["rule"].as_str().unwrap_or("").to_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Writes `raw`, reads until EOF (10 s at most), parses the first response.
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, raw: &[u8]) -> Resp {
    s.write_all(raw).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    parse_response(&buf)
}

/// Parses one response from bytes (Content-Length, chunked, or to the end).
pub fn parse_response(buf: &[u8]) -> Resp {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut r = httparse::Response::new(&mut headers);
    let Ok(httparse::Status::Complete(n)) = r.parse(buf) else {
        return Resp {
            status: 0,
            headers: Vec::new(),
            body: Vec::new(),
            raw: buf.to_vec(),
        };
    };
    let hs: Vec<(String, String)> = r
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let rest = &buf[n..];
    let get = |k: &str| hs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let body = if let Some(cl) = get("content-length") {
        let cl: usize = cl.parse().unwrap();
        rest[..cl.min(rest.len())].to_vec()
    } else if get("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    Resp {
        status: r.code.unwrap_or(0),
        headers: hs,
        body,
        raw: buf.to_vec(),
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(i) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(
            std::str::from_utf8(&b[..i])
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .trim(),
            16,
        )
        .unwrap();
        b = &b[i + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}
