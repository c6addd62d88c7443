//! Configuration: one TOML file plus `PADDOCK_*` overrides, validated at start (fail closed).

pub mod runner;
pub mod vault;

pub use runner::{
    AgentConfig, AgentCredential, BUILTIN_AGENTS, DEFAULT_UID_FIRST, EgressConfig, RunnerConfig,
};
pub use vault::VaultConfig;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use serde::Deserialize;

/// Where `PADDOCK_*` overrides come from. The binary reads the process environment; tests pass a map.
/// Nothing in Paddock mutates the process environment.
pub trait Strings {
    /// The value of `key`, if set.
    fn get(&self, key: &str) -> Option<String>;
}

/// The process environment, read-only.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessEnv;

impl Strings for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
}

impl Strings for HashMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        HashMap::get(self, key).cloned()
    }
}

/// A config problem, always naming the key it is about.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file is not valid TOML or has an unknown/mistyped key: {0}")]
    Parse(String),
    #[error("config key `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

/// Minimum length of `session_secret` in bytes.
pub const MIN_SECRET_LEN: usize = 32;

/// Secrets that appear in examples and must never protect a real deployment.
const KNOWN_DEFAULT_SECRETS: &[&str] = &[
    "change-me",
    "changeme",
    "secret",
    "paddock",
    "change-me-change-me-change-me-change-me",
    "0123456789abcdef0123456789abcdef",
    "00000000000000000000000000000000",
];

/// Feedback ingress settings (`[feedback]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeedbackConfig {
    /// Name of the workspace where feedback issues land.
    pub workspace: String,
    /// Whether `POST /api/v1/feedback` is served at all.
    pub enabled: bool,
    /// Requests per minute per client address; 0 turns the limit off.
    pub rate_limit_per_minute: u32,
    /// When set, every feedback post must carry a valid `X-Request-Signature`.
    pub hmac_secret: Option<String>,
    /// Allowed clock skew for signed requests, seconds.
    pub signature_window_secs: u64,
}

impl Default for FeedbackConfig {
    fn default() -> Self {
        Self {
            workspace: "default".into(),
            enabled: true,
            rate_limit_per_minute: 10,
            hmac_secret: None,
            signature_window_secs: 300,
        }
    }
}

/// HTTP edge settings (`[http]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Exact origins allowed by CORS (`https://board.example.com`). Empty: no cross-origin access.
    pub cors_origins: Vec<String>,
    /// Header set by a trusted reverse proxy with the client address (e.g. `X-Forwarded-For`).
    pub trusted_proxy_header: Option<String>,
    /// Peer addresses (CIDR) whose `trusted_proxy_header` is believed. Anyone else's is ignored.
    pub trusted_proxies: Vec<String>,
    /// Largest request body accepted on JSON endpoints, bytes.
    pub max_body_bytes: usize,
    /// Most client connections open at once; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// A connection with no read or write progress for this long is closed, seconds.
    pub idle_timeout_secs: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            cors_origins: Vec::new(),
            trusted_proxy_header: None,
            trusted_proxies: Vec::new(),
            max_body_bytes: 64 * 1024,
            max_connections: 4096,
            idle_timeout_secs: 30,
        }
    }
}

/// Rate limits per endpoint category (`[rate_limit]`), requests per minute per client; 0 = off.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Master switch; off disables every category including feedback.
    pub enabled: bool,
    /// Login and other credential-checking endpoints.
    pub auth_per_minute: u32,
    /// Authenticated API calls.
    pub api_per_minute: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            auth_per_minute: 10,
            api_per_minute: 600,
        }
    }
}

/// Claim and lease settings (`[claim]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClaimConfig {
    /// Lease length granted by a claim or heartbeat, seconds.
    pub lease_secs: u64,
    /// Claims after which an expiring lease blocks the issue instead of returning it to todo.
    pub max_attempts: i64,
    /// How often the reaper looks for expired leases, seconds.
    pub reaper_interval_secs: u64,
}

impl Default for ClaimConfig {
    fn default() -> Self {
        Self {
            lease_secs: 300,
            max_attempts: 3,
            reaper_interval_secs: 15,
        }
    }
}

