//! Process-wide libgit2 settings: no user or system git config, bounded network waits.
//!
//! libgit2 reads `~/.gitconfig`, `$XDG_CONFIG_HOME/git/config` and `/etc/gitconfig` into
//! every repository's configuration. A `url.*.insteadOf` there would redirect a push, an
//! `http.proxy` would route it elsewhere. Paddock points those search paths at an empty
//! directory of its own once, before any repository is opened, so the only configuration
//! that applies is the mirror's own file, which Paddock writes.
#![allow(unsafe_code)]

use std::path::Path;
use std::sync::Mutex;

use git2::ConfigLevel;

use super::error::GitError;

/// Connect timeout for remotes (milliseconds).
const CONNECT_TIMEOUT_MS: i32 = 30_000;
/// Longest wait for a remote's next bytes (milliseconds).
const SERVER_TIMEOUT_MS: i32 = 300_000;

static DONE: Mutex<Option<std::path::PathBuf>> = Mutex::new(None);

/// Makes libgit2 hermetic for this process. Call once at start-up, before any other git
/// function, with a directory that holds no git configuration (Paddock's data dir
/// `git-empty/`). Later calls with the same directory are no-ops; a different one is refused.
pub fn init_hermetic(empty_dir: &Path) -> Result<(), GitError> {
    let mut done = DONE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(prev) = done.as_ref() {
        if prev == empty_dir {
            return Ok(());
        }
        return Err(GitError::InvalidConfig {
            what: "git config search path",
            reason: "libgit2 was already made hermetic with another directory".into(),
        });
    }
    std::fs::create_dir_all(empty_dir)
        .map_err(|e| GitError::io("create", empty_dir.display().to_string(), e))?;
    let entries = std::fs::read_dir(empty_dir)
        .map_err(|e| GitError::io("read", empty_dir.display().to_string(), e))?
        .count();
    if entries != 0 {
        return Err(GitError::InvalidConfig {
            what: "git config search path",
            reason: format!("{} must be empty", empty_dir.display()),
        });
    }
    let Some(dir) = empty_dir.to_str() else {
        return Err(GitError::InvalidConfig {
            what: "git config search path",
            reason: "directory name is not UTF-8".into(),
        });
    };
    for level in [
        ConfigLevel::System,
        ConfigLevel::XDG,
        ConfigLevel::Global,
        ConfigLevel::ProgramData,
    ] {
        // SAFETY: libgit2's global options are not synchronised by libgit2 itself. The
        // `DONE` mutex serialises every call made through this function, and it is meant
        // to run at start-up before any thread opens a repository; the path argument is
        // an owned C string for the duration of the call.
        unsafe { git2::opts::set_search_path(level, dir) }
            .map_err(|e| GitError::local("set config search path", &e))?;
    }
    // SAFETY: as above; a plain integer option, serialised by `DONE`.
    unsafe { git2::opts::set_server_connect_timeout_in_milliseconds(CONNECT_TIMEOUT_MS) }
        .map_err(|e| GitError::local("set connect timeout", &e))?;
    // SAFETY: as above.
    unsafe { git2::opts::set_server_timeout_in_milliseconds(SERVER_TIMEOUT_MS) }
        .map_err(|e| GitError::local("set server timeout", &e))?;
    // Refuse objects whose references do not exist and check hashes on read.
    git2::opts::strict_object_creation(true);
    git2::opts::strict_hash_verification(true);
    *done = Some(empty_dir.to_path_buf());
    tracing::info!(search_path = %empty_dir.display(), "libgit2 made hermetic");
    Ok(())
}

/// True once [`init_hermetic`] succeeded. Every entry point of this module checks it, so a
/// forgotten start-up call fails closed instead of reading the user's git config.
pub(crate) fn ensure() -> Result<(), GitError> {
    let done = DONE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if done.is_some() {
        Ok(())
    } else {
        Err(GitError::InvalidConfig {
            what: "git runtime",
            reason: "init_hermetic was not called at start-up".into(),
        })
    }
}
