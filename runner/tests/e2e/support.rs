//! The end-to-end harness: a store (SQLite or PostgreSQL), a repository on the test's OpenSSH
//! git server, the vault, and a worker running the `script` agent in the real sandbox.
//!
//! Needs Docker with Paddock's images, and the test git server (`paddock_sshd`). With `CI` set a
//! missing service fails the test; otherwise the test is skipped with a printed reason.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use git2::{Repository, RepositoryInitOptions, Signature};
use paddock::lifecycle::State;
use paddock::store::Store;
use paddock::store::issues::{Issue, NewIssue};
use paddock::vault::KeyRing;
use paddock::worker::{StoreSources, Worker, WorkerConfig, adapters};
use tokio_util::sync::CancellationToken;

/// Fails under CI, skips otherwise.
pub fn missing(what: &str) -> bool {
    if std::env::var_os("CI").is_some() {
        panic!("CI is set but {what} is missing");
    }
    eprintln!("skipping: {what} is missing");
    false
}

/// The test git server.
pub struct Ssh {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub host_key: String,
    pub deploy_key: String,
    pub repos: PathBuf,
}

pub fn ssh() -> Option<Ssh> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let (Some(host), Some(port), Some(user), Some(hk), Some(dk), Some(repos)) = (
        get("PADDOCK_TEST_SSH_HOST"),
        get("PADDOCK_TEST_SSH_PORT"),
        get("PADDOCK_TEST_SSH_USER"),
        get("PADDOCK_TEST_SSH_HOST_KEY"),
        get("PADDOCK_TEST_SSH_DEPLOY_KEY"),
        get("PADDOCK_TEST_SSH_REPOS"),
    ) else {
        missing(
            "the test git server (PADDOCK_TEST_SSH_*; run `. scripts/services.sh; paddock_sshd`)",
        );
        return None;
    };
    Some(Ssh {
        host,
        port: port.parse().unwrap(),
        user,
        host_key: std::fs::read_to_string(hk).unwrap(),
        deploy_key: std::fs::read_to_string(dk).unwrap(),
        repos: PathBuf::from(repos),
    })
}

