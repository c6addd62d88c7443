//! The launcher against real Docker: hardening as `docker inspect` reports it, runs, timeouts,
//! caps, the workspace round trip, cleanup. Needs Docker and `paddock/test:latest`
//! (`sandbox-images/build.sh test`); with `CI` set, a missing one is a failure, not a skip.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use bollard::models::ContainerInspectResponse;
use bytes::Bytes;
use paddock::sandbox::{
    DockerEngine, Engine, LABEL_MANAGED, LABEL_OWNER, LABEL_RUN, Launcher, RunSpec, RunStatus,
    container_body, workspace,
};
use paddock_policy::sandbox::SandboxProfile;

const IMAGE: &str = "paddock/test:latest";

/// Docker tests share one daemon and count its containers: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn owner() -> String {
    format!("launcher-test-{}", std::process::id())
}

async fn docker() -> Option<DockerEngine> {
    let ci = std::env::var_os("CI").is_some();
    let why = match DockerEngine::connect_local() {
        Ok(engine) => match engine.ping().await {
            Ok(()) => match engine.client().inspect_image(IMAGE).await {
                Ok(_) => return Some(engine),
                Err(e) => format!("image {IMAGE} missing ({e}); run sandbox-images/build.sh test"),
            },
            Err(e) => format!("docker not reachable: {e}"),
        },
        Err(e) => format!("docker not reachable: {e}"),
    };
    assert!(!ci, "CI is set and the sandbox tests cannot run: {why}");
    eprintln!("skipping: {why}");
    None
}

fn launcher(engine: DockerEngine, profile: SandboxProfile) -> Launcher<DockerEngine> {
    Launcher::new(engine, profile)
        .unwrap()
        .with_owner(&owner())
        .unwrap()
}

struct RunDir(tempfile::TempDir);

fn run_dir() -> RunDir {
    let dir = tempfile::Builder::new()
        .prefix("paddock-run")
        .tempdir()
        .unwrap();
    std::fs::write(dir.path().join("task.md"), "# task\nsay hello\n").unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    RunDir(dir)
}

fn spec(id: &str, dir: &RunDir, cmd: &[&str]) -> RunSpec {
    let mut s = RunSpec::new(
        format!("{id}-{}", std::process::id()),
        IMAGE,
        cmd.iter().map(|s| (*s).to_owned()).collect(),
        dir.0.path().to_path_buf(),
    );
    s.timeout = Duration::from_secs(60);
    s
}

