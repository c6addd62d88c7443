//! The runner loop: claims issues, runs each in the sandbox, commits and pushes the work, and
//! moves the issue on. Off unless enabled (`runner.enabled` or `PADDOCK_RUNNER=1`).
//!
//! One [`Worker`] per process: up to `concurrency` runs at once, each holding a concurrency slot
//! (its sandbox uid). While a run goes, its lease is heartbeated and its workspace's kill switch
//! is watched; a lost lease or the kill switch stops it within a second. Shutdown stops
//! claiming, gives in-flight runs `grace` to finish, then stops them and releases their leases.

pub mod adapters;
pub mod outcome;
pub mod prompt;
pub mod run;
mod sources;
mod store_sources;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use paddock_policy::sandbox::SandboxProfile;
use paddock_policy::{Scrubber, SecretValue};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use adapters::{Adapter, AdapterError, AdapterOverride, CredentialUse};
pub use run::{RunEnd, RunFacts, proxy_run_id};
pub use sources::{RepoRecord, RepoSource, SecretSource, repo_spec};
pub use store_sources::StoreSources;

use crate::git::{self, GitSettings};
use crate::lifecycle::State;
use crate::sandbox::proxy::{EgressContainer, EgressSettings};
use crate::sandbox::workspace::ReturnLimits;
use crate::sandbox::{DockerEngine, Engine, Launcher};
use crate::store::Store;
use crate::store::claim::Claimed;
use crate::store::issues::Issue;
use crate::store::{RunRecord, RunResult};

/// A boxed future, for the source traits.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a run stopped before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The runner is shutting down.
    Shutdown,
    /// The workspace's kill switch.
    KillSwitch,
    /// The lease could not be renewed: another runner may hold the issue now.
    LeaseLost,
}

impl StopReason {
    /// For comments and logs.
    pub fn describe(self) -> &'static str {
        match self {
            StopReason::Shutdown => "the runner shut down",
            StopReason::KillSwitch => "the workspace's kill switch stopped the run",
            StopReason::LeaseLost => "the run's lease was lost",
        }
    }
}

