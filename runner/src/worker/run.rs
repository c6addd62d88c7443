//! One run of one claimed issue: work tree → proxy registration → sandboxed agent → commit →
//! push → transition and run record. Every step's failure ends the run with a clear reason;
//! the proxy registration and the host directories are removed on every path.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use paddock_policy::control::{CredentialGrant, RegisterRun, RunTotals, WireSecret};
use paddock_policy::{BudgetConfig, PolicyConfig, Scrubber, SecretValue};
use tracing::{Instrument, info, info_span, warn};

use super::adapters::{Adapter, TASK_FILE, expand_command, expand_env_value};
use super::outcome::{self, Ended, NO_CHANGE, Verdict};
use super::prompt::{self, TaskComment, TaskInput};
use super::{Ctx, RunStop, StopReason, WorkerError};
use crate::git::{CommitOutcome, CommitRequest, Mirror};
use crate::lifecycle::State;
use crate::sandbox::{RunSpec, RunStatus, workspace};
use crate::store::claim::Claimed;
use crate::store::issues::Issue;

/// Largest run log kept in the run record (the launcher keeps at most this much output too).
pub const LOG_CAP: usize = 256 * 1024;

/// How a run ended, for the run record and the issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEnd {
    /// A branch was pushed; the issue is in review.
    Pushed {
        /// The branch.
        branch: String,
        /// The commit.
        commit: String,
    },
    /// The issue is blocked with this comment.
    Blocked(String),
    /// The attempt failed; the issue went back to todo (or to blocked after the last attempt).
    Failed(String),
    /// The run was stopped (shutdown, kill switch) and its lease released.
    Stopped(StopReason),
    /// The lease was lost: someone else owns the issue now; nothing was changed.
    LeaseLost,
}

impl RunEnd {
    /// Short name for logs and the run record.
    pub fn name(&self) -> &'static str {
        match self {
            RunEnd::Pushed { .. } => "pushed",
            RunEnd::Blocked(_) => "blocked",
            RunEnd::Failed(_) => "failed",
            RunEnd::Stopped(_) => "stopped",
            RunEnd::LeaseLost => "lease_lost",
        }
    }
}

/// What a run produced besides its end.
#[derive(Debug, Default)]
pub struct RunFacts {
    /// Scrubbed, capped output.
    pub log: String,
    /// Agent exit status.
    pub exit_status: Option<i64>,
    /// Time the agent's container ran.
    pub agent: Duration,
    /// Diff stat text.
    pub diff_stat: Option<String>,
    /// The proxy's totals.
    pub egress: Option<RunTotals>,
}

/// The id a run is registered under at the proxy: `<runner tag>-<run row id>`.
pub fn proxy_run_id(tag: &str, run_row: i64) -> String {
    format!("{tag}-{run_row}")
}

struct Dirs {
    root: PathBuf,
}

impl Drop for Dirs {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.root)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            warn!(dir = %self.root.display(), error = %e, "could not remove a run directory");
        }
    }
}

fn log_text(stdout: &[u8], stderr: &[u8]) -> String {
    let mut log = String::from_utf8_lossy(stdout).into_owned();
    if !stderr.is_empty() {
        log.push_str("\n--- stderr ---\n");
        log.push_str(&String::from_utf8_lossy(stderr));
    }
    if log.len() > LOG_CAP {
        let mut end = LOG_CAP;
        while !log.is_char_boundary(end) {
            end -= 1;
        }
        log.truncate(end);
        log.push_str("\n[log truncated]\n");
    }
    log
}

/// Runs one claimed issue to its end. Never panics and never leaves the proxy registration,
/// the container or the host directories behind.
pub async fn run_claimed(ctx: Arc<Ctx>, claimed: Claimed, slot: u32, stop: RunStop) -> RunEnd {
    let issue_id = claimed.issue.id;
    let span = info_span!(
        "run",
        issue = issue_id,
        run = claimed.run_id,
        attempt = claimed.issue.attempts,
        slot
    );
    async move {
        let started = Instant::now();
        let mut facts = RunFacts::default();
        let end = match pipeline(&ctx, &claimed, slot, &stop, &mut facts).await {
            Ok(end) => end,
            Err(e) if stop.is_stopped() => {
                info!(error = %e, "run stopped");
                RunEnd::Stopped(stop.reason())
            }
            Err(e) => {
                let msg = ctx.scrub(&e.to_string());
                warn!(error = %msg, "run failed");
                if e.is_permanent() {
                    RunEnd::Blocked(format!("Paddock could not run this issue: {msg}"))
                } else {
                    RunEnd::Failed(msg)
                }
            }
        };
        let end = if stop.is_stopped() && !matches!(end, RunEnd::Pushed { .. }) {
            match stop.reason() {
                StopReason::LeaseLost => RunEnd::LeaseLost,
                r => RunEnd::Stopped(r),
            }
        } else {
            end
        };
        if let Err(e) = ctx
            .conclude(&claimed, &end, &facts, started.elapsed())
            .await
        {
            warn!(error = %ctx.scrub(&e.to_string()), "could not record the run's end");
        }
        info!(
            end = end.name(),
            total_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "run finished"
        );
        end
    }
    .instrument(span)
    .await
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, WorkerError> + Send + 'static,
) -> Result<T, WorkerError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| WorkerError::Internal(format!("blocking task failed: {e}")))?
}

