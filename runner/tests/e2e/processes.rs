//! Runner processes (`paddock serve` with the runner enabled) sharing one PostgreSQL: exactly
//! once across processes, and a runner killed mid-run.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use paddock::lifecycle::State;
use paddock::store::Store;

use crate::support::{Harness, VAULT_KEY, missing, unique};

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    fn term(&mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.0.id()).unwrap());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if self.0.try_wait().unwrap().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the runner did not stop within 60 s of SIGTERM");
    }
}

async fn postgres() -> Option<(String, Store)> {
    let Ok(admin) = std::env::var("PADDOCK_TEST_POSTGRES_URL") else {
        missing(
            "PostgreSQL (PADDOCK_TEST_POSTGRES_URL; run `. scripts/services.sh; paddock_postgres`)",
        );
        return None;
    };
    let name = format!("paddock_e2e_{}", uuid::Uuid::new_v4().simple());
    let a = Store::connect(&admin, 1).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(a.pool())
        .await
        .unwrap();
    a.close().await;
    let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap();
    let url = format!("{base}/{name}");
    let store = Store::connect(&url, 8).await.unwrap();
    store.migrate().await.unwrap();
    Some((url, store))
}

struct Runner<'a> {
    name: &'a str,
    concurrency: u32,
    lease_secs: u64,
    script: &'a str,
}

