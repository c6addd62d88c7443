//! Resource limits paddock-init sets before the agent starts.

use serde::{Deserialize, Serialize};

/// Per-process limits (`setrlimit`); soft and hard are set to the same value so the agent cannot
/// raise them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rlimits {
    /// `RLIMIT_CORE`: always 0, a core dump of a process holding proxy handles is a leak.
    pub core_bytes: u64,
    /// `RLIMIT_NOFILE`: open files per process.
    pub nofile: u64,
    /// `RLIMIT_FSIZE`: largest file a process may write.
    pub fsize_bytes: u64,
    /// `RLIMIT_NPROC`: processes of the agent's uid (the uid is distinct per run).
    pub nproc: u64,
}

/// One limit, named as the kernel names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rlimit {
    /// `RLIMIT_CORE`.
    Core,
    /// `RLIMIT_NOFILE`.
    Nofile,
    /// `RLIMIT_FSIZE`.
    Fsize,
    /// `RLIMIT_NPROC`.
    Nproc,
}

/// Bounds a valid profile keeps to.
pub const MAX_NOFILE: u64 = 1 << 20;
/// Lowest `RLIMIT_NOFILE` that real tools run with.
pub const MIN_NOFILE: u64 = 64;

impl Rlimits {
    /// The agent's limits.
    #[must_use]
    pub const fn agent_default() -> Self {
        Self {
            core_bytes: 0,
            nofile: 4096,
            fsize_bytes: 1 << 30,
            nproc: 1024,
        }
    }

    /// The limits in the order paddock-init applies them.
    #[must_use]
    pub const fn in_order(&self) -> [(Rlimit, u64); 4] {
        [
            (Rlimit::Core, self.core_bytes),
            (Rlimit::Nofile, self.nofile),
            (Rlimit::Fsize, self.fsize_bytes),
            (Rlimit::Nproc, self.nproc),
        ]
    }
}
