//! Pure validation of a sandbox profile: every weakening is refused with the field that caused it.

use super::SandboxProfile;
use super::container::{ContainerSettings, MIN_AGENT_UID};
use super::filesystem::{FilesystemPolicy, MIN_LANDLOCK_ABI, WRITABLE_DEVICES};
use super::limits::{MAX_NOFILE, MIN_NOFILE, Rlimits};
use super::relay::RelaySettings;
use super::seccomp::{ArgOp, ArgWidth, DenyErrno, SeccompPolicy};

/// Why a profile is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    /// A path is not absolute and normalised.
    #[error("{field}: {path:?} must be an absolute path without '.', '..', '//' or a trailing '/'")]
    PathNotNormal {
        /// Profile field.
        field: &'static str,
        /// Offending path.
        path: String,
    },
    /// A writable path would expose something the agent must not write.
    #[error("filesystem.writable: {path:?} may not be writable ({why})")]
    WritableForbidden {
        /// Offending path.
        path: String,
        /// Rule that refused it.
        why: &'static str,
    },
    /// The work tree is not writable.
    #[error("filesystem.writable must contain the workspace {0:?} as required")]
    WorkspaceNotWritable(String),
    /// Landlock ABI too low.
    #[error(
        "filesystem.landlock.min_abi {0} is below {MIN_LANDLOCK_ABI} (the first ABI that controls truncate)"
    )]
    LandlockAbiTooLow(u8),
    /// Landlock made optional where production needs it.
    #[error("filesystem.landlock.optional is true; production profiles require landlock")]
    LandlockOptional,
    /// A resource limit is out of bounds.
    #[error("rlimits.{field}: {value} is out of bounds ({why})")]
    Rlimit {
        /// Field.
        field: &'static str,
        /// Value.
        value: u64,
        /// Bound.
        why: &'static str,
    },
    /// The seccomp policy misses a mandatory refusal or is malformed.
    #[error("seccomp: {0}")]
    Seccomp(String),
    /// The relay settings are unsafe.
    #[error("relay: {0}")]
    Relay(String),
    /// A container setting is weaker than the baseline.
    #[error("container.{field}: {why}")]
    Container {
        /// Field.
        field: &'static str,
        /// What is wrong.
        why: String,
    },
}

/// Top-level directories the agent must never write to (besides `/dev`, which has its own list).
const READ_ONLY_ROOTS: &[(&str, &str)] = &[
    ("/proc", "kernel interfaces"),
    ("/sys", "kernel interfaces"),
    ("/paddock", "task, proxy CA and proxy socket are read-only"),
    ("/etc", "system configuration"),
    ("/usr", "system programs"),
    ("/bin", "system programs"),
    ("/sbin", "system programs"),
    ("/lib", "system libraries"),
    ("/lib64", "system libraries"),
    ("/boot", "kernel images"),
    ("/root", "root's home"),
    ("/run", "runtime sockets"),
    ("/var/run", "runtime sockets"),
];

/// Most rules a seccomp policy may hold (a classic BPF program has at most 4096 instructions).
const MAX_SECCOMP_RULES: usize = 256;

impl SandboxProfile {
    /// Checks the profile; the first problem found is returned.
    ///
    /// # Errors
    /// [`ProfileError`] naming the field that is missing, malformed or weaker than allowed.
    pub fn validate(&self) -> Result<(), ProfileError> {
        validate_filesystem(&self.filesystem)?;
        validate_rlimits(&self.rlimits)?;
        validate_seccomp(&self.seccomp)?;
        validate_relay(&self.relay)?;
        validate_container(&self.container)?;
        Ok(())
    }

    /// [`Self::validate`] plus the rules only production relaxes nowhere: landlock is required,
    /// and the work tree is the container's workspace mount.
    ///
    /// # Errors
    /// As [`Self::validate`], or [`ProfileError::LandlockOptional`] /
    /// [`ProfileError::WorkspaceNotWritable`].
    pub fn validate_production(&self) -> Result<(), ProfileError> {
        self.validate()?;
        if self.filesystem.landlock.optional {
            return Err(ProfileError::LandlockOptional);
        }
        let ws = &self.container.workspace_dir;
        if !self
            .filesystem
            .writable
            .iter()
            .any(|w| &w.path == ws && w.required)
        {
            return Err(ProfileError::WorkspaceNotWritable(ws.clone()));
        }
        Ok(())
    }
}

