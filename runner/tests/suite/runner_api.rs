//! The operator API of the runner: repositories, the write-only secret store and the kill switch,
//! attacked by the wrong role, the wrong tenant and a runner key, next to the allowed caller.

use paddock::lifecycle::Role;
use serde_json::json;

use super::http::Server;
use super::repos::PIN;
use crate::api_both;

const VALUE: &str = "ghp_SuperSecretTokenValue_987654321";

async fn secrets_are_write_only_and_role_gated(s: Server) {
    let (_, admin) = s.user("admin@example.test", "acme", Role::Admin).await;
    let (_, maint) = s.user("maint@example.test", "acme", Role::Maintainer).await;
    let (_, reviewer) = s.user("rev@example.test", "acme", Role::Reviewer).await;
    let (_, reporter) = s.user("rep@example.test", "acme", Role::Reporter).await;
    let runner = s.runner_key("acme", "box-1").await;
    let body = json!({"value": VALUE});
    // no credentials: 401; wrong roles and runner keys: 403, nothing stored
    assert_eq!(
        s.call("PUT", "/api/v1/secrets/gh", None, Some(&body))
            .await
            .status,
        401
    );
    for key in [&reviewer, &reporter, &runner] {
        assert_eq!(
            s.call("PUT", "/api/v1/secrets/gh", Some(key), Some(&body))
                .await
                .status,
            403
        );
        assert_eq!(
            s.call("GET", "/api/v1/secrets", Some(key), None)
                .await
                .status,
            403
        );
        assert_eq!(
            s.call("DELETE", "/api/v1/secrets/gh", Some(key), None)
                .await
                .status,
            403
        );
    }
    let acme = s
        .store()
        .workspace_by_name("acme")
        .await
        .unwrap()
        .unwrap()
        .id;
    assert!(s.store().list_secrets(acme).await.unwrap().is_empty());
    // the maintainer may write; the answer names the secret, never its value
    let put = s
        .call("PUT", "/api/v1/secrets/gh", Some(&maint), Some(&body))
        .await;
    assert_eq!(put.status, 200, "{:?}", String::from_utf8_lossy(&put.body));
    assert_eq!(put.json()["name"], "gh");
    assert!(!String::from_utf8_lossy(&put.body).contains("SuperSecret"));
    let list = s.call("GET", "/api/v1/secrets", Some(&admin), None).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.json()["items"][0]["name"], "gh");
    assert!(!String::from_utf8_lossy(&list.body).contains("SuperSecret"));
    // there is no read route for a value
    let read = s
        .call("GET", "/api/v1/secrets/gh", Some(&admin), None)
        .await;
    assert!(read.status == 405 || read.status == 404, "{}", read.status);
    assert!(!String::from_utf8_lossy(&read.body).contains("SuperSecret"));
    // the audit ledger records the write, without the value
    let events = s.store().audit_events(0, 1000).await.unwrap();
    let put_event = events
        .iter()
        .find(|e| e.action == "secret.put" && e.outcome == "ok")
        .unwrap();
    assert!(put_event.body.contains("withheld"));
    assert!(events.iter().all(|e| !e.body.contains("SuperSecret")));
    // malformed bodies are refused without echoing anything
    for bad in [
        r#"{"value": 12345678901234}"#.to_string(),
        format!(r#"{{"value": "{VALUE}", "extra": "{VALUE}"}}"#),
        format!(r#"{{"valu": "{VALUE}"}}"#),
        format!(r#"{{"value": "{VALUE}"#),
    ] {
        let r = s
            .send(
                "PUT",
                "/api/v1/secrets/gh2",
                &[
                    ("X-API-Key", maint.clone()),
                    ("Content-Type", "application/json".into()),
                ],
                Some(bad.as_bytes()),
            )
            .await;
        assert_eq!(r.status, 400, "{bad}");
        let text = String::from_utf8_lossy(&r.body);
        assert!(
            !text.contains("SuperSecret") && !text.contains("12345678901234"),
            "{text}"
        );
    }
    // bad names: 404 (the secret cannot exist); empty value: 422
    assert_eq!(
        s.call("PUT", "/api/v1/secrets/..", Some(&maint), Some(&body))
            .await
            .status,
        404
    );
    assert_eq!(
        s.call(
            "PUT",
            "/api/v1/secrets/x",
            Some(&maint),
            Some(&json!({"value": ""}))
        )
        .await
        .status,
        422
    );
    // the runner can open what the API sealed, with the server's key ring
    let ring = paddock::vault::KeyRing::from_config(
        &paddock::config::Config::from_toml(
            "",
            &std::collections::HashMap::from([
                ("PADDOCK_DATABASE_URL".to_string(), s.db.url.clone()),
                (
                    "PADDOCK_SESSION_SECRET".to_string(),
                    super::http::SECRET.to_string(),
                ),
            ]),
        )
        .unwrap(),
    )
    .unwrap()
    .0;
    assert_eq!(
        s.store()
            .open_secret(&ring, acme, "gh")
            .await
            .unwrap()
            .unwrap()
            .expose(),
        VALUE
    );
    // another tenant's admin sees and deletes nothing
    let (_, other) = s.user("o@example.test", "globex", Role::Admin).await;
    assert_eq!(
        s.call("GET", "/api/v1/secrets", Some(&other), None)
            .await
            .json()["items"],
        json!([])
    );
    assert_eq!(
        s.call("DELETE", "/api/v1/secrets/gh", Some(&other), None)
            .await
            .status,
        404
    );
    assert_eq!(
        s.call("DELETE", "/api/v1/secrets/gh", Some(&admin), None)
            .await
            .status,
        204
    );
    assert!(s.store().list_secrets(acme).await.unwrap().is_empty());
}
api_both!(secret_api, secrets_are_write_only_and_role_gated);

async fn repos_are_per_tenant(s: Server) {
    let (_, a) = s.user("a@example.test", "acme", Role::Maintainer).await;
    let (_, reporter) = s.user("r@example.test", "acme", Role::Reporter).await;
    let (_, b) = s.user("b@example.test", "globex", Role::Admin).await;
    let body =
        json!({"name": "app", "url": "git@git.example.test:team/app.git", "ssh_known_hosts": PIN});
    assert_eq!(
        s.call("POST", "/api/v1/repos", Some(&reporter), Some(&body))
            .await
            .status,
        403
    );
    let created = s.call("POST", "/api/v1/repos", Some(&a), Some(&body)).await;
    assert_eq!(
        created.status,
        201,
        "{:?}",
        String::from_utf8_lossy(&created.body)
    );
    let id = created.json()["id"].as_i64().unwrap();
    assert_eq!(created.json()["branch_prefix"], "paddock/");
    let path = format!("/api/v1/repos/{id}");
    assert_eq!(s.call("GET", &path, Some(&a), None).await.status, 200);
    assert_eq!(
        s.call("GET", &path, Some(&reporter), None).await.status,
        403
    );
    // the other tenant: 404 everywhere, list empty
    assert_eq!(s.call("GET", &path, Some(&b), None).await.status, 404);
    assert_eq!(
        s.call(
            "PATCH",
            &path,
            Some(&b),
            Some(&json!({"default_branch": "x"}))
        )
        .await
        .status,
        404
    );
    assert_eq!(s.call("DELETE", &path, Some(&b), None).await.status, 404);
    assert_eq!(
        s.call("GET", "/api/v1/repos", Some(&b), None).await.json()["items"],
        json!([])
    );
    // hostile registrations are 422 with the field named
    for (bad, field) in [
        (json!({"name": "x", "url": "ext::sh -c id"}), "url"),
        (json!({"name": "x", "url": "file:///etc"}), "url"),
        (
            json!({"name": "x", "url": "/srv/git/app.git"}),
            "allow_local_repos",
        ),
        (
            json!({"name": "x", "url": "git@git.example.test:t/x.git"}),
            "ssh_known_hosts",
        ),
        (
            json!({"name": "x", "url": "https://git.example.test/t/x.git", "default_branch": "paddock/1-1"}),
            "collide",
        ),
        (
            json!({"name": "x", "url": "https://git.example.test/t/x.git", "credential": "missing"}),
            "credential",
        ),
        (
            json!({"name": "../x", "url": "https://git.example.test/t/x.git"}),
            "name",
        ),
    ] {
        let r = s.call("POST", "/api/v1/repos", Some(&a), Some(&bad)).await;
        assert_eq!(r.status, 422, "{bad}");
        assert!(
            r.json()["detail"].as_str().unwrap().contains(field),
            "{bad}: {}",
            r.json()
        );
    }
    // a forged workspace in the body is refused
    let forged = s
        .call(
            "POST",
            "/api/v1/repos",
            Some(&b),
            Some(
                &json!({"name": "y", "url": "https://git.example.test/t/y.git", "workspace_id": 1}),
            ),
        )
        .await;
    assert_eq!(forged.status, 400);
    // a credential of another tenant cannot be referenced
    let globex = s
        .store()
        .workspace_by_name("globex")
        .await
        .unwrap()
        .unwrap()
        .id;
    s.store()
        .put_secret(
            &paddock::vault::KeyRing::generate(1),
            globex,
            "their-key",
            "v-123456789",
        )
        .await
        .unwrap();
    let r = s
        .call(
            "PATCH",
            &path,
            Some(&a),
            Some(&json!({"credential": "their-key"})),
        )
        .await;
    assert_eq!(r.status, 422);
    // null clears; the owner can update and delete
    let r = s
        .call(
            "PATCH",
            &path,
            Some(&a),
            Some(&json!({"default_branch": "develop", "credential": null})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["default_branch"], "develop");
    assert_eq!(s.call("DELETE", &path, Some(&a), None).await.status, 204);
    assert_eq!(s.call("GET", &path, Some(&a), None).await.status, 404);
}
api_both!(repo_api, repos_are_per_tenant);

async fn local_repos_need_the_setting(s: Server) {
    let (_, a) = s.user("a@example.test", "acme", Role::Admin).await;
    let r = s
        .call(
            "POST",
            "/api/v1/repos",
            Some(&a),
            Some(&json!({"name": "l", "url": "/srv/git/app.git"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.json());
}
api_both!(
    repo_api_local,
    local_repos_need_the_setting,
    &[("PADDOCK_RUNNER_ALLOW_LOCAL_REPOS", "1")]
);

async fn kill_switch_over_http(s: Server) {
    let (_, maint) = s.user("m@example.test", "acme", Role::Maintainer).await;
    let (_, reporter) = s.user("r@example.test", "acme", Role::Reporter).await;
    let runner = s.runner_key("acme", "box-1").await;
    let (_, other) = s.user("o@example.test", "globex", Role::Admin).await;
    let created = s
        .call(
            "POST",
            "/api/v1/issues",
            Some(&maint),
            Some(&json!({"title": "t", "state": "todo"})),
        )
        .await;
    assert_eq!(created.status, 201);
    let pause = json!({"paused": true});
    for key in [&reporter, &runner] {
        assert_eq!(
            s.call(
                "POST",
                "/api/v1/workspace/kill-switch",
                Some(key),
                Some(&pause)
            )
            .await
            .status,
            403
        );
    }
    assert_eq!(
        s.call("POST", "/api/v1/workspace/kill-switch", None, Some(&pause))
            .await
            .status,
        401
    );
    let r = s
        .call(
            "POST",
            "/api/v1/workspace/kill-switch",
            Some(&maint),
            Some(&pause),
        )
        .await;
    assert_eq!((r.status, r.json()["paused"].clone()), (200, json!(true)));
    // everyone in the workspace (runners too) can read it; another tenant's switch is its own
    for key in [&reporter, &runner] {
        assert_eq!(
            s.call("GET", "/api/v1/workspace/kill-switch", Some(key), None)
                .await
                .json()["paused"],
            true
        );
    }
    assert_eq!(
        s.call("GET", "/api/v1/workspace/kill-switch", Some(&other), None)
            .await
            .json()["paused"],
        false
    );
    // a paused workspace hands out nothing
    let claim = s.call("POST", "/api/v1/claim", Some(&runner), None).await;
    assert_eq!(claim.status, 200);
    assert_eq!(claim.json()["issue"], json!(null));
    let events = s.store().audit_events(0, 1000).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.action == "workspace.runs_pause" && e.outcome == "ok")
    );
    assert_eq!(
        s.call(
            "POST",
            "/api/v1/workspace/kill-switch",
            Some(&maint),
            Some(&json!({"paused": "no"}))
        )
        .await
        .status,
        400
    );
    let r = s
        .call(
            "POST",
            "/api/v1/workspace/kill-switch",
            Some(&maint),
            Some(&json!({"paused": false})),
        )
        .await;
    assert_eq!(r.json()["paused"], false);
    let claim = s.call("POST", "/api/v1/claim", Some(&runner), None).await;
    assert_eq!(claim.json()["issue"]["title"], "t");
}
api_both!(kill_switch_api, kill_switch_over_http);