/// The file as written. Unknown keys are errors so a typo never silently weakens a setting.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    public_url: Option<String>,
    database_url: Option<String>,
    session_secret: Option<String>,
    env: Option<String>,
    #[serde(default)]
    feedback: FeedbackConfig,
    #[serde(default)]
    http: HttpConfig,
    #[serde(default)]
    rate_limit: RateLimitConfig,
    #[serde(default)]
    claim: ClaimConfig,
    #[serde(default)]
    vault: vault::RawVault,
    #[serde(default)]
    runner: runner::RawRunner,
}

/// Validated configuration.
#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub public_url: String,
    pub database_url: String,
    pub session_secret: String,
    pub production: bool,
    pub feedback: FeedbackConfig,
    pub http: HttpConfig,
    pub rate_limit: RateLimitConfig,
    pub claim: ClaimConfig,
    /// `[vault]`: the key ring sealing stored secrets.
    pub vault: VaultConfig,
    /// `[runner]`: the opt-in worker loop and its agents.
    pub runner: RunnerConfig,
    /// Parsed `http.trusted_proxies`.
    pub trusted_proxies: Vec<(IpAddr, u8)>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("public_url", &self.public_url)
            .field("database_url", &redact_url(&self.database_url))
            .field("session_secret", &"<redacted>")
            .field("production", &self.production)
            .field("vault", &self.vault)
            .field("runner", &self.runner)
            .finish_non_exhaustive()
    }
}

/// A database URL with any password replaced, for logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}://{}:<redacted>@{}", &url[..s], user, &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

impl Config {
    /// Reads `path` (if given) and applies overrides from `env`.
    pub fn load(path: Option<&Path>, env: &dyn Strings) -> Result<Config, ConfigError> {
        let text = match path {
            Some(p) => std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                path: p.display().to_string(),
                source,
            })?,
            None => String::new(),
        };
        Self::from_toml(&text, env)
    }

    /// Parses TOML text and applies overrides from `env`.
    pub fn from_toml(text: &str, env: &dyn Strings) -> Result<Config, ConfigError> {
        let mut raw: RawConfig =
            toml::from_str(text).map_err(|e| ConfigError::Parse(e.message().to_string()))?;
        apply_env(&mut raw, env)?;
        validate(raw)
    }
}

fn parse_bool(key: &'static str, v: &str) -> Result<bool, ConfigError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(invalid(key, "expected true or false")),
    }
}

fn parse_num<T: std::str::FromStr>(key: &'static str, v: &str) -> Result<T, ConfigError> {
    v.trim()
        .parse()
        .map_err(|_| invalid(key, "expected a non-negative whole number"))
}

