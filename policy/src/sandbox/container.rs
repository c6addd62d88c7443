//! Container settings the Docker launcher applies to every agent container.

use serde::{Deserialize, Serialize};

use super::filesystem::{AGENT_HOME, PADDOCK_DIR, SCRATCH_DIR, WORKSPACE_DIR};

/// A size-capped tmpfs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TmpfsMount {
    /// Mount point inside the container.
    pub path: String,
    /// Size cap in bytes; writes past it fail with `ENOSPC` inside the container only.
    pub size_bytes: u64,
    /// Mount options besides `size` (must include `nosuid` and `nodev`).
    pub options: Vec<String>,
    /// Octal mode of the mount's root.
    pub mode: u32,
}

/// The range of uids runs take theirs from; concurrent runs get distinct uids so per-uid kernel
/// limits (`RLIMIT_NPROC`, inotify, keyrings) are never shared between runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UidRange {
    /// First uid (also the image's agent user).
    pub first: u32,
    /// Number of uids.
    pub count: u32,
}

impl UidRange {
    /// The uid for concurrent slot `slot`, if the range has one.
    #[must_use]
    pub fn uid_for_slot(&self, slot: u32) -> Option<u32> {
        (slot < self.count)
            .then(|| self.first.checked_add(slot))
            .flatten()
    }
}

/// Lowest uid a run may use: clear of system users and the common first human uid (1000).
pub const MIN_AGENT_UID: u32 = 10_000;

/// Everything the launcher sets on the agent container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerSettings {
    /// Agent uids (gid equals uid).
    pub uids: UidRange,
    /// `CapDrop` (must be exactly `["ALL"]`).
    pub cap_drop: Vec<String>,
    /// `CapAdd` (must be empty).
    pub cap_add: Vec<String>,
    /// `--privileged` (must be false).
    pub privileged: bool,
    /// `no-new-privileges` security option.
    pub no_new_privileges: bool,
    /// Keep Docker's default seccomp profile under paddock-init's own filter.
    pub docker_default_seccomp: bool,
    /// `ReadonlyRootfs`.
    pub read_only_rootfs: bool,
    /// `NetworkMode` (must be `none`: loopback only).
    pub network_mode: String,
    /// `IpcMode` (must be `private`).
    pub ipc_mode: String,
    /// Size-capped scratch mounts.
    pub tmpfs: Vec<TmpfsMount>,
    /// Where the work tree is mounted (read-write).
    pub workspace_dir: String,
    /// Size cap of the work tree in bytes.
    pub workspace_size_bytes: u64,
    /// Read-only directory with the task, the proxy CA and the proxy socket.
    pub paddock_dir: String,
    /// `Memory` in bytes.
    pub memory_bytes: u64,
    /// `MemorySwap` in bytes (equal to `memory_bytes`: no swap).
    pub memory_swap_bytes: u64,
    /// `PidsLimit`.
    pub pids_limit: u64,
    /// `NanoCpus`.
    pub nano_cpus: u64,
    /// json-file log `max-size` in bytes.
    pub log_max_bytes: u64,
    /// json-file log `max-file`.
    pub log_max_files: u32,
    /// Path of paddock-init in the image (the entrypoint).
    pub init_path: String,
    /// Docker must never be handed these host paths as mounts.
    pub forbidden_mount_sources: Vec<String>,
}

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

impl ContainerSettings {
    /// The agent container's settings.
    #[must_use]
    pub fn agent_default() -> Self {
        let scratch = |path: &str, size_bytes| TmpfsMount {
            path: path.into(),
            size_bytes,
            options: vec!["nosuid".into(), "nodev".into()],
            mode: 0o1777,
        };
        Self {
            uids: UidRange {
                first: 10_001,
                count: 1000,
            },
            cap_drop: vec!["ALL".into()],
            cap_add: Vec::new(),
            privileged: false,
            no_new_privileges: true,
            docker_default_seccomp: true,
            read_only_rootfs: true,
            network_mode: "none".into(),
            ipc_mode: "private".into(),
            tmpfs: vec![
                scratch(SCRATCH_DIR, 512 * MIB),
                TmpfsMount {
                    mode: 0o700,
                    ..scratch(AGENT_HOME, 512 * MIB)
                },
            ],
            workspace_dir: WORKSPACE_DIR.into(),
            workspace_size_bytes: 2 * GIB,
            paddock_dir: PADDOCK_DIR.into(),
            memory_bytes: 4 * GIB,
            memory_swap_bytes: 4 * GIB,
            pids_limit: 512,
            nano_cpus: 2_000_000_000,
            log_max_bytes: 10 * MIB,
            log_max_files: 2,
            init_path: "/usr/local/bin/paddock-init".into(),
            forbidden_mount_sources: vec![
                "/var/run/docker.sock".into(),
                "/run/docker.sock".into(),
                "/run/containerd".into(),
                "/".into(),
                "/proc".into(),
                "/sys".into(),
                "/dev".into(),
            ],
        }
    }
}
