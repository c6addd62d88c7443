//! The launcher: one hardened agent container per run, from create to guaranteed removal.

use std::time::Duration;

use bollard::models::ContainerCreateBody;
use bytes::Bytes;
use futures_util::StreamExt;
use paddock_policy::sandbox::SandboxProfile;
use tokio::io::AsyncWriteExt;
use tokio::time::{Instant, timeout_at};
use tracing::{info, warn};

use super::engine::{Engine, EngineError, OutputStream};
use super::error::SandboxError;
use super::output::{LiveScrubber, MarkerScanner, NoSink, OutputCapture, OutputSink};
use super::spec::{LABEL_MANAGED, LABEL_OWNER, RunSpec, container_body, validate};

/// How long a killed or finished container gets to close its streams before it is removed anyway.
const GRACE: Duration = Duration::from_secs(10);
/// Largest workspace tar read back into memory unless lowered with
/// [`Launcher::with_workspace_return_cap`] (the runner's worker lowers it to what its commit
/// limits can take, [`super::workspace::ReturnLimits::tar_cap`]).
pub const DEFAULT_WORKSPACE_RETURN_CAP: u64 = 512 * 1024 * 1024;

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunStatus {
    /// The container exited with this code (the agent's, 128+signal when it was killed, 125
    /// when paddock-init refused to start it).
    Exited(i64),
    /// The wall-clock limit hit; the container was killed.
    TimedOut,
}

impl RunStatus {
    /// Stable name: `exited` or `timed_out`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Exited(_) => "exited",
            RunStatus::TimedOut => "timed_out",
        }
    }

    /// The exit code, when the container exited on its own.
    #[must_use]
    pub fn exit_code(self) -> Option<i64> {
        match self {
            RunStatus::Exited(c) => Some(c),
            RunStatus::TimedOut => None,
        }
    }

    /// The exit status `paddock sandbox run` ends with: the agent's own, 124 on timeout (as
    /// `timeout(1)`), 125 when the code is not a process status.
    #[must_use]
    pub fn process_exit_code(self) -> u8 {
        match self {
            RunStatus::Exited(c) => u8::try_from(c).unwrap_or(EXIT_REFUSED),
            RunStatus::TimedOut => EXIT_TIMED_OUT,
        }
    }
}

/// `paddock sandbox run`'s exit status when the run timed out.
pub const EXIT_TIMED_OUT: u8 = 124;
/// `paddock sandbox run`'s exit status when the sandbox could not run the command.
pub const EXIT_REFUSED: u8 = 125;

/// What one run produced. Output is capped and scrubbed.
#[derive(Clone, Debug)]
pub struct RunOutcome {
    /// The run id.
    pub run_id: String,
    /// The container id (removed by now unless `container_removed` is false).
    pub container_id: String,
    /// How it ended.
    pub status: RunStatus,
    /// Whether paddock-init's gate reported the agent's status (false: the agent never ran,
    /// paddock-init refused to start it, or the sandbox was killed).
    pub agent_reported: bool,
    /// The kernel OOM-killed a process of the container.
    pub oom_killed: bool,
    /// Standard output, capped and scrubbed.
    pub stdout: Vec<u8>,
    /// Standard error (with paddock-init's log), capped and scrubbed.
    pub stderr: Vec<u8>,
    /// Output bytes were dropped at the cap.
    pub output_truncated: bool,
    /// Bytes of output the agent wrote in all.
    pub output_total_bytes: u64,
    /// `/workspace` as a tar stream (entries under `workspace/`), when asked for and available.
    pub workspace: Option<Bytes>,
    /// Why the workspace could not be read back, when it was asked for.
    pub workspace_error: Option<String>,
    /// From the launch call to the container's exit.
    pub elapsed: Duration,
    /// Time spent removing the container.
    pub teardown: Duration,
    /// Whether the container (and its workspace volume) was removed.
    pub container_removed: bool,
}

/// What [`Launcher::cleanup_leftovers`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cleanup {
    /// Container ids removed.
    pub containers: Vec<String>,
    /// Volume names removed.
    pub volumes: Vec<String>,
}

