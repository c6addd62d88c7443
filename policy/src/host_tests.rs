use std::net::IpAddr;

use super::*;

fn name(s: &str) -> String {
    match Host::parse(s) {
        Ok(Host::Name(n)) => n.as_str().to_owned(),
        other => panic!("{s:?}: {other:?}"),
    }
}

fn err(s: &str) -> HostError {
    match Host::parse(s) {
        Err(e) => e,
        Ok(h) => panic!("{s:?} accepted as {h:?}"),
    }
}

fn dns(s: &str) -> DnsName {
    Host::parse(s).unwrap().name().unwrap().clone()
}

#[test]
fn names_are_lower_cased_and_lose_one_trailing_dot() {
    assert_eq!(name("API.GitHub.Test"), "api.github.test");
    assert_eq!(name("api.github.test."), "api.github.test");
    assert_eq!(name("localhost"), "localhost");
    assert_eq!(
        name("r1---sn-abc.googlevideo.com"),
        "r1---sn-abc.googlevideo.com"
    );
    assert_eq!(err("api.github.test.."), HostError::EmptyLabel);
    assert_eq!(err("."), HostError::Empty);
    assert_eq!(err(".a.com"), HostError::EmptyLabel);
    assert_eq!(err("a..com"), HostError::EmptyLabel);
}

#[test]
fn idna_maps_to_punycode() {
    assert_eq!(name("bücher.de"), "xn--bcher-kva.de");
    assert_eq!(name("BÜCHER.de"), "xn--bcher-kva.de");
    assert_eq!(name("xn--bcher-kva.de"), "xn--bcher-kva.de");
    assert_eq!(name("XN--BCHER-KVA.DE"), "xn--bcher-kva.de");
    assert_eq!(name("faß.de"), "xn--fa-hia.de");
    assert_eq!(name("bücher。de"), "xn--bcher-kva.de");
}

#[test]
fn homographs_never_become_the_ascii_name() {
    // Cyrillic а (U+0430) and Greek ο (U+03BF).
    for s in ["аpi.github.com", "api.github.cοm", "аpі.github.com"] {
        let got = name(s);
        assert!(got.is_ascii() && got.contains("xn--"), "{s} -> {got}");
        assert_ne!(got, "api.github.com");
    }
    // Full-width letters, soft hyphens and other mapped-away characters are refused outright.
    for s in [
        "ａｐｉ.github.com",
        "api\u{ad}.github.com",
        "ａpi.github.com",
        "①.com",
    ] {
        assert_eq!(err(s), HostError::UnicodeDisguise, "{s}");
    }
    // Full-width digits never sneak an address past the literal check.
    assert_eq!(err("１２７.０.０.１"), HostError::UnicodeDisguise);
}

#[test]
fn bad_punycode_and_disallowed_code_points_are_refused() {
    for s in [
        "xn--zz.com",
        "xn--api-.com",
        "xn--.com",
        "a\u{2024}com",
        "a\u{200b}b.com",
        "\u{fffd}.com",
    ] {
        assert!(Host::parse(s).is_err(), "{s:?}");
    }
}

#[test]
fn structural_characters_are_refused() {
    assert_eq!(err("a%2ecom"), HostError::PercentEncoded);
    assert_eq!(err("%31%32%37.0.0.1"), HostError::PercentEncoded);
    assert_eq!(err("user@a.com"), HostError::Userinfo);
    assert_eq!(err("a.com\\@b.com"), HostError::InvalidChar('\\'));
    assert_eq!(err("a.com/x"), HostError::InvalidChar('/'));
    assert_eq!(err("a.com?x"), HostError::InvalidChar('?'));
    assert_eq!(err("a.com#x"), HostError::InvalidChar('#'));
    assert_eq!(err("a_b.com"), HostError::InvalidChar('_'));
    assert_eq!(err("a*.com"), HostError::InvalidChar('*'));
    assert_eq!(err("a com"), HostError::ControlOrSpace);
    assert_eq!(err(" a.com"), HostError::ControlOrSpace);
    assert_eq!(err("a.com\t"), HostError::ControlOrSpace);
    assert_eq!(err("a.com\0"), HostError::ControlOrSpace);
    assert_eq!(err("a.com\r\nx"), HostError::ControlOrSpace);
    assert_eq!(err("a.com\u{a0}"), HostError::ControlOrSpace);
    assert_eq!(err("-a.com"), HostError::Hyphen);
    assert_eq!(err("a-.com"), HostError::Hyphen);
    assert_eq!(err(""), HostError::Empty);
    // Allowed neighbours.
    assert_eq!(name("a-b.com"), "a-b.com");
    assert_eq!(name("a1.com"), "a1.com");
}

