//! API errors: a JSON body `{"error": "<code>", "detail": "…"}` with the right status, never SQL or secrets.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::lifecycle::TransitionError;
use crate::store::StoreError;

/// An error answered to a client.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
}

impl ApiError {
    /// An error with status, stable code and human detail.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            detail: detail.into(),
        }
    }
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, detail)
    }
    pub fn invalid(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", detail)
    }
    pub fn unauthenticated() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "valid credentials are required",
        )
    }
    pub fn forbidden(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }
    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }
    pub fn internal() -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log by request id",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"error": self.code, "detail": self.detail})),
        )
            .into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NotFound(what) => ApiError::not_found(what),
            StoreError::Conflict(d) => ApiError::new(StatusCode::CONFLICT, "conflict", d),
            StoreError::Invalid(d) => ApiError::invalid(d),
            StoreError::Vault(crate::vault::VaultError::BadValue) => {
                ApiError::invalid(crate::vault::VaultError::BadValue.to_string())
            }
            other => {
                // The database error stays in the server log, never in the response.
                tracing::error!(error = ?other, "store error");
                ApiError::internal()
            }
        }
    }
}

impl From<TransitionError> for ApiError {
    fn from(e: TransitionError) -> ApiError {
        match e {
            TransitionError::NeedsFeedback { .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "feedback_required",
                e.to_string(),
            ),
            TransitionError::NoRule { .. } => {
                ApiError::new(StatusCode::CONFLICT, "illegal_transition", e.to_string())
            }
            TransitionError::NotAllowed { .. } => ApiError::new(
                StatusCode::CONFLICT,
                "transition_not_allowed",
                e.to_string(),
            ),
        }
    }
}

/// Handler result.
pub type ApiResult<T> = Result<T, ApiError>;
