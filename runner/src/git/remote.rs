//! Remote repositories: accepted URLs, pinned SSH host keys, credentials held in memory.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use git2::{CertificateCheckStatus, Cred, CredentialType, RemoteCallbacks};
use paddock_policy::{Scrubber, SecretValue};

use super::error::GitError;
use super::known_hosts::KnownHosts;

/// A repository URL Paddock accepts: SSH (`ssh://user@host[:port]/path` or `user@host:path`)
/// or HTTPS without credentials in it. `file://`, `git://`, plain `http://`, transport
/// helpers (`ext::`) and local paths are refused.
#[derive(Clone, PartialEq, Eq)]
pub struct RemoteUrl {
    url: String,
    scheme: Scheme,
    user: Option<String>,
    host: String,
    port: u16,
}

/// Transport of a [`RemoteUrl`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// SSH with a deploy key and pinned host keys.
    Ssh,
    /// HTTPS with a token; the server certificate is checked by the system trust store.
    Https,
}

impl fmt::Debug for RemoteUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

impl fmt::Display for RemoteUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

fn bad_url(reason: impl Into<String>) -> GitError {
    GitError::InvalidUrl {
        reason: reason.into(),
    }
}

pub(crate) fn check_host(host: &str) -> Result<String, GitError> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let ok = !bare.is_empty()
        && bare.len() <= 253
        && !bare.starts_with(['-', '.'])
        && bare
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'_'));
    if !ok {
        return Err(bad_url(
            "host is empty or has characters outside [A-Za-z0-9.:_-]",
        ));
    }
    if bare.contains(':') && bare.parse::<std::net::Ipv6Addr>().is_err() {
        return Err(bad_url("host with ':' that is not an IPv6 address"));
    }
    Ok(bare.to_ascii_lowercase())
}

fn check_user(user: &str) -> Result<String, GitError> {
    let ok = !user.is_empty()
        && user.len() <= 64
        && !user.starts_with('-')
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if ok {
        Ok(user.to_owned())
    } else {
        Err(bad_url("user name has characters outside [A-Za-z0-9._-]"))
    }
}

fn check_path(path: &str) -> Result<(), GitError> {
    if path.is_empty() || path == "/" {
        return Err(bad_url("empty repository path"));
    }
    if path.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad_url(
            "repository path contains whitespace or control characters",
        ));
    }
    if path.split('/').any(|seg| seg == "..") {
        return Err(bad_url("repository path contains `..`"));
    }
    Ok(())
}

/// Splits `host[:port]` (host may be `[v6]`).
pub(crate) fn split_host_port(
    authority: &str,
    default_port: u16,
) -> Result<(String, u16), GitError> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let Some((h, after)) = rest.split_once(']') else {
            return Err(bad_url("unclosed `[` in host"));
        };
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| bad_url("junk after `]`"))?,
            ),
        };
        (format!("[{h}]"), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (authority.to_owned(), None),
        }
    };
    let port = match port {
        None => default_port,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| bad_url("port is not a number in 1..=65535"))?,
    };
    Ok((check_host(&host)?, port))
}

