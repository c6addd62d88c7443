//! Test helpers: clients with chosen trust, an independent test CA, hyper on TLS streams,
//! and small readers for ClientHello and certificate bytes.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use paddock_policy::Host;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite};

pub(crate) fn host(raw: &str) -> Host {
    Host::parse(raw).expect("test host parses")
}

pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client trusting exactly `roots`, TLS 1.3 + 1.2, ALPN http/1.1.
pub(crate) fn client_trusting(roots: &[&CertificateDer<'static>]) -> ClientConfig {
    client_with(roots, &[&rustls::version::TLS13, &rustls::version::TLS12])
}

pub(crate) fn client_with(
    roots: &[&CertificateDer<'static>],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> ClientConfig {
    let mut store = RootCertStore::empty();
    for root in roots {
        store.add((*root).clone()).expect("test root is usable");
    }
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

pub(crate) fn server_name(raw: &str) -> ServerName<'static> {
    match raw.parse::<IpAddr>() {
        Ok(ip) => ServerName::IpAddress(ip.into()),
        Err(_) => ServerName::try_from(raw.to_owned()).expect("server name"),
    }
}

/// An independent CA made with rcgen directly (not with `RunCa`), for upstream tests.
pub(crate) struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pub(crate) der: CertificateDer<'static>,
    pub(crate) pem: String,
}

impl TestCa {
    pub(crate) fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let key = KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("self-signed CA");
        TestCa {
            der: cert.der().clone(),
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A server certificate for `names` (DNS names or IP addresses) signed by this CA.
    pub(crate) fn server_cert(
        &self,
        names: &[&str],
    ) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .expect("params");
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("signed");
        (vec![cert.der().clone()], PrivateKeyDer::from(key))
    }
}

/// A plain TLS server configuration serving `chain`.
pub(crate) fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Arc<ServerConfig> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server cert");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Serves HTTP/1.1 on `io`: every request gets `<label> <path>`.
pub(crate) async fn serve_hello<IO>(io: IO, label: &'static str)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: Request<Incoming>| async move {
        let body = format!("{label} {}", req.uri().path());
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .await;
}

/// Sends `GET path` with `Host: host` over `io` and returns the status and body.
pub(crate) async fn get<IO>(io: IO, host: &str, path: &str) -> (u16, String)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .expect("http1 handshake");
    tokio::spawn(conn);
    let req = Request::get(path)
        .header("host", host)
        .body(Full::new(Bytes::new()))
        .expect("request");
    let resp = sender.send_request(req).await.expect("response");
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// A TLS 1.2-style ClientHello record built by hand. `version` is the legacy client_version;
/// no supported_versions extension is sent, so that field alone says what is offered.
pub(crate) fn raw_client_hello(version: [u8; 2], sni: &str) -> Vec<u8> {
    fn ext(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
        out.extend_from_slice(&kind.to_be_bytes());
        out.extend_from_slice(&u16::try_from(data.len()).unwrap().to_be_bytes());
        out.extend_from_slice(data);
    }
    let mut exts = Vec::new();
    let mut sni_data = Vec::new();
    let name = sni.as_bytes();
    sni_data.extend_from_slice(&u16::try_from(name.len() + 3).unwrap().to_be_bytes());
    sni_data.push(0);
    sni_data.extend_from_slice(&u16::try_from(name.len()).unwrap().to_be_bytes());
    sni_data.extend_from_slice(name);
    ext(&mut exts, 0x0000, &sni_data);
    ext(&mut exts, 0x000a, &[0x00, 0x04, 0x00, 0x17, 0x00, 0x1d]); // secp256r1, x25519
    ext(&mut exts, 0x000b, &[0x01, 0x00]); // uncompressed points
    ext(&mut exts, 0x000d, &[0x00, 0x04, 0x04, 0x03, 0x08, 0x04]); // ecdsa p256, rsa-pss
    let mut body = Vec::new();
    body.extend_from_slice(&version);
    body.extend_from_slice(&[0x42; 32]); // random
    body.push(0); // session id
    // ECDHE-ECDSA-AES128-GCM-SHA256, ECDHE-ECDSA-AES128-SHA, ECDHE-RSA-AES128-SHA, AES128-SHA
    body.extend_from_slice(&[0x00, 0x08, 0xc0, 0x2b, 0xc0, 0x09, 0xc0, 0x13, 0x00, 0x2f]);
    body.extend_from_slice(&[0x01, 0x00]); // null compression
    body.extend_from_slice(&u16::try_from(exts.len()).unwrap().to_be_bytes());
    body.extend_from_slice(&exts);
    let mut handshake = vec![0x01];
    handshake.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes()[1..]);
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&u16::try_from(handshake.len()).unwrap().to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

/// What a ClientHello offers.
#[derive(Debug, Default)]
pub(crate) struct HelloOffer {
    pub(crate) legacy_version: u16,
    pub(crate) supported_versions: Vec<u16>,
    pub(crate) sni: Option<String>,
    pub(crate) alpn: Vec<Vec<u8>>,
}

/// Parses the first TLS record of a client's first flight as a ClientHello.
pub(crate) fn parse_client_hello(record: &[u8]) -> HelloOffer {
    fn u16_at(b: &[u8], i: usize) -> u16 {
        u16::from_be_bytes([b[i], b[i + 1]])
    }
    assert_eq!(record[0], 0x16, "handshake record");
    let hs = &record[5..];
    assert_eq!(hs[0], 0x01, "ClientHello");
    let body = &hs[4..];
    let mut offer = HelloOffer {
        legacy_version: u16_at(body, 0),
        ..HelloOffer::default()
    };
    let mut i = 2 + 32;
    i += 1 + usize::from(body[i]); // session id
    i += 2 + usize::from(u16_at(body, i)); // cipher suites
    i += 1 + usize::from(body[i]); // compression
    let ext_end = i + 2 + usize::from(u16_at(body, i));
    i += 2;
    while i < ext_end {
        let kind = u16_at(body, i);
        let len = usize::from(u16_at(body, i + 2));
        let data = &body[i + 4..i + 4 + len];
        match kind {
            0x002b => {
                offer.supported_versions = data[1..]
                    .chunks(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]))
                    .collect();
            }
            0x0000 => {
                let name_len = usize::from(u16_at(data, 3));
                offer.sni = Some(String::from_utf8_lossy(&data[5..5 + name_len]).into_owned());
            }
            0x0010 => {
                let mut j = 2;
                while j < data.len() {
                    let l = usize::from(data[j]);
                    offer.alpn.push(data[j + 1..j + 1 + l].to_vec());
                    j += 1 + l;
                }
            }
            _ => {}
        }
        i += 4 + len;
    }
    offer
}

