//! Sign-in, sessions, API keys, and erasure of one's own account.

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::context::ReqCtx;
use super::error::{ApiError, ApiResult};
use super::extract::{JsonBody, path_id};
use super::principal::{Principal, SESSION_COOKIE, Via, too_many};
use super::ratelimit::Category;
use super::validate;
use crate::auth::secrets::{self, SESSION_PREFIX};
use crate::lifecycle::{Actor, Role};
use crate::store::now_ms;

/// Session lifetime: 30 days.
pub const SESSION_TTL_MS: i64 = 30 * 24 * 3600 * 1000;

/// Body of `POST /auth/login`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    email: String,
    password: String,
}

fn session_cookie(st: &AppState, value: &str, max_age_secs: i64) -> String {
    let secure = if st.config.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}"
    )
}

async fn sec(st: &AppState, ctx: &ReqCtx, kind: &str, outcome: &str, who: &str, detail: &str) {
    if let Err(e) = st
        .store
        .security_event(
            kind,
            outcome,
            who,
            &ctx.client_ip.to_string(),
            &ctx.request_id,
            detail,
        )
        .await
    {
        tracing::error!(error = ?e, "security event write failed");
    }
}

/// `POST /api/v1/auth/login`: sets the session cookie.
pub async fn login(
    State(st): State<AppState>,
    Extension(ctx): Extension<ReqCtx>,
    JsonBody(b): JsonBody<Login>,
) -> ApiResult<Response> {
    ctx.set_action("auth.login");
    let limit = if st.config.rate_limit.enabled {
        st.config.rate_limit.auth_per_minute
    } else {
        0
    };
    if !st.limits.allow(Category::Auth, ctx.client_ip, limit) {
        sec(&st, &ctx, "login", "rate_limited", "unknown", "").await;
        return Err(too_many());
    }
    let email = validate::email(&b.email).unwrap_or_default();
    let user = if email.is_empty() {
        None
    } else {
        st.store.user_by_email(&email).await?
    };
    // Always run argon2 so an unknown e-mail takes as long as a wrong password.
    let hash = user
        .as_ref()
        .and_then(|u| u.password_hash.clone())
        .unwrap_or_else(|| secrets::dummy_hash().to_string());
    let pw = b.password;
    let ok = tokio::task::spawn_blocking(move || secrets::verify_password(&pw, &hash))
        .await
        .unwrap_or(false);
    let Some(user) = user.filter(|_| ok) else {
        sec(
            &st,
            &ctx,
            "login",
            "denied",
            "unknown",
            "bad e-mail or password",
        )
        .await;
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "e-mail or password is wrong",
        ));
    };
    let token = secrets::random_token(SESSION_PREFIX, 32);
    let expires = now_ms().saturating_add(SESSION_TTL_MS);
    st.store
        .insert_session(
            user.id,
            &secrets::session_hash(&st.config.session_secret, &token),
            expires,
        )
        .await?;
    ctx.set_actor(format!("user:{}", user.id), None);
    sec(&st, &ctx, "login", "ok", &format!("user:{}", user.id), "").await;
    let memberships = st.store.memberships(user.id).await?;
    let mut resp =
        Json(json!({"user_id": user.id, "workspaces": memberships, "expires_at": expires}))
            .into_response();
    let cookie = HeaderValue::from_str(&session_cookie(&st, &token, SESSION_TTL_MS / 1000))
        .map_err(|_| ApiError::internal())?;
    resp.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(resp)
}

/// `POST /api/v1/auth/logout`: revokes the current session.
pub async fn logout(
    State(st): State<AppState>,
    Extension(ctx): Extension<ReqCtx>,
    p: Principal,
) -> ApiResult<Response> {
    ctx.set_action("auth.logout");
    if let Via::Session(id) = p.via {
        st.store.revoke_session(id).await?;
    }
    sec(&st, &ctx, "logout", "ok", &p.label(), "").await;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    let cookie =
        HeaderValue::from_str(&session_cookie(&st, "", 0)).map_err(|_| ApiError::internal())?;
    resp.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(resp)
}

/// `GET /api/v1/users/me`
pub async fn me(State(st): State<AppState>, p: Principal) -> ApiResult<Json<Value>> {
    let role = match p.actor {
        Actor::Human(r) => r.as_str(),
        _ => "runner",
    };
    Ok(Json(json!({
        "user_id": p.user_id,
        "workspace_id": p.workspace_id,
        "role": role,
        "workspaces": st.store.memberships(p.user_id).await?,
    })))
}

