use std::net::IpAddr;

use super::*;
use crate::config::PolicyConfig;

fn policy() -> EgressPolicy {
    PolicyConfig {
        approved_write_hosts: vec![
            "api.github.test".into(),
            "*.anthropic.test".into(),
            "127.0.0.2".into(),
        ],
        tunnel_hosts: vec!["registry.npmjs.test".into(), "127.0.0.2".into()],
        tunnel_ports: vec![443, 8443],
        allowed_ports: vec![80, 443, 8080],
        allow_ranges: vec!["127.0.0.2/32".into(), "fd00:1::/64".into()],
    }
    .compile()
    .unwrap()
}

fn host(s: &str) -> Host {
    Host::parse(s).unwrap()
}

fn decide_full(
    method: &str,
    scheme: Scheme,
    h: &str,
    port: u16,
    method_override: bool,
) -> Decision {
    let h = host(h);
    policy().decide(&EgressRequest {
        method,
        scheme,
        host: &h,
        port,
        method_override,
    })
}

fn decide(method: &str, scheme: Scheme, h: &str, port: u16) -> Decision {
    decide_full(method, scheme, h, port, false)
}

fn allow(rule: Rule) -> Decision {
    Decision {
        verdict: Verdict::Allow,
        rule,
    }
}

fn deny(rule: Rule) -> Decision {
    Decision {
        verdict: Verdict::Deny,
        rule,
    }
}

const TUNNEL: Decision = Decision {
    verdict: Verdict::Tunnel,
    rule: Rule::TunnelHost,
};

#[test]
fn methods_are_exact() {
    for m in [
        "get",
        "Get",
        "post",
        "TRACE",
        "PROPFIND",
        "GET ",
        " GET",
        "",
        "CONNECT\0",
        "GETX",
    ] {
        assert_eq!(
            decide(m, Scheme::Https, "example.test", 443),
            deny(Rule::MethodUnknown),
            "{m:?}"
        );
    }
    assert_eq!(
        decide("GET", Scheme::Https, "example.test", 443),
        allow(Rule::ReadPublic)
    );
    for m in [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT",
    ] {
        assert_eq!(Method::parse(m).map(Method::as_str), Some(m));
    }
}

#[test]
fn reads_go_to_any_public_host() {
    assert_eq!(
        decide("GET", Scheme::Http, "example.test", 80),
        allow(Rule::ReadPublic)
    );
    assert_eq!(
        decide("HEAD", Scheme::Https, "example.test", 443),
        allow(Rule::ReadPublic)
    );
    assert_eq!(
        decide("GET", Scheme::Http, "8.8.8.8", 80),
        allow(Rule::ReadPublic)
    );
    assert_eq!(
        decide("GET", Scheme::Http, "[2606:4700::1]", 8080),
        allow(Rule::ReadPublic)
    );
}

#[test]
fn ports_outside_allowed_ports_are_denied() {
    assert_eq!(
        decide("GET", Scheme::Http, "example.test", 22),
        deny(Rule::PortNotAllowed)
    );
    assert_eq!(
        decide("GET", Scheme::Http, "example.test", 0),
        deny(Rule::PortNotAllowed)
    );
    assert_eq!(
        decide("POST", Scheme::Https, "api.github.test", 8443),
        deny(Rule::PortNotAllowed)
    );
    assert_eq!(
        decide("GET", Scheme::Http, "example.test", 8080),
        allow(Rule::ReadPublic)
    );
}

