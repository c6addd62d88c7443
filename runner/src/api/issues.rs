//! Issue, comment, review and run endpoints.

use axum::Json;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::context::ReqCtx;
use super::error::{ApiError, ApiResult};
use super::extract::{JsonBody, page_params, path_id, query_pairs};
use super::principal::Principal;
use super::validate;
use crate::lifecycle::{self, Actor, Role, State as IssueState};
use crate::store::issues::{IssueFilter, IssuePatch, NewIssue};

const TRIAGERS: &[Role] = &[Role::Admin, Role::Maintainer];
const MEMBERS: &[Role] = &[
    Role::Admin,
    Role::Maintainer,
    Role::Reviewer,
    Role::Reporter,
];

/// Body of `POST /issues`. Unknown fields (workspace, assignee, …) are rejected, not ignored.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateIssue {
    title: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    priority: i64,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    state: Option<String>,
}

fn priority(p: i64) -> ApiResult<i64> {
    if (-1000..=1000).contains(&p) {
        Ok(p)
    } else {
        Err(ApiError::invalid("priority must be -1000..1000"))
    }
}

/// `POST /api/v1/issues`
pub async fn create(
    State(st): State<AppState>,
    Extension(ctx): Extension<ReqCtx>,
    p: Principal,
    JsonBody(b): JsonBody<CreateIssue>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    ctx.set_action("issue.create");
    let role = p.require_role(MEMBERS)?;
    let kind = match b.kind.as_deref() {
        None | Some("task") => "task",
        Some("bug") => "bug",
        Some(_) => {
            return Err(ApiError::invalid(
                "kind must be task or bug (feedback comes only from the feedback ingress)",
            ));
        }
    };
    let state = match b.state.as_deref() {
        None | Some("backlog") => IssueState::Backlog,
        Some("todo") if TRIAGERS.contains(&role) => IssueState::Todo,
        Some("todo") => {
            return Err(ApiError::forbidden(
                "only admins and maintainers create issues directly in todo",
            ));
        }
        Some(_) => return Err(ApiError::invalid("a new issue starts in backlog or todo")),
    };
    let new = NewIssue {
        kind,
        title: validate::title(&b.title).map_err(ApiError::invalid)?,
        body: validate::body(&b.body, true).map_err(ApiError::invalid)?,
        tags: validate::tags(&b.tags).map_err(ApiError::invalid)?,
        priority: priority(b.priority)?,
        state,
        created_by: Some(p.user_id),
        repo_id: None,
    };
    let issue = st.store.create_issue(p.workspace_id, &new).await?;
    Ok((StatusCode::CREATED, Json(json!(issue.view()))))
}

/// `GET /api/v1/issues?state=&kind=&limit=&cursor=`
pub async fn list(
    State(st): State<AppState>,
    p: Principal,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    let pairs = query_pairs(q.as_deref())?;
    let (limit, cursor) = page_params(&pairs)?;
    let mut f = IssueFilter {
        limit,
        before_id: cursor,
        ..Default::default()
    };
    for (k, v) in &pairs {
        match k.as_str() {
            "state" => {
                f.state = Some(
                    IssueState::parse(v)
                        .ok_or_else(|| ApiError::bad_request("bad_query", "unknown state"))?,
                )
            }
            "kind" => {
                if !matches!(v.as_str(), "task" | "bug" | "feedback") {
                    return Err(ApiError::bad_request("bad_query", "unknown kind"));
                }
                f.kind = Some(v.clone());
            }
            _ => {}
        }
    }
    let items = st.store.list_issues(p.workspace_id, &f).await?;
    let next = if items.len() == usize::try_from(limit).unwrap_or(usize::MAX) {
        items.last().map(|i| i.id.to_string())
    } else {
        None
    };
    let views: Vec<_> = items.iter().map(|i| i.view()).collect();
    Ok(Json(json!({"items": views, "next_cursor": next})))
}

