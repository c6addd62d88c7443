//! Unit tests of the launcher against the recording fake: exact container spec and call order.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use bollard::models::{
    HostConfigCgroupnsModeEnum, MountBindOptionsPropagationEnum, MountTypeEnum,
    RestartPolicyNameEnum,
};
use bytes::Bytes;
use paddock_policy::Scrubber;
use paddock_policy::sandbox::SandboxProfile;

use super::fake::{Call, FakeEngine, Script};
use super::*;

fn spec() -> RunSpec {
    let mut s = RunSpec::new(
        "run-1",
        "paddock/agent:latest",
        vec!["echo".into(), "hi".into()],
        PathBuf::from("/var/lib/paddock/runs/run-1"),
    );
    s.issue = Some("42".into());
    s.slot = 3;
    s.env = vec![("PADDOCK_ANTHROPIC_KEY".into(), "pdk_h_handle".into())];
    s
}

fn launcher(script: Script) -> Launcher<FakeEngine> {
    Launcher::new(FakeEngine::new(script), SandboxProfile::agent_default()).unwrap()
}

fn out(text: &str) -> OutputChunk {
    OutputChunk {
        stream: OutputStream::Stdout,
        bytes: Bytes::from(text.to_owned()),
    }
}

#[test]
fn the_container_request_is_exactly_the_profile() {
    let profile = SandboxProfile::agent_default();
    let c = &profile.container;
    let body = container_body(&spec(), &profile, None).unwrap();
    let h = body.host_config.clone().unwrap();

    assert_eq!(body.user.as_deref(), Some("10004:10004"), "uid_for_slot(3)");
    assert_eq!(body.image.as_deref(), Some("paddock/agent:latest"));
    assert_eq!(body.hostname.as_deref(), Some(SANDBOX_HOSTNAME));
    assert_eq!(body.network_disabled, Some(true));
    assert_eq!(body.tty, Some(false));
    assert_eq!(body.open_stdin, Some(true));
    assert_eq!(body.stdin_once, Some(true));
    assert_eq!(body.working_dir.as_deref(), Some("/workspace"));
    assert_eq!(
        body.entrypoint,
        Some(vec![
            "/usr/local/bin/paddock-init".to_owned(),
            INIT_GATE_FLAG.to_owned(),
            "--".to_owned()
        ])
    );
    assert_eq!(
        body.cmd,
        Some(["echo", "hi"].map(String::from).to_vec()),
        "the agent runs under paddock-init directly: no shell in between"
    );
    let env = body.env.clone().unwrap();
    for (k, v) in profile.relay.proxy_environment() {
        assert!(env.contains(&format!("{k}={v}")), "{k}");
    }
    assert!(env.contains(&"PADDOCK_ANTHROPIC_KEY=pdk_h_handle".to_owned()));
    assert_eq!(
        env.len(),
        profile.relay.proxy_environment().len() + 1,
        "nothing else: {env:?}"
    );
    assert_eq!(
        body.labels,
        Some(HashMap::from([
            (LABEL_MANAGED.to_owned(), "true".to_owned()),
            (LABEL_RUN.to_owned(), "run-1".to_owned()),
            (LABEL_ISSUE.to_owned(), "42".to_owned()),
            (LABEL_SLOT.to_owned(), "3".to_owned()),
        ]))
    );

    assert_eq!(h.network_mode.as_deref(), Some("none"));
    assert_eq!(h.cap_drop, Some(vec!["ALL".to_owned()]));
    assert_eq!(h.cap_add, Some(Vec::new()));
    assert_eq!(h.privileged, Some(false));
    assert_eq!(
        h.security_opt,
        Some(vec!["no-new-privileges:true".to_owned()])
    );
    assert_eq!(h.readonly_rootfs, Some(true));
    assert_eq!(h.ipc_mode.as_deref(), Some("private"));
    assert_eq!(h.pid_mode.as_deref(), Some(""));
    assert_eq!(h.uts_mode.as_deref(), Some(""));
    assert_eq!(h.userns_mode.as_deref(), Some(""));
    assert_eq!(h.cgroupns_mode, Some(HostConfigCgroupnsModeEnum::PRIVATE));
    assert_eq!(h.memory, Some(i64::try_from(c.memory_bytes).unwrap()));
    assert_eq!(
        h.memory_swap,
        Some(i64::try_from(c.memory_bytes).unwrap()),
        "no swap"
    );
    assert_eq!(h.nano_cpus, Some(2_000_000_000));
    assert_eq!(h.pids_limit, Some(512));
    assert_eq!(h.devices, Some(Vec::new()));
    assert_eq!(h.device_cgroup_rules, Some(Vec::new()));
    assert_eq!(h.binds, Some(Vec::new()));
    assert_eq!(h.volumes_from, Some(Vec::new()));
    assert_eq!(h.port_bindings, Some(HashMap::new()));
    assert_eq!(h.auto_remove, Some(false));
    assert_eq!(h.init, Some(false));
    let restart = h.restart_policy.clone().unwrap();
    assert_eq!(restart.name, Some(RestartPolicyNameEnum::NO));
    let log = h.log_config.clone().unwrap();
    assert_eq!(log.typ.as_deref(), Some("json-file"));
    assert_eq!(
        log.config,
        Some(HashMap::from([
            ("max-size".to_owned(), "10485760".to_owned()),
            ("max-file".to_owned(), "2".to_owned()),
        ]))
    );
    assert_eq!(
        h.tmpfs,
        Some(HashMap::from([
            (
                "/tmp".to_owned(),
                "size=536870912,mode=1777,nosuid,nodev".to_owned()
            ),
            (
                "/home/agent".to_owned(),
                "size=536870912,mode=700,uid=10004,gid=10004,nosuid,nodev".to_owned()
            ),
        ]))
    );

    let mounts = h.mounts.clone().unwrap();
    assert_eq!(mounts.len(), 2, "workspace and /paddock, nothing else");
    let ws = &mounts[0];
    assert_eq!(ws.target.as_deref(), Some("/workspace"));
    assert_eq!(ws.typ, Some(MountTypeEnum::VOLUME));
    assert_eq!(ws.source, None, "anonymous: removed with the container");
    let vo = ws.volume_options.clone().unwrap();
    assert_eq!(vo.no_copy, Some(true));
    let driver = vo.driver_config.unwrap();
    assert_eq!(driver.name.as_deref(), Some("local"));
    assert_eq!(
        driver.options,
        Some(HashMap::from([
            ("type".to_owned(), "tmpfs".to_owned()),
            ("device".to_owned(), "tmpfs".to_owned()),
            (
                "o".to_owned(),
                format!(
                    "size={},nr_inodes={WORKSPACE_INODES},mode=700,uid=10004,gid=10004,nosuid,nodev",
                    c.workspace_size_bytes
                )
            ),
        ]))
    );
    assert_eq!(
        vo.labels.unwrap().get(LABEL_MANAGED).map(String::as_str),
        Some("true")
    );
    let pd = &mounts[1];
    assert_eq!(pd.target.as_deref(), Some("/paddock"));
    assert_eq!(pd.source.as_deref(), Some("/var/lib/paddock/runs/run-1"));
    assert_eq!(pd.typ, Some(MountTypeEnum::BIND));
    assert_eq!(pd.read_only, Some(true));
    let bo = pd.bind_options.clone().unwrap();
    assert_eq!(
        bo.propagation,
        Some(MountBindOptionsPropagationEnum::RPRIVATE)
    );
    assert_eq!(bo.non_recursive, Some(true));
}

