//! Landlock for real: probe the kernel's ABI, refuse one below the profile's minimum, and
//! enforce "read and execute everywhere, write only beneath the listed paths" with every right
//! that ABI knows handled, so nothing degrades silently.

use std::io;

use landlock::{
    ABI, Access, AccessFs, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetStatus,
};
use nix::libc;
use paddock_policy::sandbox::FilesystemPolicy;
use tracing::{info, warn};

use crate::InitError;
use crate::kernel::LandlockOutcome;

/// `LANDLOCK_CREATE_RULESET_VERSION`.
const CREATE_RULESET_VERSION: libc::c_uint = 1;

/// The landlock ABI the running kernel offers (0 when landlock is missing or disabled).
#[must_use]
pub fn kernel_abi() -> i32 {
    // SAFETY: the version query takes no attribute pointer (NULL, size 0) and returns an int.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    i32::try_from(v).unwrap_or(0).max(0)
}

fn ll_err(path: &str, e: impl std::fmt::Display) -> InitError {
    InitError::Landlock {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

/// Applies the policy to the calling thread (and what it later forks).
///
/// # Errors
/// [`InitError::LandlockUnavailable`] below the required ABI (unless optional),
/// [`InitError::Landlock`] when a required path is missing or the ruleset is not fully enforced.
pub fn apply(fs: &FilesystemPolicy) -> Result<LandlockOutcome, InitError> {
    let found = kernel_abi();
    if found < i32::from(fs.landlock.min_abi) {
        if fs.landlock.optional {
            warn!(
                kernel_abi = found,
                required_abi = fs.landlock.min_abi,
                "landlock unavailable; continuing because the profile marks it optional"
            );
            return Ok(LandlockOutcome::Skipped { found });
        }
        return Err(InitError::LandlockUnavailable {
            found,
            required: fs.landlock.min_abi,
        });
    }
    // The newest ABI both the kernel and this build know: every right it defines is handled.
    let abi = ABI::from(found);
    let used = abi as i32;
    let all = AccessFs::from_all(abi);
    let read = AccessFs::from_read(abi);
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(all)
        .map_err(|e| ll_err("(ruleset)", e))?
        .create()
        .map_err(|e| ll_err("(ruleset)", e))?
        .add_rule(PathBeneath::new(
            PathFd::new("/").map_err(|e| ll_err("/", e))?,
            read,
        ))
        .map_err(|e| ll_err("/", e))?;
    for w in &fs.writable {
        let meta = match std::fs::metadata(&w.path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound && !w.required => {
                info!(path = %w.path, "writable path absent; skipped");
                continue;
            }
            Err(e) => return Err(ll_err(&w.path, e)),
        };
        // Directory rights (make_*, remove_*, refer) only apply to directories.
        let access = if meta.is_dir() {
            all
        } else {
            all & AccessFs::from_file(abi)
        };
        let fd = PathFd::new(&w.path).map_err(|e| ll_err(&w.path, e))?;
        ruleset = ruleset
            .add_rule(PathBeneath::new(fd, access))
            .map_err(|e| ll_err(&w.path, e))?;
    }
    let status = ruleset
        .restrict_self()
        .map_err(|e| ll_err("(restrict_self)", e))?;
    if status.ruleset != RulesetStatus::FullyEnforced {
        return Err(ll_err(
            "(restrict_self)",
            format!("ruleset {:?}, not fully enforced", status.ruleset),
        ));
    }
    info!(
        kernel_abi = found,
        abi = used,
        writable = fs.writable.len(),
        "landlock enforced"
    );
    Ok(LandlockOutcome::Enforced { abi: used })
}