impl RemoteUrl {
    /// Parses and validates a repository URL.
    pub fn parse(url: &str) -> Result<RemoteUrl, GitError> {
        if url.len() > 2048 {
            return Err(bad_url("longer than 2048 bytes"));
        }
        if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(bad_url("contains whitespace or control characters"));
        }
        if let Some(rest) = url.strip_prefix("ssh://") {
            let (authority, path) = rest
                .split_once('/')
                .ok_or_else(|| bad_url("ssh:// URL without a path"))?;
            let (user, hostport) = match authority.rsplit_once('@') {
                Some((u, h)) => (Some(check_user(u)?), h),
                None => (None, authority),
            };
            let (host, port) = split_host_port(hostport, 22)?;
            check_path(path)?;
            return Ok(RemoteUrl {
                url: url.to_owned(),
                scheme: Scheme::Ssh,
                user,
                host,
                port,
            });
        }
        if let Some(rest) = url.strip_prefix("https://") {
            let (authority, path) = rest
                .split_once('/')
                .ok_or_else(|| bad_url("https:// URL without a path"))?;
            if authority.contains('@') {
                return Err(bad_url(
                    "credentials in an https URL; give the token as the repository credential",
                ));
            }
            if path.contains(['?', '#', '%']) {
                return Err(bad_url(
                    "query, fragment or percent-escapes in an https URL",
                ));
            }
            let (host, port) = split_host_port(authority, 443)?;
            check_path(path)?;
            return Ok(RemoteUrl {
                url: url.to_owned(),
                scheme: Scheme::Https,
                user: None,
                host,
                port,
            });
        }
        if url.contains("://") || url.contains("::") {
            return Err(bad_url(
                "only ssh:// and https:// (or user@host:path) are accepted",
            ));
        }
        // scp-like `user@host:path`: a user is required so that a local path never matches.
        let Some((user, rest)) = url.split_once('@') else {
            return Err(bad_url("not an ssh://, https:// or user@host:path URL"));
        };
        let Some((host, path)) = rest.split_once(':') else {
            return Err(bad_url("user@host:path URL without `:`"));
        };
        if host.contains('[') || host.contains('/') {
            return Err(bad_url("use ssh://user@[v6]:port/path for IPv6 or ports"));
        }
        let user = check_user(user)?;
        let host = check_host(host)?;
        check_path(path)?;
        Ok(RemoteUrl {
            url: url.to_owned(),
            scheme: Scheme::Ssh,
            user: Some(user),
            host,
            port: 22,
        })
    }

    /// The URL as given.
    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// Its transport.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// Host, lower-cased, without IPv6 brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Port (22 or 443 when absent).
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// How Paddock authenticates to a repository. Held in memory only; never written to a file
/// the agent could read, never printed (`Debug` hides the secret).
#[derive(Clone, Debug)]
pub enum Credential {
    /// An SSH deploy key (OpenSSH or PEM private key text) and the pinned host keys.
    SshKey {
        /// Private key text.
        private_key: SecretValue,
        /// Optional passphrase of the key.
        passphrase: Option<SecretValue>,
        /// Pinned host keys; the server's key must be one of them.
        known_hosts: KnownHosts,
    },
    /// An HTTPS token (sent as the password; user name as the forge expects).
    HttpsToken {
        /// User name sent with the token (`x-access-token` for GitHub apps, `oauth2` for GitLab).
        username: String,
        /// The token.
        token: SecretValue,
    },
}

/// A registered repository: where it is, its default branch and how to reach it.
#[derive(Clone, Debug)]
pub struct RepoSpec {
    id: String,
    url: RemoteUrl,
    default_branch: String,
    credential: Credential,
}

impl RepoSpec {
    /// Validates a repository registration. `id` names the mirror directory
    /// (`[A-Za-z0-9_-]`, at most 64 bytes). An SSH repository must have a pinned key for
    /// its host and port, and credentials must match the scheme: checked here, at
    /// configuration time, so a bad registration fails before any run.
    pub fn new(
        id: &str,
        url: RemoteUrl,
        default_branch: &str,
        credential: Credential,
    ) -> Result<RepoSpec, GitError> {
        if id.is_empty()
            || id.len() > 64
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
        {
            return Err(GitError::InvalidConfig {
                what: "repository id",
                reason: "use 1-64 characters of [A-Za-z0-9_-]".into(),
            });
        }
        let full = format!("refs/heads/{default_branch}");
        if default_branch.is_empty()
            || default_branch.starts_with('-')
            || !git2::Reference::is_valid_name(&full)
        {
            return Err(GitError::InvalidConfig {
                what: "default branch",
                reason: format!("{default_branch:?} is not a valid branch name"),
            });
        }
        match (&credential, url.scheme()) {
            (Credential::SshKey { known_hosts, .. }, Scheme::Ssh) => {
                if !known_hosts.has_host(url.host(), url.port()) {
                    return Err(GitError::HostNotPinned {
                        host: url.host().to_owned(),
                        port: url.port(),
                    });
                }
            }
            (Credential::HttpsToken { username, .. }, Scheme::Https) => {
                check_user(username).map_err(|_| GitError::InvalidConfig {
                    what: "token user name",
                    reason: "use characters of [A-Za-z0-9._-]".into(),
                })?;
            }
            (Credential::SshKey { .. }, Scheme::Https) => {
                return Err(GitError::CredentialMismatch {
                    reason: "an SSH key for an https URL",
                });
            }
            (Credential::HttpsToken { .. }, Scheme::Ssh) => {
                return Err(GitError::CredentialMismatch {
                    reason: "a token for an SSH URL",
                });
            }
        }
        Ok(RepoSpec {
            id: id.to_owned(),
            url,
            default_branch: default_branch.to_owned(),
            credential,
        })
    }

