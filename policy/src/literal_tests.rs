use std::net::{IpAddr, Ipv4Addr};

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn every_inet_aton_spelling_of_loopback_is_an_address() {
    let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
    for s in [
        "127.0.0.1",
        "127.0.0.1.",
        "2130706433",
        "0x7f000001",
        "0X7F000001",
        "017700000001",
        "0000000000000017700000001",
        "0177.0.0.1",
        "0177.0000.0.01",
        "0x7f.0.0.1",
        "0x7f.0x0.0x0.0x1",
        "0x7f.1",
        "127.1",
        "127.0.1",
        "0177.1",
        "0x7f.0.1",
        "127.0x0.01",
        "0x7F.00.0X0.1",
        "127.00000.0.1",
    ] {
        assert_eq!(parse_literal(s), Literal::Ip(lo), "{s}");
    }
}

#[test]
fn short_forms_fill_the_remaining_bytes() {
    for (s, want) in [
        ("1.2.3.4", "1.2.3.4"),
        ("1.2.772", "1.2.3.4"),
        ("1.131844", "1.2.3.4"),
        ("16909060", "1.2.3.4"),
        ("0", "0.0.0.0"),
        ("0x0", "0.0.0.0"),
        ("00", "0.0.0.0"),
        ("4294967295", "255.255.255.255"),
        ("0xffffffff", "255.255.255.255"),
        ("037777777777", "255.255.255.255"),
        ("255.16777215", "255.255.255.255"),
        ("255.255.65535", "255.255.255.255"),
        ("8.8.8.8", "8.8.8.8"),
    ] {
        assert_eq!(parse_literal(s), Literal::Ip(ip(want)), "{s}");
    }
}

#[test]
fn numeric_looking_but_invalid_is_malformed_never_a_name() {
    for s in [
        "1.2.3.4.5",
        "0x",
        "0x.1.2.3",
        "08",
        "09.1.1.1",
        "0189.1",
        "1.2.3.256",
        "256.1.1.1",
        "1.2.65536",
        "1.16777216",
        "4294967296",
        "0x100000000",
        "040000000000",
        "99999999999999999999999",
        "1..1",
        ".1.2.3",
        "1.2.3.4..",
        "0xg.1",
        "example.123",
        "example.0x1f",
        "a.b.c.1",
        "[::1",
        "::1]",
        "[127.0.0.1]",
        "[::1%]",
        "[fe80::1%eth 0]",
        "[fe80::1%e/th0]",
        "1:2",
        ":::",
        "[::ffff:0x7f.1]",
        "::ffff:127.1",
    ] {
        assert!(
            matches!(parse_literal(s), Literal::Malformed(_)),
            "{s}: {:?}",
            parse_literal(s)
        );
    }
}

#[test]
fn names_stay_names() {
    for s in [
        "example.com",
        "api.github.test",
        "0x7f.example",
        "1.2.3.4x",
        "1e5",
        "123abc.com",
        "a.0x.com",
        "x",
        "",
    ] {
        assert_eq!(parse_literal(s), Literal::Name, "{s}");
    }
}

#[test]
fn bracketed_ipv6_with_and_without_zone() {
    for (s, want) in [
        ("[::1]", "::1"),
        ("::1", "::1"),
        ("[fe80::1%eth0]", "fe80::1"),
        ("[fe80::1%25eth0]", "fe80::1"),
        ("[fe80::1%1]", "fe80::1"),
        ("[::ffff:127.0.0.1]", "::ffff:127.0.0.1"),
        ("[::FFFF:7F00:1]", "::ffff:127.0.0.1"),
        ("[0:0:0:0:0:0:0:1]", "::1"),
        ("[2606:4700:4700::1111]", "2606:4700:4700::1111"),
    ] {
        assert_eq!(parse_literal(s), Literal::Ip(ip(want)), "{s}");
    }
}
