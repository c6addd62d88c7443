//! The public feedback ingress: anonymous, rate-limited, optionally signed; makes only a feedback
//! issue in the backlog of the configured workspace.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};
use std::collections::HashMap;
use std::sync::Mutex;

use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;

use super::AppState;
use super::context::ReqCtx;
use super::error::{ApiError, ApiResult};
use super::extract::is_json;
use super::principal::too_many;
use super::ratelimit::Category;
use super::validate;
use crate::lifecycle::State as IssueState;
use crate::store::issues::NewIssue;

/// Path the signature covers.
pub const FEEDBACK_PATH: &str = "/api/v1/feedback";

/// The only fields a feedback post may carry. Anything else (state, kind, assignee, workspace,
/// priority) is rejected, so a caller learns at once that it cannot steer the issue.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedbackBody {
    title: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    tags: Vec<String>,
}

/// The string a signing site computes HMAC-SHA256 over.
pub fn signing_string(method: &str, path: &str, timestamp: &str, body: &[u8]) -> String {
    format!(
        "{method}\n{path}\n{timestamp}\n{}",
        crate::auth::secrets::sha256_hex(body)
    )
}

/// Hex HMAC-SHA256 of the signing string (what `X-Request-Signature` carries).
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(signing_string("POST", FEEDBACK_PATH, timestamp, body).as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn unauthorized(detail: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "bad_signature",
        detail.to_string(),
    )
}

fn check_signature(st: &AppState, secret: &str, headers: &HeaderMap, body: &[u8]) -> ApiResult<()> {
    let window = i64::try_from(st.config.feedback.signature_window_secs).unwrap_or(300);
    let now = crate::store::now_ms() / 1000;
    verify_signature(&st.replay, secret, window, now, headers, body)
}

