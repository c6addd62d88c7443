//! Reading the agent's work tree into git objects, treating every byte of it as hostile.
//!
//! The walk never follows a symbolic link and never opens anything but a regular file:
//! each entry is looked at with `fstatat(AT_SYMLINK_NOFOLLOW)` relative to its parent's
//! descriptor, directories are entered with `O_DIRECTORY | O_NOFOLLOW`, files are opened
//! with `O_NOFOLLOW | O_NONBLOCK` and checked again with `fstat` on the open descriptor (so
//! a swap between the look and the open is caught). Links become link blobs holding their
//! target text. `.git` entries are skipped unread: the agent's git config, hooks and
//! attributes never reach libgit2 as configuration. Objects are written straight into the
//! mirror's object database; no index, no attributes, no filters, no hooks. Untracked paths
//! that the base commit's `.gitignore` rules ignore are left out unread (see `ignore`).

use std::ffi::OsStr;
use std::io::Read as _;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt as _;

use git2::{ObjectType, Oid, Repository, Tree};
use nix::dir::Dir;
use nix::fcntl::{AtFlags, OFlag, openat, readlinkat};
use nix::sys::stat::{Mode, SFlag, fstat, fstatat};

use super::checkout::{DIR_FLAGS, join};
use super::error::GitError;
use super::ignore::IgnoreStack;
use super::paths::{NameKind, check_name, is_git_special_file};

/// Limits on what a work tree may hold. Exceeding one fails the commit with an error naming
/// the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest single file, in bytes.
    pub max_file_bytes: u64,
    /// All files together, in bytes.
    pub max_total_bytes: u64,
    /// Entries of any kind (files, links, directories, skipped ones).
    pub max_entries: u64,
    /// Directory nesting.
    pub max_depth: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_file_bytes: 10 * 1024 * 1024,
            max_total_bytes: 256 * 1024 * 1024,
            max_entries: 50_000,
            max_depth: 64,
        }
    }
}

/// Longest link target accepted (Linux `PATH_MAX`).
const MAX_LINK_TARGET: usize = 4096;

/// Why an entry of the work tree was left out of the commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SkipReason {
    /// A `.git` file or directory: repository metadata, never read.
    GitMetadata,
    /// A named pipe.
    Fifo,
    /// A Unix socket.
    Socket,
    /// A character or block device node.
    Device,
    /// The entry changed kind or vanished while it was being read.
    Changed,
    /// Not in the base commit and ignored by the base commit's `.gitignore` rules.
    Ignored,
}

/// One entry left out of the commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Path relative to the work tree.
    pub path: String,
    /// Why.
    pub reason: SkipReason,
}

/// What the walk saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalkReport {
    /// Regular files committed.
    pub files: u64,
    /// Symbolic links committed (as links).
    pub links: u64,
    /// Bytes of file content committed.
    pub bytes: u64,
    /// Entries left out, with the reason.
    pub skipped: Vec<Skipped>,
    /// Submodule entries of the base commit kept as they were.
    pub submodules_kept: Vec<String>,
}

struct Walker<'r> {
    repo: &'r Repository,
    limits: &'r Limits,
    root_dev: nix::libc::dev_t,
    entries: u64,
    report: WalkReport,
    ignores: IgnoreStack,
}

/// Builds a tree object from the work tree behind `root` (an open directory descriptor).
/// `base` is the tree of the commit the work tree was checked out from (for submodules).
/// Returns `None` for an empty work tree.
pub(crate) fn snapshot(
    repo: &Repository,
    root: &OwnedFd,
    base: &Tree<'_>,
    limits: &Limits,
) -> Result<(Option<Oid>, WalkReport), GitError> {
    let st = fstat(root).map_err(|e| GitError::sys("stat work tree", "", e))?;
    let mut walker = Walker {
        repo,
        limits,
        root_dev: st.st_dev,
        entries: 0,
        report: WalkReport::default(),
        ignores: IgnoreStack::default(),
    };
    let tree = walker.dir(root, "", Some(base), 0)?;
    Ok((tree, walker.report))
}

fn file_type(mode: nix::libc::mode_t) -> SFlag {
    SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits())
}

