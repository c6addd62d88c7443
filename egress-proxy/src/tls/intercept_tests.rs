//! Tests of the interception acceptor: trust, SNI binding, versions, ALPN, timeouts.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio_rustls::TlsConnector;

use super::{Interceptor, sni_names};
use crate::tls::test_support::{
    TestCa, client_trusting, client_with, get, host, raw_client_hello, serve_hello, server_name,
};
use crate::tls::{DEFAULT_CA_LIFETIME, RunCa, TlsError};

type ServerSide = Result<tokio_rustls::server::TlsStream<DuplexStream>, TlsError>;
type ClientSide = Result<tokio_rustls::client::TlsStream<DuplexStream>, io::Error>;

fn interceptor(run: &str) -> Interceptor {
    Interceptor::new(Arc::new(RunCa::generate(run, DEFAULT_CA_LIFETIME).unwrap())).unwrap()
}

/// Runs both sides: the acceptor for CONNECT `connect`, a client that verifies (and, when SNI
/// is enabled in `client`, sends) `name`.
async fn handshake(
    interceptor: &Interceptor,
    connect: &str,
    client: ClientConfig,
    name: &str,
) -> (ServerSide, ClientSide) {
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let connect_host = host(connect);
    let connector = TlsConnector::from(Arc::new(client));
    tokio::join!(
        interceptor.accept(server_io, &connect_host),
        connector.connect(server_name(name), client_io)
    )
}

fn trusting(interceptor: &Interceptor) -> ClientConfig {
    client_trusting(&[interceptor.ca().cert_der()])
}

fn rustls_error(err: &io::Error) -> Option<&rustls::Error> {
    err.get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
}

