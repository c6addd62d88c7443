//! Host normalisation: the only way to turn untrusted host text into a [`Host`].

use std::fmt;
use std::net::IpAddr;

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};

use crate::literal::{Literal, parse_literal};

/// Longest host text looked at; longer input is refused before any processing.
const MAX_RAW_LEN: usize = 1024;
/// RFC 1035 limits.
const MAX_NAME_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;

/// A validated DNS name: ASCII (punycode), lower-case, no trailing dot, LDH labels of 1..=63
/// characters, at most 253 characters, not numeric-looking.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DnsName(String);

impl DnsName {
    /// The normalised name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A normalised host: an IP address or a DNS name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// An IP literal in any spelling, decoded (zone id dropped).
    Ip(IpAddr),
    /// A DNS name in its ASCII form.
    Name(DnsName),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(IpAddr::V6(v6)) => write!(f, "[{v6}]"),
            Host::Ip(IpAddr::V4(v4)) => write!(f, "{v4}"),
            Host::Name(name) => f.write_str(name.as_str()),
        }
    }
}

/// Why host text was refused. Messages never echo the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// Nothing to parse.
    #[error("the host is empty")]
    Empty,
    /// Input longer than any legitimate host.
    #[error("the host is longer than {MAX_RAW_LEN} bytes")]
    TooLong,
    /// `%` outside an IPv6 zone id.
    #[error("the host is percent-encoded, which is not accepted")]
    PercentEncoded,
    /// `user@host`.
    #[error("the host carries userinfo ('@'), which is not accepted")]
    Userinfo,
    /// Whitespace or a control character.
    #[error("the host contains whitespace or a control character")]
    ControlOrSpace,
    /// A character that has no place in a host name.
    #[error("the host contains the character {0:?}, which is not allowed in a host name")]
    InvalidChar(char),
    /// `a..b`, a leading dot, or a second trailing dot.
    #[error("the host has an empty label")]
    EmptyLabel,
    /// A label over 63 characters.
    #[error("a label of the host is longer than {MAX_LABEL_LEN} characters")]
    LabelTooLong,
    /// A name over 253 characters.
    #[error("the host name is longer than {MAX_NAME_LEN} characters")]
    NameTooLong,
    /// A label starting or ending with '-'.
    #[error("a label of the host starts or ends with '-'")]
    Hyphen,
    /// UTS-46 processing failed (disallowed code point, bad punycode, bidi rules, ...).
    #[error("the host is not a valid internationalised domain name")]
    Idna,
    /// Non-ASCII text that maps onto plain ASCII (full-width letters, soft hyphens, ...).
    #[error("the host disguises an ASCII label with non-ASCII characters")]
    UnicodeDisguise,
    /// Numeric-looking but not a valid address: never resolved as a name.
    #[error("the host looks like an IP address but is not a valid one: {0}")]
    MalformedNumeric(&'static str),
    /// Port text that is not a number in 1..=65535.
    #[error("the port is not a number between 1 and 65535")]
    InvalidPort,
    /// No port in the authority and no default.
    #[error("the authority has no port")]
    MissingPort,
    /// An unbracketed IPv6 address in an authority.
    #[error("an IPv6 address in an authority must be in brackets")]
    UnbracketedIpv6,
    /// A host pattern that is neither `name` nor `*.name`.
    #[error("a host pattern is `name` or `*.name` (any sub-domain); {0}")]
    InvalidPattern(&'static str),
}

impl Host {
    /// Normalises the host part of an authority or URL.
    ///
    /// Lower-cases, removes one trailing dot, maps through IDNA UTS-46 to ASCII, then decides
    /// IP literal (any spelling) or DNS name. Percent-encoding, userinfo, whitespace, control
    /// characters, backslashes, underscores, empty labels and over-long names are errors;
    /// a numeric-looking host that is not a valid address is [`HostError::MalformedNumeric`].
    pub fn parse(raw: &str) -> Result<Host, HostError> {
        if raw.is_empty() {
            return Err(HostError::Empty);
        }
        if raw.len() > MAX_RAW_LEN {
            return Err(HostError::TooLong);
        }
        if raw.starts_with('[') || raw.contains(':') {
            check_bracket_chars(raw)?;
            return match parse_literal(raw) {
                Literal::Ip(ip) => Ok(Host::Ip(ip)),
                Literal::Malformed(why) => Err(HostError::MalformedNumeric(why)),
                Literal::Name => Err(HostError::MalformedNumeric("not an IPv6 address")),
            };
        }
        check_name_chars(raw)?;
        let ascii = to_ascii(raw)?;
        let trimmed = match ascii.strip_suffix('.') {
            Some(t) if t.ends_with('.') => return Err(HostError::EmptyLabel),
            Some(t) => t,
            None => ascii.as_str(),
        };
        if trimmed.is_empty() {
            return Err(HostError::Empty);
        }
        match parse_literal(trimmed) {
            Literal::Ip(ip) => return Ok(Host::Ip(ip)),
            Literal::Malformed(why) => return Err(HostError::MalformedNumeric(why)),
            Literal::Name => {}
        }
        validate_dns(trimmed)?;
        Ok(Host::Name(DnsName(trimmed.to_owned())))
    }

    /// The DNS name, if this host is one.
    pub fn name(&self) -> Option<&DnsName> {
        match self {
            Host::Name(n) => Some(n),
            Host::Ip(_) => None,
        }
    }
}

fn check_bracket_chars(raw: &str) -> Result<(), HostError> {
    for c in raw.chars() {
        if c.is_whitespace() || c.is_control() {
            return Err(HostError::ControlOrSpace);
        }
        if c == '@' {
            return Err(HostError::Userinfo);
        }
        if !(c.is_ascii_alphanumeric()
            || matches!(c, ':' | '.' | '[' | ']' | '%' | '-' | '_' | '~'))
        {
            return Err(HostError::InvalidChar(c));
        }
    }
    Ok(())
}

/// Refuses, before IDNA mapping, everything a URL parser would treat as structure or that
/// UTS-46 might silently map away.
fn check_name_chars(raw: &str) -> Result<(), HostError> {
    for c in raw.chars() {
        if c.is_whitespace() || c.is_control() {
            return Err(HostError::ControlOrSpace);
        }
        match c {
            '%' => return Err(HostError::PercentEncoded),
            '@' => return Err(HostError::Userinfo),
            c if c.is_ascii_alphanumeric() || c == '-' || c == '.' => {}
            c if c.is_ascii() => return Err(HostError::InvalidChar(c)),
            // Non-ASCII goes to UTS-46, which rejects disallowed code points.
            _ => {}
        }
    }
    Ok(())
}

/// The dots UTS-46 maps to '.': ASCII full stop, ideographic, full-width and half-width.
fn is_dot(c: char) -> bool {
    matches!(c, '.' | '\u{3002}' | '\u{ff0e}' | '\u{ff61}')
}

fn to_ascii(raw: &str) -> Result<String, HostError> {
    if raw.is_ascii() {
        // UTS-46 would also validate xn-- labels; keep that for ASCII input too.
        let lower = raw.to_ascii_lowercase();
        if !lower.split('.').any(|l| l.starts_with("xn--")) {
            return Ok(lower);
        }
    }
    let mapped = Uts46::new()
        .to_ascii(
            raw.as_bytes(),
            AsciiDenyList::STD3,
            Hyphens::Allow,
            DnsLength::Ignore,
        )
        .map_err(|_| HostError::Idna)?
        .into_owned();
    // A non-ASCII label must become a punycode label; if it maps onto plain ASCII it was a
    // disguise (full-width letters or digits, soft hyphens, ...) and is refused.
    let in_labels: Vec<&str> = raw.split(is_dot).collect();
    let out_labels: Vec<&str> = mapped.split('.').collect();
    if in_labels.len() != out_labels.len() {
        return Err(HostError::UnicodeDisguise);
    }
    for (inp, out) in in_labels.iter().zip(&out_labels) {
        if !inp.is_ascii() && !out.starts_with("xn--") {
            return Err(HostError::UnicodeDisguise);
        }
    }
    Ok(mapped)
}

fn validate_dns(name: &str) -> Result<(), HostError> {
    if name.len() > MAX_NAME_LEN {
        return Err(HostError::NameTooLong);
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(HostError::EmptyLabel);
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(HostError::LabelTooLong);
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(HostError::Hyphen);
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Err(HostError::InvalidChar(c));
        }
    }
    Ok(())
}