async fn managed_left(l: &Launcher<DockerEngine>) -> (Vec<String>, Vec<String>) {
    let f = l.managed_filters();
    (
        l.engine().list_containers(&f).await.unwrap(),
        l.engine().list_volumes(&f).await.unwrap(),
    )
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// docker-bench-security's container-runtime checks (section 5), each against the profile.
fn check_hardening(
    i: &ContainerInspectResponse,
    profile: &SandboxProfile,
    uid: u32,
    run_dir: &str,
) {
    let c = &profile.container;
    let h = i.host_config.clone().unwrap();
    let cfg = i.config.clone().unwrap();
    // 5.4 privileged
    assert_eq!(h.privileged, Some(false), "privileged");
    // 5.3 capabilities
    assert!(
        h.cap_add.clone().unwrap_or_default().is_empty(),
        "CapAdd {:?}",
        h.cap_add
    );
    assert_eq!(h.cap_drop.clone().unwrap_or_default(), ["ALL"], "CapDrop");
    // 5.12 read-only root filesystem
    assert_eq!(h.readonly_rootfs, Some(true), "ReadonlyRootfs");
    // 5.25 no-new-privileges; 5.21 seccomp not unconfined; 5.1 AppArmor not unconfined
    let sec = h.security_opt.clone().unwrap_or_default();
    assert!(sec.iter().any(|o| o == "no-new-privileges:true"), "{sec:?}");
    for o in &sec {
        let o = o.replace(':', "=");
        assert!(
            !(o.starts_with("seccomp=") || o.ends_with("=unconfined") || o == "label=disable"),
            "weakening security option {o}"
        );
    }
    if let Some(aa) = &i.app_armor_profile {
        assert_ne!(aa, "unconfined", "AppArmor");
    }
    // 5.28 pids; 5.10 memory (and no swap); 5.11 cpu
    assert_eq!(
        h.pids_limit,
        Some(i64::try_from(c.pids_limit).unwrap()),
        "PidsLimit"
    );
    assert_eq!(
        h.memory,
        Some(i64::try_from(c.memory_bytes).unwrap()),
        "Memory"
    );
    assert_eq!(
        h.memory_swap,
        Some(i64::try_from(c.memory_swap_bytes).unwrap()),
        "MemorySwap"
    );
    assert_eq!(h.memory, h.memory_swap, "swap included in the memory limit");
    assert_eq!(
        h.nano_cpus,
        Some(i64::try_from(c.nano_cpus).unwrap()),
        "NanoCpus"
    );
    assert_ne!(h.oom_kill_disable, Some(true), "OomKillDisable");
    // 5.9/5.29 network: none, no ports, not the host's
    assert_eq!(h.network_mode.as_deref(), Some("none"), "NetworkMode");
    let nets: Vec<String> = i
        .network_settings
        .clone()
        .and_then(|n| n.networks)
        .map(|n| n.into_keys().collect())
        .unwrap_or_default();
    assert!(
        nets.iter().all(|n| n == "none"),
        "attached networks {nets:?}"
    );
    let ns = i.network_settings.clone().unwrap_or_default();
    assert!(
        ns.ip_address.unwrap_or_default().is_empty(),
        "no IP address"
    );
    assert!(ns.ports.unwrap_or_default().is_empty(), "no ports");
    assert!(
        h.port_bindings.clone().unwrap_or_default().is_empty(),
        "PortBindings"
    );
    assert_ne!(h.publish_all_ports, Some(true));
    assert!(h.extra_hosts.clone().unwrap_or_default().is_empty());
    assert!(h.dns.clone().unwrap_or_default().is_empty());
    // 5.16/5.15/5.20/5.31/5.30 namespaces: private IPC, none of the host's
    assert_eq!(h.ipc_mode.as_deref(), Some("private"), "IpcMode");
    for (name, mode) in [
        ("PidMode", h.pid_mode.clone()),
        ("UTSMode", h.uts_mode.clone()),
        ("UsernsMode", h.userns_mode.clone()),
    ] {
        assert_ne!(mode.as_deref(), Some("host"), "{name}");
    }
    assert_ne!(
        h.cgroupns_mode.map(|m| m.to_string()).as_deref(),
        Some("host"),
        "CgroupnsMode"
    );
    assert!(
        h.cgroup_parent.clone().unwrap_or_default().is_empty(),
        "CgroupParent"
    );
    // 5.17 devices
    assert!(h.devices.clone().unwrap_or_default().is_empty(), "Devices");
    assert!(
        h.device_cgroup_rules.clone().unwrap_or_default().is_empty(),
        "DeviceCgroupRules"
    );
    assert!(
        h.device_requests.clone().unwrap_or_default().is_empty(),
        "DeviceRequests"
    );
    // 5.5/5.6/5.31 mounts: exactly /workspace (tmpfs volume) and /paddock (read-only), never
    // the Docker socket or a host root.
    assert!(h.binds.clone().unwrap_or_default().is_empty(), "Binds");
    assert!(
        h.volumes_from.clone().unwrap_or_default().is_empty(),
        "VolumesFrom"
    );
    let mounts = i.mounts.clone().unwrap_or_default();
    let mut seen: Vec<(String, String, bool)> = mounts
        .iter()
        .map(|m| {
            (
                m.destination.clone().unwrap_or_default(),
                m.typ.map(|t| t.to_string()).unwrap_or_default(),
                m.rw.unwrap_or(true),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("/paddock".to_owned(), "bind".to_owned(), false),
            ("/workspace".to_owned(), "volume".to_owned(), true),
        ],
        "mounts"
    );
    for m in &mounts {
        let src = m.source.clone().unwrap_or_default();
        assert!(
            !src.contains("docker.sock") && !src.contains("containerd"),
            "{src}"
        );
        for f in &c.forbidden_mount_sources {
            assert_ne!(&src, f, "forbidden source mounted");
        }
        if m.destination.as_deref() == Some("/paddock") {
            assert_eq!(src, run_dir);
        }
        if m.destination.as_deref() == Some("/workspace") {
            assert_eq!(m.driver.as_deref(), Some("local"));
        }
    }
    let tmpfs = h.tmpfs.clone().unwrap_or_default();
    let mut keys: Vec<&String> = tmpfs.keys().collect();
    keys.sort();
    assert_eq!(keys, ["/home/agent", "/tmp"], "tmpfs mounts");
    for t in &c.tmpfs {
        let o = &tmpfs[&t.path];
        assert!(o.contains(&format!("size={}", t.size_bytes)), "{o}");
        assert!(o.contains("nosuid") && o.contains("nodev"), "{o}");
    }
    // 2.12/5.x logging
    let log = h.log_config.clone().unwrap();
    assert_eq!(log.typ.as_deref(), Some("json-file"));
    let lc = log.config.unwrap_or_default();
    assert_eq!(lc.get("max-size"), Some(&c.log_max_bytes.to_string()));
    assert_eq!(lc.get("max-file"), Some(&c.log_max_files.to_string()));
    // 4.1 non-root user, distinct per slot
    assert_eq!(cfg.user, Some(format!("{uid}:{uid}")), "User");
    assert!(uid >= paddock_policy::sandbox::MIN_AGENT_UID);
    // 5.14 restart policy
    let rp = h.restart_policy.clone().unwrap();
    assert_eq!(
        rp.name.map(|n| n.to_string()).as_deref(),
        Some("no"),
        "RestartPolicy"
    );
    assert_eq!(rp.maximum_retry_count.unwrap_or(0), 0);
    assert!(h.sysctls.clone().unwrap_or_default().is_empty(), "Sysctls");
    assert_eq!(cfg.network_disabled, Some(true));
    assert_eq!(
        cfg.entrypoint,
        Some(vec![
            c.init_path.clone(),
            paddock::sandbox::INIT_GATE_FLAG.to_owned(),
            "--".to_owned()
        ]),
        "paddock-init is PID 1 and holds the gate"
    );
    let labels = cfg.labels.unwrap_or_default();
    assert_eq!(labels.get(LABEL_MANAGED).map(String::as_str), Some("true"));
    assert!(labels.contains_key(LABEL_RUN) && labels.contains_key(LABEL_OWNER));
}

#[tokio::test]
async fn docker_inspect_of_a_launched_sandbox_matches_the_profile() {
    let _g = SERIAL.lock().await;
    let Some(engine) = docker().await else { return };
    let profile = SandboxProfile::agent_default();
    let l = launcher(engine.clone(), profile.clone());
    let dir = run_dir();
    let mut s = spec("inspect", &dir, &["true"]);
    s.slot = 7;
    let body = container_body(&s, &profile, Some(&owner())).unwrap();
    let id = engine
        .create_container(&s.container_name(), body)
        .await
        .unwrap();
    // Started, paddock-init's gate holds the agent until it reads a nonce: inspect it running.
    let started = engine.start(&id).await;
    let inspected = engine.inspect(&id).await;
    engine.remove_container(&id).await.unwrap();
    started.unwrap();
    let i = inspected.unwrap();
    assert_eq!(i.state.clone().and_then(|s| s.running), Some(true));
    let uid = profile.container.uids.uid_for_slot(7).unwrap();
    check_hardening(&i, &profile, uid, dir.0.path().to_str().unwrap());
    assert_eq!(managed_left(&l).await, (vec![], vec![]));
}

#[tokio::test]
async fn inside_the_sandbox_no_capability_no_new_privs_seccomp_and_no_network() {
    let _g = SERIAL.lock().await;
    let Some(engine) = docker().await else { return };
    let l = launcher(engine, SandboxProfile::agent_default());
    let dir = run_dir();
    let s = spec(
        "inside",
        &dir,
        &[
            "sh",
            "-c",
            "grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):' /proc/self/status; \
             id -u; ls /sys/class/net; cat /paddock/task.md; \
             stat -f -c 'ws=%T' /workspace; touch /usr/x 2>/dev/null || echo rootfs-ro; \
             touch /paddock/x 2>/dev/null || echo paddock-ro; \
             ls /dev | tr '\\n' ' '",
        ],
    );
    let o = l.run(s).await.unwrap();
    let out = text(&o.stdout);
    assert_eq!(o.status, RunStatus::Exited(0), "{out}\n{}", text(&o.stderr));
    for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert!(
            out.contains(&format!("{cap}:\t0000000000000000")),
            "{cap}: {out}"
        );
    }
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
    assert!(out.contains("\n10001\n"), "uid of slot 0: {out}");
    let nets: Vec<&str> = out
        .lines()
        .filter(|l| *l == "lo" || l.starts_with("eth"))
        .collect();
    assert_eq!(nets, ["lo"], "loopback only: {out}");
    assert!(out.contains("say hello"), "task mounted: {out}");
    assert!(out.contains("ws=tmpfs"), "workspace is a tmpfs: {out}");
    assert!(out.contains("rootfs-ro"), "{out}");
    assert!(out.contains("paddock-ro"), "{out}");
    assert!(
        !out.contains("sda") && !out.contains("vda") && !out.contains("kmsg"),
        "{out}"
    );
}

#[tokio::test]
async fn hello_run_reports_the_exit_status_and_output() {
    let _g = SERIAL.lock().await;
    let Some(engine) = docker().await else { return };
    let l = launcher(engine, SandboxProfile::agent_default());
    let dir = run_dir();
    let o = l
        .run(spec(
            "hello",
            &dir,
            &["sh", "-c", "echo hello; echo oops >&2; exit 7"],
        ))
        .await
        .unwrap();
    assert_eq!(o.status, RunStatus::Exited(7));
    assert!(o.agent_reported);
    assert_eq!(text(&o.stdout), "hello\n");
    assert!(text(&o.stderr).contains("oops"));
    assert!(o.container_removed);
    let o = l.run(spec("hello0", &dir, &["true"])).await.unwrap();
    assert_eq!(o.status, RunStatus::Exited(0));
    assert_eq!(managed_left(&l).await, (vec![], vec![]));
}

#[tokio::test]
async fn the_generic_agent_image_runs_under_the_gate_with_its_own_shell() {
    let _g = SERIAL.lock().await;
    let Some(engine) = docker().await else { return };
    const AGENT: &str = "paddock/agent:latest";
    if engine.client().inspect_image(AGENT).await.is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set and {AGENT} is missing"
        );
        eprintln!("skipping: {AGENT} missing; run sandbox-images/build.sh");
        return;
    }
    let l = launcher(engine, SandboxProfile::agent_default());
    let dir = run_dir();
    let mut s = spec(
        "agent-image",
        &dir,
        &[
            "bash",
            "-c",
            "python3 -c 'print(6*7)'; echo \"home=$HOME\"; touch ~/ok && echo home-writable; exit 3",
        ],
    );
    s.image = AGENT.to_owned();
    s.slot = 2;
    let o = l.run(s).await.unwrap();
    let out = text(&o.stdout);
    assert_eq!(o.status, RunStatus::Exited(3), "{out}\n{}", text(&o.stderr));
    assert!(o.agent_reported);
    assert!(
        out.contains("42\n") && out.contains("home=/home/agent") && out.contains("home-writable"),
        "{out}"
    );
}