    /// Mirror directory name.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The URL.
    pub fn url(&self) -> &RemoteUrl {
        &self.url
    }

    /// Default branch (short name).
    pub fn default_branch(&self) -> &str {
        &self.default_branch
    }

    /// A scrubber that masks this repository's secrets (for libgit2 messages).
    pub(crate) fn scrubber(&self) -> Scrubber {
        let secrets: Vec<&str> = match &self.credential {
            Credential::SshKey {
                private_key,
                passphrase,
                ..
            } => std::iter::once(private_key.expose())
                .chain(passphrase.as_ref().map(SecretValue::expose))
                .collect(),
            Credential::HttpsToken { token, .. } => vec![token.expose()],
        };
        // A secret too short for the literal matcher still gets the key-shape scanner.
        Scrubber::new(secrets).unwrap_or_default()
    }
}

/// What a remote operation's callbacks saw, for turning libgit2's error into a precise one.
#[derive(Debug, Default)]
pub(crate) struct Observed {
    pub(crate) host_key_refused: Option<(String, String)>,
    pub(crate) auth_attempts: u32,
    pub(crate) rejected: Vec<(String, String)>,
}

/// Callbacks for one connection: pinned host keys, the credential from memory (offered
/// once; libgit2 would otherwise ask again forever on refusal).
pub(crate) fn callbacks<'a>(
    spec: &'a RepoSpec,
    seen: Rc<RefCell<Observed>>,
) -> RemoteCallbacks<'a> {
    let mut cb = RemoteCallbacks::new();
    let cert_seen = Rc::clone(&seen);
    cb.certificate_check(move |cert, host| {
        let url = &spec.url;
        match (&spec.credential, url.scheme()) {
            (Credential::SshKey { known_hosts, .. }, Scheme::Ssh) => {
                let Some(hk) = cert.as_hostkey() else {
                    return Err(git2::Error::from_str("not an SSH host key"));
                };
                let (Some(blob), Some(kind)) = (hk.hostkey(), hk.hostkey_type()) else {
                    return Err(git2::Error::from_str("the server sent no raw host key"));
                };
                let same_host = host.trim_start_matches('[').trim_end_matches(']')
                    .eq_ignore_ascii_case(url.host());
                if same_host && known_hosts.is_pinned(url.host(), url.port(), blob) {
                    tracing::debug!(host = %url.host(), port = url.port(), key_type = kind.name(), "pinned host key matched");
                    return Ok(CertificateCheckStatus::CertificateOk);
                }
                let fingerprint = hk
                    .hash_sha256()
                    .map(|h| STANDARD_NO_PAD.encode(h))
                    .unwrap_or_default();
                tracing::warn!(
                    host = %url.host(),
                    port = url.port(),
                    offered = kind.name(),
                    fingerprint = %fingerprint,
                    pinned = ?known_hosts.types_for(url.host(), url.port()),
                    verdict = "deny",
                    "ssh host key not pinned"
                );
                cert_seen.borrow_mut().host_key_refused = Some((kind.name().to_owned(), fingerprint));
                Err(git2::Error::from_str("host key not pinned"))
            }
            // libgit2 verified the chain and name against the system trust store; pass its
            // verdict through (an invalid certificate stays refused).
            (Credential::HttpsToken { .. }, Scheme::Https) if cert.as_x509().is_some() => {
                Ok(CertificateCheckStatus::CertificatePassthrough)
            }
            _ => Err(git2::Error::from_str("unexpected certificate kind")),
        }
    });
    let cred_seen = Rc::clone(&seen);
    cb.credentials(move |_url, username_from_url, allowed| {
        let user = spec
            .url
            .user
            .as_deref()
            .or(username_from_url)
            .unwrap_or("git");
        if allowed.contains(CredentialType::USERNAME) {
            return Cred::username(user);
        }
        let mut seen = cred_seen.borrow_mut();
        seen.auth_attempts += 1;
        if seen.auth_attempts > 1 {
            return Err(git2::Error::from_str("credential refused"));
        }
        match &spec.credential {
            Credential::SshKey {
                private_key,
                passphrase,
                ..
            } if allowed.contains(CredentialType::SSH_KEY) => Cred::ssh_key_from_memory(
                user,
                None,
                private_key.expose(),
                passphrase.as_ref().map(SecretValue::expose),
            ),
            Credential::HttpsToken { username, token }
                if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) =>
            {
                Cred::userpass_plaintext(username, token.expose())
            }
            _ => Err(git2::Error::from_str(
                "the server asks for a credential kind Paddock does not hold",
            )),
        }
    });
    let push_seen = seen;
    cb.push_update_reference(move |refname, status| {
        if let Some(msg) = status {
            push_seen
                .borrow_mut()
                .rejected
                .push((refname.to_owned(), msg.to_owned()));
        }
        Ok(())
    });
    cb
}

