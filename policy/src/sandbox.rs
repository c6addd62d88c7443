//! The sandbox profile as data: container settings, seccomp rules, landlock paths.
//!
//! One [`SandboxProfile`] says everything both enforcers apply: the Docker launcher (container
//! settings) and paddock-init inside the container (rlimits, landlock, relay, seccomp). It is pure
//! data with a pure [`SandboxProfile::validate`], so a weakened profile is refused before any
//! container starts.

mod container;
mod filesystem;
mod limits;
mod relay;
mod seccomp;
mod validate;

pub use container::{ContainerSettings, MIN_AGENT_UID, TmpfsMount, UidRange};
pub use filesystem::{
    AGENT_HOME, FilesystemPolicy, LandlockRequirement, MIN_LANDLOCK_ABI, PADDOCK_DIR, SCRATCH_DIR,
    WORKSPACE_DIR, WRITABLE_DEVICES, WritablePath,
};
pub use limits::{MAX_NOFILE, MIN_NOFILE, Rlimit, Rlimits};
pub use relay::{PROXY_SOCKET, RELAY_PORT, RelaySettings};
pub use seccomp::*;
pub use validate::ProfileError;

use serde::{Deserialize, Serialize};

/// Everything that confines one agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxProfile {
    /// What the Docker launcher sets on the container.
    pub container: ContainerSettings,
    /// Landlock: what is writable.
    pub filesystem: FilesystemPolicy,
    /// Resource limits set by paddock-init.
    pub rlimits: Rlimits,
    /// The seccomp filter installed just before the agent's `exec`.
    pub seccomp: SeccompPolicy,
    /// The loopback relay to the run's proxy socket.
    pub relay: RelaySettings,
}

impl SandboxProfile {
    /// The profile every agent runs under.
    #[must_use]
    pub fn agent_default() -> Self {
        Self {
            container: ContainerSettings::agent_default(),
            filesystem: FilesystemPolicy::agent_default(),
            rlimits: Rlimits::agent_default(),
            seccomp: SeccompPolicy::agent_default(),
            relay: RelaySettings::agent_default(),
        }
    }
}

impl Default for SandboxProfile {
    fn default() -> Self {
        Self::agent_default()
    }
}
