//! `/api/v1/openapi.json`, generated from the route table below (the router test checks that every
//! entry is served, so the document cannot drift from the code).

use axum::Json;
use serde_json::{Map, Value, json};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Public,
    Person,
    Runner,
    Member,
}

/// One route of the API.
#[derive(Debug, Clone, Copy)]
pub struct RouteDoc {
    pub method: &'static str,
    /// Path under `/api/v1`, with `{id}` parameters.
    pub path: &'static str,
    pub summary: &'static str,
    pub access: Access,
    /// Request body fields: (name, JSON type, required).
    pub body: &'static [(&'static str, &'static str, bool)],
}

const ISSUE_BODY: &[(&str, &str, bool)] = &[
    ("title", "string", true),
    ("body", "string", false),
    ("tags", "array", false),
    ("priority", "integer", false),
    ("kind", "string", false),
    ("state", "string", false),
];

const REPO_BODY: &[(&str, &str, bool)] = &[
    ("name", "string", true),
    ("url", "string", true),
    ("default_branch", "string", false),
    ("credential", "string", false),
    ("ssh_known_hosts", "string", false),
    ("branch_prefix", "string", false),
];

/// Every route of `/api/v1`.
pub const ROUTES: &[RouteDoc] = &[
    RouteDoc {
        method: "post",
        path: "/auth/login",
        summary: "Sign in; sets the session cookie",
        access: Access::Public,
        body: &[("email", "string", true), ("password", "string", true)],
    },
    RouteDoc {
        method: "post",
        path: "/auth/logout",
        summary: "Revoke the current session",
        access: Access::Member,
        body: &[],
    },
    RouteDoc {
        method: "get",
        path: "/users/me",
        summary: "The caller and their workspaces",
        access: Access::Member,
        body: &[],
    },
    RouteDoc {
        method: "delete",
        path: "/users/me",
        summary: "Erase the caller's account (GDPR)",
        access: Access::Person,
        body: &[],
    },
    RouteDoc {
        method: "get",
        path: "/apikeys",
        summary: "The caller's API keys (metadata)",
        access: Access::Person,
        body: &[],
    },
    RouteDoc {
        method: "post",
        path: "/apikeys",
        summary: "Create an API key (shown once)",
        access: Access::Person,
        body: &[
            ("name", "string", true),
            ("expires_in_days", "integer", false),
            ("kind", "string", false),
        ],
    },
    RouteDoc {
        method: "delete",
        path: "/apikeys/{id}",
        summary: "Revoke an API key",
        access: Access::Person,
        body: &[],
    },
    RouteDoc {
        method: "post",
        path: "/apikeys/{id}/rotate",
        summary: "Revoke a key and issue its replacement",
        access: Access::Person,
        body: &[],
    },
    RouteDoc {
        method: "get",
        path: "/issues",
        summary: "List issues (filters: state, kind; cursor pagination)",
        access: Access::Member,
        body: &[],
    },
    RouteDoc {
        method: "post",
        path: "/issues",
        summary: "Create an issue",
        access: Access::Person,
        body: ISSUE_BODY,
    },
    RouteDoc {
        method: "get",
        path: "/issues/{id}",
        summary: "One issue",
        access: Access::Member,
        body: &[],
    },
    RouteDoc {
        method: "patch",
        path: "/issues/{id}",
        summary: "Change title, body, priority or tags",
        access: Access::Person,
        body: &[
            ("title", "string", false),
            ("body", "string", false),
            ("priority", "integer", false),
            ("tags", "array", false),
        ],
    },
    RouteDoc {
        method: "post",
        path: "/issues/{id}/transition",
        summary: "Move an issue along the life cycle (409 names the rule)",
        access: Access::Member,
        body: &[
            ("to", "string", true),
            ("feedback", "string", false),
            ("log", "string", false),
            ("branch", "string", false),
            ("question", "string", false),
        ],
    },
    RouteDoc {
        method: "post",
        path: "/issues/{id}/approve",
        summary: "Review: in_review -> done (people only)",
        access: Access::Person,
        body: &[],
    },
    RouteDoc {
        method: "post",
        path: "/issues/{id}/reject",
        summary: "Review: in_review -> todo with feedback for the next run",
        access: Access::Person,
        body: &[("feedback", "string", true)],
    },
    RouteDoc {
        method: "get",
        path: "/issues/{id}/comments",
        summary: "Comments of an issue",
        access: Access::Member,
        body: &[],
    },
    RouteDoc {
        method: "post",
        path: "/issues/{id}/comments",
        summary: "Comment on an issue",
        access: Access::Member,
        body: &[("body", "string", true)],
    },
    RouteDoc {
        method: "post",
        path: "/issues/{id}/lease",
        summary: "Extend the caller's lease (409 when lost)",
        access: Access::Runner,
        body: &[],
    },
    RouteDoc {
        method: "post",
        path: "/claim",
        summary: "Atomically claim the best todo issue",
        access: Access::Runner,
        body: &[],
    },
    RouteDoc {
        method: "get",
        path: "/runs",
        summary: "List runs (filter: issue_id; cursor pagination)",
        access: Access::Member,
        body: &[],
    },
    RouteDoc {
        method: "get",
        path: "/runs/{id}",
        summary: "One run with its log",
        access: Access::Member,
        body: &[],
    },
    RouteDoc {
        method: "get",
        path: "/runners",
        summary: "Registered runners",
        access: Access::Member,
        body: &[],
    },
    RouteDoc {
        method: "post",
        path: "/runners/heartbeat",
        summary: "Register or heartbeat the calling runner",
        access: Access::Runner,
        body: &[],
    },
    RouteDoc {
        method: "get",
        path: "/repos",
        summary: "Registered repositories (admins, maintainers)",
        access: Access::Person,
        body: &[],
    },
    RouteDoc {
        method: "post",
        path: "/repos",
        summary: "Register a repository: ssh:// or user@host:path with pinned host keys, or https://",
        access: Access::Person,
        body: REPO_BODY,
    },
    RouteDoc {
        method: "get",
        path: "/repos/{id}",
        summary: "One repository",
        access: Access::Person,
        body: &[],
    },
    RouteDoc {
        method: "patch",
        path: "/repos/{id}",
        summary: "Change a repository (null clears credential or ssh_known_hosts)",
        access: Access::Person,
        body: &[
            ("url", "string", false),
            ("default_branch", "string", false),
            ("credential", "string", false),
            ("ssh_known_hosts", "string", false),
            ("branch_prefix", "string", false),
        ],
    },
    RouteDoc {
        method: "delete",
        path: "/repos/{id}",
        summary: "Remove a repository",
        access: Access::Person,
        body: &[],
    },
    RouteDoc {
        method: "get",
        path: "/secrets",
        summary: "Names of the workspace's sealed secrets (never values)",
        access: Access::Person,
        body: &[],
    },
    RouteDoc {
        method: "put",
        path: "/secrets/{name}",
        summary: "Seal and store a secret value (write-only; no route returns it)",
        access: Access::Person,
        body: &[("value", "string", true)],
    },
    RouteDoc {
        method: "delete",
        path: "/secrets/{name}",
        summary: "Delete a secret (409 while a repository uses it)",
        access: Access::Person,
        body: &[],
    },
    RouteDoc {
        method: "get",
        path: "/workspace/kill-switch",
        summary: "Whether runs of the workspace are paused",
        access: Access::Member,
        body: &[],
    },
    RouteDoc {
        method: "post",
        path: "/workspace/kill-switch",
        summary: "Pause (stop every run, claim nothing) or resume the workspace's runs",
        access: Access::Person,
        body: &[("paused", "boolean", true)],
    },
    RouteDoc {
        method: "post",
        path: "/feedback",
        summary: "Public feedback: a feedback issue in the backlog (rate limited, optionally signed)",
        access: Access::Public,
        body: &[
            ("title", "string", true),
            ("body", "string", false),
            ("tags", "array", false),
        ],
    },
    RouteDoc {
        method: "get",
        path: "/openapi.json",
        summary: "This document",
        access: Access::Public,
        body: &[],
    },
];