fn split_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// Environment overrides; each names exactly one config key.
fn apply_env(raw: &mut RawConfig, env: &dyn Strings) -> Result<(), ConfigError> {
    if let Some(v) = env.get("PADDOCK_LISTEN") {
        raw.listen = Some(v);
    }
    if let Some(v) = env.get("PADDOCK_PUBLIC_URL") {
        raw.public_url = Some(v);
    }
    if let Some(v) = env.get("PADDOCK_DATABASE_URL") {
        raw.database_url = Some(v);
    }
    if let Some(v) = env.get("PADDOCK_SESSION_SECRET") {
        raw.session_secret = Some(v);
    }
    if let Some(v) = env.get("PADDOCK_ENV") {
        raw.env = Some(v);
    }
    if let Some(v) = env.get("PADDOCK_FEEDBACK_WORKSPACE") {
        raw.feedback.workspace = v;
    }
    if let Some(v) = env.get("PADDOCK_FEEDBACK_ENABLED") {
        raw.feedback.enabled = parse_bool("PADDOCK_FEEDBACK_ENABLED", &v)?;
    }
    if let Some(v) = env.get("PADDOCK_FEEDBACK_RATE_LIMIT_PER_MINUTE") {
        raw.feedback.rate_limit_per_minute =
            parse_num("PADDOCK_FEEDBACK_RATE_LIMIT_PER_MINUTE", &v)?;
    }
    if let Some(v) = env.get("PADDOCK_FEEDBACK_HMAC_SECRET") {
        raw.feedback.hmac_secret = Some(v);
    }
    if let Some(v) = env.get("PADDOCK_FEEDBACK_SIGNATURE_WINDOW_SECS") {
        raw.feedback.signature_window_secs =
            parse_num("PADDOCK_FEEDBACK_SIGNATURE_WINDOW_SECS", &v)?;
    }
    if let Some(v) = env.get("PADDOCK_HTTP_CORS_ORIGINS") {
        raw.http.cors_origins = split_list(&v);
    }
    if let Some(v) = env.get("PADDOCK_HTTP_TRUSTED_PROXY_HEADER") {
        raw.http.trusted_proxy_header = Some(v);
    }
    if let Some(v) = env.get("PADDOCK_HTTP_TRUSTED_PROXIES") {
        raw.http.trusted_proxies = split_list(&v);
    }
    if let Some(v) = env.get("PADDOCK_HTTP_MAX_BODY_BYTES") {
        raw.http.max_body_bytes = parse_num("PADDOCK_HTTP_MAX_BODY_BYTES", &v)?;
    }
    if let Some(v) = env.get("PADDOCK_HTTP_MAX_CONNECTIONS") {
        raw.http.max_connections = parse_num("PADDOCK_HTTP_MAX_CONNECTIONS", &v)?;
    }
    if let Some(v) = env.get("PADDOCK_HTTP_IDLE_TIMEOUT_SECS") {
        raw.http.idle_timeout_secs = parse_num("PADDOCK_HTTP_IDLE_TIMEOUT_SECS", &v)?;
    }
    if let Some(v) = env.get("PADDOCK_RATE_LIMIT_ENABLED") {
        raw.rate_limit.enabled = parse_bool("PADDOCK_RATE_LIMIT_ENABLED", &v)?;
    }
    if let Some(v) = env.get("PADDOCK_RATE_LIMIT_AUTH_PER_MINUTE") {
        raw.rate_limit.auth_per_minute = parse_num("PADDOCK_RATE_LIMIT_AUTH_PER_MINUTE", &v)?;
    }
    if let Some(v) = env.get("PADDOCK_RATE_LIMIT_API_PER_MINUTE") {
        raw.rate_limit.api_per_minute = parse_num("PADDOCK_RATE_LIMIT_API_PER_MINUTE", &v)?;
    }
    if let Some(v) = env.get("PADDOCK_CLAIM_LEASE_SECS") {
        raw.claim.lease_secs = parse_num("PADDOCK_CLAIM_LEASE_SECS", &v)?;
    }
    if let Some(v) = env.get("PADDOCK_CLAIM_MAX_ATTEMPTS") {
        raw.claim.max_attempts = parse_num("PADDOCK_CLAIM_MAX_ATTEMPTS", &v)?;
    }
    if let Some(v) = env.get("PADDOCK_CLAIM_REAPER_INTERVAL_SECS") {
        raw.claim.reaper_interval_secs = parse_num("PADDOCK_CLAIM_REAPER_INTERVAL_SECS", &v)?;
    }
    vault::apply_env(&mut raw.vault, env);
    runner::apply_env(&mut raw.runner, env)?;
    Ok(())
}

/// Parses `a.b.c.d/n` or a bare address into (network, prefix length).
pub fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let ip: IpAddr = addr.trim().parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match len {
        Some(l) => l.trim().parse::<u8>().ok().filter(|l| *l <= max)?,
        None => max,
    };
    Some((ip, len))
}

/// Whether `ip` is inside the network `(net, len)`.
pub fn cidr_contains(net: (IpAddr, u8), ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    match (net.0, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = if net.1 == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(net.1))
            };
            (u32::from(n) & mask) == (u32::from(a) & mask)
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = if net.1 == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(net.1))
            };
            (u128::from(n) & mask) == (u128::from(a) & mask)
        }
        _ => false,
    }
}

fn looks_weak(secret: &str) -> bool {
    let lower = secret.to_ascii_lowercase();
    if KNOWN_DEFAULT_SECRETS.iter().any(|d| lower == *d)
        || lower.contains("change-me")
        || lower.contains("changeme")
    {
        return true;
    }
    let mut distinct: Vec<u8> = secret.bytes().collect();
    distinct.sort_unstable();
    distinct.dedup();
    distinct.len() < 8
}

fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
    let production = match raw.env.as_deref().map(str::trim) {
        None | Some("") | Some("development") | Some("dev") | Some("test") => false,
        Some("production") | Some("prod") => true,
        Some(_) => return Err(invalid("env", "expected `production` or `development`")),
    };
    let listen_raw = raw.listen.unwrap_or_else(|| "127.0.0.1:8080".into());
    let listen: SocketAddr = listen_raw
        .trim()
        .parse()
        .map_err(|_| invalid("listen", "expected an address like 127.0.0.1:8080"))?;
    let public_url = raw.public_url.unwrap_or_else(|| format!("http://{listen}"));
    let public_url = public_url.trim().trim_end_matches('/').to_string();
    if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
        return Err(invalid("public_url", "must start with http:// or https://"));
    }
    if production && !public_url.starts_with("https://") {
        return Err(invalid(
            "public_url",
            "must be https:// in production (session cookies need Secure)",
        ));
    }
    let database_url = raw
        .database_url
        .ok_or_else(|| invalid("database_url", "is required"))?;
    if !(database_url.starts_with("sqlite:")
        || database_url.starts_with("postgres://")
        || database_url.starts_with("postgresql://"))
    {
        return Err(invalid(
            "database_url",
            "must start with sqlite: or postgres://",
        ));
    }
    let session_secret = raw
        .session_secret
        .ok_or_else(|| invalid("session_secret", "is required"))?;
    if session_secret.len() < MIN_SECRET_LEN {
        return Err(invalid(
            "session_secret",
            format!("must be at least {MIN_SECRET_LEN} bytes"),
        ));
    }
    if production && looks_weak(&session_secret) {
        return Err(invalid(
            "session_secret",
            "is a default or low-entropy value; generate a random one",
        ));
    }
    let feedback = raw.feedback;
    if feedback.workspace.trim().is_empty() {
        return Err(invalid("feedback.workspace", "must not be empty"));
    }
    if let Some(s) = &feedback.hmac_secret {
        if s.len() < MIN_SECRET_LEN {
            return Err(invalid(
                "feedback.hmac_secret",
                format!("must be at least {MIN_SECRET_LEN} bytes"),
            ));
        }
        if production && looks_weak(s) {
            return Err(invalid(
                "feedback.hmac_secret",
                "is a default or low-entropy value",
            ));
        }
    }
    if feedback.signature_window_secs == 0 || feedback.signature_window_secs > 3600 {
        return Err(invalid(
            "feedback.signature_window_secs",
            "must be between 1 and 3600",
        ));
    }
    let http = raw.http;
    for o in &http.cors_origins {
        if o == "*" || o.contains('*') {
            return Err(invalid(
                "http.cors_origins",
                "wildcard origins are not allowed; list exact origins",
            ));
        }
        if !(o.starts_with("http://") || o.starts_with("https://")) || o.ends_with('/') {
            return Err(invalid(
                "http.cors_origins",
                "each origin must be scheme://host[:port] without a path",
            ));
        }
        if production && o.starts_with("http://") {
            return Err(invalid(
                "http.cors_origins",
                "plain http origins are not allowed in production",
            ));
        }
    }
    let mut trusted_proxies = Vec::new();
    for p in &http.trusted_proxies {
        trusted_proxies.push(parse_cidr(p).ok_or_else(|| {
            invalid(
                "http.trusted_proxies",
                format!("`{p}` is not an address or CIDR"),
            )
        })?);
    }
    if let Some(h) = &http.trusted_proxy_header {
        if h.is_empty()
            || !h
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(invalid(
                "http.trusted_proxy_header",
                "must be a header name",
            ));
        }
        if trusted_proxies.is_empty() {
            return Err(invalid(
                "http.trusted_proxies",
                "must list the reverse proxy addresses when trusted_proxy_header is set",
            ));
        }
        if trusted_proxies.iter().any(|(_, len)| *len == 0) && production {
            return Err(invalid(
                "http.trusted_proxies",
                "0.0.0.0/0 would let any client forge its address",
            ));
        }
    }
    if http.max_body_bytes < 1024 || http.max_body_bytes > 16 * 1024 * 1024 {
        return Err(invalid(
            "http.max_body_bytes",
            "must be between 1024 and 16777216",
        ));
    }
    if http.max_connections == 0 || http.max_connections > 1_000_000 {
        return Err(invalid(
            "http.max_connections",
            "must be between 1 and 1000000",
        ));
    }
    if http.idle_timeout_secs == 0 || http.idle_timeout_secs > 3600 {
        return Err(invalid(
            "http.idle_timeout_secs",
            "must be between 1 and 3600",
        ));
    }
    let rate_limit = raw.rate_limit;
    if production && !rate_limit.enabled {
        return Err(invalid("rate_limit.enabled", "must be true in production"));
    }
    let claim = raw.claim;
    if claim.lease_secs == 0 || claim.lease_secs > 86_400 {
        return Err(invalid("claim.lease_secs", "must be between 1 and 86400"));
    }
    if claim.max_attempts < 1 || claim.max_attempts > 1000 {
        return Err(invalid("claim.max_attempts", "must be between 1 and 1000"));
    }
    if claim.reaper_interval_secs == 0 || claim.reaper_interval_secs > 3600 {
        return Err(invalid(
            "claim.reaper_interval_secs",
            "must be between 1 and 3600",
        ));
    }
    let vault = vault::validate(raw.vault, production)?;
    let runner = runner::validate(raw.runner, production)?;
    Ok(Config {
        listen,
        public_url,
        database_url,
        session_secret,
        production,
        feedback,
        http,
        rate_limit,
        claim,
        vault,
        runner,
        trusted_proxies,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
listen = "127.0.0.1:8080"
public_url = "http://127.0.0.1:8080"
database_url = "sqlite:///tmp/x/paddock.db"
session_secret = "k3J9xQ2vL8mN4pR7sT1wY6zA0bC5dE8f"
[feedback]
workspace = "default"
"#;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    fn err_of(text: &str, e: &[(&str, &str)]) -> String {
        match Config::from_toml(text, &env(e)) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn contract_file_parses() {
        let c = Config::from_toml(GOOD, &env(&[])).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.feedback.workspace, "default");
        assert!(!c.production);
    }

    #[test]
    fn env_overrides_file() {
        let c = Config::from_toml(
            GOOD,
            &env(&[
                ("PADDOCK_LISTEN", "127.0.0.1:9999"),
                ("PADDOCK_FEEDBACK_WORKSPACE", "fb"),
            ]),
        )
        .unwrap();
        assert_eq!(c.listen.port(), 9999);
        assert_eq!(c.feedback.workspace, "fb");
    }

    #[test]
    fn errors_name_the_key() {
        assert!(err_of("listen = \"nope\"", &[]).contains("`listen`"));
        let no_secret = GOOD.replace("session_secret", "#");
        assert!(err_of(&no_secret, &[]).contains("`session_secret`"));
        assert!(err_of(GOOD, &[("PADDOCK_SESSION_SECRET", "short")]).contains("`session_secret`"));
        assert!(
            err_of(GOOD, &[("PADDOCK_CLAIM_LEASE_SECS", "x")]).contains("PADDOCK_CLAIM_LEASE_SECS")
        );
        assert!(err_of(&format!("{GOOD}\nbogus = 1"), &[]).contains("bogus"));
    }

    #[test]
    fn secret_never_in_debug_or_errors() {
        let c = Config::from_toml(GOOD, &env(&[])).unwrap();
        assert!(!format!("{c:?}").contains("k3J9xQ2v"));
        assert_eq!(
            redact_url("postgres://u:pw@h/db"),
            "postgres://u:<redacted>@h/db"
        );
    }

    #[test]
    fn production_rejects_unsafe_settings_and_accepts_safe_ones() {
        let prod = [
            ("PADDOCK_ENV", "production"),
            ("PADDOCK_PUBLIC_URL", "https://paddock.example"),
            ("PADDOCK_VAULT_KEYS", TEST_KEY),
        ];
        // the safe neighbour passes
        let ok = Config::from_toml(GOOD, &env(&prod)).unwrap();
        assert!(ok.production);
        // http public url
        assert!(err_of(GOOD, &[("PADDOCK_ENV", "production")]).contains("`public_url`"));
        // default secret (long enough but weak)
        let mut e = prod.to_vec();
        e.push((
            "PADDOCK_SESSION_SECRET",
            "change-me-change-me-change-me-change-me",
        ));
        assert!(err_of(GOOD, &e).contains("`session_secret`"));
        let mut e = prod.to_vec();
        e.push((
            "PADDOCK_SESSION_SECRET",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ));
        assert!(err_of(GOOD, &e).contains("`session_secret`"));
        // no vault key ring, or a development key file
        assert!(err_of(GOOD, &prod[..2]).contains("`vault.keys`"));
        let mut e = prod.to_vec();
        e.push(("PADDOCK_VAULT_KEY_FILE", "/var/lib/paddock/vault.key"));
        assert!(err_of(GOOD, &e).contains("`vault.key_file`"));
        // local repositories
        let mut e = prod.to_vec();
        e.push(("PADDOCK_RUNNER_ALLOW_LOCAL_REPOS", "1"));
        assert!(err_of(GOOD, &e).contains("`runner.allow_local_repos`"));
        // rate limiting off
        let mut e = prod.to_vec();
        e.push(("PADDOCK_RATE_LIMIT_ENABLED", "false"));
        assert!(err_of(GOOD, &e).contains("rate_limit.enabled"));
        // outside production the same secret is accepted (length still enforced)
        assert!(
            Config::from_toml(
                GOOD,
                &env(&[(
                    "PADDOCK_SESSION_SECRET",
                    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                )])
            )
            .is_ok()
        );
    }

    #[test]
    fn wildcard_cors_is_rejected_exact_origin_accepted() {
        assert!(err_of(GOOD, &[("PADDOCK_HTTP_CORS_ORIGINS", "*")]).contains("http.cors_origins"));
        assert!(
            err_of(
                GOOD,
                &[("PADDOCK_HTTP_CORS_ORIGINS", "https://*.example.com")]
            )
            .contains("http.cors_origins")
        );
        let c = Config::from_toml(
            GOOD,
            &env(&[("PADDOCK_HTTP_CORS_ORIGINS", "https://board.example.com")]),
        )
        .unwrap();
        assert_eq!(
            c.http.cors_origins,
            vec!["https://board.example.com".to_string()]
        );
    }

    #[test]
    fn trusted_header_needs_proxies() {
        assert!(
            err_of(
                GOOD,
                &[("PADDOCK_HTTP_TRUSTED_PROXY_HEADER", "X-Forwarded-For")]
            )
            .contains("http.trusted_proxies")
        );
        let c = Config::from_toml(
            GOOD,
            &env(&[
                ("PADDOCK_HTTP_TRUSTED_PROXY_HEADER", "X-Forwarded-For"),
                ("PADDOCK_HTTP_TRUSTED_PROXIES", "127.0.0.1/32"),
            ]),
        )
        .unwrap();
        assert_eq!(c.trusted_proxies.len(), 1);
    }

    const TEST_KEY: &str = "1:qL3mZ7k9X2vB8nW4cT6yR1pQ5sD0fG3hJ7kL9zX2cV4=";

    #[test]
    fn vault_keys_parse_and_never_show() {
        let c = Config::from_toml(
            &format!("{GOOD}\n[vault]\nkeys = [\"{TEST_KEY}\"]\n"),
            &env(&[]),
        )
        .unwrap();
        assert_eq!(c.vault.keys.as_ref().unwrap().versions(), vec![1]);
        assert!(!format!("{c:?}").contains("qL3mZ7k9"));
        let two = format!(
            "{TEST_KEY}, 2:{}",
            "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWo="
        );
        let c = Config::from_toml(GOOD, &env(&[("PADDOCK_VAULT_KEYS", &two)])).unwrap();
        assert_eq!(c.vault.keys.unwrap().current_version().unwrap(), 2);
        let e = err_of(GOOD, &[("PADDOCK_VAULT_KEYS", "1:c2hvcnQ=")]);
        assert!(e.contains("`vault.keys`") && !e.contains("c2hvcnQ"), "{e}");
        assert!(err_of(GOOD, &[("PADDOCK_VAULT_KEY_FILE", "rel/k")]).contains("vault.key_file"));
        // outside production, no keys is fine (a development key file or ephemeral key is used)
        assert!(
            Config::from_toml(GOOD, &env(&[]))
                .unwrap()
                .vault
                .keys
                .is_none()
        );
    }

    const AGENT: &str = r#"
[runner]
enabled = true
name = "box-1"
concurrency = 4
default_agent = "claude"
[runner.agents.claude]
image = "paddock/agent-claude:1"
command = ["claude", "-p", "@{task_file}", "--permission-mode", "acceptEdits"]
env = { ANTHROPIC_API_KEY = "{handle:anthropic}" }
write_hosts = ["api.anthropic.com"]
credentials = [{ name = "anthropic", secret = "anthropic-key", hosts = ["api.anthropic.com"], headers = ["x-api-key"] }]
timeout_secs = 600
max_tokens = 100000
max_requests = 500
"#;

    #[test]
    fn runner_defaults_and_overrides() {
        let c = Config::from_toml(GOOD, &env(&[])).unwrap();
        let r = &c.runner;
        assert!(!r.enabled);
        assert!(r.name.starts_with("runner-"));
        assert_eq!((r.workspace.as_str(), r.concurrency), ("default", 1));
        assert_eq!(r.state_dir, std::path::PathBuf::from("/var/lib/paddock"));
        assert_eq!(
            (r.lease_secs, r.heartbeat_secs, r.grace_secs, r.poll_ms),
            (900, 30, 30, 2000)
        );
        assert!(!r.allow_local_repos);
        assert_eq!(r.default_agent, "script");
        let c = Config::from_toml(
            GOOD,
            &env(&[
                ("PADDOCK_RUNNER", "1"),
                ("PADDOCK_RUNNER_CONCURRENCY", "3"),
                ("PADDOCK_RUNNER_UID_FIRST", "20001"),
                ("PADDOCK_RUNNER_STATE_DIR", "/srv/p"),
                ("PADDOCK_RUNNER_ALLOW_LOCAL_REPOS", "true"),
            ]),
        )
        .unwrap();
        assert!(c.runner.enabled && c.runner.allow_local_repos);
        assert_eq!(c.runner.concurrency, 3);
        assert_eq!(c.runner.uid_first, 20_001);
        let c = Config::from_toml(&format!("{GOOD}{AGENT}"), &env(&[])).unwrap();
        assert_eq!(c.runner.uid_first, DEFAULT_UID_FIRST);
        let a = &c.runner.agents["claude"];
        assert_eq!(c.runner.name, "box-1");
        assert_eq!(a.command[2], "@{task_file}");
        assert_eq!(a.credentials[0].secret, "anthropic-key");
        assert_eq!(a.env["ANTHROPIC_API_KEY"], "{handle:anthropic}");
    }

    #[test]
    fn runner_egress_table_is_validated_naming_the_key() {
        let c = Config::from_toml(GOOD, &env(&[])).unwrap();
        let d = crate::sandbox::proxy::EgressSettings::default();
        assert_eq!(c.runner.egress.state_dir, d.state_dir);
        assert_eq!(c.runner.egress.nameservers, d.nameservers);
        let ok = r#"
[runner.egress]
image = "corp/egress:2"
state_dir = "/srv/egress"
nameservers = ["10.0.0.53:53", "[fd00::53]:53"]
extra_ca_bundle = "/etc/ssl/corp.pem"
allow_ranges = ["10.20.0.0/16"]
"#;
        let c = Config::from_toml(&format!("{GOOD}{ok}"), &env(&[])).unwrap();
        assert_eq!(c.runner.egress.image, "corp/egress:2");
        assert_eq!(c.runner.egress.nameservers.len(), 2);
        assert_eq!(c.runner.egress.allow_ranges, ["10.20.0.0/16"]);
        let bad = [
            (
                "image = \"corp/egress:2\"",
                "image = \"a b\"",
                "runner.egress.image",
            ),
            (
                "state_dir = \"/srv/egress\"",
                "state_dir = \"srv\"",
                "runner.egress.state_dir",
            ),
            (
                "\"10.0.0.53:53\",",
                "\"10.0.0.53\",",
                "runner.egress.nameservers",
            ),
            (
                "\"/etc/ssl/corp.pem\"",
                "\"../corp.pem\"",
                "runner.egress.extra_ca_bundle",
            ),
            (
                "\"10.20.0.0/16\"",
                "\"169.254.169.254/32\"",
                "runner.egress.allow_ranges",
            ),
            ("allow_ranges", "allow_rangez", "allow_rangez"),
        ];
        for (from, to, key) in bad {
            let text = format!("{GOOD}{}", ok.replacen(from, to, 1));
            let Err(e) = Config::from_toml(&text, &env(&[])) else {
                panic!("{to}: expected an error");
            };
            let e = e.to_string();
            assert!(e.contains(key), "{to}: {e}");
        }
    }

    #[test]
    fn runner_errors_name_the_key() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("PADDOCK_RUNNER_CONCURRENCY", "0")], "runner.concurrency"),
            (&[("PADDOCK_RUNNER_UID_FIRST", "1000")], "runner.uid_first"),
            (&[("PADDOCK_RUNNER_UID_FIRST", "0")], "runner.uid_first"),
            (
                &[("PADDOCK_RUNNER_UID_FIRST", "4294967290")],
                "runner.uid_first",
            ),
            (
                &[("PADDOCK_RUNNER_CONCURRENCY", "33")],
                "runner.concurrency",
            ),
            (
                &[("PADDOCK_RUNNER_HEARTBEAT_SECS", "450")],
                "runner.heartbeat_secs",
            ),
            (
                &[("PADDOCK_RUNNER_STATE_DIR", "rel/dir")],
                "runner.state_dir",
            ),
            (&[("PADDOCK_RUNNER_NAME", "a b")], "runner.name"),
            (
                &[("PADDOCK_RUNNER_DEFAULT_AGENT", "nope")],
                "runner.default_agent",
            ),
            (&[("PADDOCK_RUNNER_POLL_MS", "x")], "PADDOCK_RUNNER_POLL_MS"),
            (&[("PADDOCK_RUNNER", "maybe")], "PADDOCK_RUNNER"),
        ];
        for (e, key) in cases {
            assert!(err_of(GOOD, e).contains(key), "{key}");
        }
        let bad_agents = [
            ("@{task_file}", r"@\u0000", "runner.agents.command"),
            ("{handle:anthropic}", "{handle:other}", "runner.agents.env"),
            ("ANTHROPIC_API_KEY =", "HTTPS_PROXY =", "runner.agents.env"),
            (
                r#""api.anthropic.com"]
credentials"#,
                r#""http://x/"]
credentials"#,
                "runner.agents.write_hosts",
            ),
            (
                r#"headers = ["x-api-key"]"#,
                "headers = []",
                "runner.agents.credentials",
            ),
            (
                "timeout_secs = 600",
                "timeout_secs = 0",
                "runner.agents.timeout_secs",
            ),
            (
                "max_tokens = 100000",
                "max_tokens = 0",
                "runner.agents.max_tokens",
            ),
            (
                r#"image = "paddock/agent-claude:1""#,
                r#"image = """#,
                "runner.agents.image",
            ),
            (
                "max_requests = 500",
                "max_requests = 500\nbogus = 1",
                "bogus",
            ),
        ];
        for (from, to, key) in bad_agents {
            let text = format!("{GOOD}{}", AGENT.replacen(from, to, 1));
            assert!(
                err_of(&text, &[]).contains(key),
                "{to}: {}",
                err_of(&text, &[])
            );
        }
    }

    #[test]
    fn cidr_matching() {
        let n = parse_cidr("10.0.0.0/8").unwrap();
        assert!(cidr_contains(n, "10.1.2.3".parse().unwrap()));
        assert!(cidr_contains(n, "::ffff:10.1.2.3".parse().unwrap()));
        assert!(!cidr_contains(n, "11.0.0.1".parse().unwrap()));
        assert!(parse_cidr("10.0.0.0/33").is_none());
        let one = parse_cidr("::1").unwrap();
        assert!(cidr_contains(one, "::1".parse().unwrap()));
        assert!(!cidr_contains(one, "::2".parse().unwrap()));
    }
}
