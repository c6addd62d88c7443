//! What the worker reads from the rest of Paddock, behind two narrow traits: repositories and
//! the kill switch ([`RepoSource`]), and sealed secrets ([`SecretSource`]).

use paddock_policy::SecretValue;

use super::{BoxFuture, WorkerError};
use crate::git::{Credential, KnownHosts, RemoteUrl, RepoSpec, Scheme};
use crate::store::issues::Issue;

/// A registered repository as the worker needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoRecord {
    /// Row id (names the mirror).
    pub id: i64,
    /// URL.
    pub url: String,
    /// Default branch.
    pub default_branch: String,
    /// Name of the vault secret holding the deploy key or token.
    pub credential: Option<String>,
    /// Pinned SSH host keys (known_hosts lines).
    pub known_hosts: Option<String>,
    /// Branch namespace (`paddock`).
    pub branch_prefix: String,
}

/// A repository ready for git.
#[derive(Debug, Clone)]
pub struct ResolvedRepo {
    /// The spec git uses.
    pub spec: RepoSpec,
    /// Branch prefix.
    pub prefix: String,
}

/// Repositories and the kill switch.
pub trait RepoSource: Send + Sync {
    /// The repository an issue works on (its own, or the workspace's only one).
    fn repo_for_issue<'a>(
        &'a self,
        issue: &'a Issue,
    ) -> BoxFuture<'a, Result<RepoRecord, WorkerError>>;
    /// The workspace's kill switch.
    fn runs_paused(&self, workspace_id: i64) -> BoxFuture<'_, Result<bool, WorkerError>>;
}

/// Sealed secrets, opened only in the runner's memory.
pub trait SecretSource: Send + Sync {
    /// The secret `name` of `workspace_id`, if it exists.
    fn open<'a>(
        &'a self,
        workspace_id: i64,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<SecretValue>, WorkerError>>;
}

/// Default user name sent with an HTTPS token that does not name one (`user:token`).
pub const DEFAULT_TOKEN_USER: &str = "x-access-token";

/// Builds the git spec of a repository, opening its credential.
pub async fn repo_spec(
    record: &RepoRecord,
    secrets: &dyn SecretSource,
    workspace_id: i64,
) -> Result<RepoSpec, WorkerError> {
    let url = RemoteUrl::parse(&record.url)?;
    let name = record.credential.as_deref().ok_or_else(|| {
        WorkerError::Config(format!(
            "repository {} has no credential; register a deploy key or token",
            record.url
        ))
    })?;
    let secret = secrets.open(workspace_id, name).await?.ok_or_else(|| {
        WorkerError::Config(format!(
            "the repository's credential secret `{name}` does not exist"
        ))
    })?;
    let credential = match url.scheme() {
        Scheme::Ssh => {
            let text = record.known_hosts.as_deref().unwrap_or_default();
            Credential::SshKey {
                private_key: secret,
                passphrase: None,
                known_hosts: KnownHosts::parse(text)?,
            }
        }
        Scheme::Https => {
            let (username, token) = match secret.expose().split_once(':') {
                Some((u, t)) if !u.is_empty() && !u.contains(char::is_whitespace) => {
                    (u.to_owned(), SecretValue::new(t))
                }
                _ => (DEFAULT_TOKEN_USER.to_owned(), secret.clone()),
            };
            Credential::HttpsToken { username, token }
        }
    };
    Ok(RepoSpec::new(
        &format!("repo-{}", record.id),
        url,
        &record.default_branch,
        credential,
    )?)
}