/// Each agent-tool image runs its CLI inside the real sandbox. The images are built on demand
/// (`sandbox-images/build.sh tools`), so a missing one is a skip, even under CI.
#[tokio::test]
async fn agent_tool_images_run_their_cli_in_the_sandbox() {
    let _g = SERIAL.lock().await;
    let Some(engine) = docker().await else { return };
    let l = launcher(engine.clone(), SandboxProfile::agent_default());
    for (image, cmd, expect) in [
        (
            "paddock/claude-code:latest",
            &["claude", "--version"][..],
            "Claude Code",
        ),
        ("paddock/codex:latest", &["codex", "--version"][..], "codex"),
        ("paddock/aider:latest", &["aider", "--version"][..], "aider"),
        (
            "paddock/mini-swe-agent:latest",
            &["mini", "--help"][..],
            "mini",
        ),
    ] {
        if engine.client().inspect_image(image).await.is_err() {
            // scripts/test builds every image: under CI a missing one is a failure.
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set and {image} is not built (sandbox-images/build.sh tools)"
            );
            eprintln!("skipping {image}: not built (sandbox-images/build.sh tools)");
            continue;
        }
        let dir = run_dir();
        let mut s = spec("tool", &dir, cmd);
        s.image = image.to_owned();
        s.ca_file = true;
        let o = l.run(s).await.unwrap();
        let out = format!("{}{}", text(&o.stdout), text(&o.stderr));
        assert_eq!(o.status, RunStatus::Exited(0), "{image}: {out}");
        assert!(
            out.to_lowercase().contains(&expect.to_lowercase()),
            "{image}: {out}"
        );
    }
}

