//! The sandbox's TLS trust bundle, `<run dir>/ca-bundle.pem`: the run's CA first, then the roots
//! a sandbox needs for the hosts the proxy tunnels without interception (the host's CA bundle and
//! the configured extra CA). Certificates only: any other PEM block (a private key in a combined
//! file, say) never reaches the sandbox.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

/// The trust bundle's file name in a run's directory (mounted at `/paddock`).
pub const RUN_CA_BUNDLE_NAME: &str = "ca-bundle.pem";

/// The host's CA bundle (Debian's `ca-certificates`): the public roots for tunnelled hosts.
pub const HOST_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const END: &str = "-----END CERTIFICATE-----";

/// The `CERTIFICATE` blocks of a PEM text, each ending in a newline; everything else (keys,
/// CRLs, comments, a block left open) is dropped.
#[must_use]
pub fn certificates_only(pem: &str) -> String {
    let mut out = String::new();
    let mut rest = pem;
    while let Some(start) = rest.find(BEGIN) {
        let block = &rest[start..];
        let Some(end) = block.find(END) else { break };
        let body = &block[BEGIN.len()..end];
        // A BEGIN inside the body means the first block was never closed: skip to the inner one.
        if let Some(inner) = body.find(BEGIN) {
            rest = &block[BEGIN.len() + inner..];
            continue;
        }
        if !body.contains("-----") {
            out.push_str(&block[..end + END.len()]);
            out.push('\n');
        }
        rest = &block[end + END.len()..];
    }
    out
}

/// The roots sandboxes trust besides their run's CA: the host's CA bundle (when the host has
/// one) and the extra CA bundle (when configured; it must be readable), certificates only.
pub fn sandbox_roots(host_bundle: &Path, extra: Option<&Path>) -> std::io::Result<String> {
    let mut roots = match std::fs::read_to_string(host_bundle) {
        Ok(text) => certificates_only(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    if let Some(extra) = extra {
        roots.push_str(&certificates_only(&std::fs::read_to_string(extra)?));
    }
    Ok(roots)
}

/// Writes `<run_dir>/ca-bundle.pem` (0644): the run's CA, then `roots`. The run directory
/// belongs to the proxy's user, so nothing in it is trusted: the directory is opened with
/// `O_NOFOLLOW` (a symlink is refused), the file is created relative to that descriptor with
/// `O_CREAT | O_EXCL | O_NOFOLLOW` (nothing is followed or overwritten), and its mode is set on
/// the open descriptor, never by path.
pub fn write_bundle(run_dir: &Path, run_ca: &str, roots: &str) -> std::io::Result<()> {
    let run_ca = certificates_only(run_ca);
    if run_ca.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the run's CA holds no certificate",
        ));
    }
    let dir = nix::fcntl::open(
        run_dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(std::io::Error::from)?;
    let fd = nix::fcntl::openat(
        &dir,
        RUN_CA_BUNDLE_NAME,
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o644),
    )
    .map_err(std::io::Error::from)?;
    let mut file = std::fs::File::from(fd);
    file.write_all(run_ca.as_bytes())?;
    file.write_all(roots.as_bytes())?;
    file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(tag: &str) -> String {
        format!("{BEGIN}\n{tag}\n{END}\n")
    }

    #[test]
    fn only_certificate_blocks_survive() {
        let key = "-----BEGIN PRIVATE KEY-----\nSECRETKEY\n-----END PRIVATE KEY-----\n";
        let text = format!("# comment\n{}{key}junk\n{}", cert("AAA"), cert("BBB"));
        let out = certificates_only(&text);
        assert_eq!(out, format!("{}{}", cert("AAA"), cert("BBB")));
        assert!(!out.contains("SECRETKEY"));
        // A key wrapped between a BEGIN CERTIFICATE and a later END is not taken for a cert.
        let sneaky = format!("{BEGIN}\n{key}{END}\n");
        assert_eq!(certificates_only(&sneaky), "");
        // An unclosed block, then a good one: only the good one.
        let open = format!("{BEGIN}\nCCC\n{}", cert("DDD"));
        assert_eq!(certificates_only(&open), cert("DDD"));
        assert_eq!(certificates_only("no pem at all"), "");
    }

    #[test]
    fn the_bundle_is_the_run_ca_then_the_roots() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("host.crt");
        let extra = dir.path().join("extra.pem");
        std::fs::write(&host, cert("HOST")).unwrap();
        let key = "-----BEGIN EC PRIVATE KEY-----\nK\n-----END EC PRIVATE KEY-----\n";
        std::fs::write(&extra, format!("{}{key}", cert("EXTRA"))).unwrap();
        let roots = sandbox_roots(&host, Some(&extra)).unwrap();
        assert_eq!(roots, format!("{}{}", cert("HOST"), cert("EXTRA")));
        // No host bundle is not an error; an unreadable extra bundle is.
        let missing = dir.path().join("missing.crt");
        assert_eq!(sandbox_roots(&missing, None).unwrap(), "");
        assert!(sandbox_roots(&host, Some(&missing)).is_err());

        let run = dir.path().join("run");
        std::fs::create_dir(&run).unwrap();
        write_bundle(&run, &cert("RUN"), &roots).unwrap();
        let path = run.join(RUN_CA_BUNDLE_NAME);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, format!("{}{roots}", cert("RUN")));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
        // Never overwritten.
        assert!(write_bundle(&run, &cert("RUN2"), "").is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }

    #[test]
    fn links_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        std::fs::create_dir(&target).unwrap();
        // The run directory is a symlink: refused, nothing written where it points.
        let link = dir.path().join("run-link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(write_bundle(&link, &cert("RUN"), "").is_err());
        assert!(!target.join(RUN_CA_BUNDLE_NAME).exists());
        // The bundle's name is a symlink already: refused, its target untouched.
        let run = dir.path().join("run");
        std::fs::create_dir(&run).unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        std::os::unix::fs::symlink(&victim, run.join(RUN_CA_BUNDLE_NAME)).unwrap();
        assert!(write_bundle(&run, &cert("RUN"), "").is_err());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        // A run CA without a certificate is refused.
        let fresh = dir.path().join("fresh");
        std::fs::create_dir(&fresh).unwrap();
        assert!(write_bundle(&fresh, "not a pem", "").is_err());
        assert!(!fresh.join(RUN_CA_BUNDLE_NAME).exists());
    }
}
