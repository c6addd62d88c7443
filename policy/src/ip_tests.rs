use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::*;
use crate::ip_tables::Net;

fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn class(s: &str) -> IpClass {
    classify(s.parse::<IpAddr>().unwrap())
}

fn special_name(s: &str) -> &'static str {
    match class(s) {
        IpClass::Special(r) => r.name,
        IpClass::Global => panic!("{s} classified Global"),
    }
}

#[test]
fn table_cidr_strings_match_their_numeric_form() {
    for r in ipv4_special_ranges().iter().chain(ipv6_special_ranges()) {
        let net: IpNet = r
            .cidr
            .parse()
            .unwrap_or_else(|_| panic!("{} does not parse", r.cidr));
        assert_eq!(net.network(), net.addr(), "{} has host bits", r.cidr);
        let expected = match net {
            IpNet::V4(n) => Net::V4(u32::from(n.addr()), n.prefix_len()),
            IpNet::V6(n) => Net::V6(u128::from(n.addr()), n.prefix_len()),
        };
        assert_eq!(r.net(), expected, "{}", r.cidr);
    }
    for r in [
        &embedding::MAPPED,
        &embedding::COMPATIBLE,
        &embedding::TRANSLATED,
        &embedding::NAT64_WELL_KNOWN,
        &embedding::NAT64_LOCAL_USE,
        &embedding::SIX_TO_FOUR,
        &embedding::TEREDO,
        &embedding::GLOBAL_UNICAST,
    ] {
        let net: IpNet = r.cidr.parse().unwrap();
        let IpNet::V6(n) = net else { panic!() };
        assert_eq!(r.net(), Net::V6(u128::from(n.addr()), n.prefix_len()));
    }
}

#[test]
fn every_table_entry_denies_its_first_and_last_address() {
    for r in ipv4_special_ranges().iter().chain(ipv6_special_ranges()) {
        let net: IpNet = r.cidr.parse().unwrap();
        for ip in [net.network(), net.broadcast()] {
            let IpClass::Special(got) = classify(ip) else {
                panic!("{ip} in {} classified Global", r.cidr)
            };
            // The answer is this entry, a more specific one inside it, or (for blocks that
            // embed IPv4, like Teredo's 2001::/32 inside 2001::/23) the embedded IPv4's range.
            let got_net: IpNet = got.cidr.parse().unwrap();
            if matches!((net, got_net), (IpNet::V6(_), IpNet::V4(_))) {
                continue;
            }
            assert!(
                net.contains(&got_net),
                "{ip}: {} not within {}",
                got.cidr,
                r.cidr
            );
        }
    }
}

#[test]
fn public_neighbours_of_private_blocks_are_global() {
    for (denied, allowed) in [
        ("10.0.0.0", "9.255.255.255"),
        ("10.255.255.255", "11.0.0.0"),
        ("172.16.0.0", "172.15.255.255"),
        ("172.31.255.255", "172.32.0.0"),
        ("192.168.0.0", "192.167.255.255"),
        ("192.168.255.255", "192.169.0.0"),
        ("100.64.0.0", "100.63.255.255"),
        ("100.127.255.255", "100.128.0.0"),
        ("127.255.255.255", "128.0.0.0"),
        ("169.254.0.0", "169.253.255.255"),
        ("169.254.255.255", "169.255.0.0"),
        ("198.18.0.0", "198.17.255.255"),
        ("198.19.255.255", "198.20.0.0"),
        ("192.0.0.255", "192.0.1.0"),
        ("192.0.2.0", "192.0.1.255"),
        ("223.255.255.255", "223.255.255.255"),
        ("224.0.0.0", "223.255.255.254"),
        ("0.255.255.255", "1.0.0.0"),
        ("::1", "2606:4700:4700::1111"),
        ("fc00::", "2001:4860:4860::8888"),
        ("fe80::1", "2a00:1450::1"),
        ("2001:db8::1", "2001:db9::1"),
        ("2001:1ff:ffff::1", "2001:200::1"),
    ] {
        if denied != "223.255.255.255" {
            assert!(!class(denied).is_global(), "{denied} should be special");
        }
        assert_eq!(
            class(allowed),
            IpClass::Global,
            "{allowed} should be global"
        );
    }
}

#[test]
fn registry_entries_are_named() {
    for (ip, name) in [
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "this-network"),
        ("10.1.2.3", "private"),
        ("100.64.1.1", "shared-address-space (cgnat)"),
        ("127.0.0.1", "loopback"),
        ("169.254.1.1", "link-local"),
        ("192.0.0.1", "ipv4-service-continuity-prefix"),
        ("192.0.0.8", "ipv4-dummy-address"),
        ("192.0.0.9", "port-control-protocol-anycast"),
        ("192.0.0.10", "turn-anycast"),
        ("192.0.0.170", "nat64-dns64-discovery"),
        ("192.0.0.171", "nat64-dns64-discovery"),
        ("192.0.0.100", "ietf-protocol-assignments"),
        ("192.0.2.1", "documentation (test-net-1)"),
        ("198.51.100.1", "documentation (test-net-2)"),
        ("203.0.113.1", "documentation (test-net-3)"),
        ("192.31.196.1", "as112-v4"),
        ("192.52.193.1", "amt"),
        ("192.88.99.1", "6to4-relay-anycast (deprecated)"),
        ("192.88.99.2", "6a44-relay-anycast"),
        ("192.175.48.1", "as112-direct-delegation"),
        ("198.18.0.1", "benchmarking"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "limited-broadcast"),
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("100::1", "discard-only"),
        ("100:0:0:1::1", "dummy-ipv6-prefix"),
        ("2001:1::1", "port-control-protocol-anycast"),
        ("2001:1::2", "turn-anycast"),
        ("2001:1::3", "dns-sd-srp-anycast"),
        ("2001:2::1", "benchmarking"),
        ("2001:3::1", "amt"),
        ("2001:4:112::1", "as112-v6"),
        ("2001:10::1", "orchid (deprecated)"),
        ("2001:20::1", "orchid-v2"),
        ("2001:30::1", "drone-remote-id-det"),
        ("2001:100::1", "ietf-protocol-assignments"),
        ("2001:db8::1", "documentation"),
        ("3fff::1", "documentation"),
        ("2620:4f:8000::1", "as112-direct-delegation"),
        ("5f00::1", "srv6-sids"),
        ("fc00::1", "unique-local"),
        ("fd12:3456::1", "unique-local"),
        ("fe80::1", "link-local"),
        ("febf::1", "link-local"),
        ("fec0::1", "site-local (deprecated)"),
        ("ff02::1", "multicast"),
        ("4000::1", "reserved-by-ietf"),
        ("e000::1", "reserved-by-ietf"),
        ("::ffff:0:1.2.3.4", "ipv4-translated"),
    ] {
        assert_eq!(special_name(ip), name, "{ip}");
    }
}

