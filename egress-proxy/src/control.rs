//! The control socket: the runner registers a run (the proxy mints its handles and CA and
//! opens its own socket), reads its totals, and revokes it (its socket, connections and
//! tunnels close at once). Newline-delimited JSON, see `paddock_policy::control`.

use std::collections::HashMap;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use paddock_policy::control::{
    CONTROL_PROTOCOL_VERSION, ControlOp, ControlRequest, ControlResponse, CredentialGrant,
    IssuedHandle, MAX_CONTROL_LINE, RUN_CA_NAME, RUN_SOCKET_NAME, RegisterRun, Registered,
    RunTotals, valid_run_id,
};
use paddock_policy::{
    BudgetState, HANDLE_RANDOM_BYTES, HandleSet, HandleSpec, HostPattern, generate_handle,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::limits::ConnLimiter;
use crate::proxy::Shared;
use crate::run::Run;
use crate::server::{accept_unix, listen_unix};
use crate::tls::{Interceptor, RunCa};

/// Longest handle lifetime a registration may ask for.
pub const MAX_TTL_SECS: u64 = 30 * 24 * 3600;
/// Credentials per run, at most.
pub const MAX_GRANTS: usize = 32;
/// A control connection idle this long is closed.
const CONTROL_IDLE: Duration = Duration::from_secs(300);
/// Longest wait, on revoke, for the run's connections to hand back their last byte counts.
const REVOKE_SETTLE: Duration = Duration::from_secs(2);

struct Entry {
    run: Arc<Run>,
    dir: PathBuf,
    accept: JoinHandle<()>,
}

/// The registered runs and everything needed to open a new one.
pub struct Registry {
    shared: Arc<Shared>,
    limiter: Arc<ConnLimiter>,
    stop: CancellationToken,
    runs_dir: PathBuf,
    max_runs: usize,
    ca_lifetime: Duration,
    runs: Mutex<HashMap<String, Entry>>,
    next_index: AtomicUsize,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("runs_dir", &self.runs_dir)
            .field("runs", &self.lock().len())
            .finish_non_exhaustive()
    }
}

fn err(code: &str, message: impl Into<String>) -> ControlResponse {
    ControlResponse::Error {
        code: code.to_owned(),
        message: message.into(),
    }
}

impl Registry {
    /// A registry that opens run directories under `runs_dir`.
    pub(crate) fn new(
        shared: Arc<Shared>,
        limiter: Arc<ConnLimiter>,
        stop: CancellationToken,
        runs_dir: PathBuf,
        max_runs: usize,
        ca_lifetime: Duration,
    ) -> Registry {
        Registry {
            shared,
            limiter,
            stop,
            runs_dir,
            max_runs,
            ca_lifetime,
            runs: Mutex::new(HashMap::new()),
            // Index 0 is `listen_unix`.
            next_index: AtomicUsize::new(1),
        }
    }

    // The map is consistent after every statement, so a poisoned lock is safe to keep using.
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.runs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Answers one request.
    pub async fn handle(&self, req: ControlRequest) -> ControlResponse {
        if req.version != CONTROL_PROTOCOL_VERSION {
            return err(
                "unsupported_version",
                format!("this proxy speaks control protocol version {CONTROL_PROTOCOL_VERSION}"),
            );
        }
        match req.op {
            ControlOp::Register(r) => self.register(*r),
            ControlOp::Revoke { run } => match self.revoke(&run).await {
                Some(totals) => ControlResponse::Revoked {
                    totals: Box::new(totals),
                },
                None => unknown_run(&run),
            },
            ControlOp::Totals { run } => match self.lock().get(&run) {
                Some(e) => ControlResponse::Totals {
                    totals: Box::new(e.run.totals()),
                },
                None => unknown_run(&run),
            },
            ControlOp::List => {
                let mut runs: Vec<String> = self.lock().keys().cloned().collect();
                runs.sort();
                ControlResponse::Runs { runs }
            }
        }
    }

