//! The interception acceptor: terminates a client's TLS inside a CONNECT with the run's CA.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use paddock_policy::Host;
use rustls::ServerConfig;
use rustls::server::{ClientHello, NoServerSessionStorage, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::server::TlsStream;

use super::ca::RunCa;
use super::error::{TlsError, sanitise};

/// How long a client may take from its first byte to a finished handshake.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The only application protocol spoken inside an intercepted connection.
pub(crate) const ALPN_HTTP11: &[u8] = b"http/1.1";

/// Terminates TLS for one run: every connection gets the leaf for its CONNECT host, and only
/// when the client's SNI (if it sends one) names that same host.
///
/// Build one per run (it is cheap to share behind an `Arc`); connections are independent.
pub struct Interceptor {
    ca: Arc<RunCa>,
    base: ServerConfig,
    refuse: Arc<ServerConfig>,
    handshake_timeout: Duration,
}

impl fmt::Debug for Interceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Interceptor")
            .field("run_id", &self.ca.run_id())
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl Interceptor {
    /// An acceptor for the run whose CA is `ca`.
    ///
    /// TLS 1.3 and 1.2 only (rustls has no older versions), ALPN `http/1.1` only (a client
    /// offering only `h2` is refused by the handshake), no 0-RTT data (it could be replayed),
    /// no session resumption (every connection proves the leaf of its own CONNECT host).
    pub fn new(ca: Arc<RunCa>) -> Result<Interceptor, TlsError> {
        let base = server_config(&ca, Arc::new(RefuseAll))?;
        let refuse = Arc::new(base.clone());
        Ok(Interceptor {
            ca,
            base,
            refuse,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        })
    }

    /// Sets the handshake deadline (default [`DEFAULT_HANDSHAKE_TIMEOUT`]).
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Interceptor {
        self.handshake_timeout = timeout;
        self
    }

    /// The run's CA.
    pub fn ca(&self) -> &Arc<RunCa> {
        &self.ca
    }

    /// Runs the server side of the handshake on `io` (the client's stream after the proxy
    /// answered its CONNECT with 200) and returns the decrypted stream.
    ///
    /// `connect_host` is the normalised CONNECT target the policy judged. A client SNI is
    /// normalised the same way and must equal it, otherwise the handshake is refused with a
    /// fatal alert and [`TlsError::SniMismatch`]: an agent cannot CONNECT to an allowed host
    /// and then speak TLS to another name. Without SNI the leaf is for `connect_host`.
    pub async fn accept<IO>(&self, io: IO, connect_host: &Host) -> Result<TlsStream<IO>, TlsError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        match tokio::time::timeout(self.handshake_timeout, self.handshake(io, connect_host)).await {
            Ok(result) => result,
            Err(_) => Err(TlsError::ClientHandshakeTimeout {
                host: connect_host.to_string(),
            }),
        }
    }

    async fn handshake<IO>(&self, io: IO, connect_host: &Host) -> Result<TlsStream<IO>, TlsError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let handshake_error = |source| TlsError::ClientHandshake {
            host: connect_host.to_string(),
            source,
        };
        let start = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), io)
            .await
            .map_err(handshake_error)?;
        if let Some(sni) = start.client_hello().server_name()
            && !sni_names(sni, connect_host)
        {
            let sni = sanitise(sni);
            tracing::warn!(
                run_id = %self.ca.run_id(),
                connect_host = %connect_host,
                sni = %sni,
                "TLS server name differs from the CONNECT host; refused"
            );
            // Finish with the refusing configuration so the client gets a fatal alert
            // (access_denied) instead of a bare close; its outcome is the refusal anyway.
            let _refused = start.into_stream(Arc::clone(&self.refuse)).await;
            return Err(TlsError::SniMismatch {
                connect_host: connect_host.to_string(),
                sni,
            });
        }
        let leaf = self.ca.leaf(connect_host)?;
        let mut config = self.base.clone();
        config.cert_resolver = Arc::new(ConnectionLeaf(leaf));
        let stream = start
            .into_stream(Arc::new(config))
            .await
            .map_err(handshake_error)?;
        tracing::debug!(run_id = %self.ca.run_id(), host = %connect_host, "client TLS intercepted");
        Ok(stream)
    }
}

/// True when the SNI, normalised like any host, is exactly `connect_host`.
fn sni_names(sni: &str, connect_host: &Host) -> bool {
    Host::parse(sni).is_ok_and(|parsed| &parsed == connect_host)
}

fn server_config(
    ca: &RunCa,
    resolver: Arc<dyn ResolvesServerCert>,
) -> Result<ServerConfig, TlsError> {
    let config_error = |source| TlsError::Config {
        side: "server",
        source,
    };
    let mut config = ServerConfig::builder_with_provider(Arc::clone(ca.provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(config_error)?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    config.max_early_data_size = 0;
    config.send_half_rtt_data = false;
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(config)
}

/// The one leaf a connection may present, chosen before the handshake from its CONNECT host.
struct ConnectionLeaf(Arc<CertifiedKey>);

impl fmt::Debug for ConnectionLeaf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ConnectionLeaf")
    }
}

impl ResolvesServerCert for ConnectionLeaf {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

/// Presents no certificate: rustls then aborts the handshake with a fatal alert.
#[derive(Debug)]
struct RefuseAll;

impl ResolvesServerCert for RefuseAll {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        None
    }
}

#[cfg(test)]
#[path = "intercept_tests.rs"]
mod tests;