#[test]
fn each_slot_gets_its_own_uid_and_slots_past_the_range_are_refused() {
    let profile = SandboxProfile::agent_default();
    let mut s = spec();
    let mut seen = std::collections::HashSet::new();
    for slot in 0..5 {
        s.slot = slot;
        let user = container_body(&s, &profile, None).unwrap().user.unwrap();
        assert!(seen.insert(user));
    }
    s.slot = profile.container.uids.count;
    assert!(matches!(
        container_body(&s, &profile, None),
        Err(SandboxError::InvalidSpec { field: "slot", .. })
    ));
}

#[test]
fn run_specs_that_would_weaken_the_sandbox_are_refused() {
    let profile = SandboxProfile::agent_default();
    let refused = |f: &dyn Fn(&mut RunSpec)| {
        let mut s = spec();
        f(&mut s);
        container_body(&s, &profile, None).is_err()
    };
    // The docker socket's directory, its parents, and other host roots.
    for dir in [
        "/var/run",
        "/run",
        "/var",
        "/",
        "/proc/1",
        "/sys",
        "/dev",
        "relative/dir",
        "/a/../run",
        "/a//b",
        "/a/b:/c",
    ] {
        assert!(refused(&|s| s.run_dir = PathBuf::from(dir)), "{dir}");
    }
    for name in [
        "HTTP_PROXY",
        "https_proxy",
        "NO_PROXY",
        "no_proxy",
        "ALL_PROXY",
        "PIP_PROXY",
        "SSL_CERT_FILE",
        "NODE_EXTRA_CA_CERTS",
        "ssl_cert_file",
    ] {
        assert!(
            refused(&|s| s.env = vec![(name.into(), String::new())]),
            "{name}"
        );
    }
    assert!(refused(&|s| s.env = vec![("A=B".into(), "x".into())]));
    assert!(refused(&|s| s.run_id = "../x".into()));
    assert!(refused(&|s| s.run_id = String::new()));
    assert!(refused(&|s| s.issue = Some("a b".into())));
    assert!(refused(&|s| s.command = Vec::new()));
    assert!(refused(&|s| s.timeout = Duration::ZERO));
    // The allowed neighbours.
    assert!(!refused(
        &|s| s.run_dir = PathBuf::from("/var/lib/paddock/runs/x")
    ));
    assert!(!refused(&|s| s.run_dir = PathBuf::from("/srv/run")));
    assert!(!refused(
        &|s| s.env = vec![("HTTP_PROXY_NOTE".into(), "x".into())]
    ));
}

