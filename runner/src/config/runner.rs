//! `[runner]` and `[runner.agents.<name>]`: the opt-in worker loop and its agent adapters.

use std::collections::BTreeMap;
use std::path::PathBuf;

use paddock_policy::HostPattern;
use paddock_policy::sandbox::MIN_AGENT_UID;
use serde::Deserialize;

use super::{ConfigError, Strings, invalid, parse_bool, parse_num};

/// Agents the worker knows without a `[runner.agents.<name>]` table.
pub const BUILTIN_AGENTS: &[&str] = &["claude-code", "codex", "aider", "mini-swe-agent", "script"];

/// The only placeholder an agent command may hold.
pub const TASK_FILE_PLACEHOLDER: &str = "{task_file}";

/// Environment names an agent table may not set: the sandbox sets them (proxy, CA) or they
/// change how every program loads.
const RESERVED_ENV: &[&str] = &[
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "CURL_CA_BUNDLE",
    "GIT_SSL_CAINFO",
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "LD_AUDIT",
];

/// The default first agent uid (the images' agent user).
pub const DEFAULT_UID_FIRST: u32 = 10_001;
/// Highest first agent uid: far below the overflow of `uid_first + slot`.
pub const MAX_UID_FIRST: u32 = 2_000_000_000;

/// One brokered credential of an agent: the sandbox gets a handle, the proxy swaps in the
/// value of `secret` (a stored secret of the workspace) on requests to `hosts`, in `headers`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentCredential {
    /// Name used in `{handle:NAME}` references.
    pub name: String,
    /// Name of the stored secret.
    pub secret: String,
    /// Host patterns the handle may be sent to (`api.example.com`, `*.example.com`).
    pub hosts: Vec<String>,
    /// Lower-case header names the handle may appear in.
    pub headers: Vec<String>,
}

/// One agent adapter (`[runner.agents.<name>]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Container image.
    pub image: String,
    /// argv; `{task}` becomes the task text and `{task_file}` its path inside the sandbox; other
    /// braces are literal. Empty for a built-in agent: its own command.
    pub command: Vec<String>,
    /// Environment; values may hold `{handle:NAME}` (a credential of this agent), never secrets.
    pub env: BTreeMap<String, String>,
    /// Host patterns the agent may write to (POST etc., HTTPS only).
    pub write_hosts: Vec<String>,
    /// Brokered credentials.
    pub credentials: Vec<AgentCredential>,
    /// Wall-clock limit of one run, seconds.
    pub timeout_secs: u64,
    /// Token budget of one run (counted by the proxy).
    pub max_tokens: u64,
    /// Request budget of one run (counted by the proxy).
    pub max_requests: u64,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            image: String::new(),
            command: Vec::new(),
            env: BTreeMap::new(),
            write_hosts: Vec::new(),
            credentials: Vec::new(),
            timeout_secs: 1800,
            max_tokens: 2_000_000,
            max_requests: 2_000,
        }
    }
}

/// `[runner]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawRunner {
    enabled: bool,
    name: Option<String>,
    workspace: String,
    concurrency: u32,
    uid_first: u32,
    state_dir: String,
    lease_secs: u64,
    heartbeat_secs: u64,
    grace_secs: u64,
    poll_ms: u64,
    allow_local_repos: bool,
    default_agent: String,
    agents: BTreeMap<String, AgentConfig>,
    egress: RawEgress,
}

/// `[runner.egress]` as written: the proxy container the runner keeps.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawEgress {
    image: String,
    state_dir: String,
    nameservers: Vec<String>,
    extra_ca_bundle: Option<String>,
    allow_ranges: Vec<String>,
}

impl Default for RawEgress {
    fn default() -> Self {
        let d = crate::sandbox::proxy::EgressSettings::default();
        Self {
            image: d.image,
            state_dir: d.state_dir.to_string_lossy().into_owned(),
            nameservers: d.nameservers.iter().map(ToString::to_string).collect(),
            extra_ca_bundle: None,
            allow_ranges: Vec::new(),
        }
    }
}

