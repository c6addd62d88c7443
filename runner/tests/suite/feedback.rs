//! The public feedback ingress: what it accepts, what it refuses, rate limits and signatures.

use paddock::api::feedback::sign;
use paddock::lifecycle::Role;
use serde_json::json;

use super::http::Server;
use crate::api_both;

fn ct() -> (&'static str, String) {
    ("Content-Type", "application/json".to_string())
}

async fn feedback_creates_only_backlog_feedback(s: Server) {
    let (_, k) = s.user("m@example.test", "public", Role::Maintainer).await;
    let r = s.call("POST", "/api/v1/feedback", None, Some(&json!({"title": "Button broken", "body": "line1\nline2\t\u{0}\u{1b}x", "tags": ["ui", "ui", "bug"]}))).await;
    assert_eq!(r.status, 201, "{:?}", String::from_utf8_lossy(&r.body));
    let id = r.json()["id"].as_i64().unwrap();
    let issue = s
        .call("GET", &format!("/api/v1/issues/{id}"), Some(&k), None)
        .await
        .json();
    assert_eq!(issue["kind"], "feedback");
    assert_eq!(issue["state"], "backlog");
    assert_eq!(issue["body"], "line1\nline2\tx");
    assert_eq!(issue["tags"], json!(["ui", "bug"]));
    assert!(issue["created_by"].is_null());
    // trying to steer it is refused, and nothing is created
    for extra in [
        json!({"state": "todo"}),
        json!({"kind": "task"}),
        json!({"assignee": 1}),
        json!({"workspace": "acme"}),
        json!({"workspace_id": 1}),
        json!({"priority": 100}),
    ] {
        let mut body = json!({"title": "t"});
        for (k2, v) in extra.as_object().unwrap() {
            body[k2] = v.clone();
        }
        let r = s.call("POST", "/api/v1/feedback", None, Some(&body)).await;
        assert_eq!(r.status, 400, "{body}");
        assert_eq!(r.code(), "malformed_json");
    }
    let all = s
        .call("GET", "/api/v1/issues?limit=200", Some(&k), None)
        .await
        .json();
    assert_eq!(all["items"].as_array().unwrap().len(), 1);
    // feedback cannot reach another workspace's backlog, and never moves anything
    let (_, other) = s.user("o@example.test", "acme", Role::Admin).await;
    assert_eq!(
        s.call("GET", "/api/v1/issues", Some(&other), None)
            .await
            .json()["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}
api_both!(feedback_scope, feedback_creates_only_backlog_feedback);

async fn feedback_validation(s: Server) {
    let post = |b: serde_json::Value| {
        let s = &s;
        async move { s.call("POST", "/api/v1/feedback", None, Some(&b)).await }
    };
    assert_eq!(
        post(json!({"title": "a".repeat(200), "body": "b".repeat(10_000)}))
            .await
            .status,
        201
    );
    assert_eq!(post(json!({"title": "a".repeat(201)})).await.status, 422);
    assert_eq!(
        post(json!({"title": "t", "body": "b".repeat(10_001)}))
            .await
            .status,
        422
    );
    let tags: Vec<String> = (0..21).map(|i| format!("t{i}")).collect();
    assert_eq!(post(json!({"title": "t", "tags": tags})).await.status, 422);
    assert_eq!(
        post(json!({"title": "t", "tags": tags[..20]})).await.status,
        201
    );
    assert_eq!(
        post(json!({"title": "t", "tags": ["x".repeat(51)]}))
            .await
            .status,
        422
    );
    assert_eq!(
        post(json!({"title": "t", "tags": ["x".repeat(50)]}))
            .await
            .status,
        201
    );
    assert_eq!(post(json!({"title": "  \n\t "})).await.status, 422);
    assert_eq!(post(json!({"title": "\u{0}\u{1}\u{2}"})).await.status, 422);
    assert_eq!(post(json!({})).await.status, 400);
    let r = s
        .send(
            "POST",
            "/api/v1/feedback",
            &[("Content-Type", "text/plain".into())],
            Some(br#"{"title":"t"}"#),
        )
        .await;
    assert_eq!(r.status, 415);
    let r = s
        .send(
            "POST",
            "/api/v1/feedback",
            &[ct()],
            Some(b"{\"title\": \"t\""),
        )
        .await;
    assert_eq!(r.status, 400);
    // the size cap applies before parsing, by declared length and by actual bytes
    let huge = vec![b'x'; 70 * 1024];
    let r = s
        .send("POST", "/api/v1/feedback", &[ct()], Some(&huge))
        .await;
    assert_eq!(r.status, 413);
    let lying = b"POST /api/v1/feedback HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    let mut raw = lying.to_vec();
    for _ in 0..20 {
        raw.extend_from_slice(format!("1000\r\n{}\r\n", "y".repeat(4096)).as_bytes());
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(s.raw(&raw).await.status, 413);
}
api_both!(
    feedback_limits,
    feedback_validation,
    &[("PADDOCK_FEEDBACK_RATE_LIMIT_PER_MINUTE", "0")]
);

async fn flood_is_cut_off_per_client(s: Server) {
    let body = br#"{"title":"spam"}"#;
    let xff = |ip: &str| vec![ct(), ("X-Forwarded-For", ip.to_string())];
    // one client (behind the trusted proxy) floods: cut off after its budget
    let mut codes = Vec::new();
    for _ in 0..8 {
        codes.push(
            s.send("POST", "/api/v1/feedback", &xff("203.0.113.1"), Some(body))
                .await
                .status,
        );
    }
    assert_eq!(codes, vec![201, 201, 201, 201, 201, 429, 429, 429]);
    let r = s
        .send("POST", "/api/v1/feedback", &xff("203.0.113.1"), Some(body))
        .await;
    assert_eq!(r.code(), "rate_limited");
    // another client still gets through
    assert_eq!(
        s.send("POST", "/api/v1/feedback", &xff("203.0.113.2"), Some(body))
            .await
            .status,
        201
    );
    // a peer that is not a trusted proxy cannot pick a fresh address per request
    let mut codes = Vec::new();
    for i in 0..7 {
        codes.push(
            s.send_from(
                Some("127.0.0.2"),
                "POST",
                "/api/v1/feedback",
                &xff(&format!("198.51.100.{i}")),
                Some(body),
            )
            .await
            .status,
        );
    }
    assert_eq!(codes, vec![201, 201, 201, 201, 201, 429, 429]);
    // rate-limited posts created nothing and wrote no audit rows
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM issues WHERE kind = 'feedback'")
        .fetch_one(s.store().pool())
        .await
        .unwrap();
    assert_eq!(n, 11);
    let (a,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM audit_events WHERE action = 'feedback.create'")
            .fetch_one(s.store().pool())
            .await
            .unwrap();
    assert_eq!(a, 11);
}
api_both!(
    feedback_rate_limit,
    flood_is_cut_off_per_client,
    &[
        ("PADDOCK_FEEDBACK_RATE_LIMIT_PER_MINUTE", "5"),
        ("PADDOCK_HTTP_TRUSTED_PROXY_HEADER", "X-Forwarded-For"),
        ("PADDOCK_HTTP_TRUSTED_PROXIES", "127.0.0.1/32")
    ]
);

const HMAC: &str = "feedback-signing-secret-0123456789abcdef";

async fn signed_feedback(s: Server) {
    let body = br#"{"title":"signed"}"#;
    let now = (paddock::store::now_ms() / 1000).to_string();
    let signed = |ts: &str, b: &[u8]| {
        vec![
            ct(),
            ("X-Request-Timestamp", ts.to_string()),
            ("X-Request-Signature", sign(HMAC, ts, b)),
        ]
    };
    // unsigned: refused
    assert_eq!(
        s.send("POST", "/api/v1/feedback", &[ct()], Some(body))
            .await
            .status,
        401
    );
    // good signature: accepted
    let h = signed(&now, body);
    assert_eq!(
        s.send("POST", "/api/v1/feedback", &h, Some(body))
            .await
            .status,
        201
    );
    // the same signed request again: a replay, refused
    assert_eq!(
        s.send("POST", "/api/v1/feedback", &h, Some(body))
            .await
            .status,
        401
    );
    // signature over another body: refused
    let other = br#"{"title":"tampered"}"#;
    assert_eq!(
        s.send("POST", "/api/v1/feedback", &signed(&now, body), Some(other))
            .await
            .status,
        401
    );
    // wrong key
    let bad = vec![
        ct(),
        ("X-Request-Timestamp", now.clone()),
        (
            "X-Request-Signature",
            sign("another-secret-another-secret-12345", &now, other),
        ),
    ];
    assert_eq!(
        s.send("POST", "/api/v1/feedback", &bad, Some(other))
            .await
            .status,
        401
    );
    // stale and future timestamps
    let old = (paddock::store::now_ms() / 1000 - 301).to_string();
    assert_eq!(
        s.send(
            "POST",
            "/api/v1/feedback",
            &signed(&old, other),
            Some(other)
        )
        .await
        .status,
        401
    );
    let future = (paddock::store::now_ms() / 1000 + 301).to_string();
    assert_eq!(
        s.send(
            "POST",
            "/api/v1/feedback",
            &signed(&future, other),
            Some(other)
        )
        .await
        .status,
        401
    );
    // inside the window with a fresh signature: accepted
    let recent = (paddock::store::now_ms() / 1000 - 200).to_string();
    assert_eq!(
        s.send(
            "POST",
            "/api/v1/feedback",
            &signed(&recent, other),
            Some(other)
        )
        .await
        .status,
        201
    );
}
api_both!(
    feedback_signing,
    signed_feedback,
    &[("PADDOCK_FEEDBACK_HMAC_SECRET", HMAC)]
);