    fn register(&self, r: RegisterRun) -> ControlResponse {
        if !valid_run_id(&r.run) {
            return err(
                "bad_run_id",
                "a run id is 1 to 64 of a-z, 0-9 and '-', not starting with '-'",
            );
        }
        if r.ttl_secs == 0 || r.ttl_secs > MAX_TTL_SECS {
            return err(
                "bad_request",
                format!("ttl_secs must be between 1 and {MAX_TTL_SECS}"),
            );
        }
        let policy = match r.policy.compile() {
            Ok(p) => p,
            Err(e) => return err("bad_policy", e.to_string()),
        };
        let budget = match r.budget.compile() {
            Ok(b) => b,
            Err(e) => return err("bad_budget", e.to_string()),
        };
        let (handles, issued) = match mint_handles(&r.credentials, r.ttl_secs) {
            Ok(v) => v,
            Err(resp) => return resp,
        };
        let ca = match RunCa::generate(&r.run, self.ca_lifetime) {
            Ok(ca) => Arc::new(ca),
            Err(e) => {
                tracing::error!(run_id = %r.run, error = %e, "cannot create the run CA");
                return err("internal", "the run CA could not be created");
            }
        };
        let ca_pem = ca.cert_pem().to_owned();
        let interceptor = match Interceptor::new(ca) {
            Ok(i) => i,
            Err(e) => {
                tracing::error!(run_id = %r.run, error = %e, "cannot build the interceptor");
                return err("internal", "the run CA could not be used");
            }
        };

        let mut runs = self.lock();
        if runs.contains_key(&r.run) {
            return err("run_exists", "a run with this id is registered");
        }
        if runs.len() >= self.max_runs {
            return err(
                "too_many_runs",
                "the proxy serves its maximum number of runs",
            );
        }
        let dir = self.runs_dir.join(&r.run);
        let listener = match open_run_dir(&dir, &ca_pem) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(run_id = %r.run, error = %e, "cannot open the run's socket");
                let _ = std::fs::remove_dir_all(&dir);
                return err("internal", "the run's socket could not be created");
            }
        };
        let id: Arc<str> = Arc::from(r.run.as_str());
        let run = Arc::new(Run::new(
            Some(id),
            policy,
            handles,
            BudgetState::new(budget),
            Some(interceptor),
            self.shared.kill.child_token(),
        ));
        let index = self.next_index.fetch_add(1, Ordering::Relaxed);
        let accept = tokio::spawn(accept_unix(
            listener,
            dir.join(RUN_SOCKET_NAME),
            index,
            self.shared.clone(),
            run.clone(),
            self.limiter.clone(),
            self.stop.clone(),
        ));
        runs.insert(r.run.clone(), Entry { run, dir, accept });
        tracing::info!(run_id = %r.run, handles = issued.len(), "run registered");
        ControlResponse::Registered(Registered {
            socket: format!("{}/{RUN_SOCKET_NAME}", r.run),
            ca_pem,
            handles: issued,
        })
    }

    /// Closes the run's socket, connections and tunnels at once and removes its directory;
    /// returns its totals, or `None` for an unknown run.
    pub async fn revoke(&self, run: &str) -> Option<RunTotals> {
        let entry = self.lock().remove(run)?;
        entry.run.cancel.cancel();
        entry.accept.abort();
        if let Err(e) = std::fs::remove_dir_all(&entry.dir) {
            tracing::warn!(run_id = %run, error = %e, "cannot remove the run directory");
        }
        // Every connection task holds the run; once they are gone the byte counts are final.
        let settle = tokio::time::Instant::now() + REVOKE_SETTLE;
        while Arc::strong_count(&entry.run) > 1 && tokio::time::Instant::now() < settle {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let totals = entry.run.totals();
        tracing::info!(run_id = %run, requests = totals.requests, denied = totals.denied, "run revoked");
        Some(totals)
    }

    /// Revokes every run (proxy shutdown).
    pub async fn revoke_all(&self) {
        let ids: Vec<String> = self.lock().keys().cloned().collect();
        for id in ids {
            let _ = self.revoke(&id).await;
        }
    }
}

