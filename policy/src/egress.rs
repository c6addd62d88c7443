//! The egress decision: (method, scheme, host, port) → allow / tunnel / deny, with a named rule.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::host::{Host, HostPattern};
use crate::ip::{IpClass, SpecialRange, canonical, classify};
use crate::ip_tables::Net;

/// How the client reached the proxy for this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP (absolute-form `http://` request).
    Http,
    /// TLS: a CONNECT tunnel or an intercepted `https://` request.
    Https,
}

/// The request methods the policy knows. Anything else is denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`
    Head,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `PATCH`
    Patch,
    /// `DELETE`
    Delete,
    /// `OPTIONS`
    Options,
    /// `CONNECT`
    Connect,
}

impl Method {
    /// Exact, case-sensitive: `"post"` is not `"POST"` and is unknown.
    pub fn parse(s: &str) -> Option<Method> {
        Some(match s {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            "CONNECT" => Method::Connect,
            _ => return None,
        })
    }

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Connect => "CONNECT",
        }
    }
}

/// One request as the proxy sees it, before any name resolution.
#[derive(Debug, Clone, Copy)]
pub struct EgressRequest<'a> {
    /// The method as received on the wire.
    pub method: &'a str,
    /// `Http` for absolute-form `http://`; `Https` for CONNECT or intercepted https.
    pub scheme: Scheme,
    /// The normalised destination host.
    pub host: &'a Host,
    /// The destination port.
    pub port: u16,
    /// The request carries `X-HTTP-Method-Override`, `X-HTTP-Method`, `X-Method-Override` or a
    /// `_method=` query parameter: a read with it is judged as a write.
    pub method_override: bool,
}

/// The outcome of a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Forward the request.
    Allow,
    /// Open a CONNECT tunnel.
    Tunnel,
    /// Refuse (403).
    Deny,
}

/// The rule that decided. [`Rule::name`] is stable and goes into 403 bodies and audit lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// A GET/HEAD to a public host.
    ReadPublic,
    /// A write over HTTPS to an approved write host.
    WriteApproved,
    /// A CONNECT to a tunnel host on a tunnel port.
    TunnelHost,
    /// A method that is not exactly one of the known upper-case names.
    MethodUnknown,
    /// A write (or a read with a method override) to a host not approved for writes.
    WriteNotApproved,
    /// A write to an approved host over plain HTTP.
    WriteNotHttps,
    /// A CONNECT to a host that is not a tunnel host.
    ConnectNotTunnelHost,
    /// A port outside `allowed_ports`.
    PortNotAllowed,
    /// A CONNECT to a tunnel host on a port outside `tunnel_ports`.
    TunnelPortNotAllowed,
    /// The address is in a special-purpose range.
    DeniedAddress(&'static SpecialRange),
    /// The address is a cloud metadata endpoint.
    CloudMetadata(&'static SpecialRange),
    /// The name resolved to no address.
    NoAddress,
}

impl Rule {
    /// Stable snake_case name.
    pub fn name(&self) -> &'static str {
        match self {
            Rule::ReadPublic => "read_public",
            Rule::WriteApproved => "write_approved",
            Rule::TunnelHost => "tunnel_host",
            Rule::MethodUnknown => "method_unknown",
            Rule::WriteNotApproved => "write_not_approved",
            Rule::WriteNotHttps => "write_not_https",
            Rule::ConnectNotTunnelHost => "connect_not_tunnel_host",
            Rule::PortNotAllowed => "port_not_allowed",
            Rule::TunnelPortNotAllowed => "tunnel_port_not_allowed",
            Rule::DeniedAddress(_) => "denied_address",
            Rule::CloudMetadata(_) => "cloud_metadata",
            Rule::NoAddress => "no_address",
        }
    }

    /// The special range behind an address denial.
    pub fn range(&self) -> Option<&'static SpecialRange> {
        match self {
            Rule::DeniedAddress(r) | Rule::CloudMetadata(r) => Some(r),
            _ => None,
        }
    }

    /// True for the allowing rules.
    pub fn allows(&self) -> bool {
        matches!(
            self,
            Rule::ReadPublic | Rule::WriteApproved | Rule::TunnelHost
        )
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.range() {
            Some(r) => write!(f, "{} ({} {})", self.name(), r.name, r.cidr),
            None => f.write_str(self.name()),
        }
    }
}

