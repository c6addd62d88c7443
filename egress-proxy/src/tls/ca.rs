//! The per-run certificate authority: generated in memory, mints and caches leaves per host.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use paddock_policy::Host;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use super::error::TlsError;
use super::leaf_cache::{DEFAULT_LEAF_CACHE_CAPACITY, LeafCache};

/// Shortest CA lifetime accepted.
pub const MIN_CA_LIFETIME: Duration = Duration::from_secs(60);
/// Longest CA lifetime accepted: a run CA is a short-lived credential.
pub const MAX_CA_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
/// Lifetime used when the run does not ask for another: longer than a run may last.
pub const DEFAULT_CA_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// `notBefore` is set this far in the past so a client whose clock is slightly behind accepts
/// the certificates from the first second.
const BACKDATE: Duration = Duration::from_secs(10 * 60);
/// Longest run id put into the CA's name.
const MAX_RUN_ID_LEN: usize = 64;
/// X.520 upper bound of a common name; longer host names go into the SAN only.
const MAX_COMMON_NAME_LEN: usize = 64;

/// A run's own CA. The private key exists only in this value's memory: it is never written,
/// logged, or exported. Leaves are minted on demand for the exact host and cached.
pub struct RunCa {
    run_id: String,
    issuer: Issuer<'static, KeyPair>,
    cert_der: CertificateDer<'static>,
    cert_pem: String,
    not_before: SystemTime,
    not_after: SystemTime,
    provider: Arc<CryptoProvider>,
    leaves: LeafCache,
}

impl fmt::Debug for RunCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunCa")
            .field("run_id", &self.run_id)
            .field("not_after", &self.not_after)
            .field("cached_leaves", &self.leaves.len())
            .finish_non_exhaustive()
    }
}

impl RunCa {
    /// Generates a CA for `run_id` valid from now (backdated a few minutes) for `lifetime`,
    /// with the default leaf cache size.
    pub fn generate(run_id: &str, lifetime: Duration) -> Result<RunCa, TlsError> {
        RunCa::generate_with_cache(run_id, lifetime, DEFAULT_LEAF_CACHE_CAPACITY)
    }

    /// Like [`RunCa::generate`], holding at most `leaf_cache_capacity` leaves (at least one).
    ///
    /// The CA certificate: ECDSA P-256, CN "Paddock run <run id> CA", basic constraints
    /// CA:true with path length 0 (it can sign leaves, never another CA), key usage
    /// keyCertSign only, extended key usage serverAuth only.
    pub fn generate_with_cache(
        run_id: &str,
        lifetime: Duration,
        leaf_cache_capacity: usize,
    ) -> Result<RunCa, TlsError> {
        check_run_id(run_id)?;
        if !(MIN_CA_LIFETIME..=MAX_CA_LIFETIME).contains(&lifetime) {
            return Err(TlsError::InvalidLifetime {
                secs: lifetime.as_secs(),
                min: MIN_CA_LIFETIME.as_secs(),
                max: MAX_CA_LIFETIME.as_secs(),
            });
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let now = SystemTime::now();
        let not_before = now.checked_sub(BACKDATE).ok_or(TlsError::Clock)?;
        let not_after = now.checked_add(lifetime).ok_or(TlsError::Clock)?;

        let ca_error = |source| TlsError::CaGenerate {
            run_id: run_id.to_owned(),
            source,
        };
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::OrganizationName, "Paddock");
        name.push(DnType::CommonName, format!("Paddock run {run_id} CA"));
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        set_validity(&mut params, not_before, not_after)?;
        params.serial_number = Some(random_serial(&provider)?);
        let key = KeyPair::generate().map_err(ca_error)?;
        let cert = params.self_signed(&key).map_err(ca_error)?;
        let cert_pem = cert.pem();
        let cert_der = cert.der().clone();
        tracing::debug!(run_id, lifetime_secs = lifetime.as_secs(), "run CA created");
        Ok(RunCa {
            run_id: run_id.to_owned(),
            issuer: Issuer::new(params, key),
            cert_der,
            cert_pem,
            not_before,
            not_after,
            provider,
            leaves: LeafCache::new(leaf_cache_capacity),
        })
    }

    /// The CA certificate in PEM, for the sandbox's trust file. Public data.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate in DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The run this CA belongs to.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Start of validity of the CA and of every leaf it mints (backdated).
    pub fn not_before(&self) -> SystemTime {
        self.not_before
    }

