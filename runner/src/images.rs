//! `paddock images build`: builds Paddock's images with `sandbox-images/build.sh` (Debian
//! packages and static binaries, never a container registry), and makes sure the images a
//! command needs exist before it starts.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tracing::info;

use crate::sandbox::{DockerEngine, EngineError};

/// Where the build script lives inside a source tree.
pub const BUILD_SCRIPT: &str = "sandbox-images/build.sh";
/// Environment variable naming the source tree (the checkout with `sandbox-images/`).
pub const SOURCE_DIR_ENV: &str = "PADDOCK_SOURCE_DIR";
/// Lines of the script's output kept for an error message.
const TAIL_LINES: usize = 30;

/// Every image `build.sh` knows, as (build target, image it makes). The agent-tool images are
/// only built when named (they download their tool from npm or PyPI).
pub const TARGETS: &[(&str, &str)] = &[
    ("base", "paddock/base:bookworm"),
    ("agent", "paddock/agent:latest"),
    ("proxy", "paddock/egress:latest"),
    ("test", "paddock/test:latest"),
    ("claude-code", "paddock/claude-code:latest"),
    ("codex", "paddock/codex:latest"),
    ("aider", "paddock/aider:latest"),
    ("mini-swe-agent", "paddock/mini-swe-agent:latest"),
];

/// Why images could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ImagesError {
    /// No source tree with the build script was found.
    #[error(
        "cannot find {BUILD_SCRIPT}: set {SOURCE_DIR_ENV} (or --source-dir) to a Paddock checkout"
    )]
    NoSourceDir,
    /// An image name that no build target makes.
    #[error("no build target makes the image {0:?}")]
    UnknownImage(String),
    /// A build target the script does not know.
    #[error(
        "unknown build target {0:?} (known: base, agent, proxy, test, claude-code, codex, aider, mini-swe-agent)"
    )]
    UnknownTarget(String),
    /// The extra CA bundle is not a readable PEM file.
    #[error("extra CA {path}: {why}")]
    ExtraCa {
        /// The file.
        path: String,
        /// What is wrong with it.
        why: String,
    },
    /// The script could not be started.
    #[error("could not run {BUILD_SCRIPT}: {0}")]
    Spawn(std::io::Error),
    /// The script failed.
    #[error("{BUILD_SCRIPT} failed ({status}); last output:\n{tail}")]
    Failed {
        /// Its exit status.
        status: String,
        /// The last lines it printed.
        tail: String,
    },
    /// Docker could not be asked which images exist.
    #[error("docker: {0}")]
    Docker(#[from] EngineError),
}

/// `paddock images …`.
#[derive(Debug, clap::Subcommand)]
pub enum ImagesCmd {
    /// Build images from Debian packages and static binaries (no container registry). Without
    /// TARGETs: base, agent, proxy and test; agent-tool images only when named.
    Build(BuildArgs),
}

/// Options of `paddock images build`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct BuildArgs {
    /// Targets: base, agent, proxy, test, claude-code, codex, aider, mini-swe-agent, tools (all
    /// four agent tools), all.
    pub targets: Vec<String>,
    /// PEM bundle to trust at build time (a TLS-intercepting proxy in front of the mirror and
    /// the npm/PyPI registries); also trusted inside the images.
    #[arg(long, value_name = "FILE", env = "PADDOCK_EXTRA_CA")]
    pub extra_ca: Option<PathBuf>,
    /// Rebuild even when an image's inputs are unchanged.
    #[arg(long)]
    pub force: bool,
    /// The Paddock source tree holding `sandbox-images/` (default: $PADDOCK_SOURCE_DIR, then the
    /// tree this binary was built from).
    #[arg(long, value_name = "DIR", env = SOURCE_DIR_ENV)]
    pub source_dir: Option<PathBuf>,
}

/// Runs `paddock images …`.
///
/// # Errors
/// See [`build`].
pub async fn run(cmd: ImagesCmd) -> Result<(), ImagesError> {
    match cmd {
        ImagesCmd::Build(args) => build(&args).await,
    }
}

