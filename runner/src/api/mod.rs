//! The JSON API under `/api/v1`, plus `/healthz`.

pub mod account;
pub mod context;
pub mod error;
pub mod extract;
pub mod feedback;
pub mod issues;
pub mod openapi;
pub mod principal;
pub mod ratelimit;
pub mod repos;
pub mod runners;
pub mod secrets;
pub mod validate;
pub mod workspace;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::routing::{delete, get, post, put};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::Config;
use crate::store::Store;
use crate::vault::KeyRing;
use error::ApiError;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub config: Arc<Config>,
    pub limits: Arc<ratelimit::RateLimiter>,
    /// Feedback signatures already used, with their expiry (Unix seconds).
    pub replay: Arc<Mutex<HashMap<String, i64>>>,
    /// Request tasks (handler + audit line), awaited at shutdown so none is cut short.
    pub tasks: tokio_util::task::TaskTracker,
    /// The key ring sealing stored secrets; `None` when it could not be loaded (the secret
    /// routes then answer 503; production configs always carry one).
    pub vault: Option<Arc<KeyRing>>,
}

impl AppState {
    /// State over `store` and `config`; the key ring comes from `KeyRing::from_config`.
    pub fn new(store: Store, config: Config) -> AppState {
        let vault = match KeyRing::from_config(&config) {
            Ok((ring, source)) => {
                tracing::info!(versions = ?ring.versions(), source = ?source, "vault key ring loaded");
                Some(Arc::new(ring))
            }
            Err(e) => {
                tracing::error!(error = %e, "vault key ring unavailable; secret routes will answer 503");
                None
            }
        };
        AppState {
            vault,
            store,
            config: Arc::new(config),
            limits: Arc::new(ratelimit::RateLimiter::default()),
            replay: Arc::new(Mutex::new(HashMap::new())),
            tasks: tokio_util::task::TaskTracker::new(),
        }
    }
}

async fn healthz(
    axum::extract::State(st): axum::extract::State<AppState>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    sqlx::query("SELECT 1")
        .execute(st.store.pool())
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the database is not reachable",
            )
        })?;
    Ok(axum::Json(serde_json::json!({"status": "ok"})))
}

async fn no_route() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

async fn wrong_method() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method",
    )
}

fn cors(config: &Config) -> Option<CorsLayer> {
    if config.http.cors_origins.is_empty() {
        return None;
    }
    let origins: Vec<HeaderValue> = config
        .http
        .cors_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_credentials(true)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                HeaderName::from_static("content-type"),
                HeaderName::from_static("x-api-key"),
                HeaderName::from_static("authorization"),
                HeaderName::from_static("x-paddock-workspace"),
                HeaderName::from_static("x-request-signature"),
                HeaderName::from_static("x-request-timestamp"),
            ])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

/// The whole HTTP surface. Serve it with `into_make_service_with_connect_info::<SocketAddr>()`.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/auth/login", post(account::login))
        .route("/auth/logout", post(account::logout))
        .route("/users/me", get(account::me).delete(account::delete_me))
        .route(
            "/apikeys",
            get(account::list_keys).post(account::create_key),
        )
        .route("/apikeys/{id}", delete(account::revoke_key))
        .route("/apikeys/{id}/rotate", post(account::rotate_key))
        .route("/issues", get(issues::list).post(issues::create))
        .route("/issues/{id}", get(issues::get).patch(issues::update))
        .route("/issues/{id}/transition", post(issues::transition))
        .route("/issues/{id}/approve", post(issues::approve))
        .route("/issues/{id}/reject", post(issues::reject))
        .route(
            "/issues/{id}/comments",
            get(issues::list_comments).post(issues::add_comment),
        )
        .route("/issues/{id}/lease", post(runners::lease))
        .route("/claim", post(runners::claim))
        .route("/runs", get(issues::list_runs))
        .route("/runs/{id}", get(issues::get_run))
        .route("/runners", get(runners::list))
        .route("/runners/heartbeat", post(runners::heartbeat))
        .route("/repos", get(repos::list).post(repos::create))
        .route(
            "/repos/{id}",
            get(repos::get).patch(repos::update).delete(repos::delete),
        )
        .route("/secrets", get(secrets::list))
        .route("/secrets/{name}", put(secrets::put).delete(secrets::delete))
        .route(
            "/workspace/kill-switch",
            get(workspace::get).post(workspace::set),
        )
        .route("/feedback", post(feedback::post))
        .route("/openapi.json", get(openapi::handler));
    let mut app = Router::new()
        .route("/healthz", get(healthz))
        .nest("/api/v1", api)
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method);
    if let Some(c) = cors(&state.config) {
        app = app.layer(c);
    }
    app.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        context::edge,
    ))
    .with_state(state)
}