    /// End of validity of the CA and of every leaf it mints: a run that outlives its CA fails
    /// closed (clients reject the expired certificates).
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// The crypto provider (ring) this CA and its configurations use.
    pub(crate) fn provider(&self) -> &Arc<CryptoProvider> {
        &self.provider
    }

    /// The leaf for exactly `host`, from the cache or minted now. Concurrent first requests
    /// for one host may each mint, but all of them get the one leaf that entered the cache.
    pub fn leaf(&self, host: &Host) -> Result<Arc<CertifiedKey>, TlsError> {
        if let Some(leaf) = self.leaves.get(host) {
            return Ok(leaf);
        }
        let minted = Arc::new(self.mint(host)?);
        Ok(self.leaves.insert(host, minted))
    }

    /// Number of leaves in the cache.
    pub fn cached_leaves(&self) -> usize {
        self.leaves.len()
    }

    /// The most leaves the cache holds.
    pub fn leaf_cache_capacity(&self) -> usize {
        self.leaves.capacity()
    }

    /// Mints a fresh leaf for `host` without touching the cache (benchmarks measure this).
    pub fn mint(&self, host: &Host) -> Result<CertifiedKey, TlsError> {
        let host_text = host.to_string();
        let mint_error = |source| TlsError::LeafMint {
            host: host_text.clone(),
            source,
        };
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::OrganizationName, "Paddock interception");
        let (san, common_name) = match host {
            Host::Name(dns) => (
                SanType::DnsName(dns.as_str().try_into().map_err(mint_error)?),
                dns.as_str().to_owned(),
            ),
            Host::Ip(ip) => (SanType::IpAddress(*ip), ip.to_string()),
        };
        if common_name.len() <= MAX_COMMON_NAME_LEN {
            name.push(DnType::CommonName, common_name);
        }
        params.distinguished_name = name;
        params.subject_alt_names = vec![san];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params, self.not_before, self.not_after)?;
        params.serial_number = Some(random_serial(&self.provider)?);
        let key = KeyPair::generate().map_err(mint_error)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(mint_error)?;
        let key_der = PrivateKeyDer::from(key);
        let signing_key = self
            .provider
            .key_provider
            .load_private_key(key_der)
            .map_err(|source| TlsError::LeafKey {
                host: host_text.clone(),
                source,
            })?;
        tracing::debug!(run_id = %self.run_id, host = %host_text, "leaf certificate minted");
        Ok(CertifiedKey::new(vec![cert.der().clone()], signing_key))
    }
}

fn check_run_id(run_id: &str) -> Result<(), TlsError> {
    if run_id.is_empty() {
        return Err(TlsError::InvalidRunId("it is empty"));
    }
    if run_id.len() > MAX_RUN_ID_LEN {
        return Err(TlsError::InvalidRunId("it is longer than 64 bytes"));
    }
    if !run_id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(TlsError::InvalidRunId(
            "only ASCII letters, digits, '-', '_' and '.' are accepted",
        ));
    }
    Ok(())
}

/// 16 random bytes, top bit clear so the DER integer stays positive and ≤ 20 bytes.
fn random_serial(provider: &CryptoProvider) -> Result<SerialNumber, TlsError> {
    let mut bytes = [0u8; 16];
    provider
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| TlsError::Random)?;
    bytes[0] = (bytes[0] & 0x7f).max(1);
    Ok(SerialNumber::from_slice(&bytes))
}

/// Sets the validity window. rcgen stores dates as the `time` crate's type; it is reached as
/// rcgen's epoch date plus the elapsed whole seconds, so no direct `time` dependency is needed.
fn set_validity(
    params: &mut CertificateParams,
    not_before: SystemTime,
    not_after: SystemTime,
) -> Result<(), TlsError> {
    let secs = |t: SystemTime| {
        t.duration_since(UNIX_EPOCH)
            .map(|d| Duration::from_secs(d.as_secs()))
            .map_err(|_| TlsError::Clock)
    };
    params.not_before = rcgen::date_time_ymd(1970, 1, 1) + secs(not_before)?;
    params.not_after = rcgen::date_time_ymd(1970, 1, 1) + secs(not_after)?;
    Ok(())
}

#[cfg(test)]
#[path = "ca_tests.rs"]
mod tests;
