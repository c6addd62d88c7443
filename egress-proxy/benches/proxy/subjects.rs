//! The proxies under test: paddock-egress, Squid and tinyproxy, each started with a config of its own.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tempfile::TempDir;

/// Which way the load generator reaches the upstream.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Direct,
    Paddock,
    Squid,
    Tinyproxy,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Direct => "direct",
            Kind::Paddock => "paddock-egress",
            Kind::Squid => "squid",
            Kind::Tinyproxy => "tinyproxy",
        }
    }
}

/// A started subject; its process is killed and its files removed on drop.
pub struct Subject {
    pub kind: Kind,
    /// The proxy's listener; `None` for direct.
    pub proxy: Option<SocketAddr>,
    child: Option<Child>,
    dir: Option<TempDir>,
}

impl Subject {
    pub fn direct() -> Self {
        Self {
            kind: Kind::Direct,
            proxy: None,
            child: None,
            dir: None,
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The tail of the subject's own log files, for error messages.
    pub fn log_tail(&self) -> String {
        let Some(dir) = &self.dir else {
            return String::new();
        };
        let mut out = String::new();
        for name in ["stderr.log", "stdout.log", "cache.log", "tinyproxy.log"] {
            if let Ok(text) = std::fs::read_to_string(dir.path().join(name)) {
                let lines: Vec<&str> = text.lines().collect();
                let start = lines.len().saturating_sub(8);
                for line in &lines[start..] {
                    let _ = writeln!(out, "    {name}: {line}");
                }
            }
        }
        out
    }
}

impl Drop for Subject {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `kind` proxying to an upstream on `upstream_port`.
pub fn start(kind: Kind, paddock_bin: &Path, upstream_port: u16) -> anyhow::Result<Subject> {
    match kind {
        Kind::Direct => Ok(Subject::direct()),
        Kind::Paddock => start_paddock(paddock_bin, upstream_port),
        Kind::Squid => start_squid(),
        Kind::Tinyproxy => start_tinyproxy(),
    }
}

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

fn temp_dir(kind: Kind) -> anyhow::Result<TempDir> {
    let dir = tempfile::Builder::new()
        .prefix(&format!("paddock-bench-{}-", kind.name()))
        .tempdir()?;
    if kind == Kind::Squid {
        // Squid drops to its own user before it opens its log; let it write there.
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))?;
    }
    Ok(dir)
}

/// The paddock-egress configuration: the loopback upstream is made a public stand-in
/// through `allow_ranges`, and the connection limits are raised for the idle test.
pub fn paddock_config(listen: SocketAddr, upstream_port: u16, audit: &Path) -> String {
    format!(
        r#"listen = "{listen}"

[resolver]
nameservers = ["127.0.0.1:53"]

[policy]
approved_write_hosts = []
tunnel_hosts = []
tunnel_ports = [443]
allowed_ports = [80, 443, {upstream_port}]
allow_ranges = ["127.0.0.1/32"]

[audit]
path = "{audit}"

# All idle connections of the bench come from 127.0.0.1: lift the per-client cap
# above them. Timeouts stay at their defaults.
[limits]
max_connections = 20000
max_connections_per_client = 20000
"#,
        audit = audit.display()
    )
}

fn start_paddock(bin: &Path, upstream_port: u16) -> anyhow::Result<Subject> {
    if !bin.is_file() {
        bail!("{} is not built", bin.display());
    }
    let kind = Kind::Paddock;
    let dir = temp_dir(kind)?;
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let config = dir.path().join("egress.toml");
    std::fs::write(
        &config,
        paddock_config(listen, upstream_port, &dir.path().join("audit.jsonl")),
    )?;
    let mut cmd = Command::new(bin);
    cmd.arg("--config").arg(&config);
    spawn(kind, cmd, dir, listen)
}

fn start_squid() -> anyhow::Result<Subject> {
    let kind = Kind::Squid;
    let dir = temp_dir(kind)?;
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let d = dir.path().display();
    // A plain forward proxy: no cache, no logs, no DNS beyond loopback, nothing
    // from Debian's default config (which denies to_localhost).
    let config = format!(
        "http_port {listen}
http_access allow all
cache deny all
cache_mem 0 MB
access_log none
cache_store_log none
cache_log {d}/cache.log
pid_filename {d}/squid.pid
coredump_dir {d}
max_filedescriptors 65536
pinger_enable off
dns_nameservers 127.0.0.1
visible_hostname paddock-bench
via off
forwarded_for delete
shutdown_lifetime 0 seconds
icp_port 0
htcp_port 0
"
    );
    let path = dir.path().join("squid.conf");
    std::fs::write(&path, config)?;
    let mut cmd = Command::new("squid");
    cmd.arg("-N").arg("-f").arg(&path);
    spawn(kind, cmd, dir, listen)
}

fn start_tinyproxy() -> anyhow::Result<Subject> {
    let kind = Kind::Tinyproxy;
    let dir = temp_dir(kind)?;
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let d = dir.path().display();
    let config = format!(
        "Port {port}
Listen 127.0.0.1
Timeout 600
MaxClients 20000
Allow 127.0.0.1
DisableViaHeader Yes
LogLevel Critical
LogFile \"{d}/tinyproxy.log\"
PidFile \"{d}/tinyproxy.pid\"
",
        port = listen.port()
    );
    let path = dir.path().join("tinyproxy.conf");
    std::fs::write(&path, config)?;
    let mut cmd = Command::new("tinyproxy");
    cmd.arg("-d").arg("-c").arg(&path);
    spawn(kind, cmd, dir, listen)
}

fn spawn(
    kind: Kind,
    mut cmd: Command,
    dir: TempDir,
    listen: SocketAddr,
) -> anyhow::Result<Subject> {
    let stdout = std::fs::File::create(dir.path().join("stdout.log"))?;
    let stderr = std::fs::File::create(dir.path().join("stderr.log"))?;
    cmd.current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    let child = cmd
        .spawn()
        .with_context(|| format!("start {}", kind.name()))?;
    let mut subject = Subject {
        kind,
        proxy: Some(listen),
        child: Some(child),
        dir: Some(dir),
    };
    wait_listening(&mut subject, listen, Duration::from_secs(15))?;
    Ok(subject)
}

fn wait_listening(subject: &mut Subject, addr: SocketAddr, limit: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        if let Some(child) = &mut subject.child
            && let Some(status) = child.try_wait()?
        {
            bail!(
                "{} exited at start ({status})\n{}",
                subject.kind.name(),
                subject.log_tail()
            );
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if started.elapsed() > limit {
            bail!(
                "{} did not listen on {addr} within {limit:?}\n{}",
                subject.kind.name(),
                subject.log_tail()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Memory and file figures of a process, from /proc.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcStat {
    pub rss_kib: u64,
    pub hwm_kib: u64,
    pub threads: u64,
    pub fds: u64,
}

pub fn proc_stat(pid: u32) -> anyhow::Result<ProcStat> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir(PathBuf::from(format!("/proc/{pid}/fd")))
        .map(|d| u64::try_from(d.count()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    Ok(ProcStat {
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
        threads: field("Threads:"),
        fds,
    })
}

/// CPU time (user + system, all threads) a process has used, in seconds.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may itself hold spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u32 = fields.get(11)?.parse().ok()?;
    let stime: u32 = fields.get(12)?.parse().ok()?;
    // USER_HZ is 100 on every Linux this runs on.
    Some((f64::from(utime) + f64::from(stime)) / 100.0)
}

/// The 1-minute load average, to show how busy the machine was.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

/// Lines in the subject's audit file, if it keeps one.
pub fn audit_lines(subject: &Subject) -> Option<u64> {
    let dir = subject.dir.as_ref()?;
    let text = std::fs::read(dir.path().join("audit.jsonl")).ok()?;
    Some(u64::try_from(text.iter().filter(|&&b| b == b'\n').count()).unwrap_or(u64::MAX))
}
