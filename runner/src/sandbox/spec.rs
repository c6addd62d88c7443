//! What one run asks for ([`RunSpec`]) and the exact container the profile turns it into.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use bollard::models::{
    ContainerCreateBody, HostConfig, HostConfigCgroupnsModeEnum, HostConfigLogConfig, Mount,
    MountBindOptions, MountBindOptionsPropagationEnum, MountTypeEnum, MountVolumeOptions,
    MountVolumeOptionsDriverConfig, RestartPolicy, RestartPolicyNameEnum,
};
use bytes::Bytes;
use paddock_policy::Scrubber;
use paddock_policy::sandbox::{ContainerSettings, SandboxProfile, TmpfsMount};

use super::error::SandboxError;

/// Label on everything the launcher creates; `cleanup_leftovers` removes what carries it.
pub const LABEL_MANAGED: &str = "org.paddock.managed";
/// Label naming the run.
pub const LABEL_RUN: &str = "org.paddock.run";
/// Label naming the issue the run works on.
pub const LABEL_ISSUE: &str = "org.paddock.issue";
/// Label naming the runner that owns the sandbox (cleanup only touches its own).
pub const LABEL_OWNER: &str = "org.paddock.owner";
/// Label naming the uid slot (distinct per concurrent run).
pub const LABEL_SLOT: &str = "org.paddock.slot";
/// Prefix of every agent container's name.
pub const CONTAINER_PREFIX: &str = "paddock-run-";
/// Hostname inside every sandbox (never the host's).
pub const SANDBOX_HOSTNAME: &str = "paddock";
/// paddock-init's flag that turns the gate on: the agent starts only after the nonce line arrives
/// on stdin, and paddock-init (non-dumpable PID 1, never the agent) reports `\n<nonce> <status>`.
pub const INIT_GATE_FLAG: &str = "--gate";
/// Where the run's proxy CA is mounted (the run dir is `/paddock`).
pub const CA_FILE: &str = "/paddock/ca.pem";
/// The run's trust bundle: its CA, then the roots for hosts the proxy tunnels without
/// interception (written by the runner at registration, `sandbox::trust`).
pub const CA_BUNDLE_FILE: &str = "/paddock/ca-bundle.pem";
/// Variables that *replace* a client's trust store: they name [`CA_BUNDLE_FILE`], so the client
/// trusts the run's CA (intercepted hosts) and the public roots (tunnelled hosts).
pub const CA_BUNDLE_ENV_VARS: &[&str] = &[
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "GIT_SSL_CAINFO",
    "CURL_CA_BUNDLE",
    "PIP_CERT",
    "npm_config_cafile",
];
/// Every CA variable a run gets when [`RunSpec::ca_file`] is set: the replacing ones above, and
/// `NODE_EXTRA_CA_CERTS`, which *adds* to Node's built-in roots and so names the run's CA alone.
pub const CA_ENV_VARS: &[&str] = &[
    "SSL_CERT_FILE",
    "NODE_EXTRA_CA_CERTS",
    "REQUESTS_CA_BUNDLE",
    "GIT_SSL_CAINFO",
    "CURL_CA_BUNDLE",
    "PIP_CERT",
    "npm_config_cafile",
];

/// Inodes of the workspace tmpfs: bounds the tar headers a full workspace can produce.
pub const WORKSPACE_INODES: u64 = 1 << 20;

/// Everything the worker loop (or `paddock sandbox run`) supplies for one run.
#[derive(Clone, Debug)]
pub struct RunSpec {
    /// Unique run id: 1–64 of `[A-Za-z0-9_.-]`, starting with a letter or digit.
    pub run_id: String,
    /// The issue the run works on (label only).
    pub issue: Option<String>,
    /// Agent image (e.g. `paddock/agent:latest`).
    pub image: String,
    /// The agent command (argv); run by paddock-init once the gate opens.
    pub command: Vec<String>,
    /// Extra environment: credential *handles* and agent settings only, never real secrets.
    /// May not override the proxy variables the profile sets.
    pub env: Vec<(String, String)>,
    /// Concurrency slot; picks the run's uid from the profile's range.
    pub slot: u32,
    /// Host directory mounted read-only at `/paddock`: `task.md`, the proxy CA and the run's
    /// proxy socket (`proxy.sock`).
    pub run_dir: PathBuf,
    /// The work tree as a tar stream, extracted into `/workspace` before the agent starts.
    pub workspace: Option<Bytes>,
    /// Read `/workspace` back as a tar stream after the agent exits.
    pub return_workspace: bool,
    /// Wall-clock limit from the launch call to the container's exit.
    pub timeout: Duration,
    /// Bytes of output (stdout + stderr) kept; the rest is counted and dropped.
    pub output_cap_bytes: usize,
    /// Masks secrets and key shapes in the output.
    pub scrubber: Scrubber,
    /// The run dir holds the proxy's per-run CA as `ca.pem` and the run's trust bundle as
    /// `ca-bundle.pem`: point every TLS client at them ([`CA_ENV_VARS`]).
    pub ca_file: bool,
}

