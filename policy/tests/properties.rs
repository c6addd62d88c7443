//! Property tests: every address in a denied range stays denied in every literal spelling and
//! every IPv6 embedding; parsing never panics and yields only well-formed names.
#![allow(clippy::unwrap_used, clippy::panic)] // test helpers fail loudly by design

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use paddock_policy::{
    EgressPolicy, EgressRequest, Host, IpClass, Literal, PolicyConfig, Scheme, Verdict, classify,
    ipv4_special_ranges, ipv6_special_ranges, parse_authority, parse_literal,
};
use proptest::prelude::*;

fn cases() -> ProptestConfig {
    ProptestConfig {
        cases: 2048,
        ..ProptestConfig::default()
    }
}

/// A policy as permissive as the config allows for names (everything is a write/tunnel host is
/// impossible, so use broad wildcards) but with no allow_ranges: only the address rule can deny.
fn policy() -> EgressPolicy {
    PolicyConfig {
        approved_write_hosts: vec!["*.test".into()],
        tunnel_hosts: vec!["*.test".into()],
        tunnel_ports: vec![443],
        allowed_ports: vec![80, 443],
        allow_ranges: vec![],
    }
    .compile()
    .unwrap()
}

fn v4_range_addr() -> impl Strategy<Value = Ipv4Addr> {
    let nets: Vec<ipnet::Ipv4Net> = ipv4_special_ranges()
        .iter()
        .map(|r| match r.cidr.parse::<IpNet>().unwrap() {
            IpNet::V4(n) => n,
            IpNet::V6(_) => panic!("v6 in v4 table"),
        })
        .collect();
    (0..nets.len(), any::<u32>()).prop_map(move |(i, r)| {
        let n = nets[i];
        let host_mask = u32::MAX.checked_shr(u32::from(n.prefix_len())).unwrap_or(0);
        Ipv4Addr::from(u32::from(n.network()) | (r & host_mask))
    })
}

fn v6_range_addr() -> impl Strategy<Value = Ipv6Addr> {
    let nets: Vec<ipnet::Ipv6Net> = ipv6_special_ranges()
        .iter()
        .map(|r| match r.cidr.parse::<IpNet>().unwrap() {
            IpNet::V6(n) => n,
            IpNet::V4(_) => panic!("v4 in v6 table"),
        })
        .collect();
    (0..nets.len(), any::<u128>()).prop_map(move |(i, r)| {
        let n = nets[i];
        let host_mask = u128::MAX
            .checked_shr(u32::from(n.prefix_len()))
            .unwrap_or(0);
        Ipv6Addr::from(u128::from(n.network()) | (r & host_mask))
    })
}

/// How one inet_aton part is written.
#[derive(Debug, Clone, Copy)]
enum Radix {
    Dec,
    Oct {
        extra_zeros: usize,
    },
    Hex {
        upper_x: bool,
        upper_digits: bool,
        extra_zeros: usize,
    },
}

fn radix() -> impl Strategy<Value = Radix> {
    prop_oneof![
        Just(Radix::Dec),
        (0usize..4).prop_map(|extra_zeros| Radix::Oct { extra_zeros }),
        (any::<bool>(), any::<bool>(), 0usize..4).prop_map(
            |(upper_x, upper_digits, extra_zeros)| Radix::Hex {
                upper_x,
                upper_digits,
                extra_zeros
            }
        ),
    ]
}

fn write_part(v: u32, radix: Radix) -> String {
    match radix {
        Radix::Dec => v.to_string(),
        Radix::Oct { extra_zeros } => format!("0{}{v:o}", "0".repeat(extra_zeros)),
        Radix::Hex {
            upper_x,
            upper_digits,
            extra_zeros,
        } => {
            let digits = if upper_digits {
                format!("{v:X}")
            } else {
                format!("{v:x}")
            };
            format!(
                "0{}{}{digits}",
                if upper_x { "X" } else { "x" },
                "0".repeat(extra_zeros)
            )
        }
    }
}