/// A verdict and the rule behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// What to do.
    pub verdict: Verdict,
    /// Why.
    pub rule: Rule,
}

impl Decision {
    fn deny(rule: Rule) -> Decision {
        Decision {
            verdict: Verdict::Deny,
            rule,
        }
    }
}

/// A refusal from an address check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("egress denied by rule {rule}")]
pub struct Denied {
    /// The deny rule.
    pub rule: Rule,
}

/// A socket address the policy checked. Only [`EgressPolicy::check_addr`] and
/// [`EgressPolicy::check_resolved`] make one, so a dialler that takes it cannot connect to an
/// unchecked address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedAddr {
    addr: SocketAddr,
}

impl ValidatedAddr {
    /// The address to connect to (IPv4-mapped IPv6 canonicalised to IPv4).
    pub fn socket_addr(&self) -> SocketAddr {
        self.addr
    }
}

/// A compiled policy. Build with [`crate::config::PolicyConfig::compile`].
#[derive(Debug, Clone)]
pub struct EgressPolicy {
    pub(crate) approved_write_hosts: Vec<HostPattern>,
    pub(crate) tunnel_hosts: Vec<HostPattern>,
    pub(crate) tunnel_ports: Vec<u16>,
    pub(crate) allowed_ports: Vec<u16>,
    pub(crate) allow_ranges: Vec<Net>,
}

impl EgressPolicy {
    /// The default policy: reads to public hosts on ports 80/443, no writes, no tunnels.
    pub fn default_deny_writes() -> EgressPolicy {
        EgressPolicy {
            approved_write_hosts: Vec::new(),
            tunnel_hosts: Vec::new(),
            tunnel_ports: vec![443],
            allowed_ports: vec![80, 443],
            allow_ranges: Vec::new(),
        }
    }

    /// Decides a request before name resolution. For an IP host the address is judged here, so
    /// a literal private address is refused before any connect; so is a name with a fixed
    /// address (`localhost`, `*.localhost`, `metadata.google.internal`, ...). First matching
    /// rule wins.
    pub fn decide(&self, req: &EgressRequest<'_>) -> Decision {
        let Some(method) = Method::parse(req.method) else {
            return Decision::deny(Rule::MethodUnknown);
        };
        let fixed = match req.host {
            Host::Ip(ip) => Some(*ip),
            Host::Name(name) => fixed_address(name.as_str()),
        };
        if let Some(ip) = fixed
            && let Err(denied) = self.judge_ip(ip)
        {
            return Decision::deny(denied.rule);
        }
        if method == Method::Connect {
            if !self.tunnel_hosts.iter().any(|p| p.matches_host(req.host)) {
                return Decision::deny(Rule::ConnectNotTunnelHost);
            }
            if !self.tunnel_ports.contains(&req.port) {
                return Decision::deny(Rule::TunnelPortNotAllowed);
            }
            return Decision {
                verdict: Verdict::Tunnel,
                rule: Rule::TunnelHost,
            };
        }
        if req.port == 0 || !self.allowed_ports.contains(&req.port) {
            return Decision::deny(Rule::PortNotAllowed);
        }
        if matches!(method, Method::Get | Method::Head) && !req.method_override {
            return Decision {
                verdict: Verdict::Allow,
                rule: Rule::ReadPublic,
            };
        }
        if !self
            .approved_write_hosts
            .iter()
            .any(|p| p.matches_host(req.host))
        {
            return Decision::deny(Rule::WriteNotApproved);
        }
        if req.scheme == Scheme::Http {
            return Decision::deny(Rule::WriteNotHttps);
        }
        Decision {
            verdict: Verdict::Allow,
            rule: Rule::WriteApproved,
        }
    }

