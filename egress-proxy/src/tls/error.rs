//! Errors of TLS interception and upstream TLS: what failed, on which host, never key material.

use std::io;
use std::path::PathBuf;

/// Why a TLS step failed. Messages name the run or host and the step; they never contain a
/// private key, a certificate body or bytes the client sent beyond a sanitised, cut host name.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The run id cannot be used in a CA name.
    #[error("run id is not usable in a CA name: {0}")]
    InvalidRunId(&'static str),
    /// The requested CA lifetime is outside the accepted bounds.
    #[error("CA lifetime of {secs} s is outside {min}..={max} s")]
    InvalidLifetime {
        /// Requested lifetime in seconds.
        secs: u64,
        /// Shortest accepted lifetime in seconds.
        min: u64,
        /// Longest accepted lifetime in seconds.
        max: u64,
    },
    /// The system clock is before 1970 or past what a certificate can express.
    #[error("system clock is unusable for certificate validity")]
    Clock,
    /// The random source failed (serial numbers).
    #[error("random source failed while creating a certificate serial")]
    Random,
    /// Generating the run's CA key or certificate failed.
    #[error("creating the CA of run {run_id} failed: {source}")]
    CaGenerate {
        /// The run.
        run_id: String,
        /// What rcgen reported (no key material).
        source: rcgen::Error,
    },
    /// Minting a leaf certificate failed.
    #[error("minting a leaf certificate for {host} failed: {source}")]
    LeafMint {
        /// The host the leaf was for.
        host: String,
        /// What rcgen reported.
        source: rcgen::Error,
    },
    /// Loading a freshly minted leaf key into rustls failed.
    #[error("loading the leaf key for {host} failed: {source}")]
    LeafKey {
        /// The host the leaf was for.
        host: String,
        /// What rustls reported.
        source: rustls::Error,
    },
    /// A rustls configuration could not be built.
    #[error("building the TLS {side} configuration failed: {source}")]
    Config {
        /// `server` (interception) or `client` (upstream).
        side: &'static str,
        /// What rustls reported.
        source: rustls::Error,
    },
    /// The client's SNI names a different host than its CONNECT target.
    #[error("TLS server name {sni:?} does not match the CONNECT host {connect_host}; refused")]
    SniMismatch {
        /// The normalised CONNECT host.
        connect_host: String,
        /// The SNI as sent, reduced to printable ASCII and cut.
        sni: String,
    },
    /// The client's handshake with the interception acceptor failed (for example, it does not
    /// trust the run's CA, offers only old protocol versions, or offers no common ALPN).
    #[error("TLS handshake with the client for {host} failed: {source}")]
    ClientHandshake {
        /// The CONNECT host.
        host: String,
        /// The handshake error.
        source: io::Error,
    },
    /// The client did not finish its handshake in time.
    #[error("TLS handshake with the client for {host} timed out")]
    ClientHandshakeTimeout {
        /// The CONNECT host.
        host: String,
    },
    /// The host cannot be used as a TLS server name.
    #[error("{host} cannot be used as a TLS server name")]
    InvalidServerName {
        /// The host.
        host: String,
    },
    /// The TLS handshake with the upstream failed, including certificate verification.
    #[error("TLS handshake with upstream {host} failed: {source}")]
    UpstreamHandshake {
        /// The upstream host.
        host: String,
        /// The handshake error; [`TlsError::is_certificate_error`] tells a verification
        /// failure apart.
        source: io::Error,
    },
    /// The upstream did not finish its handshake in time.
    #[error("TLS handshake with upstream {host} timed out")]
    UpstreamHandshakeTimeout {
        /// The upstream host.
        host: String,
    },
    /// The extra CA bundle file could not be read.
    #[error("reading the extra CA bundle {path} failed: {source}")]
    ExtraCaRead {
        /// The configured path.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The extra CA bundle is not valid PEM.
    #[error("the extra CA bundle {path} is not valid PEM: {reason}")]
    ExtraCaPem {
        /// The configured path.
        path: PathBuf,
        /// What is wrong, without quoting the file.
        reason: &'static str,
    },
    /// The extra CA bundle holds no certificate (a configured but empty bundle is a mistake).
    #[error("the extra CA bundle {path} contains no certificate")]
    ExtraCaEmpty {
        /// The configured path.
        path: PathBuf,
    },
    /// A certificate in the extra CA bundle is not a usable trust anchor.
    #[error(
        "certificate #{index} of the extra CA bundle {path} is not a usable trust anchor: {source}"
    )]
    ExtraCaInvalid {
        /// The configured path.
        path: PathBuf,
        /// Zero-based position of the certificate in the bundle.
        index: usize,
        /// What rustls reported.
        source: rustls::Error,
    },
}

impl TlsError {
    /// True when an upstream or client handshake failed because a certificate was rejected
    /// (unknown issuer, wrong name, expired, ...) on either side.
    pub fn is_certificate_error(&self) -> bool {
        let source = match self {
            TlsError::UpstreamHandshake { source, .. }
            | TlsError::ClientHandshake { source, .. } => source,
            _ => return false,
        };
        matches!(
            source
                .get_ref()
                .and_then(|e| e.downcast_ref::<rustls::Error>()),
            Some(
                rustls::Error::InvalidCertificate(_)
                    | rustls::Error::AlertReceived(
                        rustls::AlertDescription::UnknownCA
                            | rustls::AlertDescription::BadCertificate
                            | rustls::AlertDescription::CertificateExpired
                            | rustls::AlertDescription::CertificateUnknown
                    )
            )
        )
    }
}

/// Attacker-controlled text for an error message: printable ASCII only, at most 100 chars.
pub(crate) fn sanitise(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(100)
        .collect()
}