/// A run could not go on.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// Configuration that retrying cannot fix (no repository, unknown agent, missing secret).
    #[error("{0}")]
    Config(String),
    /// The store.
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    /// Git.
    #[error("git: {0}")]
    Git(#[from] crate::git::GitError),
    /// The sandbox.
    #[error("sandbox: {0}")]
    Sandbox(#[from] crate::sandbox::SandboxError),
    /// The egress proxy.
    #[error("{0}")]
    Egress(#[from] crate::sandbox::proxy::EgressError),
    /// Docker.
    #[error("docker: {0}")]
    Engine(#[from] crate::sandbox::EngineError),
    /// A host file operation.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The cause.
        source: std::io::Error,
    },
    /// The run was stopped.
    #[error("the run was stopped")]
    Stopped,
    /// A bug or a failed task.
    #[error("{0}")]
    Internal(String),
}

impl WorkerError {
    pub(crate) fn io(what: &'static str, source: std::io::Error) -> WorkerError {
        WorkerError::Io { what, source }
    }

    /// True when retrying the issue cannot help; the issue is blocked with the reason.
    pub fn is_permanent(&self) -> bool {
        matches!(self, WorkerError::Config(_))
            || matches!(
                self,
                WorkerError::Git(
                    crate::git::GitError::InvalidUrl { .. }
                        | crate::git::GitError::InvalidConfig { .. }
                        | crate::git::GitError::HostNotPinned { .. }
                        | crate::git::GitError::CredentialMismatch { .. }
                )
            )
    }
}

/// How the worker runs.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Runner name (claims and leases are in its name).
    pub name: String,
    /// Workspace whose issues it works on.
    pub workspace: String,
    /// Runs at once.
    pub concurrency: u32,
    /// Where mirrors and run directories live.
    pub state_dir: PathBuf,
    /// Lease length.
    pub lease: Duration,
    /// Lease heartbeat period.
    pub heartbeat: Duration,
    /// How often a run checks its workspace's kill switch.
    pub kill_poll: Duration,
    /// Time in-flight runs get at shutdown.
    pub grace: Duration,
    /// Claim poll period when idle.
    pub poll: Duration,
    /// Claims after which a failed attempt blocks the issue.
    pub max_attempts: i64,
    /// The agent.
    pub agent: Adapter,
    /// The proxy container.
    pub egress: EgressSettings,
    /// CIDRs exempt from the proxy's private-range deny for every run (internal mirrors).
    pub egress_allow_ranges: Vec<String>,
    /// First agent uid (`[runner] uid_first`): slot `n` runs as `uid_first + n`.
    pub uid_first: u32,
}

/// What a run needs; shared by the runs of one worker.
pub struct Ctx {
    pub(crate) cfg: WorkerConfig,
    pub(crate) store: Store,
    pub(crate) workspace_id: i64,
    pub(crate) launcher: Launcher<DockerEngine>,
    pub(crate) egress: EgressContainer,
    pub(crate) repos: Arc<dyn RepoSource>,
    pub(crate) secrets: Arc<dyn SecretSource>,
    /// Prefix of every proxy run id and container of this runner (`p` + 8 hex of the name).
    pub(crate) tag: String,
    /// What a run's work tree may hold when it is read back (the commit snapshot's limits).
    pub(crate) return_limits: ReturnLimits,
}

/// A run's stop signal and why it was given. Cancelling the shared parent (shutdown after the
/// grace period) leaves the reason empty, which reads as [`StopReason::Shutdown`].
#[derive(Debug, Clone)]
pub struct RunStop {
    token: CancellationToken,
    reason: Arc<OnceLock<StopReason>>,
}

impl RunStop {
    fn new(token: CancellationToken) -> RunStop {
        RunStop {
            token,
            reason: Arc::new(OnceLock::new()),
        }
    }

    /// Stops the run for `reason` (the first reason given wins).
    pub fn stop(&self, reason: StopReason) {
        let _ = self.reason.set(reason);
        self.token.cancel();
    }

    /// True once stopped.
    pub fn is_stopped(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves when stopped.
    pub async fn stopped(&self) {
        self.token.cancelled().await;
    }

    /// Why it stopped.
    pub fn reason(&self) -> StopReason {
        self.reason.get().copied().unwrap_or(StopReason::Shutdown)
    }
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("runner", &self.cfg.name)
            .finish_non_exhaustive()
    }
}

/// The tag of a runner name: stable, short, valid as a proxy run id and a container name.
pub fn runner_tag(name: &str) -> String {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(name.as_bytes());
    format!("p{}", hex::encode(&h[..4]))
}

impl Ctx {
    pub(crate) fn scrub(&self, text: &str) -> String {
        Scrubber::default().scrub(text).into_owned()
    }

    pub(crate) fn adapter(&self) -> Result<Adapter, WorkerError> {
        Ok(self.cfg.agent.clone())
    }

    pub(crate) fn git_settings(&self, prefix: &str) -> Result<GitSettings, WorkerError> {
        let mut s = GitSettings::new(self.cfg.state_dir.clone());
        s.branch_prefix = git::BranchPrefix::new(prefix.trim_end_matches('/'))?;
        Ok(s)
    }

    pub(crate) async fn repo_for(
        &self,
        issue: &Issue,
    ) -> Result<sources::ResolvedRepo, WorkerError> {
        let record = self.repos.repo_for_issue(issue).await?;
        let spec = repo_spec(&record, self.secrets.as_ref(), issue.workspace_id).await?;
        Ok(sources::ResolvedRepo {
            spec,
            prefix: record.branch_prefix,
        })
    }

    pub(crate) async fn task_input(
        &self,
        issue: &Issue,
        attempt: u32,
    ) -> Result<prompt::TaskInput, WorkerError> {
        let comments = self
            .store
            .list_comments(issue.workspace_id, issue.id)
            .await?
            .into_iter()
            .map(|c| prompt::TaskComment {
                author: c.author_kind,
                body: c.body,
            })
            .collect();
        let mut feedback: Vec<String> = Vec::new();
        let mut runs = self
            .store
            .list_runs(issue.workspace_id, Some(issue.id), None, 100)
            .await?;
        runs.reverse();
        for f in runs
            .into_iter()
            .filter_map(|r| r.feedback)
            .chain(issue.review_feedback.clone())
        {
            if !f.trim().is_empty() && !feedback.contains(&f) {
                feedback.push(f);
            }
        }
        Ok(run::task_input(issue, attempt, comments, feedback))
    }

    pub(crate) async fn grants(
        &self,
        workspace_id: i64,
        adapter: &Adapter,
    ) -> Result<
        (
            Vec<paddock_policy::control::CredentialGrant>,
            Vec<SecretValue>,
        ),
        WorkerError,
    > {
        let mut grants = Vec::new();
        let mut values = Vec::new();
        for c in &adapter.credentials {
            let value = self
                .secrets
                .open(workspace_id, &c.secret)
                .await?
                .ok_or_else(|| {
                    WorkerError::Config(format!(
                        "agent `{}` needs the secret `{}`; add it with `paddock secret set {}`",
                        adapter.name, c.secret, c.secret
                    ))
                })?;
            values.push(value.clone());
            grants.push(run::grant(c, value));
        }
        Ok((grants, values))
    }

    /// Moves the issue on and records the run, in one transaction that holds only while this
    /// runner still holds the lease; then comments on the issue.
    pub(crate) async fn conclude(
        &self,
        claimed: &Claimed,
        end: &RunEnd,
        facts: &RunFacts,
        total: Duration,
    ) -> Result<(), WorkerError> {
        let issue = &claimed.issue;
        let ms = |d: Duration| Some(i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let result = RunResult {
            outcome: end.name().to_owned(),
            exit_status: facts.exit_status,
            commit_id: match end {
                RunEnd::Pushed { commit, .. } => Some(commit.clone()),
                _ => None,
            },
            diff_stat: facts.diff_stat.clone(),
            egress: facts
                .egress
                .as_ref()
                .and_then(|t| serde_json::to_string(t).ok()),
            agent_ms: ms(facts.agent),
            total_ms: ms(total),
        };
        let Some(to) = run::target_state(end, issue.attempts, self.cfg.max_attempts) else {
            // The lease is gone: keep the facts, leave the issue to its new holder.
            self.store
                .record_run_result(issue.workspace_id, claimed.run_id, &result)
                .await?;
            return Ok(());
        };
        let branch = match end {
            RunEnd::Pushed { branch, .. } => Some(branch.clone()),
            _ => None,
        };
        let record = RunRecord {
            state: to,
            log: facts.log.clone(),
            branch,
            result,
        };
        self.store
            .finish_run(issue.workspace_id, claimed.run_id, &self.cfg.name, &record)
            .await?;
        let attempt = issue.attempts;
        let comment = match end {
            RunEnd::Pushed { branch, .. } => Some(format!(
                "Paddock pushed branch `{branch}` for review ({}).",
                facts.diff_stat.as_deref().unwrap_or("no diff stat")
            )),
            RunEnd::Blocked(q) => Some(format!("Blocked: {q}")),
            RunEnd::Failed(why) if to == State::Blocked => Some(format!(
                "Attempt {attempt} failed ({why}); that was the last attempt, so the issue is blocked."
            )),
            RunEnd::Failed(why) => Some(format!(
                "Attempt {attempt} failed: {why}. The issue is back in todo."
            )),
            RunEnd::Stopped(r) => Some(format!(
                "Attempt {attempt} stopped: {}. The issue is back in todo.",
                r.describe()
            )),
            RunEnd::LeaseLost => None,
        };
        if let Some(c) = comment {
            self.store
                .add_comment(issue.workspace_id, issue.id, None, "runner", &c)
                .await?;
        }
        Ok(())
    }
}

/// Makes libgit2 hermetic once per process (its search paths are process-wide): the first
/// worker's `<state_dir>/git-empty` serves every later one.
fn hermetic_git(state_dir: &std::path::Path) -> Result<(), WorkerError> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    let r = DONE.get_or_init(|| {
        let empty = state_dir.join("git-empty");
        std::fs::create_dir_all(&empty).map_err(|e| format!("create {}: {e}", empty.display()))?;
        git::init_hermetic(&empty).map_err(|e| e.to_string())
    });
    r.clone().map_err(WorkerError::Internal)
}

/// The launcher of a worker: the default profile, sandboxes labelled with the runner's tag, and
/// no more of a work tree read back into memory than a tree within `limits` can take as a tar.
pub(crate) fn sandbox_launcher<E: Engine>(
    engine: E,
    tag: &str,
    limits: &ReturnLimits,
    uid_first: u32,
) -> Result<Launcher<E>, WorkerError> {
    let mut profile = SandboxProfile::default();
    // Runners sharing a host set disjoint ranges; the range holds every slot (concurrency ≤ 32).
    profile.container.uids.first = uid_first;
    Ok(Launcher::new(engine, profile)?
        .with_owner(tag)?
        .with_workspace_return_cap(limits.tar_cap()))
}

/// The runner loop.
#[derive(Debug)]
pub struct Worker {
    ctx: Arc<Ctx>,
}

impl Worker {
    /// Connects to Docker, starts the proxy container, removes leftovers of this runner's
    /// crashed runs (containers and proxy registrations), and resolves the workspace.
    pub async fn prepare(
        cfg: WorkerConfig,
        store: Store,
        repos: Arc<dyn RepoSource>,
        secrets: Arc<dyn SecretSource>,
    ) -> Result<Worker, WorkerError> {
        hermetic_git(&cfg.state_dir)?;
        let workspace_id = store.ensure_workspace(&cfg.workspace).await?.id;
        let engine = DockerEngine::connect_local()?;
        engine.ping().await?;
        let egress = EgressContainer::ensure(&engine, &cfg.egress).await?;
        let tag = runner_tag(&cfg.name);
        let return_limits =
            ReturnLimits::of_snapshot(&GitSettings::new(cfg.state_dir.clone()).limits);
        let launcher = sandbox_launcher(engine, &tag, &return_limits, cfg.uid_first)?;
        let cleaned = launcher.cleanup_leftovers().await?;
        if !cleaned.containers.is_empty() {
            info!(containers = ?cleaned.containers, "removed leftover sandboxes of this runner");
        }
        for run in egress.list().await? {
            if run.starts_with(&format!("{tag}-")) {
                match egress.revoke(&run).await {
                    Ok(_) => info!(run = %run, "revoked a leftover proxy registration"),
                    Err(e) => {
                        warn!(run = %run, error = %e, "could not revoke a leftover proxy registration")
                    }
                }
            }
        }
        let work = cfg.state_dir.join("work");
        if work.exists() {
            let _ = std::fs::remove_dir_all(&work);
        }
        Ok(Worker {
            ctx: Arc::new(Ctx {
                cfg,
                store,
                workspace_id,
                launcher,
                egress,
                repos,
                secrets,
                tag,
                return_limits,
            }),
        })
    }

    /// The runner's tag (prefix of its proxy runs and containers).
    pub fn tag(&self) -> &str {
        &self.ctx.tag
    }

    /// Runs until `shutdown` is cancelled, then drains as described in the module docs.
    pub async fn run(self, shutdown: CancellationToken) {
        let ctx = self.ctx;
        let mut free: Vec<u32> = (0..ctx.cfg.concurrency).rev().collect();
        let mut runs: JoinSet<u32> = JoinSet::new();
        let stop_all = CancellationToken::new();
        let lease_ms = i64::try_from(ctx.cfg.lease.as_millis()).unwrap_or(i64::MAX);
        info!(runner = %ctx.cfg.name, workspace = %ctx.cfg.workspace, concurrency = ctx.cfg.concurrency, "runner started");
        let mut last_beat = tokio::time::Instant::now() - ctx.cfg.heartbeat;
        loop {
            while let Some(done) = runs.try_join_next() {
                if let Ok(slot) = done {
                    free.push(slot);
                }
            }
            if shutdown.is_cancelled() {
                break;
            }
            if last_beat.elapsed() >= ctx.cfg.heartbeat {
                last_beat = tokio::time::Instant::now();
                if let Err(e) = ctx
                    .store
                    .runner_heartbeat(ctx.workspace_id, &ctx.cfg.name)
                    .await
                {
                    warn!(error = %e, "runner heartbeat failed");
                }
            }
            let mut claimed_one = false;
            if let Some(&slot) = free.last() {
                match ctx.repos.runs_paused(ctx.workspace_id).await {
                    Ok(true) => {}
                    Ok(false) => match ctx
                        .store
                        .claim(ctx.workspace_id, &ctx.cfg.name, lease_ms)
                        .await
                    {
                        Ok(Some(claimed)) => {
                            free.pop();
                            claimed_one = true;
                            let stop = RunStop::new(stop_all.child_token());
                            let c = Arc::clone(&ctx);
                            runs.spawn(async move {
                                let watch = tokio::spawn(watch_run(
                                    Arc::clone(&c),
                                    claimed.issue.id,
                                    stop.clone(),
                                ));
                                run::run_claimed(c, claimed, slot, stop).await;
                                watch.abort();
                                slot
                            });
                        }
                        Ok(None) => {}
                        Err(e) => warn!(error = %e, "claim failed"),
                    },
                    Err(e) => warn!(error = %e, "could not read the kill switch"),
                }
            }
            if claimed_one {
                continue;
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(ctx.cfg.poll) => {}
                Some(done) = runs.join_next(), if !runs.is_empty() => {
                    if let Ok(slot) = done { free.push(slot); }
                }
            }
        }
        info!(
            in_flight = runs.len(),
            grace_secs = ctx.cfg.grace.as_secs(),
            "runner stopping: no new claims"
        );
        let drained = tokio::time::timeout(ctx.cfg.grace, async {
            while runs.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            info!(
                in_flight = runs.len(),
                "grace period over: stopping the remaining runs"
            );
            stop_all.cancel();
            while runs.join_next().await.is_some() {}
        }
        info!("runner stopped");
    }
}

/// Heartbeats the lease and watches the kill switch until the run ends (the caller aborts this
/// task) or stops the run.
async fn watch_run(ctx: Arc<Ctx>, issue_id: i64, stop: RunStop) {
    let lease_ms = i64::try_from(ctx.cfg.lease.as_millis()).unwrap_or(i64::MAX);
    let mut last_beat = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = stop.stopped() => return,
            () = tokio::time::sleep(ctx.cfg.kill_poll) => {}
        }
        if let Ok(true) = ctx.repos.runs_paused(ctx.workspace_id).await {
            warn!(issue = issue_id, "kill switch: stopping the run");
            stop.stop(StopReason::KillSwitch);
            return;
        }
        if last_beat.elapsed() >= ctx.cfg.heartbeat {
            last_beat = tokio::time::Instant::now();
            if let Err(e) = ctx
                .store
                .heartbeat_lease(ctx.workspace_id, issue_id, &ctx.cfg.name, lease_ms)
                .await
            {
                warn!(issue = issue_id, error = %e, "lease lost: stopping the run");
                stop.stop(StopReason::LeaseLost);
                return;
            }
        }
    }
}

