//! Tests of the upstream TLS client against loopback servers with test CAs.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use super::UpstreamTls;
use crate::tls::TlsError;
use crate::tls::test_support::{TestCa, get, host, parse_client_hello, serve_hello, server_config};

/// A loopback HTTPS server answering `upstream <path>` with `config`.
async fn upstream_server(config: Arc<ServerConfig>) -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(config);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    serve_hello(tls, "upstream").await;
                }
            });
        }
    });
    addr
}

async fn connect(
    upstream: &UpstreamTls,
    addr: SocketAddr,
    name: &str,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, TlsError> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    upstream.connect_upstream(tcp, &host(name)).await
}

fn bundle_file(pem: &str) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), pem).unwrap();
    file
}

fn assert_certificate_rejected(result: Result<impl Sized, TlsError>) {
    match result {
        Err(err @ TlsError::UpstreamHandshake { .. }) => {
            assert!(err.is_certificate_error(), "{err}");
        }
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("an unverifiable upstream was accepted"),
    }
}

fn self_signed(names: &[&str]) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>, String) {
    let certified = rcgen::generate_simple_self_signed(
        names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>(),
    )
    .unwrap();
    let pem = certified.cert.pem();
    (
        vec![certified.cert.der().clone()],
        PrivateKeyDer::from(certified.signing_key),
        pem,
    )
}

#[tokio::test]
async fn upstream_signed_by_the_extra_bundle_is_verified_and_spoken_to() {
    let ca = TestCa::new("Paddock test upstream CA");
    let (chain, key) = ca.server_cert(&["upstream.test"]);
    let addr = upstream_server(server_config(chain, key)).await;
    let bundle = bundle_file(&ca.pem);
    let upstream = UpstreamTls::new(Some(bundle.path())).unwrap();
    assert_eq!(upstream.extra_roots(), 1);

    let tls = connect(&upstream, addr, "upstream.test").await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (status, body) = get(tls, "upstream.test", "/x").await;
    assert_eq!((status, body.as_str()), (200, "upstream /x"));

    // Without the bundle the same upstream is refused: public roots only.
    let public_only = UpstreamTls::new(None).unwrap();
    assert_eq!(public_only.extra_roots(), 0);
    assert_certificate_rejected(connect(&public_only, addr, "upstream.test").await);
}

