//! Writing a fresh work tree of plain files from a commit: no `.git`, no checkout machinery.
//!
//! The work tree is written entry by entry relative to directory descriptors, every file
//! created with `O_EXCL | O_NOFOLLOW`, so a link in the tree is created as a link and never
//! written through. No attributes, filters or line-ending conversions apply: the bytes in
//! the work tree are the blob bytes.

use std::ffi::OsStr;
use std::io::Write as _;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::Path;

use git2::{ObjectType, Oid, Tree};
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{Mode, fchmod, mkdirat};

use super::error::GitError;
use super::mirror::Mirror;
use super::paths::{NameKind, check_name};

/// What a checkout wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckoutReport {
    /// Regular files and links written.
    pub files: u64,
    /// Bytes of file content written.
    pub bytes: u64,
    /// Submodule paths, left as empty directories (their commits are kept on commit).
    pub submodules: Vec<String>,
}

pub(crate) const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

pub(crate) fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}/{name}")
    }
}

impl Mirror {
    /// Writes the tree of `commit` into `dest`, which must not exist yet. `dest` gets plain
    /// files only: no `.git`, nothing of the mirror.
    pub fn checkout(&self, commit: Oid, dest: &Path) -> Result<CheckoutReport, GitError> {
        let tree = self
            .repo
            .find_commit(commit)
            .and_then(|c| c.tree())
            .map_err(|e| GitError::local("read commit", &e))?;
        std::fs::DirBuilder::new()
            .mode(0o755)
            .create(dest)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => GitError::WorkTreeExists {
                    path: dest.display().to_string(),
                },
                _ => GitError::io("create work tree", dest.display().to_string(), e),
            })?;
        let root = nix::fcntl::open(dest, DIR_FLAGS, Mode::empty())
            .map_err(|e| GitError::sys("open work tree", dest.display().to_string(), e))?;
        let mut report = CheckoutReport::default();
        self.write_tree(&root, &tree, "", 0, &mut report)?;
        tracing::info!(
            repo = self.spec.id(),
            commit = %commit,
            files = report.files,
            bytes = report.bytes,
            "work tree checked out"
        );
        Ok(report)
    }

    fn write_tree(
        &self,
        dir: &OwnedFd,
        tree: &Tree<'_>,
        prefix: &str,
        depth: u64,
        report: &mut CheckoutReport,
    ) -> Result<(), GitError> {
        let limits = &self.settings.limits;
        if depth > limits.max_depth {
            return Err(GitError::TooDeep {
                path: prefix.to_owned(),
                limit: limits.max_depth,
            });
        }
        for entry in tree.iter() {
            let raw = entry.name_bytes();
            let shown = String::from_utf8_lossy(raw);
            let path = join(prefix, &shown);
            match check_name(raw) {
                Ok(NameKind::Normal) => {}
                Ok(NameKind::DotGit) => {
                    return Err(GitError::PathRefused {
                        path,
                        reason: "`.git` inside a tree",
                    });
                }
                Err(reason) => return Err(GitError::PathRefused { path, reason }),
            }
            let name = OsStr::from_bytes(raw);
            let mode = entry.filemode();
            match (entry.kind(), mode) {
                (Some(ObjectType::Tree), 0o040000) => {
                    mkdirat(dir, name, Mode::from_bits_truncate(0o755))
                        .map_err(|e| GitError::sys("create directory", path.clone(), e))?;
                    let child = openat(dir, name, DIR_FLAGS, Mode::empty())
                        .map_err(|e| GitError::sys("open directory", path.clone(), e))?;
                    let sub = self
                        .repo
                        .find_tree(entry.id())
                        .map_err(|e| GitError::local("read tree", &e))?;
                    self.write_tree(&child, &sub, &path, depth + 1, report)?;
                }
                (Some(ObjectType::Blob), 0o100644 | 0o100755) => {
                    let blob = self
                        .repo
                        .find_blob(entry.id())
                        .map_err(|e| GitError::local("read blob", &e))?;
                    let flags = OFlag::O_WRONLY
                        | OFlag::O_CREAT
                        | OFlag::O_EXCL
                        | OFlag::O_NOFOLLOW
                        | OFlag::O_CLOEXEC;
                    let perm = if mode == 0o100755 { 0o755 } else { 0o644 };
                    let fd = openat(dir, name, flags, Mode::from_bits_truncate(perm))
                        .map_err(|e| GitError::sys("create file", path.clone(), e))?;
                    // The umask must not decide the exec bit.
                    fchmod(&fd, Mode::from_bits_truncate(perm))
                        .map_err(|e| GitError::sys("chmod", path.clone(), e))?;
                    let mut file = std::fs::File::from(fd);
                    file.write_all(blob.content())
                        .map_err(|e| GitError::io("write", path.clone(), e))?;
                    report.files += 1;
                    report.bytes += u64::try_from(blob.content().len()).unwrap_or(u64::MAX);
                }
                (Some(ObjectType::Blob), 0o120000) => {
                    let blob = self
                        .repo
                        .find_blob(entry.id())
                        .map_err(|e| GitError::local("read link", &e))?;
                    let target = blob.content();
                    if target.is_empty() || target.contains(&0) {
                        return Err(GitError::PathRefused {
                            path,
                            reason: "symbolic link with an empty or NUL-containing target",
                        });
                    }
                    nix::unistd::symlinkat(OsStr::from_bytes(target), dir, name)
                        .map_err(|e| GitError::sys("create link", path.clone(), e))?;
                    report.files += 1;
                }
                (Some(ObjectType::Commit), 0o160000) => {
                    mkdirat(dir, name, Mode::from_bits_truncate(0o755))
                        .map_err(|e| GitError::sys("create directory", path.clone(), e))?;
                    report.submodules.push(path);
                }
                _ => {
                    return Err(GitError::PathRefused {
                        path,
                        reason: "tree entry of an unknown kind or mode",
                    });
                }
            }
        }
        Ok(())
    }
}