#[test]
fn the_ca_variables_name_the_run_bundle_or_the_run_ca() {
    let profile = SandboxProfile::agent_default();
    let without = container_body(&spec(), &profile, None)
        .unwrap()
        .env
        .unwrap();
    assert!(
        !without.iter().any(|e| e.contains(CA_FILE)),
        "no CA without ca_file: {without:?}"
    );
    let mut s = spec();
    s.ca_file = true;
    let with = container_body(&s, &profile, None).unwrap().env.unwrap();
    // Variables that replace a client's store name the bundle (run CA + roots for tunnelled
    // hosts); Node's, which adds to its built-in roots, names the run's CA alone.
    for var in [
        "SSL_CERT_FILE",
        "REQUESTS_CA_BUNDLE",
        "GIT_SSL_CAINFO",
        "CURL_CA_BUNDLE",
        "PIP_CERT",
        "npm_config_cafile",
    ] {
        assert!(
            with.contains(&format!("{var}=/paddock/ca-bundle.pem")),
            "{var}: {with:?}"
        );
    }
    assert!(
        with.contains(&"NODE_EXTRA_CA_CERTS=/paddock/ca.pem".to_owned()),
        "{with:?}"
    );
    assert_eq!(with.len(), without.len() + CA_ENV_VARS.len());
    // The proxy variables npm, pip and git read point at the relay either way.
    for var in ["npm_config_https_proxy", "PIP_PROXY", "https_proxy"] {
        assert!(
            with.contains(&format!("{var}=http://127.0.0.1:3128")),
            "{var}"
        );
    }
}

#[test]
fn a_weakened_profile_is_refused_before_any_call() {
    let mut profile = SandboxProfile::agent_default();
    profile.container.cap_add = vec!["SYS_ADMIN".into()];
    let engine = FakeEngine::new(Script::default());
    assert!(matches!(
        Launcher::new(engine.clone(), profile),
        Err(SandboxError::Profile(_))
    ));
    let mut profile = SandboxProfile::agent_default();
    profile.container.network_mode = "bridge".into();
    assert!(Launcher::new(engine.clone(), profile).is_err());
    assert!(engine.calls().is_empty());
}

