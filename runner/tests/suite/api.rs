//! API tests on a real server: routes, errors, hostile input, tenancy, the life cycle over HTTP.

use paddock::lifecycle::Role;
use serde_json::json;

use super::http::Server;
use crate::api_both;

async fn routes_and_openapi(s: Server) {
    let h = s.call("GET", "/healthz", None, None).await;
    assert_eq!(h.status, 200);
    assert_eq!(h.json()["status"], "ok");
    let doc = s.call("GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(doc.status, 200);
    let doc = doc.json();
    assert_eq!(doc["openapi"], "3.1.0");
    // Every documented route is served (no "no such route", no 405) — the document matches the code.
    for r in paddock::api::openapi::ROUTES {
        let path = format!(
            "/api/v1{}",
            r.path.replace("{id}", "1").replace("{name}", "x")
        );
        assert!(doc["paths"][format!("/api/v1{}", r.path)][r.method].is_object());
        let resp = s.send(&r.method.to_uppercase(), &path, &[], None).await;
        assert_ne!(resp.status, 405, "{} {path}", r.method);
        assert!(
            !(resp.status == 404 && resp.json()["detail"] == "no such route"),
            "{} {path} not routed",
            r.method
        );
    }
    let missing = s.call("GET", "/api/v1/nope", None, None).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.code(), "not_found");
    let wrong = s
        .call("PUT", "/api/v1/issues", None, Some(&json!({})))
        .await;
    assert_eq!(wrong.status, 405);
    assert_eq!(wrong.code(), "method_not_allowed");
}
api_both!(routing, routes_and_openapi);

async fn security_headers_and_cors(s: Server) {
    let r = s.call("GET", "/healthz", None, None).await;
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert!(
        r.header("content-security-policy")
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    assert!(r.header("x-request-id").is_some());
    assert!(
        r.header("strict-transport-security").is_none(),
        "no HSTS on a plain-http deployment"
    );
    let ok = s
        .send(
            "GET",
            "/healthz",
            &[("Origin", "https://board.example.test".into())],
            None,
        )
        .await;
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("https://board.example.test")
    );
    let evil = s
        .send(
            "GET",
            "/healthz",
            &[("Origin", "https://evil.example.test".into())],
            None,
        )
        .await;
    assert_eq!(evil.header("access-control-allow-origin"), None);
    let pre = s
        .send(
            "OPTIONS",
            "/api/v1/issues",
            &[
                ("Origin", "https://evil.example.test".into()),
                ("Access-Control-Request-Method", "POST".into()),
            ],
            None,
        )
        .await;
    assert_eq!(pre.header("access-control-allow-origin"), None);
}
api_both!(
    headers,
    security_headers_and_cors,
    &[("PADDOCK_HTTP_CORS_ORIGINS", "https://board.example.test")]
);

