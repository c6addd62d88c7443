//! Upstream TLS: the proxy's own client side, with verification that cannot be turned off.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use paddock_policy::Host;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::error::TlsError;
use super::intercept::{ALPN_HTTP11, DEFAULT_HANDSHAKE_TIMEOUT};

/// Label used in errors for a bundle passed as bytes rather than read from a file.
const INLINE_BUNDLE: &str = "<inline PEM>";

/// The TLS client the proxy uses towards upstreams: TLS 1.3/1.2, the Mozilla roots from
/// `webpki-roots` plus an optional extra CA bundle, certificate and name verification always on
/// (there is deliberately no way to disable it), SNI = the validated host, ALPN `http/1.1`.
///
/// One per proxy; share it behind an `Arc`.
#[derive(Clone)]
pub struct UpstreamTls {
    config: Arc<ClientConfig>,
    extra_roots: usize,
    handshake_timeout: Duration,
}

impl fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("extra_roots", &self.extra_roots)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl UpstreamTls {
    /// The client with the public roots, plus every certificate of `extra_ca_bundle` (a PEM
    /// file) as an additional trust anchor. A bundle that cannot be read, is not PEM, holds no
    /// certificate or holds an unusable one is an error: the proxy refuses to start.
    pub fn new(extra_ca_bundle: Option<&Path>) -> Result<UpstreamTls, TlsError> {
        match extra_ca_bundle {
            None => UpstreamTls::build(None),
            Some(path) => {
                let pem = std::fs::read(path).map_err(|source| TlsError::ExtraCaRead {
                    path: path.to_owned(),
                    source,
                })?;
                UpstreamTls::build(Some((&pem, path)))
            }
        }
    }

    /// Like [`UpstreamTls::new`] with the extra bundle given as PEM bytes.
    pub fn with_extra_ca_pem(pem: &[u8]) -> Result<UpstreamTls, TlsError> {
        UpstreamTls::build(Some((pem, Path::new(INLINE_BUNDLE))))
    }

    fn build(extra: Option<(&[u8], &Path)>) -> Result<UpstreamTls, TlsError> {
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let mut extra_roots = 0usize;
        if let Some((extra_pem, origin)) = extra {
            for (index, cert) in CertificateDer::pem_slice_iter(extra_pem).enumerate() {
                let cert = cert.map_err(|err| TlsError::ExtraCaPem {
                    path: origin.to_owned(),
                    reason: pem_problem(&err),
                })?;
                roots.add(cert).map_err(|source| TlsError::ExtraCaInvalid {
                    path: origin.to_owned(),
                    index,
                    source,
                })?;
                extra_roots += 1;
            }
            if extra_roots == 0 {
                return Err(TlsError::ExtraCaEmpty {
                    path: origin.to_owned(),
                });
            }
        }
        let mut config =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
                .map_err(|source| TlsError::Config {
                    side: "client",
                    source,
                })?
                .with_root_certificates(roots)
                .with_no_client_auth();
        config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
        config.enable_early_data = false;
        Ok(UpstreamTls {
            config: Arc::new(config),
            extra_roots,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        })
    }

    /// Sets the handshake deadline (default 10 s).
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> UpstreamTls {
        self.handshake_timeout = timeout;
        self
    }

    /// Number of trust anchors added from the extra bundle.
    pub fn extra_roots(&self) -> usize {
        self.extra_roots
    }

    /// Runs the client handshake on `io` (a connection the dialler opened to a validated
    /// address of `host`), sending `host` as SNI and verifying the certificate chain and that
    /// the certificate names `host` (a DNS name, or an IP address SAN for an IP host).
    pub async fn connect_upstream<IO>(&self, io: IO, host: &Host) -> Result<TlsStream<IO>, TlsError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let server_name = match host {
            Host::Name(name) => ServerName::try_from(name.as_str().to_owned()).map_err(|_| {
                TlsError::InvalidServerName {
                    host: host.to_string(),
                }
            })?,
            Host::Ip(ip) => ServerName::IpAddress((*ip).into()),
        };
        let connector = TlsConnector::from(Arc::clone(&self.config));
        match tokio::time::timeout(self.handshake_timeout, connector.connect(server_name, io)).await
        {
            Ok(Ok(stream)) => {
                tracing::debug!(host = %host, "upstream TLS established");
                Ok(stream)
            }
            Ok(Err(source)) => Err(TlsError::UpstreamHandshake {
                host: host.to_string(),
                source,
            }),
            Err(_) => Err(TlsError::UpstreamHandshakeTimeout {
                host: host.to_string(),
            }),
        }
    }
}

/// The kind of PEM problem, never the offending text (the file may hold more than certificates).
fn pem_problem(err: &pem::Error) -> &'static str {
    match err {
        pem::Error::MissingSectionEnd { .. } => "a section has no END line",
        pem::Error::IllegalSectionStart { .. } => "a BEGIN line is malformed",
        pem::Error::Base64Decode(_) => "a section is not valid base64",
        pem::Error::SectionTooLarge => "a section is too large",
        _ => "the file could not be parsed",
    }
}

#[cfg(test)]
#[path = "upstream_tests.rs"]
mod tests;
