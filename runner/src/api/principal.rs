//! Who is calling: API key (`X-API-Key` or `Authorization: Bearer`) or session cookie. Tenancy comes
//! only from here, never from a request body.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};

use super::AppState;
use super::context::ReqCtx;
use super::error::ApiError;
use super::ratelimit::Category;
use crate::auth::secrets::{API_KEY_PREFIX, SESSION_PREFIX, session_hash, sha256_hex};
use crate::lifecycle::{Actor, Role};
use crate::store::now_ms;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "paddock_session";
/// Header choosing among a session user's workspaces.
pub const WORKSPACE_HEADER: &str = "x-paddock-workspace";

/// How the caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    ApiKey(i64),
    Session(i64),
}

/// A verified caller acting in one workspace.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: i64,
    pub workspace_id: i64,
    pub actor: Actor,
    /// The runner's name (runner keys only): what `claimed_by` records.
    pub runner_name: Option<String>,
    pub via: Via,
}

impl Principal {
    /// The audit/actor string: never an e-mail or secret.
    pub fn label(&self) -> String {
        match (&self.actor, &self.runner_name) {
            (Actor::Runner, Some(n)) => format!("runner:{}:{}", self.user_id, n),
            _ => format!("user:{}", self.user_id),
        }
    }

    /// The role, for people; `forbidden` for runners.
    pub fn human_role(&self) -> Result<Role, ApiError> {
        match self.actor {
            Actor::Human(r) => Ok(r),
            _ => Err(ApiError::forbidden(
                "this endpoint is for people, not runner keys",
            )),
        }
    }

    /// Requires a person with one of `roles`.
    pub fn require_role(&self, roles: &[Role]) -> Result<Role, ApiError> {
        let r = self.human_role()?;
        if roles.contains(&r) {
            Ok(r)
        } else {
            Err(ApiError::forbidden(format!(
                "role {} may not do this",
                r.as_str()
            )))
        }
    }

    /// The runner name; `forbidden` for people.
    pub fn runner(&self) -> Result<&str, ApiError> {
        match (&self.actor, &self.runner_name) {
            (Actor::Runner, Some(n)) => Ok(n),
            _ => Err(ApiError::forbidden("this endpoint needs a runner key")),
        }
    }
}

fn cookie_value(parts: &Parts, name: &str) -> Option<String> {
    for v in parts.headers.get_all(header::COOKIE) {
        let Ok(s) = v.to_str() else { continue };
        for c in s.split(';') {
            if let Some((k, val)) = c.trim().split_once('=')
                && k == name
            {
                return Some(val.to_string());
            }
        }
    }
    None
}

fn presented_key(parts: &Parts) -> Result<Option<String>, ApiError> {
    let x = parts
        .headers
        .get("x-api-key")
        .map(|v| v.to_str().map(str::trim).map(String::from));
    let bearer = parts.headers.get(header::AUTHORIZATION).map(|v| {
        v.to_str()
            .ok()
            .and_then(|s| s.strip_prefix("Bearer ").map(|t| t.trim().to_string()))
            .ok_or(())
    });
    match (x, bearer) {
        (Some(Ok(a)), Some(Ok(b))) if a != b => Err(ApiError::bad_request(
            "ambiguous_credentials",
            "X-API-Key and Authorization disagree",
        )),
        (Some(Ok(a)), _) => Ok(Some(a)),
        (None, Some(Ok(b))) => Ok(Some(b)),
        (Some(Err(_)), _) | (None, Some(Err(_))) => Err(ApiError::unauthenticated()),
        (None, None) => Ok(None),
    }
}