async fn authentication_is_required_and_checked(s: Server) {
    let (_, key) = s.user("m@example.test", "acme", Role::Maintainer).await;
    let none = s.call("GET", "/api/v1/issues", None, None).await;
    assert_eq!(none.status, 401);
    assert_eq!(none.code(), "unauthenticated");
    assert_eq!(
        s.call("GET", "/api/v1/issues", Some("pdk_forged"), None)
            .await
            .status,
        401
    );
    assert_eq!(
        s.call("GET", "/api/v1/issues", Some("' OR 1=1 --"), None)
            .await
            .status,
        401
    );
    assert_eq!(
        s.call("GET", "/api/v1/issues", Some(&key), None)
            .await
            .status,
        200
    );
    let bearer = s
        .send(
            "GET",
            "/api/v1/issues",
            &[("Authorization", format!("Bearer {key}"))],
            None,
        )
        .await;
    assert_eq!(bearer.status, 200);
    let basic = s
        .send(
            "GET",
            "/api/v1/issues",
            &[("Authorization", "Basic eDp5".into())],
            None,
        )
        .await;
    assert_eq!(basic.status, 401);
    assert!(
        s.store()
            .count_security_events("api_key", "denied")
            .await
            .unwrap()
            >= 2
    );

    // expired and revoked keys
    let w = s.store().workspace_by_name("acme").await.unwrap().unwrap();
    let u = s
        .store()
        .user_by_email("m@example.test")
        .await
        .unwrap()
        .unwrap();
    let (expired, hash, prefix) = paddock::auth::secrets::new_api_key();
    s.store()
        .insert_api_key(
            u.id,
            w.id,
            "user",
            "old",
            &hash,
            &prefix,
            Some(paddock::store::now_ms() - 1),
        )
        .await
        .unwrap();
    assert_eq!(
        s.call("GET", "/api/v1/issues", Some(&expired), None)
            .await
            .status,
        401
    );
    let created = s
        .call(
            "POST",
            "/api/v1/apikeys",
            Some(&key),
            Some(&json!({"name": "ci"})),
        )
        .await;
    assert_eq!(created.status, 201);
    let new_key = created.json()["key"].as_str().unwrap().to_string();
    let new_id = created.json()["info"]["id"].as_i64().unwrap();
    assert_eq!(
        s.call("GET", "/api/v1/users/me", Some(&new_key), None)
            .await
            .status,
        200
    );
    let listed = s.call("GET", "/api/v1/apikeys", Some(&key), None).await;
    assert!(
        !String::from_utf8_lossy(&listed.body).contains(&new_key),
        "a key is shown only once"
    );
    assert_eq!(
        s.call(
            "DELETE",
            &format!("/api/v1/apikeys/{new_id}"),
            Some(&key),
            None
        )
        .await
        .status,
        204
    );
    assert_eq!(
        s.call("GET", "/api/v1/users/me", Some(&new_key), None)
            .await
            .status,
        401,
        "revoked key"
    );
    // rotate: old dies, new works
    let created = s
        .call(
            "POST",
            "/api/v1/apikeys",
            Some(&key),
            Some(&json!({"name": "rot"})),
        )
        .await
        .json();
    let (k1, id1) = (
        created["key"].as_str().unwrap().to_string(),
        created["info"]["id"].as_i64().unwrap(),
    );
    let rotated = s
        .call(
            "POST",
            &format!("/api/v1/apikeys/{id1}/rotate"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(rotated.status, 201);
    let k2 = rotated.json()["key"].as_str().unwrap().to_string();
    assert_eq!(
        s.call("GET", "/api/v1/users/me", Some(&k1), None)
            .await
            .status,
        401
    );
    assert_eq!(
        s.call("GET", "/api/v1/users/me", Some(&k2), None)
            .await
            .status,
        200
    );
    // a reporter cannot mint runner keys; an admin can
    let (_, rep) = s.user("r@example.test", "acme", Role::Reporter).await;
    assert_eq!(
        s.call(
            "POST",
            "/api/v1/apikeys",
            Some(&rep),
            Some(&json!({"name": "x", "kind": "runner"}))
        )
        .await
        .status,
        403
    );
    // keys are stored as SHA-256 only
    let (n,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM api_keys WHERE key_hash = $1 OR prefix = $1")
            .bind(k2.clone())
            .fetch_one(s.store().pool())
            .await
            .unwrap();
    assert_eq!(n, 0);
}
api_both!(auth_keys, authentication_is_required_and_checked);

async fn tenancy_comes_from_the_principal(s: Server) {
    let (_, a) = s.user("a@example.test", "acme", Role::Admin).await;
    let (_, b) = s.user("b@example.test", "globex", Role::Admin).await;
    let created = s
        .call(
            "POST",
            "/api/v1/issues",
            Some(&a),
            Some(&json!({"title": "acme secret"})),
        )
        .await;
    assert_eq!(created.status, 201);
    let id = created.json()["id"].as_i64().unwrap();
    // the other tenant sees nothing, cannot read, change, move or comment
    assert_eq!(
        s.call("GET", &format!("/api/v1/issues/{id}"), Some(&b), None)
            .await
            .status,
        404
    );
    assert_eq!(
        s.call(
            "PATCH",
            &format!("/api/v1/issues/{id}"),
            Some(&b),
            Some(&json!({"title": "x"}))
        )
        .await
        .status,
        404
    );
    assert_eq!(
        s.call(
            "POST",
            &format!("/api/v1/issues/{id}/transition"),
            Some(&b),
            Some(&json!({"to": "todo"}))
        )
        .await
        .status,
        404
    );
    assert_eq!(
        s.call(
            "POST",
            &format!("/api/v1/issues/{id}/comments"),
            Some(&b),
            Some(&json!({"body": "x"}))
        )
        .await
        .status,
        404
    );
    assert_eq!(
        s.call("GET", "/api/v1/issues", Some(&b), None).await.json()["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    // a forged workspace in the body is refused, not obeyed
    let acme = s.store().workspace_by_name("acme").await.unwrap().unwrap();
    let forged = s
        .call(
            "POST",
            "/api/v1/issues",
            Some(&b),
            Some(&json!({"title": "t", "workspace_id": acme.id})),
        )
        .await;
    assert_eq!(forged.status, 400);
    assert!(
        forged.json()["detail"]
            .as_str()
            .unwrap()
            .contains("workspace_id")
    );
    assert_eq!(
        s.call("GET", "/api/v1/issues", Some(&a), None).await.json()["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // the owner can
    assert_eq!(
        s.call("GET", &format!("/api/v1/issues/{id}"), Some(&a), None)
            .await
            .status,
        200
    );
}
api_both!(tenancy, tenancy_comes_from_the_principal);

async fn hostile_inputs_get_4xx_never_500(s: Server) {
    let (_, k) = s.user("m@example.test", "acme", Role::Maintainer).await;
    let key = ("X-API-Key", k.clone());
    let json_ct = ("Content-Type", "application/json".to_string());
    // wrong content type
    let r = s
        .send(
            "POST",
            "/api/v1/issues",
            &[key.clone(), ("Content-Type", "text/plain".into())],
            Some(br#"{"title":"x"}"#),
        )
        .await;
    assert_eq!(r.status, 415);
    let r = s
        .send(
            "POST",
            "/api/v1/issues",
            std::slice::from_ref(&key),
            Some(br#"{"title":"x"}"#),
        )
        .await;
    assert_eq!(r.status, 415);
    // malformed JSON
    for bad in [
        &b"{"[..],
        b"[]",
        b"null",
        b"{\"title\": 5}",
        b"\xff\xfe",
        b"{\"title\":\"a\",\"title\":\"b\"}",
        b"{\"priority\": 1e999, \"title\":\"x\"}",
    ] {
        let r = s
            .send(
                "POST",
                "/api/v1/issues",
                &[key.clone(), json_ct.clone()],
                Some(bad),
            )
            .await;
        assert!(
            r.status == 400 || r.status == 422,
            "{:?} -> {}",
            String::from_utf8_lossy(bad),
            r.status
        );
        assert!(r.json()["error"].is_string());
    }
    // oversized body: refused before parsing
    let big = format!("{{\"title\":\"{}\"}}", "a".repeat(70 * 1024));
    let r = s
        .send(
            "POST",
            "/api/v1/issues",
            &[key.clone(), json_ct.clone()],
            Some(big.as_bytes()),
        )
        .await;
    assert_eq!(r.status, 413);
    assert_eq!(r.code(), "payload_too_large");
    // limits and empty values
    for body in [
        json!({"title": "a".repeat(201)}),
        json!({"title": "   "}),
        json!({"title": "x", "priority": 5000}),
        json!({"title": "x", "state": "done"}),
        json!({"title": "x", "kind": "feedback"}),
    ] {
        let r = s
            .call("POST", "/api/v1/issues", Some(&k), Some(&body))
            .await;
        assert_eq!(r.status, 422, "{body}");
    }
    // control characters stripped, newline and tab kept
    let r = s
        .call(
            "POST",
            "/api/v1/issues",
            Some(&k),
            Some(&json!({"title": "a\u{0}b\u{1b}[2Jc", "body": "l1\nl2\tx\u{7}"})),
        )
        .await;
    assert_eq!(r.status, 201);
    let issue = r.json();
    assert_eq!(issue["title"], "ab[2Jc");
    assert_eq!(issue["body"], "l1\nl2\tx");
    // ids and queries
    for p in [
        "/api/v1/issues/abc",
        "/api/v1/issues/-1",
        "/api/v1/issues/0",
        "/api/v1/issues/99999999999999999999",
        "/api/v1/issues/1%00",
        "/api/v1/runs/x",
    ] {
        let r = s.call("GET", p, Some(&k), None).await;
        assert_eq!(r.status, 404, "{p}");
    }
    for q in [
        "state=bogus",
        "limit=0",
        "limit=100000",
        "cursor=-5",
        "state=todo%27%20OR%201=1",
    ] {
        let r = s
            .call("GET", &format!("/api/v1/issues?{q}"), Some(&k), None)
            .await;
        assert_eq!(r.status, 400, "{q}");
    }
    // unknown field in PATCH (state only moves through transitions)
    let id = issue["id"].as_i64().unwrap();
    let r = s
        .call(
            "PATCH",
            &format!("/api/v1/issues/{id}"),
            Some(&k),
            Some(&json!({"state": "done"})),
        )
        .await;
    assert_eq!(r.status, 400);
    // a path that is not valid UTF-8 still gets the JSON error shape
    let r = s.call("GET", "/api/v1/issues/%FF%FE", Some(&k), None).await;
    assert!(r.status == 400 || r.status == 404, "{}", r.status);
    assert!(r.json()["error"].is_string());
    // garbage on the wire
    let r = s.raw(b"GARBAGE\r\n\r\n").await;
    assert!(r.status >= 400 && r.status < 500);
    // no error body ever carries SQL
    for body in [
        json!({"title": "'; DROP TABLE issues; --"}),
        json!({"title": "x", "tags": ["\u{0}"]}),
    ] {
        let r = s
            .call("POST", "/api/v1/issues", Some(&k), Some(&body))
            .await;
        assert!(r.status < 500);
        let text = String::from_utf8_lossy(&r.body).to_lowercase();
        assert!(
            !text.contains("select ")
                && !text.contains("insert ")
                && !text.contains("sqlite")
                && !text.contains("postgres")
        );
    }
    let all = s
        .call("GET", "/api/v1/issues?limit=200", Some(&k), None)
        .await
        .json();
    assert!(
        all["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["title"] == "'; DROP TABLE issues; --")
    );
}
api_both!(hostile_inputs, hostile_inputs_get_4xx_never_500);

async fn pagination(s: Server) {
    let (_, k) = s.user("m@example.test", "acme", Role::Maintainer).await;
    for i in 0..5 {
        s.call("POST", "/api/v1/issues", Some(&k), Some(&json!({"title": format!("t{i}"), "state": if i % 2 == 0 { "todo" } else { "backlog" }}))).await;
    }
    let p1 = s
        .call("GET", "/api/v1/issues?limit=2", Some(&k), None)
        .await
        .json();
    assert_eq!(p1["items"].as_array().unwrap().len(), 2);
    let c = p1["next_cursor"].as_str().unwrap().to_string();
    let p2 = s
        .call(
            "GET",
            &format!("/api/v1/issues?limit=2&cursor={c}"),
            Some(&k),
            None,
        )
        .await
        .json();
    let p3 = s
        .call(
            "GET",
            &format!(
                "/api/v1/issues?limit=2&cursor={}",
                p2["next_cursor"].as_str().unwrap()
            ),
            Some(&k),
            None,
        )
        .await
        .json();
    assert_eq!(p3["items"].as_array().unwrap().len(), 1);
    assert!(p3["next_cursor"].is_null());
    let mut titles: Vec<String> = [p1, p2, p3]
        .iter()
        .flat_map(|p| {
            p["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["title"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    titles.sort();
    assert_eq!(titles, vec!["t0", "t1", "t2", "t3", "t4"]);
    let todo = s
        .call("GET", "/api/v1/issues?state=todo", Some(&k), None)
        .await
        .json();
    assert_eq!(todo["items"].as_array().unwrap().len(), 3);
}
api_both!(issue_pagination, pagination);

async fn life_cycle_over_http(s: Server) {
    let (_, reporter) = s.user("rep@example.test", "acme", Role::Reporter).await;
    let (_, maint) = s.user("m@example.test", "acme", Role::Maintainer).await;
    let (_, reviewer) = s.user("rev@example.test", "acme", Role::Reviewer).await;
    let runner = s.runner_key("acme", "box-1").await;
    let other_runner = s.runner_key("acme", "box-2").await;

    let id = s
        .call(
            "POST",
            "/api/v1/issues",
            Some(&reporter),
            Some(&json!({"title": "fix it"})),
        )
        .await
        .json()["id"]
        .as_i64()
        .unwrap();
    let tr = |to: &str| json!({"to": to});
    // reporter may not triage: 409 naming the rule
    let r = s
        .call(
            "POST",
            &format!("/api/v1/issues/{id}/transition"),
            Some(&reporter),
            Some(&tr("todo")),
        )
        .await;
    assert_eq!(r.status, 409);
    assert!(r.json()["detail"].as_str().unwrap().contains("`triage`"));
    // nobody jumps backlog -> done via review, or moves into in_progress by hand
    let r = s
        .call(
            "POST",
            &format!("/api/v1/issues/{id}/transition"),
            Some(&maint),
            Some(&tr("in_review")),
        )
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(r.code(), "illegal_transition");
    let r = s
        .call(
            "POST",
            &format!("/api/v1/issues/{id}/transition"),
            Some(&maint),
            Some(&tr("in_progress")),
        )
        .await;
    assert_eq!(r.status, 409);
    // maintainer triages
    let r = s
        .call(
            "POST",
            &format!("/api/v1/issues/{id}/transition"),
            Some(&maint),
            Some(&tr("todo")),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["rule"], "triage");
    // people cannot claim; the runner does
    assert_eq!(
        s.call("POST", "/api/v1/claim", Some(&maint), None)
            .await
            .status,
        403
    );
    let c = s
        .call("POST", "/api/v1/claim", Some(&runner), None)
        .await
        .json();
    assert_eq!(c["issue"]["id"], id);
    assert_eq!(c["issue"]["claimed_by"], "box-1");
    assert!(
        s.call("POST", "/api/v1/claim", Some(&other_runner), None)
            .await
            .json()["issue"]
            .is_null()
    );
    // only the lease holder heartbeats or submits
    assert_eq!(
        s.call(
            "POST",
            &format!("/api/v1/issues/{id}/lease"),
            Some(&other_runner),
            None
        )
        .await
        .status,
        409
    );
    assert_eq!(
        s.call(
            "POST",
            &format!("/api/v1/issues/{id}/lease"),
            Some(&runner),
            None
        )
        .await
        .status,
        200
    );
    let r = s
        .call(
            "POST",
            &format!("/api/v1/issues/{id}/transition"),
            Some(&other_runner),
            Some(&tr("in_review")),
        )
        .await;
    assert_eq!(r.status, 409);
    let r = s
        .call(
            "POST",
            &format!("/api/v1/issues/{id}/transition"),
            Some(&runner),
            Some(&json!({"to": "in_review", "log": "did it", "branch": "paddock/1-1"})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    // a runner can never approve; a reporter neither
    let r = s
        .call(
            "POST",
            &format!("/api/v1/issues/{id}/approve"),
            Some(&runner),
            None,
        )
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(r.code(), "transition_not_allowed");
    let r = s
        .call(
            "POST",
            &format!("/api/v1/issues/{id}/transition"),
            Some(&runner),
            Some(&tr("done")),
        )
        .await;
    assert_eq!(r.status, 409);
    assert!(r.json()["detail"].as_str().unwrap().contains("`approve`"));
    assert_eq!(
        s.call(
            "POST",
            &format!("/api/v1/issues/{id}/approve"),
            Some(&reporter),
            None
        )
        .await
        .status,
        409
    );
    // reject needs feedback; with it, the issue goes back to todo and the next run carries it
    let r = s
        .call(
            "POST",
            &format!("/api/v1/issues/{id}/reject"),
            Some(&reviewer),
            Some(&json!({"feedback": "  "})),
        )
        .await;
    assert_eq!(r.status, 422);
    let r = s
        .call(
            "POST",
            &format!("/api/v1/issues/{id}/reject"),
            Some(&reviewer),
            Some(&json!({"feedback": "please add a test"})),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["issue"]["state"], "todo");
    let c = s
        .call("POST", "/api/v1/claim", Some(&runner), None)
        .await
        .json();
    let run_id = c["run_id"].as_i64().unwrap();
    let run = s
        .call(
            "GET",
            &format!("/api/v1/runs/{run_id}"),
            Some(&reviewer),
            None,
        )
        .await
        .json();
    assert_eq!(run["feedback"], "please add a test");
    assert_eq!(run["attempt"], 2);
    s.call(
        "POST",
        &format!("/api/v1/issues/{id}/transition"),
        Some(&runner),
        Some(&json!({"to": "in_review", "log": "again"})),
    )
    .await;
    let r = s
        .call(
            "POST",
            &format!("/api/v1/issues/{id}/approve"),
            Some(&reviewer),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["issue"]["state"], "done");
    // runs and runners are listed
    let runs = s
        .call(
            "GET",
            &format!("/api/v1/runs?issue_id={id}"),
            Some(&maint),
            None,
        )
        .await
        .json();
    assert_eq!(runs["items"].as_array().unwrap().len(), 2);
    let first = s
        .call(
            "GET",
            &format!("/api/v1/runs/{}", runs["items"][1]["id"]),
            Some(&maint),
            None,
        )
        .await
        .json();
    assert_eq!(first["log"], "did it");
    let runners = s
        .call("GET", "/api/v1/runners", Some(&maint), None)
        .await
        .json();
    assert!(
        runners["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "box-1")
    );
    // comments, including the review feedback
    let cs = s
        .call(
            "GET",
            &format!("/api/v1/issues/{id}/comments"),
            Some(&maint),
            None,
        )
        .await
        .json();
    assert!(
        cs["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["body"].as_str().unwrap().contains("please add a test"))
    );
}
api_both!(life_cycle, life_cycle_over_http);

async fn silent_connections_are_dropped(s: Server) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Two clients open connections and go silent (one mid-headers): they hold both slots.
    let mut a = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let mut b = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    b.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let start = std::time::Instant::now();
    // A third client is served once the idle ones are cut off, not never.
    let r = s.call("GET", "/healthz", None, None).await;
    assert_eq!(r.status, 200);
    assert!(
        start.elapsed() >= std::time::Duration::from_millis(700),
        "the cap held the third client back"
    );
    let mut buf = Vec::new();
    let closed =
        tokio::time::timeout(std::time::Duration::from_secs(5), a.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "an idle connection is closed by the server");
    let closed =
        tokio::time::timeout(std::time::Duration::from_secs(5), b.read_to_end(&mut buf)).await;
    assert!(
        closed.is_ok(),
        "a connection stuck mid-headers is closed by the server"
    );
    // and a normal client is served at once
    let start = std::time::Instant::now();
    assert_eq!(s.call("GET", "/healthz", None, None).await.status, 200);
    assert!(start.elapsed() < std::time::Duration::from_millis(700));
}
api_both!(
    slowloris,
    silent_connections_are_dropped,
    &[
        ("PADDOCK_HTTP_MAX_CONNECTIONS", "2"),
        ("PADDOCK_HTTP_IDLE_TIMEOUT_SECS", "1")
    ]
);
