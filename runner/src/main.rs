//! The `paddock` binary.
#![forbid(unsafe_code)]

use std::io::{BufRead, Read, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use paddock::auth::secrets;
use paddock::config::{Config, ProcessEnv};
use paddock::lifecycle::{Role, State};
use paddock::store::NewRepo;
use paddock::store::Store;
use paddock::store::issues::{IssueFilter, NewIssue};
use paddock::vault::keyfile::KeySource;
use paddock::vault::{KeyRing, MAX_SECRET_BYTES};
use zeroize::Zeroizing;

#[derive(Parser)]
#[command(
    name = "paddock",
    version,
    about = "Runs coding agents on a team's issues without trusting them"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Clone)]
struct DbArgs {
    /// Config file (TOML); PADDOCK_* variables override it.
    #[arg(long, env = "PADDOCK_CONFIG")]
    config: Option<PathBuf>,
    /// Database URL (overrides the config's database_url).
    #[arg(long)]
    database_url: Option<String>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the API.
    Serve {
        /// Config file (TOML); PADDOCK_* variables override it.
        #[arg(long, env = "PADDOCK_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Apply database migrations.
    Migrate(DbArgs),
    /// Manage users.
    #[command(subcommand)]
    User(UserCmd),
    /// Manage API keys.
    #[command(subcommand)]
    Apikey(ApikeyCmd),
    /// Create and list issues (for scripts).
    #[command(subcommand)]
    Issue(IssueCmd),
    /// Check the audit ledger's hash chain.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Sealed secrets of a workspace (values are read from stdin and never printed).
    #[command(subcommand)]
    Secret(SecretCmd),
    /// Repositories the runner works on.
    #[command(subcommand)]
    Repo(RepoCmd),
    /// The vault key ring.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// The workspace kill switch.
    #[command(subcommand)]
    Runs(RunsCmd),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCmd),
    /// Run commands in the agent sandbox.
    #[command(subcommand)]
    Sandbox(SandboxCmd),
    /// The main job on embedded defaults: SQLite in a temporary directory, a local git server
    /// with a sample project, one issue, the sandboxed `script` agent; prints the pushed branch.
    Demo {
        /// Directory for the demo's files (default: a fresh temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Agent image.
        #[arg(long, default_value = "paddock/agent:latest")]
        image: String,
        /// Longest wait for the run, seconds.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Build the sandbox images (from Debian packages; unchanged images are skipped).
    #[command(subcommand)]
    Images(paddock::images::ImagesCmd),
}

#[derive(Subcommand)]
enum SandboxCmd {
    /// Run CMD as the agent in a full sandbox (same network, proxy and profile as a real run),
    /// stream its output and exit with its status (124 on timeout, 125 when it could not run).
    Run {
        /// Agent image.
        #[arg(long, default_value = paddock::sandbox_cli::DEFAULT_IMAGE)]
        image: String,
        /// Directory copied into /workspace before CMD starts.
        #[arg(long)]
        workspace: Option<PathBuf>,
        /// Wall-clock limit in seconds.
        #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..))]
        timeout: u64,
        /// Nameserver (ip:port) of the egress proxy; repeatable. Default: Docker's embedded DNS
        /// on the proxy's network, which forwards to the host's resolvers.
        #[arg(long = "nameserver")]
        nameservers: Vec<std::net::SocketAddr>,
        /// Host directory for the proxy's config and sockets.
        #[arg(long, default_value = "/run/paddock/egress")]
        egress_dir: PathBuf,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

/// Prints the sandbox's (scrubbed) output as it arrives.
struct StdioSink;

impl paddock::sandbox::OutputSink for StdioSink {
    fn output(&mut self, stream: paddock::sandbox::OutputStream, bytes: &[u8]) {
        // A closed terminal must not stop the run; the outcome still holds the output.
        let _ = match stream {
            paddock::sandbox::OutputStream::Stdout => {
                let mut o = std::io::stdout().lock();
                o.write_all(bytes).and_then(|()| o.flush())
            }
            paddock::sandbox::OutputStream::Stderr => {
                let mut e = std::io::stderr().lock();
                e.write_all(bytes).and_then(|()| e.flush())
            }
        };
    }
}

#[derive(Subcommand)]
enum UserCmd {
    /// Add a user (password read from stdin) to a workspace, creating the workspace if missing.
    Add {
        #[command(flatten)]
        db: DbArgs,
        #[arg(long)]
        email: String,
        #[arg(long)]
        workspace: String,
        /// admin, maintainer, reviewer or reporter.
        #[arg(long)]
        role: String,
    },
}

#[derive(Subcommand)]
enum ApikeyCmd {
    /// Create an API key and print it once.
    Create {
        #[command(flatten)]
        db: DbArgs,
        /// The owner's e-mail.
        #[arg(long)]
        user: String,
        #[arg(long)]
        name: String,
        /// Workspace the key acts in (default: the user's only workspace).
        #[arg(long)]
        workspace: Option<String>,
        /// A runner key (claims work) instead of a personal key.
        #[arg(long)]
        runner: bool,
        /// Expiry in days (default: never).
        #[arg(long)]
        expires_days: Option<u32>,
    },
}

#[derive(Subcommand)]
enum IssueCmd {
    /// Create an issue; prints its id.
    Create {
        #[command(flatten)]
        db: DbArgs,
        #[arg(long)]
        workspace: String,
        #[arg(long)]
        title: String,
        #[arg(long, default_value = "")]
        body: String,
        #[arg(long, default_value_t = 0)]
        priority: i64,
        /// backlog or todo.
        #[arg(long, default_value = "backlog")]
        state: String,
        /// task or bug.
        #[arg(long, default_value = "task")]
        kind: String,
    },
    /// List issues as JSON lines.
    List {
        #[command(flatten)]
        db: DbArgs,
        #[arg(long)]
        workspace: String,
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
}

#[derive(Subcommand)]
enum SecretCmd {
    /// Seal the value read from stdin as NAME (a one-line value loses its line ending).
    Set {
        #[command(flatten)]
        db: DbArgs,
        #[arg(long, default_value = "default")]
        workspace: String,
        name: String,
    },
    /// Secret names, key versions and dates.
    List {
        #[command(flatten)]
        db: DbArgs,
        #[arg(long, default_value = "default")]
        workspace: String,
    },
    /// Delete a secret (refused while a repository uses it).
    Rm {
        #[command(flatten)]
        db: DbArgs,
        #[arg(long, default_value = "default")]
        workspace: String,
        name: String,
    },
}

#[derive(Subcommand)]
enum RepoCmd {
    /// Register a repository.
    Add {
        #[command(flatten)]
        db: DbArgs,
        #[arg(long, default_value = "default")]
        workspace: String,
        name: String,
        /// ssh://…, user@host:path or https://… (a local path only with runner.allow_local_repos).
        url: String,
        #[arg(long, default_value = "main")]
        default_branch: String,
        /// Name of the secret holding the deploy key (SSH) or token (HTTPS, `user:token` or token).
        #[arg(long)]
        credential: Option<String>,
        /// File of pinned SSH host keys (OpenSSH known_hosts lines); required for SSH URLs.
        #[arg(long)]
        known_hosts: Option<PathBuf>,
        #[arg(long, default_value = "paddock/")]
        branch_prefix: String,
    },
    /// Registered repositories as JSON lines.
    List {
        #[command(flatten)]
        db: DbArgs,
        #[arg(long, default_value = "default")]
        workspace: String,
    },
}

#[derive(Subcommand)]
enum KeysCmd {
    /// Re-seal every secret under the newest key of the ring (online; safe to repeat).
    Rotate(DbArgs),
    /// Print a new random key entry `<version>:<base64>` to add to vault.keys.
    Generate {
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        version: u32,
    },
}

#[derive(Subcommand)]
enum RunsCmd {
    /// Set the kill switch: no claims, and runners stop the workspace's live runs.
    Pause {
        #[command(flatten)]
        db: DbArgs,
        #[arg(long, default_value = "default")]
        workspace: String,
    },
    /// Clear the kill switch.
    Resume {
        #[command(flatten)]
        db: DbArgs,
        #[arg(long, default_value = "default")]
        workspace: String,
    },
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Recompute every hash of the audit chain.
    Verify(DbArgs),
}

#[derive(Subcommand)]
enum BenchCmd {
    /// N claimers race over M fresh todo issues; prints claims/s and checks exactly-once.
    Claim {
        #[arg(long)]
        database_url: String,
        #[arg(long, default_value_t = 8)]
        claimers: usize,
        #[arg(long, default_value_t = 2000)]
        issues: usize,
        /// Run each claimer as a separate process instead of a task.
        #[arg(long)]
        processes: bool,
    },
    /// Paddock's own overhead per issue (claim → branch pushed, minus the agent's time), over
    /// N issues with the `script` agent in the real sandbox and a local git server.
    Runner {
        /// Issues to run.
        #[arg(long, default_value_t = 20)]
        runs: usize,
        /// Agent image.
        #[arg(long, default_value = "paddock/agent:latest")]
        image: String,
    },
    /// One claimer process (used by `bench claim --processes` and the tests): claims until nothing
    /// is left and prints one claimed issue id per line.
    #[command(hide = true)]
    ClaimWorker {
        #[arg(long)]
        database_url: String,
        #[arg(long)]
        workspace_id: i64,
        #[arg(long)]
        runner: String,
        #[arg(long, default_value_t = 600_000)]
        lease_ms: i64,
        /// Claim at most one issue, print it, then sleep this long holding the lease.
        #[arg(long)]
        hold_ms: Option<u64>,
    },
}

fn load_config(path: Option<&PathBuf>) -> Result<Config> {
    Ok(Config::load(path.map(PathBuf::as_path), &ProcessEnv)?)
}

fn database_url(db: &DbArgs) -> Result<String> {
    Ok(match &db.database_url {
        Some(u) => u.clone(),
        None => match &db.config {
            Some(_) => load_config(db.config.as_ref())?.database_url,
            None => std::env::var("PADDOCK_DATABASE_URL")
                .context("give --database-url, --config FILE, or PADDOCK_DATABASE_URL")?,
        },
    })
}

/// The key ring: from the config file when given, else from PADDOCK_VAULT_* (or the development
/// key file beside a SQLite database). An ephemeral key is refused: it would die with the tool.
fn key_ring(db: &DbArgs) -> Result<KeyRing> {
    let (ring, source) = match &db.config {
        Some(_) => KeyRing::from_config(&load_config(db.config.as_ref())?)?,
        None => KeyRing::from_env(&ProcessEnv, &database_url(db)?)?,
    };
    if source == KeySource::Ephemeral {
        bail!("no vault key ring: set [vault] keys or PADDOCK_VAULT_KEYS");
    }
    Ok(ring)
}

/// Whether local repository paths are allowed (runner.allow_local_repos).
fn allow_local(db: &DbArgs) -> Result<bool> {
    match &db.config {
        Some(_) => Ok(load_config(db.config.as_ref())?.runner.allow_local_repos),
        None => Ok(std::env::var("PADDOCK_RUNNER_ALLOW_LOCAL_REPOS")
            .is_ok_and(|v| matches!(v.trim(), "1" | "true" | "yes" | "on"))),
    }
}

async fn workspace_id(store: &Store, name: &str) -> Result<i64> {
    Ok(store
        .workspace_by_name(name)
        .await?
        .with_context(|| format!("no workspace named {name}"))?
        .id)
}

/// A secret value from stdin: bounded; a single line loses its line ending, anything longer
/// (an SSH key) is kept byte for byte.
fn read_secret() -> Result<Zeroizing<String>> {
    let mut buf = Zeroizing::new(Vec::new());
    std::io::stdin()
        .lock()
        .take(u64::try_from(MAX_SECRET_BYTES).unwrap_or(u64::MAX) + 3)
        .read_to_end(&mut buf)
        .context("cannot read the secret from stdin")?;
    let text = Zeroizing::new(
        String::from_utf8(std::mem::take(&mut *buf))
            .map_err(|_| anyhow::anyhow!("the secret is not UTF-8 text"))?,
    );
    let trimmed = text.trim_end_matches(['\n', '\r']);
    let value = if trimmed.contains('\n') {
        text.to_string()
    } else {
        trimmed.to_string()
    };
    if value.is_empty() {
        bail!("no secret on stdin");
    }
    Ok(Zeroizing::new(value))
}

async fn open(db: &DbArgs) -> Result<Store> {
    let url = database_url(db)?;
    let store = Store::connect(&url, 4)
        .await
        .context("cannot open the database")?;
    store
        .migrate()
        .await
        .context("cannot migrate the database")?;
    Ok(store)
}

fn read_password() -> Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from stdin")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Serve { config } => {
            let config = load_config(config.as_ref())?;
            paddock::server::init_tracing();
            paddock::server::serve(config).await?;
        }
        Cmd::Migrate(db) => {
            open(&db).await?;
            println!("migrations applied");
        }
        Cmd::User(UserCmd::Add {
            db,
            email,
            workspace,
            role,
        }) => {
            let role = Role::parse(&role)
                .context("--role must be admin, maintainer, reviewer or reporter")?;
            let email = paddock::api::validate::email(&email)
                .map_err(|e| anyhow::anyhow!("--email: {e}"))?;
            let workspace = paddock::api::validate::workspace_name(&workspace)
                .map_err(|e| anyhow::anyhow!("--workspace: {e}"))?;
            let password = read_password()?;
            let hash = secrets::hash_password(&password)?;
            let store = open(&db).await?;
            let ws = store.ensure_workspace(&workspace).await?;
            let user = store.create_user(&email, &hash).await?;
            store.set_membership(ws.id, user.id, role).await?;
            println!(
                "user {} added to workspace {} as {}",
                user.id,
                ws.name,
                role.as_str()
            );
        }
        Cmd::Apikey(ApikeyCmd::Create {
            db,
            user,
            name,
            workspace,
            runner,
            expires_days,
        }) => {
            let store = open(&db).await?;
            let u = store.user_by_email(&user).await?.context("no such user")?;
            let ms = store.memberships(u.id).await?;
            let m = match workspace {
                Some(w) => ms
                    .into_iter()
                    .find(|m| m.workspace == w)
                    .context("the user is not a member of that workspace")?,
                None => {
                    if ms.len() != 1 {
                        bail!(
                            "the user belongs to {} workspaces; pass --workspace",
                            ms.len()
                        );
                    }
                    ms.into_iter().next().context("no membership")?
                }
            };
            if runner && m.role != "admin" {
                bail!("only an admin may create a runner key");
            }
            let expires =
                expires_days.map(|d| paddock::store::now_ms() + i64::from(d) * 86_400_000);
            let (key, hash, prefix) = secrets::new_api_key();
            store
                .insert_api_key(
                    u.id,
                    m.workspace_id,
                    if runner { "runner" } else { "user" },
                    &name,
                    &hash,
                    &prefix,
                    expires,
                )
                .await?;
            eprintln!("store this key now; it is not shown again");
            println!("{key}");
        }
        Cmd::Issue(IssueCmd::Create {
            db,
            workspace,
            title,
            body,
            priority,
            state,
            kind,
        }) => {
            let state = match State::parse(&state) {
                Some(s @ (State::Backlog | State::Todo)) => s,
                _ => bail!("--state must be backlog or todo"),
            };
            let kind = match kind.as_str() {
                "task" => "task",
                "bug" => "bug",
                _ => bail!("--kind must be task or bug"),
            };
            let title = paddock::api::validate::title(&title)
                .map_err(|e| anyhow::anyhow!("--title: {e}"))?;
            let body = paddock::api::validate::body(&body, true)
                .map_err(|e| anyhow::anyhow!("--body: {e}"))?;
            let store = open(&db).await?;
            let ws = store
                .workspace_by_name(&workspace)
                .await?
                .context("no such workspace")?;
            let issue = store
                .create_issue(
                    ws.id,
                    &NewIssue {
                        kind,
                        title,
                        body,
                        tags: vec![],
                        priority,
                        state,
                        created_by: None,
                        repo_id: None,
                    },
                )
                .await?;
            println!("{}", issue.id);
        }
        Cmd::Issue(IssueCmd::List {
            db,
            workspace,
            state,
            limit,
        }) => {
            let store = open(&db).await?;
            let ws = store
                .workspace_by_name(&workspace)
                .await?
                .context("no such workspace")?;
            let state = match state {
                Some(s) => Some(State::parse(&s).context("--state is not a state")?),
                None => None,
            };
            let f = IssueFilter {
                state,
                limit: limit.clamp(1, 10_000),
                ..Default::default()
            };
            let mut out = std::io::stdout().lock();
            for i in store.list_issues(ws.id, &f).await? {
                writeln!(out, "{}", serde_json::to_string(&i.view())?)?;
            }
        }
        Cmd::Audit(AuditCmd::Verify(db)) => {
            let store = open(&db).await?;
            match store.verify_audit_chain().await? {
                paddock::store::audit::ChainCheck::Intact { events } => {
                    println!("audit chain intact: {events} events")
                }
                paddock::store::audit::ChainCheck::Broken { at_id } => {
                    bail!("audit chain broken at event {at_id}")
                }
            }
        }
        Cmd::Secret(SecretCmd::Set {
            db,
            workspace,
            name,
        }) => {
            let ring = key_ring(&db)?;
            let value = read_secret()?;
            let store = open(&db).await?;
            let ws = workspace_id(&store, &workspace).await?;
            let meta = store.put_secret(&ring, ws, &name, &value).await?;
            println!(
                "secret {} sealed under key version {}",
                meta.name, meta.key_version
            );
        }
        Cmd::Secret(SecretCmd::List { db, workspace }) => {
            let store = open(&db).await?;
            let ws = workspace_id(&store, &workspace).await?;
            let mut out = std::io::stdout().lock();
            for m in store.list_secrets(ws).await? {
                writeln!(out, "{}", serde_json::to_string(&m)?)?;
            }
        }
        Cmd::Secret(SecretCmd::Rm {
            db,
            workspace,
            name,
        }) => {
            let store = open(&db).await?;
            let ws = workspace_id(&store, &workspace).await?;
            store.delete_secret(ws, &name).await?;
            println!("secret {name} deleted");
        }
        Cmd::Repo(RepoCmd::Add {
            db,
            workspace,
            name,
            url,
            default_branch,
            credential,
            known_hosts,
            branch_prefix,
        }) => {
            let ssh_known_hosts = match known_hosts {
                Some(p) => Some(
                    std::fs::read_to_string(&p)
                        .with_context(|| format!("cannot read {}", p.display()))?,
                ),
                None => None,
            };
            let local = allow_local(&db)?;
            let store = open(&db).await?;
            let ws = workspace_id(&store, &workspace).await?;
            let repo = store
                .create_repo_allowing_local(
                    ws,
                    &NewRepo {
                        name,
                        url,
                        default_branch,
                        credential,
                        ssh_known_hosts,
                        branch_prefix,
                    },
                    local,
                )
                .await?;
            println!("repository {} registered (id {})", repo.name, repo.id);
        }
        Cmd::Repo(RepoCmd::List { db, workspace }) => {
            let store = open(&db).await?;
            let ws = workspace_id(&store, &workspace).await?;
            let mut out = std::io::stdout().lock();
            for r in store.list_repos(ws).await? {
                writeln!(out, "{}", serde_json::to_string(&r)?)?;
            }
        }
        Cmd::Keys(KeysCmd::Rotate(db)) => {
            let ring = key_ring(&db)?;
            let store = open(&db).await?;
            let r = store.rotate_secrets(&ring).await?;
            println!(
                "rotation done: current key version {}, {} re-sealed, {} changed meanwhile",
                r.current_version, r.resealed, r.skipped
            );
            for (v, n) in store.secret_key_versions().await? {
                println!("key version {v}: {n} secrets");
            }
        }
        Cmd::Keys(KeysCmd::Generate { version }) => {
            let entry = KeyRing::generate_entry(version);
            println!("{}", entry.as_str());
        }
        Cmd::Runs(RunsCmd::Pause { db, workspace }) => {
            let store = open(&db).await?;
            let ws = workspace_id(&store, &workspace).await?;
            store.set_runs_paused(ws, true).await?;
            println!("runs of workspace {workspace} paused: nothing is claimed, live runs stop");
        }
        Cmd::Runs(RunsCmd::Resume { db, workspace }) => {
            let store = open(&db).await?;
            let ws = workspace_id(&store, &workspace).await?;
            store.set_runs_paused(ws, false).await?;
            println!("runs of workspace {workspace} resumed");
        }
        Cmd::Sandbox(SandboxCmd::Run {
            image,
            workspace,
            timeout,
            nameservers,
            egress_dir,
            command,
        }) => {
            let mut egress = paddock::sandbox::proxy::EgressSettings {
                state_dir: egress_dir,
                ..Default::default()
            };
            if !nameservers.is_empty() {
                egress.nameservers = nameservers;
            }
            let req = paddock::sandbox_cli::SandboxRun {
                image,
                workspace,
                timeout: std::time::Duration::from_secs(timeout),
                command,
                egress,
            };
            let code = match paddock::sandbox_cli::sandbox_run(req, &mut StdioSink).await {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("paddock sandbox run: {e}");
                    paddock::sandbox::EXIT_REFUSED
                }
            };
            std::process::exit(i32::from(code));
        }
        Cmd::Demo {
            dir,
            image,
            timeout,
        } => {
            let opts = paddock::demo::DemoOptions {
                dir,
                image,
                timeout: std::time::Duration::from_secs(timeout),
            };
            let mut out = std::io::stdout();
            let report = paddock::demo::run(opts, &mut out).await?;
            writeln!(out, "\nfiles of this demo: {}", report.dir.display())?;
        }
        Cmd::Images(cmd) => paddock::images::run(cmd).await?,
        Cmd::Bench(BenchCmd::Runner { runs, image }) => {
            let dir =
                std::env::temp_dir().join(format!("paddock-bench-runner-{}", std::process::id()));
            std::fs::create_dir_all(&dir)?;
            let report = paddock::bench_runner::run(&dir, runs.max(1), &image).await;
            let _ = std::fs::remove_dir_all(&dir);
            report?.print(&mut std::io::stdout());
        }
        Cmd::Bench(BenchCmd::Claim {
            database_url,
            claimers,
            issues,
            processes,
        }) => {
            bench_claim(&database_url, claimers.max(1), issues, processes).await?;
        }
        Cmd::Bench(BenchCmd::ClaimWorker {
            database_url,
            workspace_id,
            runner,
            lease_ms,
            hold_ms,
        }) => {
            let store = Store::connect(&database_url, 1).await?;
            let mut out = std::io::stdout().lock();
            if let Some(hold) = hold_ms {
                if let Some(c) = store.claim(workspace_id, &runner, lease_ms).await? {
                    writeln!(out, "{}", c.issue.id)?;
                    out.flush()?;
                }
                tokio::time::sleep(std::time::Duration::from_millis(hold)).await;
            } else {
                // Collect first so printing never slows the race.
                let ids =
                    paddock::bench::claim_all(&store, workspace_id, &runner, lease_ms).await?;
                for id in ids {
                    writeln!(out, "{id}")?;
                }
            }
        }
    }
    Ok(())
}

