//! The proxy's TOML configuration: schema, defaults and validation (fail closed).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use paddock_policy::{EgressPolicy, PolicyConfig, PolicyError};
use serde::Deserialize;

/// Smallest header buffer the HTTP parser accepts.
pub const MIN_HEADER_BYTES: usize = 8192;

/// The whole configuration file. Unknown keys are an error.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// TCP listener for plain proxy use (`host:port`; port 0 picks a free port).
    pub listen: Option<SocketAddr>,
    /// Unix socket listener (a sandbox's only way out).
    pub listen_unix: Option<PathBuf>,
    /// Admin listener serving Prometheus metrics at `/metrics`.
    pub admin_listen: Option<SocketAddr>,
    /// Threads serving connections in the `paddock-egress` binary. 1 (the default) runs every
    /// connection on one thread, which moves bytes with the fewest cross-thread wake-ups and is
    /// the fastest choice on small machines; more threads scale request rate on large ones.
    #[serde(default = "default_worker_threads")]
    pub worker_threads: usize,
    /// Name resolution.
    pub resolver: ResolverConfig,
    /// The egress policy.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// The audit stream.
    #[serde(default)]
    pub audit: AuditConfig,
    /// Connection limits and timeouts.
    #[serde(default)]
    pub limits: Limits,
    /// TLS interception and upstream TLS.
    #[serde(default)]
    pub tls: TlsConfig,
    /// The control socket through which the runner registers and revokes runs.
    pub control: Option<ControlConfig>,
}

/// The `[tls]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// Intercept HTTPS on the default listeners (TCP and `listen_unix`) with a CA generated at
    /// start. Runs registered over the control socket always get their own CA.
    pub intercept: bool,
    /// Write the default listeners' CA certificate (PEM) here at start, for clients to trust.
    pub default_ca_out: Option<PathBuf>,
    /// Extra trust anchors (PEM) for upstream TLS, beside the public web roots. Certificate and
    /// name verification are always on.
    pub extra_ca_bundle: Option<PathBuf>,
    /// Lifetime of each run CA (and of the default CA).
    pub ca_lifetime: Dur,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            intercept: true,
            default_ca_out: None,
            extra_ca_bundle: None,
            ca_lifetime: Dur::ms(24 * 3600 * 1000),
        }
    }
}

/// The `[control]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlConfig {
    /// The control socket (mode 0600). Never mount it into a sandbox.
    pub unix: PathBuf,
    /// Directory under which each run gets `<run>/proxy.sock` and `<run>/ca.pem`.
    pub runs_dir: PathBuf,
    /// Runs registered at once, at most.
    #[serde(default = "default_max_runs")]
    pub max_runs: usize,
}

fn default_max_runs() -> usize {
    256
}

/// The `[resolver]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolverConfig {
    /// Nameservers as `ip:port`, queried over UDP and TCP. The system resolver configuration
    /// is never read.
    pub nameservers: Vec<SocketAddr>,
    /// Per-query timeout (seconds, or a string with a unit).
    #[serde(default = "default_resolver_timeout")]
    pub timeout: Dur,
}

fn default_worker_threads() -> usize {
    1
}

fn default_resolver_timeout() -> Dur {
    Dur::ms(3000)
}

/// The `[audit]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// File to append JSON lines to; `-` is standard output.
    #[serde(default = "default_audit_path")]
    pub path: String,
}

fn default_audit_path() -> String {
    "-".to_owned()
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            path: default_audit_path(),
        }
    }
}

/// The `[limits]` table. Durations are an integer number of seconds or a string with a unit
/// (`"250ms"`, `"10s"`, `"5m"`, `"1h"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Client connections open at once, all listeners together.
    pub max_connections: usize,
    /// Client connections open at once from one client (TCP peer address, or one Unix socket).
    pub max_connections_per_client: usize,
    /// Time a client has to send a complete request head. The same clock runs while a
    /// keep-alive connection waits for its next request, so it is also the client idle timeout.
    pub header_read_timeout: Dur,
    /// Time to wait for an upstream response head (504 after it), and longest silence in both
    /// directions of a CONNECT tunnel.
    pub idle_timeout: Dur,
    /// Longest silence of an upstream in the middle of a response body (the clock restarts on
    /// every frame): longer than `idle_timeout`, since a model may think for minutes between
    /// events of a stream.
    pub body_idle_timeout: Dur,
    /// Time to establish one upstream TCP connection (504 after it).
    pub connect_timeout: Dur,
    /// Longest life of a CONNECT tunnel.
    pub tunnel_max_lifetime: Dur,
    /// Largest request body forwarded, in bytes (413 above it; a chunked body is cut).
    pub max_request_body: u64,
    /// Largest request head (request line + headers), in bytes (at least 8192).
    pub max_header_bytes: usize,
    /// Time in-flight requests get to finish after SIGTERM.
    pub shutdown_grace: Dur,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 16_384,
            max_connections_per_client: 1024,
            header_read_timeout: Dur::ms(10_000),
            idle_timeout: Dur::ms(60_000),
            body_idle_timeout: Dur::ms(300_000),
            connect_timeout: Dur::ms(5_000),
            tunnel_max_lifetime: Dur::ms(3_600_000),
            max_request_body: 64 * 1024 * 1024,
            max_header_bytes: 64 * 1024,
            shutdown_grace: Dur::ms(10_000),
        }
    }
}