/// Turns a failed network operation into the most precise error, scrubbed of secrets.
pub(crate) fn network_error(
    op: &'static str,
    spec: &RepoSpec,
    seen: &Observed,
    e: &git2::Error,
) -> GitError {
    if let Some((key_type, fingerprint)) = &seen.host_key_refused {
        return GitError::HostKeyRefused {
            host: spec.url.host().to_owned(),
            port: spec.url.port(),
            key_type: key_type.clone(),
            fingerprint: fingerprint.clone(),
        };
    }
    if e.class() == git2::ErrorClass::Ssh
        && seen.auth_attempts > 0
        && e.code() == git2::ErrorCode::Auth
        || seen.auth_attempts > 1
    {
        return GitError::AuthFailed {
            host: spec.url.host().to_owned(),
        };
    }
    GitError::Git {
        op,
        message: spec.scrubber().scrub(e.message()).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIDxgr5x1ahIHoLXMK6VTJMYGUl+Y//hfaAEdlnhkeiJZ";

    #[test]
    fn accepted_urls() {
        let u = RemoteUrl::parse("ssh://git@127.0.0.1:22022/srv/repo.git").unwrap();
        assert_eq!(
            (u.scheme(), u.host(), u.port()),
            (Scheme::Ssh, "127.0.0.1", 22022)
        );
        let u = RemoteUrl::parse("git@github.com:team/repo.git").unwrap();
        assert_eq!((u.host(), u.port()), ("github.com", 22));
        let u = RemoteUrl::parse("https://Git.Example.com/team/repo.git").unwrap();
        assert_eq!(
            (u.scheme(), u.host(), u.port()),
            (Scheme::Https, "git.example.com", 443)
        );
        let u = RemoteUrl::parse("ssh://git@[::1]:2222/r.git").unwrap();
        assert_eq!((u.host(), u.port()), ("::1", 2222));
    }

    #[test]
    fn refused_urls() {
        for u in [
            "file:///srv/repo.git",
            "/srv/repo.git",
            "../repo",
            "git://host/repo.git",
            "http://host/repo.git",
            "https://user:tok@host/repo.git",
            "https://host/repo.git?x=1",
            "ext::sh -c touch% /tmp/pwned",
            "ssh://-oProxyCommand=x/repo",
            "ssh://git@host:0/repo",
            "ssh://git@host:99999/repo",
            "ssh://git@host/",
            "git@host:../../etc",
            "repo",
            "git@host :repo",
        ] {
            assert!(RemoteUrl::parse(u).is_err(), "{u} must be refused");
        }
    }

    #[test]
    fn spec_requires_pin_and_matching_credential() {
        let kh = KnownHosts::parse(&format!("[127.0.0.1]:22022 ssh-ed25519 {ED}")).unwrap();
        let ssh = |kh: KnownHosts| Credential::SshKey {
            private_key: SecretValue::new("k".repeat(40)),
            passphrase: None,
            known_hosts: kh,
        };
        let url = RemoteUrl::parse("ssh://git@127.0.0.1:22022/r.git").unwrap();
        assert!(RepoSpec::new("r1", url.clone(), "main", ssh(kh.clone())).is_ok());
        let other_port = RemoteUrl::parse("ssh://git@127.0.0.1:2222/r.git").unwrap();
        assert!(matches!(
            RepoSpec::new("r1", other_port, "main", ssh(kh.clone())),
            Err(GitError::HostNotPinned { .. })
        ));
        let https = RemoteUrl::parse("https://h.test/r.git").unwrap();
        assert!(RepoSpec::new("r1", https, "main", ssh(kh.clone())).is_err());
        assert!(RepoSpec::new("../x", url.clone(), "main", ssh(kh.clone())).is_err());
        assert!(RepoSpec::new("r1", url.clone(), "ma..in", ssh(kh.clone())).is_err());
        let spec = RepoSpec::new("r1", url, "main", ssh(kh)).unwrap();
        assert!(!format!("{spec:?}").contains("kkkk"));
    }
}
