//! Test sandbox: a temp dir with a workspace, scratch and an outside file, a profile pointing
//! paddock-init's writable paths and relay there, and runners for sandboxed and bare attempts.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use paddock_policy::sandbox::{SandboxProfile, WritablePath};

pub const INIT: &str = env!("CARGO_BIN_EXE_paddock-init");
pub const REDTEAM: &str = env!("CARGO_BIN_EXE_paddock-redteam");

/// Exit code of paddock-init when it refuses to start.
pub const REFUSED_TO_START: i32 = 125;

pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub profile: SandboxProfile,
}

/// Result of one red-team attempt.
#[derive(Debug)]
pub struct Attempt {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Attempt {
    pub fn succeeded(&self) -> bool {
        self.code == 0
    }
    pub fn refused_with(&self, errno: i32) -> bool {
        self.code == 1 && self.stdout.contains(&format!("refused errno={errno} "))
    }
    fn from(out: Output) -> Self {
        Self {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Landlock is required by these tests: without it they fail under CI, and skip otherwise.
pub fn landlock_or_skip() -> bool {
    let abi = paddock_init::landlock_rules::kernel_abi();
    if abi >= 3 {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set but the kernel offers landlock ABI {abi} (< 3)"
    );
    eprintln!("skipping: kernel landlock ABI {abi} < 3");
    false
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

impl Sandbox {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for d in ["workspace", "scratch"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        std::fs::write(dir.path().join("outside.txt"), "original").unwrap();
        let root = dir.path().to_str().unwrap().to_owned();
        let mut profile = SandboxProfile::agent_default();
        profile.filesystem.writable = vec![
            WritablePath {
                path: format!("{root}/workspace"),
                required: true,
                why: "test workspace".into(),
            },
            WritablePath {
                path: format!("{root}/scratch"),
                required: true,
                why: "test scratch".into(),
            },
            WritablePath {
                path: "/dev/null".into(),
                required: false,
                why: "output sink".into(),
            },
        ];
        profile.relay.listen = free_port();
        profile.relay.proxy_socket = format!("{root}/proxy.sock");
        // The host's own processes of this uid count against RLIMIT_NPROC.
        profile.rlimits.nproc = 1 << 20;
        Self { dir, profile }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write_profile(&self) -> PathBuf {
        let p = self.path("profile.json");
        std::fs::write(&p, serde_json::to_string(&self.profile).unwrap()).unwrap();
        p
    }

    pub fn command(&self, agent: &[&str]) -> Command {
        let mut cmd = Command::new(INIT);
        cmd.arg("--profile")
            .arg(self.write_profile())
            .arg("--")
            .args(agent)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `agent` as the sandboxed agent and waits.
    pub fn run(&self, agent: &[&str]) -> Attempt {
        Attempt::from(self.command(agent).output().unwrap())
    }

    /// Runs one red-team attempt inside the sandbox.
    pub fn attempt(&self, name: &str, arg: Option<&str>) -> Attempt {
        let mut agent = vec![REDTEAM, name];
        agent.extend(arg);
        self.run(&agent)
    }

    pub fn spawn(&self, agent: &[&str]) -> Child {
        self.command(agent)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

/// Runs one red-team attempt on the bare host (the baseline that shows the attack is real).
pub fn bare(name: &str, arg: Option<&str>) -> Attempt {
    let mut cmd = Command::new(REDTEAM);
    cmd.arg(name).args(arg).stdin(Stdio::null());
    Attempt::from(cmd.output().unwrap())
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}