fn unknown_run(run: &str) -> ControlResponse {
    let shown: String = if valid_run_id(run) {
        run.to_owned()
    } else {
        "(invalid id)".to_owned()
    };
    err("unknown_run", format!("no run {shown} is registered"))
}

/// Validates the grants and mints one handle per grant from the OS's randomness.
fn mint_handles(
    grants: &[CredentialGrant],
    ttl_secs: u64,
) -> Result<(HandleSet, Vec<IssuedHandle>), ControlResponse> {
    if grants.len() > MAX_GRANTS {
        return Err(err(
            "bad_credential",
            format!("at most {MAX_GRANTS} credentials per run"),
        ));
    }
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let expires_at_unix = now.saturating_add(ttl_secs);
    let rng = rustls::crypto::ring::default_provider().secure_random;
    let mut specs = Vec::with_capacity(grants.len());
    let mut issued = Vec::with_capacity(grants.len());
    for (i, g) in grants.iter().enumerate() {
        let name_ok = !g.name.is_empty()
            && g.name.len() <= 128
            && g.name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !name_ok {
            return Err(err(
                "bad_credential",
                format!("credentials[{i}].name: 1 to 128 of A-Z, a-z, 0-9, '_' and '-'"),
            ));
        }
        if grants[..i].iter().any(|o| o.name == g.name) {
            return Err(err(
                "bad_credential",
                format!("credentials[{i}].name repeats an earlier name"),
            ));
        }
        if g.secret.0.expose().is_empty() {
            return Err(err(
                "bad_credential",
                format!("credentials[{i}].secret is empty"),
            ));
        }
        let mut hosts = Vec::with_capacity(g.hosts.len());
        for (j, h) in g.hosts.iter().enumerate() {
            match HostPattern::parse(h) {
                Ok(p) => hosts.push(p),
                Err(_) => {
                    return Err(err(
                        "bad_credential",
                        format!("credentials[{i}].hosts[{j}] is not a valid host pattern"),
                    ));
                }
            }
        }
        let headers = g.headers.iter().map(|h| h.to_ascii_lowercase()).collect();
        let mut random = [0u8; HANDLE_RANDOM_BYTES];
        if rng.fill(&mut random).is_err() {
            return Err(err("internal", "no randomness for a handle"));
        }
        let handle = generate_handle(&random);
        issued.push(IssuedHandle {
            name: g.name.clone(),
            handle: handle.clone(),
        });
        specs.push(HandleSpec {
            handle,
            secret: g.secret.0.clone(),
            hosts,
            headers,
            expires_at_unix,
        });
    }
    // BrokerError and ScrubError name the index, never the secret.
    let set = HandleSet::new(specs).map_err(|e| err("bad_credential", e.to_string()))?;
    Ok((set, issued))
}

/// Creates `<dir>` (0755) with the CA certificate (0644) and the run's socket (0666: agents run
/// as other uids; only that run's sandbox has the directory mounted). A leftover directory of
/// a run this proxy does not know (a previous proxy's) is replaced.
fn open_run_dir(dir: &Path, ca_pem: &str) -> std::io::Result<UnixListener> {
    match std::fs::symlink_metadata(dir) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(dir)?,
        Ok(_) => std::fs::remove_file(dir)?,
        Err(_) => {}
    }
    std::fs::create_dir(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    let ca_path = dir.join(RUN_CA_NAME);
    std::fs::write(&ca_path, ca_pem)?;
    std::fs::set_permissions(&ca_path, std::fs::Permissions::from_mode(0o644))?;
    let sock = dir.join(RUN_SOCKET_NAME);
    let listener = listen_unix(&sock)?;
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666))?;
    Ok(listener)
}

