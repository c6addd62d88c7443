//! `[vault]`: the key ring that seals stored secrets.

use std::path::PathBuf;

use serde::Deserialize;

use super::{ConfigError, Strings, invalid, split_list};
use crate::vault::KeyRing;

/// `[vault]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVault {
    #[serde(default)]
    keys: Vec<String>,
    key_file: Option<String>,
}

/// Validated `[vault]`. `Debug` never shows a key.
#[derive(Clone, Debug, Default)]
pub struct VaultConfig {
    /// The key ring from `keys` / `PADDOCK_VAULT_KEYS`, when given.
    pub keys: Option<KeyRing>,
    /// Outside production only: a key file, created with a fresh key when missing. Without it a
    /// SQLite deployment uses `vault.key` beside its database file, and a PostgreSQL one an
    /// ephemeral key that dies with the process (the CLI refuses that one).
    pub key_file: Option<PathBuf>,
}

pub(super) fn apply_env(raw: &mut RawVault, env: &dyn Strings) {
    if let Some(v) = env.get("PADDOCK_VAULT_KEYS") {
        raw.keys = split_list(&v);
    }
    if let Some(v) = env.get("PADDOCK_VAULT_KEY_FILE") {
        raw.key_file = Some(v);
    }
}

pub(super) fn validate(raw: RawVault, production: bool) -> Result<VaultConfig, ConfigError> {
    let keys = if raw.keys.is_empty() {
        None
    } else {
        Some(KeyRing::parse(&raw.keys).map_err(|e| invalid("vault.keys", e.to_string()))?)
    };
    let key_file = match raw.key_file.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(p) if !p.starts_with('/') => {
            return Err(invalid("vault.key_file", "must be an absolute path"));
        }
        Some(p) => Some(PathBuf::from(p)),
    };
    if production {
        if keys.is_none() {
            return Err(invalid(
                "vault.keys",
                "is required in production (PADDOCK_VAULT_KEYS=\"1:<base64 of 32 random bytes>\")",
            ));
        }
        if key_file.is_some() {
            return Err(invalid(
                "vault.key_file",
                "is a development convenience; production uses vault.keys",
            ));
        }
    }
    Ok(VaultConfig { keys, key_file })
}
