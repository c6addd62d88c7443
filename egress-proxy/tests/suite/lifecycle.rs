//! The Unix socket listener and graceful shutdown.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use super::support::{Env, Opts, exchange, parse_response};

#[tokio::test]
async fn unix_socket_listener_serves_with_the_same_policy() {
    let env = Env::start_with(Opts {
        unix: true,
        ..Opts::default()
    })
    .await;
    let path = env.handle().unix_path().unwrap().to_owned();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660, "socket mode {mode:o}");
    let p = env.up.port();
    let mut s = UnixStream::connect(&path).await.unwrap();
    let r = exchange(
        &mut s,
        format!("GET http://public.test:{p}/ HTTP/1.1\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200);
    let mut s = UnixStream::connect(&path).await.unwrap();
    let r = exchange(
        &mut s,
        b"GET http://169.254.169.254/ HTTP/1.1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!((r.status, r.rule().as_str()), (403, "cloud_metadata"));
    let lines = env.audit_lines(2).await;
    assert!(
        lines
            .iter()
            .all(|l| l["client"].as_str().unwrap().starts_with("unix:"))
    );
    env.stop().await;
    assert!(!path.exists(), "socket removed at shutdown");
}

#[tokio::test]
async fn stale_socket_is_replaced_and_other_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("egress.sock");
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    let toml = |path: &std::path::Path| {
        format!(
            "listen_unix = {:?}\n[resolver]\nnameservers = [\"127.0.0.1:53\"]\n[audit]\npath = {:?}\n",
            path.display().to_string(),
            dir.path().join("a.log").display().to_string()
        )
    };
    let cfg = paddock_egress::Config::from_toml(&toml(&sock))
        .unwrap()
        .validate()
        .unwrap();
    let h = paddock_egress::Proxy::start(cfg).await.unwrap();
    assert!(UnixStream::connect(&sock).await.is_ok());
    h.shutdown(Duration::from_secs(1)).await;

    let file = dir.path().join("not-a-socket");
    std::fs::write(&file, "keep me").unwrap();
    let cfg = paddock_egress::Config::from_toml(&toml(&file))
        .unwrap()
        .validate()
        .unwrap();
    let err = paddock_egress::Proxy::start(cfg).await.unwrap_err();
    assert!(err.to_string().contains("not a socket"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_and_stops_accepting() {
    let mut env = Env::start().await;
    let p = env.up.port();
    let addr = env.addr;
    let inflight = tokio::spawn(async move {
        let mut s = TcpStream::connect(addr).await.unwrap();
        exchange(
            &mut s,
            format!("GET http://public.test:{p}/slow HTTP/1.1\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let handle = env.proxy.take().unwrap();
    let t0 = Instant::now();
    let stopping = tokio::spawn(handle.shutdown(Duration::from_secs(10)));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown began"
    );
    let r = inflight.await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "slow");
    stopping.await.unwrap();
    assert!(t0.elapsed() < Duration::from_secs(8));
    // The audit line of the in-flight request was flushed.
    let lines = env.audit_lines(1).await;
    assert!(lines.iter().any(|l| l["bytes_down"] == 4));
}

#[tokio::test]
async fn grace_period_bounds_shutdown() {
    let mut env = Env::start().await;
    let p = env.up.port();
    let mut s = TcpStream::connect(env.addr).await.unwrap();
    s.write_all(format!("GET http://public.test:{p}/slow HTTP/1.1\r\n\r\n").as_bytes())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t0 = Instant::now();
    env.proxy
        .take()
        .unwrap()
        .shutdown(Duration::from_millis(300))
        .await;
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut buf)).await;
    assert_ne!(parse_response(&buf).status, 200);
}