async fn pipeline(
    ctx: &Arc<Ctx>,
    claimed: &Claimed,
    slot: u32,
    stop: &RunStop,
    facts: &mut RunFacts,
) -> Result<RunEnd, WorkerError> {
    let issue = &claimed.issue;
    let attempt = u32::try_from(issue.attempts.max(1)).unwrap_or(u32::MAX);
    let repo = ctx.repo_for(issue).await?;
    let adapter = ctx.adapter()?;
    let dirs = Dirs {
        root: ctx
            .cfg
            .state_dir
            .join("work")
            .join(format!("run-{}", claimed.run_id)),
    };
    let _ = std::fs::remove_dir_all(&dirs.root);
    let tree_in = dirs.root.join("in");
    let tree_out = dirs.root.join("out");
    // The checkout creates `in` itself (it refuses an existing destination).
    std::fs::create_dir_all(&tree_out)
        .map_err(|e| WorkerError::io("create the run's work directory", e))?;

    // The work tree: fetch the default branch into the mirror, write plain files.
    let settings = ctx.git_settings(&repo.prefix)?;
    let spec = repo.spec.clone();
    let tin = tree_in.clone();
    let (base, tar) = blocking(move || {
        let mirror = Mirror::open(&settings, &spec)?;
        let base = mirror.fetch()?;
        mirror.checkout(base, &tin)?;
        let tar = workspace::pack_dir(&tin)?;
        Ok((base, tar))
    })
    .await?;
    if stop.is_stopped() {
        return Err(WorkerError::Stopped);
    }

    // The task, from the issue's text as data.
    let task = prompt::render(&ctx.task_input(issue, attempt).await?);

    // The run's own socket at the proxy, with its policy, handles and budget.
    let proxy_run = proxy_run_id(&ctx.tag, claimed.run_id);
    let (grants, secrets) = ctx.grants(issue.workspace_id, &adapter).await?;
    let scrubber = Scrubber::new(secrets.iter().map(SecretValue::expose).collect::<Vec<_>>())
        .unwrap_or_default();
    let register = RegisterRun {
        run: proxy_run.clone(),
        policy: PolicyConfig {
            approved_write_hosts: adapter.write_hosts.clone(),
            allow_ranges: ctx.cfg.egress_allow_ranges.clone(),
            ..PolicyConfig::default()
        },
        credentials: grants,
        budget: BudgetConfig {
            max_requests: adapter.max_requests,
            max_bytes: None,
            max_tokens: adapter.max_tokens,
            token_hosts: if adapter.max_tokens.is_some() {
                adapter.token_hosts.clone()
            } else {
                Vec::new()
            },
        },
        ttl_secs: adapter.timeout.as_secs().saturating_add(300),
    };
    let reg = ctx.egress.register(register).await?;
    let result = launch(
        ctx, claimed, slot, stop, facts, &adapter, &task, &reg, tar, scrubber,
    )
    .await;
    match ctx.egress.revoke(&proxy_run).await {
        Ok(totals) => facts.egress = Some(totals),
        Err(e) => warn!(error = %e, run = %proxy_run, "could not revoke the run at the proxy"),
    }
    let outcome_tar = result?;

    let verdict = outcome::classify(
        match outcome_tar.status {
            RunStatus::Exited(code) if outcome_tar.reported => Ended::Exited(code),
            RunStatus::Exited(_) => Ended::Crashed,
            RunStatus::TimedOut => Ended::TimedOut,
        },
        &outcome_tar.stdout,
    );
    match verdict {
        Verdict::Blocked(q) => return Ok(RunEnd::Blocked(q)),
        Verdict::Failed(why) => return Ok(RunEnd::Failed(why)),
        Verdict::Commit => {}
    }
    let Some(tar) = outcome_tar.workspace else {
        return Ok(RunEnd::Failed(format!(
            "the work tree could not be read back: {}",
            outcome_tar
                .workspace_error
                .unwrap_or_else(|| "no reason given".into())
        )));
    };
    if stop.is_stopped() {
        return Err(WorkerError::Stopped);
    }

    // Commit and push, treating the work tree as hostile.
    let settings = ctx.git_settings(&repo.prefix)?;
    let spec = repo.spec.clone();
    let title = issue.title.clone();
    let issue_id = issue.id;
    let tout = tree_out.clone();
    let limits = ctx.return_limits;
    let pushed = blocking(move || {
        // Checked entry by entry against the snapshot's limits before anything lands on the
        // host; on error the run fails and the run directory (with any part written) goes.
        workspace::unpack_with(&tar, &tout, &limits)?;
        let tree = tout.join("workspace");
        let tree = if tree.is_dir() { tree } else { tout.clone() };
        let mirror = Mirror::open(&settings, &spec)?;
        let req = CommitRequest {
            issue_id,
            attempt,
            title: &title,
        };
        match mirror.commit_work_tree(&tree, base, &req)? {
            CommitOutcome::NoChange(_) => Ok(None),
            CommitOutcome::Committed(c) => {
                let branch = mirror.run_branch(issue_id, attempt)?;
                mirror.push(c.commit, &branch)?;
                let stat = diff_stat_text(c.diff);
                Ok(Some((branch.name().to_owned(), c.commit.to_string(), stat)))
            }
        }
    })
    .await?;
    Ok(match pushed {
        None => RunEnd::Blocked(NO_CHANGE.into()),
        Some((branch, commit, stat)) => {
            facts.diff_stat = Some(stat);
            RunEnd::Pushed { branch, commit }
        }
    })
}