#[test]
fn length_limits() {
    let label63 = "a".repeat(63);
    let label64 = "a".repeat(64);
    assert_eq!(name(&format!("{label63}.com")), format!("{label63}.com"));
    assert_eq!(err(&format!("{label64}.com")), HostError::LabelTooLong);
    // 253 characters is the limit for the name without its trailing dot.
    let n253 = format!("{0}.{0}.{0}.{1}", label63, "a".repeat(61));
    assert_eq!(n253.len(), 253);
    assert_eq!(name(&n253), n253);
    assert_eq!(name(&format!("{n253}.")), n253);
    let n254 = format!("{0}.{0}.{0}.{1}", label63, "a".repeat(62));
    assert_eq!(err(&n254), HostError::NameTooLong);
    assert_eq!(err(&"a".repeat(5000)), HostError::TooLong);
}

#[test]
fn numeric_hosts_become_addresses_or_errors() {
    let lo: IpAddr = "127.0.0.1".parse().unwrap();
    for s in [
        "127.0.0.1",
        "2130706433",
        "0x7f.1",
        "0177.0.0.1",
        "127.1",
        "127.0.0.1.",
        "0X7F.1",
    ] {
        assert_eq!(Host::parse(s), Ok(Host::Ip(lo)), "{s}");
    }
    // Ideographic full stops are mapped to dots before the literal check.
    assert_eq!(Host::parse("127。0。0。1"), Ok(Host::Ip(lo)));
    for s in [
        "1.2.3.256",
        "08",
        "0x",
        "1.2.3.4.5",
        "example.123",
        "4294967296",
    ] {
        assert!(matches!(err(s), HostError::MalformedNumeric(_)), "{s}");
    }
    assert_eq!(Host::parse("[::1]"), Ok(Host::Ip("::1".parse().unwrap())));
    assert_eq!(
        Host::parse("[fe80::1%eth0]"),
        Ok(Host::Ip("fe80::1".parse().unwrap()))
    );
    assert!(matches!(err("[::1"), HostError::MalformedNumeric(_)));
    assert!(matches!(err("a.com:80"), HostError::MalformedNumeric(_)));
    assert_eq!(err("[::1]@x"), HostError::Userinfo);
}

#[test]
fn errors_never_echo_the_input() {
    let secret = "s3cr3t-token-value";
    for s in [
        format!("{secret}%41.com"),
        format!("{secret}@a.com"),
        format!("{secret}..com"),
        format!("{secret}.123"),
        format!("{secret} x"),
    ] {
        let msg = err(&s).to_string();
        assert!(!msg.contains(secret), "{msg}");
        assert!(msg.len() < 120, "{msg}");
    }
}

