//! The sealed secret store's cryptography: AES-256-GCM under a versioned key ring.
//!
//! The newest key seals; every key of the ring opens. The associated data binds the workspace,
//! the secret's name and the key version, so a sealed row copied to another workspace or name, or
//! relabelled with another key version, does not open. Values are never in `Debug`, `Display`,
//! logs or errors.

pub mod keyfile;
pub mod keyring;
pub mod seal;

pub use keyring::{KEY_LEN, KeyRing};
pub use paddock_policy::SecretValue;
pub use seal::{MAX_SECRET_BYTES, Sealed, aad};

/// A vault failure. No variant carries key material or a secret value.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("vault key #{index}: {reason}")]
    BadKey { index: usize, reason: &'static str },
    #[error("the vault key ring is empty")]
    NoKeys,
    #[error("the secret was sealed with key version {0}, which is not in the key ring")]
    UnknownKeyVersion(u32),
    #[error(
        "the sealed secret does not open: wrong key, or the row was altered or moved to another workspace or name"
    )]
    Open,
    #[error("sealing failed")]
    Seal,
    #[error("the sealed row is malformed: {0}")]
    Malformed(&'static str),
    #[error("a secret value must be 1 to {MAX_SECRET_BYTES} bytes of UTF-8 text")]
    BadValue,
    #[error("vault key file {path}: {reason}")]
    KeyFile { path: String, reason: String },
    #[error(
        "no vault key ring: set [vault] keys or PADDOCK_VAULT_KEYS (or, outside production, vault.key_file)"
    )]
    NotConfigured,
}