/// `git diff --stat`'s summary line: `2 files changed, 1 insertion(+), 3 deletions(-)`.
fn diff_stat_text(d: crate::git::DiffStat) -> String {
    let n = |k: u64, one: &str, many: &str| format!("{k} {}", if k == 1 { one } else { many });
    format!(
        "{}, {}, {}",
        n(d.files_changed, "file changed", "files changed"),
        n(d.insertions, "insertion(+)", "insertions(+)"),
        n(d.deletions, "deletion(-)", "deletions(-)")
    )
}

struct Launched {
    status: RunStatus,
    reported: bool,
    stdout: Vec<u8>,
    workspace: Option<bytes::Bytes>,
    workspace_error: Option<String>,
}

#[allow(clippy::too_many_arguments)]
async fn launch(
    ctx: &Arc<Ctx>,
    claimed: &Claimed,
    slot: u32,
    stop: &RunStop,
    facts: &mut RunFacts,
    adapter: &Adapter,
    task: &str,
    reg: &crate::sandbox::proxy::RunEgress,
    tar: bytes::Bytes,
    scrubber: Scrubber,
) -> Result<Launched, WorkerError> {
    write_task(&reg.run_dir, task)?;
    // A task too long for one argument is passed as a pointer to the task file instead.
    let command = expand_command(&adapter.command, task);
    let handle = |name: &str| {
        reg.handles
            .iter()
            .find(|h| h.name == name)
            .map(|h| h.handle.clone())
    };
    let mut env = Vec::new();
    for (k, v) in &adapter.env {
        let value = expand_env_value(v, &handle)
            .map_err(|r| WorkerError::Config(format!("agent `{}`: env {k}: {r}", adapter.name)))?;
        env.push((k.clone(), value));
    }
    let mut spec = RunSpec::new(
        format!("{}-{}", ctx.tag, claimed.run_id),
        adapter.image.clone(),
        command,
        reg.run_dir.clone(),
    );
    spec.issue = Some(claimed.issue.id.to_string());
    spec.env = env;
    spec.slot = slot;
    spec.workspace = Some(tar);
    spec.return_workspace = true;
    spec.timeout = adapter.timeout;
    spec.output_cap_bytes = LOG_CAP;
    spec.scrubber = scrubber;
    // The run's CA is in its directory: TLS clients in the sandbox trust it (and only it).
    spec.ca_file = !reg.ca_pem.is_empty();
    let name = spec.container_name();
    let outcome = tokio::select! {
        r = ctx.launcher.run(spec) => r?,
        () = stop.stopped() => {
            remove_container(ctx, &name).await;
            return Err(WorkerError::Stopped);
        }
    };
    facts.log = log_text(&outcome.stdout, &outcome.stderr);
    facts.exit_status = outcome.status.exit_code();
    facts.agent = outcome.elapsed;
    Ok(Launched {
        status: outcome.status,
        reported: outcome.agent_reported,
        stdout: outcome.stdout,
        workspace: outcome.workspace,
        workspace_error: outcome.workspace_error,
    })
}

