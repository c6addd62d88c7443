//! CONNECT tunnels: allowed to tunnel hosts on tunnel ports only; lifetime limit.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::support::{Env, Opts, parse_response};

async fn connect(env: &Env, target: &str) -> (TcpStream, u16, Vec<u8>) {
    let mut s = TcpStream::connect(env.addr).await.unwrap();
    s.write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    let mut tmp = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut tmp).await.unwrap();
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&tmp[..n]);
    }
    let status = parse_response(&buf).status;
    (s, status, buf)
}

#[tokio::test]
async fn tunnel_to_tunnel_host_works_and_is_audited() {
    let env = Env::start().await;
    let p = env.up.port();
    let (mut s, status, _) = connect(&env, &format!("registry.npmjs.test:{p}")).await;
    assert_eq!(status, 200);
    s.write_all(
        b"GET /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nConnection: close\r\n\r\nping",
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    assert!(String::from_utf8_lossy(&out).ends_with("ping"));
    drop(s);
    let lines = env.audit_lines(1).await;
    let t = lines
        .iter()
        .find(|l| l["verdict"] == "tunnel")
        .expect("tunnel line");
    assert_eq!(t["rule"], "tunnel_host");
    assert_eq!(t["scheme"], "https");
    assert_eq!(t["resolved_ip"], "127.0.0.2");
    assert!(t["bytes_up"].as_u64().unwrap() > 0);
    assert!(t["bytes_down"].as_u64().unwrap() > 0);
    env.stop().await;
}

#[tokio::test]
async fn connect_denials() {
    let env = Env::start_with(Opts {
        extra: "[tls]\nintercept = false\n".into(),
        ..Opts::default()
    })
    .await;
    let p = env.up.port();
    let (_, status, buf) = connect(&env, &format!("public.test:{p}")).await;
    assert_eq!(status, 403);
    assert_eq!(parse_response(&buf).rule(), "connect_not_tunnel_host");
    let (_, status, buf) = connect(&env, "registry.npmjs.test:443").await;
    assert_eq!(status, 403);
    assert_eq!(parse_response(&buf).rule(), "tunnel_port_not_allowed");
    let (_, status, buf) = connect(&env, &format!("127.0.0.1:{}", env.private.port())).await;
    assert_eq!(status, 403);
    assert_eq!(parse_response(&buf).rule(), "denied_address");
    let (_, status, buf) = connect(&env, "169.254.169.254:443").await;
    assert_eq!(status, 403);
    assert_eq!(parse_response(&buf).rule(), "cloud_metadata");
    // A tunnel host whose name turns private is refused at resolution.
    env.dns.set("registry.npmjs.test", &["127.0.0.1"]);
    let (_, status, buf) = connect(&env, &format!("registry.npmjs.test:{p}")).await;
    assert_eq!(status, 403);
    assert_eq!(parse_response(&buf).rule(), "denied_address");
    // A CONNECT without a port is not a valid target.
    let (_, status, _) = connect(&env, "registry.npmjs.test").await;
    assert!(status == 400 || status == 403);
    assert_eq!(env.up.connection_count(), 0);
    assert_eq!(env.private.connection_count(), 0);
    env.stop().await;
}

#[tokio::test]
async fn tunnel_lifetime_is_limited() {
    let env = Env::start_with(Opts {
        limits: "tunnel_max_lifetime = \"700ms\"".into(),
        ..Opts::default()
    })
    .await;
    let p = env.up.port();
    let (mut s, status, _) = connect(&env, &format!("registry.npmjs.test:{p}")).await;
    assert_eq!(status, 200);
    let t0 = Instant::now();
    let mut closed = false;
    // Keep the tunnel busy: only the lifetime limit can close it.
    while t0.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let w = s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let mut tmp = [0u8; 4096];
        let r = tokio::time::timeout(Duration::from_millis(200), s.read(&mut tmp)).await;
        if w.is_err() || matches!(r, Ok(Ok(0)) | Ok(Err(_))) {
            closed = true;
            break;
        }
    }
    assert!(closed, "tunnel still open");
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(5),
        "{took:?}"
    );
    env.stop().await;
}