/// Validated `[runner.egress]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressConfig {
    /// Image of the proxy container.
    pub image: String,
    /// Its config, runs and control directories (absolute).
    pub state_dir: PathBuf,
    /// Nameservers it resolves with (`ip:port`).
    pub nameservers: Vec<std::net::SocketAddr>,
    /// PEM bundle trusted for upstream TLS besides the public roots (an internal CA).
    pub extra_ca_bundle: Option<PathBuf>,
    /// CIDRs every run may reach although private (internal mirrors); metadata is refused.
    pub allow_ranges: Vec<String>,
}

fn validate_egress(raw: RawEgress) -> Result<EgressConfig, ConfigError> {
    let image = raw.image.trim().to_string();
    if image.is_empty()
        || image.len() > 256
        || image.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(invalid(
            "runner.egress.image",
            "must be an image reference without whitespace",
        ));
    }
    let abs = |key: &'static str, p: &str| -> Result<PathBuf, ConfigError> {
        let p = p.trim();
        if !p.starts_with('/') || p.split('/').any(|s| s == "..") {
            return Err(invalid(key, "must be an absolute path without `..`"));
        }
        Ok(PathBuf::from(p))
    };
    let state_dir = abs("runner.egress.state_dir", &raw.state_dir)?;
    let extra_ca_bundle = raw
        .extra_ca_bundle
        .as_deref()
        .map(|p| abs("runner.egress.extra_ca_bundle", p))
        .transpose()?;
    if raw.nameservers.is_empty() {
        return Err(invalid(
            "runner.egress.nameservers",
            "needs at least one `ip:port`",
        ));
    }
    let nameservers = raw
        .nameservers
        .iter()
        .map(|n| {
            n.trim().parse().map_err(|_| {
                invalid(
                    "runner.egress.nameservers",
                    format!("{n:?} is not an `ip:port`"),
                )
            })
        })
        .collect::<Result<Vec<std::net::SocketAddr>, _>>()?;
    let policy = paddock_policy::PolicyConfig {
        allow_ranges: raw.allow_ranges.clone(),
        ..paddock_policy::PolicyConfig::default()
    };
    policy
        .compile()
        .map_err(|e| invalid("runner.egress.allow_ranges", e.to_string()))?;
    Ok(EgressConfig {
        image,
        state_dir,
        nameservers,
        extra_ca_bundle,
        allow_ranges: raw.allow_ranges,
    })
}

impl Default for RawRunner {
    fn default() -> Self {
        Self {
            enabled: false,
            name: None,
            workspace: "default".into(),
            concurrency: 1,
            uid_first: DEFAULT_UID_FIRST,
            state_dir: "/var/lib/paddock".into(),
            lease_secs: 900,
            heartbeat_secs: 30,
            grace_secs: 30,
            poll_ms: 2000,
            allow_local_repos: false,
            default_agent: "script".into(),
            agents: BTreeMap::new(),
            egress: RawEgress::default(),
        }
    }
}

/// Validated `[runner]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerConfig {
    /// Whether `paddock serve` runs the worker loop (`PADDOCK_RUNNER=1` also turns it on).
    pub enabled: bool,
    /// This runner's name (what `claimed_by` records); default `runner-<host name>`.
    pub name: String,
    /// Name of the workspace it claims from.
    pub workspace: String,
    /// Runs at once, 1..=32.
    pub concurrency: u32,
    /// First agent uid: slot `n` runs as `uid_first + n`. Runners sharing one host give each
    /// other disjoint ranges, so their agents never share per-uid kernel limits.
    pub uid_first: u32,
    /// Mirrors, work trees and proxy sockets live here (absolute path).
    pub state_dir: PathBuf,
    /// Lease per claim and heartbeat, seconds.
    pub lease_secs: u64,
    /// Lease heartbeat interval, seconds; less than half the lease.
    pub heartbeat_secs: u64,
    /// On SIGTERM or the kill switch, how long live runs get before they are stopped, seconds.
    pub grace_secs: u64,
    /// Claim poll interval when idle, milliseconds.
    pub poll_ms: u64,
    /// Whether repositories may be local paths (tests and `paddock demo`; refused in production).
    pub allow_local_repos: bool,
    /// Agent used when an issue names none.
    pub default_agent: String,
    /// Configured agent adapters by name (built-ins may be overridden by name).
    pub agents: BTreeMap<String, AgentConfig>,
    /// The proxy container (`[runner.egress]`).
    pub egress: EgressConfig,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        let raw = RawRunner::default();
        RunnerConfig {
            enabled: raw.enabled,
            name: default_runner_name(),
            workspace: raw.workspace,
            concurrency: raw.concurrency,
            uid_first: raw.uid_first,
            state_dir: PathBuf::from(raw.state_dir),
            lease_secs: raw.lease_secs,
            heartbeat_secs: raw.heartbeat_secs,
            grace_secs: raw.grace_secs,
            poll_ms: raw.poll_ms,
            allow_local_repos: raw.allow_local_repos,
            default_agent: raw.default_agent,
            agents: BTreeMap::new(),
            egress: {
                let d = crate::sandbox::proxy::EgressSettings::default();
                EgressConfig {
                    image: d.image,
                    state_dir: d.state_dir,
                    nameservers: d.nameservers,
                    extra_ca_bundle: None,
                    allow_ranges: Vec::new(),
                }
            },
        }
    }
}

