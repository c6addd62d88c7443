//! `paddock sandbox run` and its egress proxy container against real Docker: exit status,
//! timeout, workspace, the sandbox → relay → socket → proxy path, and the proxy's hardening.
//! Needs Docker, `paddock/agent:latest` and `paddock/egress:latest`; with `CI` set, a missing
//! one is a failure, not a skip.

use std::path::PathBuf;
use std::process::{Command, Output};

use bollard::query_parameters::InspectContainerOptions;
use paddock::sandbox::DockerEngine;
use paddock::sandbox::proxy::{
    EGRESS_NETWORK, EGRESS_UID, EgressContainer, EgressSettings, LABEL_CONFIG_HASH, LABEL_ROLE,
};

pub(super) const AGENT: &str = "paddock/agent:latest";
const EGRESS: &str = "paddock/egress:latest";

/// All these tests share the one proxy container.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The tests' own proxy state directory (the default under /run is for real use).
fn egress_dir() -> PathBuf {
    std::env::temp_dir().join("paddock-egress-test")
}

fn settings() -> EgressSettings {
    EgressSettings {
        state_dir: egress_dir(),
        ..Default::default()
    }
}

/// Docker with the agent and proxy images, or `None` (skip) outside CI; under CI a missing
/// one fails the test.
pub(super) async fn docker() -> Option<DockerEngine> {
    let ci = std::env::var_os("CI").is_some();
    let why = match DockerEngine::connect_local() {
        Ok(engine) => match engine.ping().await {
            Ok(()) => {
                let mut missing = None;
                for image in [AGENT, EGRESS] {
                    if let Err(e) = engine.client().inspect_image(image).await {
                        missing = Some(format!(
                            "image {image} missing ({e}); run sandbox-images/build.sh"
                        ));
                    }
                }
                match missing {
                    None => return Some(engine),
                    Some(m) => m,
                }
            }
            Err(e) => format!("docker not reachable: {e}"),
        },
        Err(e) => format!("docker not reachable: {e}"),
    };
    assert!(!ci, "CI is set and the sandbox run tests cannot run: {why}");
    eprintln!("skipping: {why}");
    None
}

fn paddock(args: &[&str]) -> Output {
    let dir = egress_dir();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_paddock"));
    cmd.args(["sandbox", "run", "--egress-dir", dir.to_str().unwrap()]);
    cmd.args(args);
    cmd.output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test]