impl RunSpec {
    /// A spec with defaults: no workspace, 1 h timeout, 1 MiB output, key-shape scrubbing.
    #[must_use]
    pub fn new(
        run_id: impl Into<String>,
        image: impl Into<String>,
        command: Vec<String>,
        run_dir: PathBuf,
    ) -> Self {
        Self {
            run_id: run_id.into(),
            issue: None,
            image: image.into(),
            command,
            env: Vec::new(),
            slot: 0,
            run_dir,
            workspace: None,
            return_workspace: false,
            timeout: Duration::from_secs(3600),
            output_cap_bytes: 1 << 20,
            scrubber: Scrubber::default(),
            ca_file: false,
        }
    }

    /// Name of the run's container.
    #[must_use]
    pub fn container_name(&self) -> String {
        format!("{CONTAINER_PREFIX}{}", self.run_id)
    }
}

fn valid_run_id(id: &str) -> bool {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    !id.is_empty()
        && id.len() <= 64
        && id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && id.chars().all(ok_char)
}

/// Whether `v` may be a label value (issue, owner).
#[must_use]
pub fn valid_label_value(v: &str) -> bool {
    !v.is_empty() && v.len() <= 128 && v.chars().all(|c| c.is_ascii_graphic())
}

fn valid_env_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The run dir must be absolute and normal, and may neither be nor contain a forbidden source
/// (mounting `/run` would hand over `/run/docker.sock`).
fn check_run_dir(dir: &Path, settings: &ContainerSettings) -> Result<String, SandboxError> {
    let refuse = |why: &'static str| SandboxError::InvalidSpec {
        field: "run_dir",
        why: why.into(),
    };
    let text = dir.to_str().ok_or_else(|| refuse("must be valid UTF-8"))?;
    if !dir.is_absolute()
        || dir
            .components()
            .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
        || text.contains("//")
        || (text.len() > 1 && text.ends_with('/'))
        || text.contains(',')
        || text.contains(':')
    {
        return Err(refuse(
            "must be an absolute, normalised path without ',' or ':'",
        ));
    }
    for forbidden in &settings.forbidden_mount_sources {
        let f = Path::new(forbidden);
        if dir == f || f.starts_with(dir) || (dir.starts_with(f) && forbidden != "/") {
            return Err(SandboxError::InvalidSpec {
                field: "run_dir",
                why: format!("overlaps the forbidden mount source {forbidden:?}"),
            });
        }
    }
    if dir == Path::new("/") {
        return Err(refuse("may not be the root directory"));
    }
    Ok(text.to_owned())
}

/// Checks a spec against the profile before anything is created.
pub fn validate(spec: &RunSpec, profile: &SandboxProfile) -> Result<u32, SandboxError> {
    if !valid_run_id(&spec.run_id) {
        return Err(SandboxError::InvalidSpec {
            field: "run_id",
            why: "1-64 of [A-Za-z0-9_.-], starting with a letter or digit".into(),
        });
    }
    if let Some(issue) = &spec.issue
        && !valid_label_value(issue)
    {
        return Err(SandboxError::InvalidSpec {
            field: "issue",
            why: "1-128 printable ASCII characters without spaces".into(),
        });
    }
    if spec.image.is_empty()
        || spec
            .image
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(SandboxError::InvalidSpec {
            field: "image",
            why: "empty or contains whitespace".into(),
        });
    }
    if spec.command.is_empty() || spec.command.iter().any(|a| a.contains('\0')) {
        return Err(SandboxError::InvalidSpec {
            field: "command",
            why: "must be non-empty and free of NUL bytes".into(),
        });
    }
    let reserved: Vec<String> = profile
        .relay
        .proxy_environment()
        .into_iter()
        .map(|(k, _)| k)
        .chain(CA_ENV_VARS.iter().map(|v| (*v).to_owned()))
        .collect();
    for (name, value) in &spec.env {
        if !valid_env_name(name) || value.contains('\0') {
            return Err(SandboxError::InvalidSpec {
                field: "env",
                why: format!("{name:?} is not a valid variable name or its value holds NUL"),
            });
        }
        if reserved.iter().any(|r| r.eq_ignore_ascii_case(name)) {
            return Err(SandboxError::InvalidSpec {
                field: "env",
                why: format!("{name} is set by the sandbox profile and may not be overridden"),
            });
        }
    }
    if spec.timeout.is_zero() {
        return Err(SandboxError::InvalidSpec {
            field: "timeout",
            why: "must be positive".into(),
        });
    }
    check_run_dir(&spec.run_dir, &profile.container)?;
    profile
        .container
        .uids
        .uid_for_slot(spec.slot)
        .ok_or_else(|| SandboxError::InvalidSpec {
            field: "slot",
            why: format!("no uid for slot {} in the profile's range", spec.slot),
        })
}

