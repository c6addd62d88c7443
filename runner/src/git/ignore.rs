//! Ignore rules for the agent's work tree, read from the base commit only.
//!
//! Each directory's `.gitignore` blob in the commit the work tree was checked out from (the
//! default branch: the team's own rules, not the agent's) is parsed as data. A path the base
//! tree does not hold and that those rules ignore is left out of the commit, unread: build
//! output such as `node_modules/` or `target/` never counts against the limits or reaches the
//! branch. A path the base tree holds is never ignored (git does not ignore tracked files), and
//! what the agent writes into `.gitignore` only takes effect for the next run, once reviewed
//! and merged.

use std::path::{Path, PathBuf};

use git2::{ObjectType, Repository, Tree};
use ignore::Match;
use ignore::gitignore::{Gitignore, GitignoreBuilder};

/// Longest `.gitignore` blob read.
const MAX_IGNORE_BYTES: usize = 256 * 1024;

/// A stand-in root so that rule paths and entry paths compare as absolute paths.
const ROOT: &str = "/work-tree";

/// The rules of every directory on the path from the work tree's root to the current one.
#[derive(Default)]
pub(crate) struct IgnoreStack {
    levels: Vec<Option<Gitignore>>,
}

fn abs(rel: &str) -> PathBuf {
    let mut p = PathBuf::from(ROOT);
    if !rel.is_empty() {
        p.push(rel);
    }
    p
}

impl IgnoreStack {
    /// Enters directory `prefix` whose base tree is `base`: reads its `.gitignore` blob.
    pub(crate) fn enter(&mut self, repo: &Repository, prefix: &str, base: Option<&Tree<'_>>) {
        let rules = base
            .and_then(|t| t.get_name(".gitignore"))
            .filter(|e| e.kind() == Some(ObjectType::Blob) && e.filemode() != 0o120_000)
            .and_then(|e| repo.find_blob(e.id()).ok())
            .filter(|b| b.size() <= MAX_IGNORE_BYTES)
            .and_then(|b| {
                let mut builder = GitignoreBuilder::new(abs(prefix));
                let text = String::from_utf8_lossy(b.content());
                for line in text.lines() {
                    // A line the matcher cannot parse is skipped, as git does.
                    let _ = builder.add_line(None, line);
                }
                builder.build().ok()
            });
        self.levels.push(rules);
    }

    /// Leaves the current directory.
    pub(crate) fn leave(&mut self) {
        self.levels.pop();
    }

    /// Whether `path` (relative to the work tree) is ignored; the deepest rule that matches
    /// decides, as in git.
    pub(crate) fn ignored(&self, path: &str, is_dir: bool) -> bool {
        let p = abs(path);
        for g in self.levels.iter().rev().flatten() {
            match g.matched(Path::new(&p), is_dir) {
                Match::Ignore(_) => return true,
                Match::Whitelist(_) => return false,
                Match::None => {}
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_with(files: &[(&str, &str)]) -> (tempfile::TempDir, Repository, git2::Oid) {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        let mut root = repo.treebuilder(None).unwrap();
        let mut sub = repo.treebuilder(None).unwrap();
        for (path, text) in files {
            let blob = repo.blob(text.as_bytes()).unwrap();
            match path.split_once('/') {
                Some((_, name)) => sub.insert(name, blob, 0o100_644).unwrap(),
                None => root.insert(path, blob, 0o100_644).unwrap(),
            };
        }
        let sub_oid = sub.write().unwrap();
        root.insert("sub", sub_oid, 0o040_000).unwrap();
        let oid = root.write().unwrap();
        drop((root, sub));
        (dir, repo, oid)
    }

    #[test]
    fn base_rules_ignore_by_level_and_the_deepest_match_decides() {
        let (_d, repo, oid) = repo_with(&[
            (".gitignore", "node_modules/\n*.log\n!keep.log\n/top-only\n"),
            ("sub/.gitignore", "*.tmp\n!important.log\n"),
        ]);
        let tree = repo.find_tree(oid).unwrap();
        let sub = repo.find_tree(tree.get_name("sub").unwrap().id()).unwrap();
        let mut s = IgnoreStack::default();
        s.enter(&repo, "", Some(&tree));
        assert!(s.ignored("node_modules", true));
        assert!(!s.ignored("node_modules", false), "dir-only rule");
        assert!(s.ignored("debug.log", false));
        assert!(!s.ignored("keep.log", false));
        assert!(s.ignored("top-only", false));
        assert!(!s.ignored("main.rs", false));
        s.enter(&repo, "sub", Some(&sub));
        assert!(s.ignored("sub/x.tmp", false));
        assert!(
            s.ignored("sub/other.log", false),
            "the parent's rule still applies"
        );
        assert!(
            !s.ignored("sub/important.log", false),
            "the deeper whitelist wins"
        );
        assert!(
            !s.ignored("sub/top-only", false),
            "anchored to the root directory"
        );
        assert!(s.ignored("sub/node_modules", true));
        s.leave();
        assert!(!s.ignored("x.tmp", false), "sub's rules end with sub");
    }

    #[test]
    fn without_rules_nothing_is_ignored() {
        let (_d, repo, oid) = repo_with(&[("README.md", "x")]);
        let tree = repo.find_tree(oid).unwrap();
        let mut s = IgnoreStack::default();
        s.enter(&repo, "", Some(&tree));
        s.enter(&repo, "new", None);
        assert!(!s.ignored("new/anything", false));
        assert!(!s.ignored(".env", false));
    }
}