impl WorkerConfig {
    /// The worker's settings from `paddock serve`'s configuration.
    pub fn from_config(config: &crate::config::Config) -> Result<WorkerConfig, WorkerError> {
        let r = &config.runner;
        let agent_name = r.default_agent.as_str();
        let mut over = r.agents.get(agent_name).map(override_of);
        // A token budget only means something for an agent that talks to an LLM host.
        let meters_tokens =
            adapters::builtin(agent_name).is_some_and(|a| !a.token_hosts.is_empty());
        if let Some(o) = over.as_mut().filter(|_| !meters_tokens) {
            o.max_tokens = None;
        }
        let agent = adapters::resolve(agent_name, over.as_ref())
            .map_err(|e| WorkerError::Config(e.to_string()))?;
        let secs = Duration::from_secs;
        Ok(WorkerConfig {
            name: r.name.clone(),
            workspace: r.workspace.clone(),
            concurrency: r.concurrency,
            state_dir: r.state_dir.clone(),
            lease: secs(r.lease_secs),
            heartbeat: secs(r.heartbeat_secs),
            kill_poll: Duration::from_secs(1),
            grace: secs(r.grace_secs),
            poll: Duration::from_millis(r.poll_ms),
            max_attempts: config.claim.max_attempts,
            agent,
            egress: EgressSettings {
                image: r.egress.image.clone(),
                state_dir: r.egress.state_dir.clone(),
                nameservers: r.egress.nameservers.clone(),
                extra_ca_bundle: r.egress.extra_ca_bundle.clone(),
            },
            egress_allow_ranges: r.egress.allow_ranges.clone(),
            uid_first: r.uid_first,
        })
    }
}

