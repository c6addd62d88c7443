//! Sessions, login limits, erasure over HTTP, and the audit ledger of requests.

use paddock::lifecycle::Role;
use paddock::store::audit::ChainCheck;
use serde_json::json;

use super::http::{Resp, Server};
use crate::api_both;

fn cookie_of(r: &Resp) -> String {
    r.header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

async fn sessions(s: Server) {
    s.user("a@example.test", "acme", Role::Admin).await;
    let bad = s
        .call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(&json!({"email": "a@example.test", "password": "wrong password!"})),
        )
        .await;
    assert_eq!(bad.status, 401);
    let nouser = s
        .call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(&json!({"email": "zz@example.test", "password": "wrong password!"})),
        )
        .await;
    assert_eq!(nouser.status, 401);
    assert_eq!(
        bad.json()["detail"],
        nouser.json()["detail"],
        "no user enumeration"
    );
    let ok = s
        .call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(&json!({"email": "A@example.test", "password": "correct horse battery"})),
        )
        .await;
    assert_eq!(ok.status, 200);
    let set = ok.header("set-cookie").unwrap().to_string();
    for flag in ["HttpOnly", "SameSite=Strict", "Max-Age=2592000", "Path=/"] {
        assert!(set.contains(flag), "{set}");
    }
    assert!(
        !set.contains("Secure"),
        "Secure only when served over HTTPS"
    );
    let cookie = cookie_of(&ok);
    let me = s
        .send(
            "GET",
            "/api/v1/users/me",
            &[("Cookie", cookie.clone())],
            None,
        )
        .await;
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["role"], "admin");
    // cookie-authenticated writes from a foreign origin are refused; own origin passes
    let ct = ("Content-Type", "application/json".to_string());
    let foreign = s
        .send(
            "POST",
            "/api/v1/issues",
            &[
                ("Cookie", cookie.clone()),
                ct.clone(),
                ("Origin", "https://evil.example.test".into()),
            ],
            Some(br#"{"title":"x"}"#),
        )
        .await;
    assert_eq!(foreign.status, 403);
    let own = s
        .send(
            "POST",
            "/api/v1/issues",
            &[
                ("Cookie", cookie.clone()),
                ct.clone(),
                ("Origin", format!("http://{}", s.addr)),
            ],
            Some(br#"{"title":"x"}"#),
        )
        .await;
    assert_eq!(own.status, 201, "{:?}", String::from_utf8_lossy(&own.body));
    // forged or unknown session
    assert_eq!(
        s.send(
            "GET",
            "/api/v1/users/me",
            &[("Cookie", "paddock_session=pds_forged".into())],
            None
        )
        .await
        .status,
        401
    );
    // logout revokes it server-side
    assert_eq!(
        s.send(
            "POST",
            "/api/v1/auth/logout",
            &[("Cookie", cookie.clone())],
            None
        )
        .await
        .status,
        204
    );
    assert_eq!(
        s.send("GET", "/api/v1/users/me", &[("Cookie", cookie)], None)
            .await
            .status,
        401
    );
    assert!(
        s.store()
            .count_security_events("login", "denied")
            .await
            .unwrap()
            >= 2
    );
    assert_eq!(
        s.store()
            .count_security_events("login", "ok")
            .await
            .unwrap(),
        1
    );
    // the session token is not stored in the clear
    let (n,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM sessions WHERE token_hash LIKE 'pds_%'")
            .fetch_one(s.store().pool())
            .await
            .unwrap();
    assert_eq!(n, 0);
}
api_both!(
    session_cookies,
    sessions,
    &[("PADDOCK_RATE_LIMIT_AUTH_PER_MINUTE", "100")]
);

async fn login_is_rate_limited(s: Server) {
    s.user("a@example.test", "acme", Role::Admin).await;
    let mut codes = Vec::new();
    for _ in 0..5 {
        codes.push(
            s.call(
                "POST",
                "/api/v1/auth/login",
                None,
                Some(&json!({"email": "a@example.test", "password": "guess guess guess"})),
            )
            .await
            .status,
        );
    }
    assert_eq!(codes, vec![401, 401, 401, 429, 429]);
    // even the right password waits out the limit
    let r = s
        .call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(&json!({"email": "a@example.test", "password": "correct horse battery"})),
        )
        .await;
    assert_eq!(r.status, 429);
    // key guessing spends the same budget
    let (_, key) = s.user("b@example.test", "acme", Role::Admin).await;
    assert_eq!(
        s.call("GET", "/api/v1/issues", Some("pdk_guess"), None)
            .await
            .status,
        429
    );
    assert_eq!(
        s.call("GET", "/api/v1/issues", Some(&key), None)
            .await
            .status,
        200,
        "valid keys are not locked out"
    );
}
api_both!(
    login_rate_limit,
    login_is_rate_limited,
    &[("PADDOCK_RATE_LIMIT_AUTH_PER_MINUTE", "3")]
);

async fn erase_me(s: Server) {
    let (_, alice) = s.user("alice@example.test", "solo", Role::Admin).await;
    let (alice_id, alice_shared) = s
        .user("alice@example.test", "shared", Role::Maintainer)
        .await;
    let (_, bob) = s.user("bob@example.test", "shared", Role::Admin).await;
    let id = s
        .call(
            "POST",
            "/api/v1/issues",
            Some(&alice_shared),
            Some(&json!({"title": "kept"})),
        )
        .await
        .json()["id"]
        .as_i64()
        .unwrap();
    // a runner key cannot erase its owner
    let rk = s.runner_key("shared", "r1").await;
    assert_eq!(
        s.call("DELETE", "/api/v1/users/me", Some(&rk), None)
            .await
            .status,
        403
    );
    let r = s
        .call("DELETE", "/api/v1/users/me", Some(&alice), None)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["deleted_workspaces"].as_array().unwrap().len(), 1);
    assert_eq!(
        s.call("GET", "/api/v1/users/me", Some(&alice_shared), None)
            .await
            .status,
        401,
        "all her keys are gone"
    );
    let kept = s
        .call("GET", &format!("/api/v1/issues/{id}"), Some(&bob), None)
        .await
        .json();
    assert_eq!(kept["title"], "kept");
    assert!(kept["created_by"].is_null());
    assert!(s.store().workspace_by_name("solo").await.unwrap().is_none());
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users WHERE id = $1")
        .bind(alice_id)
        .fetch_one(s.store().pool())
        .await
        .unwrap();
    assert_eq!(n, 0);
}
api_both!(erasure_over_http, erase_me);

