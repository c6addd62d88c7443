//! The git module's error type: what failed, on which path, ref or host.

use std::io;

/// Everything that can go wrong in mirroring, checking out, committing and pushing.
///
/// Messages never carry a deploy key or a token: errors coming out of libgit2 are scrubbed
/// against the repository's credential before they are wrapped (see `remote::scrub_git_error`).
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// A repository URL that Paddock does not accept (scheme, userinfo, host or path).
    #[error("repository URL refused: {reason}")]
    InvalidUrl {
        /// Why it was refused.
        reason: String,
    },
    /// A pinned host-key list that does not parse.
    #[error("pinned host keys, line {line}: {reason}")]
    InvalidKnownHosts {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The SSH repository's host has no pinned key (fail closed at configuration time).
    #[error("no pinned host key for {host} port {port}; add it to the repository's known hosts")]
    HostNotPinned {
        /// Host from the URL.
        host: String,
        /// Port from the URL.
        port: u16,
    },
    /// The credential kind does not fit the URL scheme (SSH key for https or token for ssh).
    #[error("credential does not fit the URL: {reason}")]
    CredentialMismatch {
        /// Which mismatch.
        reason: &'static str,
    },
    /// A configuration value (identity, prefix, default branch, repository id) is invalid.
    #[error("invalid {what}: {reason}")]
    InvalidConfig {
        /// Which setting.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The server presented a host key that is not pinned for it.
    #[error(
        "host key of {host} port {port} is not pinned (offered {key_type} SHA256:{fingerprint}); refusing to connect"
    )]
    HostKeyRefused {
        /// Host from the URL.
        host: String,
        /// Port from the URL.
        port: u16,
        /// Key type the server offered.
        key_type: String,
        /// Base64 SHA-256 fingerprint of the offered key (public data).
        fingerprint: String,
    },
    /// The server refused the credential.
    #[error("authentication to {host} failed: the repository credential was refused")]
    AuthFailed {
        /// Host from the URL.
        host: String,
    },
    /// A name in the work tree (or in a tree being checked out) that Paddock will not commit.
    #[error("path {path:?} refused: {reason}")]
    PathRefused {
        /// Path relative to the work tree.
        path: String,
        /// Which rule refused it.
        reason: &'static str,
    },
    /// One file is over the per-file limit.
    #[error("file {path:?} is larger than the per-file limit of {limit} bytes")]
    FileTooLarge {
        /// Path relative to the work tree.
        path: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// The work tree's files add up to more than the total limit.
    #[error("work tree exceeds the total size limit of {limit} bytes at {path:?}")]
    TotalTooLarge {
        /// The path whose bytes crossed the limit.
        path: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// The work tree holds more entries than allowed.
    #[error("work tree holds more than {limit} entries (at {path:?})")]
    TooManyEntries {
        /// The path at which the count crossed the limit.
        path: String,
        /// The limit.
        limit: u64,
    },
    /// Directories nested deeper than allowed.
    #[error("directory {path:?} is nested deeper than {limit} levels")]
    TooDeep {
        /// Path relative to the work tree.
        path: String,
        /// The limit.
        limit: u64,
    },
    /// A file-system call on the work tree or the data directory failed.
    #[error("{op} {path:?}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// Path (relative to the work tree where that applies).
        path: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The destination of a checkout already exists.
    #[error("work tree destination {path:?} already exists")]
    WorkTreeExists {
        /// The destination.
        path: String,
    },
    /// The remote has no default branch of that name.
    #[error("the remote has no branch {branch:?}")]
    NoDefaultBranch {
        /// Configured default branch.
        branch: String,
    },
    /// A push to the default branch or to a ref outside Paddock's prefix.
    #[error("push to {refname:?} refused: {reason}")]
    RefRefused {
        /// Full ref name.
        refname: String,
        /// Why.
        reason: &'static str,
    },
    /// The run's branch already exists on the remote with other content.
    #[error(
        "branch {branch:?} already exists on the remote at {remote_oid}; Paddock never overwrites a branch"
    )]
    BranchExists {
        /// Branch name.
        branch: String,
        /// What the remote branch points at.
        remote_oid: String,
    },
    /// The server rejected the ref update.
    #[error("the remote rejected the push of {branch:?}: {message}")]
    PushRejected {
        /// Branch name.
        branch: String,
        /// Server's status message.
        message: String,
    },
    /// libgit2 failed.
    #[error("git {op} failed: {message}")]
    Git {
        /// What was being done.
        op: &'static str,
        /// libgit2's message, scrubbed of credentials.
        message: String,
    },
}

impl GitError {
    pub(crate) fn io(op: &'static str, path: impl Into<String>, source: io::Error) -> GitError {
        GitError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn sys(op: &'static str, path: impl Into<String>, errno: nix::Error) -> GitError {
        GitError::Io {
            op,
            path: path.into(),
            source: io::Error::from(errno),
        }
    }

    /// Wraps a libgit2 error that involves no credential (local object and ref work).
    pub(crate) fn local(op: &'static str, e: &git2::Error) -> GitError {
        GitError::Git {
            op,
            message: e.message().to_owned(),
        }
    }
}
