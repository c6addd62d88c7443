//! Tests of the run CA, its leaves and the leaf cache.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};

use super::{DEFAULT_CA_LIFETIME, RunCa};
use crate::tls::TlsError;
use crate::tls::test_support::{contains, host, provider, server_name, validity};

fn verifier(root: &CertificateDer<'static>) -> Arc<WebPkiServerVerifier> {
    let mut roots = RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .unwrap()
}

fn verify_at(
    root: &CertificateDer<'static>,
    leaf: &CertificateDer<'static>,
    name: &str,
    at: SystemTime,
) -> Result<(), rustls::Error> {
    let now = UnixTime::since_unix_epoch(at.duration_since(UNIX_EPOCH).unwrap());
    verifier(root)
        .verify_server_cert(leaf, &[], &server_name(name), &[], now)
        .map(|_| ())
}

fn verify(
    root: &CertificateDer<'static>,
    leaf: &CertificateDer<'static>,
    name: &str,
) -> Result<(), rustls::Error> {
    verify_at(root, leaf, name, SystemTime::now())
}

fn ca(run: &str) -> RunCa {
    RunCa::generate(run, DEFAULT_CA_LIFETIME).unwrap()
}

#[test]
fn leaf_is_valid_for_exactly_its_host() {
    let ca = ca("run-1");
    let leaf = ca.leaf(&host("api.example.test")).unwrap();
    let cert = &leaf.cert[0];
    verify(ca.cert_der(), cert, "api.example.test").unwrap();
    for other in [
        "example.test",
        "x.api.example.test",
        "api.example.test.evil",
        "other.test",
    ] {
        assert!(
            matches!(
                verify(ca.cert_der(), cert, other),
                Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::NotValidForNameContext { .. }
                ))
            ),
            "leaf for api.example.test must not be valid for {other}"
        );
    }
}

#[test]
fn ip_leaf_carries_the_ip_only() {
    let ca = ca("run-1");
    let leaf = ca.leaf(&host("203.0.113.7")).unwrap();
    verify(ca.cert_der(), &leaf.cert[0], "203.0.113.7").unwrap();
    assert!(verify(ca.cert_der(), &leaf.cert[0], "203.0.113.8").is_err());
    let v6 = ca.leaf(&host("[2001:db8::1]")).unwrap();
    verify(ca.cert_der(), &v6.cert[0], "2001:db8::1").unwrap();
    assert!(verify(ca.cert_der(), &v6.cert[0], "2001:db8::2").is_err());
}

#[test]
fn another_runs_ca_does_not_vouch_for_this_runs_leaf() {
    let first = ca("run-1");
    let second = ca("run-2");
    let leaf = first.leaf(&host("api.example.test")).unwrap();
    verify(first.cert_der(), &leaf.cert[0], "api.example.test").unwrap();
    assert!(matches!(
        verify(second.cert_der(), &leaf.cert[0], "api.example.test"),
        Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer
        ))
    ));
    // Two CAs for the same run id are distinct keys too.
    let again = ca("run-1");
    assert!(verify(again.cert_der(), &leaf.cert[0], "api.example.test").is_err());
}

#[test]
fn leaf_validity_is_the_cas_and_ends_with_it() {
    let ca = RunCa::generate("run-1", Duration::from_secs(3600)).unwrap();
    let leaf = ca.leaf(&host("api.example.test")).unwrap();
    let cert = &leaf.cert[0];
    assert_eq!(validity(cert), validity(ca.cert_der()));
    let remaining = ca.not_after().duration_since(SystemTime::now()).unwrap();
    assert!(remaining <= Duration::from_secs(3600) && remaining > Duration::from_secs(3500));
    let backdate = SystemTime::now().duration_since(ca.not_before()).unwrap();
    assert!(backdate >= Duration::from_secs(5 * 60) && backdate <= Duration::from_secs(3600));

    let just_inside = ca.not_after() - Duration::from_secs(5);
    verify_at(ca.cert_der(), cert, "api.example.test", just_inside).unwrap();
    let after = ca.not_after() + Duration::from_secs(5);
    assert!(matches!(
        verify_at(ca.cert_der(), cert, "api.example.test", after),
        Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::ExpiredContext { .. }
        ))
    ));
    let before = ca.not_before() - Duration::from_secs(5);
    assert!(verify_at(ca.cert_der(), cert, "api.example.test", before).is_err());
}

