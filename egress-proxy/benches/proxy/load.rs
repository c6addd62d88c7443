//! The load generator: hyper client connections, absolute-form to a proxy, origin-form direct.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// One small request may take at most this long; a stalled subject cannot hang the bench.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The same bound for one large transfer.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(120);

/// Where requests go and how they are spelled.
#[derive(Clone, Debug)]
pub struct Target {
    /// The address the TCP connection goes to: the proxy, or the upstream itself.
    pub connect: SocketAddr,
    /// The upstream, named in the Host header (and in the request line through a proxy).
    pub upstream: SocketAddr,
    /// Absolute-form request line (through a proxy) or origin-form (direct).
    pub absolute: bool,
}

impl Target {
    fn request(&self, path: &str) -> anyhow::Result<Request<Empty<Bytes>>> {
        let uri = if self.absolute {
            format!("http://{}{path}", self.upstream)
        } else {
            path.to_owned()
        };
        Request::get(uri)
            .header(hyper::header::HOST, self.upstream.to_string())
            .body(Empty::new())
            .context("build request")
    }
}

/// What a load phase measured.
#[derive(Debug, Default)]
pub struct LoadResult {
    pub ok: u64,
    pub errors: u64,
    pub elapsed: Duration,
    /// TCP connections opened (more than the concurrency when the subject closes them).
    pub connects: u64,
    /// Requests retried on a fresh connection after a reused one turned out closed.
    pub retries: u64,
    /// Latency of every successful request, nanoseconds, sorted.
    pub latencies_ns: Vec<u64>,
    pub first_error: Option<String>,
}

impl LoadResult {
    /// Adds another phase's figures to these (latencies unsorted until the caller sorts).
    pub fn absorb(&mut self, other: LoadResult) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.elapsed += other.elapsed;
        self.connects += other.connects;
        self.retries += other.retries;
        self.latencies_ns.extend(other.latencies_ns);
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    pub fn rps(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            count_f64(self.ok) / secs
        } else {
            0.0
        }
    }

    /// The `pct`-th percentile latency in microseconds (nearest rank).
    pub fn percentile_us(&self, pct: u64) -> f64 {
        let n = self.latencies_ns.len();
        if n == 0 {
            return f64::NAN;
        }
        let rank = (u64::try_from(n).unwrap_or(u64::MAX).saturating_mul(pct)).div_ceil(100);
        let idx = usize::try_from(rank.saturating_sub(1))
            .unwrap_or(usize::MAX)
            .min(n - 1);
        count_f64(self.latencies_ns[idx]) / 1000.0
    }
}

/// u64 → f64 for figures, without an `as` cast.
pub fn count_f64(n: u64) -> f64 {
    let high = u32::try_from(n >> 32).unwrap_or(u32::MAX);
    let low = u32::try_from(n & 0xffff_ffff).unwrap_or(0);
    f64::from(high) * 4_294_967_296.0 + f64::from(low)
}

async fn connect(target: &Target) -> anyhow::Result<SendRequest<Empty<Bytes>>> {
    let stream = TcpStream::connect(target.connect)
        .await
        .with_context(|| format!("connect {}", target.connect))?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("http1 handshake")?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// One GET of `path` on an open connection; returns the body length and whether
/// the subject keeps the connection open for another request.
async fn get(
    sender: &mut SendRequest<Empty<Bytes>>,
    target: &Target,
    path: &str,
    limit: Duration,
) -> anyhow::Result<(u64, bool)> {
    let request = target.request(path)?;
    let work = async {
        sender.ready().await.context("connection not ready")?;
        let response = sender.send_request(request).await.context("send")?;
        let status = response.status();
        let keep_alive = !response
            .headers()
            .get_all(hyper::header::CONNECTION)
            .iter()
            .any(|v| {
                v.to_str()
                    .is_ok_and(|v| v.to_ascii_lowercase().contains("close"))
            });
        let mut body = response.into_body();
        let mut len: u64 = 0;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.context("body")?.into_data() {
                len += u64::try_from(data.len()).unwrap_or(u64::MAX);
            }
        }
        if status != StatusCode::OK {
            bail!("status {status}");
        }
        Ok((len, keep_alive))
    };
    tokio::time::timeout(limit, work)
        .await
        .context("request timed out")?
}