pub(super) fn apply_env(raw: &mut RawRunner, env: &dyn Strings) -> Result<(), ConfigError> {
    if let Some(v) = env.get("PADDOCK_RUNNER") {
        raw.enabled = parse_bool("PADDOCK_RUNNER", &v)?;
    }
    if let Some(v) = env.get("PADDOCK_RUNNER_ENABLED") {
        raw.enabled = parse_bool("PADDOCK_RUNNER_ENABLED", &v)?;
    }
    if let Some(v) = env.get("PADDOCK_RUNNER_NAME") {
        raw.name = Some(v);
    }
    if let Some(v) = env.get("PADDOCK_RUNNER_WORKSPACE") {
        raw.workspace = v;
    }
    if let Some(v) = env.get("PADDOCK_RUNNER_CONCURRENCY") {
        raw.concurrency = parse_num("PADDOCK_RUNNER_CONCURRENCY", &v)?;
    }
    if let Some(v) = env.get("PADDOCK_RUNNER_UID_FIRST") {
        raw.uid_first = parse_num("PADDOCK_RUNNER_UID_FIRST", &v)?;
    }
    if let Some(v) = env.get("PADDOCK_RUNNER_STATE_DIR") {
        raw.state_dir = v;
    }
    if let Some(v) = env.get("PADDOCK_RUNNER_LEASE_SECS") {
        raw.lease_secs = parse_num("PADDOCK_RUNNER_LEASE_SECS", &v)?;
    }
    if let Some(v) = env.get("PADDOCK_RUNNER_HEARTBEAT_SECS") {
        raw.heartbeat_secs = parse_num("PADDOCK_RUNNER_HEARTBEAT_SECS", &v)?;
    }
    if let Some(v) = env.get("PADDOCK_RUNNER_GRACE_SECS") {
        raw.grace_secs = parse_num("PADDOCK_RUNNER_GRACE_SECS", &v)?;
    }
    if let Some(v) = env.get("PADDOCK_RUNNER_POLL_MS") {
        raw.poll_ms = parse_num("PADDOCK_RUNNER_POLL_MS", &v)?;
    }
    if let Some(v) = env.get("PADDOCK_RUNNER_ALLOW_LOCAL_REPOS") {
        raw.allow_local_repos = parse_bool("PADDOCK_RUNNER_ALLOW_LOCAL_REPOS", &v)?;
    }
    if let Some(v) = env.get("PADDOCK_RUNNER_DEFAULT_AGENT") {
        raw.default_agent = v;
    }
    Ok(())
}

fn is_name(s: &str, max: usize, extra: &[u8]) -> bool {
    !s.is_empty()
        && s.len() <= max
        && !s.starts_with(['-', '.'])
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
}

/// An agent's name: `[a-z0-9_-]`, 1..=64.
pub fn valid_agent_name(s: &str) -> bool {
    is_name(s, 64, b"-_") && !s.bytes().any(|b| b.is_ascii_uppercase())
}

fn hosts(key: &'static str, agent: &str, list: &[String]) -> Result<(), ConfigError> {
    for h in list {
        HostPattern::parse(h)
            .map_err(|e| invalid(key, format!("agent `{agent}`: host pattern `{h}`: {e}")))?;
    }
    Ok(())
}

