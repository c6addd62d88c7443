//! The in-process upstream HTTP/1.1 server that every subject forwards to.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Body of `/small`: a typical small API answer.
pub const SMALL_BODY: &[u8] =
    b"{\"ok\":true,\"message\":\"paddock egress bench small response\"}\n";
/// Length of `/big`: 256 MiB.
pub const BIG_LEN: u64 = 256 * 1024 * 1024;
/// Size of each frame of `/big`; the frames share one buffer, so serving costs no copies.
const CHUNK: usize = 64 * 1024;

/// A running upstream; stops when dropped.
pub struct Upstream {
    pub addr: SocketAddr,
    _runtime: tokio::runtime::Runtime,
}

/// Starts the upstream on 127.0.0.1 with one worker thread of its own.
pub fn start() -> anyhow::Result<Upstream> {
    let std_listener =
        std::net::TcpListener::bind("127.0.0.1:0").context("bind the upstream listener")?;
    std_listener.set_nonblocking(true)?;
    let addr = std_listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("bench-upstream")
        .enable_all()
        .build()
        .context("build the upstream runtime")?;
    runtime.spawn(async move {
        match TcpListener::from_std(std_listener) {
            Ok(listener) => accept_loop(listener).await,
            Err(err) => eprintln!("upstream: listener: {err}"),
        }
    });
    Ok(Upstream {
        addr,
        _runtime: runtime,
    })
}

async fn accept_loop(listener: TcpListener) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(err) => {
                eprintln!("upstream: accept: {err}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service =
                service_fn(
                    |req: Request<Incoming>| async move { Ok::<_, Infallible>(answer(&req)) },
                );
            // Errors here are clients going away mid-body; the bench counts its own errors.
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

type UpstreamBody = Either<Full<Bytes>, BigBody>;

fn answer(req: &Request<Incoming>) -> Response<UpstreamBody> {
    let (status, body) = match req.uri().path() {
        "/small" => (
            StatusCode::OK,
            Either::Left(Full::new(Bytes::from_static(SMALL_BODY))),
        ),
        "/big" => (StatusCode::OK, Either::Right(BigBody::new(BIG_LEN))),
        _ => (
            StatusCode::NOT_FOUND,
            Either::Left(Full::new(Bytes::from_static(b"not found\n"))),
        ),
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/octet-stream"),
    );
    response
}

/// A streamed body of `remaining` bytes with an exact length (sent with Content-Length).
pub struct BigBody {
    remaining: u64,
    chunk: Bytes,
}

impl BigBody {
    fn new(len: u64) -> Self {
        Self {
            remaining: len,
            chunk: Bytes::from(vec![b'p'; CHUNK]),
        }
    }
}

impl Body for BigBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        let n =
            usize::try_from(this.remaining).map_or(this.chunk.len(), |r| r.min(this.chunk.len()));
        this.remaining = this
            .remaining
            .saturating_sub(u64::try_from(n).unwrap_or(u64::MAX));
        Poll::Ready(Some(Ok(Frame::data(this.chunk.slice(..n)))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}