/// A duration in the config: an integer number of seconds, or a string with a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl Dur {
    const fn ms(ms: u64) -> Dur {
        Dur(Duration::from_millis(ms))
    }
    /// The duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Secs(s) => Ok(Dur(Duration::from_secs(s))),
            Raw::Text(t) => parse_duration(&t).map(Dur).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "invalid duration {:?}: use e.g. \"250ms\", \"10s\", \"5m\", \"1h\" or an integer of seconds",
                    t.chars().take(40).collect::<String>()
                ))
            }),
        }
    }
}

/// Parses `"250ms"`, `"10s"`, `"5m"`, `"1h"`.
fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = text.split_at(split);
    let n: u64 = num.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs),
        "h" => n.checked_mul(3600).map(Duration::from_secs),
        _ => None,
    }
}

/// Why a configuration was refused. Each message names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// TOML syntax or schema error (unknown key, wrong type); the message names the key.
    #[error("invalid config: {0}")]
    Parse(String),
    /// The `[policy]` table is invalid.
    #[error("invalid config: {0}")]
    Policy(#[from] PolicyError),
    /// A value is out of range.
    #[error("invalid config: {key}: {problem}")]
    Value {
        /// The key, e.g. `limits.max_header_bytes`.
        key: &'static str,
        /// What is wrong.
        problem: String,
    },
}

fn value_err(key: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Value {
        key,
        problem: problem.into(),
    }
}

/// A validated configuration with its compiled policy.
#[derive(Debug, Clone)]
pub struct Validated {
    /// The configuration as read.
    pub config: Config,
    /// The compiled policy.
    pub policy: EgressPolicy,
}

impl Config {
    /// Parses TOML text (no validation beyond the schema).
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))
    }

    /// Reads, parses and validates a file.
    pub fn load(path: &Path) -> Result<Validated, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::from_toml(&text)?.validate()
    }

    /// Validates every value and compiles the policy. Fail closed: any problem is an error.
    pub fn validate(self) -> Result<Validated, ConfigError> {
        if self.listen.is_none() && self.listen_unix.is_none() && self.control.is_none() {
            return Err(value_err(
                "listen",
                "none of `listen`, `listen_unix` and `[control]` is set: the proxy would serve nothing",
            ));
        }
        if let Some(c) = &self.control {
            if c.unix.as_os_str().is_empty() {
                return Err(value_err("control.unix", "the path is empty"));
            }
            if c.runs_dir.as_os_str().is_empty() {
                return Err(value_err("control.runs_dir", "the path is empty"));
            }
            if c.max_runs == 0 || c.max_runs > 65_536 {
                return Err(value_err("control.max_runs", "must be between 1 and 65536"));
            }
        }
        let lifetime = self.tls.ca_lifetime.get();
        if !(crate::tls::MIN_CA_LIFETIME..=crate::tls::MAX_CA_LIFETIME).contains(&lifetime) {
            return Err(value_err(
                "tls.ca_lifetime",
                "must be between 1 minute and 30 days",
            ));
        }
        if let Some(path) = &self.listen_unix
            && path.as_os_str().is_empty()
        {
            return Err(value_err("listen_unix", "the path is empty"));
        }
        if self.worker_threads == 0 || self.worker_threads > 1024 {
            return Err(value_err("worker_threads", "must be between 1 and 1024"));
        }
        if self.resolver.nameservers.is_empty() {
            return Err(value_err(
                "resolver.nameservers",
                "at least one nameserver is required (the system resolver is never used)",
            ));
        }
        for ns in &self.resolver.nameservers {
            if ns.port() == 0 {
                return Err(value_err("resolver.nameservers", format!("{ns}: port 0")));
            }
            if ns.ip().is_unspecified() {
                return Err(value_err(
                    "resolver.nameservers",
                    format!("{ns}: unspecified address"),
                ));
            }
        }
        if self.resolver.timeout.get().is_zero() {
            return Err(value_err("resolver.timeout", "must be positive"));
        }
        if self.audit.path.is_empty() {
            return Err(value_err(
                "audit.path",
                "empty; use \"-\" for standard output",
            ));
        }
        let l = &self.limits;
        let positive: [(&'static str, u64); 9] = [
            ("limits.max_connections", as_u64(l.max_connections)),
            (
                "limits.max_connections_per_client",
                as_u64(l.max_connections_per_client),
            ),
            ("limits.header_read_timeout", ms(l.header_read_timeout)),
            ("limits.idle_timeout", ms(l.idle_timeout)),
            ("limits.body_idle_timeout", ms(l.body_idle_timeout)),
            ("limits.connect_timeout", ms(l.connect_timeout)),
            ("limits.tunnel_max_lifetime", ms(l.tunnel_max_lifetime)),
            ("limits.max_request_body", l.max_request_body),
            ("limits.max_header_bytes", as_u64(l.max_header_bytes)),
        ];
        for (key, v) in positive {
            if v == 0 {
                return Err(value_err(key, "must be positive"));
            }
        }
        if l.max_connections_per_client > l.max_connections {
            return Err(value_err(
                "limits.max_connections_per_client",
                "is larger than limits.max_connections",
            ));
        }
        if l.max_header_bytes < MIN_HEADER_BYTES {
            return Err(value_err(
                "limits.max_header_bytes",
                format!("must be at least {MIN_HEADER_BYTES}"),
            ));
        }
        if l.max_header_bytes > 1024 * 1024 {
            return Err(value_err(
                "limits.max_header_bytes",
                "must be at most 1 MiB",
            ));
        }
        let policy = self.policy.compile()?;
        Ok(Validated {
            config: self,
            policy,
        })
    }
}