/// The (tag, content) pairs of a DER SEQUENCE's content.
fn der_items(mut bytes: &[u8]) -> Vec<(u8, &[u8])> {
    let mut items = Vec::new();
    while !bytes.is_empty() {
        let tag = bytes[0];
        let (len, header) = match bytes[1] {
            l if l < 0x80 => (usize::from(l), 2),
            0x81 => (usize::from(bytes[2]), 3),
            0x82 => (usize::from(u16::from_be_bytes([bytes[2], bytes[3]])), 4),
            other => panic!("unexpected DER length form {other:#x}"),
        };
        items.push((tag, &bytes[header..header + len]));
        bytes = &bytes[header + len..];
    }
    items
}

/// The raw (tag, bytes) of notBefore and notAfter of a certificate.
pub(crate) fn validity(cert: &[u8]) -> ((u8, Vec<u8>), (u8, Vec<u8>)) {
    let (_, cert_content) = der_items(cert)[0];
    let (_, tbs) = der_items(cert_content)[0];
    let fields = der_items(tbs);
    let at = if fields[0].0 == 0xa0 { 4 } else { 3 };
    let times = der_items(fields[at].1);
    (
        (times[0].0, times[0].1.to_vec()),
        (times[1].0, times[1].1.to_vec()),
    )
}

/// True when `needle` occurs in `haystack`.
pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