#[tokio::test]
async fn trusting_client_gets_the_leaf_for_the_host_and_speaks_http11() {
    let interceptor = interceptor("run-1");
    let (server, client) = handshake(
        &interceptor,
        "api.example.test",
        trusting(&interceptor),
        "api.example.test",
    )
    .await;
    let server = server.unwrap();
    let client = client.unwrap();
    let (_, conn) = client.get_ref();
    let leaf = interceptor.ca().leaf(&host("api.example.test")).unwrap();
    assert_eq!(conn.peer_certificates().unwrap()[0], leaf.cert[0]);
    assert_eq!(conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(
        conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );

    tokio::spawn(serve_hello(server, "intercepted"));
    let (status, body) = get(client, "api.example.test", "/v1/messages").await;
    assert_eq!((status, body.as_str()), (200, "intercepted /v1/messages"));
}

#[tokio::test]
async fn tls12_client_is_served() {
    let interceptor = interceptor("run-1");
    let client = client_with(&[interceptor.ca().cert_der()], &[&rustls::version::TLS12]);
    let (server, client) = handshake(&interceptor, "a.test", client, "a.test").await;
    server.unwrap();
    assert_eq!(
        client.unwrap().get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
}

#[tokio::test]
async fn client_not_trusting_the_run_ca_fails_closed() {
    let interceptor = interceptor("run-1");
    let stranger = TestCa::new("Some other CA");
    for client in [client_trusting(&[&stranger.der]), {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        ClientConfig::builder_with_provider(crate::tls::test_support::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth()
    }] {
        let (server, client) = handshake(&interceptor, "a.test", client, "a.test").await;
        let client_err = client.unwrap_err();
        assert!(matches!(
            rustls_error(&client_err),
            Some(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer
            ))
        ));
        let server_err = server.unwrap_err();
        assert!(
            matches!(server_err, TlsError::ClientHandshake { .. }),
            "{server_err}"
        );
        assert!(server_err.is_certificate_error(), "{server_err}");
    }
    // The neighbour: trusting the run's CA works on the same acceptor.
    let (server, client) =
        handshake(&interceptor, "a.test", trusting(&interceptor), "a.test").await;
    server.unwrap();
    client.unwrap();
}

#[tokio::test]
async fn another_runs_ca_is_not_accepted() {
    let first = interceptor("run-1");
    let second = interceptor("run-2");
    let (server, client) = handshake(&first, "a.test", trusting(&second), "a.test").await;
    assert!(server.is_err());
    assert!(matches!(
        rustls_error(&client.unwrap_err()),
        Some(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer
        ))
    ));
    let (server, client) = handshake(&second, "a.test", trusting(&second), "a.test").await;
    server.unwrap();
    client.unwrap();
}

#[tokio::test]
async fn sni_naming_another_host_is_refused() {
    let interceptor = interceptor("run-1");
    for sni in [
        "other.test",
        "sub.allowed.test",
        "allowed.test.evil",
        "allowed.tes",
    ] {
        let (server, client) =
            handshake(&interceptor, "allowed.test", trusting(&interceptor), sni).await;
        match server {
            Err(TlsError::SniMismatch {
                connect_host,
                sni: seen,
            }) => {
                assert_eq!(connect_host, "allowed.test");
                assert_eq!(seen, sni);
            }
            other => panic!("SNI {sni} for CONNECT allowed.test: {other:?}"),
        }
        assert!(matches!(
            rustls_error(&client.unwrap_err()),
            Some(rustls::Error::AlertReceived(
                rustls::AlertDescription::AccessDenied
            ))
        ));
    }
    // No leaf was minted for any refused name.
    assert_eq!(interceptor.ca().cached_leaves(), 0);
    let (server, client) = handshake(
        &interceptor,
        "allowed.test",
        trusting(&interceptor),
        "allowed.test",
    )
    .await;
    server.unwrap();
    client.unwrap();
}

#[tokio::test]
async fn without_sni_the_leaf_is_for_the_connect_host() {
    let interceptor = interceptor("run-1");
    let mut client = trusting(&interceptor);
    client.enable_sni = false;
    let (server, client) = handshake(&interceptor, "allowed.test", client, "allowed.test").await;
    let server = server.unwrap();
    assert_eq!(server.get_ref().1.server_name(), None);
    let peer = client.unwrap().get_ref().1.peer_certificates().unwrap()[0].clone();
    let leaf = interceptor.ca().leaf(&host("allowed.test")).unwrap();
    assert_eq!(peer, leaf.cert[0]);

    // A client verifying a different name than the CONNECT host rejects that leaf.
    let mut client = trusting(&interceptor);
    client.enable_sni = false;
    let (_, client) = handshake(&interceptor, "allowed.test", client, "other.test").await;
    assert!(matches!(
        rustls_error(&client.unwrap_err()),
        Some(rustls::Error::InvalidCertificate(_))
    ));
}

#[tokio::test]
async fn ip_connect_host_gets_an_ip_leaf_and_refuses_a_name_sni() {
    let interceptor = interceptor("run-1");
    // rustls sends no SNI for an IP address.
    let (server, client) = handshake(
        &interceptor,
        "203.0.113.7",
        trusting(&interceptor),
        "203.0.113.7",
    )
    .await;
    server.unwrap();
    client.unwrap();
    let (server, client) = handshake(
        &interceptor,
        "203.0.113.7",
        trusting(&interceptor),
        "allowed.test",
    )
    .await;
    assert!(matches!(server, Err(TlsError::SniMismatch { .. })));
    assert!(client.is_err());
}

#[test]
fn sni_is_compared_after_normalisation() {
    let allowed = host("allowed.test");
    assert!(sni_names("allowed.test", &allowed));
    assert!(sni_names("ALLOWED.Test", &allowed));
    assert!(sni_names("allowed.test.", &allowed));
    assert!(!sni_names("allowed.test..", &allowed));
    assert!(!sni_names("allowed.test:443", &allowed));
    assert!(!sni_names("xallowed.test", &allowed));
    assert!(!sni_names("", &allowed));
    let ip = host("127.0.0.1");
    assert!(sni_names("127.0.0.1", &ip));
    assert!(sni_names("2130706433", &ip));
    assert!(!sni_names("localhost", &ip));
}

#[tokio::test]
async fn client_offering_only_h2_is_refused() {
    let interceptor = interceptor("run-1");
    let mut client = trusting(&interceptor);
    client.alpn_protocols = vec![b"h2".to_vec()];
    let (server, client) = handshake(&interceptor, "a.test", client, "a.test").await;
    assert!(server.is_err());
    assert!(client.is_err());
    // No ALPN at all is plain HTTP/1.1 and accepted.
    let mut client = trusting(&interceptor);
    client.alpn_protocols.clear();
    let (server, client) = handshake(&interceptor, "a.test", client, "a.test").await;
    server.unwrap();
    assert_eq!(client.unwrap().get_ref().1.alpn_protocol(), None);
}

/// Sends a hand-made ClientHello and returns what the acceptor writes back first.
async fn raw_hello_reply(interceptor: &Interceptor, version: [u8; 2]) -> (Vec<u8>, bool) {
    let (mut client_io, server_io) = tokio::io::duplex(64 * 1024);
    let connect_host = host("a.test");
    let accept = interceptor.accept(server_io, &connect_host);
    let client = async {
        client_io
            .write_all(&raw_client_hello(version, "a.test"))
            .await
            .unwrap();
        let mut reply = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), client_io.read(&mut reply))
            .await
            .unwrap()
            .unwrap_or(0);
        reply.truncate(n);
        drop(client_io);
        reply
    };
    let (accepted, reply) = tokio::join!(accept, client);
    (reply, accepted.is_ok())
}

