//! `paddock sandbox run`: one command as the agent in a full sandbox (the same network, proxy
//! and profile as a real run), its output streamed, its status returned.

use std::path::PathBuf;
use std::time::Duration;

use paddock_policy::control::RegisterRun;
use paddock_policy::sandbox::SandboxProfile;
use paddock_policy::{BudgetConfig, PolicyConfig};
use rand::Rng as _;
use tokio::signal::unix::{SignalKind, signal};

use crate::sandbox::proxy::{EgressContainer, EgressError, EgressSettings, RunEgress};
use crate::sandbox::{
    DockerEngine, Engine, EngineError, Launcher, OutputSink, RunSpec, SandboxError,
};

/// Default agent image (bash, python3).
pub const DEFAULT_IMAGE: &str = "paddock/agent:latest";
/// Placeholder task for a run started by hand.
const TASK_PLACEHOLDER: &str = "# paddock sandbox run\n\nNo task: a command was run by hand.\n";

/// Errors before or around the run (the command's own failure is its exit status).
#[derive(Debug, thiserror::Error)]
pub enum SandboxRunError {
    /// Docker is not reachable.
    #[error("docker: {0}")]
    Engine(#[from] EngineError),
    /// The proxy container could not be brought up.
    #[error(transparent)]
    Egress(#[from] EgressError),
    /// The sandbox refused or failed the run.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// The run directory could not be prepared.
    #[error("run directory: {0}")]
    Io(#[from] std::io::Error),
}

/// What `paddock sandbox run` was asked for.
#[derive(Clone, Debug)]
pub struct SandboxRun {
    /// Agent image.
    pub image: String,
    /// Host directory copied into `/workspace` before the command starts.
    pub workspace: Option<PathBuf>,
    /// Wall-clock limit.
    pub timeout: Duration,
    /// The command (argv).
    pub command: Vec<String>,
    /// The proxy container's settings.
    pub egress: EgressSettings,
}

/// The handles of a hand-started run live this long at most (the run is revoked at its end).
const SANDBOX_TTL_SECS: u64 = 24 * 3600;

/// Runs the command; returns the process exit status (the command's, 124 on timeout, 125 when
/// the sandbox could not run it, 128+signal when SIGINT or SIGTERM stopped it, after its
/// container was removed).
///
/// The run is registered at the proxy as `sbx-<random>` with the default policy (reads to
/// public hosts, no writes, no tunnels) and no credentials; it is revoked when the command
/// ends, whatever the outcome.
pub async fn sandbox_run(
    req: SandboxRun,
    sink: &mut dyn OutputSink,
) -> Result<u8, SandboxRunError> {
    let engine = DockerEngine::connect_local()?;
    engine.ping().await?;
    let egress = EgressContainer::ensure(&engine, &req.egress).await?;
    let proxy_run = format!("sbx-{:016x}", rand::thread_rng().r#gen::<u64>());
    let reg = egress
        .register(RegisterRun {
            run: proxy_run.clone(),
            policy: PolicyConfig::default(),
            credentials: Vec::new(),
            budget: BudgetConfig::default(),
            ttl_secs: SANDBOX_TTL_SECS,
        })
        .await?;
    let result = run_registered(engine, req, &reg, sink).await;
    if let Err(e) = egress.revoke(&proxy_run).await {
        tracing::warn!(run = %proxy_run, error = %e, "could not revoke the run at the proxy");
    }
    result
}

async fn run_registered(
    engine: DockerEngine,
    req: SandboxRun,
    reg: &RunEgress,
    sink: &mut dyn OutputSink,
) -> Result<u8, SandboxRunError> {
    let task = reg.run_dir.join("task.md");
    if !task.exists() {
        std::fs::write(&task, TASK_PLACEHOLDER)?;
    }
    let launcher = Launcher::new(engine, SandboxProfile::default())?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let run_id = format!("sandbox-{}-{nanos}", std::process::id());
    let mut spec = RunSpec::new(run_id, req.image, req.command, reg.run_dir.clone());
    spec.timeout = req.timeout;
    // TLS clients trust the run's CA (interception) and the roots for tunnelled hosts.
    spec.ca_file = !reg.ca_pem.is_empty();
    if let Some(dir) = &req.workspace {
        spec.workspace = Some(crate::sandbox::workspace::pack_dir(dir)?);
    }
    let name = spec.container_name();
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let run = launcher.run_with(spec, sink);
    let signo = tokio::select! {
        outcome = run => return Ok(outcome?.status.process_exit_code()),
        _ = int.recv() => 2u8,
        _ = term.recv() => 15u8,
    };
    // The run future is dropped; remove its container now rather than leave it to the
    // launcher's background removal, which this process would not outlive.
    // The launcher's own removal may be under way (Docker then answers 409): retry until the
    // container is gone.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match launcher.engine().remove_container(&name).await {
            Ok(()) | Err(EngineError::NotFound { .. }) => return Ok(128 + signo),
            Err(e) if tokio::time::Instant::now() >= deadline => return Err(e.into()),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}
