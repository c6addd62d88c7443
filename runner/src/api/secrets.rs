//! The write-only secret API: `/api/v1/secrets` (admins and maintainers). A value goes in and is
//! sealed; no route ever returns one, and the audit line records only its size.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::AppState;
use super::context::ReqCtx;
use super::error::{ApiError, ApiResult};
use super::extract::is_json;
use super::principal::Principal;
use super::repos::MANAGERS;
use crate::store::secrets::valid_secret_name;
use crate::vault::KeyRing;

/// Body of `PUT /secrets/{name}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutSecret {
    value: String,
}

fn name_of(raw: &str) -> ApiResult<&str> {
    if valid_secret_name(raw) {
        Ok(raw)
    } else {
        Err(ApiError::not_found("secret"))
    }
}

fn ring(st: &AppState) -> ApiResult<&KeyRing> {
    st.vault.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "vault_unavailable",
            "the secret store has no usable key ring; see the server log",
        )
    })
}

/// `GET /api/v1/secrets`: names and dates, never values.
pub async fn list(State(st): State<AppState>, p: Principal) -> ApiResult<Json<Value>> {
    p.require_role(MANAGERS)?;
    Ok(Json(
        json!({"items": st.store.list_secrets(p.workspace_id).await?}),
    ))
}

/// `PUT /api/v1/secrets/{name}` with `{"value": "…"}`: seals and stores (or replaces) the value.
/// Parse errors are answered without serde's detail, which can quote input.
pub async fn put(
    State(st): State<AppState>,
    Extension(ctx): Extension<ReqCtx>,
    p: Principal,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    ctx.set_action("secret.put");
    p.require_role(MANAGERS)?;
    let name = name_of(&name)?;
    if !is_json(&headers) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body must be JSON with Content-Type: application/json",
        ));
    }
    let body = Zeroizing::new(body.to_vec());
    let parsed: PutSecret = serde_json::from_slice(&body).map_err(|_| {
        ApiError::bad_request(
            "malformed_json",
            "the body must be {\"value\": \"<secret text>\"} and nothing else",
        )
    })?;
    let value = Zeroizing::new(parsed.value);
    let meta = st
        .store
        .put_secret(ring(&st)?, p.workspace_id, name, &value)
        .await?;
    tracing::info!(request_id = %ctx.request_id, workspace = p.workspace_id, secret = %name, key_version = meta.key_version, actor = %p.label(), "secret stored");
    Ok(Json(json!(meta)))
}

/// `DELETE /api/v1/secrets/{name}`; 409 while a repository uses it.
pub async fn delete(
    State(st): State<AppState>,
    Extension(ctx): Extension<ReqCtx>,
    p: Principal,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    ctx.set_action("secret.delete");
    p.require_role(MANAGERS)?;
    let name = name_of(&name)?;
    st.store.delete_secret(p.workspace_id, name).await?;
    Ok(StatusCode::NO_CONTENT)
}
