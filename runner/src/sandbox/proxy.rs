//! The egress proxy container: one hardened `paddock-egress` kept running on its own bridge
//! network, and the client of its control socket (register a run, read its totals, revoke it).
//!
//! Layout under the state directory (default `/run/paddock/egress`):
//! * `config/` — `egress.toml`, mounted read-only into the proxy;
//! * `sock/` — the runs directory (rw, the proxy's uid): each registered run gets
//!   `sock/<run>/proxy.sock` and `sock/<run>/ca.pem`, and the runner adds the run's trust bundle
//!   `sock/<run>/ca-bundle.pem` (`sandbox::trust`); that one directory is mounted into the
//!   run's sandbox at `/paddock`, so a sandbox reaches only its own socket;
//! * `ctl/` — the control socket (mode 0600, the proxy's uid; rw mount). It is never mounted
//!   into a sandbox: only the runner (root) reaches it.
//!
//! Optionally a CA bundle file (`EgressSettings::extra_ca_bundle`) is mounted read-only and
//! trusted by the proxy for upstream TLS beside the public roots (internal mirrors, tests).

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use paddock_policy::control::{
    ControlOp, ControlRequest, ControlResponse, IssuedHandle, MAX_CONTROL_LINE, RUN_CA_NAME,
    RUN_SOCKET_NAME, RegisterRun, RunTotals, valid_run_id,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, HostConfig, HostConfigLogConfig, Mount, MountBindOptions,
    MountBindOptionsPropagationEnum, MountTypeEnum, NetworkCreateRequest, RestartPolicy,
    RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, InspectNetworkOptions,
    RemoveContainerOptionsBuilder, StartContainerOptions,
};
use sha2::{Digest, Sha256};
use tracing::info;

use super::docker::DockerEngine;
use super::spec::LABEL_MANAGED;
use super::trust;

/// Name of the proxy container of the default state directory (others get a suffix: see
/// [`EgressSettings::container_name`]).
pub const EGRESS_CONTAINER: &str = "paddock-egress";
/// The default state directory.
pub const DEFAULT_STATE_DIR: &str = "/run/paddock/egress";
/// Name of the bridge network that is the proxy's only route out.
pub const EGRESS_NETWORK: &str = "paddock-egress";
/// Label naming the role of a Paddock-managed service container.
pub const LABEL_ROLE: &str = "org.paddock.role";
/// Label holding the hash of the proxy's configuration; a mismatch recreates the container.
pub const LABEL_CONFIG_HASH: &str = "org.paddock.config-hash";
/// The proxy image's user (see `sandbox-images/images/proxy/Dockerfile`); used when the runner
/// runs as root.
pub const EGRESS_UID: u32 = 65532;

/// The uid and gid the proxy container runs as: [`EGRESS_UID`] under a root runner; under a
/// non-root runner (the systemd unit's `paddock` user) the runner's own ids, so that the runner
/// can reach the control socket (0600) and write each run's `task.md` into the run directory the
/// proxy created. Never root either way.
#[must_use]
pub fn proxy_ids() -> (u32, u32) {
    let uid = nix::unistd::geteuid();
    if uid.is_root() {
        (EGRESS_UID, EGRESS_UID)
    } else {
        (uid.as_raw(), nix::unistd::getegid().as_raw())
    }
}
/// Default Docker's embedded DNS on a user-defined network: forwards to the host's resolvers.
pub const DEFAULT_NAMESERVER: &str = "127.0.0.11:53";

const CONFIG_DIR_IN_CONTAINER: &str = "/etc/paddock";
const CONFIG_IN_CONTAINER: &str = "/etc/paddock/egress.toml";
const SOCK_IN_CONTAINER: &str = "/sock";
const CTL_IN_CONTAINER: &str = "/ctl";
const CONTROL_SOCKET: &str = "control.sock";
const UPSTREAM_CA_IN_CONTAINER: &str = "/etc/paddock-upstream-ca.pem";
/// Longest wait for one control request (connect, write, answer).
const CONTROL_TIMEOUT: Duration = Duration::from_secs(15);
const MEMORY_BYTES: i64 = 256 * 1024 * 1024;
const PIDS_LIMIT: i64 = 256;
const READY_WAIT: Duration = Duration::from_secs(20);