#[tokio::test]
async fn a_run_goes_create_attach_start_fill_report_readback_wait_remove() {
    let l = launcher(Script {
        output: vec![out("hello\n")],
        exit_code: 3,
        archive: Bytes::from_static(b"tar-bytes"),
        ..Default::default()
    });
    let mut s = spec();
    s.workspace = Some(Bytes::from(vec![0u8; 1024]));
    s.return_workspace = true;
    let o = l.run(s).await.unwrap();
    assert_eq!(o.status, RunStatus::Exited(3));
    assert_eq!(o.status.as_str(), "exited");
    assert!(o.agent_reported);
    assert_eq!(o.stdout, b"hello\n", "the marker and its newline are gone");
    assert_eq!(o.workspace.as_deref(), Some(&b"tar-bytes"[..]));
    assert!(o.container_removed);
    assert_eq!(
        l.engine().call_names(),
        [
            "create",
            "attach",
            "start",
            "put_archive",
            "get_archive",
            "wait",
            "inspect",
            "remove"
        ]
    );
    let calls = l.engine().calls();
    assert!(matches!(&calls[0], Call::Create { name, .. } if name == "paddock-run-run-1"));
    assert!(matches!(&calls[3], Call::PutArchive { path, len: 1024, .. } if path == "/workspace"));
}

#[test]
fn cli_exit_codes_follow_the_agent_and_timeout_conventions() {
    assert_eq!(RunStatus::Exited(0).process_exit_code(), 0);
    assert_eq!(RunStatus::Exited(7).process_exit_code(), 7);
    assert_eq!(RunStatus::Exited(137).process_exit_code(), 137);
    assert_eq!(RunStatus::Exited(-1).process_exit_code(), EXIT_REFUSED);
    assert_eq!(RunStatus::Exited(256).process_exit_code(), EXIT_REFUSED);
    assert_eq!(RunStatus::TimedOut.process_exit_code(), EXIT_TIMED_OUT);
}

#[tokio::test]
async fn without_a_workspace_nothing_is_put_or_read() {
    let l = launcher(Script::default());
    let o = l.run(spec()).await.unwrap();
    assert_eq!(o.status, RunStatus::Exited(0));
    assert_eq!(o.workspace, None);
    assert_eq!(o.workspace_error, None);
    assert_eq!(
        l.engine().call_names(),
        ["create", "attach", "start", "wait", "inspect", "remove"]
    );
}

#[tokio::test]
async fn a_timeout_kills_and_still_removes() {
    let l = launcher(Script {
        output: vec![out("working\n")],
        hang: true,
        ..Default::default()
    });
    let mut s = spec();
    s.timeout = Duration::from_millis(300);
    s.return_workspace = true;
    let t = std::time::Instant::now();
    let o = l.run(s).await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(o.status, RunStatus::TimedOut);
    assert_eq!(o.status.as_str(), "timed_out");
    assert_eq!(o.status.exit_code(), None);
    assert_eq!(o.workspace, None);
    assert!(o.workspace_error.is_some());
    assert_eq!(o.stdout, b"working\n");
    let names = l.engine().call_names();
    assert_eq!(names.last(), Some(&"remove"));
    assert!(names.contains(&"kill"), "{names:?}");
    assert!(!names.contains(&"get_archive"));
}

#[tokio::test]
async fn output_is_capped_and_scrubbed_including_run_secrets() {
    let key = "ghp_0123456789abcdefABCDEF0123456789abcd";
    let real = "hunter2-real-secret-value";
    let l = launcher(Script {
        output: vec![
            out(&format!("key {key}\nsecret {real}\n")),
            out(&"x".repeat(10_000)),
        ],
        ..Default::default()
    });
    let mut s = spec();
    s.output_cap_bytes = 200;
    s.scrubber = Scrubber::new([real]).unwrap();
    struct Collect(Vec<u8>);
    impl OutputSink for Collect {
        fn output(&mut self, _: OutputStream, bytes: &[u8]) {
            self.0.extend_from_slice(bytes);
        }
    }
    let mut live = Collect(Vec::new());
    let o = l.run_with(s, &mut live).await.unwrap();
    let text = String::from_utf8(o.stdout.clone()).unwrap();
    assert!(o.output_truncated);
    assert!(o.output_total_bytes > 10_000);
    assert!(!text.contains(key) && !text.contains(real), "{text}");
    assert!(text.contains("[REDACTED:github]") && text.contains("[REDACTED:secret]"));
    let shown = String::from_utf8(live.0).unwrap();
    assert!(!shown.contains(key) && !shown.contains(real), "{shown}");
    assert!(shown.len() <= 200 + 64, "live output is capped too");
    // The neighbour: plain output passes unchanged.
    let l = launcher(Script {
        output: vec![out("plain text\n")],
        ..Default::default()
    });
    assert_eq!(l.run(spec()).await.unwrap().stdout, b"plain text\n");
}

