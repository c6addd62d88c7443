//! Interception and the credential broker, end to end through a run's own socket: the real key
//! reaches the upstream and nothing else; the sandbox side only ever sees the handle.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::runs_support::{
    RunEnv, client_config, connect_on, intercepted, intercepted_tls, request,
};
use super::support::exchange;

const REAL: &str = "sk-ant-api03-REALSECRETVALUE0123456789abcdef";
const GH_REAL: &str = "ghp_REALGITHUBTOKEN0123456789abcdefghij";

fn grants() -> serde_json::Value {
    serde_json::json!({"credentials": [
        {"name": "ANTHROPIC_API_KEY", "secret": REAL,
         "hosts": ["api.anthropic.test"], "headers": ["x-api-key"]},
        {"name": "GH_TOKEN", "secret": GH_REAL,
         "hosts": ["plain.test"], "headers": ["authorization"]},
    ]})
}

#[tokio::test]
async fn the_real_key_arrives_only_upstream() {
    let env = RunEnv::start().await;
    let run = env.register("r-key", grants()).await;
    let handle = run.handle("ANTHROPIC_API_KEY");
    assert!(handle.starts_with("pdk_h_"));
    assert!(!run.ca_pem.contains(REAL));
    let port = env.https.port();
    let host = format!("api.anthropic.test:{port}");
    let mut c = intercepted(&run.socket, "api.anthropic.test", port, &run.ca_pem)
        .await
        .unwrap();
    // An approved write over intercepted HTTPS with the handle in its allowed header.
    let got = request(
        &mut c,
        "POST",
        &host,
        "/echo-headers",
        &[("x-api-key", &handle), ("accept-encoding", "gzip")],
        "{\"prompt\":\"hi\"}",
    )
    .await;
    assert_eq!(got.status, 200, "{got:?}");
    let seen = env.https.seen();
    let last = seen.last().unwrap();
    assert_eq!(
        last.header("x-api-key"),
        Some(REAL),
        "the upstream gets the secret"
    );
    assert!(
        !env.https.all_seen_text().contains(&handle),
        "no handle upstream"
    );
    // The upstream echoed the key in a header and in the body: both come back masked.
    let text = got.all_text();
    assert!(!text.contains(REAL), "{text}");
    assert!(text.contains("x-echo-x-api-key"), "{text}");
    // Keep-alive: a second request on the same intercepted connection.
    let again = request(&mut c, "GET", &host, "/plain", &[], "").await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body, "ok GET /plain");

    // Plain HTTP on the run socket: the GitHub handle in Authorization to plain.test.
    let gh = run.handle("GH_TOKEN");
    let mut s = UnixStream::connect(&run.socket).await.unwrap();
    let plain_port = env.plain.port();
    let raw = format!(
        "GET http://plain.test:{plain_port}/ HTTP/1.1\r\nHost: plain.test:{plain_port}\r\nAuthorization: Bearer {gh}\r\nConnection: close\r\n\r\n"
    );
    let resp = exchange(&mut s, raw.as_bytes()).await;
    assert_eq!(resp.status, 200);
    let seen = env.plain.seen();
    assert_eq!(
        seen.last().unwrap().header("authorization"),
        Some(format!("Bearer {GH_REAL}").as_str())
    );

    // Never in the audit stream.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let audit = env.audit_text();
    assert!(!audit.contains(REAL) && !audit.contains(GH_REAL));
    assert!(audit.contains("\"verdict\":\"intercept\""), "{audit}");
    env.stop().await;
}