async fn deny(
    state: &AppState,
    ctx: &ReqCtx,
    kind: &str,
    principal: &str,
    detail: &str,
) -> ApiError {
    if let Err(e) = state
        .store
        .security_event(
            kind,
            "denied",
            principal,
            &ctx.client_ip.to_string(),
            &ctx.request_id,
            detail,
        )
        .await
    {
        tracing::error!(error = ?e, "security event write failed");
    }
    tracing::warn!(request_id = %ctx.request_id, kind, detail, client = %ctx.client_ip, "authentication denied");
    ApiError::unauthenticated()
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let ctx = parts
            .extensions
            .get::<ReqCtx>()
            .cloned()
            .ok_or_else(ApiError::internal)?;
        let key = presented_key(parts)?;
        let cookie = cookie_value(parts, SESSION_COOKIE);
        if key.is_none() && cookie.is_none() {
            return Err(ApiError::unauthenticated());
        }
        // Failed credentials spend the strict auth budget, so keys and sessions cannot be guessed.
        let auth_limit = if state.config.rate_limit.enabled {
            state.config.rate_limit.auth_per_minute
        } else {
            0
        };
        let p = if let Some(key) = key {
            let row = if key.starts_with(API_KEY_PREFIX) && key.len() < 200 {
                state
                    .store
                    .api_key_by_hash(&sha256_hex(key.as_bytes()))
                    .await?
            } else {
                None
            };
            let Some(row) = row else {
                if !state
                    .limits
                    .allow(Category::Auth, ctx.client_ip, auth_limit)
                {
                    return Err(too_many());
                }
                return Err(deny(state, &ctx, "api_key", "unknown", "unknown key").await);
            };
            let who = format!("user:{}", row.user_id);
            if row.revoked_at.is_some() {
                return Err(deny(
                    state,
                    &ctx,
                    "api_key",
                    &who,
                    &format!("revoked key {}", row.id),
                )
                .await);
            }
            if row.expires_at.is_some_and(|e| e <= now_ms()) {
                return Err(deny(
                    state,
                    &ctx,
                    "api_key",
                    &who,
                    &format!("expired key {}", row.id),
                )
                .await);
            }
            let Some(role) = row.role.as_deref().and_then(Role::parse) else {
                return Err(
                    deny(state, &ctx, "api_key", &who, "owner is no longer a member").await,
                );
            };
            state.store.touch_api_key(row.id).await?;
            let (actor, runner_name) = if row.kind == "runner" {
                (Actor::Runner, Some(row.name.clone()))
            } else {
                (Actor::Human(role), None)
            };
            Principal {
                user_id: row.user_id,
                workspace_id: row.workspace_id,
                actor,
                runner_name,
                via: Via::ApiKey(row.id),
            }
        } else {
            let token = cookie.unwrap_or_default();
            let row = if token.starts_with(SESSION_PREFIX) && token.len() < 200 {
                state
                    .store
                    .session_by_hash(&session_hash(&state.config.session_secret, &token))
                    .await?
            } else {
                None
            };
            let Some(row) = row else {
                if !state
                    .limits
                    .allow(Category::Auth, ctx.client_ip, auth_limit)
                {
                    return Err(too_many());
                }
                return Err(deny(state, &ctx, "session", "unknown", "unknown session").await);
            };
            let who = format!("user:{}", row.user_id);
            if row.revoked_at.is_some() || row.expires_at <= now_ms() {
                return Err(deny(state, &ctx, "session", &who, "revoked or expired session").await);
            }
            // Cookies ride along on cross-site requests; SameSite=Strict stops that in browsers,
            // and a mutating request from a foreign Origin is refused here as well.
            let origin = parts
                .headers
                .get(header::ORIGIN)
                .and_then(|o| o.to_str().ok());
            if parts.method != Method::GET
                && parts.method != Method::HEAD
                && let Some(origin) = origin
            {
                let own = origin == public_origin(&state.config.public_url)
                    || state.config.http.cors_origins.iter().any(|o| o == origin);
                if !own {
                    return Err(ApiError::forbidden(
                        "cross-origin request with a session cookie",
                    ));
                }
            }
            let memberships = state.store.memberships(row.user_id).await?;
            let wanted = parts
                .headers
                .get(WORKSPACE_HEADER)
                .and_then(|v| v.to_str().ok());
            let m = match wanted {
                Some(w) => memberships.into_iter().find(|m| m.workspace == w),
                None => memberships.into_iter().next(),
            };
            let Some(m) = m else {
                return Err(ApiError::forbidden("not a member of that workspace"));
            };
            let role = Role::parse(&m.role).ok_or_else(ApiError::internal)?;
            Principal {
                user_id: row.user_id,
                workspace_id: m.workspace_id,
                actor: Actor::Human(role),
                runner_name: None,
                via: Via::Session(row.id),
            }
        };
        if state.config.rate_limit.enabled
            && !state.limits.allow(
                Category::Api,
                ctx.client_ip,
                state.config.rate_limit.api_per_minute,
            )
        {
            return Err(too_many());
        }
        ctx.set_actor(p.label(), Some(p.workspace_id));
        Ok(p)
    }
}

/// `scheme://host[:port]` of the public URL (what browsers send as `Origin`).
fn public_origin(url: &str) -> &str {
    match url.find("://") {
        Some(i) => match url[i + 3..].find('/') {
            Some(j) => &url[..i + 3 + j],
            None => url,
        },
        None => url,
    }
}

/// 429 with a JSON body.
pub fn too_many() -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "too many requests; slow down",
    )
}