/// Checks the timestamp window and the HMAC, then spends the signature: a valid signature is
/// good once within the window. The replay cache is keyed on the signature's bytes (as lower
/// hex), not on its spelling, so `ABCD…`, `abcd…` and `sha256=AbCd…` are one signature.
fn verify_signature(
    replay: &Mutex<HashMap<String, i64>>,
    secret: &str,
    window: i64,
    now: i64,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<()> {
    let ts = headers
        .get("x-request-timestamp")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| unauthorized("X-Request-Timestamp and X-Request-Signature are required"))?;
    let sig = headers
        .get("x-request-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| unauthorized("X-Request-Timestamp and X-Request-Signature are required"))?;
    let sig = sig.trim().strip_prefix("sha256=").unwrap_or(sig.trim());
    let ts_num: i64 = ts
        .parse()
        .ok()
        .filter(|_| ts.len() <= 12 && ts.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| unauthorized("X-Request-Timestamp must be Unix seconds"))?;
    if (now - ts_num).abs() > window {
        return Err(unauthorized("timestamp outside the allowed window"));
    }
    let given = hex::decode(sig).map_err(|_| unauthorized("signature is not hex"))?;
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .map_err(|_| ApiError::internal())?;
    mac.update(signing_string("POST", FEEDBACK_PATH, ts, body).as_bytes());
    // verify_slice compares in constant time.
    mac.verify_slice(&given)
        .map_err(|_| unauthorized("signature does not match"))?;
    // A valid signature is good once: replaying it inside the window is refused. The key is
    // the canonical spelling of the bytes that were verified.
    let key = hex::encode(&given);
    let mut seen = replay.lock().map_err(|_| ApiError::internal())?;
    if seen.len() > 100_000 {
        seen.retain(|_, exp| *exp > now);
    }
    if seen.get(&key).is_some_and(|exp| *exp > now) {
        return Err(unauthorized("this signature was already used"));
    }
    // The signature stays acceptable until `ts + window` (a timestamp may lie ahead of the
    // clock by up to the window), inclusive: the entry must live past that second.
    seen.insert(key, now.max(ts_num) + window + 1);
    Ok(())
}

/// `POST /api/v1/feedback`
pub async fn post(
    State(st): State<AppState>,
    Extension(ctx): Extension<ReqCtx>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    ctx.set_action("feedback.create");
    if !st.config.feedback.enabled {
        return Err(ApiError::not_found("route"));
    }
    let limit = if st.config.rate_limit.enabled {
        st.config.feedback.rate_limit_per_minute
    } else {
        0
    };
    if !st.limits.allow(Category::Feedback, ctx.client_ip, limit) {
        return Err(too_many());
    }
    if !is_json(&headers) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body must be JSON with Content-Type: application/json",
        ));
    }
    if let Some(secret) = &st.config.feedback.hmac_secret {
        check_signature(&st, secret, &headers, &body)?;
    }
    let b: FeedbackBody = serde_json::from_slice(&body).map_err(|e| {
        let msg: String = e
            .to_string()
            .chars()
            .take(160)
            .filter(|c| !c.is_control())
            .collect();
        ApiError::bad_request("malformed_json", msg)
    })?;
    let new = NewIssue {
        kind: "feedback",
        title: validate::title(&b.title).map_err(ApiError::invalid)?,
        body: validate::body(&b.body, true).map_err(ApiError::invalid)?,
        tags: validate::tags(&b.tags).map_err(ApiError::invalid)?,
        priority: 0,
        state: IssueState::Backlog,
        created_by: None,
        repo_id: None,
    };
    let ws = match st
        .store
        .workspace_by_name(&st.config.feedback.workspace)
        .await?
    {
        Some(w) => w,
        None => {
            st.store
                .ensure_workspace(&st.config.feedback.workspace)
                .await?
        }
    };
    ctx.set_actor(format!("anonymous:{}", ctx.client_ip), Some(ws.id));
    let issue = st.store.create_issue(ws.id, &new).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": issue.id, "kind": "feedback", "state": "backlog"})),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "feedback-signing-secret";
    const NOW: i64 = 1_800_000_000;

    fn headers(ts: &str, sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-request-timestamp", ts.parse().unwrap());
        h.insert("x-request-signature", sig.parse().unwrap());
        h
    }

    fn check(cache: &Mutex<HashMap<String, i64>>, ts: &str, sig: &str, body: &[u8]) -> bool {
        verify_signature(cache, SECRET, 300, NOW, &headers(ts, sig), body).is_ok()
    }

    #[test]
    fn a_signature_is_spent_whatever_its_hex_case_or_prefix() {
        let cache = Mutex::new(HashMap::new());
        let body = br#"{"title":"t"}"#;
        let ts = NOW.to_string();
        let sig = sign(SECRET, &ts, body);
        assert!(check(&cache, &ts, &sig, body), "the first use passes");
        for replay in [
            sig.clone(),
            sig.to_ascii_uppercase(),
            format!("sha256={}", sig.to_ascii_uppercase()),
            format!(
                "{}{}",
                sig[..10].to_ascii_uppercase(),
                &sig[10..].to_ascii_lowercase()
            ),
        ] {
            assert!(!check(&cache, &ts, &replay, body), "replay {replay} passed");
        }
        // Spelled in upper case the first time, replayed in lower case: still one signature.
        let ts2 = (NOW - 1).to_string();
        let sig2 = sign(SECRET, &ts2, body);
        assert!(check(&cache, &ts2, &sig2.to_ascii_uppercase(), body));
        assert!(!check(&cache, &ts2, &sig2, body));
        // A fresh signed request (another timestamp) passes; a wrong signature does not.
        let ts3 = (NOW + 1).to_string();
        assert!(check(&cache, &ts3, &sign(SECRET, &ts3, body), body));
        let ts4 = (NOW + 2).to_string();
        assert!(!check(&cache, &ts4, &sign("other", &ts4, body), body));
        assert!(!check(&cache, &ts4, &sign(SECRET, &ts4, b"{}"), body));
        let old = (NOW - 301).to_string();
        assert!(!check(&cache, &old, &sign(SECRET, &old, body), body));
    }

    #[test]
    fn a_signature_dated_ahead_stays_spent_for_as_long_as_it_is_acceptable() {
        let cache = Mutex::new(HashMap::new());
        let body = br#"{"title":"t"}"#;
        // Dated a full window ahead of the clock: acceptable until NOW + 600.
        let ts = (NOW + 300).to_string();
        let sig = sign(SECRET, &ts, body);
        let at = |now: i64| {
            verify_signature(&cache, SECRET, 300, now, &headers(&ts, &sig), body).is_ok()
        };
        assert!(at(NOW), "the first use passes");
        // Past NOW + 300 (where an entry keyed on the clock would expire) it is still refused.
        assert!(!at(NOW + 301));
        assert!(!at(NOW + 600));
        // Once the timestamp itself is out of the window it is refused for that reason.
        assert!(!at(NOW + 601));
    }
}