#[tokio::test]
async fn a_handle_out_of_place_is_refused_before_it_leaves() {
    let env = RunEnv::start().await;
    let run = env.register("r-misuse", grants()).await;
    let handle = run.handle("ANTHROPIC_API_KEY");
    let port = env.https.port();
    let other = format!("other.test:{port}");
    let mut c = intercepted(&run.socket, "other.test", port, &run.ca_pem)
        .await
        .unwrap();
    // The neighbour: the same read without the handle passes.
    let ok = request(&mut c, "GET", &other, "/x", &[], "").await;
    assert_eq!(ok.status, 200);
    // The handle sent to another host.
    let got = request(&mut c, "GET", &other, "/x", &[("x-api-key", &handle)], "").await;
    assert_eq!(got.status, 403);
    assert_eq!(got.rule(), "handle_wrong_host");
    let mut c = intercepted(&run.socket, "api.anthropic.test", port, &run.ca_pem)
        .await
        .unwrap();
    let host = format!("api.anthropic.test:{port}");
    // In the URL, in a header it may not use, in the body.
    let got = request(&mut c, "GET", &host, &format!("/q?k={handle}"), &[], "").await;
    assert_eq!(got.rule(), "handle_in_url");
    let mut c = intercepted(&run.socket, "api.anthropic.test", port, &run.ca_pem)
        .await
        .unwrap();
    let got = request(&mut c, "GET", &host, "/", &[("x-other", &handle)], "").await;
    assert_eq!(got.rule(), "handle_wrong_header");
    let mut c = intercepted(&run.socket, "api.anthropic.test", port, &run.ca_pem)
        .await
        .unwrap();
    let body = format!("{{\"exfil\":\"{handle}\"}}");
    let got = request(&mut c, "POST", &host, "/v1/messages", &[], &body).await;
    assert_eq!(got.status, 403, "{got:?}");
    assert_eq!(got.rule(), "handle_in_body");
    // The neighbour of the body check: a clean body passes.
    let mut c = intercepted(&run.socket, "api.anthropic.test", port, &run.ca_pem)
        .await
        .unwrap();
    let got = request(&mut c, "POST", &host, "/v1/messages", &[], "{\"a\":1}").await;
    assert_eq!(got.status, 200);
    assert!(
        !env.https.all_seen_text().contains(&handle),
        "a handle reached an upstream"
    );
    let totals = env
        .control(r#"{"version":1,"op":{"kind":"totals","run":"r-misuse"}}"#)
        .await;
    assert_eq!(totals["totals"]["security_events"], 4, "{totals}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let audit = env.audit_text();
    let events = audit
        .lines()
        .filter(|l| l.contains("\"security_event\":true"))
        .count();
    assert_eq!(events, 4, "{audit}");
    env.stop().await;
}

/// A handle split across two chunks of a streamed body, the second sent only after the first
/// could have gone upstream: the request is refused and no byte of the handle (not even its
/// first half) reaches the upstream. The neighbour: the same streamed body without a handle
/// arrives whole.
#[tokio::test]
async fn no_part_of_a_handle_split_across_body_chunks_leaves() {
    let env = RunEnv::start().await;
    let run = env.register("r-split", grants()).await;
    let handle = run.handle("ANTHROPIC_API_KEY");
    let port = env.https.port();
    let pad = "p".repeat(400);
    let cut = handle.len() / 2;
    let chunks = |secret: &str| {
        (
            format!("{{\"pad\":\"{pad}\",\"exfil\":\"{}", &secret[..cut]),
            format!("{}\"}}", &secret[cut..]),
        )
    };
    for (name, value, refused) in [
        ("handle", handle.clone(), true),
        ("clean", "x".repeat(handle.len()), false),
    ] {
        let (first, second) = chunks(&value);
        let (status, body) = streamed_post(&run, port, &first, &second).await;
        if refused {
            assert_eq!(status, 403, "{name}: {body}");
            assert!(body.contains("handle_in_body"), "{name}: {body}");
        } else {
            assert_eq!(status, 200, "{name}: {body}");
        }
    }
    let seen = env.https.all_seen_text();
    assert!(
        !seen.contains(&handle[..cut]),
        "part of a handle went upstream: {seen}"
    );
    assert!(
        !seen.contains("pdk_"),
        "a handle prefix went upstream: {seen}"
    );
    let clean = format!(
        "{}{}",
        chunks(&"x".repeat(handle.len())).0,
        chunks(&"x".repeat(handle.len())).1
    );
    assert!(
        seen.contains(&clean),
        "the clean body arrived whole: {seen}"
    );
    env.stop().await;
}

/// POSTs a chunked body to `api.anthropic.test` (writes approved) through an intercepted connection: `first`, a pause
/// long enough for it to go upstream, then `second`. Answers the status and the body.
async fn streamed_post(
    run: &super::runs_support::Registered,
    port: u16,
    first: &str,
    second: &str,
) -> (u16, String) {
    let mut tls = intercepted_tls(&run.socket, "api.anthropic.test", port, &run.ca_pem)
        .await
        .unwrap();
    let head = format!(
        "POST /upload HTTP/1.1\r\nhost: api.anthropic.test:{port}\r\ntransfer-encoding: chunked\r\n\
         content-type: application/json\r\nconnection: close\r\n\r\n"
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(format!("{:x}\r\n{first}\r\n", first.len()).as_bytes())
        .await
        .unwrap();
    tls.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    // The proxy may already have answered and closed: later writes may fail.
    let _ = tls
        .write_all(format!("{:x}\r\n{second}\r\n0\r\n\r\n", second.len()).as_bytes())
        .await;
    let _ = tls.flush().await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[tokio::test]
async fn writes_are_judged_inside_intercepted_tls() {
    let env = RunEnv::start().await;
    let run = env.register("r-writes", serde_json::json!({})).await;
    let port = env.https.port();
    let mut c = intercepted(&run.socket, "other.test", port, &run.ca_pem)
        .await
        .unwrap();
    let other = format!("other.test:{port}");
    let got = request(&mut c, "POST", &other, "/upload", &[], "data").await;
    assert_eq!(got.status, 403);
    assert_eq!(got.rule(), "write_not_approved");
    // A refused request with a body closes its connection (the body was not read).
    let mut c = intercepted(&run.socket, "other.test", port, &run.ca_pem)
        .await
        .unwrap();
    let got = request(&mut c, "GET", &other, "/read", &[], "").await;
    assert_eq!(got.status, 200, "a read to the same host passes");
    let mut c = intercepted(&run.socket, "api.anthropic.test", port, &run.ca_pem)
        .await
        .unwrap();
    let host = format!("api.anthropic.test:{port}");
    let got = request(&mut c, "POST", &host, "/upload", &[], "data").await;
    assert_eq!(got.status, 200, "an approved write passes");
    let posts = env
        .https
        .seen()
        .iter()
        .filter(|s| s.method == "POST")
        .count();
    assert_eq!(posts, 1, "only the approved write reached an upstream");
    // A request inside the tunnel may not name another origin.
    let got = request(&mut c, "GET", &other, "/", &[], "").await;
    assert_eq!(got.status, 400);
    env.stop().await;
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_run_ca_fails_closed() {
    let env = RunEnv::start().await;
    let run = env.register("r-trust", serde_json::json!({})).await;
    let port = env.https.port();
    let before = env
        .https
        .connections
        .load(std::sync::atomic::Ordering::SeqCst);
    // Trusting only the upstream's real CA (as if the agent ignored the run CA).
    let err = intercepted(&run.socket, "api.anthropic.test", port, &env.https.ca_pem).await;
    assert!(err.is_err(), "the handshake must fail");
    // SNI naming another host than the CONNECT target is refused too.
    let mut s = UnixStream::connect(&run.socket).await.unwrap();
    assert_eq!(
        connect_on(&mut s, &format!("api.anthropic.test:{port}")).await,
        200
    );
    let connector =
        tokio_rustls::TlsConnector::from(std::sync::Arc::new(client_config(&run.ca_pem)));
    let name = rustls::pki_types::ServerName::try_from("other.test").unwrap();
    assert!(connector.connect(name, s).await.is_err());
    assert_eq!(
        env.https
            .connections
            .load(std::sync::atomic::Ordering::SeqCst),
        before,
        "nothing reached the upstream"
    );
    // The neighbour: trusting the run CA works.
    let mut c = intercepted(&run.socket, "api.anthropic.test", port, &run.ca_pem)
        .await
        .unwrap();
    let got = request(
        &mut c,
        "GET",
        &format!("api.anthropic.test:{port}"),
        "/",
        &[],
        "",
    )
    .await;
    assert_eq!(got.status, 200);
    env.stop().await;
}

#[tokio::test]
async fn a_streaming_response_arrives_before_the_upstream_finishes() {
    let env = RunEnv::start().await;
    // A run holding a secret, so the response passes the stream scrubber too.
    let run = env.register("r-stream", grants()).await;
    let port = env.https.port();
    let mut c = intercepted(&run.socket, "api.anthropic.test", port, &run.ca_pem)
        .await
        .unwrap();
    let req = hyper::Request::builder()
        .method("GET")
        .uri("/gated")
        .header("host", format!("api.anthropic.test:{port}"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let resp = c.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    use http_body_util::BodyExt;
    // The first event must arrive while the upstream is still holding the rest back.
    let first = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("the first event did not stream through")
        .unwrap()
        .unwrap();
    assert_eq!(first.into_data().unwrap(), "data: first\n\n");
    env.https.release.notify_one();
    let rest = tokio::time::timeout(Duration::from_secs(5), body.collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    assert_eq!(rest, "data: last\n\n");
    env.stop().await;
}

#[tokio::test]
async fn revoking_a_run_closes_its_tunnels_and_connections() {
    let env = RunEnv::start().await;
    let run = env.register("r-revoke", serde_json::json!({})).await;
    let port = env.https.port();
    // A pass-through tunnel: TLS end to end with the upstream's own CA.
    let mut s = UnixStream::connect(&run.socket).await.unwrap();
    assert_eq!(
        connect_on(&mut s, &format!("registry.npmjs.test:{port}")).await,
        200
    );
    let connector =
        tokio_rustls::TlsConnector::from(std::sync::Arc::new(client_config(&env.https.ca_pem)));
    let name = rustls::pki_types::ServerName::try_from("registry.npmjs.test").unwrap();
    let mut tunnel = connector.connect(name, s).await.unwrap();
    tunnel
        .write_all(b"GET /t HTTP/1.1\r\nHost: registry.npmjs.test\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let n = tunnel.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // An intercepted keep-alive connection.
    let mut c = intercepted(&run.socket, "api.anthropic.test", port, &run.ca_pem)
        .await
        .unwrap();
    let host = format!("api.anthropic.test:{port}");
    assert_eq!(
        request(&mut c, "GET", &host, "/", &[], "").await.status,
        200
    );
    // An idle plain connection.
    let mut idle = UnixStream::connect(&run.socket).await.unwrap();

    let resp = env
        .control(r#"{"version":1,"op":{"kind":"revoke","run":"r-revoke"}}"#)
        .await;
    assert_eq!(resp["status"], "revoked", "{resp}");
    assert!(resp["totals"]["requests"].as_u64().unwrap() >= 2, "{resp}");
    assert!(resp["totals"]["bytes_down"].as_u64().unwrap() > 0, "{resp}");

    let closed = tokio::time::timeout(Duration::from_secs(2), tunnel.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "the tunnel is still open"
    );
    let closed = tokio::time::timeout(Duration::from_secs(2), idle.read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))));
    let ready = tokio::time::timeout(Duration::from_secs(2), c.ready()).await;
    assert!(
        matches!(ready, Ok(Err(_))),
        "the intercepted connection is still open"
    );
    assert!(!run.socket.exists(), "the socket is gone");
    assert!(UnixStream::connect(&run.socket).await.is_err());
    let again = env
        .control(r#"{"version":1,"op":{"kind":"revoke","run":"r-revoke"}}"#)
        .await;
    assert_eq!(again["code"], "unknown_run");
    env.stop().await;
}

#[tokio::test]
async fn the_default_listener_refuses_any_handle_and_serves_its_neighbour() {
    let env = RunEnv::start().await;
    let run = env.register("r-dflt", grants()).await;
    let gh = run.handle("GH_TOKEN");
    let addr = env.proxy.as_ref().unwrap().local_addr().unwrap();
    let port = env.plain.port();
    let send = |auth: Option<String>| async move {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let auth = auth.map_or(String::new(), |a| format!("Authorization: Bearer {a}\r\n"));
        let raw = format!(
            "GET http://plain.test:{port}/ HTTP/1.1\r\nHost: plain.test:{port}\r\n{auth}Connection: close\r\n\r\n"
        );
        exchange(&mut s, raw.as_bytes()).await
    };
    // A run's handle means nothing on the default listener: refused, never forwarded.
    let resp = send(Some(gh.clone())).await;
    assert_eq!(resp.status, 403);
    assert_eq!(resp.rule(), "handle_unknown");
    assert!(
        env.plain
            .seen()
            .iter()
            .all(|s| s.header("authorization").is_none())
    );
    let resp = send(None).await;
    assert_eq!(resp.status, 200);
    env.stop().await;
}