/// Errors managing the proxy container.
#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    /// A host file or directory could not be prepared.
    #[error("egress proxy: {what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Docker refused a request.
    #[error("egress proxy: docker {op}: {message}")]
    Docker {
        /// The request.
        op: &'static str,
        /// Docker's message.
        message: String,
    },
    /// The proxy did not come up.
    #[error("egress proxy: {0}")]
    NotReady(String),
    /// The proxy refused a control request.
    #[error("egress proxy: {op} refused ({code}): {message}")]
    Refused {
        /// The request.
        op: &'static str,
        /// The proxy's error code (`run_exists`, `unknown_run`, `bad_policy`, ...).
        code: String,
        /// The proxy's message (never holds a secret).
        message: String,
    },
    /// The control socket failed or answered something unexpected.
    #[error("egress proxy: control {op}: {why}")]
    Control {
        /// The request.
        op: &'static str,
        /// What went wrong.
        why: String,
    },
}

/// How the proxy container is set up.
#[derive(Clone, Debug)]
pub struct EgressSettings {
    /// Image holding the static `paddock-egress`.
    pub image: String,
    /// Host directory for the config and the socket tree (absolute, normalised).
    pub state_dir: PathBuf,
    /// Nameservers the proxy resolves with (`ip:port`).
    pub nameservers: Vec<std::net::SocketAddr>,
    /// A PEM bundle of extra CAs the proxy trusts for upstream TLS besides the public roots
    /// (mounted read-only; certificate and name checks stay on).
    pub extra_ca_bundle: Option<PathBuf>,
}

impl Default for EgressSettings {
    fn default() -> Self {
        Self {
            image: "paddock/egress:latest".into(),
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            nameservers: DEFAULT_NAMESERVER.parse().into_iter().collect(),
            extra_ca_bundle: None,
        }
    }
}

impl EgressSettings {
    fn sock_root(&self) -> PathBuf {
        self.state_dir.join("sock")
    }

    fn config_dir(&self) -> PathBuf {
        self.state_dir.join("config")
    }

    fn config_path(&self) -> PathBuf {
        self.config_dir().join("egress.toml")
    }

    fn ctl_dir(&self) -> PathBuf {
        self.state_dir.join("ctl")
    }

    /// The proxy container's name: `paddock-egress` for the default state directory, else
    /// `paddock-egress-<8 hex of the directory's hash>`, so that two state directories (a test
    /// suite and a real runner, say) never recreate each other's proxy.
    #[must_use]
    pub fn container_name(&self) -> String {
        if self.state_dir == Path::new(DEFAULT_STATE_DIR) {
            return EGRESS_CONTAINER.to_owned();
        }
        let h = Sha256::digest(self.state_dir.as_os_str().as_encoded_bytes());
        let hex: String = h.iter().take(4).map(|b| format!("{b:02x}")).collect();
        format!("{EGRESS_CONTAINER}-{hex}")
    }

    /// The control socket on the host.
    #[must_use]
    pub fn control_socket(&self) -> PathBuf {
        self.ctl_dir().join(CONTROL_SOCKET)
    }

    /// The proxy's configuration file text: no listener but the control socket and the runs'
    /// own sockets.
    #[must_use]
    pub fn config_text(&self) -> String {
        let ns: Vec<String> = self
            .nameservers
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect();
        let extra = if self.extra_ca_bundle.is_some() {
            format!("extra_ca_bundle = \"{UPSTREAM_CA_IN_CONTAINER}\"\n")
        } else {
            String::new()
        };
        format!(
            "[resolver]\nnameservers = [{}]\n[audit]\npath = \"-\"\n\
             [tls]\nintercept = false\n{extra}\
             [control]\nunix = \"{CTL_IN_CONTAINER}/{CONTROL_SOCKET}\"\nruns_dir = \"{SOCK_IN_CONTAINER}\"\n",
            ns.join(", ")
        )
    }

