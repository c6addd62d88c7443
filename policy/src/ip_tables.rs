//! The special-purpose address tables: IANA's IPv4 and IPv6 registries plus cloud metadata endpoints.
//!
//! Sources: the IANA IPv4 and IPv6 Special-Purpose Address Registries (every entry, including the
//! ones IANA marks globally reachable: an agent has no business talking to an anycast relay or an
//! AS112 sink), the IPv4 multicast and IPv6 multicast/site-local blocks of the address-space
//! registries, and the link-local or otherwise fixed metadata endpoints of the common clouds.
//! Lookups pick the longest matching prefix, so a metadata /32 wins over link-local's /16.

use std::net::{Ipv4Addr, Ipv6Addr};

/// One entry of the special-purpose tables.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SpecialRange {
    /// Human name used in deny reasons, e.g. `"loopback"` or `"cloud-metadata (169.254.169.254)"`.
    pub name: &'static str,
    /// The block in CIDR notation, e.g. `"127.0.0.0/8"`.
    pub cidr: &'static str,
    /// True for cloud instance-metadata and platform endpoints (credential theft targets).
    pub cloud_metadata: bool,
    net: Net,
}

/// The numeric form of `cidr`, checked against the string by a unit test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Net {
    V4(u32, u8),
    V6(u128, u8),
}

impl Net {
    pub(crate) fn contains_v4(self, ip: Ipv4Addr) -> bool {
        match self {
            Net::V4(base, len) => prefix_eq32(u32::from(ip), base, len),
            Net::V6(..) => false,
        }
    }

    pub(crate) fn contains_v6(self, ip: Ipv6Addr) -> bool {
        match self {
            Net::V6(base, len) => prefix_eq128(u128::from(ip), base, len),
            Net::V4(..) => false,
        }
    }

    pub(crate) fn prefix_len(self) -> u8 {
        match self {
            Net::V4(_, len) | Net::V6(_, len) => len,
        }
    }
}

pub(crate) fn prefix_eq32(a: u32, b: u32, len: u8) -> bool {
    let mask = u32::MAX
        .checked_shl(32 - u32::from(len.min(32)))
        .unwrap_or(0);
    (a & mask) == (b & mask)
}

pub(crate) fn prefix_eq128(a: u128, b: u128, len: u8) -> bool {
    let mask = u128::MAX
        .checked_shl(128 - u32::from(len.min(128)))
        .unwrap_or(0);
    (a & mask) == (b & mask)
}

impl SpecialRange {
    pub(crate) fn net(&self) -> Net {
        self.net
    }
}

const fn v4(name: &'static str, cidr: &'static str, a: [u8; 4], len: u8) -> SpecialRange {
    SpecialRange {
        name,
        cidr,
        cloud_metadata: false,
        net: Net::V4(u32::from_be_bytes(a), len),
    }
}

const fn v4_meta(name: &'static str, cidr: &'static str, a: [u8; 4]) -> SpecialRange {
    SpecialRange {
        name,
        cidr,
        cloud_metadata: true,
        net: Net::V4(u32::from_be_bytes(a), 32),
    }
}

const fn v6(name: &'static str, cidr: &'static str, segs: [u16; 8], len: u8) -> SpecialRange {
    SpecialRange {
        name,
        cidr,
        cloud_metadata: false,
        net: Net::V6(segs_to_u128(segs), len),
    }
}

const fn v6_meta(name: &'static str, cidr: &'static str, segs: [u16; 8]) -> SpecialRange {
    SpecialRange {
        name,
        cidr,
        cloud_metadata: true,
        net: Net::V6(segs_to_u128(segs), 128),
    }
}

const fn segs_to_u128(s: [u16; 8]) -> u128 {
    let mut out: u128 = 0;
    let mut i = 0;
    while i < 8 {
        // Widening u16 -> u128 is lossless; `From` is not const.
        out = (out << 16) | (s[i] as u128);
        i += 1;
    }
    out
}