#[test]
fn cloud_metadata_is_named_as_such() {
    for ip in [
        "169.254.169.254",
        "169.254.170.2",
        "169.254.170.23",
        "169.254.0.23",
        "100.100.100.200",
        "168.63.129.16",
        "192.0.0.192",
        "fd00:ec2::254",
        "fd00:ec2::23",
        // Embedded forms keep the metadata name.
        "::ffff:169.254.169.254",
        "64:ff9b::169.254.169.254",
        "2002:a9fe:a9fe::1",
    ] {
        let IpClass::Special(r) = class(ip) else {
            panic!("{ip} global")
        };
        assert!(r.cloud_metadata, "{ip} not metadata: {}", r.name);
        assert!(r.name.starts_with("cloud-metadata ("), "{ip}: {}", r.name);
    }
    // Neighbours: same block but not the metadata endpoint.
    for ip in ["169.254.169.253", "169.254.170.3", "fd00:ec2::255"] {
        let IpClass::Special(r) = class(ip) else {
            panic!("{ip} global")
        };
        assert!(!r.cloud_metadata, "{ip}");
    }
    assert_eq!(class("168.63.129.15"), IpClass::Global);
    assert_eq!(class("168.63.129.17"), IpClass::Global);
}

#[test]
fn embedded_ipv4_is_extracted_from_every_embedding() {
    let lo = v4("127.0.0.1");
    for (addr, want) in [
        ("::ffff:127.0.0.1", Some(lo)),
        ("::127.0.0.1", Some(lo)),
        ("::ffff:0:127.0.0.1", Some(lo)),
        ("64:ff9b::127.0.0.1", Some(lo)),
        ("64:ff9b:1::127.0.0.1", Some(lo)),
        // RFC 6052 /48 layout: bits 48..64 and 72..88.
        ("64:ff9b:1:7f00:0:100::", Some(lo)),
        ("2002:7f00:1::", Some(lo)),
        ("2002:7f00:1:abcd::1", Some(lo)),
        // Teredo: client = inverted last 32 bits.
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", Some(lo)),
        ("::1", None),
        ("::", None),
        ("2606:4700::1", None),
    ] {
        assert_eq!(embedded_ipv4(v6(addr)), want, "{addr}");
    }
}

#[test]
fn embedded_special_ipv4_is_denied_with_its_name() {
    for addr in [
        "::ffff:10.0.0.1",
        "::10.0.0.1",
        "::ffff:0:10.0.0.1",
        "64:ff9b::10.0.0.1",
        "64:ff9b:1::10.0.0.1",
        "64:ff9b:1:a00:0:100::",
        "2002:a00:1::",
        // Teredo client 10.0.0.1 (inverted f5ff:fffe).
        "2001:0:4136:e378:8000:63bf:f5ff:fffe",
        // Teredo server 10.0.0.1 with a public client.
        "2001:0:a00:1:8000:63bf:f7f7:f7f7",
        // ISATAP interface identifiers.
        "2606:4700::5efe:10.0.0.1",
        "2606:4700::200:5efe:10.0.0.1",
    ] {
        assert_eq!(special_name(addr), "private", "{addr}");
    }
}

#[test]
fn embedded_public_ipv4_follows_the_embedding() {
    // These forms reach exactly the public IPv4 host: allowed.
    for addr in ["::ffff:8.8.8.8", "64:ff9b::8.8.8.8", "2002:808:808::1"] {
        assert_eq!(class(addr), IpClass::Global, "{addr}");
    }
    // These are never valid public destinations, whatever they carry.
    for (addr, name) in [
        ("::8.8.8.8", "ipv4-compatible (deprecated)"),
        ("::ffff:0:8.8.8.8", "ipv4-translated"),
        ("64:ff9b:1::8.8.8.8", "nat64-local-use"),
        ("2001:0:808:808:8000:63bf:f7f7:f7f7", "teredo"),
    ] {
        assert_eq!(special_name(addr), name, "{addr}");
    }
}

#[test]
fn canonical_unwraps_only_ipv4_mapped() {
    let mapped: IpAddr = "::ffff:1.2.3.4".parse().unwrap();
    assert_eq!(canonical(mapped), IpAddr::V4(v4("1.2.3.4")));
    let compat: IpAddr = "::1.2.3.4".parse().unwrap();
    assert_eq!(canonical(compat), compat);
    let nat64: IpAddr = "64:ff9b::1.2.3.4".parse().unwrap();
    assert_eq!(canonical(nat64), nat64);
}
