//! Paddock's pure decisions: no sockets, files, clocks or async.
#![forbid(unsafe_code)]

pub mod config;
pub mod egress;
pub mod host;
pub mod ip;
mod ip_tables;
pub mod literal;
pub mod sandbox;

pub use config::{PolicyConfig, PolicyError};
pub use egress::{
    Decision, Denied, EgressPolicy, EgressRequest, Method, Rule, Scheme, ValidatedAddr, Verdict,
    fixed_address,
};
pub use host::{DnsName, Host, HostError, HostPattern, parse_authority, parse_port};
pub use ip::{
    IpClass, SpecialRange, canonical, classify, embedded_ipv4, ipv4_special_ranges,
    ipv6_special_ranges,
};
pub use literal::{Literal, parse_literal};