/// `GET /api/v1/issues/{id}`
pub async fn get(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = path_id(&id, "issue")?;
    Ok(Json(json!(
        st.store.get_issue(p.workspace_id, id).await?.view()
    )))
}

/// Body of `PATCH /issues/{id}`: fields only; the state moves through `/transition`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchIssue {
    title: Option<String>,
    body: Option<String>,
    priority: Option<i64>,
    tags: Option<Vec<String>>,
}

/// `PATCH /api/v1/issues/{id}`
pub async fn update(
    State(st): State<AppState>,
    Extension(ctx): Extension<ReqCtx>,
    p: Principal,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<PatchIssue>,
) -> ApiResult<Json<Value>> {
    ctx.set_action("issue.update");
    p.require_role(TRIAGERS)?;
    let id = path_id(&id, "issue")?;
    let patch = IssuePatch {
        title: b
            .title
            .as_deref()
            .map(validate::title)
            .transpose()
            .map_err(ApiError::invalid)?,
        body: b
            .body
            .as_deref()
            .map(|s| validate::body(s, true))
            .transpose()
            .map_err(ApiError::invalid)?,
        priority: b.priority.map(priority).transpose()?,
        tags: b
            .tags
            .as_deref()
            .map(validate::tags)
            .transpose()
            .map_err(ApiError::invalid)?,
    };
    Ok(Json(json!(
        st.store
            .update_issue(p.workspace_id, id, &patch)
            .await?
            .view()
    )))
}

/// Body of `POST /issues/{id}/transition`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transition {
    to: String,
    /// Review feedback (reject) — given to later runs.
    feedback: Option<String>,
    /// Runner only: the run's log.
    log: Option<String>,
    /// Runner only: the pushed branch.
    branch: Option<String>,
    /// Runner only, with `to: blocked`: the agent's question.
    question: Option<String>,
}

const MAX_LOG: usize = 1024 * 1024;

async fn do_transition(
    st: &AppState,
    p: &Principal,
    id: i64,
    t: Transition,
) -> ApiResult<Json<Value>> {
    let to = IssueState::parse(&t.to).ok_or_else(|| ApiError::invalid("unknown target state"))?;
    if to == IssueState::InProgress {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "transition_not_allowed",
            "rule `claim`: work starts only through POST /api/v1/claim",
        ));
    }
    let feedback = t
        .feedback
        .as_deref()
        .map(validate::comment)
        .transpose()
        .map_err(ApiError::invalid)?;
    let issue = st.store.get_issue(p.workspace_id, id).await?;
    let from = issue.state().ok_or_else(ApiError::internal)?;
    let rule = lifecycle::check(from, to, p.actor, feedback.as_deref())?;
    let updated = match p.actor {
        Actor::Runner => {
            let runner = p.runner()?;
            let log = validate::strip(t.log.as_deref().unwrap_or(""), true);
            if log.len() > MAX_LOG {
                return Err(ApiError::invalid("log is limited to 1 MiB"));
            }
            let branch = t
                .branch
                .as_deref()
                .map(validate::name)
                .transpose()
                .map_err(ApiError::invalid)?;
            let question = t
                .question
                .as_deref()
                .map(validate::comment)
                .transpose()
                .map_err(ApiError::invalid)?;
            if to == IssueState::Blocked && question.is_none() {
                return Err(ApiError::invalid("blocking needs the agent's question"));
            }
            let u = st
                .store
                .finish_claim(p.workspace_id, id, runner, to, &log, branch.as_deref())
                .await?;
            if let Some(q) = question {
                st.store
                    .add_comment(p.workspace_id, id, None, "runner", &q)
                    .await?;
            }
            u
        }
        _ => {
            if t.log.is_some() || t.branch.is_some() || t.question.is_some() {
                return Err(ApiError::invalid(
                    "log, branch and question are for runners",
                ));
            }
            let u = st
                .store
                .set_state(p.workspace_id, id, from, to, None, feedback.as_deref())
                .await?;
            if let Some(f) = &feedback {
                st.store
                    .add_comment(
                        p.workspace_id,
                        id,
                        Some(p.user_id),
                        "user",
                        &format!("Changes requested: {f}"),
                    )
                    .await?;
            }
            u
        }
    };
    Ok(Json(json!({"rule": rule.name, "issue": updated.view()})))
}

