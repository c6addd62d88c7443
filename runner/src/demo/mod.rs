//! `paddock demo`: the main job on embedded defaults. SQLite in a temporary directory, a local
//! git server (sshd + git-shell on loopback) with a small sample project, one issue, the
//! sandbox images (built if missing), the egress proxy, and the `script` agent making a real
//! edit; ends with the branch pushed and the issue in review, and prints the issue, the branch
//! and the diff.

mod gitserver;
pub mod sample;

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

pub use gitserver::GitServer;

use crate::lifecycle::State;
use crate::store::Store;
use crate::store::issues::{Issue, NewIssue};
use crate::vault::KeyRing;
use crate::worker::{StoreSources, Worker, WorkerConfig, adapters};

/// The demo could not finish.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A tool the demo needs is not installed.
    #[error("missing: {0}")]
    Missing(String),
    /// A host operation.
    #[error("{what}: {source}")]
    Io {
        /// What.
        what: &'static str,
        /// Cause.
        source: std::io::Error,
    },
    /// A step failed.
    #[error("{0}")]
    Step(String),
}

impl DemoError {
    pub(crate) fn io(what: &'static str, source: std::io::Error) -> DemoError {
        DemoError::Io { what, source }
    }
}

fn step(e: impl std::fmt::Display) -> DemoError {
    DemoError::Step(e.to_string())
}

/// Options of `paddock demo`.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Where the demo's files go (a fresh temporary directory when `None`).
    pub dir: Option<PathBuf>,
    /// Longest wait for the run.
    pub timeout: Duration,
    /// Agent image.
    pub image: String,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            dir: None,
            timeout: Duration::from_secs(300),
            image: "paddock/agent:latest".into(),
        }
    }
}

/// What the demo ended with.
#[derive(Debug, Clone)]
pub struct DemoReport {
    /// The issue's id.
    pub issue_id: i64,
    /// Its final state.
    pub state: String,
    /// The pushed branch.
    pub branch: String,
    /// The diff against the default branch.
    pub diff: String,
    /// The demo's directory.
    pub dir: PathBuf,
    /// Claim to branch pushed.
    pub elapsed: Duration,
}

fn temp_dir() -> Result<PathBuf, DemoError> {
    let mut rnd = [0u8; 6];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut rnd);
    let dir = std::env::temp_dir().join(format!("paddock-demo-{}", hex::encode(rnd)));
    std::fs::create_dir_all(&dir).map_err(|e| DemoError::io("create the demo directory", e))?;
    Ok(dir)
}

/// Everything a run needs on embedded defaults: SQLite, a vault key, a local git server with
/// the sample project registered as the workspace's repository. Used by the demo and by
/// `paddock bench runner`.
pub struct Stage {
    /// The store.
    pub store: Store,
    /// The vault key ring (ephemeral).
    pub ring: Arc<KeyRing>,
    /// Workspace id.
    pub ws: i64,
    /// The registered repository's id.
    pub repo_id: i64,
    /// Its URL.
    pub url: String,
    /// The git server (stopped on drop).
    pub server: GitServer,
    /// The stage's directory.
    pub dir: PathBuf,
}

impl std::fmt::Debug for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stage")
            .field("dir", &self.dir)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Stage {
    /// Sets the stage up in `dir`.
    pub async fn new(dir: &std::path::Path, workspace: &str) -> Result<Stage, DemoError> {
        let db = format!("sqlite://{}?mode=rwc", dir.join("paddock.db").display());
        let store = Store::connect(&db, 4).await.map_err(step)?;
        store.migrate().await.map_err(step)?;
        let ws = store.ensure_workspace(workspace).await.map_err(step)?;
        let ring = Arc::new(KeyRing::generate(1));
        let server = GitServer::start(&dir.join("git"))?;
        sample::seed(&server.repos.join("sample.git"))?;
        let url = server.url("sample.git");
        store
            .put_secret(&ring, ws.id, "deploy-key", &server.deploy_key)
            .await
            .map_err(step)?;
        let repo = store
            .create_repo(
                ws.id,
                &crate::store::NewRepo {
                    name: "sample".into(),
                    url: url.clone(),
                    default_branch: "main".into(),
                    credential: Some("deploy-key".into()),
                    ssh_known_hosts: Some(server.known_hosts.clone()),
                    branch_prefix: "paddock".into(),
                },
            )
            .await
            .map_err(step)?;
        Ok(Stage {
            store,
            ring,
            ws: ws.id,
            repo_id: repo.id,
            url,
            server,
            dir: dir.to_path_buf(),
        })
    }

    /// Files an issue straight into todo.
    pub async fn file_issue(&self, title: &str, body: &str) -> Result<Issue, DemoError> {
        self.store
            .create_issue(
                self.ws,
                &NewIssue {
                    kind: "bug",
                    title: title.into(),
                    body: body.into(),
                    tags: vec!["demo".into()],
                    priority: 0,
                    state: State::Todo,
                    created_by: None,
                    repo_id: Some(self.repo_id),
                },
            )
            .await
            .map_err(step)
    }

    /// A worker for this stage running `script` in `image`.
    pub async fn worker(
        &self,
        workspace: &str,
        image: &str,
        script: &str,
    ) -> Result<Worker, DemoError> {
        crate::images::ensure_images(&[image, "paddock/egress:latest"])
            .await
            .map_err(step)?;
        let over = adapters::AdapterOverride {
            image: Some(image.to_owned()),
            command: Some(vec!["/bin/sh".into(), "-c".into(), script.into()]),
            timeout_secs: Some(120),
            ..adapters::AdapterOverride::default()
        };
        let agent = adapters::resolve("script", Some(&over)).map_err(step)?;
        let cfg = WorkerConfig {
            name: format!("{workspace}-runner"),
            workspace: workspace.into(),
            concurrency: 1,
            state_dir: self.dir.join("runner"),
            lease: Duration::from_secs(120),
            heartbeat: Duration::from_secs(10),
            kill_poll: Duration::from_secs(1),
            grace: Duration::from_secs(10),
            poll: Duration::from_millis(50),
            max_attempts: 1,
            agent,
            egress: crate::sandbox::proxy::EgressSettings::default(),
            egress_allow_ranges: Vec::new(),
            uid_first: crate::config::DEFAULT_UID_FIRST,
        };
        let sources = Arc::new(StoreSources::new(
            self.store.clone(),
            Arc::clone(&self.ring),
        ));
        Worker::prepare(cfg, self.store.clone(), sources.clone(), sources)
            .await
            .map_err(step)
    }
}

