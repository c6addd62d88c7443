//! Pinned SSH host keys in `known_hosts` syntax, matched exactly by host, port and key.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};

use super::error::GitError;
use super::remote::{check_host, split_host_port};

/// One pinned host key.
#[derive(Clone, PartialEq, Eq)]
struct Pin {
    host: String,
    port: u16,
    key_type: String,
    blob: Vec<u8>,
}

/// Pinned SSH host keys, in `known_hosts` syntax: `host[,host] type base64 [comment]` or
/// `[host]:port type base64`. Hashed names, wildcards and `@cert-authority`/`@revoked`
/// markers are refused: a pin names its host exactly.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KnownHosts {
    pins: Vec<Pin>,
}

impl fmt::Debug for KnownHosts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KnownHosts")
            .field("pins", &self.pins.len())
            .finish()
    }
}

fn kh_err(line: usize, reason: impl Into<String>) -> GitError {
    GitError::InvalidKnownHosts {
        line,
        reason: reason.into(),
    }
}

/// The key type string embedded at the start of an SSH public key blob.
fn blob_key_type(blob: &[u8]) -> Option<&str> {
    let len = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?);
    let len = usize::try_from(len).ok()?;
    std::str::from_utf8(blob.get(4..4usize.checked_add(len)?)?).ok()
}

impl KnownHosts {
    /// Parses a pinned host-key list.
    pub fn parse(text: &str) -> Result<KnownHosts, GitError> {
        let mut pins = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line_no = i + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.starts_with('@') {
                return Err(kh_err(
                    line_no,
                    "markers (@cert-authority, @revoked) are not supported",
                ));
            }
            let mut fields = line.split_whitespace();
            let (Some(hosts), Some(key_type), Some(b64)) =
                (fields.next(), fields.next(), fields.next())
            else {
                return Err(kh_err(line_no, "expected `host key-type base64-key`"));
            };
            if hosts.starts_with('|') {
                return Err(kh_err(
                    line_no,
                    "hashed host names are not supported; pin the name",
                ));
            }
            let blob = STANDARD
                .decode(b64)
                .or_else(|_| STANDARD_NO_PAD.decode(b64))
                .map_err(|_| kh_err(line_no, "key is not base64"))?;
            if blob_key_type(&blob) != Some(key_type) {
                return Err(kh_err(line_no, "key blob does not match its key type"));
            }
            for pattern in hosts.split(',') {
                if pattern.contains(['*', '?', '!']) {
                    return Err(kh_err(
                        line_no,
                        "wildcard or negated host patterns are not supported",
                    ));
                }
                let (host, port) = if pattern.starts_with('[') {
                    split_host_port(pattern, 22)
                } else {
                    check_host(pattern).map(|h| (h, 22))
                }
                .map_err(|e| kh_err(line_no, e.to_string()))?;
                pins.push(Pin {
                    host,
                    port,
                    key_type: key_type.to_owned(),
                    blob: blob.clone(),
                });
            }
        }
        Ok(KnownHosts { pins })
    }

    /// True when some key is pinned for `host` and `port`.
    pub fn has_host(&self, host: &str, port: u16) -> bool {
        self.pins.iter().any(|p| p.host == host && p.port == port)
    }

    /// True when `blob` (SSH wire format) is pinned for `host` and `port`.
    pub fn is_pinned(&self, host: &str, port: u16, blob: &[u8]) -> bool {
        self.pins
            .iter()
            .any(|p| p.host == host && p.port == port && p.blob == blob)
    }

    /// Key types pinned for a host (for the log line of a refusal).
    pub(crate) fn types_for(&self, host: &str, port: u16) -> Vec<&str> {
        self.pins
            .iter()
            .filter(|p| p.host == host && p.port == port)
            .map(|p| p.key_type.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIDxgr5x1ahIHoLXMK6VTJMYGUl+Y//hfaAEdlnhkeiJZ";

    #[test]
    fn known_hosts_parse_and_match() {
        let kh = KnownHosts::parse(&format!(
            "# pins\n[127.0.0.1]:22022 ssh-ed25519 {ED} test\ngithub.com,gh.test ssh-ed25519 {ED}\n"
        ))
        .unwrap();
        let blob = STANDARD.decode(ED).unwrap();
        assert!(kh.is_pinned("127.0.0.1", 22022, &blob));
        assert!(!kh.is_pinned("127.0.0.1", 22, &blob));
        assert!(kh.is_pinned("gh.test", 22, &blob));
        let mut other = blob.clone();
        *other.last_mut().unwrap() ^= 1;
        assert!(!kh.is_pinned("github.com", 22, &other));
    }

    #[test]
    fn known_hosts_refusals() {
        for text in [
            format!("|1|abc|def ssh-ed25519 {ED}"),
            format!("*.example.com ssh-ed25519 {ED}"),
            format!("@cert-authority host ssh-ed25519 {ED}"),
            format!("host ssh-rsa {ED}"),
            "host ssh-ed25519 !!!".to_owned(),
            "host".to_owned(),
        ] {
            assert!(KnownHosts::parse(&text).is_err(), "{text}");
        }
    }
}
