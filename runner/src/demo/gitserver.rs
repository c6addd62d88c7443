//! The demo's local git server: OpenSSH's `sshd` on 127.0.0.1 serving bare repositories through
//! `git-shell` only, with a fresh host key and deploy key. Stopped when dropped.

use std::fs;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::DemoError;

const SSHD: &str = "/usr/sbin/sshd";

/// A running demo git server.
#[derive(Debug)]
pub struct GitServer {
    child: Child,
    /// Loopback port.
    pub port: u16,
    /// The login user.
    pub user: String,
    /// Pinned host key as a known_hosts line.
    pub known_hosts: String,
    /// The deploy key's private key text.
    pub deploy_key: String,
    /// Directory of bare repositories.
    pub repos: PathBuf,
}

impl Drop for GitServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tool(name: &str) -> Result<PathBuf, DemoError> {
    for dir in ["/usr/bin", "/usr/sbin", "/bin", "/usr/local/bin"] {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(DemoError::Missing(format!(
        "`{name}` (the demo's local git server needs OpenSSH and git: apt-get install openssh-server openssh-client git)"
    )))
}

fn keygen(path: &Path, comment: &str) -> Result<(), DemoError> {
    let status = Command::new(tool("ssh-keygen")?)
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .map_err(|e| DemoError::io("run ssh-keygen", e))?;
    if status.success() {
        Ok(())
    } else {
        Err(DemoError::Step(format!("ssh-keygen failed: {status}")))
    }
}

fn free_port() -> Result<u16, DemoError> {
    let l = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| DemoError::io("pick a loopback port", e))?;
    Ok(l.local_addr()
        .map_err(|e| DemoError::io("pick a loopback port", e))?
        .port())
}

impl GitServer {
    /// Starts sshd under `dir` for the current user, serving `dir/repos`.
    pub fn start(dir: &Path) -> Result<GitServer, DemoError> {
        if !Path::new(SSHD).is_file() {
            return Err(DemoError::Missing(
                "OpenSSH's sshd (the demo's local git server): apt-get install openssh-server git"
                    .into(),
            ));
        }
        let git_shell = tool("git-shell")?;
        let uid = nix::unistd::getuid();
        let user = nix::unistd::User::from_uid(uid)
            .ok()
            .flatten()
            .map(|u| u.name)
            .ok_or_else(|| DemoError::Step("cannot name the current user".into()))?;
        let repos = dir.join("repos");
        fs::create_dir_all(&repos)
            .map_err(|e| DemoError::io("create the repository directory", e))?;
        let host_key = dir.join("host_ed25519");
        let deploy = dir.join("deploy_ed25519");
        keygen(&host_key, "paddock-demo-host")?;
        keygen(&deploy, "paddock-demo-deploy")?;
        let deploy_pub = fs::read_to_string(deploy.with_extension("pub"))
            .map_err(|e| DemoError::io("read the deploy key", e))?;
        // The key may only run git-shell (push and fetch), nothing else.
        let authorized = dir.join("authorized_keys");
        fs::write(
            &authorized,
            format!(
                "command=\"{} -c \\\"$SSH_ORIGINAL_COMMAND\\\"\",restrict {}",
                git_shell.display(),
                deploy_pub.trim()
            ),
        )
        .map_err(|e| DemoError::io("write authorized_keys", e))?;
        fs::set_permissions(&authorized, fs::Permissions::from_mode(0o600))
            .map_err(|e| DemoError::io("chmod authorized_keys", e))?;
        if uid.is_root() {
            fs::create_dir_all("/run/sshd").map_err(|e| DemoError::io("create /run/sshd", e))?;
        }
        let port = free_port()?;
        let config = dir.join("sshd_config");
        fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nPidFile {pid}\n\
                 AuthorizedKeysFile {ak}\nAllowUsers {user}\nPubkeyAuthentication yes\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PermitRootLogin forced-commands-only\nStrictModes no\nUsePAM no\n\
                 AllowTcpForwarding no\nX11Forwarding no\nPermitTTY no\nLogLevel ERROR\n",
                hk = host_key.display(),
                pid = dir.join("sshd.pid").display(),
                ak = authorized.display(),
            ),
        )
        .map_err(|e| DemoError::io("write sshd_config", e))?;
        let log = fs::File::create(dir.join("sshd.log"))
            .map_err(|e| DemoError::io("create the sshd log", e))?;
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| DemoError::io("start sshd", e))?;
        let mut server = GitServer {
            child,
            port,
            user,
            known_hosts: String::new(),
            deploy_key: fs::read_to_string(&deploy)
                .map_err(|e| DemoError::io("read the deploy key", e))?,
            repos,
        };
        let host_pub = fs::read_to_string(host_key.with_extension("pub"))
            .map_err(|e| DemoError::io("read the host key", e))?;
        let mut parts = host_pub.split_whitespace();
        let (Some(kind), Some(blob)) = (parts.next(), parts.next()) else {
            return Err(DemoError::Step(
                "ssh-keygen wrote an unexpected host key".into(),
            ));
        };
        server.known_hosts = format!("[127.0.0.1]:{port} {kind} {blob}\n");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if TcpStream::connect(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).is_ok() {
                return Ok(server);
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                let log = fs::read_to_string(dir.join("sshd.log")).unwrap_or_default();
                return Err(DemoError::Step(format!(
                    "sshd exited ({status}): {}",
                    log.trim()
                )));
            }
            if Instant::now() > deadline {
                return Err(DemoError::Step(
                    "sshd did not start listening within 10 s".into(),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The SSH URL of bare repository `name` (under [`GitServer::repos`]).
    pub fn url(&self, name: &str) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}",
            self.user,
            self.port,
            self.repos.join(name).display()
        )
    }
}