#[test]
fn writes_need_an_approved_host_and_https() {
    for m in ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
        assert_eq!(
            decide(m, Scheme::Https, "example.test", 443),
            deny(Rule::WriteNotApproved),
            "{m}"
        );
        assert_eq!(
            decide(m, Scheme::Http, "api.github.test", 80),
            deny(Rule::WriteNotHttps),
            "{m}"
        );
        assert_eq!(
            decide(m, Scheme::Https, "api.github.test", 443),
            allow(Rule::WriteApproved),
            "{m}"
        );
    }
    assert_eq!(
        decide("POST", Scheme::Https, "x.anthropic.test", 443),
        allow(Rule::WriteApproved)
    );
    assert_eq!(
        decide("POST", Scheme::Https, "anthropic.test", 443),
        deny(Rule::WriteNotApproved)
    );
    assert_eq!(
        decide("POST", Scheme::Https, "api.github.test.evil.test", 443),
        deny(Rule::WriteNotApproved)
    );
    // A homograph of an approved host is only a public read target.
    assert_eq!(
        decide("POST", Scheme::Https, "аpi.github.test", 443),
        deny(Rule::WriteNotApproved)
    );
    assert_eq!(
        decide("GET", Scheme::Https, "аpi.github.test", 443),
        allow(Rule::ReadPublic)
    );
    // An approved IP pattern (exempted by allow_ranges).
    assert_eq!(
        decide("POST", Scheme::Https, "127.0.0.2", 443),
        allow(Rule::WriteApproved)
    );
}

#[test]
fn method_override_makes_a_read_a_write() {
    assert_eq!(
        decide_full("GET", Scheme::Https, "example.test", 443, true),
        deny(Rule::WriteNotApproved)
    );
    assert_eq!(
        decide_full("HEAD", Scheme::Https, "example.test", 443, true),
        deny(Rule::WriteNotApproved)
    );
    assert_eq!(
        decide_full("GET", Scheme::Http, "api.github.test", 80, true),
        deny(Rule::WriteNotHttps)
    );
    assert_eq!(
        decide_full("GET", Scheme::Https, "api.github.test", 443, true),
        allow(Rule::WriteApproved)
    );
    assert_eq!(
        decide_full("GET", Scheme::Https, "example.test", 443, false),
        allow(Rule::ReadPublic)
    );
}

#[test]
fn connect_only_to_tunnel_hosts_on_tunnel_ports() {
    assert_eq!(
        decide("CONNECT", Scheme::Https, "registry.npmjs.test", 443),
        TUNNEL
    );
    assert_eq!(
        decide("CONNECT", Scheme::Https, "registry.npmjs.test", 8443),
        TUNNEL
    );
    assert_eq!(
        decide("CONNECT", Scheme::Https, "registry.npmjs.test", 80),
        deny(Rule::TunnelPortNotAllowed)
    );
    assert_eq!(
        decide("CONNECT", Scheme::Https, "registry.npmjs.test", 22),
        deny(Rule::TunnelPortNotAllowed)
    );
    assert_eq!(
        decide("CONNECT", Scheme::Https, "example.test", 443),
        deny(Rule::ConnectNotTunnelHost)
    );
    assert_eq!(
        decide("CONNECT", Scheme::Https, "api.github.test", 443),
        deny(Rule::ConnectNotTunnelHost)
    );
    assert_eq!(
        decide("CONNECT", Scheme::Https, "x.registry.npmjs.test", 443),
        deny(Rule::ConnectNotTunnelHost)
    );
    assert_eq!(
        decide("CONNECT", Scheme::Https, "8.8.8.8", 443),
        deny(Rule::ConnectNotTunnelHost)
    );
    assert_eq!(decide("CONNECT", Scheme::Https, "127.0.0.2", 443), TUNNEL);
    assert_eq!(
        decide("connect", Scheme::Https, "registry.npmjs.test", 443),
        deny(Rule::MethodUnknown)
    );
}