/// Checks every `{...}` in `s` against `allowed`.
/// Checks every `{handle:NAME}` reference in `s` against `known`. Other braces are literal
/// text (shell scripts use them).
fn handle_refs(s: &str, known: &dyn Fn(&str) -> bool) -> Result<(), String> {
    let mut rest = s;
    while let Some(at) = rest.find("{handle:") {
        let after = &rest[at + "{handle:".len()..];
        let close = after
            .find('}')
            .ok_or_else(|| "an unclosed `{handle:`".to_string())?;
        let name = &after[..close];
        if !known(name) {
            return Err(format!(
                "`{{handle:{name}}}` names no credential of this agent"
            ));
        }
        rest = &after[close + 1..];
    }
    Ok(())
}

fn validate_agent(name: &str, a: &AgentConfig) -> Result<(), ConfigError> {
    let ctx = |reason: String| format!("agent `{name}`: {reason}");
    // A table named like a built-in agent overrides it field by field: an empty image or
    // command keeps the built-in's.
    let builtin = BUILTIN_AGENTS.contains(&name);
    if (a.image.trim().is_empty() && !builtin)
        || a.image.len() > 256
        || a.image.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(invalid(
            "runner.agents.image",
            ctx("must be an image reference without whitespace".into()),
        ));
    }
    if (a.command.is_empty() && !builtin) || a.command.len() > 256 {
        return Err(invalid(
            "runner.agents.command",
            ctx("must be a non-empty array of at most 256 strings".into()),
        ));
    }
    for arg in &a.command {
        if arg.len() > 8192 || arg.contains('\0') {
            return Err(invalid(
                "runner.agents.command",
                ctx("arguments are at most 8192 bytes, without NUL".into()),
            ));
        }
    }
    let mut cred_names: Vec<&str> = Vec::new();
    for c in &a.credentials {
        if !is_name(&c.name, 64, b"-_") {
            return Err(invalid(
                "runner.agents.credentials",
                ctx(format!(
                    "credential name `{}` must be [A-Za-z0-9_-]",
                    c.name
                )),
            ));
        }
        if cred_names.contains(&c.name.as_str()) {
            return Err(invalid(
                "runner.agents.credentials",
                ctx(format!("credential `{}` is listed twice", c.name)),
            ));
        }
        cred_names.push(&c.name);
        if !crate::store::secrets::valid_secret_name(&c.secret) {
            return Err(invalid(
                "runner.agents.credentials",
                ctx(format!(
                    "credential `{}`: `secret` is not a secret name",
                    c.name
                )),
            ));
        }
        if c.hosts.is_empty() {
            return Err(invalid(
                "runner.agents.credentials",
                ctx(format!("credential `{}` needs at least one host", c.name)),
            ));
        }
        hosts("runner.agents.credentials", name, &c.hosts)?;
        if c.headers.is_empty()
            || c.headers
                .iter()
                .any(|h| !is_name(h, 64, b"-") || h.bytes().any(|b| b.is_ascii_uppercase()))
        {
            return Err(invalid(
                "runner.agents.credentials",
                ctx(format!(
                    "credential `{}` needs lower-case header names",
                    c.name
                )),
            ));
        }
    }
    for (k, v) in &a.env {
        let ok_key = !k.is_empty()
            && k.len() <= 128
            && !k.starts_with(|c: char| c.is_ascii_digit())
            && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !ok_key {
            return Err(invalid(
                "runner.agents.env",
                ctx(format!("`{k}` is not an environment variable name")),
            ));
        }
        if RESERVED_ENV.iter().any(|r| r.eq_ignore_ascii_case(k)) {
            return Err(invalid(
                "runner.agents.env",
                ctx(format!(
                    "`{k}` is set by the sandbox and may not be overridden"
                )),
            ));
        }
        if v.len() > 8192 || v.contains('\0') {
            return Err(invalid(
                "runner.agents.env",
                ctx(format!("`{k}`: values are at most 8192 bytes, without NUL")),
            ));
        }
        // A built-in's own credentials are checked when the worker resolves the agent.
        handle_refs(v, &|n| {
            cred_names.contains(&n) || (builtin && a.credentials.is_empty())
        })
        .map_err(|e| {
            invalid(
                "runner.agents.env",
                ctx(format!(
                    "`{k}`: {e} (only {{handle:NAME}} of this agent's credentials)"
                )),
            )
        })?;
    }
    hosts("runner.agents.write_hosts", name, &a.write_hosts)?;
    if a.timeout_secs == 0 || a.timeout_secs > 86_400 {
        return Err(invalid(
            "runner.agents.timeout_secs",
            ctx("must be between 1 and 86400".into()),
        ));
    }
    if a.max_tokens == 0 {
        return Err(invalid(
            "runner.agents.max_tokens",
            ctx("must be at least 1".into()),
        ));
    }
    if a.max_requests == 0 {
        return Err(invalid(
            "runner.agents.max_requests",
            ctx("must be at least 1".into()),
        ));
    }
    Ok(())
}