/// With a run CA, every TLS client's variable points at the run's bundle (Node's at the run's CA
/// alone); without, none is set and the image's own bundle stays in force.
#[tokio::test]
async fn the_run_ca_variables_reach_the_agent() {
    let _g = SERIAL.lock().await;
    let Some(engine) = docker().await else { return };
    let l = launcher(engine, SandboxProfile::agent_default());
    let dir = run_dir();
    let script = "echo ssl=$SSL_CERT_FILE node=$NODE_EXTRA_CA_CERTS pip=$PIP_CERT git=$GIT_SSL_CAINFO                   npm=$npm_config_https_proxy";
    let mut s = spec("ca-on", &dir, &["sh", "-c", script]);
    s.ca_file = true;
    let out = text(&l.run(s).await.unwrap().stdout);
    assert!(
        out.contains(
            "ssl=/paddock/ca-bundle.pem node=/paddock/ca.pem pip=/paddock/ca-bundle.pem git=/paddock/ca-bundle.pem"
        ),
        "{out}"
    );
    assert!(out.contains("npm=http://127.0.0.1:3128"), "{out}");
    let out = text(
        &l.run(spec("ca-off", &dir, &["sh", "-c", script]))
            .await
            .unwrap()
            .stdout,
    );
    assert!(out.contains("ssl= node= pip= git= "), "{out}");
}

