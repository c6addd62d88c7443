//! Request smuggling shapes and malformed heads: 400 (431 for an oversized head), nothing
//! forwarded; the well-formed neighbour passes.

use super::support::Env;

async fn assert_rejected(env: &Env, raw: &str, what: &str) {
    let r = env.send(raw).await;
    assert!(
        r.status == 400 || r.status == 431,
        "{what}: got {} {}",
        r.status,
        String::from_utf8_lossy(&r.raw)
    );
}

#[tokio::test]
async fn framing_conflicts_are_rejected() {
    let env = Env::start().await;
    let p = env.up.port();
    let h = format!("public.test:{p}");
    let cases = [
        (
            "CL then TE",
            format!(
                "GET http://{h}/echo HTTP/1.1\r\nHost: {h}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            ),
        ),
        (
            "TE then CL",
            format!(
                "GET http://{h}/echo HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n"
            ),
        ),
        (
            "duplicate CL, same value",
            format!(
                "GET http://{h}/echo HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nhi"
            ),
        ),
        (
            "duplicate CL, different",
            format!(
                "GET http://{h}/echo HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nhi"
            ),
        ),
        (
            "CL list",
            format!("GET http://{h}/echo HTTP/1.1\r\nContent-Length: 2, 2\r\n\r\nhi"),
        ),
        (
            "CL sign",
            format!("GET http://{h}/echo HTTP/1.1\r\nContent-Length: +2\r\n\r\nhi"),
        ),
        (
            "CL junk",
            format!("GET http://{h}/echo HTTP/1.1\r\nContent-Length: 2x\r\n\r\nhi"),
        ),
        (
            "TE gzip, chunked",
            format!(
                "GET http://{h}/echo HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"
            ),
        ),
        (
            "TE twice",
            format!(
                "GET http://{h}/echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            ),
        ),
        (
            "TE identity",
            format!("GET http://{h}/echo HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n"),
        ),
        (
            "TE with space before colon",
            format!("GET http://{h}/echo HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n"),
        ),
        (
            "obs-fold",
            format!("GET http://{h}/ HTTP/1.1\r\nX-A: b\r\n c\r\n\r\n"),
        ),
        (
            "obs-fold TE",
            format!(
                "GET http://{h}/echo HTTP/1.1\r\nX-A: b\r\n\tTransfer-Encoding: chunked\r\n\r\n"
            ),
        ),
        (
            "origin-form",
            format!("GET / HTTP/1.1\r\nHost: {h}\r\n\r\n"),
        ),
        (
            "host mismatch",
            format!("GET http://{h}/ HTTP/1.1\r\nHost: private.test\r\n\r\n"),
        ),
        (
            "host port mismatch",
            format!("GET http://{h}/ HTTP/1.1\r\nHost: public.test\r\n\r\n"),
        ),
        (
            "duplicate host",
            format!("GET http://{h}/ HTTP/1.1\r\nHost: {h}\r\nHost: {h}\r\n\r\n"),
        ),
        (
            "https absolute-form",
            format!("GET https://{h}/ HTTP/1.1\r\n\r\n"),
        ),
        (
            "bare CR in header",
            format!("GET http://{h}/ HTTP/1.1\r\nX-A: a\rb\r\n\r\n"),
        ),
    ];
    for (what, raw) in &cases {
        assert_rejected(&env, raw, what).await;
    }
    assert!(
        env.up.seen().is_empty(),
        "nothing forwarded: {:?}",
        env.up.seen()
    );
    // The audit stream names the framing reason.
    let lines = env.audit_lines(1).await;
    assert!(
        lines
            .iter()
            .any(|l| l["rule"] == "content_length_with_transfer_encoding")
    );
    env.stop().await;
}

#[tokio::test]
async fn smuggled_second_request_is_never_forwarded() {
    let env = Env::start().await;
    let p = env.up.port();
    let pp = env.private.port();
    // Classic CL.TE: a front end that honours CL would see one request, one that honours
    // TE would see a second request to the private listener.
    let raw = format!(
        "GET http://public.test:{p}/echo HTTP/1.1\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET http://127.0.0.1:{pp}/ HTTP/1.1\r\n\r\n"
    );
    let r = env.send(&raw).await;
    assert_eq!(r.status, 400);
    assert!(!String::from_utf8_lossy(&r.raw).contains("hello"));
    assert!(env.up.seen().is_empty());
    assert_eq!(env.private.connection_count(), 0);
    env.stop().await;
}

#[tokio::test]
async fn oversized_head_is_rejected() {
    let env = Env::start().await;
    let p = env.up.port();
    let big = "a".repeat(70 * 1024);
    let r = env
        .send(&format!(
            "GET http://public.test:{p}/ HTTP/1.1\r\nX-Big: {big}\r\n\r\n"
        ))
        .await;
    assert!(r.status == 431 || r.status == 400, "{}", r.status);
    let many: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
    let r = env
        .send(&format!(
            "GET http://public.test:{p}/ HTTP/1.1\r\n{many}\r\n"
        ))
        .await;
    assert!(r.status == 431 || r.status == 400, "{}", r.status);
    assert!(env.up.seen().is_empty());
    // Neighbour: a large but acceptable head passes.
    let ok = "a".repeat(8 * 1024);
    let r = env
        .send(&format!(
            "GET http://public.test:{p}/ HTTP/1.1\r\nX-Big: {ok}\r\nConnection: close\r\n\r\n"
        ))
        .await;
    assert_eq!(r.status, 200);
    env.stop().await;
}

#[tokio::test]
async fn well_formed_bodies_pass_on_one_keep_alive_connection() {
    let env = Env::start().await;
    let p = env.up.port();
    let h = format!("public.test:{p}");
    // Three requests pipelined on one connection: a sized body, a chunked body, then close.
    let raw = format!(
        "GET http://{h}/echo HTTP/1.1\r\nHost: {h}\r\nContent-Length: 5\r\n\r\nhello\
         GET http://{h}/echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n\
         GET http://{h}/ HTTP/1.1\r\nConnection: close\r\n\r\n"
    );
    let r = env.send(&raw).await;
    assert_eq!(r.status, 200);
    let text = String::from_utf8_lossy(&r.raw);
    assert_eq!(text.matches("HTTP/1.1 200").count(), 3, "{text}");
    let seen = env.up.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0].body, b"hello");
    assert_eq!(seen[1].body, b"abcde");
    assert_eq!(env.up.connection_count(), 1, "upstream connection reused");
    env.stop().await;
}
