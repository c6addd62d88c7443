//! The one way out: resolve with the configured nameservers, validate every answer with the
//! policy, connect only to a validated address.

use std::net::IpAddr;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig,
    ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::Name;
use paddock_policy::{Denied, EgressPolicy, Host, ValidatedAddr};
use tokio::net::TcpStream;

use crate::config;

/// Upstream addresses tried per request, at most.
const MAX_ATTEMPTS: usize = 4;

/// Why no upstream connection was made.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// The policy refused an answer (or there was none).
    #[error("egress denied: {0}")]
    Denied(#[from] Denied),
    /// The nameservers did not answer usefully.
    #[error("name resolution failed")]
    Resolve,
    /// Every connect attempt timed out.
    #[error("upstream connect timed out")]
    Timeout,
    /// Every connect attempt failed.
    #[error("upstream connect failed: {0}")]
    Connect(std::io::Error),
    /// The upstream's TLS certificate or handshake was refused (verification is always on).
    #[error("upstream TLS handshake failed")]
    Tls,
}

/// Resolves names through the configured nameservers only.
#[derive(Clone)]
pub struct Resolver {
    inner: TokioResolver,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Resolver")
    }
}

/// The resolver could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the resolver: {0}")]
pub struct ResolverBuildError(String);

impl Resolver {
    /// Builds a resolver that queries exactly `cfg.nameservers` over UDP and TCP. The system
    /// resolver configuration and hosts file are never read.
    pub fn new(cfg: &config::ResolverConfig) -> Result<Resolver, ResolverBuildError> {
        let servers = cfg
            .nameservers
            .iter()
            .map(|ns| {
                let mut udp = ConnectionConfig::udp();
                udp.port = ns.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = ns.port();
                NameServerConfig::new(ns.ip(), true, vec![udp, tcp])
            })
            .collect();
        let rc = ResolverConfig::from_parts(None, Vec::new(), servers);
        let mut opts = ResolverOpts::default();
        opts.ndots = 0;
        opts.timeout = cfg.timeout.get();
        opts.attempts = 1;
        opts.use_hosts_file = ResolveHosts::Never;
        opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        opts.try_tcp_on_error = true;
        let inner =
            hickory_resolver::Resolver::builder_with_config(rc, TokioRuntimeProvider::default())
                .with_options(opts)
                .build()
                .map_err(|e| ResolverBuildError(e.to_string()))?;
        Ok(Resolver { inner })
    }

    /// Every address the name has (A and AAAA). No records is an empty list.
    async fn lookup(&self, name: &str) -> Result<Vec<IpAddr>, DialError> {
        // Fully qualified: no search domains, no ndots games.
        let fqdn = Name::from_ascii(name)
            .map(|mut n| {
                n.set_fqdn(true);
                n
            })
            .map_err(|_| DialError::Resolve)?;
        match self.inner.lookup_ip(fqdn).await {
            Ok(answers) => Ok(answers.iter().collect()),
            Err(e) if e.is_no_records_found() || e.is_nx_domain() => Ok(Vec::new()),
            Err(e) => {
                tracing::debug!(error = %e, "name resolution failed");
                Err(DialError::Resolve)
            }
        }
    }

    /// Resolves `host` and validates every answer: one denied answer denies the request
    /// (fail closed); a literal IP skips DNS but is still checked.
    pub async fn resolve(
        &self,
        policy: &EgressPolicy,
        host: &Host,
        port: u16,
    ) -> Result<Vec<ValidatedAddr>, DialError> {
        match host {
            Host::Ip(ip) => Ok(vec![policy.check_addr(*ip, port)?]),
            Host::Name(name) => {
                let answers = self.lookup(name.as_str()).await?;
                Ok(policy.check_resolved(&answers, port)?)
            }
        }
    }
}

/// Connects to the first validated address that answers, in order, each attempt bounded by
/// `timeout`. Taking [`ValidatedAddr`] means only an address the policy checked can be dialled.
pub async fn connect(
    addrs: &[ValidatedAddr],
    timeout: Duration,
) -> Result<(TcpStream, ValidatedAddr), DialError> {
    let mut last = DialError::Resolve;
    for addr in addrs.iter().take(MAX_ATTEMPTS) {
        match tokio::time::timeout(timeout, TcpStream::connect(addr.socket_addr())).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok((stream, addr.clone()));
            }
            Ok(Err(e)) => last = DialError::Connect(e),
            Err(_) => last = DialError::Timeout,
        }
    }
    Err(last)
}
