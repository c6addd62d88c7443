//! The `[policy]` table of the proxy configuration: schema, validation, compilation.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::egress::{EgressPolicy, never_exempt};
use crate::host::HostPattern;
use crate::ip_tables::{Net, V4_TABLE, V6_TABLE, prefix_eq32, prefix_eq128};

/// Longest configuration value echoed back in an error message.
const MAX_ECHO: usize = 100;

/// The `[policy]` table. Unknown keys are an error; omitted keys take the defaults below.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// Host patterns that may receive writes (anything but GET/HEAD), over HTTPS only.
    pub approved_write_hosts: Vec<String>,
    /// Host patterns that may be reached by CONNECT.
    pub tunnel_hosts: Vec<String>,
    /// Ports CONNECT may reach. Default `[443]`.
    pub tunnel_ports: Vec<u16>,
    /// Ports plain requests may reach. Default `[80, 443]`.
    pub allowed_ports: Vec<u16>,
    /// CIDRs exempt from the special-range deny (a bare address is /32 or /128).
    pub allow_ranges: Vec<String>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            approved_write_hosts: Vec::new(),
            tunnel_hosts: Vec::new(),
            tunnel_ports: vec![443],
            allowed_ports: vec![80, 443],
            allow_ranges: Vec::new(),
        }
    }
}

/// A configuration error naming the key, e.g.
/// `policy.allow_ranges[1]: "10.0.0.0/33" is not a valid CIDR`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy.{key}[{index}]: {value:?} {problem}")]
pub struct PolicyError {
    /// The key, e.g. `allow_ranges`.
    pub key: &'static str,
    /// The index in the list.
    pub index: usize,
    /// The offending value (at most 100 characters).
    pub value: String,
    /// What is wrong with it.
    pub problem: String,
}

impl PolicyError {
    fn new(key: &'static str, index: usize, value: &str, problem: impl Into<String>) -> Self {
        let value = match value.char_indices().nth(MAX_ECHO) {
            Some((cut, _)) => format!("{}…", &value[..cut]),
            None => value.to_owned(),
        };
        PolicyError {
            key,
            index,
            value,
            problem: problem.into(),
        }
    }
}

impl PolicyConfig {
    /// Validates and compiles. Every problem is an error naming the key and index: fail closed.
    pub fn compile(&self) -> Result<EgressPolicy, PolicyError> {
        let approved_write_hosts = patterns("approved_write_hosts", &self.approved_write_hosts)?;
        let tunnel_hosts = patterns("tunnel_hosts", &self.tunnel_hosts)?;
        ports("tunnel_ports", &self.tunnel_ports)?;
        ports("allowed_ports", &self.allowed_ports)?;
        let mut allow_ranges = Vec::with_capacity(self.allow_ranges.len());
        for (index, raw) in self.allow_ranges.iter().enumerate() {
            allow_ranges.push(
                allow_range(raw)
                    .map_err(|problem| PolicyError::new("allow_ranges", index, raw, problem))?,
            );
        }
        Ok(EgressPolicy {
            approved_write_hosts,
            tunnel_hosts,
            tunnel_ports: self.tunnel_ports.clone(),
            allowed_ports: self.allowed_ports.clone(),
            allow_ranges,
        })
    }
}

fn patterns(key: &'static str, raw: &[String]) -> Result<Vec<HostPattern>, PolicyError> {
    raw.iter()
        .enumerate()
        .map(|(index, p)| {
            HostPattern::parse(p).map_err(|e| {
                PolicyError::new(key, index, p, format!("is not a valid host pattern: {e}"))
            })
        })
        .collect()
}

fn ports(key: &'static str, raw: &[u16]) -> Result<(), PolicyError> {
    match raw.iter().position(|&p| p == 0) {
        Some(index) => Err(PolicyError::new(key, index, "0", "is not a valid port")),
        None => Ok(()),
    }
}

/// Parses one allow range and refuses ranges that would exempt what must stay denied.
fn allow_range(raw: &str) -> Result<Net, String> {
    let net = parse_cidr(raw)?;
    let (lo, hi) = bounds(net);
    // CIDR blocks are aligned, so a block that holds any unspecified, multicast or broadcast
    // address (0.0.0.0/8, ::, 224.0.0.0/4, ff00::/8, 255.255.255.255) has one at an end.
    for ip in [lo, hi] {
        if never_exempt(ip) {
            return Err(
                "contains an unspecified, multicast or broadcast address, which are never exempt"
                    .to_owned(),
            );
        }
    }
    if let Some(meta) = V4_TABLE
        .iter()
        .chain(V6_TABLE.iter())
        .filter(|r| r.cloud_metadata)
        .find(|r| overlaps(net, r.net()))
    {
        return Err(format!(
            "contains the cloud metadata address {}, which is never exempt",
            meta.cidr
        ));
    }
    if let Net::V6(base, len) = net
        && len >= 96
        && prefix_eq128(base, 0xffff_0000_0000, 96)
    {
        return Err("is IPv4-mapped; write the IPv4 form".to_owned());
    }
    Ok(net)
}

fn parse_cidr(raw: &str) -> Result<Net, String> {
    let (addr, len) = match raw.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (raw, None),
    };
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| "is not a valid CIDR (bad address)".to_owned())?;
    let max: u8 = if ip.is_ipv4() { 32 } else { 128 };
    let len = match len {
        None => max,
        Some(l) if !l.is_empty() && l.len() <= 3 && l.bytes().all(|b| b.is_ascii_digit()) => l
            .parse::<u8>()
            .ok()
            .filter(|&l| l <= max)
            .ok_or_else(|| "is not a valid CIDR (prefix length out of range)".to_owned())?,
        Some(_) => return Err("is not a valid CIDR (bad prefix length)".to_owned()),
    };
    let net = match ip {
        IpAddr::V4(v4) => Net::V4(u32::from(v4), len),
        IpAddr::V6(v6) => Net::V6(u128::from(v6), len),
    };
    let (lo, _) = bounds(net);
    if lo != ip {
        return Err("is not a valid CIDR (host bits set after the prefix)".to_owned());
    }
    Ok(net)
}

/// First and last address of a network.
fn bounds(net: Net) -> (IpAddr, IpAddr) {
    match net {
        Net::V4(base, len) => {
            let host = u32::MAX.checked_shr(u32::from(len)).unwrap_or(0);
            (
                IpAddr::from((base & !host).to_be_bytes()),
                IpAddr::from((base | host).to_be_bytes()),
            )
        }
        Net::V6(base, len) => {
            let host = u128::MAX.checked_shr(u32::from(len)).unwrap_or(0);
            (
                IpAddr::from((base & !host).to_be_bytes()),
                IpAddr::from((base | host).to_be_bytes()),
            )
        }
    }
}

/// True when two networks of the same family share an address.
fn overlaps(a: Net, b: Net) -> bool {
    match (a, b) {
        (Net::V4(x, lx), Net::V4(y, ly)) => prefix_eq32(x, y, lx.min(ly)),
        (Net::V6(x, lx), Net::V6(y, ly)) => prefix_eq128(x, y, lx.min(ly)),
        _ => false,
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
