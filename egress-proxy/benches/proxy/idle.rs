//! Idle client connections held open against a proxy, to measure its resident memory.

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::subjects::{ProcStat, proc_stat};

/// What an idle client sends after connecting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Idle {
    /// Connect and send nothing.
    Silent,
    /// Send a request line and one header, never the blank line that ends the head.
    Partial,
}

impl Idle {
    pub fn name(self) -> &'static str {
        match self {
            Idle::Silent => "silent",
            Idle::Partial => "partial head",
        }
    }
}

/// Figures of one idle round.
#[derive(Debug, Default)]
pub struct IdleResult {
    pub wanted: usize,
    pub connected: usize,
    pub connect_failed: usize,
    /// Seconds to open all connections.
    pub open_secs: f64,
    /// The proxy process right after the connections were open and it settled.
    pub loaded: ProcStat,
    /// (seconds since the last connection opened, connections the proxy still held).
    pub alive: Vec<(u64, usize)>,
    /// Listen-queue overflows the kernel counted while the connections were opened.
    pub listen_overflows: u64,
}

/// Connections opened before waiting for the proxy to accept them.
const BATCH: usize = 100;

/// Opens `n` connections to `proxy` in batches, each batch waiting (up to 200 ms) for
/// the proxy to accept it, so that the figure is the proxy's memory rather than the
/// size of its listen queue; reads its memory once its descriptor count settles; then
/// counts the connections still open at each of `checks` (seconds after opening).
/// All connections close when this returns.
pub fn round(
    proxy: SocketAddr,
    upstream: SocketAddr,
    pid: u32,
    n: usize,
    mode: Idle,
    checks: &[u64],
) -> IdleResult {
    let started = Instant::now();
    let overflows_before = listen_overflows();
    let partial = format!("GET http://{upstream}/small HTTP/1.1\r\nHost: {upstream}\r\n");
    let base_fds = proc_stat(pid).map(|p| p.fds).unwrap_or(0);
    let mut streams = Vec::with_capacity(n);
    let mut failed = 0usize;
    while streams.len() + failed < n {
        let batch = BATCH.min(n - streams.len() - failed);
        for _ in 0..batch {
            match TcpStream::connect_timeout(&proxy, Duration::from_secs(3)) {
                Ok(mut s) => {
                    if mode == Idle::Partial && s.write_all(partial.as_bytes()).is_err() {
                        failed += 1;
                        continue;
                    }
                    streams.push(s);
                }
                Err(_) => failed += 1,
            }
        }
        let want = base_fds + u64::try_from(streams.len()).unwrap_or(u64::MAX);
        let limit = Instant::now() + Duration::from_millis(200);
        while Instant::now() < limit && proc_stat(pid).map(|p| p.fds).unwrap_or(0) < want {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let opened_at = Instant::now();
    let open_secs = started.elapsed().as_secs_f64();
    let listen_overflows = listen_overflows().saturating_sub(overflows_before);
    let loaded = settle(pid);
    let mut alive = Vec::new();
    for &at in checks {
        let when = opened_at + Duration::from_secs(at);
        if let Some(wait) = when.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let count = streams.iter_mut().map(is_open).filter(|&open| open).count();
        alive.push((at, count));
    }
    IdleResult {
        wanted: n,
        connected: streams.len(),
        connect_failed: failed,
        open_secs,
        loaded,
        alive,
        listen_overflows,
    }
}

/// The kernel's count of connections dropped because a listen queue was full
/// (TcpExt ListenOverflows, machine-wide).
pub fn listen_overflows() -> u64 {
    let Ok(text) = std::fs::read_to_string("/proc/net/netstat") else {
        return 0;
    };
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(name, _)| *name == "ListenOverflows")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// Waits until the proxy's descriptor count has not moved for a second (at most 15 s).
fn settle(pid: u32) -> ProcStat {
    let limit = Instant::now() + Duration::from_secs(15);
    let mut last = proc_stat(pid).unwrap_or_default();
    let mut still_since = Instant::now();
    while Instant::now() < limit {
        std::thread::sleep(Duration::from_millis(200));
        let now = proc_stat(pid).unwrap_or_default();
        if now.fds != last.fds {
            still_since = Instant::now();
        } else if still_since.elapsed() >= Duration::from_secs(1) {
            return now;
        }
        last = now;
    }
    last
}

/// True while the peer has neither closed nor reset the connection. A proxy that
/// answered (say, 408) and then closed counts as closed once the close arrives.
fn is_open(stream: &mut TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return false;
    }
    let mut buf = [0u8; 512];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return false,
            Ok(_) => {}
            Err(err) if err.kind() == ErrorKind::WouldBlock => return true,
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}
