//! Measures the git part of a run on the test SSH server: fetch, checkout, commit, push.
//! Needs `. sshd.sh; paddock_sshd` (as root). Prints the median and max of 20 runs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::time::{Duration, Instant};

use git2::{Repository, RepositoryInitOptions, Signature};
use paddock::git;
use paddock_policy::SecretValue;

fn main() {
    let env = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} unset; run paddock_sshd"));
    let (host, port, user) = (
        env("PADDOCK_TEST_SSH_HOST"),
        env("PADDOCK_TEST_SSH_PORT"),
        env("PADDOCK_TEST_SSH_USER"),
    );
    let host_key = std::fs::read_to_string(env("PADDOCK_TEST_SSH_HOST_KEY")).unwrap();
    let deploy = std::fs::read_to_string(env("PADDOCK_TEST_SSH_DEPLOY_KEY")).unwrap();
    let repos = std::path::PathBuf::from(env("PADDOCK_TEST_SSH_REPOS"));
    let tmp = tempfile::tempdir().unwrap();
    git::init_hermetic(&tmp.path().join("empty")).unwrap();

    // A server repository with ~200 files.
    let path = repos.join(format!("bench-{}.git", std::process::id()));
    let mut opts = RepositoryInitOptions::new();
    opts.bare(true)
        .initial_head("main")
        .external_template(false);
    let srv = Repository::init_opts(&path, &opts).unwrap();
    let mut root = srv.treebuilder(None).unwrap();
    for d in 0..10 {
        let mut sub = srv.treebuilder(None).unwrap();
        for f in 0..20 {
            let blob = srv
                .blob(format!("file {d}/{f}\n{}", "line\n".repeat(50)).as_bytes())
                .unwrap();
            sub.insert(format!("f{f}.txt"), blob, 0o100644).unwrap();
        }
        root.insert(format!("d{d}"), sub.write().unwrap(), 0o040000)
            .unwrap();
    }
    let tree = srv.find_tree(root.write().unwrap()).unwrap();
    let sig = Signature::now("T", "t@localhost").unwrap();
    let head = srv
        .commit(Some("refs/heads/main"), &sig, &sig, "seed", &tree, &[])
        .unwrap();
    let _ = head;
    let git_user = nix::unistd::User::from_name(&user).unwrap().unwrap();
    let status = std::process::Command::new("chown")
        .args(["-R", &format!("{}:{}", git_user.uid, git_user.gid)])
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());

    let mut f = host_key.split_whitespace();
    let (t, k) = (f.next().unwrap(), f.next().unwrap());
    let kh = git::KnownHosts::parse(&format!("[{host}]:{port} {t} {k}")).unwrap();
    let url = format!("ssh://{user}@{host}:{port}{}", path.display());
    let spec = git::RepoSpec::new(
        "bench",
        git::RemoteUrl::parse(&url).unwrap(),
        "main",
        git::Credential::SshKey {
            private_key: SecretValue::new(deploy),
            passphrase: None,
            known_hosts: kh,
        },
    )
    .unwrap();
    let settings = git::GitSettings::new(tmp.path().join("data"));
    let mut times: Vec<(Duration, Duration, Duration, Duration)> = Vec::new();
    for i in 1..=20_i64 {
        let t0 = Instant::now();
        let mirror = git::Mirror::open(&settings, &spec).unwrap();
        let base = mirror.fetch().unwrap();
        let t1 = Instant::now();
        let wt = tmp.path().join(format!("wt{i}"));
        mirror.checkout(base, &wt).unwrap();
        let t2 = Instant::now();
        std::fs::write(wt.join("d3/f7.txt"), format!("edited by run {i}\n")).unwrap();
        let req = git::CommitRequest {
            issue_id: i,
            attempt: 1,
            title: "bench",
        };
        let git::CommitOutcome::Committed(c) = mirror.commit_work_tree(&wt, base, &req).unwrap()
        else {
            panic!("no change")
        };
        let t3 = Instant::now();
        mirror
            .push(c.commit, &mirror.run_branch(i, 1).unwrap())
            .unwrap();
        let t4 = Instant::now();
        times.push((t1 - t0, t2 - t1, t3 - t2, t4 - t3));
    }
    let med = |mut v: Vec<Duration>| {
        v.sort();
        (v[v.len() / 2], v[v.len() - 1])
    };
    let total = med(times.iter().map(|t| t.0 + t.1 + t.2 + t.3).collect());
    println!("git overhead per run, 20 runs, 200-file repo over SSH on loopback (median / max):");
    println!(
        "  fetch    {:?} / {:?}",
        med(times.iter().map(|t| t.0).collect()).0,
        med(times.iter().map(|t| t.0).collect()).1
    );
    println!(
        "  checkout {:?} / {:?}",
        med(times.iter().map(|t| t.1).collect()).0,
        med(times.iter().map(|t| t.1).collect()).1
    );
    println!(
        "  commit   {:?} / {:?}",
        med(times.iter().map(|t| t.2).collect()).0,
        med(times.iter().map(|t| t.2).collect()).1
    );
    println!(
        "  push     {:?} / {:?}",
        med(times.iter().map(|t| t.3).collect()).0,
        med(times.iter().map(|t| t.3).collect()).1
    );
    println!("  total    {:?} / {:?}", total.0, total.1);
    let _ = std::fs::remove_dir_all(&path);
}
