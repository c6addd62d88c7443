use super::*;
use crate::sandbox::{
    AF_INET, AF_INET6, AF_NETLINK, AF_UNIX, AF_VSOCK, ArgMatch, CLONE_NAMESPACE_FLAGS, DENY_ALWAYS,
    ENOSYS_ALWAYS, SyscallRule, TmpfsMount, WritablePath,
};

fn base() -> SandboxProfile {
    SandboxProfile::agent_default()
}

#[test]
fn default_profile_is_valid_for_production() {
    base().validate_production().unwrap();
}

#[test]
fn profile_round_trips_through_json() {
    let p = base();
    let json = serde_json::to_string(&p).unwrap();
    let back: SandboxProfile = serde_json::from_str(&json).unwrap();
    assert_eq!(p, back);
}

#[test]
fn unknown_fields_are_refused() {
    let mut v = serde_json::to_value(base()).unwrap();
    v["container"]["seccomp_unconfined"] = serde_json::Value::Bool(true);
    assert!(serde_json::from_value::<SandboxProfile>(v).is_err());
}

#[test]
fn every_always_denied_syscall_has_one_reason_line() {
    let p = base();
    for (name, why) in DENY_ALWAYS.iter().chain(ENOSYS_ALWAYS) {
        assert!(!why.is_empty(), "{name}");
        assert_eq!(
            p.seccomp
                .rules
                .iter()
                .filter(|r| r.syscall == *name)
                .count(),
            1,
            "{name} listed once"
        );
    }
}

#[test]
fn dropping_any_mandatory_refusal_is_refused_and_keeping_it_passes() {
    for (name, _) in DENY_ALWAYS.iter().chain(ENOSYS_ALWAYS) {
        let mut p = base();
        p.seccomp.rules.retain(|r| r.syscall != *name);
        assert!(
            matches!(p.validate(), Err(ProfileError::Seccomp(_))),
            "removing {name} must be refused"
        );
    }
    base().validate().unwrap();
}

#[test]
fn dropping_any_built_in_rule_is_refused() {
    let rules = base().seccomp.rules;
    for (i, r) in rules.iter().enumerate() {
        let mut p = base();
        p.seccomp.rules.remove(i);
        assert!(
            matches!(p.validate(), Err(ProfileError::Seccomp(_))),
            "dropping {} {:?} must be refused",
            r.syscall,
            r.when
        );
    }
}

