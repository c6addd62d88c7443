//! `paddock serve`: the store, the reaper, the HTTP listener, and the runner loop when enabled.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio_util::sync::CancellationToken;

use crate::api::{AppState, router};
use crate::config::{Config, redact_url};
use crate::listener::GuardedListener;
use crate::store::{Store, StoreError};
use crate::worker::{StoreSources, Worker, WorkerConfig};

/// Why the server stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
    #[error("runner: {0}")]
    Runner(String),
}

/// Logs as JSON lines to stderr; `RUST_LOG` filters.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,sqlx=warn".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .json()
        .try_init();
}

/// Connects, migrates and returns the app state.
pub async fn prepare(config: Config) -> Result<AppState, ServeError> {
    let store = Store::connect(&config.database_url, 16).await?;
    store.migrate().await?;
    store.ensure_workspace(&config.feedback.workspace).await?;
    Ok(AppState::new(store, config))
}

/// Spawns the lease reaper.
pub fn spawn_reaper(state: &AppState) -> tokio::task::JoinHandle<()> {
    let store = state.store.clone();
    let every = Duration::from_secs(state.config.claim.reaper_interval_secs);
    let max = state.config.claim.max_attempts;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            match store.reap_expired(max).await {
                Ok(r) if !r.returned_to_todo.is_empty() || !r.blocked.is_empty() => {
                    tracing::info!(returned = ?r.returned_to_todo, blocked = ?r.blocked, "reaped expired leases");
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = ?e, "reaper pass failed"),
            }
        }
    })
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down");
}

/// Starts the runner loop when `runner.enabled`: fails closed (the server does not start) when
/// Docker, the proxy or the runner's configuration is not usable.
async fn start_runner(
    state: &AppState,
    stop: CancellationToken,
) -> Result<Option<tokio::task::JoinHandle<()>>, ServeError> {
    if !state.config.runner.enabled {
        return Ok(None);
    }
    let runner_err = |e: &dyn std::fmt::Display| ServeError::Runner(e.to_string());
    let cfg = WorkerConfig::from_config(&state.config).map_err(|e| runner_err(&e))?;
    let (ring, _) =
        crate::vault::KeyRing::from_config(&state.config).map_err(|e| runner_err(&e))?;
    let sources = Arc::new(StoreSources::new(state.store.clone(), Arc::new(ring)));
    let worker = Worker::prepare(cfg, state.store.clone(), sources.clone(), sources)
        .await
        .map_err(|e| runner_err(&e))?;
    Ok(Some(tokio::spawn(worker.run(stop))))
}

/// Serves on an already-bound listener until `shutdown` resolves, then lets in-flight requests
/// (and their audit lines) finish and the runner loop drain.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let stop = CancellationToken::new();
    let runner = start_runner(&state, stop.clone()).await?;
    let stop_on_signal = stop.clone();
    tokio::spawn(async move {
        shutdown.await;
        stop_on_signal.cancel();
    });
    let shutdown = stop.clone().cancelled_owned();
    let reaper = spawn_reaper(&state);
    let tasks = state.tasks.clone();
    let max = state.config.http.max_connections;
    let idle = Duration::from_secs(state.config.http.idle_timeout_secs);
    let app = router(state);
    // tap_io only adapts the listener so axum can hand each request its peer SocketAddr.
    let listener = GuardedListener::new(listener, max, idle).tap_io(|_| {});
    let r = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    stop.cancel();
    if let Some(r) = runner {
        // The runner drains on its own grace period and then stops what is left.
        let _ = r.await;
    }
    reaper.abort();
    tasks.close();
    if tokio::time::timeout(Duration::from_secs(20), tasks.wait())
        .await
        .is_err()
    {
        tracing::error!("requests still running after 20 s; stopping anyway");
    }
    Ok(r?)
}

/// `paddock serve`.
pub async fn serve(config: Config) -> Result<(), ServeError> {
    let addr = config.listen;
    tracing::info!(listen = %addr, database = %redact_url(&config.database_url), production = config.production, "starting");
    let state = prepare(config).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    serve_on(listener, state, shutdown_signal()).await
}
