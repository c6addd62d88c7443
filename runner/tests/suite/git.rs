//! Git module tests: hostile work trees (local) and pushes to a real OpenSSH git server.
//!
//! The SSH tests need `paddock_sshd` (exports `PADDOCK_TEST_SSH_*`); with `CI` set they fail
//! when it is missing, otherwise they skip with a printed reason.
// Test code: a failed unwrap is a failed test (clippy.toml allows it inside #[test] fns only).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use git2::{ObjectType, Oid, Repository, RepositoryInitOptions, Signature};
use paddock::git;
use paddock_policy::SecretValue;

// ---------------------------------------------------------------------------------------
// support

fn hermetic() {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        std::env::temp_dir().join(format!("paddock-git-empty-{}", std::process::id()))
    });
    git::init_hermetic(dir).unwrap();
}

/// Files of a tree: path → (mode, content).
type Files = BTreeMap<String, (i32, Vec<u8>)>;

fn build_tree(repo: &Repository, files: &[(&str, i32, &[u8])]) -> Oid {
    type Entry<'a> = (Vec<&'a str>, i32, &'a [u8]);
    fn level(repo: &Repository, entries: &[Entry<'_>]) -> Oid {
        let mut b = repo.treebuilder(None).unwrap();
        let mut dirs: BTreeMap<&str, Vec<Entry<'_>>> = BTreeMap::new();
        for (parts, mode, data) in entries {
            if parts.len() == 1 {
                let oid = repo.blob(data).unwrap();
                b.insert(parts[0], oid, *mode).unwrap();
            } else {
                dirs.entry(parts[0])
                    .or_default()
                    .push((parts[1..].to_vec(), *mode, data));
            }
        }
        for (name, sub) in dirs {
            let oid = level(repo, &sub);
            b.insert(name, oid, 0o040000).unwrap();
        }
        b.write().unwrap()
    }
    let entries: Vec<_> = files
        .iter()
        .map(|(p, m, d)| (p.split('/').collect(), *m, *d))
        .collect();
    level(repo, &entries)
}

fn seed_commit(repo: &Repository, files: &[(&str, i32, &[u8])], parent: Option<Oid>) -> Oid {
    let tree = repo.find_tree(build_tree(repo, files)).unwrap();
    let sig = Signature::now("Test", "test@localhost").unwrap();
    let parents: Vec<_> = parent
        .map(|p| repo.find_commit(p).unwrap())
        .into_iter()
        .collect();
    let refs: Vec<_> = parents.iter().collect();
    repo.commit(None, &sig, &sig, "seed", &tree, &refs).unwrap()
}

fn tree_files(repo: &Repository, tree: Oid) -> Files {
    fn walk(repo: &Repository, tree: &git2::Tree<'_>, prefix: &str, out: &mut Files) {
        for e in tree.iter() {
            let name = format!("{prefix}{}", e.name().unwrap());
            match e.kind() {
                Some(ObjectType::Tree) => walk(
                    repo,
                    &repo.find_tree(e.id()).unwrap(),
                    &format!("{name}/"),
                    out,
                ),
                Some(ObjectType::Blob) => {
                    let content = repo.find_blob(e.id()).unwrap().content().to_vec();
                    out.insert(name, (e.filemode(), content));
                }
                _ => {
                    out.insert(name, (e.filemode(), Vec::new()));
                }
            }
        }
    }
    let mut out = Files::new();
    walk(repo, &repo.find_tree(tree).unwrap(), "", &mut out);
    out
}

const BASE: &[(&str, i32, &[u8])] = &[
    ("README.md", 0o100644, b"# sample\n"),
    (
        "src/main.rs",
        0o100644,
        b"fn main() {\n    println!(\"hi\");\n}\n",
    ),
    ("src/lib.rs", 0o100644, b"pub fn one() -> u32 {\n    1\n}\n"),
    ("scripts/run.sh", 0o100755, b"#!/bin/sh\necho run\n"),
    ("docs/old.txt", 0o100644, b"old\n"),
];

/// A mirror whose "remote" is never contacted: the base commit is written straight into it.
struct Local {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    mirror: git::Mirror,
    base: Oid,
}

fn dummy_spec() -> git::RepoSpec {
    let key = "AAAAC3NzaC1lZDI1NTE5AAAAIDxgr5x1ahIHoLXMK6VTJMYGUl+Y//hfaAEdlnhkeiJZ";
    let kh = git::KnownHosts::parse(&format!("[127.0.0.1]:1 ssh-ed25519 {key}")).unwrap();
    git::RepoSpec::new(
        "local",
        git::RemoteUrl::parse("ssh://git@127.0.0.1:1/none.git").unwrap(),
        "main",
        git::Credential::SshKey {
            private_key: SecretValue::new("unused-unused-unused-unused"),
            passphrase: None,
            known_hosts: kh,
        },
    )
    .unwrap()
}

fn local_with(limits: git::Limits) -> Local {
    hermetic();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let mut settings = git::GitSettings::new(root.join("data"));
    settings.limits = limits;
    let mirror = git::Mirror::open(&settings, &dummy_spec()).unwrap();
    let base = seed_commit(mirror.repository(), BASE, None);
    Local {
        _tmp: tmp,
        root,
        mirror,
        base,
    }
}

fn local() -> Local {
    local_with(git::Limits::default())
}

impl Local {
    fn work_tree(&self, name: &str) -> PathBuf {
        let wt = self.root.join(name);
        self.mirror.checkout(self.base, &wt).unwrap();
        wt
    }

    fn commit(&self, wt: &Path) -> Result<git::CommitOutcome, git::GitError> {
        self.mirror.commit_work_tree(
            wt,
            self.base,
            &git::CommitRequest {
                issue_id: 7,
                attempt: 1,
                title: "Do the thing",
            },
        )
    }

    fn committed(&self, wt: &Path) -> git::Committed {
        match self.commit(wt).unwrap() {
            git::CommitOutcome::Committed(c) => c,
            other => panic!("expected a commit, got {other:?}"),
        }
    }
}

fn write(path: &Path, data: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, data).unwrap();
}

