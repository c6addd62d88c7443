//! Extractors that answer bad input with a JSON 4xx: JSON bodies, ids in paths, query strings.

use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A JSON body: `Content-Type: application/json` required (415 otherwise), parse errors are 400.
/// The size cap was applied by the edge middleware before this runs.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

fn short(s: &str) -> String {
    let cut: String = s.chars().take(160).collect();
    strip_ctl(&cut)
}

fn strip_ctl(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).collect()
}

/// Whether the request declares a JSON body.
pub fn is_json(req_headers: &axum::http::HeaderMap) -> bool {
    req_headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            let mime = v.split(';').next().unwrap_or("").trim();
            mime.eq_ignore_ascii_case("application/json")
        })
        .unwrap_or(false)
}

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be JSON with Content-Type: application/json",
            ));
        }
        let bytes = axum::body::to_bytes(req.into_body(), usize::MAX)
            .await
            .map_err(|_| ApiError::bad_request("bad_body", "the request body could not be read"))?;
        serde_json::from_slice::<T>(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::bad_request("malformed_json", short(&e.to_string())))
    }
}

/// Parses a path id: a positive decimal integer, else 404 (the resource cannot exist).
pub fn path_id(raw: &str, what: &str) -> Result<i64, ApiError> {
    if raw.is_empty() || raw.len() > 18 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::not_found(what));
    }
    raw.parse::<i64>()
        .ok()
        .filter(|i| *i > 0)
        .ok_or_else(|| ApiError::not_found(what))
}

/// Query parameters as (name, value) pairs. Only unreserved characters are accepted in values
/// (our parameters are ids, states and cursors), so no decoding ambiguity arises.
pub fn query_pairs(raw: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    let mut out = Vec::new();
    let Some(q) = raw else { return Ok(out) };
    if q.len() > 1024 {
        return Err(ApiError::bad_request("bad_query", "query string too long"));
    }
    for part in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        let ok = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        };
        if !ok(k) || !ok(v) {
            return Err(ApiError::bad_request(
                "bad_query",
                "query parameters may only hold letters, digits, '_', '-', '.'",
            ));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

/// Parses `limit` (1..=200, default 50) and an integer `cursor`.
pub fn page_params(pairs: &[(String, String)]) -> Result<(i64, Option<i64>), ApiError> {
    let mut limit = 50;
    let mut cursor = None;
    for (k, v) in pairs {
        match k.as_str() {
            "limit" => {
                limit = v
                    .parse::<i64>()
                    .ok()
                    .filter(|l| (1..=200).contains(l))
                    .ok_or_else(|| ApiError::bad_request("bad_query", "limit must be 1..200"))?;
            }
            "cursor" => {
                cursor =
                    Some(v.parse::<i64>().ok().filter(|c| *c > 0).ok_or_else(|| {
                        ApiError::bad_request("bad_query", "cursor is not valid")
                    })?);
            }
            _ => {}
        }
    }
    Ok((limit, cursor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert_eq!(path_id("12", "issue").unwrap(), 12);
        for bad in ["", "0", "-1", "1e3", "99999999999999999999", "1 ", "١٢"] {
            assert_eq!(
                path_id(bad, "issue").unwrap_err().status,
                StatusCode::NOT_FOUND,
                "{bad}"
            );
        }
    }

    #[test]
    fn queries() {
        assert_eq!(query_pairs(Some("state=todo&limit=5")).unwrap().len(), 2);
        assert!(query_pairs(Some("state=%27;drop")).is_err());
        assert!(page_params(&[("limit".into(), "0".into())]).is_err());
        assert!(page_params(&[("cursor".into(), "x".into())]).is_err());
        assert_eq!(page_params(&[]).unwrap(), (50, None));
    }
}