/// IPv4 special-purpose ranges (IANA registry, plus multicast and cloud metadata).
pub static V4_TABLE: &[SpecialRange] = &[
    // RFC 791: "this network"; only valid as a source. Linux connects 0.0.0.0/8 to the local host.
    v4("this-network", "0.0.0.0/8", [0, 0, 0, 0], 8),
    // RFC 1122: the unspecified address; connect() to it reaches the local host.
    v4("unspecified", "0.0.0.0/32", [0, 0, 0, 0], 32),
    // RFC 1918 private networks.
    v4("private", "10.0.0.0/8", [10, 0, 0, 0], 8),
    v4("private", "172.16.0.0/12", [172, 16, 0, 0], 12),
    v4("private", "192.168.0.0/16", [192, 168, 0, 0], 16),
    // RFC 6598 shared address space (carrier-grade NAT), internal to providers.
    v4(
        "shared-address-space (cgnat)",
        "100.64.0.0/10",
        [100, 64, 0, 0],
        10,
    ),
    // RFC 1122 loopback.
    v4("loopback", "127.0.0.0/8", [127, 0, 0, 0], 8),
    // RFC 3927 link-local: where most metadata services live.
    v4("link-local", "169.254.0.0/16", [169, 254, 0, 0], 16),
    // RFC 6890 IETF protocol assignments and its more specific entries.
    v4(
        "ietf-protocol-assignments",
        "192.0.0.0/24",
        [192, 0, 0, 0],
        24,
    ),
    v4(
        "ipv4-service-continuity-prefix",
        "192.0.0.0/29",
        [192, 0, 0, 0],
        29,
    ),
    v4("ipv4-dummy-address", "192.0.0.8/32", [192, 0, 0, 8], 32),
    v4(
        "port-control-protocol-anycast",
        "192.0.0.9/32",
        [192, 0, 0, 9],
        32,
    ),
    v4("turn-anycast", "192.0.0.10/32", [192, 0, 0, 10], 32),
    v4(
        "nat64-dns64-discovery",
        "192.0.0.170/32",
        [192, 0, 0, 170],
        32,
    ),
    v4(
        "nat64-dns64-discovery",
        "192.0.0.171/32",
        [192, 0, 0, 171],
        32,
    ),
    // RFC 5737 documentation (TEST-NET-1/2/3).
    v4(
        "documentation (test-net-1)",
        "192.0.2.0/24",
        [192, 0, 2, 0],
        24,
    ),
    v4(
        "documentation (test-net-2)",
        "198.51.100.0/24",
        [198, 51, 100, 0],
        24,
    ),
    v4(
        "documentation (test-net-3)",
        "203.0.113.0/24",
        [203, 0, 113, 0],
        24,
    ),
    // RFC 7535 AS112-v4 and RFC 7534 direct delegation AS112: DNS sinks, not web services.
    v4("as112-v4", "192.31.196.0/24", [192, 31, 196, 0], 24),
    v4(
        "as112-direct-delegation",
        "192.175.48.0/24",
        [192, 175, 48, 0],
        24,
    ),
    // RFC 7450 automatic multicast tunneling relay anycast.
    v4("amt", "192.52.193.0/24", [192, 52, 193, 0], 24),
    // RFC 7526 deprecated 6to4 relay anycast, and RFC 6751 6a44 relay anycast within it.
    v4(
        "6to4-relay-anycast (deprecated)",
        "192.88.99.0/24",
        [192, 88, 99, 0],
        24,
    ),
    v4("6a44-relay-anycast", "192.88.99.2/32", [192, 88, 99, 2], 32),
    // RFC 2544 benchmarking.
    v4("benchmarking", "198.18.0.0/15", [198, 18, 0, 0], 15),
    // RFC 5771 multicast (address-space registry), never a unicast destination.
    v4("multicast", "224.0.0.0/4", [224, 0, 0, 0], 4),
    // RFC 1112 reserved for future use (class E).
    v4("reserved", "240.0.0.0/4", [240, 0, 0, 0], 4),
    // RFC 919 limited broadcast.
    v4(
        "limited-broadcast",
        "255.255.255.255/32",
        [255, 255, 255, 255],
        32,
    ),
    // Cloud metadata and platform endpoints: named so the deny reason says what was targeted.
    // AWS, GCP, Azure, OCI, OpenStack, DigitalOcean, Hetzner, ... instance metadata.
    v4_meta(
        "cloud-metadata (169.254.169.254)",
        "169.254.169.254/32",
        [169, 254, 169, 254],
    ),
    // AWS ECS task metadata and credentials endpoint.
    v4_meta(
        "cloud-metadata (169.254.170.2)",
        "169.254.170.2/32",
        [169, 254, 170, 2],
    ),
    // AWS EKS pod identity agent.
    v4_meta(
        "cloud-metadata (169.254.170.23)",
        "169.254.170.23/32",
        [169, 254, 170, 23],
    ),
    // Tencent Cloud metadata.
    v4_meta(
        "cloud-metadata (169.254.0.23)",
        "169.254.0.23/32",
        [169, 254, 0, 23],
    ),
    // Alibaba Cloud metadata.
    v4_meta(
        "cloud-metadata (100.100.100.200)",
        "100.100.100.200/32",
        [100, 100, 100, 200],
    ),
    // Azure WireServer / host agent: a public-looking address that hands out VM secrets.
    v4_meta(
        "cloud-metadata (168.63.129.16)",
        "168.63.129.16/32",
        [168, 63, 129, 16],
    ),
    // Oracle Cloud legacy metadata endpoint.
    v4_meta(
        "cloud-metadata (192.0.0.192)",
        "192.0.0.192/32",
        [192, 0, 0, 192],
    ),
];