async fn exits_with_the_commands_status_and_streams_its_output() {
    let _g = SERIAL.lock().await;
    let Some(_) = docker().await else { return };
    let out = paddock(&["--", "sh", "-c", "echo hi; echo oops >&2; exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hi\n");
    assert!(text(&out.stderr).contains("oops"), "{}", text(&out.stderr));
    // The neighbour: success is 0, and the command runs as an agent uid, not root.
    let out = paddock(&["--", "sh", "-c", "id -u"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let uid: u32 = text(&out.stdout).trim().parse().unwrap();
    assert!(uid >= 10_000, "agent uid {uid}");
}

#[tokio::test]
async fn a_timeout_exits_124() {
    let _g = SERIAL.lock().await;
    let Some(_) = docker().await else { return };
    let started = std::time::Instant::now();
    let out = paddock(&["--timeout", "1", "--", "sleep", "30"]);
    assert_eq!(out.status.code(), Some(124), "{}", text(&out.stderr));
    assert!(started.elapsed().as_secs() < 25, "{:?}", started.elapsed());
    // A command the sandbox cannot run at all is 125, not the command's status.
    let out = paddock(&["--image", "paddock/no-such-image:0", "--", "true"]);
    assert_eq!(out.status.code(), Some(125), "{}", text(&out.stderr));
    let out = paddock(&["--image", "bad image", "--", "true"]);
    assert_eq!(out.status.code(), Some(125), "{}", text(&out.stderr));
    // Zero is not a timeout.
    let out = paddock(&["--timeout", "0", "--", "true"]);
    assert_ne!(out.status.code(), Some(0));
}

#[tokio::test]
async fn the_workspace_is_visible_inside() {
    let _g = SERIAL.lock().await;
    let Some(_) = docker().await else { return };
    let ws = tempfile::tempdir().unwrap();
    std::fs::write(ws.path().join("hello.txt"), "from the host\n").unwrap();
    let out = paddock(&[
        "--workspace",
        ws.path().to_str().unwrap(),
        "--",
        "sh",
        "-c",
        "cat /workspace/hello.txt && pwd",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "from the host\n/workspace\n");
    // Without --workspace there is nothing there.
    let out = paddock(&["--", "cat", "/workspace/hello.txt"]);
    assert_ne!(out.status.code(), Some(0));
}

/// The proxy denies a literal private address before any connect (nothing is contacted); its
/// 403 JSON inside the sandbox proves the path sandbox → relay → socket → proxy.
#[tokio::test]
async fn the_proxy_answers_through_the_relay() {
    let _g = SERIAL.lock().await;
    let Some(_) = docker().await else { return };
    let script = r#"
import os, urllib.request, urllib.error
print("proxy", os.environ.get("HTTP_PROXY"))
try:
    urllib.request.urlopen("http://10.255.255.1/probe", timeout=20)
    print("reached")
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
"#;
    let out = paddock(&["--", "python3", "-c", script]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("proxy http://127.0.0.1:"), "{stdout}");
    assert!(stdout.contains("403 "), "{stdout}");
    assert!(stdout.contains("\"rule\":\"denied_address\""), "{stdout}");
    assert!(!stdout.contains("reached"), "{stdout}");
}

#[tokio::test]
async fn the_proxy_container_is_hardened_and_follows_its_config() {
    let _g = SERIAL.lock().await;
    let Some(engine) = docker().await else { return };
    let s = settings();
    let first = EgressContainer::ensure(&engine, &s).await.unwrap();
    // Idempotent: the same config keeps the same container.
    let again = EgressContainer::ensure(&engine, &s).await.unwrap();
    assert_eq!(first.container_id, again.container_id);
    assert_eq!(first.runs_dir, egress_dir().join("sock"));
    assert_eq!(first.control, egress_dir().join("ctl").join("control.sock"));

    let i = engine
        .client()
        .inspect_container(
            &settings().container_name(),
            None::<InspectContainerOptions>,
        )
        .await
        .unwrap();
    let h = i.host_config.clone().unwrap();
    let cfg = i.config.clone().unwrap();
    assert_eq!(cfg.user.as_deref(), Some("65532:65532"));
    assert_eq!(EGRESS_UID, 65532);
    assert_eq!(h.privileged, Some(false));
    assert_eq!(h.cap_drop.clone().unwrap_or_default(), ["ALL"]);
    assert!(h.cap_add.clone().unwrap_or_default().is_empty());
    assert_eq!(h.readonly_rootfs, Some(true));
    let sec = h.security_opt.clone().unwrap_or_default();
    assert!(sec.iter().any(|o| o == "no-new-privileges:true"), "{sec:?}");
    assert!(
        !sec.iter().any(|o| o.contains("unconfined")),
        "weakening security option in {sec:?}"
    );
    assert_eq!(h.network_mode.as_deref(), Some(EGRESS_NETWORK));
    assert!(h.memory.unwrap_or(0) > 0, "memory limit");
    assert_eq!(h.memory, h.memory_swap, "no swap");
    assert!(h.pids_limit.unwrap_or(0) > 0, "pids limit");
    assert_eq!(
        h.restart_policy
            .as_ref()
            .and_then(|r| r.name)
            .map(|n| n.to_string()),
        Some("unless-stopped".to_owned())
    );
    assert!(h.binds.clone().unwrap_or_default().is_empty());
    assert!(h.devices.clone().unwrap_or_default().is_empty());
    assert!(h.port_bindings.clone().unwrap_or_default().is_empty());
    let labels = cfg.labels.clone().unwrap();
    assert_eq!(
        labels.get("org.paddock.managed").map(String::as_str),
        Some("true")
    );
    assert_eq!(labels.get(LABEL_ROLE).map(String::as_str), Some("egress"));
    // Exactly three mounts: the runs directory and the control directory (rw), the config
    // directory (ro).
    let mounts = i.mounts.clone().unwrap_or_default();
    assert_eq!(mounts.len(), 3, "{mounts:?}");
    for m in &mounts {
        let src = PathBuf::from(m.source.clone().unwrap_or_default());
        if src == egress_dir().join("sock") || src == egress_dir().join("ctl") {
            assert_eq!(m.rw, Some(true), "{m:?}");
        } else {
            assert_eq!(src, egress_dir().join("config"));
            assert_eq!(m.rw, Some(false), "config must be read-only: {m:?}");
        }
    }
    // Its only network is the egress bridge.
    let nets = i
        .network_settings
        .clone()
        .and_then(|n| n.networks)
        .unwrap_or_default();
    assert_eq!(nets.keys().collect::<Vec<_>>(), [EGRESS_NETWORK]);
    let net = engine
        .client()
        .inspect_network(
            EGRESS_NETWORK,
            None::<bollard::query_parameters::InspectNetworkOptions>,
        )
        .await
        .unwrap();
    assert_eq!(net.driver.as_deref(), Some("bridge"));

    // A changed config recreates the container; the old hash does not survive.
    let old_hash = labels.get(LABEL_CONFIG_HASH).cloned().unwrap();
    let mut changed = s.clone();
    changed.nameservers = vec!["127.0.0.11:5353".parse().unwrap()];
    let other = EgressContainer::ensure(&engine, &changed).await.unwrap();
    assert_ne!(other.container_id, first.container_id);
    let i2 = engine
        .client()
        .inspect_container(
            &settings().container_name(),
            None::<InspectContainerOptions>,
        )
        .await
        .unwrap();
    let new_hash = i2.config.unwrap().labels.unwrap()[LABEL_CONFIG_HASH].clone();
    assert_ne!(new_hash, old_hash);
    let back = EgressContainer::ensure(&engine, &s).await.unwrap();
    assert_ne!(back.container_id, other.container_id);

    // A registered run's socket is open to agent uids; the control socket is the proxy's only;
    // revoking removes the run's directory.
    use std::os::unix::fs::PermissionsExt;
    let reg = back
        .register(paddock_policy::control::RegisterRun {
            run: "hardening-check".into(),
            policy: paddock_policy::PolicyConfig::default(),
            credentials: Vec::new(),
            budget: paddock_policy::BudgetConfig::default(),
            ttl_secs: 60,
        })
        .await
        .unwrap();
    let sock = std::fs::symlink_metadata(reg.run_dir.join("proxy.sock")).unwrap();
    assert_eq!(sock.permissions().mode() & 0o777, 0o666);
    let ctl = std::fs::symlink_metadata(&back.control).unwrap();
    assert_eq!(ctl.permissions().mode() & 0o777, 0o600);
    assert!(
        back.list()
            .await
            .unwrap()
            .contains(&"hardening-check".to_owned())
    );
    back.revoke("hardening-check").await.unwrap();
    assert!(!reg.run_dir.exists());
}

async fn containers_named(engine: &DockerEngine, part: &str) -> Vec<String> {
    let opts = bollard::query_parameters::ListContainersOptions {
        all: true,
        filters: Some(std::collections::HashMap::from([(
            "name".to_owned(),
            vec![part.to_owned()],
        )])),
        ..Default::default()
    };
    engine
        .client()
        .list_containers(Some(opts))
        .await
        .unwrap()
        .into_iter()
        .filter_map(|c| c.id)
        .collect()
}

#[tokio::test]
async fn an_interrupt_removes_the_sandbox() {
    let _g = SERIAL.lock().await;
    let Some(engine) = docker().await else { return };
    let dir = egress_dir();
    let mut child = Command::new(env!("CARGO_BIN_EXE_paddock"))
        .args(["sandbox", "run", "--egress-dir", dir.to_str().unwrap()])
        .args(["--", "sleep", "60"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let part = format!("paddock-run-sandbox-{}-", child.id());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while containers_named(&engine, &part).await.is_empty() {
        assert!(std::time::Instant::now() < deadline, "no sandbox appeared");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(
        containers_named(&engine, &part).await.is_empty(),
        "the interrupted sandbox was left behind"
    );
}
