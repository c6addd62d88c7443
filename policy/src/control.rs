//! The proxy's control protocol: what the runner sends over the control socket and what the
//! proxy answers. Newline-delimited JSON: one request line, then one response line, on a socket
//! no sandbox can reach. The types are shared by both ends so they cannot drift.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::broker::SecretValue;
use crate::config::PolicyConfig;
use crate::usage::BudgetConfig;

/// Version of the protocol; a request carrying another version is refused.
pub const CONTROL_PROTOCOL_VERSION: u32 = 1;
/// Longest request or response line, newline included.
pub const MAX_CONTROL_LINE: usize = 1 << 20;
/// Longest run id.
pub const MAX_RUN_ID: usize = 64;
/// File name of a run's socket inside its run directory.
pub const RUN_SOCKET_NAME: &str = "proxy.sock";
/// File name of a run's CA certificate (PEM) inside its run directory.
pub const RUN_CA_NAME: &str = "ca.pem";

/// True when `id` is a valid run id: 1..=64 of `[a-z0-9-]`, not starting with `-`. Run ids
/// name directories, so nothing else (no `.`, `/`, upper case) is accepted.
pub fn valid_run_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_RUN_ID
        && !id.starts_with('-')
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// One request line: `{"version":1,"op":{"kind":"revoke","run":"r1"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlRequest {
    /// Must equal [`CONTROL_PROTOCOL_VERSION`].
    pub version: u32,
    /// What to do.
    pub op: ControlOp,
}

impl ControlRequest {
    /// A request of the current version.
    pub fn new(op: ControlOp) -> ControlRequest {
        ControlRequest {
            version: CONTROL_PROTOCOL_VERSION,
            op,
        }
    }
}

/// The operations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ControlOp {
    /// Create the run's socket with its own policy, handles and budget.
    Register(Box<RegisterRun>),
    /// Close the run's socket, its connections and tunnels at once; answer its totals.
    Revoke {
        /// The run.
        run: String,
    },
    /// The run's totals so far.
    Totals {
        /// The run.
        run: String,
    },
    /// Every registered run (the runner revokes leftovers of a crashed runner).
    List,
}

/// Everything the proxy needs to serve one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRun {
    /// The run id ([`valid_run_id`]); names the run's directory under the proxy's runs dir.
    pub run: String,
    /// The run's egress policy.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// Real secrets the run may use through handles.
    #[serde(default)]
    pub credentials: Vec<CredentialGrant>,
    /// The run's budget.
    #[serde(default)]
    pub budget: BudgetConfig,
    /// Handles expire this many seconds after registration (and die with the run anyway).
    pub ttl_secs: u64,
}

/// One real secret and where its handle may be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialGrant {
    /// A name the runner chooses (e.g. the environment variable that will hold the handle).
    pub name: String,
    /// The real secret; only ever sent over the control socket.
    pub secret: WireSecret,
    /// Host patterns the handle may be sent to.
    pub hosts: Vec<String>,
    /// Header names (any case) the handle may appear in.
    pub headers: Vec<String>,
}

/// A secret on the control channel. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct WireSecret(pub SecretValue);

impl fmt::Debug for WireSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WireSecret([hidden])")
    }
}

impl Serialize for WireSecret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.expose())
    }
}

impl<'de> Deserialize<'de> for WireSecret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| WireSecret(SecretValue::new(s)))
    }
}

/// One response line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case", deny_unknown_fields)]
pub enum ControlResponse {
    /// The run is registered.
    Registered(Registered),
    /// The run is gone; what it used.
    Revoked {
        /// Totals at the moment of revocation.
        totals: Box<RunTotals>,
    },
    /// The run's totals so far.
    Totals {
        /// Totals now.
        totals: Box<RunTotals>,
    },
    /// The registered runs.
    Runs {
        /// Their ids.
        runs: Vec<String>,
    },
    /// The request was refused. `message` never holds a secret or a handle.
    Error {
        /// Stable machine-readable code (`bad_request`, `unknown_run`, `run_exists`, …).
        code: String,
        /// What was wrong, for people.
        message: String,
    },
}

/// The answer to a registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registered {
    /// The run's socket, relative to the proxy's runs directory (`<run>/proxy.sock`).
    pub socket: String,
    /// The run's CA certificate (PEM), also written as `<run>/ca.pem`; the sandbox trusts it.
    pub ca_pem: String,
    /// One handle per credential grant, by grant name.
    pub handles: Vec<IssuedHandle>,
}

