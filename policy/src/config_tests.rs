use super::*;

fn parse(toml_text: &str) -> Result<PolicyConfig, toml::de::Error> {
    toml::from_str(toml_text)
}

fn compile_err(cfg: PolicyConfig) -> String {
    cfg.compile().unwrap_err().to_string()
}

#[test]
fn the_documented_example_parses_and_compiles() {
    let cfg = parse(
        r#"
        approved_write_hosts = ["api.github.test", "*.anthropic.test"]
        tunnel_hosts = ["registry.npmjs.test"]
        tunnel_ports = [443]
        allowed_ports = [80, 443, 8080]
        allow_ranges = ["127.0.0.2/32"]
        "#,
    )
    .unwrap();
    assert_eq!(cfg.allowed_ports, vec![80, 443, 8080]);
    cfg.compile().unwrap();
}

#[test]
fn omitted_keys_take_defaults() {
    let cfg = parse("").unwrap();
    assert_eq!(cfg, PolicyConfig::default());
    assert_eq!(cfg.tunnel_ports, vec![443]);
    assert_eq!(cfg.allowed_ports, vec![80, 443]);
}

#[test]
fn unknown_keys_are_errors_naming_the_key() {
    let err = parse("approved_write_host = [\"a.test\"]")
        .unwrap_err()
        .to_string();
    assert!(err.contains("approved_write_host"), "{err}");
    assert!(parse("allowed_ports = [\"80\"]").is_err());
    assert!(parse("allowed_ports = [70000]").is_err());
    assert!(parse("allowed_ports = [-1]").is_err());
}

#[test]
fn invalid_cidrs_name_key_and_index() {
    for bad in [
        "10.0.0.0/33",
        "::/129",
        "10.0.0.0/",
        "10.0.0.0/+8",
        "10.0.0.0/08x",
        "10.0.0/8",
        "0x7f.1",
        "localhost",
        "10.0.0.1/8",
        "",
        "fe80::1%eth0",
    ] {
        let cfg = PolicyConfig {
            allow_ranges: vec!["127.0.0.2/32".into(), bad.into()],
            ..Default::default()
        };
        let msg = compile_err(cfg);
        assert!(msg.starts_with("policy.allow_ranges[1]: "), "{bad}: {msg}");
        assert!(msg.contains("is not a valid CIDR"), "{bad}: {msg}");
    }
    let err = PolicyConfig {
        allow_ranges: vec!["10.0.0.0/33".into()],
        ..Default::default()
    }
    .compile()
    .unwrap_err();
    assert_eq!(err.key, "allow_ranges");
    assert_eq!(err.index, 0);
    assert!(
        err.to_string()
            .starts_with(r#"policy.allow_ranges[0]: "10.0.0.0/33" is not a valid CIDR"#)
    );
}

#[test]
fn allow_ranges_that_would_exempt_the_never_exempt_are_errors() {
    for bad in [
        "0.0.0.0/0",
        "0.0.0.0/8",
        "0.0.0.5",
        "::/0",
        "::",
        "::/96",
        "169.254.0.0/16",
        "169.254.169.254",
        "168.63.129.0/24",
        "100.100.100.200/32",
        "fd00::/8",
        "fd00:ec2::254",
        "224.0.0.0/4",
        "ff00::/8",
        "255.255.255.255",
        "128.0.0.0/1",
        "::ffff:127.0.0.2",
    ] {
        let cfg = PolicyConfig {
            allow_ranges: vec![bad.into()],
            ..Default::default()
        };
        let msg = compile_err(cfg);
        assert!(msg.starts_with("policy.allow_ranges[0]: "), "{bad}: {msg}");
    }
    // Neighbours that are fine.
    for good in [
        "127.0.0.0/8",
        "127.0.0.2",
        "10.0.0.0/8",
        "169.254.1.0/24",
        "fd00:1::/64",
        "::1",
        "192.0.2.0/24",
    ] {
        let cfg = PolicyConfig {
            allow_ranges: vec![good.into()],
            ..Default::default()
        };
        cfg.compile().unwrap_or_else(|e| panic!("{good}: {e}"));
    }
}

#[test]
fn invalid_host_patterns_name_key_and_index() {
    for key in ["approved_write_hosts", "tunnel_hosts"] {
        for bad in [
            "a..test",
            "*",
            "a.*.test",
            "a_b.test",
            "user@a.test",
            "a.test:443",
            "ａ.test",
            "1.2.3.256",
        ] {
            let mut cfg = PolicyConfig::default();
            let list = vec!["ok.test".to_owned(), bad.to_owned()];
            if key == "tunnel_hosts" {
                cfg.tunnel_hosts = list;
            } else {
                cfg.approved_write_hosts = list;
            }
            let msg = compile_err(cfg);
            assert!(
                msg.starts_with(&format!("policy.{key}[1]: ")),
                "{bad}: {msg}"
            );
            assert!(msg.contains("is not a valid host pattern"), "{msg}");
        }
    }
}

#[test]
fn port_zero_is_an_error() {
    let msg = compile_err(PolicyConfig {
        allowed_ports: vec![80, 0],
        ..Default::default()
    });
    assert!(msg.starts_with("policy.allowed_ports[1]: "), "{msg}");
    let msg = compile_err(PolicyConfig {
        tunnel_ports: vec![0],
        ..Default::default()
    });
    assert!(msg.starts_with("policy.tunnel_ports[0]: "), "{msg}");
}

#[test]
fn long_values_are_truncated_in_errors() {
    let long = format!("{}.test", "a".repeat(500));
    let msg = compile_err(PolicyConfig {
        approved_write_hosts: vec![long],
        ..Default::default()
    });
    assert!(msg.len() < 300, "{msg}");
}