/// Launches agent containers under one validated profile.
#[derive(Clone, Debug)]
pub struct Launcher<E: Engine> {
    engine: E,
    profile: SandboxProfile,
    workspace_return_cap: u64,
    owner: Option<String>,
}

/// Removes the container if the run's future is dropped (cancelled) before the explicit cleanup.
struct RemoveOnDrop<E: Engine> {
    engine: E,
    id: Option<String>,
}

impl<E: Engine> RemoveOnDrop<E> {
    fn disarm(&mut self) -> Option<String> {
        self.id.take()
    }
}

impl<E: Engine> Drop for RemoveOnDrop<E> {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else { return };
        let engine = self.engine.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                warn!(container = %id, "run cancelled; removing its container");
                handle.spawn(async move {
                    if let Err(e) = engine.remove_container(&id).await {
                        warn!(container = %id, error = %e, "could not remove a cancelled run's container; cleanup_leftovers will");
                    }
                });
            }
            Err(_) => {
                warn!(container = %id, "run dropped outside a runtime; cleanup_leftovers will remove its container");
            }
        }
    }
}

enum Phase {
    Done { code: i64, reported: bool },
    TimedOut,
}

impl<E: Engine> Launcher<E> {
    /// A launcher for `profile`; refuses a profile weaker than the baseline.
    pub fn new(engine: E, profile: SandboxProfile) -> Result<Self, SandboxError> {
        profile.validate()?;
        Ok(Self {
            engine,
            profile,
            workspace_return_cap: DEFAULT_WORKSPACE_RETURN_CAP,
            owner: None,
        })
    }

    /// Labels every sandbox with `org.paddock.owner=OWNER` (e.g. the runner's id) and makes
    /// [`Launcher::cleanup_leftovers`] remove only those: several runners can share one engine.
    pub fn with_owner(mut self, owner: &str) -> Result<Self, SandboxError> {
        if !super::spec::valid_label_value(owner) {
            return Err(SandboxError::InvalidSpec {
                field: "owner",
                why: "1-128 printable ASCII characters without spaces".into(),
            });
        }
        self.owner = Some(owner.to_owned());
        Ok(self)
    }

    /// The label filters selecting this launcher's sandboxes.
    #[must_use]
    pub fn managed_filters(&self) -> Vec<String> {
        let mut f = vec![format!("{LABEL_MANAGED}=true")];
        if let Some(owner) = &self.owner {
            f.push(format!("{LABEL_OWNER}={owner}"));
        }
        f
    }

    /// Sets the largest workspace tar read back.
    #[must_use]
    pub fn with_workspace_return_cap(mut self, bytes: u64) -> Self {
        self.workspace_return_cap = bytes;
        self
    }

    /// The engine.
    #[must_use]
    pub fn engine(&self) -> &E {
        &self.engine
    }

    /// The profile.
    #[must_use]
    pub fn profile(&self) -> &SandboxProfile {
        &self.profile
    }

    /// The exact create request `spec` turns into.
    pub fn container_body(&self, spec: &RunSpec) -> Result<ContainerCreateBody, SandboxError> {
        container_body(spec, &self.profile, self.owner.as_deref())
    }

    /// Runs one agent to completion; output is only kept in the outcome.
    pub async fn run(&self, spec: RunSpec) -> Result<RunOutcome, SandboxError> {
        self.run_with(spec, &mut NoSink).await
    }

