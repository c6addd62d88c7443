//! Pushing a run's commit to `<prefix>/<issue>-<attempt>`: never the default branch, never
//! outside the prefix, never over a branch that holds something else, never forced.

use std::cell::RefCell;
use std::rc::Rc;

use git2::{Direction, Oid, ProxyOptions, PushOptions};

use super::error::GitError;
use super::mirror::Mirror;
use super::remote::{Observed, callbacks, network_error};

/// The branch namespace Paddock pushes to: one or more `/`-separated segments of
/// `[A-Za-z0-9._-]`, none starting with `.` or `-` or ending with `.lock`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchPrefix(String);

impl BranchPrefix {
    /// Validates a prefix.
    pub fn new(prefix: &str) -> Result<BranchPrefix, GitError> {
        let bad = |reason: &str| GitError::InvalidConfig {
            what: "branch prefix",
            reason: reason.to_owned(),
        };
        if prefix.is_empty() || prefix.len() > 100 {
            return Err(bad("must be 1-100 characters"));
        }
        for seg in prefix.split('/') {
            if seg.is_empty()
                || seg.starts_with(['.', '-'])
                || seg.ends_with(".lock")
                || seg.contains("..")
                || !seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            {
                return Err(bad(
                    "segments of [A-Za-z0-9._-], not starting with `.` or `-`, no `..` or `.lock`",
                ));
            }
        }
        if !git2::Reference::is_valid_name(&format!("refs/heads/{prefix}/1-1")) {
            return Err(bad("not a valid ref name"));
        }
        Ok(BranchPrefix(prefix.to_owned()))
    }

    /// The prefix.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for BranchPrefix {
    fn default() -> BranchPrefix {
        BranchPrefix("paddock".into())
    }
}

/// A run's branch, `<prefix>/<issue>-<attempt>`. Only [`RunBranch::new`] makes one, so a
/// push target is always inside Paddock's namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunBranch {
    prefix: BranchPrefix,
    name: String,
}

impl RunBranch {
    /// The branch for one attempt at one issue.
    pub fn new(prefix: &BranchPrefix, issue_id: i64, attempt: u32) -> Result<RunBranch, GitError> {
        if issue_id <= 0 || attempt == 0 {
            return Err(GitError::InvalidConfig {
                what: "run branch",
                reason: "issue id and attempt must be positive".into(),
            });
        }
        Ok(RunBranch {
            prefix: prefix.clone(),
            name: format!("{}/{issue_id}-{attempt}", prefix.as_str()),
        })
    }

    /// Short name (`paddock/12-1`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Full ref name (`refs/heads/paddock/12-1`).
    pub fn refname(&self) -> String {
        format!("refs/heads/{}", self.name)
    }
}

/// How a push ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// The branch was created on the remote.
    Created,
    /// The branch already pointed at this very commit (a retried push).
    AlreadyPresent,
}

/// Local scratch ref the push reads from (libgit2 pushes refs, not bare ids).
fn local_ref(branch: &RunBranch) -> String {
    format!("refs/paddock-push/{}", branch.name())
}

impl Mirror {
    /// The branch for an attempt, in this mirror's configured prefix.
    pub fn run_branch(&self, issue_id: i64, attempt: u32) -> Result<RunBranch, GitError> {
        RunBranch::new(&self.settings.branch_prefix, issue_id, attempt)
    }

    /// Checks that `branch` is a ref Paddock may create on this repository.
    fn check_target(&self, branch: &RunBranch) -> Result<String, GitError> {
        let refname = branch.refname();
        let default = format!("refs/heads/{}", self.spec.default_branch());
        let ours = format!("refs/heads/{}/", self.settings.branch_prefix.as_str());
        if refname == default {
            return Err(GitError::RefRefused {
                refname,
                reason: "it is the default branch",
            });
        }
        if default.starts_with(&ours) {
            return Err(GitError::RefRefused {
                refname,
                reason: "the default branch lies inside Paddock's branch prefix; choose another prefix",
            });
        }
        if branch.prefix != self.settings.branch_prefix || !refname.starts_with(&ours) {
            return Err(GitError::RefRefused {
                refname,
                reason: "outside the configured branch prefix",
            });
        }
        if !git2::Reference::is_valid_name(&refname) {
            return Err(GitError::RefRefused {
                refname,
                reason: "not a valid ref name",
            });
        }
        Ok(refname)
    }

