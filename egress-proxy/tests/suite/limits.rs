//! Connection limits and timeouts.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::support::{Env, Opts, parse_response};

async fn read_all(s: &mut TcpStream, within: Duration) -> Vec<u8> {
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(within, s.read_to_end(&mut buf)).await;
    buf
}

#[tokio::test]
async fn per_client_connection_limit() {
    let env = Env::start_with(Opts {
        limits: "max_connections = 10\nmax_connections_per_client = 2".into(),
        ..Opts::default()
    })
    .await;
    let a = TcpStream::connect(env.addr).await.unwrap();
    let _b = TcpStream::connect(env.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut c = TcpStream::connect(env.addr).await.unwrap();
    let r = parse_response(&read_all(&mut c, Duration::from_secs(2)).await);
    assert_eq!(r.status, 429);
    // Another client address is not affected.
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind("127.0.0.3:0".parse().unwrap()).unwrap();
    let mut other = sock.connect(env.addr).await.unwrap();
    other
        .write_all(
            format!(
                "GET http://public.test:{}/ HTTP/1.1\r\nConnection: close\r\n\r\n",
                env.up.port()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(
        parse_response(&read_all(&mut other, Duration::from_secs(5)).await).status,
        200
    );
    // Releasing a slot lets the client in again.
    drop(a);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = env
        .get(&format!("http://public.test:{}/", env.up.port()))
        .await;
    assert_eq!(r.status, 200);
    env.stop().await;
}

#[tokio::test]
async fn global_connection_limit() {
    let env = Env::start_with(Opts {
        limits: "max_connections = 2\nmax_connections_per_client = 2".into(),
        ..Opts::default()
    })
    .await;
    let _a = TcpStream::connect(env.addr).await.unwrap();
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind("127.0.0.3:0".parse().unwrap()).unwrap();
    let _b = sock.connect(env.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind("127.0.0.4:0".parse().unwrap()).unwrap();
    let mut c = sock.connect(env.addr).await.unwrap();
    let r = parse_response(&read_all(&mut c, Duration::from_secs(2)).await);
    assert_eq!(r.status, 503);
    env.stop().await;
}

#[tokio::test]
async fn header_read_timeout_closes_slow_clients() {
    let env = Env::start_with(Opts {
        limits: "header_read_timeout = \"300ms\"".into(),
        ..Opts::default()
    })
    .await;
    let mut s = TcpStream::connect(env.addr).await.unwrap();
    s.write_all(b"GET http://public.test/ HTTP/1.1\r\nX-Slow: ")
        .await
        .unwrap();
    let t0 = Instant::now();
    let buf = read_all(&mut s, Duration::from_secs(5)).await;
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(3), "closed after {took:?}");
    let text = String::from_utf8_lossy(&buf);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
    // An idle keep-alive connection is closed too.
    let mut s = TcpStream::connect(env.addr).await.unwrap();
    let t0 = Instant::now();
    read_all(&mut s, Duration::from_secs(5)).await;
    assert!(t0.elapsed() < Duration::from_secs(3));
    // Neighbour: a prompt request is served.
    let r = env
        .get(&format!("http://public.test:{}/", env.up.port()))
        .await;
    assert_eq!(r.status, 200);
    env.stop().await;
}

#[tokio::test]
async fn connect_timeout_is_a_504() {
    let env = Env::start_with(Opts {
        limits: "connect_timeout = \"300ms\"".into(),
        ..Opts::default()
    })
    .await;
    let t0 = Instant::now();
    let r = env
        .get(&format!("http://127.0.0.2:{}/", env.blackhole.addr.port()))
        .await;
    assert_eq!(r.status, 504, "{}", String::from_utf8_lossy(&r.raw));
    assert_eq!(r.json()["reason"], "connect_timeout");
    assert!(t0.elapsed() < Duration::from_secs(3));
    env.stop().await;
}

#[tokio::test]
async fn refused_upstream_is_a_502() {
    let env = Env::start().await;
    // A port nobody listens on at the stand-in address (allowed: the private listener's port
    // number, which is bound on 127.0.0.1 only).
    let r = env
        .get(&format!("http://127.0.0.2:{}/", env.private.port()))
        .await;
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["reason"], "connect_failed");
    env.stop().await;
}

#[tokio::test]
async fn slow_upstream_response_is_a_504() {
    let env = Env::start_with(Opts {
        limits: "idle_timeout = \"500ms\"".into(),
        ..Opts::default()
    })
    .await;
    let r = env
        .get(&format!("http://public.test:{}/slow", env.up.port()))
        .await;
    assert_eq!(r.status, 504);
    assert_eq!(r.json()["reason"], "upstream_response_timeout");
    env.stop().await;
}

#[tokio::test]
async fn request_body_limit() {
    let env = Env::start_with(Opts {
        limits: "max_request_body = 1000".into(),
        ..Opts::default()
    })
    .await;
    let p = env.up.port();
    let big = "z".repeat(2000);
    let r = env
        .send(&format!(
            "GET http://public.test:{p}/echo HTTP/1.1\r\nContent-Length: 2000\r\n\r\n{big}"
        ))
        .await;
    assert_eq!(r.status, 413);
    assert!(
        env.up.seen().is_empty(),
        "declared oversize body refused before connect"
    );
    // Chunked: the stream is cut at the limit; the upstream never gets the whole body.
    let raw = format!(
        "GET http://public.test:{p}/echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n7d0\r\n{big}\r\n0\r\n\r\n"
    );
    let r = env.send(&raw).await;
    assert_eq!(r.status, 413);
    assert!(env.up.seen().iter().all(|s| s.body.len() <= 1000));
    // Neighbour: a body under the limit passes.
    let small = "z".repeat(500);
    let r = env
        .send(&format!("GET http://public.test:{p}/echo HTTP/1.1\r\nContent-Length: 500\r\nConnection: close\r\n\r\n{small}"))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 500);
    env.stop().await;
}
