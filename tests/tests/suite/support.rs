//! Shared helpers: Docker (a failure under `CI`, a skip otherwise), the launcher with the real
//! profile, a run directory, and a plain unhardened container for the controls.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use paddock::sandbox::{DockerEngine, Launcher, RunOutcome, RunSpec, RunStatus};
use paddock_policy::sandbox::SandboxProfile;

/// The test image: busybox-static, paddock-init and paddock-redteam.
pub const IMAGE: &str = "paddock/test:latest";

/// Docker tests share one daemon and count its containers: one at a time.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub fn owner() -> String {
    format!("redteam-test-{}", std::process::id())
}

/// The local Docker with the test image, or `None` (a skip) when either is missing; with `CI`
/// set a missing one is a failure.
pub async fn docker() -> Option<DockerEngine> {
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
    assert!(!ci, "CI is set and the red-team suite cannot run: {why}");
    eprintln!("skipping: {why}");
    None
}

pub fn launcher(engine: DockerEngine, profile: SandboxProfile) -> Launcher<DockerEngine> {
    Launcher::new(engine, profile)
        .unwrap()
        .with_owner(&owner())
        .unwrap()
}

/// A run directory as the runner makes it: the task, world-readable.
pub struct RunDir(pub tempfile::TempDir);

pub fn run_dir() -> RunDir {
    let dir = tempfile::Builder::new()
        .prefix("paddock-redteam")
        .tempdir()
        .unwrap();
    std::fs::write(dir.path().join("task.md"), "# task\nescape\n").unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    RunDir(dir)
}

pub fn spec(id: &str, dir: &RunDir, cmd: &[&str]) -> RunSpec {
    let mut s = RunSpec::new(
        format!("rt-{id}-{}", std::process::id()),
        IMAGE,
        cmd.iter().map(|s| (*s).to_owned()).collect(),
        dir.0.path().to_path_buf(),
    );
    s.timeout = Duration::from_secs(60);
    s
}

/// Runs `cmd` as the agent in the full sandbox with the default profile.
pub async fn sandboxed(engine: DockerEngine, id: &str, cmd: &[&str]) -> RunOutcome {
    let l = launcher(engine, SandboxProfile::agent_default());
    let dir = run_dir();
    let o = l.run(spec(id, &dir, cmd)).await.unwrap();
    assert!(o.container_removed, "{id}: container left behind");
    o
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn show(o: &RunOutcome) -> String {
    format!(
        "status={:?} stdout={:?} stderr={:?}",
        o.status,
        text(&o.stdout),
        text(&o.stderr)
    )
}

/// The exit code of a run the agent finished itself.
pub fn exited(o: &RunOutcome) -> Option<i64> {
    match o.status {
        RunStatus::Exited(c) => Some(c),
        _ => None,
    }
}

/// How a control container runs: no paddock-init, Docker's defaults plus what is named.
#[derive(Clone, Copy, Debug)]
pub enum Plain {
    /// Docker's defaults as the image's user.
    Default,
    /// Docker's default profile as the image's user, with `--privileged`.
    Privileged,
    /// Docker's default profile (default capabilities and seccomp) as root.
    Root,
    /// Root with Docker's defaults plus one host device and one capability.
    RootWithDevice(&'static str, &'static str),
}

/// Runs `sh -c SCRIPT` in a plain container of the test image on the default bridge, with no
/// Paddock hardening; returns the exit code and the output.
pub fn plain(mode: Plain, script: &str) -> (i32, String) {
    let name = format!(
        "paddock-redteam-control-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let mut cmd = Command::new("docker");
    cmd.args(["run", "--rm", "--name", &name, "--network", "bridge"]);
    cmd.args(match mode {
        Plain::Default => vec![],
        Plain::Privileged => vec!["--privileged".to_owned()],
        Plain::Root => vec!["--user".to_owned(), "0".to_owned()],
        Plain::RootWithDevice(device, cap) => vec![
            "--user".to_owned(),
            "0".to_owned(),
            "--device".to_owned(),
            device.to_owned(),
            "--cap-add".to_owned(),
            cap.to_owned(),
        ],
    });
    cmd.args(["--entrypoint", "/bin/sh", IMAGE, "-c", script]);
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    // A wedged control (say, a stopped PID 1) is removed after a minute.
    let guard_name = name.clone();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let guard = std::thread::spawn(move || {
        if rx.recv_timeout(Duration::from_secs(60)).is_err() {
            let _ = Command::new("docker")
                .args(["rm", "-f", &guard_name])
                .output();
        }
    });
    let out = child.wait_with_output().unwrap();
    let _ = tx.send(());
    guard.join().unwrap();
    let code = out.status.code().unwrap_or(-1);
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_ne!(code, 125, "docker could not run the control: {all}");
    (code, all)
}

/// The address of this host on Docker's default bridge (its gateway).
pub async fn bridge_gateway(engine: &DockerEngine) -> std::net::Ipv4Addr {
    let net = engine
        .client()
        .inspect_network(
            "bridge",
            None::<bollard::query_parameters::InspectNetworkOptions>,
        )
        .await
        .unwrap();
    let cfg = net
        .ipam
        .and_then(|i| i.config)
        .and_then(|c| c.into_iter().next())
        .unwrap();
    if let Some(gw) = cfg.gateway.filter(|g| !g.is_empty()) {
        return gw.parse().unwrap();
    }
    // Docker gives the bridge the subnet's first host address.
    let subnet = cfg.subnet.unwrap();
    let (base, _) = subnet.split_once('/').unwrap();
    let base: std::net::Ipv4Addr = base.parse().unwrap();
    std::net::Ipv4Addr::from(u32::from(base) + 1)
}