async fn bench_claim(url: &str, claimers: usize, issues: usize, processes: bool) -> Result<()> {
    let pool = u32::try_from(claimers + 1).unwrap_or(u32::MAX);
    let store = Store::connect(url, pool)
        .await
        .context("cannot open the database")?;
    store.migrate().await?;
    let report = if processes {
        let ws = paddock::bench::seed(&store, issues).await?;
        let exe = std::env::current_exe()?;
        let start = Instant::now();
        let mut children = Vec::new();
        for c in 0..claimers {
            children.push(
                tokio::process::Command::new(&exe)
                    .args([
                        "bench",
                        "claim-worker",
                        "--database-url",
                        url,
                        "--workspace-id",
                        &ws.to_string(),
                    ])
                    .args(["--runner", &format!("bench-p{c}")])
                    .stdout(std::process::Stdio::piped())
                    .spawn()?,
            );
        }
        let mut all = Vec::new();
        for ch in children {
            let out = ch.wait_with_output().await?;
            if !out.status.success() {
                bail!("a claimer process failed: {}", out.status);
            }
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                all.push(line.trim().parse::<i64>()?);
            }
        }
        let elapsed = start.elapsed();
        paddock::bench::report(&store, ws, claimers, issues, all, elapsed).await?
    } else {
        paddock::bench::run_in_process(&store, claimers, issues).await?
    };
    println!(
        "backend={} claimers={} mode={} issues={} claimed={} distinct={} left_todo={} elapsed_ms={} claims_per_sec={:.0} exactly_once={}",
        report.backend,
        report.claimers,
        if processes { "processes" } else { "tasks" },
        report.issues,
        report.claimed,
        report.distinct,
        report.left_todo,
        report.elapsed.as_millis(),
        report.rate(),
        report.exactly_once()
    );
    if !report.exactly_once() {
        bail!("exactly-once violated");
    }
    Ok(())
}