#[tokio::test]
async fn a_timeout_kills_the_sandbox_and_removes_it() {
    let _g = SERIAL.lock().await;
    let Some(engine) = docker().await else { return };
    let l = launcher(engine, SandboxProfile::agent_default());
    let dir = run_dir();
    let mut s = spec("timeout", &dir, &["sh", "-c", "echo started; sleep 60"]);
    s.timeout = Duration::from_secs(3);
    let t = std::time::Instant::now();
    let o = l.run(s).await.unwrap();
    let took = t.elapsed();
    assert_eq!(o.status, RunStatus::TimedOut);
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(20),
        "{took:?}"
    );
    assert!(text(&o.stdout).contains("started"));
    assert!(o.container_removed);
    assert_eq!(managed_left(&l).await, (vec![], vec![]));
    // The neighbour: the same command within its time exits normally.
    let mut s = spec("in-time", &dir, &["sh", "-c", "echo started; sleep 1"]);
    s.timeout = Duration::from_secs(30);
    assert_eq!(l.run(s).await.unwrap().status, RunStatus::Exited(0));
}

#[tokio::test]
async fn an_output_flood_is_capped_and_secrets_are_scrubbed() {
    let _g = SERIAL.lock().await;
    let Some(engine) = docker().await else { return };
    let l = launcher(engine, SandboxProfile::agent_default());
    let dir = run_dir();
    let key = "ghp_0123456789abcdefABCDEF0123456789abcd";
    let mut s = spec(
        "flood",
        &dir,
        &[
            "sh",
            "-c",
            &format!("echo {key}; yes flood | head -c 20000000; echo; echo done"),
        ],
    );
    s.output_cap_bytes = 4096;
    let o = l.run(s).await.unwrap();
    assert_eq!(o.status, RunStatus::Exited(0));
    assert!(o.output_truncated);
    assert!(
        o.output_total_bytes >= 20_000_000,
        "{}",
        o.output_total_bytes
    );
    assert!(o.stdout.len() + o.stderr.len() <= 4096 + 64);
    let out = text(&o.stdout);
    assert!(
        !out.contains(key) && out.contains("[REDACTED:github]"),
        "{}",
        &out[..80.min(out.len())]
    );
}