fn spawn(h: &Harness, db: &str, r: &Runner<'_>) -> Proc {
    let dir = h.dir.path().join(format!("{}-cfg", r.name));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("paddock.toml");
    let script = serde_json::to_string(r.script).unwrap();
    std::fs::write(
        &cfg,
        format!(
            r#"listen = "127.0.0.1:0"
database_url = "{db}"
session_secret = "{secret}"
[claim]
reaper_interval_secs = 1
max_attempts = 3
[vault]
keys = ["{key}"]
[runner]
enabled = true
name = "{name}"
workspace = "{ws}"
concurrency = {conc}
state_dir = "{state}"
lease_secs = {lease}
heartbeat_secs = 1
grace_secs = 5
poll_ms = 100
default_agent = "script"
[runner.agents.script]
command = ["/bin/sh", "-c", {script}]
timeout_secs = 600
"#,
            secret = "e2e-session-secret-0123456789abcdef-xyz",
            name = r.name,
            ws = h.name,
            conc = r.concurrency,
            state = h.dir.path().join(r.name).display(),
            lease = r.lease_secs,
            key = VAULT_KEY,
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_paddock"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    Proc(child)
}

fn log_of(h: &Harness, name: &str) -> String {
    std::fs::read_to_string(h.dir.path().join(format!("{name}-cfg")).join("log"))
        .unwrap_or_default()
}

fn containers(prefix: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args(["ps", "-a", "--format", "{{.Names}}"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|n| n.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_runner_processes_on_one_postgres_process_twenty_issues_exactly_once() {
    let Some((url, store)) = postgres().await else {
        return;
    };
    let Some(h) = Harness::new(store).await else {
        return;
    };
    let mut ids = Vec::new();
    for n in 0..20 {
        ids.push(h.issue(&format!("issue {n}"), "").await.id);
    }
    let script = "cd /workspace && grep -o '\"id\":[0-9]*' /paddock/task.md | head -n 1 > DONE.txt";
    let (a, b) = (unique("ra"), unique("rb"));
    let mut p1 = spawn(
        &h,
        &url,
        &Runner {
            name: &a,
            concurrency: 2,
            lease_secs: 120,
            script,
        },
    );
    let mut p2 = spawn(
        &h,
        &url,
        &Runner {
            name: &b,
            concurrency: 2,
            lease_secs: 120,
            script,
        },
    );
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let mut left = 0;
        for id in &ids {
            let i = h.store.get_issue(h.ws, *id).await.unwrap();
            match i.state() {
                Some(State::InReview) => {}
                Some(State::Todo | State::InProgress) => left += 1,
                _ => panic!(
                    "issue {id} ended {}: {:?}\n{}",
                    i.state,
                    h.comments(*id).await,
                    log_of(&h, &a)
                ),
            }
        }
        if left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{left} issues left\n{}\n{}",
            log_of(&h, &a),
            log_of(&h, &b)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    p1.term();
    p2.term();
    let branches = h.repo.branches();
    assert_eq!(branches.len(), 21, "{branches:?}");
    let mut by = std::collections::HashMap::<String, usize>::new();
    for id in &ids {
        let runs = h.store.list_runs(h.ws, Some(*id), None, 10).await.unwrap();
        assert_eq!(runs.len(), 1, "issue {id} ran {} times", runs.len());
        *by.entry(runs[0].runner_name.clone()).or_default() += 1;
        let branch = format!("paddock/{id}-1");
        assert!(branches.contains(&branch));
        let done = String::from_utf8(h.repo.file(&branch, "DONE.txt").unwrap()).unwrap();
        assert_eq!(done.trim(), format!("\"id\":{id}"));
    }
    assert_eq!(by.values().sum::<usize>(), 20);
    assert_eq!(by.len(), 2, "both runners took work: {by:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_runner_killed_mid_run_is_cleaned_up_and_the_issue_reclaimed_once() {
    let Some((url, store)) = postgres().await else {
        return;
    };
    let Some(h) = Harness::new(store).await else {
        return;
    };
    let issue = h.issue("reclaim me", "").await;
    // The first attempt hangs; the second finishes.
    let script = "if grep -q '\"attempt\":1,' /paddock/task.md; then sleep 600; fi; cd /workspace && echo ok > DONE.txt";
    let name = unique("rk");
    let tag = paddock::worker::runner_tag(&name);
    let runner = Runner {
        name: &name,
        concurrency: 1,
        lease_secs: 10,
        script,
    };
    let mut p = spawn(&h, &url, &runner);
    let deadline = Instant::now() + Duration::from_secs(120);
    while h.store.get_issue(h.ws, issue.id).await.unwrap().state != "in_progress" {
        if let Some(status) = p.0.try_wait().unwrap() {
            panic!("the runner exited ({status}):\n{}", log_of(&h, &name));
        }
        assert!(
            Instant::now() < deadline,
            "not claimed:\n{}",
            log_of(&h, &name)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let prefix = format!("paddock-run-{tag}-");
    let deadline = Instant::now() + Duration::from_secs(60);
    while containers(&prefix).is_empty() {
        assert!(
            Instant::now() < deadline,
            "no sandbox started\n{}",
            log_of(&h, &name)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    p.0.kill().unwrap();
    p.0.wait().unwrap();
    // Left behind by the crash: the sandbox and the run's proxy registration.
    assert_eq!(containers(&prefix).len(), 1);
    let sock_root = Path::new("/run/paddock/egress/sock");
    let leftover_dirs = |root: &Path| -> Vec<String> {
        std::fs::read_dir(root)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(&format!("{tag}-")))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(
        leftover_dirs(sock_root).len(),
        1,
        "the run's proxy socket directory"
    );

    // The same runner comes back: it removes its leftovers, and once the lease expired the
    // issue is claimed again and finished as attempt 2.
    let mut p = spawn(&h, &url, &runner);
    let done = h
        .wait(issue.id, Duration::from_secs(180), |s| s == State::InReview)
        .await;
    assert_eq!(done.attempts, 2);
    p.term();
    assert!(containers(&prefix).is_empty(), "{:?}", containers(&prefix));
    assert!(leftover_dirs(sock_root).is_empty());
    let branches = h.repo.branches();
    assert_eq!(
        branches,
        vec!["main".to_owned(), format!("paddock/{}-2", issue.id)]
    );
    let runs = h
        .store
        .list_runs(h.ws, Some(issue.id), None, 10)
        .await
        .unwrap();
    assert_eq!(runs.len(), 2);
}
