//! Registered repositories per workspace: URL, default branch, credential reference, pinned host
//! keys and branch prefix, validated before they are stored.

use serde::Serialize;
use sqlx::FromRow;

use super::issues::Issue;
use super::{Store, StoreError, StoreResult, now_ms};
use crate::git::{BranchPrefix, KnownHosts, RemoteUrl, Scheme};

/// Largest `ssh_known_hosts` text, bytes.
pub const MAX_KNOWN_HOSTS: usize = 64 * 1024;
/// Default branch prefix (stored with its trailing `/`).
pub const DEFAULT_BRANCH_PREFIX: &str = "paddock/";

const REPO_COLS: &str =
    "id, name, url, default_branch, credential, ssh_known_hosts, branch_prefix, created_at";

/// A repository as stored.
#[derive(Debug, Clone, FromRow, Serialize, PartialEq, Eq)]
pub struct Repo {
    pub id: i64,
    pub name: String,
    pub url: String,
    pub default_branch: String,
    /// Name of a secret of the same workspace (deploy key or `user:token`), never its value.
    pub credential: Option<String>,
    /// Pinned SSH host keys (OpenSSH known_hosts lines).
    pub ssh_known_hosts: Option<String>,
    /// Branch namespace, with its trailing `/` (`paddock/`).
    pub branch_prefix: String,
    pub created_at: i64,
}

impl Repo {
    /// The prefix without its trailing `/`, as `git::BranchPrefix::new` takes it.
    pub fn git_prefix(&self) -> &str {
        self.branch_prefix.trim_end_matches('/')
    }

    /// Whether the URL is a local path (tests and the demo only).
    pub fn is_local(&self) -> bool {
        self.url.starts_with('/')
    }
}

/// A repository to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRepo {
    pub name: String,
    pub url: String,
    pub default_branch: String,
    pub credential: Option<String>,
    pub ssh_known_hosts: Option<String>,
    pub branch_prefix: String,
}

impl NewRepo {
    /// A repository with the default branch `main` and prefix `paddock/`.
    pub fn new(name: &str, url: &str) -> NewRepo {
        NewRepo {
            name: name.to_string(),
            url: url.to_string(),
            default_branch: "main".into(),
            credential: None,
            ssh_known_hosts: None,
            branch_prefix: DEFAULT_BRANCH_PREFIX.into(),
        }
    }
}

/// Changes to a repository; `None` keeps a field, `Some(None)` clears an optional one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepoPatch {
    pub url: Option<String>,
    pub default_branch: Option<String>,
    pub credential: Option<Option<String>>,
    pub ssh_known_hosts: Option<Option<String>>,
    pub branch_prefix: Option<String>,
}

fn valid_repo_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with(['.', '-'])
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A local repository path: absolute, no `..`, no control characters or whitespace.
fn valid_local_path(url: &str) -> bool {
    url.starts_with('/')
        && url.len() <= 4096
        && !url.chars().any(|c| c.is_control() || c.is_whitespace())
        && !url.split('/').any(|s| s == "..")
}

/// A branch name git accepts as `refs/heads/<name>`.
fn valid_branch(b: &str) -> bool {
    !b.is_empty()
        && b.len() <= 255
        && !b.starts_with('-')
        && git2::Reference::is_valid_name(&format!("refs/heads/{b}"))
}

/// A branch prefix with its trailing `/` (`paddock` and `paddock/` are the same prefix).
pub fn normalize_prefix(p: &str) -> String {
    if p.ends_with('/') {
        p.to_string()
    } else {
        format!("{p}/")
    }
}

/// Checks a registration (after [`normalize_prefix`]); the error is a sentence naming the field.
/// The credential's existence is checked by the store against the workspace's secrets.
pub fn validate_repo(r: &NewRepo, allow_local: bool) -> Result<(), String> {
    if !valid_repo_name(&r.name) {
        return Err(
            "name must be 1-64 characters of [A-Za-z0-9._-], not starting with '.' or '-'".into(),
        );
    }
    let local = r.url.starts_with('/');
    let scheme = if local {
        if !allow_local {
            return Err(
                "url: local paths are accepted only with runner.allow_local_repos (tests, demo)"
                    .into(),
            );
        }
        if !valid_local_path(&r.url) {
            return Err("url: a local path must be absolute, without '..' or whitespace".into());
        }
        None
    } else {
        let u = RemoteUrl::parse(&r.url).map_err(|e| format!("url: {e}"))?;
        Some(u)
    };
    if !valid_branch(&r.default_branch) {
        return Err("default_branch is not a valid branch name".into());
    }
    let Some(stem) = r.branch_prefix.strip_suffix('/') else {
        return Err("branch_prefix must end with '/' (for example paddock/)".into());
    };
    BranchPrefix::new(stem).map_err(|e| format!("branch_prefix: {e}"))?;
    // A run branch is <prefix><issue>-<attempt>: the default branch must lie outside that
    // namespace, and must not be the namespace's own name (a ref cannot be both file and folder).
    if r.default_branch.starts_with(&r.branch_prefix) || r.default_branch == stem {
        return Err("branch_prefix would let a run branch collide with the default branch".into());
    }
    if let Some(c) = &r.credential
        && !super::secrets::valid_secret_name(c)
    {
        return Err("credential must be the name of a secret".into());
    }
    match (&scheme, &r.ssh_known_hosts) {
        (Some(u), kh) if u.scheme() == Scheme::Ssh => {
            let kh = kh.as_deref().unwrap_or("");
            if kh.len() > MAX_KNOWN_HOSTS {
                return Err("ssh_known_hosts is larger than 64 KiB".into());
            }
            let pins = KnownHosts::parse(kh).map_err(|e| format!("ssh_known_hosts: {e}"))?;
            if !pins.has_host(u.host(), u.port()) {
                return Err(format!(
                    "ssh_known_hosts must pin the host key of {}:{} (SSH host keys are never trusted on first use)",
                    u.host(),
                    u.port()
                ));
            }
        }
        (_, Some(_)) => {
            return Err("ssh_known_hosts applies only to SSH URLs".into());
        }
        _ => {}
    }
    if local && r.credential.is_some() {
        return Err("a local repository takes no credential".into());
    }
    Ok(())
}