#[tokio::test]
async fn workspace_goes_in_and_comes_back_and_its_cap_holds_inside() {
    let _g = SERIAL.lock().await;
    let Some(engine) = docker().await else { return };
    let mut profile = SandboxProfile::agent_default();
    profile.container.workspace_size_bytes = 8 * 1024 * 1024;
    let l = launcher(engine, profile);
    let dir = run_dir();
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir(src.path().join("src")).unwrap();
    std::fs::write(src.path().join("src/main.rs"), "fn main() {}\n").unwrap();
    let mut s = spec(
        "ws",
        &dir,
        &[
            "sh",
            "-c",
            "cat src/main.rs; stat -c 'owner=%u' src/main.rs; echo agent-wrote > out.txt; \
             dd if=/dev/zero of=small bs=1M count=4 2>/dev/null && echo small-ok; \
             dd if=/dev/zero of=big bs=1M count=32 2>&1 | grep -o 'No space left on device'; \
             rm -f big; exit 0",
        ],
    );
    s.workspace = Some(workspace::pack_dir(src.path()).unwrap());
    s.return_workspace = true;
    let o = l.run(s).await.unwrap();
    let out = text(&o.stdout);
    assert_eq!(o.status, RunStatus::Exited(0), "{out}\n{}", text(&o.stderr));
    assert!(out.contains("fn main() {}"), "files went in: {out}");
    assert!(out.contains("owner=10001"), "owned by the run's uid: {out}");
    assert!(
        out.contains("small-ok"),
        "under the cap a write succeeds: {out}"
    );
    assert!(
        out.contains("No space left on device"),
        "over the cap it fails inside: {out}"
    );
    let tar = o.workspace.clone().expect("workspace returned");
    let back = tempfile::tempdir().unwrap();
    workspace::unpack(&tar, back.path()).unwrap();
    let ws = back.path().join("workspace");
    assert_eq!(
        std::fs::read_to_string(ws.join("out.txt")).unwrap(),
        "agent-wrote\n"
    );
    assert_eq!(
        std::fs::read_to_string(ws.join("src/main.rs")).unwrap(),
        "fn main() {}\n"
    );
    assert_eq!(
        std::fs::metadata(ws.join("small")).unwrap().len(),
        4 * 1024 * 1024
    );
    assert!(!ws.join("big").exists());
    assert_eq!(
        managed_left(&l).await,
        (vec![], vec![]),
        "workspace volume removed"
    );
}