#[test]
fn ca_and_leaf_carry_the_intended_constraints() {
    let ca = ca("run-42");
    let der = ca.cert_der().as_ref();
    assert!(contains(der, b"Paddock run run-42 CA"));
    // basicConstraints (2.5.29.19) critical, CA:TRUE, pathLenConstraint 0.
    assert!(contains(
        der,
        &[
            0x06, 0x03, 0x55, 0x1d, 0x13, 0x01, 0x01, 0xff, 0x04, 0x08, 0x30, 0x06, 0x01, 0x01,
            0xff, 0x02, 0x01, 0x00
        ]
    ));
    // keyUsage (2.5.29.15) critical, keyCertSign only (bit 5).
    assert!(contains(
        der,
        &[
            0x06, 0x03, 0x55, 0x1d, 0x0f, 0x01, 0x01, 0xff, 0x04, 0x04, 0x03, 0x02, 0x02, 0x04
        ]
    ));
    let leaf = ca.leaf(&host("api.example.test")).unwrap();
    let leaf_der = leaf.cert[0].as_ref();
    // basicConstraints present with CA:FALSE (an empty SEQUENCE).
    assert!(contains(leaf_der, &[0x06, 0x03, 0x55, 0x1d, 0x13]));
    assert!(!contains(
        leaf_der,
        &[0x30, 0x06, 0x01, 0x01, 0xff, 0x02, 0x01]
    ));
    assert!(!contains(leaf_der, &[0x30, 0x03, 0x01, 0x01, 0xff]));
    // extendedKeyUsage serverAuth (1.3.6.1.5.5.7.3.1).
    assert!(contains(
        leaf_der,
        &[0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01]
    ));
}

#[test]
fn cert_pem_is_the_ca_certificate_and_nothing_secret() {
    let ca = ca("run-1");
    let pem = ca.cert_pem();
    assert!(!pem.contains("PRIVATE"));
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(certs.len(), 1);
    assert_eq!(&certs[0], ca.cert_der());
    let debug = format!("{ca:?}");
    assert!(debug.contains("run-1"));
    assert!(!debug.contains("PRIVATE") && !debug.contains("BEGIN"));
}

#[test]
fn run_id_and_lifetime_are_checked() {
    for bad in ["", "a b", "../x", "run/1", "ünï", &"x".repeat(65), "a\nb"] {
        assert!(
            matches!(
                RunCa::generate(bad, DEFAULT_CA_LIFETIME),
                Err(TlsError::InvalidRunId(_))
            ),
            "{bad:?} accepted"
        );
    }
    RunCa::generate("run-01HX.a_b", DEFAULT_CA_LIFETIME).unwrap();
    RunCa::generate(&"x".repeat(64), DEFAULT_CA_LIFETIME).unwrap();
    for bad in [Duration::from_secs(59), Duration::from_secs(31 * 24 * 3600)] {
        assert!(matches!(
            RunCa::generate("run-1", bad),
            Err(TlsError::InvalidLifetime { .. })
        ));
    }
    RunCa::generate("run-1", Duration::from_secs(60)).unwrap();
    RunCa::generate("run-1", Duration::from_secs(30 * 24 * 3600)).unwrap();
}

#[test]
fn long_host_names_get_a_san_without_common_name() {
    let ca = ca("run-1");
    let long = format!("{}.{}.test", "a".repeat(63), "b".repeat(40));
    let leaf = ca.leaf(&host(&long)).unwrap();
    verify(ca.cert_der(), &leaf.cert[0], &long).unwrap();
}

#[test]
fn cache_returns_the_same_leaf_per_host() {
    let ca = ca("run-1");
    let a = ca.leaf(&host("a.test")).unwrap();
    let a_again = ca.leaf(&host("A.test.")).unwrap();
    assert!(Arc::ptr_eq(&a, &a_again));
    let b = ca.leaf(&host("b.test")).unwrap();
    assert!(!Arc::ptr_eq(&a, &b));
    assert_ne!(a.cert[0], b.cert[0]);
    assert_eq!(ca.cached_leaves(), 2);
}

#[test]
fn cache_stays_bounded_and_keeps_recently_used_leaves() {
    let ca = RunCa::generate_with_cache("run-1", DEFAULT_CA_LIFETIME, 4).unwrap();
    let hot = ca.leaf(&host("hot.test")).unwrap();
    let cold = ca.leaf(&host("cold.test")).unwrap();
    for i in 0..20 {
        ca.leaf(&host(&format!("h{i}.test"))).unwrap();
        // Keep "hot" recently used.
        assert!(Arc::ptr_eq(&hot, &ca.leaf(&host("hot.test")).unwrap()));
        assert!(ca.cached_leaves() <= 4);
    }
    assert_eq!(ca.cached_leaves(), 4);
    assert_eq!(ca.leaf_cache_capacity(), 4);
    // "cold" was evicted: asking again mints a new leaf.
    assert!(!Arc::ptr_eq(&cold, &ca.leaf(&host("cold.test")).unwrap()));
}

#[test]
fn concurrent_first_requests_end_with_one_leaf() {
    let ca = Arc::new(ca("run-1"));
    let leaves: Vec<_> = (0..8)
        .map(|_| {
            let ca = Arc::clone(&ca);
            std::thread::spawn(move || ca.leaf(&host("race.test")).unwrap())
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    let cached = ca.leaf(&host("race.test")).unwrap();
    for leaf in &leaves {
        assert!(Arc::ptr_eq(leaf, &cached));
    }
    assert_eq!(ca.cached_leaves(), 1);
}
