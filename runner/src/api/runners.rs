//! Runner endpoints: registration heartbeat, the claim, lease heartbeat, and the runner list.

use axum::Json;
use axum::extract::{Extension, Path, State};
use serde_json::{Value, json};

use super::AppState;
use super::context::ReqCtx;
use super::error::ApiResult;
use super::extract::path_id;
use super::principal::Principal;

fn lease_ms(st: &AppState) -> i64 {
    i64::try_from(st.config.claim.lease_secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// `POST /api/v1/runners/heartbeat` (runner key): registers the runner or records that it lives.
pub async fn heartbeat(
    State(st): State<AppState>,
    Extension(ctx): Extension<ReqCtx>,
    p: Principal,
) -> ApiResult<Json<Value>> {
    ctx.set_action("runner.heartbeat");
    let name = p.runner()?;
    Ok(Json(json!(
        st.store.runner_heartbeat(p.workspace_id, name).await?
    )))
}

/// `GET /api/v1/runners`
pub async fn list(State(st): State<AppState>, p: Principal) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({"items": st.store.list_runners(p.workspace_id).await?}),
    ))
}

/// `POST /api/v1/claim` (runner key): the best todo issue of the runner's workspace, or `null`.
pub async fn claim(
    State(st): State<AppState>,
    Extension(ctx): Extension<ReqCtx>,
    p: Principal,
) -> ApiResult<Json<Value>> {
    ctx.set_action("issue.claim");
    let name = p.runner()?.to_string();
    st.store.runner_heartbeat(p.workspace_id, &name).await?;
    match st.store.claim(p.workspace_id, &name, lease_ms(&st)).await? {
        Some(c) => Ok(Json(json!({"issue": c.issue.view(), "run_id": c.run_id}))),
        None => Ok(Json(json!({"issue": null}))),
    }
}

/// `POST /api/v1/issues/{id}/lease` (runner key): extends the lease; 409 when it was lost.
pub async fn lease(
    State(st): State<AppState>,
    Extension(ctx): Extension<ReqCtx>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    ctx.set_action("issue.lease");
    let id = path_id(&id, "issue")?;
    let name = p.runner()?.to_string();
    let until = st
        .store
        .heartbeat_lease(p.workspace_id, id, &name, lease_ms(&st))
        .await?;
    Ok(Json(json!({"lease_expires_at": until})))
}
