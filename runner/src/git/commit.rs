//! The run's commit: fixed identity, a message naming the issue, the diff stat to the base.

use std::path::Path;

use git2::{DiffOptions, Oid, Signature};
use nix::sys::stat::Mode;

use super::checkout::DIR_FLAGS;
use super::error::GitError;
use super::mirror::Mirror;
use super::snapshot::{WalkReport, snapshot};

/// Author and committer of Paddock's commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    name: String,
    email: String,
}

impl Identity {
    /// Validates a name and an e-mail address (no `<`, `>`, control characters; the address
    /// has one `@`).
    pub fn new(name: &str, email: &str) -> Result<Identity, GitError> {
        let clean = |s: &str| {
            !s.trim().is_empty()
                && s.len() <= 128
                && !s.chars().any(|c| c.is_control() || c == '<' || c == '>')
        };
        if !clean(name) {
            return Err(GitError::InvalidConfig {
                what: "commit identity name",
                reason: "empty, too long, or contains `<`, `>` or control characters".into(),
            });
        }
        if !clean(email) || email.matches('@').count() != 1 || email.contains(char::is_whitespace) {
            return Err(GitError::InvalidConfig {
                what: "commit identity e-mail",
                reason: "must look like user@host without spaces, `<` or `>`".into(),
            });
        }
        Ok(Identity {
            name: name.trim().to_owned(),
            email: email.to_owned(),
        })
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The e-mail address.
    pub fn email(&self) -> &str {
        &self.email
    }
}

impl Default for Identity {
    fn default() -> Identity {
        Identity {
            name: "Paddock".into(),
            email: "paddock@localhost".into(),
        }
    }
}

/// What the commit is for.
#[derive(Debug, Clone, Copy)]
pub struct CommitRequest<'a> {
    /// Issue id.
    pub issue_id: i64,
    /// Attempt number (1 for the first run).
    pub attempt: u32,
    /// Issue title (untrusted text; cleaned and shortened for the subject line).
    pub title: &'a str,
}

/// Lines changed between the base commit and the run's commit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiffStat {
    /// Files added, removed or modified.
    pub files_changed: u64,
    /// Lines added.
    pub insertions: u64,
    /// Lines removed.
    pub deletions: u64,
}

/// A commit that was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The new commit (its only parent is the base).
    pub commit: Oid,
    /// Its tree.
    pub tree: Oid,
    /// Change against the base.
    pub diff: DiffStat,
    /// What the walk of the work tree saw.
    pub walk: WalkReport,
}

/// Result of committing a work tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitOutcome {
    /// The work tree equals the base commit's tree: nothing to push.
    NoChange(WalkReport),
    /// A commit was made.
    Committed(Committed),
}

/// Longest subject taken from the title, in characters.
const SUBJECT_CHARS: usize = 72;

/// The commit message: a subject from the cleaned title, then trailers naming issue and
/// attempt. Control characters (terminal escapes, newlines that would forge trailers) are
/// replaced by spaces.
pub fn commit_message(req: &CommitRequest<'_>) -> String {
    let cleaned: String = req
        .title
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let words: Vec<&str> = cleaned.split_whitespace().collect();
    let mut subject: String = words.join(" ");
    if subject.chars().count() > SUBJECT_CHARS {
        subject = subject.chars().take(SUBJECT_CHARS - 1).collect::<String>();
        subject.push('…');
    }
    if subject.is_empty() {
        subject = "work on the issue".into();
    }
    format!(
        "Issue #{id}: {subject}\n\nPaddock-Issue: {id}\nPaddock-Attempt: {attempt}\n",
        id = req.issue_id,
        attempt = req.attempt
    )
}