#[tokio::test]
async fn a_run_without_the_gate_marker_gets_no_workspace() {
    let l = launcher(Script {
        no_marker: true,
        exit_code: 137,
        archive: Bytes::from_static(b"tar"),
        ..Default::default()
    });
    let mut s = spec();
    s.return_workspace = true;
    let o = l.run(s).await.unwrap();
    assert!(!o.agent_reported);
    assert_eq!(o.status, RunStatus::Exited(137));
    assert_eq!(o.workspace, None);
    assert!(o.workspace_error.is_some());
    assert!(!l.engine().call_names().contains(&"get_archive"));
}

#[tokio::test]
async fn an_engine_failure_after_create_still_removes_the_container() {
    for op in ["attach", "start", "put_archive", "get_archive", "wait"] {
        let l = launcher(Script {
            fail: Some(op),
            ..Default::default()
        });
        let mut s = spec();
        s.workspace = Some(Bytes::from(vec![0u8; 1024]));
        s.return_workspace = true;
        let r = l.run(s).await;
        let names = l.engine().call_names();
        assert_eq!(names.last(), Some(&"remove"), "{op}: {names:?}");
        if op == "get_archive" {
            // A failed read-back is reported, the run itself completes.
            let o = r.unwrap();
            assert!(o.workspace.is_none() && o.workspace_error.is_some());
        } else {
            assert!(r.is_err(), "{op}");
        }
    }
    // A tar with a device node is refused before anything is created.
    let l = launcher(Script::default());
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Char);
    h.set_size(0);
    b.append_data(&mut h, "dev", std::io::empty()).unwrap();
    let mut s = spec();
    s.workspace = Some(Bytes::from(b.into_inner().unwrap()));
    assert!(matches!(l.run(s).await, Err(SandboxError::Workspace(_))));
    assert!(l.engine().calls().is_empty());
    // A failed create leaves nothing to remove but is an error.
    let l = launcher(Script {
        fail: Some("create"),
        ..Default::default()
    });
    assert!(l.run(spec()).await.is_err());
    assert_eq!(l.engine().call_names(), ["create"]);
}

#[tokio::test]
async fn a_cancelled_run_removes_its_container() {
    let l = launcher(Script {
        hang: true,
        ..Default::default()
    });
    let fut = l.run(spec());
    let _ = tokio::time::timeout(Duration::from_millis(200), fut).await;
    // The drop guard spawned the removal.
    for _ in 0..50 {
        if l.engine().call_names().last() == Some(&"remove") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("not removed: {:?}", l.engine().call_names());
}

#[tokio::test]
async fn cleanup_removes_every_managed_container_then_volume() {
    let l = launcher(Script {
        leftovers: (vec!["c1".into(), "c2".into()], vec!["v1".into()]),
        ..Default::default()
    });
    let owned = launcher(Script::default()).with_owner("runner-a").unwrap();
    owned.cleanup_leftovers().await.unwrap();
    assert_eq!(
        owned.engine().calls()[0],
        Call::ListContainers("org.paddock.managed=true,org.paddock.owner=runner-a".into())
    );
    let body = owned.container_body(&spec()).unwrap();
    assert_eq!(
        body.labels.unwrap().get(LABEL_OWNER).map(String::as_str),
        Some("runner-a")
    );
    assert!(launcher(Script::default()).with_owner("bad owner").is_err());
    let done = l.cleanup_leftovers().await.unwrap();
    assert_eq!(done.containers, ["c1", "c2"]);
    assert_eq!(done.volumes, ["v1"]);
    assert_eq!(
        l.engine().calls(),
        [
            Call::ListContainers("org.paddock.managed=true".into()),
            Call::Remove("c1".into()),
            Call::Remove("c2".into()),
            Call::ListVolumes("org.paddock.managed=true".into()),
            Call::RemoveVolume("v1".into()),
        ]
    );
}
