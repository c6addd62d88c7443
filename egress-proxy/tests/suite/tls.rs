//! End to end over loopback TCP: client → CONNECT → interception with the run CA → HTTP/1.1
//! on the decrypted stream → verified upstream TLS → a loopback HTTPS server with a test CA.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use paddock_egress::tls::{DEFAULT_CA_LIFETIME, Interceptor, RunCa, TlsError, UpstreamTls};
use paddock_policy::Host;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const UPSTREAM: &str = "api.upstream.test";

/// A loopback HTTPS upstream with a certificate from a CA minted here; returns its address and
/// the CA in PEM.
async fn upstream() -> Result<(SocketAddr, String)> {
    let mut ca_params = CertificateParams::default();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Test upstream CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let ca_key = KeyPair::generate()?;
    let ca_pem = ca_params.self_signed(&ca_key)?.pem();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate()?;
    let leaf = CertificateParams::new(vec![UPSTREAM.to_owned()])?.signed_by(&leaf_key, &issuer)?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(vec![leaf.der().clone()], PrivateKeyDer::from(leaf_key))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    let body = format!("upstream saw {} {}", req.method(), req.uri().path());
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    Ok((addr, ca_pem))
}

/// A minimal stand-in for the proxy's CONNECT path: every CONNECT is intercepted, and every
/// request inside is forwarded to `upstream_addr` (the address the dialler validated).
async fn proxy(
    interceptor: Arc<Interceptor>,
    upstream_tls: Arc<UpstreamTls>,
    upstream_addr: SocketAddr,
) -> Result<(SocketAddr, tokio::sync::mpsc::UnboundedReceiver<TlsError>)> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    let (errors, errors_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let (interceptor, upstream_tls, errors) =
                (interceptor.clone(), upstream_tls.clone(), errors.clone());
            tokio::spawn(async move {
                let head = read_head(&mut tcp).await.unwrap_or_default();
                let Some(authority) = head
                    .strip_prefix("CONNECT ")
                    .and_then(|rest| rest.split(' ').next())
                else {
                    return;
                };
                let Ok((connect_host, _port)) = paddock_policy::parse_authority(authority, None)
                else {
                    return;
                };
                if tcp
                    .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                    .await
                    .is_err()
                {
                    return;
                }
                let tls = match interceptor.accept(tcp, &connect_host).await {
                    Ok(tls) => tls,
                    Err(err) => {
                        let _ = errors.send(err);
                        return;
                    }
                };
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let (upstream_tls, connect_host) = (upstream_tls.clone(), connect_host.clone());
                    async move { forward(req, &upstream_tls, &connect_host, upstream_addr).await }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    Ok((addr, errors_rx))
}

async fn forward(
    req: Request<Incoming>,
    upstream_tls: &UpstreamTls,
    host: &Host,
    addr: SocketAddr,
) -> Result<Response<Incoming>> {
    let tcp = TcpStream::connect(addr).await?;
    let tls = upstream_tls.connect_upstream(tcp, host).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(conn);
    // The response body streams back as it arrives (no buffering in the proxy).
    Ok(sender.send_request(req).await?)
}

async fn read_head(tcp: &mut TcpStream) -> Result<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if tcp.read(&mut byte).await? == 0 || head.len() > 8192 {
            bail!("no complete head");
        }
        head.push(byte[0]);
    }
    Ok(String::from_utf8(head)?)
}

/// The sandbox's side: CONNECT, then TLS trusting `trusted`, then one GET.
async fn client_get(
    proxy: SocketAddr,
    connect_to: &str,
    sni: &str,
    trusted: &CertificateDer<'static>,
) -> Result<String> {
    let mut tcp = TcpStream::connect(proxy).await?;
    tcp.write_all(
        format!("CONNECT {connect_to}:443 HTTP/1.1\r\nhost: {connect_to}:443\r\n\r\n").as_bytes(),
    )
    .await?;
    let head = read_head(&mut tcp).await?;
    if !head.starts_with("HTTP/1.1 200") {
        bail!("CONNECT refused: {head}");
    }
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.clone())?;
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from(sni.to_owned())?, tcp)
        .await
        .context("client handshake")?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(conn);
    let req = Request::post("/v1/messages")
        .header("host", connect_to)
        .body(Full::new(Bytes::from_static(b"{}")))?;
    let resp = sender.send_request(req).await?;
    let body = resp.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8(body.to_vec())?)
}

#[tokio::test]
async fn intercepted_request_reaches_the_verified_upstream() -> Result<()> {
    let (upstream_addr, upstream_ca) = upstream().await?;
    let ca = Arc::new(RunCa::generate("run-e2e", DEFAULT_CA_LIFETIME)?);
    let trusted = ca.cert_der().clone();
    let interceptor = Arc::new(Interceptor::new(ca)?);
    let upstream_tls = Arc::new(UpstreamTls::with_extra_ca_pem(upstream_ca.as_bytes())?);
    let (proxy_addr, mut errors) = proxy(interceptor, upstream_tls, upstream_addr).await?;

    let body = client_get(proxy_addr, UPSTREAM, UPSTREAM, &trusted).await?;
    assert_eq!(body, "upstream saw POST /v1/messages");

    // SNI for another name inside a CONNECT to the upstream host: refused at the handshake.
    let refused = client_get(proxy_addr, UPSTREAM, "other.test", &trusted).await;
    assert!(refused.is_err());
    assert!(matches!(
        errors.recv().await,
        Some(TlsError::SniMismatch { .. })
    ));

    // A client trusting another run's CA fails closed.
    let stranger = RunCa::generate("run-other", DEFAULT_CA_LIFETIME)?;
    let refused = client_get(proxy_addr, UPSTREAM, UPSTREAM, stranger.cert_der()).await;
    assert!(refused.is_err());
    let err = errors.recv().await.context("acceptor error")?;
    assert!(err.is_certificate_error(), "{err}");
    Ok(())
}

#[tokio::test]
async fn upstream_without_the_extra_bundle_is_not_reached() -> Result<()> {
    let (upstream_addr, _upstream_ca) = upstream().await?;
    let ca = Arc::new(RunCa::generate("run-e2e", DEFAULT_CA_LIFETIME)?);
    let trusted = ca.cert_der().clone();
    let interceptor = Arc::new(Interceptor::new(ca)?);
    let public_only = Arc::new(UpstreamTls::new(None)?);
    let (proxy_addr, _errors) = proxy(interceptor, public_only, upstream_addr).await?;
    // The forwarder fails verification; the stand-in proxy then drops the client connection
    // (the real proxy answers 502); no request is sent upstream.
    let result = client_get(proxy_addr, UPSTREAM, UPSTREAM, &trusted).await;
    assert!(result.is_err(), "{result:?}");
    Ok(())
}
