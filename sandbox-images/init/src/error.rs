//! Errors of paddock-init: each names the step that failed and on what, so a refusal to start
//! tells the operator which kernel feature or setting is missing.

use std::io;

/// Why paddock-init refused to start or lost the agent.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// Command line not understood.
    #[error("usage: {0}")]
    Usage(String),
    /// The profile file could not be read or parsed.
    #[error("profile {path}: {reason}")]
    Profile {
        /// Path of the profile.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The profile is weaker than allowed.
    #[error("profile refused: {0}")]
    ProfileInvalid(#[from] paddock_policy::sandbox::ProfileError),
    /// A `prctl` failed.
    #[error("prctl {what}: {source}")]
    Prctl {
        /// Which prctl.
        what: &'static str,
        /// Kernel error.
        source: io::Error,
    },
    /// Capabilities could not be cleared.
    #[error("capabilities: {0} (run the container with --cap-drop ALL)")]
    Capabilities(String),
    /// An rlimit could not be set.
    #[error("setrlimit {limit}: {source}")]
    Rlimit {
        /// Limit name.
        limit: &'static str,
        /// Kernel error.
        source: io::Error,
    },
    /// Landlock is missing or too old and the profile requires it.
    #[error(
        "landlock ABI {found} is below the required {required} (kernel needs Linux >= 6.2 with landlock in lsm=)"
    )]
    LandlockUnavailable {
        /// ABI the kernel offers (0: none).
        found: i32,
        /// ABI the profile requires.
        required: u8,
    },
    /// Landlock ruleset construction or enforcement failed.
    #[error("landlock on {path}: {reason}")]
    Landlock {
        /// Path being added, or "(ruleset)".
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The seccomp profile names a syscall this build does not know.
    #[error("seccomp: unknown syscall {0:?} in profile")]
    UnknownSyscall(String),
    /// The seccomp filter could not be compiled.
    #[error("seccomp: {0}")]
    Seccomp(String),
    /// The relay could not start.
    #[error("relay {what}: {source}")]
    Relay {
        /// What failed (bind address, ...).
        what: String,
        /// OS error.
        source: io::Error,
    },
    /// The agent command cannot be run.
    #[error("agent command {program:?}: {reason}")]
    Agent {
        /// Program.
        program: String,
        /// Why.
        reason: String,
    },
    /// The agent's child failed a step between fork and exec.
    #[error("agent setup step {step} failed: {source}")]
    ChildSetup {
        /// The step.
        step: &'static str,
        /// Kernel error.
        source: io::Error,
    },
    /// The launcher's gate (the nonce on stdin) failed.
    #[error("gate: {0}")]
    Gate(String),
    /// A process-management syscall failed.
    #[error("{what}: {source}")]
    Os {
        /// What failed.
        what: &'static str,
        /// Kernel error.
        source: io::Error,
    },
}

impl InitError {
    /// An `Os` error from a nix errno.
    #[must_use]
    pub fn os(what: &'static str, errno: nix::errno::Errno) -> Self {
        Self::Os {
            what,
            source: io::Error::from(errno),
        }
    }
}
