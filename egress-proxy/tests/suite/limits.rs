//! Connection limits and timeouts.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::support::{Env, Opts, parse_response};

/// Sends a CONNECT on a new connection and reads its response head; the stream and status.
async fn open_connect(env: &Env, target: &str) -> (TcpStream, u16) {
    let mut s = TcpStream::connect(env.addr).await.unwrap();
    s.write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut byte)).await {
            Ok(Ok(1)) => buf.push(byte[0]),
            _ => break,
        }
    }
    let status = parse_response(&buf).status;
    (s, status)
}

/// A CONNECT hands its connection to a tunnel or an intercepted session: the connection's
/// slot under `max_connections_per_client` must stay taken until that ends.
async fn connect_holds_its_slot(target: impl Fn(&Env) -> String) {
    let env = Env::start_with(Opts {
        limits: "max_connections = 10\nmax_connections_per_client = 2".into(),
        ..Opts::default()
    })
    .await;
    let (a, status) = open_connect(&env, &target(&env)).await;
    assert_eq!(status, 200);
    let (_b, status) = open_connect(&env, &target(&env)).await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Both tunnels are open: a third connection from the same client is refused.
    let mut c = TcpStream::connect(env.addr).await.unwrap();
    let r = parse_response(&read_all(&mut c, Duration::from_secs(2)).await);
    assert_eq!(r.status, 429, "{}", String::from_utf8_lossy(&r.raw));
    drop(c);
    // Closing one tunnel gives its slot back.
    drop(a);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_d, status) = open_connect(&env, &target(&env)).await;
    assert_eq!(status, 200);
    env.stop().await;
}

#[tokio::test]
async fn a_connect_tunnel_keeps_its_connection_slot() {
    connect_holds_its_slot(|env| format!("registry.npmjs.test:{}", env.up.port())).await;
}

#[tokio::test]
async fn an_intercepted_session_keeps_its_connection_slot() {
    connect_holds_its_slot(|env| format!("public.test:{}", env.up.port())).await;
}

/// Reads a chunked response until the proxy closes; the bytes and how long it took.
async fn read_stream(s: &mut TcpStream) -> (String, Duration) {
    let t0 = Instant::now();
    let buf = read_all(s, Duration::from_secs(8)).await;
    (String::from_utf8_lossy(&buf).into_owned(), t0.elapsed())
}

#[tokio::test]
async fn a_silent_upstream_body_is_cut_but_a_trickle_is_not() {
    let env = Env::start_with(Opts {
        limits: "body_idle_timeout = \"600ms\"".into(),
        ..Opts::default()
    })
    .await;
    let p = env.up.port();
    // Head and one chunk, then nothing: cut after the idle timeout.
    let mut s = TcpStream::connect(env.addr).await.unwrap();
    s.write_all(
        format!("GET http://public.test:{p}/stall HTTP/1.1\r\nHost: public.test:{p}\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let (text, took) = read_stream(&mut s).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("first;"), "{text}");
    assert!(!text.contains("late;"), "{text}");
    assert!(
        !text.ends_with("0\r\n\r\n"),
        "the body must not look complete: {text}"
    );
    assert!(took < Duration::from_secs(4), "cut after {took:?}");
    let lines = env.audit_lines(1).await;
    assert!(
        lines
            .iter()
            .any(|l| l["host"] == "public.test" && l["bytes_down"] == 6),
        "{lines:?}"
    );
    // The neighbour: a stream that keeps making progress (8 chunks, 200 ms apart: 1.6 s in
    // all, longer than the idle timeout) is relayed whole.
    let mut s = TcpStream::connect(env.addr).await.unwrap();
    s.write_all(format!("GET http://public.test:{p}/trickle HTTP/1.1\r\nHost: public.test:{p}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let (text, took) = read_stream(&mut s).await;
    for i in 0..8 {
        assert!(text.contains(&format!("tick{i};")), "{text}");
    }
    assert!(text.ends_with("0\r\n\r\n"), "{text}");
    assert!(took > Duration::from_millis(1200), "{took:?}");
    env.stop().await;
}

/// Sends `n` requests one after the other on one kept-alive connection; the statuses of those
/// answered before the proxy closed it, and whether the last answer announced the close.
async fn on_one_connection(env: &Env, method: &str, uri: &str, n: usize) -> (Vec<u16>, bool) {
    let s = TcpStream::connect(env.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(s))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut statuses = Vec::new();
    let mut closed = false;
    for _ in 0..n {
        if sender.ready().await.is_err() {
            break;
        }
        let req = hyper::Request::builder()
            .method(method)
            .uri(uri)
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let Ok(resp) = sender.send_request(req).await else {
            break;
        };
        closed = resp
            .headers()
            .get("connection")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        statuses.push(resp.status().as_u16());
        let _ = http_body_util::BodyExt::collect(resp.into_body()).await;
    }
    (statuses, closed)
}

#[tokio::test]
async fn a_connection_is_closed_after_its_share_of_denials() {
    let env = Env::start().await;
    let p = env.up.port();
    // Writes to a host without write approval, again and again on one connection.
    let (statuses, closed) =
        on_one_connection(&env, "POST", &format!("http://public.test:{p}/"), 100).await;
    assert_eq!(statuses.len(), 32, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 403), "{statuses:?}");
    assert!(closed, "the last denial announces the close");
    assert_eq!(env.up.connection_count(), 0);
    // The neighbour: allowed requests on one connection are not counted.
    let (statuses, closed) =
        on_one_connection(&env, "GET", &format!("http://public.test:{p}/"), 40).await;
    assert_eq!(statuses.len(), 40);
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert!(!closed);
    env.stop().await;
}

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
