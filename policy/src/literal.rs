//! IP literals in every spelling a client library accepts (inet_aton forms, bracketed IPv6).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What a host string is, judged as a client library would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Literal {
    /// An IP address in some spelling.
    Ip(IpAddr),
    /// Not numeric-looking: a DNS name candidate (still to be validated as one).
    Name,
    /// Looks like an address but is not a valid one; must be denied, never resolved.
    Malformed(&'static str),
}

/// Parses `host` as an IP literal.
///
/// IPv4 follows inet_aton and the WHATWG URL IPv4 parser: one to four dot-separated parts, each
/// decimal, octal (leading `0`) or hex (`0x`), the last part filling the remaining bytes
/// (`127.1`, `0x7f000001`, `2130706433`, `0177.0.0.1`), one trailing dot tolerated. A host whose
/// last label is numeric, or whose labels are all numeric, is an address or `Malformed`.
/// Anything containing `:` or starting with `[` is IPv6: `[::1]`, `[fe80::1%eth0]` and
/// `[fe80::1%25eth0]` (zone id validated and dropped), or bare `::1`.
pub fn parse_literal(host: &str) -> Literal {
    if host.starts_with('[') || host.ends_with(']') {
        return match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(inner) => match parse_v6(inner) {
                Ok(ip) => Literal::Ip(IpAddr::V6(ip)),
                Err(why) => Literal::Malformed(why),
            },
            None => Literal::Malformed("unbalanced brackets around an IPv6 address"),
        };
    }
    if host.contains(':') {
        return match parse_v6(host) {
            Ok(ip) => Literal::Ip(IpAddr::V6(ip)),
            Err(why) => Literal::Malformed(why),
        };
    }
    parse_v4_like(host)
}

fn parse_v6(inner: &str) -> Result<Ipv6Addr, &'static str> {
    let (addr, zone) = match inner.split_once('%') {
        Some((addr, zone)) => (addr, Some(zone)),
        None => (inner, None),
    };
    if let Some(zone) = zone {
        // RFC 6874 spells the separator "%25" inside URLs.
        let zone = zone
            .strip_prefix("25")
            .filter(|z| !z.is_empty())
            .unwrap_or(zone);
        let valid = !zone.is_empty()
            && zone.len() <= 64
            && zone
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
        if !valid {
            return Err("invalid IPv6 zone id");
        }
    }
    addr.parse::<Ipv6Addr>().map_err(|_| "invalid IPv6 address")
}

/// True when a label is spelled like an inet_aton number part (digits, or 0x + hex digits).
fn numeric_label(label: &str) -> bool {
    let b = label.as_bytes();
    if b.is_empty() {
        return false;
    }
    if b.len() >= 2 && b[0] == b'0' && (b[1] == b'x' || b[1] == b'X') {
        return b[2..].iter().all(u8::is_ascii_hexdigit);
    }
    b.iter().all(u8::is_ascii_digit)
}

fn parse_v4_like(host: &str) -> Literal {
    let trimmed = host.strip_suffix('.').unwrap_or(host);
    if trimmed.is_empty() {
        return Literal::Name;
    }
    // Judge "numeric-looking" on the last non-empty label, so "1.2.3.4.." is not a name.
    let last_numeric = trimmed
        .trim_end_matches('.')
        .rsplit('.')
        .next()
        .is_some_and(numeric_label);
    if !last_numeric {
        return Literal::Name;
    }
    let labels: Vec<&str> = trimmed.split('.').collect();
    if labels.len() > 4 {
        return Literal::Malformed("an IPv4 address has at most four parts");
    }
    let mut parts = [0u32; 4];
    for (slot, label) in parts.iter_mut().zip(&labels) {
        match parse_part(label) {
            Ok(v) => *slot = v,
            Err(why) => return Literal::Malformed(why),
        }
    }
    let n = labels.len();
    let (head, last) = (&parts[..n - 1], parts[n - 1]);
    if head.iter().any(|&p| p > 255) {
        return Literal::Malformed("an IPv4 address part before the last exceeds 255");
    }
    let last_bits = 8 * (5 - u32::try_from(n).unwrap_or(4));
    if last_bits < 32 && last >= (1u32 << last_bits) {
        return Literal::Malformed("the last IPv4 address part is too large");
    }
    let mut value: u32 = 0;
    for (i, &p) in head.iter().enumerate() {
        let shift = 24 - 8 * u32::try_from(i).unwrap_or(0);
        value |= p << shift;
    }
    value |= last;
    Literal::Ip(IpAddr::V4(Ipv4Addr::from(value)))
}

fn parse_part(label: &str) -> Result<u32, &'static str> {
    let b = label.as_bytes();
    let (digits, radix) = if b.len() >= 2 && b[0] == b'0' && (b[1] == b'x' || b[1] == b'X') {
        (&label[2..], 16)
    } else if b.len() >= 2 && b[0] == b'0' {
        (&label[1..], 8)
    } else {
        (label, 10)
    };
    if digits.is_empty() {
        return if radix == 16 {
            Err("an IPv4 hex part has no digits")
        } else {
            Err("an IPv4 address part is empty")
        };
    }
    let mut value: u32 = 0;
    for c in digits.chars() {
        let d = c.to_digit(radix).ok_or(match radix {
            8 => "an IPv4 octal part has a digit 8 or 9",
            16 => "an IPv4 hex part has a non-hex digit",
            _ => "an IPv4 decimal part has a non-digit",
        })?;
        value = value
            .checked_mul(radix)
            .and_then(|v| v.checked_add(d))
            .ok_or("an IPv4 address part overflows 32 bits")?;
    }
    Ok(value)
}

#[cfg(test)]
#[path = "literal_tests.rs"]
mod tests;