fn names(
    dir: &OwnedFd,
    path: &str,
    limits: &Limits,
    entries: &mut u64,
) -> Result<Vec<Vec<u8>>, GitError> {
    let dup = dir
        .try_clone()
        .map_err(|e| GitError::io("duplicate descriptor", path, e))?;
    let mut d = Dir::from_fd(dup).map_err(|e| GitError::sys("open directory", path, e))?;
    let mut out = Vec::new();
    for entry in d.iter() {
        let entry = entry.map_err(|e| GitError::sys("read directory", path, e))?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        *entries += 1;
        if *entries > limits.max_entries {
            return Err(GitError::TooManyEntries {
                path: join(path, &String::from_utf8_lossy(name)),
                limit: limits.max_entries,
            });
        }
        out.push(name.to_vec());
    }
    out.sort();
    Ok(out)
}

impl Walker<'_> {
    fn skip(&mut self, path: String, reason: SkipReason) {
        tracing::info!(path = %path, reason = ?reason, "work tree entry left out of the commit");
        self.report.skipped.push(Skipped { path, reason });
    }

    fn dir(
        &mut self,
        fd: &OwnedFd,
        prefix: &str,
        base: Option<&Tree<'_>>,
        depth: u64,
    ) -> Result<Option<Oid>, GitError> {
        if depth > self.limits.max_depth {
            return Err(GitError::TooDeep {
                path: prefix.to_owned(),
                limit: self.limits.max_depth,
            });
        }
        self.ignores.enter(self.repo, prefix, base);
        let tree = self.dir_entries(fd, prefix, base, depth);
        self.ignores.leave();
        tree
    }

    fn dir_entries(
        &mut self,
        fd: &OwnedFd,
        prefix: &str,
        base: Option<&Tree<'_>>,
        depth: u64,
    ) -> Result<Option<Oid>, GitError> {
        let names = names(fd, prefix, self.limits, &mut self.entries)?;
        let mut builder = self
            .repo
            .treebuilder(None)
            .map_err(|e| GitError::local("tree builder", &e))?;
        for raw in names {
            let shown = String::from_utf8_lossy(&raw).into_owned();
            let path = join(prefix, &shown);
            let kind = check_name(&raw).map_err(|reason| GitError::PathRefused {
                path: path.clone(),
                reason,
            })?;
            if kind == NameKind::DotGit {
                self.skip(path, SkipReason::GitMetadata);
                continue;
            }
            let name = OsStr::from_bytes(&raw);
            let st = match fstatat(fd, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(nix::Error::ENOENT) => {
                    self.skip(path, SkipReason::Changed);
                    continue;
                }
                Err(e) => return Err(GitError::sys("stat", path, e)),
            };
            let base_entry = base.and_then(|t| t.get_name(&shown));
            let ft = file_type(st.st_mode);
            if base_entry.is_none() && self.ignores.ignored(&path, ft == SFlag::S_IFDIR) {
                self.skip(path, SkipReason::Ignored);
                continue;
            }
            if ft == SFlag::S_IFDIR {
                if st.st_dev != self.root_dev {
                    return Err(GitError::PathRefused {
                        path,
                        reason: "mount point inside the work tree",
                    });
                }
                if let Some(e) = base_entry.as_ref().filter(|e| e.filemode() == 0o160000) {
                    builder
                        .insert(name, e.id(), 0o160000)
                        .map_err(|e| GitError::local("tree insert", &e))?;
                    self.report.submodules_kept.push(path);
                    continue;
                }
                let child = match openat(fd, name, DIR_FLAGS, Mode::empty()) {
                    Ok(c) => c,
                    Err(nix::Error::ENOENT) => {
                        self.skip(path, SkipReason::Changed);
                        continue;
                    }
                    // ELOOP/ENOTDIR: swapped for a link or file after the look; fail closed.
                    Err(e) => return Err(GitError::sys("open directory", path, e)),
                };
                let sub_base = match base_entry.as_ref() {
                    Some(e) if e.kind() == Some(ObjectType::Tree) => Some(
                        self.repo
                            .find_tree(e.id())
                            .map_err(|e| GitError::local("read base tree", &e))?,
                    ),
                    _ => None,
                };
                if let Some(oid) = self.dir(&child, &path, sub_base.as_ref(), depth + 1)? {
                    builder
                        .insert(name, oid, 0o040000)
                        .map_err(|e| GitError::local("tree insert", &e))?;
                }
            } else if ft == SFlag::S_IFREG {
                if let Some((oid, mode)) = self.file(fd, name, &path)? {
                    builder
                        .insert(name, oid, mode)
                        .map_err(|e| GitError::local("tree insert", &e))?;
                }
            } else if ft == SFlag::S_IFLNK {
                if is_git_special_file(&shown) {
                    return Err(GitError::PathRefused {
                        path,
                        reason: "symbolic link named like a git control file (.gitmodules, .gitattributes, .gitignore, .mailmap)",
                    });
                }
                let target = match readlinkat(fd, name) {
                    Ok(t) => t,
                    Err(nix::Error::ENOENT | nix::Error::EINVAL) => {
                        self.skip(path, SkipReason::Changed);
                        continue;
                    }
                    Err(e) => return Err(GitError::sys("read link", path, e)),
                };
                let bytes = target.as_bytes();
                if bytes.is_empty() || bytes.len() > MAX_LINK_TARGET {
                    return Err(GitError::PathRefused {
                        path,
                        reason: "symbolic link target empty or longer than 4096 bytes",
                    });
                }
                let oid = self
                    .repo
                    .blob(bytes)
                    .map_err(|e| GitError::local("write link blob", &e))?;
                builder
                    .insert(name, oid, 0o120000)
                    .map_err(|e| GitError::local("tree insert", &e))?;
                self.report.links += 1;
            } else {
                let reason = if ft == SFlag::S_IFIFO {
                    SkipReason::Fifo
                } else if ft == SFlag::S_IFSOCK {
                    SkipReason::Socket
                } else {
                    SkipReason::Device
                };
                self.skip(path, reason);
            }
        }
        if builder.is_empty() {
            return Ok(None);
        }
        let oid = builder
            .write()
            .map_err(|e| GitError::local("write tree", &e))?;
        Ok(Some(oid))
    }

    /// Reads one regular file (re-checked on the open descriptor) into a blob.
    fn file(
        &mut self,
        dir: &OwnedFd,
        name: &OsStr,
        path: &str,
    ) -> Result<Option<(Oid, i32)>, GitError> {
        let flags = OFlag::O_RDONLY
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_NOCTTY
            | OFlag::O_CLOEXEC;
        let fd = match openat(dir, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(nix::Error::ENOENT | nix::Error::ELOOP) => {
                // Vanished, or swapped for a link after the look: nothing is read.
                self.skip(path.to_owned(), SkipReason::Changed);
                return Ok(None);
            }
            Err(e) => return Err(GitError::sys("open", path, e)),
        };
        let st = fstat(&fd).map_err(|e| GitError::sys("stat", path, e))?;
        if file_type(st.st_mode) != SFlag::S_IFREG {
            self.skip(path.to_owned(), SkipReason::Changed);
            return Ok(None);
        }
        let limit = self.limits.max_file_bytes;
        let size = u64::try_from(st.st_size).unwrap_or(u64::MAX);
        if size > limit {
            return Err(GitError::FileTooLarge {
                path: path.to_owned(),
                limit,
            });
        }
        if self.report.bytes.saturating_add(size) > self.limits.max_total_bytes {
            return Err(GitError::TotalTooLarge {
                path: path.to_owned(),
                limit: self.limits.max_total_bytes,
            });
        }
        // Read at most limit + 1 bytes: a file that grows after the stat is still caught.
        let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        std::fs::File::from(fd)
            .take(limit.saturating_add(1))
            .read_to_end(&mut data)
            .map_err(|e| GitError::io("read", path, e))?;
        let len = u64::try_from(data.len()).unwrap_or(u64::MAX);
        if len > limit {
            return Err(GitError::FileTooLarge {
                path: path.to_owned(),
                limit,
            });
        }
        self.report.bytes = self.report.bytes.saturating_add(len);
        if self.report.bytes > self.limits.max_total_bytes {
            return Err(GitError::TotalTooLarge {
                path: path.to_owned(),
                limit: self.limits.max_total_bytes,
            });
        }
        let oid = self
            .repo
            .blob(&data)
            .map_err(|e| GitError::local("write blob", &e))?;
        self.report.files += 1;
        // Git keeps one permission bit: owner-executable.
        let mode = if st.st_mode & 0o100 != 0 {
            0o100755
        } else {
            0o100644
        };
        Ok(Some((oid, mode)))
    }
}