/// IPv6 special-purpose ranges (IANA registry, plus multicast, site-local and cloud metadata).
///
/// The ranges that carry an IPv4 address (mapped, compatible, NAT64, 6to4, Teredo) are listed in
/// [`EMBEDDING`] and judged in `ip.rs` by the embedded address as well.
pub static V6_TABLE: &[SpecialRange] = &[
    // RFC 4291 unspecified and loopback.
    v6("unspecified", "::/128", [0, 0, 0, 0, 0, 0, 0, 0], 128),
    v6("loopback", "::1/128", [0, 0, 0, 0, 0, 0, 0, 1], 128),
    // RFC 6666 discard-only prefix and RFC 9780 dummy IPv6 prefix.
    v6("discard-only", "100::/64", [0x100, 0, 0, 0, 0, 0, 0, 0], 64),
    v6(
        "dummy-ipv6-prefix",
        "100:0:0:1::/64",
        [0x100, 0, 0, 1, 0, 0, 0, 0],
        64,
    ),
    // RFC 2928 IETF protocol assignments and its more specific entries.
    v6(
        "ietf-protocol-assignments",
        "2001::/23",
        [0x2001, 0, 0, 0, 0, 0, 0, 0],
        23,
    ),
    v6(
        "port-control-protocol-anycast",
        "2001:1::1/128",
        [0x2001, 1, 0, 0, 0, 0, 0, 1],
        128,
    ),
    v6(
        "turn-anycast",
        "2001:1::2/128",
        [0x2001, 1, 0, 0, 0, 0, 0, 2],
        128,
    ),
    v6(
        "dns-sd-srp-anycast",
        "2001:1::3/128",
        [0x2001, 1, 0, 0, 0, 0, 0, 3],
        128,
    ),
    v6(
        "benchmarking",
        "2001:2::/48",
        [0x2001, 2, 0, 0, 0, 0, 0, 0],
        48,
    ),
    v6("amt", "2001:3::/32", [0x2001, 3, 0, 0, 0, 0, 0, 0], 32),
    v6(
        "as112-v6",
        "2001:4:112::/48",
        [0x2001, 4, 0x112, 0, 0, 0, 0, 0],
        48,
    ),
    v6(
        "orchid (deprecated)",
        "2001:10::/28",
        [0x2001, 0x10, 0, 0, 0, 0, 0, 0],
        28,
    ),
    v6(
        "orchid-v2",
        "2001:20::/28",
        [0x2001, 0x20, 0, 0, 0, 0, 0, 0],
        28,
    ),
    v6(
        "drone-remote-id-det",
        "2001:30::/28",
        [0x2001, 0x30, 0, 0, 0, 0, 0, 0],
        28,
    ),
    // RFC 3849 and RFC 9637 documentation.
    v6(
        "documentation",
        "2001:db8::/32",
        [0x2001, 0xdb8, 0, 0, 0, 0, 0, 0],
        32,
    ),
    v6(
        "documentation",
        "3fff::/20",
        [0x3fff, 0, 0, 0, 0, 0, 0, 0],
        20,
    ),
    // RFC 7534 direct delegation AS112 service.
    v6(
        "as112-direct-delegation",
        "2620:4f:8000::/48",
        [0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0],
        48,
    ),
    // RFC 9602 segment routing SIDs.
    v6("srv6-sids", "5f00::/16", [0x5f00, 0, 0, 0, 0, 0, 0, 0], 16),
    // RFC 4193 unique local addresses (the IPv6 private networks).
    v6("unique-local", "fc00::/7", [0xfc00, 0, 0, 0, 0, 0, 0, 0], 7),
    // RFC 4291 link-local unicast.
    v6("link-local", "fe80::/10", [0xfe80, 0, 0, 0, 0, 0, 0, 0], 10),
    // RFC 3879 deprecated site-local (address-space registry), still routed internally by some.
    v6(
        "site-local (deprecated)",
        "fec0::/10",
        [0xfec0, 0, 0, 0, 0, 0, 0, 0],
        10,
    ),
    // RFC 4291 multicast.
    v6("multicast", "ff00::/8", [0xff00, 0, 0, 0, 0, 0, 0, 0], 8),
    // AWS instance metadata (IMDS) and EKS pod identity over IPv6 (Nitro).
    v6_meta(
        "cloud-metadata (fd00:ec2::254)",
        "fd00:ec2::254/128",
        [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254],
    ),
    v6_meta(
        "cloud-metadata (fd00:ec2::23)",
        "fd00:ec2::23/128",
        [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23],
    ),
];