    /// Runs one agent to completion, showing scrubbed output to `sink` as it comes. The container
    /// is removed on every path: success, error, timeout, and cancellation (drop guard).
    pub async fn run_with(
        &self,
        spec: RunSpec,
        sink: &mut dyn OutputSink,
    ) -> Result<RunOutcome, SandboxError> {
        let started = Instant::now();
        let deadline = started + spec.timeout;
        let uid = validate(&spec, &self.profile)?;
        let body = self.container_body(&spec)?;
        // Checked and re-owned before anything is created, so a bad tar starts nothing.
        let upload = match &spec.workspace {
            Some(tar) => Some(super::workspace::for_upload(tar, uid)?),
            None => None,
        };
        let name = spec.container_name();
        let id = match timeout_at(deadline, self.engine.create_container(&name, body)).await {
            Ok(r) => r?,
            Err(_) => {
                // The create may still land after we gave up: remove by name.
                let _ = self.engine.remove_container(&name).await;
                return Err(SandboxError::Engine(EngineError::Api {
                    op: "create container",
                    message: "timed out".into(),
                }));
            }
        };
        info!(run_id = %spec.run_id, container = %id, "sandbox created");
        let mut guard = RemoveOnDrop {
            engine: self.engine.clone(),
            id: Some(id.clone()),
        };

        let mut capture = OutputCapture::new(spec.output_cap_bytes);
        let mut workspace = None;
        let mut workspace_error = None;
        let driven = self
            .drive(
                &spec,
                upload,
                &id,
                deadline,
                sink,
                &mut capture,
                &mut workspace,
                &mut workspace_error,
            )
            .await;
        let oom_killed = match &driven {
            Ok(_) => self
                .engine
                .inspect(&id)
                .await
                .ok()
                .and_then(|i| i.state.and_then(|s| s.oom_killed))
                .unwrap_or(false),
            Err(_) => false,
        };
        let elapsed = started.elapsed();

        let teardown_start = Instant::now();
        let removed = match guard.disarm() {
            Some(id) => match self.engine.remove_container(&id).await {
                Ok(()) => true,
                Err(e) => {
                    warn!(run_id = %spec.run_id, container = %id, error = %e, "could not remove the sandbox; cleanup_leftovers will");
                    false
                }
            },
            None => false,
        };
        let teardown = teardown_start.elapsed();

        let phase = driven?;
        let (status, agent_reported) = match phase {
            Phase::Done { code, reported } => (RunStatus::Exited(code), reported),
            Phase::TimedOut => (RunStatus::TimedOut, false),
        };
        let output_truncated = capture.truncated();
        let output_total_bytes = capture.total();
        let (stdout, stderr) = capture.into_scrubbed(&spec.scrubber);
        if spec.return_workspace && workspace.is_none() && workspace_error.is_none() {
            workspace_error = Some(match status {
                RunStatus::TimedOut => "the run timed out".to_owned(),
                RunStatus::Exited(_) => "the agent did not report its end".to_owned(),
            });
        }
        info!(
            run_id = %spec.run_id,
            status = status.as_str(),
            exit_code = ?status.exit_code(),
            agent_reported,
            oom_killed,
            output_bytes = output_total_bytes,
            output_truncated,
            elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            removed,
            "sandbox run finished"
        );
        Ok(RunOutcome {
            run_id: spec.run_id,
            container_id: id,
            status,
            agent_reported,
            oom_killed,
            stdout,
            stderr,
            output_truncated,
            output_total_bytes,
            workspace,
            workspace_error,
            elapsed,
            teardown,
            container_removed: removed,
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn drive(
        &self,
        spec: &RunSpec,
        upload: Option<Bytes>,
        id: &str,
        deadline: Instant,
        sink: &mut dyn OutputSink,
        capture: &mut OutputCapture,
        workspace: &mut Option<Bytes>,
        workspace_error: &mut Option<String>,
    ) -> Result<Phase, SandboxError> {
        let engine = &self.engine;
        let workspace_dir = self.profile.container.workspace_dir.as_str();
        macro_rules! within {
            ($fut:expr) => {
                match timeout_at(deadline, $fut).await {
                    Ok(r) => r?,
                    Err(_) => return self.kill(id).await,
                }
            };
        }
        // Attach before start so no output is lost; the gate holds the agent until the nonce.
        let attached = within!(engine.attach(id));
        let mut output = attached.output;
        let mut input = attached.input;
        within!(engine.start(id));
        if let Some(tar) = upload {
            within!(engine.put_archive(id, workspace_dir, tar));
        }
        let nonce = hex::encode(rand::random::<[u8; 16]>());
        let mut line = nonce.clone().into_bytes();
        line.push(b'\n');
        match timeout_at(deadline, async {
            input.write_all(&line).await?;
            input.flush().await
        })
        .await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(SandboxError::Gate(e.to_string())),
            Err(_) => return self.kill(id).await,
        }

        let mut scanner = MarkerScanner::new(&nonce);
        let mut live_out = LiveScrubber::default();
        let mut live_err = LiveScrubber::default();
        let mut input = Some(input);
        let scrubber = &spec.scrubber;
        let mut show = |stream: OutputStream, bytes: &[u8], capture: &mut OutputCapture| {
            let kept = capture.push(stream, bytes);
            if kept.is_empty() {
                return;
            }
            let live = match stream {
                OutputStream::Stdout => &mut live_out,
                OutputStream::Stderr => &mut live_err,
            };
            let ready = live.push(scrubber, kept);
            if !ready.is_empty() {
                sink.output(stream, &ready);
            }
        };

        let mut timed_out = false;
        loop {
            let next = match timeout_at(deadline, output.next()).await {
                Ok(n) => n,
                Err(_) => {
                    timed_out = true;
                    break;
                }
            };
            match next {
                Some(Ok(chunk)) => match chunk.stream {
                    OutputStream::Stdout => {
                        let agent_bytes = scanner.push(&chunk.bytes);
                        show(OutputStream::Stdout, &agent_bytes, capture);
                    }
                    OutputStream::Stderr => show(OutputStream::Stderr, &chunk.bytes, capture),
                },
                Some(Err(e)) => {
                    warn!(run_id = %spec.run_id, error = %e, "output stream failed; waiting for the container");
                    break;
                }
                None => break,
            }
            if scanner.status().is_some()
                && let Some(mut stdin) = input.take()
            {
                // The agent has exited and the gate holds the container (and its workspace
                // tmpfs) up until stdin closes: read the work tree back now.
                if spec.return_workspace {
                    match timeout_at(
                        deadline,
                        engine.get_archive(id, workspace_dir, self.workspace_return_cap),
                    )
                    .await
                    {
                        Ok(Ok(tar)) => *workspace = Some(tar),
                        Ok(Err(e)) => *workspace_error = Some(e.to_string()),
                        Err(_) => {
                            timed_out = true;
                            break;
                        }
                    }
                }
                let _ = stdin.shutdown().await;
                drop(stdin);
            }
        }
        let rest = scanner.finish();
        show(OutputStream::Stdout, &rest, capture);
        let tail_out = live_out.flush(scrubber);
        if !tail_out.is_empty() {
            sink.output(OutputStream::Stdout, &tail_out);
        }
        let tail_err = live_err.flush(scrubber);
        if !tail_err.is_empty() {
            sink.output(OutputStream::Stderr, &tail_err);
        }
        drop(input);
        if timed_out {
            return self.kill(id).await;
        }
        let code = within!(engine.wait(id));
        Ok(Phase::Done {
            code,
            reported: scanner.status().is_some(),
        })
    }

    async fn kill(&self, id: &str) -> Result<Phase, SandboxError> {
        warn!(container = %id, "sandbox timed out; killing it");
        if let Err(e) = self.engine.kill(id).await {
            warn!(container = %id, error = %e, "kill failed; removing by force");
        }
        let _ = tokio::time::timeout(GRACE, self.engine.wait(id)).await;
        Ok(Phase::TimedOut)
    }

    /// Removes containers and workspace volumes of crashed runs (label `org.paddock.managed=true`,
    /// and `org.paddock.owner=OWNER` when an owner is set). Call once at start, before the first
    /// run: it removes every matching container, running or not.
    pub async fn cleanup_leftovers(&self) -> Result<Cleanup, SandboxError> {
        let labels = self.managed_filters();
        let mut done = Cleanup::default();
        for id in self.engine.list_containers(&labels).await? {
            match self.engine.remove_container(&id).await {
                Ok(()) | Err(EngineError::NotFound { .. }) => {
                    info!(container = %id, "removed a leftover sandbox");
                    done.containers.push(id);
                }
                Err(e) => return Err(e.into()),
            }
        }
        for name in self.engine.list_volumes(&labels).await? {
            match self.engine.remove_volume(&name).await {
                Ok(()) | Err(EngineError::NotFound { .. }) => {
                    info!(volume = %name, "removed a leftover workspace volume");
                    done.volumes.push(name);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(done)
    }
}
