//! Repository registration: `/api/v1/repos` (admins and maintainers of the caller's workspace).

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use super::AppState;
use super::context::ReqCtx;
use super::error::ApiResult;
use super::extract::{JsonBody, path_id};
use super::principal::Principal;
use crate::lifecycle::Role;
use crate::store::repos::{DEFAULT_BRANCH_PREFIX, NewRepo, RepoPatch};

/// Who manages repositories, secrets and the kill switch.
pub const MANAGERS: &[Role] = &[Role::Admin, Role::Maintainer];

/// Body of `POST /repos`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRepo {
    name: String,
    url: String,
    #[serde(default)]
    default_branch: Option<String>,
    #[serde(default)]
    credential: Option<String>,
    #[serde(default)]
    ssh_known_hosts: Option<String>,
    #[serde(default)]
    branch_prefix: Option<String>,
}

/// Absent → `None`; `null` → `Some(None)`; a value → `Some(Some(v))`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Body of `PATCH /repos/{id}`: `null` clears `credential` or `ssh_known_hosts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchRepo {
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    default_branch: Option<String>,
    #[serde(default, deserialize_with = "present")]
    credential: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    ssh_known_hosts: Option<Option<String>>,
    #[serde(default)]
    branch_prefix: Option<String>,
}

/// `GET /api/v1/repos`
pub async fn list(State(st): State<AppState>, p: Principal) -> ApiResult<Json<Value>> {
    p.require_role(MANAGERS)?;
    Ok(Json(
        json!({"items": st.store.list_repos(p.workspace_id).await?}),
    ))
}

/// `POST /api/v1/repos`
pub async fn create(
    State(st): State<AppState>,
    Extension(ctx): Extension<ReqCtx>,
    p: Principal,
    JsonBody(b): JsonBody<CreateRepo>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    ctx.set_action("repo.create");
    p.require_role(MANAGERS)?;
    let new = NewRepo {
        name: b.name,
        url: b.url,
        default_branch: b.default_branch.unwrap_or_else(|| "main".into()),
        credential: b.credential,
        ssh_known_hosts: b.ssh_known_hosts,
        branch_prefix: b
            .branch_prefix
            .unwrap_or_else(|| DEFAULT_BRANCH_PREFIX.into()),
    };
    let repo = st
        .store
        .create_repo_allowing_local(p.workspace_id, &new, st.config.runner.allow_local_repos)
        .await?;
    Ok((StatusCode::CREATED, Json(json!(repo))))
}

/// `GET /api/v1/repos/{id}`
pub async fn get(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    p.require_role(MANAGERS)?;
    let id = path_id(&id, "repository")?;
    Ok(Json(json!(st.store.get_repo(p.workspace_id, id).await?)))
}

/// `PATCH /api/v1/repos/{id}`
pub async fn update(
    State(st): State<AppState>,
    Extension(ctx): Extension<ReqCtx>,
    p: Principal,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<PatchRepo>,
) -> ApiResult<Json<Value>> {
    ctx.set_action("repo.update");
    p.require_role(MANAGERS)?;
    let id = path_id(&id, "repository")?;
    let patch = RepoPatch {
        url: b.url,
        default_branch: b.default_branch,
        credential: b.credential,
        ssh_known_hosts: b.ssh_known_hosts,
        branch_prefix: b.branch_prefix,
    };
    let repo = st
        .store
        .update_repo(
            p.workspace_id,
            id,
            &patch,
            st.config.runner.allow_local_repos,
        )
        .await?;
    Ok(Json(json!(repo)))
}

/// `DELETE /api/v1/repos/{id}`
pub async fn delete(
    State(st): State<AppState>,
    Extension(ctx): Extension<ReqCtx>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    ctx.set_action("repo.delete");
    p.require_role(MANAGERS)?;
    let id = path_id(&id, "repository")?;
    st.store.delete_repo(p.workspace_id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