/// Ranges whose addresses carry an IPv4 address, and the blocks outside global unicast.
pub mod embedding {
    use super::{SpecialRange, v6};

    /// RFC 4291 IPv4-mapped: `::ffff:a.b.c.d` is the IPv4 host itself.
    pub static MAPPED: SpecialRange = v6(
        "ipv4-mapped",
        "::ffff:0:0/96",
        [0, 0, 0, 0, 0, 0xffff, 0, 0],
        96,
    );
    /// RFC 4291 deprecated IPv4-compatible: `::a.b.c.d`; never a valid destination.
    pub static COMPATIBLE: SpecialRange = v6(
        "ipv4-compatible (deprecated)",
        "::/96",
        [0, 0, 0, 0, 0, 0, 0, 0],
        96,
    );
    /// RFC 2765 IPv4-translated (SIIT): `::ffff:0:a.b.c.d`; not global unicast.
    pub static TRANSLATED: SpecialRange = v6(
        "ipv4-translated",
        "::ffff:0:0:0/96",
        [0, 0, 0, 0, 0xffff, 0, 0, 0],
        96,
    );
    /// RFC 6052 well-known NAT64 prefix: globally reachable, judged by the embedded IPv4.
    pub static NAT64_WELL_KNOWN: SpecialRange = v6(
        "nat64-well-known",
        "64:ff9b::/96",
        [0x64, 0xff9b, 0, 0, 0, 0, 0, 0],
        96,
    );
    /// RFC 8215 local-use NAT64 prefix: not globally reachable.
    pub static NAT64_LOCAL_USE: SpecialRange = v6(
        "nat64-local-use",
        "64:ff9b:1::/48",
        [0x64, 0xff9b, 1, 0, 0, 0, 0, 0],
        48,
    );
    /// RFC 3056 6to4: judged by the IPv4 address in bits 16..48.
    pub static SIX_TO_FOUR: SpecialRange =
        v6("6to4", "2002::/16", [0x2002, 0, 0, 0, 0, 0, 0, 0], 16);
    /// RFC 4380 Teredo: a dead tunnelling scheme; denied, named by its embedded IPv4 when special.
    pub static TEREDO: SpecialRange = v6("teredo", "2001::/32", [0x2001, 0, 0, 0, 0, 0, 0, 0], 32);
    /// Everything outside 2000::/3 not listed elsewhere is reserved by the IETF (RFC 4291).
    pub static RESERVED: SpecialRange = v6(
        "reserved-by-ietf",
        "::/0 outside 2000::/3",
        [0, 0, 0, 0, 0, 0, 0, 0],
        0,
    );
    /// RFC 4291 global unicast: the only block that holds public IPv6 hosts.
    pub static GLOBAL_UNICAST: SpecialRange = v6(
        "global-unicast",
        "2000::/3",
        [0x2000, 0, 0, 0, 0, 0, 0, 0],
        3,
    );
}