#[test]
fn authorities() {
    let (h, p) = parse_authority("API.github.test:443", None).unwrap();
    assert_eq!((h.to_string(), p), ("api.github.test".to_owned(), 443));
    let (h, p) = parse_authority("a.test", Some(80)).unwrap();
    assert_eq!((h.to_string(), p), ("a.test".to_owned(), 80));
    let (h, p) = parse_authority("[::1]:8080", None).unwrap();
    assert_eq!((h, p), (Host::Ip("::1".parse().unwrap()), 8080));
    let (h, p) = parse_authority("[fe80::1%25eth0]", Some(443)).unwrap();
    assert_eq!((h, p), (Host::Ip("fe80::1".parse().unwrap()), 443));
    let (h, _) = parse_authority("0x7f.1:80", None).unwrap();
    assert_eq!(h, Host::Ip("127.0.0.1".parse().unwrap()));
    assert_eq!(parse_authority("a.test:65535", None).unwrap().1, 65535);

    assert_eq!(parse_authority("a.test", None), Err(HostError::MissingPort));
    assert_eq!(
        parse_authority("a.test", Some(0)),
        Err(HostError::MissingPort)
    );
    for bad in [
        "a.test:0",
        "a.test:65536",
        "a.test:",
        "a.test:+80",
        "a.test:8o",
        "a.test: 80",
        "a.test:080000",
        "[::1]x",
        "[::1]:",
    ] {
        assert_eq!(
            parse_authority(bad, Some(80)),
            Err(HostError::InvalidPort),
            "{bad}"
        );
    }
    assert_eq!(
        parse_authority("user:pw@a.test:443", None),
        Err(HostError::Userinfo)
    );
    assert_eq!(
        parse_authority("user@a.test", Some(80)),
        Err(HostError::Userinfo)
    );
    assert_eq!(
        parse_authority("::1", Some(80)),
        Err(HostError::UnbracketedIpv6)
    );
    assert_eq!(
        parse_authority("::1:80", None),
        Err(HostError::UnbracketedIpv6)
    );
    assert_eq!(parse_authority("", Some(80)), Err(HostError::Empty));
    assert!(parse_authority("[::1", Some(80)).is_err());
    assert!(parse_authority("a%2e.test:80", None).is_err());
}

#[test]
fn exact_patterns_match_only_the_name() {
    let p = HostPattern::parse("API.github.test.").unwrap();
    assert!(p.matches(&dns("api.github.test")));
    assert!(!p.matches(&dns("x.api.github.test")));
    assert!(!p.matches(&dns("github.test")));
    assert!(!p.matches(&dns("api.github.test.evil.test")));
    assert!(!p.matches(&dns("evilapi.github.test")));
    assert!(!p.matches(&dns("аpi.github.test")));
}

#[test]
fn wildcard_patterns_match_subdomains_not_the_apex() {
    let p = HostPattern::parse("*.anthropic.test").unwrap();
    assert!(p.matches(&dns("api.anthropic.test")));
    assert!(p.matches(&dns("a.b.anthropic.test")));
    assert!(!p.matches(&dns("anthropic.test")));
    assert!(!p.matches(&dns("evilanthropic.test")));
    assert!(!p.matches(&dns("anthropic.test.evil.test")));
    assert!(!p.matches(&dns("api.аnthropic.test")));
    assert_eq!(p.to_string(), "*.anthropic.test");
}

#[test]
fn unicode_patterns_match_their_punycode() {
    let p = HostPattern::parse("bücher.de").unwrap();
    assert!(p.matches(&dns("xn--bcher-kva.de")));
    assert!(p.matches(&dns("BÜCHER.de")));
}

#[test]
fn ip_patterns_match_addresses_exactly() {
    let p = HostPattern::parse("127.0.0.2").unwrap();
    assert!(p.matches_host(&Host::parse("127.0.0.2").unwrap()));
    assert!(p.matches_host(&Host::parse("[::ffff:127.0.0.2]").unwrap()));
    assert!(!p.matches_host(&Host::parse("127.0.0.3").unwrap()));
    assert!(
        !HostPattern::parse("*.test")
            .unwrap()
            .matches_host(&Host::parse("127.0.0.2").unwrap())
    );
}

#[test]
fn bad_patterns_are_refused() {
    for bad in [
        "*",
        "*.",
        "**.a.test",
        "a.*.test",
        "*a.test",
        "a*.test",
        "*.*.test",
        "*.127.0.0.1",
        "",
        "a..test",
        "a b.test",
        "*.1.2.3.256",
    ] {
        assert!(HostPattern::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn full_width_structure_characters_are_refused_after_mapping() {
    for s in [
        "a＠b.com",
        "a％2e.com",
        "a：80",
        "a／b.com",
        "a＼b.com",
        "a＃b.com",
        "a？b.com",
        "a\u{3000}b.com",
        "a＿b.com",
    ] {
        assert!(Host::parse(s).is_err(), "{s:?} -> {:?}", Host::parse(s));
    }
    // Full-width and half-width dots separate labels like '.' does.
    assert_eq!(name("bücher．de"), "xn--bcher-kva.de");
    assert_eq!(name("bücher｡de"), "xn--bcher-kva.de");
}