    fn config_hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"paddock-egress-container-v1\0");
        h.update(self.image.as_bytes());
        h.update(b"\0");
        h.update(self.state_dir.to_string_lossy().as_bytes());
        h.update(b"\0");
        h.update(self.config_text().as_bytes());
        if let Some(bundle) = &self.extra_ca_bundle {
            h.update(b"\0");
            h.update(bundle.to_string_lossy().as_bytes());
            // The bundle's content: a changed CA file restarts the proxy to load it.
            h.update(b"\0");
            h.update(std::fs::read(bundle).unwrap_or_default());
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The running proxy and its control socket.
#[derive(Clone, Debug)]
pub struct EgressContainer {
    /// The proxy container's id.
    pub container_id: String,
    /// The control socket on the host (never mounted into a sandbox).
    pub control: PathBuf,
    /// The runs directory on the host: `<runs_dir>/<run>` is a run's directory.
    pub runs_dir: PathBuf,
    /// PEM certificates a sandbox trusts besides its run's CA, for tunnelled hosts: the host's
    /// CA bundle and the extra CA bundle (`sandbox::trust::sandbox_roots`).
    pub sandbox_roots: String,
}

/// A run registered at the proxy.
#[derive(Clone, Debug)]
pub struct RunEgress {
    /// The run id at the proxy.
    pub run: String,
    /// Host path of the run's directory (`proxy.sock`, `ca.pem`); mount it at `/paddock`.
    pub run_dir: PathBuf,
    /// The run's CA certificate (PEM), also at `<run_dir>/ca.pem`; the sandbox trusts it.
    pub ca_pem: String,
    /// One opaque handle per credential grant, by grant name (`Debug` hides the handle).
    pub handles: Vec<IssuedHandle>,
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> EgressError {
    let what = what.into();
    move |source| EgressError::Io { what, source }
}

fn docker(op: &'static str) -> impl FnOnce(BollardError) -> EgressError {
    move |e| EgressError::Docker {
        op,
        message: e.to_string(),
    }
}

fn is_404(e: &BollardError) -> bool {
    matches!(
        e,
        BollardError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

fn labels(hash: Option<&str>) -> HashMap<String, String> {
    let mut l = HashMap::from([
        (LABEL_MANAGED.to_owned(), "true".to_owned()),
        (LABEL_ROLE.to_owned(), "egress".to_owned()),
    ]);
    if let Some(h) = hash {
        l.insert(LABEL_CONFIG_HASH.to_owned(), h.to_owned());
    }
    l
}

fn bind(source: &Path, target: &str, read_only: bool) -> Result<Mount, EgressError> {
    let source = source.to_str().ok_or_else(|| EgressError::Io {
        what: "state directory".into(),
        source: std::io::Error::other("path is not UTF-8"),
    })?;
    Ok(Mount {
        target: Some(target.to_owned()),
        source: Some(source.to_owned()),
        typ: Some(MountTypeEnum::BIND),
        read_only: Some(read_only),
        bind_options: Some(MountBindOptions {
            propagation: Some(MountBindOptionsPropagationEnum::RPRIVATE),
            non_recursive: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// The proxy's create request: non-root, no capabilities, read-only root; mounts: the config
/// directory (ro), the runs directory (rw), the control directory (rw) and, when set, the
/// upstream CA bundle (ro).
pub fn container_body(settings: &EgressSettings) -> Result<ContainerCreateBody, EgressError> {
    let hash = settings.config_hash();
    let mut mounts = vec![
        bind(&settings.config_dir(), CONFIG_DIR_IN_CONTAINER, true)?,
        bind(&settings.sock_root(), SOCK_IN_CONTAINER, false)?,
        bind(&settings.ctl_dir(), CTL_IN_CONTAINER, false)?,
    ];
    if let Some(bundle) = &settings.extra_ca_bundle {
        mounts.push(bind(bundle, UPSTREAM_CA_IN_CONTAINER, true)?);
    }
    Ok(ContainerCreateBody {
        image: Some(settings.image.clone()),
        user: Some({
            let (uid, gid) = proxy_ids();
            format!("{uid}:{gid}")
        }),
        cmd: Some(vec!["--config".into(), CONFIG_IN_CONTAINER.into()]),
        labels: Some(labels(Some(&hash))),
        attach_stdin: Some(false),
        open_stdin: Some(false),
        tty: Some(false),
        host_config: Some(HostConfig {
            network_mode: Some(EGRESS_NETWORK.into()),
            cap_drop: Some(vec!["ALL".into()]),
            cap_add: Some(Vec::new()),
            privileged: Some(false),
            security_opt: Some(vec!["no-new-privileges:true".into()]),
            readonly_rootfs: Some(true),
            mounts: Some(mounts),
            binds: Some(Vec::new()),
            devices: Some(Vec::new()),
            memory: Some(MEMORY_BYTES),
            memory_swap: Some(MEMORY_BYTES),
            pids_limit: Some(PIDS_LIMIT),
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            }),
            publish_all_ports: Some(false),
            port_bindings: Some(HashMap::new()),
            log_config: Some(HostConfigLogConfig {
                typ: Some("json-file".into()),
                config: Some(HashMap::from([
                    ("max-size".to_owned(), "10m".to_owned()),
                    ("max-file".to_owned(), "2".to_owned()),
                ])),
            }),
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn prepare_host(settings: &EgressSettings) -> Result<(), EgressError> {
    let config = settings.config_path();
    let config_dir = settings.config_dir();
    let sock_root = settings.sock_root();
    let ctl_dir = settings.ctl_dir();
    std::fs::create_dir_all(&settings.state_dir)
        .map_err(io(format!("create {}", settings.state_dir.display())))?;
    if let Some(bundle) = &settings.extra_ca_bundle
        && !bundle.is_file()
    {
        return Err(EgressError::Io {
            what: format!("extra CA bundle {}", bundle.display()),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a file"),
        });
    }
    // The state directory itself may be shared (its mode is left alone); these are Paddock's.
    // The runs directory is traversable by agents (each mounts only its own run directory);
    // the control directory is the proxy's alone.
    for (d, mode) in [(&config_dir, 0o755), (&sock_root, 0o755), (&ctl_dir, 0o700)] {
        std::fs::create_dir_all(d).map_err(io(format!("create {}", d.display())))?;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode))
            .map_err(io(format!("chmod {}", d.display())))?;
    }
    let (uid, gid) = proxy_ids();
    for d in [&sock_root, &ctl_dir] {
        std::os::unix::fs::chown(d, Some(uid), Some(gid))
            .map_err(io(format!("chown {}", d.display())))?;
    }
    let text = settings.config_text();
    if std::fs::read_to_string(&config).ok().as_deref() != Some(text.as_str()) {
        let tmp = config_dir.join("egress.toml.new");
        let mut f = std::fs::File::create(&tmp).map_err(io("write the config"))?;
        f.write_all(text.as_bytes())
            .map_err(io("write the config"))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))
            .map_err(io("chmod the config"))?;
        std::fs::rename(&tmp, &config).map_err(io("install the config"))?;
    }
    Ok(())
}

async fn ensure_network(engine: &DockerEngine) -> Result<(), EgressError> {
    let d = engine.client();
    match d
        .inspect_network(EGRESS_NETWORK, None::<InspectNetworkOptions>)
        .await
    {
        Ok(_) => return Ok(()),
        Err(e) if is_404(&e) => {}
        Err(e) => return Err(docker("inspect network")(e)),
    }
    let req = NetworkCreateRequest {
        name: EGRESS_NETWORK.into(),
        driver: Some("bridge".into()),
        internal: Some(false),
        attachable: Some(false),
        labels: Some(labels(None)),
        ..Default::default()
    };
    match d.create_network(req).await {
        Ok(_) => Ok(()),
        // Created concurrently by another caller.
        Err(BollardError::DockerResponseServerError {
            status_code: 409, ..
        }) => Ok(()),
        Err(e) => Err(docker("create network")(e)),
    }
}

/// One request over the control socket: connect, one JSON line out, one line back, all
/// under [`CONTROL_TIMEOUT`].
async fn control_request(
    socket: &Path,
    op: &'static str,
    req: &ControlRequest,
) -> Result<ControlResponse, EgressError> {
    let fail = |why: String| EgressError::Control { op, why };
    let mut line = serde_json::to_vec(req).map_err(|e| fail(format!("encode: {e}")))?;
    line.push(b'\n');
    let exchange = async {
        let mut stream = tokio::net::UnixStream::connect(socket)
            .await
            .map_err(|e| fail(format!("connect {}: {e}", socket.display())))?;
        stream
            .write_all(&line)
            .await
            .map_err(|e| fail(format!("write: {e}")))?;
        let limit = u64::try_from(MAX_CONTROL_LINE).unwrap_or(u64::MAX);
        let mut reader = BufReader::new(stream).take(limit);
        let mut answer = Vec::new();
        reader
            .read_until(b'\n', &mut answer)
            .await
            .map_err(|e| fail(format!("read: {e}")))?;
        if answer.last() != Some(&b'\n') {
            return Err(fail("the answer was cut short".into()));
        }
        serde_json::from_slice::<ControlResponse>(&answer)
            .map_err(|e| fail(format!("unreadable answer: {e}")))
    };
    match tokio::time::timeout(CONTROL_TIMEOUT, exchange).await {
        Ok(r) => r,
        Err(_) => Err(fail(format!(
            "no answer within {}s",
            CONTROL_TIMEOUT.as_secs()
        ))),
    }
}

fn refused(op: &'static str, resp: ControlResponse) -> EgressError {
    match resp {
        ControlResponse::Error { code, message } => EgressError::Refused { op, code, message },
        other => EgressError::Control {
            op,
            why: format!("unexpected answer {:?}", answer_kind(&other)),
        },
    }
}

fn answer_kind(r: &ControlResponse) -> &'static str {
    match r {
        ControlResponse::Registered(_) => "registered",
        ControlResponse::Revoked { .. } => "revoked",
        ControlResponse::Totals { .. } => "totals",
        ControlResponse::Runs { .. } => "runs",
        ControlResponse::Error { .. } => "error",
    }
}

/// Waits until the proxy answers on its control socket.
async fn wait_ready(control: &Path) -> Result<(), EgressError> {
    let deadline = tokio::time::Instant::now() + READY_WAIT;
    loop {
        let req = ControlRequest::new(ControlOp::List);
        let last = match control_request(control, "list", &req).await {
            Ok(ControlResponse::Runs { .. }) => return Ok(()),
            Ok(other) => format!("unexpected answer {:?}", answer_kind(&other)),
            Err(e) => e.to_string(),
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(EgressError::NotReady(format!(
                "{} not answering after {}s: {last}",
                control.display(),
                READY_WAIT.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl EgressContainer {
    /// Makes sure the one proxy container runs with `settings` (recreating it when its config
    /// hash differs) and its socket is connectable by agents.
    ///
    /// Safe to call concurrently: callers in one process take turns, and a Docker conflict with
    /// another process doing the same (a removal or creation under way) is retried.
    pub async fn ensure(
        engine: &DockerEngine,
        settings: &EgressSettings,
    ) -> Result<Self, EgressError> {
        static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        let _turn = TURN.lock().await;
        let mut attempt = 0u32;
        loop {
            match Self::ensure_once(engine, settings).await {
                Err(EgressError::Docker { op, message }) if attempt < 10 => {
                    attempt += 1;
                    info!(op, %message, attempt, "egress proxy: docker conflict; retrying");
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                r => return r,
            }
        }
    }

    async fn ensure_once(
        engine: &DockerEngine,
        settings: &EgressSettings,
    ) -> Result<Self, EgressError> {
        prepare_host(settings)?;
        ensure_network(engine).await?;
        let d = engine.client();
        let name = settings.container_name();
        let want = settings.config_hash();
        // The image the tag names now: a rebuilt image (a new proxy binary) recreates the
        // container even when the configuration is unchanged.
        let image_id = d
            .inspect_image(&settings.image)
            .await
            .map_err(docker("inspect image"))?
            .id;
        let existing = match d
            .inspect_container(&name, None::<InspectContainerOptions>)
            .await
        {
            Ok(i) => Some(i),
            Err(e) if is_404(&e) => None,
            Err(e) => return Err(docker("inspect container")(e)),
        };
        let mut id = None;
        if let Some(i) = existing {
            let cid = i.id.clone().unwrap_or_default();
            let hash = i
                .config
                .as_ref()
                .and_then(|c| c.labels.as_ref())
                .and_then(|l| l.get(LABEL_CONFIG_HASH).cloned());
            let same_image = image_id.is_none() || i.image == image_id;
            if hash.as_deref() == Some(want.as_str()) && same_image {
                id = Some(cid);
            } else {
                info!(container = %cid, "egress proxy config or image changed; recreating");
                let opts = RemoveContainerOptionsBuilder::new().force(true).build();
                match d.remove_container(&name, Some(opts)).await {
                    Ok(()) => {}
                    Err(e) if is_404(&e) => {}
                    Err(e) => return Err(docker("remove container")(e)),
                }
            }
        }
        let id = match id {
            Some(id) => id,
            None => {
                let opts = CreateContainerOptionsBuilder::new().name(&name).build();
                let body = container_body(settings)?;
                match d.create_container(Some(opts), body).await {
                    Ok(r) => r.id,
                    // Created concurrently by another caller with the same settings.
                    Err(BollardError::DockerResponseServerError {
                        status_code: 409, ..
                    }) => d
                        .inspect_container(&name, None::<InspectContainerOptions>)
                        .await
                        .map_err(docker("inspect container"))?
                        .id
                        .unwrap_or_default(),
                    Err(e) => return Err(docker("create container")(e)),
                }
            }
        };
        match d.start_container(&id, None::<StartContainerOptions>).await {
            Ok(()) => {}
            // 304: already running.
            Err(BollardError::DockerResponseServerError {
                status_code: 304, ..
            }) => {}
            Err(e) => return Err(docker("start container")(e)),
        }
        let control = settings.control_socket();
        wait_ready(&control).await?;
        let sandbox_roots = trust::sandbox_roots(
            Path::new(trust::HOST_CA_BUNDLE),
            settings.extra_ca_bundle.as_deref(),
        )
        .map_err(io("read the CA bundles sandboxes trust"))?;
        Ok(Self {
            container_id: id,
            control,
            runs_dir: settings.sock_root(),
            sandbox_roots,
        })
    }

    /// Registers a run: the proxy mints its handles and CA and opens `<runs_dir>/<run>/`.
    pub async fn register(&self, run: RegisterRun) -> Result<RunEgress, EgressError> {
        if !valid_run_id(&run.run) {
            return Err(EgressError::Refused {
                op: "register",
                code: "bad_run_id".into(),
                message: "a run id is 1 to 64 of a-z, 0-9 and '-', not starting with '-'".into(),
            });
        }
        let id = run.run.clone();
        let req = ControlRequest::new(ControlOp::Register(Box::new(run)));
        let reg = match control_request(&self.control, "register", &req).await? {
            ControlResponse::Registered(r) => r,
            other => return Err(refused("register", other)),
        };
        let run_dir = self.runs_dir.join(&id);
        if reg.socket != format!("{id}/{RUN_SOCKET_NAME}") {
            return Err(EgressError::Control {
                op: "register",
                why: "the proxy answered another run's socket".into(),
            });
        }
        for name in [RUN_SOCKET_NAME, RUN_CA_NAME] {
            if !run_dir.join(name).exists() {
                return Err(EgressError::Control {
                    op: "register",
                    why: format!("{} is missing", run_dir.join(name).display()),
                });
            }
        }
        // The sandbox's trust bundle: the run's CA, then the roots for tunnelled hosts.
        if let Err(e) = trust::write_bundle(&run_dir, &reg.ca_pem, &self.sandbox_roots) {
            let _ = self.revoke(&id).await;
            return Err(io(format!("write {}", trust::RUN_CA_BUNDLE_NAME))(e));
        }
        Ok(RunEgress {
            run: id,
            run_dir,
            ca_pem: reg.ca_pem,
            handles: reg.handles,
        })
    }

    /// Revokes a run: its socket, connections and tunnels close at once; its totals.
    pub async fn revoke(&self, run: &str) -> Result<RunTotals, EgressError> {
        let req = ControlRequest::new(ControlOp::Revoke {
            run: run.to_owned(),
        });
        match control_request(&self.control, "revoke", &req).await? {
            ControlResponse::Revoked { totals } => Ok(*totals),
            other => Err(refused("revoke", other)),
        }
    }

    /// A registered run's totals so far.
    pub async fn totals(&self, run: &str) -> Result<RunTotals, EgressError> {
        let req = ControlRequest::new(ControlOp::Totals {
            run: run.to_owned(),
        });
        match control_request(&self.control, "totals", &req).await? {
            ControlResponse::Totals { totals } => Ok(*totals),
            other => Err(refused("totals", other)),
        }
    }

    /// Every registered run.
    pub async fn list(&self) -> Result<Vec<String>, EgressError> {
        let req = ControlRequest::new(ControlOp::List);
        match control_request(&self.control, "list", &req).await? {
            ControlResponse::Runs { runs } => Ok(runs),
            other => Err(refused("list", other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_state_directory_has_its_own_proxy_container() {
        let default = EgressSettings::default();
        assert_eq!(default.container_name(), EGRESS_CONTAINER);
        let a = EgressSettings {
            state_dir: PathBuf::from("/tmp/a"),
            ..EgressSettings::default()
        };
        let b = EgressSettings {
            state_dir: PathBuf::from("/tmp/b"),
            ..EgressSettings::default()
        };
        assert!(a.container_name().starts_with("paddock-egress-"));
        assert_eq!(a.container_name().len(), "paddock-egress-".len() + 8);
        assert_ne!(a.container_name(), b.container_name());
        assert_eq!(a.container_name(), a.clone().container_name());
    }

    #[test]
    fn the_body_is_hardened() {
        let s = EgressSettings::default();
        let b = container_body(&s).unwrap();
        let (uid, gid) = proxy_ids();
        assert_eq!(b.user, Some(format!("{uid}:{gid}")));
        assert_ne!(uid, 0, "the proxy never runs as root");
        if nix::unistd::geteuid().is_root() {
            assert_eq!(b.user.as_deref(), Some("65532:65532"));
        }
        let h = b.host_config.unwrap();
        assert_eq!(h.cap_drop, Some(vec!["ALL".to_owned()]));
        assert_eq!(h.cap_add, Some(Vec::new()));
        assert_eq!(h.privileged, Some(false));
        assert_eq!(h.readonly_rootfs, Some(true));
        assert_eq!(h.network_mode.as_deref(), Some(EGRESS_NETWORK));
        assert_eq!(
            h.security_opt,
            Some(vec!["no-new-privileges:true".to_owned()])
        );
        let mounts = h.mounts.unwrap();
        let m: Vec<(Option<&str>, Option<&str>, Option<bool>)> = mounts
            .iter()
            .map(|m| (m.source.as_deref(), m.target.as_deref(), m.read_only))
            .collect();
        assert_eq!(
            m,
            [
                (
                    Some("/run/paddock/egress/config"),
                    Some("/etc/paddock"),
                    Some(true)
                ),
                (Some("/run/paddock/egress/sock"), Some("/sock"), Some(false)),
                (Some("/run/paddock/egress/ctl"), Some("/ctl"), Some(false)),
            ]
        );
        assert_eq!(h.binds, Some(Vec::new()));
        assert_eq!(h.memory, h.memory_swap);
        assert!(h.pids_limit.unwrap_or(0) > 0);
        // With an upstream CA bundle: one more mount, read-only.
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("ca.pem");
        std::fs::write(&bundle, "x").unwrap();
        let s = EgressSettings {
            extra_ca_bundle: Some(bundle.clone()),
            ..EgressSettings::default()
        };
        let mounts = container_body(&s)
            .unwrap()
            .host_config
            .unwrap()
            .mounts
            .unwrap();
        let last = mounts.last().unwrap();
        assert_eq!(last.source.as_deref(), bundle.to_str());
        assert_eq!(last.target.as_deref(), Some(UPSTREAM_CA_IN_CONTAINER));
        assert_eq!(last.read_only, Some(true));
    }

    #[test]
    fn the_config_hash_follows_every_setting() {
        let a = EgressSettings::default();
        let mut b = a.clone();
        assert_eq!(a.config_hash(), b.config_hash());
        b.nameservers = vec!["127.0.0.1:5353".parse().unwrap()];
        assert_ne!(a.config_hash(), b.config_hash());
        let mut c = a.clone();
        c.image = "paddock/egress:other".into();
        assert_ne!(a.config_hash(), c.config_hash());
        let mut d = a.clone();
        d.state_dir = PathBuf::from("/srv/paddock/egress");
        assert_ne!(a.config_hash(), d.config_hash());
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("ca.pem");
        std::fs::write(&bundle, "one").unwrap();
        let mut e = a.clone();
        e.extra_ca_bundle = Some(bundle.clone());
        let with_one = e.config_hash();
        assert_ne!(a.config_hash(), with_one);
        std::fs::write(&bundle, "two").unwrap();
        assert_ne!(
            e.config_hash(),
            with_one,
            "a changed bundle restarts the proxy"
        );
    }

    #[test]
    fn the_config_listens_only_on_the_control_and_run_sockets() {
        let t = EgressSettings::default().config_text();
        assert!(t.contains("unix = \"/ctl/control.sock\""), "{t}");
        assert!(t.contains("runs_dir = \"/sock\""), "{t}");
        assert!(!t.contains("listen"), "{t}");
        assert!(!t.contains("extra_ca_bundle"), "{t}");
        assert!(t.contains("nameservers = [\"127.0.0.11:53\"]"), "{t}");
        let s = EgressSettings {
            extra_ca_bundle: Some(PathBuf::from("/srv/ca.pem")),
            ..EgressSettings::default()
        };
        let t = s.config_text();
        assert!(
            t.contains(&format!("extra_ca_bundle = \"{UPSTREAM_CA_IN_CONTAINER}\"")),
            "{t}"
        );
    }

    /// A fake proxy end of the control socket answering `answers` in turn.
    async fn fake_proxy(
        dir: &Path,
        answers: Vec<String>,
    ) -> (PathBuf, tokio::task::JoinHandle<Vec<String>>) {
        let path = dir.join("control.sock");
        let l = tokio::net::UnixListener::bind(&path).unwrap();
        let task = tokio::spawn(async move {
            let mut seen = Vec::new();
            for answer in answers {
                let (s, _) = l.accept().await.unwrap();
                let mut r = BufReader::new(s);
                let mut line = String::new();
                r.read_line(&mut line).await.unwrap();
                seen.push(line);
                let mut s = r.into_inner();
                s.write_all(answer.as_bytes()).await.unwrap();
            }
            seen
        });
        (path, task)
    }

    #[tokio::test]
    async fn the_control_client_speaks_json_lines_and_reports_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let runs = dir.path().join("sock");
        std::fs::create_dir_all(runs.join("r1")).unwrap();
        std::fs::write(runs.join("r1").join(RUN_SOCKET_NAME), "").unwrap();
        std::fs::write(runs.join("r1").join(RUN_CA_NAME), "pem").unwrap();
        let answers = vec![
            r#"{"status":"registered","socket":"r1/proxy.sock","ca_pem":"-----BEGIN CERTIFICATE-----\nQQ==\n-----END CERTIFICATE-----\n","handles":[{"name":"K","handle":"pdk_h_x"}]}"#.to_owned() + "\n",
            r#"{"status":"error","code":"run_exists","message":"a run with this id is registered"}"#.to_owned() + "\n",
            r#"{"status":"revoked","totals":{"requests":3}}"#.to_owned() + "\n",
            r#"{"status":"runs","runs":["r2"]}"#.to_owned() + "\n",
            r#"{"status":"runs","runs":[]}"#.to_owned(),
        ];
        let (control, task) = fake_proxy(dir.path(), answers).await;
        let egress = EgressContainer {
            container_id: "c".into(),
            control,
            runs_dir: runs.clone(),
            sandbox_roots: "-----BEGIN CERTIFICATE-----\nUk9PVA==\n-----END CERTIFICATE-----\n"
                .into(),
        };
        let run = |id: &str| RegisterRun {
            run: id.into(),
            policy: paddock_policy::PolicyConfig::default(),
            credentials: Vec::new(),
            budget: paddock_policy::BudgetConfig::default(),
            ttl_secs: 60,
        };
        let reg = egress.register(run("r1")).await.unwrap();
        assert_eq!(reg.run_dir, runs.join("r1"));
        // The run's trust bundle: its CA first, then the roots.
        let bundle = std::fs::read_to_string(runs.join("r1").join("ca-bundle.pem")).unwrap();
        assert!(
            bundle.starts_with("-----BEGIN CERTIFICATE-----\nQQ==\n"),
            "{bundle}"
        );
        assert!(
            bundle.ends_with("Uk9PVA==\n-----END CERTIFICATE-----\n"),
            "{bundle}"
        );
        assert_eq!(reg.handles[0].handle, "pdk_h_x");
        let dup = egress.register(run("r1")).await.unwrap_err();
        assert!(
            matches!(&dup, EgressError::Refused { code, .. } if code == "run_exists"),
            "{dup}"
        );
        assert_eq!(egress.revoke("r1").await.unwrap().requests, 3);
        // The wrong kind of answer is an error, not a silent default.
        assert!(egress.totals("r2").await.is_err());
        // An answer without its newline is cut short: refused.
        assert!(egress.list().await.is_err());
        // A bad id never reaches the socket.
        assert!(egress.register(run("../x")).await.is_err());
        let seen = task.await.unwrap();
        assert!(seen[0].contains(r#""kind":"register""#), "{}", seen[0]);
        assert!(seen[2].contains(r#""kind":"revoke""#), "{}", seen[2]);
        assert!(seen.iter().all(|l| l.ends_with('\n')));
    }
}