async fn every_mutation_is_audited(s: Server) {
    let (uid, k) = s.user("a@example.test", "acme", Role::Admin).await;
    s.call(
        "POST",
        "/api/v1/issues",
        Some(&k),
        Some(&json!({"title": "t"})),
    )
    .await;
    s.call(
        "POST",
        "/api/v1/issues",
        Some(&k),
        Some(&json!({"title": ""})),
    )
    .await; // refused: audited as denied
    s.call(
        "POST",
        "/api/v1/auth/login",
        None,
        Some(&json!({"email": "a@example.test", "password": "correct horse battery"})),
    )
    .await;
    s.call(
        "POST",
        "/api/v1/apikeys",
        Some(&k),
        Some(&json!({"name": "n"})),
    )
    .await;
    s.call("GET", "/api/v1/issues", Some(&k), None).await; // reads are not audited
    let events = s.store().audit_events(0, 100).await.unwrap();
    let actions: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e.action.as_str(), e.outcome.as_str()))
        .collect();
    assert_eq!(
        actions,
        vec![
            ("issue.create", "ok"),
            ("issue.create", "denied:422"),
            ("auth.login", "ok"),
            ("apikey.create", "ok")
        ]
    );
    assert!(events.iter().all(|e| !e.request_id.is_empty()));
    assert_eq!(events[0].actor, format!("user:{uid}"));
    assert!(events[0].workspace_id.is_some());
    let login = &events[2];
    assert!(
        !login.body.contains("correct horse"),
        "password redacted: {}",
        login.body
    );
    assert!(login.body.contains("[redacted]"));
    assert_eq!(
        s.store().verify_audit_chain().await.unwrap(),
        ChainCheck::Intact { events: 4 }
    );
}
api_both!(audit_ledger, every_mutation_is_audited);