/// Runs the demo, narrating to `out`.
pub async fn run(opts: DemoOptions, out: &mut dyn Write) -> Result<DemoReport, DemoError> {
    let dir = match &opts.dir {
        Some(d) => {
            std::fs::create_dir_all(d)
                .map_err(|e| DemoError::io("create the demo directory", e))?;
            d.clone()
        }
        None => temp_dir()?,
    };
    let say = |out: &mut dyn Write, s: &str| {
        let _ = writeln!(out, "\n== {s}");
    };

    say(
        out,
        &format!(
            "database: SQLite in {}; git server: OpenSSH + git-shell on 127.0.0.1",
            dir.display()
        ),
    );
    let stage = Stage::new(&dir, "demo").await?;
    let _ = writeln!(out, "   sample project at {}", stage.url);

    say(out, "issue: filed on the board and triaged to todo");
    let issue = stage
        .file_issue(sample::ISSUE_TITLE, sample::ISSUE_BODY)
        .await?;
    let _ = writeln!(out, "   #{} {}", issue.id, issue.title);

    say(
        out,
        "sandbox images (built if missing) and the egress proxy",
    );
    let worker = stage
        .worker("demo", &opts.image, sample::AGENT_SCRIPT)
        .await?;
    let store = &stage.store;
    let ws = stage.ws;
    let url = stage.url.clone();

    say(out, "runner: claim → sandboxed agent → commit → push");
    let started = Instant::now();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(worker.run(shutdown.clone()));
    let deadline = Instant::now() + opts.timeout;
    let done = loop {
        let now = store.get_issue(ws, issue.id).await.map_err(step)?;
        if !matches!(now.state(), Some(State::Todo | State::InProgress)) {
            break now;
        }
        if Instant::now() > deadline {
            shutdown.cancel();
            let _ = task.await;
            return Err(DemoError::Step(format!(
                "the run did not finish within {} s",
                opts.timeout.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let elapsed = started.elapsed();
    shutdown.cancel();
    let _ = task.await;

    let runs = store
        .list_runs(ws, Some(issue.id), None, 1)
        .await
        .map_err(step)?;
    let run = runs.first().ok_or_else(|| step("the run left no record"))?;
    let comments = store.list_comments(ws, issue.id).await.map_err(step)?;
    say(out, &format!("issue #{}: {}", done.id, done.state));
    for c in &comments {
        let _ = writeln!(out, "   [{}] {}", c.author_kind, c.body);
    }
    let Some(branch) = run.branch.clone() else {
        let log = store
            .get_run(ws, run.id)
            .await
            .map(|r| r.log)
            .unwrap_or_default();
        return Err(DemoError::Step(format!(
            "the issue ended {} without a branch; agent output:\n{log}",
            done.state
        )));
    };
    let diff = sample::diff(&stage.server.repos.join("sample.git"), "main", &branch)?;
    say(out, &format!("branch {branch} (pushed to {url})"));
    let _ = writeln!(out, "{diff}");
    say(
        out,
        &format!(
            "done in {:.1} s: the issue waits for a reviewer (approve or reject on the board)",
            elapsed.as_secs_f64()
        ),
    );
    Ok(DemoReport {
        issue_id: done.id,
        state: done.state,
        branch,
        diff,
        dir,
        elapsed,
    })
}