/// Checks that one request of `path` answers 200 with `expect_len` body bytes.
pub async fn probe(target: &Target, path: &str, expect_len: u64) -> anyhow::Result<()> {
    let mut sender = connect(target).await?;
    let (len, _) = get(&mut sender, target, path, REQUEST_TIMEOUT).await?;
    if len != expect_len {
        bail!("{path}: body of {len} bytes, expected {expect_len}");
    }
    Ok(())
}

/// Keep-alive GETs of `path` on `conns` connections until `duration` has passed or
/// `max_requests` were sent, whichever comes first.
pub async fn run(
    target: &Target,
    path: &'static str,
    conns: usize,
    duration: Duration,
    max_requests: u64,
) -> LoadResult {
    let issued = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..conns {
        let target = target.clone();
        let issued = Arc::clone(&issued);
        workers.spawn(async move { worker(target, path, deadline, max_requests, issued).await });
    }
    let mut total = LoadResult::default();
    while let Some(joined) = workers.join_next().await {
        match joined {
            Ok(part) => {
                total.ok += part.ok;
                total.errors += part.errors;
                total.connects += part.connects;
                total.retries += part.retries;
                total.latencies_ns.extend(part.latencies_ns);
                if total.first_error.is_none() {
                    total.first_error = part.first_error;
                }
            }
            Err(err) => {
                total.errors += 1;
                total.first_error.get_or_insert_with(|| err.to_string());
            }
        }
    }
    total.elapsed = started.elapsed();
    total.latencies_ns.sort_unstable();
    total
}

async fn worker(
    target: Target,
    path: &'static str,
    deadline: Instant,
    max_requests: u64,
    issued: Arc<AtomicU64>,
) -> LoadResult {
    let mut out = LoadResult {
        latencies_ns: Vec::with_capacity(64 * 1024),
        ..LoadResult::default()
    };
    let mut sender: Option<SendRequest<Empty<Bytes>>> = None;
    // Errors reconnect, but a subject that only fails cannot spin the bench.
    while Instant::now() < deadline && out.errors < 1000 {
        if issued.fetch_add(1, Ordering::Relaxed) >= max_requests {
            break;
        }
        // A request that needs a new connection (the subject closed the last one)
        // pays for the connect: that is the latency its client sees. A request
        // that fails on a reused connection is retried once on a fresh one, as
        // HTTP clients do when a server closed a keep-alive connection unannounced.
        let t0 = Instant::now();
        let mut reused = sender.take().filter(|c| !c.is_closed());
        let mut attempt = 0;
        loop {
            attempt += 1;
            let was_reused = reused.is_some();
            let mut conn = match reused.take() {
                Some(conn) => conn,
                None => match connect(&target).await {
                    Ok(conn) => {
                        out.connects += 1;
                        conn
                    }
                    Err(err) => {
                        note_error(&mut out, &err);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        break;
                    }
                },
            };
            match get(&mut conn, &target, path, REQUEST_TIMEOUT).await {
                Ok((_, keep_alive)) => {
                    let ns = u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
                    out.latencies_ns.push(ns);
                    out.ok += 1;
                    if keep_alive {
                        sender = Some(conn);
                    }
                    break;
                }
                Err(_) if was_reused && attempt == 1 => out.retries += 1,
                Err(err) => {
                    note_error(&mut out, &err);
                    break;
                }
            }
        }
    }
    out
}

fn note_error(out: &mut LoadResult, err: &anyhow::Error) {
    out.errors += 1;
    out.first_error.get_or_insert_with(|| format!("{err:#}"));
}

/// Time to fetch `path` once on a fresh connection, and its body length.
pub async fn transfer(target: &Target, path: &str) -> anyhow::Result<(Duration, u64)> {
    let mut sender = connect(target).await?;
    let t0 = Instant::now();
    let (len, _) = get(&mut sender, target, path, TRANSFER_TIMEOUT).await?;
    Ok((t0.elapsed(), len))
}