#[tokio::test]
async fn tls10_and_tls11_are_not_spoken() {
    let interceptor = interceptor("run-1");
    for old in [[0x03, 0x01], [0x03, 0x02]] {
        let (reply, accepted) = raw_hello_reply(&interceptor, old).await;
        assert!(!accepted);
        // A fatal alert (protocol_version), never a ServerHello.
        assert_eq!(reply.first(), Some(&0x15), "reply to {old:?}: {reply:?}");
        assert_eq!(reply.get(5..7), Some(&[0x02, 70][..]));
    }
    // The same hello offering TLS 1.2 gets a TLS 1.2 ServerHello.
    let (reply, _) = raw_hello_reply(&interceptor, [0x03, 0x03]).await;
    assert_eq!(reply.first(), Some(&0x16));
    assert_eq!(reply.get(5), Some(&0x02));
    assert_eq!(reply.get(9..11), Some(&[0x03, 0x03][..]));
}

#[tokio::test]
async fn silent_client_times_out() {
    let interceptor = interceptor("run-1").with_handshake_timeout(Duration::from_millis(200));
    let (_client_io, server_io) = tokio::io::duplex(1024);
    let result = interceptor.accept(server_io, &host("a.test")).await;
    assert!(matches!(
        result,
        Err(TlsError::ClientHandshakeTimeout { ref host }) if host == "a.test"
    ));
}

#[tokio::test]
async fn sessions_are_never_resumed() {
    let interceptor = interceptor("run-1");
    // One client config (and so one client session cache) for both connections.
    let client = trusting(&interceptor);
    for _ in 0..2 {
        let (server, client) = handshake(&interceptor, "a.test", client.clone(), "a.test").await;
        let server = server.unwrap();
        let mut client = client.unwrap();
        // Drive the connection so a ticket, if one were issued, reaches the client cache.
        tokio::spawn(serve_hello(server, "intercepted"));
        client
            .write_all(b"GET / HTTP/1.1\r\nhost: a.test\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 256];
        let _ = client.read(&mut buf).await.unwrap();
        assert_eq!(
            client.get_ref().1.handshake_kind(),
            Some(rustls::HandshakeKind::Full)
        );
    }
}