/// Whether `path` is absolute and normalised.
#[must_use]
pub fn is_normal_absolute(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    if rest.is_empty() {
        return true;
    }
    !path.contains('\0')
        && rest
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

fn is_beneath(path: &str, root: &str) -> bool {
    path == root
        || path
            .strip_prefix(root)
            .is_some_and(|rest| rest.starts_with('/'))
}

fn validate_filesystem(fs: &FilesystemPolicy) -> Result<(), ProfileError> {
    if fs.writable.is_empty() || !fs.writable.iter().any(|w| w.required) {
        return Err(ProfileError::WorkspaceNotWritable(
            "(no required writable path)".into(),
        ));
    }
    for w in &fs.writable {
        if !is_normal_absolute(&w.path) {
            return Err(ProfileError::PathNotNormal {
                field: "filesystem.writable",
                path: w.path.clone(),
            });
        }
        let forbidden = |why| ProfileError::WritableForbidden {
            path: w.path.clone(),
            why,
        };
        if w.path == "/" {
            return Err(forbidden("the whole filesystem"));
        }
        if is_beneath(&w.path, "/dev") {
            if !WRITABLE_DEVICES.iter().any(|(dev, _)| *dev == w.path) {
                return Err(forbidden("only the listed device files are writable"));
            }
            continue;
        }
        if let Some((_, why)) = READ_ONLY_ROOTS
            .iter()
            .find(|(root, _)| is_beneath(&w.path, root))
        {
            return Err(forbidden(why));
        }
    }
    if fs.landlock.min_abi < MIN_LANDLOCK_ABI {
        return Err(ProfileError::LandlockAbiTooLow(fs.landlock.min_abi));
    }
    Ok(())
}

fn validate_rlimits(r: &Rlimits) -> Result<(), ProfileError> {
    let bad = |field, value, why| Err(ProfileError::Rlimit { field, value, why });
    if r.core_bytes != 0 {
        return bad("core_bytes", r.core_bytes, "core dumps must be off");
    }
    if !(MIN_NOFILE..=MAX_NOFILE).contains(&r.nofile) {
        return bad("nofile", r.nofile, "64..=1048576");
    }
    if r.fsize_bytes == 0 {
        return bad("fsize_bytes", r.fsize_bytes, "must allow writing files");
    }
    if r.nproc == 0 || r.nproc == u64::MAX {
        return bad("nproc", r.nproc, "must be set and finite");
    }
    Ok(())
}

fn validate_seccomp(s: &SeccompPolicy) -> Result<(), ProfileError> {
    let err = |m: String| Err(ProfileError::Seccomp(m));
    if s.arch != "x86_64" {
        return err(format!("arch {:?} is not supported (x86_64 only)", s.arch));
    }
    if !s.deny_x32 {
        return err("deny_x32 must be true: x32 syscall numbers bypass every rule".into());
    }
    if s.rules.len() > MAX_SECCOMP_RULES {
        return err(format!("more than {MAX_SECCOMP_RULES} rules"));
    }
    for r in &s.rules {
        let name_ok = !r.syscall.is_empty()
            && r.syscall.len() <= 32
            && r.syscall
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !name_ok {
            return err(format!("syscall name {:?} is malformed", r.syscall));
        }
        if r.why.trim().is_empty() {
            return err(format!("rule for {} gives no reason", r.syscall));
        }
        if r.when.len() > 6 {
            return err(format!("rule for {} has too many conditions", r.syscall));
        }
        for m in &r.when {
            if m.index > 5 {
                return err(format!(
                    "rule for {}: argument index {}",
                    r.syscall, m.index
                ));
            }
            let values = match m.op {
                ArgOp::Eq(v) | ArgOp::Ne(v) => [v, 0],
                ArgOp::MaskedEq { mask, value } => [mask, value],
            };
            if m.width == ArgWidth::Dword && values.iter().any(|v| *v > u64::from(u32::MAX)) {
                return err(format!(
                    "rule for {}: value wider than a 32-bit argument",
                    r.syscall
                ));
            }
        }
    }
    // A profile may add refusals, never drop or narrow one of the built-in rules.
    for required in SeccompPolicy::agent_default().rules {
        let kept = s.rules.iter().any(|r| {
            r.syscall == required.syscall
                && r.errno == required.errno
                && (r.when.is_empty() || r.when == required.when)
        });
        if !kept {
            let what = if required.when.is_empty() {
                "always".to_owned()
            } else {
                format!("when {:?}", required.when)
            };
            return err(format!(
                "{} must be refused with {:?} {what} ({})",
                required.syscall, required.errno, required.why
            ));
        }
    }
    // Any rule that allows a refused syscall cannot exist (the policy only refuses), but a rule
    // refusing clone3 with EPERM would stop libc's fallback to clone: every process would fail.
    if s.rules_for("clone3", DenyErrno::Eperm).next().is_some() {
        return err("clone3 must return ENOSYS, not EPERM (libc only falls back on ENOSYS)".into());
    }
    Ok(())
}

fn validate_relay(r: &RelaySettings) -> Result<(), ProfileError> {
    let err = |m: String| Err(ProfileError::Relay(m));
    if !r.listen.ip().is_loopback() {
        return err(format!(
            "listen {} must be a loopback address",
            r.listen.ip()
        ));
    }
    if r.listen.port() == 0 {
        return err("listen port must be fixed (not 0)".into());
    }
    if !is_normal_absolute(&r.proxy_socket) || r.proxy_socket == "/" {
        return Err(ProfileError::PathNotNormal {
            field: "relay.proxy_socket",
            path: r.proxy_socket.clone(),
        });
    }
    if r.max_connections == 0 || r.max_connections > 4096 {
        return err(format!(
            "max_connections {} not in 1..=4096",
            r.max_connections
        ));
    }
    Ok(())
}

fn validate_container(c: &ContainerSettings) -> Result<(), ProfileError> {
    let bad = |field, why: &str| {
        Err(ProfileError::Container {
            field,
            why: why.to_owned(),
        })
    };
    if c.cap_drop != ["ALL"] {
        return bad("cap_drop", "must be exactly [\"ALL\"]");
    }
    if !c.cap_add.is_empty() {
        return bad("cap_add", "must be empty");
    }
    if c.privileged {
        return bad("privileged", "must be false");
    }
    if !c.no_new_privileges {
        return bad("no_new_privileges", "must be true");
    }
    if !c.docker_default_seccomp {
        return bad("docker_default_seccomp", "must stay on (defence in depth)");
    }
    if !c.read_only_rootfs {
        return bad("read_only_rootfs", "must be true");
    }
    if c.network_mode != "none" {
        return bad(
            "network_mode",
            "must be \"none\": the proxy socket is the only way out",
        );
    }
    if c.ipc_mode != "private" {
        return bad("ipc_mode", "must be \"private\"");
    }
    if c.uids.first < MIN_AGENT_UID || c.uids.count == 0 {
        return bad("uids", "first must be >= 10000 and count >= 1");
    }
    if c.uids
        .first
        .checked_add(c.uids.count)
        .is_none_or(|end| end > 0x7fff_ffff)
    {
        return bad("uids", "range overflows");
    }
    for t in &c.tmpfs {
        if !is_normal_absolute(&t.path) || t.path == "/" {
            return Err(ProfileError::PathNotNormal {
                field: "container.tmpfs",
                path: t.path.clone(),
            });
        }
        if t.size_bytes == 0 || t.size_bytes > c.memory_bytes {
            return bad(
                "tmpfs",
                "every tmpfs needs a size cap within the memory limit",
            );
        }
        for opt in ["nosuid", "nodev"] {
            if !t.options.iter().any(|o| o == opt) {
                return bad("tmpfs", "every tmpfs must be nosuid and nodev");
            }
        }
        if t.options
            .iter()
            .any(|o| o.contains(',') || o.starts_with("size"))
        {
            return bad(
                "tmpfs",
                "options are single words; the size comes from size_bytes",
            );
        }
        if t.mode > 0o7777 || t.mode & 0o6000 != 0 {
            return bad(
                "tmpfs",
                "mode must be a permission mode without setuid/setgid",
            );
        }
    }
    if !is_normal_absolute(&c.workspace_dir) || c.workspace_dir == "/" {
        return Err(ProfileError::PathNotNormal {
            field: "container.workspace_dir",
            path: c.workspace_dir.clone(),
        });
    }
    if c.workspace_size_bytes == 0 {
        return bad("workspace_size_bytes", "the work tree needs a size cap");
    }
    if !is_normal_absolute(&c.paddock_dir) || c.paddock_dir == "/" {
        return Err(ProfileError::PathNotNormal {
            field: "container.paddock_dir",
            path: c.paddock_dir.clone(),
        });
    }
    if c.memory_bytes == 0 {
        return bad("memory_bytes", "must be set");
    }
    if c.memory_swap_bytes != c.memory_bytes {
        return bad("memory_swap_bytes", "must equal memory_bytes (no swap)");
    }
    if c.pids_limit == 0 || c.pids_limit > 65_536 {
        return bad("pids_limit", "must be in 1..=65536");
    }
    if c.nano_cpus == 0 {
        return bad("nano_cpus", "must be set");
    }
    if c.log_max_bytes == 0 || c.log_max_files == 0 {
        return bad("log_max_bytes", "the container log needs a size cap");
    }
    if !is_normal_absolute(&c.init_path) {
        return Err(ProfileError::PathNotNormal {
            field: "container.init_path",
            path: c.init_path.clone(),
        });
    }
    for must in ["/var/run/docker.sock", "/run/docker.sock", "/"] {
        if !c.forbidden_mount_sources.iter().any(|f| f == must) {
            return bad(
                "forbidden_mount_sources",
                "must name the Docker socket and /",
            );
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