impl Mirror {
    /// Commits the work tree on top of `base` (the commit it was checked out from), without
    /// moving any branch. The work tree is read as hostile input (see `snapshot`).
    pub fn commit_work_tree(
        &self,
        work_tree: &Path,
        base: Oid,
        req: &CommitRequest<'_>,
    ) -> Result<CommitOutcome, GitError> {
        let started = std::time::Instant::now();
        let base_commit = self
            .repo
            .find_commit(base)
            .map_err(|e| GitError::local("read base commit", &e))?;
        let base_tree = base_commit
            .tree()
            .map_err(|e| GitError::local("read base tree", &e))?;
        let root = nix::fcntl::open(work_tree, DIR_FLAGS, Mode::empty())
            .map_err(|e| GitError::sys("open work tree", work_tree.display().to_string(), e))?;
        let (tree, walk) = snapshot(&self.repo, &root, &base_tree, &self.settings.limits)?;
        let tree = match tree {
            Some(t) => t,
            None => {
                // An empty work tree is a tree with no entries.
                self.repo
                    .treebuilder(None)
                    .and_then(|b| b.write())
                    .map_err(|e| GitError::local("write tree", &e))?
            }
        };
        if tree == base_tree.id() {
            tracing::info!(
                repo = self.spec.id(),
                issue_id = req.issue_id,
                attempt = req.attempt,
                "work tree unchanged"
            );
            return Ok(CommitOutcome::NoChange(walk));
        }
        let new_tree = self
            .repo
            .find_tree(tree)
            .map_err(|e| GitError::local("read tree", &e))?;
        let mut opts = DiffOptions::new();
        opts.ignore_submodules(true);
        let diff = self
            .repo
            .diff_tree_to_tree(Some(&base_tree), Some(&new_tree), Some(&mut opts))
            .map_err(|e| GitError::local("diff", &e))?;
        let stats = diff.stats().map_err(|e| GitError::local("diff stat", &e))?;
        let to_u64 = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        let diff = DiffStat {
            files_changed: to_u64(stats.files_changed()),
            insertions: to_u64(stats.insertions()),
            deletions: to_u64(stats.deletions()),
        };
        let id = &self.settings.identity;
        let sig =
            Signature::now(id.name(), id.email()).map_err(|e| GitError::local("signature", &e))?;
        let message = commit_message(req);
        // No ref is updated: the commit is only reachable through the push.
        let commit = self
            .repo
            .commit(None, &sig, &sig, &message, &new_tree, &[&base_commit])
            .map_err(|e| GitError::local("commit", &e))?;
        tracing::info!(
            repo = self.spec.id(),
            issue_id = req.issue_id,
            attempt = req.attempt,
            commit = %commit,
            files = walk.files,
            links = walk.links,
            bytes = walk.bytes,
            skipped = walk.skipped.len(),
            files_changed = diff.files_changed,
            insertions = diff.insertions,
            deletions = diff.deletions,
            elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "work tree committed"
        );
        Ok(CommitOutcome::Committed(Committed {
            commit,
            tree,
            diff,
            walk,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_issue_and_strips_control() {
        let m = commit_message(&CommitRequest {
            issue_id: 42,
            attempt: 2,
            title: "Fix\n\nPaddock-Issue: 1\x1b[31m  login",
        });
        assert!(
            m.starts_with("Issue #42: Fix Paddock-Issue: 1 [31m login\n\n"),
            "{m}"
        );
        assert!(m.ends_with("Paddock-Issue: 42\nPaddock-Attempt: 2\n"));
        assert_eq!(
            m.lines()
                .filter(|l| l.starts_with("Paddock-Issue:"))
                .count(),
            1
        );
        let long = commit_message(&CommitRequest {
            issue_id: 1,
            attempt: 1,
            title: &"x".repeat(500),
        });
        assert!(long.lines().next().unwrap().chars().count() < 90);
    }

    #[test]
    fn identity_validation() {
        assert!(Identity::new("Paddock", "paddock@localhost").is_ok());
        assert!(Identity::new("Evil <x@y>", "a@b").is_err());
        assert!(Identity::new("Name", "a@b>\nx").is_err());
        assert!(Identity::new("Name", "nope").is_err());
        assert!(Identity::new("", "a@b").is_err());
    }
}
