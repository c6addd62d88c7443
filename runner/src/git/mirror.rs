//! The per-repository bare mirror in Paddock's data directory, and fetching into it.
//!
//! The mirror is the only git repository involved in a run. It lives under the data
//! directory, which no sandbox mounts; the agent's work tree is plain files written from it
//! (see `checkout`) and read back by `snapshot`. The mirror's config is the file libgit2
//! writes at init; user and system configs are off (see `hermetic`).

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use git2::{
    AutotagOption, FetchOptions, FetchPrune, Oid, ProxyOptions, Repository, RepositoryInitOptions,
};

use super::commit::Identity;
use super::error::GitError;
use super::hermetic;
use super::push::BranchPrefix;
use super::remote::{Observed, RepoSpec, callbacks, network_error};
use super::snapshot::Limits;

/// Settings shared by every repository: where mirrors live, who commits, which branch
/// namespace Paddock pushes to, and the work-tree limits.
#[derive(Debug, Clone)]
pub struct GitSettings {
    /// Paddock's data directory; mirrors go to `<data_dir>/mirrors/<repo id>.git`.
    pub data_dir: PathBuf,
    /// Author and committer of every commit.
    pub identity: Identity,
    /// Branch namespace for pushes (`paddock` by default).
    pub branch_prefix: BranchPrefix,
    /// Limits on what a work tree may hold.
    pub limits: Limits,
}

impl GitSettings {
    /// Defaults: identity `Paddock <paddock@localhost>`, prefix `paddock`, default limits.
    pub fn new(data_dir: impl Into<PathBuf>) -> GitSettings {
        GitSettings {
            data_dir: data_dir.into(),
            identity: Identity::default(),
            branch_prefix: BranchPrefix::default(),
            limits: Limits::default(),
        }
    }
}

/// One repository's mirror, opened for one run (cheap: open one per run).
pub struct Mirror {
    pub(crate) repo: Repository,
    pub(crate) spec: RepoSpec,
    pub(crate) settings: GitSettings,
    path: PathBuf,
    lock_path: PathBuf,
}

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mirror")
            .field("repo", &self.spec.id())
            .field("path", &self.path)
            .finish()
    }
}

/// Holds the mirror's lock file locked until dropped (serialises init and fetch across
/// runs and runner processes on this host).
struct MirrorLock(File);

impl Drop for MirrorLock {
    fn drop(&mut self) {
        // Closing the file releases the lock too; unlock explicitly for clarity.
        let _ = self.0.unlock();
    }
}

fn lock(path: &Path) -> Result<MirrorLock, GitError> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| GitError::io("open lock", path.display().to_string(), e))?;
    file.lock()
        .map_err(|e| GitError::io("lock", path.display().to_string(), e))?;
    Ok(MirrorLock(file))
}

impl Mirror {
    /// Opens the repository's mirror, creating an empty bare repository the first time.
    pub fn open(settings: &GitSettings, spec: &RepoSpec) -> Result<Mirror, GitError> {
        hermetic::ensure()?;
        let dir = settings.data_dir.join("mirrors");
        std::fs::create_dir_all(&dir)
            .map_err(|e| GitError::io("create", dir.display().to_string(), e))?;
        let path = dir.join(format!("{}.git", spec.id()));
        let lock_path = dir.join(format!("{}.lock", spec.id()));
        let _guard = lock(&lock_path)?;
        let repo = if path.join("HEAD").is_file() {
            Repository::open_bare(&path).map_err(|e| GitError::local("open mirror", &e))?
        } else {
            let mut opts = RepositoryInitOptions::new();
            opts.bare(true)
                .mkdir(true)
                .mkpath(false)
                .no_reinit(true)
                // No template directory: nothing but what libgit2 itself writes.
                .external_template(false)
                .initial_head(spec.default_branch());
            let repo = Repository::init_opts(&path, &opts)
                .map_err(|e| GitError::local("create mirror", &e))?;
            tracing::info!(repo = spec.id(), path = %path.display(), "mirror created");
            repo
        };
        Ok(Mirror {
            repo,
            spec: spec.clone(),
            settings: settings.clone(),
            path,
            lock_path,
        })
    }

    /// The underlying bare repository (read-only uses: tests, diff views).
    pub fn repository(&self) -> &Repository {
        &self.repo
    }

    /// The repository this mirror belongs to.
    pub fn spec(&self) -> &RepoSpec {
        &self.spec
    }

    /// Fetches the default branch and returns the commit it points at on the remote.
    pub fn fetch(&self) -> Result<Oid, GitError> {
        let _guard = lock(&self.lock_path)?;
        let branch = self.spec.default_branch();
        let refname = format!("refs/heads/{branch}");
        let seen = Rc::new(RefCell::new(Observed::default()));
        let started = std::time::Instant::now();
        let mut remote = self
            .repo
            .remote_anonymous(self.spec.url().as_str())
            .map_err(|e| GitError::local("prepare remote", &e))?;
        let mut opts = FetchOptions::new();
        opts.remote_callbacks(callbacks(&self.spec, Rc::clone(&seen)))
            .download_tags(AutotagOption::None)
            .prune(FetchPrune::Off)
            .update_fetchhead(false)
            // Direct connection; no proxy from config or environment.
            .proxy_options(ProxyOptions::new());
        let refspec = format!("+{refname}:{refname}");
        remote
            .fetch(&[refspec.as_str()], Some(&mut opts), None)
            .map_err(|e| network_error("fetch", &self.spec, &seen.borrow(), &e))?;
        // The advertisement stays readable after the fetch disconnected.
        let advertised = remote
            .list()
            .map_err(|e| GitError::local("list remote refs", &e))?
            .iter()
            .find(|h| h.name() == refname)
            .map(git2::RemoteHead::oid);
        let Some(oid) = advertised else {
            return Err(GitError::NoDefaultBranch {
                branch: branch.to_owned(),
            });
        };
        let local = self
            .repo
            .refname_to_id(&refname)
            .map_err(|e| GitError::local("read fetched branch", &e))?;
        if local != oid {
            return Err(GitError::Git {
                op: "fetch",
                message: format!("{refname} is {local} locally but {oid} on the remote"),
            });
        }
        tracing::info!(
            repo = self.spec.id(),
            branch,
            commit = %oid,
            elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "mirror fetched"
        );
        Ok(oid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_and_settings_can_move_to_a_blocking_thread() {
        fn send<T: Send>() {}
        send::<Mirror>();
        send::<GitSettings>();
        send::<RepoSpec>();
    }
}