/// The source tree: `explicit` when given, else the tree this crate was compiled from, when it
/// still holds the build script.
///
/// # Errors
/// [`ImagesError::NoSourceDir`].
pub fn locate_source_dir(explicit: Option<&Path>) -> Result<PathBuf, ImagesError> {
    let candidates: Vec<PathBuf> = match explicit {
        Some(dir) => vec![dir.to_path_buf()],
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .map(Path::to_path_buf)
            .into_iter()
            .collect(),
    };
    candidates
        .into_iter()
        .find(|dir| dir.join(BUILD_SCRIPT).is_file())
        .ok_or(ImagesError::NoSourceDir)
}

fn check_targets(targets: &[String]) -> Result<(), ImagesError> {
    for t in targets {
        let known = TARGETS.iter().any(|(name, _)| name == t) || t == "tools" || t == "all";
        if !known {
            return Err(ImagesError::UnknownTarget(t.clone()));
        }
    }
    Ok(())
}

fn check_extra_ca(path: &Path) -> Result<(), ImagesError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ImagesError::ExtraCa {
        path: shown.clone(),
        why: e.to_string(),
    })?;
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Err(ImagesError::ExtraCa {
            path: shown,
            why: "holds no PEM certificate".into(),
        });
    }
    Ok(())
}

/// The build command for `args` (pure: tested without running it).
///
/// # Errors
/// An unknown target, a bad extra CA, no source tree.
pub fn build_command(args: &BuildArgs) -> Result<Command, ImagesError> {
    check_targets(&args.targets)?;
    if let Some(ca) = &args.extra_ca {
        check_extra_ca(ca)?;
    }
    let dir = locate_source_dir(args.source_dir.as_deref())?;
    let mut cmd = Command::new("bash");
    cmd.arg(dir.join(BUILD_SCRIPT))
        .args(&args.targets)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // Only what is asked for reaches the script: a stale PADDOCK_EXTRA_CA or PADDOCK_FORCE in
    // the caller's environment is not silently reused.
    cmd.env_remove("PADDOCK_EXTRA_CA")
        .env_remove("PADDOCK_FORCE");
    if let Some(ca) = &args.extra_ca {
        cmd.env("PADDOCK_EXTRA_CA", ca);
    }
    if args.force {
        cmd.env("PADDOCK_FORCE", "1");
    }
    Ok(cmd)
}

/// Builds the images `args` names; the script's progress goes to the log.
///
/// # Errors
/// [`ImagesError::Failed`] with the script's last lines when it fails; the checks of
/// [`build_command`] first.
pub async fn build(args: &BuildArgs) -> Result<(), ImagesError> {
    let mut child = build_command(args)?.spawn().map_err(ImagesError::Spawn)?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    if let Some(out) = child.stdout.take() {
        tokio::spawn(forward_lines(out, tx.clone()));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(forward_lines(err, tx.clone()));
    }
    drop(tx);
    let mut tail: VecDeque<String> = VecDeque::with_capacity(TAIL_LINES);
    while let Some(line) = rx.recv().await {
        info!(target: "paddock::images", "{line}");
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }
    let status = child.wait().await.map_err(ImagesError::Spawn)?;
    if status.success() {
        return Ok(());
    }
    Err(ImagesError::Failed {
        status: status.to_string(),
        tail: Vec::from(tail).join("\n"),
    })
}

async fn forward_lines(
    stream: impl tokio::io::AsyncRead + Unpin,
    tx: tokio::sync::mpsc::UnboundedSender<String>,
) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if tx.send(line).is_err() {
            return;
        }
    }
}

/// The build target that makes `image` (`name:tag`; the `:latest` tag may be left out).
#[must_use]
pub fn target_for_image(image: &str) -> Option<&'static str> {
    let full = if image.contains(':') {
        image.to_owned()
    } else {
        format!("{image}:latest")
    };
    TARGETS
        .iter()
        .find(|(_, made)| *made == full)
        .map(|(target, _)| *target)
}

