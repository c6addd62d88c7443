//! Paddock's pure decisions: no sockets, files, clocks or async.
#![forbid(unsafe_code)]

pub mod broker;
pub mod config;
pub mod control;
pub mod egress;
pub mod host;
pub mod ip;
mod ip_tables;
pub mod literal;
pub mod sandbox;
pub mod scrub;
pub mod usage;

pub use broker::{
    BodyGuard, BrokerDecision, BrokerError, BrokerRequest, BrokerRule, HANDLE_MIN_BODY,
    HANDLE_PREFIX, HANDLE_RANDOM_BYTES, HandleSet, HandleSpec, HeaderRewrite, SecretValue,
    StreamScrubber, find_handle_shapes, generate_handle, is_handle_shaped,
};
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
pub use scrub::{
    Finding, MIN_SECRET_LEN, ScrubError, Scrubber, SecretKind, pattern_scan_steps, scrub,
    scrub_bytes,
};
pub use usage::{
    BodyFormat, Budget, BudgetConfig, BudgetConfigError, BudgetRule, BudgetState, BudgetTotals,
    TokenUsage, UsageMeter, UsageReport, parse_usage_event, parse_usage_json,
};
