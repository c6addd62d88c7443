//! The credential broker applied to traffic: handles swapped for secrets in request headers,
//! secrets masked in response headers (bodies: `body::DownFilter`).

use std::time::SystemTime;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use paddock_policy::{BrokerDecision, BrokerRequest, BrokerRule, Host};

use crate::run::Run;

/// Seconds since the Unix epoch (handle expiry).
fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Asks the broker about a request's target and headers: handles in allowed headers to an
/// in-scope host are swapped for their secrets (the new header map is returned); anything
/// else that carries a handle or a secret is refused with the broker's rule.
pub(crate) fn broker(
    run: &Run,
    host: &Host,
    path: &str,
    headers: HeaderMap,
) -> Result<HeaderMap, BrokerRule> {
    let pairs: Vec<(&str, &[u8])> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_bytes()))
        .collect();
    let decision = run.handles.decide(&BrokerRequest {
        host,
        headers: &pairs,
        path_and_query: path,
        body_prefix: &[],
        now_unix: now_unix(),
    });
    let rewrites = match decision {
        BrokerDecision::Deny(rule) => return Err(rule),
        BrokerDecision::Rewrite(r) if r.is_empty() => return Ok(headers),
        BrokerDecision::Rewrite(r) => r,
    };
    let mut out = HeaderMap::with_capacity(headers.len());
    for (index, (name, value)) in headers.iter().enumerate() {
        match rewrites.iter().find(|r| r.index == index) {
            Some(r) => {
                // The secret was checked for control characters when the run was registered.
                let Ok(mut v) = HeaderValue::from_bytes(r.value()) else {
                    return Err(BrokerRule::SecretInRequest);
                };
                v.set_sensitive(true);
                out.append(name.clone(), v);
            }
            None => {
                out.append(name.clone(), value.clone());
            }
        }
    }
    // With a real secret on board, ask for an uncompressed response: the scrubber can only
    // mask what it can read.
    out.insert(
        http::header::ACCEPT_ENCODING,
        HeaderValue::from_static("identity"),
    );
    Ok(out)
}

/// Masks the run's real secrets in response headers.
pub(crate) fn scrub_response_headers(run: &Run, h: &mut HeaderMap) {
    if run.handles.is_empty() {
        return;
    }
    let mut changed: Vec<(HeaderName, Option<HeaderValue>)> = Vec::new();
    for (name, value) in h.iter() {
        if let std::borrow::Cow::Owned(v) = run.handles.scrub_response_header(value.as_bytes()) {
            changed.push((name.clone(), HeaderValue::from_bytes(&v).ok()));
        }
    }
    for (name, value) in changed {
        let others: Vec<HeaderValue> = h
            .get_all(&name)
            .iter()
            .filter(|v| {
                matches!(
                    run.handles.scrub_response_header(v.as_bytes()),
                    std::borrow::Cow::Borrowed(_)
                )
            })
            .cloned()
            .collect();
        h.remove(&name);
        for v in others.into_iter().chain(value) {
            h.append(name.clone(), v);
        }
    }
}