fn tmpfs_options(t: &TmpfsMount, uid: u32) -> String {
    let mut opts = vec![
        format!("size={}", t.size_bytes),
        format!("mode={:o}", t.mode),
    ];
    // A private (non-sticky, non-world-writable) scratch dir belongs to the run's uid.
    if t.mode & 0o002 == 0 {
        opts.push(format!("uid={uid}"));
        opts.push(format!("gid={uid}"));
    }
    opts.extend(t.options.iter().cloned());
    opts.join(",")
}

fn i64_of(field: &'static str, v: u64) -> Result<i64, SandboxError> {
    i64::try_from(v).map_err(|_| SandboxError::InvalidSpec {
        field,
        why: "value does not fit the engine's integer".into(),
    })
}

/// The workspace: an anonymous, size-capped tmpfs volume. Docker mounts it in its own mount
/// namespace, so it works whatever namespace the runner lives in, never touches the host's disk,
/// and disappears with the container (`remove ?v=1`).
fn workspace_mount(
    settings: &ContainerSettings,
    uid: u32,
    labels: &HashMap<String, String>,
) -> Mount {
    let o = format!(
        "size={},nr_inodes={WORKSPACE_INODES},mode=700,uid={uid},gid={uid},nosuid,nodev",
        settings.workspace_size_bytes
    );
    Mount {
        target: Some(settings.workspace_dir.clone()),
        typ: Some(MountTypeEnum::VOLUME),
        read_only: Some(false),
        volume_options: Some(MountVolumeOptions {
            no_copy: Some(true),
            labels: Some(labels.clone()),
            driver_config: Some(MountVolumeOptionsDriverConfig {
                name: Some("local".into()),
                options: Some(HashMap::from([
                    ("type".to_owned(), "tmpfs".to_owned()),
                    ("device".to_owned(), "tmpfs".to_owned()),
                    ("o".to_owned(), o),
                ])),
            }),
            subpath: None,
        }),
        ..Default::default()
    }
}

/// The CA variables of a run (none unless [`RunSpec::ca_file`]).
#[must_use]
pub fn ca_environment(spec: &RunSpec) -> Vec<(String, String)> {
    if !spec.ca_file {
        return Vec::new();
    }
    CA_ENV_VARS
        .iter()
        .map(|k| {
            let file = if CA_BUNDLE_ENV_VARS.contains(k) {
                CA_BUNDLE_FILE
            } else {
                CA_FILE
            };
            ((*k).to_owned(), file.to_owned())
        })
        .collect()
}

/// The labels of a run's container and workspace volume.
#[must_use]
pub fn run_labels(spec: &RunSpec, owner: Option<&str>) -> HashMap<String, String> {
    let mut labels = HashMap::from([
        (LABEL_MANAGED.to_owned(), "true".to_owned()),
        (LABEL_RUN.to_owned(), spec.run_id.clone()),
        (LABEL_SLOT.to_owned(), spec.slot.to_string()),
    ]);
    if let Some(issue) = &spec.issue {
        labels.insert(LABEL_ISSUE.to_owned(), issue.clone());
    }
    if let Some(owner) = owner {
        labels.insert(LABEL_OWNER.to_owned(), owner.to_owned());
    }
    labels
}

