//! TLS interception micro benchmark on loopback: leaf mint time and new handshakes per second
//! with a cached leaf, against a plain rustls server with one fixed certificate as baseline.
//!
//! Run: `cargo run --release --example tls_bench [connections]`

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use paddock_egress::tls::{DEFAULT_CA_LIFETIME, Interceptor, RunCa};
use paddock_policy::Host;
use rustls::pki_types::ServerName;
use tokio::net::{TcpListener, TcpStream};

const HOST: &str = "bench.example.test";

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    let connections: usize = match std::env::args().nth(1) {
        Some(n) => n.parse().context("connections must be a number")?,
        None => 2000,
    };

    let start = Instant::now();
    let ca = Arc::new(RunCa::generate("bench", DEFAULT_CA_LIFETIME)?);
    println!("run CA generation: {:.0} us", micros(start.elapsed()));

    let mints = 500u32;
    let start = Instant::now();
    for i in 0..mints {
        ca.mint(&Host::parse(&format!("h{i}.example.test"))?)?;
    }
    println!(
        "leaf mint (P-256 key + signature): {:.0} us/leaf over {mints}",
        micros(start.elapsed()) / f64::from(mints)
    );
    let host = Host::parse(HOST)?;
    ca.leaf(&host)?;
    let start = Instant::now();
    for _ in 0..mints {
        ca.leaf(&host)?;
    }
    println!(
        "cached leaf lookup: {:.2} us",
        micros(start.elapsed()) / f64::from(mints)
    );

    let interceptor = Arc::new(Interceptor::new(Arc::clone(&ca))?);
    let intercept_addr = serve_intercepted(interceptor, host).await?;
    let baseline_addr = serve_baseline(&ca).await?;
    for (label, versions) in [
        ("TLS 1.3", &[&rustls::version::TLS13][..]),
        ("TLS 1.2", &[&rustls::version::TLS12][..]),
    ] {
        let client = client_config(&ca, versions)?;
        for concurrency in [1usize, 4] {
            let rate = handshakes(intercept_addr, &client, connections, concurrency).await?;
            let base = handshakes(baseline_addr, &client, connections, concurrency).await?;
            println!(
                "{label}, {concurrency} client(s): interception {rate:.0} handshakes/s, \
                 plain rustls fixed-cert server {base:.0} handshakes/s"
            );
        }
    }
    Ok(())
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn client_config(
    ca: &RunCa,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert_der().clone())?;
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    // Every connection must be a full handshake, as the interceptor never resumes.
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

async fn serve_intercepted(interceptor: Arc<Interceptor>, host: Host) -> Result<SocketAddr> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (interceptor, host) = (Arc::clone(&interceptor), host.clone());
            tokio::spawn(async move {
                let _ = interceptor.accept(tcp, &host).await;
            });
        }
    });
    Ok(addr)
}

async fn serve_baseline(ca: &RunCa) -> Result<SocketAddr> {
    let leaf = ca.leaf(&Host::parse(HOST)?)?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_cert_resolver(Arc::new(Fixed(leaf)));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = acceptor.accept(tcp).await;
            });
        }
    });
    Ok(addr)
}

/// The baseline server's resolver: one certificate for every connection.
#[derive(Debug)]
struct Fixed(Arc<rustls::sign::CertifiedKey>);

impl rustls::server::ResolvesServerCert for Fixed {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

async fn handshakes(
    addr: SocketAddr,
    client: &Arc<rustls::ClientConfig>,
    total: usize,
    concurrency: usize,
) -> Result<f64> {
    let per_task = total / concurrency;
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let connector = tokio_rustls::TlsConnector::from(Arc::clone(client));
            tokio::spawn(async move {
                for _ in 0..per_task {
                    let tcp = TcpStream::connect(addr).await?;
                    tcp.set_nodelay(true)?;
                    let name = ServerName::try_from(HOST)?;
                    connector.connect(name, tcp).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    let done = per_task * concurrency;
    Ok(f64::from(u32::try_from(done)?) / start.elapsed().as_secs_f64())
}
