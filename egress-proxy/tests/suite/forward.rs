//! Forwarding: hop-by-hop stripping both ways, upstream reuse, streaming, audit lines, metrics.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::support::{Env, Opts};

#[tokio::test]
async fn hop_by_hop_and_proxy_headers_are_stripped() {
    let env = Env::start().await;
    let p = env.up.port();
    let raw = format!(
        "GET http://public.test:{p}/hop HTTP/1.1\r\n\
         Connection: close, X-Named-Hop\r\n\
         X-Named-Hop: secret\r\n\
         Keep-Alive: timeout=5\r\n\
         TE: trailers\r\n\
         Trailer: X-T\r\n\
         Upgrade: websocket\r\n\
         Proxy-Authorization: Basic c2VjcmV0\r\n\
         Proxy-Connection: keep-alive\r\n\
         Proxy-Anything: 1\r\n\
         X-End-To-End: kept\r\n\r\n"
    );
    let r = env.send(&raw).await;
    assert_eq!(r.status, 200);
    let seen = &env.up.seen()[0];
    for h in [
        "connection",
        "x-named-hop",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "proxy-authorization",
        "proxy-connection",
        "proxy-anything",
    ] {
        assert!(
            seen.header(h).is_none(),
            "{h} forwarded: {:?}",
            seen.headers
        );
    }
    assert_eq!(seen.header("x-end-to-end"), Some("kept"));
    // Response side.
    assert!(r.header("x-secret-hop").is_none(), "{:?}", r.headers);
    assert!(r.header("proxy-authenticate").is_none());
    assert!(r.header("keep-alive").is_none());
    assert_eq!(r.header("x-end-to-end"), Some("kept"));
    env.stop().await;
}

#[tokio::test]
async fn upstream_reused_per_host_and_revalidated_on_switch() {
    let env = Env::start().await;
    let p = env.up.port();
    let mut s = TcpStream::connect(env.addr).await.unwrap();
    let mut buf = vec![0u8; 4096];
    for host in [
        "public.test",
        "public.test",
        "api.github.test",
        "api.github.test",
    ] {
        s.write_all(format!("GET http://{host}:{p}/ HTTP/1.1\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let n = s.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    }
    // Same host: one connection; a new host: a new, freshly validated connection.
    assert_eq!(env.up.connection_count(), 2);
    // Switching to a private name on the same client connection is still denied.
    s.write_all(format!("GET http://private.test:{p}/ HTTP/1.1\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 403"));
    env.stop().await;
}

#[tokio::test]
async fn large_bodies_stream_and_audit_counts_bytes() {
    let env = Env::start().await;
    let p = env.up.port();
    let n = 3 * 1024 * 1024;
    let r = env.get(&format!("http://public.test:{p}/big?n={n}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), n);
    let body = "y".repeat(100_000);
    let r = env
        .send(&format!(
            "GET http://public.test:{p}/echo HTTP/1.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ))
        .await;
    assert_eq!(r.body.len(), 100_000);
    let lines = env.audit_lines(2).await;
    let big = lines
        .iter()
        .find(|l| l["bytes_down"] == n)
        .expect("big line");
    assert_eq!(big["verdict"], "allow");
    assert_eq!(big["rule"], "read_public");
    let echo = lines
        .iter()
        .find(|l| l["bytes_up"] == 100_000)
        .expect("echo line");
    assert_eq!(echo["bytes_down"], 100_000);
    env.stop().await;
}

#[tokio::test]
async fn audit_line_has_every_field() {
    let env = Env::start().await;
    let p = env.up.port();
    let r = env.get(&format!("http://public.test:{p}/")).await;
    assert_eq!(r.status, 200);
    let r = env.get("http://169.254.169.254/").await;
    assert_eq!(r.status, 403);
    let lines = env.audit_lines(2).await;
    let allow = lines.iter().find(|l| l["verdict"] == "allow").unwrap();
    for key in [
        "ts",
        "run",
        "client",
        "method",
        "scheme",
        "host",
        "port",
        "resolved_ip",
        "rule",
        "verdict",
        "bytes_up",
        "bytes_down",
        "duration_ms",
    ] {
        assert!(allow.get(key).is_some(), "missing {key} in {allow}");
    }
    assert!(allow["run"].is_null());
    assert!(allow["client"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert_eq!(allow["method"], "GET");
    assert_eq!(allow["scheme"], "http");
    assert_eq!(allow["host"], "public.test");
    assert_eq!(allow["port"], p);
    assert_eq!(allow["resolved_ip"], "127.0.0.2");
    assert_eq!(allow["bytes_down"], 5);
    let deny = lines.iter().find(|l| l["verdict"] == "deny").unwrap();
    assert_eq!(deny["rule"], "cloud_metadata");
    assert_eq!(deny["host"], "169.254.169.254");
    assert!(deny["resolved_ip"].is_null());
    env.stop().await;
}

#[tokio::test]
async fn metrics_on_the_admin_listener() {
    let env = Env::start_with(Opts {
        admin: true,
        ..Opts::default()
    })
    .await;
    let p = env.up.port();
    env.get(&format!("http://public.test:{p}/")).await;
    env.get("http://169.254.169.254/").await;
    let admin = env.handle().admin_addr().unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut s = TcpStream::connect(admin).await.unwrap();
    let r = super::support::exchange(
        &mut s,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(
        text.contains("paddock_egress_requests_total{verdict=\"allow\",rule=\"read_public\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("paddock_egress_requests_total{verdict=\"deny\",rule=\"cloud_metadata\"} 1"),
        "{text}"
    );
    assert!(text.contains("paddock_egress_active_connections"));
    assert!(
        text.contains("paddock_egress_bytes_total{direction=\"down\"} 5"),
        "{text}"
    );
    // The proxy port does not serve metrics.
    let r = env
        .send("GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(r.status, 400);
    env.stop().await;
}

#[tokio::test]
async fn upstream_closing_kept_alive_connections_is_not_an_error() {
    let env = Env::start().await;
    // An upstream on the stand-in address that answers one request per connection and then
    // closes without saying so.
    let l = tokio::net::TcpListener::bind("127.0.0.2:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let a = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut c, _)) = l.accept().await else {
                return;
            };
            a.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = c.read(&mut buf).await;
                let _ = c
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await;
            });
        }
    });
    // The port is not in allowed_ports of the standard env, so use a dedicated config.
    let toml = format!(
        "listen = \"127.0.0.1:0\"\n[resolver]\nnameservers = [\"{}\"]\n[policy]\nallowed_ports = [{port}]\nallow_ranges = [\"127.0.0.2/32\"]\n[audit]\npath = {:?}\n",
        env.dns.addr,
        env.audit.display().to_string()
    );
    let cfg = paddock_egress::Config::from_toml(&toml)
        .unwrap()
        .validate()
        .unwrap();
    let proxy = paddock_egress::Proxy::start(cfg).await.unwrap();
    let mut s = TcpStream::connect(proxy.local_addr().unwrap())
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    for i in 0..5 {
        s.write_all(format!("GET http://public.test:{port}/ HTTP/1.1\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let n = s.read(&mut buf).await.unwrap();
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(text.starts_with("HTTP/1.1 200"), "request {i}: {text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 5);
    proxy.shutdown(Duration::from_secs(1)).await;
    env.stop().await;
}