/// A configured agent table as overrides of the built-in (an empty field keeps the built-in's).
pub fn override_of(a: &crate::config::AgentConfig) -> AdapterOverride {
    let non_empty = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    AdapterOverride {
        image: (!a.image.is_empty()).then(|| a.image.clone()),
        command: non_empty(&a.command),
        env: a.env.clone(),
        write_hosts: non_empty(&a.write_hosts),
        credentials: (!a.credentials.is_empty()).then(|| {
            a.credentials
                .iter()
                .map(|c| CredentialUse {
                    name: c.name.clone(),
                    secret: c.secret.clone(),
                    hosts: c.hosts.clone(),
                    headers: c.headers.clone(),
                })
                .collect()
        }),
        timeout_secs: Some(a.timeout_secs),
        max_tokens: Some(a.max_tokens),
        max_requests: Some(a.max_requests),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use bytes::Bytes;

    use super::*;
    use crate::config::DEFAULT_UID_FIRST;
    use crate::sandbox::fake::{FakeEngine, Script};
    use crate::sandbox::{DEFAULT_WORKSPACE_RETURN_CAP, OutputChunk, OutputStream, RunSpec};

    async fn read_back(limits: &ReturnLimits, archive_len: u64) -> crate::sandbox::RunOutcome {
        let engine = FakeEngine::new(Script {
            output: vec![OutputChunk {
                stream: OutputStream::Stdout,
                bytes: Bytes::from_static(b"done\n"),
            }],
            archive: Bytes::from(vec![0u8; usize::try_from(archive_len).unwrap()]),
            ..Script::default()
        });
        let launcher = sandbox_launcher(engine, "p0000abcd", limits, DEFAULT_UID_FIRST).unwrap();
        let mut spec = RunSpec::new(
            "p0000abcd-1",
            "paddock/agent:latest",
            vec!["true".into()],
            PathBuf::from("/var/lib/paddock/runs/p0000abcd-1"),
        );
        spec.return_workspace = true;
        launcher.run(spec).await.unwrap()
    }

    #[tokio::test]
    async fn a_workers_launcher_reads_back_no_more_than_its_limits_allow() {
        let limits = ReturnLimits {
            max_file_bytes: 1000,
            max_total_bytes: 10_000,
            max_entries: 10,
        };
        let over = read_back(&limits, limits.tar_cap() + 1).await;
        assert!(over.workspace.is_none());
        let why = over.workspace_error.unwrap();
        assert!(why.contains(&limits.tar_cap().to_string()), "{why}");
        let at = read_back(&limits, limits.tar_cap()).await;
        assert_eq!(
            at.workspace.map(|t| t.len()),
            Some(usize::try_from(limits.tar_cap()).unwrap())
        );
        assert!(at.workspace_error.is_none());
    }

    #[test]
    fn the_workers_read_back_limits_are_looser_than_the_commits() {
        let git = GitSettings::new(PathBuf::from("/var/lib/paddock")).limits;
        let r = ReturnLimits::of_snapshot(&git);
        assert_eq!(r.max_file_bytes, git.max_file_bytes);
        // Looser than the commit's: ignored build output counts here, not there.
        assert_eq!(r.max_total_bytes, git.max_total_bytes * 4);
        assert_eq!(
            r.max_entries,
            git.max_entries * 4 + 1,
            "and the top directory"
        );
        assert!(r.tar_cap() <= DEFAULT_WORKSPACE_RETURN_CAP);
    }

    #[test]
    fn a_runners_agents_take_their_uids_from_its_own_range() {
        let l = |first| {
            sandbox_launcher(
                FakeEngine::new(Script::default()),
                "p0000abcd",
                &ReturnLimits::default(),
                first,
            )
        };
        let default = l(DEFAULT_UID_FIRST).unwrap();
        assert_eq!(
            default.profile().container.uids.uid_for_slot(0),
            Some(10_001)
        );
        let other = l(20_001).unwrap();
        assert_eq!(other.profile().container.uids.uid_for_slot(3), Some(20_004));
        // The profile's own check still holds: no uid below the agent range.
        assert!(l(500).is_err());
    }
}