#[test]
fn literal_special_addresses_are_denied_before_anything_else_but_the_method() {
    for h in [
        "127.0.0.1",
        "2130706433",
        "0x7f.1",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "10.1.2.3",
        "[fe80::1%eth0]",
        "0",
        "[::]",
    ] {
        for m in ["GET", "POST", "CONNECT"] {
            let d = decide(m, Scheme::Https, h, 443);
            assert_eq!(d.verdict, Verdict::Deny, "{m} {h}");
            assert_eq!(d.rule.name(), "denied_address", "{m} {h}: {}", d.rule);
        }
    }
    let d = decide("GET", Scheme::Http, "169.254.169.254", 80);
    assert_eq!(d.rule.name(), "cloud_metadata");
    assert_eq!(
        d.rule.to_string(),
        "cloud_metadata (cloud-metadata (169.254.169.254) 169.254.169.254/32)"
    );
    let d = decide("GET", Scheme::Http, "[fd00:ec2::254]", 80);
    assert_eq!(d.rule.name(), "cloud_metadata");
    let d = decide("GET", Scheme::Http, "[64:ff9b::a9fe:a9fe]", 80);
    assert_eq!(d.rule.name(), "cloud_metadata");
    // The allow_ranges neighbour passes.
    assert_eq!(
        decide("GET", Scheme::Http, "127.0.0.2", 80),
        allow(Rule::ReadPublic)
    );
    assert_eq!(
        decide("GET", Scheme::Http, "[fd00:1::5]", 80),
        allow(Rule::ReadPublic)
    );
    assert_eq!(
        decide("GET", Scheme::Http, "[fd00:2::5]", 80).rule.name(),
        "denied_address"
    );
}

#[test]
fn check_addr_validates_and_canonicalises() {
    let p = policy();
    let ok = p.check_addr("8.8.8.8".parse().unwrap(), 443).unwrap();
    assert_eq!(ok.socket_addr(), "8.8.8.8:443".parse().unwrap());
    let mapped = p.check_addr("::ffff:8.8.8.8".parse().unwrap(), 80).unwrap();
    assert_eq!(mapped.socket_addr(), "8.8.8.8:80".parse().unwrap());
    let exempt = p
        .check_addr("::ffff:127.0.0.2".parse().unwrap(), 80)
        .unwrap();
    assert_eq!(exempt.socket_addr(), "127.0.0.2:80".parse().unwrap());
    // Tunnel ports are connectable too.
    assert!(p.check_addr("8.8.8.8".parse().unwrap(), 8443).is_ok());

    let rule = |ip: &str, port| p.check_addr(ip.parse().unwrap(), port).unwrap_err().rule;
    assert_eq!(rule("127.0.0.1", 80).name(), "denied_address");
    assert_eq!(rule("::ffff:127.0.0.1", 80).name(), "denied_address");
    assert_eq!(rule("64:ff9b::7f00:2", 80).name(), "denied_address"); // exemption is not inherited
    assert_eq!(rule("169.254.169.254", 80).name(), "cloud_metadata");
    assert_eq!(rule("168.63.129.16", 80).name(), "cloud_metadata");
    assert_eq!(rule("8.8.8.8", 22), Rule::PortNotAllowed);
    assert_eq!(rule("8.8.8.8", 0), Rule::PortNotAllowed);
}

#[test]
fn check_resolved_fails_closed() {
    let p = policy();
    let ips = |v: &[&str]| {
        v.iter()
            .map(|s| s.parse::<IpAddr>().unwrap())
            .collect::<Vec<_>>()
    };
    let ok = p
        .check_resolved(&ips(&["8.8.8.8", "2606:4700::1"]), 443)
        .unwrap();
    assert_eq!(ok.len(), 2);
    assert_eq!(
        p.check_resolved(&[], 443).unwrap_err().rule,
        Rule::NoAddress
    );
    assert_eq!(
        p.check_resolved(&ips(&["8.8.8.8", "10.0.0.1"]), 443)
            .unwrap_err()
            .rule
            .name(),
        "denied_address"
    );
    assert_eq!(
        p.check_resolved(&ips(&["169.254.169.254", "8.8.8.8"]), 443)
            .unwrap_err()
            .rule
            .name(),
        "cloud_metadata"
    );
}