/// `POST /api/v1/issues/{id}/transition`
pub async fn transition(
    State(st): State<AppState>,
    Extension(ctx): Extension<ReqCtx>,
    p: Principal,
    Path(id): Path<String>,
    JsonBody(t): JsonBody<Transition>,
) -> ApiResult<Json<Value>> {
    ctx.set_action("issue.transition");
    let id = path_id(&id, "issue")?;
    do_transition(&st, &p, id, t).await
}

/// `POST /api/v1/issues/{id}/approve`
pub async fn approve(
    State(st): State<AppState>,
    Extension(ctx): Extension<ReqCtx>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    ctx.set_action("review.approve");
    let id = path_id(&id, "issue")?;
    let t = Transition {
        to: "done".into(),
        feedback: None,
        log: None,
        branch: None,
        question: None,
    };
    do_transition(&st, &p, id, t).await
}

/// Body of `POST /issues/{id}/reject`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reject {
    feedback: String,
}

/// `POST /api/v1/issues/{id}/reject`
pub async fn reject(
    State(st): State<AppState>,
    Extension(ctx): Extension<ReqCtx>,
    p: Principal,
    Path(id): Path<String>,
    JsonBody(r): JsonBody<Reject>,
) -> ApiResult<Json<Value>> {
    ctx.set_action("review.reject");
    let id = path_id(&id, "issue")?;
    let t = Transition {
        to: "todo".into(),
        feedback: Some(r.feedback),
        log: None,
        branch: None,
        question: None,
    };
    do_transition(&st, &p, id, t).await
}

/// Body of `POST /issues/{id}/comments`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewComment {
    body: String,
}

/// `POST /api/v1/issues/{id}/comments`
pub async fn add_comment(
    State(st): State<AppState>,
    Extension(ctx): Extension<ReqCtx>,
    p: Principal,
    Path(id): Path<String>,
    JsonBody(c): JsonBody<NewComment>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    ctx.set_action("comment.create");
    let id = path_id(&id, "issue")?;
    let body = validate::comment(&c.body).map_err(ApiError::invalid)?;
    let (author, kind) = match p.actor {
        Actor::Runner => (None, "runner"),
        _ => (Some(p.user_id), "user"),
    };
    let c = st
        .store
        .add_comment(p.workspace_id, id, author, kind, &body)
        .await?;
    Ok((StatusCode::CREATED, Json(json!(c))))
}

/// `GET /api/v1/issues/{id}/comments`
pub async fn list_comments(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = path_id(&id, "issue")?;
    Ok(Json(
        json!({"items": st.store.list_comments(p.workspace_id, id).await?}),
    ))
}

/// `GET /api/v1/runs?issue_id=&limit=&cursor=`
pub async fn list_runs(
    State(st): State<AppState>,
    p: Principal,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    let pairs = query_pairs(q.as_deref())?;
    let (limit, cursor) = page_params(&pairs)?;
    let mut issue = None;
    for (k, v) in &pairs {
        if k == "issue_id" {
            issue = Some(
                path_id(v, "issue")
                    .map_err(|_| ApiError::bad_request("bad_query", "issue_id is not valid"))?,
            );
        }
    }
    let items = st
        .store
        .list_runs(p.workspace_id, issue, cursor, limit)
        .await?;
    let next = if items.len() == usize::try_from(limit).unwrap_or(usize::MAX) {
        items.last().map(|i| i.id.to_string())
    } else {
        None
    };
    Ok(Json(json!({"items": items, "next_cursor": next})))
}

/// `GET /api/v1/runs/{id}`
pub async fn get_run(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = path_id(&id, "run")?;
    Ok(Json(json!(st.store.get_run(p.workspace_id, id).await?)))
}
