//! IP classification: is an address an ordinary public host, or in a special-purpose range?

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use crate::ip_tables::SpecialRange;
use crate::ip_tables::{V4_TABLE, V6_TABLE, embedding};

/// The IPv4 special-purpose table (IANA registry, multicast, cloud metadata).
pub fn ipv4_special_ranges() -> &'static [SpecialRange] {
    V4_TABLE
}

/// The IPv6 special-purpose table (IANA registry, multicast, site-local, cloud metadata).
/// Embedding ranges (mapped, NAT64, 6to4, Teredo, ...) and "outside 2000::/3" are judged in code.
pub fn ipv6_special_ranges() -> &'static [SpecialRange] {
    V6_TABLE
}

/// The class of an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpClass {
    /// An ordinary public unicast address.
    Global,
    /// In a special-purpose range (directly, or through the IPv4 address it embeds).
    Special(&'static SpecialRange),
}

impl IpClass {
    /// True for [`IpClass::Global`].
    pub fn is_global(self) -> bool {
        matches!(self, IpClass::Global)
    }
}

/// Classifies an address against the complete special-purpose tables.
///
/// IPv6 addresses that carry an IPv4 address (IPv4-mapped, IPv4-compatible, IPv4-translated,
/// NAT64 64:ff9b::/96 and 64:ff9b:1::/48, 6to4, Teredo client and server, ISATAP interface
/// identifiers) are judged by every IPv4 address they may carry: if one is special, the result
/// names that IPv4 range.
pub fn classify(ip: IpAddr) -> IpClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// Classifies an IPv4 address (longest matching prefix wins).
pub fn classify_v4(ip: Ipv4Addr) -> IpClass {
    longest_match(V4_TABLE, |r| r.net().contains_v4(ip)).map_or(IpClass::Global, IpClass::Special)
}

/// Classifies an IPv6 address, including the IPv4 addresses it embeds.
pub fn classify_v6(ip: Ipv6Addr) -> IpClass {
    let direct = longest_match(V6_TABLE, |r| r.net().contains_v6(ip));
    // Exact special addresses (::, ::1, metadata) keep their own name: "::1" is loopback, not
    // the IPv4-compatible form of 0.0.0.1.
    if let Some(range) = direct
        && (range.cloud_metadata || range.net().prefix_len() == 128)
    {
        return IpClass::Special(range);
    }
    let mut embedded_special: Option<&'static SpecialRange> = None;
    for (i, v4) in embedded_candidates(ip).into_iter().enumerate() {
        let Some(v4) = v4 else { continue };
        // Alternative layouts read zero padding as 0.0.0.0/8 on ordinary addresses; only the
        // standard embedding may be named "this network" (the container range denies anyway).
        if i > 0 && v4.octets()[0] == 0 {
            continue;
        }
        if let IpClass::Special(range) = classify_v4(v4) {
            // A metadata hit is the most telling name; otherwise keep the first.
            if embedded_special.is_none() || range.cloud_metadata {
                embedded_special = Some(range);
            }
        }
    }
    if let Some(range) = embedded_special {
        return IpClass::Special(range);
    }
    let in_range = |r: &SpecialRange| r.net().contains_v6(ip);
    if in_range(&embedding::MAPPED)
        || in_range(&embedding::NAT64_WELL_KNOWN)
        || in_range(&embedding::SIX_TO_FOUR)
    {
        // The embedded IPv4 address is public, and these forms reach exactly that host.
        return IpClass::Global;
    }
    for container in [
        &embedding::COMPATIBLE,
        &embedding::TRANSLATED,
        &embedding::NAT64_LOCAL_USE,
        &embedding::TEREDO,
    ] {
        if in_range(container) {
            return IpClass::Special(container);
        }
    }
    if let Some(range) = direct {
        return IpClass::Special(range);
    }
    if !in_range(&embedding::GLOBAL_UNICAST) {
        return IpClass::Special(&embedding::RESERVED);
    }
    IpClass::Global
}

