//! Git for runs: per-repository mirrors, plain work trees, hostile-work-tree commits, pushes.
//!
//! The worker loop's sequence, all blocking (run it on a blocking thread):
//!
//! 1. [`init_hermetic`] once at start-up (no user/system git config, network timeouts).
//! 2. [`Mirror::open`] + [`Mirror::fetch`] → the default branch's commit (the run's base).
//! 3. [`Mirror::checkout`] into a fresh directory → the agent's work tree (plain files).
//! 4. After the agent has exited: [`Mirror::commit_work_tree`] → [`CommitOutcome`].
//! 5. [`Mirror::run_branch`] + [`Mirror::push`] → the branch `<prefix>/<issue>-<attempt>`.

mod checkout;
mod commit;
mod error;
mod hermetic;
mod ignore;
mod known_hosts;
mod mirror;
pub mod paths;
mod push;
mod remote;
mod snapshot;

pub use checkout::CheckoutReport;
pub use commit::{CommitOutcome, CommitRequest, Committed, DiffStat, Identity, commit_message};
pub use error::GitError;
pub use git2::Oid;
pub use hermetic::init_hermetic;
pub use known_hosts::KnownHosts;
pub use mirror::{GitSettings, Mirror};
pub use push::{BranchPrefix, PushOutcome, RunBranch};
pub use remote::{Credential, RemoteUrl, RepoSpec, Scheme};
pub use snapshot::{Limits, SkipReason, Skipped, WalkReport};