impl Store {
    async fn check_credential(&self, workspace_id: i64, r: &NewRepo) -> StoreResult<()> {
        if let Some(c) = &r.credential
            && !self.secret_exists(workspace_id, c).await?
        {
            return Err(StoreError::Invalid(format!(
                "credential: this workspace has no secret named {c}"
            )));
        }
        Ok(())
    }

    /// Registers a repository in `workspace_id` (remote URLs only). `Invalid` for a bad field,
    /// `Conflict` when the name is taken.
    pub async fn create_repo(&self, workspace_id: i64, r: &NewRepo) -> StoreResult<Repo> {
        self.create_repo_allowing_local(workspace_id, r, false)
            .await
    }

    /// Like [`Store::create_repo`]; local paths are accepted when `allow_local`
    /// (`runner.allow_local_repos`).
    pub async fn create_repo_allowing_local(
        &self,
        workspace_id: i64,
        r: &NewRepo,
        allow_local: bool,
    ) -> StoreResult<Repo> {
        let mut r = r.clone();
        r.branch_prefix = normalize_prefix(&r.branch_prefix);
        let r = &r;
        validate_repo(r, allow_local).map_err(StoreError::Invalid)?;
        self.check_credential(workspace_id, r).await?;
        let sql = format!(
            "INSERT INTO repos (workspace_id, name, url, default_branch, credential, ssh_known_hosts, branch_prefix, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {REPO_COLS}"
        );
        let res = sqlx::query_as::<_, Repo>(&sql)
            .bind(workspace_id)
            .bind(r.name.clone())
            .bind(r.url.clone())
            .bind(r.default_branch.clone())
            .bind(r.credential.clone())
            .bind(r.ssh_known_hosts.clone())
            .bind(r.branch_prefix.clone())
            .bind(now_ms())
            .fetch_one(self.pool())
            .await;
        match res {
            Ok(repo) => Ok(repo),
            Err(e) => {
                let e = StoreError::from(e);
                if e.is_unique_violation() {
                    Err(StoreError::Conflict(format!(
                        "a repository named {} exists",
                        r.name
                    )))
                } else {
                    Err(e)
                }
            }
        }
    }

    /// One repository of `workspace_id`.
    pub async fn get_repo(&self, workspace_id: i64, id: i64) -> StoreResult<Repo> {
        let sql = format!("SELECT {REPO_COLS} FROM repos WHERE id = $1 AND workspace_id = $2");
        sqlx::query_as::<_, Repo>(&sql)
            .bind(id)
            .bind(workspace_id)
            .fetch_optional(self.pool())
            .await?
            .ok_or(StoreError::NotFound("repository"))
    }

    /// The repository called `name` in `workspace_id`.
    pub async fn repo_by_name(&self, workspace_id: i64, name: &str) -> StoreResult<Repo> {
        let sql = format!("SELECT {REPO_COLS} FROM repos WHERE name = $1 AND workspace_id = $2");
        sqlx::query_as::<_, Repo>(&sql)
            .bind(name.to_string())
            .bind(workspace_id)
            .fetch_optional(self.pool())
            .await?
            .ok_or(StoreError::NotFound("repository"))
    }

    /// Repositories of `workspace_id`, by name.
    pub async fn list_repos(&self, workspace_id: i64) -> StoreResult<Vec<Repo>> {
        let sql = format!(
            "SELECT {REPO_COLS} FROM repos WHERE workspace_id = $1 ORDER BY name LIMIT 1000"
        );
        Ok(sqlx::query_as::<_, Repo>(&sql)
            .bind(workspace_id)
            .fetch_all(self.pool())
            .await?)
    }