/// The IPv4 address an IPv6 address carries in its standard embedding, if it has one.
///
/// IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d` (not `::` or `::1`),
/// IPv4-translated `::ffff:0:a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`, local-use NAT64 in
/// `64:ff9b:1::/48` (the /96 layout when bits 48..96 are zero, else the RFC 6052 /48 layout),
/// 6to4 `2002:AABB:CCDD::/48`, Teredo (the client address: bits 96..128 inverted).
pub fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(ip);
    let low32 = low_v4(bits);
    let in_range = |r: &crate::ip_tables::SpecialRange| r.net().contains_v6(ip);
    if in_range(&embedding::MAPPED)
        || in_range(&embedding::TRANSLATED)
        || in_range(&embedding::NAT64_WELL_KNOWN)
    {
        return Some(low32);
    }
    if in_range(&embedding::COMPATIBLE) {
        return (bits > 1).then_some(low32);
    }
    if in_range(&embedding::NAT64_LOCAL_USE) {
        let middle_zero = (bits >> 32) & ((1u128 << 48) - 1) == 0;
        return Some(if middle_zero {
            low32
        } else {
            nat64_layout(bits, 48)
        });
    }
    if in_range(&embedding::SIX_TO_FOUR) {
        return Some(v4_at(bits, 80));
    }
    if in_range(&embedding::TEREDO) {
        return Some(Ipv4Addr::from(!low_u32(bits)));
    }
    None
}

/// Every IPv4 address the address may carry, for judging: the standard embedding plus the
/// alternative layouts (Teredo server, every RFC 6052 layout in the local-use NAT64 prefix,
/// ISATAP interface identifiers).
fn embedded_candidates(ip: Ipv6Addr) -> [Option<Ipv4Addr>; 6] {
    let bits = u128::from(ip);
    let mut out = [embedded_ipv4(ip), None, None, None, None, None];
    if embedding::TEREDO.net().contains_v6(ip) {
        out[1] = Some(v4_at(bits, 64));
    }
    if embedding::NAT64_LOCAL_USE.net().contains_v6(ip) {
        out[1] = Some(low_v4(bits));
        out[2] = Some(nat64_layout(bits, 48));
        out[3] = Some(nat64_layout(bits, 56));
        out[4] = Some(nat64_layout(bits, 64));
    }
    // ISATAP (RFC 5214): interface identifier 0000:5efe or 0200:5efe followed by an IPv4 address
    // that the ISATAP router forwards to.
    let iid_high = (bits >> 32) & 0xffff_ffff;
    if iid_high == 0x0000_5efe || iid_high == 0x0200_5efe {
        out[5] = Some(low_v4(bits));
    }
    out
}

fn low_u32(bits: u128) -> u32 {
    u32::try_from(bits & 0xffff_ffff).unwrap_or(0)
}

fn low_v4(bits: u128) -> Ipv4Addr {
    Ipv4Addr::from(low_u32(bits))
}

/// The IPv4 address stored contiguously starting `from_low` bits above the least significant bit.
fn v4_at(bits: u128, from_low: u32) -> Ipv4Addr {
    low_v4(bits >> from_low)
}

/// RFC 6052 section 2.2: for prefix lengths 40..=64 the IPv4 address skips bits 64..72 (the
/// "u" octet). `prefix` is the NAT64 prefix length (48, 56 or 64).
fn nat64_layout(bits: u128, prefix: u32) -> Ipv4Addr {
    let bytes = bits.to_be_bytes();
    let start = usize::try_from(prefix / 8).unwrap_or(0);
    let mut v4 = [0u8; 4];
    let mut idx = start;
    for slot in &mut v4 {
        if idx == 8 {
            idx = 9; // skip the u octet
        }
        *slot = bytes.get(idx).copied().unwrap_or(0);
        idx += 1;
    }
    Ipv4Addr::from(v4)
}

fn longest_match(
    table: &'static [SpecialRange],
    contains: impl Fn(&SpecialRange) -> bool,
) -> Option<&'static SpecialRange> {
    table
        .iter()
        .filter(|r| contains(r))
        .max_by_key(|r| r.net().prefix_len())
}

/// The address a socket would really reach: IPv4-mapped IPv6 becomes the IPv4 address.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        IpAddr::V4(_) => ip,
    }
}

#[cfg(test)]
#[path = "ip_tests.rs"]
mod tests;