    /// Checks one address to connect to. The port must be one the policy allows or tunnels to.
    pub fn check_addr(&self, ip: IpAddr, port: u16) -> Result<ValidatedAddr, Denied> {
        let ip = self.judge_ip(ip)?;
        if port == 0 || !(self.allowed_ports.contains(&port) || self.tunnel_ports.contains(&port)) {
            return Err(Denied {
                rule: Rule::PortNotAllowed,
            });
        }
        Ok(ValidatedAddr {
            addr: SocketAddr::new(ip, port),
        })
    }

    /// Checks every answer of a resolution: one bad answer denies the request (fail closed,
    /// so a name that mixes public and private answers never reaches either); no answer is
    /// [`Rule::NoAddress`].
    pub fn check_resolved(
        &self,
        answers: &[IpAddr],
        port: u16,
    ) -> Result<Vec<ValidatedAddr>, Denied> {
        if answers.is_empty() {
            return Err(Denied {
                rule: Rule::NoAddress,
            });
        }
        answers
            .iter()
            .map(|&ip| self.check_addr(ip, port))
            .collect()
    }

    /// Classifies `ip` (canonicalised) and applies `allow_ranges`; returns the canonical address.
    fn judge_ip(&self, ip: IpAddr) -> Result<IpAddr, Denied> {
        let ip = canonical(ip);
        let IpClass::Special(range) = classify(ip) else {
            return Ok(ip);
        };
        if range.cloud_metadata {
            return Err(Denied {
                rule: Rule::CloudMetadata(range),
            });
        }
        if !never_exempt(ip) && self.allow_ranges.iter().any(|n| net_contains(*n, ip)) {
            return Ok(ip);
        }
        Err(Denied {
            rule: Rule::DeniedAddress(range),
        })
    }
}

/// Names whose address is fixed by standard or by the cloud platform, judged as that address
/// before any resolution (so they are refused even if a resolver were to answer differently).
const FIXED_NAMES: &[(&str, [u8; 4])] = &[
    // RFC 6761: localhost and every name below it are loopback.
    ("localhost", [127, 0, 0, 1]),
    // Instance metadata names (GCP, AWS, Tencent).
    ("metadata.google.internal", [169, 254, 169, 254]),
    ("metadata.goog", [169, 254, 169, 254]),
    ("metadata", [169, 254, 169, 254]),
    ("instance-data", [169, 254, 169, 254]),
    ("instance-data.ec2.internal", [169, 254, 169, 254]),
    ("metadata.tencentyun.com", [169, 254, 0, 23]),
];

/// The address a name is fixed to: `localhost` and names below it are 127.0.0.1, cloud metadata
/// names (`metadata.google.internal`, `metadata.goog`, `instance-data`, ...) their metadata address.
pub fn fixed_address(name: &str) -> Option<IpAddr> {
    if name == "localhost" || name.ends_with(".localhost") {
        return Some(IpAddr::from([127, 0, 0, 1]));
    }
    FIXED_NAMES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, ip)| IpAddr::from(*ip))
}

/// Unspecified, multicast and broadcast addresses are never exempted by `allow_ranges`.
pub(crate) fn never_exempt(ip: IpAddr) -> bool {
    match ip {
        // All of 0.0.0.0/8, not just 0.0.0.0: Linux treats the block as "this host".
        IpAddr::V4(v4) => v4.octets()[0] == 0 || v4.is_multicast() || v4.is_broadcast(),
        IpAddr::V6(v6) => v6.is_unspecified() || v6.is_multicast(),
    }
}

pub(crate) fn net_contains(net: Net, ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => net.contains_v4(v4),
        IpAddr::V6(v6) => net.contains_v6(v6),
    }
}

#[cfg(test)]
#[path = "egress_tests.rs"]
mod tests;