    /// The repository an issue works on: its own, or the workspace's only one. `NotFound` when
    /// it has none and the workspace has zero or several.
    pub async fn repo_for_issue(&self, issue: &Issue) -> StoreResult<Repo> {
        if let Some(id) = issue.repo_id {
            return self.get_repo(issue.workspace_id, id).await;
        }
        let mut all = self.list_repos(issue.workspace_id).await?;
        if all.len() == 1
            && let Some(r) = all.pop()
        {
            return Ok(r);
        }
        Err(StoreError::NotFound("repository"))
    }

    /// Changes a repository; the result is validated as a whole, like a new registration.
    pub async fn update_repo(
        &self,
        workspace_id: i64,
        id: i64,
        p: &RepoPatch,
        allow_local: bool,
    ) -> StoreResult<Repo> {
        let cur = self.get_repo(workspace_id, id).await?;
        let next = NewRepo {
            name: cur.name.clone(),
            url: p.url.clone().unwrap_or(cur.url),
            default_branch: p.default_branch.clone().unwrap_or(cur.default_branch),
            credential: p.credential.clone().unwrap_or(cur.credential),
            ssh_known_hosts: p.ssh_known_hosts.clone().unwrap_or(cur.ssh_known_hosts),
            branch_prefix: normalize_prefix(&p.branch_prefix.clone().unwrap_or(cur.branch_prefix)),
        };
        validate_repo(&next, allow_local).map_err(StoreError::Invalid)?;
        self.check_credential(workspace_id, &next).await?;
        let sql = format!(
            "UPDATE repos SET url = $1, default_branch = $2, credential = $3, ssh_known_hosts = $4, branch_prefix = $5 \
             WHERE id = $6 AND workspace_id = $7 RETURNING {REPO_COLS}"
        );
        sqlx::query_as::<_, Repo>(&sql)
            .bind(next.url)
            .bind(next.default_branch)
            .bind(next.credential)
            .bind(next.ssh_known_hosts)
            .bind(next.branch_prefix)
            .bind(id)
            .bind(workspace_id)
            .fetch_optional(self.pool())
            .await?
            .ok_or(StoreError::NotFound("repository"))
    }

    /// Deletes a repository (its issues keep existing, without a repository).
    pub async fn delete_repo(&self, workspace_id: i64, id: i64) -> StoreResult<()> {
        let r = sqlx::query("DELETE FROM repos WHERE id = $1 AND workspace_id = $2")
            .bind(id)
            .bind(workspace_id)
            .execute(self.pool())
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound("repository"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIN: &str = "git.example.test ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";

    fn ssh() -> NewRepo {
        let mut r = NewRepo::new("app", "git@git.example.test:team/app.git");
        r.ssh_known_hosts = Some(PIN.into());
        r
    }

    #[test]
    fn urls() {
        assert!(validate_repo(&ssh(), false).is_ok());
        assert!(
            validate_repo(
                &NewRepo::new("a", "https://git.example.test/t/a.git"),
                false
            )
            .is_ok()
        );
        for bad in [
            "http://git.example.test/t/a.git",
            "file:///srv/a.git",
            "git://git.example.test/a",
            "ext::sh -c touch% /tmp/pwned",
            "https://user:pw@git.example.test/a.git",
            "../a",
            "a.git",
        ] {
            assert!(
                validate_repo(&NewRepo::new("a", bad), true).is_err(),
                "{bad}"
            );
        }
        let local = NewRepo::new("a", "/srv/git/a.git");
        assert!(
            validate_repo(&local, false)
                .unwrap_err()
                .contains("allow_local_repos")
        );
        assert!(validate_repo(&local, true).is_ok());
        assert!(validate_repo(&NewRepo::new("a", "/srv/../etc"), true).is_err());
    }

    #[test]
    fn ssh_needs_a_pin_for_its_host() {
        let mut r = ssh();
        r.ssh_known_hosts = None;
        assert!(
            validate_repo(&r, false)
                .unwrap_err()
                .contains("ssh_known_hosts")
        );
        r.ssh_known_hosts = Some(PIN.replace("git.example.test", "other.example.test"));
        assert!(validate_repo(&r, false).unwrap_err().contains("pin"));
        let mut h = NewRepo::new("a", "https://git.example.test/t/a.git");
        h.ssh_known_hosts = Some(PIN.into());
        assert!(validate_repo(&h, false).is_err());
    }

    #[test]
    fn branches_and_prefixes() {
        let with = |b: &str, p: &str| {
            let mut r = ssh();
            r.default_branch = b.into();
            r.branch_prefix = p.into();
            validate_repo(&r, false)
        };
        assert!(with("main", "paddock/").is_ok());
        assert!(with("develop", "bots/paddock/").is_ok());
        for (b, p) in [
            ("main", "/"),
            ("main", "pad..dock/"),
            ("main", "-x/"),
            ("main", "a b/"),
            ("paddock/1-1", "paddock/"),
            ("paddock", "paddock/"),
            ("ma in", "paddock/"),
            ("-main", "paddock/"),
            ("main.lock", "paddock/"),
            ("", "paddock/"),
        ] {
            assert!(with(b, p).is_err(), "{b} {p}");
        }
    }
}