fn blob_exists(repo: &Repository, data: &[u8]) -> bool {
    let oid = Oid::hash_object(ObjectType::Blob, data).unwrap();
    repo.odb().unwrap().exists(oid)
}

// ---------------------------------------------------------------------------------------
// hermetic libgit2

#[test]
fn user_and_system_git_config_are_not_searched() {
    hermetic();
    assert!(git2::Config::find_global().is_err());
    assert!(git2::Config::find_xdg().is_err());
    assert!(git2::Config::find_system().is_err());
    // A different directory later is refused rather than silently changing the search path.
    assert!(git::init_hermetic(Path::new("/nonexistent-other")).is_err());
}

// ---------------------------------------------------------------------------------------
// checkout and commit

#[test]
fn checkout_writes_plain_files_without_git_metadata() {
    let l = local();
    let wt = l.work_tree("wt");
    assert!(!wt.join(".git").exists());
    assert_eq!(std::fs::read(wt.join("src/main.rs")).unwrap(), BASE[1].2);
    let mode = std::fs::metadata(wt.join("scripts/run.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    let mode = std::fs::metadata(wt.join("README.md"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644);
    // Nothing in the data dir is inside the work tree and vice versa.
    assert!(!wt.starts_with(l.root.join("data")));
    // A second checkout into the same place is refused.
    assert!(matches!(
        l.mirror.checkout(l.base, &wt),
        Err(git::GitError::WorkTreeExists { .. })
    ));
}

#[test]
fn unchanged_work_tree_is_no_change() {
    let l = local();
    let wt = l.work_tree("wt");
    assert!(matches!(
        l.commit(&wt).unwrap(),
        git::CommitOutcome::NoChange(_)
    ));
}

#[test]
fn normal_edits_make_the_expected_tree() {
    let l = local();
    let wt = l.work_tree("wt");
    write(&wt.join("src/lib.rs"), b"pub fn one() -> u32 {\n    2\n}\n");
    write(&wt.join("src/new/mod.rs"), b"// new\n");
    std::fs::remove_file(wt.join("docs/old.txt")).unwrap();
    write(&wt.join("tool.sh"), b"#!/bin/sh\n");
    std::fs::set_permissions(wt.join("tool.sh"), std::fs::Permissions::from_mode(0o4750)).unwrap();
    std::fs::set_permissions(
        wt.join("scripts/run.sh"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::create_dir(wt.join("empty-dir")).unwrap();
    let c = l.committed(&wt);
    let repo = l.mirror.repository();
    let files = tree_files(repo, c.tree);
    let expect: Files = [
        ("README.md", 0o100644, &b"# sample\n"[..]),
        ("scripts/run.sh", 0o100644, b"#!/bin/sh\necho run\n"),
        ("src/lib.rs", 0o100644, b"pub fn one() -> u32 {\n    2\n}\n"),
        ("src/main.rs", 0o100644, BASE[1].2),
        ("src/new/mod.rs", 0o100644, b"// new\n"),
        ("tool.sh", 0o100755, b"#!/bin/sh\n"),
    ]
    .into_iter()
    .map(|(p, m, d)| (p.to_owned(), (m, d.to_vec())))
    .collect();
    assert_eq!(files, expect);
    assert_eq!(
        c.diff,
        git::DiffStat {
            files_changed: 5,
            insertions: 3,
            deletions: 2
        }
    );
    let commit = repo.find_commit(c.commit).unwrap();
    assert_eq!(commit.parent_ids().collect::<Vec<_>>(), vec![l.base]);
    assert_eq!(commit.author().name(), Some("Paddock"));
    assert_eq!(commit.committer().email(), Some("paddock@localhost"));
    assert!(commit.message().unwrap().contains("Paddock-Issue: 7"));
    // No branch moved in the mirror.
    assert!(repo.find_reference("refs/heads/main").is_err());
}

#[test]
fn symlinks_are_committed_as_links_and_never_read() {
    let l = local();
    let wt = l.work_tree("wt");
    // A host file with unique content, and a host directory with one: the agent links to both.
    let host = l.root.join("host");
    let secret = format!("host-secret-{}\n", std::process::id()).into_bytes();
    write(&host.join("secret.txt"), &secret);
    write(&host.join("dir/inner.txt"), b"host inner file\n");
    std::os::unix::fs::symlink("/etc/passwd", wt.join("passwd")).unwrap();
    std::os::unix::fs::symlink(host.join("secret.txt"), wt.join("src/secret")).unwrap();
    std::os::unix::fs::symlink(host.join("dir"), wt.join("hostdir")).unwrap();
    std::os::unix::fs::symlink("../README.md", wt.join("src/readme-link")).unwrap();
    let c = l.committed(&wt);
    let repo = l.mirror.repository();
    let files = tree_files(repo, c.tree);
    assert_eq!(files["passwd"], (0o120000, b"/etc/passwd".to_vec()));
    assert_eq!(
        files["src/secret"],
        (
            0o120000,
            host.join("secret.txt")
                .into_os_string()
                .into_encoded_bytes()
        )
    );
    assert_eq!(
        files["hostdir"],
        (
            0o120000,
            host.join("dir").into_os_string().into_encoded_bytes()
        )
    );
    assert_eq!(
        files["src/readme-link"],
        (0o120000, b"../README.md".to_vec())
    );
    assert!(!files.keys().any(|k| k.starts_with("hostdir/")));
    assert_eq!(c.walk.links, 4);
    // Never read: no object with the host files' content exists anywhere in the mirror.
    assert!(!blob_exists(repo, &secret));
    assert!(!blob_exists(repo, b"host inner file\n"));
    assert!(!blob_exists(repo, &std::fs::read("/etc/passwd").unwrap()));
    // Allowed neighbour: a regular file with content is stored as such.
    assert!(blob_exists(repo, b"# sample\n"));
}

#[test]
fn special_files_are_skipped_with_a_record() {
    let l = local();
    let wt = l.work_tree("wt");
    nix::unistd::mkfifo(
        &wt.join("pipe"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    let _sock = std::os::unix::net::UnixListener::bind(wt.join("src/sock")).unwrap();
    write(&wt.join("kept.txt"), b"kept\n");
    let c = l.committed(&wt);
    let files = tree_files(l.mirror.repository(), c.tree);
    assert!(files.contains_key("kept.txt"));
    assert!(!files.contains_key("pipe") && !files.contains_key("src/sock"));
    let mut skipped: Vec<_> = c
        .walk
        .skipped
        .iter()
        .map(|s| (s.path.as_str(), s.reason))
        .collect();
    skipped.sort();
    assert_eq!(
        skipped,
        vec![
            ("pipe", git::SkipReason::Fifo),
            ("src/sock", git::SkipReason::Socket)
        ]
    );
}

fn marker_script(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(format!("{name}.sh"));
    let body = format!("#!/bin/sh\ntouch '{}/fired-{name}'\ncat\n", dir.display());
    std::fs::write(&path, body).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn fired(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("fired-"))
        .collect();
    v.sort();
    v
}

/// Plants hooks, a hostile `.git/config` and a `.gitattributes` filter in the work tree; every
/// script they name writes a marker into `host`.
fn poison(wt: &Path, host: &Path) {
    std::fs::create_dir_all(host.join("hooks2")).unwrap();
    let st = Command::new("git")
        .args(["init", "-q", "-b", "main"])
        .arg(wt)
        .env("HOME", host)
        .status()
        .unwrap();
    assert!(st.success());
    let hooks = wt.join(".git/hooks");
    for hook in [
        "pre-commit",
        "prepare-commit-msg",
        "commit-msg",
        "post-commit",
        "pre-push",
        "post-checkout",
        "reference-transaction",
    ] {
        let s = marker_script(host, &format!("hook-{hook}"));
        std::fs::copy(&s, hooks.join(hook)).unwrap();
        let s = marker_script(host, &format!("hookspath-{hook}"));
        std::fs::copy(&s, host.join("hooks2").join(hook)).unwrap();
    }
    let fsmonitor = marker_script(host, "fsmonitor");
    let clean = marker_script(host, "filter-clean");
    let smudge = marker_script(host, "filter-smudge");
    let textconv = marker_script(host, "textconv");
    let ssh = marker_script(host, "sshcommand");
    let include = host.join("included.cfg");
    std::fs::write(
        &include,
        format!(
            "[core]\n\tpager = {}\n",
            marker_script(host, "pager").display()
        ),
    )
    .unwrap();
    let mut cfg = std::fs::read_to_string(wt.join(".git/config")).unwrap();
    cfg.push_str(&format!(
        "[core]\n\tfsmonitor = {}\n\thooksPath = {}\n\tsshCommand = {}\n\
         [filter \"evil\"]\n\tclean = {}\n\tsmudge = {}\n\trequired = true\n\
         [diff \"evil\"]\n\ttextconv = {}\n\
         [include]\n\tpath = {}\n\
         [url \"file://{}/elsewhere.git\"]\n\tinsteadOf = ssh://\n",
        fsmonitor.display(),
        host.join("hooks2").display(),
        ssh.display(),
        clean.display(),
        smudge.display(),
        textconv.display(),
        include.display(),
        host.display(),
    ));
    std::fs::write(wt.join(".git/config"), cfg).unwrap();
    std::fs::write(wt.join(".gitattributes"), "* filter=evil diff=evil\n").unwrap();
    // A stray `.git` file in a subdirectory (a gitfile pointing at a host path).
    std::fs::write(wt.join("src/.git"), format!("gitdir: {}\n", host.display())).unwrap();
    write(&wt.join("src/lib.rs"), b"pub fn one() -> u32 {\n    3\n}\n");
}

#[test]
fn agent_git_metadata_hooks_and_filters_never_run() {
    let l = local();
    let wt = l.work_tree("wt");
    let host = l.root.join("host");
    std::fs::create_dir_all(&host).unwrap();
    poison(&wt, &host);
    let c = l.committed(&wt);
    assert_eq!(
        fired(&host),
        Vec::<String>::new(),
        "Paddock ran something the agent planted"
    );
    let files = tree_files(l.mirror.repository(), c.tree);
    assert!(
        !files
            .keys()
            .any(|k| k == ".git" || k.starts_with(".git/") || k.ends_with("/.git"))
    );
    // The attributes file is committed as data, the edit is committed unfiltered.
    assert_eq!(files[".gitattributes"].1, b"* filter=evil diff=evil\n");
    assert_eq!(files["src/lib.rs"].1, b"pub fn one() -> u32 {\n    3\n}\n");
    let mut skipped: Vec<_> = c
        .walk
        .skipped
        .iter()
        .map(|s| (s.path.as_str(), s.reason))
        .collect();
    skipped.sort();
    assert_eq!(
        skipped,
        vec![
            (".git", git::SkipReason::GitMetadata),
            ("src/.git", git::SkipReason::GitMetadata)
        ]
    );

    // Control: the same work tree handed to the git command line does run the planted code,
    // so the assertion above can fail.
    let st = Command::new("git")
        .current_dir(&wt)
        .env("HOME", &host)
        .args(["-c", "user.name=x", "-c", "user.email=x@y", "add", "-A"])
        .status()
        .unwrap();
    assert!(st.success());
    let st = Command::new("git")
        .current_dir(&wt)
        .env("HOME", &host)
        .args([
            "-c",
            "user.name=x",
            "-c",
            "user.email=x@y",
            "commit",
            "-q",
            "-m",
            "x",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let control = fired(&host);
    assert!(
        control.contains(&"fired-filter-clean".to_owned()),
        "{control:?}"
    );
    assert!(
        control.contains(&"fired-hookspath-post-commit".to_owned()),
        "{control:?}"
    );
}

#[test]
fn file_over_the_limit_is_refused_naming_it() {
    let limits = git::Limits {
        max_file_bytes: 1024 * 1024,
        max_total_bytes: 3 * 1024 * 1024,
        ..git::Limits::default()
    };
    let l = local_with(limits);
    let wt = l.work_tree("wt");
    write(&wt.join("big/ok.bin"), &vec![b'a'; 1024 * 1024]);
    // Exactly at the limit passes.
    assert!(matches!(
        l.commit(&wt).unwrap(),
        git::CommitOutcome::Committed(_)
    ));
    write(&wt.join("big/huge.bin"), &vec![b'a'; 1024 * 1024 + 1]);
    let err = l.commit(&wt).unwrap_err();
    assert!(
        matches!(&err, git::GitError::FileTooLarge { path, limit: 1048576 } if path == "big/huge.bin"),
        "{err}"
    );
    assert!(err.to_string().contains("big/huge.bin"));
    // A sparse file claiming a huge size is refused from its size, not read.
    std::fs::remove_file(wt.join("big/huge.bin")).unwrap();
    let f = std::fs::File::create(wt.join("sparse")).unwrap();
    f.set_len(50 * 1024 * 1024 * 1024).unwrap();
    assert!(
        matches!(l.commit(&wt).unwrap_err(), git::GitError::FileTooLarge { path, .. } if path == "sparse")
    );
    std::fs::remove_file(wt.join("sparse")).unwrap();
    // The total limit.
    for i in 0..3 {
        write(&wt.join(format!("t{i}.bin")), &vec![b'b' + i; 1000 * 1024]);
    }
    assert!(matches!(
        l.commit(&wt).unwrap_err(),
        git::GitError::TotalTooLarge { .. }
    ));
}

#[test]
fn entry_count_and_depth_are_bounded() {
    let limits = git::Limits {
        max_entries: 50,
        max_depth: 8,
        ..git::Limits::default()
    };
    let l = local_with(limits);
    let wt = l.work_tree("wt");
    for i in 0..30 {
        write(&wt.join(format!("many/f{i}")), b"x");
    }
    assert!(matches!(
        l.commit(&wt).unwrap(),
        git::CommitOutcome::Committed(_)
    ));
    for i in 30..60 {
        write(&wt.join(format!("many/f{i}")), b"x");
    }
    assert!(matches!(
        l.commit(&wt).unwrap_err(),
        git::GitError::TooManyEntries { limit: 50, .. }
    ));
    std::fs::remove_dir_all(wt.join("many")).unwrap();
    write(&wt.join("a/b/c/d/e/f/g/h/i/j/deep.txt"), b"deep");
    assert!(matches!(
        l.commit(&wt).unwrap_err(),
        git::GitError::TooDeep { limit: 8, .. }
    ));
}

#[test]
fn path_tricks_are_refused() {
    for (name, is_link) in [
        (".GIT/config", false),
        (".Git/hooks/post-checkout", false),
        ("sub/.git./config", false),
        (".git /config", false),
        ("git~1/config", false),
        ("sub/GIT~1", false),
        (".git\u{200c}/config", false),
        ("odd\\name", false),
        ("ctl\x1bname", false),
        (".gitmodules", true),
        ("sub/.GITATTRIBUTES", true),
    ] {
        let l = local();
        let wt = l.work_tree("wt");
        let path = wt.join(name);
        if is_link {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink("/etc/passwd", &path).unwrap();
        } else {
            write(&path, b"[core]\n\thooksPath = /tmp\n");
        }
        let err = l.commit(&wt).unwrap_err();
        assert!(
            matches!(err, git::GitError::PathRefused { .. }),
            "{name:?}: {err}"
        );
    }
    // Allowed neighbours: names that only look similar, and regular control files.
    let l = local();
    let wt = l.work_tree("wt");
    for ok in [
        ".github/workflows/ci.yml",
        ".gitmodules",
        ".gitignore",
        "git~5/x",
        ".git2/x",
        "notes.git",
    ] {
        write(&wt.join(ok), b"ok\n");
    }
    let c = l.committed(&wt);
    let files = tree_files(l.mirror.repository(), c.tree);
    assert!(files.contains_key(".github/workflows/ci.yml") && files.contains_key(".gitmodules"));
    assert!(files.contains_key("git~5/x") && files.contains_key("notes.git"));
}

#[test]
fn non_utf8_names_are_refused() {
    use std::os::unix::ffi::OsStrExt as _;
    let l = local();
    let wt = l.work_tree("wt");
    std::fs::write(wt.join(std::ffi::OsStr::from_bytes(b"bad\xffname")), b"x").unwrap();
    assert!(matches!(
        l.commit(&wt).unwrap_err(),
        git::GitError::PathRefused { .. }
    ));
}

// ---------------------------------------------------------------------------------------
// the real SSH git server

struct Ssh {
    host: String,
    port: u16,
    user: String,
    host_key: String,
    deploy_key: String,
    repos: PathBuf,
}

fn ssh() -> Option<Ssh> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let vars = (
        get("PADDOCK_TEST_SSH_HOST"),
        get("PADDOCK_TEST_SSH_PORT"),
        get("PADDOCK_TEST_SSH_USER"),
        get("PADDOCK_TEST_SSH_HOST_KEY"),
        get("PADDOCK_TEST_SSH_DEPLOY_KEY"),
        get("PADDOCK_TEST_SSH_REPOS"),
    );
    let (Some(host), Some(port), Some(user), Some(hk), Some(dk), Some(repos)) = vars else {
        if std::env::var_os("CI").is_some() {
            panic!(
                "CI is set but the test git server is missing: run `. sshd.sh; paddock_sshd` (PADDOCK_TEST_SSH_* unset)"
            );
        }
        eprintln!(
            "skipping: no test git server (run `. sshd.sh; paddock_sshd` to enable the SSH tests)"
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

/// A repository on the test server, removed when the test ends.
struct ServerRepo(PathBuf);

impl Drop for ServerRepo {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn chown_tree(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
    if std::fs::symlink_metadata(path).unwrap().is_dir() {
        for e in std::fs::read_dir(path).unwrap() {
            chown_tree(&e.unwrap().path(), uid, gid);
        }
    }
}

impl Ssh {
    fn known_hosts(&self) -> git::KnownHosts {
        let mut f = self.host_key.split_whitespace();
        let (t, k) = (f.next().unwrap(), f.next().unwrap());
        git::KnownHosts::parse(&format!("[{}]:{} {t} {k}\n", self.host, self.port)).unwrap()
    }

    /// A bare repository on the server with `BASE` on `main`; returns it, its URL and head.
    fn server_repo(&self, name: &str) -> (ServerRepo, String, Oid) {
        let path = self.repos.join(format!(
            "{name}-{}-{}.git",
            std::process::id(),
            rand_suffix()
        ));
        let mut opts = RepositoryInitOptions::new();
        opts.bare(true)
            .initial_head("main")
            .external_template(false);
        let repo = Repository::init_opts(&path, &opts).unwrap();
        let head = seed_commit(&repo, BASE, None);
        repo.reference("refs/heads/main", head, true, "seed")
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
        (ServerRepo(path), url, head)
    }

    fn spec(&self, url: &str, known_hosts: git::KnownHosts, key: &str) -> git::RepoSpec {
        git::RepoSpec::new(
            "srv",
            git::RemoteUrl::parse(url).unwrap(),
            "main",
            git::Credential::SshKey {
                private_key: SecretValue::new(key),
                passphrase: None,
                known_hosts,
            },
        )
        .unwrap()
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    u64::from(t) ^ (N.fetch_add(1, Ordering::Relaxed) << 32)
}

fn settings(root: &Path) -> git::GitSettings {
    git::GitSettings::new(root.join("data"))
}

#[test]
fn ssh_mirror_worktree_commit_push_end_to_end() {
    let Some(s) = ssh() else { return };
    hermetic();
    let tmp = tempfile::tempdir().unwrap();
    let (server, url, head) = s.server_repo("e2e");
    let spec = s.spec(&url, s.known_hosts(), &s.deploy_key);
    let mirror = git::Mirror::open(&settings(tmp.path()), &spec).unwrap();
    let base = mirror.fetch().unwrap();
    assert_eq!(base, head);
    // Fetching again is a no-op that returns the same commit.
    assert_eq!(mirror.fetch().unwrap(), head);

    let wt = tmp.path().join("wt");
    mirror.checkout(base, &wt).unwrap();
    assert!(!wt.join(".git").exists());
    // Planted push-time code: a pre-push hook and an sshCommand in an agent-made .git.
    let host = tmp.path().join("host");
    std::fs::create_dir_all(&host).unwrap();
    poison(&wt, &host);
    write(
        &wt.join("src/lib.rs"),
        b"pub fn one() -> u32 {\n    42\n}\n",
    );
    write(&wt.join("NEW.md"), b"new file\n");
    let out = mirror
        .commit_work_tree(
            &wt,
            base,
            &git::CommitRequest {
                issue_id: 12,
                attempt: 1,
                title: "Make one 42",
            },
        )
        .unwrap();
    let git::CommitOutcome::Committed(c) = out else {
        panic!("no commit")
    };
    let branch = mirror.run_branch(12, 1).unwrap();
    assert_eq!(branch.name(), "paddock/12-1");
    assert_eq!(
        mirror.push(c.commit, &branch).unwrap(),
        git::PushOutcome::Created
    );
    assert_eq!(fired(&host), Vec::<String>::new());

    let srv = Repository::open_bare(&server.0).unwrap();
    let pushed = srv.refname_to_id("refs/heads/paddock/12-1").unwrap();
    assert_eq!(pushed, c.commit);
    let files = tree_files(&srv, srv.find_commit(pushed).unwrap().tree_id());
    assert_eq!(files["src/lib.rs"].1, b"pub fn one() -> u32 {\n    42\n}\n");
    assert_eq!(files["NEW.md"].1, b"new file\n");
    assert!(!files.keys().any(|k| k.starts_with(".git/")));
    // The default branch did not move, and the mirror kept no scratch ref.
    assert_eq!(srv.refname_to_id("refs/heads/main").unwrap(), head);
    assert!(
        mirror
            .repository()
            .references_glob("refs/paddock-push/*")
            .unwrap()
            .next()
            .is_none()
    );

    // A retried push of the same commit is recognised; a different commit on the same branch
    // is refused and the branch is left alone.
    assert_eq!(
        mirror.push(c.commit, &branch).unwrap(),
        git::PushOutcome::AlreadyPresent
    );
    write(&wt.join("NEW.md"), b"changed again\n");
    let git::CommitOutcome::Committed(c2) = mirror
        .commit_work_tree(
            &wt,
            base,
            &git::CommitRequest {
                issue_id: 12,
                attempt: 1,
                title: "again",
            },
        )
        .unwrap()
    else {
        panic!("no commit")
    };
    assert!(matches!(
        mirror.push(c2.commit, &branch),
        Err(git::GitError::BranchExists { .. })
    ));
    assert_eq!(
        srv.refname_to_id("refs/heads/paddock/12-1").unwrap(),
        c.commit
    );
}

#[test]
fn ssh_unknown_or_changed_host_key_is_refused() {
    let Some(s) = ssh() else { return };
    hermetic();
    let tmp = tempfile::tempdir().unwrap();
    let (_server, url, _) = s.server_repo("hostkey");
    // Some other ed25519 key pinned for this host and port.
    let other = "AAAAC3NzaC1lZDI1NTE5AAAAIDxgr5x1ahIHoLXMK6VTJMYGUl+Y//hfaAEdlnhkeiJZ";
    let wrong =
        git::KnownHosts::parse(&format!("[{}]:{} ssh-ed25519 {other}", s.host, s.port)).unwrap();
    let spec = s.spec(&url, wrong, &s.deploy_key);
    let mirror = git::Mirror::open(&settings(tmp.path()), &spec).unwrap();
    let err = mirror.fetch().unwrap_err();
    assert!(matches!(err, git::GitError::HostKeyRefused { .. }), "{err}");
    // The key was refused before authentication: the deploy key never appears in the error.
    assert!(!err.to_string().contains("PRIVATE KEY"));
    // Push is refused the same way.
    let base = seed_commit(mirror.repository(), BASE, None);
    let b = mirror.run_branch(1, 1).unwrap();
    assert!(matches!(
        mirror.push(base, &b),
        Err(git::GitError::HostKeyRefused { .. })
    ));
    // The key pinned for another port of the same host does not count either.
    let mut f = s.host_key.split_whitespace();
    let (t, k) = (f.next().unwrap(), f.next().unwrap());
    let other_port = git::KnownHosts::parse(&format!(
        "[{}]:{} {t} {k}\n[{}]:{} ssh-ed25519 {other}",
        s.host,
        s.port + 1,
        s.host,
        s.port
    ))
    .unwrap();
    let spec = s.spec(&url, other_port, &s.deploy_key);
    let mirror = git::Mirror::open(&settings(tmp.path()), &spec).unwrap();
    assert!(matches!(
        mirror.fetch(),
        Err(git::GitError::HostKeyRefused { .. })
    ));
    // Allowed neighbour: the right pin connects.
    let spec = s.spec(&url, s.known_hosts(), &s.deploy_key);
    let mirror = git::Mirror::open(&settings(tmp.path()), &spec).unwrap();
    mirror.fetch().unwrap();
}

#[test]
fn ssh_wrong_deploy_key_fails_authentication() {
    let Some(s) = ssh() else { return };
    hermetic();
    let tmp = tempfile::tempdir().unwrap();
    let (_server, url, _) = s.server_repo("auth");
    let keyfile = tmp.path().join("k");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&keyfile)
        .status()
        .unwrap();
    assert!(st.success());
    let key = std::fs::read_to_string(&keyfile).unwrap();
    let spec = s.spec(&url, s.known_hosts(), &key);
    let mirror = git::Mirror::open(&settings(tmp.path()), &spec).unwrap();
    let err = mirror.fetch().unwrap_err();
    assert!(matches!(err, git::GitError::AuthFailed { .. }), "{err}");
    assert!(!err.to_string().contains(key.lines().nth(1).unwrap()));
}

#[test]
fn ssh_push_to_default_branch_or_outside_prefix_is_refused() {
    let Some(s) = ssh() else { return };
    hermetic();
    let tmp = tempfile::tempdir().unwrap();
    let (server, url, head) = s.server_repo("refs");
    // A default branch that lies inside the prefix: the run branch could equal it.
    let spec = git::RepoSpec::new(
        "srv",
        git::RemoteUrl::parse(&url).unwrap(),
        "paddock/3-1",
        git::Credential::SshKey {
            private_key: SecretValue::new(s.deploy_key.clone()),
            passphrase: None,
            known_hosts: s.known_hosts(),
        },
    )
    .unwrap();
    let mirror = git::Mirror::open(&settings(tmp.path()), &spec).unwrap();
    let commit = seed_commit(mirror.repository(), &[("x", 0o100644, b"x")], None);
    let b = mirror.run_branch(3, 1).unwrap();
    let err = mirror.push(commit, &b).unwrap_err();
    assert!(matches!(err, git::GitError::RefRefused { .. }), "{err}");
    // A branch built with another prefix is outside this mirror's namespace.
    let spec = s.spec(&url, s.known_hosts(), &s.deploy_key);
    let mirror = git::Mirror::open(&settings(tmp.path()), &spec).unwrap();
    let base = mirror.fetch().unwrap();
    let commit = seed_commit(mirror.repository(), &[("y", 0o100644, b"y")], Some(base));
    let foreign = git::RunBranch::new(&git::BranchPrefix::new("release").unwrap(), 3, 1).unwrap();
    assert!(matches!(
        mirror.push(commit, &foreign),
        Err(git::GitError::RefRefused { .. })
    ));
    let srv = Repository::open_bare(&server.0).unwrap();
    assert_eq!(srv.refname_to_id("refs/heads/main").unwrap(), head);
    assert!(srv.find_reference("refs/heads/release/3-1").is_err());
    // Allowed neighbour: the same commit to the mirror's own run branch goes through.
    let ours = mirror.run_branch(3, 1).unwrap();
    assert_eq!(
        mirror.push(commit, &ours).unwrap(),
        git::PushOutcome::Created
    );
    assert_eq!(srv.refname_to_id("refs/heads/paddock/3-1").unwrap(), commit);
}

#[test]
fn ssh_existing_foreign_branch_is_never_overwritten() {
    let Some(s) = ssh() else { return };
    hermetic();
    let tmp = tempfile::tempdir().unwrap();
    let (server, url, head) = s.server_repo("foreign");
    // Someone else's branch already sits where the run would push, pointing at main.
    {
        let srv = Repository::open_bare(&server.0).unwrap();
        srv.reference("refs/heads/paddock/5-1", head, false, "someone")
            .unwrap();
        let user = nix::unistd::User::from_name(&s.user).unwrap().unwrap();
        chown_tree(&server.0, user.uid.as_raw(), user.gid.as_raw());
    }
    let spec = s.spec(&url, s.known_hosts(), &s.deploy_key);
    let mirror = git::Mirror::open(&settings(tmp.path()), &spec).unwrap();
    let base = mirror.fetch().unwrap();
    // A fast-forward of it (our commit on top of main) is refused too: Paddock did not make it.
    let commit = seed_commit(mirror.repository(), &[("z", 0o100644, b"z")], Some(base));
    let err = mirror
        .push(commit, &mirror.run_branch(5, 1).unwrap())
        .unwrap_err();
    assert!(
        matches!(&err, git::GitError::BranchExists { branch, .. } if branch == "paddock/5-1"),
        "{err}"
    );
    let srv = Repository::open_bare(&server.0).unwrap();
    assert_eq!(srv.refname_to_id("refs/heads/paddock/5-1").unwrap(), head);
    // Allowed neighbour: the next attempt's branch is free.
    assert_eq!(
        mirror
            .push(commit, &mirror.run_branch(5, 2).unwrap())
            .unwrap(),
        git::PushOutcome::Created
    );
}

#[test]
fn submodules_are_kept_as_they_were() {
    hermetic();
    let l = local();
    let repo = l.mirror.repository();
    // A base commit with a submodule at vendor/lib.
    let sub_commit = seed_commit(repo, &[("s", 0o100644, b"s")], None);
    let mut vendor = repo.treebuilder(None).unwrap();
    vendor.insert("lib", sub_commit, 0o160000).unwrap();
    let vendor = vendor.write().unwrap();
    let base_tree = repo.find_commit(l.base).unwrap().tree().unwrap();
    let mut root = repo.treebuilder(Some(&base_tree)).unwrap();
    root.insert("vendor", vendor, 0o040000).unwrap();
    let tree = repo.find_tree(root.write().unwrap()).unwrap();
    let sig = Signature::now("T", "t@localhost").unwrap();
    let parent = repo.find_commit(l.base).unwrap();
    let base = repo
        .commit(None, &sig, &sig, "sub", &tree, &[&parent])
        .unwrap();

    let wt = l.root.join("wt-sub");
    let report = l.mirror.checkout(base, &wt).unwrap();
    assert_eq!(report.submodules, vec!["vendor/lib".to_owned()]);
    assert!(wt.join("vendor/lib").is_dir());
    let req = git::CommitRequest {
        issue_id: 1,
        attempt: 1,
        title: "t",
    };
    assert!(matches!(
        l.mirror.commit_work_tree(&wt, base, &req).unwrap(),
        git::CommitOutcome::NoChange(_)
    ));
    write(&wt.join("README.md"), b"changed\n");
    let git::CommitOutcome::Committed(c) = l.mirror.commit_work_tree(&wt, base, &req).unwrap()
    else {
        panic!("no commit")
    };
    let files = tree_files(repo, c.tree);
    assert_eq!(files["vendor/lib"].0, 0o160000);
    assert_eq!(c.walk.submodules_kept, vec!["vendor/lib".to_owned()]);
    // Removing the directory removes the submodule.
    std::fs::remove_dir_all(wt.join("vendor")).unwrap();
    let git::CommitOutcome::Committed(c) = l.mirror.commit_work_tree(&wt, base, &req).unwrap()
    else {
        panic!("no commit")
    };
    assert!(!tree_files(repo, c.tree).contains_key("vendor/lib"));
}

#[test]
fn checkout_refuses_trees_with_git_lookalikes() {
    let l = local();
    let repo = l.mirror.repository();
    let base_tree = repo.find_commit(l.base).unwrap().tree().unwrap();
    let blob = repo.blob(b"[core]\n\thooksPath = /tmp\n").unwrap();
    let mut inner = repo.treebuilder(None).unwrap();
    inner.insert("config", blob, 0o100644).unwrap();
    let inner = inner.write().unwrap();
    // libgit2's tree builder refuses the name, so write the raw tree object (as a hostile
    // upstream or a crafted pack could).
    let readme = base_tree.get_name("README.md").unwrap().id();
    let mut raw = Vec::new();
    raw.extend_from_slice(b"40000 .GIT\0");
    raw.extend_from_slice(inner.as_bytes());
    raw.extend_from_slice(b"100644 README.md\0");
    raw.extend_from_slice(readme.as_bytes());
    let tree_oid = repo.odb().unwrap().write(ObjectType::Tree, &raw).unwrap();
    let tree = repo.find_tree(tree_oid).unwrap();
    let sig = Signature::now("T", "t@localhost").unwrap();
    let bad = repo.commit(None, &sig, &sig, "bad", &tree, &[]).unwrap();
    let wt = l.root.join("wt-bad");
    let err = l.mirror.checkout(bad, &wt).unwrap_err();
    assert!(
        matches!(err, git::GitError::PathRefused { ref path, .. } if path == ".GIT"),
        "{err}"
    );
    assert!(!wt.join(".GIT/config").exists());
}

#[test]
fn https_token_never_appears_in_errors_and_plain_http_is_refused() {
    hermetic();
    assert!(git::RemoteUrl::parse("http://127.0.0.1:1/r.git").is_err());
    assert!(git::RemoteUrl::parse("https://tok3n@127.0.0.1:1/r.git").is_err());
    let token = "ghp_0123456789abcdefghijABCDEFGHIJ012345";
    let spec = git::RepoSpec::new(
        "https",
        git::RemoteUrl::parse("https://127.0.0.1:1/r.git").unwrap(),
        "main",
        git::Credential::HttpsToken {
            username: "x-access-token".into(),
            token: SecretValue::new(token),
        },
    )
    .unwrap();
    assert!(!format!("{spec:?}").contains(token));
    let tmp = tempfile::tempdir().unwrap();
    let mirror = git::Mirror::open(&settings(tmp.path()), &spec).unwrap();
    // Port 1 on loopback: nothing listens, the connection is refused locally.
    let err = mirror.fetch().unwrap_err();
    assert!(!err.to_string().contains(token), "{err}");
    assert!(!format!("{err:?}").contains(token));
}
