//! Where the key ring comes from: the config, or (outside production only) a key file that is
//! created with a fresh random key on first use.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::{KeyRing, VaultError};
use crate::config::Config;

/// File name of the development key file placed beside a SQLite database.
pub const DEV_KEY_FILE: &str = "vault.key";

fn kf_err(path: &Path, reason: impl Into<String>) -> VaultError {
    VaultError::KeyFile {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// The development key file for a SQLite `database_url`: `vault.key` in the database's folder.
/// `None` for PostgreSQL (several hosts share it; they need one configured ring).
pub fn default_key_file(database_url: &str) -> Option<PathBuf> {
    let rest = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or("");
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    let parent = Path::new(path).parent()?;
    let dir = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    Some(dir.join(DEV_KEY_FILE))
}

/// Reads a key file (one `"<version>:<base64>"` entry per line, `#` comments), creating it with
/// one fresh key when it does not exist. The file must be a regular file, not a symlink, and not
/// readable by group or others.
pub fn load_or_create(path: &Path) -> Result<KeyRing, VaultError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) => {
            if !meta.file_type().is_file() {
                return Err(kf_err(path, "is not a regular file (symlinks are refused)"));
            }
            if meta.mode() & 0o077 != 0 {
                return Err(kf_err(
                    path,
                    "is readable or writable by group or others; chmod 600 it",
                ));
            }
            let text = Zeroizing::new(
                std::fs::read_to_string(path).map_err(|e| kf_err(path, e.to_string()))?,
            );
            let entries: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .collect();
            KeyRing::parse(&entries).map_err(|e| kf_err(path, e.to_string()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir).map_err(|e| kf_err(path, e.to_string()))?;
            }
            let entry = KeyRing::generate_entry(1);
            // create_new: never overwrite a key another process just wrote.
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| kf_err(path, e.to_string()))?;
            f.write_all(
                format!(
                    "# Paddock development vault key. Losing it loses every stored secret.\n{}\n",
                    entry.as_str()
                )
                .as_bytes(),
            )
            .and_then(|()| f.sync_all())
            .map_err(|e| kf_err(path, e.to_string()))?;
            tracing::warn!(path = %path.display(), "generated a development vault key file; configure [vault] keys for production");
            KeyRing::parse(&[entry.as_str()])
        }
        Err(e) => Err(kf_err(path, e.to_string())),
    }
}

/// Where a key ring came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `vault.keys` / `PADDOCK_VAULT_KEYS`.
    Configured,
    /// A development key file (given or beside the SQLite database).
    File(PathBuf),
    /// Generated for this process only (development with PostgreSQL and no key): whatever it
    /// seals is unreadable after a restart. The CLI refuses to write secrets with it.
    Ephemeral,
}

impl KeyRing {
    /// The key ring of a validated config: `vault.keys` when set; otherwise, outside production,
    /// `vault.key_file` or `vault.key` beside a SQLite database (created when missing), or else
    /// an ephemeral key. Production without keys is refused by config validation and again here.
    pub fn from_config(config: &Config) -> Result<(KeyRing, KeySource), VaultError> {
        if let Some(ring) = &config.vault.keys {
            return Ok((ring.clone(), KeySource::Configured));
        }
        if config.production {
            return Err(VaultError::NotConfigured);
        }
        let path = match &config.vault.key_file {
            Some(p) => p.clone(),
            None => match default_key_file(&config.database_url) {
                Some(p) => p,
                None => {
                    // One per process, so the API and the worker of one process agree.
                    static EPHEMERAL: std::sync::OnceLock<KeyRing> = std::sync::OnceLock::new();
                    tracing::warn!(
                        "no vault key configured: using an ephemeral key; stored secrets will not survive a restart"
                    );
                    let ring = EPHEMERAL.get_or_init(|| KeyRing::generate(1)).clone();
                    return Ok((ring, KeySource::Ephemeral));
                }
            },
        };
        Ok((load_or_create(&path)?, KeySource::File(path)))
    }
}

impl KeyRing {
    /// The key ring for command-line tools without a full config file: `PADDOCK_VAULT_KEYS`;
    /// else, outside production, `PADDOCK_VAULT_KEY_FILE` or `vault.key` beside a SQLite
    /// `database_url`. Never ephemeral: a tool's key must outlive it.
    pub fn from_env(
        env: &dyn crate::config::Strings,
        database_url: &str,
    ) -> Result<(KeyRing, KeySource), VaultError> {
        if let Some(v) = env.get("PADDOCK_VAULT_KEYS") {
            let entries: Vec<&str> = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            return Ok((KeyRing::parse(&entries)?, KeySource::Configured));
        }
        let production = env
            .get("PADDOCK_ENV")
            .is_some_and(|e| matches!(e.trim(), "production" | "prod"));
        if production {
            return Err(VaultError::NotConfigured);
        }
        let path = match env.get("PADDOCK_VAULT_KEY_FILE") {
            Some(p) if p.starts_with('/') => PathBuf::from(p),
            Some(_) => {
                return Err(VaultError::KeyFile {
                    path: "PADDOCK_VAULT_KEY_FILE".into(),
                    reason: "must be an absolute path".into(),
                });
            }
            None => default_key_file(database_url).ok_or(VaultError::NotConfigured)?,
        };
        Ok((load_or_create(&path)?, KeySource::File(path)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn default_file_beside_sqlite_only() {
        assert_eq!(
            default_key_file("sqlite:///var/lib/p/paddock.db?mode=rwc"),
            Some(PathBuf::from("/var/lib/p/vault.key"))
        );
        assert_eq!(default_key_file("postgres://u@h/db"), None);
        assert_eq!(default_key_file("sqlite::memory:"), None);
    }

    #[test]
    fn created_once_then_reused_and_permissions_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k/vault.key");
        let a = load_or_create(&p).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = load_or_create(&p).unwrap();
        let sealed = a.seal(1, "n", b"v").unwrap();
        assert_eq!(b.open(1, "n", &sealed).unwrap().as_slice(), b"v");
        // loosened permissions: refused, not silently used
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(
            load_or_create(&p)
                .unwrap_err()
                .to_string()
                .contains("chmod 600")
        );
        // a symlink in its place is refused
        let link = dir.path().join("link.key");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        assert!(
            load_or_create(&link)
                .unwrap_err()
                .to_string()
                .contains("symlink")
        );
    }
}
