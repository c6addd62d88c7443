//! A sealed value as stored, and the associated data that binds it to its row.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::VaultError;

/// AES-GCM nonce length (96 bits, random per seal).
pub const NONCE_LEN: usize = 12;
/// Largest secret value, bytes (an SSH private key or token fits with room).
pub const MAX_SECRET_BYTES: usize = 64 * 1024;

/// Domain separation: a Paddock secret, format 1.
const AAD_DOMAIN: &[u8] = b"paddock.vault.secret.v1\0";

/// A sealed value: which key, the nonce, and ciphertext with its 16-byte tag.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_version: u32,
    pub nonce: [u8; NONCE_LEN],
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealed")
            .field("key_version", &self.key_version)
            .field("len", &self.ciphertext.len())
            .finish()
    }
}

/// The associated data of a sealed secret: domain, workspace id, name (length-prefixed) and key
/// version. Any change to one of them makes the tag check fail.
pub fn aad(workspace_id: i64, name: &str, key_version: u32) -> Vec<u8> {
    let mut a = Vec::with_capacity(AAD_DOMAIN.len() + 8 + 4 + name.len() + 4);
    a.extend_from_slice(AAD_DOMAIN);
    a.extend_from_slice(&workspace_id.to_be_bytes());
    a.extend_from_slice(&u32::try_from(name.len()).unwrap_or(u32::MAX).to_be_bytes());
    a.extend_from_slice(name.as_bytes());
    a.extend_from_slice(&key_version.to_be_bytes());
    a
}

impl Sealed {
    /// The stored columns: (key_version, nonce base64, ciphertext base64).
    pub fn to_columns(&self) -> (i64, String, String) {
        (
            i64::from(self.key_version),
            STANDARD.encode(self.nonce),
            STANDARD.encode(&self.ciphertext),
        )
    }

    /// Rebuilds a sealed value from its stored columns.
    pub fn from_columns(
        key_version: i64,
        nonce: &str,
        ciphertext: &str,
    ) -> Result<Sealed, VaultError> {
        let key_version =
            u32::try_from(key_version).map_err(|_| VaultError::Malformed("key version"))?;
        let n = STANDARD
            .decode(nonce)
            .map_err(|_| VaultError::Malformed("nonce"))?;
        let nonce: [u8; NONCE_LEN] = n
            .as_slice()
            .try_into()
            .map_err(|_| VaultError::Malformed("nonce length"))?;
        let ciphertext = STANDARD
            .decode(ciphertext)
            .map_err(|_| VaultError::Malformed("ciphertext"))?;
        if ciphertext.len() < 16 {
            return Err(VaultError::Malformed("ciphertext shorter than its tag"));
        }
        Ok(Sealed {
            key_version,
            nonce,
            ciphertext,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aad_fields_cannot_slide() {
        // "ab" + ws 1 and "a" + … must differ even if bytes could line up.
        assert_ne!(aad(1, "ab", 1), aad(1, "a", 1));
        assert_ne!(aad(1, "a", 1), aad(2, "a", 1));
        assert_ne!(aad(1, "a", 1), aad(1, "a", 2));
    }

    #[test]
    fn columns_round_trip_and_reject_garbage() {
        let s = Sealed {
            key_version: 3,
            nonce: [7; NONCE_LEN],
            ciphertext: vec![1; 20],
        };
        let (v, n, c) = s.to_columns();
        assert_eq!(Sealed::from_columns(v, &n, &c).unwrap(), s);
        assert!(Sealed::from_columns(-1, &n, &c).is_err());
        assert!(Sealed::from_columns(v, "AAAA", &c).is_err());
        assert!(Sealed::from_columns(v, &n, "AAAA").is_err());
        assert!(!format!("{s:?}").contains("[1, 1"));
    }
}