/// Builds the OpenAPI 3.1 document from `ROUTES`.
pub fn document() -> Value {
    let mut paths = Map::new();
    for r in ROUTES {
        let full = format!("/api/v1{}", r.path);
        let entry = paths.entry(full).or_insert_with(|| json!({}));
        let mut op = json!({
            "summary": r.summary,
            "responses": {
                "200": {"description": "success"},
                "4XX": {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            }
        });
        op["security"] = match r.access {
            Access::Public => json!([]),
            _ => json!([{"apiKey": []}, {"bearer": []}, {"session": []}]),
        };
        op["x-paddock-access"] = json!(format!("{:?}", r.access).to_lowercase());
        if r.path.contains("{id}") {
            op["parameters"] = json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "integer", "minimum": 1}}]);
        }
        if r.path.contains("{name}") {
            op["parameters"] = json!([{"name": "name", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$"}}]);
        }
        if !r.body.is_empty() {
            let mut props = Map::new();
            let mut required = Vec::new();
            for (name, ty, req) in r.body {
                let schema = if *ty == "array" {
                    json!({"type": "array", "items": {"type": "string"}})
                } else {
                    json!({"type": ty})
                };
                props.insert((*name).to_string(), schema);
                if *req {
                    required.push(*name);
                }
            }
            op["requestBody"] = json!({
                "required": true,
                "content": {"application/json": {"schema": {
                    "type": "object", "additionalProperties": false, "properties": props, "required": required
                }}}
            });
        }
        if let Some(obj) = entry.as_object_mut() {
            obj.insert(r.method.to_string(), op);
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Paddock API", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "paddock_session"}
            },
            "schemas": {"Error": {"type": "object", "required": ["error", "detail"], "properties": {
                "error": {"type": "string"}, "detail": {"type": "string"}
            }}}
        }
    })
}

/// `GET /api/v1/openapi.json`
pub async fn handler() -> Json<Value> {
    Json(document())
}