/// Spells `ip` with `parts` parts (1..=4), each in its own radix, maybe with a trailing dot.
fn spell(ip: Ipv4Addr, parts: usize, radices: &[Radix; 4], trailing_dot: bool) -> String {
    let o = ip.octets().map(u32::from);
    let values: Vec<u32> = match parts {
        1 => vec![u32::from(ip)],
        2 => vec![o[0], (o[1] << 16) | (o[2] << 8) | o[3]],
        3 => vec![o[0], o[1], (o[2] << 8) | o[3]],
        _ => vec![o[0], o[1], o[2], o[3]],
    };
    let mut s = values
        .iter()
        .zip(radices)
        .map(|(&v, &r)| write_part(v, r))
        .collect::<Vec<_>>()
        .join(".");
    if trailing_dot {
        s.push('.');
    }
    s
}

fn spelling() -> impl Strategy<Value = (usize, [Radix; 4], bool)> {
    (
        1usize..=4,
        [radix(), radix(), radix(), radix()],
        any::<bool>(),
    )
}

fn assert_host_denied(text: &str, want: IpAddr) -> Result<(), TestCaseError> {
    let host = Host::parse(text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
    prop_assert_eq!(&host, &Host::Ip(want), "{}", text);
    let p = policy();
    for method in ["GET", "POST", "CONNECT"] {
        let d = p.decide(&EgressRequest {
            method,
            scheme: Scheme::Https,
            host: &host,
            port: 443,
            method_override: false,
        });
        prop_assert_eq!(d.verdict, Verdict::Deny, "{} {}", method, text);
        prop_assert!(
            matches!(d.rule.name(), "denied_address" | "cloud_metadata"),
            "{} {}: {}",
            method,
            text,
            d.rule
        );
    }
    prop_assert!(p.check_addr(want, 443).is_err(), "check_addr {}", want);
    let authority = if text.starts_with('[') || !text.contains(':') {
        format!("{text}:443")
    } else {
        format!("[{text}]:443")
    };
    let (h, port) = parse_authority(&authority, None)
        .map_err(|e| TestCaseError::fail(format!("{authority}: {e}")))?;
    prop_assert_eq!(h, host);
    prop_assert_eq!(port, 443);
    Ok(())
}

/// All the IPv6 addresses that carry `v4` (or reach it).
fn embeddings(v4: Ipv4Addr, noise: u128) -> Vec<Ipv6Addr> {
    let a = u128::from(u32::from(v4));
    let b = v4.octets().map(u128::from);
    let mut out = vec![
        Ipv6Addr::from(0xffff_0000_0000 | a),         // ::ffff:a.b.c.d
        Ipv6Addr::from(a),                            // ::a.b.c.d
        Ipv6Addr::from(0xffff_0000_0000_0000 | a),    // ::ffff:0:a.b.c.d
        Ipv6Addr::from((0x0064_ff9b_u128 << 96) | a), // 64:ff9b::a.b.c.d
        Ipv6Addr::from((0x0064_ff9b_0001_u128 << 80) | a), // 64:ff9b:1::a.b.c.d
        Ipv6Addr::from((0x0064_ff9b_0001_u128 << 80) | (noise & (0xffff_ffff_ffff << 32)) | a),
        // 6to4 with any subnet and interface identifier.
        Ipv6Addr::from((0x2002_u128 << 112) | (a << 80) | (noise & ((1u128 << 80) - 1))),
        // Teredo: any server, flags and port; client address inverted.
        Ipv6Addr::from(
            (0x2001_0000_u128 << 96) | (noise & (((1u128 << 64) - 1) << 32)) | (!a & 0xffff_ffff),
        ),
        // Teredo with the address as the server.
        Ipv6Addr::from((0x2001_0000_u128 << 96) | (a << 64) | (noise & 0xffff_ffff_ffff_ffff)),
    ];
    // RFC 6052 layouts inside 64:ff9b:1::/48, for prefixes /48, /56, /64 (u octet = bits 64..72).
    let prefix = 0x0064_ff9b_0001_u128 << 80;
    out.push(Ipv6Addr::from(
        prefix | (b[0] << 72) | (b[1] << 64) | (b[2] << 48) | (b[3] << 40),
    ));
    out.push(Ipv6Addr::from(
        prefix | (b[0] << 64) | (b[1] << 48) | (b[2] << 40) | (b[3] << 32),
    ));
    out.push(Ipv6Addr::from(
        prefix | (b[0] << 48) | (b[1] << 40) | (b[2] << 32) | (b[3] << 24),
    ));
    out
}

/// Spells an IPv6 address in one of the textual forms parsers accept: compressed, full with
/// random zero padding and letter case, a dotted-quad tail, or "::" over a chosen zero run.
fn spell_v6(ip: Ipv6Addr, style: u8, noise: u64) -> String {
    let segs = ip.segments();
    let seg = |i: usize| {
        let bits = noise >> (i * 3);
        let width = 1 + usize::try_from(bits & 3).unwrap();
        let text = format!("{:0width$x}", segs[i]);
        if bits & 4 != 0 {
            text.to_ascii_uppercase()
        } else {
            text
        }
    };
    match style % 4 {
        0 => ip.to_string(),
        1 => (0..8).map(seg).collect::<Vec<_>>().join(":"),
        2 => {
            let o = ip.octets();
            let head = (0..6).map(seg).collect::<Vec<_>>().join(":");
            format!("{head}:{}.{}.{}.{}", o[12], o[13], o[14], o[15])
        }
        _ => {
            // Compress the first run of zero groups, if any.
            let Some(start) = segs.iter().position(|&g| g == 0) else {
                return (0..8).map(seg).collect::<Vec<_>>().join(":");
            };
            let end = segs[start..]
                .iter()
                .position(|&g| g != 0)
                .map_or(8, |n| start + n);
            let head = (0..start).map(seg).collect::<Vec<_>>().join(":");
            let tail = (end..8).map(seg).collect::<Vec<_>>().join(":");
            format!("{head}::{tail}")
        }
    }
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn special_ipv4_is_denied_in_every_spelling(ip in v4_range_addr(), (parts, radices, dot) in spelling()) {
        prop_assert!(matches!(classify(IpAddr::V4(ip)), IpClass::Special(_)));
        let text = spell(ip, parts, &radices, dot);
        prop_assert_eq!(parse_literal(&text), Literal::Ip(IpAddr::V4(ip)), "{}", text);
        assert_host_denied(&text, IpAddr::V4(ip))?;
        // Upper-case input is the same host.
        assert_host_denied(&text.to_ascii_uppercase(), IpAddr::V4(ip))?;
    }

    #[test]
    fn global_ipv4_round_trips_every_spelling_and_is_readable(raw in any::<u32>(), (parts, radices, dot) in spelling()) {
        let ip = Ipv4Addr::from(raw);
        prop_assume!(classify(IpAddr::V4(ip)) == IpClass::Global);
        let text = spell(ip, parts, &radices, dot);
        let host = Host::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert_eq!(&host, &Host::Ip(IpAddr::V4(ip)));
        let d = policy().decide(&EgressRequest { method: "GET", scheme: Scheme::Http, host: &host, port: 80, method_override: false });
        prop_assert_eq!(d.verdict, Verdict::Allow);
        prop_assert!(policy().check_addr(IpAddr::V4(ip), 80).is_ok());
    }

    #[test]
    fn special_ipv4_is_denied_in_every_ipv6_embedding(ip in v4_range_addr(), noise in any::<u128>(), zone in any::<bool>()) {
        for v6 in embeddings(ip, noise) {
            let class = classify(IpAddr::V6(v6));
            prop_assert!(matches!(class, IpClass::Special(_)), "{} (carrying {}) is {:?}", v6, ip, class);
            let text = if zone { format!("[{v6}%eth0]") } else { format!("[{v6}]") };
            assert_host_denied(&text, IpAddr::V6(v6))?;
        }
        // The dotted textual forms too.
        for text in [format!("[::ffff:{ip}]"), format!("[::{ip}]"), format!("[64:ff9b::{ip}]"), format!("[64:ff9b:1::{ip}]")] {
            let host = Host::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            let Host::Ip(addr) = host else { return Err(TestCaseError::fail("not an ip")) };
            assert_host_denied(&text, addr)?;
        }
    }

    #[test]
    fn embedded_metadata_keeps_its_name(which in 0usize..64, noise in any::<u128>()) {
        let metas: Vec<Ipv4Addr> = ipv4_special_ranges()
            .iter()
            .filter(|r| r.cloud_metadata)
            .map(|r| r.cidr.trim_end_matches("/32").parse().unwrap())
            .collect();
        let ip = metas[which % metas.len()];
        for v6 in embeddings(ip, noise) {
            let IpClass::Special(r) = classify(IpAddr::V6(v6)) else {
                return Err(TestCaseError::fail(format!("{v6} global")));
            };
            prop_assert!(r.cloud_metadata, "{} named {}", v6, r.name);
        }
    }

    #[test]
    fn special_ipv6_is_denied_in_every_textual_form(
        ip in prop_oneof![
            v6_range_addr(),
            (v4_range_addr(), any::<u128>(), 0usize..12).prop_map(|(v4, noise, i)| embeddings(v4, noise)[i]),
        ],
        style in any::<u8>(),
        noise in any::<u64>(),
    ) {
        let text = format!("[{}]", spell_v6(ip, style, noise));
        prop_assert_eq!(parse_literal(&text), Literal::Ip(IpAddr::V6(ip)), "{}", text);
        assert_host_denied(&text, IpAddr::V6(ip))?;
    }

    #[test]
    fn global_ipv6_round_trips_every_textual_form(raw in any::<u128>(), style in any::<u8>(), noise in any::<u64>()) {
        // Random addresses inside 2000::/3, the only global unicast block.
        let ip = Ipv6Addr::from((raw & (u128::MAX >> 3)) | (1u128 << 125));
        prop_assume!(classify(IpAddr::V6(ip)) == IpClass::Global);
        let text = format!("[{}]", spell_v6(ip, style, noise));
        let host = Host::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert_eq!(&host, &Host::Ip(IpAddr::V6(ip)));
        let d = policy().decide(&EgressRequest { method: "GET", scheme: Scheme::Https, host: &host, port: 443, method_override: false });
        prop_assert_eq!(d.verdict, Verdict::Allow);
    }

    #[test]
    fn special_ipv6_is_denied(ip in v6_range_addr(), zone in any::<bool>()) {
        prop_assert!(matches!(classify(IpAddr::V6(ip)), IpClass::Special(_)), "{}", ip);
        let text = if zone { format!("[{ip}%25en0]") } else { format!("[{ip}]") };
        assert_host_denied(&text, IpAddr::V6(ip))?;
    }

    #[test]
    fn outside_global_unicast_is_denied(raw in any::<u128>()) {
        let ip = Ipv6Addr::from(raw);
        let in_2000_3 = raw >> 125 == 1;
        let public_embedding = ip.to_ipv4_mapped().is_some() || raw >> 32 == 0x0064_ff9b_0000_0000_0000_0000;
        if !in_2000_3 && !public_embedding {
            prop_assert!(matches!(classify(IpAddr::V6(ip)), IpClass::Special(_)), "{}", ip);
        }
    }

    #[test]
    fn one_special_answer_denies_the_whole_resolution(
        good in proptest::collection::vec(any::<u32>(), 0..4),
        bad in v4_range_addr(),
        pos in 0usize..5,
    ) {
        let mut answers: Vec<IpAddr> = good.into_iter().map(|g| IpAddr::V4(Ipv4Addr::from(g))).collect();
        let at = pos.min(answers.len());
        answers.insert(at, IpAddr::V4(bad));
        prop_assert!(policy().check_resolved(&answers, 443).is_err());
    }

    #[test]
    fn host_parse_never_panics_and_names_are_canonical(s in "\\PC{0,40}") {
        check_name_invariants(&s)?;
    }

    #[test]
    fn host_parse_on_host_like_text(s in "[a-zA-Z0-9.\\-_%@:\\[\\]xX]{0,30}") {
        check_name_invariants(&s)?;
        let _ = parse_authority(&s, Some(80));
        let _ = parse_authority(&s, None);
    }
}

fn check_name_invariants(s: &str) -> Result<(), TestCaseError> {
    if let Ok(Host::Name(n)) = Host::parse(s) {
        let name = n.as_str();
        prop_assert!(!name.is_empty() && name.len() <= 253, "{:?}", name);
        prop_assert!(
            name.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'),
            "{:?}",
            name
        );
        prop_assert!(
            name.split('.').all(|l| !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')),
            "{:?}",
            name
        );
        prop_assert_eq!(parse_literal(name), Literal::Name, "{:?}", name);
        // Idempotent: the normal form normalises to itself.
        prop_assert_eq!(Host::parse(name), Ok(Host::Name(n.clone())));
    }
    Ok(())
}