#[test]
fn never_exempt_addresses_stay_denied_even_if_a_range_could_cover_them() {
    // Build the policy directly (config refuses such ranges) to prove the decision layer
    // does not rely on config validation alone.
    let mut p = EgressPolicy::default_deny_writes();
    p.allow_ranges = vec![Net::V4(0, 0), Net::V6(0, 0)];
    for ip in [
        "0.0.0.0",
        "0.1.2.3",
        "224.0.0.1",
        "255.255.255.255",
        "::",
        "ff02::1",
        "169.254.169.254",
    ] {
        assert!(p.check_addr(ip.parse().unwrap(), 80).is_err(), "{ip}");
    }
    assert!(p.check_addr("10.0.0.1".parse().unwrap(), 80).is_ok());
}

#[test]
fn default_policy_denies_writes_and_tunnels() {
    let p = EgressPolicy::default_deny_writes();
    let h = host("api.github.test");
    let req = |method, port| EgressRequest {
        method,
        scheme: Scheme::Https,
        host: &h,
        port,
        method_override: false,
    };
    assert_eq!(p.decide(&req("GET", 443)).verdict, Verdict::Allow);
    assert_eq!(p.decide(&req("GET", 8080)).rule, Rule::PortNotAllowed);
    assert_eq!(p.decide(&req("POST", 443)).rule, Rule::WriteNotApproved);
    assert_eq!(
        p.decide(&req("CONNECT", 443)).rule,
        Rule::ConnectNotTunnelHost
    );
    let compiled = PolicyConfig::default().compile().unwrap();
    assert_eq!(compiled.allowed_ports, p.allowed_ports);
    assert_eq!(compiled.tunnel_ports, p.tunnel_ports);
}

#[test]
fn rule_names_are_stable() {
    let r = &crate::ip::ipv4_special_ranges()[0];
    let all = [
        (Rule::ReadPublic, "read_public"),
        (Rule::WriteApproved, "write_approved"),
        (Rule::TunnelHost, "tunnel_host"),
        (Rule::MethodUnknown, "method_unknown"),
        (Rule::WriteNotApproved, "write_not_approved"),
        (Rule::WriteNotHttps, "write_not_https"),
        (Rule::ConnectNotTunnelHost, "connect_not_tunnel_host"),
        (Rule::PortNotAllowed, "port_not_allowed"),
        (Rule::TunnelPortNotAllowed, "tunnel_port_not_allowed"),
        (Rule::DeniedAddress(r), "denied_address"),
        (Rule::CloudMetadata(r), "cloud_metadata"),
        (Rule::NoAddress, "no_address"),
    ];
    for (rule, name) in all {
        assert_eq!(rule.name(), name);
        assert_eq!(
            rule.allows(),
            matches!(name, "read_public" | "write_approved" | "tunnel_host")
        );
    }
}

#[test]
fn names_with_fixed_addresses_are_judged_as_those_addresses() {
    for h in ["localhost", "LOCALHOST.", "a.localhost", "x.y.localhost"] {
        let d = decide("GET", Scheme::Http, h, 80);
        assert_eq!(d.verdict, Verdict::Deny, "{h}");
        assert_eq!(d.rule.name(), "denied_address", "{h}");
    }
    for h in [
        "metadata.google.internal",
        "metadata.goog",
        "metadata",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.tencentyun.com",
    ] {
        assert_eq!(
            decide("GET", Scheme::Http, h, 80).rule.name(),
            "cloud_metadata",
            "{h}"
        );
    }
    // Neighbours are ordinary names.
    for h in [
        "localhost.test",
        "notlocalhost",
        "metadata.google.internal.test",
        "x.metadata.goog",
    ] {
        assert_eq!(
            decide("GET", Scheme::Http, h, 80),
            allow(Rule::ReadPublic),
            "{h}"
        );
    }
    // localhost follows the loopback exemption like the address would.
    let p = PolicyConfig {
        allow_ranges: vec!["127.0.0.1".into()],
        ..Default::default()
    }
    .compile()
    .unwrap();
    let h = host("localhost");
    let req = EgressRequest {
        method: "GET",
        scheme: Scheme::Http,
        host: &h,
        port: 80,
        method_override: false,
    };
    assert_eq!(p.decide(&req), allow(Rule::ReadPublic));
}