fn ms(d: Dur) -> u64 {
    u64::try_from(d.0.as_millis()).unwrap_or(u64::MAX)
}

fn as_u64(v: usize) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
listen = "127.0.0.1:3128"
listen_unix = "/tmp/egress.sock"
admin_listen = "127.0.0.1:9128"
[resolver]
nameservers = ["127.0.0.1:5353"]
[policy]
approved_write_hosts = ["api.github.test", "*.anthropic.test"]
tunnel_hosts = ["registry.npmjs.test"]
tunnel_ports = [443]
allowed_ports = [80, 443, 8080]
allow_ranges = ["127.0.0.2/32"]
[audit]
path = "-"
"#;

    #[test]
    fn contract_example_parses() {
        let v = Config::from_toml(GOOD).unwrap().validate().unwrap();
        assert_eq!(v.config.limits.max_header_bytes, 64 * 1024);
        assert_eq!(v.config.resolver.nameservers.len(), 1);
    }

    #[test]
    fn unknown_key_is_named() {
        let text = GOOD.replace("[audit]", "[audit]\nbogus_key = 1");
        let err = Config::from_toml(&text).unwrap_err().to_string();
        assert!(err.contains("bogus_key"), "{err}");
        let text = format!("{GOOD}\n[limits]\nmax_conections = 3\n");
        let err = Config::from_toml(&text).unwrap_err().to_string();
        assert!(err.contains("max_conections"), "{err}");
    }

    #[test]
    fn bad_policy_is_named() {
        let text = GOOD.replace("127.0.0.2/32", "10.0.0.0/33");
        let err = Config::from_toml(&text)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("allow_ranges"), "{err}");
    }

    #[test]
    fn limits_are_checked() {
        let text = format!("{GOOD}\n[limits]\nmax_header_bytes = 100\n");
        let err = Config::from_toml(&text)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("limits.max_header_bytes"), "{err}");
        let text = format!("{GOOD}\n[limits]\nconnect_timeout = \"0ms\"\n");
        let err = Config::from_toml(&text)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("limits.connect_timeout"), "{err}");
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("x10s"), None);
        let text = format!("{GOOD}\n[limits]\nidle_timeout = 7\nconnect_timeout = \"150ms\"\n");
        let v = Config::from_toml(&text).unwrap().validate().unwrap();
        assert_eq!(v.config.limits.idle_timeout.get(), Duration::from_secs(7));
        assert_eq!(
            v.config.limits.connect_timeout.get(),
            Duration::from_millis(150)
        );
        let text = format!("{GOOD}\n[limits]\nidle_timeout = \"7 parsecs\"\n");
        let err = Config::from_toml(&text).unwrap_err().to_string();
        assert!(err.contains("idle_timeout"), "{err}");
    }

    #[test]
    fn control_and_tls_are_checked() {
        let text = format!("{GOOD}\n[control]\nunix = \"\"\nruns_dir = \"/sock\"\n");
        let err = Config::from_toml(&text)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("control.unix"), "{err}");
        let text = format!("{GOOD}\n[tls]\nca_lifetime = \"10s\"\n");
        let err = Config::from_toml(&text)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("tls.ca_lifetime"), "{err}");
        // The neighbour: a control socket alone is a valid proxy.
        let only_control = "[resolver]\nnameservers = [\"127.0.0.1:53\"]\n[control]\nunix = \"/ctl/c.sock\"\nruns_dir = \"/sock\"\n";
        let v = Config::from_toml(only_control).unwrap().validate().unwrap();
        assert_eq!(v.config.control.unwrap().max_runs, 256);
        assert!(v.config.tls.intercept);
    }

    #[test]
    fn nameservers_required() {
        let text = GOOD.replace("nameservers = [\"127.0.0.1:5353\"]", "nameservers = []");
        let err = Config::from_toml(&text)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("resolver.nameservers"), "{err}");
        let text = GOOD.replace("127.0.0.1:5353", "127.0.0.1");
        assert!(Config::from_toml(&text).is_err());
    }
}