/// `runner-<host name>`: stable across restarts, so a restarted runner finds and removes the
/// leftovers of its crashed predecessor (they are labelled with a tag of its name). Characters
/// a name may not hold become `-`; without a usable host name, `runner-<pid>`.
fn default_runner_name() -> String {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    let clean: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(56)
        .collect();
    let name = format!("runner-{clean}");
    if clean.is_empty() || !is_name(&name, 64, b"-_.") {
        format!("runner-{}", std::process::id())
    } else {
        name
    }
}

pub(super) fn validate(raw: RawRunner, production: bool) -> Result<RunnerConfig, ConfigError> {
    let name = match raw.name {
        Some(n) => n.trim().to_string(),
        None => default_runner_name(),
    };
    if !is_name(&name, 64, b"-_.") {
        return Err(invalid(
            "runner.name",
            "must be 1-64 characters of [A-Za-z0-9._-]",
        ));
    }
    let workspace = raw.workspace.trim().to_string();
    if workspace.is_empty() || workspace.len() > 64 {
        return Err(invalid("runner.workspace", "must be 1-64 characters"));
    }
    if !(1..=32).contains(&raw.concurrency) {
        return Err(invalid("runner.concurrency", "must be between 1 and 32"));
    }
    if !(MIN_AGENT_UID..=MAX_UID_FIRST).contains(&raw.uid_first) {
        return Err(invalid(
            "runner.uid_first",
            format!("must be between {MIN_AGENT_UID} and {MAX_UID_FIRST}"),
        ));
    }
    let state_dir = raw.state_dir.trim();
    if !state_dir.starts_with('/') || state_dir.split('/').any(|s| s == "..") {
        return Err(invalid(
            "runner.state_dir",
            "must be an absolute path without `..`",
        ));
    }
    if raw.lease_secs < 10 || raw.lease_secs > 86_400 {
        return Err(invalid("runner.lease_secs", "must be between 10 and 86400"));
    }
    if raw.heartbeat_secs == 0 || raw.heartbeat_secs.saturating_mul(2) >= raw.lease_secs {
        return Err(invalid(
            "runner.heartbeat_secs",
            "must be at least 1 and less than half of runner.lease_secs",
        ));
    }
    if raw.grace_secs > 3600 {
        return Err(invalid("runner.grace_secs", "must be between 0 and 3600"));
    }
    if raw.poll_ms < 50 || raw.poll_ms > 600_000 {
        return Err(invalid("runner.poll_ms", "must be between 50 and 600000"));
    }
    if production && raw.allow_local_repos {
        return Err(invalid(
            "runner.allow_local_repos",
            "local repositories are for tests and the demo; not allowed in production",
        ));
    }
    for (n, a) in &raw.agents {
        if !valid_agent_name(n) {
            return Err(invalid(
                "runner.agents",
                format!("agent name `{n}` must be 1-64 characters of [a-z0-9_-]"),
            ));
        }
        validate_agent(n, a)?;
    }
    let default_agent = raw.default_agent.trim().to_string();
    if !raw.agents.contains_key(&default_agent) && !BUILTIN_AGENTS.contains(&default_agent.as_str())
    {
        return Err(invalid(
            "runner.default_agent",
            format!("`{default_agent}` is neither a built-in agent nor a [runner.agents] table"),
        ));
    }
    let egress = validate_egress(raw.egress)?;
    Ok(RunnerConfig {
        egress,
        enabled: raw.enabled,
        name,
        workspace,
        concurrency: raw.concurrency,
        uid_first: raw.uid_first,
        state_dir: PathBuf::from(state_dir),
        lease_secs: raw.lease_secs,
        heartbeat_secs: raw.heartbeat_secs,
        grace_secs: raw.grace_secs,
        poll_ms: raw.poll_ms,
        allow_local_repos: raw.allow_local_repos,
        default_agent,
        agents: raw.agents,
    })
}
