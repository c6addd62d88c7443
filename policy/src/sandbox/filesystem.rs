//! The agent's filesystem view under landlock: read-only everywhere, writable only where named.

use serde::{Deserialize, Serialize};

/// A path the agent may write beneath (create, delete, rename, truncate, execute).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WritablePath {
    /// Absolute, normalised path (a directory, or a device file such as `/dev/null`).
    pub path: String,
    /// Refuse to start when the path is missing (else it is skipped and logged).
    pub required: bool,
    /// Why the agent needs to write there.
    pub why: String,
}

/// Landlock requirements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LandlockRequirement {
    /// Lowest landlock ABI accepted. ABI 3 (Linux 6.2) is the first that controls `truncate`;
    /// below it an agent could truncate any file its uid owns outside the workspace.
    pub min_abi: u8,
    /// Run without landlock when the kernel lacks it (development only: validation of a
    /// production profile refuses this).
    pub optional: bool,
}

/// Lowest landlock ABI a production profile may require.
pub const MIN_LANDLOCK_ABI: u8 = 3;

/// The filesystem part of the profile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesystemPolicy {
    /// Writable paths; everything else is read/execute only.
    pub writable: Vec<WritablePath>,
    /// Landlock requirement.
    pub landlock: LandlockRequirement,
}

/// Device files the agent may write to; any other path under `/dev` is refused by validation.
pub const WRITABLE_DEVICES: &[(&str, &str)] = &[
    ("/dev/null", "discarding output is universal"),
    ("/dev/zero", "read and written by tools as a zero source"),
    ("/dev/full", "harmless; some test suites use it"),
    ("/dev/tty", "the process's own terminal, when it has one"),
    (
        "/dev/pts",
        "pseudo-terminals the agent opens for its own tools",
    ),
    ("/dev/ptmx", "pseudo-terminal multiplexer"),
    (
        "/dev/shm",
        "POSIX shared memory (private IPC namespace, size-capped tmpfs)",
    ),
];

/// Where the agent's work tree is mounted.
pub const WORKSPACE_DIR: &str = "/workspace";
/// The agent's home directory (a size-capped tmpfs).
pub const AGENT_HOME: &str = "/home/agent";
/// Scratch directory (a size-capped tmpfs).
pub const SCRATCH_DIR: &str = "/tmp";
/// Read-only directory with the task, the proxy CA and the run's proxy socket.
pub const PADDOCK_DIR: &str = "/paddock";

impl FilesystemPolicy {
    /// The agent's filesystem policy.
    #[must_use]
    pub fn agent_default() -> Self {
        let mut writable = vec![
            WritablePath {
                path: WORKSPACE_DIR.into(),
                required: true,
                why: "the work tree the agent edits".into(),
            },
            WritablePath {
                path: SCRATCH_DIR.into(),
                required: true,
                why: "scratch space (size-capped tmpfs)".into(),
            },
            WritablePath {
                path: AGENT_HOME.into(),
                required: false,
                why: "caches and tool configuration (size-capped tmpfs)".into(),
            },
        ];
        writable.extend(WRITABLE_DEVICES.iter().map(|(path, why)| WritablePath {
            path: (*path).into(),
            required: false,
            why: (*why).into(),
        }));
        Self {
            writable,
            landlock: LandlockRequirement {
                min_abi: MIN_LANDLOCK_ABI,
                optional: false,
            },
        }
    }
}
