//! The versioned key ring: `"<version>:<base64 of 32 bytes>"` entries; the highest version seals.

use std::collections::BTreeMap;
use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use rand::RngCore;
use zeroize::Zeroizing;

use super::VaultError;
use super::seal::{NONCE_LEN, Sealed};

/// Length of an AES-256 key in bytes.
pub const KEY_LEN: usize = 32;

/// The vault keys by version. `Debug` shows versions only.
#[derive(Clone, Default)]
pub struct KeyRing {
    keys: BTreeMap<u32, Zeroizing<[u8; KEY_LEN]>>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("versions", &self.versions())
            .finish()
    }
}

fn bad(index: usize, reason: &'static str) -> VaultError {
    VaultError::BadKey { index, reason }
}

/// Parses one `"<version>:<base64>"` entry (`index` is 1-based, for the error).
fn parse_entry(index: usize, spec: &str) -> Result<(u32, Zeroizing<[u8; KEY_LEN]>), VaultError> {
    let spec = spec.trim();
    let (v, b64) = spec
        .split_once(':')
        .ok_or_else(|| bad(index, "expected <version>:<base64 of 32 bytes>"))?;
    let version: u32 = v
        .trim()
        .parse()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| bad(index, "the version must be a whole number from 1"))?;
    let b64 = b64.trim();
    let raw = Zeroizing::new(
        STANDARD
            .decode(b64)
            .or_else(|_| STANDARD_NO_PAD.decode(b64))
            .map_err(|_| bad(index, "the key is not valid base64"))?,
    );
    if raw.len() != KEY_LEN {
        return Err(bad(index, "the key must decode to exactly 32 bytes"));
    }
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    key.copy_from_slice(&raw);
    // A random key has ~30 distinct byte values; fewer than 16 means a typed or placeholder key.
    let mut seen = [false; 256];
    for b in key.iter() {
        seen[usize::from(*b)] = true;
    }
    if seen.iter().filter(|s| **s).count() < 16 {
        return Err(bad(
            index,
            "the key is low-entropy (a placeholder?); generate 32 random bytes",
        ));
    }
    Ok((version, key))
}

impl KeyRing {
    /// Parses key entries `"<version>:<base64 of 32 bytes>"`. Versions must be unique.
    pub fn parse<S: AsRef<str>>(specs: &[S]) -> Result<KeyRing, VaultError> {
        let mut keys = BTreeMap::new();
        for (i, s) in specs.iter().enumerate() {
            let (v, k) = parse_entry(i + 1, s.as_ref())?;
            if keys.insert(v, k).is_some() {
                return Err(bad(i + 1, "this version is listed twice"));
            }
        }
        if keys.is_empty() {
            return Err(VaultError::NoKeys);
        }
        Ok(KeyRing { keys })
    }

    /// A one-key ring with a fresh random key of `version`.
    pub fn generate(version: u32) -> KeyRing {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        rand::rngs::OsRng.fill_bytes(key.as_mut());
        let mut keys = BTreeMap::new();
        keys.insert(version.max(1), key);
        KeyRing { keys }
    }

    /// A new random key entry `"<version>:<base64>"`, for operators adding a key.
    pub fn generate_entry(version: u32) -> Zeroizing<String> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        rand::rngs::OsRng.fill_bytes(key.as_mut());
        Zeroizing::new(format!(
            "{}:{}",
            version.max(1),
            STANDARD.encode(key.as_ref())
        ))
    }

    /// The versions held, ascending.
    pub fn versions(&self) -> Vec<u32> {
        self.keys.keys().copied().collect()
    }

    /// The version that seals (the highest).
    pub fn current_version(&self) -> Result<u32, VaultError> {
        self.keys
            .keys()
            .next_back()
            .copied()
            .ok_or(VaultError::NoKeys)
    }

    /// Whether `version` is in the ring.
    pub fn has_version(&self, version: u32) -> bool {
        self.keys.contains_key(&version)
    }

    fn cipher(&self, version: u32) -> Result<Aes256Gcm, VaultError> {
        let key = self
            .keys
            .get(&version)
            .ok_or(VaultError::UnknownKeyVersion(version))?;
        Aes256Gcm::new_from_slice(key.as_ref()).map_err(|_| VaultError::Seal)
    }

    /// Seals `value` for (`workspace_id`, `name`) under the newest key with a fresh random nonce.
    pub fn seal(&self, workspace_id: i64, name: &str, value: &[u8]) -> Result<Sealed, VaultError> {
        let version = self.current_version()?;
        let cipher = self.cipher(version)?;
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = super::seal::aad(workspace_id, name, version);
        let ciphertext = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: value,
                    aad: &aad,
                },
            )
            .map_err(|_| VaultError::Seal)?;
        Ok(Sealed {
            key_version: version,
            nonce,
            ciphertext,
        })
    }

    /// Opens a sealed value of (`workspace_id`, `name`). Fails unless the key version, workspace,
    /// name, nonce and ciphertext are exactly those it was sealed with.
    pub fn open(
        &self,
        workspace_id: i64,
        name: &str,
        sealed: &Sealed,
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let cipher = self.cipher(sealed.key_version)?;
        let aad = super::seal::aad(workspace_id, name, sealed.key_version);
        cipher
            .decrypt(
                Nonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| VaultError::Open)
    }

    /// Opens a sealed text secret.
    pub fn open_text(
        &self,
        workspace_id: i64,
        name: &str,
        sealed: &Sealed,
    ) -> Result<super::SecretValue, VaultError> {
        let bytes = self.open(workspace_id, name, sealed)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| VaultError::BadValue)?;
        Ok(super::SecretValue::new(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(v: u32, byte_seed: u8) -> String {
        let key: Vec<u8> = (0..32u8)
            .map(|i| i.wrapping_mul(7).wrapping_add(byte_seed))
            .collect();
        format!("{v}:{}", STANDARD.encode(key))
    }

    #[test]
    fn parse_accepts_good_and_names_bad_entries() {
        let r = KeyRing::parse(&[entry(1, 3), entry(2, 9)]).unwrap();
        assert_eq!(r.versions(), vec![1, 2]);
        assert_eq!(r.current_version().unwrap(), 2);
        let low = format!("1:{}", STANDARD.encode([0u8; 32]));
        for bad in [
            "nocolon".to_string(),
            "0:AAAA".into(),
            "x:AAAA".into(),
            "1:not base64!".into(),
            format!("1:{}", STANDARD.encode([1u8; 16])),
            low,
        ] {
            let e = KeyRing::parse(std::slice::from_ref(&bad))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("vault key #1"), "{bad}: {e}");
            // the error never echoes the key text
            if let Some((_, k)) = bad.split_once(':')
                && k.len() > 8
            {
                assert!(!e.contains(k), "{e}");
            }
        }
        assert!(KeyRing::parse(&[entry(1, 3), entry(1, 5)]).is_err());
        assert!(matches!(
            KeyRing::parse::<String>(&[]),
            Err(VaultError::NoKeys)
        ));
    }

    #[test]
    fn debug_shows_versions_not_keys() {
        let e = entry(4, 1);
        let r = KeyRing::parse(std::slice::from_ref(&e)).unwrap();
        let d = format!("{r:?}");
        assert!(d.contains('4'));
        assert!(!d.contains(e.split_once(':').unwrap().1));
    }

    #[test]
    fn generated_entries_parse() {
        let e = KeyRing::generate_entry(7);
        assert_eq!(KeyRing::parse(&[e.as_str()]).unwrap().versions(), vec![7]);
    }
}
