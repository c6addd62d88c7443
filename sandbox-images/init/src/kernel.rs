//! The narrow interface between paddock-init's setup sequence and the kernel.
//!
//! [`RealKernel`](crate::kernel::real::RealKernel) performs the syscalls; the recording fake in
//! the tests lets the order of the steps be asserted without privileges.

#[cfg(test)]
pub mod fake;
pub mod real;

use std::ffi::CString;

use paddock_policy::sandbox::{FilesystemPolicy, RelaySettings, Rlimit};
use seccompiler::BpfProgram;

use crate::InitError;
use crate::gate::Nonce;

/// A process id.
pub type Pid = i32;

/// How a child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildExit {
    /// `exit(code)`.
    Exited(i32),
    /// Killed by a signal.
    Signaled(i32),
}

impl ChildExit {
    /// Exit code of paddock-init for this agent status: the code, or 128 + signal like a shell.
    #[must_use]
    pub fn exit_code(self) -> u8 {
        let raw = match self {
            Self::Exited(code) => code & 0xff,
            Self::Signaled(sig) => 128 + (sig & 0x7f),
        };
        u8::try_from(raw).unwrap_or(u8::MAX)
    }
}

/// What landlock ended up doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LandlockOutcome {
    /// Ruleset fully enforced with this ABI.
    Enforced {
        /// ABI used.
        abi: i32,
    },
    /// Kernel lacks the required ABI and the profile made landlock optional.
    Skipped {
        /// ABI the kernel offers (0: none).
        found: i32,
    },
}

/// Steps the agent's process takes between `fork` and `exec`, in this order. Seccomp comes last
/// before `exec` so nothing paddock-init itself needs is filtered, and the agent never runs a
/// single instruction without it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildStep {
    /// `setsid`: no controlling terminal, so no `TIOCSTI` into the terminal init was started on.
    NewSession,
    /// Restore the default signal mask and `SIGPIPE` disposition paddock-init changed.
    ResetSignals,
    /// Install every seccomp program.
    InstallSeccomp,
    /// `execve` the agent.
    Exec,
}

impl ChildStep {
    /// Name used in errors.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::NewSession => "setsid",
            Self::ResetSignals => "reset signals",
            Self::InstallSeccomp => "seccomp",
            Self::Exec => "exec",
        }
    }
}

/// The child's steps, in order.
pub const CHILD_STEPS: [ChildStep; 4] = [
    ChildStep::NewSession,
    ChildStep::ResetSignals,
    ChildStep::InstallSeccomp,
    ChildStep::Exec,
];

/// Everything needed to start the agent, prepared before `fork` (the child may not allocate).
#[derive(Debug, Clone)]
pub struct AgentSpawn {
    /// Resolved path of the program.
    pub program: CString,
    /// `argv`, `argv[0]` included.
    pub argv: Vec<CString>,
    /// Environment, `KEY=VALUE`.
    pub envp: Vec<CString>,
    /// Seccomp programs, in installation order.
    pub filters: Vec<BpfProgram>,
}

/// Signals paddock-init forwards to the agent (`SIGCHLD` is handled, not forwarded).
pub const FORWARDED_SIGNALS: &[i32] = &[
    nix::libc::SIGTERM,
    nix::libc::SIGINT,
    nix::libc::SIGHUP,
    nix::libc::SIGQUIT,
    nix::libc::SIGUSR1,
    nix::libc::SIGUSR2,
    nix::libc::SIGWINCH,
    nix::libc::SIGCONT,
    nix::libc::SIGALRM,
];

/// The kernel as paddock-init sees it.
pub trait Kernel {
    /// `PR_SET_NO_NEW_PRIVS`: no exec can ever gain privileges again.
    fn set_no_new_privs(&mut self) -> Result<(), InitError>;
    /// `PR_SET_DUMPABLE 0`: the agent (same uid) cannot read `/proc/1/mem` or `/proc/1/environ`.
    fn set_non_dumpable(&mut self) -> Result<(), InitError>;
    /// `PR_SET_CHILD_SUBREAPER`: orphans are reparented to init even when it is not PID 1.
    fn set_child_subreaper(&mut self) -> Result<(), InitError>;
    /// Empty the bounding, ambient, inheritable, effective and permitted sets, and verify.
    fn clear_capabilities(&mut self) -> Result<(), InitError>;
    /// Set one limit (soft = hard).
    fn set_rlimit(&mut self, limit: Rlimit, value: u64) -> Result<(), InitError>;
    /// Restrict the filesystem.
    fn apply_landlock(&mut self, fs: &FilesystemPolicy) -> Result<LandlockOutcome, InitError>;
    /// Block the handled signals so they queue for [`Kernel::wait_signal`] (before any thread).
    fn block_signals(&mut self) -> Result<(), InitError>;
    /// Start the loopback relay to the proxy socket (listening when this returns).
    fn start_relay(&mut self, relay: &RelaySettings) -> Result<(), InitError>;
    /// The gate's first half: read the launcher's nonce line from stdin, keep stdin on a
    /// close-on-exec descriptor and put `/dev/null` on fd 0 for the agent.
    fn open_gate(&mut self) -> Result<Nonce, InitError>;
    /// The gate's second half: print `\n<nonce> <code>` on stdout, then wait for stdin to close.
    fn close_gate(&mut self, nonce: &Nonce, code: u8) -> Result<(), InitError>;
    /// Fork, run [`CHILD_STEPS`] in the child, return the agent's pid once it has exec'd.
    fn spawn_agent(&mut self, agent: &AgentSpawn) -> Result<Pid, InitError>;
    /// Wait for the next handled signal.
    fn wait_signal(&mut self) -> Result<i32, InitError>;
    /// Reap one exited child without blocking.
    fn reap(&mut self) -> Result<Option<(Pid, ChildExit)>, InitError>;
    /// Send `sig` to `pid` (a negative pid names a process group).
    fn signal(&mut self, pid: Pid, sig: i32) -> Result<(), InitError>;
    /// When paddock-init is PID 1 of its PID namespace (as in every sandbox container):
    /// `SIGKILL` every other process of the namespace, those that left the agent's session
    /// with `setsid` included, and reap them all. Returns whether it did; `false` (nothing
    /// done) when paddock-init is not PID 1, where `kill(-1)` would reach beyond the sandbox.
    fn kill_all_others(&mut self) -> Result<bool, InitError>;
}