#[tokio::test]
async fn self_signed_upstream_is_refused_unless_it_is_in_the_bundle() {
    let (chain, key, pem) = self_signed(&["upstream.test"]);
    let addr = upstream_server(server_config(chain, key)).await;
    let other_ca = TestCa::new("Unrelated CA");
    let unrelated = UpstreamTls::with_extra_ca_pem(other_ca.pem.as_bytes()).unwrap();
    assert_certificate_rejected(connect(&unrelated, addr, "upstream.test").await);
    assert_certificate_rejected(
        connect(&UpstreamTls::new(None).unwrap(), addr, "upstream.test").await,
    );

    let pinned = UpstreamTls::with_extra_ca_pem(pem.as_bytes()).unwrap();
    let tls = connect(&pinned, addr, "upstream.test").await.unwrap();
    let (status, _) = get(tls, "upstream.test", "/").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn certificate_for_another_name_is_refused() {
    let ca = TestCa::new("Paddock test upstream CA");
    let (chain, key) = ca.server_cert(&["other.test"]);
    let addr = upstream_server(server_config(chain, key)).await;
    let upstream = UpstreamTls::with_extra_ca_pem(ca.pem.as_bytes()).unwrap();
    assert_certificate_rejected(connect(&upstream, addr, "upstream.test").await);
    connect(&upstream, addr, "other.test").await.unwrap();
}

#[tokio::test]
async fn ip_upstream_needs_an_ip_san() {
    let ca = TestCa::new("Paddock test upstream CA");
    let upstream = UpstreamTls::with_extra_ca_pem(ca.pem.as_bytes()).unwrap();
    let (chain, key) = ca.server_cert(&["127.0.0.1"]);
    let with_ip = upstream_server(server_config(chain, key)).await;
    connect(&upstream, with_ip, "127.0.0.1").await.unwrap();
    let (chain, key) = ca.server_cert(&["upstream.test"]);
    let name_only = upstream_server(server_config(chain, key)).await;
    assert_certificate_rejected(connect(&upstream, name_only, "127.0.0.1").await);
}

#[tokio::test]
async fn tls12_only_upstream_is_accepted() {
    let ca = TestCa::new("Paddock test upstream CA");
    let (chain, key) = ca.server_cert(&["upstream.test"]);
    let config = ServerConfig::builder_with_provider(crate::tls::test_support::provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let addr = upstream_server(Arc::new(config)).await;
    let upstream = UpstreamTls::with_extra_ca_pem(ca.pem.as_bytes()).unwrap();
    let tls = connect(&upstream, addr, "upstream.test").await.unwrap();
    assert_eq!(
        tls.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
}

#[tokio::test]
async fn client_hello_offers_tls13_and_tls12_only_with_sni_and_http11() {
    let upstream = UpstreamTls::new(None).unwrap();
    let (client_io, mut server_io) = tokio::io::duplex(64 * 1024);
    let name = host("api.example.test");
    let handshake = tokio::spawn(async move { upstream.connect_upstream(client_io, &name).await });
    let mut record = vec![0u8; 5];
    server_io.read_exact(&mut record).await.unwrap();
    let len = usize::from(u16::from_be_bytes([record[3], record[4]]));
    let mut body = vec![0u8; len];
    server_io.read_exact(&mut body).await.unwrap();
    record.extend_from_slice(&body);
    let offer = parse_client_hello(&record);
    assert_eq!(offer.legacy_version, 0x0303);
    let mut versions = offer.supported_versions.clone();
    versions.sort_unstable();
    assert_eq!(versions, vec![0x0303, 0x0304], "offered {offer:?}");
    assert_eq!(offer.sni.as_deref(), Some("api.example.test"));
    assert_eq!(offer.alpn, vec![b"http/1.1".to_vec()]);
    drop(server_io);
    assert!(handshake.await.unwrap().is_err());
}

#[tokio::test]
async fn silent_upstream_times_out() {
    let upstream = UpstreamTls::new(None)
        .unwrap()
        .with_handshake_timeout(Duration::from_millis(200));
    let (client_io, _server_io) = tokio::io::duplex(64 * 1024);
    let result = upstream.connect_upstream(client_io, &host("a.test")).await;
    assert!(matches!(
        result,
        Err(TlsError::UpstreamHandshakeTimeout { .. })
    ));
}

#[test]
fn bad_extra_bundles_refuse_to_start() {
    let missing = std::path::Path::new("/nonexistent/paddock-extra-ca.pem");
    assert!(matches!(
        UpstreamTls::new(Some(missing)),
        Err(TlsError::ExtraCaRead { .. })
    ));
    let empty = bundle_file("");
    assert!(matches!(
        UpstreamTls::new(Some(empty.path())),
        Err(TlsError::ExtraCaEmpty { .. })
    ));
    let key_only = bundle_file(&rcgen::KeyPair::generate().unwrap().serialize_pem());
    let err = UpstreamTls::new(Some(key_only.path())).unwrap_err();
    assert!(matches!(err, TlsError::ExtraCaEmpty { .. }));
    assert!(!err.to_string().contains("PRIVATE"));
    let garbage =
        "-----BEGIN CERTIFICATE-----\nTm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n";
    let err = UpstreamTls::with_extra_ca_pem(garbage.as_bytes()).unwrap_err();
    assert!(
        matches!(err, TlsError::ExtraCaInvalid { index: 0, .. }),
        "{err}"
    );
    assert!(!err.to_string().contains("Tm90"));
    let truncated = "-----BEGIN CERTIFICATE-----\nTm90IGEgY2VydGlmaWNhdGU=\n";
    let err = UpstreamTls::with_extra_ca_pem(truncated.as_bytes()).unwrap_err();
    assert!(matches!(err, TlsError::ExtraCaPem { .. }), "{err}");
    assert!(!err.to_string().contains("Tm90"));
    assert!(matches!(
        UpstreamTls::with_extra_ca_pem(b""),
        Err(TlsError::ExtraCaEmpty { .. })
    ));
    let ca = TestCa::new("one");
    let two = TestCa::new("two");
    let both = format!("{}{}", ca.pem, two.pem);
    assert_eq!(
        UpstreamTls::with_extra_ca_pem(both.as_bytes())
            .unwrap()
            .extra_roots(),
        2
    );
}