#[tokio::test]
async fn leftovers_of_a_crashed_runner_are_removed_by_label() {
    let _g = SERIAL.lock().await;
    let Some(engine) = docker().await else { return };
    let profile = SandboxProfile::agent_default();
    let l = launcher(engine.clone(), profile.clone());
    let dir = run_dir();
    // A "crashed" runner left one running and one created container (with their volumes).
    let mut ids = Vec::new();
    for (n, start) in [("crash-a", true), ("crash-b", false)] {
        let s = spec(n, &dir, &["sleep", "60"]);
        let body = container_body(&s, &profile, Some(&owner())).unwrap();
        let id = engine
            .create_container(&s.container_name(), body)
            .await
            .unwrap();
        if start {
            engine.start(&id).await.unwrap();
        }
        ids.push(id);
    }
    // Someone else's managed container (another owner) is not touched.
    let other = Launcher::new(engine.clone(), profile.clone())
        .unwrap()
        .with_owner(&format!("{}-other", owner()))
        .unwrap();
    let s = spec("other", &dir, &["sleep", "60"]);
    let body = other.container_body(&s).unwrap();
    let other_id = engine
        .create_container(&s.container_name(), body)
        .await
        .unwrap();

    let (before, _) = managed_left(&l).await;
    assert_eq!(before.len(), 2);
    let done = l.cleanup_leftovers().await.unwrap();
    let mut removed = done.containers.clone();
    removed.sort();
    ids.sort();
    assert_eq!(removed, ids);
    assert_eq!(managed_left(&l).await, (vec![], vec![]));
    assert!(
        engine.inspect(&other_id).await.is_ok(),
        "other owner's container kept"
    );
    other.cleanup_leftovers().await.unwrap();
    assert!(engine.inspect(&other_id).await.is_err());
}

#[tokio::test]
async fn no_container_or_volume_leaks_after_many_runs() {
    let _g = SERIAL.lock().await;
    let Some(engine) = docker().await else { return };
    let l = launcher(engine, SandboxProfile::agent_default());
    let dir = run_dir();
    for n in 0..10 {
        let mut s = spec(&format!("many{n}"), &dir, &["sh", "-c", "echo $0", "x"]);
        s.slot = n % 3;
        s.return_workspace = n % 2 == 0;
        s.workspace = Some(Bytes::new()).filter(|_| n % 3 == 0);
        let o = l.run(s).await.unwrap();
        assert_eq!(o.status, RunStatus::Exited(0));
    }
    // A cancelled run is removed by its drop guard.
    let mut s = spec("cancelled", &dir, &["sleep", "60"]);
    s.timeout = Duration::from_secs(60);
    let _ = tokio::time::timeout(Duration::from_secs(2), l.run(s)).await;
    for _ in 0..100 {
        if managed_left(&l).await == (vec![], vec![]) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(managed_left(&l).await, (vec![], vec![]));
}

#[tokio::test]
async fn the_relay_reaches_the_runs_own_proxy_socket_through_the_read_only_mount() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _g = SERIAL.lock().await;
    let Some(engine) = docker().await else { return };
    let l = launcher(engine, SandboxProfile::agent_default());
    let dir = run_dir();
    let sock = dir.0.path().join("proxy.sock");
    // Without the socket the relay has nowhere to go: the attempt fails (the neighbour case).
    let o = l
        .run(spec(
            "relay-none",
            &dir,
            &["paddock-redteam", "relay", "127.0.0.1:3128"],
        ))
        .await
        .unwrap();
    assert_eq!(o.status, RunStatus::Exited(1), "{}", text(&o.stdout));
    let listener = tokio::net::UnixListener::bind(&sock).unwrap();
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    let server = tokio::spawn(async move {
        let (mut c, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 256];
        let n = c.read(&mut buf).await.unwrap();
        c.write_all(b"proxy:").await.unwrap();
        c.write_all(&buf[..n]).await.unwrap();
    });
    let o = l
        .run(spec(
            "relay",
            &dir,
            &["paddock-redteam", "relay", "127.0.0.1:3128"],
        ))
        .await
        .unwrap();
    let out = text(&o.stdout);
    assert_eq!(o.status, RunStatus::Exited(0), "{out}\n{}", text(&o.stderr));
    assert!(out.contains("reply=\"proxy:"), "{out}");
    server.await.unwrap();
}