/// Builds whichever of `images` is missing from the local Docker (nothing when all exist). An
/// image no build target makes must already exist.
///
/// # Errors
/// [`ImagesError::UnknownImage`] for a missing image nothing builds; the build's errors.
pub async fn ensure_images(images: &[&str]) -> Result<(), ImagesError> {
    let engine = DockerEngine::connect_local()?;
    let mut targets = Vec::new();
    for image in images {
        if engine.client().inspect_image(image).await.is_ok() {
            continue;
        }
        let target = target_for_image(image)
            .ok_or_else(|| ImagesError::UnknownImage((*image).to_owned()))?;
        if !targets.iter().any(|t: &String| t == target) {
            targets.push(target.to_owned());
        }
    }
    if targets.is_empty() {
        return Ok(());
    }
    info!(targets = ?targets, "building missing images");
    build(&BuildArgs {
        targets,
        extra_ca: std::env::var_os("PADDOCK_EXTRA_CA").map(PathBuf::from),
        force: false,
        source_dir: std::env::var_os(SOURCE_DIR_ENV).map(PathBuf::from),
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_map_to_their_targets() {
        assert_eq!(target_for_image("paddock/agent:latest"), Some("agent"));
        assert_eq!(target_for_image("paddock/agent"), Some("agent"));
        assert_eq!(target_for_image("paddock/egress:latest"), Some("proxy"));
        assert_eq!(target_for_image("paddock/claude-code"), Some("claude-code"));
        assert_eq!(target_for_image("paddock/agent:0.0.1"), None);
        assert_eq!(target_for_image("docker.io/library/ubuntu"), None);
    }

    #[test]
    fn the_command_runs_the_script_with_only_what_was_asked() {
        let dir = locate_source_dir(None).unwrap();
        let args = BuildArgs {
            targets: vec!["test".into(), "aider".into()],
            force: true,
            ..BuildArgs::default()
        };
        let cmd = build_command(&args).unwrap();
        let std = cmd.as_std();
        assert_eq!(std.get_program(), "bash");
        let argv: Vec<_> = std.get_args().collect();
        assert_eq!(argv[0], dir.join(BUILD_SCRIPT).as_os_str());
        assert_eq!(&argv[1..], ["test", "aider"]);
        let envs: Vec<_> = std.get_envs().collect();
        assert!(envs.contains(&("PADDOCK_FORCE".as_ref(), Some("1".as_ref()))));
        assert!(
            envs.contains(&("PADDOCK_EXTRA_CA".as_ref(), None)),
            "{envs:?}"
        );
    }

    #[test]
    fn bad_targets_cas_and_trees_are_refused_before_anything_runs() {
        let bad = |a: BuildArgs| build_command(&a).is_err();
        assert!(bad(BuildArgs {
            targets: vec!["agent; rm -rf /".into()],
            ..BuildArgs::default()
        }));
        let dir = tempfile::tempdir().unwrap();
        let not_pem = dir.path().join("ca.pem");
        std::fs::write(&not_pem, "hello").unwrap();
        assert!(matches!(
            build_command(&BuildArgs {
                extra_ca: Some(not_pem.clone()),
                ..BuildArgs::default()
            }),
            Err(ImagesError::ExtraCa { .. })
        ));
        assert!(matches!(
            build_command(&BuildArgs {
                source_dir: Some(dir.path().to_path_buf()),
                ..BuildArgs::default()
            }),
            Err(ImagesError::NoSourceDir)
        ));
        // The neighbour: a real PEM file and known targets pass.
        std::fs::write(
            &not_pem,
            "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        assert!(!bad(BuildArgs {
            targets: vec!["tools".into(), "proxy".into()],
            extra_ca: Some(not_pem),
            ..BuildArgs::default()
        }));
    }

    fn tool_dir(name: &str) -> PathBuf {
        locate_source_dir(None)
            .unwrap()
            .join("sandbox-images/images")
            .join(name)
    }

    fn tool_version(name: &str) -> String {
        let dockerfile = std::fs::read_to_string(tool_dir(name).join("Dockerfile")).unwrap();
        dockerfile
            .lines()
            .find_map(|l| l.strip_prefix("ARG TOOL_VERSION="))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// The problems of a pip lock: a requirement without a sha256, an unpinned one, an option
    /// that could fetch from elsewhere.
    fn pip_lock_problems(lock: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let mut current: Option<(String, usize)> = None;
        let close = |c: Option<(String, usize)>, problems: &mut Vec<String>| {
            if let Some((req, 0)) = c {
                problems.push(format!("{req}: no hash"));
            }
        };
        for line in lock.lines() {
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            if line.starts_with(' ') {
                if let Some(h) = t.strip_prefix("--hash=sha256:") {
                    let h = h.trim_end_matches(" \\");
                    if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                        problems.push(format!("bad hash {h}"));
                    }
                    if let Some((_, n)) = current.as_mut() {
                        *n += 1;
                    }
                }
                continue;
            }
            close(current.take(), &mut problems);
            if t.starts_with('-') || t.contains("://") || t.contains(" @ ") {
                problems.push(format!("option or URL: {t}"));
                continue;
            }
            let req = t.trim_end_matches(" \\").to_owned();
            if !req.contains("==") {
                problems.push(format!("{req}: not pinned"));
            }
            current = Some((req, 0));
        }
        close(current, &mut problems);
        problems
    }

    #[test]
    fn a_pip_lock_without_hashes_or_with_an_index_is_refused() {
        let good = "a==1 \\\n    --hash=sha256:".to_owned() + &"ab".repeat(32) + "\n";
        assert!(pip_lock_problems(&good).is_empty());
        for bad in [
            "a==1\n".to_owned(),
            "a>=1 \\\n    --hash=sha256:".to_owned() + &"ab".repeat(32) + "\n",
            "--extra-index-url http://mirror.test/simple\n".to_owned() + &good,
            good.clone() + "b==2\n",
            "a==1 \\\n    --hash=sha256:abc\n".to_owned(),
        ] {
            assert!(!pip_lock_problems(&bad).is_empty(), "{bad}");
        }
    }

    /// Every package an agent-tool image installs is pinned by hash, at the version its
    /// Dockerfile names, and the Dockerfile installs from the lock only.
    #[test]
    fn every_agent_tool_is_pinned_by_hash() {
        for (name, package) in [
            ("claude-code", "@anthropic-ai/claude-code"),
            ("codex", "@openai/codex"),
        ] {
            let version = tool_version(name);
            let dir = tool_dir(name);
            let manifest: serde_json::Value =
                serde_json::from_slice(&std::fs::read(dir.join("package.json")).unwrap()).unwrap();
            assert_eq!(
                manifest["dependencies"][package],
                version.as_str(),
                "{name}"
            );
            let lock: serde_json::Value =
                serde_json::from_slice(&std::fs::read(dir.join("package-lock.json")).unwrap())
                    .unwrap();
            let packages = lock["packages"].as_object().unwrap();
            assert_eq!(
                packages[&format!("node_modules/{package}")]["version"],
                version.as_str(),
                "{name}"
            );
            for (path, entry) in packages.iter().filter(|(p, _)| !p.is_empty()) {
                let integrity = entry["integrity"].as_str().unwrap_or_default();
                assert!(integrity.starts_with("sha512-"), "{name}: {path}");
            }
            let dockerfile = std::fs::read_to_string(dir.join("Dockerfile")).unwrap();
            assert!(dockerfile.contains("npm-cli.js ci"), "{name}");
            assert!(
                dockerfile.contains("--require-hashes"),
                "{name}: the Node wheel"
            );
        }
        for (name, package) in [
            ("aider", "aider-chat"),
            ("mini-swe-agent", "mini-swe-agent"),
        ] {
            let version = tool_version(name);
            let dir = tool_dir(name);
            let lock = std::fs::read_to_string(dir.join("requirements.lock")).unwrap();
            assert_eq!(pip_lock_problems(&lock), Vec::<String>::new(), "{name}");
            assert!(
                lock.lines()
                    .any(|l| l.starts_with(&format!("{package}=={version} "))),
                "{name}: {package}=={version} is not in the lock"
            );
            let dockerfile = std::fs::read_to_string(dir.join("Dockerfile")).unwrap();
            assert!(dockerfile.contains("--require-hashes"), "{name}");
            assert!(dockerfile.contains("--no-deps"), "{name}");
        }
    }
}
