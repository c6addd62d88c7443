//! The egress proxy container: one hardened `paddock-egress` kept running on its own bridge
//! network, listening on a Unix socket in a host directory that sandboxes mount read-only.
//!
//! Layout under the state directory (default `/run/paddock/egress`):
//! `config/egress.toml` (mounted read-only into the proxy) and `sock/<run>/proxy.sock` (the
//! `sock` tree is the proxy's only writable mount). For now one run directory, `default`, with
//! the default policy serves every sandbox. A run directory doubles as the sandbox's `/paddock`
//! mount, so the agent's relay finds `proxy.sock` there.
//!
//! Socket access: the proxy creates its socket 0660 as uid 65532; agents run as per-slot uids
//! (10001+) whose groups cannot be shared with the proxy, so after every start the runner (root)
//! re-modes the socket 0666. Reaching the socket still needs the path: the `sock` tree is mounted
//! only into the proxy and, one run directory each, into sandboxes; the socket grants nothing but
//! the proxy's policy-checked egress.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// Name of the proxy container.
pub const EGRESS_CONTAINER: &str = "paddock-egress";
/// Name of the bridge network that is the proxy's only route out.
pub const EGRESS_NETWORK: &str = "paddock-egress";
/// Label naming the role of a Paddock-managed service container.
pub const LABEL_ROLE: &str = "org.paddock.role";
/// Label holding the hash of the proxy's configuration; a mismatch recreates the container.
pub const LABEL_CONFIG_HASH: &str = "org.paddock.config-hash";
/// The proxy image's user (see `sandbox-images/images/proxy/Dockerfile`).
pub const EGRESS_UID: u32 = 65532;
/// The run directory every sandbox uses until runs are registered one by one.
pub const DEFAULT_RUN: &str = "default";
/// Default Docker's embedded DNS on a user-defined network: forwards to the host's resolvers.
pub const DEFAULT_NAMESERVER: &str = "127.0.0.11:53";

const CONFIG_IN_CONTAINER: &str = "/etc/paddock/egress.toml";
const SOCK_IN_CONTAINER: &str = "/sock";
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
}

impl Default for EgressSettings {
    fn default() -> Self {
        Self {
            image: "paddock/egress:latest".into(),
            state_dir: PathBuf::from("/run/paddock/egress"),
            nameservers: DEFAULT_NAMESERVER.parse().into_iter().collect(),
        }
    }
}

impl EgressSettings {
    fn sock_root(&self) -> PathBuf {
        self.state_dir.join("sock")
    }

    fn config_path(&self) -> PathBuf {
        self.state_dir.join("config").join("egress.toml")
    }