/// A handle minted for a grant.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuedHandle {
    /// The grant's name.
    pub name: String,
    /// The opaque handle the sandbox receives.
    pub handle: String,
}

impl fmt::Debug for IssuedHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedHandle")
            .field("name", &self.name)
            .field("handle", &"[hidden]")
            .finish()
    }
}

/// What a run used and what was refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunTotals {
    /// Requests (and tunnels) admitted.
    pub requests: u64,
    /// Requests refused.
    pub denied: u64,
    /// Denial audit lines not written because the run went over its audit rate (each denial
    /// is still counted in `denied`).
    pub audit_suppressed: u64,
    /// Bytes sent upstream.
    pub bytes_up: u64,
    /// Bytes sent back to the sandbox.
    pub bytes_down: u64,
    /// Prompt tokens read from providers' `usage`.
    pub input_tokens: u64,
    /// Generated tokens read from providers' `usage`.
    pub output_tokens: u64,
    /// Tokens charged to the token budget: the providers' totals, or an over-estimate from the
    /// body size when a response carried no readable final usage.
    pub tokens: u64,
    /// Handle misuse and other security events.
    pub security_events: u64,
    /// The budget rule that ran out, if one did.
    pub budget_exhausted: Option<String>,
    /// Per host, in first-seen order (capped by the proxy).
    pub hosts: Vec<HostTotals>,
}

/// One host's line in [`RunTotals`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HostTotals {
    /// The host as requested (normalised).
    pub host: String,
    /// Requests admitted.
    pub requests: u64,
    /// Requests refused.
    pub denied: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_name_directories_only() {
        for ok in ["a", "run-1", "0f3c", &"a".repeat(64)] {
            assert!(valid_run_id(ok), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "A",
            "a/b",
            "..",
            ".",
            "a.b",
            "a b",
            "a\0",
            &"a".repeat(65),
        ] {
            assert!(!valid_run_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn requests_round_trip_and_unknown_fields_are_refused() {
        let req = ControlRequest::new(ControlOp::Register(Box::new(RegisterRun {
            run: "r1".into(),
            policy: PolicyConfig::default(),
            credentials: vec![CredentialGrant {
                name: "ANTHROPIC_API_KEY".into(),
                secret: WireSecret(SecretValue::new("sk-ant-real")),
                hosts: vec!["api.anthropic.test".into()],
                headers: vec!["x-api-key".into()],
            }],
            budget: BudgetConfig::default(),
            ttl_secs: 3600,
        })));
        let line = serde_json::to_string(&req).unwrap();
        assert!(line.contains(r#""kind":"register""#), "{line}");
        let back: ControlRequest = serde_json::from_str(&line).unwrap();
        assert_eq!(back, req);
        assert!(!format!("{back:?}").contains("sk-ant-real"));

        let revoke = r#"{"version":1,"op":{"kind":"revoke","run":"r1"}}"#;
        let parsed: ControlRequest = serde_json::from_str(revoke).unwrap();
        assert_eq!(parsed.op, ControlOp::Revoke { run: "r1".into() });
        let extra =
            r#"{"version":1,"op":{"kind":"register","run":"r1","ttl_secs":1,"sneaky":true}}"#;
        assert!(serde_json::from_str::<ControlRequest>(extra).is_err());
        let extra = r#"{"version":1,"op":{"kind":"revoke","run":"r1","sneaky":true}}"#;
        assert!(serde_json::from_str::<ControlRequest>(extra).is_err());
        let extra = r#"{"version":1,"op":{"kind":"list"},"sneaky":true}"#;
        assert!(serde_json::from_str::<ControlRequest>(extra).is_err());
    }

    #[test]
    fn responses_round_trip() {
        let r = ControlResponse::Registered(Registered {
            socket: "r1/proxy.sock".into(),
            ca_pem: "-----BEGIN CERTIFICATE-----".into(),
            handles: vec![IssuedHandle {
                name: "K".into(),
                handle: "pdk_h_x".into(),
            }],
        });
        let line = serde_json::to_string(&r).unwrap();
        assert!(line.contains(r#""status":"registered""#), "{line}");
        assert_eq!(serde_json::from_str::<ControlResponse>(&line).unwrap(), r);
        let e: ControlResponse =
            serde_json::from_str(r#"{"status":"error","code":"unknown_run","message":"no"}"#)
                .unwrap();
        assert!(matches!(e, ControlResponse::Error { .. }));
    }
}
