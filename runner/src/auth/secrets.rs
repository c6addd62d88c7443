//! Passwords (argon2id), API keys (random, stored as SHA-256) and session tokens (stored keyed-hashed).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Prefix of every API key, so scanners and people recognise one.
pub const API_KEY_PREFIX: &str = "pdk_";
/// Prefix of every session token.
pub const SESSION_PREFIX: &str = "pds_";
/// Longest password accepted (argon2 input stays bounded).
pub const MAX_PASSWORD_LEN: usize = 1024;
/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 12;

/// A password problem.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password must be {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} bytes")]
    Length,
    #[error("password hashing failed")]
    Hash,
}

fn argon() -> Argon2<'static> {
    // OWASP's argon2id baseline: 19 MiB, 2 passes, 1 lane.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password with argon2id and a random salt (PHC string).
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    if password.len() < MIN_PASSWORD_LEN || password.len() > MAX_PASSWORD_LEN {
        return Err(PasswordError::Length);
    }
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    argon()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| PasswordError::Hash)
}

/// A valid argon2id hash of a random password, verified against when the user does not exist so
/// that "no such user" and "wrong password" take the same time.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password(&random_token("", 24)).unwrap_or_default())
}

/// Whether `password` matches the PHC `hash`.
pub fn verify_password(password: &str, hash: &str) -> bool {
    if password.len() > MAX_PASSWORD_LEN {
        return false;
    }
    match PasswordHash::new(hash) {
        Ok(parsed) => argon()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// `prefix` + `bytes` random bytes, base64url without padding.
pub fn random_token(prefix: &str, bytes: usize) -> String {
    use base64::Engine;
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
    )
}

/// A new API key: (the key, shown once; its SHA-256 hex, stored; its short public prefix).
pub fn new_api_key() -> (String, String, String) {
    let key = random_token(API_KEY_PREFIX, 32);
    let hash = sha256_hex(key.as_bytes());
    let prefix: String = key.chars().take(API_KEY_PREFIX.len() + 6).collect();
    (key, hash, prefix)
}

/// SHA-256 hex of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The stored form of a session token: HMAC-SHA256 under the session secret, so a database leak
/// alone does not let anyone forge or look up a session.
pub fn session_hash(secret: &str, token: &str) -> String {
    match <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(token.as_bytes());
            hex::encode(mac.finalize().into_bytes())
        }
        Err(_) => sha256_hex(token.as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_round_trip_and_argon2id() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterY", &h));
        assert!(!verify_password("x", "not a hash"));
        assert!(hash_password("short").is_err());
    }

    #[test]
    fn api_key_is_stored_only_as_hash() {
        let (key, hash, prefix) = new_api_key();
        assert!(key.starts_with("pdk_"));
        assert_eq!(hash, sha256_hex(key.as_bytes()));
        assert!(!hash.contains(&key[4..]));
        assert!(key.starts_with(&prefix));
        assert!(prefix.len() < 12);
        assert_ne!(new_api_key().0, key);
    }

    #[test]
    fn session_hash_depends_on_secret() {
        assert_ne!(
            session_hash("a".repeat(32).as_str(), "t"),
            session_hash("b".repeat(32).as_str(), "t")
        );
    }
}