    /// The proxy's configuration file text.
    #[must_use]
    pub fn config_text(&self) -> String {
        let ns: Vec<String> = self
            .nameservers
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect();
        format!(
            "listen_unix = \"{SOCK_IN_CONTAINER}/{DEFAULT_RUN}/proxy.sock\"\n\
             [resolver]\nnameservers = [{}]\n[audit]\npath = \"-\"\n",
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
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The running proxy, as far as sandboxes are concerned.
#[derive(Clone, Debug)]
pub struct EgressContainer {
    /// The proxy container's id.
    pub container_id: String,
    /// The run directory (holds `proxy.sock`) a sandbox mounts at `/paddock`.
    pub run_dir: PathBuf,
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

/// The proxy's create request: non-root, no capabilities, read-only root, two mounts only.
pub fn container_body(settings: &EgressSettings) -> Result<ContainerCreateBody, EgressError> {
    let hash = settings.config_hash();
    Ok(ContainerCreateBody {
        image: Some(settings.image.clone()),
        user: Some(format!("{EGRESS_UID}:{EGRESS_UID}")),
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
            mounts: Some(vec![
                bind(&settings.sock_root(), SOCK_IN_CONTAINER, false)?,
                bind(&settings.config_path(), CONFIG_IN_CONTAINER, true)?,
            ]),
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

fn prepare_host(settings: &EgressSettings) -> Result<PathBuf, EgressError> {
    let config = settings.config_path();
    let config_dir = settings.state_dir.join("config");
    let sock_root = settings.sock_root();
    let run_dir = sock_root.join(DEFAULT_RUN);
    std::fs::create_dir_all(&settings.state_dir)
        .map_err(io(format!("create {}", settings.state_dir.display())))?;
    // The state directory itself may be shared (its mode is left alone); these are Paddock's.
    for d in [&config_dir, &sock_root, &run_dir] {
        std::fs::create_dir_all(d).map_err(io(format!("create {}", d.display())))?;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))
            .map_err(io(format!("chmod {}", d.display())))?;
    }
    // Only the run directory is the proxy's to write (its socket).
    std::os::unix::fs::chown(&run_dir, Some(EGRESS_UID), Some(EGRESS_UID))
        .map_err(io(format!("chown {}", run_dir.display())))?;
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
    Ok(run_dir)
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

/// Waits until the proxy listens and has set its own socket mode, then opens the socket to the
/// agents' uids.
async fn open_socket(sock: &Path) -> Result<(), EgressError> {
    let deadline = tokio::time::Instant::now() + READY_WAIT;
    loop {
        let listening = std::os::unix::net::UnixStream::connect(sock).is_ok();
        if listening && chmod_proxy_socket(sock)? {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(EgressError::NotReady(format!(
                "{} not listening after {}s",
                sock.display(),
                READY_WAIT.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Re-modes the proxy's socket 0666 once the proxy has set its own mode (0660). The directory
/// belongs to the proxy's uid, so the path is opened without following links and the checked
/// inode itself is changed: a swapped-in symlink or file is refused, never re-moded as root.
fn chmod_proxy_socket(sock: &Path) -> Result<bool, EgressError> {
    use nix::fcntl::OFlag;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};

    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC).bits())
        .open(sock)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io("open the proxy socket")(e)),
    };
    let meta = file.metadata().map_err(io("stat the proxy socket"))?;
    if !meta.file_type().is_socket() || meta.uid() != EGRESS_UID {
        return Err(EgressError::NotReady(format!(
            "{} is not the proxy's socket",
            sock.display()
        )));
    }
    if !matches!(meta.mode() & 0o7777, 0o660 | 0o666) {
        return Ok(false);
    }
    let by_fd = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
    std::fs::set_permissions(by_fd, std::fs::Permissions::from_mode(0o666))
        .map_err(io("chmod the proxy socket"))?;
    Ok(true)
}

impl EgressContainer {
    /// Makes sure the one proxy container runs with `settings` (recreating it when its config
    /// hash differs) and its socket is connectable by agents.
    pub async fn ensure(
        engine: &DockerEngine,
        settings: &EgressSettings,
    ) -> Result<Self, EgressError> {
        let run_dir = prepare_host(settings)?;
        ensure_network(engine).await?;
        let d = engine.client();
        let want = settings.config_hash();
        let existing = match d
            .inspect_container(EGRESS_CONTAINER, None::<InspectContainerOptions>)
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
            if hash.as_deref() == Some(want.as_str()) {
                id = Some(cid);
            } else {
                info!(container = %cid, "egress proxy config changed; recreating");
                let opts = RemoveContainerOptionsBuilder::new().force(true).build();
                match d.remove_container(EGRESS_CONTAINER, Some(opts)).await {
                    Ok(()) => {}
                    Err(e) if is_404(&e) => {}
                    Err(e) => return Err(docker("remove container")(e)),
                }
            }
        }
        let id = match id {
            Some(id) => id,
            None => {
                let opts = CreateContainerOptionsBuilder::new()
                    .name(EGRESS_CONTAINER)
                    .build();
                let body = container_body(settings)?;
                match d.create_container(Some(opts), body).await {
                    Ok(r) => r.id,
                    // Created concurrently by another caller with the same settings.
                    Err(BollardError::DockerResponseServerError {
                        status_code: 409, ..
                    }) => d
                        .inspect_container(EGRESS_CONTAINER, None::<InspectContainerOptions>)
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
        open_socket(&run_dir.join("proxy.sock")).await?;
        Ok(Self {
            container_id: id,
            run_dir,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_hardened() {
        let s = EgressSettings::default();
        let b = container_body(&s).unwrap();
        assert_eq!(b.user.as_deref(), Some("65532:65532"));
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
        assert_eq!(mounts.len(), 2);
        assert_eq!(
            mounts[0].source.as_deref(),
            Some("/run/paddock/egress/sock")
        );
        assert_eq!(mounts[0].read_only, Some(false));
        assert_eq!(
            mounts[1].source.as_deref(),
            Some("/run/paddock/egress/config/egress.toml")
        );
        assert_eq!(mounts[1].read_only, Some(true));
        assert_eq!(h.binds, Some(Vec::new()));
        assert_eq!(h.memory, h.memory_swap);
        assert!(h.pids_limit.unwrap_or(0) > 0);
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
    }

    #[test]
    fn the_config_listens_only_on_the_run_socket() {
        let t = EgressSettings::default().config_text();
        assert!(
            t.contains("listen_unix = \"/sock/default/proxy.sock\""),
            "{t}"
        );
        assert!(!t.contains("\nlisten ="), "{t}");
        assert!(t.contains("nameservers = [\"127.0.0.11:53\"]"), "{t}");
    }

    #[test]
    fn only_the_proxys_socket_is_re_moded() {
        let dir = tempfile::tempdir().unwrap();
        // A regular file and a symlink planted at the socket path are refused.
        let target = dir.path().join("target");
        std::fs::write(&target, "x").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o660)).unwrap();
        let sock = dir.path().join("proxy.sock");
        std::os::unix::fs::symlink(&target, &sock).unwrap();
        assert!(chmod_proxy_socket(&sock).is_err());
        let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
        std::fs::remove_file(&sock).unwrap();
        std::fs::rename(&target, &sock).unwrap();
        assert!(chmod_proxy_socket(&sock).is_err());
        // Missing: not ready yet, not an error.
        std::fs::remove_file(&sock).unwrap();
        assert!(!chmod_proxy_socket(&sock).unwrap());
        // A real socket of another uid is refused too (the test runs as some uid, not 65532).
        let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o660)).unwrap();
        assert!(chmod_proxy_socket(&sock).is_err());
        // The proxy's socket is opened up (giving it to the proxy's uid needs root).
        if std::os::unix::fs::chown(&sock, Some(EGRESS_UID), Some(EGRESS_UID)).is_ok() {
            assert!(chmod_proxy_socket(&sock).unwrap());
            let meta = std::fs::symlink_metadata(&sock).unwrap();
            assert_eq!(meta.permissions().mode() & 0o777, 0o666);
        } else {
            eprintln!("not root: the positive case is covered by the Docker tests");
        }
    }
}