/// Removes a stopped run's container now: the launcher's own removal runs in the background,
/// which a shutting-down process might not outlive. Docker answers 409 while that removal is
/// under way, so this retries until the container is gone.
async fn remove_container(ctx: &Ctx, name: &str) {
    use crate::sandbox::{Engine as _, EngineError};
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match ctx.launcher.engine().remove_container(name).await {
            Ok(()) | Err(EngineError::NotFound { .. }) => return,
            Err(e) if Instant::now() >= deadline => {
                warn!(container = name, error = %e, "could not remove a stopped run's container");
                return;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

fn write_task(run_dir: &Path, task: &str) -> Result<(), WorkerError> {
    let name = Path::new(TASK_FILE)
        .file_name()
        .ok_or_else(|| WorkerError::Internal("task file name".into()))?;
    let path = run_dir.join(name);
    std::fs::write(&path, task).map_err(|e| WorkerError::io("write the task file", e))?;
    Ok(())
}

/// The task input of an issue: title, body, comments, review feedback.
pub(super) fn task_input(
    issue: &Issue,
    attempt: u32,
    comments: Vec<TaskComment>,
    feedback: Vec<String>,
) -> TaskInput {
    TaskInput {
        issue_id: issue.id,
        attempt,
        title: issue.title.clone(),
        body: issue.body.clone(),
        comments,
        review_feedback: feedback,
    }
}

/// The grants sent to the proxy for an agent, and the real values (for scrubbing).
pub(super) fn grant(use_: &super::adapters::CredentialUse, value: SecretValue) -> CredentialGrant {
    CredentialGrant {
        name: use_.name.clone(),
        secret: WireSecret(value),
        hosts: use_.hosts.clone(),
        headers: use_.headers.clone(),
    }
}

/// Where the issue goes for each end.
pub(super) fn target_state(end: &RunEnd, attempts: i64, max_attempts: i64) -> Option<State> {
    match end {
        RunEnd::Pushed { .. } => Some(State::InReview),
        RunEnd::Blocked(_) => Some(State::Blocked),
        RunEnd::Failed(_) if attempts >= max_attempts => Some(State::Blocked),
        RunEnd::Failed(_) | RunEnd::Stopped(_) => Some(State::Todo),
        RunEnd::LeaseLost => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_map_to_states_by_the_lease_rules() {
        let pushed = RunEnd::Pushed {
            branch: "b".into(),
            commit: "c".into(),
        };
        assert_eq!(target_state(&pushed, 1, 3), Some(State::InReview));
        assert_eq!(
            target_state(&RunEnd::Blocked("q".into()), 1, 3),
            Some(State::Blocked)
        );
        assert_eq!(
            target_state(&RunEnd::Failed("x".into()), 1, 3),
            Some(State::Todo)
        );
        assert_eq!(
            target_state(&RunEnd::Failed("x".into()), 3, 3),
            Some(State::Blocked)
        );
        assert_eq!(
            target_state(&RunEnd::Stopped(StopReason::KillSwitch), 3, 3),
            Some(State::Todo)
        );
        assert_eq!(target_state(&RunEnd::LeaseLost, 1, 3), None);
    }

    #[test]
    fn diff_stats_read_like_git() {
        let d = |f, i, del| crate::git::DiffStat {
            files_changed: f,
            insertions: i,
            deletions: del,
        };
        assert_eq!(
            diff_stat_text(d(1, 1, 1)),
            "1 file changed, 1 insertion(+), 1 deletion(-)"
        );
        assert_eq!(
            diff_stat_text(d(2, 0, 3)),
            "2 files changed, 0 insertions(+), 3 deletions(-)"
        );
    }

    #[test]
    fn logs_are_capped_on_a_character_boundary() {
        let out = "é".repeat(LOG_CAP);
        let log = log_text(out.as_bytes(), b"err");
        assert!(log.len() <= LOG_CAP + 40);
        assert!(log.ends_with("[log truncated]\n"));
        assert_eq!(log_text(b"a", b""), "a");
        assert_eq!(log_text(b"a", b"b"), "a\n--- stderr ---\nb");
    }
}