/// Splits an authority (`host`, `host:port`, `[v6]`, `[v6]:port`) and normalises the host.
///
/// Userinfo is an error, never stripped. Without a port, `default_port` is used; without
/// either, [`HostError::MissingPort`]. A port is 1..=65535 in ASCII digits.
pub fn parse_authority(raw: &str, default_port: Option<u16>) -> Result<(Host, u16), HostError> {
    if raw.is_empty() {
        return Err(HostError::Empty);
    }
    if raw.len() > MAX_RAW_LEN {
        return Err(HostError::TooLong);
    }
    if raw.contains('@') {
        return Err(HostError::Userinfo);
    }
    let (host_text, port_text) = if raw.starts_with('[') {
        let close = raw.find(']').ok_or(HostError::MalformedNumeric(
            "unbalanced brackets around an IPv6 address",
        ))?;
        let (host, rest) = raw.split_at(close + 1);
        if rest.is_empty() {
            (host, None)
        } else {
            match rest.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(HostError::InvalidPort),
            }
        }
    } else {
        match raw.matches(':').count() {
            0 => (raw, None),
            1 => match raw.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (raw, None),
            },
            _ => return Err(HostError::UnbracketedIpv6),
        }
    };
    let port = match port_text {
        Some(p) => parse_port(p)?,
        None => default_port
            .filter(|&p| p != 0)
            .ok_or(HostError::MissingPort)?,
    };
    let host = Host::parse(host_text)?;
    Ok((host, port))
}