/// Binds the control socket with mode 0600: bound under a temporary name, re-moded, then
/// renamed into place, so it is never reachable with wider permissions.
pub(crate) fn bind_control(path: &Path) -> std::io::Result<UnixListener> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path)?,
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "the path exists and is not a socket; refusing to remove it",
            ));
        }
        Err(_) => {}
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let listener = listen_unix(&tmp)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(&tmp, path)?;
    Ok(listener)
}

/// Serves the control socket until `stop`.
pub(crate) async fn serve(l: UnixListener, registry: Arc<Registry>, stop: CancellationToken) {
    loop {
        let stream = tokio::select! {
            r = l.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "control accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stop.cancelled() => return,
        };
        let registry = registry.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = serve_client(stream, &registry) => {}
                () = stop.cancelled() => {}
            }
        });
    }
}

/// One control connection: one response line per request line.
async fn serve_client(stream: UnixStream, registry: &Registry) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        let limit = u64::try_from(MAX_CONTROL_LINE).unwrap_or(u64::MAX);
        let n = match tokio::time::timeout(
            CONTROL_IDLE,
            (&mut reader).take(limit).read_until(b'\n', &mut line),
        )
        .await
        {
            Ok(Ok(n)) => n,
            Ok(Err(_)) | Err(_) => return,
        };
        if n == 0 {
            return;
        }
        let complete = line.last() == Some(&b'\n');
        let (resp, close) = if !complete && line.len() >= MAX_CONTROL_LINE {
            (
                err(
                    "line_too_long",
                    format!("a request line is at most {MAX_CONTROL_LINE} bytes"),
                ),
                true,
            )
        } else {
            match parse_request(&line) {
                Ok(req) => (registry.handle(req).await, false),
                Err(resp) => (resp, false),
            }
        };
        let mut out = serde_json::to_vec(&resp).unwrap_or_else(|_| {
            br#"{"status":"error","code":"internal","message":"unencodable response"}"#.to_vec()
        });
        out.push(b'\n');
        if write.write_all(&out).await.is_err() || close || !complete {
            return;
        }
    }
}

/// Parses a request line. The error never repeats the input: a value in it may be a secret.
fn parse_request(line: &[u8]) -> Result<ControlRequest, ControlResponse> {
    serde_json::from_slice::<ControlRequest>(line).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Syntax => "the line is not valid JSON",
            serde_json::error::Category::Eof => "the line ends inside a JSON value",
            serde_json::error::Category::Data => {
                let text = e.to_string();
                if text.starts_with("missing field") {
                    // Field names come from the protocol, not from the input.
                    return err("bad_request", text);
                }
                "a field is unknown, missing or of the wrong type"
            }
            serde_json::error::Category::Io => "the line could not be read",
        };
        err("bad_request", format!("{what} (column {})", e.column()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_never_echo_values() {
        let secret = "sk-ant-api03-verysecretvalue";
        for line in [
            format!(r#"{{"version":1,"op":{{"kind":"revoke","run":1,"x":"{secret}"}}}}"#),
            format!(r#"{{"version":"{secret}","op":{{"kind":"list"}}}}"#),
            format!(r#"{{"{secret}":1}}"#),
            format!(r#"{{"version":1,"op":{{"kind":"{secret}"}}}}"#),
            secret.to_string(),
        ] {
            let e = parse_request(line.as_bytes()).unwrap_err();
            let text = serde_json::to_string(&e).unwrap();
            assert!(!text.contains("verysecret"), "{text}");
            assert!(text.contains("bad_request"), "{text}");
        }
        // The neighbour: a valid line parses.
        let ok = parse_request(br#"{"version":1,"op":{"kind":"list"}}"#).unwrap();
        assert_eq!(ok.op, ControlOp::List);
    }
}
