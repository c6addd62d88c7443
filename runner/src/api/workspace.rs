//! The workspace kill switch: `GET`/`POST /api/v1/workspace/kill-switch`.

use axum::Json;
use axum::extract::{Extension, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::context::ReqCtx;
use super::error::ApiResult;
use super::extract::JsonBody;
use super::principal::Principal;
use super::repos::MANAGERS;

/// Body of `POST /workspace/kill-switch`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KillSwitch {
    paused: bool,
}

/// `GET /api/v1/workspace/kill-switch`: any member or runner of the workspace may read it.
pub async fn get(State(st): State<AppState>, p: Principal) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({"paused": st.store.runs_paused(p.workspace_id).await?}),
    ))
}

/// `POST /api/v1/workspace/kill-switch` `{"paused": true|false}` (admins and maintainers).
pub async fn set(
    State(st): State<AppState>,
    Extension(ctx): Extension<ReqCtx>,
    p: Principal,
    JsonBody(b): JsonBody<KillSwitch>,
) -> ApiResult<Json<Value>> {
    ctx.set_action(if b.paused {
        "workspace.runs_pause"
    } else {
        "workspace.runs_resume"
    });
    p.require_role(MANAGERS)?;
    let paused = st.store.set_runs_paused(p.workspace_id, b.paused).await?;
    tracing::warn!(request_id = %ctx.request_id, workspace = p.workspace_id, actor = %p.label(), paused, "kill switch set");
    Ok(Json(json!({"paused": paused})))
}
