//! The loopback relay: each TCP connection to the listen address is joined to a fresh connection
//! to the run's proxy Unix socket, bytes copied both ways until either side closes.
//!
//! It parses nothing: the proxy sees exactly what the agent sent and decides. If the socket is
//! unreachable the TCP connection is closed, so the agent has no network at all (fail closed).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;

use tracing::{debug, info, warn};

use crate::InitError;

/// Binds the listener (before the agent starts, so its first connection finds it).
///
/// # Errors
/// [`InitError::Relay`] when the address cannot be bound.
pub fn bind(listen: SocketAddr) -> Result<TcpListener, InitError> {
    TcpListener::bind(listen).map_err(|source| InitError::Relay {
        what: format!("bind {listen}"),
        source,
    })
}

/// Serves the listener on a background thread.
///
/// # Errors
/// [`InitError::Relay`] when the thread cannot be started.
pub fn spawn(
    listener: TcpListener,
    proxy_socket: PathBuf,
    max_connections: u32,
) -> Result<thread::JoinHandle<()>, InitError> {
    let addr = listener.local_addr().ok();
    info!(listen = ?addr, proxy_socket = %proxy_socket.display(), "relay listening");
    thread::Builder::new()
        .name("relay".into())
        .spawn(move || serve(&listener, &proxy_socket, max_connections))
        .map_err(|source| InitError::Relay {
            what: "spawn thread".into(),
            source,
        })
}

struct Slot(Arc<AtomicU32>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn serve(listener: &TcpListener, proxy_socket: &Path, max_connections: u32) {
    let active = Arc::new(AtomicU32::new(0));
    for conn in listener.incoming() {
        let tcp = match conn {
            Ok(tcp) => tcp,
            Err(e) => {
                warn!(error = %e, "relay accept failed");
                continue;
            }
        };
        if active.fetch_add(1, Ordering::SeqCst) >= max_connections {
            active.fetch_sub(1, Ordering::SeqCst);
            warn!(max_connections, "relay connection refused: limit reached");
            continue;
        }
        let slot = Slot(Arc::clone(&active));
        let socket = proxy_socket.to_path_buf();
        let started = thread::Builder::new()
            .name("relay-conn".into())
            .spawn(move || {
                if let Err(e) = join(tcp, &socket) {
                    debug!(error = %e, "relay connection ended with an error");
                }
                drop(slot);
            });
        if let Err(e) = started {
            warn!(error = %e, "relay could not start a connection thread");
        }
    }
}

fn join(tcp: TcpStream, proxy_socket: &Path) -> io::Result<()> {
    let unix = match UnixStream::connect(proxy_socket) {
        Ok(u) => u,
        Err(e) => {
            warn!(error = %e, proxy_socket = %proxy_socket.display(), "proxy socket unreachable; connection closed");
            let _ = tcp.shutdown(Shutdown::Both);
            return Err(e);
        }
    };
    let _ = tcp.set_nodelay(true);
    let tcp_read = tcp.try_clone()?;
    let unix_write = unix.try_clone()?;
    let upstream = thread::Builder::new()
        .name("relay-up".into())
        .spawn(move || copy(tcp_read, unix_write))?;
    let down = copy(unix, tcp);
    let up = upstream.join().unwrap_or(Ok(()));
    down.and(up)
}

/// Copies until EOF, then half-closes the writer so the other side sees the end.
fn copy<R, W>(mut from: R, mut to: W) -> io::Result<()>
where
    R: Read + Shutdownable,
    W: Write + Shutdownable,
{
    let result = io::copy(&mut from, &mut to).map(|_| ());
    let _ = to.shutdown_write();
    if result.is_err() {
        let _ = from.shutdown_read();
    }
    result
}

trait Shutdownable {
    fn shutdown_write(&self) -> io::Result<()>;
    fn shutdown_read(&self) -> io::Result<()>;
}

impl Shutdownable for TcpStream {
    fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
    fn shutdown_read(&self) -> io::Result<()> {
        self.shutdown(Shutdown::Read)
    }
}

impl Shutdownable for UnixStream {
    fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
    fn shutdown_read(&self) -> io::Result<()> {
        self.shutdown(Shutdown::Read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn relays_bytes_both_ways_and_closes_when_the_proxy_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("proxy.sock");
        let server = UnixListener::bind(&sock).unwrap();
        let echo = thread::spawn(move || {
            let (mut s, _) = server.accept().unwrap();
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).unwrap();
            s.write_all(b"proxy saw: ").unwrap();
            s.write_all(&buf).unwrap();
        });
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        spawn(listener, sock.clone(), 4).unwrap();

        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"CONNECT example.test:443 HTTP/1.1\r\n\r\n")
            .unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        assert_eq!(out, "proxy saw: CONNECT example.test:443 HTTP/1.1\r\n\r\n");
        echo.join().unwrap();

        // The proxy socket is gone: the relay closes the connection without sending anything.
        std::fs::remove_file(&sock).unwrap();
        let mut c = TcpStream::connect(addr).unwrap();
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out);
        assert!(out.is_empty());
    }
}
