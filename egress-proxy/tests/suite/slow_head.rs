//! Request heads that arrive in pieces: the connection waits for its first head before the
//! HTTP parser is set up, so the pieces must reach the framing guard and the parser unchanged,
//! the header read deadline must cover the whole wait (not each piece), and a split smuggling
//! shape is still refused.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::support::{Env, Opts, parse_response};

async fn send_in_pieces(env: &Env, pieces: &[&[u8]], gap: Duration) -> (Vec<u8>, Duration) {
    let mut s = TcpStream::connect(env.addr).await.unwrap();
    let t0 = Instant::now();
    for p in pieces {
        if s.write_all(p).await.is_err() {
            break;
        }
        s.flush().await.unwrap();
        tokio::time::sleep(gap).await;
    }
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    (buf, t0.elapsed())
}

#[tokio::test]
async fn head_sent_byte_by_byte_is_served() {
    let env = Env::start().await;
    let h = format!("public.test:{}", env.up.port());
    let raw = format!("GET http://{h}/split HTTP/1.1\r\nHost: {h}\r\nConnection: close\r\n\r\n");
    let pieces: Vec<&[u8]> = raw.as_bytes().chunks(1).collect();
    let (buf, _) = send_in_pieces(&env, &pieces, Duration::from_millis(1)).await;
    let r = parse_response(&buf);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&buf));
    assert!(env.up.seen().iter().any(|s| s.uri == "/split"));
    env.stop().await;
}

#[tokio::test]
async fn smuggling_shape_split_across_writes_is_refused() {
    let env = Env::start().await;
    let h = format!("public.test:{}", env.up.port());
    let head =
        format!("GET http://{h}/smuggle HTTP/1.1\r\nHost: {h}\r\nContent-Length: 5\r\nTransfer-En");
    let rest = b"coding: chunked\r\n\r\n0\r\n\r\nGET http://public.test/second HTTP/1.1\r\n\r\n";
    let (buf, _) = send_in_pieces(&env, &[head.as_bytes(), rest], Duration::from_millis(30)).await;
    let r = parse_response(&buf);
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&buf));
    assert!(
        env.up
            .seen()
            .iter()
            .all(|s| s.uri != "/smuggle" && s.uri != "/second"),
        "nothing forwarded"
    );
    // Neighbour: the same body, framed only by Content-Length and split the same way, passes.
    let head = format!("GET http://{h}/echo HTTP/1.1\r\nHost: {h}\r\nConnection: clo");
    let rest = b"se\r\nContent-Length: 5\r\n\r\nhello";
    let (buf, _) = send_in_pieces(&env, &[head.as_bytes(), rest], Duration::from_millis(30)).await;
    let r = parse_response(&buf);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&buf));
    assert_eq!(r.body, b"hello");
    env.stop().await;
}

#[tokio::test]
async fn trickled_head_is_cut_at_the_header_deadline() {
    let env = Env::start_with(Opts {
        limits: "header_read_timeout = \"400ms\"".into(),
        ..Opts::default()
    })
    .await;
    // A byte every 50 ms never lets a per-read timer fire; the deadline covers the whole head.
    let slow = b"GET http://public.test/ HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let pieces: Vec<&[u8]> = slow.chunks(1).collect();
    let (buf, took) = send_in_pieces(&env, &pieces, Duration::from_millis(50)).await;
    assert!(
        took < Duration::from_millis(400 + 2500),
        "held for {took:?}"
    );
    let text = String::from_utf8_lossy(&buf);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
    // Neighbour: a head that completes within the deadline, even in pieces, is served.
    let h = format!("public.test:{}", env.up.port());
    let raw = format!("GET http://{h}/ HTTP/1.1\r\nHost: {h}\r\nConnection: close\r\n\r\n");
    let (a, b) = raw.as_bytes().split_at(20);
    let (buf, _) = send_in_pieces(&env, &[a, b], Duration::from_millis(100)).await;
    assert_eq!(
        parse_response(&buf).status,
        200,
        "{}",
        String::from_utf8_lossy(&buf)
    );
    env.stop().await;
}

#[tokio::test]
async fn oversized_head_in_pieces_is_refused_without_waiting() {
    let env = Env::start_with(Opts {
        limits: "max_header_bytes = 16384\nheader_read_timeout = \"20s\"".into(),
        ..Opts::default()
    })
    .await;
    let big = format!(
        "GET http://public.test/ HTTP/1.1\r\nX-Big: {}\r\n",
        "a".repeat(20_000)
    );
    let pieces: Vec<&[u8]> = big.as_bytes().chunks(3000).collect();
    let mut s = TcpStream::connect(env.addr).await.unwrap();
    let t0 = Instant::now();
    for p in &pieces {
        if s.write_all(p).await.is_err() {
            break;
        }
    }
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "waited for the deadline"
    );
    let r = parse_response(&buf);
    assert!(
        r.status == 431 || r.status == 400,
        "{}",
        String::from_utf8_lossy(&buf)
    );
    // Neighbour: a head under the limit is served.
    let h = format!("public.test:{}", env.up.port());
    let ok = format!(
        "GET http://{h}/ HTTP/1.1\r\nHost: {h}\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(8000)
    );
    assert_eq!(env.send(&ok).await.status, 200);
    env.stop().await;
}