/// A port: 1..=5 ASCII digits, value 1..=65535.
pub fn parse_port(text: &str) -> Result<u16, HostError> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HostError::InvalidPort);
    }
    match text.parse::<u16>() {
        Ok(0) | Err(_) => Err(HostError::InvalidPort),
        Ok(p) => Ok(p),
    }
}

/// An allowlist entry: `api.github.test` (exactly that name), `*.anthropic.test` (any name
/// below it, not the apex) or an IP address (exactly that address). Patterns are normalised
/// like hosts, and match the ASCII form only, so a homograph never matches.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPattern(PatternKind);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum PatternKind {
    Exact(DnsName),
    SubdomainsOf(DnsName),
    Ip(IpAddr),
}

impl HostPattern {
    /// Parses and normalises a pattern.
    pub fn parse(raw: &str) -> Result<HostPattern, HostError> {
        let (wildcard, rest) = match raw.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, raw),
        };
        if rest.contains('*') {
            return Err(HostError::InvalidPattern(
                "'*' is allowed only as the whole first label",
            ));
        }
        match (Host::parse(rest)?, wildcard) {
            (Host::Name(name), false) => Ok(HostPattern(PatternKind::Exact(name))),
            (Host::Name(name), true) => Ok(HostPattern(PatternKind::SubdomainsOf(name))),
            (Host::Ip(ip), false) => Ok(HostPattern(PatternKind::Ip(crate::ip::canonical(ip)))),
            (Host::Ip(_), true) => Err(HostError::InvalidPattern(
                "a wildcard cannot precede an IP address",
            )),
        }
    }

    /// True when `name` is matched (on the ASCII form).
    pub fn matches(&self, name: &DnsName) -> bool {
        match &self.0 {
            PatternKind::Exact(p) => p.as_str() == name.as_str(),
            PatternKind::SubdomainsOf(p) => name
                .as_str()
                .strip_suffix(p.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            PatternKind::Ip(_) => false,
        }
    }

    /// True when `host` is matched: names as [`HostPattern::matches`], addresses exactly.
    pub fn matches_host(&self, host: &Host) -> bool {
        match (host, &self.0) {
            (Host::Name(name), _) => self.matches(name),
            (Host::Ip(ip), PatternKind::Ip(p)) => crate::ip::canonical(*ip) == *p,
            (Host::Ip(_), _) => false,
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            PatternKind::Exact(n) => f.write_str(n.as_str()),
            PatternKind::SubdomainsOf(n) => write!(f, "*.{n}"),
            PatternKind::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

#[cfg(test)]
#[path = "host_tests.rs"]
mod tests;