#[test]
fn socket_families_are_an_allow_list() {
    let p = base();
    let family_rule = p
        .seccomp
        .rules_for("socket", DenyErrno::Eperm)
        .find(|r| r.when.len() == 4)
        .expect("family allow-list rule");
    let allowed: Vec<u64> = family_rule
        .when
        .iter()
        .map(|m| match m.op {
            ArgOp::Ne(v) => v,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(allowed, vec![AF_UNIX, AF_INET, AF_INET6, AF_NETLINK]);
    assert!(!allowed.contains(&AF_VSOCK));
}

#[test]
fn turning_a_refusal_into_a_conditional_one_is_refused() {
    let mut p = base();
    for r in &mut p.seccomp.rules {
        if r.syscall == "ptrace" {
            r.when.push(ArgMatch {
                index: 0,
                width: ArgWidth::Dword,
                op: ArgOp::Eq(999),
            });
        }
    }
    assert!(matches!(p.validate(), Err(ProfileError::Seccomp(_))));
}

#[test]
fn clone_namespace_flags_each_required() {
    for (flag, _) in CLONE_NAMESPACE_FLAGS {
        let mut p = base();
        p.seccomp.rules.retain(|r| {
            !(r.syscall == "clone"
                && r.when.first().map(|m| m.op)
                    == Some(ArgOp::MaskedEq {
                        mask: flag,
                        value: flag,
                    }))
        });
        assert!(p.validate().is_err(), "flag {flag:#x}");
    }
}

#[test]
fn clone3_with_eperm_is_refused() {
    let mut p = base();
    p.seccomp.rules.push(SyscallRule {
        syscall: "clone3".into(),
        errno: DenyErrno::Eperm,
        when: vec![],
        why: "x".into(),
    });
    assert!(p.validate().is_err());
}

#[test]
fn x32_guard_and_arch_required() {
    let mut p = base();
    p.seccomp.deny_x32 = false;
    assert!(p.validate().is_err());
    let mut p = base();
    p.seccomp.arch = "aarch64".into();
    assert!(p.validate().is_err());
}

#[test]
fn malformed_rules_are_refused() {
    let bad_rules = [
        SyscallRule {
            syscall: "Mount; rm".into(),
            errno: DenyErrno::Eperm,
            when: vec![],
            why: "x".into(),
        },
        SyscallRule {
            syscall: "getpid".into(),
            errno: DenyErrno::Eperm,
            when: vec![],
            why: " ".into(),
        },
        SyscallRule {
            syscall: "getpid".into(),
            errno: DenyErrno::Eperm,
            when: vec![ArgMatch {
                index: 6,
                width: ArgWidth::Qword,
                op: ArgOp::Eq(1),
            }],
            why: "x".into(),
        },
        SyscallRule {
            syscall: "getpid".into(),
            errno: DenyErrno::Eperm,
            when: vec![ArgMatch {
                index: 0,
                width: ArgWidth::Dword,
                op: ArgOp::Eq(1 << 40),
            }],
            why: "x".into(),
        },
    ];
    for r in bad_rules {
        let mut p = base();
        p.seccomp.rules.push(r.clone());
        assert!(p.validate().is_err(), "{r:?}");
    }
    // A well-formed extra refusal is fine.
    let mut p = base();
    p.seccomp.rules.push(SyscallRule {
        syscall: "getcpu".into(),
        errno: DenyErrno::Eperm,
        when: vec![],
        why: "example".into(),
    });
    p.validate().unwrap();
}

fn with_writable(path: &str) -> SandboxProfile {
    let mut p = base();
    p.filesystem.writable.push(WritablePath {
        path: path.into(),
        required: false,
        why: "test".into(),
    });
    p
}

#[test]
fn writable_paths_outside_scratch_are_refused() {
    for path in [
        "/",
        "/etc",
        "/etc/passwd",
        "/usr/local/bin",
        "/proc/self/mem",
        "/sys",
        "/paddock",
        "/paddock/proxy.sock",
        "/dev",
        "/dev/sda",
        "/dev/mem",
        "/run/docker.sock",
        "/var/run",
        "/root",
    ] {
        assert!(
            matches!(
                with_writable(path).validate(),
                Err(ProfileError::WritableForbidden { .. })
            ),
            "{path}"
        );
    }
    for path in [
        "/workspace/sub",
        "/var/tmp",
        "/opt/cache",
        "/etcetera",
        "/devices",
    ] {
        with_writable(path).validate().unwrap();
    }
}

#[test]
fn non_normal_paths_are_refused() {
    for path in [
        "workspace",
        "/workspace/",
        "/workspace/../etc",
        "/./etc",
        "//etc",
        "",
    ] {
        assert!(
            matches!(
                with_writable(path).validate(),
                Err(ProfileError::PathNotNormal { .. })
            ),
            "{path:?}"
        );
    }
}

#[test]
fn landlock_requirements() {
    let mut p = base();
    p.filesystem.landlock.min_abi = 2;
    assert_eq!(p.validate(), Err(ProfileError::LandlockAbiTooLow(2)));
    let mut p = base();
    p.filesystem.landlock.optional = true;
    p.validate().unwrap();
    assert_eq!(p.validate_production(), Err(ProfileError::LandlockOptional));
    let mut p = base();
    p.filesystem.writable.retain(|w| w.path != "/workspace");
    assert!(matches!(
        p.validate_production(),
        Err(ProfileError::WorkspaceNotWritable(_))
    ));
}

#[test]
fn rlimit_bounds() {
    let mut p = base();
    p.rlimits.core_bytes = 1;
    assert!(p.validate().is_err());
    let mut p = base();
    p.rlimits.nproc = 0;
    assert!(p.validate().is_err());
    let mut p = base();
    p.rlimits.nofile = 10;
    assert!(p.validate().is_err());
    let mut p = base();
    p.rlimits.fsize_bytes = 0;
    assert!(p.validate().is_err());
}

#[test]
fn relay_must_stay_on_loopback() {
    let mut p = base();
    p.relay.listen = "0.0.0.0:3128".parse().unwrap();
    assert!(matches!(p.validate(), Err(ProfileError::Relay(_))));
    let mut p = base();
    p.relay.listen = "[::]:3128".parse().unwrap();
    assert!(p.validate().is_err());
    let mut p = base();
    p.relay.listen = "127.0.0.1:0".parse().unwrap();
    assert!(p.validate().is_err());
    let mut p = base();
    p.relay.listen = "[::1]:3128".parse().unwrap();
    p.validate().unwrap();
    let mut p = base();
    p.relay.proxy_socket = "proxy.sock".into();
    assert!(p.validate().is_err());
}

#[test]
fn each_container_weakening_is_refused() {
    type Weaken = fn(&mut ContainerSettings);
    let weakenings: &[(&str, Weaken)] = &[
        ("cap_drop", |c| c.cap_drop = vec!["NET_RAW".into()]),
        ("cap_add", |c| c.cap_add = vec!["SYS_ADMIN".into()]),
        ("privileged", |c| c.privileged = true),
        ("nnp", |c| c.no_new_privileges = false),
        ("seccomp", |c| c.docker_default_seccomp = false),
        ("rootfs", |c| c.read_only_rootfs = false),
        ("net", |c| c.network_mode = "bridge".into()),
        ("net host", |c| c.network_mode = "host".into()),
        ("ipc", |c| c.ipc_mode = "host".into()),
        ("uid root", |c| c.uids.first = 0),
        ("uid 1000", |c| c.uids.first = 1000),
        ("uid count", |c| c.uids.count = 0),
        ("uid overflow", |c| c.uids.first = u32::MAX - 1),
        ("tmpfs size", |c| c.tmpfs[0].size_bytes = 0),
        ("tmpfs huge", |c| c.tmpfs[0].size_bytes = u64::MAX),
        ("tmpfs suid", |c| {
            c.tmpfs[0].options.retain(|o| o != "nosuid")
        }),
        ("tmpfs dev", |c| c.tmpfs[0].options.retain(|o| o != "nodev")),
        ("tmpfs inject", |c| {
            c.tmpfs[0].options.push("exec,suid".into())
        }),
        ("tmpfs mode", |c| c.tmpfs[0].mode = 0o4777),
        ("tmpfs root", |c| {
            c.tmpfs.push(TmpfsMount {
                path: "/".into(),
                size_bytes: 1,
                options: vec!["nosuid".into(), "nodev".into()],
                mode: 0o755,
            });
        }),
        ("ws size", |c| c.workspace_size_bytes = 0),
        ("memory", |c| c.memory_bytes = 0),
        ("swap", |c| c.memory_swap_bytes = c.memory_bytes * 2),
        ("pids", |c| c.pids_limit = 0),
        ("cpus", |c| c.nano_cpus = 0),
        ("log", |c| c.log_max_bytes = 0),
        ("docker sock", |c| {
            c.forbidden_mount_sources
                .retain(|s| s != "/var/run/docker.sock");
        }),
    ];
    for (name, weaken) in weakenings {
        let mut p = base();
        weaken(&mut p.container);
        assert!(
            matches!(
                p.validate(),
                Err(ProfileError::Container { .. } | ProfileError::PathNotNormal { .. })
            ),
            "{name}: {:?}",
            p.validate()
        );
    }
}

#[test]
fn uid_slots_are_distinct_and_bounded() {
    let r = base().container.uids;
    assert_eq!(r.uid_for_slot(0), Some(10_001));
    assert_eq!(r.uid_for_slot(1), Some(10_002));
    assert_eq!(r.uid_for_slot(r.count), None);
}

#[test]
fn proxy_environment_points_at_the_relay() {
    let env = base().relay.proxy_environment();
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("HTTPS_PROXY"), Some("http://127.0.0.1:3128"));
    assert_eq!(get("http_proxy"), Some("http://127.0.0.1:3128"));
    assert_eq!(get("NO_PROXY"), Some(""));
}

#[test]
fn normalised_path_check() {
    assert!(is_normal_absolute("/"));
    assert!(is_normal_absolute("/a/b"));
    assert!(!is_normal_absolute("/a//b"));
    assert!(!is_normal_absolute("/a/./b"));
    assert!(!is_normal_absolute("/a/b/"));
    assert!(!is_normal_absolute("/a/\0"));
}

mod properties {
    use super::super::is_normal_absolute;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn joined_plain_components_are_normal(parts in prop::collection::vec("[a-zA-Z0-9_-][a-zA-Z0-9_.-]{0,8}", 1..6)) {
            let path = format!("/{}", parts.join("/"));
            prop_assume!(!parts.iter().any(|p| p == "." || p == ".."));
            prop_assert!(is_normal_absolute(&path));
        }

        #[test]
        fn any_dot_dot_component_is_refused(
            before in prop::collection::vec("[a-z]{1,5}", 0..4),
            after in prop::collection::vec("[a-z]{1,5}", 0..4),
        ) {
            let mut parts = before;
            parts.push("..".into());
            parts.extend(after);
            let path = format!("/{}", parts.join("/"));
            prop_assert!(!is_normal_absolute(&path));
        }

        #[test]
        fn writable_paths_never_land_in_system_dirs(root in prop::sample::select(vec!["/etc", "/usr", "/proc", "/sys", "/paddock", "/run", "/boot", "/root", "/bin", "/lib"]), rest in "[a-z]{0,6}") {
            let path = if rest.is_empty() { root.to_owned() } else { format!("{root}/{rest}") };
            prop_assert!(super::with_writable(&path).validate().is_err());
        }
    }
}