pub fn docker_ready() -> bool {
    let ok = std::process::Command::new("docker")
        .args([
            "image",
            "inspect",
            "paddock/agent:latest",
            "paddock/egress:latest",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    ok || missing("Docker with Paddock's images (run `sandbox-images/build.sh`)")
}

/// A bare repository on the server, removed on drop.
pub struct ServerRepo {
    pub path: PathBuf,
    pub url: String,
}

impl Drop for ServerRepo {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn chown_tree(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
    if path.is_dir() && !path.is_symlink() {
        for e in std::fs::read_dir(path).unwrap() {
            chown_tree(&e.unwrap().path(), uid, gid);
        }
    }
}

pub fn unique(name: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{name}-{}-{t}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl Ssh {
    pub fn known_hosts(&self) -> String {
        let mut f = self.host_key.split_whitespace();
        let (t, k) = (f.next().unwrap(), f.next().unwrap());
        format!("[{}]:{} {t} {k}\n", self.host, self.port)
    }

    /// A bare repository with `files` committed on `main`.
    pub fn repo(&self, files: &[(&str, &str)]) -> ServerRepo {
        let path = self.repos.join(format!("{}.git", unique("e2e")));
        let mut opts = RepositoryInitOptions::new();
        opts.bare(true)
            .initial_head("main")
            .external_template(false);
        let repo = Repository::init_opts(&path, &opts).unwrap();
        let mut tb = repo.treebuilder(None).unwrap();
        for (name, text) in files {
            tb.insert(name, repo.blob(text.as_bytes()).unwrap(), 0o100_644)
                .unwrap();
        }
        let tree = repo.find_tree(tb.write().unwrap()).unwrap();
        let sig = Signature::now("Test", "test@localhost").unwrap();
        repo.commit(Some("refs/heads/main"), &sig, &sig, "seed", &tree, &[])
            .unwrap();
        let user = nix::unistd::User::from_name(&self.user)
            .unwrap()
            .expect("git user");
        chown_tree(&path, user.uid.as_raw(), user.gid.as_raw());
        let url = format!(
            "ssh://{}@{}:{}{}",
            self.user,
            self.host,
            self.port,
            path.display()
        );
        ServerRepo { path, url }
    }
}

impl ServerRepo {
    /// Branch names on the server.
    pub fn branches(&self) -> Vec<String> {
        let repo = Repository::open_bare(&self.path).unwrap();
        let mut out: Vec<String> = repo
            .branches(Some(git2::BranchType::Local))
            .unwrap()
            .map(|b| b.unwrap().0.name().unwrap().unwrap().to_owned())
            .collect();
        out.sort();
        out
    }

    /// A file's content on a branch.
    pub fn file(&self, branch: &str, path: &str) -> Option<Vec<u8>> {
        let repo = Repository::open_bare(&self.path).unwrap();
        let tree = repo
            .find_reference(&format!("refs/heads/{branch}"))
            .ok()?
            .peel_to_tree()
            .unwrap();
        let entry = tree.get_path(Path::new(path)).ok()?;
        let obj = entry.to_object(&repo).unwrap();
        Some(obj.as_blob()?.content().to_vec())
    }

    /// A tree entry's file mode on a branch.
    pub fn mode(&self, branch: &str, path: &str) -> Option<i32> {
        let repo = Repository::open_bare(&self.path).unwrap();
        let tree = repo
            .find_reference(&format!("refs/heads/{branch}"))
            .ok()?
            .peel_to_tree()
            .unwrap();
        Some(tree.get_path(Path::new(path)).ok()?.filemode())
    }
}

/// One workspace with one repository and a worker that can be started and stopped.
pub struct Harness {
    pub store: Store,
    pub ring: Arc<KeyRing>,
    pub ws: i64,
    pub repo: ServerRepo,
    pub repo_id: i64,
    pub dir: tempfile::TempDir,
    pub name: String,
}

/// The vault key ring of every harness (runner processes get it in their config).
pub const VAULT_KEY: &str = "1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

pub const SAMPLE: &[(&str, &str)] = &[
    ("README.md", "# sample\n"),
    (
        "greet.py",
        "def greet(name):\n    return \"Hello, world\"\n",
    ),
];

impl Harness {
    /// `None` when a service is missing (and `CI` is unset).
    pub async fn new(store: Store) -> Option<Harness> {
        Harness::with_files(store, SAMPLE).await
    }

    /// A harness whose repository starts with `files` on `main`.
    pub async fn with_files(store: Store, files: &[(&str, &str)]) -> Option<Harness> {
        if !docker_ready() {
            return None;
        }
        let ssh = ssh()?;
        let repo = ssh.repo(files);
        let ring = Arc::new(KeyRing::parse(&[VAULT_KEY]).unwrap());
        let name = unique("ws");
        let ws = store.ensure_workspace(&name).await.unwrap().id;
        store
            .put_secret(&ring, ws, "deploy-key", &ssh.deploy_key)
            .await
            .unwrap();
        let r = store
            .create_repo(
                ws,
                &paddock::store::NewRepo {
                    name: "sample".into(),
                    url: repo.url.clone(),
                    default_branch: "main".into(),
                    credential: Some("deploy-key".into()),
                    ssh_known_hosts: Some(ssh.known_hosts()),
                    branch_prefix: "paddock".into(),
                },
            )
            .await
            .unwrap();
        Some(Harness {
            store,
            ring,
            ws,
            repo,
            repo_id: r.id,
            dir: tempfile::tempdir().unwrap(),
            name,
        })
    }

    pub async fn issue(&self, title: &str, body: &str) -> Issue {
        self.store
            .create_issue(
                self.ws,
                &NewIssue {
                    kind: "task",
                    title: title.into(),
                    body: body.into(),
                    tags: vec![],
                    priority: 0,
                    state: State::Todo,
                    created_by: None,
                    repo_id: Some(self.repo_id),
                },
            )
            .await
            .unwrap()
    }

    pub fn config(&self, runner: &str, script: &str) -> WorkerConfig {
        let over = adapters::AdapterOverride {
            command: Some(vec!["/bin/sh".into(), "-c".into(), script.into()]),
            timeout_secs: Some(120),
            ..adapters::AdapterOverride::default()
        };
        WorkerConfig {
            name: runner.into(),
            workspace: self.name.clone(),
            concurrency: 1,
            state_dir: self.dir.path().join(runner),
            lease: Duration::from_secs(60),
            heartbeat: Duration::from_secs(2),
            kill_poll: Duration::from_millis(250),
            grace: Duration::from_secs(5),
            poll: Duration::from_millis(100),
            max_attempts: 3,
            agent: adapters::resolve("script", Some(&over)).unwrap(),
            egress: paddock::sandbox::proxy::EgressSettings::default(),
            egress_allow_ranges: Vec::new(),
            uid_first: paddock::config::DEFAULT_UID_FIRST,
        }
    }

    /// Starts a worker; stop it with the returned token (then await the handle).
    pub async fn start(
        &self,
        cfg: WorkerConfig,
    ) -> (CancellationToken, tokio::task::JoinHandle<()>) {
        let sources = Arc::new(StoreSources::new(
            self.store.clone(),
            Arc::clone(&self.ring),
        ));
        let worker = Worker::prepare(cfg, self.store.clone(), sources.clone(), sources)
            .await
            .unwrap();
        let stop = CancellationToken::new();
        let h = tokio::spawn(worker.run(stop.clone()));
        (stop, h)
    }

    /// Waits until the issue is in a state `done` accepts.
    pub async fn wait(&self, id: i64, timeout: Duration, done: impl Fn(State) -> bool) -> Issue {
        let deadline = Instant::now() + timeout;
        loop {
            let i = self.store.get_issue(self.ws, id).await.unwrap();
            if i.state().is_some_and(&done) {
                return i;
            }
            assert!(
                Instant::now() < deadline,
                "issue {id} still {} after {timeout:?}",
                i.state
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn comments(&self, id: i64) -> Vec<String> {
        self.store
            .list_comments(self.ws, id)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.body)
            .collect()
    }
}

/// A fresh SQLite store in `dir`.
pub async fn sqlite(dir: &Path) -> Store {
    let url = format!("sqlite://{}?mode=rwc", dir.join("paddock.db").display());
    let s = Store::connect(&url, 8).await.unwrap();
    s.migrate().await.unwrap();
    s
}
