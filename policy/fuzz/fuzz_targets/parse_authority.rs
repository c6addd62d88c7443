//! Fuzzes the host/authority parser with arbitrary bytes and checks its invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;
use paddock_policy::{Host, HostPattern, Literal, parse_authority, parse_literal};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_literal(text);
    let _ = HostPattern::parse(text);
    for default_port in [None, Some(443)] {
        if let Ok((host, port)) = parse_authority(text, default_port) {
            assert_ne!(port, 0);
            check_host(&host);
        }
    }
    if let Ok(host) = Host::parse(text) {
        check_host(&host);
    }
});

fn check_host(host: &Host) {
    match host {
        Host::Name(name) => {
            let s = name.as_str();
            assert!(!s.is_empty() && s.len() <= 253, "length of {s:?}");
            assert!(
                s.bytes().all(|b| b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || b == b'-'
                    || b == b'.'),
                "characters of {s:?}"
            );
            assert!(
                s.split('.').all(|l| !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')),
                "labels of {s:?}"
            );
            // A name never looks like an address, and normalisation is idempotent.
            assert_eq!(parse_literal(s), Literal::Name, "{s:?} looks numeric");
            assert_eq!(Host::parse(s).as_ref(), Ok(host), "{s:?} not idempotent");
        }
        Host::Ip(ip) => {
            // Every address round-trips through its canonical text.
            let text = host.to_string();
            assert_eq!(Host::parse(&text), Ok(Host::Ip(*ip)), "{text}");
        }
    }
}