/// The full create request for the agent container. Pure: the unit tests pin every field.
pub fn container_body(
    spec: &RunSpec,
    profile: &SandboxProfile,
    owner: Option<&str>,
) -> Result<ContainerCreateBody, SandboxError> {
    let uid = validate(spec, profile)?;
    let settings = &profile.container;
    let run_dir = check_run_dir(&spec.run_dir, settings)?;
    let labels = run_labels(spec, owner);

    let env: Vec<String> = profile
        .relay
        .proxy_environment()
        .into_iter()
        .chain(ca_environment(spec))
        .chain(spec.env.iter().cloned())
        .map(|(k, v)| format!("{k}={v}"))
        .collect();

    let tmpfs: HashMap<String, String> = settings
        .tmpfs
        .iter()
        .map(|t| (t.path.clone(), tmpfs_options(t, uid)))
        .collect();

    let mut security_opt = Vec::new();
    if settings.no_new_privileges {
        security_opt.push("no-new-privileges:true".to_owned());
    }
    // Docker's default seccomp profile stays on: no `seccomp=` option at all (never
    // `unconfined`). AppArmor likewise keeps the daemon's default.

    let host_config = HostConfig {
        network_mode: Some(settings.network_mode.clone()),
        cap_drop: Some(settings.cap_drop.clone()),
        cap_add: Some(settings.cap_add.clone()),
        privileged: Some(settings.privileged),
        security_opt: Some(security_opt),
        readonly_rootfs: Some(settings.read_only_rootfs),
        ipc_mode: Some(settings.ipc_mode.clone()),
        pid_mode: Some(String::new()),
        uts_mode: Some(String::new()),
        userns_mode: Some(String::new()),
        cgroupns_mode: Some(HostConfigCgroupnsModeEnum::PRIVATE),
        tmpfs: Some(tmpfs),
        mounts: Some(vec![
            workspace_mount(settings, uid, &labels),
            Mount {
                target: Some(settings.paddock_dir.clone()),
                source: Some(run_dir),
                typ: Some(MountTypeEnum::BIND),
                read_only: Some(true),
                bind_options: Some(MountBindOptions {
                    propagation: Some(MountBindOptionsPropagationEnum::RPRIVATE),
                    non_recursive: Some(true),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ]),
        binds: Some(Vec::new()),
        volumes_from: Some(Vec::new()),
        devices: Some(Vec::new()),
        device_cgroup_rules: Some(Vec::new()),
        device_requests: Some(Vec::new()),
        memory: Some(i64_of("memory_bytes", settings.memory_bytes)?),
        memory_swap: Some(i64_of("memory_swap_bytes", settings.memory_swap_bytes)?),
        memory_swappiness: None,
        nano_cpus: Some(i64_of("nano_cpus", settings.nano_cpus)?),
        pids_limit: Some(i64_of("pids_limit", settings.pids_limit)?),
        oom_kill_disable: Some(false),
        log_config: Some(HostConfigLogConfig {
            typ: Some("json-file".into()),
            config: Some(HashMap::from([
                ("max-size".to_owned(), settings.log_max_bytes.to_string()),
                ("max-file".to_owned(), settings.log_max_files.to_string()),
            ])),
        }),
        restart_policy: Some(RestartPolicy {
            name: Some(RestartPolicyNameEnum::NO),
            maximum_retry_count: None,
        }),
        auto_remove: Some(false),
        init: Some(false),
        publish_all_ports: Some(false),
        port_bindings: Some(HashMap::new()),
        dns: Some(Vec::new()),
        extra_hosts: Some(Vec::new()),
        group_add: Some(Vec::new()),
        sysctls: Some(HashMap::new()),
        ..Default::default()
    };

    Ok(ContainerCreateBody {
        hostname: Some(SANDBOX_HOSTNAME.into()),
        user: Some(format!("{uid}:{uid}")),
        attach_stdin: Some(true),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        open_stdin: Some(true),
        stdin_once: Some(true),
        tty: Some(false),
        env: Some(env),
        entrypoint: Some(vec![
            settings.init_path.clone(),
            INIT_GATE_FLAG.to_owned(),
            "--".to_owned(),
        ]),
        cmd: Some(spec.command.clone()),
        image: Some(spec.image.clone()),
        working_dir: Some(settings.workspace_dir.clone()),
        network_disabled: Some(true),
        labels: Some(labels),
        host_config: Some(host_config),
        ..Default::default()
    })
}
