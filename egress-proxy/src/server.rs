//! Listeners and the proxy's life cycle: start, accept under limits, serve, shut down
//! gracefully.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use socket2::{Domain, SockAddr, Socket, Type};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket, UnixListener};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use paddock_policy::{BudgetState, HandleSet};

use crate::audit::{self, AuditTarget};
use crate::config::Validated;
use crate::control::{self, Registry};
use crate::dial::Resolver;
use crate::framing::{Guarded, MAX_HEADERS, Verdicts};
use crate::limits::{ClientKey, ConnLimiter, ConnPermit, Refusal};
use crate::metrics::Metrics;
use crate::prehead::{self, Prefixed};
use crate::proxy::{self, ConnCtx, Shared};
use crate::run::Run;
use crate::tls::{Interceptor, RunCa, UpstreamTls};
use crate::{admin, reply};

/// The proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The resolver could not be built.
    #[error(transparent)]
    Resolver(#[from] crate::dial::ResolverBuildError),
    /// A listener could not be bound.
    #[error("cannot listen on {what}: {source}")]
    Bind {
        /// Which listener.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The Unix socket path holds something that is not a socket.
    #[error("listen_unix {0}: the path exists and is not a socket; refusing to remove it")]
    NotASocket(PathBuf),
    /// The audit stream could not be opened.
    #[error("cannot open the audit stream: {0}")]
    Audit(std::io::Error),
    /// The TLS set-up (upstream trust bundle, default CA) failed.
    #[error("tls: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// A file or directory of the configuration could not be prepared.
    #[error("{what}: {source}")]
    Io {
        /// Which key and path.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
}

fn bind_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StartError {
    let what = what.into();
    move |source| StartError::Bind { what, source }
}

/// The proxy. Start it with [`Proxy::start`].
#[derive(Debug)]
pub struct Proxy;

/// A running proxy.
#[derive(Debug)]
pub struct ProxyHandle {
    local_addr: Option<SocketAddr>,
    unix_path: Option<PathBuf>,
    admin_addr: Option<SocketAddr>,
    control_path: Option<PathBuf>,
    registry: Option<Arc<Registry>>,
    default_ca_pem: Option<String>,
    metrics: Arc<Metrics>,
    shared: Option<Arc<Shared>>,
    stop_accepting: CancellationToken,
    acceptors: Vec<JoinHandle<()>>,
    audit_task: Option<JoinHandle<()>>,
    grace: Duration,
}

impl Proxy {
    /// Binds every configured listener and starts serving on the current tokio runtime.
    /// Listening on port 0 picks a free port; [`ProxyHandle::local_addr`] tells which.
    pub async fn start(v: Validated) -> Result<ProxyHandle, StartError> {
        let cfg = v.config;
        let metrics = Arc::new(Metrics::default());
        let resolver = Resolver::new(&cfg.resolver)?;
        let tcp = match cfg.listen {
            Some(addr) => Some(bind_tcp(addr).map_err(bind_err(format!("listen {addr}")))?),
            None => None,
        };
        let unix = match &cfg.listen_unix {
            Some(path) => Some(bind_unix(path)?),
            None => None,
        };
        let admin = match cfg.admin_listen {
            Some(addr) => Some(bind_tcp(addr).map_err(bind_err(format!("admin_listen {addr}")))?),
            None => None,
        };
        let (auditor, audit_task) =
            audit::start(&AuditTarget::from_config(&cfg.audit.path), metrics.clone())
                .await
                .map_err(StartError::Audit)?;
        let upstream_tls = UpstreamTls::new(cfg.tls.extra_ca_bundle.as_deref())?;
        let shared = Arc::new(Shared {
            resolver,
            limits: cfg.limits.clone(),
            auditor,
            metrics: metrics.clone(),
            kill: CancellationToken::new(),
            tracker: TaskTracker::new(),
            upstream_tls,
        });
        let ca_lifetime = cfg.tls.ca_lifetime.get();
        let (interceptor, default_ca_pem) = if cfg.tls.intercept {
            let ca = Arc::new(RunCa::generate("default", ca_lifetime)?);
            let pem = ca.cert_pem().to_owned();
            if let Some(out) = &cfg.tls.default_ca_out {
                std::fs::write(out, &pem).map_err(|source| StartError::Io {
                    what: format!("tls.default_ca_out {}", out.display()),
                    source,
                })?;
            }
            (Some(Interceptor::new(ca)?), Some(pem))
        } else {
            (None, None)
        };
        let default_run = Arc::new(Run::new(
            None,
            v.policy,
            HandleSet::default(),
            BudgetState::default(),
            interceptor,
            shared.kill.child_token(),
        ));
        let limiter = ConnLimiter::new(
            cfg.limits.max_connections,
            cfg.limits.max_connections_per_client,
        );
        let stop_accepting = CancellationToken::new();
        let mut acceptors = Vec::new();
        let (control_path, registry) = match &cfg.control {
            Some(c) => {
                std::fs::create_dir_all(&c.runs_dir).map_err(|source| StartError::Io {
                    what: format!("control.runs_dir {}", c.runs_dir.display()),
                    source,
                })?;
                let l = control::bind_control(&c.unix)
                    .map_err(bind_err(format!("control.unix {}", c.unix.display())))?;
                let registry = Arc::new(Registry::new(
                    shared.clone(),
                    limiter.clone(),
                    stop_accepting.clone(),
                    c.runs_dir.clone(),
                    c.max_runs,
                    ca_lifetime,
                ));
                acceptors.push(tokio::spawn(control::serve(
                    l,
                    registry.clone(),
                    stop_accepting.clone(),
                )));
                (Some(c.unix.clone()), Some(registry))
            }
            None => (None, None),
        };
        let local_addr = match tcp {
            Some(l) => {
                let addr = l.local_addr().map_err(bind_err("listen"))?;
                acceptors.push(tokio::spawn(accept_tcp(
                    l,
                    shared.clone(),
                    default_run.clone(),
                    limiter.clone(),
                    stop_accepting.clone(),
                )));
                Some(addr)
            }
            None => None,
        };
        let unix_path = match (unix, cfg.listen_unix) {
            (Some(l), Some(path)) => {
                acceptors.push(tokio::spawn(accept_unix(
                    l,
                    path.clone(),
                    0,
                    shared.clone(),
                    default_run.clone(),
                    limiter.clone(),
                    stop_accepting.clone(),
                )));
                Some(path)
            }
            _ => None,
        };
        let admin_addr = match admin {
            Some(l) => {
                let addr = l.local_addr().map_err(bind_err("admin_listen"))?;
                acceptors.push(tokio::spawn(admin::serve(
                    l,
                    metrics.clone(),
                    stop_accepting.clone(),
                )));
                Some(addr)
            }
            None => None,
        };
        tracing::info!(
            listen = ?local_addr,
            listen_unix = ?unix_path,
            admin = ?admin_addr,
            control = ?control_path,
            "egress proxy listening"
        );
        Ok(ProxyHandle {
            local_addr,
            unix_path,
            admin_addr,
            control_path,
            registry,
            default_ca_pem,
            metrics,
            shared: Some(shared),
            stop_accepting,
            acceptors,
            audit_task: Some(audit_task),
            grace: cfg.limits.shutdown_grace.get(),
        })
    }
}

impl ProxyHandle {
    /// The TCP listener's address.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// The Unix socket's path.
    pub fn unix_path(&self) -> Option<&Path> {
        self.unix_path.as_deref()
    }

    /// The admin (metrics) listener's address.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// The control socket's path.
    pub fn control_path(&self) -> Option<&Path> {
        self.control_path.as_deref()
    }

    /// The CA certificate (PEM) the default listeners intercept with, when interception is on.
    pub fn default_ca_pem(&self) -> Option<&str> {
        self.default_ca_pem.as_deref()
    }

    /// The counters.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// The configured shutdown grace period.
    pub fn grace(&self) -> Duration {
        self.grace
    }

    /// Stops accepting, lets in-flight requests and tunnels finish for up to `grace`, then
    /// closes what is left, flushes the audit stream and returns.
    pub async fn shutdown(mut self, grace: Duration) {
        self.stop_accepting.cancel();
        for a in self.acceptors.drain(..) {
            let _ = a.await;
        }
        if let Some(path) = &self.unix_path {
            let _ = std::fs::remove_file(path);
        }
        if let Some(path) = &self.control_path {
            let _ = std::fs::remove_file(path);
        }
        if let Some(registry) = self.registry.take() {
            registry.revoke_all().await;
        }
        if let Some(shared) = self.shared.take() {
            shared.tracker.close();
            if tokio::time::timeout(grace, shared.tracker.wait())
                .await
                .is_err()
            {
                tracing::warn!("shutdown grace period over: closing remaining connections");
            }
            shared.kill.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(2), shared.tracker.wait()).await;
        }
        if let Some(t) = self.audit_task.take() {
            // The writer ends once every connection (and its audit sender) is gone.
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }
}

/// Pending connections the kernel queues per listener (it caps this at `net.core.somaxconn`).
/// The default of the standard library (128) overflows when many sandboxed clients connect at
/// once, and each overflow costs the client a one-second SYN retransmit.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds a TCP listener with [`LISTEN_BACKLOG`] and `SO_REUSEADDR` (a restarted proxy can
/// rebind while old connections sit in TIME_WAIT; it never lets two listeners share a port).
fn bind_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Binds the Unix socket: a stale socket file is removed, anything else at the path is an
/// error; the socket is made group-accessible only (0660).
fn bind_unix(path: &Path) -> Result<UnixListener, StartError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            std::fs::remove_file(path)
                .map_err(bind_err(format!("listen_unix {}", path.display())))?;
        }
        Ok(_) => return Err(StartError::NotASocket(path.to_owned())),
        Err(_) => {}
    }
    let l = listen_unix(path).map_err(bind_err(format!("listen_unix {}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(bind_err(format!("listen_unix {}", path.display())))?;
    Ok(l)
}

pub(crate) fn listen_unix(path: &Path) -> std::io::Result<UnixListener> {
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.bind(&SockAddr::unix(path)?)?;
    socket.listen(i32::try_from(LISTEN_BACKLOG).unwrap_or(i32::MAX))?;
    socket.set_nonblocking(true)?;
    UnixListener::from_std(std::os::unix::net::UnixListener::from(OwnedFd::from(
        socket,
    )))
}

async fn accept_tcp(
    l: TcpListener,
    shared: Arc<Shared>,
    run: Arc<Run>,
    limiter: Arc<ConnLimiter>,
    stop: CancellationToken,
) {
    loop {
        let (stream, peer) = tokio::select! {
            r = l.accept() => match r {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stop.cancelled() => return,
        };
        let permit = match limiter.try_acquire(ClientKey::Ip(peer.ip())) {
            Ok(p) => p,
            Err(why) => {
                refuse(&shared, why, |b| stream.try_write(b));
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let client: Arc<str> = Arc::from(peer.to_string());
        spawn_conn(&shared, stream, client, &run, permit, &stop);
    }
}

/// Accepts on one Unix socket (`listen_unix`, or a run's own socket) until `stop` (proxy
/// shutdown) or the run is revoked.
pub(crate) async fn accept_unix(
    l: UnixListener,
    path: PathBuf,
    index: usize,
    shared: Arc<Shared>,
    run: Arc<Run>,
    limiter: Arc<ConnLimiter>,
    stop: CancellationToken,
) {
    let client: Arc<str> = Arc::from(format!("unix:{}", path.display()));
    loop {
        let (stream, _) = tokio::select! {
            r = l.accept() => match r {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stop.cancelled() => return,
            () = run.cancel.cancelled() => return,
        };
        let permit = match limiter.try_acquire(ClientKey::Unix(index)) {
            Ok(p) => p,
            Err(why) => {
                refuse(&shared, why, |b| stream.try_write(b));
                continue;
            }
        };
        spawn_conn(&shared, stream, client.clone(), &run, permit, &stop);
    }
}

/// Answers a refused connection with one best-effort write, then drops it.
fn refuse(shared: &Shared, why: Refusal, write: impl FnOnce(&[u8]) -> std::io::Result<usize>) {
    let (reason, bytes) = match why {
        Refusal::Global => (
            "max_connections",
            reply::raw_refusal(503, "Service Unavailable", "too_many_connections"),
        ),
        Refusal::PerClient => (
            "max_connections_per_client",
            reply::raw_refusal(429, "Too Many Requests", "too_many_connections_from_client"),
        ),
    };
    shared.metrics.connection_refused(reason);
    tracing::warn!(reason, "connection refused by limit");
    let _ = write(&bytes);
}

fn spawn_conn<S>(
    shared: &Arc<Shared>,
    stream: S,
    client: Arc<str>,
    run: &Arc<Run>,
    permit: ConnPermit,
    stop: &CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let shared = shared.clone();
    let stop = stop.clone();
    let run = run.clone();
    let tracker = shared.tracker.clone();
    tracker.spawn(async move {
        shared.metrics.connection_opened();
        // The permit lives as long as the connection's last user: this task, or the tunnel or
        // intercepted session a CONNECT hands the connection to (each holds a clone).
        let permit = Arc::new(permit);
        serve_conn(&shared, stream, client, run, permit, &stop).await;
        shared.metrics.connection_closed();
    });
}

async fn serve_conn<S>(
    shared: &Arc<Shared>,
    mut stream: S,
    client: Arc<str>,
    run: Arc<Run>,
    permit: Arc<ConnPermit>,
    stop: &CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Until the first head is complete the connection holds only the bytes it sent; the
    // parser (and its buffers) exist from then on. Same deadline as the parser's own.
    let max_head = shared.limits.max_header_bytes;
    let first = tokio::select! {
        r = tokio::time::timeout(
            shared.limits.header_read_timeout.get(),
            prehead::gather(&mut stream, max_head),
        ) => r,
        () = stop.cancelled() => return,
        () = run.cancel.cancelled() => return,
    };
    let prefix = match first {
        Ok(Ok(Some(bytes))) => bytes,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "client connection ended with an error");
            return;
        }
        Err(_) => {
            tracing::debug!("client sent no complete request head in time");
            return;
        }
    };
    let verdicts = Arc::new(Verdicts::default());
    let ctx = Arc::new(ConnCtx::new(
        shared.clone(),
        client,
        run,
        None,
        verdicts.clone(),
        Some(permit),
    ));
    serve_http(ctx, Prefixed::new(prefix, stream), verdicts, Some(stop)).await;
}

/// Serves HTTP/1.1 proxy requests on `io` (a client connection, or the decrypted stream of an
/// intercepted CONNECT) until the client leaves, `stop` asks for a graceful end, or the run is
/// revoked (at once).
pub(crate) async fn serve_http<S>(
    ctx: Arc<ConnCtx>,
    io: S,
    verdicts: Arc<Verdicts>,
    stop: Option<&CancellationToken>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let shared = ctx.shared.clone();
    let run = ctx.run.clone();
    let io = TokioIo::new(Guarded::new(io, shared.limits.max_header_bytes, verdicts));
    // The upstream connections opened for this client are driven right here, beside it.
    let drivers = ctx.drivers.clone();
    let upstreams = drivers.run();
    tokio::pin!(upstreams);
    let intercepted = ctx.origin.is_some();
    let svc = service_fn(move |req| proxy::handle(ctx.clone(), req));
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(shared.limits.header_read_timeout.get())
        .max_buf_size(shared.limits.max_header_bytes)
        .max_headers(MAX_HEADERS)
        .keep_alive(true)
        // Inside TLS, every separate write becomes its own record: flatten a chunk's framing
        // and data into one buffer so that a streamed body costs one record per chunk.
        .writev(!intercepted)
        .serve_connection(io, svc)
        .with_upgrades();
    tokio::pin!(conn);
    let stopping = async {
        match stop {
            Some(t) => t.cancelled().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        never = upstreams.as_mut() => match never {},
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "client connection ended with an error");
            }
            return;
        }
        () = stopping => {}
        () = run.cancel.cancelled() => return,
    }
    conn.as_mut().graceful_shutdown();
    tokio::select! {
        never = upstreams.as_mut() => match never {},
        _ = conn.as_mut() => {}
        () = run.cancel.cancelled() => {}
    }
}