/// `DELETE /api/v1/users/me`: erases the account (GDPR). Workspaces where the user is the only
/// member go with it; elsewhere their issues and comments stay without an author.
pub async fn delete_me(
    State(st): State<AppState>,
    Extension(ctx): Extension<ReqCtx>,
    p: Principal,
) -> ApiResult<Response> {
    ctx.set_action("user.erase");
    p.human_role()?;
    let gone = st.store.erase_user(p.user_id).await?;
    sec(
        &st,
        &ctx,
        "erasure",
        "ok",
        &p.label(),
        &format!("{} workspaces deleted", gone.len()),
    )
    .await;
    let mut resp = Json(json!({"deleted_workspaces": gone})).into_response();
    if let Ok(c) = HeaderValue::from_str(&session_cookie(&st, "", 0)) {
        resp.headers_mut().insert(header::SET_COOKIE, c);
    }
    Ok(resp)
}

/// Body of `POST /apikeys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    name: String,
    #[serde(default)]
    expires_in_days: Option<u32>,
    /// "user" (default) or "runner" (admins only).
    #[serde(default)]
    kind: Option<String>,
}

async fn issue_key(
    st: &AppState,
    p: &Principal,
    kind: &str,
    name: &str,
    expires_at: Option<i64>,
) -> ApiResult<Value> {
    let (key, hash, prefix) = secrets::new_api_key();
    let info = st
        .store
        .insert_api_key(
            p.user_id,
            p.workspace_id,
            kind,
            name,
            &hash,
            &prefix,
            expires_at,
        )
        .await?;
    Ok(json!({"key": key, "info": info, "note": "store this key now; it is not shown again"}))
}

/// `POST /api/v1/apikeys`: creates a key in the caller's workspace; the key is in this response only.
pub async fn create_key(
    State(st): State<AppState>,
    Extension(ctx): Extension<ReqCtx>,
    p: Principal,
    JsonBody(b): JsonBody<NewKey>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    ctx.set_action("apikey.create");
    let role = p.human_role()?;
    let kind = match b.kind.as_deref() {
        None | Some("user") => "user",
        Some("runner") if role == Role::Admin => "runner",
        Some("runner") => return Err(ApiError::forbidden("only admins create runner keys")),
        Some(_) => return Err(ApiError::invalid("kind must be user or runner")),
    };
    let name = validate::name(&b.name).map_err(ApiError::invalid)?;
    let expires = match b.expires_in_days {
        Some(0) | Some(3651..) => return Err(ApiError::invalid("expires_in_days must be 1..3650")),
        Some(d) => Some(now_ms().saturating_add(i64::from(d) * 86_400_000)),
        None => None,
    };
    let v = issue_key(&st, &p, kind, &name, expires).await?;
    sec(&st, &ctx, "apikey_create", "ok", &p.label(), &name).await;
    Ok((StatusCode::CREATED, Json(v)))
}

/// `GET /api/v1/apikeys`: the caller's keys (metadata only).
pub async fn list_keys(State(st): State<AppState>, p: Principal) -> ApiResult<Json<Value>> {
    p.human_role()?;
    Ok(Json(
        json!({"items": st.store.list_api_keys(p.user_id).await?}),
    ))
}

/// `DELETE /api/v1/apikeys/{id}`
pub async fn revoke_key(
    State(st): State<AppState>,
    Extension(ctx): Extension<ReqCtx>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    ctx.set_action("apikey.revoke");
    p.human_role()?;
    let id = path_id(&id, "api key")?;
    st.store.revoke_api_key(p.user_id, id).await?;
    sec(
        &st,
        &ctx,
        "apikey_revoke",
        "ok",
        &p.label(),
        &id.to_string(),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/apikeys/{id}/rotate`: revokes the key and returns a new one with its name and kind.
pub async fn rotate_key(
    State(st): State<AppState>,
    Extension(ctx): Extension<ReqCtx>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    ctx.set_action("apikey.rotate");
    let role = p.human_role()?;
    let id = path_id(&id, "api key")?;
    let old = st
        .store
        .list_api_keys(p.user_id)
        .await?
        .into_iter()
        .find(|k| k.id == id && k.revoked_at.is_none())
        .ok_or_else(|| ApiError::not_found("api key"))?;
    if old.kind == "runner" && role != Role::Admin {
        return Err(ApiError::forbidden("only admins rotate runner keys"));
    }
    st.store.revoke_api_key(p.user_id, id).await?;
    let v = issue_key(&st, &p, &old.kind, &old.name, old.expires_at).await?;
    sec(
        &st,
        &ctx,
        "apikey_rotate",
        "ok",
        &p.label(),
        &id.to_string(),
    )
    .await;
    Ok((StatusCode::CREATED, Json(v)))
}