    /// Pushes `commit` to a new branch `branch`. Refuses the default branch and anything
    /// outside the prefix; if the branch exists on the remote it must already point at
    /// `commit` (a retried push), otherwise the push is refused. The ref update is never
    /// forced: the server applies it only if the branch still does not exist.
    pub fn push(&self, commit: Oid, branch: &RunBranch) -> Result<PushOutcome, GitError> {
        let refname = self.check_target(branch)?;
        self.repo
            .find_commit(commit)
            .map_err(|e| GitError::local("read commit to push", &e))?;
        let started = std::time::Instant::now();

        let seen = Rc::new(RefCell::new(Observed::default()));
        let mut remote = self
            .repo
            .remote_anonymous(self.spec.url().as_str())
            .map_err(|e| GitError::local("prepare remote", &e))?;
        // One connection: read the advertisement, decide, then push over the same session.
        let mut conn = remote
            .connect_auth(
                Direction::Push,
                Some(callbacks(&self.spec, Rc::clone(&seen))),
                Some(ProxyOptions::new()),
            )
            .map_err(|e| network_error("connect", &self.spec, &seen.borrow(), &e))?;
        let existing = conn
            .list()
            .map_err(|e| GitError::local("list remote refs", &e))?
            .iter()
            .find(|h| h.name() == refname)
            .map(git2::RemoteHead::oid);
        if let Some(remote_oid) = existing {
            if remote_oid == commit {
                tracing::info!(repo = self.spec.id(), branch = branch.name(), commit = %commit, "branch already holds the commit");
                return Ok(PushOutcome::AlreadyPresent);
            }
            tracing::warn!(repo = self.spec.id(), branch = branch.name(), remote = %remote_oid, verdict = "deny", "run branch exists with other content");
            return Err(GitError::BranchExists {
                branch: branch.name().to_owned(),
                remote_oid: remote_oid.to_string(),
            });
        }

        let local = local_ref(branch);
        self.repo
            .reference(&local, commit, true, "paddock: push source")
            .map_err(|e| GitError::local("create push ref", &e))?;
        let result = self.push_ref(conn.remote(), &local, &refname, &seen);
        drop(conn);
        // The scratch ref is only the push's source; the remote has the commit now or never.
        if let Ok(mut r) = self.repo.find_reference(&local) {
            let _ = r.delete();
        }
        result?;
        tracing::info!(
            repo = self.spec.id(),
            branch = branch.name(),
            commit = %commit,
            elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "branch pushed"
        );
        Ok(PushOutcome::Created)
    }

    fn push_ref(
        &self,
        remote: &mut git2::Remote<'_>,
        local: &str,
        refname: &str,
        seen: &Rc<RefCell<Observed>>,
    ) -> Result<(), GitError> {
        // Fresh state for the push's callbacks (the session is already authenticated).
        *seen.borrow_mut() = Observed::default();
        let mut opts = PushOptions::new();
        opts.remote_callbacks(callbacks(&self.spec, Rc::clone(seen)))
            .proxy_options(ProxyOptions::new());
        // No `+`: a non-forced update. The old value sent is "absent", so the server refuses
        // the update if the branch appeared meanwhile.
        let refspec = format!("{local}:{refname}");
        remote
            .push(&[refspec.as_str()], Some(&mut opts))
            .map_err(|e| network_error("push", &self.spec, &seen.borrow(), &e))?;
        let seen = seen.borrow();
        if let Some((_, message)) = seen.rejected.iter().find(|(r, _)| r == refname) {
            return Err(GitError::PushRejected {
                branch: refname.trim_start_matches("refs/heads/").to_owned(),
                message: self.spec.scrubber().scrub(message).into_owned(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        for ok in ["paddock", "bots/paddock", "a_b-c.d"] {
            assert!(BranchPrefix::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/x",
            "x/",
            "a//b",
            "..",
            "a..b",
            ".hidden",
            "-x",
            "x.lock",
            "a b",
            "a~1",
            "a:b",
            "a*",
            "refs/../x",
            "x@{1}",
        ] {
            assert!(BranchPrefix::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn run_branch_names() {
        let p = BranchPrefix::default();
        let b = RunBranch::new(&p, 12, 3).unwrap();
        assert_eq!(b.name(), "paddock/12-3");
        assert_eq!(b.refname(), "refs/heads/paddock/12-3");
        assert!(RunBranch::new(&p, 0, 1).is_err());
        assert!(RunBranch::new(&p, -5, 1).is_err());
        assert!(RunBranch::new(&p, 5, 0).is_err());
    }
}
